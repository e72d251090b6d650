//! The nightly backup job of a JFIV site (run by the systemd timer in `deploy/`).
//!
//! `cargo run --release --example nightly_backup -- --config /etc/jfiv/hospital.toml`

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use jfiv::audit::{Actor, Clock, SystemClock};
use jfiv::backup::{Progress, ProgressEvent};
use jfiv::nightly::{self, LogLines, Observer, StepResult};
use jfiv::site::SiteConfig;

/// The nightly backup of JFIV: the database to tonight's tape (chosen by the rotation, read
/// back and every chunk authenticated), the application server to the disk target in the other
/// room, the retention policy applied, tonight's verification slice of the disk, and a signed
/// audit checkpoint exported to the other room. Every step is written to the audit trail.
/// Prints a summary, writes a JSON report (`--json-report`, and `<state_dir>/last-nightly.json`
/// for check_backup), shows progress bars on a terminal and plain log lines otherwise (systemd
/// journal). Exits 0 when every step succeeded, 1 when one failed, 2 when it could not start
/// (configuration, audit trail, key).
#[derive(Debug, Parser)]
#[command(name = "nightly_backup", version, about, long_about)]
struct Args {
    /// The site configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Also write the JSON report here.
    #[arg(long)]
    json_report: Option<PathBuf>,
    /// Who runs the job (a personal user id; the timer uses `nightly-backup`).
    #[arg(long, default_value = "nightly-backup")]
    operator: String,
}

/// Progress bars on a terminal.
#[derive(Debug)]
struct Bars {
    bar: ProgressBar,
}

impl Progress for Bars {
    fn report(&self, event: &ProgressEvent<'_>) {
        match event {
            ProgressEvent::Scanned { bytes, .. } => {
                self.bar.set_length(*bytes);
                self.bar.set_position(0);
            }
            ProgressEvent::FileDone { bytes, path, .. } => {
                self.bar.inc(*bytes);
                self.bar.set_message(path.to_string());
            }
            _ => {}
        }
    }
}

impl Observer for Bars {
    fn step_started(&self, name: &str) {
        self.bar.reset();
        self.bar.set_prefix(name.to_owned());
    }
    fn step_finished(&self, step: &StepResult) {
        self.bar.println(format!(
            "[{}] {} ({:.1} s): {}",
            if step.ok { " ok " } else { "FAIL" },
            step.name,
            step.seconds,
            step.details
        ));
    }
    fn progress(&self) -> &dyn Progress {
        self
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let site = match SiteConfig::load(&args.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let log = match nightly::open_audit(&site, clock.clone()) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            eprintln!("nightly_backup: {e}");
            return ExitCode::from(2);
        }
    };
    let operator = Actor::new(args.operator.clone(), "backup-operator");
    let bars;
    let logs = LogLines;
    let observer: &dyn Observer = if std::io::stdout().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>20} [{bar:40}] {bytes}/{total_bytes} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bars = Bars { bar };
        &bars
    } else {
        &logs
    };
    let report = match nightly::run(&site, log, operator, clock, observer).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nightly_backup: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", report.summary());
    if let Some(path) = &args.json_report {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("nightly_backup: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::from(report.exit_code())
}

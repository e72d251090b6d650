//! The Nagios / Centreon check of a JFIV site.
//!
//! `cargo run --release --example check_backup -- --config /etc/jfiv/hospital.toml`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use jfiv::monitor::{Status, Thresholds, evaluate, gather};
use jfiv::site::SiteConfig;

/// Monitoring plugin (Nagios / Centreon convention) for the JFIV backups: exits 0 OK,
/// 1 WARNING, 2 CRITICAL, 3 UNKNOWN and prints one status line with performance data
/// (`age_db=...h;26;48 age_app=...h;26;48 disk_used=...%;85;95;0;100 audit_records=...`), then
/// one line per finding. It checks: the last successful and verified backup of the database
/// and of the application against the RPO; last night's tape still in the server room after
/// the configured hour; tonight's tape offsite or unavailable; the disk target nearly full or
/// missing; the audit log failing verification; the last nightly run failing.
#[derive(Debug, Parser)]
#[command(name = "check_backup", version, about, long_about)]
struct Args {
    /// The site configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Only validate the configuration file (exit 0 when valid, 3 with the problems).
    #[arg(long)]
    check_config: bool,
    /// Print the gathered state as JSON after the plugin output.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let site = match SiteConfig::load(&args.config) {
        Ok(site) => site,
        Err(e) => {
            println!("JFIV BACKUP UNKNOWN - configuration file invalid");
            println!("{e}");
            return ExitCode::from(Status::Unknown.exit_code() as u8);
        }
    };
    if args.check_config {
        println!("{}: configuration valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    let now = chrono::Utc::now();
    let state = gather(&site, now);
    let evaluation = evaluate(&state, &Thresholds::of(&site), now);
    println!("{}", evaluation.output());
    if args.json {
        match serde_json::to_string_pretty(&state) {
            Ok(json) => println!("{json}"),
            Err(e) => println!("state not serialisable: {e}"),
        }
    }
    ExitCode::from(evaluation.status.exit_code() as u8)
}

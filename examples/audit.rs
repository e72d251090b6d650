//! The JFIV audit trail from the command line.
//!
//! ```sh
//! cargo run --release --example audit -- demo
//! cargo run --release --example audit -- keygen --key-file audit.key
//! cargo run --release --example audit -- append --log audit-log --key-file audit.key \
//!     --actor dr.martin --action record-read --patient P000123
//! cargo run --release --example audit -- checkpoint --log audit-log --key-file audit.key --out cp.json
//! cargo run --release --example audit -- verify --log audit-log --key-file audit.key --checkpoint cp.json
//! cargo run --release --example audit -- history --log audit-log --key-file audit.key --patient P000123
//! # the same against a site: log, key file and checkpoint directory from its configuration
//! cargo run --release --example audit -- --config /etc/jfiv/hospital.toml verify
//! cargo run --release --example audit -- --config /etc/jfiv/hospital.toml history --patient P000123
//! ```
//!
//! Thin: all the logic is in `jfiv_audit`; this file only parses arguments, reads the
//! environment and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use jfiv::audit::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, Checkpoint, Error, FileLog, FileLogOptions,
    IntegrityKind, Origin, Outcome, Query, RecordRef, verify,
};
use jfiv::site::SiteConfig;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The JFIV tamper-evident audit trail: who accessed which record, when, from where. Create
/// keys, append events, export signed checkpoints, verify the log, print a patient's history, or
/// run a self-contained demo with tampering.
///
/// With `--config FILE` (the site configuration, `examples/hospital.toml` format) the log
/// directory, the key file, the checkpoint directory and the host name come from its `[audit]`
/// and `[site]` sections: `--log` and `--key-file` may then be left out, `verify` checks the log
/// against every checkpoint the nightly job exported, and `checkpoint` writes into that
/// directory. Explicit options win over the file.
#[derive(Parser)]
#[command(name = "audit", about, long_about)]
struct Cli {
    /// The site configuration file (hospital.toml format): log, key file and checkpoints
    /// from its `[audit]` section.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a new key file (MAC key + ed25519 signing key), mode 0600, never overwriting.
    Keygen {
        /// The key file to create.
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Appends one event to the log (creating the log if the directory holds none); prints its
    /// sequence number once it is durable.
    Append {
        /// The log directory (default with --config: `audit.dir`).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The key file (default with --config: `audit.key_file`).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Who did it (a personal user id, or a component name for unattended jobs).
        #[arg(long)]
        actor: String,
        /// The actor's JFIV profile (clinician, secretary...), if known.
        #[arg(long)]
        profile: Option<String>,
        /// What was done: kebab-case action name (login-success, record-read, tape-moved...).
        #[arg(long)]
        action: Action,
        /// The patient concerned.
        #[arg(long)]
        patient: Option<String>,
        /// The cycle concerned (with --patient).
        #[arg(long, requires = "patient")]
        cycle: Option<String>,
        /// The non-medical object concerned (tape barcode, snapshot id...).
        #[arg(long)]
        object: Option<String>,
        /// Free details (never a password or medical content).
        #[arg(long)]
        detail: Option<String>,
        /// The workstation it was done from (default: this host's name).
        #[arg(long)]
        workstation: Option<String>,
    },
    /// Verifies the whole log (every record, header and seal) and, if given, against signed
    /// checkpoints; exit 0 with a one-line summary if intact, non-zero naming the first bad
    /// record otherwise.
    Verify {
        /// The log directory (default with --config: `audit.dir`).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The key file (default with --config: `audit.key_file`).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// A checkpoint file written by `checkpoint` (repeatable); detects truncation and rollback.
        /// Default with --config: every checkpoint in `audit.checkpoint_dir`.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
    },
    /// Writes a signed checkpoint of the log (record count, chain head, time, log id) to a new
    /// file, to keep away from the log host; the export is itself an audit event.
    Checkpoint {
        /// The log directory (default with --config: `audit.dir`).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The key file (default with --config: `audit.key_file`).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The checkpoint file to create (default with --config:
        /// `<audit.checkpoint_dir>/checkpoint-<records>.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Who exports it.
        #[arg(long, default_value = "audit-cli")]
        actor: String,
    },
    /// Prints every event about one patient (who read or changed their file, when, from where),
    /// after verifying the log.
    History {
        /// The log directory (default with --config: `audit.dir`).
        #[arg(long)]
        log: Option<PathBuf>,
        /// The key file (default with --config: `audit.key_file`).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The patient's JFIV identifier.
        #[arg(long)]
        patient: String,
    },
    /// Runs a short scenario end to end in a temporary directory (or --workdir): keys, a day of
    /// logins, record reads, a backup and a tape move, a checkpoint, verification, a patient's
    /// history, then tampering with copies of the log to show that it is detected.
    Demo {
        /// Work in this directory (kept) instead of a temporary one.
        #[arg(long)]
        workdir: Option<PathBuf>,
    },
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// What `--config` gives this example.
#[derive(Default)]
struct FromSite {
    site: Option<SiteConfig>,
}

impl FromSite {
    fn load(config: Option<&Path>) -> Result<Self, BoxError> {
        Ok(Self {
            // On the log host the server's files may be absent (or burned): only `[audit]`
            // and `[site]` are used.
            site: config.map(SiteConfig::load_unchecked).transpose()?,
        })
    }

    fn log(&self, given: Option<PathBuf>) -> Result<PathBuf, BoxError> {
        given
            .or_else(|| self.site.as_ref().map(|s| s.audit.dir.clone()))
            .ok_or_else(|| "give --log DIR or --config FILE".into())
    }

    fn key_file(&self, given: Option<PathBuf>) -> Result<PathBuf, BoxError> {
        given
            .or_else(|| self.site.as_ref().map(|s| s.audit.key_file.clone()))
            .ok_or_else(|| "give --key-file FILE or --config FILE".into())
    }

    fn host(&self) -> String {
        self.site
            .as_ref()
            .map_or_else(host_name, |s| s.site.host.clone())
    }

    fn options(&self) -> FileLogOptions {
        FileLogOptions::new().origin(Origin::System { host: self.host() })
    }
}

fn options() -> FileLogOptions {
    FileLogOptions::new().origin(Origin::System { host: host_name() })
}

fn load_keys(path: &Path) -> Result<Arc<AuditKeys>, Error> {
    AuditKeys::load(path).map(Arc::new)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.config.as_deref()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("audit: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Option<&Path>) -> Result<ExitCode, BoxError> {
    let from_site = match &command {
        Command::Demo { .. } | Command::Keygen { .. } => FromSite::default(),
        _ => FromSite::load(config)?,
    };
    match command {
        Command::Keygen { key_file } => {
            let keys = AuditKeys::generate_from_os();
            keys.save(&key_file)?;
            println!(
                "created {} (mode 0600): fingerprint {}, public key {}",
                key_file.display(),
                keys.fingerprint(),
                keys.verifying_key().to_hex()
            );
        }
        Command::Append {
            log,
            key_file,
            actor,
            profile,
            action,
            patient,
            cycle,
            object,
            detail,
            workstation,
        } => {
            let keys = load_keys(&from_site.key_file(key_file)?)?;
            let sink = FileLog::open_or_create(&from_site.log(log)?, keys, from_site.options())?;
            let actor = match profile {
                Some(profile) => Actor::new(actor, profile),
                None => Actor::unprofiled(actor),
            };
            let origin = Origin::Local {
                workstation: workstation.unwrap_or_else(|| from_site.host()),
            };
            let mut event = AuditEvent::new(chrono::Utc::now(), actor, origin, action);
            event.record = match (patient, cycle) {
                (Some(p), Some(c)) => Some(RecordRef::cycle(p, c)),
                (Some(p), None) => Some(RecordRef::patient(p)),
                _ => None,
            };
            event.object = object;
            event.details = detail.unwrap_or_default();
            let recorded = sink.append(event).await?;
            println!("appended (durable): {recorded}");
        }
        Command::Verify {
            log,
            key_file,
            checkpoint,
        } => {
            let keys = load_keys(&from_site.key_file(key_file)?)?;
            let log = from_site.log(log)?;
            let checkpoint = match (&from_site.site, checkpoint.is_empty()) {
                (Some(site), true) => site.audit_checkpoint_files()?,
                _ => checkpoint,
            };
            println!(
                "verifying {} against {} checkpoint(s)",
                log.display(),
                checkpoint.len()
            );
            let checkpoints = checkpoint
                .iter()
                .map(|p| Checkpoint::read_from(p))
                .collect::<Result<Vec<_>, _>>()?;
            match verify(&log, &keys, &checkpoints) {
                Ok(report) => println!("{report}"),
                Err(e) => {
                    eprintln!("audit log NOT intact: {e}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        Command::Checkpoint {
            log,
            key_file,
            out,
            actor,
        } => {
            let keys = load_keys(&from_site.key_file(key_file)?)?;
            let sink = FileLog::open(&from_site.log(log)?, keys, from_site.options())?;
            let dir = match (&out, &from_site.site) {
                (Some(_), _) => None,
                (None, Some(site)) => Some(site.audit.checkpoint_dir.clone()),
                (None, None) => return Err("give --out FILE or --config FILE".into()),
            };
            let checkpoint = sink.checkpoint(Actor::unprofiled(actor)).await?;
            // Named like the nightly job's exports.
            let out = match (out, dir) {
                (Some(out), _) => out,
                (None, Some(dir)) => {
                    std::fs::create_dir_all(&dir)?;
                    dir.join(format!("checkpoint-{}.json", checkpoint.records))
                }
                (None, None) => return Err("give --out FILE or --config FILE".into()),
            };
            checkpoint.write_to(&out)?;
            println!(
                "wrote {}: log {}, {} records, head {}",
                out.display(),
                checkpoint.log_id,
                checkpoint.records,
                checkpoint.chain
            );
        }
        Command::History {
            log,
            key_file,
            patient,
        } => {
            let keys = load_keys(&from_site.key_file(key_file)?)?;
            let sink = FileLog::open(&from_site.log(log)?, keys, from_site.options())?;
            let events = sink.query(&Query::patient(&patient)).await?;
            println!("{} event(s) about patient {patient}:", events.len());
            for r in events {
                println!("  {r}");
            }
        }
        Command::Demo { workdir } => return demo(workdir).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The scenario of `demo`; returns failure if anything did not behave as expected.
async fn demo(workdir: Option<PathBuf>) -> Result<ExitCode, BoxError> {
    let _tmp;
    let work = match workdir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => {
            let tmp = tempfile::tempdir()?;
            let path = tmp.path().to_owned();
            _tmp = tmp;
            path
        }
    };
    println!("== jfiv audit demo in {}", work.display());
    let key_file = work.join("audit.key");
    let log_dir = work.join("audit-log");
    let keys = Arc::new(AuditKeys::generate_from_os());
    keys.save(&key_file)?;
    println!(
        "keys: {} (mode 0600), fingerprint {}",
        key_file.display(),
        keys.fingerprint()
    );

    let log = FileLog::create(&log_dir, keys.clone(), options())?;
    let now = chrono::Utc::now();
    let at = |minutes: i64| now + chrono::Duration::minutes(minutes);
    let vpn = |ip: &str| Origin::Remote {
        client_ip: ip.parse().unwrap_or(std::net::IpAddr::from([10, 8, 0, 1])),
        certificate_fingerprint: Some("5b9e0c1d7a3f42e8a1c6".into()),
    };
    let desk = Origin::Local {
        workstation: "amp-accueil-1".into(),
    };
    let server = Origin::System {
        host: "jfiv-db".into(),
    };
    let scenario = vec![
        AuditEvent::new(
            at(0),
            Actor::new("sec.durand", "secretary"),
            desk.clone(),
            Action::LoginSuccess,
        ),
        AuditEvent::new(
            at(2),
            Actor::new("sec.durand", "secretary"),
            desk.clone(),
            Action::RecordRead,
        )
        .with_record(RecordRef::patient("P000456")),
        AuditEvent::new(
            at(5),
            Actor::unprofiled("jdupont"),
            vpn("10.8.0.40"),
            Action::LoginFailure,
        )
        .with_outcome(Outcome::Refused)
        .with_details("wrong password (1/5)"),
        AuditEvent::new(
            at(9),
            Actor::new("dr.martin", "clinician"),
            vpn("10.8.0.12"),
            Action::LoginSuccess,
        ),
        AuditEvent::new(
            at(10),
            Actor::new("dr.martin", "clinician"),
            vpn("10.8.0.12"),
            Action::RecordRead,
        )
        .with_record(RecordRef::cycle("P000123", "FIV-2026-004")),
        AuditEvent::new(
            at(14),
            Actor::new("dr.martin", "clinician"),
            vpn("10.8.0.12"),
            Action::RecordWrite,
        )
        .with_record(RecordRef::cycle("P000123", "FIV-2026-004"))
        .with_details("ponction report"),
        AuditEvent::new(
            at(20),
            Actor::new("bio.leroy", "biologist"),
            desk.clone(),
            Action::RecordRead,
        )
        .with_record(RecordRef::patient("P000123")),
        AuditEvent::new(
            at(31),
            Actor::new("dr.martin", "clinician"),
            vpn("10.8.0.12"),
            Action::Logout,
        ),
        AuditEvent::new(
            at(600),
            Actor::new("nightly-backup", "system"),
            server.clone(),
            Action::BackupStarted,
        )
        .with_object("snapshot 2026-12-03"),
        AuditEvent::new(
            at(640),
            Actor::new("nightly-backup", "system"),
            server.clone(),
            Action::BackupFinished,
        )
        .with_object("snapshot 2026-12-03")
        .with_details("41.2 GiB, tape JFIV07L6"),
        AuditEvent::new(
            at(700),
            Actor::new("ops.bernard", "backup-operator"),
            desk,
            Action::TapeMoved,
        )
        .with_object("JFIV07L6")
        .with_details("server room -> offsite safe (building B, room 12)"),
    ];
    for event in scenario {
        log.append(event).await?;
    }
    println!("appended {} events", log.records());
    let checkpoint = log
        .checkpoint(Actor::new("ops.bernard", "backup-operator"))
        .await?;
    let checkpoint_file = work.join("checkpoint.json");
    checkpoint.write_to(&checkpoint_file)?;
    println!(
        "checkpoint: {} ({} records, head {})",
        checkpoint_file.display(),
        checkpoint.records,
        &checkpoint.chain[..16]
    );
    let history = log.query(&Query::patient("P000123")).await?;
    drop(log);

    let checkpoints = [Checkpoint::read_from(&checkpoint_file)?];
    let mut ok = true;
    match verify(&log_dir, &keys, &checkpoints) {
        Ok(report) => println!("verify: {report}"),
        Err(e) => {
            println!("verify: UNEXPECTED FAILURE: {e}");
            ok = false;
        }
    }
    println!("history of patient P000123 ({} events):", history.len());
    for r in &history {
        println!("  {r}");
    }
    ok &= history.len() == 3;

    // Tampering, on copies of the log.
    let period = period_file(&log_dir)?;
    let file_name = period.file_name().unwrap_or_default().to_owned();

    let modified = work.join("tampered-byte");
    copy_log(&log_dir, &modified)?;
    let path = modified.join(&file_name);
    let text = std::fs::read_to_string(&path)?;
    // The insider hides that dr.martin read P000123: one byte of the patient id, record 4.
    let target = text
        .lines()
        .position(|l| l.starts_with("{\"seq\":4,"))
        .ok_or("record 4 not found")?;
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == target {
                l.replacen("P000123", "P000124", 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n")?;
    println!("tamper 1: changed one byte of record 4 (P000123 -> P000124) in a copy");
    ok &= expect_failure(
        &modified,
        &keys,
        &checkpoints,
        |k| *k == IntegrityKind::MacMismatch,
        4,
    );

    let truncated = work.join("tampered-tail");
    copy_log(&log_dir, &truncated)?;
    let path = truncated.join(&file_name);
    let text = std::fs::read_to_string(&path)?;
    let kept: Vec<&str> = text.lines().collect();
    let kept = &kept[..kept.len() - 3];
    std::fs::write(&path, kept.join("\n") + "\n")?;
    println!("tamper 2: cut the last 3 records (tape move, checkpoint event...) of a copy");
    match verify(&truncated, &keys, &[]) {
        Ok(report) => println!("  without checkpoint (a hash chain alone cannot see it): {report}"),
        Err(e) => {
            println!("  without checkpoint: UNEXPECTED {e}");
            ok = false;
        }
    }
    ok &= expect_failure(
        &truncated,
        &keys,
        &checkpoints,
        |k| {
            matches!(
                k,
                IntegrityKind::Truncated { .. } | IntegrityKind::RolledBack { .. }
            )
        },
        checkpoint.records - 3,
    );

    if ok {
        println!("== demo: everything behaved as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("== demo: SOMETHING DID NOT BEHAVE AS EXPECTED");
        Ok(ExitCode::FAILURE)
    }
}

fn expect_failure(
    dir: &Path,
    keys: &AuditKeys,
    checkpoints: &[Checkpoint],
    kind: impl Fn(&IntegrityKind) -> bool,
    seq: u64,
) -> bool {
    match verify(dir, keys, checkpoints) {
        Err(e @ Error::Integrity { .. }) => {
            println!("  verify: detected: {e}");
            let expected = e.integrity_kind().is_some_and(&kind)
                && matches!(e, Error::Integrity { seq: Some(s), .. } if s == seq);
            if !expected {
                println!("  ...but not the expected kind or record (seq {seq})");
            }
            expected
        }
        other => {
            println!("  verify: NOT DETECTED as expected: {other:?}");
            false
        }
    }
}

fn period_file(dir: &Path) -> Result<PathBuf, BoxError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            return Ok(path);
        }
    }
    Err("no period file".into())
}

fn copy_log(from: &Path, to: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() != ".lock" {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

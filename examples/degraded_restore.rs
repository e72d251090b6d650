//! The degraded procedure: rebuild the JFIV server on a new root from the latest backups.
//!
//! ```text
//! # plan (dry run), run (resumes when run again), drill (into a scratch dir, with a report)
//! JFIV_PASSPHRASE=... cargo run --release --example degraded_restore -- \
//!     --lib /tmp/jfiv-lib --disk /tmp/jfiv-disk plan --root /srv/new-jfiv
//! JFIV_PASSPHRASE=... cargo run --release --example degraded_restore -- \
//!     --lib /tmp/jfiv-lib --disk /tmp/jfiv-disk run --root /srv/new-jfiv
//! cargo run --release --example degraded_restore -- --demo drill
//! # a site: library, disk target, key, catalog, register and audit log from its configuration
//! cargo run --release --example degraded_restore -- --config /etc/jfiv/hospital.toml \
//!     plan --root /srv/new-jfiv
//! ```
//!
//! `--lib` is a virtual tape library made by the `tape` example (`catalog.json`,
//! `locations.json`, `repository.key`); `--disk` a disk target made by the nightly backup.
//! `--catalog-lost` ignores `catalog.json` and rebuilds the catalog by scanning every tape.
//! The key file's passphrase is read from `JFIV_PASSPHRASE`, the paper key from a file
//! (`--paper-key-file`), never from the command line. `--demo` builds a small fake site in a
//! temporary directory and works on it.
//!
//! `--config FILE` (the site configuration, `examples/hospital.toml` format) takes the virtual
//! library, the tape catalog and location register, the disk target, the repository key file
//! and its passphrase (from the configured environment variable or file), the place names, the
//! source names and where the database goes under the new root from the site, and writes the
//! restore's audit events to the site's audit log. Explicit options win over the file.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use jfiv::audit::{Actor, AuditSink, MemorySink, Origin, SystemClock};
use jfiv::backup::tape::{Catalog, LocationConfig, LocationRegister, VirtualLibrary, scan_tape};
use jfiv::backup::{AuditHook, BackupTarget, DiskTarget};
use jfiv::nightly;
use jfiv::restore::{
    CatalogOrigin, ExecuteContext, ExecuteOptions, Inventory, KeyMaterial, KeyPlan, KeyProvider,
    LibraryTapes, RestoreEvent, RestorePlan, RestoreProgress, RestoreRequest, Scope, SecretString,
    Secrets, TapeAccess, demo, drill, execute,
};
use jfiv::site::SiteConfig;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The degraded procedure: plan (a dry run), run (resumable) or drill the restore of the JFIV
/// server onto a new root, from the latest verified backups on the disk target and the tapes.
///
/// With `--config FILE` (the site configuration, `examples/hospital.toml` format) the library,
/// catalog, location register, disk target, key file and passphrase, place names, source names
/// and the database's place under the new root come from the site, and the restore is audited
/// in the site's audit log.
#[derive(Parser)]
#[command(name = "degraded_restore", about, long_about)]
struct Cli {
    /// The site configuration file: library, disk, key, catalog, register and audit log from
    /// it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The virtual tape library directory (from the `tape` example).
    #[arg(long)]
    lib: Option<PathBuf>,
    /// The disk target directory.
    #[arg(long)]
    disk: Option<PathBuf>,
    /// The repository key file (default: `<lib>/repository.key`); its passphrase comes from
    /// `JFIV_PASSPHRASE`.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// A file holding the paper key text, when the key file is lost.
    #[arg(long)]
    paper_key_file: Option<PathBuf>,
    /// Ignore the tape catalog on disk and rebuild it by scanning every tape of the library.
    #[arg(long)]
    catalog_lost: bool,
    /// Do not verify the disk target before planning (its snapshots count as unverified).
    #[arg(long)]
    no_verify: bool,
    /// Build a small demo site in a temporary directory and work on it.
    #[arg(long)]
    demo: bool,
    /// What to restore.
    #[arg(long, value_enum, default_value_t = What::Whole)]
    scope: What,
    /// Restore the latest backup at or before this time (RFC 3339) instead of the latest.
    #[arg(long)]
    as_of: Option<chrono::DateTime<chrono::Utc>>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// Application files and database.
    Whole,
    /// The database only.
    Database,
    /// The application files only.
    Application,
}

#[derive(Subcommand)]
enum Command {
    /// Print the plan for "rebuild the server on a new root" (a dry run: nothing is written).
    Plan {
        /// The new root.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Print the plan as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Execute the plan; run it again after an interruption to continue where it stopped.
    Run {
        /// The new root.
        #[arg(long)]
        root: Option<PathBuf>,
        /// Checkpoint directory (default: `<root>.restore-state`).
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Full drill: restore into a scratch directory, check, time it, write the evidence report.
    Drill {
        /// Scratch directory (default: a new temporary directory).
        #[arg(long)]
        scratch: Option<PathBuf>,
        /// Where the JSON and Markdown reports go (default: the current directory).
        #[arg(long, default_value = ".")]
        reports: PathBuf,
    },
}

#[derive(Debug)]
struct Print;

impl RestoreProgress for Print {
    fn report(&self, event: &RestoreEvent<'_>) {
        match event {
            RestoreEvent::StepStarted { index, total, step } => {
                println!("[{}/{}] {}", index + 1, total, step.kind)
            }
            RestoreEvent::StepAlreadyDone { index, step } => {
                println!("[{}] already done: {}", index + 1, step.kind)
            }
            RestoreEvent::StepFinished {
                status, seconds, ..
            } => {
                println!("      -> {status:?} in {seconds:.2} s")
            }
            RestoreEvent::FileFailed { path, reason } => println!("      ! {path}: {reason}"),
            _ => {}
        }
    }
}

fn main() -> Res<()> {
    let mut cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let demo_dir = if cli.demo {
        Some(tempfile::tempdir()?)
    } else {
        None
    };
    let mut passphrase = std::env::var("JFIV_PASSPHRASE")
        .ok()
        .map(SecretString::from);
    // The configuration names files that burned with the server (the database, the key file,
    // the catalog): it is read without checking that they exist.
    let site = cli
        .config
        .as_deref()
        .map(SiteConfig::load_unchecked)
        .transpose()?;
    if let Some(site) = &site {
        cli.lib = cli
            .lib
            .take()
            .or_else(|| site.library_dir().map(Into::into));
        cli.disk = cli.disk.take().or_else(|| Some(site.disk.dir.clone()));
        cli.key_file = cli
            .key_file
            .take()
            .or_else(|| Some(site.keys.repository_key_file.clone()));
        // After a fire the passphrase's file may be gone with the server: the paper key is
        // then the way in (`--paper-key-file`).
        match site.keys.passphrase.read() {
            Ok(p) => passphrase = Some(p),
            Err(e) => println!(
                "the key file's passphrase is not available ({e}): the paper key is needed"
            ),
        }
    }
    // Where the catalog and the register are, and the names of the places.
    let (catalog_path, register_path, locations) = match (&site, &cli.lib) {
        (Some(site), _) => (
            Some(site.tape.catalog.clone()),
            Some(site.tape.register.clone()),
            nightly::locations_of(site),
        ),
        (None, Some(l)) => (
            Some(l.join("catalog.json")),
            Some(l.join("locations.json")),
            LocationConfig::default(),
        ),
        (None, None) => (None, None, LocationConfig::default()),
    };
    if let Some(d) = &demo_dir {
        let site = rt.block_on(demo::build_demo_site(d.path()))?;
        println!("demo site built in {} (fake data)", d.path().display());
        cli.disk = Some(site.disk_target);
        cli.key_file = Some(site.key_file);
        passphrase = Some(SecretString::from(demo::DEMO_PASSPHRASE));
    }
    let key_file = cli
        .key_file
        .clone()
        .or_else(|| cli.lib.as_ref().map(|l| l.join("repository.key")));
    let paper_key = match &cli.paper_key_file {
        Some(p) => Some(SecretString::from(std::fs::read_to_string(p)?)),
        None => None,
    };
    let secrets = Secrets {
        passphrase,
        paper_key,
    };
    // The key is needed to read the disk target's manifests before planning.
    let key_plan = match &key_file {
        Some(p) if p.exists() && secrets.passphrase.is_some() => {
            KeyPlan::KeyFile { path: p.clone() }
        }
        _ => KeyPlan::PaperKey {
            kept_at: "the hospital safe".into(),
        },
    };
    let key = secrets.key(&key_plan)?;

    let mut inventory = Inventory::default();
    let mut disk: Option<Arc<DiskTarget>> = None;
    if let Some(d) = &cli.disk {
        let target = Arc::new(DiskTarget::open_read_only(d)?);
        let verify = if cli.no_verify {
            None
        } else {
            println!("verifying the disk target {} ...", d.display());
            Some(rt.block_on(jfiv::backup::verify(
                target.as_ref(),
                &key,
                &jfiv::backup::VerifyOptions::default(),
            ))?)
        };
        let now = chrono::Utc::now();
        let place = site.as_ref().map_or_else(
            || format!("disk target {}", d.display()),
            |s| s.locations.offsite_room.clone(),
        );
        rt.block_on(inventory.add_disk_target(
            "disk",
            &place,
            target.as_ref(),
            &key,
            verify.as_ref().map(|v| (v, now)),
        ))?;
        disk = Some(target);
    }
    let library = match &cli.lib {
        Some(l) => Some(VirtualLibrary::open(l)?),
        None => None,
    };
    if let (Some(catalog_path), Some(register_path), Some(lib)) =
        (&catalog_path, &register_path, &library)
    {
        let register = LocationRegister::load(register_path)?;
        let (catalog, origin) = if cli.catalog_lost || !catalog_path.exists() {
            let mut c = Catalog::default();
            for barcode in lib.barcodes()? {
                match lib.load(&barcode) {
                    Ok(mut tape) => {
                        println!("scanning tape {barcode} ...");
                        c.merge_scan(&scan_tape(&mut tape)?);
                    }
                    Err(e) => println!(
                        "tape {barcode} not scanned ({e}): bring it back to the library if it is needed"
                    ),
                }
            }
            (c, CatalogOrigin::TapeScan)
        } else {
            (Catalog::load(catalog_path)?, CatalogOrigin::DiskCatalog)
        };
        inventory.add_tape_catalog(&catalog, &register, &locations, origin);
    }
    if let Some(p) = &key_file {
        inventory.keys.push(KeyMaterial::KeyFile {
            path: p.clone(),
            available: p.exists() && secrets.passphrase.is_some(),
        });
    }
    inventory.keys.push(KeyMaterial::PaperKey {
        kept_at: "the hospital safe".into(),
    });

    let default_root = |root: Option<PathBuf>| -> Res<PathBuf> {
        match (root, &demo_dir) {
            (Some(r), _) => Ok(r),
            (None, Some(d)) => Ok(d.path().join("new-root")),
            (None, None) => Err("give the new root with --root".into()),
        }
    };
    let root = match &cli.command {
        Command::Plan { root, .. } | Command::Run { root, .. } => default_root(root.clone())?,
        Command::Drill { .. } => PathBuf::from("/srv/jfiv-restored"),
    };
    let scope = match cli.scope {
        What::Whole => Scope::WholeServer,
        What::Database => Scope::DatabaseOnly,
        What::Application => Scope::ApplicationOnly,
    };
    let mut request = RestoreRequest::whole_server(&root).with_scope(scope);
    if let Some(site) = &site {
        request.application_source = site.application.name.clone();
        request.database_source = site.database.name().to_owned();
        if let Some(dir) = site.database_dir_in_server() {
            request.database_dir = dir;
        }
    }
    if let Some(at) = cli.as_of {
        request = request.as_of(at);
    }
    let plan = RestorePlan::compute(&inventory, &request, &SystemClock)?;

    let sink = Arc::new(MemorySink::new());
    // With --config the restore is audited in the site's log; otherwise the events are kept
    // in memory and appended to `audit-restore.jsonl` at the end.
    let audit_sink: Arc<dyn AuditSink> = match &site {
        Some(site) => Arc::new(nightly::open_audit(site, Arc::new(SystemClock))?),
        None => sink.clone(),
    };
    let audit = AuditHook {
        sink: audit_sink,
        actor: Actor::new(
            std::env::var("USER").unwrap_or_else(|_| "operator".into()),
            "backup-operator",
        ),
        origin: Origin::System {
            host: site
                .as_ref()
                .map_or_else(jfiv::backup::hostname, |s| s.site.host.clone()),
        },
        clock: Arc::new(SystemClock),
    };
    let mut tapes = library.map(LibraryTapes::new);
    let disk_targets = disk
        .into_iter()
        .map(|t| ("disk".to_owned(), t as Arc<dyn BackupTarget>))
        .collect();
    let tape_access = tapes.as_mut().map(|t| t as &mut dyn TapeAccess);
    let scratch_holder;
    match cli.command {
        Command::Plan { json, .. } => {
            if json {
                println!("{}", plan.to_json()?);
            } else {
                println!("{plan}");
            }
        }
        Command::Run { state, .. } => {
            let state = state.unwrap_or_else(|| root.with_extension("restore-state"));
            println!("{plan}");
            let mut ctx = ExecuteContext {
                keys: &secrets,
                disk_targets,
                tapes: tape_access,
                database_hooks: Vec::new(),
                audit,
                progress: &Print,
                options: ExecuteOptions::new(&state),
            };
            let report = rt.block_on(execute(&plan, &mut ctx))?;
            for l in report.lost_files() {
                println!("NOT RESTORED: {} ({})", l.path, l.reason);
            }
            for c in report.checks() {
                println!("check {}: {}", c.name, if c.ok { "ok" } else { "FAILED" });
            }
            println!(
                "restore {} in {:.1} s (state in {})",
                if report.is_complete() {
                    "complete"
                } else {
                    "INCOMPLETE"
                },
                report.seconds,
                state.display()
            );
            if site.is_none() {
                write_audit(&state, &sink)?;
            }
            if !report.is_complete() {
                std::process::exit(1);
            }
        }
        Command::Drill { scratch, reports } => {
            let scratch = match scratch {
                Some(s) => s,
                None => {
                    scratch_holder = tempfile::tempdir()?;
                    scratch_holder.path().to_path_buf()
                }
            };
            let state = scratch.with_extension("drill-state");
            let mut ctx = ExecuteContext {
                keys: &secrets,
                disk_targets,
                tapes: tape_access,
                database_hooks: Vec::new(),
                audit,
                progress: &Print,
                options: ExecuteOptions::new(&state),
            };
            let (report, files) = rt.block_on(drill(&plan, &mut ctx, &scratch, &reports))?;
            println!(
                "drill {}: measured RTO {:.1} s (estimated {:.0} s); reports {} and {}",
                if report.passed { "PASSED" } else { "FAILED" },
                report.measured_rto_secs,
                report.estimated_rto_secs,
                files.json.display(),
                files.markdown.display()
            );
            let _ = std::fs::remove_dir_all(&state);
            if site.is_none() {
                write_audit(&reports, &sink)?;
            }
            if !report.passed {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

/// Appends this run's audit events to `<dir>/audit-restore.jsonl` (a site sends them to its
/// audit log).
fn write_audit(dir: &std::path::Path, sink: &MemorySink) -> Res<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("audit-restore.jsonl"))?;
    for r in sink.snapshot() {
        writeln!(f, "{}", serde_json::to_string(&r.event)?)?;
    }
    f.sync_all()?;
    Ok(())
}

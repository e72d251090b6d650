//! The tape procedure on a virtual library: label tapes, see the inventory, record moves
//! between the drive, the server room and the offsite room, write tonight's backup, verify it,
//! rebuild the catalog from the tapes, and check that the tapes are in the right room.
//!
//! ```text
//! cargo run --release --example tape -- --lib /tmp/jfiv-lib init --slots 8
//! cargo run --release --example tape -- --lib /tmp/jfiv-lib label --barcode JFV001L6 --pool daily
//! JFIV_PASSPHRASE=... cargo run --release --example tape -- --lib /tmp/jfiv-lib write --source /var/lib/jfiv
//! cargo run --release --example tape -- --lib /tmp/jfiv-lib move --tape JFV001L6 --to offsite --by op.durand
//! cargo run --release --example tape -- --lib /tmp/jfiv-lib check
//! # a site's library, catalog, location register, pools, places, key and audit log:
//! cargo run --release --example tape -- --config /etc/jfiv/hospital.toml inventory
//! ```
//!
//! The library directory holds `library.json` and `tapes/*.vtape` (the virtual library),
//! `catalog.json` (the tape catalog), `locations.json` (where each tape is, with its history),
//! `audit-tape.jsonl` (the audit events of this example; a site sends them to its audit log) and
//! `repository.key` (the key file, sealed with the passphrase read from `JFIV_PASSPHRASE`, never
//! from the command line).
//!
//! With `--config FILE` (the site configuration, `examples/hospital.toml` format) everything
//! comes from the site instead: the virtual library of `[tape] library`, the catalog and the
//! location register of `[tape]`, the rotation of `[tape.pools]`, the place names of
//! `[locations]`, the repository key of `[keys]` (its passphrase from the configured
//! environment variable or file) and the audit log of `[audit]`, where every tape move goes.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use jfiv::audit::{AuditSink, Clock, MemorySink, Query, SystemClock};
use jfiv::backup::tape::{
    Catalog, ChangerPurpose, Custody, LibraryChanger, LocationConfig, LocationRegister, MediaLabel,
    OwnedLibraryChanger, Place, Pool, RestoreFromTape, RotationPolicy, SessionOptions, TapeJob,
    Uuid, VirtualLibrary, VirtualTapeSpec, WritePosition, backup_to_tape, check_locations, format,
    label_tape, media, plan_tonight, restore_session, scan_tape, verify_session,
};
use jfiv::backup::{
    BackupOptions, DirectorySource, ExtractOptions, KdfParams, KeyFile, NoProgress, RepositoryKey,
    Selection,
};
use jfiv::nightly;
use jfiv::site::SiteConfig;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Tapes of the JFIV database backup, on a virtual library directory: create the library,
/// label cartridges, list the inventory, record moves between the drive, the server room and
/// the offsite room (audited), write tonight's backup (continuing on the next tapes of the pool
/// if it does not fit), verify a session, rebuild the catalog from the tapes, check the rooms,
/// restore a session.
///
/// With `--config FILE` (the site configuration, `examples/hospital.toml` format) the library,
/// catalog, location register, pools, place names, repository key and audit log are the
/// site's.
#[derive(Parser)]
#[command(name = "tape", about, long_about)]
struct Cli {
    /// The virtual library directory (default: `jfiv-tape-library`, or the site's with
    /// --config).
    #[arg(long)]
    lib: Option<PathBuf>,
    /// The site configuration file: library, catalog, register, pools, places, key and audit
    /// log from it.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty virtual library with named slots.
    Init {
        /// Number of slots (named slot-01, slot-02...).
        #[arg(long, default_value_t = 8)]
        slots: usize,
    },
    /// Create a blank cartridge (if needed) and write its jfiv label (refused while its retention runs).
    Label {
        /// The barcode.
        #[arg(long)]
        barcode: String,
        /// daily, weekly or monthly.
        #[arg(long)]
        pool: String,
        /// Capacity of a new virtual cartridge, in MB.
        #[arg(long, default_value_t = 2048)]
        capacity_mb: u64,
        /// Relabel a jfiv tape the catalog does not know.
        #[arg(long)]
        force: bool,
    },
    /// List the tapes: pool, slot, location, sessions, verification, expiry.
    Inventory,
    /// Record that a tape was moved (chain of custody, audited).
    Move {
        /// The barcode.
        #[arg(long)]
        tape: String,
        /// drive, server-room or offsite.
        #[arg(long)]
        to: String,
        /// Who moved it (personal user id).
        #[arg(long)]
        by: String,
    },
    /// Back a directory up to tonight's tape (chosen by the rotation), then verify it.
    Write {
        /// The directory to back up (e.g. the database export directory).
        #[arg(long)]
        source: PathBuf,
        /// The source name recorded on the tape and in the catalog. Not the site's database
        /// source name: a restore plan would take this directory for the database.
        #[arg(long, default_value = "tape-example")]
        name: String,
        /// Skip the read-back verification (not recommended).
        #[arg(long)]
        no_verify: bool,
    },
    /// Read a session back and authenticate every chunk with the key.
    Verify {
        /// The tape holding the session's first volume.
        #[arg(long)]
        tape: String,
        /// The tape file of the session (1 for the first session after the label).
        #[arg(long, default_value_t = 1)]
        file: u64,
    },
    /// Rebuild the catalog from the tapes alone (when the disk catalog is lost).
    Scan,
    /// Report tapes in the wrong room (last night's still near the server, tonight's offsite).
    Check,
    /// Restore a session into a directory.
    Restore {
        /// The tape holding the session's first volume.
        #[arg(long)]
        tape: String,
        /// The tape file of the session.
        #[arg(long, default_value_t = 1)]
        file: u64,
        /// Destination directory.
        #[arg(long)]
        to: PathBuf,
    },
}

struct Site {
    dir: PathBuf,
    catalog: PathBuf,
    register: PathBuf,
    policy: RotationPolicy,
    places: LocationConfig,
    host: String,
    /// The site configuration, with --config.
    config: Option<SiteConfig>,
}

impl Site {
    fn new(lib: Option<PathBuf>, config: Option<&std::path::Path>) -> Res<Self> {
        let Some(config) = config else {
            let dir = lib.unwrap_or_else(|| PathBuf::from("jfiv-tape-library"));
            return Ok(Self {
                catalog: dir.join("catalog.json"),
                register: dir.join("locations.json"),
                dir,
                policy: RotationPolicy::default(),
                places: LocationConfig::default(),
                host: jfiv::backup::hostname(),
                config: None,
            });
        };
        // Read without checking the server's files: after a fire `scan` rebuilds the catalog
        // from the tapes while the key file and the catalog are gone.
        let site = SiteConfig::load_unchecked(config)?;
        let dir = match (lib, site.library_dir()) {
            (Some(lib), _) => lib,
            (None, Some(dir)) => dir.to_owned(),
            (None, None) => {
                return Err(format!(
                    "{}: the site's tapes are a drive ([tape] device), this example works on a virtual library ([tape] library)",
                    config.display()
                )
                .into());
            }
        };
        Ok(Self {
            dir,
            catalog: site.tape.catalog.clone(),
            register: site.tape.register.clone(),
            policy: nightly::rotation_of(&site),
            places: nightly::locations_of(&site),
            host: site.site.host.clone(),
            config: Some(site),
        })
    }
    fn catalog(&self) -> Res<Catalog> {
        Ok(Catalog::load(&self.catalog)?)
    }
    fn save_catalog(&self, c: &Catalog) -> Res<()> {
        if let Some(dir) = self.catalog.parent() {
            // The state directory of a rebuilt server may not exist yet.
            std::fs::create_dir_all(dir)?;
        }
        Ok(c.save(&self.catalog)?)
    }
    fn register(&self) -> Res<LocationRegister> {
        Ok(LocationRegister::load(&self.register)?)
    }
    fn save_register(&self, r: &LocationRegister) -> Res<()> {
        if let Some(dir) = self.register.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(r.save(&self.register)?)
    }
    fn key(&self) -> Res<RepositoryKey> {
        if let Some(site) = &self.config {
            return Ok(nightly::open_key(site)?);
        }
        let pass = std::env::var("JFIV_PASSPHRASE")
            .map_err(|_| "set JFIV_PASSPHRASE to the key file's passphrase")?;
        let pass = secrecy::SecretString::from(pass);
        let path = self.dir.join("repository.key");
        if path.exists() {
            Ok(KeyFile::read(&path)?.open(&pass)?)
        } else {
            let key = RepositoryKey::generate();
            KeyFile::seal(&key, &pass, KdfParams::default())?.write(&path)?;
            println!(
                "created the repository key file {} (print its paper key for the safe)",
                path.display()
            );
            Ok(key)
        }
    }
    /// Appends the audit events of this run to the site's audit log (with --config) or to
    /// `audit-tape.jsonl`.
    async fn keep_audit(&self, sink: &MemorySink, clock: Arc<dyn Clock>) -> Res<()> {
        use std::io::Write as _;
        if let Some(site) = &self.config {
            let log = nightly::open_audit(site, clock)?;
            for r in sink.query(&Query::all()).await? {
                log.append(r.event).await?;
            }
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("audit-tape.jsonl"))?;
        for r in sink.query(&Query::all()).await? {
            writeln!(f, "{}", serde_json::to_string(&r.event)?)?;
        }
        f.sync_all()?;
        Ok(())
    }
}

fn tonight(site: &Site, catalog: &Catalog, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    plan_tonight(&catalog.inventory(), &site.policy, now)
        .ok()
        .map(|p| p.tape)
}

fn main() -> Res<()> {
    let cli = Cli::parse();
    let site = Site::new(cli.lib.clone(), cli.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let host = site.host.clone();
    match cli.command {
        Command::Init { slots } => {
            let names: Vec<String> = (1..=slots).map(|i| format!("slot-{i:02}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            VirtualLibrary::create(&site.dir, &refs)?;
            println!("library with {slots} slots in {}", site.dir.display());
        }
        Command::Label {
            barcode,
            pool,
            capacity_mb,
            force,
        } => {
            let pool: Pool = pool.parse()?;
            let mut lib = VirtualLibrary::open(&site.dir)?;
            if !lib.image_path(&barcode).exists() {
                let slot = lib
                    .slots()
                    .find(|(_, b)| b.is_none())
                    .map(|(s, _)| s.to_owned())
                    .ok_or("no free slot")?;
                lib.add_tape(
                    &slot,
                    &VirtualTapeSpec {
                        barcode: barcode.clone(),
                        capacity: capacity_mb * 1_000_000,
                        early_warning_zone: (capacity_mb * 1_000_000 / 4).min(64 << 20),
                    },
                )?;
            }
            let mut catalog = site.catalog()?;
            let label = MediaLabel::new(Uuid::new_v4(), &barcode, pool, now);
            let mut tape = lib.load(&barcode)?;
            label_tape(
                &mut tape,
                &label,
                &catalog.inventory(),
                &site.policy,
                now,
                force,
            )?;
            catalog.add_label(label);
            site.save_catalog(&catalog)?;
            let sink = MemorySink::new();
            let mut reg = site.register()?;
            let custody = Custody {
                config: &site.places,
                clock: &*clock,
                sink: &sink,
                host: &host,
            };
            if reg.place_of(&barcode).is_none() {
                rt.block_on(reg.record_move(
                    &barcode,
                    Place::ServerRoom,
                    "tape-example",
                    &custody,
                ))?;
                site.save_register(&reg)?;
            }
            rt.block_on(site.keep_audit(&sink, clock.clone()))?;
            println!("labelled {barcode}");
        }
        Command::Inventory => {
            let lib = VirtualLibrary::open(&site.dir)?;
            let catalog = site.catalog()?;
            let reg = site.register()?;
            let next = tonight(&site, &catalog, now);
            println!(
                "tonight's tape: {}",
                next.as_deref().unwrap_or("none available")
            );
            for info in catalog.inventory() {
                let b = &info.label.barcode;
                println!(
                    "{b}  pool {}  slot {}  location {}  last written {}  expires {}",
                    info.label.pool,
                    lib.slot_of(b).unwrap_or("-"),
                    reg.place_of(b).map_or("unknown", |p| site.places.name(p)),
                    info.last_written.map_or("never".into(), |w| w.to_rfc3339()),
                    info.expires(&site.policy)
                        .map_or("-".into(), |e| e.to_rfc3339()),
                );
                for s in catalog.sessions_on(b) {
                    let v = s.catalog.volumes.iter().find(|v| &v.tape == b);
                    println!(
                        "    file {}  snapshot {}  {} chunks  {} bytes  {}  {}",
                        v.map_or(0, |v| v.file),
                        s.catalog.snapshot,
                        s.catalog.chunks,
                        s.catalog.chunk_bytes,
                        if s.complete { "complete" } else { "INCOMPLETE" },
                        s.verifications
                            .last()
                            .map_or("not verified".into(), |r| if r.ok {
                                format!("verified {}", r.at.to_rfc3339())
                            } else {
                                format!("VERIFY FAILED: {}", r.error.clone().unwrap_or_default())
                            }),
                    );
                }
            }
        }
        Command::Move { tape, to, by } => {
            let place = site.places.parse(&to)?;
            let mut lib = VirtualLibrary::open(&site.dir)?;
            let mut reg = site.register()?;
            let sink = MemorySink::new();
            let custody = Custody {
                config: &site.places,
                clock: &*clock,
                sink: &sink,
                host: &host,
            };
            let mv = rt.block_on(reg.record_move(&tape, place, &by, &custody))?;
            site.save_register(&reg)?;
            rt.block_on(site.keep_audit(&sink, clock.clone()))?;
            match place {
                Place::Offsite if lib.slot_of(&tape).is_some() => lib.take_out(&tape)?,
                Place::Drive | Place::ServerRoom if lib.slot_of(&tape).is_none() => {
                    let slot = lib
                        .slots()
                        .find(|(_, b)| b.is_none())
                        .map(|(s, _)| s.to_owned())
                        .ok_or("no free slot")?;
                    lib.put_in(&tape, &slot)?;
                }
                _ => {}
            }
            println!(
                "{tape}: {} -> {} by {} at {}",
                mv.from.map_or("?", |p| site.places.name(p)),
                site.places.name(mv.to),
                mv.by,
                mv.at
            );
        }
        Command::Write {
            source,
            name,
            no_verify,
        } => {
            let key = site.key()?;
            let lib = VirtualLibrary::open(&site.dir)?;
            let mut catalog = site.catalog()?;
            let inventory = catalog.inventory();
            let plan = plan_tonight(&inventory, &site.policy, now)?;
            println!(
                "tonight ({}): pool {}, tape {} ({:?})",
                plan.night, plan.pool, plan.tape, plan.choice
            );
            let mut device = lib.load(&plan.tape)?;
            let label =
                media::identify_for_writing(&mut device, &plan, &inventory, &site.policy, now)?;
            let others: Vec<String> = inventory
                .iter()
                .filter(|m| m.label.pool == plan.pool && m.label.barcode != plan.tape)
                .map(|m| m.label.barcode.clone())
                .collect();
            // The job owns its changers: they share one handle on the library.
            let changer_lib = Arc::new(VirtualLibrary::open(&site.dir)?);
            let changer = OwnedLibraryChanger::new(
                changer_lib.clone(),
                others,
                ChangerPurpose::Write {
                    inventory: inventory.clone(),
                    policy: site.policy.clone(),
                    now,
                },
            );
            let options = SessionOptions {
                snapshot: "nightly".into(),
                source: name.clone(),
                host: host.clone(),
                pool: plan.pool.clone(),
                block_size: format::MAX_BLOCK_SIZE,
                position: WritePosition::AfterLabel,
            };
            let src = DirectorySource::new(name.clone()).root_as(&source, name.as_str());
            let all = lib.barcodes()?;
            let verify_changer = OwnedLibraryChanger::new(changer_lib, all, ChangerPurpose::Read);
            let mut job = TapeJob::new(
                Box::new(device),
                label,
                options,
                Box::new(changer),
                Box::new(verify_changer),
                Arc::clone(&clock),
            );
            job.verify = !no_verify;
            let started = std::time::Instant::now();
            let done = rt.block_on(backup_to_tape(
                &src,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
                job,
            ))?;
            let secs = started.elapsed().as_secs_f64();
            catalog.record_session(&done.summary);
            let (report, summary) = (&done.backup, &done.summary);
            println!(
                "snapshot {} written: {} files, {} MB read in {secs:.1} s, volumes {:?}",
                report.manifest.snapshot,
                report.stats.files,
                report.stats.bytes_read / 1_000_000,
                summary
                    .catalog
                    .volumes
                    .iter()
                    .map(|v| (&v.tape, v.file))
                    .collect::<Vec<_>>()
            );
            match done.verification {
                Some(v) => {
                    println!(
                        "read-back verification: {} ({} chunks in {:.1} s)",
                        if v.ok {
                            "OK".to_owned()
                        } else {
                            format!("FAILED: {}", v.error.clone().unwrap_or_default())
                        },
                        v.chunks,
                        v.seconds
                    );
                    catalog.record_verify(summary.catalog.session, v)?;
                }
                None => println!(
                    "read-back verification skipped (--no-verify): the session is NOT verified"
                ),
            }
            site.save_catalog(&catalog)?;
        }
        Command::Verify { tape, file } => {
            let key = site.key()?;
            let lib = VirtualLibrary::open(&site.dir)?;
            let mut catalog = site.catalog()?;
            verify(&site, &lib, &key, &tape, file, &mut catalog, &*clock)?;
        }
        Command::Scan => {
            let lib = VirtualLibrary::open(&site.dir)?;
            let mut catalog = Catalog::default();
            for b in lib.barcodes()? {
                match lib.load(&b) {
                    Ok(mut t) => {
                        let scan = scan_tape(&mut t)?;
                        for f in &scan.files {
                            println!(
                                "{b} file {}: {}",
                                f.file,
                                f.error.clone().unwrap_or_else(|| format!(
                                    "{} chunks, snapshots {:?}",
                                    f.chunks, f.snapshots
                                ))
                            );
                        }
                        catalog.merge_scan(&scan);
                    }
                    Err(e) => println!("{b}: not scanned ({e}); bring it back to the library"),
                }
            }
            site.save_catalog(&catalog)?;
            println!(
                "catalog rebuilt: {} tapes, {} sessions",
                catalog.tapes.len(),
                catalog.sessions.len()
            );
        }
        Command::Check => {
            let catalog = site.catalog()?;
            let reg = site.register()?;
            let next = tonight(&site, &catalog, now);
            let alerts = check_locations(&reg, &catalog, next.as_deref(), &site.places, now);
            if alerts.is_empty() {
                println!("OK: every tape is where the procedure wants it");
            }
            for a in &alerts {
                println!("ALERT: {}", serde_json::to_string(a)?);
            }
            if !alerts.is_empty() {
                std::process::exit(1);
            }
        }
        Command::Restore { tape, file, to } => {
            let key = site.key()?;
            let lib = VirtualLibrary::open(&site.dir)?;
            let mut reader = LibraryChanger::new(&lib, lib.barcodes()?, ChangerPurpose::Read);
            let report = restore_session(
                Box::new(lib.load(&tape)?),
                file,
                &mut reader,
                &key,
                RestoreFromTape {
                    manifest: None,
                    selection: &Selection::all(),
                    dest: &to,
                    options: ExtractOptions::default(),
                },
            )?;
            println!(
                "restored {} files ({} bytes); {} failed",
                report.files,
                report.bytes,
                report.failed.len()
            );
        }
    }
    Ok(())
}

fn verify(
    site: &Site,
    lib: &VirtualLibrary,
    key: &RepositoryKey,
    tape: &str,
    file: u64,
    catalog: &mut Catalog,
    clock: &dyn Clock,
) -> Res<()> {
    let mut reader = LibraryChanger::new(lib, lib.barcodes()?, ChangerPurpose::Read);
    let v = verify_session(Box::new(lib.load(tape)?), file, &mut reader, key, clock)?;
    let id = catalog
        .sessions
        .values()
        .find(|s| {
            s.catalog
                .volumes
                .first()
                .is_some_and(|v| v.tape == tape && v.file == file)
        })
        .map(|s| s.catalog.session);
    println!(
        "verify {tape} file {file}: {} ({} chunks, {:.0} MB/s)",
        if v.result.ok {
            "OK".to_owned()
        } else {
            format!("FAILED: {}", v.result.error.clone().unwrap_or_default())
        },
        v.result.chunks,
        v.result.bytes as f64 / 1e6 / v.result.seconds.max(1e-9)
    );
    if let Some(id) = id {
        catalog.record_verify(id, v.result)?;
        site.save_catalog(catalog)?;
    }
    Ok(())
}

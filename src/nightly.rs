//! The nightly job: the database to tonight's tape (read back and verified), the application
//! server to the disk target in the other room, retention, a verification slice of the disk,
//! an audit checkpoint; every step audited, a JSON report written.
//!
//! [`run`] does it all for a [`SiteConfig`]; the `nightly_backup` example is a thin `main`
//! around it. A failing step does not stop the independent ones (a broken tape drive must not
//! cost the application backup), and the report says which failed.
//!
//! The database step backs up the configured kind: the SQLite file (online copy with SQLite's
//! backup API) or, with the `oracle` feature, the Oracle schema exported logically as of one SCN
//! (`jfiv_backup::logical::OracleSchemaSource`, the password read from its environment
//! variable or root-only file, never the command line). A session larger than tonight's tape
//! continues on the next writable tapes of the same pool of a virtual library (the changer
//! checks each one's label and retention); every tape is recorded in the catalog, the location
//! register and the report. If no other tape can be had the step fails, says why, and the
//! catalog forgets what the overwritten tapes held.
//!
//! Limits (not implemented yet): a standalone drive (`tape.device`) has no changer, so a session
//! that does not fit on its one tape ends incomplete; the Oracle kind has only been run against
//! a mocked connection and, when `JFIV_TEST_ORACLE` is set, a real server (not at a hospital).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use jfiv_audit::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, Clock, FileLog, FileLogOptions, Origin,
    Outcome,
};
use jfiv_backup::tape::{
    Catalog, ChangerJournal, ChangerLog, ChangerPurpose, LocationConfig, LocationRegister,
    MediaInfo, NoMoreTapes, OwnedLibraryChanger, Place as TapePlace, Pool, RotationPolicy,
    SessionOptions, TapeDevice, TapeJob, TonightPlan, VirtualLibrary, VolumeChanger, WritePosition,
    backup_to_tape, plan_tonight,
};
use jfiv_backup::{
    AuditHook, BackupOptions, DirectorySource, DiskTarget, GcOptions, KeyFile, Progress,
    RepositoryKey, RetentionPolicy, Sample, Source, SqliteSource, VerifyOptions, latest_snapshot,
    list_snapshots, plan_retention, prune,
};
use serde::{Deserialize, Serialize};

use crate::site::{DatabaseConfig, Place, SiteConfig, TapeBackend};

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Its name (`database-to-tape`, `application-to-disk`, `retention`, `disk-verify`,
    /// `audit-checkpoint`).
    pub name: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// What it did, or why it failed.
    pub details: String,
}

/// The database backup of the night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseResult {
    /// Source name.
    pub source: String,
    /// The snapshot.
    pub snapshot: String,
    /// Tonight's tape (the session's first volume).
    pub tape: String,
    /// Every tape of the session, in volume order (more than one when it did not fit).
    #[serde(default)]
    pub tapes: Vec<String>,
    /// The tape session.
    pub session: String,
    /// Bytes read.
    pub bytes: u64,
    /// The manifest's database engine (`sqlite`, `oracle-logical-dump`).
    #[serde(default)]
    pub engine: String,
    /// Rows per table at backup time.
    pub row_counts: std::collections::BTreeMap<String, u64>,
    /// Whether the read-back verification passed.
    pub verified: bool,
    /// When the backup finished.
    pub finished: DateTime<Utc>,
}

/// The application backup of the night.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplicationResult {
    /// Source name.
    pub source: String,
    /// The snapshot.
    pub snapshot: String,
    /// Files in it.
    pub files: u64,
    /// Bytes read (files not reused).
    pub bytes_read: u64,
    /// Files reused unchanged from the previous snapshot.
    pub files_reused: u64,
    /// Warnings (skipped special files, files changed while read).
    pub warnings: Vec<String>,
    /// Whether every chunk of the snapshot was read back and authenticated tonight.
    pub verified: bool,
    /// When the backup finished.
    pub finished: DateTime<Utc>,
}

/// The machine-readable report of a night (`--json-report`, and `<state_dir>/last-nightly.json`
/// read by `check_backup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NightlyReport {
    /// The site.
    pub site: String,
    /// The host.
    pub host: String,
    /// Who ran it.
    pub operator: String,
    /// Start.
    pub started: DateTime<Utc>,
    /// End.
    pub finished: DateTime<Utc>,
    /// Whether every step succeeded.
    pub ok: bool,
    /// Every step, in order.
    pub steps: Vec<StepResult>,
    /// The database backup, if it was written.
    pub database: Option<DatabaseResult>,
    /// The application backup, if it was written.
    pub application: Option<ApplicationResult>,
}

impl NightlyReport {
    /// The names of the failed steps.
    pub fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| s.name.clone())
            .collect()
    }

    /// The exit status of the `nightly_backup` job: 0 when every step succeeded, 1 otherwise
    /// (2 is for a job that could not start, which has no report).
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }

    /// A human summary, one line per step.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} nightly backup on {} by {}: {} ({:.1} s)\n",
            self.site,
            self.host,
            self.operator,
            if self.ok { "OK" } else { "FAILED" },
            (self.finished - self.started).num_milliseconds() as f64 / 1000.0
        );
        for s in &self.steps {
            out.push_str(&format!(
                "  [{}] {:<20} {:>6.1} s  {}\n",
                if s.ok { " ok " } else { "FAIL" },
                s.name,
                s.seconds,
                s.details
            ));
        }
        out
    }
}

/// The last successful and verified backup of each source (`<state_dir>/backup-history.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupHistory {
    /// Source name -> when its last verified backup finished.
    pub last_verified: std::collections::BTreeMap<String, DateTime<Utc>>,
}

/// Something the nightly job cannot even start without.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NightlyError {
    /// The audit trail cannot be opened: nothing runs unaudited.
    #[error("the audit trail cannot be opened: {0}")]
    Audit(#[from] jfiv_audit::Error),
    /// The repository key cannot be opened.
    #[error("the repository key cannot be opened: {0}")]
    Key(String),
    /// A state file cannot be written.
    #[error("{}: {reason}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Receives what the job does, for a progress bar or log lines.
pub trait Observer: std::fmt::Debug + Send + Sync {
    /// A step starts.
    fn step_started(&self, name: &str);
    /// A step ended.
    fn step_finished(&self, step: &StepResult);
    /// The progress sink the backup engine reports to during the current step.
    fn progress(&self) -> &dyn Progress;
}

/// Plain log lines on standard error (what systemd's journal gets).
#[derive(Debug, Default)]
pub struct LogLines;

impl Observer for LogLines {
    fn step_started(&self, name: &str) {
        eprintln!("jfiv-nightly: {name}: started");
    }
    fn step_finished(&self, step: &StepResult) {
        eprintln!(
            "jfiv-nightly: {}: {} in {:.1} s: {}",
            step.name,
            if step.ok { "ok" } else { "FAILED" },
            step.seconds,
            step.details
        );
    }
    fn progress(&self) -> &dyn Progress {
        &jfiv_backup::NoProgress
    }
}

/// The rotation policy of a site.
pub fn rotation_of(site: &SiteConfig) -> RotationPolicy {
    let d = RotationPolicy::default();
    let days = |p: &str, default: u32| site.tape.pools.get(p).copied().unwrap_or(default);
    RotationPolicy {
        weekly_day: site.tape.weekly_day,
        daily_retention_days: days("daily", d.daily_retention_days),
        weekly_retention_days: days("weekly", d.weekly_retention_days),
        monthly_retention_days: days("monthly", d.monthly_retention_days),
        ..d
    }
}

/// The tape crate's location configuration of a site.
pub fn locations_of(site: &SiteConfig) -> LocationConfig {
    LocationConfig {
        drive: site.locations.drive.clone(),
        server_room: site.locations.server_room.clone(),
        offsite_room: site.locations.offsite_room.clone(),
        leave_server_room_by: site.locations.leave_server_room_by,
    }
}

/// The tape crate's place for a configured place.
pub fn tape_place(place: Place) -> TapePlace {
    match place {
        Place::Drive => TapePlace::Drive,
        Place::ServerRoom => TapePlace::ServerRoom,
        Place::Offsite => TapePlace::Offsite,
    }
}

/// The configured place for a tape crate's place.
pub fn site_place(place: TapePlace) -> Place {
    match place {
        TapePlace::Drive => Place::Drive,
        TapePlace::ServerRoom => Place::ServerRoom,
        TapePlace::Offsite => Place::Offsite,
    }
}

/// Opens the site's audit log.
///
/// # Errors
/// The audit crate's errors (missing key file, a log that does not verify).
pub fn open_audit(site: &SiteConfig, clock: Arc<dyn Clock>) -> Result<FileLog, NightlyError> {
    let keys = Arc::new(AuditKeys::load(&site.audit.key_file)?);
    let options = FileLogOptions::new().clock(clock).origin(Origin::System {
        host: site.site.host.clone(),
    });
    Ok(FileLog::open_or_create(&site.audit.dir, keys, options)?)
}

/// Opens the repository key with the configured passphrase.
///
/// # Errors
/// [`NightlyError::Key`]: passphrase unavailable, wrong passphrase, unreadable file.
pub fn open_key(site: &SiteConfig) -> Result<RepositoryKey, NightlyError> {
    let passphrase = site
        .keys
        .passphrase
        .read()
        .map_err(|e| NightlyError::Key(e.to_string()))?;
    KeyFile::read(&site.keys.repository_key_file)
        .and_then(|f| f.open(&passphrase))
        .map_err(|e| NightlyError::Key(e.to_string()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NightlyError> {
    let state = |reason: String| NightlyError::State {
        path: path.to_owned(),
        reason,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| state(e.to_string()))?;
    }
    let json = serde_json::to_vec_pretty(value).map_err(|e| state(e.to_string()))?;
    jfiv_backup::tape::catalog::write_atomically(path, &json).map_err(|e| state(e.to_string()))
}

/// Reads a JSON state file; a missing file is the default value.
///
/// # Errors
/// [`NightlyError::State`] for an unreadable or malformed file.
pub fn read_json<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> Result<T, NightlyError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| NightlyError::State {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(NightlyError::State {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// `<state_dir>/last-nightly.json`.
pub fn last_report_path(site: &SiteConfig) -> PathBuf {
    site.site.state_dir.join("last-nightly.json")
}

/// `<state_dir>/backup-history.json`.
pub fn history_path(site: &SiteConfig) -> PathBuf {
    site.site.state_dir.join("backup-history.json")
}

struct Ctx<'a> {
    site: &'a SiteConfig,
    key: RepositoryKey,
    sink: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
    actor: Actor,
    origin: Origin,
}

impl Ctx<'_> {
    fn hook(&self) -> AuditHook {
        AuditHook {
            sink: self.sink.clone(),
            actor: self.actor.clone(),
            origin: self.origin.clone(),
            clock: self.clock.clone(),
        }
    }

    fn options(&self) -> BackupOptions {
        BackupOptions {
            host: self.site.site.host.clone(),
            clock: self.clock.clone(),
            audit: Some(self.hook()),
            ..BackupOptions::default()
        }
    }

    async fn audit(
        &self,
        action: Action,
        outcome: Outcome,
        object: &str,
        details: String,
    ) -> Result<(), String> {
        let event = AuditEvent::new(
            self.clock.now(),
            self.actor.clone(),
            self.origin.clone(),
            action,
        )
        .with_object(object)
        .with_outcome(outcome)
        .with_details(details);
        self.sink
            .append(event)
            .await
            .map(|_| ())
            .map_err(|e| format!("audit trail: {e}"))
    }
}

/// Runs the nightly job of `site` as `operator` (the personal id of whoever runs it, or
/// `nightly-backup` for the timer), writing every step to `log` and the report to
/// `<state_dir>/last-nightly.json`.
///
/// # Errors
/// Only what prevents the job from starting or from recording its result: the key, the
/// state files. Step failures are in the report (`ok == false`).
pub async fn run(
    site: &SiteConfig,
    log: Arc<FileLog>,
    operator: Actor,
    clock: Arc<dyn Clock>,
    observer: &dyn Observer,
) -> Result<NightlyReport, NightlyError> {
    let started = clock.now();
    let origin = Origin::System {
        host: site.site.host.clone(),
    };
    let sink: Arc<dyn AuditSink> = log.clone();
    let key = match open_key(site) {
        Ok(k) => k,
        Err(e) => {
            let event = AuditEvent::new(
                clock.now(),
                operator.clone(),
                origin.clone(),
                Action::KeyUsed,
            )
            .with_object(site.keys.repository_key_file.display().to_string())
            .with_outcome(Outcome::Failure)
            .with_details(e.to_string());
            sink.append(event).await?;
            return Err(e);
        }
    };
    let ctx = Ctx {
        site,
        key,
        sink,
        clock: clock.clone(),
        actor: operator.clone(),
        origin,
    };
    ctx.audit(
        Action::KeyUsed,
        Outcome::Success,
        &ctx.key.fingerprint().to_string(),
        "repository key opened for the nightly backup".into(),
    )
    .await
    .map_err(NightlyError::Key)?;

    let mut steps = Vec::new();
    let mut history: BackupHistory = read_json(&history_path(site))?;

    // 1. Database to tape.
    observer.step_started("database-to-tape");
    let t0 = Instant::now();
    let database = database_to_tape(&ctx, observer.progress()).await;
    let step = match &database {
        Ok(d) => {
            if d.verified {
                history.last_verified.insert(d.source.clone(), d.finished);
            }
            StepResult {
                name: "database-to-tape".into(),
                ok: d.verified,
                seconds: t0.elapsed().as_secs_f64(),
                details: format!(
                    "{} -> tape {} (session {}), {} bytes, {} tables, read-back verification {}",
                    d.source,
                    d.tapes.join(" + "),
                    d.session,
                    d.bytes,
                    d.row_counts.len(),
                    if d.verified { "passed" } else { "FAILED" }
                ),
            }
        }
        Err(e) => StepResult {
            name: "database-to-tape".into(),
            ok: false,
            seconds: t0.elapsed().as_secs_f64(),
            details: e.clone(),
        },
    };
    observer.step_finished(&step);
    steps.push(step);

    // 2. Application to disk, 3. retention, 4. verify.
    observer.step_started("application-to-disk");
    let t0 = Instant::now();
    let target = DiskTarget::open(&site.disk.dir).map_err(|e| e.to_string());
    let application = match &target {
        Ok(t) => application_to_disk(&ctx, t, observer.progress()).await,
        Err(e) => Err(format!("disk target {}: {e}", site.disk.dir.display())),
    };
    let step = match &application {
        Ok(a) => StepResult {
            name: "application-to-disk".into(),
            ok: true,
            seconds: t0.elapsed().as_secs_f64(),
            details: format!(
                "{} -> {}: snapshot {}, {} files ({} unchanged), {} bytes read{}",
                a.source,
                site.disk.dir.display(),
                a.snapshot,
                a.files,
                a.files_reused,
                a.bytes_read,
                if a.warnings.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} warning(s): {}",
                        a.warnings.len(),
                        a.warnings.join("; ")
                    )
                }
            ),
        },
        Err(e) => StepResult {
            name: "application-to-disk".into(),
            ok: false,
            seconds: t0.elapsed().as_secs_f64(),
            details: e.clone(),
        },
    };
    observer.step_finished(&step);
    steps.push(step);
    let mut application = application.ok();

    if let Ok(target) = &target {
        observer.step_started("retention");
        let t0 = Instant::now();
        let r = retention(&ctx, target).await;
        let step = StepResult {
            name: "retention".into(),
            ok: r.is_ok(),
            seconds: t0.elapsed().as_secs_f64(),
            details: r.unwrap_or_else(|e| e),
        };
        observer.step_finished(&step);
        steps.push(step);

        observer.step_started("disk-verify");
        let t0 = Instant::now();
        let r = disk_verify(&ctx, target, application.as_ref()).await;
        let (ok, details, all_ok) = match r {
            Ok((details, ok)) => (ok, details, ok),
            Err(e) => (false, e, false),
        };
        if let Some(a) = application.as_mut() {
            a.verified = all_ok;
            if all_ok {
                history.last_verified.insert(a.source.clone(), a.finished);
            }
        }
        let step = StepResult {
            name: "disk-verify".into(),
            ok,
            seconds: t0.elapsed().as_secs_f64(),
            details,
        };
        observer.step_finished(&step);
        steps.push(step);
    }

    // 5. Audit checkpoint, exported to the other room.
    observer.step_started("audit-checkpoint");
    let t0 = Instant::now();
    let r = async {
        let cp = log
            .checkpoint(operator.clone())
            .await
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&site.audit.checkpoint_dir).map_err(|e| e.to_string())?;
        let path = site
            .audit
            .checkpoint_dir
            .join(format!("checkpoint-{}.json", cp.records));
        cp.write_to(&path).map_err(|e| e.to_string())?;
        Ok::<String, String>(format!(
            "{} records, exported to {}",
            cp.records,
            path.display()
        ))
    }
    .await;
    let step = StepResult {
        name: "audit-checkpoint".into(),
        ok: r.is_ok(),
        seconds: t0.elapsed().as_secs_f64(),
        details: r.unwrap_or_else(|e| e),
    };
    observer.step_finished(&step);
    steps.push(step);

    let report = NightlyReport {
        site: site.site.name.clone(),
        host: site.site.host.clone(),
        operator: operator.user_id.clone(),
        started,
        finished: clock.now(),
        ok: steps.iter().all(|s| s.ok),
        steps,
        database: database.ok(),
        application,
    };
    write_json(&history_path(site), &history)?;
    write_json(&last_report_path(site), &report)?;
    Ok(report)
}

/// The backup source of the configured database: the SQLite file (copied online with
/// SQLite's backup API) or, with the `oracle` feature, the Oracle schema exported logically as
/// of one SCN (`jfiv_backup::logical::OracleSchemaSource`, one `<name>.ldump` entry).
///
/// # Errors
/// For the Oracle kind: the password cannot be read from its source, or this build has no
/// Oracle support.
pub fn database_source(
    site: &SiteConfig,
    temp_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Box<dyn Source>, String> {
    match &site.database {
        DatabaseConfig::Sqlite { name, path } => Ok(Box::new(
            SqliteSource::new(name, path)
                .entry_name("jfiv.sqlite")
                .temp_dir(temp_dir),
        )),
        DatabaseConfig::Oracle { name, .. } => oracle_source(site, name, temp_dir, clock),
    }
}

#[cfg(feature = "oracle")]
fn oracle_source(
    site: &SiteConfig,
    name: &str,
    temp_dir: &Path,
    clock: Arc<dyn Clock>,
) -> Result<Box<dyn Source>, String> {
    let config = oracle_config(site)?;
    Ok(Box::new(
        jfiv_backup::logical::OracleSchemaSource::new(name, config)
            .temp_dir(temp_dir)
            .clock(clock),
    ))
}

#[cfg(not(feature = "oracle"))]
fn oracle_source(
    _site: &SiteConfig,
    _name: &str,
    _temp_dir: &Path,
    _clock: Arc<dyn Clock>,
) -> Result<Box<dyn Source>, String> {
    Err("the database is Oracle but this build has no Oracle support: rebuild with --features oracle".into())
}

/// The Oracle connection of the configured database (feature `oracle`): user, connect
/// string, schema, and the password read from its [`SecretSource`](crate::site::SecretSource)
/// (an environment variable or a root-only file; never the command line). The password is
/// redacted in the configuration's `Debug` and never in an error.
///
/// # Errors
/// The database is not Oracle; the password cannot be read.
#[cfg(feature = "oracle")]
pub fn oracle_config(
    site: &SiteConfig,
) -> Result<jfiv_backup::logical::oracle::OracleConfig, String> {
    let DatabaseConfig::Oracle {
        connect,
        user,
        password,
        schema,
        ..
    } = &site.database
    else {
        return Err("the configured database is not Oracle".into());
    };
    let password = password
        .read()
        .map_err(|e| format!("the Oracle password of {user}: {e}"))?;
    let mut config = jfiv_backup::logical::oracle::OracleConfig::new(user, password, connect);
    config.schema = Some(schema.clone());
    Ok(config)
}

/// The other tapes of `pool` a session may continue on, oldest written first (never written
/// first of all): the changer checks each one's label and retention again before using it.
fn continuation_candidates(inventory: &[MediaInfo], pool: &Pool, first: &str) -> Vec<String> {
    let mut others: Vec<&MediaInfo> = inventory
        .iter()
        .filter(|m| m.label.pool == *pool && m.label.barcode != first)
        .collect();
    others.sort_by_key(|m| (m.last_written, m.label.barcode.clone()));
    others
        .into_iter()
        .map(|m| m.label.barcode.clone())
        .collect()
}

/// The drive with tonight's tape, and the changers that give the next tapes of the session
/// and the tapes back for the read-back verification.
struct TapeSet {
    device: Box<dyn TapeDevice>,
    changer: Box<dyn VolumeChanger>,
    verify_changer: Box<dyn VolumeChanger>,
    /// What the write changer loaded and skipped (library only).
    journal: Option<ChangerJournal>,
    /// The library, to rescan the tapes after a failure (library only).
    library: Option<Arc<VirtualLibrary>>,
}

fn tape_set(
    site: &SiteConfig,
    plan: &TonightPlan,
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<TapeSet, String> {
    match &site.tape.backend {
        TapeBackend::Library(dir) => {
            let library = Arc::new(VirtualLibrary::open(dir).map_err(|e| e.to_string())?);
            let device = library
                .load(&plan.tape)
                .map_err(|e| format!("tonight's tape {} is not in the library: {e}", plan.tape))?;
            let changer = OwnedLibraryChanger::new(
                library.clone(),
                continuation_candidates(inventory, &plan.pool, &plan.tape),
                ChangerPurpose::Write {
                    inventory: inventory.to_vec(),
                    policy: policy.clone(),
                    now,
                },
            );
            let journal = changer.journal();
            let verify_changer = OwnedLibraryChanger::new(
                library.clone(),
                library.barcodes().map_err(|e| e.to_string())?,
                ChangerPurpose::Read,
            );
            Ok(TapeSet {
                device: Box::new(device),
                changer: Box::new(changer),
                verify_changer: Box::new(verify_changer),
                journal: Some(journal),
                library: Some(library),
            })
        }
        // A standalone drive has nobody to change its tape in the night: a session that
        // needs a second tape ends incomplete (an autoloader changer for real drives is not
        // implemented yet).
        TapeBackend::Device(dev) => Ok(TapeSet {
            device: Box::new(
                jfiv_backup::tape::LinuxTape::open(dev)
                    .map_err(|e| format!("{}: {e}", dev.display()))?,
            ),
            changer: Box::new(NoMoreTapes),
            verify_changer: Box::new(NoMoreTapes),
            journal: None,
            library: None,
        }),
    }
}

async fn database_to_tape(
    ctx: &Ctx<'_>,
    progress: &dyn Progress,
) -> Result<DatabaseResult, String> {
    let site = ctx.site;
    let tmp = site.site.state_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let source = database_source(site, &tmp, ctx.clock.clone())?;
    database_source_to_tape(ctx, source.as_ref(), progress).await
}

/// The database step with its source given: what [`run`] does with [`database_source`].
async fn database_source_to_tape(
    ctx: &Ctx<'_>,
    source: &dyn Source,
    progress: &dyn Progress,
) -> Result<DatabaseResult, String> {
    let site = ctx.site;
    let name = source.info().name;
    let policy = rotation_of(site);
    let mut catalog = Catalog::load(&site.tape.catalog).map_err(|e| e.to_string())?;
    let inventory = catalog.inventory();
    let now = ctx.clock.now();
    let plan =
        plan_tonight(&inventory, &policy, now).map_err(|e| format!("tonight's tape: {e}"))?;
    let TapeSet {
        mut device,
        changer,
        verify_changer,
        journal,
        library,
    } = tape_set(site, &plan, &inventory, &policy, now)?;
    let label = jfiv_backup::tape::media::identify_for_writing(
        &mut *device,
        &plan,
        &inventory,
        &policy,
        now,
    )
    .map_err(|e| format!("tape in the drive: {e}"))?;
    // The tape is in the drive now.
    let mut register = LocationRegister::load(&site.tape.register).map_err(|e| e.to_string())?;
    let locations = locations_of(site);
    let custody = jfiv_backup::tape::Custody {
        config: &locations,
        clock: ctx.clock.as_ref(),
        sink: ctx.sink.as_ref(),
        host: &site.site.host,
    };
    if register.place_of(&plan.tape) != Some(TapePlace::Drive) {
        register
            .record_move(&plan.tape, TapePlace::Drive, &ctx.actor.user_id, &custody)
            .await
            .map_err(|e| e.to_string())?;
        register
            .save(&site.tape.register)
            .map_err(|e| e.to_string())?;
    }
    ctx.audit(
        Action::TapeLoaded,
        Outcome::Success,
        &plan.tape,
        format!("pool {}, night {}", plan.pool, plan.night),
    )
    .await?;
    let session = SessionOptions {
        snapshot: format!("{name}-{}", plan.night),
        source: name.clone(),
        host: site.site.host.clone(),
        pool: plan.pool.clone(),
        block_size: site.tape.block_size_kib as usize * 1024,
        position: WritePosition::AfterLabel,
    };
    let job = TapeJob::new(
        device,
        label,
        session,
        changer,
        verify_changer,
        ctx.clock.clone(),
    );
    let result = backup_to_tape(source, &ctx.key, None, &ctx.options(), progress, job).await;
    let changer_log = journal.map(|j| j.snapshot()).unwrap_or_default();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(tape_session_failed(
                ctx,
                &mut catalog,
                &mut register,
                &custody,
                &plan,
                library.as_deref(),
                &changer_log,
                &e,
            )
            .await);
        }
    };
    catalog.record_session(&report.summary);
    let verified = report.verification.as_ref().is_some_and(|v| v.ok);
    if let Some(v) = &report.verification {
        catalog
            .record_verify(report.summary.catalog.session, v.clone())
            .map_err(|e| e.to_string())?;
    }
    catalog
        .save(&site.tape.catalog)
        .map_err(|e| e.to_string())?;
    let tapes: Vec<String> = report
        .summary
        .catalog
        .volumes
        .iter()
        .map(|v| v.tape.clone())
        .collect();
    // The changer loaded the next tapes into the drive, ejecting the previous ones back into
    // their slots in the server room: the register says so, each move audited.
    for (i, tape) in tapes.iter().enumerate() {
        let last = i + 1 == tapes.len();
        if i > 0 {
            ctx.audit(
                Action::TapeLoaded,
                Outcome::Success,
                tape,
                format!(
                    "volume {} of session {}, pool {}, night {}",
                    i + 1,
                    report.summary.catalog.session,
                    plan.pool,
                    plan.night
                ),
            )
            .await?;
        }
        let place = if last {
            TapePlace::Drive
        } else {
            TapePlace::ServerRoom
        };
        if register.place_of(tape) != Some(place) {
            register
                .record_move(tape, place, &ctx.actor.user_id, &custody)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    register
        .save(&site.tape.register)
        .map_err(|e| e.to_string())?;
    let session_id = report.summary.catalog.session.to_string();
    ctx.audit(
        Action::BackupVerified,
        if verified {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        &report.backup.manifest.snapshot.to_string(),
        match &report.verification {
            Some(v) => format!(
                "tape(s) {} session {session_id}: {} chunks, {} bytes read back in {:.1} s{}",
                tapes.join(", "),
                v.chunks,
                v.bytes,
                v.seconds,
                v.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            None => "read-back verification turned off".into(),
        },
    )
    .await?;
    let database = report.backup.manifest.databases.first();
    Ok(DatabaseResult {
        source: name,
        snapshot: report.backup.manifest.snapshot.to_string(),
        tape: plan.tape.clone(),
        tapes,
        session: session_id,
        bytes: report.backup.stats.bytes_read,
        engine: database.map(|d| d.engine.clone()).unwrap_or_default(),
        row_counts: database.map(|d| d.row_counts.clone()).unwrap_or_default(),
        verified,
        finished: report.backup.manifest.finished,
    })
}

/// A tape session that could not be completed: the tapes it wrote over no longer hold their
/// older sessions, so the catalog forgets them (and, on a library, records what a scan of those
/// tapes now finds: the incomplete session); the failure is audited; the message says which
/// tapes were used and why no other tape could be had.
#[allow(clippy::too_many_arguments)]
async fn tape_session_failed(
    ctx: &Ctx<'_>,
    catalog: &mut Catalog,
    register: &mut LocationRegister,
    custody: &jfiv_backup::tape::Custody<'_>,
    plan: &TonightPlan,
    library: Option<&VirtualLibrary>,
    changer_log: &ChangerLog,
    error: &jfiv_backup::Error,
) -> String {
    let site = ctx.site;
    let mut touched = vec![plan.tape.clone()];
    touched.extend(changer_log.loaded.iter().cloned());
    let mut message = format!(
        "backup to tape {}: {error}; tape(s) written: {}",
        plan.tape,
        touched.join(", ")
    );
    // The session asked the changer for a tape it could not give.
    let out_of_tape = changer_log.requested.len() > changer_log.loaded.len();
    if out_of_tape && !changer_log.skipped.is_empty() {
        message.push_str(&format!(
            "; other tapes of pool {} not usable: {}",
            plan.pool,
            changer_log.skipped.join("; ")
        ));
    } else if out_of_tape && changer_log.loaded.is_empty() {
        message.push_str(&format!(
            "; no other tape of pool {} could continue the session",
            plan.pool
        ));
    }
    // Written from the label on: what the catalog had on these tapes is gone.
    catalog
        .sessions
        .retain(|_, s| !s.catalog.volumes.iter().any(|v| touched.contains(&v.tape)));
    if let Some(library) = library {
        for tape in &touched {
            match library
                .load(tape)
                .and_then(|mut t| jfiv_backup::tape::scan_tape(&mut t))
            {
                Ok(scan) => catalog.merge_scan(&scan),
                Err(e) => message.push_str(&format!("; rescan of {tape} failed: {e}")),
            }
        }
    }
    if let Err(e) = catalog.save(&site.tape.catalog) {
        message.push_str(&format!("; the tape catalog could not be saved: {e}"));
    }
    // As after a complete session: the last tape loaded is in the drive, the others back in
    // their slots.
    for (i, tape) in touched.iter().enumerate() {
        let place = if i + 1 == touched.len() {
            TapePlace::Drive
        } else {
            TapePlace::ServerRoom
        };
        if register.place_of(tape) != Some(place)
            && let Err(e) = register
                .record_move(tape, place, &ctx.actor.user_id, custody)
                .await
        {
            message.push_str(&format!("; the move of {tape} is not recorded: {e}"));
        }
    }
    if let Err(e) = register.save(&site.tape.register) {
        message.push_str(&format!("; the location register could not be saved: {e}"));
    }
    if let Err(e) = ctx
        .audit(
            Action::BackupFailed,
            Outcome::Failure,
            &plan.tape,
            message.clone(),
        )
        .await
    {
        message.push_str(&format!("; {e}"));
    }
    message
}

async fn application_to_disk(
    ctx: &Ctx<'_>,
    target: &DiskTarget,
    progress: &dyn Progress,
) -> Result<ApplicationResult, String> {
    let app = &ctx.site.application;
    let mut source = DirectorySource::new(&app.name);
    for root in &app.roots {
        let label = root
            .strip_prefix(&app.server_root)
            .unwrap_or(root)
            .to_string_lossy()
            .trim_start_matches('/')
            .to_owned();
        source = source.root_as(root, label);
    }
    for pattern in &app.exclude {
        source = source.exclude(pattern.clone()).map_err(|e| e.to_string())?;
    }
    let previous = latest_snapshot(target, &ctx.key, &app.name)
        .await
        .map_err(|e| e.to_string())?;
    let report = jfiv_backup::backup(
        &source,
        target,
        &ctx.key,
        previous.as_ref(),
        &ctx.options(),
        progress,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(ApplicationResult {
        source: app.name.clone(),
        snapshot: report.manifest.snapshot.to_string(),
        files: report.stats.files,
        bytes_read: report.stats.bytes_read,
        files_reused: report.stats.files_reused,
        warnings: report.warnings.iter().map(|w| format!("{w:?}")).collect(),
        verified: false,
        finished: report.manifest.finished,
    })
}

async fn retention(ctx: &Ctx<'_>, target: &DiskTarget) -> Result<String, String> {
    let r = ctx.site.disk.retention;
    let policy = RetentionPolicy {
        daily: r.daily,
        weekly: r.weekly,
        monthly: r.monthly,
        ..RetentionPolicy::default()
    };
    let snapshots = list_snapshots(target, &ctx.key)
        .await
        .map_err(|e| e.to_string())?;
    let plan = plan_retention(&snapshots, &policy, ctx.clock.now());
    let removed = prune(target, &plan, Some(&ctx.hook()))
        .await
        .map_err(|e| e.to_string())?;
    let gc = jfiv_backup::gc(target, &ctx.key, ctx.clock.as_ref(), GcOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{} snapshot(s) kept, {removed} removed; {} unreferenced chunk(s) freed ({} bytes)",
        plan.keep.len(),
        gc.removed.len(),
        gc.bytes_freed
    ))
}

/// Verifies tonight's slice of the disk target; returns the details and whether tonight's
/// application snapshot is entirely verified (its chunks all authenticated tonight: the whole
/// snapshot is checked, not only the slice).
async fn disk_verify(
    ctx: &Ctx<'_>,
    target: &DiskTarget,
    tonight: Option<&ApplicationResult>,
) -> Result<(String, bool), String> {
    let options = VerifyOptions {
        sample: Some(Sample::nightly(
            ctx.clock.now(),
            ctx.site.disk.verify_slices,
        )),
        audit: Some(ctx.hook()),
    };
    let slice = jfiv_backup::verify(target, &ctx.key, &options)
        .await
        .map_err(|e| e.to_string())?;
    // Tonight's snapshot itself is read back in full (new chunks are the ones at risk).
    let mut snapshot_ok = tonight.is_some();
    if let Some(app) = tonight {
        let id = app
            .snapshot
            .parse()
            .map_err(|e: jfiv_backup::Error| e.to_string())?;
        let manifest = jfiv_backup::load_manifest(target, &ctx.key, &id)
            .await
            .map_err(|e| e.to_string())?;
        for chunk in manifest.chunk_ids() {
            let ok = match jfiv_backup::BackupTarget::get_chunk(target, &chunk).await {
                Ok(blob) => jfiv_backup::format::decode_chunk(&ctx.key, &chunk, &blob).is_ok(),
                Err(_) => false,
            };
            if !ok {
                snapshot_ok = false;
                break;
            }
        }
        ctx.audit(
            Action::BackupVerified,
            if snapshot_ok {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            &app.snapshot,
            format!("tonight's {} snapshot read back in full", app.source),
        )
        .await?;
    }
    // A pack whose index was damaged was read record by record when the store was opened:
    // its chunks may all be there, but the disk is failing and the operator must know.
    let damage = target.pack_damage();
    let mut details = format!(
        "slice: {} of {} chunks checked, {} damaged chunk(s), {} damaged manifest(s); tonight's snapshot {}",
        slice.chunks_checked,
        slice.chunks_referenced,
        slice.damaged_chunks.len(),
        slice.damaged_manifests.len(),
        if snapshot_ok {
            "verified in full"
        } else {
            "NOT verified"
        }
    );
    for d in &damage {
        details.push_str(&format!(
            "; damaged pack {} at byte {}: {} ({} chunks recovered)",
            d.path.display(),
            d.offset,
            d.reason,
            d.chunks_recovered
        ));
    }
    Ok((details, slice.is_ok() && snapshot_ok && damage.is_empty()))
}

/// The pool of a configured pool name.
pub fn pool_of(name: &str) -> Option<Pool> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jfiv_audit::ManualClock;
    use jfiv_backup::logical::{LogicalSqliteSource, RestoreOptions, SqliteDatabase};
    use jfiv_backup::tape::{LibraryChanger, RestoreFromTape, restore_session};
    use jfiv_backup::{ExtractOptions, NoProgress, Selection};

    use super::*;
    use crate::demo::{DemoSite, DemoSize, build_site};
    use crate::site::{FileChecks, SecretSource};

    /// A password only tests use: it must never show in a report, an error or the audit trail.
    const ORACLE_PASSWORD: &str = "Hunter2-oracle-not-a-real-one";

    fn tuesday_night() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-03T22:00:00Z")
            .unwrap()
            .to_utc()
    }

    async fn demo(dir: &Path) -> (DemoSite, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(tuesday_night()));
        let built = build_site(dir, &DemoSize::tiny(), clock.clone())
            .await
            .unwrap();
        (built, clock)
    }

    /// Writes `password` to a 0600 file of the demo site and returns its path.
    #[cfg(feature = "oracle")]
    fn password_file(built: &DemoSite, password: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = built.server.join("etc/jfiv-backup/oracle-password");
        std::fs::write(&path, format!("{password}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The demo site, its database turned into the Oracle schema `schema` of `user` at
    /// `connect` (the configuration as a hospital would write it).
    #[cfg(feature = "oracle")]
    fn oracle_site(built: &DemoSite, connect: &str, user: &str, schema: &str) -> SiteConfig {
        let text = std::fs::read_to_string(&built.config).unwrap();
        let sqlite =
            "kind = \"sqlite\"\nname = \"jfiv-db\"\npath = \"server/srv/jfiv/data/jfiv.sqlite\"\n";
        assert!(text.contains(sqlite));
        let text = text.replace(
            sqlite,
            &format!(
                "kind = \"oracle\"\nname = \"jfiv-db\"\n\n[database.oracle]\nconnect = \"{connect}\"\nuser = \"{user}\"\nschema = \"{schema}\"\npassword_file = \"server/etc/jfiv-backup/oracle-password\"\n"
            ),
        );
        std::fs::write(&built.config, text).unwrap();
        SiteConfig::load(&built.config).unwrap()
    }

    fn ctx<'a>(site: &'a SiteConfig, log: Arc<FileLog>, clock: Arc<ManualClock>) -> Ctx<'a> {
        Ctx {
            site,
            key: open_key(site).unwrap(),
            sink: log,
            clock,
            actor: Actor::new("nightly-backup", "backup-operator"),
            origin: Origin::System {
                host: site.site.host.clone(),
            },
        }
    }

    /// Restores the session of `db` from its tapes into `dest` (every volume, in order).
    fn restore_from_tapes(site: &SiteConfig, db: &DatabaseResult, dest: &Path) {
        let TapeBackend::Library(dir) = &site.tape.backend else {
            panic!("the demo has a library")
        };
        let library = VirtualLibrary::open(dir).unwrap();
        let catalog = Catalog::load(&site.tape.catalog).unwrap();
        let session = &catalog.sessions[&db.session.parse().unwrap()];
        let first = &session.catalog.volumes[0];
        let mut changer = LibraryChanger::new(&library, db.tapes.clone(), ChangerPurpose::Read);
        let report = restore_session(
            Box::new(library.load(&first.tape).unwrap()),
            first.file,
            &mut changer,
            &open_key(site).unwrap(),
            RestoreFromTape {
                manifest: None,
                selection: &Selection::all(),
                dest,
                options: ExtractOptions {
                    owner: false,
                    ..ExtractOptions::default()
                },
            },
        )
        .unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    #[test]
    fn the_database_source_follows_the_configured_kind() {
        let text = include_str!("../examples/hospital.toml");
        let mut site =
            SiteConfig::from_toml(text, Path::new("hospital.toml"), FileChecks::Skip).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(tuesday_night()));
        let sqlite = database_source(&site, Path::new("/tmp"), clock.clone()).unwrap();
        assert_eq!(sqlite.info().name, "jfiv-db");
        assert_eq!(sqlite.info().kind, jfiv_backup::SourceKind::Sqlite);
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("oracle-password");
        std::fs::write(&pass, ORACLE_PASSWORD).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        site.database = DatabaseConfig::Oracle {
            name: "jfiv-ora".into(),
            connect: "//db-jfiv:1521/JFIV".into(),
            user: "JFIV_BACKUP".into(),
            password: SecretSource::File(pass),
            schema: "JFIV".into(),
        };
        let oracle = database_source(&site, dir.path(), clock);
        if cfg!(feature = "oracle") {
            let oracle = oracle.unwrap();
            assert_eq!(oracle.info().name, "jfiv-ora");
            assert_eq!(
                oracle.info().kind,
                jfiv_backup::SourceKind::Other("oracle-logical".into())
            );
            let debug = format!("{oracle:?}");
            assert!(debug.contains("JFIV_BACKUP") && debug.contains("//db-jfiv:1521/JFIV"));
            assert!(!debug.contains(ORACLE_PASSWORD), "{debug}");
        } else {
            let err = oracle.unwrap_err();
            assert!(err.contains("--features oracle"), "{err}");
        }
    }

    #[cfg(feature = "oracle")]
    #[test]
    fn the_oracle_connection_comes_from_the_site_and_the_password_from_its_file() {
        use secrecy::ExposeSecret;
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (built, _) = rt.block_on(demo(dir.path()));
        password_file(&built, ORACLE_PASSWORD);
        let site = oracle_site(&built, "//db-jfiv:1521/JFIV", "JFIV_BACKUP", "JFIV");
        let config = oracle_config(&site).unwrap();
        assert_eq!(config.user, "JFIV_BACKUP");
        assert_eq!(config.connect_string, "//db-jfiv:1521/JFIV");
        assert_eq!(config.schema.as_deref(), Some("JFIV"));
        assert_eq!(config.password.expose_secret(), ORACLE_PASSWORD);
        assert!(!format!("{config:?}").contains(ORACLE_PASSWORD));
        assert!(!format!("{site:?}").contains(ORACLE_PASSWORD));
        // A password file others can read is refused before anything runs.
        {
            use std::os::unix::fs::PermissionsExt;
            let path = built.server.join("etc/jfiv-backup/oracle-password");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let err = SiteConfig::load(&built.config).unwrap_err();
        assert!(
            err.problems()
                .iter()
                .any(|p| p.key == "database.oracle.password_file"),
            "{err}"
        );
    }

    #[cfg(feature = "oracle")]
    #[tokio::test]
    async fn an_unreachable_oracle_fails_the_database_step_audited_and_leaks_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let (built, clock) = demo(dir.path()).await;
        password_file(&built, ORACLE_PASSWORD);
        let site = oracle_site(&built, "127.0.0.1:1/NOPE", "JFIV_BACKUP", "JFIV");
        let log = Arc::new(open_audit(&site, clock.clone()).unwrap());
        let report = run(
            &site,
            log.clone(),
            Actor::new("nightly-backup", "backup-operator"),
            clock.clone(),
            &LogLines,
        )
        .await
        .unwrap();
        assert_eq!(
            report.failures(),
            ["database-to-tape"],
            "{}",
            report.summary()
        );
        assert_eq!(report.exit_code(), 1);
        let step = &report.steps[0];
        assert!(step.details.contains("jfiv-db"), "{}", step.details);
        assert!(report.application.as_ref().unwrap().verified);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains(ORACLE_PASSWORD));
        let trail = AuditSink::query(log.as_ref(), &jfiv_audit::Query::all())
            .await
            .unwrap();
        assert!(
            trail
                .iter()
                .any(|r| r.event.action == Action::BackupFailed
                    && r.event.outcome == Outcome::Failure),
            "the failure is audited"
        );
        for entry in walkdir::WalkDir::new(&site.audit.dir) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let bytes = std::fs::read(entry.path()).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(ORACLE_PASSWORD),
                    "{} holds the password",
                    entry.path().display()
                );
            }
        }
        // No session of tonight counts as a backup.
        let catalog = Catalog::load(&site.tape.catalog).unwrap();
        assert!(catalog.latest_complete("jfiv-db").is_none());
    }

    /// The Oracle schema source and the SQLite logical source write the same logical dump (one
    /// `<name>.ldump` entry, row counts in the manifest): the SQLite one stands in for the
    /// Oracle export, whose connection cannot be mocked from outside `jfiv-backup`, to prove
    /// the rest of the database step: tape, read-back, catalog, report, restore row for row.
    #[tokio::test]
    async fn a_logical_dump_goes_to_tape_verified_and_restores_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let (built, clock) = demo(dir.path()).await;
        let site = SiteConfig::load(&built.config).unwrap();
        let log = Arc::new(open_audit(&site, clock.clone()).unwrap());
        let ctx = ctx(&site, log, clock.clone());
        let DatabaseConfig::Sqlite { path, .. } = &site.database else {
            panic!("the demo is SQLite")
        };
        let source = LogicalSqliteSource::new("jfiv-db", path)
            .temp_dir(dir.path())
            .clock(clock.clone());
        let db = database_source_to_tape(&ctx, &source, &NoProgress)
            .await
            .unwrap();
        assert!(db.verified);
        assert_eq!(db.engine, jfiv_backup::logical::SQLITE_LOGICAL_ENGINE);
        assert_eq!(db.row_counts, built.database.row_counts);
        assert_eq!(db.tapes, std::slice::from_ref(&db.tape));
        let dest = dir.path().join("from-tape");
        restore_from_tapes(&site, &db, &dest);
        let copy = dir.path().join("restored.sqlite");
        let dump = std::fs::File::open(dest.join("jfiv-db.ldump")).unwrap();
        let mut target = SqliteDatabase::open_for_restore(&copy).unwrap();
        let restored = jfiv_backup::logical::restore(
            std::io::BufReader::new(dump),
            &mut target,
            &RestoreOptions {
                expected_counts: Some(db.row_counts.clone()),
                ..RestoreOptions::default()
            },
        )
        .unwrap();
        drop(target);
        let counts: BTreeMap<String, u64> = restored
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.rows))
            .collect();
        assert_eq!(counts, db.row_counts);
        let diffs = crate::demo::compare_databases(path, &copy).unwrap();
        assert!(diffs.is_empty(), "{diffs:?}");
    }

    /// Live test: `JFIV_TEST_ORACLE=user/password@host:port/service` (or the three
    /// `JFIV_TEST_ORACLE_USER` / `_PASSWORD` / `_CONNECT` variables, as in `jfiv-backup`'s
    /// Oracle tests). Backs the test user's own schema up (whatever it holds; nothing is
    /// created or dropped) with the nightly job of a demo site whose database is that schema,
    /// then restores the dump from the tape into SQLite with the manifest's row counts.
    #[cfg(feature = "oracle")]
    #[tokio::test]
    async fn live_nightly_backup_of_a_real_oracle_schema() {
        use secrecy::ExposeSecret;
        let Some(config) = jfiv_backup::logical::oracle::OracleConfig::from_test_env() else {
            eprintln!(
                "skipped: set JFIV_TEST_ORACLE=user/password@host:port/service to run the live Oracle test"
            );
            return;
        };
        let config = config.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (built, clock) = demo(dir.path()).await;
        password_file(&built, config.password.expose_secret());
        let schema = config.user.to_uppercase();
        let site = oracle_site(&built, &config.connect_string, &config.user, &schema);
        let log = Arc::new(open_audit(&site, clock.clone()).unwrap());
        let report = run(
            &site,
            log,
            Actor::new("nightly-backup", "backup-operator"),
            clock,
            &LogLines,
        )
        .await
        .unwrap();
        assert!(report.ok, "{}", report.summary());
        assert!(
            !serde_json::to_string(&report)
                .unwrap()
                .contains(config.password.expose_secret())
        );
        let db = report.database.unwrap();
        assert!(db.verified);
        assert_eq!(db.engine, jfiv_backup::logical::ORACLE_LOGICAL_ENGINE);
        let dest = dir.path().join("from-tape");
        restore_from_tapes(&site, &db, &dest);
        let dump = std::fs::File::open(dest.join("jfiv-db.ldump")).unwrap();
        let mut target = SqliteDatabase::open_for_restore(&dir.path().join("copy.sqlite")).unwrap();
        let restored = jfiv_backup::logical::restore(
            std::io::BufReader::new(dump),
            &mut target,
            &RestoreOptions {
                expected_counts: Some(db.row_counts.clone()),
                ..RestoreOptions::default()
            },
        )
        .unwrap();
        assert_eq!(restored.tables.len(), db.row_counts.len());
    }
}

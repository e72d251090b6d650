//! The nightly job: the database to tonight's tape (read back and verified), the application
//! server to the disk target in the other room, retention, a verification slice of the disk,
//! an audit checkpoint; every step audited, a JSON report written.
//!
//! [`run`] does it all for a [`SiteConfig`]; the `nightly_backup` example is a thin `main`
//! around it. A failing step does not stop the independent ones (a broken tape drive must not
//! cost the application backup), and the report says which failed.
//!
//! Limits (not implemented yet): a database session that reaches the end of tonight's tape is
//! left incomplete (no second tape is loaded: the tape crate's changers borrow the library and
//! the job API takes owned ones); the `oracle` database kind is validated by the configuration
//! but the nightly job only backs up the SQLite kind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use jfiv_audit::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, Clock, FileLog, FileLogOptions, Origin,
    Outcome,
};
use jfiv_backup::tape::{
    Catalog, LocationConfig, LocationRegister, NoMoreTapes, Place as TapePlace, Pool,
    RotationPolicy, SessionOptions, TapeDevice, TapeJob, VirtualLibrary, WritePosition,
    backup_to_tape, plan_tonight,
};
use jfiv_backup::{
    AuditHook, BackupOptions, DirectorySource, DiskTarget, GcOptions, KeyFile, Progress,
    RepositoryKey, RetentionPolicy, Sample, SqliteSource, VerifyOptions, latest_snapshot,
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
    /// The tape.
    pub tape: String,
    /// The tape session.
    pub session: String,
    /// Bytes read.
    pub bytes: u64,
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
                    d.tape,
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

async fn database_to_tape(
    ctx: &Ctx<'_>,
    progress: &dyn Progress,
) -> Result<DatabaseResult, String> {
    let site = ctx.site;
    let (name, path) = match &site.database {
        DatabaseConfig::Sqlite { name, path } => (name.clone(), path.clone()),
        DatabaseConfig::Oracle { .. } => {
            return Err(
                "the Oracle database kind is not wired into the nightly job yet (not implemented): use the logical export sources of jfiv_backup::logical".into(),
            );
        }
    };
    let policy = rotation_of(site);
    let mut catalog = Catalog::load(&site.tape.catalog).map_err(|e| e.to_string())?;
    let inventory = catalog.inventory();
    let now = ctx.clock.now();
    let plan =
        plan_tonight(&inventory, &policy, now).map_err(|e| format!("tonight's tape: {e}"))?;
    let mut device: Box<dyn TapeDevice> =
        match &site.tape.backend {
            TapeBackend::Library(dir) => {
                let library = VirtualLibrary::open(dir).map_err(|e| e.to_string())?;
                Box::new(library.load(&plan.tape).map_err(|e| {
                    format!("tonight's tape {} is not in the library: {e}", plan.tape)
                })?)
            }
            TapeBackend::Device(dev) => Box::new(
                jfiv_backup::tape::LinuxTape::open(dev)
                    .map_err(|e| format!("{}: {e}", dev.display()))?,
            ),
        };
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
    let tmp = site.site.state_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let source = SqliteSource::new(&name, &path)
        .entry_name("jfiv.sqlite")
        .temp_dir(&tmp);
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
        Box::new(NoMoreTapes),
        Box::new(NoMoreTapes),
        ctx.clock.clone(),
    );
    let report = backup_to_tape(&source, &ctx.key, None, &ctx.options(), progress, job)
        .await
        .map_err(|e| format!("backup to tape {}: {e}", plan.tape))?;
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
                "tape {} session {session_id}: {} chunks, {} bytes read back in {:.1} s{}",
                plan.tape,
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
    Ok(DatabaseResult {
        source: name,
        snapshot: report.backup.manifest.snapshot.to_string(),
        tape: plan.tape.clone(),
        session: session_id,
        bytes: report.backup.stats.bytes_read,
        row_counts: report
            .backup
            .manifest
            .databases
            .first()
            .map(|d| d.row_counts.clone())
            .unwrap_or_default(),
        verified,
        finished: report.backup.manifest.finished,
    })
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
    let details = format!(
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
    Ok((details, slice.is_ok() && snapshot_ok))
}

/// The pool of a configured pool name.
pub fn pool_of(name: &str) -> Option<Pool> {
    name.parse().ok()
}

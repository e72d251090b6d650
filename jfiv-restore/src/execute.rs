//! Executing a plan: resumable, checkpointed, audited, with progress.
//!
//! Each step that completes is recorded in a state file (`state.json` in the state directory,
//! replaced atomically) before the next one starts. Running the same plan again skips the
//! recorded steps; a step interrupted midway runs again, and the files it had already restored
//! are recognised (size and BLAKE3, [`jfiv_backup::already_verified`]) and kept, not rewritten.
//! Every file is written under a temporary name, verified against the manifest, then renamed
//! (by [`jfiv_backup::Extractor`]); permissions, owners (when running as root) and mtimes are
//! restored. A damaged chunk fails only the files that use it: they are named in the report,
//! everything else is restored.
//!
//! Before a restore step is checkpointed, the destination is made durable with one `syncfs`
//! of each destination file system (files are not synced one by one). The crash argument: the
//! checkpoint is written (atomically, synced) only after `syncfs` returned, so it never claims
//! a file that a power cut could still take back; a crash before it makes the step run again,
//! keeping the files that are already complete and verified.
//!
//! A tape session is read once, sequentially. When the snapshot's manifest is already at hand
//! (a copy kept in the state directory by an earlier run, or the disk target), chunks are
//! decoded and written straight from the tape stream. Otherwise (the manifest comes last on
//! tape, and files cannot be written before it is known) the encrypted chunks are appended to
//! one spool file in the state directory, without syncs, and extracted from it once the
//! manifest is read; the spool is a scratch file that no checkpoint relies on (every chunk
//! read from it is authenticated again), removed when the step ends. A crash in between
//! makes the step read the tape again.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use chrono::{DateTime, Utc};
use jfiv_audit::{Action, Outcome};
use jfiv_backup::{
    AuditHook, BackupTarget, ChunkId, Entry, EntryKind, ExtractOptions, ExtractReport, Extractor,
    FileOutcome, KeyFile, Manifest, PaperKey, Progress, ProgressEvent, RepositoryKey, Selection,
    SnapshotId,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::checks::{CheckResult, DatabaseHook, check_sqlite, check_tree, run_check_command};
use crate::plan::{KeyPlan, Layout, RestorePlan, Step, StepKind};
use crate::tape::{TapeAccess, TapeItem};
use crate::{Error, Result};

/// Gives the repository key the plan's [`KeyPlan`] asks for.
///
/// # Contract
/// Returns the key or a typed error (wrong passphrase, bad paper key) before anything is
/// written. Never logs or stores the secret.
pub trait KeyProvider: Debug + Send + Sync {
    /// The key.
    ///
    /// # Errors
    /// [`Error::Backup`] wrapping `WrongPassphrase`, `PaperKey`, I/O errors.
    fn key(&self, plan: &KeyPlan) -> Result<RepositoryKey>;
}

/// A key already in memory.
#[derive(Debug, Clone)]
pub struct KnownKey(pub RepositoryKey);

impl KeyProvider for KnownKey {
    fn key(&self, _plan: &KeyPlan) -> Result<RepositoryKey> {
        Ok(self.0.clone())
    }
}

/// The key file named by the plan, opened with a passphrase; or the paper key text when the
/// plan asks for the paper key. `Debug` shows no secret.
pub struct Secrets {
    /// The key file's passphrase.
    pub passphrase: Option<SecretString>,
    /// The paper key's text, as typed.
    pub paper_key: Option<SecretString>,
}

impl Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field("paper_key", &self.paper_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl KeyProvider for Secrets {
    fn key(&self, plan: &KeyPlan) -> Result<RepositoryKey> {
        use secrecy::ExposeSecret;
        match plan {
            KeyPlan::KeyFile { path } => {
                let pass = self.passphrase.as_ref().ok_or_else(|| Error::Step {
                    step: "obtain-key".into(),
                    what: "open the key file".into(),
                    reason: "no passphrase given".into(),
                })?;
                Ok(KeyFile::read(path)?.open(pass)?)
            }
            KeyPlan::PaperKey { .. } => {
                let text = self.paper_key.as_ref().ok_or_else(|| Error::Step {
                    step: "obtain-key".into(),
                    what: "type the paper key".into(),
                    reason: "no paper key text given".into(),
                })?;
                Ok(PaperKey::parse(text.expose_secret())?)
            }
        }
    }
}

/// One thing the execution reports as it goes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RestoreEvent<'a> {
    /// A step starts (`index` from 0 of `total`).
    StepStarted {
        /// Its position.
        index: usize,
        /// Number of steps.
        total: usize,
        /// The step.
        step: &'a Step,
    },
    /// A step was already done by an earlier run and is skipped.
    StepAlreadyDone {
        /// Its position.
        index: usize,
        /// The step.
        step: &'a Step,
    },
    /// A step ended.
    StepFinished {
        /// Its position.
        index: usize,
        /// The step.
        step: &'a Step,
        /// How it ended.
        status: StepStatus,
        /// Seconds it took.
        seconds: f64,
    },
    /// A file was restored and verified.
    FileRestored {
        /// Snapshot path.
        path: &'a str,
        /// Bytes.
        bytes: u64,
    },
    /// A file could not be restored.
    FileFailed {
        /// Snapshot path.
        path: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// A chunk was read from tape into the spool (the manifest was not known yet).
    ChunkStaged {
        /// Encrypted bytes.
        bytes: u64,
    },
}

/// Receives execution progress.
///
/// # Contract
/// Called from the executing threads (possibly concurrently); must return quickly and not fail.
pub trait RestoreProgress: Debug + Send + Sync {
    /// One event.
    fn report(&self, event: &RestoreEvent<'_>);
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRestoreProgress;

impl RestoreProgress for NoRestoreProgress {
    fn report(&self, _event: &RestoreEvent<'_>) {}
}

#[derive(Debug)]
struct Forward<'a>(&'a dyn RestoreProgress);

impl Progress for Forward<'_> {
    fn report(&self, event: &ProgressEvent<'_>) {
        match event {
            ProgressEvent::FileRestored { path, bytes } => {
                self.0.report(&RestoreEvent::FileRestored {
                    path,
                    bytes: *bytes,
                })
            }
            ProgressEvent::FileFailed { path, reason } => {
                self.0.report(&RestoreEvent::FileFailed { path, reason })
            }
            _ => {}
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    /// Done completely.
    Done,
    /// Done by an earlier run (from the checkpoint).
    AlreadyDone,
    /// Done, but some files could not be restored (named in the report); it runs again on
    /// the next execution.
    Partial,
    /// A check did not pass, or the step failed.
    Failed,
}

/// A file lost to damage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostFile {
    /// Its snapshot path.
    pub path: String,
    /// Why.
    pub reason: String,
    /// The damaged chunk, when that is the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// Files restored (written, verified, renamed) by this run.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files found already restored and verified (kept as they were).
    pub already_present: u64,
    /// Files that could not be restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<LostFile>,
    /// Check results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// Anything else worth knowing (metadata not restored, key fingerprint...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The report of one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The step id.
    pub id: String,
    /// What it does.
    pub description: String,
    /// How it ended.
    pub status: StepStatus,
    /// Seconds it took (in the run that did it).
    pub seconds: f64,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// What it did.
    pub outcome: StepOutcome,
}

/// The report of an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionReport {
    /// The plan.
    pub plan_id: String,
    /// When this run started.
    pub started: DateTime<Utc>,
    /// When it ended.
    pub finished: DateTime<Utc>,
    /// Whether an earlier run had already done some steps.
    pub resumed: bool,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Every step, in order.
    pub steps: Vec<StepReport>,
}

impl ExecutionReport {
    /// Files that could not be restored, from every step.
    pub fn lost_files(&self) -> Vec<&LostFile> {
        self.steps
            .iter()
            .flat_map(|s| s.outcome.lost.iter())
            .collect()
    }

    /// Every check result.
    pub fn checks(&self) -> Vec<&CheckResult> {
        self.steps
            .iter()
            .flat_map(|s| s.outcome.checks.iter())
            .collect()
    }

    /// Whether everything was restored and every check passed.
    pub fn is_complete(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.status, StepStatus::Done | StepStatus::AlreadyDone))
    }
}

/// The checkpoint file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    plan_id: String,
    done: BTreeMap<String, StepReport>,
}

/// Options of an execution.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    /// Where the checkpoint, the tape spool (scratch) and the copies of the (encrypted)
    /// manifests are kept. Outside the destination tree.
    pub state_dir: PathBuf,
    /// Metadata and resume options of the extraction.
    pub extract: ExtractOptions,
    /// Set it (from another thread, a signal handler) to stop before the next step; the
    /// execution returns [`Error::Interrupted`] and can be run again.
    pub cancel: Arc<AtomicBool>,
}

impl ExecuteOptions {
    /// Defaults with the given state directory.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            extract: ExtractOptions::default(),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What an execution works with.
#[derive(Debug)]
pub struct ExecuteContext<'a> {
    /// The key.
    pub keys: &'a dyn KeyProvider,
    /// The disk targets, by the names used in the inventory.
    pub disk_targets: BTreeMap<String, Arc<dyn BackupTarget>>,
    /// The tapes, when the plan reads any.
    pub tapes: Option<&'a mut dyn TapeAccess>,
    /// Hooks for database engines other than the SQLite file.
    pub database_hooks: Vec<Arc<dyn DatabaseHook>>,
    /// The audit trail, actor, origin and clock.
    pub audit: AuditHook,
    /// Progress.
    pub progress: &'a dyn RestoreProgress,
    /// Options.
    pub options: ExecuteOptions,
}

/// Writes a state or manifest file atomically with the backup crate's
/// [`jfiv_backup::disk::write_atomic`] (temp, fsync, rename, directory fsync), creating its
/// directory first. Mode 0600: these files describe a patient-data restore.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| Error::State {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(jfiv_backup::disk::write_atomic(path, bytes, 0o600)?)
}

fn load_state(path: &Path, plan: &RestorePlan) -> Result<State> {
    match fs::read(path) {
        Ok(bytes) => {
            let state: State = serde_json::from_slice(&bytes).map_err(|e| Error::State {
                path: path.to_path_buf(),
                reason: format!("unreadable checkpoint: {e}"),
            })?;
            if state.plan_id != plan.id {
                return Err(Error::PlanMismatch {
                    plan: plan.id.clone(),
                    reason: format!(
                        "the state directory holds the checkpoint of plan {}; use another state directory",
                        state.plan_id
                    ),
                });
            }
            Ok(state)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State {
            plan_id: plan.id.clone(),
            done: BTreeMap::new(),
        }),
        Err(e) => Err(Error::State {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

async fn audit(
    hook: &AuditHook,
    action: Action,
    outcome: Outcome,
    object: String,
    details: String,
) -> Result<()> {
    hook.record(action, outcome, object, details)
        .await
        .map_err(|e| Error::Audit {
            reason: e.to_string(),
        })
}

/// Executes `plan` (see the module docs).
///
/// Returns the report when every step ran, even if files were lost or checks failed (see
/// [`ExecutionReport::is_complete`]); the audit trail gets `restore-planned` on the first run,
/// `restore-step-done` for each step (failure outcome for a failed or partial one), then
/// `restore-finished` or `restore-failed`.
///
/// # Errors
/// [`Error::Interrupted`] (cancelled; run again to continue), [`Error::PlanMismatch`],
/// [`Error::State`], a step that cannot run at all ([`Error::Step`], [`Error::Tape`],
/// [`Error::Backup`] such as a wrong key), [`Error::Audit`].
pub async fn execute(plan: &RestorePlan, ctx: &mut ExecuteContext<'_>) -> Result<ExecutionReport> {
    let state_path = ctx.options.state_dir.join("state.json");
    fs::create_dir_all(&ctx.options.state_dir)
        .map_err(|e| Error::io("create", &ctx.options.state_dir, e))?;
    let mut state = load_state(&state_path, plan)?;
    let resumed = !state.done.is_empty();
    let started = ctx.audit.clock.now();
    let wall = Instant::now();
    let object = format!("restore plan {}", plan.id);
    audit(
        &ctx.audit,
        Action::RestorePlanned,
        Outcome::Success,
        object.clone(),
        if resumed {
            format!(
                "resumed: {} of {} steps already done",
                state.done.len(),
                plan.steps.len()
            )
        } else {
            format!(
                "{} steps, data as of {}, estimated {:.0} s",
                plan.steps.len(),
                plan.rpo.data_as_of.to_rfc3339(),
                plan.estimated_rto_secs()
            )
        },
    )
    .await?;
    let mut runner = Runner {
        key: None,
        manifests: HashMap::new(),
    };
    let mut reports = Vec::new();
    let total = plan.steps.len();
    for (index, step) in plan.steps.iter().enumerate() {
        if let Some(done) = state.done.get(&step.id) {
            ctx.progress
                .report(&RestoreEvent::StepAlreadyDone { index, step });
            let mut r = done.clone();
            r.status = StepStatus::AlreadyDone;
            reports.push(r);
            continue;
        }
        if ctx.options.cancel.load(Ordering::SeqCst) {
            let _ = audit(
                &ctx.audit,
                Action::RestoreFailed,
                Outcome::Failure,
                object.clone(),
                format!("interrupted before step {}", step.id),
            )
            .await;
            return Err(Error::Interrupted {
                step: step.id.clone(),
            });
        }
        ctx.progress
            .report(&RestoreEvent::StepStarted { index, total, step });
        let t0 = Instant::now();
        let result = runner.run_step(plan, step, ctx).await;
        let seconds = t0.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = audit(
                    &ctx.audit,
                    Action::RestoreStepDone,
                    Outcome::Failure,
                    format!("{object} step {}", step.id),
                    format!("{}: {e}", step.kind),
                )
                .await;
                let _ = audit(
                    &ctx.audit,
                    Action::RestoreFailed,
                    Outcome::Failure,
                    object.clone(),
                    format!("step {} failed: {e}", step.id),
                )
                .await;
                return Err(e);
            }
        };
        let status = if outcome.checks.iter().any(|c| !c.ok) {
            StepStatus::Failed
        } else if !outcome.lost.is_empty() {
            StepStatus::Partial
        } else {
            StepStatus::Done
        };
        ctx.progress.report(&RestoreEvent::StepFinished {
            index,
            step,
            status,
            seconds,
        });
        let report = StepReport {
            id: step.id.clone(),
            description: step.kind.to_string(),
            status,
            seconds,
            finished_at: ctx.audit.clock.now(),
            outcome,
        };
        audit(
            &ctx.audit,
            Action::RestoreStepDone,
            if status == StepStatus::Done {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            format!("{object} step {}", step.id),
            step_details(&report),
        )
        .await?;
        // The key step is never checkpointed: the key is needed again by every run.
        if status == StepStatus::Done && !matches!(step.kind, StepKind::ObtainKey { .. }) {
            state.done.insert(step.id.clone(), report.clone());
            let json = serde_json::to_vec_pretty(&state).map_err(|e| Error::State {
                path: state_path.clone(),
                reason: e.to_string(),
            })?;
            write_atomically(&state_path, &json)?;
            if let StepKind::RestoreFromTape { snapshot, .. } = &step.kind {
                let _ = fs::remove_dir_all(staging_dir(&ctx.options.state_dir, snapshot));
            }
        }
        reports.push(report);
    }
    let report = ExecutionReport {
        plan_id: plan.id.clone(),
        started,
        finished: ctx.audit.clock.now(),
        resumed,
        seconds: wall.elapsed().as_secs_f64(),
        steps: reports,
    };
    let lost = report.lost_files().len();
    let failed_checks = report.checks().iter().filter(|c| !c.ok).count();
    if report.is_complete() {
        audit(
            &ctx.audit,
            Action::RestoreFinished,
            Outcome::Success,
            object,
            format!(
                "{} steps done in {:.1} s",
                report.steps.len(),
                report.seconds
            ),
        )
        .await?;
    } else {
        audit(
            &ctx.audit,
            Action::RestoreFailed,
            Outcome::Failure,
            object,
            format!("{lost} files could not be restored, {failed_checks} checks failed"),
        )
        .await?;
    }
    Ok(report)
}

fn step_details(r: &StepReport) -> String {
    let o = &r.outcome;
    let mut s = format!(
        "{}: {:?} in {:.1} s; {} files ({} bytes) restored, {} already present",
        r.description, r.status, r.seconds, o.files, o.bytes, o.already_present
    );
    if !o.lost.is_empty() {
        s.push_str(&format!("; {} files lost: ", o.lost.len()));
        let names: Vec<&str> = o.lost.iter().take(20).map(|l| l.path.as_str()).collect();
        s.push_str(&names.join(", "));
    }
    for c in o.checks.iter().filter(|c| !c.ok) {
        s.push_str(&format!("; check {} failed", c.name));
    }
    s
}

fn staging_dir(state_dir: &Path, snapshot: &SnapshotId) -> PathBuf {
    state_dir.join(format!("staging-{snapshot}"))
}

fn manifest_copy(state_dir: &Path, snapshot: &SnapshotId) -> PathBuf {
    state_dir.join("manifests").join(snapshot.to_string())
}

struct Runner {
    key: Option<RepositoryKey>,
    manifests: HashMap<SnapshotId, Manifest>,
}

/// The part of a manifest that goes to one destination directory, with paths relative to it.
fn split(manifest: &Manifest, selection: &Selection, layout: &Layout) -> Vec<(PathBuf, Manifest)> {
    let mut groups: BTreeMap<PathBuf, Vec<Entry>> = BTreeMap::new();
    for e in manifest
        .entries
        .iter()
        .filter(|e| selection.matches(&e.path))
    {
        match layout.mapping_for(&e.path) {
            Some(m) => {
                let rest = e.path[m.from.len()..].trim_start_matches('/');
                let dest = layout.resolve(&m.to);
                let group = groups.entry(dest).or_default();
                // The mapped directory itself is the destination: created, not an entry.
                if !rest.is_empty() {
                    let mut e = e.clone();
                    e.path = rest.to_owned();
                    group.push(e);
                }
            }
            None => groups
                .entry(layout.root.clone())
                .or_default()
                .push(e.clone()),
        }
    }
    groups
        .into_iter()
        .map(|(dest, entries)| {
            let mut m = manifest.clone();
            m.entries = entries;
            (dest, m)
        })
        .collect()
}

fn merge(outcome: &mut StepOutcome, r: &ExtractReport) {
    outcome.files += r.files;
    outcome.bytes += r.bytes;
    outcome.already_present += r.already_present;
    for f in &r.failed {
        outcome.lost.push(LostFile {
            path: f.path.clone(),
            reason: f.reason.clone(),
            chunk: f.chunk.map(|c| c.to_string()),
        });
    }
    let warnings = r.metadata_warnings.len();
    if warnings > 0 {
        outcome.notes.push(format!(
            "{warnings} metadata items not restored (e.g. {})",
            r.metadata_warnings[0]
        ));
    }
    if !r.inconsistent.is_empty() {
        outcome.notes.push(format!(
            "{} files were changing during the backup (restored as read): {}",
            r.inconsistent.len(),
            r.inconsistent.join(", ")
        ));
    }
}

/// Removes the temporary files an interrupted run left for these entries.
fn remove_partials(dest: &Path, m: &Manifest) {
    for e in m
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File))
    {
        let p = dest.join(&e.path);
        if let (Some(parent), Some(name)) = (p.parent(), p.file_name()) {
            let temp = parent.join(format!(".{}.jfiv-partial", name.to_string_lossy()));
            if temp.exists() {
                let _ = fs::remove_file(temp);
            }
        }
    }
}

impl Runner {
    fn key(&mut self, plan: &RestorePlan, ctx: &ExecuteContext<'_>) -> Result<RepositoryKey> {
        if let Some(k) = &self.key {
            return Ok(k.clone());
        }
        let k = ctx.keys.key(&plan.key)?;
        self.key = Some(k.clone());
        Ok(k)
    }

    /// The manifest of `snapshot` if it can be had without reading a tape: cached, the local
    /// encrypted copy, or a disk target the plan restores the same snapshot from.
    async fn known_manifest(
        &mut self,
        plan: &RestorePlan,
        ctx: &ExecuteContext<'_>,
        snapshot: &SnapshotId,
    ) -> Option<Manifest> {
        let copy = manifest_copy(&ctx.options.state_dir, snapshot);
        let on_disk = plan.steps.iter().any(
            |s| matches!(&s.kind, StepKind::RestoreFromDisk { snapshot: sn, .. } if sn == snapshot),
        );
        if self.manifests.contains_key(snapshot) || copy.exists() || on_disk {
            self.manifest(plan, ctx, snapshot, None).await.ok()
        } else {
            None
        }
    }

    /// The manifest of `snapshot`: cached, else from the local encrypted copy, else from the
    /// disk target.
    async fn manifest(
        &mut self,
        plan: &RestorePlan,
        ctx: &ExecuteContext<'_>,
        snapshot: &SnapshotId,
        target: Option<&str>,
    ) -> Result<Manifest> {
        if let Some(m) = self.manifests.get(snapshot) {
            return Ok(m.clone());
        }
        let key = self.key(plan, ctx)?;
        let copy = manifest_copy(&ctx.options.state_dir, snapshot);
        let m = if let Ok(blob) = fs::read(&copy) {
            Manifest::decode(&key, snapshot, &blob)?
        } else {
            let name = target
                .map(str::to_owned)
                .or_else(|| {
                    plan.steps.iter().find_map(|s| match &s.kind {
                        StepKind::RestoreFromDisk {
                            target,
                            snapshot: sn,
                            ..
                        } if sn == snapshot => Some(target.clone()),
                        _ => None,
                    })
                })
                .ok_or_else(|| Error::PlanMismatch {
                    plan: plan.id.clone(),
                    reason: format!(
                        "no copy of the manifest of {snapshot} and no disk target holding it"
                    ),
                })?;
            let t = self.target(plan, ctx, &name)?;
            let blob = t.get_manifest(snapshot).await?;
            let m = Manifest::decode(&key, snapshot, &blob)?;
            write_atomically(&copy, &blob)?;
            m
        };
        self.manifests.insert(*snapshot, m.clone());
        Ok(m)
    }

    fn target(
        &self,
        plan: &RestorePlan,
        ctx: &ExecuteContext<'_>,
        name: &str,
    ) -> Result<Arc<dyn BackupTarget>> {
        ctx.disk_targets
            .get(name)
            .cloned()
            .ok_or_else(|| Error::PlanMismatch {
                plan: plan.id.clone(),
                reason: format!("the disk target {name} was not given"),
            })
    }

    async fn run_step(
        &mut self,
        plan: &RestorePlan,
        step: &Step,
        ctx: &mut ExecuteContext<'_>,
    ) -> Result<StepOutcome> {
        let mut outcome = StepOutcome::default();
        match &step.kind {
            StepKind::ObtainKey { .. } => {
                let key = self.key(plan, ctx)?;
                outcome
                    .notes
                    .push(format!("repository key fingerprint {}", key.fingerprint()));
            }
            StepKind::FetchTape { barcode, from } => {
                let tapes = tapes(plan, ctx)?;
                tapes.fetch(barcode, from)?;
            }
            StepKind::LoadTape { barcode } => {
                let tapes = tapes(plan, ctx)?;
                tapes.load(barcode)?;
            }
            StepKind::RestoreFromDisk {
                target,
                snapshot,
                selection,
                layout,
                ..
            } => {
                let key = self.key(plan, ctx)?;
                let manifest = self.manifest(plan, ctx, snapshot, Some(target)).await?;
                let t = self.target(plan, ctx, target)?;
                let sel = Selection::paths(selection.iter().cloned());
                let progress = Forward(ctx.progress);
                let groups = split(&manifest, &sel, layout);
                for (dest, part) in &groups {
                    remove_partials(dest, part);
                    let r = jfiv_backup::extract(
                        t.as_ref(),
                        &key,
                        part,
                        &Selection::all(),
                        dest,
                        ctx.options.extract,
                        &progress,
                    )
                    .await?;
                    merge(&mut outcome, &r);
                }
                make_durable(&groups, &mut outcome)?;
            }
            StepKind::RestoreFromTape {
                session,
                snapshot,
                volumes,
                selection,
                layout,
                ..
            } => {
                let key = self.key(plan, ctx)?;
                let sel = Selection::paths(selection.iter().cloned());
                let staging = staging_dir(&ctx.options.state_dir, snapshot);
                let _ = fs::remove_dir_all(&staging);
                let progress = ctx.progress;
                let options = ctx.options.extract;
                let groups = match self.known_manifest(plan, ctx, snapshot).await {
                    Some(manifest) => {
                        let groups = split(&manifest, &sel, layout);
                        let tapes = tapes(plan, ctx)?;
                        let t0 = Instant::now();
                        for r in stream_session(
                            tapes, session, volumes, snapshot, &key, &groups, options, progress,
                        )? {
                            merge(&mut outcome, &r);
                        }
                        outcome.notes.push(format!(
                            "session {session} restored straight from the tape stream in {:.2} s",
                            t0.elapsed().as_secs_f64()
                        ));
                        groups
                    }
                    None => {
                        let tapes = tapes(plan, ctx)?;
                        let t0 = Instant::now();
                        let spool =
                            spool_session(tapes, session, volumes, snapshot, &staging, progress)?;
                        let manifest = Manifest::decode(&key, snapshot, &spool.manifest)?;
                        write_atomically(
                            &manifest_copy(&ctx.options.state_dir, snapshot),
                            &spool.manifest,
                        )?;
                        self.manifests.insert(*snapshot, manifest.clone());
                        let groups = split(&manifest, &sel, layout);
                        let read_secs = t0.elapsed().as_secs_f64();
                        let t1 = Instant::now();
                        let result = extract_spooled(&key, &groups, &spool, options, progress);
                        // The spool is scratch: removed before the sync, so it is never written back.
                        drop(spool);
                        let _ = fs::remove_dir_all(&staging);
                        for r in result? {
                            merge(&mut outcome, &r);
                        }
                        outcome.notes.push(format!(
                            "session {session} read from tape into a spool in {read_secs:.2} s \
                             (the manifest is not known before the end of the session), then \
                             extracted in {:.2} s",
                            t1.elapsed().as_secs_f64()
                        ));
                        groups
                    }
                };
                make_durable(&groups, &mut outcome)?;
            }
            StepKind::VerifyTree {
                snapshot,
                selection,
                layout,
                ..
            } => {
                let manifest = self.manifest(plan, ctx, snapshot, None).await?;
                let sel = Selection::paths(selection.iter().cloned());
                let layout = layout.clone();
                let ignore = vec![ctx.options.state_dir.clone()];
                let check = tokio::task::spawn_blocking(move || {
                    check_tree(&manifest, &sel, &layout, &ignore)
                })
                .await
                .map_err(|e| Error::Step {
                    step: step.id.clone(),
                    what: step.kind.to_string(),
                    reason: format!("checker thread: {e}"),
                })?;
                outcome.bytes = check.bytes_ok;
                outcome
                    .checks
                    .push(check.to_result(&format!("tree of snapshot {snapshot}")));
            }
            StepKind::CheckDatabase { snapshot, layout } => {
                let manifest = self.manifest(plan, ctx, snapshot, None).await?;
                if manifest.databases.is_empty() {
                    for e in manifest.entries.iter().filter(|e| {
                        matches!(e.kind, EntryKind::File)
                            && (e.path.ends_with(".sqlite") || e.path.ends_with(".db"))
                    }) {
                        outcome
                            .checks
                            .push(check_sqlite(&layout.destination_of(&e.path), None));
                    }
                    if outcome.checks.is_empty() {
                        outcome.checks.push(CheckResult {
                            name: format!("database of snapshot {snapshot}"),
                            ok: false,
                            findings: vec![
                                "the snapshot records no database and holds no SQLite file".into(),
                            ],
                        });
                    }
                }
                for info in &manifest.databases {
                    let at = layout.destination_of(&info.path);
                    if info.engine == "sqlite" {
                        outcome
                            .checks
                            .push(check_sqlite(&at, Some(&info.row_counts)));
                    } else if let Some(h) = ctx
                        .database_hooks
                        .iter()
                        .find(|h| h.engine() == info.engine)
                    {
                        outcome.checks.push(h.restore_and_check(info, &at)?);
                    } else {
                        outcome.checks.push(CheckResult {
                            name: format!("database {} ({})", info.path, info.engine),
                            ok: false,
                            findings: vec![format!(
                                "no restore hook for engine {}: the files are restored and verified, \
                                 but loading them into the database server is not implemented here",
                                info.engine
                            )],
                        });
                    }
                }
            }
            StepKind::RunCheck { command, root } => {
                let command = command.clone();
                let root = root.clone();
                let r = tokio::task::spawn_blocking(move || run_check_command(&command, &root))
                    .await
                    .map_err(|e| Error::Step {
                        step: step.id.clone(),
                        what: step.kind.to_string(),
                        reason: format!("checker thread: {e}"),
                    })??;
                outcome.checks.push(r);
            }
        }
        Ok(outcome)
    }
}

fn tapes<'c>(
    plan: &RestorePlan,
    ctx: &'c mut ExecuteContext<'_>,
) -> Result<&'c mut dyn TapeAccess> {
    match ctx.tapes.as_deref_mut() {
        Some(t) => Ok(t),
        None => Err(Error::PlanMismatch {
            plan: plan.id.clone(),
            reason: "the plan reads tapes and no tape access was given".into(),
        }),
    }
}

/// Makes every destination of `groups` durable: one `syncfs` per destination (a file system
/// with nothing dirty returns at once). Must succeed before the step is checkpointed.
fn make_durable(groups: &[(PathBuf, Manifest)], outcome: &mut StepOutcome) -> Result<()> {
    let t0 = Instant::now();
    for (dest, _) in groups {
        let dir = fs::File::open(dest).map_err(|e| Error::io("open", dest, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io("syncfs", dest, e.into()))?;
    }
    outcome.notes.push(format!(
        "destination made durable (syncfs) in {:.2} s",
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn report_outcomes(progress: &dyn RestoreProgress, outcomes: Vec<FileOutcome>) {
    for o in outcomes {
        match &o {
            FileOutcome::Restored { path, bytes } => progress.report(&RestoreEvent::FileRestored {
                path,
                bytes: *bytes,
            }),
            FileOutcome::Failed(f) => progress.report(&RestoreEvent::FileFailed {
                path: &f.path,
                reason: &f.reason,
            }),
        }
    }
}

/// One extractor per destination, with its worker threads (the cores shared among them).
fn extractors(
    key: &RepositoryKey,
    groups: &[(PathBuf, Manifest)],
    options: ExtractOptions,
    progress: &dyn RestoreProgress,
) -> Result<Vec<Extractor>> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = (cores / groups.len().max(1)).max(1);
    let mut out = Vec::with_capacity(groups.len());
    for (dest, part) in groups {
        remove_partials(dest, part);
        let mut ex = Extractor::new(key, part, &Selection::all(), dest, options)?;
        report_outcomes(progress, ex.take_outcomes());
        ex.start_workers(workers)?;
        out.push(ex);
    }
    Ok(out)
}

fn session_error(volumes: &[crate::TapeVolume], reason: String) -> Error {
    Error::Tape {
        tape: volumes
            .last()
            .map(|v| v.barcode.clone())
            .unwrap_or_default(),
        file: volumes.last().map_or(0, |v| v.file),
        reason,
    }
}

/// Reads a session once and extracts `groups` (whose manifest is known) straight from the
/// stream: each chunk is handed to the extractors' workers as it is read.
#[allow(clippy::too_many_arguments)]
fn stream_session(
    tapes: &mut dyn TapeAccess,
    session: &str,
    volumes: &[crate::TapeVolume],
    snapshot: &SnapshotId,
    key: &RepositoryKey,
    groups: &[(PathBuf, Manifest)],
    options: ExtractOptions,
    progress: &dyn RestoreProgress,
) -> Result<Vec<ExtractReport>> {
    let mut exs = extractors(key, groups, options, progress)?;
    let mut manifest_seen = false;
    tapes.read_session(session, volumes, &mut |item| {
        match item {
            TapeItem::Chunk { id, blob } => {
                for ex in &mut exs {
                    if ex.wants(&id) {
                        report_outcomes(progress, ex.feed_blob(&id, blob));
                    }
                }
            }
            TapeItem::Manifest { snapshot: s, .. } => {
                if s != *snapshot {
                    return Err(session_error(
                        volumes,
                        format!("the session holds snapshot {s}, the plan expects {snapshot}"),
                    ));
                }
                manifest_seen = true;
            }
        }
        Ok(())
    })?;
    if !manifest_seen {
        return Err(session_error(
            volumes,
            "the session was read without its manifest".into(),
        ));
    }
    Ok(exs
        .into_iter()
        .map(|mut ex| {
            report_outcomes(progress, ex.stop_workers());
            ex.finish()
        })
        .collect())
}

/// A session read into one spool file: its encrypted chunks, where they are, and its manifest.
#[derive(Debug)]
struct Spool {
    file: fs::File,
    path: PathBuf,
    index: HashMap<ChunkId, (u64, usize)>,
    manifest: Vec<u8>,
}

/// Reads a session once, appending every chunk to `staging/chunks.spool` (mode 0600, no
/// syncs: see the module docs), and keeps its manifest.
fn spool_session(
    tapes: &mut dyn TapeAccess,
    session: &str,
    volumes: &[crate::TapeVolume],
    snapshot: &SnapshotId,
    staging: &Path,
    progress: &dyn RestoreProgress,
) -> Result<Spool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::create_dir_all(staging).map_err(|e| Error::io("create", staging, e))?;
    let path = staging.join("chunks.spool");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("create", &path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut index: HashMap<ChunkId, (u64, usize)> = HashMap::new();
    let mut at = 0u64;
    let mut manifest: Option<Vec<u8>> = None;
    tapes.read_session(session, volumes, &mut |item| {
        match item {
            TapeItem::Chunk { id, blob } => {
                if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(id) {
                    out.write_all(blob)
                        .map_err(|e| Error::io("write", &path, e))?;
                    slot.insert((at, blob.len()));
                    at += blob.len() as u64;
                    progress.report(&RestoreEvent::ChunkStaged {
                        bytes: blob.len() as u64,
                    });
                }
            }
            TapeItem::Manifest { snapshot: s, blob } => {
                if s != *snapshot {
                    return Err(session_error(
                        volumes,
                        format!("the session holds snapshot {s}, the plan expects {snapshot}"),
                    ));
                }
                manifest = Some(blob.to_vec());
            }
        }
        Ok(())
    })?;
    let manifest = manifest.ok_or_else(|| {
        session_error(volumes, "the session was read without its manifest".into())
    })?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io("write", &path, e.into_error()))?;
    Ok(Spool {
        file,
        path,
        index,
        manifest,
    })
}

/// Extracts `groups` from the spool, in manifest order.
fn extract_spooled(
    key: &RepositoryKey,
    groups: &[(PathBuf, Manifest)],
    spool: &Spool,
    options: ExtractOptions,
    progress: &dyn RestoreProgress,
) -> Result<Vec<ExtractReport>> {
    use std::os::unix::fs::FileExt;
    let mut reports = Vec::with_capacity(groups.len());
    for ex in extractors(key, groups, options, progress)? {
        // One destination at a time, each with every core.
        let mut ex = ex;
        for id in ex.wanted() {
            let outcomes = match spool.index.get(&id) {
                Some(&(at, len)) => {
                    let mut blob = vec![0u8; len];
                    match spool.file.read_exact_at(&mut blob, at) {
                        Ok(()) => ex.feed_owned(&id, blob),
                        Err(e) => ex.chunk_unavailable(
                            &id,
                            &format!("spool {} unreadable: {e}", spool.path.display()),
                        ),
                    }
                }
                None => ex.chunk_unavailable(&id, "not on the tape (missing or unreadable record)"),
            };
            report_outcomes(progress, outcomes);
        }
        report_outcomes(progress, ex.stop_workers());
        reports.push(ex.finish());
    }
    Ok(reports)
}

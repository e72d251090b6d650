//! The restore plan: a pure function of the inventory, the request and the time.
//!
//! [`RestorePlan::compute`] chooses, for each part of the request, the latest backup that
//! completed and verified (falling back past damaged, incomplete or unverified ones, and saying
//! so), lists the media and where each one is, the key to use, the age of the data (RPO) and an
//! estimate of each step's duration from measured throughputs (RTO). A dry run is "compute and
//! print" (the plan implements `Display`); the JSON form is what `execute` runs.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use jfiv_audit::Clock;
use jfiv_backup::SnapshotId;
use serde::{Deserialize, Serialize};

use crate::inventory::{
    DiskSnapshot, Inventory, KeyMaterial, Location, MeasureKind, Measurement, TapeSession,
    TapeVolume, Verification,
};
use crate::request::{CheckCommand, PathMapping, RestoreRequest, Scope};
use crate::{CatalogOrigin, Error, Result};

/// Which part of the server a backup is restored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The application server files.
    Application,
    /// The database.
    Database,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Application => "application files",
            Role::Database => "database",
        })
    }
}

/// Where a chosen backup is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "medium", rename_all = "kebab-case")]
pub enum Medium {
    /// A disk target.
    Disk {
        /// The target's name.
        target: String,
        /// Where the disk is.
        location: String,
    },
    /// A tape session.
    Tape {
        /// The session id.
        session: String,
        /// Its volumes, in order.
        volumes: Vec<TapeVolume>,
    },
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Medium::Disk { target, location } => write!(f, "disk target {target} ({location})"),
            Medium::Tape { session, volumes } => {
                write!(f, "tape session {session} on ")?;
                for (i, v) in volumes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{} file {}", v.barcode, v.file)?;
                }
                Ok(())
            }
        }
    }
}

/// The backup chosen for one role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenBackup {
    /// For what.
    pub role: Role,
    /// The source name.
    pub source: String,
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// When the backup started: the data is as of this time.
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: Option<DateTime<Utc>>,
    /// Where it is read from.
    pub medium: Medium,
    /// Its last verification.
    pub verification: Verification,
    /// Bytes to read (file bytes on disk, chunk bytes on tape).
    pub bytes: u64,
    /// Files, when known before reading the manifest.
    pub files: Option<u64>,
}

/// A backup the planner did not use, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// For what.
    pub role: Role,
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Where it is.
    pub medium: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// Why it was not used.
    pub reason: String,
}

/// Where the entries of a snapshot go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Entries go to `<root>/<path>`...
    pub root: PathBuf,
    /// ...unless a mapping (longest prefix) sends them elsewhere.
    #[serde(default)]
    pub mappings: Vec<PathMapping>,
}

impl Layout {
    /// The destination of snapshot path `path`.
    pub fn destination_of(&self, path: &str) -> PathBuf {
        match self.mapping_for(path) {
            Some(m) => {
                let rest = path[m.from.len()..].trim_start_matches('/');
                let to = self.resolve(&m.to);
                if rest.is_empty() { to } else { to.join(rest) }
            }
            None => self.root.join(path),
        }
    }

    /// The mapping that applies to `path`, if any (longest prefix).
    pub fn mapping_for(&self, path: &str) -> Option<&PathMapping> {
        self.mappings
            .iter()
            .filter(|m| {
                path == m.from
                    || (path.starts_with(m.from.as_str())
                        && path.as_bytes().get(m.from.len()) == Some(&b'/'))
            })
            .max_by_key(|m| m.from.len())
    }

    /// Resolves a mapping target (absolute, or relative to the root).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    fn rerooted(&self, old: &Path, new: &Path) -> Self {
        let move_path = |p: &Path| match p.strip_prefix(old) {
            Ok(rest) => new.join(rest),
            Err(_) => new.join(p.strip_prefix("/").unwrap_or(p)),
        };
        Self {
            root: move_path(&self.root),
            mappings: self
                .mappings
                .iter()
                .map(|m| PathMapping {
                    from: m.from.clone(),
                    to: if m.to.is_absolute() {
                        move_path(&m.to)
                    } else {
                        m.to.clone()
                    },
                })
                .collect(),
        }
    }
}

/// How the key is obtained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum KeyPlan {
    /// Open the key file with its passphrase.
    KeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// Type the paper key kept in the safe.
    PaperKey {
        /// Where it is kept.
        kept_at: String,
    },
}

/// What one step does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StepKind {
    /// Get the repository key.
    ObtainKey {
        /// How.
        key: KeyPlan,
    },
    /// Fetch a tape from where it is.
    FetchTape {
        /// Barcode.
        barcode: String,
        /// Where it is now.
        from: Location,
    },
    /// Load a tape into the drive or library.
    LoadTape {
        /// Barcode.
        barcode: String,
    },
    /// Restore a snapshot from a disk target.
    RestoreFromDisk {
        /// For what.
        role: Role,
        /// The disk target.
        target: String,
        /// The snapshot.
        snapshot: SnapshotId,
        /// Selected snapshot paths (empty: everything).
        selection: Vec<String>,
        /// Where it goes.
        layout: Layout,
    },
    /// Restore a snapshot from a tape session (read once: straight from the stream when the
    /// manifest is known, else through a scratch spool, see [`crate::execute()`]).
    RestoreFromTape {
        /// For what.
        role: Role,
        /// The session.
        session: String,
        /// The snapshot.
        snapshot: SnapshotId,
        /// The volumes, in order.
        volumes: Vec<TapeVolume>,
        /// Selected snapshot paths (empty: everything).
        selection: Vec<String>,
        /// Where it goes.
        layout: Layout,
    },
    /// Check the restored tree against the manifest: count, sizes, BLAKE3, symlinks.
    VerifyTree {
        /// For what.
        role: Role,
        /// The snapshot.
        snapshot: SnapshotId,
        /// Selected snapshot paths (empty: everything).
        selection: Vec<String>,
        /// Where it went.
        layout: Layout,
    },
    /// Open each restored database, run its integrity check, and compare table row counts
    /// with those recorded at backup time.
    CheckDatabase {
        /// The database snapshot.
        snapshot: SnapshotId,
        /// Where it went.
        layout: Layout,
    },
    /// Run a user-provided check command.
    RunCheck {
        /// The command.
        command: CheckCommand,
        /// The destination root (given to the command as `JFIV_RESTORE_ROOT`).
        root: PathBuf,
    },
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKind::ObtainKey {
                key: KeyPlan::KeyFile { path },
            } => write!(
                f,
                "open the key file {} with its passphrase",
                path.display()
            ),
            StepKind::ObtainKey {
                key: KeyPlan::PaperKey { kept_at },
            } => write!(
                f,
                "take the paper key from {kept_at} and type it in (the key file is not available)"
            ),
            StepKind::FetchTape { barcode, from } => write!(f, "fetch tape {barcode} {from}"),
            StepKind::LoadTape { barcode } => write!(f, "load tape {barcode} into the drive"),
            StepKind::RestoreFromDisk {
                role,
                target,
                snapshot,
                selection,
                layout,
            } => {
                write!(
                    f,
                    "restore the {role} (snapshot {snapshot}) from disk target {target} into {}",
                    layout.root.display()
                )?;
                write_selection(f, selection)
            }
            StepKind::RestoreFromTape {
                role,
                session,
                snapshot,
                volumes,
                selection,
                layout,
            } => {
                write!(
                    f,
                    "restore the {role} (snapshot {snapshot}) from tape session {session} ("
                )?;
                for (i, v) in volumes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", then ")?;
                    }
                    write!(f, "{} file {}", v.barcode, v.file)?;
                }
                write!(f, ") into {}", layout.root.display())?;
                write_selection(f, selection)
            }
            StepKind::VerifyTree { role, snapshot, .. } => write!(
                f,
                "verify the restored {role} against the manifest of {snapshot} (count, sizes, BLAKE3)"
            ),
            StepKind::CheckDatabase { snapshot, .. } => write!(
                f,
                "check the restored database of {snapshot}: opens, integrity check, row counts as at backup"
            ),
            StepKind::RunCheck { command, .. } => {
                write!(
                    f,
                    "run the check {:?} ({})",
                    command.name,
                    command.program.display()
                )
            }
        }
    }
}

fn write_selection(f: &mut fmt::Formatter<'_>, selection: &[String]) -> fmt::Result {
    if selection.is_empty() {
        Ok(())
    } else {
        write!(f, ", only {}", selection.join(", "))
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// A stable id, unique in the plan (the checkpoint key).
    pub id: String,
    /// What it does.
    pub kind: StepKind,
    /// Estimated duration in seconds.
    pub estimate_secs: f64,
    /// How the estimate was made.
    pub estimate_basis: String,
}

/// The age of the restored data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rpo {
    /// The data restored is as of this time (the start of the oldest backup used).
    pub data_as_of: DateTime<Utc>,
    /// How old it is at planning time, in seconds: what was entered since is lost.
    pub age_secs: i64,
}

/// The throughputs and handling times the estimates use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Restoring from disk, bytes per second.
    pub disk_restore_bps: f64,
    /// Reading tape, bytes per second.
    pub tape_read_bps: f64,
    /// Hashing a restored tree, bytes per second.
    pub tree_check_bps: f64,
    /// Which of the three were measured (the others are defaults).
    pub measured: Vec<MeasureKind>,
    /// Fetching a tape from the offsite room, seconds.
    pub fetch_offsite_secs: f64,
    /// Fetching a tape from the server room shelf, seconds.
    pub fetch_server_room_secs: f64,
    /// Finding a tape whose location is not recorded, seconds.
    pub fetch_unknown_secs: f64,
    /// Loading a tape and positioning it, seconds.
    pub load_secs: f64,
}

impl Rates {
    /// Default throughputs (conservative: 80 MB/s disk restore, 120 MB/s tape read, 300 MB/s
    /// hashing) replaced by the median of the measurements of each kind.
    pub fn from_measurements(measurements: &[Measurement]) -> Self {
        let mut by_kind: HashMap<MeasureKind, Vec<f64>> = HashMap::new();
        for m in measurements {
            if m.seconds > 0.0 && m.bytes > 0 {
                by_kind
                    .entry(m.kind)
                    .or_default()
                    .push(m.bytes as f64 / m.seconds);
            }
        }
        let mut measured = Vec::new();
        let mut rate = |kinds: &[MeasureKind], default: f64| {
            let mut v: Vec<f64> = kinds
                .iter()
                .flat_map(|k| by_kind.get(k).cloned().unwrap_or_default())
                .collect();
            if v.is_empty() {
                return default;
            }
            measured.extend_from_slice(kinds);
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let disk = rate(&[MeasureKind::DiskRestore], 80e6);
        let tape = rate(&[MeasureKind::TapeRead], 120e6);
        let check = rate(&[MeasureKind::TreeCheck, MeasureKind::DiskVerify], 300e6);
        measured.dedup();
        Self {
            disk_restore_bps: disk,
            tape_read_bps: tape,
            tree_check_bps: check,
            measured,
            fetch_offsite_secs: 1800.0,
            fetch_server_room_secs: 600.0,
            fetch_unknown_secs: 3600.0,
            load_secs: 120.0,
        }
    }

    fn basis(&self, kind: MeasureKind, bps: f64) -> String {
        let how = if self.measured.contains(&kind) {
            "measured"
        } else {
            "default, not measured"
        };
        format!("{:.0} MB/s ({how})", bps / 1e6)
    }
}

/// A computed restore plan (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// A stable id: the BLAKE3 of the inventory, the request and the planning time.
    pub id: String,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// The request.
    pub request: RestoreRequest,
    /// Where the tape facts came from.
    pub tape_catalog: CatalogOrigin,
    /// The key to use.
    pub key: KeyPlan,
    /// The backups chosen.
    pub chosen: Vec<ChosenBackup>,
    /// Newer backups not used, and why.
    pub refused: Vec<Refused>,
    /// The tapes needed, in the order they are read, with where each one is now.
    pub media: Vec<TapeVolume>,
    /// The age of the restored data.
    pub rpo: Rpo,
    /// The rates behind the estimates.
    pub rates: Rates,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What the reader must know (fallbacks, unverified backups, unknown tape locations).
    pub warnings: Vec<String>,
}

impl RestorePlan {
    /// Computes the plan for `request` from `inventory` at `clock.now()` (pure: no I/O).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`], [`Error::NoUsableBackup`] when a requested part has no
    /// usable backup, [`Error::NoKey`].
    pub fn compute(
        inventory: &Inventory,
        request: &RestoreRequest,
        clock: &dyn Clock,
    ) -> Result<Self> {
        request.validate()?;
        let now = clock.now();
        let mut warnings: Vec<String> = inventory.notes.clone();
        let mut refused = Vec::new();
        let mut chosen = Vec::new();
        if request.wants_application() {
            chosen.push(choose(
                inventory,
                request,
                Role::Application,
                &request.application_source,
                &mut refused,
                &mut warnings,
            )?);
        }
        if request.wants_database() {
            chosen.push(choose(
                inventory,
                request,
                Role::Database,
                &request.database_source,
                &mut refused,
                &mut warnings,
            )?);
        }
        let key = choose_key(&inventory.keys)?;
        if let KeyPlan::PaperKey { .. } = key {
            warnings.push(
                "the key file is not available: the paper key from the safe is needed".into(),
            );
        }
        if inventory.tape_catalog == CatalogOrigin::TapeScan {
            warnings.push(
                "the tape facts come from a catalog rebuilt by scanning the tapes (the disk catalog is gone)"
                    .into(),
            );
        }
        let rates = Rates::from_measurements(&inventory.measurements);
        let app_layout = Layout {
            root: request.destination.clone(),
            mappings: request.mappings.clone(),
        };
        let db_layout = Layout {
            root: request.resolve(&request.database_dir),
            mappings: Vec::new(),
        };
        let selection = match &request.scope {
            Scope::Paths { paths } => paths
                .iter()
                .map(|p| p.trim_matches('/').to_owned())
                .collect(),
            _ => Vec::new(),
        };

        let mut steps = Vec::new();
        let mut media: Vec<TapeVolume> = Vec::new();
        let key_secs = match key {
            KeyPlan::KeyFile { .. } => 60.0,
            KeyPlan::PaperKey { .. } => 900.0,
        };
        steps.push(Step {
            id: "obtain-key".into(),
            kind: StepKind::ObtainKey { key: key.clone() },
            estimate_secs: key_secs,
            estimate_basis: "operator handling time".into(),
        });
        // Fetch every tape first: someone walks to the other room while the disk restore runs.
        for c in &chosen {
            if let Medium::Tape { volumes, .. } = &c.medium {
                for v in volumes {
                    if media.iter().any(|m| m.barcode == v.barcode) {
                        continue;
                    }
                    media.push(v.clone());
                    if v.location.needs_fetch() {
                        let secs = match v.location {
                            Location::Offsite { .. } => rates.fetch_offsite_secs,
                            Location::ServerRoom { .. } => rates.fetch_server_room_secs,
                            _ => rates.fetch_unknown_secs,
                        };
                        if v.location == Location::Unknown {
                            warnings.push(format!(
                                "the location of tape {} is not recorded: find it before starting",
                                v.barcode
                            ));
                        }
                        steps.push(Step {
                            id: format!("fetch-{}", v.barcode),
                            kind: StepKind::FetchTape {
                                barcode: v.barcode.clone(),
                                from: v.location.clone(),
                            },
                            estimate_secs: secs,
                            estimate_basis: "operator handling time".into(),
                        });
                    }
                }
            }
        }
        for c in chosen
            .iter()
            .filter(|c| matches!(c.medium, Medium::Disk { .. }))
        {
            let Medium::Disk { target, .. } = &c.medium else {
                continue;
            };
            let layout = layout_for(c.role, &app_layout, &db_layout);
            steps.push(Step {
                id: format!("restore-disk-{}", c.snapshot),
                kind: StepKind::RestoreFromDisk {
                    role: c.role,
                    target: target.clone(),
                    snapshot: c.snapshot,
                    selection: sel_for(c.role, &selection),
                    layout,
                },
                estimate_secs: c.bytes as f64 / rates.disk_restore_bps,
                estimate_basis: format!(
                    "{} bytes at {}",
                    c.bytes,
                    rates.basis(MeasureKind::DiskRestore, rates.disk_restore_bps)
                ),
            });
        }
        for c in chosen
            .iter()
            .filter(|c| matches!(c.medium, Medium::Tape { .. }))
        {
            let Medium::Tape { session, volumes } = &c.medium else {
                continue;
            };
            for v in volumes {
                let id = format!("load-{}", v.barcode);
                if steps.iter().any(|s| s.id == id) {
                    continue;
                }
                steps.push(Step {
                    id,
                    kind: StepKind::LoadTape {
                        barcode: v.barcode.clone(),
                    },
                    estimate_secs: rates.load_secs,
                    estimate_basis: "drive load and positioning".into(),
                });
            }
            let layout = layout_for(c.role, &app_layout, &db_layout);
            steps.push(Step {
                id: format!("restore-tape-{}", c.snapshot),
                kind: StepKind::RestoreFromTape {
                    role: c.role,
                    session: session.clone(),
                    snapshot: c.snapshot,
                    volumes: volumes.clone(),
                    selection: sel_for(c.role, &selection),
                    layout,
                },
                estimate_secs: c.bytes as f64 / rates.tape_read_bps
                    + c.bytes as f64 / rates.disk_restore_bps,
                estimate_basis: format!(
                    "{} bytes read at {}, then extracted at {}",
                    c.bytes,
                    rates.basis(MeasureKind::TapeRead, rates.tape_read_bps),
                    rates.basis(MeasureKind::DiskRestore, rates.disk_restore_bps)
                ),
            });
        }
        for c in &chosen {
            steps.push(Step {
                id: format!("verify-{}", c.snapshot),
                kind: StepKind::VerifyTree {
                    role: c.role,
                    snapshot: c.snapshot,
                    selection: sel_for(c.role, &selection),
                    layout: layout_for(c.role, &app_layout, &db_layout),
                },
                estimate_secs: c.bytes as f64 / rates.tree_check_bps,
                estimate_basis: format!(
                    "{} bytes hashed at {}",
                    c.bytes,
                    rates.basis(MeasureKind::TreeCheck, rates.tree_check_bps)
                ),
            });
        }
        for c in chosen.iter().filter(|c| c.role == Role::Database) {
            steps.push(Step {
                id: format!("check-db-{}", c.snapshot),
                kind: StepKind::CheckDatabase {
                    snapshot: c.snapshot,
                    layout: db_layout.clone(),
                },
                estimate_secs: c.bytes as f64 / rates.tree_check_bps + 5.0,
                estimate_basis: "integrity check reads the whole database".into(),
            });
        }
        for (i, command) in request.check_commands.iter().enumerate() {
            steps.push(Step {
                id: format!("check-command-{i}"),
                kind: StepKind::RunCheck {
                    command: command.clone(),
                    root: request.destination.clone(),
                },
                estimate_secs: command.timeout_secs as f64,
                estimate_basis: "the command's timeout (upper bound)".into(),
            });
        }
        let data_as_of = chosen.iter().map(|c| c.started).min().unwrap_or(now);
        let rpo = Rpo {
            data_as_of,
            age_secs: (now - data_as_of).num_seconds(),
        };
        let mut plan = Self {
            id: String::new(),
            computed_at: now,
            request: request.clone(),
            tape_catalog: inventory.tape_catalog,
            key,
            chosen,
            refused,
            media,
            rpo,
            rates,
            steps,
            warnings,
        };
        let json = serde_json::to_vec(&(inventory, &plan)).map_err(|e| Error::InvalidRequest {
            reason: format!("cannot serialise the plan: {e}"),
        })?;
        plan.id = blake3::hash(&json).to_hex()[..16].to_owned();
        Ok(plan)
    }

    /// The estimated total duration (RTO) in seconds, steps run one after the other.
    pub fn estimated_rto_secs(&self) -> f64 {
        self.steps.iter().map(|s| s.estimate_secs).sum()
    }

    /// The same plan restoring into `root` instead (a drill into a scratch directory): every
    /// destination under the old root moves under the new one, absolute ones outside it are
    /// re-rooted too, so that a drill never writes outside `root`.
    pub fn rerooted(&self, root: &Path) -> Self {
        let old = self.request.destination.clone();
        let mut plan = self.clone();
        plan.request.destination = root.to_path_buf();
        for step in &mut plan.steps {
            match &mut step.kind {
                StepKind::RestoreFromDisk { layout, .. }
                | StepKind::RestoreFromTape { layout, .. }
                | StepKind::VerifyTree { layout, .. }
                | StepKind::CheckDatabase { layout, .. } => *layout = layout.rerooted(&old, root),
                StepKind::RunCheck { root: r, .. } => *r = root.to_path_buf(),
                _ => {}
            }
        }
        plan.id = format!("{}-drill", self.id);
        plan
    }

    /// The plan as pretty JSON.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] if serialisation fails (it does not).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::InvalidRequest {
            reason: format!("cannot serialise the plan: {e}"),
        })
    }
}

fn layout_for(role: Role, app: &Layout, db: &Layout) -> Layout {
    match role {
        Role::Application => app.clone(),
        Role::Database => db.clone(),
    }
}

fn sel_for(role: Role, selection: &[String]) -> Vec<String> {
    match role {
        Role::Application => selection.to_vec(),
        Role::Database => Vec::new(),
    }
}

fn choose_key(keys: &[KeyMaterial]) -> Result<KeyPlan> {
    if let Some(KeyMaterial::KeyFile { path, .. }) = keys.iter().find(|k| {
        matches!(
            k,
            KeyMaterial::KeyFile {
                available: true,
                ..
            }
        )
    }) {
        return Ok(KeyPlan::KeyFile { path: path.clone() });
    }
    if let Some(KeyMaterial::PaperKey { kept_at }) = keys
        .iter()
        .find(|k| matches!(k, KeyMaterial::PaperKey { .. }))
    {
        return Ok(KeyPlan::PaperKey {
            kept_at: kept_at.clone(),
        });
    }
    Err(Error::NoKey)
}

enum Candidate<'a> {
    Disk(&'a DiskSnapshot),
    Tape(&'a TapeSession),
}

impl Candidate<'_> {
    fn started(&self) -> DateTime<Utc> {
        match self {
            Candidate::Disk(d) => d.started,
            Candidate::Tape(t) => t.started,
        }
    }
    fn snapshot(&self) -> SnapshotId {
        match self {
            Candidate::Disk(d) => d.snapshot,
            Candidate::Tape(t) => t.snapshot,
        }
    }
    fn verification(&self) -> &Verification {
        match self {
            Candidate::Disk(d) => &d.verification,
            Candidate::Tape(t) => &t.verification,
        }
    }
    fn medium(&self) -> Medium {
        match self {
            Candidate::Disk(d) => Medium::Disk {
                target: d.target.clone(),
                location: d.location.clone(),
            },
            Candidate::Tape(t) => Medium::Tape {
                session: t.session.clone(),
                volumes: t.volumes.clone(),
            },
        }
    }
    fn into_chosen(self, role: Role, source: &str) -> ChosenBackup {
        let medium = self.medium();
        match self {
            Candidate::Disk(d) => ChosenBackup {
                role,
                source: source.to_owned(),
                snapshot: d.snapshot,
                started: d.started,
                finished: Some(d.finished),
                medium,
                verification: d.verification.clone(),
                bytes: d.bytes,
                files: Some(d.files),
            },
            Candidate::Tape(t) => ChosenBackup {
                role,
                source: source.to_owned(),
                snapshot: t.snapshot,
                started: t.started,
                finished: t.finished,
                medium,
                verification: t.verification.clone(),
                bytes: t.chunk_bytes,
                files: None,
            },
        }
    }
}

fn choose(
    inventory: &Inventory,
    request: &RestoreRequest,
    role: Role,
    source: &str,
    refused: &mut Vec<Refused>,
    warnings: &mut Vec<String>,
) -> Result<ChosenBackup> {
    let limit = match request.point {
        crate::PointInTime::Latest => None,
        crate::PointInTime::AsOf { at } => Some(at),
    };
    let mut candidates: Vec<Candidate<'_>> = inventory
        .disk_snapshots
        .iter()
        .filter(|d| d.source == source)
        .map(Candidate::Disk)
        .chain(
            inventory
                .tape_sessions
                .iter()
                .filter(|t| t.source == source)
                .map(Candidate::Tape),
        )
        .filter(|c| limit.is_none_or(|at| c.started() <= at))
        .collect();
    // Newest first; for the same time, disk (faster, random access) before tape.
    candidates.sort_by(|a, b| {
        b.started()
            .cmp(&a.started())
            .then_with(|| matches!(a, Candidate::Tape(_)).cmp(&matches!(b, Candidate::Tape(_))))
    });
    let mut unverified: Vec<Candidate<'_>> = Vec::new();
    let mut local_refused = Vec::new();
    let mut found = None;
    for c in candidates {
        let refuse = |reason: String| Refused {
            role,
            snapshot: c.snapshot(),
            medium: c.medium().to_string(),
            started: c.started(),
            reason,
        };
        if let Candidate::Tape(t) = &c {
            if !t.complete {
                local_refused.push(refuse(format!(
                    "tape session incomplete: {}",
                    t.incomplete_reason
                        .as_deref()
                        .unwrap_or("no reason recorded")
                )));
                continue;
            }
            if t.volumes.is_empty() {
                local_refused.push(refuse("tape session without volumes in the catalog".into()));
                continue;
            }
        }
        match c.verification() {
            Verification::Damaged { reason, .. } => {
                local_refused.push(refuse(format!("damaged at verification: {reason}")));
            }
            Verification::NotVerified => unverified.push(c),
            Verification::Ok { .. } => {
                found = Some(c);
                break;
            }
        }
    }
    let chosen = match found {
        Some(c) => {
            for u in &unverified {
                local_refused.push(Refused {
                    role,
                    snapshot: u.snapshot(),
                    medium: u.medium().to_string(),
                    started: u.started(),
                    reason: "newer but never verified: verify it first to restore fresher data"
                        .into(),
                });
            }
            c
        }
        None => match unverified.into_iter().next() {
            Some(c) => {
                warnings.push(format!(
                    "no verified backup of {source}: using snapshot {} ({}), which was never verified",
                    c.snapshot(),
                    c.medium()
                ));
                c
            }
            None => {
                let skipped = if local_refused.is_empty() {
                    "no backup of this source in the inventory".to_owned()
                } else {
                    local_refused
                        .iter()
                        .map(|r| format!("{} ({}): {}", r.snapshot, r.medium, r.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Err(Error::NoUsableBackup {
                    source_name: source.to_owned(),
                    as_of: request.point.to_string(),
                    skipped,
                });
            }
        },
    };
    for r in local_refused
        .iter()
        .filter(|r| r.started > chosen.started())
    {
        warnings.push(format!(
            "{role}: fell back past snapshot {} of {} ({}): {}",
            r.snapshot,
            r.started.to_rfc3339(),
            r.medium,
            r.reason
        ));
    }
    refused.extend(local_refused);
    Ok(chosen.into_chosen(role, source))
}

fn fmt_secs(secs: f64) -> String {
    let s = secs.round() as i64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl fmt::Display for RestorePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Restore plan {} (computed {})",
            self.id,
            self.computed_at.to_rfc3339()
        )?;
        writeln!(
            f,
            "Request: {:?}, {}, into {}",
            self.request.scope,
            self.request.point,
            self.request.destination.display()
        )?;
        writeln!(f)?;
        writeln!(f, "Backups used:")?;
        for c in &self.chosen {
            let verified = match &c.verification {
                Verification::Ok { at } => format!("verified {}", at.to_rfc3339()),
                Verification::NotVerified => "NOT verified".to_owned(),
                Verification::Damaged { .. } => "damaged".to_owned(),
            };
            writeln!(
                f,
                "  - {}: snapshot {} of {} taken {}, from {} ({verified})",
                c.role,
                c.snapshot,
                c.source,
                c.started.to_rfc3339(),
                c.medium
            )?;
        }
        if !self.refused.is_empty() {
            writeln!(f, "Backups not used:")?;
            for r in &self.refused {
                writeln!(
                    f,
                    "  - {}: snapshot {} of {} ({}): {}",
                    r.role,
                    r.snapshot,
                    r.started.to_rfc3339(),
                    r.medium,
                    r.reason
                )?;
            }
        }
        if !self.media.is_empty() {
            writeln!(f, "Tapes needed, in reading order:")?;
            for v in &self.media {
                writeln!(f, "  - {} (file {}), now {}", v.barcode, v.file, v.location)?;
            }
        }
        match &self.key {
            KeyPlan::KeyFile { path } => {
                writeln!(f, "Key: the key file {} and its passphrase", path.display())?
            }
            KeyPlan::PaperKey { kept_at } => writeln!(f, "Key: the paper key kept at {kept_at}")?,
        }
        writeln!(
            f,
            "Data age (RPO): the restored data is as of {}, {} old: what was entered since is lost",
            self.rpo.data_as_of.to_rfc3339(),
            fmt_secs(self.rpo.age_secs as f64)
        )?;
        writeln!(
            f,
            "Estimated duration (RTO): {}",
            fmt_secs(self.estimated_rto_secs())
        )?;
        writeln!(f)?;
        writeln!(f, "Steps:")?;
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "  {:>2}. {} [~{}; {}]",
                i + 1,
                s.kind,
                fmt_secs(s.estimate_secs),
                s.estimate_basis
            )?;
        }
        writeln!(
            f,
            "  {:>2}. record the outcome in the audit trail",
            self.steps.len() + 1
        )?;
        if !self.warnings.is_empty() {
            writeln!(f)?;
            writeln!(f, "Warnings:")?;
            for w in &self.warnings {
                writeln!(f, "  ! {w}")?;
            }
        }
        Ok(())
    }
}

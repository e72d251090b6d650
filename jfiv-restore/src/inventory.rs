//! The input of a restore plan: what backups exist, on which media, where those media are,
//! which keys can open them, and how fast past backups and verifications ran.
//!
//! The [`Inventory`] is a plain, serialisable value, built from the disk targets
//! ([`Inventory::add_disk_target`]) and from the tape catalog (or the catalog a tape scan
//! rebuilt), so that [`RestorePlan::compute`](crate::RestorePlan::compute) stays a pure function
//! that does not depend on how the catalogs are stored.

use chrono::{DateTime, Utc};
use jfiv_backup::{
    BackupTarget, RepositoryKey, SnapshotId, SnapshotSummary, SourceKind, VerifyReport,
};
use serde::{Deserialize, Serialize};

use crate::Result;

/// Everything the planner knows about the backups of a site.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Snapshots on disk targets (empty when the disk catalog is gone).
    #[serde(default)]
    pub disk_snapshots: Vec<DiskSnapshot>,
    /// Backup sessions on tape.
    #[serde(default)]
    pub tape_sessions: Vec<TapeSession>,
    /// Key material that can decrypt the backups.
    #[serde(default)]
    pub keys: Vec<KeyMaterial>,
    /// Throughputs measured on past backups, verifications and restores (the RTO estimate).
    #[serde(default)]
    pub measurements: Vec<Measurement>,
    /// Where the tape facts come from.
    #[serde(default)]
    pub tape_catalog: CatalogOrigin,
    /// Things found while building the inventory that a reader of the plan must know
    /// (an unreadable manifest, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Where the tape part of an inventory comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CatalogOrigin {
    /// The off-tape catalog kept on disk.
    #[default]
    DiskCatalog,
    /// A catalog rebuilt by scanning the tapes (the disk catalog was lost).
    TapeScan,
}

/// Whether a snapshot or a session was read back and found intact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Verification {
    /// Never verified.
    #[default]
    NotVerified,
    /// Read back and authenticated.
    Ok {
        /// When.
        at: DateTime<Utc>,
    },
    /// Read back and found damaged.
    Damaged {
        /// When.
        at: DateTime<Utc>,
        /// What was found (chunk, tape, file, block).
        reason: String,
        /// The files the damage affects, when known.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        affected_files: Vec<String>,
    },
}

/// One snapshot on a disk target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskSnapshot {
    /// The name of the disk target (a key of the targets given to `execute`).
    pub target: String,
    /// Where the target is (`salle des disques, bâtiment B`).
    pub location: String,
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its source name.
    pub source: String,
    /// Its source kind.
    pub kind: SourceKind,
    /// The host it was taken on.
    pub host: String,
    /// When the backup started (the data is as of about this time).
    pub started: DateTime<Utc>,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Regular files.
    pub files: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Backup warnings (files changed while read, special files skipped).
    pub warnings: usize,
    /// The last verification.
    pub verification: Verification,
}

impl DiskSnapshot {
    /// From a snapshot summary of target `target` at `location`.
    pub fn from_summary(target: &str, location: &str, s: &SnapshotSummary) -> Self {
        Self {
            target: target.to_owned(),
            location: location.to_owned(),
            snapshot: s.id,
            source: s.source.name.clone(),
            kind: s.source.kind.clone(),
            host: s.host.clone(),
            started: s.started,
            finished: s.finished,
            files: s.stats.files,
            bytes: s.stats.bytes,
            warnings: s.warnings,
            verification: Verification::NotVerified,
        }
    }
}

/// Where a tape is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "place", rename_all = "kebab-case")]
pub enum Location {
    /// In the drive (or the library) of the restore machine.
    Drive {
        /// The drive or library name.
        name: String,
    },
    /// On the shelf of the server room.
    ServerRoom {
        /// The room's name.
        name: String,
    },
    /// In the offsite room.
    Offsite {
        /// The room's name.
        name: String,
    },
    /// Not recorded.
    Unknown,
}

impl Location {
    /// Whether the tape must be fetched before it can be loaded.
    pub fn needs_fetch(&self) -> bool {
        !matches!(self, Location::Drive { .. })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Drive { name } => write!(f, "in the drive/library {name}"),
            Location::ServerRoom { name } => write!(f, "in the server room ({name})"),
            Location::Offsite { name } => write!(f, "in the offsite room ({name})"),
            Location::Unknown => f.write_str("at an unrecorded location"),
        }
    }
}

/// One tape file of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeVolume {
    /// Volume number, from 1.
    pub volume: u32,
    /// The tape's barcode.
    pub barcode: String,
    /// The tape file number holding this volume.
    pub file: u64,
    /// Where the tape is now.
    pub location: Location,
}

/// One backup session on tape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TapeSession {
    /// The session id (UUID text).
    pub session: String,
    /// The snapshot it holds.
    pub snapshot: SnapshotId,
    /// Its source name.
    pub source: String,
    /// The host it was taken on.
    pub host: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it finished, if it did.
    pub finished: Option<DateTime<Utc>>,
    /// The volumes, in order.
    pub volumes: Vec<TapeVolume>,
    /// Whether the session was written (or scanned) complete.
    pub complete: bool,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    /// The last verification.
    pub verification: Verification,
    /// Bytes of (encrypted) chunk data on tape.
    pub chunk_bytes: u64,
}

/// Something that can decrypt the backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum KeyMaterial {
    /// A passphrase-protected key file.
    KeyFile {
        /// Its path.
        path: std::path::PathBuf,
        /// Whether it is still readable (it burned with the server when `false`).
        available: bool,
    },
    /// The printed paper key.
    PaperKey {
        /// Where it is kept (`coffre de la direction`).
        kept_at: String,
    },
}

/// What a measurement measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeasureKind {
    /// Reading chunks from a disk target and writing files (a restore or a drill).
    DiskRestore,
    /// Verifying a disk target.
    DiskVerify,
    /// Writing a tape session.
    TapeWrite,
    /// Reading a tape session back (verification or restore).
    TapeRead,
    /// Hashing a restored tree (the post-restore check).
    TreeCheck,
}

/// A throughput measured on a past operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What.
    pub kind: MeasureKind,
    /// Bytes processed.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// When.
    pub at: DateTime<Utc>,
}

impl Inventory {
    /// Adds the snapshots of a disk target (reading and decrypting every manifest), marking
    /// those a verification found damaged.
    ///
    /// # Errors
    /// The target's listing errors; [`jfiv_backup::Error::WrongKey`]. A manifest that cannot be
    /// read is left out and named in [`Inventory::notes`].
    pub async fn add_disk_target(
        &mut self,
        name: &str,
        location: &str,
        target: &dyn BackupTarget,
        key: &RepositoryKey,
        verify: Option<(&VerifyReport, DateTime<Utc>)>,
    ) -> Result<()> {
        for id in target.list_manifests().await? {
            let s = match jfiv_backup::load_manifest(target, key, &id).await {
                Ok(m) => m.summary(),
                Err(e @ jfiv_backup::Error::WrongKey { .. }) => return Err(e.into()),
                Err(e) => {
                    self.notes
                        .push(format!("disk target {name}: snapshot {id} unreadable: {e}"));
                    continue;
                }
            };
            let mut snap = DiskSnapshot::from_summary(name, location, &s);
            if let Some((report, at)) = verify {
                snap.verification = disk_verification(report, at, &s.id);
            }
            self.disk_snapshots.push(snap);
        }
        Ok(())
    }
}

/// The verification state of snapshot `id` according to a disk verification report.
pub fn disk_verification(
    report: &VerifyReport,
    at: DateTime<Utc>,
    id: &SnapshotId,
) -> Verification {
    let mut affected = Vec::new();
    let mut reasons = Vec::new();
    for d in &report.damaged_chunks {
        for (snap, files) in &d.affected {
            if snap == id {
                reasons.push(format!("chunk {}: {}", d.id, d.reason));
                affected.extend(files.iter().cloned());
            }
        }
    }
    if report.damaged_manifests.iter().any(|(m, _)| m == id) {
        reasons.push("manifest damaged".to_owned());
    }
    if reasons.is_empty() {
        Verification::Ok { at }
    } else {
        Verification::Damaged {
            at,
            reason: reasons.join("; "),
            affected_files: affected,
        }
    }
}

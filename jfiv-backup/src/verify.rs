//! Verification: read chunks back, authenticate them, and name what a damaged chunk affects.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use jfiv_audit::{Action, Outcome};

use crate::{
    AuditHook, BackupTarget, ChunkId, Error, Manifest, RepositoryKey, Result, SnapshotId, format,
};

/// Which chunks to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Every referenced chunk.
    All,
    /// The chunks whose id falls in slice `slice` of `slices` (by the id's first 8 bytes): run
    /// nightly with a rotating slice, every chunk is read once per `slices` nights.
    Rotating {
        /// Number of slices.
        slices: u32,
        /// This run's slice.
        slice: u32,
    },
}

impl Sample {
    /// Tonight's slice of a rotation over `slices` nights (pure: from the date of `now`).
    pub fn nightly(now: DateTime<Utc>, slices: u32) -> Self {
        let slices = slices.max(1);
        Sample::Rotating {
            slices,
            slice: (now.date_naive().num_days_from_ce().unsigned_abs()) % slices,
        }
    }

    fn selects(&self, id: &ChunkId) -> bool {
        match *self {
            Sample::All => true,
            Sample::Rotating { slices, slice } => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&id.0[..8]);
                u64::from_le_bytes(b) % u64::from(slices.max(1)) == u64::from(slice)
            }
        }
    }
}

/// How [`verify`] runs.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Which chunks.
    pub sample: Option<Sample>,
    /// Optional audit trail (`backup-verified`).
    pub audit: Option<AuditHook>,
}

/// A chunk that failed, and where it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedChunk {
    /// The chunk.
    pub id: ChunkId,
    /// What is wrong (missing, does not authenticate, ...).
    pub reason: String,
    /// Snapshots and file paths that use it.
    pub affected: Vec<(SnapshotId, Vec<String>)>,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Snapshots whose manifest authenticated.
    pub snapshots: usize,
    /// Distinct chunks referenced.
    pub chunks_referenced: usize,
    /// Chunks read and checked.
    pub chunks_checked: usize,
    /// Encrypted bytes read.
    pub bytes_checked: u64,
    /// Manifests that could not be read or authenticated.
    pub damaged_manifests: Vec<(SnapshotId, String)>,
    /// Damaged or missing chunks with the files they affect.
    pub damaged_chunks: Vec<DamagedChunk>,
}

impl VerifyReport {
    /// `true` if nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.damaged_manifests.is_empty() && self.damaged_chunks.is_empty()
    }
}

/// Reads every manifest and the sampled chunks of a random-access target, checks each chunk's
/// authenticity and hash, and reports damaged chunks by snapshot and file name.
///
/// # Errors
/// [`Error::Unsupported`] on a sequential target; target errors that prevent listing.
/// Damage is reported in the [`VerifyReport`], not as an error.
pub async fn verify(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    options: &VerifyOptions,
) -> Result<VerifyReport> {
    if !target.capabilities().random_access {
        return Err(Error::Unsupported {
            operation: "verifying chunks of a sequential target in place",
        });
    }
    let sample = options.sample.unwrap_or(Sample::All);
    let mut report = VerifyReport::default();
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut ids = target.list_manifests().await?;
    ids.sort();
    for id in ids {
        match crate::load_manifest(target, key, &id).await {
            Ok(m) => manifests.push(m),
            Err(e) => report.damaged_manifests.push((id, e.to_string())),
        }
    }
    report.snapshots = manifests.len();
    let all: BTreeSet<ChunkId> = manifests.iter().flat_map(|m| m.chunk_ids()).collect();
    report.chunks_referenced = all.len();
    let selected: Vec<ChunkId> = all.into_iter().filter(|id| sample.selects(id)).collect();
    let shared_key = Arc::new(key.clone());
    let in_flight = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut queue = VecDeque::new();
    let mut damaged: BTreeMap<ChunkId, String> = BTreeMap::new();
    let mut next = selected.into_iter();
    loop {
        if queue.len() < in_flight
            && let Some(id) = next.next()
        {
            let job = match target.get_chunk(&id).await {
                Ok(blob) => {
                    report.bytes_checked += blob.len() as u64;
                    let key = Arc::clone(&shared_key);
                    Ok(tokio::task::spawn_blocking(move || {
                        format::decode_chunk(&key, &id, &blob).map(|_| ())
                    }))
                }
                Err(e) => Err(e.to_string()),
            };
            queue.push_back((id, job));
            continue;
        }
        let Some((id, job)) = queue.pop_front() else {
            break;
        };
        report.chunks_checked += 1;
        let outcome = match job {
            Ok(handle) => match handle.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(format!("checker failed: {e}")),
            },
            Err(reason) => Some(reason),
        };
        if let Some(reason) = outcome {
            damaged.insert(id, reason);
        }
    }
    for (id, reason) in damaged {
        let affected = manifests
            .iter()
            .filter_map(|m| {
                let paths: Vec<String> = m
                    .entries
                    .iter()
                    .filter(|e| e.chunks.iter().any(|c| c.id == id))
                    .map(|e| e.path.clone())
                    .collect();
                (!paths.is_empty()).then_some((m.snapshot, paths))
            })
            .collect();
        report.damaged_chunks.push(DamagedChunk {
            id,
            reason,
            affected,
        });
    }
    let details = format!(
        "{} snapshots, {} of {} chunks checked ({:?}), {} damaged chunks, {} damaged manifests",
        report.snapshots,
        report.chunks_checked,
        report.chunks_referenced,
        sample,
        report.damaged_chunks.len(),
        report.damaged_manifests.len()
    );
    crate::audit::record(
        options.audit.as_ref(),
        Action::BackupVerified,
        if report.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        "backup store".to_owned(),
        details,
    )
    .await?;
    Ok(report)
}

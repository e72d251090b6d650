//! Progress reporting: a callback trait the pipeline calls as it goes.

use std::fmt::Debug;

use crate::{ChunkId, SnapshotId};

/// One thing the pipeline reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// The source was scanned.
    Scanned {
        /// Entries found.
        entries: u64,
        /// Sum of file sizes.
        bytes: u64,
    },
    /// A file was read (or reused unchanged from the previous snapshot).
    FileDone {
        /// Its path in the snapshot.
        path: &'a str,
        /// Its size.
        bytes: u64,
        /// `true` if it was reused without reading.
        reused: bool,
    },
    /// A chunk was written to the target.
    ChunkStored {
        /// Which.
        id: &'a ChunkId,
        /// Encrypted size.
        stored_bytes: u64,
    },
    /// A file was extracted, verified and renamed.
    FileRestored {
        /// Its path in the snapshot.
        path: &'a str,
        /// Its size.
        bytes: u64,
    },
    /// A file could not be extracted.
    FileFailed {
        /// Its path in the snapshot.
        path: &'a str,
        /// Why.
        reason: &'a str,
    },
    /// The snapshot's manifest was written.
    SnapshotWritten {
        /// Which.
        id: &'a SnapshotId,
    },
}

/// Receives progress events.
///
/// # Contract
/// `report` is called from the pipeline's threads, possibly concurrently; it must return
/// quickly and must not fail (a progress bar, a log line, counters).
pub trait Progress: Debug + Send + Sync {
    /// One event.
    fn report(&self, event: &ProgressEvent<'_>);
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _event: &ProgressEvent<'_>) {}
}

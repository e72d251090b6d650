//! How a restore reads tapes: the [`TapeAccess`] trait, and [`MemoryTapes`], an in-memory
//! library for tests and rehearsals.
//!
//! The tape subsystem of `jfiv-backup` (devices, on-tape format, catalog) provides the real
//! implementation over a drive or a virtual library; this crate only needs the sequential
//! stream of a session's chunks and its manifest, in the order the volumes are read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use jfiv_backup::{ChunkId, SnapshotId};

use crate::inventory::{Location, TapeVolume};
use crate::{Error, Result};

/// One record of a session, as read from tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapeItem<'a> {
    /// An encrypted chunk, exactly as the backup stored it.
    Chunk {
        /// Its id.
        id: ChunkId,
        /// The encrypted blob.
        blob: &'a [u8],
    },
    /// The session's encrypted manifest (after its chunks, on the last volume).
    Manifest {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The encrypted blob.
        blob: &'a [u8],
    },
}

/// Access to the tapes of a restore: the operator's handling and the drive.
///
/// # Contract
/// - `fetch` returns once the tape is at hand (an operator confirmed it, or the virtual library
///   has it); `load` once it is in the drive. Both are idempotent.
/// - `read_session` reads the session's volumes in the order given, asking for each tape in
///   turn, and calls `visit` for every chunk (in stored order) and for the manifest. It returns
///   [`Error::Tape`] naming the tape and file when a volume is missing, belongs to another
///   session, or is damaged beyond the records already given to `visit`: a damaged chunk
///   record that can be skipped is simply not given (the restore then fails only the files
///   that use it). An `Err` returned by `visit` stops the reading and is returned.
pub trait TapeAccess: Debug + Send {
    /// Makes the tape available (from `from`).
    ///
    /// # Errors
    /// [`Error::Tape`] when the tape cannot be found.
    fn fetch(&mut self, barcode: &str, from: &Location) -> Result<()>;
    /// Loads the tape into the drive.
    ///
    /// # Errors
    /// [`Error::Tape`].
    fn load(&mut self, barcode: &str) -> Result<()>;
    /// Reads a session (see the contract).
    ///
    /// # Errors
    /// [`Error::Tape`], or `visit`'s error.
    fn read_session(
        &mut self,
        session: &str,
        volumes: &[TapeVolume],
        visit: &mut dyn FnMut(TapeItem<'_>) -> Result<()>,
    ) -> Result<()>;
}

#[derive(Debug, Clone)]
struct MemorySession {
    barcodes: Vec<String>,
    chunks: Vec<(ChunkId, Vec<u8>)>,
    snapshot: SnapshotId,
    manifest: Option<Vec<u8>>,
}

/// An in-memory tape library: sessions recorded as the ordered chunks and the manifest a
/// sequential target received (see `jfiv_backup::MemoryTarget::sequential`). For tests and
/// doctests; it counts how many times each session was read.
#[derive(Debug, Clone, Default)]
pub struct MemoryTapes {
    sessions: BTreeMap<String, MemorySession>,
    present: BTreeSet<String>,
    reads: BTreeMap<String, u32>,
}

impl MemoryTapes {
    /// An empty library.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a session on `barcodes`: its chunks in stored order and its manifest (`None`:
    /// the session was interrupted before the manifest).
    pub fn add_session(
        &mut self,
        session: &str,
        barcodes: &[&str],
        chunks: Vec<(ChunkId, Vec<u8>)>,
        snapshot: SnapshotId,
        manifest: Option<Vec<u8>>,
    ) {
        self.sessions.insert(
            session.to_owned(),
            MemorySession {
                barcodes: barcodes.iter().map(|b| (*b).to_owned()).collect(),
                chunks,
                snapshot,
                manifest,
            },
        );
    }

    /// Replaces the blob of one chunk of a session (damage on tape).
    pub fn tamper(&mut self, session: &str, id: &ChunkId, blob: Vec<u8>) {
        if let Some(s) = self.sessions.get_mut(session) {
            for (c, b) in &mut s.chunks {
                if c == id {
                    *b = blob.clone();
                }
            }
        }
    }

    /// How many times `session` was read.
    pub fn reads(&self, session: &str) -> u32 {
        self.reads.get(session).copied().unwrap_or(0)
    }
}

impl TapeAccess for MemoryTapes {
    fn fetch(&mut self, barcode: &str, _from: &Location) -> Result<()> {
        if self
            .sessions
            .values()
            .any(|s| s.barcodes.iter().any(|b| b == barcode))
        {
            self.present.insert(barcode.to_owned());
            Ok(())
        } else {
            Err(Error::Tape {
                tape: barcode.to_owned(),
                file: 0,
                reason: "no such tape in the library".into(),
            })
        }
    }

    fn load(&mut self, barcode: &str) -> Result<()> {
        self.fetch(barcode, &Location::Unknown)
    }

    fn read_session(
        &mut self,
        session: &str,
        volumes: &[TapeVolume],
        visit: &mut dyn FnMut(TapeItem<'_>) -> Result<()>,
    ) -> Result<()> {
        let first = volumes
            .first()
            .map(|v| (v.barcode.clone(), v.file))
            .unwrap_or_default();
        let s = self.sessions.get(session).ok_or_else(|| Error::Tape {
            tape: first.0.clone(),
            file: first.1,
            reason: format!("session {session} is not on this tape"),
        })?;
        *self.reads.entry(session.to_owned()).or_default() += 1;
        for (id, blob) in &s.chunks {
            visit(TapeItem::Chunk { id: *id, blob })?;
        }
        match &s.manifest {
            Some(m) => visit(TapeItem::Manifest {
                snapshot: s.snapshot,
                blob: m,
            }),
            None => Err(Error::Tape {
                tape: s.barcodes.last().cloned().unwrap_or_default(),
                file: volumes.last().map_or(0, |v| v.file),
                reason: "the session ends without its manifest (incomplete)".into(),
            }),
        }
    }
}

//! The crate's error type.

use std::path::PathBuf;

use crate::{ChunkId, SnapshotId};

/// What an integrity or format error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// An encrypted chunk.
    Chunk(ChunkId),
    /// A snapshot manifest.
    Manifest(SnapshotId),
    /// A key file.
    KeyFile,
    /// A paper key.
    PaperKey,
    /// A file being extracted (the path in the snapshot).
    File(String),
    /// Something else (a store marker file, a tape session...).
    Other(String),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Chunk(id) => write!(f, "chunk {id}"),
            Object::Manifest(id) => write!(f, "snapshot manifest {id}"),
            Object::KeyFile => f.write_str("key file"),
            Object::PaperKey => f.write_str("paper key"),
            Object::File(path) => write!(f, "file {path:?}"),
            Object::Other(what) => f.write_str(what),
        }
    }
}

/// Errors of the backup engine, its sources and its targets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error not covered by a more precise variant.
    #[error("I/O error while trying to {op} {path}")]
    Io {
        /// What was being done ("read", "create", "rename"...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file system holding the store (or a destination) is full. Nothing already committed
    /// was modified; the snapshot being written was not recorded.
    #[error(
        "no space left on the device holding {path}; the snapshot was not recorded, earlier snapshots are untouched"
    )]
    NoSpace {
        /// The file being written.
        path: PathBuf,
    },
    /// The file system holding the store (or a destination) is mounted read-only.
    #[error("{path} is on a read-only file system")]
    ReadOnly {
        /// The file or directory concerned.
        path: PathBuf,
    },
    /// The directory is not a jfiv store: the disk is probably not mounted, or the path is wrong.
    #[error("{path} is not a jfiv backup store (is the backup disk mounted?)")]
    StoreMissing {
        /// The directory given.
        path: PathBuf,
    },
    /// Another process holds the store's lock.
    #[error("the store {path} is in use by another process (lock held)")]
    Locked {
        /// The store.
        path: PathBuf,
    },
    /// The passphrase does not open the key file (or the key file was altered).
    #[error("wrong passphrase for the key file (or the key file was altered)")]
    WrongPassphrase,
    /// The data was written with another repository key.
    #[error(
        "{object} was written with another repository key (fingerprint {found}, this key is {expected})"
    )]
    WrongKey {
        /// What was being read.
        object: Object,
        /// The fingerprint of the key given.
        expected: String,
        /// The fingerprint recorded in the object.
        found: String,
    },
    /// A paper key could not be read back: a typo, a missing line, a bad checksum.
    #[error("paper key: {reason} (line {line})")]
    PaperKey {
        /// The 1-based line of the paper key concerned (0 when it is about the whole key).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Stored data does not authenticate or does not match its hash: it was damaged or altered.
    #[error("integrity failure on {object}: {reason}")]
    Integrity {
        /// What failed.
        object: Object,
        /// Why.
        reason: String,
    },
    /// Stored data is malformed or of an unknown format or version.
    #[error("format error in {object} at byte {offset}: {reason}")]
    Format {
        /// What was being decoded.
        object: Object,
        /// Byte offset of the problem within the object.
        offset: u64,
        /// Why.
        reason: String,
    },
    /// The object does not exist on the target.
    #[error("{object} not found")]
    NotFound {
        /// What was looked up.
        object: Object,
    },
    /// The target cannot do this (reading a chunk back from a sequential medium, say).
    #[error("the target does not support {operation}")]
    Unsupported {
        /// The operation refused.
        operation: &'static str,
    },
    /// A source could not be read or prepared.
    #[error("source {source_name}: {reason}")]
    Source {
        /// The source's name.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// A pre-backup command failed: it could not start, or it exited with a failure status.
    #[error("pre-backup command {program:?} failed: {reason}")]
    Command {
        /// The program run (never its secret environment).
        program: String,
        /// Exit status or spawn error, with the tail of its standard error.
        reason: String,
    },
    /// A SQLite error while taking the online copy of a database.
    #[error("SQLite error on {path}")]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid glob pattern {pattern:?}")]
    Glob {
        /// The pattern.
        pattern: String,
        /// The parse error.
        #[source]
        source: globset::Error,
    },
    /// A target-specific failure that no other variant describes.
    #[error("target failure: {reason}")]
    Target {
        /// Why.
        reason: String,
    },
    /// A worker thread of the pipeline stopped unexpectedly (a bug); nothing was recorded.
    #[error("internal pipeline failure: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
    /// A tape device, tape format, media-management or tape-catalog error (names the tape, the file and the block).
    #[error(transparent)]
    Tape(#[from] crate::tape::Error),
}

impl Error {
    /// Maps an I/O error to [`Error::NoSpace`], [`Error::ReadOnly`] or [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() => {
                Error::NoSpace { path }
            }
            Some(code) if code == rustix::io::Errno::DQUOT.raw_os_error() => {
                Error::NoSpace { path }
            }
            Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => {
                Error::ReadOnly { path }
            }
            _ => Error::Io { op, path, source },
        }
    }

    /// An integrity error.
    pub(crate) fn integrity(object: Object, reason: impl Into<String>) -> Self {
        Error::Integrity {
            object,
            reason: reason.into(),
        }
    }

    /// A format error.
    pub(crate) fn format(object: Object, offset: u64, reason: impl Into<String>) -> Self {
        Error::Format {
            object,
            offset,
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

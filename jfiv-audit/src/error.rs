//! The crate's error type.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors of the audit trail.
///
/// Integrity failures name the first bad place: the file, the byte offset of the line and the
/// sequence number expected there. A wrong key ([`Error::WrongKey`]) and a torn last line
/// ([`Error::TornTail`]) are kept apart from tampering ([`Error::Integrity`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a file of the log.
    #[error("audit log I/O error on {path}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The sink was closed, or its writer stopped after an earlier failure; nothing more is
    /// appended.
    #[error("audit sink is closed: {reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The key file is unusable: unsafe permissions or not a key file.
    #[error("audit key file {path}: {reason}")]
    KeyFile {
        /// The key file (empty for a key given as text).
        path: PathBuf,
        /// What is wrong (never the key itself).
        reason: String,
    },
    /// The log was written under other keys: the fingerprint in a period header is not the
    /// fingerprint of the keys given. This says nothing about tampering.
    #[error(
        "wrong audit key for {path}: the log was written with key {found}, this key is {expected}"
    )]
    WrongKey {
        /// The period file whose header names another key.
        path: PathBuf,
        /// The fingerprint of the keys given.
        expected: String,
        /// The fingerprint written in the header.
        found: String,
    },
    /// The last line of the active period is incomplete: a write was cut by a crash or a power
    /// loss. Nothing after it exists. [`FileLog::recover`](crate::FileLog::recover) cuts it off
    /// and records that it did.
    #[error(
        "torn last line in {path} at byte {offset} (record seq {seq} was being written, {len} bytes)"
    )]
    TornTail {
        /// The period file.
        path: PathBuf,
        /// Byte offset where the incomplete line starts.
        offset: u64,
        /// The sequence number the incomplete record would have had.
        seq: u64,
        /// Length of the incomplete line in bytes.
        len: u64,
    },
    /// The log does not verify: it was modified, truncated, reordered, or a record was forged.
    #[error("audit log integrity failure: {kind} ({})", Location { path, offset: *offset, seq: *seq })]
    Integrity {
        /// What is wrong.
        kind: IntegrityKind,
        /// The file where it was found (a period file, a seal, a checkpoint).
        path: PathBuf,
        /// Byte offset of the first bad line in `path`, when the problem is one line.
        offset: Option<u64>,
        /// The sequence number expected at the first bad place, when there is one.
        seq: Option<u64>,
    },
    /// Another process (or another [`FileLog`](crate::FileLog)) holds the log's lock.
    #[error("audit log {path} is locked by another writer")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory is not an audit log, or already is one when creating.
    #[error("{path}: {reason}")]
    NotALog {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// The integrity problem, if this is an integrity failure.
    pub fn integrity_kind(&self) -> Option<&IntegrityKind> {
        match self {
            Error::Integrity { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn integrity(
        kind: IntegrityKind,
        path: &Path,
        offset: Option<u64>,
        seq: Option<u64>,
    ) -> Error {
        Error::Integrity {
            kind,
            path: path.to_owned(),
            offset,
            seq,
        }
    }
}

struct Location<'a> {
    path: &'a Path,
    offset: Option<u64>,
    seq: Option<u64>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, ", record seq {seq}")?;
        }
        Ok(())
    }
}

/// The kind of integrity problem found by verification.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntegrityKind {
    /// The record's chain value does not match its bytes: a byte was modified, or the record
    /// was forged (inserted or appended) by someone without the MAC key.
    MacMismatch,
    /// The line is not a record line at all.
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// Records are missing: the line found has a later sequence number and the expected one
    /// does not appear later in the file.
    Deleted {
        /// The first missing sequence number.
        expected: u64,
        /// The sequence number found in its place.
        found: u64,
    },
    /// Records are out of order (swapped, moved or replayed).
    Reordered {
        /// The sequence number expected here.
        expected: u64,
        /// The sequence number found here.
        found: u64,
    },
    /// A period header is malformed or its MAC does not match.
    BadHeader {
        /// What is wrong.
        reason: String,
    },
    /// Two consecutive periods do not join: the next period does not start where the previous
    /// one ended (a period was removed or replaced).
    Gap {
        /// The sequence number the next period should start with.
        expected_first_seq: u64,
        /// The sequence number it starts with.
        found_first_seq: u64,
    },
    /// A closed period has no seal.
    MissingSeal {
        /// The period.
        period: String,
    },
    /// A seal or prune marker is malformed, badly signed, or does not match its period.
    BadSeal {
        /// What is wrong.
        reason: String,
    },
    /// A sealed period's file is missing and no signed prune marker says it was pruned.
    PeriodRemoved {
        /// The period.
        period: String,
    },
    /// The log ends before a later checkpoint: its tail was cut.
    Truncated {
        /// Records the checkpoint covers.
        checkpoint_records: u64,
        /// Records the log holds.
        log_records: u64,
    },
    /// The log is back in the state of an older checkpoint: it was restored from an older copy.
    RolledBack {
        /// Records the newest checkpoint covers.
        checkpoint_records: u64,
        /// Records the log holds (the state of an older checkpoint).
        log_records: u64,
    },
    /// The checkpoint belongs to another log.
    CrossLog {
        /// This log's id.
        expected: uuid::Uuid,
        /// The checkpoint's log id.
        found: uuid::Uuid,
    },
    /// The checkpoint is malformed or its signature does not verify.
    BadCheckpoint {
        /// What is wrong.
        reason: String,
    },
    /// The log has the checkpoint's record but a different chain value there: the log was
    /// rewritten by someone with the key, or the checkpoint was.
    CheckpointMismatch {
        /// Records the checkpoint covers.
        checkpoint_records: u64,
    },
    /// The running writer's head and the file differ: the file was changed under the writer.
    ChangedUnderWriter {
        /// Records the writer has made durable.
        writer_records: u64,
        /// Records found in the files.
        file_records: u64,
    },
}

impl fmt::Display for IntegrityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use IntegrityKind::*;
        match self {
            MacMismatch => f.write_str("record modified or forged (chain value does not match)"),
            Malformed { reason } => write!(f, "malformed record line: {reason}"),
            Deleted { expected, found } => {
                write!(
                    f,
                    "records deleted: expected seq {expected}, found seq {found}"
                )
            }
            Reordered { expected, found } => {
                write!(
                    f,
                    "records reordered: expected seq {expected}, found seq {found}"
                )
            }
            BadHeader { reason } => write!(f, "bad period header: {reason}"),
            Gap {
                expected_first_seq,
                found_first_seq,
            } => write!(
                f,
                "gap between periods: next period should start at seq {expected_first_seq}, starts at {found_first_seq}"
            ),
            MissingSeal { period } => write!(f, "closed period {period} has no seal"),
            BadSeal { reason } => write!(f, "bad seal: {reason}"),
            PeriodRemoved { period } => {
                write!(
                    f,
                    "period {period} was removed without a signed prune marker"
                )
            }
            Truncated {
                checkpoint_records,
                log_records,
            } => write!(
                f,
                "log truncated: a checkpoint covers {checkpoint_records} records, the log holds {log_records}"
            ),
            RolledBack {
                checkpoint_records,
                log_records,
            } => write!(
                f,
                "log rolled back to an older checkpoint ({log_records} records; the newest checkpoint covers {checkpoint_records})"
            ),
            CrossLog { expected, found } => {
                write!(
                    f,
                    "checkpoint of another log ({found}, this log is {expected})"
                )
            }
            BadCheckpoint { reason } => write!(f, "bad checkpoint: {reason}"),
            CheckpointMismatch { checkpoint_records } => write!(
                f,
                "the log differs from the checkpoint at record {checkpoint_records}"
            ),
            ChangedUnderWriter {
                writer_records,
                file_records,
            } => write!(
                f,
                "log changed under its writer: {writer_records} records written, {file_records} found"
            ),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

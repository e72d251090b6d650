//! The error type of the tape subsystem.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use super::media::Pool;

/// Errors of the tape subsystem: devices, the on-tape format, media management, the catalog.
///
/// Every variant names the tape (its barcode, or the device when no label was read), and, for
/// format errors, the tape file number and the block number within that file, so that an
/// operator can find the damaged spot and a restore plan can fall back to another session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error on a device or a tape image.
    #[error("tape I/O error on {device} during {op}")]
    Io {
        /// The device node or image file.
        device: String,
        /// The operation that failed (`write`, `read`, `MTWEOF`...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The drive is empty (or offline).
    #[error("no tape in {device}")]
    NoTape {
        /// The device.
        device: String,
    },
    /// The tape is write-protected; nothing was written.
    #[error("tape {tape} in {device} is write-protected")]
    WriteProtected {
        /// The device.
        device: String,
        /// The barcode, or `?` when unknown.
        tape: String,
    },
    /// The physical end of the medium was reached: the block was not written.
    #[error("end of medium on tape {tape} at file {file}, block {block}")]
    EndOfMedia {
        /// The barcode, or the device when unknown.
        tape: String,
        /// Tape file number.
        file: u64,
        /// Block number within that file.
        block: u64,
    },
    /// Spacing forward ran into the end of the recorded data.
    #[error("end of data on {tape} while spacing forward (at file {file})")]
    EndOfData {
        /// The barcode or device.
        tape: String,
        /// The file number where the end of data was met.
        file: u64,
    },
    /// Spacing backward ran into the beginning of the tape.
    #[error("beginning of tape reached on {tape} while spacing backward")]
    BeginningOfTape {
        /// The barcode or device.
        tape: String,
    },
    /// A block larger than the device accepts, or than the reader's buffer.
    #[error("block of {size} bytes does not fit (limit {limit} bytes) on {tape}")]
    BlockSize {
        /// The barcode or device.
        tape: String,
        /// The block's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A tape image file (virtual tape) is not a valid image.
    #[error("invalid tape image {path} at byte {offset}: {reason}")]
    InvalidImage {
        /// The image file.
        path: PathBuf,
        /// Byte offset in the image file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The tape carries no jfiv media label (blank, or written by something else).
    #[error("tape {tape} is not labelled as a jfiv tape: {reason}")]
    Unlabeled {
        /// The barcode (from the library) or the device.
        tape: String,
        /// What was found instead.
        reason: String,
    },
    /// The tape in the drive is not the one that was asked for.
    #[error("wrong tape: expected {expected}, found {found}")]
    WrongTape {
        /// The barcode expected.
        expected: String,
        /// The barcode on the tape's label.
        found: String,
    },
    /// The tape belongs to another pool.
    #[error("tape {tape} belongs to pool {found}, not {expected}")]
    WrongPool {
        /// The barcode.
        tape: String,
        /// The pool asked for.
        expected: Pool,
        /// The tape's pool.
        found: Pool,
    },
    /// The tape still holds sessions that must be kept: it cannot be overwritten before `expires`.
    #[error("tape {tape} must be kept until {expires}: its retention has not expired")]
    RetentionNotExpired {
        /// The barcode.
        tape: String,
        /// When its retention expires.
        expires: DateTime<Utc>,
    },
    /// The label on the tape does not match what the catalog knows of that barcode.
    #[error(
        "tape {tape}: label {found} does not match the catalog's {expected} (relabelled or a duplicate barcode)"
    )]
    LabelMismatch {
        /// The barcode.
        tape: String,
        /// Label UUID the catalog expects.
        expected: uuid::Uuid,
        /// Label UUID found on the tape.
        found: uuid::Uuid,
    },
    /// No tape of the pool may be written tonight.
    #[error("no tape of pool {pool} is available tonight{}", earliest.map(|e| format!(" (earliest expiry {e})")).unwrap_or_default())]
    NoTapeAvailable {
        /// The pool.
        pool: Pool,
        /// When the first tape of the pool becomes writable again, if any.
        earliest: Option<DateTime<Utc>>,
    },
    /// A tape is not known (to the library, the catalog or the location register).
    #[error("unknown tape {tape}")]
    UnknownTape {
        /// The barcode.
        tape: String,
    },
    /// Damaged data on tape: a checksum, a magic number or a sequence number does not match.
    #[error("damaged data on tape {tape}, file {file}, block {block}: {what}")]
    Damaged {
        /// The barcode (or device when the label could not be read).
        tape: String,
        /// Tape file number.
        file: u64,
        /// Block number within the file.
        block: u64,
        /// What is wrong.
        what: String,
    },
    /// A tape file ends before its end (no trailer): written by an interrupted session, or cut.
    #[error("truncated data on tape {tape}, file {file}, block {block}: {what}")]
    Truncated {
        /// The barcode.
        tape: String,
        /// Tape file number.
        file: u64,
        /// Block number where the data stops.
        block: u64,
        /// What was expected.
        what: String,
    },
    /// A session could not be completed (out of tapes, device failure): it is recorded as
    /// incomplete, never as a success.
    #[error("session {session} is incomplete after {volumes} volume(s): {reason}")]
    SessionIncomplete {
        /// The session id.
        session: uuid::Uuid,
        /// Volumes written (partially) so far.
        volumes: u32,
        /// Why.
        reason: String,
    },
    /// A record or a session was asked for that is not on the tapes.
    #[error("not found on tape: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A file of the tape catalog, library or location register could not be read or written.
    #[error("tape state file {path}: {reason}")]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong (an I/O or parse error message).
        reason: String,
    },
    /// A configuration value is unusable.
    #[error("invalid tape configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// Recording an audit event failed: the action it recorded was not applied.
    #[error("audit trail refused the event")]
    Audit(#[source] jfiv_audit::Error),
}

/// The result type of the tape subsystem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] on `device` during `op`.
    pub(crate) fn io(device: impl Into<String>, op: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            device: device.into(),
            op,
            source,
        }
    }
}

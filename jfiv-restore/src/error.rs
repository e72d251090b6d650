//! The crate's error type.

use std::path::PathBuf;

/// Errors of planning, executing and checking a restore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No usable backup of a source: none at all, none before the requested time, or every
    /// candidate damaged, incomplete or unverified beyond use. `skipped` says why each was refused.
    #[error("no usable backup of {source_name} (as of {as_of}); refused: {skipped}")]
    NoUsableBackup {
        /// The source name (`app-server`, `jfiv-db`).
        source_name: String,
        /// The requested point in time, or `latest`.
        as_of: String,
        /// One line per refused candidate.
        skipped: String,
    },
    /// Neither a key file nor a paper key is listed in the inventory.
    #[error("no key material is available to decrypt the backups (no key file, no paper key)")]
    NoKey,
    /// The request contradicts itself (an empty path selection, a remapping with an unsafe path...).
    #[error("invalid restore request: {reason}")]
    InvalidRequest {
        /// Why.
        reason: String,
    },
    /// The plan given to `execute` does not match the resources given (a disk target or the
    /// tape access it needs is missing), or the state file belongs to another plan.
    #[error("plan {plan} cannot run: {reason}")]
    PlanMismatch {
        /// The plan id.
        plan: String,
        /// Why.
        reason: String,
    },
    /// The checkpoint (state) file could not be read, parsed or written.
    #[error("restore state file {path}: {reason}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A step failed outright (not a per-file loss, which is in the report).
    #[error("step {step} ({what}) failed: {reason}")]
    Step {
        /// The step's id.
        step: String,
        /// What the step does.
        what: String,
        /// Why.
        reason: String,
    },
    /// The execution was interrupted on purpose (the fault-injection hook, or a stop request);
    /// running the plan again continues from the last checkpoint.
    #[error("restore interrupted before step {step}; run it again to continue")]
    Interrupted {
        /// The step that was about to run.
        step: String,
    },
    /// A tape could not be read (wrong tape, damaged block, missing volume).
    #[error("tape {tape} file {file}: {reason}")]
    Tape {
        /// The barcode.
        tape: String,
        /// The tape file number.
        file: u64,
        /// What went wrong.
        reason: String,
    },
    /// The backup engine reported an error.
    #[error(transparent)]
    Backup(#[from] jfiv_backup::Error),
    /// The audit trail refused an event: an action that cannot be audited is reported as failed.
    #[error("audit trail: {reason}")]
    Audit {
        /// Why.
        reason: String,
    },
    /// An I/O error on a path (report files, destination, check commands).
    #[error("I/O error while trying to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

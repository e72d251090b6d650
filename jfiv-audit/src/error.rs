//! The crate's error type.

use std::path::PathBuf;

/// Errors of the audit trail.
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
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

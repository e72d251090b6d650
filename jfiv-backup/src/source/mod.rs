//! Sources: what gets backed up.
//!
//! A [`Source`] is scanned once at the start of a backup; the [`Scan`] lists the entries to store
//! and where to read each file's bytes. The pipeline reads the files itself, and detects a file
//! that changes while it is read (size, mtime or ctime differ before and after).

mod command;
mod directory;
mod sqlite;

use std::any::Any;
use std::fmt::Debug;
use std::path::PathBuf;

pub use command::{CommandSource, DEFAULT_COMMAND_TIMEOUT};
pub use directory::DirectorySource;
pub use sqlite::{SqliteSource, sqlite_row_counts};

use crate::{DatabaseInfo, EntryKind, Metadata, Result, SourceInfo};

/// One entry a source offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Path in the snapshot (relative, `/`-separated).
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Metadata observed at scan time; for files, the pipeline compares it with what it sees
    /// after reading.
    pub meta: Metadata,
    /// For files: where to read the content.
    pub read_from: Option<PathBuf>,
}

/// Something a source noticed and could not store, or stored with a caveat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The path concerned (in the source's terms).
    pub path: String,
    /// What happened.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A socket, FIFO or device file: not backed up.
    SpecialFileSkipped,
    /// A name that is not valid UTF-8: not backed up.
    NonUtf8Name,
    /// The file could not be read (permission denied, vanished): not backed up.
    Unreadable {
        /// The error.
        reason: String,
    },
    /// The file changed while it was read on every attempt: stored, marked inconsistent.
    ChangedWhileRead,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            WarningKind::SpecialFileSkipped => write!(f, "{}: special file skipped", self.path),
            WarningKind::NonUtf8Name => write!(f, "{}: name is not UTF-8, skipped", self.path),
            WarningKind::Unreadable { reason } => {
                write!(f, "{}: unreadable, not backed up: {reason}", self.path)
            }
            WarningKind::ChangedWhileRead => write!(
                f,
                "{}: changed while being read; stored but marked inconsistent",
                self.path
            ),
        }
    }
}

/// The result of scanning a source.
pub struct Scan {
    /// Entries, sorted by path, parents before children.
    pub entries: Vec<SourceEntry>,
    /// What was skipped.
    pub warnings: Vec<Warning>,
    /// Databases in the scan (row counts for restore checks).
    pub databases: Vec<DatabaseInfo>,
    /// Keeps temporary files (a database copy, say) alive until the backup is done.
    pub guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("entries", &self.entries.len())
            .field("warnings", &self.warnings)
            .field("databases", &self.databases)
            .finish_non_exhaustive()
    }
}

/// Something to back up.
///
/// # Contract
/// - [`scan`](Source::scan) is called once per backup, from a blocking context; it may take
///   time (an online database copy, a pre-backup command).
/// - The entries it returns have unique, relative, `/`-separated paths without `.` or `..`
///   components, sorted so that a directory comes before its content.
/// - Every file entry has `read_from` set; the files stay readable until the [`Scan`] (and its
///   `guard`) is dropped.
/// - What the source cannot store is returned as a [`Warning`], never silently dropped; a
///   failure that makes the whole snapshot meaningless (the command failed, the database
///   cannot be opened) is an `Err`.
pub trait Source: Debug + Send + Sync {
    /// Kind and name, recorded in the manifest; incremental backups pair snapshots by name.
    fn info(&self) -> SourceInfo;

    /// Lists what to back up.
    ///
    /// # Errors
    /// [`Error::Source`](crate::Error::Source), [`Error::Command`](crate::Error::Command),
    /// [`Error::Sqlite`](crate::Error::Sqlite), I/O errors.
    fn scan(&self) -> Result<Scan>;
}

/// Metadata of a file system object, from `lstat`.
pub(crate) fn metadata_of(m: &std::fs::Metadata) -> Metadata {
    use std::os::unix::fs::MetadataExt;
    Metadata {
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        size: if m.is_file() { m.len() } else { 0 },
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
        ino: m.ino(),
        ctime: m.ctime(),
        ctime_nsec: m.ctime_nsec() as u32,
    }
}

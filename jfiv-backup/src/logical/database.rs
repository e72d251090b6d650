//! The small connection trait the shared export and restore logic runs over.

use std::fmt;

use super::error::Result;
use super::format::{Dialect, DumpHeader, SchemaObject, SchemaObjects, SnapshotInfo, TableDef};
use super::value::Value;

/// What to do when the restore target already holds objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestoreMode {
    /// Refuse with [`Error::TargetNotEmpty`](super::Error::TargetNotEmpty) (the default).
    #[default]
    RefuseNonEmpty,
    /// Drop the target's tables, sequences and views that the dump contains, then restore.
    /// Other objects of the target are left alone.
    ReplaceExisting,
}

/// An object the target could not create, and why (a cross-dialect restore skips, for
/// example, Oracle triggers when restoring into SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedObject {
    /// The object.
    pub object: SchemaObject,
    /// Why it was skipped.
    pub reason: String,
}

/// A database the logical export reads from or the logical restore writes into.
///
/// Implemented for SQLite ([`SqliteDatabase`](super::SqliteDatabase)) and, with the `oracle`
/// feature, for Oracle. Methods are synchronous and blocking: callers in async code run them on
/// a blocking thread (`tokio::task::spawn_blocking`). The trait is `Send` but not `Sync`: a
/// connection is one session, used by one thread at a time (`&mut self` everywhere).
///
/// # Contract
/// Export, in this order: [`begin_snapshot`](Self::begin_snapshot) establishes one consistent
/// view and says which; [`tables`](Self::tables) and every [`scan_table`](Self::scan_table) read
/// that view; [`objects`](Self::objects) is called after the last scan, so that sequence values
/// it returns are at least those used by any exported row;
/// [`end_snapshot`](Self::end_snapshot) releases the view (also called after a failure).
/// `scan_table` hands rows to `each` one at a time and returns how many it handed; it never
/// skips a row or a column silently: a value it cannot represent exactly is an error.
///
/// Restore, in this order: [`existing_objects`](Self::existing_objects) (the caller refuses a
/// non-empty target unless told otherwise), [`begin_restore`](Self::begin_restore), per table
/// [`create_table`](Self::create_table) then [`insert_rows`](Self::insert_rows) batches then
/// [`count_rows`](Self::count_rows), then [`create_objects`](Self::create_objects) once (indexes,
/// foreign keys, views, routines, triggers: foreign keys and triggers therefore do not exist
/// while rows load, and are validated/enabled when created), then
/// [`finish_restore`](Self::finish_restore), which makes the restore durable only if every check
/// passed. On any failure the caller calls [`abort_restore`](Self::abort_restore).
pub trait Database: fmt::Debug + Send {
    /// The dialect of this database.
    fn dialect(&self) -> Dialect;

    /// Human description of the database (never a password).
    fn describe(&self) -> String;

    /// The schema exported or restored into, if the dialect has schemas.
    fn schema(&self) -> Option<String>;

    /// Opens the consistent view the whole export reads.
    ///
    /// # Errors
    /// Database errors (e.g. ORA-01555 later surfaces from `scan_table`).
    fn begin_snapshot(&mut self) -> Result<SnapshotInfo>;

    /// The tables to export, with their DDL and stored columns.
    ///
    /// # Errors
    /// Database errors; [`Error::UnsupportedType`](super::Error::UnsupportedType) for a column
    /// that cannot be exported without loss.
    fn tables(&mut self) -> Result<Vec<TableDef>>;

    /// Streams every row of `table` to `each`; returns the number of rows.
    ///
    /// # Errors
    /// Database errors, errors returned by `each`, values that cannot be represented.
    fn scan_table(
        &mut self,
        table: &TableDef,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<u64>;

    /// Indexes, foreign keys, views, routines, triggers and sequences.
    ///
    /// # Errors
    /// Database errors.
    fn objects(&mut self) -> Result<SchemaObjects>;

    /// Releases the view.
    ///
    /// # Errors
    /// Database errors.
    fn end_snapshot(&mut self) -> Result<()>;

    /// Names of the objects already in the target (empty: the target is empty).
    ///
    /// # Errors
    /// Database errors.
    fn existing_objects(&mut self) -> Result<Vec<String>>;

    /// Prepares the target for loading the dump described by `header`.
    ///
    /// # Errors
    /// [`Error::IncompatibleDialect`](super::Error::IncompatibleDialect), database errors.
    fn begin_restore(&mut self, header: &DumpHeader, mode: RestoreMode) -> Result<()>;

    /// Creates one table (DDL of the dump's dialect, or derived from the column definitions).
    ///
    /// # Errors
    /// Database errors.
    fn create_table(&mut self, source: Dialect, table: &TableDef) -> Result<()>;

    /// Inserts a batch of rows into `table`.
    ///
    /// # Errors
    /// Database errors (constraint violations included).
    fn insert_rows(&mut self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()>;

    /// Number of rows now in `table`.
    ///
    /// # Errors
    /// Database errors.
    fn count_rows(&mut self, table: &TableDef) -> Result<u64>;

    /// Creates the schema objects after the load; returns those it could not create by design
    /// (cross-dialect restore), never those that failed (a failure is an error).
    ///
    /// # Errors
    /// Database errors.
    fn create_objects(
        &mut self,
        source: Dialect,
        objects: &SchemaObjects,
    ) -> Result<Vec<SkippedObject>>;

    /// Validates (foreign keys), commits and releases the target.
    ///
    /// # Errors
    /// [`Error::ForeignKeyViolation`](super::Error::ForeignKeyViolation), database errors.
    fn finish_restore(&mut self) -> Result<()>;

    /// Undoes what can be undone after a failed restore (best effort, never fails).
    fn abort_restore(&mut self);
}

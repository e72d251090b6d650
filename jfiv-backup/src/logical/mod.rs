//! Logical (table-by-table) export and restore of a database schema, shared by SQLite and Oracle.
//!
//! The physical SQLite copy (`SqliteSource`) and the Data Pump / RMAN files (`CommandSource`)
//! are byte copies only their own engine can read. This module adds a *logical* path: every
//! table of the schema, read as of one consistent snapshot, written as typed portable rows in a
//! [logical dump](mod@format) that any target restores, SQLite or Oracle. It is how the Oracle JFIV
//! schema is backed up with nothing but network access to the database, and how clinicians get a
//! read-only SQLite copy of it in degraded mode, before a new Oracle server is up.
//!
//! Main items:
//! - [`Value`]: the typed values (exact decimals, dates, timestamps with time zone, LOBs...);
//! - [`DumpWriter`] / [`DumpReader`]: the stream layout (header, table sections, objects,
//!   trailer with counts and a BLAKE3), one row in memory at a time;
//! - [`Database`]: the small connection trait; [`export`] and [`restore`] run over it;
//! - [`SqliteDatabase`]; with the `oracle` feature, `oracle::OracleDatabase`;
//! - [`datapump`]: `expdp` / RMAN runs with parameter files and log checks;
//! - the backup [`Source`](crate::Source)s: [`LogicalSqliteSource`], `OracleSchemaSource`
//!   (feature `oracle`), [`DataPumpSource`], [`RmanSource`]; and the way back:
//!   [`extract_dump`] then [`ExtractedDump::restore_into`].
//!
//! A snapshot of a logical source holds one file entry, the dump (`<name>.ldump`), and a
//! [`DatabaseInfo`](crate::DatabaseInfo) with engine [`SQLITE_LOGICAL_ENGINE`] or
//! [`ORACLE_LOGICAL_ENGINE`] and the per-table row counts, which the restore checks again.
//! With the `conformance` feature, the `conformance` module holds the checks every [`Database`]
//! implementation passes (stamped with `logical_database_conformance!`).
//!
//! ```
//! use jfiv_backup::logical::{export, restore, ExportOptions, RestoreOptions, SqliteDatabase};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let src = dir.path().join("jfiv.db");
//! let c = rusqlite::Connection::open(&src)?;
//! c.execute_batch("CREATE TABLE patients (id INTEGER PRIMARY KEY, nom TEXT);
//!                  INSERT INTO patients VALUES (1, 'Martin'), (2, NULL);")?;
//! drop(c);
//! let mut db = SqliteDatabase::open_for_export(&src)?;
//! let (dump, summary) = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now()))?;
//! assert_eq!(summary.dump.trailer.total_rows, 2);
//!
//! let mut target = SqliteDatabase::open_for_restore(&dir.path().join("copy.db"))?;
//! let report = restore(&dump[..], &mut target, &RestoreOptions::default())?;
//! assert_eq!(report.tables[0].rows, 2);
//! # Ok(()) }
//! ```

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod database;
pub mod datapump;
mod error;
pub mod format;
#[cfg(feature = "oracle")]
pub mod oracle;
mod source;
mod sqlite;
mod transfer;
mod value;

pub use database::{Database, RestoreMode, SkippedObject};
pub use error::{Error, Result};
pub use format::{
    ColumnDef, Dialect, DumpHeader, DumpItem, DumpReader, DumpSummary, DumpWriter, ObjectKind,
    ReadLimits, SchemaObject, SchemaObjects, SequenceDef, SnapshotInfo, SnapshotMethod, TableCount,
    TableDef, Trailer, verify_dump,
};
#[cfg(feature = "oracle")]
pub use source::OracleSchemaSource;
pub use source::{
    DATAPUMP_ENGINE, DataPumpSource, ExtractedDump, LogicalSqliteSource, ORACLE_LOGICAL_ENGINE,
    RMAN_DBID_FILE, RMAN_ENGINE, RmanSource, SQLITE_LOGICAL_ENGINE, extract_dump,
};
pub use sqlite::{ORACLE_SEQUENCES_TABLE, SqliteDatabase, sqlite_type_for};
pub use transfer::{ExportOptions, ExportSummary, RestoreOptions, RestoreReport, export, restore};
pub use value::{CivilDateTime, Decimal, TzOffset, Value, ValueKind};

#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod tests;

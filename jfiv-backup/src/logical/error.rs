//! Errors of the logical (table-by-table) export and restore.

/// What went wrong in a logical export, restore or dump stream.
///
/// Every variant names what it was working on (table, column, offset in the dump) so that an
/// operator can act on it at 3 a.m. without a debugger. No variant ever carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the dump stream failed at the OS level.
    #[error("logical dump I/O error while {context}")]
    Io {
        /// What was being done ("writing table PATIENTS", "reading the trailer"...).
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The dump stream is not a well-formed logical dump (bad magic, unknown tag, truncated
    /// record, value of the wrong kind for its column...).
    #[error("malformed logical dump at byte offset {offset}: {detail}")]
    Format {
        /// Offset in the stream of the first byte that could not be accepted.
        offset: u64,
        /// What was expected.
        detail: String,
    },
    /// The dump's trailer does not match what was read: its BLAKE3 or one of its counts differ.
    #[error("logical dump integrity check failed: {what} (expected {expected}, found {actual})")]
    Integrity {
        /// What was compared ("BLAKE3 of the dump", "row count of table PATIENTS"...).
        what: String,
        /// The value recorded in the dump.
        expected: String,
        /// The value computed while reading.
        actual: String,
    },
    /// The dump was written by a newer version of the format.
    #[error(
        "logical dump format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version found in the header.
        found: u16,
        /// Version this build understands.
        supported: u16,
    },
    /// A column type cannot be exported without loss, so the export refuses it rather than
    /// silently dropping data.
    #[error(
        "table {table}, column {column}: type {source_type} is not supported by the logical export"
    )]
    UnsupportedType {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// The database's own name of the type.
        source_type: String,
    },
    /// A schema object cannot be exported or restored by this path.
    #[error("{kind} {name}: {reason}")]
    UnsupportedObject {
        /// Object kind ("virtual table", ...).
        kind: String,
        /// Object name.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A LOB (or a long text) is larger than the configured bound on memory per value.
    #[error(
        "table {table}, column {column}: value of {size} bytes exceeds the per-value limit of {limit} bytes"
    )]
    ValueTooLarge {
        /// Table name.
        table: String,
        /// Column name.
        column: String,
        /// Size of the value, in bytes (characters for a CLOB when the size is known only in
        /// characters).
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The restore target already holds objects and the restore was not told to replace them.
    #[error(
        "refusing to restore into {target}: it is not empty ({count} objects, e.g. {examples}); restore into an empty schema or pass RestoreMode::ReplaceExisting"
    )]
    TargetNotEmpty {
        /// The target (SQLite file, Oracle schema).
        target: String,
        /// How many objects were found.
        count: usize,
        /// A few of their names.
        examples: String,
    },
    /// After a restore, a table does not hold the number of rows the dump recorded.
    #[error("table {table}: {actual} rows after restore, but the dump recorded {expected}")]
    RowCountMismatch {
        /// Table name.
        table: String,
        /// Rows recorded at export time.
        expected: u64,
        /// Rows counted in the target.
        actual: u64,
    },
    /// After loading, the restored data violates a foreign key.
    #[error(
        "table {table}: {violations} rows violate foreign keys after restore (first: rowid {first_rowid}, parent table {parent})"
    )]
    ForeignKeyViolation {
        /// Child table.
        table: String,
        /// Number of violating rows.
        violations: u64,
        /// Rowid of the first violating row.
        first_rowid: i64,
        /// Parent table of the first violation.
        parent: String,
    },
    /// The restore target cannot accept a dump of that dialect.
    #[error("cannot restore a {source_dialect} dump into {target}: {reason}")]
    IncompatibleDialect {
        /// Dialect of the dump.
        source_dialect: String,
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// A SQLite operation failed.
    #[error("SQLite error while {context}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An Oracle operation failed (see [`OracleError`](super::oracle::OracleError) for the
    /// typed cases).
    #[cfg(feature = "oracle")]
    #[error(transparent)]
    Oracle(#[from] super::oracle::OracleError),
    /// A Data Pump or RMAN run failed.
    #[error(transparent)]
    DataPump(#[from] super::datapump::DataPumpError),
}

/// The result type of the logical export and restore.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for an [`Error::Io`].
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Sqlite`].
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Self::Sqlite {
            context: context.into(),
            source,
        }
    }

    /// Shorthand for an [`Error::Format`].
    pub(crate) fn format(offset: u64, detail: impl Into<String>) -> Self {
        Self::Format {
            offset,
            detail: detail.into(),
        }
    }
}

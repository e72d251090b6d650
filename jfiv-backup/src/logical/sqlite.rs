//! [`Database`] for SQLite: the logical source beside the physical copy, and the restore
//! target (also of Oracle dumps: the clinicians' degraded read-only copy).

use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql};

use super::database::{Database, RestoreMode, SkippedObject};
use super::error::{Error, Result};
use super::format::{
    ColumnDef, Dialect, DumpHeader, ObjectKind, SchemaObject, SchemaObjects, SequenceDef,
    SnapshotInfo, SnapshotMethod, TableDef,
};
use super::value::{Value, ValueKind};

/// Name of the table that receives an Oracle dump's sequences in a SQLite restore.
pub const ORACLE_SEQUENCES_TABLE: &str = "jfiv_oracle_sequences";

/// A SQLite database, for logical export or restore.
///
/// Export runs inside one read transaction (`BEGIN` then a first read): in WAL mode writers go
/// on while the export sees the database as it was at its start; in rollback-journal mode
/// writers wait until the export ends.
///
/// Restoring a SQLite dump replays SQLite's own DDL; restoring an Oracle dump derives tables from
/// the column definitions (`NUMBER(p,0)` with `p <= 18` as `INTEGER`, other `NUMBER`s as
/// `DECIMAL_TEXT`, a TEXT-affinity type that keeps every digit, dates and timestamps as ISO 8601
/// text, LOBs as `TEXT`/`BLOB`), skips Oracle indexes, views, routines and triggers (reported in
/// [`RestoreReport::skipped`](super::RestoreReport::skipped)) and writes the sequences into
/// [`ORACLE_SEQUENCES_TABLE`].
#[derive(Debug)]
pub struct SqliteDatabase {
    conn: Connection,
    path: PathBuf,
    in_transaction: bool,
    mode: RestoreMode,
    read_only_after_restore: bool,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl SqliteDatabase {
    /// Opens an existing database read-only, for export.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if it cannot be opened.
    pub fn open_for_export(path: &Path) -> Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::sqlite(format!("opening {} for export", path.display()), e))?;
        Ok(Self::from_connection(conn, path))
    }

    /// Opens (creating it if needed) a database to restore into.
    ///
    /// # Errors
    /// [`Error::Sqlite`] if it cannot be opened or created.
    pub fn open_for_restore(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .map_err(|e| Error::sqlite(format!("opening {} for restore", path.display()), e))?;
        Ok(Self::from_connection(conn, path))
    }

    /// Wraps an open connection; `path` is used in messages.
    #[must_use]
    pub fn from_connection(conn: Connection, path: &Path) -> Self {
        Self {
            conn,
            path: path.to_owned(),
            in_transaction: false,
            mode: RestoreMode::RefuseNonEmpty,
            read_only_after_restore: false,
        }
    }

    /// After a successful restore, make the file read-only (mode 0444): the degraded copy that
    /// clinicians consult must not diverge from the backup.
    #[must_use]
    pub fn read_only_after_restore(mut self, yes: bool) -> Self {
        self.read_only_after_restore = yes;
        self
    }

    /// The underlying connection.
    #[must_use]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn exec(&self, sql: &str, context: &str) -> Result<()> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::sqlite(context.to_owned(), e))
    }

    fn derived_table_ddl(table: &TableDef) -> String {
        let mut parts: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                let mut s = format!("{} {}", quote(&c.name), sqlite_type_for(c));
                if !c.nullable {
                    s.push_str(" NOT NULL");
                }
                s
            })
            .collect();
        if !table.primary_key.is_empty() {
            let cols: Vec<String> = table.primary_key.iter().map(|c| quote(c)).collect();
            parts.push(format!("PRIMARY KEY ({})", cols.join(", ")));
        }
        format!("CREATE TABLE {} ({})", quote(&table.name), parts.join(", "))
    }
}

/// The SQLite declared type used for a column of a foreign (Oracle) dump.
#[must_use]
pub fn sqlite_type_for(column: &ColumnDef) -> &'static str {
    match column.kind {
        ValueKind::Integer => "INTEGER",
        ValueKind::Number
            if column.scale == Some(0) && column.precision.is_some_and(|p| p <= 18) =>
        {
            "INTEGER"
        }
        ValueKind::Number => "DECIMAL_TEXT",
        ValueKind::Float => "REAL",
        ValueKind::Text | ValueKind::Clob => "TEXT",
        ValueKind::Raw | ValueKind::Blob => "BLOB",
        ValueKind::Date | ValueKind::Timestamp | ValueKind::TimestampTz => "TEXT",
        _ => "",
    }
}

/// A [`Value`] bound as a SQLite parameter, without copying text or bytes.
struct Bind<'a>(&'a Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Integer(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(*i)),
            Value::Number(d) => match d.as_i64() {
                Some(i) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(i)),
                None => ToSqlOutput::Borrowed(ValueRef::Text(d.as_str().as_bytes())),
            },
            Value::Float(f) => ToSqlOutput::Owned(rusqlite::types::Value::Real(*f)),
            Value::Text(s) | Value::Clob(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Raw(b) | Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Date(t) | Value::Timestamp(t) => {
                ToSqlOutput::Owned(rusqlite::types::Value::Text(t.to_iso()))
            }
            Value::TimestampTz(t, tz) => ToSqlOutput::Owned(rusqlite::types::Value::Text(format!(
                "{}{}",
                t.to_iso(),
                tz.to_iso()
            ))),
            // `Value::Null` and any kind added later bind as NULL only if it is NULL.
            Value::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
        })
    }
}

impl Database for SqliteDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn describe(&self) -> String {
        format!("SQLite database {}", self.path.display())
    }

    fn schema(&self) -> Option<String> {
        None
    }

    fn begin_snapshot(&mut self) -> Result<SnapshotInfo> {
        self.exec("BEGIN DEFERRED", "starting the export's read transaction")?;
        self.in_transaction = true;
        // The first read fixes the snapshot.
        self.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| Error::sqlite("starting the export's read transaction", e))?;
        Ok(SnapshotInfo {
            method: SnapshotMethod::SqliteReadTransaction,
            scn: None,
            server_version: Some(rusqlite::version().to_owned()),
        })
    }

    fn tables(&mut self) -> Result<Vec<TableDef>> {
        let ctx = "listing tables";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .map_err(|e| Error::sqlite(ctx, e))?;
        let list: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(|e| Error::sqlite(ctx, e))?;
        let mut tables = Vec::with_capacity(list.len());
        for (name, ddl) in list {
            if ddl
                .trim_start()
                .to_ascii_uppercase()
                .starts_with("CREATE VIRTUAL")
            {
                return Err(Error::UnsupportedObject {
                    kind: "virtual table".into(),
                    name,
                    reason: "virtual tables (FTS, R-tree) are not exported by the logical path; \
                             use the physical SQLite copy"
                        .into(),
                });
            }
            let ctx = format!("reading the columns of table {name}");
            let mut cols = self
                .conn
                .prepare(
                    "SELECT name, type, \"notnull\", pk, hidden FROM pragma_table_xinfo(?1) \
                     ORDER BY cid",
                )
                .map_err(|e| Error::sqlite(ctx.clone(), e))?;
            let rows: Vec<(String, String, bool, i64, i64)> = cols
                .query_map([&name], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(Iterator::collect)
                .map_err(|e| Error::sqlite(ctx.clone(), e))?;
            let mut pk: Vec<(i64, String)> = rows
                .iter()
                .filter(|r| r.3 > 0)
                .map(|r| (r.3, r.0.clone()))
                .collect();
            pk.sort();
            tables.push(TableDef {
                name: name.clone(),
                ddl,
                // hidden 2 and 3 are generated columns: in the DDL, not insertable.
                columns: rows
                    .into_iter()
                    .filter(|r| r.4 == 0)
                    .map(|(cname, ty, notnull, _, _)| ColumnDef {
                        name: cname,
                        kind: ValueKind::Any,
                        source_type: ty,
                        nullable: !notnull,
                        length: None,
                        precision: None,
                        scale: None,
                    })
                    .collect(),
                primary_key: pk.into_iter().map(|p| p.1).collect(),
            });
        }
        Ok(tables)
    }

    fn scan_table(
        &mut self,
        table: &TableDef,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<u64> {
        let ctx = || format!("reading table {}", table.name);
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!("SELECT {} FROM {}", cols.join(", "), quote(&table.name));
        let mut stmt = self
            .conn
            .prepare(&sql)
            .map_err(|e| Error::sqlite(ctx(), e))?;
        let mut rows = stmt.query([]).map_err(|e| Error::sqlite(ctx(), e))?;
        let mut n = 0u64;
        while let Some(row) = rows.next().map_err(|e| Error::sqlite(ctx(), e))? {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, c) in table.columns.iter().enumerate() {
                let v = row.get_ref(i).map_err(|e| Error::sqlite(ctx(), e))?;
                values.push(match v {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Integer(i),
                    ValueRef::Real(f) => Value::Float(f),
                    ValueRef::Text(t) => Value::Text(
                        std::str::from_utf8(t)
                            .map_err(|_| Error::UnsupportedType {
                                table: table.name.clone(),
                                column: c.name.clone(),
                                source_type: "TEXT that is not valid UTF-8".into(),
                            })?
                            .to_owned(),
                    ),
                    ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                });
            }
            each(values)?;
            n += 1;
        }
        Ok(n)
    }

    fn objects(&mut self) -> Result<SchemaObjects> {
        let ctx = "listing indexes, views and triggers";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT type, name, tbl_name, sql FROM sqlite_master \
                 WHERE type IN ('index', 'view', 'trigger') AND sql IS NOT NULL \
                 ORDER BY CASE type WHEN 'index' THEN 0 WHEN 'view' THEN 1 ELSE 2 END, rowid",
            )
            .map_err(|e| Error::sqlite(ctx, e))?;
        let objects: Vec<SchemaObject> = stmt
            .query_map([], |r| {
                let ty: String = r.get(0)?;
                Ok(SchemaObject {
                    kind: match ty.as_str() {
                        "index" => ObjectKind::Index,
                        "view" => ObjectKind::View,
                        _ => ObjectKind::Trigger,
                    },
                    name: r.get(1)?,
                    table: Some(r.get(2)?),
                    ddl: r.get(3)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|e| Error::sqlite(ctx, e))?;
        let has_seq: bool = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| Error::sqlite(ctx, e))?
            > 0;
        let mut sequences = Vec::new();
        if has_seq {
            let mut s = self
                .conn
                .prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name")
                .map_err(|e| Error::sqlite("reading sqlite_sequence", e))?;
            sequences = s
                .query_map([], |r| {
                    Ok(SequenceDef {
                        name: r.get(0)?,
                        value: r.get::<_, i64>(1)?.to_string(),
                        increment_by: "1".into(),
                        min_value: None,
                        max_value: None,
                        cache: 0,
                        cycle: false,
                        order: false,
                    })
                })
                .and_then(Iterator::collect)
                .map_err(|e| Error::sqlite("reading sqlite_sequence", e))?;
        }
        Ok(SchemaObjects { objects, sequences })
    }

    fn end_snapshot(&mut self) -> Result<()> {
        if self.in_transaction {
            self.in_transaction = false;
            self.exec("COMMIT", "ending the export's read transaction")?;
        }
        Ok(())
    }

    fn existing_objects(&mut self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT type || ' ' || name FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid",
            )
            .map_err(|e| Error::sqlite("listing existing objects", e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| Error::sqlite("listing existing objects", e))
    }

    fn begin_restore(&mut self, _header: &DumpHeader, mode: RestoreMode) -> Result<()> {
        self.mode = mode;
        // Foreign keys are not enforced while rows load (the pragma is a no-op inside a
        // transaction, so it comes first); finish_restore checks them all.
        self.exec("PRAGMA foreign_keys = OFF", "disabling foreign keys")?;
        self.exec("BEGIN IMMEDIATE", "starting the restore transaction")?;
        self.in_transaction = true;
        Ok(())
    }

    fn create_table(&mut self, source: Dialect, table: &TableDef) -> Result<()> {
        let ctx = format!("creating table {}", table.name);
        if self.mode == RestoreMode::ReplaceExisting {
            self.exec(
                &format!("DROP TABLE IF EXISTS {}", quote(&table.name)),
                &ctx,
            )?;
        }
        let ddl = match source {
            Dialect::Sqlite => table.ddl.clone(),
            _ => Self::derived_table_ddl(table),
        };
        self.exec(&ddl, &ctx)
    }

    fn insert_rows(&mut self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()> {
        let ctx = || format!("inserting into table {}", table.name);
        let cols: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote(&table.name),
            cols.join(", "),
            marks.join(", ")
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| Error::sqlite(ctx(), e))?;
        for row in rows {
            stmt.execute(rusqlite::params_from_iter(row.iter().map(Bind)))
                .map_err(|e| Error::sqlite(ctx(), e))?;
        }
        Ok(())
    }

    fn count_rows(&mut self, table: &TableDef) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row(
                &format!("SELECT count(*) FROM {}", quote(&table.name)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| Error::sqlite(format!("counting rows of {}", table.name), e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn create_objects(
        &mut self,
        source: Dialect,
        objects: &SchemaObjects,
    ) -> Result<Vec<SkippedObject>> {
        if source != Dialect::Sqlite {
            self.exec(
                &format!(
                    "CREATE TABLE IF NOT EXISTS {ORACLE_SEQUENCES_TABLE} \
                     (name TEXT PRIMARY KEY, next_value DECIMAL_TEXT NOT NULL)"
                ),
                "creating the sequences table",
            )?;
            for s in &objects.sequences {
                self.conn
                    .execute(
                        &format!("INSERT OR REPLACE INTO {ORACLE_SEQUENCES_TABLE} VALUES (?1, ?2)"),
                        [&s.name, &s.value],
                    )
                    .map_err(|e| Error::sqlite(format!("recording sequence {}", s.name), e))?;
            }
            return Ok(objects
                .objects
                .iter()
                .map(|o| SkippedObject {
                    object: o.clone(),
                    reason: format!(
                        "{} DDL is not executable by SQLite; the degraded copy keeps tables, \
                         rows, primary keys and sequence values only",
                        source.name()
                    ),
                })
                .collect());
        }
        for o in &objects.objects {
            let ctx = format!("creating {:?} {}", o.kind, o.name);
            if self.mode == RestoreMode::ReplaceExisting {
                let kw = match o.kind {
                    ObjectKind::Index => "INDEX",
                    ObjectKind::View => "VIEW",
                    _ => "TRIGGER",
                };
                self.exec(&format!("DROP {kw} IF EXISTS {}", quote(&o.name)), &ctx)?;
            }
            self.exec(&o.ddl, &ctx)?;
        }
        for s in &objects.sequences {
            let ctx = format!("restoring the AUTOINCREMENT position of {}", s.name);
            let v: i64 = s.value.parse().map_err(|_| Error::Format {
                offset: 0,
                detail: format!("sequence {} has a non-integer value {:?}", s.name, s.value),
            })?;
            self.conn
                .execute("DELETE FROM sqlite_sequence WHERE name = ?1", [&s.name])
                .and_then(|_| {
                    self.conn.execute(
                        "INSERT INTO sqlite_sequence (name, seq) VALUES (?1, ?2)",
                        rusqlite::params![s.name, v],
                    )
                })
                .map_err(|e| Error::sqlite(ctx, e))?;
        }
        Ok(Vec::new())
    }

    fn finish_restore(&mut self) -> Result<()> {
        let ctx = "checking foreign keys after the restore";
        let mut stmt = self
            .conn
            .prepare("PRAGMA foreign_key_check")
            .map_err(|e| Error::sqlite(ctx, e))?;
        let violations: Vec<(String, Option<i64>, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(|e| Error::sqlite(ctx, e))?;
        drop(stmt);
        if let Some((table, rowid, parent)) = violations.first() {
            return Err(Error::ForeignKeyViolation {
                table: table.clone(),
                violations: violations.len() as u64,
                first_rowid: rowid.unwrap_or(-1),
                parent: parent.clone(),
            });
        }
        self.exec("COMMIT", "committing the restore")?;
        self.in_transaction = false;
        self.exec("PRAGMA foreign_keys = ON", "re-enabling foreign keys")?;
        if self.read_only_after_restore {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o444))
                .map_err(|e| Error::io(format!("making {} read-only", self.path.display()), e))?;
        }
        Ok(())
    }

    fn abort_restore(&mut self) {
        if self.in_transaction {
            self.in_transaction = false;
            // Best effort: the transaction may already be gone.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

//! Oracle: consistent logical export and restore of a schema with the `oracle` crate
//! (feature `oracle`).
//!
//! [`OracleDatabase`] implements [`Database`] over an `oracle::Connection`, so the shared
//! [`export`](crate::logical::export) and [`restore`](crate::logical::restore) run on it:
//!
//! - **Consistency.** [`Consistency::FlashbackScn`] (default) records the current SCN
//!   (`DBMS_FLASHBACK.GET_SYSTEM_CHANGE_NUMBER`) and reads every table with
//!   `SELECT ... AS OF SCN n`; [`Consistency::ReadOnlyTransaction`] wraps the reads in one
//!   `SET TRANSACTION READ ONLY`. Either way the export is the schema at one instant while
//!   clinicians keep working; if the undo needed is gone, the export fails with
//!   [`OracleError::SnapshotTooOld`] (ORA-01555) rather than mixing instants.
//! - **DDL** comes from `DBMS_METADATA.GET_DDL` without storage/tablespace clauses; foreign keys,
//!   non-constraint indexes, views, functions, procedures, packages and triggers are separate
//!   objects; sequences are read after the data, so their values cover every exported row.
//! - **Types**: see [`ValueKind`](crate::logical::ValueKind) and `FORMAT.md`; `LONG`, `LONG RAW`, `BFILE`, `ROWID`,
//!   `INTERVAL`, `XMLTYPE` and object types are refused (never silently dropped).
//! - **Restore** into an empty schema (or [`RestoreMode::ReplaceExisting`]): tables first (with
//!   their primary-key, unique and check constraints), rows by array insert, then indexes, then
//!   foreign keys (so they are *not enabled during the load* and are validated when created after
//!   it: the load cannot be refused for row order, and orphan rows are still caught), views,
//!   routines, triggers last (they never fire for restored rows), then sequences recreated at their
//!   recorded position. Row counts are compared table by table. DDL commits in Oracle, so a
//!   failed restore leaves a partial schema: drop it and restart (or use `ReplaceExisting`).
//!
//! Connecting needs the Oracle Client library at run time only (it is loaded by ODPI-C on first
//! use): without it, [`OracleDatabase::connect`] fails with
//! [`OracleError::ClientLibraryMissing`], which says to install Oracle Instant Client.
//!
//! Privileges of the backup account: `CREATE SESSION`, `SELECT` on the schema's tables (or
//! `SELECT ANY TABLE`), `FLASHBACK` on them (or `FLASHBACK ANY TABLE`) for the flashback mode,
//! `EXECUTE ON DBMS_FLASHBACK`, and `SELECT_CATALOG_ROLE` for `DBMS_METADATA` on another schema.
//!
//! Not implemented yet: grants, synonyms, object types, materialized views, `GENERATED ALWAYS`
//! identity columns on restore (insert of explicit values is refused by Oracle), and restoring a
//! SQLite dump into Oracle ([`Error::IncompatibleDialect`]).

mod error;
mod session;
mod sql;

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

pub use error::OracleError;
use error::{FailureContext, OraFailure, map_failure};
use session::{ConnSession, OracleSession, StreamError};

use super::database::{Database, RestoreMode, SkippedObject};
use super::error::{Error, Result};
use super::format::{
    Dialect, DumpHeader, ObjectKind, SchemaObject, SchemaObjects, SequenceDef, SnapshotInfo,
    SnapshotMethod, TableDef,
};
use super::value::Value;

/// How the export gets its consistent view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Consistency {
    /// `AS OF SCN` on every table, at the SCN recorded at the start (needs `FLASHBACK`
    /// privileges; no long transaction is held open).
    #[default]
    FlashbackScn,
    /// One `SET TRANSACTION READ ONLY` transaction around all reads.
    ReadOnlyTransaction,
}

/// How to reach the database. The password is a secret: redacted in `Debug`, never in an error.
#[derive(Debug, Clone)]
pub struct OracleConfig {
    /// User name.
    pub user: String,
    /// Password.
    pub password: SecretString,
    /// Connect string: easy connect `host:port/service` or a tnsnames alias.
    pub connect_string: String,
    /// Schema to export or restore into; default: the user, upper-cased.
    pub schema: Option<String>,
    /// Consistency method of the export.
    pub consistency: Consistency,
    /// Largest LOB read into memory, in bytes (default 256 MiB); a larger one fails the
    /// export with [`Error::ValueTooLarge`].
    pub max_value_bytes: u64,
}

impl OracleConfig {
    /// A configuration with the defaults.
    #[must_use]
    pub fn new(
        user: impl Into<String>,
        password: SecretString,
        connect_string: impl Into<String>,
    ) -> Self {
        Self {
            user: user.into(),
            password,
            connect_string: connect_string.into(),
            schema: None,
            consistency: Consistency::default(),
            max_value_bytes: 256 << 20,
        }
    }

    /// Parses `user/password@connect_string` (the password may contain `/` and `@`: the connect
    /// string is what follows the last `@`).
    ///
    /// # Errors
    /// [`OracleError::Database`] with operation "parsing the connection settings" when a part
    /// is missing; the message never repeats the input.
    pub fn parse(spec: &str) -> std::result::Result<Self, OracleError> {
        let bad = || OracleError::Database {
            code: None,
            operation: "parsing the connection settings".into(),
            message: "expected user/password@connect_string".into(),
        };
        let (credentials, connect) = spec.rsplit_once('@').ok_or_else(bad)?;
        let (user, password) = credentials.split_once('/').ok_or_else(bad)?;
        if user.is_empty() || password.is_empty() || connect.is_empty() {
            return Err(bad());
        }
        Ok(Self::new(user, SecretString::from(password), connect))
    }

    /// The live-test settings: `JFIV_TEST_ORACLE=user/password@connect_string`, or the three
    /// variables `JFIV_TEST_ORACLE_USER`, `JFIV_TEST_ORACLE_PASSWORD`,
    /// `JFIV_TEST_ORACLE_CONNECT`. `None` when unset.
    ///
    /// # Errors
    /// As [`OracleConfig::parse`].
    pub fn from_test_env() -> Option<std::result::Result<Self, OracleError>> {
        if let Ok(spec) = std::env::var("JFIV_TEST_ORACLE") {
            return Some(Self::parse(&spec));
        }
        let user = std::env::var("JFIV_TEST_ORACLE_USER").ok()?;
        let password = std::env::var("JFIV_TEST_ORACLE_PASSWORD").ok()?;
        let connect = std::env::var("JFIV_TEST_ORACLE_CONNECT").ok()?;
        Some(Ok(Self::new(user, SecretString::from(password), connect)))
    }

    fn schema_name(&self) -> String {
        self.schema
            .clone()
            .unwrap_or_else(|| self.user.to_uppercase())
    }
}

/// Context for error messages.
#[derive(Debug, Clone)]
struct Ctx {
    user: String,
    connect_string: String,
    scn: Option<String>,
}

impl Ctx {
    fn error(&self, f: OraFailure, operation: &str, table: Option<&str>) -> Error {
        Error::Oracle(map_failure(
            f,
            &FailureContext {
                user: &self.user,
                connect_string: &self.connect_string,
                operation,
                table,
                scn: self.scn.as_deref(),
                password: None,
            },
        ))
    }
}

/// An Oracle schema, for logical export or restore. Create it with
/// [`OracleDatabase::connect`] on a blocking thread.
pub struct OracleDatabase {
    session: Box<dyn OracleSession>,
    ctx: Ctx,
    schema: String,
    consistency: Consistency,
    max_value_bytes: u64,
    tables: Vec<TableDef>,
    objects: Vec<SchemaObject>,
    read_only_open: bool,
    source_schema: Option<String>,
    mode: RestoreMode,
}

impl fmt::Debug for OracleDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OracleDatabase")
            .field("user", &self.ctx.user)
            .field("connect_string", &self.ctx.connect_string)
            .field("schema", &self.schema)
            .field("consistency", &self.consistency)
            .finish_non_exhaustive()
    }
}

fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

impl OracleDatabase {
    /// Connects (blocking: call it from `tokio::task::spawn_blocking` in async code) and
    /// prepares the session (NLS settings, UTC session time zone).
    ///
    /// # Errors
    /// [`OracleError::ClientLibraryMissing`] (DPI-1047: install Oracle Instant Client),
    /// [`OracleError::InvalidCredentials`], [`OracleError::AccountLocked`],
    /// [`OracleError::UnknownConnectIdentifier`], [`OracleError::UnknownService`],
    /// [`OracleError::NoListener`], other [`OracleError::Database`] errors.
    pub fn connect(config: &OracleConfig) -> Result<Self> {
        let conn = oracle::Connector::new(
            config.user.as_str(),
            config.password.expose_secret(),
            config.connect_string.as_str(),
        )
        .connect()
        .map_err(|e| {
            Error::Oracle(map_failure(
                session::failure(&e),
                &FailureContext {
                    user: &config.user,
                    connect_string: &config.connect_string,
                    operation: "connecting",
                    table: None,
                    scn: None,
                    password: Some(&config.password),
                },
            ))
        })?;
        Self::with_session(Box::new(ConnSession::new(conn)), config)
    }

    /// [`OracleDatabase::connect`] on a Tokio blocking thread, for async callers.
    ///
    /// # Errors
    /// As [`OracleDatabase::connect`].
    pub async fn connect_on_blocking_thread(config: OracleConfig) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::connect(&config))
            .await
            .map_err(|e| {
                Error::Oracle(OracleError::Database {
                    code: None,
                    operation: "connecting".into(),
                    message: format!("the connection thread failed: {e}"),
                })
            })?
    }

    fn with_session(mut session: Box<dyn OracleSession>, config: &OracleConfig) -> Result<Self> {
        let ctx = Ctx {
            user: config.user.clone(),
            connect_string: config.connect_string.clone(),
            scn: None,
        };
        for sql in sql::SESSION_SETUP {
            session
                .execute(sql, &[])
                .map_err(|f| ctx.error(f, "preparing the session", None))?;
        }
        Ok(Self {
            session,
            ctx,
            schema: config.schema_name(),
            consistency: config.consistency,
            max_value_bytes: config.max_value_bytes,
            tables: Vec::new(),
            objects: Vec::new(),
            read_only_open: false,
            source_schema: None,
            mode: RestoreMode::RefuseNonEmpty,
        })
    }

    /// The SCN of the export's snapshot, once [`Database::begin_snapshot`] ran.
    #[must_use]
    pub fn scn(&self) -> Option<&str> {
        self.ctx.scn.as_deref()
    }

    fn query(&mut self, sql: &str, binds: &[&str], what: &str) -> Result<Vec<Vec<Option<String>>>> {
        let binds: Vec<String> = binds.iter().map(|b| (*b).to_owned()).collect();
        let ctx = &self.ctx;
        self.session
            .query_strings(sql, &binds)
            .map_err(|f| ctx.error(f, what, None))
    }

    fn exec(&mut self, sql: &str, what: &str, table: Option<&str>) -> Result<()> {
        let ctx = &self.ctx;
        self.session
            .execute(sql, &[])
            .map_err(|f| ctx.error(f, what, table))
    }

    fn ddl(&mut self, object_type: &str, name: &str) -> Result<String> {
        let schema = self.schema.clone();
        let rows = self.query(
            sql::GET_DDL,
            &[object_type, name, &schema],
            &format!("reading the DDL of {object_type} {name}"),
        )?;
        rows.first()
            .and_then(|r| cell(r, 0))
            .map(|s| s.trim().to_owned())
            .ok_or_else(|| Error::UnsupportedObject {
                kind: object_type.to_lowercase(),
                name: name.to_owned(),
                reason: "DBMS_METADATA returned no DDL".into(),
            })
    }

    fn read_tables(&mut self) -> Result<Vec<TableDef>> {
        let schema = self.schema.clone();
        let names = self.query(sql::LIST_TABLES, &[&schema], "listing the tables")?;
        let mut tables = Vec::with_capacity(names.len());
        for row in names {
            let Some(name) = cell(&row, 0).map(str::to_owned) else {
                continue;
            };
            let cols = self.query(
                sql::LIST_COLUMNS,
                &[&schema, &name],
                &format!("reading the columns of {name}"),
            )?;
            let columns = cols
                .iter()
                .map(|c| {
                    sql::column_from_dictionary(
                        &name,
                        cell(c, 0).unwrap_or_default(),
                        cell(c, 1).unwrap_or_default(),
                        cell(c, 2),
                        cell(c, 3),
                        cell(c, 4),
                        cell(c, 5),
                        cell(c, 6),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let pk = self.query(
                sql::PRIMARY_KEY,
                &[&schema, &name],
                &format!("reading the primary key of {name}"),
            )?;
            let ddl = self.ddl("TABLE", &name)?;
            tables.push(TableDef {
                name,
                ddl,
                columns,
                primary_key: pk
                    .iter()
                    .filter_map(|r| cell(r, 0).map(str::to_owned))
                    .collect(),
            });
        }
        Ok(tables)
    }

    fn read_objects(&mut self) -> Result<Vec<SchemaObject>> {
        let schema = self.schema.clone();
        let mut objects = Vec::new();
        let lists: [(&str, ObjectKind, &str); 3] = [
            (sql::LIST_INDEXES, ObjectKind::Index, "INDEX"),
            (
                sql::LIST_FOREIGN_KEYS,
                ObjectKind::ForeignKey,
                "REF_CONSTRAINT",
            ),
            (sql::LIST_TRIGGERS, ObjectKind::Trigger, "TRIGGER"),
        ];
        let mut triggers = Vec::new();
        for (query, kind, md_type) in lists {
            for row in self.query(query, &[&schema], &format!("listing {md_type} objects"))? {
                let (Some(name), table) = (cell(&row, 0).map(str::to_owned), cell(&row, 1)) else {
                    continue;
                };
                let mut ddl = self.ddl(md_type, &name)?;
                if kind == ObjectKind::Trigger {
                    ddl = sql::trigger_body(&ddl);
                }
                let o = SchemaObject {
                    kind,
                    name,
                    table: table.map(str::to_owned),
                    ddl,
                };
                if kind == ObjectKind::Trigger {
                    triggers.push(o);
                } else {
                    objects.push(o);
                }
            }
        }
        for row in self.query(sql::LIST_CODE, &[&schema], "listing views and routines")? {
            let (Some(ty), Some(name)) = (cell(&row, 0), cell(&row, 1)) else {
                continue;
            };
            let (ty, name) = (ty.to_owned(), name.to_owned());
            let ddl = self.ddl(sql::metadata_type(&ty), &name)?;
            objects.push(SchemaObject {
                kind: if ty == "VIEW" {
                    ObjectKind::View
                } else {
                    ObjectKind::Routine
                },
                name,
                table: None,
                ddl,
            });
        }
        objects.extend(triggers);
        Ok(objects)
    }

    fn remap(&self, ddl: &str) -> String {
        match &self.source_schema {
            Some(from) => sql::remap_schema(ddl, from, &self.schema),
            None => ddl.to_owned(),
        }
    }

    fn exists(&mut self, name: &str, object_type: &str) -> Result<bool> {
        let schema = self.schema.clone();
        let rows = self.query(
            sql::OBJECT_EXISTS,
            &[&schema, name, object_type],
            &format!("looking for {object_type} {name}"),
        )?;
        Ok(rows
            .first()
            .and_then(|r| cell(r, 0))
            .is_some_and(|n| n != "0"))
    }
}

impl Database for OracleDatabase {
    fn dialect(&self) -> Dialect {
        Dialect::Oracle
    }

    fn describe(&self) -> String {
        format!(
            "Oracle schema {} at {}",
            self.schema, self.ctx.connect_string
        )
    }

    fn schema(&self) -> Option<String> {
        Some(self.schema.clone())
    }

    fn begin_snapshot(&mut self) -> Result<SnapshotInfo> {
        self.exec(sql::METADATA_SETUP, "configuring DBMS_METADATA", None)?;
        self.tables = self.read_tables()?;
        self.objects = self.read_objects()?;
        if self.consistency == Consistency::ReadOnlyTransaction {
            let ctx = &self.ctx;
            self.session
                .commit()
                .map_err(|f| ctx.error(f, "ending the metadata transaction", None))?;
            self.exec(
                "SET TRANSACTION READ ONLY",
                "starting the read-only transaction",
                None,
            )?;
            self.read_only_open = true;
        }
        let rows = self.query(sql::CURRENT_SCN, &[], "reading the current SCN")?;
        let scn = rows
            .first()
            .and_then(|r| cell(r, 0))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .ok_or_else(|| Error::format(0, "the database returned no valid SCN"))?;
        self.ctx.scn = Some(scn.clone());
        let ctx = &self.ctx;
        let version = self
            .session
            .server_version()
            .map_err(|f| ctx.error(f, "reading the server version", None))?;
        Ok(SnapshotInfo {
            method: match self.consistency {
                Consistency::FlashbackScn => SnapshotMethod::OracleFlashbackScn,
                Consistency::ReadOnlyTransaction => SnapshotMethod::OracleReadOnlyTransaction,
            },
            scn: Some(scn),
            server_version: Some(version),
        })
    }

    fn tables(&mut self) -> Result<Vec<TableDef>> {
        Ok(self.tables.clone())
    }

    fn scan_table(
        &mut self,
        table: &TableDef,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<u64> {
        let as_of = match self.consistency {
            Consistency::FlashbackScn => self.ctx.scn.as_deref(),
            Consistency::ReadOnlyTransaction => None,
        };
        let sql = sql::select_rows(&self.schema, table, as_of)?;
        let kinds: Vec<_> = table.columns.iter().map(|c| c.kind).collect();
        let ctx = &self.ctx;
        let what = "reading rows";
        let mut rows = self
            .session
            .query_rows(&sql, &kinds, self.max_value_bytes)
            .map_err(|f| ctx.error(f, what, Some(&table.name)))?;
        let mut n = 0u64;
        loop {
            let row = match rows.next_row() {
                Ok(Some(row)) => row,
                Ok(None) => break,
                Err(StreamError::Oracle(f)) => return Err(ctx.error(f, what, Some(&table.name))),
                Err(StreamError::TooLarge { column, size }) => {
                    return Err(Error::ValueTooLarge {
                        table: table.name.clone(),
                        column: table.columns[column].name.clone(),
                        size,
                        limit: self.max_value_bytes,
                    });
                }
                Err(StreamError::Conversion { column, detail }) => {
                    return Err(Error::UnsupportedType {
                        table: table.name.clone(),
                        column: table.columns[column].name.clone(),
                        source_type: format!("{} ({detail})", table.columns[column].source_type),
                    });
                }
            };
            each(row)?;
            n += 1;
        }
        Ok(n)
    }

    fn objects(&mut self) -> Result<SchemaObjects> {
        let schema = self.schema.clone();
        let rows = self.query(sql::LIST_SEQUENCES, &[&schema], "reading the sequences")?;
        let sequences = rows
            .iter()
            .filter_map(|r| {
                Some(SequenceDef {
                    name: cell(r, 0)?.to_owned(),
                    value: cell(r, 1)?.to_owned(),
                    increment_by: cell(r, 2).unwrap_or("1").to_owned(),
                    min_value: cell(r, 3).map(str::to_owned),
                    max_value: cell(r, 4).map(str::to_owned),
                    cache: cell(r, 5).and_then(|c| c.parse().ok()).unwrap_or(0),
                    cycle: cell(r, 6) == Some("Y"),
                    order: cell(r, 7) == Some("Y"),
                })
            })
            .collect();
        Ok(SchemaObjects {
            objects: self.objects.clone(),
            sequences,
        })
    }

    fn end_snapshot(&mut self) -> Result<()> {
        if self.read_only_open {
            self.read_only_open = false;
            let ctx = &self.ctx;
            self.session
                .commit()
                .map_err(|f| ctx.error(f, "ending the read-only transaction", None))?;
        }
        Ok(())
    }

    fn existing_objects(&mut self) -> Result<Vec<String>> {
        let schema = self.schema.clone();
        Ok(self
            .query(
                sql::EXISTING_OBJECTS,
                &[&schema],
                "listing the target's objects",
            )?
            .iter()
            .filter_map(|r| cell(r, 0).map(str::to_owned))
            .collect())
    }

    fn begin_restore(&mut self, header: &DumpHeader, mode: RestoreMode) -> Result<()> {
        if header.dialect != Dialect::Oracle {
            return Err(Error::IncompatibleDialect {
                source_dialect: header.dialect.name().into(),
                target: self.describe(),
                reason: "only Oracle dumps restore into Oracle; restore this dump into SQLite"
                    .into(),
            });
        }
        self.source_schema = header.schema.clone();
        self.mode = mode;
        Ok(())
    }

    fn create_table(&mut self, _source: Dialect, table: &TableDef) -> Result<()> {
        let what = format!("creating table {}", table.name);
        if self.mode == RestoreMode::ReplaceExisting && self.exists(&table.name, "TABLE")? {
            let drop = format!(
                "DROP TABLE {}.{} CASCADE CONSTRAINTS PURGE",
                sql::ident(&self.schema)?,
                sql::ident(&table.name)?
            );
            self.exec(&drop, &what, Some(&table.name))?;
        }
        let ddl = self.remap(&table.ddl);
        self.exec(&ddl, &what, Some(&table.name))
    }

    fn insert_rows(&mut self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()> {
        let types = table
            .columns
            .iter()
            .map(|c| sql::bind_type(&table.name, c))
            .collect::<Result<Vec<_>>>()?;
        let sql = sql::insert_rows(&self.schema, table)?;
        let ctx = &self.ctx;
        self.session
            .insert_batch(&sql, &types, rows)
            .map_err(|f| ctx.error(f, "inserting rows", Some(&table.name)))
    }

    fn count_rows(&mut self, table: &TableDef) -> Result<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {}.{}",
            sql::ident(&self.schema)?,
            sql::ident(&table.name)?
        );
        let rows = self.query(&sql, &[], &format!("counting the rows of {}", table.name))?;
        rows.first()
            .and_then(|r| cell(r, 0))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::format(0, format!("no row count for {}", table.name)))
    }

    fn create_objects(
        &mut self,
        _source: Dialect,
        objects: &SchemaObjects,
    ) -> Result<Vec<SkippedObject>> {
        for o in &objects.objects {
            let ddl = self.remap(&o.ddl);
            self.exec(
                &ddl,
                &format!("creating {:?} {}", o.kind, o.name),
                o.table.as_deref(),
            )?;
        }
        for s in &objects.sequences {
            let what = format!("creating sequence {}", s.name);
            if self.mode == RestoreMode::ReplaceExisting && self.exists(&s.name, "SEQUENCE")? {
                let drop = format!(
                    "DROP SEQUENCE {}.{}",
                    sql::ident(&self.schema)?,
                    sql::ident(&s.name)?
                );
                self.exec(&drop, &what, None)?;
            }
            let create = sql::create_sequence(&self.schema, s)?;
            self.exec(&create, &what, None)?;
        }
        Ok(Vec::new())
    }

    fn finish_restore(&mut self) -> Result<()> {
        let ctx = &self.ctx;
        self.session
            .commit()
            .map_err(|f| ctx.error(f, "committing the restore", None))
    }

    fn abort_restore(&mut self) {
        // Best effort: undoes the rows of the current table (DDL already committed).
        let _ = self.session.rollback();
    }
}

#[cfg(test)]
mod tests;

//! The logical dump and the Oracle tools as backup [`Source`]s, and the way back from a snapshot.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jfiv_audit::{Clock, SystemClock};

use super::database::Database;
use super::datapump::{ExpdpConfig, RmanConfig};
use super::transfer::{ExportOptions, RestoreOptions, RestoreReport, export, restore};
use super::{Error as LogicalError, SqliteDatabase};
use crate::source::metadata_of;
use crate::{
    BackupTarget, DatabaseInfo, DirectorySource, EntryKind, Error, ExtractOptions, Manifest,
    NoProgress, Object, RepositoryKey, Result, Scan, Selection, Source, SourceEntry, SourceInfo,
    SourceKind, extract, safe_relative,
};

/// `DatabaseInfo::engine` of a logical dump of a SQLite database.
pub const SQLITE_LOGICAL_ENGINE: &str = "sqlite-logical-dump";
/// `DatabaseInfo::engine` of a logical dump of an Oracle schema.
pub const ORACLE_LOGICAL_ENGINE: &str = "oracle-logical-dump";
/// `DatabaseInfo::engine` of a Data Pump export.
pub const DATAPUMP_ENGINE: &str = "oracle-datapump";
/// `DatabaseInfo::engine` of an RMAN backup.
pub const RMAN_ENGINE: &str = "oracle-rman";
/// File written next to the RMAN pieces (and so backed up with them) recording the DBID.
pub const RMAN_DBID_FILE: &str = "jfiv-rman-dbid.json";

fn source_error(name: &str, e: &LogicalError) -> Error {
    Error::Source {
        source_name: name.to_owned(),
        reason: e.to_string(),
    }
}

/// Exports `db` into a temporary file and describes it as one file entry with its row counts.
fn dump_scan(
    name: &str,
    entry_name: &str,
    temp_dir: Option<&Path>,
    engine: &str,
    db: &mut dyn Database,
    clock: &dyn Clock,
) -> Result<Scan> {
    let dir = temp_dir.map_or_else(std::env::temp_dir, Path::to_owned);
    let tmp = tempfile::Builder::new()
        .prefix("jfiv-logical-dump-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io("create temporary directory in", &dir, e))?;
    let path = tmp.path().join("dump.ldump");
    let file = File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    let (file, summary) =
        export(db, file, &ExportOptions::at(clock.now())).map_err(|e| source_error(name, &e))?;
    file.sync_all().map_err(|e| Error::io("sync", &path, e))?;
    drop(file);
    let mut meta = metadata_of(&std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?);
    meta.mode = 0o600;
    Ok(Scan {
        entries: vec![SourceEntry {
            path: entry_name.to_owned(),
            kind: EntryKind::File,
            meta,
            read_from: Some(path),
        }],
        warnings: Vec::new(),
        databases: vec![DatabaseInfo {
            engine: engine.to_owned(),
            path: entry_name.to_owned(),
            row_counts: summary
                .dump
                .trailer
                .tables
                .iter()
                .map(|t| (t.name.clone(), t.rows))
                .collect(),
        }],
        guard: Some(Box::new(tmp)),
    })
}

/// A SQLite database exported table by table into a [logical dump](mod@super::format), beside the
/// physical copy of [`SqliteSource`](crate::SqliteSource): restorable into SQLite (and the same
/// code path as the Oracle export). The dump is one entry, `<name>.ldump` by default; its row
/// counts go into the manifest.
#[derive(Debug, Clone)]
pub struct LogicalSqliteSource {
    name: String,
    database: PathBuf,
    entry_name: String,
    temp_dir: Option<PathBuf>,
    clock: Arc<dyn Clock>,
}

impl LogicalSqliteSource {
    /// The database at `database`, stored as `<name>.ldump`.
    pub fn new(name: impl Into<String>, database: impl Into<PathBuf>) -> Self {
        let name = name.into();
        Self {
            entry_name: format!("{name}.ldump"),
            name,
            database: database.into(),
            temp_dir: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Stores the dump under `entry_name`.
    #[must_use]
    pub fn entry_name(mut self, entry_name: impl Into<String>) -> Self {
        self.entry_name = entry_name.into();
        self
    }

    /// Where the temporary dump is written (default: the system's temporary directory).
    #[must_use]
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The clock giving the dump's `created_at`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

impl Source for LogicalSqliteSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Other("sqlite-logical".into()),
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let mut db = SqliteDatabase::open_for_export(&self.database)
            .map_err(|e| source_error(&self.name, &e))?;
        dump_scan(
            &self.name,
            &self.entry_name,
            self.temp_dir.as_deref(),
            SQLITE_LOGICAL_ENGINE,
            &mut db,
            self.clock.as_ref(),
        )
    }
}

/// The JFIV Oracle schema, exported as of one SCN with the `oracle` crate into a logical dump
/// (feature `oracle`). Connecting happens in [`Source::scan`], which the backup runs on a
/// blocking thread.
#[cfg(feature = "oracle")]
#[derive(Debug, Clone)]
pub struct OracleSchemaSource {
    name: String,
    config: super::oracle::OracleConfig,
    entry_name: String,
    temp_dir: Option<PathBuf>,
    clock: Arc<dyn Clock>,
}

#[cfg(feature = "oracle")]
impl OracleSchemaSource {
    /// The schema reached with `config`, stored as `<name>.ldump`.
    pub fn new(name: impl Into<String>, config: super::oracle::OracleConfig) -> Self {
        let name = name.into();
        Self {
            entry_name: format!("{name}.ldump"),
            name,
            config,
            temp_dir: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// Stores the dump under `entry_name`.
    #[must_use]
    pub fn entry_name(mut self, entry_name: impl Into<String>) -> Self {
        self.entry_name = entry_name.into();
        self
    }

    /// Where the temporary dump is written (it needs room for the whole dump).
    #[must_use]
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The clock giving the dump's `created_at`.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

#[cfg(feature = "oracle")]
impl Source for OracleSchemaSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Other("oracle-logical".into()),
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let mut db = super::oracle::OracleDatabase::connect(&self.config)
            .map_err(|e| source_error(&self.name, &e))?;
        dump_scan(
            &self.name,
            &self.entry_name,
            self.temp_dir.as_deref(),
            ORACLE_LOGICAL_ENGINE,
            &mut db,
            self.clock.as_ref(),
        )
    }
}

/// A Data Pump export ([`ExpdpConfig::run`]: parameter file, flashback, log check), then the
/// export directory backed up under the source's name.
#[derive(Debug, Clone)]
pub struct DataPumpSource {
    name: String,
    config: ExpdpConfig,
}

impl DataPumpSource {
    /// Runs `config` before each backup.
    pub fn new(name: impl Into<String>, config: ExpdpConfig) -> Self {
        Self {
            name: name.into(),
            config,
        }
    }
}

impl Source for DataPumpSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Command,
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let run = self.config.run().map_err(|e| Error::Command {
            program: self.config.program.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut scan = DirectorySource::new(self.name.clone())
            .root_as(&self.config.directory_path, self.name.clone())
            .scan()?;
        for f in &run.dump_files {
            if let Some(file) = f.file_name() {
                scan.databases.push(DatabaseInfo {
                    engine: DATAPUMP_ENGINE.to_owned(),
                    path: format!("{}/{}", self.name, file.to_string_lossy()),
                    row_counts: BTreeMap::new(),
                });
            }
        }
        Ok(scan)
    }
}

/// An RMAN backup to disk ([`RmanConfig::run`]), then the backup directory backed up under the
/// source's name. The DBID is written to [`RMAN_DBID_FILE`] in that directory before it is
/// scanned, so it is in the snapshot, and named in the manifest's database entry
/// (`engine` [`RMAN_ENGINE`], `path` that file).
#[derive(Debug, Clone)]
pub struct RmanSource {
    name: String,
    config: RmanConfig,
}

impl RmanSource {
    /// Runs `config` before each backup.
    pub fn new(name: impl Into<String>, config: RmanConfig) -> Self {
        Self {
            name: name.into(),
            config,
        }
    }
}

impl Source for RmanSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Command,
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let run = self.config.run().map_err(|e| Error::Command {
            program: self.config.program.display().to_string(),
            reason: e.to_string(),
        })?;
        let dbid_path = self.config.backup_dir.join(RMAN_DBID_FILE);
        let record = serde_json::json!({
            "database": run.database,
            "dbid": run.dbid,
            "pieces": run.pieces,
        });
        std::fs::write(&dbid_path, record.to_string())
            .map_err(|e| Error::io("write", &dbid_path, e))?;
        let mut scan = DirectorySource::new(self.name.clone())
            .root_as(&self.config.backup_dir, self.name.clone())
            .scan()?;
        scan.databases.push(DatabaseInfo {
            engine: RMAN_ENGINE.to_owned(),
            path: format!("{}/{RMAN_DBID_FILE}", self.name),
            row_counts: BTreeMap::new(),
        });
        Ok(scan)
    }
}

/// A logical dump extracted from a snapshot (BLAKE3-verified by the extraction), ready to be
/// restored, with the row counts the manifest recorded for it.
#[derive(Debug)]
pub struct ExtractedDump {
    /// The dump file.
    pub path: PathBuf,
    /// Row counts of the manifest's database entry for this dump, if any.
    pub expected_counts: Option<BTreeMap<String, u64>>,
}

impl ExtractedDump {
    /// Restores the dump into `db` (blocking: run it on a blocking thread in async code); the
    /// manifest's row counts are checked too.
    ///
    /// # Errors
    /// As [`restore`].
    pub fn restore_into(
        &self,
        db: &mut dyn Database,
        options: &RestoreOptions,
    ) -> super::Result<RestoreReport> {
        let file = File::open(&self.path)
            .map_err(|e| LogicalError::io(format!("opening {}", self.path.display()), e))?;
        let mut options = options.clone();
        if options.expected_counts.is_none() {
            options.expected_counts = self.expected_counts.clone();
        }
        restore(BufReader::new(file), db, &options)
    }
}

/// Extracts the logical dump stored as `entry_path` in the snapshot `manifest` into `scratch`.
///
/// # Errors
/// Errors of [`extract`]; [`Error::NotFound`] if the snapshot has no such entry;
/// [`Error::Integrity`] if the entry could not be extracted intact.
pub async fn extract_dump(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    manifest: &Manifest,
    entry_path: &str,
    scratch: &Path,
) -> Result<ExtractedDump> {
    if !manifest.entries.iter().any(|e| e.path == entry_path) {
        return Err(Error::NotFound {
            object: Object::File(entry_path.to_owned()),
        });
    }
    let options = ExtractOptions {
        owner: false,
        ..ExtractOptions::default()
    };
    let report = extract(
        target,
        key,
        manifest,
        &Selection::paths([entry_path]),
        scratch,
        options,
        &NoProgress,
    )
    .await?;
    if let Some(failed) = report.failed.first() {
        return Err(Error::Integrity {
            object: Object::File(failed.path.clone()),
            reason: failed.reason.clone(),
        });
    }
    Ok(ExtractedDump {
        path: scratch.join(safe_relative(entry_path)?),
        expected_counts: manifest
            .databases
            .iter()
            .find(|d| d.path == entry_path)
            .map(|d| d.row_counts.clone()),
    })
}

//! [`SqliteSource`]: an online, consistent copy of a SQLite database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{Scan, Source, SourceEntry, metadata_of};
use crate::{DatabaseInfo, EntryKind, Error, Result, SourceInfo, SourceKind};

/// A SQLite database, copied with SQLite's online backup API into a temporary file (a
/// consistent image even while the application writes), whose table row counts are recorded
/// in the manifest for restore checks. The copy is what gets backed up, under `entry_name`.
#[derive(Debug, Clone)]
pub struct SqliteSource {
    name: String,
    database: PathBuf,
    entry_name: String,
    temp_dir: Option<PathBuf>,
}

impl SqliteSource {
    /// The database at `database`, stored under its file name.
    pub fn new(name: impl Into<String>, database: impl Into<PathBuf>) -> Self {
        let database = database.into();
        let entry_name = database
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database.sqlite".to_owned());
        Self {
            name: name.into(),
            database,
            entry_name,
            temp_dir: None,
        }
    }

    /// Stores the copy under `entry_name` instead of the file name.
    pub fn entry_name(mut self, entry_name: impl Into<String>) -> Self {
        self.entry_name = entry_name.into();
        self
    }

    /// Where to put the temporary copy (default: the system's temporary directory). It needs
    /// as much free space as the database.
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    fn sqlite_err(&self, source: rusqlite::Error) -> Error {
        Error::Sqlite {
            path: self.database.clone(),
            source,
        }
    }
}

/// Row counts of every user table of `conn`.
///
/// # Errors
/// SQLite errors.
pub(crate) fn row_counts(conn: &Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = BTreeMap::new();
    for name in names {
        let quoted = name.replace('"', "\"\"");
        let count: i64 =
            conn.query_row(&format!("SELECT count(*) FROM \"{quoted}\""), [], |r| {
                r.get(0)
            })?;
        out.insert(name, count.max(0) as u64);
    }
    Ok(out)
}

impl Source for SqliteSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Sqlite,
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let original =
            std::fs::metadata(&self.database).map_err(|e| Error::io("stat", &self.database, e))?;
        let src = Connection::open_with_flags(
            &self.database,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.sqlite_err(e))?;
        let dir = self.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        let tmp = tempfile::Builder::new()
            .prefix("jfiv-sqlite-copy-")
            .tempdir_in(&dir)
            .map_err(|e| Error::io("create temporary directory in", &dir, e))?;
        let copy_path = tmp.path().join("copy.sqlite");
        let mut dst = Connection::open(&copy_path).map_err(|e| self.sqlite_err(e))?;
        {
            let backup =
                rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| self.sqlite_err(e))?;
            backup
                .run_to_completion(4096, Duration::from_millis(0), None)
                .map_err(|e| self.sqlite_err(e))?;
        }
        let counts = row_counts(&dst).map_err(|e| self.sqlite_err(e))?;
        dst.close().map_err(|(_, e)| self.sqlite_err(e))?;
        drop(src);
        let copy_meta =
            std::fs::metadata(&copy_path).map_err(|e| Error::io("stat", &copy_path, e))?;
        let orig = metadata_of(&original);
        let mut meta = metadata_of(&copy_meta);
        // Permissions and owner of the real database; size, times and inode of the fresh copy
        // (so an incremental backup never mistakes a new copy for the previous one).
        meta.mode = orig.mode;
        meta.uid = orig.uid;
        meta.gid = orig.gid;
        Ok(Scan {
            entries: vec![SourceEntry {
                path: self.entry_name.clone(),
                kind: EntryKind::File,
                meta,
                read_from: Some(copy_path),
            }],
            warnings: Vec::new(),
            databases: vec![DatabaseInfo {
                engine: "sqlite".to_owned(),
                path: self.entry_name.clone(),
                row_counts: counts,
            }],
            guard: Some(Box::new(tmp)),
        })
    }
}

/// Opens a restored SQLite file and returns its table row counts (for restore checks).
///
/// # Errors
/// [`Error::Sqlite`].
pub fn sqlite_row_counts(path: &Path) -> Result<BTreeMap<String, u64>> {
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|source| {
            Error::Sqlite {
                path: path.to_path_buf(),
                source,
            }
        })?;
    row_counts(&conn).map_err(|source| Error::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

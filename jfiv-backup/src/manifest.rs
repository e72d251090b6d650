//! Snapshot manifests: what a snapshot holds, entry by entry.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ChunkId, Error, Object, RepositoryKey, Result, SnapshotId, format};

/// The manifest format version written by this crate (the `format` field).
pub const MANIFEST_VERSION: u32 = 1;

/// Which kind of source a snapshot was taken from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SourceKind {
    /// A directory tree ([`DirectorySource`](crate::DirectorySource)).
    Directory,
    /// An online copy of a SQLite database ([`SqliteSource`](crate::SqliteSource)).
    Sqlite,
    /// The files produced by a pre-backup command ([`CommandSource`](crate::CommandSource)).
    Command,
    /// Another source implementation.
    Other(String),
}

/// The source of a snapshot: its kind and its configured name (`app-server`, `jfiv-db`).
/// Incremental backups and retention work per source name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The kind.
    pub kind: SourceKind,
    /// The name.
    pub name: String,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file, with content.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// Where it points (not followed, not checked).
        target: String,
    },
}

/// File metadata as recorded at backup time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Inode number (for incremental change detection only).
    pub ino: u64,
    /// Status-change time, seconds since the epoch (for change detection only).
    pub ctime: i64,
    /// Nanoseconds part of the status-change time.
    pub ctime_nsec: u32,
}

/// One piece of a file: a chunk and its plaintext length. A file's content is the
/// concatenation of its chunks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// The chunk.
    pub id: ChunkId,
    /// Its plaintext length in bytes.
    pub len: u32,
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path inside the snapshot, components separated by `/`, never absolute, never
    /// `..`; for a [`DirectorySource`](crate::DirectorySource) it starts with the root's label.
    pub path: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Metadata.
    pub meta: Metadata,
    /// Content chunks, in order (files only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<ChunkRef>,
    /// BLAKE3 (unkeyed, 32 bytes hex) of the whole content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// `false` if the file changed while it was being read, on every attempt: the stored bytes
    /// are what was read, but they are not a consistent version of the file.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub consistent: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Entry {
    /// The total content length according to the chunk list.
    pub fn content_len(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.len)).sum()
    }
}

/// A database inside a snapshot, with what restore checks compare against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseInfo {
    /// `sqlite` (others to come with the Oracle hooks).
    pub engine: String,
    /// The entry path of the database file in this snapshot.
    pub path: String,
    /// Row count of each table at backup time (in the consistent copy).
    pub row_counts: BTreeMap<String, u64>,
}

/// Totals of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestStats {
    /// Number of entries.
    pub entries: u64,
    /// Number of regular files.
    pub files: u64,
    /// Sum of the file sizes.
    pub bytes: u64,
}

/// The manifest of one snapshot: its provenance and its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version ([`MANIFEST_VERSION`]).
    pub format: u32,
    /// The snapshot's id.
    pub snapshot: SnapshotId,
    /// Where the data came from.
    pub source: SourceInfo,
    /// The host the backup ran on.
    pub host: String,
    /// When the backup started (UTC).
    pub started: DateTime<Utc>,
    /// When it finished (UTC).
    pub finished: DateTime<Utc>,
    /// Version of jfiv-backup that wrote it.
    pub jfiv_version: String,
    /// The snapshot this one was taken incrementally against, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<SnapshotId>,
    /// Totals.
    pub stats: ManifestStats,
    /// Databases in the snapshot, with row counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseInfo>,
    /// Warnings of the backup (special files skipped, files that changed while read...), one
    /// human-readable line each. Empty for a clean snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The entries, sorted by path.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Serialises, compresses and encrypts the manifest.
    ///
    /// # Errors
    /// [`Error::Internal`] if serialisation fails (it does not).
    pub fn encode(&self, key: &RepositoryKey) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Internal {
            reason: format!("manifest serialisation: {e}"),
        })?;
        format::encode_manifest(key, &self.snapshot, &json)
    }

    /// Decrypts, authenticates and parses a manifest stored under `id`.
    ///
    /// # Errors
    /// [`Error::WrongKey`], [`Error::Integrity`], [`Error::Format`] (also when the manifest
    /// inside names another snapshot id).
    pub fn decode(key: &RepositoryKey, id: &SnapshotId, blob: &[u8]) -> Result<Self> {
        let json = format::decode_manifest(key, id, blob)?;
        let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| {
            Error::format(
                Object::Manifest(*id),
                e.column() as u64,
                format!("manifest JSON: {e}"),
            )
        })?;
        if manifest.format != MANIFEST_VERSION {
            return Err(Error::format(
                Object::Manifest(*id),
                0,
                format!("unsupported manifest version {}", manifest.format),
            ));
        }
        if manifest.snapshot != *id {
            return Err(Error::integrity(
                Object::Manifest(*id),
                format!("the manifest inside names snapshot {}", manifest.snapshot),
            ));
        }
        Ok(manifest)
    }

    /// The summary used by retention and listings.
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            id: self.snapshot,
            source: self.source.clone(),
            host: self.host.clone(),
            started: self.started,
            finished: self.finished,
            stats: self.stats,
            warnings: self.warnings.len(),
        }
    }

    /// Every distinct chunk the snapshot references.
    pub fn chunk_ids(&self) -> std::collections::HashSet<ChunkId> {
        self.entries
            .iter()
            .flat_map(|e| e.chunks.iter().map(|c| c.id))
            .collect()
    }
}

/// What is needed about a snapshot to list it and to apply retention to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// Its id.
    pub id: SnapshotId,
    /// Its source.
    pub source: SourceInfo,
    /// Its host.
    pub host: String,
    /// Start time.
    pub started: DateTime<Utc>,
    /// End time.
    pub finished: DateTime<Utc>,
    /// Totals.
    pub stats: ManifestStats,
    /// Number of warnings.
    pub warnings: usize,
}

//! [`DiskTarget`]: a content-addressed store in a directory.
//!
//! ```text
//! <root>/jfiv-store                   marker: "jfiv-backup disk store\nversion 1\n"
//! <root>/lock                         locked (flock) by the process using the store
//! <root>/chunks/<2 hex>/<64 hex>      one encrypted chunk per file, named by its id
//! <root>/snapshots/<32 hex>           one encrypted manifest per snapshot
//! <root>/tmp/                         chunks not yet durable (emptied on open)
//! ```
//!
//! Chunks are first written under `tmp/` without `fsync`. [`flush`](BackupTarget::flush) (and
//! so every `put_manifest`) makes them durable in one `syncfs`, then renames each to its final
//! name and `fsync`s the directories. A chunk therefore never appears under `chunks/` before its
//! bytes are on disk, and a crash leaves only garbage in `tmp/`, which the next `open` removes.
//! Manifests are written with temp + `fsync` + rename + directory `fsync`, after the flush.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{BackupTarget, Capabilities, ChunkId, Error, Object, Result, SnapshotId, Stored};

const MARKER: &str = "jfiv-store";
const MARKER_TEXT: &str = "jfiv-backup disk store\nversion 1\n";

/// Writes `bytes` to `path` atomically: temporary file in the same directory, `fsync`, rename,
/// `fsync` of the directory. An existing file is replaced.
///
/// # Errors
/// I/O errors ([`Error::NoSpace`], [`Error::ReadOnly`] mapped).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

#[derive(Debug, Default)]
struct Pending {
    /// Chunks written under tmp/ and not yet renamed.
    chunks: HashMap<ChunkId, PathBuf>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    read_only: bool,
    pending: Mutex<Pending>,
    _lock: File,
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.root.join("chunks").join(&hex[..2]).join(hex)
    }

    fn manifest_path(&self, id: &SnapshotId) -> PathBuf {
        self.root.join("snapshots").join(id.to_hex())
    }

    fn refuse_if_read_only(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly {
                path: self.root.clone(),
            })
        } else {
            Ok(())
        }
    }

    fn put_chunk(&self, id: &ChunkId, blob: &[u8]) -> Result<Stored> {
        self.refuse_if_read_only()?;
        if self.pending().chunks.contains_key(id) || self.chunk_path(id).exists() {
            return Ok(Stored::AlreadyPresent);
        }
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{}.{:016x}", id.to_hex(), rand::random::<u64>()));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::io("create", &tmp, e))?;
            f.write_all(blob).map_err(|e| Error::io("write", &tmp, e))
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let mut pending = self.pending();
        if pending.chunks.contains_key(id) {
            drop(pending);
            let _ = fs::remove_file(&tmp);
            return Ok(Stored::AlreadyPresent);
        }
        pending.chunks.insert(*id, tmp);
        Ok(Stored::New)
    }

    fn flush(&self) -> Result<()> {
        let batch: Vec<(ChunkId, PathBuf)> = self
            .pending()
            .chunks
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if batch.is_empty() {
            return Ok(());
        }
        let tmp_dir = self.root.join("tmp");
        let dir = File::open(&tmp_dir).map_err(|e| Error::io("open", &tmp_dir, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io("syncfs", &tmp_dir, e.into()))?;
        let mut dirs: HashSet<PathBuf> = HashSet::new();
        let chunks_dir = self.root.join("chunks");
        for (id, tmp) in &batch {
            let final_path = self.chunk_path(id);
            let parent = final_path.parent().unwrap_or(&chunks_dir).to_path_buf();
            if !dirs.contains(&parent) && !parent.exists() {
                fs::create_dir(&parent)
                    .or_else(|e| if parent.exists() { Ok(()) } else { Err(e) })
                    .map_err(|e| Error::io("create", &parent, e))?;
            }
            fs::rename(tmp, &final_path).map_err(|e| Error::io("rename", &final_path, e))?;
            self.pending().chunks.remove(id);
            dirs.insert(parent);
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        sync_dir(&chunks_dir)
    }

    fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let path = self
            .pending()
            .chunks
            .get(id)
            .cloned()
            .unwrap_or_else(|| self.chunk_path(id));
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                object: Object::Chunk(*id),
            },
            _ => Error::io("read", &path, e),
        })
    }
}

/// A content-addressed store in a directory (see the module docs for the layout).
///
/// Opening it takes an exclusive OS lock (`flock`) on `<root>/lock`, released when the
/// `DiskTarget` is dropped or the process dies: there are no stale locks.
#[derive(Debug, Clone)]
pub struct DiskTarget {
    inner: Arc<Inner>,
}

/// One chunk file of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFile {
    /// Its id.
    pub id: ChunkId,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time (when it was stored).
    pub modified: SystemTime,
}

impl DiskTarget {
    /// Creates a store in `root` (which may exist and must then be empty), or opens it if it
    /// already is one.
    ///
    /// # Errors
    /// [`Error::Target`] if `root` is a non-empty directory that is not a store; I/O errors.
    pub fn create(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io("create", root, e))?;
        if root.join(MARKER).exists() {
            return Self::open(root);
        }
        let non_empty = fs::read_dir(root)
            .map_err(|e| Error::io("list", root, e))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::Target {
                reason: format!("{} is not empty and not a jfiv store", root.display()),
            });
        }
        for sub in ["chunks", "snapshots", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
        }
        write_atomic(&root.join(MARKER), MARKER_TEXT.as_bytes(), 0o644)?;
        Self::open(root)
    }

    /// Opens an existing store for reading and writing, taking its lock.
    ///
    /// # Errors
    /// [`Error::StoreMissing`] (not a store: unmounted disk?), [`Error::Locked`],
    /// [`Error::ReadOnly`] (use [`open_read_only`](Self::open_read_only)), I/O errors.
    pub fn open(root: &Path) -> Result<Self> {
        Self::check_marker(root)?;
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => Error::Locked {
                path: root.to_path_buf(),
            },
            fs::TryLockError::Error(e) => Error::io("lock", &lock_path, e),
        })?;
        // Leftovers of a crashed backup: never renamed, never referenced.
        let tmp = root.join("tmp");
        fs::create_dir_all(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        for entry in fs::read_dir(&tmp)
            .map_err(|e| Error::io("list", &tmp, e))?
            .flatten()
        {
            let _ = fs::remove_file(entry.path());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                read_only: false,
                pending: Mutex::default(),
                _lock: lock,
            }),
        })
    }

    /// Opens a store for reading only (a disk mounted read-only, a restore), with a shared lock
    /// that keeps writers out. Writes fail with [`Error::ReadOnly`].
    ///
    /// # Errors
    /// [`Error::StoreMissing`], [`Error::Locked`] (a writer holds the store), I/O errors.
    pub fn open_read_only(root: &Path) -> Result<Self> {
        Self::check_marker(root)?;
        let lock_path = root.join("lock");
        let lock = File::open(&lock_path).map_err(|e| Error::io("open", &lock_path, e))?;
        lock.try_lock_shared().map_err(|e| match e {
            fs::TryLockError::WouldBlock => Error::Locked {
                path: root.to_path_buf(),
            },
            fs::TryLockError::Error(e) => Error::io("lock", &lock_path, e),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                read_only: true,
                pending: Mutex::default(),
                _lock: lock,
            }),
        })
    }

    fn check_marker(root: &Path) -> Result<()> {
        let marker = root.join(MARKER);
        match fs::read_to_string(&marker) {
            Ok(text) if text == MARKER_TEXT => Ok(()),
            Ok(text) => Err(Error::format(
                Object::Other(marker.display().to_string()),
                0,
                format!(
                    "unsupported store marker {:?}",
                    text.lines().nth(1).unwrap_or("")
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::StoreMissing {
                path: root.to_path_buf(),
            }),
            Err(e) => Err(Error::io("read", &marker, e)),
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The file holding a chunk (for tests and forensic tools).
    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        self.inner.chunk_path(id)
    }

    /// The file holding a manifest.
    pub fn manifest_path(&self, id: &SnapshotId) -> PathBuf {
        self.inner.manifest_path(id)
    }

    /// Every durable chunk of the store.
    ///
    /// # Errors
    /// I/O errors.
    pub fn list_chunks(&self) -> Result<Vec<ChunkFile>> {
        let dir = self.inner.root.join("chunks");
        let mut out = Vec::new();
        for sub in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let sub = sub.map_err(|e| Error::io("list", &dir, e))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in fs::read_dir(&sub).map_err(|e| Error::io("list", &sub, e))? {
                let f = f.map_err(|e| Error::io("list", &sub, e))?;
                let Some(id) = f
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<ChunkId>().ok())
                else {
                    continue;
                };
                let meta = f.metadata().map_err(|e| Error::io("stat", f.path(), e))?;
                out.push(ChunkFile {
                    id,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(out)
    }

    /// Removes a snapshot's manifest (retention). Its chunks stay until [`gc`](crate::gc).
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ReadOnly`], I/O errors.
    pub fn delete_manifest(&self, id: &SnapshotId) -> Result<()> {
        self.inner.refuse_if_read_only()?;
        let path = self.inner.manifest_path(id);
        fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                object: Object::Manifest(*id),
            },
            _ => Error::io("remove", &path, e),
        })?;
        sync_dir(&self.inner.root.join("snapshots"))
    }

    /// Removes a chunk file (garbage collection).
    ///
    /// # Errors
    /// [`Error::ReadOnly`], I/O errors.
    pub fn delete_chunk(&self, id: &ChunkId) -> Result<()> {
        self.inner.refuse_if_read_only()?;
        let path = self.inner.chunk_path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Internal {
                reason: format!("disk task failed: {e}"),
            })?
    }
}

#[async_trait]
impl BackupTarget for DiskTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_access: true,
            shared_chunks: true,
        }
    }

    async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored> {
        let id = *id;
        self.blocking(move |inner| inner.put_chunk(&id, &blob))
            .await
    }

    async fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        if self.inner.pending().chunks.contains_key(id) {
            return Ok(true);
        }
        let path = self.inner.chunk_path(id);
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("stat", &path, e)),
        }
    }

    async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let id = *id;
        self.blocking(move |inner| inner.get_chunk(&id)).await
    }

    async fn flush(&self) -> Result<()> {
        self.inner.refuse_if_read_only()?;
        self.blocking(|inner| inner.flush()).await
    }

    async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()> {
        self.inner.refuse_if_read_only()?;
        let id = *id;
        self.blocking(move |inner| {
            inner.flush()?;
            let path = inner.manifest_path(&id);
            if path.exists() {
                return Err(Error::Target {
                    reason: format!("snapshot {id} already exists"),
                });
            }
            write_atomic(&path, &blob, 0o600)
        })
        .await
    }

    async fn list_manifests(&self) -> Result<Vec<SnapshotId>> {
        let dir = self.inner.root.join("snapshots");
        let mut out = Vec::new();
        for f in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let f = f.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(id) = f
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<SnapshotId>().ok())
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        let path = self.inner.manifest_path(id);
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                object: Object::Manifest(*id),
            },
            _ => Error::io("read", &path, e),
        })
    }
}

//! [`DiskTarget`]: a content-addressed store in a directory, chunks packed into large files.
//!
//! ```text
//! <root>/jfiv-store                   marker: "jfiv-backup disk store\nversion 2\n"
//! <root>/lock                         locked (flock) by the process using the store
//! <root>/packs/<32 hex>.pack          encrypted chunks, appended, with an index at the end
//! <root>/snapshots/<32 hex>           one encrypted manifest per snapshot
//! <root>/tmp/                         packs not yet durable (emptied on open)
//! ```
//!
//! A pack holds many chunks (about 32 MiB by default): one file per chunk made the kernel's
//! inode allocation the most expensive part of a backup, and a store of millions of small files
//! is slow to list, copy and check. The byte layout is in `FORMAT.md`, section 3.
//!
//! Chunks are appended to a pack under `tmp/`. A full pack gets its index and is `fdatasync`ed
//! on a thread of its own while the backup goes on. [`flush`](BackupTarget::flush) (and so
//! every `put_manifest`) closes the open pack, waits until every pack of `tmp/` is durable,
//! renames them into `packs/` and `fsync`s the directory. A chunk
//! therefore never appears under `packs/` before its bytes are on disk, and a crash leaves only
//! garbage in `tmp/`, which the next `open` removes. Manifests are written with temp + `fsync` +
//! rename + directory `fsync`, after the flush.
//!
//! Opening the store reads every pack's index (the last bytes of each pack) into memory: about
//! 150 bytes per stored chunk, so 150 MB for a million chunks (about 1 TB of unique data at
//! the default 1 MiB average chunk size). A pack whose index is damaged is read record by record instead
//! (each chunk is framed by its id and length), and the damage is listed by
//! [`DiskTarget::pack_damage`]; chunks that cannot be found that way are missing, which
//! [`verify`](crate::verify()) reports by snapshot and file.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use crate::{BackupTarget, Capabilities, ChunkId, Error, Object, Result, SnapshotId, Stored};

const MARKER: &str = "jfiv-store";
const MARKER_TEXT: &str = "jfiv-backup disk store\nversion 2\n";

/// Magic number at the start of a pack.
pub const PACK_MAGIC: [u8; 4] = *b"JFVP";
/// Magic number at the very end of a pack (after its index).
pub const PACK_INDEX_MAGIC: [u8; 4] = *b"JFVX";
/// The pack format version written by this crate.
pub const PACK_VERSION: u8 = 1;
/// Size of a pack's header.
pub const PACK_HEADER_LEN: u64 = 8;
/// Size of the frame before each chunk in a pack: id (32) + length (u32 LE).
pub const RECORD_HEADER_LEN: u64 = 36;
/// Size of one index entry: id (32) + offset (u64 LE) + length (u32 LE).
pub const INDEX_ENTRY_LEN: u64 = 44;
/// Size of a pack's footer: index offset (u64 LE), entry count (u32 LE), BLAKE3 of the index
/// (32), magic (4).
pub const PACK_FOOTER_LEN: u64 = 48;
/// The pack size the writer aims at (a pack is closed once it reaches it).
pub const DEFAULT_PACK_SIZE: u64 = 32 << 20;
/// The largest chunk blob a pack record may declare (larger is damage).
const MAX_RECORD_LEN: u64 = crate::format::MAX_CHUNK_LEN as u64 + 1024;
/// Open pack files kept for reading.
const MAX_OPEN_PACKS: usize = 64;

/// Writes `bytes` to `path` atomically: temporary file in the same directory, `fsync`, rename,
/// `fsync` of the directory. An existing file is replaced.
///
/// # Errors
/// I/O errors ([`Error::NoSpace`], [`Error::ReadOnly`] mapped).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    // A bare file name has the empty path as parent: the directory is then ".".
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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

/// The name of a pack: 16 random bytes.
type PackId = [u8; 16];

fn pack_name(id: &PackId) -> String {
    format!("{}.pack", hex::encode(id))
}

fn parse_pack_name(name: &str) -> Option<PackId> {
    let hex = name.strip_suffix(".pack")?;
    let mut id = [0u8; 16];
    hex::decode_to_slice(hex, &mut id).ok()?;
    Some(id)
}

/// Where a chunk is: a pack and the blob's byte range in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    pack: PackId,
    offset: u64,
    len: u32,
}

/// One entry of a pack's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PackEntry {
    id: ChunkId,
    offset: u64,
    len: u32,
}

/// A durable pack.
#[derive(Debug, Clone)]
struct PackInfo {
    modified: SystemTime,
    entries: Vec<PackEntry>,
}

/// The pack being appended to, under `tmp/`.
#[derive(Debug)]
struct Writer {
    id: PackId,
    file: File,
    len: u64,
    entries: Vec<PackEntry>,
}

/// A pack written in full under `tmp/`, its `fdatasync` running on its own thread so that the
/// disk writes overlap the rest of the backup.
#[derive(Debug)]
struct ClosedPack {
    id: PackId,
    entries: Vec<PackEntry>,
    sync: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl ClosedPack {
    /// Waits until the pack's bytes are durable.
    fn wait(&mut self, path: &Path) -> Result<()> {
        let Some(handle) = self.sync.take() else {
            return Ok(());
        };
        match handle.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io("fsync", path, e)),
            Err(_) => Err(Error::Internal {
                reason: format!("the thread syncing {} panicked", path.display()),
            }),
        }
    }
}

/// Damage found in a pack while opening the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackDamage {
    /// The pack file.
    pub path: PathBuf,
    /// The byte offset where reading it stopped making sense.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// Chunks still found in it (by reading it record by record).
    pub chunks_recovered: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Durable chunks.
    index: HashMap<ChunkId, Loc>,
    /// Durable packs.
    packs: HashMap<PackId, PackInfo>,
    /// Chunks written to packs under `tmp/`, not yet durable.
    pending: HashMap<ChunkId, Loc>,
    /// Closed packs under `tmp/`, being made durable in the background, waiting for the next
    /// flush.
    closed: Vec<ClosedPack>,
    /// The open pack under `tmp/`.
    writer: Option<Writer>,
    /// Set when a write failed in a way that could not be undone: nothing more is flushed.
    poisoned: Option<String>,
    /// Chunks a writer relied on (found present), and when: [`DiskTarget::collect_garbage`]
    /// keeps those used within its grace period.
    touched: HashMap<ChunkId, SystemTime>,
    /// Open files for reading.
    files: HashMap<PackId, Arc<File>>,
    /// Damage found at open.
    damage: Vec<PackDamage>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    read_only: bool,
    pack_size: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
    _lock: File,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn pack_path(&self, id: &PackId, durable: bool) -> PathBuf {
        if durable {
            self.packs_dir().join(pack_name(id))
        } else {
            self.tmp_dir().join(pack_name(id))
        }
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
        let mut state = self.state();
        if state.pending.contains_key(id) || state.index.contains_key(id) {
            state.touched.insert(*id, SystemTime::now());
            return Ok(Stored::AlreadyPresent);
        }
        self.append(&mut state, id, blob)?;
        Ok(Stored::New)
    }

    /// Appends one chunk to the open pack (opening one if needed, closing it when full).
    fn append(&self, state: &mut State, id: &ChunkId, blob: &[u8]) -> Result<()> {
        if let Some(reason) = &state.poisoned {
            return Err(Error::Target {
                reason: format!("an earlier write to the store failed ({reason}): reopen it"),
            });
        }
        let len = u32::try_from(blob.len()).map_err(|_| Error::Internal {
            reason: "chunk blob larger than 4 GiB".into(),
        })?;
        if state.writer.is_none() {
            state.writer = Some(self.new_writer()?);
        }
        let Some(writer) = state.writer.as_mut() else {
            return Err(Error::Internal {
                reason: "no pack writer".into(),
            });
        };
        let mut frame = [0u8; RECORD_HEADER_LEN as usize];
        frame[..32].copy_from_slice(&id.0);
        frame[32..].copy_from_slice(&len.to_le_bytes());
        let start = writer.len;
        let written = writer
            .file
            .write_all(&frame)
            .and_then(|()| writer.file.write_all(blob));
        if let Err(e) = written {
            let path = self.pack_path(&writer.id, false);
            // Cut the torn record off so the pack stays well formed; if even that fails the
            // pack cannot be trusted and the store stops accepting work.
            if writer.file.set_len(start).is_err() {
                state.poisoned = Some(format!("cannot truncate {}", path.display()));
            }
            return Err(Error::io("write", path, e));
        }
        let entry = PackEntry {
            id: *id,
            offset: start + RECORD_HEADER_LEN,
            len,
        };
        writer.len += RECORD_HEADER_LEN + u64::from(len);
        writer.entries.push(entry);
        let pack = writer.id;
        let full = writer.len >= self.pack_size.load(std::sync::atomic::Ordering::Relaxed);
        state.pending.insert(
            *id,
            Loc {
                pack,
                offset: entry.offset,
                len,
            },
        );
        if full {
            self.close_writer(state)?;
        }
        Ok(())
    }

    fn new_writer(&self) -> Result<Writer> {
        let id: PackId = rand::random();
        let path = self.pack_path(&id, false);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create", &path, e))?;
        let mut header = [0u8; PACK_HEADER_LEN as usize];
        header[..4].copy_from_slice(&PACK_MAGIC);
        header[4] = PACK_VERSION;
        if let Err(e) = file.write_all(&header) {
            let _ = fs::remove_file(&path);
            return Err(Error::io("write", &path, e));
        }
        Ok(Writer {
            id,
            file,
            len: PACK_HEADER_LEN,
            entries: Vec::new(),
        })
    }

    /// Writes the open pack's index and footer; the pack then waits for the next flush.
    fn close_writer(&self, state: &mut State) -> Result<()> {
        let Some(mut writer) = state.writer.take() else {
            return Ok(());
        };
        let trailer = encode_trailer(writer.len, &writer.entries);
        if let Err(e) = writer.file.write_all(&trailer) {
            let path = self.pack_path(&writer.id, false);
            state.poisoned = Some(format!("cannot write the index of {}", path.display()));
            return Err(Error::io("write", path, e));
        }
        let path = self.pack_path(&writer.id, false);
        let sync = writer.file.try_clone().ok().and_then(|file| {
            std::thread::Builder::new()
                .name("jfiv-pack-sync".into())
                .spawn(move || file.sync_data())
                .ok()
        });
        if sync.is_none() {
            // No thread for it: the pack is made durable here, before it counts as closed.
            if let Err(e) = writer.file.sync_data() {
                state.poisoned = Some(format!("cannot fsync {}", path.display()));
                return Err(Error::io("fsync", path, e));
            }
        }
        let closed = ClosedPack {
            id: writer.id,
            entries: writer.entries,
            sync,
        };
        state.closed.push(closed);
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut state = self.state();
        if let Some(reason) = &state.poisoned {
            return Err(Error::Target {
                reason: format!("an earlier write to the store failed ({reason}): reopen it"),
            });
        }
        self.close_writer(&mut state)?;
        if state.closed.is_empty() {
            return Ok(());
        }
        let closed = std::mem::take(&mut state.closed);
        let mut result = Ok(());
        let mut renamed = Vec::new();
        for mut pack in closed {
            if result.is_err() {
                state.closed.push(pack);
                continue;
            }
            let from = self.pack_path(&pack.id, false);
            let to = self.pack_path(&pack.id, true);
            // A pack is renamed into packs/ only once its bytes are durable. A failed fsync
            // cannot be retried (the kernel may have dropped the dirty pages): the store stops
            // accepting work.
            if let Err(e) = pack.wait(&from) {
                state.poisoned = Some(format!("cannot fsync {}", from.display()));
                result = Err(e);
                state.closed.push(pack);
                continue;
            }
            match fs::rename(&from, &to) {
                Ok(()) => renamed.push(pack),
                Err(e) => {
                    result = Err(Error::io("rename", &to, e));
                    state.closed.push(pack);
                }
            }
        }
        // The renames are durable once the directory is; only then do the chunks count as
        // stored (a manifest may reference them).
        if let Err(e) = sync_dir(&self.packs_dir()) {
            state.poisoned = Some("cannot fsync the packs directory".into());
            return Err(e);
        }
        let now = SystemTime::now();
        for ClosedPack {
            id: pack, entries, ..
        } in renamed
        {
            for e in &entries {
                if state.pending.get(&e.id).is_some_and(|l| l.pack == pack) {
                    state.pending.remove(&e.id);
                }
                state.index.insert(
                    e.id,
                    Loc {
                        pack,
                        offset: e.offset,
                        len: e.len,
                    },
                );
            }
            state.packs.insert(
                pack,
                PackInfo {
                    modified: now,
                    entries,
                },
            );
        }
        result
    }

    fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let (loc, durable) = {
            let state = self.state();
            match (state.pending.get(id), state.index.get(id)) {
                (Some(l), _) => (*l, false),
                (None, Some(l)) => (*l, true),
                (None, None) => {
                    return Err(Error::NotFound {
                        object: Object::Chunk(*id),
                    });
                }
            }
        };
        let file = self.open_pack(&loc.pack, durable)?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| {
            Error::io(
                "read",
                self.pack_path(&loc.pack, durable),
                std::io::Error::new(
                    e.kind(),
                    format!("chunk {id} at offset {}: {e}", loc.offset),
                ),
            )
        })?;
        Ok(buf)
    }

    fn open_pack(&self, pack: &PackId, durable: bool) -> Result<Arc<File>> {
        if let Some(f) = self.state().files.get(pack) {
            return Ok(Arc::clone(f));
        }
        let path = self.pack_path(pack, durable);
        let file = match File::open(&path) {
            Ok(f) => f,
            // Renamed into packs/ by a flush in the meantime.
            Err(e) if !durable && e.kind() == std::io::ErrorKind::NotFound => {
                let durable_path = self.pack_path(pack, true);
                File::open(&durable_path).map_err(|e| Error::io("open", &durable_path, e))?
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let file = Arc::new(file);
        let mut state = self.state();
        if state.files.len() >= MAX_OPEN_PACKS {
            state.files.clear();
        }
        state.files.insert(*pack, Arc::clone(&file));
        Ok(file)
    }
}

fn encode_trailer(index_offset: u64, entries: &[PackEntry]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN as usize + PACK_FOOTER_LEN as usize);
    for e in entries {
        out.extend_from_slice(&e.id.0);
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
    }
    let hash = blake3::hash(&out);
    out.extend_from_slice(&index_offset.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(&PACK_INDEX_MAGIC);
    out
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn chunk_id(b: &[u8]) -> ChunkId {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[..32]);
    ChunkId(a)
}

/// Reads a pack's index from its footer.
fn read_index(file: &File, size: u64) -> std::result::Result<Vec<PackEntry>, (u64, String)> {
    if size < PACK_HEADER_LEN + PACK_FOOTER_LEN {
        return Err((size, format!("{size} bytes: too short for a pack")));
    }
    let mut header = [0u8; PACK_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)
        .map_err(|e| (0, format!("cannot read the header: {e}")))?;
    if header[..4] != PACK_MAGIC {
        return Err((0, "bad magic number".into()));
    }
    if header[4] != PACK_VERSION {
        return Err((4, format!("unsupported pack version {}", header[4])));
    }
    let footer_at = size - PACK_FOOTER_LEN;
    let mut footer = [0u8; PACK_FOOTER_LEN as usize];
    file.read_exact_at(&mut footer, footer_at)
        .map_err(|e| (footer_at, format!("cannot read the footer: {e}")))?;
    if footer[44..48] != PACK_INDEX_MAGIC {
        return Err((footer_at + 44, "no index magic at the end".into()));
    }
    let index_at = le_u64(&footer[0..8]);
    let count = u64::from(le_u32(&footer[8..12]));
    if index_at < PACK_HEADER_LEN
        || index_at.checked_add(count * INDEX_ENTRY_LEN) != Some(footer_at)
    {
        return Err((
            footer_at,
            "index offset and count do not match the size".into(),
        ));
    }
    let mut index = vec![0u8; (count * INDEX_ENTRY_LEN) as usize];
    file.read_exact_at(&mut index, index_at)
        .map_err(|e| (index_at, format!("cannot read the index: {e}")))?;
    if blake3::hash(&index).as_bytes()[..] != footer[12..44] {
        return Err((index_at, "the index does not match its BLAKE3".into()));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for (n, raw) in index.chunks_exact(INDEX_ENTRY_LEN as usize).enumerate() {
        let e = PackEntry {
            id: chunk_id(&raw[..32]),
            offset: le_u64(&raw[32..40]),
            len: le_u32(&raw[40..44]),
        };
        if e.offset < PACK_HEADER_LEN + RECORD_HEADER_LEN || e.offset + u64::from(e.len) > index_at
        {
            return Err((
                index_at + n as u64 * INDEX_ENTRY_LEN,
                format!("index entry {n} points outside the records"),
            ));
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Reads a pack record by record (when its index is unusable): every well-framed record up to
/// the first one that is not.
fn scan_records(file: &File, size: u64) -> (Vec<PackEntry>, Option<(u64, String)>) {
    let mut entries = Vec::new();
    let mut at = PACK_HEADER_LEN;
    let mut frame = [0u8; RECORD_HEADER_LEN as usize];
    let mut magic = [0u8; 4];
    loop {
        if at + RECORD_HEADER_LEN > size {
            return (entries, None);
        }
        if file.read_exact_at(&mut frame, at).is_err() {
            return (entries, Some((at, "unreadable record frame".into())));
        }
        let len = u64::from(le_u32(&frame[32..36]));
        let blob_at = at + RECORD_HEADER_LEN;
        let plausible = len <= MAX_RECORD_LEN
            && blob_at + len <= size
            && file.read_exact_at(&mut magic, blob_at).is_ok()
            && magic == crate::format::CHUNK_MAGIC;
        if !plausible {
            // Either the index starts here (its first bytes are an id, not a frame) or the
            // pack is damaged; a record-by-record read cannot tell, so it stops.
            return (entries, Some((at, "no chunk record here".into())));
        }
        entries.push(PackEntry {
            id: chunk_id(&frame[..32]),
            offset: blob_at,
            len: len as u32,
        });
        at = blob_at + len;
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

/// One chunk of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFile {
    /// Its id.
    pub id: ChunkId,
    /// Its size in bytes (the encrypted blob).
    pub size: u64,
    /// When its pack was written.
    pub modified: SystemTime,
    /// The pack holding it.
    pub pack: PathBuf,
    /// The blob's byte offset in the pack.
    pub offset: u64,
}

/// What [`DiskTarget::collect_garbage`] did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Chunks removed (or to remove, in a dry run).
    pub removed: Vec<ChunkId>,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Garbage chunks kept because their pack is younger than the grace period.
    pub kept_in_grace: usize,
    /// Garbage chunks kept because too little of their pack is garbage to rewrite it.
    pub kept_in_live_packs: usize,
    /// Packs deleted whole.
    pub packs_deleted: usize,
    /// Packs rewritten without their garbage.
    pub packs_rewritten: usize,
    /// Bytes of live chunks copied into new packs.
    pub bytes_copied: u64,
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
        for sub in ["packs", "snapshots", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
        }
        write_atomic(&root.join(MARKER), MARKER_TEXT.as_bytes(), 0o644)?;
        Self::open(root)
    }

    /// Opens an existing store for reading and writing, taking its lock, and reads the index
    /// of every pack.
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
        Self::load(root, false, lock)
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
        Self::load(root, true, lock)
    }

    fn load(root: &Path, read_only: bool, lock: File) -> Result<Self> {
        let dir = root.join("packs");
        let mut state = State::default();
        let mut names: Vec<(PackId, PathBuf)> = Vec::new();
        for f in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let f = f.map_err(|e| Error::io("list", &dir, e))?;
            if let Some(id) = f.file_name().to_str().and_then(parse_pack_name) {
                names.push((id, f.path()));
            }
        }
        // A stable order, so that a chunk stored twice (an interrupted rewrite) is always
        // found in the same pack.
        names.sort();
        for (id, path) in names {
            let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
            let size = meta.len();
            let entries = match read_index(&file, size) {
                Ok(entries) => entries,
                Err((offset, reason)) => {
                    let (entries, stop) = scan_records(&file, size);
                    state.damage.push(PackDamage {
                        path: path.clone(),
                        offset: stop.map_or(offset, |(at, _)| at),
                        reason: format!("index unusable ({reason}); read record by record"),
                        chunks_recovered: entries.len(),
                    });
                    entries
                }
            };
            for e in &entries {
                state.index.entry(e.id).or_insert(Loc {
                    pack: id,
                    offset: e.offset,
                    len: e.len,
                });
            }
            state.packs.insert(
                id,
                PackInfo {
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    entries,
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                read_only,
                pack_size: std::sync::atomic::AtomicU64::new(DEFAULT_PACK_SIZE),
                state: Mutex::new(state),
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
                    "unsupported store layout {:?} (this version reads \"version 2\")",
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

    /// Sets the size at which the writer closes a pack (default [`DEFAULT_PACK_SIZE`]; tests
    /// use small packs).
    pub fn set_pack_size(&self, bytes: u64) {
        self.inner
            .pack_size
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Where a durable chunk is: its pack file and the blob's byte offset and length (for
    /// tests and forensic tools).
    pub fn chunk_location(&self, id: &ChunkId) -> Option<(PathBuf, u64, u32)> {
        let state = self.inner.state();
        state
            .index
            .get(id)
            .map(|l| (self.inner.pack_path(&l.pack, true), l.offset, l.len))
    }

    /// The file holding a manifest.
    pub fn manifest_path(&self, id: &SnapshotId) -> PathBuf {
        self.inner.manifest_path(id)
    }

    /// Packs whose index was damaged when the store was opened (they were read record by
    /// record).
    pub fn pack_damage(&self) -> Vec<PackDamage> {
        self.inner.state().damage.clone()
    }

    /// Every durable chunk of the store.
    ///
    /// # Errors
    /// None today (the index is in memory); kept fallible for stores that page their index.
    pub fn list_chunks(&self) -> Result<Vec<ChunkFile>> {
        let state = self.inner.state();
        let mut out: Vec<ChunkFile> = state
            .index
            .iter()
            .map(|(id, loc)| ChunkFile {
                id: *id,
                size: u64::from(loc.len),
                modified: state
                    .packs
                    .get(&loc.pack)
                    .map_or(SystemTime::UNIX_EPOCH, |p| p.modified),
                pack: self.inner.pack_path(&loc.pack, true),
                offset: loc.offset,
            })
            .collect();
        out.sort_by(|a, b| (&a.pack, a.offset).cmp(&(&b.pack, b.offset)));
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

    /// Removes every durable chunk not in `live` from the packs older than `keep_newer_than`:
    /// a pack with no live chunk is deleted; a pack in which at least `min_garbage_ratio` of the
    /// bytes are garbage is rewritten (its live chunks copied into new packs, made durable,
    /// then the old pack deleted); other garbage stays until its pack qualifies.
    ///
    /// Chunks a writer of this process found present (`put_chunk` answering "already present",
    /// `has_chunk` answering yes) after `keep_newer_than` are treated as live, so a backup
    /// running at the same time in the same process keeps what it relies on (a pack is not
    /// deleted if one of its chunks is found present while the collection runs); another
    /// process cannot hold the store (the lock). A crash at any point loses nothing: an old pack is deleted only after the copies
    /// of its live chunks are durable, and a chunk found twice is read from one of its copies.
    ///
    /// # Errors
    /// [`Error::ReadOnly`], I/O errors (what was done before the error is durable and
    /// consistent).
    pub fn collect_garbage(
        &self,
        live: &HashSet<ChunkId>,
        keep_newer_than: SystemTime,
        min_garbage_ratio: f64,
        dry_run: bool,
    ) -> Result<Collected> {
        self.inner.refuse_if_read_only()?;
        let inner = &self.inner;
        let mut report = Collected::default();
        // Plan: which packs go, which are rewritten.
        let planned = SystemTime::now();
        let mut delete: Vec<PackId> = Vec::new();
        let mut rewrite: Vec<(PackId, Vec<PackEntry>)> = Vec::new();
        {
            let state = inner.state();
            let mut ids: Vec<&PackId> = state.packs.keys().collect();
            ids.sort();
            for pack in ids {
                let info = &state.packs[pack];
                let indexed_here =
                    |e: &PackEntry| state.index.get(&e.id).is_some_and(|l| l.pack == *pack);
                let recently_used = |e: &PackEntry| {
                    state
                        .touched
                        .get(&e.id)
                        .is_some_and(|t| *t > keep_newer_than)
                };
                let mut keep: Vec<PackEntry> = Vec::new();
                let mut garbage: Vec<PackEntry> = Vec::new();
                let mut in_grace = 0usize;
                for e in &info.entries {
                    if indexed_here(e) && live.contains(&e.id) {
                        keep.push(*e);
                    } else if indexed_here(e) && recently_used(e) {
                        in_grace += 1;
                        keep.push(*e);
                    } else {
                        garbage.push(*e);
                    }
                }
                report.kept_in_grace += in_grace;
                if garbage.is_empty() {
                    continue;
                }
                if info.modified > keep_newer_than {
                    report.kept_in_grace += garbage.len();
                    continue;
                }
                let garbage_bytes: u64 = garbage.iter().map(|e| u64::from(e.len)).sum();
                let total: u64 = info.entries.iter().map(|e| u64::from(e.len)).sum();
                let counted = |report: &mut Collected| {
                    for e in &garbage {
                        // A second copy of a chunk frees space but removes no chunk.
                        if indexed_here(e) {
                            report.removed.push(e.id);
                        }
                        report.bytes_freed += u64::from(e.len);
                    }
                };
                if keep.is_empty() {
                    counted(&mut report);
                    delete.push(*pack);
                } else if (garbage_bytes as f64) >= min_garbage_ratio * (total as f64) {
                    counted(&mut report);
                    report.bytes_copied += keep.iter().map(|e| u64::from(e.len)).sum::<u64>();
                    rewrite.push((*pack, keep));
                } else {
                    report.kept_in_live_packs += garbage.len();
                }
            }
        }
        report.removed.sort();
        report.packs_deleted = delete.len();
        report.packs_rewritten = rewrite.len();
        if dry_run || (delete.is_empty() && rewrite.is_empty()) {
            return Ok(report);
        }
        // Copy the live chunks of the packs to rewrite into new packs.
        for (pack, keep) in &rewrite {
            let file = inner.open_pack(pack, true)?;
            for e in keep {
                let mut blob = vec![0u8; e.len as usize];
                file.read_exact_at(&mut blob, e.offset)
                    .map_err(|err| Error::io("read", inner.pack_path(pack, true), err))?;
                let mut state = inner.state();
                if state.pending.contains_key(&e.id) {
                    continue;
                }
                inner.append(&mut state, &e.id, &blob)?;
            }
        }
        inner.flush()?;
        // Delete the old packs, unless a writer started relying on one of their garbage
        // chunks since the plan was made.
        let packs_dir = inner.packs_dir();
        {
            let mut state = inner.state();
            let victims: Vec<PackId> = delete
                .iter()
                .copied()
                .chain(rewrite.iter().map(|(p, _)| *p))
                .collect();
            for pack in victims {
                let Some(info) = state.packs.get(&pack) else {
                    continue;
                };
                let relied_on = info.entries.iter().any(|e| {
                    state.touched.get(&e.id).is_some_and(|t| *t >= planned)
                        && state.index.get(&e.id).is_some_and(|l| l.pack == pack)
                });
                if relied_on {
                    continue;
                }
                let path = inner.pack_path(&pack, true);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &path, e)),
                }
                state.files.remove(&pack);
                if let Some(info) = state.packs.remove(&pack) {
                    for e in info.entries {
                        if state.index.get(&e.id).is_some_and(|l| l.pack == pack) {
                            state.index.remove(&e.id);
                        }
                    }
                }
            }
        }
        sync_dir(&packs_dir)?;
        Ok(report)
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
        let mut state = self.inner.state();
        let present = state.pending.contains_key(id) || state.index.contains_key(id);
        if present {
            state.touched.insert(*id, SystemTime::now());
        }
        Ok(present)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: usize, seed: u8) -> Vec<u8> {
        let mut b = crate::format::CHUNK_MAGIC.to_vec();
        b.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        b
    }

    fn id(n: u8) -> ChunkId {
        ChunkId([n; 32])
    }

    #[test]
    fn packs_are_closed_at_their_size_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskTarget::create(dir.path()).unwrap();
        store.set_pack_size(10_000);
        for n in 0..20u8 {
            assert_eq!(
                store.inner.put_chunk(&id(n), &blob(3000, n)).unwrap(),
                Stored::New
            );
        }
        assert_eq!(
            store.inner.put_chunk(&id(3), &blob(3000, 3)).unwrap(),
            Stored::AlreadyPresent
        );
        // Not durable yet: readable, but no pack under packs/.
        assert_eq!(store.inner.get_chunk(&id(7)).unwrap(), blob(3000, 7));
        assert_eq!(fs::read_dir(dir.path().join("packs")).unwrap().count(), 0);
        store.inner.flush().unwrap();
        let packs = fs::read_dir(dir.path().join("packs")).unwrap().count();
        assert!(packs >= 5, "{packs} packs");
        drop(store);
        let store = DiskTarget::open(dir.path()).unwrap();
        assert!(store.pack_damage().is_empty());
        assert_eq!(store.list_chunks().unwrap().len(), 20);
        for n in 0..20u8 {
            assert_eq!(store.inner.get_chunk(&id(n)).unwrap(), blob(3000, n));
        }
    }

    #[test]
    fn a_damaged_index_is_reported_and_the_pack_read_record_by_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskTarget::create(dir.path()).unwrap();
        for n in 0..5u8 {
            store.inner.put_chunk(&id(n), &blob(1000, n)).unwrap();
        }
        store.inner.flush().unwrap();
        let (pack, _, _) = store.chunk_location(&id(0)).unwrap();
        drop(store);
        let mut bytes = fs::read(&pack).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&pack, &bytes).unwrap();
        let store = DiskTarget::open(dir.path()).unwrap();
        let damage = store.pack_damage();
        assert_eq!(damage.len(), 1);
        assert_eq!(damage[0].path, pack);
        assert_eq!(damage[0].chunks_recovered, 5);
        for n in 0..5u8 {
            assert_eq!(store.inner.get_chunk(&id(n)).unwrap(), blob(1000, n));
        }
    }

    #[test]
    fn garbage_collection_deletes_dead_packs_rewrites_mixed_ones_and_keeps_used_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskTarget::create(dir.path()).unwrap();
        store.set_pack_size(3000);
        // Packs of three chunks: {0,1,2} {3,4,5} {6,7,8}.
        for n in 0..9u8 {
            store.inner.put_chunk(&id(n), &blob(1000, n)).unwrap();
        }
        store.inner.flush().unwrap();
        drop(store);
        // Make the packs two days old.
        let old = SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
        for f in fs::read_dir(dir.path().join("packs")).unwrap() {
            let f = File::options().write(true).open(f.unwrap().path()).unwrap();
            f.set_modified(old).unwrap();
        }
        let store = DiskTarget::open(dir.path()).unwrap();
        assert_eq!(store.inner.state().packs.len(), 3);
        // 0..=2 unreferenced (pack deleted), 3 unreferenced (pack rewritten), 6 unreferenced
        // but just used by a writer (kept).
        let live: HashSet<ChunkId> = [4, 5, 7, 8].into_iter().map(id).collect();
        assert!(block_on(store.has_chunk(&id(6))).unwrap());
        let cutoff = SystemTime::now() - std::time::Duration::from_secs(3600);
        let dry = store.collect_garbage(&live, cutoff, 0.2, true).unwrap();
        assert_eq!(dry.removed, vec![id(0), id(1), id(2), id(3)]);
        assert_eq!(dry.kept_in_grace, 1);
        assert_eq!(store.list_chunks().unwrap().len(), 9);
        let done = store.collect_garbage(&live, cutoff, 0.2, false).unwrap();
        assert_eq!(done.removed, dry.removed);
        assert_eq!((done.packs_deleted, done.packs_rewritten), (1, 1));
        let left: HashSet<ChunkId> = store.list_chunks().unwrap().iter().map(|c| c.id).collect();
        let expected: HashSet<ChunkId> = [4, 5, 6, 7, 8].into_iter().map(id).collect();
        assert_eq!(left, expected);
        drop(store);
        let store = DiskTarget::open(dir.path()).unwrap();
        for n in [4u8, 5, 6, 7, 8] {
            assert_eq!(store.inner.get_chunk(&id(n)).unwrap(), blob(1000, n));
        }
        assert!(matches!(
            store.inner.get_chunk(&id(3)),
            Err(Error::NotFound { .. })
        ));
        // With a cutoff before every pack, nothing goes.
        let none = store
            .collect_garbage(&HashSet::new(), SystemTime::UNIX_EPOCH, 0.0, false)
            .unwrap();
        assert!(none.removed.is_empty());
        assert_eq!(none.kept_in_grace, 5);
        // A small share of garbage waits; 1.0 never rewrites.
        let live: HashSet<ChunkId> = [4, 5, 7, 8].into_iter().map(id).collect();
        let lazy = store
            .collect_garbage(&live, SystemTime::now(), 1.0, false)
            .unwrap();
        assert_eq!(lazy.kept_in_live_packs, 1);
        assert!(lazy.removed.is_empty());
    }

    /// Runs a future that never waits (the disk target's in-memory answers).
    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_version_1_store_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(MARKER),
            "jfiv-backup disk store\nversion 1\n",
        )
        .unwrap();
        let err = DiskTarget::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
    }
}

//! Reading back: extracting a snapshot, or selected paths, into a directory.
//!
//! The [`Extractor`] is the building block: it is fed chunks (in any order, each once) and
//! writes each file under a temporary name, checks its BLAKE3 against the manifest, restores
//! its metadata, and only then renames it to its final name. A chunk that fails to
//! authenticate fails only the files that use it. [`extract`] drives an extractor from a
//! random-access target; a tape restore feeds one with the chunks of a session in stored order.
//!
//! # Performance
//! With [`Extractor::start_workers`], one thread per core authenticates, decompresses
//! (one zstd context per thread, see `format`) and writes chunks, with a bounded number in
//! flight. Files are written with positional writes through a handle kept open between their
//! chunks, so several files (and several chunks of one file) are written concurrently.
//! A file's BLAKE3 is computed as its chunks arrive: a chunk written ahead of the hashed
//! prefix is held (a bounded amount of memory in all) until the gap is filled; beyond that
//! budget the file is hashed by reading it back before its rename, which is slower but
//! equally safe. Metadata is restored through the open handle (`fchown`, `fchmod`,
//! `futimens`).
//!
//! # Durability
//! Files are renamed once verified but not synced one by one (unless
//! [`ExtractOptions::fsync`]). Whoever records an extraction as done (a restore checkpoint)
//! must first make the destination durable, with one `syncfs` of its file system: until then,
//! a crash may lose renamed files, and the record must not claim them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::Read;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc as mpsc_std};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::{
    BackupTarget, ChunkId, Entry, EntryKind, Error, Manifest, Metadata, Object, Progress,
    ProgressEvent, RepositoryKey, Result, format,
};

/// Which entries to extract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    paths: Vec<String>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// The given paths (snapshot paths, `/`-separated); a directory selects everything under it.
    pub fn paths<I, S>(paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            paths: paths
                .into_iter()
                .map(|p| p.into().trim_matches('/').to_owned())
                .collect(),
        }
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        self.paths.is_empty()
            || self.paths.iter().any(|p| {
                p.is_empty()
                    || path == p
                    || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
            })
    }
}

/// How extraction treats metadata and existing files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Restore permission bits. Default `true`.
    pub permissions: bool,
    /// Restore owner and group (works as root; otherwise reported in
    /// [`ExtractReport::metadata_warnings`]). Default `true`.
    pub owner: bool,
    /// Restore modification times. Default `true`.
    pub mtime: bool,
    /// A file already at its final name with the right size and BLAKE3 is kept as is and
    /// counted in [`ExtractReport::already_present`] (what makes a restore resumable). Default `true`.
    pub skip_verified_existing: bool,
    /// `fsync` each file before renaming it. Default `false`.
    pub fsync: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            permissions: true,
            owner: true,
            mtime: true,
            skip_verified_existing: true,
            fsync: false,
        }
    }
}

/// A file that could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// Its path in the snapshot.
    pub path: String,
    /// Why.
    pub reason: String,
    /// The chunk that failed, when that is the cause.
    pub chunk: Option<ChunkId>,
}

/// The outcome of an extraction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractReport {
    /// Files written, verified and renamed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files already present and verified (not rewritten).
    pub already_present: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Files that could not be extracted; nothing was left at their final name by us.
    pub failed: Vec<FailedFile>,
    /// Chunks that could not be read or authenticated, with the reason.
    pub damaged_chunks: Vec<(ChunkId, String)>,
    /// Extracted files the manifest marks as changed during the backup read.
    pub inconsistent: Vec<String>,
    /// Metadata that could not be restored (owner without root, say).
    pub metadata_warnings: Vec<String>,
}

impl ExtractReport {
    /// `true` if every selected entry was extracted.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// What happened to one file, as the extractor finishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Written, verified, renamed.
    Restored {
        /// Snapshot path.
        path: String,
        /// Size.
        bytes: u64,
    },
    /// Failed.
    Failed(FailedFile),
}

/// A file use of a chunk: (file index, offset in the file, length).
type Use = (usize, u64, u32);

/// Files kept open between their chunks at most; past this, a file is reopened per chunk.
const MAX_OPEN_FILES: usize = 256;

/// Written bytes of a file after which their write-back to disk is started (without waiting
/// for it), so that the final `syncfs` of a restore has little left to write.
const WRITEBACK_STEP: u64 = 8 << 20;

/// The page size assumed to align write-back ranges (a larger real page only makes the
/// hint less precise).
const PAGE: u64 = 4096;

/// Plaintext held to hash files in order when their chunks arrive out of order; past this,
/// such a file is hashed by reading it back before its rename.
const PARK_BUDGET: u64 = 256 << 20;

#[derive(Debug)]
struct FileState {
    path: String,
    final_path: PathBuf,
    temp_path: PathBuf,
    meta: Metadata,
    blake3: Option<String>,
    chunk_count: usize,
    remaining: usize,
    created: bool,
    handle: Option<File>,
    hasher: Option<blake3::Hasher>,
    next_offset: u64,
    /// Chunks written ahead of `next_offset`, waiting to be hashed in order.
    parked: BTreeMap<u64, Arc<Vec<u8>>>,
    /// Bytes from which the write-back has not been started yet (see [`WRITEBACK_STEP`]).
    unflushed_from: u64,
    /// Bytes written so far (the highest end of a write).
    written_to: u64,
    finished: bool,
    consistent: bool,
}

#[derive(Debug, Default)]
struct Log {
    report: ExtractReport,
    pending: Vec<FileOutcome>,
}

/// What the feeding thread and the workers share. Lock order: a file, then the log.
#[derive(Debug)]
struct Shared {
    key: RepositoryKey,
    options: ExtractOptions,
    files: Vec<Mutex<FileState>>,
    log: Mutex<Log>,
    open_files: AtomicUsize,
    parked_bytes: AtomicU64,
    /// Held around the operations that change a directory (creating a temporary file,
    /// renaming it). The kernel serialises them per directory anyway (and files of one
    /// directory are neighbours in the manifest): a second thread would spin on the
    /// directory's lock in the kernel; waiting here it sleeps, leaving the core to decoding.
    dir_ops: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker leaves its file unfinished (it fails at `finish`); the data behind
    // the lock stays usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct Job {
    id: ChunkId,
    blob: Vec<u8>,
    uses: Vec<Use>,
}

#[derive(Debug)]
struct Workers {
    tx: mpsc_std::SyncSender<Job>,
    handles: Vec<std::thread::JoinHandle<()>>,
    room: Arc<Notify>,
}

impl Workers {
    fn join(self) {
        drop(self.tx);
        for h in self.handles {
            // A panicked worker's files are failed by `finish` as incomplete.
            let _ = h.join();
        }
    }
}

/// Extracts the files of one manifest from chunks fed to it (see the module docs).
///
/// By default every chunk is decoded and written on the feeding thread. After
/// [`start_workers`](Extractor::start_workers), fed blobs are authenticated, decompressed and
/// written by a pool of threads (a bounded number in flight: feeding blocks when the pool is
/// busy); files are written with positional writes, so chunks may complete in any order.
#[derive(Debug)]
pub struct Extractor {
    shared: Arc<Shared>,
    uses: HashMap<ChunkId, Vec<Use>>,
    order: Vec<ChunkId>,
    dirs: Vec<(PathBuf, Metadata)>,
    workers: Option<Workers>,
}

/// Checks that a snapshot path is relative and stays inside the destination.
pub fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let bad = path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_)));
    if bad {
        return Err(Error::Format {
            object: Object::File(path.to_owned()),
            offset: 0,
            reason: "unsafe path in manifest (absolute, empty, or with . / ..)".into(),
        });
    }
    Ok(p.to_path_buf())
}

fn temp_name(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.jfiv-partial"))
}

impl Extractor {
    /// Prepares the extraction of the `selection` of `manifest` into `dest`: creates `dest`,
    /// the directories and the symbolic links, keeps verified files already present, and
    /// plans the files.
    ///
    /// # Errors
    /// An unsafe path in the manifest ([`Error::Format`]), I/O errors on `dest`.
    pub fn new(
        key: &RepositoryKey,
        manifest: &Manifest,
        selection: &Selection,
        dest: &Path,
        options: ExtractOptions,
    ) -> Result<Self> {
        fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
        let mut report = ExtractReport::default();
        let mut files = Vec::new();
        let mut uses: HashMap<ChunkId, Vec<Use>> = HashMap::new();
        let mut order = Vec::new();
        let mut dirs = Vec::new();
        let mut created_dirs: HashSet<PathBuf> = HashSet::new();
        for entry in manifest
            .entries
            .iter()
            .filter(|e| selection.matches(&e.path))
        {
            let rel = safe_relative(&entry.path)?;
            let target = dest.join(&rel);
            if let Some(parent) = target.parent()
                && !created_dirs.contains(parent)
            {
                fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
                created_dirs.insert(parent.to_path_buf());
            }
            match &entry.kind {
                EntryKind::Dir => {
                    fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
                    created_dirs.insert(target.clone());
                    report.dirs += 1;
                    dirs.push((target, entry.meta));
                }
                EntryKind::Symlink { target: link } => {
                    if fs::symlink_metadata(&target).is_ok() {
                        fs::remove_file(&target).map_err(|e| Error::io("replace", &target, e))?;
                    }
                    std::os::unix::fs::symlink(link, &target)
                        .map_err(|e| Error::io("create symlink", &target, e))?;
                    if options.owner
                        && let Err(e) = std::os::unix::fs::lchown(
                            &target,
                            Some(entry.meta.uid),
                            Some(entry.meta.gid),
                        )
                    {
                        report
                            .metadata_warnings
                            .push(format!("{}: owner not restored: {e}", entry.path));
                    }
                    report.symlinks += 1;
                }
                EntryKind::File => {
                    if options.skip_verified_existing && already_verified(&target, entry) {
                        report.already_present += 1;
                        continue;
                    }
                    let index = files.len();
                    let mut offset = 0u64;
                    for c in &entry.chunks {
                        let u = uses.entry(c.id).or_default();
                        if u.is_empty() {
                            order.push(c.id);
                        }
                        u.push((index, offset, c.len));
                        offset += u64::from(c.len);
                    }
                    files.push(FileState {
                        path: entry.path.clone(),
                        temp_path: temp_name(&target),
                        final_path: target,
                        meta: entry.meta,
                        blake3: entry.blake3.clone(),
                        chunk_count: entry.chunks.len(),
                        remaining: entry.chunks.len(),
                        created: false,
                        handle: None,
                        hasher: Some(blake3::Hasher::new()),
                        next_offset: 0,
                        parked: BTreeMap::new(),
                        unflushed_from: 0,
                        written_to: 0,
                        finished: false,
                        consistent: entry.consistent,
                    });
                }
            }
        }
        let empty: Vec<usize> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.chunk_count == 0)
            .map(|(i, _)| i)
            .collect();
        let shared = Shared {
            key: key.clone(),
            options,
            files: files.into_iter().map(Mutex::new).collect(),
            log: Mutex::new(Log {
                report,
                pending: Vec::new(),
            }),
            open_files: AtomicUsize::new(0),
            parked_bytes: AtomicU64::new(0),
            dir_ops: Mutex::new(()),
        };
        for i in empty {
            let mut f = lock(&shared.files[i]);
            shared.finalize(&mut f);
        }
        Ok(Self {
            shared: Arc::new(shared),
            uses,
            order,
            dirs,
            workers: None,
        })
    }

    /// Starts `workers` threads (at least one) that authenticate, decompress and write the
    /// blobs fed from now on; at most twice as many blobs wait in their queue. Does nothing
    /// if they are already running.
    ///
    /// # Errors
    /// [`Error::Internal`] when a thread cannot be started.
    pub fn start_workers(&mut self, workers: usize) -> Result<()> {
        if self.workers.is_some() {
            return Ok(());
        }
        let n = workers.max(1);
        let (tx, rx) = mpsc_std::sync_channel::<Job>(2 * n);
        let rx = Arc::new(Mutex::new(rx));
        let room = Arc::new(Notify::new());
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let shared = Arc::clone(&self.shared);
            let rx = Arc::clone(&rx);
            let room = Arc::clone(&room);
            let h = std::thread::Builder::new()
                .name(format!("jfiv-extract-{i}"))
                .spawn(move || {
                    loop {
                        let job = lock(&rx).recv();
                        room.notify_one();
                        let Ok(job) = job else { break };
                        shared.process(job);
                    }
                })
                .map_err(|e| Error::Internal {
                    reason: format!("cannot start an extraction thread: {e}"),
                })?;
            handles.push(h);
        }
        self.workers = Some(Workers { tx, handles, room });
        Ok(())
    }

    /// Waits until the workers have processed every blob fed so far and stops them (later
    /// blobs are processed on the feeding thread); returns the files this completed or failed.
    pub fn stop_workers(&mut self) -> Vec<FileOutcome> {
        if let Some(w) = self.workers.take() {
            w.join();
        }
        self.take_outcomes()
    }

    /// The files completed or failed since the last call (by the workers, in the background).
    pub fn take_outcomes(&mut self) -> Vec<FileOutcome> {
        std::mem::take(&mut lock(&self.shared.log).pending)
    }

    /// The chunks still needed, in the order of first use in the manifest.
    pub fn wanted(&self) -> Vec<ChunkId> {
        self.order
            .iter()
            .filter(|id| self.uses.contains_key(id))
            .copied()
            .collect()
    }

    /// Whether the chunk is still needed.
    pub fn wants(&self, id: &ChunkId) -> bool {
        self.uses.contains_key(id)
    }

    /// Feeds an encrypted chunk blob: it is authenticated and decoded, then written. A blob
    /// that does not authenticate fails the files using it (reported, not an `Err`). With
    /// workers running, the blob is copied to their queue and the files it completes are
    /// returned by a later call.
    pub fn feed_blob(&mut self, id: &ChunkId, blob: &[u8]) -> Vec<FileOutcome> {
        if !self.wants(id) {
            return Vec::new();
        }
        self.feed_owned(id, blob.to_vec())
    }

    /// As [`feed_blob`](Extractor::feed_blob), taking the blob by value (no copy).
    pub fn feed_owned(&mut self, id: &ChunkId, blob: Vec<u8>) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        let job = Job {
            id: *id,
            blob,
            uses,
        };
        match &self.workers {
            Some(w) => {
                if let Err(mpsc_std::SendError(job)) = w.tx.send(job) {
                    // The workers are gone (they only stop when told): decode here.
                    self.workers = None;
                    self.shared.process(job);
                }
            }
            None => self.shared.process(job),
        }
        self.take_outcomes()
    }

    /// As [`feed_owned`](Extractor::feed_owned), waiting asynchronously for room in the
    /// workers' queue instead of blocking the thread.
    async fn feed_owned_async(&mut self, id: &ChunkId, blob: Vec<u8>) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        let mut job = Job {
            id: *id,
            blob,
            uses,
        };
        loop {
            let Some(w) = &self.workers else {
                self.shared.process(job);
                break;
            };
            match w.tx.try_send(job) {
                Ok(()) => break,
                Err(mpsc_std::TrySendError::Full(j)) => {
                    job = j;
                    let room = Arc::clone(&w.room);
                    room.notified().await;
                }
                Err(mpsc_std::TrySendError::Disconnected(j)) => {
                    job = j;
                    self.workers = None;
                }
            }
        }
        self.take_outcomes()
    }

    /// Feeds a chunk's plaintext, already authenticated by [`format::decode_chunk`].
    /// Returns the files that this completed or failed.
    pub fn feed_plain(&mut self, id: &ChunkId, plain: &[u8]) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        let plain = Arc::new(plain.to_vec());
        for (index, offset, len) in uses {
            self.shared.apply(index, offset, len, id, &plain);
        }
        self.take_outcomes()
    }

    /// Declares that a chunk cannot be provided (missing, damaged): the files using it fail.
    pub fn chunk_unavailable(&mut self, id: &ChunkId, reason: &str) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        self.shared.unavailable(id, &uses, reason);
        self.take_outcomes()
    }

    /// Ends the extraction: waits for the workers, files still missing chunks fail,
    /// directory metadata is applied (deepest first), and the report is returned.
    pub fn finish(mut self) -> ExtractReport {
        if let Some(w) = self.workers.take() {
            w.join();
        }
        for id in self.wanted() {
            if let Some(uses) = self.uses.remove(&id) {
                self.shared.unavailable(&id, &uses, "never provided");
            }
        }
        for file in &self.shared.files {
            let mut f = lock(file);
            if !f.finished {
                self.shared.fail(&mut f, "incomplete".into(), None);
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (path, meta) in dirs.iter().rev() {
            let warnings = dir_metadata(path, meta, &self.shared.options);
            lock(&self.shared.log)
                .report
                .metadata_warnings
                .extend(warnings);
        }
        std::mem::take(&mut lock(&self.shared.log).report)
    }
}

impl Shared {
    /// Decodes one blob and writes it to every file that uses it.
    fn process(&self, job: Job) {
        let Job { id, blob, uses } = job;
        match format::decode_chunk_owned(&self.key, &id, blob) {
            Ok(plain) => {
                let plain = Arc::new(plain);
                for (index, offset, len) in uses {
                    self.apply(index, offset, len, &id, &plain);
                }
            }
            Err(e) => self.unavailable(&id, &uses, &e.to_string()),
        }
    }

    fn unavailable(&self, id: &ChunkId, uses: &[Use], reason: &str) {
        lock(&self.log)
            .report
            .damaged_chunks
            .push((*id, reason.to_owned()));
        for (index, _, _) in uses {
            let mut f = lock(&self.files[*index]);
            self.fail(&mut f, format!("chunk {id}: {reason}"), Some(*id));
        }
    }

    fn apply(&self, index: usize, offset: u64, len: u32, id: &ChunkId, plain: &Arc<Vec<u8>>) {
        let mut f = lock(&self.files[index]);
        if f.finished {
            return;
        }
        if plain.len() != len as usize {
            self.fail(
                &mut f,
                format!(
                    "chunk {id} is {} bytes, the manifest says {len}",
                    plain.len()
                ),
                Some(*id),
            );
            return;
        }
        if let Err(e) = self.write_at(&mut f, offset, plain) {
            self.fail(&mut f, format!("write failed: {e}"), None);
            return;
        }
        f.remaining -= 1;
        if f.remaining == 0 {
            self.finalize(&mut f);
        } else if self.open_files.load(Ordering::Relaxed) > MAX_OPEN_FILES {
            self.close(&mut f);
        }
    }

    fn close(&self, f: &mut FileState) {
        if f.handle.take().is_some() {
            self.open_files.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Opens (or creates) the file's temporary file if it is not open.
    fn open(&self, f: &mut FileState) -> std::io::Result<()> {
        if f.handle.is_none() {
            let h = if f.created {
                OpenOptions::new().write(true).open(&f.temp_path)?
            } else {
                let _dir = lock(&self.dir_ops);
                let h = File::create(&f.temp_path)?;
                f.created = true;
                h
            };
            self.open_files.fetch_add(1, Ordering::Relaxed);
            f.handle = Some(h);
        }
        Ok(())
    }

    fn handle<'f>(&self, f: &'f mut FileState) -> std::io::Result<&'f File> {
        self.open(f)?;
        f.handle
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no file handle"))
    }

    fn unpark(&self, f: &mut FileState) {
        let bytes: u64 = f.parked.values().map(|b| b.len() as u64).sum();
        f.parked.clear();
        self.parked_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    fn write_at(&self, f: &mut FileState, offset: u64, data: &Arc<Vec<u8>>) -> std::io::Result<()> {
        self.handle(f)?.write_all_at(data, offset)?;
        let len = data.len() as u64;
        f.written_to = f.written_to.max(offset + len);
        if f.hasher.is_none() {
            return Ok(());
        }
        if offset == f.next_offset {
            if let Some(h) = f.hasher.as_mut() {
                h.update(data);
                f.next_offset += len;
                while let Some(next) = f.parked.remove(&f.next_offset) {
                    self.parked_bytes
                        .fetch_sub(next.len() as u64, Ordering::Relaxed);
                    h.update(&next);
                    f.next_offset += next.len() as u64;
                }
            }
        } else if offset > f.next_offset
            && self.parked_bytes.load(Ordering::Relaxed) + len <= PARK_BUDGET
            && !f.parked.contains_key(&offset)
        {
            self.parked_bytes.fetch_add(len, Ordering::Relaxed);
            f.parked.insert(offset, Arc::clone(data));
        } else {
            // Hashed by reading the file back before the rename.
            f.hasher = None;
            self.unpark(f);
        }
        // Only whole pages of the prefix written in order: a page under write-back that is
        // written again (the rest of a page shared by two chunks) makes that write wait.
        let settled = f.next_offset / PAGE * PAGE;
        if f.hasher.is_some() && settled >= f.unflushed_from + WRITEBACK_STEP {
            start_writeback(f, settled);
        }
        Ok(())
    }

    fn fail(&self, f: &mut FileState, reason: String, chunk: Option<ChunkId>) {
        if f.finished {
            return;
        }
        f.finished = true;
        self.close(f);
        self.unpark(f);
        if f.created {
            let _ = fs::remove_file(&f.temp_path);
        }
        let failed = FailedFile {
            path: f.path.clone(),
            reason,
            chunk,
        };
        let mut log = lock(&self.log);
        log.report.failed.push(failed.clone());
        log.pending.push(FileOutcome::Failed(failed));
    }

    fn finalize(&self, f: &mut FileState) {
        let mut warnings = Vec::new();
        let result = self.finalize_inner(f, &mut warnings);
        self.close(f);
        match result {
            Ok(()) => {
                f.finished = true;
                let mut log = lock(&self.log);
                log.report.metadata_warnings.extend(warnings);
                log.report.files += 1;
                log.report.bytes += f.meta.size;
                if !f.consistent {
                    log.report.inconsistent.push(f.path.clone());
                }
                log.pending.push(FileOutcome::Restored {
                    path: f.path.clone(),
                    bytes: f.meta.size,
                });
            }
            Err(reason) => self.fail(f, reason, None),
        }
    }

    fn finalize_inner(
        &self,
        f: &mut FileState,
        warnings: &mut Vec<String>,
    ) -> std::result::Result<(), String> {
        self.open(f).map_err(|e| format!("create failed: {e}"))?;
        let expected_len: u64 = f.meta.size;
        let len = f
            .handle
            .as_ref()
            .map(File::metadata)
            .transpose()
            .map_err(|e| format!("stat failed: {e}"))?
            .map_or(0, |m| m.len());
        if len != expected_len {
            return Err(format!(
                "extracted {len} bytes, the manifest says {expected_len}"
            ));
        }
        let in_order = f.next_offset == len && f.parked.is_empty();
        let hash = match f.hasher.take() {
            Some(h) if in_order => h.finalize(),
            _ => hash_file(&f.temp_path).map_err(|e| format!("re-read failed: {e}"))?,
        };
        self.unpark(f);
        let Some(expected) = &f.blake3 else {
            return Err("the manifest has no BLAKE3 for this file".into());
        };
        if hash.to_hex().as_str() != expected {
            return Err(format!(
                "BLAKE3 mismatch after extraction ({} chunks): expected {expected}, got {}",
                f.chunk_count,
                hash.to_hex()
            ));
        }
        self.open(f).map_err(|e| format!("reopen failed: {e}"))?;
        let Some(handle) = f.handle.as_ref() else {
            return Err("no file handle".into());
        };
        if self.options.fsync {
            handle
                .sync_all()
                .map_err(|e| format!("fsync failed: {e}"))?;
        }
        file_metadata(handle, &f.meta, &self.options, &f.path, warnings);
        {
            let _dir = lock(&self.dir_ops);
            fs::rename(&f.temp_path, &f.final_path).map_err(|e| format!("rename failed: {e}"))?;
        }
        if !self.options.fsync {
            start_writeback(f, f.written_to.max(len));
        }
        Ok(())
    }
}

/// Starts writing the file's dirty pages from the end of the last call to `to` to disk, without
/// waiting (`posix_fadvise(POSIX_FADV_DONTNEED)` on Linux begins a non-blocking write-back of
/// the range, and drops only pages that are already clean, which these are not). Purely a
/// hint to overlap the disk writes with the extraction: durability comes from the caller's
/// `syncfs`, whether or not this did anything.
fn start_writeback(f: &mut FileState, to: u64) {
    let from = f.unflushed_from;
    if to <= from {
        return;
    }
    if let (Some(h), Some(len)) = (f.handle.as_ref(), std::num::NonZeroU64::new(to - from)) {
        let _ = rustix::fs::fadvise(h, from, Some(len), rustix::fs::Advice::DontNeed);
    }
    f.unflushed_from = to;
}

fn mtime_of(meta: &Metadata) -> SystemTime {
    if meta.mtime >= 0 {
        UNIX_EPOCH + Duration::new(meta.mtime as u64, meta.mtime_nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(meta.mtime.unsigned_abs())
    }
}

/// Owner, permissions and mtime of a file being finalised, through its open handle.
fn file_metadata(
    file: &File,
    meta: &Metadata,
    options: &ExtractOptions,
    shown: &str,
    warnings: &mut Vec<String>,
) {
    if options.owner
        && let Err(e) = std::os::unix::fs::fchown(file, Some(meta.uid), Some(meta.gid))
    {
        warnings.push(format!("{shown}: owner not restored: {e}"));
    }
    if options.permissions
        && let Err(e) = file.set_permissions(fs::Permissions::from_mode(meta.mode))
    {
        warnings.push(format!("{shown}: permissions not restored: {e}"));
    }
    if options.mtime
        && let Err(e) = file.set_modified(mtime_of(meta))
    {
        warnings.push(format!("{shown}: mtime not restored: {e}"));
    }
}

/// Owner, permissions and mtime of a directory (after its content is in place).
fn dir_metadata(path: &Path, meta: &Metadata, options: &ExtractOptions) -> Vec<String> {
    let shown = path.display();
    let mut warnings = Vec::new();
    if options.owner
        && let Err(e) = std::os::unix::fs::chown(path, Some(meta.uid), Some(meta.gid))
    {
        warnings.push(format!("{shown}: owner not restored: {e}"));
    }
    if options.permissions
        && let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
    {
        warnings.push(format!("{shown}: permissions not restored: {e}"));
    }
    if options.mtime
        && let Err(e) = File::open(path).and_then(|f| f.set_modified(mtime_of(meta)))
    {
        warnings.push(format!("{shown}: mtime not restored: {e}"));
    }
    warnings
}

fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// Whether `path` already holds exactly the content of `entry` (size and BLAKE3).
pub fn already_verified(path: &Path, entry: &Entry) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.len() != entry.meta.size {
        return false;
    }
    match (&entry.blake3, hash_file(path)) {
        (Some(expected), Ok(hash)) => hash.to_hex().as_str() == expected,
        _ => false,
    }
}

type Fetched = (ChunkId, Result<Vec<u8>>);
type Fetch<'a> = Pin<Box<dyn Future<Output = Fetched> + Send + 'a>>;

/// Fetches running concurrently, handed back in the order they were started.
struct Fetches<'a> {
    slots: VecDeque<(Option<Fetch<'a>>, Option<Fetched>)>,
}

impl<'a> Fetches<'a> {
    fn push(&mut self, fetch: Fetch<'a>) {
        self.slots.push_back((Some(fetch), None));
    }

    /// The oldest fetch's result, polling all of them meanwhile; `None` when there is none.
    async fn next(&mut self) -> Option<Fetched> {
        if self.slots.is_empty() {
            return None;
        }
        std::future::poll_fn(|cx| {
            for (fetch, out) in &mut self.slots {
                if let Some(f) = fetch
                    && let Poll::Ready(v) = f.as_mut().poll(cx)
                {
                    *out = Some(v);
                    *fetch = None;
                }
            }
            if self.slots.front().is_some_and(|(_, out)| out.is_some()) {
                Poll::Ready(self.slots.pop_front().and_then(|(_, out)| out))
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// The number of extraction threads: one per core.
pub(crate) fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Extracts the `selection` of `manifest` from a random-access `target` into `dest`.
///
/// Chunks are fetched in manifest order (several at a time), then authenticated, decompressed
/// and written by one thread per core, with a bounded number of chunks in flight (see
/// [`Extractor::start_workers`]). Damaged or missing chunks fail only the files that use them:
/// see [`ExtractReport::failed`]. Files are not synced one by one (unless
/// [`ExtractOptions::fsync`]): a caller that records the extraction as done must first make
/// the destination durable (one `syncfs`).
///
/// # Errors
/// [`Error::Unsupported`] on a sequential target (feed an [`Extractor`] instead), errors of
/// [`Extractor::new`]; per-file problems are in the report, not errors.
pub async fn extract(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    manifest: &Manifest,
    selection: &Selection,
    dest: &Path,
    options: ExtractOptions,
    progress: &dyn Progress,
) -> Result<ExtractReport> {
    if !target.capabilities().random_access {
        return Err(Error::Unsupported {
            operation: "random-access extraction from a sequential target",
        });
    }
    let mut ex = Extractor::new(key, manifest, selection, dest, options)?;
    let report_outcomes = |batch: Vec<FileOutcome>| {
        for outcome in batch {
            match &outcome {
                FileOutcome::Restored { path, bytes } => {
                    progress.report(&ProgressEvent::FileRestored {
                        path,
                        bytes: *bytes,
                    })
                }
                FileOutcome::Failed(f) => progress.report(&ProgressEvent::FileFailed {
                    path: &f.path,
                    reason: &f.reason,
                }),
            }
        }
    };
    report_outcomes(ex.take_outcomes());
    let wanted = ex.wanted();
    let workers = default_workers();
    ex.start_workers(workers)?;
    let depth = 2 * workers;
    let mut fetches = Fetches {
        slots: VecDeque::new(),
    };
    let mut ids = wanted.into_iter();
    loop {
        while fetches.slots.len() < depth
            && let Some(id) = ids.next()
        {
            fetches.push(Box::pin(async move { (id, target.get_chunk(&id).await) }));
        }
        let Some((id, fetched)) = fetches.next().await else {
            break;
        };
        let batch = match fetched {
            Ok(blob) => ex.feed_owned_async(&id, blob).await,
            Err(e) => ex.chunk_unavailable(&id, &e.to_string()),
        };
        report_outcomes(batch);
    }
    if let Some(w) = ex.workers.take() {
        tokio::task::spawn_blocking(move || w.join())
            .await
            .map_err(|e| Error::Internal {
                reason: format!("extraction threads: {e}"),
            })?;
    }
    report_outcomes(ex.take_outcomes());
    tokio::task::spawn_blocking(move || ex.finish())
        .await
        .map_err(|e| Error::Internal {
            reason: format!("extraction finish: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackupOptions, DirectorySource, MemoryTarget, NoProgress, backup};

    fn pseudo_random(len: usize, mut x: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A tree with a multi-chunk file, a copy of it (shared chunks), an empty and a text file;
    /// backed up to a memory target.
    fn backed_up(dir: &Path) -> (MemoryTarget, RepositoryKey, Manifest) {
        let data = dir.join("data");
        fs::create_dir_all(data.join("lib")).unwrap();
        let big = pseudo_random(5_000_000, 7);
        fs::write(data.join("lib/big.bin"), &big).unwrap();
        fs::write(data.join("lib/copy.bin"), &big).unwrap();
        fs::write(data.join("empty.txt"), b"").unwrap();
        fs::write(data.join("notes.txt"), b"ponction J+2\n".repeat(1000)).unwrap();
        let target = MemoryTarget::new();
        let key = RepositoryKey::generate();
        let source = DirectorySource::new("app").root_as(&data, "data");
        let manifest = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(backup(
                &source,
                &target,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
            ))
            .unwrap()
            .manifest;
        (target, key, manifest)
    }

    fn partials(root: &Path) -> Vec<PathBuf> {
        walkdir::WalkDir::new(root)
            .into_iter()
            .filter_map(std::result::Result::ok)
            .map(|e| e.path().to_path_buf())
            .filter(|p| p.to_string_lossy().ends_with(".jfiv-partial"))
            .collect()
    }

    #[test]
    fn workers_restore_every_file_whatever_the_order_of_the_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (target, key, manifest) = backed_up(dir.path());
        let big = manifest
            .entries
            .iter()
            .find(|e| e.path.ends_with("big.bin"))
            .unwrap();
        assert!(big.chunks.len() > 2, "the test needs a multi-chunk file");
        let chunks = target.chunks_in_order();
        for (name, reverse) in [("forward", false), ("reverse", true)] {
            let out = dir.path().join(name);
            let mut ex = Extractor::new(
                &key,
                &manifest,
                &Selection::all(),
                &out,
                ExtractOptions::default(),
            )
            .unwrap();
            ex.start_workers(2).unwrap();
            let mut order: Vec<&(ChunkId, Vec<u8>)> = chunks.iter().collect();
            if reverse {
                order.reverse();
            }
            for (id, blob) in order {
                ex.feed_blob(id, blob);
            }
            let r = ex.finish();
            assert!(r.is_complete(), "{name}: {r:?}");
            assert_eq!(r.files, 4, "{name}");
            for f in ["lib/big.bin", "lib/copy.bin", "empty.txt", "notes.txt"] {
                assert_eq!(
                    fs::read(out.join("data").join(f)).unwrap(),
                    fs::read(dir.path().join("data").join(f)).unwrap(),
                    "{name}: {f}"
                );
            }
            assert!(partials(&out).is_empty(), "{name}");
        }
    }

    #[test]
    fn with_workers_a_damaged_chunk_fails_only_the_files_using_it() {
        let dir = tempfile::tempdir().unwrap();
        let (target, key, manifest) = backed_up(dir.path());
        let big = manifest
            .entries
            .iter()
            .find(|e| e.path.ends_with("big.bin"))
            .unwrap();
        let bad = big.chunks[1].id;
        let out = dir.path().join("out");
        let mut ex = Extractor::new(
            &key,
            &manifest,
            &Selection::all(),
            &out,
            ExtractOptions::default(),
        )
        .unwrap();
        ex.start_workers(2).unwrap();
        for (id, mut blob) in target.chunks_in_order() {
            if id == bad {
                let last = blob.len() - 1;
                blob[last] ^= 1;
            }
            ex.feed_owned(&id, blob);
        }
        let r = ex.finish();
        let mut failed: Vec<&str> = r.failed.iter().map(|f| f.path.as_str()).collect();
        failed.sort_unstable();
        assert_eq!(failed, ["data/lib/big.bin", "data/lib/copy.bin"]);
        assert!(r.failed.iter().all(|f| f.chunk == Some(bad)));
        assert_eq!(r.damaged_chunks.len(), 1);
        assert_eq!(r.files, 2);
        assert!(!out.join("data/lib/big.bin").exists());
        assert!(!out.join("data/lib/copy.bin").exists());
        assert!(out.join("data/notes.txt").exists());
        assert!(partials(&out).is_empty());
    }
}

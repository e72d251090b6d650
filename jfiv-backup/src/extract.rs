//! Reading back: extracting a snapshot, or selected paths, into a directory.
//!
//! The [`Extractor`] is the building block: it is fed chunks (in any order, each once) and
//! writes each file under a temporary name, checks its BLAKE3 against the manifest, restores
//! its metadata, and only then renames it to its final name. A chunk that fails to
//! authenticate fails only the files that use it. [`extract`] drives an extractor from a
//! random-access target; a tape restore feeds one with the chunks of a session in stored order.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

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
    hasher: Option<blake3::Hasher>,
    next_offset: u64,
    finished: bool,
    consistent: bool,
}

/// Extracts the files of one manifest from chunks fed to it (see the module docs).
#[derive(Debug)]
pub struct Extractor {
    key: RepositoryKey,
    options: ExtractOptions,
    files: Vec<FileState>,
    uses: HashMap<ChunkId, Vec<(usize, u64, u32)>>,
    order: Vec<ChunkId>,
    dirs: Vec<(PathBuf, Metadata)>,
    report: ExtractReport,
    pending: Vec<FileOutcome>,
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
        let mut ex = Self {
            key: key.clone(),
            options,
            files: Vec::new(),
            uses: HashMap::new(),
            order: Vec::new(),
            dirs: Vec::new(),
            report: ExtractReport::default(),
            pending: Vec::new(),
        };
        for entry in manifest
            .entries
            .iter()
            .filter(|e| selection.matches(&e.path))
        {
            let rel = safe_relative(&entry.path)?;
            let target = dest.join(&rel);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
            }
            match &entry.kind {
                EntryKind::Dir => {
                    fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
                    ex.report.dirs += 1;
                    ex.dirs.push((target, entry.meta));
                }
                EntryKind::Symlink { target: link } => {
                    if fs::symlink_metadata(&target).is_ok() {
                        fs::remove_file(&target).map_err(|e| Error::io("replace", &target, e))?;
                    }
                    std::os::unix::fs::symlink(link, &target)
                        .map_err(|e| Error::io("create symlink", &target, e))?;
                    if ex.options.owner
                        && let Err(e) = std::os::unix::fs::lchown(
                            &target,
                            Some(entry.meta.uid),
                            Some(entry.meta.gid),
                        )
                    {
                        ex.report
                            .metadata_warnings
                            .push(format!("{}: owner not restored: {e}", entry.path));
                    }
                    ex.report.symlinks += 1;
                }
                EntryKind::File => ex.plan_file(entry, target)?,
            }
        }
        Ok(ex)
    }

    fn plan_file(&mut self, entry: &Entry, final_path: PathBuf) -> Result<()> {
        if self.options.skip_verified_existing && already_verified(&final_path, entry) {
            self.report.already_present += 1;
            return Ok(());
        }
        let index = self.files.len();
        let mut offset = 0u64;
        for c in &entry.chunks {
            let uses = self.uses.entry(c.id).or_default();
            if uses.is_empty() {
                self.order.push(c.id);
            }
            uses.push((index, offset, c.len));
            offset += u64::from(c.len);
        }
        self.files.push(FileState {
            path: entry.path.clone(),
            temp_path: temp_name(&final_path),
            final_path,
            meta: entry.meta,
            blake3: entry.blake3.clone(),
            chunk_count: entry.chunks.len(),
            remaining: entry.chunks.len(),
            created: false,
            hasher: Some(blake3::Hasher::new()),
            next_offset: 0,
            finished: false,
            consistent: entry.consistent,
        });
        if entry.chunks.is_empty() {
            self.finalize(index);
        }
        Ok(())
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
    /// that does not authenticate fails the files using it (reported, not an `Err`).
    pub fn feed_blob(&mut self, id: &ChunkId, blob: &[u8]) -> Vec<FileOutcome> {
        if !self.wants(id) {
            return Vec::new();
        }
        match format::decode_chunk(&self.key, id, blob) {
            Ok(plain) => self.feed_plain(id, &plain),
            Err(e) => self.chunk_unavailable(id, &e.to_string()),
        }
    }

    /// Feeds a chunk's plaintext, already authenticated by [`format::decode_chunk`].
    /// Returns the files that this completed or failed.
    pub fn feed_plain(&mut self, id: &ChunkId, plain: &[u8]) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        for (index, offset, len) in uses {
            if self.files[index].finished {
                continue;
            }
            if plain.len() != len as usize {
                self.fail(
                    index,
                    format!(
                        "chunk {id} is {} bytes, the manifest says {len}",
                        plain.len()
                    ),
                    Some(*id),
                );
                continue;
            }
            if let Err(e) = self.write_at(index, offset, plain) {
                self.fail(index, format!("write failed: {e}"), None);
                continue;
            }
            let file = &mut self.files[index];
            file.remaining -= 1;
            if file.remaining == 0 {
                self.finalize(index);
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Declares that a chunk cannot be provided (missing, damaged): the files using it fail.
    pub fn chunk_unavailable(&mut self, id: &ChunkId, reason: &str) -> Vec<FileOutcome> {
        let Some(uses) = self.uses.remove(id) else {
            return Vec::new();
        };
        self.report.damaged_chunks.push((*id, reason.to_owned()));
        for (index, _, _) in uses {
            if !self.files[index].finished {
                self.fail(index, format!("chunk {id}: {reason}"), Some(*id));
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Ends the extraction: files still missing chunks fail, directory metadata is applied
    /// (deepest first), and the report is returned.
    pub fn finish(mut self) -> ExtractReport {
        let missing: Vec<ChunkId> = self.wanted();
        for id in missing {
            self.chunk_unavailable(&id, "never provided");
        }
        for i in 0..self.files.len() {
            if !self.files[i].finished {
                self.fail(i, "incomplete".into(), None);
            }
        }
        let dirs = std::mem::take(&mut self.dirs);
        for (path, meta) in dirs.iter().rev() {
            self.apply_metadata(path, meta, true);
        }
        self.report
    }

    fn write_at(&mut self, index: usize, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let file = &mut self.files[index];
        let handle = if file.created {
            OpenOptions::new().write(true).open(&file.temp_path)?
        } else {
            file.created = true;
            File::create(&file.temp_path)?
        };
        handle.write_all_at(data, offset)?;
        match &mut file.hasher {
            Some(h) if offset == file.next_offset => {
                h.update(data);
                file.next_offset += data.len() as u64;
            }
            _ => file.hasher = None,
        }
        Ok(())
    }

    fn fail(&mut self, index: usize, reason: String, chunk: Option<ChunkId>) {
        let file = &mut self.files[index];
        if file.finished {
            return;
        }
        file.finished = true;
        if file.created {
            let _ = fs::remove_file(&file.temp_path);
        }
        let failed = FailedFile {
            path: file.path.clone(),
            reason,
            chunk,
        };
        self.report.failed.push(failed.clone());
        self.pending.push(FileOutcome::Failed(failed));
    }

    fn finalize(&mut self, index: usize) {
        match self.finalize_inner(index) {
            Ok(()) => {
                let file = &mut self.files[index];
                file.finished = true;
                self.report.files += 1;
                self.report.bytes += file.meta.size;
                if !file.consistent {
                    self.report.inconsistent.push(file.path.clone());
                }
                self.pending.push(FileOutcome::Restored {
                    path: file.path.clone(),
                    bytes: file.meta.size,
                });
            }
            Err(reason) => self.fail(index, reason, None),
        }
    }

    fn finalize_inner(&mut self, index: usize) -> std::result::Result<(), String> {
        let file = &mut self.files[index];
        if !file.created {
            File::create(&file.temp_path).map_err(|e| format!("create failed: {e}"))?;
            file.created = true;
        }
        let expected_len: u64 = file.meta.size;
        let len = fs::metadata(&file.temp_path)
            .map_err(|e| format!("stat failed: {e}"))?
            .len();
        if len != expected_len {
            return Err(format!(
                "extracted {len} bytes, the manifest says {expected_len}"
            ));
        }
        let hash = match file.hasher.take() {
            Some(h) if file.next_offset == len => h.finalize(),
            _ => hash_file(&file.temp_path).map_err(|e| format!("re-read failed: {e}"))?,
        };
        let Some(expected) = &file.blake3 else {
            return Err("the manifest has no BLAKE3 for this file".into());
        };
        if hash.to_hex().as_str() != expected {
            return Err(format!(
                "BLAKE3 mismatch after extraction ({} chunks): expected {expected}, got {}",
                file.chunk_count,
                hash.to_hex()
            ));
        }
        let temp = file.temp_path.clone();
        let final_path = file.final_path.clone();
        let meta = file.meta;
        if self.options.fsync {
            File::open(&temp)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("fsync failed: {e}"))?;
        }
        self.apply_metadata(&temp, &meta, false);
        fs::rename(&temp, &final_path).map_err(|e| format!("rename failed: {e}"))?;
        Ok(())
    }

    fn apply_metadata(&mut self, path: &Path, meta: &Metadata, is_dir: bool) {
        let shown = path.display().to_string();
        if self.options.owner
            && let Err(e) = std::os::unix::fs::chown(path, Some(meta.uid), Some(meta.gid))
        {
            self.report
                .metadata_warnings
                .push(format!("{shown}: owner not restored: {e}"));
        }
        if self.options.permissions
            && let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
        {
            self.report
                .metadata_warnings
                .push(format!("{shown}: permissions not restored: {e}"));
        }
        if self.options.mtime {
            let time = if meta.mtime >= 0 {
                UNIX_EPOCH + Duration::new(meta.mtime as u64, meta.mtime_nsec)
            } else {
                UNIX_EPOCH - Duration::from_secs(meta.mtime.unsigned_abs())
            };
            let result = if is_dir {
                File::open(path).and_then(|f| f.set_modified(time))
            } else {
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .or_else(|_| File::open(path))
                    .and_then(|f| f.set_modified(time))
            };
            if let Err(e) = result {
                self.report
                    .metadata_warnings
                    .push(format!("{shown}: mtime not restored: {e}"));
            }
        }
        let _: SystemTime = UNIX_EPOCH;
    }
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

/// Extracts the `selection` of `manifest` from a random-access `target` into `dest`.
///
/// Chunks are fetched in manifest order, authenticated and decompressed on the blocking pool
/// (a bounded number in flight), and written by one writer thread. Damaged or missing chunks
/// fail only the files that use them: see [`ExtractReport::failed`].
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
    let extractor = Extractor::new(key, manifest, selection, dest, options)?;
    let wanted = extractor.wanted();
    enum Msg {
        Plain(ChunkId, Vec<u8>),
        Failed(ChunkId, String),
    }
    let (tx, mut rx) = mpsc::channel::<Msg>(4);
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Vec<FileOutcome>>();
    let writer = std::thread::Builder::new()
        .name("jfiv-extract-writer".into())
        .spawn(move || {
            let mut ex = extractor;
            while let Some(msg) = rx.blocking_recv() {
                let outcomes = match msg {
                    Msg::Plain(id, plain) => ex.feed_plain(&id, &plain),
                    Msg::Failed(id, reason) => ex.chunk_unavailable(&id, &reason),
                };
                if !outcomes.is_empty() {
                    let _ = events_tx.send(outcomes);
                }
            }
            ex.finish()
        })
        .map_err(|e| Error::Internal {
            reason: format!("cannot start the writer thread: {e}"),
        })?;
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
    let in_flight = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut queue = std::collections::VecDeque::new();
    let shared_key = std::sync::Arc::new(key.clone());
    let mut ids = wanted.into_iter();
    loop {
        if queue.len() < in_flight
            && let Some(id) = ids.next()
        {
            let job = match target.get_chunk(&id).await {
                Ok(blob) => {
                    let key = std::sync::Arc::clone(&shared_key);
                    Ok(tokio::task::spawn_blocking(move || {
                        format::decode_chunk(&key, &id, &blob)
                    }))
                }
                Err(e) => Err(e.to_string()),
            };
            queue.push_back((id, job));
            continue;
        }
        let Some((id, job)) = queue.pop_front() else {
            break;
        };
        let msg = match job {
            Ok(handle) => match handle.await {
                Ok(Ok(plain)) => Msg::Plain(id, plain),
                Ok(Err(e)) => Msg::Failed(id, e.to_string()),
                Err(e) => Msg::Failed(id, format!("decoder failed: {e}")),
            },
            Err(reason) => Msg::Failed(id, reason),
        };
        if tx.send(msg).await.is_err() {
            break;
        }
        while let Ok(batch) = events_rx.try_recv() {
            report_outcomes(batch);
        }
    }
    drop(tx);
    let report = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| Error::Internal {
            reason: format!("writer join: {e}"),
        })?
        .map_err(|_| Error::Internal {
            reason: "the writer thread panicked".into(),
        })?;
    while let Ok(batch) = events_rx.try_recv() {
        report_outcomes(batch);
    }
    Ok(report)
}

//! The backup pipeline: scan, read, chunk, hash, compress, encrypt, store, record.
//!
//! ```text
//!  reader thread              blocking pool (N workers)           async task
//!  read + FastCDC + BLAKE3 -> keyed id, dedup, zstd, AEAD    ->  put_chunk, assemble, manifest
//!        (bounded channel)         (bounded queue of jobs)
//! ```
//!
//! Memory is bounded: at most `in_flight` chunks (each at most the maximum chunk size, plus its
//! compressed copy) exist at any time, plus the reader's buffer of two maximum chunks, plus the
//! manifest itself (which grows with the number of files, not their size).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use jfiv_audit::{Action, Clock, Outcome, SystemClock};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chunker::{Chunker, ChunkerParams};
use crate::source::{Warning, WarningKind, metadata_of};
use crate::{
    AuditHook, BackupTarget, ChunkId, ChunkRef, Entry, EntryKind, Error, MANIFEST_VERSION,
    Manifest, ManifestStats, Metadata, Object, Progress, ProgressEvent, RepositoryKey, Result,
    SnapshotId, SnapshotSummary, Source, Stored, format,
};

/// How a backup runs.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// zstd level for chunks (1 is fast and good; 3 is zstd's default). Default 1.
    pub zstd_level: i32,
    /// log2 of the entries of zstd's match-finder hash table; `None` keeps zstd's choice for
    /// the level (2^14 at level 1). Default `Some(16)`: on the benchmark's database exports it
    /// stores text about 1.5% smaller than zstd's level 1 for about 15% more compression time,
    /// which brings the store to restic's size (README, "Benchmarks").
    pub zstd_hash_log: Option<u32>,
    /// FastCDC bounds.
    pub chunker: ChunkerParams,
    /// Worker threads for hashing, compression and encryption; 0 means one per core.
    pub threads: usize,
    /// Chunks in flight per worker thread (bounds memory). Default 2.
    pub in_flight_per_thread: usize,
    /// The host name recorded in the manifest.
    pub host: String,
    /// How many times a file that changed while it was read is read again before it is stored
    /// marked inconsistent. Default 3.
    pub read_attempts: u32,
    /// The clock for start and end times.
    pub clock: Arc<dyn Clock>,
    /// Optional audit trail: `backup-started`, then `backup-finished` or `backup-failed`.
    pub audit: Option<AuditHook>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            zstd_level: 1,
            zstd_hash_log: Some(16),
            chunker: ChunkerParams::default(),
            threads: 0,
            in_flight_per_thread: 2,
            host: hostname(),
            read_attempts: 3,
            clock: Arc::new(SystemClock),
            audit: None,
        }
    }
}

/// The machine's host name (from `/proc/sys/kernel/hostname`, or the `HOSTNAME` convention's
/// fallback `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Counters of one backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupStats {
    /// Entries in the snapshot.
    pub entries: u64,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Files reused unchanged from the previous snapshot, not read.
    pub files_reused: u64,
    /// Bytes read from the source.
    pub bytes_read: u64,
    /// Bytes of the files reused without reading.
    pub bytes_reused: u64,
    /// Chunks written to the target.
    pub chunks_new: u64,
    /// Chunks found already stored (deduplicated).
    pub chunks_dedup: u64,
    /// Encrypted bytes written to the target.
    pub bytes_stored: u64,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The snapshot's manifest, as stored.
    pub manifest: Manifest,
    /// Counters.
    pub stats: BackupStats,
    /// What was skipped or stored with a caveat (also in the manifest's `warnings`).
    pub warnings: Vec<Warning>,
}

impl BackupReport {
    /// `true` if nothing was skipped or stored inconsistent.
    pub fn is_clean(&self) -> bool {
        self.warnings.is_empty()
    }
}

/// Backs `source` up to `target`, incrementally against `previous` (normally the latest
/// snapshot of the same source: see [`latest_snapshot`]).
///
/// Before anything is written, the key is checked against a stored manifest (a store made
/// with another key gives [`Error::WrongKey`]). Files whose size, mtime and inode match
/// `previous` and whose chunks are all on the target are not read again. The manifest is
/// written last, after every chunk is durable; on any error no snapshot is recorded and earlier
/// snapshots are untouched.
///
/// The source is scanned on the calling thread (it blocks it for the scan's duration); the
/// heavy work runs on a reader thread and tokio's blocking pool.
///
/// # Errors
/// [`Error::WrongKey`]; the source's errors; the target's errors ([`Error::NoSpace`],
/// [`Error::ReadOnly`], ...); an audit trail that refuses the `backup-started` event.
pub async fn backup(
    source: &dyn Source,
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    previous: Option<&Manifest>,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let info = source.info();
    let object = format!("{}:{}", info.name, options.host);
    crate::audit::record(
        options.audit.as_ref(),
        Action::BackupStarted,
        Outcome::Success,
        object.clone(),
        format!("source kind {:?}", info.kind),
    )
    .await?;
    let result = run(source, target, key, previous, options, progress).await;
    match &result {
        Ok(report) => {
            let s = &report.stats;
            crate::audit::record(
                options.audit.as_ref(),
                Action::BackupFinished,
                if report.is_clean() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
                format!("snapshot {}", report.manifest.snapshot),
                format!(
                    "source {}; {} files, {} read, {} reused, {} chunks new, {} bytes stored, {} warnings",
                    info.name,
                    s.files,
                    s.bytes_read,
                    s.bytes_reused,
                    s.chunks_new,
                    s.bytes_stored,
                    report.warnings.len()
                ),
            )
            .await?;
        }
        Err(e) => {
            // The backup's own error is what the caller needs; a failure to audit it is
            // secondary and cannot be reported through the same Result.
            let _ = crate::audit::record(
                options.audit.as_ref(),
                Action::BackupFailed,
                Outcome::Failure,
                object,
                e.to_string(),
            )
            .await;
        }
    }
    result
}

/// Checks that the target's manifests were written with `key` (reads one header).
///
/// # Errors
/// [`Error::WrongKey`], the target's errors.
pub async fn check_key(target: &dyn BackupTarget, key: &RepositoryKey) -> Result<()> {
    let ids = target.list_manifests().await?;
    if let Some(id) = ids.first() {
        let blob = target.get_manifest(id).await?;
        format::check_header(format::MANIFEST_MAGIC, key, &blob, &Object::Manifest(*id))?;
    }
    Ok(())
}

/// Reads and decrypts one manifest.
///
/// # Errors
/// [`Error::NotFound`], [`Error::WrongKey`], [`Error::Integrity`], [`Error::Format`].
pub async fn load_manifest(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    id: &SnapshotId,
) -> Result<Manifest> {
    let blob = target.get_manifest(id).await?;
    Manifest::decode(key, id, &blob)
}

/// Summaries of every snapshot on the target, oldest first.
///
/// # Errors
/// The first manifest that cannot be read or authenticated stops the listing (use
/// [`verify`](crate::verify()) to list damaged manifests).
pub async fn list_snapshots(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
) -> Result<Vec<SnapshotSummary>> {
    let mut out = Vec::new();
    for id in target.list_manifests().await? {
        out.push(load_manifest(target, key, &id).await?.summary());
    }
    out.sort_by_key(|s| (s.started, s.id));
    Ok(out)
}

/// The latest snapshot of the source named `source_name`, if any.
///
/// # Errors
/// As [`list_snapshots`].
pub async fn latest_snapshot(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    source_name: &str,
) -> Result<Option<Manifest>> {
    let latest = list_snapshots(target, key)
        .await?
        .into_iter()
        .filter(|s| s.source.name == source_name)
        .max_by_key(|s| (s.started, s.id));
    match latest {
        Some(s) => Ok(Some(load_manifest(target, key, &s.id).await?)),
        None => Ok(None),
    }
}

/// What the reader thread sends.
enum ReadMsg {
    /// A chunk of file `file` (shared with the whole-file hasher of a large file).
    Chunk { file: usize, data: Arc<Vec<u8>> },
    /// File `file` is read again from the start (it changed): forget its chunks so far.
    Restart { file: usize },
    /// File `file` is done.
    End {
        file: usize,
        meta: Metadata,
        blake3: String,
        consistent: bool,
        bytes: u64,
    },
    /// File `file` could not be read.
    Failed { file: usize, reason: String },
}

/// What a worker returns for a chunk.
struct Encoded {
    file: usize,
    id: ChunkId,
    len: u32,
    blob: Option<Vec<u8>>,
}

enum Pending {
    Chunk(JoinHandle<Result<Encoded>>),
    Other(ReadMsg),
}

async fn run(
    source: &dyn Source,
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    previous: Option<&Manifest>,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started: DateTime<Utc> = options.clock.now();
    options.chunker.validate()?;
    check_key(target, key).await?;
    let info = source.info();
    let scan = source.scan()?;
    let caps = target.capabilities();
    let total_bytes: u64 = scan.entries.iter().map(|e| e.meta.size).sum();
    progress.report(&ProgressEvent::Scanned {
        entries: scan.entries.len() as u64,
        bytes: total_bytes,
    });

    let mut stats = BackupStats::default();
    let mut warnings = scan.warnings.clone();

    // Chunks known to be on the target (the previous snapshot's, checked), and stored now.
    let mut known: HashSet<ChunkId> = HashSet::new();
    let mut checked: HashMap<ChunkId, bool> = HashMap::new();
    if let Some(prev) = previous.filter(|_| caps.shared_chunks) {
        for id in prev.chunk_ids() {
            let present = target.has_chunk(&id).await?;
            checked.insert(id, present);
            if present {
                known.insert(id);
            }
        }
    }
    let prev_by_path: HashMap<&str, &Entry> = previous
        .filter(|_| caps.shared_chunks)
        .map(|p| p.entries.iter().map(|e| (e.path.as_str(), e)).collect())
        .unwrap_or_default();

    // Entries of the new manifest; files get their chunks as they arrive.
    let mut entries: Vec<Option<Entry>> = Vec::with_capacity(scan.entries.len());
    let mut to_read: Vec<(usize, PathBuf)> = Vec::new();
    for (index, se) in scan.entries.iter().enumerate() {
        let mut entry = Entry {
            path: se.path.clone(),
            kind: se.kind.clone(),
            meta: se.meta,
            chunks: Vec::new(),
            blake3: None,
            consistent: true,
        };
        if se.kind == EntryKind::File {
            let reusable = prev_by_path.get(se.path.as_str()).filter(|p| {
                p.kind == EntryKind::File
                    && p.consistent
                    && p.blake3.is_some()
                    && p.meta.size == se.meta.size
                    && p.meta.mtime == se.meta.mtime
                    && p.meta.mtime_nsec == se.meta.mtime_nsec
                    && p.meta.ino == se.meta.ino
                    && p.content_len() == se.meta.size
                    && p.chunks.iter().all(|c| checked.get(&c.id) == Some(&true))
            });
            match (reusable, &se.read_from) {
                (Some(prev), _) => {
                    entry.chunks = prev.chunks.clone();
                    entry.blake3 = prev.blake3.clone();
                    stats.files_reused += 1;
                    stats.bytes_reused += se.meta.size;
                    progress.report(&ProgressEvent::FileDone {
                        path: &se.path,
                        bytes: se.meta.size,
                        reused: true,
                    });
                }
                (None, Some(path)) => to_read.push((index, path.clone())),
                (None, None) => {
                    return Err(Error::Source {
                        source_name: info.name.clone(),
                        reason: format!("file entry {:?} has nothing to read from", se.path),
                    });
                }
            }
        }
        entries.push(Some(entry));
    }

    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        options.threads
    };
    let in_flight = threads * options.in_flight_per_thread.max(1);
    let (tx, mut rx) = mpsc::channel::<ReadMsg>(2);
    let chunker = Chunker::new(options.chunker)?;
    let attempts = options.read_attempts.max(1);
    let reader = std::thread::Builder::new()
        .name("jfiv-backup-reader".into())
        .spawn(move || read_files(to_read, chunker, attempts, tx))
        .map_err(|e| Error::Internal {
            reason: format!("cannot start the reader thread: {e}"),
        })?;

    let shared_key = Arc::new(key.clone());
    let known = Arc::new(Mutex::new(known));
    let level = format::Zstd {
        level: options.zstd_level,
        hash_log: options.zstd_hash_log,
    };
    let mut queue: VecDeque<Pending> = VecDeque::new();
    // Chunk jobs in the queue (the bound on memory); the small end-of-file messages between
    // them do not count, so that many small files still keep every worker busy.
    let mut jobs = 0usize;
    let mut done_reading = false;
    let result: Result<()> = async {
        loop {
            if !done_reading && jobs < in_flight && queue.len() < in_flight * 64 {
                match rx.recv().await {
                    Some(ReadMsg::Chunk { file, data }) => {
                        let key = Arc::clone(&shared_key);
                        let known = Arc::clone(&known);
                        jobs += 1;
                        queue.push_back(Pending::Chunk(tokio::task::spawn_blocking(move || {
                            encode(&key, &known, file, &data, level)
                        })));
                    }
                    Some(other) => queue.push_back(Pending::Other(other)),
                    None => done_reading = true,
                }
                continue;
            }
            let Some(next) = queue.pop_front() else { break };
            match next {
                Pending::Chunk(handle) => {
                    jobs -= 1;
                    let enc = handle.await.map_err(|e| Error::Internal {
                        reason: format!("worker failed: {e}"),
                    })??;
                    if let Some(blob) = enc.blob {
                        let size = blob.len() as u64;
                        match target.put_chunk(&enc.id, blob).await? {
                            Stored::New => {
                                stats.chunks_new += 1;
                                stats.bytes_stored += size;
                                progress.report(&ProgressEvent::ChunkStored {
                                    id: &enc.id,
                                    stored_bytes: size,
                                });
                            }
                            Stored::AlreadyPresent => stats.chunks_dedup += 1,
                        }
                        known
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(enc.id);
                    } else {
                        stats.chunks_dedup += 1;
                    }
                    if let Some(Some(entry)) = entries.get_mut(enc.file) {
                        entry.chunks.push(ChunkRef {
                            id: enc.id,
                            len: enc.len,
                        });
                    }
                }
                Pending::Other(ReadMsg::Restart { file }) => {
                    if let Some(Some(entry)) = entries.get_mut(file) {
                        entry.chunks.clear();
                    }
                }
                Pending::Other(ReadMsg::End {
                    file,
                    meta,
                    blake3,
                    consistent,
                    bytes,
                }) => {
                    stats.bytes_read += bytes;
                    if let Some(Some(entry)) = entries.get_mut(file) {
                        entry.meta = meta;
                        // For a file that changed while read, what is stored is what was read.
                        entry.meta.size = bytes;
                        entry.blake3 = Some(blake3);
                        entry.consistent = consistent;
                        if !consistent {
                            warnings.push(Warning {
                                path: entry.path.clone(),
                                kind: WarningKind::ChangedWhileRead,
                            });
                        }
                        progress.report(&ProgressEvent::FileDone {
                            path: &entry.path,
                            bytes,
                            reused: false,
                        });
                    }
                }
                Pending::Other(ReadMsg::Failed { file, reason }) => {
                    if let Some(slot) = entries.get_mut(file)
                        && let Some(entry) = slot.take()
                    {
                        warnings.push(Warning {
                            path: entry.path,
                            kind: WarningKind::Unreadable { reason },
                        });
                    }
                }
                Pending::Other(ReadMsg::Chunk { .. }) => {}
            }
        }
        Ok(())
    }
    .await;
    // Stop the reader (it sees the channel closed) before reporting an error.
    drop(rx);
    let reader_result = tokio::task::spawn_blocking(move || reader.join())
        .await
        .map_err(|e| Error::Internal {
            reason: format!("reader join: {e}"),
        })?;
    result?;
    if reader_result.is_err() {
        return Err(Error::Internal {
            reason: "the reader thread panicked".into(),
        });
    }

    let entries: Vec<Entry> = entries.into_iter().flatten().collect();
    let manifest_stats = ManifestStats {
        entries: entries.len() as u64,
        files: entries.iter().filter(|e| e.kind == EntryKind::File).count() as u64,
        bytes: entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.meta.size)
            .sum(),
    };
    stats.entries = manifest_stats.entries;
    stats.files = manifest_stats.files;
    let manifest = Manifest {
        format: MANIFEST_VERSION,
        snapshot: SnapshotId::random(),
        source: info,
        host: options.host.clone(),
        started,
        finished: options.clock.now(),
        jfiv_version: env!("CARGO_PKG_VERSION").to_owned(),
        parent: previous.map(|p| p.snapshot),
        stats: manifest_stats,
        databases: scan.databases.clone(),
        warnings: warnings.iter().map(ToString::to_string).collect(),
        entries,
    };
    let blob = manifest.encode(key)?;
    target.put_manifest(&manifest.snapshot, blob).await?;
    progress.report(&ProgressEvent::SnapshotWritten {
        id: &manifest.snapshot,
    });
    drop(scan);
    Ok(BackupReport {
        manifest,
        stats,
        warnings,
    })
}

/// Worker job: id, dedup check, compression, encryption.
fn encode(
    key: &RepositoryKey,
    known: &Mutex<HashSet<ChunkId>>,
    file: usize,
    data: &[u8],
    level: format::Zstd,
) -> Result<Encoded> {
    let id = key.chunk_id(data);
    let len = data.len() as u32;
    let already = known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&id);
    let blob = if already {
        None
    } else {
        Some(format::encode_chunk_with(key, &id, data, level)?)
    };
    Ok(Encoded {
        file,
        id,
        len,
        blob,
    })
}

/// The reader thread: reads each file, cuts it into chunks, hashes it whole, and detects
/// changes during the read.
fn read_files(
    files: Vec<(usize, PathBuf)>,
    mut chunker: Chunker,
    attempts: u32,
    tx: mpsc::Sender<ReadMsg>,
) {
    for (index, path) in files {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match read_one(index, &path, &mut chunker, &tx) {
                Ok(ReadOutcome::Done {
                    meta,
                    blake3,
                    bytes,
                    changed,
                }) => {
                    if changed && attempt < attempts {
                        if tx.blocking_send(ReadMsg::Restart { file: index }).is_err() {
                            return;
                        }
                        continue;
                    }
                    let msg = ReadMsg::End {
                        file: index,
                        meta,
                        blake3,
                        consistent: !changed,
                        bytes,
                    };
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
                Ok(ReadOutcome::Closed) => return,
                Err(e) => {
                    let msg = ReadMsg::Failed {
                        file: index,
                        reason: e.to_string(),
                    };
                    if tx.blocking_send(msg).is_err() {
                        return;
                    }
                }
            }
            break;
        }
    }
}

enum ReadOutcome {
    Done {
        meta: Metadata,
        blake3: String,
        bytes: u64,
        changed: bool,
    },
    Closed,
}

/// Files at least this large have their whole-file BLAKE3 computed on a thread of its own,
/// beside the chunking (the two are the serial part of reading one file).
const PARALLEL_HASH_MIN: u64 = 16 << 20;

fn read_one(
    index: usize,
    path: &PathBuf,
    chunker: &mut Chunker,
    tx: &mpsc::Sender<ReadMsg>,
) -> std::io::Result<ReadOutcome> {
    let file = File::open(path)?;
    let before = file.metadata()?;
    if !before.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    let mut closed = false;
    // Hands one chunk to the workers (and returns it, for the whole-file hasher).
    let mut send = |chunk: &[u8]| -> std::io::Result<Arc<Vec<u8>>> {
        let data = Arc::new(chunk.to_vec());
        let msg = ReadMsg::Chunk {
            file: index,
            data: Arc::clone(&data),
        };
        if tx.blocking_send(msg).is_err() {
            closed = true;
            return Err(std::io::Error::other("pipeline closed"));
        }
        Ok(data)
    };
    let (bytes, hash) = if before.len() >= PARALLEL_HASH_MIN {
        std::thread::scope(|scope| {
            // The hasher gets the same chunk buffers as the workers, in file order.
            let (htx, hrx) = std::sync::mpsc::sync_channel::<Arc<Vec<u8>>>(4);
            let hasher = std::thread::Builder::new()
                .name("jfiv-backup-hash".into())
                .spawn_scoped(scope, move || {
                    let mut hasher = blake3::Hasher::new();
                    for chunk in hrx {
                        hasher.update(&chunk);
                    }
                    hasher.finalize()
                })?;
            let bytes = chunker.run(&file, |chunk| {
                htx.send(send(chunk)?)
                    .map_err(|_| std::io::Error::other("the hashing thread stopped"))
            });
            drop(htx);
            let hash = hasher
                .join()
                .map_err(|_| std::io::Error::other("the hashing thread panicked"))?;
            Ok::<_, std::io::Error>((bytes, hash))
        })?
    } else {
        let mut hasher = blake3::Hasher::new();
        let bytes = chunker.run(&file, |chunk| {
            hasher.update(chunk);
            send(chunk).map(drop)
        });
        (bytes, hasher.finalize())
    };
    if closed {
        return Ok(ReadOutcome::Closed);
    }
    let bytes = bytes?;
    let after = file.metadata()?;
    let m1 = metadata_of(&before);
    let m2 = metadata_of(&after);
    let changed = m1.size != m2.size
        || m1.mtime != m2.mtime
        || m1.mtime_nsec != m2.mtime_nsec
        || m1.ctime != m2.ctime
        || m1.ctime_nsec != m2.ctime_nsec
        || bytes != m1.size;
    Ok(ReadOutcome::Done {
        meta: m1,
        blake3: hash.to_hex().to_string(),
        bytes,
        changed,
    })
}

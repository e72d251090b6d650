//! The tape as a [`BackupTarget`]: the core pipeline writes a snapshot to tonight's tape, then
//! the session is read back and authenticated; a snapshot is restored from a tape set alone.
//!
//! - [`TapeTarget`] is a sequential target (`random_access: false, shared_chunks: false`):
//!   `put_chunk` hands the encrypted chunk to a writer thread that owns the drive and a
//!   [`SessionWriter`], through a bounded queue, so tape writes overlap the pipeline's
//!   compression and encryption; `put_manifest` writes the manifest after the chunks;
//!   [`TapeTarget::finish`] closes the session (catalog, trailer, filemark) and returns the
//!   [`SessionSummary`] for the [`Catalog`](super::Catalog).
//! - [`verify_session`] reads a session back and authenticates every chunk and manifest with
//!   the [`RepositoryKey`], and checks that every chunk the manifests reference is in the
//!   session.
//! - [`restore_session`] extracts a snapshot from a session through the core's [`Extractor`]:
//!   the manifest is at the end of the session, so without a manifest at hand the session is
//!   read twice (first to find and authenticate the manifest, then to feed the chunks).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use jfiv_audit::Clock;
use tokio::sync::{mpsc, oneshot};

use super::catalog::VerifyResult;
use super::device::TapeDevice;
use super::format::{
    SessionItem, SessionOptions, SessionSummary, SessionWriter, VolumeChanger, VolumeRequest,
    read_session,
};
use super::media::MediaLabel;
use crate::{
    BackupTarget, Capabilities, ChunkId, Error, ExtractOptions, ExtractReport, Extractor, Manifest,
    RepositoryKey, Result, Selection, SnapshotId, Stored, format,
};

/// Chunks queued between the pipeline and the tape writer thread (bounds memory: with the
/// default chunker, a few tens of MiB).
const QUEUE: usize = 32;

enum Msg {
    Chunk(ChunkId, Vec<u8>),
    Flush(oneshot::Sender<()>),
    Manifest(SnapshotId, Vec<u8>, oneshot::Sender<super::Result<()>>),
}

type Finished = super::Result<(SessionSummary, Box<dyn TapeDevice>)>;

/// A backup session being written to tape, as a [`BackupTarget`] for [`backup`](crate::backup).
///
/// On tape a session is durable as a whole: [`flush`](BackupTarget::flush) waits until every
/// chunk queued so far is written to the drive, but only the filemark written by
/// [`finish`](TapeTarget::finish) makes the session durable. A session interrupted before
/// (a crash, a power cut) has no trailer and is read as incomplete, never as a backup.
pub struct TapeTarget {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    seen: Mutex<HashSet<ChunkId>>,
    manifests: Mutex<Vec<(SnapshotId, Vec<u8>)>>,
    failed: Arc<Mutex<Option<String>>>,
    writer: Mutex<Option<std::thread::JoinHandle<Finished>>>,
    tape: String,
}

impl std::fmt::Debug for TapeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapeTarget")
            .field("tape", &self.tape)
            .finish_non_exhaustive()
    }
}

impl TapeTarget {
    /// Starts a session on the tape in `device`, whose label must be `label` (the tape planned
    /// tonight and checked with [`identify_for_writing`](super::media::identify_for_writing)).
    /// Later volumes come from `changer`.
    ///
    /// # Errors
    /// [`Error::Tape`] with [`WrongTape`](super::Error::WrongTape),
    /// [`Unlabeled`](super::Error::Unlabeled), [`WriteProtected`](super::Error::WriteProtected),
    /// [`WrongPool`](super::Error::WrongPool)...: nothing is written.
    pub async fn start(
        device: Box<dyn TapeDevice>,
        label: MediaLabel,
        options: SessionOptions,
        changer: Box<dyn VolumeChanger>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Msg>(QUEUE);
        let (started_tx, started_rx) = oneshot::channel::<super::Result<()>>();
        let failed = Arc::new(Mutex::new(None::<String>));
        let failed_w = Arc::clone(&failed);
        let tape = label.barcode.clone();
        let writer = std::thread::Builder::new()
            .name("jfiv-tape-writer".into())
            .spawn(move || -> Finished {
                let mut w =
                    match SessionWriter::start(device, &label, options, changer, Box::new(clock)) {
                        Ok(w) => {
                            let _ = started_tx.send(Ok(()));
                            w
                        }
                        Err(e) => {
                            let reason = e.to_string();
                            let _ = started_tx.send(Err(e));
                            return Err(super::Error::Config { reason });
                        }
                    };
                let set_failed = |e: &super::Error| {
                    let mut f = failed_w
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    f.get_or_insert_with(|| e.to_string());
                };
                let mut manifests = 0usize;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Chunk(id, blob) => {
                            if let Err(e) = w.write_chunk(id.as_bytes(), &blob) {
                                set_failed(&e);
                            }
                        }
                        Msg::Flush(reply) => {
                            let _ = reply.send(());
                        }
                        Msg::Manifest(id, blob, reply) => {
                            let r = w.write_manifest(&id.to_hex(), &blob);
                            if let Err(e) = &r {
                                set_failed(e);
                            } else {
                                manifests += 1;
                            }
                            let _ = reply.send(r);
                        }
                    }
                }
                if manifests == 0 {
                    let summary = w.abort(
                        "the backup ended without a manifest (it failed or was interrupted)",
                    );
                    return Err(super::Error::SessionIncomplete {
                        session: summary.catalog.session,
                        volumes: summary.catalog.volumes.len() as u32,
                        reason: summary.reason.unwrap_or_default(),
                    });
                }
                w.close()
            })
            .map_err(|e| Error::Internal {
                reason: format!("cannot start the tape writer thread: {e}"),
            })?;
        match started_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = writer.join();
                return Err(Error::Tape(e));
            }
            Err(_) => {
                return Err(Error::Internal {
                    reason: "the tape writer thread stopped before starting".into(),
                });
            }
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            seen: Mutex::new(HashSet::new()),
            manifests: Mutex::new(Vec::new()),
            failed,
            writer: Mutex::new(Some(writer)),
            tape,
        })
    }

    fn sender(&self) -> Result<mpsc::Sender<Msg>> {
        self.check_failed()?;
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::Target {
                reason: "the tape session is finished".into(),
            })
    }

    fn check_failed(&self) -> Result<()> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*failed {
            Some(reason) => Err(Error::Target {
                reason: format!("tape session on {} failed: {reason}", self.tape),
            }),
            None => Ok(()),
        }
    }

    fn lost(&self) -> Error {
        match self.check_failed() {
            Err(e) => e,
            Ok(()) => Error::Internal {
                reason: "the tape writer thread stopped".into(),
            },
        }
    }

    /// Closes the session (catalog, trailer, filemark) and returns its summary and the drive
    /// with the last tape loaded. A session without a manifest (the backup failed) is closed as
    /// incomplete and returned as an error.
    ///
    /// # Errors
    /// [`Error::Tape`] with [`SessionIncomplete`](super::Error::SessionIncomplete).
    pub async fn finish(&self) -> Result<(SessionSummary, Box<dyn TapeDevice>)> {
        drop(
            self.tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| Error::Target {
                reason: "the tape session is already finished".into(),
            })?;
        let joined = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| Error::Internal {
                reason: format!("tape writer join: {e}"),
            })?
            .map_err(|_| Error::Internal {
                reason: "the tape writer thread panicked".into(),
            })?;
        joined.map_err(Error::Tape)
    }
}

#[async_trait]
impl BackupTarget for TapeTarget {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            random_access: false,
            shared_chunks: false,
        }
    }

    async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored> {
        let tx = self.sender()?;
        if !self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(*id)
        {
            return Ok(Stored::AlreadyPresent);
        }
        tx.send(Msg::Chunk(*id, blob))
            .await
            .map_err(|_| self.lost())?;
        Ok(Stored::New)
    }

    async fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Ok(self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(id))
    }

    async fn get_chunk(&self, _id: &ChunkId) -> Result<Vec<u8>> {
        Err(Error::Unsupported {
            operation: "reading a chunk back from a tape session being written",
        })
    }

    async fn flush(&self) -> Result<()> {
        let tx = self.sender()?;
        let (reply, wait) = oneshot::channel();
        tx.send(Msg::Flush(reply)).await.map_err(|_| self.lost())?;
        wait.await.map_err(|_| self.lost())?;
        self.check_failed()
    }

    async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()> {
        if self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(m, _)| m == id)
        {
            return Err(Error::Target {
                reason: format!("snapshot {id} is already in this tape session"),
            });
        }
        let tx = self.sender()?;
        let (reply, wait) = oneshot::channel();
        tx.send(Msg::Manifest(*id, blob.clone(), reply))
            .await
            .map_err(|_| self.lost())?;
        wait.await.map_err(|_| self.lost())?.map_err(Error::Tape)?;
        self.manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((*id, blob));
        Ok(())
    }

    async fn list_manifests(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(id, _)| *id)
            .collect())
    }

    async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>> {
        self.manifests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(m, _)| m == id)
            .map(|(_, b)| b.clone())
            .ok_or(Error::NotFound {
                object: crate::Object::Manifest(*id),
            })
    }
}

/// What [`verify_session`] found.
#[derive(Debug)]
pub struct SessionVerification {
    /// The result, as recorded in the catalog.
    pub result: VerifyResult,
    /// The manifests found and authenticated.
    pub manifests: Vec<Manifest>,
    /// The drive, with the last volume loaded (None when reading stopped on an error).
    pub device: Option<Box<dyn TapeDevice>>,
}

/// Reads the session starting at tape file `file` of the tape in `device` back (later volumes
/// from `changer`), authenticates every chunk and manifest with `key` (on all cores), and
/// checks that every chunk referenced by the manifests is in the session. Problems are in the
/// result (`ok == false`, the first error naming tape, file and block, or the chunk); only the
/// inability to read at all is an `Err`.
///
/// # Errors
/// [`Error::Tape`] when the first volume cannot be read at all (no tape, unlabeled).
pub fn verify_session(
    device: Box<dyn TapeDevice>,
    file: u64,
    changer: &mut dyn VolumeChanger,
    key: &RepositoryKey,
    clock: &dyn Clock,
) -> Result<SessionVerification> {
    let started = Instant::now();
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(1);
    let (job_tx, job_rx) = std::sync::mpsc::sync_channel::<(ChunkId, Vec<u8>)>(2 * workers);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut manifests = Vec::new();
    let mut chunks = 0u64;
    let mut bytes = 0u64;
    let outcome = std::thread::scope(|scope| {
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let errors = Arc::clone(&errors);
            let key = key.clone();
            scope.spawn(move || {
                loop {
                    let job = job_rx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((id, blob)) = job else { break };
                    if let Err(e) = format::decode_chunk(&key, &id, &blob) {
                        errors
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(e.to_string());
                    }
                }
            });
        }
        let result = read_session(device, file, changer, &mut |item| {
            match item {
                SessionItem::Header(_) => {}
                SessionItem::Chunk { id, data } => {
                    chunks += 1;
                    bytes += data.len() as u64;
                    seen.insert(ChunkId(*id));
                    let _ = job_tx.send((ChunkId(*id), data.to_vec()));
                }
                SessionItem::Manifest { snapshot, data } => {
                    bytes += data.len() as u64;
                    let decoded = snapshot
                        .parse::<SnapshotId>()
                        .and_then(|id| Manifest::decode(key, &id, data));
                    match decoded {
                        Ok(m) => manifests.push(m),
                        Err(e) => errors
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(format!("manifest of snapshot {snapshot}: {e}")),
                    }
                }
            }
            Ok(())
        });
        drop(job_tx);
        result
    });
    let mut errors = std::mem::take(
        &mut *errors
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for m in &manifests {
        let missing = m
            .chunk_ids()
            .into_iter()
            .filter(|id| !seen.contains(id))
            .count();
        if missing > 0 {
            errors.push(format!(
                "snapshot {}: {missing} referenced chunk(s) are not in the session",
                m.snapshot
            ));
        }
    }
    let device = match outcome {
        Ok((_, device)) => Some(device),
        Err(e @ (super::Error::NoTape { .. } | super::Error::Unlabeled { .. })) if chunks == 0 => {
            return Err(Error::Tape(e));
        }
        Err(e) => {
            errors.insert(0, e.to_string());
            None
        }
    };
    if manifests.is_empty() && errors.is_empty() {
        errors.push("the session holds no manifest".into());
    }
    let result = VerifyResult {
        at: clock.now(),
        ok: errors.is_empty(),
        chunks,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        error: errors.first().cloned().map(|first| {
            if errors.len() > 1 {
                format!("{first} (and {} more problem(s))", errors.len() - 1)
            } else {
                first
            }
        }),
    };
    Ok(SessionVerification {
        result,
        manifests,
        device,
    })
}

/// What to restore from a tape session, and where.
#[derive(Debug)]
pub struct RestoreFromTape<'a> {
    /// The snapshot's manifest, when the caller has it (saves a pass over the tape); otherwise
    /// the session's last authentic manifest is used.
    pub manifest: Option<Manifest>,
    /// What to restore.
    pub selection: &'a Selection,
    /// Where.
    pub dest: &'a Path,
    /// How.
    pub options: ExtractOptions,
}

/// Restores `selection` of the snapshot `snapshot` (or the session's last snapshot) from the
/// session at tape file `file` of the tape in `device` into `dest`.
///
/// `manifest`, when the caller has it, saves the first pass; otherwise the session is read once
/// to find and authenticate the manifest, and `changer` is asked for volume 1 again. Every
/// chunk is authenticated and every file checked by the core's [`Extractor`]; a damaged chunk
/// fails only the files that use it (see the report).
///
/// # Errors
/// [`Error::Tape`] when the session cannot be read or holds no valid manifest; the
/// [`Extractor`]'s errors.
pub fn restore_session(
    device: Box<dyn TapeDevice>,
    file: u64,
    changer: &mut dyn VolumeChanger,
    key: &RepositoryKey,
    request: RestoreFromTape<'_>,
) -> Result<ExtractReport> {
    let RestoreFromTape {
        manifest,
        selection,
        dest,
        options,
    } = request;
    let (manifest, device, session) = match manifest {
        Some(m) => (m, device, None),
        None => {
            let mut found: Option<Manifest> = None;
            let mut first_error: Option<String> = None;
            let (report, dev) = read_session(device, file, changer, &mut |item| {
                if let SessionItem::Manifest { snapshot, data } = item {
                    match snapshot
                        .parse::<SnapshotId>()
                        .and_then(|id| Manifest::decode(key, &id, data))
                    {
                        Ok(m) => found = Some(m),
                        Err(e) => {
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                }
                Ok(())
            })?;
            let Some(m) = found else {
                return Err(Error::Tape(super::Error::NotFound {
                    what: format!(
                        "an authentic manifest in session {}{}",
                        report.session,
                        first_error.map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                }));
            };
            (m, dev, Some(report))
        }
    };
    let mut device = device;
    let mut file = file;
    if let Some(report) = session.as_ref().filter(|r| r.volumes.len() > 1) {
        // Back to volume 1 for the second pass (a single volume is simply re-read).
        let first = &report.volumes[0];
        let _ = device.eject();
        device = changer.next_volume(&VolumeRequest {
            session: report.session,
            volume: 1,
            pool: report
                .catalog
                .as_ref()
                .map_or(super::Pool::Daily, |c| c.pool.clone()),
            used: Vec::new(),
            expected: Some(first.tape.clone()),
        })?;
        file = first.file;
    }
    let mut ex = Extractor::new(key, &manifest, selection, dest, options)?;
    // Chunks are decoded and written on every core while the tape is read.
    ex.start_workers(crate::extract::default_workers())?;
    read_session(device, file, changer, &mut |item| {
        if let SessionItem::Chunk { id, data } = item {
            let id = ChunkId(*id);
            if ex.wants(&id) {
                ex.feed_blob(&id, data);
            }
        }
        Ok(())
    })?;
    Ok(ex.finish())
}

/// A nightly tape backup: what to write, where, and whether to verify it.
#[derive(Debug)]
pub struct TapeJob {
    /// The drive, with tonight's tape loaded (checked with
    /// [`identify_for_writing`](super::media::identify_for_writing)).
    pub device: Box<dyn TapeDevice>,
    /// Tonight's tape's label.
    pub label: MediaLabel,
    /// The session's parameters.
    pub session: SessionOptions,
    /// Gives the next tapes when the session spans several.
    pub changer: Box<dyn VolumeChanger>,
    /// Gives the tapes back, in order, for the read-back verification of a session that spans
    /// several (a single-volume session is re-read from the drive).
    pub verify_changer: Box<dyn VolumeChanger>,
    /// Read the session back and authenticate every chunk after writing. On by default
    /// ([`TapeJob::new`]); turning it off is for benchmarks.
    pub verify: bool,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl TapeJob {
    /// A job with read-back verification on.
    pub fn new(
        device: Box<dyn TapeDevice>,
        label: MediaLabel,
        session: SessionOptions,
        changer: Box<dyn VolumeChanger>,
        verify_changer: Box<dyn VolumeChanger>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            device,
            label,
            session,
            changer,
            verify_changer,
            verify: true,
            clock,
        }
    }
}

/// What [`backup_to_tape`] did.
#[derive(Debug)]
pub struct TapeBackupReport {
    /// The core's backup report (the manifest, counters, warnings).
    pub backup: crate::BackupReport,
    /// The session as written (record it with [`Catalog::record_session`](super::Catalog::record_session)).
    pub summary: SessionSummary,
    /// The read-back verification (record it with
    /// [`Catalog::record_verify`](super::Catalog::record_verify)); `None` when turned off.
    pub verification: Option<VerifyResult>,
}

/// Backs `source` up to tape through the core pipeline, closes the session, then (by default)
/// reads it back and authenticates every chunk.
///
/// A failed verification is reported in [`TapeBackupReport::verification`] (`ok == false`),
/// not as an `Err`: the session is written, and the catalog must say it failed verification.
///
/// # Errors
/// The backup's errors; [`Error::Tape`] when the session could not be started or completed
/// (it is then incomplete on tape).
pub async fn backup_to_tape(
    source: &dyn crate::Source,
    key: &RepositoryKey,
    previous: Option<&Manifest>,
    options: &crate::BackupOptions,
    progress: &dyn crate::Progress,
    job: TapeJob,
) -> Result<TapeBackupReport> {
    let TapeJob {
        device,
        label,
        session,
        changer,
        mut verify_changer,
        verify,
        clock,
    } = job;
    let target = TapeTarget::start(device, label, session, changer, Arc::clone(&clock)).await?;
    let backup = crate::backup(source, &target, key, previous, options, progress).await;
    let finished = target.finish().await;
    let backup = backup?;
    let (summary, mut device) = finished?;
    let verification = if verify {
        let key = key.clone();
        let volumes = summary.catalog.volumes.clone();
        let session_id = summary.catalog.session;
        let pool = summary.catalog.pool.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<VerifyResult> {
            let first = &volumes[0];
            if volumes.len() > 1 {
                let _ = device.eject();
                device = verify_changer.next_volume(&VolumeRequest {
                    session: session_id,
                    volume: 1,
                    pool,
                    used: Vec::new(),
                    expected: Some(first.tape.clone()),
                })?;
            }
            Ok(verify_session(device, first.file, &mut *verify_changer, &key, &*clock)?.result)
        })
        .await
        .map_err(|e| Error::Internal {
            reason: format!("verification task: {e}"),
        })??;
        Some(result)
    } else {
        None
    };
    Ok(TapeBackupReport {
        backup,
        summary,
        verification,
    })
}

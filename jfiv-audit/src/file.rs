//! [`FileLog`]: the file-backed, tamper-evident audit sink.
//!
//! One writer thread owns the active period file. Appenders send their event to it and wait;
//! the writer takes every request queued at that moment as one batch, writes all their lines
//! with one `write`, makes them durable with one `fsync` (group commit), publishes the new
//! durable head ("durable up to seq N") and only then answers each appender.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::format::{self, Checkpoint, Header, Pruned, Seal, SignedEntry};
use crate::retention::{PrunePlan, Retention, plan_prune};
use crate::verify::{self, Limit, PeriodSummary, VerifyReport};
use crate::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, Clock, Error, Origin, Outcome, PeriodScheme,
    Query, Recorded, Result, SystemClock,
};

const MAX_BATCH: usize = 4096;
/// The longest the writer waits to gather a group commit.
const MAX_WINDOW: Duration = Duration::from_micros(500);

fn drain(rx: &mpsc::Receiver<Request>, batch: &mut Vec<Request>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(request) => batch.push(request),
            Err(_) => break,
        }
    }
}

/// How a [`FileLog`] is opened.
#[derive(Debug, Clone)]
pub struct FileLogOptions {
    scheme: PeriodScheme,
    clock: Arc<dyn Clock>,
    origin: Origin,
    log_id: Option<Uuid>,
}

impl Default for FileLogOptions {
    fn default() -> Self {
        Self {
            scheme: PeriodScheme::Monthly,
            clock: Arc::new(SystemClock),
            origin: Origin::System {
                host: "localhost".into(),
            },
            log_id: None,
        }
    }
}

impl FileLogOptions {
    /// Monthly periods, the system clock, events of the log itself from `System { localhost }`.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the log is cut into periods (used when a new period starts).
    pub fn period(mut self, scheme: PeriodScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The clock that decides the current period and stamps seals, checkpoints and the log's own
    /// events.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The origin written in the events the log appends itself (sealed, pruned, recovered,
    /// checkpoint): usually `Origin::System { host }` of the log host.
    pub fn origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// The id of a log being created (default: a random v4 UUID).
    pub fn log_id(mut self, log_id: Uuid) -> Self {
        self.log_id = Some(log_id);
        self
    }
}

/// What [`FileLog::recover`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The period file whose torn last line was cut off.
    pub path: PathBuf,
    /// Where the torn line started (the file's new length).
    pub offset: u64,
    /// Bytes cut off.
    pub len: u64,
    /// The sequence number the torn record would have had (never acknowledged to anyone).
    pub seq: u64,
    /// The `audit-recovered` event appended to say so.
    pub event: Recorded,
}

/// What [`FileLog::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// The plan executed.
    pub plan: PrunePlan,
    /// The `audit-pruned` event appended, if anything was pruned.
    pub event: Option<Recorded>,
}

/// The durable end of the log, as published by the writer after each fsync.
#[derive(Debug, Clone)]
struct Head {
    period: String,
    len: u64,
    records: u64,
    chain: blake3::Hash,
    periods: Vec<PeriodSummary>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    keys: Arc<AuditKeys>,
    log_id: Uuid,
    clock: Arc<dyn Clock>,
    head: Mutex<Head>,
    fsyncs: AtomicU64,
}

impl Shared {
    fn head(&self) -> MutexGuard<'_, Head> {
        // The head is replaced whole under the lock; a panic elsewhere cannot tear it.
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Request {
    Append(AuditEvent, oneshot::Sender<Result<Recorded>>),
    Checkpoint(Actor, oneshot::Sender<Result<Checkpoint>>),
    Prune(Retention, Actor, oneshot::Sender<Result<PruneReport>>),
}

/// The file-backed, tamper-evident audit log (an [`AuditSink`]).
///
/// See the [crate documentation](crate) for the design and the on-disk format
/// ([`format`](crate::format)). One `FileLog` per directory: the directory is locked while it
/// is open. Opening verifies the whole log.
///
/// Dropping the `FileLog` stops its writer thread after the requests already sent.
#[derive(Debug)]
pub struct FileLog {
    shared: Arc<Shared>,
    tx: Option<Mutex<mpsc::Sender<Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl FileLog {
    /// Creates a new, empty log in `dir` (created if missing), with its first period file.
    /// Blocking: call it at start-up or from `spawn_blocking`.
    ///
    /// # Errors
    /// [`Error::NotALog`] if `dir` already holds a log; [`Error::Locked`]; I/O errors.
    pub fn create(dir: &Path, keys: Arc<AuditKeys>, options: FileLogOptions) -> Result<FileLog> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let lock = lock(dir)?;
        if has_period_files(dir)? {
            return Err(Error::NotALog {
                path: dir.to_owned(),
                reason: "already holds an audit log".into(),
            });
        }
        let log_id = options.log_id.unwrap_or_else(Uuid::new_v4);
        let now = options.clock.now();
        let period = options.scheme.period_of(now);
        let header = Header {
            jfiv_audit: 1,
            log_id,
            period: period.clone(),
            first_seq: 0,
            prev_chain: keys.genesis(&log_id).to_hex().to_string(),
            prev_period: None,
            key_fingerprint: keys.fingerprint().to_owned(),
            created_at: now,
        };
        let path = dir.join(format!("{period}.jsonl"));
        let line = header.encode(&keys);
        crate::fsutil::write_new_atomic(&path, &line)?;
        let head = Head {
            period: period.clone(),
            len: line.len() as u64,
            records: 0,
            chain: keys.genesis(&log_id),
            periods: vec![PeriodSummary {
                period,
                first_seq: 0,
                records: 0,
                sealed: false,
                pruned: false,
            }],
        };
        let writer = Writer::new(
            dir,
            keys,
            options,
            log_id,
            lock,
            path,
            head,
            false,
            0,
            header.prev_chain,
        )?;
        Ok(Self::start(writer))
    }

    /// Opens an existing log, after verifying all of it. Blocking.
    ///
    /// # Errors
    /// Any verification error ([`Error::Integrity`], [`Error::WrongKey`], [`Error::TornTail`]:
    /// then see [`recover`](Self::recover)); [`Error::Locked`]; I/O errors.
    pub fn open(dir: &Path, keys: Arc<AuditKeys>, options: FileLogOptions) -> Result<FileLog> {
        let lock = lock(dir)?;
        let writer = Writer::from_scan(dir, keys, options, lock)?;
        Ok(Self::start(writer))
    }

    /// Opens the log in `dir`, or creates it if `dir` holds no log. Blocking.
    ///
    /// # Errors
    /// As [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(
        dir: &Path,
        keys: Arc<AuditKeys>,
        options: FileLogOptions,
    ) -> Result<FileLog> {
        if dir.exists() && has_period_files(dir)? {
            Self::open(dir, keys, options)
        } else {
            Self::create(dir, keys, options)
        }
    }

    /// Opens a log whose last line is torn (see [`Error::TornTail`]): cuts the torn line off and
    /// appends an [`Action::AuditRecovered`] event by `actor` that says where, how many bytes, and
    /// their BLAKE3 hash. A log that is not torn is opened unchanged (`None`). A log damaged in
    /// any other way is refused: recovery never hides tampering. Blocking.
    ///
    /// # Errors
    /// As [`open`](Self::open), except [`Error::TornTail`].
    pub fn recover(
        dir: &Path,
        keys: Arc<AuditKeys>,
        options: FileLogOptions,
        actor: Actor,
    ) -> Result<(FileLog, Option<Recovery>)> {
        let lock = lock(dir)?;
        let torn = match verify::scan(dir, &keys, None, &Default::default(), |_, _| Ok(())) {
            Ok(_) => None,
            Err(Error::TornTail {
                path,
                offset,
                seq,
                len,
            }) => Some((path, offset, seq, len)),
            Err(e) => return Err(e),
        };
        let Some((path, offset, seq, len)) = torn else {
            let writer = Writer::from_scan(dir, keys, options, lock)?;
            return Ok((Self::start(writer), None));
        };
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        let cut = bytes.get(offset as usize..).unwrap_or_default();
        let cut_hash = blake3::hash(cut);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        file.set_len(offset).map_err(Error::io(&path))?;
        file.sync_all().map_err(Error::io(&path))?;
        drop(file);
        let mut writer = Writer::from_scan(dir, keys, options, lock)?;
        let event = AuditEvent::new(
            writer.clock.now(),
            actor,
            writer.origin.clone(),
            Action::AuditRecovered,
        )
        .with_object(path.display().to_string())
        .with_details(format!(
            "cut a torn last line at byte {offset}: {len} bytes, blake3 {cut_hash}; record seq {seq} was never acknowledged",
        ));
        let recorded = writer.append_now(event)?;
        let recovery = Recovery {
            path,
            offset,
            len,
            seq,
            event: recorded,
        };
        Ok((Self::start(writer), Some(recovery)))
    }

    fn start(writer: Writer) -> FileLog {
        let shared = writer.shared.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("jfiv-audit-writer".into())
            .spawn(move || writer.run(rx))
            .ok();
        FileLog {
            shared,
            tx: thread.as_ref().map(|_| Mutex::new(tx)),
            thread,
        }
    }

    /// The log's id.
    pub fn log_id(&self) -> Uuid {
        self.shared.log_id
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Number of records made durable so far (the next sequence number).
    pub fn records(&self) -> u64 {
        self.shared.head().records
    }

    /// How many `fsync`s of record batches the writer has done: with concurrent appenders it is
    /// far below the number of appends (group commit).
    pub fn batches_synced(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    fn send(&self, request: Request) -> Result<()> {
        let closed = || Error::Closed {
            reason: "the writer thread has stopped".into(),
        };
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        tx.lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(request)
            .map_err(|_| closed())
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply))?;
        answer.await.map_err(|_| Error::Closed {
            reason: "the writer thread stopped before answering".into(),
        })?
    }

    /// Makes a signed checkpoint of the log: first appends an [`Action::AuditCheckpoint`] event by
    /// `actor`, then signs the head that includes it. Export it with
    /// [`Checkpoint::write_to`] and keep it away from the log host.
    ///
    /// # Errors
    /// As [`AuditSink::append`].
    pub async fn checkpoint(&self, actor: Actor) -> Result<Checkpoint> {
        self.ask(|reply| Request::Checkpoint(actor, reply)).await
    }

    /// What [`prune`](Self::prune) would delete now (a dry run).
    pub fn plan_prune(&self, retention: Retention) -> PrunePlan {
        let head = self.shared.head().clone();
        plan_prune(
            &head.periods,
            &head.period,
            self.shared.clock.now(),
            retention,
        )
    }

    /// Deletes the files of the periods expired under `retention` (see
    /// [`plan_prune`](crate::plan_prune)). For each: a signed prune marker is written, then the
    /// file is deleted; its seal stays, so verification still proves the chain is complete.
    /// Then an [`Action::AuditPruned`] event by `actor` names the periods.
    ///
    /// # Errors
    /// I/O errors; [`Error::Closed`].
    pub async fn prune(&self, retention: Retention, actor: Actor) -> Result<PruneReport> {
        self.ask(|reply| Request::Prune(retention, actor, reply))
            .await
    }

    /// Verifies the whole log as it is durable now, and against `checkpoints`.
    ///
    /// # Errors
    /// As [`verify`](crate::verify()).
    pub async fn verify(&self, checkpoints: &[Checkpoint]) -> Result<VerifyReport> {
        let shared = self.shared.clone();
        let checkpoints = checkpoints.to_vec();
        blocking(move || {
            let limit = limit_of(&shared);
            let wanted = checkpoints
                .iter()
                .filter(|c| c.records > 0)
                .map(|c| c.records - 1)
                .collect();
            let scan = verify::scan(&shared.dir, &shared.keys, Some(&limit), &wanted, |_, _| {
                Ok(())
            })?;
            let (checked, predating) =
                verify::check_checkpoints(&shared.dir, &shared.keys, &scan, &checkpoints)?;
            let mut report = scan.report;
            report.checkpoints_checked = checked;
            report.checkpoints_predating_retention = predating;
            Ok(report)
        })
        .await
    }
}

fn limit_of(shared: &Shared) -> Limit {
    let head = shared.head();
    Limit {
        period: head.period.clone(),
        len: head.len,
        records: head.records,
        chain: head.chain,
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Closed {
            reason: format!("a verification task failed: {e}"),
        })?
}

impl Drop for FileLog {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl AuditSink for FileLog {
    async fn append(&self, event: AuditEvent) -> Result<Recorded> {
        self.ask(|reply| Request::Append(event, reply)).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<Recorded>> {
        let shared = self.shared.clone();
        let query = query.clone();
        blocking(move || {
            let limit = limit_of(&shared);
            let mut found = Vec::new();
            verify::scan(
                &shared.dir,
                &shared.keys,
                Some(&limit),
                &Default::default(),
                |seq, line| {
                    let record: format::RecordIn =
                        serde_json::from_slice(line).map_err(|e| Error::Integrity {
                            kind: crate::IntegrityKind::Malformed {
                                reason: format!("record {seq} is not an audit event: {e}"),
                            },
                            path: shared.dir.clone(),
                            offset: None,
                            seq: Some(seq),
                        })?;
                    if query.matches(&record.event) {
                        found.push(Recorded {
                            seq: record.seq,
                            event: record.event,
                        });
                    }
                    Ok(())
                },
            )?;
            Ok(found)
        })
        .await
    }
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path, source }),
    }
}

fn has_period_files(dir: &Path) -> Result<bool> {
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let entry = entry.map_err(Error::io(dir))?;
        if entry.path().extension().is_some_and(|e| e == "jsonl") {
            return Ok(true);
        }
    }
    Ok(false)
}

enum Done {
    Append(oneshot::Sender<Result<Recorded>>, Recorded),
    Checkpoint(oneshot::Sender<Result<Checkpoint>>, Checkpoint),
    Prune(oneshot::Sender<Result<PruneReport>>, PruneReport),
}

impl Done {
    fn fail(self, error: Error) {
        match self {
            Done::Append(reply, _) => drop(reply.send(Err(error))),
            Done::Checkpoint(reply, _) => drop(reply.send(Err(error))),
            Done::Prune(reply, _) => drop(reply.send(Err(error))),
        }
    }

    fn succeed(self) {
        match self {
            Done::Append(reply, value) => drop(reply.send(Ok(value))),
            Done::Checkpoint(reply, value) => drop(reply.send(Ok(value))),
            Done::Prune(reply, value) => drop(reply.send(Ok(value))),
        }
    }
}

/// The writer thread's state: the only code that writes period files, seals and markers.
struct Writer {
    shared: Arc<Shared>,
    keys: Arc<AuditKeys>,
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    scheme: PeriodScheme,
    origin: Origin,
    log_id: Uuid,
    _lock: File,
    file: File,
    path: PathBuf,
    /// Head as written (may be ahead of the durable head during a batch).
    head: Head,
    /// The active period is sealed: the next append starts a new period.
    sealed: bool,
    period_first_seq: u64,
    period_prev_chain: String,
    buf: Vec<u8>,
    failed: Option<String>,
    /// How long the last fsync took (sizes the group-commit window).
    last_sync: Duration,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    fn new(
        dir: &Path,
        keys: Arc<AuditKeys>,
        options: FileLogOptions,
        log_id: Uuid,
        lock: File,
        path: PathBuf,
        head: Head,
        sealed: bool,
        period_first_seq: u64,
        period_prev_chain: String,
    ) -> Result<Writer> {
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            keys: keys.clone(),
            log_id,
            clock: options.clock.clone(),
            head: Mutex::new(head.clone()),
            fsyncs: AtomicU64::new(0),
        });
        Ok(Writer {
            shared,
            keys,
            dir: dir.to_owned(),
            clock: options.clock,
            scheme: options.scheme,
            origin: options.origin,
            log_id,
            _lock: lock,
            file,
            path,
            head,
            sealed,
            period_first_seq,
            period_prev_chain,
            buf: Vec::with_capacity(1 << 16),
            failed: None,
            last_sync: Duration::ZERO,
        })
    }

    fn from_scan(
        dir: &Path,
        keys: Arc<AuditKeys>,
        options: FileLogOptions,
        lock: File,
    ) -> Result<Writer> {
        let scan = verify::scan(dir, &keys, None, &Default::default(), |_, _| Ok(()))?;
        let active_summary = scan
            .report
            .periods
            .iter()
            .find(|p| p.period == scan.active.period)
            .cloned();
        let first_seq = active_summary.map_or(0, |p| p.first_seq);
        let (header, _) = read_header_of(&keys, &scan.active.path)?;
        let head = Head {
            period: scan.active.period.clone(),
            len: scan.active.len,
            records: scan.report.records,
            chain: scan.head,
            periods: scan.report.periods.clone(),
        };
        let file_len = std::fs::metadata(&scan.active.path)
            .map_err(Error::io(&scan.active.path))?
            .len();
        if file_len != scan.active.len {
            return Err(Error::integrity(
                crate::IntegrityKind::Malformed {
                    reason: "bytes after the last record".into(),
                },
                &scan.active.path,
                Some(scan.active.len),
                Some(scan.report.records),
            ));
        }
        Writer::new(
            dir,
            keys,
            options,
            scan.report.log_id,
            lock,
            scan.active.path.clone(),
            head,
            scan.active.sealed,
            first_seq,
            header.prev_chain,
        )
    }

    /// The writer loop. Group commit: a batch is every request queued when the writer is free;
    /// when earlier batches showed concurrent appenders (`peak` > 1), the writer also waits a
    /// short window (a quarter of the last fsync time, at most [`MAX_WINDOW`]) for as many
    /// requests as the recent peak, so that appenders just answered join the next fsync
    /// instead of splitting into alternating half batches.
    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut peak = 1usize;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            drain(&rx, &mut batch);
            if peak > 1 && batch.len() < peak {
                let deadline = Instant::now() + (self.last_sync / 4).min(MAX_WINDOW);
                while batch.len() < peak {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(left) {
                        Ok(request) if !left.is_zero() => {
                            batch.push(request);
                            drain(&rx, &mut batch);
                        }
                        Ok(request) => {
                            batch.push(request);
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
            peak = batch.len().max(peak - peak / 8);
            self.process(batch);
        }
    }

    fn process(&mut self, batch: Vec<Request>) {
        let mut done = Vec::with_capacity(batch.len());
        for request in batch {
            if let Some(reason) = &self.failed {
                let error = Error::Closed {
                    reason: reason.clone(),
                };
                match request {
                    Request::Append(_, reply) => drop(reply.send(Err(error))),
                    Request::Checkpoint(_, reply) => drop(reply.send(Err(error))),
                    Request::Prune(_, _, reply) => drop(reply.send(Err(error))),
                }
                continue;
            }
            match request {
                Request::Append(event, reply) => match self.push(event) {
                    Ok(recorded) => done.push(Done::Append(reply, recorded)),
                    Err(e) => drop(reply.send(Err(e))),
                },
                Request::Checkpoint(actor, reply) => match self.checkpoint(actor) {
                    Ok(cp) => done.push(Done::Checkpoint(reply, cp)),
                    Err(e) => drop(reply.send(Err(e))),
                },
                Request::Prune(retention, actor, reply) => match self.prune(retention, actor) {
                    Ok(report) => done.push(Done::Prune(reply, report)),
                    Err(e) => drop(reply.send(Err(e))),
                },
            }
        }
        match self.flush() {
            Ok(()) => done.into_iter().for_each(Done::succeed),
            Err(e) => {
                let text = e.to_string();
                let mut first = Some(e);
                for d in done {
                    d.fail(first.take().unwrap_or_else(|| Error::Closed {
                        reason: text.clone(),
                    }));
                }
            }
        }
    }

    fn fail(&mut self, e: &Error) {
        if self.failed.is_none() {
            self.failed = Some(format!("the audit writer stopped after an error: {e}"));
        }
    }

    /// Writes and fsyncs the pending lines, then publishes the durable head. On error the
    /// writer stops for good (the file may hold a partial batch).
    fn flush(&mut self) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(Error::Closed {
                reason: reason.clone(),
            });
        }
        if !self.buf.is_empty() {
            let started = Instant::now();
            let result = self
                .file
                .write_all(&self.buf)
                .and_then(|()| self.file.sync_data())
                .map_err(Error::io(&self.path));
            self.buf.clear();
            self.last_sync = started.elapsed();
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = result {
                self.fail(&e);
                return Err(e);
            }
        }
        *self.shared.head() = self.head.clone();
        Ok(())
    }

    /// Encodes one record into the batch, starting a new period first if due.
    fn push(&mut self, event: AuditEvent) -> Result<Recorded> {
        self.rotate_if_due()?;
        self.push_record(event)
    }

    fn push_record(&mut self, event: AuditEvent) -> Result<Recorded> {
        let seq = self.head.records;
        let before = self.buf.len();
        let chain =
            match format::encode_record(&self.keys, &self.head.chain, seq, &event, &mut self.buf) {
                Ok(chain) => chain,
                Err(e) => {
                    self.buf.truncate(before);
                    return Err(e);
                }
            };
        self.head.chain = chain;
        self.head.records += 1;
        self.head.len += (self.buf.len() - before) as u64;
        if let Some(p) = self.head.periods.last_mut() {
            p.records += 1;
        }
        Ok(Recorded { seq, event })
    }

    /// Appends one event durably, outside the thread (recovery, before the thread starts).
    fn append_now(&mut self, event: AuditEvent) -> Result<Recorded> {
        let recorded = self.push(event)?;
        self.flush()?;
        Ok(recorded)
    }

    fn system_event(&self, actor: Actor, action: Action) -> AuditEvent {
        AuditEvent::new(self.clock.now(), actor, self.origin.clone(), action)
    }

    fn rotate_if_due(&mut self) -> Result<()> {
        let now = self.clock.now();
        let wanted = self.scheme.period_of(now);
        if !self.sealed && wanted <= self.head.period {
            return Ok(());
        }
        let result = self.rotate(now, wanted);
        if let Err(e) = &result {
            self.fail(e);
        }
        result
    }

    fn rotate(&mut self, now: DateTime<Utc>, wanted: String) -> Result<()> {
        // 1. Make everything of the old period durable.
        self.flush()?;
        let old = self.head.period.clone();
        let old_records = self.head.records - self.period_first_seq;
        // 2. Seal it (unless a crash left it sealed already).
        if !self.sealed {
            let seal = Seal {
                log_id: self.log_id,
                period: old.clone(),
                first_seq: self.period_first_seq,
                records: old_records,
                prev_chain: self.period_prev_chain.clone(),
                final_chain: self.head.chain.to_hex().to_string(),
                sealed_at: now,
                key_fingerprint: self.keys.fingerprint().to_owned(),
            };
            let line = SignedEntry::Seal(seal).encode(&self.keys);
            crate::fsutil::write_new_atomic(&self.dir.join(format!("{old}.seal")), &line)?;
            self.sealed = true;
            if let Some(p) = self.head.periods.last_mut() {
                p.sealed = true;
            }
        }
        // 3. Start the new period: strictly after the old one even if the clock went back.
        let new = if wanted > old {
            wanted
        } else {
            let end = PeriodScheme::bounds(&old).map_or(now, |(_, end)| end);
            self.scheme.period_of(end.max(now))
        };
        let header = Header {
            jfiv_audit: 1,
            log_id: self.log_id,
            period: new.clone(),
            first_seq: self.head.records,
            prev_chain: self.head.chain.to_hex().to_string(),
            prev_period: Some(old.clone()),
            key_fingerprint: self.keys.fingerprint().to_owned(),
            created_at: now,
        };
        let path = self.dir.join(format!("{new}.jsonl"));
        let line = header.encode(&self.keys);
        crate::fsutil::write_new_atomic(&path, &line)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(Error::io(&path))?;
        self.path = path;
        self.sealed = false;
        self.period_first_seq = header.first_seq;
        self.period_prev_chain = header.prev_chain;
        self.head.period = new.clone();
        self.head.len = line.len() as u64;
        self.head.periods.push(PeriodSummary {
            period: new,
            first_seq: self.head.records,
            records: 0,
            sealed: false,
            pruned: false,
        });
        *self.shared.head() = self.head.clone();
        // 4. Say so in the new period.
        let event = self
            .system_event(Actor::new("jfiv-audit", "system"), Action::AuditSealed)
            .with_object(old)
            .with_details(format!(
                "period sealed: {old_records} records ending at seq {}, final chain {}",
                self.head.records as i128 - 1,
                self.head.chain.to_hex()
            ));
        self.push_record(event)?;
        Ok(())
    }

    fn checkpoint(&mut self, actor: Actor) -> Result<Checkpoint> {
        let event = self
            .system_event(actor, Action::AuditCheckpoint)
            .with_details(format!(
                "signed checkpoint covering records 0..{} (this event included)",
                self.head.records + 1
            ));
        self.push(event)?;
        self.flush()?;
        Ok(Checkpoint {
            log_id: self.log_id,
            records: self.head.records,
            chain: self.head.chain.to_hex().to_string(),
            period: self.head.period.clone(),
            time: self.clock.now(),
            key_fingerprint: self.keys.fingerprint().to_owned(),
            signature: String::new(),
        }
        .sign(&self.keys))
    }

    fn prune(&mut self, retention: Retention, actor: Actor) -> Result<PruneReport> {
        // Rotate first, so that an expired active period is sealed before planning.
        self.rotate_if_due()?;
        self.flush()?;
        let now = self.clock.now();
        let plan = plan_prune(&self.head.periods, &self.head.period, now, retention);
        for period in &plan.expired {
            let marker = SignedEntry::Pruned(Pruned {
                log_id: self.log_id,
                period: period.clone(),
                pruned_at: now,
            })
            .encode(&self.keys);
            let marker_path = self.dir.join(format!("{period}.pruned"));
            crate::fsutil::write_new_atomic(&marker_path, &marker)?;
            let file = self.dir.join(format!("{period}.jsonl"));
            std::fs::remove_file(&file).map_err(Error::io(&file))?;
            crate::fsutil::sync_dir(&self.dir)?;
            if let Some(p) = self.head.periods.iter_mut().find(|p| &p.period == period) {
                p.pruned = true;
            }
        }
        let event = if plan.expired.is_empty() {
            None
        } else {
            let retention_text = match retention {
                Retention::Months(m) => format!("{m} months"),
                Retention::Days(d) => format!("{d} days"),
            };
            let event = self
                .system_event(actor, Action::AuditPruned)
                .with_object(plan.expired.join(","))
                .with_outcome(Outcome::Success)
                .with_details(format!(
                    "pruned {} expired period(s), {} records, retention {retention_text}; their signed seals are kept",
                    plan.expired.len(),
                    plan.expired_records
                ));
            Some(self.push(event)?)
        };
        Ok(PruneReport { plan, event })
    }
}

fn read_header_of(keys: &AuditKeys, path: &Path) -> Result<(Header, u64)> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    Ok((Header::decode(keys, path, &bytes[..end])?, end as u64 + 1))
}

//! Verification of a file log: every record, every header, every seal, against checkpoints.
//!
//! [`verify`] needs the secret [`AuditKeys`] (the chain is a MAC). [`verify_seals`] and
//! [`Checkpoint::verify_signature`] need only the public [`AuditVerifyingKey`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::format::{self, Checkpoint, Header, Pruned, Seal, SignedEntry};
use crate::keys::{AuditKeys, AuditVerifyingKey};
use crate::{Action, Error, IntegrityKind, Result};

/// What a successful verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The log's id.
    pub log_id: Uuid,
    /// Records ever appended (the next sequence number), pruned ones included.
    pub records: u64,
    /// Records still present (not pruned).
    pub retained_records: u64,
    /// The chain head (hex): the chain value of the last record.
    pub chain_head: String,
    /// Every period, oldest first, pruned ones included.
    pub periods: Vec<PeriodSummary>,
    /// Checkpoints checked (all of them passed).
    pub checkpoints_checked: usize,
    /// Checkpoints that fall inside pruned periods and could only be checked for their log id
    /// and signature.
    pub checkpoints_predating_retention: usize,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pruned = self.periods.iter().filter(|p| p.pruned).count();
        write!(
            f,
            "audit log {} intact: {} records (seq 0 to {}), {} retained in {} period(s)",
            self.log_id,
            self.records,
            self.records as i128 - 1,
            self.retained_records,
            self.periods.len() - pruned,
        )?;
        if pruned > 0 {
            write!(
                f,
                ", {pruned} pruned period(s) accounted for by their seals"
            )?;
        }
        write!(
            f,
            ", {} checkpoint(s) checked, head {}",
            self.checkpoints_checked,
            &self.chain_head[..16.min(self.chain_head.len())],
        )
    }
}

/// One period of a verified log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeriodSummary {
    /// Its name (`2026-03`).
    pub period: String,
    /// Its first sequence number.
    pub first_seq: u64,
    /// Records it holds (held, if pruned).
    pub records: u64,
    /// Whether it is closed with a valid seal.
    pub sealed: bool,
    /// Whether its file was pruned (its seal and signed prune marker remain).
    pub pruned: bool,
}

/// Checks the whole log in `dir` with its keys, and against every checkpoint given.
///
/// Returns the first problem found, in log order. A torn last line is [`Error::TornTail`], a log
/// written under other keys is [`Error::WrongKey`]; everything else is [`Error::Integrity`] with
/// the file, byte offset and sequence number of the first bad place.
///
/// # Errors
/// As above, and [`Error::Io`] / [`Error::NotALog`].
pub fn verify(dir: &Path, keys: &AuditKeys, checkpoints: &[Checkpoint]) -> Result<VerifyReport> {
    let wanted: HashSet<u64> = checkpoints
        .iter()
        .filter(|c| c.records > 0)
        .map(|c| c.records - 1)
        .collect();
    let scan = scan(dir, keys, None, &wanted, |_, _| Ok(()))?;
    let (checked, predating) = check_checkpoints(dir, keys, &scan, checkpoints)?;
    let mut report = scan.report;
    report.checkpoints_checked = checked;
    report.checkpoints_predating_retention = predating;
    Ok(report)
}

/// Checks the signatures of every seal and prune marker in `dir` with the public key only, and
/// returns the seals, oldest first. This proves which periods were closed and with what final
/// chain value, without any secret; it does not check the records (that needs the MAC key).
///
/// # Errors
/// [`IntegrityKind::BadSeal`] for a bad signature or a prune marker without seal; I/O errors.
pub fn verify_seals(dir: &Path, public: &AuditVerifyingKey) -> Result<Vec<Seal>> {
    let listing = list(dir)?;
    let (seals, _) = read_signed(&listing, public)?;
    let mut seals: Vec<Seal> = seals.into_values().map(|(s, _)| s).collect();
    seals.sort_by_key(|s| s.first_seq);
    Ok(seals)
}

/// The running writer's view of the end of the log, to read the active file consistently.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    pub(crate) period: String,
    pub(crate) len: u64,
    pub(crate) records: u64,
    pub(crate) chain: blake3::Hash,
}

/// Where appending continues.
#[derive(Debug, Clone)]
pub(crate) struct Active {
    pub(crate) path: PathBuf,
    pub(crate) period: String,
    /// Bytes of complete lines (where the next line goes).
    pub(crate) len: u64,
    pub(crate) sealed: bool,
}

pub(crate) struct Scan {
    pub(crate) report: VerifyReport,
    pub(crate) head: blake3::Hash,
    pub(crate) active: Active,
    /// Chain values at the wanted sequence numbers.
    pub(crate) chains: HashMap<u64, blake3::Hash>,
    /// Whether the last record is an `audit-checkpoint` event.
    pub(crate) last_is_checkpoint: bool,
}

struct Listing {
    dir: PathBuf,
    periods: Vec<PathBuf>,
    seals: Vec<PathBuf>,
    pruned: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing> {
    let mut listing = Listing {
        dir: dir.to_owned(),
        periods: vec![],
        seals: vec![],
        pruned: vec![],
    };
    for entry in std::fs::read_dir(dir).map_err(Error::io(dir))? {
        let path = entry.map_err(Error::io(dir))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") => listing.periods.push(path),
            Some("seal") => listing.seals.push(path),
            Some("pruned") => listing.pruned.push(path),
            _ => {}
        }
    }
    listing.periods.sort();
    listing.seals.sort();
    listing.pruned.sort();
    Ok(listing)
}

type Seals = BTreeMap<String, (Seal, PathBuf)>;
type PrunedSet = BTreeMap<String, (Pruned, PathBuf)>;

fn read_signed(listing: &Listing, public: &AuditVerifyingKey) -> Result<(Seals, PrunedSet)> {
    let mut seals = BTreeMap::new();
    let mut pruned = BTreeMap::new();
    let stem = |p: &Path| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned()
    };
    let bad = |path: &Path, reason: String| {
        Error::integrity(IntegrityKind::BadSeal { reason }, path, Some(0), None)
    };
    for path in listing.seals.iter().chain(&listing.pruned) {
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        match SignedEntry::decode(public, path, &bytes)? {
            SignedEntry::Seal(seal) => {
                if seal.period != stem(path) || path.extension() != Some("seal".as_ref()) {
                    return Err(bad(
                        path,
                        format!("seal of {} in the wrong file", seal.period),
                    ));
                }
                seals.insert(seal.period.clone(), (seal, path.clone()));
            }
            SignedEntry::Pruned(p) => {
                if p.period != stem(path) || path.extension() != Some("pruned".as_ref()) {
                    return Err(bad(
                        path,
                        format!("prune marker of {} in the wrong file", p.period),
                    ));
                }
                pruned.insert(p.period.clone(), (p, path.clone()));
            }
        }
    }
    for (period, (_, path)) in &pruned {
        if !seals.contains_key(period) {
            return Err(bad(
                path,
                format!("period {period} marked pruned but has no seal"),
            ));
        }
    }
    Ok((seals, pruned))
}

/// One period in log order: a file, or a pruned period known by its seal.
enum Entry {
    File {
        path: PathBuf,
        header: Header,
        header_len: u64,
    },
    Pruned {
        seal: Seal,
        path: PathBuf,
    },
}

impl Entry {
    fn first_seq(&self) -> u64 {
        match self {
            Entry::File { header, .. } => header.first_seq,
            Entry::Pruned { seal, .. } => seal.first_seq,
        }
    }
}

fn hash_of(hex_text: &str) -> Option<blake3::Hash> {
    blake3::Hash::from_hex(hex_text).ok()
}

/// Reads and checks everything; calls `visit(seq, line)` for each verified record line.
pub(crate) fn scan(
    dir: &Path,
    keys: &AuditKeys,
    limit: Option<&Limit>,
    wanted: &HashSet<u64>,
    mut visit: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<Scan> {
    let listing = list(dir)?;
    let public = keys.verifying_key();
    let (mut seals, pruned) = read_signed(&listing, &public)?;

    // Headers of the period files.
    let mut entries = Vec::new();
    let mut log_id: Option<Uuid> = None;
    for path in &listing.periods {
        let (header, header_len) = read_header(keys, path)?;
        if let Some(id) = log_id
            && id != header.log_id
        {
            return Err(Error::integrity(
                IntegrityKind::BadHeader {
                    reason: format!("period of another log ({})", header.log_id),
                },
                path,
                Some(0),
                None,
            ));
        }
        log_id = Some(header.log_id);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if header.period != stem {
            return Err(Error::integrity(
                IntegrityKind::BadHeader {
                    reason: format!("header of period {} in file {stem}", header.period),
                },
                path,
                Some(0),
                None,
            ));
        }
        if limit.is_some_and(|l| header.period > l.period) {
            continue;
        }
        entries.push(Entry::File {
            path: path.clone(),
            header,
            header_len,
        });
    }
    let Some(log_id) = log_id else {
        return Err(Error::NotALog {
            path: dir.to_owned(),
            reason: "no period file (*.jsonl): not an audit log".into(),
        });
    };
    if let Some(l) = limit {
        // Seals written after the writer's snapshot are not part of this read.
        seals.retain(|period, _| period < &l.period);
    }
    for (period, (seal, path)) in &seals {
        if seal.log_id != log_id {
            return Err(Error::integrity(
                IntegrityKind::BadSeal {
                    reason: format!("seal of another log ({})", seal.log_id),
                },
                path,
                Some(0),
                None,
            ));
        }
        let has_file = entries
            .iter()
            .any(|e| matches!(e, Entry::File { header, .. } if &header.period == period));
        if !has_file {
            if !pruned.contains_key(period) {
                return Err(Error::integrity(
                    IntegrityKind::PeriodRemoved {
                        period: period.clone(),
                    },
                    &listing.dir.join(format!("{period}.jsonl")),
                    None,
                    Some(seal.first_seq),
                ));
            }
            entries.push(Entry::Pruned {
                seal: seal.clone(),
                path: path.clone(),
            });
        }
    }
    entries.sort_by_key(Entry::first_seq);

    let mut expected = 0u64;
    let mut chain = keys.genesis(&log_id);
    let mut chains = HashMap::new();
    let mut periods = Vec::new();
    let mut retained = 0u64;
    let mut prev_period: Option<String> = None;
    let mut active = None;
    let mut last_line: Vec<u8> = Vec::new();
    let n = entries.len();
    for (i, entry) in entries.into_iter().enumerate() {
        let is_last = i + 1 == n;
        match entry {
            Entry::Pruned { seal, path } => {
                check_join(&path, expected, &chain, seal.first_seq, &seal.prev_chain)?;
                let final_chain = hash_of(&seal.final_chain).ok_or_else(|| {
                    Error::integrity(
                        IntegrityKind::BadSeal {
                            reason: "final chain is not hex".into(),
                        },
                        &path,
                        Some(0),
                        None,
                    )
                })?;
                expected = seal.first_seq + seal.records;
                chain = final_chain;
                if seal.records > 0 && wanted.contains(&(expected - 1)) {
                    chains.insert(expected - 1, chain);
                }
                last_line.clear();
                prev_period = Some(seal.period.clone());
                periods.push(PeriodSummary {
                    period: seal.period,
                    first_seq: seal.first_seq,
                    records: seal.records,
                    sealed: true,
                    pruned: true,
                });
            }
            Entry::File {
                path,
                header,
                header_len,
            } => {
                check_join(
                    &path,
                    expected,
                    &chain,
                    header.first_seq,
                    &header.prev_chain,
                )?;
                if header.prev_period != prev_period {
                    return Err(Error::integrity(
                        IntegrityKind::BadHeader {
                            reason: format!(
                                "previous period is {:?}, header says {:?}",
                                prev_period, header.prev_period
                            ),
                        },
                        &path,
                        Some(0),
                        Some(header.first_seq),
                    ));
                }
                let seal = seals.get(&header.period).map(|(s, _)| s);
                if seal.is_none() && !is_last {
                    return Err(Error::integrity(
                        IntegrityKind::MissingSeal {
                            period: header.period.clone(),
                        },
                        &path,
                        None,
                        None,
                    ));
                }
                let file_limit = limit.filter(|l| l.period == header.period).map(|l| l.len);
                let tail = scan_records(
                    keys,
                    &path,
                    header_len,
                    file_limit,
                    is_last && seal.is_none(),
                    &mut expected,
                    &mut chain,
                    wanted,
                    &mut chains,
                    &mut last_line,
                    &mut visit,
                )?;
                let records = expected - header.first_seq;
                retained += records;
                if let Some(seal) = seal {
                    let sealed_end = seal.first_seq + seal.records;
                    if seal.first_seq != header.first_seq {
                        return Err(Error::integrity(
                            IntegrityKind::BadSeal {
                                reason: "seal and period header disagree on the first seq".into(),
                            },
                            &path,
                            Some(0),
                            Some(header.first_seq),
                        ));
                    }
                    if expected < sealed_end {
                        return Err(Error::integrity(
                            IntegrityKind::Truncated {
                                checkpoint_records: sealed_end,
                                log_records: expected,
                            },
                            &path,
                            Some(tail),
                            Some(expected),
                        ));
                    }
                    if expected > sealed_end || hash_of(&seal.final_chain) != Some(chain) {
                        return Err(Error::integrity(
                            IntegrityKind::BadSeal {
                                reason: "the period's records do not match its seal".into(),
                            },
                            &path,
                            Some(tail),
                            Some(sealed_end),
                        ));
                    }
                }
                if is_last {
                    active = Some(Active {
                        path: path.clone(),
                        period: header.period.clone(),
                        len: tail,
                        sealed: seal.is_some(),
                    });
                }
                prev_period = Some(header.period.clone());
                periods.push(PeriodSummary {
                    period: header.period,
                    first_seq: header.first_seq,
                    records,
                    sealed: seal.is_some(),
                    pruned: false,
                });
            }
        }
    }
    let Some(active) = active else {
        return Err(Error::NotALog {
            path: dir.to_owned(),
            reason: "the newest period has no file (every period pruned?)".into(),
        });
    };
    if let Some(l) = limit
        && (l.records != expected || l.chain != chain)
    {
        return Err(Error::integrity(
            IntegrityKind::ChangedUnderWriter {
                writer_records: l.records,
                file_records: expected,
            },
            &active.path,
            Some(active.len),
            Some(expected),
        ));
    }
    let last_is_checkpoint = !last_line.is_empty()
        && serde_json::from_slice::<format::RecordIn>(&last_line)
            .is_ok_and(|r| r.event.action == Action::AuditCheckpoint);
    Ok(Scan {
        report: VerifyReport {
            log_id,
            records: expected,
            retained_records: retained,
            chain_head: chain.to_hex().to_string(),
            periods,
            checkpoints_checked: 0,
            checkpoints_predating_retention: 0,
        },
        head: chain,
        active,
        chains,
        last_is_checkpoint,
    })
}

fn check_join(
    path: &Path,
    expected: u64,
    chain: &blake3::Hash,
    first_seq: u64,
    prev_chain: &str,
) -> Result<()> {
    if first_seq != expected {
        return Err(Error::integrity(
            IntegrityKind::Gap {
                expected_first_seq: expected,
                found_first_seq: first_seq,
            },
            path,
            Some(0),
            Some(expected),
        ));
    }
    if hash_of(prev_chain) != Some(*chain) {
        return Err(Error::integrity(
            IntegrityKind::Gap {
                expected_first_seq: expected,
                found_first_seq: first_seq,
            },
            path,
            Some(0),
            Some(expected),
        ));
    }
    Ok(())
}

fn read_header(keys: &AuditKeys, path: &Path) -> Result<(Header, u64)> {
    let file = File::open(path).map_err(Error::io(path))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)
        .map_err(Error::io(path))?;
    if line.last() != Some(&b'\n') {
        return Err(Error::integrity(
            IntegrityKind::BadHeader {
                reason: "no complete header line".into(),
            },
            path,
            Some(0),
            None,
        ));
    }
    let len = line.len() as u64;
    line.pop();
    Ok((Header::decode(keys, path, &line)?, len))
}

/// Bytes read (and verified) at a time.
const CHUNK: u64 = 8 << 20;
/// Below this many bytes in a chunk, verify on the calling thread.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// What the parallel phase finds about one line, given the previous line's stored chain.
#[derive(Clone, Copy)]
struct LineCheck {
    seq: Option<u64>,
    stored: Option<[u8; 32]>,
    mac_ok: bool,
}

fn stored_chain(line: &[u8]) -> Option<[u8; 32]> {
    let suffix = line.get(line.len().checked_sub(format::CHAIN_SUFFIX_LEN)?..)?;
    let hex_part = suffix
        .strip_prefix(b",\"chain\":\"")?
        .strip_suffix(b"\"}")?;
    let mut stored = [0u8; 32];
    format::decode_lower_hex(hex_part, &mut stored)?;
    Some(stored)
}

/// Splits `bytes` (complete lines, each ending in `\n`) and checks each line against the chain
/// value stored in the line before it (`first_prev` for the first). Each link is independent
/// of the others, so parts of a chunk run in parallel; the sequential pass then checks the
/// sequence numbers and that the first link starts from the verified chain.
fn check_part(keys: &AuditKeys, first_prev: blake3::Hash, bytes: &[u8]) -> Vec<(usize, LineCheck)> {
    let mut out = Vec::with_capacity(bytes.len() / 256 + 1);
    let mut rest = bytes;
    let mut prev = Some(first_prev);
    while !rest.is_empty() {
        // `skip_until` finds the newline with the standard library's fast memchr, no copy.
        let before = rest;
        let n = BufRead::skip_until(&mut rest, b'\n').unwrap_or(before.len());
        let line = &before[..n.saturating_sub(1)];
        let seq = format::record_seq(line);
        let (mac_ok, stored) = match prev.and_then(|p| format::record_chain(keys, &p, line)) {
            Some((computed, stored)) => {
                (computed == blake3::Hash::from_bytes(stored), Some(stored))
            }
            None => (false, stored_chain(line)),
        };
        out.push((
            line.len(),
            LineCheck {
                seq,
                stored,
                mac_ok,
            },
        ));
        prev = stored.map(blake3::Hash::from_bytes);
    }
    out
}

fn check_lines_parallel(
    keys: &AuditKeys,
    first_prev: blake3::Hash,
    bytes: &[u8],
) -> Vec<(usize, LineCheck)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if threads <= 1 || bytes.len() < PARALLEL_MIN_BYTES {
        return check_part(keys, first_prev, bytes);
    }
    // Part boundaries: just after a newline near each 1/threads of the chunk.
    let mut bounds = vec![0];
    for i in 1..threads {
        let target = bytes.len() * i / threads;
        let from = (*bounds.last().unwrap_or(&0)).max(target);
        if let Some(nl) = bytes[from..].iter().position(|&b| b == b'\n') {
            bounds.push(from + nl + 1);
        }
    }
    bounds.push(bytes.len());
    bounds.dedup();
    std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                // The link into this part starts from the chain stored in the line before it.
                let prev = if start == 0 {
                    Some(first_prev)
                } else {
                    stored_chain(&bytes[..start - 1]).map(blake3::Hash::from_bytes)
                };
                scope.spawn(move || match prev {
                    Some(prev) => check_part(keys, prev, &bytes[start..end]),
                    // The line before has no chain value: the sequential pass stops there.
                    None => Vec::new(),
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            // A panic in a checking thread is a bug; fall back to no result for that part,
            // which the sequential pass reports as a malformed line.
            all.extend(handle.join().unwrap_or_default());
        }
        all
    })
}

/// Checks the records of one period file; returns the offset after the last complete line.
#[allow(clippy::too_many_arguments)]
fn scan_records(
    keys: &AuditKeys,
    path: &Path,
    header_len: u64,
    limit: Option<u64>,
    may_be_torn: bool,
    expected: &mut u64,
    chain: &mut blake3::Hash,
    wanted: &HashSet<u64>,
    chains: &mut HashMap<u64, blake3::Hash>,
    last_line: &mut Vec<u8>,
    visit: &mut impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<u64> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    file.seek(SeekFrom::Start(header_len))
        .map_err(Error::io(path))?;
    let mut reader: Box<dyn Read> = match limit {
        Some(len) => Box::new(file.take(len.saturating_sub(header_len))),
        None => Box::new(file),
    };
    let mut offset = header_len; // file offset of the next line
    let mut carry: Vec<u8> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK as usize + 4096);
    loop {
        buf.clear();
        buf.append(&mut carry);
        let read = (&mut reader)
            .take(CHUNK)
            .read_to_end(&mut buf)
            .map_err(Error::io(path))?;
        let eof = read == 0;
        let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        carry.extend_from_slice(&buf[complete..]);
        let lines = &buf[..complete];
        let checks = check_lines_parallel(keys, *chain, lines);
        let mut at = 0usize;
        let mut last: Option<(usize, usize)> = None;
        for (len, check) in &checks {
            let line = &lines[at..at + len];
            match (check.seq, check.stored) {
                (Some(seq), Some(stored)) if seq == *expected && check.mac_ok => {
                    *chain = blake3::Hash::from_bytes(stored);
                    if wanted.contains(&seq) {
                        chains.insert(seq, *chain);
                    }
                    visit(seq, line)?;
                    *expected += 1;
                    offset += *len as u64 + 1;
                    last = Some((at, *len));
                    at += len + 1;
                }
                _ => {
                    let kind = classify(keys, path, offset, *expected, line, check.seq)?;
                    return Err(Error::integrity(kind, path, Some(offset), Some(*expected)));
                }
            }
        }
        if at < lines.len() {
            // A part returned nothing (see check_lines_parallel): report the line there.
            let end = lines[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(lines.len(), |p| at + p);
            let line = &lines[at..end];
            let kind = classify(
                keys,
                path,
                offset,
                *expected,
                line,
                format::record_seq(line),
            )?;
            return Err(Error::integrity(kind, path, Some(offset), Some(*expected)));
        }
        if let Some((start, len)) = last {
            last_line.clear();
            last_line.extend_from_slice(&lines[start..start + len]);
        }
        if eof {
            if carry.is_empty() {
                return Ok(offset);
            }
            if may_be_torn && limit.is_none() {
                return Err(Error::TornTail {
                    path: path.to_owned(),
                    offset,
                    seq: *expected,
                    len: carry.len() as u64,
                });
            }
            return Err(Error::integrity(
                IntegrityKind::Malformed {
                    reason: "incomplete line before the end of the log".into(),
                },
                path,
                Some(offset),
                Some(*expected),
            ));
        }
    }
}

/// Names what is wrong with the line at `offset`, which should be record `expected`.
fn classify(
    keys: &AuditKeys,
    path: &Path,
    offset: u64,
    expected: u64,
    line: &[u8],
    seq: Option<u64>,
) -> Result<IntegrityKind> {
    let Some(found) = seq else {
        return Ok(IntegrityKind::Malformed {
            reason: "not a record line (no leading seq)".into(),
        });
    };
    let Some((_, stored)) = format::record_chain(keys, &blake3::Hash::from_bytes([0; 32]), line)
    else {
        return Ok(IntegrityKind::Malformed {
            reason: "not a record line (no trailing chain value)".into(),
        });
    };
    if found == expected {
        return Ok(IntegrityKind::MacMismatch);
    }
    // Look at the rest of the file: is the next line record `expected + 1`, chained to this
    // line's stored value (then this line is record `expected` with a modified seq)? Does
    // `expected` appear later (reordered) or not at all (deleted)?
    let mut file = File::open(path).map_err(Error::io(path))?;
    file.seek(SeekFrom::Start(offset + line.len() as u64 + 1))
        .map_err(Error::io(path))?;
    let reader = BufReader::new(file);
    let mut first = true;
    let mut expected_later = false;
    for next in reader.split(b'\n') {
        let next = next.map_err(Error::io(path))?;
        let next_seq = format::record_seq(&next);
        if first {
            first = false;
            let chained = format::record_chain(keys, &blake3::Hash::from_bytes(stored), &next)
                .is_some_and(|(c, s)| c == blake3::Hash::from_bytes(s));
            if chained && next_seq == Some(expected + 1) {
                return Ok(IntegrityKind::MacMismatch);
            }
        }
        if next_seq == Some(expected) {
            expected_later = true;
            break;
        }
    }
    Ok(if found > expected && !expected_later {
        IntegrityKind::Deleted { expected, found }
    } else {
        IntegrityKind::Reordered { expected, found }
    })
}

/// Checks checkpoints against a scan; returns (checked, predating retention).
pub(crate) fn check_checkpoints(
    dir: &Path,
    keys: &AuditKeys,
    scan: &Scan,
    checkpoints: &[Checkpoint],
) -> Result<(usize, usize)> {
    let public = keys.verifying_key();
    let report = &scan.report;
    let first_retained = report
        .periods
        .iter()
        .find(|p| !p.pruned)
        .map_or(0, |p| p.first_seq);
    let mut predating = 0;
    for c in checkpoints {
        if c.log_id != report.log_id {
            return Err(Error::integrity(
                IntegrityKind::CrossLog {
                    expected: report.log_id,
                    found: c.log_id,
                },
                dir,
                None,
                Some(c.records),
            ));
        }
        if c.key_fingerprint != keys.fingerprint() {
            return Err(Error::WrongKey {
                path: dir.to_owned(),
                expected: keys.fingerprint().to_owned(),
                found: c.key_fingerprint.clone(),
            });
        }
        if !c.verify_signature(&public) {
            return Err(Error::integrity(
                IntegrityKind::BadCheckpoint {
                    reason: "signature does not verify under this log's key".into(),
                },
                dir,
                None,
                Some(c.records),
            ));
        }
    }
    let Some(newest) = checkpoints.iter().max_by_key(|c| c.records) else {
        return Ok((0, 0));
    };
    if newest.records > report.records {
        let at_older_checkpoint = checkpoints
            .iter()
            .any(|c| c.records == report.records && hash_of(&c.chain) == Some(scan.head));
        let kind = if at_older_checkpoint || scan.last_is_checkpoint {
            IntegrityKind::RolledBack {
                checkpoint_records: newest.records,
                log_records: report.records,
            }
        } else {
            IntegrityKind::Truncated {
                checkpoint_records: newest.records,
                log_records: report.records,
            }
        };
        return Err(Error::integrity(
            kind,
            &scan.active.path,
            Some(scan.active.len),
            Some(report.records),
        ));
    }
    for c in checkpoints {
        let known = if c.records == 0 {
            Some(keys.genesis(&report.log_id))
        } else {
            scan.chains.get(&(c.records - 1)).copied()
        };
        match known {
            Some(chain) if hash_of(&c.chain) == Some(chain) => {}
            Some(_) => {
                return Err(Error::integrity(
                    IntegrityKind::CheckpointMismatch {
                        checkpoint_records: c.records,
                    },
                    dir,
                    None,
                    Some(c.records.saturating_sub(1)),
                ));
            }
            None if c.records <= first_retained => predating += 1,
            None => {
                return Err(Error::integrity(
                    IntegrityKind::CheckpointMismatch {
                        checkpoint_records: c.records,
                    },
                    dir,
                    None,
                    Some(c.records - 1),
                ));
            }
        }
    }
    Ok((checkpoints.len(), predating))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, AuditEvent, Origin, RecordRef};
    use chrono::{TimeZone, Utc};
    use rand::SeedableRng;

    /// A one-period log of `n` records written directly with the format functions (fast enough
    /// to exercise the parallel verification of large chunks in a debug build).
    fn big_log(dir: &Path, keys: &AuditKeys, n: u64) -> PathBuf {
        let log_id = Uuid::from_u128(42);
        let time = Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap();
        let header = Header {
            jfiv_audit: 1,
            log_id,
            period: "2026-03".into(),
            first_seq: 0,
            prev_chain: keys.genesis(&log_id).to_hex().to_string(),
            prev_period: None,
            key_fingerprint: keys.fingerprint().to_owned(),
            created_at: time,
        };
        let mut bytes = header.encode(keys);
        let mut chain = keys.genesis(&log_id);
        for seq in 0..n {
            let event = AuditEvent::new(
                time,
                Actor::new(format!("u{}", seq % 7), "clinician"),
                Origin::Local {
                    workstation: "w".into(),
                },
                Action::RecordRead,
            )
            .with_record(RecordRef::patient(format!("P{seq}")));
            chain = format::encode_record(keys, &chain, seq, &event, &mut bytes).unwrap();
        }
        let path = dir.join("2026-03.jsonl");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn edit(path: &Path, f: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
        let original = std::fs::read(path).unwrap();
        let mut lines: Vec<Vec<u8>> = original
            .split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        f(&mut lines);
        std::fs::write(path, lines.concat()).unwrap();
        original
    }

    fn offset_of(path: &Path, line: usize) -> u64 {
        std::fs::read(path)
            .unwrap()
            .split_inclusive(|&b| b == b'\n')
            .take(line)
            .map(|l| l.len() as u64)
            .sum()
    }

    #[test]
    fn parallel_verification_finds_damage_at_part_boundaries_and_inside_parts() {
        let dir = tempfile::tempdir().unwrap();
        let keys = AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(5));
        let n = 3 * PARALLEL_MIN_BYTES as u64 / 200;
        let path = big_log(dir.path(), &keys, n);
        assert_eq!(verify(dir.path(), &keys, &[]).unwrap().records, n);
        // The first record of the second part, as check_lines_parallel cuts the chunk.
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get().min(8));
        let bytes = std::fs::read(&path).unwrap();
        let header_len = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let records = &bytes[header_len..];
        let target = records.len() / threads.max(2);
        let cut = target + records[target..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let boundary = records[..cut].iter().filter(|&&b| b == b'\n').count();
        for seq in [boundary, boundary - 1, 1, n as usize - 1, 7777] {
            let offset = offset_of(&path, 1 + seq);
            let original = edit(&path, |lines| {
                let line = &mut lines[1 + seq];
                let at = line.len() / 2;
                line[at] ^= 0x01;
            });
            match verify(dir.path(), &keys, &[]) {
                Err(Error::Integrity {
                    seq: found,
                    offset: at,
                    ..
                }) => {
                    assert_eq!(found, Some(seq as u64));
                    assert_eq!(at, Some(offset));
                }
                other => panic!("seq {seq}: {other:?}"),
            }
            std::fs::write(&path, original).unwrap();
        }
        let original = edit(&path, |lines| {
            lines.remove(1 + boundary);
        });
        match verify(dir.path(), &keys, &[]) {
            Err(Error::Integrity { kind, seq, .. }) => {
                assert_eq!(
                    kind,
                    IntegrityKind::Deleted {
                        expected: boundary as u64,
                        found: boundary as u64 + 1
                    }
                );
                assert_eq!(seq, Some(boundary as u64));
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(&path, original).unwrap();
        assert_eq!(verify(dir.path(), &keys, &[]).unwrap().records, n);
    }
}

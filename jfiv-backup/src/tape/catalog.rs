//! The tape catalog: which snapshot is on which tape and file, sizes and verification results.
//!
//! The [`Catalog`] is kept on disk (JSON, replaced atomically). The same facts are on the
//! tapes (each session volume ends with its [`SessionCatalog`]), so when the disk catalog burned
//! with the server, [`scan_tape`] and [`Catalog::merge_scan`] rebuild it from the tapes alone.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::device::{TapeDevice, position_at_file};
use super::format::{
    SessionCatalog, SessionHeader, SessionItem, SessionSummary, SessionTrailer, VolumeEntry,
    VolumeStatus, read_label, read_volume,
};
use super::media::{MediaInfo, MediaLabel};
use super::{Error, Result};

/// The result of reading a session back and authenticating its chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    /// When the verification ended.
    pub at: DateTime<Utc>,
    /// Whether every chunk and the manifest were read and authenticated.
    pub ok: bool,
    /// Chunks authenticated.
    pub chunks: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
    /// The first problem found (tape, file, block), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A session as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// Its catalog (volumes, sizes).
    pub catalog: SessionCatalog,
    /// Whether it is complete (trailer `complete` read or written, manifest present).
    pub complete: bool,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<DateTime<Utc>>,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The verification results, latest last.
    #[serde(default)]
    pub verifications: Vec<VerifyResult>,
}

impl SessionEntry {
    /// Whether the session is complete and its latest verification passed.
    pub fn verified(&self) -> bool {
        self.complete && self.verifications.last().is_some_and(|v| v.ok)
    }
}

/// The off-tape catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Labelled tapes, by barcode.
    pub tapes: BTreeMap<String, MediaLabel>,
    /// Sessions, by id.
    pub sessions: BTreeMap<Uuid, SessionEntry>,
}

impl Catalog {
    /// Loads the catalog at `path`; a missing file is an empty catalog.
    ///
    /// # Errors
    /// [`Error::State`] when the file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self> {
        load_json_state(path)
    }

    /// Saves the catalog to `path` atomically (temporary file, fsync, rename, fsync of the
    /// directory).
    ///
    /// # Errors
    /// [`Error::State`].
    pub fn save(&self, path: &Path) -> Result<()> {
        save_json_state(path, self)
    }

    /// Records a (re)labelled tape: sessions that were on it are gone.
    pub fn add_label(&mut self, label: MediaLabel) {
        self.forget_from(&label.barcode, 0);
        self.tapes.insert(label.barcode.clone(), label);
    }

    /// Drops the sessions with a volume on `tape` at file `file` or later (overwritten).
    fn forget_from(&mut self, tape: &str, file: u64) {
        self.sessions.retain(|_, s| {
            !s.catalog
                .volumes
                .iter()
                .any(|v| v.tape == tape && v.file >= file)
        });
    }

    /// Records a session just written (complete or not). Sessions it overwrote are dropped.
    pub fn record_session(&mut self, summary: &SessionSummary) {
        for v in &summary.catalog.volumes {
            self.forget_from(&v.tape, v.file);
        }
        self.sessions.insert(
            summary.catalog.session,
            SessionEntry {
                catalog: summary.catalog.clone(),
                complete: summary.complete,
                finished: Some(summary.finished),
                reason: summary.reason.clone(),
                verifications: Vec::new(),
            },
        );
    }

    /// Records a verification of `session`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown session.
    pub fn record_verify(&mut self, session: Uuid, result: VerifyResult) -> Result<()> {
        self.sessions
            .get_mut(&session)
            .ok_or_else(|| Error::NotFound {
                what: format!("session {session} in the catalog"),
            })?
            .verifications
            .push(result);
        Ok(())
    }

    /// The inventory the rotation works from: each tape with the start of its latest session.
    pub fn inventory(&self) -> Vec<MediaInfo> {
        self.tapes
            .values()
            .map(|label| MediaInfo {
                label: label.clone(),
                last_written: self
                    .sessions
                    .values()
                    .filter(|s| s.catalog.volumes.iter().any(|v| v.tape == label.barcode))
                    .map(|s| s.catalog.started)
                    .max(),
            })
            .collect()
    }

    /// The sessions with a volume on `tape`, by file number.
    pub fn sessions_on(&self, tape: &str) -> Vec<&SessionEntry> {
        let mut v: Vec<&SessionEntry> = self
            .sessions
            .values()
            .filter(|s| s.catalog.volumes.iter().any(|v| v.tape == tape))
            .collect();
        v.sort_by_key(|s| s.catalog.started);
        v
    }

    /// The latest complete session of `source`, if any.
    pub fn latest_complete(&self, source: &str) -> Option<&SessionEntry> {
        self.sessions
            .values()
            .filter(|s| s.complete && s.catalog.source == source)
            .max_by_key(|s| s.catalog.started)
    }

    /// Merges what a scan of one tape found. Sessions spanning tapes become complete once every
    /// volume is scanned and the last one says complete; anything else stays incomplete, with
    /// the reason.
    pub fn merge_scan(&mut self, scan: &TapeScan) {
        self.tapes
            .insert(scan.label.barcode.clone(), scan.label.clone());
        for f in &scan.files {
            let Some(header) = &f.header else { continue };
            let entry = self
                .sessions
                .entry(header.session)
                .or_insert_with(|| SessionEntry {
                    catalog: SessionCatalog {
                        session: header.session,
                        snapshot: header.snapshot.clone(),
                        source: header.source.clone(),
                        host: header.host.clone(),
                        pool: header.pool.clone(),
                        started: header.started,
                        volumes: Vec::new(),
                        chunks: 0,
                        chunk_bytes: 0,
                        manifest_bytes: None,
                        snapshots: Vec::new(),
                    },
                    complete: false,
                    finished: None,
                    reason: None,
                    verifications: Vec::new(),
                });
            let status = f
                .trailer
                .as_ref()
                .map_or(VolumeStatus::Incomplete, |t| t.status);
            entry.catalog.volumes.retain(|v| v.volume != header.volume);
            entry.catalog.volumes.push(VolumeEntry {
                volume: header.volume,
                tape: scan.label.barcode.clone(),
                label: scan.label.uuid,
                file: f.file,
                chunks: f.chunks,
                chunk_bytes: f.chunk_bytes,
                status,
            });
            entry.catalog.volumes.sort_by_key(|v| v.volume);
            entry.catalog.chunks = entry.catalog.volumes.iter().map(|v| v.chunks).sum();
            entry.catalog.chunk_bytes = entry.catalog.volumes.iter().map(|v| v.chunk_bytes).sum();
            if f.manifest_bytes.is_some() {
                entry.catalog.manifest_bytes = f.manifest_bytes;
            }
            if let Some(last) = f.snapshots.last() {
                entry.catalog.snapshot.clone_from(last);
                for s in &f.snapshots {
                    if !entry.catalog.snapshots.contains(s) {
                        entry.catalog.snapshots.push(s.clone());
                    }
                }
            }
            let vols = &entry.catalog.volumes;
            let contiguous = vols
                .iter()
                .enumerate()
                .all(|(i, v)| v.volume == i as u32 + 1);
            let last_complete = vols
                .last()
                .is_some_and(|v| v.status == VolumeStatus::Complete);
            let middle_continued = vols[..vols.len().saturating_sub(1)]
                .iter()
                .all(|v| v.status == VolumeStatus::Continued);
            entry.complete = contiguous
                && last_complete
                && middle_continued
                && entry.catalog.manifest_bytes.is_some();
            entry.reason = if entry.complete {
                None
            } else if let Some(err) = &f.error {
                Some(err.clone())
            } else if !contiguous || !last_complete {
                Some(
                    "not every volume of the session has been scanned, or it was never finished"
                        .into(),
                )
            } else {
                Some("a volume is marked incomplete".into())
            };
        }
    }
}

/// What a scan found in one tape file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScannedFile {
    /// The tape file number.
    pub file: u64,
    /// Its session header, when readable.
    pub header: Option<SessionHeader>,
    /// Its trailer, when the file is whole.
    pub trailer: Option<SessionTrailer>,
    /// Its catalog record.
    pub catalog: Option<SessionCatalog>,
    /// Chunks read and checked.
    pub chunks: u64,
    /// Chunk bytes read.
    pub chunk_bytes: u64,
    /// Size of the manifest, if the file holds it.
    pub manifest_bytes: Option<u64>,
    /// The snapshot ids of the manifest records the file holds, in order.
    pub snapshots: Vec<String>,
    /// The damage or truncation found (names tape, file and block).
    pub error: Option<String>,
}

/// What a scan of one tape found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeScan {
    /// The tape's label.
    pub label: MediaLabel,
    /// Its session files, in order.
    pub files: Vec<ScannedFile>,
}

impl TapeScan {
    /// Whether any file of the tape is damaged or truncated.
    pub fn has_errors(&self) -> bool {
        self.files.iter().any(|f| f.error.is_some())
    }
}

/// Reads a whole tape: its label, then every session file, checking every block CRC and
/// record BLAKE3 (without the key: chunks are authenticated by a verification with the key).
///
/// A damaged or truncated file is reported in its [`ScannedFile::error`] and the scan goes on
/// with the next file.
///
/// # Errors
/// [`Error::Unlabeled`], [`Error::NoTape`], device errors.
pub fn scan_tape(device: &mut dyn TapeDevice) -> Result<TapeScan> {
    let label = read_label(device)?;
    let mut files = Vec::new();
    let mut file = 1;
    loop {
        match position_at_file(device, file) {
            Ok(()) => {}
            Err(Error::EndOfData { .. }) => break,
            Err(e) => return Err(e),
        }
        if device.status()?.end_of_data {
            break;
        }
        let mut scanned = ScannedFile {
            file,
            header: None,
            trailer: None,
            catalog: None,
            chunks: 0,
            chunk_bytes: 0,
            manifest_bytes: None,
            snapshots: Vec::new(),
            error: None,
        };
        let mut header_seen = None;
        let result = read_volume(device, &label.barcode, file, &mut |item| {
            match item {
                SessionItem::Header(h) => header_seen = Some(h.clone()),
                SessionItem::Chunk { data, .. } => {
                    scanned.chunks += 1;
                    scanned.chunk_bytes += data.len() as u64;
                }
                SessionItem::Manifest { snapshot, data } => {
                    *scanned.manifest_bytes.get_or_insert(0) += data.len() as u64;
                    scanned.snapshots.push(snapshot.to_owned());
                }
            }
            Ok(())
        });
        scanned.header = header_seen;
        match result {
            Ok((_, trailer, catalog)) => {
                scanned.trailer = Some(trailer);
                scanned.catalog = catalog;
            }
            Err(e @ (Error::Damaged { .. } | Error::Truncated { .. })) => {
                scanned.error = Some(e.to_string())
            }
            Err(e) => return Err(e),
        }
        files.push(scanned);
        file += 1;
    }
    Ok(TapeScan { label, files })
}

/// Loads a JSON state file (catalog, location register); a missing file is the default value.
pub(super) fn load_json_state<T: Default + serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let state_err = |reason: String| Error::State {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| state_err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(state_err(e.to_string())),
    }
}

/// Saves a JSON state file atomically (see [`write_atomically`]).
pub(super) fn save_json_state<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| Error::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomically(path, &json)
}

/// Writes `bytes` to `path` atomically: temporary file in the same directory, fsync, rename,
/// fsync of the directory.
///
/// # Errors
/// [`Error::State`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::disk::write_atomic(path, bytes, 0o600).map_err(|e| Error::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

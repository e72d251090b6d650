//! # jfiv-backup: encrypted, deduplicated, verifiable backups to disk and tape
//!
//! Every night the JFIV application server is backed up to a disk in another room, and the
//! database to tapes. Both go through one engine: a [`Source`] is scanned, its files are cut
//! into content-defined chunks (FastCDC), each chunk is named by a keyed BLAKE3 hash
//! ([`ChunkId`]), compressed with zstd, encrypted and authenticated with XChaCha20-Poly1305,
//! and stored on a [`BackupTarget`]; a [`Manifest`] listing every entry with its metadata,
//! chunks and whole-file BLAKE3 is encrypted the same way and written last. Reading back
//! ([`extract`], [`Extractor`]) authenticates every chunk and checks every file's BLAKE3 before
//! the file gets its final name.
//!
//! Main types:
//! - [`RepositoryKey`], with its passphrase-protected [`KeyFile`] and printable [`PaperKey`];
//! - [`Source`]: [`DirectorySource`], [`SqliteSource`], [`CommandSource`];
//! - [`BackupTarget`]: [`MemoryTarget`], [`DiskTarget`] (and the tape target in [`tape`]);
//! - [`backup()`], [`extract()`] / [`Extractor`], [`verify()`], [`plan_retention`] and [`gc`].
//!
//! The byte formats are specified in `FORMAT.md` beside this crate.
//!
//! ```
//! use jfiv_backup::{
//!     BackupOptions, DirectorySource, ExtractOptions, MemoryTarget, NoProgress, RepositoryKey,
//!     Selection, backup, extract,
//! };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let data = tempfile::tempdir()?;
//! std::fs::write(data.path().join("cycle.txt"), b"FIV-2026-004 ponction J+14")?;
//! let key = RepositoryKey::generate();
//! let target = MemoryTarget::new();
//! let source = DirectorySource::new("app-server").root_as(data.path(), "app");
//! let report = backup(&source, &target, &key, None, &BackupOptions::default(), &NoProgress).await?;
//! assert_eq!(report.stats.files, 1);
//!
//! let out = tempfile::tempdir()?;
//! let restored = extract(&target, &key, &report.manifest, &Selection::all(), out.path(),
//!     ExtractOptions::default(), &NoProgress).await?;
//! assert!(restored.is_complete());
//! assert_eq!(std::fs::read(out.path().join("app/cycle.txt"))?, b"FIV-2026-004 ponction J+14");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## Feature flags
//! - `conformance`: exposes the [`BackupTarget`] conformance suite ([`conformance`] module and
//!   the `backup_target_conformance!` macro) so that other targets can run it.

#![deny(rustdoc::broken_intra_doc_links)]

mod audit;
mod backup;
mod chunker;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod disk;
mod error;
mod extract;
pub mod format;
mod id;
mod keys;
pub mod logical;
mod manifest;
mod memory;
mod progress;
mod retention;
mod source;
pub mod tape;
mod target;
mod verify;

pub use audit::AuditHook;
pub use backup::{
    BackupOptions, BackupReport, BackupStats, backup, check_key, hostname, latest_snapshot,
    list_snapshots, load_manifest,
};
pub use chunker::ChunkerParams;
pub use disk::{ChunkFile, Collected, DiskTarget, PackDamage};
pub use error::{Error, Object, Result};
pub use extract::{
    ExtractOptions, ExtractReport, Extractor, FailedFile, FileOutcome, Selection, already_verified,
    extract, safe_relative,
};
pub use id::{ChunkId, SnapshotId};
pub use keys::{KdfParams, KeyFile, KeyFingerprint, PaperKey, RepositoryKey};
pub use manifest::{
    ChunkRef, DatabaseInfo, Entry, EntryKind, MANIFEST_VERSION, Manifest, ManifestStats, Metadata,
    SnapshotSummary, SourceInfo, SourceKind,
};
pub use memory::MemoryTarget;
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use retention::{
    GcOptions, GcReport, RetentionPlan, RetentionPolicy, gc, plan_retention, prune,
};
pub use source::{
    CommandSource, DEFAULT_COMMAND_TIMEOUT, DirectorySource, Scan, Source, SourceEntry,
    SqliteSource, Warning, WarningKind, sqlite_row_counts,
};
pub use target::{BackupTarget, Capabilities, Stored};
pub use verify::{DamagedChunk, Sample, VerifyOptions, VerifyReport, verify};

//! # jfiv-restore: restore plans, the degraded procedure and restore drills
//!
//! The procedure's degraded mode: when the JFIV server is unusable, reinstall a new server
//! and inject the latest backup. This crate says exactly how — which tape to fetch from which
//! room, what to restore where, in which order, how long it should take and how old the data
//! will be — then does it, resumably, and proves the result.
//!
//! Main types:
//! - [`Inventory`]: what backups exist (disk snapshots, tape sessions, from the disk catalog
//!   or rebuilt by a tape scan), where the media are, which keys exist, measured throughputs;
//! - [`RestoreRequest`]: whole server, database only, application only or selected paths;
//!   latest or as of a time; a new root with path remappings;
//! - [`RestorePlan::compute`]: the pure planner; the plan is JSON-serialisable and prints for
//!   a human (a dry run is "compute and print");
//! - [`execute`] with an [`ExecuteContext`]: checkpointed, resumable, audited execution;
//!   post-restore checks ([`check_tree`], [`check_sqlite`], check commands); [`drill`] for
//!   restore drills with an evidence report.
//!
//! ```
//! use std::sync::Arc;
//! use jfiv_audit::{Actor, MemorySink, Origin, SystemClock};
//! use jfiv_backup::{AuditHook, BackupOptions, DirectorySource, MemoryTarget, NoProgress,
//!     RepositoryKey, backup};
//! use jfiv_restore::{ExecuteContext, ExecuteOptions, Inventory, KeyMaterial, KnownKey,
//!     NoRestoreProgress, RestorePlan, RestoreRequest, Scope, execute};
//! # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
//! let server = tempfile::tempdir()?;
//! std::fs::write(server.path().join("jfiv.conf"), b"port=8080")?;
//! let key = RepositoryKey::generate();
//! let target = Arc::new(MemoryTarget::new());
//! let source = DirectorySource::new("app-server").root_as(server.path(), "opt/jfiv");
//! backup(&source, target.as_ref(), &key, None, &BackupOptions::default(), &NoProgress).await?;
//!
//! let mut inventory = Inventory::default();
//! inventory.add_disk_target("disks-room-b", "room B", target.as_ref(), &key, None).await?;
//! inventory.keys.push(KeyMaterial::PaperKey { kept_at: "the director's safe".into() });
//! let new_root = tempfile::tempdir()?;
//! let request = RestoreRequest::whole_server(new_root.path()).with_scope(Scope::ApplicationOnly);
//! let plan = RestorePlan::compute(&inventory, &request, &SystemClock)?;
//! println!("{plan}");
//!
//! let state = tempfile::tempdir()?;
//! let sink = Arc::new(MemorySink::new());
//! let mut ctx = ExecuteContext {
//!     keys: &KnownKey(key),
//!     disk_targets: [("disks-room-b".to_owned(), target as Arc<dyn jfiv_backup::BackupTarget>)].into(),
//!     tapes: None,
//!     database_hooks: Vec::new(),
//!     audit: AuditHook { sink: sink.clone(), actor: Actor::new("op", "backup-operator"),
//!         origin: Origin::System { host: "new-server".into() }, clock: Arc::new(SystemClock) },
//!     progress: &NoRestoreProgress,
//!     options: ExecuteOptions::new(state.path()),
//! };
//! let report = execute(&plan, &mut ctx).await?;
//! assert!(report.is_complete());
//! assert_eq!(std::fs::read(new_root.path().join("opt/jfiv/jfiv.conf"))?, b"port=8080");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## The tape side
//! Tapes are read through the [`TapeAccess`] trait: [`LibraryTapes`] over a
//! [`jfiv_backup::tape::VirtualLibrary`], [`MemoryTapes`] in memory. The tape part of the
//! [`Inventory`] comes from the tape [`Catalog`](jfiv_backup::tape::Catalog), kept on disk or
//! rebuilt by a scan of the tapes ([`Inventory::add_tape_catalog`]).
//!
//! ## Databases
//! A SQLite database is restored as the file the backup copied, then opened, checked with
//! `PRAGMA integrity_check` and its row counts compared with those recorded at backup time.
//! Other engines (the Oracle logical restore) plug in through [`DatabaseHook`].
//!
//! ## Feature flags
//! None.

#![deny(rustdoc::broken_intra_doc_links)]

mod checks;
pub mod demo;
mod drill;
mod error;
mod execute;
mod inventory;
mod library;
mod plan;
mod request;
mod tape;

pub use checks::{
    CheckResult, DatabaseHook, TreeCheck, check_sqlite, check_tree, run_check_command,
};
pub use drill::{DrillFiles, DrillReport, drill};
pub use error::{Error, Result};
pub use execute::{
    ExecuteContext, ExecuteOptions, ExecutionReport, KeyProvider, KnownKey, LostFile,
    NoRestoreProgress, RestoreEvent, RestoreProgress, Secrets, StepOutcome, StepReport, StepStatus,
    execute,
};
pub use inventory::{
    CatalogOrigin, DiskSnapshot, Inventory, KeyMaterial, Location, MeasureKind, Measurement,
    TapeSession, TapeVolume, Verification, disk_verification,
};
pub use library::{LibraryTapes, location_of};
pub use plan::{
    ChosenBackup, KeyPlan, Layout, Medium, Rates, Refused, RestorePlan, Role, Rpo, Step, StepKind,
};
pub use request::{CheckCommand, PathMapping, PointInTime, RestoreRequest, Scope};
pub use secrecy::SecretString;
pub use tape::{MemoryTapes, TapeAccess, TapeItem};

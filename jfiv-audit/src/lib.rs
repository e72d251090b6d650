//! # jfiv-audit: the tamper-evident audit trail of JFIV
//!
//! Every access to a patient's assisted-reproduction file, every login, every backup, tape
//! movement and restore becomes an [`AuditEvent`] written to an [`AuditSink`]. The hospital must
//! be able to show a patient, the CNIL or an HDS auditor who read which record, when and from
//! where, and an insider must not be able to hide an access by editing the trail.
//!
//! Main types:
//! - [`AuditEvent`], with its [`Actor`], [`Origin`], [`Action`], [`RecordRef`] and [`Outcome`];
//! - [`AuditSink`], the trait every trail implements, with its durability contract;
//! - [`MemorySink`], an in-memory sink for tests;
//! - [`Clock`], the injected clock every jfiv crate uses.
//!
//! ```
//! use jfiv_audit::{Action, Actor, AuditEvent, AuditSink, MemorySink, Origin, Query, RecordRef};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sink = MemorySink::new();
//! let event = AuditEvent::new(
//!     chrono::Utc::now(),
//!     Actor::new("dr.martin", "clinician"),
//!     Origin::Local { workstation: "amp-consult-2".into() },
//!     Action::RecordRead,
//! )
//! .with_record(RecordRef::patient("P000123"));
//! sink.append(event).await?;
//! let history = sink.query(&Query::patient("P000123")).await?;
//! assert_eq!(history.len(), 1);
//! assert_eq!(history[0].event.actor.user_id, "dr.martin");
//! # Ok::<(), jfiv_audit::Error>(())
//! # }).unwrap();
//! ```
//!
//! ## Feature flags
//! - `conformance`: exposes the [`AuditSink`] conformance suite so that other implementations
//!   can run it.

#![deny(rustdoc::broken_intra_doc_links)]

pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod error;
mod event;
mod file;
pub mod format;
mod fsutil;
mod keys;
mod memory;
mod retention;
mod sink;
mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, IntegrityKind, Result};
pub use event::{Action, Actor, AuditEvent, Origin, Outcome, RecordRef, UnknownAction};
pub use file::{FileLog, FileLogOptions, PruneReport, Recovery};
pub use format::{Checkpoint, PeriodScheme, Pruned, Seal};
pub use keys::{AuditKeys, AuditVerifyingKey};
pub use memory::MemorySink;
pub use retention::{PrunePlan, Retention, plan_prune};
pub use sink::{AuditSink, Query, Recorded};
pub use verify::{PeriodSummary, VerifyReport, verify, verify_seals};

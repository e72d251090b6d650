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
//! - [`FileLog`], the file-backed tamper-evident log, with its [`AuditKeys`], signed
//!   [`Checkpoint`]s, [`verify()`] and [`Retention`];
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
//! The same with the file log, a checkpoint, and what verification says after tampering:
//!
//! ```
//! use std::sync::Arc;
//! use jfiv_audit::{
//!     verify, Action, Actor, AuditEvent, AuditKeys, AuditSink, Error, FileLog, FileLogOptions,
//!     IntegrityKind, Origin, Query, RecordRef,
//! };
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let tmp = tempfile::tempdir().unwrap();
//! let dir = tmp.path().join("audit-log");
//! let keys = Arc::new(AuditKeys::generate(&mut rand::rngs::OsRng));
//! keys.save(&tmp.path().join("audit.key"))?; // mode 0600
//!
//! let log = FileLog::create(&dir, keys.clone(), FileLogOptions::new())?;
//! for patient in ["P000123", "P000456", "P000123"] {
//!     let event = AuditEvent::new(
//!         chrono::Utc::now(),
//!         Actor::new("dr.martin", "clinician"),
//!         Origin::Local { workstation: "amp-consult-2".into() },
//!         Action::RecordRead,
//!     )
//!     .with_record(RecordRef::patient(patient));
//!     log.append(event).await?; // Ok = written and fsync'd
//! }
//! assert_eq!(log.query(&Query::patient("P000123")).await?.len(), 2);
//! let checkpoint = log.checkpoint(Actor::new("ops", "admin")).await?; // keep it elsewhere
//! drop(log);
//! assert_eq!(verify(&dir, &keys, &[checkpoint.clone()])?.records, 4);
//!
//! // An insider deletes the last lines of the period file...
//! let file = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path())
//!     .find(|p| p.extension().is_some_and(|e| e == "jsonl")).unwrap();
//! let text = std::fs::read_to_string(&file).unwrap();
//! let kept: Vec<&str> = text.lines().take(3).collect(); // header + records 0 and 1
//! std::fs::write(&file, kept.join("\n") + "\n").unwrap();
//! // ...the checkpoint shows it.
//! match verify(&dir, &keys, &[checkpoint]) {
//!     Err(Error::Integrity { kind: IntegrityKind::Truncated { checkpoint_records: 4, log_records: 2 }, .. }) => {}
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), jfiv_audit::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Design of the file log
//!
//! **Records and chain.** The log is a directory of *period* files (monthly by default), each
//! JSON Lines: a header line, then one record per line, `{"seq":N,"event":{..},"chain":"<hex>"}`,
//! greppable and readable by a SIEM. `chain(N)` is a BLAKE3 keyed hash (a MAC) over `chain(N-1)`
//! and the record's canonical bytes (the line without its `chain` field). The chain runs across
//! periods; each period header (itself MAC'd) states the first sequence number and the chain
//! value it continues from, so that periods join without gaps. The exact byte-level format is
//! in [`format`].
//!
//! **Writing.** One writer thread per log; appenders queue their event and wait. The writer
//! writes every queued record in one `write`, makes them durable with one `fsync` (group
//! commit), publishes the durable head, then answers: [`AuditSink::append`] returns `Ok` only
//! once the record is fsync'd, and records never interleave. The directory is locked (`flock`)
//! against a second writer.
//!
//! **Seals and checkpoints.** When a new period starts, the previous one is *sealed*: a file
//! `PERIOD.seal` signed with ed25519 states its first sequence number, record count and final
//! chain value, and an [`Action::AuditSealed`] event opens the new period. A [`Checkpoint`]
//! (signed: log id, record count, chain head, time) can be exported at any time, itself recorded
//! as an [`Action::AuditCheckpoint`] event. A hash chain cannot see its tail being cut off; a
//! checkpoint kept elsewhere can ([`IntegrityKind::Truncated`], [`IntegrityKind::RolledBack`]).
//!
//! **Retention.** CNIL asks that access traces be kept 6 to 12 months and then deleted.
//! [`FileLog::prune`] deletes whole expired periods ([`plan_prune`] is the pure plan), writing for
//! each a signed `PERIOD.pruned` marker and KEEPING its seal, then appends an
//! [`Action::AuditPruned`] event. Verification walks the seals of pruned periods, so it still
//! proves that nothing else was removed.
//!
//! **Verification** ([`verify()`], and [`FileLog::open`], which verifies before appending, and
//! [`AuditSink::query`] on a file log, which verifies as it reads) reports the FIRST problem:
//! file, byte offset and sequence number, and its [`IntegrityKind`]. A log written under other
//! keys is [`Error::WrongKey`] (each header holds the key fingerprint), not tampering. A torn
//! last line (power cut during a write; never acknowledged to anyone) is [`Error::TornTail`];
//! cutting it off is the explicit, audited [`FileLog::recover`]. Each link of the chain can be
//! checked independently from the value stored in the previous line, so verification runs on
//! all cores.
//!
//! # Threat model
//!
//! The adversary is an insider with full access to the log host's files (an administrator, a
//! stolen backup) who wants to hide or invent an access to a patient's file.
//!
//! Without the MAC key, they **cannot**, undetected: modify any byte of a record or header,
//! insert or append a forged record, delete or reorder records, remove or replace a period, or
//! remove a sealed period outside of signed pruning. Without the signing key they cannot forge a
//! seal, a prune marker or a checkpoint.
//!
//! They **can**: delete the log entirely or cut its tail (including whole recent periods), or
//! put back an older copy; these are detected only against a checkpoint exported earlier, so
//! export one regularly (each night's backup tape, a printed copy, another host). They can also
//! make the last record look like a torn write (by cutting it in the middle); recovery then
//! records the cut, and a checkpoint covering the record shows the loss. Changing the key
//! fingerprint in a header makes verification report a wrong key: still a failure.
//!
//! Whoever holds the MAC key can rewrite the whole chain consistently. On a single host the key
//! file is as exposed as the log, so the guarantees above hold against someone who can read the
//! log files but not the key file (mode 0600, owned by the audit service). For the strongest
//! guarantees keep the key file OFF the log host (verification and writing then happen
//! elsewhere, or the checkpoints are kept where the key holder cannot reach them), and check
//! seals and checkpoints with the public key only ([`verify_seals`],
//! [`Checkpoint::verify_signature`]).
//!
//! Not implemented yet: writing through a remote key holder (the writer needs the MAC key
//! locally), and key rotation within a log (a new key means a new log).
//!
//! ## Feature flags
//! - `conformance`: exposes the [`AuditSink`] conformance suite (the `conformance` module and
//!   the `audit_sink_conformance!` macro) so that other implementations can run it.

#![deny(rustdoc::broken_intra_doc_links)]

pub mod clock;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod display;
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

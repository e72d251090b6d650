//! Tapes: devices, the on-tape format, media management, locations and the tape catalog.
//!
//! The procedure backs the JFIV database up every night onto tapes kept in a room away from the
//! server room. This module is everything between a snapshot of the core and a cartridge on the
//! offsite shelf:
//!
//! - [`TapeDevice`], the synchronous `&mut self` trait of one drive, with [`LinuxTape`] (the
//!   Linux `st` driver), [`VirtualTape`] (a file-backed image) and [`MemoryTape`]; a
//!   [`VirtualLibrary`] of named slots stands in for an autoloader or a shelf, its changers
//!   ([`LibraryChanger`], borrowing it, and [`OwnedLibraryChanger`], for a [`TapeJob`]) hand out
//!   the next tapes of a session;
//! - [`format`], the self-describing on-tape format: a media label in file 0, each backup
//!   session as its own tape file(s) of framed, checksummed blocks and records, spanning tapes
//!   at early warning ([`SessionWriter`]), read back by [`read_session`];
//! - [`media`], labels, pools and the GFS rotation ([`plan_tonight`]), which never proposes a
//!   tape under retention or of another pool;
//! - [`location`], where each tape is, every move audited, and the morning check;
//! - [`catalog`], the off-tape [`Catalog`] and [`scan_tape`], which rebuilds it from the tapes;
//! - [`target`], the core's pipeline on tape: [`TapeTarget`] (a sequential
//!   [`BackupTarget`](crate::BackupTarget)), [`backup_to_tape`] (backup, close, read-back
//!   verification on by default), [`verify_session`] and [`restore_session`].
//!
//! The byte layout is in `FORMAT.md`, section "Tape format". [`LinuxTape`] compiles and runs the
//! conformance suite when `JFIV_TEST_TAPE=/dev/nst0` is set; it has not been run against a real
//! drive yet.
//!
//! ```
//! # use jfiv_backup::tape::*;
//! use chrono::{TimeZone, Utc};
//! let mut tape = MemoryTape::new("JFV001L6", 64 << 20, 4 << 20);
//! let label = MediaLabel::new(Uuid::new_v4(), "JFV001L6", Pool::Daily,
//!     Utc.with_ymd_and_hms(2026, 1, 5, 21, 0, 0).unwrap());
//! label_tape(&mut tape, &label, &[], &RotationPolicy::default(), label.created, false)?;
//! assert_eq!(format::read_label(&mut tape)?, label);
//! # Ok::<(), jfiv_backup::tape::Error>(())
//! ```

pub mod catalog;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod device;
pub(crate) mod emulated;
mod error;
pub mod format;
pub mod linux_st;
pub mod location;
pub mod media;
pub mod memory;
pub mod target;
#[path = "virtual.rs"]
pub mod virtual_tape;

#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tests;

pub use catalog::{Catalog, SessionEntry, TapeScan, VerifyResult, scan_tape};
pub use device::{ReadOutcome, TapeDevice, TapeStatus, WriteOutcome};
pub use error::{Error, Result};
pub use format::{
    NoMoreTapes, SessionOptions, SessionSummary, SessionWriter, VolumeChanger, VolumeRequest,
    WritePosition, read_session,
};
pub use linux_st::LinuxTape;
pub use location::{
    Custody, LocationAlert, LocationConfig, LocationRegister, Place, check_locations,
};
pub use media::{
    MediaInfo, MediaLabel, Pool, RotationPolicy, TonightPlan, label_tape, plan_tonight,
};
pub use memory::MemoryTape;
pub use target::{
    RestoreFromTape, SessionVerification, TapeBackupReport, TapeJob, TapeTarget, backup_to_tape,
    restore_session, verify_session,
};
pub use uuid::Uuid;
pub use virtual_tape::{
    ChangerJournal, ChangerLog, ChangerPurpose, LibraryChanger, OwnedLibraryChanger,
    VirtualLibrary, VirtualTape, VirtualTapeSpec,
};

//! Conformance checks every [`Database`] implementation passes, stamped out as one `#[test]`
//! per check by [`logical_database_conformance!`](crate::logical_database_conformance).
//!
//! Each check takes a factory of *empty, writable* databases and, where it restores, a sample
//! dump the implementation can restore (its own dialect, or one it accepts).

// A conformance check fails by panicking, like a test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use super::database::{Database, RestoreMode};
use super::error::Error;
use super::format::{ReadLimits, verify_dump};
use super::transfer::{ExportOptions, RestoreOptions, export, restore};

/// Makes a new empty database.
pub type Factory<'a> = &'a mut dyn FnMut() -> Box<dyn Database>;

fn at() -> ExportOptions {
    ExportOptions::at(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
}

/// An empty database has no objects and exports a valid dump with no table.
///
/// # Panics
/// When the implementation does not conform.
pub fn empty_database_exports_an_empty_valid_dump(new: Factory<'_>) {
    let mut db = new();
    assert!(db.existing_objects().expect("existing_objects").is_empty());
    let (dump, summary) = export(db.as_mut(), Vec::new(), &at()).expect("export");
    let (header, trailer) = verify_dump(&dump[..], ReadLimits::default()).expect("valid dump");
    assert_eq!(header.dialect, db.dialect());
    assert!(trailer.tables.is_empty());
    assert_eq!(summary.dump.trailer, trailer);
}

/// A restore reports exactly the dump's tables and row counts, and the restored database then
/// counts the same rows.
///
/// # Panics
/// When the implementation does not conform.
pub fn restore_reports_the_dumps_row_counts(new: Factory<'_>, sample: &[u8]) {
    let (_, trailer) = verify_dump(sample, ReadLimits::default()).expect("sample dump");
    let mut db = new();
    let report = restore(sample, db.as_mut(), &RestoreOptions::default()).expect("restore");
    assert_eq!(report.tables, trailer.tables);
    assert!(!db.existing_objects().expect("existing_objects").is_empty());
}

/// A second restore into the same database is refused unless told to replace, and replacing
/// gives the same counts.
///
/// # Panics
/// When the implementation does not conform.
pub fn restore_refuses_a_non_empty_target(new: Factory<'_>, sample: &[u8]) {
    let mut db = new();
    let first = restore(sample, db.as_mut(), &RestoreOptions::default()).expect("restore");
    let err = restore(sample, db.as_mut(), &RestoreOptions::default()).expect_err("refused");
    assert!(matches!(err, Error::TargetNotEmpty { .. }), "{err}");
    let replace = RestoreOptions {
        mode: RestoreMode::ReplaceExisting,
        ..RestoreOptions::default()
    };
    let again = restore(sample, db.as_mut(), &replace).expect("replace");
    assert_eq!(first.tables, again.tables);
}

/// A dump whose hash does not match is an integrity error.
///
/// # Panics
/// When the implementation does not conform.
pub fn restore_rejects_a_damaged_dump(new: Factory<'_>, sample: &[u8]) {
    let mut damaged = sample.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x80;
    let mut db = new();
    let err = restore(&damaged[..], db.as_mut(), &RestoreOptions::default()).expect_err("damaged");
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
}

/// Stamps one `#[test]` per conformance check for a [`Database`] implementation.
///
/// `$factory` is an expression of type `impl FnMut() -> Box<dyn Database>` making empty
/// databases, `$sample` an expression giving a `Vec<u8>` dump they can restore.
#[macro_export]
macro_rules! logical_database_conformance {
    ($name:ident, $factory:expr, $sample:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::logical::conformance as c;

            #[test]
            fn empty_database_exports_an_empty_valid_dump() {
                c::empty_database_exports_an_empty_valid_dump(&mut $factory);
            }
            #[test]
            fn restore_reports_the_dumps_row_counts() {
                c::restore_reports_the_dumps_row_counts(&mut $factory, &$sample);
            }
            #[test]
            fn restore_refuses_a_non_empty_target() {
                c::restore_refuses_a_non_empty_target(&mut $factory, &$sample);
            }
            #[test]
            fn restore_rejects_a_damaged_dump() {
                c::restore_rejects_a_damaged_dump(&mut $factory, &$sample);
            }
        }
    };
}

//! # jfiv: protection of the data of an assisted-reproduction (AMP) unit
//!
//! A facade over the four jfiv crates, so that the examples and the integration tests (the
//! executable specification of the hospital's procedure) see one name:
//!
//! - [`audit`]: the tamper-evident audit trail ([`jfiv_audit`]);
//! - [`auth`]: authentication, profiles and remote access ([`jfiv_auth`]);
//! - [`backup`]: encrypted, deduplicated backups to disk and tape ([`jfiv_backup`]);
//! - [`restore`]: restore plans, the degraded procedure and drills ([`jfiv_restore`]).
//!
//! And the composition a hospital runs:
//!
//! - [`site`]: the site configuration file (`examples/hospital.toml`), validated with line
//!   numbers before anything runs;
//! - [`demo`]: a synthetic demo site (obviously fake patients, cycles, embryos; an
//!   application-server tree);
//! - [`monitor`]: the Nagios/Centreon evaluation of a site's state (a pure function);
//! - [`nightly`]: the nightly job (database to tape, application to disk, retention, verify).

#![deny(rustdoc::broken_intra_doc_links)]

pub use jfiv_audit as audit;
pub use jfiv_auth as auth;
pub use jfiv_backup as backup;
pub use jfiv_restore as restore;

pub mod demo;
pub mod monitor;
pub mod nightly;
pub mod site;

//! # jfiv-auth (work in progress)
//!
//! | profile | read-administrative | write-administrative | read-medical | write-medical | export-abm | run-backup | run-restore | read-audit-trail | manage-accounts |
//! |---|---|---|---|---|---|---|---|---|---|
//! | `secretary` | x | x |   |   |   |   |   |   |   |
//! | `clinician` | x | x | x | x | x |   |   |   |   |
//! | `biologist` | x |   | x | x | x |   |   |   |   |
//! | `midwife` | x |   | x | x |   |   |   |   |   |
//! | `it-administrator` |   |   |   |   |   |   | x |   | x |
//! | `backup-operator` |   |   |   |   |   | x |   |   |   |
//! | `auditor` |   |   |   |   |   |   |   | x |   |

#![deny(rustdoc::broken_intra_doc_links)]

mod authenticator;
mod credentials;
mod error;
pub mod lockout;
mod password;
mod profile;
mod random;
pub mod remote;
pub mod session;

pub use authenticator::{Authenticator, Identity, Notice};
pub use credentials::{ConnectionContext, Credentials};
pub use error::{Concealed, Error, ErrorKind, FailureReason, Result};
pub use lockout::{LockoutPolicy, LockoutTracker};
pub use password::{HashParams, PasswordPolicy};
pub use profile::{Permission, Profile, RoleMapping};
pub use random::Randomness;
pub use remote::{AccessClass, IdentityField, Refusal, RemoteAccessPolicy};
pub use session::{Session, SessionInfo, SessionPolicy, SessionToken, Sessions};

/// Placeholder until the gate lands.
pub type AccessGate = ();

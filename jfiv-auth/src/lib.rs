//! # jfiv-auth: who may use JFIV, from where, with which profile
//!
//! The hospital's procedure says: access to JFIV is only by a personal login and password; what
//! a user may do depends on their profile (secretary, clinician, ...); remote users (the
//! gynecologists' offices of the AMP centre, the partner laboratory) first come through a VPN
//! with a security certificate, then authenticate against the Oracle database with their name,
//! password and database. French rules (PGSSI-S) count a VPN connection as remote access, which
//! needs two factors of different kinds; the certificate counts only if it is personal and
//! revocable. This crate enforces all of that in one place.
//!
//! Main types:
//! - [`Authenticator`]: credentials + connection -> [`Identity`] (user and [`Profile`]), with
//!   its conformance suite; implemented by [`LocalAccounts`] (argon2id file store) and
//!   `OracleAuthenticator` (feature `oracle`);
//! - [`RemoteAccessPolicy`]: hospital LAN, VPN pool, and the personal client certificate
//!   (chain to the hospital CA, validity, clientAuth, CRL, same person as the login);
//! - [`AccessGate`]: the audited composition (remote-access check -> throttling and lockout
//!   -> authenticator -> profile -> [`Session`]), writing every decision to a
//!   [`jfiv_audit::AuditSink`] and refusing the login when the audit trail does not take it;
//! - [`Profile`] and [`Permission`]: the fixed JFIV matrix below; [`RoleMapping`] maps Oracle
//!   roles to profiles (TOML).
//!
//! A wrong password, an unknown user and a locked or throttled account all give the same
//! [`Error::InvalidCredentials`], in comparable time; the precise reason goes to the audit trail.
//!
//! ```
//! use std::sync::Arc;
//! use jfiv_audit::{AuditSink, ManualClock, MemorySink, Query, Action};
//! use jfiv_auth::{
//!     AccessGate, ConnectionContext, Credentials, ErrorKind, LocalAccounts, LocalOptions,
//!     Permission, Profile, RemoteAccessPolicy,
//! };
//! use secrecy::SecretString;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let accounts = LocalAccounts::open(dir.path().join("accounts.json"), LocalOptions::default())?;
//! accounts.create_account(
//!     "s.durand",
//!     Profile::Secretary,
//!     &SecretString::from("Accueil-AMP#2026".to_owned()),
//! )?;
//!
//! let policy = RemoteAccessPolicy::builder().lan("10.1.0.0/16".parse()?).build()?;
//! let sink = Arc::new(MemorySink::new());
//! let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
//! let gate = AccessGate::new(accounts, policy, sink.clone(), clock);
//!
//! let lan = ConnectionContext::new("10.1.4.20".parse()?).with_workstation("amp-accueil-1");
//! let session = gate
//!     .login(&Credentials::new("s.durand", "Accueil-AMP#2026", ""), &lan)
//!     .await?;
//! assert_eq!(session.info.profile, Profile::Secretary);
//! gate.require(&session.token, Permission::WriteAdministrative).await?;
//! let denied = gate.require(&session.token, Permission::ReadMedical).await.unwrap_err();
//! assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
//!
//! let wrong = gate
//!     .login(&Credentials::new("s.durand", "accueil", ""), &lan)
//!     .await
//!     .unwrap_err();
//! assert_eq!(wrong.to_string(), "invalid user name, password or database");
//!
//! let trail = sink.query(&Query::actor("s.durand")).await?;
//! let actions: Vec<Action> = trail.iter().map(|r| r.event.action).collect();
//! assert_eq!(actions, [Action::LoginSuccess, Action::AccessRefused, Action::LoginFailure]);
//! assert!(trail[2].event.details.contains("wrong password"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! ## The profile x permission matrix
//!
//! `x` marks what each profile may do ([`Profile::permissions`]; a test checks this table
//! against the code, cell by cell). Technical profiles never see medical content, and
//! whoever touches medical content can neither read the audit trail nor restore.
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
//!
//! (`biologist` covers the laboratory staff, `midwife` the nurses; `export-abm` is the
//! Agence de la Biomédecine dossier.)
//!
//! ## Numbers, and where they come from
//! - Password hashes: argon2id, at least m = 19 MiB, t = 2, p = 1, 128-bit salt (OWASP).
//! - Password policy ([`PasswordPolicy`], CNIL deliberation 2022-100): 12 characters of 4
//!   classes by default; 8 of 3 when throttling applies; a list of common passwords refused.
//! - Throttling ([`LockoutPolicy`]): after 5 failures a wait of 1 minute, doubling; at most 25
//!   failures in 24 hours; lock after 10, for 1 hour or until an administrator unlocks.
//! - Sessions ([`SessionPolicy`]): 256-bit random tokens, 30 minutes idle, 4 hours at most.
//!
//! ## Feature flags
//! - `oracle`: `OracleAuthenticator`, through the `oracle` crate. It builds without Oracle
//!   software; at run time it needs Oracle Instant Client (without it every login fails with
//!   [`Error::OracleClientMissing`], which says so).
//! - `conformance`: exposes the [`Authenticator`] conformance suite (`conformance` module and
//!   the `authenticator_conformance!` macro) to other implementations.

#![deny(rustdoc::broken_intra_doc_links)]

mod authenticator;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod credentials;
mod error;
mod gate;
mod local;
pub mod lockout;
#[cfg(feature = "oracle")]
mod oracle;
mod password;
mod profile;
mod random;
pub mod remote;
pub mod session;

pub use authenticator::{Authenticator, Identity, Notice};
pub use credentials::{ConnectionContext, Credentials};
pub use error::{Concealed, Error, ErrorKind, FailureReason, Result};
pub use gate::AccessGate;
pub use local::{AccountSummary, LocalAccounts, LocalOptions};
pub use lockout::{LockoutPolicy, LockoutTracker};
#[cfg(feature = "oracle")]
pub use oracle::OracleAuthenticator;
pub use password::{HashParams, PasswordPolicy};
pub use profile::{Permission, Profile, RoleMapping};
pub use random::Randomness;
pub use remote::{AccessClass, IdentityField, Refusal, RemoteAccessPolicy};
pub use session::{Session, SessionInfo, SessionPolicy, SessionToken, Sessions};

/// The secret-string type of passwords, re-exported so that callers need not depend on
/// `secrecy` themselves.
pub use secrecy::SecretString;

/// The DER certificate type of [`ConnectionContext::client_chain`], re-exported.
pub use rustls_pki_types::CertificateDer;

//! The crate's error type.
//!
//! A wrong password, an unknown user and a locked or throttled account all give
//! [`Error::InvalidCredentials`] with the same message and the same `Debug` text; the precise
//! reason travels inside, in a [`Concealed`], for the audit trail only.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::{Permission, Profile, Refusal};

/// The precise reason of a refused login. Goes to the audit trail, never to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// No account has this user name.
    UnknownUser,
    /// The account exists and the password is wrong.
    WrongPassword,
    /// The database named in the credentials is not the one this authenticator serves.
    UnknownDatabase,
    /// The password was empty.
    EmptyPassword,
    /// Too many recent failures: no attempt is checked before `until`.
    Throttled {
        /// When the next attempt will be checked.
        until: DateTime<Utc>,
    },
    /// The daily failure budget is spent: no attempt is checked before `until`.
    DailyLimit {
        /// When the oldest failure of the window leaves it.
        until: DateTime<Utc>,
    },
    /// The account is locked, until `until` or, when `None`, until an administrator unlocks it.
    Locked {
        /// End of the lock, if it ends by itself.
        until: Option<DateTime<Utc>>,
    },
    /// The database refused the credentials (ORA-01017).
    OracleInvalidCredentials,
    /// The database account is locked (ORA-28000).
    OracleAccountLocked,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::UnknownUser => f.write_str("unknown user"),
            FailureReason::WrongPassword => f.write_str("wrong password"),
            FailureReason::UnknownDatabase => f.write_str("unknown database"),
            FailureReason::EmptyPassword => f.write_str("empty password"),
            FailureReason::Throttled { until } => {
                write!(f, "throttled after repeated failures until {until}")
            }
            FailureReason::DailyLimit { until } => {
                write!(f, "daily failure limit reached, refused until {until}")
            }
            FailureReason::Locked { until: Some(t) } => write!(f, "account locked until {t}"),
            FailureReason::Locked { until: None } => {
                f.write_str("account locked until an administrator unlocks it")
            }
            FailureReason::OracleInvalidCredentials => {
                f.write_str("ORA-01017: invalid username/password")
            }
            FailureReason::OracleAccountLocked => f.write_str("ORA-28000: the account is locked"),
        }
    }
}

/// Holds a [`FailureReason`] without showing it: its `Debug` is the same for every reason, so
/// that logging the user-facing error reveals nothing. Read it with [`Concealed::reason`] for
/// the audit trail only.
#[derive(Clone, PartialEq, Eq)]
pub struct Concealed(FailureReason);

impl Concealed {
    /// Wraps `reason`.
    pub fn new(reason: FailureReason) -> Self {
        Self(reason)
    }

    /// The precise reason, for the audit trail. Never show it to the user.
    pub fn reason(&self) -> &FailureReason {
        &self.0
    }
}

impl fmt::Debug for Concealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Concealed(see the audit trail)")
    }
}

/// Errors of authentication, access policy, sessions and account files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wrong password, unknown user, locked or throttled account: the user is told nothing more.
    #[error("invalid user name, password or database")]
    InvalidCredentials(Concealed),
    /// The connection was refused before any password was checked (origin or certificate).
    #[error("access refused: {0}")]
    AccessRefused(Refusal),
    /// The password has expired (ORA-28001, or a local account flagged so).
    #[error("the password of {user} has expired: it must be changed before logging in")]
    PasswordExpired {
        /// The user.
        user: String,
    },
    /// The user authenticated but holds no role that maps to a JFIV profile.
    #[error(
        "user {user} has no JFIV role (session roles: {roles:?}); ask the Oracle DBA to grant one of {expected:?}"
    )]
    NoJfivRole {
        /// The user.
        user: String,
        /// The roles the session has.
        roles: Vec<String>,
        /// The roles the mapping knows.
        expected: Vec<String>,
    },
    /// The user's roles map to several profiles.
    #[error(
        "user {user} has roles of several JFIV profiles ({profiles:?}); the DBA must leave one"
    )]
    AmbiguousProfile {
        /// The user.
        user: String,
        /// The profiles found.
        profiles: Vec<Profile>,
    },
    /// The database could not be reached (listener down, TNS name unknown, network).
    #[error("database {database:?} is unavailable: {detail}")]
    DatabaseUnavailable {
        /// The connect string.
        database: String,
        /// The Oracle message (contains no password).
        detail: String,
    },
    /// DPI-1047: no Oracle client library on this machine.
    #[error(
        "the Oracle client library cannot be loaded on this machine: install Oracle Instant Client (basic or basic-light) and put it on the library path (ldconfig or LD_LIBRARY_PATH) [{detail}]"
    )]
    OracleClientMissing {
        /// The ODPI-C message.
        detail: String,
    },
    /// Another Oracle error.
    #[error("Oracle error {code:?}: {message}")]
    Oracle {
        /// The ORA- or DPI- code when there is one.
        code: Option<i32>,
        /// The message.
        message: String,
    },
    /// The session token is unknown, closed or expired.
    #[error("the session is unknown or has expired; log in again")]
    InvalidSession,
    /// The profile lacks the permission.
    #[error("permission denied: the {profile} profile may not {permission}")]
    PermissionDenied {
        /// The profile.
        profile: Profile,
        /// The permission asked for.
        permission: Permission,
    },
    /// A new password does not meet the password policy.
    #[error("password refused by the policy: {problem}")]
    WeakPassword {
        /// What is wrong.
        problem: String,
    },
    /// An account with this name already exists.
    #[error("an account named {username} already exists")]
    AccountExists {
        /// The name.
        username: String,
    },
    /// No account has this name (administrative operations only; a login gets
    /// [`Error::InvalidCredentials`]).
    #[error("no account named {username}")]
    NoSuchAccount {
        /// The name.
        username: String,
    },
    /// I/O on the account file.
    #[error("account file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The account file is not what this crate writes.
    #[error("account file {path} is malformed: {detail}")]
    AccountFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A configuration (policy, role mapping, CA, CRL) is unusable.
    #[error("invalid {what}: {detail}")]
    Config {
        /// What was being configured.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// Password hashing failed (bad parameters).
    #[error("password hashing failed: {detail}")]
    Hashing {
        /// The argon2 error.
        detail: String,
    },
    /// The audit trail did not take the record, so the access is refused (fail closed).
    #[error("the audit trail is unavailable, access refused")]
    AuditUnavailable {
        /// The sink's error.
        #[source]
        source: jfiv_audit::Error,
    },
    /// A blocking task panicked or was cancelled.
    #[error("internal error: {detail}")]
    Internal {
        /// What happened.
        detail: String,
    },
}

/// The kind of an [`Error`], for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each kind is documented on the Error variant of the same name
pub enum ErrorKind {
    InvalidCredentials,
    AccessRefused,
    PasswordExpired,
    NoJfivRole,
    AmbiguousProfile,
    DatabaseUnavailable,
    OracleClientMissing,
    Oracle,
    InvalidSession,
    PermissionDenied,
    WeakPassword,
    AccountExists,
    NoSuchAccount,
    Io,
    AccountFile,
    Config,
    Hashing,
    AuditUnavailable,
    Internal,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidCredentials(_) => ErrorKind::InvalidCredentials,
            Error::AccessRefused(_) => ErrorKind::AccessRefused,
            Error::PasswordExpired { .. } => ErrorKind::PasswordExpired,
            Error::NoJfivRole { .. } => ErrorKind::NoJfivRole,
            Error::AmbiguousProfile { .. } => ErrorKind::AmbiguousProfile,
            Error::DatabaseUnavailable { .. } => ErrorKind::DatabaseUnavailable,
            Error::OracleClientMissing { .. } => ErrorKind::OracleClientMissing,
            Error::Oracle { .. } => ErrorKind::Oracle,
            Error::InvalidSession => ErrorKind::InvalidSession,
            Error::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Error::WeakPassword { .. } => ErrorKind::WeakPassword,
            Error::AccountExists { .. } => ErrorKind::AccountExists,
            Error::NoSuchAccount { .. } => ErrorKind::NoSuchAccount,
            Error::Io { .. } => ErrorKind::Io,
            Error::AccountFile { .. } => ErrorKind::AccountFile,
            Error::Config { .. } => ErrorKind::Config,
            Error::Hashing { .. } => ErrorKind::Hashing,
            Error::AuditUnavailable { .. } => ErrorKind::AuditUnavailable,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// A refused login with its concealed reason.
    pub fn invalid_credentials(reason: FailureReason) -> Self {
        Error::InvalidCredentials(Concealed::new(reason))
    }

    /// The precise reason of an [`Error::InvalidCredentials`], for the audit trail.
    pub fn failure_reason(&self) -> Option<&FailureReason> {
        match self {
            Error::InvalidCredentials(c) => Some(c.reason()),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_credentials_look_the_same_whatever_the_reason() {
        let reasons = [
            FailureReason::UnknownUser,
            FailureReason::WrongPassword,
            FailureReason::Locked { until: None },
            FailureReason::Throttled {
                until: DateTime::<Utc>::MIN_UTC,
            },
            FailureReason::OracleAccountLocked,
        ];
        let first = Error::invalid_credentials(FailureReason::WrongPassword);
        for r in reasons {
            let e = Error::invalid_credentials(r.clone());
            assert_eq!(e.to_string(), first.to_string());
            assert_eq!(format!("{e:?}"), format!("{first:?}"));
            assert_eq!(e.kind(), first.kind());
            assert_eq!(e.failure_reason(), Some(&r));
        }
    }
}

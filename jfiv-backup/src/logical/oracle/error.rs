//! Oracle failures, and their mapping to typed errors with messages an operator can act on.

use secrecy::{ExposeSecret, SecretString};

/// The code of a failure reported by the Oracle client stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureCode {
    /// `ORA-nnnnn` from the server or OCI.
    Ora(i32),
    /// `DPI-nnnn` from ODPI-C (client side).
    Dpi(i32),
    /// No code (driver-level error: conversion, invalid argument...).
    None,
}

/// A failure as the session layer reports it, before it is given context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OraFailure {
    pub(crate) code: FailureCode,
    pub(crate) message: String,
}

impl OraFailure {
    /// A failure whose code is read from its message (`ORA-01017: ...`, `DPI-1047: ...`).
    pub(crate) fn from_message(message: impl Into<String>) -> Self {
        let message = message.into();
        let code = parse_code(&message, "ORA-")
            .map(FailureCode::Ora)
            .or_else(|| parse_code(&message, "DPI-").map(FailureCode::Dpi))
            .unwrap_or(FailureCode::None);
        Self { code, message }
    }
}

fn parse_code(message: &str, prefix: &str) -> Option<i32> {
    let at = message.find(prefix)?;
    let digits: String = message[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Typed Oracle errors. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OracleError {
    /// DPI-1047: the Oracle Client library (libclntsh) could not be loaded.
    #[error(
        "the Oracle Client library could not be loaded (DPI-1047): install Oracle Instant Client \
         (Basic or Basic Light, 19c or later) on this machine and make it visible to the loader \
         (ldconfig, or LD_LIBRARY_PATH), then retry. Detail: {detail}"
    )]
    ClientLibraryMissing {
        /// The loader's message (which paths were tried).
        detail: String,
    },
    /// ORA-01017: wrong user name or password.
    #[error("Oracle rejected the user name or password of {user}@{connect_string} (ORA-01017)")]
    InvalidCredentials {
        /// User name.
        user: String,
        /// Connect string.
        connect_string: String,
    },
    /// ORA-28000: the account is locked.
    #[error(
        "the Oracle account {user} is locked (ORA-28000): ask the DBA to unlock it \
         (ALTER USER {user} ACCOUNT UNLOCK) and check why it was locked (failed logins?)"
    )]
    AccountLocked {
        /// User name.
        user: String,
    },
    /// ORA-12154: the connect identifier could not be resolved.
    #[error(
        "Oracle could not resolve the connect identifier {connect_string:?} (ORA-12154): check \
         tnsnames.ora (TNS_ADMIN) or use the easy-connect form host:port/service"
    )]
    UnknownConnectIdentifier {
        /// Connect string.
        connect_string: String,
    },
    /// ORA-12514: the listener does not know the service.
    #[error(
        "the listener reached through {connect_string:?} does not know the requested service \
         (ORA-12514): check the service name (lsnrctl services) and that the database is open"
    )]
    UnknownService {
        /// Connect string.
        connect_string: String,
    },
    /// ORA-12541: nothing listens at the address.
    #[error(
        "no Oracle listener at {connect_string:?} (ORA-12541): check the host and port, and that \
         the listener is started (lsnrctl status) and reachable through the firewall"
    )]
    NoListener {
        /// Connect string.
        connect_string: String,
    },
    /// ORA-01555: the undo needed for the consistent read was overwritten.
    #[error(
        "snapshot too old while exporting {table} as of SCN {scn} (ORA-01555): the undo data \
         needed for a consistent export was overwritten; increase UNDO_RETENTION (and the undo \
         tablespace, or use RETENTION GUARANTEE) or run the export at a quieter hour, then retry"
    )]
    SnapshotTooOld {
        /// Table being read.
        table: String,
        /// SCN of the snapshot.
        scn: String,
    },
    /// Any other Oracle failure.
    #[error("Oracle error during {operation}: {message}")]
    Database {
        /// `ORA-nnnnn` / `DPI-nnnn`, when known.
        code: Option<String>,
        /// What was being done.
        operation: String,
        /// Oracle's message.
        message: String,
    },
}

/// What was being done when a failure happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailureContext<'a> {
    pub(crate) user: &'a str,
    pub(crate) connect_string: &'a str,
    pub(crate) operation: &'a str,
    pub(crate) table: Option<&'a str>,
    pub(crate) scn: Option<&'a str>,
    /// Scrubbed from every message, in case a driver ever echoes it.
    pub(crate) password: Option<&'a SecretString>,
}

fn scrub(message: &str, password: Option<&SecretString>) -> String {
    match password.map(ExposeSecret::expose_secret) {
        Some(p) if !p.is_empty() => message.replace(p, "********"),
        _ => message.to_owned(),
    }
}

/// Gives a failure its typed error.
pub(crate) fn map_failure(failure: OraFailure, ctx: &FailureContext<'_>) -> OracleError {
    let message = scrub(&failure.message, ctx.password);
    let connect_string = scrub(ctx.connect_string, ctx.password);
    match failure.code {
        FailureCode::Dpi(1047) => OracleError::ClientLibraryMissing { detail: message },
        FailureCode::Ora(1017) => OracleError::InvalidCredentials {
            user: ctx.user.to_owned(),
            connect_string,
        },
        FailureCode::Ora(28000) => OracleError::AccountLocked {
            user: ctx.user.to_owned(),
        },
        FailureCode::Ora(12154) => OracleError::UnknownConnectIdentifier { connect_string },
        FailureCode::Ora(12514) => OracleError::UnknownService { connect_string },
        FailureCode::Ora(12541) => OracleError::NoListener { connect_string },
        FailureCode::Ora(1555) => OracleError::SnapshotTooOld {
            table: ctx.table.unwrap_or("(unknown table)").to_owned(),
            scn: ctx.scn.unwrap_or("(none)").to_owned(),
        },
        code => OracleError::Database {
            code: match code {
                FailureCode::Ora(n) => Some(format!("ORA-{n:05}")),
                FailureCode::Dpi(n) => Some(format!("DPI-{n:04}")),
                FailureCode::None => None,
            },
            operation: match ctx.table {
                Some(t) => format!("{} (table {t})", ctx.operation),
                None => ctx.operation.to_owned(),
            },
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(password: &'a SecretString) -> FailureContext<'a> {
        FailureContext {
            user: "JFIV_BACKUP",
            connect_string: "db.hopital.local:1521/JFIV",
            operation: "connecting",
            table: Some("CYCLES"),
            scn: Some("987654321"),
            password: Some(password),
        }
    }

    #[test]
    fn every_documented_code_maps_to_its_typed_error() {
        let pw = SecretString::from("S3cr3t-Pw!");
        type Case = (&'static str, fn(&OracleError) -> bool, &'static str);
        let cases: [Case; 7] = [
            (
                "DPI-1047: Cannot locate a 64-bit Oracle Client library: \"libclntsh.so: cannot open shared object file\"",
                |e| matches!(e, OracleError::ClientLibraryMissing { .. }),
                "install Oracle Instant Client",
            ),
            (
                "ORA-01017: invalid username/password; logon denied",
                |e| matches!(e, OracleError::InvalidCredentials { .. }),
                "JFIV_BACKUP@db.hopital.local:1521/JFIV",
            ),
            (
                "ORA-28000: The account is locked.",
                |e| matches!(e, OracleError::AccountLocked { .. }),
                "ACCOUNT UNLOCK",
            ),
            (
                "ORA-12154: TNS:could not resolve the connect identifier specified",
                |e| matches!(e, OracleError::UnknownConnectIdentifier { .. }),
                "tnsnames.ora",
            ),
            (
                "ORA-12514: TNS:listener does not currently know of service requested",
                |e| matches!(e, OracleError::UnknownService { .. }),
                "service name",
            ),
            (
                "ORA-12541: TNS:no listener",
                |e| matches!(e, OracleError::NoListener { .. }),
                "listener is started",
            ),
            (
                "ORA-01555: snapshot too old: rollback segment number 9 with name \"_SYSSMU9$\" too small",
                |e| matches!(e, OracleError::SnapshotTooOld { table, scn } if table == "CYCLES" && scn == "987654321"),
                "UNDO_RETENTION",
            ),
        ];
        for (message, is_expected, hint) in cases {
            let e = map_failure(OraFailure::from_message(message), &ctx(&pw));
            assert!(is_expected(&e), "{message} -> {e:?}");
            let text = e.to_string();
            assert!(text.contains(hint), "{text}");
            assert!(!text.contains("S3cr3t"), "{text}");
            assert!(!format!("{e:?}").contains("S3cr3t"));
        }
    }

    #[test]
    fn other_errors_keep_code_and_context_but_never_the_password() {
        let pw = SecretString::from("S3cr3t-Pw!");
        let f = OraFailure::from_message("ORA-00942: table or view does not exist (S3cr3t-Pw!)");
        assert_eq!(f.code, FailureCode::Ora(942));
        let e = map_failure(f, &ctx(&pw));
        match &e {
            OracleError::Database {
                code,
                operation,
                message,
            } => {
                assert_eq!(code.as_deref(), Some("ORA-00942"));
                assert_eq!(operation, "connecting (table CYCLES)");
                assert!(message.contains("********"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!e.to_string().contains("S3cr3t"));
        let none = OraFailure::from_message("invalid type conversion");
        assert_eq!(none.code, FailureCode::None);
    }
}

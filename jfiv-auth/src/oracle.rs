//! [`OracleAuthenticator`] (feature `oracle`): users authenticate against the JFIV Oracle
//! database with their own database account, as the hospital's procedure says.
//!
//! The connection is made with the `oracle` crate (ODPI-C, which loads the Oracle client
//! library at run time) on a blocking thread; the session's roles (`SESSION_ROLES`) give the
//! profile through a [`RoleMapping`]. Oracle errors are mapped as follows:
//!
//! | Oracle | error |
//! |---|---|
//! | ORA-01017 invalid username/password | [`Error::InvalidCredentials`] (reason kept for the audit trail) |
//! | ORA-28000 account locked | [`Error::InvalidCredentials`], same message |
//! | ORA-28001 password expired | [`Error::PasswordExpired`] |
//! | ORA-28002 password will expire | success, with [`Notice::PasswordExpiresSoon`] |
//! | ORA-12150..12699 (TNS, listener), ORA-01033/01034/01089/03113/03114/03135 | [`Error::DatabaseUnavailable`] |
//! | DPI-1047 / DPI-1072 (no usable Oracle client library) | [`Error::OracleClientMissing`] |
//! | anything else | [`Error::Oracle`] |

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::ExposeSecret;

use crate::{
    Authenticator, ConnectionContext, Credentials, Error, FailureReason, Identity, Notice, Result,
    RoleMapping,
};

/// What a successful database login gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OracleLogin {
    /// `SELECT ROLE FROM SESSION_ROLES`.
    pub(crate) roles: Vec<String>,
    /// The ORA- code of a warning raised at connect time (28002).
    pub(crate) warning: Option<i32>,
}

/// An Oracle or ODPI-C error, reduced to what the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OracleFailure {
    /// ORA- code.
    pub(crate) ora: Option<i32>,
    /// DPI- code.
    pub(crate) dpi: Option<i32>,
    /// The message (Oracle never puts the password in it).
    pub(crate) message: String,
}

/// The one thing the authenticator needs from Oracle: log in and read the session's roles.
/// A trait so that the mapping is tested with a mock.
#[cfg_attr(test, mockall::automock)]
pub(crate) trait OracleBackend: Send + Sync {
    /// Connects as `user`/`password` to `connect`, reads the session roles, disconnects.
    fn login(
        &self,
        user: &str,
        password: &str,
        connect: &str,
    ) -> std::result::Result<OracleLogin, OracleFailure>;
}

/// The real backend, through the `oracle` crate.
#[derive(Debug, Default)]
struct OdpiBackend;

fn failure(e: &oracle::Error) -> OracleFailure {
    OracleFailure {
        ora: e.oci_code(),
        dpi: e.dpi_code(),
        message: e.to_string(),
    }
}

impl OracleBackend for OdpiBackend {
    fn login(
        &self,
        user: &str,
        password: &str,
        connect: &str,
    ) -> std::result::Result<OracleLogin, OracleFailure> {
        let conn = oracle::Connection::connect(user, password, connect).map_err(|e| failure(&e))?;
        let warning = conn.last_warning().and_then(|w| w.oci_code());
        let rows = conn
            .query_as::<String>("SELECT ROLE FROM SESSION_ROLES", &[])
            .map_err(|e| failure(&e))?;
        let roles = rows
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| failure(&e))?;
        // A failed close loses nothing: the session is read-only and ends with the socket.
        let _ = conn.close();
        Ok(OracleLogin { roles, warning })
    }
}

/// Maps an Oracle failure to this crate's error (see the module table).
pub(crate) fn classify(f: &OracleFailure, user: &str, database: &str) -> Error {
    const UNAVAILABLE: &[i32] = &[1033, 1034, 1089, 3113, 3114, 3135];
    match (f.ora, f.dpi) {
        (_, Some(1047 | 1072)) => Error::OracleClientMissing {
            detail: f.message.clone(),
        },
        (Some(1017), _) => Error::invalid_credentials(FailureReason::OracleInvalidCredentials),
        (Some(28000), _) => Error::invalid_credentials(FailureReason::OracleAccountLocked),
        (Some(28001), _) => Error::PasswordExpired {
            user: user.to_owned(),
        },
        (Some(code), _) if (12150..=12699).contains(&code) || UNAVAILABLE.contains(&code) => {
            Error::DatabaseUnavailable {
                database: database.to_owned(),
                detail: f.message.clone(),
            }
        }
        (ora, dpi) => Error::Oracle {
            code: ora.or(dpi),
            message: f.message.clone(),
        },
    }
}

/// Authenticates users with their own Oracle account.
///
/// Connects with the `oracle` crate on a blocking thread, reads `SESSION_ROLES` and maps them
/// to a profile with a [`RoleMapping`]. ORA-01017 and ORA-28000 give the same
/// [`Error::InvalidCredentials`] (the code is kept for the audit trail); ORA-28001 gives
/// [`Error::PasswordExpired`]; ORA-28002 a [`Notice::PasswordExpiresSoon`]; listener and TNS
/// errors [`Error::DatabaseUnavailable`]; DPI-1047 (no Oracle client library)
/// [`Error::OracleClientMissing`], which says to install Oracle Instant Client.
#[derive(Clone)]
pub struct OracleAuthenticator {
    backend: Arc<dyn OracleBackend>,
    roles: RoleMapping,
    default_database: Option<String>,
}

impl fmt::Debug for OracleAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OracleAuthenticator")
            .field("roles", &self.roles)
            .field("default_database", &self.default_database)
            .finish_non_exhaustive()
    }
}

impl OracleAuthenticator {
    /// An authenticator using the Oracle client library, mapping roles with `roles`.
    pub fn new(roles: RoleMapping) -> Self {
        Self::with_backend(Arc::new(OdpiBackend), roles)
    }

    pub(crate) fn with_backend(backend: Arc<dyn OracleBackend>, roles: RoleMapping) -> Self {
        Self {
            backend,
            roles,
            default_database: None,
        }
    }

    /// The connect string used when the credentials name no database.
    pub fn with_default_database(mut self, connect: impl Into<String>) -> Self {
        self.default_database = Some(connect.into());
        self
    }
}

#[async_trait]
impl Authenticator for OracleAuthenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        _context: &ConnectionContext,
    ) -> Result<Identity> {
        let user = credentials.username.clone();
        if credentials.expose_password().is_empty() {
            // Oracle would try an external (OS) authentication with an empty password.
            return Err(Error::invalid_credentials(FailureReason::EmptyPassword));
        }
        let database = if credentials.database.is_empty() {
            self.default_database.clone().unwrap_or_default()
        } else {
            credentials.database.clone()
        };
        let backend = self.backend.clone();
        let password = credentials.password.clone();
        let (u, d) = (user.clone(), database.clone());
        let outcome =
            tokio::task::spawn_blocking(move || backend.login(&u, password.expose_secret(), &d))
                .await
                .map_err(|e| Error::Internal {
                    detail: format!("Oracle login task: {e}"),
                })?;
        let login = outcome.map_err(|f| classify(&f, &user, &database))?;
        let profile = self.roles.profile_for(&user, &login.roles)?;
        let mut identity = Identity::new(user, profile);
        if login.warning == Some(28002) {
            identity.notices.push(Notice::PasswordExpiresSoon);
        }
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::Fixture;
    use crate::{ErrorKind, Profile};

    fn ora(code: i32, message: &str) -> OracleFailure {
        OracleFailure {
            ora: Some(code),
            dpi: None,
            message: format!("ORA-{code:05}: {message}"),
        }
    }

    fn mapping() -> RoleMapping {
        RoleMapping::from_toml(
            "[roles]\nJFIV_CLINICIEN = \"clinician\"\nJFIV_SECRETAIRE = \"secretary\"\n",
        )
        .unwrap()
    }

    /// A mock database with one user, DR_MARTIN, who has the clinician role.
    fn mocked() -> OracleAuthenticator {
        let mut backend = MockOracleBackend::new();
        backend
            .expect_login()
            .returning(|user, password, _connect| {
                if user.eq_ignore_ascii_case("dr_martin") && password == "Ovocyte-42-Lune" {
                    Ok(OracleLogin {
                        roles: vec!["CONNECT".into(), "JFIV_CLINICIEN".into()],
                        warning: None,
                    })
                } else {
                    Err(ora(1017, "invalid username/password; logon denied"))
                }
            });
        OracleAuthenticator::with_backend(Arc::new(backend), mapping())
    }

    fn oracle_setup() -> (Box<dyn Authenticator>, Fixture) {
        (
            Box::new(mocked()),
            Fixture {
                good: Credentials::new("DR_MARTIN", "Ovocyte-42-Lune", "jfivdb:1521/JFIV"),
                profile: Profile::Clinician,
                unknown_user: "DR_NOBODY".into(),
                context: ConnectionContext::new("10.8.0.12".parse().unwrap()),
                keep_alive: None,
            },
        )
    }

    crate::authenticator_conformance!(mocked_oracle, oracle_setup);

    fn one_shot(result: std::result::Result<OracleLogin, OracleFailure>) -> OracleAuthenticator {
        let mut backend = MockOracleBackend::new();
        backend
            .expect_login()
            .withf(|u, p, c| u == "U" && p == "Pw-123456789!" && c == "db")
            .times(1)
            .return_const(result);
        OracleAuthenticator::with_backend(Arc::new(backend), mapping())
    }

    async fn run(auth: &OracleAuthenticator) -> Result<Identity> {
        auth.authenticate(
            &Credentials::new("U", "Pw-123456789!", "db"),
            &ConnectionContext::new("10.1.0.1".parse().unwrap()),
        )
        .await
    }

    #[tokio::test]
    async fn locked_account_looks_like_a_wrong_password_but_keeps_its_code() {
        let wrong = run(&one_shot(Err(ora(1017, "invalid username/password"))))
            .await
            .unwrap_err();
        let locked = run(&one_shot(Err(ora(28000, "the account is locked"))))
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::InvalidCredentials);
        assert_eq!(wrong.to_string(), locked.to_string());
        assert_eq!(format!("{wrong:?}"), format!("{locked:?}"));
        assert_eq!(
            locked.failure_reason(),
            Some(&FailureReason::OracleAccountLocked)
        );
        assert_eq!(
            wrong.failure_reason(),
            Some(&FailureReason::OracleInvalidCredentials)
        );
    }

    #[tokio::test]
    async fn password_expired_and_about_to_expire() {
        let e = run(&one_shot(Err(ora(28001, "the password has expired"))))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PasswordExpired);
        let id = run(&one_shot(Ok(OracleLogin {
            roles: vec!["JFIV_SECRETAIRE".into()],
            warning: Some(28002),
        })))
        .await
        .unwrap();
        assert_eq!(id.profile, Profile::Secretary);
        assert_eq!(id.notices, vec![Notice::PasswordExpiresSoon]);
    }

    #[tokio::test]
    async fn listener_and_tns_errors_mean_database_unavailable() {
        for code in [12154, 12514, 12541, 12170, 12543, 1034, 3113] {
            let e = run(&one_shot(Err(ora(code, "TNS")))).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DatabaseUnavailable, "ORA-{code}");
            assert!(e.to_string().contains("\"db\""), "{e}");
        }
        let e = run(&one_shot(Err(ora(942, "table or view does not exist"))))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Oracle);
    }

    #[tokio::test]
    async fn dpi_1047_says_to_install_instant_client() {
        let e = run(&one_shot(Err(OracleFailure {
            ora: None,
            dpi: Some(1047),
            message: "DPI-1047: Cannot locate a 64-bit Oracle Client library".into(),
        })))
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OracleClientMissing);
        assert!(
            e.to_string().contains("install Oracle Instant Client"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn no_jfiv_role_is_a_clear_error() {
        let e = run(&one_shot(Ok(OracleLogin {
            roles: vec!["CONNECT".into()],
            warning: None,
        })))
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NoJfivRole);
        assert!(e.to_string().contains("ask the Oracle DBA"), "{e}");
    }

    #[tokio::test]
    async fn empty_password_never_reaches_oracle() {
        let backend = MockOracleBackend::new(); // any call would panic
        let auth = OracleAuthenticator::with_backend(Arc::new(backend), mapping());
        let e = auth
            .authenticate(
                &Credentials::new("U", "", "db"),
                &ConnectionContext::new("10.1.0.1".parse().unwrap()),
            )
            .await
            .unwrap_err();
        assert_eq!(e.failure_reason(), Some(&FailureReason::EmptyPassword));
    }

    #[tokio::test]
    async fn default_database_is_used_when_none_is_given() {
        let mut backend = MockOracleBackend::new();
        backend
            .expect_login()
            .withf(|_, _, c| c == "jfivdb:1521/JFIV")
            .times(1)
            .returning(|_, _, _| {
                Ok(OracleLogin {
                    roles: vec!["JFIV_CLINICIEN".into()],
                    warning: None,
                })
            });
        let auth = OracleAuthenticator::with_backend(Arc::new(backend), mapping())
            .with_default_database("jfivdb:1521/JFIV");
        auth.authenticate(
            &Credentials::new("U", "x", ""),
            &ConnectionContext::new("10.1.0.1".parse().unwrap()),
        )
        .await
        .unwrap();
    }

    /// The real client library path: on a machine without Oracle Instant Client (CI) this is
    /// DPI-1047; with a client but no database at that address, a TNS error.
    #[tokio::test]
    async fn real_backend_without_a_database_is_a_clear_error() {
        let auth = OracleAuthenticator::new(mapping());
        let e = auth
            .authenticate(
                &Credentials::new("nobody", "Not-The-Password-1", "127.0.0.1:9/NOWHERE"),
                &ConnectionContext::new("10.1.0.1".parse().unwrap()),
            )
            .await
            .unwrap_err();
        eprintln!("real Oracle backend, no database: {e}");
        assert!(
            matches!(
                e.kind(),
                ErrorKind::OracleClientMissing | ErrorKind::DatabaseUnavailable
            ),
            "{e:?}"
        );
        assert!(!e.to_string().contains("Not-The-Password-1"));
        if e.kind() == ErrorKind::OracleClientMissing {
            assert!(
                e.to_string().contains("install Oracle Instant Client"),
                "{e}"
            );
        }
    }

    /// Live test: `JFIV_TEST_ORACLE="user/password@connect_string"` (a user holding a role
    /// listed in `JFIV_TEST_ORACLE_ROLES`, TOML, or none).
    #[tokio::test]
    async fn live_oracle_when_configured() {
        let Ok(spec) = std::env::var("JFIV_TEST_ORACLE") else {
            eprintln!("JFIV_TEST_ORACLE not set: live Oracle test skipped");
            return;
        };
        let (userpass, connect) = spec.rsplit_once('@').expect("user/password@connect");
        let (user, password) = userpass.split_once('/').expect("user/password@connect");
        let roles = match std::env::var("JFIV_TEST_ORACLE_ROLES") {
            Ok(path) => RoleMapping::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap(),
            Err(_) => RoleMapping::new(),
        };
        let auth = OracleAuthenticator::new(roles);
        let ctx = ConnectionContext::new("10.1.0.1".parse().unwrap());
        match auth
            .authenticate(&Credentials::new(user, password, connect), &ctx)
            .await
        {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind(), ErrorKind::NoJfivRole, "{e}"),
        }
        let wrong = auth
            .authenticate(
                &Credentials::new(user, format!("{password}x"), connect),
                &ctx,
            )
            .await
            .unwrap_err();
        let unknown = auth
            .authenticate(
                &Credentials::new("JFIV_NO_SUCH_USER", password, connect),
                &ctx,
            )
            .await
            .unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::InvalidCredentials);
        assert_eq!(wrong.to_string(), unknown.to_string());
    }
}

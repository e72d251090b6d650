//! The [`Authenticator`] trait and what it returns.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{ConnectionContext, Credentials, Profile, Result};

/// Something the user should be told after a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The password will expire soon (ORA-28002): change it.
    PasswordExpiresSoon,
}

/// A person whose credentials were verified, with the profile they log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The login name, as the authenticator knows it.
    pub username: String,
    /// The JFIV profile.
    pub profile: Profile,
    /// Things to tell the user.
    pub notices: Vec<Notice>,
}

impl Identity {
    /// An identity without notices.
    pub fn new(username: impl Into<String>, profile: Profile) -> Self {
        Self {
            username: username.into(),
            profile,
            notices: Vec::new(),
        }
    }
}

/// Checks a user's credentials and says who they are.
///
/// # Contract
/// - `Ok(identity)` only when the password is right for this user and database; the identity
///   carries the profile the user logs in with.
/// - A wrong password, an unknown user, an unknown database and an account locked by the
///   back end all give [`Error::InvalidCredentials`](crate::Error::InvalidCredentials), with the
///   same message and `Debug`, in comparable time (an unknown user costs a password-hash
///   verification too); the precise reason is in
///   [`Error::failure_reason`](crate::Error::failure_reason), for the audit trail only.
/// - Other errors (database unavailable, no JFIV role, password expired) are not about the
///   password and may say so.
/// - The password never appears in a returned value, an error, a log or a `Debug` output.
/// - Implementations do not throttle, lock or audit; [`AccessGate`](crate::AccessGate) does
///   that for every implementation.
/// - Runs CPU-heavy or blocking work (argon2, Oracle client calls) on a blocking thread.
#[async_trait]
pub trait Authenticator: Debug + Send + Sync {
    /// Verifies `credentials` presented over `context`.
    ///
    /// # Errors
    /// See the contract.
    async fn authenticate(
        &self,
        credentials: &Credentials,
        context: &ConnectionContext,
    ) -> Result<Identity>;
}

#[async_trait]
impl<A: Authenticator + ?Sized> Authenticator for Arc<A> {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        context: &ConnectionContext,
    ) -> Result<Identity> {
        (**self).authenticate(credentials, context).await
    }
}

#[async_trait]
impl<A: Authenticator + ?Sized> Authenticator for Box<A> {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        context: &ConnectionContext,
    ) -> Result<Identity> {
        (**self).authenticate(credentials, context).await
    }
}

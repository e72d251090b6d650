//! [`AccessGate`]: the policy-enforcing, audited composition of the pieces of this crate.
//!
//! A login goes: remote-access policy (origin, certificate) -> throttling and lockout ->
//! [`Authenticator`] -> profile -> session. Every decision, success or refusal, becomes an
//! [`AuditEvent`] with the actor, the origin (LAN workstation, or VPN address and certificate
//! fingerprint) and the precise reason in `details`. If the audit trail does not take the
//! record, the login is refused: no unaudited access (fail closed).

use std::fmt;
use std::sync::Arc;

use jfiv_audit::{Action, Actor, AuditEvent, AuditSink, Clock, Origin, Outcome};

use crate::lockout::{AttemptDecision, Lock};
use crate::remote::certificate_fingerprint;
use crate::session::Touch;
use crate::{
    AccessClass, Authenticator, ConnectionContext, Credentials, Error, LockoutPolicy,
    LockoutTracker, Permission, Randomness, RemoteAccessPolicy, Result, Session, SessionInfo,
    SessionPolicy, SessionToken, Sessions,
};

/// The audited gate in front of JFIV. See the [module docs](self).
pub struct AccessGate<A> {
    authenticator: A,
    policy: RemoteAccessPolicy,
    lockout: LockoutTracker,
    sessions: Sessions,
    sink: Arc<dyn AuditSink>,
    clock: Arc<dyn Clock>,
}

impl<A: fmt::Debug> fmt::Debug for AccessGate<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessGate")
            .field("authenticator", &self.authenticator)
            .field("policy", &self.policy)
            .field("lockout", &self.lockout.policy())
            .field("sessions", &self.sessions.len())
            .field("sink", &self.sink)
            .finish_non_exhaustive()
    }
}

fn lock_text(lock: Lock) -> String {
    match lock {
        Lock::Until(t) => format!("until {t}"),
        Lock::UntilUnlocked => "until an administrator unlocks it".into(),
    }
}

impl<A: Authenticator> AccessGate<A> {
    /// A gate with the default lockout and session policies and the OS random generator.
    pub fn new(
        authenticator: A,
        policy: RemoteAccessPolicy,
        sink: Arc<dyn AuditSink>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            authenticator,
            policy,
            lockout: LockoutTracker::new(LockoutPolicy::default()),
            sessions: Sessions::new(SessionPolicy::default(), clock.clone(), Randomness::os()),
            sink,
            clock,
        }
    }

    /// Replaces the lockout policy (forgetting recorded failures).
    pub fn with_lockout(mut self, policy: LockoutPolicy) -> Self {
        self.lockout = LockoutTracker::new(policy);
        self
    }

    /// Replaces the session policy and random source (closing open sessions).
    pub fn with_sessions(mut self, policy: SessionPolicy, rng: Randomness) -> Self {
        self.sessions = Sessions::new(policy, self.clock.clone(), rng);
        self
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    /// The failure states.
    pub fn lockout(&self) -> &LockoutTracker {
        &self.lockout
    }

    /// The open sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn origin(&self, ctx: &ConnectionContext) -> Origin {
        if self.policy.is_local(ctx.peer) {
            Origin::Local {
                workstation: ctx
                    .workstation
                    .clone()
                    .unwrap_or_else(|| ctx.peer.to_string()),
            }
        } else {
            Origin::Remote {
                client_ip: ctx.peer,
                certificate_fingerprint: ctx
                    .client_chain
                    .first()
                    .map(|c| certificate_fingerprint(c)),
            }
        }
    }

    async fn audit(
        &self,
        actor: Actor,
        origin: Origin,
        action: Action,
        outcome: Outcome,
        details: String,
    ) -> Result<()> {
        let event = AuditEvent::new(self.clock.now(), actor, origin, action)
            .with_outcome(outcome)
            .with_details(details);
        self.sink
            .append(event)
            .await
            .map(|_| ())
            .map_err(|source| Error::AuditUnavailable { source })
    }

    /// Refuses with `error` after auditing; an audit failure replaces the error.
    async fn refuse<T>(
        &self,
        actor: Actor,
        origin: Origin,
        action: Action,
        outcome: Outcome,
        details: String,
        error: Error,
    ) -> Result<T> {
        self.audit(actor, origin, action, outcome, details).await?;
        Err(error)
    }

    /// Logs a user in.
    ///
    /// # Errors
    /// [`Error::AccessRefused`] (origin or certificate), [`Error::InvalidCredentials`] (wrong
    /// password, unknown user, throttled, locked: one message for all), the authenticator's
    /// other errors, and [`Error::AuditUnavailable`] when the decision could not be audited (the
    /// login is then refused).
    pub async fn login(
        &self,
        credentials: &Credentials,
        ctx: &ConnectionContext,
    ) -> Result<Session> {
        let now = self.clock.now();
        let user = credentials.username.as_str();
        let origin = self.origin(ctx);
        let anonymous = || Actor::unprofiled(user);

        // 1. Where from, with which certificate.
        let class = match self.policy.evaluate(ctx, user, now) {
            Ok(class) => class,
            Err(refusal) => {
                let details = format!("{}: {refusal}", refusal.code());
                return self
                    .refuse(
                        anonymous(),
                        origin,
                        Action::AccessRefused,
                        Outcome::Refused,
                        details,
                        Error::AccessRefused(refusal),
                    )
                    .await;
            }
        };
        let via = match &class {
            AccessClass::Local => "LAN".to_owned(),
            AccessClass::Remote {
                certificate_identity,
                ..
            } => format!("VPN, certificate of {certificate_identity}"),
        };

        // 2. Throttling and lockout.
        if let AttemptDecision::Refused(reason) = self.lockout.decide(user, now) {
            let details = format!("{reason} (password not checked; {via})");
            return self
                .refuse(
                    anonymous(),
                    origin,
                    Action::LoginFailure,
                    Outcome::Refused,
                    details,
                    Error::invalid_credentials(reason),
                )
                .await;
        }

        // 3. The password, and the profile.
        match self.authenticator.authenticate(credentials, ctx).await {
            Ok(identity) => {
                self.lockout.record_success(user);
                let session = self.sessions.open(&identity, origin.clone());
                let details = format!("session {} opened ({via})", session.info.id);
                let actor = Actor::new(identity.username.clone(), identity.profile.name());
                if let Err(e) = self
                    .audit(
                        actor,
                        origin,
                        Action::LoginSuccess,
                        Outcome::Success,
                        details,
                    )
                    .await
                {
                    self.sessions.close(&session.token);
                    return Err(e);
                }
                Ok(session)
            }
            Err(error) => {
                let Some(reason) = error.failure_reason().cloned() else {
                    // Not about the password (database down, no JFIV role, expired password).
                    let details = format!("{error} ({via})");
                    return self
                        .refuse(
                            anonymous(),
                            origin,
                            Action::LoginFailure,
                            Outcome::Failure,
                            details,
                            error,
                        )
                        .await;
                };
                let recorded = self.lockout.record_failure(user, now);
                let details = format!(
                    "{reason} ({} consecutive failures; {via})",
                    recorded.consecutive
                );
                self.audit(
                    anonymous(),
                    origin.clone(),
                    Action::LoginFailure,
                    Outcome::Refused,
                    details,
                )
                .await?;
                if let Some(lock) = recorded.locked {
                    let details = format!(
                        "account locked {} after {} consecutive failures",
                        lock_text(lock),
                        recorded.consecutive
                    );
                    self.audit(
                        anonymous(),
                        origin,
                        Action::LoginLockout,
                        Outcome::Success,
                        details,
                    )
                    .await?;
                }
                Err(error)
            }
        }
    }

    /// Checks a session token and marks the session used.
    ///
    /// # Errors
    /// [`Error::InvalidSession`] for an unknown, closed or expired session (an expiry is
    /// audited), [`Error::AuditUnavailable`].
    pub async fn check(&self, token: &SessionToken) -> Result<SessionInfo> {
        match self.sessions.touch(token) {
            Touch::Valid(info) => Ok(info),
            Touch::Expired(info, reason) => {
                self.audit_expiry(&info, &reason.to_string()).await?;
                Err(Error::InvalidSession)
            }
            Touch::Unknown => Err(Error::InvalidSession),
        }
    }

    async fn audit_expiry(&self, info: &SessionInfo, reason: &str) -> Result<()> {
        self.audit(
            Actor::new(info.username.clone(), info.profile.name()),
            info.origin.clone(),
            Action::SessionExpired,
            Outcome::Success,
            format!("session {} expired: {reason}", info.id),
        )
        .await
    }

    /// Checks the session and that its profile has `permission`.
    ///
    /// # Errors
    /// As [`AccessGate::check`], and [`Error::PermissionDenied`] (audited as a refused access).
    pub async fn require(
        &self,
        token: &SessionToken,
        permission: Permission,
    ) -> Result<SessionInfo> {
        let info = self.check(token).await?;
        if let Err(error) = info.profile.require(permission) {
            return self
                .refuse(
                    Actor::new(info.username.clone(), info.profile.name()),
                    info.origin.clone(),
                    Action::AccessRefused,
                    Outcome::Refused,
                    format!("permission {permission} denied to profile {}", info.profile),
                    error,
                )
                .await;
        }
        Ok(info)
    }

    /// Ends a session (logout).
    ///
    /// # Errors
    /// [`Error::InvalidSession`] if it was not open, [`Error::AuditUnavailable`].
    pub async fn logout(&self, token: &SessionToken) -> Result<()> {
        let info = self.sessions.close(token).ok_or(Error::InvalidSession)?;
        self.audit(
            Actor::new(info.username.clone(), info.profile.name()),
            info.origin.clone(),
            Action::Logout,
            Outcome::Success,
            format!("session {} closed", info.id),
        )
        .await
    }

    /// Expires every session past its idle timeout or lifetime, auditing each; returns how
    /// many. Call it periodically.
    ///
    /// # Errors
    /// [`Error::AuditUnavailable`] (the sessions are expired all the same).
    pub async fn expire_sessions(&self) -> Result<usize> {
        let expired = self.sessions.sweep();
        let mut first_error = None;
        for (info, reason) in &expired {
            if let Err(e) = self.audit_expiry(info, &reason.to_string()).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(expired.len()),
        }
    }

    /// Unlocks `username`, by the administrator holding `admin`. Returns whether the account
    /// was locked or throttled.
    ///
    /// # Errors
    /// As [`AccessGate::require`] with [`Permission::ManageAccounts`], and
    /// [`Error::AuditUnavailable`].
    pub async fn unlock(&self, admin: &SessionToken, username: &str) -> Result<bool> {
        let info = self.require(admin, Permission::ManageAccounts).await?;
        let was_locked = self.lockout.unlock(username);
        self.audit(
            Actor::new(info.username.clone(), info.profile.name()),
            info.origin.clone(),
            Action::AccountUnlocked,
            Outcome::Success,
            format!(
                "account {username} unlocked by an administrator (was locked or throttled: {was_locked})"
            ),
        )
        .await?;
        Ok(was_locked)
    }
}

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

/// The audited gate in front of JFIV.
///
/// A login goes: remote-access policy (origin, certificate) -> throttling and lockout ->
/// [`Authenticator`] -> profile -> session. Every decision, success or refusal, becomes an
/// [`AuditEvent`] with the actor, the origin (LAN workstation, or VPN address and certificate
/// fingerprint) and the precise reason in `details`. If the audit trail does not take the
/// record, the login is refused: no unaudited access (fail closed).
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
                    "{reason} (consecutive failures: {}; {via})",
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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};
    use jfiv_audit::{ManualClock, MemorySink, Query, Recorded};
    use rustls_pki_types::CertificateDer;
    use secrecy::SecretString;

    use super::*;
    use crate::local::tests::test_options;
    use crate::remote::testpki::{Ca, LeafSpec};
    use crate::{ErrorKind, FailureReason, LocalAccounts, Profile};

    mockall::mock! {
        Sink {}
        impl fmt::Debug for Sink {
            fn fmt<'a>(&self, f: &mut fmt::Formatter<'a>) -> fmt::Result;
        }
        #[async_trait::async_trait]
        impl AuditSink for Sink {
            async fn append(&self, event: AuditEvent) -> jfiv_audit::Result<Recorded>;
            async fn query(&self, query: &Query) -> jfiv_audit::Result<Vec<Recorded>>;
        }
    }

    const SECR_PW: &str = "Accueil-AMP#2026";
    const DR_PW: &str = "Ovocyte-42-Lune!";
    const ADMIN_PW: &str = "Salle-Serveur#77";

    struct World {
        _dir: tempfile::TempDir,
        ca: Ca,
        revoked: CertificateDer<'static>,
        clock: Arc<ManualClock>,
        sink: Arc<MemorySink>,
        gate: AccessGate<LocalAccounts>,
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn accounts(dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> LocalAccounts {
        let store = LocalAccounts::open_with(
            dir.path().join("accounts.json"),
            test_options(),
            clock,
            Arc::new(Randomness::seeded(21)),
        )
        .unwrap();
        for (user, profile, pw) in [
            ("secr.durand", Profile::Secretary, SECR_PW),
            ("dr.martin", Profile::Clinician, DR_PW),
            ("admin.it", Profile::ItAdministrator, ADMIN_PW),
        ] {
            store
                .create_account(user, profile, &SecretString::from(pw.to_owned()))
                .unwrap();
        }
        store
    }

    fn world_with_sink(sink: Arc<dyn AuditSink>) -> (World, Arc<MemorySink>) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(t0()));
        let ca = Ca::new("Hopital Le Bois VPN CA");
        let revoked = ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let policy = RemoteAccessPolicy::builder()
            .lan("10.1.0.0/16".parse().unwrap())
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(ca.crl(&[revoked.serial], 2027))
            .build()
            .unwrap();
        let memory = Arc::new(MemorySink::new());
        let gate = AccessGate::new(accounts(&dir, clock.clone()), policy, sink, clock.clone())
            .with_sessions(SessionPolicy::default(), Randomness::seeded(4));
        (
            World {
                _dir: dir,
                ca,
                revoked: revoked.der,
                clock,
                sink: memory.clone(),
                gate,
            },
            memory,
        )
    }

    fn world() -> World {
        let memory = Arc::new(MemorySink::new());
        let (mut w, _) = world_with_sink(memory.clone());
        w.sink = memory;
        w
    }

    fn lan() -> ConnectionContext {
        ConnectionContext::new("10.1.4.20".parse().unwrap()).with_workstation("amp-accueil-1")
    }

    fn vpn(chain: Vec<CertificateDer<'static>>) -> ConnectionContext {
        ConnectionContext::new("10.8.0.12".parse().unwrap()).with_client_chain(chain)
    }

    fn creds(user: &str, pw: &str) -> Credentials {
        Credentials::new(user, pw, "")
    }

    fn trail(w: &World) -> Vec<AuditEvent> {
        w.sink.snapshot().into_iter().map(|r| r.event).collect()
    }

    #[tokio::test]
    async fn lan_login_is_audited_with_workstation_and_profile() {
        let w = world();
        let s = w
            .gate
            .login(&creds("secr.durand", SECR_PW), &lan())
            .await
            .unwrap();
        assert_eq!(s.info.profile, Profile::Secretary);
        let t = trail(&w);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].action, Action::LoginSuccess);
        assert_eq!(t[0].outcome, Outcome::Success);
        assert_eq!(t[0].actor, Actor::new("secr.durand", "secretary"));
        assert_eq!(
            t[0].origin,
            Origin::Local {
                workstation: "amp-accueil-1".into()
            }
        );
        assert_eq!(t[0].time, t0());
        assert!(t[0].details.contains(&s.info.id));
        assert!(!t[0].details.contains(s.token.expose()));
        assert!(!format!("{t:?}").contains(SECR_PW));
    }

    #[tokio::test]
    async fn vpn_login_with_own_certificate_records_the_fingerprint() {
        let w = world();
        let cert = w.ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let fp = certificate_fingerprint(&cert.der);
        let s = w
            .gate
            .login(&creds("dr.martin", DR_PW), &vpn(vec![cert.der]))
            .await
            .unwrap();
        assert_eq!(s.info.profile, Profile::Clinician);
        let t = trail(&w);
        assert_eq!(
            t[0].origin,
            Origin::Remote {
                client_ip: "10.8.0.12".parse().unwrap(),
                certificate_fingerprint: Some(fp)
            }
        );
        assert!(
            t[0].details.contains("VPN, certificate of dr.martin"),
            "{}",
            t[0].details
        );
    }

    #[tokio::test]
    async fn certificate_refusals_are_audited_and_check_no_password() {
        let w = world();
        let colleague = w.ca.issue(LeafSpec {
            cn: "dr.bernard",
            ..Default::default()
        });
        let cases = [
            (vpn(vec![colleague.der]), "certificate-identity-mismatch"),
            (vpn(vec![w.revoked.clone()]), "certificate-revoked"),
            (vpn(vec![]), "no-certificate"),
            (
                ConnectionContext::new("192.0.2.44".parse().unwrap()),
                "outside-allowed-networks",
            ),
        ];
        for (ctx, code) in cases {
            // Even with the right password.
            let e = w
                .gate
                .login(&creds("dr.martin", DR_PW), &ctx)
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AccessRefused, "{code}");
            match e {
                Error::AccessRefused(r) => assert_eq!(r.code(), code),
                other => panic!("{other:?}"),
            }
        }
        let t = trail(&w);
        assert_eq!(t.len(), 4);
        for (event, code) in t.iter().zip([
            "certificate-identity-mismatch",
            "certificate-revoked",
            "no-certificate",
            "outside-allowed-networks",
        ]) {
            assert_eq!(event.action, Action::AccessRefused);
            assert_eq!(event.outcome, Outcome::Refused);
            assert_eq!(event.actor, Actor::unprofiled("dr.martin"));
            assert!(event.details.starts_with(code), "{}", event.details);
            assert!(matches!(event.origin, Origin::Remote { .. }));
        }
        assert_eq!(
            w.gate.lockout().state("dr.martin"),
            None,
            "no password was checked"
        );
    }

    #[tokio::test]
    async fn guessing_is_throttled_then_locked_with_one_message_and_precise_audit() {
        let w = world();
        let guess = |n: u32| creds("dr.martin", &format!("guess-{n}"));
        let generic = "invalid user name, password or database";
        for n in 0..5 {
            let e = w.gate.login(&guess(n), &lan()).await.unwrap_err();
            assert_eq!(e.to_string(), generic);
            w.clock.advance(Duration::seconds(1));
        }
        // Throttled: even the right password is refused, with the same message, unchecked.
        let e = w
            .gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), generic);
        assert!(matches!(
            e.failure_reason(),
            Some(FailureReason::Throttled { .. })
        ));
        // Keep guessing, waiting out each delay, until the lock.
        let mut n = 5;
        loop {
            let state = w.gate.lockout().state("dr.martin").unwrap();
            if state.lock.is_some() {
                break;
            }
            let policy = w.gate.lockout().policy().clone();
            w.clock.set(
                state.last_failure.unwrap()
                    + policy.delay_after(state.consecutive)
                    + Duration::seconds(1),
            );
            let e = w.gate.login(&guess(n), &lan()).await.unwrap_err();
            assert_eq!(e.to_string(), generic);
            n += 1;
        }
        assert_eq!(n, 10);
        let locked = w
            .gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap_err();
        assert_eq!(locked.to_string(), generic);
        assert_eq!(format!("{locked:?}"), format!("{e:?}"));
        assert!(matches!(
            locked.failure_reason(),
            Some(FailureReason::Locked { .. })
        ));

        let t = trail(&w);
        let lockouts: Vec<_> = t
            .iter()
            .filter(|e| e.action == Action::LoginLockout)
            .collect();
        assert_eq!(lockouts.len(), 1);
        assert!(
            lockouts[0]
                .details
                .contains("after 10 consecutive failures")
        );
        let details: Vec<&str> = t.iter().map(|e| e.details.as_str()).collect();
        assert!(details[0].starts_with("wrong password (consecutive failures: 1;"));
        assert!(details[5].starts_with("throttled"), "{}", details[5]);
        assert!(details.last().unwrap().starts_with("account locked until"));

        // An administrator unlocks; the user logs in.
        let admin = w
            .gate
            .login(&creds("admin.it", ADMIN_PW), &lan())
            .await
            .unwrap();
        assert!(w.gate.unlock(&admin.token, "dr.martin").await.unwrap());
        w.gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap();
        let t = trail(&w);
        let unlock = t
            .iter()
            .find(|e| e.action == Action::AccountUnlocked)
            .unwrap();
        assert_eq!(unlock.actor, Actor::new("admin.it", "it-administrator"));
        assert!(unlock.details.contains("dr.martin"));
    }

    #[tokio::test]
    async fn lock_ends_by_itself_after_the_lock_time() {
        let w = world();
        let gate_policy = LockoutPolicy {
            free_failures: 100,
            lock_after: 3,
            ..LockoutPolicy::default()
        };
        let w = World {
            gate: w.gate.with_lockout(gate_policy),
            ..w
        };
        for n in 0..3 {
            let _ = w
                .gate
                .login(&creds("dr.martin", &format!("g{n}")), &lan())
                .await;
        }
        let e = w
            .gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap_err();
        assert!(matches!(
            e.failure_reason(),
            Some(FailureReason::Locked { .. })
        ));
        w.clock.advance(Duration::minutes(59));
        assert!(
            w.gate
                .login(&creds("dr.martin", DR_PW), &lan())
                .await
                .is_err()
        );
        w.clock.advance(Duration::minutes(1));
        w.gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_users_are_throttled_too() {
        let w = world();
        for n in 0..5 {
            let _ = w
                .gate
                .login(&creds("nobody", &format!("g{n}")), &lan())
                .await;
        }
        let e = w
            .gate
            .login(&creds("nobody", "g"), &lan())
            .await
            .unwrap_err();
        assert!(matches!(
            e.failure_reason(),
            Some(FailureReason::Throttled { .. })
        ));
        assert!(trail(&w)[0].details.starts_with("unknown user"));
    }

    #[tokio::test]
    async fn unlock_needs_manage_accounts_and_the_refusal_is_audited() {
        let w = world();
        let secr = w
            .gate
            .login(&creds("secr.durand", SECR_PW), &lan())
            .await
            .unwrap();
        let e = w.gate.unlock(&secr.token, "dr.martin").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        let last = trail(&w).pop().unwrap();
        assert_eq!(last.action, Action::AccessRefused);
        assert!(last.details.contains("manage-accounts"));
    }

    #[tokio::test]
    async fn logout_and_expiry_are_audited() {
        let w = world();
        let a = w
            .gate
            .login(&creds("secr.durand", SECR_PW), &lan())
            .await
            .unwrap();
        let b = w
            .gate
            .login(&creds("dr.martin", DR_PW), &lan())
            .await
            .unwrap();
        let c = w
            .gate
            .login(&creds("admin.it", ADMIN_PW), &lan())
            .await
            .unwrap();
        w.gate.logout(&a.token).await.unwrap();
        assert_eq!(
            w.gate.logout(&a.token).await.unwrap_err().kind(),
            ErrorKind::InvalidSession
        );
        assert_eq!(
            w.gate.check(&a.token).await.unwrap_err().kind(),
            ErrorKind::InvalidSession
        );
        w.clock.advance(Duration::minutes(20));
        w.gate.check(&b.token).await.unwrap();
        w.clock.advance(Duration::minutes(15)); // c idle 35 min, b idle 15
        assert_eq!(
            w.gate.check(&c.token).await.unwrap_err().kind(),
            ErrorKind::InvalidSession
        );
        w.clock.advance(Duration::minutes(30));
        assert_eq!(w.gate.expire_sessions().await.unwrap(), 1);
        let t = trail(&w);
        let actions: Vec<Action> = t.iter().map(|e| e.action).collect();
        assert_eq!(
            actions[3..],
            [
                Action::Logout,
                Action::SessionExpired,
                Action::SessionExpired
            ]
        );
        assert_eq!(t[4].actor.user_id, "admin.it");
        assert!(t[4].details.contains("idle timeout"));
        assert_eq!(t[5].actor.user_id, "dr.martin");
        assert!(w.gate.sessions().is_empty());
    }

    #[tokio::test]
    async fn login_is_refused_when_the_audit_trail_fails() {
        let mut sink = MockSink::new();
        sink.expect_fmt().returning(|f| f.write_str("MockSink"));
        sink.expect_append().returning(|_| {
            Err(jfiv_audit::Error::Closed {
                reason: "disk full".into(),
            })
        });
        let (w, _) = world_with_sink(Arc::new(sink));
        let e = w
            .gate
            .login(&creds("secr.durand", SECR_PW), &lan())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuditUnavailable);
        assert!(
            w.gate.sessions().is_empty(),
            "no session survives an unaudited login"
        );
        // Refusals cannot be audited either: the caller learns it.
        let e = w
            .gate
            .login(&creds("secr.durand", "wrong"), &lan())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AuditUnavailable);
    }

    #[tokio::test]
    async fn errors_that_are_not_about_the_password_are_audited_as_failures() {
        #[derive(Debug)]
        struct Down;
        #[async_trait::async_trait]
        impl Authenticator for Down {
            async fn authenticate(
                &self,
                _: &Credentials,
                _: &ConnectionContext,
            ) -> Result<crate::Identity> {
                Err(Error::DatabaseUnavailable {
                    database: "JFIV".into(),
                    detail: "ORA-12541: TNS:no listener".into(),
                })
            }
        }
        let sink = Arc::new(MemorySink::new());
        let policy = RemoteAccessPolicy::builder()
            .lan("10.1.0.0/16".parse().unwrap())
            .build()
            .unwrap();
        let gate = AccessGate::new(Down, policy, sink.clone(), Arc::new(ManualClock::new(t0())));
        let e = gate.login(&creds("x", "y"), &lan()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DatabaseUnavailable);
        let t = sink.query(&Query::all()).await.unwrap();
        assert_eq!(t[0].event.outcome, Outcome::Failure);
        assert!(t[0].event.details.contains("ORA-12541"));
        assert_eq!(
            gate.lockout().state("x"),
            None,
            "not counted as a password failure"
        );
    }
}

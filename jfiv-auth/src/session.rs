//! Sessions: random 256-bit tokens, idle timeout, absolute lifetime, logout.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use jfiv_audit::{Clock, Origin};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::{Identity, Profile, Randomness};

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long expires (default 30 minutes).
    pub idle_timeout: Duration,
    /// A session expires this long after login, however active (default 4 hours).
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(4),
        }
    }
}

/// The secret a client presents to use its session: 256 random bits, hex-encoded.
///
/// Redacted in `Debug`; the store keeps only its SHA-256.
#[derive(Clone)]
pub struct SessionToken(SecretString);

impl SessionToken {
    /// A token from the string a client sent back.
    pub fn from_client(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token, to hand to the client (cookie, header). Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose_secret().as_bytes()).into()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken([redacted])")
    }
}

/// What is known about a session, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// A public identifier for the audit trail: the first 16 hex digits of the token's SHA-256.
    pub id: String,
    /// The user.
    pub username: String,
    /// The profile the user logged in with.
    pub profile: Profile,
    /// Where the user logged in from.
    pub origin: Origin,
    /// Login time.
    pub created: DateTime<Utc>,
    /// Last use.
    pub last_activity: DateTime<Utc>,
}

/// An open session: its token and what it is.
#[derive(Debug, Clone)]
pub struct Session {
    /// The secret token.
    pub token: SessionToken,
    /// The session.
    pub info: SessionInfo,
}

/// Why a session ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryReason {
    /// Unused for longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Lifetime,
}

impl fmt::Display for ExpiryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpiryReason::Idle => "idle timeout",
            ExpiryReason::Lifetime => "absolute lifetime reached",
        })
    }
}

/// What [`Sessions::touch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touch {
    /// The session is valid; its last activity is now.
    Valid(SessionInfo),
    /// The session had expired and is now removed.
    Expired(SessionInfo, ExpiryReason),
    /// No such session.
    Unknown,
}

/// The open sessions, in memory.
#[derive(Debug)]
pub struct Sessions {
    policy: SessionPolicy,
    clock: Arc<dyn Clock>,
    rng: Randomness,
    open: Mutex<HashMap<[u8; 32], SessionInfo>>,
}

impl Sessions {
    /// An empty store.
    pub fn new(policy: SessionPolicy, clock: Arc<dyn Clock>, rng: Randomness) -> Self {
        Self {
            policy,
            clock,
            rng,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> SessionPolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], SessionInfo>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `identity` coming from `origin`.
    pub fn open(&self, identity: &Identity, origin: Origin) -> Session {
        let token = SessionToken(SecretString::from(hex::encode(self.rng.bytes::<32>())));
        let digest = token.digest();
        let now = self.clock.now();
        let info = SessionInfo {
            id: hex::encode(&digest[..8]),
            username: identity.username.clone(),
            profile: identity.profile,
            origin,
            created: now,
            last_activity: now,
        };
        self.lock().insert(digest, info.clone());
        Session { token, info }
    }

    fn expiry(&self, info: &SessionInfo, now: DateTime<Utc>) -> Option<ExpiryReason> {
        if now >= info.created + self.policy.absolute_lifetime {
            Some(ExpiryReason::Lifetime)
        } else if now >= info.last_activity + self.policy.idle_timeout {
            Some(ExpiryReason::Idle)
        } else {
            None
        }
    }

    /// Checks `token` and, if valid, marks the session used now.
    pub fn touch(&self, token: &SessionToken) -> Touch {
        let now = self.clock.now();
        let digest = token.digest();
        let mut open = self.lock();
        let Some(info) = open.get_mut(&digest) else {
            return Touch::Unknown;
        };
        if let Some(reason) = self.expiry(info, now) {
            let info = info.clone();
            open.remove(&digest);
            return Touch::Expired(info, reason);
        }
        info.last_activity = now;
        Touch::Valid(info.clone())
    }

    /// Closes the session of `token` (logout); returns it if it was open.
    pub fn close(&self, token: &SessionToken) -> Option<SessionInfo> {
        self.lock().remove(&token.digest())
    }

    /// Removes every expired session and returns them with the reason.
    pub fn sweep(&self) -> Vec<(SessionInfo, ExpiryReason)> {
        let now = self.clock.now();
        let mut open = self.lock();
        let mut expired = Vec::new();
        open.retain(|_, info| match self.expiry(info, now) {
            Some(reason) => {
                expired.push((info.clone(), reason));
                false
            }
            None => true,
        });
        expired.sort_by_key(|e| e.0.created);
        expired
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jfiv_audit::ManualClock;

    fn setup() -> (Arc<ManualClock>, Sessions) {
        let clock = Arc::new(ManualClock::new(
            DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ));
        let sessions = Sessions::new(
            SessionPolicy::default(),
            clock.clone(),
            Randomness::seeded(9),
        );
        (clock, sessions)
    }

    fn origin() -> Origin {
        Origin::Local {
            workstation: "amp-secr-1".into(),
        }
    }

    #[test]
    fn tokens_are_256_bit_random_and_redacted() {
        let (_, s) = setup();
        let id = Identity::new("a.martin", Profile::Secretary);
        let a = s.open(&id, origin());
        let b = s.open(&id, origin());
        assert_eq!(a.token.expose().len(), 64);
        assert!(hex::decode(a.token.expose()).is_ok());
        assert_ne!(a.token.expose(), b.token.expose());
        assert!(!format!("{a:?}").contains(a.token.expose()));
        assert!(!a.info.id.is_empty() && !a.token.expose().starts_with(&a.info.id));
    }

    #[test]
    fn idle_timeout_expires_and_activity_extends() {
        let (clock, s) = setup();
        let session = s.open(&Identity::new("a", Profile::Clinician), origin());
        clock.advance(Duration::minutes(29));
        assert!(matches!(s.touch(&session.token), Touch::Valid(_)));
        clock.advance(Duration::minutes(29));
        assert!(
            matches!(s.touch(&session.token), Touch::Valid(_)),
            "activity resets idle"
        );
        clock.advance(Duration::minutes(30));
        assert!(matches!(
            s.touch(&session.token),
            Touch::Expired(_, ExpiryReason::Idle)
        ));
        assert_eq!(
            s.touch(&session.token),
            Touch::Unknown,
            "expired sessions are removed"
        );
    }

    #[test]
    fn absolute_lifetime_expires_an_active_session() {
        let (clock, s) = setup();
        let session = s.open(&Identity::new("a", Profile::Clinician), origin());
        for _ in 0..15 {
            clock.advance(Duration::minutes(15));
            assert!(matches!(s.touch(&session.token), Touch::Valid(_)));
        }
        clock.advance(Duration::minutes(15)); // 4 h
        assert!(matches!(
            s.touch(&session.token),
            Touch::Expired(_, ExpiryReason::Lifetime)
        ));
    }

    #[test]
    fn logout_and_sweep() {
        let (clock, s) = setup();
        let a = s.open(&Identity::new("a", Profile::Clinician), origin());
        let b = s.open(&Identity::new("b", Profile::Auditor), origin());
        assert_eq!(s.close(&a.token).unwrap().username, "a");
        assert_eq!(s.touch(&a.token), Touch::Unknown);
        assert_eq!(s.close(&a.token), None);
        clock.advance(Duration::minutes(31));
        let swept = s.sweep();
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].0.username, "b");
        assert_eq!(swept[0].1, ExpiryReason::Idle);
        assert!(s.is_empty());
        assert_eq!(s.touch(&b.token), Touch::Unknown);
        assert_eq!(
            s.touch(&SessionToken::from_client("forged")),
            Touch::Unknown
        );
    }
}

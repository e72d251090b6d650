//! The [`Authenticator`] conformance suite.
//!
//! Each check takes `&dyn Authenticator` and a [`Fixture`] naming one known good user. The
//! [`authenticator_conformance!`](crate::authenticator_conformance) macro stamps one `#[test]`
//! per check for an implementation:
//!
//! ```ignore
//! jfiv_auth::authenticator_conformance!(my_backend, || my_setup());
//! ```
//!
//! where `my_setup()` returns `(Box<dyn Authenticator>, Fixture)`. Checks panic on failure.

use std::any::Any;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Authenticator, ConnectionContext, Credentials, ErrorKind, Profile};

/// What the checks need to know about the implementation under test.
pub struct Fixture {
    /// A user that exists, with its right password and database.
    pub good: Credentials,
    /// The profile that user must get.
    pub profile: Profile,
    /// A user name that does not exist.
    pub unknown_user: String,
    /// The connection the logins come over.
    pub context: ConnectionContext,
    /// Whatever must outlive the test (a temporary directory).
    pub keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("good", &self.good)
            .field("profile", &self.profile)
            .field("unknown_user", &self.unknown_user)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    fn wrong_password(&self) -> Credentials {
        let mut wrong = self.good.expose_password().to_owned();
        wrong.push('x');
        Credentials::new(
            self.good.username.clone(),
            wrong,
            self.good.database.clone(),
        )
    }

    fn unknown(&self) -> Credentials {
        Credentials::new(
            self.unknown_user.clone(),
            format!("{}x", self.good.expose_password()),
            self.good.database.clone(),
        )
    }
}

/// Runs `future` to completion on a fresh multi-thread Tokio runtime (the checks use
/// `spawn_blocking`).
///
/// # Panics
/// If the runtime cannot be built.
pub fn block_on<F: Future>(future: F) -> F::Output {
    #[allow(clippy::expect_used)] // test support: a runtime that cannot start fails the test
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(future)
}

/// The right credentials give the fixture's user and profile.
pub async fn right_credentials_succeed(auth: &dyn Authenticator, fx: &Fixture) {
    let id = auth.authenticate(&fx.good, &fx.context).await;
    let id = match id {
        Ok(id) => id,
        Err(e) => panic!("right credentials refused: {e} ({:?})", e.failure_reason()),
    };
    assert!(id.username.eq_ignore_ascii_case(&fx.good.username));
    assert_eq!(id.profile, fx.profile);
}

/// A wrong password is `InvalidCredentials`.
pub async fn wrong_password_is_invalid_credentials(auth: &dyn Authenticator, fx: &Fixture) {
    let err = auth
        .authenticate(&fx.wrong_password(), &fx.context)
        .await
        .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidCredentials));
}

/// An empty password is refused like a wrong one.
pub async fn empty_password_is_refused(auth: &dyn Authenticator, fx: &Fixture) {
    let empty = Credentials::new(fx.good.username.clone(), "", fx.good.database.clone());
    let err = auth.authenticate(&empty, &fx.context).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidCredentials));
}

/// A wrong password and an unknown user give the same kind, message and `Debug`.
pub async fn unknown_user_and_wrong_password_look_the_same(auth: &dyn Authenticator, fx: &Fixture) {
    let wrong = auth.authenticate(&fx.wrong_password(), &fx.context).await;
    let unknown = auth.authenticate(&fx.unknown(), &fx.context).await;
    let (Err(wrong), Err(unknown)) = (wrong, unknown) else {
        panic!("both must fail");
    };
    assert_eq!(wrong.kind(), unknown.kind());
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(format!("{wrong:?}"), format!("{unknown:?}"));
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A wrong password and an unknown user take comparable time: medians of many interleaved
/// tries within a factor 3 of each other (generous, for a noisy shared machine; without a
/// dummy hash the unknown user is hundreds of times faster).
pub async fn unknown_user_and_wrong_password_take_comparable_time(
    auth: &dyn Authenticator,
    fx: &Fixture,
) {
    const TRIES: usize = 31;
    let wrong = fx.wrong_password();
    let unknown = fx.unknown();
    // Warm up (caches, lazy initialisation).
    for _ in 0..3 {
        let _ = auth.authenticate(&wrong, &fx.context).await;
        let _ = auth.authenticate(&unknown, &fx.context).await;
    }
    let (mut tw, mut tu) = (Vec::with_capacity(TRIES), Vec::with_capacity(TRIES));
    for _ in 0..TRIES {
        let start = Instant::now();
        let a = auth.authenticate(&wrong, &fx.context).await;
        tw.push(start.elapsed());
        let start = Instant::now();
        let b = auth.authenticate(&unknown, &fx.context).await;
        tu.push(start.elapsed());
        assert!(a.is_err() && b.is_err());
    }
    let (mw, mu) = (median(tw), median(tu));
    // A floor of 20 µs keeps scheduler noise on an instant mock from deciding the ratio.
    let floor = Duration::from_micros(20);
    let (hi, lo) = (mw.max(mu).max(floor), mw.min(mu).max(floor));
    let ratio = hi.as_secs_f64() / lo.as_secs_f64();
    assert!(
        ratio < 3.0,
        "wrong password median {mw:?}, unknown user median {mu:?}: ratio {ratio:.1} >= 3"
    );
}

/// The password appears in no `Debug` output: credentials, errors, identity, authenticator.
pub async fn secrets_never_appear_in_debug(auth: &dyn Authenticator, fx: &Fixture) {
    let password = fx.good.expose_password().to_owned();
    assert!(!format!("{:?}", fx.good).contains(&password));
    assert!(!format!("{auth:?}").contains(&password));
    let ok = auth.authenticate(&fx.good, &fx.context).await;
    assert!(!format!("{ok:?}").contains(&password));
    let wrong = fx.wrong_password();
    let err = auth.authenticate(&wrong, &fx.context).await;
    let text = format!("{err:?}");
    assert!(!text.contains(wrong.expose_password()), "{text}");
    if let Err(e) = err {
        assert!(!e.to_string().contains(wrong.expose_password()));
    }
}

/// Stamps one `#[test]` per conformance check, in a module named `$name`, for the
/// implementation returned by `$setup` (an expression callable as `$setup()` returning
/// `(Box<dyn Authenticator>, Fixture)`).
#[macro_export]
macro_rules! authenticator_conformance {
    ($name:ident, $setup:expr) => {
        $crate::authenticator_conformance!(@module $name, $setup;
            right_credentials_succeed,
            wrong_password_is_invalid_credentials,
            empty_password_is_refused,
            unknown_user_and_wrong_password_look_the_same,
            unknown_user_and_wrong_password_take_comparable_time,
            secrets_never_appear_in_debug,
        );
    };
    (@module $name:ident, $setup:expr; $($check:ident,)+) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $check() {
                    let (auth, fixture) = ($setup)();
                    $crate::conformance::block_on(async {
                        $crate::conformance::$check(&*auth, &fixture).await;
                    });
                }
            )+
        }
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jfiv_audit::SystemClock;
    use secrecy::SecretString;

    use super::*;
    use crate::local::tests::test_options;
    use crate::{LocalAccounts, Randomness};

    fn local_setup() -> (Box<dyn Authenticator>, Fixture) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAccounts::open_with(
            dir.path().join("accounts.json"),
            test_options(),
            Arc::new(SystemClock),
            Arc::new(Randomness::seeded(11)),
        )
        .unwrap();
        store
            .create_account(
                "op.bandes",
                Profile::BackupOperator,
                &SecretString::from("Salle-Eloignee#2026".to_owned()),
            )
            .unwrap();
        let fixture = Fixture {
            good: Credentials::new("op.bandes", "Salle-Eloignee#2026", ""),
            profile: Profile::BackupOperator,
            unknown_user: "op.inconnu".into(),
            context: ConnectionContext::new("10.1.0.9".parse().unwrap()),
            keep_alive: Some(Box::new(dir)),
        };
        (Box::new(store), fixture)
    }

    crate::authenticator_conformance!(local_accounts, local_setup);

    /// An authenticator that forgets the dummy hash: the timing check must catch it.
    #[derive(Debug)]
    struct NoDummyHash(LocalAccounts);

    #[async_trait::async_trait]
    impl Authenticator for NoDummyHash {
        async fn authenticate(
            &self,
            credentials: &Credentials,
            context: &ConnectionContext,
        ) -> crate::Result<crate::Identity> {
            if !self
                .0
                .accounts()
                .iter()
                .any(|a| a.username == credentials.username)
            {
                return Err(crate::Error::invalid_credentials(
                    crate::FailureReason::UnknownUser,
                ));
            }
            self.0.authenticate(credentials, context).await
        }
    }

    #[test]
    fn timing_check_fails_without_the_dummy_hash() {
        let (_, fixture) = local_setup();
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAccounts::open_with(
            dir.path().join("accounts.json"),
            test_options(),
            Arc::new(SystemClock),
            Arc::new(Randomness::seeded(12)),
        )
        .unwrap();
        store
            .create_account(
                "op.bandes",
                Profile::BackupOperator,
                &SecretString::from("Salle-Eloignee#2026".to_owned()),
            )
            .unwrap();
        let broken = NoDummyHash(store);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on(unknown_user_and_wrong_password_take_comparable_time(
                &broken, &fixture,
            ))
        }));
        assert!(
            result.is_err(),
            "the timing check passed without a dummy hash"
        );
    }
}

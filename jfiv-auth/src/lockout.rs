//! Throttling and lockout after failed logins (CNIL deliberation 2022-100).
//!
//! Plan, then execute: [`LockoutPolicy::decide`] and [`LockoutPolicy::record_failure`] are pure
//! functions of a [`FailureState`] and "now"; [`LockoutTracker`] keeps the states of every user
//! name behind a lock and applies them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::FailureReason;

/// The numbers of throttling and lockout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Consecutive failures allowed before throttling starts (CNIL: 5).
    pub free_failures: u32,
    /// Wait imposed once `free_failures` failures are reached (an attempt must come strictly
    /// later than this after the last failure); doubles with each further failure.
    pub base_delay: Duration,
    /// The most a throttling wait grows to.
    pub max_delay: Duration,
    /// Failures allowed in any 24 hours (CNIL: 25).
    pub daily_limit: u32,
    /// Consecutive failures that lock the account.
    pub lock_after: u32,
    /// How long a lock lasts; `None`: until an administrator unlocks it.
    pub lock_duration: Option<Duration>,
}

impl Default for LockoutPolicy {
    /// 5 free failures, then 1 minute doubling up to 1 hour, 25 failures a day, lock after 10
    /// for 1 hour.
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::minutes(1),
            max_delay: Duration::hours(1),
            daily_limit: 25,
            lock_after: 10,
            lock_duration: Some(Duration::hours(1)),
        }
    }
}

/// The failure history of one user name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureState {
    /// Failures since the last success, unlock or lock expiry.
    pub consecutive: u32,
    /// When the last failure happened.
    pub last_failure: Option<DateTime<Utc>>,
    /// Failures of the last 24 hours, oldest first.
    pub window: VecDeque<DateTime<Utc>>,
    /// The lock, if the account is locked.
    pub lock: Option<Lock>,
}

/// A lock on an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Until this time.
    Until(DateTime<Utc>),
    /// Until an administrator unlocks it.
    UntilUnlocked,
}

/// Whether an attempt may be checked now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptDecision {
    /// Check the password.
    Allowed,
    /// Refuse without checking, for this reason.
    Refused(FailureReason),
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecorded {
    /// Consecutive failures now.
    pub consecutive: u32,
    /// The lock this failure put on the account, if it locked it.
    pub locked: Option<Lock>,
}

impl LockoutPolicy {
    fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
        now - Duration::hours(24)
    }

    /// The wait after `consecutive` failures (zero while within the free failures).
    pub fn delay_after(&self, consecutive: u32) -> Duration {
        if consecutive < self.free_failures {
            return Duration::zero();
        }
        let doublings = (consecutive - self.free_failures).min(30);
        let mut delay = self.base_delay;
        for _ in 0..doublings {
            delay = delay * 2;
            if delay >= self.max_delay {
                return self.max_delay;
            }
        }
        delay.min(self.max_delay)
    }

    /// Whether an attempt at `now` may be checked, given `state`.
    pub fn decide(&self, state: &FailureState, now: DateTime<Utc>) -> AttemptDecision {
        match state.lock {
            Some(Lock::UntilUnlocked) => {
                return AttemptDecision::Refused(FailureReason::Locked { until: None });
            }
            Some(Lock::Until(t)) if now < t => {
                return AttemptDecision::Refused(FailureReason::Locked { until: Some(t) });
            }
            _ => {}
        }
        let start = Self::window_start(now);
        let recent: Vec<_> = state.window.iter().filter(|&&t| t > start).collect();
        if recent.len() as u64 >= u64::from(self.daily_limit)
            && let Some(&&oldest) = recent.first()
        {
            return AttemptDecision::Refused(FailureReason::DailyLimit {
                until: oldest + Duration::hours(24),
            });
        }
        let lock_expired = matches!(state.lock, Some(Lock::Until(t)) if now >= t);
        if !lock_expired && let Some(last) = state.last_failure {
            // Strictly longer than the delay: at `until` itself the attempt is still refused.
            let until = last + self.delay_after(state.consecutive);
            if state.consecutive >= self.free_failures && now <= until {
                return AttemptDecision::Refused(FailureReason::Throttled { until });
            }
        }
        AttemptDecision::Allowed
    }

    /// Records a failure at `now` into `state`.
    pub fn record_failure(&self, state: &mut FailureState, now: DateTime<Utc>) -> FailureRecorded {
        if matches!(state.lock, Some(Lock::Until(t)) if now >= t) {
            // The lock ran out: start counting again.
            state.lock = None;
            state.consecutive = 0;
        }
        let start = Self::window_start(now);
        while state.window.front().is_some_and(|&t| t <= start) {
            state.window.pop_front();
        }
        state.window.push_back(now);
        state.consecutive = state.consecutive.saturating_add(1);
        state.last_failure = Some(now);
        let mut locked = None;
        if state.lock.is_none() && state.consecutive >= self.lock_after {
            let lock = match self.lock_duration {
                Some(d) => Lock::Until(now + d),
                None => Lock::UntilUnlocked,
            };
            state.lock = Some(lock);
            locked = Some(lock);
        }
        FailureRecorded {
            consecutive: state.consecutive,
            locked,
        }
    }

    /// Records a success: the consecutive count and any (expired) lock are cleared; the 24-hour
    /// window is kept.
    pub fn record_success(&self, state: &mut FailureState) {
        state.consecutive = 0;
        state.last_failure = None;
        state.lock = None;
    }
}

/// The failure states of every user name seen, in memory.
///
/// User names are compared case-insensitively, and unknown names are tracked like known ones
/// (so throttling does not tell which accounts exist). At most `capacity` names are kept; when
/// full, names with no failure in 24 hours and no lock are forgotten first, then the
/// least-recently failing unlocked ones.
///
/// Not persisted: a restart of the process forgets failures and locks (the Oracle account's
/// own lock, ORA-28000, persists in the database).
#[derive(Debug)]
pub struct LockoutTracker {
    policy: LockoutPolicy,
    capacity: usize,
    states: Mutex<HashMap<String, FailureState>>,
}

impl LockoutTracker {
    /// A tracker applying `policy`, keeping up to 100 000 names.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self::with_capacity(policy, 100_000)
    }

    /// A tracker keeping up to `capacity` names.
    pub fn with_capacity(policy: LockoutPolicy, capacity: usize) -> Self {
        Self {
            policy,
            capacity: capacity.max(1),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn key(user: &str) -> String {
        user.to_lowercase()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, FailureState>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an attempt for `user` at `now` may be checked.
    pub fn decide(&self, user: &str, now: DateTime<Utc>) -> AttemptDecision {
        match self.lock().get(&Self::key(user)) {
            Some(state) => self.policy.decide(state, now),
            None => AttemptDecision::Allowed,
        }
    }

    /// Records a failure for `user` at `now`.
    pub fn record_failure(&self, user: &str, now: DateTime<Utc>) -> FailureRecorded {
        let mut states = self.lock();
        let key = Self::key(user);
        if !states.contains_key(&key) && states.len() >= self.capacity {
            let start = LockoutPolicy::window_start(now);
            states.retain(|_, s| s.lock.is_some() || s.last_failure.is_some_and(|t| t > start));
            if states.len() >= self.capacity {
                let victim = states
                    .iter()
                    .filter(|(_, s)| s.lock.is_none())
                    .min_by_key(|(_, s)| s.last_failure)
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    states.remove(&victim);
                }
            }
        }
        let state = states.entry(key).or_default();
        self.policy.record_failure(state, now)
    }

    /// Records a success for `user`.
    pub fn record_success(&self, user: &str) {
        if let Some(state) = self.lock().get_mut(&Self::key(user)) {
            self.policy.record_success(state);
        }
    }

    /// Unlocks `user` (an administrator's decision) and clears the consecutive failures.
    /// Returns whether the account was locked or throttled.
    pub fn unlock(&self, user: &str) -> bool {
        match self.lock().get_mut(&Self::key(user)) {
            Some(state) => {
                let was = state.lock.is_some() || state.consecutive > 0;
                self.policy.record_success(state);
                was
            }
            None => false,
        }
    }

    /// A copy of the state of `user`.
    pub fn state(&self, user: &str) -> Option<FailureState> {
        self.lock().get(&Self::key(user)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn five_free_failures_then_waits_longer_than_a_minute() {
        let p = LockoutPolicy::default();
        let mut s = FailureState::default();
        let mut now = t0();
        for _ in 0..5 {
            assert_eq!(p.decide(&s, now), AttemptDecision::Allowed);
            p.record_failure(&mut s, now);
            now += Duration::seconds(1);
        }
        // The 6th attempt one second after the 5th failure is refused; the wait is >= 1 min.
        let last = s.last_failure.unwrap();
        assert!(matches!(
            p.decide(&s, last + Duration::seconds(59)),
            AttemptDecision::Refused(FailureReason::Throttled { until }) if until - last >= Duration::minutes(1)
        ));
        // Strictly longer than a minute: at exactly one minute it is still refused.
        assert!(matches!(
            p.decide(&s, last + Duration::minutes(1)),
            AttemptDecision::Refused(FailureReason::Throttled { .. })
        ));
        let after = last + Duration::minutes(1) + Duration::seconds(1);
        assert_eq!(p.decide(&s, after), AttemptDecision::Allowed);
        // Each further failure doubles the wait.
        p.record_failure(&mut s, after);
        let last = s.last_failure.unwrap();
        assert!(matches!(
            p.decide(&s, last + Duration::seconds(120)),
            AttemptDecision::Refused(FailureReason::Throttled { .. })
        ));
        assert_eq!(
            p.decide(&s, last + Duration::seconds(121)),
            AttemptDecision::Allowed
        );
    }

    #[test]
    fn locks_after_ten_and_unlocks_after_the_lock_time() {
        let p = LockoutPolicy::default();
        let mut s = FailureState::default();
        let mut now = t0();
        let mut locked = None;
        for i in 1..=10 {
            assert_eq!(p.decide(&s, now), AttemptDecision::Allowed, "attempt {i}");
            let r = p.record_failure(&mut s, now);
            assert_eq!(r.consecutive, i);
            if i < 10 {
                assert_eq!(r.locked, None);
            } else {
                locked = r.locked;
            }
            now += p.delay_after(i) + Duration::seconds(1);
        }
        let last = s.last_failure.unwrap();
        assert_eq!(locked, Some(Lock::Until(last + Duration::hours(1))));
        assert_eq!(
            p.decide(&s, last + Duration::minutes(59)),
            AttemptDecision::Refused(FailureReason::Locked {
                until: Some(last + Duration::hours(1))
            })
        );
        let after = last + Duration::hours(1);
        assert_eq!(p.decide(&s, after), AttemptDecision::Allowed);
        // After expiry a failure counts from 1 again, not 11.
        assert_eq!(p.record_failure(&mut s, after).consecutive, 1);
        assert_eq!(s.lock, None);
    }

    #[test]
    fn lock_until_unlocked_needs_an_administrator() {
        let p = LockoutPolicy {
            lock_duration: None,
            lock_after: 3,
            ..LockoutPolicy::default()
        };
        let tracker = LockoutTracker::new(p);
        for _ in 0..3 {
            tracker.record_failure("Dr.Martin", t0());
        }
        let far = t0() + Duration::days(30);
        assert_eq!(
            tracker.decide("dr.martin", far),
            AttemptDecision::Refused(FailureReason::Locked { until: None })
        );
        assert!(tracker.unlock("DR.MARTIN"));
        assert_eq!(tracker.decide("dr.martin", far), AttemptDecision::Allowed);
        assert!(!tracker.unlock("nobody"));
    }

    #[test]
    fn no_more_than_25_failures_in_24_hours() {
        // Lock disabled in practice, to reach the daily limit.
        let p = LockoutPolicy {
            lock_after: u32::MAX,
            max_delay: Duration::minutes(1),
            ..LockoutPolicy::default()
        };
        let mut s = FailureState::default();
        let mut now = t0();
        let first = now;
        for i in 0..25 {
            assert_eq!(p.decide(&s, now), AttemptDecision::Allowed, "attempt {i}");
            p.record_failure(&mut s, now);
            now += Duration::minutes(2);
        }
        assert_eq!(
            p.decide(&s, now),
            AttemptDecision::Refused(FailureReason::DailyLimit {
                until: first + Duration::hours(24)
            })
        );
        assert_eq!(
            p.decide(&s, first + Duration::hours(24)),
            AttemptDecision::Allowed
        );
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let p = LockoutPolicy::default();
        let mut s = FailureState::default();
        for _ in 0..4 {
            p.record_failure(&mut s, t0());
        }
        p.record_success(&mut s);
        assert_eq!(s.consecutive, 0);
        assert_eq!(s.window.len(), 4, "the daily window is kept");
        p.record_failure(&mut s, t0());
        assert_eq!(p.decide(&s, t0()), AttemptDecision::Allowed);
    }

    #[test]
    fn tracker_capacity_is_bounded_and_keeps_locked_names() {
        let p = LockoutPolicy {
            lock_after: 2,
            ..LockoutPolicy::default()
        };
        let tracker = LockoutTracker::with_capacity(p, 3);
        tracker.record_failure("locked", t0());
        tracker.record_failure("locked", t0());
        for i in 0..10 {
            tracker.record_failure(&format!("spray{i}"), t0() + Duration::seconds(i));
        }
        assert!(tracker.lock().len() <= 3);
        assert!(tracker.state("locked").unwrap().lock.is_some());
    }
}

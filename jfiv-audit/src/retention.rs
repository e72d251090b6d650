//! Retention: which whole periods have expired. Pure planning; [`FileLog::prune`] executes.
//!
//! CNIL asks that access traces be kept for 6 to 12 months and then deleted. A period expires
//! when its END is older than the retention: with `Retention::Months(12)`, March 2025
//! (ending 2025-04-01) expires on 2026-04-01, when its newest event is 12 months old.
//!
//! [`FileLog::prune`]: crate::FileLog::prune

use chrono::{DateTime, Days, Months, Utc};

use crate::PeriodScheme;
use crate::verify::PeriodSummary;

/// How long periods are kept after they end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Whole calendar months (the usual policy: `Months(12)`).
    Months(u32),
    /// Days (for daily periods and tests).
    Days(u32),
}

impl Retention {
    /// `time` plus the retention, or `None` on overflow.
    fn after(self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Retention::Months(m) => time.checked_add_months(Months::new(m)),
            Retention::Days(d) => time.checked_add_days(Days::new(u64::from(d))),
        }
    }
}

/// What a prune would do (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrunePlan {
    /// The time the plan was made for.
    pub now: DateTime<Utc>,
    /// The policy.
    pub retention: Retention,
    /// Periods whose file will be deleted (their seals stay), oldest first.
    pub expired: Vec<String>,
    /// Records in the expired periods.
    pub expired_records: u64,
}

/// The periods of `periods` that have expired at `now`: sealed, not yet pruned, not the active
/// period, and whose end is at least `retention` ago. Pure: no I/O.
pub fn plan_prune(
    periods: &[PeriodSummary],
    active_period: &str,
    now: DateTime<Utc>,
    retention: Retention,
) -> PrunePlan {
    let mut plan = PrunePlan {
        now,
        retention,
        expired: Vec::new(),
        expired_records: 0,
    };
    for p in periods {
        if p.pruned || !p.sealed || p.period == active_period {
            continue;
        }
        let Some((_, end)) = PeriodScheme::bounds(&p.period) else {
            continue;
        };
        if retention.after(end).is_some_and(|limit| limit <= now) {
            plan.expired.push(p.period.clone());
            plan.expired_records += p.records;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn period(name: &str, sealed: bool, pruned: bool) -> PeriodSummary {
        PeriodSummary {
            period: name.into(),
            first_seq: 0,
            records: 10,
            sealed,
            pruned,
        }
    }

    #[test]
    fn a_month_expires_twelve_months_after_its_end() {
        let periods = vec![
            period("2025-02", true, true),
            period("2025-03", true, false),
            period("2025-04", true, false),
            period("2026-04", false, false),
        ];
        let just_before = Utc.with_ymd_and_hms(2026, 3, 31, 23, 59, 59).unwrap();
        let plan = plan_prune(&periods, "2026-04", just_before, Retention::Months(12));
        assert!(plan.expired.is_empty(), "{plan:?}");
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
        let plan = plan_prune(&periods, "2026-04", at, Retention::Months(12));
        assert_eq!(plan.expired, vec!["2025-03".to_owned()]);
        assert_eq!(plan.expired_records, 10);
    }

    #[test]
    fn the_active_or_unsealed_period_is_never_expired() {
        let periods = vec![period("2020-01", false, false)];
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(
            plan_prune(&periods, "2020-01", now, Retention::Days(1))
                .expired
                .is_empty()
        );
        let sealed = vec![period("2020-01", true, false)];
        assert!(
            plan_prune(&sealed, "2020-01", now, Retention::Days(1))
                .expired
                .is_empty()
        );
        assert_eq!(
            plan_prune(&sealed, "2020-02", now, Retention::Days(1))
                .expired
                .len(),
            1
        );
    }
}

//! Media management: labels, pools, and the GFS rotation that says which tape to load tonight.
//!
//! Everything here is a pure function of the inventory, the policy and an injected "now":
//! [`plan_tonight`] computes a [`TonightPlan`] (which pool, which tape, why), and
//! [`check_writable`] refuses a tape that must not be written. The I/O (reading the label in the
//! drive) is [`identify_for_writing`], which composes them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::device::TapeDevice;
use super::format::{FORMAT_VERSION, read_label, write_label};
use super::{Error, Result};

/// A pool of tapes that rotate together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    /// Nightly tapes, reused after a week.
    Daily,
    /// One night a week, kept about a month.
    Weekly,
    /// One night a month, kept a year.
    Monthly,
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pool::Daily => "daily",
            Pool::Weekly => "weekly",
            Pool::Monthly => "monthly",
        })
    }
}

impl FromStr for Pool {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "daily" => Ok(Pool::Daily),
            "weekly" => Ok(Pool::Weekly),
            "monthly" => Ok(Pool::Monthly),
            _ => Err(Error::Config {
                reason: format!("unknown pool {s:?} (daily, weekly or monthly)"),
            }),
        }
    }
}

/// What file 0 of every jfiv tape says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaLabel {
    /// Unique id of this labelling (a relabelled tape gets a new one).
    pub uuid: Uuid,
    /// The cartridge's barcode.
    pub barcode: String,
    /// Its pool.
    pub pool: Pool,
    /// When it was labelled.
    pub created: DateTime<Utc>,
    /// The tape format version.
    pub format_version: u16,
}

impl MediaLabel {
    /// A new label (the UUID is injected, for reproducible tests).
    pub fn new(uuid: Uuid, barcode: impl Into<String>, pool: Pool, created: DateTime<Utc>) -> Self {
        Self {
            uuid,
            barcode: barcode.into(),
            pool,
            created,
            format_version: FORMAT_VERSION,
        }
    }
}

/// The GFS (grandfather-father-son) rotation and retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// The night of the week that goes to the weekly pool (and once a month to the monthly).
    pub weekly_day: Weekday,
    /// Days a daily tape is kept before it may be overwritten.
    pub daily_retention_days: u32,
    /// Days a weekly tape is kept.
    pub weekly_retention_days: u32,
    /// Days a monthly tape is kept.
    pub monthly_retention_days: u32,
    /// Hours after midnight UTC until which a backup still belongs to the previous night (a
    /// backup at 01:30 is "last night's").
    pub night_rollover_hours: u32,
}

impl Default for RotationPolicy {
    /// Daily tapes reused after 7 days, weekly (Friday) kept 31 days, monthly (the first Friday
    /// of the month) kept 365 days.
    fn default() -> Self {
        Self {
            weekly_day: Weekday::Fri,
            daily_retention_days: 7,
            weekly_retention_days: 31,
            monthly_retention_days: 365,
            night_rollover_hours: 12,
        }
    }
}

impl RotationPolicy {
    /// The night (a date) a moment belongs to.
    pub fn night_of(&self, at: DateTime<Utc>) -> NaiveDate {
        (at - Duration::hours(i64::from(self.night_rollover_hours))).date_naive()
    }

    /// The pool of the backup of `night`.
    pub fn pool_for(&self, night: NaiveDate) -> Pool {
        if night.weekday() != self.weekly_day {
            Pool::Daily
        } else if night.day() <= 7 {
            Pool::Monthly
        } else {
            Pool::Weekly
        }
    }

    /// Retention of a pool, in days.
    pub fn retention_days(&self, pool: &Pool) -> u32 {
        match pool {
            Pool::Daily => self.daily_retention_days,
            Pool::Weekly => self.weekly_retention_days,
            Pool::Monthly => self.monthly_retention_days,
        }
    }

    /// The first night a tape last written at `written` may be overwritten.
    pub fn expiry_night(&self, pool: &Pool, written: DateTime<Utc>) -> NaiveDate {
        self.night_of(written) + Duration::days(i64::from(self.retention_days(pool)))
    }

    /// The moment the night `night` starts (for messages and errors).
    pub fn night_start(&self, night: NaiveDate) -> DateTime<Utc> {
        let midnight = night.and_hms_opt(0, 0, 0).unwrap_or_default();
        Utc.from_utc_datetime(&midnight) + Duration::hours(i64::from(self.night_rollover_hours))
    }
}

/// What the inventory knows of one tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// Its label.
    pub label: MediaLabel,
    /// When a session last started on it (None: never written since labelled).
    pub last_written: Option<DateTime<Utc>>,
}

impl MediaInfo {
    /// When its retention expires (None: it holds nothing to keep).
    pub fn expires(&self, policy: &RotationPolicy) -> Option<DateTime<Utc>> {
        self.last_written
            .map(|w| policy.night_start(policy.expiry_night(&self.label.pool, w)))
    }
}

/// Why a tape was chosen for tonight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// It was never written since it was labelled.
    Blank,
    /// Its retention expired; its older sessions are overwritten.
    Expired {
        /// When it was last written.
        last_written: DateTime<Utc>,
    },
}

/// Which tape to load tonight, and why (a pure result, shown before anything is written).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TonightPlan {
    /// The night.
    pub night: NaiveDate,
    /// Its pool.
    pub pool: Pool,
    /// The tape to load.
    pub tape: String,
    /// Its label UUID.
    pub label: Uuid,
    /// Why it was chosen.
    pub choice: Choice,
}

/// Which tape to write tonight under `policy`, from the inventory.
///
/// Among the pool's tapes whose retention has expired (or that were never written), the one
/// written longest ago (blank tapes first, then by barcode) is chosen: a tape of another pool,
/// or one still under retention, is never proposed.
///
/// # Errors
/// [`Error::NoTapeAvailable`] with the earliest expiry in the pool, when no tape may be written.
pub fn plan_tonight(
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<TonightPlan> {
    let night = policy.night_of(now);
    let pool = policy.pool_for(night);
    let mut candidates: Vec<&MediaInfo> = inventory
        .iter()
        .filter(|m| m.label.pool == pool)
        .filter(|m| {
            m.last_written
                .is_none_or(|w| policy.expiry_night(&pool, w) <= night)
        })
        .collect();
    candidates.sort_by(|a, b| {
        a.last_written
            .cmp(&b.last_written)
            .then_with(|| a.label.barcode.cmp(&b.label.barcode))
    });
    match candidates.first() {
        Some(m) => Ok(TonightPlan {
            night,
            pool,
            tape: m.label.barcode.clone(),
            label: m.label.uuid,
            choice: m
                .last_written
                .map_or(Choice::Blank, |w| Choice::Expired { last_written: w }),
        }),
        None => Err(Error::NoTapeAvailable {
            earliest: inventory
                .iter()
                .filter(|m| m.label.pool == pool)
                .filter_map(|m| m.expires(policy))
                .min(),
            pool,
        }),
    }
}

/// Checks that the tape whose label is `found` may be written for `plan`.
///
/// # Errors
/// [`Error::WrongTape`] (not the planned barcode), [`Error::LabelMismatch`] (same barcode,
/// another labelling), [`Error::WrongPool`], [`Error::RetentionNotExpired`] (per the
/// inventory), [`Error::UnknownTape`] (not in the inventory).
pub fn check_writable(
    found: &MediaLabel,
    plan: &TonightPlan,
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<()> {
    if found.barcode != plan.tape {
        return Err(Error::WrongTape {
            expected: plan.tape.clone(),
            found: found.barcode.clone(),
        });
    }
    if found.uuid != plan.label {
        return Err(Error::LabelMismatch {
            tape: found.barcode.clone(),
            expected: plan.label,
            found: found.uuid,
        });
    }
    check_pool_member(found, &plan.pool, inventory, policy, now)
}

/// Checks that `found` is a tape of `pool` that may be overwritten now (used for continuation
/// volumes, where any tape of the pool will do).
///
/// # Errors
/// As [`check_writable`], without the barcode check.
pub fn check_pool_member(
    found: &MediaLabel,
    pool: &Pool,
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<()> {
    if &found.pool != pool {
        return Err(Error::WrongPool {
            tape: found.barcode.clone(),
            expected: pool.clone(),
            found: found.pool.clone(),
        });
    }
    let info = inventory
        .iter()
        .find(|m| m.label.barcode == found.barcode)
        .ok_or_else(|| Error::UnknownTape {
            tape: found.barcode.clone(),
        })?;
    if info.label.uuid != found.uuid {
        return Err(Error::LabelMismatch {
            tape: found.barcode.clone(),
            expected: info.label.uuid,
            found: found.uuid,
        });
    }
    if &info.label.pool != pool {
        return Err(Error::WrongPool {
            tape: found.barcode.clone(),
            expected: pool.clone(),
            found: info.label.pool.clone(),
        });
    }
    if let Some(last) = info.last_written
        && policy.expiry_night(pool, last) > policy.night_of(now)
    {
        return Err(Error::RetentionNotExpired {
            tape: found.barcode.clone(),
            expires: policy.night_start(policy.expiry_night(pool, last)),
        });
    }
    Ok(())
}

/// Reads the tape in `device` and checks it may be written for `plan`; returns its label.
///
/// # Errors
/// [`Error::NoTape`], [`Error::Unlabeled`], [`Error::WriteProtected`], and those of
/// [`check_writable`].
pub fn identify_for_writing(
    device: &mut dyn TapeDevice,
    plan: &TonightPlan,
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
) -> Result<MediaLabel> {
    let status = device.status()?;
    if !status.online {
        return Err(Error::NoTape {
            device: device.name(),
        });
    }
    let label = read_label(device)?;
    if status.write_protected {
        return Err(Error::WriteProtected {
            device: device.name(),
            tape: label.barcode,
        });
    }
    check_writable(&label, plan, inventory, policy, now)?;
    Ok(label)
}

/// Labels the tape in `device` (destroying what it holds).
///
/// A tape that already carries a jfiv label is relabelled only when the inventory says its
/// retention expired (or `force` is set for a tape the inventory does not know, e.g. one
/// coming from another site): a tape under retention is never relabelled.
///
/// # Errors
/// [`Error::RetentionNotExpired`], [`Error::LabelMismatch`] (an unknown jfiv tape without
/// `force`), [`Error::WriteProtected`], [`Error::NoTape`], device errors.
pub fn label_tape(
    device: &mut dyn TapeDevice,
    label: &MediaLabel,
    inventory: &[MediaInfo],
    policy: &RotationPolicy,
    now: DateTime<Utc>,
    force: bool,
) -> Result<()> {
    let status = device.status()?;
    if !status.online {
        return Err(Error::NoTape {
            device: device.name(),
        });
    }
    if status.write_protected {
        return Err(Error::WriteProtected {
            device: device.name(),
            tape: label.barcode.clone(),
        });
    }
    match read_label(device) {
        Ok(existing) => match inventory.iter().find(|m| m.label.uuid == existing.uuid) {
            Some(info) => {
                if let Some(expires) = info.expires(policy)
                    && expires > now
                {
                    return Err(Error::RetentionNotExpired {
                        tape: existing.barcode,
                        expires,
                    });
                }
            }
            None if !force => {
                return Err(Error::LabelMismatch {
                    tape: existing.barcode,
                    expected: label.uuid,
                    found: existing.uuid,
                });
            }
            None => {}
        },
        Err(Error::Unlabeled { .. }) => {}
        Err(e) => return Err(e),
    }
    write_label(device, label)
}

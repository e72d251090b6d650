//! The monitoring check of a site, in the Nagios / Centreon plugin convention.
//!
//! [`evaluate`] is a pure function: a [`SiteState`] (what was gathered from the catalogs, the
//! location register, the disk and the audit log), the [`Thresholds`] of the site
//! configuration and "now" give an [`Evaluation`]: a [`Status`] (exit code 0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN), one status line with performance data, and one line per finding.
//! Gathering the state is I/O and lives in [`gather`] and the
//! `check_backup` example.
//!
//! What is checked:
//! - the last successful **and verified** backup of each source (database on tape,
//!   application on disk) is older than the RPO (WARNING) or the critical RPO (CRITICAL); a
//!   source that never had one is CRITICAL;
//! - a tape written last night is still in the drive or the server room after the hour by which
//!   it must have left (CRITICAL: one fire away from losing it with the server);
//! - tonight's tape is in the offsite room (WARNING: bring it back before the night) or there
//!   is none that may be written (CRITICAL);
//! - the disk target is nearly full (WARNING / CRITICAL at the configured percentages) or
//!   missing (CRITICAL);
//! - the audit log does not verify (CRITICAL);
//! - the last nightly run failed (WARNING; its consequences show in the ages above).
//!
//! The overall status is the worst finding, in the order CRITICAL > WARNING > UNKNOWN > OK
//! (the monitoring-plugins `max_state_alt` order: an UNKNOWN never hides a WARNING).
//!
//! ```
//! use chrono::{Duration, NaiveTime, TimeZone, Utc};
//! use jfiv::monitor::*;
//! let now = Utc.with_ymd_and_hms(2026, 3, 3, 8, 0, 0).unwrap();
//! let state = SiteState {
//!     sources: vec![SourceState::verified("db", "jfiv-db", now - Duration::hours(30))],
//!     ..SiteState::default()
//! };
//! let eval = evaluate(&state, &Thresholds::default(), now);
//! assert_eq!(eval.status, Status::Warning);
//! assert!(eval.status_line().starts_with("JFIV BACKUP WARNING"));
//! assert!(eval.status_line().contains("age_db=30.0h;26;48"));
//! ```

use std::fmt;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use crate::site::Place;

/// A plugin status, with its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Warning,
    /// Exit 2.
    Critical,
    /// Exit 3: the state could not be determined.
    Unknown,
}

impl Status {
    /// The plugin's exit code.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Unknown => 1,
            Status::Warning => 2,
            Status::Critical => 3,
        }
    }

    /// The worse of two statuses (CRITICAL > WARNING > UNKNOWN > OK).
    pub fn worst(self, other: Status) -> Status {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        })
    }
}

/// The backup state of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// Short label used in the performance data (`db`, `app`): `age_<label>`.
    pub label: String,
    /// The source name (`jfiv-db`).
    pub name: String,
    /// When its last successful and verified backup finished; `None`: never.
    pub last_verified: Option<DateTime<Utc>>,
}

impl SourceState {
    /// A source whose last verified backup finished at `at`.
    pub fn verified(label: &str, name: &str, at: DateTime<Utc>) -> Self {
        Self {
            label: label.to_owned(),
            name: name.to_owned(),
            last_verified: Some(at),
        }
    }

    /// A source that never had a verified backup.
    pub fn never(label: &str, name: &str) -> Self {
        Self {
            label: label.to_owned(),
            name: name.to_owned(),
            last_verified: None,
        }
    }
}

/// A tape that holds a session written recently, and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenTape {
    /// Barcode.
    pub barcode: String,
    /// When its latest session started.
    pub written: DateTime<Utc>,
    /// Where it is (`None`: never recorded).
    pub place: Option<Place>,
}

/// What is known of tonight's tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TonightTape {
    /// The rotation chose `barcode`, which is at `place`.
    Planned {
        /// Barcode.
        barcode: String,
        /// Where it is now (`None`: never recorded).
        place: Option<Place>,
    },
    /// No tape of tonight's pool may be written (all under retention, or none in the library).
    NoneAvailable {
        /// Why, as the rotation says it.
        reason: String,
    },
}

/// The disk target's file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DiskState {
    /// Mounted, with its usage.
    Usage {
        /// File system size, bytes.
        total_bytes: u64,
        /// Bytes used.
        used_bytes: u64,
    },
    /// Not there (not mounted, no store, unreadable).
    Unavailable {
        /// Why.
        reason: String,
    },
}

/// The audit log's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AuditState {
    /// It verified.
    Verified {
        /// Records in the log.
        records: u64,
    },
    /// It does not verify (tampering, a torn tail, a wrong key).
    Failed {
        /// The first problem.
        reason: String,
    },
    /// It could not be checked (no key file...).
    Unchecked {
        /// Why.
        reason: String,
    },
}

/// The last nightly run, as its report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Whether every step succeeded.
    pub ok: bool,
    /// The failed steps.
    pub failures: Vec<String>,
}

/// Everything the check looks at, gathered by I/O beforehand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SiteState {
    /// Each source.
    pub sources: Vec<SourceState>,
    /// Tapes with their latest session, and where they are.
    pub tapes: Vec<WrittenTape>,
    /// Tonight's tape, if the rotation could be asked.
    pub tonight: Option<TonightTape>,
    /// The disk target, if it was looked at.
    pub disk: Option<DiskState>,
    /// The audit log, if it was checked.
    pub audit: Option<AuditState>,
    /// The last nightly run, if there is a report.
    pub last_run: Option<LastRun>,
    /// Things that could not be gathered (each one is UNKNOWN).
    pub gather_errors: Vec<String>,
}

/// The limits of the check (from the site configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// WARNING past this age of the last verified backup.
    pub rpo: Duration,
    /// CRITICAL past this age.
    pub rpo_critical: Duration,
    /// Last night's tape must have left the server room by this time of day (UTC).
    pub leave_server_room_by: NaiveTime,
    /// WARNING at this disk usage (percent).
    pub disk_warn_percent: u8,
    /// CRITICAL at this disk usage (percent).
    pub disk_critical_percent: u8,
}

impl Default for Thresholds {
    /// RPO 26 h / 48 h, tapes out of the server room by 09:30, disk 85 % / 95 %.
    fn default() -> Self {
        Self {
            rpo: Duration::hours(26),
            rpo_critical: Duration::hours(48),
            leave_server_room_by: NaiveTime::from_hms_opt(9, 30, 0).unwrap_or(NaiveTime::MIN),
            disk_warn_percent: 85,
            disk_critical_percent: 95,
        }
    }
}

impl Thresholds {
    /// The thresholds of a site configuration.
    pub fn of(site: &crate::site::SiteConfig) -> Self {
        Self {
            rpo: site.site.rpo,
            rpo_critical: site.site.rpo_critical,
            leave_server_room_by: site.locations.leave_server_room_by,
            disk_warn_percent: site.disk.warn_used_percent,
            disk_critical_percent: site.disk.critical_used_percent,
        }
    }
}

/// One thing the check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Its status.
    pub status: Status,
    /// What, for the operator.
    pub message: String,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The overall status.
    pub status: Status,
    /// Every finding, worst first (OK findings included).
    pub findings: Vec<Finding>,
    /// Performance data items (`age_db=12.5h;26;48`).
    pub perfdata: Vec<String>,
}

impl Evaluation {
    /// The plugin's first output line: `JFIV BACKUP <STATUS> - <summary> | <perfdata>`.
    pub fn status_line(&self) -> String {
        let problems: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| f.status != Status::Ok)
            .map(|f| f.message.as_str())
            .collect();
        let summary = if problems.is_empty() {
            "all backups fresh and verified, tapes where they belong".to_owned()
        } else {
            problems.join("; ")
        };
        let perf = if self.perfdata.is_empty() {
            String::new()
        } else {
            format!(" | {}", self.perfdata.join(" "))
        };
        format!("JFIV BACKUP {} - {summary}{perf}", self.status)
    }

    /// The full plugin output: the status line, then one line per finding (long output).
    pub fn output(&self) -> String {
        let mut out = self.status_line();
        for f in &self.findings {
            out.push_str(&format!("\n[{}] {}", f.status, f.message));
        }
        out
    }
}

fn hours(d: Duration) -> f64 {
    d.num_seconds() as f64 / 3600.0
}

fn place_name(place: Option<Place>) -> &'static str {
    match place {
        Some(Place::Drive) => "the drive",
        Some(Place::ServerRoom) => "the server room",
        Some(Place::Offsite) => "the offsite room",
        None => "an unrecorded place",
    }
}

/// Evaluates `state` at `now` under `thresholds`. Pure.
pub fn evaluate(state: &SiteState, thresholds: &Thresholds, now: DateTime<Utc>) -> Evaluation {
    let mut findings = Vec::new();
    let mut perfdata = Vec::new();
    let mut push = |status: Status, message: String| findings.push(Finding { status, message });

    for e in &state.gather_errors {
        push(Status::Unknown, format!("could not check: {e}"));
    }

    let (rpo, crit) = (hours(thresholds.rpo), hours(thresholds.rpo_critical));
    for s in &state.sources {
        match s.last_verified {
            None => {
                push(
                    Status::Critical,
                    format!("{} has no successful verified backup", s.name),
                );
            }
            Some(at) => {
                let age = now - at;
                let h = hours(age).max(0.0);
                perfdata.push(format!("age_{}={h:.1}h;{rpo:.0};{crit:.0}", s.label));
                if age > thresholds.rpo_critical {
                    push(
                        Status::Critical,
                        format!(
                            "{} last verified backup {h:.1}h old (critical {crit:.0}h)",
                            s.name
                        ),
                    );
                } else if age > thresholds.rpo {
                    push(
                        Status::Warning,
                        format!(
                            "{} last verified backup {h:.1}h old (RPO {rpo:.0}h)",
                            s.name
                        ),
                    );
                } else {
                    push(
                        Status::Ok,
                        format!("{} last verified backup {h:.1}h old", s.name),
                    );
                }
            }
        }
    }

    // Last night: the 24 hours before today's deadline.
    let deadline = now
        .date_naive()
        .and_time(thresholds.leave_server_room_by)
        .and_utc();
    let night_start = deadline - Duration::hours(24);
    let tonight_barcode = match &state.tonight {
        Some(TonightTape::Planned { barcode, .. }) => Some(barcode.as_str()),
        _ => None,
    };
    let deadline_text = thresholds.leave_server_room_by.format("%H:%M");
    for t in &state.tapes {
        let last_night = t.written >= night_start && t.written < deadline;
        let near_server = matches!(t.place, Some(Place::Drive | Place::ServerRoom) | None);
        if !(last_night && near_server) || Some(t.barcode.as_str()) == tonight_barcode {
            continue;
        }
        if now >= deadline {
            push(
                Status::Critical,
                format!(
                    "tape {} written last night is still in {} after {deadline_text} UTC",
                    t.barcode,
                    place_name(t.place)
                ),
            );
        } else {
            push(
                Status::Ok,
                format!(
                    "tape {} written last night is in {}: to be taken to the offsite room by {deadline_text} UTC",
                    t.barcode,
                    place_name(t.place)
                ),
            );
        }
    }

    match &state.tonight {
        None => {}
        Some(TonightTape::NoneAvailable { reason }) => {
            push(
                Status::Critical,
                format!("no tape can be written tonight: {reason}"),
            );
        }
        Some(TonightTape::Planned { barcode, place }) => match place {
            Some(Place::Offsite) => push(
                Status::Warning,
                format!(
                    "tonight's tape {barcode} is in the offsite room: bring it back to the drive"
                ),
            ),
            None => push(
                Status::Warning,
                format!("tonight's tape {barcode} has no recorded location"),
            ),
            Some(p) => push(
                Status::Ok,
                format!(
                    "tonight's tape {barcode} is ready in {}",
                    place_name(Some(*p))
                ),
            ),
        },
    }

    match &state.disk {
        None => {}
        Some(DiskState::Unavailable { reason }) => {
            push(
                Status::Critical,
                format!("disk target unavailable: {reason}"),
            );
        }
        Some(DiskState::Usage {
            total_bytes,
            used_bytes,
        }) => {
            let pct = if *total_bytes == 0 {
                100.0
            } else {
                *used_bytes as f64 * 100.0 / *total_bytes as f64
            };
            perfdata.push(format!(
                "disk_used={pct:.0}%;{};{};0;100",
                thresholds.disk_warn_percent, thresholds.disk_critical_percent
            ));
            let status = if pct >= f64::from(thresholds.disk_critical_percent) {
                Status::Critical
            } else if pct >= f64::from(thresholds.disk_warn_percent) {
                Status::Warning
            } else {
                Status::Ok
            };
            push(status, format!("disk target {pct:.0}% full"));
        }
    }

    match &state.audit {
        None => {}
        Some(AuditState::Verified { records }) => {
            perfdata.push(format!("audit_records={records}"));
            push(Status::Ok, format!("audit log intact ({records} records)"));
        }
        Some(AuditState::Failed { reason }) => {
            push(
                Status::Critical,
                format!("audit log fails verification: {reason}"),
            );
        }
        Some(AuditState::Unchecked { reason }) => {
            push(Status::Unknown, format!("audit log not checked: {reason}"));
        }
    }

    if let Some(run) = &state.last_run
        && !run.ok
    {
        push(
            Status::Warning,
            format!(
                "the last nightly run ({}) failed: {}",
                run.finished.format("%Y-%m-%d %H:%M UTC"),
                run.failures.join(", ")
            ),
        );
    }

    let status = findings
        .iter()
        .fold(Status::Ok, |acc, f| acc.worst(f.status));
    findings.sort_by_key(|f| std::cmp::Reverse(f.status.rank()));
    Evaluation {
        status,
        findings,
        perfdata,
    }
}

/// Gathers the state of `site` at `now`: the backup history and last report in the state
/// directory, the tape catalog and location register, tonight's rotation, the disk target's
/// file system, and a full verification of the audit log against its exported checkpoints.
/// Everything that cannot be read becomes a gather error (UNKNOWN) or, where it is itself the
/// problem (a missing disk, an audit log that does not verify), a finding.
pub fn gather(site: &crate::site::SiteConfig, now: DateTime<Utc>) -> SiteState {
    use crate::nightly::{self, BackupHistory};
    use jfiv_backup::tape::{Catalog, LocationRegister, plan_tonight};
    let mut state = SiteState::default();
    let history: BackupHistory =
        nightly::read_json(&nightly::history_path(site)).unwrap_or_else(|e| {
            state.gather_errors.push(e.to_string());
            BackupHistory::default()
        });
    let catalog = Catalog::load(&site.tape.catalog).unwrap_or_else(|e| {
        state.gather_errors.push(format!("tape catalog: {e}"));
        Catalog::default()
    });
    let register = LocationRegister::load(&site.tape.register).unwrap_or_else(|e| {
        state
            .gather_errors
            .push(format!("tape location register: {e}"));
        LocationRegister::default()
    });
    // Sources: the history, cross-checked with the tape catalog for the database.
    let db = site.database.name();
    let on_tape = catalog
        .sessions
        .values()
        .filter(|s| s.catalog.source == db && s.verified())
        .filter_map(|s| s.finished)
        .max();
    let db_at = history.last_verified.get(db).copied().max(on_tape);
    state.sources.push(SourceState {
        label: "db".into(),
        name: db.to_owned(),
        last_verified: db_at,
    });
    state.sources.push(SourceState {
        label: "app".into(),
        name: site.application.name.clone(),
        last_verified: history.last_verified.get(&site.application.name).copied(),
    });
    // Tapes and where they are.
    for info in catalog.inventory() {
        if let Some(written) = info.last_written {
            state.tapes.push(WrittenTape {
                barcode: info.label.barcode.clone(),
                written,
                place: register
                    .place_of(&info.label.barcode)
                    .map(nightly::site_place),
            });
        }
    }
    // Tonight (the night starting in the evening of today).
    let policy = nightly::rotation_of(site);
    state.tonight = Some(
        match plan_tonight(&catalog.inventory(), &policy, now + Duration::hours(12)) {
            Ok(plan) => TonightTape::Planned {
                place: register.place_of(&plan.tape).map(nightly::site_place),
                barcode: plan.tape,
            },
            Err(e) => TonightTape::NoneAvailable {
                reason: e.to_string(),
            },
        },
    );
    // The disk.
    state.disk = Some(match rustix::fs::statvfs(&site.disk.dir) {
        Ok(st) if std::fs::read_dir(&site.disk.dir).is_ok_and(|mut d| d.next().is_some()) => {
            let total = st.f_blocks.saturating_mul(st.f_frsize);
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            DiskState::Usage {
                total_bytes: total,
                used_bytes: total.saturating_sub(free),
            }
        }
        Ok(_) => DiskState::Unavailable {
            reason: format!("{} is empty: is the disk mounted?", site.disk.dir.display()),
        },
        Err(e) => DiskState::Unavailable {
            reason: format!("{}: {e}", site.disk.dir.display()),
        },
    });
    // The audit log.
    state.audit = Some(match jfiv_audit::AuditKeys::load(&site.audit.key_file) {
        Err(e) => AuditState::Unchecked {
            reason: format!("audit keys: {e}"),
        },
        Ok(keys) => {
            let mut checkpoints = Vec::new();
            if let Ok(dir) = std::fs::read_dir(&site.audit.checkpoint_dir) {
                for entry in dir.flatten() {
                    match jfiv_audit::Checkpoint::read_from(&entry.path()) {
                        Ok(c) => checkpoints.push(c),
                        Err(e) => state
                            .gather_errors
                            .push(format!("checkpoint {}: {e}", entry.path().display())),
                    }
                }
            }
            match jfiv_audit::verify(&site.audit.dir, &keys, &checkpoints) {
                Ok(report) => AuditState::Verified {
                    records: report.records,
                },
                Err(e) => AuditState::Failed {
                    reason: e.to_string(),
                },
            }
        }
    });
    // The last run.
    match nightly::read_json::<Option<nightly::NightlyReport>>(&nightly::last_report_path(site)) {
        Ok(Some(r)) => {
            state.last_run = Some(LastRun {
                finished: r.finished,
                ok: r.ok,
                failures: r.failures(),
            })
        }
        Ok(None) => {}
        Err(e) => state.gather_errors.push(e.to_string()),
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 3, 10, 0, 0).unwrap()
    }

    fn healthy() -> SiteState {
        let n = now();
        SiteState {
            sources: vec![
                SourceState::verified("db", "jfiv-db", n - Duration::hours(8)),
                SourceState::verified("app", "jfiv-app", n - Duration::hours(8)),
            ],
            tapes: vec![WrittenTape {
                barcode: "LEB001L6".into(),
                written: n - Duration::hours(9),
                place: Some(Place::Offsite),
            }],
            tonight: Some(TonightTape::Planned {
                barcode: "LEB002L6".into(),
                place: Some(Place::Drive),
            }),
            disk: Some(DiskState::Usage {
                total_bytes: 1000,
                used_bytes: 400,
            }),
            audit: Some(AuditState::Verified { records: 42 }),
            last_run: Some(LastRun {
                finished: n - Duration::hours(8),
                ok: true,
                failures: vec![],
            }),
            gather_errors: vec![],
        }
    }

    #[test]
    fn a_healthy_site_is_ok_with_perfdata() {
        let e = evaluate(&healthy(), &Thresholds::default(), now());
        assert_eq!(e.status, Status::Ok, "{}", e.output());
        assert_eq!(e.status.exit_code(), 0);
        let line = e.status_line();
        assert!(line.starts_with("JFIV BACKUP OK - "), "{line}");
        assert!(
            line.contains(
                "| age_db=8.0h;26;48 age_app=8.0h;26;48 disk_used=40%;85;95;0;100 audit_records=42"
            ),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn a_backup_older_than_the_rpo_is_warning_then_critical() {
        let mut s = healthy();
        s.sources[0].last_verified = Some(now() - Duration::hours(27));
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Warning);
        assert_eq!(e.status.exit_code(), 1);
        assert!(
            e.status_line()
                .contains("jfiv-db last verified backup 27.0h old (RPO 26h)")
        );
        s.sources[0].last_verified = Some(now() - Duration::hours(49));
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical);
        assert_eq!(e.status.exit_code(), 2);
        // Exactly at the RPO is still fine.
        s.sources[0].last_verified = Some(now() - Duration::hours(26));
        assert_eq!(
            evaluate(&s, &Thresholds::default(), now()).status,
            Status::Ok
        );
    }

    #[test]
    fn a_source_never_backed_up_is_critical() {
        let mut s = healthy();
        s.sources[1] = SourceState::never("app", "jfiv-app");
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical);
        assert!(
            e.status_line()
                .contains("jfiv-app has no successful verified backup")
        );
    }

    #[test]
    fn last_nights_tape_still_in_the_server_room_after_the_deadline_is_critical() {
        let mut s = healthy();
        s.tapes[0].place = Some(Place::ServerRoom);
        // 10:00 is after 09:30.
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical, "{}", e.output());
        assert!(e.status_line().contains(
            "tape LEB001L6 written last night is still in the server room after 09:30 UTC"
        ));
        // In the drive too.
        s.tapes[0].place = Some(Place::Drive);
        assert_eq!(
            evaluate(&s, &Thresholds::default(), now()).status,
            Status::Critical
        );
        // Before the deadline it is only a reminder.
        let early = Utc.with_ymd_and_hms(2026, 3, 3, 7, 0, 0).unwrap();
        s.sources.clear();
        let e = evaluate(&s, &Thresholds::default(), early);
        assert_eq!(e.status, Status::Ok, "{}", e.output());
        assert!(
            e.output()
                .contains("to be taken to the offsite room by 09:30")
        );
        // An older tape in the server room is not last night's.
        s.tapes[0].written = now() - Duration::days(3);
        s.tapes[0].place = Some(Place::ServerRoom);
        assert_eq!(
            evaluate(&s, &Thresholds::default(), now()).status,
            Status::Ok
        );
    }

    #[test]
    fn tonights_tape_offsite_is_warning_and_none_available_is_critical() {
        let mut s = healthy();
        s.tonight = Some(TonightTape::Planned {
            barcode: "LEB002L6".into(),
            place: Some(Place::Offsite),
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Warning);
        assert!(
            e.status_line()
                .contains("tonight's tape LEB002L6 is in the offsite room")
        );
        s.tonight = Some(TonightTape::NoneAvailable {
            reason: "every daily tape is under retention until 2026-03-05".into(),
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical);
        assert!(e.status_line().contains("no tape can be written tonight"));
    }

    #[test]
    fn a_nearly_full_or_missing_disk_target_is_warning_or_critical() {
        let mut s = healthy();
        s.disk = Some(DiskState::Usage {
            total_bytes: 100,
            used_bytes: 86,
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Warning);
        assert!(e.status_line().contains("disk_used=86%;85;95;0;100"));
        s.disk = Some(DiskState::Usage {
            total_bytes: 100,
            used_bytes: 97,
        });
        assert_eq!(
            evaluate(&s, &Thresholds::default(), now()).status,
            Status::Critical
        );
        s.disk = Some(DiskState::Unavailable {
            reason: "/mnt/sauvegarde is not mounted".into(),
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical);
        assert!(e.status_line().contains("disk target unavailable"));
    }

    #[test]
    fn an_audit_log_failing_verification_is_critical() {
        let mut s = healthy();
        s.audit = Some(AuditState::Failed {
            reason: "record 17 at byte 5120: chain mismatch".into(),
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Critical);
        assert!(
            e.status_line()
                .contains("audit log fails verification: record 17")
        );
    }

    #[test]
    fn what_cannot_be_gathered_is_unknown_but_never_hides_a_warning() {
        let mut s = healthy();
        s.gather_errors.push("tape catalog unreadable".into());
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Unknown);
        assert_eq!(e.status.exit_code(), 3);
        s.sources[0].last_verified = Some(now() - Duration::hours(30));
        assert_eq!(
            evaluate(&s, &Thresholds::default(), now()).status,
            Status::Warning
        );
    }

    #[test]
    fn a_failed_last_run_is_warning() {
        let mut s = healthy();
        s.last_run = Some(LastRun {
            finished: now() - Duration::hours(8),
            ok: false,
            failures: vec!["retention".into()],
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        assert_eq!(e.status, Status::Warning);
        assert!(e.status_line().contains("failed: retention"));
    }

    #[test]
    fn findings_are_sorted_worst_first() {
        let mut s = healthy();
        s.disk = Some(DiskState::Usage {
            total_bytes: 100,
            used_bytes: 99,
        });
        s.tonight = Some(TonightTape::Planned {
            barcode: "LEB002L6".into(),
            place: Some(Place::Offsite),
        });
        let e = evaluate(&s, &Thresholds::default(), now());
        let statuses: Vec<Status> = e.findings.iter().map(|f| f.status).collect();
        assert_eq!(statuses.first(), Some(&Status::Critical));
        assert_eq!(statuses.last(), Some(&Status::Ok));
    }
}

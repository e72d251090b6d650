//! Retention (which snapshots to keep: a pure plan) and garbage collection of the disk store.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, Duration, Utc};
use jfiv_audit::{Action, Clock, Outcome};

use crate::{AuditHook, BackupTarget, ChunkId, DiskTarget, RepositoryKey, Result, SnapshotSummary};

/// Keep the latest snapshot of each of the last `daily` days, `weekly` ISO weeks and `monthly`
/// months that have snapshots (per source name; periods in UTC), plus everything younger than
/// `keep_within`, plus the latest snapshot of each source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Days kept.
    pub daily: u32,
    /// ISO weeks kept.
    pub weekly: u32,
    /// Months kept.
    pub monthly: u32,
    /// Snapshots younger than this are always kept.
    pub keep_within: Duration,
}

impl Default for RetentionPolicy {
    /// 7 daily, 5 weekly, 12 monthly, and everything of the last 24 hours.
    fn default() -> Self {
        Self {
            daily: 7,
            weekly: 5,
            monthly: 12,
            keep_within: Duration::hours(24),
        }
    }
}

/// The result of [`plan_retention`]: what would be kept (and why) and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPlan {
    /// The time the plan was computed for.
    pub now: DateTime<Utc>,
    /// Kept snapshots with the rules that keep them, newest first per source.
    pub keep: Vec<(SnapshotSummary, Vec<&'static str>)>,
    /// Snapshots to remove.
    pub remove: Vec<SnapshotSummary>,
}

impl fmt::Display for RetentionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "retention plan at {}:", self.now.to_rfc3339())?;
        for (s, why) in &self.keep {
            writeln!(
                f,
                "  keep   {} {} {} ({})",
                s.id,
                s.source.name,
                s.started.to_rfc3339(),
                why.join(", ")
            )?;
        }
        for s in &self.remove {
            writeln!(
                f,
                "  remove {} {} {}",
                s.id,
                s.source.name,
                s.started.to_rfc3339()
            )?;
        }
        Ok(())
    }
}

/// Decides which snapshots to keep. Pure: the same list, policy and `now` give the same plan.
pub fn plan_retention(
    snapshots: &[SnapshotSummary],
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut by_source: BTreeMap<&str, Vec<&SnapshotSummary>> = BTreeMap::new();
    for s in snapshots {
        by_source.entry(s.source.name.as_str()).or_default().push(s);
    }
    let mut keep = Vec::new();
    let mut remove = Vec::new();
    for (_, mut list) in by_source {
        list.sort_by_key(|s| std::cmp::Reverse((s.started, s.id)));
        let mut days = HashSet::new();
        let mut weeks = HashSet::new();
        let mut months = HashSet::new();
        for (i, s) in list.iter().enumerate() {
            let mut why = Vec::new();
            if i == 0 {
                why.push("latest");
            }
            if s.started > now {
                why.push("in the future (clock?)");
            } else if now - s.started < policy.keep_within {
                why.push("recent");
            }
            let day = s.started.date_naive();
            if days.len() < policy.daily as usize && days.insert(day) {
                why.push("daily");
            }
            let week = (s.started.iso_week().year(), s.started.iso_week().week());
            if weeks.len() < policy.weekly as usize && weeks.insert(week) {
                why.push("weekly");
            }
            let month = (s.started.year(), s.started.month());
            if months.len() < policy.monthly as usize && months.insert(month) {
                why.push("monthly");
            }
            if why.is_empty() {
                remove.push((*s).clone());
            } else {
                keep.push(((*s).clone(), why));
            }
        }
    }
    RetentionPlan { now, keep, remove }
}

/// Removes the manifests the plan says to remove (their chunks stay until [`gc`]).
///
/// # Errors
/// I/O errors; the first failure stops (what was removed before stays removed).
pub async fn prune(
    target: &DiskTarget,
    plan: &RetentionPlan,
    audit: Option<&AuditHook>,
) -> Result<usize> {
    let mut removed = 0;
    for s in &plan.remove {
        target.delete_manifest(&s.id)?;
        removed += 1;
    }
    crate::audit::record(
        audit,
        Action::BackupPruned,
        Outcome::Success,
        "disk store".to_owned(),
        format!(
            "{removed} snapshots removed, {} kept, at {}",
            plan.keep.len(),
            plan.now.to_rfc3339()
        ),
    )
    .await?;
    Ok(removed)
}

/// How [`gc`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Unreferenced chunks younger than this are kept (they may belong to a backup in
    /// progress). Default 24 hours.
    pub grace: Duration,
    /// Only report what would be removed.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Duration::hours(24),
            dry_run: false,
        }
    }
}

/// What [`gc`] did (or would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Chunks referenced by at least one snapshot.
    pub referenced: usize,
    /// Unreferenced chunks removed (or to remove, in a dry run).
    pub removed: Vec<ChunkId>,
    /// Their bytes.
    pub bytes_freed: u64,
    /// Unreferenced chunks kept because they are younger than the grace period.
    pub kept_in_grace: usize,
}

/// Removes the chunks no snapshot references.
///
/// Safe against a concurrent backup: another process cannot hold the store (the lock), and
/// chunks written in the last `grace` period are kept, as are chunks not yet durable (still
/// under `tmp/`). Within one process, do not run `gc` while a backup writes to the same store:
/// a backup may reuse an old chunk that `gc` is about to remove.
/// If any manifest cannot be read or authenticated, nothing is removed.
///
/// # Errors
/// Manifest errors (nothing removed), I/O errors.
pub async fn gc(
    target: &DiskTarget,
    key: &RepositoryKey,
    clock: &dyn Clock,
    options: GcOptions,
) -> Result<GcReport> {
    let mut referenced = HashSet::new();
    for id in target.list_manifests().await? {
        let manifest = crate::load_manifest(target, key, &id).await?;
        referenced.extend(manifest.chunk_ids());
    }
    let cutoff = clock.now() - options.grace;
    let mut report = GcReport {
        referenced: referenced.len(),
        ..GcReport::default()
    };
    for chunk in target.list_chunks()? {
        if referenced.contains(&chunk.id) {
            continue;
        }
        let modified: DateTime<Utc> = chunk.modified.into();
        if modified > cutoff {
            report.kept_in_grace += 1;
            continue;
        }
        if !options.dry_run {
            target.delete_chunk(&chunk.id)?;
        }
        report.bytes_freed += chunk.size;
        report.removed.push(chunk.id);
    }
    Ok(report)
}

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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcOptions {
    /// Unreferenced chunks in packs younger than this are kept (they may belong to a backup in
    /// progress). Default 24 hours.
    pub grace: Duration,
    /// A pack holding live chunks is rewritten without its garbage once at least this share
    /// of its bytes is garbage (0.0 rewrites any pack with garbage; 1.0 never rewrites, only
    /// deletes packs that are all garbage). Default 0.2: rewriting costs copying the live
    /// chunks, so a little garbage waits until there is more.
    pub min_garbage_ratio: f64,
    /// Only report what would be removed.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Duration::hours(24),
            min_garbage_ratio: 0.2,
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
    /// Bytes freed (or to free).
    pub bytes_freed: u64,
    /// Unreferenced chunks kept because their pack is younger than the grace period.
    pub kept_in_grace: usize,
    /// Unreferenced chunks kept because too little of their pack is garbage to rewrite it
    /// (see [`GcOptions::min_garbage_ratio`]).
    pub kept_in_live_packs: usize,
    /// Packs deleted whole.
    pub packs_deleted: usize,
    /// Packs rewritten without their garbage.
    pub packs_rewritten: usize,
    /// Bytes of live chunks copied by the rewrites.
    pub bytes_copied: u64,
}

/// Removes the chunks no snapshot references (see [`DiskTarget::collect_garbage`] for how
/// packs are deleted or rewritten).
///
/// Safe against a concurrent backup: another process cannot hold the store (the lock); in the
/// same process, chunks a backup found present are kept; chunks in packs written in the last
/// `grace` period are kept, as are chunks not yet durable (still under `tmp/`). An old pack is
/// deleted only after the copies of its live chunks are durable.
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
    let cutoff: std::time::SystemTime = (clock.now() - options.grace).into();
    let store = target.clone();
    let live = referenced.clone();
    let collected = tokio::task::spawn_blocking(move || {
        store.collect_garbage(&live, cutoff, options.min_garbage_ratio, options.dry_run)
    })
    .await
    .map_err(|e| crate::Error::Internal {
        reason: format!("gc task failed: {e}"),
    })??;
    Ok(GcReport {
        referenced: referenced.len(),
        removed: collected.removed,
        bytes_freed: collected.bytes_freed,
        kept_in_grace: collected.kept_in_grace,
        kept_in_live_packs: collected.kept_in_live_packs,
        packs_deleted: collected.packs_deleted,
        packs_rewritten: collected.packs_rewritten,
        bytes_copied: collected.bytes_copied,
    })
}

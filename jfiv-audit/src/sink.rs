//! The [`AuditSink`] trait: where audit events go.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{AuditEvent, Result};

/// An event as stored, with the sequence number the sink gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Position in the log: 0 for the first event ever appended, then +1 for each event,
    /// without gaps, across periods.
    pub seq: u64,
    /// The event.
    pub event: AuditEvent,
}

/// A selection of events: by patient, by actor, within a time range. Empty fields select all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only events about this patient's record.
    pub patient_id: Option<String>,
    /// Only events by this user id.
    pub actor: Option<String>,
    /// Only events at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only events strictly before this time.
    pub until: Option<DateTime<Utc>>,
}

impl Query {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Every event about one patient (what a patient asking "who read my file" is shown).
    pub fn patient(patient_id: impl Into<String>) -> Self {
        Self {
            patient_id: Some(patient_id.into()),
            ..Self::default()
        }
    }

    /// Every event by one actor.
    pub fn actor(user_id: impl Into<String>) -> Self {
        Self {
            actor: Some(user_id.into()),
            ..Self::default()
        }
    }

    /// Restricts to `[from, until)`.
    pub fn between(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    /// Whether `event` is selected.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let patient_ok = self
            .patient_id
            .as_deref()
            .is_none_or(|p| event.record.as_ref().is_some_and(|r| r.patient_id == p));
        let actor_ok = self
            .actor
            .as_deref()
            .is_none_or(|a| event.actor.user_id == a);
        let from_ok = self.from.is_none_or(|from| event.time >= from);
        let until_ok = self.until.is_none_or(|until| event.time < until);
        patient_ok && actor_ok && from_ok && until_ok
    }
}

/// Where audit events are written.
///
/// # Contract
/// - When [`append`](AuditSink::append) returns `Ok`, the event is durable: it survives a crash or
///   a power cut of this process and machine (for a file sink: written and `fsync`'d). A sink
///   may batch the durability work of concurrent appenders (group commit), but never returns
///   `Ok` before the event is durable.
/// - Appends are atomic and ordered: each event gets the next sequence number, records of
///   concurrent appenders never interleave, and the returned [`Recorded::seq`] is the event's
///   final position.
/// - When `append` returns `Err`, the event may or may not be stored; the caller must treat the
///   action it was recording as not audited (and, for an access, refuse it).
/// - [`query`](AuditSink::query) returns the matching events in sequence order, after checking
///   whatever integrity the sink can check; a sink that finds its trail damaged returns an error
///   rather than a partial answer.
#[async_trait]
pub trait AuditSink: Debug + Send + Sync {
    /// Appends one event and returns it with its sequence number once it is durable.
    ///
    /// # Errors
    /// I/O errors, a log found damaged, a sink closed for good.
    async fn append(&self, event: AuditEvent) -> Result<Recorded>;

    /// The stored events that `query` selects, in sequence order.
    ///
    /// # Errors
    /// I/O errors, or integrity errors when the stored trail does not verify.
    async fn query(&self, query: &Query) -> Result<Vec<Recorded>>;
}

#[async_trait]
impl<S: AuditSink + ?Sized> AuditSink for std::sync::Arc<S> {
    async fn append(&self, event: AuditEvent) -> Result<Recorded> {
        (**self).append(event).await
    }

    async fn query(&self, query: &Query) -> Result<Vec<Recorded>> {
        (**self).query(query).await
    }
}

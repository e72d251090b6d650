//! The optional audit hook: backups, verifications and prunes become
//! [`jfiv_audit::AuditEvent`]s.

use std::sync::Arc;

use jfiv_audit::{Action, Actor, AuditEvent, AuditSink, Clock, Origin, Outcome};

use crate::{Error, Result};

/// Where and as whom the engine records what it does in the audit trail.
#[derive(Debug, Clone)]
pub struct AuditHook {
    /// The trail.
    pub sink: Arc<dyn AuditSink>,
    /// Who runs the job (`nightly-backup`, or an operator).
    pub actor: Actor,
    /// Where it runs.
    pub origin: Origin,
    /// The clock for event times.
    pub clock: Arc<dyn Clock>,
}

impl AuditHook {
    /// Appends one event.
    ///
    /// # Errors
    /// [`Error::Target`] wrapping the audit sink's error: an action that cannot be audited
    /// is reported as failed.
    pub async fn record(
        &self,
        action: Action,
        outcome: Outcome,
        object: String,
        details: String,
    ) -> Result<()> {
        let event = AuditEvent::new(
            self.clock.now(),
            self.actor.clone(),
            self.origin.clone(),
            action,
        )
        .with_object(object)
        .with_outcome(outcome)
        .with_details(details);
        self.sink
            .append(event)
            .await
            .map(|_| ())
            .map_err(|e| Error::Target {
                reason: format!("audit trail: {e}"),
            })
    }
}

/// Records through `hook` if there is one.
pub(crate) async fn record(
    hook: Option<&AuditHook>,
    action: Action,
    outcome: Outcome,
    object: String,
    details: String,
) -> Result<()> {
    match hook {
        Some(hook) => hook.record(action, outcome, object, details).await,
        None => Ok(()),
    }
}

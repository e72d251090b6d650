//! [`MemorySink`]: an audit sink in memory, for tests, doctests and dry runs.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::{AuditEvent, AuditSink, Query, Recorded, Result};

/// Keeps events in a `Vec`, in order. Nothing survives the process: "durable" here means
/// "visible to every later call", which is all a test needs.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<Recorded>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event stored so far, in order.
    pub fn snapshot(&self) -> Vec<Recorded> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        // A panic in another appender cannot leave the Vec half-updated (push is atomic for us).
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl AuditSink for MemorySink {
    async fn append(&self, event: AuditEvent) -> Result<Recorded> {
        let mut events = self.lock();
        let recorded = Recorded {
            seq: events.len() as u64,
            event,
        };
        events.push(recorded.clone());
        Ok(recorded)
    }

    async fn query(&self, query: &Query) -> Result<Vec<Recorded>> {
        Ok(self
            .lock()
            .iter()
            .filter(|r| query.matches(&r.event))
            .cloned()
            .collect())
    }
}

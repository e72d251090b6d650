//! The [`AuditSink`] conformance suite: checks every implementation must pass.
//!
//! Each check takes a FRESH, empty sink as `&dyn AuditSink` and panics on failure. The
//! [`audit_sink_conformance!`](crate::audit_sink_conformance) macro stamps one `#[tokio::test]`
//! per check for an implementation:
//!
//! ```ignore
//! jfiv_audit::audit_sink_conformance!(memory, || (Box::new(MemorySink::new()), ()));
//! ```
//!
//! The factory returns the sink and a guard kept alive for the test (a temporary directory).
//! The sink must not append events of its own during a check (a file log with a fixed clock
//! never does).

// Checks are tests: a panic (`expect`, `assert!`) is how a check fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::{Action, Actor, AuditEvent, AuditSink, Origin, Query, RecordRef};

/// The names of every check, in order (what the macro stamps).
pub const CHECKS: &[&str] = &[
    "empty_sink_has_no_events",
    "seq_contiguous_from_zero",
    "append_is_visible_to_query_at_once",
    "query_by_patient",
    "query_by_actor",
    "query_by_time_range",
    "query_combines_filters",
    "concurrent_appends_all_present_once_in_order",
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A record read by `user` of `patient` at `minute` minutes after 2026-03-02T08:00Z.
pub fn read_event(user: &str, patient: &str, minute: i64) -> AuditEvent {
    AuditEvent::new(
        base() + Duration::minutes(minute),
        Actor::new(user, "clinician"),
        Origin::Local {
            workstation: "amp-consult-1".into(),
        },
        Action::RecordRead,
    )
    .with_record(RecordRef::patient(patient))
}

async fn all(sink: &dyn AuditSink) -> Vec<crate::Recorded> {
    sink.query(&Query::all()).await.expect("query all")
}

/// A fresh sink holds nothing.
pub async fn empty_sink_has_no_events(sink: &dyn AuditSink) {
    assert!(all(sink).await.is_empty());
    assert!(
        sink.query(&Query::patient("P1"))
            .await
            .expect("query")
            .is_empty()
    );
}

/// Sequence numbers are 0, 1, 2... and the stored events are the events given.
pub async fn seq_contiguous_from_zero(sink: &dyn AuditSink) {
    let mut given = Vec::new();
    for i in 0..10 {
        let event = read_event("dr.a", &format!("P{i}"), i);
        let recorded = sink.append(event.clone()).await.expect("append");
        assert_eq!(recorded.seq, i as u64);
        assert_eq!(recorded.event, event);
        given.push(event);
    }
    let stored = all(sink).await;
    assert_eq!(stored.len(), 10);
    for (i, (r, e)) in stored.iter().zip(&given).enumerate() {
        assert_eq!(r.seq, i as u64);
        assert_eq!(&r.event, e);
    }
}

/// When `append` returns, the event is visible to `query` (the durability point).
pub async fn append_is_visible_to_query_at_once(sink: &dyn AuditSink) {
    for i in 0..5 {
        let recorded = sink
            .append(read_event("dr.b", "P7", i))
            .await
            .expect("append");
        let stored = all(sink).await;
        assert_eq!(stored.len(), i as usize + 1);
        assert_eq!(stored.last(), Some(&recorded));
    }
}

async fn mixed(sink: &dyn AuditSink) {
    // minute, user, patient
    let plan: &[(i64, &str, Option<&str>)] = &[
        (0, "dr.a", Some("P1")),
        (1, "dr.b", Some("P2")),
        (2, "sec.c", None),
        (3, "dr.a", Some("P2")),
        (4, "dr.b", Some("P1")),
        (5, "dr.a", Some("P1")),
        (6, "sec.c", Some("P3")),
    ];
    for &(minute, user, patient) in plan {
        let mut event = read_event(user, patient.unwrap_or("none"), minute);
        if patient.is_none() {
            event.record = None;
            event.action = Action::LoginSuccess;
        }
        sink.append(event).await.expect("append");
    }
}

fn seqs(records: &[crate::Recorded]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// A patient's history is every event about that patient, in order, and nothing else.
pub async fn query_by_patient(sink: &dyn AuditSink) {
    mixed(sink).await;
    let p1 = sink.query(&Query::patient("P1")).await.expect("query");
    assert_eq!(seqs(&p1), vec![0, 4, 5]);
    assert!(
        p1.iter()
            .all(|r| r.event.record.as_ref().unwrap().patient_id == "P1")
    );
    assert!(
        sink.query(&Query::patient("P9"))
            .await
            .expect("query")
            .is_empty()
    );
}

/// An actor's history.
pub async fn query_by_actor(sink: &dyn AuditSink) {
    mixed(sink).await;
    let a = sink.query(&Query::actor("dr.a")).await.expect("query");
    assert_eq!(seqs(&a), vec![0, 3, 5]);
    let c = sink.query(&Query::actor("sec.c")).await.expect("query");
    assert_eq!(seqs(&c), vec![2, 6]);
}

/// Time ranges are half-open `[from, until)`.
pub async fn query_by_time_range(sink: &dyn AuditSink) {
    mixed(sink).await;
    let q = Query::all().between(base() + Duration::minutes(2), base() + Duration::minutes(5));
    assert_eq!(seqs(&sink.query(&q).await.expect("query")), vec![2, 3, 4]);
    let empty = Query::all().between(base() + Duration::minutes(3), base() + Duration::minutes(3));
    assert!(sink.query(&empty).await.expect("query").is_empty());
}

/// Patient, actor and time filters combine.
pub async fn query_combines_filters(sink: &dyn AuditSink) {
    mixed(sink).await;
    let mut q =
        Query::patient("P1").between(base() + Duration::minutes(1), base() + Duration::hours(1));
    assert_eq!(seqs(&sink.query(&q).await.expect("query")), vec![4, 5]);
    q.actor = Some("dr.a".into());
    assert_eq!(seqs(&sink.query(&q).await.expect("query")), vec![5]);
}

/// Sixteen concurrent appenders: every event stored exactly once, sequence numbers contiguous,
/// each appender's events in the order it appended them.
pub async fn concurrent_appends_all_present_once_in_order(sink: &dyn AuditSink) {
    const TASKS: usize = 16;
    const EACH: usize = 20;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| async move {
            let mut seqs = Vec::new();
            for i in 0..EACH {
                let event = read_event(&format!("user{t}"), &format!("P{t}-{i}"), i as i64);
                seqs.push(sink.append(event).await.expect("append").seq);
            }
            seqs
        })
        .collect();
    let returned = join_all(tasks).await;
    for seqs in &returned {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    let stored = all(sink).await;
    assert_eq!(stored.len(), TASKS * EACH);
    for (i, r) in stored.iter().enumerate() {
        assert_eq!(r.seq, i as u64);
    }
    let mut patients: Vec<_> = stored
        .iter()
        .map(|r| r.event.record.as_ref().unwrap().patient_id.clone())
        .collect();
    patients.sort();
    patients.dedup();
    assert_eq!(patients.len(), TASKS * EACH, "an event is stored twice");
    for (t, seqs) in returned.iter().enumerate() {
        for (i, seq) in seqs.iter().enumerate() {
            let r = &stored[*seq as usize];
            assert_eq!(
                r.event.record.as_ref().unwrap().patient_id,
                format!("P{t}-{i}")
            );
        }
    }
}

/// Polls every future to completion concurrently on the current task.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Stamps one `#[tokio::test]` per conformance check for one implementation.
///
/// `$factory` is an expression callable with no argument, returning
/// `(Box<dyn AuditSink>, guard)`; the guard lives as long as the test.
#[macro_export]
macro_rules! audit_sink_conformance {
    ($name:ident, $factory:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::audit_sink_conformance!(@checks $factory;
                empty_sink_has_no_events,
                seq_contiguous_from_zero,
                append_is_visible_to_query_at_once,
                query_by_patient,
                query_by_actor,
                query_by_time_range,
                query_combines_filters,
                concurrent_appends_all_present_once_in_order,
            );
        }
    };
    (@checks $factory:expr; $($check:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (sink, _guard) = ($factory)();
                $crate::conformance::$check(&*sink).await;
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::{AuditKeys, AuditSink, FileLog, FileLogOptions, ManualClock, MemorySink};

    fn memory() -> (Box<dyn AuditSink>, ()) {
        (Box::new(MemorySink::new()), ())
    }

    fn file_log() -> (Box<dyn AuditSink>, tempfile::TempDir) {
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(
            3,
        )));
        let clock = Arc::new(ManualClock::new(super::base()));
        let log = FileLog::create(
            &dir.path().join("log"),
            keys,
            FileLogOptions::new().clock(clock),
        )
        .unwrap();
        (Box::new(log), dir)
    }

    crate::audit_sink_conformance!(memory_sink, super::memory);
    crate::audit_sink_conformance!(file_log_sink, super::file_log);

    #[test]
    fn checks_list_matches_the_macro() {
        let source = include_str!("conformance.rs");
        for check in super::CHECKS {
            assert!(
                source.contains(&format!("pub async fn {check}(")),
                "{check}"
            );
            assert!(
                source.contains(&format!("                {check},")),
                "{check}"
            );
        }
    }
}

//! Every attack on the file log that the issue lists, each shown detected by one test; plus
//! torn lines, recovery, retention, rotation and concurrency of the real log.

// Test helpers panic on failure like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use jfiv_audit::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, Checkpoint, Error, FileLog, FileLogOptions,
    IntegrityKind, ManualClock, Origin, PeriodScheme, Query, RecordRef, Retention, verify,
    verify_seals,
};
use rand::SeedableRng;

fn keys(seed: u64) -> Arc<AuditKeys> {
    Arc::new(AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(
        seed,
    )))
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0).unwrap()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: Arc<AuditKeys>,
    clock: Arc<ManualClock>,
    scheme: PeriodScheme,
}

impl Fixture {
    fn new(scheme: PeriodScheme) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        Fixture {
            _tmp: tmp,
            dir,
            keys: keys(1),
            clock: Arc::new(ManualClock::new(start())),
            scheme,
        }
    }

    fn options(&self) -> FileLogOptions {
        FileLogOptions::new()
            .clock(self.clock.clone())
            .period(self.scheme)
    }

    fn open(&self) -> FileLog {
        FileLog::open_or_create(&self.dir, self.keys.clone(), self.options()).unwrap()
    }

    fn verify(&self, checkpoints: &[Checkpoint]) -> jfiv_audit::Result<jfiv_audit::VerifyReport> {
        verify(&self.dir, &self.keys, checkpoints)
    }

    /// The period files, oldest first.
    fn period_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        files
    }

    fn only_file(&self) -> PathBuf {
        let files = self.period_files();
        assert_eq!(files.len(), 1);
        files[0].clone()
    }
}

fn event(user: &str, patient: &str, i: i64) -> AuditEvent {
    AuditEvent::new(
        start() + Duration::minutes(i),
        Actor::new(user, "clinician"),
        Origin::Remote {
            client_ip: "10.8.0.12".parse().unwrap(),
            certificate_fingerprint: Some("ab12cd".into()),
        },
        Action::RecordRead,
    )
    .with_record(RecordRef::cycle(patient, "FIV-1"))
    .with_details("consultation")
}

async fn append_n(log: &FileLog, n: i64) {
    for i in 0..n {
        log.append(event(&format!("dr.{}", i % 3), &format!("P{}", i % 4), i))
            .await
            .unwrap();
    }
}

/// (offset, line with its newline) of every line of a file.
fn lines(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        out.push((offset, line.to_vec()));
        offset += line.len() as u64;
    }
    out
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    std::fs::write(path, lines.concat()).unwrap();
}

/// Asserts an integrity error of `kind` at record `seq`, at byte `offset` when given.
fn assert_integrity(
    result: jfiv_audit::Result<jfiv_audit::VerifyReport>,
    kind: impl Fn(&IntegrityKind) -> bool,
    seq: Option<u64>,
    offset: Option<u64>,
) {
    match result {
        Err(Error::Integrity {
            kind: found,
            seq: found_seq,
            offset: found_offset,
            ..
        }) => {
            assert!(kind(&found), "unexpected kind {found:?}");
            assert_eq!(found_seq, seq, "seq ({found:?})");
            if offset.is_some() {
                assert_eq!(found_offset, offset, "offset ({found:?})");
            }
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
}

async fn log_with(n: i64) -> Fixture {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = f.open();
    append_n(&log, n).await;
    drop(log);
    f
}

#[tokio::test]
async fn an_intact_log_verifies_and_reopens_where_it_stopped() {
    let f = log_with(6).await;
    let report = f.verify(&[]).unwrap();
    assert_eq!(report.records, 6);
    assert_eq!(report.retained_records, 6);
    let log = f.open();
    let r = log.append(event("dr.z", "P9", 99)).await.unwrap();
    assert_eq!(r.seq, 6);
    drop(log);
    assert_eq!(f.verify(&[]).unwrap().records, 7);
    assert!(report.to_string().contains("6 records"), "{report}");
}

#[tokio::test]
async fn a_modified_byte_in_any_field_is_found_at_its_record() {
    let f = log_with(6).await;
    let path = f.only_file();
    let original = lines(&path);
    let (offset, line) = original[1 + 3].clone(); // record seq 3
    let text = String::from_utf8(line.clone()).unwrap();
    // One value of each field of the record, including its seq and its chain value.
    let targets = [
        "\"seq\":3",
        "2026-03-02T08:03",
        "dr.0",
        "clinician",
        "10.8.0.12",
        "ab12cd",
        "record-read",
        "P3",
        "FIV-1",
        "success",
        "consultation",
        "\"chain\":\"",
    ];
    for target in targets {
        let at = text
            .find(target)
            .unwrap_or_else(|| panic!("{target} in {text}"))
            + target.len()
            - 1;
        let at = if target.ends_with('"') { at + 1 } else { at };
        let mut tampered = line.clone();
        // Stay within the field's alphabet, so that the change is a forged value and not a
        // malformed line: the chain value is random hex, and 'f' + 1 would not be hex.
        let is_hex = target.starts_with("\"chain\"");
        tampered[at] = match tampered[at] {
            b'f' if is_hex => b'0',
            b'0'..=b'8' => tampered[at] + 1,
            b'9' => b'0',
            b'a'..=b'y' => tampered[at] + 1,
            b'z' => b'a',
            other => other ^ 0x01,
        };
        let mut all: Vec<_> = original.iter().map(|(_, l)| l.clone()).collect();
        all[1 + 3] = tampered;
        write_lines(&path, &all);
        assert_integrity(
            f.verify(&[]),
            |k| *k == IntegrityKind::MacMismatch,
            Some(3),
            Some(offset),
        );
    }
    write_lines(
        &path,
        &original.into_iter().map(|(_, l)| l).collect::<Vec<_>>(),
    );
    assert_eq!(f.verify(&[]).unwrap().records, 6);
}

#[tokio::test]
async fn flipping_any_single_byte_of_the_records_is_detected() {
    let f = log_with(4).await;
    let path = f.only_file();
    let original = std::fs::read(&path).unwrap();
    let header_len = lines(&path)[0].1.len();
    for at in header_len..original.len() {
        let mut tampered = original.clone();
        tampered[at] ^= 0x20;
        std::fs::write(&path, &tampered).unwrap();
        match f.verify(&[]) {
            Err(Error::Integrity { .. }) => {}
            // Only the very last newline can turn a record into an incomplete last line.
            Err(Error::TornTail { .. }) if at == original.len() - 1 => {}
            other => panic!("byte {at} flipped: {other:?}"),
        }
    }
    std::fs::write(&path, &original).unwrap();
    f.verify(&[]).unwrap();
}

#[tokio::test]
async fn a_modified_header_is_a_bad_header() {
    let f = log_with(2).await;
    let path = f.only_file();
    let mut all: Vec<_> = lines(&path).into_iter().map(|(_, l)| l).collect();
    let header = String::from_utf8(all[0].clone()).unwrap();
    all[0] = header
        .replace("\"first_seq\":0", "\"first_seq\":1")
        .into_bytes();
    write_lines(&path, &all);
    assert_integrity(
        f.verify(&[]),
        |k| matches!(k, IntegrityKind::BadHeader { .. }),
        None,
        Some(0),
    );
}

#[tokio::test]
async fn a_deleted_record_is_found() {
    let f = log_with(6).await;
    let path = f.only_file();
    let original = lines(&path);
    let mut all: Vec<_> = original.iter().map(|(_, l)| l.clone()).collect();
    all.remove(1 + 3);
    write_lines(&path, &all);
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::Deleted {
                expected: 3,
                found: 4,
            }
        },
        Some(3),
        Some(original[1 + 3].0),
    );
}

#[tokio::test]
async fn two_swapped_records_are_found() {
    let f = log_with(6).await;
    let path = f.only_file();
    let original = lines(&path);
    let mut all: Vec<_> = original.iter().map(|(_, l)| l.clone()).collect();
    all.swap(1 + 2, 1 + 3);
    write_lines(&path, &all);
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::Reordered {
                expected: 2,
                found: 3,
            }
        },
        Some(2),
        Some(original[1 + 2].0),
    );
}

/// A record line as someone without the MAC key would forge it: right format, right seq,
/// a chain value computed under another key.
async fn forged_line(seq: u64, patient: &str) -> Vec<u8> {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = FileLog::create(&f.dir, keys(666), f.options()).unwrap();
    append_n(&log, seq as i64).await;
    log.append(event("intruder", patient, 0)).await.unwrap();
    drop(log);
    let path = f.only_file();
    lines(&path).pop().unwrap().1
}

#[tokio::test]
async fn a_forged_record_inserted_without_the_key_is_found() {
    let f = log_with(6).await;
    let path = f.only_file();
    let original = lines(&path);
    let mut all: Vec<_> = original.iter().map(|(_, l)| l.clone()).collect();
    let forged = forged_line(3, "P3").await;
    assert!(forged.starts_with(b"{\"seq\":3,"));
    all.insert(1 + 3, forged);
    write_lines(&path, &all);
    assert_integrity(
        f.verify(&[]),
        |k| *k == IntegrityKind::MacMismatch,
        Some(3),
        Some(original[1 + 3].0),
    );
}

#[tokio::test]
async fn a_forged_record_appended_without_the_key_is_found() {
    let f = log_with(6).await;
    let path = f.only_file();
    let end = std::fs::metadata(&path).unwrap().len();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&forged_line(6, "P1").await);
    std::fs::write(&path, bytes).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| *k == IntegrityKind::MacMismatch,
        Some(6),
        Some(end),
    );
}

#[tokio::test]
async fn tail_truncation_is_found_against_a_later_checkpoint() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = f.open();
    append_n(&log, 6).await;
    let checkpoint = log.checkpoint(Actor::new("ops", "admin")).await.unwrap();
    assert_eq!(checkpoint.records, 7, "the checkpoint event is covered");
    drop(log);
    let cp_path = f.dir.parent().unwrap().join("cp.json");
    checkpoint.write_to(&cp_path).unwrap();
    let checkpoint = Checkpoint::read_from(&cp_path).unwrap();
    f.verify(std::slice::from_ref(&checkpoint)).unwrap();

    // Cut the last two records cleanly, at a line boundary.
    let path = f.only_file();
    let all: Vec<_> = lines(&path).into_iter().map(|(_, l)| l).collect();
    write_lines(&path, &all[..all.len() - 2]);
    // A hash chain alone cannot see it...
    assert_eq!(f.verify(&[]).unwrap().records, 5);
    // ...the checkpoint does.
    let end = std::fs::metadata(&path).unwrap().len();
    assert_integrity(
        f.verify(&[checkpoint]),
        |k| {
            *k == IntegrityKind::Truncated {
                checkpoint_records: 7,
                log_records: 5,
            }
        },
        Some(5),
        Some(end),
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn a_rollback_to_an_older_checkpoint_is_found() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = f.open();
    append_n(&log, 4).await;
    let old = log.checkpoint(Actor::new("ops", "admin")).await.unwrap();
    let backup = f.dir.parent().unwrap().join("backup");
    copy_dir(&f.dir, &backup);
    append_n(&log, 3).await;
    let new = log.checkpoint(Actor::new("ops", "admin")).await.unwrap();
    drop(log);
    f.verify(&[old.clone(), new.clone()]).unwrap();

    // The insider puts back the copy taken at the older checkpoint.
    std::fs::remove_dir_all(&f.dir).unwrap();
    copy_dir(&backup, &f.dir);
    // It is a valid log in itself, and matches the older checkpoint...
    f.verify(std::slice::from_ref(&old)).unwrap();
    // ...but not the newer one.
    let (new_records, old_records) = (new.records, old.records);
    let rolled_back = move |k: &IntegrityKind| {
        *k == IntegrityKind::RolledBack {
            checkpoint_records: new_records,
            log_records: old_records,
        }
    };
    assert_integrity(
        f.verify(std::slice::from_ref(&new)),
        rolled_back,
        Some(old.records),
        None,
    );
    assert_integrity(f.verify(&[old, new]), rolled_back, Some(5), None);
}

#[tokio::test]
async fn a_checkpoint_of_another_log_is_refused() {
    let a = log_with(3).await;
    let b = Fixture::new(PeriodScheme::Monthly);
    // Same keys, another log.
    let log_b = FileLog::create(&b.dir, a.keys.clone(), b.options()).unwrap();
    append_n(&log_b, 3).await;
    let cp_b = log_b.checkpoint(Actor::new("ops", "admin")).await.unwrap();
    drop(log_b);
    let id_a = a.verify(&[]).unwrap().log_id;
    assert_integrity(
        a.verify(std::slice::from_ref(&cp_b)),
        |k| {
            *k == IntegrityKind::CrossLog {
                expected: id_a,
                found: cp_b.log_id,
            }
        },
        Some(cp_b.records),
        None,
    );
}

#[tokio::test]
async fn a_forged_or_altered_checkpoint_is_refused() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = f.open();
    append_n(&log, 3).await;
    let cp = log.checkpoint(Actor::new("ops", "admin")).await.unwrap();
    drop(log);
    assert!(cp.verify_signature(&f.keys.verifying_key()));
    let mut lowered = cp.clone();
    lowered.records = 2;
    assert!(!lowered.verify_signature(&f.keys.verifying_key()));
    assert_integrity(
        f.verify(&[lowered]),
        |k| matches!(k, IntegrityKind::BadCheckpoint { .. }),
        Some(2),
        None,
    );
}

/// Three daily periods, 3 records each (plus the seal events).
async fn three_days() -> Fixture {
    let f = Fixture::new(PeriodScheme::Daily);
    let log = f.open();
    for _ in 0..3 {
        append_n(&log, 3).await;
        f.clock.advance(Duration::days(1));
    }
    drop(log);
    f
}

#[tokio::test]
async fn periods_rotate_with_a_seal_and_an_audit_sealed_event() {
    let f = three_days().await;
    let report = f.verify(&[]).unwrap();
    let names: Vec<_> = report.periods.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(names, ["2026-03-02", "2026-03-03", "2026-03-04"]);
    assert!(report.periods[0].sealed && report.periods[1].sealed && !report.periods[2].sealed);
    // 3 records on day 1, then per day: the sealed event + 3.
    assert_eq!(report.records, 3 + 4 + 4);
    let seals = verify_seals(&f.dir, &f.keys.verifying_key()).unwrap();
    assert_eq!(seals.len(), 2);
    assert_eq!(seals[1].first_seq, 3);
    assert_eq!(seals[1].records, 4);
    let log = f.open();
    let sealed = log
        .query(&Query::actor("jfiv-audit"))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.event.action == Action::AuditSealed)
        .map(|r| (r.seq, r.event.object.unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(
        sealed,
        vec![(3, "2026-03-02".into()), (7, "2026-03-03".into())]
    );
}

#[tokio::test]
async fn a_gap_between_periods_is_found() {
    let f = three_days().await;
    let files = f.period_files();
    // The insider removes a whole day: its file and its seal.
    std::fs::remove_file(&files[1]).unwrap();
    std::fs::remove_file(f.dir.join("2026-03-03.seal")).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::Gap {
                expected_first_seq: 3,
                found_first_seq: 7,
            }
        },
        Some(3),
        Some(0),
    );
}

#[tokio::test]
async fn a_period_removed_without_pruning_is_found() {
    let f = three_days().await;
    std::fs::remove_file(&f.period_files()[1]).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::PeriodRemoved {
                period: "2026-03-03".into(),
            }
        },
        Some(3),
        None,
    );
}

#[tokio::test]
async fn a_sealed_period_cannot_lose_records_or_its_seal() {
    let f = three_days().await;
    let first = f.period_files()[0].clone();
    let original = lines(&first);
    let all: Vec<_> = original.iter().map(|(_, l)| l.clone()).collect();
    write_lines(&first, &all[..all.len() - 1]);
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::Truncated {
                checkpoint_records: 3,
                log_records: 2,
            }
        },
        Some(2),
        Some(original.last().unwrap().0),
    );
    write_lines(&first, &all);
    std::fs::remove_file(f.dir.join("2026-03-02.seal")).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::MissingSeal {
                period: "2026-03-02".into(),
            }
        },
        None,
        None,
    );
}

#[tokio::test]
async fn a_wrong_key_is_reported_as_a_wrong_key() {
    let f = log_with(3).await;
    let other = keys(2);
    match verify(&f.dir, &other, &[]) {
        Err(Error::WrongKey {
            expected, found, ..
        }) => {
            assert_eq!(expected, other.fingerprint());
            assert_eq!(found, f.keys.fingerprint());
        }
        other => panic!("expected WrongKey, got {other:?}"),
    }
    assert!(matches!(
        FileLog::open(&f.dir, other, f.options()),
        Err(Error::WrongKey { .. })
    ));
}

#[tokio::test]
async fn a_torn_last_line_is_reported_as_such_and_recovery_is_audited() {
    let f = log_with(5).await;
    let path = f.only_file();
    let end = std::fs::metadata(&path).unwrap().len();
    let half = forged_line(5, "P0").await;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&half[..half.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();

    let torn = |r: jfiv_audit::Result<()>| match r {
        Err(Error::TornTail {
            offset, seq, len, ..
        }) => {
            assert_eq!((offset, seq, len), (end, 5, (half.len() / 2) as u64));
        }
        other => panic!("expected TornTail, got {other:?}"),
    };
    torn(f.verify(&[]).map(|_| ()));
    torn(FileLog::open(&f.dir, f.keys.clone(), f.options()).map(|_| ()));

    let (log, recovery) = FileLog::recover(
        &f.dir,
        f.keys.clone(),
        f.options(),
        Actor::new("ops", "admin"),
    )
    .unwrap();
    let recovery = recovery.expect("a recovery");
    assert_eq!((recovery.offset, recovery.seq), (end, 5));
    assert_eq!(recovery.event.seq, 5);
    assert_eq!(recovery.event.event.action, Action::AuditRecovered);
    assert!(
        recovery
            .event
            .event
            .details
            .contains(&format!("byte {end}"))
    );
    let stored = log.query(&Query::actor("ops")).await.unwrap();
    assert_eq!(stored, vec![recovery.event.clone()]);
    drop(log);
    assert_eq!(f.verify(&[]).unwrap().records, 6);
    // Nothing to recover any more.
    let (_log, again) = FileLog::recover(
        &f.dir,
        f.keys.clone(),
        f.options(),
        Actor::new("ops", "admin"),
    )
    .unwrap();
    assert!(again.is_none());
}

#[tokio::test]
async fn recovery_refuses_a_tampered_log() {
    let f = log_with(5).await;
    let path = f.only_file();
    let mut all: Vec<_> = lines(&path).into_iter().map(|(_, l)| l).collect();
    all.remove(2);
    all.push(b"{\"seq\":5,\"ev".to_vec());
    write_lines(&path, &all);
    let result = FileLog::recover(
        &f.dir,
        f.keys.clone(),
        f.options(),
        Actor::new("ops", "admin"),
    );
    assert!(
        matches!(result, Err(Error::Integrity { .. })),
        "{:?}",
        result.map(|_| ())
    );
}

#[tokio::test]
async fn pruning_removes_whole_expired_periods_keeps_seals_and_is_audited() {
    let f = Fixture::new(PeriodScheme::Daily);
    let log = f.open();
    for _ in 0..5 {
        append_n(&log, 2).await;
        f.clock.advance(Duration::days(1));
    }
    // Now 2026-03-07; days 02..06 exist; with 2 days of retention, 02, 03 and 04 have expired
    // (day 04 ended on 03-05, 2 days ago), and the rotation on this call seals 06.
    let plan = log.plan_prune(Retention::Days(2));
    assert_eq!(plan.expired, vec!["2026-03-02", "2026-03-03", "2026-03-04"]);
    let report = log
        .prune(Retention::Days(2), Actor::new("nightly", "system"))
        .await
        .unwrap();
    assert_eq!(report.plan.expired, plan.expired);
    let event = report.event.expect("an audit-pruned event");
    assert_eq!(event.event.action, Action::AuditPruned);
    assert_eq!(
        event.event.object.as_deref(),
        Some("2026-03-02,2026-03-03,2026-03-04")
    );
    assert!(!f.dir.join("2026-03-02.jsonl").exists());
    assert!(f.dir.join("2026-03-02.seal").exists());
    let verified = log.verify(&[]).await.unwrap();
    assert_eq!(verified.periods.iter().filter(|p| p.pruned).count(), 3);
    assert_eq!(verified.records, event.seq + 1);
    assert_eq!(verified.retained_records, verified.records - 2 - 3 - 3);
    // Query still works on what is left.
    assert!(
        log.query(&Query::all())
            .await
            .unwrap()
            .iter()
            .all(|r| r.seq >= 8)
    );
    // Nothing more to prune.
    let again = log
        .prune(Retention::Days(2), Actor::new("nightly", "system"))
        .await
        .unwrap();
    assert!(again.plan.expired.is_empty() && again.event.is_none());
    drop(log);
    f.verify(&[]).unwrap();

    // Removing a pruned period's seal (and its marker) is a gap; removing only the seal is a
    // bad seal.
    std::fs::remove_file(f.dir.join("2026-03-03.seal")).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| matches!(k, IntegrityKind::BadSeal { .. }),
        None,
        Some(0),
    );
    std::fs::remove_file(f.dir.join("2026-03-03.pruned")).unwrap();
    assert_integrity(
        f.verify(&[]),
        |k| {
            *k == IntegrityKind::Gap {
                expected_first_seq: 2,
                found_first_seq: 5,
            }
        },
        Some(2),
        Some(0),
    );
}

#[tokio::test]
async fn query_verifies_as_it_reads() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = f.open();
    append_n(&log, 8).await;
    let p1 = log.query(&Query::patient("P1")).await.unwrap();
    assert_eq!(p1.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 5]);
    // Tamper with the file under the running log: hide dr.2's read of P1 at seq 5.
    let path = f.only_file();
    let mut all: Vec<_> = lines(&path).into_iter().map(|(_, l)| l).collect();
    all[1 + 5] = String::from_utf8(all[1 + 5].clone())
        .unwrap()
        .replace("\"P1\"", "\"P9\"")
        .into_bytes();
    write_lines(&path, &all);
    let result = log.query(&Query::patient("P1")).await;
    assert!(
        matches!(
            &result,
            Err(Error::Integrity {
                kind: IntegrityKind::MacMismatch,
                seq: Some(5),
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs_and_never_interleave() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let log = Arc::new(f.open());
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..32 {
        let log = log.clone();
        tasks.spawn(async move {
            for i in 0..20 {
                log.append(event(&format!("u{t}"), &format!("P{t}"), i))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(log.records(), 640);
    assert!(
        log.batches_synced() < 640,
        "group commit: {} fsyncs for 640 appends",
        log.batches_synced()
    );
    drop(Arc::into_inner(log).unwrap());
    let report = f.verify(&[]).unwrap();
    assert_eq!(report.records, 640);
    // Every line is one whole record.
    for (_, line) in lines(&f.only_file()).iter().skip(1) {
        let value: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert!(value["event"]["actor"]["user_id"].is_string());
    }
}

#[tokio::test]
async fn a_second_writer_is_refused() {
    let f = Fixture::new(PeriodScheme::Monthly);
    let _log = f.open();
    assert!(matches!(
        FileLog::open(&f.dir, f.keys.clone(), f.options()),
        Err(Error::Locked { .. })
    ));
}

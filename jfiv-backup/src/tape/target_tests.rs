//! The tape target with the core pipeline: backup to tonight's tape, read-back verification,
//! restore from the tape set with the disk catalog deleted.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use jfiv_audit::{Clock, ManualClock};
use uuid::Uuid;

use super::*;
use crate::{
    BackupOptions, DirectorySource, ExtractOptions, NoProgress, RepositoryKey, Selection, backup,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn data_tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("db/exports")).unwrap();
    for i in 0..20u32 {
        let text: String = (0..2000)
            .map(|n| format!("patient P{:06} cycle FIV-{i} row {n}\n", n * 7 + i))
            .collect();
        std::fs::write(dir.join(format!("db/exports/part-{i:02}.csv")), text).unwrap();
    }
    let mut x = 0x1234_5678_u64;
    let noise: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("db/blob.bin"), noise).unwrap();
}

fn same_tree(a: &std::path::Path, b: &std::path::Path) {
    let mut n = 0;
    for entry in walkdir::WalkDir::new(a) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry.path().strip_prefix(a).unwrap();
            assert_eq!(
                std::fs::read(entry.path()).unwrap(),
                std::fs::read(b.join(rel)).unwrap(),
                "{rel:?}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 21);
}

struct Setup {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    lib: VirtualLibrary,
    labels: Vec<MediaLabel>,
    root: std::path::PathBuf,
}

fn setup(tapes: usize, capacity: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    data_tree(&data);
    let slots: Vec<String> = (0..tapes).map(|i| format!("s{i}")).collect();
    let slot_refs: Vec<&str> = slots.iter().map(String::as_str).collect();
    let mut lib = VirtualLibrary::create(dir.path().join("lib"), &slot_refs).unwrap();
    let mut labels = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let barcode = format!("JFV{i:03}L6");
        lib.add_tape(
            slot,
            &VirtualTapeSpec {
                barcode: barcode.clone(),
                capacity,
                early_warning_zone: 4 << 20,
            },
        )
        .unwrap();
        let label = MediaLabel::new(
            Uuid::new_v4(),
            &barcode,
            Pool::Daily,
            Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
        );
        let mut t = lib.load(&barcode).unwrap();
        format::write_label(&mut t, &label).unwrap();
        labels.push(label);
    }
    Setup {
        root: dir.path().to_path_buf(),
        _dir: dir,
        data,
        lib,
        labels,
    }
}

#[test]
fn backup_to_tape_verify_then_restore_without_the_disk_catalog() {
    let s = setup(4, 6 << 20);
    let key = RepositoryKey::generate();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 5, 21, 0, 0).unwrap(),
    ));
    let inventory: Vec<MediaInfo> = s
        .labels
        .iter()
        .map(|l| MediaInfo {
            label: l.clone(),
            last_written: None,
        })
        .collect();
    let plan = plan_tonight(&inventory, &RotationPolicy::default(), clock.now()).unwrap();
    let mut device = s.lib.load(&plan.tape).unwrap();
    let label = media::identify_for_writing(
        &mut device,
        &plan,
        &inventory,
        &RotationPolicy::default(),
        clock.now(),
    )
    .unwrap();
    let candidates: Vec<String> = s
        .labels
        .iter()
        .map(|l| l.barcode.clone())
        .filter(|b| *b != plan.tape)
        .collect();
    // The changer borrows the library: give it its own handle, as a process would.
    let lib2: &'static VirtualLibrary =
        Box::leak(Box::new(VirtualLibrary::open(s.lib.dir()).unwrap()));
    let changer = LibraryChanger::new(
        lib2,
        candidates,
        ChangerPurpose::Write {
            inventory: inventory.clone(),
            policy: RotationPolicy::default(),
            now: clock.now(),
        },
    );
    let source = DirectorySource::new("jfiv-db").root_as(&s.data, "db-root");
    let options = SessionOptions {
        snapshot: "nightly".into(),
        source: "jfiv-db".into(),
        host: "jfiv-srv".into(),
        pool: plan.pool.clone(),
        block_size: format::DEFAULT_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    };
    let rt = rt();
    let mut verify_changer = LibraryChanger::new(
        lib2,
        s.labels.iter().map(|l| l.barcode.clone()).collect(),
        ChangerPurpose::Read,
    );
    verify_changer.skipped.clear();
    let job = TapeJob::new(
        Box::new(device),
        label,
        options,
        Box::new(changer),
        Box::new(verify_changer),
        Arc::clone(&clock),
    );
    assert!(job.verify, "read-back verification is on by default");
    let done = rt
        .block_on(backup_to_tape(
            &source,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
            job,
        ))
        .unwrap();
    let (report, summary) = (done.backup, done.summary);
    let auto = done.verification.unwrap();
    assert!(auto.ok, "{auto:?}");
    assert_eq!(auto.chunks, summary.catalog.chunks);
    assert!(summary.complete);
    assert_eq!(summary.catalog.snapshot, report.manifest.snapshot.to_hex());
    assert!(
        summary.catalog.volumes.len() >= 2,
        "3 MB of chunks span tapes with an early warning at 2 MiB: {:?}",
        summary.catalog.volumes
    );
    assert_eq!(summary.catalog.chunks, report.stats.chunks_new);

    let catalog_path = s.root.join("catalog.json");
    let mut catalog = Catalog::default();
    for l in &s.labels {
        catalog.add_label(l.clone());
    }
    catalog.record_session(&summary);

    // Read-back verification, recorded in the catalog.
    let first = summary.catalog.volumes[0].clone();
    let all: Vec<String> = s.labels.iter().map(|l| l.barcode.clone()).collect();
    let mut reader = LibraryChanger::new(&s.lib, all.clone(), ChangerPurpose::Read);
    let v = verify_session(
        Box::new(s.lib.load(&first.tape).unwrap()),
        first.file,
        &mut reader,
        &key,
        &*clock,
    )
    .unwrap();
    assert!(v.result.ok, "{:?}", v.result);
    assert_eq!(v.result.chunks, summary.catalog.chunks);
    assert_eq!(v.manifests.len(), 1);
    catalog
        .record_verify(summary.catalog.session, v.result.clone())
        .unwrap();
    assert!(catalog.sessions[&summary.catalog.session].verified());
    catalog.save(&catalog_path).unwrap();

    // A wrong key fails the verification, naming the problem.
    let other = RepositoryKey::generate();
    let bad = verify_session(
        Box::new(s.lib.load(&first.tape).unwrap()),
        first.file,
        &mut reader,
        &other,
        &*clock,
    )
    .unwrap();
    assert!(!bad.result.ok);
    assert!(
        bad.result
            .error
            .as_deref()
            .unwrap()
            .contains("another repository key"),
        "{:?}",
        bad.result.error
    );

    // The server room burns: the catalog is gone. Scan the tapes, then restore.
    std::fs::remove_file(&catalog_path).unwrap();
    let mut rebuilt = Catalog::default();
    for b in s.lib.barcodes().unwrap() {
        rebuilt.merge_scan(&scan_tape(&mut s.lib.load(&b).unwrap()).unwrap());
    }
    let latest = rebuilt.latest_complete("jfiv-db").unwrap().clone();
    assert_eq!(latest.catalog.snapshot, report.manifest.snapshot.to_hex());
    let v1 = &latest.catalog.volumes[0];
    let out = s.root.join("restored");
    let extract = restore_session(
        Box::new(s.lib.load(&v1.tape).unwrap()),
        v1.file,
        &mut reader,
        &key,
        RestoreFromTape {
            manifest: None,
            selection: &Selection::all(),
            dest: &out,
            options: ExtractOptions::default(),
        },
    )
    .unwrap();
    assert!(extract.is_complete(), "{extract:?}");
    same_tree(&s.data, &out.join("db-root"));
}

#[test]
fn a_failed_backup_leaves_an_incomplete_session() {
    let s = setup(1, 64 << 20);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 5, 21, 0, 0).unwrap(),
    ));
    let options = SessionOptions {
        snapshot: "nightly".into(),
        source: "jfiv-db".into(),
        host: "h".into(),
        pool: Pool::Daily,
        block_size: format::DEFAULT_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    };
    let rt = rt();
    let err = rt.block_on(async {
        let target = TapeTarget::start(
            Box::new(s.lib.load("JFV000L6").unwrap()),
            s.labels[0].clone(),
            options,
            Box::new(NoMoreTapes),
            clock,
        )
        .await
        .unwrap();
        // A source that does not exist: the backup fails before any manifest.
        let source = DirectorySource::new("jfiv-db").root_as(s.root.join("missing"), "x");
        let key = RepositoryKey::generate();
        let _ = backup(
            &source,
            &target,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
        )
        .await;
        target.finish().await.unwrap_err()
    });
    assert!(
        matches!(err, crate::Error::Tape(Error::SessionIncomplete { .. })),
        "{err}"
    );
    let scan = scan_tape(&mut s.lib.load("JFV000L6").unwrap()).unwrap();
    let mut c = Catalog::default();
    c.merge_scan(&scan);
    assert!(c.latest_complete("jfiv-db").is_none());
}

#[test]
fn the_wrong_tape_is_refused_before_anything_is_written() {
    let s = setup(2, 64 << 20);
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 5, 21, 0, 0).unwrap(),
    ));
    let options = SessionOptions {
        snapshot: "nightly".into(),
        source: "jfiv-db".into(),
        host: "h".into(),
        pool: Pool::Daily,
        block_size: format::DEFAULT_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    };
    let before = s.lib.load("JFV001L6").unwrap().recorded();
    let err = rt()
        .block_on(TapeTarget::start(
            Box::new(s.lib.load("JFV001L6").unwrap()),
            s.labels[0].clone(),
            options,
            Box::new(NoMoreTapes),
            clock,
        ))
        .unwrap_err();
    assert!(
        matches!(err, crate::Error::Tape(Error::WrongTape { .. })),
        "{err}"
    );
    assert_eq!(s.lib.load("JFV001L6").unwrap().recorded(), before);
}

crate::backup_target_conformance!(tape_target_conformance, {
    let dir = tempfile::tempdir().unwrap();
    let spec = VirtualTapeSpec {
        barcode: "CONF01".into(),
        capacity: 256 << 20,
        early_warning_zone: 8 << 20,
    };
    let mut tape = VirtualTape::create(dir.path().join("t.vtape"), &spec).unwrap();
    let label = MediaLabel::new(
        Uuid::new_v4(),
        "CONF01",
        Pool::Daily,
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
    );
    format::write_label(&mut tape, &label).unwrap();
    let options = SessionOptions {
        snapshot: "conformance".into(),
        source: "conformance".into(),
        host: "h".into(),
        pool: Pool::Daily,
        block_size: format::DEFAULT_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    };
    let clock: Arc<dyn Clock> = Arc::new(jfiv_audit::SystemClock);
    let target = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(TapeTarget::start(
            Box::new(tape),
            label,
            options,
            Box::new(NoMoreTapes),
            clock,
        ))
        .unwrap();
    crate::conformance::Fixture::with_guard(target, dir)
});

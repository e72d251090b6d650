//! Restore scenarios: planning, execution, resumption after crashes, damage, tape-only
//! restores and drills.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use jfiv_audit::{Action, Actor, ManualClock, MemorySink, Origin, Outcome, SystemClock};
use jfiv_backup::{
    AuditHook, BackupOptions, BackupTarget, DirectorySource, DiskTarget, EntryKind, Manifest,
    MemoryTarget, NoProgress, RepositoryKey, SnapshotId, SourceKind, SqliteSource, backup,
};
use jfiv_restore::*;
use rand::{Rng, SeedableRng};

fn t(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::hours(h)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A deterministic application tree: nested dirs, files of varied sizes (some empty, some
/// several chunks), a symlink, an executable.
fn make_tree(root: &Path, seed: u64, files: usize, max_len: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..files {
        let dir = root.join(format!("d{}/s{}", i % 7, i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let len = if i % 11 == 0 {
            0
        } else {
            rng.gen_range(1..max_len)
        };
        let mut data = vec![0u8; len];
        if i % 2 == 0 {
            rng.fill(&mut data[..]);
        } else {
            for (j, b) in data.iter_mut().enumerate() {
                *b = b"patient cycle FIV ICSI TEC IIU "[(j + i) % 31];
            }
        }
        std::fs::write(dir.join(format!("f{i}.dat")), data).unwrap();
    }
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho ok\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("run.sh", root.join("start")).unwrap();
}

fn make_db(path: &Path, patients: usize) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("CREATE TABLE patients (id TEXT PRIMARY KEY, nom TEXT); CREATE TABLE cycles (id INTEGER PRIMARY KEY, patient TEXT, kind TEXT);").unwrap();
    for p in 0..patients {
        c.execute(
            "INSERT INTO patients VALUES (?1, 'FICTIF')",
            [format!("P{p:05}")],
        )
        .unwrap();
        c.execute(
            "INSERT INTO cycles (patient, kind) VALUES (?1, 'FIV')",
            [format!("P{p:05}")],
        )
        .unwrap();
    }
}

/// Every path under `root` with its kind, mode and content (bit for bit).
fn tree_image(root: &Path) -> BTreeMap<String, (String, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let v = if meta.file_type().is_symlink() {
            (
                "link".into(),
                0,
                std::fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes(),
            )
        } else if meta.is_dir() {
            ("dir".into(), mode, Vec::new())
        } else {
            ("file".into(), mode, std::fs::read(e.path()).unwrap())
        };
        out.insert(rel, v);
    }
    out
}

fn mtimes(root: &Path) -> BTreeMap<String, i64> {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::metadata(e.path()).unwrap().mtime(),
            )
        })
        .collect()
}

fn hook(sink: &Arc<MemorySink>) -> AuditHook {
    AuditHook {
        sink: sink.clone(),
        actor: Actor::new("operateur.nuit", "backup-operator"),
        origin: Origin::System {
            host: "new-server".into(),
        },
        clock: Arc::new(SystemClock),
    }
}

fn actions(sink: &MemorySink) -> Vec<(Action, Outcome)> {
    sink.snapshot()
        .into_iter()
        .map(|r| (r.event.action, r.event.outcome))
        .collect()
}

/// A site: application tree backed up to a disk target, database backed up to a "tape"
/// (a sequential target, copied into a [`MemoryTapes`] session).
struct Site {
    _dir: tempfile::TempDir,
    server: PathBuf,
    key: RepositoryKey,
    disk_path: PathBuf,
    disk: Arc<DiskTarget>,
    db: Manifest,
    tapes: MemoryTapes,
    tape_session: TapeSession,
}

fn site(files: usize, max_len: usize) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let server = dir.path().join("server");
    let app_root = server.join("opt/jfiv");
    std::fs::create_dir_all(&app_root).unwrap();
    make_tree(&app_root, 7, files, max_len);
    let db_dir = server.join("var/lib/jfiv");
    std::fs::create_dir_all(&db_dir).unwrap();
    make_db(&db_dir.join("jfiv.sqlite"), 120);
    let key = RepositoryKey::generate();
    let disk_path = dir.path().join("disk-target");
    let rt = rt();
    let (db, seq) = rt.block_on(async {
        let disk = DiskTarget::create(&disk_path).unwrap();
        let src = DirectorySource::new("app-server").root_as(&app_root, "opt/jfiv");
        let app = backup(
            &src,
            &disk,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
        let seq = MemoryTarget::sequential();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let dbs = SqliteSource::new("jfiv-db", db_dir.join("jfiv.sqlite"))
            .entry_name("jfiv.sqlite")
            .temp_dir(&tmp);
        let db = backup(
            &dbs,
            &seq,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
        )
        .await
        .unwrap();
        drop(app);
        (db.manifest, seq)
    });
    let manifest_blob = rt.block_on(seq.get_manifest(&db.snapshot)).unwrap();
    let mut tapes = MemoryTapes::new();
    tapes.add_session(
        "sess-1",
        &["JFV001L6"],
        seq.chunks_in_order(),
        db.snapshot,
        Some(manifest_blob),
    );
    let tape_session = TapeSession {
        session: "sess-1".into(),
        snapshot: db.snapshot,
        source: "jfiv-db".into(),
        host: "jfiv-srv".into(),
        started: db.started,
        finished: Some(db.finished),
        volumes: vec![TapeVolume {
            volume: 1,
            barcode: "JFV001L6".into(),
            file: 1,
            location: Location::Offsite {
                name: "salle B".into(),
            },
        }],
        complete: true,
        incomplete_reason: None,
        verification: Verification::Ok { at: db.finished },
        chunk_bytes: db.stats.bytes,
    };
    let disk = Arc::new(DiskTarget::open_read_only(&disk_path).unwrap());
    Site {
        _dir: dir,
        server,
        key,
        disk_path,
        disk,
        db,
        tapes,
        tape_session,
    }
}

impl Site {
    fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();
        rt().block_on(inv.add_disk_target(
            "disks",
            "salle des disques",
            self.disk.as_ref(),
            &self.key,
            None,
        ))
        .unwrap();
        for d in &mut inv.disk_snapshots {
            d.verification = Verification::Ok { at: d.finished };
        }
        inv.tape_sessions.push(self.tape_session.clone());
        inv.keys.push(KeyMaterial::KeyFile {
            path: "/etc/jfiv/repository.key".into(),
            available: true,
        });
        inv
    }

    fn ctx<'a>(
        &'a self,
        keys: &'a KnownKey,
        tapes: Option<&'a mut dyn TapeAccess>,
        sink: &Arc<MemorySink>,
        state: &Path,
    ) -> ExecuteContext<'a> {
        ExecuteContext {
            keys,
            disk_targets: [(
                "disks".to_owned(),
                self.disk.clone() as Arc<dyn BackupTarget>,
            )]
            .into(),
            tapes,
            database_hooks: Vec::new(),
            audit: hook(sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(state),
        }
    }
}

fn disk_snap(target: &str, source: &str, h: i64, v: Verification) -> DiskSnapshot {
    DiskSnapshot {
        target: target.into(),
        location: "salle des disques".into(),
        snapshot: SnapshotId::random(),
        source: source.into(),
        kind: SourceKind::Directory,
        host: "jfiv-srv".into(),
        started: t(h),
        finished: t(h) + Duration::minutes(20),
        files: 1000,
        bytes: 2_000_000_000,
        warnings: 0,
        verification: v,
    }
}

fn tape_sess(id: &str, h: i64, barcode: &str, complete: bool, v: Verification) -> TapeSession {
    TapeSession {
        session: id.into(),
        snapshot: SnapshotId::random(),
        source: "jfiv-db".into(),
        host: "jfiv-srv".into(),
        started: t(h),
        finished: complete.then(|| t(h) + Duration::minutes(30)),
        volumes: vec![TapeVolume {
            volume: 1,
            barcode: barcode.into(),
            file: 1,
            location: Location::Offsite {
                name: "salle B".into(),
            },
        }],
        complete,
        incomplete_reason: (!complete).then(|| "no trailer on JFV003L6 file 1".to_owned()),
        verification: v,
        chunk_bytes: 600_000_000,
    }
}

mod planning {
    use super::*;

    fn inventory() -> Inventory {
        let ok = |h| Verification::Ok { at: t(h) };
        Inventory {
            disk_snapshots: vec![
                disk_snap("disks", "app-server", 0, ok(1)),
                disk_snap("disks", "app-server", 24, ok(25)),
            ],
            tape_sessions: vec![
                tape_sess("s-old", 2, "JFV001L6", true, ok(3)),
                tape_sess(
                    "s-damaged",
                    26,
                    "JFV002L6",
                    true,
                    Verification::Damaged {
                        at: t(27),
                        reason: "JFV002L6 file 1 block 812: CRC mismatch".into(),
                        affected_files: vec![],
                    },
                ),
                tape_sess(
                    "s-incomplete",
                    50,
                    "JFV003L6",
                    false,
                    Verification::NotVerified,
                ),
            ],
            keys: vec![
                KeyMaterial::KeyFile {
                    path: "/etc/jfiv/repository.key".into(),
                    available: false,
                },
                KeyMaterial::PaperKey {
                    kept_at: "coffre de la direction".into(),
                },
            ],
            measurements: vec![Measurement {
                kind: MeasureKind::TapeRead,
                bytes: 300_000_000,
                seconds: 2.0,
                at: t(3),
            }],
            tape_catalog: CatalogOrigin::DiskCatalog,
            notes: vec![],
        }
    }

    #[test]
    fn plan_picks_the_latest_verified_backups_and_falls_back_past_damaged_and_incomplete_sessions()
    {
        let inv = inventory();
        let clock = ManualClock::new(t(60));
        let plan =
            RestorePlan::compute(&inv, &RestoreRequest::whole_server("/srv/new"), &clock).unwrap();
        let app = plan
            .chosen
            .iter()
            .find(|c| c.role == Role::Application)
            .unwrap();
        assert_eq!(
            app.snapshot, inv.disk_snapshots[1].snapshot,
            "the latest verified disk snapshot"
        );
        let db = plan
            .chosen
            .iter()
            .find(|c| c.role == Role::Database)
            .unwrap();
        assert_eq!(
            db.snapshot, inv.tape_sessions[0].snapshot,
            "falls back to the old good session"
        );
        let refused: Vec<&str> = plan.refused.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(plan.refused.len(), 2, "{refused:?}");
        assert!(refused.iter().any(|r| r.contains("CRC mismatch")));
        assert!(refused.iter().any(|r| r.contains("incomplete")));
        assert!(
            plan.warnings.iter().any(|w| w.contains("fell back")
                && w.contains(&inv.tape_sessions[1].snapshot.to_string()))
        );
        // Media: only the old tape, fetched from the offsite room, then loaded.
        assert_eq!(plan.media.len(), 1);
        assert_eq!(plan.media[0].barcode, "JFV001L6");
        let kinds: Vec<&StepKind> = plan.steps.iter().map(|s| &s.kind).collect();
        assert!(
            matches!(
                kinds[0],
                StepKind::ObtainKey {
                    key: KeyPlan::PaperKey { .. }
                }
            ),
            "key file burned: paper key"
        );
        let fetch = plan.steps.iter().position(|s| matches!(&s.kind, StepKind::FetchTape { barcode, from: Location::Offsite { .. } } if barcode == "JFV001L6")).unwrap();
        let load = plan
            .steps
            .iter()
            .position(
                |s| matches!(&s.kind, StepKind::LoadTape { barcode } if barcode == "JFV001L6"),
            )
            .unwrap();
        let tape = plan.steps.iter().position(|s| matches!(&s.kind, StepKind::RestoreFromTape { session, .. } if session == "s-old")).unwrap();
        let verify = plan
            .steps
            .iter()
            .position(|s| {
                matches!(
                    &s.kind,
                    StepKind::VerifyTree {
                        role: Role::Database,
                        ..
                    }
                )
            })
            .unwrap();
        let dbcheck = plan
            .steps
            .iter()
            .position(|s| matches!(&s.kind, StepKind::CheckDatabase { .. }))
            .unwrap();
        assert!(fetch < load && load < tape && tape < verify && verify < dbcheck);
        // RPO: the oldest data used is the database of hour 2, 58 h before "now".
        assert_eq!(plan.rpo.data_as_of, t(2));
        assert_eq!(plan.rpo.age_secs, 58 * 3600);
        // RTO: the tape step uses the measured 150 MB/s.
        let tape_step = &plan.steps[tape];
        assert!(
            (tape_step.estimate_secs - (600e6 / 150e6 + 600e6 / 80e6)).abs() < 1e-6,
            "{}",
            tape_step.estimate_secs
        );
        assert!(tape_step.estimate_basis.contains("150 MB/s (measured)"));
        // Pure and serialisable.
        let again =
            RestorePlan::compute(&inv, &RestoreRequest::whole_server("/srv/new"), &clock).unwrap();
        assert_eq!(plan, again);
        let back: RestorePlan = serde_json::from_str(&plan.to_json().unwrap()).unwrap();
        assert_eq!(back, plan);
        let text = plan.to_string();
        assert!(
            text.contains("fetch tape JFV001L6 in the offsite room (salle B)"),
            "{text}"
        );
        assert!(text.contains("paper key"), "{text}");
        assert!(text.contains("58h00m old"), "{text}");
    }

    #[test]
    fn as_of_picks_the_backup_before_the_time_and_the_layout_remaps() {
        let inv = inventory();
        let req = RestoreRequest::whole_server("/srv/new")
            .with_scope(Scope::ApplicationOnly)
            .as_of(t(10))
            .map("opt/jfiv/conf", "/etc/jfiv");
        let plan = RestorePlan::compute(&inv, &req, &ManualClock::new(t(60))).unwrap();
        assert_eq!(plan.chosen.len(), 1);
        assert_eq!(plan.chosen[0].snapshot, inv.disk_snapshots[0].snapshot);
        assert!(plan.media.is_empty());
        let StepKind::RestoreFromDisk { layout, .. } = &plan.steps[1].kind else {
            panic!("{:?}", plan.steps[1])
        };
        assert_eq!(
            layout.destination_of("opt/jfiv/conf/a.properties"),
            Path::new("/etc/jfiv/a.properties")
        );
        assert_eq!(
            layout.destination_of("opt/jfiv/conf"),
            Path::new("/etc/jfiv")
        );
        assert_eq!(
            layout.destination_of("opt/jfiv/confx"),
            Path::new("/srv/new/opt/jfiv/confx")
        );
        assert_eq!(
            layout.destination_of("opt/jfiv/lib/x.jar"),
            Path::new("/srv/new/opt/jfiv/lib/x.jar")
        );
    }

    #[test]
    fn no_usable_backup_is_a_typed_error_naming_every_refusal() {
        let mut inv = inventory();
        inv.tape_sessions.remove(0);
        let err = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server("/srv/new").with_scope(Scope::DatabaseOnly),
            &ManualClock::new(t(60)),
        )
        .unwrap_err();
        let Error::NoUsableBackup {
            source_name,
            skipped,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(source_name, "jfiv-db");
        assert!(
            skipped.contains("CRC mismatch") && skipped.contains("incomplete"),
            "{skipped}"
        );
        inv.keys.clear();
        let err = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server("/srv/new").with_scope(Scope::ApplicationOnly),
            &ManualClock::new(t(60)),
        )
        .unwrap_err();
        assert!(matches!(err, Error::NoKey), "{err:?}");
        let bad = RestoreRequest::whole_server("/srv/new").with_scope(Scope::Paths {
            paths: vec!["../etc".into()],
        });
        assert!(matches!(
            RestorePlan::compute(&inventory(), &bad, &ManualClock::new(t(60))),
            Err(Error::InvalidRequest { .. })
        ));
    }

    #[test]
    fn an_unverified_newer_backup_is_named_and_a_scan_shaped_inventory_plans_from_tape_alone() {
        let ok = |h| Verification::Ok { at: t(h) };
        let inv = Inventory {
            disk_snapshots: vec![],
            tape_sessions: vec![
                tape_sess("s1", 2, "JFV001L6", true, ok(3)),
                tape_sess("s2", 26, "JFV002L6", true, Verification::NotVerified),
            ],
            keys: vec![KeyMaterial::PaperKey {
                kept_at: "coffre".into(),
            }],
            measurements: vec![],
            tape_catalog: CatalogOrigin::TapeScan,
            notes: vec![],
        };
        let plan = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server("/srv/new").with_scope(Scope::DatabaseOnly),
            &ManualClock::new(t(30)),
        )
        .unwrap();
        assert_eq!(plan.chosen[0].snapshot, inv.tape_sessions[0].snapshot);
        assert!(plan.refused[0].reason.contains("never verified"));
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("rebuilt by scanning"))
        );
        assert_eq!(plan.tape_catalog, CatalogOrigin::TapeScan);
        // Only unverified: used, with a warning.
        let mut only = inv.clone();
        only.tape_sessions.remove(0);
        let plan = RestorePlan::compute(
            &only,
            &RestoreRequest::whole_server("/srv/new").with_scope(Scope::DatabaseOnly),
            &ManualClock::new(t(30)),
        )
        .unwrap();
        assert_eq!(plan.chosen[0].snapshot, only.tape_sessions[0].snapshot);
        assert!(plan.warnings.iter().any(|w| w.contains("never verified")));
    }
}

mod execution {
    use super::*;

    #[test]
    fn whole_server_restore_from_disk_and_tape_is_identical_checked_and_audited() {
        let mut site = site(60, 200_000);
        let plan = RestorePlan::compute(
            &site.inventory(),
            &RestoreRequest::whole_server(site._dir.path().join("new")),
            &SystemClock,
        )
        .unwrap();
        let new_root = site._dir.path().join("new");
        let state = tempfile::tempdir().unwrap();
        let sink = Arc::new(MemorySink::new());
        let keys = KnownKey(site.key.clone());
        let mut tapes = std::mem::take(&mut site.tapes);
        let report = {
            let mut ctx = site.ctx(&keys, Some(&mut tapes), &sink, state.path());
            rt().block_on(execute(&plan, &mut ctx)).unwrap()
        };
        assert!(report.is_complete(), "{report:#?}");
        assert!(report.lost_files().is_empty());
        assert_eq!(
            tree_image(&site.server.join("opt/jfiv")),
            tree_image(&new_root.join("opt/jfiv"))
        );
        assert_eq!(
            mtimes(&site.server.join("opt/jfiv")),
            mtimes(&new_root.join("opt/jfiv")),
            "mtimes restored"
        );
        let db = new_root.join("var/lib/jfiv/jfiv.sqlite");
        assert_eq!(
            jfiv_backup::sqlite_row_counts(&db).unwrap(),
            site.db.databases[0].row_counts
        );
        let checks = report.checks();
        assert!(
            checks
                .iter()
                .any(|c| c.ok && c.findings.iter().any(|f| f.contains("integrity_check: ok")))
        );
        assert!(checks.iter().all(|c| c.ok));
        let acts = actions(&sink);
        assert_eq!(acts[0], (Action::RestorePlanned, Outcome::Success));
        assert_eq!(
            acts.iter()
                .filter(|a| a.0 == Action::RestoreStepDone)
                .count(),
            plan.steps.len()
        );
        assert_eq!(
            *acts.last().unwrap(),
            (Action::RestoreFinished, Outcome::Success)
        );
        assert_eq!(tapes.reads("sess-1"), 1);
        // Running it again does nothing but report the checkpointed steps.
        let report2 = {
            let mut ctx = site.ctx(&keys, Some(&mut tapes), &sink, state.path());
            rt().block_on(execute(&plan, &mut ctx)).unwrap()
        };
        assert!(report2.resumed && report2.is_complete());
        assert_eq!(
            report2
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::AlreadyDone)
                .count(),
            plan.steps.len() - 1
        );
        assert_eq!(tapes.reads("sess-1"), 1, "the tape is not read again");
    }

    #[test]
    fn a_corrupt_chunk_costs_only_the_files_that_use_it() {
        let dir = tempfile::tempdir().unwrap();
        let src_root = dir.path().join("app");
        std::fs::create_dir_all(&src_root).unwrap();
        make_tree(&src_root, 3, 40, 50_000);
        let key = RepositoryKey::generate();
        let target = Arc::new(MemoryTarget::new());
        let rt = rt();
        let m = rt
            .block_on(backup(
                &DirectorySource::new("app-server").root_as(&src_root, "opt/jfiv"),
                target.as_ref(),
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
            ))
            .unwrap()
            .manifest;
        // Damage the first chunk of a non-empty file.
        let victim = m
            .entries
            .iter()
            .find(|e| matches!(e.kind, EntryKind::File) && !e.chunks.is_empty())
            .unwrap();
        let bad = victim.chunks[0].id;
        let users: Vec<String> = m
            .entries
            .iter()
            .filter(|e| e.chunks.iter().any(|c| c.id == bad))
            .map(|e| e.path.clone())
            .collect();
        let mut blob = rt.block_on(target.get_chunk(&bad)).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0x40;
        target.tamper_chunk(&bad, blob);
        let mut inv = Inventory::default();
        rt.block_on(inv.add_disk_target("disks", "salle", target.as_ref(), &key, None))
            .unwrap();
        inv.keys.push(KeyMaterial::PaperKey {
            kept_at: "coffre".into(),
        });
        let dest = dir.path().join("new");
        let plan = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server(&dest).with_scope(Scope::ApplicationOnly),
            &SystemClock,
        )
        .unwrap();
        let sink = Arc::new(MemorySink::new());
        let state = dir.path().join("state");
        let keys = KnownKey(key);
        let mut ctx = ExecuteContext {
            keys: &keys,
            disk_targets: [("disks".to_owned(), target.clone() as Arc<dyn BackupTarget>)].into(),
            tapes: None,
            database_hooks: vec![],
            audit: hook(&sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(&state),
        };
        let report = rt.block_on(execute(&plan, &mut ctx)).unwrap();
        let mut lost: Vec<String> = report.lost_files().iter().map(|l| l.path.clone()).collect();
        lost.sort();
        let mut expected = users.clone();
        expected.sort();
        assert_eq!(lost, expected, "exactly the files using the chunk are lost");
        assert!(
            report
                .lost_files()
                .iter()
                .all(|l| l.chunk.as_deref() == Some(bad.to_string().as_str()))
        );
        assert!(!report.is_complete());
        // Everything else is there and identical; the lost files are not left half-written.
        let original = tree_image(&src_root);
        let restored = tree_image(&dest.join("opt/jfiv"));
        for (path, v) in &original {
            let snap_path = format!("opt/jfiv/{path}");
            if users.contains(&snap_path) {
                assert!(!restored.contains_key(path), "{path} must not exist");
            } else {
                assert_eq!(restored.get(path), Some(v), "{path}");
            }
        }
        assert_eq!(
            restored.len(),
            original.len() - users.len(),
            "no temporary leftovers"
        );
        let verify = report
            .checks()
            .into_iter()
            .find(|c| c.name.starts_with("tree"))
            .unwrap()
            .clone();
        assert!(
            !verify.ok
                && verify
                    .findings
                    .iter()
                    .filter(|f| f.starts_with("missing"))
                    .count()
                    == users.len()
        );
        assert_eq!(
            *actions(&sink).last().unwrap(),
            (Action::RestoreFailed, Outcome::Failure)
        );
    }

    #[test]
    fn cancelling_between_steps_then_running_again_continues_without_redoing_steps() {
        let mut site = site(30, 100_000);
        let new_root = site._dir.path().join("new");
        let plan = RestorePlan::compute(
            &site.inventory(),
            &RestoreRequest::whole_server(&new_root),
            &SystemClock,
        )
        .unwrap();
        let state = tempfile::tempdir().unwrap();
        let sink = Arc::new(MemorySink::new());
        let keys = KnownKey(site.key.clone());
        let mut tapes = std::mem::take(&mut site.tapes);
        /// Cancels as soon as `n` steps have finished.
        #[derive(Debug)]
        struct CancelAfter(
            usize,
            Arc<std::sync::atomic::AtomicBool>,
            std::sync::atomic::AtomicUsize,
        );
        impl RestoreProgress for CancelAfter {
            fn report(&self, e: &RestoreEvent<'_>) {
                if let RestoreEvent::StepFinished { .. } = e
                    && self.2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= self.0
                {
                    self.1.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
        let mut done_before = 0;
        for n in 1..plan.steps.len() {
            let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let progress = CancelAfter(n.min(2), cancel.clone(), Default::default());
            let mut ctx = site.ctx(&keys, Some(&mut tapes), &sink, state.path());
            ctx.progress = &progress;
            ctx.options.cancel = cancel;
            match rt().block_on(execute(&plan, &mut ctx)) {
                Err(Error::Interrupted { step }) => {
                    assert!(plan.steps.iter().any(|s| s.id == step));
                    let done = match std::fs::read(state.path().join("state.json")) {
                        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b).unwrap()["done"]
                            .as_object()
                            .unwrap()
                            .len(),
                        Err(_) => 0,
                    };
                    // Each run after the first does the key step plus one new step.
                    assert!(
                        n == 1 || done > done_before,
                        "progress is checkpointed ({done} after {done_before})"
                    );
                    done_before = done;
                }
                Ok(r) => {
                    assert!(r.is_complete() && r.resumed);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            tree_image(&site.server.join("opt/jfiv")),
            tree_image(&new_root.join("opt/jfiv"))
        );
        assert_eq!(
            tapes.reads("sess-1"),
            1,
            "the tape session was read once across the runs"
        );
        assert!(
            actions(&sink).contains(&(Action::RestoreFailed, Outcome::Failure)),
            "interruptions are audited"
        );
    }

    #[test]
    fn restore_with_the_disk_catalog_gone_works_from_the_tape_catalog_alone() {
        // Application and database both on tape; no disk snapshot in the inventory, no disk
        // target given: the scan-shaped inventory is all there is.
        let dir = tempfile::tempdir().unwrap();
        let src_root = dir.path().join("app");
        std::fs::create_dir_all(&src_root).unwrap();
        make_tree(&src_root, 9, 25, 80_000);
        let key = RepositoryKey::generate();
        let rt = rt();
        let seq = MemoryTarget::sequential();
        let m = rt
            .block_on(backup(
                &DirectorySource::new("app-server").root_as(&src_root, "opt/jfiv"),
                &seq,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
            ))
            .unwrap()
            .manifest;
        let blob = rt.block_on(seq.get_manifest(&m.snapshot)).unwrap();
        let mut tapes = MemoryTapes::new();
        tapes.add_session(
            "app-sess",
            &["JFV010L6"],
            seq.chunks_in_order(),
            m.snapshot,
            Some(blob),
        );
        let mut sess = tape_sess(
            "app-sess",
            0,
            "JFV010L6",
            true,
            Verification::Ok { at: m.finished },
        );
        sess.snapshot = m.snapshot;
        sess.source = "app-server".into();
        sess.started = m.started;
        let inv = Inventory {
            tape_sessions: vec![sess],
            keys: vec![KeyMaterial::PaperKey {
                kept_at: "coffre".into(),
            }],
            tape_catalog: CatalogOrigin::TapeScan,
            ..Inventory::default()
        };
        let dest = dir.path().join("new");
        let plan = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server(&dest).with_scope(Scope::ApplicationOnly),
            &SystemClock,
        )
        .unwrap();
        assert!(
            plan.steps
                .iter()
                .any(|s| matches!(s.kind, StepKind::FetchTape { .. }))
        );
        let sink = Arc::new(MemorySink::new());
        // The paper key, typed in.
        let paper = key.paper_key().text().to_string();
        let secrets = Secrets {
            passphrase: None,
            paper_key: Some(SecretString::from(paper)),
        };
        let mut ctx = ExecuteContext {
            keys: &secrets,
            disk_targets: BTreeMap::new(),
            tapes: Some(&mut tapes),
            database_hooks: vec![],
            audit: hook(&sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(dir.path().join("state")),
        };
        let report = rt.block_on(execute(&plan, &mut ctx)).unwrap();
        assert!(report.is_complete(), "{report:#?}");
        assert_eq!(tree_image(&src_root), tree_image(&dest.join("opt/jfiv")));
        assert!(
            !dir.path()
                .join("state")
                .join(format!("staging-{}", m.snapshot))
                .exists(),
            "staging removed"
        );
    }

    #[test]
    fn a_wrong_paper_key_fails_before_anything_is_written() {
        let mut site = site(5, 1000);
        let dest = site._dir.path().join("new");
        let mut inv = site.inventory();
        inv.keys = vec![KeyMaterial::PaperKey {
            kept_at: "coffre".into(),
        }];
        let plan =
            RestorePlan::compute(&inv, &RestoreRequest::whole_server(&dest), &SystemClock).unwrap();
        let other = RepositoryKey::generate().paper_key().text().to_string();
        let secrets = Secrets {
            passphrase: None,
            paper_key: Some(SecretString::from(other)),
        };
        let sink = Arc::new(MemorySink::new());
        let state = tempfile::tempdir().unwrap();
        let mut tapes = std::mem::take(&mut site.tapes);
        let mut ctx = ExecuteContext {
            keys: &secrets,
            disk_targets: [(
                "disks".to_owned(),
                site.disk.clone() as Arc<dyn BackupTarget>,
            )]
            .into(),
            tapes: Some(&mut tapes),
            database_hooks: vec![],
            audit: hook(&sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(state.path()),
        };
        let err = rt().block_on(execute(&plan, &mut ctx)).unwrap_err();
        assert!(
            matches!(err, Error::Backup(jfiv_backup::Error::WrongKey { .. })),
            "{err:?}"
        );
        assert!(!dest.exists(), "nothing written");
        assert_eq!(
            *actions(&sink).last().unwrap(),
            (Action::RestoreFailed, Outcome::Failure)
        );
    }

    #[test]
    fn check_commands_run_in_the_new_root_and_a_failing_one_fails_the_restore() {
        let site = site(5, 1000);
        let dest = site._dir.path().join("new");
        let req = RestoreRequest::whole_server(&dest)
            .with_scope(Scope::ApplicationOnly)
            .check(CheckCommand {
                name: "config present".into(),
                program: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "test -x \"$JFIV_RESTORE_ROOT/opt/jfiv/run.sh\" && echo found".into(),
                ],
                timeout_secs: 10,
            })
            .check(CheckCommand {
                name: "probe".into(),
                program: "/bin/sh".into(),
                args: vec!["-c".into(), "echo no answer >&2; exit 3".into()],
                timeout_secs: 10,
            });
        let plan = RestorePlan::compute(&site.inventory(), &req, &SystemClock).unwrap();
        let sink = Arc::new(MemorySink::new());
        let state = tempfile::tempdir().unwrap();
        let keys = KnownKey(site.key.clone());
        let mut ctx = site.ctx(&keys, None, &sink, state.path());
        let report = rt().block_on(execute(&plan, &mut ctx)).unwrap();
        let checks = report.checks();
        let ok = checks
            .iter()
            .find(|c| c.name == "command config present")
            .unwrap();
        assert!(
            ok.ok && ok.findings.iter().any(|f| f.contains("found")),
            "{ok:?}"
        );
        let bad = checks.iter().find(|c| c.name == "command probe").unwrap();
        assert!(
            !bad.ok && bad.findings.iter().any(|f| f.contains("no answer")),
            "{bad:?}"
        );
        assert!(!report.is_complete());
    }
}

/// Killing a restore process at random points, then running it again.
mod crash {
    use super::*;

    const CHILD_ENV: &str = "JFIV_RESTORE_TEST_CHILD";

    #[derive(serde::Serialize, serde::Deserialize)]
    struct ChildJob {
        disk: PathBuf,
        key_file: PathBuf,
        plan: PathBuf,
        state: PathBuf,
    }

    /// The child: runs the plan described by the job file, until done or killed.
    #[test]
    fn crash_child_entry_point() {
        let Ok(job) = std::env::var(CHILD_ENV) else {
            return;
        };
        let job: ChildJob = serde_json::from_slice(&std::fs::read(job).unwrap()).unwrap();
        let key = jfiv_backup::KeyFile::read(&job.key_file)
            .unwrap()
            .open(&SecretString::from("test"))
            .unwrap();
        let plan: RestorePlan = serde_json::from_slice(&std::fs::read(&job.plan).unwrap()).unwrap();
        let disk = Arc::new(DiskTarget::open_read_only(&job.disk).unwrap());
        let keys = KnownKey(key);
        let sink = Arc::new(MemorySink::new());
        let mut ctx = ExecuteContext {
            keys: &keys,
            disk_targets: [("disks".to_owned(), disk as Arc<dyn BackupTarget>)].into(),
            tapes: None,
            database_hooks: vec![],
            audit: hook(&sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(&job.state),
        };
        rt().block_on(execute(&plan, &mut ctx)).unwrap();
    }

    #[test]
    fn killing_the_restore_at_random_points_then_rerunning_gives_a_bit_for_bit_identical_tree() {
        let site = site(400, 120_000);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("new");
        let req = RestoreRequest::whole_server(&dest).with_scope(Scope::ApplicationOnly);
        let plan = RestorePlan::compute(&site.inventory(), &req, &SystemClock).unwrap();
        let key_file = dir.path().join("key");
        jfiv_backup::KeyFile::seal(
            &site.key,
            &SecretString::from("test"),
            jfiv_backup::KdfParams::insecure_for_tests(),
        )
        .unwrap()
        .write(&key_file)
        .unwrap();
        let plan_file = dir.path().join("plan.json");
        std::fs::write(&plan_file, plan.to_json().unwrap()).unwrap();
        let state = dir.path().join("state");
        let job_file = dir.path().join("job.json");
        std::fs::write(
            &job_file,
            serde_json::to_vec(&ChildJob {
                disk: site.disk_path.clone(),
                key_file,
                plan: plan_file,
                state: state.clone(),
            })
            .unwrap(),
        )
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        let exe = std::env::current_exe().unwrap();
        let mut killed = 0;
        for _ in 0..6 {
            let mut child = std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "crash::crash_child_entry_point",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &job_file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(20..400)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                killed += 1;
            }
            child.wait().unwrap();
        }
        assert!(killed > 0, "at least one run was killed midway");
        // Final run in this process.
        let sink = Arc::new(MemorySink::new());
        let keys = KnownKey(site.key.clone());
        let mut ctx = site.ctx(&keys, None, &sink, &state);
        let report = rt().block_on(execute(&plan, &mut ctx)).unwrap();
        assert!(report.is_complete(), "{report:#?}");
        assert_eq!(
            tree_image(&site.server.join("opt/jfiv")),
            tree_image(&dest.join("opt/jfiv"))
        );
        assert_eq!(
            tree_image(&dest)
                .keys()
                .filter(|k| k.contains("jfiv-partial"))
                .count(),
            0
        );
    }
}

mod drills {
    use super::*;

    #[test]
    fn a_drill_restores_into_scratch_checks_and_writes_its_evidence_report() {
        let mut site = site(30, 50_000);
        let prod_root = site._dir.path().join("would-be-production");
        let plan = RestorePlan::compute(
            &site.inventory(),
            &RestoreRequest::whole_server(&prod_root),
            &SystemClock,
        )
        .unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let reports = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let sink = Arc::new(MemorySink::new());
        let keys = KnownKey(site.key.clone());
        let mut tapes = std::mem::take(&mut site.tapes);
        let mut ctx = site.ctx(&keys, Some(&mut tapes), &sink, state.path());
        let (report, files) = rt()
            .block_on(drill(&plan, &mut ctx, scratch.path(), reports.path()))
            .unwrap();
        assert!(report.passed, "{report:#?}");
        assert!(
            !prod_root.exists(),
            "a drill never writes to the production root"
        );
        assert_eq!(
            tree_image(&site.server.join("opt/jfiv")),
            tree_image(&scratch.path().join("opt/jfiv"))
        );
        let json: DrillReport =
            serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
        assert_eq!(
            (&json.plan_id, json.passed, &json.checks, &json.restored),
            (
                &report.plan_id,
                report.passed,
                &report.checks,
                &report.restored
            )
        );
        assert!(json.measured_rto_secs > 0.0);
        assert_eq!(json.steps.len(), plan.steps.len());
        assert!(json.checks.iter().any(|c| c.name.starts_with("database")));
        let md = std::fs::read_to_string(&files.markdown).unwrap();
        assert!(
            md.contains("PASSED") && md.contains("JFV001L6") && md.contains("integrity_check: ok"),
            "{md}"
        );
        let drill_event = sink
            .snapshot()
            .into_iter()
            .find(|r| r.event.action == Action::RestoreDrill)
            .unwrap();
        assert_eq!(drill_event.event.outcome, Outcome::Success);
        assert!(drill_event.event.details.contains("measured RTO"));
    }
}

/// The real tape subsystem: a virtual library, the tape target, a scan.
mod tape_scan {
    use super::*;
    use jfiv_backup::tape::format::{DEFAULT_BLOCK_SIZE, write_label};
    use jfiv_backup::tape::{
        Catalog, LocationConfig, LocationRegister, MediaLabel, NoMoreTapes, Pool, SessionOptions,
        TapeTarget, VirtualLibrary, VirtualTapeSpec, WritePosition, scan_tape,
    };

    #[test]
    fn restore_with_the_disk_catalog_deleted_works_from_a_tape_scan_of_a_virtual_library() {
        let dir = tempfile::tempdir().unwrap();
        let db_dir = dir.path().join("server/var/lib/jfiv");
        std::fs::create_dir_all(&db_dir).unwrap();
        make_db(&db_dir.join("jfiv.sqlite"), 300);
        let mut lib = VirtualLibrary::create(dir.path().join("library"), &["s0", "s1"]).unwrap();
        let mut labels = Vec::new();
        for (i, slot) in ["s0", "s1"].iter().enumerate() {
            let barcode = format!("JFV{i:03}L6");
            lib.add_tape(
                slot,
                &VirtualTapeSpec {
                    barcode: barcode.clone(),
                    capacity: 256 << 20,
                    early_warning_zone: 4 << 20,
                },
            )
            .unwrap();
            let label = MediaLabel::new(uuid::Uuid::new_v4(), &barcode, Pool::Daily, t(0));
            write_label(&mut lib.load(&barcode).unwrap(), &label).unwrap();
            labels.push(label);
        }
        let key = RepositoryKey::generate();
        let clock: Arc<dyn jfiv_audit::Clock> = Arc::new(ManualClock::new(t(21)));
        let rt = rt();
        let (manifest, summary) = rt.block_on(async {
            let target = TapeTarget::start(
                Box::new(lib.load("JFV000L6").unwrap()),
                labels[0].clone(),
                SessionOptions {
                    snapshot: "nightly".into(),
                    source: "jfiv-db".into(),
                    host: "jfiv-srv".into(),
                    pool: Pool::Daily,
                    block_size: DEFAULT_BLOCK_SIZE,
                    position: WritePosition::AfterLabel,
                },
                Box::new(NoMoreTapes),
                clock.clone(),
            )
            .await
            .unwrap();
            let tmp = dir.path().join("tmp");
            std::fs::create_dir_all(&tmp).unwrap();
            let src = SqliteSource::new("jfiv-db", db_dir.join("jfiv.sqlite"))
                .entry_name("jfiv.sqlite")
                .temp_dir(&tmp);
            let report = backup(
                &src,
                &target,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
            )
            .await
            .unwrap();
            let (summary, _device) = target.finish().await.unwrap();
            (report.manifest, summary)
        });
        assert!(summary.complete);
        // The server room burned: no disk catalog. Scan every tape of the library.
        let mut catalog = Catalog::default();
        for barcode in ["JFV000L6", "JFV001L6"] {
            let scan = scan_tape(&mut lib.load(barcode).unwrap()).unwrap();
            catalog.merge_scan(&scan);
        }
        let config = LocationConfig {
            drive: "lecteur LTO".into(),
            server_room: "salle serveurs".into(),
            offsite_room: "salle B".into(),
            leave_server_room_by: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        };
        let register = LocationRegister::default();
        let mut inv = Inventory::default();
        inv.add_tape_catalog(&catalog, &register, &config, CatalogOrigin::TapeScan);
        inv.keys.push(KeyMaterial::PaperKey {
            kept_at: "coffre".into(),
        });
        assert_eq!(inv.tape_sessions.len(), 1, "{:?}", inv.notes);
        assert_eq!(inv.tape_sessions[0].snapshot, manifest.snapshot);
        let dest = dir.path().join("new");
        let plan = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server(&dest).with_scope(Scope::DatabaseOnly),
            &SystemClock,
        )
        .unwrap();
        assert_eq!(plan.media[0].barcode, "JFV000L6");
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("rebuilt by scanning"))
        );
        let sink = Arc::new(MemorySink::new());
        let paper = key.paper_key().text().to_string();
        let secrets = Secrets {
            passphrase: None,
            paper_key: Some(SecretString::from(paper)),
        };
        let mut tapes = LibraryTapes::new(VirtualLibrary::open(lib.dir()).unwrap());
        let mut ctx = ExecuteContext {
            keys: &secrets,
            disk_targets: BTreeMap::new(),
            tapes: Some(&mut tapes),
            database_hooks: vec![],
            audit: hook(&sink),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(dir.path().join("state")),
        };
        let report = rt.block_on(execute(&plan, &mut ctx)).unwrap();
        assert!(report.is_complete(), "{report:#?}");
        let restored = dest.join("var/lib/jfiv/jfiv.sqlite");
        assert_eq!(
            jfiv_backup::sqlite_row_counts(&restored).unwrap(),
            manifest.databases[0].row_counts
        );
        assert!(
            report
                .checks()
                .iter()
                .any(|c| c.findings.iter().any(|f| f.contains("integrity_check: ok")))
        );
    }
}

//! Scenarios of the backup engine: round trips, incremental runs, sources, damage, wrong keys,
//! full disks, crashes, retention.

// Helpers outside `#[test]` functions panic on failure too: that is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use jfiv_backup::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small application-server-like tree.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("conf")).unwrap();
    fs::create_dir_all(root.join("lib/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::write(
        root.join("conf/app.toml"),
        b"[db]\nurl = \"sqlite:jfiv.db\"\n",
    )
    .unwrap();
    fs::set_permissions(
        root.join("conf/app.toml"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("lib/big.bin"), pseudo_random(6_000_000, 7)).unwrap();
    let text: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("{i};P{:06};FIV\n", i % 977).into_bytes())
        .collect();
    fs::write(root.join("lib/deep/er/export.csv"), text).unwrap();
    fs::write(root.join("run.sh"), b"#!/bin/sh\necho jfiv\n").unwrap();
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("conf/app.toml", root.join("current.toml")).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    fs::File::options()
        .write(true)
        .open(root.join("run.sh"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Asserts two trees have the same files, bytes, modes, mtimes and links.
fn assert_same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut v: Vec<_> = walkdir_list(root);
        v.sort();
        v
    };
    let la = list(a);
    let lb = list(b);
    assert_eq!(la, lb, "different entries");
    for rel in la {
        let pa = a.join(&rel);
        let pb = b.join(&rel);
        let ma = fs::symlink_metadata(&pa).unwrap();
        let mb = fs::symlink_metadata(&pb).unwrap();
        assert_eq!(
            ma.file_type().is_symlink(),
            mb.file_type().is_symlink(),
            "{rel}"
        );
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).unwrap(),
                fs::read_link(&pb).unwrap(),
                "{rel}"
            );
            continue;
        }
        assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of {rel}");
        if ma.is_file() {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "content of {rel}"
            );
            assert_eq!(ma.mtime(), mb.mtime(), "mtime of {rel}");
            assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "mtime ns of {rel}");
        }
    }
}

fn walkdir_list(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

async fn run_backup(
    source: &dyn Source,
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    previous: Option<&Manifest>,
) -> Result<BackupReport> {
    backup(
        source,
        target,
        key,
        previous,
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
}

async fn extract_all(
    target: &dyn BackupTarget,
    key: &RepositoryKey,
    m: &Manifest,
    dest: &Path,
) -> ExtractReport {
    extract(
        target,
        key,
        m,
        &Selection::all(),
        dest,
        ExtractOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap()
}

mod round_trip {
    use super::*;

    #[test]
    fn disk_store_round_trip_is_bit_for_bit_with_metadata() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            assert!(report.is_clean(), "{:?}", report.warnings);
            assert_eq!(report.stats.files, 5);
            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert!(r.is_complete(), "{r:?}");
            assert_eq!(r.files, 5);
            assert_eq!(r.symlinks, 1);
            assert_same_tree(&data, &out.join("data"));
        });
    }

    #[test]
    fn a_large_file_hashed_beside_its_chunking_round_trips_with_its_blake3() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            fs::create_dir_all(&data).unwrap();
            // Above the size from which the whole-file hash runs on its own thread.
            let mut big = pseudo_random(9 << 20, 7);
            big.extend(std::iter::repeat_n(b'x', 9 << 20));
            fs::write(data.join("export.dmp"), &big).unwrap();
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            target.set_pack_size(4 << 20);
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("db").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let entry = report
                .manifest
                .entries
                .iter()
                .find(|e| e.path == "data/export.dmp")
                .unwrap();
            assert_eq!(
                entry.blake3.as_deref(),
                Some(blake3::hash(&big).to_hex().as_str())
            );
            assert!(entry.chunks.len() > 4, "{} chunks", entry.chunks.len());
            assert!(
                fs::read_dir(dir.path().join("store/packs"))
                    .unwrap()
                    .count()
                    > 1
            );
            drop(target);
            let target = DiskTarget::open_read_only(&dir.path().join("store")).unwrap();
            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert!(r.is_complete(), "{r:?}");
            assert_eq!(fs::read(out.join("data/export.dmp")).unwrap(), big);
        });
    }

    #[test]
    fn selected_paths_only_are_extracted() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let out = dir.path().join("out");
            let sel = Selection::paths(["data/conf", "data/run.sh"]);
            let r = extract(
                &target,
                &key,
                &report.manifest,
                &sel,
                &out,
                ExtractOptions::default(),
                &NoProgress,
            )
            .await
            .unwrap();
            assert_eq!(r.files, 2);
            assert!(out.join("data/conf/app.toml").exists());
            assert!(out.join("data/run.sh").exists());
            assert!(!out.join("data/lib/big.bin").exists());
            assert!(!out.join("data/conf.toml").exists());
        });
    }

    #[test]
    fn a_resumed_extraction_keeps_verified_files() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let out = dir.path().join("out");
            extract_all(&target, &key, &report.manifest, &out).await;
            // Damage one restored file: the second run rewrites only that one.
            fs::write(out.join("data/conf/app.toml"), b"tampered").unwrap();
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert_eq!(r.files, 1);
            assert_eq!(r.already_present, 4);
            assert_same_tree(&data, &out.join("data"));
        });
    }

    #[test]
    fn sequential_target_restores_through_an_extractor_fed_in_stored_order() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = MemoryTarget::sequential();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            assert!(matches!(
                extract(
                    &target,
                    &key,
                    &report.manifest,
                    &Selection::all(),
                    dir.path(),
                    ExtractOptions::default(),
                    &NoProgress
                )
                .await,
                Err(Error::Unsupported { .. })
            ));
            let out = dir.path().join("out");
            let mut ex = Extractor::new(
                &key,
                &report.manifest,
                &Selection::all(),
                &out,
                ExtractOptions::default(),
            )
            .unwrap();
            // Feed in reverse to show that order does not matter.
            for (id, blob) in target.chunks_in_order().into_iter().rev() {
                ex.feed_blob(&id, &blob);
            }
            let r = ex.finish();
            assert!(r.is_complete(), "{r:?}");
            assert_same_tree(&data, &out.join("data"));
        });
    }
}

mod incremental {
    use super::*;

    #[test]
    fn unchanged_files_are_not_read_again_and_duplicates_are_stored_once() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            fs::write(
                data.join("lib/copy.bin"),
                fs::read(data.join("lib/big.bin")).unwrap(),
            )
            .unwrap();
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let first = run_backup(&source, &target, &key, None).await.unwrap();
            assert!(first.stats.chunks_dedup >= 1, "{:?}", first.stats);
            fs::write(data.join("conf/app.toml"), b"[db]\nurl = \"changed\"\n").unwrap();
            let prev = latest_snapshot(&target, &key, "app")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(prev.snapshot, first.manifest.snapshot);
            let second = run_backup(&source, &target, &key, Some(&prev))
                .await
                .unwrap();
            assert_eq!(
                second.stats.files_reused,
                second.stats.files - 1,
                "{:?}",
                second.stats
            );
            assert_eq!(second.stats.bytes_read, 21);
            assert_eq!(second.stats.chunks_new, 1);
            assert_eq!(second.manifest.parent, Some(first.manifest.snapshot));
            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &second.manifest, &out).await;
            assert!(r.is_complete());
            assert_same_tree(&data, &out.join("data"));
            assert_eq!(list_snapshots(&target, &key).await.unwrap().len(), 2);
        });
    }

    #[test]
    fn a_file_missing_a_chunk_on_the_target_is_read_again() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let first = run_backup(&source, &target, &key, None).await.unwrap();
            let entry = first
                .manifest
                .entries
                .iter()
                .find(|e| e.path == "data/run.sh")
                .unwrap();
            target.remove_chunk(&entry.chunks[0].id);
            let second = run_backup(&source, &target, &key, Some(&first.manifest))
                .await
                .unwrap();
            assert_eq!(second.stats.files_reused, second.stats.files - 1);
            assert!(target.has_chunk(&entry.chunks[0].id).await.unwrap());
        });
    }
}

mod sources {
    use super::*;

    #[test]
    fn globs_select_and_special_files_are_skipped_with_a_warning() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            fs::create_dir_all(data.join("logs")).unwrap();
            fs::write(data.join("logs/a.log"), b"log").unwrap();
            fs::write(data.join("conf/x.tmp"), b"tmp").unwrap();
            let _sock = std::os::unix::net::UnixListener::bind(data.join("app.sock")).unwrap();
            let source = DirectorySource::new("app")
                .root_as(&data, "data")
                .exclude("data/logs")
                .unwrap()
                .exclude("**/*.tmp")
                .unwrap();
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let paths: Vec<&str> = report
                .manifest
                .entries
                .iter()
                .map(|e| e.path.as_str())
                .collect();
            assert!(
                !paths
                    .iter()
                    .any(|p| p.contains("logs") || p.ends_with(".tmp")),
                "{paths:?}"
            );
            assert!(paths.contains(&"data/conf/app.toml"));
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::SpecialFileSkipped
                        && w.path.ends_with("app.sock"))
            );
            assert!(
                report
                    .manifest
                    .warnings
                    .iter()
                    .any(|w| w.contains("app.sock"))
            );

            let only_csv = DirectorySource::new("csv")
                .root_as(&data, "data")
                .include("**/*.csv")
                .unwrap();
            let r = run_backup(&only_csv, &target, &key, None).await.unwrap();
            let files: Vec<&str> = r
                .manifest
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::File)
                .map(|e| e.path.as_str())
                .collect();
            assert_eq!(files, vec!["data/lib/deep/er/export.csv"]);
            assert!(DirectorySource::new("x").exclude("a[").is_err());
        });
    }

    #[test]
    fn several_roots_are_stored_under_their_labels() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("a")).unwrap();
            fs::create_dir_all(dir.path().join("b")).unwrap();
            fs::write(dir.path().join("a/f"), b"1").unwrap();
            fs::write(dir.path().join("b/f"), b"2").unwrap();
            let source = DirectorySource::new("two")
                .root_as(dir.path().join("a"), "opt/jfiv")
                .root_as(dir.path().join("b"), "etc/jfiv");
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let out = dir.path().join("out");
            extract_all(&target, &key, &report.manifest, &out).await;
            assert_eq!(fs::read(out.join("opt/jfiv/f")).unwrap(), b"1");
            assert_eq!(fs::read(out.join("etc/jfiv/f")).unwrap(), b"2");
            let dup = DirectorySource::new("dup")
                .root_as(dir.path().join("a"), "x")
                .root_as(dir.path().join("b"), "x");
            assert!(matches!(
                run_backup(&dup, &target, &key, None).await,
                Err(Error::Source { .. })
            ));
        });
    }

    #[test]
    fn a_file_changing_while_read_is_reported_and_marked_inconsistent() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            fs::create_dir_all(&data).unwrap();
            let path = data.join("growing.log");
            fs::write(&path, pseudo_random(40_000_000, 3)).unwrap();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let writer = {
                let stop = Arc::clone(&stop);
                let path = path.clone();
                std::thread::spawn(move || {
                    use std::io::Write;
                    let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        f.write_all(b"new line\n").unwrap();
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                })
            };
            let source = DirectorySource::new("log").root_as(&data, "data");
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let options = BackupOptions {
                read_attempts: 2,
                ..BackupOptions::default()
            };
            let report = backup(&source, &target, &key, None, &options, &NoProgress)
                .await
                .unwrap();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            writer.join().unwrap();
            let entry = report
                .manifest
                .entries
                .iter()
                .find(|e| e.path == "data/growing.log")
                .unwrap();
            assert!(!entry.consistent);
            assert!(
                report
                    .warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::ChangedWhileRead)
            );
            assert!(!report.is_clean());
            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert_eq!(r.inconsistent, vec!["data/growing.log".to_owned()]);
        });
    }

    #[test]
    fn sqlite_source_takes_an_online_copy_and_records_row_counts() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("jfiv.db");
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(
                "CREATE TABLE patients(id INTEGER PRIMARY KEY, name TEXT);
                 CREATE TABLE \"cycles \"\"x\"\"\"(id INTEGER PRIMARY KEY, patient INTEGER);",
            )
            .unwrap();
            for i in 0..500 {
                conn.execute(
                    "INSERT INTO patients(name) VALUES (?1)",
                    [format!("P{i:06}")],
                )
                .unwrap();
            }
            for i in 0..42 {
                conn.execute("INSERT INTO \"cycles \"\"x\"\"\"(patient) VALUES (?1)", [i])
                    .unwrap();
            }
            // The connection stays open (the application is running).
            let source = SqliteSource::new("jfiv-db", &db)
                .entry_name("db/jfiv.sqlite")
                .temp_dir(dir.path());
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let info = &report.manifest.databases[0];
            assert_eq!(info.path, "db/jfiv.sqlite");
            assert_eq!(info.row_counts["patients"], 500);
            assert_eq!(info.row_counts["cycles \"x\""], 42);
            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert!(r.is_complete());
            let restored = out.join("db/jfiv.sqlite");
            assert_eq!(sqlite_row_counts(&restored).unwrap(), info.row_counts);
            let check: String = rusqlite::Connection::open(&restored)
                .unwrap()
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
            // The temporary copy is gone.
            assert!(!fs::read_dir(dir.path()).unwrap().any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("jfiv-sqlite-copy")
            }));
            drop(conn);
        });
    }

    #[test]
    fn command_source_runs_the_export_with_secrets_in_the_environment_only() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let out_dir = dir.path().join("export");
            let secret = secrecy::SecretString::from("s3cr3t-oracle-pw".to_owned());
            let source = CommandSource::new("oracle-export", "/bin/sh", &out_dir)
                .arg("-c")
                .arg("test -n \"$DB_PASSWORD\" && echo \"dump of $DB_USER\" > \"$JFIV_OUTPUT_DIR/full.dmp\"")
                .env("DB_USER", "jfiv")
                .secret_env("DB_PASSWORD", secret);
            assert!(!format!("{source:?}").contains("s3cr3t"));
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let file = report.manifest.entries.iter().find(|e| e.path == "oracle-export/full.dmp").unwrap();
            assert_eq!(file.meta.size, "dump of jfiv\n".len() as u64);

            let failing = CommandSource::new("bad", "/bin/sh", dir.path().join("bad")).arg("-c").arg("echo boom >&2; exit 3");
            let before = target.list_manifests().await.unwrap().len();
            match run_backup(&failing, &target, &key, None).await {
                Err(Error::Command { reason, .. }) => {
                    assert!(reason.contains('3') && reason.contains("boom"), "{reason}");
                }
                other => panic!("expected a command error, got {other:?}"),
            }
            assert_eq!(target.list_manifests().await.unwrap().len(), before);
        });
    }

    #[test]
    fn a_hung_export_is_stopped_with_its_children_at_the_timeout_and_fails_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-alive");
        // The export starts a child of its own, then hangs.
        let script = format!(
            "echo starting >&2; (sleep 3; touch '{}') & sleep 60",
            marker.display()
        );
        let source = CommandSource::new("hung", "/bin/sh", dir.path().join("out"))
            .arg("-c")
            .arg(script)
            .timeout(std::time::Duration::from_millis(300));
        let start = std::time::Instant::now();
        match source.scan() {
            Err(Error::Command { reason, .. }) => {
                assert!(reason.contains("did not finish"), "{reason}");
                assert!(reason.contains("starting"), "{reason}");
            }
            other => panic!("expected a command error, got {other:?}"),
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(15));
        std::thread::sleep(std::time::Duration::from_secs(4));
        assert!(!marker.exists(), "the export's child outlived the timeout");
    }
}

mod damage {
    use super::*;

    fn flip(path: &Path, offset: usize) {
        let mut bytes = fs::read(path).unwrap();
        let at = offset.min(bytes.len() - 1);
        bytes[at] ^= 0x10;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_flipped_bit_in_a_chunk_is_detected_and_costs_only_the_files_using_it() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let victim = report
                .manifest
                .entries
                .iter()
                .find(|e| e.path == "data/conf/app.toml")
                .unwrap();
            let id = victim.chunks[0].id;
            let (pack, offset, _) = target.chunk_location(&id).unwrap();
            flip(&pack, offset as usize + 60);

            let v = verify(&target, &key, &VerifyOptions::default())
                .await
                .unwrap();
            assert!(!v.is_ok());
            assert_eq!(v.damaged_chunks.len(), 1);
            assert_eq!(v.damaged_chunks[0].id, id);
            assert_eq!(
                v.damaged_chunks[0].affected,
                vec![(
                    report.manifest.snapshot,
                    vec!["data/conf/app.toml".to_owned()]
                )]
            );

            let out = dir.path().join("out");
            let r = extract_all(&target, &key, &report.manifest, &out).await;
            assert_eq!(r.failed.len(), 1);
            assert_eq!(r.failed[0].path, "data/conf/app.toml");
            assert_eq!(r.failed[0].chunk, Some(id));
            assert_eq!(r.files, 4);
            assert!(!out.join("data/conf/app.toml").exists());
            assert!(!out.join("data/conf/.app.toml.jfiv-partial").exists());
            assert_eq!(
                fs::read(out.join("data/lib/big.bin")).unwrap(),
                fs::read(data.join("lib/big.bin")).unwrap()
            );
        });
    }

    #[test]
    fn a_chunk_moved_under_another_name_does_not_authenticate() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let a = report.manifest.entries.iter().find(|e| e.path == "data/conf/app.toml").unwrap().chunks[0].id;
            let b = report.manifest.entries.iter().find(|e| e.path == "data/run.sh").unwrap().chunks[0].id;
            // In a pack, a chunk is found through the index: serve b's bytes under a's name.
            let blob = target.get_chunk(&b).await.unwrap();
            assert!(matches!(format::decode_chunk(&key, &a, &blob), Err(Error::Integrity { object: Object::Chunk(x), .. }) if x == a));
        });
    }

    #[test]
    fn a_flipped_bit_in_a_manifest_is_detected_and_named() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let good = run_backup(&source, &target, &key, None).await.unwrap();
            fs::write(data.join("new"), b"n").unwrap();
            let bad = run_backup(&source, &target, &key, Some(&good.manifest))
                .await
                .unwrap();
            for offset in [50, 200] {
                flip(&target.manifest_path(&bad.manifest.snapshot), offset);
                match load_manifest(&target, &key, &bad.manifest.snapshot).await {
                    Err(Error::Integrity {
                        object: Object::Manifest(id),
                        ..
                    }) => assert_eq!(id, bad.manifest.snapshot),
                    other => panic!("expected an integrity error, got {other:?}"),
                }
                flip(&target.manifest_path(&bad.manifest.snapshot), offset);
            }
            flip(&target.manifest_path(&bad.manifest.snapshot), 100);
            let v = verify(&target, &key, &VerifyOptions::default())
                .await
                .unwrap();
            assert_eq!(v.damaged_manifests.len(), 1);
            assert_eq!(v.damaged_manifests[0].0, bad.manifest.snapshot);
            assert_eq!(v.snapshots, 1);
            // The magic number, the version: format errors.
            flip(&target.manifest_path(&bad.manifest.snapshot), 100);
            flip(&target.manifest_path(&bad.manifest.snapshot), 4);
            assert!(matches!(
                load_manifest(&target, &key, &bad.manifest.snapshot).await,
                Err(Error::Format { offset: 4, .. })
            ));
        });
    }

    #[test]
    fn rotating_samples_cover_every_chunk_over_the_rotation() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let total = report.manifest.chunk_ids().len();
            let mut sum = 0;
            for slice in 0..3 {
                let v = verify(
                    &target,
                    &key,
                    &VerifyOptions {
                        sample: Some(Sample::Rotating { slices: 3, slice }),
                        audit: None,
                    },
                )
                .await
                .unwrap();
                assert!(v.is_ok());
                sum += v.chunks_checked;
            }
            assert_eq!(sum, total);
        });
    }
}

mod keys_and_errors {
    use super::*;

    #[test]
    fn wrong_key_is_a_typed_error_and_the_paper_key_restores_access() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let keyfile_path = dir.path().join("repo.key");
            KeyFile::seal(
                &key,
                &"pass phrase".to_owned().into(),
                KdfParams::insecure_for_tests(),
            )
            .unwrap()
            .write(&keyfile_path)
            .unwrap();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let other = RepositoryKey::generate();
            assert!(matches!(
                load_manifest(&target, &other, &report.manifest.snapshot).await,
                Err(Error::WrongKey { .. })
            ));
            let kf = KeyFile::read(&keyfile_path).unwrap();
            assert!(matches!(
                kf.open(&"pass phrasE".to_owned().into()),
                Err(Error::WrongPassphrase)
            ));
            assert_eq!(fs::metadata(&keyfile_path).unwrap().mode() & 0o777, 0o600);
            // The key file burned: the paper key from the safe opens the store.
            let paper = key.paper_key().text().to_owned();
            let from_paper = PaperKey::parse(&paper).unwrap();
            let m = load_manifest(&target, &from_paper, &report.manifest.snapshot)
                .await
                .unwrap();
            let out = dir.path().join("out");
            assert!(
                extract_all(&target, &from_paper, &m, &out)
                    .await
                    .is_complete()
            );
        });
    }

    #[test]
    fn missing_mount_lock_and_read_only_store_are_clear_errors() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            assert!(matches!(
                DiskTarget::open(&dir.path().join("nope")),
                Err(Error::StoreMissing { .. })
            ));
            let root = dir.path().join("store");
            let target = DiskTarget::create(&root).unwrap();
            assert!(matches!(DiskTarget::open(&root), Err(Error::Locked { .. })));
            assert!(matches!(
                DiskTarget::open_read_only(&root),
                Err(Error::Locked { .. })
            ));
            drop(target);
            let ro = DiskTarget::open_read_only(&root).unwrap();
            let key = RepositoryKey::generate();
            let data = dir.path().join("data");
            make_tree(&data);
            let source = DirectorySource::new("app").root_as(&data, "data");
            assert!(matches!(
                run_backup(&source, &ro, &key, None).await,
                Err(Error::ReadOnly { .. })
            ));
            let _ro2 = DiskTarget::open_read_only(&root).unwrap();
            assert!(matches!(DiskTarget::open(&root), Err(Error::Locked { .. })));
        });
    }
}

mod full_disk {
    use super::*;
    use async_trait::async_trait;

    /// Fails with "no space" once `budget` bytes of chunks were stored.
    #[derive(Debug)]
    struct FillingUp {
        inner: MemoryTarget,
        budget: std::sync::Mutex<u64>,
    }

    #[async_trait]
    impl BackupTarget for FillingUp {
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn put_chunk(&self, id: &ChunkId, blob: Vec<u8>) -> Result<Stored> {
            {
                let mut budget = self.budget.lock().unwrap();
                if *budget < blob.len() as u64 {
                    return Err(Error::NoSpace {
                        path: "/mnt/backup/chunks".into(),
                    });
                }
                *budget -= blob.len() as u64;
            }
            self.inner.put_chunk(id, blob).await
        }
        async fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
            self.inner.has_chunk(id).await
        }
        async fn get_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
            self.inner.get_chunk(id).await
        }
        async fn flush(&self) -> Result<()> {
            self.inner.flush().await
        }
        async fn put_manifest(&self, id: &SnapshotId, blob: Vec<u8>) -> Result<()> {
            self.inner.put_manifest(id, blob).await
        }
        async fn list_manifests(&self) -> Result<Vec<SnapshotId>> {
            self.inner.list_manifests().await
        }
        async fn get_manifest(&self, id: &SnapshotId) -> Result<Vec<u8>> {
            self.inner.get_manifest(id).await
        }
    }

    #[test]
    fn running_out_of_space_fails_clearly_and_leaves_earlier_snapshots_intact() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = FillingUp {
                inner: MemoryTarget::new(),
                budget: std::sync::Mutex::new(8_000_000),
            };
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let first = run_backup(&source, &target, &key, None).await.unwrap();
            fs::write(data.join("lib/more.bin"), pseudo_random(5_000_000, 99)).unwrap();
            let err = run_backup(&source, &target, &key, Some(&first.manifest))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NoSpace { .. }), "{err}");
            assert!(err.to_string().contains("earlier snapshots are untouched"));
            assert_eq!(
                target.list_manifests().await.unwrap(),
                vec![first.manifest.snapshot]
            );
            assert!(
                verify(&target, &key, &VerifyOptions::default())
                    .await
                    .unwrap()
                    .is_ok()
            );
        });
    }

    /// On a real, small tmpfs when this process may mount one (root); skipped otherwise.
    #[test]
    fn a_full_tmpfs_gives_no_space_and_keeps_the_store_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=6m",
                "jfiv-test",
                mnt.to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (not root?); the FillingUp test covers ENOSPC"
            );
            return;
        }
        struct Unmount(std::path::PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(&self.0).status();
            }
        }
        let _guard = Unmount(mnt.clone());
        rt().block_on(async {
            let data = dir.path().join("data");
            fs::create_dir_all(&data).unwrap();
            fs::write(data.join("small.txt"), b"first night").unwrap();
            let key = RepositoryKey::generate();
            let source = DirectorySource::new("app").root_as(&data, "data");
            let root = mnt.join("store");
            let first = {
                let target = DiskTarget::create(&root).unwrap();
                run_backup(&source, &target, &key, None).await.unwrap()
            };
            fs::write(data.join("big.bin"), pseudo_random(10_000_000, 5)).unwrap();
            let target = DiskTarget::open(&root).unwrap();
            let err = run_backup(&source, &target, &key, Some(&first.manifest))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::NoSpace { .. }), "{err}");
            drop(target);
            let target = DiskTarget::open(&root).unwrap();
            assert_eq!(
                target.list_manifests().await.unwrap(),
                vec![first.manifest.snapshot]
            );
            assert!(
                verify(&target, &key, &VerifyOptions::default())
                    .await
                    .unwrap()
                    .is_ok()
            );
            assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        });
    }
}

mod crash {
    use super::*;
    use rand::Rng;

    const CHILD_ENV: &str = "JFIV_BACKUP_CRASH_CHILD";

    /// The child: backs the data up again and again until killed.
    #[test]
    fn child_process() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let (store, data) = spec.split_once('|').unwrap();
        rt().block_on(async {
            let key = RepositoryKey::from_master(zeroize::Zeroizing::new([5u8; 32]));
            let target = DiskTarget::open(Path::new(store)).unwrap();
            let source = DirectorySource::new("app").root_as(data, "data");
            for round in 0u64.. {
                // New content each round, so every round writes new chunks.
                fs::write(
                    Path::new(data).join("round.bin"),
                    pseudo_random(3_000_000, round + 11),
                )
                .unwrap();
                run_backup(&source, &target, &key, None).await.unwrap();
            }
        });
    }

    #[test]
    fn killing_the_backup_at_random_points_leaves_a_consistent_store() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        make_tree(&data);
        fs::write(data.join("more.bin"), pseudo_random(8_000_000, 1)).unwrap();
        let store = dir.path().join("store");
        drop(DiskTarget::create(&store).unwrap());
        let key = RepositoryKey::from_master(zeroize::Zeroizing::new([5u8; 32]));
        let seed: u64 = rand::thread_rng().r#gen();
        eprintln!("crash test seed {seed}");
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        for _ in 0..6 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "crash::child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{}|{}", store.display(), data.display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(rng.gen_range(100..1500)));
            child.kill().unwrap();
            child.wait().unwrap();
        }
        rt().block_on(async {
            // The lock died with the child; leftovers of the interrupted write are cleaned.
            let target = DiskTarget::open(&store).unwrap();
            assert_eq!(fs::read_dir(store.join("tmp")).unwrap().count(), 0);
            let v = verify(&target, &key, &VerifyOptions::default())
                .await
                .unwrap();
            assert!(v.is_ok(), "{v:?}");
            for id in target.list_manifests().await.unwrap() {
                let m = load_manifest(&target, &key, &id).await.unwrap();
                let out = tempfile::tempdir().unwrap();
                assert!(
                    extract_all(&target, &key, &m, out.path())
                        .await
                        .is_complete()
                );
            }
            // The next backup completes.
            let source = DirectorySource::new("app").root_as(&data, "data");
            let report = run_backup(&source, &target, &key, None).await.unwrap();
            let out = dir.path().join("out");
            assert!(
                extract_all(&target, &key, &report.manifest, &out)
                    .await
                    .is_complete()
            );
            assert_same_tree(&data, &out.join("data"));
        });
    }
}

mod maintenance {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use jfiv_audit::{Action, Actor, Clock, ManualClock, MemorySink, Origin};

    fn summary(day: i64, source: &str) -> SnapshotSummary {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 22, 0, 0).unwrap() + Duration::days(day);
        SnapshotSummary {
            id: SnapshotId::random(),
            source: SourceInfo {
                kind: SourceKind::Directory,
                name: source.into(),
            },
            host: "h".into(),
            started: t,
            finished: t,
            stats: ManifestStats::default(),
            warnings: 0,
        }
    }

    #[test]
    fn retention_keeps_daily_weekly_monthly_per_source() {
        // A year of nightly snapshots of two sources.
        let mut list: Vec<SnapshotSummary> = (0..365).map(|d| summary(d, "app")).collect();
        list.extend((0..30).map(|d| summary(d * 12, "db")));
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap();
        let policy = RetentionPolicy {
            daily: 7,
            weekly: 4,
            monthly: 12,
            keep_within: Duration::hours(24),
        };
        let plan = plan_retention(&list, &policy, now);
        assert_eq!(plan_retention(&list, &policy, now), plan, "pure");
        let app_kept: Vec<_> = plan
            .keep
            .iter()
            .filter(|(s, _)| s.source.name == "app")
            .collect();
        // 7 daily (the last 7 days), weekly and monthly partly overlap them.
        let days: std::collections::BTreeSet<_> = app_kept
            .iter()
            .map(|(s, _)| s.started.date_naive())
            .collect();
        assert!(
            days.len() >= 7 + 3 + 11 - 1 && days.len() <= 7 + 4 + 12,
            "{}",
            days.len()
        );
        assert_eq!(
            app_kept.len()
                + plan
                    .remove
                    .iter()
                    .filter(|s| s.source.name == "app")
                    .count(),
            365
        );
        // The newest of each source is kept; every kept snapshot says why.
        assert!(
            plan.keep
                .iter()
                .any(|(s, why)| s.source.name == "db" && why.contains(&"latest"))
        );
        assert!(plan.keep.iter().all(|(_, why)| !why.is_empty()));
        let text = plan.to_string();
        assert!(text.contains("remove") && text.contains("keep"));
    }

    #[test]
    fn prune_then_gc_removes_only_unreferenced_chunks_and_is_audited() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            make_tree(&data);
            let target = DiskTarget::create(&dir.path().join("store")).unwrap();
            let key = RepositoryKey::generate();
            let sink = Arc::new(MemorySink::new());
            let clock = Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 3, 1, 22, 0, 0).unwrap(),
            ));
            let hook = AuditHook {
                sink: sink.clone(),
                actor: Actor::unprofiled("nightly-backup"),
                origin: Origin::System { host: "srv".into() },
                clock: clock.clone(),
            };
            let options = BackupOptions {
                clock: clock.clone(),
                audit: Some(hook.clone()),
                ..BackupOptions::default()
            };
            let source = DirectorySource::new("app").root_as(&data, "data");
            let mut prev: Option<Manifest> = None;
            for night in 0..3 {
                fs::write(
                    data.join("nightly.bin"),
                    pseudo_random(500_000, night + 100),
                )
                .unwrap();
                let r = backup(&source, &target, &key, prev.as_ref(), &options, &NoProgress)
                    .await
                    .unwrap();
                prev = Some(r.manifest);
                clock.advance(Duration::days(1));
            }
            let snaps = list_snapshots(&target, &key).await.unwrap();
            let policy = RetentionPolicy {
                daily: 1,
                weekly: 0,
                monthly: 0,
                keep_within: Duration::hours(1),
            };
            let plan = plan_retention(&snaps, &policy, clock.now());
            assert_eq!(plan.remove.len(), 2);
            assert_eq!(prune(&target, &plan, Some(&hook)).await.unwrap(), 2);
            // Chunks were written just now (file mtimes): the grace period keeps them.
            let kept = gc(
                &target,
                &key,
                &jfiv_audit::SystemClock,
                GcOptions::default(),
            )
            .await
            .unwrap();
            assert_eq!(kept.removed.len(), 0);
            assert_eq!(kept.kept_in_grace, 2);
            // A day later, the two old nightly.bin chunks go; everything the kept snapshot needs stays.
            let later = ManualClock::new(Utc::now() + Duration::days(2));
            // Rewrite any pack holding garbage (the old nightly.bin shares a pack with live
            // chunks of the first night).
            let all_garbage = GcOptions {
                min_garbage_ratio: 0.0,
                ..GcOptions::default()
            };
            let dry = gc(
                &target,
                &key,
                &later,
                GcOptions {
                    dry_run: true,
                    ..all_garbage
                },
            )
            .await
            .unwrap();
            assert_eq!(dry.removed.len(), 2);
            assert_eq!(target.list_chunks().unwrap().len(), kept.referenced + 2);
            let done = gc(&target, &key, &later, all_garbage).await.unwrap();
            assert_eq!(done.removed, dry.removed);
            assert_eq!(target.list_chunks().unwrap().len(), done.referenced);
            let v = verify(
                &target,
                &key,
                &VerifyOptions {
                    sample: None,
                    audit: Some(hook.clone()),
                },
            )
            .await
            .unwrap();
            assert!(v.is_ok());
            let out = dir.path().join("out");
            assert!(
                extract_all(&target, &key, &prev.unwrap(), &out)
                    .await
                    .is_complete()
            );
            let actions: Vec<Action> = sink.snapshot().iter().map(|r| r.event.action).collect();
            assert_eq!(
                actions
                    .iter()
                    .filter(|a| **a == Action::BackupStarted)
                    .count(),
                3
            );
            assert_eq!(
                actions
                    .iter()
                    .filter(|a| **a == Action::BackupFinished)
                    .count(),
                3
            );
            assert!(actions.contains(&Action::BackupPruned));
            assert!(actions.contains(&Action::BackupVerified));
        });
    }

    #[test]
    fn a_failed_backup_is_audited_as_failed() {
        rt().block_on(async {
            let sink = Arc::new(MemorySink::new());
            let hook = AuditHook {
                sink: sink.clone(),
                actor: Actor::unprofiled("nightly-backup"),
                origin: Origin::System { host: "srv".into() },
                clock: Arc::new(jfiv_audit::SystemClock),
            };
            let options = BackupOptions {
                audit: Some(hook),
                ..BackupOptions::default()
            };
            let source = DirectorySource::new("app").root_as("/nonexistent/jfiv", "data");
            let target = MemoryTarget::new();
            let key = RepositoryKey::generate();
            assert!(
                backup(&source, &target, &key, None, &options, &NoProgress)
                    .await
                    .is_err()
            );
            let actions: Vec<Action> = sink.snapshot().iter().map(|r| r.event.action).collect();
            assert_eq!(actions, vec![Action::BackupStarted, Action::BackupFailed]);
        });
    }
}

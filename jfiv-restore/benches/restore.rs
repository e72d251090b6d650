//! Restore benchmark (release mode, not part of CI): restores one data set from a `DiskTarget`
//! and from a `VirtualTape` with `jfiv_restore::execute`, and compares, in the same run, with
//! `cp -r` of the same tree, `restic restore` and `borg extract`.
//!
//! ```text
//! JFIV_BENCH_DATA=/work/bench-data/set-1500/data cargo bench -p jfiv-restore --bench restore
//! ```
//!
//! `JFIV_BENCH_DATA` is a directory to back up and restore (default: the jfiv-backup
//! benchmark's set under `/work/bench-data/set-1500/data`; when it does not exist, a small
//! deterministic set is generated). `JFIV_RESTORE_BENCH_WORK` is the scratch directory
//! (default `/work/targets/restore/bench-work`, emptied first). `JFIV_BENCH_SKIP=tape,borg`
//! skips parts.
//!
//! Every output stays in place until the end of the run: on this machine's ext4 (no
//! journal), creating files right after deleting thousands makes every inode allocation scan
//! the recently deleted inodes (`recently_deleted` in `find_inode_bit`), which would slow
//! down whichever tool runs after a deletion (the run waits until the last deletion, recorded
//! in `<work>.deleted-at`, is more than a minute old). Each timed run starts after a `sync`, so it
//! does not pay for the write-back of the previous one.

// A benchmark binary, not library code: it panics on any failure rather than reporting it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use jfiv_audit::{Actor, MemorySink, Origin, SystemClock};
use jfiv_backup::tape::format::{DEFAULT_BLOCK_SIZE, write_label};
use jfiv_backup::tape::{
    Catalog, LocationConfig, LocationRegister, MediaLabel, NoMoreTapes, Pool, SessionOptions,
    TapeTarget, VirtualLibrary, VirtualTapeSpec, WritePosition,
};
use jfiv_backup::{
    AuditHook, BackupOptions, BackupTarget, DirectorySource, DiskTarget, NoProgress, RepositoryKey,
    backup,
};
use jfiv_restore::{
    CatalogOrigin, ExecuteContext, ExecuteOptions, Inventory, KeyMaterial, KnownKey, LibraryTapes,
    NoRestoreProgress, RestorePlan, RestoreRequest, Scope, StepKind, execute,
};

fn du_bytes(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

fn generate(dir: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..3000u64 {
        let d = dir.join(format!("app/m{}/p{}", i % 30, i % 7));
        std::fs::create_dir_all(&d).unwrap();
        let len = (next() % 60_000) as usize;
        let data: Vec<u8> = if i % 3 == 0 {
            (0..len).map(|_| next() as u8).collect()
        } else {
            format!("patient P{i:06} cycle FIV ponction J+{} ", i % 30)
                .repeat(len / 40 + 1)
                .into_bytes()
        };
        std::fs::write(d.join(format!("f{i}.dat")), data).unwrap();
    }
    std::fs::create_dir_all(dir.join("exports")).unwrap();
    for t in 0..4u64 {
        let mut s = String::new();
        for r in 0..400_000u64 {
            s.push_str(&format!(
                "{t};{r};P{:06};{};FIV\n",
                next() % 100_000,
                next() % 1000
            ));
        }
        std::fs::write(dir.join(format!("exports/table-{t}.csv")), s).unwrap();
    }
}

/// CPU seconds (user + sys) of this process and of its waited-for children, from
/// `/proc/self/stat` (clock ticks of 1/100 s).
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    // After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let at = |n: usize| fields.get(n - 3).copied().unwrap_or(0.0) / 100.0;
    (at(14) + at(15), at(16) + at(17))
}

/// Writes back everything dirty, so that a measurement does not pay for the previous one.
fn settle() {
    let _ = Command::new("sync").status();
}

fn timed(label: &str, cmd: &mut Command, cpu: &mut BTreeMap<String, f64>) -> f64 {
    settle();
    let (_, c0) = cpu_times();
    let t0 = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{label}: {e}"));
    let secs = t0.elapsed().as_secs_f64();
    let (_, c1) = cpu_times();
    cpu.insert(label.to_owned(), c1 - c0);
    assert!(
        out.status.success(),
        "{label} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn fresh(p: &Path) {
    let _ = std::fs::remove_dir_all(p);
    std::fs::create_dir_all(p).unwrap();
}

fn same_content(a: &Path, b: &Path) {
    for e in walkdir::WalkDir::new(a).into_iter().filter_map(Result::ok) {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(a).unwrap();
            let other = b.join(rel);
            let (ma, mb) = (e.metadata().unwrap(), std::fs::metadata(&other).unwrap());
            assert_eq!(ma.len(), mb.len(), "{}", rel.display());
        }
    }
}

fn hook() -> AuditHook {
    AuditHook {
        sink: Arc::new(MemorySink::new()),
        actor: Actor::new("bench", "backup-operator"),
        origin: Origin::System {
            host: "bench".into(),
        },
        clock: Arc::new(SystemClock),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let skip = std::env::var("JFIV_BENCH_SKIP").unwrap_or_default();
    let work = PathBuf::from(
        std::env::var("JFIV_RESTORE_BENCH_WORK")
            .unwrap_or_else(|_| "/work/targets/restore/bench-work".into()),
    );
    // See the module docs: wait until the files deleted by an earlier run (at its end, or
    // here) are more than a minute old, so that inode allocation does not scan them.
    let deleted_at = work.with_extension("deleted-at");
    let now_secs = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
    };
    if work.exists() {
        fresh(&work);
        std::fs::write(&deleted_at, now_secs().to_string()).unwrap();
    }
    std::fs::create_dir_all(&work).unwrap();
    settle();
    if let Some(age) = std::fs::read_to_string(&deleted_at)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|t| std::time::Duration::from_secs(now_secs().saturating_sub(t)))
    {
        let quiet = std::time::Duration::from_secs(65);
        if age < quiet {
            println!(
                "(waiting {:.0} s: files were deleted {:.0} s ago, see the module docs)",
                (quiet - age).as_secs_f64(),
                age.as_secs_f64()
            );
            std::thread::sleep(quiet - age);
        }
    }
    let data = match std::env::var("JFIV_BENCH_DATA") {
        Ok(d) => PathBuf::from(d),
        Err(_) if Path::new("/work/bench-data/set-1500/data").is_dir() => {
            PathBuf::from("/work/bench-data/set-1500/data")
        }
        Err(_) => {
            let d = work.join("generated");
            generate(&d);
            d
        }
    };
    let bytes = du_bytes(&data);
    let mb = bytes as f64 / 1e6;
    println!(
        "data set: {} ({:.0} MB), {} cores",
        data.display(),
        mb,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = RepositoryKey::generate();
    let mut results: BTreeMap<&str, f64> = BTreeMap::new();
    let mut cpu: BTreeMap<String, f64> = BTreeMap::new();

    // --- jfiv from the disk target ---
    let store = work.join("jfiv-store");
    let disk = Arc::new(DiskTarget::create(&store).unwrap());
    let source = DirectorySource::new("app-server").root_as(&data, "data");
    let t0 = Instant::now();
    rt.block_on(backup(
        &source,
        disk.as_ref(),
        &key,
        None,
        &BackupOptions::default(),
        &NoProgress,
    ))
    .unwrap();
    println!("(jfiv backup to disk: {:.1} s)", t0.elapsed().as_secs_f64());
    drop(disk);
    let disk = Arc::new(DiskTarget::open_read_only(&store).unwrap());
    let mut inv = Inventory::default();
    rt.block_on(inv.add_disk_target("disk", "bench", disk.as_ref(), &key, None))
        .unwrap();
    inv.keys.push(KeyMaterial::PaperKey {
        kept_at: "bench".into(),
    });
    let out = work.join("out-jfiv");
    let plan = RestorePlan::compute(
        &inv,
        &RestoreRequest::whole_server(&out).with_scope(Scope::ApplicationOnly),
        &SystemClock,
    )
    .unwrap();
    let keys = KnownKey(key.clone());
    let mut ctx = ExecuteContext {
        keys: &keys,
        disk_targets: [("disk".to_owned(), disk.clone() as Arc<dyn BackupTarget>)].into(),
        tapes: None,
        database_hooks: Vec::new(),
        audit: hook(),
        progress: &NoRestoreProgress,
        options: ExecuteOptions::new(work.join("state-jfiv")),
    };
    settle();
    let (s0, _) = cpu_times();
    let report = rt.block_on(execute(&plan, &mut ctx)).unwrap();
    let (s1, _) = cpu_times();
    cpu.insert("jfiv restore + post-check (disk)".into(), s1 - s0);
    assert!(report.is_complete(), "{report:#?}");
    let restore_step = report
        .steps
        .iter()
        .find(|s| s.id.starts_with("restore-disk"))
        .unwrap()
        .seconds;
    let verify_step = report
        .steps
        .iter()
        .find(|s| s.id.starts_with("verify"))
        .unwrap()
        .seconds;
    same_content(&data, &out.join("data"));
    results.insert("jfiv restore (disk)", restore_step);
    for s in report
        .steps
        .iter()
        .filter(|s| s.id.starts_with("restore-disk"))
    {
        println!("  {}: {}", s.id, s.outcome.notes.join("; "));
    }
    results.insert("jfiv restore + post-check (disk)", report.seconds);
    println!(
        "jfiv disk: restore step {restore_step:.2} s, verify step {verify_step:.2} s, whole plan {:.2} s",
        report.seconds
    );

    // --- cp -r ---
    let out_cp = work.join("out-cp");
    let cp = timed(
        "cp -r",
        Command::new("cp").arg("-r").arg(&data).arg(&out_cp),
        &mut cpu,
    );
    results.insert("cp -r", cp);
    // jfiv makes the restored tree durable (syncfs) before its checkpoint; cp -r does not.
    let t0 = Instant::now();
    let _ = Command::new("sync").status();
    let cp_sync = cp + t0.elapsed().as_secs_f64();
    results.insert("cp -r, then sync", cp_sync);
    println!("cp -r: {cp:.2} s (then sync: {cp_sync:.2} s)");

    // --- jfiv from a virtual tape ---
    if !skip.contains("tape") {
        let lib_dir = work.join("library");
        let mut lib = VirtualLibrary::create(&lib_dir, &["s0"]).unwrap();
        lib.add_tape(
            "s0",
            &VirtualTapeSpec {
                barcode: "BENCH0L6".into(),
                capacity: 8 * bytes + (1 << 30),
                early_warning_zone: 16 << 20,
            },
        )
        .unwrap();
        let label = MediaLabel::new(
            uuid::Uuid::new_v4(),
            "BENCH0L6",
            Pool::Daily,
            chrono::Utc::now(),
        );
        write_label(&mut lib.load("BENCH0L6").unwrap(), &label).unwrap();
        let t0 = Instant::now();
        let summary = rt.block_on(async {
            let target = TapeTarget::start(
                Box::new(lib.load("BENCH0L6").unwrap()),
                label.clone(),
                SessionOptions {
                    snapshot: "bench".into(),
                    source: "app-server".into(),
                    host: "bench".into(),
                    pool: Pool::Daily,
                    block_size: DEFAULT_BLOCK_SIZE,
                    position: WritePosition::AfterLabel,
                },
                Box::new(NoMoreTapes),
                Arc::new(SystemClock),
            )
            .await
            .unwrap();
            backup(
                &source,
                &target,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
            )
            .await
            .unwrap();
            target.finish().await.unwrap().0
        });
        println!("(jfiv backup to tape: {:.1} s)", t0.elapsed().as_secs_f64());
        let mut catalog = Catalog::default();
        catalog.add_label(label);
        catalog.record_session(&summary);
        let mut inv = Inventory::default();
        inv.add_tape_catalog(
            &catalog,
            &LocationRegister::default(),
            &LocationConfig::default(),
            CatalogOrigin::DiskCatalog,
        );
        inv.keys.push(KeyMaterial::PaperKey {
            kept_at: "bench".into(),
        });
        let out = work.join("out-tape");
        let plan = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server(&out).with_scope(Scope::ApplicationOnly),
            &SystemClock,
        )
        .unwrap();
        assert!(
            plan.steps
                .iter()
                .any(|s| matches!(s.kind, StepKind::RestoreFromTape { .. }))
        );
        let mut tapes = LibraryTapes::new(VirtualLibrary::open(&lib_dir).unwrap());
        let mut ctx = ExecuteContext {
            keys: &keys,
            disk_targets: BTreeMap::new(),
            tapes: Some(&mut tapes),
            database_hooks: Vec::new(),
            audit: hook(),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(work.join("state-tape")),
        };
        settle();
        let (s0, _) = cpu_times();
        let report = rt.block_on(execute(&plan, &mut ctx)).unwrap();
        let (s1, _) = cpu_times();
        cpu.insert("jfiv restore (virtual tape)".into(), s1 - s0);
        assert!(report.is_complete());
        let step = report
            .steps
            .iter()
            .find(|s| s.id.starts_with("restore-tape"))
            .unwrap()
            .seconds;
        same_content(&data, &out.join("data"));
        results.insert("jfiv restore (virtual tape)", step);
        for s in report
            .steps
            .iter()
            .filter(|s| s.id.starts_with("restore-tape"))
        {
            println!("  {}: {}", s.id, s.outcome.notes.join("; "));
        }
        println!(
            "jfiv tape: restore step {step:.2} s, whole plan {:.2} s",
            report.seconds
        );

        // The same session again into a new tree, the manifest now known (kept in the state
        // directory by the first run, as after an interrupted restore): straight from the
        // tape stream, no spool.
        let out2 = work.join("out-tape-stream");
        let plan2 = RestorePlan::compute(
            &inv,
            &RestoreRequest::whole_server(&out2).with_scope(Scope::ApplicationOnly),
            &SystemClock,
        )
        .unwrap();
        let state2 = work.join("state-tape-stream");
        let copy = work.join("state-tape").join("manifests");
        std::fs::create_dir_all(state2.join("manifests")).unwrap();
        for e in std::fs::read_dir(&copy).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), state2.join("manifests").join(e.file_name())).unwrap();
        }
        let mut tapes = LibraryTapes::new(VirtualLibrary::open(&lib_dir).unwrap());
        let mut ctx = ExecuteContext {
            keys: &keys,
            disk_targets: BTreeMap::new(),
            tapes: Some(&mut tapes),
            database_hooks: Vec::new(),
            audit: hook(),
            progress: &NoRestoreProgress,
            options: ExecuteOptions::new(state2),
        };
        settle();
        let (s0, _) = cpu_times();
        let report = rt.block_on(execute(&plan2, &mut ctx)).unwrap();
        let (s1, _) = cpu_times();
        assert!(report.is_complete());
        let step = report
            .steps
            .iter()
            .find(|s| s.id.starts_with("restore-tape"))
            .unwrap();
        assert!(
            step.outcome
                .notes
                .iter()
                .any(|n| n.contains("straight from"))
        );
        same_content(&data, &out2.join("data"));
        results.insert("jfiv restore (virtual tape, manifest known)", step.seconds);
        cpu.insert(
            "jfiv restore (virtual tape, manifest known)".into(),
            s1 - s0,
        );
        println!("  {}: {}", step.id, step.outcome.notes.join("; "));
    }

    // --- restic ---
    if !skip.contains("restic") {
        let repo = work.join("restic");
        let env = [
            ("RESTIC_PASSWORD", "bench-not-a-secret"),
            (
                "RESTIC_CACHE_DIR",
                "/work/targets/restore/bench-work/restic-cache",
            ),
        ];
        let restic = |args: &[&str]| {
            let mut c = Command::new("restic");
            c.arg("-r").arg(&repo).args(args).envs(env);
            c
        };
        timed("restic init", &mut restic(&["init"]), &mut cpu);
        let t = timed(
            "restic backup",
            restic(&["backup", "--quiet"]).arg(&data),
            &mut cpu,
        );
        println!("(restic backup: {t:.1} s)");
        let out = work.join("out-restic");
        let r = timed(
            "restic restore",
            restic(&["restore", "latest", "--target"]).arg(&out),
            &mut cpu,
        );
        results.insert("restic restore", r);
        println!("restic restore: {r:.2} s");
    }

    // --- borg ---
    if !skip.contains("borg") {
        let repo = work.join("borg");
        let env = [
            ("BORG_PASSPHRASE", "bench-not-a-secret"),
            (
                "BORG_BASE_DIR",
                "/work/targets/restore/bench-work/borg-base",
            ),
        ];
        timed(
            "borg init",
            Command::new("borg")
                .args(["init", "-e", "repokey"])
                .arg(&repo)
                .envs(env),
            &mut cpu,
        );
        let t = timed(
            "borg create",
            Command::new("borg")
                .arg("create")
                .arg(format!("{}::bench", repo.display()))
                .arg(&data)
                .envs(env),
            &mut cpu,
        );
        println!("(borg create: {t:.1} s)");
        let out = work.join("out-borg");
        std::fs::create_dir_all(&out).unwrap();
        let r = timed(
            "borg extract",
            Command::new("borg")
                .arg("extract")
                .arg(format!("{}::bench", repo.display()))
                .current_dir(&out)
                .envs(env),
            &mut cpu,
        );
        results.insert("borg extract", r);
        println!("borg extract: {r:.2} s");
    }

    println!("\n| run | seconds | MB/s | CPU s (user+sys) |\n|---|---|---|---|");
    for (k, v) in &results {
        let c = cpu
            .get(*k)
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
        println!("| {k} | {v:.2} | {:.0} | {c} |", mb / v);
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end: {}", load.trim());
    let jfiv = results["jfiv restore (disk)"];
    println!("\nratios (same run):");
    println!(
        "- jfiv disk restore / cp -r: {:.2}x the time (target <= 1.25)",
        jfiv / results["cp -r"]
    );
    if let Some(r) = results.get("restic restore") {
        println!(
            "- restic restore / jfiv disk restore: {:.2}x faster (target >= 1.5)",
            r / jfiv
        );
    }
    if let Some(b) = results.get("borg extract") {
        println!(
            "- borg extract / jfiv disk restore: {:.2}x faster",
            b / jfiv
        );
    }
    if let Some(t) = results.get("jfiv restore (virtual tape)") {
        println!(
            "- jfiv virtual-tape restore / cp -r: {:.2}x the time",
            t / results["cp -r"]
        );
        println!(
            "- jfiv virtual-tape restore / (cp -r, then sync): {:.2}x the time",
            t / results["cp -r, then sync"]
        );
    }
    if let Some(t) = results.get("jfiv restore (virtual tape, manifest known)") {
        println!(
            "- jfiv virtual-tape restore, manifest known / cp -r: {:.2}x the time, / (cp -r, then sync): {:.2}x",
            t / results["cp -r"],
            t / results["cp -r, then sync"]
        );
    }
    println!(
        "- jfiv disk restore / (cp -r, then sync): {:.2}x the time",
        jfiv / results["cp -r, then sync"]
    );
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::write(&deleted_at, now_secs().to_string());
}

//! Backup benchmark (release, not part of CI): jfiv-backup against restic, borg and
//! `tar | zstd -T0 -3` on the same deterministic data set, in the same run.
//!
//! ```text
//! cargo bench -p jfiv-backup --bench backup
//! JFIV_BENCH_SIZE_MB=300 JFIV_BENCH_DIR=/work/bench-data cargo bench -p jfiv-backup --bench backup
//! ```
//!
//! The data set (default 1500 MB) imitates the hospital's: an application-server tree of
//! thousands of small text files (configuration, templates, logs), some incompressible
//! binaries (libraries, images), and large text-like database exports (CSV). Then ~1% of the
//! export records are changed (in a few clustered ranges, plus appended records) and 1% of the
//! small files rewritten, and every tool runs an incremental backup. Every tool runs under
//! `/usr/bin/time` for peak RSS. Results go to stdout and `<dir>/report.md`.

// A benchmark binary: a failed step aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use jfiv_backup::{BackupOptions, DirectorySource, DiskTarget, NoProgress, RepositoryKey};

const PASSWORD: &str = "bench-password-not-secret";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const WORDS: &[&str] = &[
    "patient",
    "cycle",
    "FIV",
    "ICSI",
    "IIU",
    "TEC",
    "ponction",
    "transfert",
    "embryon",
    "ovocyte",
    "stimulation",
    "protocole",
    "antagoniste",
    "agoniste",
    "dosage",
    "estradiol",
    "LH",
    "FSH",
    "AMH",
    "echographie",
    "follicule",
    "endometre",
    "spermogramme",
    "congelation",
    "paillette",
    "biologiste",
    "clinicien",
    "secretaire",
    "consentement",
    "tentative",
    "grossesse",
    "beta-hCG",
    "negatif",
    "positif",
    "annule",
    "J+14",
    "J+5",
    "blastocyste",
    "vitrification",
    "decongelation",
];

fn text_bytes(rng: &mut Rng, size: usize, out: &mut Vec<u8>) {
    while out.len() < size {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
        if rng.below(9) == 0 {
            out.extend_from_slice(format!("{} ", rng.below(100_000)).as_bytes());
        }
    }
    out.truncate(size);
}

/// One export record; `version` changes the records of the modified ranges.
fn record(w: &mut impl Write, table: usize, i: u64, version: u32) -> std::io::Result<()> {
    let mut r = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (table as u64) << 56 | 1);
    let status = ["en-cours", "termine", "annule", "gel", "transfere"][r.below(5) as usize];
    let day = 1 + r.below(28);
    let month = 1 + r.below(12);
    let year = 2015 + r.below(12);
    writeln!(
        w,
        "{i};P{:07};{}-{year}-{:03};{year}-{month:02}-{day:02};{status};{};{};{:.2};{};dr.{};{}",
        r.below(60_000),
        ["FIV", "ICSI", "IIU", "TEC"][r.below(4) as usize],
        r.below(400),
        r.below(30),
        r.below(15),
        r.below(10_000) as f64 / 7.0,
        WORDS[r.below(WORDS.len() as u64) as usize],
        ["martin", "bernard", "dubois", "thomas", "robert", "petit"][r.below(6) as usize],
        if version > 0 { "modifie" } else { "initial" }
    )
}

struct Layout {
    root: PathBuf,
    total: u64,
}

impl Layout {
    fn exports(&self) -> Vec<(PathBuf, u64)> {
        // 70% of the data in three exports (about 115 bytes a record).
        let bytes = self.total * 70 / 100;
        [(0.55, "patients"), (0.30, "cycles"), (0.15, "audit")]
            .iter()
            .map(|(share, name)| {
                (
                    self.root.join(format!("data/exports/{name}.csv")),
                    (bytes as f64 * share / 115.0) as u64,
                )
            })
            .collect()
    }
}

fn write_export(path: &Path, table: usize, records: u64, modified: bool) -> std::io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    // ~1% of the records change: three clustered ranges of 0.3% each, plus 0.1% appended.
    let ranges: Vec<(u64, u64)> = [0.21, 0.57, 0.88]
        .iter()
        .map(|f| {
            let start = (records as f64 * f) as u64;
            (start, start + records * 3 / 1000)
        })
        .collect();
    for i in 0..records {
        let version = u32::from(modified && ranges.iter().any(|(a, b)| (*a..*b).contains(&i)));
        record(&mut w, table, i, version)?;
    }
    if modified {
        for i in records..records + records / 1000 {
            record(&mut w, table, i, 1)?;
        }
    }
    w.flush()
}

fn generate(layout: &Layout, modified: bool) -> std::io::Result<()> {
    let root = &layout.root;
    let state = root.join(".state");
    let want = format!("{} {}", layout.total, if modified { "B" } else { "A" });
    if fs::read_to_string(&state).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    let base_ready = fs::read_to_string(&state)
        .ok()
        .is_some_and(|s| s.starts_with(&format!("{} ", layout.total)));
    fs::create_dir_all(root.join("data/exports"))?;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // Small files: 10% of the data, about 36 KiB each.
    let small_total = layout.total / 10;
    let small_count = (small_total / 36_000).max(10);
    let mut buf = Vec::new();
    for i in 0..small_count {
        let size = 1000 + rng.below(70_000) as usize;
        let dir = root.join(format!(
            "data/app/module{:02}/{}",
            i % 40,
            ["conf", "templates", "logs", "lib"][(i % 4) as usize]
        ));
        let change = modified && i % 100 == 7;
        if base_ready && i % 100 != 7 {
            // Unchanged between states: keep the file (and its mtime).
            buf.clear();
            text_bytes(&mut rng, size, &mut buf);
            continue;
        }
        fs::create_dir_all(&dir)?;
        buf.clear();
        text_bytes(&mut rng, size, &mut buf);
        if change {
            buf.extend_from_slice(b"\n# modified for the incremental run\n");
        }
        fs::write(dir.join(format!("file{i:05}.txt")), &buf)?;
    }
    // Binaries: 20%, incompressible, 1 to 9 MiB.
    if !base_ready {
        let mut left = layout.total * 20 / 100;
        let mut n = 0;
        while left > 0 {
            let size = ((1 + rng.below(9)) << 20).min(left);
            let mut data = vec![0u8; size as usize];
            for chunk in data.chunks_mut(8) {
                let v = rng.next().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            let dir = root.join(format!("data/app/bin{:02}", n % 5));
            fs::create_dir_all(&dir)?;
            fs::write(dir.join(format!("blob{n:03}.so")), &data)?;
            left -= size;
            n += 1;
        }
    }
    for (table, (path, records)) in layout.exports().into_iter().enumerate() {
        write_export(&path, table, records, modified)?;
    }
    fs::write(&state, want)?;
    Ok(())
}

fn du(path: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(path).output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Runs a command under /usr/bin/time; returns (seconds, peak RSS KiB).
fn timed(label: &str, cmd: &mut Command) -> (f64, u64) {
    let tf = std::env::temp_dir().join(format!("jfiv-bench-time-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&tf)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    wrapped.stdout(std::process::Stdio::null());
    // Nothing dirty in the page cache when a tool starts: the data set just generated, or the
    // previous tool's store, is written back outside the timed window (jfiv ran first and used
    // to pay for the write-back of the freshly generated exports).
    let _ = Command::new("sync").status();
    let start = Instant::now();
    let status = wrapped.status().expect("spawn");
    let secs = start.elapsed().as_secs_f64();
    assert!(status.success(), "{label} failed: {status}");
    let rss = fs::read_to_string(&tf)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (secs, rss)
}

fn child_backup(data: &Path, store: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let key = RepositoryKey::from_master(zeroize::Zeroizing::new([42u8; 32]));
        let target = DiskTarget::create(store).unwrap();
        let previous = jfiv_backup::latest_snapshot(&target, &key, "bench")
            .await
            .unwrap();
        let source = DirectorySource::new("bench").root_as(data, "data");
        let options = BackupOptions {
            zstd_level: std::env::var("JFIV_BENCH_ZSTD")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            // JFIV_BENCH_HLOG=none keeps zstd's own hash table size (for comparisons).
            zstd_hash_log: match std::env::var("JFIV_BENCH_HLOG").ok().as_deref() {
                Some("none") => None,
                Some(v) => v.parse().ok(),
                None => BackupOptions::default().zstd_hash_log,
            },
            ..BackupOptions::default()
        };
        let report = jfiv_backup::backup(
            &source,
            &target,
            &key,
            previous.as_ref(),
            &options,
            &NoProgress,
        )
        .await
        .unwrap();
        eprintln!("jfiv stats: {:?}", report.stats);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() >= 4 && args[1] == "child-backup" {
        child_backup(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let size_mb: u64 = std::env::var("JFIV_BENCH_SIZE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let dir = PathBuf::from(
        std::env::var("JFIV_BENCH_DIR").unwrap_or_else(|_| "/work/bench-data".into()),
    );
    let layout = Layout {
        root: dir.join(format!("set-{size_mb}")),
        total: size_mb << 20,
    };
    let data = layout.root.join("data");
    eprintln!("generating {size_mb} MB under {}", layout.root.display());
    generate(&layout, false).expect("generate");
    let input = du(&data);
    let stores = dir.join("stores");
    let _ = fs::remove_dir_all(&stores);
    fs::create_dir_all(&stores).unwrap();
    let me = std::env::current_exe().unwrap();
    let has = |tool: &str| {
        Command::new("which")
            .arg(tool)
            .output()
            .is_ok_and(|o| o.status.success())
    };

    // Warm the page cache equally for everybody.
    let _ = Command::new("tar")
        .arg("-cf")
        .arg("/dev/null")
        .arg(&data)
        .status();

    let mut rows: Vec<(String, f64, f64, u64, u64)> = Vec::new(); // name, full s, incr s, rss, store
    let jfiv_store = stores.join("jfiv");
    let (jf, jr) = timed(
        "jfiv full",
        Command::new(&me)
            .arg("child-backup")
            .arg(&data)
            .arg(&jfiv_store),
    );
    let mut restic = None;
    if has("restic") {
        let repo = stores.join("restic");
        let env = |c: &mut Command| {
            c.env("RESTIC_PASSWORD", PASSWORD)
                .env("RESTIC_REPOSITORY", &repo)
                .env("RESTIC_CACHE_DIR", stores.join("restic-cache"));
        };
        let mut init = Command::new("restic");
        init.arg("init").arg("-q");
        env(&mut init);
        init.stdout(std::process::Stdio::null());
        assert!(init.status().unwrap().success());
        let mut b = Command::new("restic");
        b.arg("backup").arg("-q").arg(&data);
        env(&mut b);
        restic = Some(timed("restic full", &mut b));
    }
    let mut borg = None;
    if has("borg") {
        let repo = stores.join("borg");
        let mut init = Command::new("borg");
        init.arg("init")
            .arg("--encryption=repokey-blake2")
            .arg(&repo)
            .env("BORG_PASSPHRASE", PASSWORD);
        assert!(init.status().unwrap().success());
        let mut b = Command::new("borg");
        b.arg("create")
            .arg(format!("{}::full", repo.display()))
            .arg(&data)
            .env("BORG_PASSPHRASE", PASSWORD);
        borg = Some(timed("borg full", &mut b));
    }
    let tar_out = stores.join("data.tar.zst");
    let tar = timed(
        "tar|zstd",
        Command::new("sh").arg("-c").arg(format!(
            "tar -cf - -C '{}' data | zstd -T0 -3 -q -o '{}'",
            layout.root.display(),
            tar_out.display()
        )),
    );
    let sizes_full = (
        du(&jfiv_store),
        restic.map(|_| du(&stores.join("restic"))),
        borg.map(|_| du(&stores.join("borg"))),
        du(&tar_out),
    );

    eprintln!("changing ~1% of the records");
    generate(&layout, true).expect("modify");
    let _ = Command::new("tar")
        .arg("-cf")
        .arg("/dev/null")
        .arg(&data)
        .status();
    let (ji, jr2) = timed(
        "jfiv incremental",
        Command::new(&me)
            .arg("child-backup")
            .arg(&data)
            .arg(&jfiv_store),
    );
    let restic_i = restic.map(|_| {
        let repo = stores.join("restic");
        let mut b = Command::new("restic");
        b.arg("backup")
            .arg("-q")
            .arg(&data)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_REPOSITORY", &repo)
            .env("RESTIC_CACHE_DIR", stores.join("restic-cache"));
        timed("restic incremental", &mut b)
    });
    let borg_i = borg.map(|_| {
        let repo = stores.join("borg");
        let mut b = Command::new("borg");
        b.arg("create")
            .arg(format!("{}::incr", repo.display()))
            .arg(&data)
            .env("BORG_PASSPHRASE", PASSWORD);
        timed("borg incremental", &mut b)
    });
    // Put the data set back in its first state for the next run.
    generate(&layout, false).expect("reset");

    rows.push(("jfiv-backup".into(), jf, ji, jr.max(jr2), du(&jfiv_store)));
    if let (Some((f, r)), Some((i, r2))) = (restic, restic_i) {
        rows.push(("restic".into(), f, i, r.max(r2), du(&stores.join("restic"))));
    }
    if let (Some((f, r)), Some((i, r2))) = (borg, borg_i) {
        rows.push(("borg".into(), f, i, r.max(r2), du(&stores.join("borg"))));
    }
    rows.push((
        "tar | zstd -T0 -3".into(),
        tar.0,
        f64::NAN,
        tar.1,
        sizes_full.3,
    ));

    let mb = input as f64 / 1e6;
    let mut report = String::new();
    report.push_str(&format!(
        "# jfiv-backup benchmark\n\ninput: {:.0} MB ({} bytes) under {}; {} cores\n\n",
        mb,
        input,
        data.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    ));
    report.push_str("| tool | full s | full MB/s | incremental s | peak RSS MiB | store after both MB | store after full MB |\n|---|---|---|---|---|---|---|\n");
    let full_sizes = [
        Some(sizes_full.0),
        sizes_full.1,
        sizes_full.2,
        Some(sizes_full.3),
    ];
    for (i, (name, f, inc, rss, store)) in rows.iter().enumerate() {
        let full_size = match name.as_str() {
            "jfiv-backup" => full_sizes[0],
            "restic" => full_sizes[1],
            "borg" => full_sizes[2],
            _ => full_sizes[3],
        };
        let _ = i;
        report.push_str(&format!(
            "| {name} | {f:.2} | {:.0} | {} | {:.1} | {:.1} | {:.1} |\n",
            mb / f,
            if inc.is_nan() {
                "-".to_owned()
            } else {
                format!("{inc:.2}")
            },
            *rss as f64 / 1024.0,
            *store as f64 / 1e6,
            full_size.unwrap_or(0) as f64 / 1e6
        ));
    }
    let find = |n: &str| rows.iter().find(|r| r.0 == n);
    let j = &rows[0];
    report.push_str("\nratios (same run):\n");
    if let Some(r) = find("restic") {
        report.push_str(&format!(
            "- full backup speed vs restic: {:.2}x (target >= 4)\n- incremental speed vs restic: {:.2}x (target >= 3)\n- store size vs restic: {:.2} (target <= 1)\n",
            r.1 / j.1,
            r.2 / j.2,
            j.4 as f64 / r.4 as f64
        ));
    }
    if let Some(b) = find("borg") {
        report.push_str(&format!(
            "- full backup speed vs borg: {:.2}x; incremental vs borg: {:.2}x\n",
            b.1 / j.1,
            b.2 / j.2
        ));
    }
    if let Some(t) = find("tar | zstd -T0 -3") {
        report.push_str(&format!(
            "- full backup speed vs tar|zstd -T0 -3: {:.2}x (target >= 1.5)\n",
            t.1 / j.1
        ));
    }
    report.push_str(&format!(
        "- jfiv peak RSS: {:.1} MiB (target <= 128)\n",
        j.3 as f64 / 1024.0
    ));
    println!("{report}");
    let _ = fs::write(dir.join("report.md"), &report);
}

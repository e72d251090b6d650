//! Benchmark of the file log, release mode, on a temporary directory:
//! durable appends/s with 1 and 16 concurrent appenders, and verification records/s, each with
//! a baseline measured in the same run.
//!
//! ```sh
//! cargo bench -p jfiv-audit --bench audit
//! ```
//!
//! Sizes (environment, all optional): `JFIV_BENCH_RAW` fsync'd raw writes (default 2000),
//! `JFIV_BENCH_APPENDS_1` (default 2000), `JFIV_BENCH_APPENDS_16` (default 100000),
//! `JFIV_BENCH_VERIFY` records verified (default 1000000); `JFIV_BENCH_DIR` the directory in
//! which the temporary directory is made (default: the system's, e.g. `/tmp`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use jfiv_audit::{
    Action, Actor, AuditEvent, AuditKeys, AuditSink, FileLog, FileLogOptions, Origin, RecordRef,
    verify,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn size(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn event(i: u64) -> AuditEvent {
    AuditEvent::new(
        Utc::now(),
        Actor::new(format!("dr.user{:02}", i % 40), "clinician"),
        Origin::Remote {
            client_ip: "10.8.0.12"
                .parse()
                .unwrap_or(std::net::IpAddr::from([10, 8, 0, 12])),
            certificate_fingerprint: Some("3f1c9a0b7d2e44aa".into()),
        },
        Action::RecordRead,
    )
    .with_record(RecordRef::cycle(
        format!("P{:06}", i % 5000),
        format!("FIV-2026-{:03}", i % 300),
    ))
    .with_details("consultation du dossier")
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

/// The baseline: a loop of write + fsync of same-size lines, one at a time.
fn raw_fsync_loop(dir: &Path, line_len: usize, count: u64) -> Result<f64, BoxError> {
    let path = dir.join("raw.jsonl");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let mut line = vec![b'x'; line_len - 1];
    line.push(b'\n');
    let start = Instant::now();
    for _ in 0..count {
        file.write_all(&line)?;
        file.sync_data()?;
    }
    Ok(per_second(count, start.elapsed()))
}

async fn appends(log: Arc<FileLog>, appenders: u64, total: u64) -> Result<f64, BoxError> {
    let each = total / appenders;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..appenders {
        let log = log.clone();
        tasks.spawn(async move {
            for i in 0..each {
                log.append(event(t * each + i)).await?;
            }
            Ok::<_, jfiv_audit::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(per_second(each * appenders, start.elapsed()))
}

/// The verification baseline: read the same files and split them into lines, no checking.
fn raw_read_lines(dir: &Path) -> Result<(u64, Duration), BoxError> {
    let start = Instant::now();
    let mut lines = 0u64;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let mut reader = BufReader::with_capacity(1 << 20, std::fs::File::open(&path)?);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line)? > 0 {
                lines += 1;
                line.clear();
            }
        }
    }
    Ok((lines, start.elapsed()))
}

/// The second verification baseline: only the keyed BLAKE3 of every line (the cost floor of
/// a MAC chain on one core), lines already in memory.
fn raw_hash_lines(dir: &Path) -> Result<(u64, Duration), BoxError> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            bytes.extend(std::fs::read(&path)?);
        }
    }
    let key = [7u8; 32];
    let start = Instant::now();
    let mut lines = 0u64;
    let mut acc = 0u8;
    for line in bytes.split(|&b| b == b'\n') {
        acc ^= blake3::keyed_hash(&key, line).as_bytes()[0];
        lines += 1;
    }
    let elapsed = start.elapsed();
    std::hint::black_box(acc);
    Ok((lines, elapsed))
}

fn main() -> Result<(), BoxError> {
    let raw_count = size("JFIV_BENCH_RAW", 2000);
    let one_count = size("JFIV_BENCH_APPENDS_1", 2000);
    let sixteen_count = size("JFIV_BENCH_APPENDS_16", 100_000);
    let verify_count = size("JFIV_BENCH_VERIFY", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let keys = Arc::new(AuditKeys::generate(&mut rand::rngs::OsRng));
    let tmp = match std::env::var_os("JFIV_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    println!(
        "jfiv-audit benchmark, temporary directory {}",
        tmp.path().display()
    );

    // Line length of a typical record, for the raw baseline.
    let sample_dir = tmp.path().join("sample");
    let line_len = runtime.block_on(async {
        let log = FileLog::create(&sample_dir, keys.clone(), FileLogOptions::new())?;
        log.append(event(1)).await?;
        drop(log);
        let mut longest = 0;
        for entry in std::fs::read_dir(&sample_dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read_to_string(&path)?;
                longest = text.lines().last().map_or(0, |l| l.len() + 1);
            }
        }
        Ok::<_, BoxError>(longest)
    })?;
    println!("record line: {line_len} bytes");

    let raw = raw_fsync_loop(tmp.path(), line_len, raw_count)?;
    println!("baseline  raw write+fsync loop      {raw:>12.0} lines/s   ({raw_count} lines)");

    let one = runtime.block_on(async {
        let log = Arc::new(FileLog::create(
            &tmp.path().join("one"),
            keys.clone(),
            FileLogOptions::new(),
        )?);
        appends(log, 1, one_count).await
    })?;
    println!(
        "FileLog   1 appender                {one:>12.0} appends/s ({one_count} appends)  ratio to baseline {:.2}",
        one / raw
    );

    let (sixteen, batches) = runtime.block_on(async {
        let log = Arc::new(FileLog::create(
            &tmp.path().join("sixteen"),
            keys.clone(),
            FileLogOptions::new(),
        )?);
        let rate = appends(log.clone(), 16, sixteen_count).await?;
        Ok::<_, BoxError>((rate, log.batches_synced()))
    })?;
    println!(
        "FileLog  16 appenders               {sixteen:>12.0} appends/s ({sixteen_count} appends, {batches} fsyncs, {:.1} records/fsync)  ratio to baseline {:.2}",
        sixteen_count as f64 / batches.max(1) as f64,
        sixteen / raw
    );

    // Verification over a large log, generated with many appenders (large group commits).
    let big = tmp.path().join("big");
    let gen_start = Instant::now();
    runtime.block_on(async {
        let log = Arc::new(FileLog::create(&big, keys.clone(), FileLogOptions::new())?);
        appends(log, 256, verify_count).await
    })?;
    println!(
        "(generated {verify_count} records for verification in {:.1} s)",
        gen_start.elapsed().as_secs_f64()
    );
    let (lines, raw_elapsed) = raw_read_lines(&big)?;
    let raw_lines = per_second(lines, raw_elapsed);
    println!("baseline  read + split lines        {raw_lines:>12.0} lines/s   ({lines} lines)");
    let (hashed, hash_elapsed) = raw_hash_lines(&big)?;
    let hash_rate = per_second(hashed, hash_elapsed);
    println!("baseline  keyed BLAKE3 of each line, 1 thread {hash_rate:>8.0} lines/s");
    let start = Instant::now();
    let report = verify(&big, &keys, &[])?;
    let verified = per_second(report.records, start.elapsed());
    println!(
        "verify    (MAC chain, every record) {verified:>12.0} records/s ({} records)  ratio to read+split {:.2}, to 1-thread BLAKE3 {:.2}",
        report.records,
        verified / raw_lines,
        verified / hash_rate
    );
    println!();
    println!(
        "targets: >= 20000 durable appends/s with 16 appenders: {}; >= 500000 records/s verification: {}",
        if sixteen >= 20_000.0 {
            "met"
        } else {
            "NOT met"
        },
        if verified >= 500_000.0 {
            "met"
        } else {
            "NOT met"
        },
    );
    Ok(())
}

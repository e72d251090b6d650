//! Tape benchmark (release, not part of CI): the core pipeline writing one snapshot to a
//! `VirtualTape` on local disk, against the same pipeline writing to a `DiskTarget`, in the
//! same run, then the read-back verification of the tape session.
//!
//! ```text
//! cargo bench -p jfiv-backup --bench tape
//! JFIV_TAPE_BENCH_MB=1000 JFIV_TAPE_BENCH_DIR=/work/bench-tape cargo bench -p jfiv-backup --bench tape
//! ```
//!
//! The data set is deterministic: text-like database exports (CSV, compressible) and a share
//! of incompressible binaries. MB/s are of source input (10^6 bytes per second).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use jfiv_backup::tape::{
    MediaLabel, NoMoreTapes, Pool, SessionOptions, TapeTarget, VirtualTape, VirtualTapeSpec,
    WritePosition, format, verify_session,
};
use jfiv_backup::{BackupOptions, DirectorySource, DiskTarget, NoProgress, RepositoryKey, backup};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn generate(dir: &Path, total: u64) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir.join("exports"))?;
    std::fs::create_dir_all(dir.join("bin"))?;
    let mut rng = Rng(0x5eed);
    let mut written = 0u64;
    let mut n = 0;
    while written < total {
        let size = (16 << 20).min(total - written) as usize;
        let mut buf = Vec::with_capacity(size);
        if n % 4 == 3 {
            while buf.len() < size {
                buf.extend_from_slice(&rng.next().to_le_bytes());
            }
            buf.truncate(size);
            std::fs::write(dir.join(format!("bin/lib-{n:03}.so")), &buf)?;
        } else {
            while buf.len() < size {
                let r = rng.next();
                let line = format!(
                    "P{:06};FIV-{};{};ponction;{};J+{};{}\n",
                    r % 100_000,
                    r % 2027,
                    (r >> 20) % 40,
                    if r & 1 == 0 { "ICSI" } else { "FIV" },
                    (r >> 8) % 15,
                    (r >> 30) % 1_000_000
                );
                buf.extend_from_slice(line.as_bytes());
            }
            buf.truncate(size);
            std::fs::write(dir.join(format!("exports/table-{n:03}.csv")), &buf)?;
        }
        written += size as u64;
        n += 1;
    }
    Ok(written)
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mb: u64 = std::env::var("JFIV_TAPE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let base: PathBuf =
        std::env::var_os("JFIV_TAPE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("jfiv-tape-bench")
        .tempdir_in(&base)?;
    let data = work.path().join("data");
    let total = generate(&data, mb * 1_000_000)?;
    println!(
        "data set: {:.0} MB in {}",
        total as f64 / 1e6,
        data.display()
    );
    let key = RepositoryKey::generate();
    let source = DirectorySource::new("bench").root_as(&data, "data");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    // Baseline: the core pipeline to a DiskTarget (fsync'd, atomic files).
    let disk_dir = work.path().join("disk");
    let disk = DiskTarget::create(&disk_dir)?;
    let t = Instant::now();
    let disk_report = rt.block_on(backup(
        &source,
        &disk,
        &key,
        None,
        &BackupOptions::default(),
        &NoProgress,
    ))?;
    let disk_secs = t.elapsed().as_secs_f64();
    drop(disk);
    std::fs::remove_dir_all(&disk_dir)?;

    // The same pipeline to a virtual tape (1 MiB blocks).
    let image = work.path().join("bench.vtape");
    let spec = VirtualTapeSpec {
        barcode: "BENCH1L6".into(),
        capacity: 4 * total + (1 << 30),
        early_warning_zone: 64 << 20,
    };
    let mut tape = VirtualTape::create(&image, &spec)?;
    let label = MediaLabel::new(uuid_v4(), "BENCH1L6", Pool::Daily, chrono::Utc::now());
    format::write_label(&mut tape, &label)?;
    let options = SessionOptions {
        snapshot: "bench".into(),
        source: "bench".into(),
        host: "bench".into(),
        pool: Pool::Daily,
        block_size: format::MAX_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    };
    let clock: Arc<dyn jfiv_audit::Clock> = Arc::new(jfiv_audit::SystemClock);
    let t = Instant::now();
    let (tape_report, summary) = rt.block_on(async {
        let target = TapeTarget::start(
            Box::new(tape),
            label,
            options,
            Box::new(NoMoreTapes),
            Arc::clone(&clock),
        )
        .await?;
        let report = backup(
            &source,
            &target,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
        )
        .await?;
        let (summary, _) = target.finish().await?;
        Ok::<_, jfiv_backup::Error>((report, summary))
    })?;
    let tape_secs = t.elapsed().as_secs_f64();

    // Read-back verification (every chunk authenticated).
    let t = Instant::now();
    let v = verify_session(
        Box::new(VirtualTape::open(&image)?),
        1,
        &mut NoMoreTapes,
        &key,
        &*clock,
    )?;
    let verify_secs = t.elapsed().as_secs_f64();
    assert!(v.result.ok, "{:?}", v.result);

    let stored = summary.catalog.chunk_bytes;
    println!("| run | seconds | MB/s of input | ratio to disk |");
    println!("|---|---|---|---|");
    println!(
        "| backup -> DiskTarget (baseline) | {disk_secs:.2} | {:.0} | 1.00 |",
        mbps(total, disk_secs)
    );
    println!(
        "| backup -> VirtualTape | {tape_secs:.2} | {:.0} | {:.2} |",
        mbps(total, tape_secs),
        disk_secs / tape_secs
    );
    println!(
        "| read-back verify of the tape session | {verify_secs:.2} | {:.0} ({:.0} MB/s of tape data) | {:.2} |",
        mbps(total, verify_secs),
        mbps(stored, verify_secs),
        disk_secs / verify_secs
    );
    println!(
        "tape session: {} chunks, {:.0} MB on tape; disk run stored {:.0} MB; chunks new {} / {}",
        summary.catalog.chunks,
        stored as f64 / 1e6,
        disk_report.stats.bytes_stored as f64 / 1e6,
        tape_report.stats.chunks_new,
        disk_report.stats.chunks_new
    );
    Ok(())
}

fn uuid_v4() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

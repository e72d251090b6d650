//! Scenario tests of the tape subsystem: format round trips, spanning, damage, wrong tapes,
//! the rotation over a simulated year, locations and the catalog rebuilt by a scan.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use jfiv_audit::{Action, AuditSink, ManualClock, MemorySink, Query};
use uuid::Uuid;

use super::format::{self, SessionItem, VolumeStatus};
use super::*;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// Deterministic incompressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn chunk_id(i: u64) -> [u8; 32] {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

fn opts(pool: Pool) -> SessionOptions {
    SessionOptions {
        snapshot: "snap-1".into(),
        source: "jfiv-db".into(),
        host: "jfiv-srv".into(),
        pool,
        block_size: format::MIN_BLOCK_SIZE,
        position: WritePosition::AfterLabel,
    }
}

fn labelled_memory(barcode: &str, pool: Pool, capacity: u64, ew: u64) -> (MemoryTape, MediaLabel) {
    let mut t = MemoryTape::new(barcode, capacity, ew);
    let label = MediaLabel::new(Uuid::new_v4(), barcode, pool, at(2026, 1, 1, 9));
    format::write_label(&mut t, &label).unwrap();
    (t, label)
}

struct Library {
    _dir: tempfile::TempDir,
    lib: VirtualLibrary,
    labels: Vec<MediaLabel>,
}

/// A virtual library with `n` labelled tapes `T000n` of `pool`.
fn library(n: usize, pool: Pool, capacity: u64, ew: u64) -> Library {
    let dir = tempfile::tempdir().unwrap();
    let slots: Vec<String> = (0..n).map(|i| format!("slot-{i:02}")).collect();
    let slot_refs: Vec<&str> = slots.iter().map(String::as_str).collect();
    let mut lib = VirtualLibrary::create(dir.path().join("lib"), &slot_refs).unwrap();
    let mut labels = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let barcode = format!("T{i:04}");
        lib.add_tape(
            slot,
            &VirtualTapeSpec {
                barcode: barcode.clone(),
                capacity,
                early_warning_zone: ew,
            },
        )
        .unwrap();
        let mut t = lib.load(&barcode).unwrap();
        let label = MediaLabel::new(Uuid::new_v4(), &barcode, pool.clone(), at(2026, 1, 1, 9));
        label_tape(
            &mut t,
            &label,
            &[],
            &RotationPolicy::default(),
            at(2026, 1, 1, 9),
            false,
        )
        .unwrap();
        labels.push(label);
    }
    Library {
        _dir: dir,
        lib,
        labels,
    }
}

/// Writes `chunks` chunks of `size` bytes and a manifest; returns the summary or the error.
fn write_session(
    device: Box<dyn TapeDevice>,
    label: &MediaLabel,
    changer: &mut dyn VolumeChanger,
    chunks: u64,
    size: usize,
) -> std::result::Result<SessionSummary, Box<(Error, SessionSummary)>> {
    let clock = ManualClock::new(at(2026, 1, 5, 21));
    let mut w = SessionWriter::start(
        device,
        label,
        opts(label.pool.clone()),
        Box::new(changer),
        Box::new(&clock),
    )
    .unwrap();
    for i in 0..chunks {
        if let Err(e) = w.write_chunk(&chunk_id(i), &noise(i, size)) {
            return Err(Box::new((e, w.abort("out of tapes"))));
        }
    }
    match w.finish("snap-1", b"the manifest") {
        Ok((summary, _dev)) => Ok(summary),
        Err(e) => Err(Box::new((
            e,
            SessionSummary {
                catalog: format::SessionCatalog {
                    session: Uuid::nil(),
                    snapshot: String::new(),
                    source: String::new(),
                    host: String::new(),
                    pool: Pool::Daily,
                    started: clock.now_for_tests(),
                    volumes: Vec::new(),
                    chunks: 0,
                    chunk_bytes: 0,
                    manifest_bytes: None,
                    snapshots: Vec::new(),
                },
                complete: false,
                finished: clock.now_for_tests(),
                reason: None,
            },
        ))),
    }
}

trait NowForTests {
    fn now_for_tests(&self) -> DateTime<Utc>;
}
impl NowForTests for ManualClock {
    fn now_for_tests(&self) -> DateTime<Utc> {
        jfiv_audit::Clock::now(self)
    }
}

type ReadBack = (Vec<([u8; 32], Vec<u8>)>, Vec<u8>, format::SessionReadReport);

/// Reads a session back and returns (chunk ids and data, manifest).
fn read_back<'a>(
    device: Box<dyn TapeDevice + 'a>,
    file: u64,
    changer: &mut dyn VolumeChanger,
) -> Result<ReadBack> {
    let mut chunks = Vec::new();
    let mut manifest = Vec::new();
    let (report, _dev) = read_session(device, file, changer, &mut |item| {
        match item {
            SessionItem::Chunk { id, data } => chunks.push((*id, data.to_vec())),
            SessionItem::Manifest { data, .. } => manifest = data.to_vec(),
            SessionItem::Header(_) => {}
        }
        Ok(())
    })?;
    Ok((chunks, manifest, report))
}

mod format_round_trip {
    use super::*;

    #[test]
    fn label_reads_back_with_its_readme() {
        let (mut t, label) = labelled_memory("JFV001", Pool::Weekly, 64 << 20, 1 << 20);
        assert_eq!(format::read_label(&mut t).unwrap(), label);
        // The plain-text paragraph is readable with no jfiv tool: it follows the block header.
        t.rewind().unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let ReadOutcome::Block(n) = t.read_block(&mut buf).unwrap() else {
            panic!()
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.contains("JFIV medical records"), "{text}");
        assert!(text.contains("Barcode JFV001, pool weekly"), "{text}");
        assert_eq!(&buf[..8], b"JFIVTBK1");
    }

    #[test]
    fn blank_and_foreign_tapes_are_unlabeled() {
        let mut blank = MemoryTape::new("B1", 1 << 20, 1 << 16);
        assert!(matches!(
            format::read_label(&mut blank),
            Err(Error::Unlabeled { .. })
        ));
        let mut foreign = MemoryTape::new("B2", 1 << 20, 1 << 16);
        foreign.write_block(b"tar archive, not jfiv").unwrap();
        foreign.write_filemarks(1).unwrap();
        assert!(matches!(
            format::read_label(&mut foreign),
            Err(Error::Unlabeled { .. })
        ));
    }

    #[test]
    fn session_round_trips_chunks_in_order_and_manifest_last() {
        let (t, label) = labelled_memory("JFV002", Pool::Daily, 256 << 20, 8 << 20);
        let summary = write_session(Box::new(t), &label, &mut NoMoreTapes, 40, 70_000).unwrap();
        assert!(summary.complete);
        assert_eq!(summary.catalog.chunks, 40);
        assert_eq!(summary.catalog.volumes.len(), 1);
        assert_eq!(summary.catalog.volumes[0].file, 1);
        assert_eq!(summary.catalog.volumes[0].status, VolumeStatus::Complete);
        assert_eq!(summary.catalog.chunk_bytes, 40 * 70_000);
        assert_eq!(summary.catalog.manifest_bytes, Some(12));
    }

    #[test]
    fn session_reads_back_bit_for_bit() {
        let lib = library(1, Pool::Daily, 256 << 20, 8 << 20);
        let dev = lib.lib.load("T0000").unwrap();
        let summary =
            write_session(Box::new(dev), &lib.labels[0], &mut NoMoreTapes, 25, 123_457).unwrap();
        assert!(summary.complete);
        let dev = lib.lib.load("T0000").unwrap();
        let (chunks, manifest, report) = read_back(Box::new(dev), 1, &mut NoMoreTapes).unwrap();
        assert_eq!(manifest, b"the manifest");
        assert_eq!(chunks.len(), 25);
        for (i, (id, data)) in chunks.iter().enumerate() {
            assert_eq!(*id, chunk_id(i as u64));
            assert_eq!(*data, noise(i as u64, 123_457));
        }
        assert!(report.manifest);
        assert_eq!(report.chunks, 25);
        assert_eq!(report.catalog.unwrap().chunks, 25);
    }

    #[test]
    fn appending_keeps_earlier_sessions() {
        let lib = library(1, Pool::Daily, 256 << 20, 8 << 20);
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        for n in 0..3u64 {
            let dev = lib.lib.load("T0000").unwrap();
            let mut o = opts(Pool::Daily);
            o.position = WritePosition::Append;
            o.snapshot = format!("snap-{n}");
            let mut none = NoMoreTapes;
            let mut w = SessionWriter::start(
                Box::new(dev),
                &lib.labels[0],
                o,
                Box::new(&mut none),
                Box::new(&clock),
            )
            .unwrap();
            w.write_chunk(&chunk_id(n), &noise(n, 1000)).unwrap();
            let (s, _) = w.finish("snap-m", b"m").unwrap();
            assert_eq!(s.catalog.volumes[0].file, n + 1);
        }
        let mut dev = lib.lib.load("T0000").unwrap();
        let scan = scan_tape(&mut dev).unwrap();
        assert_eq!(scan.files.len(), 3);
        assert!(!scan.has_errors());
        let snaps: Vec<_> = scan
            .files
            .iter()
            .map(|f| f.header.as_ref().unwrap().snapshot.clone())
            .collect();
        assert_eq!(snaps, ["snap-0", "snap-1", "snap-2"]);
    }

    #[test]
    fn large_sessions_with_records_across_many_blocks_read_back() {
        // Regression: the reader compacts its buffer while a record spans blocks.
        let (mut t, label) = labelled_memory("BIG001", Pool::Daily, 1 << 30, 16 << 20);
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        let mut none = NoMoreTapes;
        let mut o = opts(Pool::Daily);
        o.block_size = format::MAX_BLOCK_SIZE;
        let mut w = SessionWriter::start(
            Box::new(&mut t),
            &label,
            o,
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap();
        let sizes: Vec<usize> = (0..120u64)
            .map(|i| 50_000 + (i as usize * 7919) % 1_500_000)
            .collect();
        for (i, size) in sizes.iter().enumerate() {
            w.write_chunk(&chunk_id(i as u64), &noise(i as u64, *size))
                .unwrap();
        }
        drop(w.finish("snap-big", b"m").unwrap());
        let (chunks, manifest, _) = read_back(Box::new(&mut t), 1, &mut NoMoreTapes).unwrap();
        assert_eq!(manifest, b"m");
        assert_eq!(chunks.len(), sizes.len());
        for (i, (id, data)) in chunks.iter().enumerate() {
            assert_eq!(*id, chunk_id(i as u64));
            assert_eq!(*data, noise(i as u64, sizes[i]), "chunk {i}");
        }
    }

    #[test]
    fn block_sizes_outside_the_range_are_refused() {
        assert!(matches!(
            format::StreamWriter::new(Uuid::new_v4(), 4096),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            format::StreamWriter::new(Uuid::new_v4(), 2 << 20),
            Err(Error::Config { .. })
        ));
        assert!(format::StreamWriter::new(Uuid::new_v4(), format::MAX_BLOCK_SIZE).is_ok());
    }
}

mod spanning {
    use super::*;

    #[test]
    fn a_session_spans_tapes_at_early_warning_and_reads_back_in_order() {
        // 4 MiB tapes with a 1.5 MiB early-warning zone; ~10 MiB of chunks.
        let lib = library(5, Pool::Daily, 4 << 20, 3 << 19);
        let inventory: Vec<MediaInfo> = lib
            .labels
            .iter()
            .map(|l| MediaInfo {
                label: l.clone(),
                last_written: None,
            })
            .collect();
        let candidates: Vec<String> = lib.labels.iter().map(|l| l.barcode.clone()).collect();
        let mut changer = LibraryChanger::new(
            &lib.lib,
            candidates.clone(),
            ChangerPurpose::Write {
                inventory,
                policy: RotationPolicy::default(),
                now: at(2026, 1, 5, 21),
            },
        );
        let dev = lib.lib.load("T0000").unwrap();
        let summary =
            write_session(Box::new(dev), &lib.labels[0], &mut changer, 100, 100_000).unwrap();
        assert!(summary.complete);
        let vols = &summary.catalog.volumes;
        assert!(vols.len() >= 3, "{vols:?}");
        for (i, v) in vols.iter().enumerate() {
            assert_eq!(v.volume, i as u32 + 1);
            let want = if i + 1 == vols.len() {
                VolumeStatus::Complete
            } else {
                VolumeStatus::Continued
            };
            assert_eq!(v.status, want);
        }
        assert_eq!(vols.iter().map(|v| v.chunks).sum::<u64>(), 100);
        // No tape holds more than its capacity.
        for v in vols {
            assert!(lib.lib.load(&v.tape).unwrap().recorded() <= 4 << 20);
        }
        // Restore asks for the tapes in order.
        let mut reader = LibraryChanger::new(&lib.lib, candidates, ChangerPurpose::Read);
        let dev = lib.lib.load(&vols[0].tape).unwrap();
        let (chunks, manifest, report) = read_back(Box::new(dev), 1, &mut reader).unwrap();
        assert_eq!(manifest, b"the manifest");
        assert_eq!(chunks.len(), 100);
        assert!(
            chunks
                .iter()
                .enumerate()
                .all(|(i, (id, d))| *id == chunk_id(i as u64) && *d == noise(i as u64, 100_000))
        );
        assert_eq!(report.volumes.len(), vols.len());
    }

    #[test]
    fn running_out_of_tapes_leaves_the_session_incomplete() {
        let lib = library(2, Pool::Daily, 4 << 20, 3 << 19);
        let inventory: Vec<MediaInfo> = lib
            .labels
            .iter()
            .map(|l| MediaInfo {
                label: l.clone(),
                last_written: None,
            })
            .collect();
        let candidates: Vec<String> = lib.labels.iter().map(|l| l.barcode.clone()).collect();
        let mut changer = LibraryChanger::new(
            &lib.lib,
            candidates.clone(),
            ChangerPurpose::Write {
                inventory,
                policy: RotationPolicy::default(),
                now: at(2026, 1, 5, 21),
            },
        );
        let dev = lib.lib.load("T0000").unwrap();
        let boxed =
            write_session(Box::new(dev), &lib.labels[0], &mut changer, 100, 100_000).unwrap_err();
        let (err, summary) = *boxed;
        assert!(matches!(err, Error::SessionIncomplete { .. }), "{err}");
        assert!(!summary.complete);
        assert!(summary.reason.is_some());
        assert_eq!(
            summary.catalog.volumes.last().unwrap().status,
            VolumeStatus::Continued
        );
        // Reading it back never yields a success.
        let mut reader = LibraryChanger::new(&lib.lib, candidates, ChangerPurpose::Read);
        let dev = lib.lib.load("T0000").unwrap();
        let err = read_back(Box::new(dev), 1, &mut reader).unwrap_err();
        assert!(matches!(err, Error::SessionIncomplete { .. }), "{err}");
        // Nor does a scan.
        let mut catalog = Catalog::default();
        for b in ["T0000", "T0001"] {
            catalog.merge_scan(&scan_tape(&mut lib.lib.load(b).unwrap()).unwrap());
        }
        assert_eq!(catalog.sessions.len(), 1);
        let s = catalog.sessions.values().next().unwrap();
        assert!(!s.complete, "{s:?}");
        assert!(catalog.latest_complete("jfiv-db").is_none());
    }

    #[test]
    fn an_aborted_session_is_marked_incomplete_on_tape() {
        let (t, label) = labelled_memory("AB1", Pool::Daily, 64 << 20, 4 << 20);
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        let mut none = NoMoreTapes;
        let mut w = SessionWriter::start(
            Box::new(t),
            &label,
            opts(Pool::Daily),
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap();
        w.write_chunk(&chunk_id(0), b"data").unwrap();
        let summary = w.abort("source failed: database export exit status 1");
        assert!(!summary.complete);
        assert_eq!(summary.catalog.volumes[0].status, VolumeStatus::Incomplete);
    }

    #[test]
    fn the_changer_refuses_tapes_of_another_pool_or_under_retention() {
        let lib = library(3, Pool::Daily, 4 << 20, 3 << 19);
        let mut inventory: Vec<MediaInfo> = lib
            .labels
            .iter()
            .map(|l| MediaInfo {
                label: l.clone(),
                last_written: None,
            })
            .collect();
        inventory[1].last_written = Some(at(2026, 1, 4, 21)); // T0001: written last night
        inventory[2].label.pool = Pool::Monthly; // the catalog says T0002 is monthly
        let mut changer = LibraryChanger::new(
            &lib.lib,
            vec!["T0001".into(), "T0002".into()],
            ChangerPurpose::Write {
                inventory,
                policy: RotationPolicy::default(),
                now: at(2026, 1, 5, 21),
            },
        );
        let dev = lib.lib.load("T0000").unwrap();
        let (err, _) =
            *write_session(Box::new(dev), &lib.labels[0], &mut changer, 100, 100_000).unwrap_err();
        assert!(matches!(err, Error::SessionIncomplete { .. }));
        assert_eq!(changer.skipped.len(), 2, "{:?}", changer.skipped);
        assert!(
            changer.skipped[0].contains("must be kept until"),
            "{:?}",
            changer.skipped
        );
        assert!(
            changer.skipped[1].contains("belongs to pool monthly"),
            "{:?}",
            changer.skipped
        );
    }
}

mod damage {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn written_library() -> (Library, SessionSummary) {
        let lib = library(1, Pool::Daily, 256 << 20, 8 << 20);
        let dev = lib.lib.load("T0000").unwrap();
        let summary =
            write_session(Box::new(dev), &lib.labels[0], &mut NoMoreTapes, 30, 100_000).unwrap();
        (lib, summary)
    }

    #[test]
    fn a_flipped_byte_is_reported_with_tape_file_and_block() {
        let (lib, _) = written_library();
        let path = lib.lib.image_path("T0000");
        let offset = VirtualTape::open(&path)
            .unwrap()
            .image_offset(1, 5)
            .unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, offset + 1000).unwrap();
        f.write_all_at(&[b[0] ^ 0x40], offset + 1000).unwrap();
        let err = read_back(
            Box::new(lib.lib.load("T0000").unwrap()),
            1,
            &mut NoMoreTapes,
        )
        .unwrap_err();
        match &err {
            Error::Damaged {
                tape, file, block, ..
            } => assert_eq!((tape.as_str(), *file, *block), ("T0000", 1, 5), "{err}"),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("T0000, file 1, block 5"), "{err}");
        let scan = scan_tape(&mut lib.lib.load("T0000").unwrap()).unwrap();
        assert!(scan.has_errors());
        assert!(
            scan.files[0].error.as_ref().unwrap().contains("block 5"),
            "{:?}",
            scan.files[0].error
        );
        let mut catalog = Catalog::default();
        catalog.merge_scan(&scan);
        assert!(!catalog.sessions.values().next().unwrap().complete);
    }

    #[test]
    fn a_truncated_image_is_reported_with_tape_file_and_block() {
        let (lib, _) = written_library();
        let path = lib.lib.image_path("T0000");
        let offset = VirtualTape::open(&path)
            .unwrap()
            .image_offset(1, 7)
            .unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(offset + 100).unwrap();
        let err = read_back(
            Box::new(lib.lib.load("T0000").unwrap()),
            1,
            &mut NoMoreTapes,
        )
        .unwrap_err();
        match &err {
            Error::Truncated {
                tape, file, block, ..
            } => assert_eq!((tape.as_str(), *file, *block), ("T0000", 1, 7), "{err}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_lost_block_is_reported() {
        let (mut t, label) = labelled_memory("LB1", Pool::Daily, 64 << 20, 4 << 20);
        // Write on a MemoryTape kept here, via a second writer on a clone of the bytes: use
        // cut + rewrite of a stale block instead: write two sessions, then cut the first.
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        {
            let mut o = opts(Pool::Daily);
            o.position = WritePosition::AfterLabel;
            let dev: Box<dyn TapeDevice> =
                Box::new(std::mem::replace(&mut t, MemoryTape::new("tmp", 1, 0)));
            let mut none = NoMoreTapes;
            let mut w = SessionWriter::start(dev, &label, o, Box::new(&mut none), Box::new(&clock))
                .unwrap();
            for i in 0..30 {
                w.write_chunk(&chunk_id(i), &noise(i, 100_000)).unwrap();
            }
            let _ = w.finish("snap-m", b"m").unwrap();
        }
        // A tape whose file 1 lost blocks 3.. (cut) reads as truncated at block 3.
        let lib = library(1, Pool::Daily, 256 << 20, 8 << 20);
        let dev = lib.lib.load("T0000").unwrap();
        write_session(Box::new(dev), &lib.labels[0], &mut NoMoreTapes, 30, 100_000).unwrap();
        let mut mem = MemoryTape::new("T0000", 256 << 20, 8 << 20);
        // Copy the image block by block, skipping block 3 of file 1.
        let mut src = lib.lib.load("T0000").unwrap();
        let mut buf = vec![0u8; 2 << 20];
        let (mut file, mut block) = (0u64, 0u64);
        loop {
            match src.read_block(&mut buf).unwrap() {
                ReadOutcome::Block(n) => {
                    if !(file == 1 && block == 3) {
                        mem.write_block(&buf[..n]).unwrap();
                    }
                    block += 1;
                }
                ReadOutcome::Filemark => {
                    mem.write_filemarks(1).unwrap();
                    file += 1;
                    block = 0;
                }
                ReadOutcome::EndOfData => break,
            }
        }
        let err = read_back(Box::new(mem), 1, &mut NoMoreTapes).unwrap_err();
        match &err {
            Error::Damaged {
                file, block, what, ..
            } => {
                assert_eq!((*file, *block), (1, 3), "{err}");
                assert!(what.contains("lost or repeated"), "{err}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_memory_tape_bit_flip_is_found_by_the_scan() {
        let (mut t, label) = labelled_memory("MF1", Pool::Daily, 64 << 20, 4 << 20);
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        let mut none = NoMoreTapes;
        let mut w = SessionWriter::start(
            Box::new(&mut t),
            &label,
            opts(Pool::Daily),
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap();
        for i in 0..8 {
            w.write_chunk(&chunk_id(i), &noise(i, 90_000)).unwrap();
        }
        drop(w.finish("snap-m", b"m").unwrap());
        assert!(!scan_tape(&mut t).unwrap().has_errors());
        t.flip_bit(1, 2, 4000).unwrap();
        let scan = scan_tape(&mut t).unwrap();
        let err = scan.files[0].error.as_deref().unwrap();
        assert!(
            err.contains("MF1, file 1, block 2") && err.contains("CRC-32"),
            "{err}"
        );
        // Cutting the tape inside file 1 is a truncation at that block.
        t.flip_bit(1, 2, 4000).unwrap();
        t.cut_before(1, 1).unwrap();
        let scan = scan_tape(&mut t).unwrap();
        let err = scan.files[0].error.as_deref().unwrap();
        assert!(
            err.contains("truncated data on tape MF1, file 1, block 1"),
            "{err}"
        );
    }
}

mod wrong_tapes {
    use super::*;

    fn plan_for(label: &MediaLabel) -> TonightPlan {
        TonightPlan {
            night: at(2026, 1, 5, 21).date_naive(),
            pool: label.pool.clone(),
            tape: label.barcode.clone(),
            label: label.uuid,
            choice: media::Choice::Blank,
        }
    }

    fn inv(labels: &[&MediaLabel]) -> Vec<MediaInfo> {
        labels
            .iter()
            .map(|l| MediaInfo {
                label: (*l).clone(),
                last_written: None,
            })
            .collect()
    }

    #[test]
    fn each_wrong_tape_case_has_its_own_error_and_writes_nothing() {
        let policy = RotationPolicy::default();
        let now = at(2026, 1, 5, 21);
        let (mut good, label) = labelled_memory("D001", Pool::Daily, 64 << 20, 1 << 20);
        let plan = plan_for(&label);
        let inventory = inv(&[&label]);
        assert_eq!(
            media::identify_for_writing(&mut good, &plan, &inventory, &policy, now).unwrap(),
            label
        );

        // No tape.
        let mut empty = MemoryTape::new("D001", 64 << 20, 1 << 20);
        empty.eject().unwrap();
        assert!(matches!(
            media::identify_for_writing(&mut empty, &plan, &inventory, &policy, now),
            Err(Error::NoTape { .. })
        ));

        // Unlabeled.
        let mut blank = MemoryTape::new("D001", 64 << 20, 1 << 20);
        assert!(matches!(
            media::identify_for_writing(&mut blank, &plan, &inventory, &policy, now),
            Err(Error::Unlabeled { .. })
        ));

        // Write-protected.
        let (mut wp, wp_label) = labelled_memory("D001", Pool::Daily, 64 << 20, 1 << 20);
        wp.set_write_protected(true);
        let err = media::identify_for_writing(
            &mut wp,
            &plan_for(&wp_label),
            &inv(&[&wp_label]),
            &policy,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::WriteProtected { ref tape, .. } if tape == "D001"),
            "{err}"
        );

        // Another barcode.
        let (mut other, other_label) = labelled_memory("D002", Pool::Daily, 64 << 20, 1 << 20);
        let err = media::identify_for_writing(
            &mut other,
            &plan,
            &inv(&[&label, &other_label]),
            &policy,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::WrongTape { ref expected, ref found } if expected == "D001" && found == "D002"),
            "{err}"
        );

        // Same barcode, relabelled elsewhere (another UUID).
        let (mut dup, _) = labelled_memory("D001", Pool::Daily, 64 << 20, 1 << 20);
        assert!(matches!(
            media::identify_for_writing(&mut dup, &plan, &inventory, &policy, now),
            Err(Error::LabelMismatch { .. })
        ));

        // Another pool.
        let (_, weekly) = labelled_memory("W001", Pool::Weekly, 64 << 20, 1 << 20);
        let err = media::check_pool_member(&weekly, &Pool::Daily, &inv(&[&weekly]), &policy, now)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::WrongPool {
                    expected: Pool::Daily,
                    found: Pool::Weekly,
                    ..
                }
            ),
            "{err}"
        );

        // Retention not expired: written two nights ago, daily retention 7 days.
        let recent = vec![MediaInfo {
            label: label.clone(),
            last_written: Some(at(2026, 1, 3, 21)),
        }];
        let err = media::check_writable(&label, &plan, &recent, &policy, now).unwrap_err();
        match err {
            Error::RetentionNotExpired { tape, expires } => {
                assert_eq!(tape, "D001");
                assert_eq!(expires.date_naive(), at(2026, 1, 10, 12).date_naive());
            }
            other => panic!("{other}"),
        }

        // Unknown to the inventory.
        assert!(matches!(
            media::check_writable(&label, &plan, &[], &policy, now),
            Err(Error::UnknownTape { .. })
        ));
    }

    #[test]
    fn the_session_writer_refuses_wrong_tapes_before_writing() {
        let clock = ManualClock::new(at(2026, 1, 5, 21));
        let (t, label) = labelled_memory("D001", Pool::Daily, 64 << 20, 1 << 20);
        let (_, other) = labelled_memory("D002", Pool::Daily, 64 << 20, 1 << 20);
        let before = t.recorded();
        let mut none = NoMoreTapes;
        let err = SessionWriter::start(
            Box::new(t),
            &other,
            opts(Pool::Daily),
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap_err();
        assert!(matches!(err, Error::WrongTape { .. }), "{err}");

        let (mut t, label2) = labelled_memory("D003", Pool::Daily, 64 << 20, 1 << 20);
        t.set_write_protected(true);
        let mut none = NoMoreTapes;
        let err = SessionWriter::start(
            Box::new(t),
            &label2,
            opts(Pool::Daily),
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap_err();
        assert!(matches!(err, Error::WriteProtected { .. }), "{err}");

        let (t, label3) = labelled_memory("D004", Pool::Daily, 64 << 20, 1 << 20);
        let mut none = NoMoreTapes;
        let err = SessionWriter::start(
            Box::new(t),
            &label3,
            opts(Pool::Monthly),
            Box::new(&mut none),
            Box::new(&clock),
        )
        .unwrap_err();
        assert!(matches!(err, Error::WrongPool { .. }), "{err}");
        let _ = (label, before);
    }

    #[test]
    fn a_tape_under_retention_is_never_relabelled() {
        let policy = RotationPolicy::default();
        let (mut t, label) = labelled_memory("M001", Pool::Monthly, 64 << 20, 1 << 20);
        let inventory = vec![MediaInfo {
            label: label.clone(),
            last_written: Some(at(2026, 1, 2, 21)),
        }];
        let new = MediaLabel::new(Uuid::new_v4(), "M001", Pool::Daily, at(2026, 6, 1, 9));
        let err =
            label_tape(&mut t, &new, &inventory, &policy, at(2026, 6, 1, 9), true).unwrap_err();
        assert!(matches!(err, Error::RetentionNotExpired { .. }), "{err}");
        assert_eq!(format::read_label(&mut t).unwrap(), label);
        // An unknown jfiv tape needs `force`.
        let err = label_tape(&mut t, &new, &[], &policy, at(2026, 6, 1, 9), false).unwrap_err();
        assert!(matches!(err, Error::LabelMismatch { .. }), "{err}");
        // After a year the monthly tape may be relabelled.
        label_tape(&mut t, &new, &inventory, &policy, at(2027, 1, 3, 9), false).unwrap();
        assert_eq!(format::read_label(&mut t).unwrap(), new);
    }
}

mod rotation {
    use std::collections::BTreeMap;

    use chrono::Datelike;

    use super::*;

    fn pool_tapes(prefix: &str, pool: Pool, n: usize) -> Vec<MediaInfo> {
        (0..n)
            .map(|i| MediaInfo {
                label: MediaLabel::new(
                    Uuid::new_v4(),
                    format!("{prefix}{i:02}"),
                    pool.clone(),
                    at(2025, 12, 20, 9),
                ),
                last_written: None,
            })
            .collect()
    }

    /// Runs `nights` nights from 2026-01-01; returns the plans (or the first error).
    fn simulate(
        inventory: &mut [MediaInfo],
        policy: &RotationPolicy,
        nights: i64,
    ) -> Result<Vec<TonightPlan>> {
        let clock = ManualClock::new(at(2026, 1, 1, 21));
        let mut plans = Vec::new();
        for n in 0..nights {
            // Backups start between 21:00 and 01:30 (the night rolls over at noon).
            let jitter = Duration::minutes((n * 37) % 270);
            clock.set(at(2026, 1, 1, 21) + Duration::days(n) + jitter);
            let now = jfiv_audit::Clock::now(&clock);
            let plan = plan_tonight(inventory, policy, now)?;
            let info = inventory
                .iter_mut()
                .find(|m| m.label.barcode == plan.tape)
                .unwrap();
            // Invariants: right pool, never an unexpired tape.
            assert_eq!(info.label.pool, plan.pool);
            assert_eq!(plan.pool, policy.pool_for(plan.night));
            if let Some(prev) = info.last_written {
                let kept = (plan.night - policy.night_of(prev)).num_days();
                assert!(
                    kept >= i64::from(policy.retention_days(&plan.pool)),
                    "{plan:?} kept {kept} days"
                );
            }
            info.last_written = Some(now);
            plans.push(plan);
        }
        Ok(plans)
    }

    #[test]
    fn a_simulated_year_of_gfs_rotation() {
        let policy = RotationPolicy::default();
        let mut inventory = [
            pool_tapes("D", Pool::Daily, 6),
            pool_tapes("W", Pool::Weekly, 5),
            pool_tapes("M", Pool::Monthly, 13),
        ]
        .concat();
        let plans = simulate(&mut inventory, &policy, 365).unwrap();
        assert_eq!(plans.len(), 365);
        let mut per_pool: BTreeMap<String, usize> = BTreeMap::new();
        for p in &plans {
            *per_pool.entry(p.pool.to_string()).or_default() += 1;
        }
        // 2026 has 52 Fridays (Jan 2 .. Dec 25): 12 first Fridays are monthly, 40 weekly.
        assert_eq!(per_pool["monthly"], 12, "{per_pool:?}");
        assert_eq!(per_pool["weekly"], 40, "{per_pool:?}");
        assert_eq!(per_pool["daily"], 365 - 52, "{per_pool:?}");
        // Every monthly backup of the year is still on a tape at year end (none overwritten).
        let monthly_written: Vec<_> = inventory
            .iter()
            .filter(|m| m.label.pool == Pool::Monthly && m.last_written.is_some())
            .collect();
        assert_eq!(monthly_written.len(), 12);
        // Daily tapes rotate on the same weekday: each is reused every 7 days.
        let d00: Vec<_> = plans
            .iter()
            .filter(|p| p.tape == "D00")
            .map(|p| p.night)
            .collect();
        assert!(
            d00.windows(2).all(|w| (w[1] - w[0]).num_days() == 7),
            "{d00:?}"
        );
        assert!(
            plans
                .iter()
                .all(|p| p.night.weekday() != policy.weekly_day || p.pool != Pool::Daily)
        );
    }

    #[test]
    fn too_few_tapes_is_an_error_never_an_overwrite() {
        let policy = RotationPolicy::default();
        let mut inventory = [
            pool_tapes("D", Pool::Daily, 5),
            pool_tapes("W", Pool::Weekly, 5),
            pool_tapes("M", Pool::Monthly, 13),
        ]
        .concat();
        let err = simulate(&mut inventory, &policy, 365).unwrap_err();
        match err {
            Error::NoTapeAvailable { pool, earliest } => {
                assert_eq!(pool, Pool::Daily);
                assert!(earliest.is_some());
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn monthly_tapes_need_a_thirteenth_for_the_second_year() {
        let policy = RotationPolicy::default();
        let mut twelve = [
            pool_tapes("D", Pool::Daily, 6),
            pool_tapes("W", Pool::Weekly, 5),
            pool_tapes("M", Pool::Monthly, 12),
        ]
        .concat();
        let err = simulate(&mut twelve, &policy, 400).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NoTapeAvailable {
                    pool: Pool::Monthly,
                    ..
                }
            ),
            "{err}"
        );
        let mut thirteen = [
            pool_tapes("D", Pool::Daily, 6),
            pool_tapes("W", Pool::Weekly, 5),
            pool_tapes("M", Pool::Monthly, 13),
        ]
        .concat();
        assert_eq!(simulate(&mut thirteen, &policy, 400).unwrap().len(), 400);
    }

    #[test]
    fn pools_follow_the_calendar() {
        let p = RotationPolicy::default();
        assert_eq!(p.pool_for(at(2026, 1, 2, 0).date_naive()), Pool::Monthly); // first Friday
        assert_eq!(p.pool_for(at(2026, 1, 9, 0).date_naive()), Pool::Weekly);
        assert_eq!(p.pool_for(at(2026, 1, 8, 0).date_naive()), Pool::Daily);
        // 01:30 on Saturday is still Friday night's backup.
        assert_eq!(
            p.night_of(at(2026, 1, 10, 1)),
            at(2026, 1, 9, 0).date_naive()
        );
    }
}

mod locations {
    use async_trait_free::FailingSink;

    use super::*;

    mod async_trait_free {
        use jfiv_audit::{AuditEvent, AuditSink, Query, Recorded};

        /// A trail that refuses every event.
        #[derive(Debug)]
        pub(super) struct FailingSink;

        impl AuditSink for FailingSink {
            fn append<'a, 'b>(
                &'a self,
                _event: AuditEvent,
            ) -> std::pin::Pin<Box<dyn Future<Output = jfiv_audit::Result<Recorded>> + Send + 'b>>
            where
                'a: 'b,
            {
                Box::pin(async {
                    Err(jfiv_audit::Error::Closed {
                        reason: "disk full".into(),
                    })
                })
            }

            fn query<'a, 'b, 'c>(
                &'a self,
                _query: &'b Query,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = jfiv_audit::Result<Vec<Recorded>>> + Send + 'c>,
            >
            where
                'a: 'c,
                'b: 'c,
            {
                Box::pin(async { Ok(Vec::new()) })
            }
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn catalog_with(tape: &str, written: DateTime<Utc>) -> Catalog {
        let label = MediaLabel::new(Uuid::new_v4(), tape, Pool::Daily, at(2026, 1, 1, 9));
        let mut c = Catalog::default();
        c.add_label(label.clone());
        c.record_session(&SessionSummary {
            catalog: format::SessionCatalog {
                session: Uuid::new_v4(),
                snapshot: "s".into(),
                source: "jfiv-db".into(),
                host: "h".into(),
                pool: Pool::Daily,
                started: written,
                volumes: vec![format::VolumeEntry {
                    volume: 1,
                    tape: tape.into(),
                    label: label.uuid,
                    file: 1,
                    chunks: 1,
                    chunk_bytes: 1,
                    status: VolumeStatus::Complete,
                }],
                chunks: 1,
                chunk_bytes: 1,
                manifest_bytes: Some(1),
                snapshots: vec!["s".into()],
            },
            complete: true,
            finished: written,
            reason: None,
        });
        c
    }

    #[test]
    fn moves_are_audited_and_the_morning_check_finds_the_forgotten_tape() {
        let config = LocationConfig {
            offsite_room: "Local archives, bâtiment C".into(),
            ..LocationConfig::default()
        };
        let clock = Arc::new(ManualClock::new(at(2026, 3, 2, 21)));
        let sink = MemorySink::new();
        let custody = Custody {
            config: &config,
            clock: &*clock,
            sink: &sink,
            host: "jfiv-srv",
        };
        let mut reg = LocationRegister::default();
        let catalog = catalog_with("D001", at(2026, 3, 2, 22));
        rt().block_on(async {
            reg.record_move("D001", Place::Drive, "op.durand", &custody)
                .await
                .unwrap();
        });
        // 11:00 the next morning, the tape is still in the drive.
        clock.set(at(2026, 3, 3, 11));
        let alerts = check_locations(&reg, &catalog, None, &config, at(2026, 3, 3, 11));
        assert_eq!(
            alerts,
            vec![LocationAlert::StillNearServer {
                tape: "D001".into(),
                place: Place::Drive,
                written: at(2026, 3, 2, 22)
            }]
        );
        // Before the deadline it is not late yet.
        assert!(check_locations(&reg, &catalog, None, &config, at(2026, 3, 3, 8)).is_empty());
        rt().block_on(async {
            reg.record_move("D001", Place::Offsite, "op.durand", &custody)
                .await
                .unwrap();
        });
        assert!(check_locations(&reg, &catalog, None, &config, at(2026, 3, 3, 11)).is_empty());
        // Tonight's tape is offsite.
        let alerts = check_locations(&reg, &catalog, Some("D001"), &config, at(2026, 3, 3, 18));
        assert_eq!(
            alerts,
            vec![LocationAlert::NeededTonightIsOffsite {
                tape: "D001".into()
            }]
        );
        // The chain of custody is in the audit trail.
        let events = rt().block_on(sink.query(&Query::all())).unwrap();
        assert_eq!(events.len(), 2);
        assert!(
            events.iter().all(|r| r.event.action == Action::TapeMoved
                && r.event.object.as_deref() == Some("D001"))
        );
        assert_eq!(events[1].event.actor.user_id, "op.durand");
        assert!(
            events[1]
                .event
                .details
                .contains("from drive to Local archives, bâtiment C"),
            "{}",
            events[1].event.details
        );
        assert_eq!(reg.history.len(), 2);
    }

    #[test]
    fn a_move_the_trail_refuses_is_not_applied() {
        let config = LocationConfig::default();
        let clock = ManualClock::new(at(2026, 3, 2, 21));
        let custody = Custody {
            config: &config,
            clock: &clock,
            sink: &FailingSink,
            host: "h",
        };
        let mut reg = LocationRegister::default();
        let err = rt()
            .block_on(reg.record_move("D001", Place::Offsite, "op", &custody))
            .unwrap_err();
        assert!(matches!(err, Error::Audit(_)), "{err}");
        assert_eq!(reg, LocationRegister::default());
        let sink = MemorySink::new();
        let custody = Custody {
            config: &config,
            clock: &clock,
            sink: &sink,
            host: "h",
        };
        let err = rt()
            .block_on(reg.record_move("D001", Place::Offsite, " ", &custody))
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
    }

    #[test]
    fn unrecorded_tapes_are_reported_and_names_parse() {
        let config = LocationConfig::default();
        let catalog = catalog_with("D009", at(2026, 3, 1, 22));
        let alerts = check_locations(
            &LocationRegister::default(),
            &catalog,
            None,
            &config,
            at(2026, 3, 3, 11),
        );
        assert_eq!(
            alerts,
            vec![LocationAlert::Unaccounted {
                tape: "D009".into()
            }]
        );
        assert_eq!(config.parse("offsite").unwrap(), Place::Offsite);
        assert_eq!(config.parse("offsite-room").unwrap(), Place::Offsite);
        assert!(config.parse("car park").is_err());
    }
}

mod catalog_rebuild {
    use super::*;

    #[test]
    fn the_catalog_is_rebuilt_from_the_tapes_alone() {
        let lib = library(4, Pool::Daily, 4 << 20, 3 << 19);
        let inventory: Vec<MediaInfo> = lib
            .labels
            .iter()
            .map(|l| MediaInfo {
                label: l.clone(),
                last_written: None,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.json");
        let mut catalog = Catalog::default();
        for l in &lib.labels {
            catalog.add_label(l.clone());
        }
        // A spanning session on T0000.. and a small one appended on T0003.
        let mut changer = LibraryChanger::new(
            &lib.lib,
            vec!["T0001".into(), "T0002".into()],
            ChangerPurpose::Write {
                inventory,
                policy: RotationPolicy::default(),
                now: at(2026, 1, 5, 21),
            },
        );
        let big = write_session(
            Box::new(lib.lib.load("T0000").unwrap()),
            &lib.labels[0],
            &mut changer,
            60,
            100_000,
        )
        .unwrap();
        catalog.record_session(&big);
        let small = write_session(
            Box::new(lib.lib.load("T0003").unwrap()),
            &lib.labels[3],
            &mut NoMoreTapes,
            3,
            1000,
        )
        .unwrap();
        catalog.record_session(&small);
        catalog.save(&path).unwrap();
        assert_eq!(Catalog::load(&path).unwrap(), catalog);

        // The server burns: the catalog is gone.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(Catalog::load(&path).unwrap(), Catalog::default());
        let mut rebuilt = Catalog::default();
        // The tapes are scanned in any order; the spanning session is complete only once
        // all its tapes are scanned.
        for b in ["T0002", "T0003", "T0000"] {
            rebuilt.merge_scan(&scan_tape(&mut lib.lib.load(b).unwrap()).unwrap());
        }
        assert!(!rebuilt.sessions[&big.catalog.session].complete);
        rebuilt.merge_scan(&scan_tape(&mut lib.lib.load("T0001").unwrap()).unwrap());
        for s in [&big, &small] {
            let got = &rebuilt.sessions[&s.catalog.session];
            assert!(got.complete, "{got:?}");
            assert_eq!(got.catalog.volumes, s.catalog.volumes);
            assert_eq!(got.catalog.chunks, s.catalog.chunks);
            assert_eq!(got.catalog.chunk_bytes, s.catalog.chunk_bytes);
            assert_eq!(got.catalog.snapshot, s.catalog.snapshot);
        }
        assert_eq!(rebuilt.tapes.len(), 4);
        assert!(rebuilt.latest_complete("jfiv-db").is_some());

        // Restore from the rebuilt catalog alone: the first volume's tape and file.
        let first = &rebuilt.sessions[&big.catalog.session].catalog.volumes[0];
        let mut reader =
            LibraryChanger::new(&lib.lib, lib.lib.barcodes().unwrap(), ChangerPurpose::Read);
        let (chunks, manifest, _) = read_back(
            Box::new(lib.lib.load(&first.tape).unwrap()),
            first.file,
            &mut reader,
        )
        .unwrap();
        assert_eq!(chunks.len(), 60);
        assert_eq!(manifest, b"the manifest");
    }

    #[test]
    fn rewriting_a_tape_forgets_the_sessions_it_held() {
        let lib = library(1, Pool::Daily, 64 << 20, 4 << 20);
        let mut catalog = Catalog::default();
        catalog.add_label(lib.labels[0].clone());
        let a = write_session(
            Box::new(lib.lib.load("T0000").unwrap()),
            &lib.labels[0],
            &mut NoMoreTapes,
            2,
            100,
        )
        .unwrap();
        catalog.record_session(&a);
        let b = write_session(
            Box::new(lib.lib.load("T0000").unwrap()),
            &lib.labels[0],
            &mut NoMoreTapes,
            2,
            100,
        )
        .unwrap();
        catalog.record_session(&b);
        assert_eq!(catalog.sessions.len(), 1);
        assert!(catalog.sessions.contains_key(&b.catalog.session));
        let inv = catalog.inventory();
        assert_eq!(inv[0].last_written, Some(b.catalog.started));
        catalog
            .record_verify(
                b.catalog.session,
                VerifyResult {
                    at: at(2026, 1, 6, 2),
                    ok: true,
                    chunks: 2,
                    bytes: 200,
                    seconds: 0.1,
                    error: None,
                },
            )
            .unwrap();
        assert!(catalog.sessions[&b.catalog.session].verified());
        assert!(
            catalog
                .record_verify(
                    a.catalog.session,
                    VerifyResult {
                        at: at(2026, 1, 6, 2),
                        ok: true,
                        chunks: 0,
                        bytes: 0,
                        seconds: 0.0,
                        error: None
                    }
                )
                .is_err()
        );
    }
}

mod library_slots {
    use super::*;

    #[test]
    fn tapes_out_of_the_library_cannot_be_loaded() {
        let mut lib = library(2, Pool::Daily, 8 << 20, 1 << 20);
        assert_eq!(lib.lib.slot_of("T0001"), Some("slot-01"));
        lib.lib.take_out("T0001").unwrap();
        assert!(matches!(lib.lib.load("T0001"), Err(Error::NoTape { .. })));
        let reopened = VirtualLibrary::open(lib.lib.dir()).unwrap();
        assert_eq!(reopened.slot_of("T0001"), None);
        assert_eq!(reopened.barcodes().unwrap(), ["T0000", "T0001"]);
        lib.lib.put_in("T0001", "slot-01").unwrap();
        assert!(lib.lib.load("T0001").is_ok());
        assert!(lib.lib.put_in("T0000", "slot-01").is_err());
        assert!(
            lib.lib
                .add_tape(
                    "slot-00",
                    &VirtualTapeSpec {
                        barcode: "X1".into(),
                        capacity: 1 << 20,
                        early_warning_zone: 1 << 10
                    }
                )
                .is_err()
        );
    }

    #[test]
    fn write_protection_persists_in_the_image() {
        let lib = library(1, Pool::Daily, 8 << 20, 1 << 20);
        let path = lib.lib.image_path("T0000");
        VirtualTape::set_write_protected(&path, true).unwrap();
        let mut t = lib.lib.load("T0000").unwrap();
        assert!(t.status().unwrap().write_protected);
        assert!(matches!(
            t.write_block(b"x"),
            Err(Error::WriteProtected { .. })
        ));
        // Reading still works.
        assert_eq!(format::read_label(&mut t).unwrap(), lib.labels[0]);
        assert!(matches!(
            VirtualTape::open(lib.lib.dir().join("library.json")),
            Err(Error::InvalidImage { .. })
        ));
    }
}

mod owned_changer {
    use super::*;
    use crate::{BackupOptions, DirectorySource, NoProgress, RepositoryKey};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Four 1.25 MB incompressible files: more than the 3 MiB a tape takes before its early
    /// warning, less than two tapes.
    fn data(dir: &std::path::Path) -> DirectorySource {
        std::fs::create_dir_all(dir).unwrap();
        for i in 0..4u64 {
            std::fs::write(dir.join(format!("part-{i}.bin")), noise(i + 7, 1_250_000)).unwrap();
        }
        DirectorySource::new("jfiv-db").root_as(dir, "db")
    }

    fn write_candidates(lib: &Library) -> ChangerPurpose {
        ChangerPurpose::Write {
            inventory: lib
                .labels
                .iter()
                .map(|l| MediaInfo {
                    label: l.clone(),
                    last_written: None,
                })
                .collect(),
            policy: RotationPolicy::default(),
            now: at(2026, 1, 5, 21),
        }
    }

    fn job(
        lib: &Library,
        changer: OwnedLibraryChanger,
        verify_changer: OwnedLibraryChanger,
    ) -> TapeJob {
        // Owned changers are `'static`: the job can hold them without leaking a library.
        TapeJob::new(
            Box::new(lib.lib.load("T0000").unwrap()),
            lib.labels[0].clone(),
            opts(Pool::Daily),
            Box::new(changer),
            Box::new(verify_changer),
            Arc::new(ManualClock::new(at(2026, 1, 5, 21))),
        )
    }

    #[test]
    fn a_tape_job_spans_two_tapes_with_owned_changers_and_verifies_both() {
        let lib = library(3, Pool::Daily, 8 << 20, 5 << 20);
        let source = data(&lib._dir.path().join("data"));
        let shared = Arc::new(VirtualLibrary::open(lib.lib.dir()).unwrap());
        let changer = OwnedLibraryChanger::new(
            shared.clone(),
            vec!["T0001".into(), "T0002".into()],
            write_candidates(&lib),
        );
        let written = changer.journal();
        let reader =
            OwnedLibraryChanger::new(shared, lib.lib.barcodes().unwrap(), ChangerPurpose::Read);
        let read = reader.journal();
        let key = RepositoryKey::generate();
        let done = rt()
            .block_on(backup_to_tape(
                &source,
                &key,
                None,
                &BackupOptions::default(),
                &NoProgress,
                job(&lib, changer, reader),
            ))
            .unwrap();
        assert!(done.summary.complete);
        let tapes: Vec<&str> = done
            .summary
            .catalog
            .volumes
            .iter()
            .map(|v| v.tape.as_str())
            .collect();
        assert_eq!(tapes, ["T0000", "T0001"]);
        assert_eq!(written.snapshot().loaded, ["T0001"]);
        assert_eq!(written.snapshot().requested, [2]);
        assert!(written.snapshot().skipped.is_empty());
        let verification = done.verification.unwrap();
        assert!(verification.ok, "{verification:?}");
        assert_eq!(verification.chunks, done.summary.catalog.chunks);
        // The verification asked for volume 1 again, then volume 2.
        assert_eq!(read.snapshot().loaded, ["T0000", "T0001"]);
    }

    #[test]
    fn with_no_other_tape_of_the_pool_in_the_library_the_job_fails_and_the_journal_says_why() {
        let mut lib = library(2, Pool::Daily, 8 << 20, 5 << 20);
        lib.lib.take_out("T0001").unwrap();
        let source = data(&lib._dir.path().join("data"));
        let shared = Arc::new(VirtualLibrary::open(lib.lib.dir()).unwrap());
        let changer =
            OwnedLibraryChanger::new(shared.clone(), vec!["T0001".into()], write_candidates(&lib));
        let written = changer.journal();
        let reader = OwnedLibraryChanger::new(shared, vec!["T0000".into()], ChangerPurpose::Read);
        let err = rt()
            .block_on(backup_to_tape(
                &source,
                &RepositoryKey::generate(),
                None,
                &BackupOptions::default(),
                &NoProgress,
                job(&lib, changer, reader),
            ))
            .unwrap_err();
        assert!(err.to_string().contains("no tape of pool daily"), "{err}");
        let log = written.snapshot();
        assert_eq!(log.requested, [2], "volume 2 was asked for");
        assert!(log.loaded.is_empty());
        assert_eq!(log.skipped.len(), 1, "{log:?}");
        assert!(
            log.skipped[0].starts_with("T0001: ") && log.skipped[0].contains("not in the library"),
            "{log:?}"
        );
        // The borrowed changer behaves the same.
        let mut borrowed =
            LibraryChanger::new(&lib.lib, vec!["T0001".into()], ChangerPurpose::Read);
        let request = VolumeRequest {
            session: Uuid::new_v4(),
            volume: 2,
            pool: Pool::Daily,
            used: vec!["T0000".into()],
            expected: None,
        };
        assert!(borrowed.next_volume(&request).is_err());
        assert_eq!(borrowed.skipped.len(), 1);
    }
}

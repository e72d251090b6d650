//! The conformance suite of [`TapeDevice`]: every implementation passes it.
//!
//! Each check takes a device holding a **blank, writable tape** (it is overwritten) and
//! returns `Err` on a device error, panicking when the device breaks the contract. [`CHECKS`]
//! lists them by name so that a third-party implementation can run them all (feature
//! `conformance`); inside this crate a macro stamps one `#[test]` per check per device.
//!
//! On a real drive: `JFIV_TEST_TAPE=/dev/nst0 cargo test -p jfiv-backup tape::conformance`
//! runs the suite on the tape in that drive, **destroying its contents**. Without the variable
//! those tests say they are skipped.

use super::device::{ReadOutcome, TapeDevice, WriteOutcome, position_at_file};
use super::{Error, Result};

/// A check of the suite.
pub type Check = fn(&mut dyn TapeDevice) -> Result<()>;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("blank_tape_is_at_end_of_data", blank_tape_is_at_end_of_data),
    (
        "blocks_and_filemarks_read_back",
        blocks_and_filemarks_read_back,
    ),
    (
        "writing_in_the_middle_destroys_what_follows",
        writing_in_the_middle_destroys_what_follows,
    ),
    ("spacing_over_files", spacing_over_files),
    ("end_of_data_appends", end_of_data_appends),
    ("status_reports_position", status_reports_position),
    ("too_small_buffer_is_an_error", too_small_buffer_is_an_error),
    ("eject_then_load", eject_then_load),
    ("variable_block_mode", variable_block_mode),
];

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

fn expect_block(dev: &mut dyn TapeDevice, want: &[u8]) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let got = dev.read_block(&mut buf)?;
    assert_eq!(
        got,
        ReadOutcome::Block(want.len()),
        "{}: expected a block of {} bytes",
        dev.name(),
        want.len()
    );
    assert!(
        buf[..want.len()] == *want,
        "{}: block content differs",
        dev.name()
    );
    Ok(())
}

fn expect(dev: &mut dyn TapeDevice, want: ReadOutcome) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let got = dev.read_block(&mut buf)?;
    assert_eq!(got, want, "{}", dev.name());
    Ok(())
}

fn start(dev: &mut dyn TapeDevice) -> Result<()> {
    dev.rewind()?;
    dev.set_block_size(0)
}

/// A blank tape reads as end of data, at the beginning of the tape.
pub fn blank_tape_is_at_end_of_data(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    let st = dev.status()?;
    assert!(st.online && st.beginning_of_tape, "{st:?}");
    expect(dev, ReadOutcome::EndOfData)?;
    // The position does not move at end of data.
    expect(dev, ReadOutcome::EndOfData)?;
    assert!(dev.status()?.beginning_of_tape);
    Ok(())
}

/// Blocks of various sizes and filemarks read back exactly, then end of data.
pub fn blocks_and_filemarks_read_back(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    let blocks = [pattern(1, 1000), pattern(2, 256 << 10), pattern(3, 17)];
    for b in &blocks {
        assert_eq!(dev.write_block(b)?, WriteOutcome::Written);
    }
    dev.write_filemarks(1)?;
    let last = pattern(4, 4096);
    dev.write_block(&last)?;
    dev.write_filemarks(1)?;
    dev.rewind()?;
    for b in &blocks {
        expect_block(dev, b)?;
    }
    expect(dev, ReadOutcome::Filemark)?;
    expect_block(dev, &last)?;
    expect(dev, ReadOutcome::Filemark)?;
    expect(dev, ReadOutcome::EndOfData)
}

fn three_files(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    for f in 0..3u8 {
        dev.write_block(&pattern(10 * f, 100 + usize::from(f)))?;
        dev.write_block(&pattern(10 * f + 1, 200))?;
        dev.write_filemarks(1)?;
    }
    Ok(())
}

/// Writing at a position makes it the end of data.
pub fn writing_in_the_middle_destroys_what_follows(dev: &mut dyn TapeDevice) -> Result<()> {
    three_files(dev)?;
    position_at_file(dev, 1)?;
    let new = pattern(99, 333);
    dev.write_block(&new)?;
    dev.write_filemarks(1)?;
    position_at_file(dev, 1)?;
    expect_block(dev, &new)?;
    expect(dev, ReadOutcome::Filemark)?;
    expect(dev, ReadOutcome::EndOfData)?;
    dev.rewind()?;
    match dev.space_files_forward(3) {
        Err(Error::EndOfData { .. }) => {}
        other => panic!(
            "{}: spacing over a destroyed file gave {other:?}",
            dev.name()
        ),
    }
    Ok(())
}

/// Spacing forward lands at a file's start; backward, just before the filemark crossed.
pub fn spacing_over_files(dev: &mut dyn TapeDevice) -> Result<()> {
    three_files(dev)?;
    position_at_file(dev, 2)?;
    expect_block(dev, &pattern(20, 102))?;
    // Back over the filemark ending file 1: the next read is that filemark.
    dev.space_files_backward(1)?;
    expect(dev, ReadOutcome::Filemark)?;
    expect_block(dev, &pattern(20, 102))?;
    position_at_file(dev, 1)?;
    match dev.space_files_backward(2) {
        Err(Error::BeginningOfTape { .. }) => {}
        other => panic!("{}: spacing back past BOT gave {other:?}", dev.name()),
    }
    assert!(dev.status()?.beginning_of_tape);
    dev.rewind()?;
    match dev.space_files_forward(4) {
        Err(Error::EndOfData { .. }) => {}
        other => panic!("{}: spacing past EOD gave {other:?}", dev.name()),
    }
    Ok(())
}

/// Going to the end of data and writing appends a file.
pub fn end_of_data_appends(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    dev.write_block(&pattern(5, 500))?;
    dev.write_filemarks(1)?;
    dev.rewind()?;
    dev.seek_end_of_data()?;
    dev.write_block(&pattern(6, 600))?;
    dev.write_filemarks(1)?;
    dev.rewind()?;
    expect_block(dev, &pattern(5, 500))?;
    expect(dev, ReadOutcome::Filemark)?;
    expect_block(dev, &pattern(6, 600))?;
    expect(dev, ReadOutcome::Filemark)?;
    expect(dev, ReadOutcome::EndOfData)
}

/// File and block numbers, when reported, follow the position.
pub fn status_reports_position(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    dev.write_block(&pattern(7, 70))?;
    dev.write_block(&pattern(8, 80))?;
    let st = dev.status()?;
    if let (Some(f), Some(b)) = (st.file_number, st.block_number) {
        assert_eq!((f, b), (0, 2), "{st:?}");
    }
    assert!(!st.beginning_of_tape);
    dev.write_filemarks(1)?;
    let st = dev.status()?;
    assert!(st.after_filemark, "{st:?}");
    if let (Some(f), Some(b)) = (st.file_number, st.block_number) {
        assert_eq!((f, b), (1, 0), "{st:?}");
    }
    Ok(())
}

/// A block larger than the buffer is an error, not a silent truncation.
pub fn too_small_buffer_is_an_error(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    dev.write_block(&pattern(9, 1000))?;
    dev.write_filemarks(1)?;
    dev.rewind()?;
    let mut small = [0u8; 10];
    match dev.read_block(&mut small) {
        Err(Error::BlockSize { .. }) => Ok(()),
        other => panic!("{}: reading 1000 bytes into 10 gave {other:?}", dev.name()),
    }
}

/// After eject there is no tape; after load the data is still there.
pub fn eject_then_load(dev: &mut dyn TapeDevice) -> Result<()> {
    start(dev)?;
    dev.write_block(&pattern(11, 111))?;
    dev.write_filemarks(1)?;
    dev.eject()?;
    assert!(!dev.status()?.online);
    let mut buf = [0u8; 200];
    match dev.read_block(&mut buf) {
        Err(Error::NoTape { .. }) => {}
        other => panic!("{}: reading an empty drive gave {other:?}", dev.name()),
    }
    match dev.write_block(&buf) {
        Err(Error::NoTape { .. }) => {}
        other => panic!("{}: writing an empty drive gave {other:?}", dev.name()),
    }
    dev.load()?;
    dev.rewind()?;
    expect_block(dev, &pattern(11, 111))
}

/// Variable block mode is accepted and reported as 0.
pub fn variable_block_mode(dev: &mut dyn TapeDevice) -> Result<()> {
    dev.set_block_size(0)?;
    assert_eq!(dev.status()?.block_size, 0);
    assert!(dev.max_block_size() >= super::format::MAX_BLOCK_SIZE);
    Ok(())
}

/// For devices with a small, known capacity (emulated ones): blocks are written until the
/// early warning, the zone still takes blocks and filemarks, and a write past the end fails
/// and writes nothing.
pub fn early_warning_then_end_of_media(dev: &mut dyn TapeDevice, block: usize) -> Result<()> {
    start(dev)?;
    let data = pattern(12, block);
    let mut written = 0u64;
    loop {
        written += 1;
        if dev.write_block(&data)? == WriteOutcome::EarlyWarning {
            break;
        }
        assert!(written < 1_000_000, "no early warning");
    }
    assert!(dev.status()?.early_warning);
    dev.write_filemarks(1)?;
    let mut after = 0u64;
    loop {
        match dev.write_block(&data) {
            Ok(WriteOutcome::EarlyWarning) => after += 1,
            Ok(WriteOutcome::Written) => panic!("{}: Written after the early warning", dev.name()),
            Err(Error::EndOfMedia { .. }) => break,
            Err(e) => return Err(e),
        }
        assert!(after < 1_000_000, "no end of medium");
    }
    // Everything written before the failing write reads back; nothing after it.
    dev.rewind()?;
    for _ in 0..written {
        expect_block(dev, &data)?;
    }
    expect(dev, ReadOutcome::Filemark)?;
    for _ in 0..after {
        expect_block(dev, &data)?;
    }
    expect(dev, ReadOutcome::EndOfData)
}

/// Stamps one `#[test]` per check of [`CHECKS`] for a device made by `$make` (an expression
/// giving `(Box<dyn TapeDevice>, guard)`, the guard kept alive for the test).
#[cfg(test)]
macro_rules! tape_conformance_tests {
    ($make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let made: Option<(Box<dyn $crate::tape::TapeDevice>, Box<dyn std::any::Any>)> = $make;
                let Some((mut dev, _guard)) = made else {
                    eprintln!("skipped: set JFIV_TEST_TAPE=/dev/nst0 to run the tape conformance suite on a drive");
                    return;
                };
                $crate::tape::conformance::$check(&mut *dev).unwrap();
            }
        )+
    };
}

#[cfg(test)]
macro_rules! all_checks {
    ($make:expr) => {
        tape_conformance_tests!($make;
            blank_tape_is_at_end_of_data,
            blocks_and_filemarks_read_back,
            writing_in_the_middle_destroys_what_follows,
            spacing_over_files,
            end_of_data_appends,
            status_reports_position,
            too_small_buffer_is_an_error,
            eject_then_load,
            variable_block_mode,
        );
    };
}

#[cfg(test)]
mod memory_tape {
    use crate::tape::{MemoryTape, TapeDevice};

    all_checks!(Some((
        Box::new(MemoryTape::new("MEM001", 64 << 20, 1 << 20)) as Box<dyn TapeDevice>,
        Box::new(()) as Box<dyn std::any::Any>
    )));

    #[test]
    fn early_warning_then_end_of_media() {
        let mut t = MemoryTape::new("MEM002", 1 << 20, 256 << 10);
        crate::tape::conformance::early_warning_then_end_of_media(&mut t, 64 << 10).unwrap();
    }

    #[test]
    fn checks_list_is_complete() {
        assert_eq!(crate::tape::conformance::CHECKS.len(), 9);
        for (name, check) in crate::tape::conformance::CHECKS {
            let mut t = MemoryTape::new("MEM003", 64 << 20, 1 << 20);
            check(&mut t).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[cfg(test)]
mod virtual_tape {
    use crate::tape::{TapeDevice, VirtualTape, VirtualTapeSpec};

    fn make() -> (Box<dyn TapeDevice>, Box<dyn std::any::Any>) {
        let dir = tempfile::tempdir().unwrap();
        let spec = VirtualTapeSpec {
            barcode: "VT0001".into(),
            capacity: 64 << 20,
            early_warning_zone: 1 << 20,
        };
        let tape = VirtualTape::create(dir.path().join("t.vtape"), &spec).unwrap();
        (Box::new(tape), Box::new(dir))
    }

    all_checks!(Some(make()));

    #[test]
    fn early_warning_then_end_of_media() {
        let dir = tempfile::tempdir().unwrap();
        let spec = VirtualTapeSpec {
            barcode: "VT0002".into(),
            capacity: 1 << 20,
            early_warning_zone: 256 << 10,
        };
        let mut t = VirtualTape::create(dir.path().join("t.vtape"), &spec).unwrap();
        crate::tape::conformance::early_warning_then_end_of_media(&mut t, 64 << 10).unwrap();
    }
}

#[cfg(test)]
mod linux_tape {
    use crate::tape::{LinuxTape, TapeDevice};

    fn make() -> Option<(Box<dyn TapeDevice>, Box<dyn std::any::Any>)> {
        let tape = LinuxTape::from_env().unwrap()?;
        Some((Box::new(tape), Box::new(())))
    }

    all_checks!(make());
}

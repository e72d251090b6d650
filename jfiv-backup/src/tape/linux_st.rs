//! [`LinuxTape`]: a real drive through the Linux `st` driver (`/dev/nst0`, the non-rewinding
//! node), in variable block mode.
//!
//! The ioctl structures and numbers are defined here from `<linux/mtio.h>` (Linux UAPI,
//! `include/uapi/linux/mtio.h`), with their sizes checked at compile time, rather than pulled
//! from a crate for a handful of constants.
//!
//! End of medium, as `Documentation/scsi/st.rst` describes it: when the early warning is
//! met, the write in progress completes; the next write fails with `ENOSPC`; one more write is
//! then allowed (to write a trailer), and after that writes alternate between `ENOSPC` and
//! success until the physical end. [`LinuxTape::write_block`](super::TapeDevice::write_block)
//! also reads `GMT_EOT` after each write, so the early warning is normally reported on the block
//! that crossed it.
//!
//! This module cannot be tested without a drive: the conformance suite runs on it when
//! `JFIV_TEST_TAPE=/dev/nst0` is set. It has not been run against real hardware yet.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::device::{ReadOutcome, TapeDevice, TapeStatus, WriteOutcome};
use super::format::MAX_BLOCK_SIZE;
use super::{Error, Result};

/// `struct mtop` of `<linux/mtio.h>`: `{ short mt_op; int mt_count; }`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct MtOp {
    mt_op: libc::c_short,
    mt_count: libc::c_int,
}

/// `struct mtget` of `<linux/mtio.h>`: five `long`s and two `__kernel_daddr_t` (`int`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct MtGet {
    mt_type: libc::c_long,
    mt_resid: libc::c_long,
    mt_dsreg: libc::c_long,
    mt_gstat: libc::c_long,
    mt_erreg: libc::c_long,
    mt_fileno: libc::c_int,
    mt_blkno: libc::c_int,
}

const _: () = assert!(size_of::<MtOp>() == 8);
const _: () =
    assert!(size_of::<MtGet>() == 5 * size_of::<libc::c_long>() + 2 * size_of::<libc::c_int>());

/// `_IOC(dir, 'm', nr, size)` with the generic Linux encoding (x86, arm, riscv...).
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'm' as u64) << 8) | nr
}
/// `MTIOCTOP = _IOW('m', 1, struct mtop)`.
const MTIOCTOP: u64 = ioc(1, 1, size_of::<MtOp>());
/// `MTIOCGET = _IOR('m', 2, struct mtget)`.
const MTIOCGET: u64 = ioc(2, 2, size_of::<MtGet>());

// `mt_op` values.
const MTFSF: libc::c_short = 1;
const MTBSF: libc::c_short = 2;
const MTWEOF: libc::c_short = 5;
const MTREW: libc::c_short = 6;
const MTOFFL: libc::c_short = 7;
const MTEOM: libc::c_short = 12;
const MTSETBLK: libc::c_short = 20;
const MTLOAD: libc::c_short = 30;

// `mt_gstat` bits (`GMT_*`).
const GMT_EOF: libc::c_long = 0x8000_0000;
const GMT_BOT: libc::c_long = 0x4000_0000;
const GMT_EOT: libc::c_long = 0x2000_0000;
const GMT_EOD: libc::c_long = 0x0800_0000;
const GMT_WR_PROT: libc::c_long = 0x0400_0000;
const GMT_ONLINE: libc::c_long = 0x0100_0000;
/// `MT_ST_BLKSIZE_MASK`: the block size in `mt_dsreg`.
const MT_ST_BLKSIZE_MASK: libc::c_long = 0x00ff_ffff;

/// A tape drive driven through the Linux `st` driver.
#[derive(Debug)]
pub struct LinuxTape {
    path: PathBuf,
    file: File,
    /// `ENOSPC` was met: the early-warning zone is reached.
    early_warning: bool,
}

impl LinuxTape {
    /// Opens the drive at `path` (use the non-rewinding node, `/dev/nstN`), without requiring a
    /// tape (`O_NONBLOCK`), read-write when possible.
    ///
    /// # Errors
    /// [`Error::Io`] when the node cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
        };
        let file = match open(true) {
            Ok(f) => f,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EROFS | libc::EACCES)) => {
                open(false).map_err(|e| Error::io(path.display().to_string(), "open", e))?
            }
            Err(e) => return Err(Error::io(path.display().to_string(), "open", e)),
        };
        Ok(Self {
            path,
            file,
            early_warning: false,
        })
    }

    /// Opens the drive named by the environment variable `JFIV_TEST_TAPE`, if set.
    ///
    /// # Errors
    /// As [`open`](LinuxTape::open).
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var_os("JFIV_TEST_TAPE") {
            Some(p) => Self::open(p).map(Some),
            None => Ok(None),
        }
    }

    fn dev(&self) -> String {
        self.path.display().to_string()
    }

    fn mtop(&self, op: libc::c_short, count: libc::c_int, name: &'static str) -> io::Result<()> {
        let arg = MtOp {
            mt_op: op,
            mt_count: count,
        };
        // SAFETY: `self.file` is an open descriptor for the lifetime of the call; MTIOCTOP
        // reads exactly one `struct mtop`, whose layout `MtOp` reproduces (size asserted above),
        // from a pointer to a live local value. The kernel does not keep the pointer.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), MTIOCTOP as _, &arg as *const MtOp) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{name}: {e}")))
        } else {
            Ok(())
        }
    }

    fn mtget(&self) -> io::Result<MtGet> {
        let mut out = MtGet::default();
        // SAFETY: MTIOCGET writes exactly one `struct mtget` (layout reproduced by `MtGet`,
        // size asserted above) to the pointer, which points to a live, writable, properly
        // aligned local value; the descriptor is open for the duration of the call.
        let rc =
            unsafe { libc::ioctl(self.file.as_raw_fd(), MTIOCGET as _, &mut out as *mut MtGet) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(out)
        }
    }

    fn map(&self, op: &'static str, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(libc::ENOMEDIUM) => Error::NoTape { device: self.dev() },
            Some(libc::EROFS | libc::EACCES) => Error::WriteProtected {
                device: self.dev(),
                tape: "?".into(),
            },
            _ => Error::io(self.dev(), op, e),
        }
    }

    fn position(&self) -> (u64, u64) {
        self.mtget()
            .map(|g| {
                (
                    u64::try_from(g.mt_fileno).unwrap_or(0),
                    u64::try_from(g.mt_blkno).unwrap_or(0),
                )
            })
            .unwrap_or_default()
    }

    fn end_of_media(&self) -> Error {
        let (file, block) = self.position();
        Error::EndOfMedia {
            tape: self.dev(),
            file,
            block,
        }
    }

    fn ready(&self) -> Result<MtGet> {
        let g = self.mtget().map_err(|e| self.map("MTIOCGET", e))?;
        if g.mt_gstat & GMT_ONLINE == 0 {
            return Err(Error::NoTape { device: self.dev() });
        }
        Ok(g)
    }
}

impl TapeDevice for LinuxTape {
    fn name(&self) -> String {
        self.dev()
    }

    fn write_block(&mut self, data: &[u8]) -> Result<WriteOutcome> {
        if data.is_empty() || data.len() > self.max_block_size() {
            return Err(Error::BlockSize {
                tape: self.dev(),
                size: data.len(),
                limit: self.max_block_size(),
            });
        }
        let g = self.ready()?;
        if g.mt_gstat & GMT_WR_PROT != 0 {
            return Err(Error::WriteProtected {
                device: self.dev(),
                tape: "?".into(),
            });
        }
        let mut attempts = 0;
        loop {
            match self.file.write(data) {
                Ok(n) if n == data.len() => break,
                // In variable block mode a block is written whole or not at all; a short count
                // means the physical end of the medium.
                Ok(_) => return Err(self.end_of_media()),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    // First ENOSPC: early warning; the driver lets the next write through.
                    attempts += 1;
                    if attempts > 1 {
                        return Err(self.end_of_media());
                    }
                    self.early_warning = true;
                }
                Err(e) => return Err(self.map("write", e)),
            }
        }
        let eot = self.mtget().is_ok_and(|g| g.mt_gstat & GMT_EOT != 0);
        if eot || self.early_warning {
            self.early_warning = true;
            Ok(WriteOutcome::EarlyWarning)
        } else {
            Ok(WriteOutcome::Written)
        }
    }

    fn write_filemarks(&mut self, count: u32) -> Result<()> {
        self.ready()?;
        let count = libc::c_int::try_from(count).map_err(|_| Error::Config {
            reason: "too many filemarks".into(),
        })?;
        self.mtop(MTWEOF, count, "MTWEOF")
            .map_err(|e| self.map("MTWEOF", e))
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.ready()?;
        match self.file.read(buf) {
            Ok(0) => {
                // 0 bytes: a filemark was crossed, or the end of data was met.
                let g = self.mtget().map_err(|e| self.map("MTIOCGET", e))?;
                if g.mt_gstat & GMT_EOD != 0 && g.mt_gstat & GMT_EOF == 0 {
                    Ok(ReadOutcome::EndOfData)
                } else {
                    Ok(ReadOutcome::Filemark)
                }
            }
            Ok(n) => Ok(ReadOutcome::Block(n)),
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => Err(Error::BlockSize {
                tape: self.dev(),
                size: buf.len() + 1,
                limit: buf.len(),
            }),
            Err(e) => {
                // Reading past the end of data gives EIO with GMT_EOD on many drives.
                if self.mtget().is_ok_and(|g| g.mt_gstat & GMT_EOD != 0) {
                    Ok(ReadOutcome::EndOfData)
                } else {
                    Err(self.map("read", e))
                }
            }
        }
    }

    fn rewind(&mut self) -> Result<()> {
        self.ready()?;
        self.early_warning = false;
        self.mtop(MTREW, 1, "MTREW")
            .map_err(|e| self.map("MTREW", e))
    }

    fn space_files_forward(&mut self, count: u32) -> Result<()> {
        self.ready()?;
        let count = libc::c_int::try_from(count).unwrap_or(libc::c_int::MAX);
        self.mtop(MTFSF, count, "MTFSF")
            .map_err(|e| match self.mtget() {
                Ok(g) if g.mt_gstat & GMT_EOD != 0 => Error::EndOfData {
                    tape: self.dev(),
                    file: u64::try_from(g.mt_fileno).unwrap_or(0),
                },
                _ => self.map("MTFSF", e),
            })
    }

    fn space_files_backward(&mut self, count: u32) -> Result<()> {
        self.ready()?;
        let count = libc::c_int::try_from(count).unwrap_or(libc::c_int::MAX);
        self.mtop(MTBSF, count, "MTBSF")
            .map_err(|e| match self.mtget() {
                Ok(g) if g.mt_gstat & GMT_BOT != 0 => Error::BeginningOfTape { tape: self.dev() },
                _ => self.map("MTBSF", e),
            })
    }

    fn seek_end_of_data(&mut self) -> Result<()> {
        self.ready()?;
        self.mtop(MTEOM, 1, "MTEOM")
            .map_err(|e| self.map("MTEOM", e))
    }

    fn status(&mut self) -> Result<TapeStatus> {
        let g = self.mtget().map_err(|e| self.map("MTIOCGET", e))?;
        let online = g.mt_gstat & GMT_ONLINE != 0;
        Ok(TapeStatus {
            online,
            beginning_of_tape: g.mt_gstat & GMT_BOT != 0,
            after_filemark: g.mt_gstat & GMT_EOF != 0,
            end_of_data: g.mt_gstat & GMT_EOD != 0,
            early_warning: g.mt_gstat & GMT_EOT != 0 || self.early_warning,
            write_protected: g.mt_gstat & GMT_WR_PROT != 0,
            file_number: u64::try_from(g.mt_fileno).ok(),
            block_number: u64::try_from(g.mt_blkno).ok(),
            block_size: u32::try_from(g.mt_dsreg & MT_ST_BLKSIZE_MASK).unwrap_or(0),
            barcode: None,
        })
    }

    fn load(&mut self) -> Result<()> {
        self.mtop(MTLOAD, 1, "MTLOAD")
            .map_err(|e| self.map("MTLOAD", e))
    }

    fn eject(&mut self) -> Result<()> {
        self.ready()?;
        self.early_warning = false;
        self.mtop(MTOFFL, 1, "MTOFFL")
            .map_err(|e| self.map("MTOFFL", e))
    }

    fn set_block_size(&mut self, size: u32) -> Result<()> {
        self.ready()?;
        let size = libc::c_int::try_from(size).map_err(|_| Error::Config {
            reason: format!("block size {size} too large"),
        })?;
        self.mtop(MTSETBLK, size, "MTSETBLK")
            .map_err(|e| self.map("MTSETBLK", e))
    }

    fn max_block_size(&self) -> usize {
        MAX_BLOCK_SIZE
    }
}

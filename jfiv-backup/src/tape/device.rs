//! The [`TapeDevice`] trait: one positioned, exclusive tape drive.

use std::fmt::Debug;

use super::Result;

/// What a successful block write says about the position on the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written; the end of the medium is not near.
    Written,
    /// Written, but the early-warning zone has been reached: the writer must close what it is
    /// writing (a trailer and a filemark still fit) and continue on another tape.
    EarlyWarning,
}

/// What a block read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A block of this many bytes was read into the start of the buffer.
    Block(usize),
    /// A filemark: the end of the current tape file. The position is now at the start of the
    /// next file.
    Filemark,
    /// The end of the recorded data: nothing was read and the position did not change.
    EndOfData,
}

/// The state of a drive and its tape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapeStatus {
    /// A tape is loaded and the drive is ready.
    pub online: bool,
    /// At the beginning of the tape.
    pub beginning_of_tape: bool,
    /// Just after a filemark.
    pub after_filemark: bool,
    /// At the end of the recorded data.
    pub end_of_data: bool,
    /// In the early-warning zone before the physical end of the medium.
    pub early_warning: bool,
    /// The tape is write-protected.
    pub write_protected: bool,
    /// Current tape file number (0 for the first file), when the drive knows it.
    pub file_number: Option<u64>,
    /// Current block number within the file, when the drive knows it.
    pub block_number: Option<u64>,
    /// The fixed block size, or 0 in variable block mode.
    pub block_size: u32,
    /// The cartridge's barcode, when the device knows it (a library, a virtual tape).
    pub barcode: Option<String>,
}

/// One tape drive with its tape: a positioned, exclusive, sequential device.
///
/// # Contract
/// - The tape is a sequence of blocks and filemarks followed by the end of data (EOD). A
///   *tape file* is the blocks between two filemarks; file 0 starts at the beginning of the tape.
/// - Writing (a block or a filemark) at a position **destroys everything after it**: the written
///   item becomes the last one before EOD. There is no update in place.
/// - [`write_block`](TapeDevice::write_block) writes exactly one block of `data.len()` bytes
///   (variable block mode), or fails and writes nothing. When it returns
///   [`WriteOutcome::EarlyWarning`] the block was written but the tape is near its end: the
///   caller still has room for a few blocks and filemarks to close cleanly (the early-warning
///   zone), and must then change tapes. A write beyond the physical end fails with
///   [`Error::EndOfMedia`](super::Error::EndOfMedia) and writes nothing.
/// - Written data is in the drive's buffer; [`write_filemarks`](TapeDevice::write_filemarks)
///   flushes it to the medium. Only data followed by a filemark that returned `Ok` is
///   durable.
/// - [`read_block`](TapeDevice::read_block) reads the next block whole. A filemark is returned
///   as [`ReadOutcome::Filemark`] (and skipped); at EOD [`ReadOutcome::EndOfData`] is returned
///   and the position does not move. A block larger than the buffer gives
///   [`Error::BlockSize`](super::Error::BlockSize), and the block is skipped.
/// - [`space_files_forward(n)`](TapeDevice::space_files_forward) moves past the next `n`
///   filemarks, to the start of a later file; meeting EOD first is
///   [`Error::EndOfData`](super::Error::EndOfData), positioned at EOD.
///   [`space_files_backward(n)`](TapeDevice::space_files_backward) moves backward over `n`
///   filemarks and stops just *before* the last one crossed (at the end of that file, like
///   `MTBSF`); meeting the beginning of tape first is
///   [`Error::BeginningOfTape`](super::Error::BeginningOfTape), positioned at BOT.
/// - With no tape loaded every operation but [`status`](TapeDevice::status) and
///   [`load`](TapeDevice::load) fails with [`Error::NoTape`](super::Error::NoTape); writing a
///   write-protected tape fails with [`Error::WriteProtected`](super::Error::WriteProtected)
///   and writes nothing.
/// - [`eject`](TapeDevice::eject) rewinds and unloads; after it the drive has no tape.
pub trait TapeDevice: Debug + Send + Sync {
    /// A short name of the device for messages (`/dev/nst0`, the image file, the barcode).
    fn name(&self) -> String;

    /// Writes one block.
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape), [`WriteProtected`](super::Error::WriteProtected),
    /// [`EndOfMedia`](super::Error::EndOfMedia), [`BlockSize`](super::Error::BlockSize) when
    /// the block exceeds [`max_block_size`](TapeDevice::max_block_size), I/O errors.
    fn write_block(&mut self, data: &[u8]) -> Result<WriteOutcome>;

    /// Writes `count` filemarks and flushes the drive's buffer to the medium.
    ///
    /// # Errors
    /// As [`write_block`](TapeDevice::write_block).
    fn write_filemarks(&mut self, count: u32) -> Result<()>;

    /// Reads the next block into `buf`.
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape), [`BlockSize`](super::Error::BlockSize) when the block
    /// does not fit in `buf`, I/O errors.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome>;

    /// Rewinds to the beginning of the tape.
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape), I/O errors.
    fn rewind(&mut self) -> Result<()>;

    /// Spaces forward over `count` filemarks (see the contract).
    ///
    /// # Errors
    /// [`EndOfData`](super::Error::EndOfData), [`NoTape`](super::Error::NoTape), I/O errors.
    fn space_files_forward(&mut self, count: u32) -> Result<()>;

    /// Spaces backward over `count` filemarks (see the contract).
    ///
    /// # Errors
    /// [`BeginningOfTape`](super::Error::BeginningOfTape), [`NoTape`](super::Error::NoTape),
    /// I/O errors.
    fn space_files_backward(&mut self, count: u32) -> Result<()>;

    /// Goes to the end of the recorded data, where the next file can be appended.
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape), I/O errors.
    fn seek_end_of_data(&mut self) -> Result<()>;

    /// The drive's and tape's state.
    ///
    /// # Errors
    /// I/O errors talking to the drive (an empty drive is a status, not an error).
    fn status(&mut self) -> Result<TapeStatus>;

    /// Loads the tape in the drive (a no-op if it is loaded).
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape) when there is nothing to load, I/O errors.
    fn load(&mut self) -> Result<()>;

    /// Rewinds and unloads the tape.
    ///
    /// # Errors
    /// [`NoTape`](super::Error::NoTape), I/O errors.
    fn eject(&mut self) -> Result<()>;

    /// Sets the block size: 0 for variable block mode (what jfiv uses).
    ///
    /// # Errors
    /// [`Config`](super::Error::Config) for a size the device refuses, I/O errors.
    fn set_block_size(&mut self, size: u32) -> Result<()>;

    /// The largest block the device reads and writes.
    fn max_block_size(&self) -> usize;
}

/// Moves to the start of tape file `file` (0 is the first file), from anywhere.
///
/// # Errors
/// [`EndOfData`](super::Error::EndOfData) when the tape has fewer files; device errors.
pub fn position_at_file(device: &mut dyn TapeDevice, file: u64) -> Result<()> {
    device.rewind()?;
    let mut left = file;
    while left > 0 {
        let step = u32::try_from(left).unwrap_or(u32::MAX);
        device.space_files_forward(step)?;
        left -= u64::from(step);
    }
    Ok(())
}

impl<T: TapeDevice + ?Sized> TapeDevice for &mut T {
    fn name(&self) -> String {
        (**self).name()
    }
    fn write_block(&mut self, data: &[u8]) -> Result<WriteOutcome> {
        (**self).write_block(data)
    }
    fn write_filemarks(&mut self, count: u32) -> Result<()> {
        (**self).write_filemarks(count)
    }
    fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        (**self).read_block(buf)
    }
    fn rewind(&mut self) -> Result<()> {
        (**self).rewind()
    }
    fn space_files_forward(&mut self, count: u32) -> Result<()> {
        (**self).space_files_forward(count)
    }
    fn space_files_backward(&mut self, count: u32) -> Result<()> {
        (**self).space_files_backward(count)
    }
    fn seek_end_of_data(&mut self) -> Result<()> {
        (**self).seek_end_of_data()
    }
    fn status(&mut self) -> Result<TapeStatus> {
        (**self).status()
    }
    fn load(&mut self) -> Result<()> {
        (**self).load()
    }
    fn eject(&mut self) -> Result<()> {
        (**self).eject()
    }
    fn set_block_size(&mut self, size: u32) -> Result<()> {
        (**self).set_block_size(size)
    }
    fn max_block_size(&self) -> usize {
        (**self).max_block_size()
    }
}

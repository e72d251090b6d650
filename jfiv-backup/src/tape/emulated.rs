//! The tape semantics shared by the emulated devices ([`MemoryTape`](super::MemoryTape) and
//! [`VirtualTape`](super::VirtualTape)): positions, filemarks, end of data, capacity and the
//! early-warning zone. Only where the bytes live differs (a `Vec`, or an image file).

use std::fmt::Debug;
use std::io;

use super::device::{ReadOutcome, TapeStatus, WriteOutcome};
use super::{Error, Result};

/// The largest block an emulated device accepts (16 MiB, well above jfiv's 1 MiB).
pub(crate) const EMULATED_MAX_BLOCK: usize = 16 << 20;

/// One item on an emulated tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item {
    /// A data block, `len` bytes stored at `offset` in the backing store.
    Block { offset: u64, len: u32 },
    /// A filemark, whose record starts at `offset` in the backing store.
    Filemark { offset: u64 },
}

impl Item {
    fn offset(self) -> u64 {
        match self {
            Item::Block { offset, .. } | Item::Filemark { offset } => offset,
        }
    }
}

/// Where an emulated tape keeps its bytes.
pub(crate) trait Backing: Debug + Send + Sync {
    /// Drops the items from `index` on (`items[index]` still present).
    fn truncate(&mut self, index: usize, items: &[Item]) -> io::Result<()>;
    /// Appends a block, returns its item.
    fn append_block(&mut self, data: &[u8]) -> io::Result<Item>;
    /// Appends a filemark, returns its item.
    fn append_filemark(&mut self) -> io::Result<Item>;
    /// Makes everything appended durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Reads the block `item` into `buf[..len]`.
    fn read(&self, item: Item, buf: &mut [u8]) -> io::Result<()>;
}

/// The emulated drive with its cartridge.
#[derive(Debug)]
pub(crate) struct Emulated<B> {
    pub(crate) name: String,
    pub(crate) barcode: Option<String>,
    pub(crate) items: Vec<Item>,
    pub(crate) pos: usize,
    pub(crate) capacity: u64,
    pub(crate) early_warning_zone: u64,
    pub(crate) write_protected: bool,
    pub(crate) loaded: bool,
    pub(crate) block_size: u32,
    /// Data bytes recorded (sum of the block lengths), kept up to date on every write.
    pub(crate) used: u64,
    pub(crate) backing: B,
}

impl<B: Backing> Emulated<B> {
    fn tape(&self) -> String {
        self.barcode.clone().unwrap_or_else(|| self.name.clone())
    }

    /// Data bytes before item `index` (O(1) at the end of data).
    fn used_before(&self, index: usize) -> u64 {
        if index >= self.items.len() {
            return self.used;
        }
        self.items[..index]
            .iter()
            .map(|i| match i {
                Item::Block { len, .. } => u64::from(*len),
                Item::Filemark { .. } => 0,
            })
            .sum()
    }

    fn ready(&self) -> Result<()> {
        if self.loaded {
            Ok(())
        } else {
            Err(Error::NoTape {
                device: self.name.clone(),
            })
        }
    }

    fn io(&self, op: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |e| Error::io(self.name.clone(), op, e)
    }

    /// File and block number of position `pos`.
    fn file_block(&self, pos: usize) -> (u64, u64) {
        let mut file = 0;
        let mut block = 0;
        for item in &self.items[..pos] {
            match item {
                Item::Filemark { .. } => {
                    file += 1;
                    block = 0;
                }
                Item::Block { .. } => block += 1,
            }
        }
        (file, block)
    }

    fn prepare_write(&mut self, len: u64) -> Result<u64> {
        self.ready()?;
        if self.write_protected {
            return Err(Error::WriteProtected {
                device: self.name.clone(),
                tape: self.tape(),
            });
        }
        let before = self.used_before(self.pos);
        if before + len > self.capacity {
            let (file, block) = self.file_block(self.pos);
            return Err(Error::EndOfMedia {
                tape: self.tape(),
                file,
                block,
            });
        }
        if self.pos < self.items.len() {
            self.backing
                .truncate(self.pos, &self.items)
                .map_err(self.io("truncate"))?;
            self.items.truncate(self.pos);
            self.used = before;
        }
        Ok(before + len)
    }

    pub(crate) fn write_block(&mut self, data: &[u8]) -> Result<WriteOutcome> {
        if data.len() > EMULATED_MAX_BLOCK || data.is_empty() {
            return Err(Error::BlockSize {
                tape: self.tape(),
                size: data.len(),
                limit: EMULATED_MAX_BLOCK,
            });
        }
        let after = self.prepare_write(data.len() as u64)?;
        let item = self.backing.append_block(data).map_err(self.io("write"))?;
        self.items.push(item);
        self.used = after;
        self.pos = self.items.len();
        if after >= self.capacity.saturating_sub(self.early_warning_zone) {
            Ok(WriteOutcome::EarlyWarning)
        } else {
            Ok(WriteOutcome::Written)
        }
    }

    pub(crate) fn write_filemarks(&mut self, count: u32) -> Result<()> {
        self.prepare_write(0)?;
        for _ in 0..count {
            let item = self
                .backing
                .append_filemark()
                .map_err(self.io("write filemark"))?;
            self.items.push(item);
        }
        self.pos = self.items.len();
        self.backing.flush().map_err(self.io("flush"))
    }

    pub(crate) fn read_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.ready()?;
        let Some(&item) = self.items.get(self.pos) else {
            return Ok(ReadOutcome::EndOfData);
        };
        self.pos += 1;
        match item {
            Item::Filemark { .. } => Ok(ReadOutcome::Filemark),
            Item::Block { len, .. } => {
                let len = len as usize;
                if len > buf.len() {
                    return Err(Error::BlockSize {
                        tape: self.tape(),
                        size: len,
                        limit: buf.len(),
                    });
                }
                self.backing
                    .read(item, &mut buf[..len])
                    .map_err(self.io("read"))?;
                Ok(ReadOutcome::Block(len))
            }
        }
    }

    pub(crate) fn rewind(&mut self) -> Result<()> {
        self.ready()?;
        self.pos = 0;
        Ok(())
    }

    pub(crate) fn space_files_forward(&mut self, count: u32) -> Result<()> {
        self.ready()?;
        let mut left = count;
        while left > 0 {
            match self.items.get(self.pos) {
                None => {
                    let (file, _) = self.file_block(self.pos);
                    return Err(Error::EndOfData {
                        tape: self.tape(),
                        file,
                    });
                }
                Some(Item::Filemark { .. }) => left -= 1,
                Some(Item::Block { .. }) => {}
            }
            self.pos += 1;
        }
        Ok(())
    }

    pub(crate) fn space_files_backward(&mut self, count: u32) -> Result<()> {
        self.ready()?;
        let mut left = count;
        while left > 0 {
            if self.pos == 0 {
                return Err(Error::BeginningOfTape { tape: self.tape() });
            }
            self.pos -= 1;
            if matches!(self.items[self.pos], Item::Filemark { .. }) {
                left -= 1;
            }
        }
        Ok(())
    }

    pub(crate) fn seek_end_of_data(&mut self) -> Result<()> {
        self.ready()?;
        self.pos = self.items.len();
        Ok(())
    }

    pub(crate) fn status(&self) -> TapeStatus {
        if !self.loaded {
            return TapeStatus {
                barcode: self.barcode.clone(),
                ..TapeStatus::default()
            };
        }
        let (file, block) = self.file_block(self.pos);
        let used = self.used_before(self.pos);
        TapeStatus {
            online: true,
            beginning_of_tape: self.pos == 0,
            after_filemark: self.pos > 0
                && matches!(self.items[self.pos - 1], Item::Filemark { .. }),
            end_of_data: self.pos == self.items.len(),
            early_warning: used >= self.capacity.saturating_sub(self.early_warning_zone),
            write_protected: self.write_protected,
            file_number: Some(file),
            block_number: Some(block),
            block_size: self.block_size,
            barcode: self.barcode.clone(),
        }
    }

    pub(crate) fn set_block_size(&mut self, size: u32) -> Result<()> {
        self.ready()?;
        if size != 0 {
            return Err(Error::Config {
                reason: format!(
                    "emulated tapes support variable block mode (0) only, not {size}-byte blocks"
                ),
            });
        }
        self.block_size = size;
        Ok(())
    }

    /// Bytes of data recorded on the tape.
    pub(crate) fn recorded(&self) -> u64 {
        self.used
    }

    /// Sums the block lengths of `items`.
    pub(crate) fn sum_blocks(items: &[Item]) -> u64 {
        items
            .iter()
            .map(|i| match i {
                Item::Block { len, .. } => u64::from(*len),
                Item::Filemark { .. } => 0,
            })
            .sum()
    }

    /// Offset in the backing store where item `index` starts (the store's size for `len`).
    #[allow(dead_code)]
    pub(crate) fn offset_of(&self, index: usize, end: u64) -> u64 {
        self.items.get(index).map_or(end, |i| i.offset())
    }
}

/// Implements [`TapeDevice`](super::TapeDevice) for a wrapper around `Emulated` in `self.inner`.
macro_rules! delegate_tape_device {
    ($ty:ty) => {
        impl $crate::tape::TapeDevice for $ty {
            fn name(&self) -> String {
                self.inner.name.clone()
            }
            fn write_block(
                &mut self,
                data: &[u8],
            ) -> $crate::tape::Result<$crate::tape::WriteOutcome> {
                self.inner.write_block(data)
            }
            fn write_filemarks(&mut self, count: u32) -> $crate::tape::Result<()> {
                self.inner.write_filemarks(count)
            }
            fn read_block(
                &mut self,
                buf: &mut [u8],
            ) -> $crate::tape::Result<$crate::tape::ReadOutcome> {
                self.inner.read_block(buf)
            }
            fn rewind(&mut self) -> $crate::tape::Result<()> {
                self.inner.rewind()
            }
            fn space_files_forward(&mut self, count: u32) -> $crate::tape::Result<()> {
                self.inner.space_files_forward(count)
            }
            fn space_files_backward(&mut self, count: u32) -> $crate::tape::Result<()> {
                self.inner.space_files_backward(count)
            }
            fn seek_end_of_data(&mut self) -> $crate::tape::Result<()> {
                self.inner.seek_end_of_data()
            }
            fn status(&mut self) -> $crate::tape::Result<$crate::tape::TapeStatus> {
                Ok(self.inner.status())
            }
            fn load(&mut self) -> $crate::tape::Result<()> {
                self.load_impl()
            }
            fn eject(&mut self) -> $crate::tape::Result<()> {
                self.eject_impl()
            }
            fn set_block_size(&mut self, size: u32) -> $crate::tape::Result<()> {
                self.inner.set_block_size(size)
            }
            fn max_block_size(&self) -> usize {
                $crate::tape::emulated::EMULATED_MAX_BLOCK
            }
        }
    };
}
pub(crate) use delegate_tape_device;

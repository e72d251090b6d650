//! [`MemoryTape`]: an emulated tape in memory, for tests and doctests.

use std::io;

use super::emulated::{Backing, Emulated, Item, delegate_tape_device};
use super::{Error, Result};

#[derive(Debug, Default)]
struct MemoryImage {
    /// Block contents, indexed by `Item::Block::offset` (filemarks hold an empty entry).
    data: Vec<Vec<u8>>,
}

impl Backing for MemoryImage {
    fn truncate(&mut self, index: usize, items: &[Item]) -> io::Result<()> {
        let at = match items[index] {
            Item::Block { offset, .. } | Item::Filemark { offset } => offset,
        };
        self.data
            .truncate(usize::try_from(at).unwrap_or(usize::MAX));
        Ok(())
    }

    fn append_block(&mut self, data: &[u8]) -> io::Result<Item> {
        self.data.push(data.to_vec());
        Ok(Item::Block {
            offset: (self.data.len() - 1) as u64,
            len: u32::try_from(data.len()).map_err(io::Error::other)?,
        })
    }

    fn append_filemark(&mut self) -> io::Result<Item> {
        self.data.push(Vec::new());
        Ok(Item::Filemark {
            offset: (self.data.len() - 1) as u64,
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn read(&self, item: Item, buf: &mut [u8]) -> io::Result<()> {
        let Item::Block { offset, .. } = item else {
            return Err(io::Error::other("not a block"));
        };
        let block = self
            .data
            .get(usize::try_from(offset).map_err(io::Error::other)?)
            .ok_or_else(|| io::Error::other("block out of range"))?;
        buf.copy_from_slice(block);
        Ok(())
    }
}

/// A tape held in memory, with the exact semantics of the [`TapeDevice`](super::TapeDevice)
/// contract: blocks, filemarks, end of data, a capacity with an early-warning zone, write
/// protection and a barcode.
#[derive(Debug)]
pub struct MemoryTape {
    inner: Emulated<MemoryImage>,
}

impl MemoryTape {
    /// A blank, loaded tape of `capacity` bytes whose last `early_warning_zone` bytes are the
    /// early-warning zone.
    pub fn new(barcode: impl Into<String>, capacity: u64, early_warning_zone: u64) -> Self {
        let barcode = barcode.into();
        Self {
            inner: Emulated {
                name: format!("memory:{barcode}"),
                barcode: Some(barcode),
                items: Vec::new(),
                pos: 0,
                capacity,
                early_warning_zone,
                write_protected: false,
                loaded: true,
                block_size: 0,
                used: 0,
                backing: MemoryImage::default(),
            },
        }
    }

    /// Sets or clears the write-protect tab.
    pub fn set_write_protected(&mut self, protected: bool) {
        self.inner.write_protected = protected;
    }

    /// Bytes of data recorded.
    pub fn recorded(&self) -> u64 {
        self.inner.recorded()
    }

    /// Fault injection for tests: flips bit 0 of byte `byte` of block `block` of tape file
    /// `file`.
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such block or byte.
    pub fn flip_bit(&mut self, file: u64, block: u64, byte: usize) -> Result<()> {
        let offset = self.block_offset(file, block)?;
        let data = self
            .inner
            .backing
            .data
            .get_mut(offset)
            .and_then(|b| b.get_mut(byte))
            .ok_or_else(|| Error::NotFound {
                what: format!("byte {byte} of block {block} of file {file}"),
            })?;
        *data ^= 1;
        Ok(())
    }

    /// Fault injection for tests: cuts the tape just before block `block` of file `file`
    /// (everything from there on is lost, as on a torn or overwritten tape).
    ///
    /// # Errors
    /// [`Error::NotFound`] when there is no such block.
    pub fn cut_before(&mut self, file: u64, block: u64) -> Result<()> {
        let offset = self.block_offset(file, block)?;
        let index = self
            .inner
            .items
            .iter()
            .position(|i| matches!(i, Item::Block { offset: o, .. } if *o as usize == offset))
            .unwrap_or(self.inner.items.len());
        self.inner.items.truncate(index);
        self.inner.backing.data.truncate(offset);
        self.inner.used = Emulated::<MemoryImage>::sum_blocks(&self.inner.items);
        self.inner.pos = self.inner.pos.min(index);
        Ok(())
    }

    fn block_offset(&self, file: u64, block: u64) -> Result<usize> {
        let (mut f, mut b) = (0, 0);
        for item in &self.inner.items {
            match *item {
                Item::Filemark { .. } => {
                    f += 1;
                    b = 0;
                }
                Item::Block { offset, .. } => {
                    if f == file && b == block {
                        return Ok(usize::try_from(offset).unwrap_or(usize::MAX));
                    }
                    b += 1;
                }
            }
        }
        Err(Error::NotFound {
            what: format!("block {block} of file {file}"),
        })
    }

    fn load_impl(&mut self) -> Result<()> {
        self.inner.loaded = true;
        self.inner.pos = 0;
        Ok(())
    }

    fn eject_impl(&mut self) -> Result<()> {
        if !self.inner.loaded {
            return Err(Error::NoTape {
                device: self.inner.name.clone(),
            });
        }
        self.inner.pos = 0;
        self.inner.loaded = false;
        Ok(())
    }
}

delegate_tape_device!(MemoryTape);

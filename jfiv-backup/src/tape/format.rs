//! The on-tape format: blocks, records, the media label and backup sessions.
//!
//! The format logic never knows its device: it is written over [`BlockSink`] and
//! [`BlockSource`], which every [`TapeDevice`] provides, so the same code runs on a
//! [`LinuxTape`](super::LinuxTape), a [`VirtualTape`](super::VirtualTape) and a
//! [`MemoryTape`](super::MemoryTape). `FORMAT.md` ("Tape format") describes the bytes.
//!
//! # Layers
//! - A *tape file* (between filemarks) is a *stream*: a sequence of blocks of `block_size`
//!   bytes (256 KiB to 1 MiB; the last one may be shorter), each with a 48-byte
//!   [`BlockHeader`]: magic, version, flags, payload length, the stream's UUID, the block's
//!   sequence number, the offset of the first record starting in it, and a CRC-32 of header
//!   and payload. A lost, repeated, stale or damaged block is detected and named by its block
//!   number.
//! - The payloads of a stream's blocks, concatenated, are a sequence of *records*: magic
//!   `JREC`, a kind, a length, the payload, and a BLAKE3 of kind, length and payload. Records
//!   span blocks freely.
//! - File 0 of every tape is the *media label* stream: a [`RecordKind::ReadMe`] record (plain
//!   text saying what the tape is and how to read it) and a [`RecordKind::Label`] record.
//! - Each later file is one *volume* of a backup *session*: a [`SessionHeader`], the chunks
//!   of the snapshot, and on the last volume the manifest; then a [`SessionCatalog`] and a
//!   [`SessionTrailer`] whose status says whether the session is complete, continues on the
//!   next tape, or is incomplete. A file without a trailer is incomplete (interrupted).

use std::collections::VecDeque;
use std::fmt::Debug;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::device::{ReadOutcome, TapeDevice, WriteOutcome};
use super::media::{MediaLabel, Pool};
use super::{Error, Result};

/// Magic number at the start of every block.
pub const BLOCK_MAGIC: [u8; 8] = *b"JFIVTBK1";
/// Magic number at the start of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"JREC";
/// Version of the tape format described here.
pub const FORMAT_VERSION: u16 = 1;
/// Size of a block header.
pub const BLOCK_HEADER_LEN: usize = 48;
/// Size of a record header (magic, kind, reserved, length).
pub const RECORD_HEADER_LEN: usize = 16;
/// Size of a record's trailing BLAKE3.
pub const RECORD_HASH_LEN: usize = 32;
/// Smallest block size jfiv writes.
pub const MIN_BLOCK_SIZE: usize = 256 << 10;
/// Largest block size jfiv writes.
pub const MAX_BLOCK_SIZE: usize = 1 << 20;
/// The default block size.
pub const DEFAULT_BLOCK_SIZE: usize = 512 << 10;
/// Largest record payload a reader accepts (a chunk, a manifest, a catalog).
pub const MAX_RECORD_LEN: u64 = 256 << 20;
/// Block flag: the last block of its stream.
pub const FLAG_LAST: u16 = 1;
/// `first_record` value of a block in which no record starts.
pub const NO_RECORD_START: u32 = u32::MAX;

/// The kinds of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
#[non_exhaustive]
pub enum RecordKind {
    /// Plain UTF-8 text for a human who finds the tape.
    ReadMe = 1,
    /// The media label, JSON ([`MediaLabel`]).
    Label = 2,
    /// A session volume's header, JSON ([`SessionHeader`]).
    SessionHeader = 3,
    /// A chunk: its 32-byte id, then its encrypted encoding from the core format.
    Chunk = 4,
    /// The snapshot's encrypted manifest: a u16 length and the snapshot id (UTF-8), then the
    /// manifest's encrypted encoding from the core format.
    Manifest = 5,
    /// The session's catalog, JSON ([`SessionCatalog`]).
    Catalog = 6,
    /// A volume's trailer, JSON ([`SessionTrailer`]).
    Trailer = 7,
}

impl RecordKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::ReadMe,
            2 => Self::Label,
            3 => Self::SessionHeader,
            4 => Self::Chunk,
            5 => Self::Manifest,
            6 => Self::Catalog,
            7 => Self::Trailer,
            _ => return None,
        })
    }
}

/// What the format needs to write: blocks and filemarks.
pub trait BlockSink {
    /// Writes one block (see [`TapeDevice::write_block`]).
    ///
    /// # Errors
    /// Device errors.
    fn put_block(&mut self, data: &[u8]) -> Result<WriteOutcome>;
    /// Ends the current tape file (see [`TapeDevice::write_filemarks`]).
    ///
    /// # Errors
    /// Device errors.
    fn put_filemark(&mut self) -> Result<()>;
}

/// What the format needs to read: blocks, filemarks and the end of data.
pub trait BlockSource {
    /// Reads the next block (see [`TapeDevice::read_block`]).
    ///
    /// # Errors
    /// Device errors.
    fn get_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome>;
}

impl<T: TapeDevice + ?Sized> BlockSink for T {
    fn put_block(&mut self, data: &[u8]) -> Result<WriteOutcome> {
        self.write_block(data)
    }
    fn put_filemark(&mut self) -> Result<()> {
        self.write_filemarks(1)
    }
}

impl<T: TapeDevice + ?Sized> BlockSource for T {
    fn get_block(&mut self, buf: &mut [u8]) -> Result<ReadOutcome> {
        self.read_block(buf)
    }
}

/// The header of every block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Format version.
    pub version: u16,
    /// Flags ([`FLAG_LAST`]).
    pub flags: u16,
    /// Bytes of payload after the header.
    pub payload_len: u32,
    /// The stream (tape file) this block belongs to.
    pub stream: Uuid,
    /// The block's position in its stream, from 0.
    pub seq: u64,
    /// Offset in the payload of the first record that starts in this block, or
    /// [`NO_RECORD_START`].
    pub first_record: u32,
}

impl BlockHeader {
    fn encode(&self, payload: &[u8], out: &mut [u8]) {
        out[..8].copy_from_slice(&BLOCK_MAGIC);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10..12].copy_from_slice(&self.flags.to_le_bytes());
        out[12..16].copy_from_slice(&self.payload_len.to_le_bytes());
        out[16..32].copy_from_slice(self.stream.as_bytes());
        out[32..40].copy_from_slice(&self.seq.to_le_bytes());
        out[44..48].copy_from_slice(&self.first_record.to_le_bytes());
        let crc = block_crc(&out[..40], &out[44..48], payload);
        out[40..44].copy_from_slice(&crc.to_le_bytes());
    }

    /// Parses and checks a block (header and payload CRC).
    fn decode(block: &[u8]) -> std::result::Result<Self, String> {
        if block.len() < BLOCK_HEADER_LEN {
            return Err(format!(
                "block of {} bytes is shorter than a header",
                block.len()
            ));
        }
        if block[..8] != BLOCK_MAGIC {
            return Err("bad block magic (not a jfiv tape block)".into());
        }
        let u16_at = |i: usize| u16::from_le_bytes([block[i], block[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&block[32..40]);
        let mut stream = [0u8; 16];
        stream.copy_from_slice(&block[16..32]);
        let header = Self {
            version: u16_at(8),
            flags: u16_at(10),
            payload_len: u32_at(12),
            stream: Uuid::from_bytes(stream),
            seq: u64::from_le_bytes(seq),
            first_record: u32_at(44),
        };
        if header.payload_len as usize != block.len() - BLOCK_HEADER_LEN {
            return Err(format!(
                "payload length {} does not match the block's {} bytes",
                header.payload_len,
                block.len()
            ));
        }
        let crc = block_crc(&block[..40], &block[44..48], &block[BLOCK_HEADER_LEN..]);
        if crc != u32_at(40) {
            return Err("block checksum (CRC-32) mismatch".into());
        }
        if header.version != FORMAT_VERSION {
            return Err(format!(
                "unsupported tape format version {}",
                header.version
            ));
        }
        Ok(header)
    }
}

fn block_crc(head: &[u8], tail: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(tail);
    h.update(payload);
    h.finalize()
}

/// Writes one stream (tape file): records cut into framed blocks, then a filemark.
#[derive(Debug)]
pub struct StreamWriter {
    stream: Uuid,
    block_size: usize,
    buf: Vec<u8>,
    first_record: u32,
    seq: u64,
    early_warning: bool,
    records: u64,
    bytes: u64,
    digest: blake3::Hasher,
}

impl StreamWriter {
    /// A writer for a new stream with id `stream` and blocks of `block_size` bytes.
    ///
    /// # Errors
    /// [`Error::Config`] for a block size outside 256 KiB..=1 MiB.
    pub fn new(stream: Uuid, block_size: usize) -> Result<Self> {
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(Error::Config {
                reason: format!(
                    "block size {block_size} outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} bytes"
                ),
            });
        }
        let mut buf = Vec::with_capacity(block_size);
        buf.resize(BLOCK_HEADER_LEN, 0);
        Ok(Self {
            stream,
            block_size,
            buf,
            first_record: NO_RECORD_START,
            seq: 0,
            early_warning: false,
            records: 0,
            bytes: 0,
            digest: blake3::Hasher::new(),
        })
    }

    /// Whether a block write has reported the early-warning zone.
    pub fn early_warning(&self) -> bool {
        self.early_warning
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> u64 {
        self.seq
    }

    /// Payload bytes of records written so far (headers and hashes included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The number of the block the next record starts in.
    pub fn next_block(&self) -> u64 {
        self.seq
    }

    /// Appends a record made of `parts` concatenated.
    ///
    /// # Errors
    /// Device errors; [`Error::Config`] for a record larger than [`MAX_RECORD_LEN`].
    pub fn write_record<S: BlockSink + ?Sized>(
        &mut self,
        sink: &mut S,
        kind: RecordKind,
        parts: &[&[u8]],
    ) -> Result<()> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if len > MAX_RECORD_LEN {
            return Err(Error::Config {
                reason: format!("record of {len} bytes exceeds {MAX_RECORD_LEN}"),
            });
        }
        let mut head = [0u8; RECORD_HEADER_LEN];
        head[..4].copy_from_slice(&RECORD_MAGIC);
        head[4] = kind as u8;
        head[8..16].copy_from_slice(&len.to_le_bytes());
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[kind as u8]);
        hasher.update(&len.to_le_bytes());
        for p in parts {
            hasher.update(p);
        }
        let hash = hasher.finalize();
        self.digest.update(hash.as_bytes());
        if self.first_record == NO_RECORD_START {
            self.first_record = (self.buf.len() - BLOCK_HEADER_LEN) as u32;
        }
        self.push(sink, &head)?;
        for p in parts {
            self.push(sink, p)?;
        }
        self.push(sink, hash.as_bytes())?;
        self.records += 1;
        self.bytes += len + (RECORD_HEADER_LEN + RECORD_HASH_LEN) as u64;
        Ok(())
    }

    fn push<S: BlockSink + ?Sized>(&mut self, sink: &mut S, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let room = self.block_size - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.block_size {
                self.emit(sink, 0)?;
            }
        }
        Ok(())
    }

    fn emit<S: BlockSink + ?Sized>(&mut self, sink: &mut S, flags: u16) -> Result<()> {
        let payload_len = (self.buf.len() - BLOCK_HEADER_LEN) as u32;
        let header = BlockHeader {
            version: FORMAT_VERSION,
            flags,
            payload_len,
            stream: self.stream,
            seq: self.seq,
            first_record: self.first_record,
        };
        let (head, payload) = self.buf.split_at_mut(BLOCK_HEADER_LEN);
        header.encode(payload, head);
        if sink.put_block(&self.buf)? == WriteOutcome::EarlyWarning {
            self.early_warning = true;
        }
        self.seq += 1;
        self.buf.truncate(BLOCK_HEADER_LEN);
        // The next block's first record: set when a record starts in it.
        self.first_record = NO_RECORD_START;
        Ok(())
    }

    /// Writes the last block (flagged [`FLAG_LAST`]) and a filemark. Returns the number of
    /// blocks and the stream digest (BLAKE3 over the records' hashes, in order).
    ///
    /// # Errors
    /// Device errors.
    pub fn finish<S: BlockSink + ?Sized>(mut self, sink: &mut S) -> Result<(u64, [u8; 32])> {
        self.emit(sink, FLAG_LAST)?;
        sink.put_filemark()?;
        Ok((self.seq, *self.digest.finalize().as_bytes()))
    }

    /// The digest of the records written so far.
    pub fn digest(&self) -> [u8; 32] {
        *self.digest.finalize().as_bytes()
    }
}

/// One record read back, with where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The block (within the tape file) in which it starts.
    pub block: u64,
}

/// A record read back, its payload borrowed from the [`StreamReader`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its kind.
    pub kind: RecordKind,
    /// Its payload.
    pub payload: &'a [u8],
    /// The block (within the tape file) in which it starts.
    pub block: u64,
}

/// Reads one stream (tape file) back, checking every block and record.
#[derive(Debug)]
pub struct StreamReader {
    tape: String,
    file: u64,
    block_buf: Vec<u8>,
    data: Vec<u8>,
    pos: usize,
    /// (offset in `data`, block number) of the blocks whose payload is in `data`.
    starts: VecDeque<(usize, u64)>,
    stream: Option<Uuid>,
    next_seq: u64,
    last_seen: bool,
    done: bool,
    digest: blake3::Hasher,
}

impl StreamReader {
    /// A reader for the tape file `file` of tape `tape` (names used in errors); the device
    /// must be positioned at the start of that file.
    pub fn new(tape: impl Into<String>, file: u64) -> Self {
        Self {
            tape: tape.into(),
            file,
            block_buf: vec![0; MAX_BLOCK_SIZE + BLOCK_HEADER_LEN],
            data: Vec::new(),
            pos: 0,
            starts: VecDeque::new(),
            stream: None,
            next_seq: 0,
            last_seen: false,
            done: false,
            digest: blake3::Hasher::new(),
        }
    }

    /// The stream id, once the first block is read.
    pub fn stream(&self) -> Option<Uuid> {
        self.stream
    }

    /// Blocks read so far.
    pub fn blocks(&self) -> u64 {
        self.next_seq
    }

    /// The digest of the records read so far (as [`StreamWriter::finish`] returns it).
    pub fn digest(&self) -> [u8; 32] {
        *self.digest.finalize().as_bytes()
    }

    fn damaged(&self, block: u64, what: impl Into<String>) -> Error {
        Error::Damaged {
            tape: self.tape.clone(),
            file: self.file,
            block,
            what: what.into(),
        }
    }

    fn truncated(&self, what: impl Into<String>) -> Error {
        Error::Truncated {
            tape: self.tape.clone(),
            file: self.file,
            block: self.next_seq,
            what: what.into(),
        }
    }

    /// Reads the next block into `data`; `Ok(false)` at the end of the stream.
    fn fill<S: BlockSource + ?Sized>(&mut self, source: &mut S) -> Result<bool> {
        if self.last_seen {
            return Ok(false);
        }
        let n = match source.get_block(&mut self.block_buf) {
            Ok(ReadOutcome::Block(n)) => n,
            Ok(ReadOutcome::Filemark) => {
                return Err(self.truncated("filemark before the stream's last block"));
            }
            Ok(ReadOutcome::EndOfData) => {
                return Err(self.truncated("end of data before the stream's last block"));
            }
            Err(Error::BlockSize { size, .. }) => {
                return Err(self.damaged(
                    self.next_seq,
                    format!("block of {size} bytes is larger than any jfiv block"),
                ));
            }
            Err(e) => return Err(e),
        };
        let header = BlockHeader::decode(&self.block_buf[..n])
            .map_err(|w| self.damaged(self.next_seq, w))?;
        match self.stream {
            None => self.stream = Some(header.stream),
            Some(s) if s != header.stream => {
                return Err(self.damaged(
                    self.next_seq,
                    format!(
                        "block of another stream {} (stale data from an older session?)",
                        header.stream
                    ),
                ));
            }
            Some(_) => {}
        }
        if header.seq != self.next_seq {
            return Err(self.damaged(
                self.next_seq,
                format!(
                    "block sequence {} where {} was expected (lost or repeated block)",
                    header.seq, self.next_seq
                ),
            ));
        }
        if self.pos > 0 && self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
            self.starts.clear();
        } else if self.pos > (4 << 20) {
            self.data.drain(..self.pos);
            for s in &mut self.starts {
                s.0 = s.0.saturating_sub(self.pos);
            }
            self.pos = 0;
        }
        while self.starts.len() > 1 && self.starts[1].0 <= self.pos {
            self.starts.pop_front();
        }
        self.starts.push_back((self.data.len(), header.seq));
        self.data
            .extend_from_slice(&self.block_buf[BLOCK_HEADER_LEN..n]);
        self.next_seq += 1;
        if header.flags & FLAG_LAST != 0 {
            self.last_seen = true;
        }
        Ok(true)
    }

    fn block_at(&self, offset: usize) -> u64 {
        self.starts
            .iter()
            .rev()
            .find(|(o, _)| *o <= offset)
            .map_or(self.next_seq.saturating_sub(1), |(_, b)| *b)
    }

    fn need<S: BlockSource + ?Sized>(
        &mut self,
        source: &mut S,
        n: usize,
        what: &str,
    ) -> Result<()> {
        while self.data.len() - self.pos < n {
            if !self.fill(source)? {
                return Err(self.truncated(format!("stream ends inside {what}")));
            }
        }
        Ok(())
    }

    /// The next record, or `None` after the last one (the stream's filemark is consumed).
    ///
    /// # Errors
    /// [`Error::Damaged`] or [`Error::Truncated`] naming the tape, file and block; device
    /// errors.
    pub fn next_record<S: BlockSource + ?Sized>(
        &mut self,
        source: &mut S,
    ) -> Result<Option<Record>> {
        Ok(self.next_record_ref(source)?.map(|r| Record {
            kind: r.kind,
            payload: r.payload.to_vec(),
            block: r.block,
        }))
    }

    /// As [`next_record`](StreamReader::next_record), borrowing the payload from the
    /// reader's buffer instead of copying it (valid until the next call).
    ///
    /// # Errors
    /// As [`next_record`](StreamReader::next_record).
    pub fn next_record_ref<S: BlockSource + ?Sized>(
        &mut self,
        source: &mut S,
    ) -> Result<Option<RecordRef<'_>>> {
        if self.done {
            return Ok(None);
        }
        if self.pos == self.data.len() && !self.fill(source)? {
            // The last block was read: the filemark must follow.
            self.done = true;
            return match source.get_block(&mut self.block_buf)? {
                ReadOutcome::Filemark => Ok(None),
                ReadOutcome::EndOfData => Err(self.truncated("no filemark after the last block")),
                ReadOutcome::Block(_) => {
                    Err(self.damaged(self.next_seq, "data after the stream's last block"))
                }
            };
        }
        self.need(source, RECORD_HEADER_LEN, "a record header")?;
        let start = self.pos;
        let block = self.block_at(start);
        let head = &self.data[start..start + RECORD_HEADER_LEN];
        if head[..4] != RECORD_MAGIC {
            return Err(self.damaged(block, "bad record magic"));
        }
        let kind_byte = head[4];
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&head[8..16]);
        let len = u64::from_le_bytes(len_bytes);
        let Some(kind) = RecordKind::from_u8(kind_byte) else {
            return Err(self.damaged(block, format!("unknown record kind {kind_byte}")));
        };
        if len > MAX_RECORD_LEN {
            return Err(self.damaged(block, format!("record length {len} is implausible")));
        }
        let total = RECORD_HEADER_LEN + len as usize + RECORD_HASH_LEN;
        self.need(source, total, "a record")?;
        // `need` may have compacted the buffer: the record starts at `pos` again.
        let start = self.pos;
        let payload_at = start + RECORD_HEADER_LEN;
        let payload_end = payload_at + len as usize;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[kind_byte]);
        hasher.update(&len_bytes);
        hasher.update(&self.data[payload_at..payload_end]);
        let hash = hasher.finalize();
        if hash.as_bytes()[..] != self.data[payload_end..payload_end + RECORD_HASH_LEN] {
            let end_block = self.block_at(payload_end + RECORD_HASH_LEN - 1);
            return Err(self.damaged(
                block,
                format!(
                    "{kind:?} record checksum mismatch (record spans blocks {block} to {end_block})"
                ),
            ));
        }
        self.digest.update(hash.as_bytes());
        self.pos = start + total;
        Ok(Some(RecordRef {
            kind,
            payload: &self.data[payload_at..payload_end],
            block,
        }))
    }
}

/// The plain text written at the start of every jfiv tape, for whoever finds it.
pub fn readme_text(label: &MediaLabel) -> String {
    format!(
        "This is a backup tape of the JFIV medical records system (assisted reproduction unit).\n\
         Barcode {barcode}, pool {pool}, labelled {created}, jfiv tape format version {version}.\n\
         It holds ENCRYPTED backups of medical data: handle it as a medical record, keep it in the\n\
         offsite room, and never give it to anyone outside the hospital's IT department.\n\
         How to read it: file 0 (this file) is the label; each later tape file is one part of a\n\
         backup session, in blocks of 256 KiB to 1 MiB (variable block mode, e.g. `mt setblk 0`).\n\
         Every block starts with the magic JFIVTBK1 and a 48-byte header; records inside start\n\
         with JREC. The layout is described in FORMAT.md of jfiv-backup (section Tape format).\n\
         Restoring needs the repository key file or the paper key kept in the hospital safe, and\n\
         the jfiv tools: `tape scan` rebuilds the catalog from the tapes alone.\n",
        barcode = label.barcode,
        pool = label.pool,
        created = label.created.to_rfc3339(),
        version = FORMAT_VERSION,
    )
}

/// Writes the media label as file 0, from the beginning of the tape. **Destroys everything on
/// the tape.**
///
/// # Errors
/// Device errors ([`Error::WriteProtected`], [`Error::NoTape`]...).
pub fn write_label(device: &mut dyn TapeDevice, label: &MediaLabel) -> Result<()> {
    device.rewind()?;
    let mut w = StreamWriter::new(label.uuid, MIN_BLOCK_SIZE)?;
    w.write_record(device, RecordKind::ReadMe, &[readme_text(label).as_bytes()])?;
    let json = to_json(label)?;
    w.write_record(device, RecordKind::Label, &[&json])?;
    w.finish(device)?;
    Ok(())
}

/// Reads the media label from file 0; leaves the tape positioned at the start of file 1.
///
/// # Errors
/// [`Error::Unlabeled`] when the tape is blank or not a jfiv tape; [`Error::NoTape`];
/// [`Error::Damaged`] when the label is unreadable.
pub fn read_label(device: &mut dyn TapeDevice) -> Result<MediaLabel> {
    let name = device.status()?.barcode.unwrap_or_else(|| device.name());
    device.rewind()?;
    let unlabeled = |reason: &str| Error::Unlabeled {
        tape: name.clone(),
        reason: reason.to_owned(),
    };
    let mut buf = vec![0u8; MAX_BLOCK_SIZE + BLOCK_HEADER_LEN];
    match device.read_block(&mut buf) {
        Ok(ReadOutcome::EndOfData) => return Err(unlabeled("blank tape")),
        Ok(ReadOutcome::Filemark) => return Err(unlabeled("the tape starts with a filemark")),
        Ok(ReadOutcome::Block(n)) if n < 8 || buf[..8] != BLOCK_MAGIC => {
            return Err(unlabeled("the first block is not a jfiv block"));
        }
        Ok(ReadOutcome::Block(_)) => {}
        Err(Error::BlockSize { .. }) => {
            return Err(unlabeled("the first block is not a jfiv block"));
        }
        Err(e) => return Err(e),
    }
    device.rewind()?;
    let mut reader = StreamReader::new(name.clone(), 0);
    let mut label = None;
    while let Some(record) = reader.next_record(device)? {
        if record.kind == RecordKind::Label {
            label = Some(from_json::<MediaLabel>(
                &record.payload,
                &name,
                0,
                record.block,
            )?);
        }
    }
    label.ok_or_else(|| unlabeled("file 0 has no label record"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Config {
        reason: format!("cannot serialise: {e}"),
    })
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    tape: &str,
    file: u64,
    block: u64,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Damaged {
        tape: tape.to_owned(),
        file,
        block,
        what: format!("unparsable metadata record: {e}"),
    })
}

/// The header of one volume (tape file) of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionHeader {
    /// The session (one snapshot written to one tape set).
    pub session: Uuid,
    /// This volume's stream id (the UUID in its block headers).
    pub stream: Uuid,
    /// 1 for the first tape of the set, 2 for the next...
    pub volume: u32,
    /// A name for the session given when it started (the snapshot id is only known at the
    /// end: it is in the manifest record and the catalog).
    pub snapshot: String,
    /// The snapshot's source (e.g. `jfiv-db`).
    pub source: String,
    /// The host that wrote it.
    pub host: String,
    /// The pool of the tape set.
    pub pool: Pool,
    /// When the session started.
    pub started: DateTime<Utc>,
    /// This tape's barcode.
    pub tape: String,
    /// This tape's label UUID.
    pub label: Uuid,
    /// The barcode of the previous volume, for volume > 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_tape: Option<String>,
    /// Block size of this stream.
    pub block_size: u32,
}

/// How a volume (tape file) of a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeStatus {
    /// The session ends here, complete: the manifest is in this file.
    Complete,
    /// The session continues on the next volume.
    Continued,
    /// The session was abandoned (error, out of tapes): it must never be used as a backup.
    Incomplete,
}

/// The trailer of one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTrailer {
    /// The session.
    pub session: Uuid,
    /// The volume.
    pub volume: u32,
    /// How it ends.
    pub status: VolumeStatus,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Chunk records in this volume.
    pub chunks: u64,
    /// Bytes of chunk payloads in this volume.
    pub chunk_bytes: u64,
    /// When the volume was closed.
    pub finished: DateTime<Utc>,
    /// Hex BLAKE3 over the hashes of the records before the trailer, in order.
    pub digest: String,
}

/// Where one volume of a session is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEntry {
    /// 1-based volume number.
    pub volume: u32,
    /// The tape's barcode.
    pub tape: String,
    /// The tape's label UUID.
    pub label: Uuid,
    /// The tape file number.
    pub file: u64,
    /// Chunks in this volume.
    pub chunks: u64,
    /// Chunk bytes in this volume.
    pub chunk_bytes: u64,
    /// How the volume ends.
    pub status: VolumeStatus,
}

/// The catalog of a session, written at the end of each of its volumes (covering the volumes so
/// far) and kept on disk by [`Catalog`](super::Catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCatalog {
    /// The session.
    pub session: Uuid,
    /// The snapshot.
    pub snapshot: String,
    /// Its source.
    pub source: String,
    /// The host.
    pub host: String,
    /// The pool.
    pub pool: Pool,
    /// Start time.
    pub started: DateTime<Utc>,
    /// The volumes so far, in order.
    pub volumes: Vec<VolumeEntry>,
    /// Chunks in the session so far.
    pub chunks: u64,
    /// Chunk bytes so far.
    pub chunk_bytes: u64,
    /// Total size of the manifests, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_bytes: Option<u64>,
    /// The snapshots whose manifests the session holds, in order.
    #[serde(default)]
    pub snapshots: Vec<String>,
}

/// Asked of a [`VolumeChanger`] when a session needs another tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    /// The session.
    pub session: Uuid,
    /// The volume number needed (2 for the first continuation).
    pub volume: u32,
    /// The pool the tape must belong to.
    pub pool: Pool,
    /// Barcodes already used by this session (never to be given again).
    pub used: Vec<String>,
    /// For reading: the barcode the catalog says holds this volume, if known.
    pub expected: Option<String>,
}

/// Supplies the next tape of a set: an operator prompt, an autoloader, or a
/// [`VirtualLibrary`](super::VirtualLibrary).
///
/// # Contract
/// `next_volume` returns a device with a tape loaded. For writing, the tape must be labelled, of
/// the requested pool, and writable under the rotation policy (the changer checks retention
/// with [`check_writable`](super::media::check_writable)); the writer checks label, pool and
/// reuse again and refuses a wrong tape. An `Err` means no tape can be had: the session is then
/// left incomplete.
pub trait VolumeChanger: Debug + Send {
    /// The device holding the tape for `request`.
    ///
    /// # Errors
    /// [`Error::NoTapeAvailable`] when there is none; device errors.
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>>;
}

impl<T: VolumeChanger + ?Sized> VolumeChanger for &mut T {
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>> {
        (**self).next_volume(request)
    }
}

impl<T: VolumeChanger + ?Sized> VolumeChanger for Box<T> {
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>> {
        (**self).next_volume(request)
    }
}

/// A changer with no more tapes: a session that reaches the end of its tape is incomplete.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMoreTapes;

impl VolumeChanger for NoMoreTapes {
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>> {
        Err(Error::NoTapeAvailable {
            pool: request.pool.clone(),
            earliest: None,
        })
    }
}

/// Where a session is written on its first tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePosition {
    /// Right after the label: the tape's older sessions are overwritten (rotation).
    AfterLabel,
    /// At the end of data: appended after the tape's sessions.
    Append,
}

/// The parameters of a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// A name for the session known at start (the core's snapshot id is given to
    /// [`SessionWriter::finish`]).
    pub snapshot: String,
    /// Its source.
    pub source: String,
    /// The writing host.
    pub host: String,
    /// The pool of the set.
    pub pool: Pool,
    /// Block size (256 KiB..=1 MiB).
    pub block_size: usize,
    /// Where on the first tape.
    pub position: WritePosition,
}

/// The outcome of writing a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session's catalog (volumes, sizes).
    pub catalog: SessionCatalog,
    /// Whether the session is complete.
    pub complete: bool,
    /// When it finished.
    pub finished: DateTime<Utc>,
    /// Why it is incomplete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Writes one session across as many tapes as it needs.
///
/// Chunks are appended in the order given; [`finish`](SessionWriter::finish) writes the
/// manifest last. At early warning the current volume is closed cleanly (catalog, trailer
/// `continued`, filemark) at the next record boundary and the [`VolumeChanger`] is asked for
/// the next tape. If there is none, or anything fails, the session ends
/// [`Incomplete`](VolumeStatus::Incomplete) (a trailer saying so is written when the tape
/// still can take it) and [`Error::SessionIncomplete`] is returned: never a success.
#[derive(Debug)]
pub struct SessionWriter<'c> {
    device: Box<dyn TapeDevice + 'c>,
    changer: Box<dyn VolumeChanger + 'c>,
    clock: Box<dyn jfiv_audit::Clock + 'c>,
    opts: SessionOptions,
    catalog: SessionCatalog,
    label: MediaLabel,
    stream: StreamWriter,
    file: u64,
    vol_chunks: u64,
    vol_bytes: u64,
    /// A volume is open on the current tape (header written, not yet closed).
    volume_open: bool,
    failed: Option<String>,
}

impl<'c> SessionWriter<'c> {
    /// Starts a session on the tape in `device`, whose label must be `expected` (as checked by
    /// [`check_writable`](super::media::check_writable) beforehand).
    ///
    /// # Errors
    /// [`Error::Unlabeled`], [`Error::WrongTape`], [`Error::LabelMismatch`],
    /// [`Error::WrongPool`], [`Error::WriteProtected`], device errors. Nothing is written when
    /// these are returned.
    pub fn start(
        mut device: Box<dyn TapeDevice + 'c>,
        expected: &MediaLabel,
        opts: SessionOptions,
        changer: Box<dyn VolumeChanger + 'c>,
        clock: Box<dyn jfiv_audit::Clock + 'c>,
    ) -> Result<Self> {
        let label = Self::open_volume(&mut *device, Some(expected), &opts.pool, &[])?;
        let session = Uuid::new_v4();
        let file = match opts.position {
            WritePosition::AfterLabel => 1,
            WritePosition::Append => {
                device.seek_end_of_data()?;
                device.status()?.file_number.ok_or_else(|| Error::Config {
                    reason: "the drive does not report file numbers: use AfterLabel".into(),
                })?
            }
        };
        let catalog = SessionCatalog {
            session,
            snapshot: opts.snapshot.clone(),
            source: opts.source.clone(),
            host: opts.host.clone(),
            pool: opts.pool.clone(),
            started: clock.now(),
            volumes: Vec::new(),
            chunks: 0,
            chunk_bytes: 0,
            manifest_bytes: None,
            snapshots: Vec::new(),
        };
        let stream = StreamWriter::new(Uuid::new_v4(), opts.block_size)?;
        let mut writer = Self {
            device,
            changer,
            clock,
            opts,
            catalog,
            label,
            stream,
            file,
            vol_chunks: 0,
            vol_bytes: 0,
            volume_open: false,
            failed: None,
        };
        writer.write_header(None)?;
        Ok(writer)
    }

    /// Reads and checks the label of a volume about to be written; positions after it.
    fn open_volume(
        device: &mut dyn TapeDevice,
        expected: Option<&MediaLabel>,
        pool: &Pool,
        used: &[String],
    ) -> Result<MediaLabel> {
        let status = device.status()?;
        if !status.online {
            return Err(Error::NoTape {
                device: device.name(),
            });
        }
        let label = read_label(device)?;
        if status.write_protected {
            return Err(Error::WriteProtected {
                device: device.name(),
                tape: label.barcode,
            });
        }
        if let Some(expected) = expected {
            if label.barcode != expected.barcode {
                return Err(Error::WrongTape {
                    expected: expected.barcode.clone(),
                    found: label.barcode,
                });
            }
            if label.uuid != expected.uuid {
                return Err(Error::LabelMismatch {
                    tape: label.barcode,
                    expected: expected.uuid,
                    found: label.uuid,
                });
            }
        }
        if &label.pool != pool {
            return Err(Error::WrongPool {
                tape: label.barcode,
                expected: pool.clone(),
                found: label.pool,
            });
        }
        if used.contains(&label.barcode) {
            return Err(Error::WrongTape {
                expected: "a tape not yet used by this session".into(),
                found: label.barcode,
            });
        }
        Ok(label)
    }

    fn write_header(&mut self, previous: Option<String>) -> Result<()> {
        let header = SessionHeader {
            session: self.catalog.session,
            stream: self.stream_id(),
            volume: self.catalog.volumes.len() as u32 + 1,
            snapshot: self.opts.snapshot.clone(),
            source: self.opts.source.clone(),
            host: self.opts.host.clone(),
            pool: self.opts.pool.clone(),
            started: self.catalog.started,
            tape: self.label.barcode.clone(),
            label: self.label.uuid,
            previous_tape: previous,
            block_size: self.opts.block_size as u32,
        };
        let json = to_json(&header)?;
        self.stream
            .write_record(&mut *self.device, RecordKind::SessionHeader, &[&json])?;
        self.volume_open = true;
        Ok(())
    }

    fn stream_id(&self) -> Uuid {
        self.stream.stream
    }

    /// The session's id.
    pub fn session(&self) -> Uuid {
        self.catalog.session
    }

    /// The barcode of the tape being written.
    pub fn current_tape(&self) -> &str {
        &self.label.barcode
    }

    fn volume_entry(&self, status: VolumeStatus) -> VolumeEntry {
        VolumeEntry {
            volume: self.catalog.volumes.len() as u32 + 1,
            tape: self.label.barcode.clone(),
            label: self.label.uuid,
            file: self.file,
            chunks: self.vol_chunks,
            chunk_bytes: self.vol_bytes,
            status,
        }
    }

    /// Writes catalog + trailer + filemark, closing the current volume with `status`.
    fn close_volume(&mut self, status: VolumeStatus, reason: Option<String>) -> Result<()> {
        self.volume_open = false;
        let entry = self.volume_entry(status);
        let mut catalog = self.catalog.clone();
        catalog.volumes.push(entry.clone());
        let json = to_json(&catalog)?;
        self.stream
            .write_record(&mut *self.device, RecordKind::Catalog, &[&json])?;
        let trailer = SessionTrailer {
            session: self.catalog.session,
            volume: entry.volume,
            status,
            reason,
            chunks: self.vol_chunks,
            chunk_bytes: self.vol_bytes,
            finished: self.clock.now(),
            digest: hex_string(&self.stream.digest()),
        };
        let json = to_json(&trailer)?;
        self.stream
            .write_record(&mut *self.device, RecordKind::Trailer, &[&json])?;
        let stream = std::mem::replace(
            &mut self.stream,
            StreamWriter::new(Uuid::new_v4(), self.opts.block_size)?,
        );
        stream.finish(&mut *self.device)?;
        self.catalog.volumes.push(entry);
        Ok(())
    }

    fn change_volume(&mut self) -> Result<()> {
        self.close_volume(VolumeStatus::Continued, None)?;
        let used: Vec<String> = self
            .catalog
            .volumes
            .iter()
            .map(|v| v.tape.clone())
            .collect();
        let request = VolumeRequest {
            session: self.catalog.session,
            volume: used.len() as u32 + 1,
            pool: self.opts.pool.clone(),
            used: used.clone(),
            expected: None,
        };
        // The finished tape leaves the drive before the next one is asked for.
        let _ = self.device.eject();
        let mut device = self.changer.next_volume(&request)?;
        let label = Self::open_volume(&mut *device, None, &self.opts.pool, &used)?;
        let previous = Some(self.label.barcode.clone());
        self.device = device;
        self.label = label;
        self.file = 1;
        self.vol_chunks = 0;
        self.vol_bytes = 0;
        self.write_header(previous)
    }

    fn guard<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
        }
        result
    }

    fn incomplete(&self, reason: &str) -> Error {
        Error::SessionIncomplete {
            session: self.catalog.session,
            volumes: self.catalog.volumes.len() as u32 + 1,
            reason: reason.to_owned(),
        }
    }

    /// Appends one chunk (its id and its encrypted encoding).
    ///
    /// # Errors
    /// [`Error::SessionIncomplete`] when the session cannot go on (out of tapes, a device
    /// error); after that only [`abort`](SessionWriter::abort) is useful.
    pub fn write_chunk(&mut self, id: &[u8; 32], data: &[u8]) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(self.incomplete(reason));
        }
        if self.stream.early_warning() {
            let r = self.change_volume();
            self.guard(r).map_err(|e| self.incomplete(&e.to_string()))?;
        }
        let r = self
            .stream
            .write_record(&mut *self.device, RecordKind::Chunk, &[id, data]);
        self.guard(r).map_err(|e| self.incomplete(&e.to_string()))?;
        self.vol_chunks += 1;
        self.vol_bytes += data.len() as u64;
        self.catalog.chunks += 1;
        self.catalog.chunk_bytes += data.len() as u64;
        Ok(())
    }

    /// Writes a snapshot's manifest (after all of its chunks). A session may hold several
    /// snapshots; it is closed by [`close`](SessionWriter::close).
    ///
    /// # Errors
    /// [`Error::SessionIncomplete`] (after which only [`abort`](SessionWriter::abort) is
    /// useful).
    pub fn write_manifest(&mut self, snapshot: &str, manifest: &[u8]) -> Result<()> {
        if let Some(reason) = &self.failed {
            return Err(self.incomplete(reason));
        }
        let Ok(name_len) = u16::try_from(snapshot.len()) else {
            return Err(Error::Config {
                reason: "snapshot id longer than 65535 bytes".into(),
            });
        };
        if self.stream.early_warning() {
            let r = self.change_volume();
            self.guard(r).map_err(|e| self.incomplete(&e.to_string()))?;
        }
        let r = self.stream.write_record(
            &mut *self.device,
            RecordKind::Manifest,
            &[&name_len.to_le_bytes(), snapshot.as_bytes(), manifest],
        );
        self.guard(r).map_err(|e| self.incomplete(&e.to_string()))?;
        snapshot.clone_into(&mut self.catalog.snapshot);
        self.catalog.snapshots.push(snapshot.to_owned());
        *self.catalog.manifest_bytes.get_or_insert(0) += manifest.len() as u64;
        Ok(())
    }

    /// Closes the last volume as complete (catalog, trailer, filemark) and returns the summary
    /// with the device (the last tape still loaded, for read-back verification). A session
    /// without any manifest is closed as incomplete.
    ///
    /// # Errors
    /// [`Error::SessionIncomplete`] (the session is then marked incomplete on tape when
    /// possible).
    pub fn close(mut self) -> Result<(SessionSummary, Box<dyn TapeDevice + 'c>)> {
        if let Some(reason) = self.failed.clone() {
            return Err(self.abort_with(&reason));
        }
        if self.catalog.snapshots.is_empty() {
            return Err(self.abort_with("the session was closed without a manifest"));
        }
        let r = self.close_volume(VolumeStatus::Complete, None);
        if let Err(e) = self.guard(r) {
            return Err(self.abort_with(&e.to_string()));
        }
        let summary = SessionSummary {
            catalog: self.catalog,
            complete: true,
            finished: self.clock.now(),
            reason: None,
        };
        Ok((summary, self.device))
    }

    /// Writes the manifest of `snapshot` and closes the session: [`write_manifest`] then
    /// [`close`].
    ///
    /// [`write_manifest`]: SessionWriter::write_manifest
    /// [`close`]: SessionWriter::close
    ///
    /// # Errors
    /// As [`close`](SessionWriter::close).
    pub fn finish(
        mut self,
        snapshot: &str,
        manifest: &[u8],
    ) -> Result<(SessionSummary, Box<dyn TapeDevice + 'c>)> {
        if let Err(e) = self.write_manifest(snapshot, manifest) {
            let reason = e.to_string();
            return Err(self.abort_with(&reason));
        }
        self.close()
    }

    /// Abandons the session: marks the current volume incomplete on tape (when the tape still
    /// takes it) and returns the summary, which says incomplete.
    pub fn abort(mut self, reason: &str) -> SessionSummary {
        self.mark_incomplete(reason);
        self.summary_incomplete(reason)
    }

    fn mark_incomplete(&mut self, reason: &str) {
        if !self.volume_open {
            // The last volume was closed as `continued` and no next tape could be had: its
            // trailer promises a volume that does not exist, which readers report as
            // incomplete.
            return;
        }
        let entries = self.catalog.volumes.len();
        if self
            .close_volume(VolumeStatus::Incomplete, Some(reason.to_owned()))
            .is_err()
            && self.catalog.volumes.len() == entries
        {
            // The tape would not take the trailer (end of medium, device failure): the file
            // ends without a trailer, which readers treat as incomplete too.
            let entry = self.volume_entry(VolumeStatus::Incomplete);
            self.catalog.volumes.push(entry);
        }
    }

    fn summary_incomplete(&self, reason: &str) -> SessionSummary {
        SessionSummary {
            catalog: self.catalog.clone(),
            complete: false,
            finished: self.clock.now(),
            reason: Some(reason.to_owned()),
        }
    }

    fn abort_with(&mut self, reason: &str) -> Error {
        self.mark_incomplete(reason);
        self.incomplete(reason)
    }

    /// The summary a failed [`finish`](SessionWriter::finish) or
    /// [`write_chunk`](SessionWriter::write_chunk) leaves: build it with
    /// [`abort`](SessionWriter::abort).
    pub fn catalog(&self) -> &SessionCatalog {
        &self.catalog
    }
}

pub(crate) fn hex_string(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// One item of a session read back.
#[derive(Debug)]
pub enum SessionItem<'a> {
    /// The header of a volume.
    Header(&'a SessionHeader),
    /// A chunk.
    Chunk {
        /// Its id.
        id: &'a [u8; 32],
        /// Its encrypted encoding.
        data: &'a [u8],
    },
    /// The manifest.
    Manifest {
        /// The snapshot's id.
        snapshot: &'a str,
        /// Its encrypted encoding.
        data: &'a [u8],
    },
}

/// What reading a session back found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReadReport {
    /// The session.
    pub session: Uuid,
    /// The volumes read, in order.
    pub volumes: Vec<VolumeEntry>,
    /// Chunks read.
    pub chunks: u64,
    /// Chunk bytes read.
    pub chunk_bytes: u64,
    /// Whether the manifest was found (the session is complete).
    pub manifest: bool,
    /// The catalog written at the end of the last volume.
    pub catalog: Option<SessionCatalog>,
}

/// Reads one volume file of a session, from its start (the device positioned there).
///
/// Returns the header, the trailer, and the catalog record.
///
/// # Errors
/// [`Error::Damaged`], [`Error::Truncated`] (a file without trailer), device errors, and
/// whatever `visit` returns.
pub fn read_volume(
    device: &mut dyn TapeDevice,
    tape: &str,
    file: u64,
    visit: &mut dyn FnMut(SessionItem<'_>) -> Result<()>,
) -> Result<(SessionHeader, SessionTrailer, Option<SessionCatalog>)> {
    let mut reader = StreamReader::new(tape, file);
    let first = reader
        .next_record(device)?
        .ok_or_else(|| Error::Truncated {
            tape: tape.to_owned(),
            file,
            block: 0,
            what: "empty session file".into(),
        })?;
    if first.kind != RecordKind::SessionHeader {
        return Err(Error::Damaged {
            tape: tape.to_owned(),
            file,
            block: first.block,
            what: format!(
                "file starts with a {:?} record, not a session header",
                first.kind
            ),
        });
    }
    let header: SessionHeader = from_json(&first.payload, tape, file, first.block)?;
    visit(SessionItem::Header(&header))?;
    let mut catalog = None;
    loop {
        let digest_before = reader.digest();
        let Some(record) = reader.next_record_ref(device)? else {
            return Err(Error::Truncated {
                tape: tape.to_owned(),
                file,
                block: reader.blocks(),
                what: "session file ends without a trailer (interrupted session)".into(),
            });
        };
        match record.kind {
            RecordKind::Chunk => {
                if record.payload.len() < 32 {
                    return Err(Error::Damaged {
                        tape: tape.to_owned(),
                        file,
                        block: record.block,
                        what: "chunk record shorter than a chunk id".into(),
                    });
                }
                let (id, data) = record.payload.split_at(32);
                let mut id_arr = [0u8; 32];
                id_arr.copy_from_slice(id);
                visit(SessionItem::Chunk { id: &id_arr, data })?;
            }
            RecordKind::Manifest => {
                let bad = || Error::Damaged {
                    tape: tape.to_owned(),
                    file,
                    block: record.block,
                    what: "malformed manifest record".into(),
                };
                let p = record.payload;
                if p.len() < 2 {
                    return Err(bad());
                }
                let n = usize::from(u16::from_le_bytes([p[0], p[1]]));
                if p.len() < 2 + n {
                    return Err(bad());
                }
                let snapshot = std::str::from_utf8(&p[2..2 + n]).map_err(|_| bad())?;
                visit(SessionItem::Manifest {
                    snapshot,
                    data: &p[2 + n..],
                })?;
            }
            RecordKind::Catalog => {
                catalog = Some(from_json(record.payload, tape, file, record.block)?);
            }
            RecordKind::Trailer => {
                let trailer: SessionTrailer = from_json(record.payload, tape, file, record.block)?;
                if trailer.digest != hex_string(&digest_before) {
                    return Err(Error::Damaged {
                        tape: tape.to_owned(),
                        file,
                        block: record.block,
                        what: "trailer digest does not match the records read".into(),
                    });
                }
                // Consume the filemark.
                if reader.next_record(device)?.is_some() {
                    return Err(Error::Damaged {
                        tape: tape.to_owned(),
                        file,
                        block: reader.blocks(),
                        what: "records after the trailer".into(),
                    });
                }
                return Ok((header, trailer, catalog));
            }
            other => {
                return Err(Error::Damaged {
                    tape: tape.to_owned(),
                    file,
                    block: record.block,
                    what: format!("unexpected {other:?} record in a session"),
                });
            }
        }
    }
}

/// Supplies tapes for reading a session's later volumes (a restore asks for them in order).
pub type VolumeSource<'a> = &'a mut dyn VolumeChanger;

/// Reads a whole session back, starting with volume 1 in `device` at tape file `file`, asking
/// `changer` for the later volumes, and giving every header, chunk and the manifest to `visit`.
///
/// # Errors
/// [`Error::SessionIncomplete`] when the session is marked incomplete or a volume is missing;
/// [`Error::Damaged`] / [`Error::Truncated`] naming tape, file and block; whatever `visit`
/// returns.
pub fn read_session<'d>(
    mut device: Box<dyn TapeDevice + 'd>,
    file: u64,
    changer: &mut dyn VolumeChanger,
    visit: &mut dyn FnMut(SessionItem<'_>) -> Result<()>,
) -> Result<(SessionReadReport, Box<dyn TapeDevice + 'd>)> {
    let mut label = read_label(&mut *device)?;
    super::device::position_at_file(&mut *device, file)?;
    let mut file = file;
    let mut report: Option<SessionReadReport> = None;
    let mut manifest_seen = false;
    loop {
        let mut wrapped = |item: SessionItem<'_>| {
            if let SessionItem::Manifest { .. } = item {
                manifest_seen = true;
            }
            visit(item)
        };
        let (header, trailer, catalog) =
            read_volume(&mut *device, &label.barcode, file, &mut wrapped)?;
        let rep = report.get_or_insert_with(|| SessionReadReport {
            session: header.session,
            volumes: Vec::new(),
            chunks: 0,
            chunk_bytes: 0,
            manifest: false,
            catalog: None,
        });
        let expected_volume = rep.volumes.len() as u32 + 1;
        if header.session != rep.session || header.volume != expected_volume {
            return Err(Error::WrongTape {
                expected: format!("volume {expected_volume} of session {}", rep.session),
                found: format!(
                    "volume {} of session {} on {}",
                    header.volume, header.session, label.barcode
                ),
            });
        }
        rep.volumes.push(VolumeEntry {
            volume: header.volume,
            tape: label.barcode.clone(),
            label: label.uuid,
            file,
            chunks: trailer.chunks,
            chunk_bytes: trailer.chunk_bytes,
            status: trailer.status,
        });
        rep.chunks += trailer.chunks;
        rep.chunk_bytes += trailer.chunk_bytes;
        rep.catalog = catalog;
        match trailer.status {
            VolumeStatus::Complete => {
                rep.manifest = manifest_seen;
                let rep = report.take().ok_or_else(|| Error::NotFound {
                    what: "session".into(),
                })?;
                if !rep.manifest {
                    return Err(Error::SessionIncomplete {
                        session: rep.session,
                        volumes: rep.volumes.len() as u32,
                        reason: "complete trailer without a manifest".into(),
                    });
                }
                return Ok((rep, device));
            }
            VolumeStatus::Incomplete => {
                return Err(Error::SessionIncomplete {
                    session: rep.session,
                    volumes: rep.volumes.len() as u32,
                    reason: trailer
                        .reason
                        .unwrap_or_else(|| "marked incomplete on tape".into()),
                });
            }
            VolumeStatus::Continued => {
                let request = VolumeRequest {
                    session: rep.session,
                    volume: expected_volume + 1,
                    pool: header.pool.clone(),
                    used: rep.volumes.iter().map(|v| v.tape.clone()).collect(),
                    expected: None,
                };
                let _ = device.eject();
                device = changer
                    .next_volume(&request)
                    .map_err(|e| Error::SessionIncomplete {
                        session: request.session,
                        volumes: expected_volume,
                        reason: format!(
                            "volume {} is needed and could not be had: {e}",
                            request.volume
                        ),
                    })?;
                label = read_label(&mut *device)?;
                file = find_session_file(
                    &mut *device,
                    &label.barcode,
                    request.session,
                    request.volume,
                )?;
            }
        }
    }
}

/// Finds the tape file holding volume `volume` of `session` on the tape in `device` (positioned
/// after its label), reading only each file's first record; leaves the tape at its start.
///
/// # Errors
/// [`Error::NotFound`] when the tape does not hold it; device errors.
pub fn find_session_file(
    device: &mut dyn TapeDevice,
    tape: &str,
    session: Uuid,
    volume: u32,
) -> Result<u64> {
    let mut file = 1;
    loop {
        match super::device::position_at_file(device, file) {
            Ok(()) => {}
            Err(Error::EndOfData { .. }) => {
                return Err(Error::NotFound {
                    what: format!("volume {volume} of session {session} on tape {tape}"),
                });
            }
            Err(e) => return Err(e),
        }
        let mut reader = StreamReader::new(tape, file);
        match reader.next_record(device) {
            Ok(Some(record)) if record.kind == RecordKind::SessionHeader => {
                if let Ok(h) = from_json::<SessionHeader>(&record.payload, tape, file, 0)
                    && h.session == session
                    && h.volume == volume
                {
                    super::device::position_at_file(device, file)?;
                    return Ok(file);
                }
            }
            Ok(_) | Err(Error::Truncated { .. } | Error::Damaged { .. }) => {}
            Err(e) => return Err(e),
        }
        // A blank end of tape (no block at all) means there is no further file.
        if device.status()?.end_of_data {
            return Err(Error::NotFound {
                what: format!("volume {volume} of session {session} on tape {tape}"),
            });
        }
        file += 1;
    }
}

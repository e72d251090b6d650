//! [`VirtualTape`]: a tape image in a file, and [`VirtualLibrary`]: a shelf of them in named slots.
//!
//! A virtual tape behaves exactly as the [`TapeDevice`](super::TapeDevice) contract says a
//! drive does (blocks, filemarks, end of data, capacity and early warning, write protection,
//! barcode). Tests use it, and a hospital can rehearse its whole tape procedure on it.
//!
//! # Image file layout (all integers little-endian)
//! - Header, 128 bytes: magic `JFIVVTP1` (8), write-protect flag (1, 0 or 1), reserved (7),
//!   capacity in bytes (u64), early-warning zone in bytes (u64), barcode length (u16), barcode
//!   (UTF-8, at most 64 bytes), zero padding.
//! - Then the items in tape order: a tag byte (`B` block, `F` filemark), a u32 length (0 for a
//!   filemark), then the block's bytes.
//!
//! An image whose last item is cut short (a copy interrupted, a disk full) opens with its end
//! of data after the last whole item: exactly what a drive reports for a tape whose end was never
//! written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::device::TapeDevice;
use super::emulated::{Backing, Emulated, Item, delegate_tape_device};
use super::format::{VolumeChanger, VolumeRequest, find_session_file, read_label};
use super::media::{MediaInfo, RotationPolicy, check_pool_member};
use super::{Error, Result};

const MAGIC: &[u8; 8] = b"JFIVVTP1";
const HEADER_LEN: u64 = 128;
const MAX_BARCODE: usize = 64;
const ITEM_HEADER: u64 = 5;

#[derive(Debug)]
struct FileImage {
    file: File,
    /// Byte offset where the next item is appended.
    end: u64,
}

impl Backing for FileImage {
    fn truncate(&mut self, index: usize, items: &[Item]) -> io::Result<()> {
        let at = match items[index] {
            Item::Block { offset, .. } => offset - ITEM_HEADER,
            Item::Filemark { offset } => offset,
        };
        self.file.set_len(at)?;
        self.end = at;
        Ok(())
    }

    fn append_block(&mut self, data: &[u8]) -> io::Result<Item> {
        let len = u32::try_from(data.len()).map_err(io::Error::other)?;
        let mut head = [0u8; ITEM_HEADER as usize];
        head[0] = b'B';
        head[1..].copy_from_slice(&len.to_le_bytes());
        self.file.write_all_at(&head, self.end)?;
        self.file.write_all_at(data, self.end + ITEM_HEADER)?;
        let item = Item::Block {
            offset: self.end + ITEM_HEADER,
            len,
        };
        self.end += ITEM_HEADER + u64::from(len);
        Ok(item)
    }

    fn append_filemark(&mut self) -> io::Result<Item> {
        let head = [b'F', 0, 0, 0, 0];
        self.file.write_all_at(&head, self.end)?;
        let item = Item::Filemark { offset: self.end };
        self.end += ITEM_HEADER;
        Ok(item)
    }

    fn flush(&mut self) -> io::Result<()> {
        // A filemark flushes the drive buffer: the image is made durable here, never per block.
        self.file.sync_data()
    }

    fn read(&self, item: Item, buf: &mut [u8]) -> io::Result<()> {
        let Item::Block { offset, .. } = item else {
            return Err(io::Error::other("not a block"));
        };
        self.file.read_exact_at(buf, offset)
    }
}

/// The parameters of a new tape image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualTapeSpec {
    /// The cartridge's barcode (at most 64 bytes).
    pub barcode: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Size of the early-warning zone at the end, in bytes. It must hold the largest record
    /// the writer may finish after the warning, plus a trailer (jfiv writes at most a few MiB
    /// after it).
    pub early_warning_zone: u64,
}

/// A file-backed tape image in a drive (see the module docs for the file layout).
#[derive(Debug)]
pub struct VirtualTape {
    path: PathBuf,
    inner: Emulated<FileImage>,
}

impl VirtualTape {
    /// Creates a blank tape image at `path` (which must not exist) and loads it.
    ///
    /// # Errors
    /// [`Error::Config`] for a barcode longer than 64 bytes or an early-warning zone larger
    /// than the capacity, [`Error::Io`] when the file cannot be created.
    pub fn create(path: impl AsRef<Path>, spec: &VirtualTapeSpec) -> Result<Self> {
        let path = path.as_ref();
        if spec.barcode.len() > MAX_BARCODE || spec.barcode.is_empty() {
            return Err(Error::Config {
                reason: format!("barcode {:?} must have 1 to 64 bytes", spec.barcode),
            });
        }
        if spec.early_warning_zone >= spec.capacity {
            return Err(Error::Config {
                reason: "the early-warning zone must be smaller than the capacity".into(),
            });
        }
        let dev = path.display().to_string();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io(dev.clone(), "create image", e))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[16..24].copy_from_slice(&spec.capacity.to_le_bytes());
        header[24..32].copy_from_slice(&spec.early_warning_zone.to_le_bytes());
        header[32..34].copy_from_slice(&(spec.barcode.len() as u16).to_le_bytes());
        header[34..34 + spec.barcode.len()].copy_from_slice(spec.barcode.as_bytes());
        file.write_all(&header)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(dev.clone(), "create image", e))?;
        drop(file);
        Self::open(path)
    }

    /// Opens an existing tape image and loads it, positioned at the beginning of the tape.
    ///
    /// # Errors
    /// [`Error::InvalidImage`] when the file is not a tape image, [`Error::Io`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let dev = path.display().to_string();
        let invalid = |offset: u64, reason: &str| Error::InvalidImage {
            path: path.clone(),
            offset,
            reason: reason.to_owned(),
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(dev.clone(), "open image", e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(dev.clone(), "open image", e))?
            .len();
        let mut header = [0u8; HEADER_LEN as usize];
        if file.read_exact(&mut header).is_err() || &header[..8] != MAGIC {
            return Err(invalid(0, "not a jfiv virtual tape image (bad magic)"));
        }
        let write_protected = match header[8] {
            0 => false,
            1 => true,
            _ => return Err(invalid(8, "bad write-protect flag")),
        };
        let capacity = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        let early_warning_zone = u64::from_le_bytes(header[24..32].try_into().unwrap_or_default());
        let barcode_len = usize::from(u16::from_le_bytes([header[32], header[33]]));
        if barcode_len == 0 || barcode_len > MAX_BARCODE {
            return Err(invalid(32, "bad barcode length"));
        }
        let barcode = String::from_utf8(header[34..34 + barcode_len].to_vec())
            .map_err(|_| invalid(34, "barcode is not UTF-8"))?;

        // Index the items; an item cut short ends the recorded data.
        let mut items = Vec::new();
        let mut at = HEADER_LEN;
        let mut reader = io::BufReader::new(&mut file);
        reader
            .seek(SeekFrom::Start(at))
            .map_err(|e| Error::io(dev.clone(), "index image", e))?;
        loop {
            if at + ITEM_HEADER > size {
                break;
            }
            let mut head = [0u8; ITEM_HEADER as usize];
            reader
                .read_exact(&mut head)
                .map_err(|e| Error::io(dev.clone(), "index image", e))?;
            let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
            match head[0] {
                b'F' if len == 0 => {
                    items.push(Item::Filemark { offset: at });
                    at += ITEM_HEADER;
                }
                b'B' if len > 0 => {
                    if at + ITEM_HEADER + u64::from(len) > size {
                        break;
                    }
                    items.push(Item::Block {
                        offset: at + ITEM_HEADER,
                        len,
                    });
                    at += ITEM_HEADER + u64::from(len);
                    reader
                        .seek_relative(i64::from(len))
                        .map_err(|e| Error::io(dev.clone(), "index image", e))?;
                }
                _ => return Err(invalid(at, "bad item tag")),
            }
        }
        drop(reader);
        let used = Emulated::<FileImage>::sum_blocks(&items);
        Ok(Self {
            inner: Emulated {
                name: dev,
                barcode: Some(barcode),
                items,
                pos: 0,
                capacity,
                early_warning_zone,
                write_protected,
                loaded: true,
                block_size: 0,
                used,
                backing: FileImage { file, end: at },
            },
            path,
        })
    }

    /// Sets or clears the write-protect tab of the image at `path` (the cartridge must not be
    /// in a drive).
    ///
    /// # Errors
    /// [`Error::InvalidImage`], [`Error::Io`].
    pub fn set_write_protected(path: impl AsRef<Path>, protected: bool) -> Result<()> {
        let path = path.as_ref();
        let dev = path.display().to_string();
        drop(Self::open(path)?);
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(dev.clone(), "write-protect", e))?;
        file.write_all_at(&[u8::from(protected)], 8)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(dev, "write-protect", e))
    }

    /// The image file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cartridge's barcode.
    pub fn barcode(&self) -> &str {
        self.inner.barcode.as_deref().unwrap_or_default()
    }

    /// Bytes of data recorded.
    pub fn recorded(&self) -> u64 {
        self.inner.recorded()
    }

    /// Byte offset, in the image file, of the data of block `block` of tape file `file`: for
    /// fault-injection tests and for an operator locating damage with a hex editor.
    pub fn image_offset(&self, file: u64, block: u64) -> Option<u64> {
        let (mut f, mut b) = (0, 0);
        for item in &self.inner.items {
            match *item {
                Item::Filemark { .. } => {
                    f += 1;
                    b = 0;
                }
                Item::Block { offset, .. } => {
                    if f == file && b == block {
                        return Some(offset);
                    }
                    b += 1;
                }
            }
        }
        None
    }

    fn load_impl(&mut self) -> Result<()> {
        if !self.inner.loaded {
            *self = Self::open(&self.path)?;
        }
        Ok(())
    }

    fn eject_impl(&mut self) -> Result<()> {
        if !self.inner.loaded {
            return Err(Error::NoTape {
                device: self.inner.name.clone(),
            });
        }
        self.inner
            .backing
            .flush()
            .map_err(|e| Error::io(self.inner.name.clone(), "eject", e))?;
        self.inner.pos = 0;
        self.inner.loaded = false;
        Ok(())
    }
}

delegate_tape_device!(VirtualTape);

/// The state file of a [`VirtualLibrary`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LibraryState {
    /// Slot name -> barcode of the cartridge in it.
    slots: BTreeMap<String, Option<String>>,
}

/// A library (an autoloader, or a shelf of cartridges) of virtual tapes in named slots, in one
/// directory: `library.json` (the slots) and `tapes/BARCODE.vtape` (the images).
///
/// A cartridge taken out of the library (to the offsite room) keeps its image under `tapes/`
/// but is in no slot, and cannot be loaded until it is put back.
#[derive(Debug)]
pub struct VirtualLibrary {
    dir: PathBuf,
    state: LibraryState,
}

impl VirtualLibrary {
    /// Creates a library with the given empty slots in `dir` (created if needed).
    ///
    /// # Errors
    /// [`Error::State`] when `dir` already holds a library or cannot be written.
    pub fn create(dir: impl AsRef<Path>, slots: &[&str]) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let state_err = |reason: String| Error::State {
            path: dir.join("library.json"),
            reason,
        };
        if dir.join("library.json").exists() {
            return Err(state_err("a library already exists here".into()));
        }
        std::fs::create_dir_all(dir.join("tapes")).map_err(|e| state_err(e.to_string()))?;
        let lib = Self {
            state: LibraryState {
                slots: slots.iter().map(|s| ((*s).to_owned(), None)).collect(),
            },
            dir,
        };
        lib.save()?;
        Ok(lib)
    }

    /// Opens the library in `dir`.
    ///
    /// # Errors
    /// [`Error::State`] when `library.json` is missing or unreadable.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join("library.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let state = serde_json::from_str(&text).map_err(|e| Error::State {
            path,
            reason: e.to_string(),
        })?;
        Ok(Self { dir, state })
    }

    fn save(&self) -> Result<()> {
        let path = self.dir.join("library.json");
        let text = serde_json::to_string_pretty(&self.state).map_err(|e| Error::State {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        super::catalog::write_atomically(&path, text.as_bytes())
    }

    /// The library's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The slots and the barcode in each.
    pub fn slots(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.state
            .slots
            .iter()
            .map(|(s, b)| (s.as_str(), b.as_deref()))
    }

    /// Every cartridge image known to the library, in a slot or out of it.
    ///
    /// # Errors
    /// [`Error::State`] when the tapes directory cannot be listed.
    pub fn barcodes(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("tapes");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::State {
            path: dir.clone(),
            reason: e.to_string(),
        })? {
            let entry = entry.map_err(|e| Error::State {
                path: dir.clone(),
                reason: e.to_string(),
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(barcode) = name.strip_suffix(".vtape") {
                out.push(barcode.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The slot holding `barcode`, if it is in the library.
    pub fn slot_of(&self, barcode: &str) -> Option<&str> {
        self.state
            .slots
            .iter()
            .find(|(_, b)| b.as_deref() == Some(barcode))
            .map(|(s, _)| s.as_str())
    }

    /// The image file of `barcode`.
    pub fn image_path(&self, barcode: &str) -> PathBuf {
        self.dir.join("tapes").join(format!("{barcode}.vtape"))
    }

    /// Creates a blank cartridge in the empty slot `slot`.
    ///
    /// # Errors
    /// [`Error::Config`] for an unknown or occupied slot or a barcode already known,
    /// [`Error::Io`].
    pub fn add_tape(&mut self, slot: &str, spec: &VirtualTapeSpec) -> Result<()> {
        if !spec
            .barcode
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Config {
                reason: format!("barcode {:?}: only letters, digits, - and _", spec.barcode),
            });
        }
        self.check_slot_free(slot)?;
        if self.image_path(&spec.barcode).exists() {
            return Err(Error::Config {
                reason: format!("tape {} already exists", spec.barcode),
            });
        }
        drop(VirtualTape::create(self.image_path(&spec.barcode), spec)?);
        self.state
            .slots
            .insert(slot.to_owned(), Some(spec.barcode.clone()));
        self.save()
    }

    fn check_slot_free(&self, slot: &str) -> Result<()> {
        match self.state.slots.get(slot) {
            None => Err(Error::Config {
                reason: format!("no slot named {slot}"),
            }),
            Some(Some(b)) => Err(Error::Config {
                reason: format!("slot {slot} already holds {b}"),
            }),
            Some(None) => Ok(()),
        }
    }

    /// Takes `barcode` out of its slot (it leaves the library).
    ///
    /// # Errors
    /// [`Error::UnknownTape`] when it is not in a slot.
    pub fn take_out(&mut self, barcode: &str) -> Result<()> {
        let slot = self
            .slot_of(barcode)
            .ok_or_else(|| Error::UnknownTape {
                tape: barcode.to_owned(),
            })?
            .to_owned();
        self.state.slots.insert(slot, None);
        self.save()
    }

    /// Puts `barcode` (a known image) back into the empty slot `slot`.
    ///
    /// # Errors
    /// [`Error::UnknownTape`], [`Error::Config`] for a bad slot.
    pub fn put_in(&mut self, barcode: &str, slot: &str) -> Result<()> {
        if !self.image_path(barcode).exists() || self.slot_of(barcode).is_some() {
            return Err(Error::UnknownTape {
                tape: barcode.to_owned(),
            });
        }
        self.check_slot_free(slot)?;
        self.state
            .slots
            .insert(slot.to_owned(), Some(barcode.to_owned()));
        self.save()
    }

    /// Loads `barcode` from its slot into a drive.
    ///
    /// # Errors
    /// [`Error::NoTape`] when the cartridge is not in the library, image errors.
    pub fn load(&self, barcode: &str) -> Result<VirtualTape> {
        if self.slot_of(barcode).is_none() {
            return Err(Error::NoTape {
                device: format!(
                    "{} (tape {barcode} is not in the library)",
                    self.dir.display()
                ),
            });
        }
        VirtualTape::open(self.image_path(barcode))
    }
}

/// What a [`LibraryChanger`] hands tapes out for.
#[derive(Debug, Clone)]
pub enum ChangerPurpose {
    /// Continuing a session being written: a candidate of the pool whose retention expired.
    Write {
        /// The inventory (from the catalog).
        inventory: Vec<MediaInfo>,
        /// The rotation policy.
        policy: RotationPolicy,
        /// Now.
        now: DateTime<Utc>,
    },
    /// Reading a session: the candidate that holds the requested volume.
    Read,
}

/// A [`VolumeChanger`] that takes the next tape of a set from a [`VirtualLibrary`], the way an
/// autoloader would: it tries the candidates in order and skips any that may not be used.
///
/// It borrows the library; [`OwnedLibraryChanger`] is the same changer holding a shared handle,
/// for a [`TapeJob`](super::TapeJob), which takes its changers by value.
#[derive(Debug)]
pub struct LibraryChanger<'a> {
    library: &'a VirtualLibrary,
    candidates: Vec<String>,
    purpose: ChangerPurpose,
    /// Why candidates were skipped, for the report.
    pub skipped: Vec<String>,
}

impl<'a> LibraryChanger<'a> {
    /// A changer offering `candidates` (barcodes, in order of preference).
    pub fn new(
        library: &'a VirtualLibrary,
        candidates: Vec<String>,
        purpose: ChangerPurpose,
    ) -> Self {
        Self {
            library,
            candidates,
            purpose,
            skipped: Vec::new(),
        }
    }
}

/// The first candidate not yet used by the session that loads and suits `purpose`; the others
/// tried are appended to `skipped` with the reason.
fn next_from_library(
    library: &VirtualLibrary,
    candidates: &[String],
    purpose: &ChangerPurpose,
    request: &VolumeRequest,
    skipped: &mut Vec<String>,
) -> Result<(String, VirtualTape)> {
    for barcode in candidates {
        if request.used.contains(barcode) {
            continue;
        }
        let mut tape = match library.load(barcode) {
            Ok(t) => t,
            Err(e) => {
                skipped.push(format!("{barcode}: {e}"));
                continue;
            }
        };
        let ok = match purpose {
            ChangerPurpose::Write {
                inventory,
                policy,
                now,
            } => read_label(&mut tape).and_then(|label| {
                check_pool_member(&label, &request.pool, inventory, policy, *now)
            }),
            ChangerPurpose::Read => {
                find_session_file(&mut tape, barcode, request.session, request.volume).map(|_| ())
            }
        };
        match ok {
            Ok(()) => return Ok((barcode.clone(), tape)),
            Err(e) => skipped.push(format!("{barcode}: {e}")),
        }
    }
    Err(Error::NoTapeAvailable {
        pool: request.pool.clone(),
        earliest: None,
    })
}

impl VolumeChanger for LibraryChanger<'_> {
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>> {
        let (_, tape) = next_from_library(
            self.library,
            &self.candidates,
            &self.purpose,
            request,
            &mut self.skipped,
        )?;
        Ok(Box::new(tape))
    }
}

/// What an [`OwnedLibraryChanger`] did, readable after the job that owned it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangerLog {
    /// The volume numbers it was asked for, in order.
    pub requested: Vec<u32>,
    /// The barcodes it handed out, in order.
    pub loaded: Vec<String>,
    /// The candidates it skipped, each with the reason (`BARCODE: why`).
    pub skipped: Vec<String>,
}

/// A shared view of an [`OwnedLibraryChanger`]'s [`ChangerLog`] (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct ChangerJournal(Arc<Mutex<ChangerLog>>);

impl ChangerJournal {
    /// A copy of the log so far.
    pub fn snapshot(&self) -> ChangerLog {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn with(&self, f: impl FnOnce(&mut ChangerLog)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// [`LibraryChanger`] holding a shared handle on the library instead of a borrow, so that it can
/// be given by value to a [`TapeJob`](super::TapeJob) (`Box<dyn VolumeChanger>`) and live as
/// long as the job. Same behaviour: candidates tried in order, tapes that may not be used
/// skipped. What it loaded and skipped stays readable through [`journal`](Self::journal) after
/// the job has consumed the changer.
///
/// The handle is the library as it was opened: a tape put into a slot afterwards is only seen
/// by a library opened again.
#[derive(Debug)]
pub struct OwnedLibraryChanger {
    library: Arc<VirtualLibrary>,
    candidates: Vec<String>,
    purpose: ChangerPurpose,
    journal: ChangerJournal,
}

impl OwnedLibraryChanger {
    /// A changer offering `candidates` (barcodes, in order of preference) from `library`.
    pub fn new(
        library: Arc<VirtualLibrary>,
        candidates: Vec<String>,
        purpose: ChangerPurpose,
    ) -> Self {
        Self {
            library,
            candidates,
            purpose,
            journal: ChangerJournal::default(),
        }
    }

    /// The log of what this changer loads and skips, shared with it.
    pub fn journal(&self) -> ChangerJournal {
        self.journal.clone()
    }
}

impl VolumeChanger for OwnedLibraryChanger {
    fn next_volume(&mut self, request: &VolumeRequest) -> Result<Box<dyn TapeDevice>> {
        let mut skipped = Vec::new();
        let result = next_from_library(
            &self.library,
            &self.candidates,
            &self.purpose,
            request,
            &mut skipped,
        );
        self.journal.with(|log| {
            log.requested.push(request.volume);
            log.skipped.extend(skipped);
            if let Ok((barcode, _)) = &result {
                log.loaded.push(barcode.clone());
            }
        });
        let (_, tape) = result?;
        Ok(Box::new(tape))
    }
}

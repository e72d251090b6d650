//! The logical dump stream: header, table sections, schema objects, trailer.
//!
//! Layout (all integers little-endian; `FORMAT.md`, section "Logical dump", is normative):
//!
//! ```text
//! "JFIVLDMP" (8 bytes) | version: u16 = 1 | header_len: u32 | header JSON (DumpHeader)
//! repeated per table:
//!   'T' | len: u32 | TableDef JSON
//!   repeated per row:  'R' | one encoded value per column, in column order
//!   'E' | rows: u64
//! 'O' | len: u32 | SchemaObjects JSON          (exactly once, after the last table)
//! 'Z' | len: u32 | Trailer JSON | BLAKE3-256 of every preceding byte (32 bytes) | end of stream
//! ```
//!
//! Values: a kind byte then its payload. `0x00` NULL; `0x01` integer (i64); `0x02` decimal
//! (u32 length + ASCII); `0x03` double (u64 IEEE-754 bits); `0x04` text (u32 length + UTF-8);
//! `0x05` CLOB and `0x07` BLOB (segments: u32 length + bytes, each 1..=1 MiB, ended by a zero
//! length; a CLOB's concatenated bytes are UTF-8); `0x06` RAW (u32 length + bytes); `0x08` DATE
//! (i16 year, u8 month, day, hour, minute, second); `0x09` TIMESTAMP (the DATE fields + u32
//! nanoseconds); `0x0A` TIMESTAMP WITH TIME ZONE (the TIMESTAMP fields + i16 offset minutes).
//!
//! Writer and reader hold one row at a time: memory is bounded by the largest row, and each
//! value by [`ReadLimits::max_value_bytes`] on reading.

use std::collections::BTreeSet;
use std::io::{BufReader, BufWriter, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};
use super::value::{CivilDateTime, Decimal, TzOffset, Value, ValueKind};

/// The 8 magic bytes that open a logical dump.
pub const MAGIC: &[u8; 8] = b"JFIVLDMP";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Largest LOB segment written.
pub const LOB_SEGMENT_BYTES: usize = 1 << 20;

const TAG_TABLE: u8 = b'T';
const TAG_ROW: u8 = b'R';
const TAG_TABLE_END: u8 = b'E';
const TAG_OBJECTS: u8 = b'O';
const TAG_TRAILER: u8 = b'Z';

const V_NULL: u8 = 0x00;
const V_INTEGER: u8 = 0x01;
const V_NUMBER: u8 = 0x02;
const V_FLOAT: u8 = 0x03;
const V_TEXT: u8 = 0x04;
const V_CLOB: u8 = 0x05;
const V_RAW: u8 = 0x06;
const V_BLOB: u8 = 0x07;
const V_DATE: u8 = 0x08;
const V_TIMESTAMP: u8 = 0x09;
const V_TIMESTAMP_TZ: u8 = 0x0A;

/// The SQL dialect a dump was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite: DDL is SQLite's own `CREATE` text.
    Sqlite,
    /// Oracle: DDL comes from `DBMS_METADATA.GET_DDL`.
    Oracle,
}

impl Dialect {
    /// Lower-case name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Oracle => "oracle",
        }
    }
}

/// How the export obtained a consistent view of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SnapshotMethod {
    /// One SQLite read transaction around the whole export.
    SqliteReadTransaction,
    /// Every table read with `AS OF SCN` (Oracle flashback query) at the recorded SCN.
    OracleFlashbackScn,
    /// One Oracle `SET TRANSACTION READ ONLY` transaction around the whole export.
    OracleReadOnlyTransaction,
}

/// The consistent point the data was read at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// How consistency was obtained.
    pub method: SnapshotMethod,
    /// Oracle system change number of the snapshot (decimal text), if any.
    pub scn: Option<String>,
    /// Server version string, if known.
    pub server_version: Option<String>,
}

/// The header of a dump (JSON after the magic and version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpHeader {
    /// Dialect of the DDL and of the source types.
    pub dialect: Dialect,
    /// Schema (Oracle owner) exported, if the dialect has schemas.
    pub schema: Option<String>,
    /// Human description of the source (file path, `host:port/service`); never a password.
    pub source: String,
    /// The consistent point.
    pub snapshot: SnapshotInfo,
    /// When the export started (injected clock).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Program that wrote the dump (`jfiv-backup 0.1.0`).
    pub producer: String,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Column name, as the database spells it.
    pub name: String,
    /// Logical kind of its values ([`ValueKind::Any`] for SQLite).
    pub kind: ValueKind,
    /// The database's own type (`NUMBER(10,2)`, `VARCHAR2`, SQLite declared type...).
    pub source_type: String,
    /// Whether `NULL` is allowed.
    pub nullable: bool,
    /// Length in characters (character types) or bytes (`RAW`), if any.
    pub length: Option<u32>,
    /// Decimal precision, if any.
    pub precision: Option<u32>,
    /// Decimal scale, if any.
    pub scale: Option<i32>,
}

/// One table: its DDL and the columns whose values the row records carry, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    /// Table name.
    pub name: String,
    /// `CREATE TABLE` text in the dump's dialect (without foreign keys for Oracle).
    pub ddl: String,
    /// Stored columns (generated/virtual columns are in the DDL, not here).
    pub columns: Vec<ColumnDef>,
    /// Primary-key column names, in key order (empty if none).
    pub primary_key: Vec<String>,
}

/// The kind of a schema object created after the rows are loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectKind {
    /// An index not backing a constraint.
    Index,
    /// A foreign key (referential constraint).
    ForeignKey,
    /// A view.
    View,
    /// A stored function, procedure or package.
    Routine,
    /// A trigger (created last, so it never fires during the load).
    Trigger,
}

/// A schema object other than a table, with its DDL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    /// Kind.
    pub kind: ObjectKind,
    /// Name.
    pub name: String,
    /// Table it belongs to, if any.
    pub table: Option<String>,
    /// DDL in the dump's dialect (one statement).
    pub ddl: String,
}

/// A sequence and its position, so that a restored application never reuses a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDef {
    /// Sequence name (SQLite: the `AUTOINCREMENT` table's name).
    pub name: String,
    /// Next value to hand out at restore (Oracle `LAST_NUMBER`; SQLite `seq + increment`
    /// is not used: SQLite stores `seq`, the last value handed out).
    pub value: String,
    /// Increment, decimal text.
    pub increment_by: String,
    /// Minimum, decimal text, if any.
    pub min_value: Option<String>,
    /// Maximum, decimal text, if any.
    pub max_value: Option<String>,
    /// Cache size (0: `NOCACHE`).
    pub cache: u64,
    /// Whether it cycles.
    pub cycle: bool,
    /// Whether `ORDER` is set.
    pub order: bool,
}

/// The schema objects and sequences of a dump (one record, after the tables).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObjects {
    /// Objects in creation order (indexes, foreign keys, views, routines, triggers).
    pub objects: Vec<SchemaObject>,
    /// Sequences, read after the table data so that their values cover every exported row.
    pub sequences: Vec<SequenceDef>,
}

/// Row count of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCount {
    /// Table name.
    pub name: String,
    /// Rows written.
    pub rows: u64,
}

/// The trailer: per-table row counts, checked against the table sections on reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Tables in dump order with their row counts.
    pub tables: Vec<TableCount>,
    /// Sum of the row counts.
    pub total_rows: u64,
}

/// What a finished dump contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpSummary {
    /// The trailer written.
    pub trailer: Trailer,
    /// BLAKE3 of the dump (the last 32 bytes of the stream).
    pub blake3: [u8; 32],
    /// Total size of the stream in bytes.
    pub bytes: u64,
}

/// Writes a logical dump, one row at a time.
#[derive(Debug)]
pub struct DumpWriter<W: Write> {
    out: BufWriter<W>,
    hasher: blake3::Hasher,
    offset: u64,
    table: Option<(TableDef, u64)>,
    names: BTreeSet<String>,
    counts: Vec<TableCount>,
    total: u64,
    objects_written: bool,
}

impl<W: Write> DumpWriter<W> {
    /// Starts a dump: writes the magic, version and header.
    ///
    /// # Errors
    /// [`Error::Io`] if the output fails.
    pub fn new(out: W, header: &DumpHeader) -> Result<Self> {
        let mut w = Self {
            out: BufWriter::with_capacity(256 * 1024, out),
            hasher: blake3::Hasher::new(),
            offset: 0,
            table: None,
            names: BTreeSet::new(),
            counts: Vec::new(),
            total: 0,
            objects_written: false,
        };
        w.put(MAGIC)?;
        w.put(&FORMAT_VERSION.to_le_bytes())?;
        w.put_json(header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.offset += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io("writing the logical dump", e))
    }

    fn put_len(&mut self, len: usize) -> Result<()> {
        let len = u32::try_from(len)
            .map_err(|_| Error::format(self.offset, format!("length {len} exceeds u32")))?;
        self.put(&len.to_le_bytes())
    }

    fn put_json<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let json = serde_json::to_vec(value)
            .map_err(|e| Error::format(self.offset, format!("cannot encode metadata: {e}")))?;
        self.put_len(json.len())?;
        self.put(&json)
    }

    /// Opens a table section.
    ///
    /// # Errors
    /// [`Error::Format`] if a table is already open, the objects were already written, or the
    /// name repeats; [`Error::Io`] on output failure.
    pub fn begin_table(&mut self, def: &TableDef) -> Result<()> {
        if self.table.is_some() || self.objects_written {
            return Err(Error::format(
                self.offset,
                "table section opened out of order",
            ));
        }
        if !self.names.insert(def.name.clone()) {
            return Err(Error::format(
                self.offset,
                format!("table {} written twice", def.name),
            ));
        }
        self.put(&[TAG_TABLE])?;
        self.put_json(def)?;
        self.table = Some((def.clone(), 0));
        Ok(())
    }

    /// Writes one row of the open table.
    ///
    /// # Errors
    /// [`Error::Format`] if no table is open, the row has the wrong number of values, or a value
    /// does not fit its column's kind; [`Error::Io`] on output failure.
    pub fn write_row(&mut self, row: &[Value]) -> Result<()> {
        let Some((def, _)) = &self.table else {
            return Err(Error::format(self.offset, "row outside a table section"));
        };
        if row.len() != def.columns.len() {
            return Err(Error::format(
                self.offset,
                format!(
                    "table {}: row of {} values for {} columns",
                    def.name,
                    row.len(),
                    def.columns.len()
                ),
            ));
        }
        if let Some((c, v)) = def
            .columns
            .iter()
            .zip(row)
            .find(|(c, v)| !c.kind.accepts(v))
        {
            return Err(Error::format(
                self.offset,
                format!(
                    "table {}, column {}: a {:?} value in a {:?} column",
                    def.name,
                    c.name,
                    v.kind(),
                    c.kind
                ),
            ));
        }
        self.put(&[TAG_ROW])?;
        for v in row {
            self.put_value(v)?;
        }
        if let Some((_, n)) = &mut self.table {
            *n += 1;
        }
        Ok(())
    }

    fn put_segments(&mut self, bytes: &[u8]) -> Result<()> {
        for seg in bytes.chunks(LOB_SEGMENT_BYTES) {
            self.put_len(seg.len())?;
            self.put(seg)?;
        }
        self.put(&0u32.to_le_bytes())
    }

    fn put_civil(&mut self, t: &CivilDateTime, with_nanos: bool) -> Result<()> {
        // Fields are range-checked by CivilDateTime::new, so the casts are exact.
        #[allow(clippy::cast_possible_truncation)]
        let mut b = Vec::with_capacity(11);
        b.extend_from_slice(&(t.year() as i16).to_le_bytes());
        #[allow(clippy::cast_possible_truncation)]
        b.extend_from_slice(&[
            t.month() as u8,
            t.day() as u8,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
        ]);
        if with_nanos {
            b.extend_from_slice(&t.nanosecond().to_le_bytes());
        }
        self.put(&b)
    }

    fn put_value(&mut self, v: &Value) -> Result<()> {
        match v {
            Value::Null => self.put(&[V_NULL]),
            Value::Integer(i) => {
                self.put(&[V_INTEGER])?;
                self.put(&i.to_le_bytes())
            }
            Value::Number(d) => {
                self.put(&[V_NUMBER])?;
                self.put_len(d.as_str().len())?;
                self.put(d.as_str().as_bytes())
            }
            Value::Float(f) => {
                self.put(&[V_FLOAT])?;
                self.put(&f.to_bits().to_le_bytes())
            }
            Value::Text(s) => {
                self.put(&[V_TEXT])?;
                self.put_len(s.len())?;
                self.put(s.as_bytes())
            }
            Value::Raw(b) => {
                self.put(&[V_RAW])?;
                self.put_len(b.len())?;
                self.put(b)
            }
            Value::Clob(s) => {
                self.put(&[V_CLOB])?;
                self.put_segments(s.as_bytes())
            }
            Value::Blob(b) => {
                self.put(&[V_BLOB])?;
                self.put_segments(b)
            }
            Value::Date(t) => {
                self.put(&[V_DATE])?;
                self.put_civil(t, false)
            }
            Value::Timestamp(t) => {
                self.put(&[V_TIMESTAMP])?;
                self.put_civil(t, true)
            }
            Value::TimestampTz(t, tz) => {
                self.put(&[V_TIMESTAMP_TZ])?;
                self.put_civil(t, true)?;
                // Range-checked by TzOffset.
                #[allow(clippy::cast_possible_truncation)]
                self.put(&(tz.minutes() as i16).to_le_bytes())
            }
        }
    }

    /// Closes the open table section; returns its row count.
    ///
    /// # Errors
    /// [`Error::Format`] if no table is open; [`Error::Io`] on output failure.
    pub fn end_table(&mut self) -> Result<u64> {
        let Some((def, rows)) = self.table.take() else {
            return Err(Error::format(self.offset, "no table section to close"));
        };
        self.put(&[TAG_TABLE_END])?;
        self.put(&rows.to_le_bytes())?;
        self.counts.push(TableCount {
            name: def.name,
            rows,
        });
        self.total += rows;
        Ok(rows)
    }

    /// Writes the schema objects and sequences (once, after the last table).
    ///
    /// # Errors
    /// [`Error::Format`] if a table is open or objects were already written; [`Error::Io`].
    pub fn write_objects(&mut self, objects: &SchemaObjects) -> Result<()> {
        if self.table.is_some() || self.objects_written {
            return Err(Error::format(self.offset, "objects record out of order"));
        }
        self.put(&[TAG_OBJECTS])?;
        self.put_json(objects)?;
        self.objects_written = true;
        Ok(())
    }

    /// Writes the trailer and its BLAKE3, flushes, and returns the output and a summary.
    ///
    /// # Errors
    /// [`Error::Format`] if a table is still open or the objects were not written;
    /// [`Error::Io`] on output failure.
    pub fn finish(mut self) -> Result<(W, DumpSummary)> {
        if self.table.is_some() || !self.objects_written {
            return Err(Error::format(
                self.offset,
                "dump finished with an open table or without its objects record",
            ));
        }
        let trailer = Trailer {
            tables: std::mem::take(&mut self.counts),
            total_rows: self.total,
        };
        self.put(&[TAG_TRAILER])?;
        self.put_json(&trailer)?;
        let digest = *self.hasher.finalize().as_bytes();
        self.out
            .write_all(&digest)
            .map_err(|e| Error::io("writing the logical dump trailer", e))?;
        let bytes = self.offset + 32;
        let out = self
            .out
            .into_inner()
            .map_err(|e| Error::io("flushing the logical dump", e.into_error()))?;
        Ok((
            out,
            DumpSummary {
                trailer,
                blake3: digest,
                bytes,
            },
        ))
    }
}

/// Bounds on what a reader accepts, so that a damaged or hostile dump cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest single value (text, RAW, whole LOB) accepted, in bytes. Default 256 MiB.
    pub max_value_bytes: u64,
    /// Largest JSON metadata record accepted, in bytes. Default 64 MiB.
    pub max_metadata_bytes: u32,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 256 << 20,
            max_metadata_bytes: 64 << 20,
        }
    }
}

/// One item of a dump, in stream order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DumpItem {
    /// A table section starts.
    TableStart(TableDef),
    /// A row of the current table.
    Row(Vec<Value>),
    /// The current table section ends, with its verified row count.
    TableEnd(TableCount),
    /// The schema objects and sequences.
    Objects(SchemaObjects),
    /// The trailer, after its BLAKE3 and counts were verified and the end of the stream reached.
    End(Trailer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Tables,
    InTable,
    AfterObjects,
    Done,
}

/// Reads and verifies a logical dump, one item at a time.
#[derive(Debug)]
pub struct DumpReader<R: Read> {
    inp: BufReader<R>,
    hasher: blake3::Hasher,
    offset: u64,
    header: DumpHeader,
    state: ReadState,
    table: Option<(TableDef, u64)>,
    names: BTreeSet<String>,
    counts: Vec<TableCount>,
    total: u64,
    limits: ReadLimits,
}

impl<R: Read> DumpReader<R> {
    /// Opens a dump: reads and checks the magic, version and header.
    ///
    /// # Errors
    /// [`Error::Format`] for a stream that is not a logical dump, [`Error::UnsupportedVersion`],
    /// [`Error::Io`].
    pub fn new(input: R, limits: ReadLimits) -> Result<Self> {
        let mut r = Self {
            inp: BufReader::with_capacity(256 * 1024, input),
            hasher: blake3::Hasher::new(),
            offset: 0,
            header: DumpHeader {
                dialect: Dialect::Sqlite,
                schema: None,
                source: String::new(),
                snapshot: SnapshotInfo {
                    method: SnapshotMethod::SqliteReadTransaction,
                    scn: None,
                    server_version: None,
                },
                created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                producer: String::new(),
            },
            state: ReadState::Tables,
            table: None,
            names: BTreeSet::new(),
            counts: Vec::new(),
            total: 0,
            limits,
        };
        let mut magic = [0u8; 8];
        r.take_exact(&mut magic, "the magic")?;
        if &magic != MAGIC {
            return Err(Error::format(0, "not a jfiv logical dump (bad magic)"));
        }
        let version = u16::from_le_bytes(r.take_array("the format version")?);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        r.header = r.take_json("the header")?;
        Ok(r)
    }

    /// The dump's header.
    #[must_use]
    pub fn header(&self) -> &DumpHeader {
        &self.header
    }

    /// Current offset in the stream.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn take_exact(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        match self.inp.read_exact(buf) {
            Ok(()) => {
                self.hasher.update(buf);
                self.offset += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Error::format(
                self.offset,
                format!("truncated dump while reading {what}"),
            )),
            Err(e) => Err(Error::io(format!("reading {what}"), e)),
        }
    }

    fn take_array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.take_exact(&mut b, what)?;
        Ok(b)
    }

    fn take_vec(&mut self, len: u64, limit: u64, what: &str) -> Result<Vec<u8>> {
        if len > limit {
            return Err(Error::format(
                self.offset,
                format!("{what}: length {len} exceeds the limit of {limit} bytes"),
            ));
        }
        let mut v = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.take_exact(&mut v, what)?;
        Ok(v)
    }

    fn take_u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    fn take_json<T: DeserializeOwned>(&mut self, what: &str) -> Result<T> {
        let at = self.offset;
        let len = self.take_u32(what)?;
        let bytes = self.take_vec(
            u64::from(len),
            u64::from(self.limits.max_metadata_bytes),
            what,
        )?;
        serde_json::from_slice(&bytes).map_err(|e| Error::format(at, format!("{what}: {e}")))
    }

    fn take_string(&mut self, bytes: Vec<u8>, at: u64, what: &str) -> Result<String> {
        String::from_utf8(bytes).map_err(|_| Error::format(at, format!("{what} is not UTF-8")))
    }

    fn take_segments(&mut self, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let len = self.take_u32(what)?;
            if len == 0 {
                return Ok(out);
            }
            if len as usize > LOB_SEGMENT_BYTES {
                return Err(Error::format(
                    self.offset,
                    format!("{what}: segment of {len} bytes exceeds 1 MiB"),
                ));
            }
            let room = self.limits.max_value_bytes.saturating_sub(out.len() as u64);
            let seg = self.take_vec(u64::from(len), room, what)?;
            out.extend_from_slice(&seg);
        }
    }

    fn take_civil(&mut self, with_nanos: bool, at: u64) -> Result<CivilDateTime> {
        let year = i16::from_le_bytes(self.take_array("a date")?);
        let f: [u8; 5] = self.take_array("a date")?;
        let nanos = if with_nanos {
            self.take_u32("a timestamp")?
        } else {
            0
        };
        CivilDateTime::new(
            i32::from(year),
            u32::from(f[0]),
            u32::from(f[1]),
            u32::from(f[2]),
            u32::from(f[3]),
            u32::from(f[4]),
            nanos,
        )
        .map_err(|e| Error::format(at, e))
    }

    fn take_value(&mut self) -> Result<Value> {
        let at = self.offset;
        let [tag] = self.take_array::<1>("a value kind")?;
        let max = self.limits.max_value_bytes;
        Ok(match tag {
            V_NULL => Value::Null,
            V_INTEGER => Value::Integer(i64::from_le_bytes(self.take_array("an integer")?)),
            V_NUMBER => {
                let len = self.take_u32("a decimal")?;
                let b = self.take_vec(u64::from(len), max, "a decimal")?;
                let s = self.take_string(b, at, "a decimal")?;
                Value::Number(
                    Decimal::parse(&s)
                        .map_err(|t| Error::format(at, format!("invalid decimal {t:?}")))?,
                )
            }
            V_FLOAT => Value::Float(f64::from_bits(u64::from_le_bytes(
                self.take_array("a double")?,
            ))),
            V_TEXT => {
                let len = self.take_u32("a text")?;
                let b = self.take_vec(u64::from(len), max, "a text")?;
                Value::Text(self.take_string(b, at, "a text")?)
            }
            V_RAW => {
                let len = self.take_u32("a RAW")?;
                Value::Raw(self.take_vec(u64::from(len), max, "a RAW")?)
            }
            V_CLOB => {
                let b = self.take_segments("a CLOB")?;
                Value::Clob(self.take_string(b, at, "a CLOB")?)
            }
            V_BLOB => Value::Blob(self.take_segments("a BLOB")?),
            V_DATE => Value::Date(self.take_civil(false, at)?),
            V_TIMESTAMP => Value::Timestamp(self.take_civil(true, at)?),
            V_TIMESTAMP_TZ => {
                let t = self.take_civil(true, at)?;
                let m = i16::from_le_bytes(self.take_array("a time-zone offset")?);
                Value::TimestampTz(
                    t,
                    TzOffset::from_minutes(i32::from(m)).map_err(|e| Error::format(at, e))?,
                )
            }
            other => {
                return Err(Error::format(
                    at,
                    format!("unknown value kind 0x{other:02x}"),
                ));
            }
        })
    }

    /// Reads the next item.
    ///
    /// The last item is [`DumpItem::End`], returned only once the BLAKE3 of the whole stream and
    /// every row count matched and nothing follows the trailer. Calling again after it is an
    /// error.
    ///
    /// # Errors
    /// [`Error::Format`] for a malformed stream (with its offset), [`Error::Integrity`] for a
    /// hash or count mismatch, [`Error::Io`].
    pub fn next_item(&mut self) -> Result<DumpItem> {
        let at = self.offset;
        if self.state == ReadState::Done {
            return Err(Error::format(at, "read past the end of the dump"));
        }
        let [tag] = self.take_array::<1>("a record tag")?;
        match (self.state, tag) {
            (ReadState::Tables, TAG_TABLE) => {
                let def: TableDef = self.take_json("a table definition")?;
                if !self.names.insert(def.name.clone()) {
                    return Err(Error::format(
                        at,
                        format!("table {} appears twice", def.name),
                    ));
                }
                self.table = Some((def.clone(), 0));
                self.state = ReadState::InTable;
                Ok(DumpItem::TableStart(def))
            }
            (ReadState::InTable, TAG_ROW) => {
                let ncols = self.table.as_ref().map_or(0, |(d, _)| d.columns.len());
                let mut row = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    let vat = self.offset;
                    let v = self.take_value()?;
                    if let Some((d, _)) = &self.table {
                        let c = &d.columns[i];
                        if !c.kind.accepts(&v) {
                            return Err(Error::format(
                                vat,
                                format!(
                                    "table {}, column {}: a {:?} value in a {:?} column",
                                    d.name,
                                    c.name,
                                    v.kind(),
                                    c.kind
                                ),
                            ));
                        }
                    }
                    row.push(v);
                }
                if let Some((_, n)) = &mut self.table {
                    *n += 1;
                }
                Ok(DumpItem::Row(row))
            }
            (ReadState::InTable, TAG_TABLE_END) => {
                let recorded = u64::from_le_bytes(self.take_array("a row count")?);
                let (def, seen) = self
                    .table
                    .take()
                    .ok_or_else(|| Error::format(at, "table end without table"))?;
                if recorded != seen {
                    return Err(Error::Integrity {
                        what: format!("row count of table {}", def.name),
                        expected: recorded.to_string(),
                        actual: seen.to_string(),
                    });
                }
                let count = TableCount {
                    name: def.name,
                    rows: seen,
                };
                self.counts.push(count.clone());
                self.total += seen;
                self.state = ReadState::Tables;
                Ok(DumpItem::TableEnd(count))
            }
            (ReadState::Tables, TAG_OBJECTS) => {
                let objects: SchemaObjects = self.take_json("the schema objects")?;
                self.state = ReadState::AfterObjects;
                Ok(DumpItem::Objects(objects))
            }
            (ReadState::AfterObjects, TAG_TRAILER) => {
                let trailer: Trailer = self.take_json("the trailer")?;
                let computed = *self.hasher.finalize().as_bytes();
                let mut stored = [0u8; 32];
                match self.inp.read_exact(&mut stored) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return Err(Error::format(self.offset, "truncated dump: BLAKE3 missing"));
                    }
                    Err(e) => return Err(Error::io("reading the dump's BLAKE3", e)),
                }
                self.offset += 32;
                if stored != computed {
                    return Err(Error::Integrity {
                        what: "BLAKE3 of the dump".into(),
                        expected: hex_of(&stored),
                        actual: hex_of(&computed),
                    });
                }
                let mut extra = [0u8; 1];
                match self.inp.read(&mut extra) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(Error::format(self.offset, "data after the dump's trailer"));
                    }
                    Err(e) => return Err(Error::io("reading past the trailer", e)),
                }
                if trailer.tables != self.counts || trailer.total_rows != self.total {
                    return Err(Error::Integrity {
                        what: "trailer row counts".into(),
                        expected: format!("{:?} (total {})", trailer.tables, trailer.total_rows),
                        actual: format!("{:?} (total {})", self.counts, self.total),
                    });
                }
                self.state = ReadState::Done;
                Ok(DumpItem::End(trailer))
            }
            (state, tag) => Err(Error::format(
                at,
                format!("unexpected record tag 0x{tag:02x} in state {state:?}"),
            )),
        }
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a whole dump, checking its structure, counts and BLAKE3, without keeping any row.
///
/// # Errors
/// As [`DumpReader::next_item`].
pub fn verify_dump<R: Read>(input: R, limits: ReadLimits) -> Result<(DumpHeader, Trailer)> {
    let mut r = DumpReader::new(input, limits)?;
    loop {
        if let DumpItem::End(t) = r.next_item()? {
            return Ok((r.header().clone(), t));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn header(dialect: Dialect) -> DumpHeader {
        DumpHeader {
            dialect,
            schema: Some("JFIV".into()),
            source: "test".into(),
            snapshot: SnapshotInfo {
                method: SnapshotMethod::OracleFlashbackScn,
                scn: Some("1234567".into()),
                server_version: None,
            },
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            producer: "test".into(),
        }
    }

    fn col(name: &str, kind: ValueKind) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            kind,
            source_type: format!("{kind:?}"),
            nullable: true,
            length: None,
            precision: None,
            scale: None,
        }
    }

    pub(crate) fn every_kind_table() -> (TableDef, Vec<Vec<Value>>) {
        let kinds = [
            ValueKind::Integer,
            ValueKind::Number,
            ValueKind::Float,
            ValueKind::Text,
            ValueKind::Clob,
            ValueKind::Raw,
            ValueKind::Blob,
            ValueKind::Date,
            ValueKind::Timestamp,
            ValueKind::TimestampTz,
        ];
        let def = TableDef {
            name: "ALL_KINDS".into(),
            ddl: "CREATE TABLE ALL_KINDS (...)".into(),
            columns: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| col(&format!("C{i}"), *k))
                .collect(),
            primary_key: vec![],
        };
        let t = CivilDateTime::new(2025, 12, 31, 23, 59, 59, 999_999_999).unwrap();
        let big_clob: String = "é".repeat(LOB_SEGMENT_BYTES); // 2 MiB of UTF-8, split mid-char
        let big_blob: Vec<u8> = (0..(LOB_SEGMENT_BYTES * 2 + 7))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let full = vec![
            Value::Integer(i64::MIN),
            Value::Number(Decimal::parse("-12345678901234567890123456789012345678E-130").unwrap()),
            Value::Float(-0.0),
            Value::Text("Mme Dupont née Martin, 12 rue de l'Hôpital ".into()),
            Value::Clob(big_clob),
            Value::Raw(vec![0, 255, 7]),
            Value::Blob(big_blob),
            Value::Date(CivilDateTime::new(-4712, 1, 1, 0, 0, 0, 0).unwrap()),
            Value::Timestamp(t),
            Value::TimestampTz(t, TzOffset::from_minutes(60).unwrap()),
        ];
        let nulls = vec![Value::Null; kinds.len()];
        let empties = vec![
            Value::Integer(0),
            Value::Number(Decimal::parse("0").unwrap()),
            Value::Float(f64::MIN_POSITIVE / 2.0),
            Value::Text(String::new()),
            Value::Clob(String::new()),
            Value::Raw(vec![]),
            Value::Blob(vec![]),
            Value::Date(CivilDateTime::new(9999, 12, 31, 23, 59, 59, 0).unwrap()),
            Value::Timestamp(CivilDateTime::new(1970, 1, 1, 0, 0, 0, 1).unwrap()),
            Value::TimestampTz(t, TzOffset::from_minutes(-959).unwrap()),
        ];
        (def, vec![full, nulls, empties])
    }

    fn write_dump(tables: &[(TableDef, Vec<Vec<Value>>)]) -> Vec<u8> {
        let mut w = DumpWriter::new(Vec::new(), &header(Dialect::Oracle)).unwrap();
        for (def, rows) in tables {
            w.begin_table(def).unwrap();
            for r in rows {
                w.write_row(r).unwrap();
            }
            assert_eq!(w.end_table().unwrap(), rows.len() as u64);
        }
        w.write_objects(&SchemaObjects::default()).unwrap();
        let (out, summary) = w.finish().unwrap();
        assert_eq!(summary.bytes, out.len() as u64);
        assert_eq!(&out[out.len() - 32..], &summary.blake3);
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<DumpItem>> {
        let mut r = DumpReader::new(bytes, ReadLimits::default())?;
        let mut items = Vec::new();
        loop {
            let it = r.next_item()?;
            let end = matches!(it, DumpItem::End(_));
            items.push(it);
            if end {
                return Ok(items);
            }
        }
    }

    #[test]
    fn every_value_kind_round_trips_exactly() {
        let (def, rows) = every_kind_table();
        let bytes = write_dump(&[(def.clone(), rows.clone())]);
        let items = read_all(&bytes).unwrap();
        assert_eq!(items[0], DumpItem::TableStart(def));
        let read_rows: Vec<Vec<Value>> = items
            .iter()
            .filter_map(|i| match i {
                DumpItem::Row(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        // f64 -0.0 == 0.0 under PartialEq: compare the bits too.
        assert_eq!(read_rows, rows);
        assert!(matches!(read_rows[0][2], Value::Float(f) if f.to_bits() == (-0.0f64).to_bits()));
        match items.last().unwrap() {
            DumpItem::End(t) => {
                assert_eq!(t.total_rows, 3);
                assert_eq!(t.tables[0].rows, 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let (def, rows) = every_kind_table();
        let small: Vec<Vec<Value>> = vec![rows[1].clone(), rows[2].clone()];
        let bytes = write_dump(&[(def, small)]);
        // Every 7th byte: flipping any bit must fail (format, integrity or version error).
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(read_all(&b).is_err(), "flip at {i} not detected");
        }
    }

    #[test]
    fn truncation_and_trailing_garbage_are_detected() {
        let (def, rows) = every_kind_table();
        let bytes = write_dump(&[(def, vec![rows[1].clone()])]);
        for cut in [0, 5, 9, bytes.len() / 2, bytes.len() - 1] {
            let e = read_all(&bytes[..cut]).unwrap_err();
            assert!(matches!(e, Error::Format { .. }), "cut {cut}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_all(&longer), Err(Error::Format { .. })));
        let mut v = bytes;
        v[8] = 2;
        assert!(matches!(
            read_all(&v),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }

    #[test]
    fn oversized_values_are_refused_before_allocation() {
        let (def, rows) = every_kind_table();
        let bytes = write_dump(&[(def, vec![rows[0].clone()])]);
        let limits = ReadLimits {
            max_value_bytes: 1 << 20,
            ..ReadLimits::default()
        };
        let mut r = DumpReader::new(&bytes[..], limits).unwrap();
        assert!(matches!(r.next_item().unwrap(), DumpItem::TableStart(_)));
        let e = r.next_item().unwrap_err();
        assert!(e.to_string().contains("exceeds the limit"), "{e}");
    }

    #[test]
    fn writer_refuses_rows_that_do_not_fit_the_table() {
        let (def, _) = every_kind_table();
        let mut w = DumpWriter::new(Vec::new(), &header(Dialect::Oracle)).unwrap();
        assert!(w.write_row(&[]).is_err());
        w.begin_table(&def).unwrap();
        assert!(w.write_row(&[Value::Null]).is_err());
        let mut wrong = vec![Value::Null; def.columns.len()];
        wrong[0] = Value::Text("not an integer".into());
        assert!(w.write_row(&wrong).is_err());
        assert!(w.begin_table(&def).is_err());
    }
}

//! The shared export and restore logic, over any [`Database`].

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::database::{Database, RestoreMode, SkippedObject};
use super::error::{Error, Result};
use super::format::{
    DumpHeader, DumpItem, DumpReader, DumpSummary, DumpWriter, ReadLimits, TableCount, TableDef,
};
use super::value::Value;

/// Options of a logical export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Start time written in the header (from the injected clock).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Program name and version written in the header.
    pub producer: String,
}

impl ExportOptions {
    /// Options with the given start time and this crate as producer.
    #[must_use]
    pub fn at(created_at: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            created_at,
            producer: concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The header written.
    pub header: DumpHeader,
    /// Row counts, BLAKE3, size.
    pub dump: DumpSummary,
}

/// Exports every table of `db` as of one consistent snapshot into `out`.
///
/// Memory stays bounded by one row (plus the schema metadata): rows go from the database cursor
/// to the output one at a time.
///
/// # Errors
/// Database errors, [`Error::Io`] from `out`; on error the snapshot is released and what was
/// written to `out` is not a valid dump (it has no trailer).
pub fn export<W: Write>(
    db: &mut dyn Database,
    out: W,
    options: &ExportOptions,
) -> Result<(W, ExportSummary)> {
    let snapshot = db.begin_snapshot()?;
    let result = export_inner(db, out, options, snapshot);
    let end = db.end_snapshot();
    let (w, summary) = result?;
    end?;
    Ok((w, summary))
}

fn export_inner<W: Write>(
    db: &mut dyn Database,
    out: W,
    options: &ExportOptions,
    snapshot: super::format::SnapshotInfo,
) -> Result<(W, ExportSummary)> {
    let header = DumpHeader {
        dialect: db.dialect(),
        schema: db.schema(),
        source: db.describe(),
        snapshot,
        created_at: options.created_at,
        producer: options.producer.clone(),
    };
    let tables = db.tables()?;
    let mut writer = DumpWriter::new(out, &header)?;
    for table in &tables {
        writer.begin_table(table)?;
        let scanned = db.scan_table(table, &mut |row| writer.write_row(&row))?;
        let written = writer.end_table()?;
        if scanned != written {
            return Err(Error::Integrity {
                what: format!("rows exported from table {}", table.name),
                expected: scanned.to_string(),
                actual: written.to_string(),
            });
        }
    }
    let objects = db.objects()?;
    writer.write_objects(&objects)?;
    let (w, dump) = writer.finish()?;
    Ok((w, ExportSummary { header, dump }))
}

/// Options of a logical restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// What to do with a non-empty target.
    pub mode: RestoreMode,
    /// Rows per insert batch (array insert on Oracle). Default 500.
    pub batch_rows: usize,
    /// Approximate bytes per insert batch; a batch is flushed when either bound is reached.
    /// Default 8 MiB.
    pub batch_bytes: usize,
    /// Bounds applied while reading the dump.
    pub limits: ReadLimits,
    /// Row counts recorded elsewhere (the backup manifest) that the restored tables must also
    /// match; tables missing from the dump but present here are an error.
    pub expected_counts: Option<BTreeMap<String, u64>>,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            mode: RestoreMode::RefuseNonEmpty,
            batch_rows: 500,
            batch_bytes: 8 << 20,
            limits: ReadLimits::default(),
            expected_counts: None,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// Header of the dump restored.
    pub header: DumpHeader,
    /// Row counts of the restored tables, each equal to the dump's (checked).
    pub tables: Vec<TableCount>,
    /// Objects deliberately not created (cross-dialect restore).
    pub skipped: Vec<SkippedObject>,
    /// Sequences restored.
    pub sequences: usize,
}

/// Restores a dump from `input` into `db`.
///
/// Rows are inserted in batches bounded by [`RestoreOptions::batch_rows`] and
/// [`RestoreOptions::batch_bytes`]; each table's count is compared with the dump's and with
/// [`RestoreOptions::expected_counts`]; the dump's BLAKE3 is verified before
/// [`Database::finish_restore`] makes the result durable (on SQLite nothing is committed
/// before; on Oracle, whose DDL commits, a failed restore leaves a partial schema that the error
/// tells to drop).
///
/// # Errors
/// [`Error::TargetNotEmpty`] (unless [`RestoreMode::ReplaceExisting`]),
/// [`Error::RowCountMismatch`], dump format and integrity errors, database errors.
pub fn restore<R: Read>(
    input: R,
    db: &mut dyn Database,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    let mut reader = DumpReader::new(input, options.limits)?;
    if options.mode == RestoreMode::RefuseNonEmpty {
        let existing = db.existing_objects()?;
        if !existing.is_empty() {
            return Err(Error::TargetNotEmpty {
                target: db.describe(),
                count: existing.len(),
                examples: existing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let header = reader.header().clone();
    db.begin_restore(&header, options.mode)?;
    match restore_inner(&mut reader, db, options, header) {
        Ok(report) => Ok(report),
        Err(e) => {
            db.abort_restore();
            Err(e)
        }
    }
}

fn restore_inner<R: Read>(
    reader: &mut DumpReader<R>,
    db: &mut dyn Database,
    options: &RestoreOptions,
    header: DumpHeader,
) -> Result<RestoreReport> {
    let dialect = header.dialect;
    let mut report = RestoreReport {
        header,
        tables: Vec::new(),
        skipped: Vec::new(),
        sequences: 0,
    };
    let mut current: Option<TableDef> = None;
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut batch_bytes = 0usize;
    loop {
        match reader.next_item()? {
            DumpItem::TableStart(def) => {
                db.create_table(dialect, &def)?;
                current = Some(def);
            }
            DumpItem::Row(row) => {
                let Some(t) = &current else {
                    return Err(Error::format(reader.offset(), "row outside a table"));
                };
                batch_bytes += row.iter().map(Value::approx_size).sum::<usize>();
                batch.push(row);
                if batch.len() >= options.batch_rows.max(1) || batch_bytes >= options.batch_bytes {
                    flush(db, t, &mut batch)?;
                    batch_bytes = 0;
                }
            }
            DumpItem::TableEnd(count) => {
                let Some(t) = current.take() else {
                    return Err(Error::format(reader.offset(), "table end without table"));
                };
                flush(db, &t, &mut batch)?;
                batch_bytes = 0;
                let actual = db.count_rows(&t)?;
                if actual != count.rows {
                    return Err(Error::RowCountMismatch {
                        table: t.name,
                        expected: count.rows,
                        actual,
                    });
                }
                if let Some(expected) = options
                    .expected_counts
                    .as_ref()
                    .and_then(|m| m.get(&t.name))
                    && *expected != actual
                {
                    return Err(Error::RowCountMismatch {
                        table: t.name,
                        expected: *expected,
                        actual,
                    });
                }
                report.tables.push(count);
            }
            DumpItem::Objects(objects) => {
                report.skipped = db.create_objects(dialect, &objects)?;
                report.sequences = objects.sequences.len();
            }
            DumpItem::End(_) => break,
        }
    }
    if let Some(expected) = &options.expected_counts {
        for (name, rows) in expected {
            if !report.tables.iter().any(|t| &t.name == name) {
                return Err(Error::RowCountMismatch {
                    table: name.clone(),
                    expected: *rows,
                    actual: 0,
                });
            }
        }
    }
    db.finish_restore()?;
    Ok(report)
}

fn flush(db: &mut dyn Database, table: &TableDef, batch: &mut Vec<Vec<Value>>) -> Result<()> {
    if !batch.is_empty() {
        db.insert_rows(table, batch)?;
        batch.clear();
    }
    Ok(())
}

//! End-to-end tests of the shared logic on SQLite, and of the Oracle-dump-to-SQLite path.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;

use super::format::tests::{every_kind_table, header};
use super::*;

const JFIV_SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    nip TEXT NOT NULL UNIQUE,
    nom TEXT NOT NULL,
    prenom TEXT,
    date_naissance TEXT,
    poids_kg REAL,
    photo BLOB,
    notes TEXT
);
CREATE TABLE cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    type TEXT NOT NULL CHECK (type IN ('IIU', 'FIV', 'ICSI', 'TEC')),
    debut TEXT NOT NULL,
    dose_fsh DECIMAL_TEXT,
    ovocytes INTEGER,
    resultat TEXT
);
CREATE TABLE journal (id INTEGER PRIMARY KEY, msg TEXT);
CREATE TABLE documents (
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    nom TEXT NOT NULL,
    contenu BLOB,
    PRIMARY KEY (patient_id, nom)
) WITHOUT ROWID;
CREATE TABLE mesures (
    id INTEGER PRIMARY KEY,
    cycle_id INTEGER REFERENCES cycles(id),
    valeur NUMERIC,
    double_valeur REAL GENERATED ALWAYS AS (valeur * 2) VIRTUAL
);
CREATE INDEX cycles_patient ON cycles(patient_id, debut);
CREATE VIEW cycles_fiv AS SELECT * FROM cycles WHERE type IN ('FIV', 'ICSI');
CREATE TRIGGER cycles_journal AFTER INSERT ON cycles
BEGIN INSERT INTO journal (msg) VALUES ('cycle ' || NEW.id); END;
";

fn photo(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A JFIV-like database with every SQLite value kind, NULLs, big decimals and BLOBs.
pub(crate) fn make_jfiv(path: &Path) {
    let c = Connection::open(path).unwrap();
    c.execute_batch(JFIV_SCHEMA).unwrap();
    let mut p = c
        .prepare("INSERT INTO patients (nip, nom, prenom, date_naissance, poids_kg, photo, notes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .unwrap();
    for i in 0..60u32 {
        let prenom: Option<String> = (i % 5 != 0).then(|| format!("Prénom-{i} « é ß 漢 »"));
        let poids: Option<f64> = match i % 4 {
            0 => None,
            1 => Some(-0.0),
            2 => Some(f64::MAX),
            _ => Some(f64::from(i) + 0.1),
        };
        let photo: Option<Vec<u8>> = match i {
            0 => Some(photo(7, 3 * 1024 * 1024 + 17)), // several LOB segments
            _ if i % 3 == 0 => Some(Vec::new()),
            _ if i % 3 == 1 => None,
            _ => Some(photo(i as u8, 100 + i as usize)),
        };
        p.execute(rusqlite::params![
            format!("NIP{i:05}"),
            format!("Nom {i}"),
            prenom,
            format!("19{:02}-0{}-1{}", 70 + i % 30, 1 + i % 9, i % 10),
            poids,
            photo,
            (i % 7 == 0).then(|| "x".repeat(10_000)),
        ])
        .unwrap();
    }
    drop(p);
    let types = ["IIU", "FIV", "ICSI", "TEC"];
    for i in 0..150u32 {
        c.execute(
            "INSERT INTO cycles (patient_id, type, debut, dose_fsh, ovocytes, resultat) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                1 + i % 60,
                types[(i % 4) as usize],
                format!("2024-{:02}-{:02}", 1 + i % 12, 1 + i % 28),
                match i % 3 {
                    0 => Some("12345678901234567890.123456789012345678".to_owned()),
                    1 => Some(format!("{}.5", 150 + i)),
                    _ => None,
                },
                match i % 4 {
                    0 => Some(i64::MAX),
                    1 => Some(i64::MIN),
                    2 => None,
                    _ => Some(i64::from(i)),
                },
                (i % 2 == 0).then_some("grossesse évolutive"),
            ],
        )
        .unwrap();
    }
    for i in 0..20u32 {
        c.execute(
            "INSERT INTO documents VALUES (?1, ?2, ?3)",
            rusqlite::params![
                1 + i % 60,
                format!("compte-rendu-{i}.pdf"),
                photo(i as u8, 5000)
            ],
        )
        .unwrap();
    }
    // SQLite's dynamic typing: one NUMERIC column holding integers, reals, text and NULL.
    c.execute_batch(
        "INSERT INTO mesures (cycle_id, valeur) VALUES (1, 42), (2, 3.25), (3, 'n/a'), (4, NULL),
         (5, -9223372036854775808);",
    )
    .unwrap();
}

type Rows = Vec<Vec<(String, rusqlite::types::Value)>>;

fn table_contents(c: &Connection, table: &str) -> Rows {
    let mut s = c
        .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1, 2"))
        .unwrap();
    let n = s.column_count();
    s.query_map([], |r| {
        (0..n)
            .map(|i| {
                let v: rusqlite::types::Value = r.get(i)?;
                let ty = match &v {
                    rusqlite::types::Value::Null => "null",
                    rusqlite::types::Value::Integer(_) => "integer",
                    rusqlite::types::Value::Real(_) => "real",
                    rusqlite::types::Value::Text(_) => "text",
                    rusqlite::types::Value::Blob(_) => "blob",
                };
                // Compare reals bit for bit (-0.0 vs 0.0).
                let ty = match &v {
                    rusqlite::types::Value::Real(f) => format!("real:{:016x}", f.to_bits()),
                    _ => ty.to_owned(),
                };
                Ok((ty, v))
            })
            .collect()
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn scalar(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn export_file(src: &Path) -> (Vec<u8>, ExportSummary) {
    let mut db = SqliteDatabase::open_for_export(src).unwrap();
    export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap()
}

const TABLES: [&str; 5] = ["cycles", "documents", "journal", "mesures", "patients"];

#[test]
fn sqlite_round_trip_keeps_every_row_value_and_object() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let (dump, summary) = export_file(&src);
    let counts: BTreeMap<String, u64> = summary
        .dump
        .trailer
        .tables
        .iter()
        .map(|t| (t.name.clone(), t.rows))
        .collect();
    assert_eq!(counts["patients"], 60);
    assert_eq!(counts["cycles"], 150);
    assert_eq!(
        counts["journal"], 150,
        "the trigger filled the journal at the source"
    );
    assert_eq!(counts["mesures"], 5);

    let dst = dir.path().join("restored.db");
    let mut target = SqliteDatabase::open_for_restore(&dst).unwrap();
    let options = RestoreOptions {
        batch_rows: 7, // many batches, including a partial last one
        expected_counts: Some(counts.clone()),
        ..RestoreOptions::default()
    };
    let report = restore(&dump[..], &mut target, &options).unwrap();
    assert_eq!(report.tables, summary.dump.trailer.tables);
    assert!(report.skipped.is_empty());
    assert_eq!(report.sequences, 2);
    drop(target);

    let a = Connection::open(&src).unwrap();
    let b = Connection::open(&dst).unwrap();
    for t in TABLES {
        let (x, y) = (table_contents(&a, t), table_contents(&b, t));
        assert_eq!(x.len() as u64, counts[t], "{t}");
        assert_eq!(x, y, "table {t} differs");
    }
    // The trigger was created after the load: it did not fire for restored rows...
    assert_eq!(scalar(&b, "SELECT count(*) FROM journal"), 150);
    // ...but it works for new ones, as do the view, the index, AUTOINCREMENT and the FKs.
    b.execute_batch("PRAGMA foreign_keys = ON; INSERT INTO cycles (patient_id, type, debut) VALUES (1, 'FIV', '2025-01-01');")
        .unwrap();
    assert_eq!(scalar(&b, "SELECT count(*) FROM journal"), 151);
    assert_eq!(scalar(&b, "SELECT max(id) FROM cycles"), 151);
    assert_eq!(
        scalar(&b, "SELECT count(*) FROM cycles_fiv"),
        scalar(&a, "SELECT count(*) FROM cycles_fiv") + 1
    );
    assert_eq!(
        scalar(
            &b,
            "SELECT count(*) FROM sqlite_master WHERE name = 'cycles_patient'"
        ),
        1
    );
    assert!(
        b.execute(
            "INSERT INTO cycles (patient_id, type, debut) VALUES (999, 'FIV', 'x')",
            []
        )
        .is_err(),
        "foreign keys are enforced in the restored database"
    );
    let ok: String = b
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

/// Delegates to a SQLite database and writes into the source from another connection while
/// the export runs, between two tables.
#[derive(Debug)]
struct ConcurrentWriter {
    inner: SqliteDatabase,
    other: Connection,
    scans: usize,
}

impl Database for ConcurrentWriter {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn schema(&self) -> Option<String> {
        self.inner.schema()
    }
    fn begin_snapshot(&mut self) -> Result<SnapshotInfo> {
        self.inner.begin_snapshot()
    }
    fn tables(&mut self) -> Result<Vec<TableDef>> {
        self.inner.tables()
    }
    fn scan_table(
        &mut self,
        table: &TableDef,
        each: &mut dyn FnMut(Vec<Value>) -> Result<()>,
    ) -> Result<u64> {
        self.scans += 1;
        // A clinician records a new patient and a new cycle while the export runs.
        self.other
            .execute_batch(
                "INSERT INTO patients (nip, nom) VALUES ('NEW' || random(), 'pendant export');
                 INSERT INTO cycles (patient_id, type, debut) VALUES (1, 'TEC', '2025-02-02');",
            )
            .unwrap();
        self.inner.scan_table(table, each)
    }
    fn objects(&mut self) -> Result<SchemaObjects> {
        self.inner.objects()
    }
    fn end_snapshot(&mut self) -> Result<()> {
        self.inner.end_snapshot()
    }
    fn existing_objects(&mut self) -> Result<Vec<String>> {
        self.inner.existing_objects()
    }
    fn begin_restore(&mut self, header: &DumpHeader, mode: RestoreMode) -> Result<()> {
        self.inner.begin_restore(header, mode)
    }
    fn create_table(&mut self, source: Dialect, table: &TableDef) -> Result<()> {
        self.inner.create_table(source, table)
    }
    fn insert_rows(&mut self, table: &TableDef, rows: &[Vec<Value>]) -> Result<()> {
        self.inner.insert_rows(table, rows)
    }
    fn count_rows(&mut self, table: &TableDef) -> Result<u64> {
        self.inner.count_rows(table)
    }
    fn create_objects(
        &mut self,
        source: Dialect,
        objects: &SchemaObjects,
    ) -> Result<Vec<SkippedObject>> {
        self.inner.create_objects(source, objects)
    }
    fn finish_restore(&mut self) -> Result<()> {
        self.inner.finish_restore()
    }
    fn abort_restore(&mut self) {
        self.inner.abort_restore();
    }
}

#[test]
fn export_is_consistent_while_clinicians_keep_writing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let mut db = ConcurrentWriter {
        inner: SqliteDatabase::open_for_export(&src).unwrap(),
        other: Connection::open(&src).unwrap(),
        scans: 0,
    };
    let (dump, summary) =
        export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap();
    assert_eq!(db.scans, 5);
    let c = Connection::open(&src).unwrap();
    // The writes happened (5 patients, 5 cycles, 5 journal lines)...
    assert_eq!(scalar(&c, "SELECT count(*) FROM patients"), 65);
    assert_eq!(scalar(&c, "SELECT count(*) FROM journal"), 155);
    // ...but the dump is the database as it was when the export started.
    let rows: BTreeMap<_, _> = summary
        .dump
        .trailer
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    assert_eq!(rows["patients"], 60);
    assert_eq!(rows["cycles"], 150);
    assert_eq!(rows["journal"], 150);
    let mut target = SqliteDatabase::open_for_restore(&dir.path().join("r.db")).unwrap();
    let report = restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap();
    assert_eq!(report.tables, summary.dump.trailer.tables);
    // The AUTOINCREMENT positions are those of the snapshot too.
    assert_eq!(
        scalar(
            target.connection(),
            "SELECT seq FROM sqlite_sequence WHERE name = 'patients'"
        ),
        60
    );
}

#[test]
fn restore_refuses_a_non_empty_target_unless_told_to_replace() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let (dump, _) = export_file(&src);
    let dst = dir.path().join("busy.db");
    Connection::open(&dst)
        .unwrap()
        .execute_batch("CREATE TABLE patients (x); INSERT INTO patients VALUES ('keep me');")
        .unwrap();
    let mut target = SqliteDatabase::open_for_restore(&dst).unwrap();
    let err = restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap_err();
    match &err {
        Error::TargetNotEmpty {
            count, examples, ..
        } => {
            assert_eq!(*count, 1);
            assert!(examples.contains("table patients"), "{examples}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        scalar(target.connection(), "SELECT count(*) FROM patients"),
        1
    );

    let replace = RestoreOptions {
        mode: RestoreMode::ReplaceExisting,
        ..RestoreOptions::default()
    };
    let report = restore(&dump[..], &mut target, &replace).unwrap();
    assert_eq!(report.tables.len(), 5);
    assert_eq!(
        scalar(target.connection(), "SELECT count(*) FROM patients"),
        60
    );
}

#[test]
fn a_damaged_dump_leaves_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let (mut dump, _) = export_file(&src);
    // Damage the last byte of the BLAKE3: everything parses, only the hash tells.
    let last = dump.len() - 1;
    dump[last] ^= 1;
    let dst = dir.path().join("r.db");
    let mut target = SqliteDatabase::open_for_restore(&dst).unwrap();
    let err = restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert!(
        target.existing_objects().unwrap().is_empty(),
        "nothing committed"
    );
}

#[test]
fn manifest_counts_that_disagree_fail_the_restore() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let (dump, _) = export_file(&src);
    let mut expected = BTreeMap::new();
    expected.insert("patients".to_owned(), 61u64);
    let mut target = SqliteDatabase::open_for_restore(&dir.path().join("r.db")).unwrap();
    let options = RestoreOptions {
        expected_counts: Some(expected),
        ..RestoreOptions::default()
    };
    let err = restore(&dump[..], &mut target, &options).unwrap_err();
    assert!(
        matches!(&err, Error::RowCountMismatch { table, expected: 61, actual: 60 } if table == "patients"),
        "{err}"
    );
    assert!(target.existing_objects().unwrap().is_empty());
}

#[test]
fn orphan_rows_are_reported_as_foreign_key_violations() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    Connection::open(&src)
        .unwrap()
        .execute_batch(
            "PRAGMA foreign_keys = OFF; INSERT INTO documents VALUES (4242, 'orphelin', NULL);",
        )
        .unwrap();
    let (dump, _) = export_file(&src);
    let mut target = SqliteDatabase::open_for_restore(&dir.path().join("r.db")).unwrap();
    let err = restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::ForeignKeyViolation { table, parent, violations: 1, .. } if table == "documents" && parent == "patients"),
        "{err}"
    );
    assert!(target.existing_objects().unwrap().is_empty());
}

#[test]
fn virtual_tables_are_refused_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("fts.db");
    Connection::open(&src)
        .unwrap()
        .execute_batch("CREATE VIRTUAL TABLE notes USING fts5(texte);")
        .unwrap();
    let mut db = SqliteDatabase::open_for_export(&src).unwrap();
    let err = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedObject { name, .. } if name == "notes"),
        "{err}"
    );
}

fn ocol(
    name: &str,
    kind: ValueKind,
    source_type: &str,
    p: Option<u32>,
    s: Option<i32>,
) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        kind,
        source_type: source_type.into(),
        nullable: name != "ID",
        length: None,
        precision: p,
        scale: s,
    }
}

/// An Oracle-dialect dump as `OracleDatabase` writes it, restored into SQLite: the clinicians'
/// degraded read-only copy.
#[test]
fn oracle_dump_becomes_a_read_only_sqlite_copy() {
    let table = TableDef {
        name: "PATIENTS".into(),
        ddl: "CREATE TABLE \"JFIV\".\"PATIENTS\" (\"ID\" NUMBER(10,0) NOT NULL ENABLE, ...)".into(),
        columns: vec![
            ocol("ID", ValueKind::Number, "NUMBER(10,0)", Some(10), Some(0)),
            ocol(
                "DOSE",
                ValueKind::Number,
                "NUMBER(38,20)",
                Some(38),
                Some(20),
            ),
            ocol("SCORE", ValueKind::Number, "NUMBER", None, None),
            ocol("POIDS", ValueKind::Float, "BINARY_DOUBLE", None, None),
            ocol("NOM", ValueKind::Text, "VARCHAR2(100 CHAR)", None, None),
            ocol("SEXE", ValueKind::Text, "CHAR(3)", None, None),
            ocol("NAISSANCE", ValueKind::Date, "DATE", None, None),
            ocol("MAJ", ValueKind::Timestamp, "TIMESTAMP(6)", None, None),
            ocol(
                "RDV",
                ValueKind::TimestampTz,
                "TIMESTAMP(6) WITH TIME ZONE",
                None,
                None,
            ),
            ocol("EMPREINTE", ValueKind::Raw, "RAW(16)", None, None),
            ocol("NOTES", ValueKind::Clob, "CLOB", None, None),
            ocol("PHOTO", ValueKind::Blob, "BLOB", None, None),
        ],
        primary_key: vec!["ID".into()],
    };
    let d = |s: &str| Value::Number(Decimal::parse(s).unwrap());
    let t = CivilDateTime::new(2024, 3, 1, 8, 30, 0, 123_456_000).unwrap();
    let rows = vec![
        vec![
            d("1"),
            d("123456789012345678.12345678901234567890"),
            d("1E+125"),
            Value::Float(72.5),
            Value::Text("Dupont".into()),
            Value::Text("F  ".into()),
            Value::Date(CivilDateTime::new(1985, 7, 14, 0, 0, 0, 0).unwrap()),
            Value::Timestamp(t),
            Value::TimestampTz(t, TzOffset::from_minutes(60).unwrap()),
            Value::Raw(vec![0xde, 0xad]),
            Value::Clob("compte rendu".repeat(1000)),
            Value::Blob(photo(1, 70_000)),
        ],
        {
            let mut r = vec![Value::Null; 12];
            r[0] = d("2");
            r
        },
    ];
    let objects = SchemaObjects {
        objects: vec![SchemaObject {
            kind: ObjectKind::Trigger,
            name: "PATIENTS_BI".into(),
            table: Some("PATIENTS".into()),
            ddl: "CREATE OR REPLACE TRIGGER ...".into(),
        }],
        sequences: vec![SequenceDef {
            name: "PATIENTS_SEQ".into(),
            value: "1021".into(),
            increment_by: "1".into(),
            min_value: Some("1".into()),
            max_value: Some("9999999999999999999999999999".into()),
            cache: 20,
            cycle: false,
            order: false,
        }],
    };
    let mut w = DumpWriter::new(Vec::new(), &header(Dialect::Oracle)).unwrap();
    w.begin_table(&table).unwrap();
    for r in &rows {
        w.write_row(r).unwrap();
    }
    w.end_table().unwrap();
    w.write_objects(&objects).unwrap();
    let (dump, _) = w.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let dst = dir.path().join("jfiv-degrade.db");
    let mut target = SqliteDatabase::open_for_restore(&dst)
        .unwrap()
        .read_only_after_restore(true);
    let report = restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap();
    assert_eq!(report.tables[0].rows, 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].object.name, "PATIENTS_BI");
    drop(target);

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dst).unwrap().permissions().mode() & 0o777,
        0o444
    );
    let c = Connection::open_with_flags(&dst, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let row: Vec<(String, String)> = c
        .query_row("SELECT * FROM PATIENTS WHERE ID = 1", [], |r| {
            (0..12)
                .map(|i| {
                    let v = r.get_ref(i)?;
                    let text = match v {
                        rusqlite::types::ValueRef::Blob(b) => format!("{} bytes", b.len()),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).chars().take(40).collect()
                        }
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Null => "NULL".into(),
                    };
                    Ok((format!("{:?}", v.data_type()), text))
                })
                .collect()
        })
        .unwrap();
    let notes: String = "compte rendu".repeat(4).chars().take(40).collect();
    let expect = [
        ("Integer", "1"),
        ("Text", "123456789012345678.12345678901234567890"),
        ("Text", "1E+125"),
        ("Real", "72.5"),
        ("Text", "Dupont"),
        ("Text", "F  "),
        ("Text", "1985-07-14 00:00:00"),
        ("Text", "2024-03-01 08:30:00.123456"),
        ("Text", "2024-03-01 08:30:00.123456+01:00"),
        ("Blob", "2 bytes"),
        ("Text", notes.as_str()),
        ("Blob", "70000 bytes"),
    ];
    for (i, (ty, text)) in expect.iter().enumerate() {
        assert_eq!(
            (row[i].0.as_str(), row[i].1.as_str()),
            (*ty, *text),
            "column {i}"
        );
    }
    let nulls: i64 = scalar(
        &c,
        "SELECT count(*) FROM PATIENTS WHERE ID = 2 AND DOSE IS NULL AND PHOTO IS NULL AND RDV IS NULL",
    );
    assert_eq!(nulls, 1);
    let next: String = c
        .query_row(
            &format!("SELECT next_value FROM {ORACLE_SEQUENCES_TABLE} WHERE name = 'PATIENTS_SEQ'"),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(next, "1021");
    // The primary key was kept.
    let pk: i64 = scalar(
        &c,
        "SELECT pk FROM pragma_table_info('PATIENTS') WHERE name = 'ID'",
    );
    assert_eq!(pk, 1);
}

fn memory_sqlite() -> Box<dyn Database> {
    Box::new(SqliteDatabase::from_connection(
        Connection::open_in_memory().unwrap(),
        Path::new(":memory:"),
    ))
}

fn sqlite_sample() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    export_file(&src).0
}

fn oracle_sample() -> Vec<u8> {
    let (def, rows) = every_kind_table();
    let mut w = DumpWriter::new(Vec::new(), &header(Dialect::Oracle)).unwrap();
    w.begin_table(&def).unwrap();
    for r in &rows {
        w.write_row(r).unwrap();
    }
    w.end_table().unwrap();
    w.write_objects(&SchemaObjects::default()).unwrap();
    w.finish().unwrap().0
}

crate::logical_database_conformance!(sqlite_conformance, memory_sqlite, sqlite_sample());
crate::logical_database_conformance!(
    sqlite_degraded_copy_conformance,
    memory_sqlite,
    oracle_sample()
);

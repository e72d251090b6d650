//! The Oracle logic against a mocked connection (SQL issued, type mapping, error mapping), and
//! the live tests that run when `JFIV_TEST_ORACLE` is set.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use super::error::{FailureCode, OraFailure};
use super::session::{MockOracleSession, RowStream, StreamError};
use super::sql::{self, BindType};
use super::*;
use crate::logical::format::{DumpItem, DumpReader, ReadLimits};
use crate::logical::value::{CivilDateTime, Decimal, TzOffset, ValueKind};
use crate::logical::{ExportOptions, RestoreOptions, export, restore};

type Log = Arc<Mutex<Vec<String>>>;

struct VecStream(VecDeque<Result<Option<Vec<Value>>, StreamError>>);

impl RowStream for VecStream {
    fn next_row(&mut self) -> Result<Option<Vec<Value>>, StreamError> {
        self.0.pop_front().unwrap_or(Ok(None))
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn d(v: &str) -> Value {
    Value::Number(Decimal::parse(v).unwrap())
}

fn patients_rows() -> Vec<Vec<Value>> {
    let t = CivilDateTime::new(2024, 5, 6, 7, 8, 9, 10).unwrap();
    vec![
        vec![
            d("1"),
            Value::Text("Martin".into()),
            d("-12345678901234567890.12345678901234567"),
            Value::Date(CivilDateTime::new(1990, 1, 31, 0, 0, 0, 0).unwrap()),
            Value::TimestampTz(t, TzOffset::from_minutes(120).unwrap()),
            Value::Blob(vec![1, 2, 3]),
        ],
        vec![
            d("2"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    ]
}

/// A fake JFIV dictionary answering the queries `OracleDatabase` sends.
fn dictionary(sql_text: &str, binds: &[String]) -> Result<Vec<Vec<Option<String>>>, OraFailure> {
    let b: Vec<&str> = binds.iter().map(String::as_str).collect();
    Ok(match (sql_text, b.as_slice()) {
        (sql::LIST_TABLES, ["JFIV"]) => vec![vec![s("CYCLES")], vec![s("PATIENTS")]],
        (sql::LIST_COLUMNS, ["JFIV", "PATIENTS"]) => vec![
            vec![
                s("ID"),
                s("NUMBER"),
                s("22"),
                s("10"),
                s("0"),
                s("N"),
                s("0"),
            ],
            vec![
                s("NOM"),
                s("VARCHAR2"),
                s("400"),
                None,
                None,
                s("Y"),
                s("100"),
            ],
            vec![s("DOSE"), s("NUMBER"), s("22"), None, None, s("Y"), s("0")],
            vec![
                s("NAISSANCE"),
                s("DATE"),
                s("7"),
                None,
                None,
                s("Y"),
                s("0"),
            ],
            vec![
                s("RDV"),
                s("TIMESTAMP(6) WITH TIME ZONE"),
                s("13"),
                None,
                s("6"),
                s("Y"),
                s("0"),
            ],
            vec![s("PHOTO"), s("BLOB"), s("4000"), None, None, s("Y"), s("0")],
        ],
        (sql::LIST_COLUMNS, ["JFIV", "CYCLES"]) => vec![
            vec![
                s("ID"),
                s("NUMBER"),
                s("22"),
                s("10"),
                s("0"),
                s("N"),
                s("0"),
            ],
            vec![
                s("PATIENT_ID"),
                s("NUMBER"),
                s("22"),
                s("10"),
                s("0"),
                s("N"),
                s("0"),
            ],
            vec![s("TYPE"), s("CHAR"), s("4"), None, None, s("N"), s("4")],
        ],
        (sql::PRIMARY_KEY, ["JFIV", _]) => vec![vec![s("ID")]],
        (sql::GET_DDL, [ty, name, "JFIV"]) => {
            let text = match *ty {
                "TRIGGER" => format!(
                    "CREATE OR REPLACE EDITIONABLE TRIGGER \"JFIV\".\"{name}\" BEFORE INSERT ON \"JFIV\".\"CYCLES\" FOR EACH ROW BEGIN NULL; END;\nALTER TRIGGER \"JFIV\".\"{name}\" ENABLE"
                ),
                _ => format!("  CREATE {ty} \"JFIV\".\"{name}\" (...)  "),
            };
            vec![vec![Some(text)]]
        }
        (sql::LIST_INDEXES, ["JFIV"]) => vec![vec![s("CYCLES_PATIENT_IX"), s("CYCLES")]],
        (sql::LIST_FOREIGN_KEYS, ["JFIV"]) => vec![vec![s("CYCLES_PATIENT_FK"), s("CYCLES")]],
        (sql::LIST_TRIGGERS, ["JFIV"]) => vec![vec![s("CYCLES_BI"), s("CYCLES")]],
        (sql::LIST_CODE, ["JFIV"]) => vec![
            vec![s("VIEW"), s("CYCLES_FIV")],
            vec![s("PACKAGE"), s("JFIV_UTIL")],
        ],
        (sql::CURRENT_SCN, []) => vec![vec![s("4242")]],
        (sql::LIST_SEQUENCES, ["JFIV"]) => vec![vec![
            s("CYCLES_SEQ"),
            s("1021"),
            s("1"),
            s("1"),
            s("9999999999999999999999999999"),
            s("20"),
            s("N"),
            s("N"),
        ]],
        (sql::EXISTING_OBJECTS, [_]) => vec![],
        (other, binds) => panic!("unexpected query {other} {binds:?}"),
    })
}

/// A mocked JFIV schema: records every statement, answers the dictionary, streams rows.
fn mock_source(log: &Log, cycles_failure: Option<OraFailure>) -> MockOracleSession {
    let mut m = MockOracleSession::new();
    let l = log.clone();
    m.expect_execute().returning(move |sql, _| {
        l.lock().unwrap().push(sql.to_owned());
        Ok(())
    });
    let l = log.clone();
    m.expect_query_strings().returning(move |sql, binds| {
        l.lock().unwrap().push(format!("QUERY {sql}"));
        dictionary(sql, binds)
    });
    let l = log.clone();
    let failure = Mutex::new(cycles_failure);
    m.expect_query_rows().returning(move |sql, kinds, limit| {
        l.lock()
            .unwrap()
            .push(format!("ROWS {sql} {kinds:?} {limit}"));
        let rows: VecDeque<_> = if sql.contains("\"PATIENTS\"") {
            patients_rows().into_iter().map(|r| Ok(Some(r))).collect()
        } else {
            let mut v: VecDeque<_> = (1..=3)
                .map(|i| {
                    Ok(Some(vec![
                        d(&i.to_string()),
                        d("1"),
                        Value::Text("FIV ".into()),
                    ]))
                })
                .collect();
            if let Some(f) = failure.lock().unwrap().take() {
                v.insert(1, Err(StreamError::Oracle(f)));
            }
            v
        };
        Ok(Box::new(VecStream(rows)) as Box<dyn RowStream>)
    });
    let l = log.clone();
    m.expect_commit().returning(move || {
        l.lock().unwrap().push("COMMIT".into());
        Ok(())
    });
    m.expect_rollback().returning(|| Ok(()));
    m.expect_server_version()
        .returning(|| Ok("19.3.0.0.0 (Oracle Database 19c)".into()));
    m
}

fn config(consistency: Consistency) -> OracleConfig {
    let mut c = OracleConfig::new("jfiv", SecretString::from("pw-never-shown"), "db:1521/JFIV");
    c.consistency = consistency;
    c
}

fn export_mock(consistency: Consistency, log: &Log) -> Result<Vec<u8>> {
    let mut db =
        OracleDatabase::with_session(Box::new(mock_source(log, None)), &config(consistency))?;
    let (dump, _) = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now()))?;
    Ok(dump)
}

fn position(log: &[String], needle: &str) -> usize {
    log.iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not issued; log: {log:#?}"))
}

#[test]
fn export_reads_every_table_as_of_the_recorded_scn() {
    let log = Log::default();
    let dump = export_mock(Consistency::FlashbackScn, &log).unwrap();
    let log = log.lock().unwrap().clone();
    // Session settings first, then DBMS_METADATA, then the SCN, then the data, then sequences.
    assert_eq!(log[..5], sql::SESSION_SETUP.map(String::from));
    let meta = position(&log, "SESSION_TRANSFORM");
    let scn = position(&log, "GET_SYSTEM_CHANGE_NUMBER");
    let data = position(
        &log,
        "ROWS SELECT \"ID\", \"PATIENT_ID\", \"TYPE\" FROM \"JFIV\".\"CYCLES\" AS OF SCN 4242",
    );
    let patients = position(
        &log,
        "ROWS SELECT \"ID\", \"NOM\", \"DOSE\", \"NAISSANCE\", \"RDV\", \"PHOTO\" FROM \"JFIV\".\"PATIENTS\" AS OF SCN 4242 [Number, Text, Number, Date, TimestampTz, Blob] 268435456",
    );
    let seq = position(&log, "all_sequences");
    assert!(
        meta < scn && scn < data && data < patients && patients < seq,
        "{log:#?}"
    );
    assert!(!log.iter().any(|l| l.contains("READ ONLY")));

    let mut r = DumpReader::new(&dump[..], ReadLimits::default()).unwrap();
    assert_eq!(r.header().snapshot.scn.as_deref(), Some("4242"));
    assert_eq!(
        r.header().snapshot.method,
        SnapshotMethod::OracleFlashbackScn
    );
    assert_eq!(r.header().schema.as_deref(), Some("JFIV"));
    let mut items = Vec::new();
    loop {
        let it = r.next_item().unwrap();
        let end = matches!(it, DumpItem::End(_));
        items.push(it);
        if end {
            break;
        }
    }
    let DumpItem::TableStart(cycles) = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!(cycles.ddl, "CREATE TABLE \"JFIV\".\"CYCLES\" (...)");
    assert_eq!(cycles.primary_key, ["ID"]);
    assert_eq!(cycles.columns[2].source_type, "CHAR(4)");
    assert!(!cycles.columns[2].nullable);
    let rows: Vec<&Vec<Value>> = items
        .iter()
        .filter_map(|i| match i {
            DumpItem::Row(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(*rows[3], patients_rows()[0]);
    let DumpItem::Objects(objects) = &items[items.len() - 2] else {
        panic!()
    };
    let kinds: Vec<(ObjectKind, &str)> = objects
        .objects
        .iter()
        .map(|o| (o.kind, o.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ObjectKind::Index, "CYCLES_PATIENT_IX"),
            (ObjectKind::ForeignKey, "CYCLES_PATIENT_FK"),
            (ObjectKind::View, "CYCLES_FIV"),
            (ObjectKind::Routine, "JFIV_UTIL"),
            (ObjectKind::Trigger, "CYCLES_BI"),
        ]
    );
    assert!(
        objects.objects[4].ddl.ends_with("END;"),
        "ALTER TRIGGER stripped"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("QUERY") && l.contains("GET_DDL"))
    );
    assert_eq!(objects.sequences[0].value, "1021");
    assert_eq!(objects.sequences[0].cache, 20);
}

#[test]
fn read_only_transaction_mode_wraps_the_reads() {
    let log = Log::default();
    export_mock(Consistency::ReadOnlyTransaction, &log).unwrap();
    let log = log.lock().unwrap().clone();
    let ro = position(&log, "SET TRANSACTION READ ONLY");
    let first_commit = position(&log, "COMMIT");
    let data = position(
        &log,
        "ROWS SELECT \"ID\", \"PATIENT_ID\", \"TYPE\" FROM \"JFIV\".\"CYCLES\" [",
    );
    assert!(first_commit < ro && ro < data, "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("AS OF SCN")));
    assert_eq!(
        log.last().map(String::as_str),
        Some("COMMIT"),
        "read-only transaction ended"
    );
}

#[test]
fn snapshot_too_old_names_the_table_and_scn() {
    let log = Log::default();
    let failure =
        OraFailure::from_message("ORA-01555: snapshot too old: rollback segment number 3");
    let mut db = OracleDatabase::with_session(
        Box::new(mock_source(&log, Some(failure))),
        &config(Consistency::FlashbackScn),
    )
    .unwrap();
    let err = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap_err();
    match &err {
        Error::Oracle(OracleError::SnapshotTooOld { table, scn }) => {
            assert_eq!((table.as_str(), scn.as_str()), ("CYCLES", "4242"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("UNDO_RETENTION"));
}

#[test]
fn lossy_column_types_stop_the_export_before_any_row() {
    let mut m = MockOracleSession::new();
    m.expect_execute().returning(|_, _| Ok(()));
    m.expect_query_strings().returning(|sql_text, binds| {
        if sql_text == sql::LIST_COLUMNS {
            Ok(vec![vec![
                s("NOTES"),
                s("LONG"),
                s("0"),
                None,
                None,
                s("Y"),
                s("0"),
            ]])
        } else {
            dictionary(sql_text, binds)
        }
    });
    m.expect_query_rows().never();
    let mut db =
        OracleDatabase::with_session(Box::new(m), &config(Consistency::FlashbackScn)).unwrap();
    let err = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap_err();
    assert!(
        matches!(&err, Error::UnsupportedType { column, source_type, .. } if column == "NOTES" && source_type == "LONG"),
        "{err}"
    );
}

#[test]
fn oversized_lobs_are_a_typed_error() {
    let mut m = mock_source(&Log::default(), None);
    m.checkpoint();
    m.expect_execute().returning(|_, _| Ok(()));
    m.expect_query_strings().returning(dictionary);
    m.expect_server_version().returning(|| Ok("19c".into()));
    m.expect_query_rows().returning(|_, _, _| {
        Ok(
            Box::new(VecStream(VecDeque::from([Err(StreamError::TooLarge {
                column: 2,
                size: 1 << 40,
            })]))) as Box<dyn RowStream>,
        )
    });
    let mut db =
        OracleDatabase::with_session(Box::new(m), &config(Consistency::FlashbackScn)).unwrap();
    let err = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap_err();
    assert!(
        matches!(&err, Error::ValueTooLarge { table, column, .. } if table == "CYCLES" && column == "TYPE"),
        "{err}"
    );
}

/// A mocked empty target schema `JFIV_NEW` that records statements and array inserts.
fn mock_target(log: &Log, existing: Vec<&'static str>, count_offset: u64) -> MockOracleSession {
    let mut m = MockOracleSession::new();
    let l = log.clone();
    m.expect_execute().returning(move |sql, _| {
        l.lock().unwrap().push(sql.to_owned());
        Ok(())
    });
    let l = log.clone();
    let inserted: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let ins = inserted.clone();
    m.expect_query_strings().returning(move |sql_text, binds| {
        l.lock()
            .unwrap()
            .push(format!("QUERY {sql_text} {binds:?}"));
        if sql_text == sql::EXISTING_OBJECTS {
            assert_eq!(binds, ["JFIV_NEW"]);
            return Ok(existing.iter().map(|e| vec![s(e)]).collect());
        }
        if sql_text == sql::OBJECT_EXISTS {
            return Ok(vec![vec![s(if binds[1] == "PATIENTS" {
                "1"
            } else {
                "0"
            })]]);
        }
        if let Some(table) = sql_text.strip_prefix("SELECT COUNT(*) FROM \"JFIV_NEW\".") {
            let n = ins.lock().unwrap().get(table).copied().unwrap_or(0) + count_offset;
            return Ok(vec![vec![Some(n.to_string())]]);
        }
        panic!("unexpected query {sql_text}")
    });
    let l = log.clone();
    m.expect_insert_batch()
        .returning(move |sql_text, types, rows| {
            l.lock()
                .unwrap()
                .push(format!("BATCH {sql_text} {types:?} {}", rows.len()));
            let table = sql_text
                .split_whitespace()
                .nth(2)
                .and_then(|t| t.strip_prefix("\"JFIV_NEW\"."))
                .unwrap()
                .to_owned();
            *inserted.lock().unwrap().entry(table).or_default() += rows.len() as u64;
            if sql_text.contains("PATIENTS") {
                assert_eq!(rows, patients_rows().as_slice());
            }
            Ok(())
        });
    let l = log.clone();
    m.expect_commit().returning(move || {
        l.lock().unwrap().push("COMMIT".into());
        Ok(())
    });
    m.expect_rollback().returning(|| Ok(()));
    m
}

fn target_config() -> OracleConfig {
    let mut c = config(Consistency::FlashbackScn);
    c.schema = Some("JFIV_NEW".into());
    c
}

#[test]
fn restore_creates_objects_in_dependency_order_with_array_inserts() {
    let dump = export_mock(Consistency::FlashbackScn, &Log::default()).unwrap();
    let log = Log::default();
    let mut db =
        OracleDatabase::with_session(Box::new(mock_target(&log, vec![], 0)), &target_config())
            .unwrap();
    let options = RestoreOptions {
        batch_rows: 2,
        ..RestoreOptions::default()
    };
    let report = restore(&dump[..], &mut db, &options).unwrap();
    assert_eq!(
        report
            .tables
            .iter()
            .map(|t| (t.name.as_str(), t.rows))
            .collect::<Vec<_>>(),
        [("CYCLES", 3), ("PATIENTS", 2)]
    );
    let log = log.lock().unwrap().clone();
    let create_cycles = position(&log, "CREATE TABLE \"JFIV_NEW\".\"CYCLES\" (...)");
    let batch = position(
        &log,
        "BATCH INSERT INTO \"JFIV_NEW\".\"CYCLES\" (\"ID\", \"PATIENT_ID\", \"TYPE\") VALUES (:1, :2, :3) [Number, Number, Varchar(4)] 2",
    );
    let batches = log.iter().filter(|l| l.starts_with("BATCH")).count();
    assert_eq!(
        batches, 3,
        "3 cycles in batches of 2, then 2 patients: {log:#?}"
    );
    let patients_batch = position(
        &log,
        "[Number, Varchar(100), Number, Date, TimestampTz, Blob] 2",
    );
    let index = position(&log, "CREATE INDEX \"JFIV_NEW\".\"CYCLES_PATIENT_IX\"");
    let fk = position(
        &log,
        "CREATE REF_CONSTRAINT \"JFIV_NEW\".\"CYCLES_PATIENT_FK\"",
    );
    let view = position(&log, "CREATE VIEW \"JFIV_NEW\".\"CYCLES_FIV\"");
    let package = position(&log, "CREATE PACKAGE_SPEC \"JFIV_NEW\".\"JFIV_UTIL\"");
    let trigger = position(&log, "TRIGGER \"JFIV_NEW\".\"CYCLES_BI\"");
    let sequence = position(
        &log,
        "CREATE SEQUENCE \"JFIV_NEW\".\"CYCLES_SEQ\" START WITH 1021 INCREMENT BY 1",
    );
    assert!(
        create_cycles < batch
            && batch < patients_batch
            && patients_batch < index
            && index < fk
            && fk < view
            && view < package
            && package < trigger
            && trigger < sequence,
        "{log:#?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("COMMIT"));
    assert!(
        !log.iter().any(|l| l.contains("DROP")),
        "nothing dropped in an empty schema"
    );
}

#[test]
fn restore_refuses_a_non_empty_schema_and_replaces_only_when_told() {
    let dump = export_mock(Consistency::FlashbackScn, &Log::default()).unwrap();
    let log = Log::default();
    let mut db = OracleDatabase::with_session(
        Box::new(mock_target(
            &log,
            vec!["TABLE PATIENTS", "SEQUENCE CYCLES_SEQ"],
            0,
        )),
        &target_config(),
    )
    .unwrap();
    let err = restore(&dump[..], &mut db, &RestoreOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::TargetNotEmpty { count: 2, .. }),
        "{err}"
    );
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("CREATE") || l.starts_with("BATCH")),
        "nothing was created"
    );
    let replace = RestoreOptions {
        mode: RestoreMode::ReplaceExisting,
        ..RestoreOptions::default()
    };
    restore(&dump[..], &mut db, &replace).unwrap();
    let log = log.lock().unwrap().clone();
    let drop = position(
        &log,
        "DROP TABLE \"JFIV_NEW\".\"PATIENTS\" CASCADE CONSTRAINTS PURGE",
    );
    let create = position(&log, "CREATE TABLE \"JFIV_NEW\".\"PATIENTS\"");
    assert!(drop < create);
    assert!(
        !log.iter()
            .any(|l| l.contains("DROP TABLE \"JFIV_NEW\".\"CYCLES\""))
    );
}

#[test]
fn restore_compares_row_counts() {
    let dump = export_mock(Consistency::FlashbackScn, &Log::default()).unwrap();
    let mut db = OracleDatabase::with_session(
        Box::new(mock_target(&Log::default(), vec![], 1)),
        &target_config(),
    )
    .unwrap();
    let err = restore(&dump[..], &mut db, &RestoreOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::RowCountMismatch { table, expected: 3, actual: 4 } if table == "CYCLES"),
        "{err}"
    );
}

#[test]
fn a_sqlite_dump_is_not_restored_into_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    rusqlite::Connection::open(&p)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let mut src = crate::logical::SqliteDatabase::open_for_export(&p).unwrap();
    let (dump, _) = export(&mut src, Vec::new(), &ExportOptions::at(chrono::Utc::now())).unwrap();
    let mut db = OracleDatabase::with_session(
        Box::new(mock_target(&Log::default(), vec![], 0)),
        &target_config(),
    )
    .unwrap();
    let err = restore(&dump[..], &mut db, &RestoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::IncompatibleDialect { .. }), "{err}");
}

#[test]
fn session_setup_failures_are_mapped() {
    let mut m = MockOracleSession::new();
    m.expect_execute().returning(|_, _| {
        Err(OraFailure {
            code: FailureCode::Ora(28000),
            message: "ORA-28000: The account is locked.".into(),
        })
    });
    let err =
        OracleDatabase::with_session(Box::new(m), &config(Consistency::FlashbackScn)).unwrap_err();
    assert!(
        matches!(&err, Error::Oracle(OracleError::AccountLocked { user }) if user == "jfiv"),
        "{err}"
    );
}

#[test]
fn settings_parse_and_never_show_the_password() {
    // '/' and '@' may appear in the password: the connect string is after the last '@'.
    let c = OracleConfig::parse("jfiv_backup/p@ss/w0rd@db.hopital.local:1521/JFIV").unwrap();
    assert_eq!(c.password.expose_secret(), "p@ss/w0rd");
    let e = OracleConfig::parse("jfiv_backup/s3cret-no-host@").unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let c = OracleConfig::parse("jfiv_backup/pa/ss@db.hopital.local:1521/JFIV").unwrap();
    assert_eq!(c.user, "jfiv_backup");
    assert_eq!(c.connect_string, "db.hopital.local:1521/JFIV");
    assert_eq!(c.schema_name(), "JFIV_BACKUP");
    assert!(!format!("{c:?}").contains("pa/ss"));
    assert!(OracleConfig::parse("no-password@db").is_err());
    let db = OracleDatabase::with_session(Box::new(mock_target(&Log::default(), vec![], 0)), &c)
        .unwrap();
    assert!(!format!("{db:?}").contains("pa/ss"));
}

/// Without Oracle Instant Client on the machine (as in CI), connecting fails with DPI-1047 and
/// the error says what to install. With a client installed, the unreachable address gives a
/// connection error instead. Either way the password never appears.
#[test]
fn connecting_without_a_client_library_says_to_install_instant_client() {
    let mut c = OracleConfig::new(
        "jfiv",
        SecretString::from("Hunter2-secret"),
        "127.0.0.1:1/NOPE",
    );
    c.schema = None;
    let err = OracleDatabase::connect(&c).unwrap_err();
    let text = err.to_string();
    assert!(
        !text.contains("Hunter2") && !format!("{err:?}").contains("Hunter2"),
        "{text}"
    );
    match err {
        Error::Oracle(OracleError::ClientLibraryMissing { .. }) => {
            assert!(text.contains("install Oracle Instant Client"), "{text}");
        }
        Error::Oracle(OracleError::NoListener { .. } | OracleError::Database { .. }) => {
            eprintln!("an Oracle client library is installed here; got: {text}");
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn connecting_from_async_code_runs_on_a_blocking_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let c = OracleConfig::new(
        "jfiv",
        SecretString::from("Hunter2-secret"),
        "127.0.0.1:1/NOPE",
    );
    let err = rt
        .block_on(OracleDatabase::connect_on_blocking_thread(c))
        .unwrap_err();
    assert!(matches!(err, Error::Oracle(_)), "{err}");
    assert!(!err.to_string().contains("Hunter2"));
}

/// Live test against a real database: set `JFIV_TEST_ORACLE=user/password@host:port/service`
/// (or `JFIV_TEST_ORACLE_USER`, `_PASSWORD`, `_CONNECT`). The user needs `CREATE TABLE`,
/// `CREATE SEQUENCE`, `EXECUTE ON DBMS_FLASHBACK` and `FLASHBACK` on its own tables. It creates
/// tables `JFIV_LT_PATIENTS` and `JFIV_LT_CYCLES` and a sequence in that schema, exports the
/// schema, restores it over itself (`ReplaceExisting`: use a dedicated test user) and into a
/// SQLite file, and drops what it created.
#[test]
fn live_export_of_a_real_schema_into_sqlite() {
    let Some(config) = OracleConfig::from_test_env() else {
        eprintln!(
            "skipped: set JFIV_TEST_ORACLE=user/password@host:port/service to run the live Oracle test"
        );
        return;
    };
    let config = config.unwrap();
    let mut db = OracleDatabase::connect(&config).unwrap();
    let setup = [
        "CREATE TABLE JFIV_LT_PATIENTS (ID NUMBER(10) PRIMARY KEY, NOM VARCHAR2(100 CHAR), DOSE NUMBER, NAISSANCE DATE, MAJ TIMESTAMP(6) WITH TIME ZONE, PHOTO BLOB, NOTES CLOB)",
        "CREATE TABLE JFIV_LT_CYCLES (ID NUMBER(10) PRIMARY KEY, PATIENT_ID NUMBER(10) REFERENCES JFIV_LT_PATIENTS(ID), TYPE CHAR(4))",
        "CREATE SEQUENCE JFIV_LT_SEQ START WITH 500",
        "INSERT INTO JFIV_LT_PATIENTS VALUES (1, 'Dupont', 12345678901234567890.123456789012345678, DATE '1985-07-14', TIMESTAMP '2024-03-01 08:30:00.123456 +01:00', HEXTORAW('DEADBEEF'), 'notes')",
        "INSERT INTO JFIV_LT_PATIENTS (ID) VALUES (2)",
        "INSERT INTO JFIV_LT_CYCLES VALUES (10, 1, 'FIV')",
    ];
    let cleanup = |db: &mut OracleDatabase| {
        for sql in [
            "DROP TABLE JFIV_LT_CYCLES PURGE",
            "DROP TABLE JFIV_LT_PATIENTS PURGE",
            "DROP SEQUENCE JFIV_LT_SEQ",
        ] {
            let _ = db.session.execute(sql, &[]);
        }
    };
    cleanup(&mut db);
    for sql in setup {
        db.session.execute(sql, &[]).unwrap();
    }
    db.session.commit().unwrap();
    let result = export(&mut db, Vec::new(), &ExportOptions::at(chrono::Utc::now()));
    cleanup(&mut db);
    let (dump, summary) = result.unwrap();
    let counts: std::collections::BTreeMap<_, _> = summary
        .dump
        .trailer
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.rows))
        .collect();
    assert_eq!(counts.get("JFIV_LT_PATIENTS"), Some(&2));
    assert_eq!(counts.get("JFIV_LT_CYCLES"), Some(&1));
    // Back into Oracle: the test user's schema is restored over itself (ReplaceExisting).
    let mut again = OracleDatabase::connect(&config).unwrap();
    let replace = RestoreOptions {
        mode: RestoreMode::ReplaceExisting,
        ..RestoreOptions::default()
    };
    let restored = restore(&dump[..], &mut again, &replace);
    let next = again
        .session
        .query_strings("SELECT TO_CHAR(JFIV_LT_SEQ.NEXTVAL) FROM DUAL", &[]);
    let dose = again.session.query_strings(
        "SELECT TO_CHAR(DOSE) FROM JFIV_LT_PATIENTS WHERE ID = 1",
        &[],
    );
    cleanup(&mut again);
    let report = restored.unwrap();
    assert!(
        report
            .tables
            .iter()
            .any(|t| t.name == "JFIV_LT_PATIENTS" && t.rows == 2)
    );
    let next: u64 = next.unwrap()[0][0].as_deref().unwrap().parse().unwrap();
    assert!(next >= 500, "sequence resumed at its position, got {next}");
    assert_eq!(
        dose.unwrap()[0][0].as_deref(),
        Some("12345678901234567890.123456789012345678")
    );

    let dir = tempfile::tempdir().unwrap();
    let mut target =
        crate::logical::SqliteDatabase::open_for_restore(&dir.path().join("copy.db")).unwrap();
    restore(&dump[..], &mut target, &RestoreOptions::default()).unwrap();
    let dose: String = target
        .connection()
        .query_row("SELECT DOSE FROM JFIV_LT_PATIENTS WHERE ID = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(dose, "12345678901234567890.123456789012345678");
}

#[test]
fn bind_types_of_the_dump_columns() {
    let c = crate::logical::ColumnDef {
        name: "X".into(),
        kind: ValueKind::Number,
        source_type: "NUMBER".into(),
        nullable: true,
        length: None,
        precision: None,
        scale: None,
    };
    assert_eq!(sql::bind_type("T", &c).unwrap(), BindType::Number);
}

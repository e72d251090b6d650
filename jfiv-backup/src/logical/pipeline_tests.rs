//! End to end through the real backup pipeline: logical export, backup to a target, extraction
//! of the dump entry, restore, row counts equal.

use std::path::Path;
use std::sync::Arc;

use super::source::{LogicalSqliteSource, SQLITE_LOGICAL_ENGINE, extract_dump};
use super::tests::make_jfiv;
use super::{RestoreOptions, SqliteDatabase};
use crate::{
    BackupOptions, BackupTarget, DiskTarget, MemoryTarget, NoProgress, RepositoryKey, backup,
    sqlite_row_counts,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn round_trip(target: &dyn BackupTarget, dir: &Path) {
    let src = dir.join("jfiv.db");
    make_jfiv(&src);
    let clock = Arc::new(jfiv_audit::ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-12-03T23:00:00Z")
            .unwrap()
            .to_utc(),
    ));
    let source = LogicalSqliteSource::new("jfiv-db-logical", &src)
        .temp_dir(dir)
        .clock(clock);
    let key = RepositoryKey::generate();
    let report = backup(
        &source,
        target,
        &key,
        None,
        &BackupOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let manifest = report.manifest;
    assert_eq!(manifest.entries.len(), 1);
    assert_eq!(manifest.entries[0].path, "jfiv-db-logical.ldump");
    let db = &manifest.databases[0];
    assert_eq!(db.engine, SQLITE_LOGICAL_ENGINE);
    let at_source = sqlite_row_counts(&src).unwrap();
    assert_eq!(
        db.row_counts, at_source,
        "manifest row counts are the source's"
    );
    assert_eq!(db.row_counts["cycles"], 150);

    let scratch = tempfile::tempdir().unwrap();
    let dump = extract_dump(
        target,
        &key,
        &manifest,
        "jfiv-db-logical.ldump",
        scratch.path(),
    )
    .await
    .unwrap();
    assert_eq!(dump.expected_counts.as_ref(), Some(&at_source));
    let restored = dir.join("restored.db");
    let restored2 = restored.clone();
    let report = tokio::task::spawn_blocking(move || {
        let mut target = SqliteDatabase::open_for_restore(&restored2).unwrap();
        dump.restore_into(&mut target, &RestoreOptions::default())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.tables.len(), at_source.len());
    assert_eq!(
        sqlite_row_counts(&restored).unwrap(),
        at_source,
        "row counts equal"
    );
    let a = rusqlite::Connection::open(&src).unwrap();
    let b = rusqlite::Connection::open(&restored).unwrap();
    for t in at_source.keys() {
        let q = format!("SELECT * FROM \"{t}\" ORDER BY 1, 2");
        let dump_table = |c: &rusqlite::Connection| -> Vec<Vec<rusqlite::types::Value>> {
            let mut s = c.prepare(&q).unwrap();
            let n = s.column_count();
            s.query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        assert_eq!(dump_table(&a), dump_table(&b), "table {t}");
    }
}

#[test]
fn logical_sqlite_backup_to_memory_then_restore() {
    let dir = tempfile::tempdir().unwrap();
    let target = MemoryTarget::new();
    runtime().block_on(round_trip(&target, dir.path()));
}

#[test]
fn logical_sqlite_backup_to_disk_then_restore() {
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let target = DiskTarget::create(store.path()).unwrap();
    runtime().block_on(round_trip(&target, dir.path()));
}

#[test]
fn a_missing_dump_entry_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("jfiv.db");
    make_jfiv(&src);
    let target = MemoryTarget::new();
    let key = RepositoryKey::generate();
    let rt = runtime();
    let source = LogicalSqliteSource::new("db", &src).temp_dir(dir.path());
    let report = rt
        .block_on(backup(
            &source,
            &target,
            &key,
            None,
            &BackupOptions::default(),
            &NoProgress,
        ))
        .unwrap();
    let err = rt
        .block_on(extract_dump(
            &target,
            &key,
            &report.manifest,
            "other.ldump",
            dir.path(),
        ))
        .unwrap_err();
    assert!(matches!(err, crate::Error::NotFound { .. }), "{err}");
}

#[test]
fn an_unreadable_database_fails_the_scan_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let source = LogicalSqliteSource::new("jfiv-db", dir.path().join("absent.db"));
    let err = crate::Source::scan(&source).unwrap_err();
    assert!(
        matches!(&err, crate::Error::Source { source_name, .. } if source_name == "jfiv-db"),
        "{err}"
    );
}

#[test]
fn datapump_source_runs_expdp_and_backs_up_its_files() {
    let f = super::datapump::tests::fake();
    let source = super::DataPumpSource::new("jfiv-expdp", super::datapump::tests::config(&f, "ok"));
    let scan = crate::Source::scan(&source).unwrap();
    let paths: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"jfiv-expdp/jfiv_01.dmp"), "{paths:?}");
    assert!(paths.contains(&"jfiv-expdp/jfiv_expdp.log"), "{paths:?}");
    assert_eq!(scan.databases.len(), 1);
    assert_eq!(scan.databases[0].engine, super::DATAPUMP_ENGINE);
    assert_eq!(scan.databases[0].path, "jfiv-expdp/jfiv_01.dmp");

    let failing =
        super::DataPumpSource::new("jfiv-expdp", super::datapump::tests::config(&f, "ora"));
    let err = crate::Source::scan(&failing).unwrap_err();
    assert!(
        matches!(&err, crate::Error::Command { reason, .. } if reason.contains("ORA-39002")),
        "{err}"
    );
    assert!(!err.to_string().contains(super::datapump::tests::PASSWORD));
}

const FAKE_RMAN: &str = r#"#!/bin/sh
# rman target / cmdfile=... log=...
[ "$1" = target ] && [ "$2" = / ] || exit 9
log="${4#log=}"
dir="$(dirname "$log")"
echo "connected to target database: JFIV (DBID=3141592653)" > "$log"
echo "piece handle=$dir/jfiv_0a_1_1.bkp tag=TAG1 comment=NONE" >> "$log"
echo piece > "$dir/jfiv_0a_1_1.bkp"
echo "Recovery Manager complete." >> "$log"
"#;

#[test]
fn rman_source_records_the_dbid_in_the_snapshot() {
    use std::os::unix::fs::PermissionsExt;
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("rman");
    std::fs::write(&bin, FAKE_RMAN).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backup_dir = tempfile::tempdir().unwrap();
    let mut config = super::datapump::RmanConfig::new(backup_dir.path());
    config.program = bin;
    let scan = crate::Source::scan(&super::RmanSource::new("jfiv-rman", config)).unwrap();
    let paths: Vec<&str> = scan.entries.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"jfiv-rman/jfiv_0a_1_1.bkp"), "{paths:?}");
    assert!(
        paths.contains(&"jfiv-rman/jfiv-rman-dbid.json"),
        "{paths:?}"
    );
    assert_eq!(scan.databases[0].engine, super::RMAN_ENGINE);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(backup_dir.path().join(super::RMAN_DBID_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(record["dbid"], 3_141_592_653u64);
    assert_eq!(record["database"], "JFIV");
}

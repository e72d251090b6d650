//! Post-restore checks: the tree against the manifest, the databases, user commands.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jfiv_backup::{DatabaseInfo, Entry, EntryKind, Manifest, Selection};
use serde::{Deserialize, Serialize};

use crate::plan::Layout;
use crate::request::CheckCommand;
use crate::{Error, Result};

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, one line each (the problems first).
    pub findings: Vec<String>,
}

/// The restored tree compared with the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCheck {
    /// Entries of the manifest checked.
    pub entries: u64,
    /// Regular files whose size and BLAKE3 match.
    pub files_ok: u64,
    /// Their bytes.
    pub bytes_ok: u64,
    /// Entries missing at their destination.
    pub missing: Vec<String>,
    /// Entries present but different (kind, size, BLAKE3, link target), with the difference.
    pub mismatched: Vec<(String, String)>,
    /// Files in restored directories that the manifest does not list (leftovers).
    pub unexpected: Vec<String>,
}

impl TreeCheck {
    /// Whether the tree matches.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty() && self.unexpected.is_empty()
    }

    /// As a [`CheckResult`].
    pub fn to_result(&self, name: &str) -> CheckResult {
        let mut findings = Vec::new();
        for m in &self.missing {
            findings.push(format!("missing: {m}"));
        }
        for (p, why) in &self.mismatched {
            findings.push(format!("different: {p}: {why}"));
        }
        for u in &self.unexpected {
            findings.push(format!("not in the backup: {u}"));
        }
        findings.push(format!(
            "{} entries checked, {} files ({} bytes) identical to the backup (size and BLAKE3)",
            self.entries, self.files_ok, self.bytes_ok
        ));
        CheckResult {
            name: name.to_owned(),
            ok: self.is_ok(),
            findings,
        }
    }
}

fn hash_file(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

fn check_entry(entry: &Entry, at: &Path) -> std::result::Result<Option<u64>, (bool, String)> {
    let meta = fs::symlink_metadata(at).map_err(|_| (true, String::new()))?;
    match &entry.kind {
        EntryKind::Dir => {
            if meta.is_dir() {
                Ok(None)
            } else {
                Err((false, "expected a directory".into()))
            }
        }
        EntryKind::Symlink { target } => {
            let link = fs::read_link(at).map_err(|_| (false, "expected a symbolic link".into()))?;
            if link.as_os_str() == target.as_str() {
                Ok(None)
            } else {
                Err((
                    false,
                    format!("link points to {} instead of {target}", link.display()),
                ))
            }
        }
        EntryKind::File => {
            if !meta.is_file() {
                return Err((false, "expected a regular file".into()));
            }
            if meta.len() != entry.meta.size {
                return Err((
                    false,
                    format!("{} bytes, the backup has {}", meta.len(), entry.meta.size),
                ));
            }
            let hash = hash_file(at).map_err(|e| (false, format!("cannot read: {e}")))?;
            match &entry.blake3 {
                Some(expected) if hash.to_hex().as_str() == expected => Ok(Some(meta.len())),
                Some(_) => Err((false, "BLAKE3 differs from the backup".into())),
                None => Err((false, "the manifest has no BLAKE3 for this file".into())),
            }
        }
        _ => Err((false, "entry kind not supported by this version".into())),
    }
}

/// Compares the restored `selection` of `manifest`, placed by `layout`, with the manifest:
/// every entry present with the right kind, size, BLAKE3 and link target, and no file in the
/// restored directories that the backup does not have. Files are hashed on all cores.
/// `ignore` names paths (the restore's state directory) never reported as unexpected.
pub fn check_tree(
    manifest: &Manifest,
    selection: &Selection,
    layout: &Layout,
    ignore: &[PathBuf],
) -> TreeCheck {
    let entries: Vec<&Entry> = manifest
        .entries
        .iter()
        .filter(|e| selection.matches(&e.path))
        .collect();
    let expected: HashSet<PathBuf> = entries
        .iter()
        .map(|e| layout.destination_of(&e.path))
        .collect();
    let report = Mutex::new(TreeCheck {
        entries: entries.len() as u64,
        ..TreeCheck::default()
    });
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(entry) = entries.get(i) else { break };
                    let at = layout.destination_of(&entry.path);
                    let outcome = check_entry(entry, &at);
                    let mut r = report.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok(Some(bytes)) => {
                            r.files_ok += 1;
                            r.bytes_ok += bytes;
                        }
                        Ok(None) => {}
                        Err((true, _)) => r.missing.push(entry.path.clone()),
                        Err((false, why)) => r.mismatched.push((entry.path.clone(), why)),
                    }
                }
            });
        }
    });
    let mut report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    for dir in entries.iter().filter(|e| matches!(e.kind, EntryKind::Dir)) {
        let at = layout.destination_of(&dir.path);
        let Ok(children) = fs::read_dir(&at) else {
            continue;
        };
        for child in children.flatten() {
            let p = child.path();
            if !expected.contains(&p) && !ignore.iter().any(|i| p.starts_with(i)) {
                report.unexpected.push(p.display().to_string());
            }
        }
    }
    report.missing.sort();
    report.mismatched.sort();
    report.unexpected.sort();
    report
}

/// An engine-specific database restore and check, for engines other than the embedded SQLite
/// file (the Oracle logical restore plugs in here).
///
/// # Contract
/// `restore_and_check` is called once the files of the database snapshot are restored and
/// verified; `restored` is where the entry [`DatabaseInfo::path`] was restored. It loads them
/// into the database server when that is the engine's way (a logical dump into a new Oracle
/// schema), then checks the result against `info.row_counts`. It must be idempotent: a resumed
/// restore may call it again. Failures are findings of the returned result, not panics.
pub trait DatabaseHook: Debug + Send + Sync {
    /// The engine name it handles (`DatabaseInfo::engine`).
    fn engine(&self) -> &str;
    /// Restores and checks one database.
    ///
    /// # Errors
    /// Anything that prevents the check from running at all.
    fn restore_and_check(&self, info: &DatabaseInfo, restored: &Path) -> Result<CheckResult>;
}

/// Checks a restored SQLite file: it opens, `PRAGMA integrity_check` says `ok`, and its table
/// row counts equal `expected` (when given).
pub fn check_sqlite(path: &Path, expected: Option<&BTreeMap<String, u64>>) -> CheckResult {
    let name = format!("database {}", path.display());
    let mut findings = Vec::new();
    let conn = match rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) {
        Ok(c) => c,
        Err(e) => {
            return CheckResult {
                name,
                ok: false,
                findings: vec![format!("does not open: {e}")],
            };
        }
    };
    let integrity: std::result::Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect());
    let mut ok = match integrity {
        Ok(rows) if rows == ["ok"] => {
            findings.push("PRAGMA integrity_check: ok".into());
            true
        }
        Ok(rows) => {
            findings.push(format!("PRAGMA integrity_check: {}", rows.join("; ")));
            false
        }
        Err(e) => {
            findings.push(format!("PRAGMA integrity_check failed: {e}"));
            false
        }
    };
    drop(conn);
    match (expected, jfiv_backup::sqlite_row_counts(path)) {
        (Some(expected), Ok(found)) => {
            for (table, n) in expected {
                match found.get(table) {
                    Some(m) if m == n => {}
                    Some(m) => {
                        ok = false;
                        findings.push(format!("table {table}: {m} rows, {n} at backup time"));
                    }
                    None => {
                        ok = false;
                        findings.push(format!(
                            "table {table} is missing ({n} rows at backup time)"
                        ));
                    }
                }
            }
            for table in found.keys().filter(|t| !expected.contains_key(*t)) {
                ok = false;
                findings.push(format!("table {table} was not in the backup"));
            }
            if ok {
                findings.push(format!(
                    "row counts of {} tables equal those recorded at backup time ({} rows)",
                    expected.len(),
                    expected.values().sum::<u64>()
                ));
            }
        }
        (None, Ok(found)) => findings.push(format!(
            "{} tables; no row counts recorded at backup time to compare with",
            found.len()
        )),
        (_, Err(e)) => {
            ok = false;
            findings.push(format!("cannot count rows: {e}"));
        }
    }
    CheckResult { name, ok, findings }
}

/// Runs a check command with `JFIV_RESTORE_ROOT=<root>`, killing it after its timeout. It
/// passes if it exits with status 0. The end of its output is kept in the findings.
///
/// # Errors
/// [`Error::Io`] when the temporary output files cannot be created; a program that cannot
/// be started is a failed check, not an error.
pub fn run_check_command(command: &CheckCommand, root: &Path) -> Result<CheckResult> {
    let out = tempfile::tempfile().map_err(|e| Error::io("create", "temporary file", e))?;
    let err = out
        .try_clone()
        .map_err(|e| Error::io("create", "temporary file", e))?;
    let name = format!("command {}", command.name);
    let mut child = match Command::new(&command.program)
        .args(&command.args)
        .env("JFIV_RESTORE_ROOT", root)
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            out.try_clone()
                .map_err(|e| Error::io("create", "temporary file", e))?,
        ))
        .stderr(Stdio::from(err))
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Ok(CheckResult {
                name,
                ok: false,
                findings: vec![format!("cannot start {}: {e}", command.program.display())],
            });
        }
    };
    let deadline = Instant::now() + Duration::from_secs(command.timeout_secs);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let mut output = String::new();
    let mut out = out;
    use std::io::Seek;
    let _ = out.seek(std::io::SeekFrom::Start(0));
    let _ = out.read_to_string(&mut output);
    let tail: String = {
        let chars: Vec<char> = output.chars().collect();
        chars[chars.len().saturating_sub(2000)..].iter().collect()
    };
    let mut findings = Vec::new();
    let ok = match status {
        Some(s) if s.success() => {
            findings.push("exit status 0".into());
            true
        }
        Some(s) => {
            findings.push(format!("exit status {s}"));
            false
        }
        None => {
            findings.push(format!("killed after {} s", command.timeout_secs));
            false
        }
    };
    if !tail.trim().is_empty() {
        findings.push(format!("output: {}", tail.trim()));
    }
    Ok(CheckResult { name, ok, findings })
}

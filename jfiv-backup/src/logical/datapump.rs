//! Oracle Data Pump (`expdp`) and RMAN runs, for the backup's command source.
//!
//! These are the DBA's own tools: they write dump or backup-piece files to a directory, which are
//! then backed up like any other file (to tape, in the hospital). What this module adds is what
//! makes such a run safe to automate:
//!
//! - **No password on a command line or in a log.** Every `expdp` setting goes into a parameter
//!   file written with mode `0600` in a private temporary directory (mode `0700`), removed as soon
//!   as `expdp` exits; the command line is only `expdp parfile=<path>`. Better still, use
//!   [`Login::OsAuthentication`] (`/ as sysdba`, running as the `oracle` OS user) or an Oracle
//!   wallet ([`Login::Wallet`], `/@alias`): then no password exists anywhere. RMAN is only run
//!   with OS authentication or a wallet (`rman target /`). If a log ever contains the password,
//!   the run fails with [`DataPumpError::PasswordInLog`] so that the log is not archived.
//! - **Consistency**: `FLASHBACK_SCN` or `FLASHBACK_TIME` ([`Flashback`]) makes the whole export
//!   consistent as of one instant, as the logical path does.
//! - **Errors are not missed**: the exit status is checked *and* the log is scanned for `ORA-`,
//!   `UDE-`, `KUP-`, `LRM-` (and `RMAN-`) messages and for the completion line; any of them
//!   missing or present fails the run with a typed error quoting the log lines.
//! - **RMAN's DBID** is read from the log (`connected to target database: JFIV (DBID=...)`), to
//!   be recorded in the backup manifest: a restore needs it (`SET DBID`) when the control file is
//!   lost with the server.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use secrecy::{ExposeSecret, SecretString};

/// Errors of Data Pump and RMAN runs. No variant ever contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataPumpError {
    /// The program could not be started.
    #[error("cannot start {program}: is the Oracle client installed and ORACLE_HOME/PATH set?")]
    Spawn {
        /// Program path.
        program: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The parameter or command file could not be written.
    #[error("cannot write the parameter file {path}")]
    ParameterFile {
        /// Its path.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log file could not be read after the run.
    #[error("cannot read the {tool} log {log}")]
    LogUnreadable {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// Log path.
        log: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log reports errors.
    #[error("{tool} reported errors in {log} (exit code {exit_code:?}): {}", errors.join(" | "))]
    LogErrors {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// Log path.
        log: PathBuf,
        /// Exit code, if the process exited normally.
        exit_code: Option<i32>,
        /// The error lines (at most 20).
        errors: Vec<String>,
    },
    /// The log has no completion line: the run stopped midway.
    #[error("{tool} did not complete (no completion line in {log}, exit code {exit_code:?})")]
    Incomplete {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// Log path.
        log: PathBuf,
        /// Exit code.
        exit_code: Option<i32>,
    },
    /// The process failed although its log looks clean.
    #[error("{tool} exited with code {exit_code:?} (log {log})")]
    ExitStatus {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// Log path.
        log: PathBuf,
        /// Exit code (`None`: killed by a signal).
        exit_code: Option<i32>,
    },
    /// The log contains the password: it must not be archived.
    #[error(
        "the {tool} log {log} contains the password; delete it and use OS authentication or a wallet"
    )]
    PasswordInLog {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// Log path.
        log: PathBuf,
    },
    /// The RMAN log does not say which database was backed up.
    #[error("no DBID in the RMAN log {log}: cannot record it for the restore plan")]
    MissingDbid {
        /// Log path.
        log: PathBuf,
    },
    /// A file the log lists was not found.
    #[error("{tool} listed {path} but it does not exist")]
    MissingOutput {
        /// `expdp` or `rman`.
        tool: &'static str,
        /// The missing file.
        path: PathBuf,
    },
}

type Result<T> = std::result::Result<T, DataPumpError>;

/// How `expdp` logs in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Login {
    /// Operating-system authentication (`USERID="/ as sysdba"` or `USERID=/`): run as the
    /// `oracle` OS user on the database server; no password anywhere.
    OsAuthentication {
        /// Connect `AS SYSDBA`.
        as_sysdba: bool,
    },
    /// Oracle wallet (secure external password store): `USERID=/@alias`.
    Wallet {
        /// The tnsnames alias the wallet holds credentials for.
        tns_alias: String,
    },
    /// User and password, written only to the `0600` parameter file.
    Password {
        /// User name.
        user: String,
        /// Password.
        password: SecretString,
        /// Connect string (`host:port/service` or alias); `None` for the local `ORACLE_SID`.
        connect_string: Option<String>,
    },
}

/// What makes the export consistent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Flashback {
    /// `FLASHBACK_SCN=n` (e.g. the SCN recorded by the logical path).
    Scn(u64),
    /// `FLASHBACK_TIME=SYSTIMESTAMP`: the instant the job starts (Oracle 11.2 and later).
    StartOfJob,
    /// `FLASHBACK_TIME="TO_TIMESTAMP('2026-12-03 23:00:00', 'YYYY-MM-DD HH24:MI:SS')"`.
    Time(chrono::NaiveDateTime),
}

/// A schema export with `expdp`.
#[derive(Debug, Clone)]
pub struct ExpdpConfig {
    /// The `expdp` program (default `expdp`, found on `PATH`).
    pub program: PathBuf,
    /// How to log in.
    pub login: Login,
    /// Schemas to export (`SCHEMAS=`).
    pub schemas: Vec<String>,
    /// Oracle `DIRECTORY` object the files are written to.
    pub directory_object: String,
    /// Path of that directory on this machine (where the dump and log appear).
    pub directory_path: PathBuf,
    /// Dump file name pattern (`DUMPFILE=`, `%U` numbers the pieces).
    pub dump_file: String,
    /// Log file name (`LOGFILE=`).
    pub log_file: String,
    /// Consistency.
    pub flashback: Flashback,
    /// `PARALLEL=` (Enterprise Edition), if set.
    pub parallel: Option<u32>,
    /// `FILESIZE=` (e.g. `"4G"`), if set.
    pub filesize: Option<String>,
    /// Environment variables for the process (`ORACLE_HOME`, `ORACLE_SID`, `TNS_ADMIN`...).
    pub environment: Vec<(String, String)>,
}

impl ExpdpConfig {
    /// A schema export with the defaults: `jfiv_%U.dmp`, `jfiv_expdp.log`, consistent as of
    /// the start of the job, OS authentication.
    #[must_use]
    pub fn new(schema: &str, directory_object: &str, directory_path: &Path) -> Self {
        Self {
            program: PathBuf::from("expdp"),
            login: Login::OsAuthentication { as_sysdba: true },
            schemas: vec![schema.to_owned()],
            directory_object: directory_object.to_owned(),
            directory_path: directory_path.to_owned(),
            dump_file: "jfiv_%U.dmp".into(),
            log_file: "jfiv_expdp.log".into(),
            flashback: Flashback::StartOfJob,
            parallel: None,
            filesize: None,
            environment: Vec::new(),
        }
    }

    /// The parameter file's text. It contains the password for [`Login::Password`]: never log it.
    #[must_use]
    pub fn parameter_file(&self) -> String {
        let mut p = String::new();
        let userid = match &self.login {
            Login::OsAuthentication { as_sysdba: true } => "\"/ as sysdba\"".to_owned(),
            Login::OsAuthentication { as_sysdba: false } => "/".to_owned(),
            Login::Wallet { tns_alias } => format!("/@{tns_alias}"),
            Login::Password {
                user,
                password,
                connect_string,
            } => {
                let mut u = format!("{user}/\"{}\"", password.expose_secret());
                if let Some(c) = connect_string {
                    u.push('@');
                    u.push_str(c);
                }
                u
            }
        };
        p.push_str(&format!("USERID={userid}\n"));
        p.push_str(&format!("SCHEMAS={}\n", self.schemas.join(",")));
        p.push_str(&format!("DIRECTORY={}\n", self.directory_object));
        p.push_str(&format!("DUMPFILE={}\n", self.dump_file));
        p.push_str(&format!("LOGFILE={}\n", self.log_file));
        match &self.flashback {
            Flashback::Scn(scn) => p.push_str(&format!("FLASHBACK_SCN={scn}\n")),
            Flashback::StartOfJob => p.push_str("FLASHBACK_TIME=SYSTIMESTAMP\n"),
            Flashback::Time(t) => p.push_str(&format!(
                "FLASHBACK_TIME=\"TO_TIMESTAMP('{}', 'YYYY-MM-DD HH24:MI:SS')\"\n",
                t.format("%Y-%m-%d %H:%M:%S")
            )),
        }
        if let Some(n) = self.parallel {
            p.push_str(&format!("PARALLEL={n}\n"));
        }
        if let Some(s) = &self.filesize {
            p.push_str(&format!("FILESIZE={s}\n"));
        }
        p.push_str("REUSE_DUMPFILES=YES\n");
        p
    }

    fn password(&self) -> Option<&str> {
        match &self.login {
            Login::Password { password, .. } => Some(password.expose_secret()),
            _ => None,
        }
    }

    /// Path of the log file.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.directory_path.join(&self.log_file)
    }

    /// Writes the parameter file into a new private directory and returns the command to run:
    /// `expdp parfile=<path>`. Keep the returned [`PreparedCommand`] alive until the process
    /// exits: dropping it deletes the parameter file.
    ///
    /// # Errors
    /// [`DataPumpError::ParameterFile`].
    pub fn prepare(&self) -> Result<PreparedCommand> {
        let dir = private_dir()?;
        let path = dir.path().join("expdp.par");
        write_private(&path, &self.parameter_file())?;
        Ok(PreparedCommand {
            program: self.program.clone(),
            args: vec![format!("parfile={}", path.display())],
            environment: self.environment.clone(),
            _files: dir,
        })
    }

    /// Runs `expdp`, then checks its exit status and log, and lists the dump files.
    ///
    /// # Errors
    /// [`DataPumpError`]: spawn failure, errors or no completion line in the log, non-zero
    /// exit, password found in the log, a listed dump file missing.
    pub fn run(&self) -> Result<DataPumpRun> {
        let prepared = self.prepare()?;
        let exit_code = prepared.run()?;
        drop(prepared); // the parameter file is gone before anything else happens
        let log = self.log_path();
        let text = read_log("expdp", &log)?;
        if let Some(p) = self.password()
            && !p.is_empty()
            && text.contains(p)
        {
            return Err(DataPumpError::PasswordInLog { tool: "expdp", log });
        }
        let summary = check_expdp_log(&text, &log, exit_code)?;
        if exit_code != Some(0) {
            return Err(DataPumpError::ExitStatus {
                tool: "expdp",
                log,
                exit_code,
            });
        }
        for f in &summary.dump_files {
            if !f.exists() {
                return Err(DataPumpError::MissingOutput {
                    tool: "expdp",
                    path: f.clone(),
                });
            }
        }
        Ok(DataPumpRun {
            dump_files: summary.dump_files,
            log_file: log,
        })
    }
}

/// A command ready to run, whose secret files live as long as this value.
#[derive(Debug)]
pub struct PreparedCommand {
    /// Program.
    pub program: PathBuf,
    /// Arguments (never a password).
    pub args: Vec<String>,
    /// Extra environment variables.
    pub environment: Vec<(String, String)>,
    _files: tempfile::TempDir,
}

impl PreparedCommand {
    /// Runs the command to completion, stdin closed, output discarded (the tool's log file is
    /// the record); returns its exit code (`None`: killed by a signal).
    ///
    /// # Errors
    /// [`DataPumpError::Spawn`].
    pub fn run(&self) -> Result<Option<i32>> {
        let status = Command::new(&self.program)
            .args(&self.args)
            .envs(self.environment.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|source| DataPumpError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        Ok(status.code())
    }
}

/// What a successful `expdp` run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPumpRun {
    /// The dump files, as listed in the log.
    pub dump_files: Vec<PathBuf>,
    /// The log file.
    pub log_file: PathBuf,
}

/// What a clean `expdp` log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpdpLogSummary {
    /// Files listed under "Dump file set for ... is:".
    pub dump_files: Vec<PathBuf>,
}

fn private_dir() -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("jfiv-oracle-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(|source| DataPumpError::ParameterFile {
            path: std::env::temp_dir(),
            source,
        })
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let err = |source| DataPumpError::ParameterFile {
        path: path.to_owned(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

fn read_log(tool: &'static str, log: &Path) -> Result<String> {
    let bytes = fs::read(log).map_err(|source| DataPumpError::LogUnreadable {
        tool,
        log: log.to_owned(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether `line` carries an Oracle-stack error code such as `ORA-39002` (`prefix` followed by
/// at least four digits).
fn has_code(line: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        line.match_indices(p).any(|(at, _)| {
            let before_ok = at == 0 || !line.as_bytes()[at - 1].is_ascii_alphanumeric();
            let digits = line[at + p.len()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            before_ok && digits >= 4
        })
    })
}

fn error_lines(text: &str, prefixes: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| has_code(l, prefixes))
        .map(|l| l.trim().to_owned())
        .take(20)
        .collect()
}

/// Checks an `expdp` log: no `ORA-`/`UDE-`/`KUP-`/`LRM-` line, a "successfully completed"
/// line; returns the dump files it lists.
///
/// # Errors
/// [`DataPumpError::LogErrors`], [`DataPumpError::Incomplete`].
pub fn check_expdp_log(text: &str, log: &Path, exit_code: Option<i32>) -> Result<ExpdpLogSummary> {
    let errors = error_lines(text, &["ORA-", "UDE-", "KUP-", "LRM-"]);
    if !errors.is_empty() || text.contains("completed with") && text.contains("error(s)") {
        return Err(DataPumpError::LogErrors {
            tool: "expdp",
            log: log.to_owned(),
            exit_code,
            errors: if errors.is_empty() {
                text.lines()
                    .filter(|l| l.contains("error(s)"))
                    .map(|l| l.trim().to_owned())
                    .collect()
            } else {
                errors
            },
        });
    }
    if !text.lines().any(|l| l.contains("successfully completed")) {
        return Err(DataPumpError::Incomplete {
            tool: "expdp",
            log: log.to_owned(),
            exit_code,
        });
    }
    let mut dump_files = Vec::new();
    let mut in_set = false;
    for line in text.lines() {
        if line.starts_with("Dump file set for") {
            in_set = true;
            continue;
        }
        if in_set {
            let t = line.trim();
            if t.starts_with('/') {
                dump_files.push(PathBuf::from(t));
            } else {
                in_set = false;
            }
        }
    }
    Ok(ExpdpLogSummary { dump_files })
}

/// How RMAN connects to the target database (never with a password).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RmanTarget {
    /// `rman target /`, as the `oracle` OS user.
    OsAuthentication,
    /// `rman target /@alias`, credentials in an Oracle wallet.
    Wallet {
        /// tnsnames alias.
        tns_alias: String,
    },
}

/// A full RMAN backup to disk.
#[derive(Debug, Clone)]
pub struct RmanConfig {
    /// The `rman` program (default `rman`).
    pub program: PathBuf,
    /// How to connect.
    pub target: RmanTarget,
    /// Directory the backup pieces are written to.
    pub backup_dir: PathBuf,
    /// Log file (`LOG=`).
    pub log_file: PathBuf,
    /// Environment variables (`ORACLE_HOME`, `ORACLE_SID`, `NLS_DATE_FORMAT`...).
    pub environment: Vec<(String, String)>,
}

impl RmanConfig {
    /// A backup of the database, its archived logs, control file and spfile into `backup_dir`.
    #[must_use]
    pub fn new(backup_dir: &Path) -> Self {
        Self {
            program: PathBuf::from("rman"),
            target: RmanTarget::OsAuthentication,
            backup_dir: backup_dir.to_owned(),
            log_file: backup_dir.join("jfiv_rman.log"),
            environment: Vec::new(),
        }
    }

    /// The RMAN command file.
    #[must_use]
    pub fn command_file(&self) -> String {
        let dir = self.backup_dir.display();
        format!(
            "RUN {{\n\
             ALLOCATE CHANNEL d1 DEVICE TYPE DISK FORMAT '{dir}/jfiv_%U.bkp';\n\
             BACKUP AS COMPRESSED BACKUPSET DATABASE PLUS ARCHIVELOG;\n\
             BACKUP CURRENT CONTROLFILE FORMAT '{dir}/jfiv_ctl_%U.bkp';\n\
             BACKUP SPFILE FORMAT '{dir}/jfiv_spfile_%U.bkp';\n\
             RELEASE CHANNEL d1;\n\
             }}\n"
        )
    }

    /// Writes the command file and returns `rman target / cmdfile=<path> log=<log>`.
    ///
    /// # Errors
    /// [`DataPumpError::ParameterFile`].
    pub fn prepare(&self) -> Result<PreparedCommand> {
        let dir = private_dir()?;
        let path = dir.path().join("backup.rman");
        write_private(&path, &self.command_file())?;
        let target = match &self.target {
            RmanTarget::OsAuthentication => "/".to_owned(),
            RmanTarget::Wallet { tns_alias } => format!("/@{tns_alias}"),
        };
        Ok(PreparedCommand {
            program: self.program.clone(),
            args: vec![
                "target".into(),
                target,
                format!("cmdfile={}", path.display()),
                format!("log={}", self.log_file.display()),
            ],
            environment: self.environment.clone(),
            _files: dir,
        })
    }

    /// Runs RMAN and checks its log; returns the DBID and the backup pieces.
    ///
    /// # Errors
    /// [`DataPumpError`]: spawn failure, `RMAN-`/`ORA-` errors or no completion in the log,
    /// non-zero exit, no DBID, a listed piece missing.
    pub fn run(&self) -> Result<RmanRun> {
        let prepared = self.prepare()?;
        let exit_code = prepared.run()?;
        drop(prepared);
        let text = read_log("rman", &self.log_file)?;
        let run = check_rman_log(&text, &self.log_file, exit_code)?;
        if exit_code != Some(0) {
            return Err(DataPumpError::ExitStatus {
                tool: "rman",
                log: self.log_file.clone(),
                exit_code,
            });
        }
        for p in &run.pieces {
            if !p.exists() {
                return Err(DataPumpError::MissingOutput {
                    tool: "rman",
                    path: p.clone(),
                });
            }
        }
        Ok(run)
    }
}

/// What a clean RMAN run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmanRun {
    /// Database name, as RMAN printed it.
    pub database: String,
    /// The DBID, to record in the manifest (`SET DBID` at restore).
    pub dbid: u64,
    /// Backup pieces (`piece handle=` lines).
    pub pieces: Vec<PathBuf>,
    /// The log file.
    pub log_file: PathBuf,
}

/// Checks an RMAN log: no `RMAN-`/`ORA-` error line, "Recovery Manager complete.", and the
/// DBID of the target.
///
/// # Errors
/// [`DataPumpError::LogErrors`], [`DataPumpError::Incomplete`], [`DataPumpError::MissingDbid`].
pub fn check_rman_log(text: &str, log: &Path, exit_code: Option<i32>) -> Result<RmanRun> {
    let errors = error_lines(text, &["RMAN-", "ORA-"]);
    if !errors.is_empty() {
        return Err(DataPumpError::LogErrors {
            tool: "rman",
            log: log.to_owned(),
            exit_code,
            errors,
        });
    }
    if !text.contains("Recovery Manager complete.") {
        return Err(DataPumpError::Incomplete {
            tool: "rman",
            log: log.to_owned(),
            exit_code,
        });
    }
    let (database, dbid) = text
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("connected to target database:")?;
            let (name, tail) = rest.split_once("(DBID=")?;
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            Some((name.trim().to_owned(), digits.parse::<u64>().ok()?))
        })
        .ok_or_else(|| DataPumpError::MissingDbid {
            log: log.to_owned(),
        })?;
    let pieces = text
        .lines()
        .filter_map(|l| {
            let rest = l.split("piece handle=").nth(1)?;
            Some(PathBuf::from(rest.split_whitespace().next()?))
        })
        .collect();
    Ok(RmanRun {
        database,
        dbid,
        pieces,
        log_file: log.to_owned(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for `expdp`: records its command line, the parameter file's content and mode,
    /// then writes a log (and dump) according to FAKE_MODE.
    pub(crate) const FAKE_EXPDP: &str = r#"#!/bin/sh
echo "$@" > "$FAKE_DIR/argv"
parfile="${1#parfile=}"
echo "$parfile" > "$FAKE_DIR/parfile.path"
cp "$parfile" "$FAKE_DIR/parfile.seen"
stat -c %a "$parfile" > "$FAKE_DIR/parfile.mode"
stat -c %a "$(dirname "$parfile")" > "$FAKE_DIR/dir.mode"
log="$FAKE_DP/$(sed -n 's/^LOGFILE=//p' "$parfile")"
dump="$FAKE_DP/jfiv_01.dmp"
case "$FAKE_MODE" in
ok)
  echo "Export: Release 19.0.0.0.0 - Production" > "$log"
  echo 'Starting "JFIV"."SYS_EXPORT_SCHEMA_01":  /******** parfile=x' >> "$log"
  echo "Dump file set for JFIV.SYS_EXPORT_SCHEMA_01 is:" >> "$log"
  echo "  $dump" >> "$log"
  echo 'Job "JFIV"."SYS_EXPORT_SCHEMA_01" successfully completed at Thu Dec 3 23:10:02 2026 elapsed 0 00:00:21' >> "$log"
  echo dump > "$dump"
  exit 0 ;;
ora)
  echo "ORA-39002: invalid operation" > "$log"
  echo "ORA-39070: Unable to open the log file." >> "$log"
  exit 1 ;;
truncated)
  echo 'Starting "JFIV"."SYS_EXPORT_SCHEMA_01":' > "$log"
  exit 0 ;;
leak)
  sed -n 's/^USERID=//p' "$parfile" > "$log"
  echo 'Job "JFIV"."SYS_EXPORT_SCHEMA_01" successfully completed' >> "$log"
  exit 0 ;;
esac
"#;

    pub(crate) struct Fake {
        _dir: tempfile::TempDir,
        pub(crate) bin: PathBuf,
        pub(crate) seen: PathBuf,
        pub(crate) dp: PathBuf,
    }

    pub(crate) fn fake() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("expdp");
        fs::write(&bin, FAKE_EXPDP).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let seen = dir.path().join("seen");
        let dp = dir.path().join("dp");
        fs::create_dir_all(&seen).unwrap();
        fs::create_dir_all(&dp).unwrap();
        Fake {
            _dir: dir,
            bin,
            seen,
            dp,
        }
    }

    pub(crate) const PASSWORD: &str = "Tr3s-Secr3t";

    pub(crate) fn config(f: &Fake, mode: &str) -> ExpdpConfig {
        let mut c = ExpdpConfig::new("JFIV", "JFIV_DP", &f.dp);
        c.program = f.bin.clone();
        c.login = Login::Password {
            user: "jfiv_backup".into(),
            password: SecretString::from(PASSWORD),
            connect_string: Some("db:1521/JFIV".into()),
        };
        c.flashback = Flashback::Scn(4242);
        c.environment = vec![
            ("FAKE_DIR".into(), f.seen.display().to_string()),
            ("FAKE_DP".into(), f.dp.display().to_string()),
            ("FAKE_MODE".into(), mode.into()),
        ];
        c
    }

    #[test]
    fn expdp_gets_the_password_through_a_private_parameter_file_only() {
        let f = fake();
        let run = config(&f, "ok").run().unwrap();
        assert_eq!(run.dump_files, [f.dp.join("jfiv_01.dmp")]);
        let argv = fs::read_to_string(f.seen.join("argv")).unwrap();
        assert!(argv.starts_with("parfile="), "{argv}");
        assert!(
            !argv.contains(PASSWORD),
            "password on the command line: {argv}"
        );
        let parfile = fs::read_to_string(f.seen.join("parfile.seen")).unwrap();
        assert!(parfile.contains(&format!("USERID=jfiv_backup/\"{PASSWORD}\"@db:1521/JFIV")));
        assert!(parfile.contains("FLASHBACK_SCN=4242\n"));
        assert!(parfile.contains("SCHEMAS=JFIV\nDIRECTORY=JFIV_DP\n"));
        assert_eq!(
            fs::read_to_string(f.seen.join("parfile.mode"))
                .unwrap()
                .trim(),
            "600"
        );
        assert_eq!(
            fs::read_to_string(f.seen.join("dir.mode")).unwrap().trim(),
            "700"
        );
        let path = fs::read_to_string(f.seen.join("parfile.path")).unwrap();
        assert!(
            !Path::new(path.trim()).exists(),
            "parameter file removed after the run"
        );
        assert!(!format!("{:?}", config(&f, "ok")).contains(PASSWORD));
    }

    #[test]
    fn ora_errors_in_the_log_are_a_typed_error() {
        let f = fake();
        let err = config(&f, "ora").run().unwrap_err();
        match &err {
            DataPumpError::LogErrors {
                tool: "expdp",
                exit_code: Some(1),
                errors,
                ..
            } => assert_eq!(errors.len(), 2, "{errors:?}"),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("ORA-39002"));
        assert!(!err.to_string().contains(PASSWORD));
    }

    #[test]
    fn a_log_without_completion_is_incomplete_even_with_exit_code_zero() {
        let f = fake();
        let err = config(&f, "truncated").run().unwrap_err();
        assert!(
            matches!(
                err,
                DataPumpError::Incomplete {
                    exit_code: Some(0),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_log_that_contains_the_password_is_refused() {
        let f = fake();
        let err = config(&f, "leak").run().unwrap_err();
        assert!(matches!(err, DataPumpError::PasswordInLog { .. }), "{err}");
        assert!(!err.to_string().contains(PASSWORD));
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let f = fake();
        let mut c = config(&f, "ok");
        c.program = f.dp.join("no-such-expdp");
        assert!(matches!(c.run().unwrap_err(), DataPumpError::Spawn { .. }));
    }

    #[test]
    fn parameter_files_for_each_login_and_flashback() {
        let mut c = ExpdpConfig::new("JFIV", "DP", Path::new("/u01/dp"));
        assert!(c.parameter_file().starts_with("USERID=\"/ as sysdba\"\n"));
        assert!(c.parameter_file().contains("FLASHBACK_TIME=SYSTIMESTAMP\n"));
        c.login = Login::Wallet {
            tns_alias: "JFIV_BKP".into(),
        };
        c.flashback = Flashback::Time(
            chrono::NaiveDate::from_ymd_opt(2026, 12, 3)
                .unwrap()
                .and_hms_opt(23, 0, 0)
                .unwrap(),
        );
        c.parallel = Some(2);
        let p = c.parameter_file();
        assert!(p.starts_with("USERID=/@JFIV_BKP\n"), "{p}");
        assert!(p.contains(
            "FLASHBACK_TIME=\"TO_TIMESTAMP('2026-12-03 23:00:00', 'YYYY-MM-DD HH24:MI:SS')\"\n"
        ));
        assert!(p.contains("PARALLEL=2\n"));
    }

    #[test]
    fn error_codes_are_recognised_only_as_codes() {
        assert!(has_code("ORA-01555: snapshot too old", &["ORA-"]));
        assert!(has_code(
            "UDE-00018: Data Pump client is incompatible",
            &["UDE-"]
        ));
        assert!(!has_code(
            "Processing object type SCHEMA_EXPORT/ORA-table",
            &["ORA-"]
        ));
        assert!(!has_code("FLORA-12345", &["ORA-"]));
        let log = "Job \"JFIV\".\"SYS_EXPORT_SCHEMA_01\" completed with 2 error(s) at ...";
        assert!(matches!(
            check_expdp_log(log, Path::new("x.log"), Some(5)),
            Err(DataPumpError::LogErrors { .. })
        ));
    }

    const RMAN_LOG: &str = "Recovery Manager: Release 19.0.0.0.0 - Production
connected to target database: JFIV (DBID=3141592653)
using target database control file instead of recovery catalog
channel d1: finished piece 1 at 03-DEC-26
piece handle=/backup/rman/jfiv_0a1b2c3d_1_1.bkp tag=TAG20261203T230001 comment=NONE
piece handle=/backup/rman/jfiv_ctl_0b1b2c3d_1_1.bkp tag=TAG20261203T230412 comment=NONE
Recovery Manager complete.
";

    #[test]
    fn rman_logs_give_the_dbid_and_pieces() {
        let r = check_rman_log(RMAN_LOG, Path::new("r.log"), Some(0)).unwrap();
        assert_eq!((r.database.as_str(), r.dbid), ("JFIV", 3_141_592_653));
        assert_eq!(r.pieces.len(), 2);
        assert_eq!(
            r.pieces[1],
            PathBuf::from("/backup/rman/jfiv_ctl_0b1b2c3d_1_1.bkp")
        );
        let bad = RMAN_LOG.replace(
            "Recovery Manager complete.",
            "RMAN-03009: failure of backup command on d1 channel\nORA-19502: write error on file",
        );
        assert!(matches!(
            check_rman_log(&bad, Path::new("r.log"), Some(1)),
            Err(DataPumpError::LogErrors { tool: "rman", ref errors, .. }) if errors.len() == 2
        ));
        let no_dbid =
            RMAN_LOG.replace("connected to target database: JFIV (DBID=3141592653)\n", "");
        assert!(matches!(
            check_rman_log(&no_dbid, Path::new("r.log"), Some(0)),
            Err(DataPumpError::MissingDbid { .. })
        ));
    }

    #[test]
    fn rman_is_run_without_any_password() {
        let dir = tempfile::tempdir().unwrap();
        let c = RmanConfig::new(dir.path());
        let p = c.prepare().unwrap();
        assert_eq!(p.args[0..2], ["target", "/"]);
        assert!(p.args[2].starts_with("cmdfile="));
        let script = fs::read_to_string(p.args[2].trim_start_matches("cmdfile=")).unwrap();
        assert!(script.contains("BACKUP AS COMPRESSED BACKUPSET DATABASE PLUS ARCHIVELOG;"));
        assert!(script.contains(&format!("FORMAT '{}/jfiv_%U.bkp'", dir.path().display())));
    }
}

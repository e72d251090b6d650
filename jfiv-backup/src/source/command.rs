//! [`CommandSource`]: the files produced by a pre-backup command (an export).

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::{DirectorySource, Scan, Source};
use crate::{Error, Result, SourceInfo, SourceKind};

/// Runs a configured command (an RMAN or Data Pump export, a `pg_dump`...), checks its exit
/// status, then backs up the directory it wrote into, stored under the source's name.
///
/// Secrets (a database password) are passed in environment variables
/// ([`secret_env`](Self::secret_env)), never as arguments: arguments are visible to every user
/// in `ps`, the environment only to the process owner. `Debug` shows variable names, not
/// values. Standard input is closed; the tail of standard error goes into the error report.
///
/// The command runs in a process group of its own. If it has not finished within the timeout
/// ([`timeout`](Self::timeout), default 4 hours) the whole group (the export and anything it
/// started) gets `SIGTERM`, then `SIGKILL` 10 seconds later, and the scan fails: a hung export
/// must not hold the night's other backups.
#[derive(Clone)]
pub struct CommandSource {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    secret_env: Vec<(String, SecretString)>,
    output_dir: PathBuf,
    timeout: Duration,
}

/// The default time a pre-backup command may take.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(4 * 3600);
/// Standard error kept for the error report.
const STDERR_TAIL: usize = 2000;

impl fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandSource")
            .field("name", &self.name)
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env)
            .field(
                "secret_env",
                &self
                    .secret_env
                    .iter()
                    .map(|(k, _)| format!("{k}=<redacted>"))
                    .collect::<Vec<_>>(),
            )
            .field("output_dir", &self.output_dir)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl CommandSource {
    /// `program` (no shell) run before the backup; `output_dir` is what gets backed up.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        output_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            secret_env: Vec::new(),
            output_dir: output_dir.into(),
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// How long the command may run before it is stopped and the scan fails.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a (non-secret) argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets a non-secret environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets a secret environment variable (redacted everywhere, never an argument).
    pub fn secret_env(mut self, key: impl Into<String>, value: SecretString) -> Self {
        self.secret_env.push((key.into(), value));
        self
    }
}

impl Source for CommandSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Command,
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let program = self.program.display().to_string();
        std::fs::create_dir_all(&self.output_dir)
            .map_err(|e| Error::io("create", &self.output_dir, e))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("JFIV_OUTPUT_DIR", &self.output_dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in &self.secret_env {
            cmd.env(k, v.expose_secret());
        }
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| Error::Command {
            program: program.clone(),
            reason: format!("could not start: {e}"),
        })?;
        // Standard error is drained on a thread (a chatty export must not block on a full
        // pipe); only its tail is kept.
        let stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut tail: Vec<u8> = Vec::new();
            if let Some(mut stderr) = stderr {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 4 * STDERR_TAIL {
                        tail.drain(..tail.len() - STDERR_TAIL);
                    }
                }
            }
            tail
        });
        let status = wait_or_stop(&mut child, self.timeout).map_err(|e| Error::Command {
            program: program.clone(),
            reason: format!("could not wait for it: {e}"),
        })?;
        let tail = reader.join().unwrap_or_default();
        let stderr = String::from_utf8_lossy(&tail);
        let tail: String = {
            let chars: Vec<char> = stderr.chars().collect();
            chars[chars.len().saturating_sub(STDERR_TAIL)..]
                .iter()
                .collect()
        };
        let failure = match status {
            Waited::Exited(status) if status.success() => None,
            Waited::Exited(status) => Some(status.to_string()),
            Waited::TimedOut => Some(format!(
                "did not finish within {} s: its process group was stopped",
                self.timeout.as_secs()
            )),
        };
        if let Some(failure) = failure {
            return Err(Error::Command {
                program,
                reason: format!("{failure}; standard error ends with: {}", tail.trim()),
            });
        }
        DirectorySource::new(self.name.clone())
            .root_as(&self.output_dir, self.name.clone())
            .scan()
    }
}

enum Waited {
    Exited(std::process::ExitStatus),
    TimedOut,
}

/// Waits for `child` for at most `timeout`; then stops its process group (SIGTERM, and SIGKILL
/// 10 s later if it is still there).
fn wait_or_stop(child: &mut Child, timeout: Duration) -> std::io::Result<Waited> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        if start.elapsed() >= timeout {
            break;
        }
        std::thread::sleep(Duration::from_millis(50).min(timeout));
    }
    let group = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    let stopping = Instant::now();
    while stopping.elapsed() < Duration::from_secs(10) {
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever is left of the group (the export's own children included).
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    let _ = child.wait();
    Ok(Waited::TimedOut)
}

//! [`CommandSource`]: the files produced by a pre-backup command (an export).

use std::fmt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
#[derive(Clone)]
pub struct CommandSource {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    secret_env: Vec<(String, SecretString)>,
    output_dir: PathBuf,
}

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
        }
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
        let output = cmd.output().map_err(|e| Error::Command {
            program: program.clone(),
            reason: format!("could not start: {e}"),
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = {
                let chars: Vec<char> = stderr.chars().collect();
                chars[chars.len().saturating_sub(2000)..].iter().collect()
            };
            return Err(Error::Command {
                program,
                reason: format!(
                    "{}; standard error ends with: {}",
                    output.status,
                    tail.trim()
                ),
            });
        }
        DirectorySource::new(self.name.clone())
            .root_as(&self.output_dir, self.name.clone())
            .scan()
    }
}

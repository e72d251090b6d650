//! What the operator asks for: what to restore, as of when, and where.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "kebab-case")]
pub enum Scope {
    /// Rebuild the whole server: the application files (from the disk target) and the
    /// database (from tape).
    WholeServer,
    /// The database only.
    DatabaseOnly,
    /// The application files only.
    ApplicationOnly,
    /// Selected paths of the application snapshot (snapshot paths, `/`-separated, such as
    /// `opt/jfiv/conf`; a directory selects its subtree).
    Paths {
        /// The paths.
        paths: Vec<String>,
    },
}

/// Which backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "point", rename_all = "kebab-case")]
pub enum PointInTime {
    /// The latest usable backup.
    Latest,
    /// The latest usable backup started at or before this time.
    AsOf {
        /// The time.
        at: DateTime<Utc>,
    },
}

impl std::fmt::Display for PointInTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PointInTime::Latest => f.write_str("latest"),
            PointInTime::AsOf { at } => write!(f, "as of {}", at.to_rfc3339()),
        }
    }
}

/// Sends the snapshot paths under `from` to the directory `to` instead of `<root>/<from>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathMapping {
    /// A snapshot path prefix (`opt/jfiv`).
    pub from: String,
    /// Where its content goes: absolute, or relative to the destination root.
    pub to: PathBuf,
}

/// A user-provided check run after the restore (start the application and probe it, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckCommand {
    /// A short name for reports.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments (never secrets: they are visible to every user of the machine).
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds after which it is killed and counted as failed.
    pub timeout_secs: u64,
}

/// A restore request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// What.
    pub scope: Scope,
    /// Which backup.
    pub point: PointInTime,
    /// The new root: a snapshot path `opt/jfiv/x` is restored to `<destination>/opt/jfiv/x`
    /// unless a mapping says otherwise.
    pub destination: PathBuf,
    /// Remappings, longest prefix first wins.
    #[serde(default)]
    pub mappings: Vec<PathMapping>,
    /// The source name of the application server backups.
    pub application_source: String,
    /// The source name of the database backups.
    pub database_source: String,
    /// Where the database files go, relative to the destination root (or absolute).
    pub database_dir: PathBuf,
    /// Checks to run once everything is restored; each gets the environment variable
    /// `JFIV_RESTORE_ROOT` set to the destination.
    #[serde(default)]
    pub check_commands: Vec<CheckCommand>,
}

impl RestoreRequest {
    /// Rebuild the whole server from the latest backups into `destination`, with the default
    /// source names `app-server` and `jfiv-db` and the database in `var/lib/jfiv`.
    pub fn whole_server(destination: impl Into<PathBuf>) -> Self {
        Self {
            scope: Scope::WholeServer,
            point: PointInTime::Latest,
            destination: destination.into(),
            mappings: Vec::new(),
            application_source: "app-server".to_owned(),
            database_source: "jfiv-db".to_owned(),
            database_dir: PathBuf::from("var/lib/jfiv"),
            check_commands: Vec::new(),
        }
    }

    /// The same request with another scope.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The same request as of `at`.
    pub fn as_of(mut self, at: DateTime<Utc>) -> Self {
        self.point = PointInTime::AsOf { at };
        self
    }

    /// Adds a remapping.
    pub fn map(mut self, from: impl Into<String>, to: impl Into<PathBuf>) -> Self {
        self.mappings.push(PathMapping {
            from: from.into().trim_matches('/').to_owned(),
            to: to.into(),
        });
        self
    }

    /// Adds a check command.
    pub fn check(mut self, command: CheckCommand) -> Self {
        self.check_commands.push(command);
        self
    }

    /// Whether the application files are part of the request.
    pub fn wants_application(&self) -> bool {
        !matches!(self.scope, Scope::DatabaseOnly)
    }

    /// Whether the database is part of the request.
    pub fn wants_database(&self) -> bool {
        matches!(self.scope, Scope::WholeServer | Scope::DatabaseOnly)
    }

    /// Checks the request for contradictions.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`].
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidRequest { reason });
        if self.destination.as_os_str().is_empty() {
            return bad("the destination is empty".into());
        }
        if let Scope::Paths { paths } = &self.scope {
            if paths.is_empty() {
                return bad("a path selection needs at least one path".into());
            }
            for p in paths {
                if p.trim_matches('/').is_empty() {
                    return bad(format!("empty path {p:?} in the selection"));
                }
                jfiv_backup::safe_relative(p.trim_matches('/')).map_err(|_| {
                    Error::InvalidRequest {
                        reason: format!("unsafe path {p:?} in the selection"),
                    }
                })?;
            }
        }
        for m in &self.mappings {
            if m.from.is_empty() {
                return bad("a mapping with an empty prefix (use the destination instead)".into());
            }
            jfiv_backup::safe_relative(&m.from).map_err(|_| Error::InvalidRequest {
                reason: format!("unsafe mapping prefix {:?}", m.from),
            })?;
        }
        if self.database_dir.is_relative() {
            let text = self.database_dir.to_string_lossy();
            if !text.is_empty() {
                jfiv_backup::safe_relative(&text).map_err(|_| Error::InvalidRequest {
                    reason: format!("unsafe database directory {text:?}"),
                })?;
            }
        }
        Ok(())
    }

    /// Resolves `p` (absolute, or relative to the destination).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.destination.join(p)
        }
    }
}

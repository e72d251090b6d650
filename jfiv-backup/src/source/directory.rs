//! [`DirectorySource`]: directory trees (the application server).

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use walkdir::WalkDir;

use super::{Scan, Source, SourceEntry, Warning, WarningKind, metadata_of};
use crate::{EntryKind, Error, Result, SourceInfo, SourceKind};

/// One or more directory trees, filtered by include and exclude globs.
///
/// Each root is stored under a label (by default its absolute path without the leading `/`,
/// so `/opt/jfiv` becomes `opt/jfiv/...` and extracting into a new root directory remaps it
/// naturally). Globs match those snapshot paths (`opt/jfiv/logs/**`, `**/*.tmp`).
/// Regular files, directories and symbolic links (not followed) are stored with their
/// permissions, owner and mtime; sockets, FIFOs and devices are skipped with a warning.
/// With include globs, only matching files are stored (directories are always stored, to keep
/// the structure); an excluded directory is not descended into.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    name: String,
    roots: Vec<(PathBuf, String)>,
    include: Vec<String>,
    exclude: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
}

fn build(patterns: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|source| Error::Glob {
            pattern: p.clone(),
            source,
        })?);
    }
    b.build().map_err(|source| Error::Glob {
        pattern: patterns.join(", "),
        source,
    })
}

/// The default label of a root: its path without leading `/` (`root` for `/` itself).
pub(crate) fn default_label(path: &Path) -> String {
    let s = path.to_string_lossy();
    let trimmed = s.trim_matches('/');
    if trimmed.is_empty() {
        "root".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl DirectorySource {
    /// A source named `name` with no roots yet.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            roots: Vec::new(),
            include: Vec::new(),
            exclude: Vec::new(),
            include_set: GlobSet::empty(),
            exclude_set: GlobSet::empty(),
        }
    }

    /// Adds a root, labelled by its path.
    pub fn root(self, path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let label = default_label(&path);
        self.root_as(path, label)
    }

    /// Adds a root stored under `label` (a relative `/`-separated path).
    pub fn root_as(mut self, path: impl Into<PathBuf>, label: impl Into<String>) -> Self {
        self.roots
            .push((path.into(), label.into().trim_matches('/').to_owned()));
        self
    }

    /// Only files matching one of the include globs are stored.
    ///
    /// # Errors
    /// [`Error::Glob`] for an invalid pattern.
    pub fn include(mut self, pattern: impl Into<String>) -> Result<Self> {
        self.include.push(pattern.into());
        self.include_set = build(&self.include)?;
        Ok(self)
    }

    /// Entries matching an exclude glob are not stored (nor their content, for directories).
    ///
    /// # Errors
    /// [`Error::Glob`] for an invalid pattern.
    pub fn exclude(mut self, pattern: impl Into<String>) -> Result<Self> {
        self.exclude.push(pattern.into());
        self.exclude_set = build(&self.exclude)?;
        Ok(self)
    }

    fn scan_root(&self, root: &Path, label: &str, scan: &mut Scan) -> Result<()> {
        if std::fs::symlink_metadata(root).is_err() {
            return Err(Error::Source {
                source_name: self.name.clone(),
                reason: format!("root {} does not exist or cannot be read", root.display()),
            });
        }
        let walker = WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| {
                let Ok(rel) = e.path().strip_prefix(root) else {
                    return true;
                };
                match rel.to_str() {
                    Some("") => true,
                    Some(rel) => !self.exclude_set.is_match(format!("{label}/{rel}")),
                    None => true,
                }
            });
        for item in walker {
            let entry = match item {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| root.display().to_string());
                    scan.warnings.push(Warning {
                        path,
                        kind: WarningKind::Unreadable {
                            reason: e
                                .io_error()
                                .map(ToString::to_string)
                                .unwrap_or_else(|| e.to_string()),
                        },
                    });
                    continue;
                }
            };
            let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
            let Some(rel) = rel.to_str() else {
                scan.warnings.push(Warning {
                    path: entry.path().to_string_lossy().into_owned(),
                    kind: WarningKind::NonUtf8Name,
                });
                continue;
            };
            let path = if rel.is_empty() {
                label.to_owned()
            } else {
                format!("{label}/{rel}")
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    scan.warnings.push(Warning {
                        path,
                        kind: WarningKind::Unreadable {
                            reason: e.to_string(),
                        },
                    });
                    continue;
                }
            };
            let ft = meta.file_type();
            let (kind, read_from) = if ft.is_dir() {
                (EntryKind::Dir, None)
            } else if ft.is_file() {
                if !self.include.is_empty() && !self.include_set.is_match(&path) {
                    continue;
                }
                (EntryKind::File, Some(entry.path().to_path_buf()))
            } else if ft.is_symlink() {
                if !self.include.is_empty() && !self.include_set.is_match(&path) {
                    continue;
                }
                match std::fs::read_link(entry.path()) {
                    Ok(t) => match t.to_str() {
                        Some(t) => (
                            EntryKind::Symlink {
                                target: t.to_owned(),
                            },
                            None,
                        ),
                        None => {
                            scan.warnings.push(Warning {
                                path,
                                kind: WarningKind::NonUtf8Name,
                            });
                            continue;
                        }
                    },
                    Err(e) => {
                        scan.warnings.push(Warning {
                            path,
                            kind: WarningKind::Unreadable {
                                reason: e.to_string(),
                            },
                        });
                        continue;
                    }
                }
            } else {
                scan.warnings.push(Warning {
                    path,
                    kind: WarningKind::SpecialFileSkipped,
                });
                continue;
            };
            scan.entries.push(SourceEntry {
                path,
                kind,
                meta: metadata_of(&meta),
                read_from,
            });
        }
        Ok(())
    }
}

impl Source for DirectorySource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: SourceKind::Directory,
            name: self.name.clone(),
        }
    }

    fn scan(&self) -> Result<Scan> {
        let mut labels = std::collections::HashSet::new();
        for (root, label) in &self.roots {
            if label.is_empty()
                || label
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                return Err(Error::Source {
                    source_name: self.name.clone(),
                    reason: format!("bad label {label:?} for root {}", root.display()),
                });
            }
            if !labels.insert(label.clone()) {
                return Err(Error::Source {
                    source_name: self.name.clone(),
                    reason: format!("two roots share the label {label:?}"),
                });
            }
        }
        let mut scan = Scan {
            entries: Vec::new(),
            warnings: Vec::new(),
            databases: Vec::new(),
            guard: None,
        };
        for (root, label) in &self.roots {
            self.scan_root(root, label, &mut scan)?;
        }
        Ok(scan)
    }
}

//! The site configuration: one TOML file that describes a hospital's JFIV installation.
//!
//! Every example that acts on a site reads the same file: `nightly_backup`, `check_backup` and
//! `hospital_demo` always, `audit`, `remote_login`, `tape` and `degraded_restore` with
//! `--config FILE` (each takes what applies to it through the accessors of [`SiteConfig`]:
//! [`library_dir`](SiteConfig::library_dir), [`accounts_file`](SiteConfig::accounts_file),
//! [`remote_access_policy`](SiteConfig::remote_access_policy),
//! [`audit_checkpoint_files`](SiteConfig::audit_checkpoint_files),
//! [`database_dir_in_server`](SiteConfig::database_dir_in_server)). A commented sample for "Hôpital Privé Le Bois" is `examples/hospital.toml`.
//!
//! Loading is all-or-nothing and happens before anything runs: syntax errors, unknown keys,
//! bad values (a CIDR that does not parse, a pool that does not exist, a location that is not
//! declared, a threshold out of range) and missing files are all reported with the file, the
//! line and the column of the offending key, and a clear message. Semantic problems are
//! collected, so that one run shows every mistake at once.
//!
//! Relative paths in the file are relative to the directory of the file.
//!
//! Secrets are never in the file: the repository key's passphrase comes from an environment
//! variable or a separate file named in `[keys]`, the Oracle password likewise.
//!
//! ```
//! use jfiv::site::{FileChecks, SiteConfig};
//! let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hospital.toml"))?;
//! let site = SiteConfig::from_toml(&text, "hospital.toml".as_ref(), FileChecks::Skip)?;
//! assert_eq!(site.site.name, "Hôpital Privé Le Bois");
//!
//! let bad = text.replace("pool = \"weekly\"", "pool = \"hebdo\"");
//! let err = SiteConfig::from_toml(&bad, "hospital.toml".as_ref(), FileChecks::Skip).unwrap_err();
//! assert!(err.to_string().contains("pool \"hebdo\" is not declared"), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{Duration, NaiveTime, Weekday};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

/// Whether [`SiteConfig::from_toml`] checks that the files and directories it names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChecks {
    /// Check them (what the jobs do).
    Check,
    /// Only check the file itself (syntax, keys, values): for a sample read on another machine.
    Skip,
}

/// One mistake in a configuration file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The dotted key concerned (`tape.cartridges[2].pool`), empty for a syntax error.
    pub key: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

/// The configuration file cannot be used. Its `Display` is one line per problem, in the
/// `FILE:LINE:COLUMN: key: message` form editors understand.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has mistakes.
    #[error("{}", render(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every mistake found, in file order.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The located problems (empty for [`ConfigError::Read`]).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

fn render(path: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let key = if p.key.is_empty() {
            String::new()
        } else {
            format!("{}: ", p.key)
        };
        out.push_str(&format!(
            "{}:{}:{}: {key}{}",
            path.display(),
            p.line,
            p.column,
            p.message
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.

/// A validated site configuration. Paths are absolute or relative to the working directory
/// (relative paths of the file were resolved against the file's directory).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SiteConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Who and where.
    pub site: SiteInfo,
    /// The database source.
    pub database: DatabaseConfig,
    /// The application server.
    pub application: ApplicationConfig,
    /// The disk target.
    pub disk: DiskConfig,
    /// The tape drive or library, pools and cartridges.
    pub tape: TapeConfig,
    /// The named places where tapes are.
    pub locations: LocationsConfig,
    /// The backup repository key.
    pub keys: KeysConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// How operators authenticate.
    pub operators: OperatorsConfig,
    /// Which networks may reach JFIV, and the VPN certificate authority.
    pub remote_access: RemoteAccessConfig,
}

/// `[site]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SiteInfo {
    /// The hospital's name, as printed in reports.
    pub name: String,
    /// The JFIV server's host name (written in manifests and audit events).
    pub host: String,
    /// Where the jobs keep their state: tape catalog, location register, last report.
    pub state_dir: PathBuf,
    /// The recovery point objective: a source whose last verified backup is older is WARNING.
    pub rpo: Duration,
    /// Past this age, CRITICAL.
    pub rpo_critical: Duration,
}

/// `[database]`: where the JFIV data is.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DatabaseConfig {
    /// The embedded default: a SQLite file, copied online with SQLite's backup API.
    Sqlite {
        /// The source name in manifests (`jfiv-db`).
        name: String,
        /// The database file.
        path: PathBuf,
    },
    /// The JFIV Oracle schema, exported logically (feature `oracle`).
    Oracle {
        /// The source name in manifests.
        name: String,
        /// The connect string (`//db-jfiv:1521/JFIV`).
        connect: String,
        /// The Oracle user the export connects as.
        user: String,
        /// Where the password comes from.
        password: SecretSource,
        /// The schema exported.
        schema: String,
    },
}

impl DatabaseConfig {
    /// The source name.
    pub fn name(&self) -> &str {
        match self {
            DatabaseConfig::Sqlite { name, .. } | DatabaseConfig::Oracle { name, .. } => name,
        }
    }
}

/// Where a secret comes from. The secret itself is never in the configuration file.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable of the job (set by systemd's `LoadCredential=` or an
    /// `EnvironmentFile=` readable by root only).
    Env(String),
    /// A file whose first line is the secret (mode 0600 or 0400).
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "Env({name})"),
            SecretSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// A secret could not be read from its [`SecretSource`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The environment variable is not set or empty.
    #[error("the environment variable {name} is not set (it must hold the secret)")]
    EnvMissing {
        /// The variable.
        name: String,
    },
    /// The file cannot be read or is empty.
    #[error("cannot read the secret from {}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl SecretSource {
    /// Reads the secret. The only place jfiv reads a passphrase from the environment.
    ///
    /// # Errors
    /// [`SecretError`] when the variable is unset or the file unreadable or empty.
    pub fn read(&self) -> Result<secrecy::SecretString, SecretError> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(secrecy::SecretString::from(v)),
                _ => Err(SecretError::EnvMissing { name: name.clone() }),
            },
            SecretSource::File(path) => {
                if let Some(reason) = secret_file_mode_problem(path) {
                    return Err(SecretError::File {
                        path: path.clone(),
                        reason,
                    });
                }
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    SecretError::File {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?);
                let line = text.lines().next().unwrap_or("").trim_end();
                if line.is_empty() {
                    return Err(SecretError::File {
                        path: path.clone(),
                        reason: "the file is empty".into(),
                    });
                }
                Ok(secrecy::SecretString::from(line.to_owned()))
            }
        }
    }
}

/// Why the secret file at `path` may not be used: readable or writable by its group or by
/// others (it must be mode 0600 or 0400). `None` when it is private, or cannot be examined
/// (reading it then reports the error).
fn secret_file_mode_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!("mode {mode:o} lets other users read it: it must be 0600 or 0400 (chmod 600)")
    })
}

/// `[application]`: the application server's files.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplicationConfig {
    /// The source name in manifests (`jfiv-app`).
    pub name: String,
    /// The directories backed up.
    pub roots: Vec<PathBuf>,
    /// The server's root directory: each root is stored under its path relative to it
    /// (`/opt/jfiv` as `opt/jfiv`), which is where a restore onto a new root puts it.
    pub server_root: PathBuf,
    /// Glob patterns excluded.
    pub exclude: Vec<String>,
}

/// `[disk]`: the disk target, in another room.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DiskConfig {
    /// The store's directory (a mount of the disk in the other room).
    pub dir: PathBuf,
    /// Used space (percent of the file system) at which the check says WARNING.
    pub warn_used_percent: u8,
    /// Used space at which the check says CRITICAL.
    pub critical_used_percent: u8,
    /// Snapshots kept.
    pub retention: Retention,
    /// Each night, 1/`verify_slices` of the chunks are read back and authenticated.
    pub verify_slices: u32,
}

/// Snapshots kept on the disk target (`[disk.retention]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days kept.
    pub daily: u32,
    /// ISO weeks kept.
    pub weekly: u32,
    /// Months kept.
    pub monthly: u32,
}

/// `[tape]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TapeConfig {
    /// The drive or the virtual library.
    pub backend: TapeBackend,
    /// Block size written, KiB (256..=1024).
    pub block_size_kib: u32,
    /// The pools in use, with their retention in days (`daily`, `weekly`, `monthly`).
    pub pools: BTreeMap<String, u32>,
    /// The night of the week whose tape goes to the weekly pool (the first one of a month to
    /// the monthly pool).
    pub weekly_day: Weekday,
    /// The cartridges, in the order given.
    pub cartridges: Vec<Cartridge>,
    /// The off-tape catalog (default: `<state_dir>/tape-catalog.json`).
    pub catalog: PathBuf,
    /// The location register (default: `<state_dir>/tape-locations.json`).
    pub register: PathBuf,
}

/// Where the tapes are written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TapeBackend {
    /// A real drive through the Linux `st` driver (the non-rewinding node, `/dev/nst0`).
    Device(PathBuf),
    /// A virtual library directory (`library.json` and `tapes/*.vtape`).
    Library(PathBuf),
}

/// One cartridge of `[[tape.cartridges]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cartridge {
    /// Its barcode.
    pub barcode: String,
    /// Its pool (one of `[tape.pools]`).
    pub pool: String,
    /// Where it is when first registered.
    pub location: Place,
}

/// The three kinds of place a tape can be.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// In the drive.
    Drive,
    /// On a shelf of the server room.
    ServerRoom,
    /// In the offsite room.
    Offsite,
}

/// `[locations]`: the hospital's names for the places, and the morning deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocationsConfig {
    /// The drive's name.
    pub drive: String,
    /// The server room's name.
    pub server_room: String,
    /// The offsite room's name.
    pub offsite_room: String,
    /// Time of day (UTC) by which last night's tape must have left the server room.
    pub leave_server_room_by: NaiveTime,
}

impl LocationsConfig {
    /// The place called `name`: its configured name or `drive` / `server-room` / `offsite`.
    pub fn parse(&self, name: &str) -> Option<Place> {
        [
            (Place::Drive, self.drive.as_str(), "drive"),
            (Place::ServerRoom, self.server_room.as_str(), "server-room"),
            (Place::Offsite, self.offsite_room.as_str(), "offsite"),
        ]
        .into_iter()
        .find(|(_, configured, short)| {
            configured.eq_ignore_ascii_case(name) || short.eq_ignore_ascii_case(name)
        })
        .map(|(p, _, _)| p)
    }

    /// The configured name of `place`.
    pub fn name(&self, place: Place) -> &str {
        match place {
            Place::Drive => &self.drive,
            Place::ServerRoom => &self.server_room,
            Place::Offsite => &self.offsite_room,
        }
    }
}

/// `[keys]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeysConfig {
    /// The passphrase-protected repository key file.
    pub repository_key_file: PathBuf,
    /// Where its passphrase comes from.
    pub passphrase: SecretSource,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditConfig {
    /// The audit log's directory (ideally on another host, mounted here).
    pub dir: PathBuf,
    /// The audit keys file (MAC and signing keys, mode 0600).
    pub key_file: PathBuf,
    /// Where signed checkpoints are exported after each night (default:
    /// `<disk.dir>/audit-checkpoints`, in the other room).
    pub checkpoint_dir: PathBuf,
}

/// `[operators]`: who may run the jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OperatorsConfig {
    /// A local account file (argon2id hashes, mode 0600).
    Local {
        /// The file.
        accounts_file: PathBuf,
    },
    /// The Oracle database (feature `oracle`): operators log in with their Oracle account.
    Oracle {
        /// The connect string.
        connect: String,
    },
}

/// `[remote_access]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteAccessConfig {
    /// The hospital LAN ranges.
    pub lan: Vec<IpNet>,
    /// The VPN address pools.
    pub vpn_pool: Vec<IpNet>,
    /// The CA certificate (DER; PEM is not read yet) that issues the personal client certificates.
    pub ca_file: Option<PathBuf>,
    /// Its CRL (DER).
    pub crl_file: Option<PathBuf>,
}

impl RemoteAccessConfig {
    /// Whether `ip` is on the LAN or in a VPN pool.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.lan
            .iter()
            .chain(&self.vpn_pool)
            .any(|n| n.contains(&ip))
    }
}

// ---------------------------------------------------------------------------------------------
// The file's shape (what serde reads), with spans for the values checked afterwards.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    site: RawSite,
    database: RawDatabase,
    application: RawApplication,
    disk: RawDisk,
    tape: RawTape,
    locations: RawLocations,
    keys: RawKeys,
    audit: RawAudit,
    operators: RawOperators,
    #[serde(default)]
    remote_access: Option<RawRemote>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    name: String,
    #[serde(default)]
    host: Option<String>,
    state_dir: Spanned<String>,
    #[serde(default)]
    rpo_hours: Option<Spanned<i64>>,
    #[serde(default)]
    rpo_critical_hours: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    kind: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    oracle: Option<RawOracle>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOracle {
    connect: String,
    user: String,
    schema: String,
    #[serde(default)]
    password_env: Option<String>,
    #[serde(default)]
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    #[serde(default)]
    name: Option<String>,
    roots: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    server_root: Option<String>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    dir: Spanned<String>,
    #[serde(default)]
    warn_used_percent: Option<Spanned<i64>>,
    #[serde(default)]
    critical_used_percent: Option<Spanned<i64>>,
    #[serde(default)]
    verify_slices: Option<Spanned<i64>>,
    #[serde(default)]
    retention: Option<RawRetention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    daily: Spanned<i64>,
    weekly: Spanned<i64>,
    monthly: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTape {
    #[serde(default)]
    device: Option<Spanned<String>>,
    #[serde(default)]
    library: Option<Spanned<String>>,
    #[serde(default)]
    block_size_kib: Option<Spanned<i64>>,
    #[serde(default)]
    weekly_day: Option<Spanned<String>>,
    #[serde(default)]
    catalog: Option<String>,
    #[serde(default)]
    register: Option<String>,
    pools: BTreeMap<String, RawPool>,
    cartridges: Vec<RawCartridge>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    retention_days: Spanned<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCartridge {
    barcode: Spanned<String>,
    pool: Spanned<String>,
    location: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLocations {
    drive: String,
    server_room: String,
    offsite_room: String,
    leave_server_room_by: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    repository_key_file: Spanned<String>,
    #[serde(default)]
    passphrase_env: Option<Spanned<String>>,
    #[serde(default)]
    passphrase_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    dir: Spanned<String>,
    key_file: Spanned<String>,
    #[serde(default)]
    checkpoint_dir: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperators {
    #[serde(default)]
    accounts_file: Option<Spanned<String>>,
    #[serde(default)]
    oracle_connect: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    #[serde(default)]
    lan: Vec<Spanned<String>>,
    #[serde(default)]
    vpn_pool: Vec<Spanned<String>>,
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    crl_file: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

struct Checker<'a> {
    text: &'a str,
    base: PathBuf,
    files: FileChecks,
    problems: Vec<(usize, Problem)>,
}

impl Checker<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// The start of the line holding `span` (values are reported at their key).
    fn problem(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let (line, _) = self.position(span.start);
        let line_start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let indent = self.text[line_start..]
            .chars()
            .take_while(|c| c.is_whitespace() && *c != '\n')
            .count();
        self.problems.push((
            span.start,
            Problem {
                line,
                column: indent + 1,
                key: key.into(),
                message: message.into(),
            },
        ));
    }

    /// The span of a table header (`[keys]`), for problems about a whole table.
    fn section(&self, header: &str) -> Range<usize> {
        let at = self
            .text
            .match_indices(header)
            .find(|(i, _)| *i == 0 || self.text.as_bytes().get(i - 1) == Some(&b'\n'))
            .map_or(0, |(i, _)| i);
        at..at
    }

    fn path(&self, value: &str) -> PathBuf {
        let p = Path::new(value);
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    fn existing(&mut self, value: &Spanned<String>, key: &str, what: &str, dir: bool) -> PathBuf {
        let path = self.path(value.get_ref());
        if self.files == FileChecks::Check {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() == dir => {}
                Ok(_) => self.problem(
                    value.span(),
                    key,
                    format!(
                        "{} is not a {} ({what})",
                        path.display(),
                        if dir { "directory" } else { "file" }
                    ),
                ),
                Err(e) => self.problem(
                    value.span(),
                    key,
                    format!(
                        "{what} {} does not exist or cannot be read: {e}",
                        path.display()
                    ),
                ),
            }
        }
        path
    }

    fn int_in(
        &mut self,
        value: Option<&Spanned<i64>>,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        what: &str,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if range.contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                self.problem(
                    v.span(),
                    key,
                    format!(
                        "{what} must be between {} and {}, not {}",
                        range.start(),
                        range.end(),
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn cidrs(&mut self, values: &[Spanned<String>], key: &str) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match v.get_ref().parse::<IpNet>() {
                Ok(net) => out.push(net),
                Err(_) => self.problem(
                    v.span(),
                    format!("{key}[{i}]"),
                    format!(
                        "{:?} is not a CIDR range (write it as address/prefix, e.g. 10.1.0.0/16)",
                        v.get_ref()
                    ),
                ),
            }
        }
        out
    }
}

const POOLS: [&str; 3] = ["daily", "weekly", "monthly"];

impl SiteConfig {
    /// Reads and validates the file at `path`, checking that the files it names exist.
    ///
    /// # Errors
    /// [`ConfigError::Read`]; [`ConfigError::Invalid`] with every problem found.
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, FileChecks::Check)
    }

    /// Reads and validates the file at `path` like [`SiteConfig::load`], but without checking
    /// that the files it names exist: for the tools of the degraded procedure (`tape`,
    /// `degraded_restore`, `audit` on the log host), whose server, database, key file and
    /// catalog may be gone. Whatever is missing fails later, where it is used.
    ///
    /// # Errors
    /// [`ConfigError::Read`]; [`ConfigError::Invalid`] with every problem found.
    pub fn load_unchecked(path: &Path) -> Result<SiteConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path, FileChecks::Skip)
    }

    /// Validates `text`, the content of the file `path` (used for messages and to resolve
    /// relative paths).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found (a syntax or shape error stops at the
    /// first one; value and file problems are all collected).
    pub fn from_toml(
        text: &str,
        path: &Path,
        files: FileChecks,
    ) -> Result<SiteConfig, ConfigError> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let mut ck = Checker {
            text,
            base,
            files,
            problems: Vec::new(),
        };
        let raw: RawFile = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let mut message = e.message().trim().to_owned();
                let secret_key = ["`passphrase`", "`password`", "`secret`"]
                    .iter()
                    .any(|k| message.starts_with(&format!("unknown field {k}")));
                if secret_key {
                    message = format!(
                        "{}: a secret is never written in this file; name where it comes from \
                         with *_env (an environment variable) or *_file (a root-only file)",
                        message.split(',').next().unwrap_or("unknown field")
                    );
                }
                let (line, column) = ck.position(span.start);
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    problems: vec![Problem {
                        line,
                        column,
                        key: String::new(),
                        message,
                    }],
                });
            }
        };
        let config = ck.validate(raw, path);
        if ck.problems.is_empty() {
            Ok(config)
        } else {
            let mut problems = ck.problems;
            problems.sort_by_key(|(offset, _)| *offset);
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems: problems.into_iter().map(|(_, p)| p).collect(),
            })
        }
    }
}

impl Checker<'_> {
    fn validate(&mut self, raw: RawFile, path: &Path) -> SiteConfig {
        // [site]
        let state_dir = self.path(raw.site.state_dir.get_ref());
        let rpo_h = self.int_in(
            raw.site.rpo_hours.as_ref(),
            "site.rpo_hours",
            26,
            1..=24 * 31,
            "the RPO in hours",
        );
        let rpo_crit_h = self.int_in(
            raw.site.rpo_critical_hours.as_ref(),
            "site.rpo_critical_hours",
            48.max(rpo_h),
            1..=24 * 62,
            "the critical RPO in hours",
        );
        if rpo_crit_h < rpo_h
            && let Some(v) = &raw.site.rpo_critical_hours
        {
            self.problem(
                v.span(),
                "site.rpo_critical_hours",
                format!("must be at least rpo_hours ({rpo_h})"),
            );
        }
        let site = SiteInfo {
            name: raw.site.name,
            host: raw.site.host.unwrap_or_else(jfiv_backup::hostname),
            state_dir: state_dir.clone(),
            rpo: Duration::hours(rpo_h),
            rpo_critical: Duration::hours(rpo_crit_h),
        };

        // [database]
        let db_span = self.section("[database]");
        let db = raw.database;
        let database = match db.kind.get_ref().as_str() {
            "sqlite" => {
                if db.oracle.is_some() {
                    self.problem(
                        self.section("[database.oracle]"),
                        "database.oracle",
                        "an [database.oracle] section is given but kind = \"sqlite\"",
                    );
                }
                match &db.path {
                    Some(p) => DatabaseConfig::Sqlite {
                        name: db.name.clone().unwrap_or_else(|| "jfiv-db".into()),
                        path: self.existing(p, "database.path", "the SQLite database", false),
                    },
                    None => {
                        self.problem(
                            db_span.clone(),
                            "database.path",
                            "kind = \"sqlite\" needs path = the database file",
                        );
                        DatabaseConfig::Sqlite {
                            name: "jfiv-db".into(),
                            path: PathBuf::new(),
                        }
                    }
                }
            }
            "oracle" => {
                if !cfg!(feature = "oracle") {
                    self.problem(
                        db.kind.span(),
                        "database.kind",
                        "this build has no Oracle support: rebuild with --features oracle",
                    );
                }
                match db.oracle {
                    Some(o) => {
                        let span = self.section("[database.oracle]");
                        let password = self.secret(
                            span,
                            o.password_env.map(|n| Spanned::new(0..0, n)),
                            o.password_file,
                            "database.oracle",
                            "password",
                        );
                        DatabaseConfig::Oracle {
                            name: db.name.unwrap_or_else(|| "jfiv-db".into()),
                            connect: o.connect,
                            user: o.user,
                            password,
                            schema: o.schema,
                        }
                    }
                    None => {
                        self.problem(
                            db.kind.span(),
                            "database.oracle",
                            "kind = \"oracle\" needs a [database.oracle] section (connect, user, schema, password_env or password_file)",
                        );
                        DatabaseConfig::Sqlite {
                            name: "jfiv-db".into(),
                            path: PathBuf::new(),
                        }
                    }
                }
            }
            other => {
                self.problem(
                    db.kind.span(),
                    "database.kind",
                    format!("unknown database kind {other:?} (\"sqlite\" or \"oracle\")"),
                );
                DatabaseConfig::Sqlite {
                    name: "jfiv-db".into(),
                    path: PathBuf::new(),
                }
            }
        };

        // [application]
        if raw.application.roots.get_ref().is_empty() {
            self.problem(
                raw.application.roots.span(),
                "application.roots",
                "at least one directory of the application server must be backed up",
            );
        }
        let roots = raw
            .application
            .roots
            .get_ref()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                self.existing(
                    r,
                    &format!("application.roots[{i}]"),
                    "the application directory",
                    true,
                )
            })
            .collect::<Vec<PathBuf>>();
        let mut exclude = Vec::new();
        for (i, g) in raw.application.exclude.iter().enumerate() {
            match globset::Glob::new(g.get_ref()) {
                Ok(_) => exclude.push(g.get_ref().clone()),
                Err(e) => self.problem(
                    g.span(),
                    format!("application.exclude[{i}]"),
                    format!("bad glob pattern: {e}"),
                ),
            }
        }
        let server_root = raw
            .application
            .server_root
            .as_deref()
            .map_or_else(|| PathBuf::from("/"), |p| self.path(p));
        for (i, (root, raw_root)) in roots
            .iter()
            .zip(raw.application.roots.get_ref())
            .enumerate()
        {
            let root: &PathBuf = root;
            if !root.starts_with(&server_root) {
                self.problem(
                    raw_root.span(),
                    format!("application.roots[{i}]"),
                    format!(
                        "{} is not under server_root {}",
                        root.display(),
                        server_root.display()
                    ),
                );
            }
        }
        let application = ApplicationConfig {
            name: raw.application.name.unwrap_or_else(|| "jfiv-app".into()),
            roots,
            server_root,
            exclude,
        };

        // [disk]
        let disk_dir = self.existing(
            &raw.disk.dir,
            "disk.dir",
            "the disk target directory (is the disk mounted?)",
            true,
        );
        let warn = self.int_in(
            raw.disk.warn_used_percent.as_ref(),
            "disk.warn_used_percent",
            85,
            1..=100,
            "a percentage",
        );
        let crit = self.int_in(
            raw.disk.critical_used_percent.as_ref(),
            "disk.critical_used_percent",
            95.max(warn),
            1..=100,
            "a percentage",
        );
        if crit < warn
            && let Some(v) = &raw.disk.critical_used_percent
        {
            self.problem(
                v.span(),
                "disk.critical_used_percent",
                format!("must be at least warn_used_percent ({warn})"),
            );
        }
        let verify_slices = self.int_in(
            raw.disk.verify_slices.as_ref(),
            "disk.verify_slices",
            7,
            1..=366,
            "the number of nights of the verification rotation",
        );
        let retention = match &raw.disk.retention {
            None => Retention {
                daily: 7,
                weekly: 5,
                monthly: 12,
            },
            Some(r) => Retention {
                daily: self.int_in(
                    Some(&r.daily),
                    "disk.retention.daily",
                    7,
                    1..=366,
                    "days kept",
                ) as u32,
                weekly: self.int_in(
                    Some(&r.weekly),
                    "disk.retention.weekly",
                    5,
                    0..=260,
                    "weeks kept",
                ) as u32,
                monthly: self.int_in(
                    Some(&r.monthly),
                    "disk.retention.monthly",
                    12,
                    0..=240,
                    "months kept",
                ) as u32,
            },
        };
        let disk = DiskConfig {
            dir: disk_dir.clone(),
            warn_used_percent: warn as u8,
            critical_used_percent: crit as u8,
            retention,
            verify_slices: verify_slices as u32,
        };

        // [locations]
        let leave_by = match NaiveTime::parse_from_str(
            raw.locations.leave_server_room_by.get_ref(),
            "%H:%M",
        ) {
            Ok(t) => t,
            Err(_) => {
                self.problem(
                    raw.locations.leave_server_room_by.span(),
                    "locations.leave_server_room_by",
                    format!(
                        "{:?} is not a time of day: write HH:MM (UTC), e.g. \"09:30\"",
                        raw.locations.leave_server_room_by.get_ref()
                    ),
                );
                NaiveTime::MIN
            }
        };
        let locations = LocationsConfig {
            drive: raw.locations.drive,
            server_room: raw.locations.server_room,
            offsite_room: raw.locations.offsite_room,
            leave_server_room_by: leave_by,
        };
        if locations
            .server_room
            .eq_ignore_ascii_case(&locations.offsite_room)
        {
            self.problem(
                raw.locations.leave_server_room_by.span(),
                "locations.offsite_room",
                "the offsite room must be another room than the server room",
            );
        }

        // [tape]
        let backend = match (&raw.tape.device, &raw.tape.library) {
            (Some(d), None) => {
                TapeBackend::Device(self.existing(d, "tape.device", "the tape device", false))
            }
            (None, Some(l)) => TapeBackend::Library(self.existing(
                l,
                "tape.library",
                "the virtual library directory",
                true,
            )),
            (Some(d), Some(_)) => {
                self.problem(
                    d.span(),
                    "tape.device",
                    "give either device (a drive) or library (a virtual library), not both",
                );
                TapeBackend::Device(PathBuf::new())
            }
            (None, None) => {
                self.problem(
                    self.section("[tape]"),
                    "tape",
                    "[tape] needs device = \"/dev/nst0\" or library = \"<virtual library dir>\"",
                );
                TapeBackend::Device(PathBuf::new())
            }
        };
        let block = self.int_in(
            raw.tape.block_size_kib.as_ref(),
            "tape.block_size_kib",
            512,
            256..=1024,
            "the block size in KiB",
        );
        let weekly_day = match &raw.tape.weekly_day {
            None => Weekday::Fri,
            Some(d) => d.get_ref().parse::<Weekday>().unwrap_or_else(|_| {
                self.problem(
                    d.span(),
                    "tape.weekly_day",
                    format!(
                        "{:?} is not a day of the week (mon, tue, ... sun)",
                        d.get_ref()
                    ),
                );
                Weekday::Fri
            }),
        };
        let mut pools = BTreeMap::new();
        for (name, pool) in raw.tape.pools {
            if !POOLS.contains(&name.as_str()) {
                // The table header `[tape.pools.NAME]` when written so, else the first key.
                let span = self
                    .text
                    .find(&format!("[tape.pools.{name}]"))
                    .map_or_else(|| pool.retention_days.span(), |at| at..at);
                self.problem(
                    span,
                    format!("tape.pools.{name}"),
                    format!("unknown pool {name:?}: the rotation knows daily, weekly and monthly"),
                );
                continue;
            }
            let days = self.int_in(
                Some(&pool.retention_days),
                &format!("tape.pools.{name}.retention_days"),
                7,
                1..=3660,
                "the retention in days",
            );
            pools.insert(name.clone(), days as u32);
        }
        if !pools.contains_key("daily") {
            self.problem(
                self.section("[tape.pools"),
                "tape.pools",
                "the daily pool must be declared ([tape.pools.daily])",
            );
        }
        let mut cartridges = Vec::new();
        let mut seen = BTreeMap::new();
        for (i, c) in raw.tape.cartridges.iter().enumerate() {
            let key = format!("tape.cartridges[{i}]");
            let barcode = c.barcode.get_ref();
            if barcode.is_empty()
                || barcode.len() > 32
                || !barcode
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                self.problem(
                    c.barcode.span(),
                    format!("{key}.barcode"),
                    format!("{barcode:?}: a barcode is 1 to 32 letters, digits, - or _"),
                );
            }
            if let Some(first) = seen.insert(barcode.clone(), i) {
                self.problem(
                    c.barcode.span(),
                    format!("{key}.barcode"),
                    format!("barcode {barcode} is already given by tape.cartridges[{first}]"),
                );
            }
            if !pools.contains_key(c.pool.get_ref()) {
                let declared: Vec<&str> = pools.keys().map(String::as_str).collect();
                self.problem(
                    c.pool.span(),
                    format!("{key}.pool"),
                    format!(
                        "pool {:?} is not declared in [tape.pools] (declared: {})",
                        c.pool.get_ref(),
                        declared.join(", ")
                    ),
                );
            }
            let location = match locations.parse(c.location.get_ref()) {
                Some(p) => p,
                None => {
                    self.problem(
                        c.location.span(),
                        format!("{key}.location"),
                        format!(
                            "location {:?} is not declared in [locations] ({:?}, {:?} or {:?})",
                            c.location.get_ref(),
                            locations.drive,
                            locations.server_room,
                            locations.offsite_room
                        ),
                    );
                    Place::ServerRoom
                }
            };
            cartridges.push(Cartridge {
                barcode: barcode.clone(),
                pool: c.pool.get_ref().clone(),
                location,
            });
        }
        for pool in pools.keys() {
            if !cartridges.iter().any(|c| &c.pool == pool) {
                self.problem(
                    self.section("[[tape.cartridges]]"),
                    "tape.cartridges",
                    format!("the {pool} pool has no cartridge"),
                );
            }
        }
        let tape = TapeConfig {
            backend,
            block_size_kib: block as u32,
            pools,
            weekly_day,
            cartridges,
            catalog: raw
                .tape
                .catalog
                .map_or_else(|| state_dir.join("tape-catalog.json"), |p| self.path(&p)),
            register: raw
                .tape
                .register
                .map_or_else(|| state_dir.join("tape-locations.json"), |p| self.path(&p)),
        };

        // [keys]
        let keys_span = self.section("[keys]");
        let keys = raw.keys;
        let repository_key_file = self.existing(
            &keys.repository_key_file,
            "keys.repository_key_file",
            "the repository key file",
            false,
        );
        let passphrase = self.secret(
            keys_span,
            keys.passphrase_env,
            keys.passphrase_file,
            "keys",
            "passphrase",
        );
        let keys = KeysConfig {
            repository_key_file,
            passphrase,
        };

        // [audit]
        let audit = AuditConfig {
            dir: self.path(raw.audit.dir.get_ref()),
            key_file: self.existing(
                &raw.audit.key_file,
                "audit.key_file",
                "the audit key file",
                false,
            ),
            checkpoint_dir: raw
                .audit
                .checkpoint_dir
                .map_or_else(|| disk_dir.join("audit-checkpoints"), |p| self.path(&p)),
        };
        if self.files == FileChecks::Check {
            let dir = self.path(raw.audit.dir.get_ref());
            let parent_ok = dir.exists() || dir.parent().is_some_and(Path::exists);
            if !parent_ok {
                self.problem(
                    raw.audit.dir.span(),
                    "audit.dir",
                    format!("neither {} nor its parent directory exists", dir.display()),
                );
            }
        }

        // [operators]
        let op_span = self.section("[operators]");
        let ops = raw.operators;
        let operators = match (ops.accounts_file, ops.oracle_connect) {
            (Some(f), None) => OperatorsConfig::Local {
                accounts_file: self.existing(
                    &f,
                    "operators.accounts_file",
                    "the operator accounts file",
                    false,
                ),
            },
            (None, Some(c)) => {
                if !cfg!(feature = "oracle") {
                    self.problem(
                        c.span(),
                        "operators.oracle_connect",
                        "this build has no Oracle support: rebuild with --features oracle",
                    );
                }
                OperatorsConfig::Oracle {
                    connect: c.into_inner(),
                }
            }
            (Some(f), Some(_)) => {
                self.problem(
                    f.span(),
                    "operators",
                    "give either accounts_file or oracle_connect, not both",
                );
                OperatorsConfig::Local {
                    accounts_file: PathBuf::new(),
                }
            }
            (None, None) => {
                self.problem(
                    op_span,
                    "operators",
                    "[operators] needs accounts_file (local accounts) or oracle_connect",
                );
                OperatorsConfig::Local {
                    accounts_file: PathBuf::new(),
                }
            }
        };

        // [remote_access]
        let remote_access = match raw.remote_access {
            None => RemoteAccessConfig {
                lan: Vec::new(),
                vpn_pool: Vec::new(),
                ca_file: None,
                crl_file: None,
            },
            Some(r) => {
                let lan = self.cidrs(&r.lan, "remote_access.lan");
                let vpn_pool = self.cidrs(&r.vpn_pool, "remote_access.vpn_pool");
                for (i, v) in vpn_pool.iter().enumerate() {
                    if let Some(l) = lan.iter().find(|l| l.contains(v) || v.contains(*l)) {
                        let span = r.vpn_pool.get(i).map_or(0..0, Spanned::span);
                        self.problem(
                            span,
                            format!("remote_access.vpn_pool[{i}]"),
                            format!("VPN pool {v} overlaps the LAN range {l}"),
                        );
                    }
                }
                let ca_file = r.ca_file.as_ref().map(|f| {
                    self.existing(f, "remote_access.ca_file", "the VPN CA certificate", false)
                });
                let crl_file = r
                    .crl_file
                    .as_ref()
                    .map(|f| self.existing(f, "remote_access.crl_file", "the VPN CA's CRL", false));
                if !r.vpn_pool.is_empty() && (ca_file.is_none() || crl_file.is_none()) {
                    let span = r.vpn_pool.first().map_or(0..0, Spanned::span);
                    self.problem(
                        span,
                        "remote_access.vpn_pool",
                        "a VPN pool needs ca_file and crl_file: remote users are checked against the CA, and a certificate that cannot be revoked is not a factor",
                    );
                }
                RemoteAccessConfig {
                    lan,
                    vpn_pool,
                    ca_file,
                    crl_file,
                }
            }
        };

        SiteConfig {
            path: path.to_owned(),
            site,
            database,
            application,
            disk,
            tape,
            locations,
            keys,
            audit,
            operators,
            remote_access,
        }
    }

    fn secret(
        &mut self,
        section: Range<usize>,
        env: Option<Spanned<String>>,
        file: Option<Spanned<String>>,
        key: &str,
        what: &str,
    ) -> SecretSource {
        match (env, file) {
            (Some(e), None) => {
                let name = e.into_inner();
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    self.problem(
                        section,
                        format!("{key}.{what}_env"),
                        format!("{name:?} is not an environment variable name (A-Z, 0-9, _)"),
                    );
                }
                SecretSource::Env(name)
            }
            (None, Some(f)) => {
                let path = self.existing(
                    &f,
                    &format!("{key}.{what}_file"),
                    &format!("the {what} file"),
                    false,
                );
                if self.files == FileChecks::Check
                    && let Some(reason) = secret_file_mode_problem(&path)
                {
                    self.problem(
                        f.span(),
                        format!("{key}.{what}_file"),
                        format!("{}: {reason}", path.display()),
                    );
                }
                SecretSource::File(path)
            }
            (Some(_), Some(f)) => {
                self.problem(
                    f.span(),
                    format!("{key}.{what}_file"),
                    format!("give either {what}_env or {what}_file, not both"),
                );
                SecretSource::Env(String::new())
            }
            (None, None) => {
                self.problem(
                    section,
                    key,
                    format!(
                        "the {what} must come from {what}_env (an environment variable name) or {what}_file (never the {what} itself in this file)"
                    ),
                );
                SecretSource::Env(String::new())
            }
        }
    }
}

/// The remote-access policy of a site cannot be built from its files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessPolicyError {
    /// The CA or CRL file cannot be read.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// `the VPN CA certificate` or `the VPN CA's CRL`.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is PEM: only DER is read yet (not implemented: PEM decoding belongs in
    /// `jfiv-auth`, whose certificate crate has it).
    #[error(
        "{}: {what} is PEM; only DER is read yet: convert it with `openssl {} -in {} -outform der -out {}.der` and name the .der file in the configuration",
        path.display(),
        if *what == "the VPN CA's CRL" { "crl" } else { "x509" },
        path.display(),
        path.display()
    )]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: &'static str,
    },
    /// The policy refused the certificate, the CRL or the ranges.
    #[error(transparent)]
    Policy(#[from] jfiv_auth::Error),
}

impl SiteConfig {
    /// The virtual library directory (`tape.library`); `None` for a real drive.
    pub fn library_dir(&self) -> Option<&Path> {
        match &self.tape.backend {
            TapeBackend::Library(dir) => Some(dir),
            TapeBackend::Device(_) => None,
        }
    }

    /// The local operator accounts file; `None` when operators log in with their Oracle
    /// account.
    pub fn accounts_file(&self) -> Option<&Path> {
        match &self.operators {
            OperatorsConfig::Local { accounts_file } => Some(accounts_file),
            OperatorsConfig::Oracle { .. } => None,
        }
    }

    /// The signed audit checkpoints exported to `audit.checkpoint_dir` (its `*.json` files,
    /// sorted); none when the directory does not exist yet.
    ///
    /// # Errors
    /// The directory exists but cannot be listed.
    pub fn audit_checkpoint_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let dir = &self.audit.checkpoint_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Where the SQLite database file goes under a new server root: its directory relative to
    /// `application.server_root` (`srv/jfiv/data` for `/srv/jfiv/data/jfiv.sqlite` and the root
    /// `/`). `None` for Oracle, or a database outside the server root.
    pub fn database_dir_in_server(&self) -> Option<PathBuf> {
        let DatabaseConfig::Sqlite { path, .. } = &self.database else {
            return None;
        };
        path.parent()?
            .strip_prefix(&self.application.server_root)
            .ok()
            .map(Path::to_owned)
    }

    /// The remote-access policy of the site: the LAN ranges, the VPN pools, and the VPN CA
    /// certificate and its CRL read from their files (DER).
    ///
    /// # Errors
    /// [`AccessPolicyError`]: a file unreadable or in PEM, a certificate or CRL the policy
    /// refuses.
    pub fn remote_access_policy(&self) -> Result<jfiv_auth::RemoteAccessPolicy, AccessPolicyError> {
        let r = &self.remote_access;
        let mut builder = jfiv_auth::RemoteAccessPolicy::builder();
        for lan in &r.lan {
            builder = builder.lan(*lan);
        }
        for pool in &r.vpn_pool {
            builder = builder.vpn_pool(*pool);
        }
        let der = |path: &Path, what: &'static str| -> Result<Vec<u8>, AccessPolicyError> {
            let bytes = std::fs::read(path).map_err(|source| AccessPolicyError::Read {
                path: path.to_owned(),
                what,
                source,
            })?;
            if bytes.starts_with(b"-----BEGIN") {
                return Err(AccessPolicyError::Pem {
                    path: path.to_owned(),
                    what,
                });
            }
            Ok(bytes)
        };
        if let Some(ca) = &r.ca_file {
            builder = builder.ca_der(jfiv_auth::CertificateDer::from(der(
                ca,
                "the VPN CA certificate",
            )?));
        }
        if let Some(crl) = &r.crl_file {
            builder = builder.crl_der(der(crl, "the VPN CA's CRL")?);
        }
        Ok(builder.build()?)
    }
}

impl TapeConfig {
    /// The barcodes of one pool, in the order given.
    pub fn pool_members(&self, pool: &str) -> Vec<&str> {
        self.cartridges
            .iter()
            .filter(|c| c.pool == pool)
            .map(|c| c.barcode.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../examples/hospital.toml");

    fn line_of(text: &str, needle: &str) -> usize {
        let offset = text
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the text"));
        text[..offset].matches('\n').count() + 1
    }

    fn problems(text: &str) -> Vec<Problem> {
        match SiteConfig::from_toml(text, Path::new("/etc/jfiv/hospital.toml"), FileChecks::Skip) {
            Ok(_) => panic!("accepted"),
            Err(e) => {
                // Every message names the file and a line.
                assert!(e.to_string().starts_with("/etc/jfiv/hospital.toml:"), "{e}");
                e.problems().to_vec()
            }
        }
    }

    /// A site whose every file exists, under `dir`.
    fn real_site(dir: &Path) -> String {
        for d in ["data", "opt/jfiv", "etc/jfiv", "disk", "vtl", "audit"] {
            fs_err(std::fs::create_dir_all(dir.join(d)));
        }
        for f in [
            "data/jfiv.sqlite",
            "backup.key",
            "audit.keys",
            "operators.json",
            "ca.pem",
            "ca.crl",
        ] {
            fs_err(std::fs::write(dir.join(f), b"x"));
        }
        SAMPLE
            .replace("/srv/jfiv/data/jfiv.sqlite", "data/jfiv.sqlite")
            .replace(
                "[\"/opt/jfiv\", \"/etc/jfiv\"]",
                "[\"opt/jfiv\", \"etc/jfiv\"]",
            )
            .replace("/mnt/sauvegarde-batiment-c/jfiv", "disk")
            .replace("device = \"/dev/nst0\"", "library = \"vtl\"")
            .replace("/etc/jfiv/backup-repository.key", "backup.key")
            .replace("/var/log/jfiv/audit", "audit")
            .replace("/etc/jfiv/audit.keys", "audit.keys")
            .replace("/etc/jfiv/operators.json", "operators.json")
            .replace("/etc/jfiv/vpn-ca.der", "ca.pem")
            .replace("/etc/jfiv/vpn-ca.crl.der", "ca.crl")
            .replace("/var/lib/jfiv", "state")
    }

    fn fs_err(r: std::io::Result<()>) {
        r.unwrap();
    }

    #[test]
    fn the_sample_configuration_is_valid_and_says_what_the_hospital_does() {
        let site =
            SiteConfig::from_toml(SAMPLE, Path::new("hospital.toml"), FileChecks::Skip).unwrap();
        assert_eq!(site.site.name, "Hôpital Privé Le Bois");
        assert_eq!(site.site.rpo, Duration::hours(26));
        assert!(matches!(site.database, DatabaseConfig::Sqlite { .. }));
        assert_eq!(site.tape.backend, TapeBackend::Device("/dev/nst0".into()));
        assert_eq!(site.tape.pool_members("weekly").len(), 5);
        assert_eq!(site.tape.cartridges[0].location, Place::ServerRoom);
        assert_eq!(site.tape.cartridges[1].location, Place::Offsite);
        assert_eq!(
            site.locations.leave_server_room_by,
            NaiveTime::from_hms_opt(9, 30, 0).unwrap()
        );
        assert_eq!(
            site.keys.passphrase,
            SecretSource::Env("JFIV_BACKUP_PASSPHRASE".into())
        );
        assert!(site.remote_access.allows("10.99.9.7".parse().unwrap()));
        assert!(!site.remote_access.allows("192.168.1.7".parse().unwrap()));
        assert_eq!(
            site.tape.catalog,
            PathBuf::from("/var/lib/jfiv/tape-catalog.json")
        );
    }

    #[test]
    fn relative_paths_are_relative_to_the_file_and_existing_files_pass() {
        let dir = tempfile::tempdir().unwrap();
        let text = real_site(dir.path());
        let path = dir.path().join("hospital.toml");
        std::fs::write(&path, &text).unwrap();
        let site = SiteConfig::load(&path).unwrap();
        assert_eq!(site.disk.dir, dir.path().join("disk"));
        assert_eq!(
            site.tape.backend,
            TapeBackend::Library(dir.path().join("vtl"))
        );
        assert_eq!(site.application.roots[1], dir.path().join("etc/jfiv"));
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let text = SAMPLE.replace("rpo_hours = 26", "rpo_hours = = 26");
        let p = problems(&text);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, line_of(&text, "rpo_hours = = 26"));
    }

    #[test]
    fn an_unknown_key_is_reported_with_its_line() {
        let text = SAMPLE.replace("rpo_hours = 26", "rpo_hours = 26\nrpo_heures = 30");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, line_of(&text, "rpo_heures"));
        assert!(
            p[0].message.contains("unknown field `rpo_heures`"),
            "{}",
            p[0].message
        );
    }

    #[test]
    fn a_passphrase_written_in_the_file_is_refused_with_a_hint() {
        let text = SAMPLE.replace(
            "passphrase_env = \"JFIV_BACKUP_PASSPHRASE\"",
            "passphrase = \"Sauvegarde-2026!\"",
        );
        let p = problems(&text);
        assert_eq!(p[0].line, line_of(&text, "passphrase = "));
        assert!(p[0].message.contains("never"), "{}", p[0].message);
        assert!(
            !p[0].message.contains("Sauvegarde-2026!"),
            "the secret is echoed: {}",
            p[0].message
        );
    }

    #[test]
    fn missing_files_are_reported_with_the_line_of_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let text = real_site(dir.path());
        std::fs::remove_file(dir.path().join("backup.key")).unwrap();
        std::fs::remove_dir_all(dir.path().join("disk")).unwrap();
        let err =
            SiteConfig::from_toml(&text, &dir.path().join("hospital.toml"), FileChecks::Check)
                .unwrap_err();
        let p = err.problems();
        assert_eq!(p.len(), 2, "{err}");
        assert_eq!(p[0].key, "disk.dir");
        assert_eq!(p[0].line, line_of(&text, "dir = \"disk\""));
        assert!(
            p[0].message.contains("is the disk mounted?"),
            "{}",
            p[0].message
        );
        assert_eq!(p[1].key, "keys.repository_key_file");
        assert_eq!(p[1].line, line_of(&text, "repository_key_file"));
        assert!(p[1].message.contains("does not exist"));
        // The tools of the degraded procedure read it all the same.
        let path = dir.path().join("hospital.toml");
        std::fs::write(&path, &text).unwrap();
        assert!(SiteConfig::load(&path).is_err());
        let site = SiteConfig::load_unchecked(&path).unwrap();
        assert_eq!(site.disk.dir, dir.path().join("disk"));
    }

    #[test]
    fn a_secret_file_readable_by_others_is_reported_with_its_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let text = real_site(dir.path()).replace(
            "passphrase_env = \"JFIV_BACKUP_PASSPHRASE\"",
            "passphrase_file = \"pass\"",
        );
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "not a real passphrase\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("hospital.toml");
        let err = SiteConfig::from_toml(&text, &path, FileChecks::Check).unwrap_err();
        let p = err.problems();
        assert_eq!(p.len(), 1, "{err}");
        assert_eq!(p[0].key, "keys.passphrase_file");
        assert_eq!(p[0].line, line_of(&text, "passphrase_file"));
        assert!(p[0].message.contains("chmod 600"), "{}", p[0].message);
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let site = SiteConfig::from_toml(&text, &path, FileChecks::Check).unwrap();
        assert_eq!(site.keys.passphrase, SecretSource::File(pass));
    }

    #[test]
    fn a_bad_cidr_is_reported_with_its_line() {
        let text = SAMPLE.replace(
            "vpn_pool = [\"10.99.8.0/22\"]",
            "vpn_pool = [\"10.99.8.0/33\"]",
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "remote_access.vpn_pool[0]");
        assert_eq!(p[0].line, line_of(&text, "10.99.8.0/33"));
        assert!(p[0].message.contains("not a CIDR range"));
    }

    #[test]
    fn overlapping_lan_and_vpn_ranges_are_refused() {
        let text = SAMPLE.replace(
            "vpn_pool = [\"10.99.8.0/22\"]",
            "vpn_pool = [\"10.20.8.0/22\"]",
        );
        let p = problems(&text);
        assert!(
            p[0].message.contains("overlaps the LAN range 10.20.0.0/16"),
            "{p:?}"
        );
    }

    #[test]
    fn a_pool_that_does_not_exist_is_reported_with_its_line() {
        // A cartridge in an undeclared pool.
        let text = SAMPLE.replacen("pool = \"weekly\"", "pool = \"hebdo\"", 1);
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "tape.cartridges[8].pool");
        assert_eq!(p[0].line, line_of(&text, "pool = \"hebdo\""));
        assert!(p[0].message.contains(
            "pool \"hebdo\" is not declared in [tape.pools] (declared: daily, monthly, weekly)"
        ));
        // A pool the rotation does not know.
        let text = SAMPLE.replace("[tape.pools.monthly]", "[tape.pools.yearly]");
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.key == "tape.pools.yearly"
                    && p.line == line_of(&text, "[tape.pools.yearly]")),
            "{p:?}"
        );
    }

    #[test]
    fn a_location_not_declared_is_reported_with_its_line() {
        let text = SAMPLE.replacen(
            "location = \"Salle informatique, niveau -1\"",
            "location = \"Salle B\"",
            1,
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "tape.cartridges[0].location");
        assert_eq!(p[0].line, line_of(&text, "location = \"Salle B\""));
        assert!(p[0].message.contains("not declared in [locations]"));
    }

    #[test]
    fn bad_values_are_all_reported_at_once() {
        let text = SAMPLE
            .replace(
                "leave_server_room_by = \"09:30\"",
                "leave_server_room_by = \"9h30\"",
            )
            .replace("critical_used_percent = 95", "critical_used_percent = 80")
            .replace("block_size_kib = 512", "block_size_kib = 64")
            .replace("weekly_day = \"fri\"", "weekly_day = \"vendredi\"");
        let p = problems(&text);
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "disk.critical_used_percent",
                "tape.block_size_kib",
                "tape.weekly_day",
                "locations.leave_server_room_by"
            ]
        );
        assert_eq!(p[3].line, line_of(&text, "leave_server_room_by = \"9h30\""));
    }

    #[test]
    fn a_secret_source_is_required_and_read_from_a_file() {
        let text = SAMPLE.replace("passphrase_env = \"JFIV_BACKUP_PASSPHRASE\"", "");
        let p = problems(&text);
        assert_eq!(p[0].key, "keys");
        assert!(
            p[0].message
                .contains("never the passphrase itself in this file")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass");
        std::fs::write(&file, "correct horse battery staple\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = SecretSource::File(file.clone()).read().unwrap_err();
        assert!(open.to_string().contains("must be 0600 or 0400"), "{open}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = SecretSource::File(file).read().unwrap();
        use secrecy::ExposeSecret;
        assert_eq!(secret.expose_secret(), "correct horse battery staple");
        let missing = SecretSource::Env("JFIV_TEST_SURELY_UNSET_VARIABLE".into())
            .read()
            .unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("JFIV_TEST_SURELY_UNSET_VARIABLE")
        );
    }

    #[test]
    fn oracle_needs_the_feature_or_is_accepted_with_it() {
        let text = SAMPLE.replace("kind = \"sqlite\"\n", "kind = \"oracle\"\n").replace(
            "path = \"/srv/jfiv/data/jfiv.sqlite\"",
            "[database.oracle]\nconnect = \"//db:1521/JFIV\"\nuser = \"JFIV_BACKUP\"\nschema = \"JFIV\"\npassword_env = \"JFIV_ORACLE_PASSWORD\"",
        );
        let result = SiteConfig::from_toml(&text, Path::new("h.toml"), FileChecks::Skip);
        if cfg!(feature = "oracle") {
            let site = result.unwrap();
            assert!(
                matches!(site.database, DatabaseConfig::Oracle { ref schema, .. } if schema == "JFIV")
            );
        } else {
            let err = result.unwrap_err();
            assert!(err.to_string().contains("--features oracle"), "{err}");
        }
    }
}

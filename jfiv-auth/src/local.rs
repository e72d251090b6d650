//! [`LocalAccounts`]: a file-backed account store with argon2id password hashes.
//!
//! For tools that need their own operators (backup operators, auditors) and for the embedded
//! default when there is no Oracle. The file is JSON, rewritten atomically (temporary file in
//! the same directory, `fsync`, rename, `fsync` of the directory) with mode 0600.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use jfiv_audit::{Clock, SystemClock};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    Authenticator, ConnectionContext, Credentials, Error, FailureReason, HashParams, Identity,
    PasswordPolicy, Profile, Randomness, Result,
};

const FORMAT: &str = "jfiv-local-accounts";
const VERSION: u32 = 1;

/// How a [`LocalAccounts`] store hashes and what passwords it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LocalOptions {
    /// Argon2id parameters of new hashes and of the dummy hash (default: the OWASP floor).
    pub hash: HashParams,
    /// The policy new passwords must meet (default: CNIL 12 characters of 4 classes).
    pub password_policy: PasswordPolicy,
    /// The database name logins must give; `None` accepts any.
    pub database: Option<String>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountRecord {
    username: String,
    profile: Profile,
    /// PHC string.
    hash: String,
    created: DateTime<Utc>,
    password_changed: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountFile {
    format: String,
    version: u32,
    accounts: Vec<AccountRecord>,
}

/// An account as listed to an administrator (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    /// The login name.
    pub username: String,
    /// The profile.
    pub profile: Profile,
    /// When the account was created.
    pub created: DateTime<Utc>,
    /// When the password was last set.
    pub password_changed: DateTime<Utc>,
}

/// A file-backed account store with argon2id password hashes.
///
/// The file is JSON, rewritten atomically (temporary file in the same directory, `fsync`,
/// rename, `fsync` of the directory) with mode 0600; a file readable by others is refused.
///
/// User names are exact (case-sensitive), 1 to 64 characters without spaces or control
/// characters. Only one process may write a given file at a time (there is no cross-process
/// lock yet: not implemented).
pub struct LocalAccounts {
    path: PathBuf,
    options: LocalOptions,
    clock: Arc<dyn Clock>,
    rng: Arc<Randomness>,
    /// Hash of a random password with the store's parameters, verified for unknown users so
    /// that they cost as much as a wrong password.
    dummy_hash: Arc<str>,
    accounts: RwLock<BTreeMap<String, AccountRecord>>,
    writer: Mutex<()>,
}

impl fmt::Debug for LocalAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalAccounts")
            .field("path", &self.path)
            .field("options", &self.options)
            .field("accounts", &self.read().len())
            .finish_non_exhaustive()
    }
}

fn validate_username(username: &str) -> Result<()> {
    let ok = !username.is_empty()
        && username.chars().count() <= 64
        && !username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Config {
            what: "user name".into(),
            detail: format!("{username:?}: 1 to 64 characters, no spaces or control characters"),
        })
    }
}

impl LocalAccounts {
    /// Opens the store at `path` (an absent file is an empty store, created at the first
    /// change), with the system clock and the OS random generator.
    ///
    /// # Errors
    /// See [`LocalAccounts::open_with`].
    pub fn open(path: impl Into<PathBuf>, options: LocalOptions) -> Result<Self> {
        Self::open_with(
            path,
            options,
            Arc::new(SystemClock),
            Arc::new(Randomness::os()),
        )
    }

    /// Opens the store with an injected clock and random source.
    ///
    /// # Errors
    /// [`Error::Io`] reading the file; [`Error::AccountFile`] when it is not an account file of
    /// this version, holds a duplicate or invalid user name or a non-argon2 hash, or can be
    /// read by other users (mode wider than 0600); [`Error::Hashing`] for bad parameters.
    pub fn open_with(
        path: impl Into<PathBuf>,
        options: LocalOptions,
        clock: Arc<dyn Clock>,
        rng: Arc<Randomness>,
    ) -> Result<Self> {
        let path = path.into();
        let accounts = match std::fs::read(&path) {
            Ok(bytes) => {
                check_mode(&path)?;
                parse_file(&path, &bytes)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let random_password = hex::encode(rng.bytes::<32>());
        let dummy_hash: Arc<str> = options.hash.hash(&random_password, &rng)?.into();
        Ok(Self {
            path,
            options,
            clock,
            rng,
            dummy_hash,
            accounts: RwLock::new(accounts),
            writer: Mutex::new(()),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options.
    pub fn options(&self) -> &LocalOptions {
        &self.options
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, AccountRecord>> {
        self.accounts.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The accounts, sorted by name.
    pub fn accounts(&self) -> Vec<AccountSummary> {
        self.read()
            .values()
            .map(|r| AccountSummary {
                username: r.username.clone(),
                profile: r.profile,
                created: r.created,
                password_changed: r.password_changed,
            })
            .collect()
    }

    /// Applies `change` to a copy of the accounts, writes the file, then publishes the copy.
    fn update(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, AccountRecord>) -> Result<()>,
    ) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.read().clone();
        change(&mut next)?;
        write_file(&self.path, &next)?;
        *self.accounts.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    /// Creates an account.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid user name, [`Error::WeakPassword`],
    /// [`Error::AccountExists`], [`Error::Io`] writing the file.
    pub fn create_account(
        &self,
        username: &str,
        profile: Profile,
        password: &SecretString,
    ) -> Result<()> {
        validate_username(username)?;
        self.options
            .password_policy
            .check(username, password.expose_secret())?;
        if self.read().contains_key(username) {
            return Err(Error::AccountExists {
                username: username.to_owned(),
            });
        }
        let hash = self
            .options
            .hash
            .hash(password.expose_secret(), &self.rng)?;
        let now = self.clock.now();
        self.update(|accounts| {
            if accounts.contains_key(username) {
                return Err(Error::AccountExists {
                    username: username.to_owned(),
                });
            }
            accounts.insert(
                username.to_owned(),
                AccountRecord {
                    username: username.to_owned(),
                    profile,
                    hash,
                    created: now,
                    password_changed: now,
                },
            );
            Ok(())
        })
    }

    /// Sets a new password.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`], [`Error::WeakPassword`], [`Error::Io`].
    pub fn set_password(&self, username: &str, password: &SecretString) -> Result<()> {
        self.options
            .password_policy
            .check(username, password.expose_secret())?;
        let hash = self
            .options
            .hash
            .hash(password.expose_secret(), &self.rng)?;
        let now = self.clock.now();
        self.update(|accounts| {
            let record = accounts
                .get_mut(username)
                .ok_or_else(|| Error::NoSuchAccount {
                    username: username.to_owned(),
                })?;
            record.hash = hash;
            record.password_changed = now;
            Ok(())
        })
    }

    /// Changes the profile of an account.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`], [`Error::Io`].
    pub fn set_profile(&self, username: &str, profile: Profile) -> Result<()> {
        self.update(|accounts| {
            accounts
                .get_mut(username)
                .ok_or_else(|| Error::NoSuchAccount {
                    username: username.to_owned(),
                })?
                .profile = profile;
            Ok(())
        })
    }

    /// Removes an account.
    ///
    /// # Errors
    /// [`Error::NoSuchAccount`], [`Error::Io`].
    pub fn remove_account(&self, username: &str) -> Result<()> {
        self.update(|accounts| {
            accounts
                .remove(username)
                .map(|_| ())
                .ok_or_else(|| Error::NoSuchAccount {
                    username: username.to_owned(),
                })
        })
    }

    /// The dummy hash (for tests: it must carry the store's parameters).
    #[cfg(test)]
    fn dummy_hash(&self) -> &str {
        &self.dummy_hash
    }
}

#[async_trait]
impl Authenticator for LocalAccounts {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        _context: &ConnectionContext,
    ) -> Result<Identity> {
        let database_ok = self
            .options
            .database
            .as_deref()
            .is_none_or(|d| d == credentials.database);
        let record = self.read().get(&credentials.username).cloned();
        let empty = credentials.expose_password().is_empty();
        // Always verify one hash, the account's or the dummy one, so that every refusal costs
        // the same.
        let (hash, failure): (Arc<str>, Option<FailureReason>) = match (&record, database_ok) {
            (_, false) => (
                self.dummy_hash.clone(),
                Some(FailureReason::UnknownDatabase),
            ),
            (None, true) => (self.dummy_hash.clone(), Some(FailureReason::UnknownUser)),
            (Some(r), true) => (r.hash.as_str().into(), None),
        };
        let password = credentials.password.clone();
        let matches = tokio::task::spawn_blocking(move || {
            HashParams::verify(password.expose_secret(), &hash)
        })
        .await
        .map_err(|e| Error::Internal {
            detail: format!("password verification task: {e}"),
        })??;
        if let Some(reason) = failure {
            return Err(Error::invalid_credentials(reason));
        }
        if empty {
            return Err(Error::invalid_credentials(FailureReason::EmptyPassword));
        }
        match (record, matches) {
            (Some(r), true) => Ok(Identity::new(r.username, r.profile)),
            _ => Err(Error::invalid_credentials(FailureReason::WrongPassword)),
        }
    }
}

fn parse_file(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, AccountRecord>> {
    let bad = |detail: String| Error::AccountFile {
        path: path.to_owned(),
        detail,
    };
    let file: AccountFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(bad(format!(
            "format {:?} version {} (expected {FORMAT:?} version {VERSION})",
            file.format, file.version
        )));
    }
    let mut accounts = BTreeMap::new();
    for (index, record) in file.accounts.into_iter().enumerate() {
        validate_username(&record.username).map_err(|e| bad(format!("account #{index}: {e}")))?;
        let (params, salt_len) = HashParams::of_phc(&record.hash)
            .map_err(|e| bad(format!("account {:?}: {e}", record.username)))?;
        if !record.hash.starts_with("$argon2id$")
            || salt_len < HashParams::SALT_LEN
            || params.p == 0
        {
            return Err(bad(format!(
                "account {:?}: not an argon2id hash with a 128-bit salt",
                record.username
            )));
        }
        let name = record.username.clone();
        if accounts.insert(name.clone(), record).is_some() {
            return Err(bad(format!("user name {name:?} appears twice")));
        }
    }
    Ok(accounts)
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::AccountFile {
            path: path.to_owned(),
            detail: format!(
                "mode {mode:04o} lets other users read the password hashes (run chmod 600)"
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<()> {
    Ok(())
}

fn write_file(path: &Path, accounts: &BTreeMap<String, AccountRecord>) -> Result<()> {
    let io = |source: std::io::Error| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = AccountFile {
        format: FORMAT.into(),
        version: VERSION,
        accounts: accounts.values().cloned().collect(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Internal {
        detail: format!("serialising accounts: {e}"),
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    // NamedTempFile is created with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
    tmp.write_all(&json).map_err(io)?;
    tmp.write_all(b"\n").map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    #[cfg(unix)]
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ErrorKind;
    use jfiv_audit::ManualClock;

    /// Cheap parameters for tests (the OWASP default is tested in `password.rs`).
    pub(crate) const TEST_HASH: HashParams = HashParams {
        m_kib: 1024,
        t: 2,
        p: 1,
    };

    pub(crate) fn test_options() -> LocalOptions {
        LocalOptions {
            hash: TEST_HASH,
            ..LocalOptions::default()
        }
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn ctx() -> ConnectionContext {
        ConnectionContext::new("10.1.2.3".parse().unwrap())
    }

    fn open(dir: &tempfile::TempDir) -> LocalAccounts {
        LocalAccounts::open_with(
            dir.path().join("accounts.json"),
            test_options(),
            Arc::new(ManualClock::new(DateTime::<Utc>::UNIX_EPOCH)),
            Arc::new(Randomness::seeded(5)),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn create_then_login_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store
            .create_account(
                "op.sauvegarde",
                Profile::BackupOperator,
                &secret("Bande-LTO-9#nuit"),
            )
            .unwrap();
        let id = store
            .authenticate(
                &Credentials::new("op.sauvegarde", "Bande-LTO-9#nuit", ""),
                &ctx(),
            )
            .await
            .unwrap();
        assert_eq!(id, Identity::new("op.sauvegarde", Profile::BackupOperator));
        drop(store);
        let store = open(&dir);
        assert_eq!(store.accounts().len(), 1);
        let err = store
            .authenticate(
                &Credentials::new("op.sauvegarde", "Bande-LTO-9#jour", ""),
                &ctx(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.failure_reason(), Some(&FailureReason::WrongPassword));
    }

    #[tokio::test]
    async fn file_is_0600_argon2id_and_holds_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store
            .create_account(
                "audit.dpo",
                Profile::Auditor,
                &secret("Registre-CNIL-2026!"),
            )
            .unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains("Registre-CNIL-2026!"));
        assert!(text.contains("$argon2id$v=19$m=1024,t=2,p=1$"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(!format!("{store:?}").contains("argon2"));
    }

    #[test]
    fn default_options_hash_at_the_owasp_floor_with_the_strict_cnil_policy() {
        let o = LocalOptions::default();
        assert_eq!(o.hash, HashParams::OWASP_MIN);
        assert!(o.hash.meets_owasp_floor());
        assert_eq!(o.password_policy, PasswordPolicy::STANDALONE);
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAccounts::open(dir.path().join("a.json"), o).unwrap();
        let (params, salt) = HashParams::of_phc(store.dummy_hash()).unwrap();
        assert_eq!(params, HashParams::OWASP_MIN);
        assert!(salt >= 16);
    }

    #[test]
    fn dummy_hash_uses_the_store_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let (params, salt) = HashParams::of_phc(store.dummy_hash()).unwrap();
        assert_eq!(params, TEST_HASH);
        assert!(salt >= 16);
    }

    #[test]
    fn refuses_weak_passwords_duplicates_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let e = store
            .create_account("a.b", Profile::Secretary, &secret("court"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WeakPassword);
        store
            .create_account("a.b", Profile::Secretary, &secret("Vx7#kLm2pQ9z"))
            .unwrap();
        let e = store
            .create_account("a.b", Profile::Clinician, &secret("Vx7#kLm2pQ9z"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccountExists);
        for bad in ["", "a b", "x\n", &"y".repeat(65)] {
            let e = store
                .create_account(bad, Profile::Secretary, &secret("Vx7#kLm2pQ9z"))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad:?}");
        }
        assert_eq!(
            store.remove_account("nobody").unwrap_err().kind(),
            ErrorKind::NoSuchAccount
        );
        assert_eq!(store.accounts().len(), 1, "failed changes wrote nothing");
    }

    #[tokio::test]
    async fn password_change_profile_change_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        store
            .create_account("c.d", Profile::Midwife, &secret("Vx7#kLm2pQ9z"))
            .unwrap();
        store
            .set_password("c.d", &secret("Nouveau-Mot-2026#"))
            .unwrap();
        store.set_profile("c.d", Profile::Clinician).unwrap();
        let old = store
            .authenticate(&Credentials::new("c.d", "Vx7#kLm2pQ9z", ""), &ctx())
            .await;
        assert!(old.is_err());
        let new = store
            .authenticate(&Credentials::new("c.d", "Nouveau-Mot-2026#", ""), &ctx())
            .await
            .unwrap();
        assert_eq!(new.profile, Profile::Clinician);
        store.remove_account("c.d").unwrap();
        let gone = store
            .authenticate(&Credentials::new("c.d", "Nouveau-Mot-2026#", ""), &ctx())
            .await
            .unwrap_err();
        assert_eq!(gone.failure_reason(), Some(&FailureReason::UnknownUser));
    }

    #[tokio::test]
    async fn database_name_is_checked_when_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalAccounts::open_with(
            dir.path().join("a.json"),
            LocalOptions {
                database: Some("JFIVLOCAL".into()),
                ..test_options()
            },
            Arc::new(SystemClock),
            Arc::new(Randomness::seeded(1)),
        )
        .unwrap();
        store
            .create_account("e.f", Profile::Auditor, &secret("Vx7#kLm2pQ9z"))
            .unwrap();
        assert!(
            store
                .authenticate(
                    &Credentials::new("e.f", "Vx7#kLm2pQ9z", "JFIVLOCAL"),
                    &ctx()
                )
                .await
                .is_ok()
        );
        let e = store
            .authenticate(&Credentials::new("e.f", "Vx7#kLm2pQ9z", "OTHER"), &ctx())
            .await
            .unwrap_err();
        assert_eq!(e.failure_reason(), Some(&FailureReason::UnknownDatabase));
    }

    #[test]
    fn rejects_damaged_or_world_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.json");
        let open_path = || {
            LocalAccounts::open_with(
                &path,
                test_options(),
                Arc::new(SystemClock),
                Arc::new(Randomness::seeded(1)),
            )
        };
        let write = |text: &str| {
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        };
        write("{ not json");
        assert_eq!(open_path().unwrap_err().kind(), ErrorKind::AccountFile);
        write(r#"{"format":"other","version":1,"accounts":[]}"#);
        assert_eq!(open_path().unwrap_err().kind(), ErrorKind::AccountFile);
        write(
            r#"{"format":"jfiv-local-accounts","version":1,"accounts":[{"username":"x","profile":"auditor","hash":"plaintext","created":"2026-01-01T00:00:00Z","password_changed":"2026-01-01T00:00:00Z"}]}"#,
        );
        assert_eq!(open_path().unwrap_err().kind(), ErrorKind::AccountFile);
        write(r#"{"format":"jfiv-local-accounts","version":1,"accounts":[]}"#);
        open_path().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = open_path().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AccountFile);
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
    }
}

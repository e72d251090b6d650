//! The audit keys: a MAC key for the hash chain and an ed25519 key for seals and checkpoints.
//!
//! Both live in ONE key file, created with mode `0600` and refused when group or others can read
//! it. The key file format is three lines of text:
//!
//! ```text
//! jfiv-audit-keys v1
//! mac <64 hex digits: the 32-byte MAC key>
//! signing <64 hex digits: the 32-byte ed25519 secret key>
//! ```
//!
//! Sub-keys are derived with BLAKE3's `derive_key`, one context string per use, so that the
//! record chain, the period headers and the key fingerprint never share a key.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::{CryptoRng, RngCore};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result};

const KEY_FILE_MAGIC: &str = "jfiv-audit-keys v1";
const CHAIN_CONTEXT: &str = "jfiv-audit 2026-12 record chain v1";
const HEADER_CONTEXT: &str = "jfiv-audit 2026-12 period header v1";
const FINGERPRINT_CONTEXT: &str = "jfiv-audit 2026-12 key fingerprint v1";

/// The secret keys of one audit log: the MAC key of the hash chain and the ed25519 signing key
/// of seals and checkpoints.
///
/// `Debug` prints only the public fingerprint; the secret bytes are zeroized on drop.
pub struct AuditKeys {
    mac: Zeroizing<[u8; 32]>,
    chain_key: Zeroizing<[u8; 32]>,
    header_key: Zeroizing<[u8; 32]>,
    signing: SigningKey,
    fingerprint: String,
}

impl AuditKeys {
    /// Fresh keys from a cryptographically secure random generator (`rand::rngs::OsRng` in
    /// production, a seeded generator in tests).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut mac = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(mac.as_mut());
        let signing = SigningKey::generate(rng);
        Self::from_parts(mac, signing)
    }

    /// Fresh keys from the operating system's generator (`OsRng`).
    pub fn generate_from_os() -> Self {
        Self::generate(&mut rand::rngs::OsRng)
    }

    fn from_parts(mac: Zeroizing<[u8; 32]>, signing: SigningKey) -> Self {
        let chain_key = Zeroizing::new(blake3::derive_key(CHAIN_CONTEXT, mac.as_ref()));
        let header_key = Zeroizing::new(blake3::derive_key(HEADER_CONTEXT, mac.as_ref()));
        let fingerprint = fingerprint(mac.as_ref(), &signing.verifying_key());
        Self {
            mac,
            chain_key,
            header_key,
            signing,
            fingerprint,
        }
    }

    /// Writes the keys to a new file created with mode `0600`.
    ///
    /// # Errors
    /// [`Error::Io`] if the file already exists (it is never overwritten) or cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut text = Zeroizing::new(String::with_capacity(200));
        text.push_str(KEY_FILE_MAGIC);
        text.push_str("\nmac ");
        text.push_str(&Zeroizing::new(hex::encode(self.mac.as_ref())));
        text.push_str("\nsigning ");
        text.push_str(&Zeroizing::new(hex::encode(self.signing.to_bytes())));
        text.push('\n');
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(parent) = path.parent() {
            crate::fsutil::sync_dir(parent)?;
        }
        Ok(())
    }

    /// Reads keys written by [`save`](Self::save).
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::KeyFile`] if group or others may read
    /// it, or if it is not a jfiv audit key file.
    pub fn load(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::KeyFile {
                path: path.to_owned(),
                reason: format!(
                    "permissions {:o} let group or others read it (expected 600)",
                    mode & 0o777
                ),
            });
        }
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text).map_err(io)?;
        let bad = |reason: &str| Error::KeyFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_MAGIC) {
            return Err(bad("not a jfiv audit key file (bad first line)"));
        }
        let mut mac = Zeroizing::new([0u8; 32]);
        let mut signing = Zeroizing::new([0u8; 32]);
        let mac_hex = lines
            .next()
            .and_then(|l| l.strip_prefix("mac "))
            .ok_or_else(|| bad("missing mac line"))?;
        hex::decode_to_slice(mac_hex, mac.as_mut())
            .map_err(|_| bad("mac key is not 64 hex digits"))?;
        let signing_hex = lines
            .next()
            .and_then(|l| l.strip_prefix("signing "))
            .ok_or_else(|| bad("missing signing line"))?;
        hex::decode_to_slice(signing_hex, signing.as_mut())
            .map_err(|_| bad("signing key is not 64 hex digits"))?;
        Ok(Self::from_parts(mac, SigningKey::from_bytes(&signing)))
    }

    /// The public half, enough to check seals and checkpoints (not the hash chain).
    pub fn verifying_key(&self) -> AuditVerifyingKey {
        AuditVerifyingKey(self.signing.verifying_key())
    }

    /// A short public identifier of these keys (32 hex digits), written in every period
    /// header so that a wrong key is reported as such. It reveals nothing about the MAC key.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn chain_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.chain_key)
    }

    pub(crate) fn header_mac(&self, canonical: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&self.header_key, canonical)
    }

    /// The chain value before the first record of a log.
    pub(crate) fn genesis(&self, log_id: &uuid::Uuid) -> blake3::Hash {
        let mut h = self.chain_hasher();
        h.update(b"jfiv-audit genesis\0");
        h.update(log_id.as_bytes());
        h.finalize()
    }

    pub(crate) fn sign(&self, domain: &[u8], canonical: &[u8]) -> Signature {
        let mut message = Vec::with_capacity(domain.len() + canonical.len());
        message.extend_from_slice(domain);
        message.extend_from_slice(canonical);
        self.signing.sign(&message)
    }
}

impl fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKeys")
            .field("fingerprint", &self.fingerprint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Drop for AuditKeys {
    fn drop(&mut self) {
        // `Zeroizing` and `SigningKey` (ZeroizeOnDrop) wipe themselves; the fingerprint is public.
        self.fingerprint.zeroize();
    }
}

/// The public ed25519 key of an audit log: checks seals and checkpoints without any secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditVerifyingKey(VerifyingKey);

impl AuditVerifyingKey {
    /// The key from its 32 bytes, as printed by [`to_hex`](Self::to_hex).
    ///
    /// # Errors
    /// [`Error::KeyFile`] (with an empty path) if the text is not a valid ed25519 public key.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bad = |reason: &str| Error::KeyFile {
            path: Default::default(),
            reason: reason.to_owned(),
        };
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| bad("public key is not 64 hex digits"))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| bad("not an ed25519 public key"))
    }

    /// The 32 bytes in hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub(crate) fn verify(&self, domain: &[u8], canonical: &[u8], signature: &[u8; 64]) -> bool {
        let mut message = Vec::with_capacity(domain.len() + canonical.len());
        message.extend_from_slice(domain);
        message.extend_from_slice(canonical);
        let signature = Signature::from_bytes(signature);
        self.0.verify(&message, &signature).is_ok()
            && self.0.verify_strict(&message, &signature).is_ok()
    }
}

fn fingerprint(mac: &[u8], public: &VerifyingKey) -> String {
    let mut h = blake3::Hasher::new_derive_key(FINGERPRINT_CONTEXT);
    h.update(mac);
    h.update(public.as_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn key_file_is_0600_round_trips_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let keys = AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(7));
        keys.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = AuditKeys::load(&path).unwrap();
        assert_eq!(back.fingerprint(), keys.fingerprint());
        assert_eq!(back.verifying_key(), keys.verifying_key());
        assert!(matches!(keys.save(&path), Err(Error::Io { .. })));
    }

    #[test]
    fn group_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        AuditKeys::generate(&mut rand::rngs::OsRng)
            .save(&path)
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(AuditKeys::load(&path), Err(Error::KeyFile { .. })));
    }

    #[test]
    fn debug_shows_no_secret() {
        let keys = AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
        let debug = format!("{keys:?}");
        assert!(debug.contains(keys.fingerprint()));
        assert!(!debug.contains(&hex::encode(keys.mac.as_ref())));
        assert!(!debug.contains(&hex::encode(keys.signing.to_bytes())));
    }

    #[test]
    fn different_keys_have_different_fingerprints_and_signatures_check() {
        let a = AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
        let b = AuditKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(2));
        assert_ne!(a.fingerprint(), b.fingerprint());
        let sig = a.sign(b"d", b"message").to_bytes();
        assert!(a.verifying_key().verify(b"d", b"message", &sig));
        assert!(!a.verifying_key().verify(b"d", b"messagf", &sig));
        assert!(!b.verifying_key().verify(b"d", b"message", &sig));
        let hex_key = a.verifying_key().to_hex();
        assert_eq!(
            AuditVerifyingKey::from_hex(&hex_key).unwrap(),
            a.verifying_key()
        );
    }
}

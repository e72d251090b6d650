//! Keys: the [`RepositoryKey`], its passphrase-protected [`KeyFile`] and its printable
//! [`PaperKey`].
//!
//! One 32-byte master secret per repository. Every key actually used is derived from it with
//! BLAKE3's key-derivation mode (`blake3::derive_key`) and a fixed context string, so the
//! chunk-id key, the chunk encryption key and the manifest encryption key are independent:
//! knowing chunk ids (or the id key) says nothing about the encryption keys.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{ChunkId, Error, Object, Result};

const CTX_ID: &str = "jfiv-backup 2026-12 chunk id key v1";
const CTX_CHUNK: &str = "jfiv-backup 2026-12 chunk encryption key v1";
const CTX_MANIFEST: &str = "jfiv-backup 2026-12 manifest encryption key v1";
const CTX_FINGERPRINT: &str = "jfiv-backup 2026-12 key fingerprint v1";
const CTX_PAPER_CHECK: &str = "jfiv-backup 2026-12 paper key check v1";

/// The public fingerprint of a repository key: 8 bytes derived from the master secret, shown as
/// 16 hex digits. It is written in clear in chunks, manifests and key files so that "wrong key"
/// can be told apart from "damaged data". It reveals nothing about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyFingerprint(pub [u8; 8]);

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

/// The key of a backup repository: a master secret and the subkeys derived from it.
///
/// `Debug` shows only the fingerprint; the secret bytes are zeroed when the key is dropped.
#[derive(Clone)]
pub struct RepositoryKey {
    master: Zeroizing<[u8; 32]>,
    id_key: Zeroizing<[u8; 32]>,
    chunk_key: Zeroizing<[u8; 32]>,
    manifest_key: Zeroizing<[u8; 32]>,
    fingerprint: KeyFingerprint,
}

impl fmt::Debug for RepositoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryKey")
            .field("fingerprint", &self.fingerprint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl RepositoryKey {
    /// A new random key (from the operating system's CSPRNG).
    pub fn generate() -> Self {
        let mut master = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rngs::OsRng, &mut master[..]);
        Self::from_master(master)
    }

    /// The key whose master secret is `master`.
    pub fn from_master(master: Zeroizing<[u8; 32]>) -> Self {
        let derive = |ctx: &str| Zeroizing::new(blake3::derive_key(ctx, &master[..]));
        let fp = blake3::derive_key(CTX_FINGERPRINT, &master[..]);
        let mut fingerprint = [0u8; 8];
        fingerprint.copy_from_slice(&fp[..8]);
        Self {
            id_key: derive(CTX_ID),
            chunk_key: derive(CTX_CHUNK),
            manifest_key: derive(CTX_MANIFEST),
            master,
            fingerprint: KeyFingerprint(fingerprint),
        }
    }

    /// The key's public fingerprint.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.fingerprint
    }

    /// The id of a chunk whose plaintext is `data`: keyed BLAKE3 under the chunk-id key.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id_key, data).as_bytes())
    }

    /// The printable paper key for escrow.
    pub fn paper_key(&self) -> PaperKey {
        PaperKey::from_key(self)
    }

    pub(crate) fn chunk_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.chunk_key).into())
    }

    pub(crate) fn manifest_cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&*self.manifest_key).into())
    }

    fn master(&self) -> &[u8; 32] {
        &self.master
    }
}

/// Cost parameters of argon2id, as stored in a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory, in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Parallelism (lanes).
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about half a second on the hospital server; what key files
    /// should use.
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters (1 MiB, 1 pass) for tests only: a key file sealed with them is easy to
    /// brute-force.
    pub fn insecure_for_tests() -> Self {
        Self {
            m_cost_kib: 1024,
            t_cost: 1,
            p_cost: 1,
        }
    }

    fn derive(&self, passphrase: &SecretString, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| {
                Error::format(Object::KeyFile, 0, format!("bad argon2 parameters: {e}"))
            })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose_secret().as_bytes(), salt, &mut out[..])
            .map_err(|e| Error::format(Object::KeyFile, 0, format!("argon2 failed: {e}")))?;
        Ok(out)
    }
}

/// A repository key wrapped under a passphrase (argon2id, then XChaCha20-Poly1305).
///
/// Its on-disk form is a small JSON document described in `FORMAT.md`; it holds no secret in
/// clear and may be copied freely (its safety is the passphrase's strength).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    format: String,
    version: u32,
    fingerprint: String,
    kdf: String,
    params: KdfParams,
    #[serde(with = "hex_bytes")]
    salt: Vec<u8>,
    #[serde(with = "hex_bytes")]
    nonce: Vec<u8>,
    #[serde(with = "hex_bytes")]
    wrapped: Vec<u8>,
}

/// Byte strings as lower-case hex in JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

const KEYFILE_FORMAT: &str = "jfiv-backup-keyfile";

impl KeyFile {
    /// Wraps `key` under `passphrase`.
    ///
    /// # Errors
    /// [`Error::Format`] if `params` are outside what argon2 accepts.
    pub fn seal(key: &RepositoryKey, passphrase: &SecretString, params: KdfParams) -> Result<Self> {
        let salt: [u8; 16] = rand::random();
        let nonce: [u8; 24] = rand::random();
        let kek = params.derive(passphrase, &salt)?;
        let mut file = Self {
            format: KEYFILE_FORMAT.to_owned(),
            version: 1,
            fingerprint: key.fingerprint().to_string(),
            kdf: "argon2id".to_owned(),
            params,
            salt: salt.to_vec(),
            nonce: nonce.to_vec(),
            wrapped: Vec::new(),
        };
        let aad = file.aad();
        let cipher = XChaCha20Poly1305::new((&*kek).into());
        file.wrapped = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key.master(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Internal {
                reason: "key wrapping failed".into(),
            })?;
        Ok(file)
    }

    /// Unwraps the repository key.
    ///
    /// # Errors
    /// [`Error::WrongPassphrase`] if the passphrase is wrong (or the file was altered);
    /// [`Error::Format`] for a malformed file.
    pub fn open(&self, passphrase: &SecretString) -> Result<RepositoryKey> {
        if self.format != KEYFILE_FORMAT || self.kdf != "argon2id" {
            return Err(Error::format(
                Object::KeyFile,
                0,
                "not a jfiv-backup key file",
            ));
        }
        if self.version != 1 {
            return Err(Error::format(
                Object::KeyFile,
                0,
                format!("unsupported key file version {}", self.version),
            ));
        }
        if self.nonce.len() != 24 || self.salt.len() < 8 {
            return Err(Error::format(
                Object::KeyFile,
                0,
                "bad nonce or salt length",
            ));
        }
        let kek = self.params.derive(passphrase, &self.salt)?;
        let cipher = XChaCha20Poly1305::new((&*kek).into());
        let mut plain = cipher
            .decrypt(
                XNonce::from_slice(&self.nonce),
                Payload {
                    msg: &self.wrapped,
                    aad: &self.aad(),
                },
            )
            .map_err(|_| Error::WrongPassphrase)?;
        if plain.len() != 32 {
            plain.zeroize();
            return Err(Error::format(
                Object::KeyFile,
                0,
                "wrapped key has the wrong length",
            ));
        }
        let mut master = Zeroizing::new([0u8; 32]);
        master.copy_from_slice(&plain);
        plain.zeroize();
        let key = RepositoryKey::from_master(master);
        if key.fingerprint().to_string() != self.fingerprint {
            return Err(Error::integrity(
                Object::KeyFile,
                "the unwrapped key does not match the recorded fingerprint",
            ));
        }
        Ok(key)
    }

    /// The fingerprint of the key inside (readable without the passphrase).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The JSON form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses the JSON form.
    ///
    /// # Errors
    /// [`Error::Format`] if it is not a key file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::format(
                Object::KeyFile,
                e.column() as u64,
                format!("not a jfiv-backup key file: {e}"),
            )
        })
    }

    /// Reads a key file.
    ///
    /// # Errors
    /// I/O errors; [`Error::Format`].
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
        Self::from_bytes(&bytes)
    }

    /// Writes the key file atomically (temporary file, fsync, rename), mode 0600.
    ///
    /// # Errors
    /// I/O errors.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::disk::write_atomic(path, &self.to_bytes(), 0o600)
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = b"jfiv-backup keyfile v1".to_vec();
        aad.extend_from_slice(&self.params.m_cost_kib.to_le_bytes());
        aad.extend_from_slice(&self.params.t_cost.to_le_bytes());
        aad.extend_from_slice(&self.params.p_cost.to_le_bytes());
        aad.extend_from_slice(&self.salt);
        aad.extend_from_slice(self.fingerprint.as_bytes());
        aad
    }
}

/// The repository key printed for the hospital safe: nine lines of eight base-32 characters,
/// each line with its own checksum, the last line a checksum of the whole key.
///
/// A typo is reported with its line number ([`Error::PaperKey`]). `Debug` is redacted; the text
/// itself is what gets printed, so handle it like the key.
#[derive(Clone)]
pub struct PaperKey {
    text: Zeroizing<String>,
}

impl fmt::Debug for PaperKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PaperKey(<redacted>)")
    }
}

const PAPER_LINES: usize = 9;

fn line_check(line: usize, bytes: &[u8]) -> u8 {
    let mut h = blake3::Hasher::new_derive_key(CTX_PAPER_CHECK);
    h.update(&[line as u8]);
    h.update(bytes);
    h.finalize().as_bytes()[0]
}

impl PaperKey {
    /// The paper key of `key`.
    pub fn from_key(key: &RepositoryKey) -> Self {
        let master = key.master();
        let whole = blake3::derive_key(CTX_PAPER_CHECK, master);
        let mut text = Zeroizing::new(format!(
            "# jfiv-backup paper key v1 - repository key fingerprint {}\n\
             # Type the nine lines back to restore the key; spaces do not matter.\n",
            key.fingerprint()
        ));
        for line in 1..=PAPER_LINES {
            let payload: &[u8] = if line < PAPER_LINES {
                &master[(line - 1) * 4..line * 4]
            } else {
                &whole[..4]
            };
            let mut five = Zeroizing::new([0u8; 5]);
            five[..4].copy_from_slice(payload);
            five[4] = line_check(line, payload);
            let encoded = Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&five[..]));
            text.push_str(&format!("{line}: {} {}\n", &encoded[..4], &encoded[4..]));
        }
        Self { text }
    }

    /// The printable text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads a typed-back paper key and returns the repository key.
    ///
    /// Lines starting with `#` and blank lines are ignored; case, spaces and dashes do not
    /// matter, and `0`, `1`, `8` are read as `O`, `I`, `B`.
    ///
    /// # Errors
    /// [`Error::PaperKey`] naming the line with a typo, a missing or extra line, or a key that
    /// does not match its final checksum.
    pub fn parse(text: &str) -> Result<RepositoryKey> {
        let mut master = Zeroizing::new([0u8; 32]);
        let mut seen = 0usize;
        for raw in text.lines() {
            let raw = raw.trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            seen += 1;
            let err = |reason: &str| Error::PaperKey {
                line: seen,
                reason: reason.to_owned(),
            };
            let (number, body) = raw
                .split_once(':')
                .ok_or_else(|| err("expected `N: XXXX XXXX`"))?;
            if number.trim().parse::<usize>().ok() != Some(seen) {
                return Err(err("line out of order or missing line number"));
            }
            if seen > PAPER_LINES {
                return Err(err("too many lines"));
            }
            let cleaned: Zeroizing<String> = Zeroizing::new(
                body.chars()
                    .filter(|c| !c.is_whitespace() && *c != '-')
                    .map(|c| match c.to_ascii_uppercase() {
                        '0' => 'O',
                        '1' => 'I',
                        '8' => 'B',
                        other => other,
                    })
                    .collect(),
            );
            if cleaned.len() != 8 {
                return Err(err("expected 8 characters"));
            }
            let five = Zeroizing::new(
                data_encoding::BASE32_NOPAD
                    .decode(cleaned.as_bytes())
                    .map_err(|_| err("not base-32 (letters A-Z and digits 2-7)"))?,
            );
            if five.len() != 5 || line_check(seen, &five[..4]) != five[4] {
                return Err(err("checksum mismatch: a character of this line is wrong"));
            }
            if seen < PAPER_LINES {
                master[(seen - 1) * 4..seen * 4].copy_from_slice(&five[..4]);
            } else {
                let whole = blake3::derive_key(CTX_PAPER_CHECK, &master[..]);
                if whole[..4] != five[..4] {
                    return Err(Error::PaperKey {
                        line: 0,
                        reason: "the lines do not form the key they were printed from".into(),
                    });
                }
            }
        }
        if seen != PAPER_LINES {
            return Err(Error::PaperKey {
                line: seen + 1,
                reason: format!("expected {PAPER_LINES} lines, found {seen}"),
            });
        }
        Ok(RepositoryKey::from_master(master))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn subkeys_are_distinct_and_deterministic() {
        let key = RepositoryKey::generate();
        let again = RepositoryKey::from_master(Zeroizing::new(*key.master()));
        assert_eq!(key.fingerprint(), again.fingerprint());
        assert_eq!(key.chunk_id(b"x"), again.chunk_id(b"x"));
        assert_ne!(*key.id_key, *key.chunk_key);
        assert_ne!(*key.chunk_key, *key.manifest_key);
        let other = RepositoryKey::generate();
        assert_ne!(key.chunk_id(b"x"), other.chunk_id(b"x"));
        assert_ne!(key.chunk_id(b"x").0, *blake3::hash(b"x").as_bytes());
    }

    #[test]
    fn debug_output_is_redacted() {
        let key = RepositoryKey::generate();
        let shown = format!("{key:?} {:?}", key.paper_key());
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(key.master())));
        let paper = key.paper_key();
        assert!(!shown.contains(&paper.text()[80..100]));
    }

    #[test]
    fn key_file_round_trips_and_rejects_a_wrong_passphrase() {
        let key = RepositoryKey::generate();
        let file = KeyFile::seal(
            &key,
            &pass("correct horse"),
            KdfParams::insecure_for_tests(),
        )
        .unwrap();
        let parsed = KeyFile::from_bytes(&file.to_bytes()).unwrap();
        let back = parsed.open(&pass("correct horse")).unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        assert_eq!(back.chunk_id(b"abc"), key.chunk_id(b"abc"));
        assert!(matches!(
            parsed.open(&pass("correct hors")),
            Err(Error::WrongPassphrase)
        ));
        let text = String::from_utf8(file.to_bytes()).unwrap();
        assert!(!text.contains(&hex::encode(key.master())));
        assert!(matches!(
            KeyFile::from_bytes(b"{}"),
            Err(Error::Format { .. })
        ));
    }

    #[test]
    fn paper_key_round_trips_and_names_the_line_of_a_typo() {
        // A fixed key keeps the test deterministic (a typo escapes a line checksum 1 time in 256,
        // and is then caught by the final line).
        let key = RepositoryKey::from_master(Zeroizing::new([7u8; 32]));
        let paper = key.paper_key();
        let back = PaperKey::parse(paper.text()).unwrap();
        assert_eq!(back.fingerprint(), key.fingerprint());
        // Lower case and odd spacing are accepted.
        let sloppy = paper.text().to_lowercase().replace(' ', "  ");
        assert_eq!(
            PaperKey::parse(&sloppy).unwrap().fingerprint(),
            key.fingerprint()
        );
        // A typo on line 4 is reported on line 4.
        let lines: Vec<&str> = paper.text().lines().collect();
        let line4 = lines.iter().position(|l| l.starts_with("4:")).unwrap();
        let mut typo = lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let bytes = typo[line4].as_bytes().to_vec();
        let pos = 3;
        let replacement = if bytes[pos] == b'A' { 'B' } else { 'A' };
        typo[line4].replace_range(pos..pos + 1, &replacement.to_string());
        match PaperKey::parse(&typo.join("\n")) {
            Err(Error::PaperKey { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected a paper key error, got {other:?}"),
        }
        // A missing line is reported.
        let missing: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| !l.starts_with("9:"))
            .collect();
        assert!(matches!(
            PaperKey::parse(&missing.join("\n")),
            Err(Error::PaperKey { .. })
        ));
    }
}

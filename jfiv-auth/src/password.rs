//! Password hashing (argon2id, PHC strings) and the password policy (CNIL deliberation 2022-100).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::{Error, Randomness, Result};

/// Argon2id cost parameters.
///
/// The default is the OWASP floor (m = 19 MiB, t = 2, p = 1). Cheaper parameters are for
/// tests only; every hash of a store, its dummy hash included, uses the store's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Memory, in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl HashParams {
    /// The OWASP password-storage floor for argon2id: 19 MiB, 2 passes, 1 lane.
    pub const OWASP_MIN: HashParams = HashParams {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };

    /// Salt length in bytes (128 bits, the OWASP and NIST minimum).
    pub const SALT_LEN: usize = 16;

    /// Whether these parameters are at least the OWASP floor.
    pub fn meets_owasp_floor(&self) -> bool {
        self.m_kib >= Self::OWASP_MIN.m_kib && self.t >= Self::OWASP_MIN.t && self.p >= 1
    }

    fn argon2(&self) -> Result<Argon2<'static>> {
        let params = Params::new(self.m_kib, self.t, self.p, None).map_err(|e| Error::Hashing {
            detail: e.to_string(),
        })?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with a fresh random salt into a PHC string
    /// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    ///
    /// # Errors
    /// [`Error::Hashing`] for parameters argon2 refuses.
    pub fn hash(&self, password: &str, rng: &Randomness) -> Result<String> {
        let salt =
            SaltString::encode_b64(&rng.bytes::<{ HashParams::SALT_LEN }>()).map_err(|e| {
                Error::Hashing {
                    detail: e.to_string(),
                }
            })?;
        let hash = self
            .argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::Hashing {
                detail: e.to_string(),
            })?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the PHC string `phc` (constant-time comparison; the
    /// parameters are read from `phc`).
    ///
    /// # Errors
    /// [`Error::Hashing`] when `phc` is not a valid PHC string.
    pub fn verify(password: &str, phc: &str) -> Result<bool> {
        let parsed = PasswordHash::new(phc).map_err(|e| Error::Hashing {
            detail: e.to_string(),
        })?;
        match Argon2::default().verify_password(password.as_bytes(), &parsed) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(Error::Hashing {
                detail: e.to_string(),
            }),
        }
    }

    /// The parameters and salt length written in a PHC string.
    ///
    /// # Errors
    /// [`Error::Hashing`] when `phc` is not an argon2 PHC string.
    pub fn of_phc(phc: &str) -> Result<(HashParams, usize)> {
        let bad = |detail: String| Error::Hashing { detail };
        let parsed = PasswordHash::new(phc).map_err(|e| bad(e.to_string()))?;
        let params = Params::try_from(&parsed).map_err(|e| bad(e.to_string()))?;
        let salt_len = parsed
            .salt
            .map(|s| {
                let mut buf = [0u8; 64];
                s.decode_b64(&mut buf).map(|b| b.len())
            })
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or(0);
        Ok((
            HashParams {
                m_kib: params.m_cost(),
                t: params.t_cost(),
                p: params.p_cost(),
            },
            salt_len,
        ))
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self::OWASP_MIN
    }
}

/// What a new password must be (CNIL deliberation 2022-100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length, in characters.
    pub min_length: usize,
    /// Minimum number of character classes among lower case, upper case, digits, others.
    pub min_classes: usize,
    /// Refuse the passwords of the embedded common-password list.
    pub reject_common: bool,
}

impl PasswordPolicy {
    /// CNIL case 1, when no other measure applies: 12 characters of 4 classes.
    pub const STANDALONE: PasswordPolicy = PasswordPolicy {
        min_length: 12,
        min_classes: 4,
        reject_common: true,
    };

    /// CNIL case 2, with access restriction (throttling and lockout, as
    /// [`AccessGate`](crate::AccessGate) does): 8 characters of 3 classes.
    pub const WITH_THROTTLING: PasswordPolicy = PasswordPolicy {
        min_length: 8,
        min_classes: 3,
        reject_common: true,
    };

    /// Checks `password` for `username`.
    ///
    /// # Errors
    /// [`Error::WeakPassword`] saying what is wrong (never quoting the password).
    pub fn check(&self, username: &str, password: &str) -> Result<()> {
        let weak = |problem: String| Err(Error::WeakPassword { problem });
        let len = password.chars().count();
        if len < self.min_length {
            return weak(format!(
                "{len} characters, at least {} are needed",
                self.min_length
            ));
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ]
        .iter()
        .filter(|&&b| b)
        .count();
        if classes < self.min_classes {
            return weak(format!(
                "{classes} kinds of characters, at least {} of lower case, upper case, digits and others are needed",
                self.min_classes
            ));
        }
        let lower = password.to_lowercase();
        let name = username.to_lowercase();
        if !name.is_empty() && lower.contains(&name) {
            return weak("it contains the user name".into());
        }
        if self.reject_common && is_common(&lower) {
            return weak(
                "it is a common password, or a common word with digits and symbols".into(),
            );
        }
        Ok(())
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::STANDALONE
    }
}

const COMMON: &str = include_str!("common-passwords.txt");

fn common_list() -> impl Iterator<Item = &'static str> {
    COMMON
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

fn is_common(lower: &str) -> bool {
    // The word inside the decorations: "p@ssw0rd2024!" -> "p@ssw0rd" -> "password".
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    let letters: String = core
        .chars()
        .filter_map(|c| match c {
            '@' | '4' => Some('a'),
            '0' => Some('o'),
            '3' => Some('e'),
            '1' | '!' => Some('i'),
            '$' | '5' => Some('s'),
            c if c.is_alphabetic() => Some(c),
            _ => None,
        })
        .collect();
    // Also the letters alone. Words shorter than 4 letters only match exactly, or a strong
    // random password with three letters would be refused.
    let plain: String = lower.chars().filter(|c| c.is_alphabetic()).collect();
    common_list().any(|w| w == lower || (w.len() >= 4 && (w == letters || w == plain)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn default_params_meet_the_owasp_floor_and_salt_is_128_bits() {
        let params = HashParams::default();
        assert!(params.meets_owasp_floor());
        assert!(params.m_kib >= 19456 && params.t >= 2 && params.p == 1);
        let phc = params
            .hash("Correct-Horse-42", &Randomness::seeded(1))
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let (read, salt_len) = HashParams::of_phc(&phc).unwrap();
        assert_eq!(read, params);
        assert!(salt_len >= 16, "salt {salt_len} bytes");
        assert!(HashParams::verify("Correct-Horse-42", &phc).unwrap());
        assert!(!HashParams::verify("Correct-Horse-43", &phc).unwrap());
        assert!(
            !HashParams {
                m_kib: 8192,
                t: 2,
                p: 1
            }
            .meets_owasp_floor()
        );
        assert!(
            !HashParams {
                m_kib: 19456,
                t: 1,
                p: 1
            }
            .meets_owasp_floor()
        );
    }

    #[test]
    fn salts_differ_between_hashes() {
        let p = HashParams {
            m_kib: 64,
            t: 1,
            p: 1,
        };
        let rng = Randomness::seeded(3);
        assert_ne!(p.hash("same", &rng).unwrap(), p.hash("same", &rng).unwrap());
    }

    #[test]
    fn verify_rejects_garbage_phc() {
        assert_eq!(
            HashParams::verify("x", "not-a-phc").unwrap_err().kind(),
            ErrorKind::Hashing
        );
    }

    #[test]
    fn cnil_standalone_policy() {
        let p = PasswordPolicy::default();
        assert_eq!(p, PasswordPolicy::STANDALONE);
        p.check("a.martin", "Vx7#kLm2pQ9z").unwrap(); // 12 chars, 4 classes
        for (bad, why) in [
            ("Vx7#kLm2pQ9", "11 characters"),
            ("Vx7kLm2pQ9zz", "no symbol"),
            ("vx7#klm2pq9z", "no upper case"),
            ("Password123!", "common"),
            ("P@ssw0rd2024!", "common with substitutions"),
            ("Azerty123456!", "common"),
            ("A.martin-2026!x", "contains the user name"),
        ] {
            let err = p.check("a.martin", bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::WeakPassword, "{why}");
            assert!(
                !err.to_string().contains(bad),
                "the message quotes the password"
            );
        }
    }

    #[test]
    fn cnil_throttled_policy() {
        let p = PasswordPolicy::WITH_THROTTLING;
        p.check("b.durand", "Vx7kLm2p").unwrap(); // 8 chars, 3 classes
        assert!(p.check("b.durand", "Vx7kLm2").is_err()); // 7
        assert!(p.check("b.durand", "vx7klm2pq").is_err()); // 2 classes
        assert!(p.check("b.durand", "Soleil2024").is_err()); // common word
    }

    #[test]
    fn common_list_is_clean() {
        for w in common_list() {
            assert_eq!(w, w.to_lowercase(), "entries are lower case");
        }
        assert!(common_list().count() > 50);
    }
}

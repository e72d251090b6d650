//! Injected randomness for salts and session tokens.

use std::fmt;
use std::sync::Mutex;

use rand::rngs::{OsRng, StdRng};
use rand::{CryptoRng, RngCore, SeedableRng};

/// A cryptographically secure random source, shared behind a lock.
///
/// Production code uses [`Randomness::os`]; tests use [`Randomness::seeded`] to get
/// reproducible tokens and salts.
pub struct Randomness {
    rng: Mutex<Box<dyn CryptoRngCore + Send>>,
}

/// `RngCore + CryptoRng`, as one object-safe trait.
trait CryptoRngCore: RngCore + CryptoRng {}
impl<T: RngCore + CryptoRng> CryptoRngCore for T {}

impl Randomness {
    /// The operating system's generator.
    pub fn os() -> Self {
        Self {
            rng: Mutex::new(Box::new(OsRng)),
        }
    }

    /// A deterministic generator seeded with `seed`: for tests and simulations only (a known
    /// seed gives known tokens).
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: Mutex::new(Box::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill_bytes(&mut out);
        out
    }
}

impl Default for Randomness {
    fn default() -> Self {
        Self::os()
    }
}

impl fmt::Debug for Randomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Randomness")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_is_reproducible_and_os_is_not_constant() {
        assert_eq!(
            Randomness::seeded(7).bytes::<32>(),
            Randomness::seeded(7).bytes::<32>()
        );
        assert_ne!(
            Randomness::seeded(7).bytes::<32>(),
            Randomness::seeded(8).bytes::<32>()
        );
        let os = Randomness::os();
        assert_ne!(os.bytes::<32>(), os.bytes::<32>());
    }
}

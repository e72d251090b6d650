//! Identifiers: [`ChunkId`] and [`SnapshotId`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Object};

/// The identifier of a chunk: the keyed BLAKE3 hash of its plaintext, under the repository's
/// chunk-id key (see [`RepositoryKey`](crate::RepositoryKey)). Without the key, an id reveals
/// nothing about the content (a known file cannot be confirmed by hashing it).
///
/// Displayed and serialised as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

/// The identifier of a snapshot: 16 random bytes, displayed as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotId(pub [u8; 16]);

impl SnapshotId {
    /// A fresh random id.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

macro_rules! hex_id {
    ($ty:ident, $len:literal, $what:literal) => {
        impl $ty {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// The id as lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self)
            }
        }

        impl FromStr for $ty {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|e| {
                    Error::format(
                        Object::Other(format!("{} {s:?}", $what)),
                        0,
                        format!("expected {} hex digits: {e}", 2 * $len),
                    )
                })?;
                Ok(Self(out))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(ChunkId, 32, "chunk id");
hex_id!(SnapshotId, 16, "snapshot id");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex_and_serde() {
        let id = ChunkId([0xab; 32]);
        assert_eq!(id.to_string().len(), 64);
        assert_eq!(id.to_string().parse::<ChunkId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        let snap = SnapshotId::random();
        assert_eq!(snap.to_string().parse::<SnapshotId>().unwrap(), snap);
        assert!("zz".parse::<SnapshotId>().is_err());
        assert!(SnapshotId::random() != snap);
    }
}

//! Signed checkpoints: "the first `size` entries have root `root`", signed with a hub's key.

use std::fmt;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DecodeError;
use crate::merkle::Hash;

/// A public key's name: the first 8 bytes of SHA-256 of its 32 bytes, in hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Ed25519 public key, written as 64 hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(pub VerifyingKey);

impl PublicKey {
    pub fn id(&self) -> KeyId {
        KeyId(crate::to_hex(&Hash::of(self.0.as_bytes()).0[..8]))
    }
    pub fn to_hex(&self) -> String {
        crate::to_hex(self.0.as_bytes())
    }
    pub fn from_hex(s: &str) -> Result<PublicKey, DecodeError> {
        let b = crate::from_hex::<32>(s.trim())?;
        VerifyingKey::from_bytes(&b)
            .map(PublicKey)
            .map_err(|_| DecodeError::BadKey)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A hub's signing key. The shell makes its 32 secret bytes (from the OS's random source) and
/// keeps them in the data dir; nothing here makes randomness.
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    pub fn from_secret(secret: [u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(&secret),
        }
    }
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs the checkpoint of `size` entries with `root`, made at `time` (Unix ms).
    pub fn checkpoint(&self, size: u64, root: Hash, time: i64) -> Checkpoint {
        use ed25519_dalek::Signer as _;
        let key_id = self.public().id();
        let msg = checkpoint_message(size, &root, time, &key_id);
        let sig = self.key.sign(msg.as_bytes());
        Checkpoint {
            size,
            root,
            time,
            key_id,
            signature: crate::to_hex(&sig.to_bytes()),
        }
    }
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// How many entries (from the first) it covers.
    pub size: u64,
    /// The tree root of those entries.
    pub root: Hash,
    /// Unix milliseconds at which it was signed.
    pub time: i64,
    /// The signing key.
    pub key_id: KeyId,
    /// The Ed25519 signature of [`checkpoint_message`], in hexadecimal.
    pub signature: String,
}

/// The signed text, in the spirit of C2SP's tlog-checkpoint: an origin line, the size, the root,
/// the time and the key, one per line.
pub fn checkpoint_message(size: u64, root: &Hash, time: i64, key: &KeyId) -> String {
    format!("suanli audit log v1\n{size}\n{root}\n{time}\n{key}\n")
}

impl Checkpoint {
    /// Whether `key` (which must be the key named by `key_id`) signed this checkpoint.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        if key.id() != self.key_id {
            return false;
        }
        let Ok(sig) = crate::from_hex::<64>(&self.signature) else {
            return false;
        };
        let msg = checkpoint_message(self.size, &self.root, self.time, &self.key_id);
        key.0
            .verify_strict(msg.as_bytes(), &Signature::from_bytes(&sig))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_nothing_else() {
        let a = Signer::from_secret([7; 32]);
        let b = Signer::from_secret([8; 32]);
        let c = a.checkpoint(10, Hash::of(b"root"), 1_000);
        assert!(c.signed_by(&a.public()));
        assert!(!c.signed_by(&b.public()));
        // Naming the other key does not help either.
        let renamed = Checkpoint {
            key_id: b.public().id(),
            ..c.clone()
        };
        assert!(!renamed.signed_by(&b.public()));
        for changed in [
            Checkpoint {
                size: 11,
                ..c.clone()
            },
            Checkpoint {
                root: Hash::of(b"other"),
                ..c.clone()
            },
            Checkpoint {
                time: 1_001,
                ..c.clone()
            },
            Checkpoint {
                signature: "00".repeat(64),
                ..c.clone()
            },
            Checkpoint {
                signature: "junk".into(),
                ..c.clone()
            },
        ] {
            assert!(!changed.signed_by(&a.public()), "{changed:?}");
        }
    }

    #[test]
    fn keys_round_trip_and_have_stable_ids() {
        let a = Signer::from_secret([7; 32]);
        let p = a.public();
        assert_eq!(PublicKey::from_hex(&p.to_hex()), Ok(p));
        assert_eq!(p.id().0.len(), 16);
        assert_ne!(p.id(), Signer::from_secret([8; 32]).public().id());
        assert_eq!(Signer::from_secret(a.secret()).public(), p);
    }
}

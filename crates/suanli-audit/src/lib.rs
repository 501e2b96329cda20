//! The audit log of suanli, pure: who did what, in a Merkle tree that nobody can rewrite unseen.
//!
//! # Model
//!
//! - An [`Entry`] records one request: time, principal, role, tenant, source address, request
//!   id, action, target, outcome (allowed, or denied and why) and a digest of the request. Its
//!   sequence number and the leaf hash of the entry before it are part of it, so an entry that is
//!   moved, removed or inserted breaks the chain at a named place.
//! - [`Entry::canonical`] is the one byte encoding that is hashed; [`merkle`] hashes leaves and
//!   nodes as RFC 6962 / RFC 9162 do (`SHA-256(0x00 || entry)`, `SHA-256(0x01 || left ||
//!   right)`), and gives the tree root, inclusion proofs and consistency proofs with their
//!   verification.
//! - A [`Checkpoint`] is a signed statement "the first `size` entries have root `root`, at
//!   `time`", signed with an Ed25519 key per hub, named by its [`KeyId`].
//! - [`Log`] is the appending side: it numbers and chains drafts into entries, keeps the tree's
//!   right edge (a compact range, O(log n) hashes), and says when a checkpoint is due.
//! - [`verify()`] is the offline verifier: over the exported entries and checkpoints, optional
//!   checkpoints a supervisor saved earlier and the keys they trust, it names the first bad
//!   entry, a truncation, a reordering, a changed field or a checkpoint signed by another key.
//!
//! # Invariants (each stated as something that does not happen)
//!
//! - Nothing here reads a clock, a file or the network; time and keys are arguments.
//! - No entry is changed once made: [`Log::prepare`] returns the entry to persist and
//!   [`Log::apply`] takes it in only after the caller stored it; there is no edit.
//! - No checkpoint verifies whose root is not the root of the entries it counts.

pub mod checkpoint;
pub mod entry;
pub mod export;
pub mod log;
pub mod merkle;
pub mod risk;
pub mod verify;

pub use checkpoint::{Checkpoint, KeyId, PublicKey, Signer, checkpoint_message};
pub use entry::{Draft, Entry, Outcome, Record};
pub use export::{EXPORT_FORMAT, Export, SavedCheckpoint};
pub use log::{AppendError, CHECKPOINT_BUSY_MS, CHECKPOINT_IDLE_MS, CheckpointPolicy, Log};
pub use merkle::{CompactRange, Hash};
pub use verify::{Problem, Report, Trust, verify};

/// Errors of decoding what the audit log exchanges (hashes, keys, signatures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not hexadecimal: {0:?}")]
    NotHex(String),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("not an Ed25519 public key")]
    BadKey,
}

/// Lower-case hexadecimal of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes exactly `N` bytes of hexadecimal (either case).
pub fn from_hex<const N: usize>(s: &str) -> Result<[u8; N], DecodeError> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return if b.iter().all(u8::is_ascii_hexdigit) && b.len().is_multiple_of(2) {
            Err(DecodeError::Length {
                expected: N,
                got: b.len() / 2,
            })
        } else {
            Err(DecodeError::NotHex(s.chars().take(80).collect()))
        };
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        match (nibble(b[2 * i]), nibble(b[2 * i + 1])) {
            (Some(h), Some(l)) => *o = (h << 4) | l,
            _ => return Err(DecodeError::NotHex(s.chars().take(80).collect())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&b), "0001abff");
        assert_eq!(from_hex::<4>("0001ABff"), Ok(b));
        assert_eq!(
            from_hex::<4>("0001ab"),
            Err(DecodeError::Length {
                expected: 4,
                got: 3
            })
        );
        assert!(matches!(from_hex::<2>("zz00"), Err(DecodeError::NotHex(_))));
    }
}

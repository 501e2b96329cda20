//! The export file (`suanli audit export`) and a supervisor's saved checkpoints.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, PublicKey};
use crate::entry::Record;

pub const EXPORT_FORMAT: &str = "suanli-audit-export/1";

/// Everything `verify` needs: the entries as stored, the checkpoints and the hub keys that
/// signed them (as the hub names them: a verifier trusts keys it holds, not these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    pub format: String,
    pub keys: Vec<PublicKey>,
    pub entries: Vec<Record>,
    pub checkpoints: Vec<Checkpoint>,
}

/// A checkpoint a supervisor kept, with the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCheckpoint {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    pub key: PublicKey,
}

//! The audit log's wire types (`/v1/audit/...`): entries, checkpoints, proofs and the export.
//! Their JSON is the same as `suanli_audit`'s own (the export file `suanli audit verify` reads);
//! the conversions below check every hash and key on the way in.

use serde::{Deserialize, Serialize};
use suanli_audit::{Checkpoint, Entry, Export, Hash, KeyId, Outcome, PublicKey, Record};
use utoipa::ToSchema;

/// What became of an audited request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditOutcomeView {
    /// Authorised; the HTTP status the hub answered.
    Allowed { status: u16 },
    /// Refused (401, 403, 429): `why` is the error code and message.
    Denied { status: u16, why: String },
}

/// One audit entry, as stored (with the leaf hash recorded when it was appended).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// Its index in the log, from 0 (the leaf index in the Merkle tree).
    pub seq: u64,
    /// When the hub answered, Unix milliseconds.
    pub time: i64,
    /// The principal id (the token's id), or `anonymous`.
    pub principal: String,
    pub role: Option<String>,
    pub tenant: Option<String>,
    /// The peer address the request came from.
    pub source: String,
    pub request_id: String,
    /// The operation: method and route, e.g. `POST /v1/jobs/{id}/cancel`.
    pub action: String,
    /// The path and query the request named.
    pub target: String,
    pub outcome: AuditOutcomeView,
    /// SHA-256 of the method, target and body (hex).
    pub request_digest: String,
    /// The leaf hash of the entry before it (hex; zeros for the first).
    pub prev: String,
    /// This entry's leaf hash, `SHA-256(0x00 || canonical entry)` (hex).
    pub leaf: String,
}

/// A page of audit entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntries {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<u64>,
}

/// A signed checkpoint: the first `size` entries have Merkle root `root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CheckpointView {
    pub size: u64,
    /// Hex.
    pub root: String,
    /// When it was signed, Unix milliseconds.
    pub time: i64,
    /// The first 8 bytes of SHA-256 of the signing public key (hex).
    pub key_id: String,
    /// Ed25519 signature of the checkpoint text (hex), see docs/SUPERVISION.md.
    pub signature: String,
}

/// The newest checkpoint, the key that signed it and, with `?since=`, the consistency proof
/// from the tree of `since` entries to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LatestCheckpoint {
    pub checkpoint: CheckpointView,
    /// The signing Ed25519 public key (hex).
    pub key: String,
    pub since: Option<u64>,
    /// RFC 9162 consistency proof from `since` to `checkpoint.size` (hex hashes).
    pub consistency: Vec<String>,
}

/// An entry's inclusion proof in the tree of the newest checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub entry: AuditEntryView,
    pub checkpoint: CheckpointView,
    /// The signing public key (hex).
    pub key: String,
    /// RFC 9162 audit path from the entry's leaf to `checkpoint.root` (hex hashes).
    pub path: Vec<String>,
}

/// Everything `suanli audit verify` needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditExport {
    /// `suanli-audit-export/1`.
    pub format: String,
    /// The public keys of the hubs that signed (hex).
    pub keys: Vec<String>,
    pub entries: Vec<AuditEntryView>,
    pub checkpoints: Vec<CheckpointView>,
}

/// A view that does not decode (a hash or key that is not hex of the right length).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {source}")]
pub struct AuditDecodeError {
    pub what: &'static str,
    #[source]
    pub source: suanli_audit::DecodeError,
}

fn hash(what: &'static str, s: &str) -> Result<Hash, AuditDecodeError> {
    Hash::from_hex(s).map_err(|source| AuditDecodeError { what, source })
}

pub fn hashes(what: &'static str, v: &[String]) -> Result<Vec<Hash>, AuditDecodeError> {
    v.iter().map(|s| hash(what, s)).collect()
}

pub fn public_key(s: &str) -> Result<PublicKey, AuditDecodeError> {
    PublicKey::from_hex(s).map_err(|source| AuditDecodeError {
        what: "key",
        source,
    })
}

impl From<&Record> for AuditEntryView {
    fn from(r: &Record) -> Self {
        let e = &r.entry;
        AuditEntryView {
            seq: e.seq,
            time: e.time,
            principal: e.principal.clone(),
            role: e.role.clone(),
            tenant: e.tenant.clone(),
            source: e.source.clone(),
            request_id: e.request_id.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: match &e.outcome {
                Outcome::Allowed { status } => AuditOutcomeView::Allowed { status: *status },
                Outcome::Denied { status, why } => AuditOutcomeView::Denied {
                    status: *status,
                    why: why.clone(),
                },
            },
            request_digest: e.request_digest.to_hex(),
            prev: e.prev.to_hex(),
            leaf: r.leaf.to_hex(),
        }
    }
}

impl TryFrom<&AuditEntryView> for Record {
    type Error = AuditDecodeError;
    fn try_from(v: &AuditEntryView) -> Result<Record, AuditDecodeError> {
        Ok(Record {
            entry: Entry {
                seq: v.seq,
                time: v.time,
                principal: v.principal.clone(),
                role: v.role.clone(),
                tenant: v.tenant.clone(),
                source: v.source.clone(),
                request_id: v.request_id.clone(),
                action: v.action.clone(),
                target: v.target.clone(),
                outcome: match &v.outcome {
                    AuditOutcomeView::Allowed { status } => Outcome::Allowed { status: *status },
                    AuditOutcomeView::Denied { status, why } => Outcome::Denied {
                        status: *status,
                        why: why.clone(),
                    },
                },
                request_digest: hash("request_digest", &v.request_digest)?,
                prev: hash("prev", &v.prev)?,
            },
            leaf: hash("leaf", &v.leaf)?,
        })
    }
}

impl From<&Checkpoint> for CheckpointView {
    fn from(c: &Checkpoint) -> Self {
        CheckpointView {
            size: c.size,
            root: c.root.to_hex(),
            time: c.time,
            key_id: c.key_id.0.clone(),
            signature: c.signature.clone(),
        }
    }
}

impl TryFrom<&CheckpointView> for Checkpoint {
    type Error = AuditDecodeError;
    fn try_from(v: &CheckpointView) -> Result<Checkpoint, AuditDecodeError> {
        Ok(Checkpoint {
            size: v.size,
            root: hash("root", &v.root)?,
            time: v.time,
            key_id: KeyId(v.key_id.clone()),
            signature: v.signature.clone(),
        })
    }
}

impl TryFrom<&AuditExport> for Export {
    type Error = AuditDecodeError;
    fn try_from(v: &AuditExport) -> Result<Export, AuditDecodeError> {
        Ok(Export {
            format: v.format.clone(),
            keys: v
                .keys
                .iter()
                .map(|k| public_key(k))
                .collect::<Result<_, _>>()?,
            entries: v
                .entries
                .iter()
                .map(Record::try_from)
                .collect::<Result<_, _>>()?,
            checkpoints: v
                .checkpoints
                .iter()
                .map(Checkpoint::try_from)
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_audit::{Draft, Log, Signer};

    #[test]
    fn the_views_have_the_audit_crates_json_and_round_trip() {
        let mut log = Log::new();
        let r = log.prepare(Draft {
            time: 1_000,
            principal: "7".into(),
            role: Some("operator".into()),
            tenant: None,
            source: "127.0.0.1:1".into(),
            request_id: "r1".into(),
            action: "PUT /v1/prices".into(),
            target: "/v1/prices".into(),
            outcome: Outcome::Denied {
                status: 403,
                why: "forbidden".into(),
            },
            request_digest: Hash::of(b"x"),
        });
        log.apply(&r).unwrap();
        let view = AuditEntryView::from(&r);
        assert_eq!(
            serde_json::to_value(&view).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
        assert_eq!(Record::try_from(&view).unwrap(), r);
        let c = log.checkpoint(&Signer::from_secret([1; 32]), 2_000);
        let cv = CheckpointView::from(&c);
        assert_eq!(
            serde_json::to_value(&cv).unwrap(),
            serde_json::to_value(&c).unwrap()
        );
        assert_eq!(Checkpoint::try_from(&cv).unwrap(), c);
        let bad = AuditEntryView {
            leaf: "zz".into(),
            ..view
        };
        assert_eq!(Record::try_from(&bad).unwrap_err().what, "leaf");
    }
}

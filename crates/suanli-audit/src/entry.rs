//! Audit entries and their canonical encoding.

use serde::{Deserialize, Serialize};

use crate::merkle::{Hash, leaf_hash};

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Authorised; `status` is the HTTP status the hub answered.
    Allowed { status: u16 },
    /// Refused by authentication or authorisation: `why` is the stable error code.
    Denied { status: u16, why: String },
}

impl Outcome {
    pub fn is_denied(&self) -> bool {
        matches!(self, Outcome::Denied { .. })
    }
    pub fn status(&self) -> u16 {
        match self {
            Outcome::Allowed { status } | Outcome::Denied { status, .. } => *status,
        }
    }
}

/// An entry before the log numbers and chains it: what the shell knows about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Unix milliseconds at which the hub answered.
    pub time: i64,
    /// The principal's id (a token id), or `anonymous`.
    pub principal: String,
    pub role: Option<String>,
    pub tenant: Option<String>,
    /// The peer address the request came from.
    pub source: String,
    pub request_id: String,
    /// The operation, e.g. `POST /v1/jobs`.
    pub action: String,
    /// The path with its query, e.g. `/v1/jobs/j-7/cancel`.
    pub target: String,
    pub outcome: Outcome,
    /// SHA-256 of the method, target and body.
    pub request_digest: Hash,
}

/// One audit entry: a draft with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Its index in the log, from 0: the leaf index in the tree.
    pub seq: u64,
    pub time: i64,
    pub principal: String,
    pub role: Option<String>,
    pub tenant: Option<String>,
    pub source: String,
    pub request_id: String,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub request_digest: Hash,
    /// The leaf hash of entry `seq - 1` (zeros for the first).
    pub prev: Hash,
}

/// An entry as stored and exported: with the leaf hash recorded when it was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub entry: Entry,
    pub leaf: Hash,
}

/// The encoding's version tag, first in every canonical entry.
const ENTRY_TAG: &str = "suanli-audit-entry/1";

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: &Option<String>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

impl Entry {
    pub fn from_draft(d: Draft, seq: u64, prev: Hash) -> Entry {
        Entry {
            seq,
            time: d.time,
            principal: d.principal,
            role: d.role,
            tenant: d.tenant,
            source: d.source,
            request_id: d.request_id,
            action: d.action,
            target: d.target,
            outcome: d.outcome,
            request_digest: d.request_digest,
            prev,
        }
    }

    /// The canonical encoding: the version tag, then every field in declaration order;
    /// integers big-endian, strings as a u32 length and their UTF-8 bytes, an optional string
    /// as 0 or 1 and the string, the outcome as 0 (allowed) or 1 (denied), the status and, if
    /// denied, the reason; the two hashes as 32 bytes each. Two different entries never
    /// encode the same (every part is length-delimited or of fixed size).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160 + self.target.len() + self.action.len());
        put_str(&mut out, ENTRY_TAG);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.time.to_be_bytes());
        put_str(&mut out, &self.principal);
        put_opt(&mut out, &self.role);
        put_opt(&mut out, &self.tenant);
        put_str(&mut out, &self.source);
        put_str(&mut out, &self.request_id);
        put_str(&mut out, &self.action);
        put_str(&mut out, &self.target);
        match &self.outcome {
            Outcome::Allowed { status } => {
                out.push(0);
                out.extend_from_slice(&status.to_be_bytes());
            }
            Outcome::Denied { status, why } => {
                out.push(1);
                out.extend_from_slice(&status.to_be_bytes());
                put_str(&mut out, why);
            }
        }
        out.extend_from_slice(&self.request_digest.0);
        out.extend_from_slice(&self.prev.0);
        out
    }

    /// The entry's leaf hash in the tree: `SHA-256(0x00 || canonical)`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.canonical())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn draft(i: u64) -> Draft {
        Draft {
            time: 1_700_000_000_000 + i as i64 * 1000,
            principal: format!("tok-{}", i % 3),
            role: Some("user".into()),
            tenant: Some(format!("t{}", i % 2)),
            source: "127.0.0.1:5000".into(),
            request_id: format!("r-{i}"),
            action: "POST /v1/jobs".into(),
            target: "/v1/jobs".into(),
            outcome: if i % 5 == 4 {
                Outcome::Denied {
                    status: 403,
                    why: "forbidden".into(),
                }
            } else {
                Outcome::Allowed { status: 201 }
            },
            request_digest: Hash::of(format!("body {i}").as_bytes()),
        }
    }

    #[test]
    fn every_field_changes_the_leaf() {
        let e = Entry::from_draft(draft(4), 4, Hash::of(b"prev"));
        let base = e.leaf_hash();
        let variants: Vec<Entry> = vec![
            Entry {
                seq: 5,
                ..e.clone()
            },
            Entry {
                time: e.time + 1,
                ..e.clone()
            },
            Entry {
                principal: "tok-x".into(),
                ..e.clone()
            },
            Entry {
                role: None,
                ..e.clone()
            },
            Entry {
                tenant: Some("t9".into()),
                ..e.clone()
            },
            Entry {
                source: "10.0.0.1:1".into(),
                ..e.clone()
            },
            Entry {
                request_id: "r-x".into(),
                ..e.clone()
            },
            Entry {
                action: "DELETE /v1/jobs".into(),
                ..e.clone()
            },
            Entry {
                target: "/v1/jobs/x".into(),
                ..e.clone()
            },
            Entry {
                outcome: Outcome::Allowed { status: 403 },
                ..e.clone()
            },
            Entry {
                outcome: Outcome::Denied {
                    status: 403,
                    why: "unauthorized".into(),
                },
                ..e.clone()
            },
            Entry {
                request_digest: Hash::of(b"other"),
                ..e.clone()
            },
            Entry {
                prev: Hash::default(),
                ..e.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.leaf_hash(), base, "{v:?}");
        }
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_leaf() {
        let e = Entry::from_draft(draft(1), 1, Hash::default());
        let a = Entry {
            action: "ab".into(),
            target: "c".into(),
            ..e.clone()
        };
        let b = Entry {
            action: "a".into(),
            target: "bc".into(),
            ..e.clone()
        };
        assert_ne!(a.leaf_hash(), b.leaf_hash());
        let c = Entry {
            role: None,
            tenant: Some("x".into()),
            ..e.clone()
        };
        let d = Entry {
            role: Some("x".into()),
            tenant: None,
            ..e
        };
        assert_ne!(c.leaf_hash(), d.leaf_hash());
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let e = Entry::from_draft(draft(4), 4, Hash::of(b"prev"));
        let r = Record {
            leaf: e.leaf_hash(),
            entry: e,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(
            s.contains(r#""outcome":{"kind":"denied","status":403,"why":"forbidden"}"#),
            "{s}"
        );
        let back: Record = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
    }
}

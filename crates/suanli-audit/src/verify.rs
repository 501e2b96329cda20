//! The offline verifier: recomputes every leaf and the tree, checks every checkpoint's
//! signature against trusted keys and its root against the entries, and names what is wrong.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::checkpoint::{Checkpoint, KeyId, PublicKey};
use crate::entry::Record;
use crate::merkle::{CompactRange, Hash, empty_root};

/// The keys a verifier trusts.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<PublicKey>,
}

/// Where a checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// In the export, from the hub's store.
    Export,
    /// Kept by the supervisor (`suanli audit checkpoint --save`).
    Saved,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Export => "exported",
            Source::Saved => "saved",
        })
    }
}

/// One thing wrong, naming the entry or checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry at `position` says it is entry `seq`.
    OutOfPlace { position: u64, seq: u64 },
    /// Entry `seq` names as its predecessor the entry found at `position`: it was moved.
    Moved { seq: u64, follows: u64 },
    /// Entry `seq` does not follow the entry before it, nor any other entry in the file.
    BrokenChain { seq: u64 },
    /// Entry `seq`'s fields are not those it was appended with.
    Changed { seq: u64 },
    /// A checkpoint signed by a key not trusted.
    UntrustedKey {
        source: Source,
        size: u64,
        key_id: KeyId,
    },
    /// A checkpoint whose signature does not verify.
    BadSignature {
        source: Source,
        size: u64,
        key_id: KeyId,
    },
    /// A checkpoint covers more entries than the log has: the newest were deleted.
    Truncated {
        source: Source,
        size: u64,
        entries: u64,
    },
    /// A checkpoint's root is not the root of the first `size` entries: one of the entries
    /// from `from` (the largest verified checkpoint below it) to `size` was rewritten.
    RootMismatch {
        source: Source,
        size: u64,
        from: u64,
    },
}

impl Problem {
    /// Whether the problem is an entry's own (found by its place, chain or fields), rather
    /// than a checkpoint's.
    pub fn names_one_entry(&self) -> bool {
        matches!(
            self,
            Problem::OutOfPlace { .. }
                | Problem::Moved { .. }
                | Problem::BrokenChain { .. }
                | Problem::Changed { .. }
        )
    }

    /// The first entry this problem names, if it names one.
    pub fn entry(&self) -> Option<u64> {
        match self {
            Problem::OutOfPlace { position, .. } => Some(*position),
            Problem::Moved { seq, .. }
            | Problem::BrokenChain { seq }
            | Problem::Changed { seq } => Some(*seq),
            Problem::Truncated { entries, .. } => Some(*entries),
            Problem::RootMismatch { from, .. } => Some(*from),
            Problem::UntrustedKey { .. } | Problem::BadSignature { .. } => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::OutOfPlace { position, seq } => write!(
                f,
                "entry at position {position} says it is entry {seq}: entries are missing, duplicated or reordered"
            ),
            Problem::Moved { seq, follows } => write!(
                f,
                "entry {seq} was moved: it was appended after the entry now at position {follows} (reordered)"
            ),
            Problem::BrokenChain { seq } => write!(
                f,
                "entry {seq} does not follow the entry before it: an entry was removed, inserted or rewritten"
            ),
            Problem::Changed { seq } => write!(
                f,
                "entry {seq} was changed: its fields do not match the hash recorded when it was appended"
            ),
            Problem::UntrustedKey {
                source,
                size,
                key_id,
            } => write!(
                f,
                "{source} checkpoint at size {size} is signed by key {key_id}, which is not trusted (a forgery, or another hub's key)"
            ),
            Problem::BadSignature {
                source,
                size,
                key_id,
            } => write!(
                f,
                "{source} checkpoint at size {size}: the signature of key {key_id} does not verify"
            ),
            Problem::Truncated {
                source,
                size,
                entries,
            } => write!(
                f,
                "log truncated: a {source} checkpoint covers {size} entries, the log has {entries} (entries {entries}..{} were deleted)",
                size - 1
            ),
            Problem::RootMismatch { source, size, from } => write!(
                f,
                "{source} checkpoint at size {size} does not match the entries: one of entries {from}..{} was rewritten",
                size - 1
            ),
        }
    }
}

/// What the verifier found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    /// The root of all the entries, as recomputed.
    pub root: Hash,
    /// Checkpoints that verified (signature by a trusted key, root matches).
    pub checkpoints_verified: usize,
    /// The size of the largest verified checkpoint: entries past it are not yet signed.
    pub covered: u64,
    /// The problems, entry problems first by entry; at most [`MAX_PROBLEMS`] of them.
    pub problems: Vec<Problem>,
    /// Problems found past the first [`MAX_PROBLEMS`].
    pub more_problems: u64,
}

pub const MAX_PROBLEMS: usize = 100;

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
    /// The first bad entry: the first an entry's own check names, else the lower end of the
    /// first range a checkpoint found rewritten or missing.
    pub fn first_bad_entry(&self) -> Option<u64> {
        let of = |own: bool| {
            self.problems
                .iter()
                .filter(|p| p.names_one_entry() == own)
                .filter_map(Problem::entry)
                .min()
        };
        of(true).or_else(|| of(false))
    }
}

/// Verifies `entries` (in file order) against their `checkpoints` and the `saved` ones, with
/// the `trust`ed keys.
pub fn verify(
    entries: &[Record],
    checkpoints: &[Checkpoint],
    saved: &[Checkpoint],
    trust: &Trust,
) -> Report {
    let mut problems = Vec::new();
    let mut more = 0u64;
    let mut push = |problems: &mut Vec<Problem>, p: Problem| {
        if problems.len() < MAX_PROBLEMS {
            problems.push(p);
        } else {
            more += 1;
        }
    };

    let n = entries.len() as u64;
    let all: Vec<(Source, &Checkpoint)> = checkpoints
        .iter()
        .map(|c| (Source::Export, c))
        .chain(saved.iter().map(|c| (Source::Saved, c)))
        .collect();
    let wanted: BTreeSet<u64> = all
        .iter()
        .map(|(_, c)| c.size)
        .filter(|&s| s <= n)
        .collect();

    // Pass over the entries: place, chain, fields; the tree from the recomputed leaves.
    let by_leaf: HashMap<Hash, u64> = entries
        .iter()
        .enumerate()
        .map(|(i, r)| (r.leaf, i as u64))
        .collect();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    if wanted.contains(&0) {
        roots.insert(0, empty_root());
    }
    let mut range = CompactRange::default();
    for (i, r) in entries.iter().enumerate() {
        let i = i as u64;
        if r.entry.seq != i {
            push(
                &mut problems,
                Problem::OutOfPlace {
                    position: i,
                    seq: r.entry.seq,
                },
            );
        }
        let expected_prev = if i == 0 {
            Hash::default()
        } else {
            entries[i as usize - 1].leaf
        };
        if r.entry.prev != expected_prev {
            match by_leaf.get(&r.entry.prev) {
                Some(&j) => push(&mut problems, Problem::Moved { seq: i, follows: j }),
                _ => push(&mut problems, Problem::BrokenChain { seq: i }),
            }
        }
        let leaf = r.entry.leaf_hash();
        if leaf != r.leaf {
            push(&mut problems, Problem::Changed { seq: i });
        }
        range.push(leaf);
        if wanted.contains(&range.size()) {
            roots.insert(range.size(), range.root());
        }
    }

    // The checkpoints: key, signature, size, root.
    let keys: HashMap<KeyId, &PublicKey> = trust.keys.iter().map(|k| (k.id(), k)).collect();
    let mut verdicts = Vec::with_capacity(all.len());
    for (source, c) in &all {
        let v = match keys.get(&c.key_id) {
            None => Some(Problem::UntrustedKey {
                source: *source,
                size: c.size,
                key_id: c.key_id.clone(),
            }),
            Some(k) if !c.signed_by(k) => Some(Problem::BadSignature {
                source: *source,
                size: c.size,
                key_id: c.key_id.clone(),
            }),
            Some(_) if c.size > n => Some(Problem::Truncated {
                source: *source,
                size: c.size,
                entries: n,
            }),
            Some(_) if roots.get(&c.size) != Some(&c.root) => Some(Problem::RootMismatch {
                source: *source,
                size: c.size,
                from: 0,
            }),
            Some(_) => None,
        };
        verdicts.push(v);
    }
    let verified = verdicts.iter().filter(|v| v.is_none()).count();
    let good: BTreeSet<u64> = all
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| v.is_none())
        .map(|((_, c), _)| c.size)
        .collect();
    let mut checkpoint_problems: Vec<Problem> = verdicts
        .into_iter()
        .flatten()
        .map(|p| match p {
            Problem::RootMismatch { source, size, .. } => Problem::RootMismatch {
                source,
                size,
                from: good.range(..size).next_back().copied().unwrap_or(0),
            },
            p => p,
        })
        .collect();
    checkpoint_problems.sort_by_key(|p| (p.entry().unwrap_or(u64::MAX), format!("{p}")));
    checkpoint_problems.dedup();
    for p in checkpoint_problems {
        push(&mut problems, p);
    }

    Report {
        entries: n,
        root: range.root(),
        checkpoints_verified: verified,
        covered: good.last().copied().unwrap_or(0),
        problems,
        more_problems: more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Signer;
    use crate::entry::tests::draft;
    use crate::log::Log;

    struct Fixture {
        records: Vec<Record>,
        checkpoints: Vec<Checkpoint>,
        signer: Signer,
    }

    /// 20 entries with a checkpoint after every 5.
    fn fixture() -> Fixture {
        let signer = Signer::from_secret([3; 32]);
        let mut log = Log::new();
        let mut records = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 0..20 {
            let r = log.prepare(draft(i));
            log.apply(&r).unwrap();
            records.push(r);
            if (i + 1) % 5 == 0 {
                checkpoints.push(log.checkpoint(&signer, 2_000_000 + i as i64));
            }
        }
        Fixture {
            records,
            checkpoints,
            signer,
        }
    }

    fn trust(f: &Fixture) -> Trust {
        Trust {
            keys: vec![f.signer.public()],
        }
    }

    #[test]
    fn an_untouched_log_verifies() {
        let f = fixture();
        let r = verify(&f.records, &f.checkpoints, &f.checkpoints[1..2], &trust(&f));
        assert!(r.ok(), "{:?}", r.problems);
        assert_eq!((r.entries, r.checkpoints_verified, r.covered), (20, 5, 20));
        assert_eq!(r.first_bad_entry(), None);
    }

    #[test]
    fn a_changed_field_names_the_entry() {
        let mut f = fixture();
        f.records[7].entry.tenant = Some("someone else".into());
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(r.problems[0], Problem::Changed { seq: 7 });
        assert_eq!(r.first_bad_entry(), Some(7));
        assert!(r.problems.contains(&Problem::RootMismatch {
            source: Source::Export,
            size: 10,
            from: 5
        }));
    }

    #[test]
    fn a_changed_field_with_its_hash_recomputed_breaks_the_chain_and_the_root() {
        let mut f = fixture();
        f.records[7].entry.tenant = Some("someone else".into());
        f.records[7].leaf = f.records[7].entry.leaf_hash();
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(r.problems[0], Problem::BrokenChain { seq: 8 });
        assert!(r.problems.contains(&Problem::RootMismatch {
            source: Source::Export,
            size: 10,
            from: 5
        }));
    }

    #[test]
    fn a_rewritten_tail_is_caught_by_the_checkpoints_alone() {
        // Rewrite entry 12 and re-chain everything after it: every entry is self-consistent.
        let mut f = fixture();
        let mut log = Log::replay(&f.records[..12], None).unwrap();
        let mut d = draft(12);
        d.principal = "forger".into();
        let mut forged = f.records[..12].to_vec();
        let r = log.prepare(d);
        log.apply(&r).unwrap();
        forged.push(r);
        for i in 13..20 {
            let r = log.prepare(draft(i));
            log.apply(&r).unwrap();
            forged.push(r);
        }
        f.records = forged;
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(
            r.problems,
            vec![
                Problem::RootMismatch {
                    source: Source::Export,
                    size: 15,
                    from: 10
                },
                Problem::RootMismatch {
                    source: Source::Export,
                    size: 20,
                    from: 10
                },
            ]
        );
        assert_eq!(r.first_bad_entry(), Some(10));
        assert_eq!(r.covered, 10);
    }

    #[test]
    fn two_swapped_entries_are_named_as_moved() {
        let mut f = fixture();
        f.records.swap(3, 4);
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(
            r.problems[0],
            Problem::OutOfPlace {
                position: 3,
                seq: 4
            }
        );
        assert!(
            r.problems.contains(&Problem::Moved { seq: 3, follows: 4 }),
            "{:?}",
            r.problems
        );
        assert_eq!(r.first_bad_entry(), Some(3));
        // The same with the sequence numbers swapped back (as a store keyed by them would):
        // the fields no longer match, and the chain names the move.
        let (a, b) = (f.records[3].entry.seq, f.records[4].entry.seq);
        f.records[3].entry.seq = b;
        f.records[4].entry.seq = a;
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(r.problems[0], Problem::Moved { seq: 3, follows: 4 });
    }

    #[test]
    fn deleting_the_newest_entries_is_caught_by_a_saved_checkpoint() {
        let f = fixture();
        let saved = vec![f.checkpoints[3].clone()];
        // The store lost its last 3 entries and the checkpoints past them.
        let r = verify(&f.records[..17], &f.checkpoints[..3], &saved, &trust(&f));
        assert_eq!(
            r.problems,
            vec![Problem::Truncated {
                source: Source::Saved,
                size: 20,
                entries: 17
            }]
        );
        assert_eq!(r.first_bad_entry(), Some(17));
        assert!(
            r.problems[0]
                .to_string()
                .contains("entries 17..19 were deleted"),
            "{}",
            r.problems[0]
        );
        // Without the saved checkpoint there is nothing to tell.
        assert!(verify(&f.records[..17], &f.checkpoints[..3], &[], &trust(&f)).ok());
    }

    #[test]
    fn a_consistent_forgery_signed_by_another_key_is_named() {
        let f = fixture();
        let forger = Signer::from_secret([9; 32]);
        let mut log = Log::new();
        let mut records = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 0..20 {
            let mut d = draft(i);
            d.tenant = Some("forged".into());
            let r = log.prepare(d);
            log.apply(&r).unwrap();
            records.push(r);
        }
        checkpoints.push(log.checkpoint(&forger, 3_000_000));
        let r = verify(&records, &checkpoints, &f.checkpoints[1..2], &trust(&f));
        assert_eq!(
            r.problems,
            vec![
                Problem::RootMismatch {
                    source: Source::Saved,
                    size: 10,
                    from: 0
                },
                Problem::UntrustedKey {
                    source: Source::Export,
                    size: 20,
                    key_id: forger.public().id()
                },
            ]
        );
        // Trusting the forger's key (as one who trusts the file would) leaves the saved one.
        let both = Trust {
            keys: vec![f.signer.public(), forger.public()],
        };
        let r = verify(&records, &checkpoints, &f.checkpoints[1..2], &both);
        assert_eq!(
            r.problems,
            vec![Problem::RootMismatch {
                source: Source::Saved,
                size: 10,
                from: 0
            }]
        );
    }

    #[test]
    fn a_bad_signature_is_named() {
        let mut f = fixture();
        f.checkpoints[2].time += 1;
        let r = verify(&f.records, &f.checkpoints, &[], &trust(&f));
        assert_eq!(
            r.problems,
            vec![Problem::BadSignature {
                source: Source::Export,
                size: 15,
                key_id: f.signer.public().id()
            }]
        );
    }
}

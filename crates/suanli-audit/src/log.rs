//! The appending side of the log: numbers and chains entries, keeps the tree's right edge and
//! says when a checkpoint is due.

use crate::checkpoint::{Checkpoint, Signer};
use crate::entry::{Draft, Entry, Record};
use crate::merkle::{CompactRange, Hash};

/// While entries arrive, a checkpoint at least this often (ms).
pub const CHECKPOINT_BUSY_MS: i64 = 60_000;
/// When none arrive, a checkpoint this often all the same (ms), so that deleting the newest
/// entries leaves a signed size behind them.
pub const CHECKPOINT_IDLE_MS: i64 = 3_600_000;

/// How often checkpoints are made: at least every `busy_ms` while entries arrive, every
/// `idle_ms` when none do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub busy_ms: i64,
    pub idle_ms: i64,
}

impl Default for CheckpointPolicy {
    fn default() -> CheckpointPolicy {
        CheckpointPolicy {
            busy_ms: CHECKPOINT_BUSY_MS,
            idle_ms: CHECKPOINT_IDLE_MS,
        }
    }
}

/// Why a record does not continue the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("entry {got} where entry {want} comes next")]
    OutOfPlace { want: u64, got: u64 },
    #[error("entry {seq} does not name the leaf hash of the entry before it")]
    BrokenChain { seq: u64 },
    #[error("entry {seq}'s recorded leaf hash is not the hash of its fields")]
    WrongLeaf { seq: u64 },
}

/// The log's state: how many entries, the last leaf, the tree's right edge and the last
/// checkpoint. Rebuilt from the stored records by [`Log::replay`].
#[derive(Debug, Clone, Default)]
pub struct Log {
    range: CompactRange,
    last_leaf: Hash,
    /// (size, time) of the newest checkpoint.
    last_checkpoint: Option<(u64, i64)>,
}

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    /// Rebuilds the state from the stored records, in order, and the newest checkpoint.
    pub fn replay<'a>(
        records: impl IntoIterator<Item = &'a Record>,
        last_checkpoint: Option<&Checkpoint>,
    ) -> Result<Log, AppendError> {
        let mut log = Log::new();
        for r in records {
            log.apply(r)?;
        }
        log.last_checkpoint = last_checkpoint.map(|c| (c.size, c.time));
        Ok(log)
    }

    /// Rebuilds the state from the stored leaf hashes alone (the store's check of each row
    /// is the verifier's job, not the start's).
    pub fn from_leaves(leaves: &[Hash], last_checkpoint: Option<&Checkpoint>) -> Log {
        let mut log = Log::new();
        for l in leaves {
            log.range.push(*l);
            log.last_leaf = *l;
        }
        log.last_checkpoint = last_checkpoint.map(|c| (c.size, c.time));
        log
    }

    pub fn size(&self) -> u64 {
        self.range.size()
    }

    pub fn root(&self) -> Hash {
        self.range.root()
    }

    /// The record to persist for `draft`: the next sequence number, chained to the last leaf.
    /// Nothing changes until [`Log::apply`].
    pub fn prepare(&self, draft: Draft) -> Record {
        let entry = Entry::from_draft(draft, self.size(), self.last_leaf);
        Record {
            leaf: entry.leaf_hash(),
            entry,
        }
    }

    /// Takes in a persisted record; refuses one that does not continue the log.
    pub fn apply(&mut self, r: &Record) -> Result<(), AppendError> {
        let seq = r.entry.seq;
        if seq != self.size() {
            return Err(AppendError::OutOfPlace {
                want: self.size(),
                got: seq,
            });
        }
        if r.entry.prev != self.last_leaf {
            return Err(AppendError::BrokenChain { seq });
        }
        if r.entry.leaf_hash() != r.leaf {
            return Err(AppendError::WrongLeaf { seq });
        }
        self.range.push(r.leaf);
        self.last_leaf = r.leaf;
        Ok(())
    }

    /// Whether a checkpoint is due at `now`: none yet; entries since the last one and
    /// `busy_ms` gone (a minute by default); or `idle_ms` gone (an hour), entries or not.
    pub fn checkpoint_due(&self, now: i64, policy: &CheckpointPolicy) -> bool {
        match self.last_checkpoint {
            None => true,
            Some((size, time)) => {
                let since = now.saturating_sub(time);
                (self.size() > size && since >= policy.busy_ms) || since >= policy.idle_ms
            }
        }
    }

    /// Entries since the last checkpoint.
    pub fn unsigned(&self) -> u64 {
        self.size()
            - self
                .last_checkpoint
                .map_or(0, |(size, _)| size.min(self.size()))
    }

    /// The checkpoint of the whole log now, signed; persist it, then [`Log::checkpointed`].
    pub fn checkpoint(&self, signer: &Signer, now: i64) -> Checkpoint {
        signer.checkpoint(self.size(), self.root(), now)
    }

    pub fn checkpointed(&mut self, c: &Checkpoint) {
        self.last_checkpoint = Some((c.size, c.time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::tests::draft;
    use crate::merkle;

    fn grown(n: u64) -> (Log, Vec<Record>) {
        let mut log = Log::new();
        let mut rs = Vec::new();
        for i in 0..n {
            let r = log.prepare(draft(i));
            log.apply(&r).unwrap();
            rs.push(r);
        }
        (log, rs)
    }

    #[test]
    fn entries_are_numbered_chained_and_rooted() {
        let (log, rs) = grown(7);
        assert_eq!(log.size(), 7);
        assert_eq!(rs[0].entry.prev, Hash::default());
        for w in rs.windows(2) {
            assert_eq!(w[1].entry.prev, w[0].leaf);
            assert_eq!(w[1].entry.seq, w[0].entry.seq + 1);
        }
        let leaves: Vec<Hash> = rs.iter().map(|r| r.leaf).collect();
        assert_eq!(log.root(), merkle::root(&leaves));
        assert_eq!(Log::replay(&rs, None).unwrap().root(), log.root());
        assert_eq!(Log::from_leaves(&leaves, None).root(), log.root());
    }

    #[test]
    fn a_record_out_of_place_is_refused() {
        let (mut log, rs) = grown(3);
        assert_eq!(
            log.apply(&rs[1]),
            Err(AppendError::OutOfPlace { want: 3, got: 1 })
        );
        let mut r = log.prepare(draft(3));
        r.entry.prev = Hash::default();
        assert_eq!(log.apply(&r), Err(AppendError::BrokenChain { seq: 3 }));
        let mut r = log.prepare(draft(3));
        r.entry.principal = "someone else".into();
        assert_eq!(log.apply(&r), Err(AppendError::WrongLeaf { seq: 3 }));
        assert_eq!(log.size(), 3);
    }

    #[test]
    fn checkpoints_come_every_minute_while_busy_and_every_hour_when_idle() {
        let signer = Signer::from_secret([1; 32]);
        let p = CheckpointPolicy::default();
        let (mut log, _) = grown(0);
        let t0 = 1_000_000;
        assert!(log.checkpoint_due(t0, &p), "the first is due at once");
        let c = log.checkpoint(&signer, t0);
        log.checkpointed(&c);
        assert!(
            !log.checkpoint_due(t0 + CHECKPOINT_BUSY_MS, &p),
            "no entries: not yet"
        );
        assert!(!log.checkpoint_due(t0 + CHECKPOINT_IDLE_MS - 1, &p));
        assert!(
            log.checkpoint_due(t0 + CHECKPOINT_IDLE_MS, &p),
            "an hour: even with none"
        );
        let r = log.prepare(draft(0));
        log.apply(&r).unwrap();
        assert!(!log.checkpoint_due(t0 + CHECKPOINT_BUSY_MS - 1, &p));
        assert!(log.checkpoint_due(t0 + CHECKPOINT_BUSY_MS, &p));
        let c = log.checkpoint(&signer, t0 + CHECKPOINT_BUSY_MS);
        assert_eq!((c.size, c.root), (1, log.root()));
        assert!(c.signed_by(&signer.public()));
    }
}

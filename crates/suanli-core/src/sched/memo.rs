//! What a pass remembers: backfill reservations, expected starts, what it learned about each
//! shape of job, and which shapes pending in a class are settled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use suanli_types::{CenterId, Money, Timestamp};

use crate::Placement;
use crate::queue::{Entry, FxMap, FxSet, Sid};
use crate::sched::scoring::Scored;

/// Chip mask, cards per node, nodes, price cap: what the static filters look at.
pub(super) type NeedKey = (
    u64,
    u32,
    u32,
    Option<Money>,
    Option<String>,
    Vec<suanli_types::CenterId>,
);

/// Per-pass memory.
#[derive(Default)]
pub(super) struct Pass {
    /// Pool uid -> (reserved start, reserved end) of the first job waiting for it.
    pub(super) reservations: FxMap<u32, (Timestamp, Timestamp)>,
    /// Pool uid -> the work of the other jobs this pass left waiting for it (class order, then
    /// fair-share order: the jobs ahead of any job examined later).
    pub(super) queued: FxMap<u32, Queued>,
    /// Pool uid -> (k, n) -> expected start; dropped for a pool when it changes.
    pub(super) est: FxMap<u32, FxMap<(u32, u32), Timestamp>>,
    /// What this pass learned about each shape of job.
    pub(super) memo: FxMap<Sid, Memo>,
    /// A reused buffer for candidates (empty between uses).
    pub(super) buf: Vec<Scored<'static>>,
    /// Per chip mask, cards per node, nodes and price cap: the centers that can never take such
    /// a job, with the reason (these do not change within a pass).
    pub(super) never: HashMap<NeedKey, HashMap<CenterId, String>>,
    /// The same key: the whole rejected list, when it does not depend on the tenant.
    pub(super) shared_rejections: FxMap<NeedKey, Arc<[crate::Rejection]>>,
    /// The placements so far, in decision order.
    pub(super) placed: Vec<Placement>,
    pub(super) preemptions: usize,
    pub(super) examined: usize,
}

/// What the last pass left at each pool: its reservation (for the explanation of a pending
/// job).
#[derive(Clone, Debug, Default)]
pub(crate) struct Waiting {
    pub(super) reservations: FxMap<u32, (Timestamp, Timestamp)>,
}

/// Work queued at a pool behind its reservation, by wall-time limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Queued {
    /// Cards x wall-time seconds.
    pub card_secs: u64,
    pub jobs: u32,
}

impl Queued {
    /// How much later than its reservation ends a job queued behind this work starts, if the
    /// work packs the pool's `cards` (a fluid estimate: gangs fragment, so it is a lower bound).
    pub(super) fn delay_ms(&self, cards: u64) -> i64 {
        (self.card_secs.saturating_mul(1000) / cards.max(1)).min(i64::MAX as u64) as i64
    }
}

impl Pass {
    /// A job of `cards` x `walltime` waits for pool `uid`, expected to start `at`: the first such
    /// job reserves the pool (with backfill), the others queue behind the reservation. Notes in
    /// the job's entry where it waits and what is queued ahead of it there.
    pub(super) fn wait_at(&mut self, entry: &Entry, uid: u32, at: Timestamp, backfill: bool) {
        let spec = &entry.job.spec;
        let walltime = spec.walltime;
        if backfill && !self.reservations.contains_key(&uid) {
            self.reservations.insert(uid, (at, at.plus_secs(walltime)));
            entry.note.set(uid, at, 0, 0);
            return;
        }
        let cards = spec.cards_per_node as u64 * spec.nodes as u64;
        let holder = self.reservations.contains_key(&uid) as u32;
        let q = self.queued.entry(uid).or_default();
        entry.note.set(uid, at, q.jobs + holder, q.card_secs);
        q.card_secs = q.card_secs.saturating_add(cards.saturating_mul(walltime));
        q.jobs += 1;
    }
}

/// A shape's decision to wait for a pool although another fits now, and how far it holds.
#[derive(Clone, Debug)]
pub(crate) struct WaitMemo {
    /// The shortest wall time with which a job of this shape chose to wait.
    pub(super) walltime: u64,
    /// The pool it waits for: uid, center, pool index.
    pub(super) uid: u32,
    pub(super) center: CenterId,
    pub(super) pool: usize,
    /// A job of the shape waits there while its expected wait over its wall time stays below
    /// this (the score margin of the pool over the best pool that fits now, over the wait
    /// weight); infinite when waiting costs nothing in the score.
    pub(super) margin: f64,
}

/// What a pass learned about a shape of job; later jobs of that shape skip the work.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memo {
    /// It fits nowhere now (ignoring reservations): it can only wait or preempt.
    pub(super) blocked: bool,
    /// No preemption can make room for it, for this class or (classes come in order) any lower.
    pub(super) no_victims: bool,
    /// It chose to wait for a busy pool although another fits now: a job of the shape with a
    /// longer wall time waits too (its wait weighs less, and a longer job backfills less) while
    /// its expected wait there, queue included, stays within the margin, so it is not scored
    /// again.
    pub(super) waits: Option<WaitMemo>,
    /// The pool the first waiting job of this shape reserved, and from when: a job skipped
    /// thanks to this memo reserves it too (if nobody has yet in this pass), as it would have.
    pub(super) reserves: Option<(u32, Timestamp)>,
}

/// Empties a candidate buffer and hands its allocation to another lifetime (the in-place
/// collect reuses the allocation: the element type's layout is the same).
pub(super) fn recycle<'b>(mut v: Vec<Scored<'_>>) -> Vec<Scored<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the buffer is empty"))
        .collect()
}

/// Tracks which shapes pending in a class are settled for this pass: every job of the shape
/// would only wait (it fits nowhere and cannot preempt).
pub(super) struct Settled {
    done: FxSet<Sid>,
    open: usize,
}

impl Settled {
    fn is_settled(memo: &FxMap<Sid, Memo>, shape: &Sid, preempting: bool) -> bool {
        // A shape that waits for a better pool is never settled: the queue there grows with
        // every job that waits, until waiting costs more than the price difference is worth.
        memo.get(shape)
            .is_some_and(|m| m.blocked && (m.no_victims || !preempting))
    }

    pub(super) fn new(
        shapes: &FxMap<Sid, BTreeMap<u64, u32>>,
        memo: &FxMap<Sid, Memo>,
        preempting: bool,
    ) -> Settled {
        let mut done = FxSet::default();
        let mut open = 0;
        for shape in shapes.keys() {
            if Self::is_settled(memo, shape, preempting) {
                done.insert(*shape);
            } else {
                open += 1;
            }
        }
        Settled { done, open }
    }

    pub(super) fn all(&self) -> bool {
        self.open == 0
    }

    /// After a job of `shape` waited: true when the whole class is settled.
    pub(super) fn update(
        &mut self,
        shape: &Sid,
        shapes: &FxMap<Sid, BTreeMap<u64, u32>>,
        memo: &FxMap<Sid, Memo>,
        preempting: bool,
    ) -> bool {
        if self.done.contains(shape) {
            return self.all();
        }
        if shapes.contains_key(shape) && Self::is_settled(memo, shape, preempting) {
            self.done.insert(*shape);
            self.open = self.open.saturating_sub(1);
        }
        self.all()
    }
}

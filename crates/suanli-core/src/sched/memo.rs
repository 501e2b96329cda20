//! What a pass remembers: backfill reservations, expected starts, what it learned about each
//! shape of job, and which shapes pending in a class are settled.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use suanli_types::{CenterId, Money, Timestamp};

use crate::Placement;
use crate::queue::{FxMap, FxSet, Sid};
use crate::sched::scoring::Scored;

/// Chip mask, cards per node, nodes, price cap: what the static filters look at.
pub(super) type NeedKey = (u64, u32, u32, Option<Money>);

/// Per-pass memory.
#[derive(Default)]
pub(super) struct Pass {
    /// Pool uid -> (reserved start, reserved end) of the first job waiting for it.
    pub(super) reservations: FxMap<u32, (Timestamp, Timestamp)>,
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

impl Pass {
    /// Whether what this pass learned settles a job of `shape` and `walltime` (it would only
    /// wait); if so, it reserves what the first job of its shape reserved, as it would have.
    pub(super) fn skips(&mut self, shape: Sid, walltime: u64, backfill: bool) -> bool {
        let Some(m) = self.memo.get(&shape) else {
            return false;
        };
        if !((m.blocked && m.no_victims) || m.waits_from.is_some_and(|w| walltime >= w)) {
            return false;
        }
        if backfill && let Some((uid, at)) = m.reserves {
            self.reservations
                .entry(uid)
                .or_insert((at, at.plus_secs(walltime)));
        }
        true
    }
}

/// What a pass learned about a shape of job; later jobs of that shape skip the work.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memo {
    /// It fits nowhere now (ignoring reservations): it can only wait or preempt.
    pub(super) blocked: bool,
    /// No preemption can make room for it, for this class or (classes come in order) any lower.
    pub(super) no_victims: bool,
    /// The shortest wall time with which a job of this shape chose to wait for a busy pool: a
    /// job with a longer wall time would wait too (its wait weighs less, and a longer job
    /// backfills less), so it is not scored again.
    pub(super) waits_from: Option<u64>,
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
/// would only wait (it fits nowhere and cannot preempt, or it waits for a better pool and no job
/// of the shape has a shorter wall time than one that chose to wait).
pub(super) struct Settled {
    done: FxSet<Sid>,
    open: usize,
}

impl Settled {
    fn is_settled(
        memo: &FxMap<Sid, Memo>,
        shape: &Sid,
        walltimes: &BTreeMap<u64, u32>,
        preempting: bool,
    ) -> bool {
        let Some(m) = memo.get(shape) else {
            return false;
        };
        let shortest = walltimes.keys().next().copied().unwrap_or(0);
        (m.blocked && (m.no_victims || !preempting)) || m.waits_from.is_some_and(|w| shortest >= w)
    }

    pub(super) fn new(
        shapes: &FxMap<Sid, BTreeMap<u64, u32>>,
        memo: &FxMap<Sid, Memo>,
        preempting: bool,
    ) -> Settled {
        let mut done = FxSet::default();
        let mut open = 0;
        for (shape, w) in shapes {
            if Self::is_settled(memo, shape, w, preempting) {
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
        if let Some(w) = shapes.get(shape)
            && Self::is_settled(memo, shape, w, preempting)
        {
            self.done.insert(*shape);
            self.open = self.open.saturating_sub(1);
        }
        self.all()
    }
}

//! Scheduling passes: the suanli policy (fair share, scored placement, backfill, preemption) and
//! the baselines it is compared with (strict FIFO, cheapest, least loaded).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use suanli_types::{CenterId, ChipCatalog, JobId, Money, PriorityClass, TenantId, Timestamp};

use crate::filter::{Mode, Need};
use crate::queue::{FxMap, FxSet, Key, Sid};
use crate::{Candidate, Core, Decision, PendingJob, Placement, Policy, TenantPolicy};

/// A pool's release timeline: (end by wall time, node index, cards, job), by end.
pub(crate) type Timeline = BTreeSet<(Timestamp, u32, u32, JobId)>;

/// A placed or running job as the core remembers it: enough to estimate when its cards come
/// back, to charge its tenant's share, and to queue it again if it is preempted.
#[derive(Debug)]
pub(crate) struct Run {
    pub job: PendingJob,
    pub started: Timestamp,
    /// Start plus the wall-time limit: the latest it can end.
    pub end_est: Timestamp,
    /// Beyond the tenant's nominal quota: may be evicted for work within quota.
    pub borrowed: bool,
    /// Chip vendor ("family") of the pool it runs on.
    pub family: String,
    /// Cards x FP16 TFLOPS per card: capability-normalised size.
    pub norm: u64,
    pub cards: u32,
}

/// A tenant's fair-share and quota state.
#[derive(Debug, Default)]
pub(crate) struct TenantState {
    pub policy: TenantPolicy,
    /// Decayed past usage in normalised card-seconds, as of `hist_at`.
    pub hist: f64,
    pub hist_at: Timestamp,
    /// Normalised size of running work per family.
    pub running_norm: BTreeMap<String, u64>,
    /// Cards of running work per family.
    pub running_cards: BTreeMap<String, u32>,
}

impl TenantState {
    pub fn decayed(&self, now: Timestamp, half_life_secs: u64) -> f64 {
        let dt = now.millis_since(self.hist_at) as f64 / 1000.0;
        self.hist * (-dt / half_life_secs.max(1) as f64).exp2()
    }
}

/// A floating-point key with a total order (fair-share keys are finite).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A candidate pool while scoring; borrows the fleet, so it costs no allocation.
struct Scored<'a> {
    center: &'a CenterId,
    pool: usize,
    uid: u32,
    chip: Option<usize>,
    tflops: u32,
    price: Money,
    cost_per_hour: Money,
    cost_total: Money,
    expected_start: Timestamp,
    score_milli: i64,
    fits_now: bool,
    /// The pool has the nodes free now (a reservation may still keep the job out).
    free_now: bool,
    borrowed: bool,
    /// The tenant has no quota for this pool's family (no center was excluded by quota).
    quota_free: bool,
}

/// A decision made while borrowing the fleet, owned so the fleet can then be changed.
struct Choice {
    center: CenterId,
    pool: usize,
    chip: Option<usize>,
    borrowed: bool,
    chosen: Candidate,
    others: Vec<Candidate>,
    rejected: Arc<[crate::Rejection]>,
}

/// Other candidates kept in a decision record.
const OTHERS_KEPT: usize = 5;
/// Pools tried for preemption, best first.
const PREEMPT_TRIES: usize = 3;

/// Chip mask, cards per node, nodes, price cap: what the static filters look at.
type NeedKey = (u64, u32, u32, Option<Money>);

/// Per-pass memory.
#[derive(Default)]
struct Pass {
    /// Pool uid -> (reserved start, reserved end) of the first job waiting for it.
    reservations: FxMap<u32, (Timestamp, Timestamp)>,
    /// Pool uid -> (k, n) -> expected start; dropped for a pool when it changes.
    est: FxMap<u32, FxMap<(u32, u32), Timestamp>>,
    /// What this pass learned about each shape of job.
    memo: FxMap<Sid, Memo>,
    /// A reused buffer for candidates (empty between uses).
    buf: Vec<Scored<'static>>,
    /// Per chip mask, cards per node, nodes and price cap: the centers that can never take such
    /// a job, with the reason (these do not change within a pass).
    never: HashMap<NeedKey, HashMap<CenterId, String>>,
    /// The same key: the whole rejected list, when it does not depend on the tenant.
    shared_rejections: FxMap<NeedKey, Arc<[crate::Rejection]>>,
    preemptions: usize,
    examined: usize,
}

impl Pass {
    /// Whether what this pass learned settles a job of `shape` and `walltime` (it would only
    /// wait); if so, it reserves what the first job of its shape reserved, as it would have.
    fn skips(&mut self, shape: Sid, walltime: u64, backfill: bool) -> bool {
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
    blocked: bool,
    /// No preemption can make room for it, for this class or (classes come in order) any lower.
    no_victims: bool,
    /// The shortest wall time with which a job of this shape chose to wait for a busy pool: a
    /// job with a longer wall time would wait too (its wait weighs less, and a longer job
    /// backfills less), so it is not scored again.
    waits_from: Option<u64>,
    /// The pool the first waiting job of this shape reserved, and from when: a job skipped
    /// thanks to this memo reserves it too (if nobody has yet in this pass), as it would have.
    reserves: Option<(u32, Timestamp)>,
}

/// Empties a candidate buffer and hands its allocation to another lifetime (the in-place
/// collect reuses the allocation: the element type's layout is the same).
fn recycle<'b>(mut v: Vec<Scored<'_>>) -> Vec<Scored<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the buffer is empty"))
        .collect()
}

/// Tracks which shapes pending in a class are settled for this pass: every job of the shape
/// would only wait (it fits nowhere and cannot preempt, or it waits for a better pool and no job
/// of the shape has a shorter wall time than one that chose to wait).
struct Settled {
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

    fn new(
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

    fn all(&self) -> bool {
        self.open == 0
    }

    /// After a job of `shape` waited: true when the whole class is settled.
    fn update(
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

/// What happened to one examined job.
enum Outcome {
    Placed(Box<Placement>),
    Waits,
}

const FAR: i64 = 30 * 86_400 * 1000;

fn vendor_of(chip: Option<usize>) -> (&'static str, u32) {
    match chip {
        Some(i) => {
            let c = &ChipCatalog::builtin().all()[i];
            (c.vendor.as_str(), c.fp16_tflops.max(1))
        }
        None => ("", 1),
    }
}

impl Core {
    /// The pass for the configured policy.
    pub(crate) fn pass(&mut self, now: Timestamp) -> Vec<Placement> {
        self.clock = self.clock.max(now);
        let mut out = Vec::new();
        // What the last pass learned still holds if no cards came free since (capacity only
        // shrank): a shape that fit nowhere still fits nowhere, and a job that chose to wait
        // for a busy pool would wait again. Victims may have appeared: that is looked at anew.
        let mut pass = Pass {
            memo: self.carry.take().unwrap_or_default(),
            ..Pass::default()
        };
        for m in pass.memo.values_mut() {
            m.no_victims = false;
        }
        for class in PriorityClass::ALL {
            let stop = match self.config.policy {
                Policy::Suanli => self.class_fair(class, now, &mut pass, &mut out),
                _ => self.class_fifo(class, now, &mut pass, &mut out),
            };
            if stop {
                break;
            }
        }
        // Preemptions freed cards mid-pass: do not carry conclusions drawn before them.
        if out.iter().all(|p| p.preempted.is_empty()) {
            self.carry = Some(pass.memo);
        }
        out
    }

    /// Baseline policies: FIFO by seq within the class. Returns true to end the whole pass.
    fn class_fifo(
        &mut self,
        class: PriorityClass,
        now: Timestamp,
        pass: &mut Pass,
        out: &mut Vec<Placement>,
    ) -> bool {
        let policy = self.config.policy;
        let mut cursor: Option<Key> = None;
        let mut free = self.fleet.free_online_cards();
        let mut watch = Settled::new(self.queue.shapes(class), &pass.memo, false);
        if watch.all() {
            return false;
        }
        loop {
            let next = {
                let q = self.queue.class(class);
                let range = match cursor {
                    Some(c) => q.range((Bound::Excluded(c), Bound::Unbounded)),
                    None => q.range(..),
                };
                range.map(|(k, _)| *k).next()
            };
            let Some(key) = next else { return false };
            cursor = Some(key);
            pass.examined += 1;
            if pass.examined > self.config.max_examined_per_pass || free == 0 {
                return true;
            }
            let shape = self.queue.at(class, &key).map(|e| e.shape);
            match self.decide_simple(policy, class, key, now, pass) {
                Some(p) => {
                    free = free.saturating_sub(p.alloc.total_cards());
                    out.push(p);
                }
                // Strict FIFO: the first job that cannot start holds everyone behind it.
                None if policy == Policy::Fifo => return true,
                None => {
                    if let Some(shape) = shape
                        && watch.update(&shape, self.queue.shapes(class), &pass.memo, false)
                    {
                        return false;
                    }
                }
            }
        }
    }

    /// One job under a baseline policy: place it now or leave it.
    fn decide_simple(
        &mut self,
        policy: Policy,
        class: PriorityClass,
        key: Key,
        now: Timestamp,
        pass: &mut Pass,
    ) -> Option<Placement> {
        let entry = self.queue.at(class, &key)?;
        let shape = entry.shape;
        if pass.memo.get(&shape).is_some_and(|m| m.blocked) {
            return None;
        }
        let need = Need::with_mask(&entry.job.spec, entry.mask);
        let mut fits = self.candidates(&need, &entry.job.tenant, now, None);
        fits.retain(|s| s.fits_now);
        if fits.is_empty() {
            pass.memo.entry(shape).or_default().blocked = true;
            return None;
        }
        // Centers come in id order; the policy's score (lower is better) sorts them stably.
        for s in fits.iter_mut() {
            let p = &self.fleet.centers[s.center].pools[s.pool];
            s.score_milli = match policy {
                Policy::Fifo => 0,
                Policy::Cheapest => s.cost_per_hour.0,
                _ => 1000 - (p.free_cards * 1000 / p.total_cards().max(1)) as i64,
            };
        }
        if policy == Policy::Cheapest {
            let free_of = |s: &Scored| self.fleet.centers[s.center].sku_free_of(s.pool);
            fits.sort_by_cached_key(|s| (s.score_milli, Reverse(free_of(s))));
        } else {
            fits.sort_by_key(|s| s.score_milli);
        }
        let choice = self.choose(&need, &fits[0], &fits[1..], now, pass);
        Some(self.place(class, key, choice, now, Vec::new()))
    }

    /// The suanli policy for one class: tenants by fair share, FIFO within a tenant, each job to
    /// its best-scoring pool, backfill behind reservations, preemption of lower work.
    fn class_fair(
        &mut self,
        class: PriorityClass,
        now: Timestamp,
        pass: &mut Pass,
        out: &mut Vec<Placement>,
    ) -> bool {
        let tenants: Vec<TenantId> = self.queue.tenants(class).keys().cloned().collect();
        // Ties between equal shares go by tenant id (the index), so passes are deterministic.
        let mut heap: BinaryHeap<Reverse<(OrdF64, u32)>> = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| Reverse((OrdF64(self.share_key(t, now)), i as u32)))
            .collect();
        let mut cursors: Vec<Option<Key>> = vec![None; tenants.len()];
        let preempting = self.config.preemption;
        let mut watch = Settled::new(self.queue.shapes(class), &pass.memo, preempting);
        if watch.all() {
            return false;
        }
        let backfill = self.config.backfill;
        while let Some(Reverse((share, i))) = heap.pop() {
            let tenant = &tenants[i as usize];
            // Jobs the pass's memos settle (they would only wait) are passed over here in one
            // sweep of the tenant's queue: a waiting job leaves its tenant's share unchanged, so
            // the tenant would be first in the heap again for its next job anyway.
            let mut next = None;
            if let Some(set) = self.queue.tenants(class).get(tenant) {
                let rest = match cursors[i as usize] {
                    Some(c) => set.range((Bound::Excluded(c), Bound::Unbounded)),
                    None => set.range(..),
                };
                for &key in rest {
                    cursors[i as usize] = Some(key);
                    pass.examined += 1;
                    if pass.examined > self.config.max_examined_per_pass {
                        return true;
                    }
                    let Some(entry) = self.queue.at(class, &key) else {
                        continue;
                    };
                    if !pass.skips(entry.shape, entry.job.spec.walltime, backfill) {
                        next = Some(key);
                        break;
                    }
                    if watch.update(
                        &entry.shape,
                        self.queue.shapes(class),
                        &pass.memo,
                        preempting,
                    ) {
                        return false;
                    }
                }
            }
            let Some(key) = next else { continue };
            let shape = self.queue.at(class, &key).map(|e| e.shape);
            match self.decide_fair(class, key, now, pass) {
                Outcome::Placed(p) => {
                    out.push(*p);
                    heap.push(Reverse((OrdF64(self.share_key(tenant, now)), i)));
                }
                // Its share did not change.
                Outcome::Waits => {
                    heap.push(Reverse((share, i)));
                    // When every job left in the class would only wait, the class is done.
                    if let Some(shape) = shape
                        && watch.update(&shape, self.queue.shapes(class), &pass.memo, preempting)
                    {
                        return false;
                    }
                }
            }
        }
        false
    }

    /// Whether the tenant's jobs are judged apart from others of the same shape (it has quotas
    /// or vouchers, so it sees the network differently).
    pub(crate) fn alone(&self, tenant: &TenantId) -> bool {
        self.tstate
            .get(tenant)
            .is_some_and(|t| !t.policy.quotas.is_empty() || !t.policy.pays_bp.is_empty())
    }

    /// One job under the suanli policy.
    fn decide_fair(
        &mut self,
        class: PriorityClass,
        key: Key,
        now: Timestamp,
        pass: &mut Pass,
    ) -> Outcome {
        let Some(entry) = self.queue.at(class, &key) else {
            return Outcome::Waits;
        };
        let shape = entry.shape;
        let walltime = entry.job.spec.walltime;
        if pass.skips(shape, walltime, self.config.backfill) {
            return Outcome::Waits;
        }
        let need = Need::with_mask(&entry.job.spec, entry.mask);
        let mut cands = recycle(std::mem::take(&mut pass.buf));
        self.candidates_into(&mut cands, &need, &entry.job.tenant, now, Some(pass));
        if cands.is_empty() {
            pass.buf = recycle(cands);
            let m = pass.memo.entry(shape).or_default();
            m.blocked = true;
            m.no_victims = true;
            return Outcome::Waits;
        }
        let fit = (need.k, need.n, need.total);
        let any_free = cands.iter().any(|s| s.free_now);
        let any_fits = cands.iter().any(|s| s.fits_now);
        self.score(&mut cands, walltime, now);
        // Only the best few are looked at (choice, preemption tries, others kept): order those.
        let order = |a: &Scored, b: &Scored| {
            (a.score_milli, a.center, a.pool).cmp(&(b.score_milli, b.center, b.pool))
        };
        let top = (OTHERS_KEPT + 1).max(PREEMPT_TRIES);
        // (With a quota, the rejected list needs every candidate center; keep them all.)
        if cands.len() > top && cands.iter().all(|s| s.quota_free) {
            cands.select_nth_unstable_by(top - 1, order);
            cands.truncate(top);
        }
        cands.sort_by(order);
        if cands[0].fits_now {
            let choice = self.choose(&need, &cands[0], &cands[1..], now, pass);
            let uid = cands[0].uid;
            pass.buf = recycle(cands);
            pass.est.remove(&uid);
            return Outcome::Placed(Box::new(self.place(class, key, choice, now, Vec::new())));
        }
        let best = (cands[0].uid, cands[0].expected_start);
        let top: Vec<(CenterId, usize, u32, bool)> = cands
            .iter()
            .take(PREEMPT_TRIES)
            .map(|s| (s.center.clone(), s.pool, s.uid, s.borrowed))
            .collect();
        pass.buf = recycle(cands);
        // Preemption only when the job fits nowhere now.
        if !any_fits
            && self.config.preemption
            && pass.preemptions < self.config.max_preemptions_per_pass
            && !pass.memo.get(&shape).is_some_and(|m| m.no_victims)
        {
            let tenant = self
                .queue
                .at(class, &key)
                .expect("pending")
                .job
                .tenant
                .clone();
            match self.find_victims(&top, class, &tenant, fit, now) {
                Some((i, victims)) => {
                    pass.preemptions += victims.len();
                    let (center, pool, uid, _) = top[i].clone();
                    self.last_preempt.insert(uid, now);
                    pass.est.remove(&uid);
                    let entry = self.queue.at(class, &key).expect("still pending");
                    let need = Need::with_mask(&entry.job.spec, entry.mask);
                    let cands = self.candidates(&need, &tenant, now, None);
                    let at = cands
                        .iter()
                        .position(|s| *s.center == center && s.pool == pool)
                        .expect("the pool the victims made room in");
                    let rest: Vec<&Scored> = cands
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != at)
                        .map(|(_, s)| s)
                        .collect();
                    let choice = self.choose_refs(&need, &cands[at], &rest, now, pass);
                    return Outcome::Placed(Box::new(self.place(class, key, choice, now, victims)));
                }
                None => {
                    pass.memo.entry(shape).or_default().no_victims = true;
                }
            }
        }
        let shape_for_memo = shape;
        if !any_free {
            pass.memo.entry(shape).or_default().blocked = true;
        } else if any_fits {
            // It chose to wait for a better pool.
            let m = pass.memo.entry(shape).or_default();
            m.waits_from = Some(m.waits_from.map_or(walltime, |w| w.min(walltime)));
        }
        // Reserve the best pool for this job so later jobs do not delay it (backfill).
        if self.config.backfill {
            let (uid, at) = best;
            pass.reservations
                .entry(uid)
                .or_insert((at, at.plus_secs(walltime)));
            if let Some(m) = pass.memo.get_mut(&shape_for_memo) {
                m.reserves.get_or_insert((uid, at));
            }
        }
        Outcome::Waits
    }

    /// Does the pool have `n` nodes with `k` free cards (`total` = k x n) now?
    fn free_ok_pool(&self, center: &CenterId, pool: usize, (k, n, total): (u32, u32, u64)) -> bool {
        let p = &self.fleet.centers[center].pools[pool];
        p.free_cards >= total && p.nodes_with_free(k) >= n
    }

    /// Every online pool that passes the hard filters and the tenant's quota, with whether it
    /// fits now (respecting reservations when `pass` is given) and its expected start.
    fn candidates<'a>(
        &'a self,
        need: &Need,
        tenant: &TenantId,
        now: Timestamp,
        pass: Option<&mut Pass>,
    ) -> Vec<Scored<'a>> {
        let mut out = Vec::new();
        self.candidates_into(&mut out, need, tenant, now, pass);
        out
    }

    /// [`candidates`](Core::candidates) into a buffer whose allocation is reused.
    fn candidates_into<'a>(
        &'a self,
        out: &mut Vec<Scored<'a>>,
        need: &Need,
        tenant: &TenantId,
        now: Timestamp,
        mut pass: Option<&mut Pass>,
    ) {
        out.clear();
        let walltime = need.spec.walltime;
        let ends = now.plus_secs(walltime);
        let state = self
            .tstate
            .get(tenant)
            .filter(|t| !t.policy.quotas.is_empty());
        let pays = self
            .tstate
            .get(tenant)
            .map(|t| &t.policy.pays_bp)
            .filter(|m| !m.is_empty());
        for c in self.fleet.centers.values().filter(|c| c.online) {
            for (pi, p) in c.pools.iter().enumerate() {
                if !need.static_ok(p) {
                    continue;
                }
                let (family, tflops) = vendor_of(p.chip);
                let mut borrowed = false;
                let quota_free = state.is_none();
                if let Some(q) = state.and_then(|t| t.policy.quotas.get(family)) {
                    let used = state
                        .and_then(|t| t.running_cards.get(family))
                        .copied()
                        .unwrap_or(0) as u64;
                    let after = used + need.total;
                    if after > q.nominal as u64 + q.borrow_limit as u64 {
                        continue;
                    }
                    borrowed = after > q.nominal as u64;
                }
                let free_now = need.free_ok(p);
                let resv = pass
                    .as_ref()
                    .and_then(|ps| ps.reservations.get(&p.uid).copied());
                let fits_now = free_now && resv.is_none_or(|(start, _)| ends <= start);
                let mut expected_start = now;
                if !fits_now {
                    let (k, n) = (need.k, need.n);
                    expected_start = match pass.as_mut() {
                        Some(ps) => *ps
                            .est
                            .entry(p.uid)
                            .or_default()
                            .entry((k, n))
                            .or_insert_with(|| self.estimate_start(&c.id, pi, k, n, now)),
                        None => self.estimate_start(&c.id, pi, k, n, now),
                    };
                    if let Some((_, resv_end)) = resv {
                        expected_start = expected_start.max(resv_end);
                    }
                }
                let mut cost_per_hour = need.cost(p);
                if let Some(bp) = pays.and_then(|m| m.get(&p.sku)) {
                    cost_per_hour = cost_per_hour.mul_div(*bp as i64, 10_000);
                }
                out.push(Scored {
                    center: &c.id,
                    pool: pi,
                    uid: p.uid,
                    chip: p.chip,
                    tflops,
                    price: p.price,
                    cost_per_hour,
                    cost_total: cost_per_hour.mul_div(walltime as i64, 3600),
                    expected_start,
                    score_milli: 0,
                    fits_now,
                    free_now,
                    borrowed,
                    quota_free,
                });
            }
        }
    }

    /// The record of a candidate for decisions and quotes.
    fn candidate(&self, s: &Scored) -> Candidate {
        let c = &self.fleet.centers[s.center];
        let p = &c.pools[s.pool];
        Candidate {
            center: s.center.clone(),
            sku: p.sku.clone(),
            price_per_card_hour: s.price,
            cost_per_hour: s.cost_per_hour,
            cost_total: s.cost_total,
            free_cards: c.sku_free(&p.sku),
            expected_start: s.expected_start,
            score_milli: s.score_milli,
        }
    }

    fn choose(
        &self,
        need: &Need,
        chosen: &Scored,
        rest: &[Scored],
        now: Timestamp,
        pass: &mut Pass,
    ) -> Choice {
        let refs: Vec<&Scored> = rest.iter().collect();
        self.choose_refs(need, chosen, &refs, now, pass)
    }

    /// Everything the decision records, made while the fleet is borrowed.
    fn choose_refs(
        &self,
        need: &Need,
        chosen: &Scored,
        rest: &[&Scored],
        now: Timestamp,
        pass: &mut Pass,
    ) -> Choice {
        // Under the suanli policy every online pool that passes the static filters is a
        // candidate, so the rejected centers depend only on the job's shape, unless the tenant's
        // quota excluded some.
        let shareable = self.config.policy == Policy::Suanli && chosen.quota_free;
        let mut cand = self.candidate(chosen);
        cand.expected_start = now;
        let mut have: FxSet<&CenterId> = rest.iter().map(|s| s.center).collect();
        have.insert(chosen.center);
        Choice {
            center: chosen.center.clone(),
            pool: chosen.pool,
            chip: chosen.chip,
            borrowed: chosen.borrowed,
            chosen: cand,
            others: rest
                .iter()
                .take(OTHERS_KEPT)
                .map(|s| self.candidate(s))
                .collect(),
            rejected: self.rejections(need, &have, pass, shareable),
        }
    }

    /// The suanli score; fills `score_milli`.
    fn score(&self, cands: &mut [Scored], walltime: u64, now: Timestamp) {
        let w = self.config.weights;
        let cheapest = cands.iter().map(|s| s.cost_total.0).min().unwrap_or(0);
        let least = cands.iter().map(|s| s.tflops).min().unwrap_or(1).max(1);
        for s in cands.iter_mut() {
            let cost = if cheapest > 0 {
                s.cost_total.0 as f64 / cheapest as f64 - 1.0
            } else if s.cost_total.0 > 0 {
                1.0
            } else {
                0.0
            };
            let wait =
                s.expected_start.millis_since(now) as f64 / (walltime.max(60) as f64 * 1000.0);
            let fit = s.tflops as f64 / least as f64 - 1.0;
            let score = w.cost * cost + w.wait * wait + w.fit * fit;
            s.score_milli = (score * 1000.0).round().clamp(-1e15, 1e15) as i64;
        }
    }

    /// When `n` nodes with `k` free cards will be free in the pool, if running jobs end at their
    /// wall-time limits.
    fn estimate_start(
        &self,
        center: &CenterId,
        pool: usize,
        k: u32,
        n: u32,
        now: Timestamp,
    ) -> Timestamp {
        let p = &self.fleet.centers[center].pools[pool];
        let mut count = p.nodes_with_free(k);
        if count >= n {
            return now;
        }
        let Some(events) = self.pool_runs.get(&p.uid) else {
            return Timestamp(now.0 + FAR);
        };
        // Free cards of the nodes the releases touch so far (usually few): no copy of the pool.
        let mut touched: Vec<(u32, u32)> = Vec::new();
        for &(end, node, cards, _) in events {
            let i = node as usize;
            let Some(nd) = p.nodes.get(i) else {
                continue;
            };
            let slot = match touched.iter().position(|(t, _)| *t == node) {
                Some(s) => s,
                None => {
                    touched.push((node, nd.free()));
                    touched.len() - 1
                }
            };
            let before = touched[slot].1;
            let after = (before + cards).min(nd.capacity);
            touched[slot].1 = after;
            if before < k && after >= k {
                count += 1;
                if count >= n {
                    return end.max(now);
                }
            }
        }
        Timestamp(now.0 + FAR)
    }

    /// Victims whose eviction lets the job fit now at one of the `top` pools (best first), or
    /// None. Victims: running work of a lower class, or borrowed work when this job is within its
    /// nominal quota; youngest first (they lose the least work), never work placed in this pass.
    fn find_victims(
        &mut self,
        top: &[(CenterId, usize, u32, bool)],
        class: PriorityClass,
        tenant: &TenantId,
        fit: (u32, u32, u64),
        now: Timestamp,
    ) -> Option<(usize, Vec<JobId>)> {
        let interval = self.config.preempt_interval_secs as i64 * 1000;
        for (i, (center, pool, uid, borrowing)) in top.iter().enumerate() {
            if self
                .last_preempt
                .get(uid)
                .is_some_and(|t| now.millis_since(*t) < interval)
            {
                continue;
            }
            // Each running job once (a gang has an entry per node).
            let mut running: Vec<JobId> = self
                .pool_runs
                .get(uid)
                .into_iter()
                .flatten()
                .map(|&(_, _, _, job)| job)
                .collect();
            running.sort_unstable();
            running.dedup();
            let mut eligible: Vec<(i64, JobId)> = running
                .into_iter()
                .filter_map(|job| {
                    let r = self.runs.get(&job)?;
                    if r.started >= now {
                        return None;
                    }
                    let lower = r.job.spec.priority.rank() > class.rank();
                    let reclaim = r.borrowed && !borrowing && r.job.tenant != *tenant;
                    (lower || reclaim).then(|| (now.millis_since(r.started), job))
                })
                .collect();
            if eligible.is_empty() {
                continue;
            }
            eligible.sort();
            // Tentatively free the youngest until the job fits; undo if it never does.
            let mut taken = Vec::new();
            for &(_, job) in &eligible {
                let alloc = self
                    .allocations
                    .get(&job)
                    .cloned()
                    .expect("runs have allocations");
                for nd in &alloc.nodes {
                    self.fleet.remove_used(&alloc.center, &nd.node, nd.cards);
                }
                taken.push((job, alloc));
                if self.free_ok_pool(center, *pool, fit) {
                    break;
                }
            }
            if self.free_ok_pool(center, *pool, fit) {
                // Spare the victims that turned out not to be needed, oldest first.
                let mut victims = Vec::new();
                for (job, alloc) in taken.into_iter().rev() {
                    for nd in &alloc.nodes {
                        self.fleet.add_used(&alloc.center, &nd.node, nd.cards);
                    }
                    if !self.free_ok_pool(center, *pool, fit) {
                        for nd in &alloc.nodes {
                            self.fleet.remove_used(&alloc.center, &nd.node, nd.cards);
                        }
                        victims.push((job, alloc));
                    }
                }
                // Now evict for real: put their cards back in the books; `release` frees them.
                let mut ids = Vec::new();
                for (job, alloc) in &victims {
                    for nd in &alloc.nodes {
                        self.fleet.add_used(&alloc.center, &nd.node, nd.cards);
                    }
                    self.evict(*job);
                    ids.push(*job);
                }
                if !self.free_ok_pool(center, *pool, fit) {
                    // Cannot happen: the victims alone were enough a moment ago.
                    return None;
                }
                ids.sort();
                return Some((i, ids));
            }
            for (_, alloc) in taken {
                for nd in &alloc.nodes {
                    self.fleet.add_used(&alloc.center, &nd.node, nd.cards);
                }
            }
        }
        None
    }

    /// Releases a running job and queues it again with its original order.
    fn evict(&mut self, job: JobId) {
        if let Some(run) = self.runs.get(&job) {
            let pending = run.job.clone();
            self.release(job);
            let alone = self.alone(&pending.tenant);
            self.queue.insert(pending, alone);
        }
    }

    /// Takes the chosen pool's nodes for the job and records the run.
    fn place(
        &mut self,
        class: PriorityClass,
        key: Key,
        choice: Choice,
        now: Timestamp,
        preempted: Vec<JobId>,
    ) -> Placement {
        let job = self
            .queue
            .remove_key(class, key)
            .expect("examined job is pending");
        let (k, n) = (job.spec.cards_per_node, job.spec.nodes);
        let alloc = self.fleet.take(&choice.center, choice.pool, k, n);
        let placement = Placement {
            job: job.id,
            alloc: alloc.clone(),
            decision: Decision {
                at: now,
                chosen: choice.chosen,
                others: choice.others,
                rejected: choice.rejected,
            },
            preempted,
        };
        let cards = k * n;
        let (family, tflops) = vendor_of(choice.chip);
        self.add_run(
            job,
            alloc,
            now,
            choice.borrowed,
            family.to_string(),
            cards as u64 * tflops as u64,
            cards,
        );
        self.record_decision(&placement);
        placement
    }

    /// Every center not in `have`, with its reason (as of now).
    fn rejections(
        &self,
        need: &Need,
        have: &FxSet<&CenterId>,
        pass: &mut Pass,
        shareable: bool,
    ) -> Arc<[crate::Rejection]> {
        let key = (
            need.mask(),
            need.k,
            need.n,
            need.spec.max_price_per_card_hour,
        );
        if shareable && let Some(r) = pass.shared_rejections.get(&key) {
            return r.clone();
        }
        let never = pass
            .never
            .entry((
                need.mask(),
                need.k,
                need.n,
                need.spec.max_price_per_card_hour,
            ))
            .or_insert_with(|| {
                self.fleet
                    .centers
                    .values()
                    .filter_map(|c| {
                        crate::filter::evaluate(c, need, Mode::Ever)
                            .err()
                            .map(|r| (c.id.clone(), r.render(need)))
                    })
                    .collect()
            });
        let mut out = Vec::new();
        for c in self.fleet.centers.values() {
            // Shareable: the candidates are exactly the online centers that pass the static
            // filters (`have` may hold only the best few of them).
            let candidate = if shareable {
                c.online && !never.contains_key(&c.id)
            } else {
                have.contains(&c.id)
            };
            if candidate {
                continue;
            }
            let reason = match never.get(&c.id) {
                Some(r) => r.clone(),
                None => match crate::filter::evaluate(c, need, Mode::Now) {
                    Err(r) => r.render(need),
                    Ok(_) => "over the tenant's quota for this chip family".to_string(),
                },
            };
            out.push(crate::Rejection {
                center: c.id.clone(),
                reason,
            });
        }
        let out: Arc<[crate::Rejection]> = out.into();
        if shareable {
            pass.shared_rejections.insert(key, out.clone());
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_run(
        &mut self,
        job: PendingJob,
        alloc: crate::Allocation,
        started: Timestamp,
        borrowed: bool,
        family: String,
        norm: u64,
        cards: u32,
    ) {
        let id = job.id;
        let end_est = started.plus_secs(job.spec.walltime);
        if !self.tstate.contains_key(&job.tenant) {
            self.tstate
                .insert(job.tenant.clone(), TenantState::default());
        }
        let t = self.tstate.get_mut(&job.tenant).expect("just ensured");
        *t.running_norm.entry(family.clone()).or_default() += norm;
        *t.running_cards.entry(family.clone()).or_default() += cards;
        self.index_run(id, &alloc, end_est);
        self.allocations.insert(id, alloc);
        self.runs.insert(
            id,
            Run {
                job,
                started,
                end_est,
                borrowed,
                family,
                norm,
                cards,
            },
        );
    }

    /// Adds a run's nodes to the per-pool release timeline.
    pub(crate) fn index_run(&mut self, id: JobId, alloc: &crate::Allocation, end: Timestamp) {
        let Some(c) = self.fleet.centers.get(&alloc.center) else {
            return;
        };
        for nd in &alloc.nodes {
            if let Some((pi, ni)) = c.locate(&nd.node) {
                let v = self.pool_runs.entry(c.pools[pi].uid).or_default();
                let item = (end, ni as u32, nd.cards, id);
                v.insert(item);
            }
        }
    }

    /// Rebuilds the release timelines (after a center's pools changed).
    pub(crate) fn reindex_runs(&mut self) {
        self.pool_runs.clear();
        let items: Vec<(JobId, crate::Allocation, Timestamp)> = self
            .allocations
            .iter()
            .map(|(id, a)| {
                let end = self
                    .runs
                    .get(id)
                    .map_or(Timestamp(self.clock.0 + FAR), |r| r.end_est);
                (*id, a.clone(), end)
            })
            .collect();
        for (id, a, end) in items {
            self.index_run(id, &a, end);
        }
    }

    /// Forgets a run (released or evicted) and charges its tenant's history.
    pub(crate) fn end_run(&mut self, id: JobId, alloc: &crate::Allocation) {
        let end = self.runs.get(&id).map(|r| r.end_est);
        if let Some(c) = self.fleet.centers.get(&alloc.center) {
            for nd in &alloc.nodes {
                let Some((pi, ni)) = c.locate(&nd.node) else {
                    continue;
                };
                let Some(v) = self.pool_runs.get_mut(&c.pools[pi].uid) else {
                    continue;
                };
                let exact = end.is_some_and(|e| v.remove(&(e, ni as u32, nd.cards, id)));
                if !exact {
                    v.retain(|x| x.3 != id);
                }
            }
        }
        let Some(run) = self.runs.remove(&id) else {
            return;
        };
        let half = self.config.fair_share_half_life_secs;
        let now = self.clock.max(run.started);
        let t = self.tstate.entry(run.job.tenant.clone()).or_default();
        if let Some(v) = t.running_norm.get_mut(&run.family) {
            *v = v.saturating_sub(run.norm);
        }
        if let Some(v) = t.running_cards.get_mut(&run.family) {
            *v = v.saturating_sub(run.cards);
        }
        let used = run.norm as f64 * now.millis_since(run.started) as f64 / 1000.0;
        t.hist = t.decayed(now, half) + used;
        t.hist_at = now;
    }

    /// The fair-share key of a tenant: (dominant share of running work over the network's
    /// capability per chip family + decayed past usage over the network's capability for one
    /// half-life) / weight. Lower goes first.
    pub(crate) fn share_key(&self, tenant: &TenantId, now: Timestamp) -> f64 {
        let Some(t) = self.tstate.get(tenant) else {
            return 0.0;
        };
        let caps = &self.family_caps;
        let dominant = t
            .running_norm
            .iter()
            .map(|(f, n)| *n as f64 / caps.get(f).copied().unwrap_or(1).max(1) as f64)
            .fold(0.0, f64::max);
        let total: u64 = caps.values().sum();
        let half = self.config.fair_share_half_life_secs;
        let past = t.decayed(now, half) / (total.max(1) as f64 * half.max(1) as f64);
        (dominant + past) / t.policy.weight.max(1) as f64
    }

    /// Recomputes the capability of the network per chip family.
    pub(crate) fn refresh_family_caps(&mut self) {
        let mut caps: BTreeMap<String, u64> = BTreeMap::new();
        for c in self.fleet.centers.values() {
            for p in &c.pools {
                let (family, tflops) = vendor_of(p.chip);
                *caps.entry(family.to_string()).or_default() += p.total_cards() * tflops as u64;
            }
        }
        self.family_caps = caps;
    }

    /// Price and expected start at every center that could take the job now or later, best
    /// first by the configured policy's score, and why the others cannot.
    pub(crate) fn quote_job(
        &self,
        job: &PendingJob,
        now: Timestamp,
    ) -> (Vec<Candidate>, Vec<crate::Rejection>) {
        let need = Need::new(&job.spec);
        let mut cands = self.candidates(&need, &job.tenant, now, None);
        self.score(&mut cands, job.spec.walltime, now);
        cands.sort_by(|a, b| {
            (a.score_milli, a.center, a.pool).cmp(&(b.score_milli, b.center, b.pool))
        });
        let have: FxSet<&CenterId> = cands.iter().map(|s| s.center).collect();
        let rejected = self
            .rejections(&need, &have, &mut Pass::default(), false)
            .to_vec();
        (cands.iter().map(|s| self.candidate(s)).collect(), rejected)
    }
}

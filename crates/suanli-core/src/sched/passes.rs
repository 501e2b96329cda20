//! A pass: per class, the suanli policy (fair share, scored placement, backfill, preemption) or
//! a baseline (strict FIFO, cheapest, least loaded), and the decision for one job.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Bound;

use suanli_types::{CenterId, JobId, PriorityClass, TenantId, Timestamp};

use crate::queue::{Entry, Key};
use crate::sched::memo::{Pass, Settled, WaitMemo, recycle};
use crate::sched::preempt::{PREEMPT_TRIES, Victims};
use crate::sched::scoring::{Choice, OTHERS_KEPT, Scored};
use crate::sched::vendor_of;
use crate::{Core, Decision, Placement, Policy};

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

/// What happened to one examined job.
enum Outcome {
    Placed(Box<Placement>),
    Waits,
}

impl Core {
    /// The pass for the configured policy.
    pub(crate) fn pass(&mut self, now: Timestamp) -> Vec<Placement> {
        self.clock = self.clock.max(now);
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
                Policy::Suanli => self.class_fair(class, now, &mut pass),
                Policy::Slurm => self.class_slurm(class, now, &mut pass),
                Policy::Tiresias => self.class_tiresias(class, now, &mut pass),
                Policy::Fastest => self.class_fastest(class, now, &mut pass),
                _ => self.class_fifo(class, now, &mut pass),
            };
            if stop {
                break;
            }
        }
        self.waiting = crate::sched::Waiting {
            reservations: std::mem::take(&mut pass.reservations),
        };
        // Preemptions freed cards mid-pass: do not carry conclusions drawn before them.
        let out = std::mem::take(&mut pass.placed);
        if out.iter().all(|p| p.preempted.is_empty()) {
            self.carry = Some(pass.memo);
        }
        out
    }

    /// Baseline policies: FIFO by seq within the class. Returns true to end the whole pass.
    fn class_fifo(&mut self, class: PriorityClass, now: Timestamp, pass: &mut Pass) -> bool {
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
                    pass.placed.push(p);
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
        let need = self.need(&entry.job.spec, entry.mask);
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
                Policy::Fastest => -(speed_milli(&need, s) as i64),
                _ => 1000 - (p.free_cards * 1000 / p.total_cards().max(1)) as i64,
            };
        }
        if policy == Policy::Fastest {
            fits.sort_by_key(|s| (s.score_milli, s.cost_per_hour.0));
        } else if policy == Policy::Cheapest {
            let free_of = |s: &Scored| self.fleet.centers[s.center].sku_free_of(s.pool);
            fits.sort_by_cached_key(|s| (s.score_milli, Reverse(free_of(s))));
        } else {
            fits.sort_by_key(|s| s.score_milli);
        }
        let choice = self.choose(&need, &fits[0], &fits[1..], now, pass);
        Some(self.place(class, key, choice, now, Vec::new()))
    }

    /// The class's tenants, and a heap of them by share (lowest first; ties by tenant id, the
    /// index, so passes are deterministic).
    fn tenants_by_share(
        &self,
        class: PriorityClass,
        now: Timestamp,
    ) -> (Vec<TenantId>, BinaryHeap<Reverse<(OrdF64, u32)>>) {
        let tenants: Vec<TenantId> = self.queue.tenants(class).keys().cloned().collect();
        let heap = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| Reverse((OrdF64(self.share_key(t, now)), i as u32)))
            .collect();
        (tenants, heap)
    }

    /// [`Policy::Fastest`] for one class: tenants in the order of their capability-normalised
    /// share (the same share the suanli policy orders by: cards x TFLOPS against the network's,
    /// decayed past usage, over the tenant's weight), so the tenant that has had the least
    /// throughput goes next (max-min, as Gavel's objective); within a tenant, its jobs in submit
    /// order, the first that fits now placed on the fastest free chip. A job that fits nowhere
    /// now does not hold back the tenant's next one. Returns true to end the whole pass.
    fn class_fastest(&mut self, class: PriorityClass, now: Timestamp, pass: &mut Pass) -> bool {
        let (tenants, mut heap) = self.tenants_by_share(class, now);
        let mut cursors: Vec<Option<Key>> = vec![None; tenants.len()];
        while let Some(Reverse((_, i))) = heap.pop() {
            let tenant = &tenants[i as usize];
            let keys: Vec<Key> = match self.queue.tenants(class).get(tenant) {
                Some(set) => match cursors[i as usize] {
                    Some(c) => set
                        .range((Bound::Excluded(c), Bound::Unbounded))
                        .copied()
                        .collect(),
                    None => set.iter().copied().collect(),
                },
                None => Vec::new(),
            };
            for key in keys {
                cursors[i as usize] = Some(key);
                pass.examined += 1;
                if pass.examined > self.config.max_examined_per_pass {
                    return true;
                }
                if let Some(p) = self.decide_simple(Policy::Fastest, class, key, now, pass) {
                    pass.placed.push(p);
                    // Its share grew: it goes back in line behind the others.
                    heap.push(Reverse((OrdF64(self.share_key(tenant, now)), i)));
                    break;
                }
            }
        }
        false
    }

    /// The suanli policy for one class: tenants by fair share, FIFO within a tenant, each job to
    /// its best-scoring pool, backfill behind reservations, preemption of lower work.
    fn class_fair(&mut self, class: PriorityClass, now: Timestamp, pass: &mut Pass) -> bool {
        let (tenants, mut heap) = self.tenants_by_share(class, now);
        let mut cursors: Vec<Option<Key>> = vec![None; tenants.len()];
        let preempting = self.config.preemption;
        let mut watch = Settled::new(self.queue.shapes(class), &pass.memo, preempting);
        if watch.all() {
            return false;
        }
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
                    if !self.skips(pass, entry, now) {
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
                    pass.placed.push(*p);
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
        if self.skips(pass, entry, now) {
            return Outcome::Waits;
        }
        let need = self.need(&entry.job.spec, entry.mask);
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
        let best_fitting = cands
            .iter()
            .filter(|s| s.fits_now)
            .map(|s| s.score_milli)
            .min();
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
        let waits = best_fitting.map(|alt| {
            let w = self.config.weights.wait;
            let wait = cands[0].expected_start.millis_since(now) as f64
                / (walltime.max(60) as f64 * 1000.0);
            let rest = cands[0].score_milli as f64 - w * wait * 1000.0;
            WaitMemo {
                walltime,
                uid: cands[0].uid,
                center: cands[0].center.clone(),
                pool: cands[0].pool,
                margin: if w > 0.0 {
                    (alt as f64 - rest) / 1000.0 / w
                } else {
                    f64::INFINITY
                },
            }
        });
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
            let rule = Victims::Suanli {
                class,
                tenant: &tenant,
            };
            match self.find_victims(&top, rule, fit, now) {
                Some((i, victims)) => {
                    pass.preemptions += victims.len();
                    let (center, pool, uid, _) = top[i].clone();
                    self.last_preempt.insert(uid, now);
                    pass.est.remove(&uid);
                    let entry = self.queue.at(class, &key).expect("still pending");
                    let need = self.need(&entry.job.spec, entry.mask);
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
        if !any_free {
            pass.memo.entry(shape).or_default().blocked = true;
        } else if any_fits {
            // It chose to wait for a better pool.
            pass.memo.entry(shape).or_default().waits = waits;
        }
        // It waits for its best pool: the first job to do so reserves it, so that later jobs
        // do not delay it (backfill); the others queue behind it.
        let (uid, at) = best;
        if let Some(entry) = self.queue.at(class, &key) {
            pass.wait_at(entry, uid, at, self.config.backfill);
        }
        if let Some(m) = pass.memo.get_mut(&shape) {
            m.reserves.get_or_insert((uid, at));
        }
        Outcome::Waits
    }

    /// Whether what this pass learned settles a job (it would only wait); if so, it waits where
    /// the first job of its shape waited, as it would have: a shape that fits nowhere waits for
    /// the pool its first job reserved; a shape that chose to wait for a better pool waits there
    /// while the expected wait, with the queue there, stays within the memo's margin.
    pub(super) fn skips(&self, pass: &mut Pass, entry: &Entry, now: Timestamp) -> bool {
        let Some(m) = pass.memo.get(&entry.shape) else {
            return false;
        };
        let spec = &entry.job.spec;
        let walltime = spec.walltime;
        let cards = spec.cards_per_node as u64 * spec.nodes as u64;
        let backfill = self.config.backfill;
        if m.blocked && m.no_victims {
            if let Some((uid, at)) = m.reserves {
                pass.wait_at(entry, uid, at, backfill);
            }
            return true;
        }
        let Some(w) = m.waits.as_ref().filter(|w| walltime >= w.walltime) else {
            return false;
        };
        let (uid, pool, margin) = (w.uid, w.pool, w.margin);
        let Some(c) = self.fleet.centers.get(&w.center) else {
            return false;
        };
        let fit = (spec.cards_per_node, spec.nodes);
        let free_now = self.free_ok_pool(&c.id, pool, (fit.0, fit.1, cards));
        let (fits_now, start) =
            self.start_at(Some(&mut *pass), c, pool, free_now, fit, walltime, now);
        let wait = start.millis_since(now) as f64 / (walltime.max(60) as f64 * 1000.0);
        if fits_now || wait >= margin {
            return false;
        }
        pass.wait_at(entry, uid, start, backfill);
        true
    }

    /// Takes the chosen pool's nodes for the job and records the run.
    pub(super) fn place(
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
}

/// How fast the candidate's chip runs the job, for [`Policy::Fastest`]: its certified speed for
/// a model job with measured speeds (the run time is shorter in proportion), else the chip's
/// FP16 TFLOPS x 1000 (the catalog's estimate).
fn speed_milli(need: &crate::filter::Need, s: &Scored) -> u64 {
    match s.run_secs {
        Some(run) => need.spec.walltime.saturating_mul(1_000_000) / run.max(1),
        None => u64::from(s.tflops) * 1000,
    }
}

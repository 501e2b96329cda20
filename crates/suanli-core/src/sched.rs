//! Scheduling passes: the suanli policy (fair share, scored placement, backfill, preemption) and
//! the baselines it is compared with (strict FIFO, cheapest, least loaded).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::ops::Bound;

use suanli_types::{CenterId, ChipCatalog, JobId, Money, PriorityClass, TenantId, Timestamp};

use crate::filter::{Mode, Need};
use crate::queue::Key;
use crate::{Candidate, Core, Decision, PendingJob, Placement, Policy, TenantPolicy};

/// A pool's release timeline: (end by wall time, node index, cards, job), by end.
pub(crate) type Timeline = Vec<(Timestamp, u32, u32, JobId)>;

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

/// What makes two pending jobs interchangeable for "does it fit anywhere now".
#[derive(Clone, PartialEq, Eq, Hash)]
struct Shape {
    mask: u64,
    k: u32,
    n: u32,
    max_price: Option<Money>,
    /// Tenants with quotas are judged alone (their quota differs).
    quota_tenant: Option<TenantId>,
}

/// A candidate pool while scoring (cheap to build: strings are made only for the decision).
struct Scored {
    center: CenterId,
    pool: usize,
    chip: Option<usize>,
    tflops: u32,
    price: Money,
    cost_per_hour: Money,
    cost_total: Money,
    expected_start: Timestamp,
    score_milli: i64,
    fits_now: bool,
    borrowed: bool,
}

/// Other candidates kept in a decision record.
const OTHERS_KEPT: usize = 10;

/// Per-pass memory.
#[derive(Default)]
struct Pass {
    /// (center, pool) -> (reserved start, reserved end) of the first job waiting for it.
    reservations: HashMap<(CenterId, usize), (Timestamp, Timestamp)>,
    /// (center, pool) -> (k, n) -> expected start; dropped for a pool when it changes.
    est: HashMap<(CenterId, usize), HashMap<(u32, u32), Timestamp>>,
    /// Shapes that fit nowhere now (ignoring reservations), and could not preempt.
    blocked: HashSet<Shape>,
    preemptions: usize,
    examined: usize,
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
        let mut pass = Pass::default();
        for class in PriorityClass::ALL {
            let stop = match self.config.policy {
                Policy::Suanli => self.class_fair(class, now, &mut pass, &mut out),
                _ => self.class_fifo(class, now, &mut pass, &mut out),
            };
            if stop {
                break;
            }
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
            if pass.examined > self.config.max_examined_per_pass {
                return true;
            }
            if free == 0 {
                return true;
            }
            match self.decide_simple(policy, class, key, now, pass) {
                Some(p) => {
                    free = free.saturating_sub(p.alloc.total_cards());
                    out.push(p);
                }
                // Strict FIFO: the first job that cannot start holds everyone behind it.
                None if policy == Policy::Fifo => return true,
                None => {}
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
        let need = Need::with_mask(&entry.job.spec, entry.mask);
        let shape = self.shape(&entry.job, entry.mask);
        if pass.blocked.contains(&shape) {
            return None;
        }
        let tenant = entry.job.tenant.clone();
        let mut fits = self.candidates(&need, &tenant, now, None);
        fits.retain(|s| s.fits_now);
        if fits.is_empty() {
            pass.blocked.insert(shape);
            return None;
        }
        // Centers come in id order; the policy's score (lower is better) sorts them stably.
        let free_of = |s: &Scored| self.fleet.centers[&s.center].sku_free_of(s.pool);
        for s in fits.iter_mut() {
            s.score_milli = match policy {
                Policy::Fifo => 0,
                Policy::Cheapest => s.cost_per_hour.0,
                _ => {
                    let p = &self.fleet.centers[&s.center].pools[s.pool];
                    1000 - (p.free_cards * 1000 / p.total_cards().max(1)) as i64
                }
            };
        }
        if policy == Policy::Cheapest {
            fits.sort_by_cached_key(|s| (s.score_milli, Reverse(free_of(s))));
        } else {
            fits.sort_by_key(|s| s.score_milli);
        }
        let chosen = fits.remove(0);
        Some(self.place(class, key, chosen, fits, now, Vec::new()))
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
        let mut heap: BinaryHeap<Reverse<(OrdF64, TenantId)>> = tenants
            .into_iter()
            .map(|t| Reverse((OrdF64(self.share_key(&t, now)), t)))
            .collect();
        let mut cursors: HashMap<TenantId, Key> = HashMap::new();
        while let Some(Reverse((_, tenant))) = heap.pop() {
            let next = self.queue.tenants(class).get(&tenant).and_then(|set| {
                match cursors.get(&tenant) {
                    Some(c) => set.range((Bound::Excluded(*c), Bound::Unbounded)).next(),
                    None => set.iter().next(),
                }
                .copied()
            });
            let Some(key) = next else { continue };
            cursors.insert(tenant.clone(), key);
            pass.examined += 1;
            if pass.examined > self.config.max_examined_per_pass {
                return true;
            }
            if let Outcome::Placed(p) = self.decide_fair(class, key, now, pass) {
                out.push(*p);
            }
            heap.push(Reverse((OrdF64(self.share_key(&tenant, now)), tenant)));
        }
        false
    }

    fn shape(&self, job: &PendingJob, mask: u64) -> Shape {
        let has_quota = self
            .tstate
            .get(&job.tenant)
            .is_some_and(|t| !t.policy.quotas.is_empty());
        Shape {
            mask,
            k: job.spec.cards_per_node,
            n: job.spec.nodes,
            max_price: job.spec.max_price_per_card_hour,
            quota_tenant: has_quota.then(|| job.tenant.clone()),
        }
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
        let shape = self.shape(&entry.job, entry.mask);
        if pass.blocked.contains(&shape) {
            return Outcome::Waits;
        }
        let need = Need::with_mask(&entry.job.spec, entry.mask);
        let walltime = entry.job.spec.walltime;
        let tenant = entry.job.tenant.clone();
        let mut cands = self.candidates(&need, &tenant, now, Some(pass));
        if cands.is_empty() {
            pass.blocked.insert(shape);
            return Outcome::Waits;
        }
        let fit = (need.k, need.n, need.total);
        let none_free = cands.iter().all(|s| !self.free_ok_at(s, fit));
        self.score(&mut cands, walltime, now);
        cands.sort_by(|a, b| {
            (a.score_milli, &a.center, a.pool).cmp(&(b.score_milli, &b.center, b.pool))
        });
        if cands[0].fits_now {
            let chosen = cands.remove(0);
            let pool = (chosen.center.clone(), chosen.pool);
            let placed = self.place(class, key, chosen, cands, now, Vec::new());
            pass.est.remove(&pool);
            return Outcome::Placed(Box::new(placed));
        }
        // Preemption: at the best pools first.
        if self.config.preemption
            && pass.preemptions < self.config.max_preemptions_per_pass
            && let Some((i, victims)) = self.find_victims(&cands, class, &tenant, fit, now)
        {
            pass.preemptions += victims.len();
            let chosen = cands.remove(i);
            let pool = (chosen.center.clone(), chosen.pool);
            let placement = self.place(class, key, chosen, cands, now, victims);
            self.last_preempt.insert(pool.clone(), now);
            pass.est.remove(&pool);
            return Outcome::Placed(Box::new(placement));
        }
        if none_free {
            pass.blocked.insert(shape);
        }
        // Reserve the best pool for this job so later jobs do not delay it (backfill).
        if self.config.backfill {
            let best = &cands[0];
            let at = best.expected_start;
            pass.reservations
                .entry((best.center.clone(), best.pool))
                .or_insert((at, at.plus_secs(walltime)));
        }
        Outcome::Waits
    }

    /// Does the pool have `n` nodes with `k` free cards (`total` = k x n) now?
    fn free_ok_at(&self, s: &Scored, (k, n, total): (u32, u32, u64)) -> bool {
        let p = &self.fleet.centers[&s.center].pools[s.pool];
        p.free_cards >= total && p.nodes_with_free(k) >= n
    }

    /// Every online pool that passes the hard filters and the tenant's quota, with whether it
    /// fits now (respecting reservations when `pass` is given) and its expected start.
    fn candidates(
        &self,
        need: &Need,
        tenant: &TenantId,
        now: Timestamp,
        mut pass: Option<&mut Pass>,
    ) -> Vec<Scored> {
        let walltime = need.spec.walltime;
        let ends = now.plus_secs(walltime);
        let state = self.tstate.get(tenant);
        let mut out = Vec::new();
        for c in self.fleet.centers.values().filter(|c| c.online) {
            for (pi, p) in c.pools.iter().enumerate() {
                if !need.static_ok(p) {
                    continue;
                }
                let (family, tflops) = vendor_of(p.chip);
                let mut borrowed = false;
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
                let free = need.free_ok(p);
                let key = (c.id.clone(), pi);
                let resv = pass
                    .as_ref()
                    .and_then(|ps| ps.reservations.get(&key).copied());
                let fits_now = free && resv.is_none_or(|(start, _)| ends <= start);
                let mut expected_start = now;
                if !fits_now {
                    let (k, n) = (need.k, need.n);
                    expected_start = match pass.as_mut() {
                        Some(ps) => *ps
                            .est
                            .entry(key.clone())
                            .or_default()
                            .entry((k, n))
                            .or_insert_with(|| self.estimate_start(&c.id, pi, k, n, now)),
                        None => self.estimate_start(&c.id, pi, k, n, now),
                    };
                    if let Some((_, resv_end)) = resv {
                        expected_start = expected_start.max(resv_end);
                    }
                }
                let cost_per_hour = need.cost(p);
                out.push(Scored {
                    center: key.0,
                    pool: pi,
                    chip: p.chip,
                    tflops,
                    price: p.price,
                    cost_per_hour,
                    cost_total: cost_per_hour.mul_div(walltime as i64, 3600),
                    expected_start,
                    score_milli: 0,
                    fits_now,
                    borrowed,
                });
            }
        }
        out
    }

    /// The record of a candidate for decisions and quotes.
    fn candidate(&self, s: &Scored) -> Candidate {
        let c = &self.fleet.centers[&s.center];
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
        let mut free: Vec<u32> = p.nodes.iter().map(|nd| nd.free()).collect();
        let mut count = free.iter().filter(|&&f| f >= k).count() as u32;
        if count >= n {
            return now;
        }
        let Some(events) = self.pool_runs.get(&(center.clone(), pool)) else {
            return Timestamp(now.0 + FAR);
        };
        for &(end, node, cards, _) in events {
            let i = node as usize;
            if i >= free.len() {
                continue;
            }
            let before = free[i];
            free[i] = (free[i] + cards).min(p.nodes[i].capacity);
            if before < k && free[i] >= k {
                count += 1;
                if count >= n {
                    return end.max(now);
                }
            }
        }
        Timestamp(now.0 + FAR)
    }

    /// Victims whose eviction lets the job fit now at one of the candidate pools (best first),
    /// or None. Victims: running work of a lower class, or borrowed work when this job is within
    /// its nominal quota; youngest first (they lose the least work).
    fn find_victims(
        &mut self,
        cands: &[Scored],
        class: PriorityClass,
        tenant: &TenantId,
        fit: (u32, u32, u64),
        now: Timestamp,
    ) -> Option<(usize, Vec<JobId>)> {
        let interval = self.config.preempt_interval_secs;
        for (i, s) in cands.iter().enumerate() {
            let key = (s.center.clone(), s.pool);
            if self
                .last_preempt
                .get(&key)
                .is_some_and(|t| now.millis_since(*t) < interval as i64 * 1000)
            {
                continue;
            }
            let mut eligible: Vec<(i64, JobId)> = self
                .pool_runs
                .get(&key)
                .into_iter()
                .flatten()
                .map(|&(_, _, _, job)| job)
                .collect::<BTreeSet<JobId>>()
                .into_iter()
                .filter_map(|job| {
                    let r = self.runs.get(&job)?;
                    // Never undo a decision of this same pass.
                    if r.started >= now {
                        return None;
                    }
                    let lower = r.job.spec.priority.rank() > class.rank();
                    let reclaim = r.borrowed && !s.borrowed && r.job.tenant != *tenant;
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
                if self.free_ok_at(s, fit) {
                    break;
                }
            }
            if self.free_ok_at(s, fit) {
                // Spare the victims that turned out not to be needed, oldest first.
                let mut victims = Vec::new();
                for (job, alloc) in taken.into_iter().rev() {
                    for nd in &alloc.nodes {
                        self.fleet.add_used(&alloc.center, &nd.node, nd.cards);
                    }
                    if !self.free_ok_at(s, fit) {
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
                if !self.free_ok_at(s, fit) {
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
            self.queue.insert(pending);
        }
    }

    /// Takes the chosen pool's nodes for the job and records the run.
    fn place(
        &mut self,
        class: PriorityClass,
        key: Key,
        chosen: Scored,
        others: Vec<Scored>,
        now: Timestamp,
        preempted: Vec<JobId>,
    ) -> Placement {
        let mut chosen_cand = self.candidate(&chosen);
        chosen_cand.expected_start = now;
        let mut have: BTreeSet<CenterId> = others.iter().map(|s| s.center.clone()).collect();
        have.insert(chosen.center.clone());
        let others: Vec<Candidate> = others
            .iter()
            .take(OTHERS_KEPT)
            .map(|s| self.candidate(s))
            .collect();
        let job = self
            .queue
            .remove_key(class, key)
            .expect("examined job is pending");
        let rejected = self.rejections(&job, &have);
        let (k, n) = (job.spec.cards_per_node, job.spec.nodes);
        let alloc = self.fleet.take(&chosen.center, chosen.pool, k, n);
        let placement = Placement {
            job: job.id,
            alloc: alloc.clone(),
            decision: Decision {
                at: now,
                chosen: chosen_cand,
                others,
                rejected,
            },
            preempted,
        };
        let cards = k * n;
        let (family, tflops) = vendor_of(chosen.chip);
        self.add_run(
            job,
            alloc,
            now,
            chosen.borrowed,
            family.to_string(),
            cards as u64 * tflops as u64,
            cards,
        );
        self.record_decision(&placement);
        placement
    }

    /// Every center with no pool among `have`, with its reason (as of now).
    fn rejections(&self, job: &PendingJob, have: &BTreeSet<CenterId>) -> Vec<crate::Rejection> {
        let need = Need::new(&job.spec);
        let mut out = Vec::new();
        for c in self.fleet.centers.values() {
            if have.contains(&c.id) {
                continue;
            }
            let reason = match crate::filter::evaluate(c, &need, Mode::Now) {
                Err(r) => r.render(&need),
                Ok(_) => "over the tenant's quota for this chip family".to_string(),
            };
            out.push(crate::Rejection {
                center: c.id.clone(),
                reason,
            });
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
        let t = self.tstate.entry(job.tenant.clone()).or_default();
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
                let v = self
                    .pool_runs
                    .entry((alloc.center.clone(), pi))
                    .or_default();
                let item = (end, ni as u32, nd.cards, id);
                let at = v.partition_point(|x| *x <= item);
                v.insert(at, item);
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
        for ((center, _), v) in self.pool_runs.iter_mut() {
            if *center == alloc.center {
                v.retain(|x| x.3 != id);
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
            (a.score_milli, &a.center, a.pool).cmp(&(b.score_milli, &b.center, b.pool))
        });
        let have: BTreeSet<CenterId> = cands.iter().map(|s| s.center.clone()).collect();
        let rejected = self.rejections(job, &have);
        (cands.iter().map(|s| self.candidate(s)).collect(), rejected)
    }
}

//! The scheduler core of suanli: a pure state machine that places pending AI jobs on computing
//! centers.
//!
//! [`Core`] holds the registered centers with their node pools and per-node card usage, the
//! pending queue, the allocations of placed or running jobs, and each tenant's fair-share and
//! quota state. It does no I/O, reads no clock (every time is passed in), starts no threads and
//! uses no randomness: the same calls in the same order always give the same placements, and
//! [`Core::decision_hash`] tells (the hub, the simulator and the tests drive this same code).
//! The hub registers centers, reports heartbeats as online/offline, sets tenant policies,
//! enqueues jobs, calls [`Core::schedule`] and hands the resulting [`Placement`]s to the site
//! agents (stopping the attempts of [`Placement::preempted`] jobs), and calls
//! [`Core::release`] when a job ends.
//!
//! A pass runs the configured [`Policy`]. The default, [`Policy::Suanli`], takes the classes in
//! order (public-service, standard, spot), tenants by fair share within a class and FIFO within
//! a tenant; it scores each job at every pool that passes the hard filters (see [`Weights`]),
//! preempts younger spot or borrowed work for a job that fits nowhere, and otherwise reserves
//! the job's best pool, which later jobs use only if they end before the reservation
//! (backfill). [`Policy::Fifo`], [`Policy::Cheapest`] and [`Policy::LeastLoaded`] are the
//! baselines it is compared with. See [`Core::schedule`].
//!
//! Modules: `config` (the policy, weights and tenant policies), `filter` (hard filters and reasons), `residency` (where datasets reside), `fleet` (centers, pools, nodes and free cards),
//! `queue` (the pending queue by class, tenant and job shape), `sched` (the passes: scoring,
//! memos and backfill, preemption, run bookkeeping). The behaviour tests are in
//! `tests/scheduler`, by subject.

mod certified;
mod config;
pub use certified::Certified;
pub use config::{CoreConfig, Policy, Quota, SlurmWeights, TenantPolicy, Weights};
pub use residency::Homes;
mod filter;
mod fleet;
mod queue;
mod residency;
mod sched;

use std::collections::BTreeMap;

use suanli_types::{
    CenterId, CenterSpec, ChipCatalog, JobId, JobSpec, Money, PriorityClass, TenantId, Timestamp,
};

use crate::filter::{Mode, Reason};
use crate::fleet::Fleet;
use crate::queue::Queue;

/// A job waiting for placement. `seq` orders FIFO within a priority class (lower = earlier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingJob {
    pub id: JobId,
    pub tenant: TenantId,
    /// FIFO order within the job's priority class; lower goes first (ties by job id).
    pub seq: u64,
    pub submitted_at: Timestamp,
    pub spec: JobSpec,
}

/// Cards held on one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAlloc {
    /// Node name, `{sku-lowercase}-{index}`, e.g. `rtx4090-0`.
    pub node: String,
    pub cards: u32,
}

/// What a placed or running job holds at one center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub center: CenterId,
    /// Chip SKU in the catalog's spelling, e.g. `Ascend910B3`.
    pub sku: String,
    /// One entry per node of the gang, in the order the scheduler chose them.
    pub nodes: Vec<NodeAlloc>,
}

impl Allocation {
    /// Cards over all nodes.
    pub fn total_cards(&self) -> u64 {
        self.nodes.iter().map(|n| n.cards as u64).sum()
    }
}

/// Why a center cannot take a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The center, or `*` when no center is registered at all.
    pub center: CenterId,
    /// Human-readable, e.g. `needs 16 cards per node, largest node has 8`.
    pub reason: String,
}

/// A pool that can take a job, with the numbers it was scored on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub center: CenterId,
    pub sku: String,
    /// List price of the pool.
    pub price_per_card_hour: Money,
    /// Price times the job's total cards.
    pub cost_per_hour: Money,
    /// Cost of the whole job for its wall-time limit (or, see `expected_run_secs`, its expected
    /// run time there).
    pub cost_total: Money,
    /// Free cards of that SKU at that center before placing.
    pub free_cards: u64,
    /// When the job could start there: now if it fits, else when running jobs' wall-time limits
    /// (and any reservation ahead) free enough nodes.
    pub expected_start: Timestamp,
    /// The policy's score, lower is better, in thousandths (suanli: see [`Weights`]).
    pub score_milli: i64,
    /// For a job that names a model with measured speeds: its expected run time there (the
    /// wall time at the slowest certified pool, shorter by the speed ratio elsewhere), which
    /// `cost_total` is for.
    pub expected_run_secs: Option<u64>,
}

/// Why a job went where it went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub at: Timestamp,
    pub chosen: Candidate,
    /// Pools that could take the job but lost on score, best first.
    pub others: Vec<Candidate>,
    /// Every center that could not take the job, with the reason, by center id. Shared between
    /// decisions of a pass that have the same rejections.
    pub rejected: std::sync::Arc<[Rejection]>,
}

/// A job placed by a scheduling pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub job: JobId,
    pub alloc: Allocation,
    pub decision: Decision,
    /// Running jobs evicted to make room: the core has released their cards and queued them
    /// again (same `seq`); the caller stops their attempts and records them as requeued.
    pub preempted: Vec<JobId>,
}

/// Capacity of one pool of one center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolCapacity {
    pub center: CenterId,
    pub sku: String,
    pub nodes: u32,
    pub cards_per_node: u32,
    pub total_cards: u64,
    pub free_cards: u64,
    pub price_per_card_hour: Money,
}

/// The scheduler state machine. See the crate documentation.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    fleet: Fleet,
    queue: Queue,
    allocations: BTreeMap<JobId, Allocation>,
    /// Placed and running jobs placed by this core (or restored with their job).
    runs: BTreeMap<JobId, sched::Run>,
    tstate: BTreeMap<TenantId, sched::TenantState>,
    /// Per pool uid, its release timeline: (end by wall time, node index, cards, job) of the
    /// allocations on it, by end.
    pool_runs: BTreeMap<u32, sched::Timeline>,
    /// Capability (cards x TFLOPS) of the network per chip family.
    family_caps: BTreeMap<String, u64>,
    /// When each pool last had jobs preempted.
    last_preempt: BTreeMap<u32, Timestamp>,
    /// The latest time the core has been told (by `schedule` or `quote`).
    clock: Timestamp,
    /// FNV-1a over every decision, in order: a replay of the same inputs gives the same hash.
    decision_hash: u64,
    /// The last pass's conclusions per job shape, while no cards have come free since.
    carry: Option<queue::FxMap<queue::Sid, sched::Memo>>,
    /// What the last pass left waiting at each pool (reservations and queued work).
    waiting: sched::Waiting,
    /// Tiresias: cards x seconds each job ran in attempts that ended (pending after preemption).
    attained: BTreeMap<JobId, u64>,
    /// Where each model is certified, by `name@revision`.
    certified: BTreeMap<String, Vec<Certified>>,
    /// Per model, the pools it may be placed on now (from `certified` and the centers' stack
    /// versions); a model not here may be placed nowhere.
    allowed: BTreeMap<String, certified::Allowed>,
    no_pools: certified::Allowed,
    /// Where each registered dataset resides.
    homes: residency::Homes,
}

/// Where a job could run and at what price, best first, and where it cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub candidates: Vec<Candidate>,
    pub rejected: Vec<Rejection>,
}

impl Core {
    /// An empty core: no centers, no jobs.
    pub fn new(config: CoreConfig) -> Core {
        Core {
            config,
            fleet: Fleet::default(),
            queue: Queue::default(),
            allocations: BTreeMap::new(),
            runs: BTreeMap::new(),
            tstate: BTreeMap::new(),
            pool_runs: BTreeMap::new(),
            family_caps: BTreeMap::new(),
            last_preempt: BTreeMap::new(),
            clock: Timestamp(0),
            decision_hash: FNV_OFFSET,
            carry: None,
            waiting: sched::Waiting::default(),
            attained: BTreeMap::new(),
            certified: BTreeMap::new(),
            allowed: BTreeMap::new(),
            no_pools: certified::Allowed::default(),
            homes: residency::Homes::default(),
        }
    }

    /// Sets a tenant's fair-share weight and quotas (tenants not set have weight 1, no quotas).
    pub fn set_tenant(&mut self, tenant: TenantId, policy: TenantPolicy) {
        self.carry = None;
        let before = self.alone(&tenant);
        self.tstate.entry(tenant.clone()).or_default().policy = policy;
        if self.alone(&tenant) != before {
            let alone = !before;
            self.queue.refile_tenant(&tenant, alone);
        }
    }

    /// Price and expected start of `job` at every center that could take it (now or later), best
    /// first by the policy's score, and each other center's reason. Changes nothing.
    pub fn quote(&self, job: &PendingJob, now: Timestamp) -> Quote {
        let (candidates, rejected) = self.quote_job(job, now);
        Quote {
            candidates,
            rejected,
        }
    }

    /// The tenant's fair-share standing: (its share, its entitled share) of the network's
    /// capability, over tenants with work pending or running.
    pub fn fair_share(&self, tenant: &TenantId, now: Timestamp) -> (f64, f64) {
        let key = self.share_key(tenant, now);
        let weight = self
            .tstate
            .get(tenant)
            .map_or(1, |t| t.policy.weight.max(1)) as f64;
        let mut active: std::collections::BTreeSet<&TenantId> = std::collections::BTreeSet::new();
        for class in PriorityClass::ALL {
            active.extend(self.queue.tenants(class).keys());
        }
        active.extend(self.runs.values().map(|r| &r.job.tenant));
        active.insert(tenant);
        let total_weight: f64 = active
            .iter()
            .map(|t| self.tstate.get(*t).map_or(1, |s| s.policy.weight.max(1)) as f64)
            .sum();
        (key * weight, weight / total_weight.max(1.0))
    }

    /// Hash of every decision so far (placements and preemptions, with their times and
    /// allocations). Two cores fed the same calls have the same hash.
    pub fn decision_hash(&self) -> u64 {
        self.decision_hash
    }

    fn record_decision(&mut self, p: &Placement) {
        let mut h = self.decision_hash;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= *b as u64;
                h = h.wrapping_mul(FNV_PRIME);
            }
        };
        eat(&p.decision.at.0.to_le_bytes());
        eat(&p.job.0.to_le_bytes());
        eat(p.alloc.center.as_str().as_bytes());
        eat(p.alloc.sku.as_bytes());
        for n in &p.alloc.nodes {
            eat(n.node.as_bytes());
            eat(&n.cards.to_le_bytes());
        }
        for v in &p.preempted {
            eat(&v.0.to_le_bytes());
        }
        self.decision_hash = h;
    }

    /// The settings the core was made with.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Adds or replaces a center from its registration.
    ///
    /// Node names are `{sku-lowercase}-{index}` per pool (e.g. `rtx4090-0`), index from 0 per
    /// pool; a second pool of the same SKU at one center continues the numbering so names stay
    /// unique. SKUs are matched to the builtin catalog ignoring case; a SKU not in the catalog
    /// makes a pool that no job matches.
    ///
    /// Replacing keeps existing allocations: cards in use carry over by node name, and a node
    /// that disappears (or shrinks) keeps its cards in use until they are released. Replacing
    /// keeps the online status; a new center starts offline. Cards restored earlier for this
    /// unregistered center are picked up now.
    pub fn upsert_center(&mut self, spec: &CenterSpec) {
        self.carry = None;
        self.fleet.upsert(spec);
        self.refresh_family_caps();
        self.reindex_runs();
        if !self.certified.is_empty() {
            self.refresh_allowed();
        }
    }

    /// Sets a center online or offline (from agent heartbeats). Offline centers get no new
    /// placements; their running jobs keep their allocations. Unknown centers are ignored.
    pub fn set_online(&mut self, center: &CenterId, online: bool) {
        if let Some(c) = self.fleet.centers.get_mut(center) {
            if c.online != online {
                self.carry = None;
            }
            c.online = online;
        }
    }

    /// Whether the center is registered and online.
    pub fn is_online(&self, center: &CenterId) -> bool {
        self.fleet.centers.get(center).is_some_and(|c| c.online)
    }

    /// Could any center ever hold this job, ignoring current load and online status?
    ///
    /// `Err` lists every center's reason, by center id; with no centers registered it is a single
    /// rejection for center `*`: `no centers are registered`.
    pub fn feasibility(&self, spec: &JobSpec) -> Result<(), Vec<Rejection>> {
        if self.fleet.centers.is_empty() {
            return Err(vec![Rejection {
                center: CenterId::new("*"),
                reason: "no centers are registered".to_string(),
            }]);
        }
        let need = self.need(spec, filter::chip_mask(spec));
        let mut rejected = Vec::new();
        for c in self.fleet.centers.values() {
            match filter::evaluate(c, &need, Mode::Ever) {
                Ok(_) => return Ok(()),
                Err(r) => rejected.push(Rejection {
                    center: c.id.clone(),
                    reason: r.render(&need),
                }),
            }
        }
        Err(rejected)
    }

    /// Adds a job to the pending queue. A pending job with the same id is replaced. A job that
    /// still holds an allocation is being requeued (lease lost, preempted): its allocation is
    /// released first; callers should normally [`release`](Core::release) it themselves.
    pub fn enqueue(&mut self, job: PendingJob) {
        self.release(job.id);
        let alone = self.alone(&job.tenant);
        self.queue.insert(job, alone);
    }

    /// Removes a pending job (cancel). Returns whether it was pending.
    pub fn remove_pending(&mut self, job: JobId) -> bool {
        self.queue.remove(job).is_some()
    }

    /// Records an allocation that exists already (hub restart: placed and running jobs). Its cards
    /// are marked used without a capacity check. An unknown center or node is still recorded, so
    /// that [`release`](Core::release) works and a later registration of the center counts the
    /// cards. The job leaves the pending queue, and an allocation it held before is replaced.
    pub fn restore_allocation(&mut self, job: JobId, alloc: Allocation) {
        self.carry = None;
        self.queue.remove(job);
        self.release(job);
        for n in &alloc.nodes {
            self.fleet.add_used(&alloc.center, &n.node, n.cards);
        }
        let end = Timestamp(self.clock.0.max(0) + 30 * 86_400 * 1000);
        self.index_run(job, &alloc, end);
        self.allocations.insert(job, alloc);
    }

    /// Like [`restore_allocation`](Core::restore_allocation), with the job itself and when it
    /// was placed, so the core can estimate when its cards come back, charge its tenant's share,
    /// and requeue it if it is preempted. Restored jobs are not treated as borrowed.
    pub fn restore_job(&mut self, job: PendingJob, alloc: Allocation, placed_at: Timestamp) {
        self.carry = None;
        self.queue.remove(job.id);
        self.release(job.id);
        for n in &alloc.nodes {
            self.fleet.add_used(&alloc.center, &n.node, n.cards);
        }
        let chip = ChipCatalog::builtin().get(&alloc.sku);
        let family = chip.map_or_else(String::new, |c| c.vendor.clone());
        let tflops = chip.map_or(1, |c| c.fp16_tflops.max(1)) as u64;
        let cards = alloc.total_cards() as u32;
        self.add_run(
            job,
            alloc,
            placed_at,
            false,
            family,
            cards as u64 * tflops,
            cards,
        );
    }

    /// Frees a job's cards (finished, lost, cancelled). Returns the allocation if the job held
    /// one.
    pub fn release(&mut self, job: JobId) -> Option<Allocation> {
        self.attained.remove(&job);
        self.release_run(job)
    }

    /// [`release`](Core::release), keeping what the job attained (it is queued again).
    pub(crate) fn release_run(&mut self, job: JobId) -> Option<Allocation> {
        let alloc = self.allocations.remove(&job)?;
        self.carry = None;
        for n in &alloc.nodes {
            self.fleet.remove_used(&alloc.center, &n.node, n.cards);
        }
        self.end_run(job, &alloc);
        Some(alloc)
    }

    /// One scheduling pass; returns the placements in decision order. Placed jobs leave the
    /// pending queue and their cards are used; jobs in [`Placement::preempted`] are pending again.
    ///
    /// Hard filters per pool, for every policy: the center is online; the pool's chip (builtin
    /// catalog) passes [`JobSpec::accepts_chip`]; list price at most `max_price_per_card_hour`;
    /// `nodes` distinct nodes with at least `cards_per_node` free cards each (a gang: all nodes
    /// at one center, all or nothing); the tenant's quota for the chip family (nominal plus
    /// borrowing limit). Within the pool, nodes are chosen by best fit (fewest free cards that
    /// still fit, ties by name) to limit fragmentation.
    ///
    /// [`Policy::Suanli`]: classes in order (public-service, standard, spot); within a class,
    /// tenants by fair share (dominant share of capability-normalised cards plus decayed past
    /// usage, over weight), FIFO within a tenant. Each job is scored at every candidate pool,
    /// including pools where it would have to wait (see [`Weights`]): if the best pool fits now
    /// the job goes there; if not, it may preempt younger spot or borrowed work (rate-limited), or
    /// it waits and reserves the best pool: later jobs use a reserved pool only if their wall-time
    /// limit ends before the reservation (backfill).
    ///
    /// Baselines: [`Policy::Fifo`] stops the pass at the first job that cannot start, and takes
    /// the first center in id order; [`Policy::Cheapest`] takes the lowest cost per hour among
    /// pools that fit now (ties: most free cards); [`Policy::LeastLoaded`] the least-loaded pool.
    /// Both skip jobs that do not fit and go on.
    pub fn schedule(&mut self, now: Timestamp) -> Vec<Placement> {
        self.pass(now)
    }

    /// For a pending job, a one-line explanation of why it waits right now, e.g. `needs 2 nodes x
    /// 8 free Ascend910B3 cards; best center sz-open-icc has 1 such node free; 3 jobs ahead in
    /// class standard`. `None` if the job is not pending.
    pub fn explain(&self, job: JobId) -> Option<String> {
        let entry = self.queue.get(job)?;
        let (same, higher) = self.queue.ahead(job)?;
        let mut ahead = format!(
            "{} ahead in class {}",
            plural_jobs(same),
            entry.job.spec.priority.as_str()
        );
        if higher > 0 {
            ahead.push_str(&format!(", {higher} in higher classes"));
        }
        if self.config.policy == Policy::Suanli {
            let (share, entitled) = self.fair_share(&entry.job.tenant, self.clock);
            if entitled > 0.0 && share > entitled * 1.005 {
                ahead.push_str(&format!(
                    "; tenant over its fair share by {:.0}%",
                    (share / entitled - 1.0) * 100.0
                ));
            }
        }
        if self.fleet.centers.is_empty() {
            return Some(format!("no centers are registered; {ahead}"));
        }
        let need = self.need(&entry.job.spec, entry.mask);
        // Where a pass would put it now, with the queues the last pass left at each pool.
        let standing = self.standing(entry, self.clock);
        let waits = standing.as_ref().map(|st| {
            let b = &st.best;
            let mut s = format!(
                "waits for {} ({}, {} per card-hour): expected start {} (in {})",
                b.center,
                b.sku,
                b.price_per_card_hour,
                b.expected_start,
                span(b.expected_start.millis_since(self.clock))
            );
            if st.queued.jobs > 0 {
                s.push_str(&format!(
                    ", behind {} waiting there",
                    plural_jobs(st.queued.jobs as usize)
                ));
            }
            if st.queued.card_secs > 0 {
                s.push_str(&format!(
                    " ({:.1} card-hours queued behind its reservation, by wall-time limits)",
                    st.queued.card_secs as f64 / 3600.0
                ));
            }
            s
        });
        if let (Some(st), Some(w)) = (&standing, &waits)
            && let Some(alt) = &st.fitting
        {
            let more = if st.best.cost_total.0 > 0 {
                (alt.cost_total.0 as f64 / st.best.cost_total.0 as f64 - 1.0) * 100.0
            } else {
                0.0
            };
            return Some(format!(
                "{w}; {} ({}) fits now but costs {more:.0}% more, and the wait is worth less \
                 (weights: cost {}, wait {}); {ahead}",
                alt.center, alt.sku, self.config.weights.cost, self.config.weights.wait
            ));
        }
        let mut busy: Option<(&CenterId, String, u32)> = None;
        let mut offline = Vec::new();
        let mut never = Vec::new();
        let state = self.tstate.get(&entry.job.tenant);
        let mut over_quota: Vec<String> = Vec::new();
        for c in self.fleet.centers.values() {
            match filter::evaluate(c, &need, Mode::Now) {
                Ok(pools) => {
                    // Free now, unless the tenant's quota for that chip family is used up.
                    let family = pools.iter().find_map(|&i| {
                        let chip = c.pools[i].chip?;
                        let vendor = &ChipCatalog::builtin().all()[chip].vendor;
                        let q = state?.policy.quotas.get(vendor)?;
                        let used = state?.running_cards.get(vendor).copied().unwrap_or(0) as u64;
                        (used + need.total > q.nominal as u64 + q.borrow_limit as u64).then(|| {
                            format!(
                                "{vendor} quota ({} + {} borrowable cards, {used} in use)",
                                q.nominal, q.borrow_limit
                            )
                        })
                    });
                    match family {
                        Some(f) => {
                            if !over_quota.contains(&f) {
                                over_quota.push(f);
                            }
                        }
                        None => {
                            if let Some(w) = &waits {
                                return Some(format!(
                                    "{w}; the free cards are held for jobs ahead of it; {ahead}"
                                ));
                            }
                            return Some(format!(
                                "fits now at {} ({}); waits for the next scheduling pass; {ahead}",
                                c.id, c.pools[pools[0]].sku
                            ));
                        }
                    }
                }
                Err(Reason::Busy { sku, free_nodes }) => {
                    if busy.as_ref().is_none_or(|b| free_nodes > b.2) {
                        busy = Some((&c.id, sku, free_nodes));
                    }
                }
                Err(Reason::Offline) => offline.push(c.id.as_str()),
                Err(r) => never.push(format!("{}: {}", c.id, r.render(&need))),
            }
        }
        let text = if !over_quota.is_empty() {
            format!("tenant's {} is used up; {ahead}", over_quota.join(", "))
        } else if let Some((center, sku, free_nodes)) = busy {
            let when = waits.map(|w| format!("; {w}")).unwrap_or_default();
            format!(
                "needs {}; best center {center} has {free_nodes} such {} free{when}; {ahead}",
                need.shape_text(&sku),
                if free_nodes == 1 { "node" } else { "nodes" }
            )
        } else if !offline.is_empty() {
            format!(
                "every center that could hold it is offline ({}); {ahead}",
                list_some(&offline, ", ")
            )
        } else {
            format!("no center can ever hold it: {}", list_some(&never, "; "))
        };
        Some(text)
    }

    /// Number of pending jobs.
    pub fn pending_len(&self) -> usize {
        self.queue.len()
    }

    /// Whether the job is pending.
    pub fn is_pending(&self, job: JobId) -> bool {
        self.queue.contains(job)
    }

    /// The pending job with this id.
    pub fn pending_job(&self, job: JobId) -> Option<&PendingJob> {
        self.queue.get(job).map(|e| &e.job)
    }

    /// The allocation a placed or running job holds.
    pub fn allocation(&self, job: JobId) -> Option<&Allocation> {
        self.allocations.get(&job)
    }

    /// All allocations, by job id.
    pub fn allocations(&self) -> impl Iterator<Item = (JobId, &Allocation)> {
        self.allocations.iter().map(|(j, a)| (*j, a))
    }

    /// Capacity per center and pool, sorted by center id then SKU (pools of one SKU in
    /// registration order).
    pub fn capacity(&self) -> Vec<PoolCapacity> {
        let mut out = Vec::new();
        for c in self.fleet.centers.values() {
            let start = out.len();
            out.extend(c.pools.iter().map(|p| PoolCapacity {
                center: c.id.clone(),
                sku: p.sku.clone(),
                nodes: p.nodes.len() as u32,
                cards_per_node: p.cards_per_node,
                total_cards: p.total_cards(),
                free_cards: p.free_cards,
                price_per_card_hour: p.price,
            }));
            out[start..].sort_by(|a, b| a.sku.cmp(&b.sku));
        }
        out
    }

    /// Self-check for tests: per node, used cards are at most its capacity (except where a
    /// restored allocation or a re-registration put it over), used cards equal the sum of the
    /// allocations, the free-card indexes agree, and no job is both pending and allocated.
    /// Panics with a message on a violation.
    pub fn sanity_check(&self) {
        let mut expected: BTreeMap<(CenterId, String), u64> = BTreeMap::new();
        for a in self.allocations.values() {
            for n in &a.nodes {
                *expected
                    .entry((a.center.clone(), n.node.clone()))
                    .or_default() += n.cards as u64;
            }
        }
        self.fleet.check(&mut expected);
        if let Some(((center, node), cards)) = expected.iter().find(|(_, c)| **c > 0) {
            panic!("allocations hold {cards} cards on {node} at {center} that are not counted");
        }
        for id in self.queue.check() {
            assert!(
                !self.allocations.contains_key(&id),
                "job {id} is both pending and allocated"
            );
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn plural_jobs(n: usize) -> String {
    if n == 1 {
        "1 job".to_string()
    } else {
        format!("{n} jobs")
    }
}

/// A duration for people: `45s`, `12m`, `3h 20m`, `2d 4h`.
fn span(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Up to three items, then "and N more".
fn list_some<S: AsRef<str>>(items: &[S], sep: &str) -> String {
    let shown: Vec<&str> = items.iter().take(3).map(AsRef::as_ref).collect();
    let mut s = shown.join(sep);
    if items.len() > 3 {
        s.push_str(&format!("{sep}and {} more", items.len() - 3));
    }
    s
}

//! Scheduling passes: the suanli policy (fair share, scored placement, backfill, preemption) and
//! the baselines it is compared with (strict FIFO, cheapest, least loaded).
//!
//! - [`passes`]: a pass, per class and policy, and the decision for one job;
//! - [`memo`]: what a pass remembers (backfill reservations, what it learned per job shape);
//! - [`scoring`]: candidate pools, their scores and expected starts, the rejected centers;
//! - [`preempt`]: the victims for a job that fits nowhere;
//! - this module: what the core keeps of placed jobs and tenants (release timelines, fair share).

mod baselines;
mod memo;
mod passes;
mod preempt;
mod scoring;

use std::collections::{BTreeMap, BTreeSet};

use suanli_types::{ChipCatalog, JobId, TenantId, Timestamp};

use crate::{Core, PendingJob, TenantPolicy};

pub(crate) use memo::{Memo, Waiting};

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
    /// Whether the tenant's jobs are judged apart from others of the same shape (it has quotas
    /// or vouchers, so it sees the network differently).
    pub(crate) fn alone(&self, tenant: &TenantId) -> bool {
        self.tstate
            .get(tenant)
            .is_some_and(|t| !t.policy.quotas.is_empty() || !t.policy.pays_bp.is_empty())
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
        if self.config.policy == crate::Policy::Tiresias {
            let secs = now.millis_since(run.started) as u64 / 1000;
            *self.attained.entry(id).or_default() += run.cards as u64 * secs;
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
}

//! Preemption: the running work a job that fits nowhere may evict, youngest first.

use suanli_types::{CenterId, JobId, PriorityClass, TenantId, Timestamp};

use crate::Core;

/// Pools tried for preemption, best first.
pub(super) const PREEMPT_TRIES: usize = 3;

/// Which running jobs a job may evict.
#[derive(Clone, Copy)]
pub(super) enum Victims<'a> {
    /// suanli: work of a lower class than `class`, or borrowed work of another tenant when the
    /// job is within its nominal quota at the pool.
    Suanli {
        class: PriorityClass,
        tenant: &'a TenantId,
    },
    /// Tiresias: work at a lower priority level (more attained service) than `level`.
    Tiresias { level: usize },
}

impl Core {
    /// Victims whose eviction lets the job fit now at one of the `top` pools (best first), or
    /// None. Victims as `rule` says; youngest first (they lose the least work), never work
    /// placed in this pass.
    pub(super) fn find_victims(
        &mut self,
        top: &[(CenterId, usize, u32, bool)],
        rule: Victims,
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
                    let ok = match rule {
                        Victims::Suanli { class, tenant } => {
                            let lower = r.job.spec.priority.rank() > class.rank();
                            lower || (r.borrowed && !borrowing && r.job.tenant != *tenant)
                        }
                        Victims::Tiresias { level } => self.level(job, now) > level,
                    };
                    ok.then(|| (now.millis_since(r.started), job))
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
    pub(super) fn evict(&mut self, job: JobId) {
        if let Some(run) = self.runs.get(&job) {
            let pending = run.job.clone();
            self.release_run(job);
            let alone = self.alone(&pending.tenant);
            self.queue.insert(pending, alone);
        }
    }
}

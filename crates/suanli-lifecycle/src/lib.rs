//! The job lifecycle of suanli, pure: no I/O, no clock (`now` is an argument), no async.
//!
//! A [`Lifecycle`] owns the scheduler [`Core`], the money [`Books`] and every unfinished job, and
//! moves jobs through their states:
//!
//! ```text
//! submitted ─► queued ─► placed ─► running ─► succeeded | failed | cancelled | timed-out
//!                ▲         │          │
//!                └─────────┴──────────┘   lease lost, evicted (preempted, drained) or stopped
//!                                         by the site: attempt + 1
//! ```
//!
//! Each transition is two steps, like the books' records: a method that looks at the state and
//! returns a [`Change`] (the job row, history line, attempt row and bill line to persist, in one
//! transaction), and [`Lifecycle::apply`], called once the change is durable, which changes the
//! memory and the core. A caller that cannot persist a change drops it (a placement is handed
//! back with [`Lifecycle::abandon_placement`]). Billing is the one exception to "nothing changes
//! before apply": the books take a bill line when it is made (as [`Books::bill`] does), so a
//! caller whose write of money records failed rebuilds the books with [`Lifecycle::reload_books`].
//!
//! The hub drives it behind its store; a simulator can drive it with a virtual clock and no
//! store at all (write nothing, apply every change).

mod change;
mod gate;
mod meter;
mod transitions;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use change::Effect;
pub use change::{BillNote, Change, JobWrite, metered};
pub use gate::{Gate, HoldError};
use suanli_core::{Allocation, Core, CoreConfig, NodeAlloc, PendingJob, Placement, TenantPolicy};
use suanli_money::{Books, Parties};
use suanli_types::record::{JobRecord, PlacementDecision};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, TenantCategory, TenantId, Timestamp};
pub use transitions::{Ended, Report, StopError, SubmitError};
pub use validate::{
    AttemptFacts, Claim, InvalidReport, Metered, ReportBounds, check_finish, check_start, priced_at,
};

/// How a placement is written into the job record (the hub names the rule its policy scores by).
pub type Describe = Box<dyn Fn(&Placement, u32) -> Option<PlacementDecision> + Send + Sync>;

/// An attempt a site must stop: `(job, attempt)`.
pub type AttemptKey = (JobId, u32);

/// A job in memory: every unfinished job, plus cancelled jobs whose attempt still holds cards
/// until the site confirms it stopped or the lease runs out.
#[derive(Clone, Debug)]
struct Live {
    rec: JobRecord,
    /// When the current attempt's lease ends (placed or running jobs).
    lease: Option<Timestamp>,
    /// Cancelled while placed or running: the cards stay held until the site reports the end.
    zombie: bool,
    /// When the current attempt started, as its site reported (for metering a lost attempt).
    started: Option<Timestamp>,
    /// The last heartbeat that listed the current attempt (not kept across restarts).
    last_seen: Option<Timestamp>,
    /// When the current attempt was placed.
    placed_at: Timestamp,
}

impl Live {
    fn new(rec: JobRecord) -> Live {
        let placed_at = rec.submitted_at;
        Live {
            rec,
            lease: None,
            zombie: false,
            started: None,
            last_seen: None,
            placed_at,
        }
    }

    /// Placed or running, not cancelled, at `center`.
    fn is_active_at(&self, center: &CenterId) -> bool {
        !self.zombie && self.rec.state.is_active() && self.rec.center.as_ref() == Some(center)
    }

    /// The attempt is gone: no lease, no start, not seen.
    fn reset_attempt(&mut self) {
        self.lease = None;
        self.started = None;
        self.last_seen = None;
    }
}

/// Every unfinished job, the scheduler core and the books. See the crate documentation.
pub struct Lifecycle {
    core: Core,
    books: Books,
    parties: Parties,
    jobs: BTreeMap<JobId, Live>,
    /// Evicted attempts each site must stop, until it stops listing them or the time passes.
    kills: BTreeMap<CenterId, BTreeMap<AttemptKey, Timestamp>>,
    lease_ttl_ms: i64,
    describe: Describe,
    /// Something changed that a scheduling pass could act on.
    dirty: bool,
    /// The last attempt of jobs that ended, and where (at most [`ENDED_KEPT`], the newest
    /// jobs), so that retried and stale reports are told apart in memory.
    ended: BTreeMap<JobId, (u32, CenterId)>,
    /// How far a site's report may stray from the hub's record.
    bounds: ReportBounds,
    /// Queued jobs kept out of the core's queue until [`Lifecycle::review`] lets them in (held,
    /// before their begin time, waiting for other jobs or their array's limit).
    gated: BTreeSet<JobId>,
    /// How jobs that left the lifecycle ended (at most [`ENDED_KEPT`], the newest), for the
    /// dependencies on them.
    finals: BTreeMap<JobId, JobState>,
}

/// Ended jobs remembered for telling retried reports from stale ones.
const ENDED_KEPT: usize = 100_000;

/// Where a report's attempt stands, as seen from the reporting center.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// The job's current attempt, at this center.
    Current,
    /// The job's last attempt, at this center, which has ended: a retried report.
    EndedHere,
    /// The job's current or last attempt, placed at another center: this center has no say.
    Elsewhere,
    /// An earlier attempt, or a job the hub does not know (or has forgotten).
    Stale,
}

/// A job as it stands in the lifecycle.
#[derive(Clone, Copy, Debug)]
pub struct JobView<'a> {
    pub rec: &'a JobRecord,
    /// When the current attempt's lease ends.
    pub lease: Option<Timestamp>,
    /// Cancelled, its attempt not yet confirmed stopped.
    pub cancelled: bool,
}

impl Lifecycle {
    /// An empty lifecycle over `books` and `parties` (tenant categories for vouchers); placements
    /// are written into job records by `describe`.
    pub fn new(
        core: CoreConfig,
        lease_ttl: Duration,
        books: Books,
        parties: Parties,
        describe: Describe,
    ) -> Lifecycle {
        Lifecycle {
            core: Core::new(core),
            books,
            parties,
            jobs: BTreeMap::new(),
            kills: BTreeMap::new(),
            lease_ttl_ms: lease_ttl.as_millis() as i64,
            describe,
            dirty: true,
            ended: BTreeMap::new(),
            bounds: ReportBounds::default(),
            gated: BTreeSet::new(),
            finals: BTreeMap::new(),
        }
    }

    /// Sets how far a site's report may stray from the hub's record.
    pub fn set_report_bounds(&mut self, bounds: ReportBounds) {
        self.bounds = bounds;
    }

    /// Takes back a stored unfinished job after a restart. Queued jobs are queued again (call in
    /// id order); placed, running and cancelled-but-unconfirmed jobs keep their cards and get one
    /// lease period from `now` for their site to report in. `placed_at` is when the current
    /// attempt was placed; `started` when a cancelled job's attempt started (running jobs carry
    /// it in their record).
    pub fn restore(
        &mut self,
        rec: JobRecord,
        placed_at: Timestamp,
        started: Option<Timestamp>,
        now: Timestamp,
    ) {
        let zombie = rec.state == JobState::Cancelled;
        let lease = match rec.state {
            JobState::Placed | JobState::Running | JobState::Cancelled => {
                if let Some(center) = rec.center.clone() {
                    let alloc = Allocation {
                        center,
                        sku: rec.sku.clone().unwrap_or_default(),
                        nodes: rec
                            .alloc
                            .iter()
                            .map(|n| NodeAlloc {
                                node: n.node.clone(),
                                cards: n.cards,
                            })
                            .collect(),
                    };
                    if zombie {
                        self.core.restore_allocation(rec.id, alloc);
                    } else {
                        self.core.restore_job(pending(&rec), alloc, placed_at);
                    }
                }
                let restart_lease = self.lease_from(now);
                Some(
                    rec.lease_expires_at
                        .map_or(restart_lease, |l| l.max(restart_lease)),
                )
            }
            _ => None,
        };
        let started = match rec.state {
            JobState::Running => rec.started_at,
            JobState::Cancelled => started,
            _ => None,
        };
        self.dirty = true;
        let live = Live {
            rec,
            lease,
            zombie,
            started,
            last_seen: None,
            placed_at,
        };
        if lease.is_none() {
            self.queue_or_gate(&live);
        }
        self.jobs.insert(live.rec.id, live);
    }

    // ---------------------------------------------------------------- reading

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn books(&self) -> &Books {
        &self.books
    }

    pub fn parties(&self) -> &Parties {
        &self.parties
    }

    /// A job in the lifecycle (unfinished, or cancelled and still holding cards).
    pub fn job(&self, id: JobId) -> Option<JobView<'_>> {
        self.jobs.get(&id).map(view)
    }

    /// Every job in the lifecycle, by id.
    pub fn jobs(&self) -> impl Iterator<Item = JobView<'_>> {
        self.jobs.values().map(view)
    }

    /// When the current attempt of each job started, if it did (what a restart would read from
    /// the attempt rows).
    pub fn started(&self, id: JobId) -> Option<Timestamp> {
        self.jobs.get(&id).and_then(|l| l.started)
    }

    /// When the current attempt of a job was placed.
    pub fn placed_at(&self, id: JobId) -> Option<Timestamp> {
        self.jobs.get(&id).map(|l| l.placed_at)
    }

    /// Whether something changed that a scheduling pass could act on.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Asks for a scheduling pass.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Placed (not yet started) attempts at `center`, by job id, with their leases.
    pub fn placed_at_center(&self, center: &CenterId) -> Vec<JobView<'_>> {
        self.jobs
            .values()
            .filter(|l| {
                !l.zombie
                    && l.rec.state == JobState::Placed
                    && l.rec.center.as_ref() == Some(center)
            })
            .map(view)
            .collect()
    }

    /// Attempts at `center` the site must stop: cancelled ones whose stop it has not confirmed,
    /// and evicted ones it still runs; sorted.
    pub fn to_stop(&self, center: &CenterId) -> Vec<AttemptKey> {
        let mut out: Vec<AttemptKey> = self
            .jobs
            .iter()
            .filter(|(_, l)| l.zombie && l.rec.center.as_ref() == Some(center))
            .map(|(id, l)| (*id, l.rec.attempt))
            .collect();
        out.extend(
            self.kills
                .get(center)
                .into_iter()
                .flat_map(|m| m.keys().copied()),
        );
        out.sort();
        out.dedup();
        out
    }

    /// Is this report about the current attempt of a job at this center?
    pub fn is_current(&self, center: &CenterId, job: JobId, attempt: u32) -> bool {
        self.jobs.get(&job).is_some_and(|l| {
            l.rec.attempt == attempt
                && l.rec.center.as_ref() == Some(center)
                && (l.rec.state.is_active() || l.zombie)
        })
    }

    /// Where `(job, attempt)` stands for a report from `center`; decided in memory.
    pub fn standing(&self, center: &CenterId, job: JobId, attempt: u32) -> Standing {
        if self.is_current(center, job, attempt) {
            return Standing::Current;
        }
        let placed = match self.jobs.get(&job) {
            Some(l) if l.rec.attempt == attempt && (l.rec.state.is_active() || l.zombie) => {
                l.rec.center.as_ref()
            }
            Some(_) => None,
            None => self
                .ended
                .get(&job)
                .filter(|(a, _)| *a == attempt)
                .map(|(_, c)| c),
        };
        match placed {
            Some(c) if c != center => Standing::Elsewhere,
            Some(_) => Standing::EndedHere,
            None => Standing::Stale,
        }
    }

    // ---------------------------------------------------------------- what the core is told

    /// Sets a tenant's weight, quotas and prices after vouchers in the core.
    pub fn set_tenant(&mut self, tenant: TenantId, policy: TenantPolicy) {
        self.core.set_tenant(tenant, policy);
        self.dirty = true;
    }

    /// Gives the core a center's definition (with the prices in force).
    pub fn upsert_center(&mut self, spec: &CenterSpec) {
        self.core.upsert_center(spec);
        self.dirty = true;
    }

    /// Tells the core where a model (`name@revision`) is certified, for the jobs that name it.
    /// Whether that changed anything.
    pub fn set_certified(&mut self, model: &str, certified: Vec<suanli_core::Certified>) -> bool {
        let changed = self.core.set_certified(model, certified);
        self.dirty |= changed;
        changed
    }

    /// Tells the core which centers hold `dataset`, for the jobs that read it. Whether that
    /// changed anything.
    pub fn set_dataset_homes(&mut self, dataset: &str, homes: Vec<CenterId>) -> bool {
        let changed = self.core.set_dataset_homes(dataset, homes);
        self.dirty |= changed;
        changed
    }

    /// Opens or closes a center to new work.
    pub fn set_online(&mut self, center: &CenterId, open: bool) {
        self.core.set_online(center, open);
    }

    /// A tenant's category, for vouchers.
    pub fn add_tenant(&mut self, tenant: TenantId, category: TenantCategory) {
        self.parties.categories.insert(tenant, category);
    }

    /// The books, for the operator's money changes (prices, programmes, grants, budgets); their
    /// records must be persisted like a change's.
    pub fn books_mut(&mut self) -> &mut Books {
        &mut self.books
    }

    /// Replaces the books with the ones persisted, after a write of money records failed.
    pub fn reload_books(&mut self, books: Books) {
        self.books = books;
    }

    // ---------------------------------------------------------------- applying

    /// Applies a change once it is durable.
    pub fn apply(&mut self, change: Change) {
        let id = change.job;
        let rec = change.write.map(|w| w.rec);
        if let Some(r) = &rec {
            self.note_final(id, r.state);
        }
        match change.effect {
            Effect::Dropped => {
                self.core.remove_pending(id);
                self.gated.remove(&id);
                self.jobs.remove(&id);
                self.dirty = true;
            }
            Effect::Held => {
                self.core.remove_pending(id);
                self.gated.insert(id);
                self.live_mut(id).rec = rec.expect("a hold writes the job");
            }
            Effect::Released => {
                self.live_mut(id).rec = rec.expect("a release writes the job");
                self.dirty = true;
            }
            Effect::Withdrawn {
                center,
                attempt,
                until,
            } => {
                self.kills
                    .entry(center)
                    .or_default()
                    .insert((id, attempt), until);
                self.core.release(id);
                self.jobs.remove(&id);
                self.dirty = true;
            }
            Effect::Zombie => {
                let live = self.live_mut(id);
                live.rec = rec.expect("a cancel writes the job");
                live.zombie = true;
            }
            Effect::Placed { lease, at } => {
                let live = self.live_mut(id);
                live.rec = rec.expect("a placement writes the job");
                live.reset_attempt();
                live.lease = Some(lease);
                live.placed_at = at;
            }
            Effect::Running { lease, started } => {
                let live = self.live_mut(id);
                live.rec = rec.expect("a start writes the job");
                live.lease = Some(lease);
                live.started = Some(started);
            }
            Effect::Unqueued => {
                self.core.remove_pending(id);
            }
            Effect::NoteStart(started) => {
                self.live_mut(id).started.get_or_insert(started);
            }
            Effect::Ended => {
                self.core.release(id);
                if let Some(l) = self.jobs.remove(&id)
                    && let Some(c) = l.rec.center
                {
                    self.ended.insert(id, (l.rec.attempt, c));
                    if self.ended.len() > ENDED_KEPT {
                        self.ended.pop_first();
                    }
                }
                self.dirty = true;
            }
            Effect::Requeued => {
                self.core.release(id);
                let rec = rec.expect("a requeue writes the job");
                self.core.enqueue(pending(&rec));
                let live = self.live_mut(id);
                live.rec = rec;
                live.reset_attempt();
                self.dirty = true;
            }
            Effect::Evicted {
                center,
                until,
                core,
            } => {
                if let Some((c, attempt)) = center {
                    self.kills
                        .entry(c)
                        .or_default()
                        .insert((id, attempt), until);
                }
                let rec = rec.expect("an eviction writes the job");
                if core {
                    self.core.release(id);
                    self.core.enqueue(pending(&rec));
                }
                let live = self.live_mut(id);
                live.rec = rec;
                live.reset_attempt();
                if core {
                    self.dirty = true;
                }
            }
        }
    }

    /// A placement that was not recorded (its write failed, or [`place`](Lifecycle::place)
    /// refused it): its cards are freed, and a queued job goes back to the queue as it was.
    pub fn abandon_placement(&mut self, id: JobId) {
        self.core.release(id);
        if let Some(l) = self.jobs.get(&id)
            && !l.zombie
            && l.rec.state == JobState::Queued
        {
            self.core.enqueue(pending(&l.rec));
        }
        self.dirty = true;
    }

    /// Runs one scheduling pass of the core at `now`. Every placement must be recorded
    /// ([`place`](Lifecycle::place)) or abandoned, and every preempted job evicted
    /// ([`preempt`](Lifecycle::preempt)).
    pub fn schedule(&mut self, now: Timestamp) -> Vec<Placement> {
        self.dirty = false;
        self.core.schedule(now)
    }

    fn live_mut(&mut self, id: JobId) -> &mut Live {
        self.jobs
            .get_mut(&id)
            .expect("a change applies to a job in the lifecycle")
    }

    fn lease_from(&self, at: Timestamp) -> Timestamp {
        at.plus_millis(self.lease_ttl_ms)
    }
}

fn view(l: &Live) -> JobView<'_> {
    JobView {
        rec: &l.rec,
        lease: l.lease,
        cancelled: l.zombie,
    }
}

/// The core's view of a queued job.
pub fn pending(rec: &JobRecord) -> PendingJob {
    PendingJob {
        id: rec.id,
        tenant: rec.tenant.clone(),
        seq: rec.id.0 as u64,
        submitted_at: rec.submitted_at,
        spec: rec.spec.clone(),
    }
}

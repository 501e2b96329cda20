//! The discrete-event engine: replays mapped jobs through the job lifecycle
//! ([`suanli_lifecycle::Lifecycle`], which owns the scheduler core and the books) in virtual time,
//! as the hub drives it: the same transitions, the same metering and billing.
//!
//! Events are submits (taken from the job list, which is sorted by submit time), finishes (a
//! binary heap keyed by time, job and attempt) and center faults ([`crate::faults`]). At each
//! distinct event time the engine applies every event at that time (finishes first, then faults,
//! then submits), then runs one scheduling pass. A site starts an attempt the moment it is
//! placed (the engine reports the start at once) and reports its end at
//! `start + min(runtime, walltime)`; a job whose runtime exceeds its walltime ends there as timed
//! out. A preempted job's attempt ends at once (its work is lost: the next attempt runs the whole
//! runtime again); the finish event of the old attempt is ignored when it comes, because the
//! job's current attempt is no longer that one.
//!
//! Sites that are up heartbeat all the time. A failed center's site stops at the failure: its
//! last heartbeat lists what it ran then, its finish reports never come, and one lease later the
//! hub's tick finds those attempts lost ([`Lifecycle::expire`]): metered up to that heartbeat and
//! queued again with the next attempt number. A drain hands every attempt at the center back
//! ([`Lifecycle::hand_back`]), metered up to the drain. Lease times only matter there: without
//! faults the engine never looks at leases.
//!
//! The engine reads the real clock only to measure itself (wall time of the run and of the
//! scheduling passes); virtual time never depends on it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use suanli_core::{CoreConfig, Placement, Policy};
use suanli_lifecycle::{AttemptKey, Change, Ended, Lifecycle, Report, SubmitError};
use suanli_money::{Books, Parties};
use suanli_types::record::JobRecord;
use suanli_types::{CenterId, CenterSpec, ChipCatalog, JobId, JobState, Money, Timestamp};

use crate::faults::{Action, Fault, timeline};
use crate::mapping::SimJob;
use crate::progress::Progress;
use crate::speeds::Speeds;

/// How long a lease lasts without a heartbeat: the hub's default.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// Capacity of one (center, SKU) pair: the unit of per-pool utilisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    pub center: CenterId,
    pub sku: String,
    pub cards: u64,
    pub price: Money,
}

/// What happened to one job.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobOutcome {
    /// Why no center could ever hold the job (then it never ran and is left out of the metrics).
    pub rejected: Option<String>,
    pub first_start_ms: Option<i64>,
    pub finish_ms: Option<i64>,
    /// Ran into its walltime.
    pub timed_out: bool,
    /// Attempts started (1 + times preempted, lost or handed back and placed again).
    pub attempts: u32,
    pub preemptions: u32,
    /// Lowest list price of a pool that could ever hold the job (for the cost lower bound).
    pub cheapest_price: Option<Money>,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Ran its runtime (or into its walltime) and reported the end.
    Finished,
    /// Evicted by the core for a job of a higher class (its work is lost).
    Preempted,
    /// Its center failed: the lease ran out without a report (its work is lost).
    LeaseLost,
    /// Handed back by a drain of its center (its work is lost).
    Drained,
}

/// One attempt: a stretch of time a job held cards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Index of the job.
    pub job: usize,
    /// The lifecycle's attempt number (1 for the first placement).
    pub attempt: u32,
    /// Index into [`RunOutput::pools`].
    pub pool: usize,
    pub cards: u64,
    pub start_ms: i64,
    /// When the attempt stopped running: its end, or its center's failure.
    pub end_ms: i64,
    pub end: AttemptEnd,
    /// Card-seconds the lifecycle metered (and billed) for the attempt.
    pub metered_card_secs: u64,
}

/// The raw result of a run; [`crate::report::Report::build`] turns it into metrics.
#[derive(Clone, Debug)]
pub struct RunOutput {
    pub policy: Policy,
    pub pools: Vec<PoolInfo>,
    /// By job index.
    pub outcomes: Vec<JobOutcome>,
    /// In the order they ended.
    pub attempts: Vec<AttemptRecord>,
    /// `(time, pending jobs)` after each scheduling pass where the count changed.
    pub pending_samples: Vec<(i64, usize)>,
    pub decision_hash: u64,
    /// Submits and finishes processed (stale finishes included).
    pub events: u64,
    pub placements: u64,
    pub schedule_calls: u64,
    /// The bill lines the lifecycle's books hold at the end (one per attempt that ran; virtual
    /// times), for the run's indicators.
    pub lines: Vec<suanli_money::BillLine>,
    /// Wall time of the whole run, and of the scheduling passes alone.
    pub wall: Duration,
    pub schedule_wall: Duration,
    /// The chip speed model of the run, if any (see [`crate::speeds`]).
    pub speed_model: Option<String>,
}

/// A run that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(
        "the scheduler stalled at {at_ms} ms: no events remain but {pending} jobs are pending; e.g. {examples}"
    )]
    Stalled {
        at_ms: i64,
        pending: usize,
        examples: String,
    },
    #[error("the topology has no centers")]
    NoCenters,
    #[error("fault at {0}: no such center in the topology")]
    UnknownCenter(CenterId),
}

#[derive(Clone, Copy, Debug)]
struct Running {
    attempt: u32,
    pool: usize,
    center: usize,
    cards: u64,
    start_ms: i64,
    /// The job's run time at this pool's speed (not cut at the wall time).
    run_ms: i64,
    /// Its center failed at this time: the site will never report on it.
    lost_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
struct Live {
    running: Option<Running>,
    ended: bool,
}

/// A pool row of the core's capacity, for the static fit of the cost lower bound.
struct StaticPool {
    chip: Option<usize>,
    nodes: u32,
    cards_per_node: u32,
    price: Money,
}

/// Runs `jobs` (sorted by submit time, `index` = position) on `centers`, all online, with the
/// given policy. Panics if the engine's bookkeeping breaks (a job lost or ended twice).
pub fn run(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    policy: Policy,
    progress: &Progress,
) -> Result<RunOutput, SimError> {
    run_with_faults(jobs, centers, policy, &[], progress)
}

/// [`run`] with center failures and drains.
pub fn run_with_faults(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    policy: Policy,
    faults: &[Fault],
    progress: &Progress,
) -> Result<RunOutput, SimError> {
    run_with_config(
        jobs,
        centers,
        CoreConfig::with_policy(policy),
        faults,
        progress,
    )
}

/// [`run_with_faults`] with any scheduler settings (e.g. the suanli policy's weights).
pub fn run_with_config(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    config: CoreConfig,
    faults: &[Fault],
    progress: &Progress,
) -> Result<RunOutput, SimError> {
    run_with_speeds(jobs, centers, config, faults, &Speeds::None, progress)
}

/// [`run_with_config`] where each chip runs a job at its speed (see [`crate::speeds`]).
pub fn run_with_speeds(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    config: CoreConfig,
    faults: &[Fault],
    speeds: &Speeds,
    progress: &Progress,
) -> Result<RunOutput, SimError> {
    if centers.is_empty() {
        return Err(SimError::NoCenters);
    }
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j.index, i, "jobs are indexed by position");
        assert_eq!(j.id, JobId(i as i64 + 1));
    }
    assert!(
        jobs.windows(2).all(|w| w[0].submit_ms <= w[1].submit_ms),
        "jobs are sorted by submit time"
    );
    let center_index: BTreeMap<CenterId, usize> = centers
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.clone(), i))
        .collect();
    if let Some(f) = faults
        .iter()
        .find(|f| !center_index.contains_key(&f.center))
    {
        return Err(SimError::UnknownCenter(f.center.clone()));
    }
    let started = Instant::now();
    let mut sim = Sim::new(jobs, centers, config, center_index);
    sim.speed = sim.pools.iter().map(|p| speeds.of(&p.sku)).collect();
    let actions = timeline(
        faults,
        |c| sim.center_index[c],
        LEASE_TTL.as_millis() as i64,
    );
    sim.run(&actions, progress)?;
    let mut out = sim.output(started.elapsed());
    out.speed_model = speeds.name().map(str::to_string);
    Ok(out)
}

/// The state of one run.
struct Sim<'a> {
    jobs: &'a [SimJob],
    centers: &'a [CenterSpec],
    policy: Policy,
    life: Lifecycle,
    center_index: BTreeMap<CenterId, usize>,
    /// Per center: failures and drains in force (open to work when both are 0).
    down: Vec<(u32, u32)>,
    pools: Vec<PoolInfo>,
    /// By pool: how fast its chip runs a job against the reference (1 without a speed model).
    speed: Vec<f64>,
    pool_index: BTreeMap<(CenterId, String), usize>,
    static_pools: Vec<StaticPool>,
    live: Vec<Live>,
    outcomes: Vec<JobOutcome>,
    attempts: Vec<AttemptRecord>,
    pending_samples: Vec<(i64, usize)>,
    heap: BinaryHeap<Reverse<(i64, usize, u32)>>,
    events: u64,
    placements: u64,
    calls: u64,
    ended: usize,
    schedule_wall: Duration,
}

impl<'a> Sim<'a> {
    fn new(
        jobs: &'a [SimJob],
        centers: &'a [CenterSpec],
        config: CoreConfig,
        center_index: BTreeMap<CenterId, usize>,
    ) -> Sim<'a> {
        let policy = config.policy;
        // The books price each pool at its registered price, in force since always, as the hub
        // does for a pool never priced (several pools of one SKU at a center share the row).
        let mut books = Books::new();
        for c in centers {
            for p in &c.pools {
                if books.price_at(&c.id, &p.sku, Timestamp(0), false).is_none() {
                    books
                        .set_price(&c.id, &p.sku, p.price_per_card_hour, None, Timestamp(0))
                        .expect("a topology's price is a valid price row");
                }
            }
        }
        let mut life = Lifecycle::new(
            config,
            LEASE_TTL,
            books,
            Parties::default(),
            Box::new(|_, _| None),
        );
        for c in centers {
            life.upsert_center(c);
            life.set_online(&c.id, true);
        }

        // Pools: (center, lowercase SKU) -> index; several pools of one SKU at a center merge.
        let cat = ChipCatalog::builtin();
        let mut pools: Vec<PoolInfo> = Vec::new();
        let mut pool_index: BTreeMap<(CenterId, String), usize> = BTreeMap::new();
        let mut static_pools = Vec::new();
        for p in life.core().capacity() {
            static_pools.push(StaticPool {
                chip: cat
                    .all()
                    .iter()
                    .position(|c| c.sku.eq_ignore_ascii_case(&p.sku)),
                nodes: p.nodes,
                cards_per_node: p.cards_per_node,
                price: p.price_per_card_hour,
            });
            let key = (p.center.clone(), p.sku.to_ascii_lowercase());
            match pool_index.get(&key) {
                Some(&i) => pools[i].cards += p.total_cards,
                None => {
                    pool_index.insert(key, pools.len());
                    pools.push(PoolInfo {
                        center: p.center,
                        sku: p.sku,
                        cards: p.total_cards,
                        price: p.price_per_card_hour,
                    });
                }
            }
        }
        let n = jobs.len();
        Sim {
            jobs,
            centers,
            policy,
            life,
            center_index,
            down: vec![(0, 0); centers.len()],
            speed: vec![1.0; pools.len()],
            pools,
            pool_index,
            static_pools,
            live: vec![Live::default(); n],
            outcomes: vec![JobOutcome::default(); n],
            attempts: Vec::with_capacity(n + n / 8),
            pending_samples: Vec::new(),
            heap: BinaryHeap::new(),
            events: 0,
            placements: 0,
            calls: 0,
            ended: 0,
            schedule_wall: Duration::ZERO,
        }
    }

    fn run(&mut self, actions: &[(i64, Action)], progress: &Progress) -> Result<(), SimError> {
        let jobs = self.jobs;
        let mut next_submit = 0usize;
        let mut next_action = 0usize;
        let mut now = 0i64;
        let mut last_pending = usize::MAX;
        let mut since_progress = 0u64;
        loop {
            let next = [
                self.heap.peek().map(|Reverse((t, ..))| *t),
                actions.get(next_action).map(|a| a.0),
                jobs.get(next_submit).map(|j| j.submit_ms),
            ];
            let Some(t) = next.into_iter().flatten().min() else {
                break;
            };
            now = t;
            while let Some(&Reverse((t, ji, attempt))) = self.heap.peek() {
                if t != now {
                    break;
                }
                self.heap.pop();
                self.events += 1;
                self.finish(ji, attempt, now);
            }
            while let Some(&(_, action)) = actions.get(next_action).filter(|a| a.0 == now) {
                next_action += 1;
                self.act(action, now);
            }
            while let Some(j) = jobs.get(next_submit).filter(|j| j.submit_ms == now) {
                next_submit += 1;
                self.events += 1;
                self.submit(j, now);
            }
            self.schedule(now);
            let pending = self.life.core().pending_len();
            if pending != last_pending {
                self.pending_samples.push((now, pending));
                last_pending = pending;
            }
            since_progress += 1;
            if since_progress >= 512 {
                since_progress = 0;
                // Stop orders of preempted attempts outlive their use by one lease.
                self.life.prune_stops(Timestamp(now));
                progress.update(self.ended as u64, now);
            }
        }

        let core = self.life.core();
        if core.pending_len() > 0 {
            let examples: Vec<String> = jobs
                .iter()
                .filter(|j| core.is_pending(j.id))
                .take(3)
                .map(|j| format!("job {}: {}", j.id, core.explain(j.id).unwrap_or_default()))
                .collect();
            return Err(SimError::Stalled {
                at_ms: now,
                pending: core.pending_len(),
                examples: examples.join(" | "),
            });
        }
        assert_eq!(self.ended, jobs.len(), "every job ends exactly once");
        assert!(self.live.iter().all(|l| l.ended && l.running.is_none()));
        assert_eq!(self.life.jobs().count(), 0, "no job outlives its end");
        assert_eq!(
            core.allocations().count(),
            0,
            "no allocation outlives its job"
        );
        core.sanity_check();
        progress.update(self.ended as u64, now);
        progress.finish();
        Ok(())
    }

    fn output(self, wall: Duration) -> RunOutput {
        RunOutput {
            policy: self.policy,
            pools: self.pools,
            outcomes: self.outcomes,
            attempts: self.attempts,
            pending_samples: self.pending_samples,
            decision_hash: self.life.core().decision_hash(),
            events: self.events,
            placements: self.placements,
            schedule_calls: self.calls,
            lines: self.life.books().lines().to_vec(),
            speed_model: None,
            wall,
            schedule_wall: self.schedule_wall,
        }
    }

    /// The change is durable at once (there is no store): apply it.
    fn apply(&mut self, change: Change) -> u64 {
        let metered = change.metered();
        self.life.apply(change);
        metered
    }

    // ---------------------------------------------------------------- events

    /// A job arrives: the lifecycle checks it against the network and queues it.
    fn submit(&mut self, j: &SimJob, now: i64) {
        let by = String::new();
        match self.life.submit(
            Timestamp(now),
            j.tenant.clone(),
            (by, None),
            j.spec.clone(),
            None,
        ) {
            Ok(new) => {
                self.outcomes[j.index].cheapest_price = cheapest_price(&self.static_pools, j);
                self.life.submitted(JobRecord::queued(j.id, new, None));
            }
            Err(SubmitError::Unschedulable(rejections)) => {
                let why: Vec<String> = rejections
                    .iter()
                    .take(3)
                    .map(|r| format!("{}: {}", r.center, r.reason))
                    .collect();
                self.outcomes[j.index].rejected = Some(why.join("; "));
                self.end_job(j.index);
            }
            Err(SubmitError::OverBudget(e)) => unreachable!("the simulator sets no budgets: {e}"),
            Err(SubmitError::Invalid(e)) => {
                self.outcomes[j.index].rejected = Some(e.to_string());
                self.end_job(j.index);
            }
        }
    }

    /// The finish event of attempt `attempt` of job `ji`: its site reports the end, unless the
    /// attempt is no longer current (preempted, handed back) or its site is gone (failed).
    fn finish(&mut self, ji: usize, attempt: u32, now: i64) {
        let Some(r) = self.live[ji]
            .running
            .filter(|r| r.attempt == attempt && r.lost_at.is_none())
        else {
            return; // stale
        };
        let j = &self.jobs[ji];
        let timed_out = r.run_ms > j.walltime_ms();
        let ms = now - r.start_ms;
        let report = Report::Finished {
            outcome: if timed_out {
                Ended::TimedOut
            } else {
                Ended::Succeeded
            },
            exit_code: (!timed_out).then_some(0),
            started_at: Timestamp(r.start_ms),
            ended_at: Timestamp(now),
            card_seconds: (ms as u64).div_ceil(1000).saturating_mul(r.cards),
            log_chunks: 0,
            message: String::new(),
            request: None,
        };
        let center = &self.pools[r.pool].center;
        let change = self
            .life
            .report(center, j.id, attempt, report, Timestamp(now))
            .expect("the simulator reports true times")
            .expect("a finish reports the current attempt");
        debug_assert!(matches!(
            change.finished,
            Some(JobState::Succeeded | JobState::TimedOut)
        ));
        let metered = self.apply(change);
        self.end_attempt(ji, AttemptEnd::Finished, now, metered);
        let o = &mut self.outcomes[ji];
        o.finish_ms = Some(now);
        o.timed_out = timed_out;
        self.end_job(ji);
    }

    /// A center fault (see [`crate::faults`]).
    fn act(&mut self, action: Action, now: i64) {
        let at = Timestamp(now);
        match action {
            Action::Fail(c) => {
                // The site's last heartbeat lists what it runs; then it says nothing more.
                let id = &self.centers[c].id;
                let running = self.running_at(c);
                for &(job, _) in &running {
                    let r = self.live[job_index(job, self.jobs.len())]
                        .running
                        .as_mut()
                        .expect("listed as running");
                    r.lost_at = Some(now);
                }
                self.life.heartbeat(id, &running, at);
                self.down[c].0 += 1;
                self.set_open(c);
            }
            Action::Recover(c) => {
                self.down[c].0 -= 1;
                self.set_open(c);
            }
            Action::Drain(c) => {
                self.down[c].1 += 1;
                self.set_open(c);
                let id = self.centers[c].id.clone();
                let (back, running) = self.life.drain_targets(&id, true);
                debug_assert_eq!(running, 0, "a drain with requeue hands back every attempt");
                for job in back {
                    let change = self.life.hand_back(job, &id, at);
                    let metered = self.apply(change);
                    self.end_attempt(
                        job_index(job, self.jobs.len()),
                        AttemptEnd::Drained,
                        now,
                        metered,
                    );
                }
            }
            Action::Undrain(c) => {
                self.down[c].1 -= 1;
                self.set_open(c);
            }
            Action::Expire => {
                // The sites that are up heartbeat; what a failed one ran has no lease left.
                for c in 0..self.centers.len() {
                    if self.down[c].0 == 0 {
                        let running = self.running_at(c);
                        self.life.heartbeat(&self.centers[c].id, &running, at);
                    }
                }
                for job in self.life.expired(at) {
                    let ji = job_index(job, self.jobs.len());
                    let lost_at = self.live[ji]
                        .running
                        .and_then(|r| r.lost_at)
                        .expect("only attempts at a failed center lose their lease");
                    let change = self.life.expire(job, at);
                    let metered = self.apply(change);
                    self.end_attempt(ji, AttemptEnd::LeaseLost, lost_at, metered);
                }
            }
        }
    }

    /// Opens or closes center `c` to new work as its faults say.
    fn set_open(&mut self, c: usize) {
        let open = self.down[c] == (0, 0);
        self.life.set_online(&self.centers[c].id, open);
        if open {
            self.life.mark_dirty();
        }
    }

    /// The attempts the site of center `c` runs (not lost), by job.
    fn running_at(&self, c: usize) -> Vec<AttemptKey> {
        self.live
            .iter()
            .enumerate()
            .filter_map(|(ji, l)| {
                l.running
                    .filter(|r| r.center == c && r.lost_at.is_none())
                    .map(|r| (self.jobs[ji].id, r.attempt))
            })
            .collect()
    }

    /// A scheduling pass: evictions first, then each placement recorded and its start reported.
    fn schedule(&mut self, now: i64) {
        let at = Timestamp(now);
        let t0 = Instant::now();
        let placements = self.life.schedule(at);
        self.schedule_wall += t0.elapsed();
        self.calls += 1;
        self.placements += placements.len() as u64;
        for p in placements {
            for &v in &p.preempted {
                let change = self
                    .life
                    .preempt(v, p.job, &p.alloc.center, at)
                    .expect("a preempted job was running");
                let metered = self.apply(change);
                let vi = job_index(v, self.jobs.len());
                self.end_attempt(vi, AttemptEnd::Preempted, now, metered);
                self.outcomes[vi].preemptions += 1;
            }
            self.start(&p, now);
        }
    }

    /// Records placement `p` and the start its site reports at once.
    fn start(&mut self, p: &Placement, now: i64) {
        let at = Timestamp(now);
        let ji = job_index(p.job, self.jobs.len());
        let l = &self.live[ji];
        assert!(
            l.running.is_none() && !l.ended,
            "job {} placed while running or ended",
            p.job
        );
        let change = self
            .life
            .place(p, at)
            .expect("the core places only queued jobs");
        let attempt = change.record().expect("a placement writes the job").attempt;
        self.life.apply(change);
        let center = &p.alloc.center;
        let change = self
            .life
            .report(center, p.job, attempt, Report::Started { at }, at)
            .expect("the simulator reports true times")
            .expect("a start reports the current attempt");
        self.life.apply(change);

        let key = (center.clone(), p.alloc.sku.to_ascii_lowercase());
        let pool = *self
            .pool_index
            .get(&key)
            .expect("a placement is on a registered pool");
        // Its run time on this pool's chip, cut at the wall time.
        let run_ms = Speeds::scaled(self.jobs[ji].runtime_ms, self.speed[pool]);
        self.live[ji].running = Some(Running {
            attempt,
            pool,
            center: self.center_index[center],
            cards: p.alloc.total_cards(),
            start_ms: now,
            run_ms,
            lost_at: None,
        });
        let o = &mut self.outcomes[ji];
        o.attempts += 1;
        o.first_start_ms.get_or_insert(now);
        let ends = run_ms.min(self.jobs[ji].walltime_ms());
        self.heap.push(Reverse((now + ends, ji, attempt)));
    }

    /// The current attempt of job `ji` ended at `end_ms` (metered `metered` card-seconds).
    fn end_attempt(&mut self, ji: usize, end: AttemptEnd, end_ms: i64, metered: u64) {
        let r = self.live[ji]
            .running
            .take()
            .expect("an ending attempt was running");
        self.attempts.push(AttemptRecord {
            job: ji,
            attempt: r.attempt,
            pool: r.pool,
            cards: r.cards,
            start_ms: r.start_ms,
            end_ms,
            end,
            metered_card_secs: metered,
        });
    }

    fn end_job(&mut self, ji: usize) {
        let live = &mut self.live[ji];
        assert!(!live.ended, "a job ended twice");
        live.ended = true;
        self.ended += 1;
    }
}

fn job_index(id: JobId, n: usize) -> usize {
    let i = id.0 - 1;
    assert!(
        (0..n as i64).contains(&i),
        "the core returned an unknown job {id}"
    );
    i as usize
}

/// Lowest list price of a pool that could ever hold the job (chip, stack, price cap, shape).
fn cheapest_price(pools: &[StaticPool], job: &SimJob) -> Option<Money> {
    let cat = ChipCatalog::builtin().all();
    let spec = &job.spec;
    pools
        .iter()
        .filter(|p| {
            p.chip.is_some_and(|c| spec.accepts_chip(&cat[c]))
                && spec.max_price_per_card_hour.is_none_or(|m| p.price <= m)
                && spec.cards_per_node <= p.cards_per_node
                && spec.nodes <= p.nodes
        })
        .map(|p| p.price)
        .min()
}

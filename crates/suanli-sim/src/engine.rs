//! The discrete-event engine: replays mapped jobs through a [`Core`] in virtual time.
//!
//! Events are submits (taken from the job list, which is sorted by submit time) and finishes
//! (a binary heap keyed by time, job and attempt). At each distinct event time the engine applies
//! every event at that time (finishes first, then submits), then calls [`Core::schedule`] once.
//! A placement schedules the job's finish at `now + min(runtime, walltime)`; a job whose runtime
//! exceeds its walltime ends there as timed out. A preempted job's attempt ends at once (its work
//! is lost: the next attempt runs the whole runtime again); the finish event of the old attempt
//! is ignored when it comes, because the job's current attempt is no longer that one. The core has
//! already queued the preempted job again.
//!
//! The engine reads the real clock only to measure itself (wall time of the run and of the
//! `schedule` calls); virtual time never depends on it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use suanli_core::{Core, CoreConfig, Placement, Policy};
use suanli_types::{CenterId, CenterSpec, ChipCatalog, JobId, Money, Timestamp};

use crate::mapping::SimJob;
use crate::progress::Progress;

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
    /// Attempts started (1 + times preempted and placed again).
    pub attempts: u32,
    pub preemptions: u32,
    /// Lowest list price of a pool that could ever hold the job (for the cost lower bound).
    pub cheapest_price: Option<Money>,
}

/// One attempt: a stretch of time a job held cards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Index of the job.
    pub job: usize,
    /// Index into [`RunOutput::pools`].
    pub pool: usize,
    pub cards: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Ended by preemption (its work is lost).
    pub preempted: bool,
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
    /// Wall time of the whole run, and of the `schedule` calls alone.
    pub wall: Duration,
    pub schedule_wall: Duration,
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
}

#[derive(Clone, Copy, Debug)]
struct Running {
    attempt: u32,
    pool: usize,
    cards: u64,
    start_ms: i64,
}

#[derive(Clone, Debug, Default)]
struct Live {
    attempt: u32,
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
    run_with(jobs, centers, policy, progress, &mut |core, now| {
        core.schedule(now)
    })
}

/// [`run`] with the scheduling pass supplied by the caller (tests inject preemptions with it).
pub(crate) fn run_with(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    policy: Policy,
    progress: &Progress,
    schedule: &mut dyn FnMut(&mut Core, Timestamp) -> Vec<Placement>,
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
    let started = Instant::now();
    let mut core = Core::new(CoreConfig {
        policy,
        ..CoreConfig::default()
    });
    for c in centers {
        core.upsert_center(c);
        core.set_online(&c.id, true);
    }

    // Pools: (center, lowercase SKU) -> index; several pools of one SKU at a center merge.
    let cat = ChipCatalog::builtin();
    let mut pools: Vec<PoolInfo> = Vec::new();
    let mut pool_index: BTreeMap<(CenterId, String), usize> = BTreeMap::new();
    let mut static_pools = Vec::new();
    for p in core.capacity() {
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
    let mut live = vec![Live::default(); n];
    let mut outcomes = vec![JobOutcome::default(); n];
    let mut attempts = Vec::with_capacity(n + n / 8);
    let mut pending_samples = Vec::new();
    let mut heap: BinaryHeap<Reverse<(i64, usize, u32)>> = BinaryHeap::new();
    let mut next_submit = 0usize;
    let (mut events, mut placements_total, mut calls) = (0u64, 0u64, 0u64);
    let mut ended = 0usize;
    let mut schedule_wall = Duration::ZERO;
    let mut now = 0i64;
    let mut last_pending = usize::MAX;
    let mut since_progress = 0u64;

    loop {
        let t_heap = heap.peek().map(|Reverse((t, ..))| *t);
        let t_sub = jobs.get(next_submit).map(|j| j.submit_ms);
        now = match (t_heap, t_sub) {
            (None, None) => break,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
        };
        while let Some(&Reverse((t, ji, attempt))) = heap.peek() {
            if t != now {
                break;
            }
            heap.pop();
            events += 1;
            let l = &mut live[ji];
            let Some(r) = l.running.filter(|r| r.attempt == attempt) else {
                continue; // stale: the attempt was preempted
            };
            l.running = None;
            core.release(jobs[ji].id)
                .expect("a running job holds an allocation in the core");
            attempts.push(AttemptRecord {
                job: ji,
                pool: r.pool,
                cards: r.cards,
                start_ms: r.start_ms,
                end_ms: now,
                preempted: false,
            });
            let o = &mut outcomes[ji];
            o.finish_ms = Some(now);
            o.timed_out = jobs[ji].runtime_ms > jobs[ji].walltime_ms();
            end_job(l, &mut ended);
        }
        while let Some(j) = jobs.get(next_submit).filter(|j| j.submit_ms == now) {
            next_submit += 1;
            events += 1;
            match core.feasibility(&j.spec) {
                Ok(()) => {
                    outcomes[j.index].cheapest_price = cheapest_price(&static_pools, j);
                    core.enqueue(j.pending());
                }
                Err(rejections) => {
                    let why: Vec<String> = rejections
                        .iter()
                        .take(3)
                        .map(|r| format!("{}: {}", r.center, r.reason))
                        .collect();
                    outcomes[j.index].rejected = Some(why.join("; "));
                    end_job(&mut live[j.index], &mut ended);
                }
            }
        }

        let t0 = Instant::now();
        let placements = schedule(&mut core, Timestamp(now));
        schedule_wall += t0.elapsed();
        calls += 1;
        placements_total += placements.len() as u64;
        for p in placements {
            for v in &p.preempted {
                let vi = job_index(*v, n);
                let r = live[vi]
                    .running
                    .take()
                    .expect("a preempted job was running");
                attempts.push(AttemptRecord {
                    job: vi,
                    pool: r.pool,
                    cards: r.cards,
                    start_ms: r.start_ms,
                    end_ms: now,
                    preempted: true,
                });
                outcomes[vi].preemptions += 1;
            }
            let ji = job_index(p.job, n);
            let l = &mut live[ji];
            assert!(
                l.running.is_none() && !l.ended,
                "job {} placed while running or ended",
                p.job
            );
            let key = (p.alloc.center.clone(), p.alloc.sku.to_ascii_lowercase());
            let pool = *pool_index
                .get(&key)
                .expect("a placement is on a registered pool");
            l.attempt += 1;
            l.running = Some(Running {
                attempt: l.attempt,
                pool,
                cards: p.alloc.total_cards(),
                start_ms: now,
            });
            let o = &mut outcomes[ji];
            o.attempts += 1;
            o.first_start_ms.get_or_insert(now);
            let run_ms = jobs[ji].effective_runtime_ms();
            heap.push(Reverse((now + run_ms, ji, l.attempt)));
        }
        let pending = core.pending_len();
        if pending != last_pending {
            pending_samples.push((now, pending));
            last_pending = pending;
        }
        since_progress += 1;
        if since_progress >= 512 {
            since_progress = 0;
            progress.update(ended as u64, now);
        }
    }

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
    assert_eq!(ended, n, "every job ends exactly once");
    assert!(live.iter().all(|l| l.ended && l.running.is_none()));
    assert_eq!(
        core.allocations().count(),
        0,
        "no allocation outlives its job"
    );
    core.sanity_check();
    progress.update(ended as u64, now);
    progress.finish();

    Ok(RunOutput {
        policy,
        pools,
        outcomes,
        attempts,
        pending_samples,
        decision_hash: core.decision_hash(),
        events,
        placements: placements_total,
        schedule_calls: calls,
        wall: started.elapsed(),
        schedule_wall,
    })
}

fn end_job(live: &mut Live, ended: &mut usize) {
    assert!(!live.ended, "a job ended twice");
    live.ended = true;
    *ended += 1;
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

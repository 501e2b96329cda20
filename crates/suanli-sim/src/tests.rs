//! Engine tests: hand-checked runs on a tiny topology, no job lost, determinism.

use suanli_core::Policy;
use suanli_testkit::center;
use suanli_types::{CenterSpec, ChipRequest, Money, PriorityClass};

use crate::engine::{self, AttemptEnd, RunOutput};
use crate::faults::{Fault, FaultKind};
use crate::generator::{GenConfig, generate};
use crate::mapping::{MappingConfig, SimJob, map_job, map_trace};
use crate::progress::Progress;
use crate::report::Report;
use crate::trace::{Shape, TraceJob};
use crate::{simulate, topology};

/// A fully specified job (no seeded draws): any chip, given priority, walltime 2 x duration.
fn job(
    index: usize,
    submit_s: i64,
    duration_s: i64,
    cards: u32,
    priority: PriorityClass,
) -> SimJob {
    let t = TraceJob {
        line: index + 1,
        submit_ms: submit_s * 1000,
        duration_ms: duration_s * 1000,
        shape: Shape::Gang {
            cards_per_node: cards,
            nodes: 1,
        },
        tenant: "lab".into(),
        priority: Some(priority),
        chips: Some((ChipRequest::default(), "any".into())),
        walltime_secs: Some(duration_s as u64 * 2),
        max_price: None,
    };
    map_job(index, &t, submit_s * 1000, &MappingConfig::default())
}

fn run(jobs: &[SimJob], centers: &[CenterSpec], policy: Policy) -> (RunOutput, Report) {
    let out = engine::run(jobs, centers, policy, &Progress::hidden()).unwrap();
    let report = Report::build(jobs, &out);
    (out, report)
}

const STD: PriorityClass = PriorityClass::Standard;

#[test]
fn tiny_topology_hand_checked_jct_and_cost() {
    // One node of 2 RTX4090 at 2 yuan per card-hour. A takes both cards for 1 h; B (30 min) and
    // C (10 min, submitted at 10 min) wait for A and then run side by side.
    let centers = [center("c1", "RTX4090", 1, 2, "2")];
    let mut jobs = vec![
        job(0, 0, 3600, 2, STD),
        job(1, 0, 1800, 1, STD),
        job(2, 600, 600, 1, STD),
        job(3, 700, 60, 4, STD), // 4 cards on a 2-card node: rejected
    ];
    // Job 4 runs 2 h against a 1 h walltime: timed out at 1 h, after A, B and C.
    let mut d = job(4, 800, 7200, 2, STD);
    d.spec.walltime = 3600;
    jobs.push(d);
    // Slurm's job-size factor ranks D (2 cards) above B and C once A ends: it runs first.
    let (out, _) = run(&jobs, &centers, Policy::Slurm);
    assert_eq!(out.outcomes[4].first_start_ms, Some(3_600_000));
    assert_eq!(out.outcomes[1].first_start_ms, Some(7_200_000));
    for policy in Policy::ALL.into_iter().filter(|p| *p != Policy::Slurm) {
        let (out, r) = run(&jobs, &centers, policy);
        let o = &out.outcomes;
        assert_eq!(o[0].first_start_ms, Some(0));
        assert_eq!(o[0].finish_ms, Some(3_600_000));
        assert_eq!(o[1].finish_ms, Some(5_400_000));
        assert_eq!(o[2].first_start_ms, Some(3_600_000));
        assert_eq!(o[2].finish_ms, Some(4_200_000));
        assert!(o[3].rejected.as_deref().unwrap().contains("c1"));
        assert_eq!(o[4].first_start_ms, Some(5_400_000));
        assert_eq!(o[4].finish_ms, Some(9_000_000));
        assert!(o[4].timed_out);

        assert_eq!(
            (
                r.jobs.total,
                r.jobs.completed,
                r.jobs.timed_out,
                r.jobs.rejected
            ),
            (5, 3, 1, 1)
        );
        // JCTs: 3600, 5400, 3600, 8200 s.
        assert_eq!(r.jct.avg_secs, 5200.0);
        assert_eq!(r.jct.p50_secs, 3600.0);
        assert_eq!(r.jct.p99_secs, 8200.0);
        // Queueing: 0, 3600, 3000, 4600 s.
        assert_eq!(r.queueing_delay.avg_secs, 2800.0);
        assert_eq!(r.queueing_delay.p99_secs, 4600.0);
        // Ideal: 3600, 1800, 600, 3600 (cut at the walltime).
        assert_eq!(r.lower_bound_avg_jct_secs, 2400.0);
        // Cost: 2 x 1 h + 1 x 0.5 h + 1 x 1/6 h + 2 x 1 h = 4.6667 card-hours at 2 yuan.
        assert_eq!(r.cost, Money(93_333));
        assert_eq!(r.cost_lower_bound, Money(93_333));
        assert_eq!(r.cost_over_lower_bound, 1.0);
        // Busy 2*3600 + 1800 + 600 + 2*3600 = 16800 card-s over 2 cards x 9000 s.
        assert_eq!(r.span_secs, 9000.0);
        assert!((r.utilisation - 16_800.0 / 18_000.0).abs() < 1e-12);
        // Submits from 0 to 800 s: A alone holds both cards.
        assert_eq!(r.utilisation_while_submitting, 1.0);
        assert_eq!(r.pools.len(), 1);
        assert_eq!(r.pools[0].busy_card_secs, 16_800.0);
        assert_eq!(r.preemptions, 0);
        assert_eq!(r.placements, 4);
        let series_busy: f64 = r
            .series
            .iter()
            .map(|b| b.utilisation * 2.0 * (b.end_secs - b.start_secs))
            .sum();
        assert!((series_busy - 16_800.0).abs() < 1e-6, "{series_busy}");
        assert!(r.series[0].pending_avg > 0.0);
    }
}

#[test]
fn preempted_attempts_lose_their_work_and_stale_finishes_are_ignored() {
    // The suanli policy preempts: the public-service job fits nowhere while the spot job holds
    // both cards, so the spot job is evicted and queued again.
    let centers = [center("c1", "RTX4090", 1, 2, "2")];
    let jobs = vec![
        job(0, 0, 3600, 2, PriorityClass::Spot),
        job(1, 600, 1800, 2, PriorityClass::PublicService),
    ];
    let (out, r) = run(&jobs, &centers, Policy::Suanli);
    let o = &out.outcomes;
    // Spot: 0..600 (lost), then 2400..6000; its first finish at 3600 is stale.
    assert_eq!(
        (o[1].first_start_ms, o[1].finish_ms),
        (Some(600_000), Some(2_400_000))
    );
    assert_eq!((o[0].attempts, o[0].preemptions), (2, 1));
    assert_eq!(o[0].finish_ms, Some(6_000_000));
    assert_eq!(r.preemptions, 1);
    assert_eq!(r.jobs.preempted, 1);
    assert_eq!(r.lost_card_secs, 1200.0);
    // The lifecycle metered the preempted attempt up to the eviction, as the hub would.
    let first = &out.attempts[0];
    assert_eq!(
        (first.job, first.attempt, first.end),
        (0, 1, AttemptEnd::Preempted)
    );
    assert_eq!(first.metered_card_secs, 1200);
    assert_eq!(out.attempts.iter().map(|a| a.attempt).max(), Some(2));
    // Cost: spot 2 cards x (600 + 3600) s, public 2 x 1800 s, at 2 yuan per card-hour.
    assert_eq!(r.cost, Money(66_667));
    assert_eq!(r.cost_lower_bound, Money(60_000));
    assert_eq!(out.events, 5, "2 submits, 2 finishes and 1 stale finish");
    assert_eq!(out.lines.len(), 3, "every attempt that ran is billed once");
    assert_eq!(r.jobs.completed, 2);
}

fn generated(jobs: usize, seed: u64, spot: bool) -> Vec<SimJob> {
    let mut mapping = MappingConfig::default();
    if !spot {
        mapping.public_share = 0.0;
        mapping.spot_share = 0.0;
    }
    let trace = generate(&GenConfig {
        jobs,
        seed,
        tenants: 5,
        mean_interarrival_secs: 20.0,
        mapping: mapping.clone(),
        ..GenConfig::default()
    });
    // Forget the generated chip needs and priorities, so the mapping draws them again (and so
    // gives a few infeasible jobs: 32 CUDA cards do not fit the small network).
    let trace: Vec<TraceJob> = trace
        .into_iter()
        .map(|t| TraceJob {
            priority: None,
            chips: None,
            walltime_secs: None,
            ..t
        })
        .collect();
    map_trace(&trace, &MappingConfig { seed, ..mapping }, 1.0, None)
}

#[test]
fn no_job_is_lost_on_random_and_preemption_free_traces() {
    let centers = topology::builtin(64);
    for (seed, spot) in [(1, true), (2, true), (3, false)] {
        let jobs = generated(1500, seed, spot);
        for policy in Policy::ALL {
            let (out, r) = run(&jobs, &centers, policy);
            assert_eq!(
                r.jobs.completed + r.jobs.timed_out + r.jobs.rejected,
                jobs.len()
            );
            assert!(
                out.outcomes
                    .iter()
                    .all(|o| o.rejected.is_some() || o.finish_ms.is_some())
            );
            assert!(r.utilisation > 0.0 && r.utilisation <= 1.0 + 1e-9);
            assert!(r.cost >= r.cost_lower_bound, "{policy:?}");
            assert!(r.jct_over_lower_bound >= 1.0);
            // (Tiresias preempts by attained service, whatever the classes.)
            if !spot && policy != Policy::Tiresias {
                assert_eq!(r.preemptions, 0, "{policy:?}");
            }
            // Attempts never overlap beyond a pool's capacity.
            let mut edges: Vec<(i64, i64, usize)> = Vec::new();
            for a in &out.attempts {
                edges.push((a.start_ms, a.cards as i64, a.pool));
                edges.push((a.end_ms, -(a.cards as i64), a.pool));
            }
            edges.sort();
            let mut used = vec![0i64; out.pools.len()];
            for (_, d, p) in edges {
                used[p] += d;
                assert!(used[p] <= out.pools[p].cards as i64);
            }
        }
    }
}

#[test]
fn same_inputs_give_the_same_report_and_hash() {
    let centers = topology::builtin(64);
    let a = generated(800, 5, true);
    let b = generated(800, 5, true);
    assert_eq!(a, b);
    for policy in Policy::ALL {
        let ra = simulate(&a, &centers, policy, &[], &Progress::hidden()).unwrap();
        let rb = simulate(&b, &centers, policy, &[], &Progress::hidden()).unwrap();
        assert_eq!(ra.decision_hash, rb.decision_hash);
        assert_eq!(ra.without_wall(), rb.without_wall());
        assert_eq!(
            serde_json::to_string(&ra.without_wall()).unwrap(),
            serde_json::to_string(&rb.without_wall()).unwrap()
        );
    }
    let other = generated(800, 6, true);
    let r1 = simulate(&a, &centers, Policy::Fifo, &[], &Progress::hidden()).unwrap();
    let r2 = simulate(&other, &centers, Policy::Fifo, &[], &Progress::hidden()).unwrap();
    assert_ne!(r1.decision_hash, r2.decision_hash);
}

#[test]
fn empty_trace_and_no_centers() {
    let (_, r) = run(&[], &topology::builtin(64), Policy::Fifo);
    assert_eq!((r.jobs.total, r.span_secs, r.utilisation), (0, 0.0, 0.0));
    assert!(engine::run(&[], &[], Policy::Fifo, &Progress::hidden()).is_err());
}

fn fault(kind: FaultKind, s: &str) -> Fault {
    Fault::parse(kind, s).unwrap()
}

fn run_faults(jobs: &[SimJob], centers: &[CenterSpec], faults: &[Fault]) -> (RunOutput, Report) {
    let out =
        engine::run_with_faults(jobs, centers, Policy::Fifo, faults, &Progress::hidden()).unwrap();
    let report = Report::build(jobs, &out);
    (out, report)
}

#[test]
fn a_failed_center_loses_its_attempts_which_finish_elsewhere() {
    // Two 2-card centers; a (cheaper) takes both 1 h jobs first and fails at 10 min for good.
    let centers = [
        center("a", "RTX4090", 1, 2, "1"),
        center("b", "RTX4090", 1, 2, "2"),
    ];
    let jobs = vec![job(0, 0, 3600, 1, STD), job(1, 0, 3600, 1, STD)];
    let (out, r) = run_faults(&jobs, &centers, &[fault(FaultKind::Fail, "a@10m")]);
    let lease = engine::LEASE_TTL.as_millis() as i64;
    // Found lost one lease after the failure, placed again at b with the next attempt number.
    let requeued_at = 600_000 + lease + 1;
    for ji in 0..2 {
        let mine: Vec<_> = out.attempts.iter().filter(|a| a.job == ji).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
        let (lost, done) = (mine[0], mine[1]);
        assert_eq!(out.pools[lost.pool].center.as_str(), "a");
        assert_eq!((lost.attempt, lost.end), (1, AttemptEnd::LeaseLost));
        assert_eq!((lost.start_ms, lost.end_ms), (0, 600_000));
        // Metered (and billed) up to the failure: the last heartbeat that listed it.
        assert_eq!(lost.metered_card_secs, 600);
        assert_eq!(out.pools[done.pool].center.as_str(), "b");
        assert_eq!((done.attempt, done.end), (2, AttemptEnd::Finished));
        assert_eq!(done.start_ms, requeued_at);
        assert_eq!(out.outcomes[ji].finish_ms, Some(requeued_at + 3_600_000));
        assert_eq!(out.outcomes[ji].attempts, 2);
    }
    assert_eq!(r.requeues.lease_lost, 2);
    assert_eq!(r.requeues.lease_lost_card_secs, 1200);
    assert_eq!((r.requeues.drained, r.requeues.drained_card_secs), (0, 0));
    assert_eq!(r.lost_card_secs, 1200.0);
    assert_eq!(r.jobs.completed, 2);
    assert_eq!(out.lines.len(), 4, "every attempt that ran is billed once");
}

#[test]
fn a_center_that_comes_back_gets_work_again() {
    // One center only: it fails at 10 min for 1 h, so the lost job and the one submitted while
    // it is down wait for it and run there once it is back.
    let centers = [center("a", "RTX4090", 1, 2, "1")];
    let jobs = vec![job(0, 0, 3600, 2, STD), job(1, 1200, 600, 2, STD)];
    let (out, r) = run_faults(&jobs, &centers, &[fault(FaultKind::Fail, "a@10m+1h")]);
    assert_eq!(out.outcomes[0].attempts, 2);
    // Back at 70 min: job 0 (lost, queued first) runs 1 h, then job 1.
    assert_eq!(out.outcomes[0].finish_ms, Some(4_200_000 + 3_600_000));
    assert_eq!(out.outcomes[1].first_start_ms, Some(7_800_000));
    assert_eq!(out.outcomes[1].attempts, 1);
    assert_eq!(r.requeues.lease_lost, 1);
    assert_eq!(r.requeues.lease_lost_card_secs, 1200);
    // A failure for good of the only center strands the work.
    let e = engine::run_with_faults(
        &jobs,
        &centers,
        Policy::Fifo,
        &[fault(FaultKind::Fail, "a@10m")],
        &Progress::hidden(),
    )
    .unwrap_err();
    assert!(
        matches!(e, engine::SimError::Stalled { pending: 2, .. }),
        "{e}"
    );
    let e = engine::run_with_faults(
        &jobs,
        &centers,
        Policy::Fifo,
        &[fault(FaultKind::Fail, "z@10m")],
        &Progress::hidden(),
    )
    .unwrap_err();
    assert!(matches!(e, engine::SimError::UnknownCenter(_)), "{e}");
}

#[test]
fn a_drain_hands_back_what_runs_there() {
    let centers = [
        center("a", "RTX4090", 1, 2, "1"),
        center("b", "RTX4090", 1, 2, "2"),
    ];
    let jobs = vec![job(0, 0, 3600, 2, STD), job(1, 1800, 600, 2, STD)];
    let (out, r) = run_faults(&jobs, &centers, &[fault(FaultKind::Drain, "a@20m+20m")]);
    let first = &out.attempts[0];
    assert_eq!(
        (first.job, first.attempt, first.end),
        (0, 1, AttemptEnd::Drained)
    );
    assert_eq!((first.end_ms, first.metered_card_secs), (1_200_000, 2400));
    // Handed back at 20 min and placed at b at once; job 1 (at 30 min) takes a, undrained.
    assert_eq!(out.outcomes[0].finish_ms, Some(1_200_000 + 3_600_000));
    let second = out.attempts.iter().find(|a| a.job == 1).unwrap();
    assert_eq!(out.pools[second.pool].center.as_str(), "a");
    assert_eq!(
        (r.requeues.drained, r.requeues.drained_card_secs),
        (1, 2400)
    );
}

#[test]
fn runs_with_faults_are_deterministic_and_lose_no_job() {
    let centers = topology::builtin(64);
    let jobs = generated(1500, 4, true);
    for policy in Policy::ALL {
        // Fail the center of the longest attempt of the plain run in the middle of it: the runs
        // agree up to then, so that attempt is lost.
        let (plain, plain_report) = run(&jobs, &centers, policy);
        let long = plain
            .attempts
            .iter()
            .max_by_key(|a| (a.end_ms - a.start_ms, a.job))
            .unwrap();
        let at_s = (long.start_ms + long.end_ms) / 2000;
        let center = &plain.pools[long.pool].center;
        let faults = [
            fault(FaultKind::Fail, &format!("{center}@{at_s}s+6h")),
            fault(
                FaultKind::Drain,
                &format!("{}@{}s+1h", centers[0].id, at_s + 60),
            ),
        ];
        let ra = simulate(&jobs, &centers, policy, &faults, &Progress::hidden()).unwrap();
        let rb = simulate(&jobs, &centers, policy, &faults, &Progress::hidden()).unwrap();
        assert_eq!(ra.without_wall(), rb.without_wall(), "{policy:?}");
        assert_eq!(
            ra.jobs.completed + ra.jobs.timed_out + ra.jobs.rejected,
            jobs.len()
        );
        assert!(
            ra.requeues.lease_lost > 0,
            "{policy:?}: nothing lost at {center}"
        );
        assert!(
            ra.lost_card_secs > plain_report.lost_card_secs,
            "{policy:?}"
        );
        assert_ne!(plain_report.decision_hash, ra.decision_hash);
        assert_eq!(plain_report.requeues, crate::report::Requeues::default());
    }
}

#[test]
fn with_chip_speeds_a_run_scales_by_the_chips_speed_and_the_report_says_what_it_gained() {
    // Only the fast center (twice the reference) and then only the slow one (half) exist: the
    // same 1 h job runs 30 min and 2 h (its wall time is 2 h: it just fits).
    let speeds = crate::speeds::Speeds::parse_csv("t", "L40S,2\nA800-80G,0.5\n").unwrap();
    let config = || suanli_core::CoreConfig::with_policy(Policy::Fifo);
    let jobs = vec![job(0, 0, 3600, 1, STD)];
    for (sku, secs, gained, lost) in [("L40S", 1800, 0.5, 0.0), ("A800-80G", 3600 * 2, 0.0, 1.0)] {
        let centers = [center("c", sku, 1, 1, "1")];
        let out =
            engine::run_with_speeds(&jobs, &centers, config(), &[], &speeds, &Progress::hidden())
                .unwrap();
        let o = &out.outcomes[0];
        assert_eq!(
            o.finish_ms.unwrap() - o.first_start_ms.unwrap(),
            secs * 1000,
            "{sku}"
        );
        assert!(!o.timed_out, "{sku}");
        let r = Report::build(&jobs, &out);
        let s = r.speed.as_ref().expect("a speed model");
        assert_eq!(
            (s.card_hours_gained, s.card_hours_lost),
            (gained, lost),
            "{sku}"
        );
        // Same inputs, same report.
        let again =
            engine::run_with_speeds(&jobs, &centers, config(), &[], &speeds, &Progress::hidden())
                .unwrap();
        assert_eq!(Report::build(&jobs, &again).decision_hash, r.decision_hash);
    }
    // Slower still: past its wall time, it times out there.
    let slower = crate::speeds::Speeds::parse_csv("t", "A800-80G,0.4\n").unwrap();
    let centers = [center("c", "A800-80G", 1, 1, "1")];
    let out = engine::run_with_speeds(&jobs, &centers, config(), &[], &slower, &Progress::hidden())
        .unwrap();
    assert!(out.outcomes[0].timed_out);
    // Without a model, nothing changes.
    let plain = engine::run(&jobs, &centers, Policy::Fifo, &Progress::hidden()).unwrap();
    assert!(Report::build(&jobs, &plain).speed.is_none());
    let o = &plain.outcomes[0];
    assert_eq!(o.finish_ms.unwrap() - o.first_start_ms.unwrap(), 3_600_000);
}

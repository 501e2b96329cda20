//! The suanli policy (fair share, weights and past usage, quotas and borrowing, preemption,
//! backfill, the cost/wait/fit score, vouchers) and the baselines it is compared with.

use suanli_core::{CoreConfig, Policy, TenantPolicy, Weights};
use suanli_testkit::*;
use suanli_types::{JobId, PriorityClass, TenantId};

#[test]
fn tenants_share_by_fair_share_not_by_arrival() {
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 4, "2")]);
    for i in 1..=4 {
        c.enqueue(job(i, "early", 1, 60));
    }
    for i in 5..=8 {
        c.enqueue(job(i, "late", 1, 60));
    }
    let placed = ids(&pass(&mut c, T0));
    assert_eq!(placed.len(), 4);
    let late = placed.iter().filter(|&&j| j >= 5).count();
    assert_eq!(late, 2, "the later tenant gets half: {placed:?}");
    // FIFO holds within a tenant.
    assert!(
        placed.contains(&1) && placed.contains(&2) && placed.contains(&5) && placed.contains(&6)
    );
    let why = c.explain(JobId(3)).unwrap();
    assert!(why.contains("ahead"), "{why}");
    // 4 cards among 2 tenants: each holds 2 of 4 = its fair half; add a third tenant and the
    // two running ones are over.
    c.enqueue(job(9, "third", 1, 60));
    let why = c.explain(JobId(3)).unwrap();
    assert!(why.contains("over its fair share by"), "{why}");
}

#[test]
fn weights_and_past_usage_shift_the_share() {
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 6, "2")]);
    c.set_tenant(TenantId::new("big"), TenantPolicy::default().weighted(2));
    for i in 1..=6 {
        c.enqueue(job(i, "big", 1, 60));
        c.enqueue(job(100 + i, "small", 1, 60));
    }
    let placed = ids(&pass(&mut c, T0));
    let big = placed.iter().filter(|&&j| j < 100).count();
    assert_eq!(
        (big, placed.len() - big),
        (4, 2),
        "weight 2 gets twice: {placed:?}"
    );

    // Past usage: a tenant that just used the whole center waits behind one that did not.
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 2, "2")]);
    c.enqueue(job(1, "heavy", 2, 600));
    pass(&mut c, T0);
    pass(&mut c, mins(300));
    c.release(JobId(1));
    c.enqueue(job(2, "heavy", 1, 60));
    c.enqueue(job(3, "fresh", 2, 60));
    assert_eq!(ids(&pass(&mut c, mins(301))), vec![3], "fresh tenant first");
    let (share, entitled) = c.fair_share(&TenantId::new("heavy"), mins(301));
    assert!(share > 0.0 && entitled > 0.0);
}

#[test]
fn quotas_cap_and_borrowed_work_is_reclaimed() {
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 8, "2")]);
    let capped = TenantPolicy::default().quota("nvidia", 2, 2);
    c.set_tenant(TenantId::new("capped"), capped);
    let owner = TenantPolicy::default().quota("nvidia", 8, 0);
    c.set_tenant(TenantId::new("owner"), owner);
    for i in 1..=3 {
        c.enqueue(job(i, "capped", 2, 60));
    }
    // 2 nominal + 2 borrowed: the third is over its limit even though cards are free.
    assert_eq!(ids(&pass(&mut c, T0)), vec![1, 2]);
    let q = c.quote(&job(3, "capped", 2, 60), T0);
    assert!(q.candidates.is_empty());
    assert!(q.rejected[0].reason.contains("quota"), "{:?}", q.rejected);
    // The owner needs all 8 cards within its nominal quota: borrowed job 2 is evicted, job 1 (within
    // the capped tenant's nominal quota) is not, so the owner waits for 6 and takes them.
    c.enqueue(job(10, "owner", 6, 60));
    let p = pass(&mut c, mins(5));
    assert_eq!(ids(&p), vec![10]);
    assert_eq!(
        p[0].preempted,
        vec![JobId(2)],
        "only the borrowed work goes"
    );
    assert!(
        c.is_pending(JobId(2)),
        "the victim is queued again, not lost"
    );
}

#[test]
fn higher_classes_preempt_the_youngest_spot_work_at_a_limited_rate() {
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 4, "2")]);
    c.enqueue(job(1, "t", 2, 600).class(PriorityClass::Spot));
    pass(&mut c, T0);
    c.enqueue(job(2, "t", 2, 600).class(PriorityClass::Spot));
    pass(&mut c, mins(10));
    c.enqueue(job(3, "u", 2, 60).class(PriorityClass::PublicService));
    let p = pass(&mut c, mins(20));
    assert_eq!(ids(&p), vec![3]);
    assert_eq!(
        p[0].preempted,
        vec![JobId(2)],
        "the younger spot job loses less work"
    );
    // Another urgent job right away: the pool is rate-limited.
    c.enqueue(job(4, "u", 2, 60).class(PriorityClass::PublicService));
    assert!(pass(&mut c, mins(20)).is_empty());
    let p = pass(&mut c, mins(22));
    assert_eq!(ids(&p), vec![4]);
    assert_eq!(p[0].preempted, vec![JobId(1)]);
    // Spot never preempts standard.
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 1, 2, "2")]);
    c.enqueue(job(1, "t", 2, 600));
    pass(&mut c, T0);
    c.enqueue(job(2, "t", 2, 60).class(PriorityClass::Spot));
    assert!(pass(&mut c, mins(5)).is_empty());
}

#[test]
fn backfill_lets_short_jobs_run_ahead_only_if_they_end_before_the_reservation() {
    let mut c = core_of(Policy::Suanli, &[center("a", "RTX4090", 2, 4, "2")]);
    c.enqueue(job(1, "t", 4, 60)); // ends at 60 min
    c.enqueue(job(2, "t", 2, 30)); // ends at 30 min
    assert_eq!(ids(&pass(&mut c, T0)), vec![1, 2]);
    // Job 3 needs both nodes whole: it must wait for job 1 (60 min) and reserves the pool.
    let mut big = job(3, "t", 4, 60);
    big.spec.nodes = 2;
    c.enqueue(big);
    c.enqueue(job(4, "t", 2, 120)); // would end after the reservation: waits
    c.enqueue(job(5, "t", 2, 50)); // ends at 60 min at the latest: runs now
    let p = pass(&mut c, mins(10));
    assert_eq!(ids(&p), vec![5], "only the short job backfills");
    let why = c.explain(JobId(3)).unwrap();
    assert!(why.contains("2 nodes x 4"), "{why}");
}

#[test]
fn waits_for_a_much_cheaper_pool_when_the_wait_is_short_and_prefers_the_smaller_chip() {
    let centers = [
        center("cheap", "RTX4090", 1, 1, "2"),
        center("dear", "L40S", 1, 1, "6"),
    ];
    let mut c = core_of(Policy::Suanli, &centers);
    c.enqueue(job(1, "t", 1, 20)); // occupies cheap until 20 min at the latest
    assert_eq!(pass(&mut c, T0)[0].alloc.center.as_str(), "cheap");
    // A 120-minute job: waiting at most 20 min (score 0.17) beats paying 3x (score 2).
    c.enqueue(job(2, "t", 1, 120));
    assert!(pass(&mut c, mins(1)).is_empty(), "waits for the cheap pool");
    let q = c.quote(&job(9, "t", 1, 120), mins(1));
    assert_eq!(q.candidates[0].center.as_str(), "cheap");
    assert_eq!(q.candidates[0].expected_start, mins(20));
    assert_eq!(q.candidates[1].cost_total, "12.00".parse().unwrap());
    // A 10-minute job would wait twice its length: it takes the dear pool now.
    c.enqueue(job(3, "t", 1, 10));
    let p = pass(&mut c, mins(2));
    assert_eq!((ids(&p), p[0].alloc.center.as_str()), (vec![3], "dear"));

    // Same price: the less capable chip that fits.
    let centers = [
        center("h", "H100-SXM", 1, 8, "4"),
        center("r", "RTX4090", 1, 8, "4"),
    ];
    let mut c = core_of(Policy::Suanli, &centers);
    c.enqueue(job(1, "t", 1, 60));
    assert_eq!(pass(&mut c, T0)[0].alloc.center.as_str(), "r");
}

#[test]
fn baselines_behave_as_their_peers() {
    let centers = [
        center("a-dear", "L40S", 1, 2, "6"),
        center("b-cheap", "RTX4090", 1, 2, "2"),
    ];
    // FIFO: first center in list order, and the head blocks everyone behind it.
    let mut c = core_of(Policy::Fifo, &centers);
    c.enqueue(job(1, "t", 1, 60));
    let big = job(2, "t", 4, 60);
    c.enqueue(big);
    c.enqueue(job(3, "t", 1, 60));
    let p = pass(&mut c, T0);
    assert_eq!(ids(&p), vec![1]);
    assert_eq!(p[0].alloc.center.as_str(), "a-dear");
    // Cheapest: lowest cost now, skips what does not fit.
    let mut c = core_of(Policy::Cheapest, &centers);
    c.enqueue(job(1, "t", 1, 60));
    c.enqueue(job(2, "t", 4, 60));
    c.enqueue(job(3, "t", 2, 60));
    let p = pass(&mut c, T0);
    assert_eq!(ids(&p), vec![1, 3]);
    assert_eq!(p[0].alloc.center.as_str(), "b-cheap");
    assert_eq!(p[1].alloc.center.as_str(), "a-dear");
    // Least loaded: the emptier pool.
    let mut c = core_of(Policy::LeastLoaded, &centers);
    c.enqueue(job(1, "t", 1, 60));
    c.enqueue(job(2, "t", 1, 60));
    let p = pass(&mut c, T0);
    assert_ne!(p[0].alloc.center, p[1].alloc.center);
}

/// The same inputs give the same decisions; the hash tells.

#[test]
fn vouchers_change_where_a_tenant_is_cheapest() {
    // Domestic chips cost more at list price, but this tenant's vouchers pay 60% of them.
    let centers = [
        center("nv", "RTX4090", 1, 8, "3"),
        center("dom", "Ascend910B3", 1, 8, "5"),
    ];
    let mut c = core_of(Policy::Suanli, &centers);
    let sme = TenantPolicy::default().pays("Ascend910B3", 4_000);
    c.set_tenant(TenantId::new("sme"), sme);
    c.enqueue(job(1, "sme", 1, 60));
    c.enqueue(job(2, "big", 1, 60));
    let p = pass(&mut c, T0);
    let at = |id: i64| {
        p.iter()
            .find(|p| p.job.0 == id)
            .unwrap()
            .alloc
            .center
            .to_string()
    };
    assert_eq!(at(1), "dom", "5 x 40% = 2 < 3");
    assert_eq!(at(2), "nv");
    let q = c.quote(&job(3, "sme", 1, 60), T0);
    assert_eq!(q.candidates[0].cost_per_hour, "2.00".parse().unwrap());
}

#[test]
fn a_long_queue_at_a_cheap_pool_sends_work_to_idle_capacity() {
    // The cheap pool's 2 cards are busy for an hour; the dear pool costs 3.5 x and is idle. By
    // default a job waits for the cheap pool while its wait is under 2.5 wall times (the cost
    // difference), and every job queued there ahead of it adds its wall time x cards / 2.
    let centers = [
        center("cheap", "RTX4090", 1, 2, "1"),
        center("dear", "RTX4090", 4, 8, "3.5"),
    ];
    let run = |weights: Weights| {
        let config = CoreConfig {
            weights,
            ..CoreConfig::default()
        };
        let mut c = core_with(config, &centers);
        c.enqueue(job(1, "t", 1, 60));
        c.enqueue(job(2, "t", 1, 60));
        let p = pass(&mut c, T0);
        assert!(p.iter().all(|p| p.alloc.center.as_str() == "cheap"));
        for i in 3..=20 {
            c.enqueue(job(i, "t", 1, 60));
        }
        let p = pass(&mut c, mins(1));
        (c, p)
    };
    let (c, p) = run(Weights::default());
    let waiting: Vec<i64> = (3..=20).filter(|&i| c.is_pending(JobId(i))).collect();
    // Job 3 reserves the cheap pool from minute 60, job 4 starts behind it at 120, job 5 at
    // 150 (2.48 wall times away); job 6 would start at 180, past the 2.5 that waiting is worth.
    assert_eq!(waiting, vec![3, 4, 5]);
    assert_eq!(p.len(), 15);
    assert!(p.iter().all(|p| p.alloc.center.as_str() == "dear"));
    let why = c.explain(JobId(5)).unwrap();
    assert!(
        why.starts_with("waits for cheap (RTX4090, 1.00 per card-hour): expected start ")
            && why.contains("(in 2h 29m), behind 2 jobs waiting there (1.0 card-hours queued")
            && why.contains("dear (RTX4090) fits now but costs 250% more"),
        "{why}"
    );

    // The knob at "money": waiting costs nothing in the score, so every job waits.
    let (c, p) = run(Weights {
        wait: 0.0,
        ..Weights::default()
    });
    assert!(p.is_empty(), "{:?}", ids(&p));
    assert!((3..=20).all(|i| c.is_pending(JobId(i))));
}

#[test]
fn fastest_puts_each_job_on_the_fastest_free_chip_and_a_blocked_job_holds_no_one_back() {
    // H100 (989 TFLOPS) dear, A800 (312) cheaper, RTX4090 (165) cheapest.
    let centers = [
        center("a-4090", "RTX4090", 1, 2, "1"),
        center("b-a800", "A800-80G", 1, 2, "3"),
        center("c-h100", "H100-SXM", 1, 2, "9"),
    ];
    let mut c = core_of(Policy::Fastest, &centers);
    c.enqueue(job(1, "t", 2, 60));
    c.enqueue(job(2, "t", 2, 60));
    c.enqueue(job(3, "t", 4, 60)); // fits nowhere now: the next still goes
    c.enqueue(job(4, "t", 2, 60));
    let p = pass(&mut c, T0);
    let at: Vec<(i64, &str)> = p
        .iter()
        .map(|x| (x.job.0, x.alloc.center.as_str()))
        .collect();
    assert_eq!(at, [(1, "c-h100"), (2, "b-a800"), (4, "a-4090")]);
    assert!("fastest".parse::<Policy>().unwrap() == Policy::Fastest);
}

#[test]
fn fastest_serves_the_least_served_tenant_next_by_normalised_share() {
    let centers = [
        center("fast", "H100-SXM", 1, 1, "9"),
        center("slow", "RTX4090", 1, 1, "1"),
    ];
    let mut c = core_of(Policy::Fastest, &centers);
    c.enqueue(job(1, "a", 1, 60));
    c.enqueue(job(2, "a", 1, 60));
    c.enqueue(job(3, "b", 1, 60));
    let p = pass(&mut c, T0);
    let at: Vec<(i64, &str)> = p
        .iter()
        .map(|x| (x.job.0, x.alloc.center.as_str()))
        .collect();
    // a's first job takes the fastest chip; then b, who has had nothing, goes before a's second.
    assert_eq!(at, [(1, "fast"), (3, "slow")]);
}

//! The strong baselines on small hand-built cases: each behaves as its definition says.

use suanli_core::Policy;
use suanli_testkit::*;
use suanli_types::JobId;

#[test]
fn slurm_backfills_a_short_job_without_delaying_the_head() {
    let mut c = core_of(Policy::Slurm, &[center("a", "RTX4090", 1, 4, "2")]);
    c.enqueue(job(1, "t", 3, 60));
    assert_eq!(ids(&pass(&mut c, T0)), vec![1]);
    // Job 7 asks for the whole node: last by arrival, first by priority (job size). It
    // reserves the node from minute 60, when job 1 ends by its wall time.
    c.enqueue(job(3, "t", 1, 120));
    c.enqueue(job(4, "t", 1, 30));
    c.enqueue(job(7, "t", 4, 60));
    let p = pass(&mut c, mins(1));
    // Job 4 ends by minute 31, before the reservation: it runs now. Job 3 would run past it.
    assert_eq!(ids(&p), vec![4]);
    assert!(c.is_pending(JobId(3)) && c.is_pending(JobId(7)));
    // Strict FIFO, same shapes: the head blocks the short job behind it.
    let mut f = core_of(Policy::Fifo, &[center("a", "RTX4090", 1, 4, "2")]);
    f.enqueue(job(1, "t", 3, 60));
    pass(&mut f, T0);
    f.enqueue(job(7, "t", 4, 60));
    f.enqueue(job(8, "t", 1, 30));
    assert!(pass(&mut f, mins(1)).is_empty());
}

#[test]
fn slurm_reserves_the_center_where_the_head_starts_earliest() {
    let centers = [
        center("a", "RTX4090", 1, 4, "2"),
        center("b", "RTX4090", 1, 4, "2"),
    ];
    let mut c = core_of(Policy::Slurm, &centers);
    c.enqueue(job(1, "t", 3, 60));
    assert_eq!(pass(&mut c, T0)[0].alloc.center.as_str(), "a");
    c.enqueue(job(5, "t", 3, 20));
    assert_eq!(pass(&mut c, T0)[0].alloc.center.as_str(), "b");
    // The whole-node job starts earliest at b (minute 20, against 60 at a): it reserves b.
    c.enqueue(job(7, "t", 4, 60));
    c.enqueue(job(8, "t", 1, 120));
    c.enqueue(job(9, "t", 1, 10));
    let p = pass(&mut c, mins(1));
    let at = |id: i64| {
        p.iter()
            .find(|p| p.job.0 == id)
            .map(|p| p.alloc.center.to_string())
    };
    // a is not reserved: the long job runs there; the short one ends before b's reservation.
    assert_eq!(at(8).as_deref(), Some("a"));
    assert_eq!(at(9).as_deref(), Some("b"));
    assert!(c.is_pending(JobId(7)));
    let why = c.explain(JobId(7)).unwrap();
    assert!(why.contains("waits for b (RTX4090"), "{why}");
}

#[test]
fn tiresias_demotes_a_job_once_its_attained_service_crosses_a_threshold() {
    // Default thresholds: 1 and 16 card-hours. Two cards, long wall times (never consulted).
    let mut c = core_of(Policy::Tiresias, &[center("a", "RTX4090", 1, 2, "2")]);
    c.enqueue(job(1, "t", 2, 600));
    assert_eq!(ids(&pass(&mut c, T0)), vec![1]);
    // After 20 minutes job 1 has attained 2 x 20 = 40 card-minutes: level 0 like the newcomer.
    c.enqueue(job(2, "t", 2, 600));
    assert!(pass(&mut c, mins(20)).is_empty());
    // After 31 minutes, 62 card-minutes: past the threshold, so job 2 preempts it.
    let p = pass(&mut c, mins(31));
    assert_eq!(ids(&p), vec![2]);
    assert_eq!(p[0].preempted, vec![JobId(1)]);
    assert!(c.is_pending(JobId(1)));
    // Job 1 keeps what it attained: a later, fresh job goes before it.
    c.release(JobId(2));
    c.enqueue(job(3, "t", 2, 600));
    assert_eq!(ids(&pass(&mut c, mins(40))), vec![3]);
    // Job 3 (level 0 until minute 70) is not preempted for the demoted job 1.
    assert!(pass(&mut c, mins(60)).is_empty());
}

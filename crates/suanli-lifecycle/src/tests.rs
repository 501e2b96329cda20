//! The lifecycle against a tiny in-memory store that checks every compare-and-set, with a fixed
//! clock; and property tests over random runs: no job lost, attempts only increase, never two
//! live attempts of one job, every ended attempt billed exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use suanli_core::CoreConfig;
use suanli_money::{Books, Parties, Record};
use suanli_types::record::{
    AttemptOutcome, AttemptRecord, JobRecord, PlacementCandidate, PlacementDecision,
};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobId, JobSpec, JobState, Money, NodePool, OwnerType,
    PriorityClass, TenantCategory, TenantId, Timestamp,
};

use crate::{Change, Ended, InvalidReport, Lifecycle, Report, Standing, StopError, SubmitError};

const T0: Timestamp = Timestamp(1_795_730_906_000);
const TTL: Duration = Duration::from_secs(60);

fn center(id: &str, nodes: u32, cards_per_node: u32) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(id),
        name: id.to_string(),
        city: "Shenzhen".into(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: vec![NodePool {
            sku: "RTX4090".into(),
            nodes,
            cards_per_node,
            price_per_card_hour: Money::from_yuan(2),
        }],
        stacks: Default::default(),
    }
}

/// A lifecycle over the given centers (priced, online) and tenants `t0`, `t1`.
fn lifecycle(centers: &[CenterSpec]) -> Lifecycle {
    let mut books = Books::new();
    for c in centers {
        let _ = books
            .set_price(
                &c.id,
                "RTX4090",
                Money::from_yuan(2),
                Some(5000),
                Timestamp(0),
            )
            .unwrap();
    }
    let parties = Parties::default()
        .tenant("t0", TenantCategory::Sme)
        .tenant("t1", TenantCategory::Research);
    let mut life = Lifecycle::new(
        CoreConfig::default(),
        TTL,
        books,
        parties,
        Box::new(|p, attempt| Some(decision(p, attempt))),
    );
    for c in centers {
        life.upsert_center(c);
        life.set_online(&c.id, true);
    }
    life
}

/// A decision that names only where the attempt went.
fn decision(p: &suanli_core::Placement, attempt: u32) -> PlacementDecision {
    let (center, sku) = (p.alloc.center.clone(), p.alloc.sku.clone());
    let chosen = PlacementCandidate {
        center: center.clone(),
        sku: sku.clone(),
        price_per_card_hour: Money::ZERO,
        cost_per_hour: Money::ZERO,
        cost_total: Money::ZERO,
        free_cards: 0,
        expected_start: p.decision.at,
        score_milli: 0,
        expected_run_secs: None,
    };
    let (at, rule) = (p.decision.at, "test".to_string());
    let (nodes, others, rejected) = Default::default();
    PlacementDecision {
        attempt,
        at,
        center,
        sku,
        nodes,
        chosen,
        others,
        rejected,
        rule,
    }
}

fn spec(cards: u32, spot: bool) -> JobSpec {
    let mut s = JobSpec::new("t", "true");
    s.cards_per_node = cards;
    if spot {
        s.priority = PriorityClass::Spot;
    }
    s
}

fn secs(s: i64) -> Timestamp {
    T0.plus_millis(s * 1000)
}

/// A store as small as the lifecycle needs: job rows (compare-and-set checked), attempt rows,
/// and bill lines.
#[derive(Default)]
struct Db {
    jobs: BTreeMap<JobId, JobRecord>,
    attempts: BTreeMap<(JobId, u32), AttemptRecord>,
    lines: BTreeMap<(JobId, u32), u64>,
}

impl Db {
    fn submit(
        &mut self,
        life: &mut Lifecycle,
        tenant: &str,
        spec: JobSpec,
        now: Timestamp,
    ) -> JobId {
        let new = life
            .submit(
                now,
                TenantId::new(tenant),
                ("alice".into(), Some(1)),
                spec,
                None,
            )
            .unwrap();
        let id = JobId(self.jobs.len() as i64 + 1);
        let rec = JobRecord::queued(id, new, None);
        self.jobs.insert(id, rec.clone());
        life.submitted(rec);
        id
    }

    /// Writes a change as the store would (refusing a stale compare-and-set), then applies it.
    fn commit(&mut self, life: &mut Lifecycle, change: Change) {
        if let Some(w) = &change.write {
            let cur = &self.jobs[&change.job];
            assert_eq!(
                (cur.state, cur.attempt),
                (w.expect_state, w.expect_attempt),
                "compare-and-set of job {}",
                change.job
            );
            assert!(w.rec.attempt >= cur.attempt, "attempts only increase");
            self.jobs.insert(change.job, w.rec.clone());
            if let Some(a) = &w.attempt {
                let key = (a.job, a.attempt);
                let placed_at = self.attempts.get(&key).map_or(a.placed_at, |o| o.placed_at);
                self.attempts.insert(
                    key,
                    AttemptRecord {
                        placed_at,
                        ..a.clone()
                    },
                );
            }
        }
        for r in &change.money {
            if let Record::Line(l) = r {
                let key = (l.usage.job, l.usage.attempt);
                assert!(
                    self.lines.insert(key, l.usage.card_seconds).is_none(),
                    "attempt {key:?} billed twice"
                );
            }
        }
        life.apply(change);
    }

    fn pass(&mut self, life: &mut Lifecycle, now: Timestamp) -> Vec<JobId> {
        let mut placed = Vec::new();
        for p in life.schedule(now) {
            for v in &p.preempted {
                if let Some(c) = life.preempt(*v, p.job, &p.alloc.center, now) {
                    self.commit(life, c);
                }
            }
            match life.place(&p, now) {
                Some(c) => {
                    self.commit(life, c);
                    placed.push(p.job);
                }
                None => life.abandon_placement(p.job),
            }
        }
        placed
    }

    fn report(&mut self, life: &mut Lifecycle, id: JobId, r: Report, now: Timestamp) -> bool {
        let rec = &self.jobs[&id];
        let (center, attempt) = (
            rec.center.clone().unwrap_or(CenterId::new("?")),
            rec.attempt,
        );
        match life
            .report(&center, id, attempt, r, now)
            .expect("a valid report")
        {
            Some(c) => {
                self.commit(life, c);
                true
            }
            None => false,
        }
    }

    fn expire_all(&mut self, life: &mut Lifecycle, now: Timestamp) {
        for id in life.expired(now) {
            let c = life.expire(id, now);
            self.commit(life, c);
        }
    }
}

fn finished(outcome: Ended, started: Timestamp, ended: Timestamp, card_seconds: u64) -> Report {
    Report::Finished {
        outcome,
        exit_code: (outcome == Ended::Failed).then_some(3),
        started_at: started,
        ended_at: ended,
        card_seconds,
        log_chunks: 0,
        message: String::new(),
        request: Some("req-1".into()),
    }
}

#[test]
fn a_job_runs_to_success_and_is_billed_once() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let id = db.submit(&mut life, "t0", spec(2, false), T0);
    assert_eq!(db.pass(&mut life, T0), vec![id]);
    let rec = &db.jobs[&id];
    assert_eq!((rec.state, rec.attempt), (JobState::Placed, 1));
    let placed = rec
        .placement
        .as_ref()
        .map(|p| (p.center.as_str(), p.attempt));
    assert_eq!(placed, Some(("a", 1)));
    assert_eq!(rec.lease_expires_at, Some(T0.plus_millis(60_000)));
    assert_eq!(life.placed_at_center(&CenterId::new("a")).len(), 1);

    assert!(db.report(&mut life, id, Report::Started { at: secs(1) }, secs(1)));
    assert_eq!(db.jobs[&id].state, JobState::Running);
    let done = finished(Ended::Succeeded, secs(1), secs(61), 120);
    assert!(db.report(&mut life, id, done.clone(), secs(62)));
    let rec = &db.jobs[&id];
    assert_eq!(rec.state, JobState::Succeeded);
    assert_eq!(rec.card_seconds, 120);
    assert!(life.job(id).is_none(), "an ended job leaves the lifecycle");
    assert!(life.core().allocation(id).is_none(), "its cards are free");
    assert_eq!(db.lines.get(&(id, 1)), Some(&120));
    let line = life.books().line_for(id, 1).unwrap();
    assert_eq!(
        line.usage.report.as_deref(),
        Some("req-1"),
        "traced to its report"
    );
    assert_eq!(
        db.attempts[&(id, 1)].outcome,
        Some(AttemptOutcome::Succeeded)
    );
    // A retried report of the ended attempt is not current any more: nothing changes.
    assert!(!db.report(&mut life, id, done, secs(63)));
    assert_eq!(db.lines.len(), 1);
}

#[test]
fn a_lost_lease_requeues_with_the_next_attempt_and_meters_to_the_last_heartbeat() {
    let a = CenterId::new("a");
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let id = db.submit(&mut life, "t0", spec(1, false), T0);
    db.pass(&mut life, T0);
    assert!(db.report(&mut life, id, Report::Started { at: secs(1) }, secs(1)));
    assert!(life.heartbeat(&a, &[(id, 1)], secs(10)).is_empty());
    assert!(
        life.expired(secs(70)).is_empty(),
        "the heartbeat renewed the lease"
    );
    assert_eq!(life.expired(secs(71)), vec![id]);
    db.expire_all(&mut life, secs(71));
    let rec = &db.jobs[&id];
    assert_eq!(
        (rec.state, rec.attempt, rec.center.as_ref()),
        (JobState::Queued, 1, None)
    );
    let att = &db.attempts[&(id, 1)];
    assert_eq!(att.outcome, Some(AttemptOutcome::Lost));
    assert_eq!(
        (att.started_at, att.ended_at),
        (Some(secs(1)), Some(secs(10)))
    );
    assert_eq!(att.card_seconds, 9);
    assert_eq!(db.lines.get(&(id, 1)), Some(&9));
    assert!(life.core().allocation(id).is_none());
    assert_eq!(db.pass(&mut life, secs(72)), vec![id]);
    assert_eq!(db.jobs[&id].attempt, 2);
    // A report from the lost attempt is stale.
    let late = finished(Ended::Succeeded, secs(1), secs(80), 79);
    assert_eq!(life.report(&a, id, 1, late, secs(80)), Ok(None));
}

#[test]
fn a_cancelled_running_job_holds_its_cards_until_the_site_confirms() {
    let a = CenterId::new("a");
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let id = db.submit(&mut life, "t0", spec(4, false), T0);
    db.pass(&mut life, T0);
    assert!(db.report(&mut life, id, Report::Started { at: secs(1) }, secs(1)));
    let c = life
        .cancel(id, "cancelled by bob", "cancelled by bob", secs(5))
        .unwrap();
    assert_eq!(c.wake.as_ref(), Some(&a));
    db.commit(&mut life, c);
    assert_eq!(db.jobs[&id].state, JobState::Cancelled);
    assert_eq!(
        life.cancel(id, "again", "again", secs(6)),
        Err(StopError::Cancelled(id))
    );
    assert!(
        life.core().allocation(id).is_some(),
        "cards held until confirmed"
    );
    assert_eq!(life.heartbeat(&a, &[(id, 1)], secs(6)), vec![(id, 1)]);
    assert_eq!(life.to_stop(&a), vec![(id, 1)]);
    // A second job cannot get the cards yet.
    let other = db.submit(&mut life, "t1", spec(4, false), secs(6));
    assert!(db.pass(&mut life, secs(6)).is_empty());
    let stopped = finished(Ended::Killed, secs(1), secs(7), 24);
    assert!(db.report(&mut life, id, stopped, secs(7)));
    assert_eq!(db.jobs[&id].state, JobState::Cancelled);
    assert_eq!(db.lines.get(&(id, 1)), Some(&24));
    assert!(life.to_stop(&a).is_empty());
    assert_eq!(db.pass(&mut life, secs(8)), vec![other]);
}

/// L1: a placed job cancelled before its start held its cards for a whole lease, so
/// submit-and-cancel in a loop blocked capacity. Its cards are freed at once now, the site is
/// told to drop the attempt, and a late start of it is stale.
#[test]
fn a_cancelled_placed_job_frees_its_cards_at_once() {
    let a = CenterId::new("a");
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    for round in 0..3 {
        let at = secs(10 * round);
        let id = db.submit(&mut life, "t0", spec(4, false), at);
        assert_eq!(
            db.pass(&mut life, at),
            vec![id],
            "round {round}: placed at once"
        );
        let c = life.cancel(id, "cancelled", "cancelled", at).unwrap();
        assert_eq!(c.wake.as_ref(), Some(&a));
        db.commit(&mut life, c);
        assert_eq!(db.jobs[&id].state, JobState::Cancelled);
        assert_eq!(db.jobs[&id].lease_expires_at, None, "no lease kept");
        assert!(life.core().allocation(id).is_none(), "cards freed at once");
        assert!(life.job(id).is_none());
        assert!(life.to_stop(&a).contains(&(id, 1)), "the site drops it");
        assert!(!life.is_current(&a, id, 1), "its reports are stale");
    }
    let other = db.submit(&mut life, "t1", spec(4, false), secs(31));
    assert_eq!(db.pass(&mut life, secs(31)), vec![other]);
}

#[test]
fn draining_hands_back_placed_attempts_and_orders_the_stop() {
    let a = CenterId::new("a");
    let mut life = lifecycle(&[center("a", 2, 4)]);
    let mut db = Db::default();
    let running = db.submit(&mut life, "t0", spec(4, false), T0);
    let placed = db.submit(&mut life, "t0", spec(4, false), T0);
    assert_eq!(db.pass(&mut life, T0).len(), 2);
    assert!(db.report(&mut life, running, Report::Started { at: secs(1) }, secs(1)));
    life.set_online(&a, false);
    assert_eq!(life.drain_targets(&a, false), (vec![placed], 1));
    assert_eq!(life.drain_targets(&a, true), (vec![running, placed], 0));
    let c = life.hand_back(placed, &a, secs(2));
    db.commit(&mut life, c);
    let rec = &db.jobs[&placed];
    assert_eq!((rec.state, rec.center.as_ref()), (JobState::Queued, None));
    assert_eq!(
        db.attempts[&(placed, 1)].outcome,
        Some(AttemptOutcome::Drained)
    );
    assert!(
        !db.lines.contains_key(&(placed, 1)),
        "it never started: nothing to bill"
    );
    assert_eq!(life.to_stop(&a), vec![(placed, 1)]);
    // The stop order stands while the site lists the attempt, and goes once it does not.
    assert!(
        life.heartbeat(&a, &[(running, 1), (placed, 1)], secs(3))
            .contains(&(placed, 1))
    );
    assert!(life.heartbeat(&a, &[(running, 1)], secs(4)).is_empty());
    assert!(life.to_stop(&a).is_empty());
    assert!(
        db.pass(&mut life, secs(5)).is_empty(),
        "the drained center takes no work"
    );
}

#[test]
fn a_cancelled_spot_job_the_core_evicts_is_not_queued_again() {
    let a = CenterId::new("a");
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let spot = db.submit(&mut life, "t0", spec(4, true), T0);
    db.pass(&mut life, T0);
    assert!(db.report(&mut life, spot, Report::Started { at: secs(1) }, secs(1)));
    let c = life
        .cancel(spot, "cancelled", "cancelled", secs(2))
        .unwrap();
    db.commit(&mut life, c);
    // The cancelled attempt still holds the cards; a standard job evicts it.
    let standard = db.submit(&mut life, "t1", spec(4, false), secs(3));
    assert_eq!(db.pass(&mut life, secs(3)), vec![standard]);
    assert!(
        !life.core().is_pending(spot),
        "a cancelled job never runs again"
    );
    assert_eq!(db.jobs[&spot].state, JobState::Cancelled);
    assert_eq!(life.to_stop(&a), vec![(spot, 1)]);
    assert!(db.pass(&mut life, secs(200)).is_empty());
    // The site's confirmation ends it, billed once.
    let stopped = finished(Ended::Killed, secs(1), secs(4), 12);
    assert!(db.report(&mut life, spot, stopped, secs(4)));
    assert!(life.job(spot).is_none());
    assert_eq!(db.lines.get(&(spot, 1)), Some(&12));
}

#[test]
fn a_killed_attempt_is_requeued_and_a_failure_ends_the_job() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let id = db.submit(&mut life, "t0", spec(1, false), T0);
    db.pass(&mut life, T0);
    assert!(db.report(&mut life, id, Report::Started { at: secs(1) }, secs(1)));
    assert!(db.report(
        &mut life,
        id,
        finished(Ended::Killed, secs(1), secs(3), 2),
        secs(3)
    ));
    assert_eq!(
        (db.jobs[&id].state, db.jobs[&id].attempt),
        (JobState::Queued, 1)
    );
    db.pass(&mut life, secs(4));
    assert_eq!(db.jobs[&id].attempt, 2);
    assert!(db.report(&mut life, id, Report::Started { at: secs(5) }, secs(5)));
    assert!(db.report(
        &mut life,
        id,
        finished(Ended::Failed, secs(5), secs(9), 4),
        secs(9)
    ));
    let rec = &db.jobs[&id];
    assert_eq!((rec.state, rec.exit_code), (JobState::Failed, Some(3)));
    assert_eq!(rec.card_seconds, 6);
    assert_eq!(db.lines.len(), 2);
}

#[test]
fn submit_refuses_a_job_no_center_can_hold_and_a_network_that_shrank_fails_it() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let err = life
        .submit(
            T0,
            TenantId::new("t0"),
            ("alice".into(), None),
            spec(8, false),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, SubmitError::Unschedulable(ref r) if r.len() == 1),
        "{err:?}"
    );
    let id = db.submit(&mut life, "t0", spec(4, false), T0);
    life.upsert_center(&center("a", 1, 2));
    let changes = life.fail_impossible(secs(1));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].finished, Some(JobState::Failed));
    for c in changes {
        db.commit(&mut life, c);
    }
    assert_eq!(db.jobs[&id].state, JobState::Failed);
    assert!(life.job(id).is_none());
    assert_eq!(life.core().pending_len(), 0);
}

// ---------------------------------------------------------------- properties

#[derive(Clone, Debug)]
enum Op {
    Submit { tenant: u8, cards: u32, spot: bool },
    Pass,
    Advance(i64),
    Heartbeat { center: u8, mask: u8 },
    Start(usize),
    Finish { pick: usize, outcome: u8, secs: i64 },
    Cancel(usize),
    Expire,
    Drain { center: u8, requeue: bool },
    Undrain(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..2, 1u32..=4, any::<bool>()).prop_map(|(tenant, cards, spot)| Op::Submit { tenant, cards, spot }),
        3 => Just(Op::Pass),
        2 => (0i64..90_000).prop_map(Op::Advance),
        3 => (0u8..2, any::<u8>()).prop_map(|(center, mask)| Op::Heartbeat { center, mask }),
        3 => (0usize..16).prop_map(Op::Start),
        3 => (0usize..16, 0u8..4, 0i64..200).prop_map(|(pick, outcome, secs)| Op::Finish { pick, outcome, secs }),
        1 => (0usize..16).prop_map(Op::Cancel),
        1 => Just(Op::Expire),
        1 => (0u8..2, any::<bool>()).prop_map(|(center, requeue)| Op::Drain { center, requeue }),
        1 => (0u8..2).prop_map(Op::Undrain),
    ]
}

/// The `pick`th of the jobs in the lifecycle that pass `keep`, if any.
fn pick(life: &Lifecycle, n: usize, keep: impl Fn(&crate::JobView<'_>) -> bool) -> Option<JobId> {
    let ids: Vec<JobId> = life.jobs().filter(|j| keep(j)).map(|j| j.rec.id).collect();
    (!ids.is_empty()).then(|| ids[n % ids.len()])
}

fn run(ops: &[Op]) {
    let centers = [center("a", 2, 4), center("b", 1, 2)];
    let ids: Vec<CenterId> = centers.iter().map(|c| c.id.clone()).collect();
    let mut life = lifecycle(&centers);
    let mut db = Db::default();
    let mut now = T0;
    let mut attempts_seen: BTreeMap<JobId, u32> = BTreeMap::new();
    for op in ops {
        match op.clone() {
            Op::Submit {
                tenant,
                cards,
                spot,
            } => {
                let t = format!("t{tenant}");
                db.submit(&mut life, &t, spec(cards, spot), now);
            }
            Op::Pass => {
                db.pass(&mut life, now);
            }
            Op::Advance(ms) => now = now.plus_millis(ms),
            Op::Heartbeat { center, mask } => {
                let c = &ids[center as usize];
                let listed: Vec<(JobId, u32)> = life
                    .jobs()
                    .filter(|j| j.rec.center.as_ref() == Some(c))
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
                    .map(|(_, j)| (j.rec.id, j.rec.attempt))
                    .collect();
                let kill = life.heartbeat(c, &listed, now);
                for k in &kill {
                    assert!(
                        life.to_stop(c).contains(k) || !life.is_current(c, k.0, k.1),
                        "stop order for a live, uncancelled attempt {k:?}"
                    );
                }
            }
            Op::Start(n) => {
                if let Some(id) = pick(&life, n, |j| j.rec.state == JobState::Placed) {
                    db.report(&mut life, id, Report::Started { at: now }, now);
                }
            }
            Op::Finish {
                pick: n,
                outcome,
                secs,
            } => {
                let keep = |j: &crate::JobView<'_>| {
                    j.rec.state == JobState::Running || (j.cancelled && j.rec.center.is_some())
                };
                if let Some(id) = pick(&life, n, keep) {
                    let started = life.started(id).unwrap_or(now);
                    let ended = started.plus_millis(secs * 1000);
                    let outcome = [
                        Ended::Succeeded,
                        Ended::Failed,
                        Ended::TimedOut,
                        Ended::Killed,
                    ][outcome as usize];
                    let cards = db.jobs[&id].spec.total_cards() as u64;
                    let r = finished(outcome, started, ended, secs as u64 * cards);
                    now = now.max(ended);
                    db.report(&mut life, id, r.clone(), now);
                    // A retry of the same report changes nothing.
                    assert!(!db.report(&mut life, id, r, now) || outcome == Ended::Killed);
                }
            }
            Op::Cancel(n) => {
                if let Some(id) = pick(&life, n, |j| !j.cancelled) {
                    let c = life.cancel(id, "cancelled", "cancelled", now).unwrap();
                    db.commit(&mut life, c);
                }
            }
            Op::Expire => db.expire_all(&mut life, now),
            Op::Drain { center, requeue } => {
                let c = &ids[center as usize];
                life.set_online(c, false);
                let (back, _) = life.drain_targets(c, requeue);
                for id in back {
                    let ch = life.hand_back(id, c, now);
                    db.commit(&mut life, ch);
                }
            }
            Op::Undrain(center) => life.set_online(&ids[center as usize], true),
        }
        check(&life, &db, &mut attempts_seen);
    }
}

/// The invariants, after every step.
fn check(life: &Lifecycle, db: &Db, attempts_seen: &mut BTreeMap<JobId, u32>) {
    life.core().sanity_check();
    for (id, rec) in &db.jobs {
        // No job lost: an unfinished job is in the lifecycle, as stored.
        match life.job(*id) {
            Some(j) => assert_eq!(j.rec, rec, "job {id} as stored"),
            None => assert!(
                rec.state.is_terminal(),
                "job {id} lost in state {}",
                rec.state
            ),
        }
        // Attempts only increase.
        let seen = attempts_seen.entry(*id).or_default();
        assert!(rec.attempt >= *seen, "job {id}: attempt went back");
        *seen = rec.attempt;
        // Never two live attempts of one job: at most one open attempt row, the current one,
        // and cards held only by a placed, running or unconfirmed cancelled job.
        let open: Vec<u32> = db
            .attempts
            .values()
            .filter(|a| a.job == *id && a.outcome.is_none())
            .map(|a| a.attempt)
            .collect();
        assert!(open.len() <= 1, "job {id} has open attempts {open:?}");
        if let Some(&a) = open.first() {
            assert_eq!(
                a, rec.attempt,
                "job {id}: the open attempt is the current one"
            );
        }
        // Cards are held by placed and running jobs, and by cancelled ones until their site
        // confirms the stop (or another job evicts them); queued jobs are in the core's queue.
        let holds = life.core().allocation(*id).is_some();
        let job = life.job(*id);
        let active = job.is_some_and(|j| j.rec.state.is_active() && !j.cancelled);
        let cancelled = job.is_some_and(|j| j.cancelled);
        assert!(
            holds == active || cancelled && !active,
            "job {id} in state {} holds cards: {holds}",
            rec.state
        );
        let queued = job.is_some_and(|j| j.rec.state == JobState::Queued);
        assert_eq!(
            life.core().is_pending(*id),
            queued,
            "job {id} in state {} pending in the core",
            rec.state
        );
    }
    // Every ended attempt is billed exactly once (when it used any card-seconds).
    for a in db.attempts.values().filter(|a| a.outcome.is_some()) {
        let used = match (a.started_at, a.ended_at) {
            (Some(s), Some(e)) if e >= s => {
                let most = (e.millis_since(s) as u64 * u64::from(a.cards)).div_ceil(1000);
                a.card_seconds.min(most)
            }
            _ => 0,
        };
        let line = db.lines.get(&(a.job, a.attempt)).copied();
        assert_eq!(
            line,
            (used > 0).then_some(used),
            "attempt {}/{} ({:?}) billed",
            a.job,
            a.attempt,
            a.outcome
        );
    }
    for key in db.lines.keys() {
        assert!(
            db.attempts.contains_key(key),
            "a line for an attempt never placed: {key:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_runs_keep_the_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}

/// Where a report's attempt stands, decided in memory: three `killed` reports requeue once
/// (the later ones are stale), a report from another center is `Elsewhere`, a retried report
/// of an ended attempt is `EndedHere`, and a forged one changes nothing.
#[test]
fn repeated_cross_center_and_forged_reports_change_nothing() {
    let (a, b) = (CenterId::new("a"), CenterId::new("b"));
    let mut life = lifecycle(&[center("a", 1, 4), center("b", 1, 4)]);
    life.set_online(&b, false);
    let mut db = Db::default();
    let id = db.submit(&mut life, "t0", spec(1, false), T0);
    db.pass(&mut life, T0);
    assert_eq!(db.jobs[&id].center, Some(a.clone()));
    assert_eq!(life.standing(&a, id, 1), Standing::Current);
    assert_eq!(life.standing(&b, id, 1), Standing::Elsewhere);
    assert!(db.report(&mut life, id, Report::Started { at: secs(1) }, secs(1)));
    // Forged: a start 30 days back, card-seconds over the placed cards; refused, nothing changes.
    let month_back = Timestamp(secs(3).0 - 30 * 86_400_000);
    let forged = finished(Ended::Succeeded, month_back, secs(3), 2);
    assert!(matches!(
        life.report(&a, id, 1, forged, secs(3)),
        Err(InvalidReport::OutOfWindow { .. })
    ));
    let greedy = finished(Ended::Succeeded, secs(1), secs(3), 1_000);
    assert!(matches!(
        life.report(&a, id, 1, greedy, secs(3)),
        Err(InvalidReport::TooManyCardSeconds { .. })
    ));
    assert_eq!(life.standing(&a, id, 1), Standing::Current);
    assert!(db.lines.is_empty());

    let killed = finished(Ended::Killed, secs(1), secs(3), 2);
    assert!(db.report(&mut life, id, killed.clone(), secs(3)));
    for _ in 0..2 {
        assert_eq!(life.standing(&a, id, 1), Standing::Stale);
        assert_eq!(life.report(&a, id, 1, killed.clone(), secs(3)), Ok(None));
    }
    assert_eq!(db.lines.len(), 1, "billed once");
    assert_eq!(db.jobs[&id].state, JobState::Queued);

    db.pass(&mut life, secs(4));
    assert!(db.report(&mut life, id, Report::Started { at: secs(5) }, secs(5)));
    assert!(db.report(
        &mut life,
        id,
        finished(Ended::Succeeded, secs(5), secs(7), 2),
        secs(7)
    ));
    assert_eq!(life.standing(&a, id, 2), Standing::EndedHere);
    assert_eq!(life.standing(&b, id, 2), Standing::Elsewhere);
    assert_eq!(life.standing(&a, id, 1), Standing::Stale);
    assert_eq!(db.lines.len(), 2);
}

// ---------------------------------------------------------------- dependencies, begin, hold, arrays

impl Db {
    /// Submits an array: one job per task, the first's id the array's.
    fn submit_array(&mut self, life: &mut Lifecycle, spec: JobSpec, now: Timestamp) -> Vec<JobId> {
        let tasks = spec.array_spec().expect("an array").tasks;
        let mut ids = Vec::new();
        let first = JobId(self.jobs.len() as i64 + 1);
        for t in tasks {
            let mut new = life
                .submit(
                    now,
                    TenantId::new("t0"),
                    ("alice".into(), Some(1)),
                    spec.clone(),
                    None,
                )
                .unwrap();
            new.array_task = Some(t);
            let id = JobId(self.jobs.len() as i64 + 1);
            let rec = JobRecord::queued(id, new, Some(first));
            self.jobs.insert(id, rec.clone());
            life.submitted(rec);
            ids.push(id);
        }
        ids
    }

    /// A review of the gated jobs, then a pass.
    fn review_and_pass(&mut self, life: &mut Lifecycle, now: Timestamp) -> Vec<JobId> {
        for c in life.review(now) {
            self.commit(life, c);
        }
        self.pass(life, now)
    }

    /// Starts and ends a placed job.
    fn run_to(&mut self, life: &mut Lifecycle, id: JobId, outcome: Ended, at: Timestamp) {
        assert!(self.report(life, id, Report::Started { at }, at));
        let end = at.plus_millis(1000);
        assert!(self.report(life, id, finished(outcome, at, end, 1), end));
    }
}

fn after(dep: &str) -> JobSpec {
    let mut s = spec(1, false);
    s.dependency = Some(dep.to_string());
    s
}

#[test]
fn afterok_waits_for_its_parent_and_runs_when_it_succeeds() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let parent = db.submit(&mut life, "t0", spec(1, false), T0);
    let child = db.submit(&mut life, "t0", after(&format!("afterok:{parent}")), T0);
    assert_eq!(db.review_and_pass(&mut life, T0), vec![parent]);
    let why = life.waiting(child, T0).unwrap().to_string();
    assert!(
        why.contains(&format!("waits for job {parent}")) && why.contains("placed"),
        "{why}"
    );
    db.run_to(&mut life, parent, Ended::Succeeded, secs(1));
    assert_eq!(db.review_and_pass(&mut life, secs(3)), vec![child]);
    assert!(life.waiting(child, secs(3)).is_none());
}

#[test]
fn with_kill_on_invalid_dep_no_an_unmeetable_dependency_keeps_the_job_pending_saying_why() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let parent = db.submit(&mut life, "t0", spec(1, false), T0);
    let mut kept = after(&format!("afterok:{parent}"));
    kept.kill_on_invalid_dep = false;
    let child = db.submit(&mut life, "t0", kept, T0);
    db.review_and_pass(&mut life, T0);
    db.run_to(&mut life, parent, Ended::Failed, secs(1));
    for t in [secs(3), secs(60)] {
        assert!(db.review_and_pass(&mut life, t).is_empty());
        assert_eq!(db.jobs[&child].state, JobState::Queued);
        let why = life.waiting(child, t).unwrap().to_string();
        assert!(
            why.contains(&format!("afterok on job {parent}, which failed"))
                && why.contains("kill-on-invalid-dep=no"),
            "{why}"
        );
        assert!(life.core().pending_job(child).is_none(), "never placed");
    }
    // It ends when cancelled.
    let c = life
        .cancel(child, "by alice", "by alice", secs(61))
        .unwrap();
    db.commit(&mut life, c);
    assert_eq!(db.jobs[&child].state, JobState::Cancelled);
    assert!(life.job(child).is_none());
}

#[test]
fn a_dependency_that_can_never_be_met_cancels_the_job_naming_the_parent() {
    for (dep, outcome) in [
        ("afterok", Ended::Failed),
        ("afterok", Ended::TimedOut),
        ("afternotok", Ended::Succeeded),
    ] {
        let mut life = lifecycle(&[center("a", 1, 4)]);
        let mut db = Db::default();
        let parent = db.submit(&mut life, "t0", spec(1, false), T0);
        let child = db.submit(&mut life, "t0", after(&format!("{dep}:{parent}")), T0);
        db.review_and_pass(&mut life, T0);
        db.run_to(&mut life, parent, outcome, secs(1));
        assert!(db.review_and_pass(&mut life, secs(3)).is_empty());
        let rec = &db.jobs[&child];
        assert_eq!(rec.state, JobState::Cancelled, "{dep} after {outcome:?}");
        let reason = rec.reason.clone().unwrap();
        assert!(
            reason.contains("never satisfied")
                && reason.contains(&format!("{dep} on job {parent}")),
            "{reason}"
        );
        assert!(life.job(child).is_none());
    }
    // A parent cancelled while queued: afterok never, afterany at once.
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let blocker = db.submit(&mut life, "t0", spec(4, false), T0);
    assert_eq!(db.pass(&mut life, T0), vec![blocker]);
    let parent = db.submit(&mut life, "t0", spec(4, false), T0);
    let ok = db.submit(&mut life, "t0", after(&format!("afterok:{parent}")), T0);
    let any = db.submit(&mut life, "t0", after(&format!("afterany:{parent}")), T0);
    let c = life.cancel(parent, "by alice", "by alice", T0).unwrap();
    db.commit(&mut life, c);
    db.review_and_pass(&mut life, secs(1));
    assert!(life.waiting(any, secs(1)).is_none() && life.core().pending_job(any).is_some());
    assert!(
        db.jobs[&ok]
            .reason
            .as_deref()
            .unwrap()
            .contains("was cancelled")
    );
}

#[test]
fn afternotok_afterany_and_after_are_met_as_sbatch_meets_them() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let p = db.submit(&mut life, "t0", spec(1, false), T0);
    let notok = db.submit(&mut life, "t0", after(&format!("afternotok:{p}")), T0);
    let any = db.submit(&mut life, "t0", after(&format!("afterany:{p}")), T0);
    let started = db.submit(&mut life, "t0", after(&format!("after:{p}")), T0);
    assert_eq!(db.review_and_pass(&mut life, T0), vec![p]);
    assert!(db.report(&mut life, p, Report::Started { at: secs(1) }, secs(1)));
    // `after`: the parent has started.
    assert_eq!(db.review_and_pass(&mut life, secs(2)), vec![started]);
    let end = finished(Ended::Failed, secs(1), secs(3), 2);
    assert!(db.report(&mut life, p, end, secs(3)));
    let mut placed = db.review_and_pass(&mut life, secs(4));
    placed.sort();
    assert_eq!(placed, vec![notok, any]);
}

#[test]
fn any_of_is_met_by_one_parent_and_fails_only_when_all_fail() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let a = db.submit(&mut life, "t0", spec(1, false), T0);
    let b = db.submit(&mut life, "t0", spec(1, false), T0);
    let either = db.submit(
        &mut life,
        "t0",
        after(&format!("afterok:{a}?afterok:{b}")),
        T0,
    );
    let both = db.submit(
        &mut life,
        "t0",
        after(&format!("afterok:{a},afterok:{b}")),
        T0,
    );
    db.review_and_pass(&mut life, T0);
    db.run_to(&mut life, a, Ended::Failed, secs(1));
    db.review_and_pass(&mut life, secs(3));
    assert_eq!(
        db.jobs[&both].state,
        JobState::Cancelled,
        "all of: one failed"
    );
    assert_eq!(
        db.jobs[&either].state,
        JobState::Queued,
        "any of: b may still succeed"
    );
    db.run_to(&mut life, b, Ended::Succeeded, secs(4));
    assert_eq!(db.review_and_pass(&mut life, secs(6)), vec![either]);
}

#[test]
fn a_parent_that_ended_before_is_known_by_its_final_state() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    life.note_final(JobId(40), JobState::Succeeded);
    life.note_final(JobId(41), JobState::Failed);
    let ok = db.submit(&mut life, "t0", after("afterok:40"), T0);
    let doomed = db.submit(&mut life, "t0", after("afterok:41"), T0);
    assert_eq!(db.review_and_pass(&mut life, T0), vec![ok]);
    assert_eq!(db.jobs[&doomed].state, JobState::Cancelled);
    // A parent the lifecycle does not know keeps the job waiting, never cancels it.
    let unknown = db.submit(&mut life, "t0", after("afterok:99"), T0);
    assert!(db.review_and_pass(&mut life, secs(1)).is_empty());
    assert!(life.waiting(unknown, secs(1)).is_some());
}

#[test]
fn singleton_runs_one_job_of_a_name_at_a_time() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let first = db.submit(&mut life, "t0", after("singleton"), T0);
    let second = db.submit(&mut life, "t0", after("singleton"), T0);
    let other_tenant = db.submit(&mut life, "t1", after("singleton"), T0);
    let mut placed = db.review_and_pass(&mut life, T0);
    placed.sort();
    assert_eq!(placed, vec![first, other_tenant]);
    let why = life.waiting(second, T0).unwrap().to_string();
    assert!(why.contains(&format!("job {first}")), "{why}");
    db.run_to(&mut life, first, Ended::Failed, secs(1));
    assert_eq!(db.review_and_pass(&mut life, secs(3)), vec![second]);
}

#[test]
fn singleton_is_decided_for_many_jobs_of_a_name_in_one_review() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let ids: Vec<JobId> = (0..6)
        .map(|_| db.submit(&mut life, "t0", after("singleton"), T0))
        .collect();
    assert_eq!(db.review_and_pass(&mut life, T0), vec![ids[0]]);
    for later in &ids[1..] {
        let why = life.waiting(*later, T0).unwrap().to_string();
        assert!(why.contains(&format!("job {}", ids[0])), "{why}");
    }
    // A job of the same name without the term, placed, blocks even an earlier singleton job.
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let mut held = after("singleton");
    held.hold = true;
    let waiting = db.submit(&mut life, "t0", held, T0);
    let plain = db.submit(&mut life, "t0", spec(1, false), T0);
    assert_eq!(db.review_and_pass(&mut life, T0), vec![plain]);
    let c = life.release(waiting, "alice", T0).unwrap();
    db.commit(&mut life, c);
    assert!(db.review_and_pass(&mut life, secs(1)).is_empty());
    let why = life.waiting(waiting, secs(1)).unwrap().to_string();
    assert!(why.contains(&format!("job {plain}")), "{why}");
    db.run_to(&mut life, plain, Ended::Succeeded, secs(2));
    assert_eq!(db.review_and_pass(&mut life, secs(4)), vec![waiting]);
}

#[test]
fn begin_holds_the_job_until_its_time() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let mut s = spec(1, false);
    s.begin = Some("now+30".into());
    let id = db.submit(&mut life, "t0", s, T0);
    let at = db.jobs[&id].spec.begin_at().unwrap();
    assert_eq!(at, T0.plus_millis(30_000), "resolved at submit");
    for t in [0, 10, 29] {
        assert!(
            db.review_and_pass(&mut life, secs(t)).is_empty(),
            "at {t} s"
        );
        let why = life.waiting(id, secs(t)).unwrap().to_string();
        assert!(why.contains(&at.to_string()), "{why}");
    }
    assert_eq!(db.review_and_pass(&mut life, secs(30)), vec![id]);
}

#[test]
fn hold_and_release_a_pending_job() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    let mut s = spec(1, false);
    s.hold = true;
    let held = db.submit(&mut life, "t0", s, T0);
    let blocker = db.submit(&mut life, "t0", spec(4, false), T0);
    assert_eq!(db.review_and_pass(&mut life, T0), vec![blocker]);
    let other = db.submit(&mut life, "t0", spec(4, false), T0);
    assert!(db.review_and_pass(&mut life, T0).is_empty());
    assert!(life.core().pending_job(other).is_some());
    assert_eq!(life.waiting(held, T0), Some(crate::Gate::Held));
    // A queued job leaves the core's queue while held.
    let c = life.hold(other, "alice", T0).unwrap();
    db.commit(&mut life, c);
    assert!(db.jobs[&other].held);
    assert!(life.core().pending_job(other).is_none());
    assert_eq!(life.waiting(other, T0), Some(crate::Gate::Held));
    assert_eq!(
        life.hold(other, "alice", T0).unwrap_err(),
        crate::HoldError::AlreadyHeld(other)
    );
    let c = life.release(held, "bob", secs(5)).unwrap();
    db.commit(&mut life, c);
    assert!(!db.jobs[&held].held);
    db.run_to(&mut life, blocker, Ended::Succeeded, secs(1));
    assert_eq!(db.review_and_pass(&mut life, secs(5)), vec![held]);
    assert!(matches!(
        life.hold(held, "alice", secs(6)),
        Err(crate::HoldError::NotPending {
            state: JobState::Placed,
            ..
        })
    ));
    assert_eq!(
        life.release(JobId(99), "x", secs(6)).unwrap_err(),
        crate::HoldError::NotLive(JobId(99))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// However tasks end (and in whatever order), never more than `%N` of an array are placed
    /// or running, every task runs once, and all of them do.
    #[test]
    fn an_array_never_runs_more_than_its_limit(
        tasks in 1usize..12,
        limit in 1u32..5,
        picks in proptest::collection::vec((0usize..16, any::<bool>()), 0..80),
    ) {
        let mut life = lifecycle(&[center("a", 4, 4)]);
        let mut db = Db::default();
        let mut s = spec(1, false);
        s.array = Some(format!("0-{}%{limit}", tasks - 1));
        let ids = db.submit_array(&mut life, s, T0);
        prop_assert_eq!(ids.len(), tasks);
        let mut now = T0;
        let mut ran = std::collections::BTreeSet::new();
        let mut picks = picks.into_iter();
        loop {
            now = now.plus_millis(1000);
            for id in db.review_and_pass(&mut life, now) {
                prop_assert!(ran.insert(id), "task {} placed twice", id);
            }
            let active: Vec<JobId> = ids
                .iter()
                .copied()
                .filter(|id| db.jobs[id].state.is_active())
                .collect();
            prop_assert!(active.len() as u32 <= limit, "{} tasks active, limit {}", active.len(), limit);
            if active.is_empty() {
                break;
            }
            let (n, ok) = picks.next().unwrap_or((0, true));
            let id = active[n % active.len()];
            let outcome = if ok { Ended::Succeeded } else { Ended::Failed };
            db.run_to(&mut life, id, outcome, now);
            for j in &ids {
                if let Some(g) = life.waiting(*j, now) {
                    let why = g.to_string();
                    prop_assert!(why.contains("array limit") && why.contains(&format!("at most {limit}")), "{}", why);
                }
            }
        }
        prop_assert_eq!(ran.len(), tasks, "every task ran");
        let first = ids[0];
        for (i, id) in ids.iter().enumerate() {
            let a = db.jobs[id].array.unwrap();
            prop_assert_eq!((a.job, a.task), (first, i as u32));
        }
    }
}

/// An array is as many jobs as it has tasks: its submit is checked against the budget at the
/// price of every task, not of one.
#[test]
fn an_array_is_checked_against_the_budget_at_the_price_of_all_its_tasks() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let t0 = TenantId::new("t0");
    // One task: 1 card for an hour at 2 yuan is 2 yuan; the budget is 10.
    let _ = life
        .books_mut()
        .set_budget(
            &t0,
            Money::from_yuan(10),
            suanli_money::OverBudgetPolicy::LetFinish,
        )
        .unwrap();
    let task = |array: Option<&str>| {
        let mut s = spec(1, false);
        s.walltime = 3600;
        s.array = array.map(String::from);
        s
    };
    let submit =
        |life: &Lifecycle, s: JobSpec| life.submit(T0, t0.clone(), ("alice".into(), None), s, None);
    assert!(submit(&life, task(None)).is_ok());
    assert!(submit(&life, task(Some("0-3"))).is_ok(), "4 tasks: 8 yuan");
    let err = submit(&life, task(Some("0-9"))).unwrap_err();
    assert!(
        matches!(err, SubmitError::OverBudget(_)),
        "10 tasks: 20 yuan: {err:?}"
    );
}

/// Finals are kept for at most [`crate::ENDED_KEPT`] jobs, the oldest going first, but never
/// one a waiting job depends on: its dependent is still decided.
#[test]
fn a_parent_a_waiting_job_depends_on_is_never_forgotten() {
    let mut life = lifecycle(&[center("a", 1, 4)]);
    let mut db = Db::default();
    life.note_final(JobId(500_000), JobState::Failed);
    let doomed = db.submit(&mut life, "t0", after("afterok:500000"), T0);
    for id in 2..(crate::ENDED_KEPT as i64 + 2_000) {
        life.note_final(JobId(1_000_000 + id), JobState::Succeeded);
    }
    assert!(life.state_of(JobId(1_000_002)).is_none(), "the oldest went");
    assert_eq!(life.state_of(JobId(500_000)), Some(JobState::Failed));
    db.review_and_pass(&mut life, secs(1));
    assert_eq!(db.jobs[&doomed].state, JobState::Cancelled);
}

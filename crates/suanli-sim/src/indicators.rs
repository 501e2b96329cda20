//! The city's indicators for a simulated run (what-if planning: "what if two Ascend centers are
//! added"): the run told as the facts the hub records ([`suanli_indicators::Fact`]), fed to the
//! same [`Rollup`], read with the same queries. Virtual time 0 is put at `start` (a real instant,
//! so that months and quarters fall as they would); the bill lines are the lifecycle's own.

use serde::Serialize;
use suanli_indicators::calendar::Period;
use suanli_indicators::{
    By, Fact, IndicatorResult, Outcome, PoolState, Rollup, Row, Summary, Window,
};
use suanli_types::{CenterId, CenterSpec, ChipCatalog, Timestamp};

use crate::engine::RunOutput;
use crate::faults::{Action, Fault, timeline};
use crate::mapping::SimJob;

/// The indicators of a run over its whole span, and by month.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimIndicators {
    /// The run's span in real time: `[from, to)`, whole hours.
    pub from: Timestamp,
    pub to: Timestamp,
    pub summary: Summary,
    pub by_month: Vec<Row>,
    pub by_center: Vec<Row>,
    pub by_vendor: Vec<Row>,
    pub by_sku: Vec<Row>,
}

/// The facts of a run, in time order: the pools and centers at `start`, the faults' state
/// changes, every submit, placement, start, release, end and bill line.
pub fn facts(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    out: &RunOutput,
    faults: &[Fault],
    start: Timestamp,
) -> Vec<Fact> {
    let at = |ms: i64| start.plus_millis(ms);
    let catalog = ChipCatalog::builtin();
    let mut facts = Vec::new();
    for c in centers {
        for p in &c.pools {
            let chip = catalog.get(&p.sku);
            facts.push(Fact::Pool {
                at: start,
                center: c.id.clone(),
                sku: p.sku.clone(),
                cards: u64::from(p.nodes) * u64::from(p.cards_per_node),
                vendor: chip.map_or_else(|| "unknown".to_string(), |c| c.vendor.clone()),
                fp16_tflops: chip.map_or(0, |c| c.fp16_tflops),
                domestic: chip.is_some_and(|c| c.is_domestic()),
                city: (!c.city.trim().is_empty()).then(|| c.city.clone()),
            });
        }
        facts.push(Fact::Center {
            at: start,
            center: c.id.clone(),
            state: PoolState::Online,
        });
    }
    // The centers' states as the engine keeps them: down while any failure lasts, else drained
    // while any drain lasts (faults may overlap), a fact at each change.
    let index = |id: &CenterId| {
        centers
            .iter()
            .position(|c| &c.id == id)
            .unwrap_or(usize::MAX)
    };
    let mut counts = vec![(0u32, 0u32); centers.len()];
    let mut states = vec![PoolState::Online; centers.len()];
    for (t, action) in timeline(faults, index, crate::engine::LEASE_TTL.as_millis() as i64) {
        let c = match action {
            Action::Fail(c) | Action::Recover(c) | Action::Drain(c) | Action::Undrain(c) => c,
            Action::Expire => continue,
        };
        let Some(n) = counts.get_mut(c) else { continue };
        match action {
            Action::Fail(_) => n.0 += 1,
            Action::Recover(_) => n.0 = n.0.saturating_sub(1),
            Action::Drain(_) => n.1 += 1,
            Action::Undrain(_) => n.1 = n.1.saturating_sub(1),
            Action::Expire => {}
        }
        let state = match *n {
            (f, _) if f > 0 => PoolState::Down,
            (_, d) if d > 0 => PoolState::Drained,
            _ => PoolState::Online,
        };
        if state != states[c] {
            states[c] = state;
            facts.push(Fact::Center {
                at: at(t),
                center: centers[c].id.clone(),
                state,
            });
        }
    }
    for (j, o) in jobs.iter().zip(&out.outcomes) {
        // A job no center could ever hold is refused at submit by the hub: no record, no facts.
        if o.rejected.is_some() {
            continue;
        }
        facts.push(Fact::Submitted {
            at: at(j.submit_ms),
            job: j.id,
            tenant: j.tenant.clone(),
        });
        if let Some(end) = o.finish_ms {
            let outcome = match o.timed_out {
                true => Outcome::TimedOut,
                false => Outcome::Succeeded,
            };
            facts.push(Fact::Ended {
                at: at(end),
                job: j.id,
                outcome,
            });
        }
    }
    for a in &out.attempts {
        let pool = &out.pools[a.pool];
        let job = jobs[a.job].id;
        facts.push(Fact::Allocated {
            at: at(a.start_ms),
            job,
            attempt: a.attempt,
            center: pool.center.clone(),
            sku: pool.sku.clone(),
            cards: a.cards,
        });
        facts.push(Fact::Started {
            at: at(a.start_ms),
            job,
            attempt: a.attempt,
        });
        facts.push(Fact::Released {
            at: at(a.end_ms),
            job,
            attempt: a.attempt,
        });
    }
    for l in &out.lines {
        facts.push(Fact::Billed {
            center: l.usage.center.clone(),
            sku: l.usage.sku.clone(),
            tenant: l.usage.tenant.clone(),
            started: at(l.usage.started_at.0),
            ended: at(l.usage.ended_at.0),
            card_seconds: l.usage.card_seconds,
            gross: l.gross,
            subsidy: l.subsidy,
            payable: l.payable,
        });
    }
    // In time order, and at one instant in the order of a job's life (a job submitted, placed
    // and started in the same millisecond).
    let rank = |f: &Fact| match f {
        Fact::Pool { .. } | Fact::Tenant { .. } => 0,
        Fact::Center { .. } => 1,
        Fact::Submitted { .. } => 2,
        Fact::Allocated { .. } => 3,
        Fact::Started { .. } => 4,
        Fact::Released { .. } => 5,
        Fact::Ended { .. } => 6,
        Fact::Billed { .. } => 7,
    };
    facts.sort_by_key(|f| (time(f), rank(f)));
    facts
}

/// A fact's time; a tenant's category before everything.
fn time(f: &Fact) -> Timestamp {
    f.time().unwrap_or(Timestamp(i64::MIN))
}

/// The rollup of `facts`, closed past the last of them; and the run's span in whole hours.
pub fn rollup(facts: &[Fact]) -> IndicatorResult<(Rollup, Timestamp, Timestamp)> {
    let mut r = Rollup::new();
    for f in facts {
        r.apply(f)?;
    }
    let hour = |t: Timestamp| suanli_indicators::calendar::hour_of(t);
    let first = facts.iter().map(time).filter(|t| t.0 > i64::MIN).min();
    let last = facts.iter().map(time).max();
    let (from, to) = match (first, last) {
        (Some(a), Some(b)) => (hour(a), Timestamp(hour(b).0 + suanli_indicators::HOUR_MS)),
        _ => {
            return Err(suanli_indicators::IndicatorError::Invalid {
                what: "run",
                why: "it has no facts".into(),
            });
        }
    };
    r.advance(to);
    Ok((r, from, to))
}

/// The indicators of a run whose virtual time 0 is `start`.
pub fn indicators(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    out: &RunOutput,
    faults: &[Fault],
    start: Timestamp,
) -> IndicatorResult<SimIndicators> {
    let (r, from, to) = rollup(&facts(jobs, centers, out, faults, start))?;
    let rows = |by| {
        r.rows(&Window {
            from,
            to,
            period: Period::Month,
            by,
            tenant: None,
        })
    };
    Ok(SimIndicators {
        from,
        to,
        summary: r.summary(from, to)?,
        by_month: rows(By::All)?,
        by_center: rows(By::Center)?,
        by_vendor: rows(By::Vendor)?,
        by_sku: rows(By::Sku)?,
    })
}

#[cfg(test)]
mod tests {
    use suanli_core::Policy;
    use suanli_testkit::center;
    use suanli_types::{ChipRequest, Money, PriorityClass};

    use super::*;
    use crate::engine::{self, run_with_faults};
    use crate::faults::FaultKind;
    use crate::generator::{GenConfig, generate};
    use crate::mapping::{MappingConfig, map_job, map_trace};
    use crate::progress::Progress;
    use crate::topology;
    use crate::trace::{Shape, TraceJob};

    /// 2026-07-01 00:00 China Standard Time.
    const Q3: Timestamp = Timestamp(1_782_835_200_000);

    fn one_job(duration_s: i64, cards: u32) -> SimJob {
        let t = TraceJob {
            line: 1,
            submit_ms: 0,
            duration_ms: duration_s * 1000,
            shape: Shape::Gang {
                cards_per_node: cards,
                nodes: 1,
            },
            tenant: "lab".into(),
            priority: Some(PriorityClass::Standard),
            chips: Some((ChipRequest::default(), "any".into())),
            walltime_secs: Some(duration_s as u64 * 2),
            max_price: None,
        };
        map_job(0, &t, 0, &MappingConfig::default())
    }

    #[test]
    fn one_hour_on_two_cards_is_two_card_hours_at_the_list_price() {
        let centers = [center("c1", "RTX4090", 1, 2, "2")];
        let jobs = [one_job(3600, 2)];
        let out = engine::run(&jobs, &centers, Policy::Suanli, &Progress::hidden()).unwrap();
        let ind = indicators(&jobs, &centers, &out, &[], Q3).unwrap();
        assert_eq!(ind.from, Q3);
        let s = &ind.summary;
        assert_eq!(s.delivered_card_hours, 2.0);
        assert_eq!(s.gross_yuan, Money::from_yuan(4));
        assert_eq!(s.active_tenants, 1);
        let month = &ind.by_month[0];
        assert_eq!(month.period, "2026-07");
        assert_eq!(month.usage.jobs_submitted, 1);
        assert_eq!(month.usage.jobs_succeeded, 1);
        assert_eq!(month.usage.wait_p50_secs, Some(0));
        let cap = month.capacity.as_ref().unwrap();
        // The span is the job's hour and the hour after it closes in: 2 cards x 2 h installed.
        assert_eq!(cap.installed_card_hours, 4.0);
        assert_eq!(cap.allocated_card_hours, 2.0);
        assert_eq!(cap.utilisation, Some(0.5));
    }

    fn generated(jobs: usize, seed: u64) -> Vec<SimJob> {
        let trace = generate(&GenConfig {
            jobs,
            seed,
            tenants: 5,
            mean_interarrival_secs: 20.0,
            ..GenConfig::default()
        });
        map_trace(&trace, &MappingConfig::default(), 1.0, None)
    }

    /// Delivered card-seconds are the bill lines' to the second, yuan to the fen, every job
    /// that ran ended once, and in every hour allocated <= available <= installed; a failed
    /// center's time is down time.
    #[test]
    fn a_run_reconciles_with_its_bill_lines_and_its_failures() {
        let centers = topology::builtin(64);
        let jobs = generated(800, 7);
        let down = centers[0].id.clone();
        let faults = [Fault::parse(FaultKind::Fail, &format!("{down}@1h+2h")).unwrap()];
        let out = run_with_faults(
            &jobs,
            &centers,
            Policy::Suanli,
            &faults,
            &Progress::hidden(),
        )
        .unwrap();
        let facts = facts(&jobs, &centers, &out, &faults, Q3);
        let (r, from, to) = rollup(&facts).unwrap();
        assert_eq!(r.unmatched(), 0);
        for p in r.pool_hours().values() {
            assert!(
                p.allocated() <= p.available() && p.available() <= p.installed(),
                "{p:?}"
            );
        }
        let ind = indicators(&jobs, &centers, &out, &faults, Q3).unwrap();
        assert_eq!((ind.from, ind.to), (from, to));
        let billed: u64 = out.lines.iter().map(|l| l.usage.card_seconds).sum();
        let delivered: u64 = ind
            .by_month
            .iter()
            .map(|m| m.usage.delivered_card_seconds)
            .sum();
        assert_eq!(delivered, billed);
        let by_center: u64 = ind
            .by_center
            .iter()
            .map(|m| m.usage.delivered_card_seconds)
            .sum();
        assert_eq!(by_center, billed);
        let gross: i64 = out.lines.iter().map(|l| l.gross.units()).sum();
        let rows: i64 = ind
            .by_month
            .iter()
            .map(|m| m.usage.gross_yuan.units())
            .sum();
        assert_eq!((rows, ind.summary.gross_yuan.units()), (gross, gross));
        let ran = out.outcomes.iter().filter(|o| o.rejected.is_none()).count() as u64;
        let ended: u64 = ind
            .by_month
            .iter()
            .map(|m| m.usage.jobs_succeeded + m.usage.jobs_timed_out)
            .sum();
        let submitted: u64 = ind.by_month.iter().map(|m| m.usage.jobs_submitted).sum();
        assert_eq!((ended, submitted), (ran, ran));
        // Down two hours: its availability is below one, every other center's is one.
        for (c, a) in &ind.summary.center_availability {
            match c == down.as_str() {
                true => assert!(a.unwrap() < 1.0, "{c}: {a:?}"),
                false => assert_eq!(*a, Some(1.0), "{c}"),
            }
        }
    }

    /// Overlapping faults: a center failed and drained at once is down until the failure ends,
    /// then drained until the drain ends, as the engine counts them.
    #[test]
    fn overlapping_faults_give_the_states_the_engine_keeps() {
        let centers = [center("c1", "RTX4090", 1, 2, "2")];
        let jobs = [one_job(600, 1)];
        let faults = [
            Fault::parse(FaultKind::Fail, "c1@1h+2h").unwrap(),
            Fault::parse(FaultKind::Drain, "c1@2h+2h").unwrap(),
        ];
        let out = run_with_faults(
            &jobs,
            &centers,
            Policy::Suanli,
            &faults,
            &Progress::hidden(),
        )
        .unwrap();
        let states: Vec<(i64, PoolState)> = facts(&jobs, &centers, &out, &faults, Q3)
            .iter()
            .filter_map(|f| match f {
                Fact::Center { at, state, .. } => Some(((at.0 - Q3.0) / 3_600_000, *state)),
                _ => None,
            })
            .collect();
        use PoolState::*;
        assert_eq!(states, [(0, Online), (1, Down), (3, Drained), (4, Online)]);
    }

    /// What if an Ascend center is added: the network's installed and domestic compute grow.
    #[test]
    fn adding_an_ascend_center_raises_installed_and_domestic_compute() {
        let base = topology::builtin(64);
        let mut more = base.clone();
        more.push(center("new-ascend", "Ascend910B2", 4, 8, "6"));
        let jobs = generated(300, 3);
        let run = |centers: &[CenterSpec]| {
            let out = engine::run(&jobs, centers, Policy::Suanli, &Progress::hidden()).unwrap();
            indicators(&jobs, centers, &out, &[], Q3).unwrap().summary
        };
        let (a, b) = (run(&base), run(&more));
        assert!(
            b.installed_fp16_pflops > a.installed_fp16_pflops,
            "{a:?} {b:?}"
        );
        assert!(b.domestic_fp16_pflops > a.domestic_fp16_pflops);
        assert!(b.domestic_share_installed > a.domestic_share_installed);
    }
}

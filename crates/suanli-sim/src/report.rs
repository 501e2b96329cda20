//! Metrics of a run, as JSON and as text tables.

use std::fmt::Write as _;

use serde::Serialize;
use suanli_types::{Money, PriorityClass};

use crate::engine::{AttemptEnd, RunOutput};
use crate::mapping::{ChipNeed, SimJob};

/// Buckets of the utilisation time series.
pub const SERIES_BUCKETS: usize = 48;

/// Everything measured in one run. All fields but [`wall`](Report::wall) are the same for the
/// same trace, seed, flags and scheduler code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub policy: String,
    pub jobs: JobCounts,
    /// Job completion time, finish - submit, over jobs that ran (timed-out ones included).
    pub jct: Stats,
    /// First start - submit.
    pub queueing_delay: Stats,
    /// Average JCT if every job started at submit and ran once: the average of
    /// min(duration, walltime).
    pub lower_bound_avg_jct_secs: f64,
    pub jct_over_lower_bound: f64,
    pub by_class: Vec<ClassStats>,
    /// The same per chip need of the mapping (`any`, `cuda`, `big-memory`, `given`).
    pub by_need: Vec<ClassStats>,
    /// From the first submit to the last finish.
    pub span_secs: f64,
    /// Busy card-seconds / (cards x span), over all pools.
    pub utilisation: f64,
    /// The same, counted only from the first to the last submit: the load the network carries
    /// while the trace arrives, without the tail of long jobs and backlog after the last submit.
    pub utilisation_while_submitting: f64,
    pub pools: Vec<PoolStats>,
    /// [`SERIES_BUCKETS`] equal slices of the span.
    pub series: Vec<Bucket>,
    /// Sum over attempts (preempted ones included) of list price x cards x time held.
    pub cost: Money,
    /// Each job once at its cheapest fitting pool: list price x cards x min(duration, walltime).
    pub cost_lower_bound: Money,
    pub cost_over_lower_bound: f64,
    pub preemptions: u64,
    /// Attempts lost with a failed center or handed back by a drain, each queued again with the
    /// next attempt number.
    pub requeues: Requeues,
    /// Card-seconds of attempts whose work is lost: preempted, lost with a failed center (up to
    /// the failure) or handed back by a drain (up to the drain).
    pub lost_card_secs: f64,
    pub placements: u64,
    pub events: u64,
    pub schedule_calls: u64,
    /// The core's FNV-1a hash over every decision, hex.
    pub decision_hash: String,
    /// With a chip speed model: the card-hours finished attempts took less (gained) or more
    /// (lost) than their durations on the reference chip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedStats>,
    /// Measured on the real clock: differs between runs.
    pub wall: WallStats,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpeedStats {
    pub model: String,
    pub card_hours_gained: f64,
    pub card_hours_lost: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JobCounts {
    pub total: usize,
    /// Ended by finishing their runtime.
    pub completed: usize,
    /// Ended at their walltime.
    pub timed_out: usize,
    /// No center could ever hold them; not in the other metrics.
    pub rejected: usize,
    /// Jobs preempted at least once.
    pub preempted: usize,
}

/// Attempts ended by center faults and queued again, and the card-seconds the lifecycle metered
/// (and billed) for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Requeues {
    /// Lost with a failed center: their lease ran out without a report.
    pub lease_lost: u64,
    pub lease_lost_card_secs: u64,
    /// Handed back by a drain.
    pub drained: u64,
    pub drained_card_secs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    pub avg_secs: f64,
    pub p50_secs: f64,
    pub p95_secs: f64,
    pub p99_secs: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassStats {
    pub class: String,
    pub jobs: usize,
    pub avg_jct_secs: f64,
    pub avg_queueing_secs: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PoolStats {
    pub center: String,
    pub sku: String,
    pub cards: u64,
    pub price_per_card_hour: Money,
    pub busy_card_secs: f64,
    pub utilisation: f64,
    pub cost: Money,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    pub start_secs: f64,
    pub end_secs: f64,
    pub utilisation: f64,
    /// Time-weighted average of pending jobs.
    pub pending_avg: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WallStats {
    pub secs: f64,
    /// Wall time inside `Core::schedule`.
    pub schedule_secs: f64,
    /// Wall time inside `Core::schedule` per placement, in microseconds.
    pub schedule_us_per_decision: f64,
    pub events_per_sec: f64,
    /// Virtual span / wall time.
    pub speedup: f64,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn stats(mut v: Vec<i64>) -> Stats {
    v.sort_unstable();
    let avg = ratio(v.iter().map(|x| *x as f64).sum(), v.len() as f64);
    Stats {
        avg_secs: avg / 1000.0,
        p50_secs: secs(percentile(&v, 50.0)),
        p95_secs: secs(percentile(&v, 95.0)),
        p99_secs: secs(percentile(&v, 99.0)),
    }
}

/// Cost of `cards` cards for `ms` at `price` per card-hour.
fn cost_of(price: Money, cards: u64, ms: i64) -> Money {
    price.mul_div((cards as i64).saturating_mul(ms), 3_600_000)
}

/// Adds `weight` per ms of `[start, end)` into equal buckets of width `w` over `[0, n*w)`.
fn spread(buckets: &mut [f64], w: f64, start: i64, end: i64, weight: f64) {
    if end <= start || w <= 0.0 {
        return;
    }
    let (s, e) = (start as f64, end as f64);
    let last = buckets.len() - 1;
    let b0 = ((s / w) as usize).min(last);
    let b1 = ((e / w) as usize).min(last);
    for (b, slot) in buckets.iter_mut().enumerate().take(b1 + 1).skip(b0) {
        let lo = s.max(b as f64 * w);
        let hi = if b == last {
            e
        } else {
            e.min((b + 1) as f64 * w)
        };
        if hi > lo {
            *slot += (hi - lo) * weight;
        }
    }
}

fn group_stats<const N: usize>(names: [&str; N], sums: &[(usize, f64, f64)]) -> Vec<ClassStats> {
    names
        .iter()
        .zip(sums)
        .map(|(c, (n, j, q))| ClassStats {
            class: c.to_string(),
            jobs: *n,
            avg_jct_secs: ratio(*j, *n as f64) / 1000.0,
            avg_queueing_secs: ratio(*q, *n as f64) / 1000.0,
        })
        .collect()
}

impl Report {
    /// Metrics of a run of `jobs`.
    pub fn build(jobs: &[SimJob], out: &RunOutput) -> Report {
        let mut counts = JobCounts {
            total: jobs.len(),
            ..JobCounts::default()
        };
        let mut jct = Vec::new();
        let mut queueing = Vec::new();
        let mut ideal_ms = 0f64;
        let mut cost_lb = Money::ZERO;
        let mut last_finish = 0i64;
        let (mut speed_gained, mut speed_lost) = (0f64, 0f64);
        let mut classes = vec![(0usize, 0f64, 0f64); PriorityClass::ALL.len()];
        let mut needs = vec![(0usize, 0f64, 0f64); ChipNeed::ALL.len()];
        for (j, o) in jobs.iter().zip(&out.outcomes) {
            if o.rejected.is_some() {
                counts.rejected += 1;
                continue;
            }
            let finish = o.finish_ms.expect("a job that was not rejected finished");
            let start = o.first_start_ms.expect("a finished job started");
            if o.timed_out {
                counts.timed_out += 1;
            } else {
                counts.completed += 1;
            }
            if o.preemptions > 0 {
                counts.preempted += 1;
            }
            last_finish = last_finish.max(finish);
            jct.push(finish - j.submit_ms);
            queueing.push(start - j.submit_ms);
            for c in [
                &mut classes[j.spec.priority.rank()],
                &mut needs[j.need as usize],
            ] {
                c.0 += 1;
                c.1 += (finish - j.submit_ms) as f64;
                c.2 += (start - j.submit_ms) as f64;
            }
            ideal_ms += j.effective_runtime_ms() as f64;
            if let Some(p) = o.cheapest_price {
                cost_lb = Money(
                    cost_lb
                        .0
                        .saturating_add(cost_of(p, j.cards(), j.effective_runtime_ms()).0),
                );
            }
        }
        let ran = jct.len();
        let first_submit = jobs.first().map_or(0, |j| j.submit_ms);
        let last_submit = jobs.last().map_or(0, |j| j.submit_ms);
        let mut busy_submitting = 0f64;
        let span_ms = (last_finish - first_submit).max(0);

        let mut pool_busy = vec![0f64; out.pools.len()];
        let mut pool_cost = vec![Money::ZERO; out.pools.len()];
        let mut lost = 0f64;
        let mut preemptions = 0u64;
        let mut requeues = Requeues::default();
        let w = span_ms as f64 / SERIES_BUCKETS as f64;
        let mut busy_series = vec![0f64; SERIES_BUCKETS];
        for a in &out.attempts {
            let ms = a.end_ms - a.start_ms;
            let card_ms = a.cards as f64 * ms as f64;
            let overlap = a.end_ms.min(last_submit) - a.start_ms.max(first_submit);
            if overlap > 0 {
                busy_submitting += a.cards as f64 * overlap as f64;
            }
            pool_busy[a.pool] += card_ms;
            pool_cost[a.pool] = Money(
                pool_cost[a.pool]
                    .0
                    .saturating_add(cost_of(out.pools[a.pool].price, a.cards, ms).0),
            );
            match a.end {
                AttemptEnd::Finished => {
                    let reference = jobs[a.job].effective_runtime_ms() as f64;
                    let diff = (reference - ms as f64) * a.cards as f64;
                    if diff > 0.0 {
                        speed_gained += diff;
                    } else {
                        speed_lost -= diff;
                    }
                }
                AttemptEnd::Preempted => {
                    lost += card_ms;
                    preemptions += 1;
                }
                AttemptEnd::LeaseLost => {
                    lost += card_ms;
                    requeues.lease_lost += 1;
                    requeues.lease_lost_card_secs += a.metered_card_secs;
                }
                AttemptEnd::Drained => {
                    lost += card_ms;
                    requeues.drained += 1;
                    requeues.drained_card_secs += a.metered_card_secs;
                }
            }
            spread(
                &mut busy_series,
                w,
                a.start_ms - first_submit,
                a.end_ms - first_submit,
                a.cards as f64,
            );
        }
        let total_cards: u64 = out.pools.iter().map(|p| p.cards).sum();
        let cost = Money(
            pool_cost
                .iter()
                .map(|m| m.0)
                .fold(0i64, i64::saturating_add),
        );

        let mut pending_series = vec![0f64; SERIES_BUCKETS];
        for (i, &(t, n)) in out.pending_samples.iter().enumerate() {
            let until = out.pending_samples.get(i + 1).map_or(last_finish, |s| s.0);
            spread(
                &mut pending_series,
                w,
                t - first_submit,
                until - first_submit,
                n as f64,
            );
        }
        let series = (0..SERIES_BUCKETS)
            .map(|b| Bucket {
                start_secs: b as f64 * w / 1000.0,
                end_secs: (b + 1) as f64 * w / 1000.0,
                utilisation: ratio(busy_series[b], total_cards as f64 * w),
                pending_avg: ratio(pending_series[b], w),
            })
            .collect();

        let wall = out.wall.as_secs_f64();
        let jct_stats = stats(jct);
        let lb_jct = ratio(ideal_ms, ran as f64) / 1000.0;
        Report {
            policy: out.policy.as_str().to_string(),
            jobs: counts,
            jct_over_lower_bound: ratio(jct_stats.avg_secs, lb_jct),
            jct: jct_stats,
            queueing_delay: stats(queueing),
            lower_bound_avg_jct_secs: lb_jct,
            by_class: group_stats(PriorityClass::ALL.map(PriorityClass::as_str), &classes),
            by_need: group_stats(ChipNeed::ALL.map(ChipNeed::as_str), &needs),
            span_secs: secs(span_ms),
            utilisation: ratio(pool_busy.iter().sum(), total_cards as f64 * span_ms as f64),
            utilisation_while_submitting: ratio(
                busy_submitting,
                total_cards as f64 * (last_submit - first_submit) as f64,
            ),
            pools: out
                .pools
                .iter()
                .enumerate()
                .map(|(i, p)| PoolStats {
                    center: p.center.to_string(),
                    sku: p.sku.clone(),
                    cards: p.cards,
                    price_per_card_hour: p.price,
                    busy_card_secs: pool_busy[i] / 1000.0,
                    utilisation: ratio(pool_busy[i], p.cards as f64 * span_ms as f64),
                    cost: pool_cost[i],
                })
                .collect(),
            series,
            cost,
            cost_lower_bound: cost_lb,
            cost_over_lower_bound: ratio(cost.0 as f64, cost_lb.0 as f64),
            preemptions,
            requeues,
            lost_card_secs: lost / 1000.0,
            placements: out.placements,
            events: out.events,
            schedule_calls: out.schedule_calls,
            decision_hash: format!("{:016x}", out.decision_hash),
            speed: out.speed_model.as_ref().map(|model| SpeedStats {
                model: model.clone(),
                card_hours_gained: speed_gained / 3_600_000.0,
                card_hours_lost: speed_lost / 3_600_000.0,
            }),
            wall: WallStats {
                secs: wall,
                schedule_secs: out.schedule_wall.as_secs_f64(),
                schedule_us_per_decision: ratio(
                    out.schedule_wall.as_secs_f64() * 1e6,
                    out.placements as f64,
                ),
                events_per_sec: ratio(out.events as f64, wall),
                speedup: ratio(secs(span_ms), wall),
            },
        }
    }

    /// The report without the wall-clock fields (for comparing runs).
    pub fn without_wall(&self) -> Report {
        Report {
            wall: WallStats::default(),
            ..self.clone()
        }
    }
}

/// `45s`, `12.5m`, `3.20h`, `2.1d`.
pub fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        format!("{:.1}m", s / 60.0)
    } else if s < 4.0 * 86_400.0 {
        format!("{:.2}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Whole yuan with thousands separators (`1,234,567`); below 1000 yuan, with fen (`17.25`).
fn yuan(m: Money) -> String {
    if m.0.abs() < 1000 * Money::UNITS_PER_YUAN {
        return Money(m.0 / 100 * 100).to_string();
    }
    let y = m.0 / Money::UNITS_PER_YUAN;
    let s = y.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if y < 0 { format!("-{out}") } else { out }
}

/// The metric rows shared by the single-run and the comparison tables.
fn base_rows(r: &Report) -> Vec<(&'static str, String)> {
    vec![
        ("jobs completed", r.jobs.completed.to_string()),
        ("jobs timed out", r.jobs.timed_out.to_string()),
        ("jobs rejected", r.jobs.rejected.to_string()),
        ("avg JCT", fmt_secs(r.jct.avg_secs)),
        ("p50 JCT", fmt_secs(r.jct.p50_secs)),
        ("p95 JCT", fmt_secs(r.jct.p95_secs)),
        ("p99 JCT", fmt_secs(r.jct.p99_secs)),
        (
            "avg JCT / lower bound",
            format!("{:.2}", r.jct_over_lower_bound),
        ),
        ("avg queueing delay", fmt_secs(r.queueing_delay.avg_secs)),
        ("p99 queueing delay", fmt_secs(r.queueing_delay.p99_secs)),
        ("utilisation", pct(r.utilisation)),
        ("util while submitting", pct(r.utilisation_while_submitting)),
        ("span", fmt_secs(r.span_secs)),
        ("cost (yuan)", yuan(r.cost)),
        (
            "cost / lower bound",
            format!("{:.3}", r.cost_over_lower_bound),
        ),
        ("preemptions", r.preemptions.to_string()),
        (
            "requeues (lost / drained)",
            format!("{} / {}", r.requeues.lease_lost, r.requeues.drained),
        ),
        (
            "card-hours lost to faults",
            format!(
                "{:.0}",
                (r.requeues.lease_lost_card_secs + r.requeues.drained_card_secs) as f64 / 3600.0
            ),
        ),
        (
            "lost card-hours",
            format!("{:.0}", r.lost_card_secs / 3600.0),
        ),
        (
            "sched time / decision",
            format!("{:.1}us", r.wall.schedule_us_per_decision),
        ),
        ("events / s", format!("{:.0}", r.wall.events_per_sec)),
        ("speed-up", format!("{:.0}x", r.wall.speedup)),
        ("wall time", format!("{:.1}s", r.wall.secs)),
        ("decision hash", r.decision_hash.clone()),
    ]
}

/// The report's figures as (label, value) rows; with a chip speed model, the card-hours it
/// gained and lost come after the lost card-hours.
fn rows(r: &Report) -> Vec<(&'static str, String)> {
    let mut rows = base_rows(r);
    if let Some(s) = &r.speed {
        let at = rows
            .iter()
            .position(|(l, _)| *l == "lost card-hours")
            .map_or(rows.len(), |i| i + 1);
        rows.insert(
            at,
            (
                "chip speed: card-hours gained / lost",
                format!("{:.0} / {:.0}", s.card_hours_gained, s.card_hours_lost),
            ),
        );
    }
    rows
}

/// A table with a left-aligned first column and right-aligned others.
fn table<S: AsRef<str>>(header: &[S], body: impl IntoIterator<Item = Vec<String>>) -> String {
    let header: Vec<String> = header.iter().map(|h| h.as_ref().to_string()).collect();
    let body: Vec<Vec<String>> = body.into_iter().collect();
    let cols = header.len();
    let mut width = vec![0; cols];
    for row in std::iter::once(&header).chain(&body) {
        for (i, c) in row.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for row in std::iter::once(&header).chain(&body) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(line, "{c:<w$}", w = width[0]);
            } else {
                let _ = write!(line, "  {c:>w$}", w = width[i]);
            }
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

/// One run: the metrics, then utilisation per pool and JCT per priority class.
pub fn render_text(r: &Report) -> String {
    let metrics = rows(r).into_iter().map(|(k, v)| vec![k.to_string(), v]);
    let pools = r.pools.iter().map(|p| {
        vec![
            p.center.clone(),
            p.sku.clone(),
            p.cards.to_string(),
            p.price_per_card_hour.to_string(),
            pct(p.utilisation),
            yuan(p.cost),
        ]
    });
    let classes = r
        .by_class
        .iter()
        .chain(r.by_need.iter().filter(|c| c.jobs > 0))
        .map(|c| {
            vec![
                c.class.clone(),
                c.jobs.to_string(),
                fmt_secs(c.avg_jct_secs),
                fmt_secs(c.avg_queueing_secs),
            ]
        });
    [
        table(&["metric", r.policy.as_str()], metrics),
        table(
            &["center", "sku", "cards", "price", "util", "cost (yuan)"],
            pools,
        ),
        table(
            &["class / chip need", "jobs", "avg JCT", "avg queueing"],
            classes,
        ),
    ]
    .join("\n")
}

/// Several runs side by side, one column per policy.
pub fn render_compare(reports: &[Report]) -> String {
    let mut header = vec!["metric".to_string()];
    header.extend(reports.iter().map(|r| r.policy.clone()));
    let per: Vec<Vec<(&str, String)>> = reports.iter().map(rows).collect();
    let n = per.first().map_or(0, Vec::len);
    let body = (0..n).map(|i| {
        let mut row = vec![per[0][i].0.to_string()];
        row.extend(per.iter().map(|p| p[i].1.clone()));
        row
    });
    table(&header, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2);
        assert_eq!(percentile(&[1, 2, 3, 4], 99.0), 4);
        assert_eq!(percentile(&[], 99.0), 0);
        let mut b = vec![0.0; 4];
        spread(&mut b, 10.0, 5, 25, 2.0);
        assert_eq!(b, [10.0, 20.0, 10.0, 0.0]);
        assert_eq!(fmt_secs(30.0), "30s");
        assert_eq!(fmt_secs(5400.0), "1.50h");
        assert_eq!(yuan(Money::from_yuan(1_234_567)), "1,234,567");
        assert_eq!(yuan(Money::from_yuan(12)), "12.00");
        assert_eq!(yuan(Money(123_456)), "12.34");
        assert_eq!(
            cost_of(Money::from_yuan(2), 3, 1_800_000),
            Money::from_yuan(3)
        );
    }
}

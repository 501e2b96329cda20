//! Statistics benchmark: a quarter of 1,000,000 jobs (the target: the indicators of a
//! quarter in under 2 s), and the hourly rollup's cost per job.
//!
//! 20 centers (one pool each, 64 to 1,024 cards, a third of them domestic), 100 tenants of the
//! five categories, 1,000,000 jobs spread over 2026Q3 (1 to 8 cards, waits of 0 s to 3 h, runs
//! of 5 min to 4 h), each as its six facts (submitted, allocated, started, released, ended,
//! billed) fed to one rollup in time order, closed every hour. Timed: (a) feeding the facts,
//! per job; (b) the indicators of the quarter: the summary, the rows by month for the network,
//! centers, vendors and categories and by day for centers, and the release with its three
//! files; (c) as the baseline in the same run, one pass over the rollup's hours summing
//! delivered card-seconds (the floor any query pays). Medians over 5 runs (`--quick`: 1), with
//! the minimum and maximum of the headline figures.
//!
//! Run: `cargo bench -p suanli-indicators --bench quarter` (add `-- --quick` for one run).

use std::time::Instant;

use suanli_indicators::release::{Release, Vouchers};
use suanli_indicators::{By, Fact, HOUR_MS, Outcome, Period, PoolState, Quarter, Rollup, Window};
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};

const JOBS: i64 = 1_000_000;
const CENTERS: usize = 20;
const TENANTS: usize = 100;
const Q: Quarter = Quarter { year: 2026, q: 3 };

/// A small deterministic generator (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Every fact of the quarter, in time order (each with its time).
/// The centers' cities; tenants are in the first three.
const CITIES: [&str; 4] = ["Shenzhen", "Guangzhou", "Dongguan", "Zhuhai"];

fn facts() -> Vec<(Timestamp, Fact)> {
    let start = Q.start();
    let span = Q.end().0 - start.0 - 6 * HOUR_MS;
    let mut rng = Mix(7);
    let mut out = Vec::with_capacity(JOBS as usize * 6 + 200);
    for c in 0..CENTERS {
        let center = CenterId::new(format!("c{c:02}"));
        let domestic = c.is_multiple_of(3);
        out.push((
            start,
            Fact::Pool {
                at: start,
                center: center.clone(),
                sku: if domestic { "Ascend910B3" } else { "H100-SXM" }.into(),
                cards: 64 << (c % 5),
                vendor: if domestic { "huawei" } else { "nvidia" }.into(),
                fp16_tflops: if domestic { 313 } else { 989 },
                domestic,
                city: Some(CITIES[c % CITIES.len()].into()),
            },
        ));
        out.push((
            start,
            Fact::Center {
                at: start,
                center,
                state: PoolState::Online,
            },
        ));
    }
    for t in 0..TENANTS {
        out.push((
            start,
            Fact::Tenant {
                tenant: TenantId::new(format!("t{t:03}")),
                category: TenantCategory::ALL[t % 5],
                city: Some(CITIES[t % 3].into()),
            },
        ));
    }
    for i in 0..JOBS {
        let job = JobId(i + 1);
        let c = rng.next(CENTERS as u64) as usize;
        let (center, sku) = (
            CenterId::new(format!("c{c:02}")),
            if c.is_multiple_of(3) {
                "Ascend910B3"
            } else {
                "H100-SXM"
            },
        );
        let tenant = TenantId::new(format!("t{:03}", rng.next(TENANTS as u64)));
        let cards = 1 << rng.next(4);
        let submitted = start.0 + (span as u64 * i as u64 / JOBS as u64) as i64;
        let placed = submitted + rng.next(3 * 3_600) as i64 * 1000;
        let started = placed + 2_000;
        let secs = 300 + rng.next(4 * 3_600 - 300) as i64;
        let ended = started + secs * 1000;
        let card_seconds = cards * secs as u64;
        let gross = card_seconds as i64 * 80_000 / 3_600;
        let subsidy = gross / 4;
        let t = Timestamp;
        out.extend([
            (
                t(submitted),
                Fact::Submitted {
                    at: t(submitted),
                    job,
                    tenant: tenant.clone(),
                },
            ),
            (
                t(placed),
                Fact::Allocated {
                    at: t(placed),
                    job,
                    attempt: 1,
                    center: center.clone(),
                    sku: sku.into(),
                    cards,
                },
            ),
            (
                t(started),
                Fact::Started {
                    at: t(started),
                    job,
                    attempt: 1,
                },
            ),
            (
                t(ended),
                Fact::Released {
                    at: t(ended),
                    job,
                    attempt: 1,
                },
            ),
            (
                t(ended),
                Fact::Ended {
                    at: t(ended),
                    job,
                    outcome: if i % 20 == 0 {
                        Outcome::Failed
                    } else {
                        Outcome::Succeeded
                    },
                },
            ),
            (
                t(ended),
                Fact::Billed {
                    center,
                    sku: sku.into(),
                    tenant,
                    started: t(started),
                    ended: t(ended),
                    card_seconds,
                    gross: Money(gross),
                    subsidy: Money(subsidy),
                    payable: Money(gross - subsidy),
                },
            ),
        ]);
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Feeds the facts in order, closing every hour; the rollup and the seconds it took.
fn feed(facts: &[(Timestamp, Fact)]) -> (Rollup, f64) {
    let t0 = Instant::now();
    let mut r = Rollup::new();
    let mut closed = Q.start().0;
    for (at, f) in facts {
        while at.0 >= closed + HOUR_MS {
            closed += HOUR_MS;
            r.advance(Timestamp(closed));
        }
        r.apply(f).expect("a valid fact");
    }
    r.advance(Timestamp(Q.end().0 + HOUR_MS));
    (r, t0.elapsed().as_secs_f64())
}

/// The quarter's indicators and release: the seconds of each part (summary, rows by month for
/// each grouping, rows by day for centers, the release, its files), and the JSON's size.
fn indicators(r: &Rollup) -> (Vec<(&'static str, f64)>, usize) {
    let (from, to) = (Q.start(), Q.end());
    let mut parts = Vec::new();
    let mut lap = {
        let mut t = Instant::now();
        move |name: &'static str, parts: &mut Vec<(&'static str, f64)>| {
            parts.push((name, t.elapsed().as_secs_f64()));
            t = Instant::now();
        }
    };
    let summary = r.summary(from, to).expect("a summary");
    assert!(summary.delivered_card_hours > 0.0);
    lap("summary", &mut parts);
    let mut rows = 0;
    for (by, name) in [
        (By::All, "rows by month, network"),
        (By::Center, "rows by month, center"),
        (By::Sku, "rows by month, sku"),
        (By::Vendor, "rows by month, vendor"),
        (By::Category, "rows by month, category"),
    ] {
        let w = Window {
            from,
            to,
            period: Period::Month,
            by,
            tenant: None,
        };
        rows += r.rows(&w).expect("rows").len();
        lap(name, &mut parts);
    }
    let w = Window {
        from,
        to,
        period: Period::Day,
        by: By::Center,
        tenant: None,
    };
    rows += r.rows(&w).expect("rows").len();
    lap("rows by day, center", &mut parts);
    let release = Release::build(r, Q, Vouchers::default()).expect("a release");
    lap("Release::build", &mut parts);
    let json = release.to_json();
    let (csv, html) = (release.to_csv(), release.to_html());
    assert!(rows > 0 && !csv.is_empty() && html.contains("<svg"));
    lap("the three files", &mut parts);
    (parts, json.len())
}

/// The floor: one pass over every usage hour.
fn baseline(r: &Rollup) -> f64 {
    let t0 = Instant::now();
    let delivered: u64 = r.usage_values().map(|u| u.delivered).sum();
    assert!(delivered > 0);
    t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs = if std::env::args().any(|a| a == "--quick") {
        1
    } else {
        5
    };
    let facts = facts();
    let (mut fed, mut ind, mut base) = (Vec::new(), Vec::new(), Vec::new());
    let mut parts: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut size = (0, 0, 0);
    for _ in 0..runs {
        let (r, secs) = feed(&facts);
        fed.push(secs);
        let (laps, json) = indicators(&r);
        ind.push(laps.iter().map(|l| l.1).sum());
        for (i, (name, secs)) in laps.into_iter().enumerate() {
            match parts.get_mut(i) {
                Some(p) => p.1.push(secs),
                None => parts.push((name, vec![secs])),
            }
        }
        base.push(baseline(&r));
        size = (r.pool_hours().len(), r.usage_values().len(), json);
    }
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("min {lo:.3} s, max {hi:.3} s, {} runs", v.len())
    };
    let (ind_spread, fed_spread) = (spread(&ind), spread(&fed));
    let (fed, ind, base) = (median(fed), median(ind), median(base));
    println!(
        "{JOBS} jobs, {} facts; {} pool hours, {} usage hours; release.json {} bytes",
        facts.len(),
        size.0,
        size.1,
        size.2
    );
    println!(
        "hourly rollup: {fed:.3} s = {:.2} us per job ({fed_spread})",
        fed / JOBS as f64 * 1e6
    );
    println!("indicators of the quarter, all parts: {ind:.3} s ({ind_spread}; target < 2 s)");
    for (name, secs) in parts {
        println!("  {name}: {:.3} s", median(secs));
    }
    println!(
        "baseline, one pass over the usage hours: {base:.4} s (indicators / baseline = {:.0}x)",
        ind / base.max(1e-9)
    );
}

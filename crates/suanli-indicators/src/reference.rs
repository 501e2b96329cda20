//! The queries the slow, obvious way, as the oracle of the one-pass cells ([`crate::pass`]):
//! every hour in the window looked at for every grouping, its group's label built as a string,
//! its cell found in an ordered map by (period start, label). Random histories over several
//! centers, SKUs, vendors and tenant categories must give the same rows, summary and release.

use std::collections::BTreeMap;

use proptest::prelude::*;
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};

use crate::calendar::{Period, Quarter};
use crate::histogram::WaitHistogram;
use crate::indicators::{By, Row, Summary, Window, rows_of};
use crate::pass::{CapSum, Cell, Group, UseSum, category_label};
use crate::release::{Release, Vouchers, WAIT_CLASSES};
use crate::rollup::{Fact, Outcome, PoolState, Rollup};
use crate::{HOUR_MS, IndicatorResult};

/// The cells of one grouping, hour by hour.
fn cells(r: &Rollup, w: &Window, group: Group) -> Vec<Cell> {
    let inside = |h: &Timestamp| *h >= w.from && *h < w.to;
    let mut out: BTreeMap<(Timestamp, String), (Option<CapSum>, UseSum)> = BTreeMap::new();
    if w.tenant.is_none() && group.has_capacity() {
        for ((h, pool), c) in r.pool_hours().iter().filter(|((h, _), _)| inside(h)) {
            let key = (w.period.start(*h), group.pool_label(r, Some(pool)));
            out.entry(key)
                .or_default()
                .0
                .get_or_insert_with(CapSum::default)
                .add(c);
        }
    }
    let mut numbers: BTreeMap<TenantId, u32> = BTreeMap::new();
    for ((h, key), u) in r.usage_hours().iter().filter(|((h, _), _)| inside(h)) {
        if w.tenant.as_ref().is_some_and(|t| *t != key.tenant) {
            continue;
        }
        let label = match group {
            Group::Category => category_label(r.category(&key.tenant)).to_string(),
            _ => group.pool_label(r, key.pool.as_ref()),
        };
        let next = numbers.len() as u32;
        let n = *numbers.entry(key.tenant.clone()).or_insert(next);
        out.entry((w.period.start(*h), label))
            .or_default()
            .1
            .add(n, u);
    }
    out.into_iter()
        .map(|((start, label), (cap, usage))| Cell {
            start,
            label,
            cap,
            usage,
        })
        .collect()
}

fn rows(r: &Rollup, w: &Window) -> IndicatorResult<Vec<Row>> {
    rows_of(&cells(r, w, w.by.into()), w.period)
}

/// The summary from its definitions, over the whole window at once.
fn summary(r: &Rollup, from: Timestamp, to: Timestamp) -> Summary {
    let w = |by| Window {
        from,
        to,
        period: Period::Quarter,
        by,
        tenant: None,
    };
    let sum = |cells: Vec<Cell>| {
        let mut all: BTreeMap<String, (Option<CapSum>, UseSum)> = BTreeMap::new();
        for c in cells {
            let e = all.entry(c.label).or_default();
            if let Some(cap) = c.cap {
                e.0.get_or_insert_with(CapSum::default).merge(&cap);
            }
            e.1.merge(&c.usage);
        }
        all
    };
    let all = sum(cells(r, &w(By::All), Group::All));
    let centers = sum(cells(r, &w(By::All), Group::Center));
    let categories = sum(cells(r, &w(By::All), Group::Category));
    let (cap, uses) = all.get("all").cloned().unwrap_or_default();
    let cap = cap.unwrap_or_default();
    // Domestic: every pool hour and usage hour of a pool registered as domestic.
    let domestic = |p: &(CenterId, String)| r.pool_info(p).is_some_and(|i| i.domestic);
    let inside = |h: &Timestamp| *h >= from && *h < to;
    let mut dom = CapSum::default();
    for (_, c) in r
        .pool_hours()
        .iter()
        .filter(|((h, p), _)| inside(h) && domestic(p))
    {
        dom.add(c);
    }
    let delivered_domestic: u64 = r
        .usage_hours()
        .iter()
        .filter(|((h, k), _)| inside(h) && k.pool.as_ref().is_some_and(domestic))
        .map(|(_, u)| u.delivered)
        .sum();
    let ratio =
        |a: u128, b: u128| (b > 0).then(|| (a as f64 / b as f64 * 10_000.0).round() / 10_000.0);
    let span = (to.0 - from.0) as f64;
    let pflops = |c: &CapSum| (c.tflop_ms as f64 / span / 1000.0 * 1000.0).round() / 1000.0;
    let smes: u64 = ["sme", "startup"]
        .iter()
        .filter_map(|c| categories.get(*c))
        .map(|(_, u)| u.active_tenants())
        .sum();
    let active = uses.active_tenants();
    let h3 = |s: u64| (s as f64 * 1000.0 / 3_600_000.0 * 1000.0).round() / 1000.0;
    let row = &rows_of(
        &[Cell {
            start: from,
            label: "all".into(),
            cap: None,
            usage: uses.clone(),
        }],
        Period::Quarter,
    )
    .unwrap()[0]
        .usage;
    Summary {
        installed_fp16_pflops: pflops(&cap),
        domestic_fp16_pflops: pflops(&dom),
        domestic_share_installed: ratio(dom.tflop_ms, cap.tflop_ms),
        domestic_share_delivered: ratio(u128::from(delivered_domestic), u128::from(uses.delivered)),
        utilisation: ratio(cap.allocated, cap.available),
        delivered_utilisation: ratio(u128::from(uses.delivered) * 1000, cap.available),
        delivered_card_hours: h3(uses.delivered),
        delivered_card_hours_by_category: categories
            .iter()
            .map(|(k, (_, u))| (k.clone(), h3(u.delivered)))
            .collect(),
        active_tenants: active,
        sme_startup_share: ratio(u128::from(smes), u128::from(active)),
        wait_p50_secs: row.wait_p50_secs,
        wait_p95_secs: row.wait_p95_secs,
        gross_yuan: row.gross_yuan,
        subsidy_yuan: row.subsidy_yuan,
        payable_yuan: row.payable_yuan,
        subsidy_rate: row.subsidy_rate,
        center_availability: centers
            .into_iter()
            .filter_map(|(k, (c, _))| c.map(|c| (k, ratio(c.installed - c.down, c.installed))))
            .collect(),
        cross_city_share: ratio(u128::from(uses.cross_city), u128::from(uses.located)),
    }
}

const POOLS: [(&str, &str, u64, &str, bool); 4] = [
    ("sz", "A", 8, "nvidia", false),
    ("sz", "B", 16, "huawei", true),
    ("gz", "A", 4, "nvidia", false),
    ("hk", "C", 32, "cambricon", true),
];
const CATEGORIES: [Option<TenantCategory>; 6] = [
    Some(TenantCategory::Sme),
    Some(TenantCategory::Sme),
    Some(TenantCategory::Startup),
    Some(TenantCategory::Research),
    Some(TenantCategory::Sme),
    None,
];

/// A job: tenant, pool (none: never placed), submission (minutes into the quarter), wait and
/// run (minutes), outcome, cards, and whether its bill comes late.
type JobDraw = (usize, Option<usize>, i64, i64, i64, usize, u64, bool);

fn job() -> impl Strategy<Value = JobDraw> {
    (
        0usize..6,
        prop::option::weighted(0.9, 0usize..4),
        0i64..120_000,
        0i64..3_000,
        1i64..2_000,
        0usize..4,
        1u64..5,
        prop::bool::weighted(0.1),
    )
}

/// The history of `jobs` and center state changes (center, minute, state), fed in time order;
/// late bills arrive after the quarter was closed.
fn history(jobs: &[JobDraw], states: &[(usize, i64, usize)]) -> Rollup {
    let q = Quarter::of(Timestamp(1_782_835_200_000)); // 2026Q3
    let at = |min: i64| Timestamp(q.start().0 + min * 60_000);
    let mut r = Rollup::new();
    let mut facts: Vec<(Timestamp, Fact)> = Vec::new();
    let mut late = Vec::new();
    for (center, sku, cards, vendor, domestic) in POOLS {
        facts.push((
            at(0),
            Fact::Pool {
                at: at(0),
                center: CenterId::from(center),
                sku: sku.into(),
                cards,
                vendor: vendor.into(),
                fp16_tflops: 100,
                domestic,
                city: match center {
                    "sz" => Some("Shenzhen".into()),
                    "gz" => Some("Guangzhou".into()),
                    _ => None,
                },
            },
        ));
    }
    for center in ["sz", "gz", "hk"] {
        facts.push((
            at(0),
            Fact::Center {
                at: at(0),
                center: CenterId::from(center),
                state: PoolState::Online,
            },
        ));
    }
    for &(c, min, s) in states {
        let state = [PoolState::Online, PoolState::Drained, PoolState::Down][s];
        let center = CenterId::from(["sz", "gz", "hk"][c]);
        facts.push((
            at(min),
            Fact::Center {
                at: at(min),
                center,
                state,
            },
        ));
    }
    for (i, c) in CATEGORIES.iter().enumerate() {
        if let Some(category) = c {
            let tenant = TenantId::from(format!("t{i}").as_str());
            let city = ["Shenzhen", "Guangzhou", "Shenzhen", "", "Dongguan", ""][i];
            r.apply(&Fact::Tenant {
                tenant,
                category: *category,
                city: (!city.is_empty()).then(|| city.to_string()),
            })
            .unwrap();
        }
    }
    for (n, &(t, pool, sub, wait, run, outcome, cards, is_late)) in jobs.iter().enumerate() {
        let job = JobId(n as i64 + 1);
        let tenant = TenantId::from(format!("t{t}").as_str());
        let (sub, start, end) = (at(sub), at(sub + wait), at(sub + wait + run));
        let outcome = Outcome::ALL[outcome];
        facts.push((
            sub,
            Fact::Submitted {
                at: sub,
                job,
                tenant: tenant.clone(),
            },
        ));
        let Some(p) = pool else {
            facts.push((
                start,
                Fact::Ended {
                    at: start,
                    job,
                    outcome: Outcome::Cancelled,
                },
            ));
            continue;
        };
        let (center, sku, ..) = POOLS[p];
        let (center, sku) = (CenterId::from(center), sku.to_string());
        let placed = Timestamp(sub.0 + (start.0 - sub.0) / 2);
        facts.push((
            placed,
            Fact::Allocated {
                at: placed,
                job,
                attempt: 1,
                center: center.clone(),
                sku: sku.clone(),
                cards,
            },
        ));
        facts.push((
            start,
            Fact::Started {
                at: start,
                job,
                attempt: 1,
            },
        ));
        facts.push((
            end,
            Fact::Released {
                at: end,
                job,
                attempt: 1,
            },
        ));
        facts.push((
            end,
            Fact::Ended {
                at: end,
                job,
                outcome,
            },
        ));
        let secs = (end.0 - start.0) as u64 / 1000 * cards;
        let bill = Fact::Billed {
            center,
            sku,
            tenant,
            started: start,
            ended: end,
            card_seconds: secs,
            gross: Money(secs as i64 * 7),
            subsidy: Money(secs as i64 * 2),
            payable: Money(secs as i64 * 5),
        };
        if is_late {
            late.push(bill)
        } else {
            facts.push((end, bill))
        }
    }
    facts.sort_by_key(|f| f.0);
    for (t, f) in &facts {
        r.apply(f).unwrap();
        if t.0 % (7 * HOUR_MS) == 0 {
            r.advance(*t);
        }
    }
    r.advance(Timestamp(q.end().0 + 200 * HOUR_MS));
    for f in &late {
        r.apply(f).unwrap();
    }
    r
}

/// What the cells share with the reference (the sums of one hour into a cell) checked on its
/// own, from the hours: each month's active tenants as a set, its waits as one histogram, the
/// release's wait classes, and cross-city card-hours by center as the cities stand (they never
/// change in these histories).
fn independent(r: &Rollup, q: Quarter, release: &Release) -> Result<(), TestCaseError> {
    let hours = r.usage_hours();
    let inside = |h: &Timestamp, from: Timestamp, to: Timestamp| *h >= from && *h < to;
    for row in &release.by_month {
        let from = crate::calendar::parse_instant(&row.period).unwrap();
        let to = Period::Month.next(from);
        let mut tenants = std::collections::BTreeSet::new();
        let mut waits = WaitHistogram::default();
        for ((_, k), u) in hours.iter().filter(|((h, _), _)| inside(h, from, to)) {
            if u.started > 0 || u.allocated > 0 || u.delivered > 0 {
                tenants.insert(k.tenant.clone());
            }
            waits.merge(&u.waits);
        }
        prop_assert_eq!(row.usage.active_tenants, tenants.len() as u64);
        prop_assert_eq!(row.usage.wait_p50_secs, waits.quantile(0.5));
        prop_assert_eq!(row.usage.wait_p99_secs, waits.quantile(0.99));
    }
    let mut all = WaitHistogram::default();
    for ((_, _), u) in hours
        .iter()
        .filter(|((h, _), _)| inside(h, q.start(), q.end()))
    {
        all.merge(&u.waits);
    }
    prop_assert_eq!(release.waits.iter().map(|w| w.1).sum::<u64>(), all.count());
    let mut below = 0;
    for ((upto, _), (_, n)) in WAIT_CLASSES.iter().zip(&release.waits) {
        let at_most = all.count_at_most(*upto).max(below);
        prop_assert_eq!(*n, at_most - below);
        below = at_most;
    }
    let mut cross: BTreeMap<String, u64> = BTreeMap::new();
    let mut located: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, k), u) in hours
        .iter()
        .filter(|((h, _), _)| inside(h, q.start(), q.end()))
    {
        let judged = r.cross_city(&k.tenant, k.pool.as_ref());
        if let Some(away) = judged {
            let center = k.pool.as_ref().unwrap().0.to_string();
            *located.entry(center.clone()).or_default() += u.delivered;
            if away {
                *cross.entry(center).or_default() += u.delivered;
            }
        }
    }
    let h3 = |s: u64| (s as f64 * 1000.0 / 3_600_000.0 * 1000.0).round() / 1000.0;
    let by_center = rows(
        r,
        &Window {
            from: q.start(),
            to: q.end(),
            period: Period::Quarter,
            by: By::Center,
            tenant: None,
        },
    )
    .unwrap();
    for row in &by_center {
        let want = cross.get(&row.group).copied().unwrap_or(0);
        prop_assert_eq!(row.usage.cross_city_card_hours, h3(want), "{}", row.group);
        let want = located.get(&row.group).copied().unwrap_or(0);
        prop_assert_eq!(row.usage.located_card_hours, h3(want), "{}", row.group);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every grouping by every period, for the network and for one tenant, over the quarter and
    /// over a window that cuts periods: the one pass gives the rows of the definition; and the
    /// summary and the release are the same as made from the definitions.
    #[test]
    fn one_pass_gives_the_rows_of_the_definition(
        jobs in prop::collection::vec(job(), 0..60),
        states in prop::collection::vec((0usize..3, 0i64..130_000, 0usize..3), 0..6),
        cut in (0i64..2_000, 1i64..2_200),
    ) {
        let r = history(&jobs, &states);
        let q = Quarter::of(Timestamp(1_782_835_200_000));
        let windows = [
            (q.start(), q.end()),
            (Timestamp(q.start().0 + cut.0 * HOUR_MS), Timestamp(q.start().0 + (cut.0 + cut.1) * HOUR_MS + 1)),
        ];
        for (from, to) in windows {
            for period in [Period::Hour, Period::Day, Period::Month, Period::Quarter] {
                for by in By::ALL {
                    for tenant in [None, Some(TenantId::from("t1"))] {
                        let w = Window { from, to, period, by, tenant };
                        prop_assert_eq!(r.rows(&w).unwrap(), rows(&r, &w).unwrap(), "{:?}", w);
                    }
                }
            }
            prop_assert_eq!(r.summary(from, to).unwrap(), summary(&r, from, to));
        }
        let release = Release::build(&r, q, Vouchers::default()).unwrap();
        prop_assert_eq!(&release.summary, &summary(&r, q.start(), q.end()));
        let month = |by| Window { from: q.start(), to: q.end(), period: Period::Month, by, tenant: None };
        prop_assert_eq!(&release.by_month, &rows(&r, &month(By::All)).unwrap());
        prop_assert_eq!(&release.by_center, &rows(&r, &month(By::Center)).unwrap());
        prop_assert_eq!(&release.by_vendor, &rows(&r, &month(By::Vendor)).unwrap());
        independent(&r, q, &release)?;
    }
}

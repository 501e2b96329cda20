use proptest::prelude::*;
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};

use crate::release::{MIN_TENANTS_PER_GROUP, Release, SUPPRESSED, Vouchers};
use crate::*;

/// 2026-10-01T00:00 in China Standard Time: the start of 2026Q4.
const Q4: Timestamp = Timestamp(1_790_784_000_000);
const MIN: i64 = 60_000;

fn at(mins: i64) -> Timestamp {
    Timestamp(Q4.0 + mins * MIN)
}

fn c(s: &str) -> CenterId {
    CenterId::new(s)
}

fn t(s: &str) -> TenantId {
    TenantId::new(s)
}

fn pool(r: &mut Rollup, at: Timestamp, center: &str, sku: &str, cards: u64, domestic: bool) {
    r.apply(&Fact::Pool {
        at,
        center: c(center),
        sku: sku.into(),
        cards,
        vendor: if domestic { "huawei" } else { "nvidia" }.into(),
        fp16_tflops: if domestic { 320 } else { 165 },
        domestic,
        city: None,
    })
    .unwrap();
}

fn online(r: &mut Rollup, at: Timestamp, center: &str, state: PoolState) {
    r.apply(&Fact::Center {
        at,
        center: c(center),
        state,
    })
    .unwrap();
}

/// A job of `tenant` submitted at `sub`, placed at `start` on `cards` cards, ended at `end`,
/// billed for its run.
#[allow(clippy::too_many_arguments)]
fn job(
    r: &mut Rollup,
    id: i64,
    tenant: &str,
    center: &str,
    cards: u64,
    sub: Timestamp,
    start: Timestamp,
    end: Timestamp,
) {
    let job = JobId(id);
    let facts = [
        Fact::Submitted {
            at: sub,
            job,
            tenant: t(tenant),
        },
        Fact::Allocated {
            at: start,
            job,
            attempt: 1,
            center: c(center),
            sku: "X".into(),
            cards,
        },
        Fact::Started {
            at: start,
            job,
            attempt: 1,
        },
        Fact::Released {
            at: end,
            job,
            attempt: 1,
        },
        Fact::Ended {
            at: end,
            job,
            outcome: Outcome::Succeeded,
        },
        Fact::Billed {
            center: c(center),
            sku: "X".into(),
            tenant: t(tenant),
            started: start,
            ended: end,
            card_seconds: cards * (end.0 - start.0) as u64 / 1000,
            gross: Money::from_yuan(10),
            subsidy: Money::from_yuan(4),
            payable: Money::from_yuan(6),
        },
    ];
    for f in &facts {
        r.apply(f).unwrap();
    }
}

fn hourly(r: &Rollup, from: Timestamp, to: Timestamp, by: By) -> Vec<Row> {
    r.rows(&Window {
        from,
        to,
        period: Period::Hour,
        by,
        tenant: None,
    })
    .unwrap()
}

#[test]
fn quarters_and_days_follow_china_standard_time() {
    let q: Quarter = "2026Q4".parse().unwrap();
    assert_eq!(q.start(), Q4);
    assert_eq!(q.start().to_string(), "2026-09-30T16:00:00Z");
    assert_eq!(q.end().to_string(), "2026-12-31T16:00:00Z");
    assert_eq!(Quarter::of(at(1)), q);
    assert_eq!(Quarter::of(Timestamp(Q4.0 - 1)).to_string(), "2026Q3");
    assert_eq!(Period::Day.label(Period::Day.start(at(0))), "2026-10-01");
    assert_eq!(Period::Month.next(Q4).to_string(), "2026-10-31T16:00:00Z");
    assert_eq!(Period::Hour.label(at(75)), "2026-09-30T17Z");
    for bad in ["2026Q5", "2026", "26Q1", "2026Q0", "x"] {
        let e = bad.parse::<Quarter>().unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    assert!("week".parse::<Period>().is_err());
}

#[test]
fn a_job_over_three_hours_is_allocated_in_each_and_ended_once() {
    let mut r = Rollup::new();
    pool(&mut r, at(0), "sz", "X", 8, false);
    online(&mut r, at(0), "sz", PoolState::Online);
    // 4 cards from 00:30 to 02:30: 2 card-hours, 4, 2.
    job(&mut r, 1, "acme", "sz", 4, at(10), at(30), at(150));
    r.advance(at(180));
    let all = hourly(&r, at(0), at(180), By::Center);
    let unplaced: Vec<&Row> = all.iter().filter(|r| r.group == "not placed").collect();
    assert_eq!(unplaced.len(), 1, "submitted before any placement: {all:?}");
    assert_eq!(unplaced[0].usage.jobs_submitted, 1);
    let rows: Vec<Row> = all.into_iter().filter(|r| r.group == "sz").collect();
    let alloc: Vec<f64> = rows
        .iter()
        .map(|r| r.capacity.as_ref().unwrap().allocated_card_hours)
        .collect();
    assert_eq!(alloc, [2.0, 4.0, 2.0]);
    let used: Vec<f64> = rows.iter().map(|r| r.usage.allocated_card_hours).collect();
    assert_eq!(used, alloc, "the tenant's hours add up to the pool's");
    let ended: u64 = rows.iter().map(|r| r.usage.jobs_succeeded).sum();
    assert_eq!(ended, 1);
    assert_eq!(
        rows[2].usage.jobs_succeeded, 1,
        "ended in the hour it ended"
    );
    let delivered: u64 = rows.iter().map(|r| r.usage.delivered_card_seconds).sum();
    assert_eq!(delivered, 4 * 2 * 3600);
    assert_eq!(rows[0].usage.wait_p50_secs, Some(20 * 60));
    let cap = rows[1].capacity.as_ref().unwrap();
    assert_eq!(cap.installed_card_hours, 8.0);
    assert_eq!(cap.utilisation, Some(0.5));
    assert_eq!(cap.installed_fp16_pflops, 1.32);
}

#[test]
fn down_and_drained_time_counts_only_idle_cards() {
    let mut r = Rollup::new();
    pool(&mut r, at(0), "sz", "X", 4, true);
    online(&mut r, at(0), "sz", PoolState::Online);
    r.apply(&Fact::Submitted {
        at: at(0),
        job: JobId(1),
        tenant: t("a"),
    })
    .unwrap();
    r.apply(&Fact::Allocated {
        at: at(0),
        job: JobId(1),
        attempt: 1,
        center: c("sz"),
        sku: "X".into(),
        cards: 1,
    })
    .unwrap();
    online(&mut r, at(30), "sz", PoolState::Down);
    r.advance(at(60));
    let cap = hourly(&r, at(0), at(60), By::All)
        .remove(0)
        .capacity
        .unwrap();
    assert_eq!(cap.installed_card_hours, 4.0);
    assert_eq!(cap.down_card_hours, 1.5, "3 idle cards for half an hour");
    assert_eq!(cap.available_card_hours, 2.5);
    assert_eq!(cap.allocated_card_hours, 1.0);
    assert_eq!(cap.availability, Some(0.625));
}

#[test]
fn a_late_bill_amends_its_hour_and_a_release_made_before_stays() {
    let mut r = Rollup::new();
    pool(&mut r, at(0), "sz", "X", 8, false);
    online(&mut r, at(0), "sz", PoolState::Online);
    job(&mut r, 1, "acme", "sz", 1, at(0), at(0), at(30));
    r.advance(Quarter::of(at(0)).end());
    let q = Quarter::of(at(0));
    let before = Release::build(&r, q, Vouchers::default()).unwrap();
    let before_json = before.to_json();
    r.apply(&Fact::Billed {
        center: c("sz"),
        sku: "X".into(),
        tenant: t("acme"),
        started: at(40),
        ended: at(50),
        card_seconds: 600,
        gross: Money::from_yuan(1),
        subsidy: Money::ZERO,
        payable: Money::from_yuan(1),
    })
    .unwrap();
    let row = hourly(&r, at(0), at(60), By::All).remove(0);
    assert_eq!(row.usage.amendments, 1);
    assert_eq!(row.usage.delivered_card_seconds, 1800 + 600);
    assert_eq!(
        before.to_json(),
        before_json,
        "the frozen release is a value"
    );
    assert_ne!(
        Release::build(&r, q, Vouchers::default())
            .unwrap()
            .to_json(),
        before_json
    );
}

#[test]
fn a_quarter_not_yet_over_cannot_be_released() {
    let mut r = Rollup::new();
    r.advance(at(60));
    let e = Release::build(&r, Quarter::of(at(0)), Vouchers::default()).unwrap_err();
    assert!(e.to_string().contains("2026Q4"), "{e}");
}

/// The quarter so far is a preliminary release: its hours up to the one of `as_of`, marked so
/// in all three files; once the quarter has ended it is the release itself.
#[test]
fn a_preliminary_release_covers_the_quarter_so_far_and_says_so() {
    let q = Quarter::of(at(0));
    let mut r = quarter_of_work();
    let whole = Release::build(&r, q, Vouchers::default()).unwrap();
    assert_eq!(
        Release::preliminary(&r, q, Vouchers::default(), q.end()).unwrap(),
        whole,
        "an ended quarter's preliminary release is the release"
    );
    assert!(!whole.to_html().contains("preliminary"));
    let before = Timestamp(q.start().0 - 1);
    assert!(Release::preliminary(&r, q, Vouchers::default(), before).is_err());
    let mid = Timestamp(q.start().0 + 30 * 86_400_000 + 1_800_000);
    r.advance(mid);
    let p = Release::preliminary(&r, q, Vouchers::default(), mid).unwrap();
    assert_eq!(p.preliminary_until, Some(mid));
    assert!(p.to_json().contains("preliminary_until"));
    assert!(p.to_csv().contains(",preliminary_until,"));
    assert!(p.to_html().contains("preliminary"));
    assert!(p.by_month.len() <= whole.by_month.len());
}

/// A small network over a quarter: two centers, three categories of tenants.
fn quarter_of_work() -> Rollup {
    let mut r = Rollup::new();
    pool(&mut r, at(0), "sz", "X", 8, false);
    pool(&mut r, at(0), "sg", "X", 16, true);
    online(&mut r, at(0), "sz", PoolState::Online);
    online(&mut r, at(0), "sg", PoolState::Online);
    let tenants = [
        ("s1", TenantCategory::Sme),
        ("s2", TenantCategory::Sme),
        ("s3", TenantCategory::Startup),
        ("s4", TenantCategory::Sme),
        ("r1", TenantCategory::Research),
    ];
    for (tenant, category) in tenants {
        r.apply(&Fact::Tenant {
            tenant: t(tenant),
            category,
            city: None,
        })
        .unwrap();
    }
    let mut id = 0;
    for day in 0..80 {
        for (i, (tenant, _)) in tenants.iter().enumerate() {
            id += 1;
            let center = if i % 2 == 0 { "sz" } else { "sg" };
            let sub = at(day * 1440 + i as i64 * 37);
            job(
                &mut r,
                id,
                tenant,
                center,
                1 + i as u64 % 3,
                sub,
                Timestamp(sub.0 + (i as i64 + 1) * 5 * MIN),
                Timestamp(sub.0 + 3 * HOUR_MS),
            );
        }
    }
    r.advance(Quarter::of(at(0)).end());
    r
}

#[test]
fn the_same_rollup_gives_byte_identical_release_files() {
    let r = quarter_of_work();
    let q = Quarter::of(at(0));
    let a = Release::build(&r, q, Vouchers::default()).unwrap();
    let b = Release::build(&quarter_of_work(), q, Vouchers::default()).unwrap();
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.to_csv(), b.to_csv());
    assert_eq!(a.to_html(), b.to_html());
    let html = a.to_html();
    for id in [
        "capacity-by-vendor",
        "utilisation",
        "waits",
        "vouchers",
        "usage-by-category",
    ] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("算力网络季度统计发布 2026Q4"));
    let back: Release = serde_json::from_str(&a.to_json()).unwrap();
    assert_eq!(
        back.to_html(),
        html,
        "a stored release renders the same page"
    );
}

#[test]
fn a_release_never_shows_a_category_of_fewer_tenants_than_the_minimum() {
    let r = quarter_of_work();
    let rel = Release::build(&r, Quarter::of(at(0)), Vouchers::default()).unwrap();
    // SMEs (3 tenants) are shown; the lone start-up and research group are folded, and the
    // fold (2 tenants) is still too small to show.
    let groups: std::collections::BTreeSet<&str> =
        rel.by_category.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(groups.into_iter().collect::<Vec<_>>(), ["sme"]);
    for row in &rel.by_category {
        assert!(row.usage.active_tenants >= MIN_TENANTS_PER_GROUP, "{row:?}");
        assert_ne!(row.group, SUPPRESSED);
    }
    assert!(!rel.to_csv().contains("research"));
    assert!(!rel.to_html().contains("s1"), "no tenant is named");
    assert_eq!(rel.summary.active_tenants, 5);
    assert_eq!(rel.summary.sme_startup_share, Some(0.8));
}

#[test]
fn summary_splits_capacity_by_origin_and_money_by_use() {
    let r = quarter_of_work();
    let q = Quarter::of(at(0));
    let s = r.summary(q.start(), q.end()).unwrap();
    // 8 x 165 + 16 x 320 TFLOPS installed all quarter long.
    assert_eq!(s.installed_fp16_pflops, 6.44);
    assert_eq!(s.domestic_fp16_pflops, 5.12);
    assert_eq!(s.gross_yuan, Money::from_yuan(10 * 400));
    assert_eq!(s.subsidy_rate, Some(0.4));
    assert!(s.domestic_share_delivered.unwrap() > 0.0);
    assert_eq!(s.center_availability.len(), 2);
    // Facts arrive out of time order across jobs (each job's whole story at once), and still
    // each month's allocated card-time is exactly the billed runs' time.
    let months = r
        .rows(&Window {
            from: q.start(),
            to: q.end(),
            period: Period::Month,
            by: By::All,
            tenant: None,
        })
        .unwrap();
    for m in &months {
        let cap = m.capacity.as_ref().unwrap();
        assert_eq!(
            cap.allocated_card_hours, m.usage.delivered_card_hours,
            "{}",
            m.period
        );
        assert_eq!(cap.utilisation, cap.delivered_utilisation, "{}", m.period);
    }
}

/// A random history of one pool: placements and releases of attempts, state changes, resizes.
#[derive(Clone, Debug)]
enum Step {
    Place { cards: u64 },
    Release { pick: usize },
    State(u8),
    Resize(u64),
    Advance,
}

fn step() -> impl Strategy<Value = (u32, Step)> {
    let s = prop_oneof![
        (1u64..5).prop_map(|cards| Step::Place { cards }),
        (0usize..8).prop_map(|pick| Step::Release { pick }),
        (0u8..3).prop_map(Step::State),
        (0u64..12).prop_map(Step::Resize),
        Just(Step::Advance),
    ];
    (0u32..50, s)
}

proptest! {
    /// In every hour of every pool allocated <= available <= installed, the tenants' allocated
    /// time adds up to the pool's, and delivered card-seconds add up to what was billed.
    #[test]
    fn hours_never_allocate_more_than_is_available(steps in prop::collection::vec(step(), 1..80)) {
        let mut r = Rollup::new();
        pool(&mut r, at(0), "sz", "X", 8, false);
        let mut now = at(0);
        let mut open: Vec<(i64, Timestamp, u64)> = Vec::new();
        let mut billed = 0u64;
        let mut id = 0;
        for (gap, s) in steps {
            now = now.plus_millis(i64::from(gap) * 97 * 1000);
            match s {
                Step::Place { cards } => {
                    id += 1;
                    r.apply(&Fact::Submitted { at: now, job: JobId(id), tenant: t(&format!("t{}", id % 3)) }).unwrap();
                    r.apply(&Fact::Allocated { at: now, job: JobId(id), attempt: 1, center: c("sz"), sku: "X".into(), cards }).unwrap();
                    open.push((id, now, cards));
                }
                Step::Release { pick } if !open.is_empty() => {
                    let (j, start, cards) = open.remove(pick % open.len());
                    r.apply(&Fact::Released { at: now, job: JobId(j), attempt: 1 }).unwrap();
                    let cs = cards * (now.0 - start.0) as u64 / 1000;
                    billed += cs;
                    r.apply(&Fact::Billed { center: c("sz"), sku: "X".into(), tenant: t(&format!("t{}", j % 3)), started: start, ended: now, card_seconds: cs, gross: Money::ZERO, subsidy: Money::ZERO, payable: Money::ZERO }).unwrap();
                }
                Step::Release { .. } => {}
                Step::State(k) => {
                    let state = [PoolState::Online, PoolState::Drained, PoolState::Down][usize::from(k)];
                    online(&mut r, now, "sz", state);
                }
                Step::Resize(cards) => pool(&mut r, now, "sz", "X", cards, false),
                Step::Advance => r.advance(now),
            }
        }
        r.advance(now.plus_millis(HOUR_MS));
        let mut tenant_alloc: std::collections::BTreeMap<Timestamp, u64> = Default::default();
        let mut delivered = 0;
        for ((h, _), u) in r.usage_hours() {
            *tenant_alloc.entry(h).or_default() += u.allocated;
            delivered += u.delivered;
        }
        for ((h, _), p) in r.pool_hours() {
            prop_assert!(p.allocated() <= p.available(), "{h}: {p:?}");
            prop_assert!(p.available() <= p.installed(), "{h}: {p:?}");
            prop_assert_eq!(p.installed(), p.available() + p.down() + p.drained());
            prop_assert_eq!(tenant_alloc.get(h).copied().unwrap_or(0), p.allocated(), "{}", h);
        }
        prop_assert_eq!(delivered, billed);
        prop_assert_eq!(r.unmatched(), 0);
    }
}

/// A Shenzhen tenant's work at a Guangzhou center is dispatched across cities, at a Shenzhen
/// center it is not, and where a city is unknown it counts in neither.
#[test]
fn cross_city_dispatch_counts_work_outside_the_tenants_city() {
    let mut r = Rollup::new();
    for (center, city) in [
        ("sz", Some("Shenzhen")),
        ("gz", Some("Guangzhou")),
        ("hk", None),
    ] {
        r.apply(&Fact::Pool {
            at: at(0),
            center: c(center),
            sku: "X".into(),
            cards: 8,
            vendor: "nvidia".into(),
            fp16_tflops: 165,
            domestic: false,
            city: city.map(String::from),
        })
        .unwrap();
        online(&mut r, at(0), center, PoolState::Online);
    }
    for (tenant, city) in [("home", Some("Shenzhen")), ("nowhere", None)] {
        r.apply(&Fact::Tenant {
            tenant: t(tenant),
            category: TenantCategory::Sme,
            city: city.map(String::from),
        })
        .unwrap();
    }
    // One card-hour each: home at sz, gz and hk; nowhere at gz.
    let hour = |n: i64| (at(n * 60), at(n * 60 + 60));
    for (id, (tenant, center)) in [
        ("home", "sz"),
        ("home", "gz"),
        ("home", "hk"),
        ("nowhere", "gz"),
    ]
    .into_iter()
    .enumerate()
    {
        let (s, e) = hour(id as i64);
        job(&mut r, id as i64 + 1, tenant, center, 1, s, s, e);
    }
    r.advance(at(600));
    let s = r.summary(at(0), at(600)).unwrap();
    assert_eq!(s.delivered_card_hours, 4.0);
    assert_eq!(
        s.cross_city_share,
        Some(0.5),
        "1 of the 2 located card-hours"
    );
    let w = Window {
        from: at(0),
        to: at(600),
        period: Period::Quarter,
        by: By::Center,
        tenant: None,
    };
    let rows = r.rows(&w).unwrap();
    let cross = |g: &str| {
        rows.iter()
            .find(|r| r.group == g)
            .unwrap()
            .usage
            .cross_city_card_hours
    };
    assert_eq!((cross("sz"), cross("gz"), cross("hk")), (0.0, 1.0, 0.0));
}

#[test]
fn instants_are_read_in_every_written_form_and_only_days_of_the_calendar() {
    use crate::calendar::parse_instant;
    let q4 = Quarter { year: 2026, q: 4 }.start();
    assert_eq!(parse_instant("2026Q4"), Some(q4));
    assert_eq!(parse_instant("2026-10"), Some(q4));
    assert_eq!(parse_instant("2026-10-01"), Some(q4));
    assert_eq!(
        parse_instant("2026-10-01T08Z"),
        Some(Timestamp(q4.0 + 16 * HOUR_MS))
    );
    assert_eq!(
        parse_instant("1790000000000"),
        Some(Timestamp(1_790_000_000_000))
    );
    assert!(parse_instant("2028-02-29").is_some(), "a leap day");
    for bad in [
        "2026-02-30",
        "2027-02-29",
        "2026-13-01",
        "10000-01-01",
        "1969-12-31",
        "2026-10-01T24Z",
        "2026-10-01T08",
        "2026-10T08Z",
        "July",
        "",
        "-5",
        "2026-1-01",
    ] {
        assert_eq!(parse_instant(bad), None, "{bad:?}");
    }
}

//! The statistics end to end: the indicators of jobs run through a hub and its agents reconcile
//! with the bills; a quarter seeded into the store (a closed quarter cannot be lived through in
//! a test) is frozen into a release once, byte for byte the same from the same store, that a
//! late bill line does not change; the CLI writes its files and Chromium shows its charts.

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest, Sha256};
use suanli_client::{Client, ClientError, IndicatorsQuery};
use suanli_indicators::{Fact, Outcome, PoolState, Quarter};
use suanli_proto::{
    ErrorCode, GrantRequest, IndicatorsView, ProgrammeSpec, ReleaseRequest, ReleaseView,
};
use suanli_store::{NewFact, Store};
use suanli_types::{CenterId, JobId, JobSpec, Money, Role, TenantCategory, TenantId, Timestamp};

use crate::browser;
use crate::harness::*;

const HOUR: i64 = 3_600_000;
const Q3: Quarter = Quarter { year: 2026, q: 3 };

fn q(from: &str, to: &str, period: &str, by: &str) -> IndicatorsQuery {
    IndicatorsQuery {
        from: Some(from.into()),
        to: Some(to.into()),
        period: Some(period.into()),
        by: Some(by.into()),
    }
}

fn api(e: ClientError) -> suanli_proto::ApiError {
    match e {
        ClientError::Api(e) => e,
        e => panic!("not an API error: {e}"),
    }
}

/// In every row with capacity, allocated <= available <= installed.
fn allocated_within_available(v: &IndicatorsView) {
    for r in &v.rows {
        if let Some(c) = &r.capacity {
            assert!(
                c.allocated_card_hours <= c.available_card_hours
                    && c.available_card_hours <= c.installed_card_hours,
                "{} {}: {c:?}",
                r.period,
                r.group
            );
        }
    }
}

/// Jobs of two tenants at two centers, a voucher for one of them: per center the delivered
/// card-seconds are the bill lines' card-seconds and the yuan their yuan, to the fen; every
/// hour allocates at most what is available; a tenant sees its own usage only; and a restarted
/// hub, rebuilt from the stored facts, counts the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_reconcile_with_the_bills_and_survive_a_restart() {
    let centers = [
        center("ind-a", "RTX4090", 1, 4, "2.00"),
        center("ind-b", "RTX4090", 1, 4, "3.70"),
    ];
    let mut net = Net::with_agents(&centers, &["ta", "tb"]).await;
    let op = net.op();
    let at = suanli_hub::engine::now();
    op.create_programme(&ProgrammeSpec {
        id: "p".into(),
        issuer: "Test city".into(),
        budget: "1000".parse().unwrap(),
        valid_from: at.plus_millis(-86_400_000),
        valid_until: at.plus_secs(30 * 86_400),
        base_rate_bp: 3_000,
        category_rates: vec![],
        domestic_rate_bp: None,
        cap_per_tenant: "100".parse().unwrap(),
        eligible: vec![TenantCategory::Sme],
        exclude_affiliated: false,
    })
    .await
    .unwrap();
    op.grant(
        "p",
        &GrantRequest {
            tenant: TenantId::new("ta"),
            amount: "50".parse().unwrap(),
        },
    )
    .await
    .unwrap();
    let (ta, tb) = (net.user("ta", "alice").await, net.user("tb", "bob").await);
    // A firm in Zhuhai: its work at these Shenzhen centers is cross-city dispatch (ta and tb
    // have no city: they count in neither).
    let firm = |id: &str, city: &str| suanli_proto::TenantRequest {
        id: TenantId::new(id),
        name: "Zhuhai firm".into(),
        category: TenantCategory::Sme,
        city: Some(city.into()),
    };
    // A blank city, or one that only looks like a city (a zero-width space, a bidi override),
    // is refused, naming the field.
    for city in [" ", "Zhu\u{200B}hai", "\u{202E}iahuhZ"] {
        let e = api(op.create_tenant(&firm("tq", city)).await.unwrap_err());
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidSpec, Some("city")),
            "{city:?}"
        );
    }
    let made = op.create_tenant(&firm("tz", "Zhuhai")).await.unwrap();
    assert_eq!(made.city.as_deref(), Some("Zhuhai"));
    let tz = net.user("tz", "zoe").await;
    let mut jobs: Vec<(JobId, &Client)> = Vec::new();
    for i in 0..7u32 {
        let mut spec = JobSpec::new(format!("ind-{i}"), "sleep 1.2");
        spec.cards_per_node = 1 + i % 3;
        let who = match i {
            6 => &tz,
            _ if i % 2 == 0 => &ta,
            _ => &tb,
        };
        jobs.push((submit(who, &spec).await, who));
    }
    for (id, who) in &jobs {
        wait_terminal(who, *id, Duration::from_secs(60)).await;
    }
    let month = suanli_money::Month::of(suanli_hub::engine::now()).to_string();
    let window = || q("2026-01-01", "2030-01-01", "quarter", "center");

    let v = op.indicators(&window()).await.unwrap();
    assert_eq!(v.tenant, None);
    let mut billed_secs = 0;
    for c in &centers {
        let st = op.statement(c.id.as_str(), Some(&month)).await.unwrap();
        let secs: u64 = st.lines.iter().map(|l| l.card_seconds).sum();
        billed_secs += secs;
        let row = v.rows.iter().find(|r| r.group == c.id.as_str());
        let row = row.unwrap_or_else(|| panic!("no row of {}: {v:?}", c.id));
        assert_eq!(row.usage.delivered_card_seconds, secs, "{}", c.id);
        assert_eq!(row.usage.gross_yuan, st.totals.gross, "{}", c.id);
        assert_eq!(row.usage.subsidy_yuan, st.totals.subsidy, "{}", c.id);
        assert_eq!(row.usage.payable_yuan, st.totals.payable, "{}", c.id);
        assert!(row.capacity.is_some(), "the operator sees capacity");
    }
    assert!(billed_secs >= 6, "the jobs were metered: {billed_secs}");
    // The Prometheus counters say the same, by center, SKU and category.
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", net.url))
        .bearer_auth(&net.operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str, center: &str, extra: &str| -> f64 {
        let head = format!(
            "suanli_{name}_total{{center=\"{center}\",sku=\"RTX4090\",category=\"sme\"{extra}}} "
        );
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&head))
            .unwrap_or_else(|| panic!("no {head} in {metrics}"))
            .parse()
            .unwrap()
    };
    for c in &centers {
        let st = op.statement(c.id.as_str(), Some(&month)).await.unwrap();
        let secs: u64 = st.lines.iter().map(|l| l.card_seconds).sum();
        assert_eq!(
            counter("delivered_card_seconds", c.id.as_str(), ""),
            secs as f64
        );
        let gross = counter("billed_yuan", c.id.as_str(), ",kind=\"gross\"");
        assert!((gross - st.totals.gross.units() as f64 / 10_000.0).abs() < 1e-9);
    }
    let ended: u64 = v.rows.iter().map(|r| r.usage.jobs_succeeded).sum();
    assert_eq!(ended, 7, "each job ended once");
    let started: u64 = v.rows.iter().map(|r| r.usage.jobs_started).sum();
    assert_eq!(started, 7);
    // Cross-city dispatch at each center is the Zhuhai firm's delivered work there.
    let zhuhai = tz.indicators(&window()).await.unwrap();
    let mut cross = 0.0;
    for r in &v.rows {
        let theirs = zhuhai.rows.iter().find(|z| z.group == r.group);
        let theirs = theirs.map_or(0.0, |z| z.usage.delivered_card_hours);
        assert_eq!(r.usage.cross_city_card_hours, theirs, "{}", r.group);
        assert!(
            r.usage.located_card_hours >= r.usage.cross_city_card_hours
                && r.usage.located_card_hours <= r.usage.delivered_card_hours,
            "{r:?}"
        );
        cross += r.usage.cross_city_card_hours;
    }
    assert!(cross > 0.0, "the Zhuhai firm's job ran: {v:?}");
    let subsidy: i64 = v.rows.iter().map(|r| r.usage.subsidy_yuan.units()).sum();
    assert!(subsidy > 0, "ta's voucher paid part");

    let hourly = op
        .indicators(&q(
            &format!("{}", at.0 - 2 * HOUR),
            &format!("{}", at.0 + 2 * HOUR),
            "hour",
            "center",
        ))
        .await
        .unwrap();
    assert!(!hourly.rows.is_empty());
    allocated_within_available(&hourly);
    let allocated: f64 = hourly
        .rows
        .iter()
        .map(|r| r.usage.allocated_card_hours)
        .sum();
    assert!(allocated > 0.0, "placed jobs hold cards: {hourly:?}");

    // A tenant sees its own usage only, and no capacity.
    let bill = ta.bill(None, Some(&month)).await.unwrap();
    let own = ta.indicators(&window()).await.unwrap();
    assert_eq!(own.tenant, Some(TenantId::new("ta")));
    assert!(own.rows.iter().all(|r| r.capacity.is_none()));
    let secs: u64 = own
        .rows
        .iter()
        .map(|r| r.usage.delivered_card_seconds)
        .sum();
    assert_eq!(secs, bill.lines.iter().map(|l| l.card_seconds).sum::<u64>());
    let gross: i64 = own.rows.iter().map(|r| r.usage.gross_yuan.units()).sum();
    assert_eq!(Money(gross), bill.totals.gross);

    // Bad input gets a stable code naming the field.
    for (query, field) in [
        (q("2026-01-01", "2030-01-01", "week", "center"), "period"),
        (q("2026-01-01", "2030-01-01", "day", "tenant"), "by"),
        (q("yesterday", "2030-01-01", "day", "all"), "from"),
        (q("2027-01-01", "2026-01-01", "day", "all"), "to"),
        (q("2026-01-01", "2026-06-01", "hour", "all"), "to"),
    ] {
        let e = api(op.indicators(&query).await.unwrap_err());
        assert_eq!(e.code, ErrorCode::InvalidSpec, "{e}");
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
    }

    // Rebuilt from the store, the hub counts the same usage.
    let usage = |v: &IndicatorsView| -> Vec<String> {
        v.rows
            .iter()
            .map(|r| format!("{} {} {:?}", r.period, r.group, r.usage))
            .collect()
    };
    let before = usage(&op.indicators(&window()).await.unwrap());
    net.stop_agents().await;
    net.restart_hub(false).await;
    let after = usage(&net.op().indicators(&window()).await.unwrap());
    assert_eq!(before, after);
}

// ---------------------------------------------------------------- a seeded quarter

/// A quarter's worth of facts, in time order with the hours closed every day, as a hub would
/// have stored them: three centers (one domestic), twelve tenants of four categories, 90 jobs.
fn quarter_facts(quarter: Quarter) -> Vec<serde_json::Value> {
    let start = quarter.start().0;
    let at = |ms: i64| Timestamp(start + ms);
    let centers = [
        ("sz-a", "RTX4090", 16, "nvidia", 165, false, 20_000i64),
        ("gz-b", "Ascend910B3", 32, "huawei", 313, true, 30_000),
        ("hk-c", "A100-80G", 8, "nvidia", 312, false, 60_000),
    ];
    let categories = [
        TenantCategory::Sme,
        TenantCategory::Startup,
        TenantCategory::Research,
        TenantCategory::PublicService,
    ];
    let mut facts: Vec<(Timestamp, Fact)> = Vec::new();
    for (id, sku, cards, vendor, tflops, domestic, _) in centers {
        let center = CenterId::new(id);
        facts.push((
            at(0),
            Fact::Pool {
                at: at(0),
                center: center.clone(),
                sku: sku.into(),
                cards,
                vendor: vendor.into(),
                fp16_tflops: tflops,
                city: None,
                domestic,
            },
        ));
        facts.push((
            at(0),
            Fact::Center {
                at: at(0),
                center: center.clone(),
                state: PoolState::Online,
            },
        ));
        facts.push((
            quarter.end(),
            Fact::Pool {
                at: quarter.end(),
                center,
                sku: sku.into(),
                cards: 0,
                vendor: vendor.into(),
                fp16_tflops: tflops,
                city: None,
                domestic,
            },
        ));
    }
    let state = |c: &str, ms: i64, s: PoolState| {
        (
            at(ms),
            Fact::Center {
                at: at(ms),
                center: CenterId::new(c),
                state: s,
            },
        )
    };
    facts.push(state("hk-c", 40 * 24 * HOUR, PoolState::Drained));
    facts.push(state("hk-c", 47 * 24 * HOUR, PoolState::Online));
    facts.push(state("gz-b", 60 * 24 * HOUR, PoolState::Down));
    facts.push(state("gz-b", 61 * 24 * HOUR, PoolState::Online));
    let tenants: Vec<(TenantId, TenantCategory)> = (0..12)
        .map(|i| {
            let c = categories[i % 4];
            (TenantId::new(format!("{}-{}", c.as_str(), i / 4)), c)
        })
        .collect();
    for (tenant, category) in &tenants {
        facts.push((
            at(0),
            Fact::Tenant {
                tenant: tenant.clone(),
                category: *category,
                city: None,
            },
        ));
    }
    let waits = [20, 90, 400, 1_500, 4_000, 30_000];
    for i in 0..90i64 {
        let job = JobId(1000 + i);
        let (tenant, category) = tenants[i as usize % 12].clone();
        let (center, sku, _, _, _, _, price) = centers[i as usize % 3];
        let cards = 1 + (i % 4) as u64;
        let submitted = 22 * HOUR * i + 600_000;
        let started = submitted + waits[i as usize % 6] * 1000;
        let secs = 1_800 + (i % 5) * 2_700;
        let ended = started + secs * 1000;
        let card_seconds = cards * secs as u64;
        let gross = price * card_seconds as i64 / 3600;
        let subsidy = match category {
            TenantCategory::Sme | TenantCategory::Startup => gross * 3 / 10,
            _ => 0,
        };
        let outcome = if i % 7 == 3 {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        };
        let center = CenterId::new(center);
        facts.extend([
            (
                at(submitted),
                Fact::Submitted {
                    at: at(submitted),
                    job,
                    tenant: tenant.clone(),
                },
            ),
            (
                at(submitted + 1_000),
                Fact::Allocated {
                    at: at(submitted + 1_000),
                    job,
                    attempt: 1,
                    center: center.clone(),
                    sku: sku.into(),
                    cards,
                },
            ),
            (
                at(started),
                Fact::Started {
                    at: at(started),
                    job,
                    attempt: 1,
                },
            ),
            (
                at(ended),
                Fact::Released {
                    at: at(ended),
                    job,
                    attempt: 1,
                },
            ),
            (
                at(ended),
                Fact::Ended {
                    at: at(ended),
                    job,
                    outcome,
                },
            ),
            (
                at(ended),
                Fact::Billed {
                    center,
                    sku: sku.into(),
                    tenant,
                    started: at(started),
                    ended: at(ended),
                    card_seconds,
                    gross: Money(gross),
                    subsidy: Money(subsidy),
                    payable: Money(gross - subsidy),
                },
            ),
        ]);
    }
    facts.sort_by_key(|(t, _)| *t);
    let mut out = Vec::new();
    let mut closed = quarter.start().0;
    for (t, f) in facts {
        while t.0 >= closed + 24 * HOUR {
            closed += 24 * HOUR;
            out.push(serde_json::json!({ "close": closed }));
        }
        out.push(serde_json::to_value(&f).unwrap());
    }
    out.push(serde_json::json!({ "close": quarter.end().0 + HOUR }));
    out
}

async fn append(store: &dyn Store, rows: &[serde_json::Value]) {
    let rows: Vec<NewFact> = rows
        .iter()
        .map(|v| NewFact {
            at: Timestamp(v["close"].as_i64().unwrap_or(0)),
            fact: v.to_string(),
        })
        .collect();
    store
        .append_facts(&rows, suanli_hub::engine::now())
        .await
        .unwrap();
}

/// A hub on a fresh store holding the seeded quarter, and its operator token.
async fn seeded_hub(dir: &std::path::Path) -> (suanli_hub::Hub, String) {
    let db = dir.join("hub.db");
    let store = open(&db).await;
    append(store.as_ref(), &quarter_facts(Q3)).await;
    let now = suanli_hub::engine::now();
    let t = suanli_hub::auth::new_token_for("op", Role::Operator, None, None, now, None);
    let token = suanli_hub::auth::issue_token(store.as_ref(), &t)
        .await
        .unwrap()
        .0;
    drop(store);
    (start_hub(&db, engine_config()).await, token)
}

async fn files(url: &str, quarter: &str) -> Vec<String> {
    let public = Client::new(vec![url.to_string()], "");
    let mut out = Vec::new();
    for f in suanli_proto::RELEASE_FILES {
        out.push(public.release_file(quarter, f).await.unwrap());
    }
    out
}

/// A release is made once (a second POST is 409 `already_exists`, an unended quarter 409
/// `conflict`), is public, gives the same bytes from the same store, and keeps them when a late
/// bill line amends an hour of its quarter; the CLI writes the same files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_frozen_once_and_a_late_bill_line_does_not_change_it() {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hub, token) = seeded_hub(dir_a.path()).await;
    let op = Client::new(vec![hub.url()], &token);

    let v = op
        .indicators(&q("2026Q3", "2026Q4", "quarter", "all"))
        .await
        .unwrap();
    assert_eq!(v.rows.len(), 1, "{v:?}");
    let u = &v.rows[0].usage;
    assert_eq!((u.jobs_submitted, u.jobs_started), (90, 90));
    assert_eq!(u.jobs_succeeded + u.jobs_failed, 90);
    assert_eq!(u.active_tenants, 12);
    let hourly = op
        .indicators(&q("2026-08-01", "2026-08-31", "hour", "center"))
        .await
        .unwrap();
    allocated_within_available(&hourly);

    // Unended, malformed, then made, then refused.
    let e = api(op.make_release("2026Q4").await.unwrap_err());
    assert_eq!(e.code, ErrorCode::Conflict, "{e}");
    let e = api(op.make_release("2026Q5").await.unwrap_err());
    assert_eq!(e.code, ErrorCode::InvalidSpec, "{e}");
    assert_eq!(e.field.as_deref(), Some("quarter"));
    let made: ReleaseView = op.make_release("2026Q3").await.unwrap();
    let e = api(op.make_release("2026Q3").await.unwrap_err());
    assert_eq!(e.code, ErrorCode::AlreadyExists, "{e}");
    let raw = reqwest::Client::new()
        .post(format!("{}/v1/releases", hub.url()))
        .bearer_auth(&token)
        .json(&ReleaseRequest {
            quarter: "2026Q3".into(),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 409);

    // Public: listed and readable without a token.
    let public = Client::new(vec![hub.url()], "");
    let list = public.releases().await.unwrap();
    assert_eq!(list.releases, vec![made.clone()]);
    let a = files(&hub.url(), "2026Q3").await;
    let sha: String = Sha256::digest(a[0].as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(made.sha256, sha);
    assert!(a[1].starts_with("table,period,group,figure,value\n"));
    assert_eq!(a[2].matches("<svg").count(), 5, "five charts");
    let release: serde_json::Value = serde_json::from_str(&a[0]).unwrap();
    assert_eq!(release["quarter"], "2026Q3");
    let e = api(public
        .release_file("2026Q3", "release.pdf")
        .await
        .unwrap_err());
    assert_eq!(e.code, ErrorCode::NotFound);

    // The same store on another hub: the same bytes.
    let (hub_b, token_b) = seeded_hub(dir_b.path()).await;
    let op_b = Client::new(vec![hub_b.url()], &token_b);
    let made_b = op_b.make_release("2026Q3").await.unwrap();
    assert_eq!(made_b.sha256, made.sha256);
    assert_eq!(files(&hub_b.url(), "2026Q3").await, a);
    hub_b.shutdown().await;

    // A late bill line for an August run: the hour is amended, the release is not.
    let aug = Timestamp(Q3.start().0 + 40 * 24 * HOUR);
    let before = op
        .indicators(&q("2026Q3", "2026Q4", "quarter", "center"))
        .await
        .unwrap();
    hub.shutdown().await;
    let store = open(&dir_a.path().join("hub.db")).await;
    let late = Fact::Billed {
        center: CenterId::new("sz-a"),
        sku: "RTX4090".into(),
        tenant: TenantId::new("sme-0"),
        started: aug,
        ended: Timestamp(aug.0 + 2 * HOUR),
        card_seconds: 7_200,
        gross: "4.00".parse().unwrap(),
        subsidy: "1.20".parse().unwrap(),
        payable: "2.80".parse().unwrap(),
    };
    append(store.as_ref(), &[serde_json::to_value(&late).unwrap()]).await;
    drop(store);
    let hub = start_hub(&dir_a.path().join("hub.db"), engine_config()).await;
    let op = Client::new(vec![hub.url()], &token);
    let after = op
        .indicators(&q("2026Q3", "2026Q4", "quarter", "center"))
        .await
        .unwrap();
    let row = |v: &IndicatorsView| v.rows.iter().find(|r| r.group == "sz-a").unwrap().clone();
    let (b, l) = (row(&before).usage, row(&after).usage);
    assert_eq!(l.delivered_card_seconds, b.delivered_card_seconds + 7_200);
    assert_eq!(l.gross_yuan.units(), b.gross_yuan.units() + 40_000);
    assert_eq!(b.amendments, 0);
    assert!(
        l.amendments >= 1,
        "the late line is counted as an amendment"
    );
    let hour = op
        .indicators(&q(
            &aug.0.to_string(),
            &(aug.0 + HOUR).to_string(),
            "hour",
            "center",
        ))
        .await
        .unwrap();
    assert!(
        hour.rows.iter().any(|r| r.usage.amendments >= 1),
        "{hour:?}"
    );
    assert_eq!(
        files(&hub.url(), "2026Q3").await,
        a,
        "the release keeps its bytes"
    );

    // The CLI writes the stored files (a release made before is written as stored).
    let out = dir_a.path().join("out");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_suanli"))
        .args(["admin", "release", "--quarter", "2026Q3", "--out"])
        .arg(&out)
        .env("SUANLI_HUB", hub.url())
        .env("SUANLI_TOKEN", &token)
        .env("SUANLI_CONFIG", dir_a.path().join("none.toml"))
        .env_remove("SUANLI_PROFILE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(err.contains("made before"), "{err}");
    for (f, text) in suanli_proto::RELEASE_FILES.iter().zip(&a) {
        assert_eq!(&std::fs::read_to_string(out.join(f)).unwrap(), text, "{f}");
    }
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_suanli"))
        .args([
            "stats", "--from", "2026Q3", "--to", "2026Q4", "--period", "month",
        ])
        .args(["--by", "vendor", "--csv"])
        .env("SUANLI_HUB", hub.url())
        .env("SUANLI_TOKEN", &token)
        .env("SUANLI_CONFIG", dir_a.path().join("none.toml"))
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&stats.stdout);
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let vendors: BTreeMap<&str, usize> = csv.lines().skip(1).fold(BTreeMap::new(), |mut m, l| {
        *m.entry(l.split(',').nth(1).unwrap()).or_default() += 1;
        m
    });
    // Submissions are counted before placement, in the group "not placed".
    let groups: Vec<&str> = vendors.keys().copied().collect();
    assert_eq!(groups, ["huawei", "not placed", "nvidia"], "{csv}");
    assert!(vendors.values().all(|n| *n == 3), "a row per month: {csv}");

    // The HTML report opens in Chromium with its charts.
    if let Some(b) = browser::start("release", "zh-CN").await {
        b.goto(&format!("{}/v1/releases/2026Q3/release.html", hub.url()))
            .await;
        assert!(b.source().await.contains("2026Q3"));
        assert!(
            b.text("body").await.contains("Utilisation"),
            "English beside Chinese"
        );
        let shot = b.shot("2026Q3").await;
        assert!(
            std::fs::metadata(&shot).unwrap().len() > 10_000,
            "a real picture"
        );
        let page = format!("{}/v1/releases/2026Q3/release.html", hub.url());
        for id in [
            "capacity-by-vendor",
            "utilisation",
            "waits",
            "vouchers",
            "usage-by-category",
        ] {
            b.find(&format!("svg#{id} rect")).await;
            b.goto(&format!("{page}#{id}")).await;
            b.shot(&format!("2026Q3-{id}")).await;
        }
        // The page loads nothing; the browser's own favicon request is no part of it (this
        // hub serves no portal).
        let errors: Vec<String> = b
            .console_errors()
            .await
            .into_iter()
            .filter(|e| !e.contains("/favicon.ico"))
            .collect();
        assert!(errors.is_empty(), "the page loads nothing: {errors:?}");
    }
    hub.shutdown().await;
    crate::contract::check();
}

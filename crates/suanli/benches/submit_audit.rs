//! What auditing costs a submit: latency of `POST /v1/jobs` at a steady rate (250 and 500
//! submits a second), with the audit log on and off, in the same run (rounds alternate: off, on,
//! off, on, ...). First, the floor: how many commits a second the store itself makes on this
//! disk (one `create_tenant` after another on a fresh SQLite store: WAL, synchronous=FULL), since
//! the engine commits each submit on its own.
//!
//! Each round starts a hub on a fresh SQLite store (one center, one tenant), sends submits
//! open-loop at the target rate for the round's length (each in its own task, so a slow answer
//! does not slow the sender), and records every submit's latency. The report gives, per mode,
//! the median over rounds of each round's p50 and p99, and the ratios on / off. The issue's
//! target: auditing adds at most 10% to submit latency at 500 submits/s.
//!
//! Run: `cargo bench -p suanli --bench submit_audit` (3 rounds of each, 10 s each);
//! `-- --quick` for one round of 4 s each; `-- --rate N` (repeatable) for other rates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use suanli_hub::audit::AuditConfig;
use suanli_hub::{ApiConfig, EngineConfig, Hub};
use suanli_store::{SqliteStore, Store, TenantRecord};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobSpec, NodePool, OwnerType, Role, TenantCategory, TenantId,
};

/// Commits a second of the bare store: `n` tenants created one after another.
async fn store_commits(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("floor.db"))
        .await
        .unwrap();
    let now = suanli_hub::engine::now();
    let t0 = Instant::now();
    for i in 0..n {
        let t = TenantRecord {
            id: TenantId::new(format!("t{i}")),
            name: "Floor".into(),
            category: TenantCategory::Sme,
            city: None,
        };
        store.create_tenant(&t, now).await.unwrap();
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn center() -> CenterSpec {
    CenterSpec {
        id: CenterId::new("bench"),
        name: "Bench center".into(),
        city: "Shenzhen".into(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: vec![NodePool {
            sku: "RTX4090".into(),
            nodes: 8,
            cards_per_node: 8,
            price_per_card_hour: "2.00".parse().unwrap(),
        }],
        stacks: Default::default(),
    }
}

/// One round: p50 and p99 of the submits' latency (ms), and how many were sent.
async fn round(audit_off: bool, rate: u64, secs: u64) -> (f64, f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("hub.db")).await.unwrap());
    let now = suanli_hub::engine::now();
    store
        .create_tenant(
            &TenantRecord {
                id: TenantId::new("t"),
                name: "Bench tenant".into(),
                category: TenantCategory::Sme,
                city: None,
            },
            now,
        )
        .await
        .unwrap();
    store.upsert_center(&center(), now).await.unwrap();
    let t = suanli_hub::auth::new_token_for(
        "bench",
        Role::User,
        Some(TenantId::new("t")),
        None,
        now,
        None,
    );
    let (token, _) = suanli_hub::auth::issue_token(store.as_ref(), &t)
        .await
        .unwrap();
    let mut api = ApiConfig {
        audit: AuditConfig {
            off: audit_off,
            ..AuditConfig::default()
        },
        ..ApiConfig::default()
    };
    // The bench's one token sends 500 requests a second: lift the per-token rate.
    api.limits.per_token = suanli_hub::api::Rate {
        burst: 100_000,
        per_second: 100_000.0,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = Hub::start_with(store, EngineConfig::default(), api, listener, None)
        .await
        .unwrap();
    let url = format!("{}/v1/jobs", hub.url());
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&serde_json::json!({
        "spec": JobSpec::new("bench", "sleep 1")
    }))
    .unwrap();
    // Warm up: connections, the engine's first pass.
    for _ in 0..20 {
        let r = http
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    let n = (rate * secs) as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (http, url, token, body) = (http.clone(), url.clone(), token.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            t0.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut ms = Vec::with_capacity(n);
    for t in tasks {
        ms.push(t.await.unwrap());
    }
    hub.shutdown().await;
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    (q(0.50), q(0.99), n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut rates: Vec<u64> = args
        .windows(2)
        .filter(|w| w[0] == "--rate")
        .map(|w| w[1].parse().expect("--rate N: submits a second"))
        .collect();
    if rates.is_empty() {
        rates = vec![250, 500];
    }
    let (rounds, secs) = if quick { (1, 4) } else { (3, 10) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let floors: Vec<f64> = (0..rounds)
        .map(|_| rt.block_on(store_commits(500)))
        .collect();
    println!(
        "the store's own commits: {:.0} a second (median of {rounds}; {:.2} ms each)",
        median(floors.clone()),
        1000.0 / median(floors)
    );
    let mut table = Vec::new();
    for &rate in &rates {
        let mut off = (Vec::new(), Vec::new());
        let mut on = (Vec::new(), Vec::new());
        for r in 0..rounds {
            for audit_off in [true, false] {
                let (p50, p99, n) = rt.block_on(round(audit_off, rate, secs));
                let mode = if audit_off { "off" } else { "on" };
                println!(
                    "round {r} audit {mode}: {n} submits at {rate}/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
                );
                let into = if audit_off { &mut off } else { &mut on };
                into.0.push(p50);
                into.1.push(p99);
            }
        }
        table.push((
            rate,
            median(off.0),
            median(off.1),
            median(on.0),
            median(on.1),
        ));
    }
    println!("\nsubmit latency, medians over {rounds} round(s) of {secs} s:");
    println!("| rate | audit off p50 / p99 | audit on p50 / p99 | on / off p50 / p99 |");
    println!("|---|---|---|---|");
    for (rate, off50, off99, on50, on99) in table {
        println!(
            "| {rate}/s | {off50:.2} / {off99:.2} ms | {on50:.2} / {on99:.2} ms | {:.3} / {:.3} |",
            on50 / off50,
            on99 / off99
        );
    }
}

//! The risk rules end to end: a scenario built to provoke each of the seven rules (with low
//! thresholds, so that it runs in seconds) makes `suanli risk` show one flag per rule, with its
//! evidence; a supervisor acknowledges and resolves one, forward only, and a user may not read
//! them. The normal scenario of `audit.rs` raises none (it checks that with the defaults).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use suanli_audit::risk::RiskConfig;
use suanli_hub::ApiConfig;
use suanli_hub::risk::RiskSettings;
use suanli_money::{Books, Parties, Usage};
use suanli_proto::{
    AgentEvent, EventKind, GrantRequest, Outcome, PriceRequest, ProgrammeSpec, TenantPolicyView,
    TokenRequest,
};
use suanli_store::{SqliteStore, Store};
use suanli_types::{
    CenterId, JobId, JobSpec, JobState, Money, PriorityClass, Role, TenantCategory, TenantId,
    Timestamp,
};

use crate::harness::{Net, center, engine_config, start_hub_with, submit, wait_terminal};

const DAY_MS: i64 = 86_400_000;

fn suanli(url: &str, token: &str, home: &Path, args: &[&str]) -> (i32, String, String) {
    crate::harness::cli_as(url, token, home, args)
}

fn yuan(s: &str) -> Money {
    s.parse().unwrap()
}

/// Thresholds low enough for a scenario of a few jobs; evaluated only when asked.
fn rules() -> RiskConfig {
    RiskConfig {
        failed_auth_max: 3,
        refused_reports_max: 2,
        spend_factor_pct: 150,
        spend_trailing_days: 1,
        spend_min: 1,
        center_failures_max: 1,
        center_failure_pct: 50,
        public_service_card_hours: 0,
        ..RiskConfig::default()
    }
}

/// Tenant `ta` paid 1 yuan yesterday: a bill line written into the books as the hub writes
/// them, so that today's spend has a trailing mean to be judged against.
async fn bill_yesterday(db: &Path) {
    let store = SqliteStore::open(db).await.unwrap();
    let rows = store.money_records().await.unwrap();
    let records = suanli_hub::money::decode(&rows).unwrap();
    let mut books = Books::replay(&records).unwrap();
    let end = suanli_hub::engine::now().plus_millis(-DAY_MS);
    let usage = Usage {
        job: JobId(900_000),
        attempt: 1,
        tenant: TenantId::new("ta"),
        center: CenterId::new("c1"),
        sku: "RTX4090".into(),
        cards: 1,
        started_at: end.plus_millis(-1_000),
        ended_at: end,
        card_seconds: 1,
        spot: false,
        priced_at: None,
        report: None,
    };
    let dir = Parties::default().tenant("ta", TenantCategory::Sme);
    let billed = books.bill(&usage, &dir).unwrap();
    assert_eq!(billed.line.payable, yuan("1.00"));
    store
        .append_money(&suanli_hub::money::encode(&billed.records))
        .await
        .unwrap();
}

async fn bad_token_call(url: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{url}/v1/jobs"))
        .bearer_auth(format!("sl_{}", "1".repeat(64)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_for_each_rule_raises_its_flag_and_a_supervisor_handles_it() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let api = ApiConfig {
        risk: RiskSettings {
            rules: rules(),
            every: Duration::from_secs(3_600),
        },
        ..ApiConfig::default()
    };
    // 1 yuan a card-second at c1; c2 is a second site.
    let centers = [
        center("c1", "RTX4090", 1, 8, "3600.00"),
        center("c2", "RTX4090", 1, 8, "3600.00"),
    ];
    let mut net = Net::with_api(&centers, &["ta", "city"], engine_config(), api).await;
    net.hub.take().unwrap().shutdown().await;
    bill_yesterday(&net.db).await;
    let hub = start_hub_with(&net.db, net.cfg.clone(), net.api.clone()).await;
    net.url = hub.url();
    net.hub = Some(hub);
    let op = net.op();
    let sup = op
        .create_token(&TokenRequest {
            name: "sup".into(),
            role: Role::Supervisor,
            tenant: None,
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;

    // Before anything happens: no flags (yesterday's line alone is no jump).
    let (code, out, err) = suanli(&net.url, &sup, h, &["risk", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flags"], serde_json::json!([]), "{out}");

    // price_change: both pools' price doubles (more than 50%).
    for c in ["c1", "c2"] {
        op.set_price(&PriceRequest {
            center: CenterId::new(c),
            sku: "RTX4090".into(),
            price_per_card_hour: yuan("7200.00"),
            spot_discount_bp: None,
            effective_from: None,
        })
        .await
        .unwrap();
    }
    // voucher_burn: a 20-yuan programme a day into its 31 days, soon 20% paid out.
    let at = suanli_hub::engine::now();
    op.create_programme(&ProgrammeSpec {
        id: "fast".into(),
        issuer: "Test city".into(),
        budget: yuan("20"),
        valid_from: at.plus_millis(-DAY_MS),
        valid_until: at.plus_secs(30 * 86_400),
        base_rate_bp: 5_000,
        category_rates: vec![],
        domestic_rate_bp: None,
        cap_per_tenant: yuan("20"),
        eligible: vec![TenantCategory::Sme],
        exclude_affiliated: false,
    })
    .await
    .unwrap();
    op.grant(
        "fast",
        &GrantRequest {
            tenant: TenantId::new("ta"),
            amount: yuan("20"),
        },
    )
    .await
    .unwrap();
    // public_service: `city` may submit public-service work, and does.
    op.set_tenant_policy(
        "city",
        &TenantPolicyView {
            weight: 1,
            quotas: Default::default(),
            public_service: true,
        },
    )
    .await
    .unwrap();

    // Only c1 runs work: c2's agent never starts (its token is the forger's below).
    let c2 = net.site_tokens.pop().unwrap();
    net.start_agents(vec![net.url.clone()]);
    net.site_tokens.push(c2);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !op
        .centers()
        .await
        .unwrap()
        .iter()
        .any(|c| c.id.as_str() == "c1" && c.status == "online")
    {
        assert!(std::time::Instant::now() < deadline, "c1 never came online");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ta_token = crate::harness::user_token(&op, "ta", "alice").await;
    let ta = net.client(&ta_token);
    let city = net.user("city", "carol").await;
    // tenant_spend and voucher_burn: a run of about 2 s at 2 yuan a second, half subsidised.
    let ok = submit(&ta, &JobSpec::new("spend", "sleep 2")).await;
    // center_failures: two of the center's attempts fail.
    let bad = [
        submit(&ta, &JobSpec::new("fail-1", "exit 3")).await,
        submit(&ta, &JobSpec::new("fail-2", "exit 3")).await,
    ];
    let mut ps = JobSpec::new("flood-forecast", "true");
    ps.priority = PriorityClass::PublicService;
    let public = submit(&city, &ps).await;
    let mut ended = Vec::new();
    for (c, id) in [(&ta, ok), (&ta, bad[0]), (&ta, bad[1]), (&city, public)] {
        ended.push(wait_terminal(c, id, Duration::from_secs(30)).await);
    }
    let states: Vec<JobState> = ended.iter().map(|v| v.summary.state).collect();
    assert_eq!(
        states,
        [
            JobState::Succeeded,
            JobState::Failed,
            JobState::Failed,
            JobState::Succeeded
        ]
    );
    let failed_at = CenterId::new("c1");

    // refused_reports: the other site reports on a job that ran at `failed_at`, three times.
    let other = "c2";
    let forger = net.site(other);
    for _ in 0..3 {
        let t = suanli_hub::engine::now();
        let err = forger
            .events(vec![AgentEvent {
                job: bad[0],
                attempt: 1,
                kind: EventKind::Finished {
                    outcome: Outcome::Succeeded,
                    exit_code: Some(0),
                    started_at: Timestamp(t.0 - 1_000),
                    ended_at: t,
                    card_seconds: 8,
                    log_chunks: 0,
                    message: String::new(),
                },
            }])
            .await
            .expect_err("a report on another center's job is refused");
        assert_eq!(
            err.code(),
            Some(suanli_proto::ErrorCode::InvalidReport),
            "{err}"
        );
    }
    // failed_auth: four calls with a token that does not exist.
    for _ in 0..4 {
        assert_eq!(bad_token_call(&net.url).await, 401);
    }
    net.stop_agents().await;

    // A user may not read the flags.
    let (code, _, err) = suanli(&net.url, &ta_token, h, &["risk"]);
    assert_ne!(code, 0);
    assert!(err.contains("forbidden"), "{err}");

    // The supervisor sees one flag per rule, each with its evidence.
    let (code, out, err) = suanli(&net.url, &sup, h, &["risk", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let flags = v["flags"].as_array().unwrap();
    let of = |rule: &str| -> Vec<&Value> { flags.iter().filter(|f| f["rule"] == rule).collect() };
    let mut rules: Vec<&str> = flags.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(
        rules,
        [
            "center_failures",
            "failed_auth",
            "price_change",
            "public_service",
            "refused_reports",
            "tenant_spend",
            "voucher_burn"
        ],
        "{out}"
    );
    assert_eq!(of("price_change").len(), 2, "one per pool: {out}");
    let auth = of("failed_auth")[0];
    assert_eq!(auth["subject"], "127.0.0.1");
    assert_eq!(auth["count"], 4);
    assert!(
        auth["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "audit")
    );
    let refused = of("refused_reports")[0];
    assert_eq!(
        refused["subject"], other,
        "named by the site's center: {out}"
    );
    assert_eq!(refused["count"], 3);
    let failures = of("center_failures")[0];
    assert_eq!(failures["subject"], failed_at.as_str());
    let mut jobs: Vec<u64> = failures["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job"].as_u64().unwrap())
        .collect();
    jobs.sort_unstable();
    assert_eq!(jobs, [bad[0].0 as u64, bad[1].0 as u64]);
    assert_eq!(of("public_service")[0]["subject"], "city");
    assert_eq!(of("tenant_spend")[0]["subject"], "ta");
    assert_eq!(of("voucher_burn")[0]["subject"], "fast");
    assert!(flags.iter().all(|f| f["state"] == "open"));

    // Each refused request is in the audit log as denied, the refused reports with their code.
    let seq = refused["evidence"][0]["seq"].as_u64().unwrap();
    let (code, out, err) = suanli(
        &net.url,
        &sup,
        h,
        &["audit", "log", "--denied", "--json", "--limit", "1000"],
    );
    assert_eq!(code, 0, "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    let entry = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["seq"] == seq)
        .unwrap_or_else(|| panic!("entry {seq} is not among the denied: {out}"));
    assert_eq!(entry["action"], "POST /v1/site/events");
    assert_eq!(entry["outcome"]["status"], 422);
    assert!(
        entry["outcome"]["why"]
            .as_str()
            .unwrap()
            .starts_with("invalid_report: other_center"),
        "{entry}"
    );

    // The table names every flag; a supervisor acknowledges, then resolves, forward only.
    let (code, table, err) = suanli(&net.url, &sup, h, &["risk", "--long"]);
    assert_eq!(code, 0, "{err}");
    let id = of("failed_auth")[0]["id"].as_str().unwrap().to_string();
    assert!(table.contains(&id) && table.contains("audit "), "{table}");
    let (code, _, err) = suanli(&net.url, &sup, h, &["risk", "resolve", &id, "--why", " "]);
    assert_ne!(code, 0);
    assert!(err.contains("why"), "{err}");
    let (code, out, err) = suanli(
        &net.url,
        &sup,
        h,
        &[
            "risk",
            "ack",
            &id,
            "--why",
            "a scanner on the lab network",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let f: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(f["state"], "acknowledged");
    let (code, _, err) = suanli(
        &net.url,
        &sup,
        h,
        &["risk", "resolve", &id, "--why", "the scanner is blocked"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = suanli(&net.url, &sup, h, &["risk", "ack", &id, "--why", "again"]);
    assert_ne!(code, 0, "a resolved flag stays resolved");
    assert!(err.contains("forward"), "{err}");
    let (code, out, err) = suanli(
        &net.url,
        &sup,
        h,
        &["risk", "--state", "resolved", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let resolved = v["flags"].as_array().unwrap();
    assert_eq!(resolved.len(), 1, "{out}");
    let history: Vec<&str> = resolved[0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["why"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["a scanner on the lab network", "the scanner is blocked"]
    );
    assert!(
        resolved[0]["history"][0]["by"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .is_ok()
    );

    // Evaluating again changes no flag's id: the same seven rules, no new flags.
    let (_, out, _) = suanli(&net.url, &sup, h, &["risk", "--json"]);
    let again: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["flags"].as_array().unwrap().len(), flags.len());

    // Prometheus counts them.
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", net.url))
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("suanli_risk_flags_raised_total{rule=\"failed_auth\",severity=\"high\"} 1"),
        "{text}"
    );
}

//! Page-time benchmark: the server time of every portal page on a hub holding 100,000 jobs
//! (the issue's target: every page under 50 ms).
//!
//! The store is filled through the store's own API, not by submitting: 20 centers (one pool
//! each, 16 nodes x 8 cards), 50 tenants of the five categories, 100,000 jobs over the 75 days
//! before now (1 to 8 cards, runs of 5 min to 4 h; 5% failed, the newest 300 still queued),
//! each finished job with its attempt, its bill line from the books (`suanli-money`, prices in
//! force since always, so the hub replays them at start), its six facts of the statistics, and
//! an audit entry for its submit (chained by `suanli-audit`'s log). One job has 1,000 lines of
//! logs. Then a hub starts on that store with the portal mounted, as `suanli hub` runs it, with
//! no site agent (centers stay offline, queued jobs stay queued). The operator adds budgets, a
//! voucher programme with grants, a price change (a risk flag) and last quarter's release
//! through the API.
//!
//! Timed: each page requested over loopback with a signed-in session's cookie (the time from
//! sending the request to the last byte of the page, which includes the portal's own calls to
//! the hub's API), `N` times after 3 warm-up requests; the report gives median and p95 per page.
//! The store lives in `/dev/shm` when there is one (no fsync cost while filling it).
//!
//! Run: `cargo bench -p suanli-portal --bench pages` (`-- --quick`: 20 requests per page, not
//! 100; `-- --jobs N`: another number of jobs).

use std::sync::Arc;
use std::time::Instant;

use suanli_audit::{Draft, Hash, Log, Outcome as AuditOutcome};
use suanli_client::Client;
use suanli_hub::{ApiConfig, EngineConfig, Hub, Ui};
use suanli_indicators::{Fact, Outcome, PoolState};
use suanli_money::{Books, Parties, Usage};
use suanli_proto::{
    AtLimit, BudgetRequest, GrantRequest, PriceRequest, ProgrammeSpec, TokenRequest,
};
use suanli_store::{
    AttemptOutcome, AttemptRecord, JobEvent, LogRow, LogStream, NewFact, NewJob, NodeShare,
    SqliteStore, Store, TenantRecord,
};
use suanli_types::record::{PlacementCandidate, PlacementDecision};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, ChipCatalog, JobId, JobSpec, JobState, Money, NodePool,
    OwnerType, Role, TenantCategory, TenantId, Timestamp,
};

const CENTERS: usize = 20;
const TENANTS: usize = 50;
/// Jobs still queued (the newest).
const QUEUED: usize = 300;
const DAY_MS: i64 = 86_400_000;
const SKUS: [&str; 4] = ["H100-SXM", "A100-SXM4-80GB", "RTX4090", "Ascend910B3"];
const CITIES: [&str; 5] = ["Shenzhen", "Guangzhou", "Dongguan", "Foshan", "Zhuhai"];

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

fn center(c: usize) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(format!("c{c:02}")),
        name: format!("Center {c:02}"),
        city: CITIES[c % CITIES.len()].into(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: vec![NodePool {
            sku: SKUS[c % SKUS.len()].into(),
            nodes: 16,
            cards_per_node: 8,
            price_per_card_hour: fen(200 + 50 * c as i64),
        }],
        stacks: Default::default(),
    }
}

/// `n` fen (1/100 yuan).
fn fen(n: i64) -> Money {
    Money(n * Money::UNITS_PER_YUAN / 100)
}

fn tenant(t: usize) -> TenantId {
    TenantId::new(format!("t{t:03}"))
}

/// What the filling made that the timing needs.
struct Seeded {
    /// A finished job of tenant `t000` with 1,000 lines of logs.
    logged: JobId,
    tenant_token: String,
    operator_token: String,
}

async fn fill(store: &dyn Store, jobs: usize, now: Timestamp) -> Seeded {
    let t0 = Instant::now();
    let start = now.plus_millis(-75 * DAY_MS);
    let catalog = ChipCatalog::builtin();
    let mut parties = Parties::default();
    let mut facts: Vec<Fact> = vec![];
    for t in 0..TENANTS {
        let category = TenantCategory::ALL[t % TenantCategory::ALL.len()];
        store
            .create_tenant(
                &TenantRecord {
                    id: tenant(t),
                    name: format!("Tenant {t:03}"),
                    category,
                    city: Some("Shenzhen".into()),
                },
                start,
            )
            .await
            .unwrap();
        parties = parties.tenant(&format!("t{t:03}"), category);
        facts.push(Fact::Tenant {
            tenant: tenant(t),
            category,
            city: Some("Shenzhen".into()),
        });
    }
    let mut books = Books::new();
    let mut money = vec![];
    let centers: Vec<CenterSpec> = (0..CENTERS).map(center).collect();
    for c in &centers {
        store.upsert_center(c, start).await.unwrap();
        let p = &c.pools[0];
        money.extend(
            books
                .set_price(
                    &c.id,
                    &p.sku,
                    p.price_per_card_hour,
                    Some(2_500),
                    Timestamp(0),
                )
                .unwrap(),
        );
        let chip = catalog.get(&p.sku);
        facts.push(Fact::Pool {
            at: start,
            center: c.id.clone(),
            sku: p.sku.clone(),
            cards: u64::from(p.nodes * p.cards_per_node),
            vendor: chip.map_or("unknown".into(), |c| c.vendor.clone()),
            fp16_tflops: chip.map_or(0, |c| c.fp16_tflops),
            domestic: chip.is_some_and(|c| c.is_domestic()),
            city: Some(c.city.clone()),
        });
        facts.push(Fact::Center {
            at: start,
            center: c.id.clone(),
            state: PoolState::Online,
        });
    }
    store
        .append_money(&suanli_hub::money::encode(&money))
        .await
        .unwrap();
    let issue = |name: &str, role: Role, tenant: Option<TenantId>| {
        suanli_hub::auth::new_token_for(name, role, tenant, None, now, None)
    };
    let (operator_token, _) =
        suanli_hub::auth::issue_token(store, &issue("op", Role::Operator, None))
            .await
            .unwrap();
    let mut users = vec![];
    for t in 0..TENANTS {
        users.push(
            suanli_hub::auth::issue_token(store, &issue("user", Role::User, Some(tenant(t))))
                .await
                .unwrap(),
        );
    }
    let tenant_token = users[0].0.clone();

    let mut rng = Mix(7);
    let mut audit = Log::new();
    let mut entries = vec![];
    let mut logged = None;
    let span = now.millis_since(start) - 6 * 3_600_000;
    for i in 0..jobs {
        let t = rng.next(TENANTS as u64) as usize;
        let c = &centers[rng.next(CENTERS as u64) as usize];
        let pool = &c.pools[0];
        let cards = 1u32 << rng.next(4);
        let secs = 300 + rng.next(4 * 3_600 - 300);
        let submitted = start.plus_millis(span * i as i64 / jobs as i64);
        let mut spec = JobSpec::new(format!("train-{i}"), format!("python train.py --run {i}"));
        spec.cards_per_node = cards;
        spec.walltime = secs + 600 + rng.next(3_600);
        let (_, user) = &users[t];
        let new = NewJob {
            tenant: tenant(t),
            submitted_by: user.principal.name.clone(),
            submitted_by_id: Some(user.principal.id),
            spec,
            at: submitted,
            idempotency_key: None,
            held: false,
            array_task: None,
        };
        let mut rec = store.insert_job(new).await.unwrap();
        let r = audit.prepare(Draft {
            time: submitted.millis(),
            principal: user.principal.id.to_string(),
            role: Some("user".into()),
            tenant: Some(tenant(t).to_string()),
            source: "127.0.0.1:40000".into(),
            request_id: format!("{:016x}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            action: "POST /v1/jobs".into(),
            target: "/v1/jobs".into(),
            outcome: AuditOutcome::Allowed { status: 201 },
            request_digest: Hash::of(&(i as u64).to_be_bytes()),
        });
        audit.apply(&r).unwrap();
        entries.push(r);
        facts.push(Fact::Submitted {
            at: submitted,
            job: rec.id,
            tenant: tenant(t),
        });
        if i >= jobs.saturating_sub(QUEUED) {
            continue;
        }
        let placed = submitted.plus_millis(rng.next(1_800_000) as i64);
        let started = placed.plus_millis(2_000);
        let ended = started.plus_secs(secs);
        let failed = i % 20 == 0;
        let state = if failed {
            JobState::Failed
        } else {
            JobState::Succeeded
        };
        let card_seconds = u64::from(cards) * secs;
        let chosen = PlacementCandidate {
            center: c.id.clone(),
            sku: pool.sku.clone(),
            price_per_card_hour: pool.price_per_card_hour,
            cost_per_hour: Money(pool.price_per_card_hour.0 * i64::from(cards)),
            cost_total: Money(
                pool.price_per_card_hour.0 * i64::from(cards) * rec.spec.walltime as i64 / 3_600,
            ),
            free_cards: 128,
            expected_start: placed,
            score_milli: 0,
            expected_run_secs: None,
        };
        rec.state = state;
        rec.attempt = 1;
        rec.center = Some(c.id.clone());
        rec.sku = Some(pool.sku.clone());
        rec.alloc = vec![NodeShare {
            node: format!("{}-n{:02}", c.id, rng.next(16)),
            cards,
        }];
        rec.placement = Some(PlacementDecision {
            attempt: 1,
            at: placed,
            center: c.id.clone(),
            sku: pool.sku.clone(),
            nodes: rec.alloc.clone(),
            chosen,
            others: vec![],
            rejected: vec![],
            rule: "suanli: cost/cheapest - 1 + wait/walltime".into(),
        });
        rec.started_at = Some(started);
        rec.ended_at = Some(ended);
        rec.exit_code = Some(if failed { 1 } else { 0 });
        rec.card_seconds = card_seconds;
        rec.updated_at = ended;
        let usage = Usage {
            job: rec.id,
            attempt: 1,
            tenant: tenant(t),
            center: c.id.clone(),
            sku: pool.sku.clone(),
            cards,
            started_at: started,
            ended_at: ended,
            card_seconds,
            spot: false,
            priced_at: None,
            report: None,
        };
        let billed = books.bill(&usage, &parties).unwrap();
        let attempt = AttemptRecord {
            job: rec.id,
            attempt: 1,
            center: c.id.clone(),
            sku: pool.sku.clone(),
            cards,
            placed_at: placed,
            started_at: Some(started),
            ended_at: Some(ended),
            outcome: Some(if failed {
                AttemptOutcome::Failed
            } else {
                AttemptOutcome::Succeeded
            }),
            exit_code: rec.exit_code,
            card_seconds,
            log_chunks: Some(1),
        };
        let event = JobEvent {
            at: ended,
            attempt: 1,
            state,
            message: if failed { "exit 1" } else { "exit 0" }.into(),
        };
        store
            .update_job(
                &rec,
                JobState::Queued,
                0,
                Some(&event),
                Some(&attempt),
                &suanli_hub::money::encode(&billed.records),
            )
            .await
            .unwrap();
        if t == 0 && logged.is_none() {
            let rows: Vec<LogRow> = (0..1_000)
                .map(|n| LogRow {
                    seq: n,
                    stream: if n % 10 == 9 {
                        LogStream::Stderr
                    } else {
                        LogStream::Stdout
                    },
                    data: format!("step {n}: loss {:.4}\n", 2.0 / (n as f64 + 1.0)),
                })
                .collect();
            store.append_logs(rec.id, 1, &rows).await.unwrap();
            logged = Some(rec.id);
        }
        let line = &billed.line;
        facts.extend([
            Fact::Allocated {
                at: placed,
                job: rec.id,
                attempt: 1,
                center: c.id.clone(),
                sku: pool.sku.clone(),
                cards: u64::from(cards),
            },
            Fact::Started {
                at: started,
                job: rec.id,
                attempt: 1,
            },
            Fact::Released {
                at: ended,
                job: rec.id,
                attempt: 1,
            },
            Fact::Ended {
                at: ended,
                job: rec.id,
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Succeeded
                },
            },
            Fact::Billed {
                center: c.id.clone(),
                sku: pool.sku.clone(),
                tenant: tenant(t),
                started,
                ended,
                card_seconds,
                gross: line.gross,
                subsidy: line.subsidy,
                payable: line.payable,
            },
        ]);
        if entries.len() >= 10_000 {
            store.append_audit(&entries).await.unwrap();
            entries.clear();
        }
        if (i + 1) % 20_000 == 0 {
            eprintln!(
                "  {} jobs stored ({:.0} s)",
                i + 1,
                t0.elapsed().as_secs_f64()
            );
        }
    }
    store.append_audit(&entries).await.unwrap();
    // The facts in time order, as the hub appends them.
    facts.sort_by_key(fact_time);
    for chunk in facts.chunks(10_000) {
        let rows: Vec<NewFact> = chunk
            .iter()
            .map(|f| NewFact {
                at: fact_time(f),
                fact: serde_json::to_string(f).unwrap(),
            })
            .collect();
        store.append_facts(&rows, now).await.unwrap();
    }
    eprintln!(
        "filled: {jobs} jobs, {} bill lines, {} facts, {} audit entries in {:.0} s",
        books.lines().len(),
        facts.len(),
        jobs,
        t0.elapsed().as_secs_f64()
    );
    Seeded {
        logged: logged.expect("tenant t000 has a finished job"),
        tenant_token,
        operator_token,
    }
}

fn fact_time(f: &Fact) -> Timestamp {
    match f {
        Fact::Pool { at, .. }
        | Fact::Center { at, .. }
        | Fact::Submitted { at, .. }
        | Fact::Allocated { at, .. }
        | Fact::Started { at, .. }
        | Fact::Released { at, .. }
        | Fact::Ended { at, .. } => *at,
        Fact::Tenant { .. } => Timestamp(0),
        Fact::Billed { ended, .. } => *ended,
    }
}

/// The operator's changes through the API: budgets, a programme with grants, a price change
/// (a risk flag), a supervisor's token, last quarter's release.
async fn desk(op: &Client, now: Timestamp) -> String {
    for t in 0..TENANTS {
        op.set_budget(
            &format!("t{t:03}"),
            &BudgetRequest {
                monthly_limit: fen(100_000_000),
                at_limit: AtLimit::LetFinish,
            },
        )
        .await
        .unwrap();
    }
    op.create_programme(&ProgrammeSpec {
        id: "gba-2026".into(),
        issuer: "GBA compute office".into(),
        budget: fen(1_000_000_000),
        valid_from: now.plus_millis(-DAY_MS),
        valid_until: now.plus_secs(90 * 86_400),
        base_rate_bp: 3_000,
        category_rates: vec![],
        domestic_rate_bp: Some(5_000),
        cap_per_tenant: fen(10_000_000),
        eligible: TenantCategory::ALL.to_vec(),
        exclude_affiliated: false,
    })
    .await
    .unwrap();
    for t in 0..TENANTS {
        op.grant(
            "gba-2026",
            &GrantRequest {
                tenant: tenant(t),
                amount: fen(5_000_000),
            },
        )
        .await
        .unwrap();
    }
    op.set_price(&PriceRequest {
        center: CenterId::new("c00"),
        sku: SKUS[0].into(),
        price_per_card_hour: fen(2_000),
        spot_discount_bp: Some(2_500),
        effective_from: None,
    })
    .await
    .unwrap();
    let q = last_quarter(now);
    op.make_release(&q).await.unwrap();
    op.create_token(&TokenRequest {
        name: "auditor".into(),
        role: Role::Supervisor,
        tenant: None,
        center: None,
        expires_in: None,
    })
    .await
    .unwrap()
    .token
}

/// The quarter before `now`'s (China Standard Time), e.g. `2026Q3`.
fn last_quarter(now: Timestamp) -> String {
    let (y, m, _) =
        suanli_types::time::civil_from_days((now.millis() + 8 * 3_600_000).div_euclid(DAY_MS));
    match (m - 1) / 3 + 1 {
        1 => format!("{}Q4", y - 1),
        q => format!("{y}Q{}", q - 1),
    }
}

/// The month before `now`'s (China Standard Time), `YYYY-MM`.
fn last_month(now: Timestamp) -> String {
    let (y, m, _) =
        suanli_types::time::civil_from_days((now.millis() + 8 * 3_600_000).div_euclid(DAY_MS));
    match m {
        1 => format!("{}-12", y - 1),
        m => format!("{y}-{:02}", m - 1),
    }
}

/// Signs in through the portal's form and returns the session's cookie.
async fn session(http: &reqwest::Client, url: &str, token: &str) -> String {
    let r = http.get(format!("{url}/signin")).send().await.unwrap();
    let pre = cookie(&r, "suanli_pre").expect("the sign-in page sets its cookie");
    let r = http
        .post(format!("{url}/signin"))
        .header("cookie", format!("suanli_pre={pre}; suanli_lang=en"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}&pre={pre}&back=%2F", encode(token)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in");
    let s = cookie(&r, "suanli_session").expect("a session cookie");
    format!("suanli_session={s}; suanli_lang=en")
}

/// Percent-encodes a form value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))
                .map(|r| r.split(';').next().unwrap().to_string())
        })
}

/// Median and p95 (ms) of `n` requests of `page`, after 3 not counted; the page's size.
/// `cookie` is the session's cookie, or `bearer:TOKEN` for a call of the API.
async fn time(
    http: &reqwest::Client,
    url: &str,
    cookie: &str,
    page: &str,
    n: usize,
) -> (f64, f64, usize) {
    let mut ms = Vec::with_capacity(n);
    let mut size = 0;
    for i in 0..n + 3 {
        let t = Instant::now();
        let req = http.get(format!("{url}{page}"));
        let req = match cookie.strip_prefix("bearer:") {
            Some(token) => req.bearer_auth(token),
            None => req.header("cookie", cookie),
        };
        let r = req.send().await.unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        let took = t.elapsed().as_secs_f64() * 1000.0;
        assert!(
            status.is_success(),
            "{page}: {status}: {}",
            &body[..body.len().min(2_000)]
        );
        assert!(
            !body.contains("class=\"error\""),
            "{page}: the page is an error: {}",
            &body[..body.len().min(4_000)]
        );
        size = body.len();
        if i >= 3 {
            ms.push(took);
        }
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    (q(0.50), q(0.95), size)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let jobs = args
        .iter()
        .position(|a| a == "--jobs")
        .and_then(|i| args.get(i + 1))
        .map_or(100_000, |n| n.parse().expect("--jobs N"));
    let n = if quick { 20 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(jobs, n));
}

async fn run(jobs: usize, n: usize) {
    let shm = std::path::Path::new("/dev/shm");
    let dir = match shm.is_dir() {
        true => tempfile::tempdir_in(shm).unwrap(),
        false => tempfile::tempdir().unwrap(),
    };
    let db = dir.path().join("hub.db");
    let now = suanli_hub::engine::now();
    let seeded = {
        let store = SqliteStore::open(&db).await.unwrap();
        fill(&store, jobs, now).await
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let mut api = ApiConfig {
        ui: Some(Ui(Arc::new(|hub_url: &str| {
            suanli_portal::router(suanli_portal::PortalConfig {
                hub_url: hub_url.to_string(),
                secure_cookies: false,
            })
        }))),
        ..ApiConfig::default()
    };
    // The bench's few tokens ask thousands of times.
    api.limits.per_token = suanli_hub::api::Rate {
        burst: 1_000_000,
        per_second: 1_000_000.0,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let t = Instant::now();
    let hub = Hub::start_with(store, EngineConfig::default(), api, listener, None)
        .await
        .unwrap();
    eprintln!("hub started in {:.1} s", t.elapsed().as_secs_f64());
    let url = hub.url();
    let op = Client::new(vec![url.clone()], seeded.operator_token.clone());
    let supervisor_token = desk(&op, now).await;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let tenant = session(&http, &url, &seeded.tenant_token).await;
    let operator = session(&http, &url, &seeded.operator_token).await;
    let supervisor = session(&http, &url, &supervisor_token).await;
    let job = format!("/jobs/{}", seeded.logged.0);
    let month = format!("/bills?month={}", last_month(now));
    let op_month = format!("/bills?tenant=t000&month={}", last_month(now));
    let pages: Vec<(&str, &String, &str)> = vec![
        ("tenant", &tenant, "/"),
        ("tenant", &tenant, "/submit"),
        ("tenant", &tenant, "/jobs"),
        ("tenant", &tenant, "/jobs?state=failed"),
        ("tenant", &tenant, &job),
        ("tenant", &tenant, "/bills"),
        ("tenant", &tenant, &month),
        ("tenant", &tenant, "/indicators"),
        ("tenant", &tenant, "/releases"),
        ("operator", &operator, "/"),
        ("operator", &operator, "/centers"),
        ("operator", &operator, "/queue"),
        ("operator", &operator, "/jobs"),
        ("operator", &operator, "/jobs?state=active"),
        ("operator", &operator, "/tenants"),
        ("operator", &operator, "/prices"),
        ("operator", &operator, "/programmes"),
        ("operator", &operator, &op_month),
        ("operator", &operator, "/indicators"),
        ("operator", &operator, "/indicators?period=day&by=center"),
        ("supervisor", &supervisor, "/risk"),
        ("supervisor", &supervisor, "/releases"),
        ("supervisor", &supervisor, "/audit"),
        ("supervisor", &supervisor, "/audit/verify"),
    ];
    println!("\nportal pages, {jobs} jobs, {n} requests each (after 3 warm-up), over loopback:");
    println!("| role | page | median | p95 | size |");
    println!("|---|---|---|---|---|");
    let mut missed = vec![];
    for (role, cookie, page) in pages {
        // The whole audit verification is slow by nature: fewer requests.
        let n = if page == "/audit/verify" { n.min(5) } else { n };
        let (p50, p95, size) = time(&http, &url, cookie, page, n).await;
        println!(
            "| {role} | `{page}` | {p50:.1} ms | {p95:.1} ms | {} KB |",
            size / 1024
        );
        if p95 >= 50.0 {
            missed.push(format!("{role} {page}"));
        }
    }
    // The hub's API calls behind the slowest pages, alone: what the portal waits for.
    let queued = JobId(jobs as i64);
    let api_calls: Vec<(&str, String, String)> = vec![
        (
            "operator",
            seeded.operator_token.clone(),
            "/v1/tenants/t000/budget".into(),
        ),
        (
            "operator",
            seeded.operator_token.clone(),
            "/v1/tenants/t000/policy".into(),
        ),
        (
            "operator",
            seeded.operator_token.clone(),
            format!("/v1/jobs/{}", queued.0),
        ),
        (
            "operator",
            seeded.operator_token.clone(),
            "/v1/indicators".into(),
        ),
        (
            "operator",
            seeded.operator_token.clone(),
            "/v1/indicators?period=day&by=center".into(),
        ),
        (
            "operator",
            seeded.operator_token.clone(),
            "/v1/audit/export".into(),
        ),
    ];
    println!("\nthe hub's API calls behind them, alone:");
    println!("| role | call | median | p95 | size |");
    println!("|---|---|---|---|---|");
    for (role, token, path) in api_calls {
        let n = if path.contains("export") { n.min(5) } else { n };
        let (p50, p95, size) = time(&http, &url, &format!("bearer:{token}"), &path, n).await;
        println!(
            "| {role} | `GET {path}` | {p50:.1} ms | {p95:.1} ms | {} KB |",
            size / 1024
        );
    }
    match missed.is_empty() {
        true => println!("\nevery page under 50 ms at p95"),
        false => println!("\nover 50 ms at p95: {}", missed.join(", ")),
    }
    hub.shutdown().await;
}

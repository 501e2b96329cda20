//! Money end to end: metering from agents' reports, vouchers, invoices, statements, programme
//! reports, budgets; concurrency and idempotency of billing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use suanli_client::{Client, ClientError};
use suanli_money::{Account, Books, Month, ProgrammeId, Record};
use suanli_proto::{
    AgentEvent, Assignment, AtLimit, BudgetRequest, ErrorCode, EventKind, EventStatus,
    GrantRequest, InvoiceView, Outcome, ProgrammeSpec, StatementView, Stream,
};
use suanli_types::{JobId, JobSpec, JobState, Money, TenantCategory, TenantId, Timestamp};

use crate::harness::*;

fn yuan(s: &str) -> Money {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    suanli_hub::engine::now()
}

/// A programme open from yesterday for a month, for SMEs.
fn programme(id: &str, budget: &str, cap: &str) -> ProgrammeSpec {
    let at = now();
    ProgrammeSpec {
        id: id.into(),
        issuer: "Test city".into(),
        budget: yuan(budget),
        valid_from: at.plus_millis(-86_400_000),
        valid_until: at.plus_secs(30 * 86_400),
        base_rate_bp: 5_000,
        category_rates: vec![],
        domestic_rate_bp: None,
        cap_per_tenant: yuan(cap),
        eligible: vec![TenantCategory::Sme],
        exclude_affiliated: false,
    }
}

async fn grant(op: &Client, programme: &str, tenant: &str, amount: &str) {
    op.grant(
        programme,
        &GrantRequest {
            tenant: TenantId::new(tenant),
            amount: yuan(amount),
        },
    )
    .await
    .unwrap();
}

/// A grant of `amount` to `tenant` from `programme` is refused as a conflict that says `why`.
async fn grant_refused(op: &Client, programme: &str, tenant: &str, amount: &str, why: &str) {
    let req = GrantRequest {
        tenant: TenantId::new(tenant),
        amount: yuan(amount),
    };
    let e = op.grant(programme, &req).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Conflict), "{e}");
    assert!(e.to_string().contains(why), "{e}");
}

/// The books as the store holds them, replayed from the persisted records.
async fn stored_books(net: &Net) -> Books {
    let store = open(&net.db).await;
    let rows = store.money_records().await.unwrap();
    let records: Vec<Record> = rows
        .iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect();
    Books::replay(&records).unwrap()
}

fn check_lines(inv: &InvoiceView) {
    let mut sum = (Money::ZERO, Money::ZERO, Money::ZERO);
    for l in &inv.lines {
        assert_eq!(l.gross.0, l.subsidy.0 + l.payable.0, "line {}", l.line);
        assert!(l.subsidy >= Money::ZERO && l.payable >= Money::ZERO);
        assert_eq!(l.subsidy > Money::ZERO, l.programme.is_some());
        sum.0.0 += l.gross.0;
        sum.1.0 += l.subsidy.0;
        sum.2.0 += l.payable.0;
    }
    let t = &inv.totals;
    assert_eq!((t.gross, t.subsidy, t.payable), sum);
    assert_eq!(t.lines, inv.lines.len() as u64);
}

/// A site agent played by the test, through the site API.
struct FakeSite {
    c: Client,
}

impl FakeSite {
    fn new(net: &Net, center: &str) -> FakeSite {
        FakeSite {
            c: net.site(center),
        }
    }

    /// A hub with tenant `t-a` and one center `c1` (a node of 8 RTX4090 cards at `price` per
    /// card-hour) whose site the test plays, heartbeating.
    async fn one_center(price: &str, cfg: suanli_hub::EngineConfig) -> (Net, FakeSite) {
        let centers = [center("c1", "RTX4090", 1, 8, price)];
        let net = Net::with_config(&centers, &["t-a"], cfg).await;
        let site = FakeSite::new(&net, "c1");
        site.heartbeat(&[]).await;
        (net, site)
    }

    /// Heartbeats, listing `running`.
    async fn heartbeat(&self, running: &[&Assignment]) {
        let hb = suanli_proto::Heartbeat {
            agent_version: "test".into(),
            protocol: suanli_proto::PROTOCOL_VERSION,
            inventory: vec![],
            stacks: BTreeMap::new(),
            running: running
                .iter()
                .map(|a| suanli_proto::AttemptRef {
                    job: a.job,
                    attempt: a.attempt,
                })
                .collect(),
            draining: false,
        };
        self.c.heartbeat(&hb).await.unwrap();
    }

    /// Waits until `n` attempts are placed here, and takes them.
    async fn take(&self, n: usize) -> Vec<Assignment> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.c.assignments(1).await.unwrap().assignments;
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {n} attempts were placed",
                got.len()
            );
        }
    }

    async fn send(&self, events: Vec<AgentEvent>) -> Vec<EventStatus> {
        self.c.events(events).await.unwrap().results
    }
}

fn started(a: &Assignment, at: Timestamp) -> AgentEvent {
    AgentEvent {
        job: a.job,
        attempt: a.attempt,
        kind: EventKind::Started { at },
    }
}

/// Every report of an attempt that ran `secs` seconds up to now: started, a log line, finished.
fn reports(a: &Assignment, secs: i64) -> Vec<AgentEvent> {
    let end = now();
    let start = end.plus_millis(-secs * 1000);
    let cards: u32 = a.nodes.iter().map(|n| n.cards).sum();
    vec![
        started(a, start),
        AgentEvent {
            job: a.job,
            attempt: a.attempt,
            kind: EventKind::Log {
                seq: 0,
                stream: Stream::Stdout,
                data: format!("job {}\n", a.job),
            },
        },
        AgentEvent {
            job: a.job,
            attempt: a.attempt,
            kind: EventKind::Finished {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                started_at: start,
                ended_at: end,
                card_seconds: u64::from(cards) * secs as u64,
                log_chunks: 1,
                message: String::new(),
            },
        },
    ]
}

fn job(name: &str, sku: &str) -> JobSpec {
    let mut s = JobSpec::new(name, "sleep 0.3");
    s.chips.skus = vec![sku.into()];
    s
}

async fn submit_as(c: &Client, tenant: &str, spec: &JobSpec) -> JobId {
    let mut spec = spec.clone();
    spec.tenant = Some(TenantId::new(tenant));
    submit(c, &spec).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subsidised_tenant_gets_a_line_per_attempt_and_statements_and_report_agree_to_the_fen() {
    // 1 yuan per card-second on NVIDIA, 2 on domestic Ascend (with a higher voucher rate).
    let centers = [
        center("c-nv", "RTX4090", 1, 2, "3600.00"),
        center("c-asc", "Ascend910B3", 1, 2, "7200.00"),
    ];
    let mut net = Net::new(&centers, &["t-sme", "t-plain"]).await;
    let op = net.op();
    let mut p = programme("city-2026", "1000", "100");
    p.domestic_rate_bp = Some(7_000);
    op.create_programme(&p).await.unwrap();
    grant(&op, "city-2026", "t-sme", "4").await;
    let sme = net.user("t-sme", "alice").await;
    let plain = net.user("t-plain", "bob").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;

    // Quotes see the price after the tenant's vouchers; a tenant without a grant pays list price.
    let q = sme.quote(&job("q", "Ascend910B3")).await.unwrap();
    let best = &q.candidates[0];
    assert_eq!(best.gross, Some(yuan("7200.00")));
    assert_eq!(best.subsidy, Some(yuan("4")), "capped by the grant");
    assert_eq!(best.payable, Some(yuan("7196.00")));
    let q = plain.quote(&job("q", "RTX4090")).await.unwrap();
    assert_eq!(q.candidates[0].subsidy, Some(Money::ZERO));

    let mut ids = Vec::new();
    for (i, sku) in ["RTX4090", "Ascend910B3", "RTX4090", "Ascend910B3"]
        .iter()
        .enumerate()
    {
        ids.push(submit(&sme, &job(&format!("s{i}"), sku)).await);
    }
    ids.push(submit(&plain, &job("p", "RTX4090")).await);
    for id in &ids {
        let v = wait_terminal(&op, *id, Duration::from_secs(60)).await;
        assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    }

    let month = Month::of(now()).to_string();
    let inv = sme.bill(None, None).await.unwrap();
    assert_eq!(inv.month, month);
    check_lines(&inv);
    let billed: BTreeSet<(JobId, u32)> = inv.lines.iter().map(|l| (l.job, l.attempt)).collect();
    let want: BTreeSet<(JobId, u32)> = ids[..4].iter().map(|id| (*id, 1)).collect();
    assert_eq!(billed, want, "one line per attempt");
    let first = &inv.lines[0];
    assert!(first.subsidy > Money::ZERO, "{first:?}");
    for l in &inv.lines {
        let rate = if l.sku == "Ascend910B3" { 7_000 } else { 5_000 };
        if l.programme.is_some() {
            assert_eq!(l.rate_bp, rate);
        }
        assert_eq!(
            l.unit_price,
            if rate == 7_000 {
                yuan("7200")
            } else {
                yuan("3600")
            }
        );
    }
    assert!(inv.totals.subsidy <= yuan("4"));
    let other = plain.bill(None, Some(&month)).await.unwrap();
    check_lines(&other);
    assert_eq!(other.lines.len(), 1);
    assert_eq!(other.totals.subsidy, Money::ZERO);
    // A tenant reads only its own invoice.
    assert_eq!(
        plain.bill(Some("t-sme"), None).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let csv = sme.bill_csv(None, None).await.unwrap();
    assert_eq!(csv.lines().count(), 1 + inv.lines.len());
    assert!(csv.starts_with("line,month,job,attempt,tenant,center,sku"));

    // Center statements and the programme report agree with the invoices to the fen.
    let mut statements: Vec<StatementView> = Vec::new();
    for c in &centers {
        statements.push(op.statement(c.id.as_str(), Some(&month)).await.unwrap());
    }
    let invoices = [&inv, &other];
    let lines_of = |ls: &[suanli_proto::BillLineView]| -> BTreeSet<u64> {
        ls.iter().map(|l| l.line).collect()
    };
    let by_invoices: BTreeSet<u64> = invoices.iter().flat_map(|i| lines_of(&i.lines)).collect();
    let by_statements: BTreeSet<u64> = statements.iter().flat_map(|s| lines_of(&s.lines)).collect();
    assert_eq!(by_invoices, by_statements);
    let sum = |f: &dyn Fn(&suanli_proto::TotalsView) -> Money,
               ts: Vec<&suanli_proto::TotalsView>| {
        Money(ts.into_iter().map(|t| f(t).0).sum())
    };
    let inv_totals: Vec<_> = invoices.iter().map(|i| &i.totals).collect();
    let st_totals: Vec<_> = statements.iter().map(|s| &s.totals).collect();
    for f in [
        &(|t: &suanli_proto::TotalsView| t.gross) as &dyn Fn(&suanli_proto::TotalsView) -> Money,
        &|t| t.subsidy,
        &|t| t.payable,
    ] {
        assert_eq!(sum(f, inv_totals.clone()), sum(f, st_totals.clone()));
    }
    let report = op.programme_report("city-2026").await.unwrap();
    assert_eq!(report.paid_out, inv.totals.subsidy);
    assert_eq!(report.granted, yuan("4"));
    assert_eq!(report.remaining.0, report.budget.0 - report.paid_out.0);
    let draw = &report.tenants[0];
    assert_eq!(draw.tenant, TenantId::new("t-sme"));
    assert_eq!(draw.paid, inv.totals.subsidy);
    assert_eq!(draw.balance.0, yuan("4").0 - inv.totals.subsidy.0);
    let v = sme.vouchers().await.unwrap();
    assert_eq!(v.balances.len(), 1);
    assert_eq!(v.balances[0].draw.balance, draw.balance);
    assert!(
        v.programmes[0].totals.is_none(),
        "tenants see no programme totals"
    );

    // The ledger as stored balances, and its accounts match the reports.
    let books = stored_books(&net).await;
    assert_eq!(books.ledger().total(), 0);
    let wallet = books.balance(&Account::TenantWallet(TenantId::new("t-sme")));
    assert_eq!(wallet.0, -inv.totals.payable.0);
    for s in &statements {
        let due = books.balance(&Account::CenterReceivable(s.center.clone()));
        assert_eq!(due, s.totals.gross);
    }
    let pool = books.balance(&Account::ProgrammePool(ProgrammeId::new("city-2026")));
    assert_eq!(pool, report.remaining);

    // A restarted hub rebuilds the same books from the store.
    net.stop_agents().await;
    net.restart_hub(false).await;
    let again = net
        .user("t-sme", "alice2")
        .await
        .bill(None, None)
        .await
        .unwrap();
    assert_eq!(again, inv);
    let report2 = net.op().programme_report("city-2026").await.unwrap();
    assert_eq!(report2, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_simultaneous_billings_never_overdraw_a_programme_near_its_budget() {
    let tenants = ["t0", "t1", "t2", "t3", "t4"];
    let centers = [center("c-big", "RTX4090", 5, 8, "3600.00")];
    let net = Net::new(&centers, &tenants).await;
    let op = net.op();
    // All of the budget is granted: 20 yuan to each of five tenants.
    op.create_programme(&programme("tight", "100", "30"))
        .await
        .unwrap();
    for t in tenants {
        grant(&op, "tight", t, "20").await;
    }
    let site = FakeSite::new(&net, "c-big");
    site.heartbeat(&[]).await;

    // First each tenant uses 15 of its 20: 75 of the budget of 100 is paid out.
    for t in tenants {
        submit_as(&op, t, &job(&format!("{t}-warmup"), "RTX4090")).await;
    }
    let warm = site.take(tenants.len()).await;
    for a in &warm {
        let r = site.send(reports(a, 30)).await;
        assert!(r.iter().all(|s| *s == EventStatus::Accepted), "{r:?}");
    }
    let report = op.programme_report("tight").await.unwrap();
    assert_eq!(report.paid_out, yuan("75"));

    // Then 30 jobs (6 per tenant) end at the same moment, each asking for 5 of subsidy, and
    // each report is sent twice at once: 150 asked for, 25 left.
    for t in tenants {
        for i in 0..6 {
            submit_as(&op, t, &job(&format!("{t}-{i}"), "RTX4090")).await;
        }
    }
    let wave = site.take(30).await;
    let mut tasks = Vec::new();
    for a in &wave {
        for _ in 0..2 {
            let c = net.site("c-big");
            let events = reports(a, 10);
            tasks.push(tokio::spawn(async move { c.events(events).await }));
        }
    }
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.results.len(), 3);
        // Started of an attempt that has ended already is stale; logs and Finished are accepted.
        assert!(
            r.results[1..].iter().all(|s| *s == EventStatus::Accepted),
            "{r:?}"
        );
    }

    let report = op.programme_report("tight").await.unwrap();
    assert!(report.paid_out <= report.budget, "{report:?}");
    assert_eq!(report.paid_out, yuan("100"), "every balance is drawn down");
    let month = Month::of(now()).to_string();
    let mut subsidy = 0;
    let mut lines = 0;
    for t in tenants {
        let d = report
            .tenants
            .iter()
            .find(|d| d.tenant.as_str() == t)
            .unwrap();
        assert!(d.paid <= d.granted, "{d:?}");
        assert_eq!(d.balance, Money::ZERO);
        let inv = op.bill(Some(t), Some(&month)).await.unwrap();
        check_lines(&inv);
        assert_eq!(inv.lines.len(), 7, "one line per attempt, none twice");
        assert_eq!(inv.totals.subsidy, d.paid);
        subsidy += inv.totals.subsidy.0;
        lines += inv.lines.len();
    }
    assert_eq!(subsidy, report.paid_out.0);
    assert_eq!(lines, 35);
    let books = stored_books(&net).await;
    assert_eq!(books.ledger().total(), 0);
    assert_eq!(
        books.balance(&Account::ProgrammePool(ProgrammeId::new("tight"))),
        Money::ZERO
    );
    let st = op.statement("c-big", Some(&month)).await.unwrap();
    assert_eq!(
        st.totals.gross,
        yuan("450"),
        "5 x 30 + 30 x 10 card-seconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_every_agent_report_twice_changes_no_amount() {
    let (net, site) = FakeSite::one_center("3600.00", engine_config()).await;
    let op = net.op();
    op.create_programme(&programme("p", "1000", "100"))
        .await
        .unwrap();
    grant(&op, "p", "t-a", "50").await;
    let mut spec = job("r", "RTX4090");
    spec.cards_per_node = 2;
    for _ in 0..3 {
        submit_as(&op, "t-a", &spec).await;
    }
    let taken = site.take(3).await;
    let mut sent = Vec::new();
    for (i, a) in taken.iter().enumerate() {
        let events = reports(a, 20 + i as i64);
        assert!(
            site.send(events.clone())
                .await
                .iter()
                .all(|s| *s == EventStatus::Accepted)
        );
        sent.extend(events);
    }
    let month = Month::of(now()).to_string();
    let snapshot = async || {
        (
            op.bill(Some("t-a"), Some(&month)).await.unwrap(),
            op.statement("c1", Some(&month)).await.unwrap(),
            op.programme_report("p").await.unwrap(),
            open(&net.db).await.money_records().await.unwrap().len(),
        )
    };
    let before = snapshot().await;
    assert_eq!(before.0.lines.len(), 3);
    check_lines(&before.0);
    assert!(before.0.totals.subsidy > Money::ZERO);

    // Every report again, as one batch, then one by one; then a retry with other figures.
    site.send(sent.clone()).await;
    for e in &sent {
        site.send(vec![e.clone()]).await;
    }
    let mut tampered = sent.last().unwrap().clone();
    if let EventKind::Finished { card_seconds, .. } = &mut tampered.kind {
        *card_seconds += 1000;
    }
    assert_eq!(site.send(vec![tampered]).await, vec![EventStatus::Accepted]);
    assert_eq!(snapshot().await, before);
    assert_eq!(stored_books(&net).await.ledger().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_budget_submits_get_402_with_the_numbers_and_exhausted_budgets_stop_jobs() {
    // 36 yuan per card-hour. The site reports a 40-minute run of a 20-minute job, which it did
    // not wait out: the hub believes it within a clock skew of an hour and a kill grace of 20
    // minutes (the defaults are two minutes and one).
    let mut cfg = engine_config();
    cfg.reports.skew_ms = 3_600_000;
    cfg.reports.kill_grace_ms = 1_200_000;
    let (net, site) = FakeSite::one_center("36.00", cfg).await;
    let op = net.op();
    let a = net.user("t-a", "alice").await;
    let b = op
        .set_budget(
            "t-a",
            &BudgetRequest {
                monthly_limit: yuan("10"),
                at_limit: AtLimit::Stop,
            },
        )
        .await
        .unwrap();
    assert_eq!((b.spent, b.level.as_str()), (Money::ZERO, "ok"));

    // An hour on one card is quoted at 36: over the limit of 10.
    let hour = job("hour", "RTX4090");
    let e = a.submit(&hour).await.unwrap_err();
    let ClientError::Api(api) = e else {
        panic!("{e}")
    };
    assert_eq!(api.code, ErrorCode::OverBudget);
    assert_eq!(ErrorCode::OverBudget.http_status(), 402);
    for n in ["limit 10.00", "spent 0.00", "quoted at 36.00"] {
        assert!(api.message.contains(n), "{n}: {}", api.message);
    }
    let r = reqwest::Client::new()
        .post(format!("{}/v1/jobs", net.url))
        .bearer_auth(&net.operator)
        .json(&serde_json::json!({"spec": {"name": "x", "command": "true", "tenant": "t-a"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 402);

    // The quote is after vouchers: with half paid by a programme it is 18, still too much...
    op.create_programme(&programme("p", "1000", "100"))
        .await
        .unwrap();
    grant(&op, "p", "t-a", "100").await;
    let e = a.submit(&hour).await.unwrap_err();
    assert!(e.to_string().contains("quoted at 18.00"), "{e}");
    // ...while 20 minutes (12 gross, 6 to pay) fit.
    let mut short = job("short", "RTX4090");
    short.walltime = 1200;
    let first = submit(&a, &short).await;
    let second = submit(&a, &short).await;
    let placed = site.take(2).await;
    let (pa, pb) = if placed[0].job == first {
        (&placed[0], &placed[1])
    } else {
        (&placed[1], &placed[0])
    };
    assert_eq!((pa.job, pb.job), (first, second));
    site.send(vec![started(pb, now())]).await;
    site.heartbeat(&[pb]).await;

    // The first reports 40 minutes: 24 gross, 12 subsidy, 12 to pay: the budget is used up, so
    // the still-running second job is stopped.
    site.send(reports(pa, 2400)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = a.job(second).await.unwrap();
        if v.summary.state.is_terminal() {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", v.history);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v.summary.state, JobState::Cancelled);
    assert_eq!(
        v.summary.reason.as_deref(),
        Some("monthly budget exhausted")
    );
    let b = a.budget("t-a").await.unwrap();
    assert_eq!((b.spent, b.level.as_str()), (yuan("12"), "exhausted"));
    let e = a.submit(&short).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::OverBudget));
    // Its site is told to stop it; what it ran is still billed when it reports the end.
    let kill = site.c.assignments(0).await.unwrap().kill;
    assert!(kill.iter().any(|k| k.job == second), "{kill:?}");
    site.send(reports(pb, 60)).await;
    let inv = a.bill(None, None).await.unwrap();
    check_lines(&inv);
    assert_eq!(inv.lines.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_attempt_is_billed_up_to_its_last_heartbeat() {
    let cfg = suanli_hub::EngineConfig {
        lease_ttl: Duration::from_secs(2),
        offline_after: Duration::from_secs(30),
        tick: Duration::from_millis(100),
        core: Default::default(),
        reports: Default::default(),
    };
    let (net, site) = FakeSite::one_center("3600.00", cfg).await;
    let op = net.op();
    let mut spec = job("lost", "RTX4090");
    spec.cards_per_node = 2;
    let id = submit_as(&op, "t-a", &spec).await;
    let a = site.take(1).await.remove(0);
    let start = now().plus_millis(-10_000);
    site.send(vec![started(&a, start)]).await;
    site.heartbeat(&[&a]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    site.heartbeat(&[&a]).await;
    let last = now();
    // Then silence: the lease runs out, the attempt is lost and billed up to the last heartbeat.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let inv = loop {
        let inv = op.bill(Some("t-a"), None).await.unwrap();
        if !inv.lines.is_empty() {
            break inv;
        }
        assert!(tokio::time::Instant::now() < deadline, "never billed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let l = &inv.lines[0];
    assert_eq!((l.job, l.attempt, l.cards), (id, 1, 2));
    assert_eq!(l.started_at, start);
    assert!(
        l.ended_at > start.plus_millis(10_000) && l.ended_at <= last,
        "{l:?}"
    );
    let ms = (l.ended_at.0 - l.started_at.0) as u64;
    assert_eq!(l.card_seconds, (ms * 2).div_ceil(1000));
    assert_eq!(l.gross, Money::from_yuan(l.card_seconds as i64));
    let v = op.job(id).await.unwrap();
    assert!(
        v.history.iter().any(|e| e.message.contains("lost")),
        "{:?}",
        v.history
    );
    // A late report from the lost attempt is fenced off and bills nothing more.
    let r = site.send(reports(&a, 60)).await;
    assert!(r.iter().all(|s| *s == EventStatus::Stale), "{r:?}");
    let again = op.bill(Some("t-a"), None).await.unwrap();
    assert_eq!(
        again.lines.iter().filter(|l| l.attempt == 1).count(),
        1,
        "{again:?}"
    );
    assert_eq!(again.lines[0], *l);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_change_prices_later_usage_and_never_rewrites_a_bill() {
    let (net, site) = FakeSite::one_center("3600.00", engine_config()).await;
    let op = net.op();
    let a = net.user("t-a", "alice").await;
    submit_as(&op, "t-a", &job("before", "RTX4090")).await;
    let first = site.take(1).await.remove(0);
    site.send(reports(&first, 30)).await;
    let before = a.bill(None, None).await.unwrap();
    assert_eq!(before.lines[0].gross, yuan("30"));

    // Only the operator sets prices, for a pool that exists.
    let req = suanli_proto::PriceRequest {
        center: "c1".into(),
        sku: "RTX4090".into(),
        price_per_card_hour: yuan("7200.00"),
        spot_discount_bp: Some(5_000),
        effective_from: Some(now().plus_millis(-60_000)),
    };
    assert_eq!(
        a.set_price(&req).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let mut bad = req.clone();
    bad.sku = "H100-SXM".into();
    let e = op.set_price(&bad).await.unwrap_err();
    let ClientError::Api(api) = e else {
        panic!("{e}")
    };
    assert_eq!(
        (api.code, api.field.as_deref()),
        (ErrorCode::InvalidSpec, Some("sku"))
    );
    let row = op.set_price(&req).await.unwrap();
    assert!(row.in_force);
    let rows = a.prices().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(!rows[0].in_force && rows[1].in_force);
    // Placement, quotes and the centers list use the new price.
    let c = &op.centers().await.unwrap()[0];
    assert_eq!(c.pools[0].price_per_card_hour, yuan("7200.00"));
    let q = a.quote(&job("q", "RTX4090")).await.unwrap();
    assert_eq!(q.candidates[0].gross, Some(yuan("7200.00")));
    let mut spot = job("spot", "RTX4090");
    spot.priority = suanli_types::PriorityClass::Spot;
    let q = a.quote(&spot).await.unwrap();
    assert_eq!(
        q.candidates[0].gross,
        Some(yuan("3600.00")),
        "half off spot"
    );

    submit_as(&op, "t-a", &job("after", "RTX4090")).await;
    let second = site
        .take(1)
        .await
        .into_iter()
        .find(|x| x.job != first.job)
        .unwrap();
    site.send(reports(&second, 30)).await;
    let after = a.bill(None, None).await.unwrap();
    assert_eq!(after.lines.len(), 2);
    assert_eq!(after.lines[0], before.lines[0], "a bill line never changes");
    assert_eq!(after.lines[1].gross, yuan("60"));
    assert_eq!(after.lines[1].price_row, row.id);
    let st = op.statement("c1", None).await.unwrap();
    assert_eq!(st.totals.gross, yuan("90"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voucher_rules_and_visibility_hold_at_the_api() {
    let centers = [center("c1", "RTX4090", 1, 8, "3600.00")];
    let net = Net::new(&centers, &["t-a", "t-b"]).await;
    let op = net.op();
    let a = net.user("t-a", "alice").await;
    let p = programme("p", "100", "10");
    assert_eq!(
        a.create_programme(&p).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let created = op.create_programme(&p).await.unwrap();
    assert_eq!(created.totals.unwrap().unallocated, yuan("100"));
    assert_eq!(
        op.create_programme(&p).await.unwrap_err().code(),
        Some(ErrorCode::AlreadyExists)
    );
    let mut bad = programme("q", "100", "10");
    bad.base_rate_bp = 12_000;
    let e = op.create_programme(&bad).await.unwrap_err();
    let ClientError::Api(api) = e else {
        panic!("{e}")
    };
    assert_eq!(api.field.as_deref(), Some("base_rate_bp"), "{api}");

    grant(&op, "p", "t-a", "8").await;
    grant(&op, "p", "t-b", "5").await;
    grant_refused(&op, "p", "t-a", "5", "cap").await;
    let over = GrantRequest {
        tenant: TenantId::new("t-a"),
        amount: yuan("5"),
    };
    assert_eq!(
        op.grant("nope", &over).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    // A tenant created through the API is known to the vouchers at once: an enterprise is not
    // eligible for this programme.
    op.create_tenant(&suanli_proto::TenantRequest {
        id: TenantId::new("t-big"),
        name: "Big Co".into(),
        category: TenantCategory::Enterprise,
        city: None,
    })
    .await
    .unwrap();
    grant_refused(&op, "p", "t-big", "1", "not eligible").await;

    // A tenant sees the programmes, and only its own grants and balances.
    let v = a.vouchers().await.unwrap();
    assert_eq!(v.programmes.len(), 1);
    assert!(v.programmes[0].totals.is_none());
    assert_eq!(v.grants.len(), 1);
    assert_eq!(v.balances.len(), 1);
    assert_eq!(v.balances[0].draw.balance, yuan("8"));
    let all = op.vouchers().await.unwrap();
    assert_eq!((all.grants.len(), all.balances.len()), (2, 2));
    assert_eq!(
        a.programme_report("p").await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let csv = op.programme_report_csv("p").await.unwrap();
    assert_eq!(
        csv,
        "programme,tenant,granted,paid,balance,expired\np,t-a,8.00,0.00,8.00,0.00\np,t-b,5.00,0.00,5.00,0.00\n"
    );
    assert_eq!(
        a.statement("c1", None).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    // The center's own site reads its statement.
    assert!(net.site("c1").statement("c1", None).await.is_ok());
    assert_eq!(
        net.site("c1")
            .statement("c2", None)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
}

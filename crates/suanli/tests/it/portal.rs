//! The web portal served by the hub, in a real browser: a tenant signs in, quotes and submits
//! through the form, watches the job succeed with its logs and sees its bill line; another
//! tenant cannot see that job; the operator drains a center from the page and reads the queue,
//! tenants, prices and voucher programmes, which a tenant is refused; the supervisor reads the
//! audit log and has it verified, acknowledges a risk flag, reads the indicators' charts and the
//! releases; the language switch changes the labels; a job named like a script renders as text;
//! forms without the session's CSRF token are refused. Each step leaves a screenshot in
//! target/screenshots/.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use suanli_client::Client;
use suanli_hub::{ApiConfig, Ui};
use suanli_proto::{
    AtLimit, BudgetRequest, FlagStateView, GrantRequest, PriceRequest, ProgrammeSpec, QuotaView,
    TenantPolicyView, TokenRequest,
};
use suanli_types::{
    CenterId, JobSpec, JobState, Money, PriorityClass, Role, TenantCategory, TenantId,
};

use crate::browser;
use crate::harness::{Net, center, engine_config, submit, user_token, wait_state, wait_terminal};

pub(crate) fn portal() -> Ui {
    Ui(Arc::new(|hub_url: &str| {
        suanli_portal::router(suanli_portal::PortalConfig {
            hub_url: hub_url.to_string(),
            secure_cookies: false,
        })
    }))
}

/// A hub serving the portal, with one online center of two cards; its audit log signs a
/// checkpoint within half a second of an entry.
pub(crate) async fn net() -> Net {
    let api = ApiConfig {
        ui: Some(portal()),
        audit: suanli_hub::audit::AuditConfig {
            policy: suanli_audit::log::CheckpointPolicy {
                busy_ms: 500,
                idle_ms: 500,
            },
            ..Default::default()
        },
        ..ApiConfig::default()
    };
    let mut one = center("sz-portal", "RTX4090", 1, 2, "2.00");
    one.stacks.insert("cuda".into(), "12.4".into());
    let mut net = Net::with_api(&[one], &["acme", "other"], engine_config(), api).await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    net
}

/// Signs in through the form with `token` and lands on `back`.
pub(crate) async fn sign_in(b: &browser::Browser, url: &str, token: &str, back: &str) {
    b.goto(&format!("{url}{back}")).await;
    assert!(
        b.url().await.contains("/signin"),
        "an anonymous visit goes to the sign-in page"
    );
    b.fill("#token", token).await;
    b.click("form[action='/signin'] button").await;
    assert!(
        b.url().await.ends_with(back),
        "back at {back} after signing in"
    );
}

/// The operator's desk filled in for `acme`: a fair-share weight and an NVIDIA quota, a monthly
/// budget, and a voucher programme with a grant.
pub(crate) async fn desk_of_acme(op: &Client) {
    op.set_tenant_policy(
        "acme",
        &TenantPolicyView {
            weight: 2,
            quotas: BTreeMap::from([(
                "nvidia".to_string(),
                QuotaView {
                    nominal: 2,
                    borrow_limit: 1,
                },
            )]),
            public_service: false,
        },
    )
    .await
    .unwrap();
    op.set_budget(
        "acme",
        &BudgetRequest {
            monthly_limit: yuan("1000"),
            at_limit: AtLimit::LetFinish,
        },
    )
    .await
    .unwrap();
    let at = suanli_hub::engine::now();
    op.create_programme(&ProgrammeSpec {
        id: "sz-2026-ai".into(),
        issuer: "Shenzhen MIIT".into(),
        budget: yuan("10000"),
        valid_from: at.plus_millis(-86_400_000),
        valid_until: at.plus_secs(30 * 86_400),
        base_rate_bp: 5_000,
        category_rates: vec![],
        domestic_rate_bp: Some(7_000),
        cap_per_tenant: yuan("5000"),
        eligible: vec![TenantCategory::Sme],
        exclude_affiliated: false,
    })
    .await
    .unwrap();
    op.grant(
        "sz-2026-ai",
        &GrantRequest {
            tenant: TenantId::new("acme"),
            amount: yuan("2000"),
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_submits_through_the_portal_and_others_cannot_see_the_job() {
    let Some(b) = browser::start("portal-tenant", "zh-CN").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let acme = user_token(&net.op(), "acme", "alice").await;

    b.goto(&format!("{url}/signin")).await;
    b.shot("signin").await;
    sign_in(&b, &url, &acme, "/").await;
    // Chinese first, from the browser's Accept-Language.
    assert!(
        b.text("nav").await.contains("我的作业"),
        "{}",
        b.source().await
    );
    assert!(b.text("main").await.contains("sz-portal"));
    b.shot("network-zh").await;

    // The switch changes every label, and stays.
    b.click("a.lang").await;
    assert!(b.text("nav").await.contains("My jobs"));
    b.shot("network-en").await;

    // Quote, then submit, a job whose name is markup.
    let name = "<script>alert(1)</script>";
    b.goto(&format!("{url}/submit")).await;
    b.fill("#name", name).await;
    b.fill("#walltime", "5m").await;
    b.fill("#command", "echo hello-from-the-portal").await;
    b.click("button[value='quote']").await;
    let quote = b.text("section.quote").await;
    assert!(quote.contains("sz-portal"), "{quote}");
    assert!(
        b.source().await.contains("hello-from-the-portal"),
        "the form keeps what was typed"
    );
    b.shot("quote").await;
    b.click("button[value='submit']").await;
    let job_url = b.url().await;
    assert!(job_url.contains("/jobs/"), "{job_url}");
    let id: i64 = job_url.rsplit('/').next().unwrap().parse().unwrap();
    assert!(b.text("h1").await.contains(name), "the name is text");
    assert!(!b.alert_open().await, "no script ran");
    b.wait_text("dl.facts", "succeeded", Duration::from_secs(60))
        .await;
    b.wait_text("pre.logs", "hello-from-the-portal", Duration::from_secs(30))
        .await;
    assert!(
        b.text("main").await.contains("sz-portal"),
        "placement shown"
    );
    b.shot("job").await;

    // Its bill line, traced to the job.
    b.goto(&format!("{url}/bills")).await;
    let bill = b.text("table.bill").await;
    assert!(bill.contains(&format!("{id} #1")), "{bill}");
    b.shot("bills").await;
    let errors = b.console_errors().await;
    assert!(
        errors.is_empty(),
        "the console stays clean (no CSP violations, no failed loads): {errors:?}"
    );

    // Another tenant sees neither the job's page nor the job in its list.
    let other = user_token(&net.op(), "other", "bob").await;
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &other, "/jobs").await;
    assert!(!b.source().await.contains("hello-from-the-portal"));
    assert!(!b.source().await.contains(&format!("href=\"/jobs/{id}\"")));
    b.goto(&format!("{url}/jobs/{id}")).await;
    assert!(b.try_find("p.error").await.is_some());
    assert!(!b.source().await.contains("hello-from-the-portal"));
    b.shot("other-tenant").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_drains_a_center_and_the_supervisor_reads_the_audit_log() {
    let Some(b) = browser::start("portal-operator", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    sign_in(&b, &url, &net.operator, "/centers").await;
    b.shot("centers").await;
    b.click("form[action='/centers/sz-portal/drain'] button")
        .await;
    assert!(b.text("main").await.contains("drained"));
    b.shot("centers-drained").await;
    let centers = net.op().centers().await.unwrap();
    assert_eq!(centers[0].status, "drained", "the page drained it");

    let sup = supervisor(&net.op()).await;
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &sup, "/audit").await;
    let log = b.text("table.audit").await;
    assert!(log.contains("POST /v1/centers/{id}/drain"), "{log}");
    b.shot("audit").await;
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{errors:?}");
    // The operator's page is not the supervisor's.
    b.goto(&format!("{url}/centers")).await;
    assert!(b.try_find("p.error").await.is_some());
}

pub(crate) fn yuan(s: &str) -> Money {
    s.parse().unwrap()
}

/// A supervisor's token, made by the operator.
pub(crate) async fn supervisor(op: &Client) -> String {
    op.create_token(&TokenRequest {
        name: "auditor".into(),
        role: Role::Supervisor,
        tenant: None::<TenantId>,
        center: None,
        expires_in: None,
    })
    .await
    .unwrap()
    .token
}

/// Sets the list price of the test center's one pool.
pub(crate) async fn set_price(op: &Client, price: &str) {
    op.set_price(&PriceRequest {
        center: CenterId::new("sz-portal"),
        sku: "RTX4090".into(),
        price_per_card_hour: yuan(price),
        spot_discount_bp: Some(2_500),
        effective_from: None,
    })
    .await
    .unwrap();
}

/// The quarter before the current one (China Standard Time), e.g. `2026Q3`: it has ended, so
/// its release can be made.
pub(crate) fn last_quarter() -> String {
    let now = suanli_hub::engine::now().millis() + 8 * 3_600_000;
    let (y, m, _) = suanli_types::time::civil_from_days(now.div_euclid(86_400_000));
    let q = (m - 1) / 3 + 1;
    match q {
        1 => format!("{}Q4", y - 1),
        q => format!("{y}Q{}", q - 1),
    }
}

/// The console must stay free of errors: no CSP violation, no failed load.
pub(crate) async fn console_clean(b: &browser::Browser, page: &str) {
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "{page}: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_handles_a_risk_flag_and_reads_indicators_releases_and_the_verified_log() {
    let Some(b) = browser::start("portal-supervisor", "zh-CN").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let op = net.op();
    // A job run to its end (usage for the indicators), a price more than doubled (a flag), a
    // release of the quarter that ended last.
    let acme = net.client(&user_token(&op, "acme", "alice").await);
    let mut spec = JobSpec::new("indicator-run", "echo counted");
    spec.walltime = 120;
    let id = submit(&acme, &spec).await;
    let done = wait_terminal(&acme, id, Duration::from_secs(60)).await;
    assert_eq!(done.summary.state, JobState::Succeeded);
    set_price(&op, "5.00").await;
    let quarter = last_quarter();
    op.make_release(&quarter).await.unwrap();
    let sup = supervisor(&op).await;

    // Risk flags: the price change, acknowledged from the page with a reason.
    sign_in(&b, &url, &sup, "/risk").await;
    let flags = b.text("main").await;
    assert!(flags.contains("价格大幅变动"), "{flags}");
    assert!(flags.contains("sz-portal/RTX4090"), "{flags}");
    assert!(flags.contains("待处理"), "open: {flags}");
    assert!(b.text("nav").await.contains("统计指标"));
    b.shot("risk").await;
    b.fill(
        "form.flag-action input[name='why']",
        "已与运营方核实：新机型定价",
    )
    .await;
    b.click("form.flag-action button[value='acknowledged']")
        .await;
    assert!(b.url().await.ends_with("/risk"));
    let after = b.text("article.flag").await;
    assert!(after.contains("已确认"), "{after}");
    assert!(
        after.contains("已与运营方核实"),
        "the reason is in its history: {after}"
    );
    b.shot("risk-acknowledged").await;
    let stored = net
        .client(&sup)
        .risk_flags(None, Some("price_change"))
        .await
        .unwrap();
    assert_eq!(stored.flags[0].state, FlagStateView::Acknowledged);
    assert_eq!(stored.flags[0].history[0].why, "已与运营方核实：新机型定价");
    console_clean(&b, "/risk").await;

    // Indicators: charts drawn as inline SVG, the figures in a table.
    b.goto(&format!("{url}/indicators")).await;
    assert!(b.try_find("figure.chart svg rect.bar").await.is_some());
    let table = b.text("table.indicators").await;
    assert!(table.contains("全网"), "{table}");
    b.shot("indicators").await;
    b.goto(&format!("{url}/indicators?period=month&by=center"))
        .await;
    assert!(b.text("table.indicators").await.contains("sz-portal"));
    assert!(b.try_find("figcaption").await.is_some());
    b.shot("indicators-by-center").await;
    console_clean(&b, "/indicators").await;

    // Releases, with links to their files.
    b.goto(&format!("{url}/releases")).await;
    assert!(b.text("table.releases").await.contains(&quarter));
    let html_file = format!("/v1/releases/{quarter}/release.html");
    assert!(b.source().await.contains(&format!("href=\"{html_file}\"")));
    b.shot("releases").await;
    console_clean(&b, "/releases").await;
    let file = reqwest::get(format!("{url}{html_file}")).await.unwrap();
    assert_eq!(file.status(), 200, "the linked file is served");

    // The audit log with its checkpoint, then the whole chain verified.
    b.goto(&format!("{url}/audit")).await;
    assert!(b.text("section.verify").await.contains("链校验"));
    assert!(b.text("table.audit").await.contains("POST /v1/risk/state"));
    b.shot("audit").await;
    // Once a signed checkpoint covers the entries, the chain is proven.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    b.click("section.verify a[href='/audit/verify']").await;
    let verdict = b.text("p.verdict").await;
    assert!(verdict.starts_with("✓"), "{verdict}");
    assert!(!verdict.contains("覆盖 0 条"), "{verdict}");
    b.shot("audit-verify").await;
    console_clean(&b, "/audit").await;
    // The operator's desk is not the supervisor's.
    for page in ["/queue", "/tenants"] {
        b.goto(&format!("{url}{page}")).await;
        assert!(b.try_find("p.error").await.is_some(), "{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reads_queue_tenants_prices_and_programmes_which_a_tenant_is_refused() {
    let Some(b) = browser::start("portal-desk", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let op = net.op();
    set_price(&op, "2.50").await;
    desk_of_acme(&op).await;
    // One job takes both cards; two more wait for them.
    let acme_token = user_token(&op, "acme", "alice").await;
    let acme = net.client(&acme_token);
    let mut big = JobSpec::new("fills-the-center", "sleep 60");
    big.cards_per_node = 2;
    let running = submit(&acme, &big).await;
    wait_state(&acme, running, JobState::Running, Duration::from_secs(60)).await;
    let mut spot = JobSpec::new("waits-as-spot", "echo later");
    spot.cards_per_node = 2;
    spot.priority = PriorityClass::Spot;
    spot.chips.vendor = Some("nvidia".into());
    let spot = submit(&acme, &spot).await;
    let standard = submit(&acme, &JobSpec::new("waits-for-any-chip", "echo later")).await;
    for j in [spot, standard] {
        wait_state(&acme, j, JobState::Queued, Duration::from_secs(30)).await;
    }

    sign_in(&b, &url, &net.operator, "/queue").await;
    let queue = b.text("main").await;
    assert!(queue.contains("spot · nvidia"), "{queue}");
    assert!(queue.contains("standard · any chip"), "{queue}");
    assert!(queue.contains("waits-as-spot") && queue.contains("waits-for-any-chip"));
    assert!(
        !queue.contains("fills-the-center"),
        "a running job is not queued"
    );
    assert!(queue.contains("1 job, 2 cards"), "{queue}");
    let why = b.text("td.reason").await;
    assert!(
        !why.is_empty() && why != "—",
        "the hub says why it waits: {why}"
    );
    b.shot("queue").await;
    b.click("a.lang").await;
    assert!(b.text("main").await.contains("竞价 · nvidia"));
    b.shot("queue-zh").await;
    b.click("a.lang").await;

    b.goto(&format!("{url}/tenants")).await;
    let tenants = b.text("table.tenants").await;
    assert!(
        tenants.contains("nvidia: 2 cards, borrow up to 1"),
        "{tenants}"
    );
    assert!(tenants.contains("¥1000.00"), "{tenants}");
    b.shot("tenants").await;

    b.goto(&format!("{url}/prices")).await;
    let prices = b.text("table.prices").await;
    assert!(
        prices.contains("¥2.50") && prices.contains("¥2.00"),
        "{prices}"
    );
    assert!(
        prices.contains("in force") && prices.contains("superseded"),
        "{prices}"
    );
    assert!(prices.contains("25%"), "the spot discount: {prices}");
    b.shot("prices").await;

    b.goto(&format!("{url}/programmes")).await;
    let prog = b.text("section.programme").await;
    assert!(
        prog.contains("sz-2026-ai") && prog.contains("Shenzhen MIIT"),
        "{prog}"
    );
    assert!(
        prog.contains("¥10000.00") && prog.contains("¥2000.00"),
        "{prog}"
    );
    assert!(b.try_find("section.programme svg.meter").await.is_some());
    b.shot("programmes").await;
    console_clean(&b, "the operator's desk").await;

    // A tenant has no link to these pages and is refused them.
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &acme_token, "/jobs").await;
    let nav = b.source().await;
    for page in [
        "/queue",
        "/tenants",
        "/prices",
        "/programmes",
        "/risk",
        "/audit",
    ] {
        assert!(!nav.contains(&format!("href=\"{page}\"")), "{page} linked");
        b.goto(&format!("{url}{page}")).await;
        assert!(
            b.try_find("p.error").await.is_some(),
            "{page} shown to a tenant"
        );
        assert!(!b.source().await.contains("sz-2026-ai"));
    }
    b.shot("tenant-refused").await;
    acme.cancel(running).await.unwrap();
}

/// Forms are refused without the session's CSRF token, and the sign-in form without its own;
/// API paths keep the API's answers beside the portal.
#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let net = net().await;
    let url = net.url.clone();
    let acme = user_token(&net.op(), "acme", "alice").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie_of = |r: &reqwest::Response, name: &str| -> Option<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}="))
                    .map(|r| r.split(';').next().unwrap().to_string())
            })
    };
    // The sign-in form without its cookie (as from another site): refused.
    let r = http
        .post(format!("{url}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("token", acme.as_str()), ("pre", "abc")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Signed in properly.
    let r = http.get(format!("{url}/signin")).send().await.unwrap();
    let pre = cookie_of(&r, "suanli_pre").unwrap();
    let r = http
        .post(format!("{url}/signin"))
        .header("cookie", format!("suanli_pre={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", acme.as_str()),
            ("pre", pre.as_str()),
            ("back", "/jobs"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = cookie_of(&r, "suanli_session").unwrap();
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = format!("suanli_session={session}");
    // A submit with no token, then with a wrong one: refused, and no job made.
    for csrf in [None, Some("0".repeat(64))] {
        let mut form = vec![
            ("action", "submit"),
            ("name", "forged"),
            ("command", "echo forged"),
        ];
        if let Some(c) = &csrf {
            form.push(("csrf", c.as_str()));
        }
        let r = http
            .post(format!("{url}/submit"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&form))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    let jobs = net
        .client(&acme)
        .jobs(&suanli_client::JobFilter::default())
        .await
        .unwrap();
    assert!(jobs.jobs.is_empty(), "a forged form made no job");
    // The page headers: scripts only the portal's own, never inline; no framing.
    let r = http
        .get(format!("{url}/jobs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self';")
            && !csp.contains("unsafe"),
        "{csp}"
    );
    // The API's own 404 beside the portal's pages.
    let r = http.get(format!("{url}/v1/no-such")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("\"not_found\""));
    let r = http
        .get(format!("{url}/no-such-page"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// `application/x-www-form-urlencoded`.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A session signed in over plain HTTP with `token`: a client that follows no redirects, the
/// session cookie, and the session's CSRF token (from a page's form).
pub(crate) async fn http_session(url: &str, token: &str) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = |r: &reqwest::Response, name: &str| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let r = http.get(format!("{url}/signin")).send().await.unwrap();
    let pre = cookie(&r, "suanli_pre");
    let r = http
        .post(format!("{url}/signin"))
        .header("cookie", format!("suanli_pre={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[
            ("token", token),
            ("pre", pre.as_str()),
            ("back", "/jobs"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = format!("suanli_session={}", cookie(&r, "suanli_session"));
    let page = http
        .get(format!("{url}/jobs"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a form with the CSRF token")
        .to_string();
    (http, session, csrf)
}

/// Fetches `href` with the browser's session (as the download link does) and returns the status,
/// the body as text and the `Content-Disposition` header.
async fn fetch_in_page(b: &browser::Browser, href: &str) -> (u64, String, String) {
    let v = b
        .execute(
            "return fetch(arguments[0]).then(r => r.text().then(t => \
             [r.status, t, r.headers.get('content-disposition') || '']));",
            serde_json::json!([href]),
        )
        .await;
    (
        v[0].as_u64().unwrap(),
        v[1].as_str().unwrap().to_string(),
        v[2].as_str().unwrap().to_string(),
    )
}

/// The console's errors are only the load of a page refused with `status` (as it should be).
async fn expected_refusal(b: &browser::Browser, status: &str) {
    let errors = b.console_errors().await;
    assert!(
        errors
            .iter()
            .all(|e| e.contains(&format!("status of {status}"))),
        "{errors:?}"
    );
}

/// Scrolls `css` to the top of the window (for a screenshot of a long page).
async fn scroll_to(b: &browser::Browser, css: &str) {
    b.execute(
        "document.querySelector(arguments[0]).scrollIntoView();",
        serde_json::json!([css]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_page_lists_its_outputs_and_the_link_downloads_the_file() {
    let Some(b) = browser::start("portal-outputs", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let token = user_token(&net.op(), "acme", "alice").await;
    let acme = net.client(&token);
    let mut spec = JobSpec::new(
        "leaves-a-table",
        "mkdir -p out; printf 'clinic,visits\\na,3\\n' > out/table.csv; echo done",
    );
    spec.outputs = vec!["out/*.csv".into()];
    let id = submit(&acme, &spec).await;
    let done = wait_terminal(&acme, id, Duration::from_secs(60)).await;
    assert_eq!(
        done.summary.state,
        JobState::Succeeded,
        "{:?}",
        done.summary
    );

    sign_in(&b, &url, &token, &format!("/jobs/{id}")).await;
    let section = b.text("section.outputs").await;
    for want in [
        "Outputs",
        "out/table.csv",
        "18 B",
        "#1",
        "out/*.csv",
        "Download",
    ] {
        assert!(section.contains(want), "{want:?} not in {section}");
    }
    assert!(!section.contains("quarantined"), "{section}");
    scroll_to(&b, "section.outputs").await;
    b.shot("job-outputs-en").await;

    // The link streams the file from the hub with the session's token, as an attachment.
    let href = b
        .execute(
            "return document.querySelector('section.outputs a.download').getAttribute('href');",
            serde_json::json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        href,
        format!("/jobs/{id}/output?path=out/table.csv&attempt=1")
    );
    let (status, body, disposition) = fetch_in_page(&b, &href).await;
    assert_eq!(status, 200);
    assert_eq!(body, "clinic,visits\na,3\n");
    assert!(
        disposition.starts_with("attachment; filename=\"table.csv\""),
        "{disposition}"
    );
    console_clean(&b, "the job's outputs").await;

    b.click("a.lang").await;
    let section = b.text("section.outputs").await;
    assert!(
        section.contains("输出文件") && section.contains("下载"),
        "{section}"
    );
    scroll_to(&b, "section.outputs").await;
    b.shot("job-outputs-zh").await;

    // Another tenant's session gets no file.
    let other = user_token(&net.op(), "other", "bob").await;
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &other, "/jobs").await;
    let (status, body, _) = fetch_in_page(&b, &href).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("clinic,visits"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_is_asked_for_from_the_job_page_and_approved_by_the_owners_admin() {
    use suanli_proto::suanli_data::{
        Classification, DataPolicy, DatasetSpec, OutputRules, ReleaseState,
    };
    use suanli_proto::{DatasetGrantRequest, RegisterDataset};

    let Some(b) = browser::start("portal-airlock", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let op = net.op();
    // `other` owns a restricted dataset at the one center and grants it to `acme`.
    let owner_token = op
        .create_token(&TokenRequest {
            name: "other-admin".into(),
            role: Role::TenantAdmin,
            tenant: Some(TenantId::new("other")),
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;
    let owner = net.client(&owner_token);
    let data = net.data_root("clinic");
    owner
        .register_dataset(&RegisterDataset {
            spec: DatasetSpec {
                name: "clinic".into(),
                homes: vec![CenterId::new("sz-portal")],
                path: data.to_str().unwrap().into(),
                size_bytes: 64 * 1024,
                classification: Classification::Restricted,
                description: "visits per clinic, 2025".into(),
                policy: DataPolicy {
                    egress: true,
                    commands: Vec::new(),
                    outputs: OutputRules {
                        max_bytes: Some(1000),
                        allowed_types: vec!["csv".into()],
                        forbidden: vec!["patient_id".into()],
                    },
                },
            },
            owner: None,
        })
        .await
        .unwrap();
    owner
        .grant_dataset(
            "clinic",
            &DatasetGrantRequest {
                tenant: TenantId::new("acme"),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let acme_token = user_token(&op, "acme", "alice").await;
    let acme = net.client(&acme_token);
    let mut spec = JobSpec::new(
        "clinic-summary",
        "mkdir -p out; printf 'clinic,visits\\na,3\\n' > out/summary.csv",
    );
    spec.datasets = vec!["clinic".into()];
    spec.outputs = vec!["out/*.csv".into()];
    let id = submit(&acme, &spec).await;
    let done = wait_terminal(&acme, id, Duration::from_secs(60)).await;
    assert_eq!(
        done.summary.state,
        JobState::Succeeded,
        "{:?}",
        done.summary
    );

    // The datasets page, in both languages.
    sign_in(&b, &url, &acme_token, "/datasets").await;
    let table = b.text("table.datasets").await;
    for want in [
        "clinic",
        "other",
        "restricted",
        "sz-portal",
        "64.0 KiB",
        "allowed",
        "granted",
    ] {
        assert!(table.contains(want), "{want:?} not in {table}");
    }
    assert!(b.text("nav").await.contains("Datasets"));
    b.shot("datasets-en").await;
    let mut found = crate::portal_quality::axe(&b, "datasets").await;
    b.click("a.lang").await;
    let table = b.text("table.datasets").await;
    assert!(
        table.contains("受限") && table.contains("已授权"),
        "{table}"
    );
    b.shot("datasets-zh").await;
    b.click("a.lang").await;
    console_clean(&b, "/datasets").await;

    // The job's outputs are quarantined: no link, and the download route says why.
    b.goto(&format!("{url}/jobs/{id}")).await;
    let section = b.text("section.outputs").await;
    assert!(
        section.contains("quarantined") && section.contains("clinic"),
        "{section}"
    );
    assert!(b.try_find("section.outputs a.download").await.is_none());
    scroll_to(&b, "section.outputs").await;
    b.shot("job-quarantined").await;
    found.extend(crate::portal_quality::axe(&b, "quarantined outputs").await);
    b.goto(&format!("{url}/jobs/{id}/output?path=out/summary.csv"))
        .await;
    assert!(b.text("h1").await.contains("Output quarantined"));
    assert!(b.try_find("form.release-form textarea").await.is_some());
    b.shot("download-quarantined").await;
    found.extend(crate::portal_quality::axe(&b, "quarantined download").await);
    expected_refusal(&b, "403").await;

    // Asked for from the job page: the request's page, its checks and history.
    b.goto(&format!("{url}/jobs/{id}")).await;
    b.fill("#justification", "visits per clinic for the annual report")
        .await;
    b.click("form.release-form button").await;
    let at = b.url().await;
    assert!(at.contains("/airlock/"), "{at}");
    let rid: i64 = at.rsplit('/').next().unwrap().parse().unwrap();
    assert!(b.text("#release-state").await.contains("in review"));
    assert!(b.text("main").await.contains("Every file passed"));
    let history = b.text("ol.release-history").await;
    for want in [
        "requested: visits per clinic for the annual report",
        "check max_bytes: ok",
        "check forbidden: ok",
    ] {
        assert!(history.contains(want), "{want:?} not in {history}");
    }
    assert!(
        b.try_find("form.review").await.is_none(),
        "the requester has no review form"
    );
    b.shot("request-en").await;
    found.extend(crate::portal_quality::axe(&b, "request").await);
    scroll_to(&b, "#reviews-h").await;
    b.shot("request-history-en").await;
    console_clean(&b, "the request").await;

    // The owner's admin, in Chinese: the list, then a refused review, then the approval.
    b.click("form[action='/signout'] button").await;
    b.goto(&format!("{url}/lang?to=zh-CN&back=/signin")).await;
    sign_in(&b, &url, &owner_token, "/airlock").await;
    assert!(b.text("nav").await.contains("数据出境审核"));
    let list = b.text("table.airlock").await;
    assert!(
        list.contains(&rid.to_string()) && list.contains("审核中"),
        "{list}"
    );
    b.shot("airlock-zh").await;
    found.extend(crate::portal_quality::axe(&b, "airlock").await);
    b.click(&format!("table.airlock a[href='/airlock/{rid}']"))
        .await;
    b.fill("#reason", "   ").await;
    b.click("form.review button[value='approve']").await;
    let refused = b.text("p.error").await;
    assert!(refused.contains("reason"), "the hub's words: {refused}");
    assert!(b.text("#release-state").await.contains("审核中"));
    b.shot("review-refused").await;
    found.extend(crate::portal_quality::axe(&b, "refused review").await);
    expected_refusal(&b, "409").await;
    b.fill("#reason", "只含汇总数据").await;
    b.click("form.review button[value='approve']").await;
    assert!(b.url().await.ends_with(&format!("/airlock/{rid}")));
    assert!(b.try_find("p.error").await.is_none());
    assert!(b.text("#release-state").await.contains("已批准"));
    let history = b.text("ol.release-history").await;
    assert!(
        history.contains("approved by other-admin: 只含汇总数据") && history.contains("released"),
        "{history}"
    );
    assert!(b.text("table.reviews").await.contains("other-admin"));
    b.shot("approved-zh").await;
    found.extend(crate::portal_quality::axe(&b, "approved").await);
    assert!(found.is_empty(), "axe-core: {}", found.join("\n"));
    scroll_to(&b, "#reviews-h").await;
    b.shot("approved-history-zh").await;
    b.click("a.lang").await;
    assert!(b.text("#release-state").await.contains("approved"));
    b.shot("approved-en").await;
    console_clean(&b, "the review").await;
    let stored = acme.airlock_show(rid).await.unwrap();
    assert_eq!(stored.state, ReleaseState::Approved);

    // Released: the job's tenant downloads it from the job page's link.
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &acme_token, &format!("/jobs/{id}")).await;
    let href = b
        .execute(
            "return document.querySelector('section.outputs a.download').getAttribute('href');",
            serde_json::json!([]),
        )
        .await;
    let (status, body, _) = fetch_in_page(&b, href.as_str().unwrap()).await;
    assert_eq!((status, body.as_str()), (200, "clinic,visits\na,3\n"));
}

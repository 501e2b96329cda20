//! The web portal served by the hub, in a real browser: a tenant signs in, quotes and submits
//! through the form, watches the job succeed with its logs and sees its bill line; another
//! tenant cannot see that job; the operator drains a center from the page; the supervisor reads
//! the audit log; the language switch changes the labels; a job named like a script renders as
//! text; forms without the session's CSRF token are refused. Each step leaves a screenshot in
//! target/screenshots/.

use std::sync::Arc;
use std::time::Duration;

use suanli_hub::{ApiConfig, Ui};
use suanli_proto::TokenRequest;
use suanli_types::{Role, TenantId};

use crate::browser;
use crate::harness::{Net, center, engine_config, user_token};

fn portal() -> Ui {
    Ui(Arc::new(|hub_url: &str| {
        suanli_portal::router(suanli_portal::PortalConfig {
            hub_url: hub_url.to_string(),
            secure_cookies: false,
        })
    }))
}

/// A hub serving the portal, with one online center of two cards.
async fn net() -> Net {
    let api = ApiConfig {
        ui: Some(portal()),
        ..ApiConfig::default()
    };
    let centers = [center("sz-portal", "RTX4090", 1, 2, "2.00")];
    let mut net = Net::with_api(&centers, &["acme", "other"], engine_config(), api).await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    net
}

/// Signs in through the form with `token` and lands on `back`.
async fn sign_in(b: &browser::Browser, url: &str, token: &str, back: &str) {
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

    let sup = net
        .op()
        .create_token(&TokenRequest {
            name: "auditor".into(),
            role: Role::Supervisor,
            tenant: None::<TenantId>,
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;
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
    // The page headers: no scripts, no framing.
    let r = http
        .get(format!("{url}/jobs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
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
fn form_body(pairs: &[(&str, &str)]) -> String {
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

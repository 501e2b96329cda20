//! The portal's quality in a real browser: every page, as each role and in both languages
//! (the operator's also in the dark colour scheme), passes axe-core's accessibility rules (no
//! violation of impact `serious` or `critical`); the sign-in and submit forms work from the
//! keyboard with the focus always visible; the network, jobs and job pages fit a 375 px wide
//! screen without scrolling sideways.
//!
//! axe-core is vendored in `tests/fixtures/axe/` (see its README for the version and licence)
//! and injected through WebDriver's execute script, which runs outside the page's CSP (that
//! allows only the portal's own script, the live job page's).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use suanli_types::{JobId, JobSpec, JobState};

use crate::browser::{self, Browser};
use crate::harness::{Net, submit, user_token, wait_state, wait_terminal};
use crate::portal::{
    console_clean, desk_of_acme, last_quarter, net, set_price, sign_in, supervisor,
};

/// axe-core 4, as published on npm (`axe.min.js`).
const AXE: &str = include_str!("../fixtures/axe/axe.min.js");

/// WebDriver key codes.
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// Runs axe-core on the page and returns its violations of impact `serious` or `critical`,
/// each as one line: the page, the rule, its impact, what it asks for and the offending
/// elements' selectors.
pub(crate) async fn axe(b: &Browser, page: &str) -> Vec<String> {
    let loaded = b
        .execute(&format!("{AXE}\n;return typeof window.axe;"), json!([]))
        .await;
    assert_eq!(loaded, json!("object"), "{page}: axe-core did not load");
    let found = b
        .execute(
            "return axe.run(document, {resultTypes: ['violations']}).then(r => r.violations \
             .filter(v => v.impact === 'serious' || v.impact === 'critical') \
             .map(v => ({id: v.id, impact: v.impact, help: v.help, \
                         nodes: v.nodes.map(n => n.target.join(' '))})));",
            json!([]),
        )
        .await;
    let found = found
        .as_array()
        .unwrap_or_else(|| panic!("{page}: axe.run gave {found}"));
    found
        .iter()
        .map(|v| {
            let nodes: Vec<&str> = v["nodes"]
                .as_array()
                .map(|n| n.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!(
                "{page}: {} ({}): {}; at {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or(""),
                nodes.join(" | ")
            )
        })
        .collect()
}

/// Opens each of `pages` (paths of the portal), checks it is the page asked for (not the
/// sign-in page unless asked for), runs axe on it, leaves a screenshot named `{who}-{path}`
/// and adds what axe found to `out`. A path marked `!` is one the portal refuses (404, 403):
/// the browser's note of that status is the only console error allowed; every other page
/// leaves the console clean.
async fn check_pages(b: &Browser, url: &str, who: &str, pages: &[&str], out: &mut Vec<String>) {
    for page in pages {
        let (page, refused) = match page.strip_prefix('!') {
            Some(p) => (p, true),
            None => (*page, false),
        };
        b.goto(&format!("{url}{page}")).await;
        b.find("main").await;
        let here = b.url().await;
        assert!(
            !here.contains("/signin") || page.starts_with("/signin"),
            "{who} {page}: sent to sign in ({here})"
        );
        assert_eq!(
            b.try_find("p.error").await.is_some(),
            refused,
            "{who} {page}: an error page is expected exactly where marked"
        );
        out.extend(axe(b, &format!("{who} {page}")).await);
        let name: String = page
            .trim_start_matches('/')
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() {
                true => c,
                false => '_',
            })
            .collect();
        let name = if name.is_empty() { "network" } else { &name };
        b.shot(&format!("{who}-{name}")).await;
        let errors = b.console_errors().await;
        let expected = |e: &String| {
            refused && e.starts_with(&format!("{url}{page} - Failed to load resource"))
        };
        assert!(
            errors.iter().all(expected),
            "{who} {page}: the console has errors: {errors:?}"
        );
    }
}

/// The switch to `lang` (`zh-CN` or `en`), back at `/`.
async fn switch_to(b: &Browser, url: &str, lang: &str) {
    b.goto(&format!("{url}/lang?to={lang}&back=/")).await;
    let tag = b
        .execute("return document.documentElement.lang;", json!([]))
        .await;
    assert_eq!(
        tag,
        json!(lang),
        "the page's lang attribute follows the switch"
    );
}

/// A hub with something on every page: a finished job with logs and its bill line, a job
/// filling the center and one waiting, a price change (a risk flag), a tenant's policy and
/// budget, a voucher programme with a grant, last quarter's release. Returns the network,
/// the tenant's token, the finished job and the running one.
async fn seeded() -> (Net, String, JobId, JobId) {
    let net = net().await;
    let op = net.op();
    let token = user_token(&op, "acme", "alice").await;
    let acme = net.client(&token);
    let mut spec = JobSpec::new("axe-run", "echo checked-by-axe; echo to-stderr >&2");
    spec.walltime = 120;
    let done = submit(&acme, &spec).await;
    let ended = wait_terminal(&acme, done, Duration::from_secs(60)).await;
    assert_eq!(ended.summary.state, JobState::Succeeded);
    set_price(&op, "5.00").await;
    desk_of_acme(&op).await;
    // The model library: one model accepted (a matrix with a throughput), one pending review.
    for (name, accept) in [("axe-loop", true), ("axe-pending", false)] {
        let spec: suanli_proto::suanli_models::ModelSpec =
            toml::from_str(&crate::models::model_toml(name, None)).unwrap();
        let m = op.publish_model(&spec).await.unwrap();
        let req = suanli_proto::CertifyRequest {
            center: suanli_types::CenterId::new("sz-portal"),
            sku: None,
            tenant: Some(suanli_types::TenantId::new("acme")),
        };
        let rec = op.certify(m.id, &req).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while op.certifications(m.id).await.unwrap().certifications[0].state
            == suanli_proto::suanli_models::CertState::Running
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never measured"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if accept {
            let review = suanli_proto::ReviewRequest {
                verdict: suanli_proto::suanli_models::Verdict::Accept,
                reason: "checked".into(),
            };
            op.review_certification(rec.id, &review).await.unwrap();
        }
    }
    op.make_release(&last_quarter()).await.unwrap();
    let mut big = JobSpec::new("fills-the-center", "sleep 300");
    big.cards_per_node = 2;
    let running = submit(&acme, &big).await;
    wait_state(&acme, running, JobState::Running, Duration::from_secs(60)).await;
    let waiting = submit(&acme, &JobSpec::new("waits-its-turn", "echo later")).await;
    wait_state(&acme, waiting, JobState::Queued, Duration::from_secs(30)).await;
    (net, token, done, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_portal_page_passes_axe_for_each_role_and_language() {
    let Some(b) = browser::start("portal-axe", "zh-CN").await else {
        return;
    };
    let (net, acme, done, running) = seeded().await;
    let url = net.url.clone();
    let mut found = vec![];

    // Signed out, in both languages.
    check_pages(
        &b,
        &url,
        "anon-zh",
        &["/signin", "!/no-such-page"],
        &mut found,
    )
    .await;
    switch_to(&b, &url, "en").await;
    check_pages(&b, &url, "anon-en", &["/signin"], &mut found).await;

    // A tenant, in English, then in Chinese; a quote, an error, a refused page.
    sign_in(&b, &url, &acme, "/").await;
    let job = format!("/jobs/{}", done.0);
    let tenant_pages = [
        "/",
        "/submit",
        "/jobs",
        job.as_str(),
        "/bills",
        "/indicators",
        "/releases",
        "/models",
        "/datasets",
        "/airlock",
        "!/queue",
        "!/no-such-page",
    ];
    check_pages(&b, &url, "tenant-en", &tenant_pages, &mut found).await;
    b.goto(&format!("{url}/submit")).await;
    b.fill("#name", "quoted").await;
    b.fill("#walltime", "5m").await;
    b.fill("#command", "echo quoted").await;
    b.click("button[value='quote']").await;
    assert!(
        b.try_find("section.quote").await.is_some(),
        "no quote: {}",
        b.text("main").await
    );
    found.extend(axe(&b, "tenant-en quote").await);
    b.shot("tenant-en-quote").await;
    b.fill("#walltime", "soon").await;
    b.click("button[value='submit']").await;
    b.find("#form-error").await;
    found.extend(axe(&b, "tenant-en refused form").await);
    b.shot("tenant-en-refused-form").await;
    let errors = b.console_errors().await;
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with(&format!("{url}/submit - Failed to load resource"))),
        "the refused form (422) is the console's only error: {errors:?}"
    );
    switch_to(&b, &url, "zh-CN").await;
    check_pages(&b, &url, "tenant-zh", &tenant_pages, &mut found).await;

    // The operator, in English: every page of the desk.
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &net.operator, "/").await;
    switch_to(&b, &url, "en").await;
    let operator_pages = [
        "/",
        "/centers",
        "/queue",
        "/jobs",
        "/jobs?state=active",
        "/tenants",
        "/prices",
        "/programmes",
        "/bills",
        "/bills?tenant=acme",
        "/risk",
        "/indicators",
        "/indicators?period=month&by=center",
        "/releases",
        "/models",
        "/datasets",
        "/airlock",
        "/airlock?owner=acme",
        "/audit",
        "/audit/verify",
    ];
    check_pages(&b, &url, "operator-en", &operator_pages, &mut found).await;
    // The same in the dark colour scheme.
    b.dark(true).await;
    let dark = b
        .execute(
            "return matchMedia('(prefers-color-scheme: dark)').matches;",
            json!([]),
        )
        .await;
    assert_eq!(dark, json!(true), "the dark scheme is emulated");
    check_pages(&b, &url, "operator-dark", &operator_pages, &mut found).await;
    b.dark(false).await;
    // The review queue: the operator accepts the pending record with a reason.
    b.goto(&format!("{url}/models")).await;
    let form = "form[action^='/certifications/']";
    b.fill(&format!("{form} input[name='reason']"), "numbers checked")
        .await;
    b.click(&format!("{form} button[value='accept']")).await;
    let text = b.text("main").await;
    assert!(
        !text.contains("Measured, waiting for review") && !text.contains("pending review"),
        "{text}"
    );
    assert_eq!(text.matches("cuda 12.4 accepted").count(), 2, "{text}");
    b.shot("operator-en-models-reviewed").await;

    // The supervisor, in Chinese.
    let sup = supervisor(&net.op()).await;
    b.click("form[action='/signout'] button").await;
    sign_in(&b, &url, &sup, "/").await;
    switch_to(&b, &url, "zh-CN").await;
    let supervisor_pages = [
        "/",
        "/jobs",
        job.as_str(),
        "/risk",
        "/indicators",
        "/indicators?period=day&by=sku",
        "/releases",
        "/programmes",
        "/prices",
        "/models",
        "/datasets",
        "/audit",
        "/audit/verify",
        "!/centers",
    ];
    check_pages(&b, &url, "supervisor-zh", &supervisor_pages, &mut found).await;

    net.client(&acme).cancel(running).await.unwrap();
    assert!(
        found.is_empty(),
        "axe-core found {} serious or critical violation(s):\n{}",
        found.len(),
        found.join("\n")
    );
}

/// The focused element as a selector-like key (`#id`, `tag[name=..][value=..]`), whether it
/// matches `:focus-visible` and its outline.
const FOCUSED: &str = "const e = document.activeElement; \
    const key = (e) => e.id ? '#' + e.id : e.tagName.toLowerCase() + \
      (e.getAttribute('name') ? '[name=' + e.getAttribute('name') + ']' : '') + \
      (e.tagName === 'BUTTON' && e.value ? '[value=' + e.value + ']' : '') + \
      (e.tagName === 'A' ? '[href=' + e.getAttribute('href') + ']' : ''); \
    const cs = getComputedStyle(e); const r = e.getBoundingClientRect(); \
    return {key: key(e), visible: e.matches(':focus-visible'), outline: cs.outlineStyle, \
      width: parseFloat(cs.outlineWidth) || 0, onscreen: r.right > 0 && r.bottom > 0 && \
      r.left < innerWidth, body: e === document.body};";

/// The keys (as [`FOCUSED`] gives them) of the controls a user can reach in `form`, in
/// document order.
async fn controls(b: &Browser, form: &str) -> Vec<String> {
    let v = b
        .execute(
            "const key = (e) => e.id ? '#' + e.id : e.tagName.toLowerCase() + \
               (e.getAttribute('name') ? '[name=' + e.getAttribute('name') + ']' : '') + \
               (e.tagName === 'BUTTON' && e.value ? '[value=' + e.value + ']' : ''); \
             return [...document.querySelector(arguments[0]).querySelectorAll( \
               'input:not([type=hidden]), select, textarea, button, summary')] \
               .filter(e => e.checkVisibility() && !e.disabled).map(key);",
            json!([form]),
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Tabs from the top of the page until every control of `form` had the focus (at most 60
/// presses), checking that each element focused on the way shows a visible outline of 2 px
/// or more through `:focus-visible` and is on the screen; then that the form's controls came
/// in document order. Returns the keys focused, in order.
async fn tab_through(b: &Browser, form: &str, page: &str) -> Vec<String> {
    let want = controls(b, form).await;
    assert!(!want.is_empty(), "{page}: no controls in {form}");
    let mut seen: Vec<String> = vec![];
    for _ in 0..60 {
        b.press(TAB).await;
        let f = b.execute(FOCUSED, json!([])).await;
        assert_eq!(
            f["body"],
            json!(false),
            "{page}: Tab left the page: {seen:?}"
        );
        let key = f["key"].as_str().unwrap().to_string();
        assert!(
            f["visible"] == json!(true)
                && f["outline"] != json!("none")
                && f["width"].as_f64().unwrap() >= 2.0,
            "{page}: the focus on {key} is not visible: {f}"
        );
        assert_eq!(
            f["onscreen"],
            json!(true),
            "{page}: {key} is focused off screen"
        );
        seen.push(key);
        if want.iter().all(|w| seen.contains(w)) {
            break;
        }
    }
    let order: Vec<&String> = seen.iter().filter(|k| want.contains(k)).collect();
    assert_eq!(
        order,
        want.iter().collect::<Vec<_>>(),
        "{page}: Tab reaches the form's controls in their order (focused: {seen:?})"
    );
    seen
}

/// Waits for the browser to leave `path` (a form's navigation started by a key).
async fn left(b: &Browser, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let u = b.url().await;
        if !u.contains(path) && b.try_find("main").await.is_some() {
            return u;
        }
        assert!(
            Instant::now() < deadline,
            "still at {u}: {}",
            b.text("main").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_forms_work_by_keyboard_and_pages_fit_a_375_px_screen() {
    let Some(b) = browser::start("portal-keys", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let acme = user_token(&net.op(), "acme", "alice").await;

    // Sign in with the keyboard only: the skip link first, then the token, typed, and Enter.
    b.goto(&format!("{url}/signin?back=/submit")).await;
    let seen = tab_through(&b, "form[action='/signin']", "/signin").await;
    assert_eq!(
        seen[0], "a[href=#main]",
        "the skip link comes first: {seen:?}"
    );
    b.goto(&format!("{url}/signin?back=/submit")).await;
    b.press(TAB).await;
    b.shot("skip-link").await;
    let skip = b.execute(FOCUSED, json!([])).await;
    assert_eq!(
        skip["onscreen"],
        json!(true),
        "the skip link shows when focused"
    );
    while b.execute(FOCUSED, json!([])).await["key"] != json!("#token") {
        b.press(TAB).await;
    }
    b.shot("signin-focus").await;
    b.type_text(&acme).await;
    b.press(ENTER).await;
    assert!(left(&b, "/signin").await.ends_with("/submit"));

    // The submit form, every control by Tab, then a quote and a submit by keyboard.
    tab_through(&b, "form[action='/submit']", "/submit").await;
    b.shot("submit-focus").await;
    b.fill("#name", "by-keyboard").await;
    b.fill("#walltime", "5m").await;
    b.fill("#command", "echo typed-by-keyboard").await;
    b.execute("document.querySelector('#command').focus();", json!([]))
        .await;
    loop {
        b.press(TAB).await;
        let k = b.execute(FOCUSED, json!([])).await["key"].clone();
        if k == json!("button[name=action][value=submit]") {
            break;
        }
        assert_ne!(k, json!("body"), "no way to the submit button");
    }
    b.press(ENTER).await;
    let job_url = left(&b, "/submit").await;
    assert!(job_url.contains("/jobs/"), "{job_url}");
    let id: i64 = job_url.rsplit('/').next().unwrap().parse().unwrap();
    let acme_client = net.client(&acme);
    let ended = wait_terminal(&acme_client, JobId(id), Duration::from_secs(60)).await;
    assert_eq!(ended.summary.state, JobState::Succeeded);
    console_clean(&b, "keyboard").await;

    // A phone: 375 px wide, nothing wider than the screen.
    b.window_size(375, 812).await;
    let job = format!("/jobs/{id}");
    for (page, name) in [
        ("/", "narrow-network"),
        ("/jobs", "narrow-jobs"),
        (job.as_str(), "narrow-job"),
        ("/submit", "narrow-submit"),
        ("/bills", "narrow-bills"),
    ] {
        b.goto(&format!("{url}{page}")).await;
        b.find("main").await;
        let w = b
            .execute(
                "return [innerWidth, document.documentElement.scrollWidth, \
                 [...document.querySelectorAll('body *')].filter(e => \
                 e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5) \
                 .slice(0, 5).map(e => e.tagName.toLowerCase() + '.' + e.className)];",
                json!([]),
            )
            .await;
        assert_eq!(w[0], json!(375), "{page}: the viewport is 375 px wide");
        assert!(
            w[1].as_u64().unwrap() <= 375,
            "{page}: scrolls sideways ({} px wide; wider elements: {})",
            w[1],
            w[2]
        );
        b.shot(name).await;
    }
    console_clean(&b, "narrow").await;
}

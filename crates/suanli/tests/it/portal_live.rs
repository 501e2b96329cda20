//! A job page that updates itself: new log lines and the state arrive as server-sent events and
//! are added to the page without reloading it, and the page reloads once when the job ends. The
//! stream answers only a session that may read the job.

use std::time::Duration;

use serde_json::json;
use suanli_types::{JobSpec, JobState};

use crate::browser;
use crate::harness::{submit, user_token, wait_state};
use crate::portal::{console_clean, form_body, http_session, net, sign_in};

/// The page's log text, and whether the page is the one the test marked (not reloaded).
const PEEK: &str = "var l = document.getElementById('job-logs'); \
    return {kept: window.__kept === 1, logs: l ? l.textContent : '', \
            state: document.getElementById('job-state') ? \
                   document.getElementById('job-state').textContent : ''};";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_page_adds_its_new_log_lines_without_reloading() {
    let Some(b) = browser::start("portal-live", "en-US").await else {
        return;
    };
    let net = net().await;
    let url = net.url.clone();
    let acme_token = user_token(&net.op(), "acme", "alice").await;
    let acme = net.client(&acme_token);
    let mut spec = JobSpec::new(
        "live-logs",
        "i=1; while [ $i -le 30 ]; do echo live-line-$i; i=$((i+1)); sleep 0.5; done",
    );
    spec.walltime = 300;
    let id = submit(&acme, &spec).await;
    wait_state(&acme, id, JobState::Running, Duration::from_secs(30)).await;

    sign_in(&b, &url, &acme_token, &format!("/jobs/{}", id.0)).await;
    b.execute("window.__kept = 1;", json!([])).await;
    let first = b.execute(PEEK, json!([])).await;
    let shown = |v: &serde_json::Value| {
        v["logs"]
            .as_str()
            .unwrap_or("")
            .matches("live-line-")
            .count()
    };
    let at_load = shown(&first);
    assert!(at_load < 30, "the job had not ended at load: {first}");

    // New lines come in while the page stays the same page.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut grew = None;
    loop {
        let v = b.execute(PEEK, json!([])).await;
        if v["kept"] != json!(true) {
            break;
        }
        let n = shown(&v);
        if n > at_load {
            grew = Some(v.clone());
        }
        if n >= at_load + 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no new lines: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let grew =
        grew.unwrap_or_else(|| panic!("no lines were added without a reload ({at_load} at load)"));
    assert!(shown(&grew) > at_load, "{grew}");
    b.execute(
        "document.getElementById('job-logs').scrollIntoView();",
        json!([]),
    )
    .await;
    b.shot("running").await;

    // The job ends: the page reloads once and shows the whole output and the final state.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let last = loop {
        let v = b.execute(PEEK, json!([])).await;
        if v["kept"] != json!(true) && v["logs"].as_str().unwrap_or("").contains("live-line-30") {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload at the end: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        last["state"].as_str().unwrap().contains("succeeded"),
        "{last}"
    );
    assert!(
        b.try_find("[data-live]").await.is_none(),
        "an ended job's page is not live"
    );
    b.shot("ended").await;
    console_clean(&b, "live job page").await;

    // The stream is the page's: without a session it sends to the sign-in page, and another
    // tenant's session gets the page's refusal, not a stream.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(format!("{url}/jobs/{}/live", id.0))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let other = user_token(&net.op(), "other", "olga").await;
    let b2 = browser::start("portal-live-other", "en-US").await.unwrap();
    sign_in(&b2, &url, &other, "/jobs").await;
    b2.goto(&format!("{url}/jobs/{}/live", id.0)).await;
    let src = b2.source().await;
    assert!(
        !src.contains("live-line"),
        "another tenant read the stream: {src}"
    );
}

/// A session has at most four live streams open, and signing out ends them: the token is no
/// longer the stream's to use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_few_per_session_and_end_when_it_does() {
    let net = net().await;
    let url = net.url.clone();
    let token = user_token(&net.op(), "acme", "alice").await;
    let acme = net.client(&token);
    let mut spec = JobSpec::new("long", "sleep 60");
    spec.walltime = 300;
    let id = submit(&acme, &spec).await;
    wait_state(&acme, id, JobState::Running, Duration::from_secs(30)).await;
    let (http, cookie, csrf) = http_session(&url, &token).await;
    let open = || {
        http.get(format!("{url}/jobs/{}/live", id.0))
            .header("cookie", &cookie)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..4 {
        let mut r = open().await.unwrap();
        assert_eq!(r.status(), 200);
        let first = r.chunk().await.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&first).contains("event: state"),
            "{first:?}"
        );
        streams.push(r);
    }
    assert_eq!(open().await.unwrap().status(), 429, "a fifth live page");

    let r = http
        .post(format!("{url}/signout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("csrf", csrf.as_str())]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    for mut r in streams {
        let rest = tokio::time::timeout(Duration::from_secs(15), async {
            let mut rest = String::new();
            while let Some(c) = r.chunk().await.unwrap() {
                rest.push_str(&String::from_utf8_lossy(&c));
            }
            rest
        })
        .await
        .expect("the stream ended after the sign-out");
        assert!(rest.contains("event: end"), "{rest}");
    }
    let r = open().await.unwrap();
    assert!(r.status().is_redirection(), "signed out: {}", r.status());

    // Another tenant's session gets the page's refusal, not a stream.
    let other = user_token(&net.op(), "other", "olga").await;
    let (http, cookie, _) = http_session(&url, &other).await;
    let r = http
        .get(format!("{url}/jobs/{}/live", id.0))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 403 | 404), "{}", r.status());
    assert!(!r.text().await.unwrap().contains("event:"));
}

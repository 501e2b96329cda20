//! A job page that updates itself: new log lines and the state arrive as server-sent events and
//! are added to the page without reloading it, and the page reloads once when the job ends. The
//! stream answers only a session that may read the job.

use std::time::Duration;

use serde_json::json;
use suanli_types::{JobSpec, JobState};

use crate::browser;
use crate::harness::{submit, user_token, wait_state};
use crate::portal::{console_clean, net, sign_in};

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

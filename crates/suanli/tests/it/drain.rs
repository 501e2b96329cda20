//! Draining a center: no new work there, running attempts finish (or are handed back with
//! `requeue`), and the flag survives a hub restart.

use std::time::Duration;

use suanli_proto::ErrorCode;
use suanli_types::{JobSpec, JobState};

use crate::harness::{Net, cheap_and_dear, submit_running, wait_terminal};

async fn status(net: &Net, center: &str) -> String {
    net.op()
        .centers()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id.as_str() == center)
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_center_finishes_its_work_takes_none_and_hands_back_on_request() {
    let centers = cheap_and_dear("d", 2);
    let mut net = Net::with_agents(&centers, &["t-d"]).await;
    let u = net.user("t-d", "dora").await;

    // Who may drain: the operator and the center's own site, nobody else.
    let err = u.drain("d-cheap", false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = net
        .site("d-dear")
        .drain("d-cheap", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let err = net.op().drain("nowhere", false).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound));

    // One job runs at the cheap center; the site drains itself; the job finishes there.
    let v = submit_running(&u, &JobSpec::new("first", "sleep 1.5")).await;
    let first = v.summary.id;
    assert_eq!(v.summary.center.unwrap().as_str(), "d-cheap");
    let d = net.site("d-cheap").drain("d-cheap", false).await.unwrap();
    assert!(d.drained);
    assert_eq!((d.running, d.requeued.len()), (1, 0), "{d:?}");
    assert_eq!(status(&net, "d-cheap").await, "drained");

    // New work goes to the dear center while the cheap one is drained.
    let v = submit_running(&u, &JobSpec::new("second", "sleep 5")).await;
    let second = v.summary.id;
    assert_eq!(v.summary.center.unwrap().as_str(), "d-dear");
    let v = wait_terminal(&u, first, Duration::from_secs(20)).await;
    assert_eq!(v.summary.state, JobState::Succeeded);
    assert_eq!(v.summary.attempt, 1, "it finished where it ran");

    // The flag survives a restart of the hub.
    let url_before = net.url.clone();
    net.restart_hub(false).await;
    assert_ne!(net.url, url_before);
    assert_eq!(status(&net, "d-cheap").await, "drained");

    // Undrain the cheap center, drain the dear one with requeue: the running job is stopped,
    // metered, and runs again at the cheap center with the next attempt.
    net.op().undrain("d-cheap").await.unwrap();
    // The restarted hub has a new URL: start agents that know it.
    net.stop_agents().await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let u = net.user("t-d", "dora2").await;
    let v = u.job(second).await.unwrap();
    assert!(v.summary.state.is_active(), "{v:?}");
    let d = net.op().drain("d-dear", true).await.unwrap();
    assert_eq!((d.running, d.requeued.clone()), (0, vec![second]), "{d:?}");
    let v = wait_terminal(&u, second, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    assert_eq!(v.summary.center.unwrap().as_str(), "d-cheap");
    assert!(v.summary.attempt >= 2, "{:?}", v.history);
    assert!(
        v.history
            .iter()
            .any(|e| e.state == JobState::Queued && e.message.contains("drained")),
        "the history says why: {:?}",
        v.history
    );
    let ends = v.history.iter().filter(|e| e.state.is_terminal()).count();
    assert_eq!(ends, 1, "{:?}", v.history);
    net.stop_agents().await;
}

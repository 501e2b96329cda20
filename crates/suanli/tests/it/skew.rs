//! Version skew of the agent protocol against a real hub: the hub takes the heartbeats of an agent
//! from before the protocol was versioned and of a newer agent that sends fields it does not know,
//! and an agent that speaks another protocol version runs a job like any other.

use std::time::Duration;

use suanli_proto::{HeartbeatReply, PROTOCOL_VERSION};
use suanli_site::AgentConfig;
use suanli_types::{JobSpec, JobState};
use tokio::sync::watch;

use crate::harness::{Net, all_logs, center, wait_terminal};

const UNVERSIONED: &str = include_str!("../../../suanli-proto/fixtures/heartbeat-unversioned.json");
const NEWER: &str = include_str!("../../../suanli-proto/fixtures/heartbeat-newer.json");

#[tokio::test]
async fn agents_of_other_protocol_versions_work_against_the_hub() {
    let c = center("c-skew", "RTX4090", 1, 2, "1.00");
    let net = Net::new(std::slice::from_ref(&c), &["t-a"]).await;
    let token = net.site_tokens[0].1.clone();

    // Heartbeats as an agent from before the version and a newer agent send them.
    let http = reqwest::Client::new();
    for (what, body) in [("unversioned", UNVERSIONED), ("newer", NEWER)] {
        let res = http
            .post(format!("{}/v1/site/heartbeat", net.url))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{what} heartbeat");
        let reply: HeartbeatReply = res.json().await.unwrap();
        assert!(reply.lease_ttl_secs > 0, "{what}: {reply:?}");
        // Job 41 is not this center's: the hub says to stop it.
        assert_eq!(reply.kill.len(), 1, "{what}: {reply:?}");
    }

    // A real agent that speaks the next protocol version.
    let mut cfg = AgentConfig::new(
        vec![net.url.clone()],
        token,
        net.dir.path().join("sites/c-skew"),
    );
    cfg.protocol = PROTOCOL_VERSION + 1;
    cfg.heartbeat_interval = Duration::from_millis(300);
    cfg.poll_wait_secs = 2;
    cfg.kill_grace = Duration::from_secs(1);
    let (stop, mut stopped) = watch::channel(false);
    let agent = tokio::spawn(suanli_site::run_agent(cfg, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    net.wait_online().await;

    let u = net.user("t-a", "alice").await;
    let mut spec = JobSpec::new("skew", "echo \"hello from $SUANLI_JOB_ID\"; cat in.txt");
    spec.files.insert("in.txt".into(), "files too\n".into());
    let id = u.submit(&spec).await.unwrap().summary.id;
    let v = wait_terminal(&u, id, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{v:?}");
    assert_eq!(v.summary.center.unwrap().as_str(), "c-skew");
    assert_eq!(v.summary.exit_code, Some(0));
    assert_eq!(
        all_logs(&u, id).await,
        format!("hello from {id}\nfiles too\n")
    );

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

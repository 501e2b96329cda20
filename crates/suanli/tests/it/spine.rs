//! The spine end to end: submit, place, run, log, fence, restart.

use std::collections::BTreeMap;
use std::time::Duration;

use suanli_client::ClientError;
use suanli_proto::{AgentEvent, ErrorCode, EventKind, EventStatus, Stream};
use suanli_types::{CenterSpec, ChipRequest, JobId, JobSpec, JobState};

use crate::check::{self, logged_job, read_runs, wait_all_ended};
use crate::harness::*;

fn cuda_job(i: usize) -> JobSpec {
    let mut s = JobSpec::new(
        format!("cuda-{i}"),
        "echo job $SUANLI_JOB_ID attempt $SUANLI_ATTEMPT devices $CUDA_VISIBLE_DEVICES; echo warn >&2",
    );
    s.stack = "cuda".into();
    s.cards_per_node = 1 + (i % 2) as u32;
    s
}

fn ascend_job(i: usize) -> JobSpec {
    let mut s = JobSpec::new(
        format!("ascend-{i}"),
        "cat input.txt; echo job $SUANLI_JOB_ID devices $ASCEND_RT_VISIBLE_DEVICES",
    );
    s.chips = ChipRequest {
        family: Some("Ascend910B".into()),
        ..Default::default()
    };
    s.cards_per_node = 4;
    s.files
        .insert("input.txt".into(), format!("input of {i}\n"));
    s
}

/// A CUDA center of two 4-card nodes and an Ascend center of one 8-card node.
fn cuda_and_ascend() -> [CenterSpec; 2] {
    [
        center("c-cuda", "RTX4090", 2, 4, "2.00"),
        center("c-ascend", "Ascend910B3", 1, 8, "7.00"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_jobs_from_two_tenants_run_where_they_fit() {
    let centers = cuda_and_ascend();
    let mut net = Net::new(&centers, &["t-a", "t-b"]).await;
    let a = net.user("t-a", "alice").await;
    let b = net.user("t-b", "bob").await;
    net.start_agents(vec![net.url.clone()]);

    let mut submitted: Vec<(JobId, &str, usize)> = Vec::new();
    for i in 0..25 {
        let v = a.submit(&cuda_job(i)).await.unwrap();
        assert_eq!(v.summary.tenant.as_str(), "t-a");
        submitted.push((v.summary.id, "cuda", i));
        let v = b.submit(&ascend_job(i)).await.unwrap();
        submitted.push((v.summary.id, "ascend", i));
    }
    for (id, kind, i) in &submitted {
        let owner = if *kind == "cuda" { &a } else { &b };
        let v = wait_terminal(owner, *id, Duration::from_secs(120)).await;
        assert_eq!(
            v.summary.state,
            JobState::Succeeded,
            "job {id}: {:?}",
            v.summary.reason
        );
        assert_eq!(v.summary.exit_code, Some(0));
        let expect_center = if *kind == "cuda" {
            "c-cuda"
        } else {
            "c-ascend"
        };
        assert_eq!(v.summary.center.as_ref().unwrap().as_str(), expect_center);
        let p = v.placement.as_ref().expect("placement recorded");
        assert_eq!(p.center.as_str(), expect_center);
        assert_eq!(
            p.rejected.len(),
            1,
            "the other center is rejected with a reason"
        );
        assert!(!p.rejected[0].reason.is_empty());
        assert!(v.card_seconds <= (v.summary.cards as u64) * 60);
        let (job_line, input) = (format!("job {id}"), format!("input of {i}"));
        let needles: &[&str] = match *kind {
            "ascend" => &[&job_line, &input],
            _ => &[&job_line],
        };
        let logs = logs_having(owner, *id, needles).await;
        if *kind == "ascend" {
            let devices = logs.split("devices ").nth(1).and_then(|r| r.lines().next());
            assert!(matches!(devices, Some("0,1,2,3" | "4,5,6,7")), "{logs}");
        } else {
            assert_stderr_has(owner, *id, "warn").await;
        }
    }

    // Cross-tenant: invisible, as if absent.
    let (a_job, ..) = submitted[0];
    for e in [
        b.job(a_job).await.unwrap_err(),
        b.logs(a_job, None, 0).await.unwrap_err(),
        b.cancel(a_job).await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    }
    let filter = suanli_client::JobFilter {
        tenant: Some("t-a".into()),
        ..Default::default()
    };
    assert_eq!(
        b.jobs(&filter).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let mine = b.jobs(&Default::default()).await.unwrap();
    assert_eq!(mine.jobs.len(), 25);
    assert!(mine.jobs.iter().all(|j| j.tenant.as_str() == "t-b"));
    let all = net
        .op()
        .jobs(&suanli_client::JobFilter {
            limit: Some(20),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.jobs.len(), 20);
    assert!(all.next.is_some());

    // A site acts only for its own center: a report about another center's attempt is
    // refused (see `reports.rs`).
    let (b_job, ..) = submitted[1];
    let forged = AgentEvent {
        job: b_job,
        attempt: 1,
        kind: EventKind::Log {
            seq: 99,
            stream: Stream::Stdout,
            data: "forged".into(),
        },
    };
    let err = net.site("c-cuda").events(vec![forged]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidReport), "{err}");
    assert!(!all_logs(&b, b_job).await.contains("forged"));
    assert_eq!(
        net.site("c-cuda").job(b_job).await.unwrap_err().code(),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        a.heartbeat(&heartbeat()).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );

    // Live capacity is back to full.
    let centers = a.centers().await.unwrap();
    for c in &centers {
        assert_eq!(c.status, "online");
        assert_eq!(c.pools[0].free_cards, c.pools[0].total_cards, "{}", c.id);
    }
    net.stop_agents().await;
}

/// `center`'s site reports `kind` for attempt 1 of `job`: the hub calls it stale.
async fn assert_stale(net: &Net, center: &str, job: JobId, kind: EventKind) {
    let event = AgentEvent {
        job,
        attempt: 1,
        kind,
    };
    let r = net.site(center).events(vec![event]).await.unwrap();
    assert_eq!(r.results, vec![EventStatus::Stale]);
}

fn heartbeat() -> suanli_proto::Heartbeat {
    suanli_proto::Heartbeat {
        agent_version: "test".into(),
        protocol: suanli_proto::PROTOCOL_VERSION,
        inventory: vec![],
        stacks: BTreeMap::new(),
        running: vec![],
        draining: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_get_400_with_the_field_and_impossible_jobs_422_per_center() {
    let centers = cuda_and_ascend();
    let net = Net::new(&centers, &["t-a"]).await;
    let a = net.user("t-a", "alice").await;

    let mut s = JobSpec::new("x", "true");
    s.cards_per_node = 0;
    let e = a.submit(&s).await.unwrap_err();
    let ClientError::Api(api) = e else {
        panic!("{e}")
    };
    assert_eq!(api.code, ErrorCode::InvalidSpec);
    assert_eq!(api.field.as_deref(), Some("spec.cards_per_node"));

    let mut s = JobSpec::new("x", "true");
    s.chips.skus = vec!["H100-SXM".into(), "B200".into()];
    let ClientError::Api(api) = a.submit(&s).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(api.field.as_deref(), Some("spec.chips.skus[1]"));

    // Raw bodies: unknown fields and wrong types name the path; nothing internal leaks.
    let http = reqwest::Client::new();
    let token = net.operator.clone();
    for (body, field) in [
        (
            serde_json::json!({"spec": {"name": "x", "command": "true", "cards": 2}}),
            "spec.cards",
        ),
        (
            serde_json::json!({"spec": {"name": "x", "command": "true", "nodes": "two"}}),
            "spec.nodes",
        ),
        (
            serde_json::json!({"spec": {"name": "x", "command": "true", "walltime": "5x"}}),
            "spec.walltime",
        ),
        (serde_json::json!({"spec": {"name": "x"}}), "spec"),
    ] {
        let r = http
            .post(format!("{}/v1/jobs", net.url))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let e: suanli_proto::ApiError = r.json().await.unwrap();
        assert_eq!(e.code, ErrorCode::InvalidSpec);
        assert_eq!(e.field.as_deref(), Some(field), "{body}: {e}");
        assert!(!e.message.contains("line "), "{e}");
    }
    let r = http
        .post(format!("{}/v1/jobs", net.url))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // No center can ever hold 16 cards per node: rejected at once, with each center's reason.
    let mut s = JobSpec::new("huge", "true");
    s.cards_per_node = 16;
    let ClientError::Api(api) = a.submit(&s).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(api.code, ErrorCode::Unschedulable);
    assert_eq!(api.rejections.len(), 2);
    assert!(
        api.rejections.iter().all(|r| r.reason.contains("16")),
        "{api}"
    );

    // Unauthenticated and forbidden.
    let anon = net.client("sl_wrong");
    assert_eq!(
        anon.centers().await.unwrap_err().code(),
        Some(ErrorCode::Unauthenticated)
    );
    let spec = centers[0].clone();
    assert_eq!(
        a.register_center(&spec).await.unwrap_err().code(),
        Some(ErrorCode::Forbidden)
    );
    let doc: serde_json::Value = http
        .get(format!("{}/v1/openapi.json", net.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/jobs"]["post"].is_object());
    for (path, method) in [
        ("/v1/prices", "put"),
        ("/v1/programmes", "post"),
        ("/v1/programmes/{id}/grants", "post"),
        ("/v1/programmes/{id}/report", "get"),
        ("/v1/tenants/{id}/budget", "put"),
        ("/v1/bills", "get"),
        ("/v1/statements", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path}");
    }
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
}

/// A hub with tenant `t-a`, the center `c-cuda` of one node of `cards` RTX4090 cards and its
/// agent; and alice's client, a user of `t-a`.
async fn alice_at_one_center(cards: u32) -> (Net, suanli_client::Client) {
    let centers = [center("c-cuda", "RTX4090", 1, cards, "2.00")];
    let mut net = Net::new(&centers, &["t-a"]).await;
    let a = net.user("t-a", "alice").await;
    net.start_agents(vec![net.url.clone()]);
    (net, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_and_running_jobs() {
    let (mut net, a) = alice_at_one_center(1).await;
    let long = submit(&a, &JobSpec::new("long", "echo started; sleep 30")).await;
    let queued = submit(&a, &JobSpec::new("behind", "true")).await;
    // Wait for the first to run.
    wait_state(&a, long, JobState::Running, Duration::from_secs(20)).await;
    let v = a.job(queued).await.unwrap();
    assert_eq!(v.summary.state, JobState::Queued);
    assert!(
        v.summary.reason.unwrap().contains("RTX4090"),
        "explains why it waits"
    );
    assert_eq!(
        a.cancel(queued).await.unwrap().summary.state,
        JobState::Cancelled
    );
    assert_eq!(
        a.cancel(queued).await.unwrap_err().code(),
        Some(ErrorCode::Conflict)
    );
    assert_eq!(
        a.cancel(long).await.unwrap().summary.state,
        JobState::Cancelled
    );
    // The site stops it at the next heartbeat and the card is free again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let c = a.centers().await.unwrap();
        if c[0].pools[0].free_cards == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancelled job's card never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v = a.job(long).await.unwrap();
    assert_eq!(v.summary.state, JobState::Cancelled);
    assert!(v.card_seconds >= 1, "the cancelled attempt is metered");
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walltime_and_failures_end_in_the_right_state() {
    let (mut net, a) = alice_at_one_center(4).await;
    let mut slow = JobSpec::new("slow", "sleep 30");
    slow.walltime = 1;
    let slow = submit(&a, &slow).await;
    let bad = submit(&a, &JobSpec::new("bad", "exit 3")).await;
    let v = wait_terminal(&a, slow, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::TimedOut);
    let v = wait_terminal(&a, bad, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Failed);
    assert_eq!(v.summary.exit_code, Some(3));
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_keeps_every_acknowledged_job_and_ends_each_once() {
    let centers = cuda_and_ascend();
    let mut net = Net::new(&centers, &["t-a"]).await;
    let a_token = user_token(&net.op(), "t-a", "alice").await;
    // The second hub will listen here; agents and the client know both addresses.
    let second = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second_url = format!("http://{}", second.local_addr().unwrap());
    let hubs = vec![net.url.clone(), second_url.clone()];
    // The jobs append to one runs file outside their folders.
    net.isolation = Some(suanli_site::isolation::Isolation::None);
    net.start_agents(hubs.clone());
    let a = suanli_client::Client::new(hubs, &a_token);

    let shared = net.dir.path().join("runs.log");
    let mut ids = Vec::new();
    // Long enough (3 s) that the hub sees an attempt running while it still runs, even when
    // a loaded machine ships its start and end in one batch for shorter ones.
    for i in 0..40 {
        let mut s = logged_job(format!("r{i}"), &shared, "3");
        s.cards_per_node = 2;
        ids.push(submit(&a, &s).await);
    }
    // Stop the hub as a crash would, once the hub has seen attempts start and they still run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let running = loop {
        let jobs = a.jobs(&Default::default()).await.unwrap().jobs;
        let hub_running = jobs.iter().any(|j| j.state == JobState::Running);
        let unfinished = read_runs(&shared).unfinished();
        if hub_running && !unfinished.is_empty() {
            break unfinished;
        }
        assert!(tokio::time::Instant::now() < deadline, "no job ever ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    net.hub.take().unwrap().kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hub2 = suanli_hub::Hub::start(open(&net.db).await, net.cfg.clone(), second)
        .await
        .unwrap();

    let views = wait_all_ended(&a, std::time::Instant::now() + Duration::from_secs(120)).await;
    let runs = read_runs(&shared);
    let bill = a.bill(None, None).await.unwrap();
    check::assert_nothing_lost(&ids, &views, &runs, &bill, &centers);
    // The attempts that ran through the restart ran to their end, as the job's only attempt.
    for (id, attempt) in running {
        assert_eq!(attempt, 1);
        assert!(runs.ends.contains_key(&(id, 1)), "job {id} ran through");
    }
    net.stop_agents().await;
    hub2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_site_loses_its_lease_and_the_job_runs_elsewhere_with_a_new_attempt() {
    let centers = cheap_and_dear("s", 1);
    let mut net = Net::with_config(
        &centers,
        &["t-a"],
        suanli_hub::EngineConfig {
            lease_ttl: Duration::from_secs(2),
            offline_after: Duration::from_secs(2),
            tick: Duration::from_millis(100),
            core: Default::default(),
            reports: Default::default(),
        },
    )
    .await;
    let a = net.user("t-a", "alice").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let survivor = JobSpec::new("survivor", "sleep 2; echo attempt $SUANLI_ATTEMPT");
    let v = submit_running(&a, &survivor).await;
    let id = v.summary.id;
    assert_eq!(v.summary.center.unwrap().as_str(), "s-cheap");
    // The cheap center's agent dies without a word.
    net.crash_agent(0);
    let v = wait_terminal(&a, id, Duration::from_secs(60)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    assert_eq!(v.summary.attempt, 2);
    assert_eq!(v.summary.center.as_ref().unwrap().as_str(), "s-dear");
    assert!(
        v.history
            .iter()
            .any(|e| e.attempt == 1 && e.message.contains("lost")),
        "{:?}",
        v.history
    );
    assert_eq!(all_logs(&a, id).await, "attempt 2\n");
    // A late report from the dead attempt is fenced off.
    let late = EventKind::Started {
        at: suanli_types::Timestamp(0),
    };
    assert_stale(&net, "s-cheap", id, late).await;
    net.stop_agents().await;
}

/// The harness's own check: an agent task that panics fails the test that ran it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "a site agent's task panicked")]
async fn an_agent_task_that_panics_fails_its_test() {
    let mut net = Net::new(&[center("c", "RTX4090", 1, 1, "2.00")], &[]).await;
    // A token the hub does not know: the agent gives up with an error, which its task unwraps.
    net.site_tokens[0].1 = "sl_unknown".into();
    net.start_agents(vec![net.url.clone()]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_jobs_queue_cards_and_heartbeats() {
    let (mut net, a) = alice_at_one_center(4).await;
    let id = submit(&a, &JobSpec::new("m", "true")).await;
    wait_terminal(&a, id, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", net.url))
        .bearer_auth(&net.operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "suanli_jobs{state=\"succeeded\"} 1",
        "suanli_queue_depth 0",
        "suanli_cards{center=\"c-cuda\",sku=\"RTX4090\",status=\"free\"} 4",
        "suanli_agent_heartbeat_age_seconds{center=\"c-cuda\"}",
        "suanli_placement_latency_seconds_count 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_the_network_fails_queued_jobs_that_can_no_longer_fit() {
    let centers = [center("c", "RTX4090", 2, 4, "2.00")];
    let net = Net::new(&centers, &["t-a"]).await;
    let a = net.user("t-a", "alice").await;
    // No agents: the job stays queued.
    let mut s = JobSpec::new("gang", "true");
    s.nodes = 2;
    let id = submit(&a, &s).await;
    assert_eq!(a.job(id).await.unwrap().summary.state, JobState::Queued);
    let mut smaller = centers[0].clone();
    smaller.pools[0].nodes = 1;
    let r = net.op().register_center(&smaller).await.unwrap();
    assert!(
        r.site_token.is_none(),
        "a re-registration issues no new token"
    );
    let v = a.job(id).await.unwrap();
    assert_eq!(v.summary.state, JobState::Failed);
    assert!(v.summary.reason.unwrap().contains("needs 2 nodes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_attempt_keeps_its_cards_across_a_restart_until_its_lease_ends() {
    let centers = [center("c", "RTX4090", 1, 1, "2.00")];
    let cfg = suanli_hub::EngineConfig {
        lease_ttl: Duration::from_secs(3),
        offline_after: Duration::from_secs(30),
        tick: Duration::from_millis(100),
        core: Default::default(),
        reports: Default::default(),
    };
    let mut net = Net::with_config(&centers, &["t-a"], cfg).await;
    let a = net.user("t-a", "alice").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let id = submit_running(&a, &JobSpec::new("long", "sleep 30"))
        .await
        .summary
        .id;
    // The site goes silent, then the tenant cancels and the hub restarts.
    net.crash_agent(0);
    assert_eq!(
        a.cancel(id).await.unwrap().summary.state,
        JobState::Cancelled
    );
    net.restart_hub(true).await;
    let a = net.user("t-a", "alice2").await;
    let free = |c: Vec<suanli_proto::CenterView>| c[0].pools[0].free_cards;
    assert_eq!(
        free(a.centers().await.unwrap()),
        0,
        "the unconfirmed attempt still holds its card"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while free(a.centers().await.unwrap()) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "card never freed after the lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.job(id).await.unwrap().summary.state, JobState::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_service_work_preempts_spot_work_which_runs_again_later() {
    let centers = [center("c", "RTX4090", 1, 2, "2.00")];
    let mut net = Net::new(&centers, &["t-a", "t-gov"]).await;
    let a = net.user("t-a", "alice").await;
    let gov = net.user("t-gov", "clerk").await;
    net.allow_public_service("t-gov").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let mut spot = JobSpec::new("spot", "sleep 2; echo spot attempt $SUANLI_ATTEMPT");
    spot.priority = suanli_types::PriorityClass::Spot;
    spot.cards_per_node = 2;
    let spot = submit_running(&a, &spot).await.summary.id;
    // The scheduler never undoes a decision of the same pass; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut urgent = JobSpec::new("urgent", "echo urgent done");
    urgent.priority = suanli_types::PriorityClass::PublicService;
    urgent.cards_per_node = 2;
    let q = gov.quote(&urgent).await.unwrap();
    assert_eq!(q.candidates.len(), 1);
    assert!(
        q.candidates[0].expected_start > q.at,
        "busy until the spot job's wall time"
    );
    let urgent = submit(&gov, &urgent).await;
    let v = wait_terminal(&gov, urgent, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Succeeded);
    let v = wait_terminal(&a, spot, Duration::from_secs(60)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    assert_eq!(v.summary.attempt, 2, "{:?}", v.history);
    assert!(
        v.history.iter().any(|e| e.message.contains("preempted")),
        "{:?}",
        v.history
    );
    assert_eq!(all_logs(&a, spot).await, "spot attempt 2\n");
    // Both attempts are metered, the preempted one up to its preemption, each billed once.
    let inv = a.bill(None, None).await.unwrap();
    let attempts: Vec<(u32, bool)> = inv.lines.iter().map(|l| (l.attempt, l.spot)).collect();
    assert_eq!(attempts, vec![(1, true), (2, true)], "{inv:?}");
    let pre = &inv.lines[0];
    let preempted_at = v
        .history
        .iter()
        .find(|e| e.message.contains("preempted"))
        .unwrap()
        .at;
    assert!(
        pre.ended_at == preempted_at && pre.card_seconds > 0,
        "{pre:?}"
    );
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_quotas_and_weights_are_set_by_the_operator_and_enforced() {
    use suanli_proto::{QuotaView, TenantPolicyView};
    let centers = [center("c", "RTX4090", 1, 4, "2.00")];
    let mut net = Net::new(&centers, &["t-a"]).await;
    let a = net.user("t-a", "alice").await;
    let op = net.op();
    let mut policy = TenantPolicyView {
        weight: 2,
        quotas: Default::default(),
        public_service: false,
    };
    policy.quotas.insert(
        "nvidia".into(),
        QuotaView {
            nominal: 1,
            borrow_limit: 1,
        },
    );
    assert_eq!(
        a.set_tenant_policy("t-a", &policy)
            .await
            .unwrap_err()
            .code(),
        Some(ErrorCode::Forbidden)
    );
    let mut bad = policy.clone();
    bad.quotas.insert(
        "intel".into(),
        QuotaView {
            nominal: 1,
            borrow_limit: 0,
        },
    );
    let ClientError::Api(e) = op.set_tenant_policy("t-a", &bad).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.field.as_deref(), Some("quotas.intel"));
    assert_eq!(op.set_tenant_policy("t-a", &policy).await.unwrap(), policy);
    assert_eq!(
        a.tenant_policy("t-a").await.unwrap(),
        policy,
        "a tenant reads its own policy"
    );

    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(submit(&a, &JobSpec::new(format!("q{i}"), "sleep 1")).await);
    }
    // Two cards may run (one nominal, one borrowed) though four are free.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let jobs = a.jobs(&Default::default()).await.unwrap().jobs;
    assert_eq!(jobs.iter().filter(|j| j.state.is_active()).count(), 2);
    let waiting = jobs
        .iter()
        .find(|j| j.state == JobState::Queued)
        .expect("one waits");
    let why = a
        .job(waiting.id)
        .await
        .unwrap()
        .summary
        .reason
        .unwrap_or_default();
    assert!(why.contains("nvidia quota"), "{why}");
    for id in &ids {
        wait_terminal(&a, *id, Duration::from_secs(30)).await;
    }
    // The policy survives a hub restart.
    net.restart_hub(false).await;
    assert_eq!(net.op().tenant_policy("t-a").await.unwrap(), policy);
    net.stop_agents().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_submit_with_the_same_idempotency_key_creates_one_job() {
    let centers = [center("i-cuda", "RTX4090", 1, 1, "2.00")];
    let net = Net::new(&centers, &["t-a", "t-b"]).await;
    let a = net.user("t-a", "alice").await;
    let b = net.user("t-b", "bob").await;
    let spec = JobSpec::new("once", "true");
    let first = a.submit_with_key(&spec, "retry-me-1").await.unwrap();
    let again = a.submit_with_key(&spec, "retry-me-1").await.unwrap();
    assert_eq!(again.summary.id, first.summary.id);
    // Another tenant's key space is its own.
    let other = b.submit_with_key(&spec, "retry-me-1").await.unwrap();
    assert_ne!(other.summary.id, first.summary.id);
    // The same key for another job is a conflict, not a silent reuse.
    let err = a
        .submit_with_key(&JobSpec::new("other", "false"), "retry-me-1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict), "{err}");
    assert!(err.to_string().contains("retry-me-1"), "{err}");
    // Plain submits get a fresh key each: two submits, two jobs.
    let x = submit(&a, &spec).await;
    let y = submit(&a, &spec).await;
    assert_ne!(x, y);

    // On the wire: 201 when created, 200 when replayed; a malformed key is a 400.
    let http = reqwest::Client::new();
    let post = |key: &str| {
        http.post(format!("{}/v1/jobs", net.url))
            .bearer_auth(&net.operator)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({"spec": {"name": "w", "command": "true", "tenant": "t-a"}}))
            .send()
    };
    assert_eq!(post("wire-1").await.unwrap().status().as_u16(), 201);
    assert_eq!(post("wire-1").await.unwrap().status().as_u16(), 200);
    let r = post("has space").await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let e: suanli_proto::ApiError = r.json().await.unwrap();
    assert!(e.message.contains("Idempotency-Key"), "{e}");
    let jobs = a
        .jobs(&suanli_client::JobFilter::default())
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 4, "once, x, y and w: {jobs:?}");
}

use std::path::Path;

use suanli_proto::{NodeCards, Stream};
use suanli_types::{JobId, JobSpec, TenantId, Timestamp};

use std::sync::Mutex;

use suanli_client::ClientError;
use suanli_proto::{
    AgentEvent, Assignment, AttemptRef, EventKind, Heartbeat, HeartbeatReply, NodeInventory,
    Outcome,
};
use tokio::time::Instant;

use super::attempts::accept;
use super::heartbeat::{HeartbeatPost, fence_after, heartbeat_timeout};
use super::*;
use crate::backend::{BoxFuture, Launch, RunResult, StopSignal};
use crate::inventory::tests::center;
use crate::local::LocalBackend;
use crate::logs::LogSink;
use crate::supervisor::Supervised;

/// Echoes the visible-devices variable, or waits for a stop.
struct FakeBackend;

impl Runner for FakeBackend {
    fn run(
        &self,
        launch: Launch,
        mut logs: LogSink,
        mut stop: StopSignal,
    ) -> BoxFuture<'_, RunResult> {
        Box::pin(async move {
            if launch.spec.command == "wait" {
                let reason = stop.requested().await;
                return RunResult {
                    outcome: Outcome::Killed,
                    exit_code: None,
                    message: reason,
                    log_chunks: logs.emitted(),
                    span: None,
                };
            }
            logs.emit(Stream::Stdout, launch.env["CUDA_VISIBLE_DEVICES"].clone());
            RunResult {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                message: String::new(),
                log_chunks: logs.emitted(),
                // As a cluster manager that measured the run itself: 10 s.
                span: (launch.spec.command == "spanned")
                    .then_some((Timestamp(1_000), Timestamp(11_000))),
            }
        })
    }
}

fn ctx(dir: &Path, drain: bool) -> Arc<Ctx> {
    let c = center(&[("RTX4090", 2, 4)]);
    Arc::new(Ctx {
        config: AgentConfig::new(vec!["http://127.0.0.1:9".into()], "t".into(), dir.into()),
        shared: Arc::new(Shared::new(&c, drain, suanli_proto::PROTOCOL_VERSION)),
        backend: Arc::new(FakeBackend),
        client: Arc::new(suanli_client::Client::new(
            vec!["http://127.0.0.1:9".into()],
            "t",
        )),
    })
}

fn assignment(job: i64, command: &str, nodes: &[(&str, u32)]) -> Assignment {
    let mut spec = JobSpec::new("t", command);
    spec.cards_per_node = nodes[0].1;
    spec.nodes = nodes.len() as u32;
    Assignment {
        job: JobId(job),
        attempt: 1,
        tenant: TenantId::new("demo"),
        spec,
        sku: "RTX4090".into(),
        nodes: nodes
            .iter()
            .map(|&(node, cards)| NodeCards {
                node: node.into(),
                cards,
            })
            .collect(),
        lease_expires_at: Timestamp(0),
        datasets: Vec::new(),
    }
}

async fn events_until_finished(
    rx: &mut mpsc::UnboundedReceiver<AgentEvent>,
    job: i64,
) -> Vec<EventKind> {
    let mut out = Vec::new();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.job, JobId(job));
        let done = matches!(e.kind, EventKind::Finished { .. });
        out.push(e.kind);
        if done {
            return out;
        }
    }
}

/// The outcome and message of job `job`'s attempt, which sends nothing but its `Finished`.
async fn only_finished(
    rx: &mut mpsc::UnboundedReceiver<AgentEvent>,
    job: i64,
) -> (Outcome, String) {
    let events = events_until_finished(rx, job).await;
    match &events[..] {
        [
            EventKind::Finished {
                outcome, message, ..
            },
        ] => (*outcome, message.clone()),
        _ => panic!("{events:?}"),
    }
}

#[tokio::test]
async fn runs_each_assignment_once_and_frees_its_cards() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = assignment(1, "echo", &[("rtx4090-0", 2), ("rtx4090-1", 2)]);
    assert!(accept(&ctx, a.clone(), &tx));
    assert!(!accept(&ctx, a, &tx), "same attempt offered again");
    let events = events_until_finished(&mut rx, 1).await;
    assert!(matches!(events[0], EventKind::Started { .. }));
    assert_eq!(
        events[1],
        EventKind::Log {
            seq: 0,
            stream: Stream::Stdout,
            data: "0,1".into()
        }
    );
    let EventKind::Finished {
        outcome,
        log_chunks,
        started_at,
        ended_at,
        card_seconds,
        ..
    } = events[2].clone()
    else {
        panic!("{events:?}");
    };
    assert_eq!((outcome, log_chunks), (Outcome::Succeeded, 1));
    assert!(ended_at >= started_at);
    assert_eq!(
        card_seconds,
        crate::env::card_seconds(ended_at.millis_since(started_at), 4)
    );
    let hb = ctx.shared.heartbeat();
    assert!(hb.running.is_empty());
    assert!(hb.inventory.iter().all(|n| n.free_cards == 4));
    assert_eq!(*ctx.shared.running_count.borrow(), 0);
}

#[tokio::test]
async fn meters_from_the_backends_own_times() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert!(accept(
        &ctx,
        assignment(5, "spanned", &[("rtx4090-0", 3)]),
        &tx
    ));
    let events = events_until_finished(&mut rx, 5).await;
    let Some(EventKind::Finished {
        started_at,
        ended_at,
        card_seconds,
        ..
    }) = events.last().cloned()
    else {
        panic!("{events:?}");
    };
    assert_eq!(
        (started_at, ended_at),
        (Timestamp(1_000), Timestamp(11_000))
    );
    assert_eq!(card_seconds, 30);
}

#[tokio::test]
async fn heartbeat_reports_the_cluster_managers_inventory_when_it_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), false);
    assert_eq!(ctx.shared.heartbeat().inventory.len(), 2);
    // The fake backend has no view of its own: the loop ends at once.
    tokio::time::timeout(
        Duration::from_secs(1),
        inventory_loop(
            ctx.backend.clone(),
            ctx.shared.clone(),
            Duration::from_secs(60),
        ),
    )
    .await
    .unwrap();
    ctx.shared.lock().reported = Some(vec![NodeInventory {
        node: "n1".into(),
        sku: "RTX4090".into(),
        cards: 2,
        free_cards: 1,
    }]);
    let hb = ctx.shared.heartbeat();
    assert_eq!(hb.inventory.len(), 1);
    assert_eq!(hb.inventory[0].node, "n1");
}

#[tokio::test]
async fn refuses_what_does_not_fit_and_kills_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert!(accept(
        &ctx,
        assignment(1, "wait", &[("rtx4090-0", 3)]),
        &tx
    ));
    assert!(matches!(
        rx.recv().await.unwrap().kind,
        EventKind::Started { .. }
    ));
    let hb = ctx.shared.heartbeat();
    assert_eq!(hb.agent_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        hb.running,
        [AttemptRef {
            job: JobId(1),
            attempt: 1
        }]
    );
    assert_eq!(hb.inventory[0].free_cards, 1);

    for (job, sku, node, cards) in [
        (2, "RTX4090", "rtx4090-0", 2),
        (3, "RTX4090", "rtx4090-9", 1),
        (4, "H100-SXM", "rtx4090-1", 1),
    ] {
        let mut a = assignment(job, "echo", &[(node, cards)]);
        a.sku = sku.into();
        assert!(accept(&ctx, a, &tx));
        let (outcome, message) = only_finished(&mut rx, job).await;
        assert_eq!(outcome, Outcome::Killed, "the hub requeues it");
        assert!(message.starts_with("refused by the site: "), "{message}");
        assert!(message.contains(node), "{message}");
    }

    let r = AttemptRef {
        job: JobId(1),
        attempt: 1,
    };
    assert!(ctx.shared.stop(r, HUB_KILL_MESSAGE));
    assert_eq!(
        only_finished(&mut rx, 1).await,
        (Outcome::Killed, HUB_KILL_MESSAGE.to_string())
    );
    ctx.shared.wait_idle().await;
    assert!(!ctx.shared.stop(r, HUB_KILL_MESSAGE));
}

/// Answers heartbeats with a 2 s lease while `up`; otherwise fails them, or (`silent`) never
/// answers, as when packets are silently lost.
#[derive(Default)]
struct TestHub {
    up: std::sync::atomic::AtomicBool,
    silent: bool,
    posts: std::sync::atomic::AtomicUsize,
    last_ok: Mutex<Option<Instant>>,
}

impl HeartbeatPost for TestHub {
    fn post_heartbeat(&self, hb: Heartbeat) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>> {
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(hb.protocol, suanli_proto::PROTOCOL_VERSION);
        self.posts.fetch_add(1, SeqCst);
        if self.up.load(SeqCst) {
            *self.last_ok.lock().unwrap() = Some(Instant::now());
            return Box::pin(async {
                Ok(HeartbeatReply {
                    kill: Vec::new(),
                    lease_ttl_secs: 2,
                })
            });
        }
        if self.silent {
            return Box::pin(std::future::pending());
        }
        Box::pin(async {
            Err(ClientError::Api(suanli_proto::ApiError::new(
                suanli_proto::ErrorCode::Unavailable,
                "down",
            )))
        })
    }
}

#[test]
fn fence_deadline() {
    let s = Duration::from_secs;
    assert_eq!(fence_after(s(60), s(5)), s(55));
    assert_eq!(fence_after(s(60), Duration::from_millis(200)), s(59));
    assert_eq!(fence_after(s(2), Duration::from_millis(200)), s(1));
    assert_eq!(fence_after(s(8), s(5)), s(4));
}

#[tokio::test]
async fn fences_itself_when_heartbeats_fail_past_the_lease() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let c = center(&[("RTX4090", 2, 4)]);
    let ctx = Arc::new(Ctx {
        config: AgentConfig::new(
            vec!["http://127.0.0.1:9".into()],
            "t".into(),
            dir.path().into(),
        ),
        shared: Arc::new(Shared::new(&c, false, suanli_proto::PROTOCOL_VERSION)),
        backend: Arc::new(Supervised::new(
            LocalBackend::unisolated(),
            Duration::from_secs(1),
        )),
        client: Arc::new(suanli_client::Client::new(
            vec!["http://127.0.0.1:9".into()],
            "t",
        )),
    });
    let hub = Arc::new(TestHub::default());
    hub.up.store(true, SeqCst);
    let beats = tokio::spawn(heartbeat_loop(
        hub.clone(),
        ctx.shared.clone(),
        Duration::from_millis(200),
        Arc::new(Notify::new()),
    ));
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert!(accept(
        &ctx,
        assignment(1, "sleep 30", &[("rtx4090-0", 1)]),
        &tx
    ));
    assert!(matches!(
        rx.recv().await.unwrap().kind,
        EventKind::Started { .. }
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.up.store(false, SeqCst);

    let finished = only_finished(&mut rx, 1).await;
    let since_ok = hub.last_ok.lock().unwrap().unwrap().elapsed();
    assert_eq!(finished, (Outcome::Killed, FENCE_MESSAGE.to_string()));
    // Fenced 1 s after the last good heartbeat: before the hub's 2 s lease runs out.
    assert!(
        since_ok > Duration::from_millis(900) && since_ok < Duration::from_secs(2),
        "{since_ok:?}"
    );
    ctx.shared.wait_idle().await;
    assert!(!accept(
        &ctx,
        assignment(2, "true", &[("rtx4090-0", 1)]),
        &tx
    ));
    assert!(rx.try_recv().is_err(), "no new work while fenced");

    hub.up.store(true, SeqCst);
    tokio::time::timeout(Duration::from_secs(2), async {
        while ctx.shared.is_fenced() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(accept(
        &ctx,
        assignment(2, "true", &[("rtx4090-0", 1)]),
        &tx
    ));
    let events = events_until_finished(&mut rx, 2).await;
    assert!(matches!(
        events.last(),
        Some(EventKind::Finished {
            outcome: Outcome::Succeeded,
            ..
        })
    ));
    beats.abort();
}

#[tokio::test(start_paused = true)]
async fn unanswered_heartbeats_are_abandoned_and_a_healed_hub_is_heard_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let c = center(&[("RTX4090", 1, 1)]);
    let shared = Arc::new(Shared::new(&c, false, suanli_proto::PROTOCOL_VERSION));
    let hub = Arc::new(TestHub {
        silent: true,
        ..TestHub::default()
    });
    hub.up.store(true, SeqCst);
    let every = Duration::from_millis(200);
    let beats = tokio::spawn(heartbeat_loop(
        hub.clone(),
        shared.clone(),
        every,
        Arc::new(Notify::new()),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!shared.is_fenced());
    hub.up.store(false, SeqCst);
    // The 2 s lease less 1 s: fenced by 1 s after the last answer, and heartbeats keep going
    // out (each abandoned after 5 s at most) instead of one hanging forever.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert!(shared.is_fenced());
    let before = hub.posts.load(SeqCst);
    tokio::time::sleep(Duration::from_secs(12)).await;
    let during = hub.posts.load(SeqCst) - before;
    assert!(during >= 2, "only {during} heartbeats in 12 s of silence");
    // Healed: the next fresh heartbeat is answered within the timeout plus an interval.
    hub.up.store(true, SeqCst);
    tokio::time::sleep(heartbeat_timeout(every) + every * 2).await;
    assert!(
        !shared.is_fenced(),
        "still fenced after the hub answers again"
    );
    beats.abort();
}

#[tokio::test]
async fn draining_takes_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx(dir.path(), true);
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert!(!accept(
        &ctx,
        assignment(1, "echo", &[("rtx4090-0", 1)]),
        &tx
    ));
    assert!(rx.try_recv().is_err());
    assert!(ctx.shared.heartbeat().draining);
}

#[tokio::test]
async fn run_agent_checks_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let c = AgentConfig::new(vec![" ".into()], "t".into(), dir.path().into());
    assert!(matches!(
        run_agent(c, async {}).await,
        Err(SiteError::Config(_))
    ));
    // An unreachable hub is retried until shutdown.
    let c = AgentConfig::new(
        vec!["http://127.0.0.1:9".into()],
        "t".into(),
        dir.path().join("w"),
    );
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        run_agent(c, tokio::time::sleep(Duration::from_millis(300))),
    )
    .await
    .unwrap();
    assert!(r.is_ok());
    assert!(dir.path().join("w").is_dir());
}

//! The agent's tasks: heartbeat, assignment long-poll, attempt runners, event shipper, and the
//! shutdown sequence that ties them together.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use suanli_client::{Client, ClientError};
use suanli_proto::{
    AgentEvent, Assignment, AttemptRef, EventKind, Heartbeat, HeartbeatReply, NodeInventory,
    Outcome,
};
use suanli_types::{BackendKind, CenterSpec};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{Backend, BoxFuture, Launch, RunResult, StopHandle, StopSignal, stop_channel};
use crate::env::{attempt_dir, build_env, card_seconds};
use crate::inventory::{Inventory, ReserveError, ReservedNode};
use crate::k8s::KubeBackend;
use crate::local::LocalBackend;
use crate::logs::{LogSink, Outbox};
use crate::shipper::Shipper;
use crate::slurm::SlurmBackend;
use crate::{AgentConfig, Backoff, SiteError, now};

/// Reason given to attempts killed because the agent stops.
const STOPPED_MESSAGE: &str = "site agent stopped";
const HUB_KILL_MESSAGE: &str = "killed at the hub's request";
const STALE_MESSAGE: &str = "the hub says this attempt is no longer current";
/// Reason given to attempts stopped because no heartbeat reached the hub within its lease.
const FENCE_MESSAGE: &str = "lost contact with the hub for longer than its lease";
/// The lease assumed before the first heartbeat reply.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Extra time, beyond the kill grace, for killed attempts to end on shutdown.
const SHUTDOWN_KILL_SLACK: Duration = Duration::from_secs(5);
/// How long the last events may take to ship on shutdown.
const SHUTDOWN_SHIP_TIMEOUT: Duration = Duration::from_secs(5);
const DRAIN_SHIP_TIMEOUT: Duration = Duration::from_secs(30);
/// Least time between two assignment polls that brought nothing new.
const MIN_POLL_PERIOD: Duration = Duration::from_millis(250);

struct State {
    inventory: Inventory,
    running: BTreeMap<AttemptRef, StopHandle>,
    /// Every attempt this agent has started or refused; the hub offers an assignment again until
    /// its `Started` is recorded.
    seen: HashSet<AttemptRef>,
    draining: bool,
    /// No heartbeat reached the hub within its lease: running attempts were stopped and no new work
    /// is taken until a heartbeat succeeds.
    fenced: bool,
    /// The nodes as the backend's cluster manager reports them (Slurm); the heartbeat sends these
    /// instead of the registered pools when set.
    reported: Option<Vec<NodeInventory>>,
}

/// State shared by the agent's tasks.
struct Shared {
    state: Mutex<State>,
    running_count: watch::Sender<usize>,
    stacks: BTreeMap<String, String>,
}

impl Shared {
    fn new(center: &CenterSpec, draining: bool) -> Shared {
        Shared {
            state: Mutex::new(State {
                inventory: Inventory::from_center(center),
                running: BTreeMap::new(),
                seen: HashSet::new(),
                draining,
                fenced: false,
                reported: None,
            }),
            running_count: watch::Sender::new(0),
            stacks: center.stacks.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks a running attempt to stop; `false` if it is not running here.
    fn stop(&self, r: AttemptRef, reason: &str) -> bool {
        match self.lock().running.get(&r) {
            Some(h) => {
                if h.stop(reason) {
                    tracing::info!(job = %r.job, attempt = r.attempt, reason, "stopping attempt");
                }
                true
            }
            None => false,
        }
    }

    fn stop_all(&self, reason: &str) {
        let st = self.lock();
        for (r, h) in &st.running {
            if h.stop(reason) {
                tracing::info!(job = %r.job, attempt = r.attempt, reason, "stopping attempt");
            }
        }
    }

    fn set_draining(&self) {
        self.lock().draining = true;
    }

    fn takes_work(&self) -> bool {
        let st = self.lock();
        !st.draining && !st.fenced
    }

    fn is_fenced(&self) -> bool {
        self.lock().fenced
    }

    /// Stops every running attempt and takes no new work until [`Shared::unfence`]; `false` if it
    /// was already fenced.
    fn fence(&self) -> bool {
        if std::mem::replace(&mut self.lock().fenced, true) {
            return false;
        }
        self.stop_all(FENCE_MESSAGE);
        true
    }

    /// Takes work again; `false` if it was not fenced.
    fn unfence(&self) -> bool {
        std::mem::replace(&mut self.lock().fenced, false)
    }

    fn heartbeat(&self) -> Heartbeat {
        let st = self.lock();
        Heartbeat {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            inventory: st
                .reported
                .clone()
                .unwrap_or_else(|| st.inventory.snapshot()),
            stacks: self.stacks.clone(),
            running: st.running.keys().copied().collect(),
            draining: st.draining,
        }
    }

    /// Frees the attempt's cards, forgets it, and queues its `Finished` in one step, so that a
    /// heartbeat never sees the cards free while the attempt is still listed as running.
    fn finish(
        &self,
        r: AttemptRef,
        reserved: &[ReservedNode],
        finished: AgentEvent,
        outbox: &Outbox,
    ) {
        let mut st = self.lock();
        st.inventory.release(reserved);
        st.running.remove(&r);
        self.running_count.send_replace(st.running.len());
        let _ = outbox.send(finished);
    }

    async fn wait_idle(&self) {
        let mut rx = self.running_count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// What attempt runners need.
struct Ctx {
    config: AgentConfig,
    shared: Arc<Shared>,
    backend: Arc<dyn Backend>,
}

/// Runs the site agent until `shutdown` resolves.
///
/// On shutdown it stops taking work. Without `config.drain` it kills running attempts (reported as
/// `Killed`, "site agent stopped") and ships what it can within a short timeout; with `drain` it
/// keeps heartbeating until running attempts have finished and their events are shipped.
pub async fn run_agent(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SiteError> {
    let hubs: Vec<String> = config
        .hubs
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if hubs.is_empty() {
        return Err(SiteError::Config("no hub URL given".into()));
    }
    if config.heartbeat_interval.is_zero() {
        return Err(SiteError::Config(
            "the heartbeat interval must be positive".into(),
        ));
    }
    let mut config = config;
    let work_err = |source| SiteError::WorkDir {
        path: config.work_dir.clone(),
        source,
    };
    tokio::fs::create_dir_all(&config.work_dir)
        .await
        .map_err(work_err)?;
    let work_dir = std::path::absolute(&config.work_dir).map_err(work_err)?;
    config.work_dir = work_dir;

    let client = Arc::new(Client::new(hubs, config.token.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    let center = tokio::select! {
        r = fetch_center(&client) => r?,
        () = &mut shutdown => {
            tracing::info!("site agent stopped before it reached the hub");
            return Ok(());
        }
    };

    let shared = Arc::new(Shared::new(&center, config.drain));
    let backend = tokio::select! {
        b = backend_for(&center, &config) => b,
        () = &mut shutdown => {
            tracing::info!("site agent stopped before its backend was ready");
            return Ok(());
        }
    };
    tracing::info!(
        center = %center.id,
        nodes = shared.lock().inventory.node_names().len(),
        cards = center.total_cards(),
        backend = backend.name(),
        work_dir = %config.work_dir.display(),
        draining = config.drain,
        "site agent started"
    );
    let drain = config.drain;
    let kill_grace = config.kill_grace;
    let ctx = Arc::new(Ctx {
        config,
        shared: shared.clone(),
        backend,
    });

    let (outbox, rx) = mpsc::unbounded_channel();
    let stale_target = shared.clone();
    let shipper = tokio::spawn(
        Shipper::new(
            client.clone(),
            Box::new(move |r| {
                stale_target.stop(r, STALE_MESSAGE);
            }),
            Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
        )
        .run(rx),
    );
    let wake = Arc::new(Notify::new());
    let heartbeat = tokio::spawn(heartbeat_loop(
        client.clone(),
        shared.clone(),
        ctx.config.heartbeat_interval,
        wake.clone(),
    ));
    let poller = tokio::spawn(poll_loop(client.clone(), ctx.clone(), outbox.clone()));
    let inventory = tokio::spawn(inventory_loop(
        ctx.backend.clone(),
        shared.clone(),
        ctx.config.heartbeat_interval.max(INVENTORY_MIN_PERIOD),
    ));

    shutdown.await;

    tracing::info!(drain, "site agent stopping");
    shared.set_draining();
    poller.abort();
    let _ = poller.await;
    wake.notify_one();
    if drain {
        let n = *shared.running_count.borrow();
        if n > 0 {
            tracing::info!(
                running = n,
                "draining: waiting for running attempts to finish"
            );
        }
        shared.wait_idle().await;
    } else {
        shared.stop_all(STOPPED_MESSAGE);
        if tokio::time::timeout(kill_grace + SHUTDOWN_KILL_SLACK, shared.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!("some attempts did not end in time");
        }
    }
    heartbeat.abort();
    inventory.abort();
    drop(outbox);
    drop(ctx);
    let ship_timeout = if drain {
        DRAIN_SHIP_TIMEOUT
    } else {
        SHUTDOWN_SHIP_TIMEOUT
    };
    let abort = shipper.abort_handle();
    if tokio::time::timeout(ship_timeout, shipper).await.is_err() {
        abort.abort();
        tracing::warn!("could not ship the last events to the hub before stopping");
    }
    tracing::info!("site agent stopped");
    Ok(())
}

/// The center definition, retried while the hub is unreachable.
async fn fetch_center(client: &Client) -> Result<CenterSpec, SiteError> {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut failures = 0u32;
    loop {
        match client.site_config().await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_transient() => {
                failures += 1;
                let delay = backoff.next_delay();
                if failures == 1 {
                    tracing::warn!(error = %e, "cannot reach the hub; retrying");
                } else {
                    tracing::debug!(error = %e, ?delay, "hub still unreachable");
                }
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(SiteError::Hub(e)),
        }
    }
}

/// The backend for the center's registered kind: local processes, Slurm (configured by
/// `config.slurm`, then `SUANLI_SLURM_*`; started with its checks, see [`SlurmBackend::startup`]),
/// or Kubernetes (`config.kube`, then `SUANLI_K8S_*`; see [`KubeBackend::startup`]).
async fn backend_for(center: &CenterSpec, config: &AgentConfig) -> Arc<dyn Backend> {
    match center.backend {
        BackendKind::Local => {
            // Attempts an earlier run of this agent left behind (it was killed) must not run on:
            // the hub has requeued them, and their reports would be fenced anyway.
            let swept = crate::local::sweep_leftovers(&config.work_dir).await;
            if swept > 0 {
                tracing::warn!(
                    swept,
                    "killed attempts left running by an earlier run of this agent"
                );
            }
            Arc::new(LocalBackend::new(config.kill_grace))
        }
        BackendKind::Slurm => {
            let b = SlurmBackend::new(config.slurm.clone().with_env(), center, config.kill_grace);
            // Before any job of this run is submitted (the orphan sweep must not see them), and
            // bounded, so that an unreachable Slurm does not keep the center offline.
            if tokio::time::timeout(SLURM_STARTUP_WAIT, b.startup(center))
                .await
                .is_err()
            {
                tracing::warn!(
                    "Slurm did not answer the startup checks in time; going on without them"
                );
            }
            Arc::new(b)
        }
        BackendKind::Kubernetes => {
            let b = KubeBackend::new(config.kube.clone().with_env(), center, config.kill_grace);
            // Before any job of this run is created (the orphan sweep must not see them), and bounded.
            if tokio::time::timeout(KUBE_STARTUP_WAIT, b.startup())
                .await
                .is_err()
            {
                tracing::warn!(
                    "Kubernetes did not answer the startup checks in time; going on without them"
                );
            }
            Arc::new(b)
        }
    }
}

/// Longest wait for the Slurm backend's startup checks.
const SLURM_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Longest wait for the Kubernetes backend's startup sweep.
const KUBE_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Least time between two inventory reads from the cluster manager.
const INVENTORY_MIN_PERIOD: Duration = Duration::from_secs(5);

/// Keeps the heartbeat's inventory to what the backend's cluster manager reports; ends at once for
/// a backend without a view of its own. A failed read keeps the last known inventory.
async fn inventory_loop(backend: Arc<dyn Backend>, shared: Arc<Shared>, every: Duration) {
    let mut failing = false;
    loop {
        match backend.inventory().await {
            None => return,
            Some(Ok(nodes)) => {
                if failing {
                    tracing::info!("the cluster manager's inventory can be read again");
                    failing = false;
                }
                shared.lock().reported = Some(nodes);
            }
            Some(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the cluster manager's inventory; the heartbeat keeps the last one");
                    failing = true;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Where heartbeats go (the hub client; a fake in tests).
trait HeartbeatPost: Send + Sync + 'static {
    fn post_heartbeat(&self, hb: Heartbeat) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>>;
}

impl HeartbeatPost for Client {
    fn post_heartbeat(&self, hb: Heartbeat) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>> {
        Box::pin(async move { self.heartbeat(&hb).await })
    }
}

/// How long after sending the last successful heartbeat the agent fences itself: the lease less one
/// heartbeat interval (at least 1 s), never less than half the lease.
fn fence_after(lease: Duration, every: Duration) -> Duration {
    lease
        .saturating_sub(every.max(Duration::from_secs(1)))
        .max(lease / 2)
}

/// How long one heartbeat may wait for its answer.
fn heartbeat_timeout(every: Duration) -> Duration {
    (every * 3).max(Duration::from_secs(5))
}

/// Fences the agent, warning once per loss of contact.
fn fence(shared: &Shared, lease: Duration) {
    if shared.fence() {
        tracing::warn!(
            lease_secs = lease.as_secs(),
            "no heartbeat reached the hub within its lease: stopped every running attempt; \
             taking no new work until a heartbeat succeeds"
        );
    }
}

/// Heartbeats every `every` (or when woken), stops what the hub says to stop, and fences the agent
/// (see [`Shared::fence`]) once no heartbeat has succeeded for [`fence_after`] the hub's lease.
async fn heartbeat_loop<H: HeartbeatPost>(
    hub: Arc<H>,
    shared: Arc<Shared>,
    every: Duration,
    wake: Arc<Notify>,
) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    // When the last successful heartbeat was sent (the hub renewed the lease after that), and the
    // lease its reply gave.
    let mut last_ok = Instant::now();
    let mut lease = DEFAULT_LEASE;
    loop {
        // The deadline is watched while heartbeats fail, and while one sent before it is in flight.
        let fence_at = last_ok + fence_after(lease, every);
        tokio::select! {
            _ = interval.tick() => {}
            () = wake.notified() => {}
            () = tokio::time::sleep_until(fence_at), if failing && !shared.is_fenced() => {
                fence(&shared, lease);
                continue;
            }
        }
        let sent = Instant::now();
        let req = hub.post_heartbeat(shared.heartbeat());
        // A heartbeat gets a bounded wait, and never past the fence deadline: on a connection
        // whose packets silently vanish, TCP may take minutes to fail, so an unanswered heartbeat
        // is abandoned and a fresh one (on a fresh connection) goes out at the next tick.
        let give_up = sent + heartbeat_timeout(every);
        let give_up = if sent < fence_at {
            give_up.min(fence_at)
        } else {
            give_up
        };
        let Ok(res) = tokio::time::timeout_at(give_up, req).await else {
            if Instant::now() >= fence_at {
                fence(&shared, lease);
            }
            if !failing {
                tracing::warn!(
                    waited_ms = sent.elapsed().as_millis() as u64,
                    "heartbeat got no answer; sending a fresh one (running jobs continue within \
                     the hub's lease)"
                );
                failing = true;
            }
            continue;
        };
        match res {
            Ok(reply) => {
                last_ok = sent;
                lease = Duration::from_secs(reply.lease_ttl_secs);
                if failing {
                    tracing::info!("heartbeats reach the hub again");
                    failing = false;
                }
                if shared.unfence() {
                    tracing::info!("taking new work again");
                }
                for r in reply.kill {
                    if !shared.stop(r, HUB_KILL_MESSAGE) {
                        tracing::debug!(job = %r.job, attempt = r.attempt, "hub asked to kill an attempt that is not running here");
                    }
                }
            }
            Err(e) => {
                if !failing {
                    if e.is_transient() {
                        tracing::warn!(error = %e, "heartbeat failed; running jobs continue within the hub's lease");
                    } else {
                        tracing::error!(error = %e, "hub refused the heartbeat");
                    }
                    failing = true;
                } else {
                    tracing::debug!(error = %e, "heartbeat failed again");
                }
            }
        }
    }
}

async fn poll_loop(client: Arc<Client>, ctx: Arc<Ctx>, outbox: Outbox) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        if !ctx.shared.takes_work() {
            tokio::time::sleep(ctx.config.heartbeat_interval).await;
            continue;
        }
        let began = Instant::now();
        match client.assignments(ctx.config.poll_wait_secs).await {
            Ok(list) => {
                backoff.reset();
                for r in list.kill {
                    ctx.shared.stop(r, HUB_KILL_MESSAGE);
                }
                let mut new = 0;
                for a in list.assignments {
                    if accept(&ctx, a, &outbox) {
                        new += 1;
                    }
                }
                if new == 0 {
                    tokio::time::sleep_until(began + MIN_POLL_PERIOD).await;
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if e.is_transient() {
                    tracing::warn!(error = %e, ?delay, "polling for assignments failed");
                } else {
                    tracing::error!(error = %e, ?delay, "hub refused the assignment poll");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Handles one assignment: ignores one already seen (or any while draining or fenced), refuses one
/// whose cards are not free here (reported as `Killed`, so that the hub requeues the job), starts the
/// rest. Returns whether it was new.
fn accept(ctx: &Arc<Ctx>, a: Assignment, outbox: &Outbox) -> bool {
    let r = AttemptRef {
        job: a.job,
        attempt: a.attempt,
    };
    let (reserved, stop) = {
        let mut st = ctx.shared.lock();
        if st.draining || st.fenced || st.seen.contains(&r) {
            return false;
        }
        st.seen.insert(r);
        match st.inventory.reserve(&a.sku, &a.nodes) {
            Ok(reserved) => {
                let (handle, signal) = stop_channel();
                st.running.insert(r, handle);
                ctx.shared.running_count.send_replace(st.running.len());
                (reserved, signal)
            }
            Err(e @ ReserveError::NotEnough { .. })
                if st.running.values().any(|h| h.is_stopping()) =>
            {
                // Cards still held by attempts being stopped (cancelled, preempted): take the
                // assignment at a later poll, once they are gone.
                st.seen.remove(&r);
                tracing::debug!(job = %r.job, attempt = r.attempt, error = %e, "assignment waits for stopping attempts");
                return false;
            }
            Err(e) => {
                drop(st);
                tracing::warn!(job = %r.job, attempt = r.attempt, error = %e, "refusing assignment");
                let t = now();
                let _ = outbox.send(AgentEvent {
                    job: r.job,
                    attempt: r.attempt,
                    kind: EventKind::Finished {
                        outcome: Outcome::Killed,
                        exit_code: None,
                        started_at: t,
                        ended_at: t,
                        card_seconds: 0,
                        log_chunks: 0,
                        message: format!("refused by the site: {e}"),
                    },
                });
                return true;
            }
        }
    };
    let dir = attempt_dir(&ctx.config.work_dir, r);
    let env = build_env(r, &a.spec, &a.sku, &reserved, &dir);
    let total_cards = a.spec.cards_per_node.saturating_mul(reserved.len() as u32);
    let launch = Launch {
        attempt: r,
        spec: a.spec,
        sku: a.sku,
        nodes: reserved,
        env,
        work_dir: dir,
    };
    tokio::spawn(run_attempt(
        ctx.clone(),
        launch,
        stop,
        total_cards,
        outbox.clone(),
    ));
    true
}

async fn run_attempt(
    ctx: Arc<Ctx>,
    launch: Launch,
    stop: StopSignal,
    total_cards: u32,
    outbox: Outbox,
) {
    let r = launch.attempt;
    let reserved = launch.nodes.clone();
    let started_at = now();
    let _ = outbox.send(AgentEvent {
        job: r.job,
        attempt: r.attempt,
        kind: EventKind::Started { at: started_at },
    });
    tracing::info!(
        job = %r.job,
        attempt = r.attempt,
        sku = %launch.sku,
        nodes = %reserved.iter().map(|n| n.node.as_str()).collect::<Vec<_>>().join(","),
        cards = total_cards,
        "attempt started"
    );
    let sink = LogSink::new(r, outbox.clone());
    let backend = ctx.backend.clone();
    // A separate task, so that a panicking backend still frees the cards and reports the attempt.
    let result = match tokio::spawn(async move { backend.run(launch, sink, stop).await }).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(job = %r.job, attempt = r.attempt, error = %e, "backend failed");
            RunResult {
                outcome: Outcome::Failed,
                exit_code: None,
                message: "internal error in the site agent's backend".into(),
                log_chunks: 0,
                span: None,
            }
        }
    };
    // The cluster manager's own times when it gives them (Slurm: not the time queued there).
    let (started_at, ended_at) = result.span.unwrap_or((started_at, now()));
    let card_seconds = card_seconds(ended_at.millis_since(started_at), total_cards);
    tracing::info!(
        job = %r.job,
        attempt = r.attempt,
        outcome = ?result.outcome,
        exit_code = ?result.exit_code,
        card_seconds,
        message = %result.message,
        "attempt finished"
    );
    let finished = AgentEvent {
        job: r.job,
        attempt: r.attempt,
        kind: EventKind::Finished {
            outcome: result.outcome,
            exit_code: result.exit_code,
            started_at,
            ended_at,
            card_seconds,
            log_chunks: result.log_chunks,
            message: result.message,
        },
    };
    ctx.shared.finish(r, &reserved, finished, &outbox);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use suanli_proto::{NodeCards, Stream};
    use suanli_types::{JobId, JobSpec, TenantId, Timestamp};

    use super::*;
    use crate::backend::BoxFuture;
    use crate::inventory::tests::center;

    /// Echoes the visible-devices variable, or waits for a stop.
    struct FakeBackend;

    impl Backend for FakeBackend {
        fn name(&self) -> &'static str {
            "fake"
        }

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
            shared: Arc::new(Shared::new(&c, drain)),
            backend: Arc::new(FakeBackend),
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
            let events = events_until_finished(&mut rx, job).await;
            let [
                EventKind::Finished {
                    outcome, message, ..
                },
            ] = &events[..]
            else {
                panic!("{events:?}");
            };
            assert_eq!(*outcome, Outcome::Killed, "the hub requeues it");
            assert!(message.starts_with("refused by the site: "), "{message}");
            assert!(message.contains(node), "{message}");
        }

        let r = AttemptRef {
            job: JobId(1),
            attempt: 1,
        };
        assert!(ctx.shared.stop(r, HUB_KILL_MESSAGE));
        let events = events_until_finished(&mut rx, 1).await;
        let [
            EventKind::Finished {
                outcome, message, ..
            },
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        assert_eq!(
            (*outcome, message.as_str()),
            (Outcome::Killed, HUB_KILL_MESSAGE)
        );
        ctx.shared.wait_idle().await;
        assert!(!ctx.shared.stop(r, HUB_KILL_MESSAGE));
    }

    /// Answers heartbeats with a 2 s lease while `up`, fails them otherwise.
    #[derive(Default)]
    struct FlakyHub {
        up: std::sync::atomic::AtomicBool,
        last_ok: Mutex<Option<Instant>>,
    }

    impl HeartbeatPost for FlakyHub {
        fn post_heartbeat(
            &self,
            _hb: Heartbeat,
        ) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>> {
            let r = if self.up.load(std::sync::atomic::Ordering::SeqCst) {
                *self.last_ok.lock().unwrap() = Some(Instant::now());
                Ok(HeartbeatReply {
                    kill: Vec::new(),
                    lease_ttl_secs: 2,
                })
            } else {
                Err(ClientError::Api(suanli_proto::ApiError::new(
                    suanli_proto::ErrorCode::Unavailable,
                    "down",
                )))
            };
            Box::pin(async move { r })
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
            shared: Arc::new(Shared::new(&c, false)),
            backend: Arc::new(LocalBackend::new(Duration::from_secs(1))),
        });
        let hub = Arc::new(FlakyHub::default());
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

        let events = events_until_finished(&mut rx, 1).await;
        let since_ok = hub.last_ok.lock().unwrap().unwrap().elapsed();
        let [
            EventKind::Finished {
                outcome, message, ..
            },
        ] = &events[..]
        else {
            panic!("{events:?}");
        };
        assert_eq!(
            (*outcome, message.as_str()),
            (Outcome::Killed, FENCE_MESSAGE)
        );
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

    /// Answers heartbeats while `up`; otherwise never answers (packets silently lost).
    #[derive(Default)]
    struct SilentHub {
        up: std::sync::atomic::AtomicBool,
        posts: std::sync::atomic::AtomicUsize,
    }

    impl HeartbeatPost for SilentHub {
        fn post_heartbeat(
            &self,
            _hb: Heartbeat,
        ) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>> {
            use std::sync::atomic::Ordering::SeqCst;
            self.posts.fetch_add(1, SeqCst);
            if self.up.load(SeqCst) {
                Box::pin(async {
                    Ok(HeartbeatReply {
                        kill: Vec::new(),
                        lease_ttl_secs: 2,
                    })
                })
            } else {
                Box::pin(std::future::pending())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_heartbeats_are_abandoned_and_a_healed_hub_is_heard_at_once() {
        use std::sync::atomic::Ordering::SeqCst;
        let c = center(&[("RTX4090", 1, 1)]);
        let shared = Arc::new(Shared::new(&c, false));
        let hub = Arc::new(SilentHub::default());
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
}

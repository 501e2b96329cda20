//! Leadership among replicated hubs on one PostgreSQL database.
//!
//! Every hub process serves the API; exactly one, the leader, runs the engine (and so the
//! scheduler core). The leader holds a lease row in the database (see
//! [`Store::acquire_lease`]) and renews it every `ttl / 5`; the row's epoch is the fencing token:
//! every job, money, center and policy write of the leader checks it in its own transaction, so a
//! deposed leader (paused, partitioned from the other hubs, or slow to notice) cannot write after
//! a takeover. Followers try to take the lease at the same pace and forward every `/v1` request
//! to the leader's advertised URL, so clients and agents may talk to any hub. When the lease
//! expires (the leader died or lost the database), a follower takes it with the next epoch,
//! rebuilds the engine from the database, exactly as a restarted hub does, and serves.
//!
//! A leader that cannot renew steps down (stops its engine) half a lease after it sent its last
//! successful renewal, well before the lease can have expired by the database's clock. Renewals
//! go on while a new leader rebuilds its engine. Stepping down refuses every write first, then
//! waits until the engine's task is gone, then wakes long-polls so agents ask again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use suanli_proto::HubStatus;
use suanli_store::Store;
use suanli_types::Timestamp;
use tokio::sync::watch;

use crate::AppState;
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::error::HubError;
use crate::metrics::Metrics;

/// Marks a request a follower forwarded, so it is never forwarded twice.
pub const FORWARDED_BY: &str = "x-suanli-forwarded-by";
/// A submit's idempotency key header (forwarded with the request).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The largest body a follower forwards (the largest any route accepts).
const FORWARD_BODY_LIMIT: usize = 16 << 20;

/// How a hub takes part in leadership.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The base URL other hubs forward to while this hub leads (e.g. `http://10.0.0.5:8600`).
    pub advertise_url: String,
    /// How long a lease lasts without renewal: a dead leader is replaced after at most this
    /// (plus one renewal interval, `ttl / 5`).
    pub ttl: Duration,
}

/// This hub's part, as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// The only hub (SQLite): it always runs the engine.
    Single,
    Leader {
        epoch: u64,
        since: Timestamp,
    },
    Follower {
        /// The leader's URL while its lease is live.
        leader_url: Option<String>,
        epoch: u64,
    },
}

/// This hub's identity and role, shared with request handlers.
pub struct Leadership {
    /// Unique per process: host and a random suffix (no process id: the id is shown to clients).
    pub id: String,
    role: watch::Sender<Role>,
    http: reqwest::Client,
}

impl Leadership {
    pub(crate) fn new(initial: Role) -> Leadership {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "hub".into());
        let mut r = [0u8; 8];
        let _ = getrandom::fill(&mut r);
        let id = format!("{host}/{:016x}", u64::from_le_bytes(r));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(120))
            .build()
            .expect("HTTP client builds");
        Leadership {
            id,
            role: watch::channel(initial).0,
            http,
        }
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// Changes whenever the role does.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    fn set(&self, role: Role) {
        self.role.send_if_modified(|r| {
            if *r == role {
                false
            } else {
                *r = role;
                true
            }
        });
    }

    pub fn status(&self) -> HubStatus {
        let (role, leader_url, epoch, leader_since) = match self.role() {
            Role::Single => ("single", None, 0, None),
            Role::Leader { epoch, since } => ("leader", None, epoch, Some(since)),
            Role::Follower { leader_url, epoch } => ("follower", leader_url, epoch, None),
        };
        HubStatus {
            id: self.id.clone(),
            role: role.into(),
            leader_url,
            epoch,
            leader_since,
            decision_hash: None,
        }
    }
}

/// A task aborted when dropped (so aborting the leadership loop also stops its engine).
pub(crate) struct EngineTask(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for EngineTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything the leadership loop needs.
pub(crate) struct Ctx {
    pub store: Arc<dyn Store>,
    pub cfg: EngineConfig,
    pub metrics: Arc<Metrics>,
    pub handle: EngineHandle,
    pub lead: Arc<Leadership>,
    pub leader: LeaderConfig,
}

/// An engine being rebuilt for a term, off the loop so renewals go on meanwhile.
type Rebuild = tokio::task::JoinHandle<crate::HubResult<engine::Built>>;

/// The loop's state: the term it holds, and the engine of that term (rebuilding or running).
#[derive(Default)]
struct Term {
    /// The epoch granted, and until when this hub may act on it.
    grant: Option<(u64, Instant)>,
    rebuild: Option<(u64, Rebuild, Instant)>,
    engine: Option<(u64, EngineTask)>,
}

impl Ctx {
    /// Stops the engine (and any rebuild): refuses every write first, so nothing the old engine
    /// still has in flight lands, then waits until its task is gone.
    async fn stop_engine(&self, term: &mut Term, why: &str) {
        let had = term.engine.is_some() || term.rebuild.is_some();
        if !had {
            return;
        }
        self.store.set_fence(Some(suanli_store::FENCE_ALL));
        self.handle.uninstall();
        if let Some((_, r, _)) = term.rebuild.take() {
            r.abort();
            let _ = r.await;
        }
        if let Some((epoch, mut task)) = term.engine.take() {
            task.0.abort();
            let _ = (&mut task.0).await;
            self.metrics.set_leader(false, epoch);
            tracing::warn!(epoch, why, "stepped down: the engine is stopped");
        }
    }

    fn follow(&self, leader_url: Option<String>, epoch: u64) {
        self.lead.set(Role::Follower { leader_url, epoch });
    }
}

/// Takes, keeps and gives up the leadership until `stop` turns true; runs the engine while it
/// leads. Renewals go on while an engine is rebuilt (that may take long on a big database).
pub(crate) async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let every = (ctx.leader.ttl / 5).max(Duration::from_millis(100));
    // This hub acts on a grant for half the lease, measured from when it sent the request that
    // was granted: the lease expires by the database's clock no earlier than that plus `ttl`, so
    // half of it is left for timer lateness and clock rates.
    let valid_for = ctx.leader.ttl / 2;
    let mut term = Term::default();
    let mut next_try = Instant::now();
    // When this hub last saw a live leader other than itself (for the takeover log line).
    let mut saw_leader: Option<Instant> = None;
    loop {
        let valid_until = term.grant.map(|(_, t)| t);
        tokio::select! {
            biased;
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
            () = tokio::time::sleep_until(valid_until.unwrap_or(next_try).into()),
                if valid_until.is_some_and(|t| t <= next_try) => {
                // The grant ran out before a renewal succeeded.
                ctx.stop_engine(&mut term, "the lease could not be renewed in time").await;
                let epoch = term.grant.take().map_or(0, |(e, _)| e);
                ctx.follow(None, epoch);
            }
            () = tokio::time::sleep_until(next_try.into()) => {
                next_try = Instant::now() + every;
                try_lease(&ctx, &mut term, every, valid_for, &mut saw_leader).await;
            }
            res = async { (&mut term.rebuild.as_mut().expect("guarded").1).await },
                if term.rebuild.is_some() => {
                let (epoch, _, began) = term.rebuild.take().expect("guarded");
                match res {
                    Ok(Ok(built)) if term.grant.is_some_and(|(e, _)| e == epoch) => {
                        ctx.store.set_fence(Some(epoch));
                        let task = built.launch(&ctx.handle);
                        term.engine = Some((epoch, EngineTask(task)));
                        ctx.metrics.set_leader(true, epoch);
                        ctx.lead.set(Role::Leader {
                            epoch,
                            since: engine::now(),
                        });
                        tracing::info!(
                            epoch,
                            rebuild_ms = began.elapsed().as_millis() as u64,
                            since_leader_seen_ms =
                                saw_leader.map(|t| t.elapsed().as_millis() as u64),
                            "took the leadership: engine rebuilt from the database"
                        );
                    }
                    Ok(Ok(_)) => {
                        tracing::warn!(epoch, "the term ended while the engine was rebuilt")
                    }
                    Ok(Err(e)) => give_up(&ctx, &mut term, epoch, e.to_string()).await,
                    Err(e) => give_up(&ctx, &mut term, epoch, e.to_string()).await,
                }
            }
        }
    }
    // A graceful stop hands the leadership over at once.
    if let Some((epoch, _)) = term.grant {
        ctx.stop_engine(&mut term, "the hub is stopping").await;
        if let Err(e) = ctx.store.release_lease(&ctx.lead.id, epoch).await {
            tracing::warn!(error = %e, "could not release the hub lease; it expires by itself");
        }
    }
}

/// The engine of a new term could not be rebuilt: release the lease (holding it without an engine
/// would leave no hub serving) and follow.
async fn give_up(ctx: &Ctx, term: &mut Term, epoch: u64, error: String) {
    tracing::error!(
        epoch,
        error,
        "took the leadership but could not rebuild the engine; giving it up"
    );
    if let Some((e, _)) = term.grant.take() {
        let _ = ctx.store.release_lease(&ctx.lead.id, e).await;
    }
    ctx.follow(None, epoch);
}

/// One renewal or takeover attempt, and what follows from its answer.
async fn try_lease(
    ctx: &Ctx,
    term: &mut Term,
    every: Duration,
    valid_for: Duration,
    saw_leader: &mut Option<Instant>,
) {
    let sent = Instant::now();
    let held = term.grant.map(|(e, _)| e);
    let res = tokio::time::timeout(
        every,
        ctx.store.acquire_lease(
            &ctx.lead.id,
            &ctx.leader.advertise_url,
            held,
            ctx.leader.ttl,
        ),
    )
    .await;
    let g = match res {
        Ok(Ok(g)) => g,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not renew or take the hub lease");
            return;
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = every.as_millis() as u64,
                "the database did not answer the hub lease call in time"
            );
            return;
        }
    };
    if g.granted {
        let epoch = g.lease.epoch;
        if held != Some(epoch) {
            // A new term: whatever ran for an older one stops before anything is rebuilt.
            ctx.stop_engine(term, "a new term began").await;
            // The rebuild writes under the new epoch (price rows of pools never priced).
            ctx.store.set_fence(Some(epoch));
            ctx.follow(None, epoch);
            let (store, cfg, metrics, handle) = (
                ctx.store.clone(),
                ctx.cfg.clone(),
                ctx.metrics.clone(),
                ctx.handle.clone(),
            );
            let rebuild =
                tokio::spawn(
                    async move { engine::Engine::build(store, cfg, metrics, &handle).await },
                );
            term.rebuild = Some((epoch, rebuild, Instant::now()));
        }
        term.grant = Some((epoch, sent + valid_for));
        return;
    }
    // Someone else holds it.
    ctx.stop_engine(term, "another hub holds the lease").await;
    term.grant = None;
    let live = g.lease.is_live();
    if live {
        *saw_leader = Some(Instant::now());
    }
    ctx.metrics.set_leader(false, g.lease.epoch);
    ctx.follow(live.then_some(g.lease.url), g.lease.epoch);
}

/// Middleware: a follower forwards `/v1` requests (except `/v1/hub` and the OpenAPI document) to
/// the leader; without a reachable leader they get 503 `unavailable`, which clients retry at
/// another hub.
pub(crate) async fn route(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/v1/") || path == "/v1/hub" || path == "/v1/openapi.json" {
        return next.run(req).await;
    }
    match state.leadership.role() {
        Role::Single | Role::Leader { .. } => next.run(req).await,
        Role::Follower {
            leader_url: Some(url),
            ..
        } if !req.headers().contains_key(FORWARDED_BY) => {
            forward(&state.leadership, &url, req).await
        }
        Role::Follower { .. } => HubError::NotLeader.into_response(),
    }
}

/// What a follower answers when forwarding failed: 503 (retry) if the leader cannot have carried
/// the request out (`not_sent`, or a read), else 502 `outcome_unknown`.
fn lost(not_sent: bool) -> HubError {
    if not_sent {
        HubError::NotLeader
    } else {
        HubError::Interrupted
    }
}

async fn forward(lead: &Leadership, leader: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let safe = parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD;
    let body = match axum::body::to_bytes(body, FORWARD_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return HubError::TooLarge.into_response(),
    };
    let target = format!(
        "{}{}",
        leader.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = lead
        .http
        .request(parts.method, &target)
        .header(FORWARDED_BY, &lead.id)
        .body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    if let Some(v) = parts.headers.get(IDEMPOTENCY_KEY) {
        out = out.header(IDEMPOTENCY_KEY, v);
    }
    // A leader that hangs (frozen, or cut off) is replaced within a lease: give up on it then,
    // rather than hold the caller for the whole HTTP timeout.
    let mut role = lead.watch();
    role.borrow_and_update();
    let sent = tokio::select! {
        r = out.send() => r,
        _ = role.changed() => {
            tracing::debug!(leader, "the leadership changed while a request was forwarded");
            return lost(safe).into_response();
        }
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(leader, error = %e, "cannot forward a request to the leader");
            return lost(e.is_connect() || safe).into_response();
        }
    };
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let retry_after = resp.headers().get(header::RETRY_AFTER).cloned();
    match resp.bytes().await {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            if let Some(ct) = content_type {
                r.headers_mut().insert(header::CONTENT_TYPE, ct);
            } else {
                r.headers_mut().remove(header::CONTENT_TYPE);
            }
            if let Some(v) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r.headers_mut().insert(
                "x-suanli-served-by",
                HeaderValue::from_str(leader).unwrap_or(HeaderValue::from_static("leader")),
            );
            r
        }
        Err(e) => {
            tracing::warn!(leader, error = %e, "the leader's answer broke off");
            lost(safe).into_response()
        }
    }
}

//! The suanli hub: the `/v1` REST API over one engine task that owns the scheduler core.
//!
//! The [route table](api) declares each operation once (route, OpenAPI entry, access rule);
//! handlers validate input, and either read the store or send a command to the
//! [engine](engine::Engine), which writes the store before it answers.

pub mod api;
pub mod audit;
pub mod auth;
pub mod centers;
pub mod contract;
pub mod datasets;
pub mod engine;
pub mod error;
pub mod indicators;
pub mod leader;
pub mod metrics;
pub mod models;
pub mod money;
pub mod outputs;
pub mod pricing;
pub mod replay;
pub mod reports;
pub mod risk;
pub mod state;
mod store_io;
pub mod views;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use suanli_store::Store;
use suanli_types::Role;
use tokio::net::TcpListener;

pub use engine::EngineConfig;
pub use error::{HubError, HubResult};
pub use leader::LeaderConfig;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: engine::EngineHandle,
    pub metrics: Arc<metrics::Metrics>,
    pub tokens: auth::TokenCache,
    pub leadership: Arc<leader::Leadership>,
    /// The API's rate limits and their buckets.
    pub guard: Arc<api::Guard>,
    /// Where every write and every refusal is recorded.
    pub audit: audit::Auditor,
    /// The risk rules, evaluated periodically and before each read of the flags.
    pub risk: risk::Risk,
    /// Job outputs: their content store and its limits.
    pub outputs: outputs::Outputs,
}

/// How the API guards itself (see `docs/SECURITY.md`, "The API's limits").
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Serve `/metrics` without a token (`suanli hub --metrics-public`); otherwise it needs an
    /// operator or supervisor token.
    pub metrics_public: bool,
    /// Rates per token, per site and of failed authentications per address; caps on event
    /// batches and site-agent bodies.
    pub limits: api::Limits,
    /// The audit log's signing key and checkpoint intervals.
    pub audit: audit::AuditConfig,
    /// The risk rules' thresholds and how often they run.
    pub risk: risk::RiskSettings,
    /// Where job outputs are kept, and how much of them.
    pub outputs: outputs::OutputsConfig,
    /// Pages served beside the API (the web portal): every path outside `/v1/`, `/metrics`,
    /// `/healthz` and `/readyz` goes to them.
    pub ui: Option<Ui>,
}

/// Builds the pages served beside the API, given the hub's own base URL (on loopback when it
/// listens on every address), which they call the API at.
#[derive(Clone)]
pub struct Ui(pub Arc<dyn Fn(&str) -> axum::Router + Send + Sync>);

impl std::fmt::Debug for Ui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ui(..)")
    }
}

/// A running hub.
pub struct Hub {
    pub addr: SocketAddr,
    pub leadership: Arc<leader::Leadership>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The engine (single hub) or the leadership loop that runs it (replicated hubs).
    driver: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    /// Flushed at a graceful stop, so that no recorded entry is left unwritten.
    audit: audit::Auditor,
    /// The statistics' facts not yet stored when the engine stops are written at a graceful
    /// stop.
    indicators: indicators::Indicators,
    store: Arc<dyn Store>,
}

impl Hub {
    /// Rebuilds the engine from `store` and serves the API on `listener`: the only hub of its
    /// store.
    pub async fn start(
        store: Arc<dyn Store>,
        cfg: EngineConfig,
        listener: TcpListener,
    ) -> HubResult<Hub> {
        Self::start_with(store, cfg, ApiConfig::default(), listener, None).await
    }

    /// Like [`start`](Self::start); with `leader`, one of several hubs sharing a store that
    /// supports leadership (PostgreSQL): it runs the engine only while it holds the lease, and
    /// forwards requests to the leader otherwise (see [`leader`]).
    pub async fn start_with(
        store: Arc<dyn Store>,
        cfg: EngineConfig,
        api_cfg: ApiConfig,
        listener: TcpListener,
        leader: Option<LeaderConfig>,
    ) -> HubResult<Hub> {
        let metrics = Arc::new(metrics::Metrics::new());
        let handle = engine::EngineHandle::default();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let (leadership, driver) = match leader {
            Some(lc) => {
                if !store.supports_leadership() {
                    return Err(HubError::BadRequest(
                        "replicated hubs need a store with leadership (PostgreSQL)".into(),
                    ));
                }
                let lead = Arc::new(leader::Leadership::new(leader::Role::Follower {
                    leader_url: None,
                    epoch: 0,
                }));
                let ctx = leader::Ctx {
                    store: store.clone(),
                    cfg,
                    metrics: metrics.clone(),
                    handle: handle.clone(),
                    lead: lead.clone(),
                    leader: lc,
                };
                (lead, tokio::spawn(leader::run(ctx, stopped.clone())))
            }
            None => {
                let task =
                    engine::Engine::start(store.clone(), cfg, metrics.clone(), &handle).await?;
                metrics.set_leader(true, 0);
                let mut stopped = stopped.clone();
                let driver = tokio::spawn(async move {
                    // Dropped at a stop, or when this task is aborted (a simulated crash).
                    let _engine = leader::EngineTask(task);
                    let _ = stopped.wait_for(|s| *s).await;
                });
                (
                    Arc::new(leader::Leadership::new(leader::Role::Single)),
                    driver,
                )
            }
        };
        let indicators = handle.indicators().clone();
        let kept_store = store.clone();
        let guard = Arc::new(api::Guard::new(api_cfg.limits.clone(), metrics.clone()));
        let audit = audit::Auditor::start(store.clone(), &api_cfg.audit).await?;
        let risk = risk::Risk::new(
            store.clone(),
            handle.clone(),
            metrics.clone(),
            audit.clone(),
            api_cfg.risk.clone(),
        );
        risk.spawn(stopped.clone());
        models::spawn(store.clone(), stopped.clone());
        let outputs = outputs::Outputs::open(api_cfg.outputs.clone()).map_err(|e| {
            HubError::BadRequest(format!(
                "cannot open the outputs folder {:?}: {e}",
                api_cfg.outputs.dir
            ))
        })?;
        tokio::spawn(outputs::sweeper(
            outputs.clone(),
            store.clone(),
            stopped.clone(),
        ));
        let state = AppState {
            store,
            engine: handle,
            metrics,
            tokens: auth::TokenCache::default(),
            leadership: leadership.clone(),
            guard,
            audit: audit.clone(),
            risk,
            outputs,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| HubError::BadRequest(format!("listener has no address: {e}")))?;
        let ui = api_cfg.ui.as_ref().map(|u| (u.0)(&local_url(addr)));
        let mut app = api::router(state.clone(), &api_cfg, ui)
            .layer(axum::middleware::from_fn_with_state(state, leader::route));
        if let Some(dir) = contract::dir() {
            let rec = contract::Recorder::create(&dir).map_err(|e| {
                HubError::BadRequest(format!("cannot record responses in {}: {e}", dir.display()))
            })?;
            app = app.layer(axum::middleware::from_fn_with_state(rec, contract::record));
        }
        let app = app.layer(axum::middleware::from_fn(log_request));
        let server = tokio::spawn(async move {
            // The peer's address is what failed authentications are counted by.
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, "hub listening");
        Ok(Hub {
            addr,
            leadership,
            server,
            driver,
            stop,
            audit,
            indicators,
            store: kept_store,
        })
    }

    /// Waits until this hub runs the engine (at once for a single hub); `false` after `limit`.
    pub async fn wait_leading(&self, limit: std::time::Duration) -> bool {
        let mut role = self.leadership.watch();
        let leading =
            role.wait_for(|r| matches!(r, leader::Role::Single | leader::Role::Leader { .. }));
        matches!(tokio::time::timeout(limit, leading).await, Ok(Ok(_)))
    }

    /// The hub's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, finishes those in flight, stops the engine and (if it leads)
    /// hands the leadership over.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.server).await;
        // The entries of the requests just answered.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.audit.flush()).await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.driver).await;
        if let Err(e) = self
            .indicators
            .flush(self.store.as_ref(), engine::now())
            .await
        {
            tracing::warn!(error = %e, "the statistics' last facts could not be stored");
        }
    }

    /// Stops at once, as a crash would (tests): in-flight requests are dropped, the lease is
    /// not released.
    pub async fn kill(self) {
        self.server.abort();
        self.driver.abort();
        let _ = self.server.await;
        let _ = self.driver.await;
    }
}

async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// Makes sure a valid operator token exists: if none does (or all have expired or were revoked), creates one and writes it to `path` (mode
/// 0600). Returns the new token, or `None` if an operator token existed already.
pub async fn bootstrap_operator(store: &dyn Store, path: &Path) -> HubResult<Option<String>> {
    let now = engine::now();
    if store.has_live_token_with_role(Role::Operator, now).await? {
        return Ok(None);
    }
    // The hub's own operator token; an expired one of the same name is replaced.
    let t = auth::new_token_for("operator", Role::Operator, None, None, now, None);
    let (token, _) = auth::rotate_token(store, &t, now, true).await?;
    write_secret(path, &token)
        .map_err(|e| HubError::BadRequest(format!("cannot write {}: {e}", path.display())))?;
    Ok(Some(token))
}

/// Writes a secret file readable only by its owner.
pub fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{secret}")
}

/// `http://ADDR`, on loopback when `addr` is a wildcard address.
fn local_url(mut addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

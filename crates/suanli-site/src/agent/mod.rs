//! The agent's tasks: heartbeat (`heartbeat.rs`), assignment long-poll and attempt runners
//! (`attempts.rs`), the event shipper, and the shutdown sequence that ties them together; what
//! they share is in `state.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use suanli_client::Client;
use suanli_types::CenterSpec;
use tokio::sync::{Notify, mpsc};

use crate::backend::Runner;
use crate::shipper::Shipper;
use crate::{AgentConfig, Backoff, SiteError};

mod attempts;
mod heartbeat;
mod state;
#[cfg(test)]
mod tests;

use attempts::poll_loop;
use heartbeat::{INVENTORY_MIN_PERIOD, heartbeat_loop, inventory_loop};
use state::Shared;

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

/// What attempt runners need.
struct Ctx {
    config: AgentConfig,
    shared: Arc<Shared>,
    backend: Arc<dyn Runner>,
    /// The hub, for uploads of outputs.
    client: Arc<Client>,
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
    // The agent's own: no job user may list it (the local backend opens it to passage in
    // `user` mode).
    crate::workdir::restrict(&work_dir, 0o700).map_err(|source| SiteError::WorkDir {
        path: work_dir.clone(),
        source,
    })?;
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

    let shared = Arc::new(Shared::new(&center, config.drain, config.protocol));
    let backend = tokio::select! {
        b = backend_for(&center, &config) => b?,
        () = &mut shutdown => {
            tracing::info!("site agent stopped before its backend was ready");
            return Ok(());
        }
    };
    tracing::info!(
        center = %center.id,
        nodes = shared.lock().inventory.node_names().len(),
        cards = center.total_cards(),
        backend = center.backend.as_str(),
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
        client: client.clone(),
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
        // A job warned first (`--signal`) waits up to one more grace before its SIGTERM.
        if tokio::time::timeout(kill_grace * 2 + SHUTDOWN_KILL_SLACK, shared.wait_idle())
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

/// The backend for the center's registered kind, from the registry ([`crate::BACKENDS`]), started
/// with its checks.
async fn backend_for(
    center: &CenterSpec,
    config: &AgentConfig,
) -> Result<Arc<dyn Runner>, SiteError> {
    let entry = crate::backend_entry(center.backend).ok_or_else(|| {
        SiteError::Config(format!(
            "this site agent has no {} backend",
            center.backend.as_str()
        ))
    })?;
    (entry.start)(center, config).await
}

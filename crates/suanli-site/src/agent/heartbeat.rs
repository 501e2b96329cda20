//! The heartbeat (and the fence that follows when heartbeats fail for nearly the lease), and the
//! inventory the heartbeat reports.

use std::sync::Arc;
use std::time::Duration;

use suanli_client::{Client, ClientError};
use suanli_proto::{Heartbeat, HeartbeatReply};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

use super::state::Shared;
use super::{DEFAULT_LEASE, HUB_KILL_MESSAGE};
use crate::backend::{BoxFuture, Runner};

/// Least time between two inventory reads from the cluster manager.
pub(super) const INVENTORY_MIN_PERIOD: Duration = Duration::from_secs(5);

/// Keeps the heartbeat's inventory to what the backend's cluster manager reports; ends at once for
/// a backend without a view of its own. A failed read keeps the last known inventory.
pub(super) async fn inventory_loop(backend: Arc<dyn Runner>, shared: Arc<Shared>, every: Duration) {
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
pub(super) trait HeartbeatPost: Send + Sync + 'static {
    fn post_heartbeat(&self, hb: Heartbeat) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>>;
}

impl HeartbeatPost for Client {
    fn post_heartbeat(&self, hb: Heartbeat) -> BoxFuture<'_, Result<HeartbeatReply, ClientError>> {
        Box::pin(async move { self.heartbeat(&hb).await })
    }
}

/// How long after sending the last successful heartbeat the agent fences itself: the lease less one
/// heartbeat interval (at least 1 s), never less than half the lease.
pub(super) fn fence_after(lease: Duration, every: Duration) -> Duration {
    lease
        .saturating_sub(every.max(Duration::from_secs(1)))
        .max(lease / 2)
}

/// How long one heartbeat may wait for its answer.
pub(super) fn heartbeat_timeout(every: Duration) -> Duration {
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
pub(super) async fn heartbeat_loop<H: HeartbeatPost>(
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

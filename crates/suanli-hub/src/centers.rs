//! Center liveness: which centers take new work (heartbeats, the offline timeout, drains by the
//! operator and by the agent), and the wake-ups of the sites' long-polls.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use suanli_proto::NodeInventory;
use suanli_types::{CenterId, Timestamp};
use tokio::sync::watch;

#[derive(Clone, Debug, Default)]
pub struct CenterLive {
    pub online: bool,
    /// The agent says it is draining (`suanli site --drain`, or stopping).
    pub draining: bool,
    /// The operator (or the center's own site token) drained it; kept in the store.
    pub drained: bool,
    pub last_heartbeat: Option<Timestamp>,
    pub inventory: Vec<NodeInventory>,
    pub agent_version: Option<String>,
}

impl CenterLive {
    /// Whether new work may be placed there.
    pub fn is_open(&self) -> bool {
        self.online && !self.draining && !self.drained
    }
}

/// Every registered center's liveness. Pure: `now` is an argument.
#[derive(Clone, Debug)]
pub struct Centers {
    live: BTreeMap<CenterId, CenterLive>,
    offline_after_ms: i64,
}

impl Centers {
    pub fn new(offline_after: Duration) -> Centers {
        Centers {
            live: BTreeMap::new(),
            offline_after_ms: offline_after.as_millis() as i64,
        }
    }

    pub fn all(&self) -> &BTreeMap<CenterId, CenterLive> {
        &self.live
    }

    /// The center, known from now on (a new center is offline until it heartbeats).
    pub fn entry(&mut self, id: &CenterId) -> &mut CenterLive {
        self.live.entry(id.clone()).or_default()
    }

    /// A heartbeat at `at`: the center is online, draining as the agent says. Returns whether it
    /// is open now and whether it just opened.
    pub fn heartbeat(&mut self, id: &CenterId, draining: bool, at: Timestamp) -> (bool, bool) {
        let live = self.entry(id);
        let was_open = live.is_open();
        live.online = true;
        live.draining = draining;
        live.last_heartbeat = Some(at);
        let open = live.is_open();
        (open, open && !was_open)
    }

    /// Drains or undrains a center; returns whether it is open now.
    pub fn set_drained(&mut self, id: &CenterId, drained: bool) -> bool {
        let live = self.entry(id);
        live.drained = drained;
        live.is_open()
    }

    /// Centers that were online and have not heartbeated for the offline timeout by `at`: they
    /// are offline from now on.
    pub fn gone_offline(&mut self, at: Timestamp) -> Vec<CenterId> {
        let mut out = Vec::new();
        for (id, live) in self.live.iter_mut() {
            if live.online
                && live
                    .last_heartbeat
                    .is_none_or(|t| at.millis_since(t) > self.offline_after_ms)
            {
                live.online = false;
                out.push(id.clone());
            }
        }
        out
    }
}

/// Per center, a counter bumped whenever it has something new for its site (a placement, a stop
/// order); the long-polls wait on it. Shared by the engine handle and the engine.
#[derive(Clone, Default)]
pub struct Wakeups(Arc<Mutex<HashMap<CenterId, watch::Sender<u64>>>>);

impl Wakeups {
    /// Wakes the long-polls of `center`.
    pub fn wake(&self, center: &CenterId) {
        if let Some(tx) = self.0.lock().expect("wake-up lock").get(center) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes every long-poll.
    pub fn wake_all(&self) {
        for tx in self.0.lock().expect("wake-up lock").values() {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// A receiver that changes when `center` gets something new.
    pub fn watch(&self, center: &CenterId) -> watch::Receiver<u64> {
        let mut map = self.0.lock().expect("wake-up lock");
        map.entry(center.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

//! What the agent's tasks share: the card slots, the running attempts and their stop handles, and
//! whether the agent takes work (draining, fenced).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use suanli_proto::{AgentEvent, AttemptRef, Heartbeat, NodeInventory};
use suanli_types::CenterSpec;
use tokio::sync::watch;

use super::FENCE_MESSAGE;
use crate::backend::StopHandle;
use crate::inventory::{Inventory, ReservedNode};
use crate::logs::Outbox;

pub(super) struct State {
    pub inventory: Inventory,
    pub running: BTreeMap<AttemptRef, StopHandle>,
    /// Every attempt this agent has started or refused; the hub offers an assignment again until
    /// its `Started` is recorded.
    pub seen: HashSet<AttemptRef>,
    pub draining: bool,
    /// No heartbeat reached the hub within its lease: running attempts were stopped and no new work
    /// is taken until a heartbeat succeeds.
    pub fenced: bool,
    /// The nodes as the backend's cluster manager reports them (Slurm); the heartbeat sends these
    /// instead of the registered pools when set.
    pub reported: Option<Vec<NodeInventory>>,
}

/// State shared by the agent's tasks.
pub(super) struct Shared {
    state: Mutex<State>,
    pub running_count: watch::Sender<usize>,
    stacks: BTreeMap<String, String>,
    /// The agent protocol version the heartbeats announce.
    protocol: u32,
}

impl Shared {
    pub fn new(center: &CenterSpec, draining: bool, protocol: u32) -> Shared {
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
            protocol,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks a running attempt to stop; `false` if it is not running here.
    pub fn stop(&self, r: AttemptRef, reason: &str) -> bool {
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

    pub fn stop_all(&self, reason: &str) {
        let st = self.lock();
        for (r, h) in &st.running {
            if h.stop(reason) {
                tracing::info!(job = %r.job, attempt = r.attempt, reason, "stopping attempt");
            }
        }
    }

    pub fn set_draining(&self) {
        self.lock().draining = true;
    }

    pub fn takes_work(&self) -> bool {
        let st = self.lock();
        !st.draining && !st.fenced
    }

    pub fn is_fenced(&self) -> bool {
        self.lock().fenced
    }

    /// Stops every running attempt and takes no new work until [`Shared::unfence`]; `false` if it
    /// was already fenced.
    pub fn fence(&self) -> bool {
        if std::mem::replace(&mut self.lock().fenced, true) {
            return false;
        }
        self.stop_all(FENCE_MESSAGE);
        true
    }

    /// Takes work again; `false` if it was not fenced.
    pub fn unfence(&self) -> bool {
        std::mem::replace(&mut self.lock().fenced, false)
    }

    pub fn heartbeat(&self) -> Heartbeat {
        let st = self.lock();
        Heartbeat {
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: self.protocol,
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
    pub fn finish(
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

    pub async fn wait_idle(&self) {
        let mut rx = self.running_count.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

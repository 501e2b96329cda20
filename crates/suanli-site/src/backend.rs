//! How an attempt is run: the [`Backend`] trait and what crosses it.
//!
//! The agent reserves cards, builds the environment and reports `Started`/`Finished`; a backend only
//! runs the command, streams its output into a [`LogSink`] and says how it ended. The local backend
//! ([`crate::local::LocalBackend`]) runs processes on this machine, the Slurm backend
//! ([`crate::slurm::SlurmBackend`]) submits batch jobs, and the Kubernetes backend
//! ([`crate::k8s::KubeBackend`]) creates Jobs; all three implement this trait.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use suanli_proto::{AttemptRef, NodeInventory, Outcome};
use suanli_types::{JobSpec, Timestamp};
use tokio::sync::watch;

use crate::inventory::ReservedNode;
use crate::logs::LogSink;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything needed to run one attempt.
#[derive(Clone, Debug)]
pub struct Launch {
    pub attempt: AttemptRef,
    pub spec: JobSpec,
    pub sku: String,
    /// Reserved slots per node, in the assignment's order.
    pub nodes: Vec<ReservedNode>,
    /// Complete job environment (see [`crate::env::build_env`]), on top of the agent's own.
    pub env: BTreeMap<String, String>,
    /// The attempt's working directory (created by the backend).
    pub work_dir: PathBuf,
}

/// How an attempt ended, as the backend saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: String,
    /// Log events emitted through the sink.
    pub log_chunks: u64,
    /// When the attempt really started and ended, if the cluster manager says (Slurm's start and
    /// end times); metering uses it instead of the agent's own clock around [`Backend::run`].
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Runs attempts. `run` resolves once the attempt and everything it started are gone.
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Runs one attempt to its end: walltime (`spec.walltime`) ends it with `TimedOut`, a stop
    /// request with `Killed`.
    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult>;

    /// The center's nodes as the cluster manager has them, for the heartbeat; `None` (the default)
    /// when the backend has no view of its own and the registered pools are the inventory.
    fn inventory(&self) -> BoxFuture<'_, Option<Result<Vec<NodeInventory>, String>>> {
        Box::pin(async { None })
    }
}

/// Asks a running attempt to stop; the first reason given wins.
#[derive(Debug)]
pub struct StopHandle(watch::Sender<Option<String>>);

/// Where a backend learns that it must stop an attempt.
#[derive(Clone, Debug)]
pub struct StopSignal(watch::Receiver<Option<String>>);

pub fn stop_channel() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(None);
    (StopHandle(tx), StopSignal(rx))
}

impl StopHandle {
    /// Whether a stop was requested (the attempt may still be ending).
    pub fn is_stopping(&self) -> bool {
        self.0.borrow().is_some()
    }

    /// Requests a stop; returns `false` if one was already requested.
    pub fn stop(&self, reason: impl Into<String>) -> bool {
        let mut reason = Some(reason.into());
        self.0.send_if_modified(|v| {
            if v.is_none() {
                *v = reason.take();
                true
            } else {
                false
            }
        })
    }
}

impl StopSignal {
    /// The reason, if a stop was requested.
    pub fn requested_now(&self) -> Option<String> {
        self.0.borrow().clone()
    }

    /// Resolves with the reason once a stop is requested; never if the handle is dropped first.
    pub async fn requested(&mut self) -> String {
        loop {
            if let Some(r) = self.0.borrow_and_update().clone() {
                return r;
            }
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn first_stop_reason_wins() {
        let (h, mut s) = stop_channel();
        assert_eq!(s.requested_now(), None);
        assert!(h.stop("hub"));
        assert!(!h.stop("shutdown"));
        assert_eq!(s.requested().await, "hub");

        let (h, mut s) = stop_channel();
        drop(h);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.requested())
                .await
                .is_err()
        );
    }
}

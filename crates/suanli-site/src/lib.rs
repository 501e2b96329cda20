//! The suanli site agent.
//!
//! Each computing center runs one agent. It only makes outbound HTTP calls to the hub: it reads the
//! center definition, heartbeats its inventory and running attempts, long-polls for assignments,
//! runs them through a [`backend::Backend`] (local processes, Slurm batch jobs: [`slurm`], or
//! Kubernetes Jobs: [`k8s`]) and
//! ships `Started`/`Log`/`Finished` events. Running jobs keep running while the hub is unreachable,
//! but only within its lease: once no heartbeat has succeeded for nearly the lease, the agent stops
//! them and takes no new work (the hub requeues their jobs elsewhere) until a heartbeat succeeds
//! again. Events wait in the outbox until the hub is back.
//!
//! [`run_agent`] is the entry point.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use suanli_client::ClientError;
use suanli_types::Timestamp;

mod agent;
pub mod backend;
pub mod env;
pub mod inventory;
pub mod k8s;
pub mod local;
pub mod logs;
mod shipper;
pub mod slurm;

pub use agent::run_agent;

/// How a site agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Hub base URLs; the client fails over between them.
    pub hubs: Vec<String>,
    /// Site token: the hub knows which center it belongs to.
    pub token: String,
    /// Attempts run in `{work_dir}/{job}-{attempt}/`.
    pub work_dir: PathBuf,
    pub heartbeat_interval: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Long-poll wait for assignments, in seconds.
    pub poll_wait_secs: u64,
    /// Take no new work (and, on shutdown, let running attempts finish).
    pub drain: bool,
    /// How to drive Slurm, for a center registered with the `slurm` backend. Unset fields are
    /// filled from `SUANLI_SLURM_*` environment variables when the agent starts (see
    /// [`slurm::SlurmConfig::with_env`]).
    pub slurm: slurm::SlurmConfig,
    /// How to drive Kubernetes, for a center registered with the `kubernetes` backend. Unset fields
    /// are filled from `SUANLI_K8S_*` environment variables when the agent starts (see
    /// [`k8s::KubeConfig::with_env`]).
    pub kube: k8s::KubeConfig,
}

impl AgentConfig {
    /// Defaults: heartbeat every 5 s, 10 s kill grace, 20 s long-poll, not draining.
    pub fn new(hubs: Vec<String>, token: String, work_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            hubs,
            token,
            work_dir,
            heartbeat_interval: Duration::from_secs(5),
            kill_grace: Duration::from_secs(10),
            poll_wait_secs: 20,
            drain: false,
            slurm: slurm::SlurmConfig::default(),
            kube: k8s::KubeConfig::default(),
        }
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("invalid site agent configuration: {0}")]
    Config(String),
    /// The hub refused to give this agent its center (bad token, wrong URL, ...).
    #[error("the hub refused the site agent: {0}")]
    Hub(#[source] ClientError),
    #[error("cannot create the working directory {path}: {source}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The wall clock, in milliseconds since the epoch. The agent is an edge of the system and reads it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Capped exponential backoff.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    next: Duration,
    initial: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, cap: Duration) -> Backoff {
        Backoff {
            next: initial,
            initial,
            cap,
        }
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.cap);
        d
    }

    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let d: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(d, [100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn config_defaults_and_clock() {
        let c = AgentConfig::new(vec!["http://hub".into()], "t".into(), "/tmp/w".into());
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.kill_grace, Duration::from_secs(10));
        assert_eq!(c.poll_wait_secs, 20);
        assert!(!c.drain);
        assert!(c.slurm.conf.is_none());
        assert_eq!(c.slurm.poll_interval, Duration::from_secs(1));
        assert!(now().millis() > 1_700_000_000_000);
    }
}

//! The suanli site agent.
//!
//! Each computing center runs one agent. It only makes outbound HTTP calls to the hub: it reads the
//! center definition, heartbeats its inventory and running attempts, long-polls for assignments,
//! runs them through a [`backend::Backend`] (local processes: [`local`], Slurm batch jobs:
//! [`slurm`], or Kubernetes Jobs: [`k8s`], one entry each in [`BACKENDS`]) under the one attempt
//! supervisor ([`supervisor`]), and ships `Started`/`Log`/`Finished` events. Running jobs keep running while the hub is unreachable,
//! but only within its lease: once no heartbeat has succeeded for nearly the lease, the agent stops
//! them and takes no new work (the hub requeues their jobs elsewhere) until a heartbeat succeeds
//! again. Events wait in the outbox until the hub is back.
//!
//! [`run_agent`] is the entry point. The heartbeat announces the agent protocol version
//! ([`suanli_proto::PROTOCOL_VERSION`]); both sides ignore fields they do not know, so an agent a
//! version older or newer than its hub keeps working.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use suanli_client::ClientError;
use suanli_types::{BackendKind, Timestamp};

mod agent;
pub mod backend;
pub mod checkpoint;
pub mod env;
pub mod inventory;
pub mod isolation;
pub mod k8s;
pub mod local;
pub mod logs;
pub mod outputs;
mod shipper;
pub mod slurm;
pub mod supervisor;
#[cfg(test)]
mod testing;
pub mod workdir;

pub use agent::run_agent;
use backend::{BackendEntry, Setting};

/// Every backend, one per kind of center (`BackendKind`). A new backend is its own module, its
/// `mod` line above and its entry here (besides its `BackendKind`); `suanli site` offers its
/// settings as flags.
pub static BACKENDS: &[BackendEntry] = &[local::BACKEND, slurm::BACKEND, k8s::BACKEND];

/// The registry entry for centers of `kind`.
pub fn backend_entry(kind: BackendKind) -> Option<&'static BackendEntry> {
    BACKENDS.iter().find(|b| b.kind == kind)
}

/// Every backend's settings.
pub fn backend_settings() -> impl Iterator<Item = &'static Setting> {
    BACKENDS.iter().flat_map(|b| b.settings)
}

/// How a site agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Hub base URLs; the client fails over between them.
    pub hubs: Vec<String>,
    /// Site token: the hub knows which center it belongs to.
    pub token: String,
    /// Attempts run in `{work_dir}/{job}-{attempt}-{random}/` (see [`workdir::attempt_dir`]).
    pub work_dir: PathBuf,
    /// How the local backend isolates jobs (default: the strongest mode this machine allows).
    pub isolation: isolation::IsolationConfig,
    /// Keep attempt folders after their attempts end (default: removed once the attempt's logs
    /// are shipped).
    pub keep_attempt_dirs: bool,
    pub heartbeat_interval: Duration,
    /// Time between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Long-poll wait for assignments, in seconds.
    pub poll_wait_secs: u64,
    /// Take no new work (and, on shutdown, let running attempts finish).
    pub drain: bool,
    /// How to drive Slurm, for a center registered with the `slurm` backend. Unset fields are
    /// filled from the `SUANLI_SLURM_*` settings when the agent starts (see [`Self::setting`]).
    pub slurm: slurm::SlurmConfig,
    /// How to drive Kubernetes, for a center registered with the `kubernetes` backend. Unset fields
    /// are filled from the `SUANLI_K8S_*` settings when the agent starts.
    pub kube: k8s::KubeConfig,
    /// Backend settings given on the command line, by environment variable name
    /// (`SUANLI_SLURM_PARTITION`); they win over the environment (see [`Self::setting`]).
    pub settings: BTreeMap<String, String>,
    /// The agent protocol version the heartbeats announce: [`suanli_proto::PROTOCOL_VERSION`]; a
    /// test of version skew sets another.
    pub protocol: u32,
    /// What one attempt may leave as outputs (files and bytes).
    pub outputs: outputs::OutputCaps,
    /// How often a running job's checkpoint folder is saved.
    pub checkpoint_every: Duration,
    /// The folders datasets may be mounted from (a dataset elsewhere is refused): the data the
    /// center offers, never the agent's own.
    pub data_roots: Vec<PathBuf>,
}

impl AgentConfig {
    /// Defaults: heartbeat every 5 s, 10 s kill grace, 20 s long-poll, not draining.
    pub fn new(hubs: Vec<String>, token: String, work_dir: PathBuf) -> AgentConfig {
        AgentConfig {
            hubs,
            token,
            work_dir,
            isolation: isolation::IsolationConfig::default(),
            keep_attempt_dirs: false,
            heartbeat_interval: Duration::from_secs(5),
            kill_grace: Duration::from_secs(10),
            poll_wait_secs: 20,
            drain: false,
            slurm: slurm::SlurmConfig::default(),
            kube: k8s::KubeConfig::default(),
            settings: BTreeMap::new(),
            protocol: suanli_proto::PROTOCOL_VERSION,
            outputs: outputs::OutputCaps::default(),
            checkpoint_every: Duration::from_secs(60),
            data_roots: Vec::new(),
        }
    }

    /// A backend setting ([`backend::Setting::env`]): as given in [`Self::settings`], else from
    /// the environment; blank counts as unset.
    pub fn setting(&self, env: &str) -> Option<String> {
        self.settings
            .get(env)
            .cloned()
            .or_else(|| std::env::var(env).ok())
            .filter(|v| !v.trim().is_empty())
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
        assert_eq!(c.protocol, suanli_proto::PROTOCOL_VERSION);
        assert!(now().millis() > 1_700_000_000_000);
    }

    #[test]
    fn settings_win_over_the_environment() {
        let mut c = AgentConfig::new(vec!["http://hub".into()], "t".into(), "/tmp/w".into());
        c.settings
            .insert("SUANLI_TEST_SETTING_GIVEN".into(), "given".into());
        c.settings
            .insert("SUANLI_TEST_SETTING_BLANK".into(), " ".into());
        assert_eq!(
            c.setting("SUANLI_TEST_SETTING_GIVEN").as_deref(),
            Some("given")
        );
        assert_eq!(c.setting("SUANLI_TEST_SETTING_BLANK"), None);
        assert_eq!(c.setting("SUANLI_TEST_SETTING_UNSET"), None);
        // From the settings into a backend's own configuration.
        c.settings
            .insert("SUANLI_SLURM_PARTITION".into(), "gpu".into());
        let s = c.slurm.clone().with_vars(|k| c.setting(k));
        assert_eq!(s.partition.as_deref(), Some("gpu"));
    }

    #[test]
    fn every_center_kind_has_one_backend_with_its_own_settings() {
        for kind in [
            BackendKind::Local,
            BackendKind::Slurm,
            BackendKind::Kubernetes,
        ] {
            assert_eq!(
                BACKENDS.iter().filter(|b| b.kind == kind).count(),
                1,
                "{kind:?}"
            );
            assert!(backend_entry(kind).is_some());
        }
        let flags: Vec<&str> = backend_settings().map(|s| s.flag).collect();
        let envs: std::collections::BTreeSet<&str> = backend_settings().map(|s| s.env).collect();
        assert_eq!(envs.len(), flags.len(), "one variable per setting");
        let unique: std::collections::BTreeSet<&str> = flags.iter().copied().collect();
        assert_eq!(unique.len(), flags.len(), "one flag per setting");
        assert!(backend_settings().all(|s| s.env.starts_with("SUANLI_") && !s.help.is_empty()));
    }
}

//! How an attempt is run: the narrow [`Backend`] trait a cluster manager is driven through, and
//! what crosses it.
//!
//! A backend only translates: [`Backend::submit`] hands the attempt to the cluster manager,
//! [`Backend::poll`] says where it is ([`Phase`]), [`Backend::cancel`] stops it, [`Backend::logs`]
//! ships its output and [`Backend::finish`] cleans up after it. Everything that is the same for
//! every cluster manager (the wall time, the kill grace, counting an attempt that vanished, why the
//! agent stopped it, and the outcome and metered span that follow) is the attempt supervisor's
//! ([`crate::supervisor`]), which drives every backend the same way and gives the agent a
//! [`Runner`]. The local backend ([`crate::local::LocalBackend`]) runs processes on this machine,
//! the Slurm backend ([`crate::slurm::SlurmBackend`]) submits batch jobs, and the Kubernetes
//! backend ([`crate::k8s::KubeBackend`]) creates Jobs.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use suanli_proto::{AttemptRef, NodeInventory, Outcome};
use suanli_types::spec::signal::WarnSignal;
use suanli_types::{BackendKind, CenterSpec, JobSpec, Timestamp};
use tokio::sync::watch;

use crate::AgentConfig;
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
    /// The job's environment (see [`crate::env::build_env`]); a backend adds only a fixed `PATH`
    /// and `HOME` (see [`crate::isolation::job_env`]), nothing of the agent's own.
    pub env: BTreeMap<String, String>,
    /// The attempt's folder (created by the backend, exclusively: see [`crate::workdir`]).
    pub work_dir: PathBuf,
    /// The datasets the job reads (mounted read-only; see [`Backend::cuts_network`]).
    pub datasets: Vec<suanli_proto::DatasetMount>,
    /// The job's checkpoint folder (relative) and the files of the last checkpoint an earlier
    /// attempt saved, written into it before the job starts.
    pub checkpoint: Option<Checkpoint>,
}

/// A job's checkpoint folder (relative to the attempt folder) and the files (path, content) of
/// the last checkpoint saved, to write into it.
pub type Checkpoint = (String, Vec<(String, Vec<u8>)>);

/// How an attempt ended, as the agent reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: String,
    /// Log events emitted through the sink.
    pub log_chunks: u64,
    /// When the attempt really started and ended, if known (the cluster manager's times where it
    /// gives them); metering uses it instead of the agent's own clock around [`Runner::run`].
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Where an attempt is, as the cluster manager shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Queued or being set up; the cluster manager's reason, when it gives one.
    Waiting(Option<String>),
    /// Running, or ending but still holding its cards. `since`: its start by the cluster manager's
    /// clock, when it says; the wall time counts from there (else from when the agent saw it).
    Running { since: Option<Timestamp> },
    /// Ended.
    Ended(Exit),
    /// The cluster manager does not know the attempt (any more); what that means here. An attempt
    /// gone for [`crate::supervisor::VANISHED_AFTER_POLLS`] polls in a row has ended.
    Gone(String),
}

/// How an attempt ended, as the cluster manager says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: String,
    /// It ended because it was cancelled or killed. When the agent had asked for that, the reason
    /// the agent stopped it is the outcome; otherwise `outcome` stands (someone else did it).
    pub cancelled: bool,
}

impl Exit {
    pub fn new(outcome: Outcome, exit_code: Option<i32>, message: impl Into<String>) -> Exit {
        Exit {
            outcome,
            exit_code,
            message: message.into(),
            cancelled: false,
        }
    }

    /// Cancelled or killed; `outcome` and `message` say what it means if the agent did not ask.
    pub fn cancelled(outcome: Outcome, exit_code: Option<i32>, message: impl Into<String>) -> Exit {
        Exit {
            cancelled: true,
            ..Exit::new(outcome, exit_code, message)
        }
    }
}

/// A submit that did not reach the cluster manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitError {
    pub message: String,
    /// The cluster manager could not be reached (or was overloaded): not the job's fault. Reported
    /// as `Killed`, which makes the hub place the job again; otherwise `Failed`.
    pub transient: bool,
}

impl SubmitError {
    pub fn failed(message: impl Into<String>) -> SubmitError {
        SubmitError {
            message: message.into(),
            transient: false,
        }
    }

    pub fn transient(message: impl Into<String>) -> SubmitError {
        SubmitError {
            message: message.into(),
            transient: true,
        }
    }
}

/// When the attempt ran by the cluster manager's clocks: start and end, where it says.
pub type Span = (Option<Timestamp>, Option<Timestamp>);

/// How the supervisor paces one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Between two polls.
    pub poll: Duration,
    /// Between two log reads; `None`: right after each successful poll (what is read depends on
    /// what the poll saw).
    pub logs: Option<Duration>,
    /// The agent's own wall-time stop comes this much after the limit, for a backend whose
    /// cluster manager enforces the limit itself.
    pub walltime_slack: Duration,
    /// After a stop, how long beyond the kill grace the cluster manager may take to confirm the
    /// end before the agent gives up waiting.
    pub cancel_wait: Duration,
}

impl Pace {
    /// Polls every `poll`, reads logs every [`crate::logs::FLUSH_INTERVAL`], stops at the wall
    /// time itself, and waits `cancel_wait` for the confirmation of a stop.
    pub const fn new(poll: Duration, cancel_wait: Duration) -> Pace {
        Pace {
            poll,
            logs: Some(crate::logs::FLUSH_INTERVAL),
            walltime_slack: Duration::ZERO,
            cancel_wait,
        }
    }
}

/// Runs a backend's startup checks, for at most [`STARTUP_WAIT`]: an unreachable cluster
/// manager must not keep the center offline.
pub(crate) async fn startup_checks(manager: &str, checks: impl Future<Output = ()>) {
    if tokio::time::timeout(STARTUP_WAIT, checks).await.is_err() {
        tracing::warn!(
            manager,
            "the cluster manager did not answer the startup checks in time; going on without them"
        );
    }
}

/// `backend` under the supervisor, with the agent's kill grace.
pub(crate) fn supervised<B: Backend>(backend: B, config: &AgentConfig) -> Arc<dyn Runner> {
    Arc::new(crate::supervisor::Supervised::new(
        backend,
        config.kill_grace,
    ))
}

/// Longest wait for a backend's startup checks.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// The narrow interface to a cluster manager: a backend translates, the supervisor decides.
///
/// Every method gets the backend's own handle on the attempt, [`Backend::Job`]; none of them waits
/// for the attempt to end. A new backend is a module with an implementation of this trait and a
/// [`BackendEntry`], its `mod` line and its entry in [`crate::BACKENDS`] (`lib.rs`), and a
/// `BackendKind` for its centers (`suanli-types`).
pub trait Backend: Send + Sync + 'static {
    /// One submitted attempt as the backend tracks it; its `Display` names it in messages
    /// (`Slurm job 101`).
    type Job: Send + Display;

    fn pace(&self) -> Pace;

    /// Whether this backend can run an attempt without network access (for data whose policy
    /// forbids egress); a backend that cannot is never given such an attempt.
    fn cuts_network(&self) -> bool {
        false
    }

    /// Hands the attempt to the cluster manager (preparing its working directory where the
    /// backend runs it on a file system the agent sees).
    fn submit(
        &self,
        launch: &Launch,
    ) -> impl Future<Output = Result<Self::Job, SubmitError>> + Send;

    /// Where the attempt is now. `Ok(None)`: nothing new since the last poll (a backend that asks
    /// its cluster manager on its own schedule); `Err`: the cluster manager could not be asked
    /// (the attempt is not affected).
    fn poll(
        &self,
        job: &mut Self::Job,
    ) -> impl Future<Output = Result<Option<Phase>, String>> + Send;

    /// Stops the attempt: first with `force` unset (SIGTERM, `scancel`, delete), and with `force`
    /// once the kill grace has passed (SIGKILL, where the backend itself enforces the grace).
    fn cancel(&self, job: &mut Self::Job, force: bool) -> impl Future<Output = ()> + Send;

    /// Sends the job's warning signal now (`--signal`: before the wall time runs out, and before
    /// a stop of the agent's); `false` when nothing received it. The default, for a cluster
    /// manager that cannot signal a running job (Kubernetes), sends nothing: the stop that
    /// follows (SIGTERM, then the grace) is the job's only warning.
    fn warn(&self, job: &mut Self::Job, w: &WarnSignal) -> impl Future<Output = bool> + Send {
        let _ = (job, w);
        async { false }
    }

    /// Ships what the attempt wrote since the last call.
    fn logs(&self, job: &mut Self::Job, sink: &mut LogSink) -> impl Future<Output = ()> + Send;

    /// After the end (or after the agent gave up waiting for it): ships the rest of the output,
    /// removes what the attempt left behind, and says when it ran by the cluster manager's clocks.
    fn finish(&self, job: Self::Job, sink: &mut LogSink) -> impl Future<Output = Span> + Send;

    /// The center's nodes as the cluster manager has them, for the heartbeat; `None` (the
    /// default) when the backend has no view of its own and the registered pools are the
    /// inventory.
    fn inventory(&self) -> impl Future<Output = Option<Result<Vec<NodeInventory>, String>>> + Send {
        async { None }
    }
}

/// What the agent runs attempts through: a [`Backend`] under the supervisor
/// ([`crate::supervisor::Supervised`]), or a fake in tests.
pub trait Runner: Send + Sync + 'static {
    /// Runs one attempt to its end: resolves once the attempt and everything it started are gone.
    /// The wall time (`spec.walltime`) ends it with `TimedOut`, a stop request with `Killed`.
    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult>;

    /// See [`Backend::inventory`].
    fn inventory(&self) -> BoxFuture<'_, Option<Result<Vec<NodeInventory>, String>>> {
        Box::pin(async { None })
    }
}

/// One setting of a backend: the flag `suanli site --<flag>`, and the environment variable read
/// when the flag is not given (see [`AgentConfig::setting`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub flag: &'static str,
    pub env: &'static str,
    pub help: &'static str,
}

/// How a backend starts: its [`Runner`], or why the agent cannot start.
pub type StartFn = for<'a> fn(
    &'a CenterSpec,
    &'a AgentConfig,
) -> BoxFuture<'a, Result<Arc<dyn Runner>, crate::SiteError>>;

/// A backend in the registry ([`crate::BACKENDS`]): the kind of center it serves, its settings,
/// and how it starts.
#[derive(Clone, Copy, Debug)]
pub struct BackendEntry {
    pub kind: BackendKind,
    pub settings: &'static [Setting],
    /// Makes the center's [`Runner`] (the backend under the supervisor) after the backend's
    /// startup checks, which are bounded: an unreachable cluster manager must not keep the center
    /// offline.
    /// A check that must pass (the local backend's isolation mode) fails the agent's start.
    pub start: StartFn,
}

/// Asks a running attempt to stop; the first reason given wins.
#[derive(Debug)]
pub struct StopHandle(watch::Sender<Option<String>>);

/// Where the supervisor learns that it must stop an attempt.
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

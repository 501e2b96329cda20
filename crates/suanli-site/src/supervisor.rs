//! The attempt supervisor: one loop that drives an attempt through any [`Backend`].
//!
//! It owns what is the same for every cluster manager: it submits (or does not, when a stop came
//! first), polls at the backend's [`Pace`], ships logs, counts the wall time from the start
//! (the cluster manager's start time where it gives one), stops the attempt when asked or at the
//! wall time (cancel, then force after the kill grace, then gives up waiting for a confirmation),
//! sends the job's warning signal (`--signal`) its lead before the wall time and before a stop,
//! counts an attempt that vanished from the cluster manager, and maps all of that to the outcome,
//! exit code, message and metered span the agent reports. The decisions are in [`Watch`], which is
//! pure (the time is an argument) and unit-tested; [`supervise`] is the thin tokio loop around it.

use std::time::Duration;

use suanli_proto::{NodeInventory, Outcome};
use suanli_types::Timestamp;
use suanli_types::spec::signal::WarnSignal;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{
    Backend, BoxFuture, Exit, Launch, Phase, RunResult, Runner, Span, StopSignal,
};
use crate::logs::LogSink;
use crate::now;

/// An attempt the cluster manager has not shown for this many polls in a row has left it.
pub const VANISHED_AFTER_POLLS: u32 = 3;

/// Why the agent itself stopped an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The hub (cancel, preemption, stale attempt) or the agent (shutdown, fence) asked; the reason.
    Requested(String),
    /// The wall time, in seconds, ran out.
    Walltime(u64),
}

/// How the wait for an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// The cluster manager showed its end.
    Exit(Exit),
    /// Gone from the cluster manager for [`VANISHED_AFTER_POLLS`] polls; what that means.
    Vanished(String),
    /// Stopped by the agent, and the cluster manager did not confirm the end in time; the job's
    /// name.
    Unconfirmed(String),
}

/// What one poll changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Nothing,
    /// Waiting, for a reason not seen before.
    Waiting(String),
    /// Running for the first time, started at `since` (the cluster manager's time, else now).
    Started {
        since: Timestamp,
    },
    Ended(End),
}

/// What the agent reports for an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concluded {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: String,
    /// Start and end, for metering.
    pub span: (Timestamp, Timestamp),
}

/// What the supervisor knows of one attempt, and what follows from it. No clock, no I/O.
#[derive(Clone, Debug, Default)]
pub struct Watch {
    stop: Option<Stop>,
    /// When the agent first saw it running.
    seen_start: Option<Timestamp>,
    /// When the wait ended.
    seen_end: Option<Timestamp>,
    /// Polls in a row that did not find it.
    misses: u32,
    /// The last reason given for waiting.
    waiting: Option<String>,
}

impl Watch {
    /// Takes the phase one poll saw at `now`.
    pub fn observe(&mut self, phase: Phase, now: Timestamp) -> Seen {
        if !matches!(phase, Phase::Gone(_)) {
            self.misses = 0;
        }
        match phase {
            Phase::Waiting(Some(reason)) if self.waiting.as_ref() != Some(&reason) => {
                self.waiting = Some(reason.clone());
                Seen::Waiting(reason)
            }
            Phase::Waiting(_) => Seen::Nothing,
            Phase::Running { since } if self.seen_start.is_none() => {
                self.seen_start = Some(now);
                Seen::Started {
                    since: since.unwrap_or(now),
                }
            }
            Phase::Running { .. } => Seen::Nothing,
            Phase::Ended(exit) => {
                self.seen_end = Some(now);
                Seen::Ended(End::Exit(exit))
            }
            Phase::Gone(what) => {
                self.misses += 1;
                if self.misses < VANISHED_AFTER_POLLS {
                    return Seen::Nothing;
                }
                self.seen_end = Some(now);
                Seen::Ended(End::Vanished(what))
            }
        }
    }

    /// The agent stops the attempt; `false` if it already did (the first reason stands).
    pub fn stop(&mut self, stop: Stop) -> bool {
        if self.stop.is_some() {
            return false;
        }
        self.stop = Some(stop);
        true
    }

    /// Whether the attempt was seen running.
    pub fn started(&self) -> bool {
        self.seen_start.is_some()
    }

    pub fn stopping(&self) -> bool {
        self.stop.is_some()
    }

    /// The agent stops waiting for the end of the attempt `job` at `now`.
    pub fn give_up(&mut self, job: String, now: Timestamp) -> End {
        self.seen_end = Some(now);
        End::Unconfirmed(job)
    }

    /// The outcome, exit code, message and metered span of an attempt whose wait ended with
    /// `end`; `cluster` is when it ran by the cluster manager's clocks, `now` the time.
    ///
    /// A stop of the agent's decides the outcome of an attempt that ended because it was cancelled
    /// (`Killed` with the reason, or `TimedOut` at the wall time), vanished or never confirmed its
    /// end; an attempt that ended by itself keeps its own outcome. A wall time that ran out before
    /// the attempt ever started (the cluster had no room) is `Killed`, so that the hub places the
    /// job again. The span is the cluster manager's where it gives one, else what the agent saw;
    /// an attempt never seen running has none.
    pub fn conclude(&self, end: End, cluster: Span, now: Timestamp) -> Concluded {
        let by_stop = |code: Option<i32>| self.stop.as_ref().map(|s| stopped(s, code));
        let (mut outcome, exit_code, mut message) = match end {
            End::Exit(x) if x.cancelled => {
                by_stop(x.exit_code).unwrap_or((x.outcome, x.exit_code, x.message))
            }
            End::Exit(x) => (x.outcome, x.exit_code, x.message),
            End::Vanished(what) => by_stop(None).unwrap_or((Outcome::Failed, None, what)),
            End::Unconfirmed(job) => {
                let (o, _, m) = by_stop(None).unwrap_or((Outcome::Killed, None, String::new()));
                (o, None, format!("{m} (the end of {job} was not confirmed)"))
            }
        };
        let end_at = cluster.1.or(self.seen_end).unwrap_or(now);
        let start_at = cluster.0.or(self.seen_start).unwrap_or(end_at);
        let start_at = Timestamp(start_at.millis().min(end_at.millis()));
        if outcome == Outcome::TimedOut
            && cluster.0.is_none()
            && self.seen_start.is_none()
            && !matches!(self.stop, Some(Stop::Requested(_)))
        {
            outcome = Outcome::Killed;
            message = format!(
                "the job did not start within the wall-time limit{}",
                self.waiting
                    .as_ref()
                    .map(|w| format!(" (last: {w})"))
                    .unwrap_or_default()
            );
        }
        Concluded {
            outcome,
            exit_code,
            message,
            span: (start_at, end_at),
        }
    }
}

fn stopped(stop: &Stop, code: Option<i32>) -> (Outcome, Option<i32>, String) {
    match stop {
        Stop::Requested(reason) => (Outcome::Killed, code, reason.clone()),
        Stop::Walltime(secs) => (
            Outcome::TimedOut,
            code,
            format!("wall-time limit of {secs} s reached"),
        ),
    }
}

/// How much of a wall time of `walltime_secs` is left at `now` for an attempt that started at
/// `since`.
pub fn walltime_left(walltime_secs: u64, since: Timestamp, now: Timestamp) -> Duration {
    let limit = i64::try_from(walltime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let left = limit.saturating_sub(now.millis_since(since));
    Duration::from_millis(u64::try_from(left).unwrap_or(0))
}

/// When, after an attempt that started at `since` was seen at `now`, its warning signal goes
/// out: `lead_secs` before the end of a wall time of `walltime_secs` (at once when that is past).
pub fn warn_in(walltime_secs: u64, lead_secs: u32, since: Timestamp, now: Timestamp) -> Duration {
    walltime_left(walltime_secs, since, now).saturating_sub(Duration::from_secs(lead_secs.into()))
}

/// How long a stop of the agent's waits between the job's warning signal and the SIGTERM: the
/// warning's lead, at most the kill grace (a cancel is not held up for long).
pub fn warn_pause(lead_secs: u32, kill_grace: Duration) -> Duration {
    Duration::from_secs(lead_secs.into()).min(kill_grace)
}

/// A backend under the supervisor: what the agent runs attempts through.
#[derive(Debug)]
pub struct Supervised<B> {
    backend: B,
    kill_grace: Duration,
}

impl<B: Backend> Supervised<B> {
    /// `kill_grace`: between the stop and the forced stop of an attempt.
    pub fn new(backend: B, kill_grace: Duration) -> Supervised<B> {
        Supervised {
            backend,
            kill_grace,
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }
}

impl<B: Backend> Runner for Supervised<B> {
    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult> {
        Box::pin(supervise(
            &self.backend,
            self.kill_grace,
            launch,
            logs,
            stop,
        ))
    }

    fn inventory(&self) -> BoxFuture<'_, Option<Result<Vec<NodeInventory>, String>>> {
        Box::pin(self.backend.inventory())
    }
}

/// Far enough never to come.
fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Runs one attempt through `b` to its end (see [`Watch`] for what decides what).
pub async fn supervise<B: Backend>(
    b: &B,
    kill_grace: Duration,
    launch: Launch,
    mut logs: LogSink,
    mut stop: StopSignal,
) -> RunResult {
    let r = launch.attempt;
    let not_run = |outcome, message, logs: &LogSink| RunResult {
        outcome,
        exit_code: None,
        message,
        log_chunks: logs.emitted(),
        span: None,
    };
    if let Some(reason) = stop.requested_now() {
        return not_run(Outcome::Killed, reason, &logs);
    }
    if let Some(d) = launch.datasets.iter().find(|d| !d.egress)
        && !b.cuts_network()
    {
        let message = format!(
            "dataset {} forbids network egress, and this site cannot run a job without network \
             access (its local backend needs --isolation bwrap)",
            d.name
        );
        return not_run(Outcome::Failed, message, &logs);
    }
    let mut job = match b.submit(&launch).await {
        Ok(job) => job,
        Err(e) if e.transient => return not_run(Outcome::Killed, e.message, &logs),
        Err(e) => return not_run(Outcome::Failed, e.message, &logs),
    };
    tracing::info!(job = %r.job, attempt = r.attempt, backend_job = %job, "submitted");

    let pace = b.pace();
    let mut polls = tokio::time::interval(pace.poll);
    polls.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let log_every = pace.logs.unwrap_or(Duration::from_secs(3600));
    let mut log_ticks = tokio::time::interval_at(Instant::now() + log_every, log_every);
    log_ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut w = Watch::default();
    let warning = launch.spec.warn_signal();
    let mut warned = false;
    let mut warn_at: Option<Instant> = None;
    let mut term_at: Option<Instant> = None;
    let mut walltime_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut failing = false;
    let end = loop {
        let stop_now = tokio::select! {
            _ = polls.tick() => {
                let phase = match b.poll(&mut job).await {
                    Ok(p) => p,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(backend_job = %job, error = %e, "cannot read the attempt from the cluster manager; it keeps running, retrying");
                            failing = true;
                        }
                        continue;
                    }
                };
                if std::mem::take(&mut failing) {
                    tracing::info!(backend_job = %job, "the cluster manager answers again");
                }
                if pace.logs.is_none() {
                    b.logs(&mut job, &mut logs).await;
                }
                match phase.map(|p| w.observe(p, now())) {
                    Some(Seen::Started { since }) => {
                        let left = walltime_left(launch.spec.walltime, since, now());
                        walltime_at = Some(Instant::now() + left + pace.walltime_slack);
                        warn_at = warning.map(|sig| {
                            Instant::now() + warn_in(launch.spec.walltime, sig.lead_secs, since, now())
                        });
                        tracing::debug!(backend_job = %job, "running");
                    }
                    Some(Seen::Waiting(reason)) => {
                        tracing::info!(backend_job = %job, reason = %reason, "waiting in the cluster manager");
                    }
                    Some(Seen::Ended(end)) => break end,
                    Some(Seen::Nothing) | None => {}
                }
                None
            }
            _ = log_ticks.tick(), if pace.logs.is_some() => {
                b.logs(&mut job, &mut logs).await;
                None
            }
            reason = stop.requested(), if !w.stopping() => Some(Stop::Requested(reason)),
            () = tokio::time::sleep_until(walltime_at.unwrap_or_else(far)), if walltime_at.is_some() && !w.stopping() => {
                Some(Stop::Walltime(launch.spec.walltime))
            }
            () = tokio::time::sleep_until(warn_at.unwrap_or_else(far)), if warn_at.is_some() && !warned => {
                warned = true;
                if let Some(sig) = &warning {
                    send_warning(b, &mut job, sig, "before the wall time runs out").await;
                }
                None
            }
            () = tokio::time::sleep_until(term_at.unwrap_or_else(far)), if term_at.is_some() => {
                term_at = None;
                kill_at = Some(Instant::now() + kill_grace);
                give_up_at = Some(Instant::now() + kill_grace + pace.cancel_wait);
                b.cancel(&mut job, false).await;
                None
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or_else(far)), if kill_at.is_some() => {
                kill_at = None;
                tracing::info!(backend_job = %job, "kill grace over: forcing the stop");
                b.cancel(&mut job, true).await;
                None
            }
            () = tokio::time::sleep_until(give_up_at.unwrap_or_else(far)), if give_up_at.is_some() => {
                tracing::warn!(backend_job = %job, "the cluster manager did not confirm the end of a stopped attempt in time");
                break w.give_up(job.to_string(), now());
            }
        };
        if let Some(s) = stop_now {
            tracing::info!(job = %r.job, attempt = r.attempt, backend_job = %job, stop = ?s, "stopping");
            w.stop(s);
            // A running job that asked to be warned and was not yet: the warning first, the
            // stop after a pause to act on it (none where the warning reached nothing).
            let started = w.started();
            let pause = match warning.filter(|_| started && !std::mem::replace(&mut warned, true)) {
                Some(sig) if send_warning(b, &mut job, &sig, "before it is stopped").await => {
                    warn_pause(sig.lead_secs, kill_grace)
                }
                _ => Duration::ZERO,
            };
            if pause.is_zero() {
                kill_at = Some(Instant::now() + kill_grace);
                give_up_at = Some(Instant::now() + kill_grace + pace.cancel_wait);
                b.cancel(&mut job, false).await;
            } else {
                term_at = Some(Instant::now() + pause);
            }
        }
    };
    let name = job.to_string();
    let cluster = b.finish(job, &mut logs).await;
    let c = w.conclude(end, cluster, now());
    tracing::info!(job = %r.job, attempt = r.attempt, backend_job = %name, outcome = ?c.outcome, "attempt ended");
    RunResult {
        outcome: c.outcome,
        exit_code: c.exit_code,
        message: c.message,
        log_chunks: logs.emitted(),
        span: Some(c.span),
    }
}

/// Sends the job's warning signal through `b`, saying so in the agent's log; whether it reached
/// the job.
async fn send_warning<B: Backend>(b: &B, job: &mut B::Job, sig: &WarnSignal, when: &str) -> bool {
    let sent = b.warn(job, sig).await;
    if sent {
        tracing::info!(backend_job = %job, signal = sig.name, "sent the job's warning signal {when}");
    } else {
        tracing::info!(backend_job = %job, signal = sig.name, "the job's warning signal {when} was not delivered (the cluster manager cannot, or nothing of the job runs)");
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_000_000);

    fn at(secs: i64) -> Timestamp {
        T0.plus_millis(secs * 1000)
    }

    fn exit(outcome: Outcome, code: Option<i32>, message: &str) -> Phase {
        Phase::Ended(Exit::new(outcome, code, message))
    }

    #[test]
    fn an_attempt_that_ends_by_itself_keeps_its_outcome_and_the_agents_times() {
        let mut w = Watch::default();
        assert_eq!(w.observe(Phase::Waiting(None), at(0)), Seen::Nothing);
        assert_eq!(
            w.observe(Phase::Waiting(Some("Priority".into())), at(1)),
            Seen::Waiting("Priority".into())
        );
        assert_eq!(
            w.observe(Phase::Waiting(Some("Priority".into())), at(2)),
            Seen::Nothing,
            "a reason is told once"
        );
        assert_eq!(
            w.observe(Phase::Running { since: None }, at(3)),
            Seen::Started { since: at(3) }
        );
        assert_eq!(
            w.observe(Phase::Running { since: None }, at(4)),
            Seen::Nothing
        );
        let Seen::Ended(end) =
            w.observe(exit(Outcome::Failed, Some(3), "exited with code 3"), at(9))
        else {
            panic!()
        };
        // A stop that came too late does not change an end of the attempt's own.
        w.stop(Stop::Requested("cancelled".into()));
        assert_eq!(
            w.conclude(end, (None, None), at(20)),
            Concluded {
                outcome: Outcome::Failed,
                exit_code: Some(3),
                message: "exited with code 3".into(),
                span: (at(3), at(9)),
            }
        );
    }

    #[test]
    fn the_cluster_managers_times_win_and_a_start_never_follows_the_end() {
        let mut w = Watch::default();
        assert_eq!(
            w.observe(
                Phase::Running {
                    since: Some(at(-5))
                },
                at(0)
            ),
            Seen::Started { since: at(-5) }
        );
        let end = End::Exit(Exit::new(Outcome::Succeeded, Some(0), ""));
        assert_eq!(
            w.conclude(end.clone(), (Some(at(-4)), Some(at(6))), at(9))
                .span,
            (at(-4), at(6))
        );
        assert_eq!(
            w.conclude(end.clone(), (Some(at(8)), Some(at(6))), at(9))
                .span,
            (at(6), at(6))
        );
        // Never seen running, no times from the cluster manager: nothing to meter.
        let w = Watch::default();
        assert_eq!(w.conclude(end, (None, None), at(9)).span, (at(9), at(9)));
    }

    #[test]
    fn a_stop_decides_the_outcome_of_what_it_cancelled() {
        let cancelled = || {
            End::Exit(Exit::cancelled(
                Outcome::Failed,
                None,
                "cancelled by someone else",
            ))
        };
        let mut w = Watch::default();
        w.observe(Phase::Running { since: None }, at(0));
        // Nobody at the agent asked: the cluster manager's word stands.
        assert_eq!(
            w.conclude(cancelled(), (None, None), at(5)).message,
            "cancelled by someone else"
        );
        assert!(w.stop(Stop::Requested("killed at the hub's request".into())));
        assert!(!w.stop(Stop::Walltime(60)), "the first reason stands");
        let c = w.conclude(
            End::Exit(Exit::cancelled(Outcome::Failed, Some(143), "")),
            (None, None),
            at(5),
        );
        assert_eq!(
            (c.outcome, c.exit_code, c.message.as_str()),
            (Outcome::Killed, Some(143), "killed at the hub's request")
        );

        let mut w = Watch::default();
        w.observe(Phase::Running { since: None }, at(0));
        w.stop(Stop::Walltime(60));
        let c = w.conclude(cancelled(), (None, None), at(61));
        assert_eq!(
            (c.outcome, c.message.as_str()),
            (Outcome::TimedOut, "wall-time limit of 60 s reached")
        );
        let c = w.conclude(End::Unconfirmed("Slurm job 7".into()), (None, None), at(61));
        assert_eq!(
            (c.outcome, c.exit_code, c.message.as_str()),
            (
                Outcome::TimedOut,
                None,
                "wall-time limit of 60 s reached (the end of Slurm job 7 was not confirmed)"
            )
        );
    }

    #[test]
    fn an_attempt_vanishes_after_three_polls_without_it() {
        let gone = || Phase::Gone("left the queue".into());
        let mut w = Watch::default();
        assert_eq!(w.observe(gone(), at(0)), Seen::Nothing);
        assert_eq!(w.observe(gone(), at(1)), Seen::Nothing);
        w.observe(Phase::Running { since: None }, at(2));
        assert_eq!(
            w.observe(gone(), at(3)),
            Seen::Nothing,
            "counting starts again"
        );
        assert_eq!(w.observe(gone(), at(4)), Seen::Nothing);
        let Seen::Ended(end) = w.observe(gone(), at(5)) else {
            panic!()
        };
        assert_eq!(end, End::Vanished("left the queue".into()));
        let c = w.conclude(end.clone(), (None, None), at(9));
        assert_eq!(
            (c.outcome, c.message.as_str(), c.span),
            (Outcome::Failed, "left the queue", (at(2), at(5)))
        );
        w.stop(Stop::Requested("site agent stopped".into()));
        assert_eq!(
            w.conclude(end, (None, None), at(9)).outcome,
            Outcome::Killed
        );
    }

    #[test]
    fn a_wall_time_over_before_the_start_is_requeued() {
        let mut w = Watch::default();
        w.observe(
            Phase::Waiting(Some("0/4 nodes are available".into())),
            at(0),
        );
        w.stop(Stop::Walltime(60));
        let end = End::Exit(Exit::cancelled(Outcome::Failed, None, ""));
        let c = w.conclude(end.clone(), (None, None), at(90));
        assert_eq!(
            (c.outcome, c.message.as_str()),
            (
                Outcome::Killed,
                "the job did not start within the wall-time limit (last: 0/4 nodes are available)"
            )
        );
        // It did start, by the cluster manager's clock: timed out.
        assert_eq!(
            w.conclude(end, (Some(at(10)), None), at(90)).outcome,
            Outcome::TimedOut
        );
    }

    #[test]
    fn the_warning_comes_its_lead_before_the_wall_time_and_pauses_a_stop_at_most_the_grace() {
        assert_eq!(warn_in(600, 120, at(0), at(0)), Duration::from_secs(480));
        assert_eq!(
            warn_in(600, 120, at(-500), at(0)),
            Duration::ZERO,
            "past: at once"
        );
        assert_eq!(warn_in(600, 0, at(-100), at(0)), Duration::from_secs(500));
        let grace = Duration::from_secs(10);
        assert_eq!(warn_pause(120, grace), grace);
        assert_eq!(warn_pause(3, grace), Duration::from_secs(3));
        assert_eq!(warn_pause(0, grace), Duration::ZERO);
    }

    #[test]
    fn walltime_counts_from_the_start() {
        assert_eq!(walltime_left(60, at(0), at(0)), Duration::from_secs(60));
        assert_eq!(walltime_left(60, at(-50), at(0)), Duration::from_secs(10));
        assert_eq!(walltime_left(60, at(-90), at(0)), Duration::ZERO);
        assert_eq!(
            walltime_left(u64::MAX, at(0), at(0)).as_secs(),
            i64::MAX as u64 / 1000
        );
    }
}

//! Taking work: the assignment long-poll, accepting or refusing an assignment, and running an
//! accepted attempt through the backend to its `Finished` event.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use suanli_client::Client;
use suanli_proto::{AgentEvent, Assignment, AttemptRef, EventKind, Outcome};
use tokio::time::Instant;

use super::{Ctx, HUB_KILL_MESSAGE, MIN_POLL_PERIOD};
use crate::backend::{Launch, RunResult, StopSignal, stop_channel};
use crate::env::{build_env, card_seconds};
use crate::inventory::ReserveError;
use crate::logs::{LogSink, Outbox};
use crate::workdir::attempt_dir;
use crate::{Backoff, now};

pub(super) async fn poll_loop(client: Arc<Client>, ctx: Arc<Ctx>, outbox: Outbox) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        if !ctx.shared.takes_work() {
            tokio::time::sleep(ctx.config.heartbeat_interval).await;
            continue;
        }
        let began = Instant::now();
        match client.assignments(ctx.config.poll_wait_secs).await {
            Ok(list) => {
                backoff.reset();
                for r in list.kill {
                    ctx.shared.stop(r, HUB_KILL_MESSAGE);
                }
                let mut new = 0;
                for a in list.assignments {
                    if accept(&ctx, a, &outbox) {
                        new += 1;
                    }
                }
                if new == 0 {
                    tokio::time::sleep_until(began + MIN_POLL_PERIOD).await;
                }
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if e.is_transient() {
                    tracing::warn!(error = %e, ?delay, "polling for assignments failed");
                } else {
                    tracing::error!(error = %e, ?delay, "hub refused the assignment poll");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Handles one assignment: ignores one already seen (or any while draining or fenced), refuses one
/// whose cards are not free here (reported as `Killed`, so that the hub requeues the job), starts the
/// rest. Returns whether it was new.
pub(super) fn accept(ctx: &Arc<Ctx>, a: Assignment, outbox: &Outbox) -> bool {
    let r = AttemptRef {
        job: a.job,
        attempt: a.attempt,
    };
    let (reserved, stop) = {
        let mut st = ctx.shared.lock();
        if st.draining || st.fenced || st.seen.contains(&r) {
            return false;
        }
        st.seen.insert(r);
        match st.inventory.reserve(&a.sku, &a.nodes) {
            Ok(reserved) => {
                let (handle, signal) = stop_channel();
                st.running.insert(r, handle);
                ctx.shared.running_count.send_replace(st.running.len());
                (reserved, signal)
            }
            Err(e @ ReserveError::NotEnough { .. })
                if st.running.values().any(|h| h.is_stopping()) =>
            {
                // Cards still held by attempts being stopped (cancelled, preempted): take the
                // assignment at a later poll, once they are gone.
                st.seen.remove(&r);
                tracing::debug!(job = %r.job, attempt = r.attempt, error = %e, "assignment waits for stopping attempts");
                return false;
            }
            Err(e) => {
                drop(st);
                tracing::warn!(job = %r.job, attempt = r.attempt, error = %e, "refusing assignment");
                let t = now();
                let _ = outbox.send(AgentEvent {
                    job: r.job,
                    attempt: r.attempt,
                    kind: EventKind::Finished {
                        outcome: Outcome::Killed,
                        exit_code: None,
                        started_at: t,
                        ended_at: t,
                        card_seconds: 0,
                        log_chunks: 0,
                        message: format!("refused by the site: {e}"),
                    },
                });
                return true;
            }
        }
    };
    let dir = attempt_dir(&ctx.config.work_dir, r);
    let mut env = build_env(r, &a.spec, &a.sku, &reserved, &dir);
    for d in &a.datasets {
        env.insert(suanli_proto::suanli_data::env_name(&d.name), d.path.clone());
    }
    if let Some(c) = &a.spec.checkpoint {
        env.insert(
            "SUANLI_CHECKPOINT_DIR".into(),
            dir.join(c).display().to_string(),
        );
    }
    let total_cards = a.spec.cards_per_node.saturating_mul(reserved.len() as u32);
    let launch = Launch {
        attempt: r,
        spec: a.spec,
        sku: a.sku,
        nodes: reserved,
        env,
        work_dir: dir,
        datasets: a.datasets,
        checkpoint: None,
    };
    tokio::spawn(run_attempt(
        ctx.clone(),
        launch,
        stop,
        total_cards,
        outbox.clone(),
    ));
    true
}

async fn run_attempt(
    ctx: Arc<Ctx>,
    mut launch: Launch,
    stop: StopSignal,
    total_cards: u32,
    outbox: Outbox,
) {
    let r = launch.attempt;
    let reserved = launch.nodes.clone();
    let folder = launch.work_dir.clone();
    let patterns = launch.spec.outputs.clone();
    // The checkpoint: restored from the last one an earlier attempt saved, saved while it runs.
    let mut saver = None;
    if let Some(c) = launch.spec.checkpoint.clone() {
        let kept = launch
            .datasets
            .iter()
            .any(|d| d.sensitive)
            .then(|| crate::checkpoint::kept_dir(&ctx.config.work_dir, r.job));
        let files = crate::checkpoint::fetch(&ctx.client, r, &c, kept.as_deref()).await;
        if !files.is_empty() {
            tracing::info!(job = %r.job, attempt = r.attempt, files = files.len(), "resuming from the last checkpoint");
        }
        launch.checkpoint = Some((c.clone(), files));
        saver = Some(crate::checkpoint::Saver::new(
            ctx.client.clone(),
            r,
            folder.clone(),
            &c,
            kept,
            ctx.config.outputs,
        ));
    }
    let started_at = now();
    let _ = outbox.send(AgentEvent {
        job: r.job,
        attempt: r.attempt,
        kind: EventKind::Started { at: started_at },
    });
    tracing::info!(
        job = %r.job,
        attempt = r.attempt,
        sku = %launch.sku,
        nodes = %reserved.iter().map(|n| n.node.as_str()).collect::<Vec<_>>().join(","),
        cards = total_cards,
        "attempt started"
    );
    let sink = LogSink::new(r, outbox.clone());
    let backend = ctx.backend.clone();
    // A dataset is mounted only from the site's own data roots: a data owner names a path, and
    // must not be able to name the agent's folders (or anything else) on this machine.
    let outside = launch
        .datasets
        .iter()
        .find(|d| !crate::isolation::within_roots(&ctx.config.data_roots, Path::new(&d.path)))
        .map(|d| d.name.clone());
    // A separate task, so that a panicking backend still frees the cards and reports the attempt.
    let mut run = tokio::spawn(async move {
        match outside {
            Some(name) => RunResult {
                outcome: Outcome::Failed,
                exit_code: None,
                message: format!(
                    "dataset {name}: its path is outside this site's data roots (suanli site \
                     --data-root); not mounted, the job not started"
                ),
                log_chunks: 0,
                // Nothing ran: nothing to bill.
                span: Some((started_at, started_at)),
            },
            None => backend.run(launch, sink, stop).await,
        }
    });
    let every = ctx.config.checkpoint_every.max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    let ran = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = ticks.tick(), if saver.is_some() => {
                if let Some(s) = saver.as_mut() {
                    s.save(false).await;
                }
            }
        }
    };
    if let Some(s) = saver.as_mut() {
        s.save(true).await;
    }
    let result = match ran {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(job = %r.job, attempt = r.attempt, error = %e, "backend failed");
            RunResult {
                outcome: Outcome::Failed,
                exit_code: None,
                message: "internal error in the site agent's backend".into(),
                log_chunks: 0,
                span: None,
            }
        }
    };
    // The files it leaves go up before its end is reported, and before its folder goes.
    let mut log_chunks = result.log_chunks;
    if !patterns.is_empty() {
        let mut sink = LogSink::starting_at(r, outbox.clone(), log_chunks);
        let caps = ctx.config.outputs;
        crate::outputs::ship(&ctx.client, r, &folder, &patterns, caps, &mut sink).await;
        log_chunks = sink.emitted();
    }
    // Its output is in the outbox now: the folder goes, unless the agent keeps them.
    if !ctx.config.keep_attempt_dirs {
        let _ = tokio::task::spawn_blocking(move || crate::workdir::remove(&folder)).await;
    }
    // The cluster manager's own times when it gives them (Slurm: not the time queued there).
    let (started_at, ended_at) = result.span.unwrap_or((started_at, now()));
    let card_seconds = card_seconds(ended_at.millis_since(started_at), total_cards);
    tracing::info!(
        job = %r.job,
        attempt = r.attempt,
        outcome = ?result.outcome,
        exit_code = ?result.exit_code,
        card_seconds,
        message = %result.message,
        "attempt finished"
    );
    let finished = AgentEvent {
        job: r.job,
        attempt: r.attempt,
        kind: EventKind::Finished {
            outcome: result.outcome,
            exit_code: result.exit_code,
            started_at,
            ended_at,
            card_seconds,
            log_chunks,
            message: result.message,
        },
    };
    ctx.shared.finish(r, &reserved, finished, &outbox);
}

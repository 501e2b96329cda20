//! What the backends' tests share: an attempt's launch, and running it through a [`Runner`] while
//! collecting its log events (checked to be numbered from 0 without gaps).

use std::path::Path;

use suanli_proto::{AgentEvent, AttemptRef, EventKind, NodeInventory, Stream};
use suanli_types::{JobId, JobSpec};
use tokio::sync::mpsc;

use crate::backend::{Launch, RunResult, Runner, StopSignal, stop_channel};
use crate::env::build_env;
use crate::inventory::ReservedNode;
use crate::logs::LogSink;
use crate::workdir::attempt_dir;

pub(crate) fn attempt(job: i64, attempt: u32) -> AttemptRef {
    AttemptRef {
        job: JobId(job),
        attempt,
    }
}

/// Attempt `a` of `spec` on SKU `sku`: `spec.nodes` nodes named as the hub names them, each with
/// `slots` reserved, working in a fresh `{root}/{job}-{attempt}-{random}`.
pub(crate) fn launch(
    root: &Path,
    a: AttemptRef,
    spec: JobSpec,
    sku: &str,
    slots: &[u32],
) -> Launch {
    let nodes: Vec<ReservedNode> = (0..spec.nodes)
        .map(|i| ReservedNode {
            node: format!("{}-{i}", sku.to_ascii_lowercase()),
            slots: slots.to_vec(),
        })
        .collect();
    let dir = attempt_dir(root, a);
    Launch {
        attempt: a,
        env: build_env(a, &spec, sku, &nodes, &dir),
        spec,
        sku: sku.into(),
        nodes,
        work_dir: dir,
        datasets: Vec::new(),
        checkpoint: None,
    }
}

/// The log events received so far, as (stream, text); panics on any other event or a gap.
pub(crate) fn collect(rx: &mut mpsc::UnboundedReceiver<AgentEvent>) -> Vec<(Stream, String)> {
    let mut logs = Vec::new();
    while let Ok(e) = rx.try_recv() {
        match e.kind {
            EventKind::Log { seq, stream, data } => {
                assert_eq!(
                    seq,
                    logs.len() as u64,
                    "log chunks are numbered from 0 without gaps"
                );
                logs.push((stream, data));
            }
            other => panic!("the backend sent {other:?}"),
        }
    }
    logs
}

/// Runs `l` through `runner` to its end (at most 20 s).
pub(crate) async fn run(
    runner: &impl Runner,
    l: Launch,
    stop: StopSignal,
) -> (RunResult, Vec<(Stream, String)>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let sink = LogSink::new(l.attempt, tx);
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        runner.run(l, sink, stop),
    )
    .await
    .expect("the attempt ends");
    let logs = collect(&mut rx);
    assert_eq!(r.log_chunks, logs.len() as u64);
    (r, logs)
}

/// [`run`] without a stop.
pub(crate) async fn run_to_end(
    runner: &impl Runner,
    l: Launch,
) -> (RunResult, Vec<(Stream, String)>) {
    let (_h, stop) = stop_channel();
    run(runner, l, stop).await
}

/// The text of one stream.
pub(crate) fn text(logs: &[(Stream, String)], stream: Stream) -> String {
    logs.iter()
        .filter(|l| l.0 == stream)
        .map(|l| l.1.as_str())
        .collect()
}

/// An inventory as (node, SKU, cards, free cards) rows.
pub(crate) fn rows(inv: &[NodeInventory]) -> Vec<(&str, &str, u32, u32)> {
    inv.iter()
        .map(|n| (n.node.as_str(), n.sku.as_str(), n.cards, n.free_cards))
        .collect()
}

/// Panics, showing `text`, unless it contains `part`.
#[track_caller]
pub(crate) fn assert_has(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not in {text:?}");
}

//! One `squeue` for all of the agent's Slurm jobs: the tracker polls Slurm every poll interval and
//! publishes what it saw; each attempt reads its job from the latest snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::cli::SlurmCli;
use super::parse::{self, SlurmJob};

/// What one poll saw of the tracked jobs.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The jobs asked about; a job not among them was tracked after the poll began.
    pub asked: BTreeSet<u64>,
    pub jobs: BTreeMap<u64, SlurmJob>,
    /// Times come from Slurm (`squeue --json`), not only from observation.
    pub slurm_times: bool,
}

/// Polls Slurm for the agent's jobs and publishes what it saw.
pub(crate) struct Tracker {
    cli: SlurmCli,
    poll: Duration,
    ids: Mutex<BTreeSet<u64>>,
    tx: watch::Sender<Arc<Snapshot>>,
    wake: Notify,
    looping: AtomicBool,
    /// `squeue --json` works here (until it proves otherwise).
    json: AtomicBool,
}

impl Tracker {
    pub fn new(cli: SlurmCli, poll: Duration) -> Arc<Tracker> {
        Arc::new(Tracker {
            cli,
            poll,
            ids: Mutex::new(BTreeSet::new()),
            tx: watch::Sender::new(Arc::new(Snapshot::default())),
            wake: Notify::new(),
            looping: AtomicBool::new(false),
            json: AtomicBool::new(true),
        })
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts polling for job `id`; the snapshots come on the receiver.
    pub fn track(self: &Arc<Self>, id: u64) -> watch::Receiver<Arc<Snapshot>> {
        let rx = self.tx.subscribe();
        self.ids().insert(id);
        if !self.looping.swap(true, Ordering::SeqCst) {
            tokio::spawn(Tracker::run(Arc::downgrade(self)));
        }
        self.wake.notify_one();
        rx
    }

    pub fn untrack(&self, id: u64) {
        self.ids().remove(&id);
    }

    /// The poll loop; ends once the backend is gone. A failed poll publishes nothing.
    async fn run(weak: Weak<Tracker>) {
        let mut failing = false;
        loop {
            let Some(t) = weak.upgrade() else { return };
            let ids = t.ids().clone();
            if ids.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(5), t.wake.notified()).await;
                continue;
            }
            match t.poll(&ids).await {
                Ok(jobs) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("Slurm answers again");
                    }
                    t.tx.send_replace(Arc::new(Snapshot {
                        asked: ids,
                        jobs,
                        slurm_times: t.json.load(Ordering::SeqCst),
                    }));
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read Slurm's queue; jobs keep running, retrying");
                        failing = true;
                    }
                }
            }
            let poll = t.poll;
            drop(t);
            tokio::time::sleep(poll).await;
        }
    }

    async fn poll(&self, ids: &BTreeSet<u64>) -> Result<BTreeMap<u64, SlurmJob>, String> {
        if self.json.load(Ordering::SeqCst) {
            // `--me`: 22.05 ignores filters with `--json` (every job comes back); versions that
            // honour them return only the agent's.
            let args = ["--json", "--me"].map(str::to_string);
            let fallback = match self.cli.run("squeue", &args).await {
                Ok(out) => match parse::parse_squeue_json(&out) {
                    Ok(jobs) => {
                        return Ok(jobs
                            .into_iter()
                            .filter(|j| ids.contains(&j.id))
                            .map(|j| (j.id, j))
                            .collect());
                    }
                    Err(e) => e,
                },
                Err(e) if e.transient => return Err(e.message),
                Err(e) => e.message,
            };
            tracing::warn!(
                error = %fallback,
                "squeue --json is not usable here; tracking jobs with scontrol show job (metering from the agent's observations)"
            );
            self.json.store(false, Ordering::SeqCst);
        }
        let mut out = BTreeMap::new();
        for id in ids {
            let args = ["show", "job", "-o"]
                .map(str::to_string)
                .into_iter()
                .chain([id.to_string()])
                .collect::<Vec<_>>();
            match self.cli.run("scontrol", &args).await {
                Ok(text) => {
                    if let Some(j) = parse::parse_scontrol_job(&text) {
                        out.insert(*id, j);
                    }
                }
                Err(e) if parse::is_unknown_job_error(&e.message) => {}
                Err(e) => return Err(e.message),
            }
        }
        Ok(out)
    }
}

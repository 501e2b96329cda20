//! The Slurm backend: runs each attempt as one Slurm batch job through Slurm's command-line tools.
//!
//! - **Submit**: `sbatch --parsable` with a batch script and directives rendered by
//!   [`parse::render_sbatch`] (job name `suanli-<job>-<attempt>`, `--nodes`, `--gres`, `--time`,
//!   output files in the attempt directory, the job's environment in the script).
//! - **Track**: one `squeue --json` per poll interval for all of the agent's jobs (22.05's JSON
//!   ignores job filters, so one call serves every attempt); where `--json` is not available,
//!   `scontrol show job -o <id>` per job. States map through [`parse::map_state`] and
//!   [`parse::outcome_of`].
//! - **Stop**: `scancel <id>`, then wait until Slurm shows a final state (the cards are free once
//!   Slurm has cleaned up, not before). The agent also ends the job at its wall time, counted from
//!   Slurm's start time; Slurm's own `--time` (whole minutes, rounded up) is the backstop.
//! - **Logs**: Slurm writes stdout and stderr to files in the attempt directory; they are tailed
//!   and shipped as `Log` events (the working directory must be on a file system that the agent and
//!   the compute nodes share).
//! - **Metering**: from Slurm's start and end times (`squeue --json`), so time queued in Slurm is
//!   not billed.
//! - **Inventory**: `sinfo` (GRES and GRES in use per node) is what the heartbeat reports.
//!
//! The CLI and not slurmrestd: the REST API's paths and JSON shapes change with every Slurm release
//! (22.05 serves `v0.0.36`-`v0.0.38`, 23.x-25.x others), it needs its own daemon and JWT or socket
//! authentication, while `sbatch`, `squeue`, `scancel` and `sinfo` are on every login node, stable
//! across versions, and authenticate through munge like any user's commands. See `docs/SLURM.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use suanli_proto::{NodeInventory, Outcome, Stream};
use suanli_types::{CenterSpec, ChipCatalog, Timestamp};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::Command;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{Backend, BoxFuture, Launch, RunResult, StopSignal};
use crate::env::visible_devices_var;
use crate::logs::{FLUSH_INTERVAL, LineChunker, LogSink};
use crate::now;

pub mod cluster;
#[cfg(test)]
mod fake_test;
pub mod parse;

use parse::{AgentStop, SbatchArgs, SlurmJob, SlurmPhase};

/// How long a Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// After `scancel`, how long (beyond the kill grace) to wait for Slurm to show a final state.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// A job absent from this many successful polls in a row has left Slurm.
const VANISHED_AFTER_POLLS: u32 = 3;
/// Most log bytes read per stream per tick.
const READ_PER_TICK: u64 = 4 * 1024 * 1024;

/// How the agent drives Slurm.
#[derive(Clone, Debug)]
pub struct SlurmConfig {
    /// `SLURM_CONF` for every Slurm command; `None`: the agent's own environment decides.
    pub conf: Option<PathBuf>,
    /// `--partition`; `None`: Slurm's default partition.
    pub partition: Option<String>,
    /// GRES requested per SKU, without the count (`RTX4090` -> `gpu:rtx4090`); SKUs not listed
    /// ask for `gpu`, which any GPU type satisfies.
    pub gres: BTreeMap<String, String>,
    /// More `sbatch` options for every job (`--account=...`, `--qos=...`).
    pub extra_args: Vec<String>,
    /// How often `squeue` is asked.
    pub poll_interval: Duration,
    /// Where the Slurm commands are; `None`: `PATH`.
    pub bin_dir: Option<PathBuf>,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            conf: None,
            partition: None,
            gres: BTreeMap::new(),
            extra_args: Vec::new(),
            poll_interval: Duration::from_secs(1),
            bin_dir: None,
        }
    }
}

impl SlurmConfig {
    /// Fills what is unset from the environment: `SUANLI_SLURM_CONF`, `SUANLI_SLURM_PARTITION`,
    /// `SUANLI_SLURM_GRES` (`SKU=gres,SKU=gres`), `SUANLI_SLURM_ARGS` (split at whitespace),
    /// `SUANLI_SLURM_POLL_MS`, `SUANLI_SLURM_BIN`.
    pub fn with_env(self) -> SlurmConfig {
        self.with_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> SlurmConfig {
        if self.conf.is_none() {
            self.conf = var("SUANLI_SLURM_CONF").map(PathBuf::from);
        }
        if self.partition.is_none() {
            self.partition = var("SUANLI_SLURM_PARTITION");
        }
        if self.gres.is_empty()
            && let Some(g) = var("SUANLI_SLURM_GRES")
        {
            for pair in g.split(',') {
                if let Some((sku, gres)) = pair.split_once('=') {
                    self.gres
                        .insert(sku.trim().to_string(), gres.trim().to_string());
                }
            }
        }
        if self.extra_args.is_empty()
            && let Some(a) = var("SUANLI_SLURM_ARGS")
        {
            self.extra_args = a.split_whitespace().map(str::to_string).collect();
        }
        if self.bin_dir.is_none() {
            self.bin_dir = var("SUANLI_SLURM_BIN").map(PathBuf::from);
        }
        if let Some(ms) = var("SUANLI_SLURM_POLL_MS").and_then(|v| v.trim().parse::<u64>().ok()) {
            self.poll_interval = Duration::from_millis(ms.max(50));
        }
        self
    }

    /// The GRES (without the count) requested for `sku`: configured (SKU matched ignoring case), else
    /// `gpu`.
    pub fn gres_for(&self, sku: &str) -> String {
        self.gres
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sku))
            .map_or_else(|| "gpu".to_string(), |(_, v)| v.clone())
    }
}

/// A failed Slurm command.
#[derive(Clone, Debug)]
struct CmdError {
    message: String,
    /// The controller could not be reached: try again later; not the job's fault.
    transient: bool,
}

/// Runs Slurm's commands with the configured `SLURM_CONF`.
#[derive(Clone, Debug)]
struct SlurmCli {
    conf: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
}

/// Visible-devices variables of every vendor: never passed from the agent's environment to a job.
const DEVICE_VARS: [&str; 7] = [
    "CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "MLU_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "XPU_VISIBLE_DEVICES",
    "MUSA_VISIBLE_DEVICES",
    "MACA_VISIBLE_DEVICES",
];

impl SlurmCli {
    async fn run(&self, program: &str, args: &[String]) -> Result<String, CmdError> {
        let mut cmd = match &self.bin_dir {
            Some(d) => Command::new(d.join(program)),
            None => Command::new(program),
        };
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(c) = &self.conf {
            cmd.env("SLURM_CONF", c);
        }
        // sbatch passes its environment on to the job (`--export=ALL`): not the agent's secrets
        // (its site token may be in SUANLI_SITE_TOKEN) nor devices it happens to see.
        for (k, _) in std::env::vars_os() {
            if k.to_str()
                .is_some_and(|k| k.starts_with("SUANLI_") || DEVICE_VARS.contains(&k))
            {
                cmd.env_remove(k);
            }
        }
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(CmdError {
                    message: format!("cannot run {program}: {e}"),
                    transient: e.kind() != std::io::ErrorKind::NotFound,
                });
            }
            Err(_) => {
                return Err(CmdError {
                    message: format!("{program} did not answer within {COMMAND_TIMEOUT:?}"),
                    transient: true,
                });
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let detail = if stderr.is_empty() {
            format!("{program} exited with {}", out.status)
        } else {
            stderr
        };
        Err(CmdError {
            transient: parse::is_transient_error(&detail),
            message: detail,
        })
    }
}

/// What the last poll saw of the tracked jobs.
#[derive(Debug, Default)]
struct Snapshot {
    jobs: BTreeMap<u64, SlurmJob>,
    /// Successful polls in a row that did not show the job.
    misses: BTreeMap<u64, u32>,
    /// Times come from Slurm (`squeue --json`), not only from observation.
    slurm_times: bool,
}

/// Polls Slurm for the agent's jobs and publishes what it saw.
struct Tracker {
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
    fn new(cli: SlurmCli, poll: Duration) -> Arc<Tracker> {
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

    fn track(self: &Arc<Self>, id: u64) -> watch::Receiver<Arc<Snapshot>> {
        let rx = self.tx.subscribe();
        self.ids().insert(id);
        if !self.looping.swap(true, Ordering::SeqCst) {
            tokio::spawn(Tracker::run(Arc::downgrade(self)));
        }
        self.wake.notify_one();
        rx
    }

    fn untrack(&self, id: u64) {
        self.ids().remove(&id);
    }

    /// The poll loop; ends once the backend is gone.
    async fn run(weak: Weak<Tracker>) {
        let mut misses: BTreeMap<u64, u32> = BTreeMap::new();
        let mut failing = false;
        loop {
            let Some(t) = weak.upgrade() else { return };
            let ids = t.ids().clone();
            if ids.is_empty() {
                misses.clear();
                let _ = tokio::time::timeout(Duration::from_secs(5), t.wake.notified()).await;
                continue;
            }
            match t.poll(&ids).await {
                Ok(jobs) => {
                    if failing {
                        tracing::info!("Slurm answers again");
                        failing = false;
                    }
                    misses.retain(|id, _| ids.contains(id));
                    for id in &ids {
                        if jobs.contains_key(id) {
                            misses.remove(id);
                        } else {
                            *misses.entry(*id).or_default() += 1;
                        }
                    }
                    t.tx.send_replace(Arc::new(Snapshot {
                        jobs,
                        misses: misses.clone(),
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

/// Tails one output file into log chunks.
struct FileTail {
    path: PathBuf,
    stream: Stream,
    offset: u64,
    chunker: LineChunker,
}

impl FileTail {
    fn new(path: PathBuf, stream: Stream) -> FileTail {
        FileTail {
            path,
            stream,
            offset: 0,
            chunker: LineChunker::default(),
        }
    }

    /// Reads what was appended (at most `limit` bytes); a missing file is not an error.
    async fn read(&mut self, sink: &mut LogSink, limit: u64) -> std::io::Result<u64> {
        let mut f = match tokio::fs::File::open(&self.path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let len = f.metadata().await?.len();
        if len < self.offset {
            // Truncated (rewritten from the start).
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(0);
        }
        f.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut buf = Vec::new();
        let n = f.take(limit).read_to_end(&mut buf).await? as u64;
        self.offset += n;
        for c in self.chunker.push(&buf) {
            sink.emit(self.stream, c);
        }
        Ok(n)
    }

    async fn tick(&mut self, sink: &mut LogSink) {
        if let Err(e) = self.read(sink, READ_PER_TICK).await {
            tracing::debug!(path = %self.path.display(), error = %e, "reading job output failed");
        }
        for c in self.chunker.tick() {
            sink.emit(self.stream, c);
        }
    }

    /// Everything that is left.
    async fn finish(&mut self, sink: &mut LogSink) {
        loop {
            match self.read(sink, READ_PER_TICK).await {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "reading job output failed");
                    break;
                }
            }
        }
        for c in self.chunker.finish() {
            sink.emit(self.stream, c);
        }
    }
}

/// Runs attempts as Slurm batch jobs.
pub struct SlurmBackend {
    cfg: SlurmConfig,
    cli: SlurmCli,
    center: String,
    comment: String,
    /// The center's SKUs and the GRES each requests.
    requests: Vec<(String, String)>,
    kill_grace: Duration,
    tracker: Arc<Tracker>,
}

impl std::fmt::Debug for SlurmBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmBackend")
            .field("center", &self.center)
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// How the wait for a Slurm job ended.
enum Waited {
    Ended(parse::SlurmEnd, SlurmJob),
    /// Gone from Slurm's queue without a final state seen.
    Vanished(Option<SlurmJob>),
    /// The agent cancelled the job and Slurm did not confirm its end in time.
    GaveUp(Option<SlurmJob>),
}

impl SlurmBackend {
    /// A backend for `center`; `kill_grace` bounds the wait for a cancelled job (with
    /// [`CANCEL_WAIT`]).
    pub fn new(cfg: SlurmConfig, center: &CenterSpec, kill_grace: Duration) -> SlurmBackend {
        let cli = SlurmCli {
            conf: cfg.conf.clone(),
            bin_dir: cfg.bin_dir.clone(),
        };
        let catalog = ChipCatalog::builtin();
        let mut requests: Vec<(String, String)> = Vec::new();
        for p in &center.pools {
            let sku = catalog
                .get(&p.sku)
                .map_or_else(|| p.sku.clone(), |c| c.sku.clone());
            if !requests.iter().any(|(s, _)| *s == sku) {
                let g = cfg.gres_for(&sku);
                requests.push((sku, g));
            }
        }
        SlurmBackend {
            tracker: Tracker::new(cli.clone(), cfg.poll_interval),
            cli,
            comment: parse::center_comment(center.id.as_str()),
            center: center.id.to_string(),
            requests,
            kill_grace,
            cfg,
        }
    }

    /// Cancels jobs an earlier run of this center's agent left in Slurm (still queued or running,
    /// marked with the center's `--comment`): the hub has requeued their attempts. Returns their ids.
    pub async fn cancel_orphans(&self) -> Result<Vec<u64>, String> {
        let args = ["-h", "--me", "-o", "%i|%k|%j"].map(str::to_string);
        let out = self.cli.run("squeue", &args).await.map_err(|e| e.message)?;
        let ids: Vec<u64> = out
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().splitn(3, '|');
                let id = f.next()?.parse::<u64>().ok()?;
                let comment = f.next()?;
                let name = f.next()?;
                (comment == self.comment && name.starts_with("suanli-")).then_some(id)
            })
            .collect();
        if !ids.is_empty() {
            let args: Vec<String> = ids.iter().map(u64::to_string).collect();
            self.cli
                .run("scancel", &args)
                .await
                .map_err(|e| e.message)?;
        }
        Ok(ids)
    }

    /// The center's nodes as Slurm has them (see [`parse::slurm_inventory`]).
    pub async fn nodes(&self) -> Result<Vec<NodeInventory>, String> {
        let mut args = ["-N", "-h", "-O", parse::SINFO_FORMAT]
            .map(str::to_string)
            .to_vec();
        if let Some(p) = self.cfg.partition.as_deref().filter(|p| !p.is_empty()) {
            args.push(format!("--partition={p}"));
        }
        let out = self.cli.run("sinfo", &args).await.map_err(|e| e.message)?;
        Ok(parse::slurm_inventory(
            &parse::parse_sinfo(&out),
            &self.requests,
        ))
    }

    /// Startup checks: cancels orphans, and compares Slurm's nodes with the registered pools
    /// (logged; the hub places by the registered pools).
    pub async fn startup(&self, center: &CenterSpec) {
        match self.cancel_orphans().await {
            Ok(ids) if !ids.is_empty() => tracing::warn!(
                center = %self.center,
                slurm_jobs = ?ids,
                "cancelled Slurm jobs left by an earlier run of this agent (the hub requeues their jobs)"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for Slurm jobs left by an earlier run")
            }
        }
        match self.nodes().await {
            Ok(nodes) => {
                for (sku, gres) in &self.requests {
                    let have: u64 = nodes
                        .iter()
                        .filter(|n| n.sku == *sku)
                        .map(|n| u64::from(n.cards))
                        .sum();
                    let registered: u64 = center
                        .pools
                        .iter()
                        .filter(|p| p.sku.eq_ignore_ascii_case(sku))
                        .map(|p| u64::from(p.nodes) * u64::from(p.cards_per_node))
                        .sum();
                    if have < registered {
                        tracing::warn!(
                            sku,
                            gres,
                            slurm_cards = have,
                            registered_cards = registered,
                            "Slurm has fewer cards of this SKU than the center registered; jobs beyond them wait in Slurm's queue"
                        );
                    } else {
                        tracing::info!(
                            sku,
                            gres,
                            slurm_cards = have,
                            registered_cards = registered,
                            "Slurm inventory"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read Slurm's nodes (sinfo)"),
        }
    }

    async fn scancel(&self, id: u64) {
        if let Err(e) = self.cli.run("scancel", &[id.to_string()]).await {
            tracing::warn!(slurm_job = id, error = %e.message, "scancel failed");
        }
    }

    async fn run_slurm(
        &self,
        launch: Launch,
        mut logs: LogSink,
        mut stop: StopSignal,
    ) -> RunResult {
        let r = launch.attempt;
        let result = |outcome, exit_code, message: String, logs: &LogSink| RunResult {
            outcome,
            exit_code,
            message,
            log_chunks: logs.emitted(),
            span: None,
        };
        if let Err(e) = crate::local::prepare(&launch.work_dir, &launch.spec.files).await {
            return result(
                Outcome::Failed,
                None,
                format!("cannot prepare the working directory: {e}"),
                &logs,
            );
        }
        if let Some(reason) = stop.requested_now() {
            return result(Outcome::Killed, None, reason, &logs);
        }
        let files = parse::AttemptFiles::new(&launch.work_dir);
        let gres = self.cfg.gres_for(&launch.sku);
        let (script, argv) = parse::render_sbatch(&SbatchArgs {
            attempt: r,
            command: &launch.spec.command,
            env: &launch.env,
            visible_devices_var: visible_devices_var(&launch.sku),
            nodes: launch.spec.nodes,
            cards_per_node: launch.spec.cards_per_node,
            gres: &gres,
            walltime_secs: launch.spec.walltime,
            work_dir: &launch.work_dir,
            partition: self.cfg.partition.as_deref(),
            comment: &self.comment,
            extra_args: &self.cfg.extra_args,
        });
        let written = async {
            if let Some(d) = files.script.parent() {
                tokio::fs::create_dir_all(d).await?;
            }
            tokio::fs::write(&files.script, script).await
        };
        if let Err(e) = written.await {
            return result(
                Outcome::Failed,
                None,
                format!("cannot write the batch script: {e}"),
                &logs,
            );
        }
        let id = match self.cli.run("sbatch", &argv).await {
            Ok(out) => match parse::parse_sbatch_id(&out) {
                Some(id) => id,
                None => {
                    return result(
                        Outcome::Failed,
                        None,
                        format!("sbatch gave no job id: {:?}", out.trim()),
                        &logs,
                    );
                }
            },
            Err(e) if e.transient => {
                // The controller may have taken the job before the answer was lost.
                let args = ["--me".to_string(), format!("--name={}", parse::job_name(r))];
                let _ = self.cli.run("scancel", &args).await;
                return result(
                    Outcome::Killed,
                    None,
                    format!(
                        "Slurm is unreachable, the job was not submitted: {}",
                        e.message
                    ),
                    &logs,
                );
            }
            Err(e) => {
                return result(
                    Outcome::Failed,
                    None,
                    format!("Slurm refused the job: {}", e.message),
                    &logs,
                );
            }
        };
        tracing::info!(job = %r.job, attempt = r.attempt, slurm_job = id, gres = %gres, "submitted to Slurm");

        let mut snaps = self.tracker.track(id);
        let mut out = FileTail::new(files.stdout.clone(), Stream::Stdout);
        let mut err = FileTail::new(files.stderr.clone(), Stream::Stderr);
        let mut tick = tokio::time::interval_at(Instant::now() + FLUSH_INTERVAL, FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let mut agent_stop: Option<AgentStop> = None;
        let mut walltime_at: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        let mut last: Option<SlurmJob> = None;
        let mut seen_start: Option<Timestamp> = None;
        let mut seen_end: Option<Timestamp> = None;
        let mut slurm_times = false;
        let mut warned_state = false;
        let waited = loop {
            tokio::select! {
                changed = snaps.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(self.cfg.poll_interval).await;
                        continue;
                    }
                    let snap = snaps.borrow_and_update().clone();
                    slurm_times = snap.slurm_times;
                    let Some(j) = snap.jobs.get(&id) else {
                        if snap.misses.get(&id).copied().unwrap_or(0) >= VANISHED_AFTER_POLLS {
                            seen_end.get_or_insert_with(now);
                            break Waited::Vanished(last);
                        }
                        continue;
                    };
                    let phase = parse::map_state(&j.state).unwrap_or_else(|| {
                        if !warned_state {
                            tracing::warn!(slurm_job = id, state = %j.state, "unknown Slurm job state; taken as running");
                            warned_state = true;
                        }
                        SlurmPhase::Running
                    });
                    last = Some(j.clone());
                    match phase {
                        SlurmPhase::Waiting => {}
                        SlurmPhase::Running | SlurmPhase::Ending => {
                            if seen_start.is_none() {
                                let t = now();
                                seen_start = Some(t);
                                let started = j.start.filter(|_| snap.slurm_times).unwrap_or(t);
                                let left = (launch.spec.walltime as i64 * 1000)
                                    .saturating_sub(t.millis_since(started));
                                walltime_at = Some(Instant::now() + Duration::from_millis(left.max(0) as u64));
                                tracing::debug!(slurm_job = id, nodes = %j.nodes, "Slurm job running");
                            }
                        }
                        SlurmPhase::Ended(end) => {
                            seen_end = Some(now());
                            break Waited::Ended(end, j.clone());
                        }
                    }
                }
                _ = tick.tick() => {
                    out.tick(&mut logs).await;
                    err.tick(&mut logs).await;
                }
                reason = stop.requested(), if agent_stop.is_none() => {
                    tracing::info!(job = %r.job, attempt = r.attempt, slurm_job = id, "scancel");
                    agent_stop = Some(AgentStop::Requested(reason));
                    give_up_at = Some(Instant::now() + self.kill_grace + CANCEL_WAIT);
                    self.scancel(id).await;
                }
                () = tokio::time::sleep_until(walltime_at.unwrap_or_else(far)), if walltime_at.is_some() && agent_stop.is_none() => {
                    tracing::info!(job = %r.job, attempt = r.attempt, slurm_job = id, "wall time reached: scancel");
                    agent_stop = Some(AgentStop::Walltime(launch.spec.walltime));
                    give_up_at = Some(Instant::now() + self.kill_grace + CANCEL_WAIT);
                    self.scancel(id).await;
                }
                () = tokio::time::sleep_until(give_up_at.unwrap_or_else(far)), if give_up_at.is_some() => {
                    seen_end.get_or_insert_with(now);
                    break Waited::GaveUp(last);
                }
            }
        };
        self.tracker.untrack(id);
        out.finish(&mut logs).await;
        err.finish(&mut logs).await;

        let (outcome, exit_code, message, job) = match waited {
            Waited::Ended(end, j) => {
                let (o, c, m) = parse::outcome_of(end, j.exit, &j.reason, agent_stop.as_ref());
                (o, c, m, Some(j))
            }
            Waited::Vanished(j) => {
                let state = j.as_ref().map_or("never seen", |j| j.state.as_str());
                let (o, m) = match &agent_stop {
                    Some(AgentStop::Requested(reason)) => (Outcome::Killed, reason.clone()),
                    Some(AgentStop::Walltime(s)) => (
                        Outcome::TimedOut,
                        format!("wall-time limit of {s} s reached"),
                    ),
                    None => (
                        Outcome::Failed,
                        format!(
                            "Slurm job {id} left Slurm's queue without a final state (last seen: {state})"
                        ),
                    ),
                };
                (o, None, m, j)
            }
            Waited::GaveUp(j) => {
                let (o, m) = match &agent_stop {
                    Some(AgentStop::Walltime(s)) => (
                        Outcome::TimedOut,
                        format!("wall-time limit of {s} s reached"),
                    ),
                    Some(AgentStop::Requested(reason)) => (Outcome::Killed, reason.clone()),
                    None => (Outcome::Failed, String::new()),
                };
                tracing::warn!(
                    slurm_job = id,
                    "Slurm did not confirm the end of a cancelled job in time"
                );
                (
                    o,
                    None,
                    format!("{m} (Slurm had not confirmed the end of job {id})"),
                    j,
                )
            }
        };
        // Metering: Slurm's start and end where Slurm gives them, else what the agent saw.
        let end = job
            .as_ref()
            .and_then(|j| j.end)
            .filter(|_| slurm_times)
            .or(seen_end)
            .unwrap_or_else(now);
        // A job that never started has no real start (Slurm may show an estimate): zero time.
        let start = job
            .as_ref()
            .and_then(|j| j.start)
            .filter(|_| slurm_times)
            .or(seen_start)
            .unwrap_or(end);
        let start = Timestamp(start.millis().min(end.millis()));
        tracing::info!(
            job = %r.job, attempt = r.attempt, slurm_job = id,
            state = %job.as_ref().map_or("?", |j| j.state.as_str()),
            nodes = %job.as_ref().map_or("", |j| j.nodes.as_str()),
            "Slurm job ended"
        );
        RunResult {
            outcome,
            exit_code,
            message,
            log_chunks: logs.emitted(),
            span: Some((start, end)),
        }
    }
}

impl Backend for SlurmBackend {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult> {
        Box::pin(self.run_slurm(launch, logs, stop))
    }

    fn inventory(&self) -> BoxFuture<'_, Option<Result<Vec<NodeInventory>, String>>> {
        Box::pin(async move { Some(self.nodes().await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_environment() {
        let vars = BTreeMap::from([
            ("SUANLI_SLURM_CONF", "/etc/slurm/slurm.conf"),
            ("SUANLI_SLURM_PARTITION", "gpu"),
            ("SUANLI_SLURM_GRES", "RTX4090=gpu:rtx4090, Ascend910B3=npu"),
            ("SUANLI_SLURM_ARGS", "--account=lab  --qos=normal"),
            ("SUANLI_SLURM_POLL_MS", "500"),
            ("SUANLI_SLURM_BIN", "/opt/slurm/bin"),
        ]);
        let c = SlurmConfig::default().with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(
            c.conf.as_deref(),
            Some(std::path::Path::new("/etc/slurm/slurm.conf"))
        );
        assert_eq!(c.partition.as_deref(), Some("gpu"));
        assert_eq!(c.gres_for("rtx4090"), "gpu:rtx4090");
        assert_eq!(c.gres_for("Ascend910B3"), "npu");
        assert_eq!(c.gres_for("H100-SXM"), "gpu");
        assert_eq!(c.extra_args, ["--account=lab", "--qos=normal"]);
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(
            c.bin_dir.as_deref(),
            Some(std::path::Path::new("/opt/slurm/bin"))
        );

        // What is set already wins.
        let set = SlurmConfig {
            partition: Some("main".into()),
            ..Default::default()
        };
        let c = set.with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(c.partition.as_deref(), Some("main"));
        let c = SlurmConfig::default().with_vars(|_| None);
        assert_eq!(c.poll_interval, Duration::from_secs(1));
        assert!(c.conf.is_none() && c.gres.is_empty());
    }
}

//! The Slurm backend: runs each attempt as one Slurm batch job through Slurm's command-line tools.
//!
//! - **Submit**: `sbatch --parsable` with a batch script and directives rendered by
//!   [`script::render_sbatch`] (job name `suanli-<job>-<attempt>`, `--nodes`, `--gres`, `--time`,
//!   output files in the attempt directory, the job's environment in the script).
//! - **Track**: one `squeue --json` per poll interval for all of the agent's jobs (22.05's JSON
//!   ignores job filters, so one call serves every attempt); where `--json` is not available,
//!   `scontrol show job -o <id>` per job. States map through [`parse::map_state`] and
//!   [`parse::outcome_of`] (one poll that does not show the job counts towards its vanishing).
//! - **Stop**: `scancel <id>`, then wait until Slurm shows a final state (the cards are free once
//!   Slurm has cleaned up, not before; Slurm's `KillWait` is the grace). The supervisor also ends
//!   the job at its wall time, counted from Slurm's start time; Slurm's own `--time` (whole
//!   minutes, rounded up) is the backstop.
//! - **Logs**: Slurm writes stdout and stderr to files in the attempt directory; they are tailed
//!   and shipped as `Log` events (the working directory must be on a file system that the agent and
//!   the compute nodes share).
//! - **Metering**: from Slurm's start and end times (`squeue --json`), so time queued in Slurm is
//!   not billed.
//! - **Inventory**: `sinfo` (GRES and GRES in use per node) is what the heartbeat reports
//!   ([`sinfo::slurm_inventory`]).
//!
//! The attempt supervisor ([`crate::supervisor`]) drives it like every backend; the commands are
//! run by `cli.rs`, the shared poll is `track.rs`.
//!
//! The CLI and not slurmrestd: the REST API's paths and JSON shapes change with every Slurm release
//! (22.05 serves `v0.0.36`-`v0.0.38`, 23.x-25.x others), it needs its own daemon and JWT or socket
//! authentication, while `sbatch`, `squeue`, `scancel` and `sinfo` are on every login node, stable
//! across versions, and authenticate through munge like any user's commands. See `docs/SLURM.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use suanli_proto::{NodeInventory, Stream};
use suanli_types::spec::signal::WarnSignal;
use suanli_types::{BackendKind, CenterSpec, ChipCatalog};
use tokio::sync::watch;

use crate::AgentConfig;
use crate::backend::{
    Backend, BackendEntry, BoxFuture, Launch, Pace, Phase, Runner, Setting, Span, SubmitError,
    startup_checks, supervised,
};
use crate::env::visible_devices_var;
use crate::logs::{FileTail, LogSink};

mod cli;
pub mod cluster;
#[cfg(test)]
mod fake_test;
pub mod parse;
#[cfg(test)]
mod parse_tests;
pub mod script;
pub mod sinfo;
mod track;

use cli::SlurmCli;
use parse::{SlurmJob, SlurmPhase};
use script::SbatchArgs;
use track::{Snapshot, Tracker};

/// After `scancel`, how long (beyond the kill grace) to wait for Slurm to show a final state.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// How often an attempt looks for a new snapshot of the tracker's.
const SNAPSHOT_CHECK: Duration = Duration::from_millis(50);

/// The Slurm backend in the registry ([`crate::BACKENDS`]).
pub(crate) const BACKEND: BackendEntry = BackendEntry {
    kind: BackendKind::Slurm,
    settings: &[
        Setting {
            flag: "slurm-conf",
            env: "SUANLI_SLURM_CONF",
            help: "SLURM_CONF for every Slurm command (default: the agent's own environment)",
        },
        Setting {
            flag: "slurm-partition",
            env: "SUANLI_SLURM_PARTITION",
            help: "Slurm partition of every job (default: Slurm's default partition)",
        },
        Setting {
            flag: "slurm-gres",
            env: "SUANLI_SLURM_GRES",
            help: "GRES per SKU, SKU=gres,... (RTX4090=gpu:rtx4090); other SKUs ask for gpu",
        },
        Setting {
            flag: "slurm-args",
            env: "SUANLI_SLURM_ARGS",
            help: "more sbatch options for every job, split at whitespace (--account=lab)",
        },
        Setting {
            flag: "slurm-poll-ms",
            env: "SUANLI_SLURM_POLL_MS",
            help: "how often squeue is asked, in milliseconds (default 1000)",
        },
        Setting {
            flag: "slurm-bin",
            env: "SUANLI_SLURM_BIN",
            help: "the directory of the Slurm commands (default: PATH)",
        },
    ],
    start,
};

/// Configured by `config.slurm`, then the settings; started with its checks (see
/// [`SlurmBackend::startup`]): before any job of this run is submitted (the orphan sweep must not
/// see them), and bounded, so that an unreachable Slurm does not keep the center offline.
fn start<'a>(
    center: &'a CenterSpec,
    config: &'a AgentConfig,
) -> BoxFuture<'a, Result<Arc<dyn Runner>, crate::SiteError>> {
    let cfg = config.slurm.clone().with_vars(|k| config.setting(k));
    let b = SlurmBackend::new(cfg, center);
    Box::pin(async move {
        startup_checks("Slurm", b.startup(center)).await;
        Ok(supervised(b, config))
    })
}

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

    pub(crate) fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> SlurmConfig {
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

/// Runs attempts as Slurm batch jobs.
pub struct SlurmBackend {
    cfg: SlurmConfig,
    cli: SlurmCli,
    center: String,
    comment: String,
    /// The center's SKUs and the GRES each requests.
    requests: Vec<(String, String)>,
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

/// One attempt's Slurm job.
#[derive(Debug)]
pub struct SlurmAttempt {
    id: u64,
    snaps: watch::Receiver<Arc<Snapshot>>,
    out: FileTail,
    err: FileTail,
    /// The job as last seen.
    last: Option<SlurmJob>,
    /// Slurm's own times are known (`squeue --json`).
    slurm_times: bool,
    warned_state: bool,
}

impl fmt::Display for SlurmAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Slurm job {}", self.id)
    }
}

impl SlurmBackend {
    /// A backend for `center`.
    pub fn new(cfg: SlurmConfig, center: &CenterSpec) -> SlurmBackend {
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
            comment: script::center_comment(center.id.as_str()),
            center: center.id.to_string(),
            requests,
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

    /// The center's nodes as Slurm has them (see [`sinfo::slurm_inventory`]).
    pub async fn nodes(&self) -> Result<Vec<NodeInventory>, String> {
        let mut args = ["-N", "-h", "-O", sinfo::SINFO_FORMAT]
            .map(str::to_string)
            .to_vec();
        if let Some(p) = self.cfg.partition.as_deref().filter(|p| !p.is_empty()) {
            args.push(format!("--partition={p}"));
        }
        let out = self.cli.run("sinfo", &args).await.map_err(|e| e.message)?;
        Ok(sinfo::slurm_inventory(
            &sinfo::parse_sinfo(&out),
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
}

impl Backend for SlurmBackend {
    type Job = SlurmAttempt;

    fn pace(&self) -> Pace {
        Pace::new(SNAPSHOT_CHECK, CANCEL_WAIT)
    }

    async fn submit(&self, launch: &Launch) -> Result<SlurmAttempt, SubmitError> {
        let r = launch.attempt;
        let (dir, files) = (launch.work_dir.clone(), launch.spec.files.clone());
        let checkpoint = launch.checkpoint.clone();
        tokio::task::spawn_blocking(move || {
            crate::workdir::prepare(&dir, &files, None)?;
            match &checkpoint {
                Some(c) => crate::workdir::restore(&dir, c, None),
                None => Ok(()),
            }
        })
        .await
        .map_err(|e| SubmitError::failed(format!("cannot prepare the working directory: {e}")))?
        .map_err(|e| SubmitError::failed(format!("cannot prepare the working directory: {e}")))?;
        let files = script::AttemptFiles::new(&launch.work_dir);
        let gres = self.cfg.gres_for(&launch.sku);
        let env = crate::isolation::job_env(&launch.env, &launch.work_dir);
        let (text, argv) = script::render_sbatch(&SbatchArgs {
            attempt: r,
            command: &launch.spec.command,
            env: &env,
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
        // Into the fresh folder, never through a link (`.suanli/job.sh` is not a path the
        // validated spec files may take: they are written first and would make it fail).
        let (dir, rel) = (launch.work_dir.clone(), script::SCRIPT_PATH);
        tokio::task::spawn_blocking(move || {
            crate::workdir::write_file(&dir, rel, text.as_bytes(), None)
        })
        .await
        .map_err(|e| SubmitError::failed(format!("cannot write the batch script: {e}")))?
        .map_err(|e| SubmitError::failed(format!("cannot write the batch script: {e}")))?;
        let id = match self.cli.run("sbatch", &argv).await {
            Ok(out) => parse::parse_sbatch_id(&out).ok_or_else(|| {
                SubmitError::failed(format!("sbatch gave no job id: {:?}", out.trim()))
            })?,
            Err(e) if e.transient => {
                // The controller may have taken the job before the answer was lost.
                let args = [
                    "--me".to_string(),
                    format!("--name={}", script::job_name(r)),
                ];
                let _ = self.cli.run("scancel", &args).await;
                return Err(SubmitError::transient(format!(
                    "Slurm is unreachable, the job was not submitted: {}",
                    e.message
                )));
            }
            Err(e) => {
                return Err(SubmitError::failed(format!(
                    "Slurm refused the job: {}",
                    e.message
                )));
            }
        };
        tracing::info!(job = %r.job, attempt = r.attempt, slurm_job = id, gres = %gres, "submitted to Slurm");
        Ok(SlurmAttempt {
            id,
            snaps: self.tracker.track(id),
            out: FileTail::new(files.stdout, Stream::Stdout),
            err: FileTail::new(files.stderr, Stream::Stderr),
            last: None,
            slurm_times: false,
            warned_state: false,
        })
    }

    async fn poll(&self, a: &mut SlurmAttempt) -> Result<Option<Phase>, String> {
        if !a.snaps.has_changed().unwrap_or(false) {
            return Ok(None);
        }
        let snap = a.snaps.borrow_and_update().clone();
        if !snap.asked.contains(&a.id) {
            return Ok(None);
        }
        a.slurm_times = snap.slurm_times;
        let Some(j) = snap.jobs.get(&a.id) else {
            let state = a.last.as_ref().map_or("never seen", |j| j.state.as_str());
            return Ok(Some(Phase::Gone(format!(
                "Slurm job {} left Slurm's queue without a final state (last seen: {state})",
                a.id
            ))));
        };
        let phase = parse::map_state(&j.state).unwrap_or_else(|| {
            if !std::mem::replace(&mut a.warned_state, true) {
                tracing::warn!(slurm_job = a.id, state = %j.state, "unknown Slurm job state; taken as running");
            }
            SlurmPhase::Running
        });
        a.last = Some(j.clone());
        Ok(Some(match phase {
            SlurmPhase::Waiting => {
                Phase::Waiting(Some(j.reason.clone()).filter(|r| !r.is_empty() && r != "None"))
            }
            SlurmPhase::Running | SlurmPhase::Ending => Phase::Running {
                since: j.start.filter(|_| snap.slurm_times),
            },
            SlurmPhase::Ended(end) => Phase::Ended(parse::outcome_of(end, j.exit, &j.reason)),
        }))
    }

    async fn cancel(&self, a: &mut SlurmAttempt, force: bool) {
        // Slurm's KillWait is the grace: nothing more to do when it is over.
        if !force {
            self.scancel(a.id).await;
        }
    }

    async fn warn(&self, a: &mut SlurmAttempt, w: &WarnSignal) -> bool {
        match self.cli.run("scancel", &script::warn_args(a.id, w)).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(slurm_job = a.id, error = %e.message, "scancel --signal failed");
                false
            }
        }
    }

    async fn logs(&self, a: &mut SlurmAttempt, sink: &mut LogSink) {
        a.out.tick(sink).await;
        a.err.tick(sink).await;
    }

    async fn finish(&self, mut a: SlurmAttempt, sink: &mut LogSink) -> Span {
        self.tracker.untrack(a.id);
        a.out.finish(sink).await;
        a.err.finish(sink).await;
        let job = a.last.as_ref();
        tracing::info!(
            slurm_job = a.id,
            state = %job.map_or("?", |j| j.state.as_str()),
            nodes = %job.map_or("", |j| j.nodes.as_str()),
            "Slurm job ended"
        );
        // Slurm's start and end where Slurm gives them; a job that never started has no real start
        // (Slurm may show an estimate), which the supervisor caps at the end.
        let times = job.filter(|_| a.slurm_times);
        (times.and_then(|j| j.start), times.and_then(|j| j.end))
    }

    async fn inventory(&self) -> Option<Result<Vec<NodeInventory>, String>> {
        Some(self.nodes().await)
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

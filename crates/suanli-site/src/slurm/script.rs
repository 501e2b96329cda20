//! The batch script and the `sbatch` arguments of an attempt: what is sent to Slurm. Pure; tested
//! in `parse_tests.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use suanli_proto::AttemptRef;
use suanli_types::spec::signal::WarnSignal;

use crate::env::shell_quote;

/// The batch script, relative to the attempt folder.
pub const SCRIPT_PATH: &str = ".suanli/job.sh";

/// Files of one attempt, under `{work_dir}/.suanli/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptFiles {
    pub script: PathBuf,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl AttemptFiles {
    pub fn new(work_dir: &Path) -> AttemptFiles {
        let d = work_dir.join(".suanli");
        AttemptFiles {
            script: work_dir.join(SCRIPT_PATH),
            stdout: d.join("stdout"),
            stderr: d.join("stderr"),
        }
    }
}

/// What [`render_sbatch`] needs.
#[derive(Clone, Debug)]
pub struct SbatchArgs<'a> {
    pub attempt: AttemptRef,
    pub command: &'a str,
    /// The job's environment (see [`crate::env::build_env`]).
    pub env: &'a BTreeMap<String, String>,
    /// The vendor's visible-devices variable; its value comes from Slurm's allocation.
    pub visible_devices_var: &'a str,
    pub nodes: u32,
    pub cards_per_node: u32,
    /// GRES to request, without the count: `gpu`, `gpu:a100`, `npu`.
    pub gres: &'a str,
    pub walltime_secs: u64,
    pub work_dir: &'a Path,
    pub partition: Option<&'a str>,
    /// Marks the job as this agent's (`--comment`), so that a restarted agent finds its orphans.
    pub comment: &'a str,
    /// Site-specific options (`--account=...`, `--qos=...`), before the script.
    pub extra_args: &'a [String],
}

/// The Slurm job name of an attempt: `suanli-<job>-<attempt>`.
pub fn job_name(a: AttemptRef) -> String {
    format!("suanli-{}-{}", a.job, a.attempt)
}

/// The `--comment` that marks a center's jobs.
pub fn center_comment(center: &str) -> String {
    format!("suanli:{center}")
}

/// Slurm's time limits are whole minutes: the wall time, rounded up, at least one minute.
pub fn time_limit_minutes(walltime_secs: u64) -> u64 {
    walltime_secs.div_ceil(60).max(1)
}

fn is_shell_name(k: &str) -> bool {
    !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
}

/// The `scancel` arguments that send the warning signal `w` to Slurm job `id`: to the batch
/// shell only (`B:`), else to the batch shell and every step (`--full`), as the local backend
/// signals every process of the job.
pub fn warn_args(id: u64, w: &WarnSignal) -> Vec<String> {
    let reach = if w.batch_only { "--batch" } else { "--full" };
    vec![
        format!("--signal={}", w.name),
        reach.to_string(),
        id.to_string(),
    ]
}

/// The batch script and the `sbatch` arguments (without the program name; the script path last).
///
/// The script exports the job's environment (except the visible-devices variable, and `SLURM_*`
/// names, which belong to Slurm), sets the visible-devices variable from Slurm's allocation
/// (`CUDA_VISIBLE_DEVICES`, else `SLURM_JOB_GPUS`) when Slurm gave one, exports
/// `SUANLI_SLURM_JOB_ID` and `SUANLI_SLURM_NODES` (the real node list), and `exec`s
/// `/bin/sh -c <command>` so that the command's exit status is the job's.
pub fn render_sbatch(a: &SbatchArgs<'_>) -> (String, Vec<String>) {
    let files = AttemptFiles::new(a.work_dir);
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!(
        "# suanli job {} attempt {}, written by the suanli site agent\n",
        a.attempt.job, a.attempt.attempt
    ));
    for (k, v) in a.env {
        if k == a.visible_devices_var || k.starts_with("SLURM_") || !is_shell_name(k) {
            continue;
        }
        s.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    s.push_str("export SUANLI_SLURM_JOB_ID=\"$SLURM_JOB_ID\"\n");
    s.push_str("export SUANLI_SLURM_NODES=\"$SLURM_JOB_NODELIST\"\n");
    if is_shell_name(a.visible_devices_var) {
        let v = a.visible_devices_var;
        s.push_str(&format!(
            "_suanli_devices=\"${{CUDA_VISIBLE_DEVICES:-${{SLURM_JOB_GPUS:-}}}}\"\n\
             if [ -n \"$_suanli_devices\" ]; then export {v}=\"$_suanli_devices\"; fi\n\
             unset _suanli_devices\n"
        ));
    }
    s.push_str(&format!("exec /bin/sh -c {}\n", shell_quote(a.command)));

    let mut argv = vec![
        "--parsable".to_string(),
        format!("--job-name={}", job_name(a.attempt)),
        format!("--nodes={}", a.nodes.max(1)),
        "--ntasks-per-node=1".to_string(),
        format!("--gres={}:{}", a.gres, a.cards_per_node),
        format!("--time={}", time_limit_minutes(a.walltime_secs)),
        format!("--chdir={}", a.work_dir.display()),
        format!("--output={}", files.stdout.display()),
        format!("--error={}", files.stderr.display()),
        format!("--comment={}", a.comment),
        // suanli requeues (with a new attempt) itself.
        "--no-requeue".to_string(),
    ];
    if let Some(p) = a.partition.filter(|p| !p.is_empty()) {
        argv.push(format!("--partition={p}"));
    }
    argv.extend(a.extra_args.iter().cloned());
    argv.push(files.script.display().to_string());
    (s, argv)
}

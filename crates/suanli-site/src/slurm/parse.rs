//! The pure half of the Slurm backend: what is sent to Slurm (the batch script and the `sbatch`
//! arguments) and what is read back (`squeue --json`, `scontrol show job -o`, `sinfo`), and how
//! Slurm's job states become suanli outcomes. No I/O here; every function is unit-tested against
//! output captured from Slurm 22.05.8 (Debian 12), plus the JSON shapes of Slurm 23.02 and later.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use suanli_proto::{AttemptRef, NodeInventory, Outcome};
use suanli_types::Timestamp;

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
            script: d.join("job.sh"),
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

/// `'...'` for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_shell_name(k: &str) -> bool {
    !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
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

/// The job id from `sbatch --parsable` (`123` or `123;cluster`).
pub fn parse_sbatch_id(stdout: &str) -> Option<u64> {
    let line = stdout.lines().map(str::trim).find(|l| !l.is_empty())?;
    line.split(';').next()?.trim().parse().ok()
}

/// Is this Slurm client error about reaching the controller (worth retrying, not the job's fault)?
pub fn is_transient_error(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "unable to contact slurm controller",
        "socket timed out",
        "connection refused",
        "zero bytes were transmitted",
        "slurm_persist_conn",
        "communication connection failure",
        "slurmctld not responding",
        "resource temporarily unavailable",
    ]
    .iter()
    .any(|p| s.contains(p))
}

/// How a process ended, as Slurm reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitInfo {
    /// From a raw wait status (22.05's `squeue --json` `exit_code`, jobcomp's `ExitCode`).
    pub fn from_wait_status(raw: i64) -> ExitInfo {
        let sig = (raw & 0x7f) as i32;
        if sig != 0 {
            ExitInfo {
                code: None,
                signal: Some(sig),
            }
        } else {
            ExitInfo {
                code: Some(((raw >> 8) & 0xff) as i32),
                signal: None,
            }
        }
    }

    /// From `scontrol`'s `ExitCode=3:0` (code:signal).
    pub fn from_code_signal(s: &str) -> Option<ExitInfo> {
        let (c, sig) = s.split_once(':')?;
        let c: i32 = c.trim().parse().ok()?;
        let sig: i32 = sig.trim().parse().ok()?;
        Some(if sig != 0 {
            ExitInfo {
                code: None,
                signal: Some(sig),
            }
        } else {
            ExitInfo {
                code: Some(c),
                signal: None,
            }
        })
    }
}

/// One job as `squeue --json` or `scontrol show job` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlurmJob {
    pub id: u64,
    pub name: String,
    /// The state Slurm shows (see [`effective_state`]): `PENDING`, `RUNNING`, `COMPLETING`, ...
    pub state: String,
    /// `state_reason` (`None`, `Priority`, `NonZeroExitCode`, ...).
    pub reason: String,
    pub exit: Option<ExitInfo>,
    /// Start and end (epoch). Slurm puts estimates here for jobs that have not started or ended:
    /// read them only when the state says so. `None` when unset or not known (`scontrol` shows
    /// local times without a zone, which are not converted).
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    /// Allocated nodes, in Slurm's host-list form (`n[1-2]`).
    pub nodes: String,
    pub comment: String,
}

/// Flags that Slurm shows instead of the base state while they are set, in Slurm's order
/// (`job_state_string`).
const STATE_FLAGS: [&str; 14] = [
    "COMPLETING",
    "STAGE_OUT",
    "CONFIGURING",
    "RESIZING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
    "REVOKED",
    "RESV_DEL_HOLD",
    "SIGNALING",
    "POWER_UP_NODE",
    "UPDATE_DB",
];

/// One state from the names Slurm gives: 22.05 gives one string, 23.02 and later a list of the
/// base state and its flags (`["CANCELLED", "COMPLETING"]`); a flag that changes what the job is
/// doing wins, as in Slurm's own `job_state_string`.
pub fn effective_state(names: &[String]) -> String {
    let upper: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_uppercase())
        .collect();
    for f in STATE_FLAGS {
        if upper.iter().any(|n| n == f) {
            return f.to_string();
        }
    }
    upper
        .into_iter()
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// A number, or Slurm 23.02+'s `{"set": true, "infinite": false, "number": N}`.
fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::Object(o) => {
            if o.get("set").and_then(Value::as_bool) == Some(false)
                || o.get("infinite").and_then(Value::as_bool) == Some(true)
            {
                return None;
            }
            o.get("number").and_then(number)
        }
        _ => None,
    }
}

fn epoch(v: Option<&Value>) -> Option<Timestamp> {
    let secs = number(v?)?;
    (secs > 0).then(|| Timestamp(secs.saturating_mul(1000)))
}

fn string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn state_names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// 22.05: the raw wait status as a number. 23.02+: `{"status": .., "return_code": N|{..},
/// "signal": {"id": N|{..}}}`.
fn exit_info(v: Option<&Value>) -> Option<ExitInfo> {
    match v? {
        Value::Number(n) => n.as_i64().map(ExitInfo::from_wait_status),
        Value::Object(o) => {
            let signal = o
                .get("signal")
                .and_then(|s| s.get("id").or(Some(s)))
                .and_then(number)
                .filter(|s| *s > 0)
                .map(|s| s as i32);
            let code = o.get("return_code").and_then(number).map(|c| c as i32);
            if signal.is_some() {
                Some(ExitInfo { code: None, signal })
            } else {
                code.map(|c| ExitInfo {
                    code: Some(c),
                    signal: None,
                })
            }
        }
        _ => None,
    }
}

/// The jobs of a `squeue --json` document (Slurm 22.05's `openapi/v0.0.38` shape, and the
/// `data_parser` shapes of 23.02 and later). Jobs without a usable id are skipped.
pub fn parse_squeue_json(text: &str) -> Result<Vec<SlurmJob>, String> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| format!("squeue --json is not JSON: {e}"))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or("squeue --json has no \"jobs\" list")?;
    Ok(jobs
        .iter()
        .filter_map(|j| {
            let id = j.get("job_id").and_then(number).filter(|i| *i > 0)? as u64;
            Some(SlurmJob {
                id,
                name: string(j.get("name")),
                state: effective_state(&state_names(j.get("job_state"))),
                reason: string(j.get("state_reason")),
                exit: exit_info(j.get("exit_code")),
                start: epoch(j.get("start_time")),
                end: epoch(j.get("end_time")),
                nodes: string(j.get("nodes")),
                comment: string(j.get("comment")),
            })
        })
        .collect())
}

/// `Key=Value` fields of one `scontrol -o` line. A value runs to the next ` Key=`; values with
/// spaces (`OS=Linux 6.1 ...`, `Comment=a b`) stay whole.
pub fn scontrol_fields(line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut key: Option<String> = None;
    let mut val = String::new();
    for tok in line.trim().split(' ') {
        let starts_field = tok.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/:_".contains(c))
        });
        if starts_field {
            if let Some(k) = key.take() {
                out.insert(k, val.trim_end().to_string());
            }
            let (k, v) = tok.split_once('=').expect("checked");
            key = Some(k.to_string());
            val = v.to_string();
        } else if key.is_some() {
            val.push(' ');
            val.push_str(tok);
        }
    }
    if let Some(k) = key {
        out.insert(k, val.trim_end().to_string());
    }
    out
}

fn scontrol_value(v: Option<&String>) -> String {
    match v.map(String::as_str) {
        None | Some("(null)") => String::new(),
        Some(s) => s.to_string(),
    }
}

/// One job from `scontrol show job -o <id>` (the first line; `None` if it names no job). Times are
/// not read: `scontrol` prints them in the controller's local time without a zone.
pub fn parse_scontrol_job(text: &str) -> Option<SlurmJob> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("JobId="))?;
    let f = scontrol_fields(line);
    Some(SlurmJob {
        id: f.get("JobId")?.parse().ok()?,
        name: scontrol_value(f.get("JobName")),
        state: effective_state(&[scontrol_value(f.get("JobState"))]),
        reason: scontrol_value(f.get("Reason")),
        exit: f
            .get("ExitCode")
            .and_then(|e| ExitInfo::from_code_signal(e)),
        start: None,
        end: None,
        nodes: scontrol_value(f.get("NodeList")),
        comment: scontrol_value(f.get("Comment")),
    })
}

/// Does this `scontrol show job` error say that Slurm no longer knows the job?
pub fn is_unknown_job_error(stderr: &str) -> bool {
    stderr.to_ascii_lowercase().contains("invalid job id")
}

/// Where a Slurm job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlurmPhase {
    /// Queued in Slurm, or being set up (nodes booting, requeued, held).
    Waiting,
    /// Running (or suspended or stopped, still holding its allocation).
    Running,
    /// Ended, but processes are still being cleaned up (`COMPLETING`, `STAGE_OUT`): the cards are
    /// not free yet.
    Ending,
    Ended(SlurmEnd),
}

/// How a Slurm job ended (its final state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlurmEnd {
    Completed,
    Failed,
    OutOfMemory,
    Timeout,
    Deadline,
    Cancelled,
    NodeFail,
    BootFail,
    Preempted,
    Revoked,
    SpecialExit,
}

impl SlurmEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SlurmEnd::Completed => "COMPLETED",
            SlurmEnd::Failed => "FAILED",
            SlurmEnd::OutOfMemory => "OUT_OF_MEMORY",
            SlurmEnd::Timeout => "TIMEOUT",
            SlurmEnd::Deadline => "DEADLINE",
            SlurmEnd::Cancelled => "CANCELLED",
            SlurmEnd::NodeFail => "NODE_FAIL",
            SlurmEnd::BootFail => "BOOT_FAIL",
            SlurmEnd::Preempted => "PREEMPTED",
            SlurmEnd::Revoked => "REVOKED",
            SlurmEnd::SpecialExit => "SPECIAL_EXIT",
        }
    }
}

/// Every state Slurm shows (base states and the flags it shows in their place), and `None` for a
/// name this version does not know (treated as still running by the backend, which then relies on
/// the wall time and on the job leaving the queue).
pub fn map_state(state: &str) -> Option<SlurmPhase> {
    use SlurmEnd as E;
    use SlurmPhase as P;
    Some(match state.trim().to_ascii_uppercase().as_str() {
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_FED" | "REQUEUE_HOLD"
        | "RESV_DEL_HOLD" | "POWER_UP_NODE" => P::Waiting,
        "RUNNING" | "SUSPENDED" | "STOPPED" | "RESIZING" | "SIGNALING" | "UPDATE_DB" => P::Running,
        "COMPLETING" | "STAGE_OUT" => P::Ending,
        "COMPLETED" => P::Ended(E::Completed),
        "FAILED" => P::Ended(E::Failed),
        "OUT_OF_MEMORY" => P::Ended(E::OutOfMemory),
        "TIMEOUT" => P::Ended(E::Timeout),
        "DEADLINE" => P::Ended(E::Deadline),
        "CANCELLED" => P::Ended(E::Cancelled),
        "NODE_FAIL" => P::Ended(E::NodeFail),
        "BOOT_FAIL" => P::Ended(E::BootFail),
        "PREEMPTED" => P::Ended(E::Preempted),
        "REVOKED" => P::Ended(E::Revoked),
        "SPECIAL_EXIT" => P::Ended(E::SpecialExit),
        _ => return None,
    })
}

/// Why the agent itself ended the Slurm job, if it did (with `scancel`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentStop {
    /// The hub (cancel, preemption, stale attempt) or the agent (shutdown, fence) asked; the reason.
    Requested(String),
    /// The wall time ran out (counted from Slurm's start time).
    Walltime(u64),
}

/// The suanli outcome, exit code and message of a Slurm job that ended in `end`.
///
/// `stop` is set when the agent cancelled the job itself: a `CANCELLED` job is then `Killed` (or
/// `TimedOut` at the wall time). A job cancelled in Slurm by someone else (the site's operator) is
/// `Failed`: suanli did not ask for it, and requeueing could loop. Node failures, boot failures,
/// preemption and federation revocation are the site's doing, not the job's: `Killed`, which makes
/// the hub requeue the job with a new attempt.
pub fn outcome_of(
    end: SlurmEnd,
    exit: Option<ExitInfo>,
    reason: &str,
    stop: Option<&AgentStop>,
) -> (Outcome, Option<i32>, String) {
    let code = exit.and_then(|e| e.code);
    let signal = exit.and_then(|e| e.signal);
    let why = match reason.trim() {
        "" | "None" | "NonZeroExitCode" => String::new(),
        r => format!(", reason {r}"),
    };
    match end {
        SlurmEnd::Completed => (Outcome::Succeeded, Some(code.unwrap_or(0)), String::new()),
        SlurmEnd::Failed | SlurmEnd::SpecialExit => {
            let what = match (code, signal) {
                (Some(c), _) if c != 0 => format!("exited with code {c}"),
                (_, Some(s)) => format!("killed by signal {s}"),
                _ => "failed".to_string(),
            };
            let msg = if why.is_empty() && end == SlurmEnd::Failed {
                what
            } else {
                format!("{what} (Slurm {}{why})", end.as_str())
            };
            (Outcome::Failed, code.filter(|c| *c != 0), msg)
        }
        SlurmEnd::OutOfMemory => (
            Outcome::Failed,
            code.filter(|c| *c != 0),
            "ran out of memory (Slurm OUT_OF_MEMORY)".into(),
        ),
        SlurmEnd::Timeout => (
            Outcome::TimedOut,
            code,
            "wall-time limit reached (Slurm TIMEOUT)".into(),
        ),
        SlurmEnd::Deadline => (
            Outcome::TimedOut,
            code,
            "Slurm deadline reached (Slurm DEADLINE)".into(),
        ),
        SlurmEnd::Cancelled => match stop {
            Some(AgentStop::Requested(r)) => (Outcome::Killed, code, r.clone()),
            Some(AgentStop::Walltime(secs)) => (
                Outcome::TimedOut,
                code,
                format!("wall-time limit of {secs} s reached"),
            ),
            None => (
                Outcome::Failed,
                None,
                format!("cancelled in Slurm, not by suanli (Slurm CANCELLED{why})"),
            ),
        },
        SlurmEnd::NodeFail | SlurmEnd::BootFail | SlurmEnd::Preempted | SlurmEnd::Revoked => {
            let what = match end {
                SlurmEnd::NodeFail => "a node of the job failed",
                SlurmEnd::BootFail => "a node of the job failed to boot",
                SlurmEnd::Preempted => "preempted by the site's Slurm",
                _ => "revoked by the Slurm federation",
            };
            (
                Outcome::Killed,
                None,
                format!("{what} (Slurm {}{why})", end.as_str()),
            )
        }
    }
}

/// One GRES entry of a node: `gpu:a100:4(S:0-1)` is name `gpu`, type `a100`, count 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gres {
    pub name: String,
    pub kind: Option<String>,
    pub count: u32,
}

impl Gres {
    /// `name` or `name:type`, as `--gres` takes it (without the count).
    pub fn spec(&self) -> String {
        match &self.kind {
            Some(k) => format!("{}:{k}", self.name),
            None => self.name.clone(),
        }
    }
}

/// A GRES list (`gpu:fake:2`, `gpu:a100:2(S:0),gpu:v100:2(IDX:0,2)`, `(null)`); entries with a
/// count suffix (`1K`) or an unreadable count are skipped.
pub fn parse_gres(s: &str) -> Vec<Gres> {
    let s = s.trim();
    if s.is_empty() || s == "(null)" || s == "N/A" {
        return Vec::new();
    }
    let mut entries = Vec::new();
    let (mut depth, mut startpos) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(&s[startpos..i]);
                startpos = i + 1;
            }
            _ => {}
        }
    }
    entries.push(&s[startpos..]);
    entries
        .into_iter()
        .filter_map(|e| {
            let e = e.split('(').next()?.trim();
            let parts: Vec<&str> = e.split(':').collect();
            let (name, kind, count) = match parts.as_slice() {
                [n] => (*n, None, "1"),
                [n, c] if c.starts_with(|ch: char| ch.is_ascii_digit()) => (*n, None, *c),
                [n, t] => (*n, Some(*t), "1"),
                [n, t, c, ..] => (*n, Some(*t), *c),
                _ => return None,
            };
            Some(Gres {
                name: name.to_string(),
                kind: kind.map(str::to_string),
                count: count.parse().ok()?,
            })
        })
        .filter(|g| !g.name.is_empty())
        .collect()
}

/// The `sinfo` output format [`parse_sinfo`] reads (`:0` = no width limit, `|` separates).
pub const SINFO_FORMAT: &str = "NodeList:0|,Gres:0|,GresUsed:0|,StateLong:0|";

/// One node as `sinfo -N -h -O` [`SINFO_FORMAT`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmNode {
    pub name: String,
    pub gres: Vec<Gres>,
    pub gres_used: Vec<Gres>,
    /// `idle`, `mixed`, `allocated`, `down*`, `drained`, ...
    pub state: String,
}

impl SlurmNode {
    /// Can Slurm start jobs on the node (not down, drained, failing or powered off)?
    pub fn usable(&self) -> bool {
        let s = self.state.to_ascii_lowercase();
        let base = s.trim_end_matches(|c: char| "*~#!%$@^-+".contains(c));
        !s.ends_with('*')
            && !s.contains("drain")
            && !s.contains("down")
            && !s.contains("fail")
            && !s.contains("maint")
            && !s.contains("power")
            && !s.contains("reboot")
            && !s.contains("future")
            && ["idle", "mixed", "allocated", "completing", "planned"].contains(&base)
    }
}

/// Nodes from `sinfo -N -h -O` [`SINFO_FORMAT`]; a node listed once per partition is kept once.
pub fn parse_sinfo(text: &str) -> Vec<SlurmNode> {
    let mut out: Vec<SlurmNode> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 4 || f[0].is_empty() || out.iter().any(|n| n.name == f[0]) {
            continue;
        }
        out.push(SlurmNode {
            name: f[0].to_string(),
            gres: parse_gres(f[1]),
            gres_used: parse_gres(f[2]),
            state: f[3].to_string(),
        });
    }
    out
}

/// The heartbeat's inventory from Slurm's nodes. `requests` lists the center's SKUs with the GRES
/// each asks for (`gpu`, `gpu:a100`); a node's GRES entry counts for the first SKU whose request is
/// its name (any type) or its `name:type`. Free cards are the total less Slurm's `GresUsed` on a
/// usable node, none on a down, drained or failing one. Nodes with no such GRES are left out.
pub fn slurm_inventory(nodes: &[SlurmNode], requests: &[(String, String)]) -> Vec<NodeInventory> {
    let mut out = Vec::new();
    for n in nodes {
        let mut per_sku: Vec<(String, u32, u32)> = Vec::new();
        for g in &n.gres {
            let Some((sku, _)) = requests
                .iter()
                .find(|(_, r)| *r == g.name || *r == g.spec())
            else {
                continue;
            };
            let used: u32 = n
                .gres_used
                .iter()
                .filter(|u| u.name == g.name && (u.kind.is_none() || u.kind == g.kind))
                .map(|u| u.count)
                .sum();
            match per_sku.iter_mut().find(|(s, ..)| s == sku) {
                Some(e) => {
                    e.1 += g.count;
                    e.2 += used.min(g.count);
                }
                None => per_sku.push((sku.clone(), g.count, used.min(g.count))),
            }
        }
        for (sku, cards, used) in per_sku {
            out.push(NodeInventory {
                node: n.name.clone(),
                sku,
                cards,
                free_cards: if n.usable() { cards - used } else { 0 },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use suanli_types::JobId;

    use super::*;

    fn attempt() -> AttemptRef {
        AttemptRef {
            job: JobId(42),
            attempt: 3,
        }
    }

    #[test]
    fn renders_the_batch_script_and_directives() {
        let env = BTreeMap::from([
            ("SUANLI_JOB_ID".to_string(), "42".to_string()),
            ("EPOCHS".to_string(), "it's 3".to_string()),
            ("CUDA_VISIBLE_DEVICES".to_string(), "0,1".to_string()),
            ("SLURM_JOB_ID".to_string(), "1".to_string()),
            ("bad-name".to_string(), "x".to_string()),
        ]);
        let extra = vec!["--account=lab".to_string()];
        let a = SbatchArgs {
            attempt: attempt(),
            command: "echo 'hi'; exit 3",
            env: &env,
            visible_devices_var: "CUDA_VISIBLE_DEVICES",
            nodes: 2,
            cards_per_node: 4,
            gres: "gpu:a100",
            walltime_secs: 3601,
            work_dir: Path::new("/srv/work/42-3"),
            partition: Some("gpu"),
            comment: "suanli:sz-a",
            extra_args: &extra,
        };
        let (script, argv) = render_sbatch(&a);
        assert_eq!(
            argv,
            [
                "--parsable",
                "--job-name=suanli-42-3",
                "--nodes=2",
                "--ntasks-per-node=1",
                "--gres=gpu:a100:4",
                "--time=61",
                "--chdir=/srv/work/42-3",
                "--output=/srv/work/42-3/.suanli/stdout",
                "--error=/srv/work/42-3/.suanli/stderr",
                "--comment=suanli:sz-a",
                "--no-requeue",
                "--partition=gpu",
                "--account=lab",
                "/srv/work/42-3/.suanli/job.sh",
            ]
        );
        assert_eq!(
            script,
            "#!/bin/sh\n\
             # suanli job 42 attempt 3, written by the suanli site agent\n\
             export EPOCHS='it'\\''s 3'\n\
             export SUANLI_JOB_ID='42'\n\
             export SUANLI_SLURM_JOB_ID=\"$SLURM_JOB_ID\"\n\
             export SUANLI_SLURM_NODES=\"$SLURM_JOB_NODELIST\"\n\
             _suanli_devices=\"${CUDA_VISIBLE_DEVICES:-${SLURM_JOB_GPUS:-}}\"\n\
             if [ -n \"$_suanli_devices\" ]; then export CUDA_VISIBLE_DEVICES=\"$_suanli_devices\"; fi\n\
             unset _suanli_devices\n\
             exec /bin/sh -c 'echo '\\''hi'\\''; exit 3'\n"
        );

        let a = SbatchArgs {
            partition: None,
            extra_args: &[],
            gres: "gpu",
            nodes: 1,
            cards_per_node: 1,
            walltime_secs: 5,
            visible_devices_var: "ASCEND_RT_VISIBLE_DEVICES",
            ..a
        };
        let (script, argv) = render_sbatch(&a);
        assert!(argv.contains(&"--gres=gpu:1".to_string()));
        assert!(argv.contains(&"--time=1".to_string()));
        assert!(!argv.iter().any(|a| a.starts_with("--partition")));
        assert!(script.contains("export CUDA_VISIBLE_DEVICES='0,1'\n"));
        assert!(script.contains("export ASCEND_RT_VISIBLE_DEVICES=\"$_suanli_devices\""));
    }

    #[test]
    fn helpers() {
        assert_eq!(time_limit_minutes(0), 1);
        assert_eq!(time_limit_minutes(60), 1);
        assert_eq!(time_limit_minutes(61), 2);
        assert_eq!(time_limit_minutes(86_400), 1440);
        assert_eq!(parse_sbatch_id("123\n"), Some(123));
        assert_eq!(parse_sbatch_id("77;ci\n"), Some(77));
        assert_eq!(parse_sbatch_id("\n"), None);
        assert_eq!(parse_sbatch_id("Submitted batch job 5"), None);
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert!(is_transient_error(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!is_transient_error(
            "sbatch: error: Batch job submission failed: Requested node configuration is not available"
        ));
        assert_eq!(
            ExitInfo::from_wait_status(768),
            ExitInfo {
                code: Some(3),
                signal: None
            }
        );
        assert_eq!(
            ExitInfo::from_wait_status(15),
            ExitInfo {
                code: None,
                signal: Some(15)
            }
        );
        assert_eq!(
            ExitInfo::from_code_signal("0:15"),
            Some(ExitInfo {
                code: None,
                signal: Some(15)
            })
        );
        assert_eq!(ExitInfo::from_code_signal("3:0").unwrap().code, Some(3));
        assert_eq!(ExitInfo::from_code_signal("x"), None);
        assert_eq!(center_comment("sz-a"), "suanli:sz-a");
    }

    /// `squeue --json` of Slurm 22.05.8 (three of the fields per job it prints are cut for length;
    /// the rest as printed): a completed, a failed (`exit 3`), a cancelled and a pending job.
    const SQUEUE_2205: &str = r#"{
  "meta": {"plugin": {"type": "openapi\/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
           "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}},
  "errors": [],
  "jobs": [
    {"account": "", "accrue_time": 1795734882, "batch_flag": true, "batch_host": "n1",
     "cluster": "ci", "command": "\/tmp\/sj\/ok.sh", "comment": "suanli:c-slurm",
     "derived_exit_code": 0, "eligible_time": 1795734882, "end_time": 1795734883,
     "exit_code": 0, "gres_detail": [], "job_id": 1,
     "job_resources": {"nodes": "n1", "allocated_cores": 1, "allocated_hosts": 1},
     "job_state": "COMPLETED", "name": "suanli-1-1", "nodes": "n1", "partition": "main",
     "start_time": 1795734883, "state_description": "", "state_reason": "None",
     "standard_error": "\/tmp\/sj\/e1.txt", "standard_output": "\/tmp\/sj\/o1.txt",
     "submit_time": 1795734882, "time_limit": 2, "tres_per_node": "gres:gpu:fake:1",
     "user_id": 0, "user_name": "root", "current_working_directory": "\/tmp\/sj"},
    {"comment": "", "end_time": 1795734884, "exit_code": 768, "job_id": 2,
     "job_state": "FAILED", "name": "suanli-2-1", "nodes": "n[1-2]",
     "start_time": 1795734884, "state_reason": "NonZeroExitCode", "time_limit": 1},
    {"comment": "", "end_time": 1795734885, "exit_code": 15, "job_id": 3,
     "job_state": "CANCELLED", "name": "suanli-3-1", "nodes": "n1",
     "start_time": 1795734885, "state_reason": "None", "time_limit": 1},
    {"comment": "", "end_time": 0, "exit_code": 0, "job_id": 4, "job_state": "PENDING",
     "name": "other", "nodes": "", "start_time": 0, "state_reason": "Priority", "time_limit": 1}
  ]
}"#;

    /// The same jobs in the `data_parser` shape of Slurm 23.02 and later.
    const SQUEUE_2311: &str = r#"{"jobs": [
      {"job_id": 7, "name": "suanli-7-2", "comment": "suanli:c",
       "job_state": ["CANCELLED", "COMPLETING"], "state_reason": "None",
       "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "infinite": false, "number": 0},
                     "signal": {"id": {"set": true, "infinite": false, "number": 15}, "name": "TERM"}},
       "start_time": {"set": true, "infinite": false, "number": 1795734885},
       "end_time": {"set": true, "infinite": false, "number": 1795734890},
       "nodes": "n1"},
      {"job_id": 8, "name": "suanli-8-1", "job_state": ["FAILED"],
       "exit_code": {"status": ["NONZERO"], "return_code": {"set": true, "infinite": false, "number": 3},
                     "signal": {"id": {"set": false, "infinite": false, "number": 0}}},
       "start_time": {"set": false, "infinite": false, "number": 0},
       "end_time": {"set": true, "infinite": false, "number": 1795734891}},
      {"name": "no id"}
    ]}"#;

    #[test]
    fn parses_squeue_json_of_22_05_and_later() {
        let jobs = parse_squeue_json(SQUEUE_2205).unwrap();
        assert_eq!(jobs.len(), 4);
        assert_eq!(
            jobs[0],
            SlurmJob {
                id: 1,
                name: "suanli-1-1".into(),
                state: "COMPLETED".into(),
                reason: "None".into(),
                exit: Some(ExitInfo {
                    code: Some(0),
                    signal: None
                }),
                start: Some(Timestamp(1_795_734_883_000)),
                end: Some(Timestamp(1_795_734_883_000)),
                nodes: "n1".into(),
                comment: "suanli:c-slurm".into(),
            }
        );
        assert_eq!(jobs[1].exit.unwrap().code, Some(3));
        assert_eq!(jobs[1].nodes, "n[1-2]");
        assert_eq!(jobs[2].exit.unwrap().signal, Some(15));
        assert_eq!((jobs[3].start, jobs[3].end), (None, None));
        assert_eq!(jobs[3].state, "PENDING");

        let jobs = parse_squeue_json(SQUEUE_2311).unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].state, "COMPLETING");
        assert_eq!(jobs[0].exit.unwrap().signal, Some(15));
        assert_eq!(jobs[0].end, Some(Timestamp(1_795_734_890_000)));
        assert_eq!(jobs[1].state, "FAILED");
        assert_eq!(
            jobs[1].exit,
            Some(ExitInfo {
                code: Some(3),
                signal: None
            })
        );
        assert_eq!(jobs[1].start, None);

        assert!(parse_squeue_json("squeue: error: ...").is_err());
        assert!(parse_squeue_json("{\"meta\": {}}").is_err());
    }

    /// `scontrol show job -o 2` of Slurm 22.05.8, as printed.
    const SCONTROL_2205: &str = "JobId=2 JobName=suanli-2-1 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:00 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-26T23:14:42 EligibleTime=2026-11-26T23:14:42 AccrueTime=2026-11-26T23:14:42 StartTime=2026-11-26T23:14:44 EndTime=2026-11-26T23:14:44 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T23:14:44 Scheduler=Main Partition=main AllocNode:Sid=localhost:10908 ReqNodeList=(null) ExcNodeList=(null) NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=2,node=2,billing=2 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp/sj StdErr=/tmp/sj/o2.txt StdIn=/dev/null StdOut=/tmp/sj/o2.txt Power= TresPerNode=gres:gpu:2 \n";

    #[test]
    fn parses_scontrol_show_job() {
        let j = parse_scontrol_job(SCONTROL_2205).unwrap();
        assert_eq!(j.id, 2);
        assert_eq!(j.name, "suanli-2-1");
        assert_eq!(j.state, "FAILED");
        assert_eq!(j.reason, "NonZeroExitCode");
        assert_eq!(j.exit.unwrap().code, Some(3));
        assert_eq!(j.nodes, "n[1-2]");
        assert_eq!(j.comment, "");
        let pending = "JobId=3 JobName=suanli-3-1 UserId=root(0) JobState=PENDING Reason=Priority ExitCode=0:0 Comment=suanli:c a b NodeList= BatchHost=n1 Power= \n";
        let j = parse_scontrol_job(pending).unwrap();
        assert_eq!(
            (j.state.as_str(), j.reason.as_str()),
            ("PENDING", "Priority")
        );
        assert_eq!(j.comment, "suanli:c a b");
        assert_eq!(j.nodes, "");
        assert_eq!(
            parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n"),
            None
        );
        assert!(is_unknown_job_error(
            "slurm_load_jobs error: Invalid job id specified"
        ));
        let f = scontrol_fields("NodeName=n1 OS=Linux 6.1 #1 SMP  RealMemory=4000");
        assert_eq!(f["OS"], "Linux 6.1 #1 SMP");
        assert_eq!(f["RealMemory"], "4000");
    }

    #[test]
    fn maps_every_state() {
        use SlurmEnd as E;
        use SlurmPhase as P;
        for (s, p) in [
            ("PENDING", P::Waiting),
            ("CONFIGURING", P::Waiting),
            ("REQUEUED", P::Waiting),
            ("REQUEUE_FED", P::Waiting),
            ("REQUEUE_HOLD", P::Waiting),
            ("RESV_DEL_HOLD", P::Waiting),
            ("POWER_UP_NODE", P::Waiting),
            ("RUNNING", P::Running),
            ("SUSPENDED", P::Running),
            ("STOPPED", P::Running),
            ("RESIZING", P::Running),
            ("SIGNALING", P::Running),
            ("UPDATE_DB", P::Running),
            ("COMPLETING", P::Ending),
            ("STAGE_OUT", P::Ending),
            ("COMPLETED", P::Ended(E::Completed)),
            ("FAILED", P::Ended(E::Failed)),
            ("OUT_OF_MEMORY", P::Ended(E::OutOfMemory)),
            ("TIMEOUT", P::Ended(E::Timeout)),
            ("DEADLINE", P::Ended(E::Deadline)),
            ("CANCELLED", P::Ended(E::Cancelled)),
            ("NODE_FAIL", P::Ended(E::NodeFail)),
            ("BOOT_FAIL", P::Ended(E::BootFail)),
            ("PREEMPTED", P::Ended(E::Preempted)),
            ("REVOKED", P::Ended(E::Revoked)),
            ("SPECIAL_EXIT", P::Ended(E::SpecialExit)),
            ("cancelled", P::Ended(E::Cancelled)),
        ] {
            assert_eq!(map_state(s), Some(p), "{s}");
            if let P::Ended(e) = p {
                assert_eq!(e.as_str(), s.to_ascii_uppercase());
            }
        }
        assert_eq!(map_state("LAUNCH_FAILED_SOMEHOW"), None);
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            effective_state(&v(&["CANCELLED", "COMPLETING"])),
            "COMPLETING"
        );
        assert_eq!(effective_state(&v(&["PENDING", "REQUEUED"])), "REQUEUED");
        assert_eq!(effective_state(&v(&["running"])), "RUNNING");
        assert_eq!(effective_state(&[]), "UNKNOWN");
    }

    #[test]
    fn outcomes() {
        let code = |c| {
            Some(ExitInfo {
                code: Some(c),
                signal: None,
            })
        };
        let sig = |s| {
            Some(ExitInfo {
                code: None,
                signal: Some(s),
            })
        };
        use SlurmEnd as E;
        assert_eq!(
            outcome_of(E::Completed, code(0), "None", None),
            (Outcome::Succeeded, Some(0), String::new())
        );
        assert_eq!(
            outcome_of(E::Failed, code(3), "NonZeroExitCode", None),
            (Outcome::Failed, Some(3), "exited with code 3".into())
        );
        assert_eq!(
            outcome_of(E::Failed, sig(9), "None", None),
            (Outcome::Failed, None, "killed by signal 9".into())
        );
        assert_eq!(
            outcome_of(E::Failed, code(1), "JobLaunchFailure", None),
            (
                Outcome::Failed,
                Some(1),
                "exited with code 1 (Slurm FAILED, reason JobLaunchFailure)".into()
            )
        );
        assert_eq!(
            outcome_of(E::OutOfMemory, code(0), "OutOfMemory", None),
            (
                Outcome::Failed,
                None,
                "ran out of memory (Slurm OUT_OF_MEMORY)".into()
            )
        );
        assert_eq!(
            outcome_of(E::Timeout, sig(15), "TimeLimit", None).0,
            Outcome::TimedOut
        );
        assert_eq!(outcome_of(E::Deadline, None, "", None).0, Outcome::TimedOut);
        let hub = AgentStop::Requested("killed at the hub's request".into());
        assert_eq!(
            outcome_of(E::Cancelled, sig(15), "None", Some(&hub)),
            (Outcome::Killed, None, "killed at the hub's request".into())
        );
        assert_eq!(
            outcome_of(E::Cancelled, sig(15), "None", Some(&AgentStop::Walltime(5))),
            (
                Outcome::TimedOut,
                None,
                "wall-time limit of 5 s reached".into()
            )
        );
        let (o, c, m) = outcome_of(E::Cancelled, sig(15), "None", None);
        assert_eq!((o, c), (Outcome::Failed, None));
        assert_eq!(m, "cancelled in Slurm, not by suanli (Slurm CANCELLED)");
        // A job that ended on its own before the agent's scancel landed keeps its real end.
        assert_eq!(
            outcome_of(E::Completed, code(0), "None", Some(&hub)).0,
            Outcome::Succeeded
        );
        for e in [E::NodeFail, E::BootFail, E::Preempted, E::Revoked] {
            let (o, _, m) = outcome_of(e, sig(9), "None", None);
            assert_eq!(o, Outcome::Killed, "{e:?} requeues");
            assert!(m.contains(e.as_str()), "{m}");
        }
        assert_eq!(
            outcome_of(E::SpecialExit, code(2), "None", None).2,
            "exited with code 2 (Slurm SPECIAL_EXIT)"
        );
    }

    /// `sinfo -N -h -O` SINFO_FORMAT of Slurm 22.05.8, one job on n1, plus typical production lines.
    const SINFO_2205: &str = "n1|gpu:fake:2|gpu:fake:1(IDX:0)|mixed|\n\
                              n2|gpu:fake:2|gpu:fake:0(IDX:N/A)|idle|\n\
                              n2|gpu:fake:2|gpu:fake:0(IDX:N/A)|idle|\n\
                              g1|gpu:a100:4(S:0-1),gpu:v100:2(S:0)|gpu:a100:2(IDX:0,2),gpu:v100:0(IDX:N/A)|allocated|\n\
                              c1|(null)|gpu:0|idle|\n\
                              g2|gpu:8|gpu:0|down*|\n\
                              g3|gpu:8|gpu:0|drained|\n";

    #[test]
    fn parses_sinfo_and_gres() {
        let nodes = parse_sinfo(SINFO_2205);
        assert_eq!(nodes.len(), 6, "n2 once");
        assert_eq!(nodes[0].name, "n1");
        assert_eq!(
            nodes[0].gres,
            [Gres {
                name: "gpu".into(),
                kind: Some("fake".into()),
                count: 2
            }]
        );
        assert_eq!(nodes[0].gres_used[0].count, 1);
        assert!(nodes[0].usable() && nodes[1].usable());
        assert_eq!(nodes[2].gres.len(), 2);
        assert_eq!(nodes[2].gres[1].spec(), "gpu:v100");
        assert_eq!(nodes[2].gres_used[0].count, 2);
        assert!(nodes[2].usable());
        assert!(nodes[3].gres.is_empty());
        assert!(!nodes[4].usable() && !nodes[5].usable());
        assert_eq!(
            parse_gres("gpu:8"),
            [Gres {
                name: "gpu".into(),
                kind: None,
                count: 8
            }]
        );
        assert_eq!(
            parse_gres("npu:ascend910b:8(S:0-1)")[0].spec(),
            "npu:ascend910b"
        );
        assert_eq!(parse_gres("mps:1K"), []);

        let reqs = [
            ("A100".to_string(), "gpu:a100".to_string()),
            ("RTX4090".to_string(), "gpu".to_string()),
        ];
        let inv = slurm_inventory(&nodes, &reqs);
        let row = |n: &str, s: &str| {
            inv.iter()
                .find(|i| i.node == n && i.sku == s)
                .map(|i| (i.cards, i.free_cards))
        };
        assert_eq!(row("n1", "RTX4090"), Some((2, 1)));
        assert_eq!(row("n2", "RTX4090"), Some((2, 2)));
        assert_eq!(row("g1", "A100"), Some((4, 2)));
        assert_eq!(
            row("g1", "RTX4090"),
            Some((2, 2)),
            "untyped request takes the v100s"
        );
        assert_eq!(row("g2", "RTX4090"), Some((8, 0)), "down: no free cards");
        assert_eq!(row("g3", "RTX4090"), Some((8, 0)));
        assert_eq!(inv.iter().filter(|i| i.node == "c1").count(), 0);
        assert!(slurm_inventory(&nodes, &[("X".into(), "npu".into())]).is_empty());
        assert!(parse_gres("N/A").is_empty());
    }
}

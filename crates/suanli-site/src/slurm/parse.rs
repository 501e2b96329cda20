//! What Slurm says about jobs: `sbatch --parsable`, `squeue --json`, `scontrol show job -o` and the
//! errors of its commands, and how Slurm's job states become suanli outcomes. No I/O here; every
//! function is unit-tested (`parse_tests.rs`) against output captured from Slurm 22.05.8 (Debian 12),
//! plus the JSON shapes of Slurm 23.02 and later.

use std::collections::BTreeMap;

use serde_json::Value;
use suanli_proto::Outcome;
use suanli_types::Timestamp;

use crate::backend::Exit;

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
    /// Killed by `signal` when it is set (not 0), else exited with `code`.
    pub fn of(code: Option<i32>, signal: Option<i32>) -> ExitInfo {
        match signal.filter(|s| *s != 0) {
            Some(sig) => ExitInfo {
                code: None,
                signal: Some(sig),
            },
            None => ExitInfo { code, signal: None },
        }
    }

    /// From a raw wait status (22.05's `squeue --json` `exit_code`, jobcomp's `ExitCode`).
    pub fn from_wait_status(raw: i64) -> ExitInfo {
        ExitInfo::of(Some(((raw >> 8) & 0xff) as i32), Some((raw & 0x7f) as i32))
    }

    /// From `scontrol`'s `ExitCode=3:0` (code:signal).
    pub fn from_code_signal(s: &str) -> Option<ExitInfo> {
        let (c, sig) = s.split_once(':')?;
        let c: i32 = c.trim().parse().ok()?;
        let sig: i32 = sig.trim().parse().ok()?;
        Some(ExitInfo::of(Some(c), Some(sig)))
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
            (signal.is_some() || code.is_some()).then(|| ExitInfo::of(code, signal))
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

/// How a Slurm job that ended in `end` ended, for suanli.
///
/// A `CANCELLED` job is [`Exit::cancelled`]: when the agent cancelled it, the agent's reason is the
/// outcome (`Killed`, or `TimedOut` at the wall time); cancelled in Slurm by someone else (the
/// site's operator) it is `Failed`: suanli did not ask for it, and requeueing could loop. Node
/// failures, boot failures, preemption and federation revocation are the site's doing, not the
/// job's: `Killed`, which makes the hub requeue the job with a new attempt.
pub fn outcome_of(end: SlurmEnd, exit: Option<ExitInfo>, reason: &str) -> Exit {
    let code = exit.and_then(|e| e.code);
    let signal = exit.and_then(|e| e.signal);
    let why = match reason.trim() {
        "" | "None" | "NonZeroExitCode" => String::new(),
        r => format!(", reason {r}"),
    };
    match end {
        SlurmEnd::Completed => Exit::new(Outcome::Succeeded, Some(code.unwrap_or(0)), ""),
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
            Exit::new(Outcome::Failed, code.filter(|c| *c != 0), msg)
        }
        SlurmEnd::OutOfMemory => Exit::new(
            Outcome::Failed,
            code.filter(|c| *c != 0),
            "ran out of memory (Slurm OUT_OF_MEMORY)",
        ),
        SlurmEnd::Timeout => Exit::new(
            Outcome::TimedOut,
            code,
            "wall-time limit reached (Slurm TIMEOUT)",
        ),
        SlurmEnd::Deadline => Exit::new(
            Outcome::TimedOut,
            code,
            "Slurm deadline reached (Slurm DEADLINE)",
        ),
        SlurmEnd::Cancelled => Exit::cancelled(
            Outcome::Failed,
            code,
            format!("cancelled in Slurm, not by suanli (Slurm CANCELLED{why})"),
        ),
        SlurmEnd::NodeFail | SlurmEnd::BootFail | SlurmEnd::Preempted | SlurmEnd::Revoked => {
            let what = match end {
                SlurmEnd::NodeFail => "a node of the job failed",
                SlurmEnd::BootFail => "a node of the job failed to boot",
                SlurmEnd::Preempted => "preempted by the site's Slurm",
                _ => "revoked by the Slurm federation",
            };
            Exit::new(
                Outcome::Killed,
                None,
                format!("{what} (Slurm {}{why})", end.as_str()),
            )
        }
    }
}

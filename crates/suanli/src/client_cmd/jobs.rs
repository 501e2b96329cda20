//! Jobs: `submit`, `quote`, `jobs`, `job`, `wait`, `logs`, `cancel`, `hold`, `release`.

mod list;
mod spec;
mod watch;

use clap::Subcommand;
use serde::Serialize;
use suanli_client::{Client, JobFilter};
use suanli_proto::{CandidateView, ErrorCode, JobSummary, JobView, QuoteView};
use suanli_types::sbatch::parse_flag_duration;
use suanli_types::{JobId, JobState, Role};

use super::exit::{self, Exit, Invalid};
use super::output::{self as out, Format, Table, indent, joined, note, or_dash, row};
use crate::config::ConnArgs;
use list::JobsArgs;
pub use spec::SubmitArgs;
use spec::build_spec;

/// How durations are given, for `--help`.
pub const DURATIONS: &str = "Durations: a bare number is minutes, as in Slurm (`-t 10` in a script, `--walltime 10` \
here); also M:S, H:M:S (1:30:00), D-H, D-H:M, D-H:M:S (2-00:00:00), or with units: 90s, 30m, 2h, 1h30m, 2d.";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Submit a job (like sbatch): a batch script with its arguments, a TOML spec file and/or
    /// flags, command after `--`
    #[command(after_help = DURATIONS)]
    Submit(Box<SubmitCmd>),
    /// Price and expected start of a job at every center, without submitting it (same flags)
    Quote(Box<QuoteArgs>),
    /// List jobs (like squeue): active ones, newest first, unless --state or --all says otherwise
    #[command(after_help = DURATIONS)]
    Jobs(JobsArgs),
    /// Show a job: state, placement decision and history
    Job {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Why you read another tenant's job (operator, supervisor): shows its env values, and
        /// the read is recorded in the audit log
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        out: Format,
    },
    /// Wait until a job ends; exit 0 only if it succeeded, else a code per outcome (see --help)
    #[command(after_help = exit::HELP)]
    Wait {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Give up after this long: minutes, or e.g. 90s, 1:30:00 (exit 124)
        #[arg(long, value_name = "DURATION", value_parser = parse_flag_duration)]
        timeout: Option<u64>,
        /// Print the ended job as JSON (as `suanli job --json` does)
        #[arg(long)]
        json: bool,
    },
    /// Print a job's output (stdout to stdout, stderr to stderr)
    Logs {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Keep printing until the job ends
        #[arg(short, long)]
        follow: bool,
        /// Attempt to show [default: the latest]
        #[arg(long, value_name = "N")]
        attempt: Option<u32>,
        /// Why you read another tenant's logs: required of the operator and supervisors, and
        /// recorded in the audit log
        #[arg(long)]
        reason: Option<String>,
    },
    /// Cancel jobs (like scancel): each id given, or every pending or running job a selection
    /// (--user, --state, --name, --tenant) matches that you may cancel; with ids too, those of
    /// them it matches. Prints each job cancelled; the exit is that of the first that failed
    Cancel(CancelArgs),
    /// Hold pending jobs (like scontrol hold): they are not placed until released
    Hold {
        #[arg(value_parser = parse_job_id, required = true, value_name = "ID")]
        ids: Vec<JobId>,
    },
    /// Release held jobs (like scontrol release)
    Release {
        #[arg(value_parser = parse_job_id, required = true, value_name = "ID")]
        ids: Vec<JobId>,
    },
}

#[derive(clap::Args, Debug)]
pub struct SubmitCmd {
    #[command(flatten)]
    job: SubmitArgs,
    #[command(flatten)]
    out: Format,
}

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// Jobs to cancel (with a selection too: those of them it matches)
    #[arg(value_parser = parse_job_id, value_name = "ID")]
    ids: Vec<JobId>,
    /// Select jobs submitted by this user (a token's name; users: only their own)
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Select jobs in these states (repeat or comma-separate; as for `jobs`, e.g. PD,R)
    /// [default: every pending or running state]
    #[arg(short = 't', long, value_name = "STATES", value_delimiter = ',')]
    state: Vec<String>,
    /// Select jobs of this name
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Select this tenant's jobs (Slurm's account)
    #[arg(short = 'A', long, visible_alias = "account", value_name = "TENANT")]
    tenant: Option<String>,
    /// The ids are arrays: cancel every unfinished task of each
    #[arg(long)]
    array: bool,
    /// Print what was cancelled, and what failed, as JSON
    #[arg(long)]
    json: bool,
    /// Go ahead when a selection without ids matches jobs of more than one tenant (the
    /// operator's `cancel --state R` would otherwise stop the whole network's work)
    #[arg(long)]
    yes: bool,
}

impl CancelArgs {
    fn selects(&self) -> bool {
        self.user.is_some()
            || !self.state.is_empty()
            || self.name.is_some()
            || self.tenant.is_some()
    }
}

#[derive(clap::Args, Debug)]
pub struct QuoteArgs {
    #[command(flatten)]
    job: SubmitArgs,
    #[command(flatten)]
    out: Format,
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        match self {
            Command::Submit(a) => {
                if a.job.parsable && a.out.json {
                    return Err(Invalid("give --parsable or --json, not both".into()).into());
                }
                let spec = build_spec(&a.job, &conn.site_map()?)?;
                let job = conn.client()?.submit(&spec).await?;
                match (a.out.json, a.job.parsable) {
                    (true, _) => out::json(&job)?,
                    (false, true) => out::line(job.summary.id)?,
                    (false, false) => out::line(format!(
                        "Submitted job {} ({})",
                        job.summary.id, job.summary.state
                    ))?,
                }
            }
            Command::Quote(a) => {
                let spec = build_spec(&a.job, &conn.site_map()?)?;
                let q = conn.client()?.quote(&spec).await?;
                out::show(a.out, &q, describe_quote)?;
            }
            Command::Jobs(a) => list::list(&conn.client()?, a).await?,
            Command::Job { id, reason, out } => {
                let job = conn.client()?.with_reason(reason).job(id).await?;
                out::show(out, &job, describe_job)?;
            }
            Command::Wait { id, timeout, json } => {
                return watch::wait(&conn.client()?, id, timeout, json).await;
            }
            Command::Logs {
                id,
                follow,
                attempt,
                reason,
            } => watch::logs(&conn.client()?.with_reason(reason), id, follow, attempt).await?,
            Command::Cancel(a) => return cancel(&conn.client()?, a).await,
            Command::Hold { ids } => {
                let c = conn.client()?;
                return each(&ids, async |id| {
                    c.hold(id).await?;
                    Ok(format!("Job {id} held"))
                })
                .await;
            }
            Command::Release { ids } => {
                let c = conn.client()?;
                return each(&ids, async |id| {
                    c.release(id).await?;
                    Ok(format!("Job {id} released"))
                })
                .await;
            }
        }
        Ok(Exit::Success)
    }
}

/// Runs `f` for each job, printing what it answers; one that fails is said on stderr and the
/// others still go. The exit is that of the first that failed.
async fn each(
    ids: &[JobId],
    f: impl AsyncFn(JobId) -> Result<String, suanli_client::ClientError>,
) -> anyhow::Result<Exit> {
    let mut exit = Exit::Success;
    for &id in ids {
        match f(id).await {
            Ok(line) => out::line(line)?,
            Err(e) if ids.len() == 1 => return Err(e.into()),
            Err(e) => {
                note(format!("error: job {id}: {e}"));
                if exit == Exit::Success {
                    exit = Exit::of_error(&e.into());
                }
            }
        }
    }
    Ok(exit)
}

/// What `cancel --json` prints.
#[derive(Serialize)]
struct Cancelled {
    cancelled: Vec<JobSummary>,
    failed: Vec<CancelFailed>,
}

#[derive(Serialize)]
struct CancelFailed {
    id: JobId,
    /// The hub's error code (`not_found`, `conflict`, `forbidden`, ...), if it answered.
    code: Option<ErrorCode>,
    error: String,
}

/// Cancels the jobs the ids and the selection name; one that fails is said on stderr and the
/// others still go. The exit is that of the first failure.
async fn cancel(c: &Client, a: CancelArgs) -> anyhow::Result<Exit> {
    if a.array {
        if a.selects() || a.ids.is_empty() {
            return Err(Invalid(
                "cancel --array: give the arrays' ids (the first task's job id), no selection"
                    .into(),
            )
            .into());
        }
        return each(&a.ids, async |id| {
            let tasks = c.cancel_array(id).await?;
            Ok(format!(
                "Array {id}: {} tasks, {}",
                tasks.jobs.len(),
                tally(&tasks.jobs)
            ))
        })
        .await;
    }
    let ids = match a.selects() {
        false if a.ids.is_empty() => {
            return Err(Invalid(
                "cancel: give job ids, or a selection: --user, --state, --name or --tenant \
                 (e.g. `suanli cancel --state PD` cancels all your pending jobs)"
                    .into(),
            )
            .into());
        }
        false => a.ids.clone(),
        true => selected(c, &a).await?,
    };
    let mut exit = Exit::Success;
    let mut done = Cancelled {
        cancelled: Vec::new(),
        failed: Vec::new(),
    };
    for id in ids {
        match c.cancel(id).await {
            Ok(job) => {
                if !a.json {
                    out::line(format!("Job {id} {}", job.summary.state))?;
                }
                done.cancelled.push(job.summary);
            }
            Err(e) => {
                note(format!("error: job {id}: {e}"));
                let code = e.code();
                let error = e.to_string();
                if exit == Exit::Success {
                    exit = Exit::of_error(&e.into());
                }
                done.failed.push(CancelFailed { id, code, error });
            }
        }
    }
    if a.json {
        out::json(&done)?;
    } else if done.cancelled.is_empty() && done.failed.is_empty() {
        note("No job matches the selection.");
    }
    Ok(exit)
}

/// The pending and running jobs the selection matches (and, with ids given, only those), that
/// the caller may cancel: a user's own only; the hub filters by state, user and tenant.
async fn selected(c: &Client, a: &CancelArgs) -> anyhow::Result<Vec<JobId>> {
    let active: Vec<JobState> = JobState::unfinished().collect();
    let mut states = list::states_of_all(&a.state, &active)?;
    let ended: Vec<&str> = states
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
        .collect();
    states.retain(|s| !s.is_terminal());
    if !ended.is_empty() {
        let ended = ended.join(", ");
        if states.is_empty() {
            return Err(Invalid(format!(
                "cancel --state: {ended} jobs have ended; only pending or running jobs can be \
                 cancelled"
            ))
            .into());
        }
        note(format!(
            "note: {ended} jobs have ended and are not cancelled"
        ));
    }
    let me = c.whoami().await?;
    let user = match me.role {
        Role::Operator | Role::TenantAdmin => a.user.clone(),
        Role::User => match &a.user {
            Some(u) if *u != me.name => {
                return Err(Invalid(format!(
                    "cancel --user {u}: users cancel only their own jobs (you are {})",
                    me.name
                ))
                .into());
            }
            _ => Some(me.name.clone()),
        },
        role => anyhow::bail!("a {} token cannot cancel jobs", role.as_str()),
    };
    let filter = JobFilter {
        state: Some(
            states
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        tenant: a.tenant.clone(),
        user,
        order: Some("oldest".into()),
        ..JobFilter::default()
    };
    let jobs = list::fetch(c, filter, a.name.as_deref(), 0).await?.jobs;
    if a.ids.is_empty() && !a.yes {
        let tenants: std::collections::BTreeSet<&str> =
            jobs.iter().map(|j| j.tenant.as_str()).collect();
        if tenants.len() > 1 {
            return Err(Invalid(format!(
                "cancel: the selection matches {} jobs of {} tenants ({}); name one with \
                 --tenant, or add --yes to cancel them all",
                jobs.len(),
                tenants.len(),
                tenants.into_iter().take(5).collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
    }
    let mut ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    if !a.ids.is_empty() {
        for id in a.ids.iter().filter(|id| !ids.contains(id)) {
            note(format!(
                "Job {id}: not cancelled: the selection does not match it"
            ));
        }
        ids.retain(|id| a.ids.contains(id));
    }
    Ok(ids)
}

/// `3 cancelled, 1 succeeded`: tasks by state.
fn tally(jobs: &[suanli_proto::JobSummary]) -> String {
    let mut by: std::collections::BTreeMap<suanli_types::JobState, usize> = Default::default();
    for j in jobs {
        *by.entry(j.state).or_default() += 1;
    }
    by.iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_job_id(s: &str) -> Result<JobId, String> {
    s.trim()
        .parse()
        .map(JobId)
        .map_err(|_| format!("not a job id: {s:?}"))
}

/// `9000` -> `2h30m`.
fn fmt_duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let s: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if s.is_empty() { "0s".into() } else { s }
}

fn candidate_row(mark: &str, c: &CandidateView) -> Vec<String> {
    row![
        mark,
        c.center,
        c.sku,
        c.price_per_card_hour,
        c.cost_per_hour,
        c.free_cards
    ]
}

/// The human-readable `suanli quote`.
fn describe_quote(q: &QuoteView) -> String {
    let mut out = String::new();
    if q.candidates.is_empty() {
        out.push_str("No center can take this job now or later.\n");
    } else {
        let hours = q.walltime_secs as f64 / 3600.0;
        // A model job with measured speeds: each center's expected run time, which its cost is
        // for (the wall time at the slowest certified chip).
        let speeds = q.candidates.iter().any(|c| c.expected_run_secs.is_some());
        if speeds {
            out.push_str(&format!(
                "Quote for the expected run time at each center (the wall-time limit, {hours:.2} h, \
                 at the slowest certified chip), best first; yuan, after your vouchers:\n"
            ));
        } else {
            out.push_str(&format!(
                "Quote for the wall-time limit ({hours:.2} h), best first; yuan, after your vouchers:\n"
            ));
        }
        let mut t = Table::new(if speeds {
            "CENTER SKU PRICE/CARD-H RUN COST SUBSIDY PAYABLE START FREE SCORE"
        } else {
            "CENTER SKU PRICE/CARD-H COST SUBSIDY PAYABLE START FREE SCORE"
        });
        for c in &q.candidates {
            let start = if c.expected_start <= q.at {
                "now".to_string()
            } else {
                c.expected_start.to_string()
            };
            let mut r = row![c.center, c.sku, c.price_per_card_hour];
            if speeds {
                let run = c.expected_run_secs.unwrap_or(q.walltime_secs);
                r.push(format!("{:.2} h", run as f64 / 3600.0));
            }
            r.extend(row![
                c.gross.unwrap_or(c.cost_total),
                or_dash(c.subsidy),
                or_dash(c.payable),
                start,
                c.free_cards,
                format!("{:.3}", c.score_milli as f64 / 1000.0)
            ]);
            t.push(r);
        }
        out.push_str(&t.to_string());
    }
    if !q.rejected.is_empty() {
        out.push_str("Cannot run at:\n");
        for r in &q.rejected {
            out.push_str(&format!("  {}: {}\n", r.center, r.reason));
        }
    }
    out
}

/// The human-readable `suanli job ID` page.
fn describe_job(j: &JobView) -> String {
    let s = &j.summary;
    let spec = &j.spec;
    let mut kv = Table::of([
        row![
            "tenant",
            format!(
                "{} (queue {}, priority {})",
                s.tenant,
                s.queue,
                s.priority.as_str()
            )
        ],
        row!["submitted by", s.submitted_by],
        row!["state", format!("{} (attempt {})", s.state, s.attempt)],
        row![
            "request",
            format!(
                "{} node(s) x {} card(s) of {}, stack {}, walltime {}{}",
                spec.nodes,
                spec.cards_per_node,
                spec.chips,
                spec.stack,
                fmt_duration(spec.walltime),
                spec.max_price_per_card_hour
                    .map(|p| format!(", max {p} yuan/card-h"))
                    .unwrap_or_default()
            )
        ],
        row!["command", spec.command],
    ]);
    if let Some(center) = &s.center {
        let nodes = j.placement.as_ref().map(|p| {
            joined(
                p.nodes.iter().map(|n| format!("{} x{}", n.node, n.cards)),
                ", ",
                "",
            )
        });
        kv.push(row![
            "center",
            format!(
                "{center}, {} x {} cards, nodes {}",
                or_dash(s.sku.as_ref()),
                s.cards,
                or_dash(nodes)
            )
        ]);
    }
    kv.push(row!["submitted", s.submitted_at]);
    kv.extend(s.started_at.map(|t| row!["started", t]));
    kv.extend(s.ended_at.map(|t| row!["ended", t]));
    kv.extend(s.exit_code.map(|c| row!["exit code", c]));
    kv.push(row![
        "card-seconds",
        format!(
            "{} ({:.2} card-hours)",
            j.card_seconds,
            j.card_seconds as f64 / 3600.0
        )
    ]);
    kv.extend(s.reason.as_ref().map(|r| row!["reason", r]));
    let mut out = format!("Job {}: {}\n{}", s.id, s.name, kv.indented());
    if let Some(p) = &j.placement {
        out += &format!("Placement (attempt {}, {}):\n", p.attempt, p.at);
        let mut t = Table::of([row![
            "",
            "CENTER",
            "SKU",
            "PRICE/CARD-H",
            "COST/H",
            "FREE CARDS"
        ]]);
        t.push(candidate_row("*", &p.chosen));
        t.extend(p.others.iter().map(|c| candidate_row("", c)));
        out += &t.indented();
        if !p.rejected.is_empty() {
            out += "  rejected:\n";
            let rejected = Table::of(
                p.rejected
                    .iter()
                    .map(|r| row![format!("{}:", r.center), r.reason]),
            );
            out += &indent(&rejected.indented());
        }
        out += &format!("  rule: {}\n", p.rule);
    }
    if !j.history.is_empty() {
        out += "History:\n";
        let history = Table::of(
            j.history
                .iter()
                .map(|e| row![e.at, format!("#{}", e.attempt), e.state, e.message]),
        );
        out += &history.indented();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_ids() {
        for (secs, text) in [(9000, "2h30m"), (0, "0s"), (86_461, "1d1m1s")] {
            assert_eq!(fmt_duration(secs), text);
        }
        assert_eq!(parse_job_id(" 42").unwrap(), JobId(42));
        assert!(parse_job_id("x").is_err());
    }
}

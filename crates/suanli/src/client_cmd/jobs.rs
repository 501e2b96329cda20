//! Jobs: `submit`, `quote`, `jobs`, `job`, `wait`, `logs`, `cancel`, `hold`, `release`.

mod list;
mod spec;
mod watch;

use clap::Subcommand;
use suanli_proto::{CandidateView, JobView, QuoteView};
use suanli_types::JobId;
use suanli_types::sbatch::parse_flag_duration;

use super::exit::{self, Exit};
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
    Submit(Box<SubmitArgs>),
    /// Price and expected start of a job at every center, without submitting it (same flags)
    Quote(Box<QuoteArgs>),
    /// List jobs (like squeue): active ones, newest first, unless --state says otherwise
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
    /// Cancel jobs (like scancel): each id given; the exit is that of the first that failed
    Cancel {
        #[arg(value_parser = parse_job_id, required = true, value_name = "ID")]
        ids: Vec<JobId>,
        /// The ids are arrays: cancel every unfinished task of each
        #[arg(long)]
        array: bool,
    },
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
                let spec = build_spec(&a, &conn.site_map()?)?;
                let job = conn.client()?.submit(&spec).await?;
                match a.parsable {
                    true => out::line(job.summary.id)?,
                    false => out::line(format!(
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
            Command::Wait { id, timeout } => {
                return watch::wait(&conn.client()?, id, timeout).await;
            }
            Command::Logs {
                id,
                follow,
                attempt,
                reason,
            } => watch::logs(&conn.client()?.with_reason(reason), id, follow, attempt).await?,
            Command::Cancel { ids, array } => {
                let c = conn.client()?;
                return match array {
                    true => {
                        each(&ids, async |id| {
                            let tasks = c.cancel_array(id).await?;
                            Ok(format!(
                                "Array {id}: {} tasks, {}",
                                tasks.jobs.len(),
                                tally(&tasks.jobs)
                            ))
                        })
                        .await
                    }
                    false => {
                        each(&ids, async |id| {
                            let job = c.cancel(id).await?;
                            Ok(format!("Job {id} {}", job.summary.state))
                        })
                        .await
                    }
                };
            }
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
        out.push_str(&format!(
            "Quote for the wall-time limit ({hours:.2} h), best first; yuan, after your vouchers:\n"
        ));
        let mut t = Table::new("CENTER SKU PRICE/CARD-H COST SUBSIDY PAYABLE START FREE SCORE");
        for c in &q.candidates {
            let start = if c.expected_start <= q.at {
                "now".to_string()
            } else {
                c.expected_start.to_string()
            };
            t.push(row![
                c.center,
                c.sku,
                c.price_per_card_hour,
                c.gross.unwrap_or(c.cost_total),
                or_dash(c.subsidy),
                or_dash(c.payable),
                start,
                c.free_cards,
                format!("{:.3}", c.score_milli as f64 / 1000.0)
            ]);
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

//! `suanli jobs`, like squeue: active jobs by default, newest first, several states (Slurm's
//! short names too), by user, as a table, a wide table or JSON.

use suanli_client::{Client, JobFilter};
use suanli_proto::{JobList, JobSummary};
use suanli_types::{JobState, Timestamp};

use crate::client_cmd::exit::Invalid;
use crate::client_cmd::output::{self as out, Format, Table, note, or_dash, row};

use super::fmt_duration;

/// The states a `--state` word stands for.
pub fn states_of(word: &str) -> Result<Vec<JobState>, String> {
    use JobState::*;
    let w = word.trim();
    Ok(match w.to_ascii_uppercase().as_str() {
        "PD" | "PENDING" => vec![Submitted, Queued],
        "CF" | "CONFIGURING" => vec![Placed],
        "R" | "RUNNING" => vec![Running],
        // suanli has no completing state: a job's end is recorded at once.
        "CG" | "COMPLETING" => vec![],
        "CD" | "COMPLETED" => vec![Succeeded],
        "F" | "FAILED" => vec![Failed],
        "CA" | "CANCELLED" => vec![Cancelled],
        "TO" | "TIMEOUT" => vec![TimedOut],
        "ACTIVE" => JobState::unfinished().collect(),
        "ENDED" => JobState::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect(),
        "ALL" => JobState::ALL.to_vec(),
        _ => vec![w.parse::<JobState>().map_err(|_| {
            format!(
                "unknown state {w:?}: use PD, CF, R, CG, CD, F, CA, TO, a suanli state \
                 (queued, running, ...), active, ended or all"
            )
        })?],
    })
}

/// Slurm's short name of a state, for the table.
fn short(s: JobState) -> &'static str {
    match s {
        JobState::Submitted | JobState::Queued => "PD",
        JobState::Placed => "CF",
        JobState::Running => "R",
        JobState::Succeeded => "CD",
        JobState::Failed => "F",
        JobState::Cancelled => "CA",
        JobState::TimedOut => "TO",
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Wide,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// Only jobs in these states (repeat or comma-separate): Slurm's PD, CF, R, CG, CD, F, CA,
    /// TO, suanli's names (queued, running, ...), `active`, `ended` or `all` [default: active]
    #[arg(short = 't', long, value_name = "STATES", value_delimiter = ',')]
    state: Vec<String>,
    /// Only jobs submitted by this user (a token's name)
    #[arg(short = 'u', long)]
    user: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    center: Option<String>,
    /// Only the tasks of this job array (its id), in every state unless --state is given
    #[arg(long, value_name = "ID")]
    array: Option<i64>,
    /// Jobs per page
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Follow every page
    #[arg(long)]
    all: bool,
    /// Output: table, wide (more columns) or json
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    out: Format,
}

/// `jobs`: newest first, one page, or with `--all` every page as one list.
pub async fn list(c: &Client, a: JobsArgs) -> anyhow::Result<()> {
    let mut states = Vec::new();
    for w in &a.state {
        let s = states_of(w).map_err(Invalid)?;
        if s.is_empty() {
            note(format!(
                "note: {w}: suanli has no completing state; it matches no job"
            ));
        }
        states.extend(s);
    }
    if a.state.is_empty() {
        states = match a.array {
            Some(_) => JobState::ALL.to_vec(),
            None => JobState::unfinished().collect(),
        };
    }
    states.sort_unstable();
    states.dedup();
    let mut list = JobList {
        jobs: Vec::new(),
        next: None,
    };
    if !states.is_empty() {
        let mut filter = JobFilter {
            state: Some(joined_states(&states)),
            tenant: a.tenant,
            center: a.center,
            user: a.user,
            order: Some("newest".into()),
            limit: Some(a.limit),
            after: None,
            array: a.array,
        };
        loop {
            let page = c.jobs(&filter).await?;
            list.jobs.extend(page.jobs);
            list.next = page.next;
            match page.next {
                Some(next) if a.all => filter.after = Some(next.0),
                _ => break,
            }
        }
    }
    let output = if a.out.json { Output::Json } else { a.output };
    match output {
        Output::Json => out::json(&list)?,
        o => out::print(&describe(&list.jobs, now(), o == Output::Wide))?,
    }
    if output != Output::Json && list.next.is_some() {
        note("(more jobs: use --all or a larger --limit)");
    }
    Ok(())
}

fn joined_states(states: &[JobState]) -> String {
    states
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Seconds the job has run (until it ended, or `now`), if it started.
fn elapsed(j: &JobSummary, now: Timestamp) -> Option<u64> {
    let start = j.started_at?;
    let end = j.ended_at.unwrap_or(now);
    Some(u64::try_from(end.millis_since(start) / 1000).unwrap_or(0))
}

/// What is left of the wall time: all of it before the start, none after the end.
fn time_left(j: &JobSummary, now: Timestamp) -> Option<u64> {
    if j.state.is_terminal() || j.walltime_secs == 0 {
        return None;
    }
    Some(j.walltime_secs.saturating_sub(elapsed(j, now).unwrap_or(0)))
}

/// The table of `suanli jobs`; `wide` adds tenant, queue, priority, attempt, SKU and times.
pub fn describe(jobs: &[JobSummary], now: Timestamp, wide: bool) -> String {
    let header = match wide {
        false => "ID NAME USER ST TIME TIME-LEFT CARDS CENTER REASON",
        true => {
            "ID NAME USER TENANT QUEUE PRIORITY ST STATE ATTEMPT TIME TIME-LEFT CARDS CENTER SKU SUBMITTED REASON"
        }
    };
    let mut t = Table::new(header);
    for j in jobs {
        let time = elapsed(j, now).map_or("0s".to_string(), fmt_duration);
        let left = time_left(j, now).map(fmt_duration);
        let user = if j.submitted_by.is_empty() {
            "-"
        } else {
            &j.submitted_by
        };
        let reason = or_dash(j.reason.as_ref());
        t.push(match wide {
            false => row![
                j.id,
                j.name,
                user,
                short(j.state),
                time,
                or_dash(left),
                j.cards,
                or_dash(j.center.as_ref()),
                reason
            ],
            true => row![
                j.id,
                j.name,
                user,
                j.tenant,
                j.queue,
                j.priority.as_str(),
                short(j.state),
                j.state,
                j.attempt,
                time,
                or_dash(left),
                j.cards,
                or_dash(j.center.as_ref()),
                or_dash(j.sku.as_ref()),
                j.submitted_at,
                reason
            ],
        });
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_types::{JobId, PriorityClass, TenantId};

    fn job(id: i64, state: JobState, started: Option<i64>, ended: Option<i64>) -> JobSummary {
        JobSummary {
            id: JobId(id),
            name: format!("j{id}"),
            tenant: TenantId::new("t"),
            queue: "default".into(),
            priority: PriorityClass::Standard,
            state,
            attempt: 1,
            center: None,
            sku: None,
            cards: 8,
            submitted_at: Timestamp(0),
            started_at: started.map(Timestamp),
            ended_at: ended.map(Timestamp),
            exit_code: None,
            submitted_by: "alice".into(),
            walltime_secs: 3600,
            reason: None,
            held: false,
            array_job_id: None,
            array_task_id: None,
        }
    }

    #[test]
    fn slurm_short_names_and_suanli_names() {
        use JobState::*;
        assert_eq!(states_of("PD").unwrap(), [Submitted, Queued]);
        assert_eq!(states_of("r").unwrap(), [Running]);
        assert_eq!(states_of("CD").unwrap(), [Succeeded]);
        assert_eq!(states_of("F").unwrap(), [Failed]);
        assert_eq!(states_of("CA").unwrap(), [Cancelled]);
        assert_eq!(states_of("TO").unwrap(), [TimedOut]);
        assert_eq!(states_of("CG").unwrap(), []);
        assert_eq!(states_of("timed-out").unwrap(), [TimedOut]);
        assert_eq!(states_of("active").unwrap().len(), 4);
        assert_eq!(states_of("ended").unwrap().len(), 4);
        assert!(states_of("XX").unwrap_err().contains("PD, CF, R"));
        assert_eq!(joined_states(&[Queued, Running]), "queued,running");
    }

    #[test]
    fn elapsed_and_time_left_columns() {
        let now = Timestamp(1_000_000);
        let running = job(9, JobState::Running, Some(1_000_000 - 600_000), None);
        let queued = JobSummary {
            reason: Some("no free A800".into()),
            ..job(8, JobState::Queued, None, None)
        };
        let done = job(7, JobState::Succeeded, Some(0), Some(90_000));
        assert_eq!(elapsed(&running, now), Some(600));
        assert_eq!(time_left(&running, now), Some(3000));
        assert_eq!(time_left(&queued, now), Some(3600));
        assert_eq!(
            (elapsed(&done, now), time_left(&done, now)),
            (Some(90), None)
        );
        let text = describe(&[running, queued, done], now, false);
        let cells: Vec<Vec<&str>> = text
            .lines()
            .map(|l| {
                l.split("  ")
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .collect();
        assert_eq!(
            cells,
            [
                vec![
                    "ID",
                    "NAME",
                    "USER",
                    "ST",
                    "TIME",
                    "TIME-LEFT",
                    "CARDS",
                    "CENTER",
                    "REASON"
                ],
                vec!["9", "j9", "alice", "R", "10m", "50m", "8", "-", "-"],
                vec![
                    "8",
                    "j8",
                    "alice",
                    "PD",
                    "0s",
                    "1h",
                    "8",
                    "-",
                    "no free A800"
                ],
                vec!["7", "j7", "alice", "CD", "1m30s", "-", "8", "-", "-"],
            ]
        );
        let wide = describe(&[job(1, JobState::Placed, None, None)], now, true);
        assert!(wide.starts_with("ID  NAME  USER   TENANT  QUEUE"), "{wide}");
        assert!(wide.contains("placed"), "{wide}");
    }
}

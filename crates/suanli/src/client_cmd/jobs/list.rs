//! `suanli jobs`, like squeue: active jobs by default (`--all` for finished ones too), newest
//! first, several states (Slurm's short names too), by user, tenant, center or name; as a table,
//! a wide table, the columns `--format` names, JSON or YAML; `--watch` re-draws it.

use std::io::IsTerminal;
use std::time::Duration;

use suanli_client::{Client, JobFilter};
use suanli_proto::{JobList, JobSummary};
use suanli_types::sbatch::parse_flag_duration;
use suanli_types::{JobState, Timestamp};

use crate::client_cmd::exit::Invalid;
use crate::client_cmd::output::{self as out, Format, Table, note, or_dash};

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

/// The states of the `--state` words (none given: `default`), sorted, each once; a word that
/// matches no state (CG) is said on stderr.
pub fn states_of_all(words: &[String], default: &[JobState]) -> Result<Vec<JobState>, Invalid> {
    let mut states = Vec::new();
    for w in words {
        let s = states_of(w).map_err(Invalid)?;
        if s.is_empty() {
            note(format!(
                "note: {w}: suanli has no completing state; it matches no job"
            ));
        }
        states.extend(s);
    }
    if words.is_empty() {
        states = default.to_vec();
    }
    states.sort_unstable();
    states.dedup();
    Ok(states)
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

/// A column of the job table, as `--format` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Id,
    Name,
    User,
    Tenant,
    Queue,
    Priority,
    /// Slurm's short state name.
    St,
    State,
    Attempt,
    /// Elapsed run time.
    Time,
    TimeLeft,
    /// The wall-time limit.
    TimeLimit,
    Cards,
    Center,
    Sku,
    Submitted,
    Started,
    Ended,
    ExitCode,
    Reason,
}

impl Field {
    /// Every field: its name, the other names it answers to (squeue's among them), its header.
    const ALL: [(Field, &'static str, &'static [&'static str], &'static str); 20] = [
        (Field::Id, "id", &["jobid"], "ID"),
        (Field::Name, "name", &[], "NAME"),
        (Field::User, "user", &[], "USER"),
        (Field::Tenant, "tenant", &["account"], "TENANT"),
        (Field::Queue, "queue", &["partition"], "QUEUE"),
        (Field::Priority, "priority", &["qos"], "PRIORITY"),
        (Field::St, "st", &["statecompact"], "ST"),
        (Field::State, "state", &[], "STATE"),
        (Field::Attempt, "attempt", &[], "ATTEMPT"),
        (Field::Time, "time", &["elapsed"], "TIME"),
        (
            Field::TimeLeft,
            "timeleft",
            &["left", "time-left"],
            "TIME-LEFT",
        ),
        (
            Field::TimeLimit,
            "timelimit",
            &["walltime", "limit"],
            "TIME-LIMIT",
        ),
        (Field::Cards, "cards", &["gpus", "tres"], "CARDS"),
        (Field::Center, "center", &["cluster"], "CENTER"),
        (Field::Sku, "sku", &[], "SKU"),
        (Field::Submitted, "submitted", &["submittime"], "SUBMITTED"),
        (Field::Started, "started", &["starttime"], "STARTED"),
        (Field::Ended, "ended", &["endtime"], "ENDED"),
        (Field::ExitCode, "exitcode", &["exit"], "EXIT"),
        (Field::Reason, "reason", &[], "REASON"),
    ];

    /// The default table's columns.
    pub const TABLE: &'static [Field] = &[
        Field::Id,
        Field::Name,
        Field::User,
        Field::St,
        Field::Time,
        Field::TimeLeft,
        Field::Cards,
        Field::Center,
        Field::Reason,
    ];

    /// `-o wide`'s columns.
    pub const WIDE: &'static [Field] = &[
        Field::Id,
        Field::Name,
        Field::User,
        Field::Tenant,
        Field::Queue,
        Field::Priority,
        Field::St,
        Field::State,
        Field::Attempt,
        Field::Time,
        Field::TimeLeft,
        Field::Cards,
        Field::Center,
        Field::Sku,
        Field::Submitted,
        Field::Reason,
    ];

    fn header(self) -> &'static str {
        Field::ALL.iter().find(|f| f.0 == self).map_or("?", |f| f.3)
    }

    /// The field a `--format` word names (case and `_`/`-` ignored).
    pub fn parse(word: &str) -> Result<Field, String> {
        let w: String = word
            .trim()
            .chars()
            .filter(|c| *c != '_')
            .flat_map(char::to_lowercase)
            .collect();
        Field::ALL
            .iter()
            .find(|f| f.1 == w || f.2.contains(&w.as_str()) || f.1 == w.replace('-', ""))
            .map(|f| f.0)
            .ok_or_else(|| {
                let names: Vec<&str> = Field::ALL.iter().map(|f| f.1).collect();
                format!(
                    "unknown field {:?} in --format: use {}",
                    word.trim(),
                    names.join(", ")
                )
            })
    }
}

/// The columns `--format` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields(pub Vec<Field>);

impl Fields {
    /// A `--format` list: comma- or space-separated field names, at least one.
    pub fn parse(list: &str) -> Result<Fields, String> {
        let fields = list
            .split([',', ' '])
            .filter(|w| !w.trim().is_empty())
            .map(Field::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if fields.is_empty() {
            return Err("--format: name at least one field, e.g. id,name,state,reason".into());
        }
        Ok(Fields(fields))
    }
}

impl Field {
    /// The cell of this column for job `j` at `now`.
    fn cell(self, j: &JobSummary, now: Timestamp) -> String {
        match self {
            Field::Id => j.id.to_string(),
            Field::Name => j.name.clone(),
            Field::User if j.submitted_by.is_empty() => "-".into(),
            Field::User => j.submitted_by.clone(),
            Field::Tenant => j.tenant.to_string(),
            Field::Queue => j.queue.clone(),
            Field::Priority => j.priority.as_str().to_string(),
            Field::St => short(j.state).to_string(),
            Field::State => j.state.to_string(),
            Field::Attempt => j.attempt.to_string(),
            Field::Time => elapsed(j, now).map_or("0s".to_string(), fmt_duration),
            Field::TimeLeft => or_dash(time_left(j, now).map(fmt_duration)),
            Field::TimeLimit if j.walltime_secs == 0 => "-".into(),
            Field::TimeLimit => fmt_duration(j.walltime_secs),
            Field::Cards => j.cards.to_string(),
            Field::Center => or_dash(j.center.as_ref()),
            Field::Sku => or_dash(j.sku.as_ref()),
            Field::Submitted => j.submitted_at.to_string(),
            Field::Started => or_dash(j.started_at),
            Field::Ended => or_dash(j.ended_at),
            Field::ExitCode => or_dash(j.exit_code),
            Field::Reason => or_dash(j.reason.as_ref()),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

/// At most this many jobs a page from the hub (its largest page).
const PAGE: u32 = 1000;

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// Only jobs in these states (repeat or comma-separate): Slurm's PD, CF, R, CG, CD, F, CA,
    /// TO, suanli's names (queued, running, ...), `active`, `ended` or `all` [default: active:
    /// pending, configuring and running]
    #[arg(short = 't', long, value_name = "STATES", value_delimiter = ',')]
    state: Vec<String>,
    /// Finished jobs too (every state)
    #[arg(short, long, conflicts_with = "state")]
    all: bool,
    /// Only jobs submitted by this user (a token's name)
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Only this tenant's jobs (Slurm's account; operator and supervisors: any tenant)
    #[arg(short = 'A', long, visible_alias = "account", value_name = "TENANT")]
    tenant: Option<String>,
    /// Only jobs placed at this center
    #[arg(long)]
    center: Option<String>,
    /// Only the tasks of this job array (its id), in every state unless --state is given
    #[arg(long, value_name = "ID")]
    array: Option<i64>,
    /// Only jobs of this name
    #[arg(short = 'n', long)]
    name: Option<String>,
    /// Show at most this many jobs, newest first (0: every one)
    #[arg(long, default_value_t = 1000, value_name = "N")]
    limit: u32,
    /// Output: table, wide (more columns), json or yaml
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// The table's columns, like squeue's --format: a comma list of id, name, user, tenant,
    /// queue, priority, st, state, attempt, time, timeleft, timelimit, cards, center, sku,
    /// submitted, started, ended, exitcode, reason
    #[arg(long, value_name = "FIELDS", value_parser = Fields::parse)]
    format: Option<Fields>,
    /// Re-draw every INTERVAL [default: 2s] until no listed job is active (or Ctrl-C); a bare
    /// number is minutes, as everywhere: say `-w 5s`
    #[arg(short = 'w', long, value_name = "INTERVAL", num_args = 0..=1,
        default_missing_value = "2s", value_parser = parse_flag_duration)]
    watch: Option<u64>,
    /// No header line over the table (for scripts, as squeue's --noheader)
    #[arg(long)]
    noheader: bool,
    #[command(flatten)]
    out: Format,
}

impl JobsArgs {
    /// The hub's filter for these flags: the states asked for, newest first.
    fn filter(&self) -> Result<JobFilter, Invalid> {
        let every = self.all || (self.array.is_some() && self.state.is_empty());
        let states = match every {
            true => JobState::ALL.to_vec(),
            false => states_of_all(&self.state, &JobState::unfinished().collect::<Vec<_>>())?,
        };
        Ok(JobFilter {
            state: Some(joined_states(&states)),
            tenant: self.tenant.clone(),
            center: self.center.clone(),
            user: self.user.clone(),
            order: Some("newest".into()),
            limit: None,
            after: None,
            array: self.array,
        })
    }
}

/// The jobs `filter` selects, newest first, page after page up to `limit` (0: no limit), and of
/// `name` if given (the hub does not filter by name). The list's `next` says more remain.
pub async fn fetch(
    c: &Client,
    mut filter: JobFilter,
    name: Option<&str>,
    limit: u32,
) -> anyhow::Result<JobList> {
    let mut list = JobList {
        jobs: Vec::new(),
        next: None,
    };
    if filter.state.as_deref() == Some("") {
        return Ok(list);
    }
    loop {
        let want = match limit {
            0 => PAGE,
            n => (n as usize)
                .saturating_sub(list.jobs.len())
                .clamp(1, PAGE as usize) as u32,
        };
        filter.limit = Some(want);
        let page = c.jobs(&filter).await?;
        list.jobs.extend(
            page.jobs
                .into_iter()
                .filter(|j| name.is_none_or(|n| j.name == n)),
        );
        list.next = page.next;
        let full = limit != 0 && list.jobs.len() >= limit as usize;
        match page.next {
            Some(next) if !full => filter.after = Some(next.0),
            _ => break,
        }
    }
    Ok(list)
}

/// `jobs`: the selected jobs, newest first, once or with `--watch` every interval.
pub async fn list(c: &Client, a: JobsArgs) -> anyhow::Result<()> {
    let filter = a.filter()?;
    let output = if a.out.json { Output::Json } else { a.output };
    let fields = match (&a.format, output) {
        (Some(_), Output::Json | Output::Yaml) => {
            return Err(Invalid(
                "--format sets the table's columns; it does not go with -o json or yaml".into(),
            )
            .into());
        }
        (Some(f), _) => f.0.clone(),
        (None, Output::Wide) => Field::WIDE.to_vec(),
        (None, _) => Field::TABLE.to_vec(),
    };
    let Some(every) = a.watch else {
        let list = fetch(c, filter, a.name.as_deref(), a.limit).await?;
        return show(&list, output, &fields, !a.noheader);
    };
    let every = Duration::from_secs(every.max(1));
    let clear = std::io::stdout().is_terminal() && matches!(output, Output::Table | Output::Wide);
    let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let list = fetch(c, filter.clone(), a.name.as_deref(), a.limit).await?;
        if clear {
            out::print(&format!(
                "\x1b[H\x1b[2JEvery {}: suanli jobs    {}\n\n",
                fmt_duration(every.as_secs()),
                now()
            ))?;
        }
        show(&list, output, &fields, !a.noheader)?;
        if !list.jobs.iter().any(|j| !j.state.is_terminal()) {
            return Ok(());
        }
        if !clear && matches!(output, Output::Table | Output::Wide) {
            out::line("")?;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut ctrl_c => return Ok(()),
        }
    }
}

/// Prints the list as `output` says, with `fields` for a table.
fn show(list: &JobList, output: Output, fields: &[Field], header: bool) -> anyhow::Result<()> {
    match output {
        Output::Json => out::json(list)?,
        Output::Yaml => out::print(&serde_yaml_ng::to_string(list)?)?,
        Output::Table | Output::Wide => {
            out::print(&describe(&list.jobs, now(), fields, header))?;
            if list.next.is_some() {
                note("(more jobs: use a larger --limit, or narrow with --state, --user, ...)");
            }
        }
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

/// The table of `suanli jobs` with these columns, under their names if `header`.
pub fn describe(jobs: &[JobSummary], now: Timestamp, fields: &[Field], header: bool) -> String {
    let mut t = Table::default();
    if header {
        t.push(fields.iter().map(|f| f.header().to_string()).collect());
    }
    for j in jobs {
        t.push(fields.iter().map(|f| f.cell(j, now)).collect());
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
        let text = describe(&[running, queued, done], now, Field::TABLE, true);
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
        let wide = describe(
            &[job(1, JobState::Placed, None, None)],
            now,
            Field::WIDE,
            true,
        );
        assert!(wide.starts_with("ID  NAME  USER   TENANT  QUEUE"), "{wide}");
        assert!(wide.contains("placed"), "{wide}");
    }

    #[test]
    fn format_fields() {
        assert_eq!(Field::parse("ID").unwrap(), Field::Id);
        assert_eq!(Field::parse(" jobid ").unwrap(), Field::Id);
        assert_eq!(Field::parse("time_left").unwrap(), Field::TimeLeft);
        assert_eq!(Field::parse("TIME-LEFT").unwrap(), Field::TimeLeft);
        assert_eq!(Field::parse("account").unwrap(), Field::Tenant);
        assert_eq!(Field::parse("partition").unwrap(), Field::Queue);
        let e = Field::parse("colour").unwrap_err();
        assert!(
            e.contains("\"colour\"") && e.contains("id, name, user"),
            "{e}"
        );
        assert_eq!(
            Fields::parse("id,name,state,reason").unwrap().0,
            [Field::Id, Field::Name, Field::State, Field::Reason]
        );
        assert_eq!(
            Fields::parse("id, st  ,").unwrap().0,
            [Field::Id, Field::St]
        );
        assert!(Fields::parse(" , ").unwrap_err().contains("at least one"));
        assert!(Fields::parse("id,nope").is_err());
        // Every field has a header of its own, and every field can be named.
        let mut headers: Vec<&str> = Field::ALL.iter().map(|f| f.0.header()).collect();
        headers.sort_unstable();
        headers.dedup();
        assert_eq!(headers.len(), Field::ALL.len());
        for (f, name, aliases, _) in Field::ALL {
            assert_eq!(Field::parse(name).unwrap(), f);
            for a in aliases {
                assert_eq!(Field::parse(a).unwrap(), f, "{a}");
            }
        }
        let now = Timestamp(1_000_000);
        let j = JobSummary {
            exit_code: Some(3),
            ..job(5, JobState::Failed, Some(0), Some(60_000))
        };
        let fields = Fields::parse("id,state,timelimit,exitcode,ended")
            .unwrap()
            .0;
        let text = describe(std::slice::from_ref(&j), now, &fields, true);
        assert_eq!(
            text,
            "ID  STATE   TIME-LIMIT  EXIT  ENDED\n5   failed  1h          3     1970-01-01T00:01:00Z\n"
        );
        // --noheader: the rows alone, aligned among themselves.
        let text = describe(&[j], now, &fields, false);
        assert_eq!(text, "5  failed  1h  3  1970-01-01T00:01:00Z\n");
    }

    #[test]
    fn several_states_sorted_once() {
        use JobState::*;
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let active: Vec<JobState> = JobState::unfinished().collect();
        assert_eq!(states_of_all(&[], &active).unwrap(), active);
        assert_eq!(
            states_of_all(&words(&["R", "PD", "running"]), &active).unwrap(),
            [Submitted, Queued, Running]
        );
        assert_eq!(states_of_all(&words(&["CG"]), &active).unwrap(), []);
        assert!(states_of_all(&words(&["R", "XX"]), &active).is_err());
    }
}

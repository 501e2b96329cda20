//! The records of a job's life: the job as stored (with the placement decision of its current
//! attempt), its history lines, its attempts and its log chunks. Pure data: the hub's lifecycle
//! makes them, the store keeps them.

use serde::{Deserialize, Serialize};

use crate::state::UnknownName;
use crate::{CenterId, JobId, JobSpec, JobState, Money, TenantId, Timestamp};

/// Cards of one node held by an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeShare {
    pub node: String,
    pub cards: u32,
}

/// A new job, before the store gives it an id.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub tenant: TenantId,
    pub submitted_by: String,
    /// The id of the token (principal) that submitted it.
    pub submitted_by_id: Option<i64>,
    pub spec: JobSpec,
    pub at: Timestamp,
    /// The client's key for this submit, unique per tenant (a retried submit with the same key
    /// gets the job the first one created).
    pub idempotency_key: Option<String>,
    /// Held at submit (`--hold`): waits until released.
    pub held: bool,
    /// A task of an array: its task id. The tasks of one array are inserted together, and the
    /// first one's job id is the array's id.
    pub array_task: Option<u32>,
}

/// Where a job stands in its array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayTask {
    /// The array's id: the job id of its first task.
    pub job: JobId,
    pub task: u32,
}

/// A job as stored (serde: for the hub's input log, which carries stored records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: TenantId,
    /// The submitting principal's name, as a label.
    pub submitted_by: String,
    /// The submitting principal's id (`None` for jobs stored before ids were recorded): what
    /// decides who may cancel the job, never the name.
    #[serde(default)]
    pub submitted_by_id: Option<i64>,
    pub spec: JobSpec,
    pub state: JobState,
    /// Placements so far; the current attempt's number and fencing epoch.
    pub attempt: u32,
    pub center: Option<CenterId>,
    pub sku: Option<String>,
    pub alloc: Vec<NodeShare>,
    /// Why the current attempt went where it went.
    pub placement: Option<PlacementDecision>,
    pub lease_expires_at: Option<Timestamp>,
    pub submitted_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// Metered card-seconds over all attempts.
    pub card_seconds: u64,
    pub updated_at: Timestamp,
    /// Held by its submitter (or submitted held): waits until released.
    #[serde(default)]
    pub held: bool,
    /// The job is a task of this array.
    #[serde(default)]
    pub array: Option<ArrayTask>,
}

impl JobRecord {
    /// The job `new` as first stored with `id` (in the array of that id, if it is a task):
    /// queued, attempt 0, nothing placed yet.
    pub fn queued(id: JobId, new: NewJob, array: Option<JobId>) -> JobRecord {
        JobRecord {
            held: new.held,
            array: new
                .array_task
                .zip(array)
                .map(|(task, job)| ArrayTask { job, task }),
            id,
            tenant: new.tenant,
            submitted_by: new.submitted_by,
            submitted_by_id: new.submitted_by_id,
            spec: new.spec,
            state: JobState::Queued,
            attempt: 0,
            center: None,
            sku: None,
            alloc: Vec::new(),
            placement: None,
            lease_expires_at: None,
            submitted_at: new.at,
            started_at: None,
            ended_at: None,
            exit_code: None,
            reason: None,
            card_seconds: 0,
            updated_at: new.at,
        }
    }
}

/// The policy's decision behind an attempt: where it went, what else could have taken it and
/// what could not. (The serde form is the API's `PlacementView` without the quote-only fields,
/// so the records written when the store kept that view still read.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementDecision {
    pub attempt: u32,
    pub at: Timestamp,
    pub center: CenterId,
    pub sku: String,
    pub nodes: Vec<NodeShare>,
    pub chosen: PlacementCandidate,
    /// Centers that fit but scored worse.
    pub others: Vec<PlacementCandidate>,
    /// Centers that could not take the job, with reasons.
    pub rejected: Vec<PlacementRejection>,
    /// The policy and the rule it scores by.
    pub rule: String,
}

/// A pool that could take the job, with the numbers the policy scored it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementCandidate {
    pub center: CenterId,
    pub sku: String,
    pub price_per_card_hour: Money,
    /// Price x total cards of the job, at the share of the list price the tenant pays.
    pub cost_per_hour: Money,
    /// The whole job for its wall-time limit, like `cost_per_hour`.
    pub cost_total: Money,
    /// Free cards of that SKU at the center before the placement.
    pub free_cards: u64,
    pub expected_start: Timestamp,
    /// The policy's score in thousandths; lower is better.
    pub score_milli: i64,
    /// A model job's expected run time there, from the certified speeds (`cost_total` is for
    /// it); absent: the wall-time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_run_secs: Option<u64>,
}

/// A center that could not take the job, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementRejection {
    pub center: CenterId,
    pub reason: String,
}

/// One line of a job's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub at: Timestamp,
    pub attempt: u32,
    pub state: JobState,
    pub message: String,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptOutcome {
    /// The site reported exit 0.
    Succeeded,
    /// The site reported a failure (non-zero exit, or it could not start the job).
    Failed,
    /// The site killed it at the wall-time limit.
    TimedOut,
    /// The site stopped it for its own reasons (cancel, drain, shutdown).
    Killed,
    /// Its lease ran out without a report.
    Lost,
    /// The hub evicted it for a job of a higher class or within its quota.
    Preempted,
    /// The hub handed it back because its center was drained.
    Drained,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 7] = [
        AttemptOutcome::Succeeded,
        AttemptOutcome::Failed,
        AttemptOutcome::TimedOut,
        AttemptOutcome::Killed,
        AttemptOutcome::Lost,
        AttemptOutcome::Preempted,
        AttemptOutcome::Drained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::TimedOut => "timed-out",
            AttemptOutcome::Killed => "killed",
            AttemptOutcome::Lost => "lost",
            AttemptOutcome::Preempted => "preempted",
            AttemptOutcome::Drained => "drained",
        }
    }
}

impl std::fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AttemptOutcome {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name("attempt outcome", s, &AttemptOutcome::ALL, |o| o.as_str())
    }
}

/// Which output stream a log chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub const ALL: [LogStream; 2] = [LogStream::Stdout, LogStream::Stderr];

    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

impl std::str::FromStr for LogStream {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_name("log stream", s, &LogStream::ALL, |o| o.as_str())
    }
}

/// The value of `all` named `s`.
fn by_name<T: Copy>(
    what: &'static str,
    s: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, UnknownName> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s)
        .ok_or_else(|| UnknownName {
            what,
            input: s.to_string(),
            expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
        })
}

/// One hand-over of a job to a center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    pub job: JobId,
    pub attempt: u32,
    pub center: CenterId,
    pub sku: String,
    pub cards: u32,
    pub placed_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// How it ended; `None` while it runs (or while a cancelled attempt's stop is unconfirmed).
    pub outcome: Option<AttemptOutcome>,
    pub exit_code: Option<i32>,
    pub card_seconds: u64,
    pub log_chunks: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub seq: u64,
    pub stream: LogStream,
    pub data: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_stream_names_parse_back_and_match_their_json() {
        for o in AttemptOutcome::ALL {
            assert_eq!(o.as_str().parse::<AttemptOutcome>(), Ok(o));
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
        for s in LogStream::ALL {
            assert_eq!(s.as_str().parse::<LogStream>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        let e = "gone".parse::<AttemptOutcome>().unwrap_err();
        assert!(e.to_string().contains("lost, preempted, drained"), "{e}");
    }

    #[test]
    fn unfinished_states_are_the_non_terminal_ones() {
        let unfinished: Vec<JobState> = JobState::unfinished().collect();
        assert_eq!(
            unfinished,
            [
                JobState::Submitted,
                JobState::Queued,
                JobState::Placed,
                JobState::Running
            ]
        );
    }
}

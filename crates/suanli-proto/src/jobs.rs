//! Jobs: submits, quotes, placements, views, logs.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, JobSpec, JobState, Money, PriorityClass, TenantId, Timestamp};
use utoipa::ToSchema;

use crate::*;
/// Submit a job.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub spec: JobSpec,
}

/// One candidate center in a placement decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CandidateView {
    pub center: CenterId,
    pub sku: String,
    pub price_per_card_hour: Money,
    /// Price x total cards of the job, at the share of the list price the tenant pays after its
    /// vouchers (what the policy compares).
    pub cost_per_hour: Money,
    /// The whole job for its wall-time limit, like `cost_per_hour`.
    pub cost_total: Money,
    /// Free cards of that SKU at the center before this placement.
    pub free_cards: u64,
    /// When the job could start there.
    pub expected_start: Timestamp,
    /// The policy's score in thousandths; lower is better.
    pub score_milli: i64,
    /// A model job's expected run time there in seconds, from the certified speeds
    /// (`cost_total` is for it); absent: the wall-time limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_run_secs: Option<u64>,
    /// Quotes only: the whole job at list price for its wall-time limit, as it would be billed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gross: Option<Money>,
    /// Quotes only: what the tenant's vouchers would pay of `gross`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsidy: Option<Money>,
    /// Quotes only: what the tenant would pay, `gross - subsidy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payable: Option<Money>,
    /// Quotes only: the voucher programme that would subsidise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programme: Option<String>,
}

/// A dry run of a submit: where the job could run, at what price, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub at: Timestamp,
    /// The duration priced: the job's wall-time limit.
    pub walltime_secs: u64,
    /// Best first by the hub's policy.
    pub candidates: Vec<CandidateView>,
    /// Centers that cannot take the job, with reasons.
    pub rejected: Vec<RejectionView>,
}

/// Why a job went where it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlacementView {
    pub attempt: u32,
    pub at: Timestamp,
    pub center: CenterId,
    pub sku: String,
    /// Node name -> cards on it.
    pub nodes: Vec<NodeCards>,
    pub chosen: CandidateView,
    /// Centers that fit but scored worse.
    pub others: Vec<CandidateView>,
    /// Centers that could not take the job, with reasons.
    pub rejected: Vec<RejectionView>,
    /// The policy and the rule it scores by.
    pub rule: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeCards {
    pub node: String,
    pub cards: u32,
}

/// One entry of a job's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobEventView {
    pub at: Timestamp,
    pub attempt: u32,
    pub state: JobState,
    pub message: String,
}

/// A job's summary row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSummary {
    pub id: JobId,
    pub name: String,
    pub tenant: TenantId,
    pub queue: String,
    pub priority: PriorityClass,
    pub state: JobState,
    pub attempt: u32,
    pub center: Option<CenterId>,
    pub sku: Option<String>,
    pub cards: u32,
    pub submitted_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// The submitting principal's name (a label).
    #[serde(default)]
    pub submitted_by: String,
    /// The wall-time limit in seconds.
    #[serde(default)]
    pub walltime_secs: u64,
    /// Why a queued job waits, or why a job ended.
    #[serde(default)]
    pub reason: Option<String>,
    /// Held by its submitter (or submitted held): waits until released.
    #[serde(default)]
    pub held: bool,
    /// The array the job is a task of: its id (the first task's job id).
    #[serde(default)]
    pub array_job_id: Option<JobId>,
    /// The job's task id in its array.
    #[serde(default)]
    pub array_task_id: Option<u32>,
}

/// A job in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub summary: JobSummary,
    /// The submitting principal's id (who may cancel it as a user); `null` for jobs submitted
    /// before ids were recorded.
    #[serde(default)]
    pub submitted_by_id: Option<i64>,
    pub spec: JobSpec,
    /// Card-seconds metered over all attempts.
    pub card_seconds: u64,
    pub placement: Option<PlacementView>,
    pub history: Vec<JobEventView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next: Option<JobId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogChunk {
    pub seq: u64,
    pub stream: Stream,
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogsResponse {
    pub job: JobId,
    pub attempt: u32,
    pub chunks: Vec<LogChunk>,
    /// Pass as `after` to continue.
    pub next_after: u64,
    /// The attempt has ended and every chunk up to here was shipped.
    pub complete: bool,
}

/// One attempt of a job as the hub recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttemptView {
    pub attempt: u32,
    pub center: CenterId,
    pub sku: String,
    pub cards: u32,
    pub placed_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// succeeded, failed, timed_out, killed, lost, preempted or drained; absent while it runs.
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub card_seconds: u64,
}

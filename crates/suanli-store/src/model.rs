//! Records the store keeps.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, JobSpec, JobState, Role, TenantCategory, TenantId, Timestamp};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
}

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Set for tenant-admin and user tokens.
    pub tenant: Option<TenantId>,
    /// Set for site tokens.
    pub center: Option<CenterId>,
}

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
    pub spec: JobSpec,
    pub at: Timestamp,
    /// The client's key for this submit, unique per tenant (see [`Store::job_by_idempotency_key`](crate::Store::job_by_idempotency_key)).
    pub idempotency_key: Option<String>,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: TenantId,
    pub submitted_by: String,
    pub spec: JobSpec,
    pub state: JobState,
    /// Placements so far; the current attempt's number and fencing epoch.
    pub attempt: u32,
    pub center: Option<CenterId>,
    pub sku: Option<String>,
    pub alloc: Vec<NodeShare>,
    /// The current attempt's placement decision, as the hub serialised it.
    pub placement: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    pub submitted_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    /// Metered card-seconds over all attempts.
    pub card_seconds: u64,
    pub updated_at: Timestamp,
}

/// One line of a job's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEvent {
    pub at: Timestamp,
    pub attempt: u32,
    pub state: JobState,
    pub message: String,
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
    /// succeeded | failed | timed-out | killed | lost
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub card_seconds: u64,
    pub log_chunks: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
    pub after: Option<JobId>,
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub seq: u64,
    /// stdout | stderr
    pub stream: String,
    pub data: String,
}

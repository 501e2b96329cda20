//! Records the store keeps. The job records the hub's lifecycle works on are defined in
//! `suanli_types::record` (pure) and re-exported here.

pub use suanli_types::record::{
    AttemptOutcome, AttemptRecord, JobEvent, JobRecord, LogRow, LogStream, NewJob, NodeShare,
};
use suanli_types::{CenterId, JobId, JobState, Role, TenantCategory, TenantId, Timestamp};

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

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
    pub after: Option<JobId>,
    pub limit: u32,
}

/// An entry of the hub engine's input log, to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRow {
    pub at: Timestamp,
    /// The input, serialised by the hub.
    pub input: String,
}

/// An entry of the input log as stored, with its place in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedInput {
    /// From 1, in the order appended.
    pub seq: u64,
    pub at: Timestamp,
    pub input: String,
}

//! Records the store keeps. The job records the hub's lifecycle works on are defined in
//! `suanli_types::record` (pure) and re-exported here.

pub use suanli_types::record::{AttemptRecord, JobEvent, JobRecord, LogRow, NewJob, NodeShare};
use suanli_types::{CenterId, JobId, JobState, Role, TenantCategory, TenantId};

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

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
    /// The city it is in (as the centers' `city`), for cross-city dispatch; none if not given.
    pub city: Option<String>,
}

/// Who a token speaks for: the token's id (the principal id, by which every permission is
/// decided), its name (a label), its role and its tenant or center.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Set for tenant-admin and user tokens.
    pub tenant: Option<TenantId>,
    /// Set for site tokens.
    pub center: Option<CenterId>,
}

#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    /// Jobs in any of these states; empty: in any state.
    pub states: Vec<JobState>,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
    /// Jobs submitted by the principal of this name.
    pub submitted_by: Option<String>,
    /// The tasks of this array.
    pub array: Option<JobId>,
    /// Jobs after this one in the listing's order.
    pub after: Option<JobId>,
    /// Descending ids (newest first) instead of ascending.
    pub newest_first: bool,
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

impl Principal {
    /// How history lines and logs name the principal: its name and its id.
    pub fn label(&self) -> String {
        format!("{} (#{})", self.name, self.id)
    }
}

/// A token to store: who it speaks for, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// Set for tenant-admin and user tokens.
    pub tenant: Option<TenantId>,
    /// Set for site tokens.
    pub center: Option<CenterId>,
    /// `None`: never (tokens stored before expiry existed).
    pub expires_at: Option<Timestamp>,
}

impl NewToken {
    /// The scope the name is unique in among tokens not revoked: a tenant's tokens, a center's
    /// site tokens, or the platform's (operator and supervisor).
    pub fn scope(&self) -> String {
        match (&self.tenant, &self.center) {
            (Some(t), _) => format!("tenant:{t}"),
            (None, Some(c)) => format!("center:{c}"),
            (None, None) => "platform".into(),
        }
    }
}

/// A stored token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub principal: Principal,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    /// When it was (or, at the end of a rotation's grace, will be) revoked.
    pub revoked_at: Option<Timestamp>,
    /// Updated at most once a minute.
    pub last_used_at: Option<Timestamp>,
}

impl TokenRecord {
    /// Until when the token is valid (`None`: no end).
    pub fn valid_until(&self) -> Option<Timestamp> {
        match (self.expires_at, self.revoked_at) {
            (Some(e), Some(r)) => Some(e.min(r)),
            (e, r) => e.or(r),
        }
    }

    /// Why the token is not valid at `now`, if it is not.
    pub fn invalid_at(&self, now: Timestamp) -> Option<TokenInvalid> {
        if self.revoked_at.is_some_and(|r| r <= now) {
            Some(TokenInvalid::Revoked)
        } else if self.expires_at.is_some_and(|e| e <= now) {
            Some(TokenInvalid::Expired)
        } else {
            None
        }
    }
}

/// Why a stored token does not authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenInvalid {
    Expired,
    Revoked,
}

/// Which tokens [`Store::tokens`](crate::Store::tokens) lists.
#[derive(Clone, Debug, Default)]
pub struct TokenFilter {
    /// Only this tenant's tokens.
    pub tenant: Option<TenantId>,
    /// Only this center's site tokens.
    pub center: Option<CenterId>,
}

/// Which audit entries to list: every condition set must hold; by ascending `seq` after
/// `after`, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// The principal id (a token id, or `anonymous`).
    pub principal: Option<String>,
    pub tenant: Option<String>,
    /// The action, e.g. `POST /v1/jobs`.
    pub action: Option<String>,
    /// Entries at or after this time.
    pub since: Option<Timestamp>,
    /// Entries before this time.
    pub until: Option<Timestamp>,
    /// Only the entry of this request id.
    pub request_id: Option<String>,
    /// Only denied requests.
    pub denied: bool,
    /// Entries with `seq > after`.
    pub after: Option<u64>,
    pub limit: u32,
}

/// A risk flag as stored: the flag as last evaluated, when it was first raised, and its state
/// history (oldest first; an empty history is `open`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskFlagRecord {
    pub flag: suanli_audit::risk::Flag,
    pub raised_at: Timestamp,
    pub changes: Vec<RiskFlagChange>,
}

impl RiskFlagRecord {
    /// The furthest state the flag reached (states only move forward).
    pub fn state(&self) -> suanli_audit::risk::FlagState {
        use suanli_audit::risk::FlagState;
        self.changes
            .iter()
            .map(|c| c.state)
            .max_by_key(|s| match s {
                FlagState::Open => 0,
                FlagState::Acknowledged => 1,
                FlagState::Resolved => 2,
            })
            .unwrap_or(FlagState::Open)
    }
}

/// A change of a flag's state: to what, by whom (a principal id), why and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskFlagChange {
    pub state: suanli_audit::risk::FlagState,
    pub by: String,
    pub why: String,
    pub at: Timestamp,
}

/// An attempt that ended, with its job's tenant and priority class: what the risk rules read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedAttempt {
    pub attempt: AttemptRecord,
    pub tenant: TenantId,
    pub priority: suanli_types::PriorityClass,
}

/// A fact of the statistics to append (the hub's JSON encoding of it), with its time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFact {
    pub at: Timestamp,
    pub fact: String,
}

/// A fact of the statistics as stored, with its place in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFact {
    /// From 1, in the order appended.
    pub seq: u64,
    pub at: Timestamp,
    pub fact: String,
    pub recorded_at: Timestamp,
}

/// A frozen quarterly release: its three files and the SHA-256 (hex) of `json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// `2026Q4`.
    pub quarter: String,
    pub made_at: Timestamp,
    pub json: String,
    pub csv: String,
    pub html: String,
    pub sha256: String,
}

/// A release without its files, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub quarter: String,
    pub made_at: Timestamp,
    pub sha256: String,
}

/// A model to publish: its record, and whose it is.
#[derive(Clone, Debug, PartialEq)]
pub struct NewModel {
    pub spec: suanli_models::ModelSpec,
    /// The tenant that sees it, for a tenant-visible model; `None`: public.
    pub owner: Option<TenantId>,
    /// The publishing principal, as a label.
    pub published_by: String,
    pub published_at: Timestamp,
}

/// A published model revision.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRecord {
    pub id: i64,
    pub spec: suanli_models::ModelSpec,
    pub owner: Option<TenantId>,
    pub published_by: String,
    pub published_at: Timestamp,
}

/// A file a job left, as its site uploaded it: where it is in the job's output (by job,
/// attempt and relative path), whose it is, and how the content-addressed blob store outside
/// the database finds its content (its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    pub job: JobId,
    pub attempt: u32,
    /// Relative to the job's output directory, '/'-separated.
    pub path: String,
    /// The job's tenant, whose storage quota it counts against.
    pub tenant: TenantId,
    /// In bytes.
    pub size: u64,
    /// SHA-256 of the content, 64 lowercase hex: its key in the blob store.
    pub sha256: String,
    pub created_at: Timestamp,
    /// When the hub deletes it ([`Store::expire_outputs`](crate::Store::expire_outputs)).
    pub expires_at: Timestamp,
}

/// A registered dataset: whose it is, its record, and who registered it when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRecord {
    /// The owner tenant: only it replaces the record, and its tenant admins grant and review.
    pub owner: TenantId,
    pub spec: suanli_data::DatasetSpec,
    /// The registering principal, as a label.
    pub registered_by: String,
    pub registered_at: Timestamp,
    /// When the record was last replaced (the registration time if never).
    pub updated_at: Timestamp,
}

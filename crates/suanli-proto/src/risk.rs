//! Risk flags' wire types (`/v1/risk`): the flags the rules raised, their evidence and their
//! state history; the state change a supervisor or the operator asks for.

use serde::{Deserialize, Serialize};
use suanli_audit::risk::{Evidence, Flag, FlagState, Severity};
use utoipa::ToSchema;

/// Where a flag's evidence is recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvidenceView {
    /// An audit entry (`GET /v1/audit/entries`, `suanli audit prove SEQ`).
    Audit { seq: u64 },
    /// A price row.
    PriceRow { row: u64 },
    /// A bill line (`suanli bill explain LINE`).
    BillLine { line: u64 },
    /// An attempt of a job.
    Attempt { job: u64, attempt: u32 },
    /// A voucher programme.
    Programme { id: String },
}

impl From<&Evidence> for EvidenceView {
    fn from(e: &Evidence) -> Self {
        match e {
            Evidence::Audit { seq } => EvidenceView::Audit { seq: *seq },
            Evidence::PriceRow { row } => EvidenceView::PriceRow { row: *row },
            Evidence::BillLine { line } => EvidenceView::BillLine { line: *line },
            Evidence::Attempt { job, attempt } => EvidenceView::Attempt {
                job: *job,
                attempt: *attempt,
            },
            Evidence::Programme { id } => EvidenceView::Programme { id: id.clone() },
        }
    }
}

/// A flag's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagStateView {
    Open,
    Acknowledged,
    Resolved,
}

impl From<FlagState> for FlagStateView {
    fn from(s: FlagState) -> Self {
        match s {
            FlagState::Open => FlagStateView::Open,
            FlagState::Acknowledged => FlagStateView::Acknowledged,
            FlagState::Resolved => FlagStateView::Resolved,
        }
    }
}

impl From<FlagStateView> for FlagState {
    fn from(s: FlagStateView) -> Self {
        match s {
            FlagStateView::Open => FlagState::Open,
            FlagStateView::Acknowledged => FlagState::Acknowledged,
            FlagStateView::Resolved => FlagState::Resolved,
        }
    }
}

/// How grave a flag is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeverityView {
    Low,
    Medium,
    High,
}

impl From<Severity> for SeverityView {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Low => SeverityView::Low,
            Severity::Medium => SeverityView::Medium,
            Severity::High => SeverityView::High,
        }
    }
}

/// One change of a flag's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlagChangeView {
    pub state: FlagStateView,
    /// The principal id (token id) that made it.
    pub by: String,
    pub why: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// A risk flag: which rule saw what about whom, where it shows, and what was done about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RiskFlagView {
    /// `rule/subject/window-start`: stable.
    pub id: String,
    /// One of `failed_auth`, `refused_reports`, `price_change`, `tenant_spend`,
    /// `voucher_burn`, `center_failures`, `public_service` (docs/SUPERVISION.md).
    pub rule: String,
    pub severity: SeverityView,
    /// A source address, a center, a tenant, a price item or a programme.
    pub subject: String,
    /// What was seen against which threshold.
    pub detail: String,
    /// The first 100 items.
    pub evidence: Vec<EvidenceView>,
    /// How many items there were.
    pub count: u64,
    /// Unix milliseconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// When the hub first recorded it.
    pub raised_at: i64,
    /// The furthest state it reached.
    pub state: FlagStateView,
    pub history: Vec<FlagChangeView>,
}

impl RiskFlagView {
    pub fn new(
        f: &Flag,
        raised_at: i64,
        state: FlagState,
        history: Vec<FlagChangeView>,
    ) -> RiskFlagView {
        RiskFlagView {
            id: f.id.clone(),
            rule: f.rule.clone(),
            severity: f.severity.into(),
            subject: f.subject.clone(),
            detail: f.detail.clone(),
            evidence: f.evidence.iter().map(EvidenceView::from).collect(),
            count: f.count,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            raised_at,
            state: state.into(),
            history,
        }
    }
}

/// Flags, newest raised first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RiskFlags {
    pub flags: Vec<RiskFlagView>,
}

/// Moves a flag forward: open -> acknowledged -> resolved (or open -> resolved).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagStateRequest {
    /// The flag's id.
    pub flag: String,
    pub state: FlagStateView,
    /// Why (1 to 500 characters): kept with the change.
    pub why: String,
}

//! Wire types: what crosses HTTP between the hub, site agents and clients.
//!
//! Every response error is an [`ApiError`] with a stable [`ErrorCode`]; its message is written for
//! the client and never carries internal error text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::{
    BackendKind, CenterId, JobId, JobSpec, JobState, Money, OwnerType, PriorityClass, Role,
    TenantCategory, TenantId, Timestamp,
};
use utoipa::ToSchema;

pub use suanli_types;

// ---------------------------------------------------------------- errors

/// Stable error codes. Clients match on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request (bad JSON, bad query parameter).
    BadRequest,
    /// A job spec or center definition failed validation; `field` names the path.
    InvalidSpec,
    /// No center could ever run this job; `rejections` gives each center's reason.
    Unschedulable,
    /// Missing or unknown bearer token.
    Unauthenticated,
    /// The principal may not do this.
    Forbidden,
    /// No such object, or not visible to this principal.
    NotFound,
    /// The object's state does not allow this (e.g. cancel of a finished job).
    Conflict,
    /// A site report for an attempt that is no longer current: stop that attempt.
    StaleAttempt,
    /// Already exists.
    AlreadyExists,
    /// The request body is larger than the hub accepts, or an event batch holds more events.
    PayloadTooLarge,
    /// Too many requests from this token or this site, or too many failed authentications from
    /// this address: nothing was done; retry after the response's `Retry-After` seconds.
    RateLimited,
    /// The hub is shutting down, not ready, or not the leader and cannot reach one: the request
    /// was not carried out; retry (at another hub).
    Unavailable,
    /// The hub lost the request's outcome (it stopped leading, or the leader stopped answering,
    /// after the request was sent): it may or may not have been carried out. Check before
    /// repeating a request that is not idempotent.
    OutcomeUnknown,
    /// Something failed inside the hub; details are in the hub's log, not here.
    Internal,
    /// The tenant's monthly budget does not allow this job; the message gives the limit, what
    /// was spent this month and the job's quoted cost after vouchers.
    OverBudget,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidSpec => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::OverBudget => 402,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::StaleAttempt | ErrorCode::AlreadyExists => 409,
            ErrorCode::Unschedulable => 422,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::OutcomeUnknown => 502,
            ErrorCode::Internal => 500,
        }
    }
}

/// A center's reason for not taking a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectionView {
    pub center: CenterId,
    pub reason: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `invalid_spec`: the path of the bad field, e.g. `chips.skus[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `unschedulable`: why each center cannot run the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<RejectionView>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            rejections: Vec::new(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", code_name(self.code), self.message)?,
            None => write!(f, "{}: {}", code_name(self.code), self.message)?,
        }
        for r in &self.rejections {
            write!(f, "\n  {}: {}", r.center, r.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

// ---------------------------------------------------------------- jobs

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
}

/// A job in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub submitted_by: String,
    pub spec: JobSpec,
    /// Card-seconds metered over all attempts.
    pub card_seconds: u64,
    /// Why a queued job waits, or why a job ended.
    pub reason: Option<String>,
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

// ---------------------------------------------------------------- centers, tenants, tokens

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    pub sku: String,
    pub vendor: String,
    pub nodes: u32,
    pub cards_per_node: u32,
    pub total_cards: u64,
    pub free_cards: u64,
    pub price_per_card_hour: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CenterView {
    pub id: CenterId,
    pub name: String,
    pub city: String,
    pub owner: OwnerType,
    pub backend: BackendKind,
    pub stacks: BTreeMap<String, String>,
    pub pools: Vec<PoolView>,
    /// online | offline | draining (the agent is stopping) | drained (by the operator)
    pub status: String,
    pub last_heartbeat: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CenterRegistered {
    pub center: CenterId,
    /// A new site token, only when the center was registered for the first time (shown once).
    pub site_token: Option<String>,
}

/// Body of `POST /v1/centers/{id}/drain` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Also hand back running attempts (they are stopped and queued again); by default they
    /// finish at the center.
    #[serde(default)]
    pub requeue: bool,
}

/// What a drain or undrain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrainView {
    pub center: CenterId,
    pub drained: bool,
    /// Attempts still running there; they finish unless requeued.
    pub running: usize,
    /// Jobs handed back to the queue (they run again with the next attempt number).
    pub requeued: Vec<JobId>,
}

/// `GET /v1/hub`: this hub process and the leadership, as this hub sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HubStatus {
    /// This hub process: its host and a random suffix (never its process id).
    pub id: String,
    /// single (one hub on SQLite) | leader | follower
    pub role: String,
    /// The leader's advertised URL, when one is known.
    pub leader_url: Option<String>,
    /// The leadership term (fencing token); 0 for a single hub.
    pub epoch: u64,
    /// When this hub became leader (ms since the Unix epoch), if it leads.
    pub leader_since: Option<Timestamp>,
    /// The decision hash of this hub's engine (every placement and preemption since it started,
    /// 16 hex digits), if it runs one; `suanli replay` of the input log reproduces it.
    #[serde(default)]
    pub decision_hash: Option<String>,
}

impl HubStatus {
    /// With the decision hash of this hub's engine, if it runs one.
    pub fn with_decision_hash(mut self, hash: Option<u64>) -> HubStatus {
        self.decision_hash = hash.map(|h| format!("{h:016x}"));
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
}

/// A tenant's quota on one chip family, in cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaView {
    /// Cards the tenant is guaranteed (its work within them is never preempted as borrowed).
    #[schema(maximum = 1_000_000)]
    pub nominal: u32,
    /// Cards it may use beyond the nominal quota while they are idle; such work is preemptible.
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub borrow_limit: u32,
}

/// A tenant's share of the network: fair-share weight and quotas per chip family (vendor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicyView {
    /// 1 to 1,000; a tenant of weight 2 is entitled to twice the share of one of weight 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    pub weight: u32,
    /// Chip family (nvidia, huawei, cambricon, hygon, ...) -> quota. No entry: no limit.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaView>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who the token is for, e.g. a user name.
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub center: Option<CenterId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The secret: shown once, stored only as a hash.
    pub token: String,
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
}

// ---------------------------------------------------------------- money

/// Set the price of a SKU at a center (operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    pub center: CenterId,
    pub sku: String,
    /// List price per card-hour before vouchers, in yuan.
    pub price_per_card_hour: Money,
    /// Discount on spot (preemptible) usage in basis points of the list price (2500 = 25% off).
    #[serde(default)]
    #[schema(maximum = 10_000)]
    pub spot_discount_bp: Option<u32>,
    /// When the price takes effect (default: now). Usage is priced by the row in force when it
    /// started; lines already billed never change.
    #[serde(default)]
    pub effective_from: Option<Timestamp>,
}

/// One row of the price table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PriceView {
    pub id: u64,
    pub center: CenterId,
    pub sku: String,
    pub price_per_card_hour: Money,
    pub spot_discount_bp: Option<u32>,
    pub effective_from: Timestamp,
    /// The row in force now for its center and SKU.
    pub in_force: bool,
}

/// A subsidy rate for one tenant category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRateView {
    pub category: TenantCategory,
    /// Share of gross subsidised, in basis points (6000 = 60%).
    #[schema(maximum = 10_000)]
    pub rate_bp: u32,
}

/// A computing-power voucher programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeSpec {
    /// Chosen by the operator, e.g. `sz-2026-training`.
    pub id: String,
    /// Who issues it, e.g. `Shenzhen MIIT`.
    pub issuer: String,
    /// Total budget in yuan, funded into the programme's pool when created.
    pub budget: Money,
    /// First instant usage (by its end) is subsidised.
    pub valid_from: Timestamp,
    /// First instant it no longer is; unused balances expire then.
    pub valid_until: Timestamp,
    /// Share of gross subsidised, in basis points (5000 = 50%).
    #[schema(maximum = 10_000)]
    pub base_rate_bp: u32,
    /// Rates replacing the base rate for some tenant categories.
    #[serde(default)]
    pub category_rates: Vec<CategoryRateView>,
    /// Rate for domestic chips, used when higher than the tenant's rate.
    #[serde(default)]
    #[schema(maximum = 10_000)]
    pub domestic_rate_bp: Option<u32>,
    /// Most a tenant can be granted in total.
    pub cap_per_tenant: Money,
    /// Tenant categories that may be granted and subsidised.
    pub eligible: Vec<TenantCategory>,
    /// No subsidy at centers whose owner is affiliated with the tenant.
    #[serde(default)]
    pub exclude_affiliated: bool,
}

/// A programme's money so far (operator and supervisor only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeTotals {
    pub granted: Money,
    pub paid_out: Money,
    /// `budget - paid_out`.
    pub remaining: Money,
    /// `budget - granted`: what can still be granted.
    pub unallocated: Money,
}

/// A programme: its definition, when it expired, and (operator and supervisor only) its totals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammeView {
    #[serde(flatten)]
    pub spec: ProgrammeSpec,
    pub expired_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<ProgrammeTotals>,
}

/// Written by hand: derived, the flattened spec's schema (`additionalProperties: false`, from
/// `deny_unknown_fields`) would forbid `expired_at` and `totals`.
impl utoipa::PartialSchema for ProgrammeView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
        use utoipa::openapi::{Ref, RefOr};
        let nullable = |name: &str| -> RefOr<Schema> {
            Schema::OneOf(
                OneOfBuilder::new()
                    .item(ObjectBuilder::new().schema_type(Type::Null))
                    .item(Ref::from_schema_name(name))
                    .build(),
            )
            .into()
        };
        let RefOr::T(Schema::Object(mut o)) = ProgrammeSpec::schema() else {
            unreachable!("a struct's schema is an object")
        };
        o.additional_properties = None;
        o.description = Some(
            "A programme: its definition, when it expired, and (operator and supervisor only) \
             its totals."
                .into(),
        );
        o.properties.insert(
            "expired_at".into(),
            nullable(<Timestamp as ToSchema>::name().as_ref()),
        );
        o.properties.insert(
            "totals".into(),
            nullable(<ProgrammeTotals as ToSchema>::name().as_ref()),
        );
        o.required.push("expired_at".into());
        RefOr::T(Schema::Object(o))
    }
}

impl ToSchema for ProgrammeView {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        <ProgrammeSpec as ToSchema>::schemas(schemas);
        schemas.push((Timestamp::name().into(), Timestamp::schema()));
        schemas.push((ProgrammeTotals::name().into(), ProgrammeTotals::schema()));
        <ProgrammeTotals as ToSchema>::schemas(schemas);
    }
}

/// Grant a tenant an amount of a programme (operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub tenant: TenantId,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    pub id: u64,
    pub programme: String,
    pub tenant: TenantId,
    pub amount: Money,
    pub at: Timestamp,
}

/// A tenant's standing in one programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantDrawView {
    pub tenant: TenantId,
    pub granted: Money,
    /// Subsidy paid on the tenant's standing bill lines.
    pub paid: Money,
    /// What the tenant can still draw (zero once the programme expired).
    pub balance: Money,
    /// What lapsed when the programme expired.
    pub expired: Money,
}

/// Voucher programmes, and grants and balances (a tenant sees only its own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VouchersView {
    pub programmes: Vec<ProgrammeView>,
    pub grants: Vec<GrantView>,
    /// Per programme and tenant.
    pub balances: Vec<ProgrammeBalance>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeBalance {
    pub programme: String,
    #[serde(flatten)]
    pub draw: TenantDrawView,
}

/// A programme's budget, grants and payouts per tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProgrammeReportView {
    pub programme: String,
    pub issuer: String,
    pub budget: Money,
    pub granted: Money,
    pub paid_out: Money,
    pub remaining: Money,
    pub unallocated: Money,
    pub expired_at: Option<Timestamp>,
    pub tenants: Vec<TenantDrawView>,
}

/// What happens to a tenant's running jobs when its monthly budget is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AtLimit {
    /// Cancel the tenant's placed, running and queued jobs.
    Stop,
    /// Let them finish; refuse new submissions.
    LetFinish,
}

/// Set a tenant's monthly budget (operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// Limit on what the tenant pays (after vouchers) per calendar month (UTC), in yuan.
    pub monthly_limit: Money,
    pub at_limit: AtLimit,
}

/// A tenant's budget and its use this month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BudgetView {
    pub tenant: TenantId,
    pub monthly_limit: Money,
    pub at_limit: AtLimit,
    /// `YYYY-MM`.
    pub month: String,
    pub spent: Money,
    /// ok (below 80%), warning (80% or more) or exhausted (100% or more).
    pub level: String,
}

/// One billed attempt of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BillLineView {
    pub line: u64,
    /// `YYYY-MM` of `ended_at`.
    pub month: String,
    pub job: JobId,
    pub attempt: u32,
    pub tenant: TenantId,
    pub center: CenterId,
    pub sku: String,
    pub cards: u32,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    pub card_seconds: u64,
    /// Priced as spot (preemptible) usage.
    pub spot: bool,
    /// The price row used: the one in force when the attempt started.
    pub price_row: u64,
    /// Yuan per card-hour.
    pub unit_price: Money,
    /// `unit_price x card_seconds / 3600`.
    pub gross: Money,
    pub programme: Option<String>,
    pub rate_bp: u32,
    pub subsidy: Money,
    /// `gross - subsidy`.
    pub payable: Money,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TotalsView {
    pub lines: u64,
    pub card_seconds: u64,
    pub gross: Money,
    pub subsidy: Money,
    pub payable: Money,
}

/// A tenant's monthly invoice: one line per billed job attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvoiceView {
    pub tenant: TenantId,
    pub month: String,
    pub lines: Vec<BillLineView>,
    /// `totals.payable` is what the tenant owes; `totals.subsidy` what vouchers paid.
    pub totals: TotalsView,
}

/// A center's monthly settlement statement: `totals.gross` is what the platform owes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementView {
    pub center: CenterId,
    pub month: String,
    pub lines: Vec<BillLineView>,
    pub totals: TotalsView,
}

// ---------------------------------------------------------------- site agent protocol

/// The version of the site agent protocol this build speaks: the heartbeat and its reply, the
/// assignments, the events and their results, and the site config.
///
/// Version skew is tolerated both ways: no message of the protocol refuses a field it does not
/// know (none is `deny_unknown_fields`; the job spec and the center definition it carries, which
/// do refuse them where people write them, are read leniently: see [`SiteConfig`]), and every field
/// added since version 1 has a serde default. So an agent one version older or newer than its hub
/// keeps working; a change that cannot be made that way needs a new version. The heartbeat says
/// which version the agent speaks (0: an agent from before it said).
pub const PROTOCOL_VERSION: u32 = 1;

/// Names one attempt of one job: the attempt number is the fencing epoch.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub struct AttemptRef {
    pub job: JobId,
    pub attempt: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NodeInventory {
    pub node: String,
    pub sku: String,
    pub cards: u32,
    pub free_cards: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Heartbeat {
    pub agent_version: String,
    /// The agent protocol version the agent speaks ([`PROTOCOL_VERSION`]); 0 when it did not say.
    #[serde(default)]
    pub protocol: u32,
    pub inventory: Vec<NodeInventory>,
    pub stacks: BTreeMap<String, String>,
    /// Attempts the agent is running now.
    pub running: Vec<AttemptRef>,
    /// Stop giving this center new work.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatReply {
    /// Attempts the agent must stop now (cancelled, or no longer this center's).
    pub kill: Vec<AttemptRef>,
    /// Leases last this long past each heartbeat.
    pub lease_ttl_secs: u64,
}

/// Work handed to a site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignment {
    pub job: JobId,
    pub attempt: u32,
    pub tenant: TenantId,
    /// Read leniently: what a newer hub added to the job spec is dropped.
    #[serde(deserialize_with = "lenient::job_spec")]
    pub spec: JobSpec,
    pub sku: String,
    pub nodes: Vec<NodeCards>,
    pub lease_expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Assignments {
    pub assignments: Vec<Assignment>,
    /// Attempts of this center to stop now (cancelled); also sent in heartbeat replies.
    #[serde(default)]
    pub kill: Vec<AttemptRef>,
}

/// How an attempt ended, as the agent saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Exit code 0.
    Succeeded,
    /// Non-zero exit code, or a signal, or the backend failed to start it.
    Failed,
    /// Killed at the wall-time limit.
    TimedOut,
    /// Killed because the hub said so (cancel or lost lease).
    Killed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    Started {
        at: Timestamp,
    },
    Log {
        /// Per attempt, from 0, gap-free; a retried chunk has the same seq.
        seq: u64,
        stream: Stream,
        data: String,
    },
    Finished {
        outcome: Outcome,
        exit_code: Option<i32>,
        started_at: Timestamp,
        ended_at: Timestamp,
        /// Cards x seconds run.
        card_seconds: u64,
        /// Number of log chunks shipped for this attempt.
        log_chunks: u64,
        #[serde(default)]
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AgentEvent {
    pub job: JobId,
    pub attempt: u32,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventBatch {
    pub events: Vec<AgentEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EventStatus {
    /// Recorded (or already recorded: retries are harmless).
    Accepted,
    /// The attempt is not current at this center: stop it, send nothing more for it.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventResults {
    /// One per event, in order.
    pub results: Vec<EventStatus>,
}

/// The site config (`GET /v1/site/config`): the center's registered definition as the agent reads
/// it. Its JSON is the [`CenterSpec`]'s; what a newer hub added to it is dropped (a `CenterSpec`
/// itself refuses unknown fields, to catch an operator's typos).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SiteConfig(pub suanli_types::CenterSpec);

impl<'de> Deserialize<'de> for SiteConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SiteConfig, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        lenient::retain_known::<suanli_types::CenterSpec>(&mut v);
        if let Some(pools) = v.get_mut("pools").and_then(|p| p.as_array_mut()) {
            pools
                .iter_mut()
                .for_each(lenient::retain_known::<suanli_types::NodePool>);
        }
        serde_json::from_value(v)
            .map(SiteConfig)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod skew_tests;

/// Reading, within the agent protocol, the domain types that refuse unknown fields.
mod lenient {
    use serde::de::{self, DeserializeOwned, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;
    use suanli_types::{ChipRequest, JobSpec};

    /// A deserializer that only learns which fields a struct reads.
    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probed"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    /// The fields struct `T` reads.
    fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    /// Drops the keys of object `v` that `T` does not read.
    pub(super) fn retain_known<T: DeserializeOwned>(v: &mut Value) {
        let known = fields::<T>();
        if let Value::Object(o) = v {
            o.retain(|k, _| known.contains(&k.as_str()));
        }
    }

    /// A job spec, without what this build does not know of it.
    pub(super) fn job_spec<'de, D: Deserializer<'de>>(d: D) -> Result<JobSpec, D::Error> {
        let mut v = Value::deserialize(d)?;
        retain_known::<JobSpec>(&mut v);
        if let Some(chips) = v.get_mut("chips") {
            retain_known::<ChipRequest>(chips);
        }
        serde_json::from_value(v).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_wire_shape_is_stable() {
        let e = AgentEvent {
            job: JobId(7),
            attempt: 2,
            kind: EventKind::Log {
                seq: 0,
                stream: Stream::Stdout,
                data: "hi\n".into(),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"job":7,"attempt":2,"kind":"log","seq":0,"stream":"stdout","data":"hi\n"})
        );
        assert_eq!(serde_json::from_value::<AgentEvent>(v).unwrap(), e);
    }

    #[test]
    fn error_display_and_status() {
        let mut e = ApiError::new(ErrorCode::InvalidSpec, "must be 1 to 64");
        e.field = Some("cards_per_node".into());
        assert_eq!(
            e.to_string(),
            "invalid_spec: cards_per_node: must be 1 to 64"
        );
        assert_eq!(e.code.http_status(), 400);
        assert_eq!(ErrorCode::Unschedulable.http_status(), 422);
    }
}

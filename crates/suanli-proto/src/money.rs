//! Money: prices, voucher programmes and grants, budgets, bills and statements.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};
use utoipa::ToSchema;

use crate::*;
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

/// Stored money records that do not replay (`GET /v1/admin/quarantine`): the hub started without
/// them. Money records are append-only; the operator decides what each one should have been.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuarantineView {
    pub records: Vec<QuarantinedView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuarantinedView {
    /// Its place among the stored money records, from 1.
    pub position: u64,
    /// Why it does not replay.
    pub reason: String,
    /// The record as stored (its first 4 KiB).
    pub record: String,
}

/// Where a bill line came from: the report that ended the attempt (its audit entry), the price
/// row it was priced by, and the placement decision that put the attempt there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BillExplainView {
    pub line: BillLineView,
    /// A correction voided it (its transaction id); a voided line is not billed.
    pub voided_by: Option<u64>,
    /// The price row the line names.
    pub price: Option<PriceView>,
    /// The request id of the site report that ended the attempt; absent when no report did
    /// (a lost attempt, billed to its last heartbeat) or for lines from before it was kept.
    pub report_request: Option<String>,
    /// The audit entry of that request (`suanli audit prove SEQ` proves it is in the log).
    pub report_entry: Option<AuditEntryView>,
    /// The attempt as the hub recorded it.
    pub attempt: Option<AttemptView>,
    /// The placement decision of the attempt, when it is still the job's latest.
    pub placement: Option<PlacementView>,
    /// The chain in words, one step a line.
    pub steps: Vec<String>,
}

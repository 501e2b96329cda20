//! Money in the hub: the books' records in the store, and conversions between the books
//! (`suanli-money`) and the wire types (`suanli-proto`).
//!
//! The engine owns the [`Books`]; every change is a list of [`Record`]s written to the store
//! (`money_records`, append-only) before it is acknowledged, and a restarted hub replays them.
//! Who a tenant is comes from the stored tenants ([`Parties`]: categories); no tenant is affiliated
//! with any center's owner yet, so programmes that exclude affiliated centers exclude none.

use suanli_money::{
    BillLine, Books, Budget, BudgetError, BudgetExceeded, BudgetLevel, BudgetStatus, CategoryRate,
    Grant, GrantError, Invoice, OverBudgetPolicy, PriceError, PriceRow, Programme, ProgrammeError,
    ProgrammeId, ProgrammeReport, Record, Statement, TenantDraw, Totals,
};
use suanli_proto::{
    AtLimit, BillLineView, BudgetView, CategoryRateView, GrantView, InvoiceView, PriceView,
    ProgrammeReportView, ProgrammeSpec, ProgrammeTotals, ProgrammeView, QuarantineView,
    QuarantinedView, StatementView, TenantDrawView, TotalsView,
};
use suanli_store::StoreError;
use suanli_types::{SpecError, TenantId, Timestamp};

use crate::error::HubError;

/// Records as stored: one JSON document each.
pub fn encode(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).expect("money records serialise"))
        .collect()
}

/// Stored rows back to records.
pub fn decode(rows: &[String]) -> Result<Vec<Record>, StoreError> {
    rows.iter()
        .map(|r| {
            serde_json::from_str(r).map_err(|e| StoreError::Corrupt {
                what: "money_records.record",
                detail: e.to_string(),
            })
        })
        .collect()
}

/// Rebuilds the books from stored rows.
pub fn replay(rows: &[String]) -> Result<Books, StoreError> {
    let records = decode(rows)?;
    Books::replay(&records).map_err(|e| StoreError::Corrupt {
        what: "money_records",
        detail: e.to_string(),
    })
}

/// A stored money record that does not replay, set aside so that the hub starts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quarantined {
    /// Its place among the stored records, from 1.
    pub position: usize,
    /// Why it does not replay.
    pub reason: String,
    /// The record as stored (its first [`SHOWN_BYTES`] bytes).
    pub record: String,
}

/// How much of a quarantined record is shown.
pub const SHOWN_BYTES: usize = 4096;

/// The books rebuilt from stored rows, never stopping on one: each row that does not decode,
/// or does not fit the books rebuilt so far, is quarantined and the rest replay without it.
/// Returns the records that replayed, the books, and the quarantined rows in order.
pub fn sort_out(rows: &[String]) -> (Vec<Record>, Books, Vec<Quarantined>) {
    let mut books = Books::new();
    let (mut kept, mut out) = (Vec::with_capacity(rows.len()), Vec::new());
    for (i, row) in rows.iter().enumerate() {
        let applied = serde_json::from_str::<Record>(row)
            .map_err(|e| format!("does not decode: {e}"))
            .and_then(|r| match books.apply(&r) {
                Ok(()) => Ok(r),
                Err(e) => Err(format!("does not fit the books: {e}")),
            });
        match applied {
            Ok(r) => kept.push(r),
            Err(reason) => {
                let mut end = row.len().min(SHOWN_BYTES);
                while !row.is_char_boundary(end) {
                    end -= 1;
                }
                out.push(Quarantined {
                    position: i + 1,
                    reason,
                    record: row[..end].to_string(),
                })
            }
        }
    }
    (kept, books, out)
}

pub fn quarantine_view(q: &[Quarantined]) -> QuarantineView {
    QuarantineView {
        records: q
            .iter()
            .map(|q| QuarantinedView {
                position: q.position as u64,
                reason: q.reason.clone(),
                record: q.record.clone(),
            })
            .collect(),
    }
}

pub fn price_view(books: &Books, row: &PriceRow, at: Timestamp) -> PriceView {
    let in_force = books
        .price_at(&row.center, &row.sku, at, false)
        .is_some_and(|u| u.row == row.id);
    PriceView {
        id: row.id,
        center: row.center.clone(),
        sku: row.sku.clone(),
        price_per_card_hour: row.per_card_hour,
        spot_discount_bp: row.spot_discount_bp,
        effective_from: row.effective_from,
        in_force,
    }
}

pub fn programme_def(s: &ProgrammeSpec) -> Programme {
    Programme {
        id: ProgrammeId::new(s.id.clone()),
        issuer: s.issuer.clone(),
        budget: s.budget,
        valid_from: s.valid_from,
        valid_until: s.valid_until,
        base_rate_bp: s.base_rate_bp,
        category_rates: s
            .category_rates
            .iter()
            .map(|r| CategoryRate {
                category: r.category,
                rate_bp: r.rate_bp,
            })
            .collect(),
        domestic_rate_bp: s.domestic_rate_bp,
        cap_per_tenant: s.cap_per_tenant,
        eligible: s.eligible.clone(),
        exclude_affiliated: s.exclude_affiliated,
    }
}

pub fn programme_spec(p: &Programme) -> ProgrammeSpec {
    ProgrammeSpec {
        id: p.id.to_string(),
        issuer: p.issuer.clone(),
        budget: p.budget,
        valid_from: p.valid_from,
        valid_until: p.valid_until,
        base_rate_bp: p.base_rate_bp,
        category_rates: p
            .category_rates
            .iter()
            .map(|r| CategoryRateView {
                category: r.category,
                rate_bp: r.rate_bp,
            })
            .collect(),
        domestic_rate_bp: p.domestic_rate_bp,
        cap_per_tenant: p.cap_per_tenant,
        eligible: p.eligible.clone(),
        exclude_affiliated: p.exclude_affiliated,
    }
}

/// A programme as the API shows it; `totals` only when asked (operator and supervisor).
pub fn programme_view(books: &Books, p: &Programme, totals: bool) -> ProgrammeView {
    let report = books.programme_report(&p.id);
    ProgrammeView {
        spec: programme_spec(p),
        expired_at: report.as_ref().and_then(|r| r.expired_at),
        totals: report.filter(|_| totals).map(|r| ProgrammeTotals {
            granted: r.granted,
            paid_out: r.paid_out,
            remaining: r.remaining,
            unallocated: r.unallocated,
        }),
    }
}

pub fn grant_view(g: &Grant) -> GrantView {
    GrantView {
        id: g.id,
        programme: g.programme.to_string(),
        tenant: g.tenant.clone(),
        amount: g.amount,
        at: g.at,
    }
}

pub fn draw_view(d: &TenantDraw) -> TenantDrawView {
    TenantDrawView {
        tenant: d.tenant.clone(),
        granted: d.granted,
        paid: d.paid,
        balance: d.balance,
        expired: d.expired,
    }
}

pub fn report_view(r: &ProgrammeReport) -> ProgrammeReportView {
    ProgrammeReportView {
        programme: r.programme.to_string(),
        issuer: r.issuer.clone(),
        budget: r.budget,
        granted: r.granted,
        paid_out: r.paid_out,
        remaining: r.remaining,
        unallocated: r.unallocated,
        expired_at: r.expired_at,
        tenants: r.tenants.iter().map(draw_view).collect(),
    }
}

pub fn line_view(l: &BillLine) -> BillLineView {
    let u = &l.usage;
    BillLineView {
        line: l.id,
        month: l.month.to_string(),
        job: u.job,
        attempt: u.attempt,
        tenant: u.tenant.clone(),
        center: u.center.clone(),
        sku: u.sku.clone(),
        cards: u.cards,
        started_at: u.started_at,
        ended_at: u.ended_at,
        card_seconds: u.card_seconds,
        spot: u.spot,
        price_row: l.unit.row,
        unit_price: l.unit.per_card_hour,
        gross: l.gross,
        programme: l.programme.as_ref().map(|p| p.to_string()),
        rate_bp: l.rate_bp,
        subsidy: l.subsidy,
        payable: l.payable,
    }
}

pub fn totals_view(t: &Totals) -> TotalsView {
    TotalsView {
        lines: t.lines,
        card_seconds: t.card_seconds,
        gross: t.gross,
        subsidy: t.subsidy,
        payable: t.payable,
    }
}

pub fn invoice_view(i: &Invoice) -> InvoiceView {
    InvoiceView {
        tenant: i.tenant.clone(),
        month: i.month.to_string(),
        lines: i.lines.iter().map(line_view).collect(),
        totals: totals_view(&i.totals),
    }
}

pub fn statement_view(s: &Statement) -> StatementView {
    StatementView {
        center: s.center.clone(),
        month: s.month.to_string(),
        lines: s.lines.iter().map(line_view).collect(),
        totals: totals_view(&s.totals),
    }
}

pub fn policy(a: AtLimit) -> OverBudgetPolicy {
    match a {
        AtLimit::Stop => OverBudgetPolicy::StopRunning,
        AtLimit::LetFinish => OverBudgetPolicy::LetFinish,
    }
}

pub fn at_limit(p: OverBudgetPolicy) -> AtLimit {
    match p {
        OverBudgetPolicy::StopRunning => AtLimit::Stop,
        OverBudgetPolicy::LetFinish => AtLimit::LetFinish,
    }
}

pub fn level_name(l: BudgetLevel) -> &'static str {
    match l {
        BudgetLevel::Ok => "ok",
        BudgetLevel::Warning => "warning",
        BudgetLevel::Exhausted => "exhausted",
    }
}

pub fn budget_view(tenant: &TenantId, b: &Budget, st: &BudgetStatus) -> BudgetView {
    BudgetView {
        tenant: tenant.clone(),
        monthly_limit: b.monthly_limit,
        at_limit: at_limit(b.at_limit),
        month: st.month.to_string(),
        spent: st.spent,
        level: level_name(st.level).to_string(),
    }
}

// ---------------------------------------------------------------- errors

impl From<PriceError> for HubError {
    fn from(e: PriceError) -> Self {
        let field = match e {
            PriceError::MissingKey => "sku",
            PriceError::Negative(_) => "price_per_card_hour",
            PriceError::DiscountOutOfRange(_) => "spot_discount_bp",
        };
        HubError::InvalidSpec(SpecError::new(field, e.to_string()))
    }
}

impl From<ProgrammeError> for HubError {
    fn from(e: ProgrammeError) -> Self {
        let field = match &e {
            ProgrammeError::Duplicate(p) => {
                return HubError::AlreadyExists(format!("programme {p}"));
            }
            ProgrammeError::EmptyId => "id",
            ProgrammeError::Budget(_) => "budget",
            ProgrammeError::Cap(_) => "cap_per_tenant",
            ProgrammeError::Window { .. } => "valid_until",
            ProgrammeError::Rate { what, .. } if what.starts_with("base") => "base_rate_bp",
            ProgrammeError::Rate { what, .. } if what.starts_with("domestic") => "domestic_rate_bp",
            ProgrammeError::Rate { .. } | ProgrammeError::DuplicateCategoryRate(_) => {
                "category_rates"
            }
            ProgrammeError::NoEligibleCategory => "eligible",
        };
        HubError::InvalidSpec(SpecError::new(field, e.to_string()))
    }
}

impl From<GrantError> for HubError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::UnknownProgramme(p) => HubError::NotFound(format!("programme {p}")),
            GrantError::Amount(_) => HubError::InvalidSpec(SpecError::new("amount", e.to_string())),
            other => HubError::Conflict(other.to_string()),
        }
    }
}

impl From<BudgetError> for HubError {
    fn from(e: BudgetError) -> Self {
        HubError::InvalidSpec(SpecError::new("monthly_limit", e.to_string()))
    }
}

impl From<BudgetExceeded> for HubError {
    fn from(e: BudgetExceeded) -> Self {
        HubError::OverBudget(e)
    }
}

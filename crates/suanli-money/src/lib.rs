//! The money of suanli: price tables, bill lines, computing-power vouchers, a double-entry
//! ledger, monthly budgets, quotes and reports.
//!
//! # Model
//!
//! [`Books`] is a pure state machine. It does no I/O, reads no clock, starts no threads and uses
//! no randomness: every time is an argument. Every change is an explicit, serialisable
//! [`Record`]; each operation validates its input, appends records and returns exactly the
//! records it appended, so the hub can persist them in one store transaction. [`Books::replay`]
//! rebuilds the same state from the persisted records.
//!
//! - **Prices** ([`PriceRow`]): a list price per card-hour per (center, SKU), an optional spot
//!   discount, in force from `effective_from`. A usage is priced by the row in force when it
//!   *started*; the line stores that row's id and unit price, so later price rows never change it.
//! - **Usage** ([`Usage`]) comes from metering, keyed by `(job, attempt)`. Billing it makes one
//!   [`BillLine`]: `gross = unit price x card_seconds / 3600` (rounded half away from zero), a
//!   subsidy from at most one voucher [`Programme`], and `payable = gross - subsidy`. The line's
//!   month is the UTC month of `ended_at`. Billing the same usage again returns the existing line
//!   and appends nothing.
//! - **Vouchers**: a [`Programme`] has a budget, a validity window `[from, until)`, rates in basis
//!   points (base, per tenant category, for domestic chips), a cap per tenant, eligible
//!   categories and optionally excludes centers affiliated with the tenant. Tenants draw from
//!   [`Grant`]s. For each line the programme giving the largest subsidy wins (ties: the smaller
//!   programme id); the subsidy is `min(gross x rate, grant balance, programme budget left)`.
//!   At the end of its window ([`Books::expire_due`]) unused balances expire.
//! - **Ledger** ([`Ledger`]): append-only, integer, double-entry. A [`Transaction`] is a list of
//!   [`Posting`]s summing to zero, checked by its only constructor (also when deserialised).
//!   Billing posts `wallet -payable`, `pool -subsidy`, `receivable +gross`; funding a programme
//!   `platform -budget`, `pool +budget`; a top-up `platform -x`, `wallet +x`; a correction negates
//!   an earlier transaction and names it. Balances are derived from the entries.
//! - **Budgets** ([`Budget`]): a monthly limit on a tenant's payable, checked before submit.
//! - **Quotes** ([`Books::quote`]): the same pricing and voucher rules, consuming nothing.
//! - **Reports**: [`Invoice`], [`Statement`], [`ProgrammeReport`], as JSON or CSV.
//!
//! Who a tenant is (category), which chips are domestic and which (tenant, center) pairs are
//! affiliated is not kept here: the caller passes a [`Directory`] (e.g. [`Parties`]). Its answers
//! are only read while billing, quoting and granting; the results are stored in the records.
//!
//! # Invariants (each stated as something that does not happen)
//!
//! - No float touches money; every amount is an integer [`Money`](suanli_types::Money).
//! - No unbalanced transaction exists, and the ledger as a whole always sums to zero.
//! - No line has `gross != subsidy + payable`, a negative subsidy or payable, or more than one
//!   programme.
//! - No grant balance goes below zero; no tenant is granted more than the programme's cap; no
//!   programme grants or pays out more than its budget; no voucher pays after it expired.
//! - No usage is billed twice: a repeated `(job, attempt)` changes no amount.
//! - No price change alters a line already made.
//! - Invoices sum to the tenant-wallet and pool postings of billing; statements sum to the
//!   center receivables.

mod books;
mod ledger;
mod month;
mod price;
mod report;
mod voucher;

use std::collections::{BTreeMap, BTreeSet};

use suanli_types::{CenterId, ChipCatalog, TenantCategory, TenantId};

pub use books::{
    ApplyError, BillError, BillLine, BillRun, Billed, Books, Budget, BudgetError, BudgetExceeded,
    BudgetLevel, BudgetStatus, LATEST, LineId, MAX_LINE_AMOUNT, OverBudgetPolicy, Quote,
    QuoteError, QuoteRequest, Record, Usage,
};
pub use ledger::{Account, Ledger, LedgerError, Posting, Transaction, TxId, TxKind};
pub use month::{Month, MonthParseError};
pub use price::{PriceError, PriceRow, PriceRowId, UnitPrice};
pub use report::{
    Invoice, LINE_CSV_HEADER, PROGRAMME_CSV_HEADER, ProgrammeReport, Statement, TenantDraw, Totals,
};
pub use voucher::{
    CategoryRate, Grant, GrantError, GrantId, Programme, ProgrammeError, ProgrammeId,
};

/// Basis points in one whole (100%).
pub const BP: u32 = 10_000;

/// What the books need to know about parties they do not own.
pub trait Directory {
    /// The tenant's category; `None` for an unknown tenant (eligible for no programme).
    fn category(&self, tenant: &TenantId) -> Option<TenantCategory>;
    /// Whether the center's owner is affiliated with the tenant.
    fn affiliated(&self, tenant: &TenantId, center: &CenterId) -> bool;
    /// Whether the SKU's chip is domestic; by default from the built-in chip catalog (unknown
    /// SKUs are not domestic).
    fn is_domestic(&self, sku: &str) -> bool {
        ChipCatalog::builtin()
            .get(sku)
            .is_some_and(|c| c.is_domestic())
    }
}

/// A plain [`Directory`]: tenant categories and a set of affiliated (tenant, center) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parties {
    pub categories: BTreeMap<TenantId, TenantCategory>,
    pub affiliations: BTreeSet<(TenantId, CenterId)>,
}

impl Parties {
    /// Adds a tenant with its category.
    pub fn tenant(mut self, tenant: &str, category: TenantCategory) -> Self {
        self.categories.insert(TenantId::new(tenant), category);
        self
    }
    /// Marks a center's owner as affiliated with a tenant.
    pub fn affiliate(mut self, tenant: &str, center: &str) -> Self {
        self.affiliations
            .insert((TenantId::new(tenant), CenterId::new(center)));
        self
    }
}

impl Directory for Parties {
    fn category(&self, tenant: &TenantId) -> Option<TenantCategory> {
        self.categories.get(tenant).copied()
    }
    fn affiliated(&self, tenant: &TenantId, center: &CenterId) -> bool {
        self.affiliations
            .contains(&(tenant.clone(), center.clone()))
    }
}

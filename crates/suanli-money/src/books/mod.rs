//! The books: state, records and every operation on them.
//!
//! - this module: the state, the records, replay, reading, prices and ledger corrections;
//! - [`apply`]: whether a record fits the books, how it changes them, and the transactions the
//!   books make;
//! - [`billing`]: bill lines and quotes, with the best voucher subsidy;
//! - [`programmes`]: voucher programmes, grants and their expiry;
//! - [`budget`]: monthly budgets and the submit check.

mod apply;
mod billing;
mod budget;
mod programmes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, Money, TenantId, Timestamp};

use crate::ledger::{Account, Ledger, LedgerError, Transaction, TxId, TxKind};
use crate::month::Month;
use crate::price::{PriceError, PriceRow, UnitPrice, row_at};
use crate::voucher::{Grant, Programme, ProgrammeId};

use apply::top_up_tx;
pub use billing::{BillError, BillRun, Billed, Quote, QuoteError, QuoteRequest};
pub use budget::{
    Budget, BudgetError, BudgetExceeded, BudgetLevel, BudgetStatus, OverBudgetPolicy,
};

/// A bill line's number, allocated in order from 1.
pub type LineId = u64;

/// Metered usage of one attempt of a job, as the hub reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub job: JobId,
    pub attempt: u32,
    pub tenant: TenantId,
    pub center: CenterId,
    pub sku: String,
    pub cards: u32,
    pub started_at: Timestamp,
    pub ended_at: Timestamp,
    /// Card-seconds, rounded up: at most `ceil(cards x (ended_at - started_at) ms / 1000)`.
    pub card_seconds: u64,
    /// Preemptible usage, priced with the row's spot discount.
    pub spot: bool,
    /// The time whose price row applies, when it is not `started_at`: the hub's own record of
    /// the start (a site's reported start may be earlier, within the clock skew allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priced_at: Option<Timestamp>,
    /// The request id of the site report that ended the attempt (its audit entry has it);
    /// `None` when no report did (a lost attempt, billed to its last heartbeat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Usage {
    /// The time whose price row applies.
    pub fn priced_at(&self) -> Timestamp {
        self.priced_at.unwrap_or(self.started_at)
    }
}

/// One billed usage. Everything needed to reproduce it is stored in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillLine {
    pub id: LineId,
    /// The billing transaction.
    pub tx: TxId,
    /// UTC month of `usage.ended_at`.
    pub month: Month,
    pub usage: Usage,
    /// The price row and unit price used (the row in force at [`Usage::priced_at`]).
    pub unit: UnitPrice,
    /// `unit.per_card_hour x card_seconds / 3600`, rounded half away from zero.
    pub gross: Money,
    /// The one programme that subsidised this line, if any.
    pub programme: Option<ProgrammeId>,
    /// The programme's rate for this line (0 without a programme).
    pub rate_bp: u32,
    pub subsidy: Money,
    /// `gross - subsidy`.
    pub payable: Money,
}

/// Every change to the books. The hub persists these; [`Books::replay`] rebuilds from them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// A price row was set.
    Price(PriceRow),
    /// A programme was created (its funding follows as a transaction).
    Programme(Programme),
    /// A tenant was granted an amount of a programme.
    Grant(Grant),
    /// A usage was billed (its billing follows as a transaction).
    Line(BillLine),
    /// A ledger transaction; a reversal of a billing also voids its line.
    Transaction(Transaction),
    /// A programme reached its end; its tenants' unused balances expired.
    Expired {
        programme: ProgrammeId,
        at: Timestamp,
    },
    /// A tenant's budget was set, replacing any earlier one.
    Budget(Budget),
}

/// A record that does not fit the books it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{what} {got} is out of sequence; expected {expected}")]
    OutOfSequence {
        what: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("invalid record: {0}")]
    Invalid(String),
}

/// A programme with what has been granted and paid out of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProgState {
    pub def: Programme,
    pub expired_at: Option<Timestamp>,
    pub granted: Money,
    pub paid: Money,
    pub draws: BTreeMap<TenantId, Draw>,
}

/// One tenant's grants and subsidy paid in one programme.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Draw {
    pub granted: Money,
    pub paid: Money,
}

impl ProgState {
    /// What the tenant can still draw (zero once expired).
    fn balance(&self, tenant: &TenantId) -> Money {
        match (self.expired_at, self.draws.get(tenant)) {
            (None, Some(d)) => Money(d.granted.0 - d.paid.0),
            _ => Money::ZERO,
        }
    }
    fn budget_left(&self) -> Money {
        Money(self.def.budget.0 - self.paid.0)
    }
}

/// All money state: price rows, programmes, grants, lines, ledger and budgets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Books {
    pub(crate) prices: Vec<PriceRow>,
    pub(crate) programmes: BTreeMap<ProgrammeId, ProgState>,
    pub(crate) grants: Vec<Grant>,
    pub(crate) lines: Vec<BillLine>,
    by_key: BTreeMap<(JobId, u32), LineId>,
    voided: BTreeMap<LineId, TxId>,
    reversed: BTreeMap<TxId, TxId>,
    pub(crate) ledger: Ledger,
    budgets: BTreeMap<TenantId, Budget>,
    /// Payable of the standing lines by tenant and month (kept as lines are added and voided,
    /// so that a budget check does not read every line).
    spent: BTreeMap<(TenantId, Month), i64>,
}

/// The latest time the books take: the last millisecond of 9999 (a month has four digits).
pub const LATEST: Timestamp = Timestamp(253_402_300_799_999);

/// The most one bill line may come to: a trillion yuan.
pub const MAX_LINE_AMOUNT: Money = Money(10_000_000_000_000_000);

/// Whether the books take `at` (1970 to the end of 9999).
pub(crate) fn in_time_range(at: Timestamp) -> bool {
    (0..=LATEST.0).contains(&at.0)
}

fn next_id(len: usize) -> u64 {
    len as u64 + 1
}

impl Books {
    /// Empty books.
    pub fn new() -> Books {
        Books::default()
    }

    /// Rebuilds books from their records, in the order they were appended.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a Record>) -> Result<Books, ApplyError> {
        let mut books = Books::new();
        for r in records {
            books.apply(r)?;
        }
        Ok(books)
    }

    /// Applies one persisted record after checking that it fits these books.
    pub fn apply(&mut self, record: &Record) -> Result<(), ApplyError> {
        self.check(record)?;
        self.absorb(record.clone());
        Ok(())
    }

    // ---- reading ----

    /// Every price row, in the order recorded.
    pub fn prices(&self) -> &[PriceRow] {
        &self.prices
    }

    /// The unit price of `(center, sku)` in force at `at`.
    pub fn price_at(
        &self,
        center: &CenterId,
        sku: &str,
        at: Timestamp,
        spot: bool,
    ) -> Option<UnitPrice> {
        row_at(&self.prices, center, sku, at).map(|r| r.unit(spot))
    }

    /// A programme's definition.
    pub fn programme(&self, id: &ProgrammeId) -> Option<&Programme> {
        self.programmes.get(id).map(|p| &p.def)
    }

    /// Every programme, by id.
    pub fn programmes(&self) -> impl Iterator<Item = &Programme> {
        self.programmes.values().map(|p| &p.def)
    }

    /// Every grant, in the order made.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// What the tenant can still draw from the programme (zero once it expired).
    pub fn grant_balance(&self, programme: &ProgrammeId, tenant: &TenantId) -> Money {
        self.programmes
            .get(programme)
            .map_or(Money::ZERO, |p| p.balance(tenant))
    }

    /// Every line, including voided ones.
    pub fn lines(&self) -> &[BillLine] {
        &self.lines
    }

    /// A line by id, voided or not.
    pub fn line(&self, id: LineId) -> Option<&BillLine> {
        self.lines.get(usize::try_from(id.checked_sub(1)?).ok()?)
    }

    /// The standing (not voided) line of a usage key.
    pub fn line_for(&self, job: JobId, attempt: u32) -> Option<&BillLine> {
        let id = *self.by_key.get(&(job, attempt))?;
        if self.voided.contains_key(&id) {
            return None;
        }
        self.line(id)
    }

    /// The transaction that voided a line, if one did.
    pub fn voided_by(&self, line: LineId) -> Option<TxId> {
        self.voided.get(&line).copied()
    }

    /// Lines that stand (not voided by a correction).
    pub fn live_lines(&self) -> impl Iterator<Item = &BillLine> {
        self.lines
            .iter()
            .filter(|l| !self.voided.contains_key(&l.id))
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// An account's balance.
    pub fn balance(&self, account: &Account) -> Money {
        self.ledger.balance(account)
    }

    /// A tenant's budget, if one is set.
    pub fn budget(&self, tenant: &TenantId) -> Option<&Budget> {
        self.budgets.get(tenant)
    }

    // ---- prices ----

    /// Records a price row in force from `effective_from`. Lines already made keep their price.
    pub fn set_price(
        &mut self,
        center: &CenterId,
        sku: &str,
        per_card_hour: Money,
        spot_discount_bp: Option<u32>,
        effective_from: Timestamp,
    ) -> Result<Vec<Record>, PriceError> {
        let row = PriceRow {
            id: next_id(self.prices.len()),
            center: center.clone(),
            sku: sku.to_string(),
            per_card_hour,
            spot_discount_bp,
            effective_from,
        };
        row.validate()?;
        Ok(self.commit(vec![Record::Price(row)]))
    }

    // ---- ledger ----

    /// Records money paid into a tenant's wallet.
    pub fn top_up(
        &mut self,
        tenant: &TenantId,
        amount: Money,
        at: Timestamp,
    ) -> Result<Vec<Record>, LedgerError> {
        if amount <= Money::ZERO {
            return Err(LedgerError::Amount(amount));
        }
        let tx = top_up_tx(self.ledger.next_id(), at, tenant, amount);
        Ok(self.commit(vec![Record::Transaction(tx)]))
    }

    /// Corrects a billing or top-up transaction with one that negates it. Reversing a billing
    /// voids its line, gives the subsidy back to the grant (it lapses if the programme expired;
    /// [`Books::expire_due`] then sweeps the pool again) and frees the usage's key so the
    /// corrected usage can be billed.
    pub fn reverse(
        &mut self,
        tx: TxId,
        at: Timestamp,
        reason: &str,
    ) -> Result<Vec<Record>, LedgerError> {
        let original = self.ledger.get(tx).ok_or(LedgerError::Unknown(tx))?;
        self.check_reversible(original)?;
        let rev = original.reversal(self.ledger.next_id(), at, reason.to_string());
        Ok(self.commit(vec![Record::Transaction(rev)]))
    }

    fn check_reversible(&self, original: &Transaction) -> Result<(), LedgerError> {
        if let Some(&by) = self.reversed.get(&original.id()) {
            return Err(LedgerError::AlreadyReversed {
                tx: original.id(),
                by,
            });
        }
        match original.kind() {
            TxKind::Billing { .. } | TxKind::TopUp { .. } => Ok(()),
            k => Err(LedgerError::NotReversible {
                tx: original.id(),
                kind: k.name(),
            }),
        }
    }

    // ---- records ----

    /// Absorbs records this crate built (checked in debug builds) and hands them back.
    fn commit(&mut self, records: Vec<Record>) -> Vec<Record> {
        for r in &records {
            debug_assert_eq!(self.check(r), Ok(()), "{r:?}");
            self.absorb(r.clone());
        }
        records
    }
}

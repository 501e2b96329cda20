//! The books: state, records and every operation on them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, Money, TenantId, Timestamp};

use crate::ledger::{Account, Ledger, LedgerError, Posting, Transaction, TxId, TxKind};
use crate::month::Month;
use crate::price::{PriceError, PriceRow, UnitPrice, row_at};
use crate::voucher::{Grant, GrantError, Programme, ProgrammeError, ProgrammeId};
use crate::{BP, Directory};

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
    /// The price row and unit price used (the row in force at `usage.started_at`).
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

/// What to do with a tenant's running jobs once its monthly budget is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverBudgetPolicy {
    /// Stop the tenant's running jobs.
    StopRunning,
    /// Let running jobs finish; refuse new ones.
    LetFinish,
}

/// A tenant's monthly spending limit on payable (after vouchers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub tenant: TenantId,
    pub monthly_limit: Money,
    pub at_limit: OverBudgetPolicy,
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

/// The result of billing one usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Billed {
    /// The new line, or the existing one when the usage was billed before.
    pub line: BillLine,
    /// The records appended: empty when the usage was billed before.
    pub records: Vec<Record>,
}

/// The result of billing a batch of usages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillRun {
    pub records: Vec<Record>,
    /// The line of each usage billed now or before.
    pub lines: Vec<LineId>,
    /// Usages that could not be billed, by `(job, attempt)`.
    pub errors: Vec<(JobId, u32, BillError)>,
}

/// A usage that cannot be billed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillError {
    #[error(
        "job {job} attempt {attempt} was already billed as line {line} with different usage figures"
    )]
    Conflict {
        job: JobId,
        attempt: u32,
        line: LineId,
    },
    #[error("usage ends at {ended_at}, before it started at {started_at}")]
    EndsBeforeStart {
        started_at: Timestamp,
        ended_at: Timestamp,
    },
    #[error("usage has no cards")]
    NoCards,
    #[error("{card_seconds} card-seconds is more than the {max} the cards and duration allow")]
    TooManyCardSeconds { card_seconds: u64, max: u64 },
    #[error("no price for SKU {sku} at center {center} in force at {at}")]
    NoPrice {
        center: CenterId,
        sku: String,
        at: Timestamp,
    },
}

/// What a job would cost, asked by the scheduler before placing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteRequest {
    pub tenant: TenantId,
    pub center: CenterId,
    pub sku: String,
    pub cards: u32,
    pub seconds: u64,
    /// When the job would start (and, for voucher validity, end).
    pub at: Timestamp,
    pub spot: bool,
}

/// A price after vouchers, computed like a bill line but consuming nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub unit: UnitPrice,
    pub card_seconds: u64,
    pub gross: Money,
    pub programme: Option<ProgrammeId>,
    pub rate_bp: u32,
    pub subsidy: Money,
    pub payable: Money,
}

/// A quote that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("no price for SKU {sku} at center {center} in force at {at}")]
    NoPrice {
        center: CenterId,
        sku: String,
        at: Timestamp,
    },
}

/// A budget that cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("monthly limit must not be negative, got {0} yuan")]
    Negative(Money),
}

/// A submission refused because it would take the tenant over its monthly budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "monthly budget exceeded: limit {limit} yuan, already spent {spent} yuan, this job is quoted at {quoted} yuan"
)]
pub struct BudgetExceeded {
    pub limit: Money,
    pub spent: Money,
    pub quoted: Money,
}

/// How much of a monthly budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetLevel {
    /// Below 80%.
    Ok,
    /// At least 80%.
    Warning,
    /// At least 100%: new jobs are refused, running ones follow the policy.
    Exhausted,
}

/// A tenant's budget in a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub month: Month,
    pub limit: Money,
    pub spent: Money,
    pub level: BudgetLevel,
    pub at_limit: OverBudgetPolicy,
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

/// The subsidy a programme gives a line.
struct Pick {
    programme: ProgrammeId,
    rate_bp: u32,
    amount: Money,
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
}

fn next_id(len: usize) -> u64 {
    len as u64 + 1
}

fn sequence(what: &'static str, expected: u64, got: u64) -> Result<(), ApplyError> {
    if expected == got {
        Ok(())
    } else {
        Err(ApplyError::OutOfSequence {
            what,
            expected,
            got,
        })
    }
}

fn invalid(e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Invalid(e.to_string())
}

fn posting(account: Account, amount: Money) -> Posting {
    Posting { account, amount }
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

    // ---- vouchers ----

    /// Creates a programme and funds its pool with the whole budget.
    pub fn create_programme(
        &mut self,
        programme: Programme,
        at: Timestamp,
    ) -> Result<Vec<Record>, ProgrammeError> {
        programme.validate()?;
        if self.programmes.contains_key(&programme.id) {
            return Err(ProgrammeError::Duplicate(programme.id));
        }
        let tx = funding_tx(self.ledger.next_id(), at, &programme);
        Ok(self.commit(vec![Record::Programme(programme), Record::Transaction(tx)]))
    }

    /// Grants a tenant an amount of a programme. The tenant's grants never exceed the cap, and
    /// all grants never exceed the budget.
    pub fn grant(
        &mut self,
        programme: &ProgrammeId,
        tenant: &TenantId,
        amount: Money,
        at: Timestamp,
        dir: &impl Directory,
    ) -> Result<Vec<Record>, GrantError> {
        self.check_grant(programme, tenant, amount, at)?;
        let p = &self.programmes[programme].def;
        match dir.category(tenant) {
            Some(c) if p.admits(c) => {}
            c => {
                return Err(GrantError::NotEligible {
                    programme: programme.clone(),
                    tenant: tenant.clone(),
                    category: c.map_or("unknown category", |c| c.as_str()).to_string(),
                });
            }
        }
        let grant = Grant {
            id: next_id(self.grants.len()),
            programme: programme.clone(),
            tenant: tenant.clone(),
            amount,
            at,
        };
        Ok(self.commit(vec![Record::Grant(grant)]))
    }

    fn check_grant(
        &self,
        programme: &ProgrammeId,
        tenant: &TenantId,
        amount: Money,
        at: Timestamp,
    ) -> Result<(), GrantError> {
        let p = self
            .programmes
            .get(programme)
            .ok_or_else(|| GrantError::UnknownProgramme(programme.clone()))?;
        if amount <= Money::ZERO {
            return Err(GrantError::Amount(amount));
        }
        if p.expired_at.is_some() || at >= p.def.valid_until {
            return Err(GrantError::Ended {
                programme: programme.clone(),
                until: p.def.valid_until,
            });
        }
        let granted = p.draws.get(tenant).map_or(Money::ZERO, |d| d.granted);
        if granted.0 + amount.0 > p.def.cap_per_tenant.0 {
            return Err(GrantError::OverCap {
                tenant: tenant.clone(),
                amount,
                granted,
                cap: p.def.cap_per_tenant,
            });
        }
        let unallocated = Money(p.def.budget.0 - p.granted.0);
        if amount > unallocated {
            return Err(GrantError::OverBudget {
                programme: programme.clone(),
                amount,
                unallocated,
            });
        }
        Ok(())
    }

    /// Ends every programme whose window closed by `now`: marks it expired (its tenants'
    /// balances lapse) and returns what is left in its pool to the platform. Also sweeps an
    /// expired pool that a later correction refilled.
    pub fn expire_due(&mut self, now: Timestamp) -> Vec<Record> {
        let due: Vec<ProgrammeId> = self
            .programmes
            .values()
            .filter(|p| p.def.valid_until <= now)
            .map(|p| p.def.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in due {
            if self.programmes[&id].expired_at.is_none() {
                out.extend(self.commit(vec![Record::Expired {
                    programme: id.clone(),
                    at: now,
                }]));
            }
            if let Some(tx) = self.sweep_tx(self.ledger.next_id(), now, &id) {
                out.extend(self.commit(vec![Record::Transaction(tx)]));
            }
        }
        out
    }

    /// The programme giving the largest subsidy on `gross` (ties: smaller id), if any gives one.
    fn best_subsidy(
        &self,
        tenant: &TenantId,
        center: &CenterId,
        sku: &str,
        gross: Money,
        at: Timestamp,
        dir: &impl Directory,
    ) -> Option<Pick> {
        let category = dir.category(tenant)?;
        let domestic = dir.is_domestic(sku);
        let affiliated = dir.affiliated(tenant, center);
        self.programmes
            .values()
            .filter(|p| {
                p.expired_at.is_none()
                    && p.def.is_valid_at(at)
                    && p.def.admits(category)
                    && !(p.def.exclude_affiliated && affiliated)
            })
            .filter_map(|p| {
                let rate_bp = p.def.rate_for(category, domestic);
                let amount = gross
                    .mul_div(rate_bp.into(), BP.into())
                    .min(p.balance(tenant))
                    .min(p.budget_left());
                (amount > Money::ZERO).then(|| Pick {
                    programme: p.def.id.clone(),
                    rate_bp,
                    amount,
                })
            })
            .max_by(|a, b| {
                a.amount
                    .cmp(&b.amount)
                    .then_with(|| b.programme.cmp(&a.programme))
            })
    }

    // ---- billing ----

    /// Bills one usage. Billing the same `(job, attempt)` again returns the existing line and
    /// appends nothing; different figures for a billed key are a [`BillError::Conflict`]. A
    /// usage whose line was voided by a correction is billed anew.
    pub fn bill(&mut self, usage: &Usage, dir: &impl Directory) -> Result<Billed, BillError> {
        if let Some(&id) = self.by_key.get(&(usage.job, usage.attempt))
            && !self.voided.contains_key(&id)
        {
            let line = &self.lines[(id - 1) as usize];
            if &line.usage != usage {
                return Err(BillError::Conflict {
                    job: usage.job,
                    attempt: usage.attempt,
                    line: id,
                });
            }
            return Ok(Billed {
                line: line.clone(),
                records: Vec::new(),
            });
        }
        if usage.ended_at < usage.started_at {
            return Err(BillError::EndsBeforeStart {
                started_at: usage.started_at,
                ended_at: usage.ended_at,
            });
        }
        if usage.cards == 0 {
            return Err(BillError::NoCards);
        }
        let ms = usage.ended_at.millis_since(usage.started_at) as u128;
        let max = u64::try_from((ms * u128::from(usage.cards)).div_ceil(1000)).unwrap_or(u64::MAX);
        if usage.card_seconds > max {
            return Err(BillError::TooManyCardSeconds {
                card_seconds: usage.card_seconds,
                max,
            });
        }
        let unit = self
            .price_at(&usage.center, &usage.sku, usage.started_at, usage.spot)
            .ok_or_else(|| BillError::NoPrice {
                center: usage.center.clone(),
                sku: usage.sku.clone(),
                at: usage.started_at,
            })?;
        let gross = gross_of(unit, usage.card_seconds);
        let pick = self.best_subsidy(
            &usage.tenant,
            &usage.center,
            &usage.sku,
            gross,
            usage.ended_at,
            dir,
        );
        let subsidy = pick.as_ref().map_or(Money::ZERO, |p| p.amount);
        let line = BillLine {
            id: next_id(self.lines.len()),
            tx: self.ledger.next_id(),
            month: Month::of(usage.ended_at),
            usage: usage.clone(),
            unit,
            gross,
            rate_bp: pick.as_ref().map_or(0, |p| p.rate_bp),
            programme: pick.map(|p| p.programme),
            subsidy,
            payable: Money(gross.0 - subsidy.0),
        };
        let tx = billing_tx(&line);
        let records = self.commit(vec![Record::Line(line.clone()), Record::Transaction(tx)]);
        Ok(Billed { line, records })
    }

    /// Bills a batch of usages one by one; a usage that fails does not stop the others.
    pub fn bill_run(&mut self, usages: &[Usage], dir: &impl Directory) -> BillRun {
        let mut run = BillRun::default();
        for u in usages {
            match self.bill(u, dir) {
                Ok(b) => {
                    run.lines.push(b.line.id);
                    run.records.extend(b.records);
                }
                Err(e) => run.errors.push((u.job, u.attempt, e)),
            }
        }
        run
    }

    /// What a job would cost after vouchers, by the same rules as billing; consumes nothing.
    pub fn quote(&self, req: &QuoteRequest, dir: &impl Directory) -> Result<Quote, QuoteError> {
        let unit = self
            .price_at(&req.center, &req.sku, req.at, req.spot)
            .ok_or_else(|| QuoteError::NoPrice {
                center: req.center.clone(),
                sku: req.sku.clone(),
                at: req.at,
            })?;
        let card_seconds = u64::from(req.cards).saturating_mul(req.seconds);
        let gross = gross_of(unit, card_seconds);
        let pick = self.best_subsidy(&req.tenant, &req.center, &req.sku, gross, req.at, dir);
        let subsidy = pick.as_ref().map_or(Money::ZERO, |p| p.amount);
        Ok(Quote {
            unit,
            card_seconds,
            gross,
            rate_bp: pick.as_ref().map_or(0, |p| p.rate_bp),
            programme: pick.map(|p| p.programme),
            subsidy,
            payable: Money(gross.0 - subsidy.0),
        })
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

    // ---- budgets ----

    /// Sets a tenant's monthly limit on payable and what happens at 100%.
    pub fn set_budget(
        &mut self,
        tenant: &TenantId,
        monthly_limit: Money,
        at_limit: OverBudgetPolicy,
    ) -> Result<Vec<Record>, BudgetError> {
        if monthly_limit < Money::ZERO {
            return Err(BudgetError::Negative(monthly_limit));
        }
        Ok(self.commit(vec![Record::Budget(Budget {
            tenant: tenant.clone(),
            monthly_limit,
            at_limit,
        })]))
    }

    /// Payable of the tenant's standing lines that ended in `month`.
    pub fn spent(&self, tenant: &TenantId, month: Month) -> Money {
        Money(
            self.live_lines()
                .filter(|l| &l.usage.tenant == tenant && l.month == month)
                .map(|l| l.payable.0)
                .sum(),
        )
    }

    /// Refuses a job quoted at `quoted_payable` when the tenant's budget for `month` is used up
    /// or the job would take it over the limit. A tenant without a budget is never refused.
    /// Only billed lines count as spent: the caller adds what running jobs will cost to the
    /// quote if it wants them counted.
    pub fn check_submit(
        &self,
        tenant: &TenantId,
        month: Month,
        quoted_payable: Money,
    ) -> Result<(), BudgetExceeded> {
        let Some(b) = self.budgets.get(tenant) else {
            return Ok(());
        };
        let spent = self.spent(tenant, month);
        if spent >= b.monthly_limit || spent.0 + quoted_payable.0 > b.monthly_limit.0 {
            return Err(BudgetExceeded {
                limit: b.monthly_limit,
                spent,
                quoted: quoted_payable,
            });
        }
        Ok(())
    }

    /// The tenant's budget level in `month`; `None` without a budget.
    pub fn budget_status(&self, tenant: &TenantId, month: Month) -> Option<BudgetStatus> {
        let b = self.budgets.get(tenant)?;
        let spent = self.spent(tenant, month);
        let (s, l) = (i128::from(spent.0), i128::from(b.monthly_limit.0));
        let level = if s >= l {
            BudgetLevel::Exhausted
        } else if s * 10 >= l * 8 {
            BudgetLevel::Warning
        } else {
            BudgetLevel::Ok
        };
        Some(BudgetStatus {
            month,
            limit: b.monthly_limit,
            spent,
            level,
            at_limit: b.at_limit,
        })
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

    /// Whether a record fits these books: ids in sequence, references exist, amounts within
    /// caps and budgets.
    fn check(&self, record: &Record) -> Result<(), ApplyError> {
        match record {
            Record::Price(row) => {
                sequence("price row", next_id(self.prices.len()), row.id)?;
                row.validate().map_err(invalid)
            }
            Record::Programme(p) => {
                p.validate().map_err(invalid)?;
                if self.programmes.contains_key(&p.id) {
                    return Err(invalid(ProgrammeError::Duplicate(p.id.clone())));
                }
                Ok(())
            }
            Record::Grant(g) => {
                sequence("grant", next_id(self.grants.len()), g.id)?;
                self.check_grant(&g.programme, &g.tenant, g.amount, g.at)
                    .map_err(invalid)
            }
            Record::Line(l) => self.check_line(l),
            Record::Transaction(tx) => self.check_tx(tx),
            Record::Expired { programme, .. } => match self.programmes.get(programme) {
                None => Err(invalid(format!("no programme {programme}"))),
                Some(p) if p.expired_at.is_some() => {
                    Err(invalid(format!("programme {programme} already expired")))
                }
                Some(_) => Ok(()),
            },
            Record::Budget(b) if b.monthly_limit < Money::ZERO => {
                Err(invalid(BudgetError::Negative(b.monthly_limit)))
            }
            Record::Budget(_) => Ok(()),
        }
    }

    fn check_line(&self, l: &BillLine) -> Result<(), ApplyError> {
        sequence("line", next_id(self.lines.len()), l.id)?;
        sequence("line's transaction", self.ledger.next_id(), l.tx)?;
        if let Some(&id) = self.by_key.get(&(l.usage.job, l.usage.attempt))
            && !self.voided.contains_key(&id)
        {
            return Err(invalid(format!(
                "job {} attempt {} is already billed as line {id}",
                l.usage.job, l.usage.attempt
            )));
        }
        if l.subsidy < Money::ZERO
            || l.payable < Money::ZERO
            || l.gross.0 != l.subsidy.0 + l.payable.0
        {
            return Err(invalid(format!(
                "line {}: gross {} is not subsidy {} + payable {}, or one is negative",
                l.id, l.gross, l.subsidy, l.payable
            )));
        }
        match &l.programme {
            None if l.subsidy != Money::ZERO => Err(invalid(format!(
                "line {} has a subsidy but no programme",
                l.id
            ))),
            None => Ok(()),
            Some(p) => {
                let st = self
                    .programmes
                    .get(p)
                    .ok_or_else(|| invalid(format!("line {}: no programme {p}", l.id)))?;
                if l.subsidy > st.balance(&l.usage.tenant) || l.subsidy > st.budget_left() {
                    return Err(invalid(format!(
                        "line {}: subsidy {} exceeds what programme {p} has left for tenant {}",
                        l.id, l.subsidy, l.usage.tenant
                    )));
                }
                Ok(())
            }
        }
    }

    /// A transaction fits when it is exactly the one these books would make for its kind.
    fn check_tx(&self, tx: &Transaction) -> Result<(), ApplyError> {
        let id = tx.id();
        sequence("transaction", self.ledger.next_id(), id)?;
        let expected = match tx.kind() {
            TxKind::Funding { programme } => self
                .programmes
                .get(programme)
                .filter(|p| {
                    self.ledger
                        .balance(&Account::ProgrammePool(p.def.id.clone()))
                        == Money::ZERO
                })
                .map(|p| funding_tx(id, tx.at(), &p.def)),
            TxKind::TopUp { tenant } => {
                let amount = tx.amount_for(&Account::TenantWallet(tenant.clone()));
                (amount > Money::ZERO).then(|| top_up_tx(id, tx.at(), tenant, amount))
            }
            TxKind::Billing { line } => self.line(*line).filter(|l| l.tx == id).map(billing_tx),
            TxKind::Expiry { programme } => self
                .programmes
                .get(programme)
                .filter(|p| p.expired_at.is_some())
                .and_then(|_| self.sweep_tx(id, tx.at(), programme)),
            TxKind::Reversal { of, reason } => {
                let original = self
                    .ledger
                    .get(*of)
                    .ok_or_else(|| invalid(LedgerError::Unknown(*of)))?;
                self.check_reversible(original).map_err(invalid)?;
                Some(original.reversal(id, tx.at(), reason.clone()))
            }
        };
        if expected.as_ref() != Some(tx) {
            return Err(invalid(format!(
                "transaction {id} is not the {} transaction these books would make",
                tx.kind().name()
            )));
        }
        Ok(())
    }

    /// Returns what is left in an expired programme's pool to the platform.
    fn sweep_tx(&self, id: TxId, at: Timestamp, programme: &ProgrammeId) -> Option<Transaction> {
        let pool = Account::ProgrammePool(programme.clone());
        let left = self.ledger.balance(&pool);
        let kind = TxKind::Expiry {
            programme: programme.clone(),
        };
        (left != Money::ZERO).then(|| transfer(id, at, kind, pool, Account::Platform, left))
    }

    /// Changes the state by a checked record.
    fn absorb(&mut self, record: Record) {
        match record {
            Record::Price(row) => self.prices.push(row),
            Record::Programme(def) => {
                let st = ProgState {
                    def,
                    expired_at: None,
                    granted: Money::ZERO,
                    paid: Money::ZERO,
                    draws: BTreeMap::new(),
                };
                self.programmes.insert(st.def.id.clone(), st);
            }
            Record::Grant(g) => {
                let st = self.programmes.get_mut(&g.programme).expect("checked");
                st.granted.0 += g.amount.0;
                st.draws.entry(g.tenant.clone()).or_default().granted.0 += g.amount.0;
                self.grants.push(g);
            }
            Record::Line(l) => {
                if let Some(p) = &l.programme {
                    self.draw(p, &l.usage.tenant, l.subsidy.0);
                }
                self.by_key.insert((l.usage.job, l.usage.attempt), l.id);
                self.lines.push(l);
            }
            Record::Transaction(tx) => {
                if let TxKind::Reversal { of, .. } = *tx.kind() {
                    self.reversed.insert(of, tx.id());
                    if let Some(&TxKind::Billing { line }) = self.ledger.get(of).map(|t| t.kind()) {
                        let l = &self.lines[(line - 1) as usize];
                        if let Some(p) = l.programme.clone() {
                            let (tenant, subsidy) = (l.usage.tenant.clone(), l.subsidy.0);
                            self.draw(&p, &tenant, -subsidy);
                        }
                        self.voided.insert(line, tx.id());
                    }
                }
                self.ledger.push(tx);
            }
            Record::Expired { programme, at } => {
                self.programmes
                    .get_mut(&programme)
                    .expect("checked")
                    .expired_at = Some(at);
            }
            Record::Budget(b) => {
                self.budgets.insert(b.tenant.clone(), b);
            }
        }
    }

    /// Adds `amount` (negative: gives back) to what a tenant drew from a programme.
    fn draw(&mut self, programme: &ProgrammeId, tenant: &TenantId, amount: i64) {
        let st = self.programmes.get_mut(programme).expect("checked");
        st.paid.0 += amount;
        st.draws.entry(tenant.clone()).or_default().paid.0 += amount;
    }
}

/// Moves `amount` from one account to another.
fn transfer(
    id: TxId,
    at: Timestamp,
    kind: TxKind,
    from: Account,
    to: Account,
    amount: Money,
) -> Transaction {
    let postings = vec![posting(from, Money(-amount.0)), posting(to, amount)];
    Transaction::new(id, at, kind, postings).expect("a transfer is balanced")
}

/// Funds a programme's pool with its budget.
fn funding_tx(id: TxId, at: Timestamp, p: &Programme) -> Transaction {
    let kind = TxKind::Funding {
        programme: p.id.clone(),
    };
    let pool = Account::ProgrammePool(p.id.clone());
    transfer(id, at, kind, Account::Platform, pool, p.budget)
}

/// Money paid into a tenant's wallet.
fn top_up_tx(id: TxId, at: Timestamp, tenant: &TenantId, amount: Money) -> Transaction {
    let kind = TxKind::TopUp {
        tenant: tenant.clone(),
    };
    let wallet = Account::TenantWallet(tenant.clone());
    transfer(id, at, kind, Account::Platform, wallet, amount)
}

/// A line's billing: wallet -payable, pool -subsidy (with a programme), receivable +gross.
fn billing_tx(l: &BillLine) -> Transaction {
    let mut postings = vec![
        posting(
            Account::TenantWallet(l.usage.tenant.clone()),
            Money(-l.payable.0),
        ),
        posting(Account::CenterReceivable(l.usage.center.clone()), l.gross),
    ];
    if let Some(p) = &l.programme {
        postings.push(posting(
            Account::ProgrammePool(p.clone()),
            Money(-l.subsidy.0),
        ));
    }
    let kind = TxKind::Billing { line: l.id };
    Transaction::new(l.tx, l.usage.ended_at, kind, postings).expect("gross = payable + subsidy")
}

/// `unit x card_seconds / 3600`, rounded half away from zero.
fn gross_of(unit: UnitPrice, card_seconds: u64) -> Money {
    let cs = i64::try_from(card_seconds).unwrap_or(i64::MAX);
    unit.per_card_hour.mul_div(cs, 3600)
}

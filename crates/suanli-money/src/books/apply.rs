//! Applying records: whether one fits the books (ids in sequence, references exist, amounts
//! within caps and budgets, transactions exactly as the books would make them), how it changes
//! them, and the transactions the books make.

use std::collections::BTreeMap;

use suanli_types::{Money, TenantId, Timestamp};

use crate::books::budget::BudgetError;
use crate::books::{
    ApplyError, BillLine, Books, MAX_LINE_AMOUNT, ProgState, Record, in_time_range, next_id,
};
use crate::ledger::{Account, LedgerError, Posting, Transaction, TxId, TxKind};
use crate::month::Month;
use crate::voucher::{Programme, ProgrammeError, ProgrammeId};

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
    /// Whether a record fits these books: ids in sequence, references exist, amounts within
    /// caps and budgets.
    pub(super) fn check(&self, record: &Record) -> Result<(), ApplyError> {
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
        let u = &l.usage;
        if !in_time_range(u.started_at) || !in_time_range(u.ended_at) || u.ended_at < u.started_at {
            return Err(invalid(format!(
                "line {}: usage from {} to {} is outside the times the books take",
                l.id, u.started_at, u.ended_at
            )));
        }
        if l.month != Month::of(u.ended_at) {
            return Err(invalid(format!(
                "line {}: month {} is not the month of its end {}",
                l.id, l.month, u.ended_at
            )));
        }
        if l.gross > MAX_LINE_AMOUNT
            || l.subsidy < Money::ZERO
            || l.payable < Money::ZERO
            || l.subsidy.0.checked_add(l.payable.0) != Some(l.gross.0)
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
        for p in tx.postings() {
            if self
                .ledger
                .balance(&p.account)
                .0
                .checked_add(p.amount.0)
                .is_none()
            {
                return Err(invalid(format!(
                    "transaction {id} would take the balance of {:?} out of range",
                    p.account
                )));
            }
        }
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
    pub(super) fn sweep_tx(
        &self,
        id: TxId,
        at: Timestamp,
        programme: &ProgrammeId,
    ) -> Option<Transaction> {
        let pool = Account::ProgrammePool(programme.clone());
        let left = self.ledger.balance(&pool);
        let kind = TxKind::Expiry {
            programme: programme.clone(),
        };
        (left != Money::ZERO).then(|| transfer(id, at, kind, pool, Account::Platform, left))
    }

    /// Changes the state by a checked record.
    pub(super) fn absorb(&mut self, record: Record) {
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
                *self
                    .spent
                    .entry((l.usage.tenant.clone(), l.month))
                    .or_default() += l.payable.0;
                self.lines.push(l);
            }
            Record::Transaction(tx) => {
                if let TxKind::Reversal { of, .. } = *tx.kind() {
                    self.reversed.insert(of, tx.id());
                    if let Some(&TxKind::Billing { line }) = self.ledger.get(of).map(|t| t.kind()) {
                        let l = &self.lines[(line - 1) as usize];
                        let key = (l.usage.tenant.clone(), l.month);
                        let payable = l.payable.0;
                        if let Some(p) = l.programme.clone() {
                            let (tenant, subsidy) = (l.usage.tenant.clone(), l.subsidy.0);
                            self.draw(&p, &tenant, -subsidy);
                        }
                        if self.voided.insert(line, tx.id()).is_none() {
                            *self.spent.entry(key).or_default() -= payable;
                        }
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
pub(super) fn funding_tx(id: TxId, at: Timestamp, p: &Programme) -> Transaction {
    let kind = TxKind::Funding {
        programme: p.id.clone(),
    };
    let pool = Account::ProgrammePool(p.id.clone());
    transfer(id, at, kind, Account::Platform, pool, p.budget)
}

/// Money paid into a tenant's wallet.
pub(super) fn top_up_tx(id: TxId, at: Timestamp, tenant: &TenantId, amount: Money) -> Transaction {
    let kind = TxKind::TopUp {
        tenant: tenant.clone(),
    };
    let wallet = Account::TenantWallet(tenant.clone());
    transfer(id, at, kind, Account::Platform, wallet, amount)
}

/// A line's billing: wallet -payable, pool -subsidy (with a programme), receivable +gross.
pub(super) fn billing_tx(l: &BillLine) -> Transaction {
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

//! The double-entry ledger: append-only, integer, every transaction balanced.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, Money, TenantId, Timestamp};

use crate::books::LineId;
use crate::voucher::ProgrammeId;

/// A transaction's number, allocated in order from 1.
pub type TxId = u64;

/// An account of the ledger. Balances read as what the account holds or is owed: a wallet is
/// the tenant's prepaid money (negative: the tenant owes), a receivable what the platform owes
/// the center, a pool a programme's unspent budget, and the platform the counterpart of money
/// entering or leaving the network.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "kebab-case")]
pub enum Account {
    /// A tenant's prepaid money; negative when the tenant owes.
    TenantWallet(TenantId),
    /// What the platform owes a center.
    CenterReceivable(CenterId),
    /// A programme's unspent budget.
    ProgrammePool(ProgrammeId),
    /// The counterpart of money entering or leaving the network.
    Platform,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::TenantWallet(t) => write!(f, "wallet:{t}"),
            Account::CenterReceivable(c) => write!(f, "receivable:{c}"),
            Account::ProgrammePool(p) => write!(f, "pool:{p}"),
            Account::Platform => f.write_str("platform"),
        }
    }
}

/// One leg of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    pub amount: Money,
}

/// Why a transaction exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TxKind {
    /// A programme's budget moved from the platform into its pool.
    Funding { programme: ProgrammeId },
    /// Money paid into a tenant's wallet.
    TopUp { tenant: TenantId },
    /// A bill line.
    Billing { line: LineId },
    /// A programme's unused pool returned to the platform at its end.
    Expiry { programme: ProgrammeId },
    /// A correction: the exact negation of transaction `of`.
    Reversal { of: TxId, reason: String },
}

impl TxKind {
    /// Short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            TxKind::Funding { .. } => "funding",
            TxKind::TopUp { .. } => "top-up",
            TxKind::Billing { .. } => "billing",
            TxKind::Expiry { .. } => "expiry",
            TxKind::Reversal { .. } => "reversal",
        }
    }
}

/// A balanced set of postings. The only ways to get one ([`Transaction::new`] and deserialising)
/// check that the postings sum to zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TxParts")]
pub struct Transaction {
    id: TxId,
    at: Timestamp,
    kind: TxKind,
    postings: Vec<Posting>,
}

#[derive(Deserialize)]
struct TxParts {
    id: TxId,
    at: Timestamp,
    kind: TxKind,
    postings: Vec<Posting>,
}

impl TryFrom<TxParts> for Transaction {
    type Error = LedgerError;
    fn try_from(p: TxParts) -> Result<Self, Self::Error> {
        Transaction::new(p.id, p.at, p.kind, p.postings)
    }
}

/// A ledger operation that cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("a transaction needs at least one posting")]
    NoPostings,
    #[error("postings sum to {0} yuan, not zero")]
    Unbalanced(Money),
    #[error("amount must be positive, got {0} yuan")]
    Amount(Money),
    #[error("no transaction {0}")]
    Unknown(TxId),
    #[error("transaction {tx} was already reversed by transaction {by}")]
    AlreadyReversed { tx: TxId, by: TxId },
    #[error("transaction {tx} is a {kind} transaction; only billing and top-ups can be reversed")]
    NotReversible { tx: TxId, kind: &'static str },
}

impl Transaction {
    /// A transaction; `Err` unless there is a posting and the postings sum to zero.
    pub fn new(
        id: TxId,
        at: Timestamp,
        kind: TxKind,
        postings: Vec<Posting>,
    ) -> Result<Self, LedgerError> {
        if postings.is_empty() {
            return Err(LedgerError::NoPostings);
        }
        let sum: i128 = postings.iter().map(|p| i128::from(p.amount.0)).sum();
        if sum != 0 {
            let clamped = sum.clamp(i64::MIN.into(), i64::MAX.into()) as i64;
            return Err(LedgerError::Unbalanced(Money(clamped)));
        }
        Ok(Transaction {
            id,
            at,
            kind,
            postings,
        })
    }

    /// The exact negation of this transaction, naming it.
    pub(crate) fn reversal(&self, id: TxId, at: Timestamp, reason: String) -> Transaction {
        let postings = self
            .postings
            .iter()
            .map(|p| Posting {
                account: p.account.clone(),
                amount: Money(-p.amount.0),
            })
            .collect();
        Transaction {
            id,
            at,
            kind: TxKind::Reversal {
                of: self.id,
                reason,
            },
            postings,
        }
    }

    /// The transaction's number.
    pub fn id(&self) -> TxId {
        self.id
    }
    /// When it was made (for billing: the usage's end).
    pub fn at(&self) -> Timestamp {
        self.at
    }
    /// Why it exists.
    pub fn kind(&self) -> &TxKind {
        &self.kind
    }
    /// Its postings, summing to zero.
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }
    /// The amount posted to `account` (zero if none).
    pub fn amount_for(&self, account: &Account) -> Money {
        Money(
            self.postings
                .iter()
                .filter(|p| &p.account == account)
                .map(|p| p.amount.0)
                .sum(),
        )
    }
}

/// The append-only list of transactions and the balances derived from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    txs: Vec<Transaction>,
    balances: BTreeMap<Account, Money>,
}

impl Ledger {
    /// Every transaction, in order (transaction `n` is at index `n - 1`).
    pub fn transactions(&self) -> &[Transaction] {
        &self.txs
    }

    /// A transaction by id.
    pub fn get(&self, id: TxId) -> Option<&Transaction> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.txs.get(i)
    }

    /// The balance of an account: the sum of its postings.
    pub fn balance(&self, account: &Account) -> Money {
        self.balances.get(account).copied().unwrap_or(Money::ZERO)
    }

    /// Every account that has postings, with its balance.
    pub fn balances(&self) -> impl Iterator<Item = (&Account, Money)> {
        self.balances.iter().map(|(a, m)| (a, *m))
    }

    /// Sum of all balances; zero whenever every transaction is balanced.
    pub fn total(&self) -> i128 {
        self.balances.values().map(|m| i128::from(m.0)).sum()
    }

    pub(crate) fn next_id(&self) -> TxId {
        self.txs.len() as TxId + 1
    }

    pub(crate) fn push(&mut self, tx: Transaction) {
        for p in &tx.postings {
            let b = self.balances.entry(p.account.clone()).or_default();
            b.0 += p.amount.0;
        }
        self.txs.push(tx);
    }
}

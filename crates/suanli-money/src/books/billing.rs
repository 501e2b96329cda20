//! Billing and quotes: a usage priced by the row in force when it started, with the subsidy of
//! the one programme that gives the most.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, Money, TenantId, Timestamp};

use crate::books::apply::billing_tx;
use crate::books::{BillLine, Books, LineId, Record, Usage, next_id};
use crate::month::Month;
use crate::price::UnitPrice;
use crate::voucher::ProgrammeId;
use crate::{BP, Directory};

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
    #[error("usage time {at} is outside the times the books take (1970 to 9999)")]
    TimeOutOfRange { at: Timestamp },
    #[error("a line of {gross} yuan is more than the books take for one line")]
    AmountOutOfRange { gross: Money },
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

/// The subsidy a programme gives a line.
struct Pick {
    programme: ProgrammeId,
    rate_bp: u32,
    amount: Money,
}

/// What to price: `card_seconds` of `sku` at `center` for `tenant`, by the price row in force at
/// `start`, with the subsidy of a programme valid at `subsidy_at`.
struct Pricing<'a> {
    tenant: &'a TenantId,
    center: &'a CenterId,
    sku: &'a str,
    spot: bool,
    card_seconds: u64,
    start: Timestamp,
    subsidy_at: Timestamp,
}

impl Books {
    /// The programme giving the largest subsidy on `gross` (ties: smaller id), if any gives one.
    fn best_subsidy(&self, what: &Pricing, gross: Money, dir: &impl Directory) -> Option<Pick> {
        let tenant = what.tenant;
        let category = dir.category(tenant)?;
        let domestic = dir.is_domestic(what.sku);
        let affiliated = dir.affiliated(tenant, what.center);
        self.programmes
            .values()
            .filter(|p| {
                p.expired_at.is_none()
                    && p.def.is_valid_at(what.subsidy_at)
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

    /// The price after vouchers; `None` when no price row is in force at the start.
    fn price(&self, what: &Pricing, dir: &impl Directory) -> Option<Quote> {
        let unit = self.price_at(what.center, what.sku, what.start, what.spot)?;
        let gross = gross_of(unit, what.card_seconds);
        let pick = self.best_subsidy(what, gross, dir);
        let subsidy = pick.as_ref().map_or(Money::ZERO, |p| p.amount);
        Some(Quote {
            unit,
            card_seconds: what.card_seconds,
            gross,
            rate_bp: pick.as_ref().map_or(0, |p| p.rate_bp),
            programme: pick.map(|p| p.programme),
            subsidy,
            payable: Money(gross.0 - subsidy.0),
        })
    }

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
        for at in [usage.started_at, usage.ended_at, usage.priced_at()] {
            if !crate::books::in_time_range(at) {
                return Err(BillError::TimeOutOfRange { at });
            }
        }
        let ms = usage.ended_at.millis_since(usage.started_at) as u128;
        let max = u64::try_from((ms * u128::from(usage.cards)).div_ceil(1000)).unwrap_or(u64::MAX);
        if usage.card_seconds > max {
            return Err(BillError::TooManyCardSeconds {
                card_seconds: usage.card_seconds,
                max,
            });
        }
        let what = Pricing {
            tenant: &usage.tenant,
            center: &usage.center,
            sku: &usage.sku,
            spot: usage.spot,
            card_seconds: usage.card_seconds,
            start: usage.priced_at(),
            subsidy_at: usage.ended_at,
        };
        let q = self.price(&what, dir).ok_or_else(|| BillError::NoPrice {
            center: usage.center.clone(),
            sku: usage.sku.clone(),
            at: usage.priced_at(),
        })?;
        if q.gross > crate::books::MAX_LINE_AMOUNT {
            return Err(BillError::AmountOutOfRange { gross: q.gross });
        }
        let line = BillLine {
            id: next_id(self.lines.len()),
            tx: self.ledger.next_id(),
            month: Month::of(usage.ended_at),
            usage: usage.clone(),
            unit: q.unit,
            gross: q.gross,
            programme: q.programme,
            rate_bp: q.rate_bp,
            subsidy: q.subsidy,
            payable: q.payable,
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
        let what = Pricing {
            tenant: &req.tenant,
            center: &req.center,
            sku: &req.sku,
            spot: req.spot,
            card_seconds: u64::from(req.cards).saturating_mul(req.seconds),
            start: req.at,
            subsidy_at: req.at,
        };
        self.price(&what, dir).ok_or_else(|| QuoteError::NoPrice {
            center: req.center.clone(),
            sku: req.sku.clone(),
            at: req.at,
        })
    }
}

/// `unit x card_seconds / 3600`, rounded half away from zero.
fn gross_of(unit: UnitPrice, card_seconds: u64) -> Money {
    let cs = i64::try_from(card_seconds).unwrap_or(i64::MAX);
    unit.per_card_hour.mul_div(cs, 3600)
}

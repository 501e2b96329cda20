//! Reports: tenant invoices, center settlement statements and programme reports, as JSON or CSV.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, Money, TenantId, Timestamp};

use crate::books::{BillLine, Books};
use crate::month::Month;
use crate::voucher::ProgrammeId;

/// Sums over a set of lines; `gross = subsidy + payable` always holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub lines: u64,
    pub card_seconds: u64,
    pub gross: Money,
    pub subsidy: Money,
    pub payable: Money,
}

impl Totals {
    fn of<'a>(lines: impl IntoIterator<Item = &'a BillLine>) -> Totals {
        lines.into_iter().fold(Totals::default(), |t, l| Totals {
            lines: t.lines + 1,
            card_seconds: t.card_seconds + l.usage.card_seconds,
            gross: Money(t.gross.0 + l.gross.0),
            subsidy: Money(t.subsidy.0 + l.subsidy.0),
            payable: Money(t.payable.0 + l.payable.0),
        })
    }
}

/// A tenant's standing lines that ended in a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub tenant: TenantId,
    pub month: Month,
    pub lines: Vec<BillLine>,
    /// `totals.payable` is what the tenant owes; `totals.subsidy` what vouchers paid.
    pub totals: Totals,
}

/// What the platform owes a center for a month: `totals.gross` of its standing lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub center: CenterId,
    pub month: Month,
    pub lines: Vec<BillLine>,
    pub totals: Totals,
}

/// One tenant's use of a programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantDraw {
    pub tenant: TenantId,
    pub granted: Money,
    /// Subsidy paid on the tenant's standing lines.
    pub paid: Money,
    /// What the tenant can still draw (zero once the programme expired).
    pub balance: Money,
    /// What lapsed when the programme expired.
    pub expired: Money,
}

/// A programme's budget, grants and payouts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgrammeReport {
    pub programme: ProgrammeId,
    pub issuer: String,
    pub budget: Money,
    pub granted: Money,
    pub paid_out: Money,
    /// `budget - paid_out`.
    pub remaining: Money,
    /// `budget - granted`: what can still be granted.
    pub unallocated: Money,
    pub expired_at: Option<Timestamp>,
    pub tenants: Vec<TenantDraw>,
}

/// Column order of the line CSV of invoices and statements.
pub const LINE_CSV_HEADER: &str = "line,month,job,attempt,tenant,center,sku,cards,started_at,ended_at,card_seconds,spot,price_row,unit_price,gross,programme,rate_bp,subsidy,payable";

/// Column order of the programme report CSV.
pub const PROGRAMME_CSV_HEADER: &str = "programme,tenant,granted,paid,balance,expired";

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_row(fields: &[String]) -> String {
    let mut row = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    row.push('\n');
    row
}

/// Pretty-printed JSON of a report (reports hold only strings, numbers and lists).
fn json(report: &impl Serialize) -> String {
    serde_json::to_string_pretty(report).expect("reports serialise")
}

fn lines_csv(lines: &[BillLine]) -> String {
    let mut out = format!("{LINE_CSV_HEADER}\n");
    for l in lines {
        let u = &l.usage;
        out += &csv_row(&[
            l.id.to_string(),
            l.month.to_string(),
            u.job.to_string(),
            u.attempt.to_string(),
            u.tenant.to_string(),
            u.center.to_string(),
            u.sku.clone(),
            u.cards.to_string(),
            u.started_at.to_string(),
            u.ended_at.to_string(),
            u.card_seconds.to_string(),
            u.spot.to_string(),
            l.unit.row.to_string(),
            l.unit.per_card_hour.to_string(),
            l.gross.to_string(),
            l.programme
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            l.rate_bp.to_string(),
            l.subsidy.to_string(),
            l.payable.to_string(),
        ]);
    }
    out
}

impl Invoice {
    /// CSV with [`LINE_CSV_HEADER`] and one row per line; amounts in yuan.
    pub fn to_csv(&self) -> String {
        lines_csv(&self.lines)
    }
    /// Pretty-printed JSON; amounts as decimal strings in yuan.
    pub fn to_json(&self) -> String {
        json(self)
    }
}

impl Statement {
    /// CSV with [`LINE_CSV_HEADER`] and one row per line; amounts in yuan.
    pub fn to_csv(&self) -> String {
        lines_csv(&self.lines)
    }
    /// Pretty-printed JSON; amounts as decimal strings in yuan.
    pub fn to_json(&self) -> String {
        json(self)
    }
}

impl ProgrammeReport {
    /// CSV with [`PROGRAMME_CSV_HEADER`] and one row per tenant; amounts in yuan.
    pub fn to_csv(&self) -> String {
        let mut out = format!("{PROGRAMME_CSV_HEADER}\n");
        for t in &self.tenants {
            out += &csv_row(&[
                self.programme.to_string(),
                t.tenant.to_string(),
                t.granted.to_string(),
                t.paid.to_string(),
                t.balance.to_string(),
                t.expired.to_string(),
            ]);
        }
        out
    }
    /// Pretty-printed JSON; amounts as decimal strings in yuan.
    pub fn to_json(&self) -> String {
        json(self)
    }
}

impl Books {
    /// The tenant's invoice for a month: its standing lines that ended in the month.
    pub fn invoice(&self, tenant: &TenantId, month: Month) -> Invoice {
        let (lines, totals) = self.month_lines(month, |l| &l.usage.tenant == tenant);
        Invoice {
            tenant: tenant.clone(),
            month,
            lines,
            totals,
        }
    }

    /// The center's settlement statement for a month.
    pub fn statement(&self, center: &CenterId, month: Month) -> Statement {
        let (lines, totals) = self.month_lines(month, |l| &l.usage.center == center);
        Statement {
            center: center.clone(),
            month,
            lines,
            totals,
        }
    }

    /// The standing lines that ended in `month` and pass `keep`, with their totals.
    fn month_lines(
        &self,
        month: Month,
        keep: impl Fn(&BillLine) -> bool,
    ) -> (Vec<BillLine>, Totals) {
        let lines: Vec<BillLine> = self
            .live_lines()
            .filter(|l| l.month == month && keep(l))
            .cloned()
            .collect();
        let totals = Totals::of(&lines);
        (lines, totals)
    }

    /// The programme's report; `None` for an unknown programme.
    pub fn programme_report(&self, programme: &ProgrammeId) -> Option<ProgrammeReport> {
        let st = self.programmes.get(programme)?;
        let tenants = st
            .draws
            .iter()
            .map(|(tenant, d)| {
                let unused = Money(d.granted.0 - d.paid.0);
                let expired = st.expired_at.is_some();
                TenantDraw {
                    tenant: tenant.clone(),
                    granted: d.granted,
                    paid: d.paid,
                    balance: if expired { Money::ZERO } else { unused },
                    expired: if expired { unused } else { Money::ZERO },
                }
            })
            .collect();
        Some(ProgrammeReport {
            programme: programme.clone(),
            issuer: st.def.issuer.clone(),
            budget: st.def.budget,
            granted: st.granted,
            paid_out: st.paid,
            remaining: Money(st.def.budget.0 - st.paid.0),
            unallocated: Money(st.def.budget.0 - st.granted.0),
            expired_at: st.expired_at,
            tenants,
        })
    }
}

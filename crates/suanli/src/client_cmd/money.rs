//! Money: `bill`, `statement`, `vouchers` for tenants, centers and supervisors; the operator's
//! `admin price-set`, `prices`, `programme-create`, `grant`, `budget-set`, `programme-report`,
//! `quarantine`.

mod explain;
mod programme;

use clap::Subcommand;
use suanli_client::Client;
use suanli_money::Month;
use suanli_proto::{
    AtLimit, BillLineView, BudgetRequest, GrantRequest, PriceRequest, PriceView,
    ProgrammeReportView, QuarantineView, TotalsView, VouchersView,
};
use suanli_types::{CenterId, Money, TenantId, Timestamp};

use super::exit::Exit;
use super::output::{self as out, Export, Format, Table, joined, or_dash, row};
use crate::config::ConnArgs;
pub use programme::{ProgrammeArgs, this_year};
use programme::{build_programme, parse_time};

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A tenant's invoice for a month: a line per job attempt with gross, voucher subsidy, payable
    #[command(args_conflicts_with_subcommands = true)]
    Bill {
        #[command(subcommand)]
        verb: Option<explain::BillVerb>,
        /// The tenant [default: your token's tenant]
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        doc: Document,
    },
    /// A center's settlement statement for a month (operator, supervisor, the center's site)
    Statement {
        /// The center
        #[arg(long)]
        center: String,
        #[command(flatten)]
        doc: Document,
    },
    /// Voucher programmes, and your grants and balances
    Vouchers {
        #[command(flatten)]
        out: Format,
    },
}

/// The month of a bill or statement, and how to print it.
#[derive(clap::Args, Debug)]
pub struct Document {
    /// The month, YYYY-MM [default: the current month, UTC]
    #[arg(long, value_name = "YYYY-MM")]
    month: Option<Month>,
    #[command(flatten)]
    out: Export,
}

#[derive(Subcommand, Debug)]
pub enum Admin {
    /// Set the list price of a SKU at a center, yuan per card-hour
    PriceSet {
        #[arg(long)]
        center: String,
        #[arg(long)]
        sku: String,
        #[arg(long, value_name = "YUAN")]
        price: Money,
        /// Discount on spot (preemptible) usage, basis points of the list price (2500 = 25% off)
        #[arg(long, value_name = "BP")]
        spot_discount_bp: Option<u32>,
        /// When it takes effect: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC) [default: now]
        #[arg(long, value_name = "DATE", value_parser = parse_time)]
        effective_from: Option<Timestamp>,
    },
    /// List the price table
    Prices {
        #[command(flatten)]
        out: Format,
    },
    /// Create and fund a voucher programme from flags and/or a TOML file
    ProgrammeCreate(Box<ProgrammeArgs>),
    /// Grant a tenant an amount of a voucher programme
    Grant {
        #[arg(long)]
        programme: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "YUAN")]
        amount: Money,
    },
    /// Set a tenant's monthly budget (what it pays after vouchers)
    BudgetSet {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "YUAN")]
        limit: Money,
        /// At 100%: stop (cancel its jobs) or let-finish (refuse new jobs only)
        #[arg(long, default_value = "stop", value_parser = parse_at_limit)]
        at_limit: AtLimit,
    },
    /// A programme's budget, grants and payouts per tenant
    ProgrammeReport {
        id: String,
        #[command(flatten)]
        out: Export,
    },
    /// Stored money records that do not replay: the hub started without them
    Quarantine {
        #[command(flatten)]
        format: Format,
    },
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let c = conn.client()?;
        match self {
            Command::Bill {
                verb: Some(verb), ..
            } => verb.run(&c).await?,
            Command::Bill {
                verb: None,
                tenant,
                doc,
            } => {
                let (tenant, month) = (tenant.as_deref(), doc.month.map(|m| m.to_string()));
                if doc.out.csv {
                    out::print(&c.bill_csv(tenant, month.as_deref()).await?)?;
                } else {
                    let inv = c.bill(tenant, month.as_deref()).await?;
                    out::show(doc.out.format(), &inv, |inv| {
                        describe_lines(
                            &format!(
                                "Invoice of {} for {} (yuan; card-hours = cards x hours)",
                                inv.tenant, inv.month
                            ),
                            &inv.lines,
                            Party::Center,
                            &inv.totals,
                            &format!(
                                "To pay: {} yuan (gross {} - voucher subsidy {})",
                                inv.totals.payable, inv.totals.gross, inv.totals.subsidy
                            ),
                        )
                    })?;
                }
            }
            Command::Statement { center, doc } => {
                let month = doc.month.map(|m| m.to_string());
                if doc.out.csv {
                    out::print(&c.statement_csv(&center, month.as_deref()).await?)?;
                } else {
                    let st = c.statement(&center, month.as_deref()).await?;
                    out::show(doc.out.format(), &st, |st| {
                        describe_lines(
                            &format!(
                                "Settlement statement of center {} for {} (yuan)",
                                st.center, st.month
                            ),
                            &st.lines,
                            Party::Tenant,
                            &st.totals,
                            &format!(
                                "Owed to the center: {} yuan (tenants pay {}, voucher programmes {})",
                                st.totals.gross, st.totals.payable, st.totals.subsidy
                            ),
                        )
                    })?;
                }
            }
            Command::Vouchers { out } => out::show(out, &c.vouchers().await?, describe_vouchers)?,
        }
        Ok(Exit::Success)
    }
}

impl Admin {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Admin::PriceSet {
                center,
                sku,
                price,
                spot_discount_bp,
                effective_from,
            } => {
                let req = PriceRequest {
                    center: CenterId::new(center),
                    sku,
                    price_per_card_hour: price,
                    spot_discount_bp,
                    effective_from,
                };
                let r = c.set_price(&req).await?;
                out::line(format!(
                    "Price row {}: {} at {} costs {} yuan per card-hour from {}",
                    r.id, r.sku, r.center, r.price_per_card_hour, r.effective_from
                ))?;
            }
            Admin::Prices { out } => out::show(out, &c.prices().await?, |p| describe_prices(p))?,
            Admin::ProgrammeCreate(a) => {
                let p = c.create_programme(&build_programme(*a)?).await?;
                let s = &p.spec;
                out::line(format!(
                    "Created programme {} ({}): budget {} yuan, {} of gross, cap {} yuan per tenant, {} to {}",
                    s.id,
                    s.issuer,
                    s.budget,
                    pct(s.base_rate_bp),
                    s.cap_per_tenant,
                    date(s.valid_from),
                    date(s.valid_until)
                ))?;
            }
            Admin::Grant {
                programme,
                tenant,
                amount,
            } => {
                let req = GrantRequest {
                    tenant: TenantId::new(tenant),
                    amount,
                };
                let g = c.grant(&programme, &req).await?;
                out::line(format!(
                    "Granted {} yuan of programme {} to tenant {} (grant {})",
                    g.amount, g.programme, g.tenant, g.id
                ))?;
            }
            Admin::BudgetSet {
                tenant,
                limit,
                at_limit,
            } => {
                let req = BudgetRequest {
                    monthly_limit: limit,
                    at_limit,
                };
                let b = c.set_budget(&tenant, &req).await?;
                let policy = match b.at_limit {
                    AtLimit::Stop => "stop its jobs",
                    AtLimit::LetFinish => "let running jobs finish",
                };
                out::line(format!(
                    "Budget of {}: {} yuan a month; at 100%: {policy}. Spent in {}: {} ({})",
                    b.tenant, b.monthly_limit, b.month, b.spent, b.level
                ))?;
            }
            Admin::ProgrammeReport { id, out } => {
                if out.csv {
                    out::print(&c.programme_report_csv(&id).await?)?;
                } else {
                    let r = c.programme_report(&id).await?;
                    out::show(out.format(), &r, describe_report)?;
                }
            }
            Admin::Quarantine { format } => {
                let q = c.quarantine().await?;
                out::show(format, &q, describe_quarantine)?;
            }
        }
        Ok(())
    }
}

fn parse_at_limit(s: &str) -> Result<AtLimit, String> {
    match s {
        "stop" => Ok(AtLimit::Stop),
        "let-finish" => Ok(AtLimit::LetFinish),
        _ => Err(format!("expected stop or let-finish, got {s:?}")),
    }
}

/// Basis points as a percentage: `5000` -> `50%`, `1250` -> `12.5%`.
fn pct(bp: u32) -> String {
    match bp % 100 {
        0 => format!("{}%", bp / 100),
        r if r % 10 == 0 => format!("{}.{}%", bp / 100, r / 10),
        r => format!("{}.{r:02}%", bp / 100),
    }
}

/// Card-seconds as card-hours with four decimals, in integers.
fn card_hours(card_seconds: u64) -> String {
    let tenth_ms = u128::from(card_seconds) * 10_000;
    let q = (tenth_ms + 1800) / 3600;
    format!("{}.{:04}", q / 10_000, q % 10_000)
}

fn date(t: Timestamp) -> String {
    t.to_string().chars().take(10).collect()
}

/// Whom a table of bill lines names beside each line: the center (on an invoice) or the tenant
/// (on a center's statement).
#[derive(Clone, Copy)]
enum Party {
    Center,
    Tenant,
}

/// A table of bill lines with a totals row, between a title and a footer.
fn describe_lines(
    title: &str,
    lines: &[BillLineView],
    party: Party,
    totals: &TotalsView,
    footer: &str,
) -> String {
    if lines.is_empty() {
        return format!("{title}\nNo billed usage this month.\n");
    }
    let who = match party {
        Party::Center => "CENTER",
        Party::Tenant => "TENANT",
    };
    let mut t = Table::new(&format!(
        "JOB ATTEMPT {who} SKU CARD-H UNIT-PRICE GROSS SUBSIDY PROGRAMME PAYABLE"
    ));
    for l in lines {
        let who = match party {
            Party::Center => l.center.to_string(),
            Party::Tenant => l.tenant.to_string(),
        };
        t.push(row![
            l.job,
            l.attempt,
            who,
            l.sku,
            card_hours(l.card_seconds),
            l.unit_price,
            l.gross,
            l.subsidy,
            l.programme.as_deref().unwrap_or("-"),
            l.payable
        ]);
    }
    t.push(row![
        "TOTAL",
        "",
        format!("{} lines", totals.lines),
        "",
        card_hours(totals.card_seconds),
        "",
        totals.gross,
        totals.subsidy,
        "",
        totals.payable
    ]);
    format!("{title}\n{t}{footer}\n")
}

fn describe_vouchers(v: &VouchersView) -> String {
    let mut out = String::new();
    if v.programmes.is_empty() {
        out += "No voucher programmes.\n";
    } else {
        out += "Voucher programmes:\n";
        let mut t = Table::new("ID ISSUER RATE OTHER-RATES CAP/TENANT VALID ELIGIBLE STATUS");
        for p in &v.programmes {
            let s = &p.spec;
            let mut other: Vec<String> = s
                .category_rates
                .iter()
                .map(|r| format!("{} {}", r.category.as_str(), pct(r.rate_bp)))
                .collect();
            other.extend(s.domestic_rate_bp.map(|d| format!("domestic {}", pct(d))));
            let status = match (&p.expired_at, &p.totals) {
                (Some(_), _) => "expired".to_string(),
                (None, Some(t)) => format!("paid {} of {}", t.paid_out, s.budget),
                (None, None) => "open".to_string(),
            };
            t.push(row![
                s.id,
                s.issuer,
                pct(s.base_rate_bp),
                joined(other, ", ", "-"),
                s.cap_per_tenant,
                format!("{} to {}", date(s.valid_from), date(s.valid_until)),
                joined(s.eligible.iter().map(|c| c.as_str()), ",", ""),
                status
            ]);
        }
        out += &t.to_string();
    }
    if v.balances.is_empty() {
        out += "No grants.\n";
    } else {
        out += "Grants and balances (yuan):\n";
        let mut t = Table::new("PROGRAMME TENANT GRANTED PAID BALANCE EXPIRED");
        t.extend(v.balances.iter().map(|b| {
            let d = &b.draw;
            row![
                b.programme,
                d.tenant,
                d.granted,
                d.paid,
                d.balance,
                d.expired
            ]
        }));
        out += &t.to_string();
    }
    out
}

fn describe_prices(prices: &[PriceView]) -> String {
    let mut t =
        Table::new("ID CENTER SKU PRICE(yuan/card-h) SPOT-DISCOUNT EFFECTIVE-FROM IN-FORCE");
    t.extend(prices.iter().map(|r| {
        row![
            r.id,
            r.center,
            r.sku,
            r.price_per_card_hour,
            or_dash(r.spot_discount_bp.map(pct)),
            r.effective_from,
            if r.in_force { "yes" } else { "" }
        ]
    }));
    t.to_string()
}

fn describe_quarantine(q: &QuarantineView) -> String {
    if q.records.is_empty() {
        return "No money record is quarantined: every stored record replays.".into();
    }
    let mut s = format!(
        "{} stored money record(s) do not replay; the hub runs without them:\n",
        q.records.len()
    );
    for r in &q.records {
        s.push_str(&format!(
            "\n#{}: {}\n  {}\n",
            r.position, r.reason, r.record
        ));
    }
    s
}

fn describe_report(r: &ProgrammeReportView) -> String {
    let mut kv = Table::of([
        row!["budget", r.budget],
        row!["granted", r.granted],
        row!["paid out", r.paid_out],
        row!["remaining", r.remaining],
        row!["unallocated", r.unallocated],
    ]);
    kv.extend(r.expired_at.map(|t| row!["expired at", t]));
    let mut out = format!(
        "Programme {} ({}), yuan\n{}",
        r.programme,
        r.issuer,
        kv.indented()
    );
    if !r.tenants.is_empty() {
        let mut t = Table::new("TENANT GRANTED PAID BALANCE EXPIRED");
        t.extend(
            r.tenants
                .iter()
                .map(|d| row![d.tenant, d.granted, d.paid, d.balance, d.expired]),
        );
        out += &t.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(pct(5000), "50%");
        assert_eq!(pct(1250), "12.5%");
        assert_eq!(pct(1234), "12.34%");
        assert_eq!(card_hours(3600), "1.0000");
        assert_eq!(card_hours(1), "0.0003");
        assert_eq!(card_hours(5400), "1.5000");
        assert_eq!(parse_at_limit("let-finish").unwrap(), AtLimit::LetFinish);
        assert!(parse_at_limit("later").is_err());
    }
}

//! Money verbs: `bill`, `statement`, `vouchers`, and the operator's price, programme, grant and
//! budget verbs under `admin`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use suanli_client::Client;
use suanli_money::Month;
use suanli_proto::{
    AtLimit, BillLineView, BudgetRequest, CategoryRateView, GrantRequest, PriceRequest,
    ProgrammeSpec, TotalsView,
};
use suanli_types::{CenterId, Money, TenantCategory, TenantId, Timestamp};

use super::table::{align, header, row};
use super::{Invalid, print_json, read_text};

#[derive(clap::Args, Debug)]
pub struct BillArgs {
    /// The tenant [default: your token's tenant]
    #[arg(long)]
    pub tenant: Option<String>,
    /// The month, YYYY-MM [default: the current month, UTC]
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<Month>,
    /// Print the invoice as JSON
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the invoice as CSV (one row per line)
    #[arg(long)]
    pub csv: bool,
}

#[derive(clap::Args, Debug)]
pub struct StatementArgs {
    /// The center
    #[arg(long)]
    pub center: String,
    /// The month, YYYY-MM [default: the current month, UTC]
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<Month>,
    /// Print the statement as JSON
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the statement as CSV (one row per line)
    #[arg(long)]
    pub csv: bool,
}

#[derive(clap::Args, Debug, Default)]
pub struct ProgrammeArgs {
    /// TOML programme definition; flags given too override its fields
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Programme id, e.g. sz-2026-training
    #[arg(long)]
    pub id: Option<String>,
    /// Who issues it, e.g. "Shenzhen MIIT"
    #[arg(long)]
    pub issuer: Option<String>,
    /// Total budget in yuan
    #[arg(long, value_name = "YUAN")]
    pub budget: Option<Money>,
    /// Share of gross subsidised, in basis points (5000 = 50%)
    #[arg(long, value_name = "BP")]
    pub rate_bp: Option<u32>,
    /// A category's own rate (repeatable), e.g. startup=6000
    #[arg(long, value_name = "CATEGORY=BP", value_parser = parse_category_rate)]
    pub category_rate: Vec<(TenantCategory, u32)>,
    /// Rate for domestic chips, used when higher than the tenant's rate
    #[arg(long, value_name = "BP")]
    pub domestic_rate_bp: Option<u32>,
    /// Most a tenant can be granted, in yuan
    #[arg(long, value_name = "YUAN")]
    pub cap: Option<Money>,
    /// Eligible tenant categories (repeat or comma-separate), e.g. sme,startup,research
    #[arg(long, value_delimiter = ',')]
    pub eligible: Vec<TenantCategory>,
    /// First day (or instant) of validity [default: January 1 of this year, UTC]
    #[arg(long, value_name = "DATE", value_parser = parse_time)]
    pub valid_from: Option<Timestamp>,
    /// First day (or instant) no longer valid [default: January 1 of next year, UTC]
    #[arg(long, value_name = "DATE", value_parser = parse_time)]
    pub valid_until: Option<Timestamp>,
    /// No subsidy at centers whose owner is affiliated with the tenant
    #[arg(long)]
    pub exclude_affiliated: bool,
}

/// A programme definition file; dates as `YYYY-MM-DD`, amounts as decimal yuan strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgrammeFile {
    id: Option<String>,
    issuer: Option<String>,
    budget: Option<Money>,
    base_rate_bp: Option<u32>,
    #[serde(default)]
    category_rates: BTreeMap<String, u32>,
    domestic_rate_bp: Option<u32>,
    cap_per_tenant: Option<Money>,
    #[serde(default)]
    eligible: Vec<TenantCategory>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    #[serde(default)]
    exclude_affiliated: bool,
}

fn parse_category_rate(s: &str) -> Result<(TenantCategory, u32), String> {
    let (c, bp) = s
        .split_once('=')
        .ok_or_else(|| format!("expected CATEGORY=BP, got {s:?}"))?;
    let c: TenantCategory = c.trim().parse().map_err(|e| format!("{e}"))?;
    let bp: u32 = bp
        .trim()
        .parse()
        .map_err(|_| format!("not basis points: {bp:?}"))?;
    Ok((c, bp))
}

pub fn parse_at_limit(s: &str) -> Result<AtLimit, String> {
    match s {
        "stop" => Ok(AtLimit::Stop),
        "let-finish" => Ok(AtLimit::LetFinish),
        _ => Err(format!("expected stop or let-finish, got {s:?}")),
    }
}

/// `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC) or `now`.
pub fn parse_time(s: &str) -> Result<Timestamp, String> {
    let err = || format!("expected a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC), got {s:?}");
    let s = s.trim();
    if s == "now" {
        return Ok(now());
    }
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    if date.len() != 10 || date.as_bytes()[7] != b'-' {
        return Err(err());
    }
    let month: Month = date[..7].parse().map_err(|_| err())?;
    let day: i64 = date[8..].parse().map_err(|_| err())?;
    let days_in_month = (month.next().start().0 - month.start().0) / 86_400_000;
    if !(1..=days_in_month).contains(&day) {
        return Err(err());
    }
    let mut ms = month.start().0 + (day - 1) * 86_400_000;
    if let Some(t) = time {
        let parts: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(err());
        }
        let limits = [24, 60, 60];
        let mut secs = 0i64;
        for (i, p) in parts.iter().enumerate() {
            let v: i64 = p.parse().map_err(|_| err())?;
            if !(0..limits[i]).contains(&v) {
                return Err(err());
            }
            secs += v * [3600, 60, 1][i];
        }
        ms += secs * 1000;
    }
    Ok(Timestamp(ms))
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_millis() as i64)
}

/// January 1 of this year and of the next, UTC.
pub fn this_year() -> (Timestamp, Timestamp) {
    let y = Month::of(now()).year();
    let jan = |y| Month::new(y, 1).expect("January").start();
    (jan(y), jan(y + 1))
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

fn line_rows(lines: &[BillLineView], by_tenant: bool) -> Vec<Vec<String>> {
    lines
        .iter()
        .map(|l| {
            let who = if by_tenant {
                l.tenant.to_string()
            } else {
                l.center.to_string()
            };
            row![
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
            ]
        })
        .collect()
}

fn totals_row(t: &TotalsView) -> Vec<String> {
    row![
        "TOTAL",
        "",
        format!("{} lines", t.lines),
        "",
        card_hours(t.card_seconds),
        "",
        t.gross,
        t.subsidy,
        "",
        t.payable
    ]
}

pub async fn bill(c: &Client, a: BillArgs) -> anyhow::Result<()> {
    let month = a.month.map(|m| m.to_string());
    if a.csv {
        print!(
            "{}",
            c.bill_csv(a.tenant.as_deref(), month.as_deref()).await?
        );
        return Ok(());
    }
    let inv = c.bill(a.tenant.as_deref(), month.as_deref()).await?;
    if a.json {
        return print_json(&inv);
    }
    print_lines(
        &format!(
            "Invoice of {} for {} (yuan; card-hours = cards x hours)",
            inv.tenant, inv.month
        ),
        &inv.lines,
        false,
        &inv.totals,
        &format!(
            "To pay: {} yuan (gross {} - voucher subsidy {})",
            inv.totals.payable, inv.totals.gross, inv.totals.subsidy
        ),
    );
    Ok(())
}

/// A table of bill lines with a totals row; `by_tenant` shows the tenant instead of the center.
fn print_lines(
    title: &str,
    lines: &[BillLineView],
    by_tenant: bool,
    totals: &TotalsView,
    footer: &str,
) {
    println!("{title}");
    if lines.is_empty() {
        println!("No billed usage this month.");
        return;
    }
    let who = if by_tenant { "TENANT" } else { "CENTER" };
    let mut rows = vec![header(&format!(
        "JOB ATTEMPT {who} SKU CARD-H UNIT-PRICE GROSS SUBSIDY PROGRAMME PAYABLE"
    ))];
    rows.extend(line_rows(lines, by_tenant));
    rows.push(totals_row(totals));
    print!("{}", align(&rows));
    println!("{footer}");
}

pub async fn statement(c: &Client, a: StatementArgs) -> anyhow::Result<()> {
    let month = a.month.map(|m| m.to_string());
    if a.csv {
        print!("{}", c.statement_csv(&a.center, month.as_deref()).await?);
        return Ok(());
    }
    let st = c.statement(&a.center, month.as_deref()).await?;
    if a.json {
        return print_json(&st);
    }
    print_lines(
        &format!(
            "Settlement statement of center {} for {} (yuan)",
            st.center, st.month
        ),
        &st.lines,
        true,
        &st.totals,
        &format!(
            "Owed to the center: {} yuan (tenants pay {}, voucher programmes {})",
            st.totals.gross, st.totals.payable, st.totals.subsidy
        ),
    );
    Ok(())
}

pub async fn vouchers(c: &Client, json: bool) -> anyhow::Result<()> {
    let v = c.vouchers().await?;
    if json {
        return print_json(&v);
    }
    if v.programmes.is_empty() {
        println!("No voucher programmes.");
    } else {
        println!("Voucher programmes:");
        let mut rows = vec![header(
            "ID ISSUER RATE OTHER-RATES CAP/TENANT VALID ELIGIBLE STATUS",
        )];
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
            rows.push(row![
                s.id,
                s.issuer,
                pct(s.base_rate_bp),
                if other.is_empty() {
                    "-".to_string()
                } else {
                    other.join(", ")
                },
                s.cap_per_tenant,
                format!("{} to {}", date(s.valid_from), date(s.valid_until)),
                s.eligible
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                status
            ]);
        }
        print!("{}", align(&rows));
    }
    if !v.balances.is_empty() {
        println!("Grants and balances (yuan):");
        let mut rows = vec![header("PROGRAMME TENANT GRANTED PAID BALANCE EXPIRED")];
        for b in &v.balances {
            let d = &b.draw;
            rows.push(row![
                b.programme,
                d.tenant,
                d.granted,
                d.paid,
                d.balance,
                d.expired
            ]);
        }
        print!("{}", align(&rows));
    } else {
        println!("No grants.");
    }
    Ok(())
}

pub async fn prices(c: &Client, json: bool) -> anyhow::Result<()> {
    let rows = c.prices().await?;
    if json {
        return print_json(&rows);
    }
    let mut out = vec![header(
        "ID CENTER SKU PRICE(yuan/card-h) SPOT-DISCOUNT EFFECTIVE-FROM IN-FORCE",
    )];
    for r in &rows {
        out.push(row![
            r.id,
            r.center,
            r.sku,
            r.price_per_card_hour,
            r.spot_discount_bp.map_or_else(|| "-".to_string(), pct),
            r.effective_from,
            if r.in_force { "yes" } else { "" }
        ]);
    }
    print!("{}", align(&out));
    Ok(())
}

pub async fn price_set(
    c: &Client,
    center: String,
    sku: String,
    price: Money,
    spot_discount_bp: Option<u32>,
    effective_from: Option<Timestamp>,
) -> anyhow::Result<()> {
    let r = c
        .set_price(&PriceRequest {
            center: CenterId::new(center),
            sku,
            price_per_card_hour: price,
            spot_discount_bp,
            effective_from,
        })
        .await?;
    println!(
        "Price row {}: {} at {} costs {} yuan per card-hour from {}",
        r.id, r.sku, r.center, r.price_per_card_hour, r.effective_from
    );
    Ok(())
}

/// The programme from a file and/or flags (flags win).
pub fn build_programme(a: &ProgrammeArgs) -> anyhow::Result<ProgrammeSpec> {
    let bad = |m: String| -> anyhow::Error { Invalid(format!("invalid programme: {m}")).into() };
    let file = match &a.file {
        Some(path) => load_programme_file(path)?,
        None => ProgrammeFile::default(),
    };
    let (jan, next_jan) = this_year();
    let time =
        |flag: Option<Timestamp>, text: &Option<String>, default: Timestamp, name: &str| match (
            flag, text,
        ) {
            (Some(t), _) => Ok(t),
            (None, Some(s)) => parse_time(s).map_err(|e| bad(format!("{name}: {e}"))),
            (None, None) => Ok(default),
        };
    // A category given again (by a flag) replaces its rate from the file.
    let mut category_rates: Vec<CategoryRateView> = Vec::new();
    let mut set_rate = |category: TenantCategory, rate_bp: u32| {
        category_rates.retain(|r| r.category != category);
        category_rates.push(CategoryRateView { category, rate_bp });
    };
    for (c, bp) in &file.category_rates {
        let c: TenantCategory = c.parse().map_err(|e| bad(format!("category_rates: {e}")))?;
        set_rate(c, *bp);
    }
    for (c, bp) in &a.category_rate {
        set_rate(*c, *bp);
    }
    let need = |what: &str| bad(format!("{what} is required (flag or file)"));
    let id = a.id.clone().or(file.id).ok_or_else(|| need("id"))?;
    Ok(ProgrammeSpec {
        issuer: a
            .issuer
            .clone()
            .or(file.issuer)
            .ok_or_else(|| need("issuer"))?,
        budget: a.budget.or(file.budget).ok_or_else(|| need("budget"))?,
        valid_from: time(a.valid_from, &file.valid_from, jan, "valid_from")?,
        valid_until: time(a.valid_until, &file.valid_until, next_jan, "valid_until")?,
        base_rate_bp: a
            .rate_bp
            .or(file.base_rate_bp)
            .ok_or_else(|| need("rate (--rate-bp or base_rate_bp)"))?,
        category_rates,
        domestic_rate_bp: a.domestic_rate_bp.or(file.domestic_rate_bp),
        cap_per_tenant: a
            .cap
            .or(file.cap_per_tenant)
            .ok_or_else(|| need("cap per tenant (--cap or cap_per_tenant)"))?,
        eligible: if a.eligible.is_empty() {
            file.eligible
        } else {
            a.eligible.clone()
        },
        exclude_affiliated: a.exclude_affiliated || file.exclude_affiliated,
        id,
    })
}

fn load_programme_file(path: &Path) -> anyhow::Result<ProgrammeFile> {
    let text = read_text(path)?;
    toml::from_str(&text).map_err(|e| {
        Invalid(format!(
            "invalid programme: {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
        .into()
    })
}

pub async fn programme_create(c: &Client, a: &ProgrammeArgs) -> anyhow::Result<()> {
    let spec = build_programme(a)?;
    let p = c.create_programme(&spec).await?;
    println!(
        "Created programme {} ({}): budget {} yuan, {} of gross, cap {} yuan per tenant, {} to {}",
        p.spec.id,
        p.spec.issuer,
        p.spec.budget,
        pct(p.spec.base_rate_bp),
        p.spec.cap_per_tenant,
        date(p.spec.valid_from),
        date(p.spec.valid_until)
    );
    Ok(())
}

pub async fn grant(
    c: &Client,
    programme: &str,
    tenant: String,
    amount: Money,
) -> anyhow::Result<()> {
    let g = c
        .grant(
            programme,
            &GrantRequest {
                tenant: TenantId::new(tenant),
                amount,
            },
        )
        .await?;
    println!(
        "Granted {} yuan of programme {} to tenant {} (grant {})",
        g.amount, g.programme, g.tenant, g.id
    );
    Ok(())
}

pub async fn budget_set(
    c: &Client,
    tenant: &str,
    limit: Money,
    at_limit: AtLimit,
) -> anyhow::Result<()> {
    let b = c
        .set_budget(
            tenant,
            &BudgetRequest {
                monthly_limit: limit,
                at_limit,
            },
        )
        .await?;
    let policy = match b.at_limit {
        AtLimit::Stop => "stop its jobs",
        AtLimit::LetFinish => "let running jobs finish",
    };
    println!(
        "Budget of {}: {} yuan a month; at 100%: {policy}. Spent in {}: {} ({})",
        b.tenant, b.monthly_limit, b.month, b.spent, b.level
    );
    Ok(())
}

pub async fn programme_report(c: &Client, id: &str, json: bool, csv: bool) -> anyhow::Result<()> {
    if csv {
        print!("{}", c.programme_report_csv(id).await?);
        return Ok(());
    }
    let r = c.programme_report(id).await?;
    if json {
        return print_json(&r);
    }
    println!("Programme {} ({}), yuan", r.programme, r.issuer);
    let mut kv = vec![
        row!["budget", r.budget],
        row!["granted", r.granted],
        row!["paid out", r.paid_out],
        row!["remaining", r.remaining],
        row!["unallocated", r.unallocated],
    ];
    kv.extend(r.expired_at.map(|t| row!["expired at", t]));
    print!("{}", super::indent(&align(&kv)));
    if !r.tenants.is_empty() {
        let mut rows = vec![header("TENANT GRANTED PAID BALANCE EXPIRED")];
        for d in &r.tenants {
            rows.push(row![d.tenant, d.granted, d.paid, d.balance, d.expired]);
        }
        print!("{}", align(&rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_formats() {
        assert_eq!(
            parse_time("2026-01-01").unwrap(),
            Timestamp(1_767_225_600_000)
        );
        assert_eq!(
            parse_time("2026-11-26T22:08:26Z").unwrap(),
            Timestamp(1_795_730_906_000)
        );
        assert!(parse_time("2026-02-30").is_err());
        assert!(parse_time("2026-1-1").is_err());
        assert!(parse_time("2026-01-01T25:00").is_err());
        assert_eq!(pct(5000), "50%");
        assert_eq!(pct(1250), "12.5%");
        assert_eq!(pct(1234), "12.34%");
        assert_eq!(card_hours(3600), "1.0000");
        assert_eq!(card_hours(1), "0.0003");
        assert_eq!(card_hours(5400), "1.5000");
        assert_eq!(
            parse_category_rate("startup=6000").unwrap(),
            (TenantCategory::Startup, 6000)
        );
        assert_eq!(parse_at_limit("let-finish").unwrap(), AtLimit::LetFinish);
    }

    #[test]
    fn programme_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "id = \"sz\"\nissuer = \"Shenzhen\"\nbudget = \"1000000\"\nbase_rate_bp = 5000\n\
             cap_per_tenant = \"50000\"\neligible = [\"sme\", \"startup\"]\n\
             valid_from = \"2026-01-01\"\nvalid_until = \"2027-01-01\"\n[category_rates]\nstartup = 6000\n",
        )
        .unwrap();
        let a = ProgrammeArgs {
            file: Some(path),
            rate_bp: Some(4000),
            ..ProgrammeArgs::default()
        };
        let p = build_programme(&a).unwrap();
        assert_eq!(p.id, "sz");
        assert_eq!(p.base_rate_bp, 4000);
        assert_eq!(p.budget, Money::from_yuan(1_000_000));
        assert_eq!(p.category_rates[0].rate_bp, 6000);
        assert_eq!(p.valid_from, parse_time("2026-01-01").unwrap());
        let e = build_programme(&ProgrammeArgs::default()).unwrap_err();
        assert!(e.to_string().contains("id is required"), "{e}");
    }
}

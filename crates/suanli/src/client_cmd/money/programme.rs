//! A voucher programme for `admin programme-create`: one set of fields read from flags and from
//! the TOML file alike, the flags over the file, then checked and defaulted into a
//! [`ProgrammeSpec`]. Also the dates the money verbs take.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, de::Error as _};
use suanli_money::Month;
use suanli_proto::{CategoryRateView, ProgrammeSpec};
use suanli_types::{Money, TenantCategory, Timestamp};

use crate::client_cmd::exit::Invalid;
use crate::client_cmd::read_toml;

#[derive(clap::Args, Debug, Default)]
pub struct ProgrammeArgs {
    /// TOML programme definition; flags given too override its fields
    #[arg(short, long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub fields: ProgrammeFields,
}

/// A programme's fields as flags, or as the keys of the file (dates as `YYYY-MM-DD`, amounts as
/// decimal yuan strings, `category_rates` a table of category to basis points).
#[derive(clap::Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgrammeFields {
    /// Programme id, e.g. sz-2026-training
    #[arg(long)]
    pub id: Option<String>,
    /// Who issues it, e.g. "Shenzhen MIIT"
    #[arg(long)]
    issuer: Option<String>,
    /// Total budget in yuan
    #[arg(long, value_name = "YUAN")]
    budget: Option<Money>,
    /// Share of gross subsidised, in basis points (5000 = 50%)
    #[arg(long = "rate-bp", value_name = "BP")]
    pub base_rate_bp: Option<u32>,
    /// A category's own rate (repeatable), e.g. startup=6000
    #[arg(long = "category-rate", value_name = "CATEGORY=BP", value_parser = parse_category_rate)]
    #[serde(default, deserialize_with = "category_rates")]
    category_rates: Vec<(TenantCategory, u32)>,
    /// Rate for domestic chips, used when higher than the tenant's rate
    #[arg(long, value_name = "BP")]
    domestic_rate_bp: Option<u32>,
    /// Most a tenant can be granted, in yuan
    #[arg(long = "cap", value_name = "YUAN")]
    cap_per_tenant: Option<Money>,
    /// Eligible tenant categories (repeat or comma-separate), e.g. sme,startup,research
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    eligible: Vec<TenantCategory>,
    /// First day (or instant) of validity [default: January 1 of this year, UTC]
    #[arg(long, value_name = "DATE", value_parser = parse_time)]
    #[serde(default, deserialize_with = "date")]
    valid_from: Option<Timestamp>,
    /// First day (or instant) no longer valid [default: January 1 of next year, UTC]
    #[arg(long, value_name = "DATE", value_parser = parse_time)]
    #[serde(default, deserialize_with = "date")]
    valid_until: Option<Timestamp>,
    /// No subsidy at centers whose owner is affiliated with the tenant
    #[arg(long)]
    #[serde(default)]
    exclude_affiliated: bool,
}

impl ProgrammeFields {
    /// These fields over `file`'s: a field given here wins; a category rate given here replaces
    /// the file's rate of that category.
    fn over(self, file: ProgrammeFields) -> ProgrammeFields {
        let mut category_rates = file.category_rates;
        for (category, bp) in self.category_rates {
            category_rates.retain(|(c, _)| *c != category);
            category_rates.push((category, bp));
        }
        ProgrammeFields {
            id: self.id.or(file.id),
            issuer: self.issuer.or(file.issuer),
            budget: self.budget.or(file.budget),
            base_rate_bp: self.base_rate_bp.or(file.base_rate_bp),
            category_rates,
            domestic_rate_bp: self.domestic_rate_bp.or(file.domestic_rate_bp),
            cap_per_tenant: self.cap_per_tenant.or(file.cap_per_tenant),
            eligible: match self.eligible.is_empty() {
                true => file.eligible,
                false => self.eligible,
            },
            valid_from: self.valid_from.or(file.valid_from),
            valid_until: self.valid_until.or(file.valid_until),
            exclude_affiliated: self.exclude_affiliated || file.exclude_affiliated,
        }
    }

    /// The spec, with the required fields checked and the year of validity by default.
    fn into_spec(self) -> Result<ProgrammeSpec, Invalid> {
        let need = |what: &str| {
            Invalid(format!(
                "invalid programme: {what} is required (flag or file)"
            ))
        };
        let (jan, next_jan) = this_year();
        Ok(ProgrammeSpec {
            id: self.id.ok_or_else(|| need("id"))?,
            issuer: self.issuer.ok_or_else(|| need("issuer"))?,
            budget: self.budget.ok_or_else(|| need("budget"))?,
            valid_from: self.valid_from.unwrap_or(jan),
            valid_until: self.valid_until.unwrap_or(next_jan),
            base_rate_bp: self
                .base_rate_bp
                .ok_or_else(|| need("rate (--rate-bp or base_rate_bp)"))?,
            category_rates: self
                .category_rates
                .into_iter()
                .map(|(category, rate_bp)| CategoryRateView { category, rate_bp })
                .collect(),
            domestic_rate_bp: self.domestic_rate_bp,
            cap_per_tenant: self
                .cap_per_tenant
                .ok_or_else(|| need("cap per tenant (--cap or cap_per_tenant)"))?,
            eligible: self.eligible,
            exclude_affiliated: self.exclude_affiliated,
        })
    }
}

/// The programme from a file and/or flags (flags win).
pub fn build_programme(a: ProgrammeArgs) -> anyhow::Result<ProgrammeSpec> {
    let file = match &a.file {
        Some(path) => read_toml(path, "programme")?,
        None => ProgrammeFields::default(),
    };
    Ok(a.fields.over(file).into_spec()?)
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

/// The file's `[category_rates]` table.
fn category_rates<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(TenantCategory, u32)>, D::Error> {
    BTreeMap::<String, u32>::deserialize(d)?
        .into_iter()
        .map(|(c, bp)| Ok((c.parse().map_err(D::Error::custom)?, bp)))
        .collect()
}

/// A date of the file, as [`parse_time`] reads it.
fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let s = String::deserialize(d)?;
    parse_time(&s).map(Some).map_err(D::Error::custom)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_cmd::Scratch;

    #[test]
    fn times() {
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
        assert_eq!(
            parse_category_rate("startup=6000").unwrap(),
            (TenantCategory::Startup, 6000)
        );
    }

    #[test]
    fn programme_from_file_and_flags() {
        let dir = Scratch::new();
        let path = dir.file(
            "p.toml",
            "id = \"sz\"\nissuer = \"Shenzhen\"\nbudget = \"1000000\"\nbase_rate_bp = 5000\n\
             cap_per_tenant = \"50000\"\neligible = [\"sme\", \"startup\"]\n\
             valid_from = \"2026-01-01\"\nvalid_until = \"2027-01-01\"\n\
             [category_rates]\nstartup = 6000\nresearch = 5500\n",
        );
        let mut a = ProgrammeArgs {
            file: Some(path),
            ..ProgrammeArgs::default()
        };
        a.fields.base_rate_bp = Some(4000);
        a.fields.category_rates = vec![(TenantCategory::Startup, 7000)];
        let p = build_programme(a).unwrap();
        assert_eq!(p.id, "sz");
        assert_eq!(p.base_rate_bp, 4000);
        assert_eq!(p.budget, Money::from_yuan(1_000_000));
        let rates: Vec<_> = p
            .category_rates
            .iter()
            .map(|r| (r.category, r.rate_bp))
            .collect();
        assert_eq!(
            rates,
            [
                (TenantCategory::Research, 5500),
                (TenantCategory::Startup, 7000)
            ]
        );
        assert_eq!(p.valid_from, parse_time("2026-01-01").unwrap());
        assert_eq!(p.eligible, [TenantCategory::Sme, TenantCategory::Startup]);
        let e = build_programme(ProgrammeArgs::default()).unwrap_err();
        assert!(e.to_string().contains("id is required"), "{e}");
        // A bad date in the file names its line.
        let path = dir.file("p.toml", "id = \"sz\"\nvalid_from = \"2026-13-01\"\n");
        let e = build_programme(ProgrammeArgs {
            file: Some(path),
            ..ProgrammeArgs::default()
        })
        .unwrap_err();
        let msg = e.downcast::<Invalid>().unwrap().0;
        assert!(
            msg.starts_with("invalid programme: ") && msg.contains("line 2"),
            "{msg}"
        );
    }
}

//! Money as integer minor units. Never f64.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of money in units of 1/100 fen (1 yuan = 10,000 units).
///
/// Serialised as a decimal string in yuan (`"4.50"`), so no float ever touches an amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(pub i64);

impl Money {
    pub const UNITS_PER_YUAN: i64 = 10_000;
    pub const ZERO: Money = Money(0);

    pub fn from_yuan(yuan: i64) -> Money {
        Money(yuan * Self::UNITS_PER_YUAN)
    }

    pub fn units(self) -> i64 {
        self.0
    }

    /// Multiply by a count, saturating (amounts far beyond any bill).
    pub fn times(self, n: i64) -> Money {
        Money(self.0.saturating_mul(n))
    }

    /// `self * num / den`, rounded half away from zero; integer arithmetic only.
    pub fn mul_div(self, num: i64, den: i64) -> Money {
        assert!(den > 0, "denominator must be positive");
        let p = self.0 as i128 * num as i128;
        let d = den as i128;
        let q = if p >= 0 {
            (p + d / 2) / d
        } else {
            (p - d / 2) / d
        };
        Money(q.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
}

impl fmt::Display for Money {
    /// Yuan with two decimals, more only when the amount has sub-fen units: `4.50`, `0.0125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / Self::UNITS_PER_YUAN as u64;
        let frac = abs % Self::UNITS_PER_YUAN as u64;
        if frac.is_multiple_of(100) {
            write!(f, "{sign}{whole}.{:02}", frac / 100)
        } else {
            let s = format!("{frac:04}");
            write!(f, "{sign}{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid amount {input:?}: {why}")]
pub struct MoneyParseError {
    pub input: String,
    pub why: &'static str,
}

impl FromStr for Money {
    type Err = MoneyParseError;

    /// Parses a decimal amount in yuan with at most four decimals: `4`, `4.5`, `-0.0125`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| MoneyParseError {
            input: s.to_string(),
            why,
        };
        let t = s.trim();
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(err("empty"));
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(err("expected a decimal number of yuan such as 4.50"));
        }
        if frac.len() > 4 {
            return Err(err("at most 4 decimals (1/100 fen)"));
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| err("too large"))?
        };
        let frac_units: i64 = format!("{frac:0<4}")
            .parse()
            .map_err(|_| err("bad decimals"))?;
        let units = whole
            .checked_mul(Self::UNITS_PER_YUAN)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(|| err("too large"))?;
        Ok(Money(if neg { -units } else { units }))
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Str(String),
            Int(i64),
        }
        match Repr::deserialize(d)? {
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Int(y) => y
                .checked_mul(Money::UNITS_PER_YUAN)
                .map(Money)
                .ok_or_else(|| serde::de::Error::custom("amount too large")),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Amount in yuan as a decimal string, at most 4 decimals",
            ))
            .examples(["4.50"])
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Money {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("4.5".parse::<Money>().unwrap(), Money(45_000));
        assert_eq!("0.0125".parse::<Money>().unwrap(), Money(125));
        assert_eq!("-2".parse::<Money>().unwrap(), Money(-20_000));
        assert_eq!(Money(45_000).to_string(), "4.50");
        assert_eq!(Money(125).to_string(), "0.0125");
        assert_eq!(Money(-20_000).to_string(), "-2.00");
        assert!("4.12345".parse::<Money>().is_err());
        assert!("four".parse::<Money>().is_err());
        assert!("".parse::<Money>().is_err());
        assert!("1e3".parse::<Money>().is_err());
    }

    #[test]
    fn mul_div_rounds_half_away() {
        assert_eq!(Money(3).mul_div(1, 2), Money(2));
        assert_eq!(Money(-3).mul_div(1, 2), Money(-2));
        assert_eq!(
            Money::from_yuan(12).mul_div(1800, 3600),
            Money::from_yuan(6)
        );
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(u in -1_000_000_000_000i64..1_000_000_000_000i64) {
            let m = Money(u);
            prop_assert_eq!(m.to_string().parse::<Money>().unwrap(), m);
        }
    }
}

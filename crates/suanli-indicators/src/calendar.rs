//! Periods of the statistics. Hours are plain UTC hours; days, months and quarters are those of
//! China Standard Time (UTC+8, no daylight saving), the calendar the city publishes in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::Timestamp;
use suanli_types::time::{civil_from_days, days_from_civil};

use crate::{HOUR_MS, IndicatorError};

/// China Standard Time's offset from UTC, in milliseconds.
pub const CST_OFFSET_MS: i64 = 8 * HOUR_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// An instant written as Unix ms, a quarter (`2026Q4`), a month (`2026-10`) or a day
/// (`2026-10-01`) of China Standard Time (their first millisecond), or a UTC hour
/// (`2026-10-01T08Z`); years 1970 to 9999, and only days of the calendar. `None` otherwise.
pub fn parse_instant(s: &str) -> Option<Timestamp> {
    let num = |t: &str| -> Option<i64> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    if let Some(ms) = num(s) {
        return Some(Timestamp(ms));
    }
    if let Ok(q) = s.parse::<Quarter>() {
        return Some(q.start());
    }
    let (date, hour) = match s.split_once('T') {
        Some((d, h)) => (d, Some(h.strip_suffix('Z')?)),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let (y, m, d) = match parts.as_slice() {
        [y, m] if y.len() == 4 && m.len() == 2 => (num(y)?, num(m)?, 1),
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => (num(y)?, num(m)?, num(d)?),
        _ => return None,
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    let (y2, m2, d2) = civil_from_days(days);
    if (y2, i64::from(m2), i64::from(d2)) != (y, m, d) {
        return None;
    }
    let day_ms = days * DAY_MS;
    match hour {
        None => Some(Timestamp(day_ms - CST_OFFSET_MS)),
        Some(h) if parts.len() == 3 && h.len() == 2 && num(h)? < 24 => {
            Some(Timestamp(day_ms + num(h)? * HOUR_MS))
        }
        Some(_) => None,
    }
}

/// The start of the UTC hour that holds `t`.
pub fn hour_of(t: Timestamp) -> Timestamp {
    Timestamp(t.0.div_euclid(HOUR_MS) * HOUR_MS)
}

/// How figures are grouped in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
    Month,
    Quarter,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Hour, Period::Day, Period::Month, Period::Quarter];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Quarter => "quarter",
        }
    }

    /// The start of the period that holds `t`.
    pub fn start(self, t: Timestamp) -> Timestamp {
        if self == Period::Hour {
            return hour_of(t);
        }
        let local = t.0 + CST_OFFSET_MS;
        let days = local.div_euclid(DAY_MS);
        let (y, m, _) = civil_from_days(days);
        let first_month = match self {
            Period::Month => m,
            _ => (m - 1) / 3 * 3 + 1,
        };
        let day = match self {
            Period::Day => days,
            _ => days_from_civil(y, first_month.into(), 1),
        };
        Timestamp(day * DAY_MS - CST_OFFSET_MS)
    }

    /// The start of the period after the one starting at `start`.
    pub fn next(self, start: Timestamp) -> Timestamp {
        match self {
            Period::Hour => Timestamp(start.0 + HOUR_MS),
            Period::Day => Timestamp(start.0 + DAY_MS),
            Period::Month => self.start(Timestamp(start.0 + 32 * DAY_MS)),
            Period::Quarter => self.start(Timestamp(start.0 + 93 * DAY_MS)),
        }
    }

    /// The period's name for `start`: `2026-10-01T08` (hour, UTC), `2026-10-01`, `2026-10`,
    /// `2026Q4` (China Standard Time).
    pub fn label(self, start: Timestamp) -> String {
        if self == Period::Hour {
            let s = start.to_string();
            return format!("{}Z", &s[..13]);
        }
        let (y, m, d) = civil_from_days((start.0 + CST_OFFSET_MS).div_euclid(DAY_MS));
        match self {
            Period::Day => format!("{y:04}-{m:02}-{d:02}"),
            Period::Month => format!("{y:04}-{m:02}"),
            _ => format!("{y:04}Q{}", (m - 1) / 3 + 1),
        }
    }
}

impl FromStr for Period {
    type Err = IndicatorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::one_of(s, &Period::ALL, Period::as_str, "period")
    }
}

/// A calendar quarter of China Standard Time, written `2026Q4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Quarter {
    pub year: i32,
    /// 1 to 4.
    pub q: u8,
}

impl Quarter {
    /// The quarter's first instant.
    pub fn start(self) -> Timestamp {
        let days = days_from_civil(self.year.into(), i64::from(self.q - 1) * 3 + 1, 1);
        Timestamp(days * DAY_MS - CST_OFFSET_MS)
    }

    /// The next quarter's first instant.
    pub fn end(self) -> Timestamp {
        Period::Quarter.next(self.start())
    }

    /// The quarter that holds `t`.
    pub fn of(t: Timestamp) -> Quarter {
        Period::Quarter
            .label(Period::Quarter.start(t))
            .parse()
            .expect("a quarter's own label parses")
    }
}

impl fmt::Display for Quarter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}Q{}", self.year, self.q)
    }
}

impl FromStr for Quarter {
    type Err = IndicatorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IndicatorError::Invalid {
            what: "quarter",
            why: format!("{s:?} is not a quarter like 2026Q4"),
        };
        let (y, q) = s.split_once(['Q', 'q']).ok_or_else(bad)?;
        let year: i32 = y.parse().map_err(|_| bad())?;
        let q: u8 = q.parse().map_err(|_| bad())?;
        if y.len() != 4 || !(1..=4).contains(&q) || !(1970..=9999).contains(&year) {
            return Err(bad());
        }
        Ok(Quarter { year, q })
    }
}

impl TryFrom<String> for Quarter {
    type Error = IndicatorError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Quarter> for String {
    fn from(q: Quarter) -> String {
        q.to_string()
    }
}

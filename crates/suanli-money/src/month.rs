//! Calendar months in UTC.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::Timestamp;
use suanli_types::time::{civil_from_days, days_from_civil};

/// A calendar month in UTC, written and serialised as `YYYY-MM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Month {
    year: i32,
    month: u8,
}

/// A string that is not a `YYYY-MM` month.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid month {0:?}: expected YYYY-MM with a month from 01 to 12")]
pub struct MonthParseError(pub String);

impl Month {
    /// The month `year-month`; `None` unless `month` is 1 to 12 and `year` 0 to 9999.
    pub fn new(year: i32, month: u8) -> Option<Month> {
        ((1..=12).contains(&month) && (0..=9999).contains(&year)).then_some(Month { year, month })
    }

    /// The UTC month containing `at`.
    pub fn of(at: Timestamp) -> Month {
        let days = at.millis().div_euclid(86_400_000);
        let (year, month, _) = civil_from_days(days);
        Month {
            year: year as i32,
            month: month as u8,
        }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month of the year, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The first millisecond of the month.
    pub fn start(self) -> Timestamp {
        Timestamp(days_from_civil(self.year.into(), self.month.into(), 1) * 86_400_000)
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = MonthParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MonthParseError(s.to_string());
        let (y, m) = s.split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        Month::new(y.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?).ok_or_else(err)
    }
}

impl From<Month> for String {
    fn from(m: Month) -> String {
        m.to_string()
    }
}

impl TryFrom<String> for Month {
    type Error = MonthParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

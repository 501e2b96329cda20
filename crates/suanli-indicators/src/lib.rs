//! The statistical indicator system, pure: no I/O, no clock.
//!
//! The shell (the hub) turns what happened into [`Fact`]s, each with its time, and feeds them, in
//! any order within an hour and late if need be, to a [`Rollup`]. The rollup keeps per hour and
//! per pool (center x SKU) the card-seconds installed, available, allocated, down and drained,
//! and per hour, pool and tenant the card-seconds allocated and delivered, the jobs submitted,
//! started and ended, the queueing delays ([`WaitHistogram`]) and the yuan billed. A fact about
//! an hour the rollup has already closed amends that hour and is counted as an amendment.
//!
//! [`indicators`] reads a window of the rollup by period (hour, day, month, quarter, in China
//! Standard Time) and group (center, SKU, vendor, tenant category), and [`release`] freezes a
//! quarter into JSON, CSV and a self-contained bilingual HTML report whose bytes depend only on
//! the rollup. docs/INDICATORS.md defines every figure: formula, unit, precision, window and
//! denominator.

pub mod calendar;
pub mod histogram;
pub mod indicators;
mod pass;
pub mod release;
mod release_html;
pub mod rollup;

pub use calendar::{Period, Quarter};
pub use histogram::WaitHistogram;
pub use indicators::{By, Row, Summary, Window};
pub use rollup::{Fact, Outcome, PoolState, Rollup};

use thiserror::Error;

/// Why a fact or a query was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IndicatorError {
    #[error("{what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("a sum of {what} overflowed")]
    Overflow { what: &'static str },
}

pub type IndicatorResult<T> = Result<T, IndicatorError>;

/// The one of `all` whose `name` is `s`, or an error that lists them (`what` names the field).
fn one_of<T: Copy>(
    s: &str,
    all: &[T],
    name: fn(T) -> &'static str,
    what: &'static str,
) -> IndicatorResult<T> {
    all.iter()
        .copied()
        .find(|v| name(*v) == s)
        .ok_or_else(|| IndicatorError::Invalid {
            what,
            why: format!(
                "{s:?} is not one of {}",
                all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
            ),
        })
}

/// Milliseconds in an hour: the rollup's unit of time.
pub const HOUR_MS: i64 = 3_600_000;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

//! The quarterly release: a quarter of the rollup frozen into JSON, CSV and a self-contained,
//! bilingual (Chinese / English) HTML report with SVG charts. The three files depend only on
//! the [`Release`], so rendering it again gives the same bytes.
//!
//! A release never shows one tenant's figures: usage by tenant category is shown only for a
//! category with at least [`MIN_TENANTS_PER_GROUP`] active tenants in the period; smaller ones
//! are folded into "other (suppressed)".

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use suanli_types::Timestamp;

use crate::calendar::{Period, Quarter};
use crate::histogram::WaitSum;
use crate::indicators::{Row, SUMMARY_GROUPS, Summary, rows_of, summary_of};
use crate::pass::{Cell, Group};
use crate::rollup::Rollup;
use crate::{IndicatorError, IndicatorResult};

/// The fewest active tenants a category row of a release may describe.
pub const MIN_TENANTS_PER_GROUP: u64 = 3;

/// The label of the folded small categories.
pub const SUPPRESSED: &str = "other (suppressed)";

/// Wait classes of the release's distribution: (upper bound in seconds, label).
pub const WAIT_CLASSES: [(u64, &str); 5] = [
    (59, "< 1 min"),
    (599, "1-10 min"),
    (3599, "10-60 min"),
    (21_599, "1-6 h"),
    (u64::MAX, ">= 6 h"),
];

/// Voucher programmes' figures for the quarter (from the books, which the rollup does not hold).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vouchers {
    pub granted_yuan: suanli_types::Money,
    pub paid_out_yuan: suanli_types::Money,
    pub remaining_yuan: suanli_types::Money,
}

/// A frozen quarter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub quarter: Quarter,
    pub summary: Summary,
    pub vouchers: Vouchers,
    /// Per month: the network, each center, each vendor, each category (suppressed as above).
    pub by_month: Vec<Row>,
    pub by_center: Vec<Row>,
    pub by_vendor: Vec<Row>,
    pub by_category: Vec<Row>,
    /// Jobs started in the quarter by wait class ([`WAIT_CLASSES`]).
    pub waits: Vec<(String, u64)>,
    /// Set on a preliminary release: the quarter so far, as of this instant. A preliminary
    /// release is never stored; the quarter's release is made once it has ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preliminary_until: Option<Timestamp>,
}

impl Release {
    /// Freezes `quarter`; the rollup must have been advanced past its end.
    pub fn build(
        rollup: &Rollup,
        quarter: Quarter,
        vouchers: Vouchers,
    ) -> IndicatorResult<Release> {
        let to = quarter.end();
        if rollup.closed_before() < to {
            return Err(IndicatorError::Invalid {
                what: "quarter",
                why: format!(
                    "{quarter} has not ended in the statistics yet (they reach {})",
                    rollup.closed_before()
                ),
            });
        }
        Self::over(rollup, quarter, vouchers, to)
    }

    /// The quarter so far, as of `as_of`: the same figures over the quarter's hours up to the
    /// end of the hour of `as_of`, marked preliminary. The caller has advanced `rollup` to
    /// `as_of` (a copy of the live one: the live rollup advances only at hourly closings). For
    /// a quarter that has ended by then, the same as [`build`](Self::build).
    pub fn preliminary(
        rollup: &Rollup,
        quarter: Quarter,
        vouchers: Vouchers,
        as_of: Timestamp,
    ) -> IndicatorResult<Release> {
        if as_of >= quarter.end() {
            return Self::build(rollup, quarter, vouchers);
        }
        if as_of < quarter.start() {
            return Err(IndicatorError::Invalid {
                what: "quarter",
                why: format!("{quarter} has not begun"),
            });
        }
        let to = Timestamp(crate::calendar::hour_of(as_of).0 + crate::HOUR_MS).min(quarter.end());
        let mut r = Self::over(rollup, quarter, vouchers, to)?;
        r.preliminary_until = Some(as_of);
        Ok(r)
    }

    fn over(
        rollup: &Rollup,
        quarter: Quarter,
        vouchers: Vouchers,
        to: Timestamp,
    ) -> IndicatorResult<Release> {
        let from = quarter.start();
        // One pass for every table and the summary.
        let mut groups = SUMMARY_GROUPS.to_vec();
        groups.push(Group::Vendor);
        let cells = rollup.cells(from, to, Period::Month, &groups, None);
        let [all, center, category, _, vendor] = &cells[..] else {
            unreachable!("five groupings asked for");
        };
        let mut hist = WaitSum::default();
        for c in all {
            hist.merge(&c.usage.waits);
        }
        let hist = hist.histogram();
        let mut below = 0;
        let waits = WAIT_CLASSES
            .iter()
            .map(|(upto, label)| {
                let n = hist.count_at_most(*upto).max(below);
                let class = n - below;
                below = n;
                (label.to_string(), class)
            })
            .collect();
        Ok(Release {
            quarter,
            summary: summary_of(&cells[..SUMMARY_GROUPS.len()], from, to)?,
            vouchers,
            by_month: rows_of(all, Period::Month)?,
            by_center: rows_of(center, Period::Month)?,
            by_vendor: rows_of(vendor, Period::Month)?,
            by_category: rows_of(&suppress_small(category), Period::Month)?,
            waits,
            preliminary_until: None,
        })
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a release serialises");
        s.push('\n');
        s
    }

    /// Long format: `table,period,group,figure,value`, one figure per line.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("table,period,group,figure,value\n");
        if let Some(t) = self.preliminary_until {
            let _ = writeln!(out, "release,{},all,preliminary_until,{t}", self.quarter);
        }
        let tables = [
            ("month", &self.by_month),
            ("center", &self.by_center),
            ("vendor", &self.by_vendor),
            ("category", &self.by_category),
        ];
        for (table, rows) in tables {
            for r in rows {
                for (figure, value) in figures(r) {
                    let _ = writeln!(
                        out,
                        "{table},{},{},{figure},{value}",
                        csv(&r.period),
                        csv(&r.group)
                    );
                }
            }
        }
        for (class, n) in &self.waits {
            let _ = writeln!(out, "waits,{},all,jobs_started,{n}", csv(class));
        }
        out
    }

    pub fn to_html(&self) -> String {
        crate::release_html::render(self)
    }
}

/// Categories with too few active tenants in a period folded into one cell of that period,
/// which too is left out when it still has too few; in the order of the rows.
fn suppress_small(cells: &[Cell]) -> Vec<Cell> {
    let mut out: Vec<Cell> = Vec::new();
    let mut folded: Vec<Cell> = Vec::new();
    for c in cells {
        if c.usage.active_tenants() >= MIN_TENANTS_PER_GROUP {
            out.push(c.clone());
            continue;
        }
        match folded.iter_mut().find(|f| f.start == c.start) {
            Some(f) => f.usage.merge(&c.usage),
            None => folded.push(Cell {
                start: c.start,
                label: SUPPRESSED.to_string(),
                cap: None,
                usage: c.usage.clone(),
            }),
        }
    }
    out.extend(
        folded
            .into_iter()
            .filter(|f| f.usage.active_tenants() >= MIN_TENANTS_PER_GROUP),
    );
    out.sort_by(|a, b| (a.start, &a.label).cmp(&(b.start, &b.label)));
    out
}

/// A row's figures as (name, value) text, capacity first; empty values for absent ones.
pub fn figures(r: &Row) -> Vec<(&'static str, String)> {
    let f = |v: f64| format!("{v}");
    let o = |v: Option<f64>| v.map_or(String::new(), f);
    let q = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = Vec::new();
    if let Some(c) = &r.capacity {
        out.extend([
            ("installed_card_hours", f(c.installed_card_hours)),
            ("installed_fp16_pflops", f(c.installed_fp16_pflops)),
            ("available_card_hours", f(c.available_card_hours)),
            ("allocated_card_hours", f(c.allocated_card_hours)),
            ("down_card_hours", f(c.down_card_hours)),
            ("drained_card_hours", f(c.drained_card_hours)),
            ("utilisation", o(c.utilisation)),
            ("delivered_utilisation", o(c.delivered_utilisation)),
            ("availability", o(c.availability)),
        ]);
    }
    let u = &r.usage;
    out.extend([
        ("delivered_card_hours", f(u.delivered_card_hours)),
        ("jobs_submitted", u.jobs_submitted.to_string()),
        ("jobs_started", u.jobs_started.to_string()),
        ("jobs_succeeded", u.jobs_succeeded.to_string()),
        ("jobs_failed", u.jobs_failed.to_string()),
        ("jobs_cancelled", u.jobs_cancelled.to_string()),
        ("jobs_timed_out", u.jobs_timed_out.to_string()),
        ("wait_p50_secs", q(u.wait_p50_secs)),
        ("wait_p95_secs", q(u.wait_p95_secs)),
        ("wait_p99_secs", q(u.wait_p99_secs)),
        ("gross_yuan", u.gross_yuan.to_string()),
        ("subsidy_yuan", u.subsidy_yuan.to_string()),
        ("payable_yuan", u.payable_yuan.to_string()),
        ("subsidy_rate", o(u.subsidy_rate)),
        ("active_tenants", u.active_tenants.to_string()),
        ("located_card_hours", f(u.located_card_hours)),
        ("cross_city_card_hours", f(u.cross_city_card_hours)),
    ]);
    out
}

fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

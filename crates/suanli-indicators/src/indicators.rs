//! The indicators: a window of the rollup, grouped by period and by center, SKU, vendor or
//! tenant category, and the network's summary figures. Every figure is defined in
//! docs/INDICATORS.md; the names here are the ones used there.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::{Money, TenantCategory, TenantId, Timestamp};

use crate::calendar::Period;
use crate::pass::{CapSum, Cell, DOMESTIC, Group, UseSum};
use crate::rollup::{Outcome, Rollup};
use crate::{IndicatorError, IndicatorResult};

/// What the rows are grouped by besides the period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// One row per period for the whole network.
    All,
    Center,
    Sku,
    Vendor,
    /// Usage only: capacity is not anyone's category.
    Category,
}

impl By {
    pub const ALL: [By; 5] = [By::All, By::Center, By::Sku, By::Vendor, By::Category];
    pub fn as_str(self) -> &'static str {
        match self {
            By::All => "all",
            By::Center => "center",
            By::Sku => "sku",
            By::Vendor => "vendor",
            By::Category => "category",
        }
    }
}

impl FromStr for By {
    type Err = IndicatorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::one_of(s, &By::ALL, By::as_str, "by")
    }
}

/// A query: `[from, to)`, by period and group, optionally one tenant's usage only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub to: Timestamp,
    pub period: Period,
    pub by: By,
    /// Only this tenant's usage, and no capacity figures (a tenant's own view).
    pub tenant: Option<TenantId>,
}

impl Window {
    pub fn validate(&self) -> IndicatorResult<()> {
        if self.to <= self.from {
            return Err(IndicatorError::Invalid {
                what: "window",
                why: format!("to ({}) is not after from ({})", self.to, self.from),
            });
        }
        Ok(())
    }
}

/// One period of one group. Card-time in card-hours (three decimals), yuan as decimal strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub period: String,
    pub group: String,
    /// Capacity (none by category and in a tenant's view).
    pub capacity: Option<Capacity>,
    pub usage: Usage,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub installed_card_hours: f64,
    /// Average installed FP16 (dense tensor) PFLOPS over the period.
    pub installed_fp16_pflops: f64,
    pub available_card_hours: f64,
    pub allocated_card_hours: f64,
    pub down_card_hours: f64,
    pub drained_card_hours: f64,
    /// allocated / available; none when nothing was available.
    pub utilisation: Option<f64>,
    /// delivered / available.
    pub delivered_utilisation: Option<f64>,
    /// (installed - down) / installed.
    pub availability: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub allocated_card_hours: f64,
    pub delivered_card_hours: f64,
    /// Delivered card-seconds, exact (what reconciles with the bill lines).
    pub delivered_card_seconds: u64,
    pub jobs_submitted: u64,
    pub jobs_started: u64,
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    pub jobs_timed_out: u64,
    pub wait_p50_secs: Option<u64>,
    pub wait_p95_secs: Option<u64>,
    pub wait_p99_secs: Option<u64>,
    pub gross_yuan: Money,
    pub subsidy_yuan: Money,
    pub payable_yuan: Money,
    /// subsidy / gross.
    pub subsidy_rate: Option<f64>,
    pub active_tenants: u64,
    /// Facts that arrived after their hour was closed.
    pub amendments: u64,
    /// Delivered card-hours whose tenant's and center's cities were both known when billed: the
    /// denominator of the cross-city share.
    #[serde(default)]
    pub located_card_hours: f64,
    /// Of those, the card-hours run at a center outside the tenant's city.
    #[serde(default)]
    pub cross_city_card_hours: f64,
}

fn hours3(card_ms: u128) -> f64 {
    (card_ms as f64 / 3_600_000.0 * 1000.0).round() / 1000.0
}

fn ratio(num: u128, den: u128) -> Option<f64> {
    (den > 0).then(|| (num as f64 / den as f64 * 10_000.0).round() / 10_000.0)
}

fn money(units: i128) -> IndicatorResult<Money> {
    i64::try_from(units)
        .map(Money)
        .map_err(|_| IndicatorError::Overflow { what: "yuan" })
}

impl Rollup {
    /// The rows of a window, by period then group.
    pub fn rows(&self, w: &Window) -> IndicatorResult<Vec<Row>> {
        w.validate()?;
        let cells = self
            .cells(w.from, w.to, w.period, &[w.by.into()], w.tenant.as_ref())
            .pop()
            .unwrap_or_default();
        rows_of(&cells, w.period)
    }
}

/// Rows of cells of one grouping by `period`, in the cells' order.
pub(crate) fn rows_of(cells: &[Cell], period: Period) -> IndicatorResult<Vec<Row>> {
    cells
        .iter()
        .map(|c| {
            let capacity = c.cap.as_ref().map(|cap| {
                let span = (period.next(c.start).0 - c.start.0) as f64;
                Capacity {
                    installed_card_hours: hours3(cap.installed),
                    installed_fp16_pflops: (cap.tflop_ms as f64 / span / 1000.0 * 1000.0).round()
                        / 1000.0,
                    available_card_hours: hours3(cap.available),
                    allocated_card_hours: hours3(cap.allocated),
                    down_card_hours: hours3(cap.down),
                    drained_card_hours: hours3(cap.drained),
                    utilisation: ratio(cap.allocated, cap.available),
                    delivered_utilisation: ratio(
                        u128::from(c.usage.delivered) * 1000,
                        cap.available,
                    ),
                    availability: ratio(cap.installed - cap.down, cap.installed),
                }
            });
            Ok(Row {
                period: period.label(c.start),
                group: c.label.clone(),
                capacity,
                usage: usage(&c.usage)?,
            })
        })
        .collect()
}

fn usage(u: &UseSum) -> IndicatorResult<Usage> {
    let e = |o: Outcome| u.ended[o as usize];
    let waits = u.waits.histogram();
    Ok(Usage {
        allocated_card_hours: hours3(u.allocated),
        delivered_card_hours: hours3(u128::from(u.delivered) * 1000),
        delivered_card_seconds: u.delivered,
        jobs_submitted: u.submitted,
        jobs_started: u.started,
        jobs_succeeded: e(Outcome::Succeeded),
        jobs_failed: e(Outcome::Failed),
        jobs_cancelled: e(Outcome::Cancelled),
        jobs_timed_out: e(Outcome::TimedOut),
        wait_p50_secs: waits.quantile(0.50),
        wait_p95_secs: waits.quantile(0.95),
        wait_p99_secs: waits.quantile(0.99),
        gross_yuan: money(u.gross)?,
        subsidy_yuan: money(u.subsidy)?,
        payable_yuan: money(u.payable)?,
        subsidy_rate: (u.gross > 0)
            .then(|| (u.subsidy as f64 / u.gross as f64 * 10_000.0).round() / 10_000.0),
        active_tenants: u.active_tenants(),
        amendments: u.amendments,
        located_card_hours: hours3(u128::from(u.located) * 1000),
        cross_city_card_hours: hours3(u128::from(u.cross_city) * 1000),
    })
}

/// The network's headline figures for a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub installed_fp16_pflops: f64,
    pub domestic_fp16_pflops: f64,
    /// Domestic share of installed FP16 PFLOPS.
    pub domestic_share_installed: Option<f64>,
    /// Domestic share of delivered card-hours.
    pub domestic_share_delivered: Option<f64>,
    pub utilisation: Option<f64>,
    pub delivered_utilisation: Option<f64>,
    pub delivered_card_hours: f64,
    /// Delivered card-hours by tenant category.
    pub delivered_card_hours_by_category: BTreeMap<String, f64>,
    pub active_tenants: u64,
    /// Share of active tenants that are SMEs or start-ups.
    pub sme_startup_share: Option<f64>,
    pub wait_p50_secs: Option<u64>,
    pub wait_p95_secs: Option<u64>,
    pub gross_yuan: Money,
    pub subsidy_yuan: Money,
    pub payable_yuan: Money,
    pub subsidy_rate: Option<f64>,
    /// (installed - down) / installed, per center.
    pub center_availability: BTreeMap<String, Option<f64>>,
    /// Share of the delivered card-hours whose tenant's and center's cities are known that ran
    /// outside the tenant's city.
    #[serde(default)]
    pub cross_city_share: Option<f64>,
}

/// The groupings a summary is made of.
pub(crate) const SUMMARY_GROUPS: [Group; 4] =
    [Group::All, Group::Center, Group::Category, Group::Origin];

impl Rollup {
    /// The summary of `[from, to)` for the whole network.
    pub fn summary(&self, from: Timestamp, to: Timestamp) -> IndicatorResult<Summary> {
        let cells = self.cells(from, to, Period::Month, &SUMMARY_GROUPS, None);
        summary_of(&cells, from, to)
    }
}

/// Each group's cells added up over the periods.
fn whole(cells: &[Cell]) -> BTreeMap<&str, (Option<CapSum>, UseSum)> {
    let mut groups: BTreeMap<&str, (Option<CapSum>, UseSum)> = BTreeMap::new();
    for c in cells {
        let g = groups.entry(c.label.as_str()).or_default();
        if let Some(cap) = &c.cap {
            g.0.get_or_insert_with(CapSum::default).merge(cap);
        }
        g.1.merge(&c.usage);
    }
    groups
}

/// The summary from the cells of [`SUMMARY_GROUPS`] (in that order) over `[from, to)`, by any
/// period: each group's cells are added up over the periods.
pub(crate) fn summary_of(
    cells: &[Vec<Cell>],
    from: Timestamp,
    to: Timestamp,
) -> IndicatorResult<Summary> {
    let [all, centers, categories, origins] = cells else {
        unreachable!("the cells of SUMMARY_GROUPS");
    };
    let (all, centers, categories, origins) = (
        whole(all),
        whole(centers),
        whole(categories),
        whole(origins),
    );
    let (cap, uses) = all.get("all").cloned().unwrap_or_default();
    let cap = cap.unwrap_or_default();
    let domestic = origins.get(DOMESTIC).cloned().unwrap_or_default();
    let domestic_cap = domestic.0.unwrap_or_default();
    let span = (to.0 - from.0) as f64;
    let pflops = |c: &CapSum| (c.tflop_ms as f64 / span / 1000.0 * 1000.0).round() / 1000.0;
    let smes: u64 = [TenantCategory::Sme, TenantCategory::Startup]
        .iter()
        .filter_map(|c| categories.get(c.as_str()))
        .map(|(_, u)| u.active_tenants())
        .sum();
    let active = uses.active_tenants();
    let u = usage(&uses)?;
    Ok(Summary {
        installed_fp16_pflops: pflops(&cap),
        domestic_fp16_pflops: pflops(&domestic_cap),
        domestic_share_installed: ratio(domestic_cap.tflop_ms, cap.tflop_ms),
        domestic_share_delivered: ratio(
            u128::from(domestic.1.delivered),
            u128::from(uses.delivered),
        ),
        utilisation: ratio(cap.allocated, cap.available),
        delivered_utilisation: ratio(u128::from(uses.delivered) * 1000, cap.available),
        delivered_card_hours: u.delivered_card_hours,
        delivered_card_hours_by_category: categories
            .iter()
            .map(|(k, (_, u))| (k.to_string(), hours3(u128::from(u.delivered) * 1000)))
            .collect(),
        active_tenants: active,
        sme_startup_share: ratio(u128::from(smes), u128::from(active)),
        wait_p50_secs: u.wait_p50_secs,
        wait_p95_secs: u.wait_p95_secs,
        gross_yuan: u.gross_yuan,
        subsidy_yuan: u.subsidy_yuan,
        payable_yuan: u.payable_yuan,
        subsidy_rate: u.subsidy_rate,
        center_availability: centers
            .iter()
            .filter_map(|(k, (c, _))| {
                c.as_ref()
                    .map(|c| (k.to_string(), ratio(c.installed - c.down, c.installed)))
            })
            .collect(),
        cross_city_share: ratio(u128::from(uses.cross_city), u128::from(uses.located)),
    })
}

//! The indicators: a window of the rollup, grouped by period and by center, SKU, vendor or
//! tenant category, and the network's summary figures. Every figure is defined in
//! docs/INDICATORS.md; the names here are the ones used there.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use suanli_types::{Money, TenantCategory, TenantId, Timestamp};

use crate::calendar::Period;
use crate::histogram::WaitHistogram;
use crate::rollup::{Outcome, PoolHour, PoolKey, Rollup, UsageHour, UsageKey};
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
}

fn hours3(card_ms: u128) -> f64 {
    (card_ms as f64 / 3_600_000.0 * 1000.0).round() / 1000.0
}

fn ratio(num: u128, den: u128) -> Option<f64> {
    (den > 0).then(|| (num as f64 / den as f64 * 10_000.0).round() / 10_000.0)
}

#[derive(Default)]
struct CapSum {
    installed: u128,
    available: u128,
    allocated: u128,
    down: u128,
    drained: u128,
    tflop_ms: u128,
}

impl CapSum {
    fn add(&mut self, h: &PoolHour) {
        self.installed += u128::from(h.installed());
        self.available += u128::from(h.available());
        self.allocated += u128::from(h.allocated());
        self.down += u128::from(h.down());
        self.drained += u128::from(h.drained());
        self.tflop_ms += h.installed_tflop_ms;
    }
}

#[derive(Default)]
struct UseSum {
    allocated: u128,
    delivered: u64,
    submitted: u64,
    started: u64,
    ended: [u64; 4],
    waits: WaitHistogram,
    gross: i128,
    subsidy: i128,
    payable: i128,
    tenants: BTreeSet<TenantId>,
    amendments: u64,
}

impl UseSum {
    fn add(&mut self, tenant: &TenantId, u: &UsageHour) {
        self.allocated += u128::from(u.allocated);
        self.delivered += u.delivered;
        self.submitted += u.submitted;
        self.started += u.started;
        for (s, e) in self.ended.iter_mut().zip(u.ended) {
            *s += e;
        }
        self.waits.merge(&u.waits);
        self.gross += i128::from(u.gross);
        self.subsidy += i128::from(u.subsidy);
        self.payable += i128::from(u.payable);
        if u.started > 0 || u.allocated > 0 || u.delivered > 0 {
            self.tenants.insert(tenant.clone());
        }
        self.amendments += u.amendments;
    }
}

fn money(units: i128) -> IndicatorResult<Money> {
    i64::try_from(units)
        .map(Money)
        .map_err(|_| IndicatorError::Overflow { what: "yuan" })
}

impl Rollup {
    fn pool_group(&self, by: By, pool: &PoolKey) -> String {
        match by {
            By::All | By::Category => "all".into(),
            By::Center => pool.0.as_str().to_string(),
            By::Sku => pool.1.clone(),
            By::Vendor => self
                .pool_info(pool)
                .map_or("unknown".into(), |i| i.vendor.clone()),
        }
    }

    fn usage_group(&self, by: By, key: &UsageKey) -> String {
        match (by, &key.pool) {
            (By::Category, _) => self
                .category(&key.tenant)
                .map_or("unknown", TenantCategory::as_str)
                .to_string(),
            (By::All, _) => "all".into(),
            (_, Some(pool)) => self.pool_group(by, pool),
            (_, None) => "not placed".into(),
        }
    }

    /// The rows of a window, by period then group.
    pub fn rows(&self, w: &Window) -> IndicatorResult<Vec<Row>> {
        self.rows_relabelled(w, &|_, g| g)
    }

    /// All queueing delays of jobs that started in `[from, to)`.
    pub fn waits(&self, from: Timestamp, to: Timestamp) -> WaitHistogram {
        let mut all = WaitHistogram::default();
        for ((h, _), u) in self.usage_hours() {
            if *h >= from && *h < to {
                all.merge(&u.waits);
            }
        }
        all
    }

    /// As [`Rollup::rows`], with each usage group's label passed through `relabel` (given the
    /// period's start), so that groups can be folded together.
    pub fn rows_relabelled(
        &self,
        w: &Window,
        relabel: &dyn Fn(Timestamp, String) -> String,
    ) -> IndicatorResult<Vec<Row>> {
        w.validate()?;
        let mut caps: BTreeMap<(Timestamp, String), CapSum> = BTreeMap::new();
        let mut uses: BTreeMap<(Timestamp, String), UseSum> = BTreeMap::new();
        let capacity = w.tenant.is_none() && w.by != By::Category;
        if capacity {
            for ((h, pool), c) in self.pool_hours() {
                if *h < w.from || *h >= w.to {
                    continue;
                }
                let key = (w.period.start(*h), self.pool_group(w.by, pool));
                caps.entry(key).or_default().add(c);
            }
        }
        for ((h, key), u) in self.usage_hours() {
            if *h < w.from || *h >= w.to || w.tenant.as_ref().is_some_and(|t| *t != key.tenant) {
                continue;
            }
            let start = w.period.start(*h);
            let k = (start, relabel(start, self.usage_group(w.by, key)));
            uses.entry(k).or_default().add(&key.tenant, u);
        }
        let keys: BTreeSet<(Timestamp, String)> = caps.keys().chain(uses.keys()).cloned().collect();
        let empty = UseSum::default();
        keys.into_iter()
            .map(|k| {
                let cap = caps.get(&k).map(|c| {
                    let span = (w.period.next(k.0).0 - k.0.0) as f64;
                    Capacity {
                        installed_card_hours: hours3(c.installed),
                        installed_fp16_pflops: (c.tflop_ms as f64 / span / 1000.0 * 1000.0).round()
                            / 1000.0,
                        available_card_hours: hours3(c.available),
                        allocated_card_hours: hours3(c.allocated),
                        down_card_hours: hours3(c.down),
                        drained_card_hours: hours3(c.drained),
                        utilisation: ratio(c.allocated, c.available),
                        delivered_utilisation: None,
                        availability: ratio(c.installed - c.down, c.installed),
                    }
                });
                let u = uses.get(&k).unwrap_or(&empty);
                let mut row = Row {
                    period: w.period.label(k.0),
                    group: k.1.clone(),
                    capacity: cap,
                    usage: usage(u)?,
                };
                if let Some(c) = row.capacity.as_mut() {
                    let available = caps.get(&k).map_or(0, |c| c.available);
                    c.delivered_utilisation = ratio(u128::from(u.delivered) * 1000, available);
                }
                Ok(row)
            })
            .collect()
    }
}

fn usage(u: &UseSum) -> IndicatorResult<Usage> {
    let e = |o: Outcome| u.ended[o as usize];
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
        wait_p50_secs: u.waits.quantile(0.50),
        wait_p95_secs: u.waits.quantile(0.95),
        wait_p99_secs: u.waits.quantile(0.99),
        gross_yuan: money(u.gross)?,
        subsidy_yuan: money(u.subsidy)?,
        payable_yuan: money(u.payable)?,
        subsidy_rate: (u.gross > 0)
            .then(|| (u.subsidy as f64 / u.gross as f64 * 10_000.0).round() / 10_000.0),
        active_tenants: u.tenants.len() as u64,
        amendments: u.amendments,
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
}

impl Rollup {
    /// The summary of `[from, to)` for the whole network.
    pub fn summary(&self, from: Timestamp, to: Timestamp) -> IndicatorResult<Summary> {
        let inside = |h: &Timestamp| *h >= from && *h < to;
        let (mut all, mut domestic) = (CapSum::default(), CapSum::default());
        let mut centers: BTreeMap<String, CapSum> = BTreeMap::new();
        for ((_, pool), c) in self.pool_hours().iter().filter(|((h, _), _)| inside(h)) {
            all.add(c);
            if self.pool_info(pool).is_some_and(|i| i.domestic) {
                domestic.add(c);
            }
            centers.entry(pool.0.as_str().into()).or_default().add(c);
        }
        let mut uses = UseSum::default();
        let mut delivered_domestic = 0u64;
        let mut by_category: BTreeMap<String, u64> = BTreeMap::new();
        let mut active: BTreeMap<TenantId, Option<TenantCategory>> = BTreeMap::new();
        for ((_, key), u) in self.usage_hours().iter().filter(|((h, _), _)| inside(h)) {
            uses.add(&key.tenant, u);
            let pool_domestic = key
                .pool
                .as_ref()
                .and_then(|p| self.pool_info(p))
                .is_some_and(|i| i.domestic);
            if pool_domestic {
                delivered_domestic += u.delivered;
            }
            let cat = self.category(&key.tenant);
            *by_category
                .entry(cat.map_or("unknown", TenantCategory::as_str).into())
                .or_default() += u.delivered;
            if u.started > 0 || u.allocated > 0 || u.delivered > 0 {
                active.insert(key.tenant.clone(), cat);
            }
        }
        let span = (to.0 - from.0) as f64;
        let pflops = |c: &CapSum| (c.tflop_ms as f64 / span / 1000.0 * 1000.0).round() / 1000.0;
        let smes = active
            .values()
            .filter(|c| matches!(c, Some(TenantCategory::Sme | TenantCategory::Startup)))
            .count() as u128;
        let u = usage(&uses)?;
        Ok(Summary {
            installed_fp16_pflops: pflops(&all),
            domestic_fp16_pflops: pflops(&domestic),
            domestic_share_installed: ratio(domestic.tflop_ms, all.tflop_ms),
            domestic_share_delivered: ratio(
                u128::from(delivered_domestic),
                u128::from(uses.delivered),
            ),
            utilisation: ratio(all.allocated, all.available),
            delivered_utilisation: ratio(u128::from(uses.delivered) * 1000, all.available),
            delivered_card_hours: u.delivered_card_hours,
            delivered_card_hours_by_category: by_category
                .into_iter()
                .map(|(k, v)| (k, hours3(u128::from(v) * 1000)))
                .collect(),
            active_tenants: active.len() as u64,
            sme_startup_share: ratio(smes, active.len() as u128),
            wait_p50_secs: u.wait_p50_secs,
            wait_p95_secs: u.wait_p95_secs,
            gross_yuan: u.gross_yuan,
            subsidy_yuan: u.subsidy_yuan,
            payable_yuan: u.payable_yuan,
            subsidy_rate: u.subsidy_rate,
            center_availability: centers
                .into_iter()
                .map(|(k, c)| (k, ratio(c.installed - c.down, c.installed)))
                .collect(),
        })
    }
}

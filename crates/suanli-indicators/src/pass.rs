//! One pass over a window of the rollup that sums its hours into cells (period x group), for
//! several groupings at once.
//!
//! Everything a query reads is a sum of hours, and the hours come in order (by hour, then by
//! pool, then by tenant), so the pass does integer work per hour, once per hour however many
//! groupings it fills: it sums the hours into base cells by (period, pool, tenant category),
//! looked up by number (a tenant's category once per tenant, a period's start once per hour),
//! then folds the base cells into each grouping's cells. Active tenants are bits; waits are
//! added into a flat array of buckets. Labels are made once per group. The definitions of the sums are those of docs/INDICATORS.md; `reference.rs` (the
//! tests) computes the same cells the slow, obvious way and the two are checked equal.

use rustc_hash::FxHashMap as HashMap;
use suanli_types::{CenterId, TenantCategory, TenantId, Timestamp};

use crate::calendar::Period;
use crate::histogram::WaitSum;
use crate::indicators::By;
use crate::rollup::{PoolHour, PoolKey, Rollup, UsageHour, UsageId};

/// What cells are grouped by: a public grouping, or the pools' origin (for the summary's
/// domestic shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    All,
    Center,
    Sku,
    Vendor,
    Category,
    /// `domestic` or `imported` (`unknown` for a pool without registration facts).
    Origin,
}

impl From<By> for Group {
    fn from(by: By) -> Group {
        match by {
            By::All => Group::All,
            By::Center => Group::Center,
            By::Sku => Group::Sku,
            By::Vendor => Group::Vendor,
            By::Category => Group::Category,
        }
    }
}

pub(crate) const DOMESTIC: &str = "domestic";

impl Group {
    /// Capacity is grouped by pool; a category is no pool's.
    pub(crate) fn has_capacity(self) -> bool {
        self != Group::Category
    }

    /// The label of the group of `pool` (none: usage of a job never placed).
    pub(crate) fn pool_label(self, r: &Rollup, pool: Option<&PoolKey>) -> String {
        let Some(pool) = pool else {
            return match self {
                Group::All | Group::Category => "all".into(),
                _ => "not placed".into(),
            };
        };
        match self {
            Group::All | Group::Category => "all".into(),
            Group::Center => pool.0.as_str().to_string(),
            Group::Sku => pool.1.clone(),
            Group::Vendor => r
                .pool_info(pool)
                .map_or("unknown".into(), |i| i.vendor.clone()),
            Group::Origin => match r.pool_info(pool) {
                Some(i) if i.domestic => DOMESTIC.into(),
                Some(_) => "imported".into(),
                None => "unknown".into(),
            },
        }
    }
}

/// The label of a tenant's category.
pub(crate) fn category_label(c: Option<TenantCategory>) -> &'static str {
    c.map_or("unknown", TenantCategory::as_str)
}

/// Capacity of a cell, in card-milliseconds (FP16 TFLOPS x card-milliseconds for installed
/// compute).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapSum {
    pub installed: u128,
    pub available: u128,
    pub allocated: u128,
    pub down: u128,
    pub drained: u128,
    pub tflop_ms: u128,
}

impl CapSum {
    pub(crate) fn add(&mut self, h: &PoolHour) {
        self.installed += u128::from(h.installed());
        self.available += u128::from(h.available());
        self.allocated += u128::from(h.allocated());
        self.down += u128::from(h.down());
        self.drained += u128::from(h.drained());
        self.tflop_ms += h.installed_tflop_ms;
    }

    pub(crate) fn merge(&mut self, o: &CapSum) {
        self.installed += o.installed;
        self.available += o.available;
        self.allocated += o.allocated;
        self.down += o.down;
        self.drained += o.drained;
        self.tflop_ms += o.tflop_ms;
    }
}

/// Usage of a cell. Active tenants are bits by the pass's tenant numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UseSum {
    pub allocated: u128,
    pub delivered: u64,
    pub submitted: u64,
    pub started: u64,
    pub ended: [u64; 4],
    pub waits: WaitSum,
    pub gross: i128,
    pub subsidy: i128,
    pub payable: i128,
    tenants: Vec<u64>,
    pub amendments: u64,
    /// Delivered card-seconds where both the tenant's and the center's cities are known, and of
    /// those, where they differ.
    pub located: u64,
    pub cross_city: u64,
}

impl UseSum {
    /// Adds the hour `u` of the tenant numbered `tenant`.
    pub(crate) fn add(&mut self, tenant: u32, u: &UsageHour) {
        self.located += u.located;
        self.cross_city += u.cross_city;
        self.allocated += u128::from(u.allocated);
        self.delivered += u.delivered;
        self.submitted += u.submitted;
        self.started += u.started;
        for (s, e) in self.ended.iter_mut().zip(u.ended) {
            *s += e;
        }
        self.waits.add(&u.waits);
        self.gross += i128::from(u.gross);
        self.subsidy += i128::from(u.subsidy);
        self.payable += i128::from(u.payable);
        if u.started > 0 || u.allocated > 0 || u.delivered > 0 {
            self.activate(tenant);
        }
        self.amendments += u.amendments;
    }

    pub(crate) fn activate(&mut self, tenant: u32) {
        let (word, bit) = (tenant as usize / 64, tenant % 64);
        if self.tenants.len() <= word {
            self.tenants.resize(word + 1, 0);
        }
        self.tenants[word] |= 1 << bit;
    }

    pub(crate) fn merge(&mut self, o: &UseSum) {
        self.allocated += o.allocated;
        self.delivered += o.delivered;
        self.submitted += o.submitted;
        self.started += o.started;
        for (s, e) in self.ended.iter_mut().zip(o.ended) {
            *s += e;
        }
        self.waits.merge(&o.waits);
        self.gross += o.gross;
        self.subsidy += o.subsidy;
        self.payable += o.payable;
        if self.tenants.len() < o.tenants.len() {
            self.tenants.resize(o.tenants.len(), 0);
        }
        for (w, o) in self.tenants.iter_mut().zip(&o.tenants) {
            *w |= o;
        }
        self.amendments += o.amendments;
        self.located += o.located;
        self.cross_city += o.cross_city;
    }

    /// Tenants active in the cell.
    pub(crate) fn active_tenants(&self) -> u64 {
        self.tenants.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// One period of one group.
#[derive(Clone, Debug)]
pub(crate) struct Cell {
    pub start: Timestamp,
    pub label: String,
    /// None where no pool hour fell in it (and always by category or in a tenant's view).
    pub cap: Option<CapSum>,
    pub usage: UseSum,
}

/// The cells of one grouping as the pass fills them.
struct Grouping<'r> {
    group: Group,
    labels: Vec<String>,
    label_ids: HashMap<String, u32>,
    pools: HashMap<Option<&'r PoolKey>, u32>,
    /// By the rollup's pool number + 1 (0: not placed), the group of usage.
    numbered: Vec<Option<u32>>,
    /// Per period start, the cell of each group (by group number).
    index: HashMap<Timestamp, Vec<Option<usize>>>,
    /// The period last asked for and its groups' cells (taken out of `index` while current).
    current: Option<(Timestamp, Vec<Option<usize>>)>,
    cells: Vec<(Timestamp, u32, Option<CapSum>, UseSum)>,
}

impl<'r> Grouping<'r> {
    fn new(group: Group) -> Grouping<'r> {
        Grouping {
            group,
            labels: Vec::new(),
            label_ids: HashMap::default(),
            pools: HashMap::default(),
            numbered: Vec::new(),
            index: HashMap::default(),
            current: None,
            cells: Vec::new(),
        }
    }

    fn label_id(&mut self, label: &str) -> u32 {
        if let Some(id) = self.label_ids.get(label) {
            return *id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(label.to_string());
        self.label_ids.insert(label.to_string(), id);
        id
    }

    fn pool_group(&mut self, r: &Rollup, pool: Option<&'r PoolKey>) -> u32 {
        if let Some(g) = self.pools.get(&pool) {
            return *g;
        }
        let label = self.group.pool_label(r, pool);
        let g = self.label_id(&label);
        self.pools.insert(pool, g);
        g
    }

    /// The group of usage in the pool numbered `pool` (none: not placed).
    fn numbered_group(&mut self, r: &Rollup, pool: Option<u32>) -> u32 {
        let i = pool.map_or(0, |p| p as usize + 1);
        if let Some(Some(g)) = self.numbered.get(i) {
            return *g;
        }
        let label = self
            .group
            .pool_label(r, pool.map(|p| r.names().pool_key(p)));
        let g = self.label_id(&label);
        if self.numbered.len() <= i {
            self.numbered.resize(i + 1, None);
        }
        self.numbered[i] = Some(g);
        g
    }

    fn cell(
        &mut self,
        start: Timestamp,
        group: u32,
    ) -> &mut (Timestamp, u32, Option<CapSum>, UseSum) {
        if self.current.as_ref().is_none_or(|(s, _)| *s != start) {
            if let Some((s, slots)) = self.current.take() {
                self.index.insert(s, slots);
            }
            let slots = self.index.remove(&start).unwrap_or_default();
            self.current = Some((start, slots));
        }
        let slots = &mut self.current.as_mut().expect("just set").1;
        let g = group as usize;
        if slots.len() <= g {
            slots.resize(g + 1, None);
        }
        let i = match slots[g] {
            Some(i) => i,
            None => {
                let i = self.cells.len();
                self.cells.push((start, group, None, UseSum::default()));
                slots[g] = Some(i);
                i
            }
        };
        &mut self.cells[i]
    }

    /// The cells, by period start then label.
    fn finish(self) -> Vec<Cell> {
        let labels = self.labels;
        let mut cells: Vec<Cell> = self
            .cells
            .into_iter()
            .map(|(start, g, cap, usage)| Cell {
                start,
                label: labels[g as usize].clone(),
                cap,
                usage,
            })
            .collect();
        cells.sort_by(|a, b| (a.start, &a.label).cmp(&(b.start, &b.label)));
        cells
    }
}

/// The start of the period of an hour, remembered for the hour.
struct Clock {
    period: Period,
    last: Option<(Timestamp, Timestamp)>,
}

impl Clock {
    fn start(&mut self, hour: Timestamp) -> Timestamp {
        match self.last {
            Some((h, s)) if h == hour => s,
            _ => {
                let s = self.period.start(hour);
                self.last = Some((hour, s));
                s
            }
        }
    }
}

/// Tenant categories as small numbers: 0 unknown, then [`TenantCategory::ALL`] in order.
const CATEGORIES: usize = TenantCategory::ALL.len() + 1;

fn category_number(c: Option<TenantCategory>) -> u8 {
    c.and_then(|c| TenantCategory::ALL.iter().position(|k| *k == c))
        .map_or(0, |i| i as u8 + 1)
}

fn category_of_number(n: u8) -> &'static str {
    match n {
        0 => category_label(None),
        n => category_label(Some(TenantCategory::ALL[usize::from(n) - 1])),
    }
}

/// Usage summed by (period start, pool number, tenant category): every grouping is a fold of
/// these, so that a pass adds each hour once however many groupings it fills.
type BaseUse = (Timestamp, Option<u32>, u8, UseSum);

impl Rollup {
    /// The cells of `[from, to)` by `period` for each of `groups`, in one pass; only the usage of
    /// `tenant` and no capacity when a tenant is given.
    ///
    /// The pass sums the hours into base cells (capacity by period and pool; usage by period,
    /// pool and tenant category), then folds the base cells into each grouping's cells.
    pub(crate) fn cells(
        &self,
        from: Timestamp,
        to: Timestamp,
        period: Period,
        groups: &[Group],
        tenant: Option<&TenantId>,
    ) -> Vec<Vec<Cell>> {
        let mut gs: Vec<Grouping> = groups.iter().map(|g| Grouping::new(*g)).collect();
        let mut clock = Clock { period, last: None };
        let mut base_cap: Vec<(Timestamp, &PoolKey, CapSum)> = Vec::new();
        if tenant.is_none() && gs.iter().any(|g| g.group.has_capacity()) {
            let mut index: HashMap<(Timestamp, &PoolKey), usize> = HashMap::default();
            let lowest = (from, (CenterId(String::new()), String::new()));
            for ((h, pool), c) in self.pool_hours().range(lowest..) {
                if *h >= to {
                    break;
                }
                let start = clock.start(*h);
                let i = *index.entry((start, pool)).or_insert_with(|| {
                    base_cap.push((start, pool, CapSum::default()));
                    base_cap.len() - 1
                });
                base_cap[i].2.add(c);
            }
        }
        let only = match tenant {
            Some(t) => match self.names().tenant_number(t) {
                Some(n) => Some(n),
                None => return gs.into_iter().map(Grouping::finish).collect(),
            },
            None => None,
        };
        let lowest = (
            from,
            UsageId {
                pool: None,
                tenant: 0,
            },
        );
        let mut base_use: Vec<BaseUse> = Vec::new();
        // By tenant number, its category's number + 1 (0: not looked up yet).
        let mut categories: Vec<u8> = Vec::new();
        // The current period's base cells, by (pool number + 1) x CATEGORIES + category. Hours
        // come in order, so a period never comes back once the next has begun.
        let mut current: Option<Timestamp> = None;
        let mut slots: Vec<usize> = Vec::new();
        for ((h, key), u) in self.usage_by_number().range(lowest..) {
            if *h >= to {
                break;
            }
            if only.is_some_and(|t| t != key.tenant) {
                continue;
            }
            let start = clock.start(*h);
            if current != Some(start) {
                current = Some(start);
                slots.clear();
            }
            let t = key.tenant as usize;
            if categories.len() <= t {
                categories.resize(t + 1, 0);
            }
            if categories[t] == 0 {
                let c = self.category(self.names().tenant_id(key.tenant));
                categories[t] = category_number(c) + 1;
            }
            let category = categories[t] - 1;
            let slot = key.pool.map_or(0, |p| p as usize + 1) * CATEGORIES + usize::from(category);
            if slots.len() <= slot {
                slots.resize(slot + 1, usize::MAX);
            }
            if slots[slot] == usize::MAX {
                slots[slot] = base_use.len();
                base_use.push((start, key.pool, category, UseSum::default()));
            }
            base_use[slots[slot]].3.add(key.tenant, u);
        }
        for g in &mut gs {
            if g.group.has_capacity() {
                for (start, pool, cap) in &base_cap {
                    let id = g.pool_group(self, Some(pool));
                    g.cell(*start, id)
                        .2
                        .get_or_insert_with(CapSum::default)
                        .merge(cap);
                }
            }
            for (start, pool, category, usage) in &base_use {
                let id = match g.group {
                    Group::Category => g.label_id(category_of_number(*category)),
                    _ => g.numbered_group(self, *pool),
                };
                g.cell(*start, id).3.merge(usage);
            }
        }
        gs.into_iter().map(Grouping::finish).collect()
    }
}

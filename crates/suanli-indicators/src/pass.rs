//! One pass over a window of the rollup that sums its hours into cells (period x group), for
//! several groupings at once.
//!
//! Everything a query reads is a sum of hours, and the hours come in order (by hour, then by
//! pool, then by tenant), so the pass does integer work per hour: a pool's group, a tenant's
//! number and category, and a period's start are looked up when they change from the hour
//! before (or once per distinct value), never rebuilt as strings; a cell is a slot in a vector;
//! active tenants are bits; waits are added into a flat array of buckets. Labels are made once
//! per group. The definitions of the sums are those of docs/INDICATORS.md; `reference.rs` (the
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
    last_pool: Option<(Option<&'r PoolKey>, u32)>,
    /// By the rollup's pool number + 1 (0: not placed), the group of usage.
    numbered: Vec<Option<u32>>,
    /// By tenant number, the group of its category (by category).
    tenant_groups: Vec<Option<u32>>,
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
            last_pool: None,
            numbered: Vec::new(),
            tenant_groups: Vec::new(),
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
        if let Some((p, g)) = self.last_pool
            && p == pool
        {
            return g;
        }
        let g = match self.pools.get(&pool) {
            Some(g) => *g,
            None => {
                let label = self.group.pool_label(r, pool);
                let g = self.label_id(&label);
                self.pools.insert(pool, g);
                g
            }
        };
        self.last_pool = Some((pool, g));
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

    fn category_group(&mut self, r: &Rollup, tenant: u32) -> u32 {
        let i = tenant as usize;
        if let Some(Some(g)) = self.tenant_groups.get(i) {
            return *g;
        }
        let category = category_label(r.category(r.names().tenant_id(tenant)));
        let g = self.label_id(category);
        if self.tenant_groups.len() <= i {
            self.tenant_groups.resize(i + 1, None);
        }
        self.tenant_groups[i] = Some(g);
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

impl Rollup {
    /// The cells of `[from, to)` by `period` for each of `groups`, in one pass; only the usage of
    /// `tenant` and no capacity when a tenant is given.
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
        if tenant.is_none() {
            let lowest = (from, (CenterId(String::new()), String::new()));
            for ((h, pool), c) in self.pool_hours().range(lowest..) {
                if *h >= to {
                    break;
                }
                let start = clock.start(*h);
                for g in gs.iter_mut().filter(|g| g.group.has_capacity()) {
                    let id = g.pool_group(self, Some(pool));
                    g.cell(start, id)
                        .2
                        .get_or_insert_with(CapSum::default)
                        .add(c);
                }
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
        for ((h, key), u) in self.usage_by_number().range(lowest..) {
            if *h >= to {
                break;
            }
            if only.is_some_and(|t| t != key.tenant) {
                continue;
            }
            let start = clock.start(*h);
            for g in &mut gs {
                let id = match g.group {
                    Group::Category => g.category_group(self, key.tenant),
                    _ => g.numbered_group(self, key.pool),
                };
                g.cell(start, id).3.add(key.tenant, u);
            }
        }
        gs.into_iter().map(Grouping::finish).collect()
    }
}

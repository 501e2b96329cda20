//! The hourly rollup: facts in, per-hour cells out.
//!
//! Time-interval figures (installed, available, allocated, down and drained card-time) are kept
//! open per pool and per attempt and split over the hours they cover when something changes or
//! when the shell calls [`Rollup::advance`]; counted figures (jobs, waits, delivered card-seconds,
//! yuan) go to the hour they belong to. Available card-time counts allocated cards first, so in
//! every hour `allocated <= available <= installed`: a card that holds an attempt is available
//! whatever the center's state (as Slurm's `sreport` counts an allocated node).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};

use crate::calendar::hour_of;
use crate::histogram::WaitHistogram;
use crate::{HOUR_MS, IndicatorError, IndicatorResult};

/// A center's state as the hub sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    /// Its agent is live and it takes work.
    Online,
    /// Live but drained by the operator or the site: planned down.
    Drained,
    /// Its agent is silent (or it never came up): down.
    Down,
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::Cancelled,
        Outcome::TimedOut,
    ];
    fn index(self) -> usize {
        self as usize
    }
}

/// What happened, as the shell saw it. Facts carry their own time; within the open hour any
/// order is fine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// A pool as registered from `at` on (0 cards: removed).
    Pool {
        at: Timestamp,
        center: CenterId,
        sku: String,
        cards: u64,
        vendor: String,
        fp16_tflops: u32,
        domestic: bool,
        /// The center's city (facts stored before cities were kept have none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        city: Option<String>,
    },
    /// Every pool of `center` is in `state` from `at` on (new pools start `down`).
    Center {
        at: Timestamp,
        center: CenterId,
        state: PoolState,
    },
    /// A tenant's category (for the figures by category) and city (for cross-city dispatch).
    Tenant {
        tenant: TenantId,
        category: TenantCategory,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        city: Option<String>,
    },
    Submitted {
        at: Timestamp,
        job: JobId,
        tenant: TenantId,
    },
    /// An attempt holds `cards` cards of a pool from `at` (its placement) until it is released.
    Allocated {
        at: Timestamp,
        job: JobId,
        attempt: u32,
        center: CenterId,
        sku: String,
        cards: u64,
    },
    /// An attempt started: the job's first start ends its queueing delay.
    Started {
        at: Timestamp,
        job: JobId,
        attempt: u32,
    },
    /// An attempt's cards are free again (it ended, was lost, cancelled or handed back).
    Released {
        at: Timestamp,
        job: JobId,
        attempt: u32,
    },
    /// The job ended, once.
    Ended {
        at: Timestamp,
        job: JobId,
        outcome: Outcome,
    },
    /// A bill line: `card_seconds` delivered by an attempt that ran from `started` to `ended`.
    Billed {
        center: CenterId,
        sku: String,
        tenant: TenantId,
        started: Timestamp,
        ended: Timestamp,
        card_seconds: u64,
        gross: Money,
        subsidy: Money,
        payable: Money,
    },
}

impl Fact {
    /// When it happened: a bill line when its run ended; a tenant's category has no time.
    pub fn time(&self) -> Option<Timestamp> {
        match self {
            Fact::Pool { at, .. }
            | Fact::Center { at, .. }
            | Fact::Submitted { at, .. }
            | Fact::Allocated { at, .. }
            | Fact::Started { at, .. }
            | Fact::Released { at, .. }
            | Fact::Ended { at, .. } => Some(*at),
            Fact::Tenant { .. } => None,
            Fact::Billed { ended, .. } => Some(*ended),
        }
    }
}

/// A pool: a center's cards of one SKU.
pub type PoolKey = (CenterId, String);

/// One pool's card-time in one hour, in card-milliseconds, by the center's state
/// ([`PoolState`] order: online, drained, down). The figures of the hour derive from it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolHour {
    /// Registered cards x time, by state.
    pub registered: [u64; 3],
    /// Cards held by attempts x time, by state.
    pub held: [u64; 3],
    /// Registered card-milliseconds x FP16 TFLOPS per card.
    pub installed_tflop_ms: u128,
}

impl PoolHour {
    /// Per state, the cards that count as installed: registered, or held when more are held
    /// (a pool shrank under its attempts).
    fn counted(&self, s: usize) -> u64 {
        self.registered[s].max(self.held[s])
    }
    pub fn installed(&self) -> u64 {
        (0..3).map(|s| self.counted(s)).sum()
    }
    pub fn allocated(&self) -> u64 {
        self.held.iter().sum()
    }
    /// Online cards, and held cards whatever the state.
    pub fn available(&self) -> u64 {
        self.counted(0) + self.held[1] + self.held[2]
    }
    pub fn drained(&self) -> u64 {
        self.counted(1) - self.held[1]
    }
    pub fn down(&self) -> u64 {
        self.counted(2) - self.held[2]
    }
}

/// Where usage is counted: a pool (none for a job never placed) and a tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageKey {
    pub pool: Option<PoolKey>,
    pub tenant: TenantId,
}

/// A [`UsageKey`] by the rollup's numbers of its pool and tenant (see [`Names`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct UsageId {
    pub pool: Option<u32>,
    pub tenant: u32,
}

/// Pools and tenants numbered in the order the rollup meets them, so that its 2 million usage
/// hours of a quarter are keyed by two integers, not three strings each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Names {
    pools: Vec<PoolKey>,
    pool_ids: HashMap<PoolKey, u32>,
    tenants: Vec<TenantId>,
    tenant_ids: HashMap<TenantId, u32>,
}

impl Names {
    fn pool(&mut self, p: &PoolKey) -> u32 {
        if let Some(n) = self.pool_ids.get(p) {
            return *n;
        }
        let n = self.pools.len() as u32;
        self.pools.push(p.clone());
        self.pool_ids.insert(p.clone(), n);
        n
    }

    fn tenant(&mut self, t: &TenantId) -> u32 {
        if let Some(n) = self.tenant_ids.get(t) {
            return *n;
        }
        let n = self.tenants.len() as u32;
        self.tenants.push(t.clone());
        self.tenant_ids.insert(t.clone(), n);
        n
    }

    pub(crate) fn pool_key(&self, n: u32) -> &PoolKey {
        &self.pools[n as usize]
    }

    pub(crate) fn tenant_id(&self, n: u32) -> &TenantId {
        &self.tenants[n as usize]
    }

    pub(crate) fn tenant_number(&self, t: &TenantId) -> Option<u32> {
        self.tenant_ids.get(t).copied()
    }

    fn key(&self, id: UsageId) -> UsageKey {
        UsageKey {
            pool: id.pool.map(|p| self.pool_key(p).clone()),
            tenant: self.tenant_id(id.tenant).clone(),
        }
    }
}

/// One tenant's use of one pool in one hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageHour {
    /// Card-milliseconds held by its attempts.
    pub allocated: u64,
    /// Card-seconds billed.
    pub delivered: u64,
    pub submitted: u64,
    /// Jobs that started for the first time, and their waits since submission.
    pub started: u64,
    pub waits: WaitHistogram,
    /// Jobs ended, by [`Outcome`].
    pub ended: [u64; 4],
    pub gross: i64,
    pub subsidy: i64,
    pub payable: i64,
    /// Facts that reached this hour after it was closed.
    pub amendments: u64,
    /// Of `delivered`, the card-seconds whose tenant's and center's cities were both known when
    /// the line was billed, and of those, the ones run outside the tenant's city.
    pub located: u64,
    pub cross_city: u64,
}

/// What the indicators need to know of a pool besides its hours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub vendor: String,
    pub fp16_tflops: u32,
    pub domestic: bool,
    pub city: Option<String>,
}

#[derive(Clone, Debug)]
struct PoolLive {
    cards: u64,
    since: Timestamp,
    tflops: u32,
    /// The center's states, each from its time on, in order (attempts' card-time is split by
    /// them whenever it is accounted, so the order of facts does not matter).
    states: Vec<(Timestamp, PoolState)>,
}

impl PoolLive {
    /// The center's state now: the last one recorded.
    fn state(&self) -> PoolState {
        self.states.last().map_or(PoolState::Down, |s| s.1)
    }

    /// `[from, to)` split by state: (from, to, state index).
    fn segments(&self, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp, usize)> {
        let mut out = Vec::new();
        for (i, (start, state)) in self.states.iter().enumerate() {
            let start = if i == 0 { Timestamp(i64::MIN) } else { *start };
            let end = self.states.get(i + 1).map_or(Timestamp(i64::MAX), |n| n.0);
            let (a, b) = (from.max(start), to.min(end));
            if a < b {
                out.push((a, b, *state as usize));
            }
        }
        out
    }
}

#[derive(Clone, Debug)]
struct Alloc {
    pool: PoolKey,
    /// The usage it is counted in (its pool's and tenant's numbers).
    usage: UsageId,
    cards: u64,
    since: Timestamp,
}

#[derive(Clone, Debug)]
struct JobLive {
    tenant: u32,
    submitted: Timestamp,
    started: bool,
    pool: Option<u32>,
}

/// The rollup: closed and open hours, and what is open now.
#[derive(Clone, Debug, Default)]
pub struct Rollup {
    pools: BTreeMap<(Timestamp, PoolKey), PoolHour>,
    usage: BTreeMap<(Timestamp, UsageId), UsageHour>,
    names: Names,
    info: BTreeMap<PoolKey, PoolInfo>,
    categories: BTreeMap<TenantId, TenantCategory>,
    cities: BTreeMap<TenantId, String>,
    live: BTreeMap<PoolKey, PoolLive>,
    centers: BTreeMap<CenterId, PoolState>,
    allocs: HashMap<(JobId, u32), Alloc>,
    jobs: HashMap<JobId, JobLive>,
    /// Hours before this one are closed.
    closed_before: Timestamp,
    /// Facts that could not be placed (a start or release of an attempt never allocated...).
    unmatched: u64,
}

/// Splits `[from, to)` into its hours: (hour, milliseconds in it).
fn hours(from: Timestamp, to: Timestamp) -> impl Iterator<Item = (Timestamp, u64)> {
    let mut t = from.0;
    std::iter::from_fn(move || {
        if t >= to.0 {
            return None;
        }
        let h = hour_of(Timestamp(t));
        let end = (h.0 + HOUR_MS).min(to.0);
        let piece = (h, (end - t) as u64);
        t = end;
        Some(piece)
    })
}

impl Rollup {
    pub fn new() -> Rollup {
        Rollup::default()
    }

    /// Takes one fact.
    pub fn apply(&mut self, fact: &Fact) -> IndicatorResult<()> {
        match fact {
            Fact::Pool {
                at,
                center,
                sku,
                cards,
                vendor,
                fp16_tflops,
                domestic,
                city,
            } => {
                let key = (center.clone(), sku.clone());
                let state = self.centers.get(center).copied().unwrap_or(PoolState::Down);
                let at = self.flush_pool(&key, *at);
                let live = self.live.entry(key.clone()).or_insert(PoolLive {
                    cards: 0,
                    since: at,
                    tflops: *fp16_tflops,
                    states: vec![(at, state)],
                });
                live.cards = *cards;
                live.tflops = *fp16_tflops;
                self.info.insert(
                    key,
                    PoolInfo {
                        vendor: vendor.clone(),
                        fp16_tflops: *fp16_tflops,
                        domestic: *domestic,
                        city: city.clone(),
                    },
                );
            }
            Fact::Center { at, center, state } => {
                self.centers.insert(center.clone(), *state);
                let keys: Vec<PoolKey> = self
                    .live
                    .range((center.clone(), String::new())..)
                    .take_while(|(k, _)| &k.0 == center)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    let at = self.flush_pool(&key, *at);
                    if let Some(l) = self.live.get_mut(&key) {
                        l.states.push((at, *state));
                    }
                }
            }
            Fact::Tenant {
                tenant,
                category,
                city,
            } => {
                self.categories.insert(tenant.clone(), *category);
                match city {
                    Some(c) => self.cities.insert(tenant.clone(), c.clone()),
                    None => self.cities.remove(tenant),
                };
            }
            Fact::Submitted { at, job, tenant } => {
                let tenant = self.names.tenant(tenant);
                self.jobs.insert(
                    *job,
                    JobLive {
                        tenant,
                        submitted: *at,
                        started: false,
                        pool: None,
                    },
                );
                let key = UsageId { pool: None, tenant };
                self.usage_at(*at, key).submitted += 1;
            }
            Fact::Allocated {
                at,
                job,
                attempt,
                center,
                sku,
                cards,
            } => {
                let Some(j) = self.jobs.get_mut(job) else {
                    self.unmatched += 1;
                    return Ok(());
                };
                let pool = (center.clone(), sku.clone());
                let number = self.names.pool(&pool);
                j.pool = Some(number);
                let usage = UsageId {
                    pool: Some(number),
                    tenant: j.tenant,
                };
                if !self.live.contains_key(&pool) {
                    self.unmatched += 1;
                    return Ok(());
                }
                let since = *at;
                if let Some(old) = self.allocs.insert(
                    (*job, *attempt),
                    Alloc {
                        pool,
                        usage,
                        cards: *cards,
                        since,
                    },
                ) {
                    // The same attempt placed twice: the first holding ends now.
                    self.release(old, since);
                }
            }
            Fact::Started { at, job, .. } => {
                let Some(j) = self.jobs.get_mut(job) else {
                    self.unmatched += 1;
                    return Ok(());
                };
                if !j.started {
                    j.started = true;
                    let wait = at.millis_since(j.submitted) as u64 / 1000;
                    let key = UsageId {
                        pool: j.pool,
                        tenant: j.tenant,
                    };
                    let u = self.usage_at(*at, key);
                    u.started += 1;
                    u.waits.record(wait);
                }
            }
            Fact::Released { at, job, attempt } => match self.allocs.remove(&(*job, *attempt)) {
                Some(a) => self.release(a, *at),
                None => self.unmatched += 1,
            },
            Fact::Ended { at, job, outcome } => {
                let Some(j) = self.jobs.remove(job) else {
                    self.unmatched += 1;
                    return Ok(());
                };
                let key = UsageId {
                    pool: j.pool,
                    tenant: j.tenant,
                };
                self.usage_at(*at, key).ended[outcome.index()] += 1;
            }
            Fact::Billed {
                center,
                sku,
                tenant,
                started,
                ended,
                card_seconds,
                gross,
                subsidy,
                payable,
            } => {
                if ended < started {
                    return Err(IndicatorError::Invalid {
                        what: "bill line",
                        why: format!("ends ({ended}) before it starts ({started})"),
                    });
                }
                let pool = (center.clone(), sku.clone());
                // Judged now, as the cities stand when the line is billed.
                let cross = self.cross_city(tenant, Some(&pool));
                let located = |u: &mut UsageHour, secs: u64| {
                    if let Some(cross) = cross {
                        u.located += secs;
                        u.cross_city += if cross { secs } else { 0 };
                    }
                };
                let key = UsageId {
                    pool: Some(self.names.pool(&pool)),
                    tenant: self.names.tenant(tenant),
                };
                let span = ended.millis_since(*started) as u128;
                let pieces: Vec<(Timestamp, u64)> = hours(*started, *ended).collect();
                let mut left = *card_seconds;
                for (i, (h, ms)) in pieces.iter().enumerate() {
                    let share = if i + 1 == pieces.len() {
                        left
                    } else {
                        (u128::from(*card_seconds) * u128::from(*ms) / span) as u64
                    };
                    left -= share;
                    let u = self.usage_at(*h, key);
                    u.delivered += share;
                    located(u, share);
                }
                // The yuan go to the hour of the run's last piece (its end hour), counted as
                // an amendment only once per bill line.
                let u = match pieces.last() {
                    Some((h, _)) => self.usage.entry((*h, key)).or_default(),
                    None => self.usage_at(*ended, key),
                };
                u.delivered += left;
                located(u, left);
                let add = |sum: &mut i64, m: &Money| {
                    sum.checked_add(m.units())
                        .map(|v| *sum = v)
                        .ok_or(IndicatorError::Overflow { what: "yuan" })
                };
                add(&mut u.gross, gross)?;
                add(&mut u.subsidy, subsidy)?;
                add(&mut u.payable, payable)?;
            }
        }
        Ok(())
    }

    /// Accounts every open interval up to `now` and closes the hours before `now`'s hour.
    pub fn advance(&mut self, now: Timestamp) {
        let keys: Vec<PoolKey> = self.live.keys().cloned().collect();
        for key in keys {
            self.flush_pool(&key, now);
        }
        let open: Vec<(JobId, u32)> = self.allocs.keys().copied().collect();
        for id in open {
            let a = self.allocs.get(&id).expect("listed").clone();
            let until = now.max(a.since);
            self.account_alloc(&a, until);
            self.allocs.get_mut(&id).expect("listed").since = until;
        }
        self.closed_before = self.closed_before.max(hour_of(now));
    }

    /// The hours of the pools, in order.
    pub fn pool_hours(&self) -> &BTreeMap<(Timestamp, PoolKey), PoolHour> {
        &self.pools
    }

    /// The hours of usage, by hour, pool and tenant (a copy of the keys: for tests and
    /// comparisons; queries read [`Rollup::usage_by_number`]).
    pub fn usage_hours(&self) -> BTreeMap<(Timestamp, UsageKey), &UsageHour> {
        self.usage
            .iter()
            .map(|((h, id), u)| ((*h, self.names.key(*id)), u))
            .collect()
    }

    /// The hours of usage without their keys, in the rollup's order (hours in order).
    pub fn usage_values(&self) -> impl ExactSizeIterator<Item = &UsageHour> {
        self.usage.values()
    }

    /// The hours of usage by hour and by the numbers of [`Rollup::names`].
    pub(crate) fn usage_by_number(&self) -> &BTreeMap<(Timestamp, UsageId), UsageHour> {
        &self.usage
    }

    pub(crate) fn names(&self) -> &Names {
        &self.names
    }

    pub fn pool_info(&self, pool: &PoolKey) -> Option<&PoolInfo> {
        self.info.get(pool)
    }

    pub fn category(&self, tenant: &TenantId) -> Option<TenantCategory> {
        self.categories.get(tenant).copied()
    }

    /// The city a tenant is in, if it was given.
    pub fn city(&self, tenant: &TenantId) -> Option<&str> {
        self.cities.get(tenant).map(String::as_str)
    }

    /// Whether usage by `tenant` at `pool` is dispatched across cities, as the cities stand now
    /// (`None` when either is unknown). A bill line is judged when it is billed: a city given
    /// or changed later does not move past hours.
    pub fn cross_city(&self, tenant: &TenantId, pool: Option<&PoolKey>) -> Option<bool> {
        let at = self.pool_info(pool?)?.city.as_deref()?;
        Some(!self.city(tenant)?.eq_ignore_ascii_case(at))
    }

    /// Facts about attempts or jobs the rollup never saw begin.
    pub fn unmatched(&self) -> u64 {
        self.unmatched
    }

    /// Hours before this are closed: facts about them count as amendments.
    pub fn closed_before(&self) -> Timestamp {
        self.closed_before
    }

    fn usage_at(&mut self, at: Timestamp, key: UsageId) -> &mut UsageHour {
        let h = hour_of(at);
        let late = h < self.closed_before;
        let u = self.usage.entry((h, key)).or_default();
        if late {
            u.amendments += 1;
        }
        u
    }

    /// Accounts a pool's registered cards up to `until` (never before the open interval's
    /// start); the time the interval now starts at.
    fn flush_pool(&mut self, key: &PoolKey, until: Timestamp) -> Timestamp {
        let Some(l) = self.live.get_mut(key) else {
            return until;
        };
        let until = until.max(l.since);
        for (h, ms) in hours(l.since, until) {
            let c = self.pools.entry((h, key.clone())).or_default();
            c.registered[l.state() as usize] += l.cards * ms;
            c.installed_tflop_ms += u128::from(l.cards * ms) * u128::from(l.tflops);
        }
        l.since = until;
        until
    }

    /// Accounts an attempt's cards from its open start to `until`, split by hour and by the
    /// center's state, for the pool and for the tenant.
    fn account_alloc(&mut self, a: &Alloc, until: Timestamp) {
        let key = a.usage;
        let segments = match self.live.get(&a.pool) {
            Some(l) => l.segments(a.since, until),
            None => return,
        };
        for (from, to, state) in segments {
            for (h, ms) in hours(from, to) {
                self.pools.entry((h, a.pool.clone())).or_default().held[state] += a.cards * ms;
                self.usage.entry((h, key)).or_default().allocated += a.cards * ms;
            }
        }
    }

    fn release(&mut self, a: Alloc, until: Timestamp) {
        self.account_alloc(&a, until.max(a.since));
    }
}

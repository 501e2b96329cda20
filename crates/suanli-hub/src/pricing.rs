//! What the books tell the scheduler core: the pool prices in force, each tenant's share of the
//! list price after its vouchers (`TenantPolicy.pays_bp`) with its weight and quotas, and the
//! tenants over their monthly budget. Pure: `now` is an argument.

use std::collections::{BTreeMap, BTreeSet};

use suanli_core::TenantPolicy;
use suanli_lifecycle::Lifecycle;
use suanli_money::{BP, BudgetLevel, Directory, Month, OverBudgetPolicy, Record};
use suanli_types::{CenterId, CenterSpec, JobId, Money, SharePolicy, TenantId, Timestamp};

use crate::views::share_policy;

/// The money side of what the core knows, and what it was last told.
#[derive(Clone, Debug, Default)]
pub struct Pricing {
    /// Registered center definitions as stored; the core gets them with the prices in force.
    specs: BTreeMap<CenterId, CenterSpec>,
    /// The pool prices each center was last given to the core with.
    core_prices: BTreeMap<CenterId, Vec<Money>>,
    /// Each tenant's share of the list price per SKU after vouchers, as last given to the core.
    pays: BTreeMap<TenantId, BTreeMap<String, u32>>,
    /// Each tenant's fair-share weight and quotas, as the operator set them.
    shares: BTreeMap<TenantId, TenantPolicy>,
    /// The budget level each tenant was last warned about, and in which month.
    budget_noted: BTreeMap<TenantId, (Month, BudgetLevel)>,
    /// Price rows and programme windows starting or ending by then are reflected in the core.
    synced: Timestamp,
}

/// A job to stop because its tenant's budget is used up: (job, reason, history message).
pub type BudgetStop = (JobId, String, String);

impl Pricing {
    pub fn new(at: Timestamp) -> Pricing {
        Pricing {
            synced: at,
            ..Pricing::default()
        }
    }

    /// The registered definition of a center.
    pub fn spec(&self, id: &CenterId) -> Option<&CenterSpec> {
        self.specs.get(id)
    }

    /// The price rows a center's registration adds: a pool never priced gets its registered
    /// price in force since always; with `reprice`, a registered price that differs from the row
    /// in force becomes a row from `at`. The books hold them already; they are to be persisted.
    pub fn price_rows(
        &mut self,
        life: &mut Lifecycle,
        spec: &CenterSpec,
        at: Timestamp,
        reprice: bool,
    ) -> Vec<Record> {
        price_rows(life, spec, at, reprice)
    }

    /// Registers (or replaces) a center and gives the core it at the prices in force at `at`.
    pub fn install(&mut self, life: &mut Lifecycle, spec: CenterSpec, at: Timestamp) {
        let eff = effective_spec(life, &spec, at);
        life.upsert_center(&eff);
        self.core_prices.insert(spec.id.clone(), pool_prices(&eff));
        self.specs.insert(spec.id.clone(), spec);
    }

    /// Gives the core the stored centers with the prices in force at `at`, where they changed.
    pub fn sync_prices(&mut self, life: &mut Lifecycle, at: Timestamp) {
        for (id, spec) in &self.specs {
            let eff = effective_spec(life, spec, at);
            let prices = pool_prices(&eff);
            if self.core_prices.get(id) != Some(&prices) {
                life.upsert_center(&eff);
                self.core_prices.insert(id.clone(), prices);
            }
        }
    }

    /// Gives the core each tenant's (or just `only`'s) share of the list price per SKU after its
    /// best voucher: a programme in its validity window that admits the tenant's category and in
    /// which the tenant has a balance left.
    pub fn sync_pays(&mut self, life: &mut Lifecycle, at: Timestamp, only: Option<&TenantId>) {
        let skus: BTreeSet<&str> = self
            .specs
            .values()
            .flat_map(|s| s.pools.iter().map(|p| p.sku.as_str()))
            .collect();
        let books = life.books();
        let parties = life.parties();
        let mut changed = Vec::new();
        for (tenant, &category) in &parties.categories {
            if only.is_some_and(|o| o != tenant) {
                continue;
            }
            let usable: Vec<&suanli_money::Programme> = books
                .programmes()
                .filter(|p| {
                    p.is_valid_at(at)
                        && p.admits(category)
                        && books.grant_balance(&p.id, tenant) > Money::ZERO
                })
                .collect();
            let mut pays = BTreeMap::new();
            if !usable.is_empty() {
                for sku in &skus {
                    let domestic = parties.is_domestic(sku);
                    let best = usable
                        .iter()
                        .map(|p| p.rate_for(category, domestic))
                        .max()
                        .unwrap_or(0);
                    if best > 0 {
                        pays.insert(sku.to_string(), BP - best.min(BP));
                    }
                }
            }
            let known = self.pays.get(tenant);
            if known.map_or(!pays.is_empty(), |k| *k != pays) {
                changed.push((tenant.clone(), pays));
            }
        }
        for (tenant, pays) in changed {
            self.pays.insert(tenant.clone(), pays);
            self.push_tenant(life, &tenant);
        }
    }

    /// Sets a tenant's weight and quotas (the operator's policy) and gives them to the core.
    pub fn set_share(&mut self, life: &mut Lifecycle, tenant: &TenantId, policy: &SharePolicy) {
        self.shares.insert(tenant.clone(), share_policy(policy));
        self.push_tenant(life, tenant);
    }

    /// Takes back the stored policies (at a restart) and gives them to the core.
    pub fn restore_shares(&mut self, life: &mut Lifecycle, policies: &[(TenantId, SharePolicy)]) {
        for (tenant, policy) in policies {
            self.shares.insert(tenant.clone(), share_policy(policy));
        }
        for tenant in self.shares.keys() {
            self.push_tenant(life, tenant);
        }
    }

    /// Gives the core the tenant's weight and quotas with its prices after vouchers.
    fn push_tenant(&self, life: &mut Lifecycle, tenant: &TenantId) {
        let mut policy = self.shares.get(tenant).cloned().unwrap_or_default();
        policy.pays_bp = self.pays.get(tenant).cloned().unwrap_or_default();
        life.set_tenant(tenant.clone(), policy);
    }

    /// The operator changed the books with `records` at `at` (a price, a programme, a grant, a
    /// budget): the core gets what changed.
    pub fn money_changed(&mut self, life: &mut Lifecycle, records: &[Record], at: Timestamp) {
        for r in records {
            match r {
                Record::Price(_) => self.sync_prices(life, at),
                Record::Programme(_) => self.sync_pays(life, at, None),
                Record::Grant(g) => self.sync_pays(life, at, Some(&g.tenant)),
                Record::Budget(b) => {
                    self.budget_noted.remove(&b.tenant);
                }
                Record::Line(_) | Record::Transaction(_) | Record::Expired { .. } => {}
            }
        }
    }

    /// At a tick: prices coming into force and programme windows opening or closing since the
    /// last tick reach the core (`expired`: programmes expired just now).
    pub fn on_tick(&mut self, life: &mut Lifecycle, expired: bool, at: Timestamp) {
        let since = self.synced;
        let crossed = |t: Timestamp| since < t && t <= at;
        if life
            .books()
            .prices()
            .iter()
            .any(|r| crossed(r.effective_from))
        {
            self.sync_prices(life, at);
        }
        if expired
            || life
                .books()
                .programmes()
                .any(|p| crossed(p.valid_from) || crossed(p.valid_until))
        {
            self.sync_pays(life, at, None);
        }
        self.synced = at;
    }

    /// Warns once per month at 80% and at 100% of a tenant's budget; at 100% with the stop
    /// policy, lists the tenant's queued, placed and running jobs to cancel.
    pub fn budget_stops(&mut self, life: &Lifecycle, at: Timestamp) -> Vec<BudgetStop> {
        let month = Month::of(at);
        let mut out = Vec::new();
        for tenant in life.parties().categories.keys() {
            let Some(st) = life.books().budget_status(tenant, month) else {
                continue;
            };
            if st.level == BudgetLevel::Ok {
                continue;
            }
            if self.budget_noted.get(tenant) != Some(&(month, st.level)) {
                let pct = (i128::from(st.spent.0) * 100)
                    .checked_div(i128::from(st.limit.0))
                    .unwrap_or(100);
                tracing::warn!(%tenant, %month, limit = %st.limit, spent = %st.spent, percent = pct as i64,
                    level = crate::money::level_name(st.level), "monthly budget");
                self.budget_noted.insert(tenant.clone(), (month, st.level));
            }
            if st.level != BudgetLevel::Exhausted || st.at_limit != OverBudgetPolicy::StopRunning {
                continue;
            }
            for id in life.unfinished_of(tenant) {
                let why = format!(
                    "monthly budget exhausted (limit {} yuan, spent {} yuan in {month})",
                    st.limit, st.spent
                );
                out.push((id, "monthly budget exhausted".to_string(), why));
            }
        }
        out
    }
}

/// Price rows for the pools of a registered center: a pool never priced gets its registered
/// price in force since always (usage restored from before the first price is still billed); with
/// `reprice`, a pool whose registered price differs from the row in force gets a row from `at`
/// (keeping that row's spot discount).
fn price_rows(
    life: &mut Lifecycle,
    spec: &CenterSpec,
    at: Timestamp,
    reprice: bool,
) -> Vec<Record> {
    let books = life.books_mut();
    let mut out = Vec::new();
    for p in &spec.pools {
        let any = books
            .prices()
            .iter()
            .any(|r| r.center == spec.id && r.sku == p.sku);
        let current = books.price_at(&spec.id, &p.sku, at, false);
        let row = if !any {
            Some((Timestamp(0), None))
        } else if reprice && current.is_none_or(|u| u.per_card_hour != p.price_per_card_hour) {
            let discount = current
                .and_then(|u| books.prices().get((u.row - 1) as usize))
                .and_then(|r| r.spot_discount_bp);
            Some((at, discount))
        } else {
            None
        };
        if let Some((from, discount)) = row {
            match books.set_price(&spec.id, &p.sku, p.price_per_card_hour, discount, from) {
                Ok(r) => out.extend(r),
                Err(e) => {
                    tracing::error!(center = %spec.id, sku = %p.sku, error = %e, "cannot price a pool")
                }
            }
        }
    }
    out
}

/// The center as the core sees it: each pool at the price in force at `at`.
fn effective_spec(life: &Lifecycle, spec: &CenterSpec, at: Timestamp) -> CenterSpec {
    let mut eff = spec.clone();
    for p in &mut eff.pools {
        if let Some(u) = life.books().price_at(&spec.id, &p.sku, at, false) {
            p.price_per_card_hour = u.per_card_hour;
        }
    }
    eff
}

fn pool_prices(spec: &CenterSpec) -> Vec<Money> {
    spec.pools.iter().map(|p| p.price_per_card_hour).collect()
}

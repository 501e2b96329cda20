//! Builders for what the tests of suanli construct again and again: at the crate root, centers
//! with node pools, job specs, pending jobs, tenant policies and cores with their centers online;
//! in [`money`], the books' times, usages, programmes, price rows and grants.
//!
//! A dev-dependency only: no shipped crate depends on it normally (CI checks this with
//! `cargo tree`). The builders return the plain types, so a test changes what it needs with a
//! struct update or a field assignment; [`Shaped`] and [`PolicyExt`] chain the usual changes.

pub mod money;

use suanli_core::{Core, CoreConfig, PendingJob, Placement, Policy, Quota, TenantPolicy};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobId, JobSpec, Money, NodePool, OwnerType, PriorityClass,
    TenantId, Timestamp,
};

/// The tests' epoch: 2027-01-15T08:00:00Z.
pub const T0: Timestamp = Timestamp(1_800_000_000_000);

/// `m` minutes after [`T0`].
pub fn mins(m: i64) -> Timestamp {
    T0.plus_millis(m * 60_000)
}

/// An amount in yuan, e.g. `yuan("4.5")`; panics on a malformed amount.
pub fn yuan(s: &str) -> Money {
    s.parse()
        .unwrap_or_else(|e| panic!("bad amount {s:?}: {e}"))
}

/// A node pool: `nodes` nodes of `cards_per_node` cards of `sku` at `price` yuan per card-hour.
pub fn pool(sku: &str, nodes: u32, cards_per_node: u32, price: &str) -> NodePool {
    NodePool {
        sku: sku.to_string(),
        nodes,
        cards_per_node,
        price_per_card_hour: yuan(price),
    }
}

/// A center with one pool, named `Test center {id}`, in Shenzhen, government-owned, local
/// backend, no stacks.
pub fn center(id: &str, sku: &str, nodes: u32, cards_per_node: u32, price: &str) -> CenterSpec {
    multi(id, &[(sku, nodes, cards_per_node, price)])
}

/// A center like [`center`] with several pools: (sku, nodes, cards per node, price).
pub fn multi(id: &str, pools: &[(&str, u32, u32, &str)]) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(id),
        name: format!("Test center {id}"),
        city: "Shenzhen".to_string(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: pools
            .iter()
            .map(|&(sku, nodes, cards, price)| pool(sku, nodes, cards, price))
            .collect(),
        stacks: Default::default(),
    }
}

/// A spec named `t` running `true` on `nodes` x `cards_per_node` cards of any chip; the other
/// fields are [`JobSpec::new`]'s defaults.
pub fn spec(cards_per_node: u32, nodes: u32) -> JobSpec {
    let mut s = JobSpec::new("t", "true");
    s.cards_per_node = cards_per_node;
    s.nodes = nodes;
    s
}

/// A pending job of `tenant` submitted at [`T0`], whose `seq` is its id.
pub fn pending(id: i64, tenant: &str, spec: JobSpec) -> PendingJob {
    PendingJob {
        id: JobId(id),
        tenant: TenantId::new(tenant),
        seq: id as u64,
        submitted_at: T0,
        spec,
    }
}

/// Job `id` of `tenant` ([`pending`]): `cards` cards on one node of any chip, wall time in
/// minutes, named `j{id}`.
pub fn job(id: i64, tenant: &str, cards: u32, minutes: u64) -> PendingJob {
    let mut spec = JobSpec::new(format!("j{id}"), "true");
    spec.cards_per_node = cards;
    spec.walltime = minutes * 60;
    pending(id, tenant, spec)
}

/// The usual changes to a job's spec, on a [`JobSpec`] or a [`PendingJob`].
pub trait Shaped: Sized {
    fn spec_mut(&mut self) -> &mut JobSpec;

    /// In priority class `class`.
    fn class(mut self, class: PriorityClass) -> Self {
        self.spec_mut().priority = class;
        self
    }
    /// A gang of `nodes` nodes.
    fn nodes(mut self, nodes: u32) -> Self {
        self.spec_mut().nodes = nodes;
        self
    }
    /// Only these SKUs.
    fn skus(mut self, skus: &[&str]) -> Self {
        self.spec_mut().chips.skus = skus.iter().map(|s| s.to_string()).collect();
        self
    }
    /// A wall-time limit in seconds.
    fn walltime(mut self, secs: u64) -> Self {
        self.spec_mut().walltime = secs;
        self
    }
}

impl Shaped for JobSpec {
    fn spec_mut(&mut self) -> &mut JobSpec {
        self
    }
}

impl Shaped for PendingJob {
    fn spec_mut(&mut self) -> &mut JobSpec {
        &mut self.spec
    }
}

/// Chained changes to a [`TenantPolicy`], e.g. `TenantPolicy::default().quota("nvidia", 2, 2)`.
pub trait PolicyExt: Sized {
    /// Fair-share weight.
    fn weighted(self, weight: u32) -> Self;
    /// A quota of `nominal` cards plus `borrow_limit` borrowable ones on a chip family.
    fn quota(self, family: &str, nominal: u32, borrow_limit: u32) -> Self;
    /// Pays `bp` basis points of the list price of `sku` (after vouchers).
    fn pays(self, sku: &str, bp: u32) -> Self;
}

impl PolicyExt for TenantPolicy {
    fn weighted(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }
    fn quota(mut self, family: &str, nominal: u32, borrow_limit: u32) -> Self {
        let q = Quota {
            nominal,
            borrow_limit,
        };
        self.quotas.insert(family.to_string(), q);
        self
    }
    fn pays(mut self, sku: &str, bp: u32) -> Self {
        self.pays_bp.insert(sku.to_string(), bp);
        self
    }
}

/// A core with `config` and these centers, all online.
pub fn core_with(config: CoreConfig, centers: &[CenterSpec]) -> Core {
    let mut core = Core::new(config);
    for c in centers {
        core.upsert_center(c);
        core.set_online(&c.id, true);
    }
    core.sanity_check();
    core
}

/// A core with `policy`'s defaults and these centers, all online.
pub fn core_of(policy: Policy, centers: &[CenterSpec]) -> Core {
    core_with(CoreConfig::with_policy(policy), centers)
}

/// One scheduling pass at `at`, followed by the core's self-check.
pub fn pass(core: &mut Core, at: Timestamp) -> Vec<Placement> {
    let p = core.schedule(at);
    core.sanity_check();
    p
}

/// The ids of the placed jobs, in decision order.
pub fn ids(placements: &[Placement]) -> Vec<i64> {
    placements.iter().map(|p| p.job.0).collect()
}

//! Centers, tenants, tokens and the hub itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::{
    BackendKind, CenterId, JobId, Money, OwnerType, Role, TenantCategory, TenantId, Timestamp,
};
use utoipa::ToSchema;

use crate::*;
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    pub sku: String,
    pub vendor: String,
    pub nodes: u32,
    pub cards_per_node: u32,
    pub total_cards: u64,
    pub free_cards: u64,
    pub price_per_card_hour: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CenterView {
    pub id: CenterId,
    pub name: String,
    pub city: String,
    pub owner: OwnerType,
    pub backend: BackendKind,
    pub stacks: BTreeMap<String, String>,
    pub pools: Vec<PoolView>,
    /// online | offline | draining (the agent is stopping) | drained (by the operator)
    pub status: String,
    pub last_heartbeat: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CenterRegistered {
    pub center: CenterId,
    /// A new site token, only when the center was registered for the first time (shown once).
    pub site_token: Option<String>,
}

/// Body of `POST /v1/centers/{id}/drain` (optional).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Also hand back running attempts (they are stopped and queued again); by default they
    /// finish at the center.
    #[serde(default)]
    pub requeue: bool,
}

/// What a drain or undrain did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrainView {
    pub center: CenterId,
    pub drained: bool,
    /// Attempts still running there; they finish unless requeued.
    pub running: usize,
    /// Jobs handed back to the queue (they run again with the next attempt number).
    pub requeued: Vec<JobId>,
}

/// `GET /v1/hub`: this hub process and the leadership, as this hub sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HubStatus {
    /// This hub process: its host and a random suffix (never its process id).
    pub id: String,
    /// single (one hub on SQLite) | leader | follower
    pub role: String,
    /// The leader's advertised URL, when one is known.
    pub leader_url: Option<String>,
    /// The leadership term (fencing token); 0 for a single hub.
    pub epoch: u64,
    /// When this hub became leader (ms since the Unix epoch), if it leads.
    pub leader_since: Option<Timestamp>,
    /// The decision hash of this hub's engine (every placement and preemption since it started,
    /// 16 hex digits), if it runs one; `suanli replay` of the input log reproduces it.
    #[serde(default)]
    pub decision_hash: Option<String>,
}

impl HubStatus {
    /// With the decision hash of this hub's engine, if it runs one.
    pub fn with_decision_hash(mut self, hash: Option<u64>) -> HubStatus {
        self.decision_hash = hash.map(|h| format!("{h:016x}"));
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantRequest {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
}

/// A tenant's quota on one chip family, in cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaView {
    /// Cards the tenant is guaranteed (its work within them is never preempted as borrowed).
    #[schema(maximum = 1_000_000)]
    pub nominal: u32,
    /// Cards it may use beyond the nominal quota while they are idle; such work is preemptible.
    #[serde(default)]
    #[schema(maximum = 1_000_000)]
    pub borrow_limit: u32,
}

/// A tenant's share of the network: fair-share weight and quotas per chip family (vendor).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicyView {
    /// 1 to 1,000; a tenant of weight 2 is entitled to twice the share of one of weight 1.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    pub weight: u32,
    /// Chip family (nvidia, huawei, cambricon, hygon, ...) -> quota. No entry: no limit.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaView>,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who the token is for, e.g. a user name.
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub center: Option<CenterId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The secret: shown once, stored only as a hash.
    pub token: String,
    pub name: String,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
}

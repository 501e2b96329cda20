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
    /// The city it is in, as the centers name theirs (e.g. `Shenzhen`): 1 to 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
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
    /// May submit public-service work although the tenant's category is not public-service.
    #[serde(default)]
    pub public_service: bool,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub name: String,
    pub category: TenantCategory,
    /// The city it is in (for the statistics' cross-city dispatch), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A label for the token, e.g. a user name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a
    /// letter or digit, not a role or hub name (`operator`, `site`, ...), unique among the
    /// tenant's (or center's, or the platform's) tokens not revoked. Permissions never depend
    /// on it.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub center: Option<CenterId>,
    /// Seconds until the token expires: 60 up to the role's maximum (user 365 days; tenant
    /// admin, supervisor, operator 90 days; site 730 days). Default: user 90 days; tenant
    /// admin, supervisor, operator 30 days; site 365 days.
    #[serde(default)]
    #[schema(minimum = 60)]
    pub expires_in: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenCreated {
    /// The secret: shown once, stored only as a hash.
    pub token: String,
    /// The token's (the principal's) id: what `DELETE /v1/tokens/{id}` takes.
    pub id: i64,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub center: Option<CenterId>,
    pub expires_at: Option<Timestamp>,
}

/// A token as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
    pub created_at: Timestamp,
    /// `null`: never (tokens issued before tokens expired).
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, or will be at the end of a rotation's grace.
    pub revoked_at: Option<Timestamp>,
    /// Recorded at most once a minute.
    pub last_used_at: Option<Timestamp>,
    /// Valid now: neither expired nor revoked.
    pub valid: bool,
}

/// A site token rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// Seconds the center's old site tokens stay valid (0, the default: revoked at once; at
    /// most 7 days), so that its agent can be given the new one first.
    #[serde(default)]
    #[schema(maximum = 604800)]
    pub grace: u64,
    /// Seconds until the new token expires (default 365 days, at most 730).
    #[serde(default)]
    #[schema(minimum = 60)]
    pub expires_in: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// The token's (the principal's) id.
    #[serde(default)]
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub tenant: Option<TenantId>,
    pub center: Option<CenterId>,
}

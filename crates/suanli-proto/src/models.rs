//! The model library's wire types (`/v1/models`, `/v1/certifications`): published models,
//! certification records with their outcome and review, the adaptation matrix, and the
//! certify and review requests (docs/MODELS.md).

use serde::{Deserialize, Serialize};
use suanli_models::{CertState, Certification, ModelSpec, Outcome, Statuses, Verdict};
use suanli_types::{CenterId, JobId, TenantId};
use utoipa::ToSchema;

/// A published model revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    pub id: i64,
    /// The tenant that sees it, for a tenant-visible model; absent: public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TenantId>,
    pub published_by: String,
    /// Milliseconds since the epoch.
    pub published_at: i64,
    pub model: ModelSpec,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<ModelView>,
}

/// Run a model's benchmark at a center, as a job of the caller's tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertifyRequest {
    pub center: CenterId,
    /// The chip SKU; needed when the center has pools of several SKUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The paying tenant: the operator must name one; a tenant's token certifies for itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
}

/// A reviewer's decision on a pending record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub verdict: Verdict,
    /// Why, in 1 to 500 characters.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    pub verdict: Verdict,
    pub by: String,
    pub reason: String,
    pub at: i64,
}

/// A certification record as it stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CertificationView {
    pub id: i64,
    pub model: i64,
    pub center: CenterId,
    pub sku: String,
    pub stack: String,
    /// The center's version of the stack when the benchmark was submitted.
    pub stack_version: String,
    pub framework_version: String,
    /// The benchmark job: the evidence.
    pub job: JobId,
    pub tenant: TenantId,
    pub requested_by: String,
    pub requested_at: i64,
    pub state: CertState,
    /// The center runs another version of the stack now (or no longer offers it).
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewView>,
}

impl CertificationView {
    pub fn new(c: &Certification, stale: bool) -> CertificationView {
        let r = &c.request;
        CertificationView {
            id: c.id,
            model: r.model,
            center: r.center.clone(),
            sku: r.sku.clone(),
            stack: r.stack.clone(),
            stack_version: r.stack_version.clone(),
            framework_version: r.framework_version.clone(),
            job: r.job,
            tenant: r.tenant.clone(),
            requested_by: r.requested_by.clone(),
            requested_at: r.requested_at.0,
            state: c.state(),
            stale,
            outcome: c.outcome.as_ref().map(|(o, _)| o.clone()),
            measured_at: c.outcome.as_ref().map(|(_, at)| at.0),
            review: c.review.as_ref().map(|v| ReviewView {
                verdict: v.verdict,
                by: v.by.clone(),
                reason: v.reason.clone(),
                at: v.at.0,
            }),
        }
    }
}

/// A cell of the adaptation matrix: the model on a chip SKU with a stack version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MatrixCell {
    pub sku: String,
    pub stack: String,
    pub stack_version: String,
    /// The record shown: the newest accepted one not stale, else the newest.
    pub certification: i64,
    pub state: CertState,
    pub stale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statuses: Option<Statuses>,
    /// Throughput per card, in the model's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
}

impl From<suanli_models::Cell> for MatrixCell {
    fn from(c: suanli_models::Cell) -> Self {
        MatrixCell {
            sku: c.sku,
            stack: c.stack,
            stack_version: c.stack_version,
            certification: c.certification,
            state: c.state,
            stale: c.stale,
            statuses: c.statuses,
            throughput: c.throughput,
        }
    }
}

/// A model's certification records and its adaptation matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CertificationList {
    pub model: i64,
    /// The model's throughput unit.
    pub unit: String,
    pub certifications: Vec<CertificationView>,
    pub matrix: Vec<MatrixCell>,
}

//! Datasets and the airlock's wire types (`/v1/datasets`, `/v1/airlock`): registered datasets
//! with where they reside and their policy, access grants, and requests to release the outputs
//! of jobs on protected data (docs/DATA.md).

use serde::{Deserialize, Serialize};
use suanli_data::{DatasetSpec, ReleaseRequest, Verdict};
use suanli_types::{JobId, TenantId, Timestamp};
use utoipa::ToSchema;

/// A registered dataset, as the caller may see it: its path at the centers and its grants only
/// for its owner and the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetView {
    pub owner: TenantId,
    pub spec: DatasetSpec,
    pub registered_by: String,
    pub registered_at: Timestamp,
    pub updated_at: Timestamp,
    /// What the caller's tenant may do with it: `owner`, `public`, `granted` (until
    /// `grant_expires_at`), or `needs a grant`.
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_expires_at: Option<Timestamp>,
    /// Grants, newest last (owner and operator only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<suanli_data::Grant>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DatasetList {
    pub datasets: Vec<DatasetView>,
}

/// Registers a dataset, or replaces its record (its owner only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterDataset {
    pub spec: DatasetSpec,
    /// The owner tenant: the operator must name one; a tenant admin registers for its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<TenantId>,
}

/// Lets a tenant compute on a protected dataset, until `expires_at` (default: 90 days).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetGrantRequest {
    pub tenant: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Ends a tenant's grants on a dataset, at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub tenant: TenantId,
}

/// How many grants a revoke ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Asks for a job's quarantined outputs to be released: all of them, or those named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlockRequest {
    pub job: JobId,
    /// Why the files should leave (3 to 500 characters); shown to the reviewers.
    pub justification: String,
    /// Output paths (default: every output of the job's latest attempt).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// A reviewer's decision on a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AirlockReview {
    pub verdict: Verdict,
    /// Why (1 to 500 characters); recorded on the request.
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AirlockList {
    pub requests: Vec<ReleaseRequest>,
}

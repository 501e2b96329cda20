//! Job outputs' wire types (`/v1/jobs/{id}/outputs`, `/v1/site/outputs/...`): the files a job
//! left, as its tenant lists and downloads them, and what a site sends with each upload.

use serde::{Deserialize, Serialize};
use suanli_types::{JobId, Timestamp};
use utoipa::{IntoParams, ToSchema};

/// One file a job's attempt left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputView {
    pub attempt: u32,
    /// Relative to the attempt folder, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    pub created_at: Timestamp,
    /// When the hub deletes it (the hub's retention).
    pub expires_at: Timestamp,
}

/// A job's outputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputsView {
    pub job: JobId,
    /// The patterns the job declared (`outputs` in its spec).
    pub patterns: Vec<String>,
    pub outputs: Vec<OutputView>,
    /// Bytes of the files listed.
    pub total_bytes: u64,
}

/// Where an uploaded file belongs and what it must hash to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OutputUpload {
    /// Relative to the attempt folder, `/`-separated; must match one of the job's patterns
    /// (required).
    pub path: Option<String>,
    /// Lowercase hex SHA-256 of the body (required).
    pub sha256: Option<String>,
}

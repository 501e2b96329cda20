//! Errors: every response error is an [`ApiError`] with a stable [`ErrorCode`].

use serde::{Deserialize, Serialize};
use suanli_types::CenterId;
use utoipa::ToSchema;

use crate::*;
/// Stable error codes. Clients match on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request (bad JSON, bad query parameter).
    BadRequest,
    /// A job spec or center definition failed validation; `field` names the path.
    InvalidSpec,
    /// No center could ever run this job; `rejections` gives each center's reason.
    Unschedulable,
    /// Missing or unknown bearer token.
    Unauthenticated,
    /// The principal may not do this.
    Forbidden,
    /// No such object, or not visible to this principal.
    NotFound,
    /// The object's state does not allow this (e.g. cancel of a finished job).
    Conflict,
    /// A site report for an attempt that is no longer current: stop that attempt.
    StaleAttempt,
    /// Already exists.
    AlreadyExists,
    /// A site's report strays from the hub's own record of the attempt (a time outside
    /// `[placement - skew, receipt + skew]`, a run longer than the wall time and kill grace,
    /// more card-seconds than the placed cards allow), or names an attempt placed at another
    /// center: nothing in the batch from this event on was applied (events before it were), and
    /// the refusal is recorded for the supervisor. The message names the event and the bound.
    InvalidReport,
    /// The request body is larger than the hub accepts, or an event batch holds more events.
    PayloadTooLarge,
    /// Too many requests from this token or this site, or too many failed authentications from
    /// this address: nothing was done; retry after the response's `Retry-After` seconds.
    RateLimited,
    /// The hub is shutting down, not ready, or not the leader and cannot reach one: the request
    /// was not carried out; retry (at another hub).
    Unavailable,
    /// The hub lost the request's outcome (it stopped leading, or the leader stopped answering,
    /// after the request was sent): it may or may not have been carried out. Check before
    /// repeating a request that is not idempotent.
    OutcomeUnknown,
    /// Something failed inside the hub; details are in the hub's log, not here.
    Internal,
    /// The tenant's monthly budget does not allow this job; the message gives the limit, what
    /// was spent this month and the job's quoted cost after vouchers.
    OverBudget,
    /// The tenant's stored job outputs would exceed its quota; the message gives the quota and
    /// what is stored.
    OverQuota,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidSpec => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::OverBudget => 402,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict | ErrorCode::StaleAttempt | ErrorCode::AlreadyExists => 409,
            ErrorCode::Unschedulable | ErrorCode::InvalidReport => 422,
            ErrorCode::PayloadTooLarge | ErrorCode::OverQuota => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::OutcomeUnknown => 502,
            ErrorCode::Internal => 500,
        }
    }
}

/// A center's reason for not taking a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RejectionView {
    pub center: CenterId,
    pub reason: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For `invalid_spec`: the path of the bad field, e.g. `chips.skus[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `unschedulable`: why each center cannot run the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<RejectionView>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            rejections: Vec::new(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: {field}: {}", code_name(self.code), self.message)?,
            None => write!(f, "{}: {}", code_name(self.code), self.message)?,
        }
        for r in &self.rejections {
            write!(f, "\n  {}: {}", r.center, r.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

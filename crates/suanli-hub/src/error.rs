//! Hub errors and their mapping to API errors with stable codes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use suanli_proto::{ApiError, ErrorCode, RejectionView};
use suanli_store::StoreError;
use suanli_types::SpecError;

/// Everything a hub operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] SpecError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no center can run this job")]
    Unschedulable(Vec<RejectionView>),
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A site's report the hub refuses (`reason`: a short name for metrics); the message says
    /// which event and why.
    #[error("invalid report: {message}")]
    InvalidReport {
        reason: &'static str,
        message: String,
    },
    #[error("request body too large")]
    TooLarge,
    #[error("{events} events in one batch; the hub takes at most {limit}")]
    BatchTooLarge { events: usize, limit: usize },
    /// Over a rate limit; retry after this long.
    #[error("too many requests")]
    RateLimited(std::time::Duration),
    /// The engine stopped (the hub stopped leading) after it took the command.
    #[error("the engine stopped before it answered")]
    Interrupted,
    /// This hub does not lead (replicated hubs) and cannot forward the request to a leader.
    #[error("this hub is not the leader")]
    NotLeader,
    #[error(transparent)]
    OverBudget(suanli_money::BudgetExceeded),
    /// A tenant's stored outputs would exceed its quota; the message says by how much.
    #[error("over quota: {0}")]
    OverQuota(String),
    /// Something of the hub's own failed (its log says what); clients see no detail.
    #[error("internal: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HubError {
    /// The client-facing error: a stable code and a message without internal detail.
    pub fn to_api(&self) -> ApiError {
        match self {
            HubError::InvalidSpec(e) => ApiError {
                code: ErrorCode::InvalidSpec,
                message: e.message.clone(),
                field: Some(e.field.clone()),
                rejections: Vec::new(),
            },
            HubError::BadRequest(m) => ApiError::new(ErrorCode::BadRequest, m.clone()),
            HubError::Unschedulable(r) => ApiError {
                code: ErrorCode::Unschedulable,
                message: "no registered center could ever run this job".into(),
                field: None,
                rejections: r.clone(),
            },
            HubError::Unauthenticated(m) => ApiError::new(ErrorCode::Unauthenticated, *m),
            HubError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, *m),
            HubError::NotFound(m) => ApiError::new(ErrorCode::NotFound, m.clone()),
            HubError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m.clone()),
            HubError::AlreadyExists(m) => ApiError::new(ErrorCode::AlreadyExists, m.clone()),
            HubError::InvalidReport { message, .. } => {
                ApiError::new(ErrorCode::InvalidReport, message.clone())
            }
            HubError::TooLarge => ApiError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than the hub accepts",
            ),
            HubError::BatchTooLarge { .. } => {
                ApiError::new(ErrorCode::PayloadTooLarge, self.to_string())
            }
            HubError::RateLimited(d) => ApiError::new(
                ErrorCode::RateLimited,
                format!("too many requests; retry in {} s", retry_after_secs(*d)),
            ),
            HubError::OverBudget(e) => ApiError::new(ErrorCode::OverBudget, e.to_string()),
            HubError::OverQuota(m) => ApiError::new(ErrorCode::OverQuota, m.clone()),
            HubError::NotLeader => ApiError::new(
                ErrorCode::Unavailable,
                "this hub cannot take requests right now (it is starting or stopping, or it \
                 does not lead and no leader answers; a failover takes a few seconds); retry",
            ),
            HubError::Store(StoreError::Fenced { .. }) => ApiError::new(
                ErrorCode::Unavailable,
                "this hub has just lost the leadership; retry",
            ),
            HubError::Interrupted => ApiError::new(
                ErrorCode::OutcomeUnknown,
                "the hub stopped leading while it handled this request: it may or may not have \
                 been carried out; check before repeating it",
            ),
            HubError::Store(StoreError::Exists(m)) => {
                ApiError::new(ErrorCode::AlreadyExists, m.clone())
            }
            HubError::Store(StoreError::NotUpdated(m)) => {
                ApiError::new(ErrorCode::Conflict, m.clone())
            }
            HubError::Store(_) | HubError::Internal(_) => {
                ApiError::new(ErrorCode::Internal, "internal error; see the hub's log")
            }
        }
    }
}

impl IntoResponse for HubError {
    fn into_response(self) -> Response {
        let api = self.to_api();
        if api.code == ErrorCode::Internal {
            tracing::error!(error = %self, "request failed");
        }
        let status = StatusCode::from_u16(api.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(api)).into_response();
        match self {
            HubError::RateLimited(d) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs(d)));
            }
            // A refused site report is a refusal in the audit log (and for the risk rules).
            HubError::InvalidReport { reason, .. } => {
                resp.extensions_mut()
                    .insert(crate::audit::Refusal(format!("invalid_report: {reason}")));
            }
            _ => {}
        }
        resp
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
fn retry_after_secs(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

pub type HubResult<T> = Result<T, HubError>;

//! The hub itself: health, readiness, metrics, the OpenAPI document, the caller, leadership.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use suanli_proto::{HubStatus, WhoAmI};
use utoipa_axum::routes;

use super::Op;
use crate::AppState;
use crate::auth::Auth;
use crate::error::HubResult;

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::public(routes!(healthz)),
        Op::public(routes!(readyz)),
        Op::metrics(routes!(metrics)),
        Op::public(routes!(openapi_json)),
        Op::any_token(routes!(whoami)),
        Op::any_token(routes!(hub_status)),
    ]
}

/// The process answers.
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// 200 when this hub can serve the API now (it runs the engine, or follows a leader it knows),
/// 503 otherwise (starting, between leaders): for load balancers in front of several hubs.
#[utoipa::path(get, path = "/readyz",
    responses((status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "`not ready`", body = String, content_type = "text/plain")))]
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = match state.leadership.role() {
        crate::leader::Role::Single | crate::leader::Role::Leader { .. } => {
            state.engine.is_running()
        }
        crate::leader::Role::Follower { leader_url, .. } => leader_url.is_some(),
    };
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// Prometheus metrics in the OpenMetrics text format.
///
/// They show every center's load: an operator or supervisor token is needed, unless the hub runs
/// with `--metrics-public`.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "the metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 500, description = "the store failed (`internal`)", body = suanli_proto::ApiError)))]
async fn metrics(State(state): State<AppState>) -> HubResult<impl IntoResponse> {
    let counts = state.store.count_jobs_by_state().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&counts),
    ))
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI document", body = Object)))]
async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(super::openapi())
}

/// The caller's principal.
#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, description = "the caller", body = WhoAmI)))]
async fn whoami(auth: Auth) -> Json<WhoAmI> {
    let p = auth.0;
    Json(WhoAmI {
        id: p.id,
        name: p.name,
        role: p.role,
        tenant: p.tenant,
        center: p.center,
    })
}

/// This hub process and the leadership as it sees it; answered by the hub asked, never forwarded.
#[utoipa::path(get, path = "/v1/hub", responses((status = 200, description = "this hub", body = HubStatus)))]
async fn hub_status(State(state): State<AppState>) -> Json<HubStatus> {
    Json(
        state
            .leadership
            .status()
            .with_decision_hash(state.engine.decision_hash()),
    )
}

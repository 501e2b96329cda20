//! The site-agent protocol: a center's agent fetches its config, heartbeats, long-polls for
//! assignments and reports events. Site tokens only, each for its own center.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::Deserialize;
use suanli_proto::{
    ApiError, Assignments, EventBatch, EventKind, EventResults, Heartbeat, HeartbeatReply,
};
use suanli_types::{CenterId, CenterSpec, SpecError};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{ApiJson, ApiQuery, Op, bounds};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::site(routes!(site_config)),
        Op::site(routes!(site_heartbeat)).large_body(),
        Op::site(routes!(site_assignments)),
        Op::site(routes!(site_events)).large_body(),
    ]
}

/// The center of the calling site token.
struct SiteCenter(CenterId);

impl<S: Send + Sync> FromRequestParts<S> for SiteCenter {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> HubResult<SiteCenter> {
        let Auth(me) = Auth::from_request_parts(parts, state).await?;
        me.center
            .map(SiteCenter)
            .ok_or(HubError::Forbidden("this site token names no center"))
    }
}

/// The center's registered definition.
#[utoipa::path(get, path = "/v1/site/config",
    responses((status = 200, description = "the center as registered", body = CenterSpec),
        (status = 404, description = "the center is not registered", body = ApiError)))]
async fn site_config(
    State(state): State<AppState>,
    SiteCenter(center): SiteCenter,
) -> HubResult<Json<CenterSpec>> {
    state
        .store
        .centers()
        .await?
        .into_iter()
        .find(|c| c.id == center)
        .map(Json)
        .ok_or_else(|| HubError::NotFound(format!("center {center} is not registered")))
}

/// The agent's inventory and running attempts; the answer names attempts to stop.
#[utoipa::path(post, path = "/v1/site/heartbeat", request_body = Heartbeat,
    responses((status = 200, description = "attempts to stop, and the lease length", body = HeartbeatReply)))]
async fn site_heartbeat(
    State(state): State<AppState>,
    SiteCenter(center): SiteCenter,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> HubResult<Json<HeartbeatReply>> {
    bounds::heartbeat(&hb)?;
    Ok(Json(
        state
            .engine
            .ask(|reply| Cmd::Heartbeat {
                center,
                hb,
                received: crate::engine::now(),
                reply,
            })
            .await?,
    ))
}

/// The longest a site's long poll may wait.
const MAX_WAIT_SECS: u64 = 60;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AssignmentsQuery {
    /// Wait up to this many seconds for work (0 to 60, default 0).
    #[param(minimum = 0, maximum = 60)]
    wait_secs: Option<u64>,
}

/// Work for the center, waiting up to `wait_secs` for some.
#[utoipa::path(get, path = "/v1/site/assignments", params(AssignmentsQuery),
    responses((status = 200, description = "new attempts to run, and attempts to stop", body = Assignments)))]
async fn site_assignments(
    State(state): State<AppState>,
    SiteCenter(center): SiteCenter,
    ApiQuery(q): ApiQuery<AssignmentsQuery>,
) -> HubResult<Json<Assignments>> {
    let wait = q.wait_secs.unwrap_or(0);
    if wait > MAX_WAIT_SECS {
        return Err(HubError::BadRequest(format!(
            "wait_secs: {wait} is more than {MAX_WAIT_SECS}"
        )));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let mut changed = state.engine.watch_center(&center);
    loop {
        changed.borrow_and_update();
        let c = center.clone();
        let mut work = state
            .engine
            .ask(|reply| Cmd::Assignments { center: c, reply })
            .await?;
        for a in &mut work.assignments {
            a.datasets = crate::datasets::mounts(state.store.as_ref(), &a.spec).await?;
        }
        if !work.assignments.is_empty() || !work.kill.is_empty() {
            return Ok(Json(work));
        }
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(Json(work)),
        }
    }
}

/// Attempt starts, log chunks and ends; each is accepted or stale.
#[utoipa::path(post, path = "/v1/site/events", request_body = EventBatch,
    responses((status = 200, description = "one status per event, in order", body = EventResults),
        (status = 413, description = "more events in the batch, or more bytes, than the hub \
            takes (`payload_too_large`; by default 1000 events and 8 MiB): send smaller batches",
            body = ApiError),
        (status = 422, description = "a report strays from the hub's record of the attempt, or \
            names an attempt placed at another center (`invalid_report`): the events before it \
            were applied, it and the rest were not; the refusal is recorded", body = ApiError)))]
async fn site_events(
    State(state): State<AppState>,
    SiteCenter(center): SiteCenter,
    request: Option<axum::Extension<crate::audit::RequestId>>,
    ApiJson(batch): ApiJson<EventBatch>,
) -> HubResult<Json<EventResults>> {
    let limit = state.guard.limits.events_per_batch;
    if batch.events.len() > limit {
        return Err(HubError::BatchTooLarge {
            events: batch.events.len(),
            limit,
        });
    }
    for (i, e) in batch.events.iter().enumerate() {
        if let EventKind::Log { seq, .. } = e.kind
            && seq > i64::MAX as u64
        {
            return Err(SpecError::new(format!("events[{i}].seq"), "out of range").into());
        }
    }
    let results = state
        .engine
        .ask(|reply| Cmd::Events {
            center,
            events: batch.events,
            request: request.map(|r| r.0.0),
            reply,
        })
        .await?;
    Ok(Json(EventResults { results }))
}

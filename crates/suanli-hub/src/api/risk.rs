//! Risk flags, for the operator and supervisors: the flags the rules raised (evaluated afresh
//! before each list) and their state changes, the one thing a supervisor writes
//! (docs/SUPERVISION.md, "Risk flags").

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use suanli_audit::risk::{FlagState, RULES};
use suanli_proto::{
    ApiError, FlagChangeView, FlagStateRequest, FlagStateView, RiskFlagView, RiskFlags,
};
use suanli_store::RiskFlagChange;
use suanli_types::Role;
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{Access, ApiJson, ApiQuery, Op};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{HubError, HubResult};

const RISK_READERS: Access = Access::Roles(
    &[Role::Operator, Role::Supervisor],
    "only the operator and supervisors read and handle risk flags",
);

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::new(RISK_READERS, routes!(list_flags)),
        Op::new(RISK_READERS, routes!(change_state)),
    ]
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FlagsQuery {
    /// Only flags in this state.
    state: Option<FlagStateView>,
    /// Only flags of this rule.
    rule: Option<String>,
    /// At most this many, newest raised first (1 to 1000, default 200).
    limit: Option<u32>,
}

/// Risk flags, newest raised first, after evaluating the rules once more.
#[utoipa::path(get, path = "/v1/risk", params(FlagsQuery),
    responses((status = 200, description = "the flags", body = RiskFlags)))]
async fn list_flags(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FlagsQuery>,
) -> HubResult<Json<RiskFlags>> {
    if let Some(rule) = &q.rule
        && !RULES.contains(&rule.as_str())
    {
        return Err(HubError::BadRequest(format!(
            "rule: {rule:?} is not one of {}",
            RULES.join(", ")
        )));
    }
    match state.risk.evaluate().await {
        // A follower lists what the leader recorded.
        Ok(_) | Err(HubError::NotLeader) => {}
        Err(e) => return Err(e),
    }
    let limit = q.limit.unwrap_or(200).clamp(1, 1000) as usize;
    let want: Option<FlagState> = q.state.map(FlagState::from);
    let mut flags: Vec<RiskFlagView> = state
        .store
        .risk_flags()
        .await?
        .into_iter()
        .rev()
        .filter(|r| want.is_none_or(|s| r.state() == s))
        .filter(|r| q.rule.as_ref().is_none_or(|rule| &r.flag.rule == rule))
        .map(|r| RiskFlagView::new(&r.flag, r.raised_at.0, r.state(), history(&r.changes)))
        .collect();
    flags.truncate(limit);
    Ok(Json(RiskFlags { flags }))
}

/// Moves a flag forward (open -> acknowledged -> resolved), naming why; the change is kept with
/// who made it, and the request is in the audit log.
#[utoipa::path(post, path = "/v1/risk/state", request_body = FlagStateRequest,
    responses((status = 200, description = "the flag as it stands", body = RiskFlagView),
        (status = 404, description = "no such flag (`not_found`)", body = ApiError),
        (status = 409, description = "the flag is past that state already: states only move \
            forward (`conflict`, or `already_exists` when two changes race)", body = ApiError)))]
async fn change_state(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiJson(body): ApiJson<FlagStateRequest>,
) -> HubResult<Json<RiskFlagView>> {
    let why = body.why.trim();
    if why.is_empty() || why.chars().count() > 500 {
        return Err(HubError::BadRequest(
            "why: say why, in 1 to 500 characters".into(),
        ));
    }
    let to: FlagState = body.state.into();
    let flags = state.store.risk_flags().await?;
    let Some(current) = flags.iter().find(|r| r.flag.id == body.flag) else {
        return Err(HubError::NotFound(format!("no risk flag {:?}", body.flag)));
    };
    let from = current.state();
    if !from.may_become(to) {
        return Err(HubError::Conflict(format!(
            "flag {} is {}; it can only move forward (open, acknowledged, resolved)",
            body.flag,
            from.as_str()
        )));
    }
    let change = RiskFlagChange {
        state: to,
        by: me.id.to_string(),
        why: why.to_string(),
        at: crate::engine::now(),
    };
    if !state.store.change_risk_flag(&body.flag, &change).await? {
        return Err(HubError::NotFound(format!("no risk flag {:?}", body.flag)));
    }
    let mut changes = current.changes.clone();
    changes.push(change);
    Ok(Json(RiskFlagView::new(
        &current.flag,
        current.raised_at.0,
        to,
        history(&changes),
    )))
}

fn history(changes: &[RiskFlagChange]) -> Vec<FlagChangeView> {
    changes
        .iter()
        .map(|c| FlagChangeView {
            state: c.state.into(),
            by: c.by.clone(),
            why: c.why.clone(),
            at: c.at.0,
        })
        .collect()
}

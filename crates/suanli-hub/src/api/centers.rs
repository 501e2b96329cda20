//! Computing centers: the list with live status, registration, drain and undrain.

use axum::Json;
use axum::extract::State;
use suanli_proto::{CenterRegistered, CenterView, DrainRequest, DrainView, PoolView};
use suanli_types::{CenterId, CenterSpec, Role, SpecError};
use utoipa_axum::routes;

use super::extract::CenterPath;
use super::responses::NoSuchCenter;
use super::{Access, ApiJson, ApiPath, Op, OptionalJson, bounds};
use crate::AppState;
use crate::auth::{Auth, new_token_for, rotate_token};
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};

/// The operator, or the center's own site token, may drain or undrain a center.
const DRAINERS: Access = Access::Roles(&[Role::Operator, Role::Site], NOT_YOUR_CENTER);
const NOT_YOUR_CENTER: &str = "only the operator or the center's own site token drains a center";

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::any_token(routes!(list_centers)),
        Op::operator("only the operator registers centers", routes!(put_center)),
        Op::new(DRAINERS, routes!(drain_center)),
        Op::new(DRAINERS, routes!(undrain_center)),
    ]
}

/// A site token drains only its own center.
fn may_drain(auth: &Auth, center: &CenterId) -> HubResult<()> {
    if auth.0.role == Role::Site && auth.0.center.as_ref() != Some(center) {
        return Err(HubError::Forbidden(NOT_YOUR_CENTER));
    }
    Ok(())
}

/// Stops placing new work at a center. Attempts placed there that have not started are handed
/// back to the queue; running ones finish there, or with `requeue` are stopped and queued again.
/// Kept across hub restarts until undrained.
#[utoipa::path(post, path = "/v1/centers/{id}/drain",
    request_body(content = DrainRequest, description = "optional"),
    params(CenterPath),
    responses((status = 200, description = "what the drain did", body = DrainView), NoSuchCenter))]
async fn drain_center(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(CenterPath { id }): ApiPath<CenterPath>,
    OptionalJson(req): OptionalJson<DrainRequest>,
) -> HubResult<Json<DrainView>> {
    set_drained(&state, &auth, id, true, req.requeue).await
}

/// Lets a drained center take new work again.
#[utoipa::path(post, path = "/v1/centers/{id}/undrain",
    params(CenterPath),
    responses((status = 200, description = "what the undrain did", body = DrainView), NoSuchCenter))]
async fn undrain_center(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(CenterPath { id }): ApiPath<CenterPath>,
) -> HubResult<Json<DrainView>> {
    set_drained(&state, &auth, id, false, false).await
}

async fn set_drained(
    state: &AppState,
    auth: &Auth,
    center: CenterId,
    drain: bool,
    requeue: bool,
) -> HubResult<Json<DrainView>> {
    may_drain(auth, &center)?;
    let view = state
        .engine
        .ask(|reply| Cmd::Drain {
            center,
            drain,
            requeue,
            reply,
        })
        .await?;
    Ok(Json(view))
}

/// Every registered center with its pools, free cards, prices in force and status.
#[utoipa::path(get, path = "/v1/centers", responses((status = 200, description = "the centers", body = [CenterView])))]
async fn list_centers(State(state): State<AppState>) -> HubResult<Json<Vec<CenterView>>> {
    let live = state.engine.ask(|reply| Cmd::Live { reply }).await?;
    let catalog = suanli_types::ChipCatalog::builtin();
    let mut out = Vec::new();
    for spec in state.store.centers().await? {
        let l = live.centers.get(&spec.id).cloned().unwrap_or_default();
        let pools = spec
            .pools
            .iter()
            .map(|p| {
                let cap = live
                    .capacity
                    .iter()
                    .find(|c| c.center == spec.id && c.sku == p.sku);
                let total = p.nodes as u64 * p.cards_per_node as u64;
                PoolView {
                    sku: p.sku.clone(),
                    vendor: catalog
                        .get(&p.sku)
                        .map_or_else(String::new, |c| c.vendor.clone()),
                    nodes: p.nodes,
                    cards_per_node: p.cards_per_node,
                    total_cards: total,
                    free_cards: cap.map_or(total, |c| c.free_cards),
                    // The price in force (the books' price table), else the registered one.
                    price_per_card_hour: cap
                        .map_or(p.price_per_card_hour, |c| c.price_per_card_hour),
                }
            })
            .collect();
        let status = if l.drained {
            "drained"
        } else if !l.online {
            "offline"
        } else if l.draining {
            "draining"
        } else {
            "online"
        };
        out.push(CenterView {
            id: spec.id,
            name: spec.name,
            city: spec.city,
            owner: spec.owner,
            backend: spec.backend,
            stacks: spec.stacks,
            pools,
            status: status.to_string(),
            last_heartbeat: l.last_heartbeat,
        });
    }
    Ok(Json(out))
}

/// Registers or updates a center; the first registration returns its site token (shown once).
#[utoipa::path(put, path = "/v1/centers/{id}", request_body = CenterSpec,
    params(CenterPath),
    responses((status = 200, description = "the center is registered", body = CenterRegistered)))]
async fn put_center(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(CenterPath { id }): ApiPath<CenterPath>,
    ApiJson(spec): ApiJson<CenterSpec>,
) -> HubResult<Json<CenterRegistered>> {
    if spec.id != id {
        return Err(HubError::InvalidSpec(SpecError::new(
            "id",
            format!("does not match the URL ({id})"),
        )));
    }
    spec.validate()?;
    bounds::center(&spec)?;
    let created = state
        .engine
        .ask(|reply| Cmd::UpsertCenter {
            spec: Box::new(spec.clone()),
            reply,
        })
        .await?;
    let site_token = if created {
        let now = crate::engine::now();
        let t = new_token_for(
            format!("site:{}", spec.id),
            Role::Site,
            None,
            Some(spec.id.clone()),
            now,
            None,
        );
        // A first registration has no older site token; should one exist, it is replaced.
        Some(rotate_token(state.store.as_ref(), &t, now, true).await?.0)
    } else {
        None
    };
    tracing::info!(center = %spec.id, created, by = %auth.0.label(), "center registered");
    Ok(Json(CenterRegistered {
        center: spec.id,
        site_token,
    }))
}

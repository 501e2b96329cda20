//! Datasets: registered by their owner (a tenant admin, or the operator for a tenant), listed
//! to everyone but sites (the path at the centers and the grants only to the owner and the
//! operator), and granted per tenant with an expiry (docs/DATA.md).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use suanli_proto::{
    ApiError, DatasetGrantRequest, DatasetList, DatasetView, RegisterDataset, RevokeRequest,
    Revoked,
};
use suanli_store::{DatasetRecord, Principal};
use suanli_types::{Role, SpecError, TenantId, Timestamp};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{Access, ApiJson, ApiPath, Op};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};

const OWNERS: Access = Access::Roles(
    &[Role::Operator, Role::TenantAdmin],
    "only a data owner's tenant admins (and the operator) register and grant datasets",
);

/// How long a grant lasts when none is said: 90 days.
const DEFAULT_GRANT_MS: i64 = 90 * 86_400_000;

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::readers("sites do not list datasets", routes!(list_datasets)),
        Op::readers("sites do not read datasets", routes!(get_dataset)),
        Op::new(OWNERS, routes!(register_dataset)),
        Op::new(OWNERS, routes!(grant_dataset)),
        Op::new(OWNERS, routes!(revoke_dataset)),
    ]
}

/// The path of one dataset.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct DatasetPath {
    /// dataset name
    name: String,
}

/// Whether `me` speaks for the owner of `d` (its tenant admins, the operator).
fn owns(me: &Principal, owner: &TenantId) -> bool {
    me.role == Role::Operator || (me.role == Role::TenantAdmin && me.tenant.as_ref() == Some(owner))
}

async fn view(state: &AppState, me: &Principal, d: DatasetRecord) -> HubResult<DatasetView> {
    let now = crate::engine::now();
    let grants = state.store.grants(&d.spec.name).await?;
    let mine = me.tenant.as_ref();
    let in_force = mine.and_then(|t| {
        grants
            .iter()
            .filter(|g| &g.tenant == t && g.granted_at <= now)
            .max_by_key(|g| g.granted_at)
            .filter(|g| g.in_force(now))
    });
    let access = if mine == Some(&d.owner) {
        "owner"
    } else if !d.spec.classification.is_protected() {
        "public"
    } else if in_force.is_some() {
        "granted"
    } else {
        "needs a grant"
    };
    let grant_expires_at = in_force.and_then(|g| g.expires_at);
    let full = owns(me, &d.owner) || me.role == Role::Supervisor;
    let mut spec = d.spec;
    if !full {
        spec.path = String::new();
    }
    Ok(DatasetView {
        owner: d.owner,
        spec,
        registered_by: d.registered_by,
        registered_at: d.registered_at,
        updated_at: d.updated_at,
        access: access.into(),
        grant_expires_at,
        grants: if full { grants } else { Vec::new() },
    })
}

/// The registered datasets: where each resides, its classification and policy, and what the
/// caller's tenant may do with it.
#[utoipa::path(get, path = "/v1/datasets",
    responses((status = 200, description = "every registered dataset", body = DatasetList)))]
async fn list_datasets(
    State(state): State<AppState>,
    Auth(me): Auth,
) -> HubResult<Json<DatasetList>> {
    let mut datasets = Vec::new();
    for d in state.store.datasets().await? {
        datasets.push(view(&state, &me, d).await?);
    }
    Ok(Json(DatasetList { datasets }))
}

#[utoipa::path(get, path = "/v1/datasets/{name}", params(DatasetPath),
    responses((status = 200, description = "the dataset", body = DatasetView),
        (status = 404, description = "no such dataset", body = ApiError)))]
async fn get_dataset(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<DatasetPath>,
) -> HubResult<Json<DatasetView>> {
    let d = state
        .store
        .dataset(&p.name)
        .await?
        .ok_or_else(|| HubError::NotFound(format!("dataset {}", p.name)))?;
    Ok(Json(view(&state, &me, d).await?))
}

/// Registers a dataset, or replaces its record (its owner only): the centers that hold it
/// must be registered; jobs reading it run only there from now on.
#[utoipa::path(put, path = "/v1/datasets/{name}", params(DatasetPath), request_body = RegisterDataset,
    responses((status = 200, description = "the dataset as registered", body = DatasetView),
        (status = 409, description = "another tenant owns a dataset of this name (`already_exists`)", body = ApiError)))]
async fn register_dataset(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<DatasetPath>,
    ApiJson(req): ApiJson<RegisterDataset>,
) -> HubResult<Json<DatasetView>> {
    let owner = match (&me.tenant, req.owner) {
        (Some(own), Some(named)) if *own != named => {
            return Err(HubError::Forbidden(
                "a tenant admin registers datasets for its own tenant",
            ));
        }
        (Some(own), _) => own.clone(),
        (None, Some(named)) => named,
        (None, None) => {
            return Err(SpecError::new("owner", "the operator must name the owner tenant").into());
        }
    };
    if state.store.tenant(&owner).await?.is_none() {
        return Err(SpecError::new("owner", format!("unknown tenant {owner}")).into());
    }
    let spec = req.spec;
    spec.validate()
        .map_err(|e| SpecError::new(format!("spec.{}", e.field), e.message))?;
    if spec.name != p.name {
        return Err(SpecError::new(
            "spec.name",
            format!("{:?} differs from the path's {:?}", spec.name, p.name),
        )
        .into());
    }
    let centers = state.store.centers().await?;
    for (i, c) in spec.homes.iter().enumerate() {
        if !centers.iter().any(|k| &k.id == c) {
            return Err(SpecError::new(
                format!("spec.homes[{i}]"),
                format!("no center {c} is registered (suanli centers)"),
            )
            .into());
        }
    }
    // A path is one owner's: a dataset of another owner at the same folder (or one holding or
    // inside it) at a shared center would let its jobs read this data without a grant.
    for other in state.store.datasets().await? {
        let shared = other.spec.homes.iter().any(|h| spec.homes.contains(h));
        if other.spec.name != spec.name
            && other.owner != owner
            && shared
            && suanli_data::paths_overlap(&other.spec.path, &spec.path)
        {
            return Err(SpecError::new(
                "spec.path",
                format!(
                    "{} overlaps dataset {} of another owner at a center both name; a path \
                     belongs to one owner",
                    spec.path, other.spec.name
                ),
            )
            .into());
        }
    }
    let now = crate::engine::now();
    let old = state.store.dataset(&spec.name).await?;
    if let Some(o) = &old
        && o.owner != owner
    {
        return Err(HubError::AlreadyExists(format!(
            "dataset {} belongs to tenant {}",
            spec.name, o.owner
        )));
    }
    let rec = DatasetRecord {
        owner,
        spec: spec.clone(),
        registered_by: me.name.clone(),
        registered_at: old.as_ref().map_or(now, |o| o.registered_at),
        updated_at: now,
    };
    state.store.upsert_dataset(&rec).await?;
    let (dataset, homes) = (spec.name.clone(), spec.homes.clone());
    state
        .engine
        .ask(|reply| Cmd::SetDatasetHomes {
            dataset,
            homes,
            reply,
        })
        .await?;
    Ok(Json(view(&state, &me, rec).await?))
}

async fn owned(state: &AppState, me: &Principal, name: &str) -> HubResult<DatasetRecord> {
    let d = state
        .store
        .dataset(name)
        .await?
        .ok_or_else(|| HubError::NotFound(format!("dataset {name}")))?;
    if !owns(me, &d.owner) {
        return Err(HubError::Forbidden(
            "only the dataset owner's tenant admins (and the operator) grant it",
        ));
    }
    Ok(d)
}

/// Lets a tenant compute on the dataset until `expires_at` (default 90 days from now).
#[utoipa::path(post, path = "/v1/datasets/{name}/grants", params(DatasetPath), request_body = DatasetGrantRequest,
    responses((status = 201, description = "the dataset with the new grant", body = DatasetView),
        (status = 404, description = "no such dataset", body = ApiError)))]
async fn grant_dataset(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<DatasetPath>,
    ApiJson(req): ApiJson<DatasetGrantRequest>,
) -> HubResult<(StatusCode, Json<DatasetView>)> {
    let d = owned(&state, &me, &p.name).await?;
    if state.store.tenant(&req.tenant).await?.is_none() {
        return Err(SpecError::new("tenant", format!("unknown tenant {}", req.tenant)).into());
    }
    let now = crate::engine::now();
    let expires_at = req
        .expires_at
        .unwrap_or(Timestamp(now.0 + DEFAULT_GRANT_MS));
    if expires_at <= now {
        return Err(SpecError::new("expires_at", "must be in the future").into());
    }
    let g = suanli_data::Grant {
        dataset: d.spec.name.clone(),
        tenant: req.tenant,
        granted_by: format!("{} (#{})", me.name, me.id),
        granted_at: now,
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    state.store.insert_grant(&g).await?;
    Ok((StatusCode::CREATED, Json(view(&state, &me, d).await?)))
}

/// Ends a tenant's grants on the dataset at once (jobs already queued keep running).
#[utoipa::path(post, path = "/v1/datasets/{name}/revoke", params(DatasetPath), request_body = RevokeRequest,
    responses((status = 200, description = "how many grants ended", body = Revoked),
        (status = 404, description = "no such dataset", body = ApiError)))]
async fn revoke_dataset(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<DatasetPath>,
    ApiJson(req): ApiJson<RevokeRequest>,
) -> HubResult<Json<Revoked>> {
    let d = owned(&state, &me, &p.name).await?;
    let revoked = state
        .store
        .revoke_grants(&d.spec.name, &req.tenant, crate::engine::now())
        .await?;
    Ok(Json(Revoked { revoked }))
}

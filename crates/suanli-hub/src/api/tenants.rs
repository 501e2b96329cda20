//! Tenants and their fair-share policy (weight and quotas per chip family).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use suanli_proto::{ApiError, TenantPolicyView, TenantRequest, TenantView};
use suanli_store::{StoreError, TenantRecord};
use suanli_types::{Role, SpecError};
use utoipa_axum::routes;

use super::extract::TenantPath;
use super::responses::{AlreadyExists, NoSuchTenant};
use super::{ApiJson, ApiPath, Op, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::readers("sites do not list tenants", routes!(list_tenants)),
        Op::operator("only the operator creates tenants", routes!(create_tenant)),
        // Sites and other tenants get 404, as for a tenant that does not exist.
        Op::any_token(routes!(get_tenant_policy)),
        Op::operator(
            "only the operator sets fair-share weights and quotas",
            routes!(put_tenant_policy),
        ),
    ]
}

/// The tenants (a tenant token sees only its own).
#[utoipa::path(get, path = "/v1/tenants",
    responses((status = 200, description = "the tenants", body = [TenantView])))]
async fn list_tenants(
    State(state): State<AppState>,
    auth: Auth,
) -> HubResult<Json<Vec<TenantView>>> {
    let own = tenant_of(&auth.0)?.cloned();
    let out = state
        .store
        .tenants()
        .await?
        .into_iter()
        .filter(|t| own.as_ref().is_none_or(|o| *o == t.id))
        .map(|t| TenantView {
            id: t.id,
            name: t.name,
            category: t.category,
            city: t.city,
        })
        .collect();
    Ok(Json(out))
}

/// A tenant's fair-share weight and quotas (weight 1 and no quotas until set).
#[utoipa::path(get, path = "/v1/tenants/{id}/policy", params(TenantPath),
    responses((status = 200, description = "the policy", body = TenantPolicyView),
        (status = 400, description = "the stored policy is unreadable (`bad_request`)", body = ApiError),
        (status = 403, description = "a tenant token that names no tenant (`forbidden`)", body = ApiError),
        (status = 404, description = "no such tenant, or not the caller's", body = ApiError)))]
async fn get_tenant_policy(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(TenantPath { id: tenant }): ApiPath<TenantPath>,
) -> HubResult<Json<TenantPolicyView>> {
    if tenant_of(&auth.0)?.is_some_and(|own| *own != tenant) || auth.0.role == Role::Site {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    let policies = state.store.tenant_policies().await.map_err(|e| match e {
        StoreError::Corrupt { .. } => {
            tracing::error!(%tenant, error = %e, "stored tenant policy unreadable");
            HubError::BadRequest("the stored policy is unreadable; set it again".into())
        }
        e => e.into(),
    })?;
    let policy = policies.into_iter().find(|(t, _)| *t == tenant);
    let view = crate::views::policy_view(&policy.map(|(_, p)| p).unwrap_or_default());
    Ok(Json(view))
}

/// Sets a tenant's fair-share weight and quotas.
#[utoipa::path(put, path = "/v1/tenants/{id}/policy", request_body = TenantPolicyView,
    params(TenantPath),
    responses((status = 200, description = "the policy in force", body = TenantPolicyView),
        NoSuchTenant))]
async fn put_tenant_policy(
    State(state): State<AppState>,
    ApiPath(TenantPath { id: tenant }): ApiPath<TenantPath>,
    ApiJson(policy): ApiJson<TenantPolicyView>,
) -> HubResult<Json<TenantPolicyView>> {
    if !(1..=1000).contains(&policy.weight) {
        return Err(SpecError::new("weight", "must be 1 to 1000").into());
    }
    let vendors = suanli_types::ChipCatalog::builtin().vendors();
    for (family, q) in &policy.quotas {
        if !vendors.contains(&family.as_str()) {
            return Err(SpecError::new(
                format!("quotas.{family}"),
                format!("unknown chip family; known: {}", vendors.join(", ")),
            )
            .into());
        }
        if q.nominal > 1_000_000 || q.borrow_limit > 1_000_000 {
            return Err(
                SpecError::new(format!("quotas.{family}"), "at most 1,000,000 cards").into(),
            );
        }
    }
    let view = state
        .engine
        .ask(|reply| Cmd::SetTenantPolicy {
            tenant,
            policy,
            reply,
        })
        .await?;
    Ok(Json(view))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", request_body = TenantRequest,
    responses((status = 201, description = "the tenant", body = TenantView),
        AlreadyExists))]
async fn create_tenant(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<TenantRequest>,
) -> HubResult<(StatusCode, Json<TenantView>)> {
    suanli_types::ids::validate_slug(req.id.as_str()).map_err(|m| SpecError::new("id", m))?;
    if req.name.trim().is_empty() {
        return Err(SpecError::new("name", "must not be empty").into());
    }
    let city = match req.city.as_deref() {
        None => None,
        Some(c) => Some(suanli_types::center::city_name(c).map_err(|m| SpecError::new("city", m))?),
    };
    let rec = TenantRecord {
        id: req.id.clone(),
        name: req.name.clone(),
        category: req.category,
        city: city.clone(),
    };
    if !state
        .store
        .create_tenant(&rec, crate::engine::now())
        .await?
    {
        return Err(HubError::AlreadyExists(format!("tenant {}", req.id)));
    }
    // Vouchers and placement prices know the tenant's category from now on.
    state
        .engine
        .ask(|reply| Cmd::TenantAdded {
            tenant: req.id.clone(),
            category: req.category,
            city: city.clone(),
            reply,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantView {
            id: req.id,
            name: req.name,
            category: req.category,
            city,
        }),
    ))
}

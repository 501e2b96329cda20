//! Bearer tokens: the operator issues any; a tenant admin issues user tokens of its own tenant.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use suanli_proto::{TokenCreated, TokenRequest};
use suanli_store::Principal;
use suanli_types::{Role, SpecError};
use utoipa_axum::routes;

use super::{Access, ApiJson, Op};
use crate::AppState;
use crate::auth::{Auth, issue_token};
use crate::error::{HubError, HubResult};

const ISSUERS: &str =
    "only the operator issues tokens; a tenant admin may issue user tokens for its own tenant";

pub(super) fn ops() -> Vec<Op> {
    vec![Op::new(
        Access::Roles(&[Role::Operator, Role::TenantAdmin], ISSUERS),
        routes!(create_token),
    )]
}

/// Issues a token; the secret is in the answer only.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenRequest,
    responses((status = 201, description = "the new token", body = TokenCreated)))]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TokenRequest>,
) -> HubResult<(StatusCode, Json<TokenCreated>)> {
    let me = &auth.0;
    let allowed = me.role == Role::Operator
        || (req.role == Role::User && req.tenant.is_some() && req.tenant == me.tenant);
    if !allowed {
        return Err(HubError::Forbidden(ISSUERS));
    }
    let needs_tenant = matches!(req.role, Role::TenantAdmin | Role::User);
    match (&req.tenant, needs_tenant) {
        (None, true) => {
            return Err(
                SpecError::new("tenant", "required for tenant-admin and user tokens").into(),
            );
        }
        (Some(_), false) => {
            return Err(SpecError::new(
                "tenant",
                "only tenant-admin and user tokens name a tenant",
            )
            .into());
        }
        (Some(t), true) if state.store.tenant(t).await?.is_none() => {
            return Err(SpecError::new("tenant", format!("unknown tenant {t}")).into());
        }
        _ => {}
    }
    if req.role == Role::Site {
        let c = req
            .center
            .as_ref()
            .ok_or_else(|| SpecError::new("center", "required for site tokens"))?;
        if !state.store.centers().await?.iter().any(|s| &s.id == c) {
            return Err(SpecError::new("center", format!("unknown center {c}")).into());
        }
    } else if req.center.is_some() {
        return Err(SpecError::new("center", "only site tokens name a center").into());
    }
    let p = Principal {
        name: req.name.clone(),
        role: req.role,
        tenant: req.tenant,
        center: req.center,
    };
    let token = issue_token(state.store.as_ref(), &p).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            name: req.name,
            role: req.role,
        }),
    ))
}

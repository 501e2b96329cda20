//! Bearer tokens: issue (the operator any; a tenant admin user tokens of its own tenant), list
//! (never a secret), revoke, and rotate a center's site tokens. Every permission here, as
//! everywhere, is decided by the principal's id and role, never by a token's name.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use suanli_proto::{ApiError, RotateRequest, TokenCreated, TokenRequest, TokenView};
use suanli_store::{Principal, TokenFilter, TokenRecord};
use suanli_types::{Role, SpecError};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::extract::CenterPath;
use super::{Access, ApiJson, ApiPath, Op, OptionalJson};
use crate::AppState;
use crate::auth::{Auth, issue_token, max_lifetime, new_token_for, rotate_token};
use crate::error::{HubError, HubResult};

const ISSUERS: &str =
    "only the operator issues tokens; a tenant admin may issue user tokens for its own tenant";
const LISTERS: &str =
    "the operator and supervisors list tokens; a tenant admin lists its own tenant's";

/// Names no issued token may take (compared without case): the roles, and the names the hub
/// gives its own tokens (`operator`, `site:<center>`; a `:` is outside the charset anyway).
const RESERVED: &[&str] = &[
    "operator",
    "supervisor",
    "tenant-admin",
    "user",
    "site",
    "admin",
    "root",
    "hub",
    "system",
    "anonymous",
];

/// The longest grace a rotation may give the old site tokens.
const MAX_GRACE: Duration = Duration::from_secs(7 * 86_400);
/// The shortest lifetime an issuer may ask for.
const MIN_LIFETIME: Duration = Duration::from_secs(60);

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::new(
            Access::Roles(&[Role::Operator, Role::TenantAdmin], ISSUERS),
            routes!(create_token),
        ),
        Op::new(
            Access::Roles(
                &[Role::Operator, Role::Supervisor, Role::TenantAdmin],
                LISTERS,
            ),
            routes!(list_tokens),
        ),
        // Any token may revoke itself; which others it may revoke is the handler's business
        // (tokens it may not revoke are 404, as if they did not exist).
        Op::any_token(routes!(revoke_token)),
        Op::operator(
            "only the operator rotates site tokens",
            routes!(rotate_site_token),
        ),
    ]
}

/// Checks a token name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit, not
/// reserved.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    let bad = |m: &str| Err(SpecError::new("name", m));
    if name.is_empty() || name.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may hold only A-Z, a-z, 0-9, '.', '_' and '-'");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return bad("is reserved (a role or a name the hub gives its own tokens)");
    }
    Ok(())
}

/// A lifetime asked for in seconds, within [60 s, the role's maximum].
fn lifetime(secs: Option<u64>, role: Role) -> Result<Option<Duration>, SpecError> {
    let Some(secs) = secs else { return Ok(None) };
    let d = Duration::from_secs(secs);
    let max = max_lifetime(role);
    if d < MIN_LIFETIME || d > max {
        return Err(SpecError::new(
            "expires_in",
            format!(
                "must be {} to {} seconds for a {} token",
                MIN_LIFETIME.as_secs(),
                max.as_secs(),
                role.as_str()
            ),
        ));
    }
    Ok(Some(d))
}

fn created(token: String, rec: TokenRecord) -> TokenCreated {
    let p = rec.principal;
    TokenCreated {
        token,
        id: p.id,
        name: p.name,
        role: p.role,
        tenant: p.tenant,
        center: p.center,
        expires_at: rec.expires_at,
    }
}

fn view(rec: TokenRecord) -> TokenView {
    let valid = rec.invalid_at(crate::engine::now()).is_none();
    let p = rec.principal;
    TokenView {
        id: p.id,
        name: p.name,
        role: p.role,
        tenant: p.tenant,
        center: p.center,
        created_at: rec.created_at,
        expires_at: rec.expires_at,
        revoked_at: rec.revoked_at,
        last_used_at: rec.last_used_at,
        valid,
    }
}

/// Issues a token; the secret is in the answer only.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenRequest,
    responses((status = 201, description = "the new token", body = TokenCreated),
        (status = 409, description = "a token not revoked has this name in its tenant, center or the platform (`already_exists`)", body = ApiError)))]
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
    check_name(&req.name)?;
    let life = lifetime(req.expires_in, req.role)?;
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
    let now = crate::engine::now();
    let t = new_token_for(req.name, req.role, req.tenant, req.center, now, life);
    let (token, rec) = issue_token(state.store.as_ref(), &t).await?;
    tracing::info!(token = rec.principal.id, role = rec.principal.role.as_str(), by = %me.label(), "token issued");
    Ok((StatusCode::CREATED, Json(created(token, rec))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only this tenant's tokens (a tenant admin: its own only).
    tenant: Option<String>,
    /// Only this center's site tokens.
    center: Option<String>,
}

/// Tokens by id, revoked and expired ones too; never a secret.
#[utoipa::path(get, path = "/v1/tokens", params(ListQuery),
    responses((status = 200, description = "the tokens", body = Vec<TokenView>)))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
    super::ApiQuery(q): super::ApiQuery<ListQuery>,
) -> HubResult<Json<Vec<TokenView>>> {
    let me = &auth.0;
    let mut filter = TokenFilter {
        tenant: q.tenant.map(suanli_types::TenantId),
        center: q.center.map(suanli_types::CenterId),
    };
    if let Some(own) = super::tenant_of(me)? {
        if filter.tenant.as_ref().is_some_and(|t| t != own) || filter.center.is_some() {
            return Err(HubError::Forbidden(LISTERS));
        }
        filter.tenant = Some(own.clone());
    }
    let recs = state.store.tokens(&filter).await?;
    Ok(Json(recs.into_iter().map(view).collect()))
}

/// The path of one token.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// token id
    id: i64,
}

/// May `me` revoke `t`? Itself always; the operator any token; a tenant admin its tenant's user
/// tokens.
fn may_revoke(me: &Principal, t: &Principal) -> bool {
    me.id == t.id
        || me.role == Role::Operator
        || (me.role == Role::TenantAdmin
            && t.role == Role::User
            && me.tenant.is_some()
            && t.tenant == me.tenant)
}

/// Revokes a token at once, on every hub sharing the store; revoking it again changes nothing.
#[utoipa::path(delete, path = "/v1/tokens/{id}", params(TokenPath),
    responses((status = 200, description = "the token, revoked", body = TokenView),
        (status = 404, description = "no such token, or not this principal's to revoke (`not_found`)", body = ApiError)))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(TokenPath { id }): ApiPath<TokenPath>,
) -> HubResult<Json<TokenView>> {
    let me = &auth.0;
    let not_found = || HubError::NotFound(format!("token {id}"));
    let t = state.store.token_by_id(id).await?.ok_or_else(not_found)?;
    if !may_revoke(me, &t.principal) {
        return Err(not_found());
    }
    let rec = state
        .store
        .revoke_token(id, crate::engine::now())
        .await?
        .ok_or_else(not_found)?;
    // This hub's cache at once; the others at their next request (the generation moved).
    state.tokens.clear();
    tracing::info!(token = id, by = %me.label(), "token revoked");
    Ok(Json(view(rec)))
}

/// Rotates a center's site tokens: a new one (shown once), and every older site token of the
/// center revoked at once or, with `grace`, that many seconds later.
#[utoipa::path(post, path = "/v1/centers/{id}/site-token", params(CenterPath),
    request_body = RotateRequest,
    responses((status = 201, description = "the new site token", body = TokenCreated),
        (status = 404, description = "no such center (`not_found`)", body = ApiError)))]
async fn rotate_site_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(CenterPath { id }): ApiPath<CenterPath>,
    OptionalJson(req): OptionalJson<RotateRequest>,
) -> HubResult<(StatusCode, Json<TokenCreated>)> {
    if Duration::from_secs(req.grace) > MAX_GRACE {
        return Err(
            SpecError::new("grace", format!("at most {} seconds", MAX_GRACE.as_secs())).into(),
        );
    }
    let life = lifetime(req.expires_in, Role::Site)?;
    if !state.store.centers().await?.iter().any(|s| s.id == id) {
        return Err(HubError::NotFound(format!("center {id}")));
    }
    let now = crate::engine::now();
    let name = format!("site:{id}");
    let t = new_token_for(name, Role::Site, None, Some(id.clone()), now, life);
    let retire_at = now.plus_millis(req.grace as i64 * 1000);
    let (token, rec) = rotate_token(state.store.as_ref(), &t, retire_at, false).await?;
    state.tokens.clear();
    tracing::info!(center = %id, token = rec.principal.id, grace_secs = req.grace, by = %auth.0.label(), "site tokens rotated");
    Ok((StatusCode::CREATED, Json(created(token, rec))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for ok in ["alice", "a", "Bob.Smith_2-x", &"x".repeat(64)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            &"x".repeat(65),
            "site:sme-4090",
            "operator",
            "OPERATOR",
            "Site",
            "-x",
            ".x",
            "a b",
            "名字",
            "a\0b",
        ] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.field, "name", "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_are_bounded_per_role() {
        assert_eq!(lifetime(None, Role::User).unwrap(), None);
        assert!(lifetime(Some(59), Role::User).is_err());
        assert!(lifetime(Some(60), Role::User).is_ok());
        assert!(lifetime(Some(365 * 86_400), Role::User).is_ok());
        assert!(lifetime(Some(365 * 86_400 + 1), Role::User).is_err());
        assert!(lifetime(Some(91 * 86_400), Role::Operator).is_err());
        assert!(lifetime(Some(730 * 86_400), Role::Site).is_ok());
    }
}

//! Who may call an operation: declared once per operation in the route table, enforced here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use suanli_store::Principal;
use suanli_types::Role;

use crate::AppState;
use crate::audit;
use crate::auth::{Auth, authenticate};
use crate::error::HubError;

/// An operation's access rule. Rules name roles; what a principal of an allowed role may see or
/// change (its own tenant, its own center, its own jobs) is the handler's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token needed: health, readiness, the OpenAPI document (and metrics with
    /// `--metrics-public`).
    Public,
    /// Any valid token.
    AnyToken,
    /// A valid token of one of these roles; others are refused (403) with this message.
    Roles(&'static [Role], &'static str),
}

/// The roles that read the network: all but site agents.
pub const READERS: &[Role] = &[
    Role::Operator,
    Role::Supervisor,
    Role::TenantAdmin,
    Role::User,
];
pub const OPERATOR: &[Role] = &[Role::Operator];
/// The roles that read `/metrics` (every center's load) without `--metrics-public`.
pub const METRICS_READERS: &[Role] = &[Role::Operator, Role::Supervisor];

impl Access {
    /// The operator only.
    pub const fn operator(refusal: &'static str) -> Access {
        Access::Roles(OPERATOR, refusal)
    }

    /// Everyone but site agents.
    pub const fn readers(refusal: &'static str) -> Access {
        Access::Roles(READERS, refusal)
    }

    /// Site agents only (the site protocol).
    pub const SITE: Access = Access::Roles(&[Role::Site], "only site agents use the site protocol");

    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::AnyToken => true,
            Access::Roles(roles, _) => roles.contains(&role),
        }
    }

    /// The roles allowed, `None` for every role (or no token at all).
    pub fn roles(self) -> Option<&'static [Role]> {
        match self {
            Access::Roles(roles, _) => Some(roles),
            _ => None,
        }
    }
}

/// `mr` behind `access`: authenticates the caller (unless public), holds it to its token's and
/// its site's request rates, refuses roles the rule does not allow, and hands the principal to
/// the handler's [`Auth`] extractor. Every write and every refusal (401, 403, 429, whether
/// here or in the handler), and every sensitive read, is queued for the audit log before the
/// response goes out; this is
/// the one place that happens.
pub(super) fn enforced(
    mr: MethodRouter<AppState>,
    state: AppState,
    access: Access,
    body_limit: usize,
) -> MethodRouter<AppState> {
    mr.layer(axum::middleware::from_fn_with_state(
        (state, access, body_limit),
        enforce,
    ))
}

async fn enforce(
    State((state, access, body_limit)): State<(AppState, Access, usize)>,
    req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let from = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let mut seen = audit::Seen::of(&req, peer);
    let (resp, principal) = match admit(&state, access, req.headers(), from).await {
        Err((e, who)) => {
            seen.refused(&e);
            (e.into_response(), who)
        }
        Ok(principal) => {
            let mut req = req;
            if seen.is_write() {
                // The body is read here, within the route's limit, to be digested, and handed
                // on unchanged.
                let (parts, body) = req.into_parts();
                match axum::body::to_bytes(body, body_limit).await {
                    Ok(bytes) => {
                        seen.body(&bytes);
                        req = Request::from_parts(parts, axum::body::Body::from(bytes));
                    }
                    Err(_) => {
                        let resp = HubError::TooLarge.into_response();
                        let draft = seen.draft(Some(&principal), resp.status().as_u16());
                        state.audit.record(draft).await;
                        return audit::with_request_id(resp, &seen);
                    }
                }
            }
            req.extensions_mut().insert(Auth(principal.clone()));
            req.extensions_mut().insert(seen.request_id());
            let resp = next.run(req).await;
            seen.refused_by_handler(&resp);
            (resp, Some(principal))
        }
    };
    let status = resp.status().as_u16();
    let sensitive = resp.extensions().get::<audit::SensitiveRead>().is_some();
    if seen.is_write() || sensitive || audit::is_denial(status) {
        state
            .audit
            .record(seen.draft(principal.as_ref(), status))
            .await;
    }
    audit::with_request_id(resp, &seen)
}

/// The principal of the request if `access` admits it: authenticated, within its token's and
/// its site's request rates, of a role the rule allows. A refusal names the principal once it
/// is known.
async fn admit(
    state: &AppState,
    access: Access,
    headers: &axum::http::HeaderMap,
    from: IpAddr,
) -> Result<Principal, (HubError, Option<Principal>)> {
    let (token, principal) = authenticate(state, headers, from)
        .await
        .map_err(|e| (e, None))?;
    if let Err(e) = state.guard.admit(&token, &principal) {
        return Err((e, Some(principal)));
    }
    if let Access::Roles(roles, refusal) = access
        && !roles.contains(&principal.role)
    {
        return Err((HubError::Forbidden(refusal), Some(principal)));
    }
    Ok(principal)
}

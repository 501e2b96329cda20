//! Who may call an operation: declared once per operation in the route table, enforced here.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use suanli_types::Role;

use crate::AppState;
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
/// the handler's [`Auth`] extractor.
pub(super) fn enforced(
    mr: MethodRouter<AppState>,
    state: AppState,
    access: Access,
) -> MethodRouter<AppState> {
    mr.layer(axum::middleware::from_fn_with_state(
        (state, access),
        enforce,
    ))
}

async fn enforce(
    State((state, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(req).await;
    }
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let (token, principal) = match authenticate(&state, req.headers(), from).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = state.guard.admit(&token, &principal) {
        return e.into_response();
    }
    if let Access::Roles(roles, refusal) = access
        && !roles.contains(&principal.role)
    {
        return HubError::Forbidden(refusal).into_response();
    }
    req.extensions_mut().insert(Auth(principal));
    next.run(req).await
}

//! The REST API: one route table, and the OpenAPI document generated from it.
//!
//! Each resource module (`jobs`, `centers`, `tenants`, `tokens`, `money`, `site`, `meta`) lists
//! its operations as [`Op`]s: the handler, whose `#[utoipa::path]` attribute gives its route and
//! OpenAPI entry, and the [`Access`] rule saying who may call it. [`router`] serves exactly that
//! table, enforcing every rule in one middleware ([`access::enforce`]); [`openapi`] documents the
//! same table, adding the bearer security scheme and the error responses each rule and each
//! extractor can produce. Adding a read endpoint: a handler and one `Op` line in its resource
//! module, a view type in `suanli-proto`, and a test.

mod access;
mod centers;
mod document;
mod extract;
mod jobs;
mod meta;
mod money;
mod responses;
mod site;
mod tenants;
mod tokens;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::MethodRouter;
use suanli_store::Principal;
use suanli_types::{Role, TenantId};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::AppState;
use crate::error::{HubError, HubResult};

pub use access::Access;
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};

/// One operation: its handler (route and OpenAPI entry, from `routes!`) and who may call it.
pub(crate) struct Op {
    access: Access,
    route: UtoipaMethodRouter<AppState>,
    /// Site agents send log batches and large inventories; other bodies keep axum's 2 MiB.
    large_body: bool,
}

impl Op {
    pub(crate) fn new(access: Access, route: UtoipaMethodRouter<AppState>) -> Op {
        Op {
            access,
            route,
            large_body: false,
        }
    }

    /// No token needed.
    pub(crate) fn public(route: UtoipaMethodRouter<AppState>) -> Op {
        Op::new(Access::Public, route)
    }

    /// Any valid token; what it may see is the handler's business.
    pub(crate) fn any_token(route: UtoipaMethodRouter<AppState>) -> Op {
        Op::new(Access::AnyToken, route)
    }

    /// The operator only; others are refused with `refusal`.
    pub(crate) fn operator(refusal: &'static str, route: UtoipaMethodRouter<AppState>) -> Op {
        Op::new(Access::operator(refusal), route)
    }

    /// Everyone but site agents, who are refused with `refusal`.
    pub(crate) fn readers(refusal: &'static str, route: UtoipaMethodRouter<AppState>) -> Op {
        Op::new(Access::readers(refusal), route)
    }

    /// Site agents only.
    pub(crate) fn site(route: UtoipaMethodRouter<AppState>) -> Op {
        Op::new(Access::SITE, route)
    }

    /// Accepts bodies up to [`SITE_BODY_LIMIT`].
    pub(crate) fn large_body(mut self) -> Op {
        self.large_body = true;
        self
    }
}

/// The body limit of site-agent uploads (heartbeats, event batches).
const SITE_BODY_LIMIT: usize = 16 << 20;

/// The route table: every operation of every resource, with its OpenAPI tag.
fn table() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("meta", meta::ops()),
        ("centers", centers::ops()),
        ("tenants", tenants::ops()),
        ("tokens", tokens::ops()),
        ("jobs", jobs::ops()),
        ("money", money::ops()),
        ("site", site::ops()),
    ]
}

/// Builds the router and the document from the table; `wrap` adds each operation's
/// enforcement (none when only the document is wanted).
fn assemble(
    wrap: impl Fn(MethodRouter<AppState>, Access) -> MethodRouter<AppState>,
) -> (Router<AppState>, OpenApi) {
    let mut api = OpenApiRouter::with_openapi(document::base());
    for (tag, ops) in table() {
        for op in ops {
            let (schemas, mut paths, method_router) = op.route;
            for (path, item) in paths.paths.iter_mut() {
                for (_, operation) in document::operations_mut(item) {
                    document::describe(operation, path, tag, op.access);
                }
            }
            let mut method_router = wrap(method_router, op.access);
            if op.large_body {
                method_router = method_router.layer(DefaultBodyLimit::max(SITE_BODY_LIMIT));
            }
            api = api.routes((schemas, paths, method_router));
        }
    }
    let (router, mut doc) = api.split_for_parts();
    document::finish(&mut doc);
    (
        router.fallback(|| async { HubError::NotFound("no such endpoint".into()) }),
        doc,
    )
}

/// The API's routes, each behind its access rule.
pub fn router(state: AppState) -> Router {
    let s = state.clone();
    let (router, _) = assemble(move |mr, access| access::enforced(mr, s.clone(), access));
    router.with_state(state)
}

/// The OpenAPI 3.1 document of the API, as `GET /v1/openapi.json` serves it.
pub fn openapi() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| assemble(|mr, _| mr).1)
}

/// The tenant a tenant-role principal is confined to; `None` for platform roles. A tenant role
/// without a tenant (never issued, but a damaged row must not widen access) is refused.
fn tenant_of(p: &Principal) -> HubResult<Option<&TenantId>> {
    match p.role {
        Role::TenantAdmin | Role::User => p
            .tenant
            .as_ref()
            .map(Some)
            .ok_or(HubError::Forbidden("this token names no tenant")),
        _ => Ok(None),
    }
}

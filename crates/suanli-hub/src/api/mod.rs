//! The REST API: one route table, and the OpenAPI document generated from it.
//!
//! Each resource module (`jobs`, `centers`, `tenants`, `tokens`, `money`, `site`, `audit`, `risk`, `statistics`, `models`, `meta`) lists
//! its operations as [`Op`]s: the handler, whose `#[utoipa::path]` attribute gives its route and
//! OpenAPI entry, and the [`Access`] rule saying who may call it. [`router`] serves exactly that
//! table, enforcing every rule in one middleware ([`access::enforce`], which also holds each
//! caller to the rate limits of [`limits`]); [`openapi`] documents the same table, adding the
//! bearer security scheme and the error responses each rule and each extractor can produce.
//! Shared response sets and path types are in `responses` and `extract`; bounds on the fields
//! of site reports and registrations in `bounds`. Adding a read endpoint: a handler and one `Op`
//! line in its resource module, a view type in `suanli-proto`, and a test.

mod access;
mod airlock;
mod audit;
mod bounds;
mod centers;
mod datasets;
mod document;
mod explain;
mod extract;
mod jobs;
mod limits;
mod meta;
mod models;
mod money;
mod outputs;
mod responses;
mod risk;
mod site;
mod statistics;
mod tenants;
mod tokens;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use suanli_store::Principal;
use suanli_types::{Role, TenantId};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::error::{HubError, HubResult};
use crate::{ApiConfig, AppState};

pub use access::Access;
pub use extract::{ApiJson, ApiPath, ApiQuery, OptionalJson};
pub use limits::{Guard, Limits, Rate};

/// axum's default body limit, which every operation but the site agents' keeps.
const DEFAULT_BODY_LIMIT: usize = 2 << 20;

/// One operation: its handler (route and OpenAPI entry, from `routes!`) and who may call it.
pub(crate) struct Op {
    access: Access,
    route: UtoipaMethodRouter<AppState>,
    /// Site agents send log batches and large inventories, and output files; other bodies keep
    /// axum's 2 MiB.
    body: BodySize,
    /// `--metrics-public` makes this operation public.
    opened_by_metrics_public: bool,
}

impl Op {
    pub(crate) fn new(access: Access, route: UtoipaMethodRouter<AppState>) -> Op {
        Op {
            access,
            route,
            body: BodySize::Default,
            opened_by_metrics_public: false,
        }
    }

    /// The operator and supervisors; anyone when the hub runs with `--metrics-public`.
    pub(crate) fn metrics(route: UtoipaMethodRouter<AppState>) -> Op {
        Op {
            opened_by_metrics_public: true,
            ..Op::new(
                Access::Roles(
                    access::METRICS_READERS,
                    "only the operator and supervisors read metrics (unless the hub runs with \
                     --metrics-public)",
                ),
                route,
            )
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

    /// The rule the hub enforces: the declared one, but public for metrics with
    /// `--metrics-public`.
    fn served_access(&self, cfg: &ApiConfig) -> Access {
        match self.opened_by_metrics_public && cfg.metrics_public {
            true => Access::Public,
            false => self.access,
        }
    }

    /// Accepts bodies up to [`Limits::site_body_bytes`].
    pub(crate) fn large_body(mut self) -> Op {
        self.body = BodySize::Site;
        self
    }

    /// Accepts bodies up to the hub's cap on one output file.
    pub(crate) fn output_body(mut self) -> Op {
        self.body = BodySize::Output;
        self
    }
}

/// The largest body an operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodySize {
    /// axum's 2 MiB.
    Default,
    /// [`Limits::site_body_bytes`].
    Site,
    /// `OutputsConfig::max_file_bytes`.
    Output,
}

/// The route table: every operation of every resource, with its OpenAPI tag.
fn table() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("meta", meta::ops()),
        ("centers", centers::ops()),
        ("tenants", tenants::ops()),
        ("tokens", tokens::ops()),
        ("jobs", jobs::ops()),
        ("money", money::ops()),
        ("money", explain::ops()),
        ("site", site::ops()),
        ("audit", audit::ops()),
        ("risk", risk::ops()),
        ("statistics", statistics::ops()),
        ("models", models::ops()),
        ("outputs", outputs::ops()),
        ("datasets", datasets::ops()),
        ("airlock", airlock::ops()),
    ]
}

/// Builds the router and the document from the table; with `serve`, each operation behind its
/// rule and the site body limit where it takes large bodies (neither when only the document is
/// wanted).
fn assemble(serve: Option<(&AppState, &ApiConfig)>) -> (Router<AppState>, OpenApi) {
    let mut api = OpenApiRouter::with_openapi(document::base());
    for (tag, ops) in table() {
        for op in ops {
            let limits = serve.map(|(state, cfg)| (state, cfg, op.served_access(cfg)));
            let (schemas, mut paths, method_router) = op.route;
            for (path, item) in paths.paths.iter_mut() {
                for (_, operation) in document::operations_mut(item) {
                    document::describe(operation, path, tag, op.access);
                }
            }
            let method_router = match limits {
                Some((state, cfg, access)) => {
                    let body_limit = match op.body {
                        BodySize::Default => DEFAULT_BODY_LIMIT,
                        BodySize::Site => cfg.limits.site_body_bytes,
                        BodySize::Output => state.outputs.config.max_file_bytes,
                    };
                    let mr = access::enforced(method_router, state.clone(), access, body_limit);
                    match op.body {
                        BodySize::Default => mr,
                        _ => mr.layer(DefaultBodyLimit::max(body_limit)),
                    }
                }
                None => method_router,
            };
            api = api.routes((schemas, paths, method_router));
        }
    }
    let (router, mut doc) = api.split_for_parts();
    document::finish(&mut doc);
    (router, doc)
}

/// The API's routes, each behind its access rule, with the limits of `cfg`. Unknown paths get
/// the API's 404, except outside `/v1/` when `ui` serves pages there.
pub fn router(state: AppState, cfg: &ApiConfig, ui: Option<Router>) -> Router {
    let (router, _) = assemble(Some((&state, cfg)));
    let not_found = || async { HubError::NotFound("no such endpoint".into()) };
    let router = match ui {
        Some(ui) => router
            .route("/v1/{*rest}", axum::routing::any(not_found))
            .fallback_service(ui),
        None => router.fallback(not_found),
    };
    router.with_state(state)
}

/// The OpenAPI 3.1 document of the API, as `GET /v1/openapi.json` serves it.
pub fn openapi() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| assemble(None).1)
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

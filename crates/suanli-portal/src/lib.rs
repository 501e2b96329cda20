//! The web portal: server-rendered pages for tenants, the operator and supervisors, served by
//! the hub at `/` (the binary mounts [`router`] beside the API).
//!
//! The portal is a client of the hub's `/v1` API: a signed-in session holds the principal's
//! token, and every page is built from API calls made with it, so what a page shows is exactly
//! what that principal may read, and every write goes through the API's checks and audit.
//! Pages are HTML from [`maud`] templates (escaped by default), with every string from the
//! Fluent catalogs in `locales/` (zh-CN and en), one stylesheet embedded in the binary, no
//! scripts: forms and links work in any browser. docs/PORTAL.md lists the pages and roles.
//!
//! Layout: `session` (sign-in, cookies, CSRF, the [`session::Ctx`] every handler gets),
//! `i18n` (languages, catalogs, formats), `layout` (the page frame, errors), `pages/*` (one
//! module per area). Adding a page: a handler in its area's module, one line in [`router`],
//! its strings in both catalogs, a browser test.

pub mod i18n;
mod layout;
mod pages;
pub mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use suanli_client::Client;

/// How the portal reaches its hub and sets its cookies.
#[derive(Clone, Debug)]
pub struct PortalConfig {
    /// The hub API's base URL, e.g. `http://127.0.0.1:8600`.
    pub hub_url: String,
    /// Mark cookies `Secure` (the portal is served over https, e.g. behind a proxy).
    pub secure_cookies: bool,
}

/// The portal's state: a hub client without a token (each session's calls add theirs) and the
/// sessions.
pub struct Portal {
    config: PortalConfig,
    client: Client,
    sessions: session::Sessions,
}

/// The stylesheet and the icon, embedded in the binary.
const CSS: &str = include_str!("../assets/portal.css");
const ICON: &str = include_str!("../assets/icon.svg");
/// The one script: a job page's live updates (pages work without it).
const LIVE_JS: &str = include_str!("../assets/live.js");

/// The portal's routes. Unknown paths get the portal's 404 page.
pub fn router(config: PortalConfig) -> Router {
    let portal = Arc::new(Portal {
        client: Client::new(vec![config.hub_url.clone()], ""),
        config,
        sessions: session::Sessions::default(),
    });
    Router::new()
        .route("/", get(pages::network::page))
        .route("/signin", get(session::sign_in_page).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/lang", get(session::switch_language))
        .route("/jobs", get(pages::jobs::list))
        .route("/jobs/{id}", get(pages::jobs::show))
        .route("/jobs/{id}/cancel", post(pages::jobs::cancel))
        .route("/jobs/{id}/live", get(pages::live::live))
        .route("/jobs/{id}/output", get(pages::outputs::download))
        .route("/jobs/{id}/release", post(pages::outputs::request_release))
        .route(
            "/submit",
            get(pages::submit::form).post(pages::submit::post),
        )
        .route("/bills", get(pages::money::bills))
        .route("/bills.csv", get(pages::money::bills_csv))
        .route("/centers", get(pages::operator::centers))
        .route("/centers/{id}/drain", post(pages::operator::drain))
        .route("/centers/{id}/undrain", post(pages::operator::undrain))
        .route("/queue", get(pages::desk::queue))
        .route("/tenants", get(pages::desk::tenants))
        .route("/prices", get(pages::desk::prices))
        .route("/programmes", get(pages::desk::programmes))
        .route("/audit", get(pages::supervisor::audit))
        .route("/audit/verify", get(pages::supervisor::verify))
        .route("/risk", get(pages::supervisor::risk))
        .route("/risk/state", post(pages::supervisor::set_state))
        .route("/indicators", get(pages::statistics::indicators))
        .route("/releases", get(pages::statistics::releases))
        .route("/models", get(pages::models::library))
        .route("/certifications/{id}/review", post(pages::models::review))
        .route("/datasets", get(pages::datasets::list))
        .route("/airlock", get(pages::airlock::list))
        .route("/airlock/{id}", get(pages::airlock::show))
        .route("/airlock/{id}/review", post(pages::airlock::review))
        .route(
            "/assets/portal.css",
            get(|| asset("text/css; charset=utf-8", CSS)),
        )
        .route("/assets/icon.svg", get(|| asset("image/svg+xml", ICON)))
        .route(
            "/assets/live.js",
            get(|| asset("text/javascript; charset=utf-8", LIVE_JS)),
        )
        .route("/favicon.ico", get(|| asset("image/svg+xml", ICON)))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(portal)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Scripts only from the portal itself (never inline), no framing, no referrer, no sniffing;
/// pages are not cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

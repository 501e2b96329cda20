//! The page frame (header, navigation by role, language switch, sign-out) and what a page shows
//! when it cannot be built.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};
use suanli_client::ClientError;
use suanli_proto::ErrorCode;
use suanli_types::JobState;

use crate::i18n::Lang;
use crate::session::Ctx;

/// Why a page could not be built.
#[derive(Debug)]
pub enum Failure {
    /// Not signed in (or the session ended): go to the sign-in page and come back.
    SignIn,
    /// A form without this session's CSRF token.
    Csrf,
    /// A site agent's token: the portal is for people.
    SiteToken,
    /// The hub refused or could not be reached.
    Api(ClientError),
    /// A form field is wrong: the message names it.
    BadForm(String),
    NotFound,
    /// The page is for other roles.
    Forbidden,
    /// The session has as many live pages open as it may.
    TooMany,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e.code() {
            Some(ErrorCode::Unauthenticated) => Failure::SignIn,
            _ => Failure::Api(e),
        }
    }
}

/// A whole page: `title` as its heading, `body` under it.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Markup {
    page_with(ctx, title, body, false)
}

/// A page; `live`: it updates itself, through `/assets/live.js` where scripts run and by a
/// refresh every 5 s where they do not.
pub fn page_with(ctx: &Ctx, title: &str, body: Markup, live: bool) -> Markup {
    let s = ctx.session.as_deref();
    let links: Vec<(&str, &str)> = match s {
        None => vec![],
        Some(s) if s.is_tenant() => vec![
            ("/", "nav-network"),
            ("/submit", "nav-submit"),
            ("/jobs", "nav-jobs"),
            ("/bills", "nav-bills"),
            ("/models", "nav-models"),
            ("/datasets", "nav-datasets"),
            ("/airlock", "nav-airlock"),
        ],
        Some(s) if s.is_operator() => vec![
            ("/", "nav-network"),
            ("/centers", "nav-centers"),
            ("/queue", "nav-queue"),
            ("/jobs", "nav-all-jobs"),
            ("/tenants", "nav-tenants"),
            ("/prices", "nav-prices"),
            ("/programmes", "nav-programmes"),
            ("/bills", "nav-bills"),
            ("/risk", "nav-risk"),
            ("/indicators", "nav-indicators"),
            ("/releases", "nav-releases"),
            ("/models", "nav-models"),
            ("/datasets", "nav-datasets"),
            ("/audit", "nav-audit"),
        ],
        Some(_) => vec![
            ("/", "nav-network"),
            ("/jobs", "nav-all-jobs"),
            ("/risk", "nav-risk"),
            ("/indicators", "nav-indicators"),
            ("/releases", "nav-releases"),
            ("/programmes", "nav-programmes"),
            ("/prices", "nav-prices"),
            ("/models", "nav-models"),
            ("/datasets", "nav-datasets"),
            ("/audit", "nav-audit"),
        ],
    };
    let path = ctx.here.split('?').next().unwrap_or("/");
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · " (ctx.t("brand")) }
                link rel="stylesheet" href="/assets/portal.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
                @if live {
                    script src="/assets/live.js" defer {}
                    noscript { meta http-equiv="refresh" content="5"; }
                }
            }
            body {
                a.skip href="#main" { (ctx.t("skip-to-content")) }
                // Many links get a row of their own below the brand and the tools.
                header class=(if links.len() > 6 { "top many" } else { "top" }) {
                    a.brand href="/" { (ctx.t("brand")) }
                    nav aria-label=(ctx.t("nav-label")) {
                        ul {
                            @for (href, id) in &links {
                                li {
                                    // A page under a section (`/audit/verify`) marks it.
                                    @if *href == path || (*href != "/" && path.strip_prefix(*href).is_some_and(|r| r.starts_with('/'))) {
                                        a href=(href) aria-current="page" { (ctx.t(id)) }
                                    } @else {
                                        a href=(href) { (ctx.t(id)) }
                                    }
                                }
                            }
                        }
                    }
                    div.tools {
                        @for l in Lang::ALL {
                            @if l != ctx.lang {
                                a.lang href=(format!("/lang?to={}&back={}", l.tag(), encode(&ctx.here)))
                                    lang=(l.tag()) hreflang=(l.tag()) { (l.own_name()) }
                            }
                        }
                        @if let Some(s) = s {
                            span.who { (s.who.name) " · " (ctx.t(role_id(s.who.role))) }
                            form.inline method="post" action="/signout" {
                                (ctx.csrf_field())
                                button.link type="submit" { (ctx.t("signout-button")) }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
                footer { (ctx.t("footer")) }
            }
        }
    }
}

/// Percent-encodes a path for a query parameter.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn role_id(r: suanli_types::Role) -> &'static str {
    use suanli_types::Role::*;
    match r {
        Operator => "role-operator",
        Supervisor => "role-supervisor",
        TenantAdmin => "role-tenant-admin",
        User => "role-user",
        Site => "role-site",
    }
}

/// A job state's label.
/// The catalog's message id of a job state's name.
pub fn state_id(s: JobState) -> String {
    format!("state-{}", s.as_str().replace('_', "-"))
}

pub fn state_label(ctx: &Ctx, s: JobState) -> Markup {
    let id = state_id(s);
    html! { span class=(format!("state {}", s.as_str())) { (ctx.lang.t(&id)) } }
}

/// What the hub said, for the page: its message (API messages are written for clients) with
/// the error code, or why the hub could not be asked.
pub fn api_message(ctx: &Ctx, e: &ClientError) -> String {
    match e {
        ClientError::Api(a) => match &a.field {
            Some(f) => format!("{} ({f})", a.message),
            None => a.message.clone(),
        },
        ClientError::Unreachable { .. } => ctx.t("error-unreachable"),
        ClientError::Protocol { .. } => ctx.t("error-protocol"),
    }
}

/// A page, or the page saying why it could not be built.
pub fn finish(ctx: &Ctx, r: Result<Response, Failure>) -> Response {
    r.unwrap_or_else(|f| failure_page(ctx, f))
}

/// The page for a failure, with the status the API would give.
pub fn failure_page(ctx: &Ctx, f: Failure) -> Response {
    let (status, text) = match &f {
        Failure::SignIn => {
            let back = encode(&ctx.here);
            return Redirect::to(&format!("/signin?back={back}")).into_response();
        }
        Failure::Csrf => (StatusCode::FORBIDDEN, ctx.t("error-csrf")),
        Failure::SiteToken => (StatusCode::FORBIDDEN, ctx.t("error-site-token")),
        Failure::BadForm(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
        Failure::NotFound => (StatusCode::NOT_FOUND, ctx.t("error-not-found")),
        Failure::Forbidden => (StatusCode::FORBIDDEN, ctx.t("error-forbidden")),
        Failure::TooMany => (StatusCode::TOO_MANY_REQUESTS, ctx.t("error-too-many-live")),
        Failure::Api(e) => {
            let status = match e.code() {
                Some(ErrorCode::NotFound) => StatusCode::NOT_FOUND,
                Some(ErrorCode::Forbidden) => StatusCode::FORBIDDEN,
                Some(ErrorCode::Conflict | ErrorCode::AlreadyExists) => StatusCode::CONFLICT,
                Some(ErrorCode::RateLimited) => StatusCode::TOO_MANY_REQUESTS,
                Some(ErrorCode::BadRequest | ErrorCode::InvalidSpec) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Some(_) => StatusCode::BAD_REQUEST,
                None => StatusCode::BAD_GATEWAY,
            };
            (status, api_message(ctx, e))
        }
    };
    let body = html! {
        p.error role="alert" { (text) }
        p { a href="/" { (ctx.t("error-home")) } }
    };
    (status, page(ctx, &ctx.t("error-title"), body)).into_response()
}

/// A page built from `title` and `body`.
pub fn render(ctx: &Ctx, title: &str, body: Markup) -> Response {
    page(ctx, title, body).into_response()
}

/// A page that updates itself (see [`page_with`]).
pub fn render_live(ctx: &Ctx, title: &str, body: Markup) -> Response {
    page_with(ctx, title, body, true).into_response()
}

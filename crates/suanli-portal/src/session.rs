//! Sign-in: a hub token is exchanged for a session cookie (HttpOnly, SameSite=Strict, Secure
//! behind https), and every form carries the session's CSRF token. The portal keeps the token
//! server-side and calls the hub's API with it, so the API's permission rules apply unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_client::Client;
use suanli_proto::WhoAmI;
use suanli_types::Role;

use crate::Portal;
use crate::i18n::Lang;
use crate::layout::{self, Failure};

pub const SESSION_COOKIE: &str = "suanli_session";
/// Before sign-in: the sign-in form's CSRF token (double submit).
pub const PRE_COOKIE: &str = "suanli_pre";
pub const LANG_COOKIE: &str = "suanli_lang";

/// A session ends after this long without a request.
const IDLE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions; signing in beyond it ends the one idle longest.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in principal.
pub struct Session {
    pub token: String,
    pub csrf: String,
    pub who: WhoAmI,
    /// Live job pages open (see [`crate::pages::live`]).
    pub streams: std::sync::atomic::AtomicUsize,
}

impl Session {
    pub fn is_tenant(&self) -> bool {
        matches!(self.who.role, Role::TenantAdmin | Role::User)
    }
    pub fn is_operator(&self) -> bool {
        self.who.role == Role::Operator
    }
    pub fn is_supervisor(&self) -> bool {
        self.who.role == Role::Supervisor
    }
}

/// The sessions of this portal, in memory (a restart signs everyone out).
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, (Arc<Session>, Instant)>>,
}

impl Sessions {
    fn insert(&self, s: Session) -> String {
        self.insert_at(s, Instant::now())
    }

    fn insert_at(&self, s: Session, now: Instant) -> String {
        let id = random_hex();
        let mut map = self.map.lock().expect("sessions lock");
        map.retain(|_, (_, seen)| now.duration_since(*seen) < IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), (Arc::new(s), now));
        id
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Arc<Session>> {
        let mut map = self.map.lock().expect("sessions lock");
        let entry = map.get_mut(id)?;
        if now.duration_since(entry.1) >= IDLE {
            map.remove(id);
            return None;
        }
        entry.1 = now;
        Some(entry.0.clone())
    }

    fn remove(&self, id: &str) {
        self.map.lock().expect("sessions lock").remove(id);
    }
}

/// 32 random bytes, hex.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS gives random bytes");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal without an early exit on the first differing byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What every page handler gets: the language, and the session if signed in.
pub struct Ctx {
    pub lang: Lang,
    pub session: Option<Arc<Session>>,
    /// The request's path and query, to come back to after a language switch or sign-in.
    pub here: String,
    portal: Arc<Portal>,
}

impl Ctx {
    pub fn t(&self, id: &str) -> String {
        self.lang.t(id)
    }

    /// The signed-in session, or a redirect to the sign-in page.
    pub fn signed_in(&self) -> Result<&Arc<Session>, Failure> {
        self.session.as_ref().ok_or(Failure::SignIn)
    }

    /// A hub client acting as the signed-in principal.
    pub fn client(&self) -> Result<Client, Failure> {
        Ok(self.portal.client.with_token(&self.signed_in()?.token))
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, given: &str) -> Result<&Arc<Session>, Failure> {
        let s = self.signed_in()?;
        match same(&s.csrf, given) {
            true => Ok(s),
            false => Err(Failure::Csrf),
        }
    }

    /// The hidden field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! {
            @if let Some(s) = &self.session {
                input type="hidden" name="csrf" value=(s.csrf);
            }
        }
    }
}

impl<S> FromRequestParts<S> for Ctx
where
    Arc<Portal>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Ctx, Self::Rejection> {
        let portal = Arc::<Portal>::from_ref(state);
        let lang = Lang::negotiate(
            cookie(&parts.headers, LANG_COOKIE),
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let session = cookie(&parts.headers, SESSION_COOKIE).and_then(|id| portal.sessions.get(id));
        let here = parts
            .uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        Ok(Ctx {
            lang,
            session,
            here,
            portal,
        })
    }
}

/// `Set-Cookie` for `name=value` on the whole portal; `max_age` zero deletes it.
fn set_cookie(portal: &Portal, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if portal.config.secure_cookies {
        c.push_str("; Secure");
    }
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    HeaderValue::from_str(&c).expect("cookie values are hex or tags")
}

/// Only paths of this portal: no scheme, no `//host`, no backslashes.
pub fn local_path(back: &str) -> &str {
    match back.starts_with('/') && !back.starts_with("//") && !back.contains('\\') {
        true => back,
        false => "/",
    }
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    pre: String,
    #[serde(default)]
    back: String,
}

#[derive(Deserialize)]
pub struct BackQuery {
    #[serde(default)]
    back: String,
}

/// The sign-in page.
pub async fn sign_in_page(
    ctx: Ctx,
    axum::extract::Query(q): axum::extract::Query<BackQuery>,
) -> Response {
    let pre = random_hex();
    let body = sign_in_form(&ctx, &pre, &q.back, None);
    let mut r = layout::page(&ctx, &ctx.t("signin-title"), body).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&ctx.portal, PRE_COOKIE, &pre, Some(3600)),
    );
    r
}

fn sign_in_form(ctx: &Ctx, pre: &str, back: &str, error: Option<String>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        p { (ctx.t("signin-intro")) }
        form method="post" action="/signin" class="card narrow" {
            input type="hidden" name="pre" value=(pre);
            input type="hidden" name="back" value=(back);
            label for="token" { (ctx.t("signin-token")) }
            input id="token" name="token" type="password" autocomplete="current-password" required;
            button type="submit" { (ctx.t("signin-button")) }
        }
    }
}

/// Checks the token with the hub (`GET /v1/whoami`) and starts a session.
pub async fn sign_in(
    ctx: Ctx,
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    // The sign-in form's own token must come back in its cookie: a form posted from another
    // site carries no cookie of this one (SameSite=Strict).
    let pre_ok = cookie(&headers, PRE_COOKIE).is_some_and(|c| !f.pre.is_empty() && same(c, &f.pre));
    if !pre_ok {
        return layout::failure_page(&ctx, Failure::Csrf);
    }
    let token = f.token.trim();
    let who = match portal.client.with_token(token).whoami().await {
        Ok(w) => w,
        Err(e) => {
            let msg = match e.code() {
                Some(suanli_proto::ErrorCode::Unauthenticated) => ctx.t("signin-bad-token"),
                _ => layout::api_message(&ctx, &e),
            };
            let pre = random_hex();
            let body = sign_in_form(&ctx, &pre, &f.back, Some(msg));
            let mut r = (
                axum::http::StatusCode::UNAUTHORIZED,
                layout::page(&ctx, &ctx.t("signin-title"), body),
            )
                .into_response();
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&portal, PRE_COOKIE, &pre, Some(3600)),
            );
            return r;
        }
    };
    if who.role == Role::Site {
        return layout::failure_page(&ctx, Failure::SiteToken);
    }
    let id = portal.sessions.insert(Session {
        token: token.to_string(),
        csrf: random_hex(),
        who,
        streams: Default::default(),
    });
    let mut r = Redirect::to(local_path(&f.back)).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&portal, SESSION_COOKIE, &id, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&portal, PRE_COOKIE, "", Some(0)),
    );
    r
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session.
pub async fn sign_out(
    ctx: Ctx,
    State(portal): State<Arc<Portal>>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = ctx.check_csrf(&f.csrf) {
        return layout::failure_page(&ctx, e);
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        portal.sessions.remove(id);
    }
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&portal, SESSION_COOKIE, "", Some(0)),
    );
    r
}

#[derive(Deserialize)]
pub struct LangQuery {
    to: String,
    #[serde(default)]
    back: String,
}

/// The language switch: a link, so it works without a form.
pub async fn switch_language(
    State(portal): State<Arc<Portal>>,
    axum::extract::Query(q): axum::extract::Query<LangQuery>,
) -> Response {
    let lang = Lang::from_tag(&q.to).unwrap_or(Lang::Zh);
    let mut r = Redirect::to(local_path(&q.back)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&portal, LANG_COOKIE, lang.tag(), Some(365 * 86_400)),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_back() {
        assert_eq!(local_path("/jobs?state=queued"), "/jobs?state=queued");
        for evil in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil.example",
            "",
            "jobs",
        ] {
            assert_eq!(local_path(evil), "/", "{evil}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; suanli_session=abc; b=2".parse().unwrap(),
        );
        h.append(header::COOKIE, "suanli_lang=en".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&h, "suanli"), None);
    }

    #[test]
    fn csrf_comparison_needs_the_whole_token() {
        assert!(same("abcd", "abcd"));
        assert!(!same("abcd", "abc"));
        assert!(!same("abcd", "abce"));
        assert!(!same("", "a"));
    }

    #[test]
    fn idle_sessions_end_and_the_count_is_capped() {
        let s = Sessions::default();
        let who = WhoAmI {
            id: 1,
            name: "n".into(),
            role: Role::User,
            tenant: None,
            center: None,
        };
        let t0 = Instant::now();
        let id = s.insert_at(
            Session {
                token: "t".into(),
                csrf: "c".into(),
                who: who.clone(),
                streams: Default::default(),
            },
            t0,
        );
        let later = t0 + IDLE / 2;
        assert_eq!(s.get_at(&id, later).unwrap().token, "t");
        assert!(
            s.get_at(&id, later + IDLE / 2).is_some(),
            "a request keeps it alive"
        );
        assert!(
            s.get_at(&id, later + IDLE * 2).is_none(),
            "an idle session ends"
        );
        for _ in 0..MAX_SESSIONS + 5 {
            s.insert_at(
                Session {
                    token: "t".into(),
                    csrf: "c".into(),
                    who: who.clone(),
                    streams: Default::default(),
                },
                t0,
            );
        }
        assert_eq!(s.map.lock().unwrap().len(), MAX_SESSIONS);
    }
}

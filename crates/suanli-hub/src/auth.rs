//! Bearer tokens: random secrets, stored only as SHA-256 hashes, each naming a principal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use suanli_store::{NewToken, Principal, Store, TokenInvalid, TokenRecord};
use suanli_types::{CenterId, Role, TenantId, Timestamp};

use crate::AppState;
use crate::error::{HubError, HubResult};

/// A new secret: `sl_` and 64 hex digits (256 random bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    format!("sl_{}", hex(&bytes))
}

pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a token of each role lives unless its issuer asks for less or more (up to
/// [`max_lifetime`]): users 90 days, tenant admins, supervisors and the operator 30 days (their
/// tokens can do more), site agents 365 days (rotated with `suanli admin token-rotate`).
pub fn default_lifetime(role: Role) -> Duration {
    days(match role {
        Role::User => 90,
        Role::TenantAdmin | Role::Supervisor | Role::Operator => 30,
        Role::Site => 365,
    })
}

/// The longest lifetime an issuer may ask for: users 365 days, tenant admins, supervisors and
/// the operator 90 days, site agents 730 days.
pub fn max_lifetime(role: Role) -> Duration {
    days(match role {
        Role::User => 365,
        Role::TenantAdmin | Role::Supervisor | Role::Operator => 90,
        Role::Site => 730,
    })
}

const fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

/// The token to store for a principal of `role` issued at `now`, living `lifetime` (default:
/// [`default_lifetime`]).
pub fn new_token_for(
    name: impl Into<String>,
    role: Role,
    tenant: Option<TenantId>,
    center: Option<CenterId>,
    now: Timestamp,
    lifetime: Option<Duration>,
) -> NewToken {
    let life = lifetime.unwrap_or_else(|| default_lifetime(role));
    NewToken {
        name: name.into(),
        role,
        tenant,
        center,
        expires_at: Some(now.plus_millis(life.as_millis() as i64)),
    }
}

/// Stores `t` and returns its secret (shown once) and record.
pub async fn issue_token(store: &dyn Store, t: &NewToken) -> HubResult<(String, TokenRecord)> {
    let token = new_token();
    let rec = store
        .insert_token(&hash_token(&token), t, crate::engine::now())
        .await?;
    Ok((token, rec))
}

/// Rotation: stores `t`, and revokes as of `retire_at` the tokens of its scope (with
/// `same_name`, only those of its name) not revoked by then. Returns the new secret and record.
pub async fn rotate_token(
    store: &dyn Store,
    t: &NewToken,
    retire_at: Timestamp,
    same_name: bool,
) -> HubResult<(String, TokenRecord)> {
    let token = new_token();
    let now = crate::engine::now();
    let rec = store
        .rotate_token(&hash_token(&token), t, now, retire_at, same_name)
        .await?;
    Ok((token, rec))
}

/// How often a token's last use is written at most.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Principals by token hash, each with the end of its validity, as of a revocation generation
/// of the store: every request of a cached token first reads the store's generation (one row),
/// and a changed generation (a token was revoked or rotated, on any hub sharing the store) drops
/// every entry. So a revoked token is refused at once on every hub, and an expired one by its
/// entry's own end.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<RwLock<Cache>>);

#[derive(Default)]
struct Cache {
    generation: u64,
    entries: HashMap<String, Cached>,
}

#[derive(Clone)]
struct Cached {
    principal: Principal,
    valid_until: Option<Timestamp>,
    /// When its last use was written (or read).
    touched: Option<Timestamp>,
}

impl TokenCache {
    /// Drops every entry (a token was revoked here).
    pub fn clear(&self) {
        self.0.write().expect("token cache lock").entries.clear();
    }

    /// The cached entry of `hash` if the cache is of generation `g` (else it is emptied first).
    fn get(&self, hash: &str, g: u64) -> Option<Cached> {
        {
            let c = self.0.read().expect("token cache lock");
            if c.generation == g {
                return c.entries.get(hash).cloned();
            }
        }
        let mut c = self.0.write().expect("token cache lock");
        if c.generation != g {
            c.entries.clear();
            c.generation = g;
        }
        None
    }

    fn put(&self, hash: String, entry: Cached, g: u64) {
        let mut c = self.0.write().expect("token cache lock");
        if c.generation != g {
            c.entries.clear();
            c.generation = g;
        }
        c.entries.insert(hash, entry);
    }

    fn is_empty(&self) -> bool {
        self.0.read().expect("token cache lock").entries.is_empty()
    }
}

/// The authenticated caller of a request, as the route's access rule admitted it.
#[derive(Clone, Debug)]
pub struct Auth(pub Principal);

/// Takes the principal that the operation's access rule (see `api::Access`) authenticated. An
/// operation without a rule, or a public one, has none: the request is refused, never served
/// unauthenticated.
impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Auth>()
            .cloned()
            .ok_or(HubError::Forbidden("this operation admits no principal"))
    }
}

/// The principal of the request's `Authorization: Bearer <token>` header, and the token's hash.
///
/// Failed authentications (no token, an unknown, expired or revoked one) are counted per source
/// address `from` (see `api::Guard`): over the limit they are `rate_limited`, and an unknown
/// token from that address is refused without a store lookup; tokens the hub has cached still
/// pass (after the generation check).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    from: IpAddr,
) -> HubResult<(String, Principal)> {
    let token = bearer(headers).map_err(|e| state.guard.failed(from, "no_token", e))?;
    let hash = hash_token(token);
    let now = crate::engine::now();
    // The generation is read before the token, so a revocation between the two reads leaves
    // the cache of an older generation, emptied at the next request.
    let generation = match state.tokens.is_empty() {
        true => None,
        false => Some(state.store.token_generation().await?),
    };
    if let Some(g) = generation
        && let Some(c) = state.tokens.get(&hash, g)
        && c.valid_until.is_none_or(|t| now < t)
    {
        touch(state, &hash, &c, now, g);
        return Ok((hash, c.principal));
    }
    if let Some(refused) = state.guard.auth_refused(from) {
        return Err(refused);
    }
    let g = match generation {
        Some(g) => g,
        None => state.store.token_generation().await?,
    };
    let Some(rec) = state.store.token(&hash).await? else {
        let why = HubError::Unauthenticated("unknown token");
        return Err(state.guard.failed(from, "unknown_token", why));
    };
    match rec.invalid_at(now) {
        Some(TokenInvalid::Expired) => {
            let why = HubError::Unauthenticated("this token has expired; ask for a new one");
            return Err(state.guard.failed(from, "expired_token", why));
        }
        Some(TokenInvalid::Revoked) => {
            let why = HubError::Unauthenticated("this token has been revoked");
            return Err(state.guard.failed(from, "revoked_token", why));
        }
        None => {}
    }
    let entry = Cached {
        principal: rec.principal.clone(),
        valid_until: rec.valid_until(),
        touched: rec.last_used_at,
    };
    touch(state, &hash, &entry, now, g);
    state.tokens.put(hash.clone(), entry, g);
    Ok((hash, rec.principal))
}

/// Writes the token's last use, at most once a minute, off the request's path.
fn touch(state: &AppState, hash: &str, c: &Cached, now: Timestamp, g: u64) {
    if c.touched
        .is_some_and(|t| now.millis_since(t) < TOUCH_EVERY_MS)
    {
        return;
    }
    let mut entry = c.clone();
    entry.touched = Some(now);
    state.tokens.put(hash.to_string(), entry, g);
    let (store, id) = (state.store.clone(), c.principal.id);
    tokio::spawn(async move {
        if let Err(e) = store.touch_token(id, now).await {
            tracing::debug!(token = id, error = %e, "could not record a token's last use");
        }
    });
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> HubResult<&str> {
    let header =
        headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or(HubError::Unauthenticated(
                "missing Authorization: Bearer <token> header",
            ))?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(HubError::Unauthenticated(
            "Authorization header must be: Bearer <token>",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! Bearer tokens: random secrets, stored only as SHA-256 hashes, each naming a principal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use suanli_store::{Principal, Store};

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

/// Creates a token for `p`, stores its hash, and returns the secret (shown once).
pub async fn issue_token(store: &dyn Store, p: &Principal) -> HubResult<String> {
    let token = new_token();
    store
        .insert_token(&hash_token(&token), p, crate::engine::now())
        .await?;
    Ok(token)
}

/// Principals by token hash; tokens are never revoked yet, so entries never go stale.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<RwLock<HashMap<String, Principal>>>);

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
/// Failed authentications are counted per source address `from` (see `api::Guard`): over the
/// limit they are `rate_limited`, and an unknown token from that address is refused without a
/// store lookup; tokens the hub has seen before still pass.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    from: IpAddr,
) -> HubResult<(String, Principal)> {
    let token = bearer(headers).map_err(|e| state.guard.failed(from, "no_token", e))?;
    let hash = hash_token(token);
    if let Some(p) = state.tokens.0.read().expect("token cache lock").get(&hash) {
        return Ok((hash, p.clone()));
    }
    if let Some(refused) = state.guard.auth_refused(from) {
        return Err(refused);
    }
    let Some(p) = state.store.principal(&hash).await? else {
        let why = HubError::Unauthenticated("unknown token");
        return Err(state.guard.failed(from, "unknown_token", why));
    };
    state
        .tokens
        .0
        .write()
        .expect("token cache lock")
        .insert(hash.clone(), p.clone());
    Ok((hash, p))
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

//! Request extractors whose rejections are API errors with stable codes (never axum's plain
//! text): JSON bodies, path parameters and query strings; and the path parameters that name one
//! object.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use suanli_types::{CenterId, SpecError, TenantId};
use utoipa::IntoParams;

use crate::error::{HubError, HubResult};

/// A JSON body whose decode errors name the field path, as `invalid_spec` errors; a body that
/// is not JSON is `bad_request`, one over the limit `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = HubError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        decode(&body(req, state).await?).map(ApiJson)
    }
}

/// Like [`ApiJson`], but an empty body is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = HubError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        decode(&bytes).map(OptionalJson)
    }
}

async fn body<S: Send + Sync>(req: Request, state: &S) -> HubResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HubError::TooLarge
        } else {
            HubError::BadRequest("could not read the request body".into())
        }
    })
}

/// Decodes a JSON body: exactly one JSON value (whitespace aside), and then `T`; field errors
/// name the field path.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> HubResult<T> {
    one_value(bytes)?;
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = strip_position(&inner.to_string());
        if inner.is_syntax() || inner.is_eof() {
            HubError::BadRequest(format!("body is not valid JSON: {message}"))
        } else {
            HubError::InvalidSpec(SpecError::new(
                if path == "." { "body".into() } else { path },
                message,
            ))
        }
    })
}

/// Refuses a body that is not one JSON value: not JSON, or with data after the value (`{..}xx`,
/// two objects), before any field is looked at, so every route refuses it alike.
fn one_value(bytes: &[u8]) -> HubResult<()> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let not_json = |e: serde_json::Error| {
        HubError::BadRequest(format!(
            "body is not valid JSON: {}",
            strip_position(&e.to_string())
        ))
    };
    IgnoredAny::deserialize(&mut de).map_err(not_json)?;
    de.end().map_err(|_| {
        HubError::BadRequest("the body has data after its JSON value (one value only)".into())
    })
}

/// serde_json appends " at line L column C": useful for a file, noise for an API field error.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// An extractor of request parts wrapping axum's `$inner`, whose rejection is `bad_request` with
/// `$what` and axum's reason.
macro_rules! parts_extractor {
    ($(#[$m:meta])* $name:ident, $inner:ident, $what:literal) => {
        $(#[$m])*
        pub struct $name<T>(pub T);

        impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for $name<T> {
            type Rejection = HubError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &S,
            ) -> Result<Self, Self::Rejection> {
                $inner::<T>::from_request_parts(parts, state)
                    .await
                    .map(|$inner(t)| $name(t))
                    .map_err(|e| HubError::BadRequest(format!("{}: {}", $what, e.body_text())))
            }
        }
    };
}

parts_extractor!(
    /// Path parameters; one that does not parse (`/v1/jobs/abc`) is `bad_request`.
    ApiPath,
    Path,
    "bad path"
);
parts_extractor!(
    /// A query string; unknown or malformed parameters are `bad_request`.
    ApiQuery,
    Query,
    "bad query"
);

/// The path of one job.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// job id
    pub id: i64,
}

/// The path of one center.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CenterPath {
    /// center id
    #[param(value_type = String)]
    pub id: CenterId,
}

/// The path of one tenant.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// tenant id
    #[param(value_type = String)]
    pub id: TenantId,
}

/// The path of one voucher programme.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProgrammePath {
    /// programme id
    pub id: String,
}

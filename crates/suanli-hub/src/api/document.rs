//! The parts of the OpenAPI document that follow from the route table rather than from each
//! handler: the bearer security scheme, each operation's security and access rule, and the error
//! responses its rule, its extractors and the leader forwarding can produce.

use suanli_proto::ApiError;
use utoipa::PartialSchema;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Response,
    ResponseBuilder, Tag,
};

use super::Access;

/// The security scheme every non-public operation requires.
pub(super) const BEARER: &str = "bearer";

/// The extension naming each operation's access rule: `public`, `any-token`, or the roles.
pub(super) const ACCESS_EXTENSION: &str = "x-suanli-access";

/// Error responses shared by many operations: (status, component name, description).
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Malformed request (`bad_request`: a body that is not one JSON value, trailing data \
         after it included, a bad path or query parameter or header), or a field that fails \
         validation or is out of bounds (`invalid_spec`, `field` names it).",
    ),
    (
        "401",
        "Unauthenticated",
        "Missing, malformed or unknown bearer token (`unauthenticated`).",
    ),
    (
        "403",
        "Forbidden",
        "The token's principal may not do this (`forbidden`).",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than the hub accepts (`payload_too_large`).",
    ),
    (
        "429",
        "RateLimited",
        "Too many requests from this token or this site, or too many failed authentications \
         from this address (`rate_limited`): nothing was done; retry after `Retry-After` \
         seconds.",
    ),
    (
        "500",
        "Internal",
        "Something failed inside the hub (`internal`); details are in its log.",
    ),
    (
        "502",
        "OutcomeUnknown",
        "The hub lost the request's outcome (`outcome_unknown`): it may or may not have been \
         carried out; check before repeating it.",
    ),
    (
        "503",
        "Unavailable",
        "This hub is not the leader and reaches none, or has just lost the leadership \
         (`unavailable`): nothing was done; retry, at another hub if need be.",
    ),
];

/// What the document says before any operation is added.
pub(super) fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("suanli hub API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "City computing power network: submit jobs once, run them at the best center. \
             Operations other than health, readiness and this document need \
             `Authorization: Bearer <token>` (metrics too, unless the hub runs with \
             `--metrics-public`); `x-suanli-access` on each operation names the roles it \
             admits. Every error body is an `ApiError` with a stable `code`.",
        ))
        .build();
    OpenApiBuilder::new().info(info).build()
}

/// Every operation of a path item, with its method.
pub(super) fn operations_mut(
    item: &mut PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("patch", &mut item.patch),
    ]
    .into_iter()
    .filter_map(|(method, op)| Some((method, op.as_mut()?)))
}

/// Adds to one operation what its route-table entry implies.
pub(super) fn describe(op: &mut Operation, path: &str, tag: &str, access: Access) {
    op.tags = Some(vec![tag.to_string()]);
    let rule = match access {
        Access::Public => serde_json::json!("public"),
        Access::AnyToken => serde_json::json!("any-token"),
        Access::Roles(roles, _) => serde_json::json!(roles),
    };
    op.extensions
        .get_or_insert_default()
        .insert(ACCESS_EXTENSION.to_string(), rule);
    let mut shared = Vec::new();
    let takes_input =
        op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if takes_input {
        shared.push("400");
    }
    if op.request_body.is_some() {
        shared.push("413");
    }
    if access != Access::Public {
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        shared.extend(["401", "429", "500"]);
    }
    if access.roles().is_some() {
        shared.push("403");
    }
    if forwarded(path) {
        shared.extend(["502", "503"]);
    }
    for status in shared {
        let (_, name, _) = SHARED
            .iter()
            .find(|(s, ..)| *s == status)
            .expect("a shared response for each status used");
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
}

/// A follower forwards these paths to the leader (see `leader::route`).
fn forwarded(path: &str) -> bool {
    path.starts_with("/v1/") && path != "/v1/hub" && path != "/v1/openapi.json"
}

/// Adds the components the operations refer to, and the tags' descriptions.
pub(super) fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Components::new);
    components.security_schemes.insert(
        BEARER.to_string(),
        RefOr::T(SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token issued by the hub (`sl_` and 64 hex digits): the operator's is \
                     written at the first start, others come from `POST /v1/tokens` and center \
                     registration.",
                ))
                .build(),
        )),
    );
    components
        .schemas
        .entry("ApiError".to_string())
        .or_insert_with(ApiError::schema);
    for (status, name, description) in SHARED {
        let mut response = error_response(description);
        if *status == "429" {
            let seconds = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .build();
            let mut header = Header::new(seconds);
            header.description = Some("Seconds to wait before retrying.".into());
            response
                .headers
                .insert("Retry-After".into(), RefOr::T(header));
        }
        components
            .responses
            .insert(name.to_string(), RefOr::T(response));
    }
    doc.tags = Some(
        [
            (
                "meta",
                "The hub itself: health, readiness, metrics, this document, the caller.",
            ),
            ("centers", "Computing centers: registration, status, drain."),
            ("tenants", "Tenants and their fair-share policy."),
            ("tokens", "Bearer tokens."),
            ("jobs", "Jobs: submit, quote, list, inspect, cancel, logs."),
            (
                "money",
                "Prices, voucher programmes, budgets, bills and settlement statements.",
            ),
            ("site", "The site-agent protocol (site tokens only)."),
            (
                "audit",
                "The tamper-evident audit log: entries, export, inclusion proofs, signed \
                 checkpoints (operator and supervisors).",
            ),
            (
                "statistics",
                "Indicators by period and group (tenants: their own usage), and the frozen \
                 quarterly releases (public).",
            ),
            (
                "models",
                "The model library and adaptation certification: models, certification runs, \
                 their review, the adaptation matrix (docs/MODELS.md).",
            ),
        ]
        .into_iter()
        .map(|(name, description)| {
            let mut tag = Tag::new(name);
            tag.description = Some(description.to_string());
            tag
        })
        .collect(),
    );
}

/// A response whose body is an [`ApiError`].
pub(super) fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ApiError"))),
        )
        .build()
}

//! The `/v1` REST API: routes, handlers, and the OpenAPI document generated from them.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use suanli_money::Month;
use suanli_proto::*;
use suanli_store::{JobFilter, JobRecord, Principal, TenantRecord};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, Role, SpecError, TenantId};
use utoipa::{IntoParams, OpenApi};

use crate::AppState;
use crate::auth::{Auth, issue_token};
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};
use crate::leader::IDEMPOTENCY_KEY;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "suanli hub API",
        description = "City computing power network: submit jobs once, run them at the best center. \
                       Every call needs `Authorization: Bearer <token>`. Errors carry a stable `code`."
    ),
    paths(
        whoami,
        hub_status,
        list_centers,
        put_center,
        drain_center,
        undrain_center,
        list_tenants,
        create_tenant,
        get_tenant_policy,
        put_tenant_policy,
        create_token,
        submit_job,
        quote_job,
        list_jobs,
        get_job,
        cancel_job,
        job_logs,
        list_prices,
        set_price,
        list_programmes,
        create_programme,
        create_grant,
        programme_report,
        get_budget,
        set_budget,
        get_bill,
        get_statement,
        site_config,
        site_heartbeat,
        site_assignments,
        site_events
    )
)]
pub struct ApiDoc;

/// Site agents send log batches and large inventories; other bodies keep axum's 2 MiB default.
const SITE_BODY_LIMIT: usize = 16 << 20;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/openapi.json",
            get(|| async { Json(ApiDoc::openapi()) }),
        )
        .route("/v1/whoami", get(whoami))
        .route("/v1/centers", get(list_centers))
        .route("/v1/hub", get(hub_status))
        .route("/v1/centers/{id}", put(put_center))
        .route("/v1/centers/{id}/drain", post(drain_center))
        .route("/v1/centers/{id}/undrain", post(undrain_center))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tokens", post(create_token))
        .route("/v1/jobs", get(list_jobs).post(submit_job))
        .route("/v1/quote", post(quote_job))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/logs", get(job_logs))
        .route("/v1/prices", get(list_prices).put(set_price))
        .route(
            "/v1/programmes",
            get(list_programmes).post(create_programme),
        )
        .route("/v1/programmes/{id}/grants", post(create_grant))
        .route("/v1/programmes/{id}/report", get(programme_report))
        .route("/v1/tenants/{id}/budget", get(get_budget).put(set_budget))
        .route(
            "/v1/tenants/{id}/policy",
            get(get_tenant_policy).put(put_tenant_policy),
        )
        .route("/v1/bills", get(get_bill))
        .route("/v1/statements", get(get_statement))
        .route("/v1/site/config", get(site_config))
        .route(
            "/v1/site/heartbeat",
            post(site_heartbeat).layer(DefaultBodyLimit::max(SITE_BODY_LIMIT)),
        )
        .route("/v1/site/assignments", get(site_assignments))
        .route(
            "/v1/site/events",
            post(site_events).layer(DefaultBodyLimit::max(SITE_BODY_LIMIT)),
        )
        .fallback(|| async { HubError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

/// A JSON body whose decode errors name the field path, as `invalid_spec` errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = HubError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                HubError::TooLarge
            } else {
                HubError::BadRequest("could not read the request body".into())
            }
        })?;
        decode(&bytes).map(ApiJson)
    }
}

/// Decodes a JSON body; errors name the field path.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> HubResult<T> {
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

/// serde_json appends " at line L column C": useful for a file, noise for an API field error.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
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

/// Can `p` see this job? Tenants see only their own; operators and supervisors see all.
fn can_see(p: &Principal, rec: &JobRecord) -> bool {
    match p.role {
        Role::Operator | Role::Supervisor => true,
        Role::TenantAdmin | Role::User => p.tenant.as_ref() == Some(&rec.tenant),
        Role::Site => false,
    }
}

async fn visible_job(state: &AppState, p: &Principal, id: i64) -> HubResult<JobRecord> {
    match state.store.job(JobId(id)).await? {
        Some(rec) if can_see(p, &rec) => Ok(rec),
        _ => Err(HubError::NotFound(format!("job {id}"))),
    }
}

fn site_center(auth: &Auth) -> HubResult<CenterId> {
    auth.require(&[Role::Site], "only site agents use the site protocol")?;
    auth.0
        .center
        .clone()
        .ok_or(HubError::Forbidden("this site token names no center"))
}

async fn metrics(State(state): State<AppState>) -> HubResult<impl IntoResponse> {
    let counts = state.store.count_jobs_by_state().await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&counts),
    ))
}

/// 200 when this hub can serve the API now (it runs the engine, or follows a leader it knows),
/// 503 otherwise (starting, between leaders): for load balancers in front of several hubs.
async fn readyz(State(state): State<AppState>) -> Response {
    let ready = match state.leadership.role() {
        crate::leader::Role::Single | crate::leader::Role::Leader { .. } => {
            state.engine.is_running()
        }
        crate::leader::Role::Follower { leader_url, .. } => leader_url.is_some(),
    };
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// This hub process and the leadership as it sees it; answered by the hub asked, never forwarded.
#[utoipa::path(get, path = "/v1/hub", responses((status = 200, body = HubStatus)))]
async fn hub_status(State(state): State<AppState>, _auth: Auth) -> Json<HubStatus> {
    Json(
        state
            .leadership
            .status()
            .with_decision_hash(state.engine.decision_hash()),
    )
}

/// The operator, or the center's own site token, may drain or undrain a center.
fn may_drain(auth: &Auth, center: &CenterId) -> HubResult<()> {
    if auth.0.role == Role::Site && auth.0.center.as_ref() == Some(center) {
        return Ok(());
    }
    auth.require(
        &[Role::Operator],
        "only the operator or the center's own site token drains a center",
    )
}

/// Stops placing new work at a center. Attempts placed there that have not started are handed
/// back to the queue; running ones finish there, or with `requeue` are stopped and queued again.
/// Kept across hub restarts until undrained.
#[utoipa::path(post, path = "/v1/centers/{id}/drain", request_body(content = DrainRequest, description = "optional"),
    params(("id" = String, Path, description = "center id")),
    responses((status = 200, body = DrainView), (status = 404, body = ApiError)))]
async fn drain_center(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> HubResult<Json<DrainView>> {
    let center = CenterId(id);
    may_drain(&auth, &center)?;
    let req: DrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DrainRequest::default()
    } else {
        decode(&body)?
    };
    Ok(Json(
        state
            .engine
            .ask(|reply| Cmd::Drain {
                center,
                drain: true,
                requeue: req.requeue,
                reply,
            })
            .await?,
    ))
}

/// Lets a drained center take new work again.
#[utoipa::path(post, path = "/v1/centers/{id}/undrain",
    params(("id" = String, Path, description = "center id")),
    responses((status = 200, body = DrainView), (status = 404, body = ApiError)))]
async fn undrain_center(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> HubResult<Json<DrainView>> {
    let center = CenterId(id);
    may_drain(&auth, &center)?;
    Ok(Json(
        state
            .engine
            .ask(|reply| Cmd::Drain {
                center,
                drain: false,
                requeue: false,
                reply,
            })
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/whoami", responses((status = 200, body = WhoAmI)))]
async fn whoami(auth: Auth) -> Json<WhoAmI> {
    let p = auth.0;
    Json(WhoAmI {
        name: p.name,
        role: p.role,
        tenant: p.tenant,
        center: p.center,
    })
}

#[utoipa::path(get, path = "/v1/centers", responses((status = 200, body = [CenterView])))]
async fn list_centers(
    State(state): State<AppState>,
    _auth: Auth,
) -> HubResult<Json<Vec<CenterView>>> {
    let live = state.engine.ask(|reply| Cmd::Live { reply }).await?;
    let catalog = suanli_types::ChipCatalog::builtin();
    let mut out = Vec::new();
    for spec in state.store.centers().await? {
        let l = live.centers.get(&spec.id).cloned().unwrap_or_default();
        let pools = spec
            .pools
            .iter()
            .map(|p| {
                let cap = live
                    .capacity
                    .iter()
                    .find(|c| c.center == spec.id && c.sku == p.sku);
                let total = p.nodes as u64 * p.cards_per_node as u64;
                PoolView {
                    sku: p.sku.clone(),
                    vendor: catalog
                        .get(&p.sku)
                        .map_or_else(String::new, |c| c.vendor.clone()),
                    nodes: p.nodes,
                    cards_per_node: p.cards_per_node,
                    total_cards: total,
                    free_cards: cap.map_or(total, |c| c.free_cards),
                    // The price in force (the books' price table), else the registered one.
                    price_per_card_hour: cap
                        .map_or(p.price_per_card_hour, |c| c.price_per_card_hour),
                }
            })
            .collect();
        let status = if l.drained {
            "drained"
        } else if !l.online {
            "offline"
        } else if l.draining {
            "draining"
        } else {
            "online"
        };
        out.push(CenterView {
            id: spec.id,
            name: spec.name,
            city: spec.city,
            owner: spec.owner,
            backend: spec.backend,
            stacks: spec.stacks,
            pools,
            status: status.to_string(),
            last_heartbeat: l.last_heartbeat,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(put, path = "/v1/centers/{id}", request_body = CenterSpec,
    params(("id" = String, Path, description = "center id")),
    responses((status = 200, body = CenterRegistered), (status = 400, body = ApiError)))]
async fn put_center(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<CenterSpec>,
) -> HubResult<Json<CenterRegistered>> {
    auth.require(&[Role::Operator], "only the operator registers centers")?;
    if spec.id.as_str() != id {
        return Err(HubError::InvalidSpec(SpecError::new(
            "id",
            format!("does not match the URL ({id})"),
        )));
    }
    spec.validate()?;
    let created = state
        .engine
        .ask(|reply| Cmd::UpsertCenter {
            spec: Box::new(spec.clone()),
            reply,
        })
        .await?;
    let site_token = if created {
        let p = Principal {
            name: format!("site:{}", spec.id),
            role: Role::Site,
            tenant: None,
            center: Some(spec.id.clone()),
        };
        Some(issue_token(state.store.as_ref(), &p).await?)
    } else {
        None
    };
    tracing::info!(center = %spec.id, created, by = %auth.0.name, "center registered");
    Ok(Json(CenterRegistered {
        center: spec.id,
        site_token,
    }))
}

#[utoipa::path(get, path = "/v1/tenants", responses((status = 200, body = [TenantView])))]
async fn list_tenants(
    State(state): State<AppState>,
    auth: Auth,
) -> HubResult<Json<Vec<TenantView>>> {
    auth.require(
        &[
            Role::Operator,
            Role::Supervisor,
            Role::TenantAdmin,
            Role::User,
        ],
        "sites do not list tenants",
    )?;
    let own = tenant_of(&auth.0)?.cloned();
    let out = state
        .store
        .tenants()
        .await?
        .into_iter()
        .filter(|t| own.as_ref().is_none_or(|o| *o == t.id))
        .map(|t| TenantView {
            id: t.id,
            name: t.name,
            category: t.category,
        })
        .collect();
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/tenants/{id}/policy", params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantPolicyView), (status = 404, body = ApiError)))]
async fn get_tenant_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> HubResult<Json<TenantPolicyView>> {
    let tenant = TenantId(id);
    if tenant_of(&auth.0)?.is_some_and(|own| *own != tenant) || auth.0.role == Role::Site {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    let stored = state
        .store
        .tenant_policies()
        .await?
        .into_iter()
        .find(|(t, _)| *t == tenant);
    let view = match stored {
        Some((_, json)) => serde_json::from_str(&json).map_err(|e| {
            tracing::error!(%tenant, error = %e, "stored tenant policy unreadable");
            HubError::BadRequest("the stored policy is unreadable; set it again".into())
        })?,
        None => TenantPolicyView {
            weight: 1,
            quotas: Default::default(),
        },
    };
    Ok(Json(view))
}

#[utoipa::path(put, path = "/v1/tenants/{id}/policy", request_body = TenantPolicyView,
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantPolicyView), (status = 400, body = ApiError)))]
async fn put_tenant_policy(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(policy): ApiJson<TenantPolicyView>,
) -> HubResult<Json<TenantPolicyView>> {
    auth.require(
        &[Role::Operator],
        "only the operator sets fair-share weights and quotas",
    )?;
    if !(1..=1000).contains(&policy.weight) {
        return Err(SpecError::new("weight", "must be 1 to 1000").into());
    }
    let vendors = suanli_types::ChipCatalog::builtin().vendors();
    for (family, q) in &policy.quotas {
        if !vendors.contains(&family.as_str()) {
            return Err(SpecError::new(
                format!("quotas.{family}"),
                format!("unknown chip family; known: {}", vendors.join(", ")),
            )
            .into());
        }
        if q.nominal > 1_000_000 || q.borrow_limit > 1_000_000 {
            return Err(
                SpecError::new(format!("quotas.{family}"), "at most 1,000,000 cards").into(),
            );
        }
    }
    let tenant = TenantId(id);
    let view = state
        .engine
        .ask(|reply| Cmd::SetTenantPolicy {
            tenant,
            policy,
            reply,
        })
        .await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/tenants", request_body = TenantRequest,
    responses((status = 201, body = TenantView), (status = 409, body = ApiError)))]
async fn create_tenant(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TenantRequest>,
) -> HubResult<(StatusCode, Json<TenantView>)> {
    auth.require(&[Role::Operator], "only the operator creates tenants")?;
    suanli_types::ids::validate_slug(req.id.as_str()).map_err(|m| SpecError::new("id", m))?;
    if req.name.trim().is_empty() {
        return Err(SpecError::new("name", "must not be empty").into());
    }
    let rec = TenantRecord {
        id: req.id.clone(),
        name: req.name.clone(),
        category: req.category,
    };
    if !state
        .store
        .create_tenant(&rec, crate::engine::now())
        .await?
    {
        return Err(HubError::AlreadyExists(format!("tenant {}", req.id)));
    }
    // Vouchers and placement prices know the tenant's category from now on.
    state
        .engine
        .ask(|reply| Cmd::TenantAdded {
            tenant: req.id.clone(),
            category: req.category,
            reply,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantView {
            id: req.id,
            name: req.name,
            category: req.category,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/tokens", request_body = TokenRequest,
    responses((status = 201, body = TokenCreated), (status = 403, body = ApiError)))]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<TokenRequest>,
) -> HubResult<(StatusCode, Json<TokenCreated>)> {
    let me = &auth.0;
    let allowed = match me.role {
        Role::Operator => true,
        Role::TenantAdmin => {
            req.role == Role::User && req.tenant.is_some() && req.tenant == me.tenant
        }
        _ => false,
    };
    if !allowed {
        return Err(HubError::Forbidden(
            "only the operator issues tokens; a tenant admin may issue user tokens for its own tenant",
        ));
    }
    let needs_tenant = matches!(req.role, Role::TenantAdmin | Role::User);
    match (&req.tenant, needs_tenant) {
        (None, true) => {
            return Err(
                SpecError::new("tenant", "required for tenant-admin and user tokens").into(),
            );
        }
        (Some(_), false) => {
            return Err(SpecError::new(
                "tenant",
                "only tenant-admin and user tokens name a tenant",
            )
            .into());
        }
        (Some(t), true) if state.store.tenant(t).await?.is_none() => {
            return Err(SpecError::new("tenant", format!("unknown tenant {t}")).into());
        }
        _ => {}
    }
    if req.role == Role::Site {
        let c = req
            .center
            .as_ref()
            .ok_or_else(|| SpecError::new("center", "required for site tokens"))?;
        if !state.store.centers().await?.iter().any(|s| &s.id == c) {
            return Err(SpecError::new("center", format!("unknown center {c}")).into());
        }
    } else if req.center.is_some() {
        return Err(SpecError::new("center", "only site tokens name a center").into());
    }
    let p = Principal {
        name: req.name.clone(),
        role: req.role,
        tenant: req.tenant,
        center: req.center,
    };
    let token = issue_token(state.store.as_ref(), &p).await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            token,
            name: req.name,
            role: req.role,
        }),
    ))
}

/// Submits a job. With an `Idempotency-Key` header (unique per tenant), a retried submit returns
/// the job the first one created (200) instead of creating another (201); the same key with
/// another spec is a 409 conflict.
#[utoipa::path(post, path = "/v1/jobs", request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; makes retries safe")),
    responses((status = 201, body = JobView), (status = 200, body = JobView, description = "an earlier submit with this key created it"),
        (status = 400, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)))]
async fn submit_job(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> HubResult<(StatusCode, Json<JobView>)> {
    let key = idempotency_key(&headers)?;
    let me = &auth.0;
    let (tenant, spec) = submitter(&state, me, req.spec).await?;
    let by = me.name.clone();
    let spec = Box::new(spec);
    let (rec, created) = state
        .engine
        .ask(|reply| Cmd::Submit {
            tenant,
            by,
            spec,
            key,
            reply,
        })
        .await?;
    let view = job_view(&state, rec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// The `Idempotency-Key` header: 1 to 128 visible ASCII characters, if given.
fn idempotency_key(headers: &HeaderMap) -> HubResult<Option<String>> {
    let Some(v) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    match v.to_str() {
        Ok(k) if !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(Some(k.to_string()))
        }
        _ => Err(HubError::BadRequest(
            "the Idempotency-Key header must be 1 to 128 visible ASCII characters".into(),
        )),
    }
}

#[utoipa::path(post, path = "/v1/quote", request_body = SubmitRequest,
    responses((status = 200, body = QuoteView), (status = 400, body = ApiError)))]
async fn quote_job(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> HubResult<Json<QuoteView>> {
    let (tenant, spec) = submitter(&state, &auth.0, req.spec).await?;
    let spec = Box::new(spec);
    let q = state
        .engine
        .ask(|reply| Cmd::Quote {
            tenant,
            spec,
            reply,
        })
        .await?;
    Ok(Json(q))
}

/// The tenant a submit or quote is for, and the validated spec.
async fn submitter(
    state: &AppState,
    me: &Principal,
    spec: suanli_types::JobSpec,
) -> HubResult<(TenantId, suanli_types::JobSpec)> {
    let tenant = match me.role {
        Role::User | Role::TenantAdmin => {
            let own = me
                .tenant
                .clone()
                .ok_or(HubError::Forbidden("this token names no tenant"))?;
            if spec.tenant.as_ref().is_some_and(|t| *t != own) {
                return Err(HubError::Forbidden("a tenant may submit only for itself"));
            }
            own
        }
        Role::Operator => spec
            .tenant
            .clone()
            .ok_or_else(|| SpecError::new("spec.tenant", "the operator must name the tenant"))?,
        _ => {
            return Err(HubError::Forbidden(
                "sites and supervisors do not submit jobs",
            ));
        }
    };
    spec.validate()
        .map_err(|e| SpecError::new(format!("spec.{}", e.field), e.message))?;
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(SpecError::new("spec.tenant", format!("unknown tenant {tenant}")).into());
    }
    Ok((tenant, spec))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only jobs in this state.
    state: Option<String>,
    /// Only this tenant's jobs (tenant tokens: their own only).
    tenant: Option<String>,
    /// Only jobs placed at this center.
    center: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// Jobs after this id (the previous page's `next`).
    after: Option<i64>,
}

#[utoipa::path(get, path = "/v1/jobs", params(ListQuery), responses((status = 200, body = JobList)))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: Auth,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Json<JobList>> {
    let Query(q) = q.map_err(|e| HubError::BadRequest(format!("bad query: {}", e.body_text())))?;
    let me = &auth.0;
    if me.role == Role::Site {
        return Err(HubError::Forbidden("sites do not list jobs"));
    }
    let state_filter = q
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| HubError::BadRequest(e.to_string()))?;
    let mut tenant = q.tenant.map(TenantId);
    if let Some(own) = tenant_of(me)? {
        if tenant.as_ref().is_some_and(|t| t != own) {
            return Err(HubError::Forbidden("a tenant may list only its own jobs"));
        }
        tenant = Some(own.clone());
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let recs = state
        .store
        .jobs(&JobFilter {
            state: state_filter,
            tenant,
            center: q.center.map(CenterId),
            after: q.after.map(JobId),
            limit: limit + 1,
        })
        .await?;
    let more = recs.len() > limit as usize;
    let jobs: Vec<JobSummary> = recs.iter().take(limit as usize).map(summary).collect();
    let next = if more {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(JobList { jobs, next }))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = ApiError)))]
async fn get_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> HubResult<Json<JobView>> {
    let rec = visible_job(&state, &auth.0, id).await?;
    Ok(Json(job_view(&state, rec).await?))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = i64, Path, description = "job id")),
    responses((status = 200, body = JobView), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
) -> HubResult<Json<JobView>> {
    let me = &auth.0;
    let rec = visible_job(&state, me, id).await?;
    let allowed = match me.role {
        Role::Operator | Role::TenantAdmin => true,
        Role::User => rec.submitted_by == me.name,
        _ => false,
    };
    if !allowed {
        return Err(HubError::Forbidden("users cancel only their own jobs"));
    }
    let by = me.name.clone();
    let rec = state
        .engine
        .ask(|reply| Cmd::Cancel {
            job: JobId(id),
            by,
            reply,
        })
        .await?;
    Ok(Json(job_view(&state, rec).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    /// Attempt number (default: the latest).
    attempt: Option<u32>,
    /// First chunk sequence number to return (default 0).
    after: Option<u64>,
    /// At most this many chunks (default and maximum 1000).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/jobs/{id}/logs", params(("id" = i64, Path, description = "job id"), LogsQuery),
    responses((status = 200, body = LogsResponse), (status = 404, body = ApiError)))]
async fn job_logs(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<i64>,
    q: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Json<LogsResponse>> {
    let Query(q) = q.map_err(|e| HubError::BadRequest(format!("bad query: {}", e.body_text())))?;
    let rec = visible_job(&state, &auth.0, id).await?;
    let attempt = q.attempt.unwrap_or(rec.attempt);
    let from = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1000).clamp(1, 1000);
    let rows = state.store.logs(rec.id, attempt, from, limit).await?;
    let next_after = rows.last().map_or(from, |r| r.seq.saturating_add(1));
    let ended = state
        .store
        .attempts(rec.id)
        .await?
        .into_iter()
        .find(|a| a.attempt == attempt)
        .filter(|a| a.outcome.is_some());
    let complete = match ended {
        Some(a) => a.log_chunks.is_none_or(|n| next_after >= n),
        // Never-placed jobs and cancelled queued jobs have nothing more to come.
        None => rec.state.is_terminal() && rec.attempt < attempt.max(1),
    };
    let chunks = rows
        .into_iter()
        .map(|r| LogChunk {
            seq: r.seq,
            stream: if r.stream == suanli_store::LogStream::Stderr {
                Stream::Stderr
            } else {
                Stream::Stdout
            },
            data: r.data,
        })
        .collect();
    Ok(Json(LogsResponse {
        job: rec.id,
        attempt,
        chunks,
        next_after,
        complete,
    }))
}

// ---------------------------------------------------------------- money

/// `YYYY-MM`, default the current month (UTC).
fn month_of(q: Option<&str>, at: suanli_types::Timestamp) -> HubResult<Month> {
    match q {
        None => Ok(Month::of(at)),
        Some(m) => m
            .parse()
            .map_err(|e: suanli_money::MonthParseError| HubError::BadRequest(e.to_string())),
    }
}

fn csv_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response()
}

/// `format=json` (default) or `format=csv`.
fn wants_csv(format: Option<&str>) -> HubResult<bool> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(HubError::BadRequest(format!(
            "unknown format {f:?}; expected json or csv"
        ))),
    }
}

fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> HubResult<T> {
    q.map(|Query(q)| q)
        .map_err(|e| HubError::BadRequest(format!("bad query: {}", e.body_text())))
}

const READERS: [Role; 4] = [
    Role::Operator,
    Role::Supervisor,
    Role::TenantAdmin,
    Role::User,
];

#[utoipa::path(get, path = "/v1/prices", responses((status = 200, body = [PriceView])))]
async fn list_prices(State(state): State<AppState>, auth: Auth) -> HubResult<Json<Vec<PriceView>>> {
    auth.require(&READERS, "sites do not read the price table")?;
    let rows = state
        .engine
        .read_books(|books, _, at| {
            books
                .prices()
                .iter()
                .map(|r| crate::money::price_view(books, r, at))
                .collect()
        })
        .await?;
    Ok(Json(rows))
}

#[utoipa::path(put, path = "/v1/prices", request_body = PriceRequest,
    responses((status = 200, body = PriceView), (status = 400, body = ApiError)))]
async fn set_price(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<PriceRequest>,
) -> HubResult<Json<PriceView>> {
    auth.require(&[Role::Operator], "only the operator sets prices")?;
    let view = state
        .engine
        .ask(|reply| Cmd::SetPrice { req, reply })
        .await?;
    Ok(Json(view))
}

#[utoipa::path(get, path = "/v1/programmes", responses((status = 200, body = VouchersView)))]
async fn list_programmes(
    State(state): State<AppState>,
    auth: Auth,
) -> HubResult<Json<VouchersView>> {
    auth.require(&READERS, "sites do not read voucher programmes")?;
    let own = tenant_of(&auth.0)?.cloned();
    let view = state
        .engine
        .read_books(move |books, _, _| {
            let mine = |t: &TenantId| own.as_ref().is_none_or(|o| o == t);
            let mut balances = Vec::new();
            let programmes = books
                .programmes()
                .map(|p| {
                    if let Some(r) = books.programme_report(&p.id) {
                        balances.extend(r.tenants.iter().filter(|d| mine(&d.tenant)).map(|d| {
                            ProgrammeBalance {
                                programme: p.id.to_string(),
                                draw: crate::money::draw_view(d),
                            }
                        }));
                    }
                    crate::money::programme_view(books, p, own.is_none())
                })
                .collect();
            let grants = books
                .grants()
                .iter()
                .filter(|g| mine(&g.tenant))
                .map(crate::money::grant_view)
                .collect();
            VouchersView {
                programmes,
                grants,
                balances,
            }
        })
        .await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/programmes", request_body = ProgrammeSpec,
    responses((status = 201, body = ProgrammeView), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn create_programme(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(spec): ApiJson<ProgrammeSpec>,
) -> HubResult<(StatusCode, Json<ProgrammeView>)> {
    auth.require(
        &[Role::Operator],
        "only the operator creates voucher programmes",
    )?;
    if spec.issuer.trim().is_empty() {
        return Err(SpecError::new("issuer", "must not be empty").into());
    }
    suanli_types::ids::validate_slug(&spec.id).map_err(|m| SpecError::new("id", m))?;
    let spec = Box::new(spec);
    let view = state
        .engine
        .ask(|reply| Cmd::CreateProgramme { spec, reply })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(post, path = "/v1/programmes/{id}/grants", request_body = GrantRequest,
    params(("id" = String, Path, description = "programme id")),
    responses((status = 201, body = GrantView), (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn create_grant(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> HubResult<(StatusCode, Json<GrantView>)> {
    auth.require(&[Role::Operator], "only the operator grants vouchers")?;
    let view = state
        .engine
        .ask(|reply| Cmd::Grant {
            programme: id,
            req,
            reply,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    /// json (default) or csv.
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/programmes/{id}/report",
    params(("id" = String, Path, description = "programme id"), FormatQuery),
    responses((status = 200, description = "the report as JSON, or as text/csv with format=csv", body = ProgrammeReportView),
        (status = 404, body = ApiError)))]
async fn programme_report(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    q: Result<Query<FormatQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Response> {
    let q = query(q)?;
    auth.require(
        &[Role::Operator, Role::Supervisor],
        "only the operator and supervisors read programme reports",
    )?;
    let csv = wants_csv(q.format.as_deref())?;
    let pid = suanli_money::ProgrammeId::new(id.clone());
    let report = state
        .engine
        .read_books(move |books, _, _| books.programme_report(&pid))
        .await?
        .ok_or_else(|| HubError::NotFound(format!("programme {id}")))?;
    Ok(match csv {
        true => csv_response(report.to_csv()),
        false => Json(crate::money::report_view(&report)).into_response(),
    })
}

/// Who may read a tenant's money: the operator, supervisors, and the tenant itself.
fn may_read_tenant(p: &Principal, tenant: &TenantId) -> HubResult<()> {
    if p.role == Role::Site {
        return Err(HubError::Forbidden("sites do not read tenants' money"));
    }
    match tenant_of(p)? {
        Some(own) if own != tenant => Err(HubError::Forbidden(
            "a tenant may read only its own bills and budget",
        )),
        _ => Ok(()),
    }
}

#[utoipa::path(get, path = "/v1/tenants/{id}/budget", params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = BudgetView), (status = 404, body = ApiError)))]
async fn get_budget(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> HubResult<Json<BudgetView>> {
    let tenant = TenantId(id);
    may_read_tenant(&auth.0, &tenant)?;
    let t = tenant.clone();
    state
        .engine
        .read_books(move |books, _, at| {
            let b = books.budget(&t)?;
            let st = books.budget_status(&t, Month::of(at))?;
            Some(crate::money::budget_view(&t, b, &st))
        })
        .await?
        .map(Json)
        .ok_or_else(|| HubError::NotFound(format!("no budget set for tenant {tenant}")))
}

#[utoipa::path(put, path = "/v1/tenants/{id}/budget", request_body = BudgetRequest,
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = BudgetView), (status = 404, body = ApiError)))]
async fn set_budget(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BudgetRequest>,
) -> HubResult<Json<BudgetView>> {
    auth.require(&[Role::Operator], "only the operator sets budgets")?;
    let view = state
        .engine
        .ask(|reply| Cmd::SetBudget {
            tenant: TenantId(id),
            req,
            reply,
        })
        .await?;
    Ok(Json(view))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct BillQuery {
    /// The tenant (tenant tokens: their own, the default).
    tenant: Option<String>,
    /// `YYYY-MM` (default: the current month, UTC).
    month: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/bills", params(BillQuery),
    responses((status = 200, description = "the invoice as JSON, or as text/csv with format=csv", body = InvoiceView),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn get_bill(
    State(state): State<AppState>,
    auth: Auth,
    q: Result<Query<BillQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Response> {
    let q = query(q)?;
    let me = &auth.0;
    let tenant = match (q.tenant, tenant_of(me)?) {
        (Some(t), _) => TenantId(t),
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(SpecError::new("tenant", "name the tenant").into()),
    };
    may_read_tenant(me, &tenant)?;
    let csv = wants_csv(q.format.as_deref())?;
    let month = month_of(q.month.as_deref(), crate::engine::now())?;
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    let invoice = state
        .engine
        .read_books(move |books, _, _| books.invoice(&tenant, month))
        .await?;
    Ok(match csv {
        true => csv_response(invoice.to_csv()),
        false => Json(crate::money::invoice_view(&invoice)).into_response(),
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct StatementQuery {
    /// The center (site tokens: their own, the default).
    center: Option<String>,
    /// `YYYY-MM` (default: the current month, UTC).
    month: Option<String>,
    /// json (default) or csv.
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/statements", params(StatementQuery),
    responses((status = 200, description = "the settlement statement as JSON, or as text/csv with format=csv", body = StatementView),
        (status = 403, body = ApiError), (status = 404, body = ApiError)))]
async fn get_statement(
    State(state): State<AppState>,
    auth: Auth,
    q: Result<Query<StatementQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Response> {
    let q = query(q)?;
    let me = &auth.0;
    auth.require(
        &[Role::Operator, Role::Supervisor, Role::Site],
        "only the operator, supervisors and the center's site read settlement statements",
    )?;
    let center = match (q.center, &me.center) {
        (Some(c), _) => CenterId(c),
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(SpecError::new("center", "name the center").into()),
    };
    if me.role == Role::Site && me.center.as_ref() != Some(&center) {
        return Err(HubError::Forbidden(
            "a site reads only its own center's statement",
        ));
    }
    let csv = wants_csv(q.format.as_deref())?;
    let month = month_of(q.month.as_deref(), crate::engine::now())?;
    if !state.store.centers().await?.iter().any(|c| c.id == center) {
        return Err(HubError::NotFound(format!("center {center}")));
    }
    let statement = state
        .engine
        .read_books(move |books, _, _| books.statement(&center, month))
        .await?;
    Ok(match csv {
        true => csv_response(statement.to_csv()),
        false => Json(crate::money::statement_view(&statement)).into_response(),
    })
}

#[utoipa::path(get, path = "/v1/site/config", responses((status = 200, body = CenterSpec)))]
async fn site_config(State(state): State<AppState>, auth: Auth) -> HubResult<Json<CenterSpec>> {
    let center = site_center(&auth)?;
    state
        .store
        .centers()
        .await?
        .into_iter()
        .find(|c| c.id == center)
        .map(Json)
        .ok_or_else(|| HubError::NotFound(format!("center {center} is not registered")))
}

#[utoipa::path(post, path = "/v1/site/heartbeat", request_body = Heartbeat,
    responses((status = 200, body = HeartbeatReply)))]
async fn site_heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(hb): ApiJson<Heartbeat>,
) -> HubResult<Json<HeartbeatReply>> {
    let center = site_center(&auth)?;
    Ok(Json(
        state
            .engine
            .ask(|reply| Cmd::Heartbeat {
                center,
                hb,
                received: crate::engine::now(),
                reply,
            })
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AssignmentsQuery {
    /// Wait up to this many seconds for work (0 to 60, default 0).
    wait_secs: Option<u64>,
}

#[utoipa::path(get, path = "/v1/site/assignments", params(AssignmentsQuery),
    responses((status = 200, body = Assignments)))]
async fn site_assignments(
    State(state): State<AppState>,
    auth: Auth,
    q: Result<Query<AssignmentsQuery>, axum::extract::rejection::QueryRejection>,
) -> HubResult<Json<Assignments>> {
    let Query(q) = q.map_err(|e| HubError::BadRequest(format!("bad query: {}", e.body_text())))?;
    let center = site_center(&auth)?;
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_secs.unwrap_or(0).min(60));
    let mut changed = state.engine.watch_center(&center);
    loop {
        changed.borrow_and_update();
        let c = center.clone();
        let work = state
            .engine
            .ask(|reply| Cmd::Assignments { center: c, reply })
            .await?;
        if !work.assignments.is_empty() || !work.kill.is_empty() {
            return Ok(Json(work));
        }
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(Json(work)),
        }
    }
}

#[utoipa::path(post, path = "/v1/site/events", request_body = EventBatch,
    responses((status = 200, body = EventResults)))]
async fn site_events(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(batch): ApiJson<EventBatch>,
) -> HubResult<Json<EventResults>> {
    let center = site_center(&auth)?;
    for (i, e) in batch.events.iter().enumerate() {
        if let EventKind::Log { seq, .. } = e.kind
            && seq > i64::MAX as u64
        {
            return Err(SpecError::new(format!("events[{i}].seq"), "out of range").into());
        }
    }
    let results = state
        .engine
        .ask(|reply| Cmd::Events {
            center,
            events: batch.events,
            reply,
        })
        .await?;
    Ok(Json(EventResults { results }))
}

fn summary(rec: &JobRecord) -> JobSummary {
    JobSummary {
        id: rec.id,
        name: rec.spec.name.clone(),
        tenant: rec.tenant.clone(),
        queue: rec.spec.queue.clone(),
        priority: rec.spec.priority,
        state: rec.state,
        attempt: rec.attempt,
        center: rec.center.clone(),
        sku: rec.sku.clone(),
        cards: rec.spec.total_cards(),
        submitted_at: rec.submitted_at,
        started_at: rec.started_at,
        ended_at: rec.ended_at,
        exit_code: rec.exit_code,
    }
}

async fn job_view(state: &AppState, rec: JobRecord) -> HubResult<JobView> {
    let history = state
        .store
        .job_events(rec.id)
        .await?
        .into_iter()
        .map(|e| JobEventView {
            at: e.at,
            attempt: e.attempt,
            state: e.state,
            message: e.message,
        })
        .collect();
    let reason = if rec.state == JobState::Queued {
        let why = state
            .engine
            .ask(|reply| Cmd::Explain { job: rec.id, reply })
            .await?;
        why.or_else(|| rec.reason.clone())
    } else {
        rec.reason.clone()
    };
    let placement = rec
        .placement
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok());
    Ok(JobView {
        summary: summary(&rec),
        submitted_by: rec.submitted_by.clone(),
        spec: rec.spec,
        card_seconds: rec.card_seconds,
        reason,
        placement,
        history,
    })
}

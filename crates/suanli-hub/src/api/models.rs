//! The model library and adaptation certification (docs/MODELS.md): models published by the
//! operator or a tenant admin; a certification runs the model's benchmark as a job of the
//! caller's tenant at a center, its outcome is recorded when the job ends
//! (`crate::models::settle`), and the operator reviews it. Tenants see public models and
//! their own; supervisors read everything and write nothing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use suanli_models::{Certification, Visibility};
use suanli_proto::{
    ApiError, CertificationList, CertificationView, CertifyRequest, MatrixCell, ModelList,
    ModelView, ReviewRequest,
};
use suanli_store::{ModelRecord, NewModel, Principal};
use suanli_types::{CenterId, CenterSpec, ChipCatalog, Role, SpecError};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{Access, ApiJson, ApiPath, Op, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};

const PUBLISHERS: Access = Access::Roles(
    &[Role::Operator, Role::TenantAdmin],
    "only the operator and tenant admins publish models",
);

const CERTIFIERS: Access = Access::Roles(
    &[Role::Operator, Role::TenantAdmin, Role::User],
    "sites and supervisors do not run certifications",
);

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::readers("sites do not read the model library", routes!(list_models)),
        Op::new(PUBLISHERS, routes!(publish_model)),
        Op::readers("sites do not read the model library", routes!(get_model)),
        Op::readers(
            "sites do not read the model library",
            routes!(model_certifications),
        ),
        Op::new(CERTIFIERS, routes!(certify_model)),
        Op::operator(
            "only the operator reviews certifications",
            routes!(review_certification),
        ),
    ]
}

/// What a tenant sees as the requester of another tenant's record.
const ANOTHER_TENANT: &str = "(a principal of another tenant)";

/// The path of one model, or one certification.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct IdPath {
    /// id
    id: i64,
}

/// Can `p` see this model? Tenants see public models and their own tenant's.
fn can_see(p: &Principal, m: &ModelRecord) -> HubResult<bool> {
    Ok(match tenant_of(p)? {
        None => true,
        Some(t) => m.owner.as_ref().is_none_or(|o| o == t),
    })
}

fn view(m: ModelRecord) -> ModelView {
    ModelView {
        id: m.id,
        owner: m.owner,
        published_by: m.published_by,
        published_at: m.published_at.0,
        model: m.spec,
    }
}

/// Tells the engine where `m` is certified now, so that the jobs naming it are placed there.
pub(super) async fn tell_engine(state: &AppState, m: &ModelRecord) -> HubResult<()> {
    let certified = crate::models::certified_of(state.store.as_ref(), m).await?;
    let model = crate::models::model_ref(m);
    state
        .engine
        .ask(|reply| Cmd::SetCertified {
            model,
            certified,
            reply,
        })
        .await
}

/// The model of the path if the caller may see it; 404 as if it did not exist otherwise.
async fn visible(state: &AppState, me: &Principal, id: i64) -> HubResult<ModelRecord> {
    match state.store.model(id).await? {
        Some(m) if can_see(me, &m)? => Ok(m),
        _ => Err(HubError::NotFound(format!("model {id}"))),
    }
}

/// The models the caller may see, by id.
#[utoipa::path(get, path = "/v1/models",
    responses((status = 200, description = "the models", body = ModelList)))]
async fn list_models(State(state): State<AppState>, Auth(me): Auth) -> HubResult<Json<ModelList>> {
    let mut models = Vec::new();
    for m in state.store.models().await? {
        if can_see(&me, &m)? {
            models.push(view(m));
        }
    }
    Ok(Json(ModelList { models }))
}

/// Publishes a model revision. A tenant admin's `tenant` model is seen by its tenant only;
/// the operator publishes public models.
#[utoipa::path(post, path = "/v1/models", request_body = suanli_models::ModelSpec,
    responses((status = 201, description = "the model, published", body = ModelView),
        (status = 409, description = "this name and revision are published already \
            (`already_exists`)", body = ApiError)))]
async fn publish_model(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiJson(spec): ApiJson<suanli_models::ModelSpec>,
) -> HubResult<(StatusCode, Json<ModelView>)> {
    spec.validate()?;
    let owner = match (tenant_of(&me)?, spec.visibility) {
        (_, Visibility::Public) => None,
        (Some(t), Visibility::Tenant) => Some(t.clone()),
        (None, Visibility::Tenant) => {
            return Err(SpecError::new(
                "visibility",
                "the operator publishes public models; a tenant admin publishes its tenant's",
            )
            .into());
        }
    };
    let new = NewModel {
        spec,
        owner,
        published_by: me.label(),
        published_at: crate::engine::now(),
    };
    let m = state.store.insert_model(&new).await?;
    Ok((StatusCode::CREATED, Json(view(m))))
}

/// One model.
#[utoipa::path(get, path = "/v1/models/{id}", params(IdPath),
    responses((status = 200, description = "the model", body = ModelView),
        (status = 404, description = "no such model the caller may see (`not_found`)", body = ApiError)))]
async fn get_model(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> HubResult<Json<ModelView>> {
    Ok(Json(view(visible(&state, &me, id).await?)))
}

/// A center's version of a stack now, from the registered centers.
fn version<'a>(centers: &'a [CenterSpec], center: &CenterId, stack: &str) -> Option<&'a str> {
    centers
        .iter()
        .find(|c| &c.id == center)
        .and_then(|c| c.stacks.get(stack))
        .map(String::as_str)
}

fn cert_view(c: &Certification, centers: &[CenterSpec]) -> CertificationView {
    let current = version(centers, &c.request.center, &c.request.stack);
    CertificationView::new(c, c.is_stale(current))
}

/// A model's certification records and its adaptation matrix (model x chip SKU and stack
/// version: status and throughput per card).
#[utoipa::path(get, path = "/v1/models/{id}/certifications", params(IdPath),
    responses((status = 200, description = "the records and the matrix", body = CertificationList),
        (status = 404, description = "no such model the caller may see (`not_found`)", body = ApiError)))]
async fn model_certifications(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
) -> HubResult<Json<CertificationList>> {
    let m = visible(&state, &me, id).await?;
    let own = tenant_of(&me)?;
    crate::models::settle(state.store.as_ref(), crate::engine::now()).await?;
    let certs = state.store.certifications(Some(id)).await?;
    let centers = state.store.centers().await?;
    let matrix = suanli_models::matrix(&certs, |c, s| version(&centers, c, s))
        .into_iter()
        .map(MatrixCell::from)
        .collect();
    Ok(Json(CertificationList {
        model: id,
        unit: m.spec.unit,
        certifications: certs
            .iter()
            .map(|c| {
                let mut v = cert_view(c, &centers);
                // Another tenant's record shows its numbers, not who of that tenant asked.
                if own.is_some_and(|t| *t != c.request.tenant) {
                    v.requested_by = ANOTHER_TENANT.into();
                }
                v
            })
            .collect(),
        matrix,
    }))
}

/// Runs the model's benchmark at a center as a real job of the caller's tenant (the operator
/// names one), pinned to the center's chip SKU and the model's launch for that chip's stack.
/// The record is `running` until the job ends; then it holds the measured outcome, `pending`
/// review.
#[utoipa::path(post, path = "/v1/models/{id}/certify", params(IdPath), request_body = CertifyRequest,
    responses((status = 201, description = "the record, running", body = CertificationView),
        (status = 402, description = "over the tenant's monthly budget (`over_budget`)", body = ApiError),
        (status = 404, description = "no such model the caller may see (`not_found`)", body = ApiError),
        (status = 422, description = "no registered center could ever run the benchmark \
            (`unschedulable`)", body = ApiError)))]
async fn certify_model(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(req): ApiJson<CertifyRequest>,
) -> HubResult<(StatusCode, Json<CertificationView>)> {
    let m = visible(&state, &me, id).await?;
    let centers = state.store.centers().await?;
    let Some(center) = centers.iter().find(|c| c.id == req.center) else {
        return Err(SpecError::new("center", format!("unknown center {}", req.center)).into());
    };
    let mut skus: Vec<&str> = center.pools.iter().map(|p| p.sku.as_str()).collect();
    skus.sort_unstable();
    skus.dedup();
    let sku = match (&req.sku, skus.as_slice()) {
        (Some(s), _) if skus.contains(&s.as_str()) => s.clone(),
        (Some(s), _) => {
            return Err(SpecError::new(
                "sku",
                format!(
                    "center {} has no {s} pool (it has {})",
                    center.id,
                    skus.join(", ")
                ),
            )
            .into());
        }
        (None, [one]) => one.to_string(),
        (None, _) => {
            return Err(SpecError::new(
                "sku",
                format!(
                    "center {} has several SKUs ({}): name one",
                    center.id,
                    skus.join(", ")
                ),
            )
            .into());
        }
    };
    let Some(chip) = ChipCatalog::builtin().get(&sku) else {
        return Err(SpecError::new("sku", format!("{sku} is not in the chip catalog")).into());
    };
    let stack = chip.stack.clone();
    let Some(stack_version) = center.stacks.get(&stack) else {
        return Err(SpecError::new(
            "center",
            format!(
                "center {} offers no version of {stack}, the stack of {sku}",
                center.id
            ),
        )
        .into());
    };
    let Some(launch) = m.spec.stacks.get(&stack) else {
        return Err(SpecError::new(
            "center",
            format!(
                "model {}@{} has no launch for {stack}, the stack of {sku} at {}",
                m.spec.name, m.spec.revision, center.id
            ),
        )
        .into());
    };
    let mut spec = m.spec.benchmark_job(&sku, &stack)?;
    spec.tenant = req.tenant.clone();
    // At the center asked for, not another with the same chip.
    spec.centers = vec![req.center.clone()];
    let (tenant, spec) = super::jobs::submitter(&state, &me, spec).await?;
    let by = (me.name.clone(), me.id);
    let (job, _) = state
        .engine
        .ask(|reply| Cmd::Submit {
            tenant: tenant.clone(),
            by,
            spec: Box::new(spec),
            key: None,
            reply,
        })
        .await?;
    let request = suanli_models::CertRequest {
        model: m.id,
        center: center.id.clone(),
        sku,
        stack,
        stack_version: stack_version.clone(),
        framework_version: launch.framework_version.clone(),
        job: job.id,
        tenant,
        requested_by: me.label(),
        requested_at: crate::engine::now(),
    };
    let cert = state.store.insert_certification(&request).await?;
    Ok((StatusCode::CREATED, Json(cert_view(&cert, &centers))))
}

/// Accepts or rejects a pending record, naming why. A stale record (the center's stack
/// version changed since it was measured) cannot be accepted: certify again.
#[utoipa::path(post, path = "/v1/certifications/{id}/review", params(IdPath),
    request_body = ReviewRequest,
    responses((status = 200, description = "the record as it stands", body = CertificationView),
        (status = 404, description = "no such certification (`not_found`)", body = ApiError),
        (status = 409, description = "not pending (still running, or reviewed already), or \
            stale (`conflict`, or `already_exists` when two reviews race)", body = ApiError)))]
async fn review_certification(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiJson(req): ApiJson<ReviewRequest>,
) -> HubResult<Json<CertificationView>> {
    crate::models::settle(state.store.as_ref(), crate::engine::now()).await?;
    let Some(mut cert) = state
        .store
        .certifications(None)
        .await?
        .into_iter()
        .find(|c| c.id == id)
    else {
        return Err(HubError::NotFound(format!("certification {id}")));
    };
    let centers = state.store.centers().await?;
    let current = version(&centers, &cert.request.center, &cert.request.stack);
    let review = cert
        .review(
            req.verdict,
            &me.label(),
            &req.reason,
            crate::engine::now(),
            current,
        )
        .map_err(|e| match e {
            suanli_models::CertError::Reason => SpecError::new("reason", e.to_string()).into(),
            e => HubError::Conflict(e.to_string()),
        })?;
    if !state.store.record_cert_review(id, &review).await? {
        return Err(HubError::NotFound(format!("certification {id}")));
    }
    cert.apply_review(review);
    if let Some(m) = state.store.model(cert.request.model).await? {
        tell_engine(&state, &m).await?;
    }
    Ok(Json(cert_view(&cert, &centers)))
}

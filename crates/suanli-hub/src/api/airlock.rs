//! The airlock: the outputs of a job on restricted or sensitive data stay at the hub until a
//! release is approved. The job's tenant asks (with a justification); the automatic output
//! rules run; tenant admins of the data owner other than the requester review (two for
//! sensitive data); approved files become downloadable by the job's tenant. Every step is in
//! the request's history, and every write (and each download) in the audit log. The decisions
//! are `suanli_data::airlock`'s.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use suanli_data::{ReleaseFile, ReleaseRequest, Requester, Reviewer};
use suanli_proto::{AirlockList, AirlockRequest, AirlockReview, ApiError};
use suanli_store::Principal;
use suanli_types::{JobId, Role, SpecError, TenantId};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{Access, ApiJson, ApiPath, ApiQuery, Op};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{HubError, HubResult};

const TENANTS: Access = Access::Roles(
    &[Role::TenantAdmin, Role::User],
    "releases are asked for by the job's tenant and reviewed by the data owner's tenant admins",
);

/// The most files, and bytes, one release request names (each is read to be checked).
const MAX_RELEASE_FILES: usize = 100;
const MAX_RELEASE_BYTES: u64 = 256 << 20;

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::new(TENANTS, routes!(airlock_request)),
        Op::readers("sites do not read the airlock", routes!(airlock_list)),
        Op::readers("sites do not read the airlock", routes!(airlock_show)),
        Op::new(TENANTS, routes!(airlock_review)),
    ]
}

fn airlock_error(e: suanli_data::AirlockError) -> HubError {
    use suanli_data::AirlockError as E;
    match e {
        E::OwnReview | E::NotOwner { .. } => HubError::Conflict(e.to_string()),
        E::NotReviewable { .. } | E::AlreadyReviewed { .. } => HubError::Conflict(e.to_string()),
        other => SpecError::new("body", other).into(),
    }
}

/// Asks for the job's quarantined outputs (all of the latest attempt's, or those named) to be
/// released; the automatic rules run at once (a breach blocks the request, naming the rule).
#[utoipa::path(post, path = "/v1/airlock", request_body = AirlockRequest,
    responses((status = 201, description = "the request, in review or blocked", body = ReleaseRequest),
        (status = 404, description = "no such job, or not the caller's tenant's", body = ApiError)))]
async fn airlock_request(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiJson(req): ApiJson<AirlockRequest>,
) -> HubResult<(StatusCode, Json<ReleaseRequest>)> {
    let job = state
        .store
        .job(req.job)
        .await?
        .filter(|j| me.tenant.as_ref() == Some(&j.tenant))
        .ok_or_else(|| HubError::NotFound(format!("job {}", req.job)))?;
    let Some(p) = crate::datasets::protected(state.store.as_ref(), &job.spec).await? else {
        return Err(SpecError::new(
            "job",
            format!(
                "job {} read no restricted or sensitive data: its outputs need no release",
                job.id
            ),
        )
        .into());
    };
    let outputs = state.store.outputs(job.id).await?;
    let latest = outputs.iter().map(|o| o.attempt).max().unwrap_or(0);
    let mut chosen = Vec::new();
    if req.paths.is_empty() {
        chosen.extend(outputs.iter().filter(|o| o.attempt == latest));
    } else {
        for (i, path) in req.paths.iter().enumerate() {
            let o = outputs
                .iter()
                .filter(|o| &o.path == path)
                .max_by_key(|o| o.attempt)
                .ok_or_else(|| {
                    SpecError::new(
                        format!("paths[{i}]"),
                        format!("job {} has no output {path:?}", job.id),
                    )
                })?;
            chosen.push(o);
        }
    }
    chosen.sort_by(|a, b| a.path.cmp(&b.path).then(b.attempt.cmp(&a.attempt)));
    chosen.dedup_by(|a, b| a.path == b.path);
    let bytes: u64 = chosen.iter().map(|o| o.size).sum();
    if chosen.len() > MAX_RELEASE_FILES || bytes > MAX_RELEASE_BYTES {
        return Err(SpecError::new(
            "paths",
            format!(
                "{} files, {bytes} bytes: one request releases at most {MAX_RELEASE_FILES} files \
                 and {MAX_RELEASE_BYTES} bytes; name fewer with paths",
                chosen.len()
            ),
        )
        .into());
    }
    let mut files = Vec::new();
    let mut contents = Vec::new();
    for o in &chosen {
        contents.push(state.outputs.get(&o.sha256).await?);
        files.push(ReleaseFile {
            path: o.path.clone(),
            size: o.size,
            sha256: o.sha256.clone(),
        });
    }
    let bytes: Vec<&[u8]> = contents.iter().map(|b| b.as_ref()).collect();
    let mut r = suanli_data::request(
        job.id,
        job.tenant.clone(),
        p.owner,
        p.datasets,
        p.classification,
        Requester {
            id: me.id,
            name: &me.name,
        },
        &req.justification,
        files,
        &bytes,
        &p.rules,
        crate::engine::now(),
    )
    .map_err(airlock_error)?;
    r.id = state.store.insert_release_request(&r).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Who may read a request: the job's tenant, the data owner's tenant, the operator and
/// supervisors.
fn may_read(me: &Principal, r: &ReleaseRequest) -> bool {
    match me.role {
        Role::Operator | Role::Supervisor => true,
        Role::TenantAdmin | Role::User => {
            me.tenant.as_ref() == Some(&r.tenant) || me.tenant.as_ref() == Some(&r.owner)
        }
        Role::Site => false,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// The requests of this job (default: those the caller's tenant reviews as data owner).
    job: Option<i64>,
    /// The operator and supervisors: the requests this tenant reviews.
    #[param(value_type = Option<String>)]
    owner: Option<TenantId>,
}

/// Release requests: of a job, or those a data owner reviews.
#[utoipa::path(get, path = "/v1/airlock", params(ListQuery),
    responses((status = 200, description = "the requests, oldest first", body = AirlockList)))]
async fn airlock_list(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> HubResult<Json<AirlockList>> {
    let requests = match (q.job, q.owner.or_else(|| me.tenant.clone())) {
        (Some(job), _) => state.store.releases_of_job(JobId(job)).await?,
        (None, Some(owner)) => state.store.releases_for_owner(&owner).await?,
        (None, None) => {
            return Err(SpecError::new("owner", "name a job (?job=) or an owner (?owner=)").into());
        }
    };
    Ok(Json(AirlockList {
        requests: requests.into_iter().filter(|r| may_read(&me, r)).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct RequestPath {
    /// request id
    id: i64,
}

async fn readable(state: &AppState, me: &Principal, id: i64) -> HubResult<ReleaseRequest> {
    state
        .store
        .release_request(id)
        .await?
        .filter(|r| may_read(me, r))
        .ok_or_else(|| HubError::NotFound(format!("airlock request {id}")))
}

/// One request with its files, checks, reviews and history.
#[utoipa::path(get, path = "/v1/airlock/{id}", params(RequestPath),
    responses((status = 200, description = "the request", body = ReleaseRequest),
        (status = 404, description = "no such request, or not visible to this token", body = ApiError)))]
async fn airlock_show(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<RequestPath>,
) -> HubResult<Json<ReleaseRequest>> {
    Ok(Json(readable(&state, &me, p.id).await?))
}

/// A data owner's reviewer approves or rejects a request in review (never their own; sensitive
/// data needs two different approvers).
#[utoipa::path(post, path = "/v1/airlock/{id}/review", params(RequestPath), request_body = AirlockReview,
    responses((status = 200, description = "the request after the review", body = ReleaseRequest),
        (status = 404, description = "no such request, or not visible to this token", body = ApiError),
        (status = 409, description = "not in review, the requester's own, not the owner's admin, or reviewed already (`conflict`)", body = ApiError)))]
async fn airlock_review(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<RequestPath>,
    ApiJson(req): ApiJson<AirlockReview>,
) -> HubResult<Json<ReleaseRequest>> {
    let mut r = readable(&state, &me, p.id).await?;
    let who = Reviewer {
        id: me.id,
        name: &me.name,
        tenant: me.tenant.as_ref(),
        is_tenant_admin: me.role == Role::TenantAdmin,
    };
    let now = crate::engine::now();
    r.review(who, req.verdict, &req.reason, now)
        .map_err(airlock_error)?;
    state.store.update_release(&r).await?;
    // Rejected files are deleted: they never leave, and nothing keeps them.
    if r.state == suanli_data::ReleaseState::Rejected {
        for f in r.files.clone() {
            state
                .outputs
                .delete(state.store.as_ref(), r.job, &f.path, &f.sha256)
                .await?;
            r.record_deletion(&f.path, now);
        }
        state.store.update_release(&r).await?;
    }
    Ok(Json(r))
}

/// Whether the job's tenant may download `path` (with content `sha256`) of `job` now: outputs
/// of a job on protected data only through an approved request naming that file with that
/// content (the download is then recorded on it, and the answer is `true`); others freely
/// (`false`).
pub(super) async fn release_for_download(
    state: &AppState,
    job: &suanli_types::record::JobRecord,
    (path, sha256): (&str, &str),
    by: &str,
) -> HubResult<bool> {
    if crate::datasets::protected(state.store.as_ref(), &job.spec)
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let requests = state.store.releases_of_job(job.id).await?;
    // The very content reviewed: a file of the same name uploaded since (the job went on) is
    // another file, and waits for a review of its own.
    let Some(mut r) = requests
        .into_iter()
        .find(|r| r.releases_content(path, sha256))
    else {
        return Err(HubError::Forbidden(
            "this output of a job on restricted or sensitive data is quarantined: ask for its \
             release (suanli airlock request JOB --why ...) and wait for the data owner's review",
        ));
    };
    r.record_download(path, by, crate::engine::now());
    state.store.update_release(&r).await?;
    Ok(true)
}

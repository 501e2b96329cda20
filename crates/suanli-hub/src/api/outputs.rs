//! Job outputs: a site uploads the files its attempt left; the job's tenant lists and downloads
//! them. The decision on an upload is `crate::outputs::check_upload`; the content store and its
//! rows are `crate::outputs::Outputs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use suanli_proto::{ApiError, OutputUpload, OutputView, OutputsView};
use suanli_store::{OutputRecord, Principal};
use suanli_types::record::JobRecord;
use suanli_types::{JobId, Role, SpecError};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::extract::JobPath;
use super::jobs::Visible;
use super::responses::NoSuchJob;
use super::{ApiPath, ApiQuery, Op};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{HubError, HubResult};
use crate::outputs::{Upload, check_upload};

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::site(routes!(upload_output)).output_body(),
        Op::site(routes!(site_checkpoint)),
        Op::site(routes!(site_checkpoint_content)),
        Op::any_token(routes!(list_outputs)),
        Op::any_token(routes!(output_content)),
    ]
}

/// An attempt of a job.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct AttemptPath {
    /// job id
    id: i64,
    /// attempt number
    attempt: u32,
}

/// Stores one file that the calling center's running attempt of the job left. The path must
/// match one of the job's output patterns and the body must hash to `sha256`; sent again, the
/// same file changes nothing.
#[utoipa::path(put, path = "/v1/site/outputs/{id}/{attempt}", params(AttemptPath, OutputUpload),
    request_body(content = String, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored", body = OutputView),
        (status = 404, description = "no such attempt at this center (`not_found`)", body = ApiError),
        (status = 409, description = "the attempt has ended or is not the job's current one (`conflict`)", body = ApiError),
        (status = 413, description = "over the hub's file cap (`payload_too_large`) or the tenant's quota (`over_quota`)", body = ApiError)))]
async fn upload_output(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<AttemptPath>,
    ApiQuery(q): ApiQuery<OutputUpload>,
    body: Bytes,
) -> HubResult<(StatusCode, Json<OutputView>)> {
    let center = me
        .center
        .ok_or(HubError::Forbidden("this site token names no center"))?;
    let (path, sha256) = (required(q.path, "path")?, required(q.sha256, "sha256")?);
    let missing = || HubError::NotFound(format!("attempt {} of job {}", p.attempt, p.id));
    let job = state.store.job(JobId(p.id)).await?.ok_or_else(missing)?;
    let attempts = state.store.attempts(job.id).await?;
    let row = attempts.iter().find(|a| a.attempt == p.attempt);
    let body_sha = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let size = body.len() as u64;
    let u = Upload {
        center: &center,
        attempt: p.attempt,
        path: &path,
        sha256: &sha256,
        size,
        body_sha256: &body_sha,
    };
    check_upload(&job, row, &u)?;
    if job.spec.in_checkpoint(&path)
        && crate::datasets::protected(state.store.as_ref(), &job.spec)
            .await?
            .is_some_and(|p| p.classification == suanli_data::Classification::Sensitive)
    {
        return Err(HubError::Conflict(
            "checkpoints of jobs on sensitive data stay at their center".into(),
        ));
    }
    let now = crate::engine::now();
    let retention = state.outputs.config.retention.as_millis() as i64;
    let rec = OutputRecord {
        job: job.id,
        attempt: p.attempt,
        path,
        tenant: job.tenant.clone(),
        size,
        sha256,
        created_at: now,
        expires_at: suanli_types::Timestamp(now.0.saturating_add(retention)),
    };
    let view = view(&rec);
    state
        .outputs
        .put(
            state.store.as_ref(),
            rec,
            body,
            job.spec.keep_failed_outputs,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A query parameter the operation needs.
fn required(v: Option<String>, name: &str) -> HubResult<String> {
    v.ok_or_else(|| SpecError::new(name, format!("required: add ?{name}=...")).into())
}

fn view(o: &OutputRecord) -> OutputView {
    OutputView {
        attempt: o.attempt,
        path: o.path.clone(),
        size: o.size,
        sha256: o.sha256.clone(),
        created_at: o.created_at,
        expires_at: o.expires_at,
    }
}

/// The files the job's attempts left: its latest attempt's, and earlier ones' if its spec keeps
/// them. Its tenant, the operator and supervisors see the list; only its tenant downloads.
#[utoipa::path(get, path = "/v1/jobs/{id}/outputs", params(JobPath),
    responses((status = 200, description = "the job's outputs", body = OutputsView), NoSuchJob))]
async fn list_outputs(
    State(state): State<AppState>,
    Visible { job, .. }: Visible,
) -> HubResult<Json<OutputsView>> {
    let outputs: Vec<OutputView> = state
        .store
        .outputs(job.id)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(OutputsView {
        job: job.id,
        patterns: job.spec.outputs.clone(),
        total_bytes: outputs.iter().map(|o| o.size).sum(),
        outputs,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ContentQuery {
    /// The output's path, as listed (required).
    path: Option<String>,
    /// The attempt (default: the newest that left `path`).
    attempt: Option<u32>,
}

/// Only the job's own tenant reads the content of its outputs.
fn may_download(me: &Principal, tenant: &suanli_types::TenantId) -> HubResult<()> {
    match me.role {
        Role::TenantAdmin | Role::User if me.tenant.as_ref() == Some(tenant) => Ok(()),
        _ => Err(HubError::Forbidden(
            "a job's outputs are downloaded only by its own tenant",
        )),
    }
}

/// The content of one output, as bytes.
#[utoipa::path(get, path = "/v1/jobs/{id}/outputs/content", params(JobPath, ContentQuery),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream", body = String),
        NoSuchJob,
        (status = 403, description = "not the job's tenant (`forbidden`)", body = ApiError)))]
async fn output_content(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(jp): ApiPath<JobPath>,
    ApiQuery(q): ApiQuery<ContentQuery>,
) -> HubResult<Response> {
    // The data owner's tenant admins read a quarantined output to review it (recorded in the
    // audit log); otherwise only the job's own tenant downloads.
    let hidden = || HubError::NotFound(format!("job {}", jp.id));
    let job = state.store.job(JobId(jp.id)).await?.ok_or_else(hidden)?;
    let protected = crate::datasets::protected(state.store.as_ref(), &job.spec).await?;
    let reviewer = protected
        .as_ref()
        .is_some_and(|p| me.role == Role::TenantAdmin && me.tenant.as_ref() == Some(&p.owner));
    if !reviewer && !super::jobs::can_see(&me, &job) {
        return Err(hidden());
    }
    if !reviewer {
        may_download(&me, &job.tenant)?;
    }
    let path = required(q.path, "path")?;
    let found = state
        .store
        .outputs(job.id)
        .await?
        .into_iter()
        .filter(|o| o.path == path && q.attempt.is_none_or(|a| a == o.attempt))
        .max_by_key(|o| o.attempt)
        .ok_or_else(|| {
            HubError::InvalidSpec(SpecError::new(
                "path",
                format!("job {} has no output {path:?}", job.id),
            ))
        })?;
    let by = format!("{} (#{})", me.name, me.id);
    let released = reviewer
        || super::airlock::release_for_download(&state, &job, (&found.path, &found.sha256), &by)
            .await?;
    let data = state.outputs.get(&found.sha256).await?;
    let name = found.path.rsplit('/').next().unwrap_or("output");
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.replace(
            |c: char| !c.is_ascii_graphic() || c == '"' || c == '\\',
            "_"
        )
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::HeaderName::from_static("x-suanli-sha256"),
                found.sha256.clone(),
            ),
        ],
        data,
    )
        .into_response())
    .map(|r| match released {
        // A file of protected data leaving is recorded in the audit log, like a write.
        true => super::jobs::sensitive(r),
        false => r,
    })
}

/// The job of the path, if the calling center runs its current attempt now.
async fn run_here(state: &AppState, me: &Principal, id: i64) -> HubResult<JobRecord> {
    let missing = || HubError::NotFound(format!("job {id} at this center"));
    let job = state.store.job(JobId(id)).await?.ok_or_else(missing)?;
    let live = state.store.attempts(job.id).await?.into_iter().any(|a| {
        a.attempt == job.attempt && a.outcome.is_none() && Some(&a.center) == me.center.as_ref()
    });
    if !live {
        return Err(missing());
    }
    Ok(job)
}

/// The checkpoint files a job's earlier attempts left: those of the newest attempt that saved
/// any, before the current one.
async fn last_checkpoint(state: &AppState, job: &JobRecord) -> HubResult<Vec<OutputRecord>> {
    let all: Vec<OutputRecord> = state
        .store
        .outputs(job.id)
        .await?
        .into_iter()
        .filter(|o| o.attempt < job.attempt && job.spec.in_checkpoint(&o.path))
        .collect();
    let newest = all.iter().map(|o| o.attempt).max();
    Ok(all
        .into_iter()
        .filter(|o| Some(o.attempt) == newest)
        .collect())
}

/// The last checkpoint saved by an earlier attempt of a job the calling center runs now, to
/// start its attempt with.
#[utoipa::path(get, path = "/v1/site/checkpoints/{id}", params(JobPath),
    responses((status = 200, description = "the files of the last checkpoint", body = OutputsView),
        (status = 404, description = "the center does not run the job now (`not_found`)", body = ApiError)))]
async fn site_checkpoint(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<JobPath>,
) -> HubResult<Json<OutputsView>> {
    let job = run_here(&state, &me, p.id).await?;
    let outputs: Vec<OutputView> = last_checkpoint(&state, &job)
        .await?
        .iter()
        .map(view)
        .collect();
    Ok(Json(OutputsView {
        job: job.id,
        patterns: job
            .spec
            .checkpoint
            .iter()
            .map(|c| format!("{c}/**"))
            .collect(),
        total_bytes: outputs.iter().map(|o| o.size).sum(),
        outputs,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CheckpointQuery {
    /// A file of the last checkpoint, as listed (required).
    path: Option<String>,
}

/// One file of the last checkpoint, as bytes.
#[utoipa::path(get, path = "/v1/site/checkpoints/{id}/content", params(JobPath, CheckpointQuery),
    responses((status = 200, description = "the file's bytes", content_type = "application/octet-stream", body = String),
        (status = 404, description = "the center does not run the job now (`not_found`)", body = ApiError)))]
async fn site_checkpoint_content(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(p): ApiPath<JobPath>,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> HubResult<Response> {
    let job = run_here(&state, &me, p.id).await?;
    let path = required(q.path, "path")?;
    let found = last_checkpoint(&state, &job)
        .await?
        .into_iter()
        .find(|o| o.path == path)
        .ok_or_else(|| SpecError::new("path", format!("no checkpoint file {path:?}")))?;
    let data = state.outputs.get(&found.sha256).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string())],
        data,
    )
        .into_response())
}

//! Jobs: submit, quote, list, inspect, cancel, and read logs.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use suanli_proto::{
    ApiError, JobEventView, JobList, JobSummary, JobView, LogChunk, LogsResponse, QuoteView,
    Stream, SubmitRequest,
};
use suanli_store::{JobFilter, JobRecord, Principal};
use suanli_types::{
    CenterId, JobId, JobSpec, JobState, PriorityClass, Role, SpecError, TenantCategory, TenantId,
};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::extract::JobPath;
use super::responses::NoSuchJob;
use super::{Access, ApiJson, ApiPath, ApiQuery, Op, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};
use crate::leader::IDEMPOTENCY_KEY;

/// Public-service work goes first and may preempt others' work.
const PUBLIC_SERVICE_ONLY: &str = "the public-service class is for public-service tenants, and \
     for tenants the operator allows it (tenant policy `public_service`)";

const SUBMITTERS: Access = Access::Roles(
    &[Role::Operator, Role::TenantAdmin, Role::User],
    "sites and supervisors do not submit jobs",
);

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::new(SUBMITTERS, routes!(submit_job)),
        Op::new(SUBMITTERS, routes!(quote_job)),
        Op::readers("sites do not list jobs", routes!(list_jobs)),
        // Jobs a principal may not see are 404, as if they did not exist.
        Op::any_token(routes!(get_job)),
        Op::any_token(routes!(cancel_job)),
        Op::any_token(routes!(hold_job)),
        Op::any_token(routes!(release_job)),
        Op::any_token(routes!(cancel_array)),
        Op::any_token(routes!(job_logs)),
    ]
}

/// Can `p` see this job? Tenants see only their own; operators and supervisors see all.
pub(super) fn can_see(p: &Principal, rec: &JobRecord) -> bool {
    match p.role {
        Role::Operator | Role::Supervisor => true,
        Role::TenantAdmin | Role::User => p.tenant.as_ref() == Some(&rec.tenant),
        Role::Site => false,
    }
}

/// The job of the path, and the caller, who may see it: a job the caller may not see is 404, as
/// if it did not exist.
pub(super) struct Visible {
    pub(super) job: JobRecord,
    pub(super) me: Principal,
}

impl FromRequestParts<AppState> for Visible {
    type Rejection = HubError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> HubResult<Visible> {
        let Auth(me) = Auth::from_request_parts(parts, state).await?;
        let ApiPath(JobPath { id }) = ApiPath::from_request_parts(parts, state).await?;
        match state.store.job(JobId(id)).await? {
            Some(job) if can_see(&me, &job) => Ok(Visible { job, me }),
            _ => Err(HubError::NotFound(format!("job {id}"))),
        }
    }
}

/// Submits a job. With an `Idempotency-Key` header (unique per tenant), a retried submit returns
/// the job the first one created (200) instead of creating another (201); the same key with
/// another spec is a 409 conflict.
#[utoipa::path(post, path = "/v1/jobs", request_body = SubmitRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; makes retries safe")),
    responses((status = 201, description = "the job, queued", body = JobView),
        (status = 200, body = JobView, description = "an earlier submit with this key created it"),
        (status = 402, description = "over the tenant's monthly budget (`over_budget`)", body = ApiError),
        (status = 409, description = "the key was used with another spec (`conflict`)", body = ApiError),
        (status = 422, description = "no registered center could ever run it (`unschedulable`)", body = ApiError)))]
async fn submit_job(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    ApiJson(req): ApiJson<SubmitRequest>,
) -> HubResult<(StatusCode, Json<JobView>)> {
    let key = idempotency_key(&headers)?;
    let me = &auth.0;
    let (tenant, spec) = submitter(&state, me, req.spec).await?;
    let by = (me.name.clone(), me.id);
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

/// A dry run of a submit: where the job could run, at what price, and when.
#[utoipa::path(post, path = "/v1/quote", request_body = SubmitRequest,
    responses((status = 200, description = "the candidates, best first", body = QuoteView)))]
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

/// The tenant a submit or quote is for (a tenant token's own; the one the operator names), and
/// the validated spec.
pub(super) async fn submitter(
    state: &AppState,
    me: &Principal,
    mut spec: JobSpec,
) -> HubResult<(TenantId, JobSpec)> {
    let tenant = match tenant_of(me)? {
        Some(own) => {
            if spec.tenant.as_ref().is_some_and(|t| t != own) {
                return Err(HubError::Forbidden("a tenant may submit only for itself"));
            }
            own.clone()
        }
        None => spec
            .tenant
            .clone()
            .ok_or_else(|| SpecError::new("spec.tenant", "the operator must name the tenant"))?,
    };
    spec.validate()
        .map_err(|e| SpecError::new(format!("spec.{}", e.field), e.message))?;
    let Some(rec) = state.store.tenant(&tenant).await? else {
        return Err(SpecError::new("spec.tenant", format!("unknown tenant {tenant}")).into());
    };
    if spec.priority == PriorityClass::PublicService
        && rec.category != TenantCategory::PublicService
    {
        let allowed = state
            .store
            .tenant_policies()
            .await?
            .into_iter()
            .any(|(t, p)| t == tenant && p.public_service);
        if !allowed {
            return Err(HubError::Forbidden(PUBLIC_SERVICE_ONLY));
        }
    }
    if !spec.centers.is_empty() {
        let known = state.store.centers().await?;
        for (i, c) in spec.centers.iter().enumerate() {
            if !known.iter().any(|k| k.id == *c) {
                return Err(SpecError::new(
                    format!("spec.centers[{i}]"),
                    format!("no center {c} is registered (suanli centers)"),
                )
                .into());
            }
        }
    }
    // A model is named as the tenant sees the library; the job keeps `name@revision`, and the
    // engine learns where it is certified now.
    if let Some(named) = spec.model.clone() {
        let Some(m) = crate::models::resolve(state.store.as_ref(), Some(&tenant), &named).await?
        else {
            return Err(SpecError::new(
                "spec.model",
                format!("no model {named:?} that tenant {tenant} may see (suanli models)"),
            )
            .into());
        };
        spec.model = Some(crate::models::model_ref(&m));
        super::models::tell_engine(state, &m).await?;
    }
    crate::datasets::check_submit(state.store.as_ref(), &tenant, &spec, crate::engine::now())
        .await?;
    Ok((tenant, spec))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only jobs in one of these states, comma-separated (e.g. `queued,running`).
    #[param(example = "queued,running")]
    state: Option<String>,
    /// Only this tenant's jobs (tenant tokens: their own only).
    tenant: Option<String>,
    /// Only jobs placed at this center.
    center: Option<String>,
    /// Only jobs submitted by the principal of this name.
    user: Option<String>,
    /// `oldest` first (the default) or `newest` first.
    #[param(pattern = "^(oldest|newest)$")]
    order: Option<String>,
    /// Page size, 1 to 1000 (default 100; others are clamped).
    limit: Option<u32>,
    /// Jobs after this id in the listing's order (the previous page's `next`).
    after: Option<i64>,
    /// Only the tasks of this array (its id: the first task's job id).
    array: Option<i64>,
}

/// Jobs, oldest (or `order=newest`: newest) first, a page at a time (a tenant token sees only
/// its own tenant's).
#[utoipa::path(get, path = "/v1/jobs", params(ListQuery),
    responses((status = 200, description = "a page of jobs", body = JobList)))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> HubResult<Json<JobList>> {
    let me = &auth.0;
    let states = q
        .state
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<JobState>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| HubError::BadRequest(e.to_string()))?;
    let newest_first = match q.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(other) => {
            return Err(HubError::BadRequest(format!(
                "order {other:?}: expected oldest or newest"
            )));
        }
    };
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
            states,
            tenant,
            center: q.center.map(CenterId),
            submitted_by: q.user,
            array: q.array.map(JobId),
            after: q.after.map(JobId),
            newest_first,
            limit: limit + 1,
        })
        .await?;
    let more = recs.len() > limit as usize;
    let mut jobs: Vec<JobSummary> = recs.iter().take(limit as usize).map(summary).collect();
    // A queued job's reason as it stands: what gates it (held, its begin time, a dependency,
    // its array's limit), where something does.
    let queued: Vec<JobId> = jobs
        .iter()
        .filter(|j| j.state == JobState::Queued)
        .map(|j| j.id)
        .collect();
    if !queued.is_empty() {
        let gates: std::collections::BTreeMap<JobId, String> = state
            .engine
            .ask(|reply| Cmd::Gates {
                jobs: queued,
                reply,
            })
            .await?
            .into_iter()
            .collect();
        for j in &mut jobs {
            if let Some(why) = gates.get(&j.id) {
                j.reason = Some(why.clone());
            }
        }
    }
    let next = if more {
        jobs.last().map(|j| j.id)
    } else {
        None
    };
    Ok(Json(JobList { jobs, next }))
}

/// Whether `p` reads `rec` as someone other than its tenant (the operator, a supervisor): its
/// log contents and env values are then a sensitive read, made only with a reason that the
/// audit log records.
fn reads_for_another(p: &Principal, rec: &JobRecord) -> bool {
    p.tenant.as_ref() != Some(&rec.tenant)
}

/// The reason of a sensitive read: 3 to 200 characters.
fn read_reason(reason: Option<&str>, what: &str) -> HubResult<String> {
    let r = reason.map(str::trim).unwrap_or_default();
    if r.chars().count() < 3 || r.chars().count() > 200 {
        return Err(SpecError::new(
            "reason",
            format!(
                "reading another tenant's {what} needs a reason (3 to 200 characters), which \
                 the audit log records: add ?reason=..."
            ),
        )
        .into());
    }
    Ok(r.to_string())
}

/// `resp`, marked as a sensitive read for the audit log.
pub(super) fn sensitive(resp: impl IntoResponse) -> Response {
    let mut resp = resp.into_response();
    resp.extensions_mut().insert(crate::audit::SensitiveRead);
    resp
}

/// Env values as another tenant's reader sees them without a reason.
const HIDDEN: &str = "(hidden: read with a reason)";

fn hide_env(v: &mut JobView) {
    for value in v.spec.env.values_mut() {
        *value = HIDDEN.to_string();
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    /// Why you read another tenant's env values (operator, supervisor; 3 to 200 characters):
    /// with it they are shown and the read is in the audit log, without it they are hidden.
    reason: Option<String>,
}

/// A job in full: spec, placement decision, history. Another tenant's env values are hidden
/// unless the read gives a reason.
#[utoipa::path(get, path = "/v1/jobs/{id}", params(JobPath, JobQuery),
    responses((status = 200, description = "the job", body = JobView), NoSuchJob,
        (status = 400, description = "a reason outside 3 to 200 characters (`invalid_spec`, field \
            `reason`)", body = ApiError)))]
async fn get_job(
    State(state): State<AppState>,
    v: Visible,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> HubResult<Response> {
    let another = reads_for_another(&v.me, &v.job);
    let mut view = job_view(&state, v.job).await?;
    match (another, q.reason.as_deref()) {
        (false, _) => Ok(Json(view).into_response()),
        (true, None) => {
            hide_env(&mut view);
            Ok(Json(view).into_response())
        }
        (true, Some(r)) => {
            read_reason(Some(r), "env values")?;
            Ok(sensitive(Json(view)))
        }
    }
}

/// Cancels a job (users: only their own; tenant admins: their tenant's).
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(JobPath),
    responses((status = 200, description = "the job, cancelled", body = JobView),
        (status = 403, description = "not this principal's to cancel (`forbidden`)", body = ApiError),
        NoSuchJob,
        (status = 409, description = "the job has ended (`conflict`)", body = ApiError)))]
async fn cancel_job(State(state): State<AppState>, v: Visible) -> HubResult<Json<JobView>> {
    let Visible { job, me } = v;
    may_stop(&me, &job)?;
    let rec = state
        .engine
        .ask(|reply| Cmd::Cancel {
            job: job.id,
            by: me.label(),
            reply,
        })
        .await?;
    answer(&state, &me, rec).await
}

/// Whether `me` may cancel, hold or release `job` (users: only their own; tenant admins: their
/// tenant's; the operator: any).
fn may_stop(me: &Principal, job: &JobRecord) -> HubResult<()> {
    let allowed = match me.role {
        Role::Operator | Role::TenantAdmin => true,
        // By the principal's id, never its name (another token may carry the same name).
        Role::User => job.submitted_by_id == Some(me.id),
        _ => false,
    };
    if !allowed {
        return Err(HubError::Forbidden(
            "users cancel, hold and release only their own jobs",
        ));
    }
    Ok(())
}

/// The job as answered to `me` after a change (another tenant's env values hidden).
async fn answer(state: &AppState, me: &Principal, rec: JobRecord) -> HubResult<Json<JobView>> {
    let another = reads_for_another(me, &rec);
    let mut view = job_view(state, rec).await?;
    if another {
        hide_env(&mut view);
    }
    Ok(Json(view))
}

/// Holds a pending job: it is not placed until released (who may: as for cancel).
#[utoipa::path(post, path = "/v1/jobs/{id}/hold", params(JobPath),
    responses((status = 200, description = "the job, held", body = JobView),
        (status = 403, description = "not this principal's to hold (`forbidden`)", body = ApiError),
        NoSuchJob,
        (status = 409, description = "the job is not pending, or held already (`conflict`)", body = ApiError)))]
async fn hold_job(State(state): State<AppState>, v: Visible) -> HubResult<Json<JobView>> {
    hold_or_release(state, v, true).await
}

/// Releases a held job: it may start once nothing else holds it back (its dependencies, its
/// begin time, its array's limit). Who may: as for cancel.
#[utoipa::path(post, path = "/v1/jobs/{id}/release", params(JobPath),
    responses((status = 200, description = "the job, released", body = JobView),
        (status = 403, description = "not this principal's to release (`forbidden`)", body = ApiError),
        NoSuchJob,
        (status = 409, description = "the job is not pending, or not held (`conflict`)", body = ApiError)))]
async fn release_job(State(state): State<AppState>, v: Visible) -> HubResult<Json<JobView>> {
    hold_or_release(state, v, false).await
}

async fn hold_or_release(state: AppState, v: Visible, hold: bool) -> HubResult<Json<JobView>> {
    let Visible { job, me } = v;
    may_stop(&me, &job)?;
    let rec = state
        .engine
        .ask(|reply| Cmd::Hold {
            job: job.id,
            hold,
            by: me.label(),
            reply,
        })
        .await?;
    answer(&state, &me, rec).await
}

/// Cancels every unfinished task of an array (the id is the array's: its first task's job id);
/// answers all its tasks. Who may: as for cancel, task by task; one task alone is cancelled
/// with `POST /v1/jobs/{id}/cancel`.
#[utoipa::path(post, path = "/v1/arrays/{id}/cancel", params(JobPath),
    responses((status = 200, description = "the array's tasks, by id", body = JobList),
        (status = 403, description = "a task is not this principal's to cancel (`forbidden`)", body = ApiError),
        NoSuchJob))]
async fn cancel_array(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(JobPath { id }): ApiPath<JobPath>,
) -> HubResult<Json<JobList>> {
    let me = &auth.0;
    if !matches!(me.role, Role::Operator | Role::TenantAdmin | Role::User) {
        return Err(HubError::Forbidden(
            "only the operator, tenant admins and users cancel jobs",
        ));
    }
    let tasks = array_tasks(&state, me, JobId(id)).await?;
    for t in &tasks {
        may_stop(me, t)?;
    }
    for t in tasks.iter().filter(|t| !t.state.is_terminal()) {
        let cancelled = state
            .engine
            .ask(|reply| Cmd::Cancel {
                job: t.id,
                by: me.label(),
                reply,
            })
            .await;
        match cancelled {
            // Ended meanwhile: nothing to cancel.
            Ok(_) | Err(HubError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    let jobs = array_tasks(&state, me, JobId(id))
        .await?
        .iter()
        .map(summary)
        .collect();
    Ok(Json(JobList { jobs, next: None }))
}

/// The tasks of array `id` that `me` may see; 404 if there are none.
async fn array_tasks(state: &AppState, me: &Principal, id: JobId) -> HubResult<Vec<JobRecord>> {
    let tasks: Vec<JobRecord> = state
        .store
        .jobs(&JobFilter {
            array: Some(id),
            limit: suanli_types::spec::sched::MAX_ARRAY_TASKS as u32 + 1,
            ..JobFilter::default()
        })
        .await?
        .into_iter()
        .filter(|t| can_see(me, t))
        .collect();
    if tasks.is_empty() {
        return Err(HubError::NotFound(format!("array {id}")));
    }
    Ok(tasks)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    /// Why you read another tenant's logs: required of the operator and supervisors (3 to 200
    /// characters), and recorded with the read in the audit log.
    reason: Option<String>,
    /// Attempt number (default: the latest).
    attempt: Option<u32>,
    /// First chunk sequence number to return (default 0).
    after: Option<u64>,
    /// At most this many chunks (default and maximum 1000).
    limit: Option<u32>,
}

/// A page of an attempt's log chunks.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", params(JobPath, LogsQuery),
    responses((status = 200, description = "log chunks from `after` on", body = LogsResponse),
        NoSuchJob,
        (status = 400, description = "another tenant's logs read without a reason of 3 to 200 \
            characters (`invalid_spec`, field `reason`)", body = ApiError),
        (status = 403, description = "the job's own tenant, for a job on restricted or sensitive \
            data: its log is quarantined with its outputs (`forbidden`)", body = ApiError)))]
async fn job_logs(
    State(state): State<AppState>,
    Visible { job: rec, me }: Visible,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> HubResult<Response> {
    let another = reads_for_another(&me, &rec);
    if another {
        read_reason(q.reason.as_deref(), "logs")?;
    }
    // A job's output on restricted or sensitive data leaves through the airlock only, its log
    // too: printing the data would otherwise carry it past the review.
    if !another
        && crate::datasets::protected(state.store.as_ref(), &rec.spec)
            .await?
            .is_some()
    {
        return Err(HubError::Forbidden(
            "the log of a job on restricted or sensitive data is quarantined with its outputs: \
             write what should leave to an output and ask for its release (suanli airlock)",
        ));
    }
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
    let resp = Json(LogsResponse {
        job: rec.id,
        attempt,
        chunks,
        next_after,
        complete,
    });
    Ok(match another {
        true => sensitive(resp),
        false => resp.into_response(),
    })
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
        submitted_by: rec.submitted_by.clone(),
        walltime_secs: rec.spec.walltime,
        reason: rec.reason.clone(),
        held: rec.held,
        array_job_id: rec.array.map(|a| a.job),
        array_task_id: rec.array.map(|a| a.task),
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
    let placement = rec.placement.as_ref().map(crate::views::placement_view);
    Ok(JobView {
        summary: JobSummary {
            reason,
            ..summary(&rec)
        },
        submitted_by_id: rec.submitted_by_id,
        spec: rec.spec,
        card_seconds: rec.card_seconds,
        placement,
        history,
    })
}

//! Statistics: the indicators by period and group (tenants see their own usage only), and the
//! quarterly releases, public once frozen (docs/INDICATORS.md).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use suanli_indicators::calendar::{hour_of, parse_instant};
use suanli_indicators::{By, HOUR_MS, IndicatorError, Period, Quarter, Row, Window};
use suanli_proto::{
    ApiError, CapacityFigures, IndicatorRow, IndicatorsView, PreliminaryRelease, RELEASE_FILES,
    ReleaseList, ReleaseRequest, ReleaseView, UsageFigures,
};
use suanli_store::{ReleaseInfo, StoreError};
use suanli_types::{SpecError, Timestamp};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{ApiJson, ApiPath, ApiQuery, Op, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{HubError, HubResult};

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::readers("sites do not read the statistics", routes!(indicators)),
        Op::public(routes!(list_releases)),
        Op::public(routes!(release_file)),
        Op::operator("only the operator makes releases", routes!(make_release)),
        Op::new(
            super::Access::Roles(
                &[suanli_types::Role::Operator, suanli_types::Role::Supervisor],
                "only the operator and supervisors read preliminary statistics",
            ),
            routes!(preliminary_release),
        ),
    ]
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct IndicatorsQuery {
    /// Start of the window (included): Unix ms, or `2026Q4`, `2026-10`, `2026-10-01` (China
    /// Standard Time) or `2026-10-01T08Z` (a UTC hour). Default: the start of the current
    /// quarter.
    from: Option<String>,
    /// End of the window (excluded), in the same forms. Default: the end of the current hour.
    to: Option<String>,
    /// `hour`, `day` (default), `month` or `quarter`.
    period: Option<String>,
    /// `all` (default), `center`, `sku`, `vendor` or `category`.
    by: Option<String>,
}

/// The longest window by hour, and by any other period.
const MAX_HOURS: i64 = 31 * 24;
const MAX_DAYS: i64 = 10 * 366;

/// An instant of a query: Unix ms, a quarter, a CST month or day, or a UTC hour.
fn instant(field: &'static str, s: &str) -> HubResult<Timestamp> {
    parse_instant(s).ok_or_else(|| {
        SpecError::new(
            field,
            format!(
                "{s:?} is not Unix ms, a quarter (2026Q4), a month (2026-10), a day \
                 (2026-10-01) or an hour (2026-10-01T08Z)"
            ),
        )
        .into()
    })
}

fn invalid(field: &'static str, e: IndicatorError) -> HubError {
    let why = match e {
        IndicatorError::Invalid { why, .. } => why,
        other => other.to_string(),
    };
    SpecError::new(field, why).into()
}

fn row_view(r: Row) -> IndicatorRow {
    let u = r.usage;
    IndicatorRow {
        period: r.period,
        group: r.group,
        capacity: r.capacity.map(|c| CapacityFigures {
            installed_card_hours: c.installed_card_hours,
            installed_fp16_pflops: c.installed_fp16_pflops,
            available_card_hours: c.available_card_hours,
            allocated_card_hours: c.allocated_card_hours,
            down_card_hours: c.down_card_hours,
            drained_card_hours: c.drained_card_hours,
            utilisation: c.utilisation,
            delivered_utilisation: c.delivered_utilisation,
            availability: c.availability,
        }),
        usage: UsageFigures {
            allocated_card_hours: u.allocated_card_hours,
            delivered_card_hours: u.delivered_card_hours,
            delivered_card_seconds: u.delivered_card_seconds,
            jobs_submitted: u.jobs_submitted,
            jobs_started: u.jobs_started,
            jobs_succeeded: u.jobs_succeeded,
            jobs_failed: u.jobs_failed,
            jobs_cancelled: u.jobs_cancelled,
            jobs_timed_out: u.jobs_timed_out,
            wait_p50_secs: u.wait_p50_secs,
            wait_p95_secs: u.wait_p95_secs,
            wait_p99_secs: u.wait_p99_secs,
            gross_yuan: u.gross_yuan,
            subsidy_yuan: u.subsidy_yuan,
            payable_yuan: u.payable_yuan,
            subsidy_rate: u.subsidy_rate,
            active_tenants: u.active_tenants,
            amendments: u.amendments,
            located_card_hours: u.located_card_hours,
            cross_city_card_hours: u.cross_city_card_hours,
        },
    }
}

/// Indicators of a window by period and group. The operator and supervisors see the whole
/// network; a tenant's token sees only that tenant's usage, without capacity figures.
#[utoipa::path(get, path = "/v1/indicators", params(IndicatorsQuery),
    responses((status = 200, description = "the indicators", body = IndicatorsView)))]
async fn indicators(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<IndicatorsQuery>,
) -> HubResult<Json<IndicatorsView>> {
    let now = crate::engine::now();
    let period: Period = match &q.period {
        Some(p) => p.parse().map_err(|e| invalid("period", e))?,
        None => Period::Day,
    };
    let by: By = match &q.by {
        Some(b) => b.parse().map_err(|e| invalid("by", e))?,
        None => By::All,
    };
    let from = match &q.from {
        Some(f) => instant("from", f)?,
        None => Quarter::of(now).start(),
    };
    let to = match &q.to {
        Some(t) => instant("to", t)?,
        None => Timestamp(hour_of(now).0 + HOUR_MS),
    };
    if to <= from {
        return Err(SpecError::new("to", format!("{to} is not after from ({from})")).into());
    }
    let (limit, unit) = match period {
        Period::Hour => (MAX_HOURS * HOUR_MS, "31 days by hour"),
        _ => (MAX_DAYS * 24 * HOUR_MS, "10 years"),
    };
    if to.0 - from.0 > limit {
        return Err(SpecError::new("to", format!("the window is longer than {unit}")).into());
    }
    let tenant = tenant_of(&auth.0)?.cloned();
    let w = Window {
        from,
        to,
        period,
        by,
        tenant: tenant.clone(),
    };
    let rows = state
        .engine
        .indicators()
        .rows(&w, now)
        .map_err(|e| invalid("window", e))?;
    Ok(Json(IndicatorsView {
        from,
        to,
        period: period.as_str().into(),
        by: by.as_str().into(),
        tenant,
        rows: rows.into_iter().map(row_view).collect(),
    }))
}

fn release_view(r: &ReleaseInfo) -> ReleaseView {
    ReleaseView {
        quarter: r.quarter.clone(),
        made_at: r.made_at,
        sha256: r.sha256.clone(),
        files: RELEASE_FILES
            .iter()
            .map(|f| format!("/v1/releases/{}/{f}", r.quarter))
            .collect(),
    }
}

/// Every frozen quarterly release: public statistics, no token needed.
#[utoipa::path(get, path = "/v1/releases",
    responses((status = 200, description = "the releases, by quarter", body = ReleaseList),
        (status = 500, description = "the store failed (`internal`)", body = ApiError)))]
async fn list_releases(State(state): State<AppState>) -> HubResult<Json<ReleaseList>> {
    let releases = state.store.releases().await?;
    Ok(Json(ReleaseList {
        releases: releases.iter().map(release_view).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ReleasePath {
    /// the quarter, e.g. `2026Q4`
    quarter: String,
    /// `release.json`, `release.csv` or `release.html`
    file: String,
}

fn quarter(s: &str) -> HubResult<Quarter> {
    s.parse()
        .map_err(|e| HubError::BadRequest(format!("bad quarter: {}", quarter_why(e))))
}

fn quarter_why(e: IndicatorError) -> String {
    match e {
        IndicatorError::Invalid { why, .. } => why,
        other => other.to_string(),
    }
}

/// One file of a frozen release, exactly as it was made: public, no token needed.
#[utoipa::path(get, path = "/v1/releases/{quarter}/{file}", params(ReleasePath),
    responses((status = 200, description = "the file",
            content((Object = "application/json"), (String = "text/csv"), (String = "text/html"))),
        (status = 404, description = "no release of this quarter, or no such file (`not_found`)",
            body = ApiError),
        (status = 500, description = "the store failed (`internal`)", body = ApiError)))]
async fn release_file(
    State(state): State<AppState>,
    ApiPath(ReleasePath { quarter: q, file }): ApiPath<ReleasePath>,
) -> HubResult<impl IntoResponse> {
    let q = quarter(&q)?.to_string();
    let r = state
        .store
        .release(&q)
        .await?
        .ok_or_else(|| HubError::NotFound(format!("no release of {q}")))?;
    let (body, kind) = match file.as_str() {
        "release.json" => (r.json, "application/json"),
        "release.csv" => (r.csv, "text/csv; charset=utf-8"),
        "release.html" => (r.html, "text/html; charset=utf-8"),
        _ => {
            return Err(HubError::NotFound(format!(
                "no file {file:?} in a release; there are {}",
                RELEASE_FILES.join(", ")
            )));
        }
    };
    Ok(([(header::CONTENT_TYPE, kind)], body))
}

/// Freezes the release of a quarter that has ended: its JSON, CSV and HTML files are made
/// once, stored with the SHA-256 of the JSON, and never change.
#[utoipa::path(post, path = "/v1/releases", request_body = ReleaseRequest,
    responses((status = 201, description = "the release", body = ReleaseView),
        (status = 409, description = "this quarter has a release already (`already_exists`), \
            or it has not ended (`conflict`)", body = ApiError)))]
async fn make_release(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> HubResult<(StatusCode, Json<ReleaseView>)> {
    let q: Quarter = req
        .quarter
        .parse()
        .map_err(|e| SpecError::new("quarter", quarter_why(e)))?;
    let now = crate::engine::now();
    if now < q.end() {
        return Err(HubError::Conflict(format!(
            "{q} has not ended yet (it ends at {})",
            q.end()
        )));
    }
    if state.store.release(&q.to_string()).await?.is_some() {
        return Err(HubError::AlreadyExists(format!(
            "the release of {q} was made already; releases never change"
        )));
    }
    let (from, to) = (q.start(), q.end());
    let vouchers = state
        .engine
        .read_books(move |books, _, _| crate::indicators::vouchers(books, from, to))
        .await?;
    let ind = state.engine.indicators();
    ind.flush(state.store.as_ref(), now).await?;
    let release = ind
        .release(q, vouchers, now)
        .map_err(|e| HubError::Conflict(quarter_why(e)))?;
    let rec = crate::indicators::frozen(&release, now);
    match state.store.insert_release(&rec).await {
        Err(StoreError::Exists(_)) => {
            return Err(HubError::AlreadyExists(format!(
                "the release of {q} was made already; releases never change"
            )));
        }
        r => r?,
    }
    tracing::info!(quarter = %q, sha256 = %rec.sha256, "release made");
    let info = ReleaseInfo {
        quarter: rec.quarter,
        made_at: rec.made_at,
        sha256: rec.sha256,
    };
    Ok((StatusCode::CREATED, Json(release_view(&info))))
}

/// The quarter so far, as a preliminary release: the three files, made now, marked
/// preliminary and not stored (a quarter's release is made once, after it has ended).
#[utoipa::path(post, path = "/v1/releases/preliminary", request_body = ReleaseRequest,
    responses((status = 200, description = "the files of the quarter so far", body = PreliminaryRelease),
        (status = 409, description = "the quarter has no closed hour yet (`conflict`)", body = ApiError)))]
async fn preliminary_release(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<ReleaseRequest>,
) -> HubResult<Json<PreliminaryRelease>> {
    let q: Quarter = req
        .quarter
        .parse()
        .map_err(|e| SpecError::new("quarter", quarter_why(e)))?;
    let now = crate::engine::now();
    let (from, to) = (q.start(), q.end().min(now));
    let vouchers = state
        .engine
        .read_books(move |books, _, _| crate::indicators::vouchers(books, from, to))
        .await?;
    let r = state
        .engine
        .indicators()
        .preliminary(q, vouchers, now)
        .map_err(|e| HubError::Conflict(quarter_why(e)))?;
    Ok(Json(PreliminaryRelease {
        quarter: q.to_string(),
        until: r.preliminary_until.map(|t| t.0),
        json: r.to_json(),
        csv: r.to_csv(),
        html: r.to_html(),
    }))
}

//! Money: the price table, voucher programmes and grants, budgets, invoices and settlement
//! statements. Reads go to the engine's books; writes are engine commands.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use suanli_money::Month;
use suanli_proto::{
    ApiError, BudgetRequest, BudgetView, GrantRequest, GrantView, InvoiceView, PriceRequest,
    PriceView, ProgrammeBalance, ProgrammeReportView, ProgrammeSpec, ProgrammeView, QuarantineView,
    StatementView, VouchersView,
};
use suanli_store::Principal;
use suanli_types::{CenterId, Role, SpecError, TenantId, Timestamp};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::extract::{ProgrammePath, TenantPath};
use super::responses::{
    AlreadyExists, Format, FormatQuery, NoSuchCenter, NoSuchProgramme, NoSuchTenant, Tabular,
};
use super::{Access, ApiJson, ApiPath, ApiQuery, Op, bounds, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::engine::Cmd;
use crate::error::{HubError, HubResult};
use crate::money as books_view;

/// Readers of tenants' money; each tenant only its own (see [`may_read_tenant`]).
const MONEY_READERS: Access = Access::readers("sites do not read tenants' money");

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::readers("sites do not read the price table", routes!(list_prices)),
        Op::operator("only the operator sets prices", routes!(set_price)),
        Op::readers(
            "sites do not read voucher programmes",
            routes!(list_programmes),
        ),
        Op::operator(
            "only the operator creates voucher programmes",
            routes!(create_programme),
        ),
        Op::operator("only the operator grants vouchers", routes!(create_grant)),
        Op::new(
            Access::Roles(
                &[Role::Operator, Role::Supervisor],
                "only the operator and supervisors read programme reports",
            ),
            routes!(programme_report),
        ),
        Op::new(MONEY_READERS, routes!(get_budget)),
        Op::operator("only the operator sets budgets", routes!(set_budget)),
        Op::new(MONEY_READERS, routes!(get_bill)),
        Op::new(
            Access::Roles(
                &[Role::Operator, Role::Supervisor, Role::Site],
                "only the operator, supervisors and the center's site read settlement statements",
            ),
            routes!(get_statement),
        ),
        Op::new(
            Access::Roles(
                &[Role::Operator, Role::Supervisor],
                "only the operator and supervisors read quarantined money records",
            ),
            routes!(get_quarantine),
        ),
    ]
}

/// Stored money records that do not replay: the hub started without them (each is in its log
/// and counted in `suanli_money_records_quarantined`). Read from the store as it is now.
#[utoipa::path(get, path = "/v1/admin/quarantine",
    responses((status = 200, description = "the quarantined money records, in stored order",
        body = QuarantineView)))]
async fn get_quarantine(State(state): State<AppState>) -> HubResult<Json<QuarantineView>> {
    let rows = state.store.money_records().await?;
    let (_, _, quarantined) = books_view::sort_out(&rows);
    Ok(Json(books_view::quarantine_view(&quarantined)))
}

/// `YYYY-MM`, default the current month (UTC).
fn month_of(q: Option<&str>, at: Timestamp) -> HubResult<Month> {
    match q {
        None => Ok(Month::of(at)),
        Some(m) => m
            .parse()
            .map_err(|e: suanli_money::MonthParseError| HubError::BadRequest(e.to_string())),
    }
}

/// A tenant token reads only its own tenant's money.
fn may_read_tenant(p: &Principal, tenant: &TenantId) -> HubResult<()> {
    match tenant_of(p)? {
        Some(own) if own != tenant => Err(HubError::Forbidden(
            "a tenant may read only its own bills and budget",
        )),
        _ => Ok(()),
    }
}

/// Every row of the price table, past and future ones included.
#[utoipa::path(get, path = "/v1/prices", responses((status = 200, description = "the price table", body = [PriceView])))]
async fn list_prices(State(state): State<AppState>) -> HubResult<Json<Vec<PriceView>>> {
    let rows = state
        .engine
        .read_books(|books, _, at| {
            books
                .prices()
                .iter()
                .map(|r| books_view::price_view(books, r, at))
                .collect()
        })
        .await?;
    Ok(Json(rows))
}

/// Adds a row to the price table.
#[utoipa::path(put, path = "/v1/prices", request_body = PriceRequest,
    responses((status = 200, description = "the new row", body = PriceView)))]
async fn set_price(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PriceRequest>,
) -> HubResult<Json<PriceView>> {
    bounds::price_request(&req, crate::engine::now())?;
    let view = state
        .engine
        .ask(|reply| Cmd::SetPrice { req, reply })
        .await?;
    Ok(Json(view))
}

/// Voucher programmes, and grants and balances (a tenant sees only its own).
#[utoipa::path(get, path = "/v1/programmes",
    responses((status = 200, description = "programmes, grants and balances", body = VouchersView)))]
async fn list_programmes(
    State(state): State<AppState>,
    auth: Auth,
) -> HubResult<Json<VouchersView>> {
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
                                draw: books_view::draw_view(d),
                            }
                        }));
                    }
                    books_view::programme_view(books, p, own.is_none())
                })
                .collect();
            let grants = books
                .grants()
                .iter()
                .filter(|g| mine(&g.tenant))
                .map(books_view::grant_view)
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

/// Creates a voucher programme and funds its pool.
#[utoipa::path(post, path = "/v1/programmes", request_body = ProgrammeSpec,
    responses((status = 201, description = "the programme", body = ProgrammeView),
        AlreadyExists))]
async fn create_programme(
    State(state): State<AppState>,
    ApiJson(spec): ApiJson<ProgrammeSpec>,
) -> HubResult<(StatusCode, Json<ProgrammeView>)> {
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

/// Grants a tenant an amount of a programme.
#[utoipa::path(post, path = "/v1/programmes/{id}/grants", request_body = GrantRequest,
    params(ProgrammePath),
    responses((status = 201, description = "the grant", body = GrantView),
        NoSuchProgramme,
        (status = 409, description = "over the programme's budget or the tenant's cap, or the \
            tenant is not eligible (`conflict`)", body = ApiError)))]
async fn create_grant(
    State(state): State<AppState>,
    ApiPath(ProgrammePath { id }): ApiPath<ProgrammePath>,
    ApiJson(req): ApiJson<GrantRequest>,
) -> HubResult<(StatusCode, Json<GrantView>)> {
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

/// A programme's budget, grants and payouts per tenant.
#[utoipa::path(get, path = "/v1/programmes/{id}/report",
    params(ProgrammePath, FormatQuery),
    responses((status = 200, description = "the report as JSON, or as text/csv with format=csv",
            content((ProgrammeReportView = "application/json"), (String = "text/csv"))),
        NoSuchProgramme))]
async fn programme_report(
    State(state): State<AppState>,
    ApiPath(ProgrammePath { id }): ApiPath<ProgrammePath>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> HubResult<Tabular<ProgrammeReportView>> {
    let pid = suanli_money::ProgrammeId::new(id.clone());
    let report = state
        .engine
        .read_books(move |books, _, _| books.programme_report(&pid))
        .await?
        .ok_or_else(|| HubError::NotFound(format!("programme {id}")))?;
    Ok(Tabular::of(
        q.format,
        &report,
        |r| r.to_csv(),
        books_view::report_view,
    ))
}

/// A tenant's monthly budget and its use this month.
#[utoipa::path(get, path = "/v1/tenants/{id}/budget", params(TenantPath),
    responses((status = 200, description = "the budget", body = BudgetView),
        (status = 404, description = "no budget set for this tenant", body = ApiError)))]
async fn get_budget(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(TenantPath { id: tenant }): ApiPath<TenantPath>,
) -> HubResult<Json<BudgetView>> {
    may_read_tenant(&auth.0, &tenant)?;
    let t = tenant.clone();
    state
        .engine
        .read_books(move |books, _, at| {
            let b = books.budget(&t)?;
            let st = books.budget_status(&t, Month::of(at))?;
            Some(books_view::budget_view(&t, b, &st))
        })
        .await?
        .map(Json)
        .ok_or_else(|| HubError::NotFound(format!("no budget set for tenant {tenant}")))
}

/// Sets a tenant's monthly budget.
#[utoipa::path(put, path = "/v1/tenants/{id}/budget", request_body = BudgetRequest,
    params(TenantPath),
    responses((status = 200, description = "the budget", body = BudgetView), NoSuchTenant))]
async fn set_budget(
    State(state): State<AppState>,
    ApiPath(TenantPath { id: tenant }): ApiPath<TenantPath>,
    ApiJson(req): ApiJson<BudgetRequest>,
) -> HubResult<Json<BudgetView>> {
    let view = state
        .engine
        .ask(|reply| Cmd::SetBudget { tenant, req, reply })
        .await?;
    Ok(Json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BillQuery {
    /// The tenant (tenant tokens: their own, the default).
    tenant: Option<String>,
    /// `YYYY-MM` (default: the current month, UTC).
    month: Option<String>,
    /// json (default) or csv.
    #[param(inline)]
    format: Option<Format>,
}

/// A tenant's monthly invoice: one line per billed job attempt.
#[utoipa::path(get, path = "/v1/bills", params(BillQuery),
    responses((status = 200, description = "the invoice as JSON, or as text/csv with format=csv",
            content((InvoiceView = "application/json"), (String = "text/csv"))),
        NoSuchTenant))]
async fn get_bill(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<BillQuery>,
) -> HubResult<Tabular<InvoiceView>> {
    let me = &auth.0;
    let tenant = match (q.tenant, tenant_of(me)?) {
        (Some(t), _) => TenantId(t),
        (None, Some(own)) => own.clone(),
        (None, None) => return Err(SpecError::new("tenant", "name the tenant").into()),
    };
    may_read_tenant(me, &tenant)?;
    let month = month_of(q.month.as_deref(), crate::engine::now())?;
    if state.store.tenant(&tenant).await?.is_none() {
        return Err(HubError::NotFound(format!("tenant {tenant}")));
    }
    let invoice = state
        .engine
        .read_books(move |books, _, _| books.invoice(&tenant, month))
        .await?;
    Ok(Tabular::of(
        q.format,
        &invoice,
        |i| i.to_csv(),
        books_view::invoice_view,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatementQuery {
    /// The center (site tokens: their own, the default).
    center: Option<String>,
    /// `YYYY-MM` (default: the current month, UTC).
    month: Option<String>,
    /// json (default) or csv.
    #[param(inline)]
    format: Option<Format>,
}

/// A center's monthly settlement statement: what the platform owes it.
#[utoipa::path(get, path = "/v1/statements", params(StatementQuery),
    responses((status = 200, description = "the settlement statement as JSON, or as text/csv with format=csv",
            content((StatementView = "application/json"), (String = "text/csv"))),
        NoSuchCenter))]
async fn get_statement(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<StatementQuery>,
) -> HubResult<Tabular<StatementView>> {
    let me = &auth.0;
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
    let month = month_of(q.month.as_deref(), crate::engine::now())?;
    if !state.store.centers().await?.iter().any(|c| c.id == center) {
        return Err(HubError::NotFound(format!("center {center}")));
    }
    let statement = state
        .engine
        .read_books(move |books, _, _| books.statement(&center, month))
        .await?;
    Ok(Tabular::of(
        q.format,
        &statement,
        |s| s.to_csv(),
        books_view::statement_view,
    ))
}

//! `GET /v1/bills/lines/{line}/explain`: a bill line traced to what it came from: the site
//! report that ended the attempt (its audit entry, by the request id the line keeps), the price
//! row and the placement decision (docs/SUPERVISION.md, "Traceability of money"). A tenant
//! reads its own lines; another tenant's line does not exist for it.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use suanli_proto::{ApiError, AttemptView, AuditEntryView, BillExplainView};
use suanli_store::AuditFilter;
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{ApiPath, Op, tenant_of};
use crate::AppState;
use crate::auth::Auth;
use crate::error::{HubError, HubResult};
use crate::money as books_view;

pub(super) fn ops() -> Vec<Op> {
    vec![Op::readers(
        "sites do not read tenants' bills",
        routes!(explain_line),
    )]
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct LinePath {
    /// the bill line's number
    line: u64,
}

/// Where a bill line came from: the report, its audit entry, the price row and the placement.
#[utoipa::path(get, path = "/v1/bills/lines/{line}/explain", params(LinePath),
    responses((status = 200, description = "the line and its chain", body = BillExplainView),
        (status = 404, description = "no such line (or not yours) (`not_found`)", body = ApiError)))]
async fn explain_line(
    State(state): State<AppState>,
    Auth(me): Auth,
    ApiPath(LinePath { line }): ApiPath<LinePath>,
) -> HubResult<Json<BillExplainView>> {
    let found = state
        .engine
        .read_books(move |books, _, at| {
            let l = books.line(line)?.clone();
            let price = books
                .prices()
                .iter()
                .find(|r| r.id == l.unit.row)
                .map(|r| books_view::price_view(books, r, at));
            Some((l, books.voided_by(line), price))
        })
        .await?;
    let not_found = || HubError::NotFound(format!("no bill line {line}"));
    let (l, voided_by, price) = found.ok_or_else(not_found)?;
    if tenant_of(&me)?.is_some_and(|own| *own != l.usage.tenant) {
        return Err(not_found());
    }
    let u = &l.usage;
    let report_entry = match &u.report {
        Some(id) => {
            state.audit.flush().await;
            let f = AuditFilter {
                request_id: Some(id.clone()),
                action: Some("POST /v1/site/events".into()),
                limit: 1,
                ..Default::default()
            };
            state
                .store
                .audit_entries(&f)
                .await?
                .first()
                .map(AuditEntryView::from)
        }
        None => None,
    };
    let attempt = state
        .store
        .attempts(u.job)
        .await?
        .into_iter()
        .find(|a| a.attempt == u.attempt)
        .map(|a| AttemptView {
            attempt: a.attempt,
            center: a.center,
            sku: a.sku,
            cards: a.cards,
            placed_at: a.placed_at,
            started_at: a.started_at,
            ended_at: a.ended_at,
            outcome: a.outcome.map(|o| o.as_str().to_string()),
            exit_code: a.exit_code,
            card_seconds: a.card_seconds,
        });
    let placement = state
        .store
        .job(u.job)
        .await?
        .and_then(|j| j.placement)
        .filter(|p| p.attempt == u.attempt)
        .map(|p| crate::views::placement_view(&p));
    let steps = steps(
        &l,
        report_entry.as_ref(),
        attempt.as_ref(),
        placement.is_some(),
    );
    Ok(Json(BillExplainView {
        line: books_view::line_view(&l),
        voided_by,
        price,
        report_request: u.report.clone(),
        report_entry,
        attempt,
        placement,
        steps,
    }))
}

/// The chain in words.
fn steps(
    l: &suanli_money::BillLine,
    entry: Option<&AuditEntryView>,
    attempt: Option<&AttemptView>,
    placed: bool,
) -> Vec<String> {
    let u = &l.usage;
    let mut s = Vec::new();
    s.push(match placed {
        true => format!(
            "job {} attempt {} was placed at {} ({}): the placement decision below",
            u.job, u.attempt, u.center, u.sku
        ),
        false => format!(
            "job {} attempt {} ran at {} ({}); the job was placed again since, so this \
             attempt's decision is in its event history only",
            u.job, u.attempt, u.center, u.sku
        ),
    });
    s.push(match (&u.report, entry) {
        (Some(id), Some(e)) => format!(
            "the site's report (request {id}) ended it: audit entry {} at {}, by principal {} \
             (check it with `suanli audit prove {}`)",
            e.seq,
            suanli_types::Timestamp(e.time),
            e.principal,
            e.seq
        ),
        (Some(id), None) => {
            format!("the site's report (request {id}) ended it; its audit entry is not stored yet")
        }
        (None, _) => match attempt.and_then(|a| a.outcome.as_deref()) {
            Some("lost") => "no report ended it: the attempt was lost and billed to its last \
                             heartbeat"
                .to_string(),
            _ => "no report is named (a line from before reports were kept on lines, or an \
                  attempt the hub ended itself)"
                .to_string(),
        },
    });
    s.push(format!(
        "metered {} card-seconds from {} to {}; priced by price row {} at {} yuan per card-hour",
        u.card_seconds, u.started_at, u.ended_at, l.unit.row, l.unit.per_card_hour
    ));
    s.push(match &l.programme {
        Some(p) => format!(
            "gross {} yuan, subsidy {} yuan from programme {p} at {} bp, payable {} yuan",
            l.gross, l.subsidy, l.rate_bp, l.payable
        ),
        None => format!(
            "gross {} yuan, no subsidy, payable {} yuan",
            l.gross, l.payable
        ),
    });
    s
}

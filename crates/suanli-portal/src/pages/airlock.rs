//! The airlock: the release requests a data owner's tenant reviews (`/airlock`), and one
//! request (`/airlock/{id}`) with its files, the automatic checks, the reviews and its history;
//! a tenant admin of the data owner approves or rejects it there with a reason.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_proto::AirlockReview;
use suanli_proto::suanli_data::{AIRLOCK, ReleaseRequest, ReleaseState, Verdict};
use suanli_types::{Role, TenantId};

use crate::i18n::{Arg, bytes, cst};
use crate::layout::{self, Failure, encode};
use crate::pages::datasets::classification;
use crate::session::Ctx;

/// A release state's label, coloured.
pub fn release_state(ctx: &Ctx, s: ReleaseState) -> Markup {
    let id = match s {
        ReleaseState::InReview => "release-in-review",
        ReleaseState::Approved => "release-approved",
        ReleaseState::Rejected => "release-rejected",
        ReleaseState::Blocked => "release-blocked",
    };
    html! { span class=(format!("release {}", s.as_str())) { (ctx.t(id)) } }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// The operator and supervisors name the owner whose reviews they read.
    #[serde(default)]
    owner: String,
}

/// The requests the session's tenant reviews as data owner (the operator and supervisors name
/// an owner), oldest first.
pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    let r = async {
        let s = ctx.signed_in()?;
        let owner = q.owner.trim();
        let requests = match (s.is_tenant(), owner.is_empty()) {
            (true, _) => Some(ctx.client()?.airlock_list(None, None).await?.requests),
            (false, true) => None,
            (false, false) => {
                let o = TenantId::new(owner);
                Some(ctx.client()?.airlock_list(None, Some(&o)).await?.requests)
            }
        };
        let (l_job, l_tenant, l_data, l_files, l_state, l_created) = (
            ctx.t("col-job"),
            ctx.t("col-tenant"),
            ctx.t("col-datasets"),
            ctx.t("col-files"),
            ctx.t("col-state"),
            ctx.t("col-submitted"),
        );
        let body = html! {
            p.note { (ctx.t("airlock-intro")) }
            @if !s.is_tenant() {
                form.filters method="get" action="/airlock" {
                    label for="owner" { (ctx.t("airlock-owner")) }
                    input id="owner" name="owner" value=(owner) required;
                    button type="submit" { (ctx.t("jobs-filter-button")) }
                }
            }
            @match &requests {
                None => {}
                Some(rs) if rs.is_empty() => { p.empty { (ctx.t("airlock-none")) } }
                Some(rs) => {
                    table.airlock {
                        thead { tr {
                            th scope="col" class="num" { (ctx.t("col-id")) }
                            th scope="col" { (ctx.t("col-job")) }
                            th scope="col" { (ctx.t("col-tenant")) }
                            th scope="col" { (ctx.t("col-datasets")) }
                            th scope="col" class="num" { (ctx.t("col-files")) }
                            th scope="col" { (ctx.t("col-state")) }
                            th scope="col" { (ctx.t("col-submitted")) }
                        } }
                        tbody {
                            // Those waiting for a review first, then the newest.
                            @for r in waiting_first(rs) {
                                tr {
                                    th scope="row" class="num" { a href=(format!("/airlock/{}", r.id)) { (r.id) } }
                                    td data-label=(l_job) { (r.job.0) }
                                    td data-label=(l_tenant) { (r.tenant) " · " (r.requester) }
                                    td data-label=(l_data) { (r.datasets.join(", ")) " " (classification(&ctx, r.classification)) }
                                    td.num data-label=(l_files) { (r.files.len()) }
                                    td data-label=(l_state) { (release_state(&ctx, r.state)) }
                                    td data-label=(l_created) { time { (cst(r.created_at)) } }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(layout::render(&ctx, &ctx.t("airlock-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

/// In review first, then the rest; newest first within each.
fn waiting_first(rs: &[ReleaseRequest]) -> Vec<&ReleaseRequest> {
    let mut v: Vec<&ReleaseRequest> = rs.iter().collect();
    v.sort_by_key(|r| (r.state != ReleaseState::InReview, std::cmp::Reverse(r.id)));
    v
}

/// One request.
pub async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let r = async {
        let id = id.parse::<i64>().map_err(|_| Failure::NotFound)?;
        request_page(&ctx, id, None, "").await
    }
    .await;
    layout::finish(&ctx, r)
}

/// The page of request `id`; `refused`: what the hub said to a review (the form keeps `reason`).
async fn request_page(
    ctx: &Ctx,
    id: i64,
    refused: Option<String>,
    reason: &str,
) -> Result<Response, Failure> {
    let r = ctx.client()?.airlock_show(id).await?;
    let s = ctx.signed_in()?;
    let reviewer = r.state == ReleaseState::InReview
        && s.who.role == Role::TenantAdmin
        && s.who.tenant.as_ref() == Some(&r.owner);
    let requester = s.who.tenant.as_ref() == Some(&r.tenant);
    let checks: Vec<_> = r
        .history
        .iter()
        .filter(|h| h.actor == AIRLOCK && h.what.starts_with("check"))
        .collect();
    let title = ctx
        .lang
        .ta("airlock-request-title", &[("id", Arg::Num(r.id))]);
    let body = html! {
        @if let Some(e) = &refused { p.error role="alert" { (e) } }
        dl.facts {
            dt { (ctx.t("col-state")) } dd #release-state { (release_state(ctx, r.state)) }
            dt { (ctx.t("col-job")) } dd { a href=(format!("/jobs/{}", r.job.0)) { (r.job.0) } }
            dt { (ctx.t("airlock-requester")) } dd { (r.requester) " · " (r.tenant) }
            dt { (ctx.t("airlock-justification")) } dd { (r.justification) }
            dt { (ctx.t("col-datasets")) } dd { (r.datasets.join(", ")) " " (classification(ctx, r.classification)) }
            dt { (ctx.t("col-owner")) } dd { (r.owner) }
            dt { (ctx.t("airlock-approvals")) } dd {
                (ctx.lang.ta("airlock-approvals-count", &[
                    ("n", Arg::Num(r.approvers().len() as i64)),
                    ("needed", Arg::Num(r.approvals_needed() as i64)),
                ]))
            }
            dt { (ctx.t("col-submitted")) } dd { (cst(r.created_at)) }
        }
        section aria-labelledby="files-h" {
            h2 #files-h { (ctx.t("airlock-files")) }
            table.release-files {
                thead { tr {
                    th scope="col" { (ctx.t("col-path")) }
                    th scope="col" class="num" { (ctx.t("col-size")) }
                    th scope="col" { (ctx.t("col-sha256-file")) }
                    @if requester && r.state == ReleaseState::Approved { th scope="col" { (ctx.t("col-download")) } }
                } }
                tbody {
                    @for f in &r.files {
                        tr {
                            th scope="row" { code { (f.path) } }
                            td.num { (bytes(f.size)) }
                            td.hash { code { (f.sha256) } }
                            @if requester && r.state == ReleaseState::Approved {
                                td { a href=(format!("/jobs/{}/output?path={}", r.job.0, encode(&f.path))) download { (ctx.t("outputs-download")) } }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="checks-h" {
            h2 #checks-h { (ctx.t("airlock-checks")) }
            @if r.breaches.is_empty() {
                p.ok { "✓ " (ctx.t("airlock-checks-passed")) }
            } @else {
                p.error { (ctx.t("airlock-checks-failed")) }
                table.breaches {
                    thead { tr {
                        th scope="col" { (ctx.t("airlock-rule")) }
                        th scope="col" { (ctx.t("airlock-detail")) }
                    } }
                    tbody {
                        @for b in &r.breaches { tr { th scope="row" { code { (b.rule) } } td { (b.detail) } } }
                    }
                }
            }
            @if !checks.is_empty() {
                ul.checks { @for c in &checks { li { (c.what) } } }
            }
        }
        section aria-labelledby="reviews-h" {
            h2 #reviews-h { (ctx.t("airlock-reviews")) }
            @if r.reviews.is_empty() {
                p.empty { (ctx.t("airlock-no-reviews")) }
            } @else {
                table.reviews {
                    thead { tr {
                        th scope="col" { (ctx.t("airlock-reviewer")) }
                        th scope="col" { (ctx.t("airlock-verdict")) }
                        th scope="col" { (ctx.t("models-reason")) }
                        th scope="col" { (ctx.t("col-time")) }
                    } }
                    tbody {
                        @for v in &r.reviews {
                            tr {
                                th scope="row" { (v.reviewer) }
                                td { (verdict(ctx, v.verdict)) }
                                td { (v.reason) }
                                td.when { (cst(v.at)) }
                            }
                        }
                    }
                }
            }
            @if reviewer { (review_form(ctx, &r, s.who.id, reason)) }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { (ctx.t("airlock-history")) }
            ol.timeline.release-history {
                @for h in &r.history {
                    li { time { (cst(h.at)) } " " strong { (h.actor) } " " span.msg { (h.what) } }
                }
            }
        }
    };
    let status = match refused {
        Some(_) => StatusCode::CONFLICT,
        None => StatusCode::OK,
    };
    Ok((status, layout::page(ctx, &title, body)).into_response())
}

fn verdict(ctx: &Ctx, v: Verdict) -> Markup {
    match v {
        Verdict::Approve => html! { span.release.approved { (ctx.t("verdict-approve")) } },
        Verdict::Reject => html! { span.release.rejected { (ctx.t("verdict-reject")) } },
    }
}

/// The review form for a tenant admin of the owner; a note instead for the requester and for
/// who has reviewed it already (the hub refuses both).
fn review_form(ctx: &Ctx, r: &ReleaseRequest, me: i64, reason: &str) -> Markup {
    html! {
        @if r.requester_id == me {
            p.note { (ctx.t("airlock-own-request")) }
        } @else if r.reviews.iter().any(|v| v.reviewer_id == me) {
            p.note { (ctx.t("airlock-reviewed-already")) }
        } @else {
            form.review.flag-action method="post" action=(format!("/airlock/{}/review", r.id)) {
                (ctx.csrf_field())
                label for="reason" { (ctx.t("airlock-reason")) }
                input id="reason" name="reason" value=(reason) required maxlength="500";
                button.primary type="submit" name="verdict" value="approve" { (ctx.t("airlock-approve")) }
                button.danger type="submit" name="verdict" value="reject" { (ctx.t("airlock-reject")) }
            }
            @if r.approvals_needed() > 1 {
                p.note { (ctx.t("airlock-two-reviewers")) }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    reason: String,
}

/// Approves or rejects a request; a refusal shows the request again with the hub's words.
pub async fn review(ctx: Ctx, Path(id): Path<String>, Form(f): Form<ReviewForm>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        let id = id.parse::<i64>().map_err(|_| Failure::NotFound)?;
        let verdict = match f.verdict.as_str() {
            "approve" => Verdict::Approve,
            "reject" => Verdict::Reject,
            other => {
                return Err(Failure::BadForm(ctx.lang.ta(
                    "airlock-bad-verdict",
                    &[("verdict", Arg::Str(other.to_string()))],
                )));
            }
        };
        let req = AirlockReview {
            verdict,
            reason: f.reason.trim().to_string(),
        };
        match ctx.client()?.airlock_review(id, &req).await {
            Ok(_) => Ok(Redirect::to(&format!("/airlock/{id}")).into_response()),
            Err(e) => match Failure::from(e) {
                Failure::Api(e) if e.code().is_some() => {
                    let said = layout::api_message(&ctx, &e);
                    request_page(&ctx, id, Some(said), &f.reason).await
                }
                other => Err(other),
            },
        }
    }
    .await;
    layout::finish(&ctx, r)
}

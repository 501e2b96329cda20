//! The model library: every model the signed-in principal may see with its adaptation matrix
//! (chip SKU x stack version, coloured by status, throughput in the cell), and for the operator
//! the review queue of measured records, accepted or rejected with a reason.

use axum::Form;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_proto::suanli_models::{CertState, Status, Verdict};
use suanli_proto::{CertificationList, ReviewRequest};

use crate::layout::{self, Failure};
use crate::pages::each_at_once;
use crate::session::Ctx;

/// How many models the page shows (each costs one call for its records).
const MODELS_SHOWN: usize = 50;
/// Calls for the models' records in flight at once.
const READS_AT_ONCE: usize = 8;

pub async fn library(ctx: Ctx) -> Response {
    let r = async {
        let session = ctx.signed_in()?;
        let mut models = ctx.client()?.models().await?.models;
        models.sort_by(|a, b| (&a.model.name, &a.model.revision).cmp(&(&b.model.name, &b.model.revision)));
        models.truncate(MODELS_SHOWN);
        // Each model's records, a few calls in flight at once (as the desk's pages read).
        let lists: Vec<CertificationList> = each_at_once(&models, READS_AT_ONCE, |m| {
            let (c, id) = (ctx.client()?, m.id);
            Ok(async move { c.certifications(id).await })
        })
        .await?
        .into_iter()
        .collect::<Result<_, _>>()?;
        let operator = session.is_operator();
        let pending: Vec<_> = lists
            .iter()
            .zip(&models)
            .flat_map(|(l, m)| {
                l.certifications
                    .iter()
                    .filter(|c| c.state == CertState::Pending && !c.stale)
                    .map(move |c| (m, c))
            })
            .collect();
        let body = html! {
            @if models.is_empty() {
                p { (ctx.t("models-empty")) }
            }
            @if operator && !pending.is_empty() {
                section aria-labelledby="review-h" {
                    h2 #review-h { (ctx.t("models-review-title")) }
                    table {
                        thead { tr {
                            th scope="col" { (ctx.t("col-model")) }
                            th scope="col" { (ctx.t("col-sku")) }
                            th scope="col" { (ctx.t("col-center")) }
                            th scope="col" { (ctx.t("col-statuses")) }
                            th scope="col" class="num" { (ctx.t("col-throughput")) }
                            th scope="col" { (ctx.t("col-actions")) }
                        } }
                        tbody {
                            @for (m, c) in &pending {
                                @let o = c.outcome.as_ref();
                                tr {
                                    th scope="row" { (m.model.name) "@" (m.model.revision) }
                                    td { (c.sku) " / " (c.stack) " " (c.stack_version) }
                                    td { (c.center) }
                                    td {
                                        @if let Some(o) = o {
                                            (statuses(&ctx, o.statuses.functional, o.statuses.performance, o.statuses.precision))
                                            @if !o.note.is_empty() { br; small { (o.note) } }
                                        }
                                    }
                                    td.num { (throughput(o.and_then(|o| o.throughput))) }
                                    td {
                                        form.inline method="post" action=(format!("/certifications/{}/review", c.id)) {
                                            (ctx.csrf_field())
                                            label for=(format!("reason-{}", c.id)) { (ctx.t("models-reason")) }
                                            " "
                                            input id=(format!("reason-{}", c.id)) name="reason" required minlength="1" maxlength="500";
                                            " "
                                            button type="submit" name="verdict" value="accept" { (ctx.t("models-accept")) }
                                            " "
                                            button.danger type="submit" name="verdict" value="reject" { (ctx.t("models-reject")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @for (m, list) in models.iter().zip(&lists) {
                @let id = format!("model-{}", m.id);
                section aria-labelledby=(id) {
                    h2 #(id) { (m.model.name) "@" (m.model.revision) }
                    p {
                        (m.model.task) " · " (m.model.framework) " · "
                        (ctx.t("models-unit")) " " (list.unit)
                        @if let Some(r) = m.model.reference_throughput { " · " (ctx.t("models-reference")) " " (throughput(Some(r))) }
                    }
                    @if list.matrix.is_empty() {
                        p { small { (ctx.t("models-no-records")) } }
                    } @else {
                        table {
                            caption { (ctx.t("models-matrix")) }
                            thead { tr {
                                th scope="col" { (ctx.t("col-chip")) }
                                th scope="col" { (ctx.t("col-stack")) }
                                th scope="col" { (ctx.t("col-state")) }
                                th scope="col" { (ctx.t("col-statuses")) }
                                th scope="col" class="num" { (ctx.t("col-throughput")) }
                            } }
                            tbody {
                                @for cell in &list.matrix {
                                    tr {
                                        th scope="row" { (cell.sku) }
                                        td { (cell.stack) " " (cell.stack_version) }
                                        td {
                                            span class=(format!("state {}", state_class(cell.state))) { (ctx.t(state_key(cell.state))) }
                                            @if cell.stale { " " small { (ctx.t("models-stale")) } }
                                        }
                                        td {
                                            @if let Some(s) = &cell.statuses {
                                                (statuses(&ctx, s.functional, s.performance, s.precision))
                                            }
                                        }
                                        td.num { (throughput(cell.throughput)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { small { (ctx.t("models-help")) } }
        };
        Ok(layout::render(&ctx, &ctx.t("models-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    verdict: String,
    #[serde(default)]
    reason: String,
}

pub async fn review(ctx: Ctx, Path(id): Path<i64>, Form(f): Form<ReviewForm>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        if !ctx.signed_in()?.is_operator() {
            return Err(Failure::Forbidden);
        }
        let verdict = match f.verdict.as_str() {
            "accept" => Verdict::Accept,
            "reject" => Verdict::Reject,
            other => {
                return Err(Failure::BadForm(format!(
                    "verdict {other:?}: accept or reject"
                )));
            }
        };
        let req = ReviewRequest {
            verdict,
            reason: f.reason.trim().to_string(),
        };
        ctx.client()?.review_certification(id, &req).await?;
        Ok(Redirect::to("/models").into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

/// The three statuses as words, each coloured.
fn statuses(ctx: &Ctx, functional: Status, performance: Status, precision: Status) -> Markup {
    html! {
        @for (label, s) in [("models-functional", functional), ("models-performance", performance), ("models-precision", precision)] {
            span class=(format!("status {}", status_class(s))) { (ctx.t(label)) " " (s.as_str()) }
            " "
        }
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Ok => "online",
        Status::Partial => "draining",
        Status::Nok => "offline",
    }
}

fn state_class(s: CertState) -> &'static str {
    match s {
        CertState::Accepted => "succeeded",
        CertState::Rejected => "failed",
        CertState::Pending | CertState::Running => "queued",
    }
}

fn state_key(s: CertState) -> &'static str {
    match s {
        CertState::Running => "models-running",
        CertState::Pending => "models-pending",
        CertState::Accepted => "models-accepted",
        CertState::Rejected => "models-rejected",
    }
}

fn throughput(t: Option<f64>) -> String {
    t.map_or_else(|| "—".into(), |t| format!("{t:.1}"))
}

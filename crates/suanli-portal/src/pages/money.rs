//! Bills: a month's invoice lines (each traced to its job, center, price row and voucher), the
//! subsidy and what is payable, and the same as CSV.

use axum::extract::Query;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_proto::InvoiceView;

use crate::i18n::{Arg, cst, yuan};
use crate::layout::{self, Failure};
use crate::session::Ctx;

#[derive(Deserialize, Default)]
pub struct BillQuery {
    /// `YYYY-MM`; the hub's current month when absent.
    #[serde(default)]
    month: String,
    /// The operator names the tenant; a tenant's own token needs none.
    #[serde(default)]
    tenant: String,
}

impl BillQuery {
    fn month(&self) -> Option<&str> {
        Some(self.month.trim()).filter(|m| !m.is_empty())
    }
    fn tenant(&self) -> Option<&str> {
        Some(self.tenant.trim()).filter(|m| !m.is_empty())
    }
}

pub async fn bills(ctx: Ctx, Query(q): Query<BillQuery>) -> Response {
    let r = async {
        let s = ctx.signed_in()?;
        if !s.is_tenant() && q.tenant().is_none() {
            return Ok(layout::render(
                &ctx,
                &ctx.t("bills-title"),
                pick_tenant(&ctx),
            ));
        }
        let inv = ctx.client()?.bill(q.tenant(), q.month()).await?;
        let title = ctx.lang.ta(
            "bills-month",
            &[
                ("tenant", Arg::Str(inv.tenant.to_string())),
                ("month", Arg::Str(inv.month.clone())),
            ],
        );
        Ok(layout::render(&ctx, &title, body(&ctx, &inv, &q)))
    }
    .await;
    layout::finish(&ctx, r)
}

pub async fn bills_csv(ctx: Ctx, Query(q): Query<BillQuery>) -> Response {
    let r = async {
        let csv = ctx.client()?.bill_csv(q.tenant(), q.month()).await?;
        Ok::<_, Failure>(
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"bill.csv\"",
                    ),
                ],
                csv,
            )
                .into_response(),
        )
    }
    .await;
    layout::finish(&ctx, r)
}

fn pick_tenant(ctx: &Ctx) -> Markup {
    html! {
        form.filters method="get" action="/bills" {
            label for="tenant" { (ctx.t("bills-tenant")) }
            input id="tenant" name="tenant" required;
            label for="month" { (ctx.t("bills-month-field")) }
            input id="month" name="month" placeholder="2026-12" size="8";
            button type="submit" { (ctx.t("bills-show")) }
        }
    }
}

fn body(ctx: &Ctx, inv: &InvoiceView, q: &BillQuery) -> Markup {
    let t = &inv.totals;
    let csv = format!(
        "/bills.csv?month={}&tenant={}",
        layout::encode(&inv.month),
        layout::encode(q.tenant().unwrap_or(""))
    );
    html! {
        dl.facts.totals {
            dt { (ctx.t("col-gross")) } dd { (yuan(t.gross)) }
            dt { (ctx.t("col-subsidy")) } dd { (yuan(t.subsidy)) }
            dt { (ctx.t("col-payable")) } dd.strong { (yuan(t.payable)) }
            dt { (ctx.t("col-card-hours")) } dd { (format!("{:.2}", t.card_seconds as f64 / 3600.0)) }
        }
        p { a href=(csv) download { (ctx.t("bills-csv")) } }
        @if inv.lines.is_empty() {
            p.empty { (ctx.t("bills-none")) }
        } @else {
            table.bill {
                thead { tr {
                    th scope="col" class="num" { (ctx.t("col-line")) }
                    th scope="col" { (ctx.t("col-job")) }
                    th scope="col" { (ctx.t("col-center")) }
                    th scope="col" { (ctx.t("col-chips")) }
                    th scope="col" { (ctx.t("col-ended")) }
                    th scope="col" class="num" { (ctx.t("col-card-hours")) }
                    th scope="col" class="num" { (ctx.t("col-unit-price")) }
                    th scope="col" class="num" { (ctx.t("col-gross")) }
                    th scope="col" class="num" { (ctx.t("col-subsidy")) }
                    th scope="col" class="num" { (ctx.t("col-payable")) }
                } }
                tbody {
                    @for l in &inv.lines {
                        tr {
                            td.num { (l.line) }
                            td { a href=(format!("/jobs/{}", l.job.0)) { (l.job.0) " #" (l.attempt) } }
                            td { (l.center) }
                            td { (l.sku) " × " (l.cards) }
                            td { (cst(l.ended_at)) }
                            td.num { (format!("{:.2}", l.card_seconds as f64 / 3600.0)) }
                            td.num { (yuan(l.unit_price)) small { " (" (ctx.t("bills-price-row")) " " (l.price_row) ")" } }
                            td.num { (yuan(l.gross)) }
                            td.num {
                                (yuan(l.subsidy))
                                @if let Some(p) = &l.programme { br; small { (p) } }
                            }
                            td.num { (yuan(l.payable)) }
                        }
                    }
                }
            }
        }
    }
}

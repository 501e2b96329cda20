//! The operator's centers: status, free cards, heartbeats, drain and undrain.

use axum::Form;
use axum::extract::Path;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use crate::i18n::cst;
use crate::layout::{self, Failure};
use crate::pages::network::status;
use crate::session::Ctx;

pub async fn centers(ctx: Ctx) -> Response {
    let r = async {
        if !ctx.signed_in()?.is_operator() {
            return Err(Failure::Forbidden);
        }
        let centers = ctx.client()?.centers().await?;
        let body = html! {
            table {
                thead { tr {
                    th scope="col" { (ctx.t("col-center")) }
                    th scope="col" { (ctx.t("col-city")) }
                    th scope="col" { (ctx.t("col-status")) }
                    th scope="col" class="num" { (ctx.t("col-free-cards")) }
                    th scope="col" { (ctx.t("col-heartbeat")) }
                    th scope="col" { (ctx.t("col-actions")) }
                } }
                tbody {
                    @for c in &centers {
                        @let free: u64 = c.pools.iter().map(|p| p.free_cards).sum();
                        @let total: u64 = c.pools.iter().map(|p| p.total_cards).sum();
                        tr {
                            th scope="row" { (c.name) br; small { (c.id) } }
                            td { (c.city) }
                            td { (status(&ctx, &c.status)) }
                            td.num { (free) " / " (total) }
                            td { (c.last_heartbeat.map(cst).unwrap_or_else(|| "—".into())) }
                            td {
                                @if c.status == "drained" {
                                    form.inline method="post" action=(format!("/centers/{}/undrain", c.id)) {
                                        (ctx.csrf_field())
                                        button type="submit" { (ctx.t("centers-undrain")) }
                                    }
                                } @else {
                                    form.inline method="post" action=(format!("/centers/{}/drain", c.id)) {
                                        (ctx.csrf_field())
                                        button.danger type="submit" { (ctx.t("centers-drain")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { small { (ctx.t("centers-drain-help")) } }
        };
        Ok(layout::render(&ctx, &ctx.t("centers-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn drain(ctx: Ctx, Path(id): Path<String>, Form(f): Form<CsrfOnly>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        ctx.client()?.drain(&id, false).await?;
        Ok(Redirect::to("/centers").into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

pub async fn undrain(ctx: Ctx, Path(id): Path<String>, Form(f): Form<CsrfOnly>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        ctx.client()?.undrain(&id).await?;
        Ok(Redirect::to("/centers").into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

//! The datasets the signed-in principal may see: where each resides, how it is classified,
//! whether jobs on it keep network egress, and what the principal's tenant may do with it.

use axum::response::Response;
use maud::{Markup, html};
use suanli_proto::DatasetView;
use suanli_proto::suanli_data::Classification;

use crate::i18n::{Arg, bytes, cst};
use crate::layout;
use crate::session::Ctx;

/// A classification's label, coloured.
pub fn classification(ctx: &Ctx, c: Classification) -> Markup {
    let id = match c {
        Classification::Public => "classification-public",
        Classification::Restricted => "classification-restricted",
        Classification::Sensitive => "classification-sensitive",
    };
    html! { span class=(format!("classification {}", c.as_str())) { (ctx.t(id)) } }
}

/// What the caller's tenant may do with `d`, in words (the hub's word when it is a new one).
fn access(ctx: &Ctx, d: &DatasetView) -> String {
    match (d.access.as_str(), d.grant_expires_at) {
        ("owner", _) => ctx.t("access-owner"),
        ("public", _) => ctx.t("access-public"),
        ("granted", Some(until)) => ctx
            .lang
            .ta("access-granted-until", &[("until", Arg::Str(cst(until)))]),
        ("granted", None) => ctx.t("access-granted"),
        ("needs a grant", _) => ctx.t("access-needs-grant"),
        (other, _) => other.to_string(),
    }
}

pub async fn list(ctx: Ctx) -> Response {
    let r = async {
        let mut datasets = ctx.client()?.datasets().await?.datasets;
        datasets.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        let (l_owner, l_class, l_homes, l_size, l_egress, l_access) = (
            ctx.t("col-owner"),
            ctx.t("col-classification"),
            ctx.t("col-homes"),
            ctx.t("col-size"),
            ctx.t("col-egress"),
            ctx.t("col-access"),
        );
        let body = html! {
            p.note { (ctx.t("datasets-intro")) }
            @if datasets.is_empty() {
                p.empty { (ctx.t("datasets-none")) }
            } @else {
                table.datasets {
                    thead { tr {
                        th scope="col" { (ctx.t("col-name")) }
                        th scope="col" { (l_owner) }
                        th scope="col" { (l_class) }
                        th scope="col" { (l_homes) }
                        th scope="col" class="num" { (l_size) }
                        th scope="col" { (l_egress) }
                        th scope="col" { (l_access) }
                    } }
                    tbody {
                        @for d in &datasets {
                            tr {
                                th scope="row" {
                                    code { (d.spec.name) }
                                    @if !d.spec.description.is_empty() { br; small { (d.spec.description) } }
                                }
                                td data-label=(l_owner) { (d.owner) }
                                td data-label=(l_class) { (classification(&ctx, d.spec.classification)) }
                                td data-label=(l_homes) {
                                    (d.spec.homes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))
                                }
                                td.num data-label=(l_size) { (bytes(d.spec.size_bytes)) }
                                td data-label=(l_egress) {
                                    @if d.spec.policy.egress {
                                        (ctx.t("datasets-egress-allowed"))
                                    } @else {
                                        span.denied { (ctx.t("datasets-egress-cut")) }
                                    }
                                }
                                td data-label=(l_access) { (access(&ctx, d)) }
                            }
                        }
                    }
                }
            }
            p { small { (ctx.t("datasets-help")) } }
        };
        Ok(layout::render(&ctx, &ctx.t("datasets-title"), body))
    }
    .await;
    layout::finish(&ctx, r)
}

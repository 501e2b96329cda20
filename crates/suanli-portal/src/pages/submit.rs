//! Submitting: a form (chip, cards, nodes, stack, wall time, price cap, command) or a pasted
//! `#SBATCH` script; "quote" shows every center's price, subsidy and expected start before
//! anything is submitted, "submit" submits and opens the job's page. A refused form comes back
//! with everything typed still in it and the hub's reason at the top.

use std::collections::BTreeSet;

use axum::Form;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_proto::{CenterView, QuoteView};
use suanli_types::{ChipRequest, JobSpec, Money, sbatch};

use crate::i18n::{Arg, cst, yuan};
use crate::layout::{self, Failure};
use crate::session::Ctx;

/// What the form holds (all text, so a refused form comes back as typed).
#[derive(Deserialize, Clone, Debug)]
pub struct SubmitForm {
    #[serde(default)]
    csrf: String,
    /// One form's idempotency key: submitting it twice makes one job.
    #[serde(default)]
    key: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    name: String,
    /// `""` (any), `sku:NAME` or `vendor:NAME`.
    #[serde(default)]
    chip: String,
    #[serde(default = "one")]
    cards: String,
    #[serde(default = "one")]
    nodes: String,
    #[serde(default)]
    stack: String,
    #[serde(default)]
    walltime: String,
    #[serde(default)]
    max_price: String,
    #[serde(default)]
    command: String,
    /// A whole `#SBATCH` script: when given, the fields above are not used.
    #[serde(default)]
    script: String,
}

fn one() -> String {
    "1".into()
}

impl Default for SubmitForm {
    fn default() -> SubmitForm {
        SubmitForm {
            csrf: String::new(),
            key: String::new(),
            action: String::new(),
            name: String::new(),
            chip: String::new(),
            cards: one(),
            nodes: one(),
            stack: String::new(),
            walltime: "1h".into(),
            max_price: String::new(),
            command: String::new(),
            script: String::new(),
        }
    }
}

pub async fn form(ctx: Ctx) -> Response {
    let r = async {
        ctx.signed_in()?;
        let centers = ctx.client()?.centers().await?;
        let f = SubmitForm {
            key: suanli_client::new_idempotency_key(),
            ..SubmitForm::default()
        };
        Ok(layout::render(
            &ctx,
            &ctx.t("submit-title"),
            form_body(&ctx, &centers, &f, None, None),
        ))
    }
    .await;
    layout::finish(&ctx, r)
}

pub async fn post(ctx: Ctx, Form(f): Form<SubmitForm>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        let client = ctx.client()?;
        let centers = client.centers().await?;
        let again = |error: String, quote: Option<QuoteView>| {
            let status = match quote.is_some() {
                true => axum::http::StatusCode::OK,
                false => axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            };
            let error = Some(error).filter(|e| !e.is_empty());
            (
                status,
                layout::page(
                    &ctx,
                    &ctx.t("submit-title"),
                    form_body(&ctx, &centers, &f, error, quote.as_ref()),
                ),
            )
                .into_response()
        };
        let spec = match spec_of(&ctx, &f) {
            Ok(s) => s,
            Err(e) => return Ok(again(e, None)),
        };
        match f.action.as_str() {
            "quote" => match client.quote(&spec).await {
                Ok(q) => Ok(again(String::new(), Some(q))),
                Err(e) => Ok(again(layout::api_message(&ctx, &e), None)),
            },
            _ => match client.submit_with_key(&spec, &f.key).await {
                Ok(job) => Ok(Redirect::to(&format!("/jobs/{}", job.summary.id.0)).into_response()),
                Err(e) => match Failure::from(e) {
                    Failure::Api(e) => Ok(again(layout::api_message(&ctx, &e), None)),
                    other => Err(other),
                },
            },
        }
    }
    .await;
    layout::finish(&ctx, r)
}

/// The job the form describes; the error names the field.
fn spec_of(ctx: &Ctx, f: &SubmitForm) -> Result<JobSpec, String> {
    let field = |id: &str, why: String| {
        ctx.lang.ta(
            "submit-bad-field",
            &[("field", Arg::Str(ctx.t(id))), ("why", Arg::Str(why))],
        )
    };
    if !f.script.trim().is_empty() {
        let (spec, _warnings) = sbatch::parse(&f.script, "portal-job")
            .map_err(|e| field("submit-script", e.to_string()))?;
        return Ok(spec);
    }
    let mut spec = JobSpec::new(f.name.trim(), f.command.clone());
    spec.cards_per_node = f
        .cards
        .trim()
        .parse()
        .map_err(|_| field("submit-cards", ctx.t("submit-need-number")))?;
    spec.nodes = f
        .nodes
        .trim()
        .parse()
        .map_err(|_| field("submit-nodes", ctx.t("submit-need-number")))?;
    spec.chips = match f.chip.split_once(':') {
        Some(("sku", s)) => ChipRequest {
            skus: vec![s.to_string()],
            ..ChipRequest::default()
        },
        Some(("vendor", v)) => ChipRequest {
            vendor: Some(v.to_string()),
            ..ChipRequest::default()
        },
        _ => ChipRequest::default(),
    };
    if !f.stack.trim().is_empty() {
        spec.stack = f.stack.trim().to_string();
    }
    if !f.walltime.trim().is_empty() {
        spec.walltime =
            sbatch::parse_flag_duration(&f.walltime).map_err(|e| field("submit-walltime", e))?;
    }
    if !f.max_price.trim().is_empty() {
        spec.max_price_per_card_hour = Some(
            f.max_price
                .trim()
                .parse::<Money>()
                .map_err(|e| field("submit-max-price", e.to_string()))?,
        );
    }
    Ok(spec)
}

fn form_body(
    ctx: &Ctx,
    centers: &[CenterView],
    f: &SubmitForm,
    error: Option<String>,
    quote: Option<&QuoteView>,
) -> Markup {
    let skus: BTreeSet<&str> = centers
        .iter()
        .flat_map(|c| &c.pools)
        .map(|p| p.sku.as_str())
        .collect();
    let vendors: BTreeSet<&str> = centers
        .iter()
        .flat_map(|c| &c.pools)
        .map(|p| p.vendor.as_str())
        .collect();
    let stacks: BTreeSet<&str> = centers
        .iter()
        .flat_map(|c| c.stacks.keys())
        .map(String::as_str)
        .collect();
    html! {
        @if let Some(e) = error {
            p.error role="alert" id="form-error" { (e) }
        }
        @if let Some(q) = quote {
            section.quote aria-live="polite" {
                h2 { (ctx.t("quote-title")) }
                p { (ctx.lang.ta("quote-intro", &[("walltime", Arg::Str(ctx.lang.duration(q.walltime_secs)))])) }
                @if q.candidates.is_empty() {
                    p.empty { (ctx.t("quote-none")) }
                } @else {
                    table.candidates {
                        thead { tr {
                            th scope="col" { (ctx.t("col-center")) }
                            th scope="col" { (ctx.t("col-chip")) }
                            th scope="col" class="num" { (ctx.t("col-gross")) }
                            th scope="col" class="num" { (ctx.t("col-subsidy")) }
                            th scope="col" class="num" { (ctx.t("col-payable")) }
                            th scope="col" { (ctx.t("col-expected-start")) }
                        } }
                        tbody {
                            @for (i, c) in q.candidates.iter().enumerate() {
                                tr class=[(i == 0).then_some("chosen")] {
                                    th scope="row" { (c.center) }
                                    td { (c.sku) }
                                    td.num { (yuan(c.gross.unwrap_or(c.cost_total))) }
                                    td.num { (yuan(c.subsidy.unwrap_or(Money::ZERO))) }
                                    td.num { (yuan(c.payable.unwrap_or(c.cost_total))) }
                                    td { (cst(c.expected_start)) }
                                }
                            }
                        }
                    }
                }
                @if !q.rejected.is_empty() {
                    h3 { (ctx.t("job-rejected")) }
                    ul.rejected {
                        @for r in &q.rejected { li { strong { (r.center) } ": " (r.reason) } }
                    }
                }
            }
        }
        form.card method="post" action="/submit" {
            (ctx.csrf_field())
            input type="hidden" name="key" value=(f.key);
            div.grid {
                div {
                    label for="name" { (ctx.t("submit-name")) }
                    input id="name" name="name" value=(f.name) maxlength="128";
                }
                div {
                    label for="chip" { (ctx.t("submit-chip")) }
                    select id="chip" name="chip" {
                        option value="" selected[f.chip.is_empty()] { (ctx.t("submit-any-chip")) }
                        optgroup label=(ctx.t("submit-by-vendor")) {
                            @for v in &vendors {
                                @let val = format!("vendor:{v}");
                                option value=(val) selected[f.chip == val] { (v) }
                            }
                        }
                        optgroup label=(ctx.t("submit-by-sku")) {
                            @for s in &skus {
                                @let val = format!("sku:{s}");
                                option value=(val) selected[f.chip == val] { (s) }
                            }
                        }
                    }
                }
                div {
                    label for="cards" { (ctx.t("submit-cards")) }
                    input id="cards" name="cards" value=(f.cards) inputmode="numeric" size="4";
                }
                div {
                    label for="nodes" { (ctx.t("submit-nodes")) }
                    input id="nodes" name="nodes" value=(f.nodes) inputmode="numeric" size="4";
                }
                div {
                    label for="stack" { (ctx.t("submit-stack")) }
                    select id="stack" name="stack" {
                        option value="" selected[f.stack.is_empty()] { (ctx.t("submit-any-stack")) }
                        @for s in &stacks {
                            option value=(s) selected[f.stack == *s] { (s) }
                        }
                    }
                }
                div {
                    label for="walltime" { (ctx.t("submit-walltime")) }
                    input id="walltime" name="walltime" value=(f.walltime) size="8"
                        aria-describedby="walltime-help";
                    small id="walltime-help" { (ctx.t("submit-walltime-help")) }
                }
                div {
                    label for="max_price" { (ctx.t("submit-max-price")) }
                    input id="max_price" name="max_price" value=(f.max_price) inputmode="decimal" size="8";
                }
            }
            label for="command" { (ctx.t("submit-command")) }
            textarea id="command" name="command" rows="4" spellcheck="false" { (f.command) }
            details open[!f.script.is_empty()] {
                summary { (ctx.t("submit-script")) }
                p { small { (ctx.t("submit-script-help")) } }
                label for="script" class="visually-hidden" { (ctx.t("submit-script")) }
                textarea id="script" name="script" rows="8" spellcheck="false" { (f.script) }
            }
            div.actions {
                button type="submit" name="action" value="quote" { (ctx.t("submit-quote")) }
                button.primary type="submit" name="action" value="submit" { (ctx.t("submit-button")) }
            }
        }
    }
}

//! Jobs: the list (newest first, filtered and paged by the hub) and a job's page (its
//! timeline, why it went where it went, its logs, its outputs, cancel).

use axum::Form;
use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;
use suanli_client::JobFilter;
use suanli_proto::{CandidateView, JobSummary, JobView, LogsResponse};
use suanli_types::{JobId, JobState};

use crate::i18n::{Arg, cst, yuan};
use crate::layout::{self, Failure, encode, state_label};
use crate::session::Ctx;

/// Rows per page.
const PAGE: u32 = 50;
/// The log lines a job page shows (the newest).
pub(crate) const LOG_LINES: usize = 400;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    after: Option<i64>,
}

pub async fn list(ctx: Ctx, Query(q): Query<ListQuery>) -> Response {
    let r = async {
        let state = match q.state.as_str() {
            "" => None,
            s if JobState::ALL.iter().any(|j| j.as_str() == s) => Some(s.to_string()),
            "active" => Some(
                JobState::ALL
                    .iter()
                    .filter(|s| !s.is_terminal())
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            other => {
                return Err(Failure::BadForm(
                    ctx.lang
                        .ta("jobs-bad-state", &[("state", Arg::Str(other.to_string()))]),
                ));
            }
        };
        let list = ctx
            .client()?
            .jobs(&JobFilter {
                state,
                order: Some("newest".into()),
                limit: Some(PAGE),
                after: q.after,
                ..JobFilter::default()
            })
            .await?;
        let s = ctx.signed_in()?;
        let title = match s.is_tenant() {
            true => ctx.t("jobs-title"),
            false => ctx.t("queue-title"),
        };
        let next = list
            .next
            .map(|n| format!("/jobs?state={}&after={}", encode(&q.state), n.0));
        Ok(layout::render(
            &ctx,
            &title,
            list_body(&ctx, &q.state, &list.jobs, next),
        ))
    }
    .await;
    layout::finish(&ctx, r)
}

fn list_body(ctx: &Ctx, state: &str, jobs: &[JobSummary], next: Option<String>) -> Markup {
    let tenant_col = !ctx.session.as_ref().is_some_and(|s| s.is_tenant());
    // Each cell's column, shown before it on a narrow screen (where the header row is not).
    let (l_tenant, l_state, l_center, l_chips, l_submitted) = (
        ctx.t("col-tenant"),
        ctx.t("col-state"),
        ctx.t("col-center"),
        ctx.t("col-chips"),
        ctx.t("col-submitted"),
    );
    html! {
        form.filters method="get" action="/jobs" {
            label for="state" { (ctx.t("jobs-filter-state")) }
            select id="state" name="state" {
                option value="" selected[state.is_empty()] { (ctx.t("jobs-all")) }
                option value="active" selected[state == "active"] { (ctx.t("jobs-active")) }
                @for s in JobState::ALL {
                    option value=(s.as_str()) selected[state == s.as_str()] {
                        (ctx.lang.t(&format!("state-{}", s.as_str().replace('_', "-"))))
                    }
                }
            }
            button type="submit" { (ctx.t("jobs-filter-button")) }
        }
        @if jobs.is_empty() {
            p.empty { (ctx.t("jobs-none")) }
        } @else {
            table.jobs {
                thead { tr {
                    th scope="col" class="num" { (ctx.t("col-id")) }
                    th scope="col" { (ctx.t("col-name")) }
                    @if tenant_col { th scope="col" { (ctx.t("col-tenant")) } }
                    th scope="col" { (ctx.t("col-state")) }
                    th scope="col" { (ctx.t("col-center")) }
                    th scope="col" { (ctx.t("col-chips")) }
                    th scope="col" { (ctx.t("col-submitted")) }
                    th scope="col" { (ctx.t("col-reason")) }
                } }
                tbody {
                    @for j in jobs {
                        tr {
                            td.num { a href=(format!("/jobs/{}", j.id.0)) { (j.id.0) } }
                            td { a href=(format!("/jobs/{}", j.id.0)) { (j.name) } }
                            @if tenant_col { td data-label=(l_tenant) { (j.tenant) } }
                            td data-label=(l_state) { (state_label(ctx, j.state)) }
                            td data-label=(l_center) { (j.center.as_ref().map_or("—".to_string(), |c| c.to_string())) }
                            td data-label=(l_chips) { (j.sku.as_deref().unwrap_or("—")) " × " (j.cards) }
                            td data-label=(l_submitted) { time { (cst(j.submitted_at)) } }
                            td.reason { (j.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(n) = next {
            p { a href=(n) rel="next" { (ctx.t("jobs-next-page")) } }
        }
    }
}

pub async fn show(ctx: Ctx, Path(id): Path<String>) -> Response {
    let r = async {
        let id = id.parse::<i64>().map_err(|_| Failure::NotFound)?;
        let c = ctx.client()?;
        let job = c.job(JobId(id)).await?;
        // Logs exist once an attempt started; a job still queued has none to show.
        let logs = match job.summary.attempt {
            0 => None,
            _ => c.logs(JobId(id), None, 0).await.ok(),
        };
        let outputs = crate::pages::outputs::load(&ctx, &c, &job).await;
        let title = ctx.lang.ta(
            "job-title",
            &[
                ("id", Arg::Num(id)),
                ("name", Arg::Str(job.summary.name.clone())),
            ],
        );
        let body = job_body(&ctx, &job, logs.as_ref(), outputs.as_ref());
        // A job not yet ended updates itself: its state and new log lines.
        Ok(match job.summary.state.is_terminal() {
            true => layout::render(&ctx, &title, body),
            false => layout::render_live(&ctx, &title, body),
        })
    }
    .await;
    layout::finish(&ctx, r)
}

fn job_body(
    ctx: &Ctx,
    job: &JobView,
    logs: Option<&LogsResponse>,
    outputs: Option<&crate::pages::outputs::JobOutputs>,
) -> Markup {
    let j = &job.summary;
    // Where the live stream starts: after the lines shown, of the attempt shown.
    let live = (!j.state.is_terminal()).then(|| {
        let (after, attempt) = logs.map_or((0, 0), |l| (l.next_after, l.attempt));
        format!("/jobs/{}/live?after={after}&attempt={attempt}", j.id.0)
    });
    html! {
        dl.facts data-state=[live.as_ref().map(|_| j.state.as_str())] data-live=[live] {
            dt { (ctx.t("col-state")) } dd #job-state { (state_label(ctx, j.state)) }
            @if let Some(r) = &j.reason { dt { (ctx.t("col-reason")) } dd.reason { (r) } }
            dt { (ctx.t("col-tenant")) } dd { (j.tenant) " · " (j.submitted_by) }
            dt { (ctx.t("col-chips")) } dd {
                (j.sku.as_deref().unwrap_or("—")) " × " (job.spec.cards_per_node)
                " × " (job.spec.nodes) " " (ctx.t("job-nodes"))
            }
            dt { (ctx.t("col-walltime")) } dd { (ctx.lang.duration(j.walltime_secs)) }
            dt { (ctx.t("col-submitted")) } dd { (cst(j.submitted_at)) }
            @if let Some(s) = j.started_at { dt { (ctx.t("col-started")) } dd { (cst(s)) } }
            @if let Some(e) = j.ended_at { dt { (ctx.t("col-ended")) } dd { (cst(e)) } }
            @if let Some(x) = j.exit_code { dt { (ctx.t("col-exit")) } dd { (x) } }
            dt { (ctx.t("col-card-hours")) } dd { (format!("{:.2}", job.card_seconds as f64 / 3600.0)) }
        }
        @if !j.state.is_terminal() {
            form method="post" action=(format!("/jobs/{}/cancel", j.id.0)) {
                (ctx.csrf_field())
                button.danger type="submit" { (ctx.t("job-cancel")) }
            }
        }
        @if let Some(p) = &job.placement {
            section {
                h2 { (ctx.t("job-placement")) }
                p { (ctx.lang.ta("job-placed", &[
                    ("center", Arg::Str(p.center.to_string())),
                    ("sku", Arg::Str(p.sku.clone())),
                    ("at", Arg::Str(cst(p.at))),
                    ("attempt", Arg::Num(p.attempt as i64)),
                ])) " " small { (p.rule) } }
                (candidates(ctx, std::iter::once(&p.chosen).chain(&p.others), Some(&p.chosen)))
                @if !p.rejected.is_empty() {
                    h3 { (ctx.t("job-rejected")) }
                    ul.rejected {
                        @for r in &p.rejected { li { strong { (r.center) } ": " (r.reason) } }
                    }
                }
            }
        }
        section {
            h2 { (ctx.t("job-history")) }
            ol.timeline {
                @for e in &job.history {
                    li {
                        time { (cst(e.at)) } " "
                        (state_label(ctx, e.state))
                        @if e.attempt > 0 { " " small { "#" (e.attempt) } }
                        @if !e.message.is_empty() { " " span.msg { (e.message) } }
                    }
                }
            }
        }
        @if let Some(l) = logs {
            section {
                h2 { (ctx.lang.ta("job-logs", &[("attempt", Arg::Num(l.attempt as i64))])) }
                (log_block(l))
            }
        } @else if !j.state.is_terminal() {
            // Filled by the live updates once the job starts.
            pre.logs #job-logs hidden {}
        }
        @if let Some(o) = outputs { (crate::pages::outputs::section(ctx, o)) }
        details {
            summary { (ctx.t("job-command")) }
            pre.command { (job.spec.command) }
        }
    }
}

/// The newest [`LOG_LINES`] lines of the chunks: whether each came from stderr, and its text.
pub(crate) fn log_lines(l: &LogsResponse) -> Vec<(bool, &str)> {
    let mut lines: Vec<(bool, &str)> = vec![];
    for c in &l.chunks {
        let err = matches!(c.stream, suanli_proto::Stream::Stderr);
        lines.extend(c.data.lines().map(|x| (err, x)));
    }
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines.split_off(skip)
}

/// The newest [`LOG_LINES`] lines of the chunks, stderr marked.
fn log_block(l: &LogsResponse) -> Markup {
    let lines = log_lines(l);
    html! {
        pre.logs #job-logs {
            @for (err, line) in &lines {
                @if *err { span.stderr { (line) } } @else { (line) }
                (PreEscaped("\n"))
            }
        }
    }
}

/// Candidate centers, best first, `chosen` marked.
pub fn candidates<'a>(
    ctx: &Ctx,
    all: impl Iterator<Item = &'a CandidateView>,
    chosen: Option<&CandidateView>,
) -> Markup {
    let (l_chip, l_free, l_price, l_total, l_start) = (
        ctx.t("col-chip"),
        ctx.t("col-free-cards"),
        ctx.t("col-price"),
        ctx.t("col-cost-total"),
        ctx.t("col-expected-start"),
    );
    html! {
        table.candidates {
            thead { tr {
                th scope="col" { (ctx.t("col-center")) }
                th scope="col" { (ctx.t("col-chip")) }
                th scope="col" class="num" { (ctx.t("col-free-cards")) }
                th scope="col" class="num" { (ctx.t("col-price")) }
                th scope="col" class="num" { (ctx.t("col-cost-total")) }
                th scope="col" { (ctx.t("col-expected-start")) }
            } }
            tbody {
                @for c in all {
                    tr class=[chosen.filter(|x| *x == c).map(|_| "chosen")] {
                        th scope="row" { (c.center) }
                        td data-label=(l_chip) { (c.sku) }
                        td.num data-label=(l_free) { (c.free_cards) }
                        td.num data-label=(l_price) { (yuan(c.price_per_card_hour)) }
                        td.num data-label=(l_total) { (yuan(c.cost_total)) }
                        td data-label=(l_start) { (cst(c.expected_start)) }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
}

pub async fn cancel(ctx: Ctx, Path(id): Path<String>, Form(f): Form<CancelForm>) -> Response {
    let r = async {
        ctx.check_csrf(&f.csrf)?;
        let id = id.parse::<i64>().map_err(|_| Failure::NotFound)?;
        ctx.client()?.cancel(JobId(id)).await?;
        Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

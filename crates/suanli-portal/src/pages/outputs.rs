//! A job's outputs: the section of its page that lists them, each a download link served here
//! with the session's token; outputs of a job on restricted or sensitive data are quarantined
//! until the data owner approves a release, so the section (and a refused download) offers the
//! form that asks for one.

use axum::Form;
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use suanli_client::Client;
use suanli_proto::suanli_data::{ReleaseRequest, ReleaseState};
use suanli_proto::{AirlockRequest, ErrorCode, JobView, OutputView, OutputsView};
use suanli_types::JobId;

use crate::i18n::{Arg, bytes, cst};
use crate::layout::{self, Failure, encode};
use crate::pages::airlock::release_state;
use crate::session::Ctx;

/// What the job page shows of a job's outputs.
pub struct JobOutputs {
    view: OutputsView,
    /// The job read restricted or sensitive data: its outputs leave through the airlock.
    protected: Vec<String>,
    /// The job's release requests (only when protected).
    requests: Vec<ReleaseRequest>,
    /// The signed-in principal is of the job's tenant (only it downloads).
    own: bool,
}

impl JobOutputs {
    /// Whether the output `path` with content `sha256` is released by an approved request (or
    /// needs no release).
    fn downloadable(&self, path: &str, sha256: &str) -> bool {
        self.protected.is_empty()
            || self
                .requests
                .iter()
                .any(|r| r.releases_content(path, sha256))
    }
}

/// The outputs of `job` as the session may see them: none before an attempt started, nor when
/// the job declared no outputs and left none, nor when the hub does not list them.
pub async fn load(ctx: &Ctx, c: &Client, job: &JobView) -> Option<JobOutputs> {
    if job.summary.attempt == 0 {
        return None;
    }
    let view = c.outputs(job.summary.id).await.ok()?;
    if view.patterns.is_empty() && view.outputs.is_empty() {
        return None;
    }
    let own = ctx
        .session
        .as_ref()
        .is_some_and(|s| s.who.tenant.as_ref() == Some(&job.summary.tenant));
    // The datasets that quarantine the outputs: those protected, or those it cannot read.
    let mut protected = vec![];
    for name in &job.spec.datasets {
        match c.dataset(name).await {
            Ok(d) if !d.spec.classification.is_protected() => {}
            _ => protected.push(name.clone()),
        }
    }
    let requests = match protected.is_empty() {
        true => vec![],
        false => c
            .airlock_list(Some(job.summary.id), None)
            .await
            .map(|l| l.requests)
            .unwrap_or_default(),
    };
    Some(JobOutputs {
        view,
        protected,
        requests,
        own,
    })
}

/// The link that downloads one output.
fn download_href(job: JobId, o: &OutputView) -> String {
    format!(
        "/jobs/{}/output?path={}&attempt={}",
        job.0,
        encode(&o.path),
        o.attempt
    )
}

/// The outputs section of a job's page.
pub fn section(ctx: &Ctx, o: &JobOutputs) -> Markup {
    let job = o.view.job;
    let (l_size, l_attempt, l_expires) = (
        ctx.t("col-size"),
        ctx.t("col-attempt"),
        ctx.t("col-expires"),
    );
    // The newest attempt's copy of each path still quarantined: what a release may name.
    let mut held: Vec<&str> = o
        .view
        .outputs
        .iter()
        .filter(|x| !o.downloadable(&x.path, &x.sha256))
        .map(|x| x.path.as_str())
        .collect();
    held.sort();
    held.dedup();
    html! {
        section.outputs aria-labelledby="outputs-h" {
            h2 #outputs-h { (ctx.t("outputs-title")) }
            p.note {
                (ctx.lang.ta("outputs-summary", &[
                    ("count", Arg::Num(o.view.outputs.len() as i64)),
                    ("size", Arg::Str(bytes(o.view.total_bytes))),
                ]))
                @if !o.view.patterns.is_empty() {
                    " " (ctx.t("outputs-patterns")) " "
                    @for (i, p) in o.view.patterns.iter().enumerate() {
                        @if i > 0 { ", " }
                        code { (p) }
                    }
                }
            }
            @if !o.protected.is_empty() {
                p.quarantine { (ctx.lang.ta("outputs-protected", &[("datasets", Arg::Str(o.protected.join(", ")))])) }
            }
            @if o.view.outputs.is_empty() {
                p.empty { (ctx.t("outputs-none")) }
            } @else {
                table.outputs {
                    thead { tr {
                        th scope="col" { (ctx.t("col-path")) }
                        th scope="col" class="num" { (ctx.t("col-size")) }
                        th scope="col" class="num" { (ctx.t("col-attempt")) }
                        th scope="col" { (ctx.t("col-expires")) }
                        th scope="col" { (ctx.t("col-download")) }
                    } }
                    tbody {
                        @for x in &o.view.outputs {
                            tr {
                                th scope="row" { code { (x.path) } }
                                td.num data-label=(l_size) { (bytes(x.size)) }
                                td.num data-label=(l_attempt) { "#" (x.attempt) }
                                td data-label=(l_expires) { time { (cst(x.expires_at)) } }
                                td {
                                    @if !o.downloadable(&x.path, &x.sha256) {
                                        span.quarantined { (ctx.t("outputs-quarantined")) }
                                    } @else if o.own {
                                        a.download href=(download_href(job, x)) download {
                                            (ctx.t("outputs-download"))
                                            span.visually-hidden { " " (x.path) }
                                        }
                                    } @else {
                                        small { (ctx.t("outputs-tenant-only")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !o.requests.is_empty() {
                h3 { (ctx.t("outputs-requests")) }
                ul.requests {
                    @for r in &o.requests {
                        li {
                            a href=(format!("/airlock/{}", r.id)) { (ctx.lang.ta("airlock-request-title", &[("id", Arg::Num(r.id))])) }
                            " " (release_state(ctx, r.state)) " "
                            small { (cst(r.created_at)) " · " (r.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
            @if o.own && !held.is_empty() && !o.requests.iter().any(|r| r.state == ReleaseState::InReview) {
                (release_form(ctx, job, &held, true))
            }
        }
    }
}

/// The form that asks for a release of `paths` (checkboxes when `choose`, else fixed).
fn release_form(ctx: &Ctx, job: JobId, paths: &[&str], choose: bool) -> Markup {
    html! {
        form.release-form.card method="post" action=(format!("/jobs/{}/release", job.0)) {
            (ctx.csrf_field())
            h3 { (ctx.t("outputs-ask-title")) }
            @if choose {
                fieldset {
                    legend { (ctx.t("outputs-ask-files")) }
                    @for (i, p) in paths.iter().enumerate() {
                        div.check {
                            input type="checkbox" id=(format!("path-{i}")) name="path" value=(p) checked;
                            " "
                            label for=(format!("path-{i}")) { code { (p) } }
                        }
                    }
                }
            } @else {
                @for p in paths {
                    input type="hidden" name="path" value=(p);
                    p { code { (p) } }
                }
            }
            label for="justification" { (ctx.t("outputs-justification")) }
            textarea id="justification" name="justification" rows="3" required minlength="3" maxlength="500" {}
            p.note { (ctx.t("outputs-ask-help")) }
            button.primary type="submit" { (ctx.t("outputs-ask-button")) }
        }
    }
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    path: String,
    #[serde(default)]
    attempt: Option<u32>,
}

/// One output's bytes, fetched with the session's token, as an attachment. A refusal for the
/// job's own tenant is the quarantine: the page says so and offers the release form.
pub async fn download(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> Response {
    let r = async {
        let id = JobId(id.parse::<i64>().map_err(|_| Failure::NotFound)?);
        let c = ctx.client()?;
        match c.download_output(id, &q.path, q.attempt).await {
            Ok(data) => Ok(attachment(&q.path, data)),
            Err(e) if e.code() == Some(ErrorCode::Forbidden) => {
                let job = c.job(id).await?;
                let own = ctx.signed_in()?.who.tenant.as_ref() == Some(&job.summary.tenant);
                if !own {
                    return Err(Failure::Api(e));
                }
                let requests = c.airlock_list(Some(id), None).await?.requests;
                Ok(quarantined(
                    &ctx,
                    id,
                    &q.path,
                    &layout::api_message(&ctx, &e),
                    &requests,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }
    .await;
    layout::finish(&ctx, r)
}

/// The page of a download refused by the quarantine (403): why, the requests that name the
/// file, and the form asking for its release.
fn quarantined(
    ctx: &Ctx,
    job: JobId,
    path: &str,
    said: &str,
    requests: &[ReleaseRequest],
) -> Response {
    let naming: Vec<&ReleaseRequest> = requests
        .iter()
        .filter(|r| r.files.iter().any(|f| f.path == path))
        .collect();
    let waiting = naming.iter().any(|r| r.state == ReleaseState::InReview);
    let body = html! {
        p.quarantine role="status" { (ctx.lang.ta("outputs-quarantined-intro", &[("path", Arg::Str(path.to_string()))])) }
        p.note { (said) }
        @if !naming.is_empty() {
            h2 { (ctx.t("outputs-requests")) }
            ul.requests {
                @for r in &naming {
                    li {
                        a href=(format!("/airlock/{}", r.id)) { (ctx.lang.ta("airlock-request-title", &[("id", Arg::Num(r.id))])) }
                        " " (release_state(ctx, r.state))
                    }
                }
            }
        }
        @if !waiting { (release_form(ctx, job, &[path], false)) }
        p { a href=(format!("/jobs/{}", job.0)) { (ctx.lang.ta("outputs-back", &[("id", Arg::Num(job.0))])) } }
    };
    let page = layout::page(ctx, &ctx.t("outputs-quarantined-title"), body);
    (StatusCode::FORBIDDEN, page).into_response()
}

/// `data` as a download named after the last part of `path`.
fn attachment(path: &str, data: Vec<u8>) -> Response {
    let name = path.rsplit('/').next().unwrap_or(path);
    // An ASCII fallback without quotes or controls, and the exact name in RFC 5987 form.
    let plain: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let exact: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let disposition = format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}");
    let mut r = data.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Asks for a release of the posted paths (none: every output of the latest attempt), then
/// shows the request.
pub async fn request_release(
    ctx: Ctx,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let r = async {
        let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        ctx.check_csrf(field("csrf").unwrap_or(""))?;
        let id = JobId(id.parse::<i64>().map_err(|_| Failure::NotFound)?);
        let req = AirlockRequest {
            job: id,
            justification: field("justification").unwrap_or("").trim().to_string(),
            paths: fields
                .iter()
                .filter(|(k, _)| k == "path")
                .map(|(_, v)| v.clone())
                .collect(),
        };
        let made = ctx.client()?.airlock_request(&req).await?;
        Ok(Redirect::to(&format!("/airlock/{}", made.id)).into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_is_named_after_the_file_and_cannot_break_the_header() {
        let r = attachment("out/a b\"c.csv", b"x".to_vec());
        let d = r.headers()[header::CONTENT_DISPOSITION].to_str().unwrap();
        assert_eq!(
            d,
            "attachment; filename=\"a b_c.csv\"; filename*=UTF-8''a%20b%22c.csv"
        );
        let r = attachment("报告.csv", b"x".to_vec());
        let d = r.headers()[header::CONTENT_DISPOSITION].to_str().unwrap();
        assert!(d.starts_with("attachment; filename=\"__.csv\""), "{d}");
        assert!(d.contains("%E6%8A%A5"), "{d}");
    }
}

//! A job page's live updates: `GET /jobs/{id}/live` is a stream of server-sent events that the
//! page's one script (`/assets/live.js`) reads: `log` (new lines of the latest attempt's output,
//! `reset` when a new attempt starts), `state` (the job's state, in the page's language) and
//! `end` (the job has ended and its output is complete, or it can no longer be read). The stream
//! is made of the same API calls as the page, with the session's token, once a second.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use suanli_client::Client;
use suanli_proto::LogsResponse;
use suanli_types::JobId;

use crate::i18n::Lang;
use crate::layout::{self, Failure};
use crate::session::Ctx;

/// How often the stream asks the hub.
const EVERY: Duration = Duration::from_secs(1);
/// The longest a stream stays open; the script's EventSource opens a new one after it ends.
const AT_MOST: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
pub struct LiveQuery {
    /// The log cursor the page was rendered with.
    #[serde(default)]
    after: u64,
    /// The attempt whose lines the page shows.
    #[serde(default)]
    attempt: u32,
}

struct Follow {
    client: Client,
    lang: Lang,
    job: JobId,
    after: u64,
    attempt: u32,
    state: Option<String>,
    started: tokio::time::Instant,
    done: bool,
    first: bool,
}

/// The lines of `l`'s chunks as the page shows them: text and whether it came from stderr.
pub(crate) fn lines(l: &LogsResponse) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for c in &l.chunks {
        let err = matches!(c.stream, suanli_proto::Stream::Stderr);
        out.extend(
            c.data
                .lines()
                .map(|x| serde_json::json!({"err": err, "text": x})),
        );
    }
    out
}

impl Follow {
    /// The events of one look at the job: state, new lines, and whether it is over.
    async fn step(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        let job = match self.client.job(self.job).await {
            Ok(j) => j,
            Err(_) => {
                self.done = true;
                return vec![Event::default().event("end").data("{}")];
            }
        };
        let s = job.summary.state;
        let label = self
            .lang
            .t(&format!("state-{}", s.as_str().replace('_', "-")));
        if self.state.as_deref() != Some(label.as_str()) {
            let data = serde_json::json!({"label": label, "state": s.as_str()});
            out.push(Event::default().event("state").data(data.to_string()));
            self.state = Some(label);
        }
        let mut complete = job.summary.attempt == 0;
        if job.summary.attempt > 0
            && let Ok(l) = self.client.logs(self.job, None, self.after).await
        {
            let reset = l.attempt != self.attempt;
            if reset {
                // A new attempt: its output from the start.
                self.attempt = l.attempt;
                self.after = 0;
            }
            let logs = match reset {
                true => self.client.logs(self.job, None, 0).await.unwrap_or(l),
                false => l,
            };
            let new = lines(&logs);
            self.after = logs.next_after;
            if !new.is_empty() || reset {
                let data = serde_json::json!({"reset": reset, "lines": new});
                // The cursor, which a reconnecting EventSource sends back as Last-Event-ID.
                let id = format!("{}:{}", self.attempt, self.after);
                out.push(Event::default().event("log").id(id).data(data.to_string()));
            }
            complete = logs.complete;
        }
        if job.summary.state.is_terminal() && complete {
            self.done = true;
            out.push(Event::default().event("end").data("{}"));
        }
        out
    }
}

fn events(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    let batches = stream::unfold(f, |mut f| async move {
        if f.done || f.started.elapsed() > AT_MOST {
            return None;
        }
        if !std::mem::take(&mut f.first) {
            tokio::time::sleep(EVERY).await;
        }
        let batch = f.step().await;
        Some((stream::iter(batch.into_iter().map(Ok)), f))
    });
    futures_util::StreamExt::flatten(batches)
}

/// Where a reconnecting stream resumes: `attempt:after` from the last event it received.
fn resume(headers: &HeaderMap) -> Option<(u32, u64)> {
    let v = headers.get("last-event-id")?.to_str().ok()?;
    let (attempt, after) = v.split_once(':')?;
    Some((attempt.parse().ok()?, after.parse().ok()?))
}

pub async fn live(
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
    headers: HeaderMap,
) -> Response {
    let r: Result<Response, Failure> = async {
        let id = id.parse::<i64>().map_err(|_| Failure::NotFound)?;
        let client = ctx.client()?;
        // Only a job the session may read: the same refusal as the page's.
        client.job(JobId(id)).await?;
        let (attempt, after) = resume(&headers).unwrap_or((q.attempt, q.after));
        let follow = Follow {
            client,
            lang: ctx.lang,
            job: JobId(id),
            after,
            attempt,
            state: None,
            started: tokio::time::Instant::now(),
            done: false,
            first: true,
        };
        Ok(Sse::new(events(follow))
            .keep_alive(KeepAlive::default())
            .into_response())
    }
    .await;
    layout::finish(&ctx, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnect_resumes_from_the_last_event_it_had() {
        let mut h = HeaderMap::new();
        assert_eq!(resume(&h), None);
        h.insert("last-event-id", "2:17".parse().unwrap());
        assert_eq!(resume(&h), Some((2, 17)));
        for bad in ["2", "x:1", "1:-3", ""] {
            h.insert("last-event-id", bad.parse().unwrap());
            assert_eq!(resume(&h), None, "{bad:?}");
        }
    }
}

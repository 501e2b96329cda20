//! A job page's live updates: `GET /jobs/{id}/live` is a stream of server-sent events that the
//! page's one script (`/assets/live.js`) reads: `log` (new lines of the latest attempt's output,
//! `reset` with its newest lines when a new attempt starts), `state` (the job's state; the page
//! reloads when it changes) and `end` (the job has ended and its output is complete, or it can
//! no longer be read). The stream is made of the same API calls as the page, with the session's
//! token: once a second while the job runs, every 5 s before; it ends when the session does
//! (sign-out, expiry), after 30 minutes (the script opens a new one, resuming by the last event's
//! id), and a session has at most [`STREAMS_PER_SESSION`] open at once.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use suanli_client::{Client, ClientError};
use suanli_proto::{ErrorCode, JobView};
use suanli_types::JobId;

use crate::i18n::Lang;
use crate::layout::{self, Failure, state_id};
use crate::pages::jobs::log_lines;
use crate::session::{Ctx, Session};

/// How often the stream asks the hub while the job runs, and before it starts.
const RUNNING_EVERY: Duration = Duration::from_secs(1);
const PENDING_EVERY: Duration = Duration::from_secs(5);
/// The longest a stream stays open; the script's EventSource opens a new one after it ends.
const AT_MOST: Duration = Duration::from_secs(30 * 60);
/// Live streams a session may have open at once (tabs on running jobs).
pub const STREAMS_PER_SESSION: usize = 4;

#[derive(Deserialize)]
pub struct LiveQuery {
    /// The log cursor the page was rendered with.
    #[serde(default)]
    after: u64,
    /// The attempt whose lines the page shows.
    #[serde(default)]
    attempt: u32,
}

/// One open stream of a session: counted while it lasts, and only while the session does.
struct Open(Weak<Session>);

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(s) = self.0.upgrade() {
            s.streams.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

struct Follow {
    client: Client,
    session: Open,
    lang: Lang,
    job: JobId,
    after: u64,
    attempt: u32,
    state: Option<&'static str>,
    started: tokio::time::Instant,
    running: bool,
    done: bool,
    /// The job as read to open the stream: the first look needs no call.
    first: Option<JobView>,
}

/// A reason the hub gives that will not change by asking again.
fn gone(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(ErrorCode::NotFound | ErrorCode::Forbidden | ErrorCode::Unauthenticated)
    )
}

impl Follow {
    fn end(&mut self) -> Vec<Event> {
        self.done = true;
        vec![Event::default().event("end").data("{}")]
    }

    /// The events of one look at the job: state, new lines, and whether it is over.
    async fn step(&mut self) -> Vec<Event> {
        // Signed out or expired: the token is no longer the stream's to use.
        if self.session.0.strong_count() == 0 {
            return self.end();
        }
        let job = match self.first.take() {
            Some(j) => j,
            None => match self.client.job(self.job).await {
                Ok(j) => j,
                Err(e) if gone(&e) => return self.end(),
                // Asked again at the next look.
                Err(_) => return Vec::new(),
            },
        };
        let mut out = Vec::new();
        let s = job.summary.state;
        self.running = s == suanli_types::JobState::Running;
        if self.state != Some(s.as_str()) {
            let label = self.lang.t(&state_id(s));
            let data = serde_json::json!({"label": label, "state": s.as_str()});
            out.push(Event::default().event("state").data(data.to_string()));
            self.state = Some(s.as_str());
        }
        let mut complete = job.summary.attempt == 0;
        if job.summary.attempt > 0 {
            match self.logs().await {
                Ok(Some((event, done))) => {
                    out.extend(event);
                    complete = done;
                }
                Ok(None) => {}
                Err(e) if gone(&e) => return self.end(),
                Err(_) => {}
            }
        }
        if s.is_terminal() && complete {
            out.extend(self.end());
        }
        out
    }

    /// The new lines since the cursor (a new attempt's newest lines, from its start), and
    /// whether its output is complete.
    async fn logs(&mut self) -> Result<Option<(Option<Event>, bool)>, ClientError> {
        let mut l = self.client.logs(self.job, None, self.after).await?;
        let reset = l.attempt != self.attempt;
        if reset {
            l = self.client.logs(self.job, None, 0).await?;
            self.attempt = l.attempt;
        }
        self.after = l.next_after;
        let lines: Vec<serde_json::Value> = log_lines(&l)
            .into_iter()
            .map(|(err, text)| serde_json::json!({"err": err, "text": text}))
            .collect();
        let event = (!lines.is_empty() || reset).then(|| {
            let data = serde_json::json!({"reset": reset, "lines": lines});
            // The cursor, which a reconnecting EventSource sends back as Last-Event-ID.
            let id = format!("{}:{}", self.attempt, self.after);
            Event::default().event("log").id(id).data(data.to_string())
        });
        Ok(Some((event, l.complete)))
    }
}

fn events(f: Follow) -> impl Stream<Item = Result<Event, Infallible>> {
    let batches = stream::unfold(f, |mut f| async move {
        if f.done || f.started.elapsed() > AT_MOST {
            return None;
        }
        if f.first.is_none() {
            let every = if f.running {
                RUNNING_EVERY
            } else {
                PENDING_EVERY
            };
            tokio::time::sleep(every).await;
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
        let session = ctx.session.clone().ok_or(Failure::SignIn)?;
        // Only a job the session may read: the same refusal as the page's.
        let first = client.job(JobId(id)).await?;
        if session.streams.fetch_add(1, Ordering::SeqCst) >= STREAMS_PER_SESSION {
            session.streams.fetch_sub(1, Ordering::SeqCst);
            return Err(Failure::TooMany);
        }
        let (attempt, after) = resume(&headers).unwrap_or((q.attempt, q.after));
        let follow = Follow {
            client,
            session: Open(Arc::downgrade(&session)),
            lang: ctx.lang,
            job: JobId(id),
            after,
            attempt,
            state: None,
            started: tokio::time::Instant::now(),
            running: true,
            done: false,
            first: Some(first),
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

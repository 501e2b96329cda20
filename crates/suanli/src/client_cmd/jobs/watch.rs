//! Following a job: `wait` until it ends and `logs --follow`, polling with backoff and riding
//! out hub outages.

use std::time::{Duration, Instant};

use suanli_client::{Client, ClientError};
use suanli_proto::{ErrorCode, Stream};
use suanli_types::{JobId, JobState};

use crate::client_cmd::exit::Exit;
use crate::client_cmd::output::{self as out, note};

const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(2);

fn backoff(d: Duration) -> Duration {
    (d * 3 / 2).min(POLL_MAX)
}

/// Says once that the hub is unreachable, and once that it is back.
#[derive(Default)]
struct Outage(bool);

impl Outage {
    fn failed(&mut self, e: &ClientError) {
        if !std::mem::replace(&mut self.0, true) {
            note(format!("warning: {e}; retrying"));
        }
    }
    fn ok(&mut self) {
        if std::mem::replace(&mut self.0, false) {
            note("hub reachable again");
        }
    }
}

/// Waits until the job ends and prints how (with `json`, the job as JSON); the exit tells the
/// outcome ([`Exit::of_job`]), or [`Exit::WaitTimedOut`] when `timeout` seconds pass first. A
/// hub that cannot be reached at the first poll is [`Exit::Unreachable`]; an outage after the
/// hub has answered once is waited out (a restart, a failover).
pub async fn wait(c: &Client, id: JobId, timeout: Option<u64>, json: bool) -> anyhow::Result<Exit> {
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut delay = POLL_MIN;
    let mut outage = Outage::default();
    let mut last = None;
    let mut answered = false;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let polled = match left {
            Some(left) => tokio::time::timeout(left, c.job(id)).await.ok(),
            None => Some(c.job(id).await),
        };
        match polled {
            Some(Ok(j)) => {
                outage.ok();
                answered = true;
                let s = &j.summary;
                if s.state.is_terminal() && json {
                    out::json(&j).or_else(out::ignore_closed)?;
                    return Ok(Exit::of_job(s.state));
                }
                if s.state.is_terminal() {
                    let mut line = format!("Job {id} {}", s.state);
                    if let Some(code) = s.exit_code {
                        line += &format!(" (exit code {code})");
                    }
                    if let Some(r) = s.reason.as_ref().filter(|_| s.state != JobState::Succeeded) {
                        line += &format!(": {r}");
                    }
                    out::line(line).or_else(out::ignore_closed)?;
                    return Ok(Exit::of_job(s.state));
                }
                last = Some(s.state);
            }
            Some(Err(e)) if e.is_transient() && (answered || !unreachable(&e)) => outage.failed(&e),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            let still = last.map(|s| format!(" (still {s})")).unwrap_or_default();
            note(format!("Timed out waiting for job {id}{still}"));
            return Ok(Exit::WaitTimedOut);
        }
        tokio::time::sleep(left.map_or(delay, |l| l.min(delay))).await;
        delay = backoff(delay);
    }
}

/// No hub answered, or none could serve the request.
fn unreachable(e: &ClientError) -> bool {
    matches!(e, ClientError::Unreachable { .. }) || e.code() == Some(ErrorCode::Unavailable)
}

/// Prints a job's output, stdout to stdout and stderr to stderr; with `follow`, until the job has
/// ended and its last attempt's logs are complete. A reader that goes away ends it quietly.
pub async fn logs(c: &Client, id: JobId, follow: bool, pinned: Option<u32>) -> anyhow::Result<()> {
    let (mut attempt, mut after) = (pinned, 0u64);
    let mut delay = POLL_MIN;
    let mut outage = Outage::default();
    let mut ended_since: Option<Instant> = None;
    loop {
        let r = match c.logs(id, attempt, after).await {
            Ok(r) => r,
            Err(e) if follow && e.is_transient() => {
                outage.failed(&e);
                tokio::time::sleep(delay).await;
                delay = backoff(delay);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        outage.ok();
        attempt = Some(r.attempt);
        after = r.next_after;
        if !r.chunks.is_empty() {
            for ch in &r.chunks {
                match ch.stream {
                    Stream::Stdout => out::print(&ch.data)?,
                    Stream::Stderr => out::print_err(&ch.data)?,
                }
            }
            delay = POLL_MIN;
            continue;
        }
        if !follow {
            return Ok(());
        }
        // Nothing new: has the job moved to a new attempt, or ended?
        let j = match c.job(id).await {
            Ok(j) => j,
            Err(e) if e.is_transient() => {
                outage.failed(&e);
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if pinned.is_none() && j.summary.attempt > r.attempt {
            if r.attempt > 0 {
                note(format!("--- attempt {} ---", j.summary.attempt));
            }
            (attempt, after) = (Some(j.summary.attempt), 0);
            continue;
        }
        if j.summary.state.is_terminal() {
            // Done when the attempt's logs are complete; a job that never ran ships none.
            let since = *ended_since.get_or_insert_with(Instant::now);
            if r.complete
                || j.summary.started_at.is_none()
                || since.elapsed() > Duration::from_secs(10)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(delay).await;
        delay = backoff(delay);
    }
}

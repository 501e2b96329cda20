//! What the fault tests check, shared by the hub-kill, failover, agent-kill, partition and
//! hub-restart tests: the runs file their jobs write, "nothing lost" over jobs, attempts and the
//! bill, a killed attempt's bill, and how a test that cannot run here says so.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use suanli_client::Client;
use suanli_proto::{BillLineView, InvoiceView, JobView};
use suanli_types::{CenterSpec, JobId, JobSpec, JobState, Money, Timestamp};

/// Whether `CI` is set (to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says that `test` cannot run here and why, on one line starting with `SKIPPED:` (written to
/// the process's stderr, past the test harness's capture, so that `.ci/run` lists it); with `CI`
/// set it fails the test instead.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("CI must run {test}, but: {why}");
    }
    // One write, so that the line stays whole among the harness's own output.
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Whether process `pid` runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("State:") && !l.contains("Z (zombie)"))
    })
}

/// (job, attempt)
pub type Key = (JobId, u32);

/// A job that appends `S job:attempt unix-seconds pid` to `shared` when it starts (`pid`: its
/// shell, the leader of the attempt's process group) and `E job:attempt unix-seconds` when it
/// ends. `sleep` is a shell word.
pub fn logged_job(name: String, shared: &Path, sleep: &str) -> JobSpec {
    let f = shared.display();
    JobSpec::new(
        name,
        format!(
            "echo \"S $SUANLI_JOB_ID:$SUANLI_ATTEMPT $(date +%s.%N) $$\" >> {f}; sleep {sleep}; \
             echo \"E $SUANLI_JOB_ID:$SUANLI_ATTEMPT $(date +%s.%N)\" >> {f}"
        ),
    )
}

/// The start and end lines of the shared file, per (job, attempt).
#[derive(Default, Debug)]
pub struct Runs {
    pub starts: BTreeMap<Key, Vec<f64>>,
    pub ends: BTreeMap<Key, Vec<f64>>,
    /// The shell of each start line.
    pub pids: BTreeMap<Key, u32>,
}

impl Runs {
    /// The first start (unix seconds) of `key`.
    pub fn start(&self, key: Key) -> Option<f64> {
        self.starts.get(&key).and_then(|s| s.first()).copied()
    }

    /// Attempts that started and have not (yet) ended.
    pub fn unfinished(&self) -> Vec<Key> {
        let ended = |k: &Key| self.ends.contains_key(k);
        self.starts.keys().copied().filter(|k| !ended(k)).collect()
    }
}

pub fn read_runs(shared: &Path) -> Runs {
    let text = std::fs::read_to_string(shared).unwrap_or_default();
    let mut runs = Runs::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(ja), Some(t)) = (it.next(), it.next(), it.next()) else {
            panic!("bad line {line:?}");
        };
        let (j, a) = ja.split_once(':').unwrap();
        let key = (JobId(j.parse().unwrap()), a.parse().unwrap());
        let t: f64 = t.parse().unwrap();
        match kind {
            "S" => {
                runs.starts.entry(key).or_default().push(t);
                if let Some(pid) = it.next() {
                    runs.pids.insert(key, pid.parse().unwrap());
                }
            }
            "E" => runs.ends.entry(key).or_default().push(t),
            _ => panic!("bad line {line:?}"),
        }
    }
    runs
}

/// Every job the client may list, all pages, as summaries.
pub async fn all_jobs(c: &Client) -> Vec<suanli_proto::JobSummary> {
    let mut out = Vec::new();
    let mut filter = suanli_client::JobFilter::default();
    loop {
        let page = c.jobs(&filter).await.unwrap();
        out.extend(page.jobs);
        match page.next {
            Some(n) => filter.after = Some(n.0),
            None => return out,
        }
    }
}

/// Waits until none of the client's jobs is unfinished (polling the list, as a well-behaved
/// client does, not every job); then returns them all, each read once.
pub async fn wait_all_ended(c: &Client, deadline: Instant) -> Vec<JobView> {
    let ids: Vec<JobId> = loop {
        let jobs = all_jobs(c).await;
        let open = jobs.iter().filter(|j| !j.state.is_terminal()).count();
        if open == 0 {
            break jobs.iter().map(|j| j.id).collect();
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} jobs still unfinished",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        views.push(read_job(c, id).await);
    }
    views
}

/// One job's view; a 429 (the hub's per-token rate limit) is waited out as its Retry-After asks.
async fn read_job(c: &Client, id: JobId) -> JobView {
    loop {
        match c.job(id).await {
            Ok(v) => return v,
            Err(e) if e.code() == Some(suanli_proto::ErrorCode::RateLimited) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("reading job {id}: {e}"),
        }
    }
}

/// How far (ms) the agent's start may lie before the job's start line, and its end after the
/// job's end line: the time to prepare the folder and start `sh`, and to see it exit, on a
/// loaded machine.
pub const METER_SLACK_MS: f64 = 500.0;

/// What [`assert_nothing_lost`] saw, for the tests' timing lines.
#[derive(Debug, Default)]
pub struct Checked {
    pub jobs: usize,
    pub attempts: usize,
    /// Attempts that started and never ended (killed, lost and requeued).
    pub killed: usize,
    /// Largest gap (ms) between an attempt's recorded run and its billed span, at either end.
    pub max_slack_ms: f64,
}

/// The invariants of a fault test, once every job has ended:
/// - acknowledged ids and jobs match one to one;
/// - every job succeeded and ended once;
/// - every recorded attempt belongs to an existing job, is at most its latest attempt, started
///   once and ended at most once; exactly one attempt per job ran to its end, the latest, and an
///   earlier attempt was requeued and billed no later than the next one started;
/// - every attempt that ran to its end is billed once, from its start to its end within
///   [`METER_SLACK_MS`], for `ceil(ms x cards / 1000)` card-seconds less at most that slack's
///   worth; nothing else is billed (a killed attempt at most once, from its start); a job's
///   metering is its lines' sum;
/// - every line's gross is its card-seconds x the price `centers` register for its pool, split
///   into subsidy and payable, and the totals are the sums of the lines.
pub fn assert_nothing_lost(
    acked: &[JobId],
    views: &[JobView],
    runs: &Runs,
    bill: &InvoiceView,
    centers: &[CenterSpec],
) -> Checked {
    let acked_set: BTreeSet<JobId> = acked.iter().copied().collect();
    assert_eq!(
        acked_set.len(),
        acked.len(),
        "two submits were acknowledged with the same job id"
    );
    let jobs: BTreeMap<JobId, &JobView> = views.iter().map(|v| (v.summary.id, v)).collect();
    assert_eq!(jobs.len(), views.len(), "a job is listed twice");
    let listed: BTreeSet<JobId> = jobs.keys().copied().collect();
    let missing: Vec<_> = acked_set.difference(&listed).collect();
    assert!(missing.is_empty(), "acknowledged jobs missing: {missing:?}");
    let extra: Vec<_> = listed.difference(&acked_set).collect();
    assert!(
        extra.is_empty(),
        "jobs that no acknowledged submit created: {extra:?}"
    );

    // Every recorded attempt, whether or not it ended.
    let recorded: BTreeSet<Key> = runs
        .starts
        .keys()
        .chain(runs.ends.keys())
        .copied()
        .collect();
    let mut ran_to_end: BTreeMap<JobId, Vec<u32>> = BTreeMap::new();
    for &(id, attempt) in &recorded {
        let v = jobs
            .get(&id)
            .unwrap_or_else(|| panic!("attempt {id}:{attempt} ran for a job nobody submitted"));
        assert!(
            (1..=v.summary.attempt).contains(&attempt),
            "attempt {id}:{attempt} ran, but the job's latest attempt is {}",
            v.summary.attempt
        );
        let starts = runs.starts.get(&(id, attempt)).map_or(0, Vec::len);
        assert_eq!(starts, 1, "attempt {id}:{attempt} started {starts} times");
        let ends = runs.ends.get(&(id, attempt)).map(Vec::as_slice);
        match ends.unwrap_or(&[]) {
            [] => {}
            [e] => {
                assert!(
                    *e >= runs.starts[&(id, attempt)][0],
                    "{id}:{attempt} ended first"
                );
                ran_to_end.entry(id).or_default().push(attempt);
            }
            more => panic!("attempt {id}:{attempt} ended {} times", more.len()),
        }
    }

    let mut lines: BTreeMap<Key, &BillLineView> = BTreeMap::new();
    for l in &bill.lines {
        assert!(
            lines.insert((l.job, l.attempt), l).is_none(),
            "attempt {}:{} billed twice: {bill:?}",
            l.job,
            l.attempt
        );
        assert!(
            runs.starts.contains_key(&(l.job, l.attempt)),
            "attempt {}:{} billed but it never ran: {l:?}",
            l.job,
            l.attempt
        );
    }

    let mut checked = Checked {
        jobs: jobs.len(),
        attempts: recorded.len(),
        ..Default::default()
    };
    for (&id, v) in &jobs {
        assert_eq!(
            v.summary.state,
            JobState::Succeeded,
            "job {id}: {:?} {:?}",
            v.summary.reason,
            v.history
        );
        let ends = v.history.iter().filter(|e| e.state.is_terminal()).count();
        assert_eq!(ends, 1, "job {id} ended once: {:?}", v.history);
        let last = v.summary.attempt;
        let ran = ran_to_end.get(&id).cloned().unwrap_or_default();
        assert!(
            ran.contains(&last),
            "job {id}: its latest attempt ({last}) ran to its end; {:?}",
            v.history
        );
        assert_eq!(
            ran,
            vec![last],
            "job {id}: exactly one attempt ran to its end, its latest ({last}); {:?}",
            v.history
        );
        for a in 1..last {
            assert!(
                v.history
                    .iter()
                    .any(|e| e.attempt == a && e.state == JobState::Queued),
                "job {id}: attempt {a} was requeued: {:?}",
                v.history
            );
        }
        let mut billed = 0;
        let mut previous_start = f64::MIN;
        for a in 1..=last {
            let Some(start) = runs.start((id, a)) else {
                continue;
            };
            assert!(
                start > previous_start,
                "job {id}: attempt {a} started before an earlier one"
            );
            previous_start = start;
            let line = lines.get(&(id, a)).copied();
            let end = runs.ends.get(&(id, a)).map(|e| e[0]);
            if end.is_none() {
                checked.killed += 1;
            }
            let Some(line) = line else {
                assert!(end.is_none(), "attempt {id}:{a} ran to its end unbilled");
                continue;
            };
            let slack = assert_metered(line, v.summary.cards, start, end);
            checked.max_slack_ms = checked.max_slack_ms.max(slack);
            if end.is_none()
                && let Some(next) = runs.start((id, a + 1))
            {
                assert!(
                    (line.ended_at.0 as f64) <= next * 1000.0,
                    "the killed attempt {id}:{a} is billed past the start of the next: {line:?}"
                );
            }
            billed += line.card_seconds;
        }
        assert_eq!(v.card_seconds, billed, "job {id}: metered = its lines");
    }
    assert_bill_priced(bill, centers);
    checked
}

/// The line bills `cards` from the attempt's start to its end (if it ended), as the agent
/// measured them around the job's own `start` and `end` (unix seconds); returns the larger gap.
fn assert_metered(l: &BillLineView, cards: u32, start: f64, end: Option<f64>) -> f64 {
    let key = format!("attempt {}:{}", l.job, l.attempt);
    assert_eq!(l.cards, cards, "{key}: {l:?}");
    let (s, e) = (l.started_at.0 as f64, l.ended_at.0 as f64);
    // The agent takes its times before it starts `sh` and after `sh` exits, in whole ms.
    let early = start * 1000.0 - s;
    assert!(
        (-1.0..=METER_SLACK_MS).contains(&early),
        "{key}: billed from {s}, started at {:.0}: {l:?}",
        start * 1000.0
    );
    let mut slack = early;
    if let Some(end) = end {
        let late = e - end * 1000.0;
        assert!(
            (-1.0..=METER_SLACK_MS).contains(&late),
            "{key}: billed to {e}, ended at {:.0}: {l:?}",
            end * 1000.0
        );
        slack = slack.max(late);
    }
    assert!(e >= s, "{key}: {l:?}");
    // The hub bills at most the cards over the span it records, from its own record of the
    // start (the agent's `started` report, sent as it launches the job), and never more than the
    // agent metered (from when it saw the job running, a little later under load): so at most
    // `ceil(ms x cards / 1000)` and at least that less the metering slack.
    let ms = (l.ended_at.0 - l.started_at.0) as u64;
    let most = (ms * u64::from(cards)).div_ceil(1000);
    let least = (ms.saturating_sub(METER_SLACK_MS as u64) * u64::from(cards)).div_ceil(1000);
    assert!(
        (least..=most).contains(&l.card_seconds),
        "{key}: card-seconds of {ms} ms x {cards} cards, {least} to {most}: {l:?}"
    );
    slack
}

/// Every line is priced at what `centers` register for its pool (no spot work here):
/// `gross = price x card_seconds / 3600` rounded half up, `gross = subsidy + payable`; the
/// totals are the sums.
pub fn assert_bill_priced(bill: &InvoiceView, centers: &[CenterSpec]) {
    let mut sum = (0u64, 0i64, 0i64, 0i64);
    for l in &bill.lines {
        let price = centers
            .iter()
            .filter(|c| c.id == l.center)
            .flat_map(|c| &c.pools)
            .find(|p| p.sku == l.sku)
            .unwrap_or_else(|| panic!("line {}: no pool {}/{}", l.line, l.center, l.sku))
            .price_per_card_hour;
        assert!(!l.spot, "line {}: {l:?}", l.line);
        assert_eq!(l.unit_price, price, "line {}: the price in force", l.line);
        let gross = (i128::from(price.0) * i128::from(l.card_seconds) + 1800) / 3600;
        assert_eq!(
            l.gross,
            Money(gross as i64),
            "line {}: {} card-s at {price}",
            l.line,
            l.card_seconds
        );
        assert!(
            l.subsidy >= Money::ZERO && l.payable >= Money::ZERO,
            "{l:?}"
        );
        assert_eq!(l.gross.0, l.subsidy.0 + l.payable.0, "line {}", l.line);
        sum.0 += l.card_seconds;
        sum.1 += l.gross.0;
        sum.2 += l.subsidy.0;
        sum.3 += l.payable.0;
    }
    let t = &bill.totals;
    assert_eq!(t.lines, bill.lines.len() as u64);
    assert_eq!(
        (t.card_seconds, t.gross.0, t.subsidy.0, t.payable.0),
        sum,
        "totals: {t:?}"
    );
}

/// Attempt `key` was killed before its end (a start line, no end line) and is billed once, from
/// its start up to `last_heartbeat`, when the last heartbeat that listed it reached the hub.
pub fn assert_killed_and_billed_to(
    runs: &Runs,
    bill: &InvoiceView,
    key: Key,
    last_heartbeat: Timestamp,
) {
    let (job, attempt) = key;
    assert!(runs.starts.contains_key(&key), "{job}:{attempt} never ran");
    assert!(
        !runs.ends.contains_key(&key),
        "attempt {job}:{attempt} ran to its end: {runs:?}"
    );
    let lines: Vec<_> = bill
        .lines
        .iter()
        .filter(|l| (l.job, l.attempt) == key)
        .collect();
    let [l] = lines[..] else {
        panic!("attempt {job}:{attempt} billed once: {bill:?}")
    };
    assert_eq!(
        l.ended_at, last_heartbeat,
        "attempt {job}:{attempt} billed up to its last heartbeat: {l:?}"
    );
    assert!(l.card_seconds > 0, "{l:?}");
}

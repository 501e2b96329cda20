//! When jobs may start, end to end: dependencies, begin times, holds and job arrays, through the
//! API and the real CLI, with a hub and a local site.

use std::time::Duration;

use suanli_client::{Client, ClientError, JobFilter};
use suanli_proto::{ErrorCode, JobSummary};
use suanli_types::{JobId, JobSpec, JobState, Timestamp};

use crate::harness::*;

fn job(name: &str, command: &str) -> JobSpec {
    let mut s = JobSpec::new(name, command);
    s.walltime = 120;
    s
}

/// The tasks of an array, by id.
async fn tasks(c: &Client, array: JobId) -> Vec<JobSummary> {
    c.jobs(&JobFilter {
        array: Some(array.0),
        limit: Some(1000),
        ..JobFilter::default()
    })
    .await
    .unwrap()
    .jobs
}

/// Waits until every task of the array has ended.
async fn wait_array(c: &Client, array: JobId, n: usize, limit: Duration) -> Vec<JobSummary> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let t = tasks(c, array).await;
        if t.len() == n && t.iter().all(|j| j.state.is_terminal()) {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "array {array} did not end in {limit:?}: {:?}",
            t.iter().map(|j| (j.id, j.state)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The most intervals `[start, end)` that overlap at any instant.
fn most_at_once(runs: &[(Timestamp, Timestamp)]) -> usize {
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for (s, e) in runs {
        edges.push((s.0, 1));
        edges.push((e.0, -1));
    }
    // An end before a start at the same instant: back to back is not at once.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_script_with_a_limit_of_two_never_runs_more_than_two_tasks() {
    // Room for eight tasks at once: only `%2` holds them back.
    let net = Net::with_agents(&[center("c-arr", "RTX4090", 2, 4, "2.00")], &["t-a"]).await;
    let token = user_token(&net.op(), "t-a", "alice").await;
    let home = tempfile::tempdir().unwrap();
    let script = home.path().join("sweep.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n#SBATCH --job-name=sweep\n#SBATCH --gres=gpu:1\n#SBATCH --array=0-10:2%2\n\
         #SBATCH --time=2\n\
         echo \"task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_TASK_COUNT ($SLURM_ARRAY_TASK_MIN-$SLURM_ARRAY_TASK_MAX) in $SLURM_ARRAY_JOB_ID\"\n\
         sleep 1\n",
    )
    .unwrap();
    let (code, out, err) = cli_as(
        &net.url,
        &token,
        home.path(),
        &["submit", "--parsable", script.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let array = JobId(out.trim().parse().unwrap());
    let c = net.client(&token);
    let pending = tasks(&c, array).await;
    assert_eq!(pending.len(), 6, "one job per task");
    // A dependency on the array is on all of its tasks, as sbatch has it.
    let (code, out, err) = cli_as(
        &net.url,
        &token,
        home.path(),
        &[
            "submit",
            "--parsable",
            "--dependency",
            &format!("afterok:{array}"),
            "--",
            "true",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let after_all = JobId(out.trim().parse().unwrap());
    let stored = c.job(after_all).await.unwrap().spec.dependency.unwrap();
    let want: Vec<String> = pending
        .iter()
        .map(|t| format!("afterok:{}", t.id))
        .collect();
    assert_eq!(stored, want.join(","));

    // While it runs, some task waits for the limit, saying so.
    let mut saw_limit = false;
    for _ in 0..50 {
        for t in tasks(&c, array).await {
            if t.state == JobState::Queued {
                let v = c.job(t.id).await.unwrap();
                saw_limit |= v
                    .summary
                    .reason
                    .is_some_and(|r| r.contains("array limit") && r.contains("at most 2"));
            }
        }
        if saw_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        saw_limit,
        "a task waited with the array's limit as its reason"
    );

    let done = wait_array(&c, array, 6, Duration::from_secs(60)).await;
    let mut runs = Vec::new();
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t.state, JobState::Succeeded, "task {}", t.id);
        assert_eq!(t.array_job_id, Some(array));
        assert_eq!(t.array_task_id, Some(i as u32 * 2));
        runs.push((t.started_at.unwrap(), t.ended_at.unwrap()));
        let logs = all_logs(&c, t.id).await;
        assert_eq!(
            logs.trim(),
            format!("task {} of 6 (0-10) in {array}", i * 2),
            "task {}'s environment",
            t.id
        );
    }
    let last_end = runs.iter().map(|r| r.1).max().unwrap();
    let after = wait_terminal(&c, after_all, Duration::from_secs(30)).await;
    assert_eq!(after.summary.state, JobState::Succeeded);
    assert!(
        after.summary.started_at.unwrap() >= last_end,
        "it waited for every task"
    );
    let most = most_at_once(&runs);
    assert!(most <= 2, "{most} tasks ran at once: {runs:?}");
    assert_eq!(most, 2, "the limit lets two run together: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn afterok_waits_for_its_parent_and_a_failed_parent_ends_the_child() {
    let net = Net::with_agents(&[center("c-dep", "RTX4090", 1, 4, "2.00")], &["t-a", "t-b"]).await;
    let a = net.user("t-a", "alice").await;
    let b = net.user("t-b", "bob").await;

    let parent = submit(&a, &job("parent", "sleep 2")).await;
    let mut s = job("child", "echo child");
    s.dependency = Some(format!("afterok:{parent}"));
    let child = submit(&a, &s).await;
    wait_state(&a, parent, JobState::Running, Duration::from_secs(20)).await;
    let v = a.job(child).await.unwrap();
    assert_eq!(v.summary.state, JobState::Queued);
    let why = v.summary.reason.unwrap_or_default();
    assert!(
        why.contains(&format!("waits for job {parent}")) && why.contains("afterok"),
        "{why}"
    );
    // The listing gives the same reason, as squeue's REASON column does.
    let listed = a
        .jobs(&JobFilter {
            state: Some("queued".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap()
        .jobs;
    let row = listed.iter().find(|j| j.id == child).expect("listed");
    assert_eq!(row.reason.as_deref(), Some(why.as_str()));
    let p = wait_terminal(&a, parent, Duration::from_secs(30)).await;
    assert_eq!(p.summary.state, JobState::Succeeded);
    let c = wait_terminal(&a, child, Duration::from_secs(30)).await;
    assert_eq!(c.summary.state, JobState::Succeeded);
    assert!(
        c.summary.started_at.unwrap() >= p.summary.ended_at.unwrap(),
        "the child started after its parent ended"
    );

    // A failed parent: the child ends, cancelled, naming the parent and how it ended.
    let failing = submit(&a, &job("failing", "sleep 1; exit 3")).await;
    let mut s = job("orphan", "echo never");
    s.dependency = Some(format!("afterok:{failing}"));
    let orphan = submit(&a, &s).await;
    let mut s = job("cleanup", "echo cleaning up");
    s.dependency = Some(format!("afternotok:{failing}"));
    let cleanup = submit(&a, &s).await;
    let mut s = job("kept", "echo never");
    s.dependency = Some(format!("afterok:{failing}"));
    s.kill_on_invalid_dep = false;
    let kept = submit(&a, &s).await;
    let f = wait_terminal(&a, failing, Duration::from_secs(30)).await;
    assert_eq!(f.summary.state, JobState::Failed);
    let o = wait_terminal(&a, orphan, Duration::from_secs(10)).await;
    assert_eq!(o.summary.state, JobState::Cancelled);
    assert_eq!(o.summary.started_at, None, "it never ran");
    let reason = o.summary.reason.unwrap_or_default();
    assert!(
        reason.contains(&format!("afterok on job {failing}, which failed")),
        "{reason}"
    );
    let cl = wait_terminal(&a, cleanup, Duration::from_secs(30)).await;
    assert_eq!(cl.summary.state, JobState::Succeeded);
    // `--kill-on-invalid-dep=no`: still pending, saying why, until cancelled.
    let k = a.job(kept).await.unwrap();
    assert_eq!(k.summary.state, JobState::Queued);
    let why = k.summary.reason.unwrap_or_default();
    assert!(
        why.contains(&format!("afterok on job {failing}, which failed"))
            && why.contains("kill-on-invalid-dep=no"),
        "{why}"
    );
    a.cancel(kept).await.unwrap();
    let k = wait_terminal(&a, kept, Duration::from_secs(10)).await;
    assert_eq!(k.summary.state, JobState::Cancelled);

    // A parent that does not exist, or is another tenant's, is refused at submit.
    for parent in [JobId(999_999), failing] {
        let mut s = job("stray", "true");
        s.dependency = Some(format!("afterany:{parent}"));
        let by = if parent == failing { &b } else { &a };
        match by.submit(&s).await {
            Err(ClientError::Api(e)) => {
                assert_eq!(e.code, ErrorCode::InvalidSpec, "{e:?}");
                assert_eq!(e.field.as_deref(), Some("spec.dependency"));
                assert!(
                    e.message.contains(&format!("job {parent}")),
                    "{}",
                    e.message
                );
            }
            other => panic!("a dependency on job {parent} was not refused: {other:?}"),
        }
    }

    // At most 100 parents a submit: each is a lookup on the engine's one task.
    let mut many = job("many-parents", "true");
    let ids: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
    many.dependency = Some(format!("afterok:{}", ids.join(":")));
    match a.submit(&many).await.unwrap_err() {
        suanli_client::ClientError::Api(e) => {
            assert_eq!(e.code, suanli_proto::ErrorCode::InvalidSpec, "{e}");
            assert!(e.message.contains("at most 100"), "{e}");
        }
        e => panic!("not refused by the API: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_now_plus_five_starts_no_earlier_than_five_seconds_after_submit() {
    let net = Net::with_agents(&[center("c-beg", "RTX4090", 1, 4, "2.00")], &["t-a"]).await;
    let a = net.user("t-a", "alice").await;
    let mut s = job("later", "echo later");
    s.begin = Some("now+5".into());
    let v = a.submit(&s).await.unwrap();
    let submitted = v.summary.submitted_at;
    let begin = v.spec.begin.clone().unwrap();
    assert!(begin.ends_with('Z'), "stored resolved: {begin}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let w = a.job(v.summary.id).await.unwrap();
    assert_eq!(w.summary.state, JobState::Queued);
    let why = w.summary.reason.unwrap_or_default();
    assert!(why.contains("begin time") && why.contains(&begin), "{why}");
    let done = wait_terminal(&a, v.summary.id, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, JobState::Succeeded);
    let started = done.summary.started_at.unwrap();
    assert!(
        started.millis_since(submitted) >= 5000,
        "started {} ms after submit",
        started.0 - submitted.0
    );
    let placed = done.placement.unwrap().at;
    assert!(placed.millis_since(submitted) >= 5000, "placed too early");

    // A begin time that is not one is refused naming the field, and the hub answers on: one
    // with a multi-byte character where the zone would be once panicked the request.
    for bad in ["Tabé12345", "9999-12-31", "-001-01-01"] {
        let mut s = job("never", "echo never");
        s.begin = Some(bad.into());
        match a.submit(&s).await.unwrap_err() {
            suanli_client::ClientError::Api(e) => {
                assert_eq!(e.code, suanli_proto::ErrorCode::InvalidSpec, "{bad:?}: {e}");
                assert!(
                    e.field.as_deref().is_some_and(|f| f.contains("begin")),
                    "{e}"
                );
            }
            e => panic!("{bad:?}: not refused by the API: {e}"),
        }
    }
    assert!(a.job(v.summary.id).await.is_ok(), "the hub still answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_jobs_wait_until_released_and_an_array_is_cancelled_as_a_unit_by_the_cli() {
    let net = Net::with_agents(&[center("c-hold", "RTX4090", 1, 4, "2.00")], &["t-a"]).await;
    let token = user_token(&net.op(), "t-a", "alice").await;
    let other = user_token(&net.op(), "t-a", "mallory").await;
    let home = tempfile::tempdir().unwrap();
    let cli = |token: &str, args: &[&str]| cli_as(&net.url, token, home.path(), args);
    let c = net.client(&token);

    let (code, out, err) = cli(
        &token,
        &["submit", "--parsable", "--hold", "--", "echo released"],
    );
    assert_eq!(code, 0, "{err}");
    let id = JobId(out.trim().parse().unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let v = c.job(id).await.unwrap();
    assert_eq!(v.summary.state, JobState::Queued);
    assert!(v.summary.held);
    assert!(v.summary.reason.unwrap_or_default().contains("held"));
    // Another user may not release it; its submitter may.
    let (code, _, err) = cli(&other, &["release", &id.to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("only their own"), "{err}");
    let (code, out, err) = cli(&token, &["release", &id.to_string()]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("Job {id} released").as_str()),
        "{err}"
    );
    let done = wait_terminal(&c, id, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, JobState::Succeeded);
    let (code, _, err) = cli(&token, &["hold", &id.to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("already ended"), "{err}");

    // An array submitted held, held and released by task, then cancelled as a unit.
    let (code, out, err) = cli(
        &token,
        &[
            "submit",
            "--parsable",
            "--array",
            "0-3",
            "--hold",
            "--",
            "echo $SLURM_ARRAY_TASK_ID",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let array = JobId(out.trim().parse().unwrap());
    let t = tasks(&c, array).await;
    assert_eq!(t.len(), 4);
    assert!(t.iter().all(|j| j.held && j.array_job_id == Some(array)));
    let (code, out, _) = cli(&token, &["jobs", "--array", &array.to_string(), "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.matches("\"array_job_id\"").count(), 4, "{out}");
    let last = t[3].id;
    let (code, _, err) = cli(&token, &["release", &last.to_string()]);
    assert_eq!(code, 0, "{err}");
    let ran = wait_terminal(&c, last, Duration::from_secs(30)).await;
    assert_eq!(ran.summary.state, JobState::Succeeded);
    assert_eq!(all_logs(&c, last).await.trim(), "3");
    let (code, out, err) = cli(&token, &["cancel", "--array", &array.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("3 cancelled") && out.contains("1 succeeded"),
        "{out}"
    );
    for j in tasks(&c, array).await.iter().take(3) {
        assert_eq!(j.state, JobState::Cancelled);
        assert_eq!(j.started_at, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_keeps_holds_begin_times_and_what_parents_came_to() {
    let mut net = Net::new(&[center("c-rst", "RTX4090", 1, 4, "2.00")], &["t-a"]).await;
    let token = user_token(&net.op(), "t-a", "alice").await;
    let a = net.client(&token);
    // The parent ends (cancelled) before the restart; its dependent is held until after.
    let parent = submit(&a, &job("parent", "true")).await;
    let mut s = job("child", "echo child");
    s.dependency = Some(format!("afterany:{parent}"));
    s.hold = true;
    let child = submit(&a, &s).await;
    let mut s = job("later", "echo later");
    s.begin = Some("now+1hour".into());
    let later = submit(&a, &s).await;
    a.cancel(parent).await.unwrap();
    net.restart_hub(false).await;
    let a = net.client(&token);
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let v = a.job(child).await.unwrap();
    assert!(v.summary.held && v.summary.state == JobState::Queued);
    let why = a
        .job(later)
        .await
        .unwrap()
        .summary
        .reason
        .unwrap_or_default();
    assert!(why.contains("begin time"), "{why}");
    a.release(child).await.unwrap();
    let done = wait_terminal(&a, child, Duration::from_secs(30)).await;
    assert_eq!(
        done.summary.state,
        JobState::Succeeded,
        "{:?}",
        done.summary.reason
    );
    assert_eq!(a.job(later).await.unwrap().summary.state, JobState::Queued);
    net.stop_agents().await;
}

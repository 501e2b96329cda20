use std::time::Instant as StdInstant;

use suanli_types::JobSpec;

use super::process::{self, Record};
use super::*;
use crate::backend::{StopSignal, stop_channel};
use crate::supervisor::Supervised;
use crate::testing::{self, attempt, text};

#[tokio::test]
async fn a_restarted_agent_kills_the_attempts_a_dead_one_left_running() {
    let root = tempfile::tempdir().unwrap();
    let spawn = |dir: &Path| {
        use std::os::unix::process::CommandExt;
        std::fs::create_dir_all(dir).unwrap();
        std::process::Command::new("sh")
            .args(["-c", "sleep 300 & sleep 300; wait"])
            .current_dir(dir)
            .process_group(0)
            .spawn()
            .unwrap()
    };
    // An attempt of a dead agent, still running in its folder.
    let left = root.path().join("7-1-0123456789abcdef");
    let mut leftover = spawn(&left);
    let pid = leftover.id() as i32;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Record::of(pid, &left).unwrap().save(root.path()).unwrap();
    // A record whose pid now belongs to another process (its start time differs): not touched.
    let other_dir = tempfile::tempdir().unwrap();
    let mut unrelated = spawn(other_dir.path());
    let stranger = unrelated.id() as i32;
    let mut reused = Record::of(stranger, &root.path().join("8-1-0123456789abcdef")).unwrap();
    reused.start -= 1;
    reused.save(root.path()).unwrap();
    // A folder of an attempt that ended while the agent was down.
    let ended = root.path().join("9-1-0123456789abcdef");
    std::fs::create_dir_all(&ended).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(sweep_leftovers(root.path(), false).await, 1);
    assert!(
        !attempt_alive(pid),
        "the leftover attempt is gone, its background child too"
    );
    assert!(
        attempt_alive(stranger),
        "an unrelated process is left alone"
    );
    let live = root.path().join(process::LIVE_DIR);
    assert_eq!(
        std::fs::read_dir(&live).unwrap().count(),
        0,
        "records removed"
    );
    assert!(
        !left.exists() && !ended.exists(),
        "leftover folders removed"
    );
    assert!(other_dir.path().exists());
    kill_attempt_and_wait(stranger).await;
    leftover.wait().unwrap();
    unrelated.wait().unwrap();
}

fn launch(root: &Path, command: &str) -> Launch {
    let mut spec = JobSpec::new("t", command);
    spec.cards_per_node = 2;
    testing::launch(root, attempt(7, 1), spec, "RTX4090", &[2, 3])
}

fn local(grace: Duration) -> Supervised<LocalBackend> {
    Supervised::new(LocalBackend::unisolated(), grace)
}

async fn run(l: Launch, grace: Duration) -> (crate::backend::RunResult, Vec<(Stream, String)>) {
    testing::run_to_end(&local(grace), l).await
}

async fn run_with(
    l: Launch,
    grace: Duration,
    stop: StopSignal,
) -> (crate::backend::RunResult, Vec<(Stream, String)>) {
    testing::run(&local(grace), l, stop).await
}

#[tokio::test]
async fn captures_output_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (r, logs) = run(
        launch(
            dir.path(),
            "echo out1; echo err1 >&2; sleep 0.3; echo out2; echo \"$CUDA_VISIBLE_DEVICES $SUANLI_JOB_ID $SUANLI_CARDS\"; echo err2 >&2",
        ),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(
        (r.outcome, r.exit_code),
        (Outcome::Succeeded, Some(0)),
        "{r:?}"
    );
    assert_eq!(text(&logs, Stream::Stdout), "out1\nout2\n2,3 7 2\n");
    assert_eq!(text(&logs, Stream::Stderr), "err1\nerr2\n");
    assert!(logs.len() >= 2, "{logs:?}");
    let (start, end) = r.span.unwrap();
    assert!(end.millis_since(start) >= 300, "{start} {end}");

    let (r, logs) = run(
        launch(dir.path(), "echo bye; exit 3"),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Failed, Some(3)));
    assert_eq!(r.message, "exited with code 3");
    assert_eq!(text(&logs, Stream::Stdout), "bye\n");

    let (r, _) = run(launch(dir.path(), "kill -9 $$"), Duration::from_secs(1)).await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Failed, None));
    assert_eq!(r.message, "killed by signal 9");
}

/// An attempt's end is when its process exited, not when the agent's runtime next got round to
/// its waiter: time the runtime spent busy after the exit (here its only thread, blocked) is not
/// billed.
#[tokio::test]
async fn the_end_is_the_exit_even_when_the_runtime_is_busy_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("ended");
    let l = launch(
        dir.path(),
        &format!("sleep 0.2; date +%s%3N > {}", mark.display()),
    );
    let b = LocalBackend::unisolated();
    let mut job = b.submit(&l).await.unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let ended = loop {
        match b.poll(&mut job).await.unwrap() {
            Some(Phase::Ended(e)) => break e,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    assert_eq!(ended.outcome, Outcome::Succeeded, "{ended:?}");
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut sink = LogSink::new(l.attempt, tx);
    let (_, end) = b.finish(job, &mut sink).await;
    let at: i64 = std::fs::read_to_string(&mark)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let late = end.unwrap().millis() - at;
    assert!(
        (-5..300).contains(&late),
        "the end is {late} ms after the job's last line"
    );
}

#[tokio::test]
async fn large_output_is_chunked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (r, logs) = run(launch(dir.path(), "seq 1 30000"), Duration::from_secs(1)).await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    let expected: String = (1..=30000).map(|i| format!("{i}\n")).collect();
    assert_eq!(text(&logs, Stream::Stdout), expected);
    assert!(
        logs.iter()
            .all(|l| l.1.len() <= crate::logs::MAX_CHUNK && l.1.ends_with('\n'))
    );
    assert!(logs.len() >= 3);
}

#[tokio::test]
async fn writes_working_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut l = launch(dir.path(), "cat conf/train.toml; pwd");
    l.spec
        .files
        .insert("conf/train.toml".into(), "epochs = 3\n".into());
    let work = l.work_dir.clone();
    let (r, logs) = run(l, Duration::from_secs(1)).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let pwd = std::fs::canonicalize(&work).unwrap();
    assert_eq!(
        text(&logs, Stream::Stdout),
        format!("epochs = 3\n{}\n", pwd.display())
    );

    let mut l = launch(dir.path(), "true");
    l.spec.files.insert("../escape".into(), String::new());
    let (r, _) = run(l, Duration::from_secs(1)).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(r.message.contains("working directory"), "{}", r.message);
}

/// Runs `command` with a wall time of 1 s and the kill grace `grace`: it times out within 5 s.
async fn times_out(command: &str, grace: Duration) -> Vec<(Stream, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut l = launch(dir.path(), command);
    l.spec.walltime = 1;
    let t = StdInstant::now();
    let (r, logs) = run(l, grace).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert_eq!(r.message, "wall-time limit of 1 s reached");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    logs
}

#[tokio::test]
async fn walltime_ends_with_timed_out() {
    let logs = times_out("echo started; sleep 30", Duration::from_secs(1)).await;
    assert_eq!(text(&logs, Stream::Stdout), "started\n");
}

#[tokio::test]
async fn term_is_followed_by_kill_after_the_grace() {
    let trapped = "trap '' TERM; sleep 30 & wait; sleep 30";
    times_out(trapped, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn kill_request_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let l = launch(dir.path(), "sleep 300 & echo $! > bg.pid; sleep 300; wait");
    let pid_file = l.work_dir.join("bg.pid");
    let (h, stop) = stop_channel();
    let task = tokio::spawn(run_with(l, Duration::from_secs(1), stop));
    let t = StdInstant::now();
    let pid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the job never wrote its pid"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(pid_alive(pid));
    assert!(h.stop("killed at the hub's request"));
    let (r, _) = task.await.unwrap();
    assert_eq!(r.outcome, Outcome::Killed, "{r:?}");
    assert_eq!(r.message, "killed at the hub's request");
    assert!(!pid_alive(pid), "background child {pid} survived");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stop_before_start_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let l = launch(dir.path(), "touch ran");
    let ran = l.work_dir.join("ran");
    let (h, stop) = stop_channel();
    h.stop("site agent stopped");
    let (r, logs) = run_with(l, Duration::from_secs(1), stop).await;
    assert_eq!(r.outcome, Outcome::Killed);
    assert!(logs.is_empty());
    assert!(!ran.exists());
}

#[test]
fn helpers() {
    assert_eq!(signal_attempt(0, 0, 0), 0);
    assert_eq!(signal_attempt(1, 0, 0), 0);
    assert!(!attempt_alive(1));
    use std::os::unix::process::ExitStatusExt;
    let ok: io::Result<ExitStatus> = Ok(ExitStatus::from_raw(0));
    assert_eq!(
        exit_of(&ok, true),
        Exit::cancelled(Outcome::Succeeded, Some(0), "")
    );
    assert_eq!(
        exit_of(&Ok(ExitStatus::from_raw(15)), false),
        Exit::new(Outcome::Failed, None, "killed by signal 15")
    );
}

/// Whether `CI` is set (to anything but empty, `0` or `false`).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Says that `test` cannot run here and why, on one line starting with `SKIPPED:` (on the
/// process's stderr, past the test harness's capture, so that `.ci/run` lists it); with `CI` set
/// it fails the test instead.
fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("CI must run {test}, but: {why}");
    }
    use std::io::Write;
    // One write, so that the line stays whole among the harness's own output.
    let line = format!("SKIPPED: {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The sandbox of `mode` on this machine for `test`, or `None` (after [`skip`]: with `CI` set the
/// test fails) when the test is not root: the modes that change users need it, and CI runs as
/// root, where they must work.
fn isolated(test: &str, mode: Isolation) -> Option<Supervised<LocalBackend>> {
    if crate::isolation::effective_uid() != 0 {
        skip(
            &format!("local::tests::{test}"),
            &format!("{mode} isolation with a job user needs root"),
        );
        return None;
    }
    let cfg = crate::isolation::IsolationConfig {
        mode: Some(mode),
        ..Default::default()
    };
    let sandbox = Sandbox::detect(&cfg).unwrap_or_else(|e| panic!("{e}"));
    Some(Supervised::new(
        LocalBackend::new(sandbox),
        Duration::from_secs(1),
    ))
}

/// H1 at the backend: a job looks for the agent's secrets, its neighbours' files and its
/// environment, and tries to write next to its folder.
const SNOOP: &str = "cat ../agent-token; cat ../7-0-0123456789abcdef/theirs; echo '<ls>'; \
                     ls -la .. 2>&1; echo '</ls>'; echo planted > ../planted; id -u; env; \
                     echo done";

async fn snoop(test: &str, mode: Isolation) -> Option<(Sandbox, String)> {
    let b = isolated(test, mode)?;
    let root = tempfile::tempdir().unwrap();
    crate::workdir::restrict(root.path(), 0o711).unwrap();
    std::fs::write(root.path().join("agent-token"), "AGENT-SECRET").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let token = root.path().join("agent-token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let theirs = root.path().join("7-0-0123456789abcdef");
    crate::workdir::prepare(
        &theirs,
        &[("theirs".to_string(), "NEIGHBOUR".to_string())].into(),
        None,
    )
    .unwrap();
    let l = launch(root.path(), SNOOP);
    let (r, logs) = testing::run_to_end(&b, l).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?} {logs:?}");
    assert!(
        !root.path().join("planted").exists(),
        "wrote next to its folder"
    );
    let out = format!(
        "{}{}",
        text(&logs, Stream::Stdout),
        text(&logs, Stream::Stderr)
    );
    for secret in ["AGENT-SECRET", "NEIGHBOUR"] {
        assert!(!out.contains(secret), "{mode}: {secret} leaked: {out}");
    }
    let listing = &out[out.find("<ls>").unwrap()..out.find("</ls>").unwrap()];
    for name in ["agent-token", "7-0-"] {
        assert!(
            !listing.contains(name),
            "{mode}: `ls -la ..` shows {name}: {listing}"
        );
    }
    assert!(out.contains("done"));
    Some((b.backend().sandbox.clone(), out))
}

/// The `KEY=value` lines of `env`'s output.
fn env_keys(out: &str) -> Vec<String> {
    let mut keys: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.to_string()))
        .filter(|k| {
            k.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_job_in_bubblewrap_sees_only_its_folder_as_the_job_user() {
    let test = "a_job_in_bubblewrap_sees_only_its_folder_as_the_job_user";
    let Some((s, out)) = snoop(test, Isolation::Bwrap).await else {
        return;
    };
    assert!(
        out.lines().any(|l| l == s.job.unwrap().uid.to_string()),
        "{out}"
    );
    let keys = env_keys(&out);
    // The Slurm variables the backend sets itself (and no other `SLURM_*` of the agent's).
    let slurm = crate::env::slurm_env(
        &std::collections::BTreeMap::new(),
        &JobSpec::new("t", "true"),
        std::path::Path::new("/"),
    );
    for k in &keys {
        assert!(
            ["HOME", "PATH", "PWD", "SHLVL", "CUDA_VISIBLE_DEVICES"].contains(&k.as_str())
                || k.starts_with("SUANLI_")
                || slurm.contains_key(k),
            "inherited {k}: {out}"
        );
    }
}

#[tokio::test]
async fn a_job_as_the_job_user_cannot_read_the_agents_files() {
    let test = "a_job_as_the_job_user_cannot_read_the_agents_files";
    let Some((s, out)) = snoop(test, Isolation::User).await else {
        return;
    };
    assert!(
        out.lines().any(|l| l == s.job.unwrap().uid.to_string()),
        "{out}"
    );
    assert!(out.contains("Permission denied"), "{out}");
    assert!(
        !env_keys(&out)
            .iter()
            .any(|k| k == "CARGO" || k == "USER" || k == "RUST_TEST_THREADS")
    );
}

#[tokio::test]
async fn a_graceful_stop_reaches_the_job_inside_bubblewrap() {
    let test = "a_graceful_stop_reaches_the_job_inside_bubblewrap";
    let Some(b) = isolated(test, Isolation::Bwrap) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let l = launch(
        root.path(),
        "trap 'echo got TERM; exit 7' TERM; echo up; sleep 30 & wait",
    );
    let (h, stop) = stop_channel();
    let task = tokio::spawn(async move { testing::run(&b, l, stop).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    h.stop("killed at the hub's request");
    let (r, logs) = task.await.unwrap();
    assert_eq!(
        (r.outcome, r.exit_code),
        (Outcome::Killed, Some(7)),
        "{r:?} {logs:?}"
    );
    assert!(text(&logs, Stream::Stdout).contains("got TERM"), "{logs:?}");
}

use std::time::Instant as StdInstant;

use suanli_types::JobSpec;

use super::process::{kill_group_and_wait, parse_stat, signal_group};
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
    // An attempt of a dead agent, still running in its directory.
    let left = root.path().join("7-1");
    let mut leftover = spawn(&left);
    let pgid = leftover.id() as i32;
    std::fs::write(left.join(PGID_FILE), pgid.to_string()).unwrap();
    // A record whose process runs elsewhere (a reused id): not touched.
    let other_dir = tempfile::tempdir().unwrap();
    let mut unrelated = spawn(other_dir.path());
    let stranger = unrelated.id() as i32;
    let stale = root.path().join("8-1");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(PGID_FILE), stranger.to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    assert_eq!(sweep_leftovers(root.path()).await, 1);
    assert!(!group_alive(pgid), "the leftover group is gone");
    assert!(group_alive(stranger), "an unrelated group is left alone");
    assert!(!left.join(PGID_FILE).exists() && !stale.join(PGID_FILE).exists());
    kill_group_and_wait(stranger).await;
    leftover.wait().unwrap();
    unrelated.wait().unwrap();
}

fn launch(root: &Path, command: &str) -> Launch {
    let mut spec = JobSpec::new("t", command);
    spec.cards_per_node = 2;
    testing::launch(root, attempt(7, 1), spec, "RTX4090", &[2, 3])
}

fn local(grace: Duration) -> Supervised<LocalBackend> {
    Supervised::new(LocalBackend::new(), grace)
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
    assert_eq!(parse_stat("123 (a b) c) S 1 456 789"), Some(('S', 456)));
    assert_eq!(parse_stat("garbage"), None);
    assert!(signal_group(0, 0).is_err());
    assert!(signal_group(1, 0).is_err());
    assert!(!group_alive(1));
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

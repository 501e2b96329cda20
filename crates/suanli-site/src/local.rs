//! The local backend: runs `sh -c <command>` on this machine in its own process group. Cards are
//! slots only (exposed through the visible-devices variable), so one machine stands in for a center.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use suanli_proto::{Outcome, Stream};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{Backend, BoxFuture, Launch, RunResult, StopSignal};
use crate::env::safe_relative_path;
use crate::logs::{FLUSH_INTERVAL, LineChunker, LogSink};

/// How long to wait for the output pipes to close once the process group is gone (a process that
/// left the group may still hold them).
const PIPE_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long to wait for the group to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
const GROUP_POLL: Duration = Duration::from_millis(50);

/// Runs attempts as local process groups.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    kill_grace: Duration,
}

impl LocalBackend {
    /// `kill_grace`: time between SIGTERM and SIGKILL.
    pub fn new(kill_grace: Duration) -> LocalBackend {
        LocalBackend { kill_grace }
    }

    async fn run_local(&self, launch: Launch, logs: LogSink, mut stop: StopSignal) -> RunResult {
        let failed = |message: String, logs: &LogSink| RunResult {
            outcome: Outcome::Failed,
            exit_code: None,
            message,
            log_chunks: logs.emitted(),
            span: None,
        };
        if let Err(e) = prepare(&launch.work_dir, &launch.spec.files).await {
            return failed(format!("cannot prepare the working directory: {e}"), &logs);
        }
        if let Some(reason) = stop.requested_now() {
            return RunResult {
                outcome: Outcome::Killed,
                exit_code: None,
                message: reason,
                log_chunks: 0,
                span: None,
            };
        }
        let mut child = match Command::new("sh")
            .arg("-c")
            .arg(&launch.spec.command)
            .current_dir(&launch.work_dir)
            .envs(&launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return failed(format!("cannot start sh: {e}"), &logs),
        };
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        // So that a restarted agent can find and stop this group if this agent dies.
        let pgid_file = launch.work_dir.join(PGID_FILE);
        if let Err(e) = std::fs::write(&pgid_file, pgid.to_string()) {
            tracing::warn!(error = %e, "cannot record the attempt's process group");
        }

        let (tx, rx) = mpsc::channel(64);
        let mut readers: Vec<JoinHandle<()>> = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_pipe(out, Stream::Stdout, tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_pipe(err, Stream::Stderr, tx.clone())));
        }
        drop(tx);
        let mut pump = tokio::spawn(pump_logs(rx, logs));

        let walltime = Duration::from_secs(launch.spec.walltime);
        let waited = tokio::select! {
            r = child.wait() => Ok(r),
            _ = tokio::time::sleep(walltime) => Err(End::TimedOut(launch.spec.walltime)),
            reason = stop.requested() => Err(End::Stopped(reason)),
        };
        let (end, status) = match waited {
            Ok(status) => (End::Exited, status),
            Err(end) => (end, terminate(pgid, &mut child, self.kill_grace).await),
        };
        // Whatever is left of the group goes now.
        kill_group_and_wait(pgid).await;
        let _ = std::fs::remove_file(&pgid_file);

        let logs = match tokio::time::timeout(PIPE_CLOSE_WAIT, &mut pump).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(
                    job = %launch.attempt.job,
                    attempt = launch.attempt.attempt,
                    "output pipes still open after the process group ended; closing them"
                );
                for r in &readers {
                    r.abort();
                }
                pump.await
            }
        };
        let log_chunks = match logs {
            Ok(sink) => sink.emitted(),
            Err(e) => {
                tracing::error!(error = %e, "log pump failed");
                0
            }
        };
        let (outcome, exit_code, message) = classify(&end, &status);
        RunResult {
            outcome,
            exit_code,
            message,
            log_chunks,
            span: None,
        }
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult> {
        Box::pin(self.run_local(launch, logs, stop))
    }
}

/// Why the wait for the main process ended.
#[derive(Debug)]
pub(crate) enum End {
    Exited,
    TimedOut(u64),
    Stopped(String),
}

/// Outcome, exit code and message from how the run ended and the main process's status.
pub(crate) fn classify(
    end: &End,
    status: &io::Result<ExitStatus>,
) -> (Outcome, Option<i32>, String) {
    use std::os::unix::process::ExitStatusExt;
    let code = status.as_ref().ok().and_then(|s| s.code());
    match end {
        End::TimedOut(secs) => (
            Outcome::TimedOut,
            code,
            format!("wall-time limit of {secs} s reached"),
        ),
        End::Stopped(reason) => (Outcome::Killed, code, reason.clone()),
        End::Exited => match status {
            Err(e) => (
                Outcome::Failed,
                None,
                format!("lost track of the process: {e}"),
            ),
            Ok(s) => match (s.code(), s.signal()) {
                (Some(0), _) => (Outcome::Succeeded, Some(0), String::new()),
                (Some(c), _) => (Outcome::Failed, Some(c), format!("exited with code {c}")),
                (None, Some(sig)) => (Outcome::Failed, None, format!("killed by signal {sig}")),
                (None, None) => (Outcome::Failed, None, "ended without an exit code".into()),
            },
        },
    }
}

/// Creates the working directory and writes the working files.
pub(crate) async fn prepare(dir: &Path, files: &BTreeMap<String, String>) -> io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    for (rel, content) in files {
        if !safe_relative_path(rel) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("working file path {rel:?} is not a plain relative path"),
            ));
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, content).await?;
    }
    Ok(())
}

/// SIGTERM to the group; once the main process has exited and the group is gone, or after the
/// grace period, SIGKILL. Returns the main process's status.
async fn terminate(pgid: i32, child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + grace;
    let _ = signal_group(pgid, libc::SIGTERM);
    if let Ok(status) = tokio::time::timeout_at(deadline, child.wait()).await {
        while group_alive(pgid) && Instant::now() < deadline {
            tokio::time::sleep(GROUP_POLL).await;
        }
        return status;
    }
    let _ = signal_group(pgid, libc::SIGKILL);
    child.wait().await
}

/// SIGKILL to whatever is left of the group, then wait (briefly) until it is gone.
/// Where an attempt's working directory records its process group while it runs.
const PGID_FILE: &str = ".suanli-pgid";

/// Kills the process groups of attempts under `work_dir` that an earlier run of the agent left
/// running, and returns how many. A recorded group counts only if its leader still runs in that
/// attempt's directory, so a reused process id is never hit.
pub async fn sweep_leftovers(work_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return 0;
    };
    let mut swept = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let file = dir.join(PGID_FILE);
        let Some(pgid) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let cwd = std::fs::read_link(format!("/proc/{pgid}/cwd")).ok();
        let same = cwd.is_some_and(|c| Some(c) == std::fs::canonicalize(&dir).ok());
        if same && group_alive(pgid) {
            tracing::warn!(pgid, dir = %dir.display(), "killing a leftover attempt");
            kill_group_and_wait(pgid).await;
            swept += 1;
        }
        let _ = std::fs::remove_file(&file);
    }
    swept
}

async fn kill_group_and_wait(pgid: i32) {
    if !group_alive(pgid) {
        return;
    }
    let _ = signal_group(pgid, libc::SIGKILL);
    let deadline = Instant::now() + KILL_WAIT;
    while group_alive(pgid) && Instant::now() < deadline {
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// Sends `sig` to process group `pgid` (0 probes). Refuses groups 0 and 1, which would hit the agent
/// itself or everything.
#[allow(unsafe_code)]
pub(crate) fn signal_group(pgid: i32, sig: i32) -> io::Result<()> {
    if pgid <= 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no process group",
        ));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid addresses
    // the process group, and pgid > 1 keeps it away from our own group (0) and every process (-1).
    let rc = unsafe { libc::kill(-pgid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Is any live (non-zombie) process left in the group? Zombies count as gone: an init that does not
/// reap orphans would otherwise keep a group "alive" forever.
pub(crate) fn group_alive(pgid: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    match std::fs::read_dir("/proc") {
        Ok(entries) => entries.flatten().any(|e| {
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                return false;
            };
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z' && state != 'X')
        }),
        Err(_) => signal_group(pgid, 0).is_ok(),
    }
}

/// State and process group from `/proc/<pid>/stat` (`pid (comm) S ppid pgrp ...`).
pub(crate) fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

async fn read_pipe(
    mut pipe: impl AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Vec<u8>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if tx.send((stream, buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, ?stream, "reading job output failed");
                break;
            }
        }
    }
}

/// Chunks both streams into the sink until both pipes close; returns the sink.
async fn pump_logs(mut rx: mpsc::Receiver<(Stream, Vec<u8>)>, mut sink: LogSink) -> LogSink {
    let mut out = LineChunker::default();
    let mut err = LineChunker::default();
    let mut tick = tokio::time::interval_at(Instant::now() + FLUSH_INTERVAL, FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((stream, data)) => {
                    let chunker = if stream == Stream::Stdout { &mut out } else { &mut err };
                    for c in chunker.push(&data) {
                        sink.emit(stream, c);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                for c in out.tick() {
                    sink.emit(Stream::Stdout, c);
                }
                for c in err.tick() {
                    sink.emit(Stream::Stderr, c);
                }
            }
        }
    }
    for c in out.finish() {
        sink.emit(Stream::Stdout, c);
    }
    for c in err.finish() {
        sink.emit(Stream::Stderr, c);
    }
    sink
}

#[cfg(test)]
mod tests {
    use std::time::Instant as StdInstant;

    use suanli_proto::{AgentEvent, AttemptRef, EventKind};
    use suanli_types::{JobId, JobSpec};

    use super::*;
    use crate::backend::stop_channel;
    use crate::env::{attempt_dir, build_env};
    use crate::inventory::ReservedNode;

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
        let attempt = AttemptRef {
            job: JobId(7),
            attempt: 1,
        };
        let mut spec = JobSpec::new("t", command);
        spec.cards_per_node = 2;
        let nodes = vec![ReservedNode {
            node: "rtx4090-0".into(),
            slots: vec![2, 3],
        }];
        let dir = attempt_dir(root, attempt);
        Launch {
            attempt,
            env: build_env(attempt, &spec, "RTX4090", &nodes, &dir),
            spec,
            sku: "RTX4090".into(),
            nodes,
            work_dir: dir,
        }
    }

    async fn run(l: Launch, grace: Duration) -> (RunResult, Vec<(u64, Stream, String)>) {
        let (_h, stop) = stop_channel();
        run_with(l, grace, stop).await
    }

    async fn run_with(
        l: Launch,
        grace: Duration,
        stop: StopSignal,
    ) -> (RunResult, Vec<(u64, Stream, String)>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<AgentEvent>();
        let sink = LogSink::new(l.attempt, tx);
        let r = LocalBackend::new(grace).run(l, sink, stop).await;
        let mut logs = Vec::new();
        while let Ok(e) = rx.try_recv() {
            match e.kind {
                EventKind::Log { seq, stream, data } => logs.push((seq, stream, data)),
                other => panic!("backend sent {other:?}"),
            }
        }
        (r, logs)
    }

    fn text(logs: &[(u64, Stream, String)], stream: Stream) -> String {
        logs.iter()
            .filter(|l| l.1 == stream)
            .map(|l| l.2.as_str())
            .collect()
    }

    fn assert_gap_free(logs: &[(u64, Stream, String)], r: &RunResult) {
        let seqs: Vec<u64> = logs.iter().map(|l| l.0).collect();
        assert_eq!(seqs, (0..logs.len() as u64).collect::<Vec<_>>());
        assert_eq!(r.log_chunks, logs.len() as u64);
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
        assert_gap_free(&logs, &r);

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
                .all(|l| l.2.len() <= crate::logs::MAX_CHUNK && l.2.ends_with('\n'))
        );
        assert!(logs.len() >= 3);
        assert_gap_free(&logs, &r);
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

    #[tokio::test]
    async fn walltime_ends_with_timed_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = launch(dir.path(), "echo started; sleep 30");
        l.spec.walltime = 1;
        let t = StdInstant::now();
        let (r, logs) = run(l, Duration::from_secs(1)).await;
        assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
        assert_eq!(r.message, "wall-time limit of 1 s reached");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(text(&logs, Stream::Stdout), "started\n");
    }

    #[tokio::test]
    async fn term_is_followed_by_kill_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = launch(dir.path(), "trap '' TERM; sleep 30 & wait; sleep 30");
        l.spec.walltime = 1;
        let t = StdInstant::now();
        let (r, _) = run(l, Duration::from_millis(500)).await;
        assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    fn pid_alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .is_some_and(|(state, _)| state != 'Z' && state != 'X')
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
        let ok: io::Result<ExitStatus> = Ok(std::os::unix::process::ExitStatusExt::from_raw(0));
        assert_eq!(
            classify(&End::Stopped("x".into()), &ok),
            (Outcome::Killed, Some(0), "x".into())
        );
    }
}

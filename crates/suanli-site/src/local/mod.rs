//! The local backend: runs `sh -c <command>` on this machine under the agent's isolation mode
//! ([`crate::isolation`]: in a bubblewrap sandbox, as the job user, or as the agent's own user),
//! in a session of its own, with a cleared environment. Cards are slots only (exposed through the
//! visible-devices variable), so one machine stands in for a center.
//!
//! Submit makes the attempt folder ([`crate::workdir`]) and starts the job from a thread of the
//! backend's own, with the parent-death signal set: if the agent dies, so does the job's leader
//! (and in bubblewrap its whole pid namespace). A record in the working directory (leader pid and
//! start time) lets a restarted agent kill what a crash left ([`sweep_leftovers`]). Poll asks
//! whether the leader has exited (and, once the agent has signalled the attempt, whether all of
//! its processes are gone); cancel sends SIGTERM, then SIGKILL, to the attempt's session, group
//! and tree; output is read from the pipes as it comes and shipped at every log tick. Whatever is
//! left of the attempt when it ends is killed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use suanli_proto::{Outcome, Stream};
use suanli_types::spec::signal::WarnSignal;
use suanli_types::{BackendKind, CenterSpec, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::backend::{
    Backend, BackendEntry, BoxFuture, Exit, Launch, Pace, Phase, Runner, Span, SubmitError,
    supervised,
};
use crate::isolation::{Ids, Isolation, Sandbox, job_env};
use crate::logs::{LineChunker, LogSink};
use crate::{AgentConfig, SiteError, now, workdir};

mod process;
#[cfg(test)]
mod tests;

pub(crate) use process::pid_alive;
pub use process::sweep_leftovers;
use process::{Record, attempt_alive, kill_attempt_and_wait, signal_attempt, signal_batch_shell};

/// How long to wait for the output pipes to close once the attempt's processes are gone (a
/// process that left them may still hold them).
const PIPE_CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often the main process and the group are looked at.
const POLL: Duration = Duration::from_millis(50);
/// After SIGKILL, how long the group may take to go.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// Output read in flight between two log ticks, in reads of up to [`READ_SIZE`].
const PIPE_QUEUE: usize = 1024;
const READ_SIZE: usize = 16 * 1024;

/// The local backend in the registry ([`crate::BACKENDS`]).
pub(crate) const BACKEND: BackendEntry = BackendEntry {
    kind: BackendKind::Local,
    settings: &[],
    start,
};

/// Resolves the isolation mode (the strongest available unless one is asked for), makes the
/// working directory fit it, and kills first the attempts an earlier run of this agent left
/// running (it was killed): they must not run on, the hub has requeued them and their reports
/// would be fenced anyway.
fn start<'a>(
    _center: &'a CenterSpec,
    config: &'a AgentConfig,
) -> BoxFuture<'a, Result<Arc<dyn Runner>, SiteError>> {
    Box::pin(async move {
        let iso = config.isolation.clone();
        let sandbox = tokio::task::spawn_blocking(move || Sandbox::detect(&iso))
            .await
            .map_err(|e| SiteError::Config(format!("isolation check failed: {e}")))?
            .map_err(|e| SiteError::Config(e.to_string()))?;
        prepare_work_dir(&config.work_dir, &sandbox)?;
        announce(&sandbox);
        let swept = sweep_leftovers(&config.work_dir, config.keep_attempt_dirs).await;
        if swept > 0 {
            tracing::warn!(
                swept,
                "killed attempts left running by an earlier run of this agent"
            );
        }
        Ok(supervised(LocalBackend::new(sandbox), config))
    })
}

/// Logs the mode; `none` loudly.
fn announce(s: &Sandbox) {
    match s.mode {
        Isolation::None => tracing::warn!(
            isolation = "none",
            "JOBS RUN AS THE AGENT'S OWN USER: they can read the agent's token, its data and \
             every other attempt's files. Use isolation none only on a single-tenant machine."
        ),
        mode => tracing::info!(
            isolation = mode.as_str(),
            job_uid = s.job.map(|i| i.uid),
            unshare_net = s.unshare_net,
            "jobs run isolated"
        ),
    }
}

/// The working directory is the agent's: 0700, or 0711 in `user` mode (the job user must pass
/// through it to its folder, without listing it), every ancestor passable by the job user then;
/// and in `bwrap` mode never under a directory the sandbox shows.
fn prepare_work_dir(dir: &Path, s: &Sandbox) -> Result<(), SiteError> {
    let bad = |why: String| SiteError::Config(why);
    let mode = if s.mode == Isolation::User {
        0o711
    } else {
        0o700
    };
    workdir::restrict(dir, mode).map_err(|e| SiteError::WorkDir {
        path: dir.to_path_buf(),
        source: e,
    })?;
    if let Some(exposed) = s.exposes(dir) {
        return Err(bad(format!(
            "the working directory {} lies under {}, which the sandbox shows to every job; \
             choose another --work-dir",
            dir.display(),
            exposed.display()
        )));
    }
    if let (Isolation::User, Some(ids)) = (s.mode, s.job)
        && let Some(blocked) = workdir::untraversable(dir, ids)
    {
        return Err(bad(format!(
            "isolation user: the job user (uid {}) cannot reach the working directory {} \
             because {} is closed to it; make it passable (chmod o+x {}), choose another \
             --work-dir, or use --isolation bwrap",
            ids.uid,
            dir.display(),
            blocked.display(),
            blocked.display()
        )));
    }
    Ok(())
}

/// Runs attempts as local processes.
#[derive(Clone, Debug)]
pub struct LocalBackend {
    sandbox: Sandbox,
    /// Started on the first submit, inside the agent's runtime.
    spawner: Arc<OnceLock<Spawner>>,
}

impl LocalBackend {
    pub fn new(sandbox: Sandbox) -> LocalBackend {
        LocalBackend {
            sandbox,
            spawner: Arc::new(OnceLock::new()),
        }
    }

    /// Jobs run as the agent's user, with a cleared environment only (tests).
    pub fn unisolated() -> LocalBackend {
        LocalBackend::new(Sandbox {
            mode: Isolation::None,
            job: None,
            root: crate::isolation::effective_uid() == 0,
            unshare_net: false,
            layout: Vec::new(),
        })
    }

    /// Who owns what the job may write: the job user, in modes that have one.
    fn owner(&self) -> Option<Ids> {
        match self.sandbox.mode {
            Isolation::None => None,
            Isolation::User | Isolation::Bwrap => self.sandbox.job,
        }
    }
}

/// Starts jobs from one thread that lives as long as the backend: the parent-death signal is
/// tied to the thread that forked, and a runtime's worker threads may come and go.
#[derive(Debug)]
struct Spawner {
    tx: std::sync::mpsc::Sender<(std::process::Command, oneshot::Sender<io::Result<Child>>)>,
}

impl Spawner {
    fn start() -> io::Result<Spawner> {
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (tx, rx) = std::sync::mpsc::channel::<(
            std::process::Command,
            oneshot::Sender<io::Result<Child>>,
        )>();
        std::thread::Builder::new()
            .name("suanli-spawner".into())
            .spawn(move || {
                let _rt = handle.enter();
                for (cmd, reply) in rx {
                    let mut cmd = tokio::process::Command::from(cmd);
                    let _ = reply.send(cmd.kill_on_drop(true).spawn());
                }
            })?;
        Ok(Spawner { tx })
    }

    async fn spawn(&self, cmd: std::process::Command) -> io::Result<Child> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((cmd, reply))
            .map_err(|_| io::Error::other("the spawner thread is gone"))?;
        rx.await
            .map_err(|_| io::Error::other("the spawner thread is gone"))?
    }
}

/// The command of an attempt: `program` with `args` in `dir`, the environment `env` only (for
/// bubblewrap it is in the arguments), as `user` when given; in a new session, with SIGKILL as
/// its parent-death signal.
#[allow(unsafe_code)]
fn command(
    program: &Path,
    args: &[std::ffi::OsString],
    dir: &Path,
    env: Option<&BTreeMap<String, String>>,
    user: Option<Ids>,
) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match env {
        Some(env) => {
            cmd.envs(env);
        }
        None => {
            cmd.env("PATH", crate::isolation::JOB_PATH);
        }
    }
    if let Some(u) = user {
        // std drops the supplementary groups when it changes the user as root.
        cmd.uid(u.uid).gid(u.gid);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec, and calls only async-signal-safe functions
    // (setsid, prctl, getppid) without allocating. std runs it after changing the user, which
    // would clear the parent-death signal if it were set before.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            // The agent died between the fork and the prctl: the signal will not come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd
}

/// One attempt's processes.
#[derive(Debug)]
pub struct LocalJob {
    /// Waits for the main process and stamps its exit the moment it comes (not at the next
    /// poll: the bill ends there). Aborted with the job, which kills the process (kill on drop).
    waiter: JoinHandle<()>,
    exit: oneshot::Receiver<(Timestamp, io::Result<ExitStatus>)>,
    /// The leader's pid, which is also its session's and its group's id.
    leader: i32,
    /// Processes of bubblewrap's between the leader and the job (see
    /// [`Sandbox::wrapper_depth`]).
    wrappers: usize,
    /// The record a restarted agent sweeps by.
    record: Option<PathBuf>,
    pipes: mpsc::Receiver<(Stream, Vec<u8>)>,
    readers: Vec<JoinHandle<()>>,
    output: Output,
    spawned: Timestamp,
    /// When the main process was seen to exit, and how.
    exited: Option<(Timestamp, io::Result<ExitStatus>)>,
    /// The agent has signalled the group.
    signalled: bool,
}

impl Drop for LocalJob {
    fn drop(&mut self) {
        self.waiter.abort();
    }
}

impl fmt::Display for LocalJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process session {}", self.leader)
    }
}

/// Both output streams, cut into chunks.
#[derive(Debug, Default)]
struct Output {
    out: LineChunker,
    err: LineChunker,
}

impl Output {
    fn push(&mut self, stream: Stream, data: &[u8], sink: &mut LogSink) {
        let chunker = match stream {
            Stream::Stdout => &mut self.out,
            Stream::Stderr => &mut self.err,
        };
        for c in chunker.push(data) {
            sink.emit(stream, c);
        }
    }

    fn flush(&mut self, sink: &mut LogSink, last: bool) {
        for (stream, chunker) in [
            (Stream::Stdout, &mut self.out),
            (Stream::Stderr, &mut self.err),
        ] {
            let chunks = if last {
                chunker.finish()
            } else {
                chunker.tick()
            };
            for c in chunks {
                sink.emit(stream, c);
            }
        }
    }
}

impl Backend for LocalBackend {
    type Job = LocalJob;

    fn cuts_network(&self) -> bool {
        self.sandbox.mode == Isolation::Bwrap
    }

    fn pace(&self) -> Pace {
        Pace::new(POLL, CANCEL_WAIT)
    }

    async fn submit(&self, launch: &Launch) -> Result<LocalJob, SubmitError> {
        let dir = launch.work_dir.clone();
        let files = launch.spec.files.clone();
        let checkpoint = launch.checkpoint.clone();
        let owner = self.owner();
        let made = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || {
                workdir::prepare(&dir, &files, owner)?;
                match &checkpoint {
                    Some(c) => workdir::restore(&dir, c, owner),
                    None => Ok(()),
                }
            })
            .await
        };
        match made {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(SubmitError::failed(format!(
                    "cannot prepare the working directory: {e}"
                )));
            }
            Err(e) => {
                return Err(SubmitError::failed(format!(
                    "cannot prepare the working directory: {e}"
                )));
            }
        }
        // The job's Slurm variables under the agent's own (a Slurm script reads them, `set -u`).
        let mut launch_env = crate::env::slurm_env(&launch.env, &launch.spec, &dir);
        launch_env.extend(launch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let env = job_env(&launch_env, &dir);
        let (program, args) =
            self.sandbox
                .program(&dir, &env, &launch.spec.command, &launch.datasets);
        let (env, user) = match self.sandbox.mode {
            // bubblewrap starts as the agent; the sandbox drops to the job user.
            Isolation::Bwrap => (None, None),
            Isolation::User => (Some(&env), self.sandbox.job),
            Isolation::None => (Some(&env), None),
        };
        let cmd = command(&program, &args, &dir, env, user);
        let spawner = match self.spawner.get() {
            Some(s) => s,
            None => {
                let s = Spawner::start().map_err(|e| {
                    SubmitError::failed(format!("cannot start the spawner thread: {e}"))
                })?;
                self.spawner.get_or_init(|| s)
            }
        };
        // Taken before the spawn: the job's process may run before `spawn` returns, and a bill
        // must not start after the work it bills.
        let spawned = now();
        let mut child = spawner
            .spawn(cmd)
            .await
            .map_err(|e| SubmitError::failed(format!("cannot start {}: {e}", program.display())))?;
        let leader = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        // So that a restarted agent can find and stop this attempt if this agent dies.
        let record = dir.parent().and_then(|work| {
            let saved = Record::of(leader, &dir).map(|r| r.save(work));
            match saved {
                Some(Ok(path)) => Some(path),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot record the attempt's processes");
                    None
                }
                None => None,
            }
        });
        let (tx, pipes) = mpsc::channel(PIPE_QUEUE);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_pipe(out, Stream::Stdout, tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_pipe(err, Stream::Stderr, tx)));
        }
        let (stamp, exit) = oneshot::channel();
        let exited_at = exit_stamp(leader);
        let waiter = tokio::spawn(async move {
            let status = child.wait().await;
            let seen = now();
            // The stamp of the thread that saw the exit as it happened; this task may run much
            // later when the runtime is busy. It comes at once unless that thread missed the
            // exit (then it never does, and what this task saw stands).
            let at = match tokio::time::timeout(EXIT_STAMP_WAIT, exited_at).await {
                Ok(Ok(at)) => at.min(seen),
                _ => seen,
            };
            let _ = stamp.send((at, status));
        });
        Ok(LocalJob {
            waiter,
            exit,
            leader,
            wrappers: self.sandbox.wrapper_depth(),
            record,
            pipes,
            readers,
            output: Output::default(),
            spawned,
            exited: None,
            signalled: false,
        })
    }

    async fn poll(&self, job: &mut LocalJob) -> Result<Option<Phase>, String> {
        let running = Phase::Running {
            since: Some(job.spawned),
        };
        if job.exited.is_none() {
            job.exited = Some(match job.exit.try_recv() {
                Ok(exited) => exited,
                Err(oneshot::error::TryRecvError::Empty) => return Ok(Some(running)),
                Err(oneshot::error::TryRecvError::Closed) => (
                    now(),
                    Err(io::Error::other("the wait for the process ended")),
                ),
            });
        }
        // A group the agent signalled gets its grace to end as a whole.
        if job.signalled && attempt_alive(job.leader) {
            return Ok(Some(running));
        }
        let status = job.exited.as_ref().map(|(_, s)| s);
        Ok(status.map(|s| Phase::Ended(exit_of(s, job.signalled))))
    }

    async fn cancel(&self, job: &mut LocalJob, force: bool) {
        job.signalled = true;
        if force {
            signal_attempt(job.leader, libc::SIGKILL, 0);
        } else if signal_attempt(job.leader, libc::SIGTERM, job.wrappers) == 0 {
            // Nothing of the job's own yet (bubblewrap still setting up): stop the leader.
            signal_attempt(job.leader, libc::SIGTERM, 0);
        }
    }

    async fn warn(&self, job: &mut LocalJob, w: &WarnSignal) -> bool {
        let sent = if w.batch_only {
            signal_batch_shell(job.leader, w.number, job.wrappers)
        } else {
            signal_attempt(job.leader, w.number, job.wrappers)
        };
        sent > 0
    }

    async fn logs(&self, job: &mut LocalJob, sink: &mut LogSink) {
        while let Ok((stream, data)) = job.pipes.try_recv() {
            job.output.push(stream, &data, sink);
        }
        job.output.flush(sink, false);
    }

    async fn finish(&self, mut job: LocalJob, sink: &mut LogSink) -> Span {
        // Whatever is left of the attempt goes now.
        kill_attempt_and_wait(job.leader).await;
        if let Some(r) = &job.record {
            let _ = std::fs::remove_file(r);
        }
        let (pipes, output) = (&mut job.pipes, &mut job.output);
        let drained = tokio::time::timeout(PIPE_CLOSE_WAIT, async {
            while let Some((stream, data)) = pipes.recv().await {
                output.push(stream, &data, sink);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                leader = job.leader,
                "output pipes still open after the attempt's processes ended; closing them"
            );
            for r in &job.readers {
                r.abort();
            }
            while let Ok((stream, data)) = job.pipes.try_recv() {
                job.output.push(stream, &data, sink);
            }
        }
        job.output.flush(sink, true);
        (Some(job.spawned), job.exited.as_ref().map(|(at, _)| *at))
    }
}

/// How long the waiter of an exited leader waits for [`exit_stamp`]'s time.
const EXIT_STAMP_WAIT: Duration = Duration::from_millis(100);

/// When the leader `pid` (a child of this process) exits, seen by a thread of its own that waits
/// for it without reaping it (tokio's waiter reaps it). The waiter runs only when the agent's
/// runtime gets round to it, which under load (a burst of spawns, a slow disk) is hundreds of
/// milliseconds after the exit, and a bill must not end after the work it bills. Nothing comes
/// when the thread cannot start or the process was reaped before it looked.
#[allow(unsafe_code)]
fn exit_stamp(pid: i32) -> oneshot::Receiver<Timestamp> {
    let (tx, rx) = oneshot::channel();
    let Ok(id) = libc::id_t::try_from(pid) else {
        return rx;
    };
    if id == 0 {
        return rx;
    }
    let _ = std::thread::Builder::new()
        .name("suanli-exit".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                // SAFETY: a zeroed siginfo_t is valid, and waitid only writes into it; WNOWAIT
                // leaves the child waitable, for its reaper.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let r = unsafe {
                    libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT)
                };
                if r == 0 {
                    let _ = tx.send(now());
                    return;
                }
                if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return;
                }
            }
        });
    rx
}

/// How the main process ended; `signalled`: the agent had signalled its group.
pub(crate) fn exit_of(status: &io::Result<ExitStatus>, signalled: bool) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    let code = status.as_ref().ok().and_then(|s| s.code());
    let exit = match status {
        Err(e) => Exit::new(
            Outcome::Failed,
            None,
            format!("lost track of the process: {e}"),
        ),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(0), _) => Exit::new(Outcome::Succeeded, Some(0), ""),
            (Some(c), _) => Exit::new(Outcome::Failed, Some(c), format!("exited with code {c}")),
            (None, Some(sig)) => {
                Exit::new(Outcome::Failed, None, format!("killed by signal {sig}"))
            }
            (None, None) => Exit::new(Outcome::Failed, None, "ended without an exit code"),
        },
    };
    if signalled {
        Exit::cancelled(exit.outcome, code, exit.message)
    } else {
        exit
    }
}

async fn read_pipe(
    mut pipe: impl AsyncRead + Unpin,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Vec<u8>)>,
) {
    let mut buf = vec![0u8; READ_SIZE];
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

//! The local backend: runs `sh -c <command>` on this machine in its own process group. Cards are
//! slots only (exposed through the visible-devices variable), so one machine stands in for a center.
//!
//! Submit spawns the group (recording its id in the working directory, for [`sweep_leftovers`]);
//! poll asks whether the main process has exited (and, once the agent has signalled the group,
//! whether the whole group is gone); cancel sends SIGTERM, then SIGKILL; output is read from the
//! pipes as it comes and shipped at every log tick. Whatever is left of the group when the attempt
//! ends is killed.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::sync::Arc;

use suanli_proto::{Outcome, Stream};
use suanli_types::{BackendKind, CenterSpec, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backend::{
    Backend, BackendEntry, BoxFuture, Exit, Launch, Pace, Phase, Runner, Span, SubmitError,
    supervised,
};
use crate::env::safe_relative_path;
use crate::logs::{LineChunker, LogSink};
use crate::{AgentConfig, now};

mod process;
#[cfg(test)]
mod tests;

pub use process::sweep_leftovers;
use process::{PGID_FILE, kill_group_and_wait, signal_group};
pub(crate) use process::{group_alive, pid_alive};

/// How long to wait for the output pipes to close once the process group is gone (a process that
/// left the group may still hold them).
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

/// Kills first the attempts an earlier run of this agent left running (it was killed): they must
/// not run on, the hub has requeued them and their reports would be fenced anyway.
fn start<'a>(_center: &'a CenterSpec, config: &'a AgentConfig) -> BoxFuture<'a, Arc<dyn Runner>> {
    Box::pin(async move {
        let swept = sweep_leftovers(&config.work_dir).await;
        if swept > 0 {
            tracing::warn!(
                swept,
                "killed attempts left running by an earlier run of this agent"
            );
        }
        supervised(LocalBackend::new(), config)
    })
}

/// Runs attempts as local process groups.
#[derive(Clone, Debug, Default)]
pub struct LocalBackend;

impl LocalBackend {
    pub fn new() -> LocalBackend {
        LocalBackend
    }
}

/// One attempt's process group.
#[derive(Debug)]
pub struct LocalJob {
    child: Child,
    pgid: i32,
    pgid_file: PathBuf,
    pipes: mpsc::Receiver<(Stream, Vec<u8>)>,
    readers: Vec<JoinHandle<()>>,
    output: Output,
    spawned: Timestamp,
    /// When the main process was seen to exit, and how.
    exited: Option<(Timestamp, io::Result<ExitStatus>)>,
    /// The agent has signalled the group.
    signalled: bool,
}

impl fmt::Display for LocalJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process group {}", self.pgid)
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

    fn pace(&self) -> Pace {
        Pace::new(POLL, CANCEL_WAIT)
    }

    async fn submit(&self, launch: &Launch) -> Result<LocalJob, SubmitError> {
        prepare(&launch.work_dir, &launch.spec.files)
            .await
            .map_err(|e| {
                SubmitError::failed(format!("cannot prepare the working directory: {e}"))
            })?;
        // Taken before the spawn: the job's process may run before `spawn` returns, and a bill
        // must not start after the work it bills.
        let spawned = now();
        let mut child = Command::new("sh")
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
            .map_err(|e| SubmitError::failed(format!("cannot start sh: {e}")))?;
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        // So that a restarted agent can find and stop this group if this agent dies.
        let pgid_file = launch.work_dir.join(PGID_FILE);
        if let Err(e) = std::fs::write(&pgid_file, pgid.to_string()) {
            tracing::warn!(error = %e, "cannot record the attempt's process group");
        }
        let (tx, pipes) = mpsc::channel(PIPE_QUEUE);
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_pipe(out, Stream::Stdout, tx.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_pipe(err, Stream::Stderr, tx)));
        }
        Ok(LocalJob {
            child,
            pgid,
            pgid_file,
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
            let status = match job.child.try_wait() {
                Ok(None) => return Ok(Some(running)),
                Ok(Some(s)) => Ok(s),
                Err(e) => Err(e),
            };
            job.exited = Some((now(), status));
        }
        // A group the agent signalled gets its grace to end as a whole.
        if job.signalled && group_alive(job.pgid) {
            return Ok(Some(running));
        }
        let status = job.exited.as_ref().map(|(_, s)| s);
        Ok(status.map(|s| Phase::Ended(exit_of(s, job.signalled))))
    }

    async fn cancel(&self, job: &mut LocalJob, force: bool) {
        job.signalled = true;
        let _ = signal_group(job.pgid, if force { libc::SIGKILL } else { libc::SIGTERM });
    }

    async fn logs(&self, job: &mut LocalJob, sink: &mut LogSink) {
        while let Ok((stream, data)) = job.pipes.try_recv() {
            job.output.push(stream, &data, sink);
        }
        job.output.flush(sink, false);
    }

    async fn finish(&self, mut job: LocalJob, sink: &mut LogSink) -> Span {
        // Whatever is left of the group goes now.
        kill_group_and_wait(job.pgid).await;
        let _ = std::fs::remove_file(&job.pgid_file);
        let (pipes, output) = (&mut job.pipes, &mut job.output);
        let drained = tokio::time::timeout(PIPE_CLOSE_WAIT, async {
            while let Some((stream, data)) = pipes.recv().await {
                output.push(stream, &data, sink);
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                pgid = job.pgid,
                "output pipes still open after the process group ended; closing them"
            );
            for r in &job.readers {
                r.abort();
            }
            while let Ok((stream, data)) = job.pipes.try_recv() {
                job.output.push(stream, &data, sink);
            }
        }
        job.output.flush(sink, true);
        (Some(job.spawned), job.exited.map(|(at, _)| at))
    }
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

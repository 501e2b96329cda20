//! Process groups on this machine: signalling one, telling whether any of it is alive, and
//! sweeping the groups an earlier run of the agent left running.

use std::io;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

/// Where an attempt's working directory records its process group while it runs.
pub(crate) const PGID_FILE: &str = ".suanli-pgid";
/// How long to wait for the group to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
const GROUP_POLL: Duration = Duration::from_millis(50);

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

/// SIGKILL to whatever is left of the group, then wait (briefly) until it is gone.
pub(crate) async fn kill_group_and_wait(pgid: i32) {
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

/// Is process `pid` alive (not a zombie)?
pub(crate) fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|(state, _)| state != 'Z' && state != 'X')
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

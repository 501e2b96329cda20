//! An attempt's processes on this machine: the session its leader starts (`setsid`), every
//! process in it or below the leader; signalling them, telling whether any is alive, and the
//! records a restarted agent sweeps by (`{work_dir}/.suanli-live/`, one file per live attempt:
//! the leader's pid and its start time from `/proc/PID/stat`, so that a reused pid is never hit).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// Where the agent records its live attempts.
pub(crate) const LIVE_DIR: &str = ".suanli-live";
/// How long to wait for the processes to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
const GROUP_POLL: Duration = Duration::from_millis(50);

/// One line of `/proc/PID/stat`, the fields used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Clock ticks after boot.
    pub start: u64,
}

impl Stat {
    fn live(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }
}

/// `/proc/PID/stat`: `pid (comm) S ppid pgrp session tty tpgid flags minflt cminflt majflt
/// cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...`.
pub(crate) fn parse_stat(stat: &str) -> Option<Stat> {
    let pid = stat.split_whitespace().next()?.parse().ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn stat_of(pid: i32) -> Option<Stat> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
}

/// Every process on the machine.
fn all() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat_of)
        .collect()
}

/// The processes of the attempt led by `leader`: in its session or process group, or below it,
/// with the depth below the leader (0 for those found by session or group only), leader first.
pub(crate) fn members(procs: &[Stat], leader: i32) -> Vec<(i32, usize)> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p.pid);
    }
    let mut depth: BTreeMap<i32, usize> = BTreeMap::new();
    let mut queue = vec![(leader, 0usize)];
    let exists: BTreeSet<i32> = procs.iter().map(|p| p.pid).collect();
    while let Some((pid, d)) = queue.pop() {
        if depth.contains_key(&pid) || !exists.contains(&pid) {
            continue;
        }
        depth.insert(pid, d);
        for c in children.get(&pid).into_iter().flatten() {
            queue.push((*c, d + 1));
        }
    }
    for p in procs {
        if p.pid != leader && (p.session == leader || p.pgrp == leader) {
            depth.entry(p.pid).or_insert(usize::MAX);
        }
    }
    let mut out: Vec<(i32, usize)> = depth.into_iter().collect();
    out.sort_by_key(|(pid, d)| (*pid != leader, *d, *pid));
    out
}

/// Sends `sig` to every live process of the attempt led by `leader` that lies at least
/// `skip_depth` below it (processes found by session or group only count as deep); returns how
/// many. Refuses leaders 0 and 1.
pub(crate) fn signal_attempt(leader: i32, sig: i32, skip_depth: usize) -> usize {
    signal_where(leader, sig, |d| d >= skip_depth)
}

/// Sends `sig` to the live processes of the attempt led by `leader` exactly `depth` below it:
/// the job's batch shell under the sandbox's wrappers. Returns how many.
pub(crate) fn signal_batch_shell(leader: i32, sig: i32, depth: usize) -> usize {
    signal_where(leader, sig, |d| d == depth)
}

fn signal_where(leader: i32, sig: i32, at_depth: impl Fn(usize) -> bool) -> usize {
    if leader <= 1 {
        return 0;
    }
    let procs: Vec<Stat> = all().into_iter().filter(Stat::live).collect();
    let mut n = 0;
    for (pid, d) in members(&procs, leader) {
        if at_depth(d) && pid > 1 && signal(pid, sig).is_ok() {
            n += 1;
        }
    }
    n
}

/// Is any live process of the attempt led by `leader` left?
pub(crate) fn attempt_alive(leader: i32) -> bool {
    if leader <= 1 {
        return false;
    }
    let procs: Vec<Stat> = all().into_iter().filter(Stat::live).collect();
    !members(&procs, leader).is_empty()
}

/// SIGKILL to every process of the attempt, then wait (briefly) until they are gone.
pub(crate) async fn kill_attempt_and_wait(leader: i32) {
    if !attempt_alive(leader) {
        return;
    }
    signal_attempt(leader, libc::SIGKILL, 0);
    let deadline = Instant::now() + KILL_WAIT;
    while attempt_alive(leader) && Instant::now() < deadline {
        tokio::time::sleep(GROUP_POLL).await;
        signal_attempt(leader, libc::SIGKILL, 0);
    }
}

/// kill(2) to one process.
#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) -> io::Result<()> {
    if pid <= 1 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no process"));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; pid > 1 keeps it away
    // from our own group (0), every process (-1) and groups (negative).
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Is process `pid` alive (not a zombie)?
pub(crate) fn pid_alive(pid: i32) -> bool {
    stat_of(pid).is_some_and(|s| s.live())
}

/// The record of a live attempt: `{work_dir}/.suanli-live/{name}` holding `pid start folder`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub pid: i32,
    pub start: u64,
    pub dir: PathBuf,
}

impl Record {
    /// The record of the running process `pid` in `dir`.
    pub fn of(pid: i32, dir: &Path) -> Option<Record> {
        Some(Record {
            pid,
            start: stat_of(pid)?.start,
            dir: dir.to_path_buf(),
        })
    }

    pub fn encode(&self) -> String {
        format!("{} {} {}\n", self.pid, self.start, self.dir.display())
    }

    pub fn decode(s: &str) -> Option<Record> {
        let mut f = s.trim_end_matches('\n').splitn(3, ' ');
        Some(Record {
            pid: f.next()?.parse().ok()?,
            start: f.next()?.parse().ok()?,
            dir: PathBuf::from(f.next()?),
        })
    }

    /// Whether the recorded process still runs: same pid, same start time.
    #[cfg(test)]
    pub fn still_runs(&self) -> bool {
        stat_of(self.pid).is_some_and(|s| s.live() && s.start == self.start)
    }

    /// Whether the recorded attempt may have processes left: its leader runs (same start time),
    /// or is gone, so that what is left of its session and group is the attempt's (the kernel
    /// reuses no pid while a session or group of that id has members). A leader's pid taken by
    /// another process means the attempt is long gone.
    pub fn may_have_processes(&self) -> bool {
        stat_of(self.pid).is_none_or(|s| s.start == self.start)
    }

    fn path(work_dir: &Path, dir: &Path) -> PathBuf {
        let name = dir
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        work_dir.join(LIVE_DIR).join(name)
    }

    /// Writes the record (mode 0600, in a 0700 directory).
    pub fn save(&self, work_dir: &Path) -> io::Result<PathBuf> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let live = work_dir.join(LIVE_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&live) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let path = Record::path(work_dir, &self.dir);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        io::Write::write_all(&mut f, self.encode().as_bytes())?;
        Ok(path)
    }
}

/// Kills the attempts an earlier run of the agent left running (their records say which, and a
/// record counts only while its process has the recorded start time), removes their records and,
/// unless `keep` is set, every attempt folder left in `work_dir`; returns how many attempts were
/// killed.
pub async fn sweep_leftovers(work_dir: &Path, keep: bool) -> usize {
    let mut swept = 0;
    if let Ok(entries) = std::fs::read_dir(work_dir.join(LIVE_DIR)) {
        for e in entries.flatten() {
            let rec = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| Record::decode(&s));
            if let Some(r) = rec.filter(|r| r.may_have_processes() && attempt_alive(r.pid)) {
                tracing::warn!(pid = r.pid, dir = %r.dir.display(), "killing a leftover attempt");
                kill_attempt_and_wait(r.pid).await;
                swept += 1;
            }
            let _ = std::fs::remove_file(e.path());
        }
    }
    if !keep && let Ok(entries) = std::fs::read_dir(work_dir) {
        for e in entries.flatten() {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir
                && e.file_name()
                    .to_str()
                    .is_some_and(crate::workdir::is_attempt_dir_name)
            {
                crate::workdir::remove(&e.path());
            }
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, pgrp: i32, session: i32) -> Stat {
        Stat {
            pid,
            state: 'S',
            ppid,
            pgrp,
            session,
            start: 0,
        }
    }

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            (s.pid, s.state, s.ppid, s.pgrp, s.session, s.start),
            (4242, 'S', 1, 4242, 4242, 987654)
        );
        assert_eq!(parse_stat("garbage"), None);
        let own = stat_of(std::process::id() as i32).unwrap();
        assert!(own.start > 0 && own.live());
    }

    #[test]
    fn an_attempts_processes_are_its_tree_its_session_and_its_group() {
        // 100 leads; 101 (child) and 102 (grandchild, left the group) below it; 103 left the
        // tree (reparented to 1) but stays in the session; 104 a stranger.
        let procs = [
            p(1, 0, 1, 1),
            p(100, 1, 100, 100),
            p(101, 100, 100, 100),
            p(102, 101, 102, 100),
            p(103, 1, 100, 100),
            p(104, 1, 104, 104),
            p(105, 101, 105, 105),
        ];
        assert_eq!(
            members(&procs, 100),
            [(100, 0), (101, 1), (102, 2), (105, 2), (103, usize::MAX)]
        );
        assert!(members(&procs, 999).is_empty());
    }

    #[test]
    fn records_round_trip_and_a_reused_pid_does_not_match() {
        let me = std::process::id() as i32;
        let dir = Path::new("/w/1-1-0123456789abcdef");
        let r = Record::of(me, dir).unwrap();
        assert_eq!(Record::decode(&r.encode()), Some(r.clone()));
        assert!(r.still_runs() && r.may_have_processes());
        let reused = Record {
            start: r.start + 1,
            ..r
        };
        assert!(!reused.still_runs(), "same pid, other start time");
        assert!(!reused.may_have_processes());
        let gone = Record {
            pid: i32::MAX,
            ..reused
        };
        assert!(
            gone.may_have_processes(),
            "a dead leader's session may live on"
        );
        assert_eq!(Record::decode("x y z"), None);
    }
}

//! A throwaway single-host Slurm for tests and the demo (`suanli up --with-slurm`): one
//! `slurmctld` and N `slurmd`s on this machine, fake GPUs, all state in one directory.
//!
//! [`LocalSlurm::start`] writes `slurm.conf` and `gres.conf` into its directory (free ports, a
//! unique cluster name, `NodeHostname` = `hostname -s`), starts `munged` if no munge daemon
//! answers, starts the daemons, and waits until every node is idle. [`LocalSlurm::stop`] (also
//! run on drop) cancels the cluster's jobs and stops the daemons by the PIDs in their PID files.
//! `munged` is left running: it is a machine-wide service other clusters may share.
//!
//! It needs root (the daemons run as root, GPU device files are made with `mknod`) and Debian's
//! `slurm-wlm` and `munge` packages (Slurm 22.05 is what it was tested with). The settings are
//! those that work without systemd or cgroups: `select/cons_tres`, `proctrack/linuxproc`,
//! `task/none`, `jobcomp/filetxt`, no `slurmdbd`, `batch_sched_delay=0`.

use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::local::pid_alive;

/// How to build the cluster.
#[derive(Clone, Debug)]
pub struct LocalSlurmOptions {
    pub nodes: u32,
    pub cpus_per_node: u32,
    pub gpus_per_node: u32,
    /// The GRES type of the fake GPUs: `gpu:<type>:<n>`.
    pub gpu_type: String,
    /// Slurm's `KillWait`: seconds between SIGTERM and SIGKILL when a job is cancelled.
    pub kill_wait_secs: u32,
    /// How long to wait for the nodes to come up idle.
    pub start_timeout: Duration,
}

impl Default for LocalSlurmOptions {
    fn default() -> Self {
        LocalSlurmOptions {
            nodes: 2,
            cpus_per_node: 4,
            gpus_per_node: 2,
            gpu_type: "fake".into(),
            kill_wait_secs: 2,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// What goes into the config files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterLayout {
    pub cluster: String,
    pub host: String,
    pub ctld_port: u16,
    /// Per node: name and `slurmd` port.
    pub nodes: Vec<(String, u16)>,
}

/// A running local Slurm; stopped on drop.
#[derive(Debug)]
pub struct LocalSlurm {
    dir: PathBuf,
    conf: PathBuf,
    layout: ClusterLayout,
    stopped: bool,
}

/// Is Slurm installed here (`sbatch`, `slurmctld`, `slurmd`)?
pub fn slurm_installed() -> bool {
    ["sbatch", "slurmctld", "slurmd"]
        .iter()
        .all(|p| find_program(p).is_some())
}

/// Is this process root?
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `program` on `PATH`, or in `/usr/sbin`, `/usr/local/sbin`, `/sbin` (daemons live there and a
/// non-login `PATH` may lack them).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The `slurm.conf` and `gres.conf` of a local cluster in `dir`.
pub fn render_config(dir: &Path, o: &LocalSlurmOptions, l: &ClusterLayout) -> (String, String) {
    let d = dir.display();
    let mut c = format!(
        "# written by suanli's LocalSlurm
ClusterName={cluster}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort={port}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd-%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
JobCompType=jobcomp/filetxt
JobCompLoc={d}/log/jobcomp.txt
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
InactiveLimit=0
SlurmdParameters=config_overrides
KillWait={kill_wait}
",
        cluster = l.cluster,
        port = l.ctld_port,
        kill_wait = o.kill_wait_secs,
    );
    let mut gres = String::new();
    let gpus = o.gpus_per_node > 0;
    if gpus {
        c.push_str("GresTypes=gpu\n");
    }
    for (name, port) in &l.nodes {
        let g = if gpus {
            format!(" Gres=gpu:{}:{}", o.gpu_type, o.gpus_per_node)
        } else {
            String::new()
        };
        let _ = writeln!(
            c,
            "NodeName={name} NodeHostname={} NodeAddr=127.0.0.1 Port={port} CPUs={} RealMemory=4000{g} State=UNKNOWN",
            l.host, o.cpus_per_node
        );
        if gpus {
            let _ = writeln!(
                gres,
                "NodeName={name} Name=gpu Type={} File={d}/dev/{name}-gpu[0-{}]",
                o.gpu_type,
                o.gpus_per_node - 1
            );
        }
    }
    c.push_str("PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n");
    (c, gres)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn short_hostname() -> String {
    Command::new("hostname")
        .arg("-s")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .and_then(|h| h.trim().split('.').next().map(str::to_string))
        })
        .unwrap_or_else(|| "localhost".into())
}

/// `n` distinct free TCP ports (held together while picked, so they differ).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn munge_answers() -> bool {
    find_program("munge").is_some_and(|m| {
        Command::new(m)
            .arg("-n")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts `munged` as the `munge` user unless a munge daemon already answers.
fn ensure_munged() -> Result<(), String> {
    if munge_answers() {
        return Ok(());
    }
    let munged = find_program("munged").ok_or("munged is not installed (apt-get install munge)")?;
    let key = Path::new("/etc/munge/munge.key");
    if !key.exists() {
        match find_program("mungekey") {
            Some(mk) => {
                run(Command::new(mk).arg("--create"))?;
            }
            None => {
                run(Command::new("dd").args([
                    "if=/dev/urandom",
                    "of=/etc/munge/munge.key",
                    "bs=1024",
                    "count=1",
                ]))?;
            }
        }
        run(Command::new("chown").args(["munge:munge", "/etc/munge/munge.key"]))?;
        run(Command::new("chmod").args(["400", "/etc/munge/munge.key"]))?;
    }
    std::fs::create_dir_all("/run/munge").map_err(|e| format!("cannot create /run/munge: {e}"))?;
    run(Command::new("chown").args(["munge:munge", "/run/munge"]))?;
    run(Command::new("runuser")
        .args(["-u", "munge", "--"])
        .arg(munged)
        .stdout(Stdio::null())
        .stderr(Stdio::piped()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !munge_answers() {
        if Instant::now() > deadline {
            return Err("munged started but does not answer `munge -n`".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn is_slurm_daemon(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .is_ok_and(|c| matches!(c.trim(), "slurmctld" | "slurmd" | "slurmstepd"))
}

fn read_pid(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
}

/// Sends `sig` to one process (never to a group, never to pid 0 or 1).
#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) {
    if pid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; pid > 1 addresses
        // exactly one process, never a group, ourselves-by-0 or everything-by-minus-1.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Stops the Slurm daemons whose PID files are in `run_dir`: SIGTERM, then SIGKILL after 5 s.
fn stop_by_pid_files(run_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return;
    };
    let mut pids = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "pid") {
            // A stale PID file may name an unrelated process by now: only Slurm daemons are hit.
            if let Some(pid) = read_pid(&p).filter(|p| pid_alive(*p) && is_slurm_daemon(*p)) {
                signal(pid, libc::SIGTERM);
                pids.push(pid);
            }
            let _ = std::fs::remove_file(&p);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|p| pid_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for p in pids.into_iter().filter(|p| pid_alive(*p)) {
        signal(p, libc::SIGKILL);
    }
}

/// Stops the daemons of a local Slurm in `dir` by their PID files, for when the process that
/// started them died without stopping them.
pub fn stop_dir(dir: &Path) {
    stop_by_pid_files(&dir.join("run"));
}

static CLUSTERS: AtomicU32 = AtomicU32::new(0);

impl LocalSlurm {
    /// Starts a cluster in `dir` (created; state from an earlier cluster there is removed, and its
    /// daemons, if their PID files say they still run, are stopped first). Blocks until every node
    /// is idle.
    pub fn start(dir: &Path, o: &LocalSlurmOptions) -> Result<LocalSlurm, String> {
        if !is_root() {
            return Err("a local Slurm needs root (its daemons run as root)".into());
        }
        if !slurm_installed() {
            return Err("Slurm is not installed (apt-get install slurm-wlm munge)".into());
        }
        if o.nodes == 0 {
            return Err("a local Slurm needs at least one node".into());
        }
        let dir = std::path::absolute(dir).map_err(|e| format!("bad directory: {e}"))?;
        stop_by_pid_files(&dir.join("run"));
        for sub in ["state", "spool", "run", "log", "dev"] {
            let p = dir.join(sub);
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        }
        ensure_munged()?;

        let ports = free_ports(o.nodes as usize + 1)?;
        let layout = ClusterLayout {
            cluster: format!(
                "suanli{}x{}",
                std::process::id(),
                CLUSTERS.fetch_add(1, Ordering::Relaxed)
            ),
            host: short_hostname(),
            ctld_port: ports[0],
            nodes: (1..=o.nodes)
                .map(|i| (format!("n{i}"), ports[i as usize]))
                .collect(),
        };
        for (name, _) in &layout.nodes {
            std::fs::create_dir_all(dir.join("spool").join(name))
                .map_err(|e| format!("cannot create the spool dir: {e}"))?;
            for g in 0..o.gpus_per_node {
                let dev = dir.join("dev").join(format!("{name}-gpu{g}"));
                run(Command::new("mknod").arg(&dev).args(["c", "1", "3"]))?;
            }
        }
        let (conf_text, gres_text) = render_config(&dir, o, &layout);
        let conf = dir.join("slurm.conf");
        std::fs::write(&conf, conf_text).map_err(|e| format!("cannot write slurm.conf: {e}"))?;
        std::fs::write(dir.join("gres.conf"), gres_text)
            .map_err(|e| format!("cannot write gres.conf: {e}"))?;

        let me = LocalSlurm {
            dir: dir.clone(),
            conf: conf.clone(),
            layout,
            stopped: false,
        };
        let daemon = |program: &str, args: &[&str], log: &str| -> Result<(), String> {
            let path = find_program(program).ok_or(format!("{program} is not installed"))?;
            let err = std::fs::File::create(dir.join("log").join(log))
                .map_err(|e| format!("cannot create a log file: {e}"))?;
            let status = Command::new(path)
                .args(args)
                .env("SLURM_CONF", &conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .status()
                .map_err(|e| format!("cannot start {program}: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program} {} exited with {status}; see {}",
                    args.join(" "),
                    dir.join("log").display()
                ))
            }
        };
        daemon("slurmctld", &[], "slurmctld.stderr")?;
        let names: Vec<String> = me.layout.nodes.iter().map(|(n, _)| n.clone()).collect();
        for n in &names {
            daemon("slurmd", &["-N", n], &format!("slurmd-{n}.stderr"))?;
        }
        me.wait_idle(o.start_timeout)?;
        Ok(me)
    }

    fn wait_idle(&self, timeout: Duration) -> Result<(), String> {
        let sinfo = find_program("sinfo").ok_or("sinfo is not installed")?;
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(out) = Command::new(&sinfo)
                .args(["-h", "-N", "-o", "%N %t"])
                .env("SLURM_CONF", &self.conf)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
            {
                last = String::from_utf8_lossy(&out.stdout).into_owned();
                let idle = last
                    .lines()
                    .filter(|l| l.split_whitespace().nth(1) == Some("idle"))
                    .count();
                if idle >= self.layout.nodes.len() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.join("log/slurmctld.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "the local Slurm's nodes are not idle after {timeout:?} (sinfo: {:?}); slurmctld.log ends:\n{}",
                    last.trim(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `slurm.conf` to point Slurm commands at (`SLURM_CONF`).
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn layout(&self) -> &ClusterLayout {
        &self.layout
    }

    /// Cancels every job of the cluster and stops its daemons by PID (SIGTERM, SIGKILL after
    /// 5 s). Idempotent.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        if let Some(scancel) = find_program("scancel") {
            let _ = Command::new(scancel)
                .args(["--user", "root"])
                .env("SLURM_CONF", &self.conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        stop_by_pid_files(&self.dir.join("run"));
    }
}

impl Drop for LocalSlurm {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_single_host_config() {
        let layout = ClusterLayout {
            cluster: "suanli1x0".into(),
            host: "vm".into(),
            ctld_port: 40001,
            nodes: vec![("n1".into(), 40002), ("n2".into(), 40005)],
        };
        let (conf, gres) =
            render_config(Path::new("/tmp/s"), &LocalSlurmOptions::default(), &layout);
        for line in [
            "ClusterName=suanli1x0",
            "SlurmctldPort=40001",
            "SelectType=select/cons_tres",
            "ProctrackType=proctrack/linuxproc",
            "JobCompType=jobcomp/filetxt",
            "JobCompLoc=/tmp/s/log/jobcomp.txt",
            "SlurmctldPidFile=/tmp/s/run/slurmctld.pid",
            "GresTypes=gpu",
            "KillWait=2",
            "NodeName=n1 NodeHostname=vm NodeAddr=127.0.0.1 Port=40002 CPUs=4 RealMemory=4000 Gres=gpu:fake:2 State=UNKNOWN",
            "NodeName=n2 NodeHostname=vm NodeAddr=127.0.0.1 Port=40005 CPUs=4 RealMemory=4000 Gres=gpu:fake:2 State=UNKNOWN",
            "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} in\n{conf}");
        }
        assert_eq!(
            gres,
            "NodeName=n1 Name=gpu Type=fake File=/tmp/s/dev/n1-gpu[0-1]\n\
             NodeName=n2 Name=gpu Type=fake File=/tmp/s/dev/n2-gpu[0-1]\n"
        );
        let o = LocalSlurmOptions {
            gpus_per_node: 0,
            ..Default::default()
        };
        let (conf, gres) = render_config(Path::new("/tmp/s"), &o, &layout);
        assert!(!conf.contains("Gres"));
        assert!(gres.is_empty());
    }

    #[test]
    fn finds_programs_and_ports() {
        assert!(find_program("sh").is_some());
        assert!(find_program("no-such-program-here").is_none());
        let p = free_ports(3).unwrap();
        assert_eq!(p.len(), 3);
        assert!(p[0] != p[1] && p[1] != p[2] && p[0] != p[2]);
        assert!(!short_hostname().is_empty());
    }
}

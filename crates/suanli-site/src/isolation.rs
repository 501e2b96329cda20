//! How tenant code is kept away from the agent: the isolation modes, what each needs from the
//! machine (detected once at start), and the pure parts of running a job under one: the cleared
//! environment and the bubblewrap command line.
//!
//! - [`Isolation::Bwrap`]: bubblewrap (`/usr/bin/bwrap`): a read-only system (`/usr` and the
//!   merged-`/usr` links, a few files of `/etc`), private `/tmp`, `/proc` and `/dev`, new pid,
//!   ipc and uts namespaces (and network with `--unshare-net`), only the attempt folder mounted
//!   writable, run as the unprivileged job user (as root: bubblewrap sets the mounts up and
//!   `setpriv` drops to the job user; otherwise an unprivileged user namespace with uid 65534).
//!   The pid namespace ends with bubblewrap, which dies with the agent.
//! - [`Isolation::User`]: the job runs as the job user (no supplementary groups) in its own
//!   session; it sees the machine's file system as that user does.
//! - [`Isolation::None`]: the job runs as the agent's user: for a single-tenant machine only.
//!
//! In every mode the job's environment is cleared: the job's own variables, the `SUANLI_*` and
//! device variables the agent sets, a fixed `PATH` and `HOME` (the attempt folder); nothing of
//! the agent's own environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

/// The `PATH` a job starts with, unless its own environment sets one.
pub const JOB_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
/// The system user jobs run as when the agent runs as root and no other is configured; created
/// at start when missing.
pub const JOB_USER: &str = "suanli-job";
/// The uid and gid inside bubblewrap's user namespace when the agent is not root.
pub const NOBODY: u32 = 65534;
const BWRAP: &str = "/usr/bin/bwrap";
const SETPRIV: &str = "/usr/bin/setpriv";
const ENV: &str = "/usr/bin/env";
const SH: &str = "/bin/sh";

/// How attempts are kept from the agent and from each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isolation {
    /// As the agent's user, with a cleared environment only.
    None,
    /// As an unprivileged job user.
    User,
    /// In a bubblewrap sandbox as the job user.
    Bwrap,
}

impl Isolation {
    pub const ALL: [Isolation; 3] = [Isolation::Bwrap, Isolation::User, Isolation::None];

    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::None => "none",
            Isolation::User => "user",
            Isolation::Bwrap => "bwrap",
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Isolation, String> {
        Isolation::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| format!("unknown isolation mode {s:?}: expected bwrap, user or none"))
    }
}

/// A uid and gid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for Ids {
    type Err = String;
    /// `UID:GID`.
    fn from_str(s: &str) -> Result<Ids, String> {
        let bad = || format!("job user {s:?}: expected UID:GID, two numbers above 0");
        let (u, g) = s.trim().split_once(':').ok_or_else(bad)?;
        let uid = u.parse::<u32>().map_err(|_| bad())?;
        let gid = g.parse::<u32>().map_err(|_| bad())?;
        if uid == 0 || gid == 0 {
            return Err(bad());
        }
        Ok(Ids { uid, gid })
    }
}

/// The resolved way of running jobs, fixed at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    pub mode: Isolation,
    /// Who the job runs as outside any namespace (`User`, and `Bwrap` as root); `None`: the
    /// agent's own user.
    pub job: Option<Ids>,
    /// The agent runs as root.
    pub root: bool,
    /// `Bwrap` without network (`--unshare-net`).
    pub unshare_net: bool,
    /// The system paths of this machine, as bubblewrap must show them.
    pub layout: Vec<SystemPath>,
}

/// Why an isolation mode cannot be used here.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("isolation {mode} cannot be used here: {why}")]
pub struct Unavailable {
    pub mode: Isolation,
    pub why: String,
}

/// What the agent asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IsolationConfig {
    /// `None`: the strongest this machine allows.
    pub mode: Option<Isolation>,
    /// Run jobs as this uid and gid instead of the `suanli-job` user.
    pub job_user: Option<Ids>,
    /// No network in the bubblewrap sandbox.
    pub unshare_net: bool,
}

/// Whether `path` lies in one of `roots` (resolved, links followed) and is its own real path
/// (no link on the way, no `..`). A path that does not exist is outside.
pub fn within_roots(roots: &[PathBuf], path: &Path) -> bool {
    let Ok(real) = std::fs::canonicalize(path) else {
        return false;
    };
    // A link (anywhere on the way) makes another folder look like this one: the hub checks that
    // no two owners' paths overlap, which holds only for paths that are what they say.
    let given = path.to_string_lossy();
    if real != Path::new(given.trim_end_matches('/')) {
        return false;
    }
    roots
        .iter()
        .filter_map(|r| std::fs::canonicalize(r).ok())
        .any(|r| real.starts_with(r))
}

impl Sandbox {
    /// The mode asked for (or the strongest available), checked on this machine: bubblewrap is
    /// tried once with the mounts it would use; `user` needs root (to change user); the job user
    /// is created when missing.
    pub fn detect(cfg: &IsolationConfig) -> Result<Sandbox, Unavailable> {
        let root = effective_uid() == 0;
        let modes: Vec<Isolation> = match cfg.mode {
            Some(m) => vec![m],
            None => Isolation::ALL.to_vec(),
        };
        let mut last = None;
        for mode in modes {
            match Sandbox::try_mode(mode, root, cfg) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    if cfg.mode.is_none() {
                        tracing::debug!(error = %e, "isolation mode not available");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(Unavailable {
            mode: Isolation::None,
            why: "no mode".into(),
        }))
    }

    fn try_mode(
        mode: Isolation,
        root: bool,
        cfg: &IsolationConfig,
    ) -> Result<Sandbox, Unavailable> {
        let no = |why: String| Unavailable { mode, why };
        let job = match (mode, root) {
            (Isolation::None, _) => None,
            (Isolation::User, false) => {
                return Err(no(
                    "the agent must run as root to start jobs as another user".into(),
                ));
            }
            (_, true) => Some(match cfg.job_user {
                Some(ids) => ids,
                None => job_user().map_err(no)?,
            }),
            (Isolation::Bwrap, false) => None,
        };
        if let Some(ids) = job
            && (ids.uid == effective_uid() || ids.uid == 0)
        {
            return Err(no(format!(
                "the job user (uid {}) must not be the agent's user",
                ids.uid
            )));
        }
        let s = Sandbox {
            mode,
            job,
            root,
            unshare_net: cfg.unshare_net,
            layout: if mode == Isolation::Bwrap {
                SystemPath::of_host()
            } else {
                Vec::new()
            },
        };
        if mode == Isolation::Bwrap {
            s.probe().map_err(no)?;
        }
        Ok(s)
    }

    /// Runs `true` in the sandbox once.
    fn probe(&self) -> Result<(), String> {
        for tool in [BWRAP, SETPRIV, ENV, SH] {
            if !Path::new(tool).exists() && (tool != SETPRIV || self.root) {
                return Err(format!(
                    "{tool} is missing (Debian: apt-get install bubblewrap)"
                ));
            }
        }
        // One folder per probe: agents in one process probe at once.
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(".suanli-probe-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Some(ids) = self.job {
            let _ = std::os::unix::fs::chown(&dir, Some(ids.uid), Some(ids.gid));
        }
        let argv = self.bwrap_argv(&dir, &BTreeMap::new(), "true");
        let out = std::process::Command::new(BWRAP)
            .args(&argv)
            .env_clear()
            .env("PATH", JOB_PATH)
            .current_dir(&dir)
            .stdin(std::process::Stdio::null())
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!(
                "bubblewrap failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!("cannot run {BWRAP}: {e}")),
        }
    }

    /// The program the local backend starts and its arguments, for `command` in `dir` with the
    /// job environment `env` (see [`job_env`]).
    pub fn program(
        &self,
        dir: &Path,
        env: &BTreeMap<String, String>,
        command: &str,
        data: &[suanli_proto::DatasetMount],
    ) -> (PathBuf, Vec<OsString>) {
        match self.mode {
            Isolation::Bwrap => {
                let mut argv = self.bwrap_argv(dir, env, command);
                // Each dataset read-only at its own path; no network if one forbids egress.
                let mut extra: Vec<OsString> = Vec::new();
                if !self.unshare_net && data.iter().any(|d| !d.egress) {
                    extra.push("--unshare-net".into());
                }
                for d in data {
                    // The folders bubblewrap makes on the way to a mount point are private
                    // (0700 as root): made traversable first, so the job user reaches its data.
                    for up in self.made_on_the_way(Path::new(&d.path)) {
                        extra.extend(["--perms".into(), "0755".into(), "--dir".into(), up.into()]);
                    }
                    extra.extend([
                        "--ro-bind".into(),
                        d.path.clone().into(),
                        d.path.clone().into(),
                    ]);
                }
                // After the system's mounts and the private /tmp (which would hide data under
                // /tmp), before the attempt folder's own.
                let at = argv
                    .iter()
                    .position(|a| a == "--bind")
                    .unwrap_or(argv.len());
                argv.splice(at..at, extra);
                (BWRAP.into(), argv)
            }
            Isolation::User | Isolation::None => (SH.into(), vec!["-c".into(), command.into()]),
        }
    }

    /// bubblewrap's arguments (see the module's documentation). The job's environment goes
    /// through `env -i` after the sandbox is set up (and, as root, after `setpriv` has dropped
    /// to the job user), so that nothing of it (`LD_PRELOAD`) reaches bubblewrap or `setpriv`.
    pub fn bwrap_argv(
        &self,
        dir: &Path,
        env: &BTreeMap<String, String>,
        command: &str,
    ) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(OsString::from));
        push(&["--die-with-parent", "--new-session", "--clearenv"]);
        push(&[
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]);
        if self.unshare_net {
            push(&["--unshare-net"]);
        }
        if !self.root {
            let n = NOBODY.to_string();
            push(&["--unshare-user", "--uid", &n, "--gid", &n]);
        }
        for p in &self.layout {
            match p {
                SystemPath::Dir(d) => push(&["--ro-bind", d, d]),
                SystemPath::Link(l, target) => push(&["--symlink", target, l]),
                SystemPath::Etc(f) => push(&["--ro-bind-try", f, f]),
            }
        }
        push(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        // The folders bubblewrap makes on the way to the attempt folder are private (0700 as
        // root): made traversable, so that the job user reaches its folder by its absolute path
        // ($HOME, $SUANLI_CHECKPOINT_DIR). They are empty: nothing of the agent's shows.
        for up in self.made_on_the_way(dir) {
            a.extend(["--perms".into(), "0755".into(), "--dir".into(), up.into()]);
        }
        a.push("--bind".into());
        a.push(dir.into());
        a.push(dir.into());
        a.push("--chdir".into());
        a.push(dir.into());
        a.push("--setenv".into());
        a.push("PATH".into());
        a.push(JOB_PATH.into());
        if let (true, Some(ids)) = (self.root, self.job) {
            a.push(SETPRIV.into());
            a.push(format!("--reuid={}", ids.uid).into());
            a.push(format!("--regid={}", ids.gid).into());
            for x in [
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
            ] {
                a.push(x.into());
            }
        }
        a.push(ENV.into());
        a.push("-i".into());
        a.push("--".into());
        for (k, v) in env {
            a.push(format!("{k}={v}").into());
        }
        a.push(SH.into());
        a.push("-c".into());
        a.push(command.into());
        a
    }

    /// The folders above `path` that the sandbox does not mount from the system (those
    /// bubblewrap makes itself), outermost first.
    fn made_on_the_way(&self, path: &Path) -> Vec<PathBuf> {
        let mut ups: Vec<PathBuf> = path
            .ancestors()
            .skip(1)
            .filter(|a| a.parent().is_some())
            .filter(|a| {
                !self.layout.iter().any(|p| match p {
                    SystemPath::Dir(d) | SystemPath::Etc(d) => a.starts_with(d),
                    SystemPath::Link(l, _) => a.starts_with(l),
                })
            })
            .map(Path::to_path_buf)
            .collect();
        ups.reverse();
        ups
    }

    /// Whether `dir` (the agent's working directory) would be visible, read-only, through the
    /// system mounts of the sandbox: then the sandbox would show the agent's files.
    pub fn exposes(&self, dir: &Path) -> Option<PathBuf> {
        self.layout.iter().find_map(|p| match p {
            SystemPath::Dir(d) | SystemPath::Etc(d) if dir.starts_with(d) => Some(PathBuf::from(d)),
            _ => None,
        })
    }

    /// How many processes of the agent's own tree are bubblewrap's before the job's: signals
    /// meant for the job skip them (bubblewrap's init ignores SIGTERM; bubblewrap dies of it and
    /// would take the job along without its grace).
    pub fn wrapper_depth(&self) -> usize {
        match self.mode {
            Isolation::Bwrap => 2,
            Isolation::User | Isolation::None => 0,
        }
    }
}

/// A system path as the sandbox shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SystemPath {
    /// A directory, bound read-only.
    Dir(String),
    /// A symbolic link (`/bin -> usr/bin` on merged-`/usr` systems) and its target.
    Link(String, String),
    /// A file or directory of `/etc`, bound read-only where it exists.
    Etc(String),
}

/// The system directories: `/usr` and the top-level ones that are either links into it or
/// directories of their own.
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];
/// What of `/etc` a job gets: names, users and groups, the dynamic linker's cache, TLS roots,
/// Debian's alternatives, the time zone.
pub const ETC_FILES: [&str; 16] = [
    "/etc/alternatives",
    "/etc/ca-certificates",
    "/etc/gai.conf",
    "/etc/group",
    "/etc/host.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/protocols",
    "/etc/resolv.conf",
    "/etc/services",
    "/etc/ssl",
];

impl SystemPath {
    /// This machine's layout.
    pub fn of_host() -> Vec<SystemPath> {
        SystemPath::layout(|p| {
            let m = std::fs::symlink_metadata(p).ok()?;
            Some(if m.file_type().is_symlink() {
                Probe::Link(std::fs::read_link(p).ok()?.to_string_lossy().into_owned())
            } else if m.is_dir() {
                Probe::Dir
            } else {
                Probe::Other
            })
        })
    }

    /// The layout, from what `probe` says of each system directory.
    pub fn layout(probe: impl Fn(&str) -> Option<Probe>) -> Vec<SystemPath> {
        let mut out = Vec::new();
        for d in SYSTEM_DIRS {
            match probe(d) {
                Some(Probe::Dir) => out.push(SystemPath::Dir(d.into())),
                Some(Probe::Link(t)) => out.push(SystemPath::Link(d.into(), t)),
                Some(Probe::Other) | None => {}
            }
        }
        out.extend(ETC_FILES.iter().map(|f| SystemPath::Etc((*f).into())));
        out
    }
}

/// What a system path is on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Dir,
    Link(String),
    Other,
}

/// The job's environment: a fixed `PATH` (unless the job sets its own) and `HOME` (the attempt
/// folder), then `launch_env` (the job's own variables with the agent's `SUANLI_*` and device
/// variables over them). Nothing else: the agent's environment is not inherited.
pub fn job_env(launch_env: &BTreeMap<String, String>, dir: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("PATH".to_string(), JOB_PATH.to_string()),
        ("HOME".to_string(), dir.display().to_string()),
    ]);
    env.extend(launch_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// The agent's effective uid (the owner of `/proc/self`).
pub fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(u32::MAX, |m| m.uid())
}

/// The uid and gid of `name` in a passwd file's text.
pub fn passwd_ids(passwd: &str, name: &str) -> Option<Ids> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        let _pw = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some(Ids { uid, gid })
    })
}

/// The `suanli-job` system user, created (once per process) when missing.
fn job_user() -> Result<Ids, String> {
    static CREATE: Mutex<()> = Mutex::new(());
    let _one = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    let read = || {
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| passwd_ids(&p, JOB_USER))
    };
    if let Some(ids) = read() {
        return Ok(ids);
    }
    // Another process (an agent starting beside this one) may hold the passwd lock: try again.
    for _ in 0..10 {
        match add_user() {
            Ok(ids) => return Ok(ids),
            Err(e) if read().is_none() && e.contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Err(e) => return read().ok_or(e),
        }
    }
    add_user()
}

/// Runs `useradd` for the job user; its ids as the passwd file then says.
fn add_user() -> Result<Ids, String> {
    let read = || {
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| passwd_ids(&p, JOB_USER))
    };
    let out = std::process::Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            JOB_USER,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run useradd to create the job user {JOB_USER}: {e}"))?;
    match read() {
        Some(ids) => {
            tracing::info!(user = JOB_USER, uid = ids.uid, "created the job user");
            Ok(ids)
        }
        None => Err(format!(
            "cannot create the job user {JOB_USER} (useradd: {}); create it, or pass --job-user UID:GID",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged_usr(p: &str) -> Option<Probe> {
        match p {
            "/usr" => Some(Probe::Dir),
            "/bin" => Some(Probe::Link("usr/bin".into())),
            "/lib64" => Some(Probe::Link("usr/lib64".into())),
            "/lib" => Some(Probe::Dir),
            "/libx32" => Some(Probe::Other),
            _ => None,
        }
    }

    fn sandbox(root: bool) -> Sandbox {
        Sandbox {
            mode: Isolation::Bwrap,
            job: root.then_some(Ids { uid: 990, gid: 985 }),
            root,
            unshare_net: false,
            layout: SystemPath::layout(merged_usr),
        }
    }

    fn strings(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    /// The position of `seq` in `a`, which must hold it.
    fn at(a: &[String], seq: &[&str]) -> usize {
        a.windows(seq.len())
            .position(|w| w == seq)
            .unwrap_or_else(|| panic!("{seq:?} not in {a:?}"))
    }

    #[test]
    fn modes_and_job_users_parse() {
        for m in Isolation::ALL {
            assert_eq!(m.as_str().parse::<Isolation>(), Ok(m));
        }
        assert!(
            "chroot"
                .parse::<Isolation>()
                .unwrap_err()
                .contains("bwrap, user or none")
        );
        assert!(Isolation::Bwrap > Isolation::User && Isolation::User > Isolation::None);
        assert_eq!("990:985".parse::<Ids>(), Ok(Ids { uid: 990, gid: 985 }));
        for bad in ["0:0", "990", "a:b", "990:0", ""] {
            assert!(bad.parse::<Ids>().is_err(), "{bad}");
        }
        let passwd = "root:x:0:0:root:/root:/bin/bash\nsuanli-job:x:990:985::/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            passwd_ids(passwd, JOB_USER),
            Some(Ids { uid: 990, gid: 985 })
        );
        assert_eq!(passwd_ids(passwd, "suanli"), None);
    }

    #[test]
    fn the_layout_binds_directories_and_recreates_links() {
        let l = SystemPath::layout(merged_usr);
        assert_eq!(
            &l[..4],
            [
                SystemPath::Dir("/usr".into()),
                SystemPath::Link("/bin".into(), "usr/bin".into()),
                SystemPath::Dir("/lib".into()),
                SystemPath::Link("/lib64".into(), "usr/lib64".into()),
            ]
        );
        assert_eq!(l.len(), 4 + ETC_FILES.len());
        assert!(
            ETC_FILES
                .iter()
                .all(|f| !f.contains("shadow") && !f.contains("suanli"))
        );
    }

    #[test]
    fn the_sandbox_mounts_only_the_attempt_folder_writable_and_drops_to_the_job_user() {
        let dir = Path::new("/srv/suanli/sites/c1/7-1-ab12");
        let env = BTreeMap::from([
            ("LD_PRELOAD".to_string(), "x.so".to_string()),
            ("SUANLI_JOB_ID".to_string(), "7".to_string()),
        ]);
        let a = strings(&sandbox(true).bwrap_argv(dir, &env, "echo hi"));
        let d = dir.to_str().unwrap();
        assert_eq!(
            at(&a, &["--bind", d, d]),
            a.iter().position(|x| x == "--bind").unwrap()
        );
        assert_eq!(
            a.iter()
                .filter(|x| *x == "--bind" || *x == "--bind-try")
                .count(),
            1
        );
        for flag in [
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--unshare-pid",
        ] {
            assert!(a.contains(&flag.to_string()), "{flag}");
        }
        assert!(!a.contains(&"--unshare-net".to_string()));
        assert!(
            !a.contains(&"--unshare-user".to_string()),
            "as root: setpriv, no user namespace"
        );
        at(&a, &["--ro-bind", "/usr", "/usr"]);
        at(&a, &["--symlink", "usr/bin", "/bin"]);
        at(&a, &["--tmpfs", "/tmp"]);
        at(&a, &["--chdir", d]);
        // setpriv drops to the job user before anything of the job's environment is set.
        let setpriv = at(
            &a,
            &[SETPRIV, "--reuid=990", "--regid=985", "--clear-groups"],
        );
        let env_i = at(&a, &[ENV, "-i", "--"]);
        let preload = a.iter().position(|x| x == "LD_PRELOAD=x.so").unwrap();
        assert!(setpriv < env_i && env_i < preload);
        assert_eq!(&a[a.len() - 3..], [SH, "-c", "echo hi"]);
        assert_eq!(a.iter().filter(|x| x.starts_with("LD_PRELOAD")).count(), 1);

        let mut s = sandbox(false);
        s.unshare_net = true;
        let a = strings(&s.bwrap_argv(dir, &env, "true"));
        at(&a, &["--unshare-user", "--uid", "65534", "--gid", "65534"]);
        assert!(a.contains(&"--unshare-net".to_string()));
        assert!(!a.iter().any(|x| x == SETPRIV));
    }

    #[test]
    fn datasets_come_only_from_the_sites_data_roots() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("clinic")).unwrap();
        std::os::unix::fs::symlink(other.path(), root.path().join("escape")).unwrap();
        let roots = vec![root.path().to_path_buf()];
        assert!(within_roots(&roots, &root.path().join("clinic")));
        assert!(!within_roots(&roots, other.path()), "another folder");
        assert!(
            !within_roots(&roots, &root.path().join("escape")),
            "a link out"
        );
        assert!(
            !within_roots(&roots, &root.path().join("clinic/../../")),
            "up and out"
        );
        assert!(!within_roots(&roots, &root.path().join("missing")));
        std::os::unix::fs::symlink(root.path().join("clinic"), root.path().join("alias")).unwrap();
        assert!(
            !within_roots(&roots, &root.path().join("alias")),
            "a link inside the root"
        );
        assert!(
            !within_roots(&[], &root.path().join("clinic")),
            "no roots: nothing"
        );
    }

    #[test]
    fn datasets_are_mounted_read_only_and_data_without_egress_has_no_network() {
        let dir = Path::new("/w/1-1-x");
        let mount = |name: &str, egress| suanli_proto::DatasetMount {
            name: name.into(),
            path: format!("/data/{name}"),
            egress,
            sensitive: false,
        };
        let s = sandbox(true);
        let (_, a) = s.program(dir, &BTreeMap::new(), "true", &[mount("open", true)]);
        let a = strings(&a);
        let ro = at(&a, &["--ro-bind", "/data/open", "/data/open"]);
        assert!(
            at(&a, &["--tmpfs", "/tmp"]) < ro,
            "data under /tmp is not hidden"
        );
        assert!(ro < at(&a, &["--bind", "/w/1-1-x", "/w/1-1-x"]));
        assert!(!a.contains(&"--unshare-net".to_string()), "egress allowed");
        let (_, a) = s.program(
            dir,
            &BTreeMap::new(),
            "true",
            &[mount("open", true), mount("clinic", false)],
        );
        let a = strings(&a);
        at(&a, &["--ro-bind", "/data/clinic", "/data/clinic"]);
        assert_eq!(a.iter().filter(|x| *x == "--unshare-net").count(), 1);
        // The folders on the way to the data, made traversable (bubblewrap makes them 0700).
        let (_, a) = s.program(dir, &BTreeMap::new(), "true", &[mount("deep", true)]);
        let a = strings(&a);
        let made = at(&a, &["--perms", "0755", "--dir", "/data"]);
        assert!(made < at(&a, &["--ro-bind", "/data/deep", "/data/deep"]));
        let mut cut = sandbox(true);
        cut.unshare_net = true;
        let (_, a) = cut.program(dir, &BTreeMap::new(), "true", &[mount("clinic", false)]);
        assert_eq!(
            strings(&a).iter().filter(|x| *x == "--unshare-net").count(),
            1,
            "once"
        );
    }

    #[test]
    fn the_environment_is_the_jobs_own_and_the_agents_variables_only() {
        let dir = Path::new("/w/1-1-x");
        let launch = BTreeMap::from([("SUANLI_JOB_ID".to_string(), "1".to_string())]);
        let env = job_env(&launch, dir);
        assert_eq!(
            env.keys().collect::<Vec<_>>(),
            ["HOME", "PATH", "SUANLI_JOB_ID"]
        );
        assert_eq!(env["PATH"], JOB_PATH);
        assert_eq!(env["HOME"], "/w/1-1-x");
        let own = BTreeMap::from([("PATH".to_string(), "/opt/conda/bin:/usr/bin".to_string())]);
        assert_eq!(job_env(&own, dir)["PATH"], "/opt/conda/bin:/usr/bin");
    }

    #[test]
    fn a_working_directory_under_a_system_mount_is_exposed() {
        let s = sandbox(true);
        assert_eq!(
            s.exposes(Path::new("/usr/local/suanli/work")),
            Some(PathBuf::from("/usr"))
        );
        assert_eq!(
            s.exposes(Path::new("/etc/ssl/x")),
            Some(PathBuf::from("/etc/ssl"))
        );
        assert_eq!(s.exposes(Path::new("/srv/suanli")), None);
        assert_eq!(
            s.exposes(Path::new("/binx")),
            None,
            "components, not prefixes"
        );
        assert_eq!(s.wrapper_depth(), 2);
    }
}

//! Tenant code against the platform (issue findings H1, H1b, H5, M3), with the strongest
//! isolation mode this machine allows, as `suanli up` and `suanli site` choose it.
//!
//! Each test needs a mode that changes users (bubblewrap, or root for `user`); without one it
//! prints a `SKIPPED:` line, and with `CI` set it fails instead.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suanli_client::Client;
use suanli_site::isolation::{Isolation, IsolationConfig, Sandbox};
use suanli_types::{JobSpec, JobState};

use crate::check;
use crate::faults::Proc;
use crate::harness::{Net, all_logs, center, wait_state, wait_terminal};

const BIN: &str = env!("CARGO_BIN_EXE_suanli");
const CANARY: &str = "canary-4f1d-agent-environment";

/// The strongest mode here, or `None` (after saying so) when it would not isolate anything.
fn strongest(test: &str) -> Option<Sandbox> {
    match Sandbox::detect(&IsolationConfig::default()) {
        Ok(s) if s.mode != Isolation::None => Some(s),
        Ok(_) => {
            check::skip(
                test,
                "no isolation mode is available (install bubblewrap, or run as root)",
            );
            None
        }
        Err(e) => {
            check::skip(test, &e.to_string());
            None
        }
    }
}

/// `suanli up` on a data dir of its own, with a canary in its environment; killed when dropped.
struct Up {
    child: Child,
    data: PathBuf,
    config: PathBuf,
    /// What `up` printed up to its "Ctrl-C" line.
    banner: String,
    _dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::contract::check();
    }
}

fn up() -> Up {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--write-config")
        .arg(&config)
        .env("HOME", dir.path())
        .env("SUANLI_CANARY", CANARY)
        .env(crate::contract::ENV, crate::contract::dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        banner.push_str(&l);
        banner.push('\n');
        if l.contains("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Up {
        child,
        data,
        config,
        banner,
        _dir: dir,
    }
}

impl Up {
    /// A client of profile `profile` from the config `up` wrote.
    fn client(&self, profile: &str) -> Client {
        let c: toml::Value =
            toml::from_str(&std::fs::read_to_string(&self.config).unwrap()).unwrap();
        let hub = c["hub"].as_str().unwrap().to_string();
        let token = c["profiles"][profile]["token"].as_str().unwrap();
        Client::new(vec![hub], token)
    }

    /// Every token `up` keeps (operator, users, sites).
    fn tokens(&self) -> Vec<String> {
        let t: toml::Value =
            toml::from_str(&std::fs::read_to_string(self.data.join("demo-tokens.toml")).unwrap())
                .unwrap();
        let mut out = vec![t["operator"].as_str().unwrap().to_string()];
        for table in ["users", "sites"] {
            for v in t[table].as_table().unwrap().values() {
                out.push(v.as_str().unwrap().to_string());
            }
        }
        assert!(out.len() > 10, "{out:?}");
        out
    }

    /// The attempt folders of job `id` now on disk.
    fn folders_of(&self, id: suanli_types::JobId) -> Vec<String> {
        let mut out = Vec::new();
        for site in std::fs::read_dir(self.data.join("sites"))
            .unwrap()
            .flatten()
        {
            for f in std::fs::read_dir(site.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{id}-")) {
                    out.push(name);
                }
            }
        }
        out
    }
}

/// The job of an attacker: reads every token file it can find (by the paths it knows and by
/// searching), the agents' environment and command lines, lists its parent, prints its own
/// environment, and tries to write into the data dir and next to its folder.
fn snoop(data: &Path, config: &Path) -> String {
    let d = data.display();
    format!(
        "for f in {d}/demo-tokens.toml {d}/operator-token {d}/hub.db {c} \
           $(find / -path /proc -prune -o \\( -name '*token*' -o -name 'hub.db*' -o -name 'config.toml' \\) -type f -print 2>/dev/null); \
         do cat \"$f\"; done; \
         cat /proc/*/environ /proc/*/cmdline 2>/dev/null | tr '\\0' ' '; \
         echo '<ls>'; ls -la .. 2>&1; ls -la {d}/sites/* 2>&1; echo '</ls>'; \
         echo '<env>'; env; echo '</env>'; \
         echo pwned > {d}/pwned; echo pwned > ../pwned; echo END",
        c = config.display()
    )
}

/// H1, H1b and H5 against `suanli up`: a tenant's job prints no token and no other attempt's
/// files, cannot write into the data dir, and the links it plants for later attempts are not
/// written through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_at_suanli_up_reads_no_token_and_plants_no_link() {
    let test = "isolation::a_job_at_suanli_up_reads_no_token_and_plants_no_link";
    if strongest(test).is_none() {
        return;
    }
    let up = up();
    assert!(
        up.banner.contains("isolation: bwrap") || up.banner.contains("isolation: user"),
        "{}",
        up.banner
    );
    let tokens = up.tokens();
    let demo = up.client("demo");
    let lab = up.client("lab");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !demo
        .centers()
        .await
        .is_ok_and(|cs| cs.iter().all(|c| c.status == "online"))
    {
        assert!(Instant::now() < deadline, "centers never came online");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Another tenant's job, running, with files of its own.
    let mut theirs = JobSpec::new("theirs", "echo LAB-OUTPUT > result.txt; sleep 60");
    theirs
        .files
        .insert("train.py".into(), "LAB-TRAIN-SCRIPT".into());
    let theirs = lab.submit(&theirs).await.unwrap().summary.id;
    wait_state(&lab, theirs, JobState::Running, Duration::from_secs(30)).await;
    let their_folders = up.folders_of(theirs);
    assert_eq!(their_folders.len(), 1, "{their_folders:?}");

    // H1: the attacker.
    let mut spec = JobSpec::new("snoop", snoop(&up.data, &up.config));
    spec.walltime = 120;
    let id = demo.submit(&spec).await.unwrap().summary.id;
    let v = wait_terminal(&demo, id, Duration::from_secs(90)).await;
    let logs = all_logs(&demo, id).await;
    assert!(logs.contains("END"), "{v:?}: {logs}");
    for t in &tokens {
        assert!(!logs.contains(t.as_str()), "a token leaked: {logs}");
    }
    for secret in ["LAB-OUTPUT", "LAB-TRAIN-SCRIPT", CANARY] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
    let listing = &logs[logs.find("<ls>").unwrap()..logs.find("</ls>").unwrap()];
    for name in their_folders
        .iter()
        .map(String::as_str)
        .chain(["demo-tokens", "hub.db"])
    {
        assert!(!listing.contains(name), "the job saw {name}: {listing}");
    }
    let env = &logs[logs.find("<env>").unwrap() + 5..logs.find("</env>").unwrap()];
    let keys: BTreeSet<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    for k in &keys {
        assert!(
            ["HOME", "PATH", "PWD", "SHLVL", "OLDPWD", "_"].contains(k)
                || k.starts_with("SUANLI_")
                || k.ends_with("_VISIBLE_DEVICES"),
            "inherited {k}: {env}"
        );
    }
    assert!(!keys.contains("SUANLI_CANARY"));
    assert!(
        !up.data.join("pwned").exists(),
        "the job wrote into the data dir"
    );
    // H1b: with no site token, the job could not have posted site events; the hub's own check
    // that a site token acts only for its center is tested in `security.rs`.

    // H5: a job plants links where the next attempts' folders and files would go ...
    let d = up.data.display();
    let plant = format!(
        "ln -s {d}/demo-tokens.toml out; ln -s {d} ../$((SUANLI_JOB_ID + 1))-1 2>&1; \
         ln -s {d} ../../$((SUANLI_JOB_ID + 1))-1 2>&1; mkdir -p sub; ln -s {d} sub/train.py; echo planted"
    );
    let planter = demo
        .submit(&JobSpec::new("plant", plant))
        .await
        .unwrap()
        .summary
        .id;
    wait_terminal(&demo, planter, Duration::from_secs(30)).await;
    assert!(all_logs(&demo, planter).await.contains("planted"));
    let before = std::fs::read_to_string(up.data.join("demo-tokens.toml")).unwrap();
    // ... and the next job writes files by those names: into its own fresh folder only.
    let mut next = JobSpec::new("next", "cat out sub/train.py");
    next.files.insert("out".into(), "NEXT-OUT\n".into());
    next.files
        .insert("sub/train.py".into(), "NEXT-TRAIN\n".into());
    let next = demo.submit(&next).await.unwrap().summary.id;
    let v = wait_terminal(&demo, next, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{v:?}");
    assert_eq!(all_logs(&demo, next).await, "NEXT-OUT\nNEXT-TRAIN\n");
    assert_eq!(
        std::fs::read_to_string(up.data.join("demo-tokens.toml")).unwrap(),
        before
    );
    assert!(!up.data.join("train.py").exists() && !up.data.join("out").exists());
    // Nothing the jobs wrote or linked beside their folders reached the sites' own folders:
    // `..` in the sandbox is a folder of its own.
    for site in std::fs::read_dir(up.data.join("sites")).unwrap().flatten() {
        for e in std::fs::read_dir(site.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let planted = name == "pwned"
                || name
                    .strip_suffix("-1")
                    .is_some_and(|n| n.parse::<u64>().is_ok());
            assert!(
                !planted,
                "{} beside the attempt folders",
                e.path().display()
            );
        }
    }
    // Ended attempts leave no folder behind.
    assert!(up.folders_of(id).is_empty() && up.folders_of(next).is_empty());
    lab.cancel(theirs).await.unwrap();
}

/// The processes on this machine whose command line is `sleep {secs}`.
fn sleeping(secs: &str) -> Vec<u32> {
    running(&["sleep", secs])
}

/// The live processes on this machine whose command line is `argv`.
fn running(argv: &[&str]) -> Vec<u32> {
    let want: String = argv.iter().map(|a| format!("{a}\0")).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want.as_bytes())
                && check::alive(*pid)
        })
        .collect()
}

/// A process as `/proc/PID/stat` shows it: its id, its parent's, and its start time (clock
/// ticks after boot), so that a reused pid is not taken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Ps {
    pid: u32,
    ppid: u32,
    start: u64,
}

/// `/proc/PID/stat` of `pid`, unless it is gone or a zombie.
fn ps(pid: u32) -> Option<Ps> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ppid ...`: the fields after the command's closing parenthesis.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    if rest.first().is_none_or(|s| *s == "Z" || *s == "X") {
        return None;
    }
    Some(Ps {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
    })
}

/// The live processes below `root`: its children, theirs, and so on.
fn descendants(root: u32) -> BTreeSet<Ps> {
    let all: Vec<Ps> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| ps(e.file_name().to_str()?.parse().ok()?))
        .collect();
    let mut out = BTreeSet::new();
    let mut parents = vec![root];
    while let Some(p) = parents.pop() {
        for c in all.iter().filter(|c| c.ppid == p) {
            if out.insert(*c) {
                parents.push(c.pid);
            }
        }
    }
    out
}

/// Whether the process `p` still runs (the same one: a reused pid has another start time).
fn lives(p: &Ps) -> bool {
    ps(p.pid).is_some_and(|now| now.start == p.start)
}

async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `suanli site` for the network's one center, in `isolation` (`None`: its default, the strongest).
fn site(net: &Net, work: &Path, isolation: Option<&str>, log: &Path) -> Proc {
    let token = net.site_tokens[0].1.clone();
    let mut args = vec![
        "site".to_string(),
        "--hub".into(),
        net.url.clone(),
        "--token".into(),
        token,
        "--work-dir".into(),
        work.display().to_string(),
        "--heartbeat-interval".into(),
        "1s".into(),
    ];
    if let Some(m) = isolation {
        args.extend(["--isolation".to_string(), m.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn_cmd(Command::new(BIN), &args, log)
}

/// M3: an agent killed with SIGKILL takes its job's processes along (in its own mode, the
/// strongest); in bubblewrap every process of the attempt is gone before the hub's lease on the
/// attempt ends, that is before the job can be placed again, so no two attempts of one job run
/// at once. In `none` mode, where a job's child can outlive it, the restarted agent kills what
/// is left and removes the folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_process_outlives_a_killed_agent() {
    let test = "isolation::no_job_process_outlives_a_killed_agent";
    let Some(sandbox) = strongest(test) else {
        return;
    };
    let net = Net::new(&[center("c-m3", "RTX4090", 1, 4, "1.00")], &["t-m3"]).await;
    let user = net.user("t-m3", "u").await;
    let work = net.dir.path().join("sites/c-m3");
    let log = net.dir.path().join("site.log");

    let mut agent = site(&net, &work, None, &log);
    net.wait_online().await;
    let id = user
        .submit(&JobSpec::new("long", "sleep 3131; echo never"))
        .await
        .unwrap()
        .summary
        .id;
    wait_state(&user, id, JobState::Running, Duration::from_secs(30)).await;
    wait_until("the job's sleep runs", Duration::from_secs(10), || {
        !sleeping("3131").is_empty()
    })
    .await;
    // The attempt's processes: those below the agent (the sandbox if any, the job's shell, its
    // sleep).
    let attempt = descendants(agent.pid().unwrap());
    let sleeps = sleeping("3131");
    assert!(
        sleeps.iter().all(|s| attempt.iter().any(|p| p.pid == *s)) && attempt.len() >= 2,
        "the attempt's processes {attempt:?} hold its sleep {sleeps:?}"
    );
    agent.kill9();
    let killed = Instant::now();
    if sandbox.mode == Isolation::Bwrap {
        // The hub's lease on attempt 1 ends `lease_ttl` after the last heartbeat the dead agent
        // sent (later, if a report renewed it since); only then may the job be placed again.
        let last = net.op().centers().await.unwrap()[0].last_heartbeat.unwrap();
        let lease_ends = last.0 + net.cfg.lease_ttl.as_millis() as i64;
        let left = (lease_ends - suanli_hub::engine::now().0).max(0);
        let left = Duration::from_millis(left as u64);
        wait_until(
            "bwrap: every process of attempt 1 is gone before the hub's lease on it ends",
            left,
            || !attempt.iter().any(lives),
        )
        .await;
        assert!(
            suanli_hub::engine::now().0 < lease_ends,
            "the lease ended first"
        );
        // The hub agrees: the job has not been placed again (still attempt 1, leased).
        let v = user.job(id).await.unwrap();
        assert_eq!(
            (v.summary.state, v.summary.attempt),
            (JobState::Running, 1),
            "{:?}",
            v.history
        );
    }
    wait_until(
        "the job's processes die with the agent",
        Duration::from_secs(5).saturating_sub(killed.elapsed()),
        || sleeping("3131").is_empty(),
    )
    .await;

    // `none` and `user` (root only): the job's shell dies with the agent (its parent-death
    // signal survives the change of user), a child of it lives on until the agent is back.
    let mut modes = vec![("none", "3232")];
    if suanli_site::isolation::effective_uid() == 0 {
        use std::os::unix::fs::PermissionsExt;
        // The job user passes through the test's folders to its own.
        std::fs::set_permissions(net.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        modes.push(("user", "3333"));
    }
    user.cancel(id).await.unwrap();
    let mut jobs = vec![id];
    let mut agent = site(&net, &work, Some("none"), &log);
    for (mode, secs) in modes {
        agent.kill9();
        agent = site(&net, &work, Some(mode), &log);
        let shell = format!("sleep {secs}; echo never");
        let job = user
            .submit(&JobSpec::new("long", shell.clone()))
            .await
            .unwrap()
            .summary
            .id;
        jobs.push(job);
        wait_state(&user, job, JobState::Running, Duration::from_secs(60)).await;
        wait_until(
            &format!("{mode}: the sleep runs"),
            Duration::from_secs(10),
            || !sleeping(secs).is_empty(),
        )
        .await;
        assert_eq!(running(&["/bin/sh", "-c", &shell]).len(), 1, "{mode}");
        agent.kill9();
        wait_until(
            &format!("{mode}: the job's shell dies with the agent"),
            Duration::from_secs(5),
            || running(&["/bin/sh", "-c", &shell]).is_empty(),
        )
        .await;
        assert_eq!(
            sleeping(secs).len(),
            1,
            "{mode}: a child of the job's shell outlives a crashed agent"
        );
        let folder = || {
            std::fs::read_dir(&work).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{job}-"))
            })
        };
        assert!(folder());
        agent = site(&net, &work, Some(mode), &log);
        wait_until(
            &format!("{mode}: the restarted agent kills the leftover"),
            Duration::from_secs(20),
            || sleeping(secs).is_empty(),
        )
        .await;
        wait_until(
            &format!("{mode}: the restarted agent removes the leftover folder"),
            Duration::from_secs(5),
            || !folder(),
        )
        .await;
        // The hub would run the job again here; its cards go to the next mode's job.
        user.cancel(job).await.unwrap();
    }
    // Nothing of this test's jobs may run on after it.
    for j in jobs {
        let _ = user.cancel(j).await;
    }
    wait_until("the jobs end", Duration::from_secs(20), || {
        ["3131", "3232", "3333"]
            .iter()
            .all(|s| sleeping(s).is_empty())
    })
    .await;
    drop(agent);
}

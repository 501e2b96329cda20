//! The Slurm backend against a real Slurm (Debian's slurm-wlm 22.05 + munge on this machine): a
//! throwaway cluster (`suanli_site::slurm::cluster::LocalSlurm`: slurmctld + 2 slurmd, fake GPUs,
//! config written into a temp dir, stopped by PID at the end, also on panic), a hub with a center
//! registered as `backend: slurm`, and an agent driving `sbatch`/`squeue`/`scancel`/`sinfo`; and
//! `suanli up --with-slurm`, the binary's demo center on such a cluster.
//!
//! Skipped (with a line saying so) only outside CI when Slurm is not installed or the test is not
//! root; with `CI` set it always runs, and fails if Slurm cannot start (`.ci/run` installs
//! slurm-wlm and munge when missing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use suanli_site::AgentConfig;
use suanli_site::slurm::cluster::{LocalSlurm, LocalSlurmOptions, is_root, slurm_installed};
use suanli_site::slurm::{SlurmBackend, SlurmConfig};
use suanli_types::{BackendKind, JobId, JobSpec, JobState};
use tokio::sync::watch;

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_suanli");

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<&'static str> {
    if !slurm_installed() {
        Some("slurm-wlm not installed (install slurm-wlm and munge, run as root)")
    } else if !is_root() {
        Some("a local Slurm needs root")
    } else {
        None
    }
}

/// `squeue` for one job name at the test cluster: `(slurm id, state)` of jobs still queued,
/// running or completing.
fn squeue(conf: &Path, name: &str) -> Vec<(u64, String)> {
    let out = Command::new("squeue")
        .args(["-h", "-n", name, "-o", "%i %T"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, st) = l.trim().split_once(' ')?;
            Some((id.parse().ok()?, st.to_string()))
        })
        .collect()
}

/// `JobState=` of a Slurm job (`scontrol show job`), while Slurm still remembers it.
fn slurm_state(conf: &Path, id: u64) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", &id.to_string()])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|f| f.strip_prefix("JobState="))
        .unwrap_or("")
        .to_string()
}

/// Waits for the Slurm job of `(job, attempt 1)` to be running; returns its Slurm id.
async fn slurm_job_running(conf: &Path, job: JobId, limit: Duration) -> u64 {
    let name = format!("suanli-{job}-1");
    let deadline = Instant::now() + limit;
    loop {
        if let Some((id, _)) = squeue(conf, &name)
            .into_iter()
            .find(|(_, s)| s == "RUNNING")
        {
            return id;
        }
        assert!(Instant::now() < deadline, "{name} never ran in Slurm");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spec(name: &str, command: &str) -> JobSpec {
    let mut s = JobSpec::new(name, command);
    s.stack = "cuda".into();
    s.walltime = 120;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_through_a_real_slurm() {
    if let Some(why) = missing() {
        return crate::check::skip("jobs_run_through_a_real_slurm", why);
    }
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let slurm_dir = tmp.path().join("slurm");
    let slurm = tokio::task::spawn_blocking(move || {
        LocalSlurm::start(&slurm_dir, &LocalSlurmOptions::default())
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("the local Slurm did not start: {e}"));
    let conf: PathBuf = slurm.conf().to_path_buf();
    eprintln!("local Slurm up in {:?}", t0.elapsed());

    let mut c = center("c-slurm", "RTX4090", 2, 2, "2.00");
    c.backend = BackendKind::Slurm;
    let net = Net::new(std::slice::from_ref(&c), &["t-a"]).await;
    let a = net.user("t-a", "alice").await;
    let slurm_cfg = SlurmConfig {
        conf: Some(conf.clone()),
        gres: BTreeMap::from([("RTX4090".to_string(), "gpu:fake".to_string())]),
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    };

    // The backend's view of the nodes: what sinfo says, GRES per node.
    let backend = SlurmBackend::new(slurm_cfg.clone(), &c);
    let mut nodes = backend.nodes().await.unwrap();
    nodes.sort_by(|x, y| x.node.cmp(&y.node));
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.node.as_str(), n.sku.as_str(), n.cards, n.free_cards))
            .collect::<Vec<_>>(),
        [("n1", "RTX4090", 2, 2), ("n2", "RTX4090", 2, 2)]
    );
    // A job an earlier run of this center's agent left behind is cancelled at startup; a job of
    // someone else is not.
    let sbatch = |name: &str, comment: &str| -> u64 {
        let out = Command::new("sbatch")
            .args([
                "--parsable",
                &format!("--job-name={name}"),
                &format!("--comment={comment}"),
                "--output=/dev/null",
                "--wrap=sleep 60",
            ])
            .env("SLURM_CONF", &conf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let orphan = sbatch("suanli-999-1", "suanli:c-slurm");
    let other = sbatch("suanli-999-1", "suanli:elsewhere");
    assert_eq!(backend.cancel_orphans().await.unwrap(), [orphan]);
    assert!(
        squeue(&conf, "suanli-999-1")
            .iter()
            .filter(|(_, st)| st != "COMPLETING")
            .all(|(id, _)| *id == other)
    );
    assert!(
        Command::new("scancel")
            .arg(other.to_string())
            .env("SLURM_CONF", &conf)
            .status()
            .unwrap()
            .success()
    );
    drop(backend);

    let mut cfg = AgentConfig::new(
        vec![net.url.clone()],
        net.site_tokens[0].1.clone(),
        tmp.path().join("site"),
    );
    cfg.heartbeat_interval = Duration::from_millis(300);
    cfg.poll_wait_secs = 2;
    cfg.kill_grace = Duration::from_secs(1);
    cfg.slurm = slurm_cfg;
    let (stop_agent, mut stop_rx) = watch::channel(false);
    let agent = tokio::spawn(suanli_site::run_agent(cfg, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    net.wait_online().await;

    // 1. Output, working files, the environment, Slurm's GPU and node list; 2. a failure with its
    // exit code; 3. a two-node job.
    let mut hello = spec(
        "hello",
        "echo \"hello from $SUANLI_JOB_ID attempt $SUANLI_ATTEMPT on $SUANLI_SLURM_NODES gpus=$CUDA_VISIBLE_DEVICES\"; cat input.txt; echo oops >&2",
    );
    hello
        .files
        .insert("input.txt".into(), "an input file\n".into());
    let hello = submit(&a, &hello).await;
    let fail = submit(&a, &spec("fail", "echo about to fail; exit 3")).await;
    let mut pair = spec(
        "pair",
        "echo \"nodes=$SUANLI_SLURM_NODES count=$SUANLI_NODE_COUNT job=$SUANLI_SLURM_JOB_ID\"",
    );
    pair.nodes = 2;
    let pair = submit(&a, &pair).await;

    let v = wait_terminal(&a, hello, Duration::from_secs(30)).await;
    assert_eq!(
        v.summary.state,
        JobState::Succeeded,
        "{:?}",
        v.summary.reason
    );
    assert_eq!(v.summary.exit_code, Some(0));
    let hello_line = format!("hello from {hello} attempt 1 on n");
    let logs = logs_having(&a, hello, &[&hello_line, "an input file"]).await;
    let gpus = logs.split("gpus=").nth(1).and_then(|r| r.lines().next());
    assert!(
        matches!(gpus, Some("0" | "1")),
        "Slurm's GPU allocation: {logs:?}"
    );
    assert_stderr_has(&a, hello, "oops\n").await;
    assert!(v.card_seconds <= 30, "metered from Slurm's times");

    // The same logs through the CLI, as `suanli logs` shows them.
    let token = user_token(&net.op(), "t-a", "cli").await;
    let out = Command::new(BIN)
        .args(["--hub", &net.url, "--token", &token, "--config"])
        .arg(tmp.path().join("no-config.toml"))
        .args(["logs", &hello.to_string()])
        .env_remove("SUANLI_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(&format!("hello from {hello}")),
        "suanli logs: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let v = wait_terminal(&a, fail, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Failed);
    assert_eq!(v.summary.exit_code, Some(3));
    assert_eq!(v.summary.reason.as_deref(), Some("exited with code 3"));
    assert!(all_logs(&a, fail).await.contains("about to fail"));

    let v = wait_terminal(&a, pair, Duration::from_secs(30)).await;
    assert_eq!(
        v.summary.state,
        JobState::Succeeded,
        "{:?}",
        v.summary.reason
    );
    let logs = all_logs(&a, pair).await;
    assert!(logs.contains("nodes=n[1-2] count=2 job="), "{logs:?}");
    eprintln!("quick jobs done at {:?}", t0.elapsed());

    // 4. Cancel reaches scancel; 5. a cancel in Slurm behind suanli's back is a failure;
    // 6. the wall time ends the Slurm job.
    let long = submit(&a, &spec("long", "echo started; sleep 60")).await;
    let behind = submit(&a, &spec("behind", "sleep 60")).await;
    let mut short = spec("short", "echo tick; sleep 60");
    short.walltime = 2;
    let short = submit(&a, &short).await;

    let long_slurm = slurm_job_running(&conf, long, Duration::from_secs(30)).await;
    wait_state(&a, long, JobState::Running, Duration::from_secs(10)).await;
    assert_eq!(
        a.cancel(long).await.unwrap().summary.state,
        JobState::Cancelled
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !squeue(&conf, &format!("suanli-{long}-1")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the cancelled job stays in Slurm"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(slurm_state(&conf, long_slurm), "CANCELLED");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = a.job(long).await.unwrap();
        if v.history
            .iter()
            .any(|e| e.message.contains("cancelled attempt stopped"))
        {
            assert_eq!(v.summary.state, JobState::Cancelled);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the site never confirmed the stop: {:?}",
            v.history
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all_logs(&a, long).await.contains("started"));

    let behind_slurm = slurm_job_running(&conf, behind, Duration::from_secs(30)).await;
    let st = Command::new("scancel")
        .arg(behind_slurm.to_string())
        .env("SLURM_CONF", &conf)
        .status()
        .unwrap();
    assert!(st.success());
    let v = wait_terminal(&a, behind, Duration::from_secs(20)).await;
    assert_eq!(v.summary.state, JobState::Failed);
    let reason = v.summary.reason.unwrap_or_default();
    assert!(
        reason.contains("cancelled in Slurm, not by suanli"),
        "{reason}"
    );

    let v = wait_terminal(&a, short, Duration::from_secs(40)).await;
    assert_eq!(
        v.summary.state,
        JobState::TimedOut,
        "{:?}",
        v.summary.reason
    );
    assert!(all_logs(&a, short).await.contains("tick"));
    assert!(
        v.card_seconds >= 1 && v.card_seconds <= 10,
        "about 2 s of one card: {}",
        v.card_seconds
    );
    assert!(squeue(&conf, &format!("suanli-{short}-1")).is_empty());

    // 7. `--signal=B:USR1@4`: the warning reaches the batch shell (scancel --signal --batch),
    // which ends well on it.
    let mut warned = spec(
        "warned",
        "trap 'echo warned; exit 0' USR1; i=0; while [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done",
    );
    warned.walltime = 8;
    warned.signal = Some("B:USR1@4".into());
    let warned = submit(&a, &warned).await;
    let v = wait_terminal(&a, warned, Duration::from_secs(40)).await;
    assert_eq!(
        v.summary.state,
        JobState::Succeeded,
        "{:?}",
        v.summary.reason
    );
    logs_having(&a, warned, &["warned"]).await;

    let _ = stop_agent.send(true);
    tokio::time::timeout(Duration::from_secs(15), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    drop(slurm);
    eprintln!("Slurm test took {:?}", t0.elapsed());
}

/// `suanli up --with-slurm`, stopped with Ctrl-C (SIGINT); on failure the guard kills it and its
/// Slurm daemons.
struct UpWithSlurm {
    child: std::process::Child,
    data: PathBuf,
}

impl Drop for UpWithSlurm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        suanli_site::slurm::cluster::stop_dir(&self.data.join("slurm"));
        crate::contract::check();
    }
}

#[test]
fn up_with_slurm_runs_a_demo_center_on_a_local_slurm() {
    use std::io::{BufRead, BufReader};
    if let Some(why) = missing() {
        return crate::check::skip("up_with_slurm_runs_a_demo_center_on_a_local_slurm", why);
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    let data = tmp.path().join("data");
    let child = Command::new(BIN)
        .args([
            "up",
            "--with-slurm",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .arg("--write-config")
        .arg(&config)
        .env("HOME", tmp.path())
        .env(crate::contract::ENV, crate::contract::dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = UpWithSlurm { child, data };
    let mut lines = BufReader::new(up.child.stdout.take().unwrap()).lines();
    let banner: Vec<String> = lines.by_ref().take(4).map(|l| l.unwrap()).collect();
    assert!(banner[0].contains("suanli is up"), "{banner:?}");
    assert!(
        banner
            .iter()
            .any(|l| l.contains("local-slurm: a local Slurm")),
        "{banner:?}"
    );
    std::thread::spawn(move || for _ in lines {});
    let suanli = |args: &[&str]| {
        let (code, out, err) = crate::cli::with_config(&config, args);
        assert_eq!(code, 0, "suanli {args:?}: {err}");
        out
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !suanli(&["centers"])
        .lines()
        .any(|l| l.starts_with("local-slurm") && l.contains("online"))
    {
        assert!(Instant::now() < deadline, "local-slurm never came online");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = suanli(&[
        "submit",
        "--sku",
        "RTX4090",
        "--cards",
        "1",
        "--",
        "echo on $SUANLI_SLURM_NODES slurm job $SUANLI_SLURM_JOB_ID",
    ]);
    let id = out
        .split_whitespace()
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no job id in {out:?}"))
        .to_string();
    suanli(&["wait", &id]);
    let logs = suanli(&["logs", &id]);
    assert!(
        logs.starts_with("on n") && logs.contains("slurm job "),
        "{logs:?}"
    );
    assert!(suanli(&["job", &id]).contains("local-slurm"));

    // Ctrl-C stops the hub, the agents and the Slurm daemons.
    let daemons: Vec<u32> = std::fs::read_dir(up.data.join("slurm/run"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect();
    assert_eq!(daemons.len(), 3, "slurmctld and two slurmd");
    let pid = up.child.id().to_string();
    if Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .is_ok_and(|s| s.success())
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        while up.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "up did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(100));
        }
        let left: Vec<u32> = daemons
            .into_iter()
            .filter(|p| crate::check::alive(*p))
            .collect();
        assert!(left.is_empty(), "Slurm daemons left running: {left:?}");
    }
}

//! Fault test 4: a network partition between a site agent and the hub, made with network
//! namespaces. The hub, agent A (the cheap center) and agent B (the dear one) each run the real
//! binary in a namespace of their own; A and B reach the hub's namespace over a veth pair each.
//! The test cuts A off while A runs a job, heals the link later, and talks to the hub only through
//! the CLI run inside the hub's namespace. It needs root (`ip netns`) and is skipped where network
//! namespaces are not permitted (with `CI` set it fails instead).
//!
//! The cut (`SUANLI_PARTITION`): `drop` (the default) makes every packet between A and the hub
//! vanish, both ways, with links and routes up, as a broken switch would: each side's neighbour
//! entry for the other points at a MAC address nobody has, so the peer discards the frames. Open
//! connections hang rather than fail. `link-down` takes A's link down on the hub's side instead:
//! A's connects then fail with "no route to host".

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use suanli_proto::{CenterView, InvoiceView, JobView};
use suanli_types::{JobId, JobState};

use crate::check::{self, logged_job, read_runs};
use crate::faults::Proc;
use crate::harness::cheap_and_dear;

const BIN: &str = env!("CARGO_BIN_EXE_suanli");
/// The hub's port inside its own namespace, where nothing else listens.
const PORT: u16 = 8600;
/// How often the slower waits poll (each poll runs the CLI once or twice).
const SLOW: Duration = Duration::from_millis(200);
/// What agent A logs when it fences itself (crates/suanli-site/src/agent.rs).
const FENCED: &str = "no heartbeat reached the hub within its lease";

/// Runs `ip ARGS` (words separated by spaces); panics with its error output if it fails.
fn ip(args: &str) {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The test's network namespaces: every process left in them is killed (SIGKILL) and the
/// namespaces are deleted when dropped, on panic too.
struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Creates the namespaces; `None` (after [`check::skip`]) where namespaces are not permitted.
    fn create(test: &str, names: &[&str]) -> Option<Namespaces> {
        let mut ns = Namespaces { names: Vec::new() };
        let skip = |why: String| check::skip(test, &format!("no network namespaces here: {why}"));
        for n in names {
            let out = match Command::new("ip").args(["netns", "add", n]).output() {
                Ok(out) => out,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    skip(format!("`ip` not found (install iproute2): {e}"));
                    return None;
                }
                Err(e) => panic!("cannot run `ip netns add {n}`: {e}"),
            };
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if err.contains("Operation not permitted") || err.contains("Permission denied") {
                    skip(err);
                    return None;
                }
                panic!("ip netns add {n}: {err}");
            }
            ns.names.push(n.to_string());
        }
        Some(ns)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            // Jobs run by the agents have process groups of their own and outlive a killed agent.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", n]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).output();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Runs the suanli binary inside namespace `ns` (`ip netns exec` execs it, so the child is the
/// suanli process itself).
fn spawn_in(ns: &str, args: &[&str], log: &Path) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, BIN]);
    Proc::spawn_cmd(cmd, args, log)
}

/// The hub and two agents in namespaces `h`, `a` and `b`. Fields drop in order: processes, then
/// namespaces, then the temp dir.
struct Net {
    procs: Vec<Proc>,
    ns: Namespaces,
    dir: tempfile::TempDir,
    h: String,
    operator: String,
    user: String,
    shared: PathBuf,
}

impl Net {
    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn spawn(&mut self, ns: &str, name: &str, args: &[&str]) {
        let log = self.log(name);
        self.procs.push(spawn_in(ns, args, &log));
    }

    /// The tails of the logs and the runs file, for assertion messages.
    fn logs(&self) -> String {
        let mut s = format!("namespaces {:?}\n", self.ns.names);
        for name in ["hub", "site-p-cheap", "site-p-dear", "runs"] {
            let text = std::fs::read_to_string(self.log(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            s += &format!("--- {name}.log (last {} lines)\n", tail.len());
            for l in tail {
                s += l;
                s.push('\n');
            }
        }
        s
    }

    /// `suanli --hub http://127.0.0.1:PORT --token TOKEN ARGS` in the hub's namespace: its stdout,
    /// or its exit status and stderr.
    fn cli(&self, token: &str, args: &[&str]) -> Result<String, String> {
        let hub = format!("http://127.0.0.1:{PORT}");
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.h, BIN, "--hub", &hub, "--token", token,
            ])
            .args(args)
            .env_remove("SUANLI_HUB")
            .env_remove("SUANLI_TOKEN")
            .env_remove("SUANLI_PROFILE")
            .env("SUANLI_CONFIG", self.dir.path().join("no-config.toml"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        match out.status.success() {
            true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
            false => Err(format!(
                "suanli {}: {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// Like [`Net::cli`], but panics with the logs if the verb fails.
    fn must(&self, token: &str, args: &[&str]) -> String {
        self.cli(token, args)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Polls `f` every 50 ms until it gives a value; at `deadline` fails with `what` and the logs.
    fn wait<T>(&self, deadline: Instant, what: &str, f: impl FnMut() -> Option<T>) -> T {
        self.wait_every(deadline, Duration::from_millis(50), what, f)
    }

    /// [`Net::wait`], polling every `every`.
    fn wait_every<T>(
        &self,
        deadline: Instant,
        every: Duration,
        what: &str,
        mut f: impl FnMut() -> Option<T>,
    ) -> T {
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(Instant::now() < deadline, "{what}\n{}", self.logs());
            std::thread::sleep(every);
        }
    }

    /// Submits a logged job that sleeps `sleep` as the user; its id.
    fn submit(&self, name: &str, sleep: &str) -> String {
        let spec = logged_job(name.into(), &self.shared, sleep);
        let file = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, toml::to_string(&spec).unwrap()).unwrap();
        let args = ["submit", "-f", file.to_str().unwrap(), "--parsable"];
        self.must(&self.user, &args).trim().to_string()
    }

    fn job(&self, id: &str) -> JobView {
        serde_json::from_str(&self.must(&self.user, &["job", id, "--json"])).unwrap()
    }

    fn center(&self, id: &str) -> CenterView {
        let all: Vec<CenterView> =
            serde_json::from_str(&self.must(&self.operator, &["centers", "--json"])).unwrap();
        all.into_iter()
            .find(|c| c.id.as_str() == id)
            .unwrap_or_else(|| panic!("no center {id}"))
    }
}

/// A veth pair from `hub` (device `dev`, address `hub_addr`) to `other` (device `toh`).
fn link(hub: &str, dev: &str, other: &str, hub_addr: &str, other_addr: &str) {
    ip(&format!(
        "-n {hub} link add {dev} type veth peer name toh netns {other}"
    ));
    ip(&format!("-n {hub} addr add {hub_addr} dev {dev}"));
    ip(&format!("-n {other} addr add {other_addr} dev toh"));
    ip(&format!("-n {hub} link set {dev} up"));
    ip(&format!("-n {other} link set toh up"));
}

/// How the test cuts A off from the hub; see the module documentation.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Drop,
    LinkDown,
}

impl Cut {
    fn from_env() -> Cut {
        match std::env::var("SUANLI_PARTITION").as_deref() {
            Ok("link-down") => Cut::LinkDown,
            Ok("drop") | Err(_) => Cut::Drop,
            Ok(other) => panic!("SUANLI_PARTITION={other:?}: expected drop or link-down"),
        }
    }

    /// Cuts (`cut`) or heals the link between the hub's namespace `h` and A's namespace `a`.
    fn apply(self, h: &str, a: &str, cut: bool) {
        // Locally administered MAC addresses that no interface here has.
        let nowhere = "lladdr 02:00:00:00:00:01 nud permanent";
        match (self, cut) {
            (Cut::Drop, true) => {
                ip(&format!(
                    "-n {a} neigh replace 10.231.0.1 {nowhere} dev toh"
                ));
                ip(&format!(
                    "-n {h} neigh replace 10.231.0.2 {nowhere} dev toa"
                ));
            }
            (Cut::Drop, false) => {
                ip(&format!("-n {a} neigh del 10.231.0.1 dev toh"));
                ip(&format!("-n {h} neigh del 10.231.0.2 dev toa"));
            }
            (Cut::LinkDown, true) => ip(&format!("-n {h} link set toa down")),
            (Cut::LinkDown, false) => ip(&format!("-n {h} link set toa up")),
        }
    }
}

#[test]
fn a_partitioned_agent_fences_itself_and_the_job_ends_once_at_the_other_center() {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(90);
    let mode = Cut::from_env();
    let pid = std::process::id();
    let (h, a, b) = (
        format!("sl{pid}h"),
        format!("sl{pid}a"),
        format!("sl{pid}b"),
    );
    let test = "a_partitioned_agent_fences_itself";
    let Some(ns) = Namespaces::create(test, &[&h, &a, &b]) else {
        return;
    };
    // H:toa 10.231.0.1/30 <-> A:toh 10.231.0.2/30, and H:tob 10.231.0.5/30 <-> B:toh 10.231.0.6/30.
    link(&h, "toa", &a, "10.231.0.1/30", "10.231.0.2/30");
    link(&h, "tob", &b, "10.231.0.5/30", "10.231.0.6/30");
    for n in [&h, &a, &b] {
        ip(&format!("-n {n} link set lo up"));
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("runs.log");
    let mut net = Net {
        procs: Vec::new(),
        ns,
        dir,
        h: h.clone(),
        operator: String::new(),
        user: String::new(),
        shared,
    };

    // The hub: a lease of 10 s, and a center silent for 3 s gets no new work.
    let data = net.dir.path().join("data");
    let listen = format!("0.0.0.0:{PORT}");
    net.spawn(
        &h,
        "hub",
        &[
            "hub",
            "--listen",
            &listen,
            "--data-dir",
            data.to_str().unwrap(),
            "--lease-ttl",
            "10s",
            "--offline-after",
            "3s",
        ],
    );
    net.operator = net.wait(deadline, "the hub did not come up", || {
        let t = std::fs::read_to_string(data.join("operator-token")).ok()?;
        let t = t.trim().to_string();
        net.cli(&t, &["whoami", "--json"]).is_ok().then_some(t)
    });
    let op = net.operator.clone();
    net.must(
        &op,
        &[
            "admin",
            "tenant-create",
            "--id",
            "t-p",
            "--name",
            "Partition tenant",
            "--category",
            "sme",
        ],
    );
    net.user = net
        .must(
            &op,
            &[
                "admin",
                "token-create",
                "--name",
                "pat",
                "--role",
                "user",
                "--tenant",
                "t-p",
            ],
        )
        .trim()
        .to_string();

    // Agent A (cheap) in namespace A, agent B (dear) in namespace B, each to its side of the hub.
    let centers = cheap_and_dear("p", 1);
    for (spec, ns, hub_addr) in [
        (&centers[0], &a, "10.231.0.1"),
        (&centers[1], &b, "10.231.0.5"),
    ] {
        let id = spec.id.to_string();
        let file = net.dir.path().join(format!("{id}.toml"));
        std::fs::write(&file, toml::to_string(spec).unwrap()).unwrap();
        let token = net
            .must(&op, &["admin", "center-register", file.to_str().unwrap()])
            .trim()
            .to_string();
        let work = net.dir.path().join("sites").join(&id);
        let hub = format!("http://{hub_addr}:{PORT}");
        net.spawn(
            ns,
            &format!("site-{id}"),
            &crate::faults::site_args(&hub, &token, work.to_str().unwrap()),
        );
    }
    for id in ["p-cheap", "p-dear"] {
        let online = || (net.center(id).status == "online").then_some(());
        net.wait(deadline, &format!("{id} never came online"), online);
    }
    let up_at = t0.elapsed();

    // One job that runs 12 s: longer than A's fence (at most 9 s after its last heartbeat), so
    // only the fence stops attempt 1.
    let user = net.user.clone();
    let id = net.submit("long", "12");
    let job = JobId(id.parse().unwrap());
    let (first, second) = ((job, 1), (job, 2));
    // Attempt 1 runs at A, the hub knows it (A's start report got through), and a heartbeat that
    // lists it has reached the hub a second after it started (so that it is billed for
    // something).
    let start = net.wait(deadline, "attempt 1 never ran", || {
        let start = read_runs(&net.shared).start(first)?;
        let v = net.job(&id);
        (v.summary.state == JobState::Running).then_some(())?;
        assert_eq!(
            v.summary.center.as_ref().map(|c| c.as_str()),
            Some("p-cheap"),
            "attempt 1 went to the dear center: {v:?}"
        );
        assert_eq!(v.summary.attempt, 1, "{v:?}");
        Some(start)
    });
    net.wait(deadline, "no heartbeat after attempt 1 started", || {
        let t = net.center("p-cheap").last_heartbeat?;
        (t.0 as f64 > start * 1000.0 + 1000.0).then_some(())
    });
    let started_at = t0.elapsed();

    // Partition A from the hub.
    mode.apply(&h, &a, true);
    let partitioned_at = t0.elapsed();

    // A goes offline for the hub (3 s), its lease runs out (10 s), and attempt 2 runs at B. The
    // hub's last heartbeat from A, seen while A is offline, listed attempt 1.
    let mut last_heartbeat = None;
    net.wait_every(deadline, SLOW, "the lease never ran out", || {
        let c = net.center("p-cheap");
        if c.status == "offline" {
            last_heartbeat = c.last_heartbeat;
        }
        let v = net.job(&id);
        (v.summary.attempt >= 2).then_some(())?;
        assert_eq!(
            v.summary.center.as_ref().map(|c| c.as_str()),
            Some("p-dear"),
            "attempt {} went to {:?}\n{}",
            v.summary.attempt,
            v.summary.center,
            net.logs()
        );
        Some(())
    });
    let moved_at = t0.elapsed();
    let Some(last_heartbeat) = last_heartbeat else {
        panic!(
            "the hub never showed the partitioned center offline\n{}",
            net.logs()
        )
    };
    net.wait(deadline, "attempt 2 never started at B", || {
        read_runs(&net.shared).start(second).map(drop)
    });
    let fenced = std::fs::read_to_string(net.log("site-p-cheap")).unwrap_or_default();
    assert!(
        fenced.contains(FENCED),
        "agent A did not fence itself during the partition\n{}",
        net.logs()
    );

    // Heal. The job ends at B; A reaches the hub again (timed on its own).
    mode.apply(&h, &a, false);
    let healed_at = t0.elapsed();
    let mut ended: Option<(JobView, Duration)> = None;
    let mut back: Option<(CenterView, Duration)> = None;
    let (v, ended_at, online, online_at) = net.wait_every(
        deadline,
        SLOW,
        "after the heal: the job or agent A is not back",
        || {
            if back.is_none() {
                let c = net.center("p-cheap");
                if c.status == "online" {
                    back = Some((c, t0.elapsed()));
                }
            }
            if ended.is_none() {
                let v = net.job(&id);
                if v.summary.state.is_terminal() {
                    ended = Some((v, t0.elapsed()));
                }
            }
            let ((v, e), (c, o)) = (ended.as_ref()?, back.as_ref()?);
            Some((v.clone(), *e, c.clone(), *o))
        },
    );

    // A heartbeats a few times; nothing it reports about attempt 1 changes the ended job.
    std::thread::sleep(Duration::from_secs(3));
    let again = net.center("p-cheap");
    assert_eq!(
        again.status,
        "online",
        "A went offline again\n{}",
        net.logs()
    );
    assert_ne!(
        again.last_heartbeat,
        online.last_heartbeat,
        "A stopped heartbeating after it came back\n{}",
        net.logs()
    );
    assert_eq!(v.summary.attempt, 2, "{:?}", v.history);
    assert_eq!(
        v.summary.center.as_ref().map(|c| c.as_str()),
        Some("p-dear")
    );
    assert_eq!(
        net.job(&id),
        v,
        "the job changed after it ended\n{}",
        net.logs()
    );

    // A takes work again: the next job goes to the cheap center and runs there once.
    let id2 = net.submit("after", "0.2");
    let v2 = net.wait(deadline, "the job after the heal never ended", || {
        let v2 = net.job(&id2);
        v2.summary.state.is_terminal().then_some(v2)
    });
    assert_eq!(
        (
            v2.summary.state,
            v2.summary.attempt,
            v2.summary.center.as_ref().map(|c| c.as_str())
        ),
        (JobState::Succeeded, 1, Some("p-cheap")),
        "the job after the heal: {v2:?}\n{}",
        net.logs()
    );
    assert_eq!(
        net.job(&id),
        v,
        "the job changed after it ended\n{}",
        net.logs()
    );

    // Nothing lost, run twice or billed wrong; A fenced itself and killed attempt 1 (which would
    // otherwise have ended 12 s after its start), billed up to A's last heartbeat before the cut.
    let runs = read_runs(&net.shared);
    let bill: InvoiceView = serde_json::from_str(&net.must(&user, &["bill", "--json"])).unwrap();
    let job2 = v2.summary.id;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check::assert_nothing_lost(&[job, job2], &[v, v2], &runs, &bill, &centers);
        check::assert_killed_and_billed_to(&runs, &bill, first, last_heartbeat);
    }));
    if let Err(e) = outcome {
        eprintln!("{}", net.logs());
        std::panic::resume_unwind(e);
    }
    let at: Vec<_> = bill
        .lines
        .iter()
        .map(|l| (l.job, l.attempt, l.center.as_str()))
        .collect();
    assert_eq!(
        at,
        [
            (job, 1, "p-cheap"),
            (job, 2, "p-dear"),
            (job2, 1, "p-cheap")
        ],
        "{bill:?}"
    );
    eprintln!(
        "partition ({mode:?}): up at {up_at:?}, attempt 1 started at {started_at:?}, partitioned at \
         {partitioned_at:?}, attempt 2 placed at {moved_at:?}, healed at {healed_at:?}, job ended \
         at {ended_at:?}, A online again at {online_at:?}, total {:?}",
        t0.elapsed()
    );
    assert!(Instant::now() < deadline, "took {:?}", t0.elapsed());
}

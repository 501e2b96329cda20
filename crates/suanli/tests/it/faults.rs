//! Fault tests with the real binary: `suanli hub` and `suanli site` as child processes, killed
//! with SIGKILL (`Child::kill`) and restarted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suanli_client::Client;
use suanli_proto::{TenantRequest, TokenRequest};
use suanli_types::{CenterSpec, JobId, JobSpec, JobState, Role, TenantCategory, TenantId};

use crate::harness::center;

/// A child process that is killed (SIGKILL) and reaped when dropped.
pub(crate) struct Proc {
    child: Option<Child>,
}

impl Proc {
    fn spawn(args: &[&str], log: &Path) -> Proc {
        Proc::spawn_cmd(Command::new(env!("CARGO_BIN_EXE_suanli")), args, log)
    }

    /// Runs `cmd` (the suanli binary, or something that execs it) with `args`, output appended
    /// to `log`, without the caller's suanli environment.
    pub(crate) fn spawn_cmd(mut cmd: Command, args: &[&str], log: &Path) -> Proc {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .args(args)
            .env("SUANLI_LOG", "info")
            .env(crate::contract::ENV, crate::contract::dir())
            .env_remove("SUANLI_SITE_TOKEN")
            .env_remove("SUANLI_HUB")
            .env_remove("SUANLI_TOKEN")
            .env_remove("SUANLI_STORE")
            .env_remove("SUANLI_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        Proc { child: Some(child) }
    }

    /// SIGKILL, as a crash would.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        crate::contract::check();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `suanli hub` process slot: restartable on its port and data dir.
struct HubSlot {
    port: u16,
    proc: Option<Proc>,
}

/// A network of real processes: one or more hubs (several share a PostgreSQL database) and
/// site agents that know every hub's URL.
struct World {
    dir: tempfile::TempDir,
    hubs: Vec<HubSlot>,
    /// `--store` of every hub; `None`: SQLite in hub 0's data dir.
    store: Option<String>,
    /// center id -> (site token, agent)
    sites: BTreeMap<String, (String, Option<Proc>)>,
    operator: String,
    user: String,
    shared: PathBuf,
    /// `--offline-after` of the hub.
    offline_after: &'static str,
    /// `--lease-ttl` of the hub (default 10 s).
    lease_ttl: &'static str,
}

impl World {
    fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("hub{i}"))
    }

    fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.hubs[i].port)
    }

    fn urls(&self) -> Vec<String> {
        (0..self.hubs.len()).map(|i| self.url(i)).collect()
    }

    fn hub_log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("hub{i}.log"))
    }

    fn spawn_hub(&mut self, i: usize) {
        let listen = format!("127.0.0.1:{}", self.hubs[i].port);
        let data = self.data_dir(i);
        let log = self.hub_log(i);
        let mut args = vec![
            "hub".to_string(),
            "--listen".into(),
            listen,
            "--data-dir".into(),
            data.to_str().unwrap().into(),
            "--lease-ttl".into(),
            self.lease_ttl.into(),
            "--offline-after".into(),
            self.offline_after.into(),
        ];
        if let Some(store) = &self.store {
            args.extend([
                "--store".into(),
                store.clone(),
                "--leader-ttl".into(),
                "5s".into(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.hubs[i].proc = Some(Proc::spawn(&args, &log));
    }

    /// Waits until hub `i` answers an operator call (which a follower forwards to the leader).
    async fn wait_hub(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let token_file = self.data_dir(0).join("operator-token");
        loop {
            if let Ok(t) = std::fs::read_to_string(&token_file) {
                let c = Client::new(vec![self.url(i)], t.trim());
                if c.whoami().await.is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "hub {i} did not come up; log:\n{}",
                std::fs::read_to_string(self.hub_log(i)).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start(centers: &[CenterSpec], offline_after: &'static str) -> World {
        World::start_with(centers, offline_after, "10s", 1, None).await
    }

    /// `hubs` hubs on `store` (`None`: one hub on SQLite); hub 0 starts first, so it leads.
    async fn start_with(
        centers: &[CenterSpec],
        offline_after: &'static str,
        lease_ttl: &'static str,
        hubs: usize,
        store: Option<String>,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("runs.log");
        let mut w = World {
            hubs: (0..hubs)
                .map(|_| HubSlot {
                    port: free_port(),
                    proc: None,
                })
                .collect(),
            dir,
            store,
            sites: BTreeMap::new(),
            operator: String::new(),
            user: String::new(),
            shared,
            offline_after,
            lease_ttl,
        };
        for i in 0..hubs {
            w.spawn_hub(i);
            w.wait_hub(i).await;
        }
        w.operator = std::fs::read_to_string(w.data_dir(0).join("operator-token"))
            .unwrap()
            .trim()
            .to_string();
        let op = w.op();
        op.create_tenant(&TenantRequest {
            id: TenantId::new("t-f"),
            name: "Fault tenant".into(),
            category: TenantCategory::Sme,
        })
        .await
        .unwrap();
        w.user = op
            .create_token(&TokenRequest {
                name: "fay".into(),
                role: Role::User,
                tenant: Some(TenantId::new("t-f")),
                center: None,
            })
            .await
            .unwrap()
            .token;
        for c in centers {
            let r = op.register_center(c).await.unwrap();
            let token = r.site_token.expect("a new center gets a site token");
            w.sites.insert(c.id.to_string(), (token, None));
        }
        let ids: Vec<String> = w.sites.keys().cloned().collect();
        for id in ids {
            w.spawn_site(&id);
        }
        w.wait_online().await;
        w
    }

    fn spawn_site(&mut self, id: &str) {
        let work = self.dir.path().join("sites").join(id);
        let log = self.dir.path().join(format!("site-{id}.log"));
        let urls = self.urls().join(",");
        let (token, proc) = self.sites.get_mut(id).unwrap();
        let token = token.clone();
        *proc = Some(Proc::spawn(
            &site_args(&urls, &token, work.to_str().unwrap()),
            &log,
        ));
    }

    fn op(&self) -> Client {
        Client::new(self.urls(), &self.operator)
    }

    fn user(&self) -> Client {
        Client::new(self.urls(), &self.user)
    }

    async fn wait_online(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(cs) = self.op().centers().await
                && cs.iter().all(|c| c.status == "online")
            {
                return;
            }
            assert!(Instant::now() < deadline, "centers never came online");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn restart_hub(&mut self, i: usize) {
        self.hubs[i].proc.as_mut().unwrap().kill9();
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.spawn_hub(i);
        self.wait_hub(i).await;
    }

    /// Sends `sig` (e.g. `-STOP`) to hub `i`'s process.
    fn signal(&self, i: usize, sig: &str) {
        let pid = self.hubs[i]
            .proc
            .as_ref()
            .unwrap()
            .child
            .as_ref()
            .unwrap()
            .id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// The role hub `i` reports (`None` while it cannot be reached).
    async fn role(&self, i: usize) -> Option<suanli_proto::HubStatus> {
        Client::new(vec![self.url(i)], &self.operator)
            .hub_status()
            .await
            .ok()
    }
}

/// `suanli site` against `hubs` with a 1 s heartbeat.
pub(crate) fn site_args<'a>(hubs: &'a str, token: &'a str, work_dir: &'a str) -> [&'a str; 9] {
    [
        "site",
        "--hub",
        hubs,
        "--token",
        token,
        "--work-dir",
        work_dir,
        "--heartbeat-interval",
        "1s",
    ]
}

/// A job that appends `S|E job:attempt unix-seconds` to `shared` when it starts and ends.
pub(crate) fn logged_job(name: String, shared: &Path, sleep: &str) -> JobSpec {
    let f = shared.display();
    JobSpec::new(
        name,
        format!(
            "echo \"S $SUANLI_JOB_ID:$SUANLI_ATTEMPT $(date +%s.%N)\" >> {f}; sleep {sleep}; \
             echo \"E $SUANLI_JOB_ID:$SUANLI_ATTEMPT $(date +%s.%N)\" >> {f}"
        ),
    )
}

/// Start and end lines of the shared file, per (job, attempt).
#[derive(Default, Debug)]
pub(crate) struct Runs {
    pub(crate) starts: BTreeMap<(u64, u32), Vec<f64>>,
    pub(crate) ends: BTreeMap<(u64, u32), Vec<f64>>,
}

pub(crate) fn read_runs(shared: &Path) -> Runs {
    let text = std::fs::read_to_string(shared).unwrap_or_default();
    let mut runs = Runs::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(kind), Some(ja), Some(t)) = (it.next(), it.next(), it.next()) else {
            panic!("bad line {line:?}");
        };
        let (j, a) = ja.split_once(':').unwrap();
        let key = (j.parse().unwrap(), a.parse().unwrap());
        let t: f64 = t.parse().unwrap();
        match kind {
            "S" => runs.starts.entry(key).or_default().push(t),
            "E" => runs.ends.entry(key).or_default().push(t),
            _ => panic!("bad line {line:?}"),
        }
    }
    runs
}

async fn all_jobs(c: &Client) -> Vec<JobId> {
    let mut out = Vec::new();
    let mut filter = suanli_client::JobFilter::default();
    loop {
        let page = c.jobs(&filter).await.unwrap();
        out.extend(page.jobs.iter().map(|j| j.id));
        match page.next {
            Some(n) => filter.after = Some(n.0),
            None => return out,
        }
    }
}

/// Waits until none of the tenant's jobs is unfinished; returns them all.
async fn wait_all_ended(c: &Client, deadline: Instant) -> Vec<suanli_proto::JobView> {
    loop {
        let ids = all_jobs(c).await;
        let mut views = Vec::new();
        let mut open = 0;
        for id in &ids {
            let v = c.job(*id).await.unwrap();
            if !v.summary.state.is_terminal() {
                open += 1;
            }
            views.push(v);
        }
        if open == 0 {
            return views;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} jobs still unfinished",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn jobs_count() -> usize {
    std::env::var("SUANLI_FAULT_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(JOBS)
}

/// How many jobs the hub-kill test submits (override with SUANLI_FAULT_JOBS).
const JOBS: usize = 2_000;

/// Submits `n` logged jobs from a task of its own; the returned receiver fires halfway.
/// The task returns the acknowledged job ids and how many submits failed.
fn submit_in_background(
    w: &World,
    n: usize,
) -> (
    tokio::sync::oneshot::Receiver<()>,
    tokio::task::JoinHandle<(Vec<JobId>, usize)>,
) {
    let user = w.user();
    let shared = w.shared.clone();
    let (half_tx, half_rx) = tokio::sync::oneshot::channel();
    let submitter = tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut refused = 0usize;
        let mut half = Some(half_tx);
        for i in 0..n {
            match user
                .submit(&logged_job(format!("f{i}"), &shared, "0.05"))
                .await
            {
                Ok(v) => acked.push(v.summary.id),
                Err(_) => {
                    refused += 1;
                    // No hub serves: do not spin through the rest of the jobs.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            if i == n / 2
                && let Some(tx) = half.take()
            {
                let _ = tx.send(());
            }
        }
        (acked, refused)
    });
    (half_rx, submitter)
}

/// The job's attempt 1 was lost and requeued, and attempt 2's end is its only end.
pub(crate) fn assert_lost_once_then_ended(v: &suanli_proto::JobView) {
    let ends: Vec<_> = v.history.iter().filter(|e| e.state.is_terminal()).collect();
    assert_eq!(ends.len(), 1, "ended once: {:?}", v.history);
    assert_eq!(ends[0].attempt, 2, "only attempt 2's end: {:?}", v.history);
    assert!(
        v.history
            .iter()
            .any(|e| e.attempt == 1 && e.state == JobState::Queued),
        "attempt 1 was lost and requeued: {:?}",
        v.history
    );
}

/// Waits for every job to end, then checks fault test 1's invariants: every acknowledged job
/// exists once and succeeded, ended once, no attempt started twice or overlapped another of its
/// job, metering matches the recorded run times, and the bill adds up per line, per job and in
/// total. Returns the bill.
async fn check_nothing_lost(
    w: &World,
    acked: &[JobId],
    deadline: Instant,
) -> suanli_proto::InvoiceView {
    let user = w.user();
    let views = wait_all_ended(&user, deadline).await;

    // Every acknowledged job exists, exactly once.
    let listed: Vec<JobId> = views.iter().map(|v| v.summary.id).collect();
    let unique: BTreeSet<JobId> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a job is listed twice");
    for id in acked {
        assert!(unique.contains(id), "acknowledged job {id} is missing");
    }
    // Every submit was acknowledged (the callers check), and a submit retried across the
    // failure with its idempotency key created no second job.
    assert_eq!(
        unique.len(),
        acked.len(),
        "jobs exist that no acknowledged submit created"
    );

    let runs = read_runs(&w.shared);
    let mut card_seconds = BTreeMap::new();
    for v in &views {
        let id = v.summary.id;
        assert_eq!(
            v.summary.state,
            JobState::Succeeded,
            "job {id}: {:?} {:?}",
            v.reason,
            v.history
        );
        let ends = v.history.iter().filter(|e| e.state.is_terminal()).count();
        assert_eq!(ends, 1, "job {id} ended once: {:?}", v.history);
        // No (job, attempt) started twice, and the job's attempts never overlapped.
        let mut spans = Vec::new();
        let mut recorded = 0.0;
        let mut attempts = 0;
        for a in 1..=v.summary.attempt {
            let key = (id.0 as u64, a);
            let starts = runs.starts.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            assert!(starts.len() <= 1, "attempt {id}:{a} started twice");
            let ends = runs.ends.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            assert!(ends.len() <= 1, "attempt {id}:{a} ended twice");
            if let (Some(s), Some(e)) = (starts.first(), ends.first()) {
                spans.push((*s, *e));
                recorded += e - s;
                attempts += 1;
            }
        }
        assert!(
            attempts >= 1,
            "job {id} succeeded but no attempt ran to its end"
        );
        spans.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for p in spans.windows(2) {
            assert!(
                p[0].1 <= p[1].0,
                "attempts of job {id} overlapped: {spans:?}"
            );
        }
        let metered = v.card_seconds as f64;
        let cards = v.summary.cards as f64;
        assert!(
            (metered - recorded * cards).abs() <= cards * attempts as f64 + 0.01,
            "job {id}: metered {metered} card-s, ran {recorded:.2} s x {cards} cards"
        );
        card_seconds.insert(id, v.card_seconds);
    }

    // The invoice balances.
    let bill = user.bill(None, None).await.unwrap();
    let mut per_job: BTreeMap<JobId, u64> = BTreeMap::new();
    let (mut gross, mut subsidy, mut payable) = (0i64, 0i64, 0i64);
    for l in &bill.lines {
        assert_eq!(l.gross.0, l.subsidy.0 + l.payable.0, "line {}", l.line);
        *per_job.entry(l.job).or_default() += l.card_seconds;
        gross += l.gross.0;
        subsidy += l.subsidy.0;
        payable += l.payable.0;
    }
    assert!(gross > 0, "nothing billed");
    assert_eq!(bill.totals.gross.0, gross);
    assert_eq!(bill.totals.subsidy.0, subsidy);
    assert_eq!(bill.totals.payable.0, payable);
    assert_eq!(
        bill.totals.gross.0,
        bill.totals.subsidy.0 + bill.totals.payable.0
    );
    for (id, cs) in &card_seconds {
        assert_eq!(
            per_job.get(id).copied().unwrap_or(0),
            *cs,
            "job {id} billed"
        );
    }
    bill
}

fn four_centers() -> [CenterSpec; 4] {
    [
        center("f-a", "RTX4090", 2, 4, "2.00"),
        center("f-b", "RTX4090", 1, 8, "3.00"),
        center("f-c", "A100-80G", 2, 4, "8.00"),
        center("f-d", "Ascend910B3", 1, 8, "5.00"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_hub_restarted_on_its_data_loses_no_acknowledged_job_and_runs_none_twice() {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    let mut w = World::start(&four_centers(), "10s").await;
    let n = jobs_count();

    // The client submits from its own task; the test kills the hub halfway.
    let (half, submitter) = submit_in_background(&w, n);
    half.await.unwrap();
    w.restart_hub(0).await;
    let (acked, refused) = submitter.await.unwrap();
    let submitted_at = t0.elapsed();
    // The client retries through the outage with the same idempotency key.
    assert_eq!((acked.len(), refused), (n, 0), "every submit acknowledged");

    let bill = check_nothing_lost(&w, &acked, deadline).await;
    let ran_at = t0.elapsed();
    // A restarted hub replays the same books.
    w.restart_hub(0).await;
    let again = w.user().bill(None, None).await.unwrap();
    assert_eq!(again, bill, "the replayed books differ");
    eprintln!(
        "hub kill: {n} submitted ({} acknowledged, {refused} refused) in {submitted_at:?}, \
         all ended at {ran_at:?}, total {:?}",
        acked.len(),
        t0.elapsed()
    );
    assert!(Instant::now() < deadline, "took {:?}", t0.elapsed());
}

/// A schema of its own in the test PostgreSQL database, for hubs started as processes; dropped
/// at the end. `None` when `SUANLI_TEST_POSTGRES_URL` is unset (the test then says it skipped);
/// a set URL whose server is down fails the test.
struct PgSchema {
    store: Option<suanli_store::PostgresStore>,
    /// The URL hubs get: the test database with `search_path` set to the schema.
    url: String,
}

impl PgSchema {
    async fn create(test: &str) -> Option<PgSchema> {
        const VAR: &str = "SUANLI_TEST_POSTGRES_URL";
        let base = match std::env::var(VAR) {
            Ok(u) if !u.trim().is_empty() => u,
            _ => {
                eprintln!("SKIPPED {test}: {VAR} is not set (CI sets it; see .ci/run)");
                return None;
            }
        };
        let schema = format!(
            "ft_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros()
        );
        // Creates the schema and applies the migrations there.
        let store = suanli_store::PostgresStore::connect_in_schema(&base, &schema)
            .await
            .unwrap_or_else(|e| {
                panic!("{VAR} is set, but PostgreSQL cannot be reached at it: {e}")
            });
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(PgSchema {
            store: Some(store),
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            // Best effort, from a runtime of its own (Drop may run during a panic).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Err(e) = store.drop_schema().await {
                        eprintln!("could not drop the test schema: {e}");
                    }
                });
            })
            .join();
        }
    }
}

/// Waits until hub `i` leads; returns when it did, measured from `since`.
async fn wait_leader(w: &World, i: usize, since: Instant, limit: Duration) -> Duration {
    loop {
        if let Some(s) = w.role(i).await
            && s.role == "leader"
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "hub {i} did not take over within {limit:?}; its log:\n{}",
            std::fs::read_to_string(w.hub_log(i)).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_postgres_the_follower_takes_over_a_killed_leader_and_loses_nothing() {
    let test = "two_hubs_on_postgres";
    let Some(pg) = PgSchema::create(test).await else {
        return;
    };
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(150);
    let mut w = World::start_with(&four_centers(), "10s", "10s", 2, Some(pg.url.clone())).await;
    let (s0, s1) = (w.role(0).await.unwrap(), w.role(1).await.unwrap());
    assert_eq!(s0.role, "leader", "{s0:?}");
    assert_eq!(s1.role, "follower", "{s1:?}");
    assert_eq!(s1.leader_url.as_deref(), Some(w.url(0).as_str()));
    for i in 0..2 {
        let r = reqwest::get(format!("{}/readyz", w.url(i))).await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "hub {i} is ready");
    }
    let n = jobs_count();

    // Kill the leader halfway through the submits, under load.
    let (half, submitter) = submit_in_background(&w, n);
    half.await.unwrap();
    w.hubs[0].proc.as_mut().unwrap().kill9();
    let killed = Instant::now();
    let took_over = wait_leader(&w, 1, killed, Duration::from_secs(10)).await;
    let s1 = w.role(1).await.unwrap();
    assert_eq!(s1.epoch, s0.epoch + 1, "a new term: {s1:?}");
    // Hub 0 comes back as a follower of hub 1.
    w.spawn_hub(0);
    w.wait_hub(0).await;
    let back = w.role(0).await.unwrap();
    assert_eq!(back.role, "follower", "{back:?}");
    assert_eq!(back.leader_url.as_deref(), Some(w.url(1).as_str()));

    let (acked, refused) = submitter.await.unwrap();
    let submitted_at = t0.elapsed();
    // The client retries through the outage with the same idempotency key.
    assert_eq!((acked.len(), refused), (n, 0), "every submit acknowledged");
    let bill = check_nothing_lost(&w, &acked, deadline).await;
    let ran_at = t0.elapsed();

    // The other way round, idle: hub 0 takes over from a killed hub 1 and replays the same books.
    w.hubs[1].proc.as_mut().unwrap().kill9();
    let killed = Instant::now();
    let took_back = wait_leader(&w, 0, killed, Duration::from_secs(10)).await;
    let again = w.user().bill(None, None).await.unwrap();
    assert_eq!(again, bill, "the new leader's books differ");
    // A graceful stop hands over at once.
    w.spawn_hub(1);
    w.wait_hub(1).await;
    let stopped = Instant::now();
    w.signal(0, "-TERM");
    let handed_over = wait_leader(&w, 1, stopped, Duration::from_secs(10)).await;
    eprintln!(
        "leader kill: {n} submitted ({} acknowledged, {refused} refused) in \
         {submitted_at:?}; follower led {took_over:?} after the kill; all ended at {ran_at:?}; \
         idle takeover {took_back:?}; graceful handover {handed_over:?}; total {:?}",
        acked.len(),
        t0.elapsed()
    );
    assert!(Instant::now() < deadline, "took {:?}", t0.elapsed());
    drop(w);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_loses_its_lease_and_the_job_ends_once_elsewhere_with_the_next_attempt() {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(90);
    let centers = [
        center("k-cheap", "RTX4090", 1, 1, "1.00"),
        center("k-dear", "RTX4090", 1, 1, "9.00"),
    ];
    // The killed center goes offline (3 s) well before its lease ends (10 s), so the job is
    // placed again at the other center, not back at the dead one.
    let mut w = World::start(&centers, "3s").await;
    let user = w.user();
    let id = user
        .submit(&logged_job("long".into(), &w.shared, "4"))
        .await
        .unwrap()
        .summary
        .id;
    let first = (id.0 as u64, 1u32);
    // Wait until attempt 1 runs at the cheap center, then kill its agent with SIGKILL.
    loop {
        if read_runs(&w.shared).starts.contains_key(&first) {
            break;
        }
        assert!(Instant::now() < deadline, "attempt 1 never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = user.job(id).await.unwrap();
    assert_eq!(v.summary.center.as_ref().unwrap().as_str(), "k-cheap");
    assert_eq!(v.summary.attempt, 1);
    w.sites
        .get_mut("k-cheap")
        .unwrap()
        .1
        .as_mut()
        .unwrap()
        .kill9();
    let killed_at = t0.elapsed();

    // The lease runs out; attempt 2 runs at the other center. The dead agent comes back with
    // the same token only once attempt 2 is placed there.
    loop {
        let v = user.job(id).await.unwrap();
        if v.summary.attempt >= 2 {
            assert_eq!(
                v.summary.center.as_ref().unwrap().as_str(),
                "k-dear",
                "attempt 2 went to {:?}",
                v.summary.center
            );
            break;
        }
        assert!(Instant::now() < deadline, "the lease never ran out: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_at = t0.elapsed();
    w.spawn_site("k-cheap");
    w.wait_online().await;

    let v = crate::harness::wait_terminal(&user, id, Duration::from_secs(60)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    assert_eq!(v.summary.attempt, 2);
    assert_eq!(v.summary.center.as_ref().unwrap().as_str(), "k-dear");
    assert_lost_once_then_ended(&v);

    // Give a surviving attempt-1 process time to finish (the job sleeps 4 s) and the restarted
    // agent a few heartbeats: nothing it could report changes the ended job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = user.job(id).await.unwrap();
    assert_eq!(after.history, v.history, "the job changed after it ended");
    let runs = read_runs(&w.shared);
    assert_eq!(runs.starts.get(&first).map(Vec::len), Some(1));
    assert_eq!(runs.starts.get(&(first.0, 2)).map(Vec::len), Some(1));
    assert_eq!(runs.ends.get(&(first.0, 2)).map(Vec::len), Some(1));
    // With the local backend the attempt-1 process has its own process group, so it outlives
    // the SIGKILLed agent and may write its end line; the restarted agent does not adopt it.
    // Its end is not the job's: the hub shows attempt 2's end only (checked above).
    let orphan_end = runs.ends.get(&first).and_then(|e| e.first()).copied();
    if let Some(e) = orphan_end {
        let s2 = runs.starts[&(first.0, 2)][0];
        assert!(
            e <= s2,
            "the orphaned attempt 1 ran on while attempt 2 ran ({e} > {s2})"
        );
    }
    eprintln!(
        "agent kill: killed at {killed_at:?}, attempt 2 placed at {moved_at:?}, orphan end line: {}, total {:?}",
        orphan_end.is_some(),
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_wakes_deposed_and_nothing_runs_twice() {
    let test = "a_frozen_leader";
    let Some(pg) = PgSchema::create(test).await else {
        return;
    };
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(120);
    let centers = [
        center("z-a", "RTX4090", 1, 4, "2.00"),
        center("z-b", "RTX4090", 1, 4, "3.00"),
    ];
    // Agents need a lease that outlasts a failover behind a hub that hangs (rather than one
    // that refuses connections): each heartbeat waits on the frozen hub first.
    let w = World::start_with(&centers, "10s", "20s", 2, Some(pg.url.clone())).await;
    let leader = w.role(0).await.unwrap();
    assert_eq!(leader.role, "leader", "{leader:?}");
    let user = w.user();
    let mut acked = Vec::new();
    for i in 0..240 {
        let v = user
            .submit(&logged_job(format!("z{i}"), &w.shared, "0.3"))
            .await
            .unwrap();
        acked.push(v.summary.id);
    }
    // Freeze the leader with work running, as a long pause or a stalled VM would: its process
    // holds its sockets but answers nothing.
    w.signal(0, "-STOP");
    let frozen = Instant::now();
    let took_over = wait_leader(&w, 1, frozen, Duration::from_secs(10)).await;
    let s1 = w.role(1).await.unwrap();
    assert_eq!(s1.epoch, leader.epoch + 1, "{s1:?}");
    // The new leader runs the work for a while; then the old one wakes, with stale leases and a
    // stale view of every job.
    tokio::time::sleep(Duration::from_secs(3)).await;
    w.signal(0, "-CONT");
    let woke = Instant::now();
    loop {
        if let Some(s) = w.role(0).await
            && s.role == "follower"
            && s.leader_url.as_deref() == Some(w.url(1).as_str())
        {
            break;
        }
        assert!(
            woke.elapsed() < Duration::from_secs(10),
            "the woken hub never followed; its log:\n{}",
            std::fs::read_to_string(w.hub_log(0)).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let followed = woke.elapsed();
    check_nothing_lost(&w, &acked, deadline).await;
    let log = std::fs::read_to_string(w.hub_log(0)).unwrap_or_default();
    assert!(log.contains("stepped down"), "hub 0 log:\n{log}");
    let fenced = log.matches("fenced").count();
    eprintln!(
        "frozen leader: follower led {took_over:?} after the freeze; the woken hub followed \
         {followed:?} after waking ({fenced} of its writes fenced); total {:?}",
        t0.elapsed()
    );
}

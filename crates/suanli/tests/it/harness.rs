//! Builds small networks for the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use suanli_client::Client;
use suanli_hub::{ApiConfig, EngineConfig, Hub};
use suanli_proto::JobView;
use suanli_site::AgentConfig;
use suanli_store::{SqliteStore, Store, TenantRecord};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobId, JobSpec, JobState, Money, NodePool, OwnerType, Role,
    TenantCategory, TenantId,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub fn center(id: &str, sku: &str, nodes: u32, cards_per_node: u32, price: &str) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(id),
        name: format!("Test center {id}"),
        city: "Shenzhen".into(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: vec![NodePool {
            sku: sku.into(),
            nodes,
            cards_per_node,
            price_per_card_hour: price.parse::<Money>().unwrap(),
        }],
        stacks: Default::default(),
    }
}

/// Two centers of one RTX4090 node with `cards` cards each: `{prefix}-cheap` at 1.00 and
/// `{prefix}-dear` at 9.00 per card-hour, so that work goes to the cheap one while it can.
pub fn cheap_and_dear(prefix: &str, cards: u32) -> [CenterSpec; 2] {
    [
        center(&format!("{prefix}-cheap"), "RTX4090", 1, cards, "1.00"),
        center(&format!("{prefix}-dear"), "RTX4090", 1, cards, "9.00"),
    ]
}

/// An agent on its own runtime, so that a crash can take all of its tasks down at once. Dropping
/// it is a crash; the test fails if the agent's task panicked.
pub struct Agent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    rt: Option<tokio::runtime::Runtime>,
    /// Set by [`MarkPanic`] when the agent's task unwinds.
    panicked: Arc<AtomicBool>,
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
        if self.panicked.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("a site agent's task panicked (its message is above)");
        }
    }
}

/// Lives in the agent's task: marks the panic if the task unwinds.
struct MarkPanic(Arc<AtomicBool>);

impl Drop for MarkPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// Held by the tests that load the machine most (a flood of events, a log of 68 MiB) and by
/// the one that times the hub's answers under such a flood, so that those two never overlap:
/// the timing is of the hub under its own flood, not of a machine busy with another's.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A test network: one store, a hub (restartable), site agents, and tokens.
pub struct Net {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub hub: Option<Hub>,
    pub url: String,
    pub operator: String,
    pub site_tokens: Vec<(CenterId, String)>,
    pub agents: Vec<Agent>,
    pub cfg: EngineConfig,
    /// The hub's API settings, kept across restarts.
    pub api: ApiConfig,
    /// How agents started from now on isolate jobs (default: the strongest mode available).
    pub isolation: Option<suanli_site::isolation::Isolation>,
    /// What attempts of agents started from now on may leave as outputs.
    pub outputs: suanli_site::outputs::OutputCaps,
    /// The folders agents started from now on mount datasets from (by default the network's
    /// `data` folder, [`Net::data_root`]).
    pub data_roots: Vec<PathBuf>,
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(30),
        offline_after: Duration::from_secs(30),
        tick: Duration::from_millis(200),
        core: Default::default(),
        reports: Default::default(),
    }
}

pub async fn open(db: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(db).await.unwrap())
}

/// A hub on `db`, recording its responses for the contract test.
pub async fn start_hub(db: &Path, cfg: EngineConfig) -> Hub {
    start_hub_with(db, cfg, ApiConfig::default()).await
}

/// A hub on `db` with the API settings `api` (its audit key, limits).
pub async fn start_hub_with(db: &Path, cfg: EngineConfig, api: ApiConfig) -> Hub {
    crate::contract::dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Hub::start_with(open(db).await, cfg, api, listener, None)
        .await
        .unwrap()
}

/// The responses the test's hubs sent must match the OpenAPI document.
impl Drop for Net {
    fn drop(&mut self) {
        crate::contract::check();
    }
}

/// A token for `name` in `role` (of `center`, for a site), written straight into the store.
async fn issue(store: &dyn Store, name: String, role: Role, center: Option<CenterId>) -> String {
    let now = suanli_hub::engine::now();
    let t = suanli_hub::auth::new_token_for(name, role, None, center, now, None);
    suanli_hub::auth::issue_token(store, &t).await.unwrap().0
}

/// A user token of `tenant`, created by the operator client `op`.
pub async fn user_token(op: &Client, tenant: &str, name: &str) -> String {
    op.create_token(&suanli_proto::TokenRequest {
        name: name.into(),
        role: Role::User,
        tenant: Some(TenantId::new(tenant)),
        center: None,
        expires_in: None,
    })
    .await
    .unwrap()
    .token
}

impl Net {
    /// A hub with the given centers and tenants, no agents yet.
    pub async fn new(centers: &[CenterSpec], tenants: &[&str]) -> Net {
        Net::with_config(centers, tenants, engine_config()).await
    }

    pub async fn with_config(centers: &[CenterSpec], tenants: &[&str], cfg: EngineConfig) -> Net {
        Net::with_api(centers, tenants, cfg, ApiConfig::default()).await
    }

    /// Like [`with_config`](Net::with_config), the hub started with `api`.
    pub async fn with_api(
        centers: &[CenterSpec],
        tenants: &[&str],
        cfg: EngineConfig,
        api: ApiConfig,
    ) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hub.db");
        let store = open(&db).await;
        let at = suanli_hub::engine::now();
        let operator = issue(store.as_ref(), "op".into(), Role::Operator, None).await;
        for t in tenants {
            let rec = TenantRecord {
                id: TenantId::new(*t),
                name: t.to_string(),
                category: TenantCategory::Sme,
                city: None,
            };
            assert!(store.create_tenant(&rec, at).await.unwrap());
        }
        let mut site_tokens = Vec::new();
        for c in centers {
            store.upsert_center(c, at).await.unwrap();
            let name = format!("site:{}", c.id);
            let token = issue(store.as_ref(), name, Role::Site, Some(c.id.clone())).await;
            site_tokens.push((c.id.clone(), token));
        }
        drop(store);
        let hub = start_hub_with(&db, cfg.clone(), api.clone()).await;
        let url = hub.url();
        let data_roots = vec![dir.path().join("data")];
        Net {
            dir,
            db,
            hub: Some(hub),
            url,
            operator,
            site_tokens,
            agents: Vec::new(),
            cfg,
            api,
            isolation: None,
            outputs: Default::default(),
            data_roots,
        }
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(vec![self.url.clone()], token)
    }

    pub fn op(&self) -> Client {
        self.client(&self.operator)
    }

    /// A folder for a dataset's files under the agents' default data root.
    pub fn data_root(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join("data").join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Lets `tenant` submit public-service work (the harness's tenants are SMEs), as the
    /// operator does.
    pub async fn allow_public_service(&self, tenant: &str) {
        let mut policy = self.op().tenant_policy(tenant).await.unwrap();
        policy.public_service = true;
        self.op().set_tenant_policy(tenant, &policy).await.unwrap();
    }

    /// A user client of `tenant`.
    pub async fn user(&self, tenant: &str, name: &str) -> Client {
        self.client(&user_token(&self.op(), tenant, name).await)
    }

    /// Starts one agent per center, talking to `hubs`.
    pub fn start_agents(&mut self, hubs: Vec<String>) {
        for (center, token) in self.site_tokens.clone() {
            let mut cfg = AgentConfig::new(
                hubs.clone(),
                token,
                self.dir.path().join("sites").join(center.as_str()),
            );
            cfg.heartbeat_interval = Duration::from_millis(300);
            cfg.poll_wait_secs = 2;
            cfg.kill_grace = Duration::from_secs(1);
            cfg.isolation.mode = self.isolation;
            cfg.outputs = self.outputs;
            cfg.checkpoint_every = Duration::from_millis(300);
            cfg.data_roots = self.data_roots.clone();
            let (stop, mut rx) = watch::channel(false);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let panicked = Arc::new(AtomicBool::new(false));
            let mark = MarkPanic(panicked.clone());
            let task = rt.spawn(async move {
                let _mark = mark;
                let shutdown = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                suanli_site::run_agent(cfg, shutdown).await.unwrap();
            });
            self.agents.push(Agent {
                stop,
                task,
                rt: Some(rt),
                panicked,
            });
        }
    }

    /// A hub with the given centers and tenants, and an agent per center, online.
    pub async fn with_agents(centers: &[CenterSpec], tenants: &[&str]) -> Net {
        let mut net = Net::new(centers, tenants).await;
        net.start_agents(vec![net.url.clone()]);
        net.wait_online().await;
        net
    }

    /// Waits until every center has heartbeated.
    pub async fn wait_online(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let centers = self.op().centers().await.unwrap();
            if centers.iter().all(|c| c.status == "online") {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "centers never came online"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops agent `i` as a crash would: no goodbye, its processes die with it.
    pub fn crash_agent(&mut self, i: usize) {
        drop(self.agents.remove(i));
    }

    pub async fn stop_agents(&mut self) {
        for mut a in self.agents.drain(..) {
            let _ = a.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), &mut a.task).await;
        }
    }

    /// Stops the hub (as a crash would with `crash`, else gracefully) and starts another on the
    /// same store, at a new URL.
    pub async fn restart_hub(&mut self, crash: bool) {
        let hub = self.hub.take().unwrap();
        match crash {
            true => hub.kill().await,
            false => hub.shutdown().await,
        }
        let hub = start_hub_with(&self.db, self.cfg.clone(), self.api.clone()).await;
        self.url = hub.url();
        self.hub = Some(hub);
    }

    pub fn site(&self, center: &str) -> Client {
        let t = &self
            .site_tokens
            .iter()
            .find(|(c, _)| c.as_str() == center)
            .unwrap()
            .1;
        self.client(t)
    }
}

/// Polls until the job is terminal (or panics after `limit`).
pub async fn wait_terminal(c: &Client, id: JobId, limit: Duration) -> JobView {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match c.job(id).await {
            Ok(v) if v.summary.state.is_terminal() => return v,
            Ok(_) => {}
            Err(e) if e.is_transient() => {}
            Err(e) => panic!("job {id}: {e}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} did not finish in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until the job is in `state` (or panics after `limit`).
pub async fn wait_state(c: &Client, id: JobId, state: JobState, limit: Duration) -> JobView {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let v = c.job(id).await.unwrap();
        if v.summary.state == state {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} stayed {:?}, not {state:?}: {:?}",
            v.summary.state,
            v.history
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits `spec`, which must be accepted; the job's id.
pub async fn submit(c: &Client, spec: &JobSpec) -> JobId {
    c.submit(spec).await.unwrap().summary.id
}

/// Submits `spec` and waits until it runs (or panics after 20 s); its view then.
pub async fn submit_running(c: &Client, spec: &JobSpec) -> JobView {
    let id = submit(c, spec).await;
    wait_state(c, id, JobState::Running, Duration::from_secs(20)).await
}

/// The job's logs are complete, and a chunk of its stderr contains `text`.
pub async fn assert_stderr_has(c: &Client, id: JobId, text: &str) {
    let r = c.logs(id, None, 0).await.unwrap();
    assert!(r.complete, "job {id}'s logs are complete");
    assert!(
        r.chunks
            .iter()
            .any(|ch| ch.stream == suanli_proto::Stream::Stderr && ch.data.contains(text)),
        "job {id}: no {text:?} on stderr: {:?}",
        r.chunks
    );
}

/// All log text of the job's latest attempt, which must contain each of `needles`.
pub async fn logs_having(c: &Client, id: JobId, needles: &[&str]) -> String {
    let logs = all_logs(c, id).await;
    for n in needles {
        assert!(logs.contains(n), "job {id}: no {n:?} in its logs {logs:?}");
    }
    logs
}

/// All log text of the job's latest attempt.
pub async fn all_logs(c: &Client, id: JobId) -> String {
    let mut out = String::new();
    let mut after = 0;
    loop {
        let r = c.logs(id, None, after).await.unwrap();
        for ch in &r.chunks {
            out.push_str(&ch.data);
        }
        if r.chunks.is_empty() {
            return out;
        }
        after = r.next_after;
    }
}

/// `suanli --hub URL --token TOKEN ARGS` with `home` as HOME and no client settings from the
/// environment: exit code, stdout, stderr.
pub fn cli_as(url: &str, token: &str, home: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_suanli"))
        .args(["--hub", url, "--token", token])
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SUANLI_HUB")
        .env_remove("SUANLI_TOKEN")
        .env_remove("SUANLI_PROFILE")
        .env_remove("SUANLI_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

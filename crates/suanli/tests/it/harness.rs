//! Builds small networks for the tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use suanli_client::Client;
use suanli_hub::{EngineConfig, Hub};
use suanli_proto::JobView;
use suanli_site::AgentConfig;
use suanli_store::{Principal, SqliteStore, Store, TenantRecord};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobId, Money, NodePool, OwnerType, Role, TenantCategory,
    TenantId,
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

/// An agent on its own runtime, so that a crash can take all of its tasks down at once.
pub struct Agent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    rt: tokio::runtime::Runtime,
}

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
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        lease_ttl: Duration::from_secs(30),
        offline_after: Duration::from_secs(30),
        tick: Duration::from_millis(200),
        core: Default::default(),
    }
}

pub async fn open(db: &Path) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(db).await.unwrap())
}

/// A hub on `db`, recording its responses for the contract test.
pub async fn start_hub(db: &Path, cfg: EngineConfig) -> Hub {
    crate::contract::dir();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Hub::start(open(db).await, cfg, listener).await.unwrap()
}

/// The responses the test's hubs sent must match the OpenAPI document.
impl Drop for Net {
    fn drop(&mut self) {
        crate::contract::check();
    }
}

impl Net {
    /// A hub with the given centers and tenants, no agents yet.
    pub async fn new(centers: &[CenterSpec], tenants: &[&str]) -> Net {
        Net::with_config(centers, tenants, engine_config()).await
    }

    pub async fn with_config(centers: &[CenterSpec], tenants: &[&str], cfg: EngineConfig) -> Net {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hub.db");
        let store = open(&db).await;
        let at = suanli_hub::engine::now();
        let op = Principal {
            name: "op".into(),
            role: Role::Operator,
            tenant: None,
            center: None,
        };
        let operator = suanli_hub::auth::issue_token(store.as_ref(), &op)
            .await
            .unwrap();
        for t in tenants {
            let rec = TenantRecord {
                id: TenantId::new(*t),
                name: t.to_string(),
                category: TenantCategory::Sme,
            };
            assert!(store.create_tenant(&rec, at).await.unwrap());
        }
        let mut site_tokens = Vec::new();
        for c in centers {
            store.upsert_center(c, at).await.unwrap();
            let p = Principal {
                name: format!("site:{}", c.id),
                role: Role::Site,
                tenant: None,
                center: Some(c.id.clone()),
            };
            site_tokens.push((
                c.id.clone(),
                suanli_hub::auth::issue_token(store.as_ref(), &p)
                    .await
                    .unwrap(),
            ));
        }
        drop(store);
        let hub = start_hub(&db, cfg.clone()).await;
        let url = hub.url();
        Net {
            dir,
            db,
            hub: Some(hub),
            url,
            operator,
            site_tokens,
            agents: Vec::new(),
            cfg,
        }
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(vec![self.url.clone()], token)
    }

    pub fn op(&self) -> Client {
        self.client(&self.operator)
    }

    /// A user token of `tenant`.
    pub async fn user(&self, tenant: &str, name: &str) -> Client {
        let t = self
            .op()
            .create_token(&suanli_proto::TokenRequest {
                name: name.into(),
                role: Role::User,
                tenant: Some(TenantId::new(tenant)),
                center: None,
            })
            .await
            .unwrap();
        self.client(&t.token)
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
            let (stop, mut rx) = watch::channel(false);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let task = rt.spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                suanli_site::run_agent(cfg, shutdown).await.unwrap();
            });
            self.agents.push(Agent { stop, task, rt });
        }
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
        self.agents.remove(i).rt.shutdown_background();
    }

    pub async fn stop_agents(&mut self) {
        for a in self.agents.drain(..) {
            let _ = a.stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(10), a.task).await;
            a.rt.shutdown_background();
        }
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

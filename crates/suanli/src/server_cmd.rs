//! Server roles: `up` (the all-in-one demo), `hub`, and `site`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use suanli_hub::auth::new_token_for;
use suanli_hub::{ApiConfig, EngineConfig, Hub};
use suanli_site::AgentConfig;
use suanli_store::{NewToken, PostgresStore, SqliteStore, Store, TenantRecord};
use suanli_types::spec::parse_duration;
use suanli_types::{
    BackendKind, CenterId, CenterSpec, Money, NodePool, OwnerType, Role, TenantCategory, TenantId,
};

use crate::config::{ClientConfig, Profile, default_config_path};

fn parse_secs(s: &str) -> Result<Duration, String> {
    parse_duration(s).map(Duration::from_secs)
}

/// Where `up` and `hub` keep their data unless told otherwise.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("suanli");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/suanli"),
        None => PathBuf::from(".suanli"),
    }
}

#[derive(Args, Clone)]
pub struct HubArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8600")]
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the operator token.
    #[arg(long, env = "SUANLI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The hub's database: `sqlite:PATH` or `postgres://user[:password]@host[:port]/db`
    /// (default: `sqlite:` DATA_DIR/hub.db). Migrations run at start.
    #[arg(long, env = "SUANLI_STORE")]
    pub store: Option<String>,
    /// A placed or running attempt whose site stays silent this long is lost and requeued.
    #[arg(long, default_value = "60s", value_parser = parse_secs)]
    pub lease_ttl: Duration,
    /// A center whose agent stays silent this long gets no new work.
    #[arg(long, default_value = "30s", value_parser = parse_secs)]
    pub offline_after: Duration,
    /// Scheduling policy: suanli, fifo, cheapest, least-loaded, slurm or tiresias.
    #[arg(long, default_value = "suanli")]
    pub policy: suanli_core::Policy,
    /// PostgreSQL only: the URL other hubs forward requests to while this one leads
    /// [default: http://LISTEN, unless LISTEN is a wildcard address]
    #[arg(long, value_name = "URL")]
    pub advertise_url: Option<String>,
    /// PostgreSQL only: how long the leader's lease lasts without renewal; a dead leader is
    /// replaced within about this plus a fifth of it
    #[arg(long, default_value = "5s", value_parser = parse_secs)]
    pub leader_ttl: Duration,
    /// Serve /metrics without a token (it shows every center's load); without this flag it
    /// needs an operator or supervisor token
    #[arg(long)]
    pub metrics_public: bool,
    /// Do not serve the web portal at / (only the API)
    #[arg(long)]
    pub no_portal: bool,
    /// A TOML file of risk-rule thresholds (docs/SUPERVISION.md lists each key and its
    /// default); keys not given keep their defaults
    #[arg(long, value_name = "FILE")]
    pub risk_rules: Option<PathBuf>,
    /// How often the risk rules are evaluated (also before each `suanli risk`)
    #[arg(long, default_value = "60s", value_parser = parse_secs)]
    pub risk_every: Duration,
}

impl HubArgs {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            lease_ttl: self.lease_ttl,
            offline_after: self.offline_after,
            core: suanli_core::CoreConfig::with_policy(self.policy),
            ..EngineConfig::default()
        }
    }

    /// The API's settings, with the hub's audit key from the data dir (`audit-key`, created
    /// on first start, mode 0600).
    fn api_config(&self, dir: &Path) -> anyhow::Result<ApiConfig> {
        let path = dir.join("audit-key");
        let (key, created) = suanli_hub::audit::AuditKey::load_or_create(&path)
            .with_context(|| format!("cannot read or create the audit key {}", path.display()))?;
        if created {
            tracing::info!(path = %path.display(), key_id = %key.signer().public().id(),
                "created this hub's audit signing key");
        }
        let rules = match &self.risk_rules {
            None => suanli_audit::risk::RiskConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let rules: suanli_audit::risk::RiskConfig = toml::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end())
                })?;
                rules
                    .validate()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                rules
            }
        };
        Ok(ApiConfig {
            metrics_public: self.metrics_public,
            risk: suanli_hub::risk::RiskSettings {
                rules,
                every: self.risk_every.max(Duration::from_secs(1)),
            },
            audit: suanli_hub::audit::AuditConfig {
                key: Some(key),
                ..Default::default()
            },
            ui: (!self.no_portal).then(portal),
            ..ApiConfig::default()
        })
    }
}

/// The web portal, calling the hub's API at the hub's own URL.
pub fn portal() -> suanli_hub::Ui {
    suanli_hub::Ui(std::sync::Arc::new(|hub_url: &str| {
        suanli_portal::router(suanli_portal::PortalConfig {
            hub_url: hub_url.to_string(),
            secure_cookies: false,
        })
    }))
}

/// Where the hub keeps its records, from `--store`.
#[derive(Debug, PartialEq, Eq)]
enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

fn parse_store_url(url: Option<&str>, data_dir: &Path) -> anyhow::Result<StoreUrl> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(StoreUrl::Sqlite(data_dir.join("hub.db")));
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(StoreUrl::Postgres(url.to_string()));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            bail!("--store sqlite: needs a path, e.g. sqlite:/var/lib/suanli/hub.db");
        }
        return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
    }
    bail!(
        "unknown --store URL {url:?}: expected sqlite:PATH or postgres://user[:password]@host[:port]/database"
    )
}

/// Hides the password of a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) async fn open_store(
    data_dir: &Path,
    url: Option<&str>,
) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    set_mode(data_dir, 0o700)?;
    match parse_store_url(url, data_dir)? {
        StoreUrl::Sqlite(db) => {
            if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let store = SqliteStore::open(&db)
                .await
                .with_context(|| format!("cannot open the database {}", db.display()))?;
            // The database and its journals are the hub's alone (SQLite gives new journals the
            // database's mode).
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let mut f = db.clone().into_os_string();
                f.push(suffix);
                let f = PathBuf::from(f);
                if f.exists() {
                    set_mode(&f, 0o600)?;
                }
            }
            Ok(Arc::new(store))
        }
        StoreUrl::Postgres(url) => {
            let store = PostgresStore::connect(&url).await.with_context(|| {
                format!(
                    "cannot open the PostgreSQL database {} (is the server up and the URL right?)",
                    redact(&url)
                )
            })?;
            Ok(Arc::new(store))
        }
    }
}

/// chmod.
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot restrict {} to mode {mode:o}", path.display()))
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} (in use? pass --listen with another port, e.g. 127.0.0.1:0)"
        )
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The leadership settings of a hub on a store that supports it.
fn leader_config(args: &HubArgs, bound: SocketAddr) -> anyhow::Result<suanli_hub::LeaderConfig> {
    let advertise_url = match &args.advertise_url {
        Some(u) => {
            let u = u.trim().trim_end_matches('/');
            if u.starts_with("https://") {
                bail!(
                    "--advertise-url {u:?}: hubs forward to each other over plain HTTP; give the \
                     http:// address other hubs reach this one at (TLS for clients goes in front)"
                );
            }
            if !u.starts_with("http://") {
                bail!("--advertise-url {u:?}: expected http://HOST:PORT");
            }
            u.to_string()
        }
        None if bound.ip().is_unspecified() => bail!(
            "--listen {bound} is a wildcard address: pass --advertise-url http://HOST:{} with an \
             address the other hubs can reach",
            bound.port()
        ),
        None => format!("http://{bound}"),
    };
    if args.leader_ttl < Duration::from_secs(1) {
        bail!("--leader-ttl must be at least 1s");
    }
    Ok(suanli_hub::LeaderConfig {
        advertise_url,
        ttl: args.leader_ttl,
    })
}

/// Keeps a second hub off the same SQLite database: an exclusive lock on `DB.lock`, held
/// until the process ends.
fn lock_sqlite(db: &Path) -> anyhow::Result<std::fs::File> {
    let path = db.with_extension("db.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another hub is using {} (it holds {}); one hub serves an SQLite database \
             (replicated hubs need PostgreSQL: --store postgres://...)",
            db.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// For an SQLite store, the lock that keeps other hubs off it (see [`lock_sqlite`]).
fn lock_store(args: &HubArgs, dir: &Path) -> anyhow::Result<Option<std::fs::File>> {
    match parse_store_url(args.store.as_deref(), dir)? {
        StoreUrl::Sqlite(db) => {
            let parent = db.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(parent) = parent {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            Ok(Some(lock_sqlite(&db)?))
        }
        StoreUrl::Postgres(_) => Ok(None),
    }
}

/// `suanli hub`.
pub async fn run_hub(args: HubArgs) -> anyhow::Result<i32> {
    let dir = args.data_dir();
    let _lock = lock_store(&args, &dir)?;
    let store = open_store(&dir, args.store.as_deref()).await?;
    if store.supports_leadership() {
        // Refuse a bad leadership setting before anything is written.
        leader_config(&args, args.listen)?;
    }
    let token_file = dir.join("operator-token");
    if suanli_hub::bootstrap_operator(store.as_ref(), &token_file)
        .await?
        .is_some()
    {
        println!(
            "created the first operator token in {}",
            token_file.display()
        );
    }
    let listener = bind(args.listen).await?;
    let bound = listener.local_addr()?;
    let leader = if store.supports_leadership() {
        Some(leader_config(&args, bound)?)
    } else {
        None
    };
    let replicated = leader.as_ref().map(|l| l.advertise_url.clone());
    let hub = Hub::start_with(
        store,
        args.engine_config(),
        args.api_config(&dir)?,
        listener,
        leader,
    )
    .await?;
    println!(
        "suanli hub listening on {} (data in {})",
        hub.url(),
        dir.display()
    );
    if !args.no_portal {
        println!("portal: {}/", hub.url());
    }
    if let Some(url) = replicated {
        println!(
            "replicated hub {} (advertised as {url}): it runs the scheduler while it holds the \
             leader lease, and forwards requests to the leader otherwise",
            hub.leadership.id
        );
    }
    shutdown_signal().await;
    println!("shutting down");
    hub.shutdown().await;
    Ok(0)
}

#[derive(Args, Clone)]
pub struct SiteArgs {
    /// Hub URL(s), comma-separated; the agent fails over between them.
    #[arg(long, env = "SUANLI_HUB")]
    pub hub: String,
    /// Site token (from center registration).
    #[arg(long, env = "SUANLI_SITE_TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the site token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Working directories of attempts go under here.
    #[arg(long, default_value = "./suanli-site-work")]
    pub work_dir: PathBuf,
    /// Take no new work; finish what runs, then exit.
    #[arg(long)]
    pub drain: bool,
    #[arg(long, default_value = "5s", value_parser = parse_secs)]
    pub heartbeat_interval: Duration,
    #[command(flatten)]
    pub isolation: IsolationArgs,
    #[command(flatten)]
    pub backend: BackendFlags,
}

/// How the local backend keeps tenant code from the agent (docs/SECURITY.md, "Isolation modes").
#[derive(Args, Clone, Debug, Default)]
pub struct IsolationArgs {
    /// bwrap (a bubblewrap sandbox), user (as an unprivileged job user) or none (as the agent's
    /// own user: single-tenant machines only) [default: the strongest this machine allows]
    #[arg(long, env = "SUANLI_ISOLATION", value_name = "MODE")]
    pub isolation: Option<suanli_site::isolation::Isolation>,
    /// Run jobs as this UID:GID instead of the `suanli-job` system user (created when missing)
    #[arg(long, env = "SUANLI_JOB_USER", value_name = "UID:GID")]
    pub job_user: Option<suanli_site::isolation::Ids>,
    /// bwrap only: no network inside the sandbox
    #[arg(long)]
    pub unshare_net: bool,
    /// Keep attempt folders after their attempts end (default: removed once the logs are shipped)
    #[arg(long)]
    pub keep_attempt_dirs: bool,
}

impl IsolationArgs {
    fn config(&self) -> suanli_site::isolation::IsolationConfig {
        suanli_site::isolation::IsolationConfig {
            mode: self.isolation,
            job_user: self.job_user,
            unshare_net: self.unshare_net,
        }
    }
}

/// Refuses a token file that others may read: it holds the site's credentials.
fn check_secret_file(f: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f)
        .with_context(|| format!("cannot read the token file {}", f.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the token file {} is readable by others (mode {:o}); chmod 600 it",
            f.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// The backends' settings as flags of `suanli site`: one `--<flag>` per setting in the site
/// crate's registry (`suanli_site::BACKENDS`), each also read from its environment variable. A
/// new backend's settings appear here without a change to this file.
#[derive(Clone, Debug, Default)]
pub struct BackendFlags {
    /// Given values by environment variable name, as `AgentConfig::settings` takes them.
    pub values: BTreeMap<String, String>,
}

impl clap::FromArgMatches for BackendFlags {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = BackendFlags::default();
        flags.update_from_arg_matches(m)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        for s in suanli_site::backend_settings() {
            if let Some(v) = m.get_one::<String>(s.flag) {
                self.values.insert(s.env.to_string(), v.clone());
            }
        }
        Ok(())
    }
}

impl clap::Args for BackendFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        suanli_site::backend_settings().fold(cmd, |cmd, s| {
            cmd.arg(
                clap::Arg::new(s.flag)
                    .long(s.flag)
                    .env(s.env)
                    .value_name("VALUE")
                    .help(s.help)
                    .allow_hyphen_values(true)
                    .help_heading("Backend settings (for the center's registered backend)"),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `suanli site`.
pub async fn run_site(args: SiteArgs) -> anyhow::Result<i32> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => check_secret_file(f)
            .and_then(|()| {
                std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))
            })
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .trim()
            .to_string(),
        (None, None) => bail!("no site token: pass --token, --token-file or SUANLI_SITE_TOKEN"),
    };
    let hubs = args
        .hub
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let mut cfg = AgentConfig::new(hubs, token, args.work_dir);
    cfg.drain = args.drain;
    cfg.heartbeat_interval = args.heartbeat_interval;
    cfg.isolation = args.isolation.config();
    cfg.keep_attempt_dirs = args.isolation.keep_attempt_dirs;
    cfg.settings = args.backend.values;
    suanli_site::run_agent(cfg, shutdown_signal()).await?;
    Ok(0)
}

#[derive(Args, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Divide every demo center's card count by this (the local backend runs cards as slots).
    #[arg(long, default_value_t = 256)]
    pub scale_down: u32,
    /// Where to write the client config (default: the client's default path).
    #[arg(long)]
    pub write_config: Option<PathBuf>,
    /// Also run the demo center `local-slurm`, backed by a throwaway Slurm on this machine
    /// (slurmctld and 2 slurmd with 2 fake GPUs each, state in DATA_DIR/slurm, stopped on exit).
    /// Needs root and Debian's slurm-wlm and munge; see docs/SLURM.md.
    #[arg(long)]
    pub with_slurm: bool,
    #[command(flatten)]
    pub isolation: IsolationArgs,
}

/// The demo center `up --with-slurm` adds: what its local Slurm has (2 nodes x 2 fake GPUs, taken
/// as RTX4090s), priced below the other RTX4090 center so that RTX4090 jobs go there.
fn local_slurm_center(o: &suanli_site::slurm::cluster::LocalSlurmOptions) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(LOCAL_SLURM_CENTER),
        name: "Local Slurm (demo)".into(),
        city: "Shenzhen".into(),
        owner: OwnerType::Research,
        backend: BackendKind::Slurm,
        pools: vec![NodePool {
            sku: "RTX4090".into(),
            nodes: o.nodes,
            cards_per_node: o.gpus_per_node,
            price_per_card_hour: Money::from_yuan(1),
        }],
        stacks: BTreeMap::from([("cuda".to_string(), "12.4".to_string())]),
    }
}

const LOCAL_SLURM_CENTER: &str = "local-slurm";

/// Secrets `up` keeps in its data dir so a second `up` reuses them.
#[derive(Default, Serialize, Deserialize)]
struct DemoTokens {
    operator: Option<String>,
    /// profile name -> token
    #[serde(default)]
    users: BTreeMap<String, String>,
    /// center id -> site token
    #[serde(default)]
    sites: BTreeMap<String, String>,
}

const DEMO_TENANTS: [(&str, &str, &str, TenantCategory); 2] = [
    (
        "demo",
        "demo-sme",
        "Demo SME (small AI firm)",
        TenantCategory::Sme,
    ),
    (
        "lab",
        "demo-lab",
        "Demo university lab",
        TenantCategory::Research,
    ),
];

/// The demo voucher programme, modelled on Shenzhen's computing-power vouchers: half of the
/// list price for SMEs and research, 60% for start-ups, for the current calendar year; and a
/// grant to `demo-sme` so that its first jobs are subsidised. Does nothing that exists already.
async fn demo_vouchers(op: &suanli_client::Client) -> anyhow::Result<String> {
    use suanli_proto::{CategoryRateView, ErrorCode, GrantRequest, ProgrammeSpec};
    use suanli_types::Money;
    let (from, until) = crate::client_cmd::this_year();
    let year = suanli_money::Month::of(from).year();
    let id = format!("sz-demo-{year}");
    let spec = ProgrammeSpec {
        id: id.clone(),
        issuer: "Shenzhen (demo)".into(),
        budget: Money::from_yuan(1_000_000),
        valid_from: from,
        valid_until: until,
        base_rate_bp: 5_000,
        category_rates: vec![CategoryRateView {
            category: TenantCategory::Startup,
            rate_bp: 6_000,
        }],
        domestic_rate_bp: None,
        cap_per_tenant: Money::from_yuan(50_000),
        eligible: vec![
            TenantCategory::Sme,
            TenantCategory::Startup,
            TenantCategory::Research,
        ],
        exclude_affiliated: false,
    };
    match op.create_programme(&spec).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(ErrorCode::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    let sme = TenantId::new("demo-sme");
    let granted = op
        .vouchers()
        .await?
        .grants
        .iter()
        .any(|g| g.programme == id && g.tenant == sme);
    if !granted {
        op.grant(
            &id,
            &GrantRequest {
                tenant: sme,
                amount: Money::from_yuan(1_000),
            },
        )
        .await?;
    }
    Ok(id)
}

/// Returns `token` if it is still valid in `store` and speaks for `t`'s principal, or issues a
/// new one for `t` (revoking at once the older tokens of its name: expired, or lost with the
/// demo's token file).
async fn reuse_or_issue(
    store: &dyn Store,
    token: Option<&String>,
    t: &NewToken,
) -> anyhow::Result<String> {
    if let Some(secret) = token
        && let Some(rec) = store.token(&suanli_hub::auth::hash_token(secret)).await?
        && rec.invalid_at(suanli_hub::engine::now()).is_none()
    {
        let p = &rec.principal;
        if (&p.name, p.role, &p.tenant, &p.center) == (&t.name, t.role, &t.tenant, &t.center) {
            return Ok(secret.clone());
        }
    }
    let now = suanli_hub::engine::now();
    Ok(suanli_hub::auth::rotate_token(store, t, now, true).await?.0)
}

/// What `up` says of its isolation mode.
fn isolation_line(s: &suanli_site::isolation::Sandbox) -> String {
    use suanli_site::isolation::Isolation;
    let who = s.job.map_or_else(
        || "an unprivileged uid".to_string(),
        |i| format!("uid {}", i.uid),
    );
    match s.mode {
        Isolation::Bwrap => format!(
            "bwrap (jobs run as {who} in a bubblewrap sandbox: read-only system, private /tmp, only \
             their own folder writable{})",
            if s.unshare_net { ", no network" } else { "" }
        ),
        Isolation::User => format!(
            "user (jobs run as {who}; they see the machine's files as that user does; install \
             bubblewrap for a sandbox)"
        ),
        Isolation::None => "none -- WARNING: jobs run as this user and can read every token in \
             the data dir; for a single-tenant machine only (install bubblewrap, or run as root \
             for --isolation user)"
            .to_string(),
    }
}

/// `suanli up`: hub, demo tenants, the Greater Bay Area demo centers and their site agents.
pub async fn run_up(args: UpArgs) -> anyhow::Result<i32> {
    let dir = args.hub.data_dir();
    let _lock = lock_store(&args.hub, &dir)?;
    let store = open_store(&dir, args.hub.store.as_deref()).await?;
    let tokens_path = dir.join("demo-tokens.toml");
    let mut saved: DemoTokens = match std::fs::read_to_string(&tokens_path) {
        Ok(s) => {
            toml::from_str(&s).with_context(|| format!("cannot parse {}", tokens_path.display()))?
        }
        Err(_) => DemoTokens::default(),
    };
    let now = suanli_hub::engine::now();

    let operator = new_token_for("operator", Role::Operator, None, None, now, None);
    let op_token = reuse_or_issue(store.as_ref(), saved.operator.as_ref(), &operator).await?;
    saved.operator = Some(op_token.clone());

    let mut profiles = BTreeMap::new();
    for (profile, id, name, category) in DEMO_TENANTS {
        let tenant = TenantRecord {
            id: TenantId::new(id),
            name: name.into(),
            category,
        };
        store.create_tenant(&tenant, now).await?;
        let p = new_token_for(
            format!("{profile}-user"),
            Role::User,
            Some(TenantId::new(id)),
            None,
            now,
            None,
        );
        let t = reuse_or_issue(store.as_ref(), saved.users.get(profile), &p).await?;
        saved.users.insert(profile.to_string(), t.clone());
        profiles.insert(
            profile.to_string(),
            Profile {
                token: t,
                tenant: Some(id.to_string()),
            },
        );
    }
    profiles.insert(
        "operator".into(),
        Profile {
            token: op_token.clone(),
            tenant: None,
        },
    );

    let mut centers = suanli_types::center::gba_topology(args.scale_down);
    let slurm = if args.with_slurm {
        let opts = suanli_site::slurm::cluster::LocalSlurmOptions::default();
        centers.push(local_slurm_center(&opts));
        let slurm_dir = dir.join("slurm");
        let cluster = tokio::task::spawn_blocking(move || {
            suanli_site::slurm::cluster::LocalSlurm::start(&slurm_dir, &opts)
        })
        .await?
        .map_err(|e| anyhow::anyhow!("cannot start the local Slurm for --with-slurm: {e}"))?;
        Some(cluster)
    } else {
        None
    };
    let mut site_tokens = Vec::new();
    for spec in &centers {
        store.upsert_center(spec, now).await?;
        let p = new_token_for(
            format!("site:{}", spec.id),
            Role::Site,
            None,
            Some(spec.id.clone()),
            now,
            None,
        );
        let t = reuse_or_issue(store.as_ref(), saved.sites.get(spec.id.as_str()), &p).await?;
        saved.sites.insert(spec.id.to_string(), t.clone());
        site_tokens.push((spec.id.clone(), t));
    }
    let secrets = toml::to_string(&saved).context("serialising demo tokens")?;
    suanli_hub::write_secret(&tokens_path, &secrets)
        .with_context(|| format!("cannot write {}", tokens_path.display()))?;

    let listener = bind(args.hub.listen).await?;
    let bound = listener.local_addr()?;
    // On PostgreSQL `up` takes part in leadership too, so it never runs beside another hub's
    // engine on the same database; it sets the demo up once it leads.
    let leader = if store.supports_leadership() {
        Some(leader_config(&args.hub, bound)?)
    } else {
        None
    };
    let hub = Hub::start_with(
        store,
        args.hub.engine_config(),
        args.hub.api_config(&dir)?,
        listener,
        leader,
    )
    .await?;
    let patience = args.hub.leader_ttl * 2 + Duration::from_secs(30);
    if !hub.wait_leading(patience).await {
        bail!(
            "another hub leads this database and kept the lease for {}s; stop it, or run \
             `suanli up` on a database of its own",
            patience.as_secs()
        );
    }
    let url = hub.url();
    let op = suanli_client::Client::new(vec![url.clone()], op_token.clone());
    let programme = demo_vouchers(&op)
        .await
        .context("cannot set up the demo voucher programme")?;

    let config_path = args
        .write_config
        .clone()
        .unwrap_or_else(default_config_path);
    let mut cfg = ClientConfig::load(&config_path).unwrap_or_default();
    cfg.hub = Some(url.clone());
    cfg.default_profile = Some("demo".into());
    cfg.profiles.extend(profiles);
    cfg.save(&config_path)?;

    // The strongest isolation this machine allows, unless one was asked for; every agent uses it.
    let iso = args.isolation.config();
    let sandbox =
        tokio::task::spawn_blocking(move || suanli_site::isolation::Sandbox::detect(&iso))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sites_dir = dir.join("sites");
    std::fs::create_dir_all(&sites_dir)
        .with_context(|| format!("cannot create {}", sites_dir.display()))?;
    // In `user` mode the job user passes through (never lists) the data dir to its folders.
    let passage = if sandbox.mode == suanli_site::isolation::Isolation::User {
        0o711
    } else {
        0o700
    };
    set_mode(&dir, passage)?;
    set_mode(&sites_dir, passage)?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut agents = Vec::new();
    for (center, token) in site_tokens {
        let mut cfg = AgentConfig::new(vec![url.clone()], token, sites_dir.join(center.as_str()));
        cfg.isolation = suanli_site::isolation::IsolationConfig {
            mode: Some(sandbox.mode),
            ..args.isolation.config()
        };
        cfg.keep_attempt_dirs = args.isolation.keep_attempt_dirs;
        cfg.kill_grace = Duration::from_secs(3);
        if let Some(cluster) = slurm
            .as_ref()
            .filter(|_| center.as_str() == LOCAL_SLURM_CENTER)
        {
            cfg.slurm.conf = Some(cluster.conf().to_path_buf());
            cfg.slurm.gres = BTreeMap::from([("RTX4090".to_string(), "gpu:fake".to_string())]);
        }
        let mut rx = stop_rx.clone();
        agents.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            if let Err(e) = suanli_site::run_agent(cfg, stop).await {
                tracing::error!(%center, error = %e, "site agent stopped");
            }
        }));
    }

    let cards: u64 = centers.iter().map(|c| c.total_cards()).sum();
    println!("suanli is up: hub at {url}");
    if !args.hub.no_portal {
        println!(
            "  portal: {url}/  (sign in with a token from {}: [users] demo is a tenant, operator the operator)",
            tokens_path.display()
        );
    }
    println!(
        "  {} demo centers of the Greater Bay Area, scaled down 1:{} to {} local card slots",
        centers.len(),
        args.scale_down,
        cards
    );
    if let Some(cluster) = &slurm {
        println!(
            "  + {LOCAL_SLURM_CENTER}: a local Slurm ({} nodes, fake GPUs), SLURM_CONF={}",
            cluster.layout().nodes.len(),
            cluster.conf().display()
        );
    }
    println!("  isolation: {}", isolation_line(&sandbox));
    println!("  data: {}", dir.display());
    println!(
        "  client config: {} (profiles: demo [default, tenant demo-sme], lab [tenant demo-lab], operator)",
        config_path.display()
    );
    println!("try, from another shell:");
    println!("  suanli centers");
    println!("  suanli submit --cards 1 -- echo hello     # prints the job id");
    println!("  suanli wait ID && suanli logs ID && suanli job ID");
    println!(
        "  suanli bill --tenant demo-sme               # this month's invoice: gross, voucher subsidy ({programme}), payable"
    );
    println!(
        "  suanli vouchers                             # voucher programmes, grants and balances"
    );
    if slurm.is_some() {
        println!(
            "  suanli submit --sku RTX4090 --cards 1 -- 'echo on $SUANLI_SLURM_NODES gpus $CUDA_VISIBLE_DEVICES'   # through Slurm at {LOCAL_SLURM_CENTER}"
        );
    }
    println!("Ctrl-C stops the hub and the demo sites.");

    shutdown_signal().await;
    println!("shutting down");
    let _ = stop_tx.send(true);
    for a in agents {
        let _ = tokio::time::timeout(Duration::from_secs(10), a).await;
    }
    hub.shutdown().await;
    if let Some(mut cluster) = slurm {
        tokio::task::spawn_blocking(move || cluster.stop()).await?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let d = Path::new("/data");
        assert_eq!(
            parse_store_url(None, d).unwrap(),
            StoreUrl::Sqlite("/data/hub.db".into())
        );
        assert_eq!(
            parse_store_url(Some("sqlite:/x/h.db"), d).unwrap(),
            StoreUrl::Sqlite("/x/h.db".into())
        );
        assert_eq!(
            parse_store_url(Some("sqlite://rel.db"), d).unwrap(),
            StoreUrl::Sqlite("rel.db".into())
        );
        assert_eq!(
            parse_store_url(Some("postgres://u:p@h/db"), d).unwrap(),
            StoreUrl::Postgres("postgres://u:p@h/db".into())
        );
        let e = parse_store_url(Some("mysql://h/db"), d).unwrap_err();
        assert!(e.to_string().contains("unknown --store URL"), "{e}");
        assert!(parse_store_url(Some("sqlite:"), d).is_err());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("site-token");
        std::fs::write(&f, "t").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_secret_file(&f).unwrap_err().to_string();
        assert!(
            e.contains("readable by others (mode 644); chmod 600"),
            "{e}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&f).unwrap();
    }

    #[test]
    fn site_takes_the_isolation_flags() {
        #[derive(clap::Parser)]
        struct Site {
            #[command(flatten)]
            site: SiteArgs,
        }
        use clap::Parser;
        use suanli_site::isolation::{Ids, Isolation};
        let a = Site::try_parse_from([
            "site",
            "--hub",
            "h",
            "--token",
            "t",
            "--isolation",
            "user",
            "--job-user",
            "990:985",
            "--unshare-net",
            "--keep-attempt-dirs",
        ])
        .unwrap();
        let c = a.site.isolation.config();
        assert_eq!(c.mode, Some(Isolation::User));
        assert_eq!(c.job_user, Some(Ids { uid: 990, gid: 985 }));
        assert!(c.unshare_net && a.site.isolation.keep_attempt_dirs);
        let a = Site::try_parse_from(["site", "--hub", "h", "--token", "t"]).unwrap();
        assert_eq!(
            a.site.isolation.config().mode,
            None,
            "the strongest by default"
        );
        assert!(Site::try_parse_from(["site", "--hub", "h", "--isolation", "chroot"]).is_err());
    }

    #[test]
    fn site_takes_every_backend_setting_as_a_flag() {
        #[derive(clap::Parser)]
        struct Site {
            #[command(flatten)]
            site: SiteArgs,
        }
        use clap::Parser;
        let a = Site::try_parse_from([
            "site",
            "--hub",
            "http://hub:8080",
            "--token",
            "t",
            "--slurm-partition",
            "gpu",
            "--slurm-args",
            "--account=lab --qos=normal",
            "--k8s-volcano",
            "true",
        ])
        .unwrap();
        let v = &a.site.backend.values;
        assert_eq!(v["SUANLI_SLURM_PARTITION"], "gpu");
        assert_eq!(v["SUANLI_SLURM_ARGS"], "--account=lab --qos=normal");
        assert_eq!(v["SUANLI_K8S_VOLCANO"], "true");
        assert_eq!(a.site.hub, "http://hub:8080");
        // Every registered setting is a flag.
        let cmd = <Site as clap::CommandFactory>::command();
        for s in suanli_site::backend_settings() {
            assert!(
                cmd.get_arguments()
                    .any(|arg| arg.get_long() == Some(s.flag)),
                "--{}",
                s.flag
            );
        }
    }
}

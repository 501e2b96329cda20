//! Server roles: `up` (the all-in-one demo, in `up.rs`), `hub`, and `site`.

mod demo_data;
mod demo_models;
mod up;
pub use up::{UpArgs, run_up};

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
use suanli_types::sbatch::parse_flag_duration;
use suanli_types::{
    BackendKind, CenterId, CenterSpec, Money, NodePool, OwnerType, Role, TenantCategory, TenantId,
};

use crate::config::{ClientConfig, Profile, default_config_path};

/// A server's duration flag, one convention with the client's and the scripts': a bare number
/// is minutes; `30s`, `2h`, `M:S`, `H:M:S` as well.
fn parse_secs(s: &str) -> Result<Duration, String> {
    parse_flag_duration(s).map(Duration::from_secs)
}

/// A size flag: bytes, or with a unit `K`, `M`, `G`, `T` (powers of 1024; `KiB`, `MB` ... read
/// the same).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 512M, 10G or 1048576"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?}: too large"))
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
    /// Scheduling policy: suanli, fifo, cheapest, least-loaded, slurm, tiresias or fastest.
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
    /// Where job outputs are kept (replicated hubs need one folder they all share)
    /// [default: DATA_DIR/outputs]
    #[arg(long, value_name = "DIR")]
    pub outputs_dir: Option<PathBuf>,
    /// The most one tenant's stored job outputs may take (e.g. 10G, 512M)
    #[arg(long, default_value = "10G", value_parser = parse_bytes, value_name = "SIZE")]
    pub output_quota: u64,
    /// The largest output file a site may upload
    #[arg(long, default_value = "64M", value_parser = parse_bytes, value_name = "SIZE")]
    pub output_max_file: u64,
    /// How long job outputs are kept after their upload
    #[arg(long, default_value = "30d", value_parser = parse_secs)]
    pub output_retention: Duration,
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
            outputs: suanli_hub::outputs::OutputsConfig {
                dir: Some(
                    self.outputs_dir
                        .clone()
                        .unwrap_or_else(|| dir.join("outputs")),
                ),
                max_file_bytes: usize::try_from(self.output_max_file).unwrap_or(usize::MAX),
                tenant_quota_bytes: self.output_quota,
                retention: self.output_retention,
                ..Default::default()
            },
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
        say!(
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
    say!(
        "suanli hub listening on {} (data in {})",
        hub.url(),
        dir.display()
    );
    if !args.no_portal {
        say!("portal: {}/", hub.url());
    }
    if let Some(url) = replicated {
        say!(
            "replicated hub {} (advertised as {url}): it runs the scheduler while it holds the \
             leader lease, and forwards requests to the leader otherwise",
            hub.leadership.id
        );
    }
    shutdown_signal().await;
    say!("shutting down");
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
    /// The most output files one attempt may leave
    #[arg(long, default_value_t = 1000)]
    pub output_max_files: usize,
    /// The most bytes of outputs one attempt may leave (e.g. 1G)
    #[arg(long, default_value = "1G", value_parser = parse_bytes, value_name = "SIZE")]
    pub output_max_bytes: u64,
    /// How often a running job's checkpoint folder is saved
    #[arg(long, default_value = "60s", value_parser = parse_secs)]
    pub checkpoint_every: Duration,
    /// A folder datasets may be mounted from (repeatable); a dataset whose path lies elsewhere
    /// is refused. Without one, no dataset is mounted here
    #[arg(long = "data-root", value_name = "DIR")]
    pub data_roots: Vec<PathBuf>,
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
    cfg.outputs = suanli_site::outputs::OutputCaps {
        max_files: args.output_max_files,
        max_bytes: args.output_max_bytes,
        ..Default::default()
    };
    cfg.checkpoint_every = args.checkpoint_every;
    cfg.data_roots = args.data_roots.clone();
    cfg.settings = args.backend.values;
    suanli_site::run_agent(cfg, shutdown_signal()).await?;
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

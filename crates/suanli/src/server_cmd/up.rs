//! `suanli up`: the all-in-one demo network (a hub, the Greater Bay Area demo centers with an
//! agent each, demo tenants, tokens, prices and a voucher programme), optionally with a local
//! Slurm center.

use super::*;

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
            // Both demo tenants are in Shenzhen: their work at the other cities' centers is
            // cross-city dispatch in the statistics.
            city: Some("Shenzhen".into()),
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
    // The data owner's reviewer: a tenant admin of the lab, which owns the demo datasets.
    let owner = super::demo_data::OWNER;
    let p = new_token_for(
        "lab-admin",
        Role::TenantAdmin,
        Some(TenantId::new(owner)),
        None,
        now,
        None,
    );
    let t = reuse_or_issue(store.as_ref(), saved.users.get("lab-admin"), &p).await?;
    saved.users.insert("lab-admin".to_string(), t.clone());
    profiles.insert(
        "lab-admin".into(),
        Profile {
            token: t,
            tenant: Some(owner.to_string()),
        },
    );
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
        // The demo's datasets are written there (server_cmd/demo_data.rs).
        cfg.data_roots = vec![dir.join(super::demo_data::DATA_DIR)];
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

    // The model library's demo: published, certified by real benchmark jobs, reviewed.
    let demo_models = {
        let op = suanli_client::Client::new(vec![url.clone()], op_token.clone());
        tokio::spawn(async move {
            match super::demo_models::set_up(&op).await {
                Ok(names) => tracing::info!(models = ?names, "demo models certified"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "demo models not set up"),
            }
        })
    };

    // The demo's public data: registered before the tour is printed, so that it works at once.
    let op = suanli_client::Client::new(vec![url.clone()], op_token.clone());
    if let Err(e) = super::demo_data::set_up(&op, &dir).await {
        tracing::warn!(error = %format!("{e:#}"), "demo datasets not set up");
    }

    let cards: u64 = centers.iter().map(|c| c.total_cards()).sum();
    say!("suanli is up: hub at {url}");
    if !args.hub.no_portal {
        say!(
            "  portal: {url}/  (sign in with a token from {}: [users] demo is a tenant, operator the operator)",
            tokens_path.display()
        );
    }
    say!(
        "  {} demo centers of the Greater Bay Area, scaled down 1:{} to {} local card slots",
        centers.len(),
        args.scale_down,
        cards
    );
    if let Some(cluster) = &slurm {
        say!(
            "  + {LOCAL_SLURM_CENTER}: a local Slurm ({} nodes, fake GPUs), SLURM_CONF={}",
            cluster.layout().nodes.len(),
            cluster.conf().display()
        );
    }
    say!("  isolation: {}", isolation_line(&sandbox));
    say!("  data: {}", dir.display());
    say!(
        "  client config: {} (profiles: demo [default, tenant demo-sme], lab [tenant demo-lab], lab-admin [its tenant admin], operator)",
        config_path.display()
    );
    say!("try, from another shell:");
    say!("  suanli centers");
    say!("  suanli submit --cards 1 -- echo hello     # prints the job id");
    say!("  suanli wait ID && suanli logs ID && suanli job ID");
    say!(
        "  suanli bill --tenant demo-sme               # this month's invoice: gross, voucher subsidy ({programme}), payable"
    );
    say!("  suanli vouchers                             # voucher programmes, grants and balances");
    say!(
        "  suanli models; suanli certs --model shell-count   # the model library; its adaptation matrix, measured at {} by benchmark jobs of {}",
        super::demo_models::CENTERS.join(", "),
        super::demo_models::TENANT
    );
    say!(
        "  suanli datasets; suanli submit --dataset {} --output 'out/*.csv' -- 'mkdir -p out; cut -d, -f2,4 $SUANLI_DATASET_SZ_CLINIC_VISITS/visits.csv > out/by-clinic.csv'",
        super::demo_data::RESTRICTED
    );
    say!(
        "  suanli outputs ID; suanli airlock request ID --why 'visits per clinic'; suanli --profile lab-admin airlock review REQ --approve --reason ok; suanli download ID"
    );
    if slurm.is_some() {
        say!(
            "  suanli submit --sku RTX4090 --cards 1 -- 'echo on $SUANLI_SLURM_NODES gpus $CUDA_VISIBLE_DEVICES'   # through Slurm at {LOCAL_SLURM_CENTER}"
        );
    }
    say!("Ctrl-C stops the hub and the demo sites.");

    shutdown_signal().await;
    say!("shutting down");
    demo_models.abort();
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

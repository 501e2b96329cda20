//! The client verbs: submit, jobs, job, wait, logs, cancel, centers, whoami, admin.

mod money;
mod table;

pub use money::this_year;

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use suanli_client::{Client, ClientError, JobFilter};
use suanli_proto::{CandidateView, JobList, JobView, Stream, TenantRequest, TokenRequest};
use suanli_types::spec::parse_duration;
use suanli_types::{
    CenterId, CenterSpec, JobId, JobSpec, JobState, Money, PriorityClass, Role, TenantCategory,
    TenantId,
};

use crate::config::ConnArgs;
use table::{align, header, row};

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Submit a job (like sbatch): a TOML spec file and/or flags, command after `--`
    Submit(Box<SubmitArgs>),
    /// Price and expected start of a job at every center, without submitting it (same flags)
    Quote(Box<QuoteArgs>),
    /// List jobs (like squeue)
    Jobs(JobsArgs),
    /// Show a job: state, placement decision and history
    Job {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Print the JobView as JSON
        #[arg(long)]
        json: bool,
    },
    /// Wait until a job ends; exit 0 only if it succeeded (124 on --timeout)
    Wait {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Give up after this long, e.g. 90s, 30m, 2h
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        timeout: Option<u64>,
    },
    /// Print a job's output (stdout to stdout, stderr to stderr)
    Logs {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
        /// Keep printing until the job ends
        #[arg(short, long)]
        follow: bool,
        /// Attempt to show [default: the latest]
        #[arg(long, value_name = "N")]
        attempt: Option<u32>,
    },
    /// Cancel a job
    Cancel {
        #[arg(value_parser = parse_job_id)]
        id: JobId,
    },
    /// List computing centers and their pools: the one network
    Centers {
        #[arg(long)]
        json: bool,
    },
    /// Every hub in the --hub list: reachable or not, leader or follower, the leadership term
    Hubs {
        #[arg(long)]
        json: bool,
    },
    /// Show who the token belongs to
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// A tenant's invoice for a month: a line per job attempt with gross, voucher subsidy, payable
    Bill(money::BillArgs),
    /// A center's settlement statement for a month (operator, supervisor, the center's site)
    Statement(money::StatementArgs),
    /// Voucher programmes, and your grants and balances
    Vouchers {
        #[arg(long)]
        json: bool,
    },
    /// Operator verbs: tenants, tokens, centers, prices, vouchers, budgets
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(clap::Args, Debug)]
pub struct QuoteArgs {
    #[command(flatten)]
    job: SubmitArgs,
    /// Print the quote as JSON
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug, Default)]
pub struct SubmitArgs {
    /// A batch script with #SBATCH directives, as for sbatch (see docs/SLURM-INPUT.md); flags
    /// given too override its directives
    #[arg(value_name = "SCRIPT", conflicts_with = "file")]
    script: Option<PathBuf>,
    /// TOML job spec; flags given too override its fields
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Job name [default: first word of the command]
    #[arg(long)]
    name: Option<String>,
    /// Paying tenant [default: your token's tenant]
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    /// public-service, standard or spot
    #[arg(long, value_name = "CLASS")]
    priority: Option<PriorityClass>,
    /// Accepted chip SKUs (repeat or comma-separate), e.g. H100-SXM,H800-SXM
    #[arg(long, value_name = "SKU", value_delimiter = ',')]
    sku: Vec<String>,
    /// Chip vendor, e.g. nvidia, huawei, cambricon
    #[arg(long)]
    vendor: Option<String>,
    /// SKU family prefix, e.g. Ascend910B
    #[arg(long)]
    family: Option<String>,
    /// Minimum dense FP16 TFLOPS per card
    #[arg(long, value_name = "TFLOPS")]
    min_tflops: Option<u32>,
    /// Minimum memory per card in GB
    #[arg(long, value_name = "GB")]
    min_memory_gb: Option<u32>,
    /// Cards per node [default: 1]
    #[arg(long, value_name = "N")]
    cards: Option<u32>,
    /// Nodes, all at one center [default: 1]
    #[arg(long, value_name = "N")]
    nodes: Option<u32>,
    /// Software stack: cuda, cann, neuware, dtk, xpu, musa, maca or any
    #[arg(long)]
    stack: Option<String>,
    /// Wall-time limit, e.g. 90s, 30m, 2h, 1h30m [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    walltime: Option<u64>,
    /// Highest price accepted, yuan per card-hour, e.g. 8.50
    #[arg(long, value_name = "YUAN")]
    max_price: Option<Money>,
    /// Environment variable for the job (repeatable)
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Local file uploaded into the job's working directory (repeatable)
    #[arg(long, value_name = "PATH")]
    file_in: Vec<PathBuf>,
    /// Print only the job id
    #[arg(long)]
    parsable: bool,
    /// The command, after `--`; one argument is taken as a shell command line as is
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    /// Only jobs in this state, e.g. queued, running, failed
    #[arg(long)]
    state: Option<JobState>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    center: Option<String>,
    /// Jobs per page
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Follow every page
    #[arg(long)]
    all: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a tenant
    TenantCreate {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// enterprise, sme, startup, research or public-service
        #[arg(long)]
        category: TenantCategory,
    },
    /// List tenants
    Tenants {
        #[arg(long)]
        json: bool,
    },
    /// Show or set a tenant's fair-share weight and quotas per chip family
    TenantPolicy {
        #[arg(long)]
        tenant: String,
        /// Fair-share weight, 1 to 1000
        #[arg(long)]
        weight: Option<u32>,
        /// FAMILY=NOMINAL[:BORROW] cards, e.g. nvidia=16:8 (repeatable); FAMILY=none removes it
        #[arg(long = "quota", value_name = "FAMILY=N[:B]")]
        quotas: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Create an API token and print it (shown once)
    TokenCreate {
        /// Who the token is for, e.g. a user name
        #[arg(long)]
        name: String,
        /// operator, tenant-admin, user, site or supervisor
        #[arg(long)]
        role: Role,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        center: Option<String>,
    },
    /// Register or update a center from a TOML definition; prints a new site token
    CenterRegister { file: PathBuf },
    /// Stop placing new work at a center; attempts not yet running are handed back to the queue,
    /// running ones finish there (or, with --requeue, are stopped and queued again)
    Drain {
        center: String,
        #[arg(long)]
        requeue: bool,
        #[arg(long)]
        json: bool,
    },
    /// Let a drained center take new work again
    Undrain {
        center: String,
        #[arg(long)]
        json: bool,
    },
    /// Set the list price of a SKU at a center, yuan per card-hour
    PriceSet {
        #[arg(long)]
        center: String,
        #[arg(long)]
        sku: String,
        #[arg(long, value_name = "YUAN")]
        price: Money,
        /// Discount on spot (preemptible) usage, basis points of the list price (2500 = 25% off)
        #[arg(long, value_name = "BP")]
        spot_discount_bp: Option<u32>,
        /// When it takes effect: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC) [default: now]
        #[arg(long, value_name = "DATE", value_parser = money::parse_time)]
        effective_from: Option<suanli_types::Timestamp>,
    },
    /// List the price table
    Prices {
        #[arg(long)]
        json: bool,
    },
    /// Create and fund a voucher programme from flags and/or a TOML file
    ProgrammeCreate(Box<money::ProgrammeArgs>),
    /// Grant a tenant an amount of a voucher programme
    Grant {
        #[arg(long)]
        programme: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "YUAN")]
        amount: Money,
    },
    /// Set a tenant's monthly budget (what it pays after vouchers)
    BudgetSet {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "YUAN")]
        limit: Money,
        /// At 100%: stop (cancel its jobs) or let-finish (refuse new jobs only)
        #[arg(long, default_value = "stop", value_parser = money::parse_at_limit)]
        at_limit: suanli_proto::AtLimit,
    },
    /// A programme's budget, grants and payouts per tenant
    ProgrammeReport {
        id: String,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
}

/// Bad local input (a spec or center definition): exit code 2.
#[derive(Debug)]
struct Invalid(String);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Invalid {}

/// Runs a client verb and returns the process exit code; errors are printed here.
pub async fn run(cmd: ClientCommand, conn: &ConnArgs) -> anyhow::Result<i32> {
    match exec(cmd, conn).await {
        Ok(code) => Ok(code),
        Err(e) => {
            if let Some(e) = e.downcast_ref::<Invalid>() {
                eprintln!("error: {e}");
                return Ok(2);
            }
            match e.downcast_ref::<ClientError>() {
                Some(ce) => eprintln!("error: {ce}"),
                None => eprintln!("error: {e:#}"),
            }
            Ok(1)
        }
    }
}

async fn exec(cmd: ClientCommand, conn: &ConnArgs) -> anyhow::Result<i32> {
    match cmd {
        ClientCommand::Submit(a) => {
            let spec = build_spec(&a)?;
            let job = conn.client()?.submit(&spec).await?;
            match a.parsable {
                true => println!("{}", job.summary.id),
                false => println!("Submitted job {} ({})", job.summary.id, job.summary.state),
            }
        }
        ClientCommand::Quote(a) => {
            let spec = build_spec(&a.job)?;
            let q = conn.client()?.quote(&spec).await?;
            match a.json {
                true => print_json(&q)?,
                false => print!("{}", describe_quote(&q)),
            }
        }
        ClientCommand::Jobs(a) => jobs(&conn.client()?, a).await?,
        ClientCommand::Job { id, json } => {
            let job = conn.client()?.job(id).await?;
            match json {
                true => print_json(&job)?,
                false => print!("{}", describe_job(&job)),
            }
        }
        ClientCommand::Wait { id, timeout } => return wait(&conn.client()?, id, timeout).await,
        ClientCommand::Logs {
            id,
            follow,
            attempt,
        } => logs(&conn.client()?, id, follow, attempt).await?,
        ClientCommand::Cancel { id } => {
            let job = conn.client()?.cancel(id).await?;
            println!("Job {id} {}", job.summary.state);
        }
        ClientCommand::Centers { json } => {
            let centers = conn.client()?.centers().await?;
            if json {
                return print_json(&centers).map(|_| 0);
            }
            let mut rows = vec![header(
                "CENTER CITY OWNER SKU CARDS FREE PRICE(yuan/card-h) STATUS",
            )];
            for c in &centers {
                if c.pools.is_empty() {
                    rows.push(row![c.id, c.city, c.owner, "-", 0, 0, "-", c.status]);
                }
                for p in &c.pools {
                    rows.push(row![
                        c.id,
                        c.city,
                        c.owner,
                        p.sku,
                        p.total_cards,
                        p.free_cards,
                        p.price_per_card_hour,
                        c.status
                    ]);
                }
            }
            print!("{}", align(&rows));
        }
        ClientCommand::Hubs { json } => {
            let all = conn.client()?.hub_statuses().await;
            if json {
                let v: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(url, r)| match r {
                        Ok(s) => serde_json::json!({ "url": url, "status": s }),
                        Err(e) => serde_json::json!({ "url": url, "error": e.to_string() }),
                    })
                    .collect();
                return print_json(&v).map(|_| 0);
            }
            let mut rows = vec![header("URL ROLE EPOCH LEADER ID")];
            let mut reachable = 0;
            for (url, r) in &all {
                match r {
                    Ok(s) => {
                        reachable += 1;
                        let leader = match (s.role.as_str(), &s.leader_url) {
                            ("leader" | "single", _) => "(this hub)".to_string(),
                            (_, Some(u)) => u.clone(),
                            (_, None) => "none known".to_string(),
                        };
                        rows.push(row![url, s.role, s.epoch, leader, s.id]);
                    }
                    Err(e) => rows.push(row![url, "unreachable", "-", "-", e]),
                }
            }
            print!("{}", align(&rows));
            if reachable == 0 {
                return Ok(1);
            }
        }
        ClientCommand::Whoami { json } => {
            let me = conn.client()?.whoami().await?;
            if json {
                return print_json(&me).map(|_| 0);
            }
            let mut rows = vec![row!["name", me.name], row!["role", me.role.as_str()]];
            rows.extend(me.tenant.map(|t| row!["tenant", t]));
            rows.extend(me.center.map(|c| row!["center", c]));
            print!("{}", align(&rows));
        }
        ClientCommand::Bill(a) => money::bill(&conn.client()?, a).await?,
        ClientCommand::Statement(a) => money::statement(&conn.client()?, a).await?,
        ClientCommand::Vouchers { json } => money::vouchers(&conn.client()?, json).await?,
        ClientCommand::Admin(a) => admin(&conn.client()?, a).await?,
    }
    Ok(0)
}

async fn admin(c: &Client, cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::TenantCreate { id, name, category } => {
            let t = c
                .create_tenant(&TenantRequest {
                    id: TenantId::new(id),
                    name,
                    category,
                })
                .await?;
            println!(
                "Created tenant {} ({}, {})",
                t.id,
                t.name,
                t.category.as_str()
            );
        }
        AdminCommand::TenantPolicy {
            tenant,
            weight,
            quotas,
            json,
        } => {
            let mut policy = c.tenant_policy(&tenant).await?;
            if weight.is_some() || !quotas.is_empty() {
                if let Some(w) = weight {
                    policy.weight = w;
                }
                for q in &quotas {
                    let (family, v) = q.split_once('=').ok_or_else(|| {
                        invalid_spec(format!("--quota {q}: expected FAMILY=NOMINAL[:BORROW]"))
                    })?;
                    if v == "none" {
                        policy.quotas.remove(family);
                        continue;
                    }
                    let (n, b) = v.split_once(':').unwrap_or((v, "0"));
                    let num = |x: &str| {
                        x.parse::<u32>().map_err(|_| {
                            invalid_spec(format!("--quota {q}: {x:?} is not a number of cards"))
                        })
                    };
                    policy.quotas.insert(
                        family.to_string(),
                        suanli_proto::QuotaView {
                            nominal: num(n)?,
                            borrow_limit: num(b)?,
                        },
                    );
                }
                policy = c.set_tenant_policy(&tenant, &policy).await?;
            }
            if json {
                return print_json(&policy);
            }
            println!("tenant {tenant}: weight {}", policy.weight);
            for (family, q) in &policy.quotas {
                println!(
                    "  {family}: {} cards nominal, {} more may be borrowed",
                    q.nominal, q.borrow_limit
                );
            }
            if policy.quotas.is_empty() {
                println!("  no quotas");
            }
        }
        AdminCommand::Tenants { json } => {
            let tenants = c.tenants().await?;
            if json {
                return print_json(&tenants);
            }
            let mut rows = vec![header("ID NAME CATEGORY")];
            rows.extend(
                tenants
                    .iter()
                    .map(|t| row![t.id, t.name, t.category.as_str()]),
            );
            print!("{}", align(&rows));
        }
        AdminCommand::TokenCreate {
            name,
            role,
            tenant,
            center,
        } => {
            let req = TokenRequest {
                name,
                role,
                tenant: tenant.map(TenantId::new),
                center: center.map(CenterId::new),
            };
            let t = c.create_token(&req).await?;
            eprintln!(
                "Token for {} ({}); it is shown only once:",
                t.name,
                t.role.as_str()
            );
            println!("{}", t.token);
        }
        AdminCommand::Drain {
            center,
            requeue,
            json,
        } => {
            let d = c.drain(&center, requeue).await?;
            if json {
                return print_json(&d);
            }
            println!(
                "Drained {}: no new work; {} attempt(s) running there {}; {} handed back{}",
                d.center,
                d.running,
                if requeue {
                    "(none: requeued)"
                } else {
                    "will finish"
                },
                d.requeued.len(),
                if d.requeued.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        d.requeued
                            .iter()
                            .map(|j| j.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
        }
        AdminCommand::Undrain { center, json } => {
            let d = c.undrain(&center).await?;
            if json {
                return print_json(&d);
            }
            println!("Undrained {}: it takes new work again", d.center);
        }
        AdminCommand::CenterRegister { file } => {
            let text = read_text(&file)?;
            let spec: CenterSpec = toml::from_str(&text).map_err(|e| {
                Invalid(format!(
                    "invalid center definition: {}: {}",
                    file.display(),
                    e.to_string().trim_end()
                ))
            })?;
            spec.validate().map_err(|e| {
                Invalid(format!(
                    "invalid center definition: {}: {e}",
                    file.display()
                ))
            })?;
            let r = c.register_center(&spec).await?;
            match r.site_token {
                Some(token) => {
                    eprintln!(
                        "Registered center {}; its site token is shown only once:",
                        r.center
                    );
                    println!("{token}");
                }
                None => eprintln!(
                    "Updated center {} (already registered: no new site token)",
                    r.center
                ),
            }
        }
        AdminCommand::PriceSet {
            center,
            sku,
            price,
            spot_discount_bp,
            effective_from,
        } => money::price_set(c, center, sku, price, spot_discount_bp, effective_from).await?,
        AdminCommand::Prices { json } => money::prices(c, json).await?,
        AdminCommand::ProgrammeCreate(a) => money::programme_create(c, &a).await?,
        AdminCommand::Grant {
            programme,
            tenant,
            amount,
        } => money::grant(c, &programme, tenant, amount).await?,
        AdminCommand::BudgetSet {
            tenant,
            limit,
            at_limit,
        } => money::budget_set(c, &tenant, limit, at_limit).await?,
        AdminCommand::ProgrammeReport { id, json, csv } => {
            money::programme_report(c, &id, json, csv).await?
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- submit

fn parse_job_id(s: &str) -> Result<JobId, String> {
    s.trim()
        .parse()
        .map(JobId)
        .map_err(|_| format!("not a job id: {s:?}"))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected K=V, got {s:?}"))
}

/// POSIX shell quoting: plain words stay as they are, anything else goes in single quotes.
fn shell_quote(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    match plain {
        true => Cow::Borrowed(s),
        false => Cow::Owned(format!("'{}'", s.replace('\'', r"'\''"))),
    }
}

/// The command line for `sh -c`: one argument is a command line already; several are quoted.
fn shell_join(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        _ => args
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// `python train.py` -> `python`; `/opt/bin/run.sh x` -> `run.sh`.
fn default_name(command: &str) -> String {
    let first = command
        .split_whitespace()
        .next()
        .unwrap_or("job")
        .trim_matches(['\'', '"']);
    let base = first.rsplit('/').next().unwrap_or(first);
    if base.is_empty() {
        "job".to_string()
    } else {
        base.to_string()
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn invalid_spec(detail: impl std::fmt::Display) -> anyhow::Error {
    Invalid(format!("invalid job spec: {detail}")).into()
}

/// Reads a TOML spec; a command or name given by flags fills in a file that lacks them.
fn load_spec_file(
    path: &Path,
    command: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<JobSpec> {
    let text = read_text(path)?;
    let toml_err = |e: toml::de::Error| {
        invalid_spec(format!("{}: {}", path.display(), e.to_string().trim_end()))
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(toml_err)?;
    let mut patched = false;
    if !table.contains_key("command")
        && let Some(c) = command
    {
        table.insert("command".into(), c.into());
        patched = true;
    }
    if !table.contains_key("name") {
        let cmd = command.or_else(|| table.get("command").and_then(|v| v.as_str()));
        if let Some(n) = name.map(str::to_string).or_else(|| cmd.map(default_name)) {
            table.insert("name".into(), n.into());
            patched = true;
        }
    }
    // Unpatched, parse the text itself so that errors point at lines.
    match patched {
        true => table.try_into().map_err(toml_err),
        false => toml::from_str(&text).map_err(toml_err),
    }
}

/// The job spec from `-f FILE` and/or flags (flags win), validated.
fn build_spec(a: &SubmitArgs) -> anyhow::Result<JobSpec> {
    let command = (!a.command.is_empty()).then(|| shell_join(&a.command));
    if a.script.is_some() && command.is_some() {
        return Err(invalid_spec(
            "give either a batch script or a command after `--`, not both",
        ));
    }
    let mut spec = match (&a.script, &a.file) {
        (Some(path), _) => {
            let text = read_text(path)?;
            let shown = path.display().to_string();
            let (spec, warnings) = suanli_types::sbatch::parse(&text, &shown)
                .map_err(|e| invalid_spec(format!("{shown}: {}: {}", e.field, e.message)))?;
            for w in warnings {
                eprintln!("warning: {shown}: {w}");
            }
            spec
        }
        (None, Some(path)) => load_spec_file(path, command.as_deref(), a.name.as_deref())?,
        (None, None) => {
            let cmd = command
                .clone()
                .ok_or_else(|| invalid_spec("command: give it after `--` (suanli submit --cards 8 -- python train.py) or in a file with -f"))?;
            JobSpec::new(a.name.clone().unwrap_or_else(|| default_name(&cmd)), cmd)
        }
    };
    if let Some(c) = command {
        spec.command = c;
    }
    set(&mut spec.name, a.name.clone());
    set(&mut spec.queue, a.queue.clone());
    set(&mut spec.priority, a.priority);
    set(&mut spec.cards_per_node, a.cards);
    set(&mut spec.nodes, a.nodes);
    set(&mut spec.stack, a.stack.clone());
    set(&mut spec.walltime, a.walltime);
    if let Some(t) = &a.tenant {
        spec.tenant = Some(TenantId::new(t.clone()));
    }
    if a.max_price.is_some() {
        spec.max_price_per_card_hour = a.max_price;
    }
    let skus: Vec<String> = a
        .sku
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if !skus.is_empty() {
        spec.chips.skus = skus;
    }
    let chips = &mut spec.chips;
    if a.vendor.is_some() {
        chips.vendor = a.vendor.clone();
    }
    if a.family.is_some() {
        chips.family = a.family.clone();
    }
    if a.min_tflops.is_some() {
        chips.min_fp16_tflops = a.min_tflops;
    }
    if a.min_memory_gb.is_some() {
        chips.min_memory_gb = a.min_memory_gb;
    }
    spec.env.extend(a.env.iter().cloned());
    for path in &a.file_in {
        let name = path
            .file_name()
            .with_context(|| format!("--file-in {}: not a file", path.display()))?;
        spec.files
            .insert(name.to_string_lossy().into_owned(), read_text(path)?);
    }
    spec.validate().map_err(invalid_spec)?;
    Ok(spec)
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

// ---------------------------------------------------------------- reading jobs

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

async fn jobs(c: &Client, a: JobsArgs) -> anyhow::Result<()> {
    let mut filter = JobFilter {
        state: a.state.map(|s| s.as_str().to_string()),
        tenant: a.tenant,
        center: a.center,
        limit: Some(a.limit),
        after: None,
    };
    let mut list = JobList {
        jobs: Vec::new(),
        next: None,
    };
    loop {
        let page = c.jobs(&filter).await?;
        list.jobs.extend(page.jobs);
        list.next = page.next;
        match page.next {
            Some(next) if a.all => filter.after = Some(next.0),
            _ => break,
        }
    }
    if a.json {
        return print_json(&list);
    }
    let mut rows = vec![header(
        "ID NAME TENANT STATE ATTEMPT CENTER SKU CARDS SUBMITTED",
    )];
    for j in &list.jobs {
        rows.push(row![
            j.id,
            j.name,
            j.tenant,
            j.state,
            j.attempt,
            opt(j.center.as_ref()),
            opt(j.sku.as_ref()),
            j.cards,
            j.submitted_at
        ]);
    }
    print!("{}", align(&rows));
    if list.next.is_some() {
        eprintln!("(more jobs: use --all or a larger --limit)");
    }
    Ok(())
}

/// `9000` -> `2h30m`.
fn fmt_duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, "d"),
        (secs % 86_400 / 3600, "h"),
        (secs % 3600 / 60, "m"),
        (secs % 60, "s"),
    ];
    let s: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if s.is_empty() { "0s".into() } else { s }
}

fn candidate_row(mark: &str, c: &CandidateView) -> Vec<String> {
    row![
        mark,
        c.center,
        c.sku,
        c.price_per_card_hour,
        c.cost_per_hour,
        c.free_cards
    ]
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The human-readable `suanli job ID` page.
fn describe_quote(q: &suanli_proto::QuoteView) -> String {
    let mut out = String::new();
    if q.candidates.is_empty() {
        out.push_str("No center can take this job now or later.\n");
    } else {
        let hours = q.walltime_secs as f64 / 3600.0;
        out.push_str(&format!(
            "Quote for the wall-time limit ({hours:.2} h), best first; yuan, after your vouchers:\n"
        ));
        let mut rows = vec![header(
            "CENTER SKU PRICE/CARD-H COST SUBSIDY PAYABLE START FREE SCORE",
        )];
        for c in &q.candidates {
            let start = if c.expected_start <= q.at {
                "now".to_string()
            } else {
                c.expected_start.to_string()
            };
            rows.push(row![
                c.center,
                c.sku,
                c.price_per_card_hour,
                c.gross.unwrap_or(c.cost_total),
                opt(c.subsidy),
                opt(c.payable),
                start,
                c.free_cards,
                format!("{:.3}", c.score_milli as f64 / 1000.0)
            ]);
        }
        out.push_str(&align(&rows));
    }
    if !q.rejected.is_empty() {
        out.push_str("Cannot run at:\n");
        for r in &q.rejected {
            out.push_str(&format!("  {}: {}\n", r.center, r.reason));
        }
    }
    out
}

fn describe_job(j: &JobView) -> String {
    let s = &j.summary;
    let spec = &j.spec;
    let mut kv = vec![
        row![
            "tenant",
            format!(
                "{} (queue {}, priority {})",
                s.tenant,
                s.queue,
                s.priority.as_str()
            )
        ],
        row!["submitted by", j.submitted_by],
        row!["state", format!("{} (attempt {})", s.state, s.attempt)],
        row![
            "request",
            format!(
                "{} node(s) x {} card(s) of {}, stack {}, walltime {}{}",
                spec.nodes,
                spec.cards_per_node,
                spec.chips,
                spec.stack,
                fmt_duration(spec.walltime),
                spec.max_price_per_card_hour
                    .map(|p| format!(", max {p} yuan/card-h"))
                    .unwrap_or_default()
            )
        ],
        row!["command", spec.command],
    ];
    if let Some(center) = &s.center {
        let nodes = j.placement.as_ref().map(|p| {
            p.nodes
                .iter()
                .map(|n| format!("{} x{}", n.node, n.cards))
                .collect::<Vec<_>>()
                .join(", ")
        });
        kv.push(row![
            "center",
            format!(
                "{center}, {} x {} cards, nodes {}",
                opt(s.sku.as_ref()),
                s.cards,
                opt(nodes)
            )
        ]);
    }
    kv.push(row!["submitted", s.submitted_at]);
    kv.extend(s.started_at.map(|t| row!["started", t]));
    kv.extend(s.ended_at.map(|t| row!["ended", t]));
    kv.extend(s.exit_code.map(|c| row!["exit code", c]));
    kv.push(row![
        "card-seconds",
        format!(
            "{} ({:.2} card-hours)",
            j.card_seconds,
            j.card_seconds as f64 / 3600.0
        )
    ]);
    kv.extend(j.reason.as_ref().map(|r| row!["reason", r]));
    let mut out = format!("Job {}: {}\n{}", s.id, s.name, indent(&align(&kv)));
    if let Some(p) = &j.placement {
        out += &format!("Placement (attempt {}, {}):\n", p.attempt, p.at);
        let mut rows = vec![row![
            "",
            "CENTER",
            "SKU",
            "PRICE/CARD-H",
            "COST/H",
            "FREE CARDS"
        ]];
        rows.push(candidate_row("*", &p.chosen));
        rows.extend(p.others.iter().map(|c| candidate_row("", c)));
        out += &indent(&align(&rows));
        if !p.rejected.is_empty() {
            out += "  rejected:\n";
            out += &indent(&indent(&align(
                &p.rejected
                    .iter()
                    .map(|r| row![format!("{}:", r.center), r.reason])
                    .collect::<Vec<_>>(),
            )));
        }
        out += &format!("  rule: {}\n", p.rule);
    }
    if !j.history.is_empty() {
        out += "History:\n";
        let rows: Vec<_> = j
            .history
            .iter()
            .map(|e| row![e.at, format!("#{}", e.attempt), e.state, e.message])
            .collect();
        out += &indent(&align(&rows));
    }
    out
}

// ---------------------------------------------------------------- waiting and following

const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(2);

fn backoff(d: Duration) -> Duration {
    (d * 3 / 2).min(POLL_MAX)
}

/// Says once that the hub is unreachable, and once that it is back.
#[derive(Default)]
struct Outage(bool);

impl Outage {
    fn failed(&mut self, e: &ClientError) {
        if !std::mem::replace(&mut self.0, true) {
            eprintln!("warning: {e}; retrying");
        }
    }
    fn ok(&mut self) {
        if std::mem::replace(&mut self.0, false) {
            eprintln!("hub reachable again");
        }
    }
}

async fn wait(c: &Client, id: JobId, timeout: Option<u64>) -> anyhow::Result<i32> {
    let deadline = timeout.map(|t| Instant::now() + Duration::from_secs(t));
    let mut delay = POLL_MIN;
    let mut outage = Outage::default();
    let mut last = None;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let polled = match left {
            Some(left) => tokio::time::timeout(left, c.job(id)).await.ok(),
            None => Some(c.job(id).await),
        };
        match polled {
            Some(Ok(j)) => {
                outage.ok();
                let s = &j.summary;
                if s.state.is_terminal() {
                    let mut line = format!("Job {id} {}", s.state);
                    if let Some(code) = s.exit_code {
                        line += &format!(" (exit code {code})");
                    }
                    if let Some(r) = j.reason.as_ref().filter(|_| s.state != JobState::Succeeded) {
                        line += &format!(": {r}");
                    }
                    println!("{line}");
                    return Ok(if s.state == JobState::Succeeded { 0 } else { 1 });
                }
                last = Some(s.state);
            }
            Some(Err(e)) if e.is_transient() => outage.failed(&e),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            let still = last.map(|s| format!(" (still {s})")).unwrap_or_default();
            eprintln!("Timed out waiting for job {id}{still}");
            return Ok(124);
        }
        tokio::time::sleep(left.map_or(delay, |l| l.min(delay))).await;
        delay = backoff(delay);
    }
}

/// Writes log text; false once the reader has gone (e.g. `| head`).
fn write_chunk(stream: Stream, data: &str) -> bool {
    let written = match stream {
        Stream::Stdout => std::io::stdout()
            .lock()
            .write_all(data.as_bytes())
            .and_then(|_| std::io::stdout().flush()),
        Stream::Stderr => std::io::stderr().lock().write_all(data.as_bytes()),
    };
    written.is_ok()
}

async fn logs(c: &Client, id: JobId, follow: bool, pinned: Option<u32>) -> anyhow::Result<()> {
    let (mut attempt, mut after) = (pinned, 0u64);
    let mut delay = POLL_MIN;
    let mut outage = Outage::default();
    let mut ended_since: Option<Instant> = None;
    loop {
        let r = match c.logs(id, attempt, after).await {
            Ok(r) => r,
            Err(e) if follow && e.is_transient() => {
                outage.failed(&e);
                tokio::time::sleep(delay).await;
                delay = backoff(delay);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        outage.ok();
        attempt = Some(r.attempt);
        after = r.next_after;
        if !r.chunks.is_empty() {
            for ch in &r.chunks {
                if !write_chunk(ch.stream, &ch.data) {
                    return Ok(());
                }
            }
            delay = POLL_MIN;
            continue;
        }
        if !follow {
            return Ok(());
        }
        // Nothing new: has the job moved to a new attempt, or ended?
        let j = match c.job(id).await {
            Ok(j) => j,
            Err(e) if e.is_transient() => {
                outage.failed(&e);
                tokio::time::sleep(delay).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if pinned.is_none() && j.summary.attempt > r.attempt {
            if r.attempt > 0 {
                eprintln!("--- attempt {} ---", j.summary.attempt);
            }
            (attempt, after) = (Some(j.summary.attempt), 0);
            continue;
        }
        if j.summary.state.is_terminal() {
            // Done when the attempt's logs are complete; a job that never ran ships none.
            let since = *ended_since.get_or_insert_with(Instant::now);
            if r.complete
                || j.summary.started_at.is_none()
                || since.elapsed() > Duration::from_secs(10)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(delay).await;
        delay = backoff(delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }

    /// `suanli submit` with whitespace-separated arguments.
    fn submit_args(args: &str) -> SubmitArgs {
        let argv = ["suanli", "submit"]
            .into_iter()
            .chain(args.split_whitespace());
        match Cli::try_parse_from(argv).unwrap().cmd {
            ClientCommand::Submit(a) => *a,
            _ => unreachable!(),
        }
    }

    fn invalid_message(e: anyhow::Error) -> String {
        e.downcast::<Invalid>().expect("an Invalid error").0
    }

    #[test]
    fn shell_quoting() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_join(&args(&["echo", "hello"])), "echo hello");
        assert_eq!(shell_join(&args(&["echo", "a b"])), "echo 'a b'");
        assert_eq!(
            shell_join(&args(&["echo", "it's", "", "$HOME"])),
            r"echo 'it'\''s' '' '$HOME'"
        );
        assert_eq!(
            shell_join(&args(&["python", "train.py", "--lr=0.1", "a/b.txt"])),
            "python train.py --lr=0.1 a/b.txt"
        );
        assert_eq!(
            shell_join(&args(&["echo hi | tr a-z A-Z"])),
            "echo hi | tr a-z A-Z"
        );
        assert_eq!(shell_quote("*"), "'*'");
    }

    #[test]
    fn spec_from_flags() {
        let a = submit_args(
            "--sku H100-SXM,H800-SXM --cards 8 --nodes 2 --walltime 2h --env A=1=2 \
             --max-price 12.5 --priority spot -- python train.py --lr 0.1",
        );
        let spec = build_spec(&a).unwrap();
        let mut want = JobSpec::new("python", "python train.py --lr 0.1");
        want.chips.skus = vec!["H100-SXM".into(), "H800-SXM".into()];
        want.cards_per_node = 8;
        want.nodes = 2;
        want.walltime = 7200;
        want.env.insert("A".into(), "1=2".into());
        want.max_price_per_card_hour = Some(Money(125_000));
        want.priority = PriorityClass::Spot;
        assert_eq!(spec, want);
        // Repeated --sku works like a comma list.
        let a = submit_args("--sku H100-SXM --sku H800-SXM --name t -- true");
        assert_eq!(build_spec(&a).unwrap().chips.skus, ["H100-SXM", "H800-SXM"]);
    }

    #[test]
    fn spec_errors_name_the_field() {
        let e = build_spec(&submit_args("--sku H100-SXM,B9000 -- true")).unwrap_err();
        assert_eq!(
            invalid_message(e),
            "invalid job spec: chips.skus[1]: unknown chip SKU \"B9000\""
        );
        let e = build_spec(&submit_args("--cards 8")).unwrap_err();
        assert!(invalid_message(e).starts_with("invalid job spec: command:"));
        assert!(
            Cli::try_parse_from(["suanli", "submit", "--walltime", "2x", "--", "true"]).is_err()
        );
    }

    #[test]
    fn flags_override_a_spec_file() {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("job.toml");
        std::fs::write(
            &spec_path,
            "name = \"train\"\ncommand = \"python train.py\"\ncards_per_node = 8\nwalltime = \"1h\"\n\
             [chips]\nfamily = \"Ascend910B\"\n[env]\nA = \"file\"\nB = \"file\"\n",
        )
        .unwrap();
        let input = dir.path().join("data.txt");
        std::fs::write(&input, "hello\n").unwrap();
        let f = spec_path.display();
        let input = input.display();
        let spec = build_spec(&submit_args(&format!(
            "-f {f} --cards 4 --env B=flag --file-in {input} --tenant demo-sme"
        )))
        .unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.command.as_str()),
            ("train", "python train.py")
        );
        assert_eq!((spec.cards_per_node, spec.walltime), (4, 3600));
        assert_eq!(spec.chips.family.as_deref(), Some("Ascend910B"));
        assert_eq!(spec.env["A"], "file");
        assert_eq!(spec.env["B"], "flag");
        assert_eq!(spec.files["data.txt"], "hello\n");
        assert_eq!(spec.tenant, Some(TenantId::new("demo-sme")));
        // The command after `--` replaces the file's; a file without name/command gets them from flags.
        let spec = build_spec(&submit_args(&format!("-f {f} -- echo hi"))).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.command.as_str()),
            ("train", "echo hi")
        );
        std::fs::write(&spec_path, "cards_per_node = 2\n").unwrap();
        let spec = build_spec(&submit_args(&format!("-f {f} -- /usr/bin/env"))).unwrap();
        assert_eq!((spec.name.as_str(), spec.cards_per_node), ("env", 2));
    }

    #[test]
    fn spec_file_errors_point_at_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(
            &path,
            "name = \"x\"\ncommand = \"true\"\ncards_per_node = \"eight\"\n",
        )
        .unwrap();
        let msg = invalid_message(
            build_spec(&submit_args(&format!("-f {}", path.display()))).unwrap_err(),
        );
        assert!(
            msg.starts_with("invalid job spec: ")
                && msg.contains("line 3")
                && msg.contains("bad.toml"),
            "{msg}"
        );
        std::fs::write(&path, "name = \"x\"\ncommand = \"true\"\ncards = 8\n").unwrap();
        let msg = invalid_message(
            build_spec(&submit_args(&format!("-f {}", path.display()))).unwrap_err(),
        );
        assert!(msg.contains("cards"), "{msg}");
    }

    #[test]
    fn durations_and_names() {
        assert_eq!(fmt_duration(9000), "2h30m");
        assert_eq!(fmt_duration(0), "0s");
        assert_eq!(fmt_duration(86_461), "1d1m1s");
        assert_eq!(default_name("python train.py"), "python");
        assert_eq!(default_name("/opt/bin/run.sh x"), "run.sh");
        assert_eq!(parse_job_id(" 42").unwrap(), JobId(42));
        assert!(parse_job_id("x").is_err());
    }
}

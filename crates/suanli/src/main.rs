//! `suanli`: the one binary. Server roles (`up`, `hub`, `site`), the simulator (`sim`) and the
//! client verbs (`client_cmd`, one module per resource). A new top-level verb is a variant of
//! [`Command`] and its arm in [`run`]; a new client verb goes into its resource's module.

/// A line on stdout from a server role (`up`, `hub`, `site`): a reader of the banner that has
/// gone (`suanli up | head -1`) stops nothing, so a failed write is ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stdout from a command that ends when its reader goes (`suanli sim ... | head`):
/// `?` on the write, which fails with `Closed` there, and `main` exits 0 quietly.
macro_rules! outln {
    () => {
        crate::client_cmd::output::line("")?
    };
    ($($arg:tt)*) => {
        crate::client_cmd::output::line(format!($($arg)*))?
    };
}

mod client_cmd;
mod config;
mod openapi_cmd;
mod replay_cmd;
mod server_cmd;
mod sim_cmd;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "suanli",
    version,
    about = "City computing power network: submit once, run at the best center",
    after_help = format!(
        "Start a demo network with `suanli up`, then submit from another shell.\n\n{}",
        client_cmd::EXIT_HELP
    )
)]
struct Cli {
    #[command(flatten)]
    conn: config::ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// All-in-one demo: hub, Greater Bay Area demo centers with local site agents, SQLite.
    Up(server_cmd::UpArgs),
    /// Run the hub (API, scheduler, store).
    Hub(server_cmd::HubArgs),
    /// Run a site agent beside a center's cluster (local or Slurm backend).
    Site(server_cmd::SiteArgs),
    /// Replay a workload trace through the scheduler in virtual time; `sim gen` writes one.
    Sim(sim_cmd::SimArgs),
    /// Print the hub API's OpenAPI 3.1 document (what `GET /v1/openapi.json` serves).
    Openapi,
    /// Replay a hub's input log and print its decision hash (as `GET /v1/hub` shows it live).
    Replay(replay_cmd::ReplayArgs),
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        // A reader that went away (`suanli openapi | head -1`) ends the command quietly.
        Err(e) if client_cmd::output::is_closed(&e) => std::process::exit(0),
        Err(e) => {
            // The cause chain on one line; no backtrace, even with RUST_BACKTRACE set (set
            // SUANLI_LOG=debug for detail in the logs).
            eprintln!("error: {e:#}");
            std::process::exit(client_cmd::Exit::Error.code());
        }
    }
}

fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    let server = matches!(
        cli.command,
        Command::Up(_) | Command::Hub(_) | Command::Site(_)
    );
    // PostgreSQL's notices (e.g. "relation already exists, skipping" at each start) are noise.
    let default_level = if server {
        "info,sqlx::postgres::notice=warn"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("SUANLI_LOG").unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    let code = rt.block_on(async move {
        match cli.command {
            Command::Up(args) => server_cmd::run_up(args).await,
            Command::Hub(args) => server_cmd::run_hub(args).await,
            Command::Site(args) => server_cmd::run_site(args).await,
            Command::Sim(args) => sim_cmd::run(args),
            Command::Openapi => openapi_cmd::run(),
            Command::Replay(args) => replay_cmd::run(args).await,
            Command::Client(cmd) => Ok(client_cmd::run(cmd, &cli.conn).await),
        }
    })?;
    Ok(code)
}

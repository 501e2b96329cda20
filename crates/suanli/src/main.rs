//! `suanli`: the one binary. Server roles (`up`, `hub`, `site`) and the client verbs.

mod client_cmd;
mod config;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "suanli", version, about = "City computing power network: one network, one-stop dispatching")]
struct Cli {
    #[command(flatten)]
    conn: config::ConnArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Client(client_cmd::ClientCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    let code = rt.block_on(async move {
        match cli.command {
            Command::Client(cmd) => client_cmd::run(cmd, &cli.conn).await,
        }
    })?;
    std::process::exit(code);
}

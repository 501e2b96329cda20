//! The client verbs, one module per resource, each with its flags and its handler:
//! [`jobs`] (submit, quote, jobs, job, wait, logs, cancel), [`centers`], [`hubs`] (and whoami),
//! [`money`] (bill, statement, vouchers), [`statistics`] (stats, releases, admin release),
//! [`models`] (models, model, certify, certs), [`outputs`] (outputs, download), [`datasets`] (datasets, dataset, airlock), [`audit`] (log, export, verify, prove, checkpoint)
//! and, under `admin`, [`tenants`] (and tokens), centers and
//! money. Every verb prints through [`output`] and ends with an [`exit::Exit`].
//!
//! A new verb goes into its resource's `Command` (or `Admin`) enum and `run`; only a new
//! resource is added here.

mod audit;
mod centers;
mod datasets;
mod exit;
mod hubs;
mod jobs;
mod models;
mod money;
pub mod output;
mod outputs;
mod risk;
mod statistics;
mod tenants;

pub use exit::{Exit, HELP as EXIT_HELP};
pub use money::this_year;
pub use output::joined;

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;
use serde::de::DeserializeOwned;
use suanli_client::ClientError;

use crate::config::ConnArgs;
use exit::Invalid;
use output::note;

#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    #[command(flatten)]
    Jobs(jobs::Command),
    #[command(flatten)]
    Centers(centers::Command),
    #[command(flatten)]
    Hubs(hubs::Command),
    #[command(flatten)]
    Money(money::Command),
    #[command(flatten)]
    Statistics(statistics::Command),
    #[command(flatten)]
    Models(models::Command),
    #[command(flatten)]
    Outputs(outputs::Command),
    #[command(flatten)]
    Datasets(datasets::Command),
    /// The tamper-evident audit log: log, export, verify, prove, checkpoint (operator and
    /// supervisors; verify needs no hub)
    #[command(subcommand)]
    Audit(audit::Command),
    /// Risk flags the hub's rules raised; ack or resolve one, saying why (operator and
    /// supervisors)
    Risk(risk::Command),
    /// Operator verbs: tenants, tokens, centers, prices, vouchers, budgets, releases
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    #[command(flatten)]
    Tenants(tenants::Admin),
    #[command(flatten)]
    Centers(centers::Admin),
    #[command(flatten)]
    Money(money::Admin),
    #[command(flatten)]
    Statistics(statistics::Admin),
}

/// Runs a client verb and returns the process exit code; errors are printed here.
pub async fn run(cmd: ClientCommand, conn: &ConnArgs) -> i32 {
    let exit = match exec(cmd, conn).await {
        Ok(exit) => exit,
        Err(e) => {
            let exit = Exit::of_error(&e);
            if exit != Exit::Success {
                match e.downcast_ref::<ClientError>() {
                    Some(ce) => note(format!("error: {ce}")),
                    None if e.is::<Invalid>() => note(format!("error: {e}")),
                    None => note(format!("error: {e:#}")),
                }
            }
            exit
        }
    };
    exit.code()
}

async fn exec(cmd: ClientCommand, conn: &ConnArgs) -> anyhow::Result<Exit> {
    match cmd {
        ClientCommand::Jobs(c) => c.run(conn).await,
        ClientCommand::Centers(c) => c.run(conn).await,
        ClientCommand::Hubs(c) => c.run(conn).await,
        ClientCommand::Money(c) => c.run(conn).await,
        ClientCommand::Statistics(c) => c.run(conn).await,
        ClientCommand::Models(c) => c.run(conn).await,
        ClientCommand::Outputs(c) => c.run(conn).await,
        ClientCommand::Datasets(c) => c.run(conn).await,
        ClientCommand::Audit(c) => c.run(conn).await,
        ClientCommand::Risk(c) => c.run(conn).await,
        ClientCommand::Admin(a) => {
            let c = conn.client()?;
            match a {
                AdminCommand::Tenants(a) => a.run(&c).await?,
                AdminCommand::Centers(a) => a.run(&c).await?,
                AdminCommand::Money(a) => a.run(&c).await?,
                AdminCommand::Statistics(a) => a.run(&c).await?,
            }
            Ok(Exit::Success)
        }
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// A TOML definition file; a file that does not parse is [`Invalid`]: `invalid WHAT: PATH: ...`.
fn read_toml<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = read_text(path)?;
    toml::from_str(&text).map_err(|e| {
        Invalid(format!(
            "invalid {what}: {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
        .into()
    })
}

/// The items trimmed, blank ones left out: `--sku a,,b`, `--hub "a, b"`.
pub fn non_empty<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    items
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A scratch directory for tests that read files.
#[cfg(test)]
pub struct Scratch(tempfile::TempDir);

#[cfg(test)]
impl Scratch {
    pub fn new() -> Scratch {
        Scratch(tempfile::tempdir().expect("a temporary directory"))
    }

    /// Writes `text` to the file `name` in the directory and returns its path.
    pub fn file(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("a scratch file");
        path
    }
}

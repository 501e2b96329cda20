//! Who the client talks to: `hubs` (every hub in the list) and `whoami` (the token).

use clap::Subcommand;
use serde::Serialize;
use suanli_proto::{HubStatus, WhoAmI};

use super::exit::Exit;
use super::output::{self as out, Format, Table, row};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every hub in the --hub list: reachable or not, leader or follower, the leadership term
    Hubs {
        #[command(flatten)]
        out: Format,
    },
    /// Show who the token belongs to
    Whoami {
        #[command(flatten)]
        out: Format,
    },
}

/// One hub of the list as `hubs --json` prints it: its status, or why it did not answer.
#[derive(Debug, Serialize)]
struct HubEntry {
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<HubStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        match self {
            Command::Hubs { out } => {
                let hubs: Vec<HubEntry> = conn
                    .client()?
                    .hub_statuses()
                    .await
                    .into_iter()
                    .map(|(url, r)| match r {
                        Ok(s) => HubEntry {
                            url,
                            status: Some(s),
                            error: None,
                        },
                        Err(e) => HubEntry {
                            url,
                            status: None,
                            error: Some(e.to_string()),
                        },
                    })
                    .collect();
                out::show(out, &hubs, |h| describe_hubs(h))?;
                if hubs.iter().all(|h| h.status.is_none()) {
                    return Ok(Exit::Unreachable);
                }
            }
            Command::Whoami { out } => {
                let me = conn.client()?.whoami().await?;
                out::show(out, &me, describe_me)?;
            }
        }
        Ok(Exit::Success)
    }
}

fn describe_hubs(hubs: &[HubEntry]) -> String {
    let mut t = Table::new("URL ROLE EPOCH LEADER ID");
    for h in hubs {
        t.push(match (&h.status, &h.error) {
            (Some(s), _) => {
                let leader = match (s.role.as_str(), &s.leader_url) {
                    ("leader" | "single", _) => "(this hub)".to_string(),
                    (_, Some(u)) => u.clone(),
                    (_, None) => "none known".to_string(),
                };
                row![h.url, s.role, s.epoch, leader, s.id]
            }
            (None, e) => row![h.url, "unreachable", "-", "-", e.as_deref().unwrap_or("")],
        });
    }
    t.to_string()
}

fn describe_me(me: &WhoAmI) -> String {
    let mut t = Table::of([row!["name", me.name], row!["role", me.role.as_str()]]);
    t.extend(me.tenant.as_ref().map(|t| row!["tenant", t]));
    t.extend(me.center.as_ref().map(|c| row!["center", c]));
    t.to_string()
}

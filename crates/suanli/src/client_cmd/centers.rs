//! Centers: `centers` for everyone; `admin center-register`, `drain` and `undrain` for operators.

use std::path::PathBuf;

use clap::Subcommand;
use suanli_client::Client;
use suanli_proto::{CenterView, DrainView};
use suanli_types::CenterSpec;

use super::exit::{Exit, Invalid};
use super::output::{self as out, Format, Table, joined, note, row};
use super::read_toml;
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List computing centers and their pools: the one network
    Centers {
        #[command(flatten)]
        out: Format,
    },
}

#[derive(Subcommand, Debug)]
pub enum Admin {
    /// Register or update a center from a TOML definition; prints a new site token
    CenterRegister { file: PathBuf },
    /// Stop placing new work at a center; attempts not yet running are handed back to the queue,
    /// running ones finish there (or, with --requeue, are stopped and queued again)
    Drain {
        center: String,
        #[arg(long)]
        requeue: bool,
        #[command(flatten)]
        out: Format,
    },
    /// Let a drained center take new work again
    Undrain {
        center: String,
        #[command(flatten)]
        out: Format,
    },
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let Command::Centers { out } = self;
        let centers = conn.client()?.centers().await?;
        out::show(out, &centers, |c| describe(c))?;
        Ok(Exit::Success)
    }
}

fn describe(centers: &[CenterView]) -> String {
    let mut t = Table::new("CENTER CITY OWNER SKU CARDS FREE PRICE(yuan/card-h) STATUS");
    for c in centers {
        if c.pools.is_empty() {
            t.push(row![c.id, c.city, c.owner, "-", 0, 0, "-", c.status]);
        }
        for p in &c.pools {
            t.push(row![
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
    t.to_string()
}

impl Admin {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            Admin::CenterRegister { file } => {
                let spec: CenterSpec = read_toml(&file, "center definition")?;
                spec.validate().map_err(|e| {
                    Invalid(format!(
                        "invalid center definition: {}: {e}",
                        file.display()
                    ))
                })?;
                let r = c.register_center(&spec).await?;
                match r.site_token {
                    Some(token) => {
                        note(format!(
                            "Registered center {}; its site token is shown only once:",
                            r.center
                        ));
                        out::line(token)?;
                    }
                    None => note(format!(
                        "Updated center {} (already registered: no new site token)",
                        r.center
                    )),
                }
            }
            Admin::Drain {
                center,
                requeue,
                out,
            } => {
                let d = c.drain(&center, requeue).await?;
                out::show(out, &d, |d| describe_drain(d, requeue))?;
            }
            Admin::Undrain { center, out } => {
                let d = c.undrain(&center).await?;
                out::show(out, &d, |d| {
                    format!("Undrained {}: it takes new work again\n", d.center)
                })?;
            }
        }
        Ok(())
    }
}

fn describe_drain(d: &DrainView, requeue: bool) -> String {
    let running = match requeue {
        true => "(none: requeued)",
        false => "will finish",
    };
    let requeued = match d.requeued.is_empty() {
        true => String::new(),
        false => format!(" ({})", joined(&d.requeued, ", ", "")),
    };
    format!(
        "Drained {}: no new work; {} attempt(s) running there {running}; {} handed back{requeued}\n",
        d.center,
        d.running,
        d.requeued.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_types::{CenterId, JobId};

    #[test]
    fn drain_lines() {
        let mut d = DrainView {
            center: CenterId::new("pcl-cb2"),
            drained: true,
            running: 2,
            requeued: vec![],
        };
        assert_eq!(
            describe_drain(&d, false),
            "Drained pcl-cb2: no new work; 2 attempt(s) running there will finish; 0 handed back\n"
        );
        d.requeued = vec![JobId(4), JobId(9)];
        assert!(
            describe_drain(&d, true)
                .ends_with("running there (none: requeued); 2 handed back (4, 9)\n")
        );
    }
}

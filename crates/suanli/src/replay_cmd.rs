//! `suanli replay`: runs a hub's input log through the engine's lifecycle and scheduler core, with
//! nothing written, and prints the decision hash, which `GET /v1/hub` shows for the live hub.
//! The log comes from the hub's store, or from a file written by `--export`.

use crate::client_cmd::output::line;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use suanli_hub::replay::{self, Entry};

#[derive(Args)]
pub struct ReplayArgs {
    /// The hub's database: `sqlite:PATH` or `postgres://user[:password]@host[:port]/db`
    /// (default: `sqlite:` DATA_DIR/hub.db).
    #[arg(long, env = "SUANLI_STORE")]
    pub store: Option<String>,
    /// The hub's data directory (for the default SQLite database).
    #[arg(long, env = "SUANLI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Replay this exported log (JSON lines) instead of the store's.
    #[arg(long, value_name = "FILE", conflicts_with = "export")]
    pub from: Option<PathBuf>,
    /// Write the store's log to FILE (JSON lines, one input each) before replaying it.
    #[arg(long, value_name = "FILE")]
    pub export: Option<PathBuf>,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: ReplayArgs) -> anyhow::Result<i32> {
    let entries = match &args.from {
        Some(path) => read_file(path)?,
        None => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(crate::server_cmd::default_data_dir);
            let store = crate::server_cmd::open_store(&dir, args.store.as_deref()).await?;
            let entries = replay::read_log(store.as_ref())
                .await
                .context("cannot read the input log")?;
            if let Some(path) = &args.export {
                write_file(path, &entries)?;
            }
            entries
        }
    };
    let out = replay::replay(entries)
        .await
        .context("cannot replay the input log")?;
    let hash = format!("{:016x}", out.decision_hash);
    if args.json {
        let v = serde_json::json!({
            "decision_hash": hash,
            "inputs": out.inputs,
            "starts": out.starts,
            "unfinished": out.unfinished,
        });
        line(v)?;
    } else {
        line(format!("decision hash {hash}"))?;
        line(format!(
            "{} inputs, {} engine starts, {} jobs unfinished at the end",
            out.inputs, out.starts, out.unfinished
        ))?;
    }
    Ok(0)
}

fn read_file(path: &PathBuf) -> anyhow::Result<Vec<Entry>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not an input", path.display(), n + 1))?,
        );
    }
    Ok(out)
}

fn write_file(path: &PathBuf, entries: &[Entry]) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    for e in entries {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

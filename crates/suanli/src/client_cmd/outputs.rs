//! Job outputs: `outputs ID` lists the files a job left; `download ID [PATH] [-o DIR]` writes
//! them (all, or one) under DIR, checked against their SHA-256.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use sha2::{Digest, Sha256};
use suanli_proto::OutputsView;
use suanli_types::JobId;

use super::exit::{Exit, Invalid};
use super::output::{self as out, Format, Table, note};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The files a job left (the `outputs` patterns of its spec), with size and SHA-256
    Outputs {
        /// The job id
        id: i64,
        #[command(flatten)]
        out: Format,
    },
    /// Download a job's outputs (all of them, or one PATH) into a folder (your tenant's jobs)
    Download {
        /// The job id
        id: i64,
        /// One output's path, as `suanli outputs` lists it; without it, all of them
        path: Option<String>,
        /// The folder to write into (created if need be); each file keeps its relative path
        #[arg(short = 'o', long = "output-dir", default_value = ".")]
        dir: PathBuf,
        /// Of this attempt (default: the newest that left the file)
        #[arg(long)]
        attempt: Option<u32>,
    },
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let c = conn.client()?;
        match self {
            Command::Outputs { id, out } => {
                let list = c.outputs(JobId(id)).await?;
                out::show(out, &list, table)?;
            }
            Command::Download {
                id,
                path,
                dir,
                attempt,
            } => {
                let list = c.outputs(JobId(id)).await?;
                let mut wanted: Vec<_> = list
                    .outputs
                    .iter()
                    .filter(|o| path.as_ref().is_none_or(|p| p == &o.path))
                    .filter(|o| attempt.is_none_or(|a| a == o.attempt))
                    .collect();
                // The newest attempt's copy of each path.
                wanted.sort_by(|a, b| a.path.cmp(&b.path).then(b.attempt.cmp(&a.attempt)));
                wanted.dedup_by(|a, b| a.path == b.path);
                if wanted.is_empty() {
                    let what = match &path {
                        Some(p) => format!("no output {p:?}"),
                        None => "no outputs".into(),
                    };
                    return Err(Invalid(format!(
                        "job {id} has {what}{}",
                        attempt
                            .map(|a| format!(" of attempt {a}"))
                            .unwrap_or_default()
                    ))
                    .into());
                }
                for o in wanted {
                    let data = c
                        .download_output(JobId(id), &o.path, Some(o.attempt))
                        .await?;
                    let target = write_checked(&dir, &o.path, &o.sha256, &data)?;
                    note(format!("{} ({} bytes)", target.display(), data.len()));
                }
            }
        }
        Ok(Exit::Success)
    }
}

fn table(l: &OutputsView) -> String {
    let mut t = Table::new("PATH SIZE ATTEMPT SHA256 EXPIRES");
    t.extend(l.outputs.iter().map(|o| {
        vec![
            o.path.clone(),
            o.size.to_string(),
            o.attempt.to_string(),
            o.sha256[..12.min(o.sha256.len())].to_string(),
            o.expires_at.to_string(),
        ]
    }));
    let mut s = t.to_string();
    if l.outputs.is_empty() {
        s.push_str(&match l.patterns.is_empty() {
            true => "(no outputs: the job declares none; submit with --output GLOB)\n".into(),
            false => format!("(no outputs yet; patterns: {})\n", l.patterns.join(", ")),
        });
    } else {
        s.push_str(&format!(
            "{} files, {} bytes\n",
            l.outputs.len(),
            l.total_bytes
        ));
    }
    s
}

/// Writes `data` to `dir/rel` (through a temporary file, so a cut download leaves nothing
/// half-written), after checking that it hashes to `sha256`.
fn write_checked(dir: &Path, rel: &str, sha256: &str, data: &[u8]) -> anyhow::Result<PathBuf> {
    suanli_types::spec::input::check_relative_path(rel)
        .map_err(|m| Invalid(format!("the hub lists an output path {rel:?} that {m}")))?;
    let got: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got != sha256 {
        anyhow::bail!("{rel}: the download hashes to {got}, not {sha256}; nothing written");
    }
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.part",
        target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download")
    ));
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("cannot write {}", target.display()))?;
    Ok(target)
}

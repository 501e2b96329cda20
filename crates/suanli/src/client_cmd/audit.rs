//! The audit log, for the operator and supervisors: `audit log` (entries, filtered), `audit
//! export` (entries, checkpoints and keys to a file), `audit verify FILE` (offline, no hub),
//! `audit prove SEQ` (an entry's inclusion proof, checked here) and `audit checkpoint [--save]`
//! (the newest checkpoint; saved to a file the supervisor keeps, after checking that it extends
//! the last one saved). See docs/SUPERVISION.md.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use suanli_audit::{Checkpoint, Export, Hash, Record, SavedCheckpoint, Trust, merkle};
use suanli_client::AuditQuery;
use suanli_proto::{AuditEntryView, AuditOutcomeView};

use super::exit::{Exit, Invalid};
use super::output::{self as out, Format, Table, note};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List audit entries, oldest first; every filter given must hold
    Log {
        /// Only this principal (a token id, or `anonymous`)
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Only this action, e.g. "POST /v1/jobs"
        #[arg(long)]
        action: Option<String>,
        /// Only the entry of this request id (`suanli bill explain` names a report's)
        #[arg(long)]
        request: Option<String>,
        /// From this time: Unix milliseconds, or a duration ago (e.g. 2h)
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        /// Before this time: Unix milliseconds, or a duration ago
        #[arg(long, value_parser = parse_time)]
        until: Option<i64>,
        /// Only refused requests
        #[arg(long)]
        denied: bool,
        /// Entries after this seq
        #[arg(long)]
        after: Option<u64>,
        /// At most this many (1 to 1000)
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        out: Format,
    },
    /// Write every entry, every checkpoint and the hubs' keys to a file (or stdout)
    Export {
        /// The file to write (default: stdout)
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check an export offline: every entry's hash and chain, the tree, every checkpoint's
    /// signature and root, and the checkpoints you saved; names the first bad entry
    Verify {
        /// The file `audit export` wrote
        file: PathBuf,
        /// Checkpoints you saved with `audit checkpoint --save` (their keys are trusted)
        #[arg(long)]
        saved: Option<PathBuf>,
        /// A hub public key you trust (hex; repeatable). Without --key and --saved, the keys
        /// named in the file itself are trusted, which proves nothing against a forgery
        #[arg(long = "key", value_name = "HEX")]
        keys: Vec<String>,
        #[command(flatten)]
        out: Format,
    },
    /// Fetch an entry's inclusion proof in the newest checkpoint and check it here
    Prove {
        /// The entry's seq
        entry: u64,
        #[command(flatten)]
        out: Format,
    },
    /// Show the newest signed checkpoint; with --save, keep it after checking that it extends
    /// the last one kept
    Checkpoint {
        /// Append it to the file of saved checkpoints
        #[arg(long)]
        save: bool,
        /// The file of saved checkpoints [default: audit-checkpoints.json beside the client
        /// config]
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        out: Format,
    },
}

/// A time flag: Unix milliseconds, or a duration before now.
fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let secs = suanli_types::spec::parse_duration(s)?;
    Ok(suanli_hub::engine::now().0 - (secs as i64) * 1000)
}

/// The default file of saved checkpoints: beside the client config.
fn default_saved_file() -> PathBuf {
    crate::config::default_config_path().with_file_name("audit-checkpoints.json")
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        match self {
            Command::Log {
                actor,
                tenant,
                action,
                request,
                since,
                until,
                denied,
                after,
                limit,
                out,
            } => {
                let q = AuditQuery {
                    principal: actor,
                    tenant,
                    action,
                    request_id: request,
                    since,
                    until,
                    denied,
                    after,
                    limit: Some(limit),
                };
                let page = conn.client()?.audit_entries(&q).await?;
                out::show(out, &page, |p| {
                    let mut t = Table::new("SEQ TIME PRINCIPAL ROLE TENANT ACTION TARGET OUTCOME");
                    t.extend(p.entries.iter().map(entry_row));
                    let mut s = t.to_string();
                    if let Some(n) = p.next {
                        s.push_str(&format!("(more: --after {n})\n"));
                    }
                    s
                })?;
                Ok(Exit::Success)
            }
            Command::Export { output } => {
                let export = conn.client()?.audit_export().await?;
                let text = serde_json::to_string(&export)?;
                match output {
                    Some(path) => {
                        std::fs::write(&path, format!("{text}\n"))
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        note(format!(
                            "wrote {} entries and {} checkpoints to {}",
                            export.entries.len(),
                            export.checkpoints.len(),
                            path.display()
                        ));
                    }
                    None => out::line(text)?,
                }
                Ok(Exit::Success)
            }
            Command::Verify {
                file,
                saved,
                keys,
                out,
            } => verify(&file, saved.as_deref(), &keys, out),
            Command::Prove { entry, out } => {
                let p = conn.client()?.audit_proof(entry).await?;
                let record = Record::try_from(&p.entry)?;
                let checkpoint = Checkpoint::try_from(&p.checkpoint)?;
                let key = suanli_proto::public_key(&p.key)?;
                let path = suanli_proto::hashes("path", &p.path)?;
                let ok = record.entry.leaf_hash() == record.leaf
                    && checkpoint.signed_by(&key)
                    && merkle::verify_inclusion(
                        record.entry.seq,
                        checkpoint.size,
                        &record.leaf,
                        &path,
                        &checkpoint.root,
                    );
                out::show(out, &p, |p| {
                    let mut t = Table::new("SEQ TIME PRINCIPAL ROLE TENANT ACTION TARGET OUTCOME");
                    t.push(entry_row(&p.entry));
                    let mut s = t.to_string();
                    s.push_str(&format!(
                        "{} entry {} is leaf {} of the tree of {} entries, root {}, signed by key {} \
                         ({} hashes in the proof)\n",
                        if ok { "ok:" } else { "FAILED:" },
                        p.entry.seq,
                        p.entry.seq,
                        p.checkpoint.size,
                        p.checkpoint.root,
                        p.checkpoint.key_id,
                        p.path.len()
                    ));
                    s
                })?;
                Ok(if ok { Exit::Success } else { Exit::AuditFailed })
            }
            Command::Checkpoint { save, file, out } => {
                let file = file.unwrap_or_else(default_saved_file);
                let mut kept = read_saved(&file)?;
                let last = kept.iter().max_by_key(|s| s.checkpoint.size).cloned();
                let c = conn
                    .client()?
                    .audit_checkpoint(last.as_ref().map(|s| s.checkpoint.size))
                    .await?;
                let checkpoint = Checkpoint::try_from(&c.checkpoint)?;
                let key = suanli_proto::public_key(&c.key)?;
                if !checkpoint.signed_by(&key) {
                    note("FAILED: the checkpoint's signature does not verify");
                    return Ok(Exit::AuditFailed);
                }
                if let Some(last) = &last {
                    let proof = suanli_proto::hashes("consistency", &c.consistency)?;
                    if !merkle::verify_consistency(
                        last.checkpoint.size,
                        checkpoint.size,
                        &last.checkpoint.root,
                        &checkpoint.root,
                        &proof,
                    ) {
                        note(format!(
                            "FAILED: the hub's log (size {}) does not extend the checkpoint \
                             saved in {} (size {}): its history was rewritten",
                            checkpoint.size,
                            file.display(),
                            last.checkpoint.size
                        ));
                        return Ok(Exit::AuditFailed);
                    }
                }
                out::show(out, &c, |c| {
                    let mut s = format!(
                        "size {}  root {}  time {}  key {}\n",
                        c.checkpoint.size,
                        c.checkpoint.root,
                        suanli_types::Timestamp(c.checkpoint.time),
                        c.checkpoint.key_id
                    );
                    if let Some(last) = &last {
                        s.push_str(&format!(
                            "extends the saved checkpoint of size {} (consistency proof of {} \
                             hashes verified)\n",
                            last.checkpoint.size,
                            c.consistency.len()
                        ));
                    }
                    s
                })?;
                if save {
                    kept.push(SavedCheckpoint { checkpoint, key });
                    write_saved(&file, &kept)?;
                    note(format!(
                        "saved to {} ({} checkpoints kept)",
                        file.display(),
                        kept.len()
                    ));
                }
                Ok(Exit::Success)
            }
        }
    }
}

fn entry_row(e: &AuditEntryView) -> Vec<String> {
    let outcome = match &e.outcome {
        AuditOutcomeView::Allowed { status } => format!("allowed {status}"),
        AuditOutcomeView::Denied { status, why } => format!("denied {status} ({why})"),
    };
    vec![
        e.seq.to_string(),
        suanli_types::Timestamp(e.time).to_string(),
        e.principal.clone(),
        e.role.clone().unwrap_or_else(|| "-".into()),
        e.tenant.clone().unwrap_or_else(|| "-".into()),
        e.action.clone(),
        e.target.clone(),
        outcome,
    ]
}

/// The saved checkpoints in `path`; none if it does not exist yet.
fn read_saved(path: &Path) -> anyhow::Result<Vec<SavedCheckpoint>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Invalid(format!(
                "invalid saved checkpoints: {}: {e}",
                path.display()
            ))
            .into()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_saved(path: &Path, kept: &[SavedCheckpoint]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(kept)? + "\n")
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What `verify --json` prints.
#[derive(serde::Serialize)]
struct Verdict {
    ok: bool,
    entries: u64,
    root: Hash,
    checkpoints_verified: usize,
    covered: u64,
    first_bad_entry: Option<u64>,
    problems: Vec<String>,
    more_problems: u64,
    trusted_keys: Vec<String>,
    keys_from_the_file: bool,
}

fn verify(file: &Path, saved: Option<&Path>, keys: &[String], out: Format) -> anyhow::Result<Exit> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let view: suanli_proto::AuditExport = serde_json::from_str(&text)
        .map_err(|e| Invalid(format!("not an audit export: {}: {e}", file.display())))?;
    let export = Export::try_from(&view)
        .map_err(|e| Invalid(format!("not an audit export: {}: {e}", file.display())))?;
    if export.format != suanli_audit::EXPORT_FORMAT {
        return Err(Invalid(format!(
            "{}: format {:?}, this verifier reads {:?}",
            file.display(),
            export.format,
            suanli_audit::EXPORT_FORMAT
        ))
        .into());
    }
    let saved = match saved {
        Some(p) => {
            if !p.exists() {
                return Err(Invalid(format!("no saved checkpoints at {}", p.display())).into());
            }
            read_saved(p)?
        }
        None => Vec::new(),
    };
    let mut trust = Trust::default();
    for k in keys {
        trust
            .keys
            .push(suanli_proto::public_key(k).map_err(|e| Invalid(format!("--key {k}: {e}")))?);
    }
    trust.keys.extend(saved.iter().map(|s| s.key));
    let from_file = trust.keys.is_empty();
    if from_file {
        trust.keys = export.keys.clone();
    }
    trust.keys.dedup();
    let saved_checkpoints: Vec<Checkpoint> = saved.iter().map(|s| s.checkpoint.clone()).collect();
    let report = suanli_audit::verify(
        &export.entries,
        &export.checkpoints,
        &saved_checkpoints,
        &trust,
    );
    let verdict = Verdict {
        ok: report.ok(),
        entries: report.entries,
        root: report.root,
        checkpoints_verified: report.checkpoints_verified,
        covered: report.covered,
        first_bad_entry: report.first_bad_entry(),
        problems: report.problems.iter().map(ToString::to_string).collect(),
        more_problems: report.more_problems,
        trusted_keys: trust.keys.iter().map(|k| k.id().0).collect(),
        keys_from_the_file: from_file,
    };
    out::show(out, &verdict, |v| {
        let mut s = String::new();
        if v.keys_from_the_file {
            s.push_str(
                "note: trusting the keys named in the file itself; pass --key or --saved to \
                 check against keys you hold\n",
            );
        }
        match v.ok {
            true => s.push_str(&format!(
                "ok: {} entries, root {}, {} checkpoints verified; {} entries covered by a \
                 checkpoint, {} after the newest are not signed yet\n",
                v.entries,
                v.root,
                v.checkpoints_verified,
                v.covered,
                v.entries - v.covered.min(v.entries)
            )),
            false => {
                s.push_str(&format!(
                    "FAILED: {} entries; first bad entry: {}\n",
                    v.entries,
                    v.first_bad_entry
                        .map_or_else(|| "none named".to_string(), |e| e.to_string())
                ));
                for p in &v.problems {
                    s.push_str(&format!("  - {p}\n"));
                }
                if v.more_problems > 0 {
                    s.push_str(&format!("  ... and {} more\n", v.more_problems));
                }
            }
        }
        s
    })?;
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::AuditFailed
    })
}

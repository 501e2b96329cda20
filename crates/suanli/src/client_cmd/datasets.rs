//! Datasets and the airlock (docs/DATA.md): `datasets`, `dataset show|register|grant|revoke`,
//! and `airlock request|review|show|list`.

use std::path::PathBuf;

use clap::Subcommand;
use suanli_proto::suanli_data::{DatasetSpec, ReleaseRequest, Verdict};
use suanli_proto::{
    AirlockRequest, AirlockReview, DatasetGrantRequest, DatasetView, RegisterDataset,
};
use suanli_types::{JobId, TenantId, Timestamp};

use super::exit::{Exit, Invalid};
use super::output::{self as out, Format, Table, or_dash};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The registered datasets: where each resides, its class, and what your tenant may do
    Datasets {
        #[command(flatten)]
        out: Format,
    },
    /// One dataset: show, register (a TOML file), grant a tenant, revoke a tenant's grants
    #[command(subcommand)]
    Dataset(DatasetVerb),
    /// Releases of outputs of jobs on restricted or sensitive data: request, review, show, list
    #[command(subcommand)]
    Airlock(AirlockVerb),
}

#[derive(Subcommand, Debug)]
pub enum DatasetVerb {
    Show {
        name: String,
        #[command(flatten)]
        out: Format,
    },
    /// Register a dataset, or replace its record (tenant admins of its owner, the operator)
    Register {
        file: PathBuf,
        /// The owner tenant (the operator must name one)
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        out: Format,
    },
    /// Let a tenant compute on a restricted or sensitive dataset
    Grant {
        name: String,
        #[arg(long)]
        tenant: String,
        /// For this many days (default 90)
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    /// End a tenant's grants on a dataset, at once
    Revoke {
        name: String,
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AirlockVerb {
    /// Ask for a job's quarantined outputs to be released (all, or each --path)
    Request {
        job: i64,
        /// Why they should leave (3 to 500 characters)
        #[arg(long = "why")]
        why: String,
        #[arg(long = "path")]
        paths: Vec<String>,
        #[command(flatten)]
        out: Format,
    },
    /// Approve or reject a request in review (a tenant admin of the data owner, not the requester)
    Review {
        id: i64,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: Format,
    },
    /// A request: its files, checks, reviews and history
    Show {
        id: i64,
        #[command(flatten)]
        out: Format,
    },
    /// The requests of a job, or those your tenant reviews as data owner
    List {
        #[arg(long)]
        job: Option<i64>,
        /// The operator: the requests this owner reviews
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        out: Format,
    },
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let c = conn.client()?;
        match self {
            Command::Datasets { out } => {
                let list = c.datasets().await?;
                out::show(out, &list, |l| {
                    let mut t = Table::new("DATASET OWNER CLASS HOMES SIZE EGRESS ACCESS");
                    t.extend(l.datasets.iter().map(|d| {
                        vec![
                            d.spec.name.clone(),
                            d.owner.to_string(),
                            d.spec.classification.to_string(),
                            d.spec
                                .homes
                                .iter()
                                .map(|h| h.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            d.spec.size_bytes.to_string(),
                            if d.spec.policy.egress { "yes" } else { "no" }.into(),
                            d.access.clone(),
                        ]
                    }));
                    let mut s = t.to_string();
                    if l.datasets.is_empty() {
                        s.push_str("(no datasets)\n");
                    }
                    s
                })?;
            }
            Command::Dataset(DatasetVerb::Show { name, out }) => {
                let d = c.dataset(&name).await?;
                out::show(out, &d, describe)?;
            }
            Command::Dataset(DatasetVerb::Register { file, owner, out }) => {
                let spec: DatasetSpec = super::read_toml(&file, "dataset")?;
                spec.validate()
                    .map_err(|e| Invalid(format!("invalid dataset: {}: {e}", file.display())))?;
                let d = c
                    .register_dataset(&RegisterDataset {
                        spec,
                        owner: owner.map(TenantId::new),
                    })
                    .await?;
                out::show(out, &d, |d| {
                    format!(
                        "Registered dataset {} ({}) of {}\n",
                        d.spec.name, d.spec.classification, d.owner
                    )
                })?;
            }
            Command::Dataset(DatasetVerb::Grant { name, tenant, days }) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let until = Timestamp(now_ms + i64::from(days) * 86_400_000);
                c.grant_dataset(
                    &name,
                    &DatasetGrantRequest {
                        tenant: TenantId::new(&tenant),
                        expires_at: Some(until),
                    },
                )
                .await?;
                out::line(format!("Granted {tenant} dataset {name} until {until}"))?;
            }
            Command::Dataset(DatasetVerb::Revoke { name, tenant }) => {
                let r = c.revoke_dataset(&name, &TenantId::new(&tenant)).await?;
                out::line(format!(
                    "Revoked {} grant(s) of {tenant} on {name}",
                    r.revoked
                ))?;
            }
            Command::Airlock(AirlockVerb::Request {
                job,
                why,
                paths,
                out,
            }) => {
                let r = c
                    .airlock_request(&AirlockRequest {
                        job: JobId(job),
                        justification: why,
                        paths,
                    })
                    .await?;
                out::show(out, &r, show_request)?;
            }
            Command::Airlock(AirlockVerb::Review {
                id,
                approve,
                reject: _,
                reason,
                out,
            }) => {
                let verdict = if approve {
                    Verdict::Approve
                } else {
                    Verdict::Reject
                };
                let r = c
                    .airlock_review(id, &AirlockReview { verdict, reason })
                    .await?;
                out::show(out, &r, show_request)?;
            }
            Command::Airlock(AirlockVerb::Show { id, out }) => {
                let r = c.airlock_show(id).await?;
                out::show(out, &r, show_request)?;
            }
            Command::Airlock(AirlockVerb::List { job, owner, out }) => {
                let owner = owner.map(TenantId::new);
                let l = c.airlock_list(job.map(JobId), owner.as_ref()).await?;
                out::show(out, &l, |l| {
                    let mut t = Table::new("REQUEST JOB STATE CLASS FILES REQUESTER APPROVALS");
                    t.extend(l.requests.iter().map(|r| {
                        vec![
                            r.id.to_string(),
                            r.job.to_string(),
                            r.state.as_str().into(),
                            r.classification.to_string(),
                            r.files.len().to_string(),
                            r.requester.clone(),
                            format!("{}/{}", r.approvers().len(), r.approvals_needed()),
                        ]
                    }));
                    let mut s = t.to_string();
                    if l.requests.is_empty() {
                        s.push_str("(no requests)\n");
                    }
                    s
                })?;
            }
        }
        Ok(Exit::Success)
    }
}

fn describe(d: &DatasetView) -> String {
    let s = &d.spec;
    let mut o = format!(
        "Dataset:     {}\nOwner:       {}\nClass:       {}\nResides at:  {}\nPath:        {}\nSize:        {} bytes\nEgress:      {}\nAccess:      {}{}\n",
        s.name,
        d.owner,
        s.classification,
        s.homes
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if s.path.is_empty() {
            "(the owner's and the operator's to see)"
        } else {
            &s.path
        },
        s.size_bytes,
        if s.policy.egress {
            "allowed"
        } else {
            "cut (no network in its jobs)"
        },
        d.access,
        d.grant_expires_at
            .map(|t| format!(" until {t}"))
            .unwrap_or_default(),
    );
    let r = &s.policy.outputs;
    o.push_str(&format!(
        "Outputs:     max {} per file; types {}; must not contain {}\n",
        or_dash(r.max_bytes),
        if r.allowed_types.is_empty() {
            "any".into()
        } else {
            r.allowed_types.join(", ")
        },
        if r.forbidden.is_empty() {
            "-".into()
        } else {
            r.forbidden.join(", ")
        },
    ));
    if !s.description.is_empty() {
        o.push_str(&format!("About:       {}\n", s.description));
    }
    for g in &d.grants {
        o.push_str(&format!(
            "Grant:       {} by {} at {} until {}{}\n",
            g.tenant,
            g.granted_by,
            g.granted_at,
            or_dash(g.expires_at),
            g.revoked_at
                .map(|t| format!(" (revoked {t})"))
                .unwrap_or_default()
        ));
    }
    o
}

fn show_request(r: &ReleaseRequest) -> String {
    let mut o = format!(
        "Request {} for job {} ({} data of {}): {}\nRequested by {}: {}\nApprovals: {}/{}\n",
        r.id,
        r.job,
        r.classification,
        r.owner,
        r.state.as_str(),
        r.requester,
        r.justification,
        r.approvers().len(),
        r.approvals_needed()
    );
    let mut t = Table::new("FILE SIZE SHA256");
    t.extend(r.files.iter().map(|f| {
        vec![
            f.path.clone(),
            f.size.to_string(),
            f.sha256[..12.min(f.sha256.len())].to_string(),
        ]
    }));
    o.push_str(&t.to_string());
    for b in &r.breaches {
        o.push_str(&format!("Blocked by {}: {}\n", b.rule, b.detail));
    }
    o.push_str("History:\n");
    for h in &r.history {
        o.push_str(&format!("  {}  {}  {}\n", h.at, h.actor, h.what));
    }
    o
}

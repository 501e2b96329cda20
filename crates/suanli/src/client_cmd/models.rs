//! The model library and adaptation certification (docs/MODELS.md): `models`, `model show M`,
//! `model publish FILE.toml`, `certify --model M --center C [--wait]`, `certs --model M` (the
//! adaptation matrix) and `certs review ID --accept|--reject --reason ...`. A model is named by
//! its id, `name@revision`, or its name (the newest revision).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use suanli_client::Client;
use suanli_proto::suanli_models::{CertState, ModelSpec, Status, Statuses, Verdict};
use suanli_proto::{CertificationView, CertifyRequest, ModelView, ReviewRequest};
use suanli_types::{CenterId, TenantId, Timestamp};

use super::exit::{Exit, Invalid};
use super::output::{self as out, Format, Table, note};
use crate::config::ConnArgs;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The model library: the models this token may see
    Models {
        #[command(flatten)]
        out: Format,
    },
    /// One model: show it, or publish one from a TOML file (operator, tenant admin)
    #[command(subcommand)]
    Model(ModelVerb),
    /// Run a model's certification benchmark at a center as a job of your tenant; with --wait,
    /// until its outcome is recorded
    Certify(Certify),
    /// A model's certification records and adaptation matrix; `certs review` accepts or
    /// rejects a pending record (operator)
    Certs(Certs),
}

#[derive(Subcommand, Debug)]
pub enum ModelVerb {
    /// A model's record
    Show {
        /// Its id, name@revision, or name (the newest revision)
        model: String,
        #[command(flatten)]
        out: Format,
    },
    /// Publish a model revision from a TOML file (see docs/MODELS.md)
    Publish {
        file: PathBuf,
        #[command(flatten)]
        out: Format,
    },
}

#[derive(Args, Debug)]
pub struct Certify {
    /// The model: id, name@revision, or name
    #[arg(long)]
    model: String,
    /// The center to run the benchmark at
    #[arg(long)]
    center: String,
    /// The chip SKU, when the center has several
    #[arg(long)]
    sku: Option<String>,
    /// The paying tenant (the operator must name one)
    #[arg(long)]
    tenant: Option<String>,
    /// Wait until the benchmark has ended and its outcome is recorded
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many seconds (exit 124)
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    #[command(flatten)]
    out: Format,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Certs {
    #[command(subcommand)]
    verb: Option<CertsVerb>,
    /// The model: id, name@revision, or name
    #[arg(long)]
    model: Option<String>,
    /// Also list every record, not only the matrix
    #[arg(long, short)]
    long: bool,
    #[command(flatten)]
    out: Format,
}

#[derive(Subcommand, Debug)]
enum CertsVerb {
    /// Accept or reject a pending record, saying why (operator)
    Review {
        /// The record's id (the CERT column of `suanli certs`)
        id: i64,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        accept: bool,
        #[arg(long)]
        reject: bool,
        /// Why (1 to 500 characters)
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        out: Format,
    },
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let c = conn.client()?;
        match self {
            Command::Models { out } => {
                let list = c.models().await?;
                out::show(out, &list, |l| {
                    let mut t = Table::new("ID MODEL TASK FRAMEWORK PARAMS STACKS VISIBLE-TO");
                    t.extend(l.models.iter().map(|m| {
                        vec![
                            m.id.to_string(),
                            format!("{}@{}", m.model.name, m.model.revision),
                            m.model.task.clone(),
                            m.model.framework.clone(),
                            params(m.model.parameters),
                            m.model.stacks.keys().cloned().collect::<Vec<_>>().join(","),
                            m.owner.as_ref().map_or("all".into(), |o| o.to_string()),
                        ]
                    }));
                    let mut s = t.to_string();
                    if l.models.is_empty() {
                        s.push_str("(no models)\n");
                    }
                    s
                })?;
            }
            Command::Model(ModelVerb::Show { model, out }) => {
                let m = resolve(&c, &model).await?;
                out::show(out, &m, describe)?;
            }
            Command::Model(ModelVerb::Publish { file, out }) => {
                let spec: ModelSpec = super::read_toml(&file, "model")?;
                spec.validate()
                    .map_err(|e| Invalid(format!("invalid model: {}: {e}", file.display())))?;
                let m = c.publish_model(&spec).await?;
                out::show(out, &m, |m| {
                    format!(
                        "Published model {} {}@{}\n",
                        m.id, m.model.name, m.model.revision
                    )
                })?;
            }
            Command::Certify(a) => return certify(&c, a).await,
            Command::Certs(a) => match a.verb {
                Some(CertsVerb::Review {
                    id,
                    accept,
                    reject: _,
                    reason,
                    out,
                }) => {
                    let verdict = if accept {
                        Verdict::Accept
                    } else {
                        Verdict::Reject
                    };
                    let r = c
                        .review_certification(id, &ReviewRequest { verdict, reason })
                        .await?;
                    out::show(out, &r, |r| {
                        format!("Certification {} {}\n", r.id, r.state.as_str())
                    })?;
                }
                None => {
                    let Some(model) = a.model else {
                        return Err(Invalid("certs: name the model with --model M".into()).into());
                    };
                    let m = resolve(&c, &model).await?;
                    let list = c.certifications(m.id).await?;
                    out::show(a.out, &list, |l| {
                        let mut s = format!(
                            "{}@{}: throughput per card in {}\n",
                            m.model.name, m.model.revision, l.unit
                        );
                        let mut t = Table::new(
                            "SKU STACK VERSION STATE FUNCTIONAL PERFORMANCE PRECISION THROUGHPUT CERT",
                        );
                        t.extend(l.matrix.iter().map(|x| {
                            let mut row =
                                vec![x.sku.clone(), x.stack.clone(), x.stack_version.clone()];
                            row.push(state(x.state, x.stale));
                            row.extend(statuses(x.statuses.as_ref()));
                            row.push(throughput(x.throughput));
                            row.push(x.certification.to_string());
                            row
                        }));
                        s.push_str(&t.to_string());
                        if l.matrix.is_empty() {
                            s.push_str("(not certified anywhere yet)\n");
                        }
                        if a.long {
                            for r in &l.certifications {
                                s.push_str(&record(r));
                            }
                        }
                        s
                    })?;
                }
            },
        }
        Ok(Exit::Success)
    }
}

async fn certify(c: &Client, a: Certify) -> anyhow::Result<Exit> {
    let m = resolve(c, &a.model).await?;
    let req = CertifyRequest {
        center: CenterId::new(a.center),
        sku: a.sku,
        tenant: a.tenant.map(TenantId::new),
    };
    let mut r = c.certify(m.id, &req).await?;
    if a.wait {
        note(format!(
            "certification {} running as job {}; waiting for its outcome",
            r.id, r.job
        ));
        let until = Instant::now() + Duration::from_secs(a.timeout);
        while r.state == CertState::Running {
            if Instant::now() >= until {
                note(format!("gave up waiting for certification {}", r.id));
                return Ok(Exit::WaitTimedOut);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let list = c.certifications(m.id).await?;
            r = list
                .certifications
                .into_iter()
                .find(|x| x.id == r.id)
                .with_context(|| format!("certification {} is gone from its model", r.id))?;
        }
    }
    out::show(a.out, &r, |r| record(r).trim_start().to_string())?;
    Ok(Exit::Success)
}

/// The model named by id, `name@revision`, or name (its newest revision).
async fn resolve(c: &Client, name: &str) -> anyhow::Result<ModelView> {
    if let Ok(id) = name.parse::<i64>() {
        return Ok(c.model(id).await?);
    }
    let (n, rev) = match name.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (name, None),
    };
    c.models()
        .await?
        .models
        .into_iter()
        .filter(|m| m.model.name == n && rev.is_none_or(|r| m.model.revision == r))
        .max_by_key(|m| m.id)
        .ok_or_else(|| {
            suanli_client::ClientError::Api(suanli_proto::ApiError::new(
                suanli_proto::ErrorCode::NotFound,
                format!("no model {name} this token may see"),
            ))
            .into()
        })
}

fn params(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

fn state(s: CertState, stale: bool) -> String {
    match stale {
        true => format!("{} (stale)", s.as_str()),
        false => s.as_str().to_string(),
    }
}

fn statuses(s: Option<&Statuses>) -> Vec<String> {
    let w = |x: Status| x.as_str().to_string();
    match s {
        Some(s) => vec![w(s.functional), w(s.performance), w(s.precision)],
        None => vec!["-".into(), "-".into(), "-".into()],
    }
}

fn throughput(t: Option<f64>) -> String {
    t.map_or("-".into(), |t| format!("{t:.1}"))
}

fn describe(m: &ModelView) -> String {
    let s = &m.model;
    let mut o = format!(
        "Model {} {}@{}\n  task {}, framework {}, {} parameters, licence {}\n  visible to {}; published by {} at {}\n  throughput unit {}{}\n",
        m.id,
        s.name,
        s.revision,
        s.task,
        s.framework,
        params(s.parameters),
        s.licence,
        m.owner
            .as_ref()
            .map_or("all".into(), |o| format!("tenant {o}")),
        m.published_by,
        Timestamp(m.published_at),
        s.unit,
        s.reference_throughput
            .map_or(String::new(), |r| format!(", reference {r}")),
    );
    if let Some(p) = &s.precision {
        o.push_str(&format!(
            "  precision: {} = {} within {} (partial within {})\n",
            p.metric,
            p.reference,
            p.tolerance,
            p.partial_limit()
        ));
    }
    for (stack, l) in &s.stacks {
        let how = match (&l.image, &l.script) {
            (Some(i), _) => format!("image {i}"),
            (None, Some(_)) => "launch script".to_string(),
            (None, None) => "-".to_string(),
        };
        o.push_str(&format!(
            "  {stack}: {how}, framework {}\n",
            l.framework_version
        ));
    }
    o.push_str(&format!(
        "  benchmark: {} (wall time {}s)\n",
        s.benchmark.command, s.benchmark.walltime
    ));
    o
}

fn record(r: &CertificationView) -> String {
    let mut s = format!(
        "\nCertification {} {}: {} {} {} at {}, framework {}; job {} for {}\n",
        r.id,
        state(r.state, r.stale),
        r.sku,
        r.stack,
        r.stack_version,
        r.center,
        r.framework_version,
        r.job,
        r.tenant
    );
    if let Some(o) = &r.outcome {
        let st = statuses(Some(&o.statuses));
        s.push_str(&format!(
            "  functional {}, performance {}, precision {}; throughput {}",
            st[0],
            st[1],
            st[2],
            throughput(o.throughput)
        ));
        if let Some(m) = o.mfu {
            s.push_str(&format!(", MFU {:.0}%", m * 100.0));
        }
        if let Some(m) = o.memory_gb {
            s.push_str(&format!(", memory {m} GB"));
        }
        if let Some(d) = o.precision_diff {
            s.push_str(&format!(", precision diff {d}"));
        }
        s.push_str(&format!("\n  log sha256 {}\n", o.log_sha256));
        if !o.note.is_empty() {
            s.push_str(&format!("  note: {}\n", o.note));
        }
    }
    if let Some(v) = &r.review {
        s.push_str(&format!(
            "  {} by {} at {}: {}\n",
            v.verdict.as_str(),
            v.by,
            Timestamp(v.at),
            v.reason
        ));
    }
    s
}

//! Risk flags, for the operator and supervisors: `risk` (list, after the hub evaluates its
//! rules once more), `risk ack ID --why ...` and `risk resolve ID --why ...`. See
//! docs/SUPERVISION.md, "Risk flags".

use clap::{Args, Subcommand, ValueEnum};
use suanli_proto::{EvidenceView, FlagStateRequest, FlagStateView, RiskFlagView};
use suanli_types::Timestamp;

use super::exit::Exit;
use super::output::{self as out, Format, Table};
use crate::config::ConnArgs;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Command {
    #[command(subcommand)]
    verb: Option<Verb>,
    #[command(flatten)]
    list: List,
}

#[derive(Args, Debug)]
struct List {
    /// Only flags in this state
    #[arg(long, value_enum)]
    state: Option<State>,
    /// Only flags of this rule (failed_auth, refused_reports, price_change, tenant_spend,
    /// voucher_burn, center_failures, public_service)
    #[arg(long)]
    rule: Option<String>,
    /// Show each flag's evidence and state history
    #[arg(long, short)]
    long: bool,
    #[command(flatten)]
    out: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum State {
    Open,
    Acknowledged,
    Resolved,
}

impl From<State> for FlagStateView {
    fn from(s: State) -> Self {
        match s {
            State::Open => FlagStateView::Open,
            State::Acknowledged => FlagStateView::Acknowledged,
            State::Resolved => FlagStateView::Resolved,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Acknowledge a flag: someone is looking into it
    Ack(Change),
    /// Resolve a flag: it was handled (or is no risk), and why
    Resolve(Change),
}

#[derive(Args, Debug)]
struct Change {
    /// The flag's id (the ID column of `suanli risk`)
    id: String,
    /// Why, kept with the change (1 to 500 characters)
    #[arg(long)]
    why: String,
    #[command(flatten)]
    out: Format,
}

impl Command {
    pub async fn run(self, conn: &ConnArgs) -> anyhow::Result<Exit> {
        let client = conn.client()?;
        let (state, change) = match self.verb {
            None => {
                let l = self.list;
                let flags = client
                    .risk_flags(l.state.map(Into::into), l.rule.as_deref())
                    .await?;
                out::show(l.out, &flags, |f| {
                    let mut t = Table::new("ID RULE SEVERITY SUBJECT STATE RAISED DETAIL");
                    t.extend(f.flags.iter().map(flag_row));
                    let mut s = t.to_string();
                    if l.long {
                        for f in &f.flags {
                            s.push_str(&details(f));
                        }
                    }
                    if f.flags.is_empty() {
                        s.push_str("(no flags)\n");
                    }
                    s
                })?;
                return Ok(Exit::Success);
            }
            Some(Verb::Ack(c)) => (FlagStateView::Acknowledged, c),
            Some(Verb::Resolve(c)) => (FlagStateView::Resolved, c),
        };
        let req = FlagStateRequest {
            flag: change.id,
            state,
            why: change.why,
        };
        let f = client.set_flag_state(&req).await?;
        out::show(change.out, &f, |f| {
            let mut t = Table::new("ID RULE SEVERITY SUBJECT STATE RAISED DETAIL");
            t.push(flag_row(f));
            t.to_string()
        })?;
        Ok(Exit::Success)
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn flag_row(f: &RiskFlagView) -> Vec<String> {
    vec![
        f.id.clone(),
        f.rule.clone(),
        word(&f.severity),
        f.subject.clone(),
        word(&f.state),
        Timestamp(f.raised_at).to_string(),
        f.detail.clone(),
    ]
}

/// A flag's evidence and history, indented under its id.
fn details(f: &RiskFlagView) -> String {
    let evidence: Vec<String> = f
        .evidence
        .iter()
        .map(|e| match e {
            EvidenceView::Audit { seq } => format!("audit {seq}"),
            EvidenceView::PriceRow { row } => format!("price row {row}"),
            EvidenceView::BillLine { line } => format!("bill line {line}"),
            EvidenceView::Attempt { job, attempt } => format!("job {job} attempt {attempt}"),
            EvidenceView::Programme { id } => format!("programme {id}"),
        })
        .collect();
    let mut s = format!(
        "\n{}\n  seen {} to {}; evidence ({} items): {}{}\n",
        f.id,
        Timestamp(f.first_seen),
        Timestamp(f.last_seen),
        f.count,
        evidence.join(", "),
        if f.count > f.evidence.len() as u64 {
            ", ..."
        } else {
            ""
        }
    );
    for c in &f.history {
        s.push_str(&format!(
            "  {} {} by {}: {}\n",
            Timestamp(c.at),
            word(&c.state),
            c.by,
            c.why
        ));
    }
    s
}

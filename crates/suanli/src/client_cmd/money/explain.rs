//! `suanli bill explain LINE`: a bill line traced to the site report that ended the attempt
//! (its audit entry), the price row and the placement decision.

use clap::Subcommand;
use suanli_client::Client;
use suanli_proto::BillExplainView;
use suanli_types::Timestamp;

use crate::client_cmd::output::{self as out, Format, Table, or_dash};

#[derive(Subcommand, Debug)]
pub enum BillVerb {
    /// Where a bill line came from: the report (and its audit entry), the price row and the
    /// placement decision
    Explain {
        /// The line's number (the LINE column of `suanli bill`)
        line: u64,
        #[command(flatten)]
        out: Format,
    },
}

impl BillVerb {
    pub async fn run(self, c: &Client) -> anyhow::Result<()> {
        match self {
            BillVerb::Explain { line, out } => {
                let v = c.explain_line(line).await?;
                out::show(out, &v, human)
            }
        }
    }
}

fn human(v: &BillExplainView) -> String {
    let l = &v.line;
    let mut s = format!(
        "Bill line {} ({}): job {} attempt {}, tenant {}, {} x {} at {}{}\n\n",
        l.line,
        l.month,
        l.job,
        l.attempt,
        l.tenant,
        l.cards,
        l.sku,
        l.center,
        match v.voided_by {
            Some(tx) => format!(" - VOIDED by transaction {tx}"),
            None => String::new(),
        }
    );
    for (i, step) in v.steps.iter().enumerate() {
        s.push_str(&format!("{}. {step}\n", i + 1));
    }
    if let Some(e) = &v.report_entry {
        s.push_str("\nReport (audit entry):\n");
        let mut t = Table::new("SEQ TIME PRINCIPAL ROLE ACTION REQUEST DIGEST");
        t.push(vec![
            e.seq.to_string(),
            Timestamp(e.time).to_string(),
            e.principal.clone(),
            or_dash(e.role.clone()),
            e.action.clone(),
            e.request_id.clone(),
            e.request_digest.clone(),
        ]);
        s.push_str(&t.indented());
    }
    if let Some(p) = &v.price {
        s.push_str("\nPrice row:\n");
        let mut t = Table::new("ROW CENTER SKU YUAN/CARD-HOUR EFFECTIVE-FROM");
        t.push(vec![
            p.id.to_string(),
            p.center.to_string(),
            p.sku.clone(),
            p.price_per_card_hour.to_string(),
            p.effective_from.to_string(),
        ]);
        s.push_str(&t.indented());
    }
    if let Some(a) = &v.attempt {
        s.push_str("\nAttempt:\n");
        let mut t = Table::new("ATTEMPT CENTER PLACED STARTED ENDED OUTCOME CARD-S");
        t.push(vec![
            a.attempt.to_string(),
            a.center.to_string(),
            a.placed_at.to_string(),
            or_dash(a.started_at),
            or_dash(a.ended_at),
            or_dash(a.outcome.clone()),
            a.card_seconds.to_string(),
        ]);
        s.push_str(&t.indented());
    }
    if let Some(p) = &v.placement {
        s.push_str(&format!(
            "\nPlacement decision ({}, at {}): chose {} {}\n",
            p.rule, p.at, p.chosen.center, p.chosen.sku
        ));
        let mut t = Table::new("CENTER SKU YUAN/CARD-HOUR");
        for c in std::iter::once(&p.chosen).chain(&p.others) {
            t.push(vec![
                c.center.to_string(),
                c.sku.clone(),
                c.price_per_card_hour.to_string(),
            ]);
        }
        s.push_str(&t.indented());
    }
    s
}

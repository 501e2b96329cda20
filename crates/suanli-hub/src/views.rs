//! Conversions between the engine's pure state (core, lifecycle) and the wire types of the API
//! and the agent protocol (`suanli-proto`).

use std::collections::BTreeMap;

use suanli_core::{Candidate, Placement, Policy, Quote, TenantPolicy};
use suanli_lifecycle::{Describe, Ended, JobView, Report};
use suanli_proto::{
    Assignment, AttemptRef, CandidateView, EventKind, NodeCards, Outcome, PlacementView,
    RejectionView, TenantPolicyView,
};
use suanli_store::{JobRecord, LogRow, LogStream};
use suanli_types::Timestamp;

/// How the policy chose, for the placement record.
pub fn rule(policy: Policy) -> &'static str {
    match policy {
        Policy::Suanli => {
            "suanli: lowest score = (cost / cheapest - 1) + wait / wall time + 0.25 x (TFLOPS / least - 1); \
             fair share between tenants, backfill, preemption of spot and borrowed work"
        }
        Policy::Fifo => "fifo: strict FIFO, first center in id order that fits",
        Policy::Cheapest => {
            "cheapest: lowest cost per hour among centers that fit now, then most free cards"
        }
        Policy::LeastLoaded => "least-loaded: the pool with the most free capacity",
    }
}

/// Writes a placement into the job record as its API view, JSON.
pub fn describe(policy: Policy) -> Describe {
    let rule = rule(policy);
    Box::new(move |p, attempt| serde_json::to_string(&placement_view(p, attempt, rule)).ok())
}

/// When the current attempt was placed, from the stored decision (its update time without one).
pub fn placed_at(rec: &JobRecord) -> Timestamp {
    rec.placement
        .as_deref()
        .and_then(|p| serde_json::from_str::<PlacementView>(p).ok())
        .map_or(rec.updated_at, |v| v.at)
}

pub fn candidate(c: &Candidate) -> CandidateView {
    CandidateView {
        center: c.center.clone(),
        sku: c.sku.clone(),
        price_per_card_hour: c.price_per_card_hour,
        cost_per_hour: c.cost_per_hour,
        cost_total: c.cost_total,
        free_cards: c.free_cards,
        expected_start: c.expected_start,
        score_milli: c.score_milli,
        gross: None,
        subsidy: None,
        payable: None,
        programme: None,
    }
}

fn rejection(r: &suanli_core::Rejection) -> RejectionView {
    RejectionView {
        center: r.center.clone(),
        reason: r.reason.clone(),
    }
}

pub fn rejections(rs: &[suanli_core::Rejection]) -> Vec<RejectionView> {
    rs.iter().map(rejection).collect()
}

pub fn placement_view(p: &Placement, attempt: u32, rule: &str) -> PlacementView {
    PlacementView {
        attempt,
        at: p.decision.at,
        center: p.alloc.center.clone(),
        sku: p.alloc.sku.clone(),
        nodes: p
            .alloc
            .nodes
            .iter()
            .map(|n| NodeCards {
                node: n.node.clone(),
                cards: n.cards,
            })
            .collect(),
        chosen: candidate(&p.decision.chosen),
        others: p.decision.others.iter().map(candidate).collect(),
        rejected: rejections(&p.decision.rejected),
        rule: rule.to_string(),
    }
}

/// The candidates and rejections of a quote (money per candidate filled in by `money`).
pub fn quote_view(
    q: &Quote,
    at: Timestamp,
    walltime_secs: u64,
    money: impl Fn(&Candidate) -> Option<suanli_money::Quote>,
) -> suanli_proto::QuoteView {
    suanli_proto::QuoteView {
        at,
        walltime_secs,
        candidates: q
            .candidates
            .iter()
            .map(|c| {
                let mut v = candidate(c);
                if let Some(m) = money(c) {
                    v.gross = Some(m.gross);
                    v.subsidy = Some(m.subsidy);
                    v.payable = Some(m.payable);
                    v.programme = m.programme.map(|p| p.to_string());
                }
                v
            })
            .collect(),
        rejected: rejections(&q.rejected),
    }
}

/// A placed attempt as its site is handed it.
pub fn assignment(j: &JobView<'_>) -> Assignment {
    let rec = j.rec;
    Assignment {
        job: rec.id,
        attempt: rec.attempt,
        tenant: rec.tenant.clone(),
        spec: rec.spec.clone(),
        sku: rec.sku.clone().unwrap_or_default(),
        nodes: rec
            .alloc
            .iter()
            .map(|n| NodeCards {
                node: n.node.clone(),
                cards: n.cards,
            })
            .collect(),
        lease_expires_at: j.lease.unwrap_or_default(),
    }
}

pub fn attempt_ref((job, attempt): (suanli_types::JobId, u32)) -> AttemptRef {
    AttemptRef { job, attempt }
}

pub fn attempt_key(r: &AttemptRef) -> (suanli_types::JobId, u32) {
    (r.job, r.attempt)
}

pub fn log_row(seq: u64, stream: suanli_proto::Stream, data: String) -> LogRow {
    LogRow {
        seq,
        stream: match stream {
            suanli_proto::Stream::Stdout => LogStream::Stdout,
            suanli_proto::Stream::Stderr => LogStream::Stderr,
        },
        data,
    }
}

/// A site's report as the lifecycle takes it; `None` for a log chunk.
pub fn report(kind: &EventKind) -> Option<Report> {
    match kind {
        EventKind::Log { .. } => None,
        EventKind::Started { at } => Some(Report::Started { at: *at }),
        EventKind::Finished {
            outcome,
            exit_code,
            started_at,
            ended_at,
            card_seconds,
            log_chunks,
            message,
        } => Some(Report::Finished {
            outcome: match outcome {
                Outcome::Succeeded => Ended::Succeeded,
                Outcome::Failed => Ended::Failed,
                Outcome::TimedOut => Ended::TimedOut,
                Outcome::Killed => Ended::Killed,
            },
            exit_code: *exit_code,
            started_at: *started_at,
            ended_at: *ended_at,
            card_seconds: *card_seconds,
            log_chunks: *log_chunks,
            message: message.clone(),
        }),
    }
}

/// The core's view of a stored tenant policy.
pub fn share_policy(v: &TenantPolicyView) -> TenantPolicy {
    TenantPolicy {
        weight: v.weight,
        quotas: v
            .quotas
            .iter()
            .map(|(family, q)| {
                (
                    family.clone(),
                    suanli_core::Quota {
                        nominal: q.nominal,
                        borrow_limit: q.borrow_limit,
                    },
                )
            })
            .collect(),
        pays_bp: BTreeMap::new(),
    }
}

//! Conversions between the engine's pure state (core, lifecycle) and the wire types of the API
//! and the agent protocol (`suanli-proto`).

use std::collections::BTreeMap;

use suanli_core::{Candidate, Placement, Policy, Quote, TenantPolicy};
use suanli_lifecycle::{Describe, Ended, JobView, Report};
use suanli_proto::{
    Assignment, AttemptRef, CandidateView, EventKind, NodeCards, Outcome, PlacementView, QuotaView,
    RejectionView, TenantPolicyView,
};
use suanli_store::{JobRecord, LogRow, LogStream};
use suanli_types::record::{NodeShare, PlacementCandidate, PlacementDecision, PlacementRejection};
use suanli_types::{CardQuota, SharePolicy, Timestamp};

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
        Policy::Fastest => "fastest: the free pool whose chip runs the job fastest",
        Policy::Slurm => {
            "slurm: multifactor priority (age, fair share, size), EASY backfill, \
             the center with the earliest expected start"
        }
        Policy::Tiresias => {
            "tiresias: least attained service (cards x time run) in discrete levels, FIFO \
             within a level, preempting jobs of a lower level"
        }
    }
}

/// Writes a placement into the job record: the decision, with the rule the policy scores by.
pub fn describe(policy: Policy) -> Describe {
    let rule = rule(policy);
    Box::new(move |p, attempt| Some(decision(p, attempt, rule)))
}

/// When the current attempt was placed, from the stored decision (its update time without one).
pub fn placed_at(rec: &JobRecord) -> Timestamp {
    rec.placement.as_ref().map_or(rec.updated_at, |p| p.at)
}

/// The core's placement of an attempt as the job record keeps it.
pub fn decision(p: &Placement, attempt: u32, rule: &str) -> PlacementDecision {
    PlacementDecision {
        attempt,
        at: p.decision.at,
        center: p.alloc.center.clone(),
        sku: p.alloc.sku.clone(),
        nodes: p
            .alloc
            .nodes
            .iter()
            .map(|n| NodeShare {
                node: n.node.clone(),
                cards: n.cards,
            })
            .collect(),
        chosen: scored(&p.decision.chosen),
        others: p.decision.others.iter().map(scored).collect(),
        rejected: p.decision.rejected.iter().map(rejected).collect(),
        rule: rule.to_string(),
    }
}

fn scored(c: &Candidate) -> PlacementCandidate {
    PlacementCandidate {
        center: c.center.clone(),
        sku: c.sku.clone(),
        price_per_card_hour: c.price_per_card_hour,
        cost_per_hour: c.cost_per_hour,
        cost_total: c.cost_total,
        free_cards: c.free_cards,
        expected_start: c.expected_start,
        score_milli: c.score_milli,
        expected_run_secs: c.expected_run_secs,
    }
}

fn rejected(r: &suanli_core::Rejection) -> PlacementRejection {
    PlacementRejection {
        center: r.center.clone(),
        reason: r.reason.clone(),
    }
}

/// A stored placement decision as the API shows it.
pub fn placement_view(p: &PlacementDecision) -> PlacementView {
    PlacementView {
        attempt: p.attempt,
        at: p.at,
        center: p.center.clone(),
        sku: p.sku.clone(),
        nodes: p.nodes.iter().map(node_cards).collect(),
        chosen: candidate_view(&p.chosen),
        others: p.others.iter().map(candidate_view).collect(),
        rejected: p.rejected.iter().map(rejection_view).collect(),
        rule: p.rule.clone(),
    }
}

fn candidate_view(c: &PlacementCandidate) -> CandidateView {
    CandidateView {
        center: c.center.clone(),
        sku: c.sku.clone(),
        price_per_card_hour: c.price_per_card_hour,
        cost_per_hour: c.cost_per_hour,
        cost_total: c.cost_total,
        free_cards: c.free_cards,
        expected_start: c.expected_start,
        score_milli: c.score_milli,
        expected_run_secs: c.expected_run_secs,
        gross: None,
        subsidy: None,
        payable: None,
        programme: None,
    }
}

fn rejection_view(r: &PlacementRejection) -> RejectionView {
    RejectionView {
        center: r.center.clone(),
        reason: r.reason.clone(),
    }
}

/// The core's rejections as the API shows them.
pub fn rejections(rs: &[suanli_core::Rejection]) -> Vec<RejectionView> {
    rs.iter().map(|r| rejection_view(&rejected(r))).collect()
}

fn node_cards(n: &NodeShare) -> NodeCards {
    NodeCards {
        node: n.node.clone(),
        cards: n.cards,
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
                let mut v = candidate_view(&scored(c));
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
        spec: with_array_env(rec),
        sku: rec.sku.clone().unwrap_or_default(),
        nodes: rec.alloc.iter().map(node_cards).collect(),
        lease_expires_at: j.lease.unwrap_or_default(),
        datasets: Vec::new(),
    }
}

/// The job's spec as its site runs it: a task of an array gets the variables sbatch sets for one
/// (`SLURM_ARRAY_JOB_ID`, `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`, `_MIN`, `_MAX`), on
/// every backend, over any of the same name in the spec.
pub fn with_array_env(rec: &JobRecord) -> suanli_types::JobSpec {
    let mut spec = rec.spec.clone();
    if let Some(task) = rec.array {
        let array = spec.array_spec();
        let (count, min, max) = array.as_ref().map_or((1, task.task, task.task), |a| {
            (a.tasks.len(), a.min(), a.max())
        });
        for (k, v) in [
            ("SLURM_ARRAY_JOB_ID", task.job.to_string()),
            ("SLURM_ARRAY_TASK_ID", task.task.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", count.to_string()),
            ("SLURM_ARRAY_TASK_MIN", min.to_string()),
            ("SLURM_ARRAY_TASK_MAX", max.to_string()),
        ] {
            spec.env.insert(k.to_string(), v);
        }
    }
    spec
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

/// A site's report as the lifecycle takes it, carried by request `request`; `None` for a log
/// chunk.
pub fn report(kind: &EventKind, request: Option<&str>) -> Option<Report> {
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
            request: request.map(str::to_string),
        }),
    }
}

/// The core's view of a tenant's share policy.
pub fn share_policy(p: &SharePolicy) -> TenantPolicy {
    TenantPolicy {
        weight: p.weight,
        quotas: p
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

/// A tenant's share policy as the operator sets it through the API.
pub fn share(v: &TenantPolicyView) -> SharePolicy {
    let quota = |q: &QuotaView| CardQuota {
        nominal: q.nominal,
        borrow_limit: q.borrow_limit,
    };
    SharePolicy {
        weight: v.weight,
        quotas: v
            .quotas
            .iter()
            .map(|(f, q)| (f.clone(), quota(q)))
            .collect(),
        public_service: v.public_service,
    }
}

/// A tenant's share policy as the API shows it.
pub fn policy_view(p: &SharePolicy) -> TenantPolicyView {
    let quota = |q: &CardQuota| QuotaView {
        nominal: q.nominal,
        borrow_limit: q.borrow_limit,
    };
    TenantPolicyView {
        weight: p.weight,
        quotas: p
            .quotas
            .iter()
            .map(|(f, q)| (f.clone(), quota(q)))
            .collect(),
        public_service: p.public_service,
    }
}

#[cfg(test)]
mod tests {
    use suanli_types::{CenterId, Money};

    use super::*;

    /// Stores used to keep the API view of a placement as JSON: the typed decision has the same
    /// JSON, so those rows still read, and the API shows what it showed.
    #[test]
    fn a_decision_has_the_json_of_its_view() {
        let candidate = |center: &str| PlacementCandidate {
            center: CenterId::new(center),
            sku: "910B".into(),
            price_per_card_hour: Money::from_yuan(2),
            cost_per_hour: Money::from_yuan(16),
            cost_total: Money::from_yuan(32),
            free_cards: 16,
            expected_start: Timestamp(5_000),
            score_milli: 420,
            expected_run_secs: None,
        };
        let d = PlacementDecision {
            attempt: 2,
            at: Timestamp(4_000),
            center: CenterId::new("a"),
            sku: "910B".into(),
            nodes: vec![NodeShare {
                node: "n0".into(),
                cards: 8,
            }],
            chosen: candidate("a"),
            others: vec![candidate("b")],
            rejected: vec![PlacementRejection {
                center: CenterId::new("c"),
                reason: "offline".into(),
            }],
            rule: rule(Policy::Fifo).into(),
        };
        let view = serde_json::to_value(placement_view(&d)).unwrap();
        assert_eq!(serde_json::to_value(&d).unwrap(), view);
        assert_eq!(
            serde_json::from_value::<PlacementDecision>(view).unwrap(),
            d
        );
    }
}

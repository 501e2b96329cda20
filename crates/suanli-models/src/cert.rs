//! Certification records: a benchmark run of one model revision on one chip SKU with one stack
//! version, its result judged per dimension, and its review.
//!
//! A record is made of three parts written once each, in order: the request (when the
//! benchmark job is submitted), the outcome (when the job has ended), and the review. Its state
//! follows from which parts it has: running, pending, then accepted or rejected. A record is
//! stale when the stack version of the center it ran at is no longer the one it was measured
//! with; a stale record cannot be accepted (run it again).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use suanli_types::{CenterId, JobId, TenantId, Timestamp};

use crate::model::ModelSpec;
use crate::result::{BenchResult, parse_result};

/// One dimension's verdict (Ascend ModelZoo's OK / POK / NOK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Nok,
    Partial,
    Ok,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Partial => "partial",
            Status::Nok => "NOK",
        }
    }
}

/// The verdict per dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Statuses {
    /// Loads and runs to a result: OK; partial when operators fell back off the card; NOK when
    /// the job failed or printed no valid result.
    pub functional: Status,
    /// Throughput per card against the model's reference: OK from 80%, partial from 50%, NOK
    /// below (or nothing measured); partial when the model states no reference.
    pub performance: Status,
    /// The precision value against the model's rule: OK within `tolerance`, partial within
    /// `partial_tolerance`, NOK beyond or not reported; partial when the model states no rule.
    pub precision: Status,
}

impl Statuses {
    const NOK: Statuses = Statuses {
        functional: Status::Nok,
        performance: Status::Nok,
        precision: Status::Nok,
    };

    /// The weakest of the three (a model is official only when all three are OK).
    pub fn overall(&self) -> Status {
        self.functional.min(self.performance).min(self.precision)
    }
}

/// Performance is OK from this share of the reference throughput.
pub const PERF_OK: f64 = 0.8;
/// Performance is partial from this share.
pub const PERF_PARTIAL: f64 = 0.5;

/// What was asked for: the model revision, where, on what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRequest {
    pub model: i64,
    pub center: CenterId,
    pub sku: String,
    pub stack: String,
    /// The center's version of `stack` when the benchmark was submitted.
    pub stack_version: String,
    /// The model's framework version on `stack`.
    pub framework_version: String,
    /// The benchmark job.
    pub job: JobId,
    /// The tenant the job ran (and was billed) for.
    pub tenant: TenantId,
    pub requested_by: String,
    pub requested_at: Timestamp,
}

/// The measured result, judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    pub statuses: Statuses,
    /// Throughput per card in the model's unit.
    pub throughput: Option<f64>,
    pub mfu: Option<f64>,
    pub memory_gb: Option<f64>,
    /// The precision value reported.
    pub precision_value: Option<f64>,
    /// `|value - reference|` under the model's rule.
    pub precision_diff: Option<f64>,
    /// The framework version the benchmark reported, if it did.
    pub framework_version: Option<String>,
    /// SHA-256 of the benchmark's standard output, hex.
    pub log_sha256: String,
    /// Why a dimension is not OK, in words.
    pub note: String,
}

/// How the benchmark job ended, as the hub saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobEnd<'a> {
    /// It exited 0.
    pub succeeded: bool,
    /// The job's state and reason, for the note when it did not succeed.
    pub detail: String,
    /// Where it ran.
    pub center: Option<&'a CenterId>,
    /// The end of its standard output (at least the last line).
    pub stdout: &'a str,
    /// SHA-256 of its whole standard output, hex ([`sha256_hex`], or streamed).
    pub log_sha256: String,
}

/// The SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Judges a benchmark's end against the model: the outcome to record.
pub fn judge(model: &ModelSpec, req: &CertRequest, end: &JobEnd) -> Outcome {
    let log_sha256 = end.log_sha256.clone();
    let failed = |note: String| Outcome {
        statuses: Statuses::NOK,
        throughput: None,
        mfu: None,
        memory_gb: None,
        precision_value: None,
        precision_diff: None,
        framework_version: None,
        log_sha256: log_sha256.clone(),
        note,
    };
    if !end.succeeded {
        return failed(format!("the benchmark did not succeed: {}", end.detail));
    }
    if end.center != Some(&req.center) {
        return failed(format!(
            "the benchmark ran at {}, not at {}: nothing measured there",
            end.center.map_or("no center", |c| c.as_str()),
            req.center
        ));
    }
    let r: BenchResult = match parse_result(end.stdout, &model.unit) {
        Ok(r) => r,
        Err(e) => return failed(format!("no result: {e}")),
    };
    let mut notes = Vec::new();
    let functional = match r.fallback_ops {
        Some(n) if n > 0 => {
            notes.push(format!("{n} operators fell back off the card"));
            Status::Partial
        }
        _ => Status::Ok,
    };
    let performance = match model.reference_throughput {
        None => {
            notes.push("the model states no reference throughput".to_string());
            Status::Partial
        }
        Some(reference) => {
            let share = r.throughput / reference;
            if share >= PERF_OK {
                Status::Ok
            } else {
                notes.push(format!(
                    "throughput is {:.0}% of the reference",
                    share * 100.0
                ));
                if share >= PERF_PARTIAL {
                    Status::Partial
                } else {
                    Status::Nok
                }
            }
        }
    };
    let (precision, diff) = match (&model.precision, r.precision) {
        (None, _) => {
            notes.push("the model states no precision rule".to_string());
            (Status::Partial, None)
        }
        (Some(_), None) => {
            notes.push("the benchmark reported no precision value".to_string());
            (Status::Nok, None)
        }
        (Some(rule), Some(v)) => {
            let d = (v - rule.reference).abs();
            let s = if d <= rule.tolerance {
                Status::Ok
            } else if d <= rule.partial_limit() {
                Status::Partial
            } else {
                Status::Nok
            };
            if s != Status::Ok {
                notes.push(format!(
                    "{} differs from the reference by {d} (tolerance {})",
                    rule.metric, rule.tolerance
                ));
            }
            (s, Some(d))
        }
    };
    if let Some(v) = &r.framework_version
        && *v != req.framework_version
    {
        notes.push(format!(
            "the benchmark saw framework {v}, the model names {}",
            req.framework_version
        ));
    }
    Outcome {
        statuses: Statuses {
            functional,
            performance,
            precision,
        },
        throughput: Some(r.throughput),
        mfu: r.mfu,
        memory_gb: r.memory_gb,
        precision_value: r.precision,
        precision_diff: diff,
        framework_version: r.framework_version,
        log_sha256,
        note: notes.join("; "),
    }
}

/// A reviewer's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accept,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "accept" => Some(Verdict::Accept),
            "reject" => Some(Verdict::Reject),
            _ => None,
        }
    }
}

/// A review, written once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub verdict: Verdict,
    pub by: String,
    pub reason: String,
    pub at: Timestamp,
}

/// A record's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CertState {
    /// The benchmark job has not ended.
    Running,
    /// Measured, waiting for review.
    Pending,
    Accepted,
    Rejected,
}

impl CertState {
    pub fn as_str(self) -> &'static str {
        match self {
            CertState::Running => "running",
            CertState::Pending => "pending",
            CertState::Accepted => "accepted",
            CertState::Rejected => "rejected",
        }
    }
}

/// A certification record as it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Certification {
    pub id: i64,
    pub request: CertRequest,
    /// Recorded when the job ended, and when.
    pub outcome: Option<(Outcome, Timestamp)>,
    pub review: Option<Review>,
}

/// Why a record cannot change so.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certification {0} is still running: nothing to review yet")]
    NotMeasured(i64),
    #[error("certification {id} was {state} already")]
    Decided { id: i64, state: &'static str },
    #[error("certification {0} has its outcome already")]
    Measured(i64),
    #[error(
        "certification {id} is stale: measured with {stack} {measured}, the center runs {current}; certify again"
    )]
    Stale {
        id: i64,
        stack: String,
        measured: String,
        current: String,
    },
    #[error("reason: say why, in 1 to 500 characters")]
    Reason,
}

impl Certification {
    pub fn new(id: i64, request: CertRequest) -> Certification {
        Certification {
            id,
            request,
            outcome: None,
            review: None,
        }
    }

    pub fn state(&self) -> CertState {
        match (&self.outcome, &self.review) {
            (None, _) => CertState::Running,
            (Some(_), None) => CertState::Pending,
            (Some(_), Some(r)) if r.verdict == Verdict::Accept => CertState::Accepted,
            (Some(_), Some(_)) => CertState::Rejected,
        }
    }

    /// Is the record stale, given the center's current version of the record's stack (`None`:
    /// the center no longer offers it, or is gone)?
    pub fn is_stale(&self, current: Option<&str>) -> bool {
        current != Some(self.request.stack_version.as_str())
    }

    /// The outcome to record now; refused if one is recorded already.
    pub fn conclude(&self, outcome: Outcome) -> Result<Outcome, CertError> {
        match self.outcome {
            Some(_) => Err(CertError::Measured(self.id)),
            None => Ok(outcome),
        }
    }

    pub fn apply_outcome(&mut self, outcome: Outcome, at: Timestamp) {
        self.outcome = Some((outcome, at));
    }

    /// The review to record: only of a pending record; an accept only while it is not stale.
    /// `current` is the center's version of the record's stack now.
    pub fn review(
        &self,
        verdict: Verdict,
        by: &str,
        reason: &str,
        at: Timestamp,
        current: Option<&str>,
    ) -> Result<Review, CertError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(CertError::Reason);
        }
        match self.state() {
            CertState::Running => return Err(CertError::NotMeasured(self.id)),
            CertState::Pending => {}
            s => {
                return Err(CertError::Decided {
                    id: self.id,
                    state: s.as_str(),
                });
            }
        }
        if verdict == Verdict::Accept && self.is_stale(current) {
            return Err(CertError::Stale {
                id: self.id,
                stack: self.request.stack.clone(),
                measured: self.request.stack_version.clone(),
                current: current.unwrap_or("nothing").to_string(),
            });
        }
        Ok(Review {
            verdict,
            by: by.to_string(),
            reason: reason.to_string(),
            at,
        })
    }

    pub fn apply_review(&mut self, review: Review) {
        self.review = Some(review);
    }

    /// Accepted, functional OK, and measured with the stack version the center runs now: a
    /// model may be placed on this SKU and stack version.
    pub fn certifies(&self, current: Option<&str>) -> bool {
        self.state() == CertState::Accepted
            && !self.is_stale(current)
            && self
                .outcome
                .as_ref()
                .is_some_and(|(o, _)| o.statuses.functional == Status::Ok)
    }
}

/// One cell of the adaptation matrix: a model on a chip SKU with a stack version.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub sku: String,
    pub stack: String,
    pub stack_version: String,
    /// The record the cell shows: the newest accepted one not stale, else the newest.
    pub certification: i64,
    pub state: CertState,
    pub stale: bool,
    pub statuses: Option<Statuses>,
    pub throughput: Option<f64>,
}

/// The adaptation matrix of one model's records: a cell per (SKU, stack, stack version), by
/// SKU. `current(center, stack)` is a center's version of a stack now.
pub fn matrix<'a>(
    certs: &'a [Certification],
    current: impl Fn(&CenterId, &str) -> Option<&'a str>,
) -> Vec<Cell> {
    let mut cells: std::collections::BTreeMap<(String, String, String), Cell> = Default::default();
    for c in certs {
        let r = &c.request;
        let stale = c.is_stale(current(&r.center, &r.stack));
        let cell = Cell {
            sku: r.sku.clone(),
            stack: r.stack.clone(),
            stack_version: r.stack_version.clone(),
            certification: c.id,
            state: c.state(),
            stale,
            statuses: c.outcome.as_ref().map(|(o, _)| o.statuses),
            throughput: c.outcome.as_ref().and_then(|(o, _)| o.throughput),
        };
        let key = (r.sku.clone(), r.stack.clone(), r.stack_version.clone());
        let rank = |x: &Cell| (x.state == CertState::Accepted && !x.stale, x.certification);
        match cells.get(&key) {
            Some(old) if rank(old) > rank(&cell) => {}
            _ => {
                cells.insert(key, cell);
            }
        }
    }
    cells.into_values().collect()
}

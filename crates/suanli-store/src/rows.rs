//! Row decoding shared by the SQLite and PostgreSQL stores: both schemas use the same column
//! names and types (TEXT, BIGINT/INTEGER), so one definition serves both row types. Typed fields
//! kept as JSON text (a job's spec, allocation and placement decision, a tenant's policy) are
//! encoded and decoded here, and nowhere else.

use std::fmt::Display;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use suanli_types::{JobState, Timestamp};

use crate::{StoreError, StoreResult};

pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

pub(crate) fn parse<T: FromStr>(what: &'static str, s: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| corrupt(what, e))
}

/// A step of a certification as stored.
pub(crate) enum CertStep {
    Outcome(suanli_models::Outcome, Timestamp),
    Review(suanli_models::Review),
}

/// `v` as the JSON text of column `what`.
pub(crate) fn to_json<T: Serialize>(what: &'static str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| corrupt(what, e))
}

/// The JSON text `s` of column `what` in the row whose key is `key`, decoded.
pub(crate) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    key: impl Display,
    s: &str,
) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, format!("row {key}: {e}")))
}

/// The `WHERE` condition of the jobs a restarted hub takes back: every unfinished state (from
/// [`JobState::unfinished`]), and cancelled jobs whose attempt still holds a lease.
pub(crate) fn unfinished_jobs_condition() -> String {
    let states: Vec<String> = JobState::unfinished()
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    format!(
        "state IN ({}) OR (state = '{}' AND lease_expires_at IS NOT NULL)",
        states.join(", "),
        JobState::Cancelled.as_str()
    )
}

pub(crate) fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

/// The columns [`job_from_row`](row_decoders) reads, in `SELECT` order.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, submitted_by, spec, state, attempt, center, sku, \
     alloc, placement, lease_expires_at, submitted_at, started_at, ended_at, exit_code, reason, \
     card_seconds, updated_at, submitted_by_id, held, array_job_id, array_task_id";

/// Defines the row decoders (`job_from_row`, `tenant_from_row`, `attempt_from_row`, ...) for one
/// sqlx row type (the generic version would need a `Decode + Type` bound per column type for
/// each database).
macro_rules! row_decoders {
    ($row:ty) => {
        fn job_from_row(r: &$row) -> $crate::StoreResult<$crate::JobRecord> {
            use ::sqlx::Row as _;
            use ::suanli_types::{CenterId, JobId, JobSpec, TenantId, Timestamp};
            use $crate::rows::{from_json, opt_ts, parse};
            let id = JobId(r.try_get("id")?);
            let spec: JobSpec = from_json("jobs.spec", id, r.try_get("spec")?)?;
            let alloc: Vec<$crate::NodeShare> = match r.try_get::<Option<&str>, _>("alloc")? {
                Some(s) => from_json("jobs.alloc", id, s)?,
                None => Vec::new(),
            };
            let placement = match r.try_get::<Option<&str>, _>("placement")? {
                Some(s) => Some(from_json("jobs.placement", id, s)?),
                None => None,
            };
            Ok($crate::JobRecord {
                id,
                tenant: TenantId(r.try_get("tenant")?),
                submitted_by: r.try_get("submitted_by")?,
                submitted_by_id: r.try_get("submitted_by_id")?,
                spec,
                state: parse("jobs.state", r.try_get::<&str, _>("state")?)?,
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                center: r.try_get::<Option<String>, _>("center")?.map(CenterId),
                sku: r.try_get("sku")?,
                alloc,
                placement,
                lease_expires_at: opt_ts(r.try_get("lease_expires_at")?),
                submitted_at: Timestamp(r.try_get("submitted_at")?),
                started_at: opt_ts(r.try_get("started_at")?),
                ended_at: opt_ts(r.try_get("ended_at")?),
                exit_code: r.try_get::<Option<i64>, _>("exit_code")?.map(|c| c as i32),
                reason: r.try_get("reason")?,
                card_seconds: r.try_get::<i64, _>("card_seconds")? as u64,
                updated_at: Timestamp(r.try_get("updated_at")?),
                held: r.try_get("held")?,
                array: match (
                    r.try_get::<Option<i64>, _>("array_job_id")?,
                    r.try_get::<Option<i64>, _>("array_task_id")?,
                ) {
                    (Some(job), Some(task)) => Some(::suanli_types::record::ArrayTask {
                        job: JobId(job),
                        task: task as u32,
                    }),
                    _ => None,
                },
            })
        }

        fn tenant_from_row(r: &$row) -> $crate::StoreResult<$crate::TenantRecord> {
            use ::sqlx::Row as _;
            Ok($crate::TenantRecord {
                id: ::suanli_types::TenantId(r.try_get("id")?),
                name: r.try_get("name")?,
                category: $crate::rows::parse::<::suanli_types::TenantCategory>(
                    "tenants.category",
                    r.try_get::<&str, _>("category")?,
                )?,
                city: r.try_get("city")?,
            })
        }

        fn token_from_row(r: &$row) -> $crate::StoreResult<$crate::TokenRecord> {
            use ::sqlx::Row as _;
            use $crate::rows::opt_ts;
            Ok($crate::TokenRecord {
                principal: $crate::Principal {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    role: $crate::rows::parse("tokens.role", r.try_get::<&str, _>("role")?)?,
                    tenant: r
                        .try_get::<Option<String>, _>("tenant")?
                        .map(::suanli_types::TenantId),
                    center: r
                        .try_get::<Option<String>, _>("center")?
                        .map(::suanli_types::CenterId),
                },
                created_at: ::suanli_types::Timestamp(r.try_get("created_at")?),
                expires_at: opt_ts(r.try_get("expires_at")?),
                revoked_at: opt_ts(r.try_get("revoked_at")?),
                last_used_at: opt_ts(r.try_get("last_used_at")?),
            })
        }

        fn event_from_row(r: &$row) -> $crate::StoreResult<$crate::JobEvent> {
            use ::sqlx::Row as _;
            Ok($crate::JobEvent {
                at: ::suanli_types::Timestamp(r.try_get("at")?),
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                state: $crate::rows::parse("job_events.state", r.try_get::<&str, _>("state")?)?,
                message: r.try_get("message")?,
            })
        }

        fn attempt_from_row(r: &$row) -> $crate::StoreResult<$crate::AttemptRecord> {
            use ::sqlx::Row as _;
            use ::suanli_types::{CenterId, JobId, Timestamp};
            use $crate::rows::{opt_ts, parse};
            Ok($crate::AttemptRecord {
                job: JobId(r.try_get("job_id")?),
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                center: CenterId(r.try_get("center")?),
                sku: r.try_get("sku")?,
                cards: r.try_get::<i64, _>("cards")? as u32,
                placed_at: Timestamp(r.try_get("placed_at")?),
                started_at: opt_ts(r.try_get("started_at")?),
                ended_at: opt_ts(r.try_get("ended_at")?),
                outcome: r
                    .try_get::<Option<&str>, _>("outcome")?
                    .map(|o| parse("attempts.outcome", o))
                    .transpose()?,
                exit_code: r.try_get::<Option<i64>, _>("exit_code")?.map(|c| c as i32),
                card_seconds: r.try_get::<i64, _>("card_seconds")? as u64,
                log_chunks: r.try_get::<Option<i64>, _>("log_chunks")?.map(|n| n as u64),
            })
        }

        /// A `(state, n)` row of the job counts.
        fn state_count_from_row(r: &$row) -> $crate::StoreResult<(::suanli_types::JobState, u64)> {
            use ::sqlx::Row as _;
            let state = $crate::rows::parse("jobs.state", r.try_get::<&str, _>("state")?)?;
            Ok((state, r.try_get::<i64, _>("n")? as u64))
        }

        fn policy_from_row(
            r: &$row,
        ) -> $crate::StoreResult<(::suanli_types::TenantId, ::suanli_types::SharePolicy)> {
            use ::sqlx::Row as _;
            let id: String = r.try_get("id")?;
            let policy = $crate::rows::from_json("tenants.policy", &id, r.try_get("policy")?)?;
            Ok((::suanli_types::TenantId(id), policy))
        }

        fn audit_from_row(r: &$row) -> $crate::StoreResult<::suanli_audit::Record> {
            use ::sqlx::Row as _;
            $crate::rows::audit_record(
                r.try_get("seq")?,
                r.try_get("at")?,
                r.try_get("principal")?,
                r.try_get("role")?,
                r.try_get("tenant")?,
                r.try_get("source")?,
                r.try_get("request_id")?,
                r.try_get("action")?,
                r.try_get("target")?,
                r.try_get("outcome")?,
                r.try_get("status")?,
                r.try_get("why")?,
                r.try_get("request_digest")?,
                r.try_get("prev")?,
                r.try_get("leaf")?,
            )
        }

        fn risk_flag_from_row(r: &$row) -> $crate::StoreResult<$crate::RiskFlagRecord> {
            use ::sqlx::Row as _;
            let id: String = r.try_get("id")?;
            let severity: String = r.try_get("severity")?;
            let count: i64 = r.try_get("count")?;
            let flag = ::suanli_audit::risk::Flag {
                severity: $crate::rows::from_json(
                    "risk_flags.severity",
                    &id,
                    &format!("{severity:?}"),
                )?,
                evidence: $crate::rows::from_json(
                    "risk_flags.evidence",
                    &id,
                    r.try_get("evidence")?,
                )?,
                rule: r.try_get("rule")?,
                subject: r.try_get("subject")?,
                detail: r.try_get("detail")?,
                count: count.max(0) as u64,
                first_seen: r.try_get("first_seen")?,
                last_seen: r.try_get("last_seen")?,
                id,
            };
            Ok($crate::RiskFlagRecord {
                flag,
                raised_at: ::suanli_types::Timestamp(r.try_get("raised_at")?),
                changes: Vec::new(),
            })
        }

        fn risk_change_from_row(r: &$row) -> $crate::StoreResult<(String, $crate::RiskFlagChange)> {
            use ::sqlx::Row as _;
            let flag: String = r.try_get("flag")?;
            let state: String = r.try_get("state")?;
            let state = ::suanli_audit::risk::FlagState::parse(&state).ok_or_else(|| {
                $crate::rows::corrupt(
                    "risk_flag_changes.state",
                    format!("flag {flag}: {state:?} is not a state"),
                )
            })?;
            let change = $crate::RiskFlagChange {
                state,
                by: r.try_get("by_principal")?,
                why: r.try_get("why")?,
                at: ::suanli_types::Timestamp(r.try_get("at")?),
            };
            Ok((flag, change))
        }

        fn model_from_row(r: &$row) -> $crate::StoreResult<$crate::ModelRecord> {
            use ::sqlx::Row as _;
            let id: i64 = r.try_get("id")?;
            let owner: Option<String> = r.try_get("owner")?;
            Ok($crate::ModelRecord {
                id,
                spec: $crate::rows::from_json("models.spec", id, r.try_get("spec")?)?,
                owner: owner.map(::suanli_types::TenantId),
                published_by: r.try_get("published_by")?,
                published_at: ::suanli_types::Timestamp(r.try_get("published_at")?),
            })
        }

        fn cert_from_row(r: &$row) -> $crate::StoreResult<::suanli_models::Certification> {
            use ::sqlx::Row as _;
            let request = ::suanli_models::CertRequest {
                model: r.try_get("model")?,
                center: ::suanli_types::CenterId(r.try_get("center")?),
                sku: r.try_get("sku")?,
                stack: r.try_get("stack")?,
                stack_version: r.try_get("stack_version")?,
                framework_version: r.try_get("framework_version")?,
                job: ::suanli_types::JobId(r.try_get("job")?),
                tenant: ::suanli_types::TenantId(r.try_get("tenant")?),
                requested_by: r.try_get("requested_by")?,
                requested_at: ::suanli_types::Timestamp(r.try_get("requested_at")?),
            };
            Ok(::suanli_models::Certification::new(
                r.try_get("id")?,
                request,
            ))
        }

        fn cert_step_from_row(r: &$row) -> $crate::StoreResult<(i64, $crate::rows::CertStep)> {
            use ::sqlx::Row as _;
            let id: i64 = r.try_get("certification")?;
            let step: String = r.try_get("step")?;
            let at = ::suanli_types::Timestamp(r.try_get("at")?);
            let step = match step.as_str() {
                "outcome" => {
                    let json: Option<String> = r.try_get("outcome")?;
                    let json = json.ok_or_else(|| {
                        $crate::rows::corrupt(
                            "certification_steps.outcome",
                            format!("certification {id}: an outcome step without its outcome"),
                        )
                    })?;
                    $crate::rows::CertStep::Outcome(
                        $crate::rows::from_json("certification_steps.outcome", id, &json)?,
                        at,
                    )
                }
                "review" => {
                    let verdict: Option<String> = r.try_get("verdict")?;
                    let verdict = verdict
                        .as_deref()
                        .and_then(::suanli_models::Verdict::parse)
                        .ok_or_else(|| {
                            $crate::rows::corrupt(
                                "certification_steps.verdict",
                                format!("certification {id}: {verdict:?} is not a verdict"),
                            )
                        })?;
                    let by: Option<String> = r.try_get("by_principal")?;
                    let reason: Option<String> = r.try_get("reason")?;
                    $crate::rows::CertStep::Review(::suanli_models::Review {
                        verdict,
                        by: by.unwrap_or_default(),
                        reason: reason.unwrap_or_default(),
                        at,
                    })
                }
                other => {
                    return Err($crate::rows::corrupt(
                        "certification_steps.step",
                        format!("certification {id}: {other:?} is not a step"),
                    ));
                }
            };
            Ok((id, step))
        }

        fn output_from_row(r: &$row) -> $crate::StoreResult<$crate::OutputRecord> {
            use ::sqlx::Row as _;
            Ok($crate::OutputRecord {
                job: ::suanli_types::JobId(r.try_get("job_id")?),
                attempt: r.try_get::<i64, _>("attempt")? as u32,
                path: r.try_get("path")?,
                tenant: ::suanli_types::TenantId(r.try_get("tenant")?),
                size: r.try_get::<i64, _>("size")? as u64,
                sha256: r.try_get("sha256")?,
                created_at: ::suanli_types::Timestamp(r.try_get("created_at")?),
                expires_at: ::suanli_types::Timestamp(r.try_get("expires_at")?),
            })
        }

        fn dataset_from_row(r: &$row) -> $crate::StoreResult<$crate::DatasetRecord> {
            use ::sqlx::Row as _;
            let name: &str = r.try_get("name")?;
            Ok($crate::DatasetRecord {
                owner: ::suanli_types::TenantId(r.try_get("owner")?),
                spec: $crate::rows::from_json("datasets.spec", name, r.try_get("spec")?)?,
                registered_by: r.try_get("registered_by")?,
                registered_at: ::suanli_types::Timestamp(r.try_get("registered_at")?),
                updated_at: ::suanli_types::Timestamp(r.try_get("updated_at")?),
            })
        }

        fn grant_from_row(r: &$row) -> $crate::StoreResult<::suanli_data::Grant> {
            use ::sqlx::Row as _;
            use $crate::rows::opt_ts;
            Ok(::suanli_data::Grant {
                dataset: r.try_get("dataset")?,
                tenant: ::suanli_types::TenantId(r.try_get("tenant")?),
                granted_by: r.try_get("granted_by")?,
                granted_at: ::suanli_types::Timestamp(r.try_get("granted_at")?),
                expires_at: opt_ts(r.try_get("expires_at")?),
                revoked_at: opt_ts(r.try_get("revoked_at")?),
            })
        }

        /// An `(id, record)` row of `airlock_requests`: the record, with the row's id.
        fn release_request_from_row(
            r: &$row,
        ) -> $crate::StoreResult<::suanli_data::ReleaseRequest> {
            use ::sqlx::Row as _;
            let id: i64 = r.try_get("id")?;
            let mut req: ::suanli_data::ReleaseRequest =
                $crate::rows::from_json("airlock_requests.record", id, r.try_get("record")?)?;
            req.id = id;
            Ok(req)
        }

        fn checkpoint_from_row(r: &$row) -> $crate::StoreResult<::suanli_audit::Checkpoint> {
            use ::sqlx::Row as _;
            let size: i64 = r.try_get("size")?;
            Ok(::suanli_audit::Checkpoint {
                size: size as u64,
                root: $crate::rows::hash("audit_checkpoints.root", size, r.try_get("root")?)?,
                time: r.try_get("at")?,
                key_id: ::suanli_audit::KeyId(r.try_get("key_id")?),
                signature: r.try_get("signature")?,
            })
        }

        fn input_from_row(r: &$row) -> $crate::StoreResult<$crate::LoggedInput> {
            use ::sqlx::Row as _;
            Ok($crate::LoggedInput {
                seq: r.try_get::<i64, _>("seq")? as u64,
                at: ::suanli_types::Timestamp(r.try_get("at")?),
                input: r.try_get("input")?,
            })
        }
    };
}
pub(crate) use row_decoders;

/// The sha256 column of deleted output rows (`RETURNING sha256`), each once, sorted.
pub(crate) fn distinct_shas(
    shas: impl Iterator<Item = Result<String, sqlx::Error>>,
) -> StoreResult<Vec<String>> {
    let mut shas = shas.collect::<Result<Vec<_>, _>>()?;
    shas.sort_unstable();
    shas.dedup();
    Ok(shas)
}

/// A stored hash column, decoded.
pub(crate) fn hash(what: &'static str, key: i64, s: &str) -> StoreResult<suanli_audit::Hash> {
    suanli_audit::Hash::from_hex(s).map_err(|e| corrupt(what, format!("row {key}: {e}")))
}

/// An audit row's fields, decoded into its record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn audit_record(
    seq: i64,
    at: i64,
    principal: String,
    role: Option<String>,
    tenant: Option<String>,
    source: String,
    request_id: String,
    action: String,
    target: String,
    outcome: &str,
    status: i64,
    why: Option<String>,
    digest: &str,
    prev: &str,
    leaf: &str,
) -> StoreResult<suanli_audit::Record> {
    use suanli_audit::Outcome;
    let status = u16::try_from(status)
        .map_err(|_| corrupt("audit_entries.status", format!("row {seq}: {status}")))?;
    let outcome = match (outcome, why) {
        ("allowed", None) => Outcome::Allowed { status },
        ("denied", Some(why)) => Outcome::Denied { status, why },
        (o, w) => {
            return Err(corrupt(
                "audit_entries.outcome",
                format!("row {seq}: {o:?} with reason {w:?}"),
            ));
        }
    };
    Ok(suanli_audit::Record {
        entry: suanli_audit::Entry {
            seq: seq as u64,
            time: at,
            principal,
            role,
            tenant,
            source,
            request_id,
            action,
            target,
            outcome,
            request_digest: hash("audit_entries.request_digest", seq, digest)?,
            prev: hash("audit_entries.prev", seq, prev)?,
        },
        leaf: hash("audit_entries.leaf", seq, leaf)?,
    })
}

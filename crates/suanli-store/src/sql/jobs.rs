//! Statements of the jobs, their events, attempts and log chunks.

use suanli_types::{CenterId, JobId, JobState, TenantId, Timestamp};

use super::{Run, Stmt, append_money};
use crate::rows::{JOB_COLUMNS, to_json, unfinished_jobs_condition};
use crate::{AttemptRecord, JobEvent, JobFilter, JobRecord, NewJob, StoreError, StoreResult};

/// Stores `new` as queued with its `submitted` and `queued` events; its id. A task of an array
/// (`new.array_task`) joins the array `array`, or, without one, starts it: the array's id is then
/// its own.
pub(crate) async fn insert_job(
    tx: &mut impl Run,
    new: &NewJob,
    array: Option<JobId>,
) -> StoreResult<JobId> {
    let id = tx
        .insert(
            Stmt::new(
                "INSERT INTO jobs (tenant, submitted_by, name, queue, priority, spec, state, \
                 attempt, submitted_at, updated_at, idempotency_key, submitted_by_id, held, \
                 array_job_id, array_task_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7, $8, $9, $10, $11, $12) \
                 RETURNING id",
            )
            .arg(new.tenant.as_str())
            .arg(new.submitted_by.as_str())
            .arg(new.spec.name.as_str())
            .arg(new.spec.queue.as_str())
            .arg(new.spec.priority.as_str())
            .arg(to_json("jobs.spec", &new.spec)?)
            .arg(new.at)
            .arg(new.idempotency_key.as_deref())
            .arg(new.submitted_by_id)
            .arg(new.held)
            .arg(new.array_task.and(array).map(|a| a.0))
            .arg(new.array_task.map(i64::from)),
        )
        .await?;
    if new.array_task.is_some() && array.is_none() {
        tx.run(Stmt::new("UPDATE jobs SET array_job_id = $1 WHERE id = $1").arg(id))
            .await?;
    }
    let submitted = match new.submitted_by_id {
        Some(id) => format!("submitted by {} (#{id})", new.submitted_by),
        None => format!("submitted by {}", new.submitted_by),
    };
    let queued = match new.held {
        true => "accepted; held until released",
        false => "accepted; waiting for placement",
    };
    for (state, message) in [
        (JobState::Submitted, submitted.as_str()),
        (JobState::Queued, queued),
    ] {
        tx.run(insert_event(JobId(id), new.at, 0, state, message))
            .await?;
    }
    Ok(JobId(id))
}

fn insert_event(
    job: JobId,
    at: Timestamp,
    attempt: u32,
    state: JobState,
    message: &str,
) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO job_events (job_id, at, attempt, state, message) VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(job.0)
    .arg(at)
    .arg(i64::from(attempt))
    .arg(state.as_str())
    .arg(message)
}

/// The writes of [`Store::update_job`](crate::Store::update_job), in its transaction.
pub(crate) async fn update_job(
    tx: &mut impl Run,
    job: &JobRecord,
    expect: (JobState, u32),
    event: Option<&JobEvent>,
    attempt: Option<&AttemptRecord>,
    money: &[String],
) -> StoreResult<()> {
    let alloc = match job.alloc.is_empty() {
        true => None,
        false => Some(to_json("jobs.alloc", &job.alloc)?),
    };
    let placement = job.placement.as_ref();
    let placement = placement
        .map(|p| to_json("jobs.placement", p))
        .transpose()?;
    let changed = tx
        .run(
            Stmt::new(
                "UPDATE jobs SET state = $1, attempt = $2, center = $3, sku = $4, alloc = $5, \
                 placement = $6, lease_expires_at = $7, started_at = $8, ended_at = $9, \
                 exit_code = $10, reason = $11, card_seconds = $12, updated_at = $13, \
                 held = $14 WHERE id = $15 AND state = $16 AND attempt = $17",
            )
            .arg(job.state.as_str())
            .arg(i64::from(job.attempt))
            .arg(job.center.as_ref().map(CenterId::as_str))
            .arg(job.sku.as_deref())
            .arg(alloc)
            .arg(placement)
            .arg(job.lease_expires_at)
            .arg(job.started_at)
            .arg(job.ended_at)
            .arg(job.exit_code.map(i64::from))
            .arg(job.reason.as_deref())
            .arg(job.card_seconds as i64)
            .arg(job.updated_at)
            .arg(job.held)
            .arg(job.id.0)
            .arg(expect.0.as_str())
            .arg(i64::from(expect.1)),
        )
        .await?;
    if changed != 1 {
        // Nothing was written: the caller's transaction rolls back when dropped.
        return Err(StoreError::Conflict {
            job: job.id,
            expected_state: expect.0,
            expected_attempt: expect.1,
        });
    }
    if let Some(e) = event {
        tx.run(insert_event(job.id, e.at, e.attempt, e.state, &e.message))
            .await?;
    }
    if let Some(a) = attempt {
        tx.run(upsert_attempt(a)).await?;
    }
    append_money(tx, money).await
}

fn upsert_attempt(a: &AttemptRecord) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO attempts (job_id, attempt, center, sku, cards, placed_at, started_at, \
         ended_at, outcome, exit_code, card_seconds, log_chunks) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (job_id, attempt) DO UPDATE SET started_at = excluded.started_at, \
         ended_at = excluded.ended_at, outcome = excluded.outcome, exit_code = excluded.exit_code, \
         card_seconds = excluded.card_seconds, log_chunks = excluded.log_chunks",
    )
    .arg(a.job.0)
    .arg(i64::from(a.attempt))
    .arg(a.center.as_str())
    .arg(a.sku.as_str())
    .arg(i64::from(a.cards))
    .arg(a.placed_at)
    .arg(a.started_at)
    .arg(a.ended_at)
    .arg(a.outcome.map(|o| o.as_str()))
    .arg(a.exit_code.map(i64::from))
    .arg(a.card_seconds as i64)
    .arg(a.log_chunks.map(|n| n as i64))
}

fn select_jobs(condition: &str) -> String {
    format!("SELECT {JOB_COLUMNS} FROM jobs WHERE {condition}")
}

pub(crate) fn job(id: JobId) -> Stmt<'static> {
    Stmt::new(select_jobs("id = $1")).arg(id.0)
}

pub(crate) fn job_by_idempotency_key<'a>(tenant: &'a TenantId, key: &'a str) -> Stmt<'a> {
    Stmt::new(select_jobs("tenant = $1 AND idempotency_key = $2"))
        .arg(tenant.as_str())
        .arg(key)
}

/// Jobs by ascending (or with `newest_first` descending) id after `f.after`, at most `f.limit`,
/// filtered by states, tenant, center and submitter.
pub(crate) fn jobs(f: &JobFilter) -> Stmt<'_> {
    let mut sql = select_jobs(match f.newest_first {
        true => "id < $1",
        false => "id > $1",
    });
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if !f.states.is_empty() {
        let marks: Vec<String> = f.states.iter().map(|_| format!("${}", next())).collect();
        sql.push_str(&format!(" AND state IN ({})", marks.join(", ")));
    }
    if f.tenant.is_some() {
        sql.push_str(&format!(" AND tenant = ${}", next()));
    }
    if f.center.is_some() {
        sql.push_str(&format!(" AND center = ${}", next()));
    }
    if f.submitted_by.is_some() {
        sql.push_str(&format!(" AND submitted_by = ${}", next()));
    }
    if f.array.is_some() {
        sql.push_str(&format!(" AND array_job_id = ${}", next()));
    }
    let order = if f.newest_first { "DESC" } else { "ASC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", next()));
    let start = match (f.after, f.newest_first) {
        (Some(a), _) => a.0,
        (None, true) => i64::MAX,
        (None, false) => 0,
    };
    let mut s = Stmt::new(sql).arg(start);
    for state in &f.states {
        s = s.arg(state.as_str());
    }
    if let Some(t) = &f.tenant {
        s = s.arg(t.as_str());
    }
    if let Some(c) = &f.center {
        s = s.arg(c.as_str());
    }
    if let Some(u) = &f.submitted_by {
        s = s.arg(u.as_str());
    }
    if let Some(a) = f.array {
        s = s.arg(a.0);
    }
    s.arg(i64::from(f.limit))
}

pub(crate) fn unfinished_jobs() -> Stmt<'static> {
    Stmt::new(select_jobs(&format!(
        "{} ORDER BY id",
        unfinished_jobs_condition()
    )))
}

pub(crate) fn job_events(id: JobId) -> Stmt<'static> {
    Stmt::new("SELECT at, attempt, state, message FROM job_events WHERE job_id = $1 ORDER BY id")
        .arg(id.0)
}

pub(crate) fn attempts(id: JobId) -> Stmt<'static> {
    Stmt::new(
        "SELECT job_id, attempt, center, sku, cards, placed_at, started_at, ended_at, outcome, \
         exit_code, card_seconds, log_chunks FROM attempts WHERE job_id = $1 ORDER BY attempt",
    )
    .arg(id.0)
}

pub(crate) fn ended_attempts(
    since: Timestamp,
    priority: Option<suanli_types::PriorityClass>,
    limit: u32,
) -> Stmt<'static> {
    let mut sql = String::from(
        "SELECT a.job_id, a.attempt, a.center, a.sku, a.cards, a.placed_at, a.started_at, \
         a.ended_at, a.outcome, a.exit_code, a.card_seconds, a.log_chunks, j.tenant, j.priority \
         FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.ended_at >= $1",
    );
    if priority.is_some() {
        sql.push_str(" AND j.priority = $3");
    }
    sql.push_str(" ORDER BY a.ended_at, a.job_id, a.attempt LIMIT $2");
    let s = Stmt::new(sql).arg(since).arg(i64::from(limit));
    match priority {
        Some(p) => s.arg(p.as_str()),
        None => s,
    }
}

pub(crate) const COUNT_JOBS_BY_STATE: &str =
    "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state";

pub(crate) fn logs(job: JobId, attempt: u32, from: u64, limit: u32) -> Stmt<'static> {
    Stmt::new(
        "SELECT seq, stream, data FROM logs WHERE job_id = $1 AND attempt = $2 AND seq >= $3 \
         ORDER BY seq LIMIT $4",
    )
    .arg(job.0)
    .arg(i64::from(attempt))
    .arg(from as i64)
    .arg(i64::from(limit))
}

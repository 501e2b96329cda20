//! The statements both stores run, written once: SQL text with numbered placeholders (`$1`,
//! `$2`, ...: PostgreSQL's form, which sqlx's SQLite driver binds by number too) and the values
//! to bind, as a [`Stmt`]; and the write steps made of several statements, run in a store's
//! open transaction through [`Run`]. What only one dialect can say (PostgreSQL's `UNNEST` batch
//! of log chunks, `xmax`, the lease) stays in its store.

use std::borrow::Cow;
use std::future::Future;

use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Database, Encode, Type};
use suanli_types::{CenterId, JobId, JobState, TenantId, Timestamp};

use crate::rows::{JOB_COLUMNS, to_json, unfinished_jobs_condition};
use crate::{
    AttemptRecord, InputRow, JobEvent, JobFilter, JobRecord, NewJob, Principal, StoreError,
    StoreResult, TenantRecord,
};

/// A value to bind: the column types both schemas use.
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl From<Timestamp> for Arg<'_> {
    fn from(v: Timestamp) -> Self {
        Arg::Int(Some(v.0))
    }
}

impl From<Option<Timestamp>> for Arg<'_> {
    fn from(v: Option<Timestamp>) -> Self {
        Arg::Int(v.map(|t| t.0))
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// A statement and the values of its placeholders, in order.
pub(crate) struct Stmt<'a> {
    /// Built only from constant fragments and placeholder numbers; values are bound.
    sql: Cow<'static, str>,
    args: Vec<Arg<'a>>,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: impl Into<Cow<'static, str>>) -> Self {
        Stmt {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next placeholder.
    pub(crate) fn arg(mut self, v: impl Into<Arg<'a>>) -> Self {
        self.args.push(v.into());
        self
    }
}

/// `s` as an sqlx query of database `DB`, its values bound.
pub(crate) fn query<'s, DB: Database>(s: &'s Stmt<'s>) -> Query<'s, DB, DB::Arguments>
where
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
{
    let q = match &s.sql {
        Cow::Borrowed(sql) => sqlx::query(*sql),
        Cow::Owned(sql) => sqlx::query(AssertSqlSafe(sql.clone())),
    };
    s.args.iter().fold(q, |q, a| match a {
        Arg::Int(v) => q.bind(*v),
        Arg::Text(v) => q.bind(v.as_deref()),
        Arg::Bool(v) => q.bind(*v),
    })
}

/// A store's open write transaction, as the shared write steps use it.
pub(crate) trait Run: Send {
    /// Runs `s`; how many rows it changed.
    fn run(&mut self, s: Stmt<'_>) -> impl Future<Output = StoreResult<u64>> + Send;
    /// Runs `s`, an `INSERT .. RETURNING id`; the id.
    fn insert(&mut self, s: Stmt<'_>) -> impl Future<Output = StoreResult<i64>> + Send;
}

// ---------------------------------------------------------------- tenants and tokens

pub(crate) fn create_tenant(t: &TenantRecord, at: Timestamp) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO tenants (id, name, category, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .arg(t.id.as_str())
    .arg(t.name.as_str())
    .arg(t.category.as_str())
    .arg(at)
}

pub(crate) const TENANTS: &str = "SELECT id, name, category FROM tenants ORDER BY id";

pub(crate) fn tenant(id: &TenantId) -> Stmt<'_> {
    Stmt::new("SELECT id, name, category FROM tenants WHERE id = $1").arg(id.as_str())
}

pub(crate) fn set_tenant_policy(id: &TenantId, policy: String) -> Stmt<'_> {
    Stmt::new("UPDATE tenants SET policy = $1 WHERE id = $2")
        .arg(policy)
        .arg(id.as_str())
}

pub(crate) const TENANT_POLICIES: &str =
    "SELECT id, policy FROM tenants WHERE policy IS NOT NULL ORDER BY id";

pub(crate) fn insert_token<'a>(hash: &'a str, p: &'a Principal, at: Timestamp) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO tokens (hash, name, role, tenant, center, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(hash)
    .arg(p.name.as_str())
    .arg(p.role.as_str())
    .arg(p.tenant.as_ref().map(TenantId::as_str))
    .arg(p.center.as_ref().map(CenterId::as_str))
    .arg(at)
}

pub(crate) fn principal(hash: &str) -> Stmt<'_> {
    Stmt::new("SELECT name, role, tenant, center FROM tokens WHERE hash = $1").arg(hash)
}

// ---------------------------------------------------------------- centers

pub(crate) const CENTERS: &str = "SELECT id, spec FROM centers ORDER BY id";

pub(crate) fn set_center_drained(id: &CenterId, drained: bool) -> Stmt<'_> {
    Stmt::new("UPDATE centers SET drained = $1 WHERE id = $2")
        .arg(drained)
        .arg(id.as_str())
}

/// (SQLite keeps the flag as 0 or 1, which it takes as false or true.)
pub(crate) const DRAINED_CENTERS: &str = "SELECT id FROM centers WHERE drained ORDER BY id";

// ---------------------------------------------------------------- jobs

/// Stores `new` as queued with its `submitted` and `queued` events; its id.
pub(crate) async fn insert_job(tx: &mut impl Run, new: &NewJob) -> StoreResult<JobId> {
    let id = tx
        .insert(
            Stmt::new(
                "INSERT INTO jobs (tenant, submitted_by, name, queue, priority, spec, state, \
                 attempt, submitted_at, updated_at, idempotency_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7, $8) RETURNING id",
            )
            .arg(new.tenant.as_str())
            .arg(new.submitted_by.as_str())
            .arg(new.spec.name.as_str())
            .arg(new.spec.queue.as_str())
            .arg(new.spec.priority.as_str())
            .arg(to_json("jobs.spec", &new.spec)?)
            .arg(new.at)
            .arg(new.idempotency_key.as_deref()),
        )
        .await?;
    let submitted = format!("submitted by {}", new.submitted_by);
    for (state, message) in [
        (JobState::Submitted, submitted.as_str()),
        (JobState::Queued, "accepted; waiting for placement"),
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
                 exit_code = $10, reason = $11, card_seconds = $12, updated_at = $13 \
                 WHERE id = $14 AND state = $15 AND attempt = $16",
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

/// Jobs by ascending id after `f.after`, at most `f.limit`, filtered by state, tenant and center.
pub(crate) fn jobs(f: &JobFilter) -> Stmt<'_> {
    let mut sql = select_jobs("id > $1");
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if f.state.is_some() {
        sql.push_str(&format!(" AND state = ${}", next()));
    }
    if f.tenant.is_some() {
        sql.push_str(&format!(" AND tenant = ${}", next()));
    }
    if f.center.is_some() {
        sql.push_str(&format!(" AND center = ${}", next()));
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", next()));
    let mut s = Stmt::new(sql).arg(f.after.map_or(0, |a| a.0));
    if let Some(state) = f.state {
        s = s.arg(state.as_str());
    }
    if let Some(t) = &f.tenant {
        s = s.arg(t.as_str());
    }
    if let Some(c) = &f.center {
        s = s.arg(c.as_str());
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

// ---------------------------------------------------------------- append-only logs

pub(crate) const MONEY_RECORDS: &str = "SELECT record FROM money_records ORDER BY seq";

/// Appends money records, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_money(tx: &mut impl Run, records: &[String]) -> StoreResult<()> {
    for r in records {
        tx.run(Stmt::new("INSERT INTO money_records (record) VALUES ($1)").arg(r.as_str()))
            .await?;
    }
    Ok(())
}

/// Appends input log entries, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_inputs(tx: &mut impl Run, rows: &[InputRow]) -> StoreResult<()> {
    for r in rows {
        let s = Stmt::new("INSERT INTO hub_inputs (at, input) VALUES ($1, $2)");
        tx.run(s.arg(r.at).arg(r.input.as_str())).await?;
    }
    Ok(())
}

pub(crate) fn inputs(after: u64, limit: u32) -> Stmt<'static> {
    Stmt::new("SELECT seq, at, input FROM hub_inputs WHERE seq > $1 ORDER BY seq LIMIT $2")
        .arg(after as i64)
        .arg(i64::from(limit))
}

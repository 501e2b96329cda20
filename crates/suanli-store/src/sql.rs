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
    AttemptRecord, InputRow, JobEvent, JobFilter, JobRecord, NewJob, NewToken, StoreError,
    StoreResult, TenantRecord, TokenFilter,
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
        "INSERT INTO tenants (id, name, category, created_at, city) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .arg(t.id.as_str())
    .arg(t.name.as_str())
    .arg(t.category.as_str())
    .arg(at)
    .arg(t.city.as_deref())
}

pub(crate) const TENANTS: &str = "SELECT id, name, category, city FROM tenants ORDER BY id";

pub(crate) fn tenant(id: &TenantId) -> Stmt<'_> {
    Stmt::new("SELECT id, name, category, city FROM tenants WHERE id = $1").arg(id.as_str())
}

pub(crate) fn set_tenant_policy(id: &TenantId, policy: String) -> Stmt<'_> {
    Stmt::new("UPDATE tenants SET policy = $1 WHERE id = $2")
        .arg(policy)
        .arg(id.as_str())
}

pub(crate) const TENANT_POLICIES: &str =
    "SELECT id, policy FROM tenants WHERE policy IS NOT NULL ORDER BY id";

/// The columns [`token_from_row`](crate::rows::row_decoders) reads.
const TOKEN_COLUMNS: &str =
    "id, name, role, tenant, center, created_at, expires_at, revoked_at, last_used_at";

fn insert_token<'a>(hash: &'a str, t: &'a NewToken, at: Timestamp) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO tokens (hash, name, role, tenant, center, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .arg(hash)
    .arg(t.name.as_str())
    .arg(t.role.as_str())
    .arg(t.tenant.as_ref().map(TenantId::as_str))
    .arg(t.center.as_ref().map(CenterId::as_str))
    .arg(t.scope())
    .arg(at)
    .arg(t.expires_at)
}

/// A name taken by a live token of the scope is [`StoreError::Exists`].
fn name_taken(e: StoreError, t: &NewToken) -> StoreError {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            StoreError::Exists(format!(
                "a token named {:?} exists in {} (names are unique among tokens not revoked)",
                t.name,
                t.scope()
            ))
        }
        e => e,
    }
}

/// Stores a token; its id.
pub(crate) async fn store_token(
    tx: &mut impl Run,
    hash: &str,
    t: &NewToken,
    at: Timestamp,
) -> StoreResult<i64> {
    tx.insert(insert_token(hash, t, at))
        .await
        .map_err(|e| name_taken(e, t))
}

const BUMP_GENERATION: &str =
    "UPDATE token_generation SET generation = generation + 1 WHERE id = 1";

/// Revokes, as of `retire_at`, the tokens of `t`'s scope not revoked by then (with
/// `same_name`, only those named like `t`), then stores `t`; its id.
pub(crate) async fn rotate_token(
    tx: &mut impl Run,
    hash: &str,
    t: &NewToken,
    at: Timestamp,
    retire_at: Timestamp,
    same_name: bool,
) -> StoreResult<i64> {
    tx.run(
        Stmt::new(
            "UPDATE tokens SET revoked_at = $1 WHERE scope = $2 AND (name = $3 OR NOT $4) \
             AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .arg(retire_at)
        .arg(t.scope())
        .arg(t.name.as_str())
        .arg(same_name),
    )
    .await?;
    tx.run(Stmt::new(BUMP_GENERATION)).await?;
    store_token(tx, hash, t, at).await
}

/// Revokes token `id` as of `at` (unless revoked earlier); whether it exists.
pub(crate) async fn revoke_token(tx: &mut impl Run, id: i64, at: Timestamp) -> StoreResult<()> {
    tx.run(
        Stmt::new(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 \
             AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .arg(at)
        .arg(id),
    )
    .await?;
    tx.run(Stmt::new(BUMP_GENERATION)).await?;
    Ok(())
}

pub(crate) fn token_by_hash(hash: &str) -> Stmt<'_> {
    Stmt::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
    ))
    .arg(hash)
}

pub(crate) fn token_by_id(id: i64) -> Stmt<'static> {
    Stmt::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1")).arg(id)
}

pub(crate) fn tokens(f: &TokenFilter) -> Stmt<'_> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE ($1 IS NULL OR tenant = $1) \
         AND ($2 IS NULL OR center = $2) ORDER BY id"
    );
    Stmt::new(sql)
        .arg(f.tenant.as_ref().map(TenantId::as_str))
        .arg(f.center.as_ref().map(CenterId::as_str))
}

pub(crate) const TOKEN_GENERATION: &str = "SELECT generation FROM token_generation WHERE id = 1";

pub(crate) fn touch_token(id: i64, at: Timestamp) -> Stmt<'static> {
    Stmt::new("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
        .arg(at)
        .arg(id)
}

/// Tokens of `role` valid at `at`.
pub(crate) fn count_live_tokens(role: suanli_types::Role, at: Timestamp) -> Stmt<'static> {
    Stmt::new(
        "SELECT COUNT(*) FROM tokens WHERE role = $1 AND (revoked_at IS NULL OR revoked_at > $2) \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .arg(role.as_str())
    .arg(at)
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

// ---------------------------------------------------------------- the audit log

/// The columns [`audit_from_row`](crate::rows::row_decoders) reads.
const AUDIT_COLUMNS: &str = "seq, at, principal, role, tenant, source, request_id, action, \
     target, outcome, status, why, request_digest, prev, leaf";

/// Appends audit entries, one statement each; a taken `seq` is [`StoreError::Exists`].
pub(crate) async fn append_audit(
    tx: &mut impl Run,
    records: &[suanli_audit::Record],
) -> StoreResult<()> {
    use suanli_audit::Outcome;
    for r in records {
        let e = &r.entry;
        let (outcome, status, why) = match &e.outcome {
            Outcome::Allowed { status } => ("allowed", *status, None),
            Outcome::Denied { status, why } => ("denied", *status, Some(why.as_str())),
        };
        let s = Stmt::new(
            "INSERT INTO audit_entries (seq, at, principal, role, tenant, source, request_id, \
             action, target, outcome, status, why, request_digest, prev, leaf) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .arg(e.seq as i64)
        .arg(e.time)
        .arg(e.principal.as_str())
        .arg(e.role.as_deref())
        .arg(e.tenant.as_deref())
        .arg(e.source.as_str())
        .arg(e.request_id.as_str())
        .arg(e.action.as_str())
        .arg(e.target.as_str())
        .arg(outcome)
        .arg(i64::from(status))
        .arg(why)
        .arg(e.request_digest.to_hex())
        .arg(e.prev.to_hex())
        .arg(r.leaf.to_hex());
        tx.run(s).await.map_err(|err| match err {
            StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                StoreError::Exists(format!("audit entry {}", e.seq))
            }
            err => err,
        })?;
    }
    Ok(())
}

pub(crate) fn audit_entries(f: &crate::AuditFilter) -> Stmt<'_> {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE seq > $1");
    let mut n = 1;
    let mut cond = |sql: &mut String, c: &str| {
        n += 1;
        sql.push_str(&format!(" AND {c} ${n}"));
    };
    if f.principal.is_some() {
        cond(&mut sql, "principal =");
    }
    if f.tenant.is_some() {
        cond(&mut sql, "tenant =");
    }
    if f.action.is_some() {
        cond(&mut sql, "action =");
    }
    if f.request_id.is_some() {
        cond(&mut sql, "request_id =");
    }
    if f.since.is_some() {
        cond(&mut sql, "at >=");
    }
    if f.until.is_some() {
        cond(&mut sql, "at <");
    }
    if f.denied {
        sql.push_str(" AND outcome = 'denied'");
    }
    n += 1;
    sql.push_str(&format!(" ORDER BY seq LIMIT ${n}"));
    let mut s = Stmt::new(sql).arg(f.after.map_or(-1, |a| a as i64));
    for v in [&f.principal, &f.tenant, &f.action, &f.request_id]
        .into_iter()
        .flatten()
    {
        s = s.arg(v.as_str());
    }
    for t in [f.since, f.until].into_iter().flatten() {
        s = s.arg(t);
    }
    s.arg(i64::from(f.limit))
}

pub(crate) const AUDIT_LEAVES: &str = "SELECT leaf FROM audit_entries ORDER BY seq";

pub(crate) fn append_checkpoint(c: &suanli_audit::Checkpoint) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO audit_checkpoints (size, root, at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(c.size as i64)
    .arg(c.root.to_hex())
    .arg(c.time)
    .arg(c.key_id.0.as_str())
    .arg(c.signature.as_str())
}

pub(crate) const AUDIT_CHECKPOINTS: &str =
    "SELECT size, root, at, key_id, signature FROM audit_checkpoints ORDER BY id";

pub(crate) fn add_audit_key(key: &suanli_audit::PublicKey, at: Timestamp) -> Stmt<'static> {
    Stmt::new(
        "INSERT INTO audit_keys (key_id, public_key, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO NOTHING",
    )
    .arg(key.id().0)
    .arg(key.to_hex())
    .arg(at)
}

pub(crate) const AUDIT_KEYS: &str = "SELECT public_key FROM audit_keys ORDER BY added_at, key_id";

// ---------------------------------------------------------------- risk flags

/// Records `flags` (see [`Store::record_risk_flags`](crate::Store::record_risk_flags)).
pub(crate) async fn record_risk_flags(
    tx: &mut impl Run,
    flags: &[suanli_audit::risk::Flag],
    at: Timestamp,
) -> StoreResult<Vec<String>> {
    let mut new = Vec::new();
    for f in flags {
        let severity = to_json("risk_flags.severity", &f.severity)?;
        let severity = severity.trim_matches('"').to_string();
        let evidence = to_json("risk_flags.evidence", &f.evidence)?;
        let inserted = tx
            .run(
                Stmt::new(
                    "INSERT INTO risk_flags (id, rule, severity, subject, detail, evidence, \
                     count, first_seen, last_seen, raised_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                )
                .arg(f.id.as_str())
                .arg(f.rule.as_str())
                .arg(severity)
                .arg(f.subject.as_str())
                .arg(f.detail.as_str())
                .arg(evidence.clone())
                .arg(f.count as i64)
                .arg(f.first_seen)
                .arg(f.last_seen)
                .arg(at),
            )
            .await?;
        if inserted == 1 {
            new.push(f.id.clone());
            continue;
        }
        tx.run(
            Stmt::new(
                "UPDATE risk_flags SET detail = $2, evidence = $3, count = $4, \
                 first_seen = $5, last_seen = $6 WHERE id = $1 AND count < $4",
            )
            .arg(f.id.as_str())
            .arg(f.detail.as_str())
            .arg(evidence)
            .arg(f.count as i64)
            .arg(f.first_seen)
            .arg(f.last_seen),
        )
        .await?;
    }
    Ok(new)
}

pub(crate) const RISK_FLAGS: &str = "SELECT id, rule, severity, subject, detail, evidence, count, \
     first_seen, last_seen, raised_at FROM risk_flags ORDER BY raised_at, id";

pub(crate) const RISK_FLAG_CHANGES: &str =
    "SELECT flag, state, by_principal, why, at FROM risk_flag_changes ORDER BY id";

pub(crate) fn risk_flag_exists(id: &str) -> Stmt<'_> {
    Stmt::new("SELECT COUNT(*) FROM risk_flags WHERE id = $1").arg(id)
}

/// Appends a state change; a flag already in that state is [`StoreError::Exists`].
pub(crate) async fn change_risk_flag(
    tx: &mut impl Run,
    id: &str,
    c: &crate::RiskFlagChange,
) -> StoreResult<()> {
    let s = Stmt::new(
        "INSERT INTO risk_flag_changes (flag, state, by_principal, why, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(id)
    .arg(c.state.as_str())
    .arg(c.by.as_str())
    .arg(c.why.as_str())
    .arg(c.at);
    tx.run(s).await.map_err(|err| match err {
        StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            StoreError::Exists(format!("risk flag {id} is {} already", c.state.as_str()))
        }
        err => err,
    })?;
    Ok(())
}

// ---------------------------------------------------------------- the statistics

/// Appends facts of the statistics, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_facts(
    tx: &mut impl Run,
    rows: &[crate::NewFact],
    recorded_at: Timestamp,
) -> StoreResult<()> {
    for r in rows {
        let s =
            Stmt::new("INSERT INTO indicator_facts (at, fact, recorded_at) VALUES ($1, $2, $3)");
        tx.run(s.arg(r.at).arg(r.fact.as_str()).arg(recorded_at))
            .await?;
    }
    Ok(())
}

pub(crate) fn facts(after: u64, limit: u32) -> Stmt<'static> {
    Stmt::new(
        "SELECT seq, at, fact, recorded_at FROM indicator_facts WHERE seq > $1 \
         ORDER BY seq LIMIT $2",
    )
    .arg(after as i64)
    .arg(i64::from(limit))
}

pub(crate) fn insert_release(r: &crate::ReleaseRecord) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO releases (quarter, made_at, json, csv, html, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(r.quarter.as_str())
    .arg(r.made_at)
    .arg(r.json.as_str())
    .arg(r.csv.as_str())
    .arg(r.html.as_str())
    .arg(r.sha256.as_str())
}

pub(crate) const RELEASES: &str = "SELECT quarter, made_at, sha256 FROM releases ORDER BY quarter";

pub(crate) fn release(quarter: &str) -> Stmt<'_> {
    Stmt::new("SELECT quarter, made_at, json, csv, html, sha256 FROM releases WHERE quarter = $1")
        .arg(quarter)
}

// ---------------------------------------------------------------- models and certifications

pub(crate) fn insert_model<'a>(m: &'a crate::NewModel, spec: String) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO models (name, revision, owner, spec, published_by, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .arg(m.spec.name.as_str())
    .arg(m.spec.revision.as_str())
    .arg(m.owner.as_ref().map(TenantId::as_str))
    .arg(spec)
    .arg(m.published_by.as_str())
    .arg(m.published_at)
}

pub(crate) const MODELS: &str =
    "SELECT id, owner, spec, published_by, published_at FROM models ORDER BY id";

pub(crate) fn model(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT id, owner, spec, published_by, published_at FROM models WHERE id = $1")
        .arg(id)
}

pub(crate) fn insert_certification(r: &suanli_models::CertRequest) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO certifications (model, center, sku, stack, stack_version, \
         framework_version, job, tenant, requested_by, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .arg(r.model)
    .arg(r.center.as_str())
    .arg(r.sku.as_str())
    .arg(r.stack.as_str())
    .arg(r.stack_version.as_str())
    .arg(r.framework_version.as_str())
    .arg(r.job.0)
    .arg(r.tenant.as_str())
    .arg(r.requested_by.as_str())
    .arg(r.requested_at)
}

const CERT_COLUMNS: &str = "id, model, center, sku, stack, stack_version, framework_version, \
     job, tenant, requested_by, requested_at";

pub(crate) fn certifications(model: Option<i64>) -> Stmt<'static> {
    match model {
        Some(m) => Stmt::new(format!(
            "SELECT {CERT_COLUMNS} FROM certifications WHERE model = $1 ORDER BY id"
        ))
        .arg(m),
        None => Stmt::new(format!(
            "SELECT {CERT_COLUMNS} FROM certifications ORDER BY id"
        )),
    }
}

pub(crate) fn cert_steps(model: Option<i64>) -> Stmt<'static> {
    let cols = "s.certification, s.step, s.outcome, s.verdict, s.by_principal, s.reason, s.at";
    match model {
        Some(m) => Stmt::new(format!(
            "SELECT {cols} FROM certification_steps s JOIN certifications c \
             ON c.id = s.certification WHERE c.model = $1 ORDER BY s.id"
        ))
        .arg(m),
        None => Stmt::new(format!(
            "SELECT {cols} FROM certification_steps s ORDER BY s.id"
        )),
    }
}

pub(crate) fn certification_exists(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT COUNT(*) FROM certifications WHERE id = $1").arg(id)
}

/// Appends step `step` of certification `id`; a step taken already is [`StoreError::Exists`].
pub(crate) fn insert_cert_step<'a>(
    id: i64,
    step: &'static str,
    outcome: Option<String>,
    review: Option<&'a suanli_models::Review>,
    at: Timestamp,
) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO certification_steps (certification, step, outcome, verdict, \
         by_principal, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .arg(id)
    .arg(step)
    .arg(outcome)
    .arg(review.map(|r| r.verdict.as_str()))
    .arg(review.map(|r| r.by.as_str()))
    .arg(review.map(|r| r.reason.as_str()))
    .arg(at)
}

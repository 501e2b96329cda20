//! SQLite implementation: one file in the data dir, WAL journal, synchronous=FULL so a committed
//! transaction survives a crash of the process or the machine.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, Role, SharePolicy, TenantId, Timestamp};

use crate::rows::{JOB_COLUMNS, corrupt, from_json, opt_ts, parse, row_decoders, to_json};
use crate::*;

row_decoders!(SqliteRow);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and applies migrations.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        Self::with_options(opts, 4).await
    }

    /// A private in-memory database (tests).
    pub async fn in_memory() -> StoreResult<SqliteStore> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        // One connection: every connection to ":memory:" is its own database.
        Self::with_options(opts, 1).await
    }

    async fn with_options(opts: SqliteConnectOptions, max: u32) -> StoreResult<SqliteStore> {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

impl Store for SqliteStore {
    fn create_tenant<'a>(&'a self, t: &'a TenantRecord, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO tenants (id, name, category, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO NOTHING",
            )
            .bind(t.id.as_str())
            .bind(&t.name)
            .bind(t.category.as_str())
            .bind(at.0)
            .execute(&self.pool)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn tenants(&self) -> StoreFuture<'_, Vec<TenantRecord>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT id, name, category FROM tenants ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(tenant_from_row).collect()
        })
    }

    fn tenant<'a>(&'a self, id: &'a TenantId) -> StoreFuture<'a, Option<TenantRecord>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT id, name, category FROM tenants WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(tenant_from_row).transpose()
        })
    }

    fn insert_token<'a>(
        &'a self,
        hash: &'a str,
        p: &'a Principal,
        at: Timestamp,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("INSERT INTO tokens (hash, name, role, tenant, center, created_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(hash)
                .bind(&p.name)
                .bind(p.role.as_str())
                .bind(p.tenant.as_ref().map(|t| t.as_str()))
                .bind(p.center.as_ref().map(|c| c.as_str()))
                .bind(at.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }

    fn principal<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<Principal>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT name, role, tenant, center FROM tokens WHERE hash = ?")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(Principal {
                name: r.try_get("name")?,
                role: parse::<Role>("tokens.role", r.try_get::<&str, _>("role")?)?,
                tenant: r.try_get::<Option<String>, _>("tenant")?.map(TenantId),
                center: r.try_get::<Option<String>, _>("center")?.map(CenterId),
            }))
        })
    }

    fn has_token_with_role(&self, role: Role) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE role = ?")
                .bind(role.as_str())
                .fetch_one(&self.pool)
                .await?;
            Ok(n > 0)
        })
    }

    fn upsert_center<'a>(&'a self, spec: &'a CenterSpec, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let json = serde_json::to_string(spec).map_err(|e| corrupt("centers.spec", e))?;
            let mut tx = self.pool.begin().await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM centers WHERE id = ?")
                .bind(spec.id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO centers (id, spec, created_at, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(spec.id.as_str())
            .bind(json)
            .bind(at.0)
            .bind(at.0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(exists.is_none())
        })
    }

    fn centers(&self) -> StoreFuture<'_, Vec<CenterSpec>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar("SELECT spec FROM centers ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|s| serde_json::from_str(s).map_err(|e| corrupt("centers.spec", e)))
                .collect()
        })
    }

    fn insert_job(&self, new: NewJob) -> StoreFuture<'_, JobRecord> {
        Box::pin(async move {
            let spec_json =
                serde_json::to_string(&new.spec).map_err(|e| corrupt("jobs.spec", e))?;
            let mut tx = self.pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (tenant, submitted_by, name, queue, priority, spec, state, attempt, submitted_at, updated_at, idempotency_key) \
                 VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?) RETURNING id",
            )
            .bind(new.tenant.as_str())
            .bind(&new.submitted_by)
            .bind(&new.spec.name)
            .bind(&new.spec.queue)
            .bind(new.spec.priority.as_str())
            .bind(spec_json)
            .bind(new.at.0)
            .bind(new.at.0)
            .bind(new.idempotency_key.as_deref())
            .fetch_one(&mut *tx)
            .await?;
            for (state, msg) in [
                (
                    JobState::Submitted,
                    format!("submitted by {}", new.submitted_by),
                ),
                (
                    JobState::Queued,
                    "accepted; waiting for placement".to_string(),
                ),
            ] {
                sqlx::query("INSERT INTO job_events (job_id, at, attempt, state, message) VALUES (?, ?, 0, ?, ?)")
                    .bind(id)
                    .bind(new.at.0)
                    .bind(state.as_str())
                    .bind(msg)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(JobRecord::queued(JobId(id), new))
        })
    }

    fn update_job<'a>(
        &'a self,
        job: &'a JobRecord,
        expect_state: JobState,
        expect_attempt: u32,
        event: Option<&'a JobEvent>,
        attempt: Option<&'a AttemptRecord>,
        money: &'a [String],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let alloc = if job.alloc.is_empty() {
                None
            } else {
                Some(to_json("jobs.alloc", &job.alloc)?)
            };
            let placement = job
                .placement
                .as_ref()
                .map(|p| to_json("jobs.placement", p))
                .transpose()?;
            let mut tx = self.pool.begin().await?;
            let r = sqlx::query(
                "UPDATE jobs SET state = ?, attempt = ?, center = ?, sku = ?, alloc = ?, placement = ?, \
                 lease_expires_at = ?, started_at = ?, ended_at = ?, exit_code = ?, reason = ?, card_seconds = ?, updated_at = ? \
                 WHERE id = ? AND state = ? AND attempt = ?",
            )
            .bind(job.state.as_str())
            .bind(job.attempt as i64)
            .bind(job.center.as_ref().map(|c| c.as_str()))
            .bind(job.sku.as_deref())
            .bind(alloc)
            .bind(placement)
            .bind(job.lease_expires_at.map(|t| t.0))
            .bind(job.started_at.map(|t| t.0))
            .bind(job.ended_at.map(|t| t.0))
            .bind(job.exit_code.map(i64::from))
            .bind(job.reason.as_deref())
            .bind(job.card_seconds as i64)
            .bind(job.updated_at.0)
            .bind(job.id.0)
            .bind(expect_state.as_str())
            .bind(expect_attempt as i64)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() != 1 {
                return Err(StoreError::Conflict {
                    job: job.id,
                    expected_state: expect_state,
                    expected_attempt: expect_attempt,
                });
            }
            if let Some(e) = event {
                sqlx::query("INSERT INTO job_events (job_id, at, attempt, state, message) VALUES (?, ?, ?, ?, ?)")
                    .bind(job.id.0)
                    .bind(e.at.0)
                    .bind(e.attempt as i64)
                    .bind(e.state.as_str())
                    .bind(&e.message)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(a) = attempt {
                sqlx::query(
                    "INSERT INTO attempts (job_id, attempt, center, sku, cards, placed_at, started_at, ended_at, outcome, exit_code, card_seconds, log_chunks) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT(job_id, attempt) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at, \
                     outcome = excluded.outcome, exit_code = excluded.exit_code, card_seconds = excluded.card_seconds, log_chunks = excluded.log_chunks",
                )
                .bind(a.job.0)
                .bind(a.attempt as i64)
                .bind(a.center.as_str())
                .bind(&a.sku)
                .bind(a.cards as i64)
                .bind(a.placed_at.0)
                .bind(a.started_at.map(|t| t.0))
                .bind(a.ended_at.map(|t| t.0))
                .bind(a.outcome.map(|o| o.as_str()))
                .bind(a.exit_code.map(i64::from))
                .bind(a.card_seconds as i64)
                .bind(a.log_chunks.map(|n| n as i64))
                .execute(&mut *tx)
                .await?;
            }
            insert_money(&mut tx, money).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn job_by_idempotency_key<'a>(
        &'a self,
        tenant: &'a TenantId,
        key: &'a str,
    ) -> StoreFuture<'a, Option<JobRecord>> {
        Box::pin(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = ? AND idempotency_key = ?"
            )))
            .bind(tenant.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn job(&self, id: JobId) -> StoreFuture<'_, Option<JobRecord>> {
        Box::pin(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"
            )))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn jobs<'a>(&'a self, f: &'a JobFilter) -> StoreFuture<'a, Vec<JobRecord>> {
        Box::pin(async move {
            let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id > ?");
            if f.state.is_some() {
                sql.push_str(" AND state = ?");
            }
            if f.tenant.is_some() {
                sql.push_str(" AND tenant = ?");
            }
            if f.center.is_some() {
                sql.push_str(" AND center = ?");
            }
            sql.push_str(" ORDER BY id LIMIT ?");
            // Built only from constant fragments; values are bound.
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(f.after.map_or(0, |a| a.0));
            if let Some(s) = f.state {
                q = q.bind(s.as_str());
            }
            if let Some(t) = &f.tenant {
                q = q.bind(t.as_str());
            }
            if let Some(c) = &f.center {
                q = q.bind(c.as_str());
            }
            let rows = q.bind(f.limit as i64).fetch_all(&self.pool).await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn unfinished_jobs(&self) -> StoreFuture<'_, Vec<JobRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE {} ORDER BY id",
                crate::rows::unfinished_jobs_condition()
            )))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(job_from_row).collect()
        })
    }

    fn job_events(&self, id: JobId) -> StoreFuture<'_, Vec<JobEvent>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT at, attempt, state, message FROM job_events WHERE job_id = ? ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(JobEvent {
                        at: Timestamp(r.try_get("at")?),
                        attempt: r.try_get::<i64, _>("attempt")? as u32,
                        state: parse("job_events.state", r.try_get::<&str, _>("state")?)?,
                        message: r.try_get("message")?,
                    })
                })
                .collect()
        })
    }

    fn attempts(&self, id: JobId) -> StoreFuture<'_, Vec<AttemptRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT job_id, attempt, center, sku, cards, placed_at, started_at, ended_at, outcome, exit_code, card_seconds, log_chunks \
                 FROM attempts WHERE job_id = ? ORDER BY attempt",
            )
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AttemptRecord {
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
                })
                .collect()
        })
    }

    fn count_jobs_by_state(&self) -> StoreFuture<'_, Vec<(JobState, u64)>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok((
                        parse("jobs.state", r.try_get::<&str, _>("state")?)?,
                        r.try_get::<i64, _>("n")? as u64,
                    ))
                })
                .collect()
        })
    }

    fn append_logs<'a>(
        &'a self,
        job: JobId,
        attempt: u32,
        rows: &'a [LogRow],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for row in rows {
                sqlx::query(
                    "INSERT INTO logs (job_id, attempt, seq, stream, data) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT(job_id, attempt, seq) DO NOTHING",
                )
                .bind(job.0)
                .bind(attempt as i64)
                .bind(row.seq as i64)
                .bind(row.stream.as_str())
                .bind(&row.data)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn logs(
        &self,
        job: JobId,
        attempt: u32,
        from: u64,
        limit: u32,
    ) -> StoreFuture<'_, Vec<LogRow>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT seq, stream, data FROM logs WHERE job_id = ? AND attempt = ? AND seq >= ? ORDER BY seq LIMIT ?",
            )
            .bind(job.0)
            .bind(attempt as i64)
            .bind(from as i64)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(LogRow {
                        seq: r.try_get::<i64, _>("seq")? as u64,
                        stream: parse("logs.stream", r.try_get::<&str, _>("stream")?)?,
                        data: r.try_get("data")?,
                    })
                })
                .collect()
        })
    }

    fn set_tenant_policy<'a>(
        &'a self,
        id: &'a TenantId,
        policy: &'a SharePolicy,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let policy = to_json("tenants.policy", policy)?;
            let r = sqlx::query("UPDATE tenants SET policy = ? WHERE id = ?")
                .bind(policy)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn tenant_policies(&self) -> StoreFuture<'_, Vec<(TenantId, SharePolicy)>> {
        Box::pin(async move {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT id, policy FROM tenants WHERE policy IS NOT NULL ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.into_iter()
                .map(|(id, p)| {
                    let policy = from_json("tenants.policy", &id, &p)?;
                    Ok((TenantId(id), policy))
                })
                .collect()
        })
    }

    fn money_records(&self) -> StoreFuture<'_, Vec<String>> {
        Box::pin(async move {
            Ok(
                sqlx::query_scalar("SELECT record FROM money_records ORDER BY seq")
                    .fetch_all(&self.pool)
                    .await?,
            )
        })
    }

    fn append_money<'a>(&'a self, records: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            insert_money(&mut tx, records).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn append_inputs<'a>(&'a self, rows: &'a [InputRow]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.pool.begin().await?;
            for r in rows {
                sqlx::query("INSERT INTO hub_inputs (at, input) VALUES (?, ?)")
                    .bind(r.at.0)
                    .bind(&r.input)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn inputs(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<LoggedInput>> {
        Box::pin(async move {
            let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                "SELECT seq, at, input FROM hub_inputs WHERE seq > ? ORDER BY seq LIMIT ?",
            )
            .bind(after as i64)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(crate::rows::logged_input).collect())
        })
    }

    fn set_center_drained<'a>(&'a self, id: &'a CenterId, drained: bool) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query("UPDATE centers SET drained = ? WHERE id = ?")
                .bind(drained)
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn drained_centers(&self) -> StoreFuture<'_, Vec<CenterId>> {
        Box::pin(async move {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM centers WHERE drained <> 0 ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(ids.into_iter().map(CenterId).collect())
        })
    }
}

/// Appends money records inside an open transaction.
async fn insert_money(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    records: &[String],
) -> StoreResult<()> {
    for r in records {
        sqlx::query("INSERT INTO money_records (record) VALUES (?)")
            .bind(r)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

//! PostgreSQL implementation: a connection pool to one database (optionally one schema of it),
//! migrations from `migrations/postgres` applied at connect.
//!
//! Same semantics as [`SqliteStore`](crate::SqliteStore): every write is one transaction, and a
//! commit is durable when the future resolves (`synchronous_commit` is on: the server's default,
//! and the store turns it back on for its sessions if the server or role has it off). Compare-and-set
//! on a job is a single `UPDATE .. WHERE id AND state AND attempt`; under READ COMMITTED a
//! concurrent writer of the same row waits for the first to commit and then re-checks the
//! condition, so exactly one of them wins and the other gets [`StoreError::Conflict`].

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool, Row};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, Role, SharePolicy, TenantId, Timestamp};

use crate::rows::{JOB_COLUMNS, corrupt, from_json, opt_ts, parse, row_decoders, to_json};
use crate::*;

row_decoders!(PgRow);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per store. The hub has one writer (the engine) and a few readers.
const MAX_CONNECTIONS: u32 = 8;
/// How long a call waits for a pooled connection (also: how long `connect` retries a server
/// that refuses connections) before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// A small pool of its own for the hub lease, so renewals never queue behind API traffic.
    lease_pool: PgPool,
    /// The lease epoch writes are fenced with (0: none); see [`Store::set_fence`].
    fence: Arc<AtomicU64>,
    /// The schema every connection's `search_path` is set to, if not the server's default.
    schema: Option<String>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`), using the role's
    /// default `search_path` (normally `public`), and applies migrations.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        Self::open(url, None).await
    }

    /// Like [`connect`](Self::connect), but keeps everything in `schema` (created if missing):
    /// every pooled connection runs `SET search_path TO <schema>` when it is opened, so the
    /// tables, and the migrations' bookkeeping table, live there. Tests use one schema each.
    pub async fn connect_in_schema(url: &str, schema: &str) -> StoreResult<PostgresStore> {
        Self::open(url, Some(schema)).await
    }

    /// The schema given to [`connect_in_schema`](Self::connect_in_schema), if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes every pooled connection; calls after this fail.
    pub async fn close(&self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    async fn open(url: &str, schema: Option<&str>) -> StoreResult<PostgresStore> {
        let opts = PgConnectOptions::from_str(url)?;
        if let Some(schema) = schema {
            // One plain connection first: creating the schema from every pooled connection
            // could race, and a server that is down is reported at once instead of retried.
            let mut conn = PgConnection::connect_with(&opts).await?;
            conn.execute(AssertSqlSafe(format!(
                "CREATE SCHEMA IF NOT EXISTS {}",
                quote_ident(schema)
            )))
            .await?;
            conn.close().await?;
        }
        let mut session = String::from(
            "SELECT set_config('synchronous_commit', 'on', false) \
             WHERE current_setting('synchronous_commit') = 'off';",
        );
        if let Some(schema) = schema {
            session.push_str(&format!(" SET search_path TO {};", quote_ident(schema)));
        }
        let pool_options = |max: u32| {
            let session = session.clone();
            PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(move |conn, _meta| {
                    let session = session.clone();
                    Box::pin(async move {
                        // Simple-query protocol (no arguments), so both statements run.
                        conn.execute(AssertSqlSafe(session)).await?;
                        Ok(())
                    })
                })
        };
        let lease_pool = pool_options(2).connect_lazy_with(opts.clone());
        let pool = pool_options(MAX_CONNECTIONS).connect_with(opts).await?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresStore {
            pool,
            lease_pool,
            fence: Arc::new(AtomicU64::new(0)),
            schema: schema.map(str::to_owned),
        })
    }

    /// Drops this store's schema (from [`connect_in_schema`](Self::connect_in_schema)) with
    /// everything in it, then closes the pool: test teardown. Without a schema it only closes.
    pub async fn drop_schema(self) -> StoreResult<()> {
        if let Some(schema) = &self.schema {
            self.pool
                .execute(AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {} CASCADE",
                    quote_ident(schema)
                )))
                .await?;
        }
        self.close().await;
        Ok(())
    }
}

impl PostgresStore {
    /// Inside a write transaction: fails with [`StoreError::Fenced`] unless the lease still has the
    /// fenced epoch. `FOR SHARE` makes a takeover (an `UPDATE` of the lease row) wait until this
    /// transaction ends, and this transaction wait for a takeover in flight and then see its epoch.
    async fn check_fence(&self, conn: &mut PgConnection) -> StoreResult<()> {
        let held = self.fence.load(Ordering::SeqCst);
        if held == 0 {
            return Ok(());
        }
        if held == FENCE_ALL {
            return Err(StoreError::Fenced { held, current: 0 });
        }
        let current: i64 = sqlx::query_scalar("SELECT epoch FROM hub_lease WHERE id = 1 FOR SHARE")
            .fetch_one(&mut *conn)
            .await?;
        if current as u64 != held {
            return Err(StoreError::Fenced {
                held,
                current: current as u64,
            });
        }
        Ok(())
    }
}

/// The database server's clock in milliseconds since the Unix epoch (all hubs share it).
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

fn lease_from_row(r: &PgRow) -> StoreResult<Lease> {
    Ok(Lease {
        holder: r.try_get("holder")?,
        url: r.try_get("url")?,
        epoch: r.try_get::<i64, _>("epoch")? as u64,
        remaining_ms: r.try_get("remaining_ms")?,
    })
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Store for PostgresStore {
    fn create_tenant<'a>(&'a self, t: &'a TenantRecord, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query(
                "INSERT INTO tenants (id, name, category, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
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
            let row = sqlx::query("SELECT id, name, category FROM tenants WHERE id = $1")
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
            sqlx::query(
                "INSERT INTO tokens (hash, name, role, tenant, center, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
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
            let row = sqlx::query("SELECT name, role, tenant, center FROM tokens WHERE hash = $1")
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
            let any: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens WHERE role = $1)")
                    .bind(role.as_str())
                    .fetch_one(&self.pool)
                    .await?;
            Ok(any)
        })
    }

    fn upsert_center<'a>(&'a self, spec: &'a CenterSpec, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let json = serde_json::to_string(spec).map_err(|e| corrupt("centers.spec", e))?;
            // One statement; `xmax = 0` holds exactly for a row this statement inserted (an
            // updated row version carries the updating transaction in xmax), so two concurrent
            // registrations of a new center cannot both answer "new".
            let mut tx = self.pool.begin().await?;
            self.check_fence(&mut tx).await?;
            let inserted: bool = sqlx::query_scalar(
                "INSERT INTO centers (id, spec, created_at, updated_at) VALUES ($1, $2, $3, $3) \
                 ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at \
                 RETURNING (xmax = 0)",
            )
            .bind(spec.id.as_str())
            .bind(json)
            .bind(at.0)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(inserted)
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
            self.check_fence(&mut tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO jobs (tenant, submitted_by, name, queue, priority, spec, state, attempt, submitted_at, updated_at, idempotency_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, $7, $8) RETURNING id",
            )
            .bind(new.tenant.as_str())
            .bind(&new.submitted_by)
            .bind(&new.spec.name)
            .bind(&new.spec.queue)
            .bind(new.spec.priority.as_str())
            .bind(spec_json)
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
                sqlx::query(
                    "INSERT INTO job_events (job_id, at, attempt, state, message) VALUES ($1, $2, 0, $3, $4)",
                )
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
            self.check_fence(&mut tx).await?;
            let r = sqlx::query(
                "UPDATE jobs SET state = $1, attempt = $2, center = $3, sku = $4, alloc = $5, placement = $6, \
                 lease_expires_at = $7, started_at = $8, ended_at = $9, exit_code = $10, reason = $11, \
                 card_seconds = $12, updated_at = $13 \
                 WHERE id = $14 AND state = $15 AND attempt = $16",
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
                // Dropping `tx` rolls back (nothing was written anyway).
                return Err(StoreError::Conflict {
                    job: job.id,
                    expected_state: expect_state,
                    expected_attempt: expect_attempt,
                });
            }
            if let Some(e) = event {
                sqlx::query(
                    "INSERT INTO job_events (job_id, at, attempt, state, message) VALUES ($1, $2, $3, $4, $5)",
                )
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
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (job_id, attempt) DO UPDATE SET started_at = excluded.started_at, ended_at = excluded.ended_at, \
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
                "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant = $1 AND idempotency_key = $2"
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
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
            )))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
    }

    fn jobs<'a>(&'a self, f: &'a JobFilter) -> StoreFuture<'a, Vec<JobRecord>> {
        Box::pin(async move {
            let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id > $1");
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
            // Built only from constant fragments and placeholder numbers; values are bound.
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
                "SELECT at, attempt, state, message FROM job_events WHERE job_id = $1 ORDER BY id",
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
                 FROM attempts WHERE job_id = $1 ORDER BY attempt",
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
            let rows =
                sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state ORDER BY state")
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
            if rows.is_empty() {
                return Ok(());
            }
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq as i64).collect();
            let streams: Vec<&str> = rows.iter().map(|r| r.stream.as_str()).collect();
            let data: Vec<&[u8]> = rows.iter().map(|r| r.data.as_bytes()).collect();
            // One statement is one transaction; chunks already stored (a retry), or repeated
            // within the batch, are skipped.
            sqlx::query(
                "INSERT INTO logs (job_id, attempt, seq, stream, data) \
                 SELECT $1, $2, seq, stream, data FROM UNNEST($3::BIGINT[], $4::TEXT[], $5::BYTEA[]) AS c(seq, stream, data) \
                 ON CONFLICT (job_id, attempt, seq) DO NOTHING",
            )
            .bind(job.0)
            .bind(attempt as i64)
            .bind(seqs)
            .bind(streams)
            .bind(data)
            .execute(&self.pool)
            .await?;
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
                "SELECT seq, stream, data FROM logs WHERE job_id = $1 AND attempt = $2 AND seq >= $3 \
                 ORDER BY seq LIMIT $4",
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
                        data: String::from_utf8(r.try_get("data")?)
                            .map_err(|e| corrupt("logs.data", e))?,
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
            let mut tx = self.pool.begin().await?;
            self.check_fence(&mut tx).await?;
            let r = sqlx::query("UPDATE tenants SET policy = $1 WHERE id = $2")
                .bind(policy)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
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
            self.check_fence(&mut tx).await?;
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
            self.check_fence(&mut tx).await?;
            for r in rows {
                sqlx::query("INSERT INTO hub_inputs (at, input) VALUES ($1, $2)")
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
                "SELECT seq, at, input FROM hub_inputs WHERE seq > $1 ORDER BY seq LIMIT $2",
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
            let mut tx = self.pool.begin().await?;
            self.check_fence(&mut tx).await?;
            let r = sqlx::query("UPDATE centers SET drained = $1 WHERE id = $2")
                .bind(drained)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn drained_centers(&self) -> StoreFuture<'_, Vec<CenterId>> {
        Box::pin(async move {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM centers WHERE drained ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?;
            Ok(ids.into_iter().map(CenterId).collect())
        })
    }

    fn supports_leadership(&self) -> bool {
        true
    }

    fn acquire_lease<'a>(
        &'a self,
        holder: &'a str,
        url: &'a str,
        held: Option<u64>,
        ttl: Duration,
    ) -> StoreFuture<'a, LeaseGrant> {
        Box::pin(async move {
            // One statement, one reading of the clock: renew our own unexpired term (same
            // epoch), or start a new term (next epoch) on a lease that is ours in another term
            // or has expired. Under READ COMMITTED a concurrent taker waits for this row and
            // re-checks the condition against the new version, so two hubs never both win.
            let sql = format!(
                "WITH now AS (SELECT {NOW_MS} AS ms) \
                 UPDATE hub_lease SET \
                   epoch = CASE WHEN hub_lease.holder = $1 AND hub_lease.epoch = $3 \
                                 AND hub_lease.expires_at > now.ms \
                           THEN hub_lease.epoch ELSE hub_lease.epoch + 1 END, \
                   holder = $1, url = $2, expires_at = now.ms + $4 \
                 FROM now \
                 WHERE hub_lease.id = 1 \
                   AND (hub_lease.holder = $1 OR hub_lease.expires_at <= now.ms) \
                 RETURNING hub_lease.holder, hub_lease.url, hub_lease.epoch, \
                   hub_lease.expires_at - now.ms AS remaining_ms"
            );
            // A renewal that cannot finish within a fifth of the lease is of no use: bound it on
            // the server too, so a call the hub gave up on does not commit later.
            let limit = (ttl.as_millis() / 5).max(100);
            let mut tx = self.lease_pool.begin().await?;
            tx.execute(AssertSqlSafe(format!(
                "SET LOCAL statement_timeout = {limit}; SET LOCAL lock_timeout = {limit}"
            )))
            .await?;
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(holder)
                .bind(url)
                .bind(held.map_or(-1, |e| e as i64))
                .bind(ttl.as_millis() as i64)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            match row {
                Some(r) => Ok(LeaseGrant {
                    lease: lease_from_row(&r)?,
                    granted: true,
                }),
                None => Ok(LeaseGrant {
                    lease: self.lease().await?,
                    granted: false,
                }),
            }
        })
    }

    fn release_lease<'a>(&'a self, holder: &'a str, epoch: u64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE hub_lease SET expires_at = {NOW_MS} WHERE id = 1 AND holder = $1 AND epoch = $2"
            )))
            .bind(holder)
            .bind(epoch as i64)
            .execute(&self.lease_pool)
            .await?;
            Ok(())
        })
    }

    fn lease(&self) -> StoreFuture<'_, Lease> {
        Box::pin(async move {
            let r = sqlx::query(AssertSqlSafe(format!(
                "SELECT holder, url, epoch, expires_at - {NOW_MS} AS remaining_ms FROM hub_lease WHERE id = 1"
            )))
            .fetch_one(&self.lease_pool)
            .await?;
            lease_from_row(&r)
        })
    }

    fn set_fence(&self, epoch: Option<u64>) {
        self.fence.store(epoch.unwrap_or(0), Ordering::SeqCst);
    }
}

/// Appends money records inside an open transaction, one statement each so `seq` follows the
/// slice's order.
async fn insert_money(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    records: &[String],
) -> StoreResult<()> {
    for r in records {
        sqlx::query("INSERT INTO money_records (record) VALUES ($1)")
            .bind(r)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

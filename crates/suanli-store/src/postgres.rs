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
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool, Postgres, Row, Transaction};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, Role, SharePolicy, TenantId, Timestamp};

use crate::rows::{corrupt, from_json, parse, row_decoders, to_json};
use crate::sql::{self, Run, Stmt, query};
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

impl Run for Transaction<'_, Postgres> {
    async fn run(&mut self, s: Stmt<'_>) -> StoreResult<u64> {
        Ok(query(&s).execute(&mut **self).await?.rows_affected())
    }

    async fn insert(&mut self, s: Stmt<'_>) -> StoreResult<i64> {
        Ok(query(&s).fetch_one(&mut **self).await?.try_get(0)?)
    }
}

impl PostgresStore {
    /// An unfenced write transaction (the shared token writes; SQLite's takes its lock at once).
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// A write transaction, fenced (see [`Store::set_fence`]).
    async fn begin_fenced(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        Ok(tx)
    }

    /// Runs `s` alone in a fenced transaction; how many rows it changed.
    async fn write(&self, s: Stmt<'_>) -> StoreResult<u64> {
        let mut tx = self.begin_fenced().await?;
        let n = tx.run(s).await?;
        tx.commit().await?;
        Ok(n)
    }
}

impl Store for PostgresStore {
    // Every read, and the unfenced one-statement writes: the same text for both stores.
    crate::shared::store_methods!();

    fn upsert_center<'a>(&'a self, spec: &'a CenterSpec, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let json = to_json("centers.spec", spec)?;
            // One statement; `xmax = 0` holds exactly for a row this statement inserted (an
            // updated row version carries the updating transaction in xmax), so two concurrent
            // registrations of a new center cannot both answer "new".
            let mut tx = self.begin_fenced().await?;
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
            let stmt = sql::logs(job, attempt, from, limit);
            let rows = query(&stmt).fetch_all(&self.pool).await?;
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
            let json = to_json("tenants.policy", policy)?;
            Ok(self.write(sql::set_tenant_policy(id, json)).await? == 1)
        })
    }

    fn append_money<'a>(&'a self, records: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin_fenced().await?;
            sql::append_money(&mut tx, records).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn append_inputs<'a>(&'a self, rows: &'a [InputRow]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin_fenced().await?;
            sql::append_inputs(&mut tx, rows).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn append_facts<'a>(&'a self, rows: &'a [NewFact], at: Timestamp) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let mut tx = self.begin_fenced().await?;
            sql::append_facts(&mut tx, rows, at).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn set_center_drained<'a>(&'a self, id: &'a CenterId, drained: bool) -> StoreFuture<'a, bool> {
        Box::pin(async move { Ok(self.write(sql::set_center_drained(id, drained)).await? == 1) })
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

//! SQLite implementation: one file in the data dir, WAL journal, synchronous=FULL so a committed
//! transaction survives a crash of the process or the machine.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool, Transaction};
use suanli_types::{CenterId, CenterSpec, JobId, JobState, Role, SharePolicy, TenantId, Timestamp};

use crate::rows::{from_json, parse, row_decoders, to_json};
use crate::sql::{self, Run, Stmt, query};
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

impl SqliteStore {
    /// A write transaction that takes the write lock at once (`BEGIN IMMEDIATE`). A deferred
    /// transaction that reads first and writes later fails at once with SQLITE_BUSY (no busy
    /// wait) when another connection commits in between, as a token's last-use stamp may.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// A write transaction that a newer leader's fence would refuse: SQLite is one hub's file,
    /// so there is no fence and it is [`Self::write_tx`].
    async fn begin_fenced(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.write_tx().await
    }
}

impl Run for Transaction<'_, Sqlite> {
    async fn run(&mut self, s: Stmt<'_>) -> StoreResult<u64> {
        Ok(query(&s).execute(&mut **self).await?.rows_affected())
    }

    async fn insert(&mut self, s: Stmt<'_>) -> StoreResult<i64> {
        Ok(query(&s).fetch_one(&mut **self).await?.try_get(0)?)
    }
}

impl Store for SqliteStore {
    // Every read, and the unfenced one-statement writes: the same text for both stores.
    crate::shared::store_methods!();

    fn upsert_center<'a>(&'a self, spec: &'a CenterSpec, at: Timestamp) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let json = to_json("centers.spec", spec)?;
            let mut tx = self.write_tx().await?;
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

    fn append_logs<'a>(
        &'a self,
        job: JobId,
        attempt: u32,
        rows: &'a [LogRow],
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut tx = self.write_tx().await?;
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
            let stmt = sql::logs(job, attempt, from, limit);
            let rows = query(&stmt).fetch_all(&self.pool).await?;
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
            let stmt = sql::set_tenant_policy(id, to_json("tenants.policy", policy)?);
            let r = query(&stmt).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn append_money<'a>(&'a self, records: &'a [String]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if records.is_empty() {
                return Ok(());
            }
            let mut tx = self.write_tx().await?;
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
            let mut tx = self.write_tx().await?;
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
            let mut tx = self.write_tx().await?;
            sql::append_facts(&mut tx, rows, at).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn set_center_drained<'a>(&'a self, id: &'a CenterId, drained: bool) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let stmt = sql::set_center_drained(id, drained);
            let r = query(&stmt).execute(&self.pool).await?;
            Ok(r.rows_affected() == 1)
        })
    }
}

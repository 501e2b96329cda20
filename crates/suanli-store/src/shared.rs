//! The [`Store`](crate::Store) methods whose text is the same for both stores: every read, and
//! the writes that are one statement and not fenced. Their SQL and values come from
//! [`sql`](crate::sql), their rows are decoded by the decoders of
//! [`row_decoders!`](crate::rows::row_decoders); the macro writes them into each store's
//! `impl Store` block, where `self.pool` is that store's pool and names resolve as in the store's
//! module (its `use crate::*`, `sql::{self, query}` and row decoders). A generic version would
//! need a bound per column type and row type for each database.

/// Expands, inside `impl Store for X`, to the shared methods (see the module documentation).
macro_rules! store_methods {
    () => {
        fn create_tenant<'a>(
            &'a self,
            t: &'a TenantRecord,
            at: Timestamp,
        ) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let r = query(&sql::create_tenant(t, at))
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected() == 1)
            })
        }

        fn tenants(&self) -> StoreFuture<'_, Vec<TenantRecord>> {
            Box::pin(async move {
                let rows = sqlx::query(sql::TENANTS).fetch_all(&self.pool).await?;
                rows.iter().map(tenant_from_row).collect()
            })
        }

        fn tenant<'a>(&'a self, id: &'a TenantId) -> StoreFuture<'a, Option<TenantRecord>> {
            Box::pin(async move {
                let row = query(&sql::tenant(id)).fetch_optional(&self.pool).await?;
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
                query(&sql::insert_token(hash, p, at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            })
        }

        fn principal<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<Principal>> {
            Box::pin(async move {
                let row = query(&sql::principal(hash))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(principal_from_row).transpose()
            })
        }

        fn centers(&self) -> StoreFuture<'_, Vec<CenterSpec>> {
            Box::pin(async move {
                let rows: Vec<(String, String)> =
                    sqlx::query_as(sql::CENTERS).fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|(id, spec)| from_json("centers.spec", id, spec))
                    .collect()
            })
        }

        fn job_by_idempotency_key<'a>(
            &'a self,
            tenant: &'a TenantId,
            key: &'a str,
        ) -> StoreFuture<'a, Option<JobRecord>> {
            Box::pin(async move {
                let stmt = sql::job_by_idempotency_key(tenant, key);
                let row = query(&stmt).fetch_optional(&self.pool).await?;
                row.as_ref().map(job_from_row).transpose()
            })
        }

        fn job(&self, id: JobId) -> StoreFuture<'_, Option<JobRecord>> {
            Box::pin(async move {
                let row = query(&sql::job(id)).fetch_optional(&self.pool).await?;
                row.as_ref().map(job_from_row).transpose()
            })
        }

        fn jobs<'a>(&'a self, f: &'a JobFilter) -> StoreFuture<'a, Vec<JobRecord>> {
            Box::pin(async move {
                let rows = query(&sql::jobs(f)).fetch_all(&self.pool).await?;
                rows.iter().map(job_from_row).collect()
            })
        }

        fn unfinished_jobs(&self) -> StoreFuture<'_, Vec<JobRecord>> {
            Box::pin(async move {
                let rows = query(&sql::unfinished_jobs()).fetch_all(&self.pool).await?;
                rows.iter().map(job_from_row).collect()
            })
        }

        fn job_events(&self, id: JobId) -> StoreFuture<'_, Vec<JobEvent>> {
            Box::pin(async move {
                let rows = query(&sql::job_events(id)).fetch_all(&self.pool).await?;
                rows.iter().map(event_from_row).collect()
            })
        }

        fn attempts(&self, id: JobId) -> StoreFuture<'_, Vec<AttemptRecord>> {
            Box::pin(async move {
                let rows = query(&sql::attempts(id)).fetch_all(&self.pool).await?;
                rows.iter().map(attempt_from_row).collect()
            })
        }

        fn count_jobs_by_state(&self) -> StoreFuture<'_, Vec<(JobState, u64)>> {
            Box::pin(async move {
                let rows = sqlx::query(sql::COUNT_JOBS_BY_STATE)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(state_count_from_row).collect()
            })
        }

        fn tenant_policies(&self) -> StoreFuture<'_, Vec<(TenantId, SharePolicy)>> {
            Box::pin(async move {
                let rows = sqlx::query(sql::TENANT_POLICIES)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(policy_from_row).collect()
            })
        }

        fn money_records(&self) -> StoreFuture<'_, Vec<String>> {
            Box::pin(async move {
                Ok(sqlx::query_scalar(sql::MONEY_RECORDS)
                    .fetch_all(&self.pool)
                    .await?)
            })
        }

        fn inputs(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<LoggedInput>> {
            Box::pin(async move {
                let rows = query(&sql::inputs(after, limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(input_from_row).collect()
            })
        }

        fn drained_centers(&self) -> StoreFuture<'_, Vec<CenterId>> {
            Box::pin(async move {
                let ids: Vec<String> = sqlx::query_scalar(sql::DRAINED_CENTERS)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(ids.into_iter().map(CenterId).collect())
            })
        }
    };
}
pub(crate) use store_methods;

//! The [`Store`](crate::Store) methods whose text is the same for both stores: every read, the
//! writes that are one statement and not fenced (and the airlock's insert, two statements in
//! each store's `write_tx`), and the job inserts (in each store's
//! `begin_fenced` transaction). Their SQL and values come from
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

        fn insert_job(&self, new: NewJob) -> StoreFuture<'_, JobRecord> {
            Box::pin(async move {
                let mut tx = self.begin_fenced().await?;
                let id = sql::insert_job(&mut tx, &new, None).await?;
                tx.commit().await?;
                let array = new.array_task.map(|_| id);
                Ok(JobRecord::queued(id, new, array))
            })
        }

        fn insert_array(&self, tasks: Vec<NewJob>) -> StoreFuture<'_, Vec<JobRecord>> {
            Box::pin(async move {
                let mut tx = self.begin_fenced().await?;
                let mut ids = Vec::with_capacity(tasks.len());
                let mut array = None;
                for new in &tasks {
                    let id = sql::insert_job(&mut tx, new, array).await?;
                    array = array.or(Some(id));
                    ids.push(id);
                }
                tx.commit().await?;
                Ok(ids
                    .into_iter()
                    .zip(tasks)
                    .map(|(id, new)| JobRecord::queued(id, new, array))
                    .collect())
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
                let mut tx = self.begin_fenced().await?;
                let expect = (expect_state, expect_attempt);
                sql::update_job(&mut tx, job, expect, event, attempt, money).await?;
                tx.commit().await?;
                Ok(())
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
            t: &'a NewToken,
            at: Timestamp,
        ) -> StoreFuture<'a, TokenRecord> {
            Box::pin(async move {
                let mut tx = self.write_tx().await?;
                let id = sql::store_token(&mut tx, hash, t, at).await?;
                tx.commit().await?;
                self.token_by_id(id).await?.ok_or_else(|| {
                    crate::rows::corrupt("tokens", format!("token {id} is gone after its insert"))
                })
            })
        }

        fn rotate_token<'a>(
            &'a self,
            hash: &'a str,
            t: &'a NewToken,
            at: Timestamp,
            retire_at: Timestamp,
            same_name: bool,
        ) -> StoreFuture<'a, TokenRecord> {
            Box::pin(async move {
                let mut tx = self.write_tx().await?;
                let id = sql::rotate_token(&mut tx, hash, t, at, retire_at, same_name).await?;
                tx.commit().await?;
                self.token_by_id(id).await?.ok_or_else(|| {
                    crate::rows::corrupt("tokens", format!("token {id} is gone after its insert"))
                })
            })
        }

        fn revoke_token(&self, id: i64, at: Timestamp) -> StoreFuture<'_, Option<TokenRecord>> {
            Box::pin(async move {
                if self.token_by_id(id).await?.is_none() {
                    return Ok(None);
                }
                let mut tx = self.write_tx().await?;
                sql::revoke_token(&mut tx, id, at).await?;
                tx.commit().await?;
                self.token_by_id(id).await
            })
        }

        fn token<'a>(&'a self, hash: &'a str) -> StoreFuture<'a, Option<TokenRecord>> {
            Box::pin(async move {
                let row = query(&sql::token_by_hash(hash))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(token_from_row).transpose()
            })
        }

        fn token_by_id(&self, id: i64) -> StoreFuture<'_, Option<TokenRecord>> {
            Box::pin(async move {
                let row = query(&sql::token_by_id(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(token_from_row).transpose()
            })
        }

        fn tokens<'a>(&'a self, f: &'a TokenFilter) -> StoreFuture<'a, Vec<TokenRecord>> {
            Box::pin(async move {
                let rows = query(&sql::tokens(f)).fetch_all(&self.pool).await?;
                rows.iter().map(token_from_row).collect()
            })
        }

        fn token_generation(&self) -> StoreFuture<'_, u64> {
            Box::pin(async move {
                let g: i64 = sqlx::query_scalar(sql::TOKEN_GENERATION)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(g as u64)
            })
        }

        fn touch_token(&self, id: i64, at: Timestamp) -> StoreFuture<'_, ()> {
            Box::pin(async move {
                query(&sql::touch_token(id, at)).execute(&self.pool).await?;
                Ok(())
            })
        }

        fn has_live_token_with_role(&self, role: Role, at: Timestamp) -> StoreFuture<'_, bool> {
            Box::pin(async move {
                let stmt = sql::count_live_tokens(role, at);
                let n: i64 = query(&stmt).fetch_one(&self.pool).await?.try_get(0)?;
                Ok(n > 0)
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

        fn ended_attempts(
            &self,
            since: Timestamp,
            priority: Option<::suanli_types::PriorityClass>,
            limit: u32,
        ) -> StoreFuture<'_, Vec<EndedAttempt>> {
            Box::pin(async move {
                let rows = query(&sql::ended_attempts(since, priority, limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(EndedAttempt {
                            attempt: attempt_from_row(r)?,
                            tenant: TenantId(r.try_get("tenant")?),
                            priority: crate::rows::parse(
                                "jobs.priority",
                                r.try_get::<&str, _>("priority")?,
                            )?,
                        })
                    })
                    .collect()
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

        fn append_audit<'a>(
            &'a self,
            records: &'a [::suanli_audit::Record],
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                if records.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                sql::append_audit(&mut tx, records).await?;
                tx.commit().await?;
                Ok(())
            })
        }

        fn audit_entries<'a>(
            &'a self,
            f: &'a AuditFilter,
        ) -> StoreFuture<'a, Vec<::suanli_audit::Record>> {
            Box::pin(async move {
                let rows = query(&sql::audit_entries(f)).fetch_all(&self.pool).await?;
                rows.iter().map(audit_from_row).collect()
            })
        }

        fn audit_leaves(&self) -> StoreFuture<'_, Vec<::suanli_audit::Hash>> {
            Box::pin(async move {
                let leaves: Vec<String> = sqlx::query_scalar(sql::AUDIT_LEAVES)
                    .fetch_all(&self.pool)
                    .await?;
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, l)| crate::rows::hash("audit_entries.leaf", i as i64, l))
                    .collect()
            })
        }

        fn append_checkpoint<'a>(
            &'a self,
            c: &'a ::suanli_audit::Checkpoint,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                query(&sql::append_checkpoint(c))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            })
        }

        fn audit_checkpoints(&self) -> StoreFuture<'_, Vec<::suanli_audit::Checkpoint>> {
            Box::pin(async move {
                let rows = sqlx::query(sql::AUDIT_CHECKPOINTS)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(checkpoint_from_row).collect()
            })
        }

        fn add_audit_key<'a>(
            &'a self,
            key: &'a ::suanli_audit::PublicKey,
            at: Timestamp,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                query(&sql::add_audit_key(key, at))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            })
        }

        fn audit_keys(&self) -> StoreFuture<'_, Vec<::suanli_audit::PublicKey>> {
            Box::pin(async move {
                let keys: Vec<String> = sqlx::query_scalar(sql::AUDIT_KEYS)
                    .fetch_all(&self.pool)
                    .await?;
                keys.iter()
                    .map(|k| {
                        ::suanli_audit::PublicKey::from_hex(k)
                            .map_err(|e| crate::rows::corrupt("audit_keys.public_key", e))
                    })
                    .collect()
            })
        }

        fn record_risk_flags<'a>(
            &'a self,
            flags: &'a [::suanli_audit::risk::Flag],
            at: Timestamp,
        ) -> StoreFuture<'a, Vec<String>> {
            Box::pin(async move {
                if flags.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.write_tx().await?;
                let new = sql::record_risk_flags(&mut tx, flags, at).await?;
                tx.commit().await?;
                Ok(new)
            })
        }

        fn risk_flags(&self) -> StoreFuture<'_, Vec<RiskFlagRecord>> {
            Box::pin(async move {
                let flags = sqlx::query(sql::RISK_FLAGS).fetch_all(&self.pool).await?;
                let changes = sqlx::query(sql::RISK_FLAG_CHANGES)
                    .fetch_all(&self.pool)
                    .await?;
                let changes = changes
                    .iter()
                    .map(risk_change_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                flags
                    .iter()
                    .map(|r| {
                        let mut rec = risk_flag_from_row(r)?;
                        rec.changes = changes
                            .iter()
                            .filter(|(id, _)| *id == rec.flag.id)
                            .map(|(_, c)| c.clone())
                            .collect();
                        Ok(rec)
                    })
                    .collect()
            })
        }

        fn change_risk_flag<'a>(
            &'a self,
            id: &'a str,
            change: &'a RiskFlagChange,
        ) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let n: i64 = query(&sql::risk_flag_exists(id))
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
                if n == 0 {
                    return Ok(false);
                }
                let mut tx = self.write_tx().await?;
                sql::change_risk_flag(&mut tx, id, change).await?;
                tx.commit().await?;
                Ok(true)
            })
        }

        fn facts(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<StoredFact>> {
            Box::pin(async move {
                let rows = query(&sql::facts(after, limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| -> StoreResult<StoredFact> {
                        Ok(StoredFact {
                            seq: r.try_get::<i64, _>("seq")? as u64,
                            at: Timestamp(r.try_get("at")?),
                            fact: r.try_get("fact")?,
                            recorded_at: Timestamp(r.try_get("recorded_at")?),
                        })
                    })
                    .collect()
            })
        }

        fn insert_release<'a>(&'a self, r: &'a ReleaseRecord) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                query(&sql::insert_release(r))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            StoreError::Exists(format!("release {}", r.quarter))
                        }
                        e => e.into(),
                    })?;
                Ok(())
            })
        }

        fn releases(&self) -> StoreFuture<'_, Vec<ReleaseInfo>> {
            Box::pin(async move {
                let rows: Vec<(String, i64, String)> =
                    sqlx::query_as(sql::RELEASES).fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(quarter, made_at, sha256)| ReleaseInfo {
                        quarter,
                        made_at: Timestamp(made_at),
                        sha256,
                    })
                    .collect())
            })
        }

        fn release<'a>(&'a self, quarter: &'a str) -> StoreFuture<'a, Option<ReleaseRecord>> {
            Box::pin(async move {
                let row = query(&sql::release(quarter))
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| -> StoreResult<ReleaseRecord> {
                    Ok(ReleaseRecord {
                        quarter: r.try_get("quarter")?,
                        made_at: Timestamp(r.try_get("made_at")?),
                        json: r.try_get("json")?,
                        csv: r.try_get("csv")?,
                        html: r.try_get("html")?,
                        sha256: r.try_get("sha256")?,
                    })
                })
                .transpose()
            })
        }

        fn insert_model<'a>(&'a self, m: &'a NewModel) -> StoreFuture<'a, ModelRecord> {
            Box::pin(async move {
                let spec = to_json("models.spec", &m.spec)?;
                let id: i64 = query(&sql::insert_model(m, spec))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            StoreError::Exists(format!("model {}@{}", m.spec.name, m.spec.revision))
                        }
                        e => e.into(),
                    })?
                    .try_get(0)?;
                Ok(ModelRecord {
                    id,
                    spec: m.spec.clone(),
                    owner: m.owner.clone(),
                    published_by: m.published_by.clone(),
                    published_at: m.published_at,
                })
            })
        }

        fn models(&self) -> StoreFuture<'_, Vec<ModelRecord>> {
            Box::pin(async move {
                let rows = sqlx::query(sql::MODELS).fetch_all(&self.pool).await?;
                rows.iter().map(model_from_row).collect()
            })
        }

        fn model(&self, id: i64) -> StoreFuture<'_, Option<ModelRecord>> {
            Box::pin(async move {
                let row = query(&sql::model(id)).fetch_optional(&self.pool).await?;
                row.as_ref().map(model_from_row).transpose()
            })
        }

        fn insert_certification<'a>(
            &'a self,
            r: &'a ::suanli_models::CertRequest,
        ) -> StoreFuture<'a, ::suanli_models::Certification> {
            Box::pin(async move {
                let id: i64 = query(&sql::insert_certification(r))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            StoreError::Exists(format!("a certification of job {}", r.job))
                        }
                        e => e.into(),
                    })?
                    .try_get(0)?;
                Ok(::suanli_models::Certification::new(id, r.clone()))
            })
        }

        fn record_cert_outcome<'a>(
            &'a self,
            id: i64,
            outcome: &'a ::suanli_models::Outcome,
            at: Timestamp,
        ) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let json = to_json("certification_steps.outcome", outcome)?;
                let step = sql::insert_cert_step(id, "outcome", Some(json), None, at);
                crate::shared::cert_step!(self, id, "outcome", step)
            })
        }

        fn record_cert_review<'a>(
            &'a self,
            id: i64,
            review: &'a ::suanli_models::Review,
        ) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let step = sql::insert_cert_step(id, "review", None, Some(review), review.at);
                crate::shared::cert_step!(self, id, "review", step)
            })
        }

        fn certifications(
            &self,
            model: Option<i64>,
        ) -> StoreFuture<'_, Vec<::suanli_models::Certification>> {
            Box::pin(async move {
                let rows = query(&sql::certifications(model))
                    .fetch_all(&self.pool)
                    .await?;
                let mut certs = rows
                    .iter()
                    .map(cert_from_row)
                    .collect::<StoreResult<Vec<_>>>()?;
                let steps = query(&sql::cert_steps(model)).fetch_all(&self.pool).await?;
                for r in &steps {
                    let (id, step) = cert_step_from_row(r)?;
                    let Ok(i) = certs.binary_search_by_key(&id, |c| c.id) else {
                        continue;
                    };
                    match step {
                        crate::rows::CertStep::Outcome(o, at) => certs[i].apply_outcome(o, at),
                        crate::rows::CertStep::Review(rv) => certs[i].apply_review(rv),
                    }
                }
                Ok(certs)
            })
        }

        fn put_output<'a>(&'a self, o: &'a OutputRecord) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                query(&sql::put_output(o)).execute(&self.pool).await?;
                Ok(())
            })
        }

        fn outputs(&self, job: JobId) -> StoreFuture<'_, Vec<OutputRecord>> {
            Box::pin(async move {
                let rows = query(&sql::outputs(job)).fetch_all(&self.pool).await?;
                rows.iter().map(output_from_row).collect()
            })
        }

        fn tenant_output_bytes<'a>(&'a self, tenant: &'a TenantId) -> StoreFuture<'a, u64> {
            Box::pin(async move {
                let n: i64 = query(&sql::tenant_output_bytes(tenant))
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
                Ok(n as u64)
            })
        }

        fn delete_outputs_before(&self, job: JobId, attempt: u32) -> StoreFuture<'_, Vec<String>> {
            Box::pin(async move {
                let rows = query(&sql::delete_outputs_before(job, attempt))
                    .fetch_all(&self.pool)
                    .await?;
                crate::rows::distinct_shas(rows.iter().map(|r| r.try_get(0)))
            })
        }

        fn delete_output<'a>(
            &'a self,
            job: JobId,
            path: &'a str,
            sha256: &'a str,
        ) -> StoreFuture<'a, Vec<String>> {
            Box::pin(async move {
                let rows = query(&sql::delete_output(job, path, sha256))
                    .fetch_all(&self.pool)
                    .await?;
                crate::rows::distinct_shas(rows.iter().map(|r| r.try_get(0)))
            })
        }

        fn expire_outputs(&self, now: Timestamp) -> StoreFuture<'_, Vec<String>> {
            Box::pin(async move {
                let rows = query(&sql::expire_outputs(now))
                    .fetch_all(&self.pool)
                    .await?;
                crate::rows::distinct_shas(rows.iter().map(|r| r.try_get(0)))
            })
        }

        fn output_sha_in_use<'a>(&'a self, sha256: &'a str) -> StoreFuture<'a, bool> {
            Box::pin(async move {
                let row = query(&sql::output_sha_in_use(sha256))
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.is_some())
            })
        }

        fn upsert_dataset<'a>(&'a self, d: &'a DatasetRecord) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                let spec = to_json("datasets.spec", &d.spec)?;
                let n = query(&sql::upsert_dataset(d, spec))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if n == 0 {
                    let owner = self
                        .dataset(&d.spec.name)
                        .await?
                        .map_or_else(|| "another tenant".to_string(), |o| o.owner.to_string());
                    return Err(StoreError::Exists(format!(
                        "dataset {} is registered by tenant {owner}; tenant {} cannot replace it",
                        d.spec.name, d.owner
                    )));
                }
                Ok(())
            })
        }

        fn datasets(&self) -> StoreFuture<'_, Vec<DatasetRecord>> {
            Box::pin(async move {
                let rows = query(&sql::datasets()).fetch_all(&self.pool).await?;
                rows.iter().map(dataset_from_row).collect()
            })
        }

        fn dataset<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<DatasetRecord>> {
            Box::pin(async move {
                let row = query(&sql::dataset(name))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(dataset_from_row).transpose()
            })
        }

        fn insert_grant<'a>(&'a self, g: &'a ::suanli_data::Grant) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                query(&sql::insert_grant(g))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.is_unique_violation() => {
                            StoreError::Exists(format!(
                                "a grant of dataset {} to tenant {} at {}",
                                g.dataset, g.tenant, g.granted_at
                            ))
                        }
                        e => e.into(),
                    })?;
                Ok(())
            })
        }

        fn revoke_grants<'a>(
            &'a self,
            dataset: &'a str,
            tenant: &'a TenantId,
            at: Timestamp,
        ) -> StoreFuture<'a, u64> {
            Box::pin(async move {
                let r = query(&sql::revoke_grants(dataset, tenant, at))
                    .execute(&self.pool)
                    .await?;
                Ok(r.rows_affected())
            })
        }

        fn grants<'a>(&'a self, dataset: &'a str) -> StoreFuture<'a, Vec<::suanli_data::Grant>> {
            Box::pin(async move {
                let rows = query(&sql::grants(dataset)).fetch_all(&self.pool).await?;
                rows.iter().map(grant_from_row).collect()
            })
        }

        fn insert_release_request<'a>(
            &'a self,
            r: &'a ::suanli_data::ReleaseRequest,
        ) -> StoreFuture<'a, i64> {
            Box::pin(async move {
                let record = to_json("airlock_requests.record", r)?;
                let mut tx = self.write_tx().await?;
                let id = tx.insert(sql::insert_release_request(r, record)).await?;
                let stored = ::suanli_data::ReleaseRequest { id, ..r.clone() };
                let record = to_json("airlock_requests.record", &stored)?;
                tx.run(sql::set_release_record(id, record)).await?;
                tx.commit().await?;
                Ok(id)
            })
        }

        fn update_release<'a>(
            &'a self,
            r: &'a ::suanli_data::ReleaseRequest,
        ) -> StoreFuture<'a, ()> {
            Box::pin(async move {
                let record = to_json("airlock_requests.record", r)?;
                let n = query(&sql::update_release(r, record))
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if n == 1 {
                    return Ok(());
                }
                let stored: Option<i64> = query(&sql::release_steps(r.id))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                Err(StoreError::NotUpdated(match stored {
                    None => format!("airlock request {} does not exist", r.id),
                    Some(steps) => format!(
                        "airlock request {} changed since it was read ({steps} steps stored, \
                         this write has {}): read it again",
                        r.id,
                        r.history.len()
                    ),
                }))
            })
        }

        fn release_request(
            &self,
            id: i64,
        ) -> StoreFuture<'_, Option<::suanli_data::ReleaseRequest>> {
            Box::pin(async move {
                let row = query(&sql::release_request(id))
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(release_request_from_row).transpose()
            })
        }

        fn releases_of_job(
            &self,
            job: JobId,
        ) -> StoreFuture<'_, Vec<::suanli_data::ReleaseRequest>> {
            Box::pin(async move {
                let rows = query(&sql::releases_of_job(job))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(release_request_from_row).collect()
            })
        }

        fn releases_for_owner<'a>(
            &'a self,
            owner: &'a TenantId,
        ) -> StoreFuture<'a, Vec<::suanli_data::ReleaseRequest>> {
            Box::pin(async move {
                let rows = query(&sql::releases_for_owner(owner))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(release_request_from_row).collect()
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

/// Inside a shared method: appends a certification's step `$step` (a [`Stmt`](crate::sql::Stmt)),
/// `false` if there is no certification `$id`, [`StoreError::Exists`](crate::StoreError::Exists)
/// if the step was taken already.
macro_rules! cert_step {
    ($self:ident, $id:ident, $name:literal, $step:ident) => {{
        let n: i64 = query(&sql::certification_exists($id))
            .fetch_one(&$self.pool)
            .await?
            .try_get(0)?;
        if n == 0 {
            return Ok(false);
        }
        query(&$step)
            .execute(&$self.pool)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => {
                    StoreError::Exists(format!("certification {} has its {} already", $id, $name))
                }
                e => e.into(),
            })?;
        Ok(true)
    }};
}
pub(crate) use cert_step;

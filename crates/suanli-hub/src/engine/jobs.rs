//! The engine's job commands: submit (with the dependency checks), hold and release, cancel.

use super::*;

impl Engine {
    pub(super) async fn submit(
        &mut self,
        tenant: TenantId,
        by: (String, i64),
        mut spec: JobSpec,
        key: Option<String>,
        at: Timestamp,
    ) -> HubResult<(JobRecord, bool)> {
        spec.tenant = Some(tenant.clone());
        // A retried submit (same tenant and key) gets the job the first one created. The engine
        // is the only writer, so nothing can insert the key between this read and the insert.
        if let Some(k) = &key
            && let Some(rec) = self.io.store.job_by_idempotency_key(&tenant, k).await?
        {
            // The first submit stored dependencies on arrays as their tasks.
            let spec = match self.check_parents(&tenant, &spec).await {
                Ok((_, Some(dep))) => JobSpec {
                    dependency: Some(dep),
                    ..spec
                },
                _ => spec,
            };
            // The first submit stored `begin` resolved at its time.
            let again = spec
                .clone()
                .resolved(rec.submitted_at)
                .unwrap_or_else(|_| spec.clone());
            if rec.spec != again {
                return Err(HubError::Conflict(format!(
                    "idempotency key {k:?} was used for job {} with another spec; use a new key \
                     for a new job",
                    rec.id
                )));
            }
            return Ok((rec, false));
        }
        self.know_tenant(&tenant, at).await?;
        let (finals, expanded) = self.check_parents(&tenant, &spec).await?;
        if expanded.is_some() {
            spec.dependency = expanded;
        }
        for (id, st) in &finals {
            self.state.life.note_final(*id, *st);
        }
        let new = self
            .state
            .life
            .submit(at, tenant, (by.0, Some(by.1)), spec, key)
            .map_err(|e| match e {
                suanli_lifecycle::SubmitError::Unschedulable(r) => {
                    HubError::Unschedulable(views::rejections(&r))
                }
                suanli_lifecycle::SubmitError::OverBudget(e) => HubError::OverBudget(e),
                suanli_lifecycle::SubmitError::Invalid(e) => {
                    SpecError::new(format!("spec.{}", e.field), e.message).into()
                }
            })?;
        let recs = match new.spec.array_spec() {
            // One job per task, inserted together; the key goes with the first.
            Some(array) => {
                let tasks = array
                    .tasks
                    .iter()
                    .enumerate()
                    .map(|(i, t)| NewJob {
                        array_task: Some(*t),
                        idempotency_key: if i == 0 {
                            new.idempotency_key.clone()
                        } else {
                            None
                        },
                        ..new.clone()
                    })
                    .collect();
                self.io.store.insert_array(tasks).await?
            }
            None => vec![self.io.store.insert_job(new).await?],
        };
        let mut finals = Some(finals);
        for rec in &recs {
            self.state.submitted(rec.clone());
            self.io.indicators.observe(Event::Submitted(rec), at);
            self.note(
                at,
                Input::Submit {
                    job: Box::new(rec.clone()),
                    finals: finals.take().unwrap_or_default(),
                },
            );
        }
        let first = recs.into_iter().next().expect("a submit stores a job");
        Ok((first, true))
    }

    /// The parents a new job depends on must be jobs of its tenant; answers how those that
    /// ended, ended, and, when a parent is an array (its id), the dependency with the array
    /// replaced by its tasks (as sbatch, a dependency on an array is on all of its tasks).
    pub(super) async fn check_parents(
        &self,
        tenant: &TenantId,
        spec: &JobSpec,
    ) -> HubResult<(Vec<(JobId, JobState)>, Option<String>)> {
        let mut finals = Vec::new();
        let Some(mut dep) = spec.dependencies() else {
            return Ok((finals, None));
        };
        let mut note = |r: &JobRecord, live: bool| {
            if r.state.is_terminal() && !live {
                finals.push((r.id, r.state));
            }
        };
        // Each parent is a lookup on the engine's task, and an array's tasks become terms.
        use suanli_types::spec::sched::MAX_PARENTS;
        let parents = dep.parents();
        if parents.len() > MAX_PARENTS {
            return Err(SpecError::new(
                "spec.dependency",
                format!(
                    "{} parent jobs: at most {MAX_PARENTS} (an array counts once)",
                    parents.len()
                ),
            )
            .into());
        }
        let mut arrays: BTreeMap<JobId, Vec<JobId>> = BTreeMap::new();
        for p in parents {
            let live = self.state.life.job(p).map(|v| v.rec.clone());
            let rec = match &live {
                Some(r) => Some(r.clone()),
                None => self.io.store.job(p).await?,
            };
            let rec = match rec {
                Some(r) if &r.tenant == tenant => r,
                // Another tenant's job is answered as if it did not exist.
                _ => {
                    return Err(SpecError::new(
                        "spec.dependency",
                        format!(
                            "job {p} does not exist or is not tenant {tenant}'s: a job may depend \
                             only on jobs of its own tenant"
                        ),
                    )
                    .into());
                }
            };
            note(&rec, live.is_some());
            if rec.array.is_some_and(|a| a.job == p) {
                let tasks = self
                    .io
                    .store
                    .jobs(&suanli_store::JobFilter {
                        array: Some(p),
                        limit: suanli_types::spec::sched::MAX_ARRAY_TASKS as u32 + 1,
                        ..Default::default()
                    })
                    .await?;
                if tasks.len() > 1 && dep.any {
                    return Err(SpecError::new(
                        "spec.dependency",
                        format!(
                            "job {p} is an array of {} tasks: with `?` (any of), name the task \
                             to wait for",
                            tasks.len()
                        ),
                    )
                    .into());
                }
                for t in &tasks {
                    note(t, self.state.life.job(t.id).is_some());
                }
                arrays.insert(p, tasks.iter().map(|t| t.id).collect());
            }
        }
        if arrays.values().all(|t| t.len() <= 1) {
            return Ok((finals, None));
        }
        dep.terms = dep
            .terms
            .iter()
            .flat_map(|t| match t.job.and_then(|j| arrays.get(&j)) {
                Some(tasks) => tasks
                    .iter()
                    .map(|id| suanli_types::spec::sched::DepTerm {
                        kind: t.kind,
                        job: Some(*id),
                    })
                    .collect(),
                None => vec![*t],
            })
            .collect();
        let most = suanli_types::spec::sched::MAX_ARRAY_TASKS + MAX_PARENTS;
        if dep.terms.len() > most {
            return Err(SpecError::new(
                "spec.dependency",
                format!(
                    "it comes to {} jobs to wait for with the arrays' tasks: at most {most}",
                    dep.terms.len()
                ),
            )
            .into());
        }
        Ok((finals, Some(dep.to_string())))
    }

    pub(super) async fn hold(
        &mut self,
        id: JobId,
        hold: bool,
        by: String,
        at: Timestamp,
    ) -> HubResult<JobRecord> {
        if self.state.life.job(id).is_none() {
            return match self.io.store.job(id).await? {
                Some(rec) => Err(HubError::Conflict(format!(
                    "job {id} has already ended ({}); only a pending job can be held or released",
                    rec.state
                ))),
                None => Err(HubError::NotFound(format!("job {id}"))),
            };
        }
        let rec = self.state.hold(&mut self.io, id, hold, &by, at).await?;
        tracing::info!(job = %id, by, hold, "job held or released");
        self.note(at, Input::Hold { job: id, hold, by });
        Ok(rec)
    }

    pub(super) async fn cancel(
        &mut self,
        id: JobId,
        by: String,
        at: Timestamp,
    ) -> HubResult<JobRecord> {
        if self.state.life.job(id).is_none() {
            return match self.io.store.job(id).await? {
                Some(rec) => Err(HubError::Conflict(format!(
                    "job {id} has already ended ({})",
                    rec.state
                ))),
                None => Err(HubError::NotFound(format!("job {id}"))),
            };
        }
        let why = format!("cancelled by {by}");
        let rec = self
            .state
            .stop_job(&mut self.io, id, &why, &why, at)
            .await?;
        tracing::info!(job = %id, by, "job cancelled");
        self.note(at, Input::Cancel { job: id, by });
        Ok(rec)
    }

    // ---------------------------------------------------------------- the operator's money
}

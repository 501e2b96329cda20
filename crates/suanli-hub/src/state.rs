//! The engine's state and what each input does to it: the job lifecycle (with the core and the
//! books), the money side of what the core knows ([`Pricing`]) and center liveness
//! ([`Centers`]).
//!
//! Every input goes through one of the flows here, each of which asks the lifecycle for a
//! change, writes it through an [`Io`], and applies it only once it is written. The engine's
//! [`Io`] is the store; a replay's ([`crate::replay`]) writes nothing. So a live hub and a replay
//! of its input log run the same code, and make the same decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use suanli_lifecycle::{AttemptKey, BillNote, Change, Lifecycle, Report, StopError};
use suanli_money::{Books, Parties, Record};
use suanli_proto::{DrainView, TenantPolicyView};
use suanli_store::JobRecord;
use suanli_types::{
    CenterId, CenterSpec, JobId, JobState, SharePolicy, TenantCategory, TenantId, Timestamp,
};

use crate::centers::Centers;
use crate::engine::EngineConfig;
use crate::error::{HubError, HubResult};
use crate::indicators::{Event, JobNote};
use crate::pricing::Pricing;

/// Something worth counting, for metrics.
#[derive(Clone, Copy, Debug)]
pub enum Observed {
    /// A job was placed after waiting this long since it was queued.
    Placed {
        waited_ms: i64,
    },
    Preempted,
    Finished(suanli_types::JobState),
}

/// Where the state's changes go before they are applied, and who hears about them.
pub trait Io: Send {
    /// Writes a job change with its money records, in one transaction.
    fn write(&mut self, change: &Change) -> impl Future<Output = HubResult<()>> + Send;
    /// Appends money records, in one transaction.
    fn append_money(&mut self, records: &[Record]) -> impl Future<Output = HubResult<()>> + Send;
    /// Stores a center's definition; whether it is new.
    fn upsert_center(
        &mut self,
        spec: &CenterSpec,
        at: Timestamp,
    ) -> impl Future<Output = HubResult<bool>> + Send;
    /// Stores a center's drain; `false` if no such center.
    fn set_center_drained(
        &mut self,
        id: &CenterId,
        drained: bool,
    ) -> impl Future<Output = HubResult<bool>> + Send;
    /// Stores a tenant's policy; `false` if no such tenant.
    fn set_tenant_policy(
        &mut self,
        tenant: &TenantId,
        policy: &SharePolicy,
    ) -> impl Future<Output = HubResult<bool>> + Send;
    /// The books as persisted, after a write of money records failed.
    fn stored_books(&mut self) -> impl Future<Output = Option<Books>> + Send;
    /// The site of `center` has something new.
    fn wake(&self, center: &CenterId) {
        let _ = center;
    }
    fn observe(&self, what: Observed) {
        let _ = what;
    }
    /// Something the statistics count happened at `now` (see [`crate::indicators`]).
    fn indicate(&mut self, event: Event<'_>, now: Timestamp) {
        let _ = (event, now);
    }
    /// Runs a scheduling pass (the engine times it).
    fn pass<T>(&self, pass: impl FnOnce() -> T) -> T {
        pass()
    }
}

/// What a restarted engine rebuilds from: the store's contents (or a replay's copy of them).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub tenants: Vec<(TenantId, TenantCategory)>,
    /// The tenants' cities, for the statistics only.
    #[serde(default)]
    pub cities: std::collections::BTreeMap<TenantId, String>,
    pub policies: Vec<(TenantId, SharePolicy)>,
    pub centers: Vec<CenterSpec>,
    pub drained: Vec<CenterId>,
    /// Every money record, in order.
    pub money: Vec<Record>,
    /// Unfinished jobs by id, each with when its attempt was placed and (cancelled jobs) started.
    pub jobs: Vec<RestoredJob>,
    /// Stored money records that did not replay, left out of `money`.
    #[serde(default)]
    pub quarantined: Vec<crate::money::Quarantined>,
    /// How the parents of waiting jobs ended (jobs that are no longer unfinished).
    #[serde(default)]
    pub finals: Vec<(JobId, JobState)>,
    /// Where each model is certified (`name@revision`), for the jobs that name one.
    #[serde(default)]
    pub certified: BTreeMap<String, Vec<suanli_core::Certified>>,
    /// Where each registered dataset resides, for the jobs that read one.
    #[serde(default)]
    pub dataset_homes: BTreeMap<String, Vec<CenterId>>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RestoredJob {
    pub rec: JobRecord,
    pub placed_at: Timestamp,
    pub started: Option<Timestamp>,
}

/// The engine's state. See the module documentation.
pub struct HubState {
    pub life: Lifecycle,
    pub pricing: Pricing,
    pub centers: Centers,
    pub cfg: EngineConfig,
}

impl HubState {
    /// Rebuilds the state from a snapshot at `now`. Returns it with the price rows of pools
    /// never priced, to persist.
    pub fn restore(
        cfg: EngineConfig,
        snap: Snapshot,
        now: Timestamp,
    ) -> HubResult<(HubState, Vec<Record>)> {
        let books = Books::replay(&snap.money).map_err(|e| {
            HubError::Store(suanli_store::StoreError::Corrupt {
                what: "money_records",
                detail: e.to_string(),
            })
        })?;
        let mut parties = Parties::default();
        parties.categories.extend(snap.tenants);
        let life = Lifecycle::new(
            cfg.core.clone(),
            cfg.lease_ttl,
            books,
            parties,
            crate::views::describe(cfg.core.policy),
        );
        let mut life = life;
        life.set_report_bounds(cfg.reports);
        let mut state = HubState {
            life,
            pricing: Pricing::new(now),
            centers: Centers::new(cfg.offline_after),
            cfg,
        };
        let drained: BTreeSet<CenterId> = snap.drained.into_iter().collect();
        let mut new_rows = Vec::new();
        for spec in snap.centers {
            state.centers.entry(&spec.id).drained = drained.contains(&spec.id);
            // Pools never priced get their registered price, in force since always.
            new_rows.extend(state.pricing.price_rows(&mut state.life, &spec, now, false));
            state.pricing.install(&mut state.life, spec, now);
        }
        for (model, certified) in snap.certified {
            state.life.set_certified(&model, certified);
        }
        for (dataset, homes) in snap.dataset_homes {
            state.life.set_dataset_homes(&dataset, homes);
        }
        for (id, st) in snap.finals {
            state.life.note_final(id, st);
        }
        for j in snap.jobs {
            state.life.restore(j.rec, j.placed_at, j.started, now);
        }
        state
            .pricing
            .restore_shares(&mut state.life, &snap.policies);
        state.pricing.sync_pays(&mut state.life, now, None);
        Ok((state, new_rows))
    }

    /// Writes a change, then applies it. A failed write changes nothing (the books are rebuilt
    /// from the store if the change carried money).
    pub async fn persist(
        &mut self,
        io: &mut impl Io,
        change: Change,
        now: Timestamp,
    ) -> HubResult<()> {
        let tenant = change.record().map(|r| r.tenant.clone());
        let billed = !change.money.is_empty();
        log_bill(&change);
        if let Err(e) = io.write(&change).await {
            if billed {
                self.reload_books(io, now).await;
            }
            return Err(e);
        }
        if billed {
            // The tenant's grant may be used up now.
            self.pricing.sync_pays(&mut self.life, now, tenant.as_ref());
        }
        if let Some(c) = &change.wake {
            io.wake(c);
        }
        if let Some(s) = change.finished {
            io.observe(Observed::Finished(s));
        }
        let note = JobNote::of(&change);
        self.life.apply(change);
        io.indicate(Event::Job(note.settled(&self.life)), now);
        Ok(())
    }

    /// Appends the operator's or the tick's money records; on failure the books go back to what
    /// the store holds.
    pub async fn persist_money(
        &mut self,
        io: &mut impl Io,
        records: &[Record],
        now: Timestamp,
    ) -> HubResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        if let Err(e) = io.append_money(records).await {
            self.reload_books(io, now).await;
            return Err(e);
        }
        Ok(())
    }

    async fn reload_books(&mut self, io: &mut impl Io, now: Timestamp) {
        if let Some(books) = io.stored_books().await {
            self.life.reload_books(books);
            self.pricing.sync_prices(&mut self.life, now);
            self.pricing.sync_pays(&mut self.life, now, None);
        }
    }

    // ---------------------------------------------------------------- inputs

    /// A tenant's category is known (created, or read from the store).
    pub fn tenant_added(&mut self, tenant: TenantId, category: TenantCategory, now: Timestamp) {
        self.life.add_tenant(tenant.clone(), category);
        self.pricing.sync_pays(&mut self.life, now, Some(&tenant));
    }

    /// A submitted job was stored.
    pub fn submitted(&mut self, rec: JobRecord) {
        tracing::info!(job = %rec.id, tenant = %rec.tenant, "job queued");
        self.life.submitted(rec);
    }

    /// Cancels an unfinished job: `reason` is stored with it, `message` goes to its history.
    pub async fn stop_job(
        &mut self,
        io: &mut impl Io,
        id: JobId,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> HubResult<JobRecord> {
        let change = self
            .life
            .cancel(id, reason, message, now)
            .map_err(|e| match e {
                StopError::NotLive(id) => HubError::NotFound(format!("job {id}")),
                StopError::Cancelled(_) => HubError::Conflict(e.to_string()),
            })?;
        let rec = change.record().cloned().expect("a cancel writes the job");
        self.persist(io, change, now).await?;
        Ok(rec)
    }

    /// Registers or replaces a center; whether it is new.
    pub async fn upsert_center(
        &mut self,
        io: &mut impl Io,
        spec: CenterSpec,
        now: Timestamp,
    ) -> HubResult<bool> {
        let created = io.upsert_center(&spec, now).await?;
        let id = spec.id.clone();
        // The registered pool prices become the price rows in force from now on.
        let rows = self.pricing.price_rows(&mut self.life, &spec, now, true);
        self.persist_money(io, &rows, now).await?;
        io.indicate(Event::Registered(&spec), now);
        self.pricing.install(&mut self.life, spec, now);
        self.pricing.sync_pays(&mut self.life, now, None);
        io.indicate(Event::Center(&id, self.centers.entry(&id)), now);
        let open = self.centers.entry(&id).is_open();
        self.life.set_online(&id, open);
        self.life.mark_dirty();
        for change in self.life.fail_impossible(now) {
            let job = change.job;
            if let Err(e) = self.persist(io, change, now).await {
                tracing::error!(%job, error = %e, "could not fail an impossible job");
            }
        }
        Ok(created)
    }

    /// Drains or undrains `center`. Draining keeps new work away and hands back attempts that
    /// have not started (and, with `requeue`, running ones): each is queued again with the next
    /// attempt number and the site is told to stop it. Running attempts otherwise finish there.
    pub async fn drain(
        &mut self,
        io: &mut impl Io,
        center: CenterId,
        drain: bool,
        requeue: bool,
        now: Timestamp,
    ) -> HubResult<DrainView> {
        if self.pricing.spec(&center).is_none() || !io.set_center_drained(&center, drain).await? {
            return Err(HubError::NotFound(format!("no center {center}")));
        }
        let open = self.centers.set_drained(&center, drain);
        io.indicate(Event::Center(&center, self.centers.entry(&center)), now);
        self.life.set_online(&center, open);
        self.life.mark_dirty();
        let mut requeued = Vec::new();
        let mut running = 0;
        if drain {
            let (back, still) = self.life.drain_targets(&center, requeue);
            running = still;
            for id in back {
                let change = self.life.hand_back(id, &center, now);
                self.persist(io, change, now).await?;
                requeued.push(id);
            }
            tracing::info!(%center, running, requeued = requeued.len(), "center drained");
        } else {
            tracing::info!(%center, "center undrained");
        }
        Ok(DrainView {
            center,
            drained: drain,
            running,
            requeued,
        })
    }

    /// A heartbeat of `center` at `at`: the center is online (draining as the agent says), the
    /// leases of the attempts it lists are renewed. Answers the attempts it must stop.
    pub fn heartbeat(
        &mut self,
        center: &CenterId,
        draining: bool,
        running: &[AttemptKey],
        at: Timestamp,
    ) -> Vec<AttemptKey> {
        let (open, opened) = self.centers.heartbeat(center, draining, at);
        self.life.set_online(center, open);
        if opened {
            self.life.mark_dirty();
        }
        self.life.heartbeat(center, running, at)
    }

    /// A site's report on an attempt; `false` if it is not the current attempt there. A report
    /// that strays from the hub's record of the attempt is [`HubError::InvalidReport`] and
    /// changes nothing.
    pub async fn report(
        &mut self,
        io: &mut impl Io,
        center: &CenterId,
        job: JobId,
        attempt: u32,
        report: Report,
        now: Timestamp,
    ) -> HubResult<bool> {
        let finished = matches!(report, Report::Finished { .. });
        let change = self
            .life
            .report(center, job, attempt, report, now)
            .map_err(|e| HubError::InvalidReport {
                reason: crate::reports::reason(&e),
                message: e.to_string(),
            })?;
        let Some(change) = change else {
            return Ok(false);
        };
        self.persist(io, change, now).await?;
        if finished {
            tracing::info!(%job, attempt, "attempt finished");
        }
        Ok(true)
    }

    /// Stores and applies a tenant's weight and quotas.
    pub async fn set_tenant_policy(
        &mut self,
        io: &mut impl Io,
        tenant: TenantId,
        view: TenantPolicyView,
    ) -> HubResult<TenantPolicyView> {
        let policy = crate::views::share(&view);
        if !io.set_tenant_policy(&tenant, &policy).await? {
            return Err(HubError::NotFound(format!("tenant {tenant}")));
        }
        self.pricing.set_share(&mut self.life, &tenant, &policy);
        tracing::info!(%tenant, weight = view.weight, quotas = view.quotas.len(), "tenant policy set");
        Ok(view)
    }

    /// The operator's money records (persisted) reach the core.
    pub fn money_changed(&mut self, records: &[Record], now: Timestamp) {
        self.pricing.money_changed(&mut self.life, records, now);
    }

    /// The periodic check at `now`: stop orders run out, silent centers go offline, lost leases
    /// requeue their jobs, programmes expire, prices and voucher rates move on, and tenants over
    /// their budget are stopped.
    pub async fn tick(&mut self, io: &mut impl Io, now: Timestamp) {
        self.life.prune_stops(now);
        self.review(io, now).await;
        for id in self.centers.gone_offline(now) {
            io.indicate(Event::Center(&id, self.centers.entry(&id)), now);
            self.life.set_online(&id, false);
            tracing::warn!(center = %id, "no heartbeat: center marked offline");
        }
        for id in self.life.expired(now) {
            // A cancelled job whose site never confirmed the stop just frees its cards.
            let lost = self
                .life
                .job(id)
                .filter(|j| !j.cancelled)
                .map(|j| (j.rec.attempt, j.rec.center.clone()));
            let change = self.life.expire(id, now);
            match self.persist(io, change, now).await {
                Ok(()) => {
                    if let Some((attempt, center)) = lost {
                        let center = center.map_or_else(String::new, |c| c.to_string());
                        tracing::warn!(job = %id, attempt, %center, "lease expired; job requeued");
                    }
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "could not requeue a job whose lease expired")
                }
            }
        }
        let records = self.life.books_mut().expire_due(now);
        if let Err(e) = self.persist_money(io, &records, now).await {
            tracing::error!(error = %e, "could not record expired voucher programmes");
        }
        self.pricing
            .on_tick(&mut self.life, !records.is_empty(), now);
        for (id, reason, why) in self.pricing.budget_stops(&self.life, now) {
            if let Err(e) = self.stop_job(io, id, &reason, &why, now).await {
                tracing::error!(job = %id, error = %e, "could not stop a job over budget");
            }
        }
    }

    /// Lets gated jobs that may start now into the queue, and cancels those whose dependency
    /// can never be met.
    pub async fn review(&mut self, io: &mut impl Io, now: Timestamp) {
        for change in self.life.review(now) {
            let id = change.job;
            let why = change.record().and_then(|r| r.reason.clone());
            match self.persist(io, change, now).await {
                Ok(()) => {
                    tracing::info!(job = %id, reason = why.as_deref().unwrap_or(""), "job cancelled: dependency never satisfied")
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "could not cancel a job whose dependency can never be met")
                }
            }
        }
    }

    /// Holds (`hold`) or releases a pending job; `by` goes to its history.
    pub async fn hold(
        &mut self,
        io: &mut impl Io,
        id: JobId,
        hold: bool,
        by: &str,
        now: Timestamp,
    ) -> HubResult<JobRecord> {
        let change = match hold {
            true => self.life.hold(id, by, now),
            false => self.life.release(id, by, now),
        }
        .map_err(|e| match e {
            suanli_lifecycle::HoldError::NotLive(_) => HubError::NotFound(format!("job {id}")),
            other => HubError::Conflict(other.to_string()),
        })?;
        let rec = change.record().cloned().expect("a hold writes the job");
        self.persist(io, change, now).await?;
        Ok(rec)
    }

    /// A scheduling pass at `now`; every placement (and the evictions it needs) is written
    /// before it is applied, and a placement that cannot be written goes back to the queue.
    pub async fn schedule(&mut self, io: &mut impl Io, now: Timestamp) {
        self.review(io, now).await;
        let placements = io.pass(|| self.life.schedule(now));
        let mut touched: Vec<CenterId> = Vec::new();
        for p in placements {
            let center = p.alloc.center.clone();
            for v in &p.preempted {
                let Some(change) = self.life.preempt(*v, p.job, &center, now) else {
                    continue;
                };
                match self.persist(io, change, now).await {
                    Ok(()) => {
                        io.observe(Observed::Preempted);
                        tracing::info!(job = %v, by = %p.job, %center, "attempt preempted");
                    }
                    Err(e) => {
                        tracing::error!(job = %v, error = %e, "could not record a preemption")
                    }
                }
            }
            let Some(change) = self.life.place(&p, now) else {
                // Unknown, or cancelled while the core evicted it and placed it again.
                tracing::warn!(job = %p.job, "placed but not queued here; placement dropped");
                self.life.abandon_placement(p.job);
                continue;
            };
            let waited = self
                .life
                .job(p.job)
                .map(|j| now.millis_since(j.rec.updated_at.max(j.rec.submitted_at)));
            match self.persist(io, change, now).await {
                Ok(()) => {
                    if let Some(waited_ms) = waited {
                        io.observe(Observed::Placed { waited_ms });
                    }
                    if !touched.contains(&center) {
                        touched.push(center);
                    }
                }
                Err(e) => {
                    tracing::error!(job = %p.job, error = %e, "could not record a placement; job stays queued");
                    self.life.abandon_placement(p.job);
                }
            }
        }
        for c in touched {
            io.wake(&c);
        }
    }
}

fn log_bill(change: &Change) {
    let Some(rec) = change.record() else { return };
    let (job, attempt) = (change.job, rec.attempt);
    match &change.bill {
        BillNote::Nothing => {}
        BillNote::Billed {
            line,
            gross,
            subsidy,
            payable,
        } => tracing::info!(%job, attempt, line, %gross, %subsidy, %payable, "attempt billed"),
        BillNote::BilledBefore { line } => {
            tracing::info!(%job, attempt, line, "attempt was billed before")
        }
        BillNote::Backwards {
            started_at,
            ended_at,
        } => {
            tracing::warn!(%job, attempt, %started_at, %ended_at, "attempt reported to end before it started; nothing billed")
        }
        BillNote::NotBilled(e) => {
            tracing::error!(%job, attempt, error = %e, "could not bill an attempt; the job goes on")
        }
    }
}

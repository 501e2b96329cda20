//! The engine: the single task that owns the hub's state, and the loop that drives it.
//!
//! Every state change goes through here as a [`Cmd`]. The engine reads the clock once per command
//! (and per tick and pass) and hands `now` to the state ([`HubState`]), whose flows ask the pure
//! job lifecycle (`suanli-lifecycle`) for each change, write it to the store (one transaction,
//! a bill line in the same transaction as the job change that ends its attempt) and apply it
//! only once it has committed; then the engine answers. Reads of stored jobs go to the store
//! directly; reads of live capacity and of the money books ask the engine.
//!
//! Each input of the state is appended to the store's input log (see [`crate::replay`]), so the
//! live decisions can be replayed; `GET /v1/hub` shows the live decision hash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use suanli_core::{CoreConfig, PendingJob};
pub use suanli_lifecycle::ReportBounds;
use suanli_money::{Books, Parties, ProgrammeId, Record};
pub use suanli_proto::QuoteView;
use suanli_proto::{
    AgentEvent, Assignments, BudgetRequest, BudgetView, DrainView, EventStatus, GrantRequest,
    GrantView, Heartbeat, HeartbeatReply, PriceRequest, PriceView, ProgrammeSpec, ProgrammeView,
    TenantPolicyView,
};
use suanli_store::{InputRow, JobRecord, NewJob, Store};
use suanli_types::{
    CenterId, CenterSpec, JobId, JobSpec, JobState, SpecError, TenantCategory, TenantId, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};

pub use crate::centers::CenterLive;
use crate::centers::Wakeups;
use crate::error::{HubError, HubResult};
use crate::indicators::{Event, Indicators};
use crate::metrics::Metrics;
use crate::replay::{Entry, Input, Settings};
use crate::reports::{self, LogCap};
use crate::state::HubState;
use crate::store_io::{StoreIo, snapshot};
use crate::views;

mod site_events;

/// Reads the wall clock. The engine is an edge of the system: it passes `now` into its state.
pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_millis() as i64)
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long a placement or a running attempt stays leased without a heartbeat from its site.
    pub lease_ttl: Duration,
    /// A center with no heartbeat for this long gets no new work.
    pub offline_after: Duration,
    /// How often leases and centers are checked.
    pub tick: Duration,
    /// The scheduler core's policy and settings.
    pub core: CoreConfig,
    /// How far a site's report may stray from the hub's record of the attempt (clock skew,
    /// kill grace) before it is refused.
    pub reports: ReportBounds,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease_ttl: Duration::from_secs(60),
            offline_after: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            core: CoreConfig::default(),
            reports: ReportBounds::default(),
        }
    }
}

type Reply<T> = oneshot::Sender<HubResult<T>>;

/// What the engine can be asked.
pub enum Cmd {
    /// Replies with the job and whether it was created now (`false`: an earlier submit with the
    /// same idempotency key created it).
    Submit {
        tenant: TenantId,
        /// The submitting principal's name and id.
        by: (String, i64),
        spec: Box<JobSpec>,
        key: Option<String>,
        reply: Reply<(JobRecord, bool)>,
    },
    Cancel {
        job: JobId,
        by: String,
        reply: Reply<JobRecord>,
    },
    /// Drains a center (no new work; attempts not yet running are handed back, running ones too
    /// with `requeue`) or undrains it.
    Drain {
        center: CenterId,
        drain: bool,
        requeue: bool,
        reply: Reply<DrainView>,
    },
    /// Answers whether the center is new.
    UpsertCenter {
        spec: Box<CenterSpec>,
        reply: Reply<bool>,
    },
    Heartbeat {
        center: CenterId,
        hb: Heartbeat,
        /// When the hub received it (a busy engine must not count its own delay against the site).
        received: Timestamp,
        reply: Reply<HeartbeatReply>,
    },
    Assignments {
        center: CenterId,
        reply: Reply<Assignments>,
    },
    Events {
        center: CenterId,
        events: Vec<AgentEvent>,
        /// The request id of the batch (its audit entry's), kept on the bill lines it makes.
        request: Option<String>,
        reply: Reply<Vec<EventStatus>>,
    },
    /// Holds (`hold`) or releases a pending job.
    Hold {
        job: JobId,
        hold: bool,
        by: String,
        reply: Reply<JobRecord>,
    },
    Explain {
        job: JobId,
        reply: Reply<Option<String>>,
    },
    /// Where a model (`name@revision`) is certified now: jobs that name it are placed there.
    SetCertified {
        model: String,
        certified: Vec<suanli_core::Certified>,
        reply: Reply<()>,
    },
    /// What holds back those of `jobs` that are gated (held, a begin time, a dependency, an
    /// array's limit), for a listing: cheap for a page of jobs, unlike [`Cmd::Explain`].
    Gates {
        jobs: Vec<JobId>,
        reply: Reply<Vec<(JobId, String)>>,
    },
    Live {
        reply: Reply<LiveView>,
    },
    /// Sets a tenant's fair-share weight and quotas.
    SetTenantPolicy {
        tenant: TenantId,
        policy: TenantPolicyView,
        reply: Reply<TenantPolicyView>,
    },
    /// Where the job could run, at what price and when; changes nothing.
    Quote {
        tenant: TenantId,
        spec: Box<JobSpec>,
        reply: Reply<QuoteView>,
    },
    /// Records a price row.
    SetPrice {
        req: PriceRequest,
        reply: Reply<PriceView>,
    },
    /// Creates and funds a voucher programme.
    CreateProgramme {
        spec: Box<ProgrammeSpec>,
        reply: Reply<ProgrammeView>,
    },
    /// Grants a tenant an amount of a programme.
    Grant {
        programme: String,
        req: GrantRequest,
        reply: Reply<GrantView>,
    },
    /// Sets a tenant's monthly budget.
    SetBudget {
        tenant: TenantId,
        req: BudgetRequest,
        reply: Reply<BudgetView>,
    },
    /// A tenant was created in the store; its category counts for vouchers from now on.
    TenantAdded {
        tenant: TenantId,
        category: TenantCategory,
        /// Its city, for the statistics.
        city: Option<String>,
        reply: Reply<()>,
    },
    /// Runs a read of the books (with the directory of tenants and the time) on the engine task;
    /// the closure sends its own answer. See [`EngineHandle::read_books`].
    ReadBooks(BooksRead),
}

/// A read of the books, run on the engine task.
pub type BooksRead = Box<dyn FnOnce(&Books, &Parties, Timestamp) + Send>;

/// Live state of the network for the centers list and metrics.
#[derive(Clone, Debug, Default)]
pub struct LiveView {
    pub capacity: Vec<suanli_core::PoolCapacity>,
    pub centers: BTreeMap<CenterId, CenterLive>,
    pub pending: usize,
}

/// An engine rebuilt from the store, not yet running.
pub struct Built {
    engine: Engine,
    tx: mpsc::Sender<Cmd>,
    rx: mpsc::Receiver<Cmd>,
}

impl Built {
    /// Starts the engine's task and puts it behind `handle`.
    pub fn launch(self, handle: &EngineHandle) -> tokio::task::JoinHandle<()> {
        let task = tokio::spawn(self.engine.run(self.rx));
        handle.install(Some(self.tx));
        task
    }
}

/// The engine's handle, cloned into every request handler. It outlives engines: a hub that loses
/// the leadership stops its engine (commands then fail with [`HubError::NotLeader`]) and starts a
/// new one, rebuilt from the store, when it leads again.
#[derive(Clone, Default)]
pub struct EngineHandle {
    tx: Arc<std::sync::RwLock<Option<mpsc::Sender<Cmd>>>>,
    /// Bumped whenever a center gets new assignments; long-polls wait on it.
    wakeups: Wakeups,
    /// The running engine's decision hash, after its last scheduling pass.
    decisions: Arc<AtomicU64>,
    /// The statistics, fed by the running engine.
    indicators: Indicators,
}

impl EngineHandle {
    fn sender(&self) -> HubResult<mpsc::Sender<Cmd>> {
        self.tx
            .read()
            .expect("engine handle lock")
            .clone()
            .ok_or(HubError::NotLeader)
    }

    fn install(&self, tx: Option<mpsc::Sender<Cmd>>) {
        *self.tx.write().expect("engine handle lock") = tx;
    }

    /// Takes the engine away (commands fail with [`HubError::NotLeader`] from now on) and wakes
    /// every long-poll, so agents ask again (and find the new leader) instead of waiting out
    /// their poll on a hub that no longer leads.
    pub(crate) fn uninstall(&self) {
        self.install(None);
        self.wakeups.wake_all();
    }

    /// Whether an engine runs behind this handle.
    pub fn is_running(&self) -> bool {
        self.tx.read().expect("engine handle lock").is_some()
    }

    /// The running engine's decision hash (every placement and preemption since it started), if
    /// an engine runs.
    pub fn decision_hash(&self) -> Option<u64> {
        self.is_running()
            .then(|| self.decisions.load(Ordering::Relaxed))
    }

    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> HubResult<T> {
        let (tx, rx) = oneshot::channel();
        self.sender()?
            .send(make(tx))
            .await
            .map_err(|_| HubError::NotLeader)?;
        // The engine stopped after taking the command: it may have carried it out.
        rx.await.map_err(|_| HubError::Interrupted)?
    }

    /// Runs `f` on the engine's books and returns its answer; changes nothing.
    pub async fn read_books<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Books, &Parties, Timestamp) -> T + Send + 'static,
    ) -> HubResult<T> {
        let (tx, rx) = oneshot::channel();
        let read: BooksRead = Box::new(move |books, parties, at| {
            let _ = tx.send(f(books, parties, at));
        });
        self.sender()?
            .send(Cmd::ReadBooks(read))
            .await
            .map_err(|_| HubError::NotLeader)?;
        // A read: nothing was carried out.
        rx.await.map_err(|_| HubError::NotLeader)
    }

    /// The statistics (empty until an engine has run on this hub).
    pub fn indicators(&self) -> &Indicators {
        &self.indicators
    }

    /// A receiver that changes when `center` gets new work.
    pub fn watch_center(&self, center: &CenterId) -> watch::Receiver<u64> {
        self.wakeups.watch(center)
    }
}

/// The engine: its state, the store it writes, and the inputs not yet appended to the log.
pub struct Engine {
    state: HubState,
    io: StoreIo,
    /// Inputs since the last flush of the input log.
    log: Vec<Entry>,
    decisions: Arc<AtomicU64>,
    /// Log bytes per attempt, capped.
    log_cap: LogCap,
}

/// Flush the input log at least this often (entries), besides at every tick.
const LOG_BATCH: usize = 512;

impl Engine {
    /// Rebuilds the engine from the store, starts its task and puts it behind `handle`.
    pub async fn start(
        store: Arc<dyn Store>,
        cfg: EngineConfig,
        metrics: Arc<Metrics>,
        handle: &EngineHandle,
    ) -> HubResult<tokio::task::JoinHandle<()>> {
        let built = Engine::build(store, cfg, metrics, handle).await?;
        Ok(built.launch(handle))
    }

    /// Rebuilds an engine from the store without starting it: dropping the future or the result
    /// leaves nothing running. [`Built::launch`] starts it.
    pub async fn build(
        store: Arc<dyn Store>,
        cfg: EngineConfig,
        metrics: Arc<Metrics>,
        handle: &EngineHandle,
    ) -> HubResult<Built> {
        let now = now();
        let snapshot = snapshot(store.as_ref()).await?;
        metrics.set_money_quarantined(snapshot.quarantined.len());
        let settings = Settings::of(&cfg);
        let (state, new_rows) = HubState::restore(cfg, snapshot.clone(), now)?;
        store.append_money(&crate::money::encode(&new_rows)).await?;
        let active = state.life.jobs().filter(|j| j.rec.center.is_some()).count();
        tracing::info!(
            centers = state.centers.all().len(),
            queued = state.life.jobs().count() - active,
            active,
            "engine rebuilt from the store"
        );
        handle.indicators.rebuild(store.as_ref()).await?;
        let decisions = handle.decisions.clone();
        decisions.store(state.life.core().decision_hash(), Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(1024);
        let mut engine = Engine {
            state,
            io: StoreIo {
                store,
                wakeups: handle.wakeups.clone(),
                metrics,
                indicators: handle.indicators.clone(),
            },
            log: Vec::new(),
            decisions,
            log_cap: LogCap::new(reports::LOG_BYTES_PER_ATTEMPT),
        };
        engine.sync_indicators(&snapshot, now);
        engine.note(
            now,
            Input::Start {
                settings,
                snapshot: Box::new(snapshot),
            },
        );
        engine.flush_log().await;
        Ok(Built { engine, tx, rx })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(self.state.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pass = std::time::Instant::now();
        loop {
            // The one place the engine reads the wall clock.
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd, now()).await,
                    None => break,
                },
                _ = tick.tick() => self.on_tick(now()).await,
            }
            if self.log.len() >= LOG_BATCH {
                self.flush_log().await;
            }
            // Let a burst of commands in before the next pass, but never wait longer than a tick.
            if self.state.life.is_dirty()
                && (rx.is_empty() || last_pass.elapsed() >= self.state.cfg.tick)
            {
                let at = now();
                self.state.schedule(&mut self.io, at).await;
                self.note(at, Input::Schedule);
                self.decisions
                    .store(self.state.life.core().decision_hash(), Ordering::Relaxed);
                last_pass = std::time::Instant::now();
            }
        }
        self.flush_log().await;
        tracing::info!("engine stopped");
    }

    /// Notes an input of the state for the log.
    fn note(&mut self, at: Timestamp, input: Input) {
        self.log.push(Entry { at, input });
    }

    /// Appends the noted inputs to the store's input log.
    async fn flush_log(&mut self) {
        self.flush_facts().await;
        if self.log.is_empty() {
            return;
        }
        let rows: Vec<InputRow> = self
            .log
            .drain(..)
            .map(|e| InputRow {
                at: e.at,
                input: serde_json::to_string(&e.input).expect("inputs serialise"),
            })
            .collect();
        if let Err(e) = self.io.store.append_inputs(&rows).await {
            tracing::error!(error = %e, lost = rows.len(), "could not append to the input log; a replay will diverge here");
        }
    }

    /// Appends the statistics' new facts; kept for the next flush if the store fails.
    async fn flush_facts(&mut self) {
        if let Err(e) = self
            .io
            .indicators
            .flush(self.io.store.as_ref(), now())
            .await
        {
            tracing::error!(error = %e, "could not append the statistics' facts; they are kept for the next try");
        }
    }

    /// At start: the statistics learn the registered centers (down until their agents call),
    /// the tenants, and anything registered before they were kept.
    fn sync_indicators(&mut self, snapshot: &crate::state::Snapshot, now: Timestamp) {
        for (tenant, category) in &snapshot.tenants {
            let city = snapshot.cities.get(tenant).map(String::as_str);
            self.io
                .indicators
                .observe(Event::Tenant(tenant, *category, city), now);
        }
        for spec in &snapshot.centers {
            self.io.indicators.observe(Event::Registered(spec), now);
            let live = self.state.centers.entry(&spec.id);
            self.io
                .indicators
                .observe(Event::Center(&spec.id, live), now);
        }
    }

    async fn on_tick(&mut self, at: Timestamp) {
        self.state.tick(&mut self.io, at).await;
        self.io.indicators.tick(at);
        let life = &self.state.life;
        self.log_cap
            .prune(|j, a| life.job(j).is_some_and(|v| v.rec.attempt == a));
        self.note(at, Input::Tick);
        self.flush_log().await;
        self.io
            .metrics
            .refresh_from_engine(self.state.life.core(), self.state.centers.all(), at);
    }

    async fn handle(&mut self, cmd: Cmd, at: Timestamp) {
        match cmd {
            Cmd::Submit {
                tenant,
                by,
                spec,
                key,
                reply,
            } => {
                let _ = reply.send(self.submit(tenant, by, *spec, key, at).await);
            }
            Cmd::Cancel { job, by, reply } => {
                let _ = reply.send(self.cancel(job, by, at).await);
            }
            Cmd::Drain {
                center,
                drain,
                requeue,
                reply,
            } => {
                let r = (self.state)
                    .drain(&mut self.io, center.clone(), drain, requeue, at)
                    .await;
                if r.is_ok() {
                    self.note(
                        at,
                        Input::Drain {
                            center,
                            drain,
                            requeue,
                        },
                    );
                }
                let _ = reply.send(r);
            }
            Cmd::UpsertCenter { spec, reply } => {
                let r = self
                    .state
                    .upsert_center(&mut self.io, (*spec).clone(), at)
                    .await;
                if r.is_ok() {
                    self.note(at, Input::Center { spec });
                }
                let _ = reply.send(r);
            }
            Cmd::Heartbeat {
                center,
                hb,
                received,
                reply,
            } => {
                let running: Vec<_> = hb.running.iter().map(views::attempt_key).collect();
                let kill = self
                    .state
                    .heartbeat(&center, hb.draining, &running, received);
                let live = self.state.centers.entry(&center);
                live.inventory = hb.inventory;
                live.agent_version = Some(hb.agent_version);
                self.io
                    .indicators
                    .observe(Event::Center(&center, live), received);
                self.note(
                    received,
                    Input::Heartbeat {
                        center,
                        draining: hb.draining,
                        running: hb.running,
                    },
                );
                let _ = reply.send(Ok(HeartbeatReply {
                    kill: kill.into_iter().map(views::attempt_ref).collect(),
                    lease_ttl_secs: self.state.cfg.lease_ttl.as_secs(),
                }));
            }
            Cmd::Assignments { center, reply } => {
                let life = &self.state.life;
                let _ = reply.send(Ok(Assignments {
                    assignments: life
                        .placed_at_center(&center)
                        .iter()
                        .map(views::assignment)
                        .collect(),
                    kill: life
                        .to_stop(&center)
                        .into_iter()
                        .map(views::attempt_ref)
                        .collect(),
                }));
            }
            Cmd::Events {
                center,
                events,
                request,
                reply,
            } => {
                let _ = reply.send(self.events(&center, events, request, at).await);
            }
            Cmd::Hold {
                job,
                hold,
                by,
                reply,
            } => {
                let _ = reply.send(self.hold(job, hold, by, at).await);
            }
            Cmd::Explain { job, reply } => {
                let life = &self.state.life;
                let why = match life.waiting(job, at) {
                    Some(gate) => Some(gate.to_string()),
                    None => life.core().explain(job),
                };
                let _ = reply.send(Ok(why));
            }
            Cmd::SetCertified {
                model,
                certified,
                reply,
            } => {
                let changed = self.state.life.core().certified().get(&model) != Some(&certified);
                if changed {
                    self.state.life.set_certified(&model, certified.clone());
                    self.note(at, Input::Certified { model, certified });
                }
                let _ = reply.send(Ok(()));
            }
            Cmd::Gates { jobs, reply } => {
                let gates = self.state.life.waiting_many(&jobs, at);
                let _ = reply.send(Ok(gates
                    .into_iter()
                    .map(|(id, gate)| (id, gate.to_string()))
                    .collect()));
            }
            Cmd::Quote {
                tenant,
                spec,
                reply,
            } => {
                let job = PendingJob {
                    id: JobId(0),
                    tenant,
                    seq: u64::MAX,
                    submitted_at: at,
                    spec: *spec,
                };
                let life = &self.state.life;
                let q = life.core().quote(&job, at);
                let view =
                    views::quote_view(&q, at, job.spec.walltime, |c| life.quote_money(&job, c, at));
                let _ = reply.send(Ok(view));
            }
            Cmd::Live { reply } => {
                let core = self.state.life.core();
                let _ = reply.send(Ok(LiveView {
                    capacity: core.capacity(),
                    centers: self.state.centers.all().clone(),
                    pending: core.pending_len(),
                }));
            }
            Cmd::SetPrice { req, reply } => {
                let _ = reply.send(self.set_price(req, at).await);
            }
            Cmd::CreateProgramme { spec, reply } => {
                let _ = reply.send(self.create_programme(*spec, at).await);
            }
            Cmd::Grant {
                programme,
                req,
                reply,
            } => {
                let _ = reply.send(self.grant(programme, req, at).await);
            }
            Cmd::SetBudget { tenant, req, reply } => {
                let _ = reply.send(self.set_budget(tenant, req, at).await);
            }
            Cmd::TenantAdded {
                tenant,
                category,
                city,
                reply,
            } => {
                self.tenant_added(tenant, category, city.as_deref(), at);
                let _ = reply.send(Ok(()));
            }
            Cmd::ReadBooks(read) => read(self.state.life.books(), self.state.life.parties(), at),
            Cmd::SetTenantPolicy {
                tenant,
                policy,
                reply,
            } => {
                let r = (self.state)
                    .set_tenant_policy(&mut self.io, tenant.clone(), policy)
                    .await;
                if let Ok(policy) = &r {
                    let policy = policy.clone();
                    self.note(at, Input::TenantPolicy { tenant, policy });
                }
                let _ = reply.send(r);
            }
        }
    }

    fn tenant_added(
        &mut self,
        tenant: TenantId,
        category: TenantCategory,
        city: Option<&str>,
        at: Timestamp,
    ) {
        self.state.tenant_added(tenant.clone(), category, at);
        self.io
            .indicators
            .observe(Event::Tenant(&tenant, category, city), at);
        self.note(at, Input::Tenant { tenant, category });
    }

    /// Makes sure the state knows the tenant (tenants are created in the store by the API).
    async fn know_tenant(&mut self, tenant: &TenantId, at: Timestamp) -> HubResult<bool> {
        if self.state.life.parties().categories.contains_key(tenant) {
            return Ok(true);
        }
        match self.io.store.tenant(tenant).await? {
            Some(t) => {
                self.tenant_added(t.id, t.category, t.city.as_deref(), at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn submit(
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
    async fn check_parents(
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

    async fn hold(
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

    async fn cancel(&mut self, id: JobId, by: String, at: Timestamp) -> HubResult<JobRecord> {
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

    /// Persists the operator's money records (the books hold them already), lets the core know,
    /// and logs them as an input.
    async fn money_changed(&mut self, records: &[Record], at: Timestamp) -> HubResult<()> {
        (self.state)
            .persist_money(&mut self.io, records, at)
            .await?;
        self.state.money_changed(records, at);
        self.note(
            at,
            Input::Money {
                records: records.to_vec(),
            },
        );
        Ok(())
    }

    async fn set_price(&mut self, req: PriceRequest, at: Timestamp) -> HubResult<PriceView> {
        let Some(spec) = self.state.pricing.spec(&req.center) else {
            return Err(SpecError::new("center", format!("unknown center {}", req.center)).into());
        };
        if !spec.pools.iter().any(|p| p.sku == req.sku) {
            return Err(SpecError::new(
                "sku",
                format!("center {} has no pool of {}", req.center, req.sku),
            )
            .into());
        }
        let records = self.state.life.books_mut().set_price(
            &req.center,
            &req.sku,
            req.price_per_card_hour,
            req.spot_discount_bp,
            req.effective_from.unwrap_or(at),
        )?;
        self.money_changed(&records, at).await?;
        let Some(Record::Price(row)) = records.first() else {
            unreachable!("a price row was recorded")
        };
        tracing::info!(center = %row.center, sku = %row.sku, price = %row.per_card_hour, from = %row.effective_from, "price set");
        Ok(crate::money::price_view(self.state.life.books(), row, at))
    }

    async fn create_programme(
        &mut self,
        spec: ProgrammeSpec,
        at: Timestamp,
    ) -> HubResult<ProgrammeView> {
        let def = crate::money::programme_def(&spec);
        let records = (self.state.life.books_mut()).create_programme(def.clone(), at)?;
        self.money_changed(&records, at).await?;
        tracing::info!(programme = %def.id, budget = %def.budget, "voucher programme created");
        Ok(crate::money::programme_view(
            self.state.life.books(),
            &def,
            true,
        ))
    }

    async fn grant(
        &mut self,
        programme: String,
        req: GrantRequest,
        at: Timestamp,
    ) -> HubResult<GrantView> {
        if !self.know_tenant(&req.tenant, at).await? {
            return Err(SpecError::new("tenant", format!("unknown tenant {}", req.tenant)).into());
        }
        let life = &mut self.state.life;
        let parties = life.parties().clone();
        let records = life.books_mut().grant(
            &ProgrammeId::new(programme),
            &req.tenant,
            req.amount,
            at,
            &parties,
        )?;
        self.money_changed(&records, at).await?;
        let Some(Record::Grant(g)) = records.first() else {
            unreachable!("a grant was recorded")
        };
        tracing::info!(programme = %g.programme, tenant = %g.tenant, amount = %g.amount, "grant made");
        Ok(crate::money::grant_view(g))
    }

    async fn set_budget(
        &mut self,
        tenant: TenantId,
        req: BudgetRequest,
        at: Timestamp,
    ) -> HubResult<BudgetView> {
        if !self.know_tenant(&tenant, at).await? {
            return Err(HubError::NotFound(format!("tenant {tenant}")));
        }
        let records = self.state.life.books_mut().set_budget(
            &tenant,
            req.monthly_limit,
            crate::money::policy(req.at_limit),
        )?;
        self.money_changed(&records, at).await?;
        let books = self.state.life.books();
        let b = books.budget(&tenant).expect("just set");
        let st = books
            .budget_status(&tenant, suanli_money::Month::of(at))
            .expect("just set");
        tracing::info!(%tenant, limit = %b.monthly_limit, "monthly budget set");
        Ok(crate::money::budget_view(&tenant, b, &st))
    }
}

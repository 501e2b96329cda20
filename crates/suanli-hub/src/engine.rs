//! The engine: the single task that owns the scheduler core.
//!
//! Every state change goes through here as a [`Cmd`]: the engine writes it to the store, and only
//! after the write has committed does it change the core and answer. Reads of stored jobs go to the
//! store directly; reads of live capacity and of the money books ask the engine.
//!
//! Money: the engine owns the [`Books`] (see [`crate::money`]). Each ended attempt is metered and
//! billed, and its bill line is written in the same store transaction as the job's change. An
//! attempt that ends without a report (lease lost) or is preempted is metered up to its last known
//! moment: the last heartbeat that listed it, or the preemption. A usage that cannot be billed is
//! logged and never holds up the job. Voucher rates become each tenant's `pays_bp` in the core, so
//! placement and quotes compare what the tenant pays; the price rows in force become the pools'
//! prices in the core.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use suanli_core::{Allocation, Core, CoreConfig, NodeAlloc, PendingJob, Placement, TenantPolicy};
use suanli_money::{
    BP, Books, BudgetLevel, Directory, Month, OverBudgetPolicy, Parties, ProgrammeId, QuoteRequest,
    Record, Usage,
};
pub use suanli_proto::QuoteView;
use suanli_proto::{
    AgentEvent, Assignment, Assignments, AttemptRef, BudgetRequest, BudgetView, CandidateView,
    DrainView, EventKind, EventStatus, GrantRequest, GrantView, Heartbeat, HeartbeatReply,
    NodeCards, NodeInventory, Outcome, PlacementView, PriceRequest, PriceView, ProgrammeSpec,
    ProgrammeView, RejectionView, TenantPolicyView,
};
use suanli_store::{AttemptRecord, JobEvent, JobRecord, LogRow, NewJob, NodeShare, Store};
use suanli_types::{
    CenterId, CenterSpec, JobId, JobSpec, JobState, Money, PriorityClass, SpecError,
    TenantCategory, TenantId, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{HubError, HubResult};
use crate::metrics::Metrics;

/// Reads the wall clock. The engine is an edge of the system: it passes `now` into the core.
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            lease_ttl: Duration::from_secs(60),
            offline_after: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            core: CoreConfig::default(),
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
        by: String,
        spec: Box<JobSpec>,
        key: Option<String>,
        reply: Reply<(JobRecord, bool)>,
    },
    Cancel {
        job: JobId,
        by: String,
        reply: Reply<JobRecord>,
    },
    /// Answers whether the center is new.
    /// Drains a center (no new work; attempts not yet running are handed back, running ones too
    /// with `requeue`) or undrains it.
    Drain {
        center: CenterId,
        drain: bool,
        requeue: bool,
        reply: Reply<DrainView>,
    },
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
        reply: Reply<Vec<EventStatus>>,
    },
    Explain {
        job: JobId,
        reply: Reply<Option<String>>,
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

#[derive(Clone, Debug, Default)]
pub struct CenterLive {
    pub online: bool,
    /// The agent says it is draining (`suanli site --drain`, or stopping).
    pub draining: bool,
    /// The operator (or the center's own site token) drained it; kept in the store.
    pub drained: bool,
    pub last_heartbeat: Option<Timestamp>,
    pub inventory: Vec<NodeInventory>,
    pub agent_version: Option<String>,
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

impl CenterLive {
    /// Whether new work may be placed there.
    pub fn is_open(&self) -> bool {
        self.online && !self.draining && !self.drained
    }
}

/// The engine's handle, cloned into every request handler. It outlives engines: a hub that loses
/// the leadership stops its engine (commands then fail with [`HubError::NotLeader`]) and starts a
/// new one, rebuilt from the store, when it leads again.
#[derive(Clone, Default)]
pub struct EngineHandle {
    tx: Arc<std::sync::RwLock<Option<mpsc::Sender<Cmd>>>>,
    /// Bumped whenever a center gets new assignments; long-polls wait on it.
    placed: Arc<std::sync::Mutex<HashMap<CenterId, watch::Sender<u64>>>>,
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
        for tx in self.placed.lock().expect("placement watch lock").values() {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Whether an engine runs behind this handle.
    pub fn is_running(&self) -> bool {
        self.tx.read().expect("engine handle lock").is_some()
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

    /// A receiver that changes when `center` gets new work.
    pub fn watch_center(&self, center: &CenterId) -> watch::Receiver<u64> {
        let mut map = self.placed.lock().expect("placement watch lock");
        map.entry(center.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }
}

/// A job the engine keeps in memory: every unfinished job, plus cancelled jobs whose attempt still
/// holds cards until the site confirms it stopped or the lease runs out.
struct Live {
    rec: JobRecord,
    /// When the current attempt's lease ends (placed or running jobs).
    lease: Option<Timestamp>,
    /// Cancelled while placed or running: the cards stay held until the site reports the end.
    zombie: bool,
    /// When the current attempt started, as its site reported (for metering a lost attempt).
    started: Option<Timestamp>,
    /// The last heartbeat that listed the current attempt (hub clock; not kept across restarts).
    last_seen: Option<Timestamp>,
    /// When the current attempt was placed (read once from the stored decision at a restart).
    placed_at: Timestamp,
}

pub struct Engine {
    store: Arc<dyn Store>,
    core: Core,
    cfg: EngineConfig,
    jobs: HashMap<JobId, Live>,
    centers: BTreeMap<CenterId, CenterLive>,
    metrics: Arc<Metrics>,
    placed: Arc<std::sync::Mutex<HashMap<CenterId, watch::Sender<u64>>>>,
    /// Preempted attempts each site must stop, until it stops listing them or the lease passes.
    kills: BTreeMap<CenterId, BTreeMap<AttemptRef, Timestamp>>,
    dirty: bool,
    /// The money books, rebuilt from the store's money records.
    books: Books,
    /// Tenant categories (from the store) for vouchers; no affiliations are configured yet.
    parties: Parties,
    /// Registered center definitions as stored; the core gets them with the prices in force.
    specs: BTreeMap<CenterId, CenterSpec>,
    /// The pool prices each center was last given to the core with.
    core_prices: BTreeMap<CenterId, Vec<Money>>,
    /// Each tenant's share of the list price per SKU after vouchers, as last given to the core.
    pays: BTreeMap<TenantId, BTreeMap<String, u32>>,
    /// Each tenant's fair-share weight and quotas, as the operator set them.
    shares: BTreeMap<TenantId, TenantPolicy>,
    /// The budget level each tenant was last warned about, and in which month.
    budget_noted: BTreeMap<TenantId, (Month, BudgetLevel)>,
    /// Price rows and programme windows starting or ending by then are reflected in the core.
    money_synced: Timestamp,
}

/// How the policy chose, for the placement record.
fn rule(policy: suanli_core::Policy) -> &'static str {
    match policy {
        suanli_core::Policy::Suanli => {
            "suanli: lowest score = (cost / cheapest - 1) + wait / wall time + 0.25 x (TFLOPS / least - 1); \
             fair share between tenants, backfill, preemption of spot and borrowed work"
        }
        suanli_core::Policy::Fifo => "fifo: strict FIFO, first center in id order that fits",
        suanli_core::Policy::Cheapest => {
            "cheapest: lowest cost per hour among centers that fit now, then most free cards"
        }
        suanli_core::Policy::LeastLoaded => "least-loaded: the pool with the most free capacity",
    }
}

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
        let mut books = crate::money::replay(&store.money_records().await?)?;
        let mut parties = Parties::default();
        for t in store.tenants().await? {
            parties.categories.insert(t.id, t.category);
        }
        let mut core = Core::new(cfg.core.clone());
        let mut shares = BTreeMap::new();
        for (tenant, json) in store.tenant_policies().await? {
            match serde_json::from_str::<TenantPolicyView>(&json) {
                Ok(v) => {
                    shares.insert(tenant, share_policy(&v));
                }
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "stored tenant policy unreadable; ignored")
                }
            }
        }
        let drained: BTreeSet<CenterId> = store.drained_centers().await?.into_iter().collect();
        let mut centers = BTreeMap::new();
        let mut specs = BTreeMap::new();
        let mut core_prices = BTreeMap::new();
        let mut new_rows = Vec::new();
        for spec in store.centers().await? {
            // Pools never priced get their registered price, in force since always.
            new_rows.extend(price_rows(&mut books, &spec, now, false));
            let eff = effective_spec(&books, &spec, now);
            core.upsert_center(&eff);
            core_prices.insert(spec.id.clone(), pool_prices(&eff));
            centers.insert(
                spec.id.clone(),
                CenterLive {
                    drained: drained.contains(&spec.id),
                    ..CenterLive::default()
                },
            );
            specs.insert(spec.id.clone(), spec);
        }
        store.append_money(&crate::money::encode(&new_rows)).await?;
        let mut jobs = HashMap::new();
        let (mut queued, mut active) = (0, 0);
        for rec in store.unfinished_jobs().await? {
            // Cancelled while placed or running, and the site has not confirmed the stop yet.
            let zombie = rec.state == JobState::Cancelled;
            let lease = match rec.state {
                JobState::Placed | JobState::Running | JobState::Cancelled => {
                    if let Some(center) = rec.center.clone() {
                        let alloc = Allocation {
                            center,
                            sku: rec.sku.clone().unwrap_or_default(),
                            nodes: rec
                                .alloc
                                .iter()
                                .map(|n| NodeAlloc {
                                    node: n.node.clone(),
                                    cards: n.cards,
                                })
                                .collect(),
                        };
                        if zombie {
                            core.restore_allocation(rec.id, alloc);
                        } else {
                            core.restore_job(pending(&rec), alloc, placed_at(&rec));
                        }
                    }
                    active += 1;
                    // Sites get one full lease from the restart to report in.
                    let restart_lease = now.plus_millis(cfg.lease_ttl.as_millis() as i64);
                    Some(
                        rec.lease_expires_at
                            .map_or(restart_lease, |l| l.max(restart_lease)),
                    )
                }
                _ => {
                    core.enqueue(pending(&rec));
                    queued += 1;
                    None
                }
            };
            // When the current attempt started, for metering it if it is lost.
            let started = match rec.state {
                JobState::Running => rec.started_at,
                JobState::Cancelled => store
                    .attempts(rec.id)
                    .await?
                    .into_iter()
                    .find(|a| a.attempt == rec.attempt)
                    .and_then(|a| a.started_at),
                _ => None,
            };
            let placed = placed_at(&rec);
            jobs.insert(
                rec.id,
                Live {
                    rec,
                    lease,
                    zombie,
                    started,
                    last_seen: None,
                    placed_at: placed,
                },
            );
        }
        tracing::info!(
            centers = centers.len(),
            queued,
            active,
            "engine rebuilt from the store"
        );
        let placed = handle.placed.clone();
        let (tx, rx) = mpsc::channel(1024);
        let mut engine = Engine {
            store,
            core,
            cfg,
            jobs,
            centers,
            metrics,
            placed: placed.clone(),
            kills: BTreeMap::new(),
            dirty: true,
            books,
            parties,
            specs,
            core_prices,
            pays: BTreeMap::new(),
            shares,
            budget_noted: BTreeMap::new(),
            money_synced: now,
        };
        for tenant in engine.shares.keys().cloned().collect::<Vec<_>>() {
            engine.push_tenant(&tenant);
        }
        engine.sync_pays(now, None);
        Ok(Built { engine, tx, rx })
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_pass = std::time::Instant::now();
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await,
            }
            // Let a burst of commands in before the next pass, but never wait longer than a tick.
            if self.dirty && (rx.is_empty() || last_pass.elapsed() >= self.cfg.tick) {
                self.schedule().await;
                last_pass = std::time::Instant::now();
            }
        }
        tracing::info!("engine stopped");
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit {
                tenant,
                by,
                spec,
                key,
                reply,
            } => {
                let _ = reply.send(self.submit(tenant, by, *spec, key).await);
            }
            Cmd::Cancel { job, by, reply } => {
                let _ = reply.send(self.cancel(job, &by).await);
            }
            Cmd::Drain {
                center,
                drain,
                requeue,
                reply,
            } => {
                let _ = reply.send(self.drain(center, drain, requeue).await);
            }
            Cmd::UpsertCenter { spec, reply } => {
                let r = self.upsert_center(*spec).await;
                let _ = reply.send(r);
            }
            Cmd::Heartbeat {
                center,
                hb,
                received,
                reply,
            } => {
                let _ = reply.send(Ok(self.heartbeat(&center, hb, received)));
            }
            Cmd::Assignments { center, reply } => {
                let _ = reply.send(Ok(self.assignments(&center)));
            }
            Cmd::Events {
                center,
                events,
                reply,
            } => {
                let _ = reply.send(self.events(&center, events).await);
            }
            Cmd::Explain { job, reply } => {
                let _ = reply.send(Ok(self.core.explain(job)));
            }
            Cmd::Quote {
                tenant,
                spec,
                reply,
            } => {
                let at = now();
                let job = PendingJob {
                    id: JobId(0),
                    tenant,
                    seq: u64::MAX,
                    submitted_at: at,
                    spec: *spec,
                };
                let q = self.core.quote(&job, at);
                let _ = reply.send(Ok(QuoteView {
                    at,
                    walltime_secs: job.spec.walltime,
                    candidates: q
                        .candidates
                        .iter()
                        .map(|c| {
                            let mut v = candidate(c);
                            if let Some(m) = self.quote_money(&job, c, at) {
                                v.gross = Some(m.gross);
                                v.subsidy = Some(m.subsidy);
                                v.payable = Some(m.payable);
                                v.programme = m.programme.map(|p| p.to_string());
                            }
                            v
                        })
                        .collect(),
                    rejected: q
                        .rejected
                        .into_iter()
                        .map(|r| RejectionView {
                            center: r.center,
                            reason: r.reason,
                        })
                        .collect(),
                }));
            }
            Cmd::Live { reply } => {
                let _ = reply.send(Ok(LiveView {
                    capacity: self.core.capacity(),
                    centers: self.centers.clone(),
                    pending: self.core.pending_len(),
                }));
            }
            Cmd::SetPrice { req, reply } => {
                let _ = reply.send(self.set_price(req).await);
            }
            Cmd::CreateProgramme { spec, reply } => {
                let _ = reply.send(self.create_programme(*spec).await);
            }
            Cmd::Grant {
                programme,
                req,
                reply,
            } => {
                let _ = reply.send(self.grant(programme, req).await);
            }
            Cmd::SetBudget { tenant, req, reply } => {
                let _ = reply.send(self.set_budget(tenant, req).await);
            }
            Cmd::TenantAdded {
                tenant,
                category,
                reply,
            } => {
                self.parties.categories.insert(tenant.clone(), category);
                self.sync_pays(now(), Some(&tenant));
                let _ = reply.send(Ok(()));
            }
            Cmd::ReadBooks(read) => read(&self.books, &self.parties, now()),
            Cmd::SetTenantPolicy {
                tenant,
                policy,
                reply,
            } => {
                let _ = reply.send(self.set_tenant_policy(tenant, policy).await);
            }
        }
    }

    // ---------------------------------------------------------------- money

    /// The job's price after vouchers at a candidate pool, if the pool has a price.
    fn quote_money(
        &self,
        job: &PendingJob,
        c: &suanli_core::Candidate,
        at: Timestamp,
    ) -> Option<suanli_money::Quote> {
        let req = QuoteRequest {
            tenant: job.tenant.clone(),
            center: c.center.clone(),
            sku: c.sku.clone(),
            cards: job.spec.total_cards(),
            seconds: job.spec.walltime,
            at: c.expected_start.max(at),
            spot: job.spec.priority == PriorityClass::Spot,
        };
        self.books.quote(&req, &self.parties).ok()
    }

    /// Appends records to the store; if that fails, the books go back to what the store holds.
    async fn persist_money(&mut self, records: &[Record]) -> HubResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        match self
            .store
            .append_money(&crate::money::encode(records))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) => {
                self.reload_books().await;
                Err(e.into())
            }
        }
    }

    /// Rebuilds the books from the store, after a write of records the books hold failed.
    async fn reload_books(&mut self) {
        let rows = match self.store.money_records().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the books from the store; they may show money that was not recorded");
                return;
            }
        };
        match crate::money::replay(&rows) {
            Ok(books) => {
                self.books = books;
                let at = now();
                self.sync_prices(at);
                self.sync_pays(at, None);
            }
            Err(e) => tracing::error!(error = %e, "cannot replay the stored money records"),
        }
    }

    /// Writes a job change with the money records of the attempt that ended (one transaction).
    async fn write_job(
        &mut self,
        rec: &JobRecord,
        old: &JobRecord,
        event: Option<&JobEvent>,
        attempt: Option<&AttemptRecord>,
        money: Vec<Record>,
    ) -> HubResult<()> {
        let rows = crate::money::encode(&money);
        match self
            .store
            .update_job(rec, old.state, old.attempt, event, attempt, &rows)
            .await
        {
            Ok(()) => {
                if !money.is_empty() {
                    // The tenant's grant may be used up now.
                    self.sync_pays(now(), Some(&rec.tenant));
                }
                Ok(())
            }
            Err(e) => {
                if !money.is_empty() {
                    self.reload_books().await;
                }
                Err(e.into())
            }
        }
    }

    /// Meters the current attempt of `job` from `started_at` to `ended_at` and bills it. Returns
    /// the records to write with the job's change; an attempt that cannot be billed is logged,
    /// and an attempt billed before (a retried report) gives no records.
    fn bill_attempt(
        &mut self,
        job: &JobRecord,
        started_at: Timestamp,
        ended_at: Timestamp,
        card_seconds: Option<u64>,
    ) -> Vec<Record> {
        let (Some(center), Some(sku)) = (job.center.clone(), job.sku.clone()) else {
            tracing::error!(job = %job.id, attempt = job.attempt, "attempt has no center or SKU; not billed");
            return Vec::new();
        };
        let cards = job.spec.total_cards();
        let ms = u128::from(ended_at.millis_since(started_at) as u64);
        let most = u64::try_from((ms * u128::from(cards)).div_ceil(1000)).unwrap_or(u64::MAX);
        let card_seconds = card_seconds.unwrap_or(most).min(most);
        if ended_at < started_at {
            tracing::warn!(job = %job.id, attempt = job.attempt, %started_at, %ended_at, "attempt reported to end before it started; nothing billed");
        }
        if card_seconds == 0 {
            return Vec::new();
        }
        let usage = Usage {
            job: job.id,
            attempt: job.attempt,
            tenant: job.tenant.clone(),
            center,
            sku,
            cards,
            started_at,
            ended_at,
            card_seconds,
            spot: job.spec.priority == PriorityClass::Spot,
        };
        match self.books.bill(&usage, &self.parties) {
            Ok(b) => {
                if b.records.is_empty() {
                    tracing::info!(job = %job.id, attempt = job.attempt, line = b.line.id, "attempt was billed before");
                } else {
                    tracing::info!(job = %job.id, attempt = job.attempt, line = b.line.id,
                        gross = %b.line.gross, subsidy = %b.line.subsidy, payable = %b.line.payable, "attempt billed");
                }
                b.records
            }
            Err(e) => {
                tracing::error!(job = %job.id, attempt = job.attempt, error = %e, "could not bill an attempt; the job goes on");
                Vec::new()
            }
        }
    }

    /// The stored center with the prices in force at `at` given to the core, if they changed.
    fn sync_prices(&mut self, at: Timestamp) {
        for (id, spec) in &self.specs {
            let eff = effective_spec(&self.books, spec, at);
            let prices = pool_prices(&eff);
            if self.core_prices.get(id) != Some(&prices) {
                self.core.upsert_center(&eff);
                self.core_prices.insert(id.clone(), prices);
                self.dirty = true;
            }
        }
    }

    /// Gives the core each tenant's (or just `only`'s) share of the list price per SKU after its
    /// best voucher: a programme in its validity window that admits the tenant's category and in
    /// which the tenant has a balance left.
    fn sync_pays(&mut self, at: Timestamp, only: Option<&TenantId>) {
        let skus: BTreeSet<&str> = self
            .specs
            .values()
            .flat_map(|s| s.pools.iter().map(|p| p.sku.as_str()))
            .collect();
        let mut changed = Vec::new();
        for (tenant, &category) in &self.parties.categories {
            if only.is_some_and(|o| o != tenant) {
                continue;
            }
            let usable: Vec<&suanli_money::Programme> = self
                .books
                .programmes()
                .filter(|p| {
                    p.is_valid_at(at)
                        && p.admits(category)
                        && self.books.grant_balance(&p.id, tenant) > Money::ZERO
                })
                .collect();
            let mut pays = BTreeMap::new();
            if !usable.is_empty() {
                for sku in &skus {
                    let domestic = self.parties.is_domestic(sku);
                    let best = usable
                        .iter()
                        .map(|p| p.rate_for(category, domestic))
                        .max()
                        .unwrap_or(0);
                    if best > 0 {
                        pays.insert(sku.to_string(), BP - best.min(BP));
                    }
                }
            }
            let known = self.pays.get(tenant);
            if known.map_or(!pays.is_empty(), |k| *k != pays) {
                changed.push((tenant.clone(), pays));
            }
        }
        for (tenant, pays) in changed {
            self.pays.insert(tenant.clone(), pays);
            self.push_tenant(&tenant);
        }
    }

    /// Gives the core the tenant's weight and quotas with its prices after vouchers.
    fn push_tenant(&mut self, tenant: &TenantId) {
        let mut policy = self.shares.get(tenant).cloned().unwrap_or_default();
        policy.pays_bp = self.pays.get(tenant).cloned().unwrap_or_default();
        self.core.set_tenant(tenant.clone(), policy);
        self.dirty = true;
    }

    /// Stores and applies a tenant's weight and quotas.
    async fn set_tenant_policy(
        &mut self,
        tenant: TenantId,
        view: TenantPolicyView,
    ) -> HubResult<TenantPolicyView> {
        let json = serde_json::to_string(&view).map_err(|e| HubError::BadRequest(e.to_string()))?;
        if !self.store.set_tenant_policy(&tenant, &json).await? {
            return Err(HubError::NotFound(format!("tenant {tenant}")));
        }
        self.shares.insert(tenant.clone(), share_policy(&view));
        self.push_tenant(&tenant);
        tracing::info!(%tenant, weight = view.weight, quotas = view.quotas.len(), "tenant policy set");
        Ok(view)
    }

    /// Makes sure the directory knows the tenant (tenants are created in the store by the API).
    async fn know_tenant(&mut self, tenant: &TenantId) -> HubResult<bool> {
        if self.parties.categories.contains_key(tenant) {
            return Ok(true);
        }
        match self.store.tenant(tenant).await? {
            Some(t) => {
                self.parties.categories.insert(t.id, t.category);
                self.sync_pays(now(), Some(tenant));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_price(&mut self, req: PriceRequest) -> HubResult<PriceView> {
        let Some(spec) = self.specs.get(&req.center) else {
            return Err(SpecError::new("center", format!("unknown center {}", req.center)).into());
        };
        if !spec.pools.iter().any(|p| p.sku == req.sku) {
            return Err(SpecError::new(
                "sku",
                format!("center {} has no pool of {}", req.center, req.sku),
            )
            .into());
        }
        let at = now();
        let records = self.books.set_price(
            &req.center,
            &req.sku,
            req.price_per_card_hour,
            req.spot_discount_bp,
            req.effective_from.unwrap_or(at),
        )?;
        self.persist_money(&records).await?;
        self.sync_prices(at);
        let Some(Record::Price(row)) = records.first() else {
            unreachable!("a price row was recorded")
        };
        tracing::info!(center = %row.center, sku = %row.sku, price = %row.per_card_hour, from = %row.effective_from, "price set");
        Ok(crate::money::price_view(&self.books, row, at))
    }

    async fn create_programme(&mut self, spec: ProgrammeSpec) -> HubResult<ProgrammeView> {
        let at = now();
        let def = crate::money::programme_def(&spec);
        let records = self.books.create_programme(def.clone(), at)?;
        self.persist_money(&records).await?;
        self.sync_pays(at, None);
        tracing::info!(programme = %def.id, budget = %def.budget, "voucher programme created");
        Ok(crate::money::programme_view(&self.books, &def, true))
    }

    async fn grant(&mut self, programme: String, req: GrantRequest) -> HubResult<GrantView> {
        if !self.know_tenant(&req.tenant).await? {
            return Err(SpecError::new("tenant", format!("unknown tenant {}", req.tenant)).into());
        }
        let at = now();
        let records = self.books.grant(
            &ProgrammeId::new(programme),
            &req.tenant,
            req.amount,
            at,
            &self.parties,
        )?;
        self.persist_money(&records).await?;
        self.sync_pays(at, Some(&req.tenant));
        let Some(Record::Grant(g)) = records.first() else {
            unreachable!("a grant was recorded")
        };
        tracing::info!(programme = %g.programme, tenant = %g.tenant, amount = %g.amount, "grant made");
        Ok(crate::money::grant_view(g))
    }

    async fn set_budget(&mut self, tenant: TenantId, req: BudgetRequest) -> HubResult<BudgetView> {
        if !self.know_tenant(&tenant).await? {
            return Err(HubError::NotFound(format!("tenant {tenant}")));
        }
        let records = self.books.set_budget(
            &tenant,
            req.monthly_limit,
            crate::money::policy(req.at_limit),
        )?;
        self.persist_money(&records).await?;
        self.budget_noted.remove(&tenant);
        let at = now();
        let b = self.books.budget(&tenant).expect("just set");
        let st = self
            .books
            .budget_status(&tenant, Month::of(at))
            .expect("just set");
        tracing::info!(%tenant, limit = %b.monthly_limit, "monthly budget set");
        Ok(crate::money::budget_view(&tenant, b, &st))
    }

    /// Warns once per month at 80% and at 100% of a tenant's budget; at 100% with the stop
    /// policy, cancels the tenant's queued, placed and running jobs.
    async fn check_budgets(&mut self, at: Timestamp) {
        let month = Month::of(at);
        let tenants: Vec<TenantId> = self.parties.categories.keys().cloned().collect();
        for tenant in tenants {
            let Some(st) = self.books.budget_status(&tenant, month) else {
                continue;
            };
            if st.level == BudgetLevel::Ok {
                continue;
            }
            let noted = self.budget_noted.get(&tenant);
            if noted != Some(&(month, st.level)) {
                let pct = (i128::from(st.spent.0) * 100)
                    .checked_div(i128::from(st.limit.0))
                    .unwrap_or(100);
                tracing::warn!(%tenant, %month, limit = %st.limit, spent = %st.spent, percent = pct as i64,
                    level = crate::money::level_name(st.level), "monthly budget");
                self.budget_noted.insert(tenant.clone(), (month, st.level));
            }
            if st.level != BudgetLevel::Exhausted || st.at_limit != OverBudgetPolicy::StopRunning {
                continue;
            }
            let mut ids: Vec<JobId> = self
                .jobs
                .values()
                .filter(|l| l.rec.tenant == tenant && !l.zombie && !l.rec.state.is_terminal())
                .map(|l| l.rec.id)
                .collect();
            ids.sort();
            for id in ids {
                let why = format!(
                    "monthly budget exhausted (limit {} yuan, spent {} yuan in {month})",
                    st.limit, st.spent
                );
                if let Err(e) = self.stop_job(id, "monthly budget exhausted", &why).await {
                    tracing::error!(job = %id, error = %e, "could not stop a job over budget");
                }
            }
        }
    }

    async fn submit(
        &mut self,
        tenant: TenantId,
        by: String,
        mut spec: JobSpec,
        key: Option<String>,
    ) -> HubResult<(JobRecord, bool)> {
        spec.tenant = Some(tenant.clone());
        // A retried submit (same tenant and key) gets the job the first one created. The engine
        // is the only writer, so nothing can insert the key between this read and the insert.
        if let Some(k) = &key
            && let Some(rec) = self.store.job_by_idempotency_key(&tenant, k).await?
        {
            if rec.spec != spec {
                return Err(HubError::Conflict(format!(
                    "idempotency key {k:?} was used for job {} with another spec; use a new key \
                     for a new job",
                    rec.id
                )));
            }
            return Ok((rec, false));
        }
        if let Err(rejections) = self.core.feasibility(&spec) {
            return Err(HubError::Unschedulable(
                rejections
                    .into_iter()
                    .map(|r| RejectionView {
                        center: r.center,
                        reason: r.reason,
                    })
                    .collect(),
            ));
        }
        self.know_tenant(&tenant).await?;
        let at = now();
        if self.books.budget(&tenant).is_some() {
            // What the job would cost after vouchers where the policy would put it now.
            let job = PendingJob {
                id: JobId(0),
                tenant: tenant.clone(),
                seq: u64::MAX,
                submitted_at: at,
                spec: spec.clone(),
            };
            let quoted = self
                .core
                .quote(&job, at)
                .candidates
                .first()
                .and_then(|c| self.quote_money(&job, c, at))
                .map_or(Money::ZERO, |q| q.payable);
            self.books.check_submit(&tenant, Month::of(at), quoted)?;
        }
        let rec = self
            .store
            .insert_job(NewJob {
                tenant,
                submitted_by: by,
                spec,
                at,
                idempotency_key: key,
            })
            .await?;
        self.core.enqueue(pending(&rec));
        self.jobs.insert(
            rec.id,
            Live {
                rec: rec.clone(),
                lease: None,
                zombie: false,
                started: None,
                last_seen: None,
                placed_at: rec.submitted_at,
            },
        );
        self.dirty = true;
        tracing::info!(job = %rec.id, tenant = %rec.tenant, "job queued");
        Ok((rec, true))
    }

    async fn cancel(&mut self, id: JobId, by: &str) -> HubResult<JobRecord> {
        let why = format!("cancelled by {by}");
        let rec = self.stop_job(id, &why, &why).await?;
        tracing::info!(job = %id, by, "job cancelled");
        Ok(rec)
    }

    /// Cancels a job: `reason` is stored with it, `message` goes to its history.
    async fn stop_job(&mut self, id: JobId, reason: &str, message: &str) -> HubResult<JobRecord> {
        let Some(live) = self.jobs.get(&id) else {
            return match self.store.job(id).await? {
                Some(rec) => Err(HubError::Conflict(format!(
                    "job {id} has already ended ({})",
                    rec.state
                ))),
                None => Err(HubError::NotFound(format!("job {id}"))),
            };
        };
        if live.zombie {
            return Err(HubError::Conflict(format!(
                "job {id} has already ended (cancelled)"
            )));
        }
        let old = live.rec.clone();
        let at = now();
        let mut rec = old.clone();
        rec.state = JobState::Cancelled;
        rec.ended_at = Some(at);
        rec.updated_at = at;
        rec.reason = Some(reason.to_string());
        let event = JobEvent {
            at,
            attempt: rec.attempt,
            state: JobState::Cancelled,
            message: message.to_string(),
        };
        self.write_job(&rec, &old, Some(&event), None, Vec::new())
            .await?;
        if old.state == JobState::Queued {
            self.core.remove_pending(id);
            self.jobs.remove(&id);
        } else {
            // The site stops the attempt now (long-poll) or at its next heartbeat; its cards
            // stay held till it confirms.
            let live = self.jobs.get_mut(&id).expect("present");
            live.rec = rec.clone();
            live.zombie = true;
            if let Some(c) = &rec.center {
                self.wake(c);
            }
        }
        Ok(rec)
    }

    async fn upsert_center(&mut self, spec: CenterSpec) -> HubResult<bool> {
        let at = now();
        let created = self.store.upsert_center(&spec, at).await?;
        // The registered pool prices become the price rows in force from now on.
        let rows = price_rows(&mut self.books, &spec, at, true);
        self.persist_money(&rows).await?;
        let eff = effective_spec(&self.books, &spec, at);
        self.core.upsert_center(&eff);
        self.core_prices.insert(spec.id.clone(), pool_prices(&eff));
        self.specs.insert(spec.id.clone(), spec.clone());
        self.sync_pays(at, None);
        let live = self.centers.entry(spec.id.clone()).or_default();
        self.core.set_online(&spec.id, live.is_open());
        self.dirty = true;
        self.fail_impossible_jobs().await;
        Ok(created)
    }

    /// After the network shrank, queued jobs that no center could ever hold fail with the reasons
    /// instead of waiting forever.
    async fn fail_impossible_jobs(&mut self) {
        let queued: Vec<JobId> = self
            .jobs
            .values()
            .filter(|l| l.rec.state == JobState::Queued)
            .map(|l| l.rec.id)
            .collect();
        for id in queued {
            let old = self.jobs[&id].rec.clone();
            let Err(rejections) = self.core.feasibility(&old.spec) else {
                continue;
            };
            let at = now();
            let why: Vec<String> = rejections
                .iter()
                .map(|r| format!("{}: {}", r.center, r.reason))
                .collect();
            let mut rec = old.clone();
            rec.state = JobState::Failed;
            rec.ended_at = Some(at);
            rec.updated_at = at;
            rec.reason = Some(format!(
                "no center can run this job any more ({})",
                why.join("; ")
            ));
            let event = JobEvent {
                at,
                attempt: rec.attempt,
                state: JobState::Failed,
                message: "a center was re-registered and no center can hold this job any more"
                    .into(),
            };
            match self
                .write_job(&rec, &old, Some(&event), None, Vec::new())
                .await
            {
                Ok(()) => {
                    self.core.remove_pending(id);
                    self.jobs.remove(&id);
                    self.metrics.finished(JobState::Failed);
                }
                Err(e) => {
                    tracing::error!(job = %id, error = %e, "could not fail an impossible job")
                }
            }
        }
    }

    fn heartbeat(&mut self, center: &CenterId, hb: Heartbeat, at: Timestamp) -> HeartbeatReply {
        let live = self.centers.entry(center.clone()).or_default();
        let was_open = live.is_open();
        live.online = true;
        live.draining = hb.draining;
        live.last_heartbeat = Some(at);
        live.inventory = hb.inventory;
        live.agent_version = Some(hb.agent_version);
        let open = live.is_open();
        self.core.set_online(center, open);
        // Preempted attempts the site no longer runs need no more kill orders.
        if let Some(m) = self.kills.get_mut(center) {
            m.retain(|r, _| hb.running.contains(r));
        }
        if open && !was_open {
            self.dirty = true;
        }
        let lease = at.plus_millis(self.cfg.lease_ttl.as_millis() as i64);
        let mut kill = Vec::new();
        for r in hb.running {
            match self.jobs.get_mut(&r.job) {
                Some(l)
                    if !l.zombie
                        && l.rec.attempt == r.attempt
                        && l.rec.center.as_ref() == Some(center)
                        && l.rec.state.is_active() =>
                {
                    l.lease = Some(lease);
                    l.last_seen = Some(at);
                }
                Some(l)
                    if l.zombie
                        && l.rec.attempt == r.attempt
                        && l.rec.center.as_ref() == Some(center) =>
                {
                    // Still running after a cancel: metered until the site confirms the stop.
                    l.last_seen = Some(at);
                    kill.push(r);
                }
                _ => kill.push(r),
            }
        }
        // Cancelled attempts at this center are stopped even if the site did not list them.
        for r in self.cancelled_at(center) {
            if !kill.contains(&r) {
                kill.push(r);
            }
        }
        HeartbeatReply {
            kill,
            lease_ttl_secs: self.cfg.lease_ttl.as_secs(),
        }
    }

    /// Attempts at `center` the site must stop: cancelled ones whose stop it has not confirmed,
    /// and preempted ones it still runs.
    fn cancelled_at(&self, center: &CenterId) -> Vec<AttemptRef> {
        let mut out: Vec<AttemptRef> = self
            .jobs
            .iter()
            .filter(|(_, l)| l.zombie && l.rec.center.as_ref() == Some(center))
            .map(|(id, l)| AttemptRef {
                job: *id,
                attempt: l.rec.attempt,
            })
            .collect();
        out.extend(
            self.kills
                .get(center)
                .into_iter()
                .flat_map(|m| m.keys().copied()),
        );
        out.sort();
        out.dedup();
        out
    }

    /// Wakes the long-polls of `center`.
    fn wake(&self, center: &CenterId) {
        if let Some(tx) = self
            .placed
            .lock()
            .expect("placement watch lock")
            .get(center)
        {
            tx.send_modify(|v| *v += 1);
        }
    }

    fn assignments(&self, center: &CenterId) -> Assignments {
        Assignments {
            assignments: self.placed_at_center(center),
            kill: self.cancelled_at(center),
        }
    }

    fn placed_at_center(&self, center: &CenterId) -> Vec<Assignment> {
        let mut out: Vec<Assignment> = self
            .jobs
            .values()
            .filter(|l| {
                !l.zombie
                    && l.rec.state == JobState::Placed
                    && l.rec.center.as_ref() == Some(center)
            })
            .map(|l| Assignment {
                job: l.rec.id,
                attempt: l.rec.attempt,
                tenant: l.rec.tenant.clone(),
                spec: l.rec.spec.clone(),
                sku: l.rec.sku.clone().unwrap_or_default(),
                nodes: l
                    .rec
                    .alloc
                    .iter()
                    .map(|n| NodeCards {
                        node: n.node.clone(),
                        cards: n.cards,
                    })
                    .collect(),
                lease_expires_at: l.lease.unwrap_or_default(),
            })
            .collect();
        out.sort_by_key(|a| a.job);
        out
    }

    /// Is this report about the current attempt of a job at this center?
    fn is_current(&self, center: &CenterId, job: JobId, attempt: u32) -> bool {
        self.jobs.get(&job).is_some_and(|l| {
            l.rec.attempt == attempt
                && l.rec.center.as_ref() == Some(center)
                && (l.rec.state.is_active() || l.zombie)
        })
    }

    async fn events(
        &mut self,
        center: &CenterId,
        events: Vec<AgentEvent>,
    ) -> HubResult<Vec<EventStatus>> {
        let mut results = Vec::with_capacity(events.len());
        let mut logs: Vec<(JobId, u32, LogRow)> = Vec::new();
        for ev in events {
            let status = if self.is_current(center, ev.job, ev.attempt) {
                match ev.kind {
                    EventKind::Log { seq, stream, data } => {
                        logs.push((ev.job, ev.attempt, log_row(seq, stream, data)));
                        EventStatus::Accepted
                    }
                    other => {
                        // Logs before this event are durable before its state change.
                        self.flush_logs(&mut logs).await?;
                        self.apply_event(ev.job, other).await?
                    }
                }
            } else {
                // Retries of reports for an attempt that has already ended here are harmless.
                match self.store.job(ev.job).await? {
                    Some(rec)
                        if rec.attempt == ev.attempt
                            && rec.center.as_ref() == Some(center)
                            && rec.state.is_terminal() =>
                    {
                        match ev.kind {
                            EventKind::Log { seq, stream, data } => {
                                logs.push((ev.job, ev.attempt, log_row(seq, stream, data)));
                                EventStatus::Accepted
                            }
                            EventKind::Finished { .. } => EventStatus::Accepted,
                            EventKind::Started { .. } => EventStatus::Stale,
                        }
                    }
                    _ => EventStatus::Stale,
                }
            };
            if status == EventStatus::Stale {
                tracing::info!(job = %ev.job, attempt = ev.attempt, %center, "stale report rejected");
            }
            results.push(status);
        }
        self.flush_logs(&mut logs).await?;
        Ok(results)
    }

    async fn flush_logs(&self, logs: &mut Vec<(JobId, u32, LogRow)>) -> HubResult<()> {
        let mut start = 0;
        while start < logs.len() {
            let (job, attempt) = (logs[start].0, logs[start].1);
            let end = logs[start..]
                .iter()
                .position(|(j, a, _)| (*j, *a) != (job, attempt))
                .map_or(logs.len(), |p| start + p);
            let rows: Vec<LogRow> = logs[start..end].iter().map(|(_, _, r)| r.clone()).collect();
            self.store.append_logs(job, attempt, &rows).await?;
            start = end;
        }
        logs.clear();
        Ok(())
    }

    async fn apply_event(&mut self, id: JobId, kind: EventKind) -> HubResult<EventStatus> {
        let live = self.jobs.get(&id).expect("checked current");
        let old = live.rec.clone();
        let zombie = live.zombie;
        let at = now();
        match kind {
            EventKind::Log { .. } => unreachable!("logs are batched"),
            EventKind::Started { at: started } => {
                // A cancelled attempt is being stopped (kill list); its Finished is still wanted.
                if zombie || old.state == JobState::Running {
                    let live = self.jobs.get_mut(&id).expect("present");
                    live.started.get_or_insert(started);
                    return Ok(EventStatus::Accepted);
                }
                let mut rec = old.clone();
                rec.state = JobState::Running;
                rec.started_at = Some(started);
                rec.updated_at = at;
                let lease = at.plus_millis(self.cfg.lease_ttl.as_millis() as i64);
                rec.lease_expires_at = Some(lease);
                let mut attempt = self.attempt_record(&old);
                attempt.started_at = Some(started);
                let event = JobEvent {
                    at,
                    attempt: rec.attempt,
                    state: JobState::Running,
                    message: format!(
                        "started at {}",
                        old.center.as_ref().map_or("?", |c| c.as_str())
                    ),
                };
                self.write_job(&rec, &old, Some(&event), Some(&attempt), Vec::new())
                    .await?;
                let live = self.jobs.get_mut(&id).expect("present");
                live.rec = rec;
                live.lease = Some(lease);
                live.started = Some(started);
                Ok(EventStatus::Accepted)
            }
            EventKind::Finished {
                outcome,
                exit_code,
                started_at,
                ended_at,
                card_seconds,
                log_chunks,
                message,
            } => {
                let mut attempt = self.attempt_record(&old);
                attempt.started_at = Some(started_at);
                attempt.ended_at = Some(ended_at);
                attempt.outcome = Some(outcome_name(outcome).to_string());
                attempt.exit_code = exit_code;
                // A site cannot bill more than its cards for the time it reported.
                let run_secs = (ended_at.millis_since(started_at) as u64).div_ceil(1000);
                let card_seconds = card_seconds.min(
                    run_secs
                        .saturating_add(1)
                        .saturating_mul(old.spec.total_cards() as u64),
                );
                attempt.card_seconds = card_seconds;
                attempt.log_chunks = Some(log_chunks);
                let mut rec = old.clone();
                rec.card_seconds = rec.card_seconds.saturating_add(card_seconds);
                rec.updated_at = at;
                rec.lease_expires_at = None;
                let (state, note) = if zombie {
                    (JobState::Cancelled, "cancelled attempt stopped".to_string())
                } else {
                    match outcome {
                        Outcome::Succeeded => (JobState::Succeeded, "exited 0".to_string()),
                        Outcome::Failed => (
                            JobState::Failed,
                            match exit_code {
                                Some(c) => format!("exited {c}"),
                                None => message.clone(),
                            },
                        ),
                        Outcome::TimedOut => (
                            JobState::TimedOut,
                            format!("killed at the wall-time limit of {}s", old.spec.walltime),
                        ),
                        Outcome::Killed => (
                            JobState::Queued,
                            format!(
                                "attempt {} stopped by the site ({message}); requeued",
                                old.attempt
                            ),
                        ),
                    }
                };
                rec.state = state;
                if state.is_terminal() {
                    if !zombie {
                        rec.ended_at = Some(ended_at);
                        rec.exit_code = exit_code;
                        let agent_says = outcome == Outcome::Failed && !message.is_empty();
                        rec.reason = Some(if agent_says {
                            message.chars().take(300).collect()
                        } else {
                            note.clone()
                        });
                    }
                } else {
                    rec.center = None;
                    rec.sku = None;
                    rec.alloc.clear();
                    rec.reason = Some(note.clone());
                }
                let event = JobEvent {
                    at,
                    attempt: rec.attempt,
                    state: rec.state,
                    message: note,
                };
                let money = self.bill_attempt(&old, started_at, ended_at, Some(card_seconds));
                self.write_job(&rec, &old, Some(&event), Some(&attempt), money)
                    .await?;
                self.core.release(id);
                self.dirty = true;
                if rec.state == JobState::Queued {
                    self.core.enqueue(pending(&rec));
                    let live = self.jobs.get_mut(&id).expect("present");
                    live.rec = rec;
                    live.lease = None;
                    live.started = None;
                    live.last_seen = None;
                } else {
                    self.jobs.remove(&id);
                    self.metrics.finished(rec.state);
                }
                tracing::info!(job = %id, attempt = old.attempt, ?outcome, "attempt finished");
                Ok(EventStatus::Accepted)
            }
        }
    }

    fn attempt_record(&self, rec: &JobRecord) -> AttemptRecord {
        AttemptRecord {
            job: rec.id,
            attempt: rec.attempt,
            center: rec.center.clone().unwrap_or_else(|| CenterId::new("?")),
            sku: rec.sku.clone().unwrap_or_default(),
            cards: rec.spec.total_cards(),
            // Written only when the attempt's row is first stored (at placement).
            placed_at: self
                .jobs
                .get(&rec.id)
                .map_or(rec.updated_at, |l| l.placed_at),
            started_at: rec.started_at,
            ended_at: None,
            outcome: None,
            exit_code: None,
            card_seconds: 0,
            log_chunks: None,
        }
    }

    async fn on_tick(&mut self) {
        let at = now();
        for m in self.kills.values_mut() {
            m.retain(|_, until| *until >= at);
        }
        // Centers that stopped heartbeating take no new work.
        let offline_ms = self.cfg.offline_after.as_millis() as i64;
        for (id, live) in self.centers.iter_mut() {
            if live.online
                && live
                    .last_heartbeat
                    .is_none_or(|t| at.millis_since(t) > offline_ms)
            {
                live.online = false;
                self.core.set_online(id, false);
                tracing::warn!(center = %id, "no heartbeat: center marked offline");
            }
        }
        // Expired leases: the attempt is lost; requeue the job (or just free a cancelled one's cards).
        let expired: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, l)| l.lease.is_some_and(|t| t < at))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Err(e) = self.expire(id, at).await {
                tracing::error!(job = %id, error = %e, "could not requeue a job whose lease expired");
            }
        }
        // Programmes past their window expire; prices and voucher rates in force move on.
        let records = self.books.expire_due(at);
        if let Err(e) = self.persist_money(&records).await {
            tracing::error!(error = %e, "could not record expired voucher programmes");
        }
        let since = self.money_synced;
        let crossed = |t: Timestamp| since < t && t <= at;
        if self
            .books
            .prices()
            .iter()
            .any(|r| crossed(r.effective_from))
        {
            self.sync_prices(at);
        }
        if !records.is_empty()
            || self
                .books
                .programmes()
                .any(|p| crossed(p.valid_from) || crossed(p.valid_until))
        {
            self.sync_pays(at, None);
        }
        self.money_synced = at;
        self.check_budgets(at).await;
        self.metrics
            .refresh_from_engine(&self.core, &self.centers, at);
    }

    /// The lost attempt's usage: from its start to the last heartbeat that listed it.
    fn meter_lost(&mut self, id: JobId) -> Vec<Record> {
        let live = &self.jobs[&id];
        let Some(started) = live.started else {
            return Vec::new();
        };
        let last = live.last_seen.map_or(started, |t| t.max(started));
        let job = live.rec.clone();
        self.bill_attempt(&job, started, last, None)
    }

    async fn expire(&mut self, id: JobId, at: Timestamp) -> HubResult<()> {
        let live = self.jobs.get(&id).expect("listed");
        if live.zombie {
            // The site never confirmed the stop: free the cards, and forget the lease for good.
            let old = live.rec.clone();
            let mut rec = old.clone();
            rec.lease_expires_at = None;
            rec.updated_at = at;
            let money = self.meter_lost(id);
            self.write_job(&rec, &old, None, None, money).await?;
            self.core.release(id);
            self.jobs.remove(&id);
            self.dirty = true;
            return Ok(());
        }
        let old = live.rec.clone();
        let (started, last_seen) = (live.started, live.last_seen);
        let money = self.meter_lost(id);
        let mut attempt = self.attempt_record(&old);
        attempt.outcome = Some("lost".into());
        attempt.started_at = started;
        attempt.ended_at = started.map(|s| last_seen.map_or(s, |t| t.max(s)));
        attempt.card_seconds = metered(&money);
        let center = old
            .center
            .clone()
            .map_or_else(String::new, |c| c.to_string());
        let note = format!(
            "attempt {} lost: lease at {center} expired without a report; requeued",
            old.attempt
        );
        let (rec, event) = requeued(&old, at, note, attempt.card_seconds);
        self.write_job(&rec, &old, Some(&event), Some(&attempt), money)
            .await?;
        self.core.release(id);
        self.core.enqueue(pending(&rec));
        let live = self.jobs.get_mut(&id).expect("present");
        live.rec = rec;
        live.lease = None;
        live.started = None;
        live.last_seen = None;
        self.dirty = true;
        tracing::warn!(job = %id, attempt = old.attempt, %center, "lease expired; job requeued");
        Ok(())
    }

    async fn schedule(&mut self) {
        self.dirty = false;
        let at = now();
        let started = std::time::Instant::now();
        let placements = self.core.schedule(at);
        self.metrics.observe_pass(started.elapsed());
        let mut touched: Vec<CenterId> = Vec::new();
        for p in placements {
            let center = p.alloc.center.clone();
            match self.persist_placement(p, at).await {
                Ok(()) => {
                    if !touched.contains(&center) {
                        touched.push(center);
                    }
                }
                Err((id, e)) => {
                    tracing::error!(job = %id, error = %e, "could not record a placement; job stays queued");
                    self.core.release(id);
                    if let Some(l) = self.jobs.get(&id) {
                        self.core.enqueue(pending(&l.rec));
                    }
                    // Try again at the next tick.
                    self.dirty = true;
                }
            }
        }
        for c in touched {
            self.wake(&c);
        }
    }

    /// Records that `victim`'s attempt was evicted for `by`: the job is queued again (the core
    /// has queued it already) and its site is told to stop the attempt.
    async fn persist_preemption(
        &mut self,
        victim: JobId,
        by: JobId,
        center: &CenterId,
        at: Timestamp,
    ) -> HubResult<()> {
        let Some(live) = self.jobs.get(&victim) else {
            return Ok(());
        };
        if live.zombie || !live.rec.state.is_active() {
            return Ok(());
        }
        let note = format!(
            "attempt {} preempted at {center} for job {by}; requeued",
            live.rec.attempt
        );
        self.evict(victim, "preempted", note, at).await?;
        self.metrics.preempted();
        tracing::info!(job = %victim, by = %by, %center, "attempt preempted");
        Ok(())
    }

    /// Drains or undrains `center`. Draining keeps new work away and hands back attempts that
    /// have not started (and, with `requeue`, running ones): each is queued again with the next
    /// attempt number and the site is told to stop it. Running attempts otherwise finish there.
    async fn drain(
        &mut self,
        center: CenterId,
        drain: bool,
        requeue: bool,
    ) -> HubResult<DrainView> {
        if !self.specs.contains_key(&center) {
            return Err(HubError::NotFound(format!("no center {center}")));
        }
        if !self.store.set_center_drained(&center, drain).await? {
            return Err(HubError::NotFound(format!("no center {center}")));
        }
        let live = self.centers.entry(center.clone()).or_default();
        live.drained = drain;
        let open = live.is_open();
        self.core.set_online(&center, open);
        self.dirty = true;
        let mut requeued = Vec::new();
        let mut running = 0;
        if drain {
            let at = now();
            let mut here: Vec<(JobId, bool)> = self
                .jobs
                .values()
                .filter(|l| {
                    !l.zombie && l.rec.state.is_active() && l.rec.center.as_ref() == Some(&center)
                })
                .map(|l| (l.rec.id, l.rec.state == JobState::Running))
                .collect();
            here.sort();
            for (id, is_running) in here {
                if is_running && !requeue {
                    running += 1;
                    continue;
                }
                self.hand_back(id, &center, at).await?;
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

    /// Queues `id` again because its center was drained, and tells the site to stop it.
    async fn hand_back(&mut self, id: JobId, center: &CenterId, at: Timestamp) -> HubResult<()> {
        let note = format!(
            "attempt {} handed back: center {center} was drained; requeued",
            self.jobs[&id].rec.attempt
        );
        self.evict(id, "drained", note, at).await?;
        self.core.release(id);
        self.core.enqueue(pending(&self.jobs[&id].rec));
        Ok(())
    }

    /// Ends `id`'s current attempt at `at` for the hub's own reasons (preemption, drain): meters
    /// and bills what ran, records the attempt with `outcome`, queues the job again with `note`,
    /// and tells the site to stop the attempt. The caller updates the core.
    async fn evict(
        &mut self,
        id: JobId,
        outcome: &str,
        note: String,
        at: Timestamp,
    ) -> HubResult<()> {
        let live = &self.jobs[&id];
        let old = live.rec.clone();
        let started = live.started;
        let money = match started {
            Some(s) => self.bill_attempt(&old, s, at.max(s), None),
            None => Vec::new(),
        };
        let mut attempt = self.attempt_record(&old);
        attempt.outcome = Some(outcome.into());
        attempt.started_at = started;
        attempt.ended_at = Some(at);
        attempt.card_seconds = metered(&money);
        let (rec, event) = requeued(&old, at, note, attempt.card_seconds);
        self.write_job(&rec, &old, Some(&event), Some(&attempt), money)
            .await?;
        if let Some(c) = &old.center {
            let until = at.plus_millis(self.cfg.lease_ttl.as_millis() as i64);
            self.kills.entry(c.clone()).or_default().insert(
                AttemptRef {
                    job: id,
                    attempt: old.attempt,
                },
                until,
            );
            self.wake(c);
        }
        let live = self.jobs.get_mut(&id).expect("present");
        live.rec = rec;
        live.lease = None;
        live.started = None;
        live.last_seen = None;
        Ok(())
    }

    async fn persist_placement(
        &mut self,
        p: Placement,
        at: Timestamp,
    ) -> Result<(), (JobId, HubError)> {
        let id = p.job;
        for v in &p.preempted {
            if let Err(e) = self.persist_preemption(*v, id, &p.alloc.center, at).await {
                tracing::error!(job = %v, error = %e, "could not record a preemption");
            }
        }
        let Some(live) = self.jobs.get(&id) else {
            return Err((
                id,
                HubError::NotFound(format!("job {id} placed but unknown to the engine")),
            ));
        };
        let old = live.rec.clone();
        let mut rec = old.clone();
        rec.state = JobState::Placed;
        rec.attempt = old.attempt + 1;
        rec.center = Some(p.alloc.center.clone());
        rec.sku = Some(p.alloc.sku.clone());
        rec.alloc = p
            .alloc
            .nodes
            .iter()
            .map(|n| NodeShare {
                node: n.node.clone(),
                cards: n.cards,
            })
            .collect();
        let view = placement_view(&p, rec.attempt, rule(self.cfg.core.policy));
        rec.placement = serde_json::to_string(&view).ok();
        let lease = at.plus_millis(self.cfg.lease_ttl.as_millis() as i64);
        rec.lease_expires_at = Some(lease);
        rec.reason = None;
        rec.updated_at = at;
        let mut attempt = self.attempt_record(&rec);
        attempt.placed_at = at;
        attempt.started_at = None;
        let event = JobEvent {
            at,
            attempt: rec.attempt,
            state: JobState::Placed,
            message: format!(
                "placed at {} on {} x {} (attempt {}): {}/card-hour, {} other fitting, {} rejected",
                p.alloc.center,
                p.alloc.nodes.len(),
                p.alloc.sku,
                rec.attempt,
                p.decision.chosen.price_per_card_hour,
                p.decision.others.len(),
                p.decision.rejected.len()
            ),
        };
        self.write_job(&rec, &old, Some(&event), Some(&attempt), Vec::new())
            .await
            .map_err(|e| (id, e))?;
        self.metrics
            .placed(at.millis_since(old.updated_at.max(old.submitted_at)));
        let live = self.jobs.get_mut(&id).expect("present");
        live.rec = rec;
        live.lease = Some(lease);
        live.started = None;
        live.last_seen = None;
        live.placed_at = at;
        Ok(())
    }
}

/// Card-seconds of the bill line among `records` (0 without one).
fn metered(records: &[Record]) -> u64 {
    records
        .iter()
        .find_map(|r| match r {
            Record::Line(l) => Some(l.usage.card_seconds),
            _ => None,
        })
        .unwrap_or(0)
}

/// Price rows for the pools of a registered center: a pool never priced gets its registered
/// price in force since always (usage restored from before the first price is still billed); with
/// `reprice`, a pool whose registered price differs from the row in force gets a row from `at`
/// (keeping that row's spot discount).
fn price_rows(books: &mut Books, spec: &CenterSpec, at: Timestamp, reprice: bool) -> Vec<Record> {
    let mut out = Vec::new();
    for p in &spec.pools {
        let any = books
            .prices()
            .iter()
            .any(|r| r.center == spec.id && r.sku == p.sku);
        let current = books.price_at(&spec.id, &p.sku, at, false);
        let row = if !any {
            Some((Timestamp(0), None))
        } else if reprice && current.is_none_or(|u| u.per_card_hour != p.price_per_card_hour) {
            let discount = current
                .and_then(|u| books.prices().get((u.row - 1) as usize))
                .and_then(|r| r.spot_discount_bp);
            Some((at, discount))
        } else {
            None
        };
        if let Some((from, discount)) = row {
            match books.set_price(&spec.id, &p.sku, p.price_per_card_hour, discount, from) {
                Ok(r) => out.extend(r),
                Err(e) => {
                    tracing::error!(center = %spec.id, sku = %p.sku, error = %e, "cannot price a pool")
                }
            }
        }
    }
    out
}

/// The center as the core sees it: each pool at the price in force at `at`.
fn effective_spec(books: &Books, spec: &CenterSpec, at: Timestamp) -> CenterSpec {
    let mut eff = spec.clone();
    for p in &mut eff.pools {
        if let Some(u) = books.price_at(&spec.id, &p.sku, at, false) {
            p.price_per_card_hour = u.per_card_hour;
        }
    }
    eff
}

fn pool_prices(spec: &CenterSpec) -> Vec<Money> {
    spec.pools.iter().map(|p| p.price_per_card_hour).collect()
}

/// The core's view of a stored tenant policy.
pub(crate) fn share_policy(v: &TenantPolicyView) -> TenantPolicy {
    TenantPolicy {
        weight: v.weight,
        quotas: v
            .quotas
            .iter()
            .map(|(family, q)| {
                (
                    family.clone(),
                    suanli_core::Quota {
                        nominal: q.nominal,
                        borrow_limit: q.borrow_limit,
                    },
                )
            })
            .collect(),
        pays_bp: BTreeMap::new(),
    }
}

/// The job queued again after its attempt was lost or preempted (metered `card_seconds`), with
/// the history line that says why.
fn requeued(
    old: &JobRecord,
    at: Timestamp,
    note: String,
    card_seconds: u64,
) -> (JobRecord, JobEvent) {
    let mut rec = old.clone();
    rec.card_seconds = rec.card_seconds.saturating_add(card_seconds);
    rec.state = JobState::Queued;
    rec.center = None;
    rec.sku = None;
    rec.alloc.clear();
    rec.lease_expires_at = None;
    rec.updated_at = at;
    rec.reason = Some(note.clone());
    let event = JobEvent {
        at,
        attempt: old.attempt,
        state: JobState::Queued,
        message: note,
    };
    (rec, event)
}

fn pending(rec: &JobRecord) -> PendingJob {
    PendingJob {
        id: rec.id,
        tenant: rec.tenant.clone(),
        seq: rec.id.0 as u64,
        submitted_at: rec.submitted_at,
        spec: rec.spec.clone(),
    }
}

fn placed_at(rec: &JobRecord) -> Timestamp {
    rec.placement
        .as_deref()
        .and_then(|p| serde_json::from_str::<PlacementView>(p).ok())
        .map_or(rec.updated_at, |v| v.at)
}

fn log_row(seq: u64, stream: suanli_proto::Stream, data: String) -> LogRow {
    LogRow {
        seq,
        stream: match stream {
            suanli_proto::Stream::Stdout => "stdout".into(),
            suanli_proto::Stream::Stderr => "stderr".into(),
        },
        data,
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::TimedOut => "timed-out",
        Outcome::Killed => "killed",
    }
}

fn candidate(c: &suanli_core::Candidate) -> CandidateView {
    CandidateView {
        center: c.center.clone(),
        sku: c.sku.clone(),
        price_per_card_hour: c.price_per_card_hour,
        cost_per_hour: c.cost_per_hour,
        cost_total: c.cost_total,
        free_cards: c.free_cards,
        expected_start: c.expected_start,
        score_milli: c.score_milli,
        gross: None,
        subsidy: None,
        payable: None,
        programme: None,
    }
}

fn placement_view(p: &Placement, attempt: u32, rule: &str) -> PlacementView {
    PlacementView {
        attempt,
        at: p.decision.at,
        center: p.alloc.center.clone(),
        sku: p.alloc.sku.clone(),
        nodes: p
            .alloc
            .nodes
            .iter()
            .map(|n| NodeCards {
                node: n.node.clone(),
                cards: n.cards,
            })
            .collect(),
        chosen: candidate(&p.decision.chosen),
        others: p.decision.others.iter().map(candidate).collect(),
        rejected: p
            .decision
            .rejected
            .iter()
            .map(|r| RejectionView {
                center: r.center.clone(),
                reason: r.reason.clone(),
            })
            .collect(),
        rule: rule.to_string(),
    }
}

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

mod cmd;
mod jobs;
mod site_events;

use cmd::Reply;
pub use cmd::{BooksRead, Cmd, LiveView};

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

//! The engine's input log, and its replay.
//!
//! The engine appends every input of its state ([`HubState`]) to the store's input log: the
//! snapshot it was rebuilt from at each start (with its settings), stored submits, cancels,
//! drains, center registrations, heartbeats (the attempts they list), the sites' reports on
//! attempts, tenant policies and categories, the operator's money records, ticks and scheduling
//! passes, each with its time. [`replay`] runs a log through the same state and flows with
//! nothing written, and so reproduces the live hub's decisions: the same
//! [`decision_hash`](suanli_core::Core::decision_hash).
//!
//! The log is written in batches (at each tick), apart from the changes it explains: a hub that
//! crashes loses the last batch, and its replay diverges from the moment of the crash up to the
//! next start (whose snapshot is complete). A write that fails (the store refuses a change) is
//! not replayed as failing either.

use std::time::Duration;

use suanli_core::{CoreConfig, Policy, Weights};
use suanli_money::{Books, Record};
use suanli_proto::{AttemptRef, EventKind, TenantPolicyView};
use suanli_store::{JobRecord, Store};
use suanli_types::{CenterId, CenterSpec, JobId, SharePolicy, TenantCategory, TenantId, Timestamp};

use crate::engine::{EngineConfig, ReportBounds};
use crate::error::{HubError, HubResult};
use crate::state::{HubState, Io, Snapshot};
use crate::views::{attempt_key, report};

/// One input of the engine's state, with its time.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub at: Timestamp,
    #[serde(flatten)]
    pub input: Input,
}

/// What changed the engine's state.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "input", rename_all = "kebab-case")]
pub enum Input {
    /// The engine (re)started from this snapshot of the store, with these settings.
    Start {
        settings: Settings,
        snapshot: Box<Snapshot>,
    },
    /// A job was stored as queued (with how the parents it depends on had ended, if they had).
    Submit {
        job: Box<JobRecord>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        finals: Vec<(JobId, suanli_types::JobState)>,
    },
    /// A pending job was held (`hold`) or released.
    Hold {
        job: JobId,
        hold: bool,
        by: String,
    },
    Cancel {
        job: JobId,
        by: String,
    },
    Drain {
        center: CenterId,
        drain: bool,
        requeue: bool,
    },
    Center {
        spec: Box<CenterSpec>,
    },
    Heartbeat {
        center: CenterId,
        draining: bool,
        running: Vec<AttemptRef>,
    },
    /// A site's report on the current attempt of a job there.
    Report {
        center: CenterId,
        job: JobId,
        attempt: u32,
        event: EventKind,
    },
    /// A site's report the hub refused (`invalid_report`), kept for the supervisor; it changed
    /// nothing, and a replay skips it.
    Refused {
        center: CenterId,
        job: JobId,
        attempt: u32,
        event: EventKind,
        reason: String,
        message: String,
    },
    TenantPolicy {
        tenant: TenantId,
        policy: TenantPolicyView,
    },
    Tenant {
        tenant: TenantId,
        category: TenantCategory,
    },
    /// The operator's change to the books (a price, a programme, a grant, a budget).
    Money {
        records: Vec<Record>,
    },
    Tick,
    /// A scheduling pass.
    Schedule,
    /// Where a model (`name@revision`) is certified now.
    Certified {
        model: String,
        certified: Vec<suanli_core::Certified>,
    },
    /// Where a dataset resides now.
    DatasetHomes {
        dataset: String,
        homes: Vec<suanli_types::CenterId>,
    },
}

/// The engine settings that bear on its decisions.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub lease_ttl_ms: u64,
    pub offline_after_ms: u64,
    pub policy: String,
    pub weights: [f64; 3],
    pub fair_share_half_life_secs: u64,
    pub backfill: bool,
    pub preemption: bool,
    pub preempt_interval_secs: u64,
    pub max_preemptions_per_pass: usize,
    pub max_examined_per_pass: usize,
    /// The report bounds (absent in logs from before they existed: the defaults).
    #[serde(default = "default_skew_ms")]
    pub report_skew_ms: i64,
    #[serde(default = "default_kill_grace_ms")]
    pub kill_grace_ms: i64,
}

fn default_skew_ms() -> i64 {
    ReportBounds::default().skew_ms
}

fn default_kill_grace_ms() -> i64 {
    ReportBounds::default().kill_grace_ms
}

impl Settings {
    pub fn of(cfg: &EngineConfig) -> Settings {
        let c = &cfg.core;
        Settings {
            lease_ttl_ms: cfg.lease_ttl.as_millis() as u64,
            offline_after_ms: cfg.offline_after.as_millis() as u64,
            policy: c.policy.as_str().to_string(),
            weights: [c.weights.cost, c.weights.wait, c.weights.fit],
            fair_share_half_life_secs: c.fair_share_half_life_secs,
            backfill: c.backfill,
            preemption: c.preemption,
            preempt_interval_secs: c.preempt_interval_secs,
            max_preemptions_per_pass: c.max_preemptions_per_pass,
            max_examined_per_pass: c.max_examined_per_pass,
            report_skew_ms: cfg.reports.skew_ms,
            kill_grace_ms: cfg.reports.kill_grace_ms,
        }
    }

    pub fn config(&self) -> HubResult<EngineConfig> {
        let policy: Policy = self.policy.parse().map_err(HubError::BadRequest)?;
        Ok(EngineConfig {
            lease_ttl: Duration::from_millis(self.lease_ttl_ms),
            offline_after: Duration::from_millis(self.offline_after_ms),
            tick: EngineConfig::default().tick,
            core: CoreConfig {
                policy,
                weights: Weights {
                    cost: self.weights[0],
                    wait: self.weights[1],
                    fit: self.weights[2],
                },
                fair_share_half_life_secs: self.fair_share_half_life_secs,
                backfill: self.backfill,
                preemption: self.preemption,
                preempt_interval_secs: self.preempt_interval_secs,
                max_preemptions_per_pass: self.max_preemptions_per_pass,
                max_examined_per_pass: self.max_examined_per_pass,
                // The Slurm weights and Tiresias thresholds are not settable in the hub: the
                // defaults are what ran.
                ..CoreConfig::default()
            },
            reports: ReportBounds {
                skew_ms: self.report_skew_ms,
                kill_grace_ms: self.kill_grace_ms,
            },
        })
    }
}

/// What a replay came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// The decision hash of the last engine start's core, as `GET /v1/hub` shows it.
    pub decision_hash: u64,
    pub inputs: usize,
    /// How many times the engine started.
    pub starts: usize,
    /// Jobs unfinished at the end of the log.
    pub unfinished: usize,
}

/// Reads a store's whole input log, in order.
pub async fn read_log(store: &dyn Store) -> HubResult<Vec<Entry>> {
    const PAGE: u32 = 10_000;
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let rows = store.inputs(after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for r in &rows {
            let input = serde_json::from_str(&r.input).map_err(|e| {
                HubError::Store(suanli_store::StoreError::Corrupt {
                    what: "hub_inputs.input",
                    detail: format!("entry {}: {e}", r.seq),
                })
            })?;
            out.push(Entry { at: r.at, input });
        }
    }
    Ok(out)
}

/// Runs an input log through the engine's state, writing nothing.
pub async fn replay(entries: impl IntoIterator<Item = Entry>) -> HubResult<Replayed> {
    let mut state: Option<HubState> = None;
    let mut io = NoStore;
    let (mut inputs, mut starts) = (0, 0);
    for Entry { at, input } in entries {
        inputs += 1;
        if let Input::Start { settings, snapshot } = input {
            let (s, _) = HubState::restore(settings.config()?, *snapshot, at)?;
            state = Some(s);
            starts += 1;
            continue;
        }
        let Some(state) = state.as_mut() else {
            return Err(HubError::BadRequest(
                "the input log does not begin with an engine start".into(),
            ));
        };
        step(state, &mut io, input, at).await;
    }
    let state = state.ok_or_else(|| HubError::BadRequest("the input log is empty".into()))?;
    Ok(Replayed {
        decision_hash: state.life.core().decision_hash(),
        inputs,
        starts,
        unfinished: state.life.jobs().count(),
    })
}

/// Applies one logged input (not a start) as the engine did. Inputs that failed live failed
/// before they were logged; a failure here (a log edited by hand) changes nothing.
async fn step(state: &mut HubState, io: &mut NoStore, input: Input, at: Timestamp) {
    let outcome = match input {
        Input::Start { .. } => unreachable!("handled by the caller"),
        Input::Submit { job, finals } => {
            for (id, st) in finals {
                state.life.note_final(id, st);
            }
            state.submitted(*job);
            Ok(())
        }
        Input::Hold { job, hold, by } => state.hold(io, job, hold, &by, at).await.map(drop),
        Input::Cancel { job, by } => {
            let why = format!("cancelled by {by}");
            state.stop_job(io, job, &why, &why, at).await.map(drop)
        }
        Input::Drain {
            center,
            drain,
            requeue,
        } => state.drain(io, center, drain, requeue, at).await.map(drop),
        Input::Center { spec } => state.upsert_center(io, *spec, at).await.map(drop),
        Input::Heartbeat {
            center,
            draining,
            running,
        } => {
            let running: Vec<_> = running.iter().map(attempt_key).collect();
            state.heartbeat(&center, draining, &running, at);
            Ok(())
        }
        Input::Report {
            center,
            job,
            attempt,
            event,
        } => match report(&event, None) {
            Some(r) => state
                .report(io, &center, job, attempt, r, at)
                .await
                .map(drop),
            None => Ok(()),
        },
        Input::Refused { .. } => Ok(()),
        Input::Certified { model, certified } => {
            state.life.set_certified(&model, certified);
            Ok(())
        }
        Input::DatasetHomes { dataset, homes } => {
            state.life.set_dataset_homes(&dataset, homes);
            Ok(())
        }
        Input::TenantPolicy { tenant, policy } => {
            state.set_tenant_policy(io, tenant, policy).await.map(drop)
        }
        Input::Tenant { tenant, category } => {
            state.tenant_added(tenant, category, at);
            Ok(())
        }
        Input::Money { records } => {
            let mut ok = Ok(());
            for r in &records {
                if let Err(e) = state.life.books_mut().apply(r) {
                    ok = Err(HubError::BadRequest(e.to_string()));
                    break;
                }
            }
            state.money_changed(&records, at);
            ok
        }
        Input::Tick => {
            state.tick(io, at).await;
            Ok(())
        }
        Input::Schedule => {
            state.schedule(io, at).await;
            Ok(())
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(%at, error = %e, "a logged input failed in the replay");
    }
}

/// A replay's [`Io`]: every write succeeds and goes nowhere.
struct NoStore;

impl Io for NoStore {
    async fn write(&mut self, _: &suanli_lifecycle::Change) -> HubResult<()> {
        Ok(())
    }
    async fn append_money(&mut self, _: &[Record]) -> HubResult<()> {
        Ok(())
    }
    async fn upsert_center(&mut self, _: &CenterSpec, _: Timestamp) -> HubResult<bool> {
        Ok(true)
    }
    async fn set_center_drained(&mut self, _: &CenterId, _: bool) -> HubResult<bool> {
        Ok(true)
    }
    async fn set_tenant_policy(&mut self, _: &TenantId, _: &SharePolicy) -> HubResult<bool> {
        Ok(true)
    }
    async fn stored_books(&mut self) -> Option<Books> {
        None
    }
}

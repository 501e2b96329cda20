//! What the engine can be asked: the commands the API sends to the engine's task, each with
//! the channel its answer goes back on, and how the engine answers each ([`Engine::handle`]):
//! a new command is a variant here and its arm below.

use std::collections::BTreeMap;

use suanli_money::{Books, Parties};
use tokio::sync::oneshot;

use super::*;

pub(super) type Reply<T> = oneshot::Sender<HubResult<T>>;

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
    /// Where a dataset resides now: jobs that read it are placed there.
    SetDatasetHomes {
        dataset: String,
        homes: Vec<suanli_types::CenterId>,
        reply: Reply<()>,
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

impl Engine {
    pub(super) async fn handle(&mut self, cmd: Cmd, at: Timestamp) {
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
                if self.state.life.set_certified(&model, certified.clone()) {
                    self.note(at, Input::Certified { model, certified });
                }
                let _ = reply.send(Ok(()));
            }
            Cmd::SetDatasetHomes {
                dataset,
                homes,
                reply,
            } => {
                if self.state.life.set_dataset_homes(&dataset, homes.clone()) {
                    self.note(at, Input::DatasetHomes { dataset, homes });
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
}

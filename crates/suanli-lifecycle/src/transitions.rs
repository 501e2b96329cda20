//! The transitions: each looks at the state and returns the [`Change`] to persist.

use suanli_core::{Candidate, PendingJob, Placement, Rejection};
use suanli_money::{BudgetExceeded, Month, QuoteRequest};
use suanli_types::record::{AttemptOutcome, AttemptRecord, JobEvent, JobRecord, NewJob, NodeShare};
use suanli_types::{CenterId, JobId, JobSpec, JobState, Money, PriorityClass, TenantId, Timestamp};

use crate::change::{BillNote, Change, Effect, JobWrite, metered};
use crate::validate::{AttemptFacts, Claim, InvalidReport, check_finish, check_start};
use crate::{AttemptKey, Lifecycle, Live};

/// Why a submit is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No registered center could ever hold the job; each center's reason.
    #[error("no center can run this job")]
    Unschedulable(Vec<Rejection>),
    /// The quote after vouchers would take the tenant over its monthly budget.
    #[error(transparent)]
    OverBudget(#[from] BudgetExceeded),
    /// A field that only the submit's time can check (`begin`).
    #[error(transparent)]
    Invalid(#[from] suanli_types::SpecError),
}

/// Why a job cannot be stopped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StopError {
    /// Not in the lifecycle: it has ended, or never existed (ask the store which).
    #[error("job {0} is not unfinished")]
    NotLive(JobId),
    /// Cancelled already; its attempt is being stopped.
    #[error("job {0} has already ended (cancelled)")]
    Cancelled(JobId),
}

/// How a site says an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Succeeded,
    Failed,
    TimedOut,
    /// Stopped by the site for its own reasons: the job is queued again.
    Killed,
}

impl Ended {
    fn outcome(self) -> AttemptOutcome {
        match self {
            Ended::Succeeded => AttemptOutcome::Succeeded,
            Ended::Failed => AttemptOutcome::Failed,
            Ended::TimedOut => AttemptOutcome::TimedOut,
            Ended::Killed => AttemptOutcome::Killed,
        }
    }
}

/// A site's report on an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Started {
        at: Timestamp,
    },
    Finished {
        outcome: Ended,
        exit_code: Option<i32>,
        started_at: Timestamp,
        ended_at: Timestamp,
        card_seconds: u64,
        log_chunks: u64,
        message: String,
        /// The request id of the site's report (the audit entry that carried it), kept on the
        /// bill line so that it can be traced back.
        request: Option<String>,
    },
}

impl Lifecycle {
    // ---------------------------------------------------------------- submit

    /// Checks a new job of `tenant` against the network (some center could ever hold it) and
    /// the tenant's budget (its quote after vouchers where the policy would put it now); returns
    /// the job to insert. The caller inserts it and hands the stored record to
    /// [`submitted`](Lifecycle::submitted).
    pub fn submit(
        &self,
        now: Timestamp,
        tenant: TenantId,
        (by, by_id): (String, Option<i64>),
        mut spec: JobSpec,
        key: Option<String>,
    ) -> Result<NewJob, SubmitError> {
        spec.tenant = Some(tenant.clone());
        // `now+5` means five seconds after this submit, whenever the spec is read again.
        let spec = spec.resolved(now)?;
        let held = spec.hold;
        self.core
            .feasibility(&spec)
            .map_err(SubmitError::Unschedulable)?;
        if self.books.budget(&tenant).is_some() {
            let job = PendingJob {
                id: JobId(0),
                tenant: tenant.clone(),
                seq: u64::MAX,
                submitted_at: now,
                spec: spec.clone(),
            };
            let quoted = self
                .core
                .quote(&job, now)
                .candidates
                .first()
                .and_then(|c| self.quote_money(&job, c, now))
                .map_or(Money::ZERO, |q| q.payable);
            // An array is as many jobs as it has tasks.
            let tasks = spec.array_spec().map_or(1, |a| a.tasks.len() as i64);
            let quoted = Money(quoted.0.saturating_mul(tasks));
            self.books.check_submit(&tenant, Month::of(now), quoted)?;
        }
        Ok(NewJob {
            tenant,
            submitted_by: by,
            submitted_by_id: by_id,
            spec,
            at: now,
            idempotency_key: key,
            held,
            array_task: None,
        })
    }

    /// Queues a job once its record is stored.
    pub fn submitted(&mut self, rec: JobRecord) {
        let live = Live::new(rec);
        self.queue_or_gate(&live);
        self.jobs.insert(live.rec.id, live);
        self.dirty = true;
    }

    /// The job's price after vouchers at a candidate pool, if the pool has a price.
    pub fn quote_money(
        &self,
        job: &PendingJob,
        c: &Candidate,
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

    // ---------------------------------------------------------------- cancel

    /// Cancels a job: `reason` is stored with it, `message` goes to its history. A queued job
    /// leaves at once; so does a placed one whose site has not reported its start: its cards are
    /// freed at once and the site is told to drop the attempt (should it have started it
    /// meanwhile, its reports are stale and it kills it). A running one keeps its cards until
    /// its site confirms the stop (or the lease runs out), and is metered until then.
    pub fn cancel(
        &self,
        id: JobId,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<Change, StopError> {
        let live = self.jobs.get(&id).ok_or(StopError::NotLive(id))?;
        if live.zombie {
            return Err(StopError::Cancelled(id));
        }
        let old = &live.rec;
        let mut rec = old.clone();
        rec.state = JobState::Cancelled;
        rec.ended_at = Some(now);
        rec.updated_at = now;
        rec.reason = Some(reason.to_string());
        let event = history(now, rec.attempt, rec.state, message.to_string());
        let queued = old.state == JobState::Queued;
        let wake = if queued { None } else { rec.center.clone() };
        if old.state == JobState::Placed
            && live.started.is_none()
            && let Some(center) = old.center.clone()
        {
            // Never started: nothing to meter, nothing to hold the cards for. No lease is kept,
            // so a restarted hub does not take the attempt back either.
            rec.lease_expires_at = None;
            let mut attempt = self.attempt_record(old);
            attempt.outcome = Some(AttemptOutcome::Killed);
            attempt.ended_at = Some(now);
            let effect = Effect::Withdrawn {
                center,
                attempt: old.attempt,
                until: self.lease_from(now),
            };
            let write = JobWrite::new(rec, old, Some(event), Some(attempt));
            let mut change = Change::new(id, Some(write), effect);
            change.wake = wake;
            return Ok(change);
        }
        let effect = if queued {
            Effect::Dropped
        } else {
            Effect::Zombie
        };
        let mut change = Change::new(id, Some(JobWrite::new(rec, old, Some(event), None)), effect);
        change.wake = wake;
        Ok(change)
    }

    /// Queued jobs of `tenant` and its placed and running jobs not yet cancelled, by id.
    pub fn unfinished_of(&self, tenant: &TenantId) -> Vec<JobId> {
        self.jobs
            .values()
            .filter(|l| &l.rec.tenant == tenant && !l.zombie && !l.rec.state.is_terminal())
            .map(|l| l.rec.id)
            .collect()
    }

    /// After the network shrank: queued jobs that no center could ever hold fail, with the
    /// reasons, instead of waiting forever.
    pub fn fail_impossible(&self, now: Timestamp) -> Vec<Change> {
        let mut out = Vec::new();
        for live in self.jobs.values() {
            if live.rec.state != JobState::Queued {
                continue;
            }
            let old = &live.rec;
            let Err(rejections) = self.core.feasibility(&old.spec) else {
                continue;
            };
            let why: Vec<String> = rejections
                .iter()
                .map(|r| format!("{}: {}", r.center, r.reason))
                .collect();
            let mut rec = old.clone();
            rec.state = JobState::Failed;
            rec.ended_at = Some(now);
            rec.updated_at = now;
            rec.reason = Some(format!(
                "no center can run this job any more ({})",
                why.join("; ")
            ));
            let event = history(
                now,
                rec.attempt,
                rec.state,
                "a center was re-registered and no center can hold this job any more".into(),
            );
            let mut change = Change::new(
                old.id,
                Some(JobWrite::new(rec, old, Some(event), None)),
                Effect::Dropped,
            );
            change.finished = Some(JobState::Failed);
            out.push(change);
        }
        out
    }

    // ---------------------------------------------------------------- the site

    /// A heartbeat of `center` at `at` listing the attempts it runs: renews their leases, and
    /// answers the attempts it must stop (not current there, cancelled, or evicted).
    pub fn heartbeat(
        &mut self,
        center: &CenterId,
        running: &[AttemptKey],
        at: Timestamp,
    ) -> Vec<AttemptKey> {
        // Evicted attempts the site no longer runs need no more stop orders.
        if let Some(m) = self.kills.get_mut(center) {
            m.retain(|r, _| running.contains(r));
        }
        let lease = self.lease_from(at);
        let mut kill = Vec::new();
        for &(job, attempt) in running {
            match self.jobs.get_mut(&job) {
                Some(l)
                    if !l.zombie
                        && l.rec.attempt == attempt
                        && l.rec.center.as_ref() == Some(center)
                        && l.rec.state.is_active() =>
                {
                    l.lease = Some(lease);
                    l.last_seen = Some(at);
                }
                Some(l)
                    if l.zombie
                        && l.rec.attempt == attempt
                        && l.rec.center.as_ref() == Some(center) =>
                {
                    // Still running after a cancel: metered until the site confirms the stop.
                    l.last_seen = Some(at);
                    kill.push((job, attempt));
                }
                _ => kill.push((job, attempt)),
            }
        }
        // Cancelled attempts at this center are stopped even if the site did not list them.
        for r in self.to_stop(center) {
            if !kill.contains(&r) {
                kill.push(r);
            }
        }
        kill
    }

    /// Forgets stop orders older than `at`.
    pub fn prune_stops(&mut self, at: Timestamp) {
        for m in self.kills.values_mut() {
            m.retain(|_, until| *until >= at);
        }
    }

    /// A site's report on the current attempt of `job` at `center`, received at `now`; `None`
    /// if it is not the current attempt there (a stale or retried report). A report that strays
    /// from the hub's own record of the attempt (see [`crate::validate`]) is refused and changes
    /// nothing; an accepted one is metered from the hub's record.
    pub fn report(
        &mut self,
        center: &CenterId,
        job: JobId,
        attempt: u32,
        report: Report,
        now: Timestamp,
    ) -> Result<Option<Change>, InvalidReport> {
        if !self.is_current(center, job, attempt) {
            return Ok(None);
        }
        let live = &self.jobs[&job];
        let zombie = live.zombie;
        let facts = AttemptFacts {
            placed_at: live.placed_at,
            started: live.started,
            walltime_secs: live.rec.spec.walltime,
            cards: live.rec.spec.total_cards(),
        };
        Ok(Some(match report {
            Report::Started { at } => {
                let started = check_start(&facts, at, now, &self.bounds)?;
                let old = &live.rec;
                // A cancelled attempt is being stopped (kill list); its Finished is still wanted.
                if zombie || old.state == JobState::Running {
                    return Ok(Some(Change::new(job, None, Effect::NoteStart(started))));
                }
                let mut rec = old.clone();
                rec.state = JobState::Running;
                rec.started_at = Some(started);
                rec.updated_at = now;
                let lease = self.lease_from(now);
                rec.lease_expires_at = Some(lease);
                let mut attempt = self.attempt_record(old);
                attempt.started_at = Some(started);
                let note = format!(
                    "started at {}",
                    old.center.as_ref().map_or("?", |c| c.as_str())
                );
                let event = history(now, rec.attempt, rec.state, note);
                Change::new(
                    job,
                    Some(JobWrite::new(rec, old, Some(event), Some(attempt))),
                    Effect::Running { lease, started },
                )
            }
            Report::Finished {
                outcome,
                exit_code,
                started_at,
                ended_at,
                card_seconds,
                log_chunks,
                message,
                request,
            } => {
                let claim = Claim {
                    started_at,
                    ended_at,
                    card_seconds,
                };
                let m = check_finish(&facts, &claim, now, &self.bounds)?;
                self.finish(
                    live.rec.clone(),
                    zombie,
                    outcome,
                    exit_code,
                    (m.started_at, m.ended_at),
                    m.card_seconds,
                    log_chunks,
                    (message, request),
                    now,
                )
            }
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        old: JobRecord,
        zombie: bool,
        outcome: Ended,
        exit_code: Option<i32>,
        (started_at, ended_at): (Timestamp, Timestamp),
        card_seconds: u64,
        log_chunks: u64,
        (message, request): (String, Option<String>),
        now: Timestamp,
    ) -> Change {
        let mut attempt = self.attempt_record(&old);
        attempt.started_at = Some(started_at);
        attempt.ended_at = Some(ended_at);
        attempt.outcome = Some(outcome.outcome());
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
        let (money, bill) =
            self.bill_attempt(&old, (started_at, ended_at), Some(card_seconds), request);
        let (expect_state, expect_attempt) = (old.state, old.attempt);
        let mut rec = old;
        rec.card_seconds = rec.card_seconds.saturating_add(card_seconds);
        rec.updated_at = now;
        rec.lease_expires_at = None;
        let (state, note) = if zombie {
            (JobState::Cancelled, "cancelled attempt stopped".to_string())
        } else {
            match outcome {
                Ended::Succeeded => (JobState::Succeeded, "exited 0".to_string()),
                Ended::Failed => (
                    JobState::Failed,
                    match exit_code {
                        Some(c) => format!("exited {c}"),
                        None => message.clone(),
                    },
                ),
                Ended::TimedOut => (
                    JobState::TimedOut,
                    format!("killed at the wall-time limit of {}s", rec.spec.walltime),
                ),
                Ended::Killed => (
                    JobState::Queued,
                    format!(
                        "attempt {} stopped by the site ({message}); requeued",
                        rec.attempt
                    ),
                ),
            }
        };
        rec.state = state;
        if state.is_terminal() {
            if !zombie {
                rec.ended_at = Some(ended_at);
                rec.exit_code = exit_code;
                let agent_says = outcome == Ended::Failed && !message.is_empty();
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
        let event = history(now, rec.attempt, rec.state, note);
        let terminal = rec.state.is_terminal().then_some(rec.state);
        let effect = if terminal.is_some() {
            Effect::Ended
        } else {
            Effect::Requeued
        };
        let write = JobWrite {
            rec,
            expect_state,
            expect_attempt,
            event: Some(event),
            attempt: Some(attempt),
        };
        let mut change = Change::new(write.rec.id, Some(write), effect);
        change.money = money;
        change.bill = bill;
        change.finished = terminal;
        change
    }

    // ---------------------------------------------------------------- leases

    /// Jobs whose lease ran out before `at`, by id.
    pub fn expired(&self, at: Timestamp) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter(|(_, l)| l.lease.is_some_and(|t| t < at))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The lease of `id` ran out at `at` without a report: the attempt is lost, metered from its
    /// start to the last heartbeat that listed it, and the job queued again (a cancelled job's
    /// cards are just freed).
    pub fn expire(&mut self, id: JobId, at: Timestamp) -> Change {
        let live = &self.jobs[&id];
        let old = live.rec.clone();
        let (zombie, started, last_seen) = (live.zombie, live.started, live.last_seen);
        let (money, bill) = match started {
            Some(s) => self.bill_attempt(&old, (s, last_seen.map_or(s, |t| t.max(s))), None, None),
            None => (Vec::new(), BillNote::Nothing),
        };
        let (write, effect) = if zombie {
            // The site never confirmed the stop: free the cards, and forget the lease for good.
            let mut rec = old.clone();
            rec.lease_expires_at = None;
            rec.updated_at = at;
            (JobWrite::new(rec, &old, None, None), Effect::Ended)
        } else {
            let mut attempt = self.attempt_record(&old);
            attempt.outcome = Some(AttemptOutcome::Lost);
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
            (
                JobWrite::new(rec, &old, Some(event), Some(attempt)),
                Effect::Requeued,
            )
        };
        let mut change = Change::new(id, Some(write), effect);
        change.money = money;
        change.bill = bill;
        change
    }

    // ---------------------------------------------------------------- placement

    /// Records a placement the core made (after the evictions it listed): the job is placed
    /// with the next attempt number and leased from `at`. `None` if the job is not queued here
    /// (unknown, or cancelled while the core evicted and placed it again in one pass): the
    /// caller abandons the placement.
    pub fn place(&self, p: &Placement, at: Timestamp) -> Option<Change> {
        let id = p.job;
        let live = self.jobs.get(&id)?;
        if live.zombie || live.rec.state != JobState::Queued {
            return None;
        }
        let old = &live.rec;
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
        rec.placement = (self.describe)(p, rec.attempt);
        let lease = self.lease_from(at);
        rec.lease_expires_at = Some(lease);
        rec.reason = None;
        rec.updated_at = at;
        let mut attempt = self.attempt_record(&rec);
        attempt.placed_at = at;
        attempt.started_at = None;
        let note = format!(
            "placed at {} on {} x {} (attempt {}): {}/card-hour, {} other fitting, {} rejected",
            p.alloc.center,
            p.alloc.nodes.len(),
            p.alloc.sku,
            rec.attempt,
            p.decision.chosen.price_per_card_hour,
            p.decision.others.len(),
            p.decision.rejected.len()
        );
        let event = history(at, rec.attempt, rec.state, note);
        Some(Change::new(
            id,
            Some(JobWrite::new(rec, old, Some(event), Some(attempt))),
            Effect::Placed { lease, at },
        ))
    }

    /// `victim`'s attempt was evicted by the core for job `by` at `center`: the job is queued
    /// again (the core has queued it already) and its site told to stop the attempt. A victim
    /// cancelled already only leaves the core's queue (its site has its stop order); `None` if
    /// the victim is not placed or running here.
    pub fn preempt(
        &mut self,
        victim: JobId,
        by: JobId,
        center: &CenterId,
        at: Timestamp,
    ) -> Option<Change> {
        let live = self.jobs.get(&victim)?;
        if live.zombie {
            return Some(Change::new(victim, None, Effect::Unqueued));
        }
        if !live.rec.state.is_active() {
            return None;
        }
        let note = format!(
            "attempt {} preempted at {center} for job {by}; requeued",
            live.rec.attempt
        );
        Some(self.evict(victim, AttemptOutcome::Preempted, note, at, false))
    }

    /// What draining `center` hands back: attempts not yet running, and running ones too with
    /// `requeue` (by id); and how many running attempts stay.
    pub fn drain_targets(&self, center: &CenterId, requeue: bool) -> (Vec<JobId>, usize) {
        let mut back = Vec::new();
        let mut running = 0;
        for l in self.jobs.values().filter(|l| l.is_active_at(center)) {
            if l.rec.state == JobState::Running && !requeue {
                running += 1;
            } else {
                back.push(l.rec.id);
            }
        }
        (back, running)
    }

    /// Queues `id` again because its center was drained, and tells the site to stop it.
    pub fn hand_back(&mut self, id: JobId, center: &CenterId, at: Timestamp) -> Change {
        let note = format!(
            "attempt {} handed back: center {center} was drained; requeued",
            self.jobs[&id].rec.attempt
        );
        self.evict(id, AttemptOutcome::Drained, note, at, true)
    }

    /// Ends `id`'s current attempt at `at` for the hub's own reasons: meters and bills what ran,
    /// records the attempt with `outcome`, queues the job again with `note`, and tells the site
    /// to stop the attempt.
    fn evict(
        &mut self,
        id: JobId,
        outcome: AttemptOutcome,
        note: String,
        at: Timestamp,
        core: bool,
    ) -> Change {
        let live = &self.jobs[&id];
        let old = live.rec.clone();
        let started = live.started;
        let (money, bill) = match started {
            Some(s) => self.bill_attempt(&old, (s, at.max(s)), None, None),
            None => (Vec::new(), BillNote::Nothing),
        };
        let mut attempt = self.attempt_record(&old);
        attempt.outcome = Some(outcome);
        attempt.started_at = started;
        attempt.ended_at = Some(at);
        attempt.card_seconds = metered(&money);
        let (rec, event) = requeued(&old, at, note, attempt.card_seconds);
        let effect = Effect::Evicted {
            center: old.center.clone().map(|c| (c, old.attempt)),
            until: self.lease_from(at),
            core,
        };
        let mut change = Change::new(
            id,
            Some(JobWrite::new(rec, &old, Some(event), Some(attempt))),
            effect,
        );
        change.wake = old.center.clone();
        change.money = money;
        change.bill = bill;
        change
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
}

/// The history line of a change to `rec`.
pub(crate) fn history(at: Timestamp, attempt: u32, state: JobState, message: String) -> JobEvent {
    JobEvent {
        at,
        attempt,
        state,
        message,
    }
}

/// The job queued again after its attempt was lost or evicted (metered `card_seconds`), with
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
    // The history line names the attempt that ended.
    let event = history(at, old.attempt, JobState::Queued, note);
    (rec, event)
}

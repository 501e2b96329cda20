//! Jobs that may not start yet: held, before their begin time, waiting for other jobs
//! (`--dependency`), or over their array's `%N`. Such a job is queued in its record but kept
//! out of the core's queue until [`Lifecycle::review`] lets it in; a dependency that can never
//! be met cancels it (or, with `--kill-on-invalid-dep=no`, keeps it pending, saying so).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use suanli_types::spec::sched::{DepKind, DepTerm, Verdict};
use suanli_types::{JobId, JobState, TenantId, Timestamp};

use crate::change::{Change, Effect, JobWrite};
use crate::transitions::history;
use crate::{Lifecycle, Live, pending};

/// Why a pending job may not start yet (its pending reason), or why it never will.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Held by its submitter.
    Held,
    /// Its begin time has not come.
    Begin(Timestamp),
    /// A dependency is not met yet: the first term waited for, and the parent's state if known.
    Dependency {
        term: DepTerm,
        parent: Option<JobState>,
    },
    /// `singleton`: another job of the same name and tenant is unfinished.
    Singleton { blocker: JobId },
    /// Its array has `limit` tasks placed or running (or queued for placement) already.
    ArrayLimit { array: JobId, limit: u32 },
    /// The dependency can never be met: the terms that failed and how their parents ended.
    Never(Vec<(DepTerm, JobState)>),
    /// As [`Gate::Never`], of a job submitted with `--kill-on-invalid-dep=no`: it stays pending
    /// until it is cancelled.
    NeverKept(Vec<(DepTerm, JobState)>),
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gate::Held => f.write_str("held: waits until released (suanli release)"),
            Gate::Begin(at) => write!(f, "begin time: held until {at}"),
            Gate::Dependency { term, parent } => {
                let job = term.job.map_or_else(String::new, |j| j.to_string());
                write!(f, "dependency: waits for job {job} ({term}")?;
                match parent {
                    Some(s) => write!(f, "; job {job} is {s})"),
                    None => f.write_str(")"),
                }
            }
            Gate::Singleton { blocker } => write!(
                f,
                "dependency: singleton, waits for job {blocker} of the same name to end"
            ),
            Gate::ArrayLimit { array, limit } => write!(
                f,
                "array limit: at most {limit} tasks of array {array} run at once"
            ),
            Gate::Never(failed) => {
                write!(f, "dependency never satisfied: {}", failed_terms(failed))
            }
            Gate::NeverKept(failed) => write!(
                f,
                "dependency never satisfied: {}; kept pending (--kill-on-invalid-dep=no) until cancelled",
                failed_terms(failed)
            ),
        }
    }
}

fn failed_terms(failed: &[(DepTerm, JobState)]) -> String {
    let parts: Vec<String> = failed
        .iter()
        .map(|(t, s)| {
            let job = t.job.map_or_else(String::new, |j| j.to_string());
            format!("{} on job {job}, which {}", t.kind.as_str(), ended_as(*s))
        })
        .collect();
    parts.join("; ")
}

fn ended_as(s: JobState) -> &'static str {
    match s {
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "was cancelled",
        JobState::TimedOut => "timed out",
        _ => "has not ended",
    }
}

/// Why a job cannot be held or released.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// Not in the lifecycle: it has ended, or never existed (ask the store which).
    #[error("job {0} is not unfinished")]
    NotLive(JobId),
    #[error("job {id} is {state}: only a pending (queued) job can be held or released")]
    NotPending { id: JobId, state: JobState },
    #[error("job {0} is held already")]
    AlreadyHeld(JobId),
    #[error("job {0} is not held")]
    NotHeld(JobId),
}

/// How many tasks `%N` lets run at once, read from an `--array` value without listing its
/// tasks.
fn array_limit(array: Option<&str>) -> Option<u32> {
    array?.rsplit_once('%')?.1.trim().parse().ok()
}

impl Live {
    /// Whether the job must pass [`Lifecycle::review`] before it is queued in the core.
    pub(crate) fn is_gated_kind(&self) -> bool {
        let s = &self.rec.spec;
        self.rec.held
            || s.begin.is_some()
            || s.dependency.is_some()
            || (self.rec.array.is_some() && array_limit(s.array.as_deref()).is_some())
    }
}

/// How many more than [`crate::ENDED_KEPT`] finals are kept before the oldest go at once.
const FINALS_BATCH: usize = 1024;

impl Lifecycle {
    /// Puts a queued job in the core's queue, or among the gated jobs if it must wait.
    pub(crate) fn queue_or_gate(&mut self, live: &Live) {
        if live.is_gated_kind() {
            self.gated.insert(live.rec.id);
        } else {
            self.core.enqueue(pending(&live.rec));
        }
    }

    /// Remembers how a job ended, for the dependencies on it (the hub tells the lifecycle about
    /// parents that ended before it started, or before it read their dependents).
    pub fn note_final(&mut self, id: JobId, state: JobState) {
        if !state.is_terminal() {
            return;
        }
        self.finals.insert(id, state);
        // The oldest go, a batch at a time, but never one a waiting job depends on: without it
        // that job would wait for good.
        if self.finals.len() > crate::ENDED_KEPT + FINALS_BATCH {
            let wanted: std::collections::BTreeSet<JobId> = self
                .gated
                .iter()
                .filter_map(|g| self.jobs.get(g)?.rec.spec.dependencies())
                .flat_map(|d| d.parents())
                .collect();
            let mut excess = self.finals.len() - crate::ENDED_KEPT;
            self.finals.retain(|id, _| {
                let drop = excess > 0 && !wanted.contains(id);
                excess -= usize::from(drop);
                !drop
            });
        }
    }

    /// The state of a job as dependencies see it: unfinished in memory (a cancelled job still
    /// holding cards is cancelled), or how it ended.
    pub fn state_of(&self, id: JobId) -> Option<JobState> {
        self.jobs
            .get(&id)
            .map(|l| l.rec.state)
            .or_else(|| self.finals.get(&id).copied())
    }

    /// Why a pending job may not start yet at `now`, if something holds it back.
    pub fn waiting(&self, id: JobId, now: Timestamp) -> Option<Gate> {
        if !self.gated.contains(&id) {
            return None;
        }
        let live = &self.jobs[&id];
        let seen = self.looked_up(std::slice::from_ref(&live));
        self.gate(live, now, &seen)
    }

    /// What holds back each gated one of `ids` at `now` (the others are left out): for a page
    /// of a listing, the arrays' running counts taken once.
    pub fn waiting_many(&self, ids: &[JobId], now: Timestamp) -> Vec<(JobId, Gate)> {
        let gated: Vec<JobId> = ids
            .iter()
            .copied()
            .filter(|id| self.gated.contains(id))
            .collect();
        if gated.is_empty() {
            return Vec::new();
        }
        let lives: Vec<&Live> = gated.iter().filter_map(|id| self.jobs.get(id)).collect();
        let seen = self.looked_up(&lives);
        lives
            .into_iter()
            .filter_map(|l| Some((l.rec.id, self.gate(l, now, &seen)?)))
            .collect()
    }

    /// Gated jobs by id.
    pub fn gated(&self) -> impl Iterator<Item = JobId> + '_ {
        self.gated.iter().copied()
    }

    /// Lets into the core's queue every gated job that may start at `now` (in id order, so an
    /// array's tasks go in task order, at most `%N` of them), and answers a cancel for every
    /// job whose dependency can never be met, to persist and apply.
    pub fn review(&mut self, now: Timestamp) -> Vec<Change> {
        if self.gated.is_empty() {
            return Vec::new();
        }
        let ids: Vec<JobId> = self.gated.iter().copied().collect();
        let mut seen = {
            let lives: Vec<&Live> = ids.iter().filter_map(|id| self.jobs.get(id)).collect();
            self.looked_up(&lives)
        };
        let mut doomed = Vec::new();
        for id in ids {
            let live = &self.jobs[&id];
            match self.gate(live, now, &seen) {
                Some(Gate::Never(failed)) => doomed.push((id, Gate::Never(failed))),
                Some(_) => {}
                None => {
                    if let Some(a) = live.rec.array {
                        *seen.running.entry(a.job).or_default() += 1;
                    }
                    let job = pending(&live.rec);
                    self.gated.remove(&id);
                    self.core.enqueue(job);
                    self.dirty = true;
                }
            }
        }
        doomed
            .into_iter()
            .filter_map(|(id, why)| {
                let why = why.to_string();
                let mut c = self.cancel(id, &why, &why, now).ok()?;
                c.finished = Some(JobState::Cancelled);
                Some(c)
            })
            .collect()
    }

    /// What deciding the gates of `lives` needs to know of all the jobs, found in one scan: the
    /// arrays' running tasks (when one of them is an array task) and, when one of them has a
    /// `singleton` term, the unfinished jobs by tenant and name.
    fn looked_up(&self, lives: &[&Live]) -> Looked {
        let arrays = lives.iter().any(|l| l.rec.array.is_some());
        let singles = lives.iter().any(|l| {
            l.rec
                .spec
                .dependencies()
                .is_some_and(|d| d.terms.iter().any(|t| t.kind == DepKind::Singleton))
        });
        let mut seen = Looked::default();
        if arrays {
            seen.running = self.array_running();
        }
        if singles {
            let mut names: HashMap<(TenantId, String), Names> = HashMap::new();
            for k in self.jobs.values() {
                if k.zombie || k.rec.state.is_terminal() {
                    continue;
                }
                let e = names
                    .entry((k.rec.tenant.clone(), k.rec.spec.name.clone()))
                    .or_insert(Names {
                        first: k.rec.id,
                        active: None,
                    });
                e.first = e.first.min(k.rec.id);
                if k.rec.state.is_active() && e.active.is_none() {
                    e.active = Some(k.rec.id);
                }
            }
            seen.names = Some(names);
        }
        seen
    }

    /// Tasks of each array that are not gated: queued in the core, placed, running, or
    /// cancelled and still holding cards.
    fn array_running(&self) -> BTreeMap<JobId, u32> {
        let mut out = BTreeMap::new();
        for l in self.jobs.values() {
            if let Some(a) = l.rec.array
                && !self.gated.contains(&l.rec.id)
            {
                *out.entry(a.job).or_default() += 1;
            }
        }
        out
    }

    fn gate(&self, live: &Live, now: Timestamp, seen: &Looked) -> Option<Gate> {
        let rec = &live.rec;
        let never = |failed| match rec.spec.kill_on_invalid_dep {
            true => Gate::Never(failed),
            false => Gate::NeverKept(failed),
        };
        let deps = rec.spec.dependencies();
        let mut dep_gate = None;
        if let Some(dep) = &deps {
            let mut failed = Vec::new();
            let mut waiting = None;
            let mut met = false;
            for &term in &dep.terms {
                let (verdict, gate) = match (term.kind, term.job) {
                    (DepKind::Singleton, _) => match singleton_blocker(live, seen) {
                        Some(blocker) => (Verdict::Waiting, Some(Gate::Singleton { blocker })),
                        None => (Verdict::Met, None),
                    },
                    (kind, Some(p)) => {
                        let state = self.state_of(p);
                        let verdict = state.map_or(Verdict::Waiting, |s| kind.verdict(s));
                        if let (Verdict::Never, Some(s)) = (verdict, state) {
                            failed.push((term, s));
                        }
                        (
                            verdict,
                            Some(Gate::Dependency {
                                term,
                                parent: state,
                            }),
                        )
                    }
                    (_, None) => (Verdict::Met, None),
                };
                match verdict {
                    Verdict::Met => met = true,
                    Verdict::Waiting => {
                        if waiting.is_none() {
                            waiting = gate;
                        }
                    }
                    Verdict::Never => {}
                }
            }
            if dep.any {
                if !met {
                    if waiting.is_none() {
                        return Some(never(failed));
                    }
                    dep_gate = waiting;
                }
            } else if !failed.is_empty() {
                return Some(never(failed));
            } else {
                dep_gate = waiting;
            }
        }
        if rec.held {
            return Some(Gate::Held);
        }
        if let Some(g) = dep_gate {
            return Some(g);
        }
        if let Some(at) = rec.spec.begin_at()
            && at > now
        {
            return Some(Gate::Begin(at));
        }
        if let Some(a) = rec.array
            && let Some(limit) = array_limit(rec.spec.array.as_deref())
            && seen.running.get(&a.job).copied().unwrap_or(0) >= limit
        {
            return Some(Gate::ArrayLimit {
                array: a.job,
                limit,
            });
        }
        None
    }

    // ---------------------------------------------------------------- hold and release

    /// Holds a pending job: it leaves the core's queue until released. `by` goes to its history.
    pub fn hold(&self, id: JobId, by: &str, now: Timestamp) -> Result<Change, HoldError> {
        let old = self.pending_rec(id)?;
        if old.held {
            return Err(HoldError::AlreadyHeld(id));
        }
        let mut rec = old.clone();
        rec.held = true;
        rec.updated_at = now;
        let event = history(now, rec.attempt, rec.state, format!("held by {by}"));
        let write = JobWrite::new(rec, old, Some(event), None);
        Ok(Change::new(id, Some(write), Effect::Held))
    }

    /// Releases a held job: it may start once nothing else holds it back.
    pub fn release(&self, id: JobId, by: &str, now: Timestamp) -> Result<Change, HoldError> {
        let old = self.pending_rec(id)?;
        if !old.held {
            return Err(HoldError::NotHeld(id));
        }
        let mut rec = old.clone();
        rec.held = false;
        rec.updated_at = now;
        let event = history(now, rec.attempt, rec.state, format!("released by {by}"));
        let write = JobWrite::new(rec, old, Some(event), None);
        Ok(Change::new(id, Some(write), Effect::Released))
    }

    fn pending_rec(&self, id: JobId) -> Result<&suanli_types::record::JobRecord, HoldError> {
        let live = self.jobs.get(&id).ok_or(HoldError::NotLive(id))?;
        if live.zombie || live.rec.state != JobState::Queued {
            return Err(HoldError::NotPending {
                id,
                state: live.rec.state,
            });
        }
        Ok(&live.rec)
    }
}

/// What a review looked up once for all the gated jobs it decides (see
/// [`Lifecycle::looked_up`]).
#[derive(Default)]
struct Looked {
    running: BTreeMap<JobId, u32>,
    /// By tenant and name, the unfinished jobs: `None` when no gated job asked.
    names: Option<HashMap<(TenantId, String), Names>>,
}

/// The unfinished jobs of one tenant and name.
struct Names {
    /// The lowest id.
    first: JobId,
    /// One that is placed or running.
    active: Option<JobId>,
}

/// For `singleton`: another unfinished job of the same tenant and name that was submitted
/// earlier, or that is placed or running.
fn singleton_blocker(live: &Live, seen: &Looked) -> Option<JobId> {
    let rec = &live.rec;
    let n = seen
        .names
        .as_ref()?
        .get(&(rec.tenant.clone(), rec.spec.name.clone()))?;
    match n.active {
        Some(a) if a != rec.id => Some(a),
        _ => (n.first < rec.id).then_some(n.first),
    }
}

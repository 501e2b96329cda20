//! What a transition asks to persist, and what applying it does.

use suanli_money::{LineId, Record};
use suanli_types::record::{AttemptRecord, JobEvent, JobRecord};
use suanli_types::{CenterId, JobId, JobState, Money, Timestamp};

/// One transition of one job: what to write (one store transaction) and, once it is written,
/// what [`Lifecycle::apply`](crate::Lifecycle::apply) changes in memory.
#[derive(Clone, Debug, PartialEq)]
#[must_use = "a change does nothing until it is written and applied"]
pub struct Change {
    pub job: JobId,
    /// The job row to write, if the transition changes it.
    pub write: Option<JobWrite>,
    /// The money records of the attempt that ended (its bill line), written in the same
    /// transaction as the job row. The books hold them already; see [`Lifecycle::reload_books`](crate::Lifecycle::reload_books).
    pub money: Vec<Record>,
    /// How the ended attempt was billed, for the log.
    pub bill: BillNote,
    /// The job ended with this state and leaves the lifecycle (for metrics).
    pub finished: Option<JobState>,
    /// The site of this center has something new to hear (a stop order).
    pub wake: Option<CenterId>,
    pub(crate) effect: Effect,
}

impl Change {
    pub(crate) fn new(job: JobId, write: Option<JobWrite>, effect: Effect) -> Change {
        Change {
            job,
            write,
            money: Vec::new(),
            bill: BillNote::Nothing,
            finished: None,
            wake: None,
            effect,
        }
    }

    /// The job as it is once the change is applied, if the change writes it.
    pub fn record(&self) -> Option<&JobRecord> {
        self.write.as_ref().map(|w| &w.rec)
    }

    /// Card-seconds of the bill line among the money records (0 without one).
    pub fn metered(&self) -> u64 {
        metered(&self.money)
    }
}

/// A compare-and-set write of a job row: written only if the stored row is still in
/// `expect_state` and `expect_attempt`; `event` is appended and `attempt` upserted with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobWrite {
    pub rec: JobRecord,
    pub expect_state: JobState,
    pub expect_attempt: u32,
    pub event: Option<JobEvent>,
    pub attempt: Option<AttemptRecord>,
}

impl JobWrite {
    pub(crate) fn new(
        rec: JobRecord,
        old: &JobRecord,
        event: Option<JobEvent>,
        attempt: Option<AttemptRecord>,
    ) -> JobWrite {
        JobWrite {
            rec,
            expect_state: old.state,
            expect_attempt: old.attempt,
            event,
            attempt,
        }
    }
}

/// What billing an ended attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillNote {
    /// Nothing to bill (no usage).
    Nothing,
    Billed {
        line: LineId,
        gross: Money,
        subsidy: Money,
        payable: Money,
    },
    /// A retried report: the attempt's line exists already.
    BilledBefore { line: LineId },
    /// The attempt was reported to end before it started; nothing billed.
    Backwards {
        started_at: Timestamp,
        ended_at: Timestamp,
    },
    /// Could not be billed (no center, no price...); the job goes on.
    NotBilled(String),
}

/// What applying a change does to the lifecycle's memory and the core.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Effect {
    /// Leaves the queue and the lifecycle (cancelled or failed while queued).
    Dropped,
    /// Cancelled while running (or placed and reported started): stays, holding its cards,
    /// until the site confirms.
    Zombie,
    /// Cancelled while placed, before its start: cards freed, job gone, and the site told to
    /// drop attempt `attempt` until `until`.
    Withdrawn {
        center: CenterId,
        attempt: u32,
        until: Timestamp,
    },
    /// Placed: leased until `lease`.
    Placed { lease: Timestamp, at: Timestamp },
    /// The site reported the start.
    Running {
        lease: Timestamp,
        started: Timestamp,
    },
    /// A cancelled job the core evicted (and queued again): it leaves the queue; its cards went
    /// to the job that evicted it.
    Unqueued,
    /// A start reported again, or for a cancelled attempt: remembered for metering only.
    NoteStart(Timestamp),
    /// The attempt ended and the job with it: cards freed, job gone.
    Ended,
    /// A pending job was held: out of the core's queue, gated until released.
    Held,
    /// A held job was released: it stays gated until [`Lifecycle::review`](crate::Lifecycle::review) lets it in.
    Released,
    /// The attempt ended and the job is queued again: cards freed, job queued.
    Requeued,
    /// The hub evicted the attempt: the job is queued again and the site told to stop it until
    /// `until`. `core` is whether the core still has to free and queue it (drain); a preemption
    /// was queued by the core itself.
    Evicted {
        center: Option<(CenterId, u32)>,
        until: Timestamp,
        core: bool,
    },
}

/// Card-seconds of the bill line among `records` (0 without one).
pub fn metered(records: &[Record]) -> u64 {
    records
        .iter()
        .find_map(|r| match r {
            Record::Line(l) => Some(l.usage.card_seconds),
            _ => None,
        })
        .unwrap_or(0)
}

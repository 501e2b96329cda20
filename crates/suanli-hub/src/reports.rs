//! What the engine does with a site's event batch besides the lifecycle's checks, pure: the cap
//! on log bytes per attempt ([`LogCap`]), and refusals: their names for metrics and the record
//! kept of each ([`refusal`]).

use std::collections::HashMap;

use suanli_lifecycle::InvalidReport;
use suanli_proto::AgentEvent;
use suanli_types::{CenterId, JobId};

use crate::error::HubError;
use crate::replay::Input;

/// Log bytes the hub stores per attempt by default (64 MiB); past it, one marker line.
pub const LOG_BYTES_PER_ATTEMPT: u64 = 64 << 20;

/// Attempts remembered before the ones no longer running are forgotten.
const ATTEMPTS_BEFORE_PRUNING: usize = 10_000;

/// Counts log bytes per attempt and cuts an attempt's log at a limit: the chunk that crosses it
/// is stored as a marker line, later chunks as empty ones (so that chunk numbers stay gap-free
/// and the log is still seen complete). Counts start again when the hub restarts.
#[derive(Debug)]
pub struct LogCap {
    limit: u64,
    used: HashMap<(JobId, u32), u64>,
}

/// What to store for one log chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// The chunk as sent.
    Whole(String),
    /// The chunk crossed the cap: this marker line instead (the first time), then nothing.
    Marker(String),
    /// Past the cap: an empty chunk.
    Dropped,
}

impl LogCap {
    pub fn new(limit: u64) -> LogCap {
        LogCap {
            limit,
            used: HashMap::new(),
        }
    }

    /// What to store of `data`, a chunk of `(job, attempt)`'s log.
    pub fn admit(&mut self, job: JobId, attempt: u32, data: String) -> Admit {
        let used = self.used.entry((job, attempt)).or_default();
        if *used > self.limit {
            return Admit::Dropped;
        }
        let after = used.saturating_add(data.len() as u64);
        if after <= self.limit {
            *used = after;
            return Admit::Whole(data);
        }
        *used = u64::MAX;
        Admit::Marker(format!(
            "[suanli: this attempt's log reached the hub's limit of {} bytes; the rest is not \
             stored]\n",
            self.limit
        ))
    }

    /// Forgets attempts for which `live` is false, once many are remembered.
    pub fn prune(&mut self, live: impl Fn(JobId, u32) -> bool) {
        if self.used.len() >= ATTEMPTS_BEFORE_PRUNING {
            self.used.retain(|(j, a), _| live(*j, *a));
        }
    }
}

/// A refusal's short name, for the metric's label.
pub fn reason(e: &InvalidReport) -> &'static str {
    match e {
        InvalidReport::OutOfWindow { .. } => "out_of_window",
        InvalidReport::EndsBeforeStart { .. } => "ends_before_start",
        InvalidReport::TooLong { .. } => "too_long",
        InvalidReport::TooManyCardSeconds { .. } => "too_many_card_seconds",
    }
}

/// The label of a report on an attempt placed at another center.
pub const OTHER_CENTER: &str = "other_center";

/// A refused report, event `index` of its batch: logged here; the input to keep for the
/// supervisor and the error for the site.
pub fn refusal(
    center: &CenterId,
    ev: AgentEvent,
    index: usize,
    reason: &'static str,
    message: String,
) -> (Input, HubError) {
    tracing::warn!(%center, job = %ev.job, attempt = ev.attempt, reason, %message, "site report refused");
    let err = HubError::InvalidReport {
        reason,
        message: format!("events[{index}]: {message}"),
    };
    let input = Input::Refused {
        center: center.clone(),
        job: ev.job,
        attempt: ev.attempt,
        event: ev.kind,
        reason: reason.to_string(),
        message,
    };
    (input, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_is_cut_at_the_cap_with_one_marker() {
        let mut cap = LogCap::new(10);
        let (j, k) = (JobId(1), JobId(2));
        assert_eq!(
            cap.admit(j, 1, "12345".into()),
            Admit::Whole("12345".into())
        );
        assert_eq!(
            cap.admit(j, 1, "12345".into()),
            Admit::Whole("12345".into())
        );
        assert!(matches!(cap.admit(j, 1, "x".into()), Admit::Marker(m) if m.contains("10 bytes")));
        assert_eq!(cap.admit(j, 1, "x".into()), Admit::Dropped);
        // Another attempt, another job: their own counts.
        assert_eq!(cap.admit(j, 2, "123".into()), Admit::Whole("123".into()));
        assert_eq!(cap.admit(k, 1, "123".into()), Admit::Whole("123".into()));
        cap.prune(|_, _| false);
        assert_eq!(cap.used.len(), 3, "pruned only when many");
    }
}

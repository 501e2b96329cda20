//! A site's event batches: each report through the lifecycle's checks, log chunks within the
//! attempt's cap, refusals recorded for the supervisor.

use suanli_lifecycle::Standing;
use suanli_proto::{AgentEvent, EventKind, EventStatus};
use suanli_store::LogRow;
use suanli_types::{CenterId, JobId, Timestamp};

use super::Engine;
use crate::error::{HubError, HubResult};
use crate::replay::Input;
use crate::reports;
use crate::views;

impl Engine {
    /// A site's batch of events, in order. Where each event's attempt stands is decided in
    /// memory (no store read per event). A report the hub refuses ends the batch with
    /// `invalid_report` (the events before it are applied) and is recorded in the input log.
    pub(super) async fn events(
        &mut self,
        center: &CenterId,
        events: Vec<AgentEvent>,
        request: Option<String>,
        at: Timestamp,
    ) -> HubResult<Vec<EventStatus>> {
        let mut results = Vec::with_capacity(events.len());
        let mut logs: Vec<(JobId, u32, LogRow)> = Vec::new();
        let mut stale = 0usize;
        for (i, ev) in events.into_iter().enumerate() {
            let status = match self.state.life.standing(center, ev.job, ev.attempt) {
                Standing::Current => match views::report(&ev.kind, request.as_deref()) {
                    None => {
                        self.keep_log(&mut logs, ev);
                        EventStatus::Accepted
                    }
                    Some(report) => {
                        // Logs before this event are durable before its state change.
                        self.flush_logs(&mut logs).await?;
                        let r = (self.state)
                            .report(&mut self.io, center, ev.job, ev.attempt, report, at)
                            .await;
                        if let Err(HubError::InvalidReport { reason, message }) = r {
                            return Err(self.refuse(center, ev, i, reason, message, at));
                        }
                        r?;
                        self.note(
                            at,
                            Input::Report {
                                center: center.clone(),
                                job: ev.job,
                                attempt: ev.attempt,
                                event: ev.kind,
                            },
                        );
                        EventStatus::Accepted
                    }
                },
                // Retries of reports for an attempt that has already ended here are harmless.
                Standing::EndedHere => match ev.kind {
                    EventKind::Log { .. } => {
                        self.keep_log(&mut logs, ev);
                        EventStatus::Accepted
                    }
                    EventKind::Finished { .. } => EventStatus::Accepted,
                    EventKind::Started { .. } => EventStatus::Stale,
                },
                Standing::Elsewhere => {
                    self.flush_logs(&mut logs).await?;
                    let message = format!(
                        "job {} attempt {} is not placed at center {center}",
                        ev.job, ev.attempt
                    );
                    return Err(self.refuse(center, ev, i, reports::OTHER_CENTER, message, at));
                }
                Standing::Stale => {
                    stale += 1;
                    EventStatus::Stale
                }
            };
            results.push(status);
        }
        self.flush_logs(&mut logs).await?;
        if stale > 0 {
            tracing::info!(%center, stale, "stale reports rejected");
        }
        Ok(results)
    }

    /// Queues a log chunk for the store, within the attempt's byte cap.
    fn keep_log(&mut self, logs: &mut Vec<(JobId, u32, LogRow)>, ev: AgentEvent) {
        let EventKind::Log { seq, stream, data } = ev.kind else {
            return;
        };
        let data = match self.log_cap.admit(ev.job, ev.attempt, data) {
            reports::Admit::Whole(d) => d,
            reports::Admit::Marker(m) => {
                tracing::warn!(job = %ev.job, attempt = ev.attempt, "log reached the per-attempt cap; the rest is not stored");
                self.io.metrics.log_truncated();
                m
            }
            reports::Admit::Dropped => String::new(),
        };
        logs.push((ev.job, ev.attempt, views::log_row(seq, stream, data)));
    }

    /// Records a refused report (log line, metric, input log) and the error for the site.
    fn refuse(
        &mut self,
        center: &CenterId,
        ev: AgentEvent,
        index: usize,
        reason: &'static str,
        message: String,
        at: Timestamp,
    ) -> HubError {
        self.io.metrics.report_refused(reason);
        let (input, err) = reports::refusal(center, ev, index, reason, message);
        self.note(at, input);
        err
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
            self.io.store.append_logs(job, attempt, &rows).await?;
            start = end;
        }
        logs.clear();
        Ok(())
    }
}

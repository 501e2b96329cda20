//! Risk flags' shell: gathers what the rules read (refused requests from the audit log, the
//! books' price rows, bill lines and programmes, the attempts that ended), evaluates the pure
//! rules of [`suanli_audit::risk`] and records the flags in the store, every
//! [`RiskSettings::every`] and before each read of `GET /v1/risk`. The conversions from records
//! to rule events are plain functions here, unit-tested below.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use suanli_audit::risk::{self, AttemptEnd, Event, RiskConfig};
use suanli_money::Books;
use suanli_store::{AuditFilter, EndedAttempt, Store};
use suanli_types::record::AttemptOutcome;
use suanli_types::{PriorityClass, Timestamp};

use crate::engine::EngineHandle;
use crate::error::{HubError, HubResult};
use crate::metrics::Metrics;

/// The rules' thresholds and how often they are evaluated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskSettings {
    pub rules: RiskConfig,
    pub every: Duration,
}

impl Default for RiskSettings {
    fn default() -> Self {
        RiskSettings {
            rules: RiskConfig::default(),
            every: Duration::from_secs(60),
        }
    }
}

/// Refused requests read per evaluation, at most (a flood beyond it has raised its flag).
const MAX_DENIED: u32 = 50_000;
/// Ended attempts read per evaluation, at most.
const MAX_ATTEMPTS: u32 = 100_000;
const DAY_MS: i64 = 86_400_000;

/// The handle the API and the periodic task evaluate through.
#[derive(Clone)]
pub struct Risk {
    store: Arc<dyn Store>,
    engine: EngineHandle,
    metrics: Arc<Metrics>,
    /// Flushed before the refused requests are read.
    audit: crate::audit::Auditor,
    settings: Arc<RiskSettings>,
    /// One evaluation at a time.
    running: Arc<tokio::sync::Mutex<()>>,
}

impl Risk {
    pub fn new(
        store: Arc<dyn Store>,
        engine: EngineHandle,
        metrics: Arc<Metrics>,
        audit: crate::audit::Auditor,
        settings: RiskSettings,
    ) -> Risk {
        Risk {
            store,
            engine,
            metrics,
            audit,
            settings: Arc::new(settings),
            running: Arc::default(),
        }
    }

    /// Evaluates every `every` until `stop` says so.
    pub fn spawn(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let risk = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(risk.settings.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        match risk.evaluate().await {
                            Ok(_) | Err(HubError::NotLeader) => {}
                            Err(e) => tracing::warn!(error = %e, "risk evaluation failed"),
                        }
                    }
                    changed = stop.changed() => {
                        if changed.is_err() || *stop.borrow() {
                            break;
                        }
                    }
                }
            }
        });
    }

    /// Evaluates the rules now and records the flags; the ids of the new ones. A hub that
    /// does not run the engine (a follower) answers [`HubError::NotLeader`].
    pub async fn evaluate(&self) -> HubResult<Vec<String>> {
        let _one = self.running.lock().await;
        let cfg = &self.settings.rules;
        let window = cfg.window_ms;
        let trailing = cfg.spend_trailing_days as i64 + 2;
        let mut events = self
            .engine
            .read_books(move |books, _, now| books_events(books, now.0 - trailing * DAY_MS))
            .await?;
        let now = crate::engine::now();
        let since = Timestamp(now.0 - 2 * window);
        events.extend(self.denied_events(since).await?);
        let ended = self.store.ended_attempts(since, None, MAX_ATTEMPTS).await?;
        events.extend(ended.iter().filter_map(attempt_event));
        // The public-service rule counts CST days: from the start of yesterday.
        let day_ago = Timestamp(now.0 - 2 * DAY_MS);
        let public = self
            .store
            .ended_attempts(day_ago, Some(PriorityClass::PublicService), MAX_ATTEMPTS)
            .await?;
        events.extend(public.iter().filter_map(public_service_event));
        let flags = risk::evaluate(cfg, now.0, &events);
        let new = self.store.record_risk_flags(&flags, now).await?;
        for f in flags.iter().filter(|f| new.contains(&f.id)) {
            tracing::warn!(id = %f.id, rule = %f.rule, subject = %f.subject, detail = %f.detail, "risk flag raised");
            self.metrics.risk_flag_raised(&f.rule, f.severity);
        }
        Ok(new)
    }

    async fn denied_events(&self, since: Timestamp) -> HubResult<Vec<Event>> {
        self.audit.flush().await;
        let filter = AuditFilter {
            since: Some(since),
            denied: true,
            limit: MAX_DENIED,
            ..AuditFilter::default()
        };
        let entries = self.store.audit_entries(&filter).await?;
        let mut centers: HashMap<String, String> = HashMap::new();
        let mut out = Vec::new();
        for r in &entries {
            let e = &r.entry;
            let why = match &e.outcome {
                suanli_audit::Outcome::Denied { why, .. } => why.as_str(),
                suanli_audit::Outcome::Allowed { .. } => continue,
            };
            if e.outcome.status() == 401 {
                out.push(Event::FailedAuth {
                    seq: e.seq,
                    time: e.time,
                    source: source_host(&e.source),
                });
            } else if why.starts_with("invalid_report") {
                if !centers.contains_key(&e.principal) {
                    let center = self.site_of(&e.principal).await?;
                    centers.insert(e.principal.clone(), center);
                }
                out.push(Event::RefusedReport {
                    seq: e.seq,
                    time: e.time,
                    site: centers[&e.principal].clone(),
                });
            }
        }
        Ok(out)
    }

    /// The center of a site token's principal id (the id itself if it is not one).
    async fn site_of(&self, principal: &str) -> HubResult<String> {
        let Ok(id) = principal.parse::<i64>() else {
            return Ok(principal.to_string());
        };
        Ok(match self.store.token_by_id(id).await? {
            Some(t) => t
                .principal
                .center
                .map_or_else(|| format!("token {id}"), |c| c.0),
            None => format!("token {id}"),
        })
    }
}

/// An address without its port: failed authentications count per host.
pub fn source_host(source: &str) -> String {
    source
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| source.to_string(), |a| a.ip().to_string())
}

/// The books' part of the rules' input: every price change, the live bill lines that ended
/// since `lines_since`, and each programme's budget and subsidy paid so far.
pub fn books_events(books: &Books, lines_since: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut last: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut rows: Vec<_> = books.prices().iter().collect();
    rows.sort_by_key(|r| (r.effective_from, r.id));
    for r in rows {
        let key = (r.center.0.clone(), r.sku.clone());
        let new = r.per_card_hour.0;
        if let Some(old) = last.insert(key, new) {
            out.push(Event::PriceChange {
                row: r.id,
                time: r.effective_from.0,
                item: format!("{}/{}", r.center, r.sku),
                old,
                new,
            });
        }
    }
    let mut paid: BTreeMap<&str, i64> = BTreeMap::new();
    for l in books.live_lines() {
        if let Some(p) = &l.programme {
            *paid.entry(p.0.as_str()).or_default() += l.subsidy.0;
        }
        if l.usage.ended_at.0 >= lines_since {
            out.push(Event::Bill {
                line: l.id,
                time: l.usage.ended_at.0,
                tenant: l.usage.tenant.0.clone(),
                payable: l.payable.0,
            });
        }
    }
    for p in books.programmes() {
        out.push(Event::Programme {
            id: p.id.0.clone(),
            budget: p.budget.0,
            paid: paid.get(p.id.0.as_str()).copied().unwrap_or(0),
            valid_from: p.valid_from.0,
            valid_until: p.valid_until.0,
        });
    }
    out
}

/// How an ended attempt counts for its center.
pub fn attempt_end(o: AttemptOutcome) -> AttemptEnd {
    match o {
        AttemptOutcome::Succeeded => AttemptEnd::Succeeded,
        AttemptOutcome::Failed | AttemptOutcome::TimedOut => AttemptEnd::Failed,
        AttemptOutcome::Lost => AttemptEnd::Lost,
        AttemptOutcome::Killed | AttemptOutcome::Preempted | AttemptOutcome::Drained => {
            AttemptEnd::Other
        }
    }
}

fn attempt_event(a: &EndedAttempt) -> Option<Event> {
    let r = &a.attempt;
    Some(Event::Attempt {
        job: r.job.0 as u64,
        attempt: r.attempt,
        time: r.ended_at?.0,
        center: r.center.0.clone(),
        end: attempt_end(r.outcome?),
    })
}

fn public_service_event(a: &EndedAttempt) -> Option<Event> {
    let r = &a.attempt;
    (a.priority == PriorityClass::PublicService).then_some(())?;
    Some(Event::PublicService {
        job: r.job.0 as u64,
        attempt: r.attempt,
        time: r.ended_at?.0,
        tenant: a.tenant.0.clone(),
        card_seconds: r.card_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_count_per_host() {
        assert_eq!(source_host("10.1.2.3:55012"), "10.1.2.3");
        assert_eq!(source_host("[::1]:80"), "::1");
        assert_eq!(source_host("unknown"), "unknown");
    }

    #[test]
    fn outcomes_that_say_nothing_about_a_center_are_other() {
        assert_eq!(attempt_end(AttemptOutcome::TimedOut), AttemptEnd::Failed);
        assert_eq!(attempt_end(AttemptOutcome::Lost), AttemptEnd::Lost);
        for o in [
            AttemptOutcome::Killed,
            AttemptOutcome::Preempted,
            AttemptOutcome::Drained,
        ] {
            assert_eq!(attempt_end(o), AttemptEnd::Other);
        }
    }
}

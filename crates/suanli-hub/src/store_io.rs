//! The engine's side of the store: what a restarted engine reads ([`snapshot`]), and the [`Io`]
//! through which its state's changes are written, the sites' long-polls woken and metrics
//! counted.

use std::sync::Arc;

use suanli_lifecycle::Change;
use suanli_money::{Books, Record};
use suanli_store::Store;
use suanli_types::{CenterId, CenterSpec, SharePolicy, TenantId, Timestamp};

use crate::centers::Wakeups;
use crate::error::HubResult;
use crate::indicators::{Event, Indicators};
use crate::metrics::Metrics;
use crate::state::{Io, Observed, RestoredJob, Snapshot};
use crate::views;

/// What a restarted engine reads from the store.
pub(crate) async fn snapshot(store: &dyn Store) -> HubResult<Snapshot> {
    let (money, _, quarantined) = crate::money::sort_out(&store.money_records().await?);
    for q in &quarantined {
        tracing::error!(
            position = q.position,
            reason = %q.reason,
            "a stored money record does not replay: quarantined (see `suanli admin quarantine`); \
             the hub starts without it"
        );
    }
    let stored = store.tenants().await?;
    let cities = stored
        .iter()
        .filter_map(|t| Some((t.id.clone(), t.city.clone()?)))
        .collect();
    let tenants = stored.into_iter().map(|t| (t.id, t.category)).collect();
    let mut jobs = Vec::new();
    for rec in store.unfinished_jobs().await? {
        // When a cancelled job's attempt started, for metering it if it is lost.
        let started = match rec.state {
            suanli_types::JobState::Cancelled => store
                .attempts(rec.id)
                .await?
                .into_iter()
                .find(|a| a.attempt == rec.attempt)
                .and_then(|a| a.started_at),
            _ => None,
        };
        let placed_at = views::placed_at(&rec);
        jobs.push(RestoredJob {
            rec,
            placed_at,
            started,
        });
    }
    // How the parents of waiting jobs ended, if they did (their dependents decide by it).
    let mut finals = Vec::new();
    let unfinished: std::collections::BTreeSet<_> = jobs.iter().map(|j| j.rec.id).collect();
    let parents: std::collections::BTreeSet<_> = jobs
        .iter()
        .filter_map(|j| j.rec.spec.dependencies())
        .flat_map(|d| d.parents())
        .filter(|p| !unfinished.contains(p))
        .collect();
    for p in parents {
        if let Some(rec) = store.job(p).await?
            && rec.state.is_terminal()
        {
            finals.push((p, rec.state));
        }
    }
    Ok(Snapshot {
        certified: crate::models::all_certified(store).await?,
        dataset_homes: crate::datasets::homes(store).await?,
        finals,
        tenants,
        cities,
        policies: store.tenant_policies().await?,
        centers: store.centers().await?,
        drained: store.drained_centers().await?,
        money,
        jobs,
        quarantined,
    })
}

/// The engine's [`Io`]: the store, the sites' long-polls and the metrics.
pub(crate) struct StoreIo {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) wakeups: Wakeups,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) indicators: Indicators,
}

impl Io for StoreIo {
    async fn write(&mut self, c: &Change) -> HubResult<()> {
        let rows = crate::money::encode(&c.money);
        match &c.write {
            Some(w) => Ok(self
                .store
                .update_job(
                    &w.rec,
                    w.expect_state,
                    w.expect_attempt,
                    w.event.as_ref(),
                    w.attempt.as_ref(),
                    &rows,
                )
                .await?),
            None if rows.is_empty() => Ok(()),
            None => Ok(self.store.append_money(&rows).await?),
        }
    }

    async fn append_money(&mut self, records: &[Record]) -> HubResult<()> {
        Ok(self
            .store
            .append_money(&crate::money::encode(records))
            .await?)
    }

    async fn upsert_center(&mut self, spec: &CenterSpec, at: Timestamp) -> HubResult<bool> {
        Ok(self.store.upsert_center(spec, at).await?)
    }

    async fn set_center_drained(&mut self, id: &CenterId, drained: bool) -> HubResult<bool> {
        Ok(self.store.set_center_drained(id, drained).await?)
    }

    async fn set_tenant_policy(
        &mut self,
        tenant: &TenantId,
        policy: &SharePolicy,
    ) -> HubResult<bool> {
        Ok(self.store.set_tenant_policy(tenant, policy).await?)
    }

    async fn stored_books(&mut self) -> Option<Books> {
        let rows = match self.store.money_records().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the books from the store; they may show money that was not recorded");
                return None;
            }
        };
        let (_, books, quarantined) = crate::money::sort_out(&rows);
        if !quarantined.is_empty() {
            tracing::error!(
                quarantined = quarantined.len(),
                "stored money records do not replay; the books are reloaded without them"
            );
        }
        Some(books)
    }

    fn wake(&self, center: &CenterId) {
        self.wakeups.wake(center);
    }

    fn observe(&self, what: Observed) {
        match what {
            Observed::Placed { waited_ms } => self.metrics.placed(waited_ms),
            Observed::Preempted => self.metrics.preempted(),
            Observed::Finished(s) => self.metrics.finished(s),
        }
    }

    fn indicate(&mut self, event: Event<'_>, now: Timestamp) {
        let metrics = &self.metrics;
        self.indicators.observe_billed(event, now, |f, category| {
            if let suanli_indicators::Fact::Billed {
                center,
                sku,
                card_seconds,
                gross,
                subsidy,
                payable,
                ..
            } = f
            {
                let line = crate::metrics::Billed {
                    card_seconds: *card_seconds,
                    gross: *gross,
                    subsidy: *subsidy,
                    payable: *payable,
                };
                metrics.billed(center.as_str(), sku, category, line);
            }
        });
    }

    fn pass<T>(&self, pass: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let out = pass();
        self.metrics.observe_pass(started.elapsed());
        out
    }
}

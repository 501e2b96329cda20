//! The statistics' shell: what the hub does, as the [`Fact`]s of `suanli-indicators`, kept in an
//! in-memory [`Rollup`] and appended to the store's `indicator_facts`.
//!
//! The engine's flows tell [`Indicators::observe`] what changed ([`Event`]: a center registered,
//! its state, a tenant, a submit, a job change after it was applied); this module decides which
//! facts that makes, applies them to the rollup at once and queues them for the store, which
//! they reach with the engine's input log (every tick: a crash loses the last tick's facts, as
//! it loses the last tick's inputs). The hours before the current one are closed at most once
//! an hour, and each closing is stored too, so [`Indicators::rebuild`] gives the same rollup,
//! amendments included, from the stored rows. Definitions: docs/INDICATORS.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use suanli_indicators::calendar::hour_of;
use suanli_indicators::release::{Release, Vouchers};
use suanli_indicators::{Fact, IndicatorResult, Outcome, PoolState, Quarter, Rollup, Row, Window};
use suanli_lifecycle::{Change, Lifecycle};
use suanli_money::{Books, Record};
use suanli_store::{JobRecord, NewFact, ReleaseRecord, Store};
use suanli_types::{
    CenterId, CenterSpec, ChipCatalog, JobId, JobState, TenantCategory, TenantId, Timestamp,
};

use crate::centers::CenterLive;
use crate::error::HubResult;

/// A stored row: a fact, or the closing of every hour before `close`'s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Close { close: Timestamp },
    Fact(Fact),
}

impl Stored {
    fn at(&self) -> Timestamp {
        match self {
            Stored::Close { close } => *close,
            Stored::Fact(f) => fact_time(f),
        }
    }
}

fn fact_time(f: &Fact) -> Timestamp {
    f.time().unwrap_or(Timestamp(0))
}

/// What changed in the hub, as its flows tell it.
pub enum Event<'a> {
    /// A center was registered (or re-registered) with these pools.
    Registered(&'a CenterSpec),
    /// A center's liveness may have changed.
    Center(&'a CenterId, &'a CenterLive),
    /// A tenant's category and city.
    Tenant(&'a TenantId, TenantCategory, Option<&'a str>),
    Submitted(&'a JobRecord),
    /// A job change, once applied ([`JobNote::of`] before, [`JobNote::settled`] after).
    Job(JobNote),
}

/// A center's state for the statistics: down unless its agent is live, drained if it or the
/// operator drained it.
pub fn pool_state(live: &CenterLive) -> PoolState {
    match (live.online, live.draining || live.drained) {
        (false, _) => PoolState::Down,
        (true, true) => PoolState::Drained,
        (true, false) => PoolState::Online,
    }
}

/// What the statistics need of one job change.
#[derive(Clone, Debug)]
pub struct JobNote {
    job: JobId,
    /// The state written, if the change writes the job.
    state: Option<JobState>,
    /// The attempt holding cards once the change is applied: (attempt, center, SKU, cards).
    holding: Option<(u32, CenterId, String, u64)>,
    billed: Vec<Fact>,
}

impl JobNote {
    /// Taken before the change is applied.
    pub fn of(change: &Change) -> JobNote {
        let billed = change
            .money
            .iter()
            .filter_map(|r| match r {
                Record::Line(l) => Some(Fact::Billed {
                    center: l.usage.center.clone(),
                    sku: l.usage.sku.clone(),
                    tenant: l.usage.tenant.clone(),
                    started: l.usage.started_at,
                    ended: l.usage.ended_at,
                    card_seconds: l.usage.card_seconds,
                    gross: l.gross,
                    subsidy: l.subsidy,
                    payable: l.payable,
                }),
                _ => None,
            })
            .collect();
        JobNote {
            job: change.job,
            state: change.record().map(|r| r.state),
            holding: None,
            billed,
        }
    }

    /// Completed once the change is applied: which attempt holds cards now.
    pub fn settled(mut self, life: &Lifecycle) -> JobNote {
        self.holding = life.job(self.job).and_then(|j| {
            let r = j.rec;
            let center = r.center.clone()?;
            let cards = r.alloc.iter().map(|n| u64::from(n.cards)).sum();
            Some((r.attempt, center, r.sku.clone().unwrap_or_default(), cards))
        });
        self
    }
}

fn outcome(s: JobState) -> Option<Outcome> {
    match s {
        JobState::Succeeded => Some(Outcome::Succeeded),
        JobState::Failed => Some(Outcome::Failed),
        JobState::Cancelled => Some(Outcome::Cancelled),
        JobState::TimedOut => Some(Outcome::TimedOut),
        _ => None,
    }
}

/// What the facts so far say, to tell which new facts an event makes.
#[derive(Default)]
struct Seen {
    centers: BTreeMap<CenterId, PoolState>,
    /// Per pool: cards, vendor, city.
    pools: BTreeMap<(CenterId, String), (u64, String, Option<String>)>,
    tenants: BTreeMap<TenantId, (TenantCategory, Option<String>)>,
    /// The attempt of each job that holds cards.
    held: HashMap<JobId, u32>,
    started: HashSet<(JobId, u32)>,
    /// Jobs ended whose attempt still holds cards (cancelled, the stop not yet confirmed).
    ended: HashSet<JobId>,
}

impl Seen {
    fn apply(&mut self, f: &Fact) {
        match f {
            Fact::Pool {
                center,
                sku,
                cards,
                vendor,
                city,
                ..
            } => {
                let key = (center.clone(), sku.clone());
                match cards {
                    0 => self.pools.remove(&key),
                    n => self.pools.insert(key, (*n, vendor.clone(), city.clone())),
                };
            }
            Fact::Center { center, state, .. } => {
                self.centers.insert(center.clone(), *state);
            }
            Fact::Tenant {
                tenant,
                category,
                city,
            } => {
                self.tenants
                    .insert(tenant.clone(), (*category, city.clone()));
            }
            Fact::Allocated { job, attempt, .. } => {
                self.held.insert(*job, *attempt);
            }
            Fact::Started { job, attempt, .. } => {
                self.started.insert((*job, *attempt));
            }
            Fact::Released { job, attempt, .. } => {
                if self.held.get(job) == Some(attempt) {
                    self.held.remove(job);
                }
                self.started.remove(&(*job, *attempt));
                self.ended.remove(job);
            }
            Fact::Ended { job, .. } => {
                if self.held.contains_key(job) {
                    self.ended.insert(*job);
                }
            }
            Fact::Submitted { .. } | Fact::Billed { .. } => {}
        }
    }

    /// The facts `event` makes at `now`, given what was seen.
    fn facts(&self, event: Event<'_>, now: Timestamp) -> Vec<Fact> {
        match event {
            Event::Registered(spec) => {
                let catalog = ChipCatalog::builtin();
                let mut out = Vec::new();
                for p in &spec.pools {
                    let cards = u64::from(p.nodes) * u64::from(p.cards_per_node);
                    let chip = catalog.get(&p.sku);
                    let vendor = chip.map_or_else(|| "unknown".to_string(), |c| c.vendor.clone());
                    let key = (spec.id.clone(), p.sku.clone());
                    let city = (!spec.city.trim().is_empty()).then(|| spec.city.clone());
                    if self.pools.get(&key) != Some(&(cards, vendor.clone(), city.clone())) {
                        out.push(Fact::Pool {
                            at: now,
                            center: spec.id.clone(),
                            sku: p.sku.clone(),
                            cards,
                            vendor,
                            fp16_tflops: chip.map_or(0, |c| c.fp16_tflops),
                            domestic: chip.is_some_and(|c| c.is_domestic()),
                            city,
                        });
                    }
                }
                let gone = self
                    .pools
                    .iter()
                    .filter(|((c, sku), _)| {
                        c == &spec.id && !spec.pools.iter().any(|p| &p.sku == sku)
                    })
                    .map(|((c, sku), (_, vendor, city))| Fact::Pool {
                        at: now,
                        center: c.clone(),
                        sku: sku.clone(),
                        cards: 0,
                        vendor: vendor.clone(),
                        fp16_tflops: 0,
                        domestic: false,
                        city: city.clone(),
                    });
                out.extend(gone.collect::<Vec<_>>());
                out
            }
            Event::Center(id, live) => {
                let state = pool_state(live);
                match self.centers.get(id) == Some(&state) {
                    true => Vec::new(),
                    false => vec![Fact::Center {
                        at: now,
                        center: id.clone(),
                        state,
                    }],
                }
            }
            Event::Tenant(tenant, category, city) => {
                let city = city.map(String::from);
                match self.tenants.get(tenant) == Some(&(category, city.clone())) {
                    true => Vec::new(),
                    false => vec![Fact::Tenant {
                        tenant: tenant.clone(),
                        category,
                        city,
                    }],
                }
            }
            Event::Submitted(rec) => vec![Fact::Submitted {
                at: rec.submitted_at,
                job: rec.id,
                tenant: rec.tenant.clone(),
            }],
            Event::Job(note) => self.job_facts(note, now),
        }
    }

    fn job_facts(&self, note: JobNote, now: Timestamp) -> Vec<Fact> {
        let job = note.job;
        let mut out = Vec::new();
        let before = self.held.get(&job).copied();
        let after = note.holding.as_ref().map(|h| h.0);
        if let Some(attempt) = before
            && after != Some(attempt)
        {
            out.push(Fact::Released {
                at: now,
                job,
                attempt,
            });
        }
        if let Some((attempt, center, sku, cards)) = &note.holding
            && before != Some(*attempt)
        {
            out.push(Fact::Allocated {
                at: now,
                job,
                attempt: *attempt,
                center: center.clone(),
                sku: sku.clone(),
                cards: *cards,
            });
        }
        if note.state == Some(JobState::Running)
            && let Some(attempt) = after
            && !self.started.contains(&(job, attempt))
        {
            out.push(Fact::Started {
                at: now,
                job,
                attempt,
            });
        }
        if let Some(outcome) = note.state.and_then(outcome)
            && !self.ended.contains(&job)
        {
            out.push(Fact::Ended {
                at: now,
                job,
                outcome,
            });
        }
        out.extend(note.billed);
        out
    }
}

/// The rollup and what it knows, with the rows not yet stored.
#[derive(Default)]
struct Live {
    rollup: Rollup,
    seen: Seen,
    /// The hour the rollup was last closed at.
    closed: Timestamp,
    pending: Vec<Stored>,
}

impl Live {
    fn apply(&mut self, row: &Stored) {
        match row {
            Stored::Close { close } => {
                self.rollup.advance(*close);
                self.closed = self.closed.max(hour_of(*close));
            }
            Stored::Fact(f) => {
                if let Err(e) = self.rollup.apply(f) {
                    tracing::warn!(error = %e, "a fact the statistics refuse; left out");
                }
                self.seen.apply(f);
            }
        }
    }

    fn push(&mut self, row: Stored) {
        self.apply(&row);
        self.pending.push(row);
    }

    /// In a new hour, closes the hours before it (accounting open intervals up to `now`) and
    /// records the closing. The rollup advances at nothing else, so the stored rows give the
    /// same rollup again: a fact timed before the last advance is accounted from it, live and
    /// in a rebuild alike.
    fn close_due(&mut self, now: Timestamp) {
        if hour_of(now) > self.closed {
            self.push(Stored::Close { close: now });
        }
    }
}

/// The hub's statistics, shared by the engine (which feeds them) and the API (which reads them).
#[derive(Clone, Default)]
pub struct Indicators {
    live: Arc<Mutex<Live>>,
    /// Held while pending rows are written, so that they reach the store in order.
    writing: Arc<tokio::sync::Mutex<()>>,
}

/// Facts read from the store per page at a rebuild.
const PAGE: u32 = 10_000;

impl Indicators {
    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the rollup from the stored rows, replacing what this handle held.
    pub async fn rebuild(&self, store: &dyn Store) -> HubResult<()> {
        let _w = self.writing.lock().await;
        let mut live = Live::default();
        let mut after = 0;
        let mut bad = 0u64;
        loop {
            let page = store.facts(after, PAGE).await?;
            for f in &page {
                match serde_json::from_str::<Stored>(&f.fact) {
                    Ok(row) => live.apply(&row),
                    Err(_) => bad += 1,
                }
            }
            match page.last() {
                Some(f) if page.len() as u32 == PAGE => after = f.seq,
                Some(f) => {
                    after = f.seq;
                    break;
                }
                None => break,
            }
        }
        if bad > 0 {
            tracing::error!(
                bad,
                "stored facts of the statistics that do not decode; left out"
            );
        }
        tracing::info!(rows = after, "statistics rebuilt from the store");
        *self.lock() = live;
        Ok(())
    }

    /// Records the facts `event` makes at `now`.
    pub fn observe(&self, event: Event<'_>, now: Timestamp) {
        self.observe_billed(event, now, |_, _| {});
    }

    /// As [`observe`](Self::observe), telling `billed` of each bill line with its tenant's
    /// category (for the metrics).
    pub fn observe_billed(
        &self,
        event: Event<'_>,
        now: Timestamp,
        mut billed: impl FnMut(&Fact, &str),
    ) {
        let mut live = self.lock();
        for f in live.seen.facts(event, now) {
            if let Fact::Billed { tenant, .. } = &f {
                let category = live.rollup.category(tenant);
                billed(&f, category.map_or("unknown", TenantCategory::as_str));
            }
            live.push(Stored::Fact(f));
        }
    }

    /// The hourly closing, at a tick.
    pub fn tick(&self, now: Timestamp) {
        self.lock().close_due(now);
    }

    /// Appends the rows not yet stored; they leave the queue only once written (a failed or
    /// abandoned write leaves them, in order, for the next try).
    pub async fn flush(&self, store: &dyn Store, now: Timestamp) -> HubResult<()> {
        let _w = self.writing.lock().await;
        let rows: Vec<Stored> = self.lock().pending.clone();
        if rows.is_empty() {
            return Ok(());
        }
        let encoded: Vec<NewFact> = rows
            .iter()
            .map(|r| NewFact {
                at: r.at(),
                fact: serde_json::to_string(r).expect("facts serialise"),
            })
            .collect();
        store.append_facts(&encoded, now).await?;
        // Only this writer removes rows, and new ones are pushed behind these.
        self.lock().pending.drain(..rows.len());
        Ok(())
    }

    /// The rows of a window. Closed hours are complete; the open hour holds the card-time of
    /// intervals up to their last change (an attempt's cards once it is released, a center's
    /// cards up to its last change of state).
    pub fn rows(&self, w: &Window, now: Timestamp) -> IndicatorResult<Vec<Row>> {
        let mut live = self.lock();
        live.close_due(now);
        live.rollup.rows(w)
    }

    /// Freezes `quarter` as the rollup holds it at `now`.
    pub fn release(
        &self,
        quarter: Quarter,
        vouchers: Vouchers,
        now: Timestamp,
    ) -> IndicatorResult<Release> {
        let mut live = self.lock();
        live.close_due(now);
        Release::build(&live.rollup, quarter, vouchers)
    }

    /// The quarter so far, as of `now`, marked preliminary (see [`Release::preliminary`]).
    pub fn preliminary(
        &self,
        quarter: Quarter,
        vouchers: Vouchers,
        now: Timestamp,
    ) -> IndicatorResult<Release> {
        let mut live = self.lock();
        live.close_due(now);
        // A copy advanced to now: the live rollup advances only at its stored closings.
        let mut rollup = live.rollup.clone();
        drop(live);
        rollup.advance(now);
        Release::preliminary(&rollup, quarter, vouchers, now)
    }

    /// The rollup's rows of every hour, for comparing two rollups (tests).
    pub fn fingerprint(&self) -> String {
        let live = self.lock();
        format!(
            "{:?}{:?}",
            live.rollup.pool_hours(),
            live.rollup.usage_hours()
        )
    }
}

/// The voucher programmes' figures for `[from, to)`: granted in it, paid out on lines that
/// ended in it, and what remained of all grants at its end.
pub fn vouchers(books: &Books, from: Timestamp, to: Timestamp) -> Vouchers {
    let inside = |t: Timestamp| t >= from && t < to;
    let sum = |it: &mut dyn Iterator<Item = i64>| suanli_types::Money(it.sum());
    let granted_before_end = sum(&mut books
        .grants()
        .iter()
        .filter(|g| g.at < to)
        .map(|g| g.amount.units()));
    let paid_before_end = sum(&mut books
        .live_lines()
        .filter(|l| l.usage.ended_at < to)
        .map(|l| l.subsidy.units()));
    Vouchers {
        granted_yuan: sum(&mut books
            .grants()
            .iter()
            .filter(|g| inside(g.at))
            .map(|g| g.amount.units())),
        paid_out_yuan: sum(&mut books
            .live_lines()
            .filter(|l| inside(l.usage.ended_at))
            .map(|l| l.subsidy.units())),
        remaining_yuan: suanli_types::Money(
            (granted_before_end.units() - paid_before_end.units()).max(0),
        ),
    }
}

/// A release as stored: its three files and the SHA-256 of the JSON.
pub fn frozen(release: &Release, made_at: Timestamp) -> ReleaseRecord {
    let json = release.to_json();
    let sha256 = Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    ReleaseRecord {
        quarter: release.quarter.to_string(),
        made_at,
        csv: release.to_csv(),
        html: release.to_html(),
        json,
        sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_indicators::{By, Period};
    use suanli_store::SqliteStore;

    // On the hour.
    const T0: Timestamp = Timestamp(1_789_999_200_000);
    const H: i64 = 3_600_000;

    fn t(ms: i64) -> Timestamp {
        Timestamp(T0.0 + ms)
    }

    fn note(job: i64, state: JobState, holding: Option<u32>) -> JobNote {
        JobNote {
            job: JobId(job),
            state: Some(state),
            holding: holding.map(|a| (a, CenterId::new("c1"), "RTX4090".to_string(), 2)),
            billed: Vec::new(),
        }
    }

    fn setup(ind: &Indicators) {
        let spec: CenterSpec = serde_json::from_value(serde_json::json!({
            "id": "c1", "name": "c1", "city": "Shenzhen", "owner": "gov", "backend": "local",
            "pools": [{"sku": "RTX4090", "nodes": 1, "cards_per_node": 8,
                       "price_per_card_hour": "2.00"}]
        }))
        .unwrap();
        ind.observe(Event::Registered(&spec), t(0));
        let live = CenterLive {
            online: true,
            ..Default::default()
        };
        ind.observe(Event::Center(&spec.id, &live), t(0));
        // The same state again makes no fact.
        ind.observe(Event::Center(&spec.id, &live), t(1));
        ind.observe(
            Event::Tenant(&TenantId::new("ta"), TenantCategory::Sme, None),
            t(0),
        );
    }

    /// The pools carry their center's city and a tenant's city is a fact of its own: given once,
    /// changed when it changes.
    #[test]
    fn cities_of_centers_and_tenants_are_facts() {
        let ind = Indicators::default();
        setup(&ind);
        let city = |f: &Stored| match f {
            Stored::Fact(Fact::Pool { city, .. }) | Stored::Fact(Fact::Tenant { city, .. }) => {
                Some(city.clone())
            }
            _ => None,
        };
        let cities: Vec<_> = facts(&ind).iter().filter_map(city).collect();
        assert_eq!(cities, [Some("Shenzhen".to_string()), None]);
        let ta = TenantId::new("ta");
        ind.observe(
            Event::Tenant(&ta, TenantCategory::Sme, Some("Zhuhai")),
            t(5),
        );
        ind.observe(
            Event::Tenant(&ta, TenantCategory::Sme, Some("Zhuhai")),
            t(6),
        );
        let cities: Vec<_> = facts(&ind).iter().filter_map(city).collect();
        assert_eq!(cities.last(), Some(&Some("Zhuhai".to_string())));
        assert_eq!(cities.len(), 3, "the same city again is no new fact");
    }

    fn facts(ind: &Indicators) -> Vec<Stored> {
        ind.lock().pending.clone()
    }

    #[test]
    fn a_job_makes_each_fact_once_and_a_cancelled_attempt_is_released_when_it_stops() {
        let ind = Indicators::default();
        setup(&ind);
        assert_eq!(
            facts(&ind).len(),
            3,
            "pool, center, tenant: {:?}",
            facts(&ind)
        );
        let rec: JobRecord = serde_json::from_value(serde_json::json!({
            "id": 7, "tenant": "ta", "submitted_by": "alice", "spec": {"name": "j", "command": "true"},
            "state": "queued", "attempt": 0, "center": null, "sku": null, "alloc": [],
            "placement": null, "lease_expires_at": null, "submitted_at": T0.0,
            "started_at": null, "ended_at": null, "exit_code": null, "reason": null,
            "card_seconds": 0, "updated_at": T0.0
        }))
        .unwrap();
        ind.observe(Event::Submitted(&rec), t(0));
        ind.observe(Event::Job(note(7, JobState::Placed, Some(1))), t(10));
        ind.observe(Event::Job(note(7, JobState::Running, Some(1))), t(20));
        // A retried start changes nothing.
        ind.observe(Event::Job(note(7, JobState::Running, Some(1))), t(25));
        // Cancelled while running: ended now, the cards held until the site confirms.
        ind.observe(Event::Job(note(7, JobState::Cancelled, Some(1))), t(30));
        ind.observe(Event::Job(note(7, JobState::Cancelled, None)), t(40));
        let kinds: Vec<String> = facts(&ind)[3..]
            .iter()
            .map(|f| match f {
                Stored::Fact(f) => serde_json::to_value(f).unwrap()["fact"].to_string(),
                Stored::Close { .. } => "close".into(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "\"submitted\"",
                "\"allocated\"",
                "\"started\"",
                "\"ended\"",
                "\"released\""
            ]
        );
        assert_eq!(ind.lock().rollup.unmatched(), 0);
        assert!(ind.lock().seen.ended.is_empty() && ind.lock().seen.held.is_empty());
    }

    #[tokio::test]
    async fn the_rollup_rebuilt_from_the_store_is_the_same_amendments_included() {
        let store = SqliteStore::in_memory().await.unwrap();
        let ind = Indicators::default();
        setup(&ind);
        let rec: JobRecord = serde_json::from_value(serde_json::json!({
            "id": 1, "tenant": "ta", "submitted_by": "alice", "spec": {"name": "j", "command": "true"},
            "state": "queued", "attempt": 0, "center": null, "sku": null, "alloc": [],
            "placement": null, "lease_expires_at": null, "submitted_at": T0.0,
            "started_at": null, "ended_at": null, "exit_code": null, "reason": null,
            "card_seconds": 0, "updated_at": T0.0
        }))
        .unwrap();
        ind.observe(Event::Submitted(&rec), t(0));
        ind.observe(Event::Job(note(1, JobState::Placed, Some(1))), t(60_000));
        ind.tick(t(H + 5));
        ind.flush(&store, t(H + 5)).await.unwrap();
        ind.observe(
            Event::Job(note(1, JobState::Running, Some(1))),
            t(H + 60_000),
        );
        // Billed after the first hour was closed: its first hour is amended.
        let mut done = note(1, JobState::Succeeded, None);
        done.billed.push(Fact::Billed {
            center: CenterId::new("c1"),
            sku: "RTX4090".into(),
            tenant: TenantId::new("ta"),
            started: t(60_000),
            ended: t(H + 120_000),
            card_seconds: 7_440,
            gross: suanli_types::Money::from_yuan(4),
            subsidy: suanli_types::Money(0),
            payable: suanli_types::Money::from_yuan(4),
        });
        ind.observe(Event::Job(done), t(2 * H + 10));
        ind.tick(t(2 * H + 10));
        ind.flush(&store, t(2 * H + 10)).await.unwrap();
        assert!(ind.lock().pending.is_empty());
        let w = Window {
            from: T0,
            to: t(3 * H),
            period: Period::Hour,
            by: By::Center,
            tenant: None,
        };
        let live = ind.rows(&w, t(2 * H + 20)).unwrap();
        assert_eq!(live.iter().map(|r| r.usage.amendments).sum::<u64>(), 1);
        assert_eq!(
            live.iter()
                .map(|r| r.usage.delivered_card_seconds)
                .sum::<u64>(),
            7_440
        );
        let again = Indicators::default();
        again.rebuild(&store).await.unwrap();
        assert_eq!(again.rows(&w, t(2 * H + 20)).unwrap(), live);
        assert_eq!(again.fingerprint(), ind.fingerprint());
    }
}

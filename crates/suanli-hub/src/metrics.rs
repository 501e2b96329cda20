//! Prometheus metrics, served at `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use suanli_core::Core;
use suanli_types::{CenterId, JobState, Money, Timestamp};

use crate::engine::CenterLive;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CardsLabel {
    center: String,
    sku: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CenterLabel {
    center: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Where usage was delivered and to whom: for the statistics' counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UsageLabel {
    center: String,
    sku: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct YuanLabel {
    center: String,
    sku: String,
    category: String,
    /// gross, subsidy or payable.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RiskLabel {
    rule: String,
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PerLabel {
    per: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    jobs: Family<StateLabel, Gauge>,
    finished: Family<StateLabel, Counter>,
    queue_depth: Gauge,
    cards: Family<CardsLabel, Gauge>,
    heartbeat_age: Family<CenterLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    center_up: Family<CenterLabel, Gauge>,
    placement_latency: Histogram,
    pass_seconds: Histogram,
    preemptions: Counter,
    /// 1 while this hub leads (or is the only hub); the leadership term.
    leader: Gauge,
    leader_epoch: Gauge,
    takeovers: Counter,
    auth_failures: Family<ReasonLabel, Counter>,
    rate_limited: Family<PerLabel, Counter>,
    reports_refused: Family<ReasonLabel, Counter>,
    money_quarantined: Gauge,
    logs_truncated: Counter,
    risk_flags: Family<RiskLabel, Counter>,
    delivered: Family<UsageLabel, Counter>,
    billed_yuan: Family<YuanLabel, Counter<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Records this hub's role: leading or not, in which term.
    pub fn set_leader(&self, leading: bool, epoch: u64) {
        if self.leader.set(i64::from(leading)) != i64::from(leading) {
            self.takeovers.inc();
        }
        self.leader_epoch.set(epoch as i64);
    }

    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("suanli");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            jobs: Family::default(),
            finished: Family::default(),
            queue_depth: Gauge::default(),
            cards: Family::default(),
            heartbeat_age: Family::default(),
            center_up: Family::default(),
            placement_latency: Histogram::new(exponential_buckets(0.01, 4.0, 12)),
            pass_seconds: Histogram::new(exponential_buckets(0.000_01, 4.0, 12)),
            preemptions: Counter::default(),
            leader: Gauge::default(),
            leader_epoch: Gauge::default(),
            takeovers: Counter::default(),
            auth_failures: Family::default(),
            rate_limited: Family::default(),
            reports_refused: Family::default(),
            money_quarantined: Gauge::default(),
            logs_truncated: Counter::default(),
            risk_flags: Family::default(),
            delivered: Family::default(),
            billed_yuan: Family::default(),
        };
        registry.register(
            "risk_flags_raised",
            "Risk flags raised by this hub, by rule and severity (GET /v1/risk lists them)",
            m.risk_flags.clone(),
        );
        registry.register(
            "delivered_card_seconds",
            "Card-seconds of bill lines, by center, SKU and tenant category (docs/INDICATORS.md)",
            m.delivered.clone(),
        );
        registry.register(
            "billed_yuan",
            "Yuan of bill lines (kind: gross, subsidy, payable), by center, SKU and tenant \
             category",
            m.billed_yuan.clone(),
        );
        registry.register(
            "reports_refused",
            "Site reports refused as invalid_report, by reason (each also in the input log)",
            m.reports_refused.clone(),
        );
        registry.register(
            "money_records_quarantined",
            "Stored money records that did not replay at the engine's last start (see GET \
             /v1/admin/quarantine)",
            m.money_quarantined.clone(),
        );
        registry.register(
            "logs_truncated",
            "Attempts whose log reached the per-attempt byte cap (the rest is dropped)",
            m.logs_truncated.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed authentications: no_token, unknown_token (looked up), rate_limited (refused \
             without a lookup)",
            m.auth_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Authenticated requests refused for their token's or their site's request rate",
            m.rate_limited.clone(),
        );
        registry.register(
            "hub_leader",
            "1 while this hub runs the scheduler (the leader, or the only hub)",
            m.leader.clone(),
        );
        registry.register(
            "hub_leader_epoch",
            "The leadership term (fencing token) this hub last saw",
            m.leader_epoch.clone(),
        );
        registry.register(
            "hub_leadership_changes",
            "Times this hub became leader or stepped down",
            m.takeovers.clone(),
        );
        registry.register(
            "preemptions",
            "Attempts evicted for higher-priority or in-quota work",
            m.preemptions.clone(),
        );
        registry.register("jobs", "Jobs by state", m.jobs.clone());
        registry.register(
            "jobs_finished",
            "Jobs that reached a terminal state since start",
            m.finished.clone(),
        );
        registry.register(
            "queue_depth",
            "Jobs waiting for placement",
            m.queue_depth.clone(),
        );
        registry.register(
            "cards",
            "Cards per center and SKU, free or busy",
            m.cards.clone(),
        );
        registry.register(
            "agent_heartbeat_age_seconds",
            "Seconds since each center's site agent last reported",
            m.heartbeat_age.clone(),
        );
        registry.register(
            "center_online",
            "1 if the center takes new work",
            m.center_up.clone(),
        );
        registry.register(
            "placement_latency_seconds",
            "Time from queued to placed",
            m.placement_latency.clone(),
        );
        registry.register(
            "schedule_pass_seconds",
            "Time the scheduler core spends in one pass",
            m.pass_seconds.clone(),
        );
        *m.registry.lock().expect("registry lock") = registry;
        m
    }

    pub fn placed(&self, waited_ms: i64) {
        self.placement_latency.observe(waited_ms as f64 / 1000.0);
    }

    /// Counts a failed authentication.
    pub fn auth_failed(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a request refused for a rate (`per`: token or site).
    pub fn rate_limited(&self, per: &str) {
        self.rate_limited
            .get_or_create(&PerLabel {
                per: per.to_string(),
            })
            .inc();
    }

    /// Counts a site report refused as invalid (`reason`: a stable short name).
    pub fn report_refused(&self, reason: &str) {
        self.reports_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a risk flag raised.
    pub fn risk_flag_raised(&self, rule: &str, severity: suanli_audit::risk::Severity) {
        let severity = match severity {
            suanli_audit::risk::Severity::Low => "low",
            suanli_audit::risk::Severity::Medium => "medium",
            suanli_audit::risk::Severity::High => "high",
        };
        self.risk_flags
            .get_or_create(&RiskLabel {
                rule: rule.to_string(),
                severity: severity.to_string(),
            })
            .inc();
    }

    /// How many stored money records did not replay at the engine's start.
    pub fn set_money_quarantined(&self, n: usize) {
        self.money_quarantined
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a bill line: its card-seconds and yuan, by center, SKU and tenant category.
    pub fn billed(&self, center: &str, sku: &str, category: &str, line: Billed) {
        let usage = UsageLabel {
            center: center.to_string(),
            sku: sku.to_string(),
            category: category.to_string(),
        };
        self.delivered
            .get_or_create(&usage)
            .inc_by(line.card_seconds);
        for (kind, yuan) in [
            ("gross", line.gross),
            ("subsidy", line.subsidy),
            ("payable", line.payable),
        ] {
            let label = YuanLabel {
                center: usage.center.clone(),
                sku: usage.sku.clone(),
                category: usage.category.clone(),
                kind: kind.to_string(),
            };
            // Counters only grow: a reversal is not a bill line.
            let yuan = yuan.units().max(0) as f64 / 10_000.0;
            self.billed_yuan.get_or_create(&label).inc_by(yuan);
        }
    }

    /// Counts an attempt whose log reached the byte cap.
    pub fn log_truncated(&self) {
        self.logs_truncated.inc();
    }

    pub fn preempted(&self) {
        self.preemptions.inc();
    }

    pub fn observe_pass(&self, d: Duration) {
        self.pass_seconds.observe(d.as_secs_f64());
    }

    pub fn finished(&self, state: JobState) {
        self.finished
            .get_or_create(&StateLabel {
                state: state.to_string(),
            })
            .inc();
    }

    /// Copies live numbers from the engine (called on its tick).
    pub fn refresh_from_engine(
        &self,
        core: &Core,
        centers: &BTreeMap<CenterId, CenterLive>,
        now: Timestamp,
    ) {
        self.queue_depth.set(core.pending_len() as i64);
        for p in core.capacity() {
            let label = |status: &str| CardsLabel {
                center: p.center.to_string(),
                sku: p.sku.clone(),
                status: status.to_string(),
            };
            self.cards
                .get_or_create(&label("free"))
                .set(p.free_cards as i64);
            self.cards
                .get_or_create(&label("busy"))
                .set((p.total_cards - p.free_cards) as i64);
        }
        for (id, live) in centers {
            let l = CenterLabel {
                center: id.to_string(),
            };
            self.center_up
                .get_or_create(&l)
                .set(i64::from(live.is_open()));
            if let Some(t) = live.last_heartbeat {
                self.heartbeat_age
                    .get_or_create(&l)
                    .set(now.millis_since(t) as f64 / 1000.0);
            }
        }
    }

    /// Sets the job counts (read from the store at scrape time) and renders the text format.
    pub fn render(&self, counts: &[(JobState, u64)]) -> String {
        for s in JobState::ALL {
            let n = counts.iter().find(|(k, _)| *k == s).map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&StateLabel {
                    state: s.to_string(),
                })
                .set(n as i64);
        }
        let mut out = String::new();
        let reg = self.registry.lock().expect("registry lock");
        prometheus_client::encoding::text::encode(&mut out, &reg).expect("writing to a String");
        out
    }
}

/// A bill line's figures, for [`Metrics::billed`].
#[derive(Clone, Copy, Debug)]
pub struct Billed {
    pub card_seconds: u64,
    pub gross: Money,
    pub subsidy: Money,
    pub payable: Money,
}

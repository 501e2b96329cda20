//! Risk flags, pure: rules over the events the hub already records, with configurable
//! thresholds. No I/O, no clock: the evaluation time is an argument.
//!
//! First rule set (more follow): repeated failed authentications from one source, and
//! refused site reports over a threshold in a window. Evaluation is deterministic and does not
//! depend on the order of the input events.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Thresholds of the rules; the hub's config file may override each one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RiskConfig {
    /// Window (ms) over which event counts are taken.
    pub window_ms: i64,
    /// Failed authentications from one source within the window that raise a flag.
    pub failed_auth_max: usize,
    /// Refused site reports from one site within the window that raise a flag.
    pub refused_reports_max: usize,
    /// A price change larger than this, in per cent of the old price, raises a flag.
    pub price_change_pct: u64,
    /// A tenant's spend on a day above this many per cent of its trailing daily mean flags.
    pub spend_factor_pct: u64,
    /// Days of history the trailing mean needs before the spend rule judges a day.
    pub spend_trailing_days: usize,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            window_ms: 3_600_000,
            failed_auth_max: 20,
            refused_reports_max: 10,
            price_change_pct: 50,
            spend_factor_pct: 300,
            spend_trailing_days: 7,
        }
    }
}

/// One event the rules read, each naming the audit entry it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    FailedAuth {
        seq: u64,
        time: i64,
        source: String,
    },
    RefusedReport {
        seq: u64,
        time: i64,
        site: String,
    },
    /// A price row changed from `old` to `new` (same unit, e.g. micro-yuan per unit).
    PriceChange {
        seq: u64,
        time: i64,
        item: String,
        old: u64,
        new: u64,
    },
    /// A tenant's total spend on day `day` (days since the epoch), from its bill lines.
    DailySpend {
        seq: u64,
        day: i64,
        tenant: String,
        amount: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// A flag a rule raised: what, about whom, and the audit entries that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub rule: String,
    pub severity: Severity,
    pub subject: String,
    pub evidence: Vec<u64>,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// The state of a flag; a change names who made it and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagState {
    Open,
    Acknowledged,
    Resolved,
}

impl FlagState {
    /// Whether a flag may go from `self` to `to`: forward only, a resolved flag stays resolved.
    pub fn may_become(self, to: FlagState) -> bool {
        matches!(
            (self, to),
            (FlagState::Open, FlagState::Acknowledged)
                | (FlagState::Open, FlagState::Resolved)
                | (FlagState::Acknowledged, FlagState::Resolved)
        )
    }
}

fn count_rule(
    rule: &str,
    severity: Severity,
    max: usize,
    items: BTreeMap<String, Vec<(i64, u64)>>,
) -> Vec<Flag> {
    items
        .into_iter()
        .filter(|(_, v)| v.len() > max)
        .map(|(subject, mut v)| {
            v.sort_unstable();
            Flag {
                rule: rule.to_string(),
                severity,
                subject,
                first_seen: v[0].0,
                last_seen: v[v.len() - 1].0,
                evidence: v.iter().map(|(_, s)| *s).collect(),
            }
        })
        .collect()
}

/// Evaluates every rule over `events` in the window ending at `now`.
pub fn evaluate(cfg: &RiskConfig, now: i64, events: &[Event]) -> Vec<Flag> {
    let since = now - cfg.window_ms;
    let mut auth: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    let mut refused: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    let mut price = Vec::new();
    let mut spend: BTreeMap<String, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for e in events {
        match e {
            Event::FailedAuth { seq, time, source } if *time > since && *time <= now => {
                auth.entry(source.clone()).or_default().push((*time, *seq))
            }
            Event::RefusedReport { seq, time, site } if *time > since && *time <= now => {
                refused.entry(site.clone()).or_default().push((*time, *seq))
            }
            Event::PriceChange {
                seq,
                time,
                item,
                old,
                new,
            } if *time > since
                && *time <= now
                && old.abs_diff(*new) * 100 > cfg.price_change_pct * old =>
            {
                price.push(Flag {
                    rule: "price_change".into(),
                    severity: Severity::Medium,
                    subject: item.clone(),
                    evidence: vec![*seq],
                    first_seen: *time,
                    last_seen: *time,
                })
            }
            Event::DailySpend {
                seq,
                day,
                tenant,
                amount,
            } if *day <= now.div_euclid(86_400_000) => spend
                .entry(tenant.clone())
                .or_default()
                .push((*day, *amount, *seq)),
            _ => {}
        }
    }
    let mut flags = count_rule("failed_auth", Severity::High, cfg.failed_auth_max, auth);
    flags.extend(count_rule(
        "refused_reports",
        Severity::Medium,
        cfg.refused_reports_max,
        refused,
    ));
    for (tenant, mut days) in spend {
        days.sort_unstable();
        let n = cfg.spend_trailing_days;
        for i in n.max(1)..days.len() {
            let trail = &days[i - n.max(1)..i];
            let sum: u64 = trail.iter().map(|d| d.1).sum();
            let (day, amount, seq) = days[i];
            if amount * 100 * trail.len() as u64 > cfg.spend_factor_pct * sum {
                flags.push(Flag {
                    rule: "tenant_spend".into(),
                    severity: Severity::Medium,
                    subject: tenant.clone(),
                    evidence: vec![seq],
                    first_seen: day * 86_400_000,
                    last_seen: day * 86_400_000,
                });
            }
        }
    }
    price.sort_by(|a, b| {
        (&a.subject, a.first_seen, &a.evidence).cmp(&(&b.subject, b.first_seen, &b.evidence))
    });
    flags.extend(price);
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths(n: u64, source: &str) -> Vec<Event> {
        (0..n)
            .map(|i| Event::FailedAuth {
                seq: i,
                time: 1_000 + i as i64,
                source: source.into(),
            })
            .collect()
    }

    #[test]
    fn failed_auth_fires_over_threshold_and_is_silent_below() {
        let cfg = RiskConfig::default();
        assert!(evaluate(&cfg, 2_000, &auths(20, "10.0.0.1")).is_empty());
        let f = evaluate(&cfg, 2_000, &auths(21, "10.0.0.1"));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].rule, "failed_auth");
        assert_eq!(f[0].evidence.len(), 21);
        assert_eq!((f[0].first_seen, f[0].last_seen), (1_000, 1_020));
    }

    #[test]
    fn refused_reports_fire_only_inside_the_window() {
        let cfg = RiskConfig::default();
        let ev: Vec<Event> = (0..11)
            .map(|i| Event::RefusedReport {
                seq: i,
                time: i as i64,
                site: "s1".into(),
            })
            .collect();
        assert_eq!(evaluate(&cfg, 100, &ev).len(), 1);
        assert!(evaluate(&cfg, 100 + cfg.window_ms, &ev).is_empty());
    }

    #[test]
    fn price_change_fires_over_the_percentage_only() {
        let cfg = RiskConfig::default();
        let ev = |new| Event::PriceChange {
            seq: 7,
            time: 10,
            item: "gpu-hour".into(),
            old: 1_000,
            new,
        };
        assert!(evaluate(&cfg, 20, &[ev(1_500), ev(500)]).is_empty());
        let f = evaluate(&cfg, 20, &[ev(1_501)]);
        assert_eq!((f.len(), f[0].evidence.clone()), (1, vec![7]));
        assert_eq!(evaluate(&cfg, 20, &[ev(0)]).len(), 1);
    }

    #[test]
    fn tenant_spend_fires_above_factor_of_trailing_mean() {
        let cfg = RiskConfig::default();
        let mut ev: Vec<Event> = (0..7)
            .map(|d| Event::DailySpend {
                seq: d as u64,
                day: d,
                tenant: "t".into(),
                amount: 100,
            })
            .collect();
        ev.push(Event::DailySpend {
            seq: 7,
            day: 7,
            tenant: "t".into(),
            amount: 300,
        });
        let now = 8 * 86_400_000;
        assert!(evaluate(&cfg, now, &ev).is_empty());
        ev[7] = Event::DailySpend {
            seq: 7,
            day: 7,
            tenant: "t".into(),
            amount: 301,
        };
        let f = evaluate(&cfg, now, &ev);
        assert_eq!(
            (f.len(), f[0].rule.as_str(), f[0].evidence.clone()),
            (1, "tenant_spend", vec![7])
        );
    }

    #[test]
    fn states_move_forward_only() {
        use FlagState::*;
        assert!(Open.may_become(Acknowledged) && Acknowledged.may_become(Resolved));
        assert!(!Resolved.may_become(Open) && !Acknowledged.may_become(Open));
        assert!(!Open.may_become(Open));
    }

    #[test]
    fn order_of_events_does_not_matter() {
        let cfg = RiskConfig::default();
        let mut ev = auths(25, "a");
        let forward = evaluate(&cfg, 2_000, &ev);
        ev.reverse();
        assert_eq!(evaluate(&cfg, 2_000, &ev), forward);
    }
}

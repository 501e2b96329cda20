//! Risk flags, pure: rules over what the hub records (audit entries, bill lines, price rows,
//! voucher programmes, attempts that ended), with configurable thresholds. No I/O, no clock:
//! the evaluation time is an argument.
//!
//! Counting rules use fixed windows aligned to multiples of [`RiskConfig::window_ms`] (and days
//! of China Standard Time for the daily rules), so that a flag has a stable id,
//! `rule/subject/window-start`, whatever the order or the moment of evaluation: evaluating the
//! same events again gives the same flags, and more events in a window only add evidence to its
//! flag. A burst split by a window boundary counts in two windows (at worst it must be twice
//! the threshold to be seen); docs/SUPERVISION.md says so.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// China Standard Time's offset from UTC: the daily rules count CST days.
const CST_MS: i64 = 8 * 3_600_000;
/// Evidence items a flag lists, at most (its `count` says how many there were).
pub const MAX_EVIDENCE: usize = 100;

/// Thresholds of the rules; the hub's config may override each one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Length (ms) of the windows the counting rules count in.
    pub window_ms: i64,
    /// Failed authentications (401) from one source address within a window that raise a flag
    /// (more than this many).
    pub failed_auth_max: usize,
    /// Refused site reports from one site token within a window that raise a flag.
    pub refused_reports_max: usize,
    /// A price change larger than this, in per cent of the old price, raises a flag.
    pub price_change_pct: u64,
    /// A tenant's payable on a CST day above this many per cent of its trailing daily mean.
    pub spend_factor_pct: u64,
    /// The CST days before the day that make the trailing mean; the rule judges a day only
    /// when the tenant's first bill line is at least this many days older.
    pub spend_trailing_days: usize,
    /// A day's payable below this (in 1/10,000 yuan) is never flagged.
    pub spend_min: i64,
    /// A programme whose share of budget paid out exceeds this many per cent of its share of
    /// time elapsed burns too fast.
    pub burn_factor_pct: u64,
    /// ... once at least this many per cent of its budget is paid out.
    pub burn_min_spent_pct: u64,
    /// Failed or lost attempts of one center within a window that raise a flag (more than).
    pub center_failures_max: usize,
    /// ... and they are at least this many per cent of the center's ended attempts then.
    pub center_failure_pct: u64,
    /// Card-hours of public-service class one tenant may run in a CST day before it is flagged:
    /// the class preempts others and is meant for urgent public work.
    pub public_service_card_hours: u64,
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
            spend_min: 100 * 10_000,
            burn_factor_pct: 150,
            burn_min_spent_pct: 10,
            center_failures_max: 5,
            center_failure_pct: 50,
            public_service_card_hours: 256,
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("risk.{field}: {why}")]
pub struct RiskConfigError {
    pub field: &'static str,
    pub why: &'static str,
}

impl RiskConfig {
    pub fn validate(&self) -> Result<(), RiskConfigError> {
        let bad = |field, why| Err(RiskConfigError { field, why });
        if self.window_ms < 60_000 || self.window_ms > DAY_MS || DAY_MS % self.window_ms != 0 {
            return bad(
                "window_ms",
                "must divide a day and be at least a minute (e.g. 3600000)",
            );
        }
        if self.spend_trailing_days == 0 || self.spend_trailing_days > 366 {
            return bad("spend_trailing_days", "must be 1 to 366");
        }
        if self.center_failure_pct > 100 || self.burn_min_spent_pct > 100 {
            return bad(
                "center_failure_pct / burn_min_spent_pct",
                "are per cent: 0 to 100",
            );
        }
        if self.spend_min < 0 {
            return bad("spend_min", "must not be negative");
        }
        Ok(())
    }
}

/// How an attempt ended, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptEnd {
    Succeeded,
    /// The job's code failed, or the site reported the attempt failed.
    Failed,
    /// The center lost it (agent silent, lease expired).
    Lost,
    /// Cancelled, preempted, handed back: says nothing about the center.
    Other,
}

/// One thing the rules read, each naming where it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An audit entry refused with 401.
    FailedAuth { seq: u64, time: i64, source: String },
    /// An audit entry of a site report the hub refused.
    RefusedReport { seq: u64, time: i64, site: String },
    /// Price row `row` replaced `old` by `new` per card-hour for `item` (center/sku).
    PriceChange {
        row: u64,
        time: i64,
        item: String,
        old: i64,
        new: i64,
    },
    /// A live bill line: what `tenant` pays for usage that ended at `time`.
    Bill {
        line: u64,
        time: i64,
        tenant: String,
        payable: i64,
    },
    /// A voucher programme as it stands: `paid` of `budget` subsidised so far.
    Programme {
        id: String,
        budget: i64,
        paid: i64,
        valid_from: i64,
        valid_until: i64,
    },
    /// An attempt of `job` at `center` ended at `time`.
    Attempt {
        job: u64,
        attempt: u32,
        time: i64,
        center: String,
        end: AttemptEnd,
    },
    /// An attempt of public-service class by `tenant` ran `card_seconds`, ending at `time`.
    PublicService {
        job: u64,
        attempt: u32,
        time: i64,
        tenant: String,
        card_seconds: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// Where a flag's evidence is recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evidence {
    /// An audit entry (`suanli audit log`, `suanli audit prove SEQ`).
    Audit { seq: u64 },
    /// A price row.
    PriceRow { row: u64 },
    /// A bill line (`suanli bill explain LINE`).
    BillLine { line: u64 },
    /// An attempt of a job.
    Attempt { job: u64, attempt: u32 },
    /// A voucher programme.
    Programme { id: String },
}

/// A flag a rule raised: what, about whom, and where it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// `rule/subject/window`: the same on every evaluation.
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub subject: String,
    /// One line saying what was seen against which threshold.
    pub detail: String,
    /// The first [`MAX_EVIDENCE`] items, in time order.
    pub evidence: Vec<Evidence>,
    /// How many items there were.
    pub count: u64,
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
    pub const ALL: [FlagState; 3] = [
        FlagState::Open,
        FlagState::Acknowledged,
        FlagState::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlagState::Open => "open",
            FlagState::Acknowledged => "acknowledged",
            FlagState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<FlagState> {
        FlagState::ALL.into_iter().find(|v| v.as_str() == s)
    }

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

/// The rules' names, as flags carry them.
pub const RULES: [&str; 7] = [
    "failed_auth",
    "refused_reports",
    "price_change",
    "tenant_spend",
    "voucher_burn",
    "center_failures",
    "public_service",
];

fn cst_day(t: i64) -> i64 {
    (t + CST_MS).div_euclid(DAY_MS)
}

/// The UTC instant a CST day starts.
fn cst_day_start(day: i64) -> i64 {
    day * DAY_MS - CST_MS
}

/// Items of one subject in one window: (time, evidence).
#[derive(Default)]
struct Bucket {
    items: Vec<(i64, Evidence)>,
    /// A second count the rule needs (e.g. all ended attempts).
    total: u64,
    sum: i128,
}

impl Bucket {
    fn flag(
        mut self,
        rule: &str,
        severity: Severity,
        subject: &str,
        window: i64,
        detail: String,
    ) -> Flag {
        self.items.sort();
        let count = self.items.len() as u64;
        Flag {
            id: format!("{rule}/{subject}/{window}"),
            rule: rule.to_string(),
            severity,
            subject: subject.to_string(),
            detail,
            first_seen: self.items.first().map_or(window, |i| i.0),
            last_seen: self.items.last().map_or(window, |i| i.0),
            evidence: self
                .items
                .into_iter()
                .take(MAX_EVIDENCE)
                .map(|i| i.1)
                .collect(),
            count,
        }
    }
}

type Buckets = BTreeMap<(String, i64), Bucket>;

/// Evaluates every rule over `events` as of `now` (events after `now` are ignored), in a
/// deterministic order: by rule, then id.
pub fn evaluate(cfg: &RiskConfig, now: i64, events: &[Event]) -> Vec<Flag> {
    let win = |t: i64| t.div_euclid(cfg.window_ms) * cfg.window_ms;
    let mut auth = Buckets::new();
    let mut refused = Buckets::new();
    let mut centers = Buckets::new();
    let mut public = Buckets::new();
    let mut spend: BTreeMap<String, BTreeMap<i64, Bucket>> = BTreeMap::new();
    let mut flags = Vec::new();
    for e in events {
        match e {
            Event::FailedAuth { seq, time, source } if *time <= now => {
                let b = auth.entry((source.clone(), win(*time))).or_default();
                b.items.push((*time, Evidence::Audit { seq: *seq }));
            }
            Event::RefusedReport { seq, time, site } if *time <= now => {
                let b = refused.entry((site.clone(), win(*time))).or_default();
                b.items.push((*time, Evidence::Audit { seq: *seq }));
            }
            Event::PriceChange {
                row,
                time,
                item,
                old,
                new,
            } if *time <= now
                && *old > 0
                && (old.abs_diff(*new) as u128) * 100
                    > cfg.price_change_pct as u128 * *old as u128 =>
            {
                flags.push(Flag {
                    id: format!("price_change/{item}/{row}"),
                    rule: "price_change".into(),
                    severity: Severity::Medium,
                    subject: item.clone(),
                    detail: format!(
                        "price per card-hour changed from {} to {} ({:+}%), over the {}% allowed",
                        yuan(*old),
                        yuan(*new),
                        (*new as i128 - *old as i128) * 100 / *old as i128,
                        cfg.price_change_pct
                    ),
                    evidence: vec![Evidence::PriceRow { row: *row }],
                    count: 1,
                    first_seen: *time,
                    last_seen: *time,
                });
            }
            Event::Bill {
                line,
                time,
                tenant,
                payable,
            } if *time <= now => {
                let b = spend
                    .entry(tenant.clone())
                    .or_default()
                    .entry(cst_day(*time))
                    .or_default();
                b.items.push((*time, Evidence::BillLine { line: *line }));
                b.sum += *payable as i128;
            }
            Event::Programme {
                id,
                budget,
                paid,
                valid_from,
                valid_until,
            } if *budget > 0 && *valid_from < now && now < *valid_until => {
                let (elapsed, length) = (
                    (now - valid_from) as i128,
                    (valid_until - valid_from) as i128,
                );
                let (paid, budget) = (*paid as i128, *budget as i128);
                // paid / budget > factor x elapsed / length, and paid / budget >= min share.
                if paid * 100 * length > cfg.burn_factor_pct as i128 * budget * elapsed
                    && paid * 100 >= cfg.burn_min_spent_pct as i128 * budget
                {
                    flags.push(Flag {
                        id: format!("voucher_burn/{id}/{valid_from}"),
                        rule: "voucher_burn".into(),
                        severity: Severity::Medium,
                        subject: id.clone(),
                        detail: format!(
                            "{}% of the budget paid out after {}% of the programme's time (more than {}% of schedule)",
                            paid * 100 / budget,
                            elapsed * 100 / length,
                            cfg.burn_factor_pct
                        ),
                        evidence: vec![Evidence::Programme { id: id.clone() }],
                        count: 1,
                        first_seen: now,
                        last_seen: now,
                    });
                }
            }
            Event::Attempt {
                job,
                attempt,
                time,
                center,
                end,
            } if *time <= now && *end != AttemptEnd::Other => {
                let b = centers.entry((center.clone(), win(*time))).or_default();
                b.total += 1;
                if matches!(end, AttemptEnd::Failed | AttemptEnd::Lost) {
                    let ev = Evidence::Attempt {
                        job: *job,
                        attempt: *attempt,
                    };
                    b.items.push((*time, ev));
                }
            }
            Event::PublicService {
                job,
                attempt,
                time,
                tenant,
                card_seconds,
            } if *time <= now => {
                let day = cst_day_start(cst_day(*time));
                let b = public.entry((tenant.clone(), day)).or_default();
                let ev = Evidence::Attempt {
                    job: *job,
                    attempt: *attempt,
                };
                b.items.push((*time, ev));
                b.sum += *card_seconds as i128;
            }
            _ => {}
        }
    }
    let window_words = format!("{} min", cfg.window_ms / 60_000);
    for ((source, w), b) in auth {
        if b.items.len() > cfg.failed_auth_max {
            let detail = format!(
                "{} failed authentications from {source} in {window_words}, over the {} allowed",
                b.items.len(),
                cfg.failed_auth_max
            );
            flags.push(b.flag("failed_auth", Severity::High, &source, w, detail));
        }
    }
    for ((site, w), b) in refused {
        if b.items.len() > cfg.refused_reports_max {
            let detail = format!(
                "{} refused site reports in {window_words}, over the {} allowed",
                b.items.len(),
                cfg.refused_reports_max
            );
            flags.push(b.flag("refused_reports", Severity::High, &site, w, detail));
        }
    }
    for ((center, w), b) in centers {
        let bad = b.items.len() as u64;
        if b.items.len() > cfg.center_failures_max && bad * 100 >= cfg.center_failure_pct * b.total
        {
            let detail = format!(
                "{bad} of {} attempts ended failed or lost in {window_words} (over {} and at least {}%)",
                b.total, cfg.center_failures_max, cfg.center_failure_pct
            );
            flags.push(b.flag("center_failures", Severity::Medium, &center, w, detail));
        }
    }
    let ps_limit = cfg.public_service_card_hours as i128 * 3600;
    for ((tenant, day), b) in public {
        if b.sum > ps_limit {
            let detail = format!(
                "{:.1} card-hours of public-service class in a day, over the {} allowed",
                b.sum as f64 / 3600.0,
                cfg.public_service_card_hours
            );
            flags.push(b.flag("public_service", Severity::Medium, &tenant, day, detail));
        }
    }
    let n = cfg.spend_trailing_days as i64;
    for (tenant, days) in spend {
        let Some(first) = days.keys().next().copied() else {
            continue;
        };
        let sums: BTreeMap<i64, i128> = days.iter().map(|(d, b)| (*d, b.sum)).collect();
        for (day, b) in days {
            if day - first < n || b.sum < cfg.spend_min as i128 {
                continue;
            }
            let trail: i128 = sums.range(day - n..day).map(|(_, s)| *s).sum();
            // sum > factor x trail / n
            if b.sum * 100 * n as i128 > cfg.spend_factor_pct as i128 * trail {
                let detail = format!(
                    "paid {} in a day, over {}% of its trailing {n}-day mean of {}",
                    yuan(b.sum as i64),
                    cfg.spend_factor_pct,
                    yuan((trail / n as i128) as i64)
                );
                let start = cst_day_start(day);
                flags.push(b.flag("tenant_spend", Severity::Medium, &tenant, start, detail));
            }
        }
    }
    flags.sort_by(|a, b| (&a.rule, &a.id).cmp(&(&b.rule, &b.id)));
    flags
}

/// An amount in 1/10,000 yuan as yuan with two decimals (`12.30 yuan`).
fn yuan(units: i64) -> String {
    let fen = (units as i128 + if units >= 0 { 50 } else { -50 }) / 100;
    format!(
        "{}{}.{:02} yuan",
        if fen < 0 { "-" } else { "" },
        fen.abs() / 100,
        fen.abs() % 100
    )
}

#[cfg(test)]
mod tests;

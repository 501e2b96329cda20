use super::*;

const H: i64 = 3_600_000;

fn auths(n: u64, source: &str, from: i64) -> Vec<Event> {
    (0..n)
        .map(|i| Event::FailedAuth {
            seq: i,
            time: from + i as i64,
            source: source.into(),
        })
        .collect()
}

fn rules(f: &[Flag]) -> Vec<&str> {
    f.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn the_default_config_is_valid_and_bad_ones_are_named() {
    RiskConfig::default().validate().unwrap();
    let bad = RiskConfig {
        window_ms: 7_000_000,
        ..RiskConfig::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "window_ms");
    let bad = RiskConfig {
        spend_trailing_days: 0,
        ..RiskConfig::default()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("spend_trailing_days")
    );
}

#[test]
fn failed_auth_fires_over_threshold_in_one_window_and_is_silent_below() {
    let cfg = RiskConfig::default();
    assert!(evaluate(&cfg, 10 * H, &auths(20, "10.0.0.1", H)).is_empty());
    let f = evaluate(&cfg, 10 * H, &auths(21, "10.0.0.1", H));
    assert_eq!(rules(&f), ["failed_auth"]);
    assert_eq!(f[0].id, format!("failed_auth/10.0.0.1/{H}"));
    assert_eq!((f[0].count, f[0].evidence.len()), (21, 21));
    assert_eq!(f[0].evidence[20], Evidence::Audit { seq: 20 });
    assert_eq!((f[0].first_seen, f[0].last_seen), (H, H + 20));
    assert_eq!(f[0].severity, Severity::High);
    // Two sources of 15 each, or one source's 30 split over two windows: silent.
    let mut two = auths(15, "a", H);
    two.extend(auths(15, "b", H));
    assert!(evaluate(&cfg, 10 * H, &two).is_empty());
    assert!(evaluate(&cfg, 10 * H, &auths(30, "a", 2 * H - 15)).is_empty());
}

#[test]
fn evidence_is_capped_but_counted() {
    let f = evaluate(&RiskConfig::default(), 10 * H, &auths(500, "x", H));
    assert_eq!((f[0].count, f[0].evidence.len()), (500, MAX_EVIDENCE));
}

#[test]
fn refused_reports_fire_per_site_and_window() {
    let cfg = RiskConfig::default();
    let ev = |n: u64, site: &str| -> Vec<Event> {
        (0..n)
            .map(|i| Event::RefusedReport {
                seq: i,
                time: H + i as i64,
                site: site.into(),
            })
            .collect()
    };
    assert!(evaluate(&cfg, 2 * H, &ev(10, "site-1")).is_empty());
    let f = evaluate(&cfg, 2 * H, &ev(11, "site-1"));
    assert_eq!(rules(&f), ["refused_reports"]);
    assert_eq!(f[0].subject, "site-1");
    // Events after `now` do not count yet.
    assert!(evaluate(&cfg, H + 5, &ev(11, "site-1")).is_empty());
}

#[test]
fn price_change_fires_over_the_percentage_only() {
    let cfg = RiskConfig::default();
    let ev = |new| Event::PriceChange {
        row: 7,
        time: 10,
        item: "sz/a100".into(),
        old: 10_000,
        new,
    };
    assert!(evaluate(&cfg, 20, &[ev(15_000), ev(5_000)]).is_empty());
    let f = evaluate(&cfg, 20, &[ev(15_001)]);
    assert_eq!(rules(&f), ["price_change"]);
    assert_eq!(f[0].evidence, vec![Evidence::PriceRow { row: 7 }]);
    assert!(
        f[0].detail.contains("1.00 yuan to 1.50 yuan"),
        "{}",
        f[0].detail
    );
    assert_eq!(evaluate(&cfg, 20, &[ev(0)]).len(), 1);
}

fn bills(tenant: &str, per_day: &[i64]) -> Vec<Event> {
    per_day
        .iter()
        .enumerate()
        .map(|(d, amount)| Event::Bill {
            line: d as u64 + 1,
            // noon CST of day d
            time: d as i64 * DAY_MS + 4 * H,
            tenant: tenant.into(),
            payable: *amount,
        })
        .collect()
}

#[test]
fn tenant_spend_fires_above_factor_of_trailing_mean_after_enough_history() {
    let cfg = RiskConfig::default();
    let y = 10_000i64;
    let now = 30 * DAY_MS;
    let mut days = vec![100 * y; 7];
    days.push(300 * y);
    assert!(evaluate(&cfg, now, &bills("t", &days)).is_empty());
    days[7] = 301 * y;
    let f = evaluate(&cfg, now, &bills("t", &days));
    assert_eq!(rules(&f), ["tenant_spend"]);
    assert_eq!(f[0].evidence, vec![Evidence::BillLine { line: 8 }]);
    assert_eq!(f[0].id, format!("tenant_spend/t/{}", 7 * DAY_MS - 8 * H));
    // Without seven days of history, the same jump is not judged.
    assert!(evaluate(&cfg, now, &bills("t", &days[1..])).is_empty());
    // A jump below the minimum amount is not flagged.
    let small = [1, 1, 1, 1, 1, 1, 1, 50 * y];
    assert!(evaluate(&cfg, now, &bills("t", &small)).is_empty());
}

#[test]
fn voucher_burn_fires_when_ahead_of_schedule() {
    let cfg = RiskConfig::default();
    let p = |paid| Event::Programme {
        id: "p1".into(),
        budget: 1_000,
        paid,
        valid_from: 0,
        valid_until: 100 * DAY_MS,
    };
    // After 20 days (20%), 30% paid is within 150%; 31% is not.
    let now = 20 * DAY_MS;
    assert!(evaluate(&cfg, now, &[p(300)]).is_empty());
    let f = evaluate(&cfg, now, &[p(310)]);
    assert_eq!(rules(&f), ["voucher_burn"]);
    assert_eq!(f[0].id, "voucher_burn/p1/0");
    // Early on, a small share paid is not judged; an ended programme is not either.
    assert!(evaluate(&cfg, DAY_MS / 10, &[p(50)]).is_empty());
    assert!(evaluate(&cfg, 100 * DAY_MS, &[p(1_000)]).is_empty());
}

fn attempts(center: &str, ends: &[AttemptEnd]) -> Vec<Event> {
    ends.iter()
        .enumerate()
        .map(|(i, end)| Event::Attempt {
            job: i as u64 + 1,
            attempt: 1,
            time: H + i as i64,
            center: center.into(),
            end: *end,
        })
        .collect()
}

#[test]
fn center_failures_need_both_a_count_and_a_share() {
    use AttemptEnd::*;
    let cfg = RiskConfig::default();
    let now = 2 * H;
    let bad = [Failed, Lost, Failed, Lost, Failed, Lost];
    let f = evaluate(&cfg, now, &attempts("sz", &bad));
    assert_eq!(rules(&f), ["center_failures"]);
    assert_eq!(f[0].count, 6);
    // Five are not enough; six among twenty successes are not a majority.
    assert!(evaluate(&cfg, now, &attempts("sz", &bad[..5])).is_empty());
    let mut mixed = bad.to_vec();
    mixed.extend([Succeeded; 20]);
    assert!(evaluate(&cfg, now, &attempts("sz", &mixed)).is_empty());
    // Cancellations say nothing about the center.
    let mut cancelled = bad.to_vec();
    cancelled.extend([Other; 20]);
    assert_eq!(evaluate(&cfg, now, &attempts("sz", &cancelled)).len(), 1);
}

#[test]
fn public_service_use_over_the_daily_card_hours_fires() {
    let cfg = RiskConfig::default();
    let ev = |job, hours: u64| Event::PublicService {
        job,
        attempt: 1,
        time: 2 * H,
        tenant: "city".into(),
        card_seconds: hours * 3600,
    };
    assert!(evaluate(&cfg, 3 * H, &[ev(1, 200), ev(2, 56)]).is_empty());
    let f = evaluate(&cfg, 3 * H, &[ev(1, 200), ev(2, 57)]);
    assert_eq!(rules(&f), ["public_service"]);
    assert_eq!(f[0].count, 2);
}

#[test]
fn states_move_forward_only_and_parse() {
    use FlagState::*;
    assert!(Open.may_become(Acknowledged) && Acknowledged.may_become(Resolved));
    assert!(!Resolved.may_become(Open) && !Acknowledged.may_become(Open));
    assert!(!Open.may_become(Open));
    for s in FlagState::ALL {
        assert_eq!(FlagState::parse(s.as_str()), Some(s));
    }
    assert_eq!(FlagState::parse("closed"), None);
}

#[test]
fn order_of_events_does_not_matter_and_ids_are_stable() {
    use AttemptEnd::*;
    let cfg = RiskConfig::default();
    let mut ev = auths(25, "a", H);
    ev.extend(attempts("c", &[Failed; 9]));
    ev.extend(bills("t", &[1_000_000; 7]));
    ev.extend(bills("t", &[0, 0, 0, 0, 0, 0, 0, 9_000_000]));
    let forward = evaluate(&cfg, 30 * DAY_MS, &ev);
    assert_eq!(forward.len(), 3, "{forward:#?}");
    ev.reverse();
    assert_eq!(evaluate(&cfg, 30 * DAY_MS, &ev), forward);
    // More events in the window only add evidence; the ids stay.
    ev.extend(auths(5, "a", H + 100));
    let more = evaluate(&cfg, 30 * DAY_MS, &ev);
    let ids = |f: &[Flag]| f.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&more), ids(&forward));
}

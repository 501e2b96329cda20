//! Helpers shared by the integration tests.
#![allow(dead_code)]

use suanli_money::{Month, Programme, ProgrammeId, Usage};
use suanli_types::{CenterId, JobId, Money, TenantCategory, TenantId, Timestamp};

/// `year-month-day hour:00` UTC.
pub fn at(year: i32, month: u8, day: u64, hour: u64) -> Timestamp {
    Month::new(year, month)
        .unwrap()
        .start()
        .plus_secs((day - 1) * 86_400 + hour * 3600)
}

pub fn yuan(s: &str) -> Money {
    s.parse().unwrap()
}

pub fn t(s: &str) -> TenantId {
    TenantId::new(s)
}

pub fn c(s: &str) -> CenterId {
    CenterId::new(s)
}

pub fn p(s: &str) -> ProgrammeId {
    ProgrammeId::new(s)
}

/// A usage of `cards` cards for `secs` seconds starting at `start`, fully metered.
pub fn usage(
    job: i64,
    tenant: &str,
    center: &str,
    sku: &str,
    cards: u32,
    start: Timestamp,
    secs: u64,
) -> Usage {
    Usage {
        job: JobId(job),
        attempt: 1,
        tenant: t(tenant),
        center: c(center),
        sku: sku.to_string(),
        cards,
        started_at: start,
        ended_at: start.plus_secs(secs),
        card_seconds: u64::from(cards) * secs,
        spot: false,
    }
}

/// A programme open to every category, valid through 2025, with a large budget and cap.
pub fn programme(id: &str, base_rate_bp: u32) -> Programme {
    Programme {
        id: p(id),
        issuer: "test city".into(),
        budget: yuan("1000000"),
        valid_from: at(2025, 1, 1, 0),
        valid_until: at(2026, 1, 1, 0),
        base_rate_bp,
        category_rates: vec![],
        domestic_rate_bp: None,
        cap_per_tenant: yuan("100000"),
        eligible: TenantCategory::ALL.to_vec(),
        exclude_affiliated: false,
    }
}

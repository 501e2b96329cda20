//! Builders for the books' tests: times, parties, usages, programmes and price rows.

use suanli_money::{BillLine, Books, Directory, Month, Parties, Programme, ProgrammeId, Usage};
use suanli_types::{CenterId, JobId, TenantCategory, TenantId, Timestamp};

use crate::yuan;

/// `year-month-day hour:00` UTC.
pub fn at(year: i32, month: u8, day: u64, hour: u64) -> Timestamp {
    Month::new(year, month)
        .unwrap_or_else(|| panic!("no month {year}-{month}"))
        .start()
        .plus_secs((day - 1) * 86_400 + hour * 3600)
}

/// The start of 2025, when [`programme`]s open and [`BooksExt::price`] rows take effect.
pub fn jan() -> Timestamp {
    at(2025, 1, 1, 0)
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

/// Attempt 1 of `job`: `cards` cards for `secs` seconds from `start`, fully metered, not spot.
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
        priced_at: None,
        report: None,
    }
}

/// A programme open to every category, valid through 2025, with a budget of 1,000,000 yuan and
/// a cap of 100,000 per tenant.
pub fn programme(id: &str, base_rate_bp: u32) -> Programme {
    Programme {
        id: p(id),
        issuer: "test city".into(),
        budget: yuan("1000000"),
        valid_from: jan(),
        valid_until: at(2026, 1, 1, 0),
        base_rate_bp,
        category_rates: vec![],
        domestic_rate_bp: None,
        cap_per_tenant: yuan("100000"),
        eligible: TenantCategory::ALL.to_vec(),
        exclude_affiliated: false,
    }
}

/// Set-up steps on [`Books`] that the tests repeat, each from [`jan`]; they panic when the
/// books refuse, and chain.
pub trait BooksExt {
    /// A list price in yuan per card-hour of `sku` at `center`, no spot discount.
    fn price(&mut self, center: &str, sku: &str, per_card_hour: &str) -> &mut Self;
    /// Creates and funds a programme.
    fn fund(&mut self, programme: Programme) -> &mut Self;
    /// Grants `tenant` an amount in yuan of a programme.
    fn give(&mut self, programme: &str, tenant: &str, amount: &str, dir: &Parties) -> &mut Self;
    /// Bills a usage and gives its line.
    fn billed(&mut self, usage: &Usage, dir: &impl Directory) -> BillLine;
}

impl BooksExt for Books {
    fn price(&mut self, center: &str, sku: &str, per_card_hour: &str) -> &mut Self {
        self.set_price(&c(center), sku, yuan(per_card_hour), None, jan())
            .unwrap_or_else(|e| panic!("price of {sku} at {center}: {e}"));
        self
    }
    fn fund(&mut self, programme: Programme) -> &mut Self {
        let id = programme.id.clone();
        self.create_programme(programme, jan())
            .unwrap_or_else(|e| panic!("programme {id}: {e}"));
        self
    }
    fn give(&mut self, programme: &str, tenant: &str, amount: &str, dir: &Parties) -> &mut Self {
        self.grant(&p(programme), &t(tenant), yuan(amount), jan(), dir)
            .unwrap_or_else(|e| panic!("grant of {programme} to {tenant}: {e}"));
        self
    }
    fn billed(&mut self, usage: &Usage, dir: &impl Directory) -> BillLine {
        self.bill(usage, dir)
            .unwrap_or_else(|e| panic!("billing {usage:?}: {e}"))
            .line
    }
}

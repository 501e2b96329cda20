//! Statistics: indicators by period and group, and the frozen quarterly releases
//! (docs/INDICATORS.md defines every figure).

use serde::{Deserialize, Serialize};
use suanli_types::{Money, TenantId, Timestamp};
use utoipa::ToSchema;

/// The indicators of a window, by period and group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorsView {
    /// The window, `[from, to)`.
    pub from: Timestamp,
    pub to: Timestamp,
    /// `hour` (UTC), `day`, `month` or `quarter` (China Standard Time).
    pub period: String,
    /// `all`, `center`, `sku`, `vendor` or `category`.
    pub by: String,
    /// Set when the figures are one tenant's own usage (a tenant's token): no capacity then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    pub rows: Vec<IndicatorRow>,
}

/// One period of one group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IndicatorRow {
    /// `2026-10-01T08Z` (hour), `2026-10-01`, `2026-10`, `2026Q4`.
    pub period: String,
    pub group: String,
    /// Capacity figures: none by category and in a tenant's view.
    pub capacity: Option<CapacityFigures>,
    pub usage: UsageFigures,
}

/// Card-time in card-hours (three decimals); ratios to four decimals, absent when their
/// denominator is zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CapacityFigures {
    pub installed_card_hours: f64,
    /// Average installed dense FP16/BF16 tensor PFLOPS over the period.
    pub installed_fp16_pflops: f64,
    pub available_card_hours: f64,
    pub allocated_card_hours: f64,
    pub down_card_hours: f64,
    pub drained_card_hours: f64,
    /// allocated / available.
    pub utilisation: Option<f64>,
    /// delivered / available.
    pub delivered_utilisation: Option<f64>,
    /// (installed - down) / installed.
    pub availability: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageFigures {
    pub allocated_card_hours: f64,
    pub delivered_card_hours: f64,
    /// Delivered card-seconds, exact: what reconciles with the bill lines.
    pub delivered_card_seconds: u64,
    pub jobs_submitted: u64,
    pub jobs_started: u64,
    pub jobs_succeeded: u64,
    pub jobs_failed: u64,
    pub jobs_cancelled: u64,
    pub jobs_timed_out: u64,
    pub wait_p50_secs: Option<u64>,
    pub wait_p95_secs: Option<u64>,
    pub wait_p99_secs: Option<u64>,
    pub gross_yuan: Money,
    pub subsidy_yuan: Money,
    pub payable_yuan: Money,
    /// subsidy / gross.
    pub subsidy_rate: Option<f64>,
    pub active_tenants: u64,
    /// Facts that reached their hour after it was closed (late reports, late bill lines).
    pub amendments: u64,
    /// Delivered card-hours whose tenant's and center's cities were both known when billed (the
    /// denominator of the cross-city share).
    #[serde(default)]
    pub located_card_hours: f64,
    /// Of those, the card-hours run at a center outside the tenant's city.
    #[serde(default)]
    pub cross_city_card_hours: f64,
}

/// Freeze the release of a quarter that has ended (operator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// `2026Q4`: a quarter of China Standard Time.
    pub quarter: String,
}

/// A frozen release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseView {
    pub quarter: String,
    pub made_at: Timestamp,
    /// SHA-256 (hex) of `release.json`.
    pub sha256: String,
    /// Where its files are: `release.json`, `release.csv`, `release.html`.
    pub files: Vec<String>,
}

/// Every release, by quarter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseList {
    pub releases: Vec<ReleaseView>,
}

/// The files of a release.
pub const RELEASE_FILES: [&str; 3] = ["release.json", "release.csv", "release.html"];

/// The quarter so far, marked preliminary: the three files a release has, made now and not
/// stored (the quarter's release is made once it has ended).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreliminaryRelease {
    pub quarter: String,
    /// The figures cover the quarter up to this instant (exclusive), Unix ms; absent when the
    /// quarter has ended (the files are then those its release would have).
    pub until: Option<i64>,
    pub json: String,
    pub csv: String,
    pub html: String,
}

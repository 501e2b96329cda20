//! Price tables: list prices per card-hour per (center, SKU), in force from a time.

use serde::{Deserialize, Serialize};
use suanli_types::{CenterId, Money, Timestamp};

use crate::BP;

/// A price row's number, allocated in order from 1.
pub type PriceRowId = u64;

/// One price of a SKU at a center, in force from `effective_from` until a later row replaces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRow {
    pub id: PriceRowId,
    pub center: CenterId,
    pub sku: String,
    /// List price per card-hour before vouchers.
    pub per_card_hour: Money,
    /// Discount on spot (preemptible) usage, in basis points of the list price.
    pub spot_discount_bp: Option<u32>,
    pub effective_from: Timestamp,
}

/// The price a usage or quote was computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitPrice {
    /// The row used.
    pub row: PriceRowId,
    /// Price per card-hour after any spot discount.
    pub per_card_hour: Money,
    /// Whether the spot discount was applied.
    pub spot: bool,
}

/// A price row that cannot be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("center id and SKU must not be empty")]
    MissingKey,
    #[error("price per card-hour must not be negative, got {0} yuan")]
    Negative(Money),
    #[error("spot discount must be at most 10000 basis points (100%), got {0}")]
    DiscountOutOfRange(u32),
}

impl PriceRow {
    pub(crate) fn validate(&self) -> Result<(), PriceError> {
        if self.center.as_str().is_empty() || self.sku.is_empty() {
            return Err(PriceError::MissingKey);
        }
        if self.per_card_hour < Money::ZERO {
            return Err(PriceError::Negative(self.per_card_hour));
        }
        match self.spot_discount_bp {
            Some(bp) if bp > BP => Err(PriceError::DiscountOutOfRange(bp)),
            _ => Ok(()),
        }
    }

    /// The unit price of this row; spot usage gets the spot discount when the row has one.
    pub fn unit(&self, spot: bool) -> UnitPrice {
        match (spot, self.spot_discount_bp) {
            (true, Some(bp)) => UnitPrice {
                row: self.id,
                per_card_hour: self
                    .per_card_hour
                    .mul_div(i64::from(BP - bp), i64::from(BP)),
                spot: true,
            },
            _ => UnitPrice {
                row: self.id,
                per_card_hour: self.per_card_hour,
                spot: false,
            },
        }
    }
}

/// The row of `(center, sku)` in force at `at`: the latest `effective_from <= at`, and among
/// equal times the row recorded last.
pub(crate) fn row_at<'a>(
    rows: &'a [PriceRow],
    center: &CenterId,
    sku: &str,
    at: Timestamp,
) -> Option<&'a PriceRow> {
    rows.iter()
        .filter(|r| &r.center == center && r.sku == sku && r.effective_from <= at)
        .max_by_key(|r| (r.effective_from, r.id))
}

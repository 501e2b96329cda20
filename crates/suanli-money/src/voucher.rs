//! Computing-power voucher programmes and grants.

use std::fmt;

use serde::{Deserialize, Serialize};
use suanli_types::{Money, TenantCategory, TenantId, Timestamp};

use crate::BP;

/// A programme's id, chosen by the operator, e.g. `sz-2025-training`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProgrammeId(pub String);

impl ProgrammeId {
    /// A programme id from a string.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgrammeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A subsidy rate that applies to one tenant category instead of the base rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRate {
    pub category: TenantCategory,
    pub rate_bp: u32,
}

/// A voucher programme: a budget the platform funds and tenants draw from through grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Programme {
    pub id: ProgrammeId,
    /// Who issues it, e.g. `Shenzhen MIIT`.
    pub issuer: String,
    /// Total budget; funded into the programme's pool when created.
    pub budget: Money,
    /// First instant the programme subsidises usage (by `ended_at`).
    pub valid_from: Timestamp,
    /// First instant it no longer does; unused balances expire then.
    pub valid_until: Timestamp,
    /// Share of gross subsidised, in basis points.
    pub base_rate_bp: u32,
    /// Rates replacing the base rate for some categories (e.g. start-ups 6000).
    #[serde(default)]
    pub category_rates: Vec<CategoryRate>,
    /// Rate for SKUs whose chip is domestic, used when higher than the tenant's rate.
    #[serde(default)]
    pub domestic_rate_bp: Option<u32>,
    /// Most a tenant can be granted in total.
    pub cap_per_tenant: Money,
    /// Tenant categories that may be granted and subsidised.
    pub eligible: Vec<TenantCategory>,
    /// Refuse subsidy when the center's owner is affiliated with the tenant.
    #[serde(default)]
    pub exclude_affiliated: bool,
}

/// A programme that cannot be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgrammeError {
    #[error("programme id must not be empty")]
    EmptyId,
    #[error("programme {0} already exists")]
    Duplicate(ProgrammeId),
    #[error("budget must be positive, got {0} yuan")]
    Budget(Money),
    #[error("cap per tenant must be positive, got {0} yuan")]
    Cap(Money),
    #[error("validity window is empty: valid_from {from} is not before valid_until {until}")]
    Window { from: Timestamp, until: Timestamp },
    #[error("{what} must be at most 10000 basis points (100%), got {bp}")]
    Rate { what: String, bp: u32 },
    #[error("category {0} has more than one rate")]
    DuplicateCategoryRate(&'static str),
    #[error("a programme needs at least one eligible tenant category")]
    NoEligibleCategory,
}

/// A grant that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("no programme {0}")]
    UnknownProgramme(ProgrammeId),
    #[error("grant amount must be positive, got {0} yuan")]
    Amount(Money),
    #[error("programme {programme} ended at {until}; no more grants")]
    Ended {
        programme: ProgrammeId,
        until: Timestamp,
    },
    #[error("tenant {tenant} ({category}) is not eligible for programme {programme}")]
    NotEligible {
        programme: ProgrammeId,
        tenant: TenantId,
        category: String,
    },
    #[error(
        "grant of {amount} yuan would bring tenant {tenant} to more than the cap of {cap} yuan (already granted {granted})"
    )]
    OverCap {
        tenant: TenantId,
        amount: Money,
        granted: Money,
        cap: Money,
    },
    #[error(
        "grant of {amount} yuan exceeds programme {programme}'s budget: {unallocated} yuan left to grant"
    )]
    OverBudget {
        programme: ProgrammeId,
        amount: Money,
        unallocated: Money,
    },
}

/// An amount of a programme granted to a tenant. A tenant's balance in a programme is the sum of
/// its grants minus the subsidy paid to it; it expires with the programme.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Allocated in order from 1.
    pub id: GrantId,
    pub programme: ProgrammeId,
    pub tenant: TenantId,
    pub amount: Money,
    pub at: Timestamp,
}

/// A grant's number.
pub type GrantId = u64;

impl Programme {
    pub(crate) fn validate(&self) -> Result<(), ProgrammeError> {
        if self.id.as_str().is_empty() {
            return Err(ProgrammeError::EmptyId);
        }
        if self.budget <= Money::ZERO {
            return Err(ProgrammeError::Budget(self.budget));
        }
        if self.cap_per_tenant <= Money::ZERO {
            return Err(ProgrammeError::Cap(self.cap_per_tenant));
        }
        if self.valid_from >= self.valid_until {
            return Err(ProgrammeError::Window {
                from: self.valid_from,
                until: self.valid_until,
            });
        }
        let rate = |what: String, bp: u32| {
            if bp > BP {
                Err(ProgrammeError::Rate { what, bp })
            } else {
                Ok(())
            }
        };
        rate("base rate".into(), self.base_rate_bp)?;
        if let Some(bp) = self.domestic_rate_bp {
            rate("domestic-chip rate".into(), bp)?;
        }
        for (i, r) in self.category_rates.iter().enumerate() {
            rate(format!("rate for {}", r.category.as_str()), r.rate_bp)?;
            if self.category_rates[..i]
                .iter()
                .any(|o| o.category == r.category)
            {
                return Err(ProgrammeError::DuplicateCategoryRate(r.category.as_str()));
            }
        }
        if self.eligible.is_empty() {
            return Err(ProgrammeError::NoEligibleCategory);
        }
        Ok(())
    }

    /// Whether usage ending at `at` falls in the validity window `[valid_from, valid_until)`.
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.valid_from <= at && at < self.valid_until
    }

    /// Whether tenants of this category may be granted and subsidised.
    pub fn admits(&self, category: TenantCategory) -> bool {
        self.eligible.contains(&category)
    }

    /// The rate for a tenant category on a domestic or foreign chip: the category's rate (else
    /// the base rate), raised to the domestic-chip rate when the chip is domestic and that is
    /// higher.
    pub fn rate_for(&self, category: TenantCategory, domestic: bool) -> u32 {
        let rate = self
            .category_rates
            .iter()
            .find(|r| r.category == category)
            .map_or(self.base_rate_bp, |r| r.rate_bp);
        match self.domestic_rate_bp {
            Some(d) if domestic => rate.max(d),
            _ => rate,
        }
    }
}

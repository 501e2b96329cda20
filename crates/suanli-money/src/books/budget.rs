//! Monthly budgets: the limit on a tenant's payable, what it has spent, and the check before a
//! submit.

use serde::{Deserialize, Serialize};
use suanli_types::{Money, TenantId};

use crate::books::{Books, Record};
use crate::month::Month;

/// What to do with a tenant's running jobs once its monthly budget is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverBudgetPolicy {
    /// Stop the tenant's running jobs.
    StopRunning,
    /// Let running jobs finish; refuse new ones.
    LetFinish,
}

/// A tenant's monthly spending limit on payable (after vouchers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub tenant: TenantId,
    pub monthly_limit: Money,
    pub at_limit: OverBudgetPolicy,
}

/// A budget that cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("monthly limit must not be negative, got {0} yuan")]
    Negative(Money),
}

/// A submission refused because it would take the tenant over its monthly budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "monthly budget exceeded: limit {limit} yuan, already spent {spent} yuan, this job is quoted at {quoted} yuan"
)]
pub struct BudgetExceeded {
    pub limit: Money,
    pub spent: Money,
    pub quoted: Money,
}

/// How much of a monthly budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetLevel {
    /// Below 80%.
    Ok,
    /// At least 80%.
    Warning,
    /// At least 100%: new jobs are refused, running ones follow the policy.
    Exhausted,
}

/// A tenant's budget in a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub month: Month,
    pub limit: Money,
    pub spent: Money,
    pub level: BudgetLevel,
    pub at_limit: OverBudgetPolicy,
}

impl Books {
    /// Sets a tenant's monthly limit on payable and what happens at 100%.
    pub fn set_budget(
        &mut self,
        tenant: &TenantId,
        monthly_limit: Money,
        at_limit: OverBudgetPolicy,
    ) -> Result<Vec<Record>, BudgetError> {
        if monthly_limit < Money::ZERO {
            return Err(BudgetError::Negative(monthly_limit));
        }
        Ok(self.commit(vec![Record::Budget(Budget {
            tenant: tenant.clone(),
            monthly_limit,
            at_limit,
        })]))
    }

    /// Payable of the tenant's standing lines that ended in `month`.
    pub fn spent(&self, tenant: &TenantId, month: Month) -> Money {
        Money(
            self.spent
                .get(&(tenant.clone(), month))
                .copied()
                .unwrap_or(0),
        )
    }

    /// Refuses a job quoted at `quoted_payable` when the tenant's budget for `month` is used up
    /// or the job would take it over the limit. A tenant without a budget is never refused.
    /// Only billed lines count as spent: the caller adds what running jobs will cost to the
    /// quote if it wants them counted.
    pub fn check_submit(
        &self,
        tenant: &TenantId,
        month: Month,
        quoted_payable: Money,
    ) -> Result<(), BudgetExceeded> {
        let Some(b) = self.budgets.get(tenant) else {
            return Ok(());
        };
        let spent = self.spent(tenant, month);
        if spent >= b.monthly_limit || spent.0 + quoted_payable.0 > b.monthly_limit.0 {
            return Err(BudgetExceeded {
                limit: b.monthly_limit,
                spent,
                quoted: quoted_payable,
            });
        }
        Ok(())
    }

    /// The tenant's budget level in `month`; `None` without a budget.
    pub fn budget_status(&self, tenant: &TenantId, month: Month) -> Option<BudgetStatus> {
        let b = self.budgets.get(tenant)?;
        let spent = self.spent(tenant, month);
        let (s, l) = (i128::from(spent.0), i128::from(b.monthly_limit.0));
        let level = if s >= l {
            BudgetLevel::Exhausted
        } else if s * 10 >= l * 8 {
            BudgetLevel::Warning
        } else {
            BudgetLevel::Ok
        };
        Some(BudgetStatus {
            month,
            limit: b.monthly_limit,
            spent,
            level,
            at_limit: b.at_limit,
        })
    }
}

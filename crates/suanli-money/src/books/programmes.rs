//! Voucher programmes: creating and funding one, granting tenants from it, and expiring it at
//! the end of its window.

use suanli_types::{Money, TenantId, Timestamp};

use crate::Directory;
use crate::books::apply::funding_tx;
use crate::books::{Books, Record, next_id};
use crate::voucher::{Grant, GrantError, Programme, ProgrammeError, ProgrammeId};

impl Books {
    /// Creates a programme and funds its pool with the whole budget.
    pub fn create_programme(
        &mut self,
        programme: Programme,
        at: Timestamp,
    ) -> Result<Vec<Record>, ProgrammeError> {
        programme.validate()?;
        if self.programmes.contains_key(&programme.id) {
            return Err(ProgrammeError::Duplicate(programme.id));
        }
        let tx = funding_tx(self.ledger.next_id(), at, &programme);
        Ok(self.commit(vec![Record::Programme(programme), Record::Transaction(tx)]))
    }

    /// Grants a tenant an amount of a programme. The tenant's grants never exceed the cap, and
    /// all grants never exceed the budget.
    pub fn grant(
        &mut self,
        programme: &ProgrammeId,
        tenant: &TenantId,
        amount: Money,
        at: Timestamp,
        dir: &impl Directory,
    ) -> Result<Vec<Record>, GrantError> {
        self.check_grant(programme, tenant, amount, at)?;
        let p = &self.programmes[programme].def;
        match dir.category(tenant) {
            Some(c) if p.admits(c) => {}
            c => {
                return Err(GrantError::NotEligible {
                    programme: programme.clone(),
                    tenant: tenant.clone(),
                    category: c.map_or("unknown category", |c| c.as_str()).to_string(),
                });
            }
        }
        Ok(self.commit(vec![Record::Grant(Grant {
            id: next_id(self.grants.len()),
            programme: programme.clone(),
            tenant: tenant.clone(),
            amount,
            at,
        })]))
    }

    pub(super) fn check_grant(
        &self,
        programme: &ProgrammeId,
        tenant: &TenantId,
        amount: Money,
        at: Timestamp,
    ) -> Result<(), GrantError> {
        let p = self
            .programmes
            .get(programme)
            .ok_or_else(|| GrantError::UnknownProgramme(programme.clone()))?;
        if amount <= Money::ZERO {
            return Err(GrantError::Amount(amount));
        }
        if p.expired_at.is_some() || at >= p.def.valid_until {
            return Err(GrantError::Ended {
                programme: programme.clone(),
                until: p.def.valid_until,
            });
        }
        let granted = p.draws.get(tenant).map_or(Money::ZERO, |d| d.granted);
        if granted
            .0
            .checked_add(amount.0)
            .is_none_or(|g| g > p.def.cap_per_tenant.0)
        {
            return Err(GrantError::OverCap {
                tenant: tenant.clone(),
                amount,
                granted,
                cap: p.def.cap_per_tenant,
            });
        }
        let unallocated = Money(p.def.budget.0 - p.granted.0);
        if amount > unallocated {
            return Err(GrantError::OverBudget {
                programme: programme.clone(),
                amount,
                unallocated,
            });
        }
        Ok(())
    }

    /// Ends every programme whose window closed by `now`: marks it expired (its tenants'
    /// balances lapse) and returns what is left in its pool to the platform. Also sweeps an
    /// expired pool that a later correction refilled.
    pub fn expire_due(&mut self, now: Timestamp) -> Vec<Record> {
        let due: Vec<ProgrammeId> = self
            .programmes
            .values()
            .filter(|p| p.def.valid_until <= now)
            .map(|p| p.def.id.clone())
            .collect();
        let mut out = Vec::new();
        for id in due {
            if self.programmes[&id].expired_at.is_none() {
                out.extend(self.commit(vec![Record::Expired {
                    programme: id.clone(),
                    at: now,
                }]));
            }
            if let Some(tx) = self.sweep_tx(self.ledger.next_id(), now, &id) {
                out.extend(self.commit(vec![Record::Transaction(tx)]));
            }
        }
        out
    }
}

//! Grants: the owner of a restricted or sensitive dataset lets another tenant compute on it,
//! until an expiry or a revocation. Grants are kept, never rewritten: a new grant is a new row,
//! a revocation stamps the grants in force.

use serde::{Deserialize, Serialize};
use suanli_types::{TenantId, Timestamp};

use crate::dataset::{Classification, DatasetSpec};

/// A tenant's grant of a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    /// The dataset's name.
    pub dataset: String,
    /// The tenant granted.
    pub tenant: TenantId,
    /// Who granted it (a tenant admin of the owner), as a label.
    pub granted_by: String,
    pub granted_at: Timestamp,
    /// When it ends by itself; none: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl Grant {
    /// Whether it lets its tenant in at `now`: given by then, neither revoked nor expired.
    pub fn in_force(&self, now: Timestamp) -> bool {
        self.granted_at <= now
            && self.revoked_at.is_none_or(|at| at > now)
            && self.expires_at.is_none_or(|at| at > now)
    }
}

/// Why a tenant may not use a dataset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("dataset {dataset} is {classification}: tenant {tenant} has no grant for it")]
    NoGrant {
        dataset: String,
        classification: Classification,
        tenant: TenantId,
    },
    #[error("tenant {tenant}'s grant for dataset {dataset} expired at {at}")]
    Expired {
        dataset: String,
        tenant: TenantId,
        at: Timestamp,
    },
    #[error("tenant {tenant}'s grant for dataset {dataset} was revoked at {at}")]
    Revoked {
        dataset: String,
        tenant: TenantId,
        at: Timestamp,
    },
}

/// Whether `tenant` may compute on the dataset `spec` of `owner` at `now`. The owner and public
/// data need no grant; restricted and sensitive data need a grant of `tenant` for the dataset
/// that is neither revoked nor expired at `now`. The newest grant given by `now` counts (a
/// grant renewed after a revocation lets the tenant in again; a revoked newest grant keeps it
/// out whatever older ones say). `grants` may hold grants of other datasets and tenants.
pub fn check_access(
    owner: &TenantId,
    spec: &DatasetSpec,
    tenant: &TenantId,
    grants: &[Grant],
    now: Timestamp,
) -> Result<(), AccessError> {
    if tenant == owner || !spec.classification.is_protected() {
        return Ok(());
    }
    let newest = grants
        .iter()
        .filter(|g| g.dataset == spec.name && &g.tenant == tenant && g.granted_at <= now)
        .max_by_key(|g| g.granted_at);
    let Some(g) = newest else {
        return Err(AccessError::NoGrant {
            dataset: spec.name.clone(),
            classification: spec.classification,
            tenant: tenant.clone(),
        });
    };
    if let Some(at) = g.revoked_at.filter(|at| *at <= now) {
        return Err(AccessError::Revoked {
            dataset: spec.name.clone(),
            tenant: tenant.clone(),
            at,
        });
    }
    if let Some(at) = g.expires_at.filter(|at| *at <= now) {
        return Err(AccessError::Expired {
            dataset: spec.name.clone(),
            tenant: tenant.clone(),
            at,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{DataPolicy, DatasetSpec};
    use suanli_types::CenterId;

    fn spec(classification: Classification) -> DatasetSpec {
        DatasetSpec {
            name: "clinics".into(),
            homes: vec![CenterId::from("c1")],
            path: "/data/clinics".into(),
            size_bytes: 1,
            classification,
            description: String::new(),
            policy: DataPolicy::default(),
        }
    }

    fn grant(tenant: &str, at: i64, expires: Option<i64>, revoked: Option<i64>) -> Grant {
        Grant {
            dataset: "clinics".into(),
            tenant: TenantId::from(tenant),
            granted_by: "owner-admin (#2)".into(),
            granted_at: Timestamp(at),
            expires_at: expires.map(Timestamp),
            revoked_at: revoked.map(Timestamp),
        }
    }

    const OWNER: &str = "hospital";

    fn check(
        c: Classification,
        tenant: &str,
        grants: &[Grant],
        now: i64,
    ) -> Result<(), AccessError> {
        check_access(
            &TenantId::from(OWNER),
            &spec(c),
            &TenantId::from(tenant),
            grants,
            Timestamp(now),
        )
    }

    #[test]
    fn the_owner_and_public_data_need_no_grant() {
        for c in Classification::ALL {
            check(c, OWNER, &[], 10).unwrap();
        }
        check(Classification::Public, "sme", &[], 10).unwrap();
    }

    #[test]
    fn protected_data_needs_a_grant_of_that_tenant_and_dataset() {
        for c in [Classification::Restricted, Classification::Sensitive] {
            let e = check(c, "sme", &[], 10).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("dataset clinics is {c}: tenant sme has no grant for it")
            );
            // Another tenant's grant, another dataset's grant, a grant not yet given: none.
            let mut other_data = grant("sme", 1, None, None);
            other_data.dataset = "census".into();
            let others = [
                grant("lab", 1, None, None),
                other_data,
                grant("sme", 11, None, None),
            ];
            assert!(matches!(
                check(c, "sme", &others, 10),
                Err(AccessError::NoGrant { .. })
            ));
            check(c, "sme", &[grant("sme", 1, None, None)], 10).unwrap();
            check(c, "sme", &[grant("sme", 10, Some(11), None)], 10).unwrap();
        }
    }

    #[test]
    fn an_expired_grant_lets_nobody_in() {
        let g = [grant("sme", 1, Some(10), None)];
        check(Classification::Restricted, "sme", &g, 9).unwrap();
        let e = check(Classification::Restricted, "sme", &g, 10).unwrap_err();
        assert_eq!(
            e,
            AccessError::Expired {
                dataset: "clinics".into(),
                tenant: TenantId::from("sme"),
                at: Timestamp(10)
            }
        );
        assert_eq!(
            e.to_string(),
            "tenant sme's grant for dataset clinics expired at 1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn a_revoked_grant_lets_nobody_in() {
        let g = [grant("sme", 1, Some(10_000), Some(5_000))];
        check(Classification::Sensitive, "sme", &g, 4_999).unwrap();
        let e = check(Classification::Sensitive, "sme", &g, 5_000).unwrap_err();
        assert!(matches!(
            e,
            AccessError::Revoked {
                at: Timestamp(5_000),
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "tenant sme's grant for dataset clinics was revoked at 1970-01-01T00:00:05Z"
        );
        // Revoked and expired: the revocation is named.
        assert!(matches!(
            check(Classification::Sensitive, "sme", &g, 20_000),
            Err(AccessError::Revoked { .. })
        ));
    }

    #[test]
    fn the_newest_grant_counts() {
        // Revoked, then granted again: in.
        let renewed = [grant("sme", 1, None, Some(5)), grant("sme", 7, None, None)];
        check(Classification::Restricted, "sme", &renewed, 6).unwrap_err();
        check(Classification::Restricted, "sme", &renewed, 8).unwrap();
        // Order in the slice does not matter.
        let reversed = [renewed[1].clone(), renewed[0].clone()];
        check(Classification::Restricted, "sme", &reversed, 8).unwrap();
        // An older open grant does not outweigh a newer expired one.
        let shortened = [grant("sme", 1, None, None), grant("sme", 7, Some(9), None)];
        check(Classification::Restricted, "sme", &shortened, 8).unwrap();
        assert!(matches!(
            check(Classification::Restricted, "sme", &shortened, 9),
            Err(AccessError::Expired {
                at: Timestamp(9),
                ..
            })
        ));
        assert!(shortened[0].in_force(Timestamp(9)) && !shortened[1].in_force(Timestamp(9)));
    }
}

//! A tenant's share of the network as the operator sets it: a fair-share weight and quotas per
//! chip family. Pure data: the hub validates and applies it, the store keeps it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A tenant's fair-share weight and quotas (weight 1 and no quotas until the operator sets them).
/// (The serde form is the API's `TenantPolicyView`, which stores kept before.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharePolicy {
    /// A tenant of weight 2 is entitled to twice the share of one of weight 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Chip family (vendor: nvidia, huawei, ...) -> quota. No entry: no limit.
    #[serde(default)]
    pub quotas: BTreeMap<String, CardQuota>,
    /// May submit public-service work although its category is not public-service (set by
    /// the operator).
    #[serde(default)]
    pub public_service: bool,
}

impl Default for SharePolicy {
    fn default() -> Self {
        SharePolicy {
            weight: one(),
            quotas: BTreeMap::new(),
            public_service: false,
        }
    }
}

fn one() -> u32 {
    1
}

/// A tenant's quota on one chip family, in cards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardQuota {
    /// Cards the tenant is guaranteed (its work within them is never preempted as borrowed).
    pub nominal: u32,
    /// Cards it may use beyond the nominal quota while they are idle; such work is preemptible.
    #[serde(default)]
    pub borrow_limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_their_defaults() {
        let p: SharePolicy =
            serde_json::from_str(r#"{"quotas":{"nvidia":{"nominal":4}}}"#).unwrap();
        assert_eq!(p.weight, 1);
        assert_eq!(
            p.quotas["nvidia"],
            CardQuota {
                nominal: 4,
                borrow_limit: 0
            }
        );
        assert_eq!(
            serde_json::from_str::<SharePolicy>("{}").unwrap(),
            SharePolicy::default()
        );
    }
}

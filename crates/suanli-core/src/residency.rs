//! Data residency: where each registered dataset resides. A job that reads datasets may run
//! only at a center that holds every one of them (the filters' `Reason::DataElsewhere`); a
//! dataset the core was not told of resides nowhere.

use std::collections::BTreeMap;

use suanli_types::CenterId;

use crate::Core;

/// The centers holding each dataset, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Homes(BTreeMap<String, Vec<CenterId>>);

impl Homes {
    /// Whether `dataset` resides at `center`.
    pub fn holds(&self, dataset: &str, center: &CenterId) -> bool {
        self.0.get(dataset).is_some_and(|h| h.contains(center))
    }

    /// The centers holding `dataset` (none if unknown).
    pub fn of(&self, dataset: &str) -> &[CenterId] {
        self.0.get(dataset).map_or(&[], Vec::as_slice)
    }

    pub fn all(&self) -> &BTreeMap<String, Vec<CenterId>> {
        &self.0
    }
}

impl Core {
    /// Sets the centers that hold `dataset`, replacing what was set (none: its jobs run
    /// nowhere). Whether that changed anything.
    pub fn set_dataset_homes(&mut self, dataset: &str, mut homes: Vec<CenterId>) -> bool {
        homes.sort();
        homes.dedup();
        if self.homes.0.get(dataset) == Some(&homes) {
            return false;
        }
        self.carry = None;
        self.homes.0.insert(dataset.to_string(), homes);
        true
    }

    /// Where each dataset resides, as set.
    pub fn dataset_homes(&self) -> &Homes {
        &self.homes
    }
}

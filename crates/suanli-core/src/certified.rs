//! Jobs that name a model: where each model is certified ([`Certified`]: a chip SKU, stack and
//! stack version), and the pools that follows for each, which the filters check
//! ([`Need::allowed`](crate::filter::Need)).

use std::collections::BTreeMap;

use suanli_types::{ChipCatalog, JobSpec};

use crate::filter::Need;
use crate::{Core, queue};

/// Where a model is certified: a chip SKU with a software stack at a version. A job that names
/// the model is placed only on pools of that SKU at centers that run that version of the stack.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Certified {
    pub sku: String,
    pub stack: String,
    pub version: String,
}

impl Core {
    /// Sets where `model` (`name@revision`) is certified, replacing what was set; an empty list
    /// places its jobs nowhere.
    pub fn set_certified(&mut self, model: &str, mut certified: Vec<Certified>) {
        certified.sort();
        certified.dedup();
        if self.certified.get(model) == Some(&certified) {
            return;
        }
        self.carry = None;
        self.certified.insert(model.to_string(), certified);
        self.refresh_allowed();
    }

    /// Where each model is certified, as set.
    pub fn certified(&self) -> &BTreeMap<String, Vec<Certified>> {
        &self.certified
    }

    /// The pools each certified model may run on, from the centers as registered now.
    pub(crate) fn refresh_allowed(&mut self) {
        let catalog = ChipCatalog::builtin();
        self.allowed = self
            .certified
            .iter()
            .map(|(model, certs)| {
                let mut pools = queue::FxSet::default();
                for c in self.fleet.centers.values() {
                    for p in &c.pools {
                        let Some(chip) = p.chip.map(|i| &catalog.all()[i]) else {
                            continue;
                        };
                        let version = c.stacks.get(&chip.stack);
                        if certs.iter().any(|k| {
                            k.sku == p.sku && k.stack == chip.stack && Some(&k.version) == version
                        }) {
                            pools.insert(p.uid);
                        }
                    }
                }
                (model.clone(), pools)
            })
            .collect();
    }

    /// A job's requirements for the filters, with the pools its model may use.
    pub(crate) fn need<'a>(&'a self, spec: &'a JobSpec, mask: u64) -> Need<'a> {
        let mut need = Need::with_mask(spec, mask);
        need.allowed = spec
            .model
            .as_deref()
            .map(|m| self.allowed.get(m).unwrap_or(&self.no_pools));
        need
    }
}

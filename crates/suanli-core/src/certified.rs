//! Jobs that name a model: where each model is certified ([`Certified`]: a chip SKU, stack and
//! stack version, with the measured speed), and the pools that follow for each ([`Allowed`]),
//! which the filters check and the scoring reads run times from.

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
    /// The certified throughput per card against the model's reference, in thousandths (2000:
    /// twice the reference chip's speed); absent when either is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_milli: Option<u64>,
}

/// The pools a model may run on now, with their speeds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Allowed {
    /// Pool uid -> its speed in thousandths, when known.
    pub pools: queue::FxMap<u32, Option<u64>>,
    /// The slowest known speed among them: a model job's wall time is taken as its run time
    /// there, and a faster pool's run time is shorter by the ratio.
    pub slowest: Option<u64>,
}

impl Allowed {
    /// The expected run time at pool `uid` of a job with a wall-time limit of `walltime`
    /// seconds: shorter than the limit by the ratio of the slowest pool's speed to this one's;
    /// `None` where the speeds are not known.
    pub fn run_secs(&self, uid: u32, walltime: u64) -> Option<u64> {
        let slowest = self.slowest?;
        let speed = (*self.pools.get(&uid)?)?.max(1);
        let secs = (u128::from(walltime) * u128::from(slowest)).div_ceil(u128::from(speed));
        Some(u64::try_from(secs).unwrap_or(walltime).clamp(1, walltime))
    }
}

impl Core {
    /// Sets where `model` (`name@revision`) is certified, replacing what was set; an empty list
    /// places its jobs nowhere. Whether that changed anything.
    pub fn set_certified(&mut self, model: &str, mut certified: Vec<Certified>) -> bool {
        certified.sort();
        certified.dedup();
        if self.certified.get(model) == Some(&certified) {
            return false;
        }
        self.carry = None;
        self.certified.insert(model.to_string(), certified);
        self.refresh_allowed();
        true
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
                let mut allowed = Allowed::default();
                for c in self.fleet.centers.values() {
                    for p in &c.pools {
                        let Some(chip) = p.chip.map(|i| &catalog.all()[i]) else {
                            continue;
                        };
                        let version = c.stacks.get(&chip.stack);
                        let matching = certs.iter().filter(|k| {
                            k.sku == p.sku && k.stack == chip.stack && Some(&k.version) == version
                        });
                        // Of several records for one chip and version, the fastest measured.
                        if let Some(speed) = matching.map(|k| k.speed_milli).reduce(Option::max) {
                            allowed.pools.insert(p.uid, speed);
                        }
                    }
                }
                allowed.slowest = allowed.pools.values().flatten().copied().min();
                (model.clone(), allowed)
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
        need.homes = Some(&self.homes);
        need
    }
}

//! The scheduler core through its public API, by subject. Every pass of these tests is followed
//! by the core's self-check (`suanli_testkit::pass`).

mod allocations;
mod baselines;
mod feasibility;
mod models;
mod placement;
mod policy;
mod random;
mod replay;
mod residency;

use suanli_core::{Core, Policy};
use suanli_types::CenterSpec;

/// A core under the cheapest policy (its placements are easy to compute by hand) with these
/// centers, all online.
fn cheapest(centers: &[CenterSpec]) -> Core {
    suanli_testkit::core_of(Policy::Cheapest, centers)
}

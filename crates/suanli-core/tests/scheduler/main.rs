//! The scheduler core through its public API, by subject. Every pass of these tests is followed
//! by the core's self-check (`suanli_testkit::pass`).

mod allocations;
mod feasibility;
mod placement;
mod policy;
mod random;
mod replay;

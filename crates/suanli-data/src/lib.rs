//! Data that stays home (issue #16), pure: no I/O, no clock.
//!
//! - [`dataset`]: the dataset record ([`DatasetSpec`]): where it resides, how it is
//!   classified, its policy (network egress, allowed commands, output rules), and its
//!   validation with field paths; the variable a job finds it at ([`env_name`]).
//! - [`access`]: grants of a dataset to a tenant, and who may use it now ([`check_access`]).
//! - [`check`]: the automatic output rules run on a file that asks to leave ([`check_file`]),
//!   and the rules of several datasets merged strictest-wins ([`merged_rules`]).
//! - [`airlock`]: a request to release a job's quarantined outputs, its checks, its reviews by
//!   the data owner and its history (after Azure TRE's airlock).
//!
//! The hub keeps the records in its store and calls these functions with the time and what it
//! read; whatever decides who may see data, or what may leave, lives here.

pub mod access;
pub mod airlock;
pub mod check;
pub mod dataset;

pub use access::{AccessError, Grant, check_access};
pub use airlock::{
    AIRLOCK, AirlockError, HistoryEntry, MAX_JUSTIFICATION, MAX_REASON, MIN_JUSTIFICATION,
    ReleaseFile, ReleaseRequest, ReleaseState, Requester, Review, Reviewer, Verdict, request,
};
pub use check::{Breach, NO_TYPE_ALLOWED, check_file, merged_rules};
pub use dataset::{
    Classification, DataPolicy, DatasetSpec, OutputRules, env_name, paths_overlap, strictest,
};

#[cfg(test)]
mod tests;

//! The model library and adaptation certification (docs/MODELS.md), pure: no I/O, no clock.
//!
//! - [`model`]: the model record ([`ModelSpec`]), its validation with field paths, and the
//!   benchmark job a certification runs.
//! - [`result`]: reading a benchmark's result line, bounded and strict.
//! - [`cert`]: certification records, their statuses per dimension, the review, staleness,
//!   and the adaptation matrix.
//!
//! The hub keeps the records in its store and calls these functions with the time and what it
//! read; whatever decides what a record says lives here.

pub mod cert;
pub mod model;
pub mod result;

pub use cert::{
    Cell, CertError, CertRequest, CertState, Certification, JobEnd, Outcome, Review, Status,
    Statuses, Verdict, judge, matrix, sha256_hex,
};
pub use model::{LAUNCH_FILE, ModelSpec, PrecisionRule, StackLaunch, Visibility};
pub use result::{BenchResult, MAX_RESULT_LINE, ResultError, parse_result};

#[cfg(test)]
mod tests;

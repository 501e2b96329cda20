//! The pages, one module per area: the network (`network`), jobs (`jobs`), submitting
//! (`submit`), bills (`money`), and the operator's and supervisor's desks (`operator`).

pub mod jobs;
pub mod money;
pub mod network;
pub mod operator;
pub mod submit;

use axum::response::Response;

use crate::layout::{self, Failure};
use crate::session::Ctx;

/// Unknown paths.
pub async fn not_found(ctx: Ctx) -> Response {
    layout::failure_page(&ctx, Failure::NotFound)
}

//! The pages, one module per area: the network (`network`), jobs (`jobs`), submitting
//! (`submit`), bills (`money`), the operator's centers (`operator`) and desk (`desk`: queue,
//! tenants, prices, programmes), the supervisor's desk (`supervisor`: audit log, risk flags),
//! the statistics (`statistics`: indicators, releases) and the charts they draw (`chart`).

pub mod chart;
pub mod desk;
pub mod jobs;
pub mod money;
pub mod network;
pub mod operator;
pub mod statistics;
pub mod submit;
pub mod supervisor;

use axum::response::Response;

use crate::layout::{self, Failure};
use crate::session::Ctx;

/// Unknown paths.
pub async fn not_found(ctx: Ctx) -> Response {
    layout::failure_page(&ctx, Failure::NotFound)
}

//! The trace-driven simulator of suanli: replays a workload trace through the hub's job lifecycle
//! ([`suanli_lifecycle::Lifecycle`], with the real scheduler core and books) in virtual time, and
//! reports job completion times, queueing, cost, utilisation, preemptions and the work lost to
//! center failures and drains per policy.
//!
//! It does no I/O but reading the trace and topology files (and the CLI writing the report), and
//! reads the real clock only to measure itself. The same trace, seed and flags give the same
//! report (except the wall-clock fields under `wall`) and the same decision hash.
//!
//! Pipeline: [`trace::read_trace`] -> [`mapping::map_trace`] -> [`engine::run_with_faults`]
//! (center failures and drains: [`faults`]) -> [`report::Report::build`]. [`simulate`] does the
//! last two.
//!
//! # Trace formats
//!
//! - **Philly** CSV (`timestamp,duration,num_gpus,gpu_time,cluster`): submit time
//!   `YYYY-MM-DD HH:MM:SS` (UTC, rows in any order), duration in seconds (decimal), GPUs; the
//!   cluster id is the tenant; `gpu_time` is ignored.
//! - **Tiresias** CSV (`job_id,num_gpu,submit_time,iterations,model_name,duration,interval`):
//!   submit time and duration in seconds; tenant `default`.
//! - **Native** JSONL: one JSON object per line (blank lines and lines starting with `#` are
//!   skipped; unknown keys are errors):
//!
//!   ```json
//!   {"submit": 12.5, "duration": 3600, "cards_per_node": 8, "nodes": 2, "tenant": "lab-a",
//!    "priority": "standard", "chips": {"min_memory_gb": 64}, "stack": "any",
//!    "walltime": 7200, "max_price_per_card_hour": "8.00"}
//!   ```
//!
//!   | key | meaning | if missing |
//!   |---|---|---|
//!   | `submit` | seconds from the trace's zero (decimal) | required |
//!   | `duration` | run time in seconds on any chip (0 is read as 1 s) | required |
//!   | `cards_per_node`, `nodes` | the gang | 1 |
//!   | `gpus` | instead of the two above: a GPU count shaped like trace GPUs | - |
//!   | `tenant` | tenant id | `default` |
//!   | `priority` | `public-service`, `standard` or `spot` | the mapping's seeded draw |
//!   | `chips`, `stack` | a `ChipRequest` (`skus`, `vendor`, `family`, `min_fp16_tflops`, `min_memory_gb`) and a stack (`cuda`, `cann`, ..., `any`); either one given fixes both (the other defaults to any) | both: the mapping's seeded draw |
//!   | `walltime` | limit in whole seconds, 1 s to 30 days | the mapping's estimate |
//!   | `max_price_per_card_hour` | yuan, decimal string | no cap |
//!
//!   `suanli sim gen` writes this format with every key given (see [`generator`]).
//!
//! # Mapping (see [`mapping`])
//!
//! GPUs `g` become one node of `g` cards if `g <= 8`, else `ceil(g / 8)` nodes of 8 cards. Per
//! job, seeded: 50% accept any chip, 35% need CUDA (stack `cuda`), 15% need at least 64 GB per
//! card; 5% public-service, 80% standard, 15% spot; walltime = duration x a factor uniform in
//! `[1.2, 3.0]`, rounded up to a whole minute, capped at 30 days. A job's run time is its trace
//! duration on whatever chip it gets, or with a speed model ([`speeds`], `--speeds`) that
//! duration on the reference chip divided by the chip's speed. Times are
//! shifted so the first submit is at 0, and inter-arrival times are divided by the load factor.

mod csv;
pub mod engine;
pub mod faults;
pub mod generator;
pub mod indicators;
pub mod mapping;
pub mod progress;
pub mod report;
pub mod rng;
pub mod speeds;
pub mod topology;
pub mod trace;

#[cfg(test)]
mod tests;

pub use engine::{RunOutput, SimError};
pub use faults::{Fault, FaultKind};
pub use mapping::{MappingConfig, SimJob};
pub use progress::Progress;
pub use report::Report;
pub use suanli_core::{CoreConfig, Policy, Weights};
pub use trace::{InputError, Trace, TraceFormat};

use suanli_types::CenterSpec;

/// Runs `jobs` on `centers` with `policy` and `faults` and builds the report.
pub fn simulate(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    policy: Policy,
    faults: &[Fault],
    progress: &Progress,
) -> Result<Report, SimError> {
    simulate_with(
        jobs,
        centers,
        CoreConfig::with_policy(policy),
        faults,
        progress,
    )
}

/// [`simulate`] with any scheduler settings.
pub fn simulate_with(
    jobs: &[SimJob],
    centers: &[CenterSpec],
    config: CoreConfig,
    faults: &[Fault],
    progress: &Progress,
) -> Result<Report, SimError> {
    let out = engine::run_with_config(jobs, centers, config, faults, progress)?;
    Ok(Report::build(jobs, &out))
}

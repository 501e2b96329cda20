//! A seeded generator of synthetic traces in the native format.
//!
//! Distributions (each job draws from its own stream, so job `i` is the same whatever `--jobs`):
//! - arrivals: a Poisson process, exponential inter-arrival times with the given mean, or
//!   bursts of `burst` jobs at one instant with exponential gaps of `burst` times the mean;
//! - duration: log-normal, by default with a median of 30 minutes and sigma 1.6 (mean about
//!   3.6 h), clamped to 10 s .. 30 days, whole seconds;
//! - cards: by default 1, 2, 4, 8, 16, 32 with weights 55, 12, 12, 12, 6, 3 %, shaped like
//!   trace GPUs (up to 8 on one node, else whole 8-card nodes); [`Mix`] has the other shapes;
//! - tenant: `tenant-1` .. `tenant-T`, Zipf-like (weight 1/k);
//! - chip need, priority and walltime: the mapping's seeded draws (see [`crate::mapping`]),
//!   written out explicitly, so reading the file back gives these jobs exactly.

use std::io::{self, Write};

use serde::Serialize;
use suanli_types::spec::MAX_WALLTIME_SECS;
use suanli_types::{ChipRequest, Money, PriorityClass};

use crate::mapping::{MappingConfig, map_job, shape_for_gpus};
use crate::rng::SplitMix64;
use crate::trace::{Shape, TraceJob};

const STREAM_GEN: u64 = 2;

/// The shape of the work: job sizes and durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mix {
    /// Cards 1, 2, 4, 8, 16, 32 with weights 55, 12, 12, 12, 6, 3 %; durations log-normal,
    /// median 30 min, sigma 1.6.
    #[default]
    Default,
    /// Many small jobs: 1 card (85%) or 2 (15%); median 5 min, sigma 1.2.
    Small,
    /// Few huge gangs: 16, 32, 64, 128 cards with weights 35, 30, 20, 15 %; median 4 h, sigma
    /// 1.0.
    Gangs,
}

impl Mix {
    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Default => "default",
            Mix::Small => "small",
            Mix::Gangs => "gangs",
        }
    }

    /// (cards, weights, median duration in seconds, sigma).
    fn table(self) -> (&'static [u32], &'static [f64], f64, f64) {
        match self {
            Mix::Default => (
                &[1, 2, 4, 8, 16, 32],
                &[55.0, 12.0, 12.0, 12.0, 6.0, 3.0],
                1800.0,
                1.6,
            ),
            Mix::Small => (&[1, 2], &[85.0, 15.0], 300.0, 1.2),
            Mix::Gangs => (
                &[16, 32, 64, 128],
                &[35.0, 30.0, 20.0, 15.0],
                4.0 * 3600.0,
                1.0,
            ),
        }
    }
}

impl std::str::FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Mix::Default, Mix::Small, Mix::Gangs]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown mix {s:?}; expected default, small or gangs"))
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub jobs: usize,
    pub seed: u64,
    pub tenants: u32,
    pub mean_interarrival_secs: f64,
    /// Job sizes and durations.
    pub mix: Mix,
    /// Jobs arrive in bursts of this many at one instant (1: a plain Poisson process); the mean
    /// arrival rate stays the same.
    pub burst: usize,
    /// Shares of chip needs and priorities (its seed is replaced by `seed`).
    pub mapping: MappingConfig,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            jobs: 1000,
            seed: 1,
            tenants: 8,
            mean_interarrival_secs: 60.0,
            mix: Mix::Default,
            burst: 1,
            mapping: MappingConfig::default(),
        }
    }
}

/// Generates the jobs, every field given, sorted by submit time; `line` is the line each job
/// gets in [`write_native`]'s output.
pub fn generate(cfg: &GenConfig) -> Vec<TraceJob> {
    let mapping = MappingConfig {
        seed: cfg.seed,
        ..cfg.mapping.clone()
    };
    let tenant_weights: Vec<f64> = (1..=cfg.tenants.max(1)).map(|k| 1.0 / k as f64).collect();
    let mut submit_ms = 0i64;
    let mut out = Vec::with_capacity(cfg.jobs);
    for i in 0..cfg.jobs {
        let mut rng = SplitMix64::for_item(cfg.seed, STREAM_GEN, i as u64);
        let burst = cfg.burst.max(1);
        let gap = rng.exponential(cfg.mean_interarrival_secs.max(0.0) * burst as f64);
        if i > 0 && i % burst == 0 {
            submit_ms += (gap * 1000.0).round() as i64;
        }
        let (cards, weights, median, sigma) = cfg.mix.table();
        let duration_secs = (median.ln() + sigma * rng.normal())
            .exp()
            .clamp(10.0, MAX_WALLTIME_SECS as f64)
            .round();
        let gpus = cards[rng.weighted(weights)];
        let tenant = format!("tenant-{}", rng.weighted(&tenant_weights) + 1);
        let raw = TraceJob {
            line: i + 1,
            submit_ms,
            duration_ms: duration_secs as i64 * 1000,
            shape: Shape::Gpus(gpus),
            tenant,
            priority: None,
            chips: None,
            walltime_secs: None,
            max_price: None,
        };
        let mapped = map_job(i, &raw, submit_ms, &mapping);
        let (cards_per_node, nodes) = shape_for_gpus(gpus);
        out.push(TraceJob {
            shape: Shape::Gang {
                cards_per_node,
                nodes,
            },
            priority: Some(mapped.spec.priority),
            chips: Some((mapped.spec.chips.clone(), mapped.spec.stack.clone())),
            walltime_secs: Some(mapped.spec.walltime),
            ..raw
        });
    }
    out
}

#[derive(Serialize)]
struct NativeOut<'a> {
    submit: f64,
    duration: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpus: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cards_per_node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<u32>,
    tenant: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<PriorityClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chips: Option<&'a ChipRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    walltime: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_price_per_card_hour: Option<Money>,
}

/// Writes jobs as native JSONL, one line each (no comments, so `line` = position + 1).
pub fn write_native(jobs: &[TraceJob], mut w: impl Write) -> io::Result<()> {
    for j in jobs {
        let (gpus, cards_per_node, nodes) = match j.shape {
            Shape::Gpus(g) => (Some(g), None, None),
            Shape::Gang {
                cards_per_node,
                nodes,
            } => (None, Some(cards_per_node), Some(nodes)),
        };
        let line = NativeOut {
            submit: j.submit_ms as f64 / 1000.0,
            duration: j.duration_ms as f64 / 1000.0,
            gpus,
            cards_per_node,
            nodes,
            tenant: &j.tenant,
            priority: j.priority,
            chips: j.chips.as_ref().map(|(c, _)| c),
            stack: j.chips.as_ref().map(|(_, s)| s.as_str()),
            walltime: j.walltime_secs,
            max_price_per_card_hour: j.max_price,
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::ChipNeed;
    use crate::trace::{TraceFormat, parse_trace};

    #[test]
    fn generated_trace_round_trips_through_the_reader() {
        let cfg = GenConfig {
            jobs: 500,
            seed: 9,
            tenants: 4,
            mean_interarrival_secs: 30.0,
            ..GenConfig::default()
        };
        let jobs = generate(&cfg);
        let mut buf = Vec::new();
        write_native(&jobs, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let back = parse_trace("gen.jsonl", &text, None).unwrap();
        assert_eq!(back.format, TraceFormat::Native);
        assert_eq!(back.jobs, jobs);
        // Mapping the read-back trace keeps every generated field.
        let mapped = crate::mapping::map_trace(&back.jobs, &MappingConfig::default(), 1.0, None);
        assert!(mapped.iter().all(|j| j.need == ChipNeed::Given));
        assert_eq!(mapped[7].spec.walltime, jobs[7].walltime_secs.unwrap());
        // Same seed, same trace; another seed differs.
        assert_eq!(generate(&cfg), jobs);
        assert_ne!(
            generate(&GenConfig {
                seed: 10,
                ..cfg.clone()
            }),
            jobs
        );
        // Sanity of the distributions.
        let tenants: std::collections::BTreeSet<&str> =
            jobs.iter().map(|j| j.tenant.as_str()).collect();
        assert_eq!(tenants.len(), 4);
        let mean_gap = jobs.last().unwrap().submit_ms as f64 / 499.0 / 1000.0;
        assert!((20.0..40.0).contains(&mean_gap), "{mean_gap}");
        let mut d: Vec<i64> = jobs.iter().map(|j| j.duration_ms).collect();
        d.sort_unstable();
        let median = d[250] as f64 / 1000.0;
        assert!((1000.0..3200.0).contains(&median), "{median}");
    }

    #[test]
    fn mixes_and_bursts_shape_the_trace() {
        let base = GenConfig {
            jobs: 600,
            seed: 3,
            mean_interarrival_secs: 10.0,
            ..GenConfig::default()
        };
        let cards = |j: &TraceJob| match j.shape {
            Shape::Gang {
                cards_per_node,
                nodes,
            } => cards_per_node * nodes,
            Shape::Gpus(g) => g,
        };
        let small = generate(&GenConfig {
            mix: Mix::Small,
            ..base.clone()
        });
        assert!(small.iter().all(|j| cards(j) <= 2));
        let gangs = generate(&GenConfig {
            mix: Mix::Gangs,
            ..base.clone()
        });
        assert!(gangs.iter().all(|j| cards(j) >= 16));
        let median = |v: &[TraceJob]| {
            let mut d: Vec<i64> = v.iter().map(|j| j.duration_ms).collect();
            d.sort_unstable();
            d[d.len() / 2]
        };
        assert!(median(&small) < median(&gangs));
        // Bursts of 20: 30 distinct submit times, and about the same span as without bursts.
        let bursty = generate(&GenConfig {
            burst: 20,
            ..base.clone()
        });
        let times: std::collections::BTreeSet<i64> = bursty.iter().map(|j| j.submit_ms).collect();
        assert_eq!(times.len(), 30);
        let span = bursty.last().unwrap().submit_ms as f64 / 1000.0;
        assert!((3000.0..9000.0).contains(&span), "{span}");
        assert_eq!(
            generate(&base),
            generate(&GenConfig {
                burst: 1,
                mix: Mix::Default,
                ..base.clone()
            })
        );
    }
}

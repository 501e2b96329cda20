//! From trace jobs to job specs: card shape, chip need, priority and walltime (seeded).
//!
//! Each job draws from its own stream ([`SplitMix64::for_item`] keyed by the seed and the job's
//! index in submit order), always three uniform numbers in the same order (chip need, priority,
//! walltime factor), whether or not the trace gives the field. So the same seed maps a job the
//! same way whatever other jobs the trace holds or `--max-jobs` keeps.

use suanli_types::spec::MAX_WALLTIME_SECS;
use suanli_types::{ChipRequest, JobId, JobSpec, PriorityClass, TenantId};

use crate::rng::SplitMix64;
use crate::trace::{Shape, TraceJob};

/// Draw stream of the mapping (the generator uses others).
const STREAM_MAPPING: u64 = 1;

/// The seeded choices of the mapping. Shares are fractions in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MappingConfig {
    pub seed: u64,
    /// Share of jobs that accept any chip (default 0.50).
    pub any_share: f64,
    /// Share of jobs that need CUDA (stack `cuda`; default 0.35). The rest need at least
    /// [`big_memory_gb`](Self::big_memory_gb) per card.
    pub cuda_share: f64,
    /// Memory per card of the rest (default 64 GB).
    pub big_memory_gb: u32,
    /// Share of public-service jobs (default 0.05).
    pub public_share: f64,
    /// Share of spot jobs (default 0.15); the rest are standard.
    pub spot_share: f64,
    /// The walltime estimate is the duration times a factor uniform in this range (default 1.2
    /// to 3.0), rounded up to a whole minute, capped at 30 days.
    pub walltime_factor: (f64, f64),
    /// How users set wall-time limits (default [`WalltimeModel::Factor`]).
    pub walltime_model: WalltimeModel,
}

/// How a job's wall-time limit relates to its true duration. Policies see only the limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WalltimeModel {
    /// The trace's limit if it gives one, else the duration times the seeded factor, rounded up
    /// to a whole minute.
    #[default]
    Factor,
    /// Every job asks for the partition maximum, 30 days (the largest limit the network
    /// accepts): the limits say nothing.
    PartitionMax,
    /// What [`Factor`](Self::Factor) gives, rounded up to the round numbers users pick:
    /// 30 min, 1, 2, 4, 8, 12 h, 1, 2, 3, 7, 14, 30 days.
    Round,
}

/// The round limits of [`WalltimeModel::Round`], in seconds.
pub const ROUND_LIMITS: [u64; 12] = [
    1800,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    3 * 86_400,
    7 * 86_400,
    14 * 86_400,
    MAX_WALLTIME_SECS,
];

impl WalltimeModel {
    pub fn as_str(self) -> &'static str {
        match self {
            WalltimeModel::Factor => "factor",
            WalltimeModel::PartitionMax => "max",
            WalltimeModel::Round => "round",
        }
    }

    /// The limit for a job whose factor model gives `factor_limit` seconds.
    pub fn limit(self, factor_limit: u64) -> u64 {
        match self {
            WalltimeModel::Factor => factor_limit,
            WalltimeModel::PartitionMax => MAX_WALLTIME_SECS,
            WalltimeModel::Round => ROUND_LIMITS
                .into_iter()
                .find(|&r| r >= factor_limit)
                .unwrap_or(MAX_WALLTIME_SECS),
        }
    }
}

impl std::str::FromStr for WalltimeModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            WalltimeModel::Factor,
            WalltimeModel::PartitionMax,
            WalltimeModel::Round,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| format!("unknown walltime model {s:?}; expected factor, max or round"))
    }
}

impl Default for MappingConfig {
    fn default() -> Self {
        MappingConfig {
            seed: 1,
            any_share: 0.50,
            cuda_share: 0.35,
            big_memory_gb: 64,
            public_share: 0.05,
            spot_share: 0.15,
            walltime_factor: (1.2, 3.0),
            walltime_model: WalltimeModel::Factor,
        }
    }
}

impl MappingConfig {
    /// Checks that the shares are fractions that leave a non-negative rest.
    pub fn validate(&self) -> Result<(), String> {
        let frac = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be between 0 and 1, not {v}"))
            }
        };
        frac("the any-chip share", self.any_share)?;
        frac("the CUDA share", self.cuda_share)?;
        frac("the public-service share", self.public_share)?;
        frac("the spot share", self.spot_share)?;
        if self.any_share + self.cuda_share > 1.0 + 1e-9 {
            return Err(format!(
                "the any-chip share ({}) and the CUDA share ({}) add up to more than 1",
                self.any_share, self.cuda_share
            ));
        }
        if self.public_share + self.spot_share > 1.0 + 1e-9 {
            return Err(format!(
                "the public-service share ({}) and the spot share ({}) add up to more than 1",
                self.public_share, self.spot_share
            ));
        }
        let (lo, hi) = self.walltime_factor;
        if !(lo >= 1.0 && hi >= lo && hi.is_finite()) {
            return Err(format!(
                "the walltime factor range {lo}..{hi} must satisfy 1 <= low <= high"
            ));
        }
        Ok(())
    }
}

/// What chips a job needs, as the mapping decided (for the report's breakdowns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChipNeed {
    Any,
    Cuda,
    BigMemory,
    /// The trace gave the chip request (native traces).
    Given,
}

impl ChipNeed {
    pub const ALL: [ChipNeed; 4] = [
        ChipNeed::Any,
        ChipNeed::Cuda,
        ChipNeed::BigMemory,
        ChipNeed::Given,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChipNeed::Any => "any",
            ChipNeed::Cuda => "cuda",
            ChipNeed::BigMemory => "big-memory",
            ChipNeed::Given => "given",
        }
    }
}

/// A job ready for the engine.
#[derive(Clone, Debug, PartialEq)]
pub struct SimJob {
    /// `index + 1`.
    pub id: JobId,
    /// Position in submit order, from 0 (the lifecycle queues jobs FIFO by id).
    pub index: usize,
    /// Line in the trace file.
    pub line: usize,
    pub tenant: TenantId,
    /// Virtual submit time: ms since the first job's submit, after the load factor.
    pub submit_ms: i64,
    /// The job's real run time (the trace's duration), on any chip.
    pub runtime_ms: i64,
    pub need: ChipNeed,
    pub spec: JobSpec,
}

impl SimJob {
    pub fn walltime_ms(&self) -> i64 {
        self.spec.walltime as i64 * 1000
    }

    /// How long the job runs when it is not preempted: its runtime, cut at the walltime.
    pub fn effective_runtime_ms(&self) -> i64 {
        self.runtime_ms.min(self.walltime_ms())
    }

    pub fn cards(&self) -> u64 {
        self.spec.total_cards() as u64
    }
}

/// GPUs to a gang: up to 8 on one node, more as whole 8-card nodes (rounded up).
pub fn shape_for_gpus(gpus: u32) -> (u32, u32) {
    let g = gpus.max(1);
    if g <= 8 { (g, 1) } else { (8, g.div_ceil(8)) }
}

/// Walltime estimate for a duration: duration x factor, rounded up to a minute, 1 minute to 30
/// days.
pub fn walltime_estimate(duration_ms: i64, factor: f64) -> u64 {
    let minutes = (duration_ms as f64 * factor / 60_000.0).ceil().max(1.0);
    ((minutes as u64).saturating_mul(60)).min(MAX_WALLTIME_SECS)
}

/// Maps one trace job (the `index`-th in submit order); `submit_ms` is its virtual submit time.
pub fn map_job(index: usize, job: &TraceJob, submit_ms: i64, cfg: &MappingConfig) -> SimJob {
    let mut rng = SplitMix64::for_item(cfg.seed, STREAM_MAPPING, index as u64);
    let (u_chip, u_prio, u_wall) = (rng.next_f64(), rng.next_f64(), rng.next_f64());

    let (cards_per_node, nodes) = match job.shape {
        Shape::Gpus(g) => shape_for_gpus(g),
        Shape::Gang {
            cards_per_node,
            nodes,
        } => (cards_per_node, nodes),
    };
    let (need, chips, stack) = match &job.chips {
        Some((c, s)) => (ChipNeed::Given, c.clone(), s.clone()),
        None if u_chip < cfg.any_share => (ChipNeed::Any, ChipRequest::default(), "any".into()),
        None if u_chip < cfg.any_share + cfg.cuda_share => {
            (ChipNeed::Cuda, ChipRequest::default(), "cuda".into())
        }
        None => (
            ChipNeed::BigMemory,
            ChipRequest {
                min_memory_gb: Some(cfg.big_memory_gb),
                ..ChipRequest::default()
            },
            "any".into(),
        ),
    };
    let priority = job.priority.unwrap_or(if u_prio < cfg.public_share {
        PriorityClass::PublicService
    } else if u_prio < cfg.public_share + cfg.spot_share {
        PriorityClass::Spot
    } else {
        PriorityClass::Standard
    });
    let (lo, hi) = cfg.walltime_factor;
    let walltime = cfg.walltime_model.limit(
        job.walltime_secs
            .unwrap_or_else(|| walltime_estimate(job.duration_ms, lo + (hi - lo) * u_wall)),
    );

    let tenant = TenantId::new(job.tenant.clone());
    let mut spec = JobSpec::new(format!("job-{}", index + 1), "sim");
    spec.tenant = Some(tenant.clone());
    spec.priority = priority;
    spec.chips = chips;
    spec.stack = stack;
    spec.cards_per_node = cards_per_node;
    spec.nodes = nodes;
    spec.walltime = walltime;
    spec.max_price_per_card_hour = job.max_price;
    SimJob {
        id: JobId(index as i64 + 1),
        index,
        line: job.line,
        tenant,
        submit_ms,
        runtime_ms: job.duration_ms,
        need,
        spec,
    }
}

/// Maps a trace (sorted by submit): keeps the first `max_jobs`, shifts times so the first
/// submit is at 0 and divides every inter-arrival time by `load` (time compression; durations
/// stay as they are).
pub fn map_trace(
    jobs: &[TraceJob],
    cfg: &MappingConfig,
    load: f64,
    max_jobs: Option<usize>,
) -> Vec<SimJob> {
    assert!(load > 0.0 && load.is_finite(), "load must be positive");
    let jobs = &jobs[..max_jobs.unwrap_or(usize::MAX).min(jobs.len())];
    let t0 = jobs.first().map_or(0, |j| j.submit_ms);
    jobs.iter()
        .enumerate()
        .map(|(i, j)| {
            let submit = ((j.submit_ms - t0) as f64 / load).round() as i64;
            map_job(i, j, submit, cfg)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu_job(g: u32, submit_ms: i64, duration_ms: i64) -> TraceJob {
        TraceJob {
            line: 2,
            submit_ms,
            duration_ms,
            shape: Shape::Gpus(g),
            tenant: "t".into(),
            priority: None,
            chips: None,
            walltime_secs: None,
            max_price: None,
        }
    }

    #[test]
    fn gpu_shapes() {
        assert_eq!(shape_for_gpus(1), (1, 1));
        assert_eq!(shape_for_gpus(8), (8, 1));
        assert_eq!(shape_for_gpus(12), (8, 2));
        assert_eq!(shape_for_gpus(16), (8, 2));
        assert_eq!(shape_for_gpus(128), (8, 16));
        let j = map_job(0, &gpu_job(12, 0, 1000), 0, &MappingConfig::default());
        assert_eq!((j.spec.cards_per_node, j.spec.nodes), (8, 2));
        j.spec.validate().unwrap();
    }

    #[test]
    fn shares_follow_the_config_on_10k_jobs() {
        let cfg = MappingConfig {
            seed: 42,
            ..MappingConfig::default()
        };
        let trace: Vec<TraceJob> = (0..10_000).map(|i| gpu_job(1, i, 3_600_000)).collect();
        let jobs = map_trace(&trace, &cfg, 1.0, None);
        let share = |f: &dyn Fn(&SimJob) -> bool| {
            jobs.iter().filter(|j| f(j)).count() as f64 / jobs.len() as f64
        };
        let near = |x: f64, want: f64| assert!((x - want).abs() < 0.015, "{x} vs {want}");
        near(share(&|j| j.need == ChipNeed::Any), 0.50);
        near(share(&|j| j.need == ChipNeed::Cuda), 0.35);
        near(share(&|j| j.need == ChipNeed::BigMemory), 0.15);
        near(
            share(&|j| j.spec.priority == PriorityClass::PublicService),
            0.05,
        );
        near(share(&|j| j.spec.priority == PriorityClass::Standard), 0.80);
        near(share(&|j| j.spec.priority == PriorityClass::Spot), 0.15);
        for j in &jobs {
            let w = j.spec.walltime;
            assert!((72 * 60..=180 * 60).contains(&w) && w % 60 == 0, "{w}");
            match j.need {
                ChipNeed::Cuda => assert_eq!(j.spec.stack, "cuda"),
                ChipNeed::BigMemory => assert_eq!(j.spec.chips.min_memory_gb, Some(64)),
                _ => assert!(j.spec.chips.is_any() && j.spec.stack == "any"),
            }
        }
        // Walltime factors spread over the range.
        let avg = jobs.iter().map(|j| j.spec.walltime as f64).sum::<f64>() / 10_000.0 / 3600.0;
        near(avg / 2.1, 1.0);

        let other = MappingConfig {
            any_share: 0.0,
            cuda_share: 1.0,
            ..cfg.clone()
        };
        let all_cuda = map_trace(&trace[..100], &other, 1.0, None);
        assert!(all_cuda.iter().all(|j| j.need == ChipNeed::Cuda));
        // Same seed, same mapping; a prefix maps the same.
        assert_eq!(
            map_trace(&trace[..50], &cfg, 1.0, None),
            jobs[..50].to_vec()
        );
    }

    #[test]
    fn load_compresses_interarrival_and_walltime_is_capped() {
        let trace = vec![
            gpu_job(1, 10_000, 1000),
            gpu_job(1, 20_000, 0),
            gpu_job(1, 50_000, 40 * 86_400_000),
        ];
        let jobs = map_trace(&trace, &MappingConfig::default(), 4.0, Some(3));
        let submits: Vec<i64> = jobs.iter().map(|j| j.submit_ms).collect();
        assert_eq!(submits, [0, 2500, 10_000]);
        assert_eq!(jobs[2].spec.walltime, MAX_WALLTIME_SECS);
        assert_eq!(jobs[0].spec.walltime, 60);
        assert_eq!(jobs[2].effective_runtime_ms(), 30 * 86_400_000);
        assert_eq!(
            map_trace(&trace, &MappingConfig::default(), 1.0, Some(2)).len(),
            2
        );
    }

    #[test]
    fn walltime_models_see_only_limits() {
        let trace = vec![gpu_job(1, 0, 50 * 60_000), gpu_job(1, 1, 40 * 86_400_000)];
        let cfg = |walltime_model| MappingConfig {
            walltime_model,
            ..MappingConfig::default()
        };
        let factor = map_trace(&trace, &cfg(WalltimeModel::Factor), 1.0, None);
        let max = map_trace(&trace, &cfg(WalltimeModel::PartitionMax), 1.0, None);
        let round = map_trace(&trace, &cfg(WalltimeModel::Round), 1.0, None);
        // 50 min x a factor in 1.2..3.0 is 60 to 150 min: rounded up to 1, 2 or 4 h.
        let w = factor[0].spec.walltime;
        assert!((3600..=9000).contains(&w), "{w}");
        let r = round[0].spec.walltime;
        assert!(ROUND_LIMITS.contains(&r) && r >= w && r <= 4 * 3600, "{r}");
        assert_eq!(max[0].spec.walltime, MAX_WALLTIME_SECS);
        assert_eq!(round[1].spec.walltime, MAX_WALLTIME_SECS);
        // The true duration is the same under every model.
        assert_eq!(factor[1].runtime_ms, max[1].runtime_ms);
        assert_eq!("round".parse::<WalltimeModel>(), Ok(WalltimeModel::Round));
        assert!("nope".parse::<WalltimeModel>().is_err());
    }

    #[test]
    fn config_validation() {
        assert!(MappingConfig::default().validate().is_ok());
        let bad = MappingConfig {
            any_share: 0.7,
            cuda_share: 0.4,
            ..MappingConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("more than 1"));
    }
}

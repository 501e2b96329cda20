//! The core's settings: the scheduling [`Policy`], the scoring [`Weights`] of the suanli policy
//! and those of the `slurm` baseline, [`CoreConfig`], and a tenant's weight and quotas
//! ([`TenantPolicy`], [`Quota`]).

use std::collections::BTreeMap;

/// How candidate centers are ranked and the queue is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// suanli's default: fair share within a priority class, backfill behind a reservation,
    /// preemption of spot and borrowed work, and a score over expected start, cost and fit.
    #[default]
    Suanli,
    /// Strict FIFO within a class; the first center in id order that fits (federated Slurm).
    Fifo,
    /// The lowest cost only (SkyPilot-style cheapest-first); waits for the cheapest center.
    Cheapest,
    /// The center with the most free capacity relative to its queue (PanDA-style brokerage).
    LeastLoaded,
    /// Federated Slurm as it is run: multifactor priority (age, fair share, job size; see
    /// [`SlurmWeights`]), EASY backfill (the first job that cannot start reserves the pool where
    /// it starts earliest; later jobs start ahead of it only if they end, by wall-time limit,
    /// before that reservation), and across centers the earliest expected start, as
    /// `sbatch -M` does (ties by center id).
    Slurm,
    /// Tiresias (NSDI '19), discretised two-dimensional least-attained-service: a job's
    /// priority level falls as its attained service (cards x seconds run, over all attempts)
    /// crosses [`CoreConfig::tiresias_thresholds`]; levels first, FIFO within a level, the first
    /// center in id order that fits; a job that fits nowhere preempts running jobs of a lower
    /// level (youngest first). Needs no durations.
    Tiresias,
    /// Heterogeneity-aware, after Gavel (OSDI '20): tenants in the order of their
    /// throughput-normalised share (cards x TFLOPS used against the network's, as the suanli
    /// policy's fair share), the least served first (max-min); each tenant's jobs in submit order
    /// (a job that cannot start does not hold back the next), each to the pool free now whose
    /// chip runs it fastest: the model's certified speed for a job that names one, else the
    /// chip's FP16 TFLOPS (the catalog's estimate); ties by the lower price. A greedy pass, not
    /// Gavel's optimisation over allocations.
    Fastest,
}

impl Policy {
    pub const ALL: [Policy; 7] = [
        Policy::Suanli,
        Policy::Fifo,
        Policy::Cheapest,
        Policy::LeastLoaded,
        Policy::Slurm,
        Policy::Tiresias,
        Policy::Fastest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Suanli => "suanli",
            Policy::Fifo => "fifo",
            Policy::Cheapest => "cheapest",
            Policy::LeastLoaded => "least-loaded",
            Policy::Slurm => "slurm",
            Policy::Tiresias => "tiresias",
            Policy::Fastest => "fastest",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown policy {s:?}; expected suanli, fifo, cheapest, least-loaded, slurm, \
                     tiresias or fastest"
                )
            })
    }
}

/// Weights of the suanli score of a candidate pool (lower is better):
///
/// `cost x (cost / cheapest - 1) + wait x (expected wait / wall-time) + fit x (TFLOPS / least
/// TFLOPS among candidates - 1)`
///
/// So by default a job waits for a pool half as expensive if the wait is under its wall time,
/// and among equal prices takes the least capable chip that fits.
///
/// The expected wait at a pool counts what is ahead of the job there: running jobs until their
/// wall-time limits, the pool's backfill reservation, and the work (cards x wall-time limit) of
/// every job the pass left waiting for that pool before this one (higher classes first, then
/// tenants in fair-share order), spread over the pool's cards. So a long queue at a cheap pool
/// sends the next job to idle capacity once the wait there would cost more than the price
/// difference is worth. True durations are never used.
///
/// `wait` is the time-vs-money knob: the price, in relative cost, of waiting one wall time.
/// `wait = 0` is all money (a job always waits for its cheapest pool); a large `wait` is all
/// time (a job takes whatever starts first, cost only breaking near-ties). The default 1.0 waits
/// one wall time to halve the cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Weights {
    pub cost: f64,
    pub wait: f64,
    pub fit: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            cost: 1.0,
            wait: 1.0,
            fit: 0.25,
        }
    }
}

/// Weights of Slurm's multifactor priority for [`Policy::Slurm`] (`PriorityType=priority/
/// multifactor`): priority = `age` x min(wait / `max_age_secs`, 1) + `fair_share` x
/// 2^(-usage / share) + `size` x (cards / cards of the network). Defaults as sites commonly set
/// them (`PriorityWeightAge=1000`, `PriorityWeightFairshare=10000`,
/// `PriorityWeightJobSize=1000`, `PriorityMaxAge=7-0`); larger jobs rank higher, as with
/// Slurm's default `PriorityFavorSmall=NO`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlurmWeights {
    pub age: f64,
    pub fair_share: f64,
    pub size: f64,
    pub max_age_secs: u64,
}

impl Default for SlurmWeights {
    fn default() -> Self {
        SlurmWeights {
            age: 1000.0,
            fair_share: 10_000.0,
            size: 1000.0,
            max_age_secs: 7 * 86_400,
        }
    }
}

/// Scheduler settings, with documented defaults.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    pub policy: Policy,
    /// Score weights of the suanli policy.
    pub weights: Weights,
    /// Past usage counts half as much after this long (fair share). Default 7 days.
    pub fair_share_half_life_secs: u64,
    /// Reserve the start of the first blocked job per pool; let others run ahead only if they end
    /// (by wall-time limit) before it. Default on.
    pub backfill: bool,
    /// Higher classes may evict spot work, and work within quota may evict borrowed work. Default on.
    pub preemption: bool,
    /// At most one preemption round per pool this often. Default 60 s.
    pub preempt_interval_secs: u64,
    /// At most this many jobs evicted per pass. Default 16.
    pub max_preemptions_per_pass: usize,
    /// A pass looks at no more than this many pending jobs (as Slurm's `bf_max_job_test`, whose
    /// default is 500); the rest wait for the next pass. Default 10,000.
    pub max_examined_per_pass: usize,
    /// Priority weights of [`Policy::Slurm`].
    pub slurm: SlurmWeights,
    /// Attained service (cards x seconds) at which a job drops a level under
    /// [`Policy::Tiresias`]. Default 1 and 16 card-hours (three levels).
    pub tiresias_thresholds: Vec<u64>,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            policy: Policy::Suanli,
            weights: Weights::default(),
            fair_share_half_life_secs: 7 * 86_400,
            backfill: true,
            preemption: true,
            preempt_interval_secs: 60,
            max_preemptions_per_pass: 16,
            max_examined_per_pass: 10_000,
            slurm: SlurmWeights::default(),
            tiresias_thresholds: vec![3600, 16 * 3600],
        }
    }
}

impl CoreConfig {
    /// Defaults with another policy.
    pub fn with_policy(policy: Policy) -> CoreConfig {
        CoreConfig {
            policy,
            ..CoreConfig::default()
        }
    }
}

/// A tenant's share of the network and its quotas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Fair-share weight (default 1): a tenant with weight 2 is entitled to twice the share.
    pub weight: u32,
    /// Per chip family (vendor, e.g. `nvidia`, `huawei`): nominal cards and how many more the
    /// tenant may borrow from idle capacity (borrowed work is preemptible).
    pub quotas: BTreeMap<String, Quota>,
    /// Per SKU, the share of the list price the tenant pays after its vouchers, in basis points
    /// (10,000 = full price; absent = full price). Placement and quotes compare these prices.
    pub pays_bp: BTreeMap<String, u32>,
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            weight: 1,
            quotas: BTreeMap::new(),
            pays_bp: BTreeMap::new(),
        }
    }
}

/// A quota on one chip family, in cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub nominal: u32,
    pub borrow_limit: u32,
}

//! Scheduler core benchmark: placement rate and memory per pending job at city scale.
//!
//! 100 centers, 60,000 cards, 1,000,000 pending jobs. Reports medians over several runs of
//! (a) a cold pass that fills an empty network and (b) steady-state passes after 2,000 jobs end,
//! for the suanli policy and, as the baseline measured in the same run, the cheapest policy.
//! Memory per pending job is measured with a counting allocator.
//!
//! Run: `cargo bench -p suanli-core --bench placement` (add `-- --quick` for fewer runs).

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use suanli_core::{Core, CoreConfig, PendingJob, Policy};
use suanli_types::{
    BackendKind, CenterId, CenterSpec, ChipCatalog, JobId, JobSpec, Money, NodePool, OwnerType,
    PriorityClass, TenantId, Timestamp,
};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to mimalloc (the allocator the suanli binary uses) and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const T0: Timestamp = Timestamp(1_800_000_000_000);
const CENTERS: usize = 100;
const NODES: u32 = 75;
const PENDING: usize = 1_000_000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn centers() -> Vec<CenterSpec> {
    let chips = ChipCatalog::builtin().all();
    (0..CENTERS)
        .map(|i| {
            let chip = &chips[i % chips.len()];
            CenterSpec {
                id: CenterId::new(format!("c{i:03}")),
                name: format!("Center {i}"),
                city: "Shenzhen".into(),
                owner: OwnerType::Gov,
                backend: BackendKind::Local,
                pools: vec![NodePool {
                    sku: chip.sku.clone(),
                    nodes: NODES,
                    cards_per_node: 8,
                    price_per_card_hour: Money::from_yuan(2 + (i as i64 * 7) % 11),
                }],
                stacks: Default::default(),
            }
        })
        .collect()
}

fn job(id: i64, rng: &mut Rng) -> PendingJob {
    let mut spec = JobSpec::new(format!("job-{id}"), "python train.py");
    spec.cards_per_node = [1, 1, 2, 4, 8][rng.below(5) as usize];
    spec.nodes = if rng.below(20) == 0 { 2 } else { 1 };
    spec.walltime = 600 + rng.below(6 * 3600);
    match rng.below(100) {
        0..=49 => {}
        50..=84 => spec.stack = "cuda".into(),
        _ => spec.chips.min_memory_gb = Some(64),
    }
    spec.priority = match rng.below(20) {
        0 => PriorityClass::PublicService,
        1..=3 => PriorityClass::Spot,
        _ => PriorityClass::Standard,
    };
    PendingJob {
        id: JobId(id),
        tenant: TenantId::new(format!("t{:02}", rng.below(50))),
        seq: id as u64,
        submitted_at: T0,
        spec,
    }
}

fn fresh(policy: Policy) -> Core {
    let mut core = Core::new(CoreConfig::with_policy(policy));
    for c in centers() {
        core.upsert_center(&c);
        core.set_online(&c.id, true);
    }
    core
}

fn fill(core: &mut Core) {
    let mut rng = Rng(0x5eed);
    for i in 1..=PENDING as i64 {
        core.enqueue(job(i, &mut rng));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Figures {
    cold_rate: f64,
    cold_placed: usize,
    cold_secs: f64,
    steady_rate: f64,
    steady_placed: f64,
    steady_ms: f64,
}

fn measure(policy: Policy, runs: usize) -> Figures {
    let (mut cold_rate, mut cold_placed, mut cold_secs) = (Vec::new(), 0, Vec::new());
    let (mut steady_rate, mut steady_placed, mut steady_ms) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let mut core = fresh(policy);
        fill(&mut core);
        let t = Instant::now();
        let placed = core.schedule(T0);
        let secs = t.elapsed().as_secs_f64();
        cold_rate.push(placed.len() as f64 / secs);
        cold_secs.push(secs);
        cold_placed = placed.len();
        // Steady state: 2,000 jobs end, one pass refills.
        let mut running: Vec<JobId> = placed.iter().map(|p| p.job).collect();
        let mut rng = Rng(0xabc + run as u64);
        for step in 1..=5 {
            for _ in 0..2_000.min(running.len()) {
                let i = rng.below(running.len() as u64) as usize;
                core.release(running.swap_remove(i));
            }
            let t = Instant::now();
            let p = core.schedule(T0.plus_secs(60 * step));
            let secs = t.elapsed().as_secs_f64();
            steady_rate.push(p.len() as f64 / secs);
            steady_placed.push(p.len() as f64);
            steady_ms.push(secs * 1000.0);
            running.extend(p.iter().map(|p| p.job));
        }
    }
    Figures {
        cold_rate: median(cold_rate),
        cold_placed,
        cold_secs: median(cold_secs),
        steady_rate: median(steady_rate),
        steady_placed: median(steady_placed),
        steady_ms: median(steady_ms),
    }
}

fn main() {
    // For profiling: one core, many steady passes of the suanli policy.
    if std::env::args().any(|a| a == "--profile") {
        let mut core = fresh(Policy::Suanli);
        fill(&mut core);
        let mut running: Vec<JobId> = core.schedule(T0).iter().map(|p| p.job).collect();
        let mut rng = Rng(7);
        eprintln!("setup done");
        let t = Instant::now();
        let mut placed = 0;
        for step in 1..=40 {
            for _ in 0..2_000.min(running.len()) {
                let i = rng.below(running.len() as u64) as usize;
                core.release(running.swap_remove(i));
            }
            let p = core.schedule(T0.plus_secs(60 * step));
            placed += p.len();
            running.extend(p.iter().map(|p| p.job));
        }
        println!("{placed} placed in {:.2} s", t.elapsed().as_secs_f64());
        // Skip tearing down a million jobs: it would swamp a profile of the passes.
        std::process::exit(0);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 1 } else { 3 };

    // Memory per pending job: bytes the core holds for 1M queued jobs.
    let mut core = fresh(Policy::Suanli);
    let before = LIVE.load(Ordering::Relaxed);
    fill(&mut core);
    let bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / PENDING as f64;
    drop(core);

    println!(
        "suanli-core placement benchmark: {CENTERS} centers, {} cards, {PENDING} pending jobs, {runs} run(s)",
        CENTERS as u32 * NODES * 8
    );
    println!("memory per pending job: {bytes:.0} bytes (target <= 2048)");
    let mut rows = Vec::new();
    for policy in [Policy::Suanli, Policy::Cheapest] {
        let f = measure(policy, runs);
        println!(
            "{:<9} cold pass: {} placed in {:.3} s = {:.0} decisions/s | steady pass: {:.0} placed in {:.1} ms = {:.0} decisions/s",
            policy.as_str(),
            f.cold_placed,
            f.cold_secs,
            f.cold_rate,
            f.steady_placed,
            f.steady_ms,
            f.steady_rate
        );
        rows.push(f);
    }
    println!(
        "suanli / cheapest decision rate: cold {:.2}x, steady {:.2}x (target: suanli >= 100000 decisions/s)",
        rows[0].cold_rate / rows[1].cold_rate,
        rows[0].steady_rate / rows[1].steady_rate
    );
}

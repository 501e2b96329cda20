//! `suanli sim`: replay a workload trace through the scheduler core in virtual time
//! (`suanli-sim`), and `suanli sim gen`: write a synthetic trace.

use crate::client_cmd::output::print;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use suanli_sim::generator::{GenConfig, Mix, generate, write_native};
use suanli_sim::mapping::{MappingConfig, WalltimeModel, map_trace};
use suanli_sim::report::{Report, render_compare, render_text};
use suanli_sim::speeds::Speeds;
use suanli_sim::{
    CoreConfig, Fault, FaultKind, Policy, Progress, TraceFormat, engine, topology, trace,
};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SimArgs {
    #[command(subcommand)]
    command: Option<SimCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum SimCommand {
    /// Write a synthetic trace in the native JSONL format (seeded).
    Gen(GenArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Trace file: Philly CSV, Tiresias CSV or native JSONL.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Trace format [default: detected from the first line]
    #[arg(long, value_name = "FORMAT")]
    format: Option<TraceFormat>,
    /// Seed of the mapping (chip needs, priorities, walltime estimates).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Load factor: inter-arrival times are divided by this.
    #[arg(long, default_value_t = 1.0)]
    load: f64,
    /// Take only the first N jobs by submit time.
    #[arg(long, value_name = "N")]
    max_jobs: Option<usize>,
    /// Scheduling policy: suanli, fifo, cheapest, least-loaded, slurm, tiresias or fastest.
    #[arg(long, default_value = "suanli", conflicts_with = "compare")]
    policy: Policy,
    /// Run every policy on the same jobs and print one comparison table.
    #[arg(long)]
    compare: bool,
    /// The suanli policy's time-vs-money knob: the weight of the expected wait (in wall times)
    /// against the relative cost; 0 always waits for the cheapest pool, larger values take what
    /// starts first. Repeat it with --compare for one suanli column per value (the Pareto
    /// front).
    #[arg(long, value_name = "W")]
    wait_weight: Vec<f64>,
    /// Topology file: TOML with [[centers]], or a CSV in the reference centers.csv format
    /// [default: the built-in Greater Bay Area topology]
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// Divide the card counts of the built-in (or a CSV) topology by N.
    #[arg(long, value_name = "N", default_value_t = 16)]
    scale_down: u32,
    /// Multiply every pool's node count by X (after --scale-down).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    scale: f64,
    /// Share of jobs that accept any chip.
    #[arg(long, default_value_t = 0.50)]
    any_share: f64,
    /// Share of jobs that need CUDA; the rest need >= 64 GB per card.
    #[arg(long, default_value_t = 0.35)]
    cuda_share: f64,
    /// Share of public-service jobs.
    #[arg(long, default_value_t = 0.05)]
    public_share: f64,
    /// Share of spot jobs; the rest are standard.
    #[arg(long, default_value_t = 0.15)]
    spot_share: f64,
    /// How wall-time limits are set (policies see only limits, never durations): `factor`
    /// (the trace's limit, else the duration x a seeded factor in 1.2..3.0), `max` (every job
    /// asks for the 30-day maximum), `round` (the factor's limit rounded up to the round numbers
    /// users pick: 30 min, 1, 2, 4, 8, 12 h, 1, 2, 3, 7, 14, 30 d).
    #[arg(long, value_name = "MODEL", default_value = "factor")]
    walltime_model: WalltimeModel,
    /// Chip speed: `fp16` (the catalog's FP16 TFLOPS against --reference) or a CSV file of
    /// `sku,speed`; a job's trace duration is its run time on the reference chip, and it runs
    /// duration / speed on another. Without it every chip runs a job in its trace duration.
    #[arg(long, value_name = "fp16|FILE")]
    speeds: Option<String>,
    /// The chip a trace's durations are taken on, for --speeds fp16
    #[arg(long, value_name = "SKU", default_value = suanli_sim::speeds::DEFAULT_REFERENCE)]
    reference: String,
    /// A center fails at T (from the trace's start, e.g. 2h or 1h30m) for D, or for good without
    /// +D: its running attempts are lost when their leases run out (queued again, metered up to
    /// the failure) and it gets no new work until it is back. Repeatable.
    #[arg(long, value_name = "C@T[+D]", value_parser = fail_center)]
    fail_center: Vec<Fault>,
    /// A center is drained at T for D (or for good): every attempt there is handed back and
    /// queued again, and it gets no new work until it is undrained. Repeatable.
    #[arg(long, value_name = "C@T[+D]", value_parser = drain_center)]
    drain_center: Vec<Fault>,
    /// Also write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the city's indicators of each run to FILE (JSON): the summary and the rows by
    /// month for the network, centers, vendors and SKUs, as `GET /v1/indicators` gives them
    /// (docs/INDICATORS.md), for what-if planning.
    #[arg(long, value_name = "FILE")]
    indicators: Option<PathBuf>,
    /// The day (YYYY-MM-DD, midnight China Standard Time) the trace's time 0 falls on, for the
    /// indicators' months (a month 2026-07 or quarter 2026Q3 means its first day).
    #[arg(long, value_name = "DATE", default_value = "2026-01-01", value_parser = cst_midnight)]
    start: suanli_types::Timestamp,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct GenArgs {
    /// Number of jobs.
    #[arg(long)]
    jobs: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of tenants (tenant-1 .. tenant-T, Zipf-like shares).
    #[arg(long, default_value_t = 8)]
    tenants: u32,
    /// Mean seconds between submits (Poisson arrivals).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    mean_interarrival: f64,
    /// Job sizes and durations: `default` (1-32 cards, median 30 min), `small` (1-2 cards,
    /// median 5 min) or `gangs` (16-128 cards, median 4 h).
    #[arg(long, value_name = "MIX", default_value = "default")]
    mix: Mix,
    /// Jobs arrive in bursts of N at one instant (same mean rate).
    #[arg(long, value_name = "N", default_value_t = 1)]
    burst: usize,
    /// Output file [default: stdout]
    #[arg(long, short, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// What was simulated, for the JSON report.
#[derive(Serialize)]
struct SimInfo {
    trace: String,
    format: &'static str,
    seed: u64,
    load: f64,
    max_jobs: Option<usize>,
    jobs: usize,
    topology: String,
    scale_down: u32,
    scale: f64,
    centers: usize,
    cards: u64,
    any_share: f64,
    cuda_share: f64,
    big_memory_share: f64,
    public_share: f64,
    spot_share: f64,
    walltime_model: &'static str,
    /// Center failures and drains, as `CENTER fails|drained at T s for D s|for good`.
    faults: Vec<String>,
}

#[derive(Serialize)]
struct RunIndicators {
    policy: String,
    indicators: suanli_sim::indicators::SimIndicators,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    info: SimInfo,
    runs: &'a [Report],
}

/// A day (`YYYY-MM-DD`, its midnight in China Standard Time), month or quarter, as the
/// statistics read them.
fn cst_midnight(s: &str) -> Result<suanli_types::Timestamp, String> {
    suanli_indicators::calendar::parse_instant(s)
        .ok_or_else(|| format!("{s:?} is not a day of the calendar (YYYY-MM-DD)"))
}

fn fail_center(s: &str) -> Result<Fault, String> {
    Fault::parse(FaultKind::Fail, s)
}

fn drain_center(s: &str) -> Result<Fault, String> {
    Fault::parse(FaultKind::Drain, s)
}

pub fn run(args: SimArgs) -> anyhow::Result<i32> {
    match args.command {
        Some(SimCommand::Gen(g)) => gen_trace(g),
        None => run_sim(args.run),
    }
}

fn gen_trace(a: GenArgs) -> anyhow::Result<i32> {
    if !(a.mean_interarrival.is_finite() && a.mean_interarrival >= 0.0) {
        bail!("--mean-interarrival must be a number of seconds >= 0");
    }
    let jobs = generate(&GenConfig {
        jobs: a.jobs,
        seed: a.seed,
        tenants: a.tenants.max(1),
        mean_interarrival_secs: a.mean_interarrival,
        mix: a.mix,
        burst: a.burst.max(1),
        mapping: MappingConfig::default(),
    });
    match &a.out {
        Some(path) => {
            let f = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(f);
            write_native(&jobs, &mut w)
                .and_then(|()| w.flush())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} jobs to {}", jobs.len(), path.display());
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            write_native(&jobs, &mut w).and_then(|()| w.flush())?;
        }
    }
    Ok(0)
}

fn run_sim(a: RunArgs) -> anyhow::Result<i32> {
    let Some(trace_path) = &a.trace else {
        bail!("--trace FILE is required (or use `suanli sim gen` to make one)");
    };
    if !(a.load.is_finite() && a.load > 0.0) {
        bail!("--load must be a positive number");
    }
    if !(a.scale.is_finite() && a.scale > 0.0) {
        bail!("--scale must be a positive number");
    }
    let mapping = MappingConfig {
        seed: a.seed,
        any_share: a.any_share,
        cuda_share: a.cuda_share,
        public_share: a.public_share,
        spot_share: a.spot_share,
        walltime_model: a.walltime_model,
        ..MappingConfig::default()
    };
    mapping.validate().map_err(anyhow::Error::msg)?;

    let trace = trace::read_trace(trace_path, a.format)?;
    let jobs = map_trace(&trace.jobs, &mapping, a.load, a.max_jobs);
    let mut centers = match &a.topology {
        Some(p) => topology::load_file(p, a.scale_down)?,
        None => topology::builtin(a.scale_down),
    };
    topology::scale(&mut centers, a.scale);
    let cards = topology::total_cards(&centers);
    let topo_name = a.topology.as_ref().map_or_else(
        || "built-in Greater Bay Area".to_string(),
        |p| p.display().to_string(),
    );
    outln!(
        "trace {} ({}): {} jobs, load x{}, seed {}; topology {}: {} centers, {} cards \
         (scale-down {}, scale {})",
        trace.file,
        trace.format.as_str(),
        jobs.len(),
        a.load,
        a.seed,
        topo_name,
        centers.len(),
        cards,
        a.scale_down,
        a.scale
    );
    let faults: Vec<Fault> = a
        .fail_center
        .iter()
        .chain(&a.drain_center)
        .cloned()
        .collect();
    for f in &faults {
        outln!("fault: {f}");
    }
    let speeds = match a.speeds.as_deref() {
        None => Speeds::None,
        Some("fp16") => Speeds::fp16(&a.reference).map_err(|e| anyhow::anyhow!(e))?,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--speeds {file}: cannot read it"))?;
            Speeds::parse_csv(file, &text).map_err(|e| anyhow::anyhow!(e))?
        }
    };
    if let Some(name) = speeds.name() {
        outln!("chip speeds: {name}; a trace duration is the run time on the reference chip");
    }

    if a.wait_weight.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        bail!("--wait-weight must be a number >= 0");
    }
    let policies: Vec<Policy> = if a.compare {
        Policy::ALL.to_vec()
    } else {
        vec![a.policy]
    };
    // One run per policy; the suanli policy once per wait weight given (default weights if
    // none).
    let mut runs: Vec<(String, CoreConfig)> = Vec::new();
    for p in policies {
        let config = CoreConfig::with_policy(p);
        if p == Policy::Suanli && !a.wait_weight.is_empty() {
            for &w in &a.wait_weight {
                let mut c = config.clone();
                c.weights.wait = w;
                runs.push((format!("suanli w={w}"), c));
            }
        } else {
            runs.push((p.as_str().to_string(), config));
        }
    }
    let mut reports = Vec::new();
    let mut indicators = Vec::new();
    for (name, config) in runs {
        let progress = Progress::stderr(&name, jobs.len() as u64, a.quiet);
        let out = engine::run_with_speeds(&jobs, &centers, config, &faults, &speeds, &progress)
            .with_context(|| format!("simulating policy {name}"))?;
        let mut r = Report::build(&jobs, &out);
        r.policy = name.clone();
        reports.push(r);
        if a.indicators.is_some() {
            let ind = suanli_sim::indicators::indicators(&jobs, &centers, &out, &faults, a.start)
                .with_context(|| format!("indicators of policy {name}"))?;
            indicators.push(RunIndicators {
                policy: name,
                indicators: ind,
            });
        }
    }
    outln!();
    if reports.len() > 1 {
        print(&render_compare(&reports))?;
    } else {
        print(&render_text(&reports[0]))?;
    }

    if let Some(path) = &a.indicators {
        let text = serde_json::to_string_pretty(&indicators)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        outln!("indicators written to {}", path.display());
    }
    if let Some(path) = &a.json {
        let out = JsonOut {
            info: SimInfo {
                trace: trace.file.clone(),
                format: trace.format.as_str(),
                seed: a.seed,
                load: a.load,
                max_jobs: a.max_jobs,
                jobs: jobs.len(),
                topology: topo_name,
                scale_down: a.scale_down,
                scale: a.scale,
                centers: centers.len(),
                cards,
                any_share: a.any_share,
                cuda_share: a.cuda_share,
                big_memory_share: (1.0 - a.any_share - a.cuda_share).max(0.0),
                public_share: a.public_share,
                spot_share: a.spot_share,
                walltime_model: a.walltime_model.as_str(),
                faults: faults.iter().map(Fault::to_string).collect(),
            },
            runs: &reports,
        };
        let text = serde_json::to_string_pretty(&out)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        Sim(SimArgs),
    }

    fn sim(args: &[&str]) -> anyhow::Result<i32> {
        let cli = Cli::try_parse_from(std::iter::once("suanli").chain(args.iter().copied()))?;
        let Cmd::Sim(a) = cli.cmd;
        run(a)
    }

    /// Runs `args`, which must succeed and write their report to `json`; the report.
    fn sim_report(args: &[&str], json: &std::path::Path) -> serde_json::Value {
        assert_eq!(sim(args).unwrap(), 0);
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
    }

    /// `--indicators` writes each run's indicators by month from `--start`.
    fn indicators_of_the_months(trace: &str, out: &std::path::Path) {
        let args = [
            "sim",
            "--trace",
            trace,
            "--scale-down",
            "64",
            "-q",
            "--start",
            "2026-07-01",
            "--indicators",
            out.to_str().unwrap(),
        ];
        let v = sim_report(&args, out);
        let ind = &v[0]["indicators"];
        assert_eq!(v[0]["policy"], "suanli");
        assert_eq!(ind["by_month"][0]["period"], "2026-07");
        assert!(ind["summary"]["delivered_card_hours"].as_f64().unwrap() > 0.0);
        assert!(!ind["by_center"].as_array().unwrap().is_empty());
        let e = sim(&["sim", "--trace", trace, "--start", "2026-02-30"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a day of the calendar"),
            "{e:#}"
        );
        assert!(sim(&["sim", "--trace", trace, "--start", "July"]).is_err());
    }

    #[test]
    fn gen_then_compare_writes_json() {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.jsonl");
        let json = dir.path().join("r.json");
        let (trace_s, json_s) = (trace.to_str().unwrap(), json.to_str().unwrap());
        let gen_args = ["sim", "gen", "--jobs", "200", "--seed", "3", "-o", trace_s];
        assert_eq!(sim(&gen_args).unwrap(), 0);
        let run_args = [
            "sim",
            "--trace",
            trace_s,
            "--compare",
            "--scale-down",
            "64",
            "-q",
            "--json",
            json_s,
        ];
        let v = sim_report(&run_args, &json);
        assert_eq!(v["info"]["jobs"], 200);
        indicators_of_the_months(trace_s, &dir.path().join("i.json"));
        assert_eq!(v["info"]["format"], "native");
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 7);
        assert_eq!(runs[1]["policy"], "fifo");
        assert_eq!(runs[5]["policy"], "tiresias");
        assert_eq!(runs[6]["policy"], "fastest");
        assert_eq!(runs[0]["series"].as_array().unwrap().len(), 48);

        let faulty = [
            "sim",
            "--trace",
            trace_s,
            "--scale-down",
            "64",
            "-q",
            "--fail-center",
            "tencent-south@1h+30m",
            "--drain-center",
            "sme-4090@2h",
            "--json",
            json_s,
        ];
        let v = sim_report(&faulty, &json);
        assert_eq!(v["info"]["faults"].as_array().unwrap().len(), 2);
        assert!(v["runs"][0]["requeues"]["lease_lost"].is_u64());
        let e = sim(&["sim", "--trace", trace_s, "--fail-center", "nowhere@1h"]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("nowhere: no such center"), "{e}");
        assert!(sim(&["sim", "--trace", trace_s, "--fail-center", "tencent-south"]).is_err());
        assert!(sim(&["sim", "--trace", trace_s, "--load", "0"]).is_err());
        assert!(sim(&["sim", "--trace", trace_s, "--policy", "nope"]).is_err());
        assert!(sim(&["sim", "--trace", trace_s, "--compare", "--policy", "fifo"]).is_err());
        assert!(sim(&["sim", "--trace", trace_s, "--any-share", "0.9"]).is_err());
        let e = sim(&["sim"]).unwrap_err().to_string();
        assert!(e.contains("--trace"), "{e}");
        // The knob: one suanli column per wait weight; the walltime model and a bursty mix.
        let gen_args = [
            "sim", "gen", "--jobs", "100", "--mix", "small", "--burst", "10", "-o", trace_s,
        ];
        assert_eq!(sim(&gen_args).unwrap(), 0);
        let knob = [
            "sim",
            "--trace",
            trace_s,
            "--scale-down",
            "64",
            "-q",
            "--wait-weight",
            "0",
            "--wait-weight",
            "4",
            "--walltime-model",
            "round",
            "--json",
            json_s,
        ];
        let v = sim_report(&knob, &json);
        assert_eq!(v["info"]["walltime_model"], "round");
        let runs = v["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0]["policy"], "suanli w=0");
        assert_eq!(runs[1]["policy"], "suanli w=4");
        assert!(sim(&["sim", "--trace", trace_s, "--walltime-model", "nope"]).is_err());
        let bad = dir.path().join("bad.csv");
        std::fs::write(
            &bad,
            "timestamp,duration,num_gpus,gpu_time,cluster\nx,1,1,1,a\n",
        )
        .unwrap();
        let e = sim(&["sim", "--trace", bad.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("bad.csv:2:1: timestamp: \"x\" is not a time like 2017-10-03 14:05:00"),
            "{e}"
        );
    }
}

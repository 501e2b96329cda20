//! The directive table: one entry per sbatch option, with what suanli does with it. It drives
//! the parser (option lookup with sbatch's unambiguous-prefix matching, which options take a
//! value) and generates docs/SLURM-INPUT.md ([`render_doc`]).

/// What suanli does with a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Means what it means to sbatch.
    Honoured,
    /// Translated onto suanli's own terms (chips, queue, priority class), as the note says.
    Mapped,
    /// Accepted and ignored, with a warning naming the line.
    Warned,
    /// An error naming the line: running the job without it would run something else.
    Refused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Honoured => "honoured",
            Status::Mapped => "mapped",
            Status::Warned => "warned",
            Status::Refused => "refused",
        }
    }
}

/// Whether an option takes a value, as getopt_long sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    None,
    /// `--opt=VALUE` or `--opt VALUE` (`-X VALUE`, `-XVALUE`).
    Required,
    /// Only as `--opt=VALUE`; the short form takes none.
    Optional,
}

/// What the parser does with a directive beyond its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Name,
    Nodes,
    Time,
    Gres,
    GpusPerNode,
    Gpus,
    Partition,
    Qos,
    Constraint,
    Export,
    Dependency,
    Begin,
    Hold,
    Array,
    Signal,
    KillOnInvalidDep,
    Clusters,
    /// Nothing: the status and note say it all.
    None,
}

/// One sbatch option.
#[derive(Clone, Copy, Debug)]
pub struct Directive {
    /// The long name without `--`.
    pub long: &'static str,
    pub short: Option<char>,
    pub arg: Arg,
    pub status: Status,
    pub effect: Effect,
    /// What suanli does with it: the doc's text, and the warning or refusal.
    pub note: &'static str,
}

const fn d(
    long: &'static str,
    short: Option<char>,
    arg: Arg,
    status: Status,
    effect: Effect,
    note: &'static str,
) -> Directive {
    Directive {
        long,
        short,
        arg,
        status,
        effect,
        note,
    }
}

use Arg::{None as No, Optional as Opt, Required as Req};
use Effect as E;
use Status::{Honoured as H, Mapped as M, Refused as R, Warned as W};

const LOGS: &str = "suanli keeps stdout and stderr itself (`suanli logs`)";
const TASKS: &str =
    "suanli starts one process per node with all its cards; start ranks with your launcher";
const CPUS: &str = "suanli does not schedule CPUs or host memory";
const PLACE: &str = "suanli places the job on a center's nodes itself";
const NOTIFY: &str = "suanli sends no mail; follow the job with `suanli wait` or `suanli jobs`";
const BILLING: &str = "suanli bills the tenant of your token";
const CONTAINER: &str = "suanli does not pull container images: the script runs in the center's own environment (use `--stack` for the software stack)";
const SITE: &str = "a site-specific setting with no meaning in the network";
const NOT_A_JOB: &str = "sbatch would print and exit without submitting: not a job option";

/// Every option sbatch (and the pyxis container plugin) knows, by long name.
pub const DIRECTIVES: &[Directive] = &[
    d("account", Some('A'), Req, W, E::None, BILLING),
    d("acctg-freq", None, Req, W, E::None, SITE),
    d(
        "array",
        Some('a'),
        Req,
        H,
        E::Array,
        "`0-99%10`, `1,3,5`, `0-15:4`: one job per task (at most 1000), each with `SLURM_ARRAY_JOB_ID`, `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`, `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_MAX`; `%N`: at most N placed or running at once; listed (`suanli jobs --array ID`) and cancelled (`suanli cancel --array ID`) as a unit or by task",
    ),
    d("batch", None, Req, W, E::None, PLACE),
    d("bb", None, Req, W, E::None, "burst buffers are not offered"),
    d(
        "bbf",
        None,
        Req,
        W,
        E::None,
        "burst buffers are not offered",
    ),
    d(
        "begin",
        Some('b'),
        Req,
        H,
        E::Begin,
        "held until then: `2026-12-03T15:00[:SS]`, `HH:MM[:SS]` (the next such time), `now+N[seconds|minutes|hours|days]`, `today`, `tomorrow`; without a zone (`Z`, `+HH:MM`) in China Standard Time",
    ),
    d(
        "chdir",
        Some('D'),
        Req,
        W,
        E::None,
        "the script runs in the attempt's own working directory with its uploaded files",
    ),
    d("cluster-constraint", None, Req, W, E::None, PLACE),
    d(
        "clusters",
        Some('M'),
        Req,
        M,
        E::Clusters,
        "the centers the job may run at (`-M pcl-cb2,nscc-sz`), by center id; `all` or none: any",
    ),
    d("comment", None, Req, W, E::None, "comments are not kept"),
    d(
        "constraint",
        Some('C'),
        Req,
        M,
        E::Constraint,
        "a single feature that names a GPU type (as for `--gres`) narrows the chips; other features are warned",
    ),
    d("container", None, Req, W, E::None, CONTAINER),
    d("container-env", None, Req, W, E::None, CONTAINER),
    d("container-image", None, Req, W, E::None, CONTAINER),
    d("container-mount-home", None, No, W, E::None, CONTAINER),
    d("container-mounts", None, Req, W, E::None, CONTAINER),
    d("container-name", None, Req, W, E::None, CONTAINER),
    d("container-remap-root", None, No, W, E::None, CONTAINER),
    d("container-save", None, Req, W, E::None, CONTAINER),
    d("container-workdir", None, Req, W, E::None, CONTAINER),
    d("container-writable", None, No, W, E::None, CONTAINER),
    d("contiguous", None, No, W, E::None, PLACE),
    d("core-spec", Some('S'), Req, W, E::None, CPUS),
    d("cores-per-socket", None, Req, W, E::None, CPUS),
    d("cpu-freq", None, Req, W, E::None, CPUS),
    d("cpus-per-gpu", None, Req, W, E::None, CPUS),
    d("cpus-per-task", Some('c'), Req, W, E::None, CPUS),
    d(
        "deadline",
        None,
        Req,
        R,
        E::None,
        "deadlines are not honoured yet; the job could run after it",
    ),
    d("delay-boot", None, Req, W, E::None, SITE),
    d(
        "dependency",
        Some('d'),
        Req,
        H,
        E::Dependency,
        "`after`, `afterany`, `afterok`, `afternotok` by job id (`afterok:12:13`), `singleton`; `,` is all of, `?` any of; the parents must be the tenant's jobs, and an array's id stands for all of its tasks; a dependency that can never be met cancels the job, naming the parent and how it ended",
    ),
    d("distribution", Some('m'), Req, W, E::None, TASKS),
    d("error", Some('e'), Req, W, E::None, LOGS),
    d("exclude", Some('x'), Req, W, E::None, PLACE),
    d(
        "exclusive",
        None,
        Opt,
        W,
        E::None,
        "cards are never shared; other resources of the node may be",
    ),
    d(
        "export",
        None,
        Req,
        M,
        E::Export,
        "`NAME=VALUE` items become the job's environment; `ALL` and `NONE` are dropped, bare names are warned (the submitting shell's environment is not carried)",
    ),
    d(
        "export-file",
        None,
        Req,
        W,
        E::None,
        "the submitting host's files are not carried; use `--export=NAME=VALUE`",
    ),
    d("extra", None, Req, W, E::None, SITE),
    d("extra-node-info", Some('B'), Req, W, E::None, CPUS),
    d(
        "get-user-env",
        None,
        Opt,
        W,
        E::None,
        "the submitting user's login environment is not carried",
    ),
    d(
        "gid",
        None,
        Req,
        R,
        E::None,
        "jobs run under the center's identity for the tenant",
    ),
    d("gpu-bind", None, Req, W, E::None, TASKS),
    d("gpu-freq", None, Req, W, E::None, SITE),
    d(
        "gpus",
        Some('G'),
        Req,
        M,
        E::Gpus,
        "`[TYPE:]N` cards over all nodes, split evenly over `--nodes`; TYPE as for `--gres`",
    ),
    d(
        "gpus-per-node",
        None,
        Req,
        M,
        E::GpusPerNode,
        "`[TYPE:]N` cards per node; TYPE as for `--gres`",
    ),
    d("gpus-per-socket", None, Req, W, E::None, TASKS),
    d("gpus-per-task", None, Req, W, E::None, TASKS),
    d(
        "gres",
        None,
        Req,
        M,
        E::Gres,
        "`gpu[:TYPE][:N]` is N cards per node; `gpu` without a type means an NVIDIA GPU (stack cuda); TYPE by the network's GRES map, else a chip SKU or family (`a100`, `910b`); `npu`, `mlu`, `dcu`, `xpu` name the vendor (Huawei, Cambricon, Hygon, Kunlunxin); `gpumem:NG` or `vram:NG` is a minimum memory per card; other GRES are warned",
    ),
    d("gres-flags", None, Req, W, E::None, PLACE),
    d("help", Some('h'), No, R, E::None, NOT_A_JOB),
    d("hint", None, Req, W, E::None, CPUS),
    d(
        "hold",
        Some('H'),
        No,
        H,
        E::Hold,
        "submitted held: it waits until `suanli release ID`",
    ),
    d(
        "ignore-pbs",
        None,
        No,
        W,
        E::None,
        "`#PBS` lines are never read",
    ),
    d(
        "input",
        Some('i'),
        Req,
        W,
        E::None,
        "standard input is empty",
    ),
    d(
        "job-name",
        Some('J'),
        Req,
        H,
        E::Name,
        "the job's name (default: the script's file name)",
    ),
    d(
        "kill-on-invalid-dep",
        None,
        Req,
        H,
        E::KillOnInvalidDep,
        "`yes` (the default): a dependency that can never be met cancels the job; `no`: it stays pending, its reason saying so, until cancelled",
    ),
    d("licenses", Some('L'), Req, W, E::None, SITE),
    d("mail-type", None, Req, W, E::None, NOTIFY),
    d("mail-user", None, Req, W, E::None, NOTIFY),
    d("mcs-label", None, Req, W, E::None, SITE),
    d("mem", None, Req, W, E::None, CPUS),
    d("mem-bind", None, Req, W, E::None, CPUS),
    d("mem-per-cpu", None, Req, W, E::None, CPUS),
    d(
        "mem-per-gpu",
        None,
        Req,
        W,
        E::None,
        "host memory is not scheduled; for memory per card use `--gres=gpumem:NG`",
    ),
    d("mincpus", None, Req, W, E::None, CPUS),
    d("network", None, Req, W, E::None, SITE),
    d(
        "nice",
        None,
        Opt,
        W,
        E::None,
        "use `--qos` or `suanli submit --priority` for the priority class",
    ),
    d(
        "no-kill",
        Some('k'),
        Opt,
        W,
        E::None,
        "a node lost ends the attempt; the job is retried",
    ),
    d(
        "no-requeue",
        None,
        No,
        W,
        E::None,
        "the network retries an attempt lost to a center's failure",
    ),
    d("nodefile", Some('F'), Req, W, E::None, PLACE),
    d("nodelist", Some('w'), Req, W, E::None, PLACE),
    d(
        "nodes",
        Some('N'),
        Req,
        H,
        E::Nodes,
        "the node count, all at one center and started together; a range `MIN-MAX` only when MIN equals MAX",
    ),
    d("ntasks", Some('n'), Req, W, E::None, TASKS),
    d("ntasks-per-core", None, Req, W, E::None, TASKS),
    d("ntasks-per-gpu", None, Req, W, E::None, TASKS),
    d("ntasks-per-node", None, Req, W, E::None, TASKS),
    d("ntasks-per-socket", None, Req, W, E::None, TASKS),
    d("open-mode", None, Req, W, E::None, LOGS),
    d("output", Some('o'), Req, W, E::None, LOGS),
    d("overcommit", Some('O'), No, W, E::None, TASKS),
    d(
        "oversubscribe",
        Some('s'),
        No,
        W,
        E::None,
        "cards are never shared",
    ),
    d(
        "parsable",
        None,
        No,
        W,
        E::None,
        "use `suanli submit --parsable`",
    ),
    d(
        "partition",
        Some('p'),
        Req,
        M,
        E::Partition,
        "a queue (and maybe a priority class or chips) by the network's partition map; a name not in the map is warned (an error with `--strict`) and the job goes to the default queue",
    ),
    d("power", None, Req, W, E::None, SITE),
    d("prefer", None, Req, W, E::None, PLACE),
    d(
        "priority",
        None,
        Req,
        W,
        E::None,
        "use `--qos` or `suanli submit --priority` for the priority class",
    ),
    d("profile", None, Req, W, E::None, SITE),
    d(
        "propagate",
        None,
        Opt,
        W,
        E::None,
        "the submitting shell's limits are not carried",
    ),
    d(
        "qos",
        Some('q'),
        Req,
        M,
        E::Qos,
        "a priority class by the network's QoS map, or a class name (`public-service`, `standard`, `spot`); a name not in the map is warned (an error with `--strict`) and the class is `standard`",
    ),
    d(
        "quiet",
        Some('Q'),
        No,
        W,
        E::None,
        "suanli prints what it prints",
    ),
    d("reboot", None, No, W, E::None, SITE),
    d(
        "requeue",
        None,
        No,
        W,
        E::None,
        "the network retries an attempt lost to a center's failure",
    ),
    d("reservation", None, Req, W, E::None, SITE),
    d(
        "signal",
        None,
        Req,
        H,
        E::Signal,
        "`[B:]SIG[@SECS]` (default 60 s) before the wall time runs out and before a cancel or preemption, then SIGTERM, then SIGKILL after the site's kill grace; `B:` the batch shell only, else every process of the job; not sent on Kubernetes, whose pods get SIGTERM and the grace; `R:` refused",
    ),
    d("sockets-per-node", None, Req, W, E::None, CPUS),
    d("spread-job", None, No, W, E::None, PLACE),
    d("switches", None, Req, W, E::None, PLACE),
    d(
        "test-only",
        None,
        No,
        R,
        E::None,
        "sbatch would not submit; `suanli quote` shows price and start without submitting",
    ),
    d("thread-spec", None, Req, W, E::None, CPUS),
    d("threads-per-core", None, Req, W, E::None, CPUS),
    d(
        "time",
        Some('t'),
        Req,
        H,
        E::Time,
        "the wall-time limit: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S` (a bare number is minutes), at most 30 days",
    ),
    d(
        "time-min",
        None,
        Req,
        W,
        E::None,
        "the job gets its full `--time`",
    ),
    d("tmp", None, Req, W, E::None, CPUS),
    d("tres-per-task", None, Req, W, E::None, TASKS),
    d(
        "uid",
        None,
        Req,
        R,
        E::None,
        "jobs run under the center's identity for the tenant",
    ),
    d("usage", None, No, R, E::None, NOT_A_JOB),
    d(
        "use-min-nodes",
        None,
        No,
        W,
        E::None,
        "a node range is refused (see `--nodes`)",
    ),
    d(
        "verbose",
        Some('v'),
        No,
        W,
        E::None,
        "suanli prints what it prints",
    ),
    d("version", Some('V'), No, R, E::None, NOT_A_JOB),
    d(
        "wait",
        Some('W'),
        No,
        W,
        E::None,
        "`suanli submit` returns at once; follow with `suanli wait ID`",
    ),
    d(
        "wait-all-nodes",
        None,
        Req,
        W,
        E::None,
        "the nodes of a job start together",
    ),
    d("wckey", None, Req, W, E::None, BILLING),
    d(
        "wrap",
        None,
        Req,
        R,
        E::None,
        "a command in a script's directives; give it as `suanli submit -- COMMAND`",
    ),
];

/// Why a long option did not name one directive.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Unknown,
    /// A prefix of several: their long names.
    Ambiguous(Vec<&'static str>),
}

/// The directive a long name (without `--`) names: an exact name, else the one whose name it
/// is a prefix of (as sbatch's getopt_long does: `--err` is `--error`).
pub fn long(name: &str) -> Result<&'static Directive, Lookup> {
    if let Some(d) = DIRECTIVES.iter().find(|d| d.long == name) {
        return Ok(d);
    }
    if name.is_empty() {
        return Err(Lookup::Unknown);
    }
    let hits: Vec<&Directive> = DIRECTIVES
        .iter()
        .filter(|d| d.long.starts_with(name))
        .collect();
    match hits.as_slice() {
        [] => Err(Lookup::Unknown),
        [one] => Ok(one),
        many => Err(Lookup::Ambiguous(many.iter().map(|d| d.long).collect())),
    }
}

/// The directive of a short option letter.
pub fn short(c: char) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| d.short == Some(c))
}

const DOC_HEAD: &str = "\
# Slurm batch scripts as suanli jobs

<!-- Generated from crates/suanli-types/src/sbatch/table.rs; a test fails when this file is out
of date. Regenerate: SUANLI_UPDATE_DOCS=1 cargo test -p suanli-types sbatch -->

`suanli submit job.sh [ARGS...]` takes a batch script written for `sbatch`. Its `#SBATCH`
directives (up to the first command line, as in sbatch) become the job spec; the script itself is
uploaded as the working file `job.sh` and run with its `#!` interpreter (default `sh`), with the
ARGS after it.

How directives are read, as sbatch reads them:

- Long options may be shortened to any unambiguous prefix (`--err` is `--error`, `--part` is
  `--partition`); an ambiguous prefix (`--gpu`) is an error naming the candidates.
- Short options may be combined (`-kN2` is `-k -N 2`) and take their value attached (`-N2`) or
  as the next word (`-N 2`); long options as `--nodes=2` or `--nodes 2`. Quotes group words.
- A word starting with `#` ends the directive (a comment: `#SBATCH -N 2  # two nodes`).
- `#SBATCH` lines after the first command are ignored, as sbatch ignores them, with a warning.
- Every error names its line (exit code 2), e.g.
  `error: invalid job spec: job.sh: line 4: --time=forever: expected M, M:S, ...`.

Site names (GRES types, partitions, QoS) mean what the network's map says. The operator
writes it in the client config (`~/.config/suanli/config.toml`):

```toml
[slurm.gres]            # GRES or --gpus type -> chip SKU, family prefix or vendor
h200 = \"H100-SXM\"
a100 = \"A100-80G\"
910b = \"Ascend910B\"

[slurm.partitions.a100_tandon]  # partition -> queue, and optionally priority class and chips
queue = \"gpu\"
chips = \"A100-80G\"

[slurm.qos.mcml]        # QoS -> priority class, and optionally queue
priority = \"standard\"
```

A name not in the map is a warning and the default applies; `suanli submit --strict` makes it
an error. Flags override directives: `--name`, `--nodes`, `--walltime`, `--queue`,
`--priority`, `--cards` and the chip flags (`--sku`, `--family`, `--vendor`, `--chips any`)
replace what the script says, and a directive they replace is not checked; `--stack`,
`--min-tflops` and `--min-memory-gb` add to it.
`gpu` without a type means an NVIDIA GPU; `--chips any` takes any chip instead.

A script that asks for no accelerator (no `--gres=gpu`, `--gpus`, `--gpus-per-node`) is
refused: the network runs jobs on accelerator cards, and a CPU job would be billed a card per
node without a word. Give `--cards N` to run it on cards anyway.

`--dependency`, `--begin`, `--hold` and `--array` mean what they mean to sbatch: the hub keeps
the job (each task of an array) pending, with a reason that says what it waits for, until it
may start; `suanli hold ID` and `suanli release ID` hold and release a pending job. Directives
the network does not honour yet (`--deadline`) are refused naming their line: running such a
job at once would run something else. Options not in this table are warned (an error with
`--strict`).

| Directive | Short | Status | What suanli does |
|---|---|---|---|
";

/// docs/SLURM-INPUT.md, from the table.
pub fn render_doc() -> String {
    let mut out = DOC_HEAD.to_string();
    for d in DIRECTIVES {
        let long = match d.arg {
            Arg::None => format!("`--{}`", d.long),
            Arg::Required => format!("`--{}=…`", d.long),
            Arg::Optional => format!("`--{}[=…]`", d.long),
        };
        let short = d.short.map(|c| format!("`-{c}`")).unwrap_or_default();
        let note = d.note.replace('|', "\\|");
        out += &format!("| {long} | {short} | {} | {note} |\n", d.status.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_its_names_unique() {
        for w in DIRECTIVES.windows(2) {
            assert!(w[0].long < w[1].long, "{} before {}", w[0].long, w[1].long);
        }
        let mut shorts: Vec<char> = DIRECTIVES.iter().filter_map(|d| d.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n, "a short letter is used twice");
        // Only the directives with an effect of their own are honoured or mapped.
        for d in DIRECTIVES {
            let acts = d.effect != Effect::None;
            let claims = matches!(d.status, Status::Honoured | Status::Mapped);
            assert_eq!(acts, claims, "--{}: status {:?}", d.long, d.status);
        }
    }

    #[test]
    fn unambiguous_prefixes_name_one_directive() {
        assert_eq!(long("err").unwrap().long, "error");
        assert_eq!(long("part").unwrap().long, "partition");
        assert_eq!(long("job").unwrap().long, "job-name");
        // An exact name wins over the longer names it is a prefix of.
        assert_eq!(long("gpus").unwrap().long, "gpus");
        assert_eq!(long("time").unwrap().long, "time");
        assert_eq!(long("container").unwrap().long, "container");
        assert_eq!(long("mem").unwrap().long, "mem");
        match long("gpu") {
            Err(Lookup::Ambiguous(c)) => assert!(c.contains(&"gpus") && c.contains(&"gpu-bind")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(long("exp"), Err(Lookup::Ambiguous(_))));
        assert_eq!(long("frobnicate").unwrap_err(), Lookup::Unknown);
        assert_eq!(long("").unwrap_err(), Lookup::Unknown);
        assert_eq!(short('N').unwrap().long, "nodes");
        assert_eq!(short('D').unwrap().long, "chdir");
        assert!(short('z').is_none());
    }
}

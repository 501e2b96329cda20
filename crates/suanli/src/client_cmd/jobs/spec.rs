//! The job spec of `submit` and `quote`: a batch script, a TOML file and/or flags (flags win),
//! validated before anything is sent.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use suanli_types::sbatch::{self, Overrides, SiteMap, parse_flag_duration};
use suanli_types::{ChipRequest, JobSpec, Money, PriorityClass, TenantId};

use crate::client_cmd::exit::Invalid;
use crate::client_cmd::output::note;
use crate::client_cmd::{non_empty, read_text};

#[derive(clap::Args, Debug, Default)]
pub struct SubmitArgs {
    /// A batch script with #SBATCH directives, as for sbatch (see docs/SLURM-INPUT.md); flags
    /// given too override its directives
    #[arg(value_name = "SCRIPT", conflicts_with = "file")]
    script: Option<PathBuf>,
    /// Arguments of the batch script (everything after SCRIPT, as for sbatch)
    #[arg(value_name = "ARGS", requires = "script", allow_hyphen_values = true)]
    script_args: Vec<String>,
    /// Site names in the script (GRES types, partitions, QoS) not in the network's map, and
    /// unknown directives, are errors rather than warnings
    #[arg(long)]
    strict: bool,
    /// `any`: any chip, whatever the script's GRES say (untyped `gpu` means NVIDIA)
    #[arg(long, value_name = "any", value_parser = ["any"])]
    chips: Option<String>,
    /// TOML job spec; flags given too override its fields
    #[arg(short, long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Job name [default: first word of the command]
    #[arg(long)]
    name: Option<String>,
    /// Paying tenant [default: your token's tenant]
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    queue: Option<String>,
    /// public-service, standard or spot
    #[arg(long, value_name = "CLASS")]
    priority: Option<PriorityClass>,
    /// Accepted chip SKUs (repeat or comma-separate), e.g. H100-SXM,H800-SXM
    #[arg(long, value_name = "SKU", value_delimiter = ',')]
    sku: Vec<String>,
    /// Chip vendor, e.g. nvidia, huawei, cambricon
    #[arg(long)]
    vendor: Option<String>,
    /// SKU family prefix, e.g. Ascend910B
    #[arg(long)]
    family: Option<String>,
    /// Minimum dense FP16 TFLOPS per card
    #[arg(long, value_name = "TFLOPS")]
    min_tflops: Option<u32>,
    /// Minimum memory per card in GB
    #[arg(long, value_name = "GB")]
    min_memory_gb: Option<u32>,
    /// Cards per node [default: 1]
    #[arg(long, value_name = "N")]
    cards: Option<u32>,
    /// Nodes, all at one center [default: 1]
    #[arg(long, value_name = "N")]
    nodes: Option<u32>,
    /// Software stack: cuda, cann, neuware, dtk, xpu, musa, maca or any
    #[arg(long)]
    stack: Option<String>,
    /// Wall-time limit: minutes as in Slurm (90), 1:30:00, 2-00:00:00, or 90s, 2h [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_flag_duration)]
    walltime: Option<u64>,
    /// Highest price accepted, yuan per card-hour, e.g. 8.50
    #[arg(long, value_name = "YUAN")]
    max_price: Option<Money>,
    /// Environment variable for the job (repeatable)
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Local file uploaded into the job's working directory (repeatable)
    #[arg(long, value_name = "PATH")]
    file_in: Vec<PathBuf>,
    /// Start only after other jobs, as sbatch: afterok:ID[:ID...], afterany, afternotok, after,
    /// singleton; `,` all of, `?` any of
    #[arg(short = 'd', long, value_name = "LIST")]
    dependency: Option<String>,
    /// Start no earlier than: 2026-12-03T15:00[:SS], HH:MM, now+N[seconds|minutes|hours|days]
    /// (China Standard Time unless a zone is given)
    #[arg(short = 'b', long, value_name = "TIME")]
    begin: Option<String>,
    /// Submit held: it waits until `suanli release ID`
    #[arg(short = 'H', long)]
    hold: bool,
    /// A job array, one job per task: 0-99%10, 1,3,5, 0-15:4 (`%N`: at most N at once)
    #[arg(short = 'a', long, value_name = "TASKS")]
    array: Option<String>,
    /// A warning signal before the wall time runs out (and before a cancel or preemption), as
    /// sbatch: [B:]SIG[@SECS], e.g. USR1@120 (default 60 s; `B:` the batch shell only)
    #[arg(long, value_name = "[B:]SIG[@SECS]")]
    signal: Option<String>,
    /// What a dependency that can never be met does: yes (the default) cancels the job, no
    /// keeps it pending until cancelled
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    kill_on_invalid_dep: Option<bool>,
    /// The model of the library the job runs (name@revision, or name: its newest revision): it
    /// is placed only where the model is certified (suanli certs --model M)
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Only these centers may run it, as sbatch's -M/--clusters (repeatable or comma-separated)
    #[arg(
        short = 'M',
        long = "centers",
        value_name = "CENTER",
        value_delimiter = ','
    )]
    centers: Vec<String>,
    /// Files the job leaves for you, relative to its folder (`out/**/*.csv`, `model.bin`;
    /// repeatable): uploaded when it ends, listed by `suanli outputs ID`, fetched by `suanli
    /// download ID`
    #[arg(long = "output", value_name = "GLOB")]
    outputs: Vec<String>,
    /// Keep the outputs of attempts that were requeued (by default only the latest attempt's)
    #[arg(long)]
    keep_failed_outputs: bool,
    /// A registered dataset the job reads (repeatable): it runs where the data resides, which
    /// it finds at $SUANLI_DATASET_<NAME> (suanli datasets)
    #[arg(long = "dataset", value_name = "NAME")]
    datasets: Vec<String>,
    /// A folder of the job (relative, e.g. ckpt) it keeps its checkpoint in, named in
    /// $SUANLI_CHECKPOINT_DIR: saved while it runs, restored into its next attempt if it is
    /// requeued or preempted
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<String>,
    /// Print only the job id
    #[arg(long)]
    pub parsable: bool,
    /// The command, after `--`; one argument is taken as a shell command line as is
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, got {s:?}")),
    }
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected K=V, got {s:?}"))
}

/// POSIX shell quoting: plain words stay as they are, anything else goes in single quotes.
fn shell_quote(s: &str) -> Cow<'_, str> {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    match plain {
        true => Cow::Borrowed(s),
        false => Cow::Owned(format!("'{}'", s.replace('\'', r"'\''"))),
    }
}

/// The command line for `sh -c`: one argument is a command line already; several are quoted.
fn shell_join(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        _ => args
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Every argument quoted as one word (a script's arguments).
fn shell_join_words(args: &[String]) -> String {
    args.iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `python train.py` -> `python`; `/opt/bin/run.sh x` -> `run.sh`.
fn default_name(command: &str) -> String {
    let first = command
        .split_whitespace()
        .next()
        .unwrap_or("job")
        .trim_matches(['\'', '"']);
    let base = first.rsplit('/').next().unwrap_or(first);
    if base.is_empty() {
        "job".to_string()
    } else {
        base.to_string()
    }
}

pub fn invalid_spec(detail: impl std::fmt::Display) -> anyhow::Error {
    Invalid(format!("invalid job spec: {detail}")).into()
}

/// Reads a TOML spec; a command or name given by flags fills in a file that lacks them.
fn load_spec_file(
    path: &Path,
    command: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<JobSpec> {
    let text = read_text(path)?;
    let toml_err = |e: toml::de::Error| {
        invalid_spec(format!("{}: {}", path.display(), e.to_string().trim_end()))
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(toml_err)?;
    // A wall time written as text reads as flags and scripts give it (`"1:30:00"`, `"90m"`); a
    // bare number as text would be minutes there but seconds in the API, so it is refused. An
    // integer stays seconds, the spec's own unit, so that a spec a program wrote reads back.
    let mut patched = false;
    if let Some(toml::Value::String(given)) = table.get("walltime") {
        let at = |e: String| invalid_spec(format!("{}: walltime: {e}", path.display()));
        if given.trim().chars().all(|c| c.is_ascii_digit()) {
            return Err(at(format!(
                "{given:?} has no unit: write \"{}m\" for minutes (as `--walltime {}` and \
                 `#SBATCH -t {}` mean) or \"{}s\" for seconds",
                given.trim(),
                given.trim(),
                given.trim(),
                given.trim()
            )));
        }
        let secs = parse_flag_duration(given).map_err(at)?;
        table.insert("walltime".into(), i64::try_from(secs).unwrap_or(-1).into());
        patched = true;
    }
    if !table.contains_key("command")
        && let Some(c) = command
    {
        table.insert("command".into(), c.into());
        patched = true;
    }
    if !table.contains_key("name") {
        let cmd = command.or_else(|| table.get("command").and_then(|v| v.as_str()));
        if let Some(n) = name.map(str::to_string).or_else(|| cmd.map(default_name)) {
            table.insert("name".into(), n.into());
            patched = true;
        }
    }
    // Unpatched, parse the text itself so that errors point at lines; patched, a field that
    // does not parse is found in the text too.
    match patched {
        true => table
            .try_into()
            .map_err(|e| match toml::from_str::<JobSpec>(&text) {
                Err(at_line) => toml_err(at_line),
                Ok(_) => toml_err(e),
            }),
        false => toml::from_str(&text).map_err(toml_err),
    }
}

/// The directives the flags replace.
fn overrides(a: &SubmitArgs) -> Overrides {
    Overrides {
        name: a.name.is_some(),
        nodes: a.nodes.is_some(),
        walltime: a.walltime.is_some(),
        queue: a.queue.is_some(),
        priority: a.priority.is_some(),
        cards: a.cards.is_some(),
        chips: a.chips.is_some() || !a.sku.is_empty() || a.vendor.is_some() || a.family.is_some(),
    }
}

/// The job spec from a script or `-f FILE` and/or flags (flags win), validated. `map` is the
/// network's map of Slurm site names.
pub fn build_spec(a: &SubmitArgs, map: &SiteMap) -> anyhow::Result<JobSpec> {
    let command = (!a.command.is_empty()).then(|| shell_join(&a.command));
    if a.script.is_some() && command.is_some() {
        return Err(invalid_spec(
            "give either a batch script or a command after `--`, not both",
        ));
    }
    let mut spec = match (&a.script, &a.file) {
        (Some(path), _) => {
            let text = read_text(path)?;
            let shown = path.display().to_string();
            let opts = sbatch::Options {
                map: map.clone(),
                strict: a.strict,
                overrides: overrides(a),
            };
            let (mut spec, warnings) = sbatch::parse_with(&text, &shown, &opts)
                .map_err(|e| invalid_spec(format!("{shown}: {}: {}", e.field, e.message)))?;
            for w in warnings {
                note(format!("warning: {shown}: {w}"));
            }
            if !a.script_args.is_empty() {
                spec.command = format!("{} {}", spec.command, shell_join_words(&a.script_args));
            }
            spec
        }
        (None, Some(path)) => load_spec_file(path, command.as_deref(), a.name.as_deref())?,
        (None, None) => {
            let cmd = command
                .clone()
                .ok_or_else(|| invalid_spec("command: give it after `--` (suanli submit --cards 8 -- python train.py) or in a file with -f"))?;
            JobSpec::new(a.name.clone().unwrap_or_else(|| default_name(&cmd)), cmd)
        }
    };
    set(&mut spec.command, command);
    set(&mut spec.name, a.name.clone());
    set(&mut spec.queue, a.queue.clone());
    set(&mut spec.priority, a.priority);
    set(&mut spec.cards_per_node, a.cards);
    set(&mut spec.nodes, a.nodes);
    set(&mut spec.stack, a.stack.clone());
    set(&mut spec.walltime, a.walltime);
    set_some(&mut spec.tenant, a.tenant.clone().map(TenantId::new));
    set_some(&mut spec.max_price_per_card_hour, a.max_price);
    set_some(&mut spec.dependency, a.dependency.clone());
    set_some(&mut spec.begin, a.begin.clone());
    set_some(&mut spec.array, a.array.clone());
    set_some(&mut spec.signal, a.signal.clone());
    set(&mut spec.kill_on_invalid_dep, a.kill_on_invalid_dep);
    set_some(&mut spec.model, a.model.clone());
    let centers = non_empty(a.centers.iter().map(String::as_str));
    if !centers.is_empty() {
        spec.centers = centers
            .into_iter()
            .map(suanli_types::CenterId::new)
            .collect();
    }
    spec.hold |= a.hold;
    spec.outputs.extend(a.outputs.iter().cloned());
    spec.keep_failed_outputs |= a.keep_failed_outputs;
    spec.datasets.extend(a.datasets.iter().cloned());
    set_some(&mut spec.checkpoint, a.checkpoint.clone());
    let skus = non_empty(a.sku.iter().map(String::as_str));
    if !skus.is_empty() {
        spec.chips.skus = skus;
    }
    if a.chips.is_some() {
        spec.chips = ChipRequest::default();
    }
    let chips = &mut spec.chips;
    set_some(&mut chips.vendor, a.vendor.clone());
    set_some(&mut chips.family, a.family.clone());
    set_some(&mut chips.min_fp16_tflops, a.min_tflops);
    set_some(&mut chips.min_memory_gb, a.min_memory_gb);
    spec.env.extend(a.env.iter().cloned());
    for path in &a.file_in {
        let name = path
            .file_name()
            .with_context(|| format!("--file-in {}: not a file", path.display()))?;
        spec.files
            .insert(name.to_string_lossy().into_owned(), read_text(path)?);
    }
    spec.validate().map_err(invalid_spec)?;
    Ok(spec)
}

/// A flag given replaces the field.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// A flag given replaces the optional field.
fn set_some<T>(field: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *field = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_cmd::Scratch;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SubmitArgs,
    }

    /// `suanli submit` with whitespace-separated arguments.
    fn submit_args(args: &str) -> SubmitArgs {
        let argv = ["submit"].into_iter().chain(args.split_whitespace());
        Cli::try_parse_from(argv).unwrap().args
    }

    fn build_spec_(a: &SubmitArgs) -> anyhow::Result<JobSpec> {
        build_spec(a, &SiteMap::default())
    }

    fn invalid_message(e: anyhow::Error) -> String {
        e.downcast::<Invalid>().expect("an Invalid error").0
    }

    #[test]
    fn shell_quoting() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_join(&args(&["echo", "hello"])), "echo hello");
        assert_eq!(shell_join(&args(&["echo", "a b"])), "echo 'a b'");
        assert_eq!(
            shell_join(&args(&["echo", "it's", "", "$HOME"])),
            r"echo 'it'\''s' '' '$HOME'"
        );
        assert_eq!(
            shell_join(&args(&["python", "train.py", "--lr=0.1", "a/b.txt"])),
            "python train.py --lr=0.1 a/b.txt"
        );
        assert_eq!(
            shell_join(&args(&["echo hi | tr a-z A-Z"])),
            "echo hi | tr a-z A-Z"
        );
        assert_eq!(shell_quote("*"), "'*'");
    }

    #[test]
    fn spec_from_flags() {
        let a = submit_args(
            "--sku H100-SXM,H800-SXM --cards 8 --nodes 2 --walltime 2h --env A=1=2 \
             --max-price 12.5 --priority spot -- python train.py --lr 0.1",
        );
        let spec = build_spec_(&a).unwrap();
        let mut want = JobSpec::new("python", "python train.py --lr 0.1");
        want.chips.skus = vec!["H100-SXM".into(), "H800-SXM".into()];
        want.cards_per_node = 8;
        want.nodes = 2;
        want.walltime = 7200;
        want.env.insert("A".into(), "1=2".into());
        want.max_price_per_card_hour = Some(Money(125_000));
        want.priority = PriorityClass::Spot;
        assert_eq!(spec, want);
        // Repeated --sku works like a comma list; blanks around and between go.
        let a = submit_args("--sku H100-SXM --sku H800-SXM --name t -- true");
        assert_eq!(
            build_spec_(&a).unwrap().chips.skus,
            ["H100-SXM", "H800-SXM"]
        );
        let a = submit_args("--sku H100-SXM,,H800-SXM -- true");
        assert_eq!(
            build_spec_(&a).unwrap().chips.skus,
            ["H100-SXM", "H800-SXM"]
        );
    }

    #[test]
    fn spec_errors_name_the_field() {
        let e = build_spec_(&submit_args("--sku H100-SXM,B9000 -- true")).unwrap_err();
        assert_eq!(
            invalid_message(e),
            "invalid job spec: chips.skus[1]: unknown chip SKU \"B9000\""
        );
        let e = build_spec_(&submit_args("--cards 8")).unwrap_err();
        assert!(invalid_message(e).starts_with("invalid job spec: command:"));
        assert!(Cli::try_parse_from(["submit", "--walltime", "2x", "--", "true"]).is_err());
    }

    #[test]
    fn flags_override_a_spec_file() {
        let dir = Scratch::new();
        let spec_path = dir.file(
            "job.toml",
            "name = \"train\"\ncommand = \"python train.py\"\ncards_per_node = 8\nwalltime = \"1h\"\n\
             [chips]\nfamily = \"Ascend910B\"\n[env]\nA = \"file\"\nB = \"file\"\n",
        );
        let input = dir.file("data.txt", "hello\n");
        let f = spec_path.display();
        let input = input.display();
        let spec = build_spec_(&submit_args(&format!(
            "-f {f} --cards 4 --env B=flag --file-in {input} --tenant demo-sme"
        )))
        .unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.command.as_str()),
            ("train", "python train.py")
        );
        assert_eq!((spec.cards_per_node, spec.walltime), (4, 3600));
        assert_eq!(spec.chips.family.as_deref(), Some("Ascend910B"));
        assert_eq!(spec.env["A"], "file");
        assert_eq!(spec.env["B"], "flag");
        assert_eq!(spec.files["data.txt"], "hello\n");
        assert_eq!(spec.tenant, Some(TenantId::new("demo-sme")));
        // The command after `--` replaces the file's; a file without name/command gets them from flags.
        let spec = build_spec_(&submit_args(&format!("-f {f} -- echo hi"))).unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.command.as_str()),
            ("train", "echo hi")
        );
        // The file's walltime as text reads as in flags and scripts; an integer is seconds,
        // the spec's unit; a unitless text is refused, naming both readings.
        for (walltime, secs) in [
            ("5400", 5400),
            ("\"1:30:00\"", 5400),
            ("\"90m\"", 5400),
            ("\"2-00:00:00\"", 172_800),
            ("\"45s\"", 45),
        ] {
            dir.file(
                "job.toml",
                &format!("command = \"true\"\nwalltime = {walltime}\n"),
            );
            let spec = build_spec_(&submit_args(&format!("-f {f}"))).unwrap();
            assert_eq!(spec.walltime, secs, "walltime = {walltime}");
        }
        dir.file("job.toml", "command = \"true\"\nwalltime = \"90\"\n");
        let e = invalid_message(build_spec_(&submit_args(&format!("-f {f}"))).unwrap_err());
        assert!(
            e.contains("job.toml: walltime: \"90\" has no unit") && e.contains("\"90m\""),
            "{e}"
        );
        dir.file("job.toml", "command = \"true\"\nwalltime = \"soon\"\n");
        let e = invalid_message(build_spec_(&submit_args(&format!("-f {f}"))).unwrap_err());
        assert!(e.contains("job.toml: walltime: bad duration"), "{e}");
        dir.file("job.toml", "command = \"true\"\nwalltime = \"0:00\"\n");
        let e = invalid_message(build_spec_(&submit_args(&format!("-f {f}"))).unwrap_err());
        assert!(e.contains("walltime"), "{e}");
        // A spec a program wrote (seconds as an integer) reads back as it was.
        let mut written = JobSpec::new("w", "true");
        written.walltime = 7200;
        dir.file("job.toml", &toml::to_string(&written).unwrap());
        assert_eq!(
            build_spec_(&submit_args(&format!("-f {f}"))).unwrap(),
            written
        );
        dir.file("job.toml", "cards_per_node = 2\n");
        let spec = build_spec_(&submit_args(&format!("-f {f} -- /usr/bin/env"))).unwrap();
        assert_eq!((spec.name.as_str(), spec.cards_per_node), ("env", 2));
    }

    #[test]
    fn spec_file_errors_point_at_the_line() {
        let dir = Scratch::new();
        let error_for = |text: &str| {
            let path = dir.file("bad.toml", text);
            invalid_message(
                build_spec_(&submit_args(&format!("-f {}", path.display()))).unwrap_err(),
            )
        };
        let msg = error_for("name = \"x\"\ncommand = \"true\"\ncards_per_node = \"eight\"\n");
        assert!(
            msg.starts_with("invalid job spec: ")
                && msg.contains("line 3")
                && msg.contains("bad.toml"),
            "{msg}"
        );
        let msg = error_for("name = \"x\"\ncommand = \"true\"\ncards = 8\n");
        assert!(msg.contains("cards"), "{msg}");
    }

    #[test]
    fn batch_scripts_with_arguments_flags_and_the_site_map() {
        let dir = Scratch::new();
        let script = dir.file(
            "train.sh",
            "#!/bin/bash\n#SBATCH --gres=gpu:h200:4\n#SBATCH -p a100_tandon\n#SBATCH -t 90\npython t.py \"$@\"\n",
        );
        let p = script.display();
        // Arguments after the script are the script's, flags among them too.
        let spec = build_spec_(&submit_args(&format!("--cards 2 {p} --lr 0.1 it's"))).unwrap();
        assert_eq!(spec.command, "exec /bin/bash job.sh --lr 0.1 'it'\\''s'");
        assert_eq!((spec.cards_per_node, spec.walltime), (2, 5400));
        assert_eq!(
            spec.chips.vendor.as_deref(),
            Some("nvidia"),
            "h200 unknown: any NVIDIA"
        );
        // With --strict the unknown names are errors; flags replacing them silence them.
        let e = build_spec_(&submit_args(&format!("--strict {p}"))).unwrap_err();
        assert!(invalid_message(e).contains("line 2"));
        let spec = build_spec_(&submit_args(&format!(
            "--strict --sku H100-SXM --queue gpu {p}"
        )))
        .unwrap();
        assert_eq!(
            (spec.chips.skus.as_slice(), spec.queue.as_str()),
            (&["H100-SXM".to_string()][..], "gpu")
        );
        assert_eq!(spec.stack, "any");
        // The map names them.
        let map: SiteMap = toml::from_str(
            "[gres]\nh200 = \"H100-SXM\"\n[partitions.a100_tandon]\nqueue = \"gpu\"\n",
        )
        .unwrap();
        let spec = build_spec(&submit_args(&format!("--strict {p}")), &map).unwrap();
        assert_eq!(
            (spec.chips.skus.as_slice(), spec.queue.as_str()),
            (&["H100-SXM".to_string()][..], "gpu")
        );
        // --chips any takes any chip; --walltime is minutes when bare, as -t is.
        let spec = build_spec_(&submit_args(&format!("--chips any --walltime 10 {p}"))).unwrap();
        assert!(spec.chips.is_any());
        assert_eq!((spec.stack.as_str(), spec.walltime), ("any", 600));
        // A script without accelerators: refused, unless cards are given.
        let cpu = dir.file("mpi.sh", "#!/bin/sh\n#SBATCH -N 2 -n 128\nsrun ./a\n");
        let c = cpu.display();
        let e = build_spec_(&submit_args(&format!("{c}"))).unwrap_err();
        assert!(invalid_message(e).contains("no accelerator"));
        let spec = build_spec_(&submit_args(&format!("--cards 1 {c}"))).unwrap();
        assert_eq!(spec.nodes, 2);
        assert!(Cli::try_parse_from(["submit", "--chips", "some", "x.sh"]).is_err());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_name("python train.py"), "python");
        assert_eq!(default_name("/opt/bin/run.sh x"), "run.sh");
        assert_eq!(default_name("'' x"), "job");
    }
}

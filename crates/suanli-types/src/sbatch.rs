//! Slurm batch scripts as job specs: `#SBATCH` directives mapped onto [`JobSpec`].
//!
//! | Slurm | suanli |
//! |---|---|
//! | `-J`, `--job-name` | `name` (default: the script's file name) |
//! | `-N`, `--nodes` | `nodes` (a single number; ranges are refused) |
//! | `--gres=gpu[:TYPE]:N` | `cards_per_node = N`; `TYPE` a SKU or family (`a100`, `Ascend910B`) |
//! | `--gres=npu:N`, `mlu:N`, `dcu:N`, `xpu:N` | `cards_per_node = N` and the vendor (Huawei, Cambricon, Hygon, Kunlunxin) |
//! | `--gpus-per-node=[TYPE:]N` | `cards_per_node = N` (and `TYPE`) |
//! | `-G`, `--gpus=[TYPE:]N` | `N` cards over all nodes: `cards_per_node = N / nodes` |
//! | `-t`, `--time` | `walltime` (`M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`) |
//! | `-p`, `--partition` | `queue` |
//! | `--qos=spot\|standard\|public-service` | `priority` |
//! | `--export=NAME=VALUE,...` | `env` (`ALL`, `NONE` are ignored; names as [`check_env_name`] allows) |
//! | `-o`/`--output`, `-e`/`--error`, `--ntasks-per-node`, `-n`/`--ntasks`, `-c`/`--cpus-per-task`, `--mem`, `--mem-per-cpu`, `-A`/`--account`, `--mail-*`, `--exclusive` | accepted with a warning: suanli captures output itself (`suanli logs`), starts one process per node and does not model CPUs or memory |
//!
//! Any other directive is a warning; an invalid value is an error naming the line. The script
//! itself becomes the working file `job.sh`, run by its `#!` interpreter (default `sh`).

use crate::chips::ChipCatalog;
use crate::spec::input::check_env_name;
use crate::spec::{JobSpec, PriorityClass, SpecError};

/// A directive suanli understood only partly or not at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SbatchWarning {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for SbatchWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses a batch script. `file_name` names the default job name. Errors name the line as the
/// field (`line 4`).
pub fn parse(script: &str, file_name: &str) -> Result<(JobSpec, Vec<SbatchWarning>), SpecError> {
    if let Some(i) = script.lines().position(|l| l.contains('\0')) {
        return Err(err(i + 1, "contains a NUL byte; a batch script is text"));
    }
    let interpreter = script
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| "sh".to_string());
    let default_name = file_name
        .rsplit('/')
        .next()
        .unwrap_or(file_name)
        .trim_end_matches(".sh")
        .to_string();
    let mut spec = JobSpec::new(
        if default_name.is_empty() {
            "job".to_string()
        } else {
            default_name
        },
        format!("{interpreter} job.sh"),
    );
    spec.files.insert("job.sh".into(), script.to_string());
    let mut warnings = Vec::new();
    let mut gpus_total: Option<(usize, u32)> = None;
    for (i, raw) in script.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim_start();
        // Directives stop at the first command line, as in sbatch.
        if !trimmed.starts_with('#') {
            if !trimmed.is_empty() {
                break;
            }
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("#SBATCH") else {
            continue;
        };
        let rest = rest.split(" #").next().unwrap_or(rest).trim();
        for word in split_args(rest) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (word.clone(), None),
            };
            apply(&mut spec, &key, value, line, &mut warnings, &mut gpus_total)?;
        }
    }
    if let Some((line, total)) = gpus_total {
        if spec.nodes == 0 {
            return Err(err(line, "--gpus needs at least one node"));
        }
        if total % spec.nodes != 0 {
            return Err(err(
                line,
                format!(
                    "--gpus={total} does not divide evenly over {} nodes",
                    spec.nodes
                ),
            ));
        }
        spec.cards_per_node = total / spec.nodes;
    }
    spec.validate()?;
    Ok((spec, warnings))
}

fn err(line: usize, message: impl std::fmt::Display) -> SpecError {
    SpecError::new(format!("line {line}"), message)
}

/// Splits `-N 2 --time=1:00:00 -J "a b"` into `["-N", "2", ...]` and joins short options with
/// their value (`-N=2`).
fn split_args(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    // Pair "-N 2" and "--nodes 2" into "-N=2" / "--nodes=2".
    let mut out: Vec<String> = Vec::new();
    let mut it = words.into_iter().peekable();
    while let Some(w) = it.next() {
        let takes_value = w.starts_with('-')
            && !w.contains('=')
            && !matches!(
                w.as_str(),
                "--exclusive" | "--requeue" | "--no-requeue" | "-h" | "--help"
            )
            && it.peek().is_some_and(|n| !n.starts_with('-'));
        if takes_value {
            let v = it.next().expect("peeked");
            out.push(format!("{w}={v}"));
        } else if w.starts_with('-') && !w.starts_with("--") && w.len() > 2 && !w.contains('=') {
            // -N2 (the option letter may be any character: split after it, not after 2 bytes)
            let at = w.char_indices().nth(2).map_or(w.len(), |(i, _)| i);
            out.push(format!("{}={}", &w[..at], &w[at..]));
        } else {
            out.push(w);
        }
    }
    out
}

fn number(line: usize, key: &str, v: &str) -> Result<u32, SpecError> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| err(line, format!("{key}: {v:?} is not a whole number")))
}

fn need(line: usize, key: &str, v: Option<String>) -> Result<String, SpecError> {
    v.filter(|v| !v.is_empty())
        .ok_or_else(|| err(line, format!("{key} needs a value")))
}

/// `[TYPE:]N` -> (type, n)
fn typed_count(line: usize, key: &str, v: &str) -> Result<(Option<String>, u32), SpecError> {
    match v.rsplit_once(':') {
        Some((t, n)) => Ok((Some(t.to_string()), number(line, key, n)?)),
        None => Ok((None, number(line, key, v)?)),
    }
}

/// Maps a GRES or GPU type onto the chip request: a SKU, a family prefix, or a vendor word.
fn chip_type(spec: &mut JobSpec, line: usize, t: &str) -> Result<(), SpecError> {
    let cat = ChipCatalog::builtin();
    if let Some(c) = cat.get(t) {
        spec.chips.skus = vec![c.sku.clone()];
        return Ok(());
    }
    let lower = t.to_ascii_lowercase();
    if cat
        .all()
        .iter()
        .any(|c| c.sku.to_ascii_lowercase().starts_with(&lower))
    {
        spec.chips.family = Some(t.to_string());
        return Ok(());
    }
    if cat.vendors().iter().any(|v| *v == lower) {
        spec.chips.vendor = Some(lower);
        return Ok(());
    }
    Err(err(
        line,
        format!("unknown GPU type {t:?}: use a chip SKU or family from `suanli centers`"),
    ))
}

fn apply(
    spec: &mut JobSpec,
    key: &str,
    value: Option<String>,
    line: usize,
    warnings: &mut Vec<SbatchWarning>,
    gpus_total: &mut Option<(usize, u32)>,
) -> Result<(), SpecError> {
    let mut warn = |m: String| warnings.push(SbatchWarning { line, message: m });
    match key {
        "-J" | "--job-name" => spec.name = need(line, key, value)?,
        "-N" | "--nodes" => {
            let v = need(line, key, value)?;
            if v.contains('-') || v.contains(',') {
                return Err(err(
                    line,
                    format!("{key}={v}: node ranges are not supported; give one number"),
                ));
            }
            spec.nodes = number(line, key, &v)?;
        }
        "--gres" => {
            let v = need(line, key, value)?;
            for part in v.split(',') {
                let mut fields = part.split(':');
                let name = fields.next().unwrap_or_default();
                let rest: Vec<&str> = fields.collect();
                let (ty, n) = match rest.as_slice() {
                    [] => (None, 1),
                    [n] if n.chars().all(|c| c.is_ascii_digit()) => (None, number(line, key, n)?),
                    [t] => (Some(*t), 1),
                    [t, n] => (Some(*t), number(line, key, n)?),
                    _ => {
                        return Err(err(
                            line,
                            format!("--gres={part}: expected NAME[:TYPE][:COUNT]"),
                        ));
                    }
                };
                let vendor = match name {
                    "gpu" => None,
                    "npu" => Some("huawei"),
                    "mlu" => Some("cambricon"),
                    "dcu" => Some("hygon"),
                    "xpu" => Some("kunlunxin"),
                    other => {
                        warn(format!(
                            "--gres={other}: not an accelerator suanli knows; ignored"
                        ));
                        continue;
                    }
                };
                spec.cards_per_node = n;
                if let Some(v) = vendor {
                    spec.chips.vendor = Some(v.to_string());
                }
                if let Some(t) = ty {
                    chip_type(spec, line, t)?;
                }
            }
        }
        "--gpus-per-node" => {
            let (ty, n) = typed_count(line, key, &need(line, key, value)?)?;
            spec.cards_per_node = n;
            if let Some(t) = ty {
                chip_type(spec, line, &t)?;
            }
        }
        "-G" | "--gpus" => {
            let (ty, n) = typed_count(line, key, &need(line, key, value)?)?;
            *gpus_total = Some((line, n));
            if let Some(t) = ty {
                chip_type(spec, line, &t)?;
            }
        }
        "-t" | "--time" => {
            let v = need(line, key, value)?;
            spec.walltime = slurm_time(&v).ok_or_else(|| {
                err(
                    line,
                    format!("--time={v}: expected M, M:S, H:M:S, D-H, D-H:M or D-H:M:S"),
                )
            })?;
        }
        "-p" | "--partition" => spec.queue = need(line, key, value)?,
        "-q" | "--qos" => {
            let v = need(line, key, value)?;
            spec.priority = v.parse::<PriorityClass>().map_err(|e| err(line, e))?;
        }
        "--export" => {
            let v = need(line, key, value)?;
            for item in v.split(',') {
                match item.split_once('=') {
                    Some((k, val)) => {
                        check_env_name(k).map_err(|m| err(line, format!("--export={k}: {m}")))?;
                        spec.env.insert(k.to_string(), val.to_string());
                    }
                    None if item == "ALL" || item == "NONE" => {}
                    None => warn(format!(
                        "--export={item}: only NAME=VALUE is carried to the center; ignored"
                    )),
                }
            }
        }
        "-o" | "--output" | "-e" | "--error" => warn(format!(
            "{key}: suanli keeps stdout and stderr itself (`suanli logs`); ignored"
        )),
        "-n" | "--ntasks" | "--ntasks-per-node" | "-c" | "--cpus-per-task" => warn(format!(
            "{key}: suanli starts one process per node with its cards; start ranks with your launcher"
        )),
        "--mem" | "--mem-per-cpu" | "--mem-per-gpu" => warn(format!(
            "{key}: suanli does not schedule host memory; ignored"
        )),
        "-A" | "--account" => warn(format!(
            "{key}: suanli bills the tenant of your token; ignored"
        )),
        _ => warn(format!("unknown directive {key}; ignored")),
    }
    Ok(())
}

/// Slurm's time formats, in seconds (`None` also when the value overflows).
fn slurm_time(v: &str) -> Option<u64> {
    let num = |s: &str| s.parse::<u64>().ok();
    let hms = |h: u64, m: u64, s: u64| {
        h.checked_mul(3600)?
            .checked_add(m.checked_mul(60)?)?
            .checked_add(s)
    };
    let (days, rest) = match v.split_once('-') {
        Some((d, r)) => (num(d)?, Some(r)),
        None => (0, None),
    };
    let secs = match rest {
        Some(r) => {
            let p: Vec<&str> = r.split(':').collect();
            match p.as_slice() {
                [h] => hms(num(h)?, 0, 0)?,
                [h, m] => hms(num(h)?, num(m)?, 0)?,
                [h, m, s] => hms(num(h)?, num(m)?, num(s)?)?,
                _ => return None,
            }
        }
        None => {
            let p: Vec<&str> = v.split(':').collect();
            match p.as_slice() {
                [m] => hms(0, num(m)?, 0)?,
                [m, s] => hms(0, num(m)?, num(s)?)?,
                [h, m, s] => hms(num(h)?, num(m)?, num(s)?)?,
                _ => return None,
            }
        }
    };
    days.checked_mul(86_400)?.checked_add(secs)
}

#[cfg(test)]
mod tests;

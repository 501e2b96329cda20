//! Slurm batch scripts as job specs: `#SBATCH` directives mapped onto [`JobSpec`].
//!
//! The directive table ([`table::DIRECTIVES`]) says, option by option, whether suanli honours,
//! maps, warns about or refuses it; it drives the parser and generates docs/SLURM-INPUT.md.
//! [`words`] reads a line as sbatch's getopt_long does, [`apply`] carries each directive onto
//! the spec, [`sitemap`] holds the network's map of site names (GRES types, partitions, QoS).
//! Every error names its line as the field (`line 4`), or for what only the finished spec can
//! tell, the spec's field.

use crate::spec::{JobSpec, SpecError};

mod apply;
pub mod sitemap;
pub mod table;
mod words;

pub use apply::slurm_time;
pub use sitemap::{SiteMap, Target};
pub use table::{DIRECTIVES, Directive, Status};

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

/// What flags of `suanli submit` replace: directives for these are not read (nor checked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: bool,
    pub nodes: bool,
    pub walltime: bool,
    pub queue: bool,
    pub priority: bool,
    /// Cards per node (`--cards`): a script without accelerator directives is then accepted.
    pub cards: bool,
    /// The chips and the stack they imply (`--sku`, `--family`, `--vendor`, `--chips any`).
    pub chips: bool,
}

/// How to read a script.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub map: SiteMap,
    /// Site names not in the map, GRES types and options not known are errors, not warnings.
    pub strict: bool,
    pub overrides: Overrides,
}

/// Parses a batch script with the built-in names only, nothing overridden. `file_name` names
/// the default job name.
pub fn parse(script: &str, file_name: &str) -> Result<(JobSpec, Vec<SbatchWarning>), SpecError> {
    parse_with(script, file_name, &Options::default())
}

/// Parses a batch script. The spec is validated; a script that asks for no accelerator is
/// refused unless cards are overridden.
pub fn parse_with(
    script: &str,
    file_name: &str,
    opts: &Options,
) -> Result<(JobSpec, Vec<SbatchWarning>), SpecError> {
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
        // `exec`: the script's interpreter is the batch shell itself (a `B:` warning signal
        // reaches it, not a shell around it).
        format!("exec {interpreter} job.sh"),
    );
    spec.files.insert("job.sh".into(), script.to_string());
    let mut b = apply::Builder::new(spec, opts);
    let mut commands_from: Option<usize> = None;
    for (i, raw) in script.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim_start();
        let directive = raw
            .strip_prefix("#SBATCH")
            .filter(|r| r.is_empty() || r.starts_with(char::is_whitespace));
        if let Some(first) = commands_from {
            if directive.is_some() {
                b.warn(
                    line,
                    format!(
                        "#SBATCH after the first command (line {first}) is ignored, as sbatch ignores it"
                    ),
                );
            }
            continue;
        }
        if !trimmed.starts_with('#') {
            if !trimmed.is_empty() {
                commands_from = Some(line);
            }
            continue;
        }
        let Some(rest) = directive else {
            let looks = trimmed
                .trim_start_matches('#')
                .trim_start()
                .get(..6)
                .is_some_and(|w| w.eq_ignore_ascii_case("sbatch"));
            if looks && !trimmed.starts_with("##") {
                b.warn(
                    line,
                    "not a directive: sbatch reads only `#SBATCH` at the very start of a line; ignored",
                );
            }
            continue;
        };
        let words = words::split(rest).map_err(|m| err(line, m))?;
        let items = words::options(&words).map_err(|m| err(line, m))?;
        for item in items {
            b.item(line, item)?;
        }
    }
    let (spec, warnings) = b.finish()?;
    spec.validate()?;
    Ok((spec, warnings))
}

/// A duration as a flag gives it, one convention with the scripts: a bare number is minutes (as
/// in Slurm); `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S` as in `--time`; or with units, `90s`,
/// `30m`, `2h`, `1h30m`, `2d`. Seconds.
pub fn parse_flag_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.chars()
        .all(|c| c.is_ascii_digit() || c == ':' || c == '-')
    {
        return slurm_time(s).ok_or_else(|| {
            format!("bad duration {s:?}: expected minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or 90s, 30m, 2h")
        });
    }
    crate::spec::parse_duration(s)
}

fn err(line: usize, message: impl std::fmt::Display) -> SpecError {
    SpecError::new(format!("line {line}"), message)
}

#[cfg(test)]
mod corpus_tests;
#[cfg(test)]
mod tests;

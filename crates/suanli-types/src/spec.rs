//! What a tenant submits, and its validation with field paths.
//!
//! [`JobSpec::validate`] checks every field; the rules on what a spec carries onto a machine
//! (environment, working files, text without NUL bytes) are in [`input`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::chips::{Chip, ChipCatalog};
use crate::ids::{TenantId, validate_slug};
use crate::money::Money;

pub mod input;
pub mod outputs;
pub mod sched;
pub mod signal;

pub use input::{
    MAX_ENV_BYTES, MAX_ENV_VARS, MAX_FILES, MAX_FILES_BYTES, MAX_PATH_BYTES,
    MAX_PATH_COMPONENT_BYTES,
};

/// A bad field in a spec: `field` is a path such as `chips.skus[1]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> SpecError {
        SpecError {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

/// Scheduling class: higher classes go first and (later) may preempt lower ones.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum PriorityClass {
    PublicService,
    #[default]
    Standard,
    Spot,
}

impl PriorityClass {
    pub const ALL: [PriorityClass; 3] = [
        PriorityClass::PublicService,
        PriorityClass::Standard,
        PriorityClass::Spot,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PriorityClass::PublicService => "public-service",
            PriorityClass::Standard => "standard",
            PriorityClass::Spot => "spot",
        }
    }
    /// 0 is the most urgent.
    pub fn rank(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for PriorityClass {
    type Err = crate::state::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PriorityClass::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| crate::state::UnknownName {
                what: "priority class",
                input: s.to_string(),
                expected: "public-service, standard, spot".to_string(),
            })
    }
}

/// Which chips a job accepts. Every given constraint must hold; an empty request accepts any chip.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, default)]
pub struct ChipRequest {
    /// Any of these SKUs, e.g. `["H100-SXM", "H800-SXM"]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<String>,
    /// A vendor: nvidia, huawei, cambricon, hygon, kunlunxin, moorethreads, metax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// A SKU family by prefix, e.g. `Ascend910B` matches Ascend910B1 to B4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Minimum dense FP16 TFLOPS per card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_fp16_tflops: Option<u32>,
    /// Minimum memory per card in GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_memory_gb: Option<u32>,
}

impl ChipRequest {
    pub fn matches(&self, chip: &Chip) -> bool {
        (self.skus.is_empty() || self.skus.iter().any(|s| s.eq_ignore_ascii_case(&chip.sku)))
            && self
                .vendor
                .as_deref()
                .is_none_or(|v| v.eq_ignore_ascii_case(&chip.vendor))
            && self.family.as_deref().is_none_or(|f| {
                chip.sku
                    .to_ascii_lowercase()
                    .starts_with(&f.to_ascii_lowercase())
            })
            && self.min_fp16_tflops.is_none_or(|t| chip.fp16_tflops >= t)
            && self.min_memory_gb.is_none_or(|m| chip.memory_gb >= m)
    }

    pub fn is_any(&self) -> bool {
        *self == ChipRequest::default()
    }
}

impl fmt::Display for ChipRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.skus.is_empty() {
            parts.push(self.skus.join("|"));
        }
        if let Some(v) = &self.vendor {
            parts.push(format!("vendor {v}"));
        }
        if let Some(v) = &self.family {
            parts.push(format!("family {v}"));
        }
        if let Some(v) = self.min_fp16_tflops {
            parts.push(format!(">= {v} TFLOPS"));
        }
        if let Some(v) = self.min_memory_gb {
            parts.push(format!(">= {v} GB"));
        }
        if parts.is_empty() {
            f.write_str("any chip")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A job as submitted (CLI flags, a TOML file, or the API's JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub name: String,
    /// Paying tenant; defaults to the submitter's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    #[serde(default = "default_queue")]
    pub queue: String,
    #[serde(default)]
    pub priority: PriorityClass,
    #[serde(default)]
    pub chips: ChipRequest,
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64, default = 1))]
    pub cards_per_node: u32,
    /// Nodes, all at one center, started together (a gang).
    #[serde(default = "one")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4096, default = 1))]
    pub nodes: u32,
    /// Software stack: cuda, cann, neuware, dtk, xpu, musa, maca, or `any`.
    #[serde(default = "any")]
    pub stack: String,
    /// Shell command, run with `sh -c` in the attempt's working directory.
    pub command: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working files written into the working directory before the command runs: path -> content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Wall-time limit in seconds; also accepts "90s", "30m", "2h", "1h30m", "2d".
    #[serde(default = "default_walltime", deserialize_with = "de_duration")]
    #[cfg_attr(feature = "openapi", schema(schema_with = walltime_schema))]
    pub walltime: u64,
    /// Highest list price per card-hour the tenant accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_card_hour: Option<Money>,
    /// Jobs this one waits for, as sbatch's `--dependency`: `afterok:12:13,afterany:14` (all
    /// of), `afterok:5?afternotok:6` (any of), `after`, `singleton`. A dependency that can never
    /// be met (an `afterok` parent failed) cancels the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096, example = "afterok:12"))]
    pub dependency: Option<String>,
    /// Not before this time, as sbatch's `--begin`: `2026-12-03T15:00[:SS]`, `HH:MM[:SS]`,
    /// `now+N[seconds|minutes|hours|days]`; without a zone, China Standard Time. The hub stores
    /// it resolved, as an RFC 3339 time in UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 64, example = "now+10minutes")
    )]
    pub begin: Option<String>,
    /// Submitted held (`--hold`): it waits until released.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// A job array, as sbatch's `--array`: `0-99%10`, `1,3,5`, `0-15:4`. The submit creates one
    /// job per task; `%N` lets at most N of them be placed or running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096, example = "0-99%10"))]
    pub array: Option<String>,
    /// A warning signal, as sbatch's `--signal=[B:]SIG[@SECS]`: `SIG` (`USR1`, `SIGUSR2`, a
    /// number) goes to the job `SECS` seconds (default 60) before its wall time runs out, and
    /// before any stop of the agent's (cancel, preemption); `B:` sends it to the batch shell only.
    /// Without it, a job is warned by SIGTERM and stopped by SIGKILL after the site's kill grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 64, example = "B:USR1@120"))]
    pub signal: Option<String>,
    /// What a dependency that can never be met does, as sbatch's `--kill-on-invalid-dep`: `true`
    /// (the default) cancels the job; `false` keeps it pending, its reason saying why, until it
    /// is cancelled.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub kill_on_invalid_dep: bool,
    /// The model of the library the job runs, as `name@revision` or `name` (its newest
    /// revision): the job is placed only on a chip SKU and stack version where the model is
    /// certified (accepted, functional OK). The hub stores it as `name@revision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(max_length = 200, example = "llama2-7b@v1")
    )]
    pub model: Option<String>,
    /// Only these centers may run the job (sbatch's `-M/--clusters`); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 16))]
    pub centers: Vec<crate::CenterId>,
    /// Files the job leaves for its tenant: patterns relative to the attempt folder (`*` within
    /// a folder, `**` across folders, e.g. `out/**/*.csv`). When the attempt ends, the site
    /// uploads the regular files they match to the hub (`suanli outputs`, `suanli download`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 32))]
    pub outputs: Vec<String>,
    /// Keep the outputs of attempts that were requeued (lost, preempted); by default a job keeps
    /// only its latest attempt's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_failed_outputs: bool,
    /// Registered datasets the job reads (by name): it runs only at a center that holds all of
    /// them, and only for a tenant allowed to use each; each is mounted read-only at the path in
    /// `SUANLI_DATASET_<NAME>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 8))]
    pub datasets: Vec<String>,
    /// A folder of the attempt (relative, e.g. `ckpt`) the job keeps its checkpoint in, named
    /// in `SUANLI_CHECKPOINT_DIR`: the site saves it while the job runs and when it ends, and a
    /// requeued or preempted job's next attempt starts with the last one saved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 1024, example = "ckpt"))]
    pub checkpoint: Option<String>,
}

fn default_queue() -> String {
    "default".to_string()
}
/// A model as a job names it: `name` or `name@revision` (name: lowercase letters, digits and
/// `-`; revision: letters, digits, `.`, `_` and `-`).
pub fn check_model_ref(m: &str) -> Result<(), SpecError> {
    let bad = |msg: String| Err(SpecError::new("model", msg));
    if m.len() > 200 {
        return bad("longer than 200 bytes".into());
    }
    let (name, revision) = match m.split_once('@') {
        Some((n, r)) => (n, Some(r)),
        None => (m, None),
    };
    if let Err(e) = validate_slug(name) {
        return bad(format!(
            "{m:?}: the name {e}; expected name or name@revision"
        ));
    }
    if let Some(r) = revision
        && (r.is_empty()
            || r.len() > 64
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(format!(
            "{m:?}: the revision must be 1 to 64 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn one() -> u32 {
    1
}
fn any() -> String {
    "any".to_string()
}
fn default_walltime() -> u64 {
    3600
}

pub const MAX_WALLTIME_SECS: u64 = 30 * 86_400;
/// The most centers a job may name.
pub const MAX_CENTERS: usize = 16;
/// The most datasets a job may read.
pub const MAX_DATASETS: usize = 8;
pub const MAX_COMMAND_BYTES: usize = 64 << 10;

/// Parses "90", "90s", "30m", "2h", "1h30m", "2d".
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => {
                return Err(format!(
                    "bad duration {s:?}: unknown unit {c:?} (use s, m, h, d)"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("bad duration {s:?}: a number must come before {c:?}"))?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!(
            "bad duration {s:?}: trailing number without a unit"
        ));
    }
    Ok(total)
}

/// What [`de_duration`] accepts: seconds as an integer, or a duration string.
#[cfg(feature = "openapi")]
fn walltime_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(1))
                .maximum(Some(MAX_WALLTIME_SECS as f64)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^\s*([0-9]+|([0-9]+[smhd])+)\s*$"))
                .examples(["30m", "1h30m"]),
        )
        .description(Some(
            "Wall-time limit: seconds (1 to 2592000, 30 days), or a duration such as \"90s\", \
             \"30m\", \"2h\", \"1h30m\", \"2d\"; default 3600. Answers give seconds.",
        ))
        .build()
        .into()
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Secs(u64),
        Text(String),
    }
    match Repr::deserialize(d)? {
        Repr::Secs(n) => Ok(n),
        Repr::Text(s) => parse_duration(&s).map_err(serde::de::Error::custom),
    }
}

impl JobSpec {
    /// A minimal spec: one card of any chip, default everything else.
    pub fn new(name: impl Into<String>, command: impl Into<String>) -> JobSpec {
        JobSpec {
            name: name.into(),
            tenant: None,
            queue: default_queue(),
            priority: PriorityClass::Standard,
            chips: ChipRequest::default(),
            cards_per_node: 1,
            nodes: 1,
            stack: any(),
            command: command.into(),
            env: BTreeMap::new(),
            files: BTreeMap::new(),
            walltime: default_walltime(),
            max_price_per_card_hour: None,
            dependency: None,
            begin: None,
            hold: false,
            array: None,
            signal: None,
            kill_on_invalid_dep: true,
            model: None,
            centers: Vec::new(),
            outputs: Vec::new(),
            keep_failed_outputs: false,
            datasets: Vec::new(),
            checkpoint: None,
        }
    }

    pub fn total_cards(&self) -> u32 {
        self.cards_per_node.saturating_mul(self.nodes)
    }

    /// Does this chip satisfy both the chip request and the stack?
    pub fn accepts_chip(&self, chip: &Chip) -> bool {
        self.chips.matches(chip) && (self.stack == "any" || self.stack == chip.stack)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SpecError> {
        let cat = ChipCatalog::builtin();
        if self.name.trim().is_empty() || self.name.len() > 128 {
            return Err(SpecError::new("name", "must be 1 to 128 characters"));
        }
        input::check_name(&self.name)?;
        if let Some(t) = &self.tenant {
            validate_slug(t.as_str()).map_err(|m| SpecError::new("tenant", m))?;
        }
        validate_slug(&self.queue).map_err(|m| SpecError::new("queue", m))?;
        for (i, sku) in self.chips.skus.iter().enumerate() {
            if cat.get(sku).is_none() {
                return Err(SpecError::new(
                    format!("chips.skus[{i}]"),
                    format!("unknown chip SKU {sku:?}"),
                ));
            }
        }
        if let Some(v) = &self.chips.vendor
            && !cat.vendors().iter().any(|k| k.eq_ignore_ascii_case(v))
        {
            return Err(SpecError::new(
                "chips.vendor",
                format!("unknown vendor {v:?}; known: {}", cat.vendors().join(", ")),
            ));
        }
        if let Some(f) = &self.chips.family
            && !cat.all().iter().any(|c| {
                c.sku
                    .to_ascii_lowercase()
                    .starts_with(&f.to_ascii_lowercase())
            })
        {
            return Err(SpecError::new(
                "chips.family",
                format!("no chip SKU starts with {f:?}"),
            ));
        }
        if self.stack != "any" && !cat.stacks().contains(&self.stack.as_str()) {
            return Err(SpecError::new(
                "stack",
                format!(
                    "unknown software stack {:?}; known: any, {}",
                    self.stack,
                    cat.stacks().join(", ")
                ),
            ));
        }
        if !cat.all().iter().any(|c| self.accepts_chip(c)) {
            return Err(SpecError::new(
                "chips",
                format!(
                    "no chip in the catalog matches {} with stack {}",
                    self.chips, self.stack
                ),
            ));
        }
        if !(1..=64).contains(&self.cards_per_node) {
            return Err(SpecError::new("cards_per_node", "must be 1 to 64"));
        }
        if !(1..=4096).contains(&self.nodes) {
            return Err(SpecError::new("nodes", "must be 1 to 4096"));
        }
        if self.command.trim().is_empty() {
            return Err(SpecError::new("command", "must not be empty"));
        }
        if self.command.len() > MAX_COMMAND_BYTES {
            return Err(SpecError::new("command", "longer than 64 KiB"));
        }
        input::check_command(&self.command)?;
        input::check_env(&self.env)?;
        input::check_files(&self.files)?;
        if self.walltime == 0 || self.walltime > MAX_WALLTIME_SECS {
            return Err(SpecError::new("walltime", "must be 1 second to 30 days"));
        }
        if let Some(p) = self.max_price_per_card_hour
            && p < Money::ZERO
        {
            return Err(SpecError::new(
                "max_price_per_card_hour",
                "must not be negative",
            ));
        }
        self.validate_when()
    }

    /// Checks `dependency`, `begin`, `array`, `signal`, `model` and `centers`.
    fn validate_when(&self) -> Result<(), SpecError> {
        if let Some(d) = &self.dependency {
            if d.len() > 4096 {
                return Err(SpecError::new("dependency", "longer than 4096 bytes"));
            }
            sched::Dependency::parse(d).map_err(|m| SpecError::new("dependency", m))?;
        }
        if let Some(b) = &self.begin {
            if b.len() > 64 {
                return Err(SpecError::new("begin", "longer than 64 bytes"));
            }
            sched::resolve_begin(b, crate::Timestamp(0)).map_err(|m| SpecError::new("begin", m))?;
        }
        if let Some(a) = &self.array {
            if a.len() > 4096 {
                return Err(SpecError::new("array", "longer than 4096 bytes"));
            }
            sched::ArraySpec::parse(a).map_err(|m| SpecError::new("array", m))?;
        }
        if let Some(m) = &self.model {
            check_model_ref(m)?;
        }
        if self.centers.len() > MAX_CENTERS {
            return Err(SpecError::new(
                "centers",
                format!("at most {MAX_CENTERS} centers"),
            ));
        }
        for (i, c) in self.centers.iter().enumerate() {
            validate_slug(c.as_str()).map_err(|m| SpecError::new(format!("centers[{i}]"), m))?;
        }
        outputs::check(&self.outputs)?;
        if let Some(c) = &self.checkpoint {
            input::check_relative_path(c).map_err(|m| SpecError::new("checkpoint", m))?;
        }
        if self.datasets.len() > MAX_DATASETS {
            return Err(SpecError::new(
                "datasets",
                format!("at most {MAX_DATASETS} datasets"),
            ));
        }
        for (i, d) in self.datasets.iter().enumerate() {
            validate_slug(d).map_err(|m| SpecError::new(format!("datasets[{i}]"), m))?;
            if self.datasets[..i].contains(d) {
                return Err(SpecError::new(
                    format!("datasets[{i}]"),
                    format!("{d:?} is named twice"),
                ));
            }
        }
        if let Some(w) = &self.signal {
            if w.len() > 64 {
                return Err(SpecError::new("signal", "longer than 64 bytes"));
            }
            let parsed = signal::WarnSignal::parse(w).map_err(|m| SpecError::new("signal", m))?;
            if u64::from(parsed.lead_secs) >= self.walltime {
                return Err(SpecError::new(
                    "signal",
                    format!(
                        "{w:?}: {} s before the end of a {} s wall time is at or before the start; \
                         ask for fewer seconds",
                        parsed.lead_secs, self.walltime
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether `path` (relative to the attempt folder) lies in the job's checkpoint folder.
    pub fn in_checkpoint(&self, path: &str) -> bool {
        self.checkpoint
            .as_deref()
            .is_some_and(|c| path.strip_prefix(c).is_some_and(|r| r.starts_with('/')))
    }

    /// The parsed warning signal, if the spec has a valid one.
    pub fn warn_signal(&self) -> Option<signal::WarnSignal> {
        self.signal
            .as_deref()
            .and_then(|w| signal::WarnSignal::parse(w).ok())
    }

    /// The parsed dependency, if the spec has a valid one.
    pub fn dependencies(&self) -> Option<sched::Dependency> {
        self.dependency
            .as_deref()
            .and_then(|d| sched::Dependency::parse(d).ok())
    }

    /// The parsed array, if the spec has a valid one.
    pub fn array_spec(&self) -> Option<sched::ArraySpec> {
        self.array
            .as_deref()
            .and_then(|a| sched::ArraySpec::parse(a).ok())
    }

    /// When the job may start, if it names a time (resolved already at submit).
    pub fn begin_at(&self) -> Option<crate::Timestamp> {
        self.begin
            .as_deref()
            .and_then(|b| sched::resolve_begin(b, crate::Timestamp(0)).ok())
    }

    /// The spec as the hub stores it at `now`: `begin` resolved to an RFC 3339 time in UTC
    /// (so that `now+5` means five seconds after the submit, whenever it is read again).
    pub fn resolved(mut self, now: crate::Timestamp) -> Result<JobSpec, SpecError> {
        if let Some(b) = &self.begin {
            let at = sched::resolve_begin(b, now).map_err(|m| SpecError::new("begin", m))?;
            // As `now+N`: a start at most a year after the submit.
            if at.0 > now.plus_secs(366 * 86_400).0 {
                return Err(SpecError::new(
                    "begin",
                    format!("{b:?}: at most a year ahead"),
                ));
            }
            // Whole seconds, rounded up: never before the time asked for.
            let at = crate::Timestamp(
                at.0.div_euclid(1000) * 1000 + if at.0.rem_euclid(1000) > 0 { 1000 } else { 0 },
            );
            self.begin = Some(at.to_string());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests;

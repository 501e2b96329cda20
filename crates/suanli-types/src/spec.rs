//! What a tenant submits, and its validation with field paths.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::chips::{Chip, ChipCatalog};
use crate::ids::{TenantId, validate_slug};
use crate::money::Money;

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
}

fn default_queue() -> String {
    "default".to_string()
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
pub const MAX_FILES_BYTES: usize = 1 << 20;
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
        for k in self.env.keys() {
            let ok = !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !k.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                return Err(SpecError::new(
                    format!("env.{k}"),
                    "variable names use letters, digits and '_' and do not start with a digit",
                ));
            }
            if k.starts_with("SUANLI_") {
                return Err(SpecError::new(
                    format!("env.{k}"),
                    "SUANLI_ variables are set by suanli",
                ));
            }
        }
        let mut bytes = 0usize;
        for (path, content) in &self.files {
            let field = format!("files.{path:?}");
            let bad = path.is_empty()
                || path.starts_with('/')
                || path.contains('\\')
                || path.contains('\0')
                || path
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..");
            if bad {
                return Err(SpecError::new(
                    field,
                    "must be a relative path without '.', '..' or empty components",
                ));
            }
            bytes += path.len() + content.len();
        }
        if bytes > MAX_FILES_BYTES {
            return Err(SpecError::new(
                "files",
                "working files exceed 1 MiB in total",
            ));
        }
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_spec_with_defaults() {
        let s: JobSpec = toml::from_str(
            r#"
            name = "train"
            command = "python train.py"
            cards_per_node = 8
            nodes = 2
            walltime = "2h30m"
            stack = "cann"
            max_price_per_card_hour = "8.00"
            [chips]
            family = "Ascend910B"
            [env]
            EPOCHS = "3"
            "#,
        )
        .unwrap();
        s.validate().unwrap();
        assert_eq!(s.walltime, 9000);
        assert_eq!(s.queue, "default");
        assert_eq!(s.priority, PriorityClass::Standard);
        assert_eq!(s.total_cards(), 16);
        let cat = ChipCatalog::builtin();
        assert!(s.accepts_chip(cat.get("Ascend910B3").unwrap()));
        assert!(!s.accepts_chip(cat.get("Ascend910A").unwrap()));
        assert!(!s.accepts_chip(cat.get("H100-SXM").unwrap()));
    }

    #[test]
    fn unknown_field_is_rejected() {
        let e = toml::from_str::<JobSpec>("name='a'\ncommand='x'\ncards=3\n").unwrap_err();
        assert!(e.to_string().contains("cards"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let base = JobSpec::new("t", "true");
        base.validate().unwrap();
        type Mutation = Box<dyn Fn(&mut JobSpec)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|s| s.chips.skus = vec!["H100-SXM".into(), "H9000".into()]),
                "chips.skus[1]",
            ),
            (Box::new(|s| s.cards_per_node = 0), "cards_per_node"),
            (Box::new(|s| s.nodes = 5000), "nodes"),
            (Box::new(|s| s.command = " ".into()), "command"),
            (Box::new(|s| s.stack = "opencl".into()), "stack"),
            (
                Box::new(|s| s.chips.vendor = Some("intel".into())),
                "chips.vendor",
            ),
            (Box::new(|s| s.walltime = 0), "walltime"),
            (
                Box::new(|s| {
                    s.files.insert("../x".into(), "".into());
                }),
                "files.\"../x\"",
            ),
            (
                Box::new(|s| {
                    s.env.insert("SUANLI_JOB_ID".into(), "1".into());
                }),
                "env.SUANLI_JOB_ID",
            ),
            (Box::new(|s| s.queue = "Bad Queue".into()), "queue"),
            (
                Box::new(|s| {
                    s.stack = "cuda".into();
                    s.chips.vendor = Some("huawei".into());
                }),
                "chips",
            ),
        ];
        for (mutate, field) in cases {
            let mut s = base.clone();
            mutate(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert_eq!(parse_duration("2d").unwrap(), 172_800);
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("10m5").is_err());
    }

    #[test]
    fn json_round_trip() {
        let mut s = JobSpec::new("t", "echo hi");
        s.max_price_per_card_hour = Some(Money::from_yuan(3));
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<JobSpec>(&j).unwrap(), s);
    }
}

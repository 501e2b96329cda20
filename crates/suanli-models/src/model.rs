//! The model record: what a model is, how it is launched on each software stack, the rule its
//! precision is judged by, and the benchmark that certifies it. Written as TOML by the publisher
//! (`suanli model publish FILE.toml`) or sent as JSON to `POST /v1/models`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use suanli_types::ids::validate_slug;
use suanli_types::{ChipCatalog, JobSpec, SpecError};

/// Who may see a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Every principal.
    #[default]
    Public,
    /// The publisher's tenant only (and the operator and supervisors).
    Tenant,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Tenant => "tenant",
        }
    }
}

/// How a model is launched on one software stack: a container image pinned by digest, or a
/// launch script; exactly one of the two.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StackLaunch {
    /// A container image by digest: `registry/name@sha256:<64 hex digits>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A launch script (shell), written as `launch.sh` into the benchmark's working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The framework's version on this stack, e.g. `2.8.0` (torch_npu with CANN 8.3).
    pub framework_version: String,
}

/// How the benchmark's precision value is judged: `|value - reference| <= tolerance` is OK,
/// `<= partial_tolerance` is partial, anything more is NOK.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrecisionRule {
    /// What the value is, e.g. `loss after 100 steps`, `top-1 accuracy`.
    pub metric: String,
    /// The value of the reference run (the model's reference GPU).
    pub reference: f64,
    /// Largest absolute difference that is OK.
    pub tolerance: f64,
    /// Largest absolute difference that is partial; twice `tolerance` if not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_tolerance: Option<f64>,
}

impl PrecisionRule {
    pub fn partial_limit(&self) -> f64 {
        self.partial_tolerance.unwrap_or(self.tolerance * 2.0)
    }
}

/// A model of the library, as published.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// A short id: lowercase letters, digits and `-`.
    pub name: String,
    /// The revision, e.g. `v1` or a commit; a name and revision are published once.
    pub revision: String,
    /// What it does, e.g. `text-generation`, `image-classification`.
    pub task: String,
    /// e.g. `pytorch`, `mindspore`, `paddle`.
    pub framework: String,
    /// Parameter count.
    pub parameters: u64,
    /// SPDX identifier or licence name, e.g. `Apache-2.0`.
    pub licence: String,
    #[serde(default)]
    pub visibility: Visibility,
    /// The unit of the benchmark's throughput per card, e.g. `tokens/s`, `samples/s`.
    pub unit: String,
    /// Throughput per card of the reference run, in `unit`: what performance is judged against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_throughput: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<PrecisionRule>,
    /// Per software stack (cuda, cann, neuware, ...), how the model is launched there.
    pub stacks: BTreeMap<String, StackLaunch>,
    /// The certification benchmark: a job whose output's last line is the result as JSON. Its
    /// chips and stack are set at each certification; it must not name a tenant.
    pub benchmark: JobSpec,
}

/// The longest launch script.
pub const MAX_SCRIPT_BYTES: usize = 64 << 10;
/// The longest free text field (task, framework, licence, unit, metric).
pub const MAX_TEXT: usize = 128;

fn text(field: &str, v: &str) -> Result<(), SpecError> {
    if v.trim().is_empty() || v.chars().count() > MAX_TEXT {
        return Err(SpecError::new(
            field,
            format!("must be 1 to {MAX_TEXT} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(SpecError::new(field, "must not contain control characters"));
    }
    Ok(())
}

fn finite(field: &str, v: f64, min: f64) -> Result<(), SpecError> {
    if !v.is_finite() || v < min || v > 1e15 {
        return Err(SpecError::new(
            field,
            format!("must be a finite number from {min} to 1e15, not {v}"),
        ));
    }
    Ok(())
}

/// Checks an image reference pinned by digest: `name@sha256:<64 lowercase hex digits>`.
fn image_ref(field: &str, v: &str) -> Result<(), SpecError> {
    let Some((name, digest)) = v.rsplit_once('@') else {
        return Err(SpecError::new(
            field,
            "must be pinned by digest: name@sha256:<64 hex digits>",
        ));
    };
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if name.is_empty()
        || name.len() > 255
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"./-_:".contains(&b))
        || hex.len() != 64
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SpecError::new(
            field,
            format!("{v:?} is not name@sha256:<64 lowercase hex digits>"),
        ));
    }
    Ok(())
}

impl ModelSpec {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_slug(&self.name).map_err(|m| SpecError::new("name", m))?;
        if self.revision.is_empty()
            || self.revision.len() > 64
            || !self
                .revision
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(SpecError::new(
                "revision",
                "must be 1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        text("task", &self.task)?;
        text("framework", &self.framework)?;
        text("licence", &self.licence)?;
        text("unit", &self.unit)?;
        if self.parameters == 0 {
            return Err(SpecError::new("parameters", "must be at least 1"));
        }
        if let Some(t) = self.reference_throughput {
            finite("reference_throughput", t, f64::MIN_POSITIVE)?;
        }
        if let Some(p) = &self.precision {
            text("precision.metric", &p.metric)?;
            finite("precision.reference", p.reference, -1e15)?;
            finite("precision.tolerance", p.tolerance, 0.0)?;
            if let Some(pt) = p.partial_tolerance {
                finite("precision.partial_tolerance", pt, p.tolerance)?;
            }
        }
        if self.stacks.is_empty() {
            return Err(SpecError::new(
                "stacks",
                "name at least one software stack the model runs on",
            ));
        }
        let known = ChipCatalog::builtin().stacks();
        for (stack, launch) in &self.stacks {
            let at = |f: &str| format!("stacks.{stack}.{f}");
            if !known.contains(&stack.as_str()) {
                return Err(SpecError::new(
                    format!("stacks.{stack}"),
                    format!("unknown stack; known: {}", known.join(", ")),
                ));
            }
            match (&launch.image, &launch.script) {
                (Some(i), None) => image_ref(&at("image"), i)?,
                (None, Some(s)) => {
                    if s.trim().is_empty() || s.len() > MAX_SCRIPT_BYTES || s.contains('\0') {
                        return Err(SpecError::new(
                            at("script"),
                            format!("must be 1 to {MAX_SCRIPT_BYTES} bytes without NUL"),
                        ));
                    }
                }
                _ => {
                    return Err(SpecError::new(
                        format!("stacks.{stack}"),
                        "give exactly one of image (by digest) or script",
                    ));
                }
            }
            text(&at("framework_version"), &launch.framework_version)?;
        }
        if self.benchmark.tenant.is_some() {
            return Err(SpecError::new(
                "benchmark.tenant",
                "the benchmark runs for the tenant that asks for a certification; do not name one",
            ));
        }
        // One run, at once: an array would bill many jobs and judge one; a hold, a begin time
        // or a dependency would keep the record running.
        let b = &self.benchmark;
        for (field, set) in [
            ("array", b.array.is_some()),
            ("dependency", b.dependency.is_some()),
            ("begin", b.begin.is_some()),
            ("hold", b.hold),
        ] {
            if set {
                return Err(SpecError::new(
                    format!("benchmark.{field}"),
                    "a benchmark is one job that runs when asked for",
                ));
            }
        }
        if b.model.is_some() {
            return Err(SpecError::new(
                "benchmark.model",
                "a benchmark is what certifies a model; it cannot wait for a certification itself",
            ));
        }
        if self.benchmark.files.contains_key(LAUNCH_FILE)
            && self.stacks.values().any(|l| l.script.is_some())
        {
            return Err(SpecError::new(
                format!("benchmark.files.{LAUNCH_FILE}"),
                "is written from the stack's launch script",
            ));
        }
        self.benchmark
            .validate()
            .map_err(|e| SpecError::new(format!("benchmark.{}", e.field), e.message))?;
        Ok(())
    }

    /// The benchmark to run on `sku` with `stack`: the chips and stack pinned, the stack's
    /// launch script written as [`LAUNCH_FILE`], and `MODEL_*` variables (`MODEL_NAME`, `MODEL_FRAMEWORK_VERSION`, `MODEL_IMAGE` or `MODEL_LAUNCH`) set.
    pub fn benchmark_job(&self, sku: &str, stack: &str) -> Result<JobSpec, SpecError> {
        let Some(launch) = self.stacks.get(stack) else {
            return Err(SpecError::new(
                "stack",
                format!(
                    "model {}@{} has no launch for stack {stack} (it has: {})",
                    self.name,
                    self.revision,
                    self.stacks.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let mut job = self.benchmark.clone();
        job.name = format!("certify-{}-{}", self.name, self.revision);
        job.name.truncate(128);
        job.chips = suanli_types::ChipRequest {
            skus: vec![sku.to_string()],
            ..Default::default()
        };
        job.stack = stack.to_string();
        job.env.insert(
            "MODEL_NAME".into(),
            format!("{}@{}", self.name, self.revision),
        );
        job.env.insert(
            "MODEL_FRAMEWORK_VERSION".into(),
            launch.framework_version.clone(),
        );
        if let Some(image) = &launch.image {
            job.env.insert("MODEL_IMAGE".into(), image.clone());
        }
        if let Some(script) = &launch.script {
            job.files.insert(LAUNCH_FILE.into(), script.clone());
            job.env
                .insert("MODEL_LAUNCH".into(), LAUNCH_FILE.to_string());
        }
        job.validate()
            .map_err(|e| SpecError::new(format!("benchmark.{}", e.field), e.message))?;
        Ok(job)
    }
}

/// The file a stack's launch script is written to in the benchmark's working directory.
pub const LAUNCH_FILE: &str = "launch.sh";

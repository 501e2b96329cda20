//! Each directive carried onto the spec, by its table entry's status and effect; what the
//! directives say about cards and chips is gathered and settled at the end ([`Builder::finish`]).

use super::sitemap::{SiteMap, builtin_chips};
use super::table::{Effect, Status};
use super::words::Item;
use super::{Options, SbatchWarning, err};
use crate::spec::input::check_env_name;
use crate::spec::{ChipRequest, JobSpec, PriorityClass, SpecError};

/// Chips a directive asked for.
#[derive(Clone, Debug)]
struct Chips {
    request: ChipRequest,
    stack: Option<&'static str>,
    /// Untyped `gpu`: a more specific directive (a type, a constraint, a partition) wins.
    default: bool,
}

/// The spec being built from a script's directives.
pub struct Builder<'a> {
    spec: JobSpec,
    opts: &'a Options,
    warnings: Vec<SbatchWarning>,
    /// `(line, cards per node)` of the last GRES or `--gpus-per-node`.
    per_node: Option<(usize, u32)>,
    /// `(line, cards over all nodes)` of the last `--gpus`.
    total: Option<(usize, u32)>,
    chips: Option<Chips>,
    min_memory_gb: Option<u32>,
    /// `(line, directive)` of a `--gpus-per-task`, which alone says no node's cards.
    per_task: Option<(usize, String)>,
}

impl<'a> Builder<'a> {
    pub fn new(spec: JobSpec, opts: &'a Options) -> Builder<'a> {
        Builder {
            spec,
            opts,
            warnings: Vec::new(),
            per_node: None,
            total: None,
            chips: None,
            min_memory_gb: None,
            per_task: None,
        }
    }

    pub fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.warnings.push(SbatchWarning {
            line,
            message: message.into(),
        });
    }

    /// A warning, or with `--strict` an error.
    fn unknown(&mut self, line: usize, message: String) -> Result<(), SpecError> {
        match self.opts.strict {
            true => Err(err(line, format!("{message} (--strict)"))),
            false => {
                self.warn(line, message);
                Ok(())
            }
        }
    }

    fn map(&self) -> &SiteMap {
        &self.opts.map
    }

    pub fn item(&mut self, line: usize, item: Item) -> Result<(), SpecError> {
        let (d, value, written) = match item {
            Item::Known {
                directive,
                value,
                written,
            } => (directive, value, written),
            Item::Unknown(w) => {
                return self.unknown(line, format!("unknown directive {w}; ignored"));
            }
            Item::Word(w) if w == "hetjob" || w == "packjob" => {
                return Err(err(
                    line,
                    format!(
                        "{w}: heterogeneous jobs are not supported; submit each component as its own job"
                    ),
                ));
            }
            Item::Word(w) => {
                self.warn(line, format!("{w:?} is not an option; ignored"));
                return Ok(());
            }
        };
        let shown = match &value {
            Some(v) if written.starts_with("--") => format!("{written}={v}"),
            Some(v) => format!("{written} {v}"),
            None => written.clone(),
        };
        if d.long == "gpus-per-task" {
            self.per_task = Some((line, shown.clone()));
        }
        match d.status {
            Status::Refused => return Err(err(line, format!("{shown}: {}", d.note))),
            Status::Warned => {
                self.warn(line, format!("{shown}: {}; ignored", d.note));
                return Ok(());
            }
            Status::Honoured | Status::Mapped => {}
        }
        let o = self.opts.overrides;
        let v = value.unwrap_or_default();
        if v.is_empty() && !matches!(d.effect, Effect::None | Effect::Hold) {
            return Err(err(line, format!("{written} needs a value")));
        }
        match d.effect {
            Effect::Name if !o.name => self.spec.name = v,
            Effect::Nodes if !o.nodes => self.spec.nodes = nodes(line, &shown, &v)?,
            Effect::Time if !o.walltime => {
                self.spec.walltime = slurm_time(&v).ok_or_else(|| {
                    err(
                        line,
                        format!("{shown}: expected M, M:S, H:M:S, D-H, D-H:M or D-H:M:S (at most 30 days)"),
                    )
                })?;
            }
            Effect::Gres => self.gres(line, &v)?,
            Effect::GpusPerNode | Effect::Gpus => {
                let (ty, n) = match v.rsplit_once(':') {
                    Some((t, n)) => (Some(t), number(line, &shown, n)?),
                    None => (None, number(line, &shown, &v)?),
                };
                match d.effect {
                    Effect::Gpus => {
                        self.total = Some((line, n));
                        self.per_node = None;
                    }
                    _ => {
                        self.per_node = Some((line, n));
                        self.total = None;
                    }
                }
                self.gpu_type(line, "gpu", ty)?;
            }
            Effect::Partition if !o.queue => self.site_name(line, "partition", &v)?,
            Effect::Qos if !o.priority => self.site_name(line, "qos", &v)?,
            Effect::Constraint => match self.map().chips(&v) {
                Some(request) => self.set_chips(request, None, false),
                None => self.warn(
                    line,
                    format!("{shown}: names no GPU type this network knows; ignored"),
                ),
            },
            Effect::Export => self.export(line, &v)?,
            Effect::Dependency => {
                crate::spec::sched::Dependency::parse(&v)
                    .map_err(|m| err(line, format!("{shown}: {m}")))?;
                self.spec.dependency = Some(v);
            }
            Effect::Begin => {
                crate::spec::sched::resolve_begin(&v, crate::Timestamp(0))
                    .map_err(|m| err(line, format!("{shown}: {m}")))?;
                self.spec.begin = Some(v);
            }
            Effect::Hold => self.spec.hold = true,
            Effect::Array => {
                crate::spec::sched::ArraySpec::parse(&v)
                    .map_err(|m| err(line, format!("{shown}: {m}")))?;
                self.spec.array = Some(v);
            }
            Effect::Clusters => {
                let names: Vec<&str> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.iter().any(|n| n.eq_ignore_ascii_case("all")) {
                    self.spec.centers.clear();
                } else {
                    let mut centers = Vec::new();
                    for n in names {
                        crate::ids::validate_slug(n)
                            .map_err(|m| err(line, format!("{shown}: center {n:?} {m}")))?;
                        centers.push(crate::CenterId::new(n));
                    }
                    self.spec.centers = centers;
                }
            }
            Effect::KillOnInvalidDep => {
                self.spec.kill_on_invalid_dep = match v.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(err(line, format!("{shown}: expected yes or no"))),
                }
            }
            Effect::Signal => {
                let w = crate::spec::signal::WarnSignal::parse(&v)
                    .map_err(|m| err(line, format!("{shown}: {m}")))?;
                self.spec.signal = Some(w.to_string());
            }
            _ => {}
        }
        Ok(())
    }

    fn set_chips(&mut self, request: ChipRequest, stack: Option<&'static str>, default: bool) {
        if default && self.chips.as_ref().is_some_and(|c| !c.default) {
            return;
        }
        self.chips = Some(Chips {
            request,
            stack,
            default,
        });
    }

    /// The chips of a GRES name and type (`gpu`, `a100`).
    fn gpu_type(&mut self, line: usize, name: &str, ty: Option<&str>) -> Result<(), SpecError> {
        let vendor = match name {
            "gpu" => "nvidia",
            "npu" => "huawei",
            "mlu" => "cambricon",
            "dcu" => "hygon",
            "xpu" => "kunlunxin",
            _ => unreachable!("only accelerator GRES have types here"),
        };
        let by_vendor = ChipRequest {
            vendor: Some(vendor.to_string()),
            ..ChipRequest::default()
        };
        let stack = (vendor == "nvidia").then_some("cuda");
        let Some(ty) = ty else {
            self.set_chips(by_vendor, stack, name == "gpu");
            return Ok(());
        };
        if self.opts.overrides.chips {
            return Ok(());
        }
        match self.map().chips(ty) {
            Some(request) => {
                self.set_chips(request, None, false);
                Ok(())
            }
            None => {
                self.set_chips(by_vendor, stack, false);
                self.unknown(
                    line,
                    format!(
                        "GPU type {ty:?} is not in this network's GRES map nor a chip SKU or family; taking any {vendor} card (map it, or give --sku/--family)"
                    ),
                )
            }
        }
    }

    fn gres(&mut self, line: usize, v: &str) -> Result<(), SpecError> {
        for part in v.split(',') {
            let mut fields = part.split(':');
            let name = fields.next().unwrap_or_default().to_ascii_lowercase();
            let rest: Vec<&str> = fields.collect();
            if name == "gpumem" || name == "vram" {
                let [m] = rest.as_slice() else {
                    return Err(err(
                        line,
                        format!("--gres={part}: expected {name}:SIZE, e.g. {name}:40G"),
                    ));
                };
                self.min_memory_gb = Some(gigabytes(m).ok_or_else(|| {
                    err(
                        line,
                        format!("--gres={part}: expected a size in G or M, e.g. {name}:40G"),
                    )
                })?);
                continue;
            }
            if !matches!(name.as_str(), "gpu" | "npu" | "mlu" | "dcu" | "xpu") {
                self.warn(
                    line,
                    format!("--gres={part}: not an accelerator suanli knows; ignored"),
                );
                continue;
            }
            let count = |n: &str| number(line, &format!("--gres={part}"), n);
            let (ty, n) = match rest.as_slice() {
                [] => (None, 1),
                [n] if n.chars().all(|c| c.is_ascii_digit()) => (None, count(n)?),
                [t] => (Some(*t), 1),
                [t, n] => (Some(*t), count(n)?),
                _ => {
                    return Err(err(
                        line,
                        format!("--gres={part}: expected NAME[:TYPE][:COUNT]"),
                    ));
                }
            };
            self.per_node = Some((line, n));
            self.total = None;
            self.gpu_type(line, &name, ty)?;
        }
        Ok(())
    }

    /// A partition or QoS name: the map's target, else (QoS) a class name, else unknown.
    fn site_name(&mut self, line: usize, what: &str, v: &str) -> Result<(), SpecError> {
        let names: Vec<&str> = v.split(',').filter(|n| !n.is_empty()).collect();
        let Some(name) = names.first().copied() else {
            return Err(err(line, format!("--{what} needs a value")));
        };
        if names.len() > 1 {
            self.warn(
                line,
                format!("--{what}={v}: only the first name, {name}, is used"),
            );
        }
        let table = match what {
            "partition" => &self.opts.map.partitions,
            _ => &self.opts.map.qos,
        };
        if let Some(t) = table.get(name).cloned() {
            let o = self.opts.overrides;
            if let Some(q) = t.queue.filter(|_| !o.queue) {
                self.spec.queue = q;
            }
            if let Some(p) = t.priority.filter(|_| !o.priority) {
                self.spec.priority = p;
            }
            if let Some(c) = t.chips.as_deref().and_then(builtin_chips) {
                self.set_chips(c, None, false);
            }
            return Ok(());
        }
        if what == "qos"
            && let Ok(p) = name.parse::<PriorityClass>()
        {
            if !self.opts.overrides.priority {
                self.spec.priority = p;
            }
            return Ok(());
        }
        let fallback = match what {
            "partition" => "the job goes to the default queue (or give --queue)",
            _ => "the priority class is standard (or give --priority)",
        };
        self.unknown(
            line,
            format!("--{what}={name} is not in this network's {what} map; {fallback}"),
        )
    }

    fn export(&mut self, line: usize, v: &str) -> Result<(), SpecError> {
        for item in v.split(',') {
            match item.split_once('=') {
                Some((k, val)) => {
                    check_env_name(k).map_err(|m| err(line, format!("--export={k}: {m}")))?;
                    self.spec.env.insert(k.to_string(), val.to_string());
                }
                None if item == "ALL" || item == "NONE" || item.is_empty() => {}
                None => self.warn(
                    line,
                    format!("--export={item}: only NAME=VALUE is carried to the center; ignored"),
                ),
            }
        }
        Ok(())
    }

    /// Settles cards and chips and hands back the spec (not yet validated).
    pub fn finish(mut self) -> Result<(JobSpec, Vec<SbatchWarning>), SpecError> {
        let o = self.opts.overrides;
        let spec = &mut self.spec;
        if !o.cards {
            match (self.per_node, self.total) {
                (_, Some((line, total))) => {
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
                (Some((_, n)), None) => spec.cards_per_node = n,
                (None, None) => {}
            }
            if let (None, None, Some((line, shown))) = (self.per_node, self.total, &self.per_task) {
                return Err(err(
                    *line,
                    format!(
                        "{shown}: cards per task do not say the cards of a node; add --gpus-per-node=N or --gres=gpu:N (or give --cards N)"
                    ),
                ));
            }
            if spec.cards_per_node == 0 || (self.per_node, self.total) == (None, None) {
                return Err(SpecError::new(
                    "cards_per_node",
                    "the script asks for no accelerator (no --gres=gpu, --gpus or --gpus-per-node): \
                     the network runs jobs on accelerator cards and would bill one per node; \
                     give --cards N to run it on cards anyway",
                ));
            }
        }
        if !o.chips {
            if let Some(c) = self.chips {
                spec.chips = c.request;
                if let Some(s) = c.stack {
                    spec.stack = s.to_string();
                }
            }
            if self.min_memory_gb.is_some() {
                spec.chips.min_memory_gb = self.min_memory_gb;
            }
        }
        Ok((self.spec, self.warnings))
    }
}

fn number(line: usize, shown: &str, v: &str) -> Result<u32, SpecError> {
    v.trim()
        .parse::<u32>()
        .map_err(|_| err(line, format!("{shown}: {v:?} is not a whole number")))
}

/// `-N 2`, or `-N 2-2`; a real range is refused.
fn nodes(line: usize, shown: &str, v: &str) -> Result<u32, SpecError> {
    let (lo, hi) = v.split_once('-').unwrap_or((v, v));
    let (lo, hi) = (number(line, shown, lo)?, number(line, shown, hi)?);
    if lo != hi || v.contains(',') {
        return Err(err(
            line,
            format!("{shown}: node ranges are not supported; give one number"),
        ));
    }
    Ok(lo)
}

/// `40G`, `40GB`, `40960M` -> whole gigabytes (megabytes rounded up).
fn gigabytes(s: &str) -> Option<u32> {
    let lower = s.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u32 = digits.parse().ok()?;
    match &lower[digits.len()..] {
        "g" | "gb" => Some(n),
        "m" | "mb" => Some(n.div_ceil(1024)),
        "t" | "tb" => n.checked_mul(1024),
        _ => None,
    }
}

/// Slurm's time formats, in seconds (`None` also when the value overflows).
pub fn slurm_time(v: &str) -> Option<u64> {
    let num = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let hms = |h: u64, m: u64, s: u64| {
        h.checked_mul(3600)?
            .checked_add(m.checked_mul(60)?)?
            .checked_add(s)
    };
    let v = v.trim();
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
mod tests {
    use super::*;

    #[test]
    fn times_nodes_and_sizes() {
        assert_eq!(slurm_time("2-6"), Some(2 * 86_400 + 6 * 3600));
        assert_eq!(slurm_time("10:30"), Some(630));
        assert_eq!(slurm_time("90"), Some(5400));
        assert_eq!(slurm_time("1:30:00"), Some(5400));
        assert_eq!(slurm_time("2-00:00:00"), Some(2 * 86_400));
        assert_eq!(slurm_time("+5"), None);
        assert_eq!(slurm_time("x"), None);
        assert_eq!(slurm_time("UNLIMITED"), None);
        assert_eq!(slurm_time("18446744073709551615-0"), None);
        assert_eq!(slurm_time("5124095576030432:0:0"), None);
        assert_eq!(nodes(1, "-N", "2-2").unwrap(), 2);
        assert!(nodes(1, "-N", "2-4").is_err());
        assert_eq!(gigabytes("40G"), Some(40));
        assert_eq!(gigabytes("40gb"), Some(40));
        assert_eq!(gigabytes("10240M"), Some(10));
        assert_eq!(gigabytes("10241M"), Some(11));
        assert_eq!(gigabytes("40"), None);
        assert_eq!(gigabytes("G"), None);
    }
}

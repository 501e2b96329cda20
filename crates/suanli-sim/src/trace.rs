//! Trace readers: Philly CSV, Tiresias CSV and the native JSONL format.
//!
//! Every reader returns the jobs sorted by submit time (ties keep file order), with times in
//! milliseconds as the trace gives them (Philly: since the Unix epoch; the others: since the
//! trace's own zero). [`crate::mapping`] turns them into job specs and shifts them to start at 0.
//! Bad input is an [`InputError`] naming the file, line and column (1-based).

use std::path::Path;

use serde::Deserialize;
use suanli_types::spec::MAX_WALLTIME_SECS;
use suanli_types::{ChipRequest, JobSpec, Money, PriorityClass};

use crate::csv::{Csv, Field};

/// A file that could not be read or has a bad entry.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// `file:line:column: message`, as compilers print it.
    #[error("{file}:{line}:{column}: {message}")]
    Bad {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

impl InputError {
    pub fn bad(file: &str, line: usize, column: usize, message: impl Into<String>) -> InputError {
        InputError::Bad {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// The trace formats the simulator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// `timestamp,duration,num_gpus,gpu_time,cluster`
    Philly,
    /// `job_id,num_gpu,submit_time,iterations,model_name,duration,interval`
    Tiresias,
    /// One JSON object per line; see the crate documentation.
    Native,
}

impl TraceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceFormat::Philly => "philly",
            TraceFormat::Tiresias => "tiresias",
            TraceFormat::Native => "native",
        }
    }

    /// Guesses the format from the first line that is not blank or a `#` comment: `{` is native,
    /// a header with `num_gpus` is Philly, one with `num_gpu` is Tiresias.
    pub fn detect(text: &str) -> Option<TraceFormat> {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))?;
        if first.starts_with('{') {
            return Some(TraceFormat::Native);
        }
        let cols: Vec<&str> = first
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        if cols.contains(&"num_gpus") {
            Some(TraceFormat::Philly)
        } else if cols.contains(&"num_gpu") {
            Some(TraceFormat::Tiresias)
        } else {
            None
        }
    }
}

impl std::str::FromStr for TraceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            TraceFormat::Philly,
            TraceFormat::Tiresias,
            TraceFormat::Native,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| format!("unknown trace format {s:?}; expected philly, tiresias or native"))
    }
}

/// How many cards a trace job asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A GPU count, shaped by [`crate::mapping::shape_for_gpus`].
    Gpus(u32),
    /// An explicit gang (native traces).
    Gang { cards_per_node: u32, nodes: u32 },
}

/// One job as a trace describes it. Fields a trace does not give are `None`; the mapping fills
/// them from seeded draws.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceJob {
    /// Line in the file (1-based), for messages.
    pub line: usize,
    pub submit_ms: i64,
    /// Run time on any chip, at least 1 ms (a zero duration is read as 1 s).
    pub duration_ms: i64,
    pub shape: Shape,
    pub tenant: String,
    pub priority: Option<PriorityClass>,
    /// Chip request and stack, given together (a native line with either field).
    pub chips: Option<(ChipRequest, String)>,
    pub walltime_secs: Option<u64>,
    pub max_price: Option<Money>,
}

/// A trace read from a file.
#[derive(Clone, Debug)]
pub struct Trace {
    pub file: String,
    pub format: TraceFormat,
    /// Sorted by submit time; ties in file order.
    pub jobs: Vec<TraceJob>,
}

/// Reads a trace file; `format` `None` detects it (see [`TraceFormat::detect`]).
pub fn read_trace(path: &Path, format: Option<TraceFormat>) -> Result<Trace, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        file: file.clone(),
        source,
    })?;
    parse_trace(&file, &text, format)
}

/// Parses trace text; `file` is only used in messages.
pub fn parse_trace(
    file: &str,
    text: &str,
    format: Option<TraceFormat>,
) -> Result<Trace, InputError> {
    let format = match format {
        Some(f) => f,
        None => TraceFormat::detect(text).ok_or_else(|| {
            InputError::bad(
                file,
                1,
                1,
                "cannot tell the trace format: expected a Philly header (timestamp,duration,\
                 num_gpus,gpu_time,cluster), a Tiresias header (job_id,num_gpu,submit_time,...) \
                 or JSON lines; pass --format",
            )
        })?,
    };
    let mut jobs = match format {
        TraceFormat::Philly => parse_philly(file, text)?,
        TraceFormat::Tiresias => parse_tiresias(file, text)?,
        TraceFormat::Native => parse_native(file, text)?,
    };
    jobs.sort_by_key(|j| j.submit_ms); // stable: ties keep file order
    Ok(Trace {
        file: file.to_string(),
        format,
        jobs,
    })
}

impl Csv<'_> {
    /// Seconds (integer or decimal, not negative) as milliseconds.
    fn secs(&self, line: usize, f: &Field, idx: usize) -> Result<i64, InputError> {
        match f.text.parse::<f64>() {
            Ok(v) if (0.0..1e12).contains(&v) => Ok((v * 1000.0).round() as i64),
            _ => Err(self.err(line, f, idx, "is not a number of seconds >= 0")),
        }
    }

    fn gpus(&self, line: usize, f: &Field, idx: usize) -> Result<u32, InputError> {
        match f.text.parse::<u32>() {
            Ok(g) if (1..=32_768).contains(&g) => Ok(g),
            _ => Err(self.err(
                line,
                f,
                idx,
                "is not a whole number of GPUs from 1 to 32768",
            )),
        }
    }
}

/// A zero duration becomes 1 s.
fn nonzero_duration(ms: i64) -> i64 {
    if ms == 0 { 1000 } else { ms }
}

/// Philly: `timestamp,duration,num_gpus,gpu_time,cluster` (columns found by header name).
pub fn parse_philly(file: &str, text: &str) -> Result<Vec<TraceJob>, InputError> {
    const NAMES: [&str; 4] = ["timestamp", "duration", "num_gpus", "cluster"];
    let csv = Csv::new(file, text, &NAMES)?;
    let mut out = Vec::with_capacity(csv.rows.len());
    for &(line, row) in &csv.rows {
        let f = csv.fields(line, row)?;
        let submit_ms = parse_datetime(f[0].text)
            .ok_or_else(|| csv.err(line, &f[0], 0, "is not a time like 2017-10-03 14:05:00"))?;
        let duration_ms = nonzero_duration(csv.secs(line, &f[1], 1)?);
        let gpus = csv.gpus(line, &f[2], 2)?;
        if f[3].text.is_empty() {
            return Err(csv.err(line, &f[3], 3, "is empty"));
        }
        out.push(TraceJob {
            line,
            submit_ms,
            duration_ms,
            shape: Shape::Gpus(gpus),
            tenant: tenant_slug(f[3].text),
            priority: None,
            chips: None,
            walltime_secs: None,
            max_price: None,
        });
    }
    Ok(out)
}

/// Tiresias: `job_id,num_gpu,submit_time,iterations,model_name,duration,interval` (seconds).
/// Every job belongs to tenant `default`.
pub fn parse_tiresias(file: &str, text: &str) -> Result<Vec<TraceJob>, InputError> {
    const NAMES: [&str; 3] = ["num_gpu", "submit_time", "duration"];
    let csv = Csv::new(file, text, &NAMES)?;
    let mut out = Vec::with_capacity(csv.rows.len());
    for &(line, row) in &csv.rows {
        let f = csv.fields(line, row)?;
        out.push(TraceJob {
            line,
            submit_ms: csv.secs(line, &f[1], 1)?,
            duration_ms: nonzero_duration(csv.secs(line, &f[2], 2)?),
            shape: Shape::Gpus(csv.gpus(line, &f[0], 0)?),
            tenant: "default".to_string(),
            priority: None,
            chips: None,
            walltime_secs: None,
            max_price: None,
        });
    }
    Ok(out)
}

/// A tenant id from a trace's name: lowercase, other characters than letters, digits and `-`
/// become `-`.
fn tenant_slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` (UTC; `T` also accepted as the separator) as ms since the epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[mo as usize - 1] || h > 23 || mi > 59 {
        return None;
    }
    if se > 59 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi) * 60_000 + se * 1000)
}

/// Howard Hinnant's days-from-civil (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One line of the native format. Unknown keys are errors.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeLine {
    submit: f64,
    duration: f64,
    #[serde(default)]
    gpus: Option<u32>,
    #[serde(default)]
    cards_per_node: Option<u32>,
    #[serde(default)]
    nodes: Option<u32>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    priority: Option<PriorityClass>,
    #[serde(default)]
    chips: Option<ChipRequest>,
    #[serde(default)]
    stack: Option<String>,
    #[serde(default)]
    walltime: Option<u64>,
    #[serde(default)]
    max_price_per_card_hour: Option<Money>,
}

/// Native JSONL: one job object per line (blank lines and lines starting with `#` are skipped).
/// See the crate documentation for the fields and their defaults.
pub fn parse_native(file: &str, text: &str) -> Result<Vec<TraceJob>, InputError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let n: NativeLine = serde_json::from_str(l).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends " at line L column C"; the line is ours, keep the message.
            let msg = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m)
                .to_string();
            InputError::bad(file, line, e.column().max(1), msg)
        })?;
        let bad = |key: &str, msg: String| InputError::bad(file, line, key_column(l, key), msg);
        let secs = |key: &str, v: f64| -> Result<i64, InputError> {
            if (0.0..1e12).contains(&v) {
                Ok((v * 1000.0).round() as i64)
            } else {
                Err(bad(
                    key,
                    format!("{key}: {v} is not a number of seconds >= 0"),
                ))
            }
        };
        let submit_ms = secs("submit", n.submit)?;
        let duration_ms = nonzero_duration(secs("duration", n.duration)?);
        let shape = match (n.gpus, n.cards_per_node, n.nodes) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad(
                    "gpus",
                    "gpus: give either gpus or cards_per_node/nodes, not both".into(),
                ));
            }
            (Some(0), ..) => return Err(bad("gpus", "gpus: must be at least 1".into())),
            (Some(g), ..) => Shape::Gpus(g),
            (None, k, n) => Shape::Gang {
                cards_per_node: k.unwrap_or(1),
                nodes: n.unwrap_or(1),
            },
        };
        let tenant = n.tenant.unwrap_or_else(|| "default".to_string());
        let chips = match (n.chips, n.stack) {
            (None, None) => None,
            (c, s) => Some((
                c.unwrap_or_default(),
                s.unwrap_or_else(|| "any".to_string()),
            )),
        };
        // Validate what the line gives, with defaults for the rest.
        let mut spec = JobSpec::new("trace-job", "sim");
        spec.tenant = Some(tenant.as_str().into());
        if let Shape::Gang {
            cards_per_node,
            nodes,
        } = shape
        {
            spec.cards_per_node = cards_per_node;
            spec.nodes = nodes;
        }
        if let Some((c, s)) = &chips {
            spec.chips = c.clone();
            spec.stack = s.clone();
        }
        if let Some(w) = n.walltime {
            spec.walltime = w;
        }
        spec.max_price_per_card_hour = n.max_price_per_card_hour;
        if let Err(e) = spec.validate() {
            let key = e.field.split(['.', '[']).next().unwrap_or("");
            return Err(bad(key, e.to_string()));
        }
        if n.walltime.is_some_and(|w| w > MAX_WALLTIME_SECS) {
            return Err(bad("walltime", "walltime: at most 30 days".into()));
        }
        out.push(TraceJob {
            line,
            submit_ms,
            duration_ms,
            shape,
            tenant,
            priority: n.priority,
            chips,
            walltime_secs: n.walltime,
            max_price: n.max_price_per_card_hour,
        });
    }
    Ok(out)
}

/// 1-based column of `"key"` in a JSON line, or 1.
fn key_column(line: &str, key: &str) -> usize {
    line.find(&format!("\"{key}\""))
        .map_or(1, |i| line[..i].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use suanli_types::Timestamp;

    const PHILLY: &str = "timestamp,duration,num_gpus,gpu_time,cluster\n\
        2017-10-09 07:01:55,66.0,1,66.0,11cb48\n\
        2017-10-09 06:13:03,2951.0,2,5902.0,6214e9\n\
        2017-09-29 07:58:32,0.0,12,0.0,6c71a0\n";

    #[test]
    fn philly_rows_are_read_and_sorted_by_submit() {
        let t = parse_trace("p.csv", PHILLY, None).unwrap();
        assert_eq!(t.format, TraceFormat::Philly);
        let lines: Vec<usize> = t.jobs.iter().map(|j| j.line).collect();
        assert_eq!(lines, [4, 3, 2]);
        let first = &t.jobs[0];
        assert_eq!(
            Timestamp(first.submit_ms).to_string(),
            "2017-09-29T07:58:32Z"
        );
        assert_eq!(first.duration_ms, 1000, "zero duration becomes 1 s");
        assert_eq!(first.shape, Shape::Gpus(12));
        assert_eq!(first.tenant, "6c71a0");
        assert_eq!(t.jobs[2].duration_ms, 66_000);
        assert!(t.jobs.windows(2).all(|w| w[0].submit_ms <= w[1].submit_ms));
    }

    #[test]
    fn philly_bad_rows_name_line_and_column() {
        let cases = [
            ("2017-10-09 07:01:55,66.0,x,66.0,a\n", 3, 26, "num_gpus"),
            ("2017-10-09 07:01:55,-1,1,66.0,a\n", 3, 21, "duration"),
            ("2017-13-09 07:01:55,1,1,1,a\n", 3, 1, "timestamp"),
            (
                "2017-10-09 07:01:55,1\n",
                3,
                22,
                "expected at least 5 fields",
            ),
        ];
        for (row, line, col, what) in cases {
            let text = format!("timestamp,duration,num_gpus,gpu_time,cluster\n\n{row}");
            let e = parse_trace("p.csv", &text, Some(TraceFormat::Philly)).unwrap_err();
            match &e {
                InputError::Bad {
                    file,
                    line: l,
                    column,
                    message,
                } => {
                    assert_eq!((file.as_str(), *l, *column), ("p.csv", line, col), "{e}");
                    assert!(message.contains(what), "{e}");
                }
                other => panic!("{other}"),
            }
        }
        let e = parse_trace(
            "p.csv",
            "timestamp,duration,cluster\n",
            Some(TraceFormat::Philly),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("p.csv:1:1: header lacks column \"num_gpus\""),
            "{e}"
        );
    }

    #[test]
    fn tiresias_rows() {
        let text = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n\
            0,1,30,606,vgg19,164,30\n1,8,0,133,vgg11,147,23\n";
        let t = parse_trace("t.csv", text, None).unwrap();
        assert_eq!(t.format, TraceFormat::Tiresias);
        assert_eq!(t.jobs[0].shape, Shape::Gpus(8));
        assert_eq!((t.jobs[0].submit_ms, t.jobs[0].duration_ms), (0, 147_000));
        assert_eq!(t.jobs[1].submit_ms, 30_000);
        let e = parse_trace("t.csv", &text.replace("164", "1x"), None).unwrap_err();
        assert!(
            e.to_string().starts_with("t.csv:2:18: duration: \"1x\""),
            "{e}"
        );
    }

    #[test]
    fn native_lines_with_defaults_and_errors() {
        let text = "# comment\n\
            {\"submit\": 5, \"duration\": 60}\n\
            \n\
            {\"submit\": 1.5, \"duration\": 0, \"cards_per_node\": 4, \"nodes\": 2, \"tenant\": \"lab\", \
             \"priority\": \"spot\", \"chips\": {\"vendor\": \"huawei\"}, \"stack\": \"cann\", \
             \"walltime\": 600, \"max_price_per_card_hour\": \"8.00\"}\n\
            {\"submit\": 2, \"duration\": 9, \"gpus\": 12}\n";
        let t = parse_trace("n.jsonl", text, None).unwrap();
        assert_eq!(t.format, TraceFormat::Native);
        let j = &t.jobs[0];
        assert_eq!((j.line, j.submit_ms, j.duration_ms), (4, 1500, 1000));
        assert_eq!(
            j.shape,
            Shape::Gang {
                cards_per_node: 4,
                nodes: 2
            }
        );
        assert_eq!(j.priority, Some(PriorityClass::Spot));
        let (c, s) = j.chips.clone().unwrap();
        assert_eq!((c.vendor.as_deref(), s.as_str()), (Some("huawei"), "cann"));
        assert_eq!(j.walltime_secs, Some(600));
        assert_eq!(j.max_price, Some(Money::from_yuan(8)));
        assert_eq!(t.jobs[1].shape, Shape::Gpus(12));
        let d = &t.jobs[2];
        assert_eq!(d.tenant, "default");
        assert_eq!(
            d.shape,
            Shape::Gang {
                cards_per_node: 1,
                nodes: 1
            }
        );
        assert!(d.chips.is_none() && d.priority.is_none() && d.walltime_secs.is_none());

        let bad = [
            ("{\"submit\": 1}", None, "missing field `duration`"),
            (
                "{\"submit\": 1, \"duration\": 2, \"cards\": 3}",
                None,
                "unknown field `cards`",
            ),
            (
                "{\"submit\": -1, \"duration\": 2}",
                Some("submit"),
                "submit",
            ),
            (
                "{\"submit\": 1, \"duration\": 2, \"chips\": {\"skus\": [\"H9000\"]}}",
                Some("chips"),
                "chips.skus[0]",
            ),
            (
                "{\"submit\": 1, \"duration\": 2, \"nodes\": 0}",
                Some("nodes"),
                "nodes",
            ),
            (
                "{\"submit\": 1, \"duration\": 2, \"walltime\": 0}",
                Some("walltime"),
                "walltime",
            ),
        ];
        for (l, key, what) in bad {
            let e =
                parse_trace("n.jsonl", &format!("\n{l}\n"), Some(TraceFormat::Native)).unwrap_err();
            let s = e.to_string();
            let prefix = match key {
                Some(k) => format!("n.jsonl:2:{}: ", l.find(&format!("\"{k}\"")).unwrap() + 1),
                None => "n.jsonl:2:".to_string(),
            };
            assert!(s.starts_with(&prefix), "{s}");
            assert!(s.contains(what), "{s}");
        }
    }

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            Timestamp(parse_datetime("2000-02-29T23:59:59").unwrap()).to_string(),
            "2000-02-29T23:59:59Z"
        );
        assert_eq!(parse_datetime("2017-02-29 00:00:00"), None);
        assert_eq!(parse_datetime("2017-1-01 00:00:00"), None);
        assert_eq!(parse_datetime("2017-01-01 24:00:00"), None);
    }

    #[test]
    fn format_detection() {
        assert_eq!(TraceFormat::detect("\n{}"), Some(TraceFormat::Native));
        assert_eq!(TraceFormat::detect("a,b\n"), None);
        assert!(parse_trace("x", "a,b\n", None).is_err());
    }
}

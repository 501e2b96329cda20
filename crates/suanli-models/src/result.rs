//! A benchmark's result: the last non-empty line of its standard output, a JSON object with
//! known fields only. The output is tenant code's: the line is bounded, every field is checked,
//! and an error says what is wrong.

use serde::Deserialize;

/// The longest result line read.
pub const MAX_RESULT_LINE: usize = 4096;

/// What a benchmark reports about itself.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchResult {
    /// Throughput per card, in the model's unit.
    pub throughput: f64,
    /// The unit; if given, it must be the model's.
    #[serde(default)]
    pub unit: Option<String>,
    /// Model FLOPS utilisation, 0 to 1, where the benchmark knows it.
    #[serde(default)]
    pub mfu: Option<f64>,
    /// Peak device memory used per card, in GB.
    #[serde(default)]
    pub memory_gb: Option<f64>,
    /// The value of the model's precision metric.
    #[serde(default)]
    pub precision: Option<f64>,
    /// Operators that fell back to the CPU (or another unit) because the stack lacks them.
    #[serde(default)]
    pub fallback_ops: Option<u32>,
    /// The framework's version as the benchmark saw it.
    #[serde(default)]
    pub framework_version: Option<String>,
}

/// Why no result could be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResultError {
    #[error("the benchmark printed nothing on standard output")]
    Empty,
    #[error("the last output line is {0} bytes; a result line has at most {MAX_RESULT_LINE}")]
    TooLong(usize),
    #[error("the last output line is not a result: {0}")]
    Json(String),
    #[error("{field}: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
}

fn field(field: &'static str, message: impl Into<String>) -> ResultError {
    ResultError::Field {
        field,
        message: message.into(),
    }
}

fn bounded(name: &'static str, v: f64, max: f64) -> Result<(), ResultError> {
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(field(name, format!("must be from 0 to {max}, not {v}")));
    }
    Ok(())
}

/// The result in `stdout` (the benchmark's standard output), judged against the model's `unit`.
pub fn parse_result(stdout: &str, unit: &str) -> Result<BenchResult, ResultError> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or(ResultError::Empty)?;
    if line.len() > MAX_RESULT_LINE {
        return Err(ResultError::TooLong(line.len()));
    }
    let r: BenchResult =
        serde_json::from_str(line).map_err(|e| ResultError::Json(e.to_string()))?;
    bounded("throughput", r.throughput, 1e12)?;
    if let Some(u) = &r.unit
        && u != unit
    {
        return Err(field(
            "unit",
            format!("{u:?} is not the model's unit {unit:?}"),
        ));
    }
    if let Some(m) = r.mfu {
        bounded("mfu", m, 1.0)?;
    }
    if let Some(m) = r.memory_gb {
        bounded("memory_gb", m, 1e6)?;
    }
    if let Some(p) = r.precision
        && (!p.is_finite() || p.abs() > 1e15)
    {
        return Err(field("precision", format!("must be finite, not {p}")));
    }
    if let Some(v) = &r.framework_version
        && (v.is_empty() || v.len() > 64 || v.chars().any(char::is_control))
    {
        return Err(field(
            "framework_version",
            "must be 1 to 64 characters without control characters",
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_non_empty_line() {
        let out = "warming up\n{\"throughput\": 1.0}\nstep 3\n{\"throughput\": 812.5, \"unit\": \"samples/s\", \"mfu\": 0.4}\n\n";
        let r = parse_result(out, "samples/s").unwrap();
        assert_eq!(r.throughput, 812.5);
        assert_eq!(r.mfu, Some(0.4));
    }

    #[test]
    fn refuses_what_is_not_a_result() {
        assert_eq!(parse_result("  \n\n", "x"), Err(ResultError::Empty));
        assert!(matches!(
            parse_result("done", "x"),
            Err(ResultError::Json(_))
        ));
        // Unknown fields are refused: a typo is not silently ignored.
        assert!(matches!(
            parse_result(r#"{"throughput": 1, "thruput": 2}"#, "x"),
            Err(ResultError::Json(m)) if m.contains("thruput")
        ));
        assert!(matches!(
            parse_result(r#"{"throughput": -1}"#, "x"),
            Err(ResultError::Field {
                field: "throughput",
                ..
            })
        ));
        assert!(matches!(
            parse_result(r#"{"throughput": 1, "mfu": 1.5}"#, "x"),
            Err(ResultError::Field { field: "mfu", .. })
        ));
        assert!(matches!(
            parse_result(r#"{"throughput": 1, "unit": "tokens/s"}"#, "samples/s"),
            Err(ResultError::Field { field: "unit", .. })
        ));
        let long = format!(
            "{{\"throughput\": 1, \"framework_version\": \"{}\"}}",
            "a".repeat(5000)
        );
        assert!(matches!(
            parse_result(&long, "x"),
            Err(ResultError::TooLong(_))
        ));
    }
}

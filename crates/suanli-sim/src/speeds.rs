//! Chip speed in the simulator (`suanli sim --speeds fp16|FILE`): a trace job's duration is its
//! run time on a reference chip, and at a pool of another chip it runs `duration / speed`,
//! `speed` being the chip's against the reference. Without a speed model every chip runs a job
//! in its trace duration.
//!
//! - `fp16`: the catalog's dense FP16 TFLOPS against the reference chip's (an estimate: real
//!   speed-ups depend on the model, memory bandwidth and interconnect).
//! - a CSV file `sku,speed` (a header line `sku,speed` is allowed; `#` starts a comment): speeds
//!   against the reference, e.g. written from a hub's certifications; chips not listed run at 1.

use std::collections::BTreeMap;

use suanli_types::ChipCatalog;

/// How fast each chip runs a trace job against the reference chip.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Speeds {
    /// Every chip at 1.
    #[default]
    None,
    /// By SKU (catalog spelling, case-insensitive lookups), others at 1.
    Table {
        name: String,
        by_sku: BTreeMap<String, f64>,
    },
}

/// The chip a trace's durations are taken on, when `--reference` is not given.
pub const DEFAULT_REFERENCE: &str = "A800-80G";

impl Speeds {
    /// The catalog's FP16 TFLOPS against `reference`'s.
    pub fn fp16(reference: &str) -> Result<Speeds, String> {
        let cat = ChipCatalog::builtin();
        let base = cat
            .get(reference)
            .ok_or_else(|| format!("--reference {reference:?}: no such chip SKU in the catalog"))?
            .fp16_tflops
            .max(1);
        let by_sku = cat
            .all()
            .iter()
            .map(|c| {
                (
                    c.sku.to_ascii_lowercase(),
                    f64::from(c.fp16_tflops.max(1)) / f64::from(base),
                )
            })
            .collect();
        Ok(Speeds::Table {
            name: format!("fp16 (against {reference})"),
            by_sku,
        })
    }

    /// A table `sku,speed` from `text` (named `name` in messages and the report).
    pub fn parse_csv(name: &str, text: &str) -> Result<Speeds, String> {
        let mut by_sku = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() || (i == 0 && line.eq_ignore_ascii_case("sku,speed")) {
                continue;
            }
            let at = || format!("{name}: line {}", i + 1);
            let (sku, speed) = line
                .split_once(',')
                .ok_or_else(|| format!("{}: expected sku,speed, got {line:?}", at()))?;
            let speed: f64 = speed
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 1000.0)
                .ok_or_else(|| {
                    format!(
                        "{}: speed {:?} must be a number above 0, at most 1000",
                        at(),
                        speed.trim()
                    )
                })?;
            let sku = sku.trim();
            if sku.is_empty() {
                return Err(format!("{}: the SKU is empty", at()));
            }
            if by_sku.insert(sku.to_ascii_lowercase(), speed).is_some() {
                return Err(format!("{}: {sku} is listed twice", at()));
            }
        }
        Ok(Speeds::Table {
            name: name.to_string(),
            by_sku,
        })
    }

    /// The speed of `sku` against the reference.
    pub fn of(&self, sku: &str) -> f64 {
        match self {
            Speeds::None => 1.0,
            Speeds::Table { by_sku, .. } => by_sku
                .get(&sku.to_ascii_lowercase())
                .copied()
                .unwrap_or(1.0),
        }
    }

    /// What the report calls it; `None` without a model.
    pub fn name(&self) -> Option<&str> {
        match self {
            Speeds::None => None,
            Speeds::Table { name, .. } => Some(name),
        }
    }

    /// A run of `duration_ms` on the reference chip at a chip of speed `speed`, at least 1 ms.
    pub fn scaled(duration_ms: i64, speed: f64) -> i64 {
        if speed == 1.0 {
            return duration_ms;
        }
        ((duration_ms as f64 / speed).ceil() as i64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp16_speeds_are_the_catalogs_tflops_against_the_reference() {
        let s = Speeds::fp16("A800-80G").unwrap();
        assert_eq!(s.of("A800-80G"), 1.0);
        assert!((s.of("h100-sxm") - 989.0 / 312.0).abs() < 1e-9);
        assert_eq!(s.of("no-such-chip"), 1.0);
        assert!(Speeds::fp16("nope").unwrap_err().contains("nope"));
        assert_eq!(Speeds::scaled(3_000, 3.0), 1_000);
        assert_eq!(Speeds::scaled(1_000, 0.5), 2_000);
        assert_eq!(Speeds::scaled(1, 1000.0), 1);
    }

    #[test]
    fn a_table_reads_sku_and_speed_and_says_what_is_wrong_where() {
        let s = Speeds::parse_csv(
            "t.csv",
            "sku,speed\nH100-SXM, 3.2 # measured\n\nRTX4090,0.5\n",
        )
        .unwrap();
        assert_eq!(s.of("h100-sxm"), 3.2);
        assert_eq!(s.of("RTX4090"), 0.5);
        assert_eq!(s.of("A800-80G"), 1.0);
        for (bad, says) in [
            ("H100", "line 1: expected sku,speed"),
            ("H100,0", "line 1: speed"),
            ("H100,fast", "line 1: speed"),
            ("a,1\nA,2", "line 2: A is listed twice"),
            (",1", "line 1: the SKU is empty"),
        ] {
            let e = Speeds::parse_csv("t.csv", bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}

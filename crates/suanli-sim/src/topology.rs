//! The network to simulate: the built-in Greater Bay Area topology, or a file.
//!
//! A file is either TOML with a `[[centers]]` array of center definitions (the same fields as
//! `suanli admin center add` takes; used as written), or a CSV in the format of the reference
//! `centers.csv` (`id,name,city,owner,sku,cards,cards_per_node,price_yuan_card_hour,...`; comment
//! lines start with `#`), whose card counts are divided by the scale-down like the built-in one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use suanli_types::center::{default_stack_version, gba_topology};
use suanli_types::{BackendKind, CenterId, CenterSpec, ChipCatalog, Money, NodePool, OwnerType};

use crate::csv::Csv;
use crate::trace::InputError;

/// The built-in Greater Bay Area topology with card counts divided by `scale_down`.
pub fn builtin(scale_down: u32) -> Vec<CenterSpec> {
    gba_topology(scale_down)
}

/// Reads a topology file: `.toml` as TOML, anything else as CSV unless it starts with `[`.
pub fn load_file(path: &Path, scale_down: u32) -> Result<Vec<CenterSpec>, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InputError::Io {
        file: file.clone(),
        source,
    })?;
    let is_toml = path.extension().is_some_and(|e| e == "toml")
        || text.trim_start().starts_with("[[centers]]");
    let centers = if is_toml {
        parse_toml(&file, &text)?
    } else {
        parse_csv(&file, &text, scale_down)?
    };
    if centers.is_empty() {
        return Err(InputError::bad(&file, 1, 1, "no centers defined"));
    }
    Ok(centers)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    centers: Vec<CenterSpec>,
}

/// TOML `[[centers]]`; each center is validated (errors name the center's first line).
pub fn parse_toml(file: &str, text: &str) -> Result<Vec<CenterSpec>, InputError> {
    let t: TopologyFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        InputError::bad(file, line, column, e.message().trim().to_string())
    })?;
    // Line of the n-th `[[centers]]` header, for validation messages.
    let headers: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[centers]]"))
        .map(|(i, _)| i + 1)
        .collect();
    for (i, c) in t.centers.iter().enumerate() {
        if let Err(e) = c.validate() {
            let line = headers.get(i).copied().unwrap_or(1);
            return Err(InputError::bad(
                file,
                line,
                1,
                format!("centers[{i}] ({}): {e}", c.id),
            ));
        }
    }
    Ok(t.centers)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The reference `centers.csv` format, with cards divided by `scale_down` (at least one node).
pub fn parse_csv(file: &str, text: &str, scale_down: u32) -> Result<Vec<CenterSpec>, InputError> {
    const NAMES: [&str; 8] = [
        "id",
        "name",
        "city",
        "owner",
        "sku",
        "cards",
        "cards_per_node",
        "price_yuan_card_hour",
    ];
    let csv = Csv::new(file, text, &NAMES)?;
    let cat = ChipCatalog::builtin();
    let scale_down = scale_down.max(1);
    let mut out: Vec<CenterSpec> = Vec::new();
    for &(line, row) in &csv.rows {
        let f = csv.fields(line, row)?;
        let err = |k: usize, what: &str| csv.err(line, &f[k], k, what);
        let owner: OwnerType = serde_json::from_value(serde_json::Value::String(f[3].text.into()))
            .map_err(|_| err(3, "is not gov, research, enterprise, university or soe"))?;
        let sku = f[4].text;
        let chip = cat
            .get(sku)
            .ok_or_else(|| err(4, "is not a chip SKU of the catalog"))?;
        let cards: u32 = f[5]
            .text
            .parse()
            .map_err(|_| err(5, "is not a whole number"))?;
        let per_node: u32 = match f[6].text.parse() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => return Err(err(6, "is not a whole number from 1 to 64")),
        };
        let price: Money = match f[7].text.parse() {
            Ok(p) if p >= Money::ZERO => p,
            _ => return Err(err(7, "is not a price in yuan such as 4.50")),
        };
        let id = f[0].text;
        if out.iter().any(|c| c.id.as_str() == id) {
            return Err(err(0, "appears twice"));
        }
        let spec = CenterSpec {
            id: CenterId::new(id),
            name: f[1].text.to_string(),
            city: f[2].text.to_string(),
            owner,
            backend: BackendKind::Local,
            pools: vec![NodePool {
                sku: chip.sku.clone(),
                nodes: (cards / per_node / scale_down).max(1),
                cards_per_node: per_node,
                price_per_card_hour: price,
            }],
            stacks: BTreeMap::from([(
                chip.stack.clone(),
                default_stack_version(&chip.stack).to_string(),
            )]),
        };
        spec.validate()
            .map_err(|e| InputError::bad(file, line, 1, format!("center {id}: {e}")))?;
        out.push(spec);
    }
    Ok(out)
}

/// Multiplies every pool's node count by `factor` (rounded, at least one node).
pub fn scale(centers: &mut [CenterSpec], factor: f64) {
    for p in centers.iter_mut().flat_map(|c| c.pools.iter_mut()) {
        p.nodes = ((p.nodes as f64 * factor).round() as u32).max(1);
    }
}

/// Cards over all centers.
pub fn total_cards(centers: &[CenterSpec]) -> u64 {
    centers.iter().map(CenterSpec::total_cards).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "# demo\n\
        id,name,city,owner,sku,cards,cards_per_node,price_yuan_card_hour,quality,notes\n\
        a,A,Shenzhen,gov,Ascend910B3,128,8,7,E,x\n\
        b,B,Shenzhen,enterprise,RTX4090,16,8,2,E,PCIe only; single node\n";

    #[test]
    fn csv_topology_like_the_reference() {
        let c = parse_csv("c.csv", CSV, 4).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].pools[0].nodes, 4);
        assert_eq!(c[1].pools[0].nodes, 1, "at least one node");
        assert_eq!(c[1].stacks.get("cuda").map(String::as_str), Some("12.4"));
        assert_eq!(c[0].pools[0].price_per_card_hour, Money::from_yuan(7));
        let bad = CSV.replace("RTX4090", "RTX9090");
        let e = parse_csv("c.csv", &bad, 1).unwrap_err().to_string();
        assert!(e.starts_with("c.csv:4:25: sku: \"RTX9090\""), "{e}");
        let bad = CSV.replace(",gov,", ",city,");
        let e = parse_csv("c.csv", &bad, 1).unwrap_err().to_string();
        assert!(e.starts_with("c.csv:3:14: owner"), "{e}");
    }

    #[test]
    fn the_builtin_csv_matches_gba_topology() {
        // The project's copy of the reference file parses to the built-in topology.
        let text = include_str!("../../suanli-types/src/centers.csv");
        assert_eq!(parse_csv("centers.csv", text, 16).unwrap(), builtin(16));
    }

    #[test]
    fn toml_topology_and_scale() {
        let text = r#"
[[centers]]
id = "x"
name = "X"
city = "Shenzhen"
owner = "gov"
backend = "local"
stacks = { cann = "8.3" }
[[centers.pools]]
sku = "Ascend910B3"
nodes = 3
cards_per_node = 8
price_per_card_hour = "7.00"
"#;
        let mut c = parse_toml("t.toml", text).unwrap();
        assert_eq!(total_cards(&c), 24);
        scale(&mut c, 2.0);
        assert_eq!(c[0].pools[0].nodes, 6);
        scale(&mut c, 0.01);
        assert_eq!(c[0].pools[0].nodes, 1);
        let e = parse_toml("t.toml", &text.replace("nodes = 3", "nodes = 0"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.toml:2:1: centers[0] (x): pools[0].nodes"),
            "{e}"
        );
        let e = parse_toml("t.toml", &text.replace("city =", "town ="))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml:"), "{e}");
        assert!(e.contains("town"), "{e}");
    }
}

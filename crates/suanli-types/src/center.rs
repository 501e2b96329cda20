//! Computing centers: what an operator registers, and the built-in Greater Bay Area demo topology.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::chips::ChipCatalog;
use crate::ids::{CenterId, validate_slug};
use crate::money::Money;
use crate::spec::SpecError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum OwnerType {
    Gov,
    Research,
    Enterprise,
    University,
    Soe,
}

impl OwnerType {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerType::Gov => "gov",
            OwnerType::Research => "research",
            OwnerType::Enterprise => "enterprise",
            OwnerType::University => "university",
            OwnerType::Soe => "soe",
        }
    }
    fn parse(s: &str) -> Option<OwnerType> {
        [
            OwnerType::Gov,
            OwnerType::Research,
            OwnerType::Enterprise,
            OwnerType::University,
            OwnerType::Soe,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for OwnerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the center's site agent runs jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    Local,
    Slurm,
    Kubernetes,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Local => "local",
            BackendKind::Slurm => "slurm",
            BackendKind::Kubernetes => "kubernetes",
        }
    }
}

/// A group of identical nodes at a center.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodePool {
    /// Chip SKU from the catalog, e.g. `Ascend910B3`.
    pub sku: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100_000))]
    pub nodes: u32,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 64))]
    pub cards_per_node: u32,
    /// List price per card-hour before vouchers, in yuan.
    pub price_per_card_hour: Money,
}

/// A center as the operator registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CenterSpec {
    pub id: CenterId,
    pub name: String,
    pub city: String,
    pub owner: OwnerType,
    pub backend: BackendKind,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub pools: Vec<NodePool>,
    /// Software stack versions offered, e.g. `cuda = "12.4"`, `cann = "8.3"`.
    #[serde(default)]
    pub stacks: BTreeMap<String, String>,
}

/// A city's name in the one form cities are compared in (a center's `city`, a tenant's): NFC,
/// no surrounding or doubled spaces, 1 to 64 characters of letters, digits, spaces and
/// `- . ' ·`. No control, format or bidirectional characters, so two names that look the same
/// are the same. The error says what is wrong.
pub fn city_name(s: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let nfc: String = s.nfc().collect();
    if let Some(c) = nfc.chars().find(|c| c.is_control()) {
        return Err(format!("a control character (U+{:04X})", u32::from(c)));
    }
    let name = nfc.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("at most 64 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '\'' | '·')))
    {
        return Err(format!(
            "{c:?} (U+{:04X}) is not a letter, digit, space or one of - . ' ·",
            u32::from(c)
        ));
    }
    Ok(name)
}

impl CenterSpec {
    /// Checks the definition against the chip catalog; errors name the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        validate_slug(self.id.as_str()).map_err(|m| SpecError::new("id", m))?;
        if self.name.trim().is_empty() {
            return Err(SpecError::new("name", "must not be empty"));
        }
        // A city is optional; given, it is written as it is compared.
        if !self.city.is_empty() {
            match city_name(&self.city) {
                Ok(c) if c == self.city => {}
                Ok(c) => {
                    return Err(SpecError::new("city", format!("write it as {c:?}")));
                }
                Err(m) => return Err(SpecError::new("city", m)),
            }
        }
        if self.pools.is_empty() {
            return Err(SpecError::new(
                "pools",
                "a center needs at least one node pool",
            ));
        }
        let cat = ChipCatalog::builtin();
        for (i, p) in self.pools.iter().enumerate() {
            if cat.get(&p.sku).is_none() {
                return Err(SpecError::new(
                    format!("pools[{i}].sku"),
                    format!("unknown chip SKU {:?}", p.sku),
                ));
            }
            if p.nodes == 0 || p.nodes > 100_000 {
                return Err(SpecError::new(
                    format!("pools[{i}].nodes"),
                    "must be 1 to 100000",
                ));
            }
            if p.cards_per_node == 0 || p.cards_per_node > 64 {
                return Err(SpecError::new(
                    format!("pools[{i}].cards_per_node"),
                    "must be 1 to 64",
                ));
            }
            if p.price_per_card_hour < Money::ZERO {
                return Err(SpecError::new(
                    format!("pools[{i}].price_per_card_hour"),
                    "must not be negative",
                ));
            }
        }
        Ok(())
    }

    pub fn total_cards(&self) -> u64 {
        self.pools
            .iter()
            .map(|p| p.nodes as u64 * p.cards_per_node as u64)
            .sum()
    }
}

const CENTERS_CSV: &str = include_str!("centers.csv");

/// The Greater Bay Area demo topology (the project's copy of the reference `centers.csv`), with
/// every pool's card count divided by `scale_down` (at least one node each).
pub fn gba_topology(scale_down: u32) -> Vec<CenterSpec> {
    let scale_down = scale_down.max(1);
    let mut lines = CENTERS_CSV
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let _header = lines.next();
    let cat = ChipCatalog::builtin();
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let cards: u32 = f[5].parse().expect("centers.csv cards");
        let per_node: u32 = f[6].parse().expect("centers.csv cards_per_node");
        let sku = f[4].to_string();
        let stack = cat
            .get(&sku)
            .expect("centers.csv sku in catalog")
            .stack
            .clone();
        let nodes = (cards / per_node / scale_down).max(1);
        out.push(CenterSpec {
            id: CenterId::new(f[0]),
            name: f[1].to_string(),
            city: f[2].to_string(),
            owner: OwnerType::parse(f[3]).expect("centers.csv owner"),
            backend: BackendKind::Local,
            pools: vec![NodePool {
                sku,
                nodes,
                cards_per_node: per_node,
                price_per_card_hour: f[7].parse().expect("centers.csv price"),
            }],
            stacks: BTreeMap::from([(stack.clone(), default_stack_version(&stack).to_string())]),
        });
    }
    out
}

/// A plausible current version per stack for demo data.
pub fn default_stack_version(stack: &str) -> &'static str {
    match stack {
        "cuda" => "12.4",
        "cann" => "8.3",
        "neuware" => "1.20",
        "dtk" => "25.04",
        "xpu" => "5.0",
        "musa" => "4.0",
        "maca" => "2.32",
        _ => "1.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names that look alike are one name or refused: a zero-width space, a bidi override, a
    /// byte-order mark or a control character cannot make "Shenzhen" into another city, and a
    /// decomposed accent is the composed one.
    #[test]
    fn city_names_are_one_form_and_lookalikes_are_refused() {
        assert_eq!(city_name("  Hong   Kong ").unwrap(), "Hong Kong");
        assert_eq!(city_name("深圳").unwrap(), "深圳");
        assert_eq!(city_name("Sa\u{0303}o Paulo").unwrap(), "S\u{00E3}o Paulo");
        for bad in [
            "Shen\u{200B}zhen",
            "\u{202E}nehznehS",
            "\u{FEFF}Shenzhen",
            "Shen\nzhen",
            "Shen\u{0}zhen",
            "<b>Shenzhen</b>",
            "",
            "   ",
        ] {
            assert!(city_name(bad).is_err(), "{bad:?}");
        }
        assert!(city_name(&"a".repeat(65)).is_err());
        let mut c = crate::center::gba_topology(1).remove(0);
        c.city = " Shenzhen".into();
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "city", "{e}");
        c.city = "Shen\u{200B}zhen".into();
        assert_eq!(c.validate().unwrap_err().field, "city");
        c.city = String::new();
        c.validate().unwrap();
    }

    #[test]
    fn gba_topology_is_valid() {
        let t = gba_topology(1);
        assert_eq!(t.len(), 18);
        for c in &t {
            c.validate().unwrap();
        }
        let pcl = t.iter().find(|c| c.id.as_str() == "pcl-cb2").unwrap();
        assert_eq!(pcl.total_cards(), 4096);
        assert_eq!(pcl.pools[0].price_per_card_hour, "4.5".parse().unwrap());
        let small = gba_topology(1000);
        assert!(small.iter().all(|c| c.pools[0].nodes >= 1));
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = gba_topology(1).remove(0);
        c.pools[0].sku = "Nope".into();
        assert_eq!(c.validate().unwrap_err().field, "pools[0].sku");
    }
}

//! The network's map of Slurm site names (GRES types, partitions, QoS) onto suanli's terms,
//! written by the operator in the client config, and the chip names built in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chips::ChipCatalog;
use crate::ids::validate_slug;
use crate::spec::{ChipRequest, PriorityClass};

/// `[slurm]` of the client config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteMap {
    /// GRES or `--gpus` type (lower case) -> chip SKU, family prefix or vendor.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub gres: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, Target>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub qos: BTreeMap<String, Target>,
}

/// What a partition or QoS name stands for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Target {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<PriorityClass>,
    /// A chip SKU, family prefix or vendor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chips: Option<String>,
}

impl SiteMap {
    /// Checks every entry: chip names resolve, queues are slugs. The error names the entry.
    pub fn check(&self) -> Result<(), String> {
        for (k, v) in &self.gres {
            builtin_chips(v).ok_or_else(|| format!("slurm.gres.{k}: unknown chip {v:?}"))?;
        }
        for (what, map) in [("partitions", &self.partitions), ("qos", &self.qos)] {
            for (k, t) in map {
                if let Some(q) = &t.queue {
                    validate_slug(q).map_err(|m| format!("slurm.{what}.{k}.queue: {m}"))?;
                }
                if let Some(c) = &t.chips {
                    builtin_chips(c)
                        .ok_or_else(|| format!("slurm.{what}.{k}.chips: unknown chip {c:?}"))?;
                }
            }
        }
        Ok(())
    }

    /// The chips a GRES type names: the map's entry, else a name built in ([`builtin_chips`]).
    pub fn chips(&self, ty: &str) -> Option<ChipRequest> {
        let lower = ty.to_ascii_lowercase();
        match self.gres.get(&lower).or_else(|| self.gres.get(ty)) {
            Some(target) => builtin_chips(target),
            None => builtin_chips(ty),
        }
    }
}

/// A chip name as the catalog knows it: a SKU (`H100-SXM`), a SKU prefix (`a800`, `Ascend910B`),
/// a vendor (`huawei`), or a word inside the SKUs of one family (`910b` -> `Ascend910B`,
/// `4090` -> `RTX4090`). Case is ignored.
pub fn builtin_chips(name: &str) -> Option<ChipRequest> {
    let cat = ChipCatalog::builtin();
    let lower = name.to_ascii_lowercase();
    if lower.is_empty() {
        return None;
    }
    if let Some(c) = cat.get(name) {
        return Some(ChipRequest {
            skus: vec![c.sku.clone()],
            ..ChipRequest::default()
        });
    }
    if cat.vendors().contains(&lower.as_str()) {
        return Some(ChipRequest {
            vendor: Some(lower),
            ..ChipRequest::default()
        });
    }
    // The SKUs' prefixes that end with the name: one prefix is a family.
    let mut prefixes: Vec<&str> = cat
        .all()
        .iter()
        .filter_map(|c| {
            let at = c.sku.to_ascii_lowercase().find(&lower)?;
            Some(&c.sku[..at + lower.len()])
        })
        .collect();
    prefixes.sort_unstable();
    prefixes.dedup();
    match prefixes.as_slice() {
        [one] => Some(ChipRequest {
            family: Some(one.to_string()),
            ..ChipRequest::default()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(s: &str) -> ChipRequest {
        ChipRequest {
            family: Some(s.into()),
            ..ChipRequest::default()
        }
    }

    #[test]
    fn built_in_names() {
        assert_eq!(builtin_chips("h100-sxm").unwrap().skus, ["H100-SXM"]);
        assert_eq!(builtin_chips("a100"), Some(family("A100")));
        assert_eq!(builtin_chips("910b"), Some(family("Ascend910B")));
        assert_eq!(builtin_chips("4090"), Some(family("RTX4090")));
        assert_eq!(builtin_chips("mlu370"), Some(family("MLU370")));
        assert_eq!(
            builtin_chips("Huawei").unwrap().vendor.as_deref(),
            Some("huawei")
        );
        assert_eq!(builtin_chips("910"), Some(family("Ascend910")));
        // A100-80G and A800-80G share no prefix ending in "80g".
        assert_eq!(builtin_chips("80g"), None);
        assert_eq!(builtin_chips("h200"), None);
        assert_eq!(builtin_chips(""), None);
    }

    #[test]
    fn the_map_wins_and_is_checked() {
        let map: SiteMap = toml::from_str(
            "[gres]\nh200 = \"H100-SXM\"\na100 = \"A800-80G\"\n\
             [partitions.a100_tandon]\nqueue = \"gpu\"\nchips = \"a100\"\n\
             [qos.mcml]\npriority = \"spot\"\n",
        )
        .unwrap();
        map.check().unwrap();
        assert_eq!(map.chips("H200").unwrap().skus, ["H100-SXM"]);
        assert_eq!(map.chips("a100").unwrap().skus, ["A800-80G"]);
        assert_eq!(map.chips("910b"), Some(family("Ascend910B")));
        assert_eq!(map.qos["mcml"].priority, Some(PriorityClass::Spot));
        let bad: SiteMap = toml::from_str("[gres]\nx = \"B9000\"\n").unwrap();
        assert!(bad.check().unwrap_err().contains("slurm.gres.x"));
        let bad: SiteMap = toml::from_str("[partitions.p]\nqueue = \"Not A Slug\"\n").unwrap();
        assert!(
            bad.check()
                .unwrap_err()
                .contains("slurm.partitions.p.queue")
        );
        assert!(toml::from_str::<SiteMap>("[qos.q]\nprio = \"spot\"\n").is_err());
    }
}

//! The built-in accelerator catalog, from the project's copy of `chips.csv`.

use std::sync::OnceLock;

/// One accelerator SKU.
#[derive(Clone, Debug, PartialEq)]
pub struct Chip {
    pub sku: String,
    pub vendor: String,
    /// Dense FP16/BF16 tensor TFLOPS, whole numbers.
    pub fp16_tflops: u32,
    pub memory_gb: u32,
    /// Software stack the chip needs: cuda, cann, neuware, dtk, xpu, musa, maca.
    pub stack: String,
    /// Kubernetes device-plugin resource name, e.g. `nvidia.com/gpu`.
    pub k8s_resource: String,
}

impl Chip {
    /// The environment variable that the vendor's runtime reads to pick visible devices.
    pub fn visible_devices_env(&self) -> &'static str {
        visible_devices_env(&self.vendor)
    }

    /// Vendor domestic to China (for statistics and subsidy rules).
    pub fn is_domestic(&self) -> bool {
        self.vendor != "nvidia"
    }
}

/// Visible-devices variable per vendor.
pub fn visible_devices_env(vendor: &str) -> &'static str {
    match vendor {
        "nvidia" => "CUDA_VISIBLE_DEVICES",
        "huawei" => "ASCEND_RT_VISIBLE_DEVICES",
        "cambricon" => "MLU_VISIBLE_DEVICES",
        "hygon" => "HIP_VISIBLE_DEVICES",
        "kunlunxin" => "XPU_VISIBLE_DEVICES",
        "moorethreads" => "MUSA_VISIBLE_DEVICES",
        "metax" => "MACA_VISIBLE_DEVICES",
        _ => "SUANLI_VISIBLE_DEVICES",
    }
}

/// The catalog of known chips.
#[derive(Debug)]
pub struct ChipCatalog {
    chips: Vec<Chip>,
}

const CHIPS_CSV: &str = include_str!("chips.csv");

impl ChipCatalog {
    /// The catalog shipped with suanli.
    pub fn builtin() -> &'static ChipCatalog {
        static CATALOG: OnceLock<ChipCatalog> = OnceLock::new();
        CATALOG.get_or_init(|| {
            ChipCatalog::parse(CHIPS_CSV).expect("the built-in chips.csv is valid (tested)")
        })
    }

    /// Parses the `chips.csv` format (comment lines start with `#`, first other line is the header).
    pub fn parse(csv: &str) -> Result<ChipCatalog, String> {
        let mut lines = csv
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
        let (_, header) = lines.next().ok_or("no header")?;
        let cols: Vec<&str> = header.split(',').collect();
        let idx = |name: &str| {
            cols.iter()
                .position(|c| *c == name)
                .ok_or(format!("missing column {name}"))
        };
        let (i_sku, i_vendor, i_tf, i_mem, i_stack, i_k8s) = (
            idx("sku")?,
            idx("vendor")?,
            idx("fp16_tflops")?,
            idx("memory_gb")?,
            idx("software_stack")?,
            idx("k8s_resource")?,
        );
        let mut chips = Vec::new();
        for (n, line) in lines {
            let f: Vec<&str> = line.split(',').collect();
            let get = |i: usize| {
                f.get(i)
                    .copied()
                    .ok_or(format!("line {}: too few columns", n + 1))
            };
            let num = |i: usize| -> Result<u32, String> {
                let s = get(i)?;
                s.parse::<f64>()
                    .map(|v| v.round() as u32)
                    .map_err(|_| format!("line {}: {s:?} is not a number", n + 1))
            };
            chips.push(Chip {
                sku: get(i_sku)?.to_string(),
                vendor: get(i_vendor)?.to_string(),
                fp16_tflops: num(i_tf)?,
                memory_gb: num(i_mem)?,
                stack: get(i_stack)?.to_string(),
                k8s_resource: get(i_k8s)?.to_string(),
            });
        }
        Ok(ChipCatalog { chips })
    }

    pub fn all(&self) -> &[Chip] {
        &self.chips
    }

    /// Looks a SKU up, ignoring ASCII case.
    pub fn get(&self, sku: &str) -> Option<&Chip> {
        self.chips.iter().find(|c| c.sku.eq_ignore_ascii_case(sku))
    }

    pub fn vendors(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.chips.iter().map(|c| c.vendor.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn stacks(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.chips.iter().map(|c| c.stack.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_reference_chips() {
        let c = ChipCatalog::builtin();
        assert_eq!(c.all().len(), 19);
        let h100 = c.get("h100-sxm").unwrap();
        assert_eq!(h100.fp16_tflops, 989);
        assert_eq!(h100.stack, "cuda");
        assert_eq!(h100.visible_devices_env(), "CUDA_VISIBLE_DEVICES");
        let b3 = c.get("Ascend910B3").unwrap();
        assert_eq!(
            (b3.memory_gb, b3.k8s_resource.as_str()),
            (64, "huawei.com/Ascend910")
        );
        assert_eq!(b3.visible_devices_env(), "ASCEND_RT_VISIBLE_DEVICES");
        assert!(c.vendors().contains(&"cambricon"));
        assert!(c.stacks().contains(&"dtk"));
    }

    #[test]
    fn parse_reports_bad_lines() {
        let bad =
            "sku,vendor,fp16_tflops,memory_gb,software_stack,k8s_resource\nX,v,lots,1,cuda,r\n";
        assert!(ChipCatalog::parse(bad).unwrap_err().contains("line 2"));
    }
}

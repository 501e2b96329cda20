//! How the agent drives Kubernetes: [`KubeConfig`], from the agent's configuration and the
//! `SUANLI_K8S_*` settings.

use std::collections::BTreeMap;
use std::time::Duration;

use suanli_types::ChipCatalog;

pub const DEFAULT_IMAGE: &str = "busybox:stable";
pub const DEFAULT_SKU_LABEL: &str = "suanli.io/sku";
pub const DEFAULT_WORK_DIR: &str = "/suanli/work";
pub const DEFAULT_VOLCANO_QUEUE: &str = "default";

/// How the agent drives Kubernetes. The API server and credentials come from the environment as
/// for `kubectl`: `KUBECONFIG` or `~/.kube/config`, else the pod's service account in a cluster.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// The namespace for the attempts' objects; `None`: the kubeconfig context's (else `default`).
    pub namespace: Option<String>,
    /// The container image a job's command runs in; `None`: [`DEFAULT_IMAGE`].
    pub image: Option<String>,
    /// Images per software stack (`cuda`, `cann`, ...), before `image`.
    pub images: BTreeMap<String, String>,
    /// The node label whose value is the node's SKU; `None`: [`DEFAULT_SKU_LABEL`].
    pub sku_label_key: Option<String>,
    /// Device resource names per SKU, before the catalog's (`chips.csv` `k8s_resource`).
    pub resources: BTreeMap<String, String>,
    /// The center runs Volcano: gangs become Volcano Jobs.
    pub volcano: bool,
    /// The Volcano queue; `None`: [`DEFAULT_VOLCANO_QUEUE`].
    pub volcano_queue: Option<String>,
    /// The working directory in the container; `None`: [`DEFAULT_WORK_DIR`].
    pub work_dir: Option<String>,
    /// How often the Job, its pods and their logs are read.
    pub poll_interval: Duration,
    /// Kubernetes deletes a finished Job and its pods this long after it ended.
    pub ttl_after_finished: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: None,
            image: None,
            images: BTreeMap::new(),
            sku_label_key: None,
            resources: BTreeMap::new(),
            volcano: false,
            volcano_queue: None,
            work_dir: None,
            poll_interval: Duration::from_secs(2),
            ttl_after_finished: Duration::from_secs(3600),
        }
    }
}

fn parse_pairs(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

impl KubeConfig {
    /// Fills what is unset from the environment: `SUANLI_K8S_NAMESPACE`, `SUANLI_K8S_IMAGE`,
    /// `SUANLI_K8S_IMAGES` (`stack=image,...`), `SUANLI_K8S_SKU_LABEL`, `SUANLI_K8S_RESOURCES`
    /// (`SKU=resource,...`), `SUANLI_K8S_VOLCANO` (`1`/`true`), `SUANLI_K8S_VOLCANO_QUEUE`,
    /// `SUANLI_K8S_WORK_DIR`, `SUANLI_K8S_POLL_MS`, `SUANLI_K8S_TTL_SECS`.
    pub fn with_env(self) -> KubeConfig {
        self.with_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    pub(crate) fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> KubeConfig {
        let fill = |field: &mut Option<String>, name: &str| {
            if field.is_none() {
                *field = var(name).map(|v| v.trim().to_string());
            }
        };
        fill(&mut self.namespace, "SUANLI_K8S_NAMESPACE");
        fill(&mut self.image, "SUANLI_K8S_IMAGE");
        fill(&mut self.sku_label_key, "SUANLI_K8S_SKU_LABEL");
        fill(&mut self.volcano_queue, "SUANLI_K8S_VOLCANO_QUEUE");
        fill(&mut self.work_dir, "SUANLI_K8S_WORK_DIR");
        if self.images.is_empty()
            && let Some(v) = var("SUANLI_K8S_IMAGES")
        {
            self.images = parse_pairs(&v);
        }
        if self.resources.is_empty()
            && let Some(v) = var("SUANLI_K8S_RESOURCES")
        {
            self.resources = parse_pairs(&v);
        }
        if !self.volcano
            && let Some(v) = var("SUANLI_K8S_VOLCANO")
        {
            self.volcano = matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            );
        }
        if let Some(ms) = var("SUANLI_K8S_POLL_MS").and_then(|v| v.trim().parse::<u64>().ok()) {
            self.poll_interval = Duration::from_millis(ms.max(50));
        }
        if let Some(s) = var("SUANLI_K8S_TTL_SECS").and_then(|v| v.trim().parse::<u64>().ok()) {
            self.ttl_after_finished = Duration::from_secs(s);
        }
        self
    }

    /// The device resource of `sku`: configured (SKU matched ignoring case), else the catalog's.
    pub fn resource_for(&self, sku: &str) -> Option<String> {
        self.resources
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sku))
            .map(|(_, v)| v.clone())
            .or_else(|| {
                ChipCatalog::builtin()
                    .get(sku)
                    .map(|c| c.k8s_resource.clone())
                    .filter(|r| !r.is_empty())
            })
    }

    /// The image for jobs on `sku`: the one for its stack, else `image`, else [`DEFAULT_IMAGE`].
    pub fn image_for(&self, sku: &str) -> String {
        ChipCatalog::builtin()
            .get(sku)
            .and_then(|c| self.images.get(&c.stack))
            .or(self.image.as_ref())
            .cloned()
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
    }

    pub fn sku_label_key(&self) -> &str {
        self.sku_label_key.as_deref().unwrap_or(DEFAULT_SKU_LABEL)
    }

    pub fn work_dir(&self) -> &str {
        self.work_dir.as_deref().unwrap_or(DEFAULT_WORK_DIR)
    }

    pub fn volcano_queue(&self) -> &str {
        self.volcano_queue
            .as_deref()
            .unwrap_or(DEFAULT_VOLCANO_QUEUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_environment() {
        let vars = BTreeMap::from([
            ("SUANLI_K8S_NAMESPACE", "ai-jobs"),
            ("SUANLI_K8S_IMAGE", "registry.local/base:1"),
            (
                "SUANLI_K8S_IMAGES",
                "cuda=nvcr.io/nvidia/pytorch:24.05-py3, cann=ascendhub/cann:8.0",
            ),
            ("SUANLI_K8S_SKU_LABEL", "node.example.com/accelerator"),
            ("SUANLI_K8S_RESOURCES", "Ascend910B3=huawei.com/Ascend910B"),
            ("SUANLI_K8S_VOLCANO", "true"),
            ("SUANLI_K8S_VOLCANO_QUEUE", "ai"),
            ("SUANLI_K8S_WORK_DIR", "/workspace"),
            ("SUANLI_K8S_POLL_MS", "500"),
            ("SUANLI_K8S_TTL_SECS", "60"),
        ]);
        let c = KubeConfig::default().with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(c.namespace.as_deref(), Some("ai-jobs"));
        assert_eq!(c.image_for("RTX4090"), "nvcr.io/nvidia/pytorch:24.05-py3");
        assert_eq!(c.image_for("ascend910b3"), "ascendhub/cann:8.0");
        assert_eq!(c.image_for("MLU590"), "registry.local/base:1");
        assert_eq!(c.sku_label_key(), "node.example.com/accelerator");
        assert_eq!(
            c.resource_for("ASCEND910B3").as_deref(),
            Some("huawei.com/Ascend910B")
        );
        assert_eq!(
            c.resource_for("MLU590").as_deref(),
            Some("cambricon.com/mlu")
        );
        assert_eq!(c.resource_for("K100-AI").as_deref(), Some("hygon.com/dcu"));
        assert_eq!(c.resource_for("NoSuchChip"), None);
        assert!(c.volcano);
        assert_eq!(c.volcano_queue(), "ai");
        assert_eq!(c.work_dir(), "/workspace");
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.ttl_after_finished, Duration::from_secs(60));

        // What is set already wins; the defaults.
        let set = KubeConfig {
            namespace: Some("mine".into()),
            ..Default::default()
        };
        let c = set.with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(c.namespace.as_deref(), Some("mine"));
        let c = KubeConfig::default().with_vars(|_| None);
        assert_eq!(c.image_for("RTX4090"), DEFAULT_IMAGE);
        assert_eq!(c.sku_label_key(), DEFAULT_SKU_LABEL);
        assert_eq!(c.work_dir(), DEFAULT_WORK_DIR);
        assert_eq!(
            c.resource_for("H100-SXM").as_deref(),
            Some("nvidia.com/gpu")
        );
        assert!(!c.volcano);
        assert_eq!(c.poll_interval, Duration::from_secs(2));
    }
}

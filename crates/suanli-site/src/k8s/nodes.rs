//! Pure: the heartbeat's inventory from the cluster's nodes and the pods that hold their devices.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};
use suanli_proto::NodeInventory;
use suanli_types::ChipCatalog;

use super::status::{cond_true, pod_phase};

/// Device count from a resource quantity (`"8"`); anything else counts as none.
fn quantity_count(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> u32 {
    q.0.trim().parse().unwrap_or(0)
}

/// Devices of `resource` the pod holds (its containers' limits, else requests; extended resources
/// cannot be overcommitted, so the two are equal when both are set).
fn pod_devices(p: &Pod, resource: &str) -> u32 {
    let Some(spec) = p.spec.as_ref() else {
        return 0;
    };
    let per = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref();
        r.and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(resource))
            .or_else(|| {
                r.and_then(|r| r.requests.as_ref())
                    .and_then(|l| l.get(resource))
            })
            .map_or(0, quantity_count)
    };
    let main: u32 = spec.containers.iter().map(per).sum();
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(per)
        .max()
        .unwrap_or(0);
    main.max(init)
}

/// The heartbeat's inventory from the cluster's nodes: each node with the SKU label
/// (`sku_label_key`) counts its allocatable devices of the SKU's resource (`resource_for`); free
/// ones are those that no unfinished pod on the node holds, none on a node that is not `Ready` or
/// is cordoned. Nodes without the label or without such devices are left out.
pub fn inventory_from_nodes(
    nodes: &[Node],
    pods: &[Pod],
    sku_label_key: &str,
    resource_for: impl Fn(&str) -> Option<String>,
) -> Vec<NodeInventory> {
    let catalog = ChipCatalog::builtin();
    let mut used: BTreeMap<(&str, String), u32> = BTreeMap::new();
    let mut out = Vec::new();
    let mut wanted: Vec<(String, String, String, u32, bool)> = Vec::new();
    for n in nodes {
        let Some(name) = n.metadata.name.as_deref() else {
            continue;
        };
        let Some(label) = n
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(sku_label_key))
        else {
            continue;
        };
        let sku = catalog
            .get(label)
            .map_or_else(|| label.clone(), |c| c.sku.clone());
        let Some(resource) = resource_for(&sku) else {
            continue;
        };
        let st = n.status.as_ref();
        let cards = st
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(&resource))
            .map_or(0, quantity_count);
        if cards == 0 {
            continue;
        }
        let ready = cond_true(
            st.and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .map(|c| (c.type_.as_str(), c.status.as_str())),
            "Ready",
        );
        let cordoned = n
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        wanted.push((name.to_string(), sku, resource, cards, ready && !cordoned));
    }
    for p in pods {
        let phase = pod_phase(p);
        if phase == "Succeeded" || phase == "Failed" {
            continue;
        }
        let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        for (name, _, resource, _, _) in &wanted {
            if name == node {
                *used.entry((node, resource.clone())).or_default() += pod_devices(p, resource);
            }
        }
    }
    for (name, sku, resource, cards, usable) in wanted {
        let u = used
            .get(&(name.as_str(), resource.clone()))
            .copied()
            .unwrap_or(0);
        out.push(NodeInventory {
            node: name,
            sku,
            cards,
            free_cards: if usable { cards.saturating_sub(u) } else { 0 },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::fixtures as fx;

    #[test]
    fn inventory_counts_allocatable_less_held() {
        let nodes: Vec<Node> = [
            fx::node("gpu-a", "RTX4090", "nvidia.com/gpu", 8, true, false),
            fx::node("gpu-b", "rtx4090", "nvidia.com/gpu", 8, false, false),
            fx::node(
                "npu-a",
                "Ascend910B3",
                "huawei.com/Ascend910",
                8,
                true,
                true,
            ),
            fx::node("mlu-a", "MLU590", "cambricon.com/mlu", 4, true, false),
            fx::node("odd", "NoSuchChip", "example.com/x", 4, true, false),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let busy = |node: &str, phase: &str, resource: &str, cards: u32| -> Pod {
            serde_json::from_value(fx::pod(9, 1, 0, Some(node), phase, None, resource, cards))
                .unwrap()
        };
        let pods = [
            busy("gpu-a", "Running", "nvidia.com/gpu", 3),
            busy("gpu-a", "Pending", "nvidia.com/gpu", 2),
            busy("gpu-a", "Succeeded", "nvidia.com/gpu", 8),
            busy("mlu-a", "Running", "cambricon.com/mlu", 1),
        ];
        let cfg = crate::k8s::KubeConfig::default();
        let inv = inventory_from_nodes(&nodes, &pods, "suanli.io/sku", |s| cfg.resource_for(s));
        assert_eq!(
            crate::testing::rows(&inv),
            [
                ("gpu-a", "RTX4090", 8, 3),
                ("gpu-b", "RTX4090", 8, 0),     // not Ready
                ("npu-a", "Ascend910B3", 8, 0), // cordoned
                ("mlu-a", "MLU590", 4, 3),
            ]
        );
    }
}

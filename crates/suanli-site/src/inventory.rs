//! The center's nodes and their card slots, as the agent hands them out.
//!
//! Node names follow the hub's rule: the catalog's spelling of the SKU in lowercase, a dash, and an
//! index; pools of the same SKU continue the numbering so that names stay unique.

use std::collections::BTreeMap;

use suanli_proto::{NodeCards, NodeInventory};
use suanli_types::{CenterSpec, ChipCatalog};

/// One node: a fixed number of card slots, each free or taken.
#[derive(Clone, Debug)]
struct Node {
    name: String,
    sku: String,
    /// `true` = free.
    free: Vec<bool>,
}

impl Node {
    fn free_count(&self) -> u32 {
        self.free.iter().filter(|f| **f).count() as u32
    }
}

/// Card slots taken on one node for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReservedNode {
    pub node: String,
    /// Slot indices, ascending.
    pub slots: Vec<u32>,
}

/// Why an assignment's cards cannot be reserved here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReserveError {
    #[error("the assignment names no nodes")]
    NoNodes,
    #[error("node {0:?} does not exist at this site")]
    UnknownNode(String),
    #[error("node {node} has {have} cards, the assignment wants {want}")]
    WrongSku {
        node: String,
        have: String,
        want: String,
    },
    #[error("node {node} has {free} free card slots, the assignment needs {wanted}")]
    NotEnough {
        node: String,
        free: u32,
        wanted: u32,
    },
}

/// All nodes of the center.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    nodes: Vec<Node>,
    index: BTreeMap<String, usize>,
}

impl Inventory {
    /// Builds the node list of a center definition, every slot free.
    pub fn from_center(spec: &CenterSpec) -> Inventory {
        let catalog = ChipCatalog::builtin();
        let mut inv = Inventory::default();
        let mut next_index: BTreeMap<String, u32> = BTreeMap::new();
        for pool in &spec.pools {
            let sku = catalog
                .get(&pool.sku)
                .map_or_else(|| pool.sku.clone(), |c| c.sku.clone());
            let prefix = sku.to_ascii_lowercase();
            let start = next_index.entry(prefix.clone()).or_default();
            for i in *start..*start + pool.nodes {
                let name = format!("{prefix}-{i}");
                inv.index.insert(name.clone(), inv.nodes.len());
                inv.nodes.push(Node {
                    name,
                    sku: sku.clone(),
                    free: vec![true; pool.cards_per_node as usize],
                });
            }
            *start += pool.nodes;
        }
        inv
    }

    /// Node names in order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Free slots on a node, `None` if there is no such node.
    pub fn free_cards(&self, node: &str) -> Option<u32> {
        self.index.get(node).map(|&i| self.nodes[i].free_count())
    }

    /// Takes the lowest free slots on every named node, all or nothing.
    pub fn reserve(
        &mut self,
        sku: &str,
        wants: &[NodeCards],
    ) -> Result<Vec<ReservedNode>, ReserveError> {
        if wants.is_empty() {
            return Err(ReserveError::NoNodes);
        }
        let mut taken: Vec<ReservedNode> = Vec::with_capacity(wants.len());
        for w in wants {
            match self.take(sku, w) {
                Ok(r) => taken.push(r),
                Err(e) => {
                    self.release(&taken);
                    return Err(e);
                }
            }
        }
        Ok(taken)
    }

    fn take(&mut self, sku: &str, want: &NodeCards) -> Result<ReservedNode, ReserveError> {
        let &i = self
            .index
            .get(&want.node)
            .ok_or_else(|| ReserveError::UnknownNode(want.node.clone()))?;
        let node = &mut self.nodes[i];
        if !node.sku.eq_ignore_ascii_case(sku) {
            return Err(ReserveError::WrongSku {
                node: node.name.clone(),
                have: node.sku.clone(),
                want: sku.to_string(),
            });
        }
        let free = node.free_count();
        if free < want.cards {
            return Err(ReserveError::NotEnough {
                node: node.name.clone(),
                free,
                wanted: want.cards,
            });
        }
        let slots: Vec<u32> = (0..node.free.len() as u32)
            .filter(|&s| node.free[s as usize])
            .take(want.cards as usize)
            .collect();
        for &s in &slots {
            node.free[s as usize] = false;
        }
        Ok(ReservedNode {
            node: node.name.clone(),
            slots,
        })
    }

    /// Gives slots back. Unknown nodes and out-of-range slots are ignored.
    pub fn release(&mut self, reserved: &[ReservedNode]) {
        for r in reserved {
            if let Some(&i) = self.index.get(&r.node) {
                for &s in &r.slots {
                    if let Some(f) = self.nodes[i].free.get_mut(s as usize) {
                        *f = true;
                    }
                }
            }
        }
    }

    /// What the heartbeat reports.
    pub fn snapshot(&self) -> Vec<NodeInventory> {
        self.nodes
            .iter()
            .map(|n| NodeInventory {
                node: n.name.clone(),
                sku: n.sku.clone(),
                cards: n.free.len() as u32,
                free_cards: n.free_count(),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use suanli_types::{BackendKind, CenterId, Money, NodePool, OwnerType};

    use super::*;

    pub(crate) fn center(pools: &[(&str, u32, u32)]) -> CenterSpec {
        CenterSpec {
            id: CenterId::new("test-center"),
            name: "Test".into(),
            city: "Shenzhen".into(),
            owner: OwnerType::Research,
            backend: BackendKind::Local,
            pools: pools
                .iter()
                .map(|&(sku, nodes, cards_per_node)| NodePool {
                    sku: sku.into(),
                    nodes,
                    cards_per_node,
                    price_per_card_hour: Money::from_yuan(2),
                })
                .collect(),
            stacks: BTreeMap::new(),
        }
    }

    fn want(node: &str, cards: u32) -> NodeCards {
        NodeCards {
            node: node.into(),
            cards,
        }
    }

    #[test]
    fn node_names_follow_the_hub() {
        let inv = Inventory::from_center(&center(&[
            ("rtx4090", 2, 8),
            ("Ascend910B3", 1, 4),
            ("RTX4090", 1, 2),
        ]));
        assert_eq!(
            inv.node_names(),
            ["rtx4090-0", "rtx4090-1", "ascend910b3-0", "rtx4090-2"]
        );
        let snap = inv.snapshot();
        assert_eq!(snap[0].sku, "RTX4090");
        assert_eq!((snap[3].cards, snap[3].free_cards), (2, 2));
    }

    #[test]
    fn reserves_lowest_free_slots_and_releases() {
        let mut inv = Inventory::from_center(&center(&[("RTX4090", 2, 4)]));
        let a = inv.reserve("RTX4090", &[want("rtx4090-0", 2)]).unwrap();
        assert_eq!(a[0].slots, [0, 1]);
        let b = inv.reserve("rtx4090", &[want("rtx4090-0", 1)]).unwrap();
        assert_eq!(b[0].slots, [2]);
        inv.release(&a);
        assert_eq!(inv.free_cards("rtx4090-0"), Some(3));
        let c = inv.reserve("RTX4090", &[want("rtx4090-0", 3)]).unwrap();
        assert_eq!(c[0].slots, [0, 1, 3]);
        assert_eq!(inv.free_cards("rtx4090-0"), Some(0));
        let d = inv
            .reserve("RTX4090", &[want("rtx4090-0", 0), want("rtx4090-1", 4)])
            .unwrap();
        assert_eq!(d[1].slots, [0, 1, 2, 3]);
    }

    #[test]
    fn refuses_without_taking_anything() {
        let mut inv = Inventory::from_center(&center(&[("RTX4090", 2, 4)]));
        inv.reserve("RTX4090", &[want("rtx4090-1", 3)]).unwrap();
        let e = inv
            .reserve("RTX4090", &[want("rtx4090-0", 4), want("rtx4090-1", 2)])
            .unwrap_err();
        assert_eq!(
            e,
            ReserveError::NotEnough {
                node: "rtx4090-1".into(),
                free: 1,
                wanted: 2
            }
        );
        assert_eq!(inv.free_cards("rtx4090-0"), Some(4), "rolled back");
        assert_eq!(
            inv.reserve("RTX4090", &[want("h100-sxm-0", 1)])
                .unwrap_err(),
            ReserveError::UnknownNode("h100-sxm-0".into())
        );
        assert!(matches!(
            inv.reserve("H100-SXM", &[want("rtx4090-0", 1)]),
            Err(ReserveError::WrongSku { .. })
        ));
        assert_eq!(inv.reserve("RTX4090", &[]), Err(ReserveError::NoNodes));
        assert!(e.to_string().contains("1 free card slots"));
    }
}

//! Centers, node pools and per-node card accounting.
//!
//! Each pool keeps its nodes sorted by name plus two small indexes over "free cards per node"
//! (a node set per free count, and a running count of nodes with at least `f` free cards), so that
//! "does a gang of `n` nodes with `k` free cards fit" is O(1) and best-fit node choice is
//! O(n + cards_per_node), independent of the pool size.

use std::collections::{BTreeMap, BTreeSet};

use suanli_types::{CenterId, CenterSpec, ChipCatalog, Money};

use crate::{Allocation, NodeAlloc};

/// One node of a pool.
#[derive(Debug)]
pub(crate) struct Node {
    pub name: String,
    pub capacity: u32,
    pub used: u32,
    /// `used > capacity` is tolerated: it came from a restored allocation or a re-registration
    /// that shrank the node, not from scheduling.
    pub over_ok: bool,
}

impl Node {
    pub fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.used)
    }
}

/// A group of identical nodes at one center.
#[derive(Debug)]
pub(crate) struct Pool {
    /// Unique over the fleet's life: a cheap key for per-pool state.
    pub uid: u32,
    /// Canonical catalog spelling when the SKU is known, else as registered.
    pub sku: String,
    /// Index into `ChipCatalog::builtin().all()`; `None` for an unknown SKU (matches no job).
    pub chip: Option<usize>,
    pub cards_per_node: u32,
    pub price: Money,
    /// Sorted by name, so a node's index order is its name order.
    pub nodes: Vec<Node>,
    /// `by_free[f]`: indexes of nodes with exactly `f` free cards.
    by_free: Vec<BTreeSet<u32>>,
    /// `count_ge[f]`: number of nodes with at least `f` free cards.
    count_ge: Vec<u32>,
    /// Sum of free cards over the pool's nodes.
    pub free_cards: u64,
}

impl Pool {
    fn new(
        sku: String,
        chip: Option<usize>,
        cards_per_node: u32,
        price: Money,
        mut names: Vec<String>,
    ) -> Pool {
        names.sort_unstable();
        let n = names.len() as u32;
        let slots = cards_per_node as usize + 1;
        let mut by_free = vec![BTreeSet::new(); slots];
        by_free[cards_per_node as usize] = (0..n).collect();
        Pool {
            uid: 0,
            sku,
            chip,
            cards_per_node,
            price,
            nodes: names
                .into_iter()
                .map(|name| Node {
                    name,
                    capacity: cards_per_node,
                    used: 0,
                    over_ok: false,
                })
                .collect(),
            by_free,
            count_ge: vec![n; slots],
            free_cards: n as u64 * cards_per_node as u64,
        }
    }

    pub fn total_cards(&self) -> u64 {
        self.nodes.len() as u64 * self.cards_per_node as u64
    }

    /// Number of nodes with at least `cards` free cards.
    pub fn nodes_with_free(&self, cards: u32) -> u32 {
        self.count_ge.get(cards as usize).copied().unwrap_or(0)
    }

    /// Sets a node's used cards and keeps the indexes in step.
    fn set_used(&mut self, i: usize, used: u32) {
        let old = self.nodes[i].free();
        self.nodes[i].used = used;
        let new = self.nodes[i].free();
        if self.nodes[i].used <= self.nodes[i].capacity {
            self.nodes[i].over_ok = false;
        }
        if old == new {
            return;
        }
        self.by_free[old as usize].remove(&(i as u32));
        self.by_free[new as usize].insert(i as u32);
        if new > old {
            for c in &mut self.count_ge[old as usize + 1..=new as usize] {
                *c += 1;
            }
        } else {
            for c in &mut self.count_ge[new as usize + 1..=old as usize] {
                *c -= 1;
            }
        }
        self.free_cards = self.free_cards - old as u64 + new as u64;
    }

    /// Best fit: `n` distinct nodes with at least `k` free cards, fewest free first, ties by
    /// name. The caller has checked `nodes_with_free(k) >= n`.
    fn pick(&self, k: u32, n: u32) -> Vec<usize> {
        let mut out = Vec::with_capacity(n as usize);
        for set in self.by_free.iter().skip(k as usize) {
            for &i in set {
                if out.len() == n as usize {
                    return out;
                }
                out.push(i as usize);
            }
        }
        out
    }

    /// Panics if the indexes disagree with the nodes.
    fn check_indexes(&self, center: &CenterId) {
        let slots = self.cards_per_node as usize + 1;
        let mut by_free = vec![BTreeSet::new(); slots];
        let mut count_ge = vec![0u32; slots];
        let mut free_cards = 0u64;
        for (i, node) in self.nodes.iter().enumerate() {
            let f = node.free();
            by_free[f as usize].insert(i as u32);
            for c in &mut count_ge[..=f as usize] {
                *c += 1;
            }
            free_cards += f as u64;
        }
        assert!(
            by_free == self.by_free && count_ge == self.count_ge && free_cards == self.free_cards,
            "free-card index of pool {} at {center} is out of step",
            self.sku
        );
    }
}

/// A registered center.
#[derive(Debug)]
pub(crate) struct Center {
    pub id: CenterId,
    pub online: bool,
    pub pools: Vec<Pool>,
    /// The center's version of each software stack, as registered (for certified models).
    pub stacks: BTreeMap<String, String>,
    /// Node name -> (pool index, node index).
    node_index: BTreeMap<String, (usize, usize)>,
    /// Cards held on nodes that no pool has (any more), by node name.
    orphans: BTreeMap<String, u32>,
}

impl Center {
    /// (pool index, node index) of a node by name.
    pub fn locate(&self, node: &str) -> Option<(usize, usize)> {
        self.node_index.get(node).copied()
    }

    /// Free cards of the SKU of pool `pool` at this center, over all its pools of that SKU.
    pub fn sku_free_of(&self, pool: usize) -> u64 {
        self.sku_free(&self.pools[pool].sku)
    }

    /// Free cards of `sku` at this center, over all its pools of that SKU.
    pub fn sku_free(&self, sku: &str) -> u64 {
        self.pools
            .iter()
            .filter(|p| p.sku == sku)
            .map(|p| p.free_cards)
            .sum()
    }
}

/// All centers, plus cards held at centers that are not registered (restored allocations).
#[derive(Debug, Default)]
pub(crate) struct Fleet {
    pub centers: BTreeMap<CenterId, Center>,
    stray: BTreeMap<CenterId, BTreeMap<String, u32>>,
    next_uid: u32,
}

impl Fleet {
    /// Adds or replaces a center; cards in use carry over by node name, cards on nodes that are
    /// gone are kept as orphans until released. A new center starts offline.
    pub fn upsert(&mut self, spec: &CenterSpec) {
        let mut used: BTreeMap<String, u32> = BTreeMap::new();
        let mut online = false;
        if let Some(old) = self.centers.remove(&spec.id) {
            online = old.online;
            for node in old.pools.into_iter().flat_map(|p| p.nodes) {
                if node.used > 0 {
                    *used.entry(node.name).or_default() += node.used;
                }
            }
            for (name, cards) in old.orphans {
                *used.entry(name).or_default() += cards;
            }
        }
        for (name, cards) in self.stray.remove(&spec.id).unwrap_or_default() {
            *used.entry(name).or_default() += cards;
        }

        let catalog = ChipCatalog::builtin();
        let mut next_index: BTreeMap<String, u32> = BTreeMap::new();
        let mut pools = Vec::with_capacity(spec.pools.len());
        for p in &spec.pools {
            let chip = catalog
                .all()
                .iter()
                .position(|c| c.sku.eq_ignore_ascii_case(&p.sku));
            let sku = chip.map_or_else(|| p.sku.clone(), |i| catalog.all()[i].sku.clone());
            let prefix = sku.to_ascii_lowercase();
            // Pools of the same SKU continue the numbering so that names stay unique.
            let start = next_index.entry(prefix.clone()).or_default();
            let names = (*start..*start + p.nodes)
                .map(|i| format!("{prefix}-{i}"))
                .collect();
            *start += p.nodes;
            self.next_uid += 1;
            let mut pool = Pool::new(sku, chip, p.cards_per_node, p.price_per_card_hour, names);
            pool.uid = self.next_uid;
            pools.push(pool);
        }

        let mut node_index = BTreeMap::new();
        for (pi, pool) in pools.iter_mut().enumerate() {
            for ni in 0..pool.nodes.len() {
                node_index.insert(pool.nodes[ni].name.clone(), (pi, ni));
                if let Some(u) = used.remove(&pool.nodes[ni].name) {
                    pool.set_used(ni, u);
                    pool.nodes[ni].over_ok = u > pool.nodes[ni].capacity;
                }
            }
        }
        self.centers.insert(
            spec.id.clone(),
            Center {
                id: spec.id.clone(),
                online,
                pools,
                stacks: spec.stacks.clone(),
                node_index,
                orphans: used,
            },
        );
    }

    /// Marks cards used on a node, wherever it is; capacity is not checked.
    pub fn add_used(&mut self, center: &CenterId, node: &str, cards: u32) {
        if cards == 0 {
            return;
        }
        let Some(c) = self.centers.get_mut(center) else {
            *self
                .stray
                .entry(center.clone())
                .or_default()
                .entry(node.to_string())
                .or_default() += cards;
            return;
        };
        match c.node_index.get(node) {
            Some(&(pi, ni)) => {
                let pool = &mut c.pools[pi];
                let used = pool.nodes[ni].used.saturating_add(cards);
                pool.set_used(ni, used);
                pool.nodes[ni].over_ok = used > pool.nodes[ni].capacity;
            }
            None => *c.orphans.entry(node.to_string()).or_default() += cards,
        }
    }

    /// Frees cards on a node, wherever they were recorded; never underflows.
    pub fn remove_used(&mut self, center: &CenterId, node: &str, cards: u32) {
        fn take(map: &mut BTreeMap<String, u32>, node: &str, cards: u32) {
            if let Some(u) = map.get_mut(node) {
                *u = u.saturating_sub(cards);
                if *u == 0 {
                    map.remove(node);
                }
            }
        }
        match self.centers.get_mut(center) {
            Some(c) => match c.node_index.get(node) {
                Some(&(pi, ni)) => {
                    let pool = &mut c.pools[pi];
                    let used = pool.nodes[ni].used.saturating_sub(cards);
                    pool.set_used(ni, used);
                }
                None => take(&mut c.orphans, node, cards),
            },
            None => {
                if let Some(m) = self.stray.get_mut(center) {
                    take(m, node, cards);
                    if m.is_empty() {
                        self.stray.remove(center);
                    }
                }
            }
        }
    }

    /// Takes `n` nodes x `k` cards from a pool by best fit. The caller has checked that they fit.
    pub fn take(&mut self, center: &CenterId, pool: usize, k: u32, n: u32) -> Allocation {
        let c = self.centers.get_mut(center).expect("chosen center exists");
        let p = &mut c.pools[pool];
        let picked = p.pick(k, n);
        debug_assert_eq!(picked.len(), n as usize, "pool has enough fitting nodes");
        let mut nodes = Vec::with_capacity(picked.len());
        for i in picked {
            let used = p.nodes[i].used + k;
            p.set_used(i, used);
            nodes.push(NodeAlloc {
                node: p.nodes[i].name.clone(),
                cards: k,
            });
        }
        Allocation {
            center: center.clone(),
            sku: p.sku.clone(),
            nodes,
        }
    }

    /// Free cards over all pools of online centers.
    pub fn free_online_cards(&self) -> u64 {
        self.centers
            .values()
            .filter(|c| c.online)
            .flat_map(|c| &c.pools)
            .map(|p| p.free_cards)
            .sum()
    }

    /// Panics unless every node's used cards equal `expected` (center, node) -> cards, nodes stay
    /// within capacity unless tolerated, and the pool indexes are consistent. Consumes the
    /// matched entries of `expected`.
    pub fn check(&self, expected: &mut BTreeMap<(CenterId, String), u64>) {
        let mut take = |center: &CenterId, node: &str| {
            expected
                .remove(&(center.clone(), node.to_string()))
                .unwrap_or(0)
        };
        for c in self.centers.values() {
            for pool in &c.pools {
                pool.check_indexes(&c.id);
                for node in &pool.nodes {
                    let want = take(&c.id, &node.name);
                    assert_eq!(
                        node.used as u64, want,
                        "node {} at {}: {} cards used, allocations hold {want}",
                        node.name, c.id, node.used
                    );
                    assert!(
                        node.used <= node.capacity || node.over_ok,
                        "node {} at {} over-allocated: {} of {} cards",
                        node.name,
                        c.id,
                        node.used,
                        node.capacity
                    );
                }
            }
            for (name, &cards) in &c.orphans {
                assert!(
                    !c.node_index.contains_key(name),
                    "orphan {name} at {} is a known node",
                    c.id
                );
                let want = take(&c.id, name);
                assert_eq!(cards as u64, want, "orphan node {name} at {}", c.id);
            }
        }
        for (center, nodes) in &self.stray {
            assert!(
                !self.centers.contains_key(center),
                "stray cards at registered center {center}"
            );
            for (name, &cards) in nodes {
                let want = take(center, name);
                assert_eq!(cards as u64, want, "node {name} at unregistered {center}");
            }
        }
    }
}

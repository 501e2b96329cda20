//! Hard filters and reasons: which pools of a center can take a job (chip and stack, price cap,
//! node size, node count, then online and free cards), and if none can, why.

use std::cmp::Reverse;

use suanli_types::{CenterId, ChipCatalog, JobSpec, Money};

use crate::fleet::{Center, Pool};

/// Chips the builtin catalog index bitmask can describe; chips past this are checked directly.
const MASK_BITS: usize = 64;

/// Bitmask over `ChipCatalog::builtin().all()` of the chips a spec accepts (chip request and
/// stack). Computed once per job.
pub(crate) fn chip_mask(spec: &JobSpec) -> u64 {
    ChipCatalog::builtin()
        .all()
        .iter()
        .take(MASK_BITS)
        .enumerate()
        .filter(|(_, c)| spec.accepts_chip(c))
        .fold(0, |m, (i, _)| m | 1 << i)
}

/// A job's requirements in the form the filters use.
pub(crate) struct Need<'a> {
    pub spec: &'a JobSpec,
    mask: u64,
    /// Cards per node.
    pub k: u32,
    /// Nodes.
    pub n: u32,
    pub total: u64,
    /// For a job that names a model: the pools where the model is certified now.
    pub allowed: Option<&'a crate::certified::Allowed>,
    /// Where each dataset resides (the job's `datasets` are looked up here).
    pub homes: Option<&'a crate::residency::Homes>,
}

impl<'a> Need<'a> {
    /// See [`chip_mask`].
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Without the pools a model may use: see `Core::need`, which adds them.
    pub fn with_mask(spec: &'a JobSpec, mask: u64) -> Need<'a> {
        Need {
            spec,
            mask,
            k: spec.cards_per_node,
            n: spec.nodes,
            total: spec.cards_per_node as u64 * spec.nodes as u64,
            allowed: None,
            homes: None,
        }
    }

    /// The expected run time at `pool` for a model job with measured speeds.
    pub(crate) fn run_secs(&self, pool: &Pool) -> Option<u64> {
        self.allowed?.run_secs(pool.uid, self.spec.walltime)
    }

    /// May the job run at `center` (it names none, or this one; and every dataset it reads
    /// resides there)?
    pub(crate) fn center_ok(&self, center: &CenterId) -> bool {
        (self.spec.centers.is_empty() || self.spec.centers.contains(center))
            && self.data_elsewhere(center).is_none()
    }

    /// The first dataset of the job that does not reside at `center`.
    pub(crate) fn data_elsewhere(&self, center: &CenterId) -> Option<&'a str> {
        let spec: &'a JobSpec = self.spec;
        spec.datasets
            .iter()
            .find(|d| !self.homes.is_some_and(|h| h.holds(d, center)))
            .map(String::as_str)
    }

    /// Is the job's model (if it names one) certified on the pool's SKU and stack version?
    fn certified_ok(&self, pool: &Pool) -> bool {
        self.allowed.is_none_or(|a| a.pools.contains_key(&pool.uid))
    }

    fn chip_ok(&self, pool: &Pool) -> bool {
        match pool.chip {
            None => false,
            Some(i) if i < MASK_BITS => self.mask >> i & 1 == 1,
            Some(i) => self.spec.accepts_chip(&ChipCatalog::builtin().all()[i]),
        }
    }

    fn price_ok(&self, pool: &Pool) -> bool {
        self.spec
            .max_price_per_card_hour
            .is_none_or(|max| pool.price <= max)
    }

    fn shape_ok(&self, pool: &Pool) -> bool {
        self.k <= pool.cards_per_node
    }

    fn count_ok(&self, pool: &Pool) -> bool {
        self.n as usize <= pool.nodes.len()
    }

    /// Could the pool ever hold the job (ignoring load)?
    pub(crate) fn static_ok(&self, pool: &Pool) -> bool {
        self.chip_ok(pool)
            && self.certified_ok(pool)
            && self.price_ok(pool)
            && self.shape_ok(pool)
            && self.count_ok(pool)
    }

    /// Does the pool have `n` nodes with `k` free cards each right now?
    pub(crate) fn free_ok(&self, pool: &Pool) -> bool {
        pool.free_cards >= self.total && pool.nodes_with_free(self.k) >= self.n
    }

    pub(crate) fn cost(&self, pool: &Pool) -> Money {
        pool.price
            .times(i64::try_from(self.total).unwrap_or(i64::MAX))
    }

    /// "2 nodes x 8 free RTX4090 cards"
    pub fn shape_text(&self, sku: &str) -> String {
        format!("{} x {} free {sku} cards", plural(self.n, "node"), self.k)
    }
}

/// Whether to look at the fleet as it is now, or as it could ever be.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Ignore online status and load (feasibility).
    Ever,
    /// Online centers with their current free cards (scheduling).
    Now,
}

/// Why a center cannot take a job; rendered to text only when needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    NoChip {
        has: Vec<String>,
    },
    /// The job names other centers.
    NotNamed,
    /// A dataset the job reads does not reside here.
    DataElsewhere {
        dataset: String,
        homes: Vec<CenterId>,
    },
    /// The job's model is not certified on these (SKU, stack, the center's version).
    NotCertified {
        has: Vec<(String, String, String)>,
    },
    Price {
        cheapest: Money,
        max: Money,
    },
    CardsPerNode {
        largest: u32,
    },
    NodeCount {
        largest: u32,
        pools: usize,
    },
    Offline,
    Busy {
        sku: String,
        free_nodes: u32,
    },
}

impl Reason {
    pub fn render(&self, need: &Need) -> String {
        match self {
            Reason::NoChip { has } => {
                let stack = if need.spec.stack == "any" {
                    String::new()
                } else {
                    format!(" with stack {}", need.spec.stack)
                };
                let has = if has.is_empty() {
                    "no pools".to_string()
                } else {
                    has.join(", ")
                };
                format!(
                    "no pool offers a chip matching {}{stack} (has {has})",
                    need.spec.chips
                )
            }
            Reason::NotNamed => {
                let names: Vec<&str> = need.spec.centers.iter().map(|c| c.as_str()).collect();
                format!("the job may run only at {}", names.join(", "))
            }
            Reason::DataElsewhere { dataset, homes } => match homes.is_empty() {
                true => format!("dataset {dataset} is not registered at any center"),
                false => {
                    let at: Vec<&str> = homes.iter().map(|c| c.as_str()).collect();
                    format!("dataset {dataset} resides at {}", at.join(", "))
                }
            },
            Reason::NotCertified { has } => {
                let on: Vec<String> = has
                    .iter()
                    .map(|(sku, stack, v)| format!("{sku} / {stack} {v}"))
                    .collect();
                format!(
                    "model {} is not certified on {}",
                    need.spec.model.as_deref().unwrap_or("?"),
                    on.join(", ")
                )
            }
            Reason::Price { cheapest, max } => {
                format!("list price {cheapest}/card-hour above max {max}")
            }
            Reason::CardsPerNode { largest } => format!(
                "needs {} per node, largest node has {largest}",
                plural(need.k, "card")
            ),
            Reason::NodeCount { largest, pools } => format!(
                "needs {}, {} has {largest}",
                plural(need.n, "node"),
                if *pools > 1 { "largest pool" } else { "pool" }
            ),
            Reason::Offline => "center offline".to_string(),
            Reason::Busy { sku, free_nodes } => format!(
                "needs {}, {} such {} free now",
                need.shape_text(sku),
                free_nodes,
                if *free_nodes == 1 { "node" } else { "nodes" }
            ),
        }
    }
}

/// "1 node", "2 nodes"
pub(crate) fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The pools of `center` that can take the job, or why none can. Filters run in order (chip,
/// price, node size, node count, then for `Mode::Now` online and free cards); the reason is the
/// stage at which the last pool dropped out.
pub(crate) fn evaluate(center: &Center, need: &Need, mode: Mode) -> Result<Vec<usize>, Reason> {
    if !(need.spec.centers.is_empty() || need.spec.centers.contains(&center.id)) {
        return Err(Reason::NotNamed);
    }
    if let Some(d) = need.data_elsewhere(&center.id) {
        return Err(Reason::DataElsewhere {
            dataset: d.to_string(),
            homes: need.homes.map(|h| h.of(d).to_vec()).unwrap_or_default(),
        });
    }
    let pools = &center.pools;
    // The pools of `from` that pass `ok`, or, when none does, the reason `why` gives for them.
    let stage = |from: &[usize],
                 ok: &dyn Fn(&Pool) -> bool,
                 why: &dyn Fn(&mut dyn Iterator<Item = &Pool>) -> Reason| {
        let kept: Vec<usize> = from.iter().copied().filter(|&i| ok(&pools[i])).collect();
        if kept.is_empty() {
            Err(why(&mut from.iter().map(|&i| &pools[i])))
        } else {
            Ok(kept)
        }
    };
    let all: Vec<usize> = (0..pools.len()).collect();
    let chip = stage(&all, &|p| need.chip_ok(p), &|ps| {
        let mut has: Vec<String> = Vec::new();
        for p in ps {
            if !has.contains(&p.sku) {
                has.push(p.sku.clone());
            }
        }
        Reason::NoChip { has }
    })?;
    let chip = stage(&chip, &|p| need.certified_ok(p), &|ps| {
        let catalog = ChipCatalog::builtin();
        let mut has: Vec<(String, String, String)> = Vec::new();
        for p in ps {
            let stack = p
                .chip
                .map_or_else(String::new, |i| catalog.all()[i].stack.clone());
            let version = center
                .stacks
                .get(&stack)
                .cloned()
                .unwrap_or_else(|| "none".into());
            let e = (p.sku.clone(), stack, version);
            if !has.contains(&e) {
                has.push(e);
            }
        }
        Reason::NotCertified { has }
    })?;
    let price = stage(&chip, &|p| need.price_ok(p), &|ps| Reason::Price {
        cheapest: ps.map(|p| p.price).min().unwrap_or_default(),
        max: need.spec.max_price_per_card_hour.unwrap_or_default(),
    })?;
    let shape = stage(&price, &|p| need.shape_ok(p), &|ps| Reason::CardsPerNode {
        largest: ps.map(|p| p.cards_per_node).max().unwrap_or(0),
    })?;
    let count = stage(&shape, &|p| need.count_ok(p), &|ps| {
        let sizes: Vec<u32> = ps.map(|p| p.nodes.len() as u32).collect();
        Reason::NodeCount {
            largest: sizes.iter().copied().max().unwrap_or(0),
            pools: sizes.len(),
        }
    })?;
    if mode == Mode::Ever {
        return Ok(count);
    }
    if !center.online {
        return Err(Reason::Offline);
    }
    stage(&count, &|p| need.free_ok(p), &|ps| {
        let busiest = ps
            .max_by_key(|p| (p.nodes_with_free(need.k), Reverse(p.price)))
            .expect("count is not empty");
        Reason::Busy {
            sku: busiest.sku.clone(),
            free_nodes: busiest.nodes_with_free(need.k),
        }
    })
}

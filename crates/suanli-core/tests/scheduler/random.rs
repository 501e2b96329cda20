//! Random operations never over-allocate, lose a job or break a quota.

use std::collections::BTreeMap;

use proptest::prelude::*;
use suanli_core::{CoreConfig, Policy, TenantPolicy};
use suanli_testkit::*;
use suanli_types::{JobId, PriorityClass, TenantId};

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        cards: u32,
        nodes: u32,
        class: u8,
        sku: u8,
    },
    Schedule,
    Release(usize),
    Remove(usize),
    Online(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u32..=8, 1u32..=3, 0u8..3, 0u8..3)
            .prop_map(|(cards, nodes, class, sku)| Op::Enqueue { cards, nodes, class, sku }),
        2 => Just(Op::Schedule),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (0usize..3, any::<bool>()).prop_map(|(c, on)| Op::Online(c, on)),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Pending,
    Allocated,
    Released,
    Removed,
}

proptest! {
    #[test]
    fn random_operations_never_over_allocate_or_lose_jobs(
        ops in prop::collection::vec(op(), 1..80),
        policy in 0usize..Policy::ALL.len(),
    ) {
        let centers = [
            multi("a", &[("RTX4090", 3, 8, "2"), ("H20", 2, 4, "5")]),
            center("b", "H20", 2, 8, "4"),
            center("c", "Ascend910B3", 4, 4, "7"),
        ];
        let config = CoreConfig {
            preempt_interval_secs: 0,
            ..CoreConfig::with_policy(Policy::ALL[policy])
        };
        let mut core = core_with(config, &centers);
        core.set_tenant(TenantId::new("t1"), TenantPolicy::default().quota("nvidia", 4, 8));
        let tenants = ["t0", "t1", "t2"];
        let mut now = T0;
        let skus = [None, Some("H20"), Some("RTX4090")];
        let mut fates: BTreeMap<JobId, Fate> = BTreeMap::new();
        let mut next = 0i64;
        for op in ops {
            match op {
                Op::Enqueue { cards, nodes, class, sku } => {
                    let mut s = spec(cards, nodes).class(PriorityClass::ALL[class as usize]);
                    if let Some(sku) = skus[sku as usize] {
                        s.chips.skus = vec![sku.into()];
                    }
                    next += 1;
                    s.walltime = 60 * (1 + (next as u64 % 5));
                    let mut j = pending(next, "demo", s);
                    j.tenant = TenantId::new(tenants[next as usize % 3]);
                    core.enqueue(j);
                    fates.insert(JobId(next), Fate::Pending);
                }
                Op::Schedule => {
                    now = now.plus_secs(30);
                    let before = core.pending_len();
                    let placed = core.schedule(now);
                    let evicted: usize = placed.iter().map(|p| p.preempted.len()).sum();
                    prop_assert_eq!(core.pending_len() + placed.len(), before + evicted);
                    for p in placed {
                        // In decision order: a victim may have been placed earlier in this pass.
                        for v in &p.preempted {
                            prop_assert_eq!(fates.get(v), Some(&Fate::Allocated));
                            fates.insert(*v, Fate::Pending);
                        }
                        prop_assert_eq!(fates.get(&p.job), Some(&Fate::Pending));
                        prop_assert!(core.is_online(&p.alloc.center));
                        let spec = &p.alloc.nodes;
                        let mut names: Vec<&String> = spec.iter().map(|n| &n.node).collect();
                        names.sort();
                        names.dedup();
                        prop_assert_eq!(names.len(), p.alloc.nodes.len(), "distinct nodes");
                        fates.insert(p.job, Fate::Allocated);
                    }
                }
                Op::Release(i) => {
                    if next > 0 {
                        let id = JobId((i % next as usize) as i64 + 1);
                        let had = core.release(id).is_some();
                        prop_assert_eq!(had, fates[&id] == Fate::Allocated);
                        if had {
                            fates.insert(id, Fate::Released);
                        }
                    }
                }
                Op::Remove(i) => {
                    if next > 0 {
                        let id = JobId((i % next as usize) as i64 + 1);
                        let was = core.remove_pending(id);
                        prop_assert_eq!(was, fates[&id] == Fate::Pending);
                        if was {
                            fates.insert(id, Fate::Removed);
                        }
                    }
                }
                Op::Online(c, on) => core.set_online(&centers[c].id, on),
            }
            core.sanity_check();
            for (&id, &fate) in &fates {
                prop_assert_eq!(core.is_pending(id), fate == Fate::Pending, "job {}", id);
                prop_assert_eq!(core.allocation(id).is_some(), fate == Fate::Allocated, "job {}", id);
            }
            let used: u64 = core.allocations().map(|(_, a)| a.total_cards()).sum();
            let cap = core.capacity();
            let total: u64 = cap.iter().map(|c| c.total_cards).sum();
            let free: u64 = cap.iter().map(|c| c.free_cards).sum();
            prop_assert_eq!(total - free, used);
            // Tenant t1's NVIDIA cards never exceed its quota (4 nominal + 8 borrowable).
            let t1_nvidia: u64 = core
                .allocations()
                .filter(|(id, a)| {
                    tenants[id.0 as usize % 3] == "t1"
                        && matches!(a.sku.as_str(), "RTX4090" | "H20")
                })
                .map(|(_, a)| a.total_cards())
                .sum();
            prop_assert!(t1_nvidia <= 12, "quota exceeded: {}", t1_nvidia);
        }
    }
}

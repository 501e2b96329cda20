//! Scheduler behaviour tests. Every step is followed by `sanity_check`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use suanli_types::{
    BackendKind, CenterId, CenterSpec, JobId, JobSpec, Money, NodePool, OwnerType, PriorityClass,
    TenantId, Timestamp,
};

use crate::{Allocation, Core, CoreConfig, NodeAlloc, PendingJob, Placement, Policy, PoolCapacity};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn yuan(s: &str) -> Money {
    s.parse().unwrap()
}

/// A center with one pool.
fn center(id: &str, sku: &str, nodes: u32, cards_per_node: u32, price: &str) -> CenterSpec {
    multi(id, &[(sku, nodes, cards_per_node, price)])
}

/// A center with several pools: (sku, nodes, cards per node, price).
fn multi(id: &str, pools: &[(&str, u32, u32, &str)]) -> CenterSpec {
    CenterSpec {
        id: CenterId::new(id),
        name: id.to_string(),
        city: "Shenzhen".to_string(),
        owner: OwnerType::Gov,
        backend: BackendKind::Local,
        pools: pools
            .iter()
            .map(|&(sku, nodes, cards_per_node, price)| NodePool {
                sku: sku.to_string(),
                nodes,
                cards_per_node,
                price_per_card_hour: yuan(price),
            })
            .collect(),
        stacks: BTreeMap::new(),
    }
}

/// A spec for `nodes` x `cards_per_node` cards of any chip.
fn spec(cards_per_node: u32, nodes: u32) -> JobSpec {
    let mut s = JobSpec::new("t", "true");
    s.cards_per_node = cards_per_node;
    s.nodes = nodes;
    s
}

/// A pending job whose seq equals its id.
fn job(id: i64, spec: JobSpec) -> PendingJob {
    PendingJob {
        id: JobId(id),
        tenant: TenantId::new("demo"),
        seq: id as u64,
        submitted_at: T0,
        spec,
    }
}

fn with_class(mut s: JobSpec, p: PriorityClass) -> JobSpec {
    s.priority = p;
    s
}

/// A core with these centers, all online, with the v1 policy (cheapest that fits now).
fn core_with(centers: &[CenterSpec]) -> Core {
    let mut core = Core::new(CoreConfig::with_policy(Policy::Cheapest));
    for c in centers {
        core.upsert_center(c);
        core.set_online(&c.id, true);
    }
    core.sanity_check();
    core
}

fn schedule(core: &mut Core) -> Vec<Placement> {
    let p = core.schedule(T0);
    core.sanity_check();
    p
}

fn placed_ids(p: &[Placement]) -> Vec<i64> {
    p.iter().map(|p| p.job.0).collect()
}

fn reasons(core: &Core, s: &JobSpec) -> Vec<(String, String)> {
    core.feasibility(s)
        .unwrap_err()
        .into_iter()
        .map(|r| (r.center.0, r.reason))
        .collect()
}

fn one_reason(core: &Core, s: &JobSpec) -> String {
    let r = reasons(core, s);
    assert_eq!(r.len(), 1, "{r:?}");
    r[0].1.clone()
}

#[test]
fn chip_filter_by_sku_vendor_family_and_minimums_with_reasons() {
    let core = core_with(&[center("a", "RTX4090", 2, 8, "2")]);
    let mut s = spec(1, 1);
    core.feasibility(&s).unwrap();

    s.chips.skus = vec!["H100-SXM".into(), "h800-sxm".into()];
    assert_eq!(
        one_reason(&core, &s),
        "no pool offers a chip matching H100-SXM|h800-sxm (has RTX4090)"
    );
    s.chips.skus = vec!["rtx4090".into()];
    core.feasibility(&s).unwrap();

    let mut s = spec(1, 1);
    s.chips.vendor = Some("huawei".into());
    assert_eq!(
        one_reason(&core, &s),
        "no pool offers a chip matching vendor huawei (has RTX4090)"
    );
    s.chips.vendor = Some("NVIDIA".into());
    core.feasibility(&s).unwrap();

    let mut s = spec(1, 1);
    s.chips.min_fp16_tflops = Some(300);
    assert!(one_reason(&core, &s).contains("matching >= 300 TFLOPS"));
    s.chips.min_fp16_tflops = Some(165);
    core.feasibility(&s).unwrap();

    let mut s = spec(1, 1);
    s.chips.min_memory_gb = Some(64);
    assert!(one_reason(&core, &s).contains(">= 64 GB"));

    let mut s = spec(1, 1);
    s.stack = "cann".into();
    assert_eq!(
        one_reason(&core, &s),
        "no pool offers a chip matching any chip with stack cann (has RTX4090)"
    );

    // Family by prefix: Ascend910B matches B3 but not 910A.
    let core = core_with(&[
        center("a", "Ascend910A", 1, 8, "4.5"),
        center("b", "Ascend910B3", 1, 8, "7"),
    ]);
    let mut s = spec(8, 1);
    s.chips.family = Some("Ascend910B".into());
    s.chips.min_memory_gb = Some(64);
    core.feasibility(&s).unwrap();
    let mut c = core_with(&[center("a", "Ascend910A", 1, 8, "4.5")]);
    assert_eq!(
        one_reason(&c, &s),
        "no pool offers a chip matching family Ascend910B, >= 64 GB (has Ascend910A)"
    );
    // And the scheduler honours it: nothing is placed on the wrong chip.
    c.enqueue(job(1, s));
    assert!(schedule(&mut c).is_empty());
    assert_eq!(c.pending_len(), 1);
}

#[test]
fn cards_per_node_too_large_is_infeasible_with_a_reason_per_center() {
    let core = core_with(&[
        center("a", "RTX4090", 4, 8, "2"),
        multi("b", &[("H20", 2, 8, "6"), ("L40S", 2, 4, "4.5")]),
    ]);
    assert_eq!(
        reasons(&core, &spec(16, 1)),
        vec![
            (
                "a".into(),
                "needs 16 cards per node, largest node has 8".into()
            ),
            (
                "b".into(),
                "needs 16 cards per node, largest node has 8".into()
            ),
        ]
    );
    core.feasibility(&spec(8, 1)).unwrap();
}

#[test]
fn node_count_too_large_is_infeasible() {
    let core = core_with(&[
        center("a", "RTX4090", 1, 8, "2"),
        multi(
            "b",
            &[
                ("H20", 2, 8, "6"),
                ("L40S", 3, 8, "4.5"),
                ("H20", 5, 4, "6"),
            ],
        ),
    ]);
    // b's third pool has 5 nodes but only 4 cards each: it drops out on node size.
    assert_eq!(
        reasons(&core, &spec(8, 4)),
        vec![
            ("a".into(), "needs 4 nodes, pool has 1".into()),
            ("b".into(), "needs 4 nodes, largest pool has 3".into()),
        ]
    );
    core.feasibility(&spec(8, 3)).unwrap();
    core.feasibility(&spec(4, 5)).unwrap();
}

#[test]
fn no_centers_registered() {
    let core = Core::new(CoreConfig::default());
    let r = core.feasibility(&spec(1, 1)).unwrap_err();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].center.as_str(), "*");
    assert_eq!(r[0].reason, "no centers are registered");
}

#[test]
fn max_price_filter() {
    let mut core = core_with(&[
        center("hk", "H800-SXM", 2, 8, "22"),
        center("sz", "H20", 2, 8, "8"),
    ]);
    let mut s = spec(1, 1);
    s.max_price_per_card_hour = Some(yuan("8"));
    core.feasibility(&s).unwrap(); // price equal to the max is fine
    s.max_price_per_card_hour = Some(yuan("7.99"));
    assert_eq!(
        reasons(&core, &s),
        vec![
            (
                "hk".into(),
                "list price 22.00/card-hour above max 7.99".into()
            ),
            (
                "sz".into(),
                "list price 8.00/card-hour above max 7.99".into()
            ),
        ]
    );
    // Only the expensive center has room: the capped job waits, an uncapped one goes there.
    s.max_price_per_card_hour = Some(yuan("8"));
    s.cards_per_node = 8;
    s.nodes = 2;
    core.enqueue(job(1, spec(8, 2)));
    core.enqueue(job(2, s.clone()));
    let p = schedule(&mut core);
    assert_eq!(placed_ids(&p), vec![1]);
    assert_eq!(p[0].alloc.center.as_str(), "sz");
    let mut uncapped = s;
    uncapped.max_price_per_card_hour = None;
    core.enqueue(job(3, uncapped));
    let p = schedule(&mut core);
    assert_eq!(placed_ids(&p), vec![3]);
    assert_eq!(p[0].alloc.center.as_str(), "hk");
    assert!(core.is_pending(JobId(2)));
}

#[test]
fn offline_centers_are_skipped_and_new_centers_start_offline() {
    let mut core = Core::new(CoreConfig::default());
    let cheap = center("cheap", "RTX4090", 1, 8, "1");
    core.upsert_center(&cheap);
    assert!(!core.is_online(&cheap.id));
    core.enqueue(job(1, spec(1, 1)));
    assert!(schedule(&mut core).is_empty());
    // Feasibility ignores online status.
    core.feasibility(&spec(1, 1)).unwrap();

    let dear = center("dear", "RTX4090", 1, 8, "3");
    core.upsert_center(&dear);
    core.set_online(&dear.id, true);
    let p = schedule(&mut core);
    assert_eq!(p[0].alloc.center.as_str(), "dear");
    assert_eq!(p[0].decision.rejected.len(), 1);
    assert_eq!(p[0].decision.rejected[0].reason, "center offline");

    core.set_online(&cheap.id, true);
    // Re-registering keeps the online status.
    core.upsert_center(&cheap);
    assert!(core.is_online(&cheap.id));
    core.enqueue(job(2, spec(1, 1)));
    assert_eq!(schedule(&mut core)[0].alloc.center.as_str(), "cheap");
    core.set_online(&CenterId::new("nope"), true);
    assert!(!core.is_online(&CenterId::new("nope")));
}

#[test]
fn cheapest_wins_then_most_free_cards_then_center_id() {
    // Cost is price x total cards: 2 x 8 at 3.00 = 48 beats 2 x 8 at 4.00.
    let mut core = core_with(&[
        center("a", "H20", 4, 8, "4"),
        center("b", "A800-80G", 4, 8, "3"),
        center("c", "RTX4090", 1, 8, "1"), // cheapest but too small for the gang
    ]);
    core.enqueue(job(1, spec(8, 2)));
    let p = schedule(&mut core);
    let d = &p[0].decision;
    assert_eq!(d.chosen.center.as_str(), "b");
    assert_eq!(d.chosen.cost_per_hour, yuan("48"));
    assert_eq!(d.chosen.price_per_card_hour, yuan("3"));
    assert_eq!(d.chosen.free_cards, 32);
    assert_eq!(d.others.len(), 1);
    assert_eq!(d.others[0].center.as_str(), "a");
    assert_eq!(d.others[0].cost_per_hour, yuan("64"));
    assert_eq!(d.rejected.len(), 1);
    assert_eq!(d.rejected[0].reason, "needs 2 nodes, pool has 1");

    // Same price: more free cards wins; equal free cards: lower center id wins.
    let mut core = core_with(&[
        center("x", "RTX4090", 2, 8, "2"),
        center("y", "RTX4090", 3, 8, "2"),
        center("z", "RTX4090", 3, 8, "2"),
    ]);
    core.enqueue(job(1, spec(1, 1)));
    let p = schedule(&mut core);
    assert_eq!(p[0].alloc.center.as_str(), "y");
    assert_eq!(p[0].decision.chosen.free_cards, 24);
    assert_eq!(
        p[0].decision
            .others
            .iter()
            .map(|c| (c.center.as_str(), c.free_cards))
            .collect::<Vec<_>>(),
        vec![("z", 24), ("x", 16)]
    );
    core.enqueue(job(2, spec(1, 1)));
    // Now y has 23 free, z 24: z wins.
    assert_eq!(schedule(&mut core)[0].alloc.center.as_str(), "z");
    core.enqueue(job(3, spec(1, 1)));
    // y and z both 23: y by id.
    assert_eq!(schedule(&mut core)[0].alloc.center.as_str(), "y");
}

#[test]
fn gang_is_all_or_nothing_at_one_center() {
    let mut core = core_with(&[
        center("a", "RTX4090", 2, 8, "2"),
        center("b", "RTX4090", 1, 8, "1"),
    ]);
    core.enqueue(job(1, spec(1, 1)));
    let p = schedule(&mut core);
    assert_eq!(p[0].alloc.center.as_str(), "b");
    core.restore_allocation(
        JobId(2),
        Allocation {
            center: "a".into(),
            sku: "RTX4090".into(),
            nodes: vec![NodeAlloc {
                node: "rtx4090-1".into(),
                cards: 1,
            }],
        },
    );
    core.sanity_check();
    // 2 x 8: a has one full node and one with 7 free; b has 7 free: nothing, not even partly.
    core.enqueue(job(3, spec(8, 2)));
    let before = core.capacity();
    assert!(schedule(&mut core).is_empty());
    assert_eq!(core.capacity(), before);
    assert!(core.is_pending(JobId(3)));

    core.release(JobId(2));
    core.sanity_check();
    let p = schedule(&mut core);
    assert_eq!(placed_ids(&p), vec![3]);
    let a = &p[0].alloc;
    assert_eq!(a.center.as_str(), "a");
    assert_eq!(a.sku, "RTX4090");
    assert_eq!(
        a.nodes,
        vec![
            NodeAlloc {
                node: "rtx4090-0".into(),
                cards: 8
            },
            NodeAlloc {
                node: "rtx4090-1".into(),
                cards: 8
            },
        ]
    );
    assert_eq!(a.total_cards(), 16);
}

#[test]
fn best_fit_node_choice() {
    let mut core = core_with(&[center("a", "H20", 3, 8, "5")]);
    core.restore_allocation(
        JobId(100),
        Allocation {
            center: "a".into(),
            sku: "H20".into(),
            nodes: vec![
                NodeAlloc {
                    node: "h20-0".into(),
                    cards: 2,
                },
                NodeAlloc {
                    node: "h20-2".into(),
                    cards: 5,
                },
            ],
        },
    );
    core.sanity_check();
    // Free: h20-0 6, h20-1 8, h20-2 3. A 3-card job fits best on h20-2.
    core.enqueue(job(1, spec(3, 1)));
    // A 4-card job: h20-0 (6 free) beats h20-1 (8 free).
    core.enqueue(job(2, spec(4, 1)));
    let p = schedule(&mut core);
    assert_eq!(p[0].alloc.nodes[0].node, "h20-2");
    assert_eq!(p[1].alloc.nodes[0].node, "h20-0");
    // Ties by node name.
    let mut core = core_with(&[center("b", "H20", 12, 8, "5")]);
    core.enqueue(job(1, spec(8, 3)));
    let names: Vec<String> = schedule(&mut core)[0]
        .alloc
        .nodes
        .iter()
        .map(|n| n.node.clone())
        .collect();
    assert_eq!(names, vec!["h20-0", "h20-1", "h20-10"]);
}

#[test]
fn fifo_within_class_and_classes_in_order() {
    let mut core = core_with(&[center("a", "RTX4090", 1, 8, "2")]);
    // Each job takes the whole node, so one per pass.
    let whole = spec(8, 1);
    core.enqueue(job(5, with_class(whole.clone(), PriorityClass::Spot)));
    core.enqueue(job(4, with_class(whole.clone(), PriorityClass::Standard)));
    core.enqueue(job(3, with_class(whole.clone(), PriorityClass::Standard)));
    core.enqueue(job(
        6,
        with_class(whole.clone(), PriorityClass::PublicService),
    ));
    let mut order = Vec::new();
    for _ in 0..4 {
        let p = schedule(&mut core);
        assert_eq!(p.len(), 1);
        order.push(p[0].job.0);
        core.release(p[0].job);
        core.sanity_check();
    }
    assert_eq!(order, vec![6, 3, 4, 5]);

    // Within one pass, placements come in decision order.
    let mut core = core_with(&[center("a", "RTX4090", 4, 8, "2")]);
    let mut spot = job(1, with_class(spec(1, 1), PriorityClass::Spot));
    spot.seq = 0;
    core.enqueue(spot);
    core.enqueue(job(3, spec(1, 1)));
    core.enqueue(job(2, spec(1, 1)));
    core.enqueue(job(9, with_class(spec(1, 1), PriorityClass::PublicService)));
    assert_eq!(placed_ids(&schedule(&mut core)), vec![9, 2, 3, 1]);
}

#[test]
fn a_big_job_that_does_not_fit_does_not_block_a_smaller_later_one() {
    let mut core = core_with(&[center("a", "RTX4090", 2, 8, "2")]);
    core.enqueue(job(1, spec(4, 1)));
    schedule(&mut core);
    core.enqueue(job(2, spec(8, 2)));
    core.enqueue(job(3, spec(8, 1)));
    core.enqueue(job(4, spec(4, 1)));
    assert_eq!(placed_ids(&schedule(&mut core)), vec![3, 4]);
    assert!(core.is_pending(JobId(2)));
    assert_eq!(core.pending_len(), 1);
}

#[test]
fn release_frees_cards_and_a_waiting_job_then_places() {
    let mut core = core_with(&[center("a", "Ascend910B3", 1, 8, "7")]);
    core.enqueue(job(1, spec(8, 1)));
    let p = schedule(&mut core);
    core.enqueue(job(2, spec(2, 1)));
    assert!(schedule(&mut core).is_empty());
    assert_eq!(core.capacity()[0].free_cards, 0);
    assert_eq!(core.release(JobId(1)), Some(p[0].alloc.clone()));
    core.sanity_check();
    assert_eq!(core.release(JobId(1)), None);
    assert_eq!(core.capacity()[0].free_cards, 8);
    assert_eq!(placed_ids(&schedule(&mut core)), vec![2]);
    assert_eq!(core.capacity()[0].free_cards, 6);
    assert!(core.allocation(JobId(2)).is_some());
    assert!(!core.is_pending(JobId(2)));
}

#[test]
fn remove_pending_cancels() {
    let mut core = core_with(&[center("a", "RTX4090", 1, 8, "2")]);
    core.enqueue(job(1, spec(16, 1)));
    core.enqueue(job(2, spec(1, 1)));
    assert_eq!(core.pending_len(), 2);
    assert!(core.remove_pending(JobId(1)));
    core.sanity_check();
    assert!(!core.remove_pending(JobId(1)));
    assert!(!core.is_pending(JobId(1)));
    assert_eq!(core.explain(JobId(1)), None);
    schedule(&mut core);
    // A placed job is no longer pending.
    assert!(!core.remove_pending(JobId(2)));
    assert!(core.allocation(JobId(2)).is_some());
}

#[test]
fn enqueue_replaces_a_pending_job_and_requeues_an_allocated_one() {
    let mut core = core_with(&[center("a", "RTX4090", 1, 8, "2")]);
    core.enqueue(job(1, spec(1, 1)));
    core.enqueue(job(1, spec(2, 1)));
    core.sanity_check();
    assert_eq!(core.pending_len(), 1);
    assert_eq!(core.pending_job(JobId(1)).unwrap().spec.cards_per_node, 2);
    schedule(&mut core);
    assert_eq!(core.capacity()[0].free_cards, 6);
    // Lease lost: the job comes back; its old cards are freed.
    core.enqueue(job(1, spec(2, 1)));
    core.sanity_check();
    assert!(core.allocation(JobId(1)).is_none());
    assert_eq!(core.capacity()[0].free_cards, 8);
}

#[test]
fn restore_allocation_then_release() {
    let mut core = core_with(&[center("a", "RTX4090", 2, 8, "2")]);
    let alloc = Allocation {
        center: "a".into(),
        sku: "RTX4090".into(),
        nodes: vec![
            NodeAlloc {
                node: "rtx4090-0".into(),
                cards: 8,
            },
            NodeAlloc {
                node: "rtx4090-1".into(),
                cards: 3,
            },
        ],
    };
    core.enqueue(job(7, spec(1, 1)));
    core.restore_allocation(JobId(7), alloc.clone());
    core.sanity_check();
    assert!(!core.is_pending(JobId(7)));
    assert_eq!(core.allocation(JobId(7)), Some(&alloc));
    assert_eq!(core.capacity()[0].free_cards, 5);
    core.enqueue(job(8, spec(6, 1)));
    assert!(schedule(&mut core).is_empty());
    assert_eq!(core.release(JobId(7)), Some(alloc));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 16);
    assert_eq!(placed_ids(&schedule(&mut core)), vec![8]);

    // Unknown node, over-capacity node and unknown center: recorded, released without underflow.
    let odd = Allocation {
        center: "a".into(),
        sku: "RTX4090".into(),
        nodes: vec![
            NodeAlloc {
                node: "rtx4090-9".into(),
                cards: 4,
            },
            NodeAlloc {
                node: "rtx4090-1".into(),
                cards: 12,
            },
        ],
    };
    core.restore_allocation(JobId(20), odd.clone());
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 2);
    let elsewhere = Allocation {
        center: "later".into(),
        sku: "H20".into(),
        nodes: vec![NodeAlloc {
            node: "h20-0".into(),
            cards: 8,
        }],
    };
    core.restore_allocation(JobId(21), elsewhere.clone());
    core.sanity_check();
    assert_eq!(core.release(JobId(20)), Some(odd));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 10);

    // The unknown center registers: its restored cards count.
    core.upsert_center(&center("later", "H20", 1, 8, "5"));
    core.sanity_check();
    assert_eq!(core.capacity()[1].free_cards, 0);
    assert_eq!(core.release(JobId(21)), Some(elsewhere));
    core.sanity_check();
    assert_eq!(core.capacity()[1].free_cards, 8);
}

#[test]
fn upsert_keeps_allocations_of_nodes_that_disappear() {
    let mut core = core_with(&[center("a", "RTX4090", 3, 8, "2")]);
    core.enqueue(job(1, spec(8, 3)));
    schedule(&mut core);
    // Shrink to 1 node of 4 cards: rtx4090-0 is over capacity, the others are gone.
    core.upsert_center(&center("a", "rtx4090", 1, 4, "2.5"));
    core.sanity_check();
    assert_eq!(
        core.capacity(),
        vec![PoolCapacity {
            center: "a".into(),
            sku: "RTX4090".into(),
            nodes: 1,
            cards_per_node: 4,
            total_cards: 4,
            free_cards: 0,
            price_per_card_hour: yuan("2.5"),
        }]
    );
    core.enqueue(job(2, spec(1, 1)));
    assert!(schedule(&mut core).is_empty());
    // Grow back: the cards in use are on the right nodes again.
    core.upsert_center(&center("a", "RTX4090", 4, 8, "2"));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 8);
    assert_eq!(schedule(&mut core)[0].alloc.nodes[0].node, "rtx4090-3");
    core.release(JobId(1));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 31);
}

#[test]
fn node_names_and_capacity_order() {
    let mut core = core_with(&[
        multi(
            "b",
            &[
                ("RTX4090", 2, 8, "2"),
                ("H20", 1, 8, "5"),
                ("RTX4090", 1, 4, "1.5"),
            ],
        ),
        center("a", "L40S", 1, 8, "4.5"),
    ]);
    let caps: Vec<(String, String, u32)> = core
        .capacity()
        .into_iter()
        .map(|c| (c.center.0, c.sku, c.cards_per_node))
        .collect();
    assert_eq!(
        caps,
        vec![
            ("a".into(), "L40S".into(), 8),
            ("b".into(), "H20".into(), 8),
            ("b".into(), "RTX4090".into(), 8),
            ("b".into(), "RTX4090".into(), 4),
        ]
    );
    // The second RTX4090 pool continues the numbering.
    let mut s = spec(4, 1);
    s.chips.skus = vec!["RTX4090".into()];
    core.enqueue(job(1, s));
    let p = schedule(&mut core);
    assert_eq!(p[0].alloc.nodes[0].node, "rtx4090-2");
    // The cheaper second pool wins; the candidate free count is per SKU at the center.
    assert_eq!(p[0].decision.chosen.free_cards, 20);
    assert_eq!(p[0].decision.others.len(), 1);
    assert_eq!(p[0].decision.others[0].price_per_card_hour, yuan("2"));
}

#[test]
fn explain_mentions_the_need_and_jobs_ahead() {
    let mut core = core_with(&[
        center("sz-open-icc", "Ascend910B3", 2, 8, "7"),
        center("dg-llm", "Ascend910B3", 2, 8, "7"),
        center("sme-4090", "RTX4090", 4, 8, "2"),
    ]);
    let mut fill = spec(8, 1);
    fill.chips.family = Some("Ascend910B".into());
    core.enqueue(job(1, fill.clone()));
    core.enqueue(job(2, fill.clone()));
    core.enqueue(job(3, fill));
    assert_eq!(schedule(&mut core).len(), 3);
    // dg-llm has no free node; sz-open-icc has 1.
    let mut big = spec(8, 2);
    big.chips.family = Some("Ascend910B".into());
    for id in 10..14 {
        core.enqueue(job(id, big.clone()));
    }
    core.enqueue(job(
        9,
        with_class(big.clone(), PriorityClass::PublicService),
    ));
    assert!(schedule(&mut core).is_empty());
    assert_eq!(
        core.explain(JobId(13)).unwrap(),
        "needs 2 nodes x 8 free Ascend910B3 cards; best center sz-open-icc has 1 such node free; \
         3 jobs ahead in class standard, 1 in higher classes"
    );
    assert_eq!(
        core.explain(JobId(9)).unwrap(),
        "needs 2 nodes x 8 free Ascend910B3 cards; best center sz-open-icc has 1 such node free; \
         0 jobs ahead in class public-service"
    );
    assert_eq!(core.explain(JobId(1)), None);

    // Offline and never-fitting explanations.
    core.set_online(&"sz-open-icc".into(), false);
    core.set_online(&"dg-llm".into(), false);
    assert_eq!(
        core.explain(JobId(9)).unwrap(),
        "every center that could hold it is offline (dg-llm, sz-open-icc); \
         0 jobs ahead in class public-service"
    );
    let mut huge = spec(16, 1);
    huge.chips.vendor = Some("nvidia".into());
    core.enqueue(job(20, huge));
    assert_eq!(
        core.explain(JobId(20)).unwrap(),
        "no center can ever hold it: dg-llm: no pool offers a chip matching vendor nvidia (has \
         Ascend910B3); sme-4090: needs 16 cards per node, largest node has 8; sz-open-icc: no \
         pool offers a chip matching vendor nvidia (has Ascend910B3)"
    );
    core.enqueue(job(21, spec(1, 1)));
    assert!(
        core.explain(JobId(21))
            .unwrap()
            .starts_with("fits now at sme-4090 (RTX4090); waits for the next scheduling pass")
    );
}

#[test]
fn decision_records_rejected_centers_and_others() {
    let mut core = core_with(&[
        center("a-dear", "H800-SXM", 4, 8, "22"),
        center("b-busy", "H20", 1, 8, "1"),
        center("c-wrong", "Ascend910B3", 4, 8, "1"),
        center("d-off", "H20", 4, 8, "1"),
        center("e-small", "RTX4090", 4, 4, "1"),
        center("f-pick", "A800-80G", 2, 8, "3.2"),
        center("g-other", "H20", 2, 8, "6"),
    ]);
    core.set_online(&"d-off".into(), false);
    let mut fill = spec(8, 1);
    fill.chips.skus = vec!["H20".into()];
    core.enqueue(job(1, fill));
    schedule(&mut core); // fills b-busy (cheapest)
    let mut s = spec(8, 1);
    s.stack = "cuda".into();
    s.max_price_per_card_hour = Some(yuan("10"));
    core.enqueue(job(2, s));
    let p = schedule(&mut core);
    assert_eq!(p.len(), 1);
    let d = &p[0].decision;
    assert_eq!(d.at, T0);
    assert_eq!(d.chosen.center.as_str(), "f-pick");
    assert_eq!(d.chosen.sku, "A800-80G");
    assert_eq!(d.chosen.cost_per_hour, yuan("25.6"));
    assert_eq!(d.chosen.free_cards, 16);
    assert_eq!(
        d.others
            .iter()
            .map(|c| c.center.as_str())
            .collect::<Vec<_>>(),
        vec!["g-other"]
    );
    let rejected: Vec<(&str, &str)> = d
        .rejected
        .iter()
        .map(|r| (r.center.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            ("a-dear", "list price 22.00/card-hour above max 10.00"),
            (
                "b-busy",
                "needs 1 node x 8 free H20 cards, 0 such nodes free now"
            ),
            (
                "c-wrong",
                "no pool offers a chip matching any chip with stack cuda (has Ascend910B3)"
            ),
            ("d-off", "center offline"),
            ("e-small", "needs 8 cards per node, largest node has 4"),
        ]
    );
    assert_eq!(p[0].alloc.center.as_str(), "f-pick");
}

#[test]
fn unknown_sku_pool_matches_nothing() {
    let core = core_with(&[center("a", "Z9000", 1, 8, "1")]);
    assert_eq!(
        one_reason(&core, &spec(1, 1)),
        "no pool offers a chip matching any chip (has Z9000)"
    );
}

// ---- property test -------------------------------------------------------------------------

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
        policy in 0usize..4,
    ) {
        let centers = [
            multi("a", &[("RTX4090", 3, 8, "2"), ("H20", 2, 4, "5")]),
            center("b", "H20", 2, 8, "4"),
            center("c", "Ascend910B3", 4, 4, "7"),
        ];
        let mut core = Core::new(CoreConfig {
            preempt_interval_secs: 0,
            ..CoreConfig::with_policy(Policy::ALL[policy])
        });
        for c in &centers {
            core.upsert_center(c);
            core.set_online(&c.id, true);
        }
        let mut quota = crate::TenantPolicy::default();
        quota.quotas.insert("nvidia".into(), crate::Quota { nominal: 4, borrow_limit: 8 });
        core.set_tenant(TenantId::new("t1"), quota);
        let tenants = ["t0", "t1", "t2"];
        let mut now = T0;
        let skus = [None, Some("H20"), Some("RTX4090")];
        let mut fates: BTreeMap<JobId, Fate> = BTreeMap::new();
        let mut next = 0i64;
        for op in ops {
            match op {
                Op::Enqueue { cards, nodes, class, sku } => {
                    let mut s = with_class(spec(cards, nodes), PriorityClass::ALL[class as usize]);
                    if let Some(sku) = skus[sku as usize] {
                        s.chips.skus = vec![sku.into()];
                    }
                    next += 1;
                    s.walltime = 60 * (1 + (next as u64 % 5));
                    let mut j = job(next, s);
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

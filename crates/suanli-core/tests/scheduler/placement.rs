//! Where jobs go under the cheapest policy: online centers, cost then free cards then id, gangs,
//! best-fit nodes, class order, node names, `explain` and the decision records.

use suanli_core::{Allocation, Core, CoreConfig, NodeAlloc};
use suanli_testkit::*;

use crate::cheapest;
use suanli_types::{CenterId, JobId, PriorityClass};

#[test]
fn offline_centers_are_skipped_and_new_centers_start_offline() {
    let mut core = Core::new(CoreConfig::default());
    let cheap = center("cheap", "RTX4090", 1, 8, "1");
    core.upsert_center(&cheap);
    assert!(!core.is_online(&cheap.id));
    core.enqueue(pending(1, "demo", spec(1, 1)));
    assert!(pass(&mut core, T0).is_empty());
    // Feasibility ignores online status.
    core.feasibility(&spec(1, 1)).unwrap();

    let dear = center("dear", "RTX4090", 1, 8, "3");
    core.upsert_center(&dear);
    core.set_online(&dear.id, true);
    let p = pass(&mut core, T0);
    assert_eq!(p[0].alloc.center.as_str(), "dear");
    assert_eq!(p[0].decision.rejected.len(), 1);
    assert_eq!(p[0].decision.rejected[0].reason, "center offline");

    core.set_online(&cheap.id, true);
    // Re-registering keeps the online status.
    core.upsert_center(&cheap);
    assert!(core.is_online(&cheap.id));
    core.enqueue(pending(2, "demo", spec(1, 1)));
    assert_eq!(pass(&mut core, T0)[0].alloc.center.as_str(), "cheap");
    core.set_online(&CenterId::new("nope"), true);
    assert!(!core.is_online(&CenterId::new("nope")));
}

#[test]
fn cheapest_wins_then_most_free_cards_then_center_id() {
    // Cost is price x total cards: 2 x 8 at 3.00 = 48 beats 2 x 8 at 4.00.
    let mut core = cheapest(&[
        center("a", "H20", 4, 8, "4"),
        center("b", "A800-80G", 4, 8, "3"),
        center("c", "RTX4090", 1, 8, "1"), // cheapest but too small for the gang
    ]);
    core.enqueue(pending(1, "demo", spec(8, 2)));
    let p = pass(&mut core, T0);
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
    let mut core = cheapest(&[
        center("x", "RTX4090", 2, 8, "2"),
        center("y", "RTX4090", 3, 8, "2"),
        center("z", "RTX4090", 3, 8, "2"),
    ]);
    core.enqueue(pending(1, "demo", spec(1, 1)));
    let p = pass(&mut core, T0);
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
    core.enqueue(pending(2, "demo", spec(1, 1)));
    // Now y has 23 free, z 24: z wins.
    assert_eq!(pass(&mut core, T0)[0].alloc.center.as_str(), "z");
    core.enqueue(pending(3, "demo", spec(1, 1)));
    // y and z both 23: y by id.
    assert_eq!(pass(&mut core, T0)[0].alloc.center.as_str(), "y");
}

#[test]
fn gang_is_all_or_nothing_at_one_center() {
    let mut core = cheapest(&[
        center("a", "RTX4090", 2, 8, "2"),
        center("b", "RTX4090", 1, 8, "1"),
    ]);
    core.enqueue(pending(1, "demo", spec(1, 1)));
    let p = pass(&mut core, T0);
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
    core.enqueue(pending(3, "demo", spec(8, 2)));
    let before = core.capacity();
    assert!(pass(&mut core, T0).is_empty());
    assert_eq!(core.capacity(), before);
    assert!(core.is_pending(JobId(3)));

    core.release(JobId(2));
    core.sanity_check();
    let p = pass(&mut core, T0);
    assert_eq!(ids(&p), vec![3]);
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
    let mut core = cheapest(&[center("a", "H20", 3, 8, "5")]);
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
    core.enqueue(pending(1, "demo", spec(3, 1)));
    // A 4-card job: h20-0 (6 free) beats h20-1 (8 free).
    core.enqueue(pending(2, "demo", spec(4, 1)));
    let p = pass(&mut core, T0);
    assert_eq!(p[0].alloc.nodes[0].node, "h20-2");
    assert_eq!(p[1].alloc.nodes[0].node, "h20-0");
    // Ties by node name.
    let mut core = cheapest(&[center("b", "H20", 12, 8, "5")]);
    core.enqueue(pending(1, "demo", spec(8, 3)));
    let names: Vec<String> = pass(&mut core, T0)[0]
        .alloc
        .nodes
        .iter()
        .map(|n| n.node.clone())
        .collect();
    assert_eq!(names, vec!["h20-0", "h20-1", "h20-10"]);
}

#[test]
fn fifo_within_class_and_classes_in_order() {
    let mut core = cheapest(&[center("a", "RTX4090", 1, 8, "2")]);
    // Each job takes the whole node, so one per pass.
    let whole = spec(8, 1);
    core.enqueue(pending(5, "demo", whole.clone().class(PriorityClass::Spot)));
    core.enqueue(pending(
        4,
        "demo",
        whole.clone().class(PriorityClass::Standard),
    ));
    core.enqueue(pending(
        3,
        "demo",
        whole.clone().class(PriorityClass::Standard),
    ));
    core.enqueue(pending(
        6,
        "demo",
        whole.clone().class(PriorityClass::PublicService),
    ));
    let mut order = Vec::new();
    for _ in 0..4 {
        let p = pass(&mut core, T0);
        assert_eq!(p.len(), 1);
        order.push(p[0].job.0);
        core.release(p[0].job);
        core.sanity_check();
    }
    assert_eq!(order, vec![6, 3, 4, 5]);

    // Within one pass, placements come in decision order.
    let mut core = cheapest(&[center("a", "RTX4090", 4, 8, "2")]);
    let mut spot = pending(1, "demo", spec(1, 1).class(PriorityClass::Spot));
    spot.seq = 0;
    core.enqueue(spot);
    core.enqueue(pending(3, "demo", spec(1, 1)));
    core.enqueue(pending(2, "demo", spec(1, 1)));
    core.enqueue(pending(
        9,
        "demo",
        spec(1, 1).class(PriorityClass::PublicService),
    ));
    assert_eq!(ids(&pass(&mut core, T0)), vec![9, 2, 3, 1]);
}

#[test]
fn a_big_job_that_does_not_fit_does_not_block_a_smaller_later_one() {
    let mut core = cheapest(&[center("a", "RTX4090", 2, 8, "2")]);
    core.enqueue(pending(1, "demo", spec(4, 1)));
    pass(&mut core, T0);
    core.enqueue(pending(2, "demo", spec(8, 2)));
    core.enqueue(pending(3, "demo", spec(8, 1)));
    core.enqueue(pending(4, "demo", spec(4, 1)));
    assert_eq!(ids(&pass(&mut core, T0)), vec![3, 4]);
    assert!(core.is_pending(JobId(2)));
    assert_eq!(core.pending_len(), 1);
}

#[test]
fn node_names_and_capacity_order() {
    let mut core = cheapest(&[
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
    core.enqueue(pending(1, "demo", s));
    let p = pass(&mut core, T0);
    assert_eq!(p[0].alloc.nodes[0].node, "rtx4090-2");
    // The cheaper second pool wins; the candidate free count is per SKU at the center.
    assert_eq!(p[0].decision.chosen.free_cards, 20);
    assert_eq!(p[0].decision.others.len(), 1);
    assert_eq!(p[0].decision.others[0].price_per_card_hour, yuan("2"));
}

#[test]
fn explain_mentions_the_need_and_jobs_ahead() {
    let mut core = cheapest(&[
        center("sz-open-icc", "Ascend910B3", 2, 8, "7"),
        center("dg-llm", "Ascend910B3", 2, 8, "7"),
        center("sme-4090", "RTX4090", 4, 8, "2"),
    ]);
    let mut fill = spec(8, 1);
    fill.chips.family = Some("Ascend910B".into());
    core.enqueue(pending(1, "demo", fill.clone()));
    core.enqueue(pending(2, "demo", fill.clone()));
    core.enqueue(pending(3, "demo", fill));
    assert_eq!(pass(&mut core, T0).len(), 3);
    // dg-llm has no free node; sz-open-icc has 1.
    let mut big = spec(8, 2);
    big.chips.family = Some("Ascend910B".into());
    for id in 10..14 {
        core.enqueue(pending(id, "demo", big.clone()));
    }
    core.enqueue(pending(
        9,
        "demo",
        big.clone().class(PriorityClass::PublicService),
    ));
    assert!(pass(&mut core, T0).is_empty());
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
    core.enqueue(pending(20, "demo", huge));
    assert_eq!(
        core.explain(JobId(20)).unwrap(),
        "no center can ever hold it: dg-llm: no pool offers a chip matching vendor nvidia (has \
         Ascend910B3); sme-4090: needs 16 cards per node, largest node has 8; sz-open-icc: no \
         pool offers a chip matching vendor nvidia (has Ascend910B3)"
    );
    core.enqueue(pending(21, "demo", spec(1, 1)));
    assert!(
        core.explain(JobId(21))
            .unwrap()
            .starts_with("fits now at sme-4090 (RTX4090); waits for the next scheduling pass")
    );
}

#[test]
fn decision_records_rejected_centers_and_others() {
    let mut core = cheapest(&[
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
    core.enqueue(pending(1, "demo", fill));
    pass(&mut core, T0); // fills b-busy (cheapest)
    let mut s = spec(8, 1);
    s.stack = "cuda".into();
    s.max_price_per_card_hour = Some(yuan("10"));
    core.enqueue(pending(2, "demo", s));
    let p = pass(&mut core, T0);
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

//! Feasibility and the hard filters: chip (SKU, vendor, family, minimums, stack), cards per node,
//! node count and price cap, each with its reason per center.

use suanli_core::{Core, CoreConfig};
use suanli_testkit::*;

use crate::cheapest;
use suanli_types::{JobId, JobSpec};

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
    let core = cheapest(&[center("a", "RTX4090", 2, 8, "2")]);
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
    let core = cheapest(&[
        center("a", "Ascend910A", 1, 8, "4.5"),
        center("b", "Ascend910B3", 1, 8, "7"),
    ]);
    let mut s = spec(8, 1);
    s.chips.family = Some("Ascend910B".into());
    s.chips.min_memory_gb = Some(64);
    core.feasibility(&s).unwrap();
    let mut c = cheapest(&[center("a", "Ascend910A", 1, 8, "4.5")]);
    assert_eq!(
        one_reason(&c, &s),
        "no pool offers a chip matching family Ascend910B, >= 64 GB (has Ascend910A)"
    );
    // And the scheduler honours it: nothing is placed on the wrong chip.
    c.enqueue(pending(1, "demo", s));
    assert!(pass(&mut c, T0).is_empty());
    assert_eq!(c.pending_len(), 1);
}

#[test]
fn cards_per_node_too_large_is_infeasible_with_a_reason_per_center() {
    let core = cheapest(&[
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
    let core = cheapest(&[
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
    let mut core = cheapest(&[
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
    core.enqueue(pending(1, "demo", spec(8, 2)));
    core.enqueue(pending(2, "demo", s.clone()));
    let p = pass(&mut core, T0);
    assert_eq!(ids(&p), vec![1]);
    assert_eq!(p[0].alloc.center.as_str(), "sz");
    let mut uncapped = s;
    uncapped.max_price_per_card_hour = None;
    core.enqueue(pending(3, "demo", uncapped));
    let p = pass(&mut core, T0);
    assert_eq!(ids(&p), vec![3]);
    assert_eq!(p[0].alloc.center.as_str(), "hk");
    assert!(core.is_pending(JobId(2)));
}

#[test]
fn unknown_sku_pool_matches_nothing() {
    let core = cheapest(&[center("a", "Z9000", 1, 8, "1")]);
    assert_eq!(
        one_reason(&core, &spec(1, 1)),
        "no pool offers a chip matching any chip (has Z9000)"
    );
}

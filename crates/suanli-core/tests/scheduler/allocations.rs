//! The queue and the allocations: release, cancel, requeue, restore after a restart, and
//! re-registration of a center whose nodes change.

use suanli_core::{Allocation, NodeAlloc, PoolCapacity};
use suanli_testkit::*;

use crate::cheapest;
use suanli_types::JobId;

#[test]
fn release_frees_cards_and_a_waiting_job_then_places() {
    let mut core = cheapest(&[center("a", "Ascend910B3", 1, 8, "7")]);
    core.enqueue(pending(1, "demo", spec(8, 1)));
    let p = pass(&mut core, T0);
    core.enqueue(pending(2, "demo", spec(2, 1)));
    assert!(pass(&mut core, T0).is_empty());
    assert_eq!(core.capacity()[0].free_cards, 0);
    assert_eq!(core.release(JobId(1)), Some(p[0].alloc.clone()));
    core.sanity_check();
    assert_eq!(core.release(JobId(1)), None);
    assert_eq!(core.capacity()[0].free_cards, 8);
    assert_eq!(ids(&pass(&mut core, T0)), vec![2]);
    assert_eq!(core.capacity()[0].free_cards, 6);
    assert!(core.allocation(JobId(2)).is_some());
    assert!(!core.is_pending(JobId(2)));
}

#[test]
fn remove_pending_cancels() {
    let mut core = cheapest(&[center("a", "RTX4090", 1, 8, "2")]);
    core.enqueue(pending(1, "demo", spec(16, 1)));
    core.enqueue(pending(2, "demo", spec(1, 1)));
    assert_eq!(core.pending_len(), 2);
    assert!(core.remove_pending(JobId(1)));
    core.sanity_check();
    assert!(!core.remove_pending(JobId(1)));
    assert!(!core.is_pending(JobId(1)));
    assert_eq!(core.explain(JobId(1)), None);
    pass(&mut core, T0);
    // A placed job is no longer pending.
    assert!(!core.remove_pending(JobId(2)));
    assert!(core.allocation(JobId(2)).is_some());
}

#[test]
fn enqueue_replaces_a_pending_job_and_requeues_an_allocated_one() {
    let mut core = cheapest(&[center("a", "RTX4090", 1, 8, "2")]);
    core.enqueue(pending(1, "demo", spec(1, 1)));
    core.enqueue(pending(1, "demo", spec(2, 1)));
    core.sanity_check();
    assert_eq!(core.pending_len(), 1);
    assert_eq!(core.pending_job(JobId(1)).unwrap().spec.cards_per_node, 2);
    pass(&mut core, T0);
    assert_eq!(core.capacity()[0].free_cards, 6);
    // Lease lost: the job comes back; its old cards are freed.
    core.enqueue(pending(1, "demo", spec(2, 1)));
    core.sanity_check();
    assert!(core.allocation(JobId(1)).is_none());
    assert_eq!(core.capacity()[0].free_cards, 8);
}

#[test]
fn restore_allocation_then_release() {
    let mut core = cheapest(&[center("a", "RTX4090", 2, 8, "2")]);
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
    core.enqueue(pending(7, "demo", spec(1, 1)));
    core.restore_allocation(JobId(7), alloc.clone());
    core.sanity_check();
    assert!(!core.is_pending(JobId(7)));
    assert_eq!(core.allocation(JobId(7)), Some(&alloc));
    assert_eq!(core.capacity()[0].free_cards, 5);
    core.enqueue(pending(8, "demo", spec(6, 1)));
    assert!(pass(&mut core, T0).is_empty());
    assert_eq!(core.release(JobId(7)), Some(alloc));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 16);
    assert_eq!(ids(&pass(&mut core, T0)), vec![8]);

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
    let mut core = cheapest(&[center("a", "RTX4090", 3, 8, "2")]);
    core.enqueue(pending(1, "demo", spec(8, 3)));
    pass(&mut core, T0);
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
    core.enqueue(pending(2, "demo", spec(1, 1)));
    assert!(pass(&mut core, T0).is_empty());
    // Grow back: the cards in use are on the right nodes again.
    core.upsert_center(&center("a", "RTX4090", 4, 8, "2"));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 8);
    assert_eq!(pass(&mut core, T0)[0].alloc.nodes[0].node, "rtx4090-3");
    core.release(JobId(1));
    core.sanity_check();
    assert_eq!(core.capacity()[0].free_cards, 31);
}

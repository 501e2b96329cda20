//! The decision hash: the same inputs give the same decisions, and other inputs another hash.

use suanli_core::Policy;
use suanli_testkit::*;
use suanli_types::{JobId, PriorityClass};

#[test]
fn replaying_the_inputs_reproduces_every_decision() {
    fn drive(seed: u64) -> (u64, Vec<(i64, String)>) {
        let centers = [
            center("a", "RTX4090", 3, 8, "2"),
            center("b", "H20", 2, 8, "5"),
            center("c", "Ascend910B3", 4, 8, "7"),
        ];
        let mut c = core_of(Policy::Suanli, &centers);
        let mut x = seed;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut log = Vec::new();
        let mut running: Vec<JobId> = Vec::new();
        for step in 0..300i64 {
            let r = next();
            let tenant = ["a", "b", "c"][(r % 3) as usize];
            let mut j = job(step, tenant, 1 << (r % 4), 10 + r % 120);
            j.spec.priority = PriorityClass::ALL[((r >> 8) % 3) as usize];
            c.enqueue(j);
            if r % 5 == 0 && !running.is_empty() {
                let v = running.remove((r as usize >> 3) % running.len());
                c.release(v);
            }
            for p in c.schedule(mins(step)) {
                running.retain(|j| !p.preempted.contains(j));
                running.push(p.job);
                log.push((p.job.0, p.alloc.center.to_string()));
            }
            c.sanity_check();
        }
        (c.decision_hash(), log)
    }
    let (h1, l1) = drive(7);
    let (h2, l2) = drive(7);
    assert_eq!(h1, h2);
    assert_eq!(l1, l2);
    assert!(!l1.is_empty());
    let (h3, _) = drive(8);
    assert_ne!(h1, h3, "different inputs, different decisions");
}

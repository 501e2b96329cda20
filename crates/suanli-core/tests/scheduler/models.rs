//! Jobs that name a model: placed only on a chip SKU at a center that runs the stack version
//! the model was certified with; a change of version there stops new placements there; a model
//! certified nowhere is infeasible, with each center's reason.

use suanli_core::{Certified, Core};
use suanli_testkit::*;
use suanli_types::CenterSpec;

use crate::cheapest;

fn with_stack(mut c: CenterSpec, stack: &str, version: &str) -> CenterSpec {
    c.stacks.insert(stack.into(), version.into());
    c
}

fn cert(sku: &str, stack: &str, version: &str) -> Certified {
    Certified {
        sku: sku.into(),
        stack: stack.into(),
        version: version.into(),
        speed_milli: None,
    }
}

fn modelled(cards: u32) -> suanli_types::JobSpec {
    let mut s = spec(cards, 1);
    s.model = Some("llm@v1".into());
    s
}

fn centers() -> Vec<CenterSpec> {
    vec![
        // The cheapest, but its CANN is another version than the certified one.
        with_stack(center("a-old", "Ascend910B3", 1, 8, "1"), "cann", "8.0"),
        with_stack(center("b-new", "Ascend910B3", 1, 8, "2"), "cann", "8.3"),
        with_stack(center("c-mlu", "MLU370-X8", 1, 8, "1.5"), "neuware", "1.20"),
    ]
}

#[test]
fn a_model_job_goes_only_where_the_model_is_certified_on_that_stack_version() {
    let mut core: Core = cheapest(&centers());
    core.set_certified("llm@v1", vec![cert("Ascend910B3", "cann", "8.3")]);
    core.enqueue(pending(1, "t", modelled(1)));
    core.enqueue(pending(2, "t", spec(1, 1)));
    let placed = pass(&mut core, T0);
    let at = |id: i64| {
        placed
            .iter()
            .find(|p| p.job.0 == id)
            .map(|p| p.alloc.center.to_string())
    };
    assert_eq!(
        at(1).as_deref(),
        Some("b-new"),
        "the certified version, not the cheapest"
    );
    assert_eq!(
        at(2).as_deref(),
        Some("a-old"),
        "a job without a model: the cheapest"
    );
    let p1 = placed.iter().find(|p| p.job.0 == 1).unwrap();
    let reasons: Vec<(String, String)> = p1
        .decision
        .rejected
        .iter()
        .map(|r| (r.center.to_string(), r.reason.clone()))
        .collect();
    assert!(
        reasons.contains(&(
            "a-old".into(),
            "model llm@v1 is not certified on Ascend910B3 / cann 8.0".into()
        )),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(
            "c-mlu".into(),
            "model llm@v1 is not certified on MLU370-X8 / neuware 1.20".into()
        )),
        "{reasons:?}"
    );
}

#[test]
fn a_stack_version_change_at_a_center_stops_new_placements_there_until_recertified() {
    let mut core: Core = cheapest(&centers());
    core.set_certified("llm@v1", vec![cert("Ascend910B3", "cann", "8.3")]);
    // b-new moves to CANN 8.5: nothing is certified any more.
    core.upsert_center(&with_stack(
        center("b-new", "Ascend910B3", 1, 8, "2"),
        "cann",
        "8.5",
    ));
    core.enqueue(pending(1, "t", modelled(1)));
    assert!(
        pass(&mut core, T0).is_empty(),
        "waits: certified nowhere now"
    );
    let e = core.feasibility(&modelled(1)).unwrap_err();
    assert!(
        e.iter()
            .any(|r| r.reason == "model llm@v1 is not certified on Ascend910B3 / cann 8.5"),
        "{e:?}"
    );
    // Certified on 8.5 too: placed there.
    core.set_certified(
        "llm@v1",
        vec![
            cert("Ascend910B3", "cann", "8.3"),
            cert("Ascend910B3", "cann", "8.5"),
        ],
    );
    let placed = pass(&mut core, T0);
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].alloc.center.as_str(), "b-new");
}

#[test]
fn a_model_never_certified_is_infeasible_and_other_models_are_not_mixed_up() {
    let mut core: Core = cheapest(&centers());
    let e = core.feasibility(&modelled(1)).unwrap_err();
    assert_eq!(e.len(), 3, "{e:?}");
    core.set_certified("other@v1", vec![cert("MLU370-X8", "neuware", "1.20")]);
    core.set_certified("llm@v1", vec![cert("Ascend910B3", "cann", "8.0")]);
    let mut other = spec(1, 1);
    other.model = Some("other@v1".into());
    // The same shape otherwise: each goes where its own model is certified.
    core.enqueue(pending(1, "t", modelled(1)));
    core.enqueue(pending(2, "t", other));
    let placed = pass(&mut core, T0);
    let mut at: Vec<(i64, String)> = placed
        .iter()
        .map(|p| (p.job.0, p.alloc.center.to_string()))
        .collect();
    at.sort();
    assert_eq!(at, [(1, "a-old".to_string()), (2, "c-mlu".to_string())]);
}

#[test]
fn a_job_that_names_centers_runs_only_there_and_the_others_say_so() {
    let mut core: Core = cheapest(&centers());
    let mut s = spec(1, 1);
    s.centers = vec![suanli_types::CenterId::new("c-mlu")];
    core.enqueue(pending(1, "t", s.clone()));
    let placed = pass(&mut core, T0);
    assert_eq!(
        placed[0].alloc.center.as_str(),
        "c-mlu",
        "not the cheaper a-old"
    );
    let why: Vec<&str> = placed[0]
        .decision
        .rejected
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert_eq!(why, ["the job may run only at c-mlu"; 2]);
    // A named center that cannot take it: infeasible, each center saying why.
    s.chips.vendor = Some("huawei".into());
    let e = core.feasibility(&s).unwrap_err();
    assert!(
        e.iter()
            .any(|r| r.center.as_str() == "c-mlu" && r.reason.contains("no pool offers")),
        "{e:?}"
    );
}

#[test]
fn a_faster_dearer_chip_wins_when_it_is_cheaper_per_job_and_the_quote_shows_both_run_times() {
    let slow = with_stack(
        center("slow-a800", "A800-80G", 1, 8, "1.00"),
        "cuda",
        "12.4",
    );
    let fast = with_stack(center("fast-l40s", "L40S", 1, 8, "2.00"), "cuda", "12.4");
    let mut core = suanli_testkit::core_of(suanli_core::Policy::Suanli, &[slow, fast]);
    let mut job = modelled(1);
    job.walltime = 3 * 3600;
    // Without speeds: the wall time everywhere, the cheaper hour wins.
    core.set_certified(
        "llm@v1",
        vec![
            cert("A800-80G", "cuda", "12.4"),
            cert("L40S", "cuda", "12.4"),
        ],
    );
    let q = core.quote(&pending(9, "t", job.clone()), T0);
    assert_eq!(q.candidates[0].center.as_str(), "slow-a800");
    assert!(q.candidates.iter().all(|c| c.expected_run_secs.is_none()));
    // Measured: the L40S runs it 3x as fast. At twice the hourly price it is cheaper per job.
    let measured = |sku: &str, speed| Certified {
        speed_milli: Some(speed),
        ..cert(sku, "cuda", "12.4")
    };
    core.set_certified(
        "llm@v1",
        vec![measured("A800-80G", 1000), measured("L40S", 3000)],
    );
    let q = core.quote(&pending(9, "t", job.clone()), T0);
    let run = |center: &str| {
        let c = q
            .candidates
            .iter()
            .find(|c| c.center.as_str() == center)
            .unwrap();
        (c.expected_run_secs, c.cost_total.to_string())
    };
    assert_eq!(run("slow-a800"), (Some(3 * 3600), "3.00".to_string()));
    assert_eq!(run("fast-l40s"), (Some(3600), "2.00".to_string()));
    assert_eq!(q.candidates[0].center.as_str(), "fast-l40s");
    core.enqueue(pending(1, "t", job));
    assert_eq!(pass(&mut core, T0)[0].alloc.center.as_str(), "fast-l40s");
}

//! Jobs that read datasets: placed only at a center that holds every one of them, whatever it
//! costs; the other centers say where the data resides; a dataset held nowhere (or unknown) makes
//! the job infeasible; a job without datasets of the same shape is not held back.

use suanli_core::Core;
use suanli_testkit::*;
use suanli_types::CenterId;

use crate::cheapest;

fn reading(datasets: &[&str]) -> suanli_types::JobSpec {
    let mut s = spec(1, 1);
    s.datasets = datasets.iter().map(|d| d.to_string()).collect();
    s
}

fn three() -> Vec<suanli_types::CenterSpec> {
    vec![
        center("a-cheap", "RTX4090", 1, 8, "1"),
        center("b-mid", "RTX4090", 1, 8, "2"),
        center("c-dear", "RTX4090", 1, 8, "3"),
    ]
}

#[test]
fn a_job_reading_data_runs_where_all_of_it_resides_and_the_others_say_where_that_is() {
    let mut core: Core = cheapest(&three());
    core.set_dataset_homes(
        "census",
        vec![CenterId::new("c-dear"), CenterId::new("b-mid")],
    );
    core.set_dataset_homes("clinic", vec![CenterId::new("c-dear")]);
    core.enqueue(pending(1, "t", reading(&["census"])));
    core.enqueue(pending(2, "t", reading(&["census", "clinic"])));
    core.enqueue(pending(3, "t", spec(1, 1)));
    let placed = pass(&mut core, T0);
    let at = |job: i64| {
        placed
            .iter()
            .find(|p| p.job.0 == job)
            .map(|p| p.alloc.center.to_string())
            .unwrap()
    };
    assert_eq!(at(1), "b-mid", "the cheaper of census's homes");
    assert_eq!(at(2), "c-dear", "the only center holding both");
    assert_eq!(
        at(3),
        "a-cheap",
        "the same shape without data is not held back"
    );
    let two = placed.iter().find(|p| p.job.0 == 2).unwrap();
    let why: Vec<(&str, &str)> = two
        .decision
        .rejected
        .iter()
        .map(|r| (r.center.as_str(), r.reason.as_str()))
        .collect();
    assert!(
        why.contains(&("a-cheap", "dataset census resides at b-mid, c-dear")),
        "{why:?}"
    );
    assert!(
        why.contains(&("b-mid", "dataset clinic resides at c-dear")),
        "{why:?}"
    );
}

#[test]
fn data_held_nowhere_makes_a_job_infeasible_and_moving_it_moves_the_job() {
    let mut core: Core = cheapest(&three());
    let e = core.feasibility(&reading(&["unknown"])).unwrap_err();
    assert_eq!(e.len(), 3);
    assert!(
        e.iter()
            .all(|r| r.reason == "dataset unknown is not registered at any center"),
        "{e:?}"
    );
    assert!(core.set_dataset_homes("moved", vec![CenterId::new("a-cheap")]));
    assert!(
        !core.set_dataset_homes("moved", vec![CenterId::new("a-cheap")]),
        "no change"
    );
    core.enqueue(pending(1, "t", reading(&["moved"])));
    // The data moves before the pass: the job follows it.
    assert!(core.set_dataset_homes("moved", vec![CenterId::new("c-dear")]));
    let placed = pass(&mut core, T0);
    assert_eq!(placed[0].alloc.center.as_str(), "c-dear");
}

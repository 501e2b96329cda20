//! Version skew of the agent protocol, on the messages as an agent or a hub of another version
//! sends them (`fixtures/*.json`): an older agent's heartbeat lacks the newest fields, a newer
//! agent's and a newer hub's messages carry fields this build does not know.

use serde::de::DeserializeOwned;

use super::*;
use suanli_types::{BackendKind, JobId, JobSpec, TenantId, Timestamp};

fn read<T: DeserializeOwned>(fixture: &str) -> T {
    serde_json::from_str(fixture).unwrap_or_else(|e| panic!("{e} in\n{fixture}"))
}

#[test]
fn the_hub_takes_the_heartbeat_of_an_agent_from_before_the_version() {
    let hb: Heartbeat = read(include_str!("../fixtures/heartbeat-unversioned.json"));
    assert_eq!((hb.protocol, hb.draining), (0, false), "the defaults");
    assert_eq!(hb.agent_version, "0.1.0");
    assert_eq!(hb.inventory[0].free_cards, 6);
    assert_eq!(
        hb.running,
        [AttemptRef {
            job: JobId(41),
            attempt: 2
        }]
    );
}

#[test]
fn the_hub_takes_what_a_newer_agent_sends() {
    let hb: Heartbeat = read(include_str!("../fixtures/heartbeat-newer.json"));
    assert_eq!(hb.protocol, PROTOCOL_VERSION + 1);
    assert_eq!(hb.inventory[0].node, "rtx4090-0");
    assert_eq!(hb.running[0].job, JobId(41));

    let batch: EventBatch = read(include_str!("../fixtures/events-newer.json"));
    assert_eq!(batch.events.len(), 3);
    assert!(matches!(
        batch.events[1].kind,
        EventKind::Log {
            seq: 0,
            stream: Stream::Stdout,
            ..
        }
    ));
    assert!(matches!(
        batch.events[2].kind,
        EventKind::Finished {
            outcome: Outcome::Succeeded,
            card_seconds: 20,
            ..
        }
    ));
}

#[test]
fn the_agent_takes_what_a_newer_hub_sends() {
    let reply: HeartbeatReply = read(include_str!("../fixtures/heartbeat-reply-newer.json"));
    assert_eq!(reply.lease_ttl_secs, 60);
    assert_eq!(reply.kill[0].attempt, 2);

    let work: Assignments = read(include_str!("../fixtures/assignments-newer.json"));
    let a = &work.assignments[0];
    assert_eq!(
        (a.job, a.attempt, a.sku.as_str()),
        (JobId(42), 1, "RTX4090")
    );
    assert_eq!(a.spec.command, "python train.py");
    assert_eq!((a.spec.cards_per_node, a.spec.walltime), (2, 1800));
    assert_eq!(a.spec.chips.vendor.as_deref(), Some("nvidia"));
    assert_eq!(a.nodes[0].cards, 2);

    let results: EventResults = read(include_str!("../fixtures/event-results-newer.json"));
    assert_eq!(results.results, [EventStatus::Accepted, EventStatus::Stale]);

    let text = include_str!("../fixtures/site-config-newer.json");
    let SiteConfig(center) = read(text);
    assert_eq!(center.id.as_str(), "sz-a");
    assert_eq!(center.backend, BackendKind::Slurm);
    assert_eq!(center.pools[0].cards_per_node, 8);
    // What the lenient reading is for: the definition itself refuses unknown fields.
    assert!(serde_json::from_str::<suanli_types::CenterSpec>(text).is_err());
}

#[test]
fn lenient_reading_still_refuses_what_is_wrong() {
    // A known field of the wrong type, and a missing required one, are still errors.
    let bad_spec = r#"{"assignments": [{"job": 1, "attempt": 1, "tenant": "t",
        "spec": {"name": "x", "command": "true", "cards_per_node": "two"},
        "sku": "RTX4090", "nodes": [], "lease_expires_at": 0}]}"#;
    assert!(serde_json::from_str::<Assignments>(bad_spec).is_err());
    let no_command = r#"{"assignments": [{"job": 1, "attempt": 1, "tenant": "t",
        "spec": {"name": "x"}, "sku": "RTX4090", "nodes": [], "lease_expires_at": 0}]}"#;
    assert!(serde_json::from_str::<Assignments>(no_command).is_err());
    assert!(serde_json::from_str::<SiteConfig>(r#"{"id": "sz-a"}"#).is_err());
}

#[test]
fn what_this_build_sends_reads_back_the_same() {
    let mut spec = JobSpec::new("t", "echo");
    spec.env.insert("A".into(), "1".into());
    let work = Assignments {
        assignments: vec![Assignment {
            job: JobId(3),
            attempt: 2,
            tenant: TenantId::new("t"),
            spec,
            sku: "RTX4090".into(),
            nodes: vec![NodeCards {
                node: "rtx4090-0".into(),
                cards: 1,
            }],
            lease_expires_at: Timestamp(5),
            datasets: Vec::new(),
        }],
        kill: Vec::new(),
    };
    let back: Assignments = read(&serde_json::to_string(&work).unwrap());
    assert_eq!(back, work);
    let center = suanli_types::center::gba_topology(1).remove(0);
    let back: SiteConfig = read(&serde_json::to_string(&center).unwrap());
    assert_eq!(back.0, center);
}

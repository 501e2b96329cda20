//! Live decisions replay: a busy hub's input log, run through `suanli replay`, gives the decision
//! hash `GET /v1/hub` shows; the same log with one tenant's weight changed gives another.

use std::process::Command;
use std::time::Duration;

use suanli_proto::TenantPolicyView;
use suanli_types::{JobId, JobSpec, JobState};

use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_suanli");

fn job(i: usize) -> JobSpec {
    let mut s = JobSpec::new(
        format!("busy-{i}"),
        if i % 7 == 3 {
            "sleep 0.2; exit 1"
        } else {
            "sleep 0.3"
        },
    );
    s.cards_per_node = 1 + (i % 2) as u32;
    s
}

/// `suanli replay ARGS --json`: the decision hash it prints, of a busy log.
fn replay(args: &[&str]) -> String {
    let v = replayed(args);
    assert_eq!(v["starts"], 1, "{v}");
    assert!(v["inputs"].as_u64().unwrap() > 100, "a busy log: {v}");
    v["decision_hash"].as_str().unwrap().to_string()
}

/// `suanli replay ARGS --json`, which must succeed: what it prints.
pub(crate) fn replayed(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("replay")
        .args(args)
        .arg("--json")
        .env_remove("SUANLI_STORE")
        .env_remove("SUANLI_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "suanli replay {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    eprintln!("replay {args:?}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_hub_replays_to_its_decision_hash() {
    let centers = [
        center("r-a", "RTX4090", 1, 4, "2.00"),
        center("r-b", "RTX4090", 1, 2, "3.00"),
    ];
    let mut net = Net::new(&centers, &["t-a", "t-b"]).await;
    let op = net.op();
    let weight = |w| TenantPolicyView {
        weight: w,
        quotas: Default::default(),
        public_service: false,
    };
    op.set_tenant_policy("t-a", &weight(4)).await.unwrap();
    let a = net.user("t-a", "alice").await;
    let b = net.user("t-b", "bob").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;

    // Two tenants compete for six cards: who goes next is the fair share's call.
    let mut jobs: Vec<(JobId, bool)> = Vec::new();
    for i in 0..14 {
        jobs.push((a.submit(&job(i)).await.unwrap().summary.id, true));
        jobs.push((b.submit(&job(i)).await.unwrap().summary.id, false));
    }
    // Jobs that wait: for others (one of them failing: job 3 exits 1), for a release, and an
    // array two tasks at a time; a replay must let them in when the live hub did.
    let mut gated: Vec<(JobId, bool)> = Vec::new();
    for (i, dep) in [
        format!("afterok:{}", jobs[0].0),
        format!("afterok:{}", jobs[6].0),
        format!("afterany:{}", jobs[6].0),
        "singleton".to_string(),
        "singleton".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = job(100 + i);
        s.name = "waits".into();
        s.dependency = Some(dep);
        gated.push((a.submit(&s).await.unwrap().summary.id, true));
    }
    let mut s = job(200);
    s.hold = true;
    let held = a.submit(&s).await.unwrap().summary.id;
    gated.push((held, true));
    let mut s = job(300);
    s.array = Some("0-3%2".into());
    let array = b.submit(&s).await.unwrap().summary.id;
    for t in 0..4 {
        gated.push((JobId(array.0 + t), false));
    }
    // A cancel while queued or running, a drain and an undrain on the way.
    b.cancel(jobs[9].0).await.unwrap();
    a.release(held).await.unwrap();
    op.drain("r-b", false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    op.undrain("r-b").await.unwrap();
    for (i, (id, of_a)) in jobs.iter().enumerate() {
        let owner = if *of_a { &a } else { &b };
        let v = wait_terminal(owner, *id, Duration::from_secs(120)).await;
        if i != 9 {
            assert!(
                matches!(v.summary.state, JobState::Succeeded | JobState::Failed),
                "job {id}: {:?} {:?}",
                v.summary.state,
                v.summary.reason
            );
        }
    }
    for (id, of_a) in &gated {
        let owner = if *of_a { &a } else { &b };
        let v = wait_terminal(owner, *id, Duration::from_secs(120)).await;
        assert!(
            v.summary.state != JobState::Queued,
            "job {id}: {:?}",
            v.summary.reason
        );
    }
    // Every input noted so far reaches the log at the next tick.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let live = op
        .hub_status()
        .await
        .unwrap()
        .decision_hash
        .expect("the hub runs an engine");
    eprintln!("live decision hash {live}");

    let db = format!("sqlite:{}", net.db.display());
    let file = net.dir.path().join("inputs.jsonl");
    let file_arg = file.to_str().unwrap();
    assert_eq!(replay(&["--store", &db, "--export", file_arg]), live);
    assert_eq!(
        replay(&["--from", file_arg]),
        live,
        "the exported log replays the same"
    );

    // The same inputs with tenant t-a at weight 1: other decisions.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut changed = 0;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["input"] == "tenant-policy" && v["tenant"] == "t-a" {
                v["policy"]["weight"] = 1.into();
                changed += 1;
            }
            v.to_string()
        })
        .collect();
    assert_eq!(changed, 1, "one policy input in the log");
    let other = net.dir.path().join("inputs-weight-1.jsonl");
    std::fs::write(&other, edited.join("\n")).unwrap();
    assert_ne!(replay(&["--from", other.to_str().unwrap()]), live);
    net.stop_agents().await;
}

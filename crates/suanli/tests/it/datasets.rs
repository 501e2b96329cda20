//! Data stays home: a restricted dataset is computed on only by tenants with a grant, only at
//! its home center, read-only and without network; its job's outputs are quarantined until the
//! data owner's reviewer (never the requester) approves a release that passed the automatic
//! rules; every step is in the request's history and the audit log.

use std::time::Duration;

use suanli_client::AuditQuery;
use suanli_proto::suanli_data::{
    Classification, DataPolicy, DatasetSpec, OutputRules, ReleaseState, Verdict,
};
use suanli_proto::{
    AirlockRequest, AirlockReview, DatasetGrantRequest, ErrorCode, RegisterDataset, TokenRequest,
};
use suanli_types::{CenterId, JobSpec, JobState, Role, TenantId};

use crate::harness::*;

async fn admin_of(net: &Net, tenant: &str, name: &str) -> suanli_client::Client {
    let t = net
        .op()
        .create_token(&TokenRequest {
            name: name.into(),
            role: Role::TenantAdmin,
            tenant: Some(TenantId::new(tenant)),
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;
    net.client(&t)
}

fn clinic(path: &str) -> DatasetSpec {
    DatasetSpec {
        name: "clinic".into(),
        homes: vec![CenterId::new("home-c")],
        path: path.into(),
        size_bytes: 64,
        classification: Classification::Restricted,
        description: "visits per clinic, 2025".into(),
        policy: DataPolicy {
            egress: false,
            commands: Vec::new(),
            outputs: OutputRules {
                max_bytes: Some(1000),
                allowed_types: vec!["csv".into()],
                forbidden: vec!["patient_id".into()],
            },
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_data_is_computed_on_at_home_without_network_and_leaves_only_through_review() {
    let strongest = suanli_site::isolation::Sandbox::detect(
        &suanli_site::isolation::IsolationConfig::default(),
    )
    .map(|s| s.mode);
    if strongest.ok() != Some(suanli_site::isolation::Isolation::Bwrap) {
        crate::check::skip(
            "datasets::restricted_data_is_computed_on_at_home_without_network_and_leaves_only_through_review",
            "bubblewrap is needed to cut a job's network (.ci/run installs it)",
        );
        return;
    }
    // The site mounts data only from its data root.
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("clinic");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.as_path().join("records.csv"),
        "clinic,visits\na,3\nb,5\n",
    )
    .unwrap();
    let centers = [
        center("cheap-c", "RTX4090", 1, 2, "1.00"),
        center("home-c", "RTX4090", 1, 2, "3.00"),
    ];
    let mut net = Net::new(&centers, &["health", "acme", "rival"]).await;
    net.data_roots = vec![root.path().to_path_buf()];
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let owner = admin_of(&net, "health", "health-admin").await;
    let acme = net.user("acme", "ann").await;

    // Registered by its owner; only the owner and the operator see where it lies.
    let reg = RegisterDataset {
        spec: clinic(data.as_path().to_str().unwrap()),
        owner: None,
    };
    owner.register_dataset(&reg).await.unwrap();
    // Another owner cannot name the same folder (or one holding it) at that center as a
    // dataset of its own, public, to read it without a grant.
    let rival_admin = admin_of(&net, "rival", "rival-lab").await;
    let mut alias = clinic(root.path().to_str().unwrap());
    alias.name = "alias".into();
    alias.classification = Classification::Public;
    let e = rival_admin
        .register_dataset(&RegisterDataset {
            spec: alias,
            owner: None,
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("spec.path") && e.to_string().contains("overlaps dataset clinic"),
        "{e}"
    );
    let seen = acme.dataset("clinic").await.unwrap();
    assert_eq!(
        (seen.access.as_str(), seen.spec.path.as_str()),
        ("needs a grant", "")
    );

    // A job on it: refused without a grant, naming the field.
    let mut spec = JobSpec::new(
        "clinic-summary",
        format!(
            "mkdir -p out; wc -l < \"$SUANLI_DATASET_CLINIC/records.csv\" > out/summary.csv; \
             echo patient_id,visits > out/leak.csv; echo clinic,n > out/second.csv; \
             command -v curl > /dev/null || echo NO-CURL; \
             if touch \"$SUANLI_DATASET_CLINIC/planted\" 2>/dev/null; then echo WROTE; else echo READ-ONLY; fi; \
             if curl -s -m 3 -o /dev/null {}/healthz; then echo NET-OK; else echo NET-CUT; fi",
            net.url
        ),
    );
    spec.datasets = vec!["clinic".into()];
    spec.outputs = vec!["out/*.csv".into()];
    let e = acme.submit(&spec).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidSpec), "{e}");
    assert!(
        e.to_string().contains("spec.datasets[0]") && e.to_string().contains("has no grant"),
        "{e}"
    );

    // Granted: placed at the data's home, not the cheaper center; read-only; no network.
    owner
        .grant_dataset(
            "clinic",
            &DatasetGrantRequest {
                tenant: TenantId::new("acme"),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let id = submit(&acme, &spec).await;
    let v = wait_terminal(&acme, id, Duration::from_secs(60)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.summary);
    assert_eq!(
        v.summary.center.as_ref().map(|c| c.as_str()),
        Some("home-c")
    );
    let rejected: Vec<String> = v
        .placement
        .iter()
        .flat_map(|p| {
            p.rejected
                .iter()
                .map(|r| format!("{}: {}", r.center, r.reason))
        })
        .collect();
    assert!(
        rejected.contains(&"cheap-c: dataset clinic resides at home-c".to_string()),
        "{rejected:?}"
    );
    // The log is quarantined with the outputs (printing the data would carry it past the
    // review): the job's tenant may not read it; the operator reads it with a reason.
    let e = acme.logs(id, None, 0).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");
    assert!(e.to_string().contains("quarantined"), "{e}");
    let op = net.op().with_reason(Some("checking the sandbox".into()));
    let log = all_logs(&op, id).await;
    assert!(
        log.contains("READ-ONLY") && log.contains("NET-CUT"),
        "{log}"
    );
    assert!(
        !log.contains("NO-CURL"),
        "the network probe needs curl: {log}"
    );
    assert!(!data.as_path().join("planted").exists());

    // Quarantined: not even the submitter downloads.
    let q = acme
        .download_output(id, "out/summary.csv", None)
        .await
        .unwrap_err();
    assert_eq!(q.code(), Some(ErrorCode::Forbidden), "{q}\n{log}");
    assert!(q.to_string().contains("quarantined"), "{q}");

    // A request for everything is blocked by the rule the leak breaks.
    let all = acme
        .airlock_request(&AirlockRequest {
            job: id,
            justification: "visits per clinic for the annual report".into(),
            paths: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(all.state, ReleaseState::Blocked, "{all:?}");
    assert!(
        all.breaches
            .iter()
            .any(|b| b.rule == "forbidden" && b.detail.contains("out/leak.csv")),
        "{:?}",
        all.breaches
    );
    // The summary alone passes, and waits for the owner's review.
    let r = acme
        .airlock_request(&AirlockRequest {
            job: id,
            justification: "visits per clinic for the annual report".into(),
            paths: vec!["out/summary.csv".into()],
        })
        .await
        .unwrap();
    assert_eq!(r.state, ReleaseState::InReview);
    let approve = AirlockReview {
        verdict: Verdict::Approve,
        reason: "aggregates only".into(),
    };
    // The requester cannot approve; nor can another tenant's admin (not visible to it).
    let own = acme.airlock_review(r.id, &approve).await.unwrap_err();
    assert_eq!(own.code(), Some(ErrorCode::Conflict), "{own}");
    let rival = admin_of(&net, "rival", "rival-admin").await;
    let e = rival.airlock_review(r.id, &approve).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    let done = owner.airlock_review(r.id, &approve).await.unwrap();
    assert_eq!(done.state, ReleaseState::Approved);

    // The approved file downloads; the blocked one stays home.
    let got = acme
        .download_output(id, "out/summary.csv", None)
        .await
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap().trim(), "3");
    let still = acme
        .download_output(id, "out/leak.csv", None)
        .await
        .unwrap_err();
    assert_eq!(still.code(), Some(ErrorCode::Forbidden), "{still}");

    // Every step is on the request, and the writes and the download in the audit log.
    let shown = acme.airlock_show(r.id).await.unwrap();
    let steps: Vec<&str> = shown.history.iter().map(|h| h.what.as_str()).collect();
    for want in [
        "requested",
        "check",
        "approved by",
        "downloaded out/summary.csv",
    ] {
        assert!(
            steps.iter().any(|s| s.contains(want)),
            "{want:?} not in {steps:?}"
        );
    }
    let audit = net
        .op()
        .audit_entries(&AuditQuery::default())
        .await
        .unwrap();
    let actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    for want in [
        "PUT /v1/datasets/{name}",
        "POST /v1/datasets/{name}/grants",
        "POST /v1/airlock",
        "POST /v1/airlock/{id}/review",
        "GET /v1/jobs/{id}/outputs/content",
    ] {
        assert!(actions.contains(&want), "{want} not audited: {actions:?}");
    }

    // A rejected release deletes its files: they never leave.
    let second = acme
        .airlock_request(&AirlockRequest {
            job: id,
            justification: "the clinic list".into(),
            paths: vec!["out/second.csv".into()],
        })
        .await
        .unwrap();
    let reject = AirlockReview {
        verdict: Verdict::Reject,
        reason: "not needed for the report".into(),
    };
    let rejected = owner.airlock_review(second.id, &reject).await.unwrap();
    assert_eq!(rejected.state, ReleaseState::Rejected);
    assert!(
        rejected
            .history
            .iter()
            .any(|h| h.what == "deleted out/second.csv"),
        "{:?}",
        rejected.history
    );
    let left = acme.outputs(id).await.unwrap();
    assert!(
        !left.outputs.iter().any(|o| o.path == "out/second.csv"),
        "{left:?}"
    );
    assert!(
        acme.download_output(id, "out/second.csv", None)
            .await
            .is_err()
    );

    // A data owner cannot make a site mount what is not its data: a dataset whose path lies
    // outside the site's data roots (here the hub's own folder) fails its job unstarted, unbilled.
    let mut grab = clinic(net.dir.path().to_str().unwrap());
    grab.name = "grab".into();
    grab.classification = Classification::Public;
    owner
        .register_dataset(&RegisterDataset {
            spec: grab,
            owner: None,
        })
        .await
        .unwrap();
    let mut reach = JobSpec::new("reach", "ls -la \"$SUANLI_DATASET_GRAB\"");
    reach.datasets = vec!["grab".into()];
    let reach = submit(&acme, &reach).await;
    let v = wait_terminal(&acme, reach, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Failed, "{:?}", v.summary);
    assert!(
        v.summary
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("outside this site's data roots")),
        "{:?}",
        v.summary
    );
    assert_eq!(v.card_seconds, 0, "nothing ran, nothing billed");

    // A revoked grant refuses the next job at once.
    owner
        .revoke_dataset("clinic", &TenantId::new("acme"))
        .await
        .unwrap();
    let e = acme.submit(&spec).await.unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");
}

//! Conformance checks of the datasets, their grants, and the airlock's release requests.

use suanli_data::{
    Classification, DataPolicy, DatasetSpec, Grant, OutputRules, ReleaseFile, ReleaseRequest,
    ReleaseState, Requester, Reviewer, Verdict,
};
use suanli_types::{CenterId, JobId, TenantId, Timestamp};

use super::{T0, job, tenant};
use crate::*;

fn spec(name: &str, classification: Classification) -> DatasetSpec {
    DatasetSpec {
        name: name.into(),
        homes: vec![CenterId::from("pcl-cb2"), CenterId::from("sz-sc")],
        path: format!("/data/{name}"),
        size_bytes: 12 << 30,
        classification,
        description: "门诊记录 2025, 深圳".into(),
        policy: DataPolicy {
            egress: false,
            commands: vec!["ab".repeat(32)],
            outputs: OutputRules {
                max_bytes: Some(1 << 20),
                allowed_types: vec!["csv".into()],
                forbidden: vec!["patient_id".into()],
            },
        },
    }
}

fn record(owner: &str, spec: DatasetSpec, at: Timestamp) -> DatasetRecord {
    DatasetRecord {
        owner: TenantId::new(owner),
        spec,
        registered_by: format!("{owner}-admin (#2)"),
        registered_at: at,
        updated_at: at,
    }
}

pub async fn datasets_are_registered_by_their_owner_and_replaced_by_it_only(s: &dyn Store) {
    assert!(s.datasets().await.unwrap().is_empty());
    assert_eq!(s.dataset("clinics").await.unwrap(), None);

    // Listed by name (bytewise), whatever the order registered.
    let clinics = record("hospital", spec("clinics", Classification::Sensitive), T0);
    let census = record(
        "city",
        spec("census", Classification::Public),
        T0.plus_secs(1),
    );
    let b = record(
        "city",
        spec("b-2", Classification::Restricted),
        T0.plus_secs(2),
    );
    for d in [&clinics, &census, &b] {
        s.upsert_dataset(d).await.unwrap();
    }
    assert_eq!(
        s.datasets().await.unwrap(),
        vec![b.clone(), census.clone(), clinics.clone()]
    );
    assert_eq!(s.dataset("clinics").await.unwrap(), Some(clinics.clone()));

    // The owner replaces the spec; the registration stays.
    let mut changed = spec("clinics", Classification::Restricted);
    changed.policy.egress = true;
    changed.policy.outputs = OutputRules::default();
    let again = DatasetRecord {
        spec: changed.clone(),
        registered_by: "someone-else (#9)".into(),
        registered_at: T0.plus_secs(60),
        updated_at: T0.plus_secs(60),
        ..clinics.clone()
    };
    s.upsert_dataset(&again).await.unwrap();
    let stored = s.dataset("clinics").await.unwrap().unwrap();
    assert_eq!(
        stored,
        DatasetRecord {
            spec: changed,
            updated_at: T0.plus_secs(60),
            ..clinics.clone()
        }
    );

    // Another tenant cannot take the name, and nothing changes.
    let theft = record(
        "sme",
        spec("clinics", Classification::Public),
        T0.plus_secs(90),
    );
    match s.upsert_dataset(&theft).await {
        Err(StoreError::Exists(m)) => {
            assert!(m.contains("clinics") && m.contains("hospital"), "{m}");
            assert!(m.contains("sme"), "{m}");
        }
        other => panic!("expected Exists, got {other:?}"),
    }
    assert_eq!(s.dataset("clinics").await.unwrap(), Some(stored));
    assert_eq!(s.datasets().await.unwrap().len(), 3);
}

fn grant(tenant: &str, at: Timestamp, expires_at: Option<Timestamp>) -> Grant {
    Grant {
        dataset: "clinics".into(),
        tenant: TenantId::new(tenant),
        granted_by: "hospital-admin (#2)".into(),
        granted_at: at,
        expires_at,
        revoked_at: None,
    }
}

pub async fn dataset_grants_are_kept_revoked_and_renewed(s: &dyn Store) {
    s.upsert_dataset(&record(
        "hospital",
        spec("clinics", Classification::Restricted),
        T0,
    ))
    .await
    .unwrap();
    s.upsert_dataset(&record(
        "city",
        spec("census", Classification::Restricted),
        T0,
    ))
    .await
    .unwrap();
    assert!(s.grants("clinics").await.unwrap().is_empty());

    let sme = TenantId::new("sme");
    let lab = TenantId::new("lab");
    let g_lab = grant("lab", T0.plus_secs(2), None);
    let g_sme = grant("sme", T0.plus_secs(1), Some(T0.plus_secs(3600)));
    let g_sme2 = grant("sme", T0.plus_secs(2), None);
    let g_census = Grant {
        dataset: "census".into(),
        ..grant("sme", T0, None)
    };
    for g in [&g_lab, &g_sme, &g_sme2, &g_census] {
        s.insert_grant(g).await.unwrap();
    }
    // By granted_at, then tenant; another dataset's grants stay apart.
    assert_eq!(
        s.grants("clinics").await.unwrap(),
        vec![g_sme.clone(), g_lab.clone(), g_sme2.clone()]
    );
    assert_eq!(s.grants("census").await.unwrap(), vec![g_census.clone()]);
    assert!(s.grants("nothing").await.unwrap().is_empty());

    // The same (dataset, tenant, granted_at) once.
    match s.insert_grant(&g_sme2).await {
        Err(StoreError::Exists(m)) => assert!(m.contains("clinics") && m.contains("sme"), "{m}"),
        other => panic!("expected Exists, got {other:?}"),
    }
    // A grant of a dataset nobody registered is refused.
    let ghost = Grant {
        dataset: "ghost".into(),
        ..grant("sme", T0, None)
    };
    assert!(s.insert_grant(&ghost).await.is_err());

    // Revoking stamps the tenant's unrevoked grants of that dataset only, and keeps them.
    let at = T0.plus_secs(10);
    assert_eq!(s.revoke_grants("clinics", &sme, at).await.unwrap(), 2);
    let listed = s.grants("clinics").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].revoked_at, Some(at));
    assert_eq!(listed[1], g_lab);
    assert_eq!(listed[2].revoked_at, Some(at));
    assert_eq!(s.grants("census").await.unwrap(), vec![g_census]);
    // Again: nothing left to revoke, the first revocation's time stays.
    assert_eq!(
        s.revoke_grants("clinics", &sme, T0.plus_secs(20))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.grants("clinics").await.unwrap()[0].revoked_at, Some(at));
    assert_eq!(
        s.revoke_grants("clinics", &TenantId::new("nobody"), at)
            .await
            .unwrap(),
        0
    );

    // Granted again: a new row, in force (the newest counts).
    let renewed = grant("sme", T0.plus_secs(30), Some(T0.plus_secs(7200)));
    s.insert_grant(&renewed).await.unwrap();
    let listed = s.grants("clinics").await.unwrap();
    assert_eq!(listed.last(), Some(&renewed));
    let d = s.dataset("clinics").await.unwrap().unwrap();
    suanli_data::check_access(&d.owner, &d.spec, &sme, &listed, T0.plus_secs(31)).unwrap();
    suanli_data::check_access(&d.owner, &d.spec, &sme, &listed, T0.plus_secs(15)).unwrap_err();
    suanli_data::check_access(&d.owner, &d.spec, &lab, &listed, T0.plus_secs(31)).unwrap();
    assert_eq!(s.revoke_grants("clinics", &lab, at).await.unwrap(), 1);
}

fn release(
    job: JobId,
    tenant: &str,
    owner: &str,
    classification: Classification,
) -> ReleaseRequest {
    let files = vec![
        ReleaseFile {
            path: "out/means.csv".into(),
            size: 26,
            sha256: "1".repeat(64),
        },
        ReleaseFile {
            path: "out/说明.csv".into(),
            size: 3,
            sha256: "2".repeat(64),
        },
    ];
    let contents: [&[u8]; 2] = [b"district,mean\nfutian,3.2\n", b"ok\n"];
    suanli_data::request(
        job,
        TenantId::new(tenant),
        TenantId::new(owner),
        vec!["clinics".into()],
        classification,
        Requester {
            id: 10,
            name: "alice (#10)",
        },
        "district means for the city report",
        files,
        &contents,
        &OutputRules {
            forbidden: vec!["patient_id".into()],
            ..OutputRules::default()
        },
        T0,
    )
    .unwrap()
}

pub async fn airlock_requests_are_numbered_updated_forward_and_listed(s: &dyn Store) {
    tenant(s, "sme").await;
    tenant(s, "lab").await;
    let j1 = job(s, "sme", "train").await.id;
    let j2 = job(s, "lab", "eval").await.id;
    assert_eq!(s.release_request(1).await.unwrap(), None);
    assert!(s.releases_of_job(j1).await.unwrap().is_empty());

    let r1 = release(j1, "sme", "hospital", Classification::Sensitive);
    let r2 = release(j2, "lab", "city", Classification::Restricted);
    let r3 = release(j1, "sme", "city", Classification::Restricted);
    let id1 = s.insert_release_request(&r1).await.unwrap();
    let id2 = s.insert_release_request(&r2).await.unwrap();
    let id3 = s.insert_release_request(&r3).await.unwrap();
    assert!(id1 < id2 && id2 < id3, "{id1} {id2} {id3}");

    // Stored whole, with its id.
    let mut got = s.release_request(id1).await.unwrap().unwrap();
    assert_eq!(
        got,
        ReleaseRequest {
            id: id1,
            ..r1.clone()
        }
    );
    assert_eq!(got.state, ReleaseState::InReview);
    assert_eq!(
        s.releases_of_job(j1)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![id1, id3]
    );
    assert_eq!(
        s.releases_of_job(j2).await.unwrap(),
        vec![ReleaseRequest {
            id: id2,
            ..r2.clone()
        }]
    );
    assert_eq!(
        s.releases_for_owner(&TenantId::new("city"))
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![id2, id3]
    );
    assert!(
        s.releases_for_owner(&TenantId::new("sme"))
            .await
            .unwrap()
            .is_empty()
    );

    // Two reviews, each written after the other: approved, with its whole history.
    let hospital = TenantId::new("hospital");
    let reviewer = |id, name| Reviewer {
        id,
        name,
        tenant: Some(&hospital),
        is_tenant_admin: true,
    };
    got.review(
        reviewer(20, "bob (#20)"),
        Verdict::Approve,
        "aggregates",
        T0.plus_secs(60),
    )
    .unwrap();
    s.update_release(&got).await.unwrap();
    let stale = s.release_request(id1).await.unwrap().unwrap();
    assert_eq!(stale, got);
    got.review(
        reviewer(21, "carol (#21)"),
        Verdict::Approve,
        "checked",
        T0.plus_secs(120),
    )
    .unwrap();
    assert_eq!(got.state, ReleaseState::Approved);
    s.update_release(&got).await.unwrap();
    got.record_download("out/means.csv", "alice (#10)", T0.plus_secs(180));
    s.update_release(&got).await.unwrap();
    let stored = s.release_request(id1).await.unwrap().unwrap();
    assert_eq!(stored, got);
    assert!(stored.releases("out/means.csv"));
    assert_eq!(
        stored.history.last().unwrap().what,
        "downloaded out/means.csv by alice (#10)"
    );

    // A write from a stale read (it lacks the steps stored since) changes nothing.
    let mut late = stale.clone();
    late.review(
        reviewer(22, "dan (#22)"),
        Verdict::Reject,
        "too late",
        T0.plus_secs(200),
    )
    .unwrap();
    assert_eq!(late.history.len(), stale.history.len() + 1);
    match s.update_release(&late).await {
        Err(StoreError::NotUpdated(m)) => assert!(m.contains("changed since"), "{m}"),
        other => panic!("expected NotUpdated, got {other:?}"),
    }
    // The same record again: nothing new, refused too.
    assert!(matches!(
        s.update_release(&got).await,
        Err(StoreError::NotUpdated(_))
    ));
    assert_eq!(s.release_request(id1).await.unwrap(), Some(stored.clone()));
    // A decided request is never decided again, even by a write with more steps (an approval
    // that raced a rejection, or the other way round).
    let mut redecided = stored.clone();
    redecided.state = ReleaseState::Rejected;
    for _ in 0..3 {
        redecided.history.push(redecided.history[0].clone());
    }
    assert!(matches!(
        s.update_release(&redecided).await,
        Err(StoreError::NotUpdated(_))
    ));
    assert_eq!(s.release_request(id1).await.unwrap(), Some(stored.clone()));
    // An unknown id.
    let ghost = ReleaseRequest {
        id: id3 + 100,
        ..late
    };
    match s.update_release(&ghost).await {
        Err(StoreError::NotUpdated(m)) => assert!(m.contains("does not exist"), "{m}"),
        other => panic!("expected NotUpdated, got {other:?}"),
    }
    // The listings show the update; the others are untouched.
    let of_job = s.releases_of_job(j1).await.unwrap();
    assert_eq!(of_job[0], stored);
    assert_eq!(of_job[1], ReleaseRequest { id: id3, ..r3 });
    assert_eq!(s.releases_for_owner(&hospital).await.unwrap(), vec![stored]);
    assert_eq!(
        s.release_request(id2).await.unwrap(),
        Some(ReleaseRequest { id: id2, ..r2 })
    );
}

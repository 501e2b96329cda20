//! One test suite for every [`Store`] implementation.
//!
//! Each check is a plain async function over `&dyn Store` on an empty store;
//! [`store_conformance_tests!`](crate::store_conformance_tests) instantiates all of them as
//! `#[tokio::test]`s for a backend, given an expression that yields a fresh store.

use suanli_types::{CenterId, JobId, JobSpec, JobState, Role, TenantCategory, TenantId, Timestamp};

use crate::*;

const T0: Timestamp = Timestamp(1_795_730_906_000);

async fn tenant(s: &dyn Store, id: &str) {
    s.create_tenant(
        &TenantRecord {
            id: TenantId::new(id),
            name: format!("Tenant {id}"),
            category: TenantCategory::Sme,
        },
        T0,
    )
    .await
    .unwrap();
}

async fn job(s: &dyn Store, tenant: &str, name: &str) -> JobRecord {
    s.insert_job(NewJob {
        tenant: TenantId::new(tenant),
        submitted_by: "alice".into(),
        spec: JobSpec::new(name, "echo hi"),
        at: T0,
    })
    .await
    .unwrap()
}

pub async fn tenants_and_tokens(s: &dyn Store) {
    tenant(s, "acme").await;
    let again = TenantRecord {
        id: TenantId::new("acme"),
        name: "other".into(),
        category: TenantCategory::Research,
    };
    assert!(
        !s.create_tenant(&again, T0).await.unwrap(),
        "duplicate tenant is refused"
    );
    assert_eq!(
        s.tenant(&TenantId::new("acme"))
            .await
            .unwrap()
            .unwrap()
            .name,
        "Tenant acme"
    );
    assert!(s.tenant(&TenantId::new("nope")).await.unwrap().is_none());
    assert_eq!(s.tenants().await.unwrap().len(), 1);

    assert!(!s.has_token_with_role(Role::Operator).await.unwrap());
    let p = Principal {
        name: "alice".into(),
        role: Role::User,
        tenant: Some(TenantId::new("acme")),
        center: None,
    };
    s.insert_token("h1", &p, T0).await.unwrap();
    assert_eq!(s.principal("h1").await.unwrap(), Some(p));
    assert_eq!(s.principal("h2").await.unwrap(), None);
    assert!(s.has_token_with_role(Role::User).await.unwrap());
}

pub async fn centers_upsert(s: &dyn Store) {
    let mut c = suanli_types::center::gba_topology(100).remove(0);
    assert!(s.upsert_center(&c, T0).await.unwrap());
    c.name = "renamed".into();
    assert!(!s.upsert_center(&c, T0).await.unwrap());
    let all = s.centers().await.unwrap();
    assert_eq!(all, vec![c]);
}

pub async fn job_lifecycle_with_compare_and_set(s: &dyn Store) {
    tenant(s, "acme").await;
    let mut j = job(s, "acme", "a").await;
    assert_eq!((j.state, j.attempt), (JobState::Queued, 0));
    assert_eq!(s.job(j.id).await.unwrap().unwrap(), j);

    j.state = JobState::Placed;
    j.attempt = 1;
    j.center = Some(CenterId::new("c1"));
    j.sku = Some("RTX4090".into());
    j.alloc = vec![NodeShare {
        node: "rtx4090-0".into(),
        cards: 2,
    }];
    j.placement = Some("{\"why\":1}".into());
    j.lease_expires_at = Some(T0.plus_secs(30));
    let a = AttemptRecord {
        job: j.id,
        attempt: 1,
        center: CenterId::new("c1"),
        sku: "RTX4090".into(),
        cards: 2,
        placed_at: T0,
        started_at: None,
        ended_at: None,
        outcome: None,
        exit_code: None,
        card_seconds: 0,
        log_chunks: None,
    };
    let ev = JobEvent {
        at: T0,
        attempt: 1,
        state: JobState::Placed,
        message: "placed at c1".into(),
    };
    s.update_job(&j, JobState::Queued, 0, Some(&ev), Some(&a), &[])
        .await
        .unwrap();
    assert_eq!(s.job(j.id).await.unwrap().unwrap(), j);

    // A second writer with stale expectations loses.
    let err = s
        .update_job(&j, JobState::Queued, 0, None, None, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");

    let mut done = j.clone();
    done.state = JobState::Succeeded;
    done.exit_code = Some(0);
    done.card_seconds = 20;
    let mut a2 = a.clone();
    a2.outcome = Some("succeeded".into());
    a2.card_seconds = 20;
    a2.log_chunks = Some(3);
    s.update_job(&done, JobState::Placed, 1, None, Some(&a2), &[])
        .await
        .unwrap();
    assert_eq!(s.attempts(j.id).await.unwrap(), vec![a2]);
    let hist: Vec<JobState> = s
        .job_events(j.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.state)
        .collect();
    assert_eq!(
        hist,
        vec![JobState::Submitted, JobState::Queued, JobState::Placed]
    );
    assert!(s.unfinished_jobs().await.unwrap().is_empty());
}

pub async fn listing_filters_and_pages(s: &dyn Store) {
    tenant(s, "a").await;
    tenant(s, "b").await;
    for i in 0..5 {
        job(s, if i % 2 == 0 { "a" } else { "b" }, &format!("j{i}")).await;
    }
    let all = s
        .jobs(&JobFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let a = s
        .jobs(&JobFilter {
            tenant: Some(TenantId::new("a")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.len(), 3);
    let page1 = s
        .jobs(&JobFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let page2 = s
        .jobs(&JobFilter {
            limit: 2,
            after: Some(page1[1].id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page2[0].id, all[2].id);
    let running = s
        .jobs(&JobFilter {
            state: Some(JobState::Running),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(running.is_empty());
    let counts = s.count_jobs_by_state().await.unwrap();
    assert_eq!(counts, vec![(JobState::Queued, 5)]);
    assert_eq!(s.unfinished_jobs().await.unwrap().len(), 5);
    assert!(s.job(JobId(999)).await.unwrap().is_none());
}

pub async fn logs_are_idempotent(s: &dyn Store) {
    tenant(s, "a").await;
    let j = job(s, "a", "l").await;
    let rows: Vec<LogRow> = (0..3)
        .map(|i| LogRow {
            seq: i,
            stream: "stdout".into(),
            data: format!("line {i}\n"),
        })
        .collect();
    s.append_logs(j.id, 1, &rows).await.unwrap();
    s.append_logs(j.id, 1, &rows[1..]).await.unwrap();
    let back = s.logs(j.id, 1, 0, 100).await.unwrap();
    assert_eq!(back, rows);
    assert_eq!(s.logs(j.id, 1, 2, 100).await.unwrap(), rows[2..].to_vec());
    assert!(s.logs(j.id, 2, 0, 100).await.unwrap().is_empty());
}

pub async fn money_records_append_in_order_and_commit_with_the_job(s: &dyn Store) {
    assert!(s.money_records().await.unwrap().is_empty());
    s.append_money(&[]).await.unwrap();
    let first: Vec<String> = (0..3).map(|i| format!("{{\"n\":{i}}}")).collect();
    s.append_money(&first).await.unwrap();
    assert_eq!(s.money_records().await.unwrap(), first);

    // A job's end and its bill line commit together...
    tenant(s, "acme").await;
    let j = job(s, "acme", "billed").await;
    let mut done = j.clone();
    done.state = JobState::Cancelled;
    done.ended_at = Some(T0);
    let line = vec!["{\"line\":1}".to_string(), "{\"tx\":1}".to_string()];
    s.update_job(&done, JobState::Queued, 0, None, None, &line)
        .await
        .unwrap();
    let mut all = first.clone();
    all.extend(line.iter().cloned());
    assert_eq!(s.money_records().await.unwrap(), all);

    // ...and a job write that loses its compare-and-set appends no money either.
    let err = s
        .update_job(
            &done,
            JobState::Queued,
            0,
            None,
            None,
            &["{\"lost\":1}".into()],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(s.money_records().await.unwrap(), all);
}

pub async fn tenant_policies_are_kept(s: &dyn Store) {
    tenant(s, "a").await;
    tenant(s, "b").await;
    assert!(s.tenant_policies().await.unwrap().is_empty());
    assert!(
        s.set_tenant_policy(&TenantId::new("b"), "{\"weight\":2}")
            .await
            .unwrap()
    );
    assert!(
        s.set_tenant_policy(&TenantId::new("b"), "{\"weight\":3}")
            .await
            .unwrap()
    );
    assert!(
        !s.set_tenant_policy(&TenantId::new("nobody"), "{}")
            .await
            .unwrap()
    );
    assert_eq!(
        s.tenant_policies().await.unwrap(),
        vec![(TenantId::new("b"), "{\"weight\":3}".to_string())]
    );
}

/// Instantiates every conformance check as a `#[tokio::test]` for one backend.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            tenants_and_tokens, centers_upsert, job_lifecycle_with_compare_and_set,
            listing_filters_and_pages, logs_are_idempotent,
            money_records_append_in_order_and_commit_with_the_job, tenant_policies_are_kept);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make;
                $crate::conformance::$name(&store).await;
            }
        )*
    };
}

#[cfg(test)]
mod sqlite_conformance {
    crate::store_conformance_tests!(crate::SqliteStore::in_memory().await.unwrap());
}

#[cfg(test)]
mod sqlite_file {
    use super::*;

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let id = {
            let s = SqliteStore::open(&path).await.unwrap();
            tenant(&s, "a").await;
            job(&s, "a", "persisted").await.id
        };
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(s.job(id).await.unwrap().unwrap().spec.name, "persisted");
    }
}

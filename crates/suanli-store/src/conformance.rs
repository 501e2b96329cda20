//! One test suite for every [`Store`] implementation.
//!
//! Each check is a plain async function over `&dyn Store` on an empty store;
//! [`store_conformance_tests!`](crate::store_conformance_tests) instantiates all of them as
//! `#[tokio::test]`s for a backend, given an expression that yields a fresh store (or `None`
//! when the backend is not available, which skips the test). Instantiated below for SQLite
//! (always) and PostgreSQL (when `SUANLI_TEST_POSTGRES_URL` is set).

use suanli_types::record::{PlacementCandidate, PlacementDecision, PlacementRejection};
use suanli_types::{
    CardQuota, CenterId, JobId, JobSpec, JobState, Money, Role, SharePolicy, TenantCategory,
    TenantId, Timestamp,
};

use crate::*;

mod models;
mod statistics;
pub use models::*;
pub use statistics::*;

const T0: Timestamp = Timestamp(1_795_730_906_000);

async fn tenant(s: &dyn Store, id: &str) {
    s.create_tenant(
        &TenantRecord {
            id: TenantId::new(id),
            name: format!("Tenant {id}"),
            category: TenantCategory::Sme,
            city: None,
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
        submitted_by_id: Some(7),
        spec: JobSpec::new(name, "echo hi"),
        at: T0,
        idempotency_key: None,
        held: false,
        array_task: None,
    })
    .await
    .unwrap()
}

/// A placement decision with every part filled in, for the typed round trip.
fn decision() -> PlacementDecision {
    let candidate = |center: &str, score_milli| PlacementCandidate {
        center: CenterId::new(center),
        sku: "RTX4090".into(),
        price_per_card_hour: Money::from_yuan(3),
        cost_per_hour: Money::from_yuan(6),
        cost_total: Money::from_yuan(12),
        free_cards: 8,
        expected_start: T0.plus_secs(60),
        score_milli,
        expected_run_secs: None,
    };
    PlacementDecision {
        attempt: 1,
        at: T0,
        center: CenterId::new("c1"),
        sku: "RTX4090".into(),
        nodes: vec![NodeShare {
            node: "rtx4090-0".into(),
            cards: 2,
        }],
        chosen: candidate("c1", -250),
        others: vec![candidate("c2", 1_500)],
        rejected: vec![PlacementRejection {
            center: CenterId::new("c3"),
            reason: "needs 2 cards per node, largest node has 1".into(),
        }],
        rule: "fifo: first that fits".into(),
    }
}

pub async fn tenants_and_tokens(s: &dyn Store) {
    tenant(s, "acme").await;
    let again = TenantRecord {
        id: TenantId::new("acme"),
        name: "other".into(),
        category: TenantCategory::Research,
        city: None,
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
    assert_eq!(
        s.tenant(&TenantId::new("acme"))
            .await
            .unwrap()
            .unwrap()
            .city,
        None
    );
    let placed = TenantRecord {
        id: TenantId::new("sz-lab"),
        name: "Lab".into(),
        category: TenantCategory::Research,
        city: Some("Shenzhen".into()),
    };
    assert!(s.create_tenant(&placed, T0).await.unwrap());
    assert_eq!(s.tenant(&placed.id).await.unwrap(), Some(placed.clone()));
    assert_eq!(s.tenants().await.unwrap(), {
        let mut all = vec![
            s.tenant(&TenantId::new("acme")).await.unwrap().unwrap(),
            placed,
        ];
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    });

    assert!(
        !s.has_live_token_with_role(Role::Operator, T0)
            .await
            .unwrap()
    );
    let t = NewToken {
        name: "alice".into(),
        role: Role::User,
        tenant: Some(TenantId::new("acme")),
        center: None,
        expires_at: Some(T0.plus_millis(1000)),
    };
    let rec = s.insert_token("h1", &t, T0).await.unwrap();
    assert_eq!(rec.principal.name, "alice");
    assert_eq!(rec.principal.role, Role::User);
    assert_eq!(rec.expires_at, Some(T0.plus_millis(1000)));
    assert_eq!((rec.created_at, rec.revoked_at), (T0, None));
    assert_eq!(s.token("h1").await.unwrap(), Some(rec.clone()));
    assert_eq!(s.token("h2").await.unwrap(), None);
    assert!(s.has_live_token_with_role(Role::User, T0).await.unwrap());
    assert!(
        !s.has_live_token_with_role(Role::User, T0.plus_millis(1000))
            .await
            .unwrap(),
        "an expired token is not live"
    );
    assert_eq!(
        rec.invalid_at(T0.plus_millis(1000)),
        Some(TokenInvalid::Expired)
    );
}

/// Token names are unique in their scope among tokens not revoked; revocation and rotation
/// bump the generation, and a rotation's grace keeps the old token valid until it ends.
pub async fn tokens_revoke_rotate_and_unique_names(s: &dyn Store) {
    tenant(s, "acme").await;
    tenant(s, "beta").await;
    let user = |tenant: &str, name: &str| NewToken {
        name: name.into(),
        role: Role::User,
        tenant: Some(TenantId::new(tenant)),
        center: None,
        expires_at: None,
    };
    let a = s
        .insert_token("h1", &user("acme", "alice"), T0)
        .await
        .unwrap();
    let dup = s.insert_token("h2", &user("acme", "alice"), T0).await;
    assert!(matches!(dup, Err(StoreError::Exists(_))), "{dup:?}");
    // Another tenant's scope may use the name.
    let b = s
        .insert_token("h3", &user("beta", "alice"), T0)
        .await
        .unwrap();
    assert_ne!(a.principal.id, b.principal.id);
    let g0 = s.token_generation().await.unwrap();
    let at = T0.plus_millis(5);
    let revoked = s.revoke_token(a.principal.id, at).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.invalid_at(at), Some(TokenInvalid::Revoked));
    assert!(s.token_generation().await.unwrap() > g0);
    // Revoking again keeps the first time; an unknown id is None.
    let again = s
        .revoke_token(a.principal.id, at.plus_millis(9))
        .await
        .unwrap();
    assert_eq!(again.unwrap().revoked_at, Some(at));
    assert!(s.revoke_token(9_999, at).await.unwrap().is_none());
    // The name is free again once revoked.
    let a2 = s
        .insert_token("h4", &user("acme", "alice"), at)
        .await
        .unwrap();
    // A rotation with a grace: the old token stays valid until the grace ends.
    let g1 = s.token_generation().await.unwrap();
    let until = at.plus_millis(60_000);
    let a3 = s
        .rotate_token("h5", &user("acme", "alice"), at, until, true)
        .await
        .unwrap();
    assert!(s.token_generation().await.unwrap() > g1);
    let old = s.token_by_id(a2.principal.id).await.unwrap().unwrap();
    assert_eq!(old.revoked_at, Some(until));
    assert_eq!(old.invalid_at(at), None);
    assert_eq!(old.invalid_at(until), Some(TokenInvalid::Revoked));
    assert_eq!(a3.revoked_at, None);
    let listed = s
        .tokens(&TokenFilter {
            tenant: Some(TenantId::new("acme")),
            center: None,
        })
        .await
        .unwrap();
    let ids: Vec<i64> = listed.iter().map(|t| t.principal.id).collect();
    assert_eq!(ids, [a.principal.id, a2.principal.id, a3.principal.id]);
    assert_eq!(s.tokens(&TokenFilter::default()).await.unwrap().len(), 4);
    s.touch_token(a3.principal.id, until).await.unwrap();
    let used = s.token_by_id(a3.principal.id).await.unwrap().unwrap();
    assert_eq!(used.last_used_at, Some(until));
}

pub async fn centers_upsert(s: &dyn Store) {
    let mut c = suanli_types::center::gba_topology(100).remove(0);
    assert!(s.upsert_center(&c, T0).await.unwrap());
    c.name = "renamed".into();
    assert!(!s.upsert_center(&c, T0).await.unwrap());
    let all = s.centers().await.unwrap();
    assert_eq!(all, vec![c]);
}

pub async fn centers_drain_flag(s: &dyn Store) {
    let topo = suanli_types::center::gba_topology(100);
    for c in &topo[..3] {
        s.upsert_center(c, T0).await.unwrap();
    }
    assert!(s.drained_centers().await.unwrap().is_empty());
    assert!(s.set_center_drained(&topo[1].id, true).await.unwrap());
    assert!(s.set_center_drained(&topo[2].id, true).await.unwrap());
    assert!(s.set_center_drained(&topo[2].id, false).await.unwrap());
    assert!(
        !s.set_center_drained(&CenterId::new("nowhere"), true)
            .await
            .unwrap()
    );
    assert_eq!(s.drained_centers().await.unwrap(), vec![topo[1].id.clone()]);
    // Re-registering a center keeps its drain flag.
    s.upsert_center(&topo[1], T0).await.unwrap();
    assert_eq!(s.drained_centers().await.unwrap(), vec![topo[1].id.clone()]);
}

pub async fn idempotency_keys_are_unique_per_tenant(s: &dyn Store) {
    tenant(s, "acme").await;
    tenant(s, "beta").await;
    let new = |tenant: &str, key: Option<&str>| NewJob {
        submitted_by_id: None,
        tenant: TenantId::new(tenant),
        submitted_by: "alice".into(),
        spec: JobSpec::new("k", "true"),
        at: T0,
        idempotency_key: key.map(str::to_owned),
        held: false,
        array_task: None,
    };
    let a = s.insert_job(new("acme", Some("k1"))).await.unwrap();
    let acme = TenantId::new("acme");
    assert_eq!(
        s.job_by_idempotency_key(&acme, "k1").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.job_by_idempotency_key(&acme, "k2").await.unwrap(), None);
    assert_eq!(
        s.job_by_idempotency_key(&TenantId::new("beta"), "k1")
            .await
            .unwrap(),
        None
    );
    // The same key for another tenant, and jobs without a key, are fine; the same key twice
    // for one tenant is refused and adds nothing.
    s.insert_job(new("beta", Some("k1"))).await.unwrap();
    s.insert_job(new("acme", None)).await.unwrap();
    s.insert_job(new("acme", None)).await.unwrap();
    assert!(s.insert_job(new("acme", Some("k1"))).await.is_err());
    let all = s
        .jobs(&JobFilter {
            limit: 100,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(s.job_events(a.id).await.unwrap().len(), 2);
}

pub async fn arrays_and_holds_are_kept(s: &dyn Store) {
    tenant(s, "acme").await;
    let before = job(s, "acme", "before").await;
    assert!(!before.held && before.array.is_none());
    let task = |t: u32, held: bool| NewJob {
        tenant: TenantId::new("acme"),
        submitted_by: "alice".into(),
        submitted_by_id: Some(7),
        spec: JobSpec::new("sweep", "echo $SLURM_ARRAY_TASK_ID"),
        at: T0,
        idempotency_key: None,
        held,
        array_task: Some(t),
    };
    let recs = s
        .insert_array(vec![task(0, false), task(4, true), task(8, false)])
        .await
        .unwrap();
    let first = recs[0].id;
    let got: Vec<(u32, bool)> = recs
        .iter()
        .map(|r| {
            let a = r.array.expect("a task of the array");
            assert_eq!(a.job, first);
            (a.task, r.held)
        })
        .collect();
    assert_eq!(got, vec![(0, false), (4, true), (8, false)]);
    for r in &recs {
        assert_eq!(
            s.job(r.id).await.unwrap().as_ref(),
            Some(r),
            "stored as returned"
        );
    }
    let listed = s
        .jobs(&JobFilter {
            array: Some(first),
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed, recs,
        "the array is listed as a unit, and nothing else"
    );
    // A single task starts an array of its own.
    let alone = s.insert_job(task(3, false)).await.unwrap();
    assert_eq!(alone.array.map(|a| (a.job, a.task)), Some((alone.id, 3)));
    assert_eq!(s.job(alone.id).await.unwrap(), Some(alone));
    // The hold is written with the job.
    let mut held = recs[1].clone();
    held.held = false;
    held.updated_at = T0.plus_secs(1);
    s.update_job(&held, JobState::Queued, 0, None, None, &[])
        .await
        .unwrap();
    assert!(!s.job(held.id).await.unwrap().unwrap().held);
    let events = s.job_events(recs[1].id).await.unwrap();
    assert!(events[1].message.contains("held"), "{:?}", events[1]);
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
    j.placement = Some(decision());
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
    a2.outcome = Some(AttemptOutcome::Succeeded);
    a2.card_seconds = 20;
    a2.log_chunks = Some(3);
    a2.ended_at = Some(Timestamp(T0.0 + 20_000));
    s.update_job(&done, JobState::Placed, 1, None, Some(&a2), &[])
        .await
        .unwrap();
    assert_eq!(s.attempts(j.id).await.unwrap(), vec![a2.clone()]);
    let ended = s.ended_attempts(T0, None, 10).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!((&ended[0].attempt, &ended[0].tenant), (&a2, &j.tenant));
    assert_eq!(ended[0].priority, j.spec.priority);
    let later = Timestamp(T0.0 + 20_001);
    assert!(s.ended_attempts(later, None, 10).await.unwrap().is_empty());
    let other = if j.spec.priority == suanli_types::PriorityClass::PublicService {
        suanli_types::PriorityClass::Standard
    } else {
        suanli_types::PriorityClass::PublicService
    };
    assert!(
        s.ended_attempts(T0, Some(other), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.ended_attempts(T0, Some(j.spec.priority), 10)
            .await
            .unwrap()
            .len(),
        1
    );
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
            states: vec![JobState::Running],
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(running.is_empty());
    let either = s
        .jobs(&JobFilter {
            states: vec![JobState::Running, JobState::Queued],
            tenant: Some(TenantId::new("b")),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(either.len(), 2);
    // Newest first, a page at a time; and by submitter.
    let newest = |after, limit| JobFilter {
        newest_first: true,
        after,
        limit,
        ..Default::default()
    };
    let page1 = s.jobs(&newest(None, 3)).await.unwrap();
    let ids: Vec<JobId> = page1.iter().map(|j| j.id).collect();
    assert_eq!(ids, [all[4].id, all[3].id, all[2].id]);
    let page2 = s.jobs(&newest(Some(all[2].id), 3)).await.unwrap();
    let ids: Vec<JobId> = page2.iter().map(|j| j.id).collect();
    assert_eq!(ids, [all[1].id, all[0].id]);
    let by = |who: &str| JobFilter {
        submitted_by: Some(who.to_string()),
        limit: 100,
        ..Default::default()
    };
    let who = all[0].submitted_by.clone();
    let mine = s.jobs(&by(&who)).await.unwrap();
    assert_eq!(
        mine.len(),
        all.iter().filter(|j| j.submitted_by == who).count()
    );
    assert!(s.jobs(&by("nobody-at-all")).await.unwrap().is_empty());
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
            stream: LogStream::Stdout,
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

pub async fn input_log_appends_in_order_and_pages(s: &dyn Store) {
    assert!(s.inputs(0, 10).await.unwrap().is_empty());
    let rows: Vec<InputRow> = (0..5)
        .map(|i| InputRow {
            at: T0.plus_millis(i),
            input: format!("{{\"input\":\"tick\",\"n\":{i}}}"),
        })
        .collect();
    s.append_inputs(&rows[..3]).await.unwrap();
    s.append_inputs(&[]).await.unwrap();
    s.append_inputs(&rows[3..]).await.unwrap();
    let all = s.inputs(0, 100).await.unwrap();
    assert_eq!(all.len(), 5);
    for (i, (got, want)) in all.iter().zip(&rows).enumerate() {
        assert_eq!((got.at, &got.input), (want.at, &want.input), "entry {i}");
    }
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq grows: {all:?}"
    );
    let page = s.inputs(all[1].seq, 2).await.unwrap();
    assert_eq!(page, all[2..4].to_vec());
    assert!(s.inputs(all[4].seq, 10).await.unwrap().is_empty());
}

pub async fn tenant_policies_are_kept(s: &dyn Store) {
    tenant(s, "a").await;
    tenant(s, "b").await;
    assert!(s.tenant_policies().await.unwrap().is_empty());
    let mut policy = SharePolicy {
        weight: 2,
        ..SharePolicy::default()
    };
    let b = TenantId::new("b");
    assert!(s.set_tenant_policy(&b, &policy).await.unwrap());
    policy.weight = 3;
    let quota = CardQuota {
        nominal: 8,
        borrow_limit: 4,
    };
    policy.quotas.insert("huawei".into(), quota);
    assert!(s.set_tenant_policy(&b, &policy).await.unwrap());
    let nobody = TenantId::new("nobody");
    assert!(!s.set_tenant_policy(&nobody, &policy).await.unwrap());
    assert_eq!(s.tenant_policies().await.unwrap(), vec![(b, policy)]);
}

pub async fn log_data_is_kept_exactly(s: &dyn Store) {
    tenant(s, "a").await;
    let j = job(s, "a", "bytes").await;
    // Process output is arbitrary text: NUL characters, multi-byte characters, CR, no newline.
    let rows = vec![
        LogRow {
            seq: 0,
            stream: LogStream::Stdout,
            data: "a\0b\u{0}\n".into(),
        },
        LogRow {
            seq: 1,
            stream: LogStream::Stderr,
            data: "算力 ✓ \u{1F680}\r".into(),
        },
        LogRow {
            seq: 2,
            stream: LogStream::Stdout,
            data: String::new(),
        },
    ];
    s.append_logs(j.id, 0, &rows).await.unwrap();
    s.append_logs(j.id, 0, &[]).await.unwrap();
    assert_eq!(s.logs(j.id, 0, 0, 10).await.unwrap(), rows);
    assert_eq!(s.logs(j.id, 0, 0, 2).await.unwrap(), rows[..2].to_vec());
}

pub async fn job_ids_are_allocated_in_order(s: &dyn Store) {
    tenant(s, "a").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(job(s, "a", &format!("n{i}")).await.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for id in &ids {
        assert_eq!(s.job_events(*id).await.unwrap().len(), 2);
    }
}

pub async fn concurrent_compare_and_set_has_one_winner(s: &dyn Store) {
    tenant(s, "a").await;
    let j = job(s, "a", "raced").await;
    let writers: Vec<JobRecord> = (0..6)
        .map(|i| {
            let mut w = j.clone();
            w.state = JobState::Placed;
            w.attempt = 1;
            w.center = Some(CenterId::new(format!("c{i}")));
            w
        })
        .collect();
    let events: Vec<JobEvent> = writers
        .iter()
        .map(|w| JobEvent {
            at: T0,
            attempt: 1,
            state: JobState::Placed,
            message: format!("placed at {}", w.center.as_ref().unwrap().as_str()),
        })
        .collect();
    let money: Vec<Vec<String>> = (0..writers.len())
        .map(|i| vec![format!("{{\"writer\":{i}}}")])
        .collect();
    let results = join_all(
        writers
            .iter()
            .zip(&events)
            .zip(&money)
            .map(|((w, e), m)| s.update_job(w, JobState::Queued, 0, Some(e), None, m))
            .collect(),
    )
    .await;
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        }
    }
    let w = winners[0];
    assert_eq!(s.job(j.id).await.unwrap().unwrap(), writers[w]);
    let hist = s.job_events(j.id).await.unwrap();
    assert_eq!(hist.len(), 3);
    assert_eq!(hist[2], events[w]);
    assert_eq!(s.money_records().await.unwrap(), money[w]);
}

/// Polls every future to completion in one task; results in the given order. (Each future holds
/// its own connection while it waits, so a pooled backend runs them concurrently.)
async fn join_all<'a, T>(futs: Vec<StoreFuture<'a, T>>) -> Vec<StoreResult<T>> {
    let mut futs: Vec<Option<StoreFuture<'a, T>>> = futs.into_iter().map(Some).collect();
    let mut out: Vec<Option<StoreResult<T>>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if let Some(fut) = f {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => {
                        *o = Some(r);
                        *f = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

/// Audit entries as the hub's log makes them: `n` entries, every third denied.
fn audit_records(n: u64) -> Vec<suanli_audit::Record> {
    use suanli_audit::{Draft, Hash, Log, Outcome};
    let mut log = Log::new();
    (0..n)
        .map(|i| {
            let r = log.prepare(Draft {
                time: T0.0 + i as i64 * 1000,
                principal: format!("{}", i % 2 + 1),
                role: Some(if i % 2 == 0 { "operator" } else { "user" }.into()),
                tenant: (i % 2 == 1).then(|| "acme".to_string()),
                source: "127.0.0.1:40000".into(),
                request_id: format!("req-{i}"),
                action: if i % 4 == 0 {
                    "POST /v1/jobs"
                } else {
                    "PUT /v1/prices"
                }
                .into(),
                target: format!("/v1/x/{i}?q=1"),
                outcome: if i % 3 == 2 {
                    Outcome::Denied {
                        status: 403,
                        why: "forbidden".into(),
                    }
                } else {
                    Outcome::Allowed { status: 200 }
                },
                request_digest: Hash::of(format!("body {i}").as_bytes()),
            });
            log.apply(&r).unwrap();
            r
        })
        .collect()
}

pub async fn audit_log_appends_filters_and_keeps_checkpoints(s: &dyn Store) {
    use suanli_audit::{Log, Signer};
    assert!(
        s.audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    let records = audit_records(12);
    s.append_audit(&records[..5]).await.unwrap();
    s.append_audit(&records[5..]).await.unwrap();
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        s.audit_entries(&all).await.unwrap(),
        records,
        "every field round-trips"
    );
    let leaves: Vec<_> = records.iter().map(|r| r.leaf).collect();
    assert_eq!(s.audit_leaves().await.unwrap(), leaves);

    // A taken sequence number is refused, and nothing of its batch lands.
    let err = s.append_audit(&records[11..]).await.unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    assert_eq!(s.audit_leaves().await.unwrap().len(), 12);

    let seqs = |rs: Vec<suanli_audit::Record>| rs.iter().map(|r| r.entry.seq).collect::<Vec<_>>();
    let f = |f: AuditFilter| AuditFilter { limit: 100, ..f };
    let by = |f| async move { seqs(s.audit_entries(&f).await.unwrap()) };
    assert_eq!(
        by(f(AuditFilter {
            principal: Some("2".into()),
            ..Default::default()
        }))
        .await,
        vec![1, 3, 5, 7, 9, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        }))
        .await,
        vec![1, 3, 5, 7, 9, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            action: Some("POST /v1/jobs".into()),
            ..Default::default()
        }))
        .await,
        vec![0, 4, 8]
    );
    assert_eq!(
        by(f(AuditFilter {
            since: Some(T0.plus_secs(3)),
            until: Some(T0.plus_secs(6)),
            ..Default::default()
        }))
        .await,
        vec![3, 4, 5]
    );
    assert_eq!(
        by(f(AuditFilter {
            denied: true,
            ..Default::default()
        }))
        .await,
        vec![2, 5, 8, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            request_id: Some("req-7".into()),
            ..Default::default()
        }))
        .await,
        vec![7]
    );
    assert_eq!(
        by(f(AuditFilter {
            principal: Some("1".into()),
            action: Some("PUT /v1/prices".into()),
            ..Default::default()
        }))
        .await,
        vec![2, 6, 10]
    );
    assert_eq!(
        by(AuditFilter {
            after: Some(3),
            limit: 2,
            ..Default::default()
        })
        .await,
        vec![4, 5]
    );

    // Checkpoints and keys.
    let signer = Signer::from_secret([5; 32]);
    let log = Log::replay(&records, None).unwrap();
    let c1 = signer.checkpoint(5, suanli_audit::merkle::root(&leaves[..5]), T0.0);
    let c2 = log.checkpoint(&signer, T0.0 + 60_000);
    s.append_checkpoint(&c1).await.unwrap();
    s.append_checkpoint(&c2).await.unwrap();
    assert_eq!(s.audit_checkpoints().await.unwrap(), vec![c1, c2]);
    s.add_audit_key(&signer.public(), T0).await.unwrap();
    s.add_audit_key(&signer.public(), T0.plus_secs(1))
        .await
        .unwrap();
    let other = Signer::from_secret([6; 32]).public();
    s.add_audit_key(&other, T0.plus_secs(2)).await.unwrap();
    assert_eq!(s.audit_keys().await.unwrap(), vec![signer.public(), other]);
    let stored = s.audit_entries(&all).await.unwrap();
    let checkpoints = s.audit_checkpoints().await.unwrap();
    let report = suanli_audit::verify(
        &stored,
        &checkpoints,
        &[],
        &suanli_audit::Trust {
            keys: vec![signer.public()],
        },
    );
    assert!(report.ok(), "{:?}", report.problems);
}

fn risk_flag(id: &str, count: u64) -> suanli_audit::risk::Flag {
    use suanli_audit::risk::{Evidence, Flag, Severity};
    Flag {
        id: id.into(),
        rule: "failed_auth".into(),
        severity: Severity::High,
        subject: "10.0.0.9".into(),
        detail: format!("{count} failed authentications"),
        evidence: (0..count).map(|seq| Evidence::Audit { seq }).collect(),
        count,
        first_seen: T0.0,
        last_seen: T0.0 + count as i64,
    }
}

/// Flags are inserted once and only grow; their states are a history in which each state is
/// entered once; an unknown flag is `false`.
pub async fn risk_flags_grow_and_keep_their_history(s: &dyn Store) {
    use suanli_audit::risk::FlagState;
    assert!(s.risk_flags().await.unwrap().is_empty());
    let new = s
        .record_risk_flags(&[risk_flag("a", 21), risk_flag("b", 30)], T0)
        .await
        .unwrap();
    assert_eq!(new, ["a", "b"]);
    let later = Timestamp(T0.0 + 60_000);
    // `a` grew, `b` is seen with fewer items (an older evaluation): `b` keeps its 30.
    let new = s
        .record_risk_flags(&[risk_flag("a", 25), risk_flag("b", 22)], later)
        .await
        .unwrap();
    assert!(new.is_empty());
    let flags = s.risk_flags().await.unwrap();
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[0].flag, risk_flag("a", 25));
    assert_eq!(flags[0].raised_at, T0, "raised when first recorded");
    assert_eq!(flags[1].flag, risk_flag("b", 30));
    assert_eq!(flags[0].state(), FlagState::Open);
    let change = |state, why: &str| RiskFlagChange {
        state,
        by: "token:7".into(),
        why: why.into(),
        at: later,
    };
    assert!(
        s.change_risk_flag("a", &change(FlagState::Acknowledged, "looking"))
            .await
            .unwrap()
    );
    let again = s
        .change_risk_flag("a", &change(FlagState::Acknowledged, "twice"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Exists(_)), "{again}");
    assert!(
        s.change_risk_flag("a", &change(FlagState::Resolved, "a test client"))
            .await
            .unwrap()
    );
    assert!(
        !s.change_risk_flag("zzz", &change(FlagState::Resolved, "none"))
            .await
            .unwrap()
    );
    let flags = s.risk_flags().await.unwrap();
    assert_eq!(flags[0].state(), FlagState::Resolved);
    assert_eq!(
        flags[0].changes,
        vec![
            change(FlagState::Acknowledged, "looking"),
            change(FlagState::Resolved, "a test client")
        ]
    );
    assert!(flags[1].changes.is_empty());
}

/// Runs `sql` on a store's own tables, as someone with the database in hand would.
#[cfg(test)]
async fn audit_tables_refuse_changes<F, Fut>(s: &dyn Store, raw: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    s.append_audit(&audit_records(3)).await.unwrap();
    let signer = suanli_audit::Signer::from_secret([5; 32]);
    s.append_checkpoint(&signer.checkpoint(0, suanli_audit::merkle::empty_root(), T0.0))
        .await
        .unwrap();
    s.add_audit_key(&signer.public(), T0).await.unwrap();
    s.record_risk_flags(&[risk_flag("f", 21)], T0)
        .await
        .unwrap();
    let change = RiskFlagChange {
        state: suanli_audit::risk::FlagState::Acknowledged,
        by: "token:1".into(),
        why: "seen".into(),
        at: T0,
    };
    s.change_risk_flag("f", &change).await.unwrap();
    for sql in [
        "UPDATE audit_entries SET tenant = 'other' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 2",
        "DELETE FROM audit_entries",
        "UPDATE audit_checkpoints SET size = 3",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_keys SET public_key = 'x'",
        "DELETE FROM audit_keys",
        "UPDATE risk_flag_changes SET state = 'open'",
        "DELETE FROM risk_flag_changes",
        "DELETE FROM risk_flags",
    ] {
        let err = raw(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.audit_leaves().await.unwrap().len(), 3);
    assert_eq!(s.audit_checkpoints().await.unwrap().len(), 1);
    assert_eq!(s.audit_keys().await.unwrap().len(), 1);
}

/// Instantiates every conformance check as a `#[tokio::test]` for one backend.
///
/// `$make` is evaluated inside each (async) test and must yield an `Option` of a fresh, empty
/// store; `None` skips that test (the expression should say why, e.g. on stdout). The optional
/// `teardown` is an async function (or closure returning a future) that takes the store by
/// value after the check; it runs whether the check passed or panicked, and the test then
/// fails with the check's panic.
///
/// ```ignore
/// suanli_store::store_conformance_tests!(Some(MyStore::new().await.unwrap()));
/// suanli_store::store_conformance_tests!(fresh_store().await, teardown = drop_store);
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!($make, teardown = |_store| async {});
    };
    ($make:expr, teardown = $teardown:expr) => {
        $crate::store_conformance_tests!(@each $make; $teardown;
            tenants_and_tokens, tokens_revoke_rotate_and_unique_names, centers_upsert, centers_drain_flag,
            idempotency_keys_are_unique_per_tenant, job_lifecycle_with_compare_and_set,
            listing_filters_and_pages, logs_are_idempotent,
            money_records_append_in_order_and_commit_with_the_job,
            input_log_appends_in_order_and_pages, tenant_policies_are_kept,
            log_data_is_kept_exactly, job_ids_are_allocated_in_order,
            concurrent_compare_and_set_has_one_winner,
            audit_log_appends_filters_and_keeps_checkpoints,
            risk_flags_grow_and_keep_their_history,
            indicator_facts_append_in_order_and_page, releases_are_stored_once,
            arrays_and_holds_are_kept,
            models_are_published_once_and_certified_step_by_step);
    };
    (@each $make:expr; $teardown:expr; $($name:ident),*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(store) = $make else { return };
                // The check runs in its own task so a failing assertion still reaches teardown.
                let store = ::std::sync::Arc::new(store);
                let shared = ::std::sync::Arc::clone(&store);
                let outcome = ::tokio::spawn(async move {
                    $crate::conformance::$name(&*shared).await;
                })
                .await;
                let store = ::std::sync::Arc::into_inner(store)
                    .expect("the check's task has ended and released the store");
                ($teardown)(store).await;
                if let Err(e) = outcome {
                    ::std::panic::resume_unwind(e.into_panic());
                }
            }
        )*
    };
}

#[cfg(test)]
mod sqlite_conformance {
    crate::store_conformance_tests!(Some(crate::SqliteStore::in_memory().await.unwrap()));
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

    /// A write that reads first (a center's upsert) must wait for, not fail on, a write that
    /// commits in between on another connection (a token's last-use stamp): SQLite refuses to
    /// upgrade a deferred transaction's stale snapshot with SQLITE_BUSY at once.
    #[tokio::test]
    async fn concurrent_writes_on_several_connections_wait_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("hub.db")).await.unwrap();
        tenant(&s, "acme").await;
        let tok = s
            .insert_token(
                "h1",
                &NewToken {
                    name: "alice".into(),
                    role: Role::User,
                    tenant: Some(TenantId::new("acme")),
                    center: None,
                    expires_at: None,
                },
                T0,
            )
            .await
            .unwrap();
        let mut c = suanli_types::center::gba_topology(100).remove(0);
        for round in 0..20 {
            c.name = format!("round {round}");
            let mut futs: Vec<StoreFuture<'_, ()>> = Vec::new();
            for i in 0..4 {
                let c = c.clone();
                let s = &s;
                futs.push(Box::pin(async move {
                    s.upsert_center(&c, Timestamp(T0.0 + i)).await.map(|_| ())
                }));
                futs.push(s.touch_token(tok.principal.id, Timestamp(T0.0 + round * 10 + i)));
            }
            for r in join_all(futs).await {
                r.unwrap();
            }
        }
        assert_eq!(s.centers().await.unwrap()[0].name, "round 19");
    }

    #[tokio::test]
    async fn a_damaged_placement_names_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let s = SqliteStore::open(&path).await.unwrap();
        tenant(&s, "a").await;
        let id = job(&s, "a", "damaged").await.id;
        let url = format!("sqlite://{}", path.display());
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET placement = '{\"attempt\":1}' WHERE id = ?")
            .bind(id.0)
            .execute(&mut conn)
            .await
            .unwrap();
        let err = s.job(id).await.unwrap_err();
        let StoreError::Corrupt { what, detail } = &err else {
            panic!("{err}")
        };
        assert_eq!(*what, "jobs.placement");
        assert!(detail.starts_with(&format!("row {id}: ")), "{detail}");
    }

    #[tokio::test]
    async fn audit_tables_refuse_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let s = SqliteStore::open(&path).await.unwrap();
        let url = format!("sqlite://{}", path.display());
        let raw = |sql: &'static str| {
            let url = url.clone();
            async move {
                let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
                Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected())
            }
        };
        audit_tables_refuse_changes(&s, &raw).await;
        statistics::statistics_tables_refuse_changes(&s, &raw).await;
        models::model_tables_refuse_changes(&s, &raw).await;
    }

    #[tokio::test]
    async fn leadership_is_refused_with_a_reason() {
        let s = SqliteStore::in_memory().await.unwrap();
        assert!(!s.supports_leadership());
        let err = s
            .acquire_lease("h", "http://h", None, std::time::Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
    }
}

/// The same suite against PostgreSQL, each test in a schema of its own (so they run in
/// parallel), when `SUANLI_TEST_POSTGRES_URL` is set (CI sets it; see `.ci/run`).
#[cfg(test)]
mod postgres_conformance {
    use super::*;
    use crate::PostgresStore;

    pub(super) const URL_VAR: &str = "SUANLI_TEST_POSTGRES_URL";

    /// The test database's URL; `None` (and a note on stdout) when the variable is unset or
    /// empty.
    pub(super) fn url() -> Option<String> {
        match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ => {
                println!("skipped: {URL_VAR} not set");
                None
            }
        }
    }

    /// A fresh schema name: `t_<test name>_<random hex>`, within PostgreSQL's 63-byte limit.
    pub(super) fn schema_name() -> String {
        use std::hash::BuildHasher;
        let thread = std::thread::current();
        // libtest names each test's thread after the test ("module::test_name").
        let test = thread
            .name()
            .and_then(|n| n.rsplit("::").next())
            .unwrap_or("test");
        let test: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let random = std::collections::hash_map::RandomState::new()
            .hash_one((std::process::id(), std::time::SystemTime::now()));
        format!("t_{test}_{random:016x}")
    }

    /// A store in a fresh schema, or `None` when no test database is configured. A configured
    /// database that cannot be reached fails the test: CI must not pass by skipping.
    pub(super) async fn fresh() -> Option<PostgresStore> {
        let url = url()?;
        let schema = schema_name();
        match PostgresStore::connect_in_schema(&url, &schema).await {
            Ok(store) => Some(store),
            Err(e) => panic!(
                "{URL_VAR} is set, but the PostgreSQL store could not be opened \
                 (schema {schema}): {e}. Is the server running and the URL right? \
                 Unset {URL_VAR} to skip the PostgreSQL tests."
            ),
        }
    }

    /// Best-effort cleanup: a schema left behind only costs space.
    pub(super) async fn drop_schema(store: PostgresStore) {
        let schema = store.schema().unwrap_or_default().to_owned();
        if let Err(e) = store.drop_schema().await {
            eprintln!("could not drop test schema {schema}: {e}");
        }
    }

    crate::store_conformance_tests!(fresh().await, teardown = drop_schema);

    #[tokio::test]
    async fn survives_reconnect_and_migrates_once() {
        let Some(url) = url() else { return };
        let Some(s) = fresh().await else { return };
        let schema = s.schema().unwrap().to_owned();
        tenant(&s, "a").await;
        let id = job(&s, "a", "persisted").await.id;
        s.close().await;
        // The same schema again: migrations are already applied, the data is there.
        let s = PostgresStore::connect_in_schema(&url, &schema)
            .await
            .unwrap();
        assert_eq!(s.job(id).await.unwrap().unwrap().spec.name, "persisted");
        assert_eq!(job(&s, "a", "next").await.id.0, id.0 + 1);
        drop_schema(s).await;
    }

    /// Two hubs' handles on one schema: one lease holder at a time, renewals keep the epoch, a
    /// takeover after expiry or release bumps it, and the deposed holder's writes are fenced.
    #[tokio::test]
    async fn leadership_lease_and_fencing() {
        use std::time::Duration;
        let Some(url) = url() else { return };
        let Some(a) = fresh().await else { return };
        let b = PostgresStore::connect_in_schema(&url, a.schema().unwrap())
            .await
            .unwrap();
        assert!(a.supports_leadership());
        let ttl = Duration::from_secs(30);
        let free = a.lease().await.unwrap();
        assert!(!free.is_live(), "{free:?}");

        let g = a.acquire_lease("a", "http://a", None, ttl).await.unwrap();
        assert!(g.granted);
        let la = g.lease;
        assert_eq!((la.holder.as_str(), la.url.as_str()), ("a", "http://a"));
        assert!(la.is_live() && la.remaining_ms > 29_000, "{la:?}");
        let e1 = la.epoch;
        // B cannot take a live lease; it learns who holds it.
        let seen = b.acquire_lease("b", "http://b", None, ttl).await.unwrap();
        assert!(!seen.granted);
        assert_eq!((seen.lease.holder.as_str(), seen.lease.epoch), ("a", e1));
        // Renewal keeps the epoch; another holder naming A's epoch gets nothing.
        let renewed = a
            .acquire_lease("a", "http://a", Some(e1), ttl)
            .await
            .unwrap();
        assert!(renewed.granted);
        assert_eq!(renewed.lease.epoch, e1);
        let wrong = b
            .acquire_lease("b", "http://b", Some(e1), ttl)
            .await
            .unwrap();
        assert!(!wrong.granted);
        assert_eq!(wrong.lease.holder, "a");
        // A, having stepped down (holding no epoch), takes its own live lease back at once, in a
        // new term; the old term's writes are fenced from then on.
        let back = a.acquire_lease("a", "http://a", None, ttl).await.unwrap();
        assert!(back.granted);
        assert_eq!(back.lease.epoch, e1 + 1);
        a.set_fence(Some(e1));
        assert!(matches!(
            a.append_money(&["{}".to_string()]).await.unwrap_err(),
            StoreError::Fenced { .. }
        ));
        let e1 = e1 + 1;

        // A writes under its epoch.
        a.set_fence(Some(e1));
        tenant(&a, "acme").await;
        let j = job(&a, "acme", "x").await;

        // A short lease runs out; B takes it with the next epoch.
        a.acquire_lease("a", "http://a", Some(e1), Duration::from_millis(150))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lb = b.acquire_lease("b", "http://b", None, ttl).await.unwrap();
        assert!(lb.granted);
        let lb = lb.lease;
        assert_eq!(lb.holder, "b");
        assert_eq!(lb.epoch, e1 + 1);
        b.set_fence(Some(lb.epoch));

        // A's writes are refused now, and nothing of them lands.
        let err = a
            .insert_job(NewJob {
                tenant: TenantId::new("acme"),
                submitted_by: "alice".into(),
                submitted_by_id: None,
                spec: JobSpec::new("late", "true"),
                at: T0,
                idempotency_key: None,
                held: false,
                array_task: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Fenced { held, current } if held == e1 && current == e1 + 1),
            "{err}"
        );
        let mut moved = j.clone();
        moved.state = JobState::Cancelled;
        let err = a
            .update_job(&moved, JobState::Queued, 0, None, None, &[])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
        assert!(matches!(
            a.append_money(&["{}".to_string()]).await.unwrap_err(),
            StoreError::Fenced { .. }
        ));
        assert!(matches!(
            a.set_center_drained(&CenterId::new("c"), true)
                .await
                .unwrap_err(),
            StoreError::Fenced { .. }
        ));
        let row = InputRow {
            at: T0,
            input: "{}".into(),
        };
        assert!(matches!(
            a.append_inputs(std::slice::from_ref(&row))
                .await
                .unwrap_err(),
            StoreError::Fenced { .. }
        ));
        assert!(b.inputs(0, 10).await.unwrap().is_empty());
        assert!(b.money_records().await.unwrap().is_empty());
        assert_eq!(b.unfinished_jobs().await.unwrap(), vec![j.clone()]);
        // B writes; A's renewal of its old term fails and shows B.
        b.update_job(&moved, JobState::Queued, 0, None, None, &[])
            .await
            .unwrap();
        let again = a
            .acquire_lease("a", "http://a", Some(e1), ttl)
            .await
            .unwrap();
        assert!(!again.granted);
        assert_eq!(
            (again.lease.holder.as_str(), again.lease.epoch),
            ("b", e1 + 1)
        );
        // A fence that refuses everything (a hub between terms).
        b.set_fence(Some(crate::FENCE_ALL));
        assert!(matches!(
            b.append_money(&["{}".to_string()]).await.unwrap_err(),
            StoreError::Fenced { .. }
        ));
        b.set_fence(Some(lb.epoch));

        // A graceful release lets A back in at once, with a new epoch.
        b.release_lease("b", lb.epoch).await.unwrap();
        let la2 = a.acquire_lease("a", "http://a", None, ttl).await.unwrap();
        assert!(la2.granted);
        assert_eq!((la2.lease.holder.as_str(), la2.lease.epoch), ("a", e1 + 2));
        b.close().await;
        drop_schema(a).await;
    }

    #[tokio::test]
    async fn audit_tables_refuse_update_delete_and_truncate() {
        let Some(url) = url() else { return };
        let Some(s) = fresh().await else { return };
        let schema = s.schema().unwrap().to_owned();
        let raw = |sql: &'static str| {
            let (url, schema) = (url.clone(), schema.clone());
            async move {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET search_path TO \"{schema}\""
                )))
                .execute(&mut conn)
                .await?;
                Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected())
            }
        };
        audit_tables_refuse_changes(&s, &raw).await;
        statistics::statistics_tables_refuse_changes(&s, &raw).await;
        models::model_tables_refuse_changes(&s, &raw).await;
        for sql in [
            "TRUNCATE models CASCADE",
            "TRUNCATE certifications CASCADE",
            "TRUNCATE certification_steps",
            "TRUNCATE indicator_facts",
            "TRUNCATE releases",
            "TRUNCATE audit_entries",
            "TRUNCATE audit_checkpoints",
            "TRUNCATE audit_keys",
            "TRUNCATE risk_flag_changes",
        ] {
            let err = raw(sql).await.expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        assert_eq!(s.audit_leaves().await.unwrap().len(), 3);
        drop_schema(s).await;
    }

    #[tokio::test]
    async fn schemas_are_isolated() {
        let Some(a) = fresh().await else { return };
        let Some(b) = fresh().await else { return };
        assert_ne!(a.schema(), b.schema());
        tenant(&a, "only-in-a").await;
        assert_eq!(a.tenants().await.unwrap().len(), 1);
        assert!(b.tenants().await.unwrap().is_empty());
        drop_schema(a).await;
        drop_schema(b).await;
    }

    #[tokio::test]
    async fn unreachable_server_is_an_error() {
        // Nothing listens on port 1: the error comes back at once, it is not retried.
        let started = std::time::Instant::now();
        let err = PostgresStore::connect_in_schema("postgres://postgres@127.0.0.1:1/test", "x")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

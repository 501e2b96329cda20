//! Conformance checks of jobs: idempotency keys, arrays, holds, compare-and-set, listing, ids.

use suanli_types::record::{PlacementCandidate, PlacementDecision, PlacementRejection};
use suanli_types::{CenterId, JobId, JobSpec, JobState, Money, TenantId, Timestamp};

use super::{T0, job, join_all, tenant};
use crate::*;

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

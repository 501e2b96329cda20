//! Conformance checks of the append-only money records and the engine's input log.

use suanli_types::JobState;

use super::{T0, job, tenant};
use crate::*;

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

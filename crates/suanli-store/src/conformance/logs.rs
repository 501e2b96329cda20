//! Conformance checks of jobs' log chunks: idempotent appends, data kept exactly.

use super::{job, tenant};
use crate::*;

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

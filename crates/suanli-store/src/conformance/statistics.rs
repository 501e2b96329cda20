//! Conformance checks of the statistics' tables: the facts the hub's rollup is rebuilt from,
//! and the frozen quarterly releases.

use suanli_types::Timestamp;

use super::T0;
use crate::*;

fn fact(i: u64) -> NewFact {
    NewFact {
        at: T0.plus_secs(i),
        fact: format!("{{\"n\":{i},\"text\":\"雙語 \\\"quoted\\\"\"}}"),
    }
}

fn release(quarter: &str) -> ReleaseRecord {
    ReleaseRecord {
        quarter: quarter.into(),
        made_at: T0,
        json: format!("{{\"quarter\":\"{quarter}\"}}\n"),
        csv: "table,period,group,figure,value\nmonth,2026-10,all,jobs_started,3\n".into(),
        html: "<!DOCTYPE html>\n<html lang=\"zh-CN\"><p>季度 · quarter</p></html>\n".into(),
        sha256: "ab".repeat(32),
    }
}

pub async fn indicator_facts_append_in_order_and_page(s: &dyn Store) {
    assert!(s.facts(0, 10).await.unwrap().is_empty());
    s.append_facts(&[], T0).await.unwrap();
    let first: Vec<NewFact> = (0..3).map(fact).collect();
    let second: Vec<NewFact> = (3..7).map(fact).collect();
    s.append_facts(&first, T0.plus_secs(100)).await.unwrap();
    s.append_facts(&second, T0.plus_secs(200)).await.unwrap();
    let all = s.facts(0, 100).await.unwrap();
    assert_eq!(all.len(), 7);
    for (i, f) in all.iter().enumerate() {
        assert_eq!(f.seq, i as u64 + 1);
        assert_eq!(f.at, T0.plus_secs(i as u64));
        assert_eq!(f.fact, fact(i as u64).fact, "stored exactly");
        let recorded = if i < 3 { 100 } else { 200 };
        assert_eq!(f.recorded_at, T0.plus_secs(recorded));
    }
    let page = s.facts(2, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|f| f.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    assert!(s.facts(7, 10).await.unwrap().is_empty());
}

pub async fn releases_are_stored_once(s: &dyn Store) {
    assert!(s.releases().await.unwrap().is_empty());
    assert_eq!(s.release("2026Q4").await.unwrap(), None);
    let q4 = release("2026Q4");
    let q3 = ReleaseRecord {
        made_at: Timestamp(T0.0 + 1),
        ..release("2026Q3")
    };
    s.insert_release(&q4).await.unwrap();
    s.insert_release(&q3).await.unwrap();
    let again = ReleaseRecord {
        html: "changed".into(),
        ..release("2026Q4")
    };
    match s.insert_release(&again).await {
        Err(StoreError::Exists(what)) => assert!(what.contains("2026Q4"), "{what}"),
        other => panic!("a second release of a quarter must be refused: {other:?}"),
    }
    assert_eq!(s.release("2026Q4").await.unwrap(), Some(q4.clone()));
    assert_eq!(s.release("2026Q3").await.unwrap(), Some(q3.clone()));
    let listed = s.releases().await.unwrap();
    let info = |r: &ReleaseRecord| ReleaseInfo {
        quarter: r.quarter.clone(),
        made_at: r.made_at,
        sha256: r.sha256.clone(),
    };
    assert_eq!(listed, vec![info(&q3), info(&q4)], "by quarter");
}

/// Runs `raw` SQL against the statistics' tables, as someone with the database in hand would:
/// every change is refused.
#[cfg(test)]
pub(super) async fn statistics_tables_refuse_changes<F, Fut>(s: &dyn Store, raw: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    s.append_facts(&[fact(1), fact(2)], T0).await.unwrap();
    s.insert_release(&release("2026Q4")).await.unwrap();
    for sql in [
        "UPDATE indicator_facts SET fact = '{}' WHERE seq = 1",
        "DELETE FROM indicator_facts WHERE seq = 2",
        "UPDATE releases SET html = 'x'",
        "DELETE FROM releases",
    ] {
        let err = raw(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.facts(0, 10).await.unwrap().len(), 2);
    assert_eq!(s.release("2026Q4").await.unwrap(), Some(release("2026Q4")));
}

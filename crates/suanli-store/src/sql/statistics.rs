//! Statements of the statistics: indicator facts and frozen quarterly releases.

use suanli_types::Timestamp;

use super::{Run, Stmt};
use crate::StoreResult;

/// Appends facts of the statistics, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_facts(
    tx: &mut impl Run,
    rows: &[crate::NewFact],
    recorded_at: Timestamp,
) -> StoreResult<()> {
    for r in rows {
        let s =
            Stmt::new("INSERT INTO indicator_facts (at, fact, recorded_at) VALUES ($1, $2, $3)");
        tx.run(s.arg(r.at).arg(r.fact.as_str()).arg(recorded_at))
            .await?;
    }
    Ok(())
}

pub(crate) fn facts(after: u64, limit: u32) -> Stmt<'static> {
    Stmt::new(
        "SELECT seq, at, fact, recorded_at FROM indicator_facts WHERE seq > $1 \
         ORDER BY seq LIMIT $2",
    )
    .arg(after as i64)
    .arg(i64::from(limit))
}

pub(crate) fn insert_release(r: &crate::ReleaseRecord) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO releases (quarter, made_at, json, csv, html, sha256) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(r.quarter.as_str())
    .arg(r.made_at)
    .arg(r.json.as_str())
    .arg(r.csv.as_str())
    .arg(r.html.as_str())
    .arg(r.sha256.as_str())
}

pub(crate) const RELEASES: &str = "SELECT quarter, made_at, sha256 FROM releases ORDER BY quarter";

pub(crate) fn release(quarter: &str) -> Stmt<'_> {
    Stmt::new("SELECT quarter, made_at, json, csv, html, sha256 FROM releases WHERE quarter = $1")
        .arg(quarter)
}

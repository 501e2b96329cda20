//! Statements of the append-only money records and the engine's input log.

use super::{Run, Stmt};
use crate::{InputRow, StoreResult};

pub(crate) const MONEY_RECORDS: &str = "SELECT record FROM money_records ORDER BY seq";

/// Appends money records, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_money(tx: &mut impl Run, records: &[String]) -> StoreResult<()> {
    for r in records {
        tx.run(Stmt::new("INSERT INTO money_records (record) VALUES ($1)").arg(r.as_str()))
            .await?;
    }
    Ok(())
}

/// Appends input log entries, one statement each so `seq` follows the slice's order.
pub(crate) async fn append_inputs(tx: &mut impl Run, rows: &[InputRow]) -> StoreResult<()> {
    for r in rows {
        let s = Stmt::new("INSERT INTO hub_inputs (at, input) VALUES ($1, $2)");
        tx.run(s.arg(r.at).arg(r.input.as_str())).await?;
    }
    Ok(())
}

pub(crate) fn inputs(after: u64, limit: u32) -> Stmt<'static> {
    Stmt::new("SELECT seq, at, input FROM hub_inputs WHERE seq > $1 ORDER BY seq LIMIT $2")
        .arg(after as i64)
        .arg(i64::from(limit))
}

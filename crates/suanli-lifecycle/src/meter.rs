//! Metering and billing of an ended attempt.

use suanli_money::{Record, Usage};
use suanli_types::record::JobRecord;
use suanli_types::{PriorityClass, Timestamp};

use crate::{BillNote, Lifecycle};

impl Lifecycle {
    /// Meters the current attempt of `job` from `started_at` to `ended_at` and bills it: the
    /// records to write with the job's change, and what came of it. An attempt that cannot be
    /// billed gives no records (the job goes on), nor does one billed before (a retried report).
    /// `report` is the request id of the site report that ended it, if one did.
    pub(crate) fn bill_attempt(
        &mut self,
        job: &JobRecord,
        (started_at, ended_at): (Timestamp, Timestamp),
        card_seconds: Option<u64>,
        report: Option<String>,
    ) -> (Vec<Record>, BillNote) {
        let (Some(center), Some(sku)) = (job.center.clone(), job.sku.clone()) else {
            return (
                Vec::new(),
                BillNote::NotBilled("attempt has no center or SKU".into()),
            );
        };
        let cards = job.spec.total_cards();
        let ms = u128::from(ended_at.millis_since(started_at) as u64);
        let most = u64::try_from((ms * u128::from(cards)).div_ceil(1000)).unwrap_or(u64::MAX);
        let card_seconds = card_seconds.unwrap_or(most).min(most);
        let backwards = ended_at < started_at;
        if card_seconds == 0 {
            return (Vec::new(), note_backwards(backwards, started_at, ended_at));
        }
        // The price row in force at the hub's own record of the start, never before placement.
        let priced_at = self
            .jobs
            .get(&job.id)
            .map(|l| crate::validate::priced_at(l.placed_at, started_at))
            .filter(|p| *p != started_at);
        let usage = Usage {
            job: job.id,
            attempt: job.attempt,
            tenant: job.tenant.clone(),
            center,
            sku,
            cards,
            started_at,
            ended_at,
            card_seconds,
            spot: job.spec.priority == PriorityClass::Spot,
            priced_at,
            report,
        };
        match self.books.bill(&usage, &self.parties) {
            Ok(b) if b.records.is_empty() => {
                (b.records, BillNote::BilledBefore { line: b.line.id })
            }
            Ok(b) => (
                b.records,
                BillNote::Billed {
                    line: b.line.id,
                    gross: b.line.gross,
                    subsidy: b.line.subsidy,
                    payable: b.line.payable,
                },
            ),
            Err(e) if backwards => (
                Vec::new(),
                BillNote::NotBilled(format!("{e} (reported to end before it started)")),
            ),
            Err(e) => (Vec::new(), BillNote::NotBilled(e.to_string())),
        }
    }
}

fn note_backwards(backwards: bool, started_at: Timestamp, ended_at: Timestamp) -> BillNote {
    if backwards {
        BillNote::Backwards {
            started_at,
            ended_at,
        }
    } else {
        BillNote::Nothing
    }
}

//! The pages, one module per area: the network (`network`), jobs (`jobs`), submitting
//! (`submit`), bills (`money`), the operator's centers (`operator`) and desk (`desk`: queue,
//! tenants, prices, programmes), the supervisor's desk (`supervisor`: audit log, risk flags),
//! the statistics (`statistics`: indicators, releases) and the charts they draw (`chart`), the
//! model library (`models`: the adaptation matrices and the review queue), a job page's live
//! updates (`live`), a job's outputs (`outputs`: the list, downloads, asking for a release), the
//! datasets (`datasets`) and the airlock's release requests and reviews (`airlock`).

pub mod airlock;
pub mod chart;
pub mod datasets;
pub mod desk;
pub mod jobs;
pub mod live;
pub mod models;
pub mod money;
pub mod network;
pub mod operator;
pub mod outputs;
pub mod statistics;
pub mod submit;
pub mod supervisor;

use std::future::Future;

use axum::response::Response;

use crate::layout::{self, Failure};
use crate::session::Ctx;

/// Unknown paths.
pub async fn not_found(ctx: Ctx) -> Response {
    layout::failure_page(&ctx, Failure::NotFound)
}

/// Calls `call` for each of `items` with at most `at_once` calls in flight (a new one starts as
/// soon as one ends) and returns the answers in the items' order. `call` builds each call (it
/// may fail before anything is sent, e.g. without a session).
pub async fn each_at_once<T, R, Fut>(
    items: &[T],
    at_once: usize,
    call: impl Fn(&T) -> Result<Fut, Failure>,
) -> Result<Vec<R>, Failure>
where
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let mut next = 0;
    loop {
        while next < items.len() && set.len() < at_once.max(1) {
            let fut = call(&items[next])?;
            let i = next;
            set.spawn(async move { (i, fut.await) });
            next += 1;
        }
        match set.join_next().await {
            Some(done) => {
                let (i, r) = done.map_err(|e| Failure::BadForm(e.to_string()))?;
                out[i] = Some(r);
            }
            None => break,
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every call answered"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_answer_in_the_items_order_with_a_bounded_number_in_flight() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let items: Vec<u64> = (0..40).collect();
        let got = each_at_once(&items, 3, |&i| {
            let (now, most) = (now.clone(), most.clone());
            Ok(async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                // Later items end sooner: answers arrive out of order.
                tokio::time::sleep(std::time::Duration::from_millis(40 - i)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                i * 10
            })
        })
        .await
        .unwrap();
        assert_eq!(got, items.iter().map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
        let none: Vec<u64> = vec![];
        let empty = each_at_once(&none, 3, |_| Ok(async { 0u8 })).await.unwrap();
        assert!(empty.is_empty());
    }
}

//! One test suite for every [`Store`] implementation.
//!
//! Each check is a plain async function over `&dyn Store` on an empty store;
//! [`store_conformance_tests!`](crate::store_conformance_tests) instantiates all of them as
//! `#[tokio::test]`s for a backend, given an expression that yields a fresh store (or `None`
//! when the backend is not available, which skips the test). Instantiated below for SQLite
//! (always) and PostgreSQL (when `SUANLI_TEST_POSTGRES_URL` is set).

use suanli_types::{JobSpec, TenantCategory, TenantId, Timestamp};

use crate::*;

mod audit;
mod centers;
mod datasets;
mod jobs;
mod logs;
mod models;
mod money;
mod outputs;
mod statistics;
mod tenants;
pub use audit::*;
pub use centers::*;
pub use datasets::*;
pub use jobs::*;
pub use logs::*;
pub use models::*;
pub use money::*;
pub use outputs::*;
pub use statistics::*;
pub use tenants::*;

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
            models_are_published_once_and_certified_step_by_step,
            outputs_are_replaced_summed_superseded_and_expired,
            datasets_are_registered_by_their_owner_and_replaced_by_it_only,
            dataset_grants_are_kept_revoked_and_renewed,
            airlock_requests_are_numbered_updated_forward_and_listed);
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
mod sqlite_file;

/// The same suite against PostgreSQL, each test in a schema of its own (so they run in
/// parallel), when `SUANLI_TEST_POSTGRES_URL` is set (CI sets it; see `.ci/run`).
#[cfg(test)]
mod postgres_conformance;

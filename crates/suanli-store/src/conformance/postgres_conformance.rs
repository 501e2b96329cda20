//! The suite against PostgreSQL, and its own tests: reconnects, leadership lease and fencing.

use suanli_types::{CenterId, JobSpec, JobState, TenantId};

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
    audit::audit_tables_refuse_changes(&s, &raw).await;
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

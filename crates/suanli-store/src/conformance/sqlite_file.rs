//! SQLite-only tests: a database file reopened, shared by connections, damaged, append-only.

use suanli_types::Role;

use super::*;

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let id = {
        let s = SqliteStore::open(&path).await.unwrap();
        tenant(&s, "a").await;
        job(&s, "a", "persisted").await.id
    };
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(s.job(id).await.unwrap().unwrap().spec.name, "persisted");
}

/// A write that reads first (a center's upsert) must wait for, not fail on, a write that
/// commits in between on another connection (a token's last-use stamp): SQLite refuses to
/// upgrade a deferred transaction's stale snapshot with SQLITE_BUSY at once.
#[tokio::test]
async fn concurrent_writes_on_several_connections_wait_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("hub.db")).await.unwrap();
    tenant(&s, "acme").await;
    let tok = s
        .insert_token(
            "h1",
            &NewToken {
                name: "alice".into(),
                role: Role::User,
                tenant: Some(TenantId::new("acme")),
                center: None,
                expires_at: None,
            },
            T0,
        )
        .await
        .unwrap();
    let mut c = suanli_types::center::gba_topology(100).remove(0);
    for round in 0..20 {
        c.name = format!("round {round}");
        let mut futs: Vec<StoreFuture<'_, ()>> = Vec::new();
        for i in 0..4 {
            let c = c.clone();
            let s = &s;
            futs.push(Box::pin(async move {
                s.upsert_center(&c, Timestamp(T0.0 + i)).await.map(|_| ())
            }));
            futs.push(s.touch_token(tok.principal.id, Timestamp(T0.0 + round * 10 + i)));
        }
        for r in join_all(futs).await {
            r.unwrap();
        }
    }
    assert_eq!(s.centers().await.unwrap()[0].name, "round 19");
}

#[tokio::test]
async fn a_damaged_placement_names_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let s = SqliteStore::open(&path).await.unwrap();
    tenant(&s, "a").await;
    let id = job(&s, "a", "damaged").await.id;
    let url = format!("sqlite://{}", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET placement = '{\"attempt\":1}' WHERE id = ?")
        .bind(id.0)
        .execute(&mut conn)
        .await
        .unwrap();
    let err = s.job(id).await.unwrap_err();
    let StoreError::Corrupt { what, detail } = &err else {
        panic!("{err}")
    };
    assert_eq!(*what, "jobs.placement");
    assert!(detail.starts_with(&format!("row {id}: ")), "{detail}");
}

#[tokio::test]
async fn audit_tables_refuse_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.db");
    let s = SqliteStore::open(&path).await.unwrap();
    let url = format!("sqlite://{}", path.display());
    let raw = |sql: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await?;
            Ok(sqlx::query(sql).execute(&mut conn).await?.rows_affected())
        }
    };
    audit::audit_tables_refuse_changes(&s, &raw).await;
    statistics::statistics_tables_refuse_changes(&s, &raw).await;
    models::model_tables_refuse_changes(&s, &raw).await;
}

#[tokio::test]
async fn leadership_is_refused_with_a_reason() {
    let s = SqliteStore::in_memory().await.unwrap();
    assert!(!s.supports_leadership());
    let err = s
        .acquire_lease("h", "http://h", None, std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
}

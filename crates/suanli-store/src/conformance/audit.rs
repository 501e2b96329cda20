//! Conformance checks of the audit log (entries, checkpoints, keys) and the risk flags.

use suanli_types::Timestamp;

use super::T0;
use crate::*;

/// Audit entries as the hub's log makes them: `n` entries, every third denied.
fn audit_records(n: u64) -> Vec<suanli_audit::Record> {
    use suanli_audit::{Draft, Hash, Log, Outcome};
    let mut log = Log::new();
    (0..n)
        .map(|i| {
            let r = log.prepare(Draft {
                time: T0.0 + i as i64 * 1000,
                principal: format!("{}", i % 2 + 1),
                role: Some(if i % 2 == 0 { "operator" } else { "user" }.into()),
                tenant: (i % 2 == 1).then(|| "acme".to_string()),
                source: "127.0.0.1:40000".into(),
                request_id: format!("req-{i}"),
                action: if i % 4 == 0 {
                    "POST /v1/jobs"
                } else {
                    "PUT /v1/prices"
                }
                .into(),
                target: format!("/v1/x/{i}?q=1"),
                outcome: if i % 3 == 2 {
                    Outcome::Denied {
                        status: 403,
                        why: "forbidden".into(),
                    }
                } else {
                    Outcome::Allowed { status: 200 }
                },
                request_digest: Hash::of(format!("body {i}").as_bytes()),
            });
            log.apply(&r).unwrap();
            r
        })
        .collect()
}

pub async fn audit_log_appends_filters_and_keeps_checkpoints(s: &dyn Store) {
    use suanli_audit::{Log, Signer};
    assert!(
        s.audit_entries(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    let records = audit_records(12);
    s.append_audit(&records[..5]).await.unwrap();
    s.append_audit(&records[5..]).await.unwrap();
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        s.audit_entries(&all).await.unwrap(),
        records,
        "every field round-trips"
    );
    let leaves: Vec<_> = records.iter().map(|r| r.leaf).collect();
    assert_eq!(s.audit_leaves().await.unwrap(), leaves);

    // A taken sequence number is refused, and nothing of its batch lands.
    let err = s.append_audit(&records[11..]).await.unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    assert_eq!(s.audit_leaves().await.unwrap().len(), 12);

    let seqs = |rs: Vec<suanli_audit::Record>| rs.iter().map(|r| r.entry.seq).collect::<Vec<_>>();
    let f = |f: AuditFilter| AuditFilter { limit: 100, ..f };
    let by = |f| async move { seqs(s.audit_entries(&f).await.unwrap()) };
    assert_eq!(
        by(f(AuditFilter {
            principal: Some("2".into()),
            ..Default::default()
        }))
        .await,
        vec![1, 3, 5, 7, 9, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        }))
        .await,
        vec![1, 3, 5, 7, 9, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            action: Some("POST /v1/jobs".into()),
            ..Default::default()
        }))
        .await,
        vec![0, 4, 8]
    );
    assert_eq!(
        by(f(AuditFilter {
            since: Some(T0.plus_secs(3)),
            until: Some(T0.plus_secs(6)),
            ..Default::default()
        }))
        .await,
        vec![3, 4, 5]
    );
    assert_eq!(
        by(f(AuditFilter {
            denied: true,
            ..Default::default()
        }))
        .await,
        vec![2, 5, 8, 11]
    );
    assert_eq!(
        by(f(AuditFilter {
            request_id: Some("req-7".into()),
            ..Default::default()
        }))
        .await,
        vec![7]
    );
    assert_eq!(
        by(f(AuditFilter {
            principal: Some("1".into()),
            action: Some("PUT /v1/prices".into()),
            ..Default::default()
        }))
        .await,
        vec![2, 6, 10]
    );
    assert_eq!(
        by(AuditFilter {
            after: Some(3),
            limit: 2,
            ..Default::default()
        })
        .await,
        vec![4, 5]
    );

    // Checkpoints and keys.
    let signer = Signer::from_secret([5; 32]);
    let log = Log::replay(&records, None).unwrap();
    let c1 = signer.checkpoint(5, suanli_audit::merkle::root(&leaves[..5]), T0.0);
    let c2 = log.checkpoint(&signer, T0.0 + 60_000);
    s.append_checkpoint(&c1).await.unwrap();
    s.append_checkpoint(&c2).await.unwrap();
    assert_eq!(s.audit_checkpoints().await.unwrap(), vec![c1, c2]);
    s.add_audit_key(&signer.public(), T0).await.unwrap();
    s.add_audit_key(&signer.public(), T0.plus_secs(1))
        .await
        .unwrap();
    let other = Signer::from_secret([6; 32]).public();
    s.add_audit_key(&other, T0.plus_secs(2)).await.unwrap();
    assert_eq!(s.audit_keys().await.unwrap(), vec![signer.public(), other]);
    let stored = s.audit_entries(&all).await.unwrap();
    let checkpoints = s.audit_checkpoints().await.unwrap();
    let report = suanli_audit::verify(
        &stored,
        &checkpoints,
        &[],
        &suanli_audit::Trust {
            keys: vec![signer.public()],
        },
    );
    assert!(report.ok(), "{:?}", report.problems);
}

fn risk_flag(id: &str, count: u64) -> suanli_audit::risk::Flag {
    use suanli_audit::risk::{Evidence, Flag, Severity};
    Flag {
        id: id.into(),
        rule: "failed_auth".into(),
        severity: Severity::High,
        subject: "10.0.0.9".into(),
        detail: format!("{count} failed authentications"),
        evidence: (0..count).map(|seq| Evidence::Audit { seq }).collect(),
        count,
        first_seen: T0.0,
        last_seen: T0.0 + count as i64,
    }
}

/// Flags are inserted once and only grow; their states are a history in which each state is
/// entered once; an unknown flag is `false`.
pub async fn risk_flags_grow_and_keep_their_history(s: &dyn Store) {
    use suanli_audit::risk::FlagState;
    assert!(s.risk_flags().await.unwrap().is_empty());
    let new = s
        .record_risk_flags(&[risk_flag("a", 21), risk_flag("b", 30)], T0)
        .await
        .unwrap();
    assert_eq!(new, ["a", "b"]);
    let later = Timestamp(T0.0 + 60_000);
    // `a` grew, `b` is seen with fewer items (an older evaluation): `b` keeps its 30.
    let new = s
        .record_risk_flags(&[risk_flag("a", 25), risk_flag("b", 22)], later)
        .await
        .unwrap();
    assert!(new.is_empty());
    let flags = s.risk_flags().await.unwrap();
    assert_eq!(flags.len(), 2);
    assert_eq!(flags[0].flag, risk_flag("a", 25));
    assert_eq!(flags[0].raised_at, T0, "raised when first recorded");
    assert_eq!(flags[1].flag, risk_flag("b", 30));
    assert_eq!(flags[0].state(), FlagState::Open);
    let change = |state, why: &str| RiskFlagChange {
        state,
        by: "token:7".into(),
        why: why.into(),
        at: later,
    };
    assert!(
        s.change_risk_flag("a", &change(FlagState::Acknowledged, "looking"))
            .await
            .unwrap()
    );
    let again = s
        .change_risk_flag("a", &change(FlagState::Acknowledged, "twice"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Exists(_)), "{again}");
    assert!(
        s.change_risk_flag("a", &change(FlagState::Resolved, "a test client"))
            .await
            .unwrap()
    );
    assert!(
        !s.change_risk_flag("zzz", &change(FlagState::Resolved, "none"))
            .await
            .unwrap()
    );
    let flags = s.risk_flags().await.unwrap();
    assert_eq!(flags[0].state(), FlagState::Resolved);
    assert_eq!(
        flags[0].changes,
        vec![
            change(FlagState::Acknowledged, "looking"),
            change(FlagState::Resolved, "a test client")
        ]
    );
    assert!(flags[1].changes.is_empty());
}

/// Runs `sql` on a store's own tables, as someone with the database in hand would.
#[cfg(test)]
pub(super) async fn audit_tables_refuse_changes<F, Fut>(s: &dyn Store, raw: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    s.append_audit(&audit_records(3)).await.unwrap();
    let signer = suanli_audit::Signer::from_secret([5; 32]);
    s.append_checkpoint(&signer.checkpoint(0, suanli_audit::merkle::empty_root(), T0.0))
        .await
        .unwrap();
    s.add_audit_key(&signer.public(), T0).await.unwrap();
    s.record_risk_flags(&[risk_flag("f", 21)], T0)
        .await
        .unwrap();
    let change = RiskFlagChange {
        state: suanli_audit::risk::FlagState::Acknowledged,
        by: "token:1".into(),
        why: "seen".into(),
        at: T0,
    };
    s.change_risk_flag("f", &change).await.unwrap();
    for sql in [
        "UPDATE audit_entries SET tenant = 'other' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 2",
        "DELETE FROM audit_entries",
        "UPDATE audit_checkpoints SET size = 3",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_keys SET public_key = 'x'",
        "DELETE FROM audit_keys",
        "UPDATE risk_flag_changes SET state = 'open'",
        "DELETE FROM risk_flag_changes",
        "DELETE FROM risk_flags",
    ] {
        let err = raw(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(s.audit_leaves().await.unwrap().len(), 3);
    assert_eq!(s.audit_checkpoints().await.unwrap().len(), 1);
    assert_eq!(s.audit_keys().await.unwrap().len(), 1);
}

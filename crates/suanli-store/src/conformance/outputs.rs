//! Conformance checks of the job outputs' descriptions: replaced on a second upload, summed per
//! tenant, deleted when superseded or expired, with the hashes the blob store may then drop.

use suanli_types::{JobId, TenantId, Timestamp};

use super::{T0, job, tenant};
use crate::*;

/// A SHA-256 in hex: `c` 64 times.
fn sha(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn output(
    job: JobId,
    attempt: u32,
    path: &str,
    tenant: &str,
    size: u64,
    sha256: &str,
    expires_at: Timestamp,
) -> OutputRecord {
    OutputRecord {
        job,
        attempt,
        path: path.into(),
        tenant: TenantId::new(tenant),
        size,
        sha256: sha256.into(),
        created_at: T0,
        expires_at,
    }
}

pub async fn outputs_are_replaced_summed_superseded_and_expired(s: &dyn Store) {
    tenant(s, "a").await;
    tenant(s, "b").await;
    let ja = job(s, "a", "train").await.id;
    let jb = job(s, "b", "eval").await.id;
    let (s1, s2, s3, s4) = (sha('1'), sha('2'), sha('a'), sha('f'));
    let soon = T0.plus_secs(10);
    let later = T0.plus_secs(100);
    let much_later = T0.plus_secs(1000);

    assert!(s.outputs(ja).await.unwrap().is_empty());
    assert_eq!(s.tenant_output_bytes(&TenantId::new("a")).await.unwrap(), 0);
    assert!(!s.output_sha_in_use(&s1).await.unwrap());

    // Attempt 2 first: the listing is by attempt, then path (bytewise: 'Z' before 'm').
    let a2_out = output(ja, 2, "out/a.txt", "a", 30, &s2, later);
    let a2_model = output(ja, 2, "model.bin", "a", 40, &s3, soon);
    let a2_log = output(ja, 2, "Zeta.log", "a", 1, &s3, soon);
    let a1_b = output(ja, 1, "out/b.txt", "a", 10, &s1, much_later);
    let a1_a = output(ja, 1, "out/a.txt", "a", 20, &s2, much_later);
    let a1_c = output(ja, 1, "out/c 算力.txt", "a", 7, &s1, much_later);
    let b1 = output(jb, 1, "result.csv", "b", 5, &s4, much_later);
    for o in [&a2_out, &a2_model, &a2_log, &a1_b, &a1_a, &a1_c, &b1] {
        s.put_output(o).await.unwrap();
    }
    assert_eq!(
        s.outputs(ja).await.unwrap(),
        vec![
            a1_a.clone(),
            a1_b.clone(),
            a1_c.clone(),
            a2_log.clone(),
            a2_model.clone(),
            a2_out.clone()
        ]
    );
    assert_eq!(s.outputs(jb).await.unwrap(), vec![b1.clone()]);

    // The same upload sent again, its size changed: the row is replaced, not added.
    let a1_b2 = OutputRecord {
        size: 11,
        created_at: T0.plus_secs(1),
        ..a1_b.clone()
    };
    s.put_output(&a1_b2).await.unwrap();
    let listed = s.outputs(ja).await.unwrap();
    assert_eq!(listed.len(), 6);
    assert_eq!(listed[1], a1_b2);
    assert_eq!(
        listed
            .iter()
            .filter(|o| o.path == "out/b.txt" && o.attempt == 1)
            .count(),
        1
    );

    assert_eq!(
        s.tenant_output_bytes(&TenantId::new("a")).await.unwrap(),
        20 + 11 + 7 + 1 + 40 + 30
    );
    assert_eq!(s.tenant_output_bytes(&TenantId::new("b")).await.unwrap(), 5);
    assert_eq!(
        s.tenant_output_bytes(&TenantId::new("nobody"))
            .await
            .unwrap(),
        0
    );

    // Attempt 2 supersedes attempt 1: its rows go, each hash once; s2 is still named by
    // attempt 2, s1 by nothing.
    assert!(s.output_sha_in_use(&s1).await.unwrap());
    assert_eq!(
        s.delete_outputs_before(ja, 2).await.unwrap(),
        vec![s1.clone(), s2.clone()]
    );
    assert!(!s.output_sha_in_use(&s1).await.unwrap());
    assert!(s.output_sha_in_use(&s2).await.unwrap());
    assert_eq!(
        s.outputs(ja).await.unwrap(),
        vec![a2_log.clone(), a2_model.clone(), a2_out.clone()]
    );
    assert!(s.delete_outputs_before(ja, 2).await.unwrap().is_empty());
    // One file by path and content: the rows of that path with that hash, of any attempt.
    let before = s.outputs(ja).await.unwrap();
    let one = before.first().expect("a row left").clone();
    assert!(
        s.delete_output(ja, &one.path, "0".repeat(64).as_str())
            .await
            .unwrap()
            .is_empty(),
        "another hash"
    );
    assert_eq!(
        s.delete_output(ja, &one.path, &one.sha256).await.unwrap(),
        vec![one.sha256.clone()]
    );
    let after = s.outputs(ja).await.unwrap();
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.iter().any(|o| o.path == one.path));
    // Put back, for what follows.
    s.put_output(&one).await.unwrap();
    assert_eq!(s.outputs(ja).await.unwrap(), before);
    assert_eq!(s.outputs(jb).await.unwrap(), vec![b1.clone()]);
    assert_eq!(
        s.tenant_output_bytes(&TenantId::new("a")).await.unwrap(),
        1 + 40 + 30
    );

    // Expiry: nothing before its time; at it (inclusive), the expired rows only.
    assert!(
        s.expire_outputs(soon.plus_millis(-1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.outputs(ja).await.unwrap().len(), 3);
    assert!(s.output_sha_in_use(&s3).await.unwrap());
    assert_eq!(s.expire_outputs(soon).await.unwrap(), vec![s3.clone()]);
    assert!(!s.output_sha_in_use(&s3).await.unwrap());
    assert_eq!(s.outputs(ja).await.unwrap(), vec![a2_out]);
    assert_eq!(s.outputs(jb).await.unwrap(), vec![b1]);
    assert!(s.output_sha_in_use(&s4).await.unwrap());
    assert_eq!(
        s.tenant_output_bytes(&TenantId::new("a")).await.unwrap(),
        30
    );
    assert!(s.expire_outputs(soon).await.unwrap().is_empty());
}

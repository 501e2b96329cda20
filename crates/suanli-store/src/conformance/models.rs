//! Conformance checks of the model library and its certification records.

use suanli_models::{
    CertRequest, CertState, JobEnd, ModelSpec, Outcome, Review, StackLaunch, Verdict, judge,
};
use suanli_types::{CenterId, JobId, JobSpec, TenantId};

use super::T0;
use crate::*;

fn spec(name: &str, revision: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        revision: revision.into(),
        task: "text-generation".into(),
        framework: "pytorch".into(),
        parameters: 7_000_000_000,
        licence: "Apache-2.0".into(),
        visibility: suanli_models::Visibility::Tenant,
        unit: "tokens/s".into(),
        reference_throughput: Some(2500.0),
        precision: None,
        stacks: [(
            "cuda".to_string(),
            StackLaunch {
                image: None,
                script: Some("python3 bench.py # 雙語".into()),
                framework_version: "2.8.0".into(),
            },
        )]
        .into(),
        benchmark: JobSpec::new("bench", "sh launch.sh"),
    }
}

fn request(model: i64, job: i64) -> CertRequest {
    CertRequest {
        model,
        center: CenterId::from("c1"),
        sku: "H100-SXM".into(),
        stack: "cuda".into(),
        stack_version: "12.4".into(),
        framework_version: "2.8.0".into(),
        job: JobId(job),
        tenant: TenantId::from("t1"),
        requested_by: "alice (#3)".into(),
        requested_at: T0,
    }
}

fn outcome(req: &CertRequest, stdout: &str) -> Outcome {
    let m = spec("m", "1");
    judge(
        &m,
        req,
        &JobEnd {
            succeeded: true,
            detail: String::new(),
            center: Some(&req.center),
            stdout,
            log_sha256: suanli_models::sha256_hex(stdout.as_bytes()),
        },
    )
}

pub async fn models_are_published_once_and_certified_step_by_step(s: &dyn Store) {
    assert!(s.models().await.unwrap().is_empty());
    let new = NewModel {
        spec: spec("llama-7b", "v1"),
        owner: Some(TenantId::from("t1")),
        published_by: "alice (#3)".into(),
        published_at: T0,
    };
    let m = s.insert_model(&new).await.unwrap();
    assert_eq!(m.spec, new.spec);
    let mut other = new.clone();
    other.spec.revision = "v2".into();
    other.owner = None;
    let m2 = s.insert_model(&other).await.unwrap();
    assert!(m2.id > m.id);
    match s.insert_model(&new).await {
        Err(StoreError::Exists(what)) => assert!(what.contains("llama-7b@v1"), "{what}"),
        r => panic!("a name and revision are published once: {r:?}"),
    }
    assert_eq!(s.model(m.id).await.unwrap(), Some(m.clone()));
    assert_eq!(s.model(m2.id + 100).await.unwrap(), None);
    let listed = s.models().await.unwrap();
    assert_eq!(listed, vec![m.clone(), m2.clone()]);
    assert_eq!(listed[1].owner, None);

    let r1 = request(m.id, 11);
    let c1 = s.insert_certification(&r1).await.unwrap();
    let c2 = s.insert_certification(&request(m2.id, 12)).await.unwrap();
    assert_eq!(c1.state(), CertState::Running);
    assert!(matches!(
        s.insert_certification(&request(m.id, 11)).await,
        Err(StoreError::Exists(_))
    ));

    let o = outcome(&r1, "{\"throughput\": 2400.5, \"mfu\": 0.41}");
    assert!(
        s.record_cert_outcome(c1.id, &o, T0.plus_secs(60))
            .await
            .unwrap()
    );
    assert!(matches!(
        s.record_cert_outcome(c1.id, &o, T0.plus_secs(61)).await,
        Err(StoreError::Exists(_))
    ));
    assert!(!s.record_cert_outcome(999, &o, T0).await.unwrap());
    let review = Review {
        verdict: Verdict::Accept,
        by: "operator (#1)".into(),
        reason: "numbers checked 雙語".into(),
        at: T0.plus_secs(120),
    };
    assert!(s.record_cert_review(c1.id, &review).await.unwrap());
    let reject = Review {
        verdict: Verdict::Reject,
        ..review.clone()
    };
    assert!(
        matches!(
            s.record_cert_review(c1.id, &reject).await,
            Err(StoreError::Exists(_))
        ),
        "a record is reviewed once"
    );
    assert!(!s.record_cert_review(999, &review).await.unwrap());

    let all = s.certifications(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].request, r1);
    assert_eq!(all[0].outcome, Some((o.clone(), T0.plus_secs(60))));
    assert_eq!(all[0].review, Some(review));
    assert_eq!(all[0].state(), CertState::Accepted);
    assert_eq!(all[1].id, c2.id);
    assert_eq!(all[1].state(), CertState::Running);
    let of_m2 = s.certifications(Some(m2.id)).await.unwrap();
    assert_eq!(of_m2.len(), 1);
    assert_eq!(of_m2[0].id, c2.id);
    assert!(of_m2[0].outcome.is_none());
}

/// Runs `raw` SQL against the model tables: every change is refused.
#[cfg(test)]
pub(super) async fn model_tables_refuse_changes<F, Fut>(s: &dyn Store, raw: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let m = s
        .insert_model(&NewModel {
            spec: spec("m", "1"),
            owner: None,
            published_by: "op".into(),
            published_at: T0,
        })
        .await
        .unwrap();
    let r = request(m.id, 5);
    let c = s.insert_certification(&r).await.unwrap();
    s.record_cert_outcome(c.id, &outcome(&r, "x"), T0)
        .await
        .unwrap();
    for sql in [
        "UPDATE models SET spec = '{}'",
        "DELETE FROM models",
        "UPDATE certifications SET stack_version = '13.0'",
        "DELETE FROM certifications",
        "UPDATE certification_steps SET outcome = NULL",
        "DELETE FROM certification_steps",
    ] {
        let err = raw(sql).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(
        s.certifications(None).await.unwrap()[0].state(),
        CertState::Pending
    );
}

//! The model library and adaptation certification end to end (docs/MODELS.md): a model whose
//! benchmark measures and prints its own throughput is published with the CLI, certified at a
//! local center as a real job, reviewed into an accepted record, and shown in the matrix; a
//! benchmark that prints garbage gives a functional NOK; a tenant cannot review; a stack
//! version change at the center makes the record stale.

use std::path::Path;
use std::time::Duration;

use suanli_proto::suanli_models::{CertState, Status, Verdict};
use suanli_proto::{CertificationList, CertificationView, ErrorCode, ReviewRequest};

use crate::harness::*;

/// A model file whose benchmark counts to N in the shell, times itself and prints
/// `samples/s` as its last line; `result` replaces that line when given.
pub(crate) fn model_toml(name: &str, result: Option<&str>) -> String {
    let print = match result {
        Some(r) => format!("echo '{r}'"),
        None => "echo \"{\\\"throughput\\\": $((n * 1000 / ms)), \\\"unit\\\": \\\"samples/s\\\", \\\"precision\\\": 0.5004}\"".to_string(),
    };
    format!(
        r#"
name = "{name}"
revision = "v1"
task = "shell-loop"
framework = "posix-sh"
parameters = 1
licence = "Apache-2.0"
unit = "samples/s"
reference_throughput = 1.0

[precision]
metric = "loop result"
reference = 0.5
tolerance = 0.001

[stacks.cuda]
script = '''
n=20000
start=$(date +%s%N)
i=0
while [ $i -lt $n ]; do i=$((i + 1)); done
end=$(date +%s%N)
ms=$(( (end - start) / 1000000 ))
[ $ms -gt 0 ] || ms=1
echo "counted to $i in $ms ms on $MODEL_NAME"
{print}
'''
framework_version = "1.0"

[benchmark]
name = "bench"
command = "sh $MODEL_LAUNCH"
walltime = "2m"
"#
    )
}

fn cli(net: &Net, token: &str, home: &Path, args: &[&str]) -> (i32, String, String) {
    cli_as(&net.url, token, home, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_is_certified_at_a_center_reviewed_and_shown_in_the_matrix() {
    let mut c = center("c-cuda", "RTX4090", 1, 2, "2.00");
    c.stacks.insert("cuda".into(), "12.4".into());
    // Cheaper, with the same CUDA, but another chip the model is never certified on.
    let mut cheap = center("c-a800", "A800-80G", 1, 2, "1.00");
    cheap.stacks.insert("cuda".into(), "12.4".into());
    let mut net = Net::new(&[c.clone(), cheap], &["t-a", "t-b"]).await;
    let op = net.op();
    let user_token = user_token(&op, "t-a", "alice").await;
    let user = net.client(&user_token);
    net.start_agents(vec![net.url.clone()]);
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("loop.toml");
    std::fs::write(&file, model_toml("loop", None)).unwrap();
    let garbage = home.path().join("garbage.toml");
    std::fs::write(
        &garbage,
        model_toml("garbage", Some("all done, no numbers")),
    )
    .unwrap();

    // The operator publishes both (public); a tenant sees them.
    let opt = net.operator.clone();
    for f in [&file, &garbage] {
        let (code, out, err) = cli(
            &net,
            &opt,
            home.path(),
            &["model", "publish", f.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.starts_with("Published model"), "{out}");
    }
    let (code, out, err) = cli(&net, &user_token, home.path(), &["models"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("loop@v1") && out.contains("garbage@v1"),
        "{out}"
    );
    // Publishing the same revision again is refused.
    let (code, _, err) = cli(
        &net,
        &opt,
        home.path(),
        &["model", "publish", file.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("loop@v1"), "{err}");

    // The tenant certifies at the center and waits for the outcome.
    let (code, out, err) = cli(
        &net,
        &user_token,
        home.path(),
        &[
            "certify",
            "--model",
            "loop",
            "--center",
            "c-cuda",
            "--wait",
            "--timeout",
            "60",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let rec: CertificationView = serde_json::from_str(&out).unwrap();
    assert_eq!(rec.state, CertState::Pending, "{out}");
    assert_eq!(
        (
            rec.sku.as_str(),
            rec.stack.as_str(),
            rec.stack_version.as_str()
        ),
        ("RTX4090", "cuda", "12.4")
    );
    assert_eq!(rec.tenant.as_str(), "t-a");
    let o = rec.outcome.clone().unwrap();
    assert_eq!(o.statuses.functional, Status::Ok, "{}", o.note);
    assert_eq!(o.statuses.precision, Status::Ok, "{}", o.note);
    let measured = o.throughput.unwrap();
    assert!(measured >= 1.0, "{measured}");
    // The evidence: the job ran for the tenant, and the digest is its standard output's.
    let stdout =
        suanli_proto::suanli_models::sha256_hex(stdout_of(&user, rec.job).await.as_bytes());
    assert_eq!(o.log_sha256, stdout);
    let printed = stdout_of(&user, rec.job).await;
    assert!(
        printed.contains(&format!("\"throughput\": {measured}")),
        "{printed}"
    );

    // A tenant cannot review; the operator accepts.
    let req = ReviewRequest {
        verdict: Verdict::Accept,
        reason: "measured on the local backend".into(),
    };
    let err = user.review_certification(rec.id, &req).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden));
    let accept = |token: &str, reason: &str| {
        let id = rec.id.to_string();
        let args = ["certs", "review", &id, "--accept", "--reason", reason];
        cli(&net, token, home.path(), &args)
    };
    let (code, _, err) = accept(&user_token, "mine");
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = accept(&opt, "numbers checked");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("accepted"), "{out}");
    // A second review is refused.
    let err = op.review_certification(rec.id, &req).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));

    // The matrix shows the accepted record with the measured number.
    let (code, out, err) = cli(
        &net,
        &user_token,
        home.path(),
        &["certs", "--model", "loop", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let list: CertificationList = serde_json::from_str(&out).unwrap();
    assert_eq!(list.matrix.len(), 1);
    let cell = &list.matrix[0];
    assert_eq!(
        (cell.sku.as_str(), cell.state, cell.stale),
        ("RTX4090", CertState::Accepted, false)
    );
    assert_eq!(cell.throughput, Some(measured));
    // Another tenant sees the numbers, not who of tenant A asked.
    assert!(list.certifications[0].requested_by.contains("alice"));
    let theirs = net
        .user("t-b", "bob")
        .await
        .certifications(list.model)
        .await
        .unwrap();
    assert_eq!(theirs.matrix, list.matrix);
    assert_eq!(
        theirs.certifications[0].requested_by,
        "(a principal of another tenant)"
    );
    let (code, out, _) = cli(
        &net,
        &user_token,
        home.path(),
        &["certs", "--model", "loop@v1"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("accepted") && out.contains(&format!("{measured:.1}")),
        "{out}"
    );

    // A job that names the model goes only where it is certified (not to the cheaper A800),
    // and keeps the model as name@revision; one without goes to the cheapest.
    let mut named = suanli_types::JobSpec::new("uses-loop", "echo trained");
    named.model = Some("loop".into());
    named.walltime = 60;
    let v = user.submit(&named).await.unwrap();
    assert_eq!(v.spec.model.as_deref(), Some("loop@v1"));
    let done = wait_terminal(&user, v.summary.id, Duration::from_secs(30)).await;
    assert_eq!(done.summary.state, suanli_types::JobState::Succeeded);
    let placed = done.placement.expect("placed");
    assert_eq!(placed.center.as_str(), "c-cuda");
    let why = placed
        .rejected
        .iter()
        .find(|r| r.center.as_str() == "c-a800")
        .map(|r| r.reason.clone());
    assert_eq!(
        why.as_deref(),
        Some("model loop@v1 is not certified on A800-80G / cuda 12.4")
    );
    let plain = user
        .submit(&suanli_types::JobSpec::new("plain", "true"))
        .await
        .unwrap();
    let plain = wait_terminal(&user, plain.summary.id, Duration::from_secs(30)).await;
    assert_eq!(plain.placement.unwrap().center.as_str(), "c-a800");
    // A job that names a center (sbatch's -M) runs there, not at the cheaper one; a center
    // that is not registered is refused, naming the field.
    let mut pinned = suanli_types::JobSpec::new("pinned", "true");
    pinned.centers = vec![suanli_types::CenterId::new("c-cuda")];
    let v = user.submit(&pinned).await.unwrap();
    let v = wait_terminal(&user, v.summary.id, Duration::from_secs(30)).await;
    assert_eq!(v.placement.unwrap().center.as_str(), "c-cuda");
    pinned.centers = vec![suanli_types::CenterId::new("nowhere")];
    match user.submit(&pinned).await.unwrap_err() {
        suanli_client::ClientError::Api(e) => {
            assert_eq!(e.field.as_deref(), Some("spec.centers[0]"), "{e:?}");
        }
        e => panic!("{e}"),
    }
    // A model nobody published, or one the tenant may not see, is refused, naming the field.
    let named_spec = named.clone();
    let mut stray = named.clone();
    stray.model = Some("no-such-model".into());
    match user.submit(&stray).await.unwrap_err() {
        suanli_client::ClientError::Api(e) => {
            assert_eq!(e.code, ErrorCode::InvalidSpec, "{e:?}");
            assert_eq!(e.field.as_deref(), Some("spec.model"));
        }
        e => panic!("{e}"),
    }
    // Tenant B's own model (seen by B only): tenant A naming it is told there is no such model,
    // exactly as for one never published, and learns nothing of it.
    let b_admin = op
        .create_token(&suanli_proto::TokenRequest {
            name: "b-admin".into(),
            role: suanli_types::Role::TenantAdmin,
            tenant: Some(suanli_types::TenantId::new("t-b")),
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;
    let mut private: suanli_proto::suanli_models::ModelSpec =
        toml::from_str(&model_toml("b-private", None)).unwrap();
    private.visibility = suanli_proto::suanli_models::Visibility::Tenant;
    net.client(&b_admin).publish_model(&private).await.unwrap();
    for named in ["b-private", "b-private@v1"] {
        let mut theirs = named_spec.clone();
        theirs.model = Some(named.into());
        match user.submit(&theirs).await.unwrap_err() {
            suanli_client::ClientError::Api(e) => {
                assert_eq!(e.field.as_deref(), Some("spec.model"), "{e:?}");
                assert!(e.message.contains("no model"), "{e:?}");
            }
            e => panic!("{e}"),
        }
    }
    // `garbage` is certified nowhere (its record below is never accepted): refused at once.
    let mut nowhere = named.clone();
    nowhere.model = Some("garbage@v1".into());
    let err = user.submit(&nowhere).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unschedulable), "{err}");
    assert!(err.to_string().contains("not certified"), "{err}");

    // Garbage on standard output: functional NOK, pending review.
    let (code, out, err) = cli(
        &net,
        &user_token,
        home.path(),
        &[
            "certify",
            "--model",
            "garbage",
            "--center",
            "c-cuda",
            "--wait",
            "--timeout",
            "60",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let bad: CertificationView = serde_json::from_str(&out).unwrap();
    assert_eq!(bad.state, CertState::Pending);
    let bo = bad.outcome.unwrap();
    assert_eq!(bo.statuses.functional, Status::Nok);
    assert_eq!(bo.throughput, None);
    assert!(bo.note.contains("no result"), "{}", bo.note);

    // The center moves to another CUDA version: the accepted record is stale, and a pending
    // one can no longer be accepted.
    c.stacks.insert("cuda".into(), "12.6".into());
    op.register_center(&c).await.unwrap();
    let list = user.certifications(list.model).await.unwrap();
    assert!(list.matrix[0].stale);
    assert!(list.certifications[0].stale);
    let err = op.review_certification(bad.id, &req).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Conflict));
    assert!(err.to_string().contains("stale"), "{err}");
    // Rejecting it changes nothing: the model is still certified nowhere.
    let reject = ReviewRequest {
        verdict: Verdict::Reject,
        reason: "no numbers".into(),
    };
    op.review_certification(bad.id, &reject).await.unwrap();
    let err = user.submit(&nowhere).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unschedulable), "{err}");
    // The live decisions replay from the input log, where the model was certified included.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let live = op.hub_status().await.unwrap().decision_hash.unwrap();
    let db = format!("sqlite:{}", net.db.display());
    let replayed = crate::replay::replayed(&["--store", &db]);
    assert_eq!(
        replayed["decision_hash"].as_str(),
        Some(live.as_str()),
        "{replayed}"
    );
    // No new placement there until it is certified on CUDA 12.6.
    let err = user.submit(&named).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Unschedulable), "{err}");
    assert!(
        err.to_string()
            .contains("model loop@v1 is not certified on RTX4090 / cuda 12.6"),
        "{err}"
    );

    // Back on CUDA 12.4, and certified on the A800 too: the quote shows each chip's expected run
    // time from the measured speeds (the wall time at the slower, less at the faster) and the
    // cost for it.
    c.stacks.insert("cuda".into(), "12.4".into());
    op.register_center(&c).await.unwrap();
    let req_a800 = suanli_proto::CertifyRequest {
        center: suanli_types::CenterId::new("c-a800"),
        sku: None,
        tenant: Some(suanli_types::TenantId::new("t-a")),
    };
    let a800 = op.certify(list.model, &req_a800).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let l = op.certifications(list.model).await.unwrap();
        let r = l.certifications.iter().find(|r| r.id == a800.id).unwrap();
        if r.state == CertState::Pending {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never measured: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    op.review_certification(a800.id, &req).await.unwrap();
    let q = user.quote(&named).await.unwrap();
    let runs: Vec<(String, u64)> = q
        .candidates
        .iter()
        .map(|c| (c.sku.clone(), c.expected_run_secs.expect("a run time")))
        .collect();
    assert_eq!(runs.len(), 2, "{q:?}");
    assert_eq!(
        runs.iter().map(|r| r.1).max(),
        Some(named.walltime),
        "{runs:?}"
    );
    assert!(
        runs.iter().all(|r| r.1 >= 1 && r.1 <= named.walltime),
        "{runs:?}"
    );
    let (code, out, err) = cli(
        &net,
        &user_token,
        home.path(),
        &["quote", "--model", "loop", "--walltime", "1", "--", "true"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(" RUN ") && out.contains("expected run time"),
        "{out}"
    );
    net.stop_agents().await;
}

/// The job's standard output, all of it.
async fn stdout_of(c: &suanli_client::Client, job: suanli_types::JobId) -> String {
    let view = wait_terminal(c, job, Duration::from_secs(30)).await;
    let mut out = String::new();
    let mut after = 0;
    loop {
        let page = c
            .logs(job, Some(view.summary.attempt), after)
            .await
            .unwrap();
        for ch in &page.chunks {
            if ch.stream == suanli_proto::Stream::Stdout {
                out.push_str(&ch.data);
            }
        }
        if page.chunks.is_empty() || page.complete {
            break;
        }
        after = page.next_after;
    }
    out
}

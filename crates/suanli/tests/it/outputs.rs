//! Job outputs end to end: a job declares patterns, its site uploads what they match when it
//! ends (never through a link, within the site's caps), the hub keeps it within its file cap and
//! the tenant's quota, and only the job's tenant downloads it, from the API and the CLI.

use std::time::Duration;

use suanli_hub::ApiConfig;
use suanli_hub::outputs::OutputsConfig;
use suanli_proto::ErrorCode;
use suanli_types::{JobSpec, JobState};

use crate::harness::*;

/// A job that leaves six matching files and two that are not outputs: a `.txt` no pattern names
/// and a link to a file outside its folder.
fn leaving_job() -> JobSpec {
    let mut spec = JobSpec::new(
        "leaves-files",
        "mkdir -p out big medium; echo a,b > out/a.csv; echo c,d > out/b.csv; \
         echo e,f > out/c.csv; printf w > model.bin; echo not-an-output > out/skip.txt; \
         ln -s /etc/hostname out/link.csv; head -c 20000 /dev/zero > big/huge; \
         head -c 11000 /dev/zero > medium/m",
    );
    spec.outputs = vec![
        "out/*.csv".into(),
        "model.bin".into(),
        "big/*".into(),
        "medium/*".into(),
    ];
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_outputs_are_kept_within_every_cap_and_downloaded_by_its_tenant_only() {
    let api = ApiConfig {
        outputs: OutputsConfig {
            max_file_bytes: 15_000,
            tenant_quota_bytes: 10_000,
            ..OutputsConfig::default()
        },
        ..ApiConfig::default()
    };
    let centers = [center("sz-out", "RTX4090", 1, 2, "3.00")];
    let mut net = Net::with_api(&centers, &["acme", "rival"], engine_config(), api).await;
    net.outputs.max_files = 5;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;
    let acme = net.user("acme", "ann").await;
    let rival = net.user("rival", "rob").await;

    let id = submit(&acme, &leaving_job()).await;
    let v = wait_terminal(&acme, id, Duration::from_secs(30)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.summary);

    // In path order: big/huge (over the hub's 15,000-byte file cap), medium/m (over the
    // tenant's 10,000-byte quota), model.bin, out/a.csv, out/b.csv; out/c.csv is the sixth,
    // over the site's cap of 5 files. The link and the .txt are not outputs at all.
    let list = acme.outputs(id).await.unwrap();
    let paths: Vec<_> = list.outputs.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, ["model.bin", "out/a.csv", "out/b.csv"], "{list:?}");
    assert_eq!(list.total_bytes, 1 + 4 + 4);
    assert!(
        list.outputs
            .iter()
            .all(|o| o.attempt == 1 && o.sha256.len() == 64)
    );
    let log = all_logs(&acme, id).await;
    for said in [
        "suanli: outputs: 1 file over the site's cap of 5 files and 1.0 GiB per attempt (64.0 MiB per file), not kept: out/c.csv",
        "suanli: outputs: big/huge: not kept:",
        "suanli: outputs: medium/m: not kept:",
        "would exceed its quota of 9.8 KiB",
    ] {
        assert!(log.contains(said), "{said:?} not in the log:\n{log}");
    }
    assert!(!log.contains("link.csv"), "{log}");

    // The tenant downloads; another tenant does not see the job; the operator lists but does
    // not read.
    assert_eq!(
        acme.download_output(id, "out/a.csv", None).await.unwrap(),
        b"a,b\n"
    );
    let missing = acme
        .download_output(id, "out/c.csv", None)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::InvalidSpec), "{missing}");
    for e in [
        rival.outputs(id).await.map(|_| ()).unwrap_err(),
        rival
            .download_output(id, "out/a.csv", None)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(e.code(), Some(ErrorCode::NotFound), "{e}");
    }
    assert_eq!(net.op().outputs(id).await.unwrap().outputs.len(), 3);
    let e = net
        .op()
        .download_output(id, "out/a.csv", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");

    // The site cannot add a file once the attempt has ended, nor one the job did not declare.
    let site = net.site("sz-out");
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    let late = site
        .upload_output(id, 1, "out/late.csv", sha, b"abc")
        .await
        .unwrap_err();
    assert_eq!(late.code(), Some(ErrorCode::Conflict), "{late}");

    // The CLI: the list, and every file written under a folder with its relative path.
    let home = tempfile::tempdir().unwrap();
    let token = user_token(&net.op(), "acme", "cli").await;
    let (code, out, err) = cli_as(&net.url, &token, home.path(), &["outputs", &id.to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("PATH") && out.contains("out/b.csv") && out.contains("3 files, 9 bytes"),
        "{out}"
    );
    let into = home.path().join("got");
    let (code, _, err) = cli_as(
        &net.url,
        &token,
        home.path(),
        &["download", &id.to_string(), "-o", into.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(into.join("out/b.csv")).unwrap(), b"c,d\n");
    assert_eq!(std::fs::read(into.join("model.bin")).unwrap(), b"w");
    let (code, _, err) = cli_as(
        &net.url,
        &token,
        home.path(),
        &["download", &id.to_string(), "nope.csv"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no output \"nope.csv\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_a_bad_output_pattern_is_refused_at_submit_naming_it() {
    let centers = [center("sz-out2", "RTX4090", 1, 1, "3.00")];
    let net = Net::new(&centers, &["acme"]).await;
    let acme = net.user("acme", "ann").await;
    let mut spec = JobSpec::new("bad", "true");
    spec.outputs = vec!["ok/*".into(), "../../etc/*".into()];
    let e = acme.submit(&spec).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidSpec), "{e}");
    assert!(e.to_string().contains("outputs[1]"), "{e}");
    assert!(
        acme.jobs(&Default::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
}

/// A preempted job's next attempt starts from the last checkpoint its site saved, so it redoes
/// only what ran after it: here 20 steps of 0.2 s, preempted about half-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preempted_job_resumes_from_its_checkpoint_and_redoes_less() {
    let centers = [center("sz-ck", "RTX4090", 1, 2, "2.00")];
    let mut net = Net::new(&centers, &["t-a", "t-gov"]).await;
    let a = net.user("t-a", "alice").await;
    let gov = net.user("t-gov", "clerk").await;
    net.allow_public_service("t-gov").await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;

    let mut spot = JobSpec::new(
        "steps",
        "f=\"$SUANLI_CHECKPOINT_DIR/step\"; s=$(cat \"$f\" 2>/dev/null || echo 0); \
         echo \"attempt $SUANLI_ATTEMPT from $s\"; i=$s; \
         while [ $i -lt 20 ]; do sleep 0.2; i=$((i+1)); echo $i > \"$f\"; done; echo done",
    );
    spot.priority = suanli_types::PriorityClass::Spot;
    spot.cards_per_node = 2;
    spot.checkpoint = Some("ckpt".into());
    let spot = submit_running(&a, &spot).await.summary.id;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut urgent = JobSpec::new("urgent", "echo urgent done");
    urgent.priority = suanli_types::PriorityClass::PublicService;
    urgent.cards_per_node = 2;
    let urgent = submit(&gov, &urgent).await;
    assert_eq!(
        wait_terminal(&gov, urgent, Duration::from_secs(30))
            .await
            .summary
            .state,
        JobState::Succeeded
    );
    let v = wait_terminal(&a, spot, Duration::from_secs(60)).await;
    assert_eq!(v.summary.state, JobState::Succeeded, "{:?}", v.history);
    assert_eq!(v.summary.attempt, 2, "{:?}", v.history);
    let log = all_logs(&a, spot).await;
    let from: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("attempt 2 from "))
        .unwrap_or_else(|| panic!("{log}"))
        .trim()
        .parse()
        .unwrap();
    // About ten steps ran before the preemption; the save every 0.3 s keeps all but the last.
    assert!(
        (3..20).contains(&from),
        "attempt 2 resumed at step {from}: {log}"
    );
    assert!(log.ends_with("done\n"), "{log}");
    // The checkpoint is among the job's outputs (its latest attempt's only).
    let outs = a.outputs(spot).await.unwrap();
    assert!(
        outs.outputs
            .iter()
            .any(|o| o.path == "ckpt/step" && o.attempt == 2),
        "{outs:?}"
    );
    assert!(outs.outputs.iter().all(|o| o.attempt == 2), "{outs:?}");
    net.stop_agents().await;
}

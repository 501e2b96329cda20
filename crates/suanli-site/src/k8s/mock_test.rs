//! The driver against kube-rs's mock service (`tower_test::mock::pair`): each test scripts the
//! requests the backend must send, in order (method and path, checked; query and body, asserted
//! where they matter), and answers them with responses shaped as a Kubernetes 1.33 API server's
//! (see `fixtures.rs`). No API server is involved.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use suanli_proto::{AgentEvent, AttemptRef, EventKind, Outcome};
use suanli_types::{JobId, JobSpec, Timestamp};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle};

use super::fixtures::{self as fx, NS, at};
use super::{KubeBackend, KubeConfig};
use crate::backend::{Backend, Launch, RunResult, StopHandle, stop_channel};
use crate::env::build_env;
use crate::inventory::ReservedNode;
use crate::logs::LogSink;

/// What the mock answers.
enum Reply {
    Json(Value),
    Text(&'static str),
    Bytes(&'static [u8]),
    /// The request's own body, as the API server answers a create.
    Echo,
}

impl From<Value> for Reply {
    fn from(v: Value) -> Reply {
        Reply::Json(v)
    }
}

/// One request the backend sent.
#[derive(Debug)]
struct Seen {
    query: String,
    body: Value,
}

/// The API server side of the mock.
struct ApiMock {
    handle: Handle<Request<Body>, Response<Body>>,
}

impl ApiMock {
    fn new() -> (Client, ApiMock) {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (Client::new(svc, NS), ApiMock { handle })
    }

    /// Waits for the next request, checks its method and path, and answers it.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        code: u16,
        reply: impl Into<Reply>,
    ) -> Seen {
        let (req, send) = tokio::time::timeout(Duration::from_secs(5), self.handle.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request within 5 s; expected {method} {path}"))
            .expect("the client is gone");
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap();
        assert_eq!(
            (&parts.method, parts.uri.path()),
            (&method, path),
            "unexpected request {} {}",
            parts.method,
            parts.uri
        );
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let out = match reply.into() {
            Reply::Json(v) => serde_json::to_vec(&v).unwrap(),
            Reply::Text(t) => t.as_bytes().to_vec(),
            Reply::Bytes(b) => b.to_vec(),
            Reply::Echo => {
                let mut v = body.clone();
                v["metadata"]["uid"] = json!("5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10");
                v["metadata"]["resourceVersion"] = json!("48200");
                serde_json::to_vec(&v).unwrap()
            }
        };
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(out))
                .unwrap(),
        );
        Seen {
            query: parts.uri.query().unwrap_or("").to_string(),
            body,
        }
    }

    /// Nothing more is sent.
    async fn quiet(&mut self) {
        let next =
            tokio::time::timeout(Duration::from_millis(100), self.handle.next_request()).await;
        if let Ok(Some((req, _))) = next {
            panic!("unexpected request {} {}", req.method(), req.uri());
        }
    }
}

fn cfg(poll_ms: u64) -> KubeConfig {
    KubeConfig {
        namespace: Some(NS.into()),
        poll_interval: Duration::from_millis(poll_ms),
        ..Default::default()
    }
}

fn attempt(job: i64, attempt: u32) -> AttemptRef {
    AttemptRef {
        job: JobId(job),
        attempt,
    }
}

fn launch(a: AttemptRef, sku: &str, nodes: u32, walltime: u64, files: &[(&str, &str)]) -> Launch {
    let mut spec = JobSpec::new("test", "python train.py");
    spec.nodes = nodes;
    spec.cards_per_node = 4;
    spec.walltime = walltime;
    for (p, c) in files {
        spec.files.insert(p.to_string(), c.to_string());
    }
    let reserved: Vec<ReservedNode> = (0..nodes)
        .map(|i| ReservedNode {
            node: format!("{}-{i}", sku.to_ascii_lowercase()),
            slots: vec![0, 1, 2, 3],
        })
        .collect();
    let work_dir = Path::new("/var/lib/suanli").join(format!("{}-{}", a.job, a.attempt));
    Launch {
        attempt: a,
        env: build_env(a, &spec, sku, &reserved, &work_dir),
        spec,
        sku: sku.into(),
        nodes: reserved,
        work_dir,
    }
}

/// Starts `run` for the launch; returns its task, the stop handle and the events.
fn start(
    backend: KubeBackend,
    l: Launch,
) -> (
    tokio::task::JoinHandle<RunResult>,
    StopHandle,
    mpsc::UnboundedReceiver<AgentEvent>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = LogSink::new(l.attempt, tx);
    let (h, s) = stop_channel();
    let b = Arc::new(backend);
    let task = tokio::spawn(async move { b.run(l, sink, s).await });
    (task, h, rx)
}

fn log_text(rx: &mut mpsc::UnboundedReceiver<AgentEvent>) -> String {
    let mut out = String::new();
    let mut next = 0;
    while let Ok(e) = rx.try_recv() {
        if let EventKind::Log { seq, data, .. } = e.kind {
            assert_eq!(seq, next, "log chunks are numbered from 0 without gaps");
            next += 1;
            out.push_str(&data);
        }
    }
    out
}

fn ms(s: &str) -> Timestamp {
    Timestamp(
        s.parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
    )
}

const JOBS: &str = "/apis/batch/v1/namespaces/suanli/jobs";
const PODS: &str = "/api/v1/namespaces/suanli/pods";
const CMS: &str = "/api/v1/namespaces/suanli/configmaps";

fn pods(items: Vec<Value>) -> Value {
    fx::list("PodList", items)
}

#[tokio::test]
async fn submit_run_succeed_with_logs() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(42, 1);
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let l = launch(a, "RTX4090", 1, 7200, &[("train.py", "print('hi')\n")]);
    let (task, _stop, mut rx) = start(backend, l);
    let pod = |phase, state| {
        fx::pod(
            42,
            1,
            0,
            Some("gpu-node-3"),
            phase,
            state,
            "nvidia.com/gpu",
            4,
        )
    };
    let pod_log = "/api/v1/namespaces/suanli/pods/suanli-42-1-0-x7k2p/log";

    let cm = api.expect(Method::POST, CMS, 201, Reply::Echo).await;
    assert_eq!(cm.body["metadata"]["name"], "suanli-42-1-files");
    assert_eq!(cm.body["data"]["f0"], "print('hi')\n");
    let job = api.expect(Method::POST, JOBS, 201, Reply::Echo).await;
    assert_eq!(job.body["kind"], "Job");
    assert_eq!(job.body["metadata"]["name"], "suanli-42-1");
    let pod_spec = &job.body["spec"]["template"]["spec"];
    assert_eq!(
        pod_spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "4"
    );
    assert_eq!(pod_spec["nodeSelector"]["suanli.io/sku"], "RTX4090");
    assert_eq!(job.body["spec"]["activeDeadlineSeconds"], 7200);

    // Poll 1: scheduled, the container is being created.
    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-42-1"),
        200,
        fx::job(42, 1, 1, 7200, fx::active(1, 0)),
    )
    .await;
    let list = api
        .expect(
            Method::GET,
            PODS,
            200,
            pods(vec![pod(
                "Pending",
                Some(fx::waiting("ContainerCreating", "")),
            )]),
        )
        .await;
    assert!(
        list.query
            .contains("labelSelector=suanli.io%2Fjob%3D42%2Csuanli.io%2Fattempt%3D1"),
        "{}",
        list.query
    );
    // Poll 2: running; its log is read from the start.
    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-42-1"),
        200,
        fx::job(42, 1, 1, 7200, fx::active(1, 1)),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![pod("Running", Some(fx::running(&at(0, 5))))]),
    )
    .await;
    let read = api
        .expect(
            Method::GET,
            pod_log,
            200,
            Reply::Text(
                "2026-11-20T08:00:05.100000000Z hello\n2026-11-20T08:00:05.200000000Z world\n",
            ),
        )
        .await;
    assert!(read.query.contains("container=job"), "{}", read.query);
    assert!(read.query.contains("timestamps=true"), "{}", read.query);
    assert!(!read.query.contains("sinceTime"), "{}", read.query);
    // Poll 3: complete; the rest of the log, from the last line's second.
    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-42-1"),
        200,
        fx::job(
            42,
            1,
            1,
            7200,
            fx::finished(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                1,
                0,
            ),
        ),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![pod(
            "Succeeded",
            Some(fx::terminated(0, "Completed", &at(0, 5), &at(0, 30))),
        )]),
    )
    .await;
    let read = api
        .expect(
            Method::GET,
            pod_log,
            200,
            Reply::Text(
                "2026-11-20T08:00:05.200000000Z world\n2026-11-20T08:00:29.900000000Z done\n",
            ),
        )
        .await;
    assert!(
        read.query.contains("sinceTime=2026-11-20T08%3A00%3A05Z"),
        "{}",
        read.query
    );
    // The working files are removed; the Job stays for its TTL.
    api.expect(
        Method::DELETE,
        &format!("{CMS}/suanli-42-1-files"),
        200,
        fx::deleted("configmaps", "suanli-42-1-files"),
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Succeeded, Some(0)));
    assert_eq!(res.span, Some((ms(&at(0, 5)), ms(&at(0, 30)))));
    assert_eq!(log_text(&mut rx), "hello\nworld\ndone\n");
    assert_eq!(res.log_chunks, 2);
}

#[tokio::test]
async fn gang_failure_reports_the_first_exit_code() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(7, 2);
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, mut rx) = start(backend, launch(a, "Ascend910B3", 2, 3600, &[]));
    let pod = |i, phase, state| {
        fx::pod(
            7,
            2,
            i,
            Some("npu-node-1"),
            phase,
            state,
            "huawei.com/Ascend910",
            4,
        )
    };
    let log = |i: u32| format!("{PODS}/suanli-7-2-{i}-x7k2p/log");

    let job = api.expect(Method::POST, JOBS, 201, Reply::Echo).await;
    assert_eq!(
        (
            job.body["spec"]["parallelism"].clone(),
            job.body["spec"]["completions"].clone()
        ),
        (json!(2), json!(2))
    );
    assert_eq!(
        job.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["huawei.com/Ascend910"],
        "4"
    );

    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-7-2"),
        200,
        fx::job(7, 2, 2, 3600, fx::active(2, 2)),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![
            pod(0, "Running", Some(fx::running(&at(0, 5)))),
            pod(1, "Running", Some(fx::running(&at(0, 6)))),
        ]),
    )
    .await;
    api.expect(
        Method::GET,
        &log(0),
        200,
        Reply::Text("2026-11-20T08:00:06Z rank 0 up\n"),
    )
    .await;
    api.expect(
        Method::GET,
        &log(1),
        200,
        Reply::Text("2026-11-20T08:00:07Z rank 1 up\n"),
    )
    .await;

    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-7-2"),
        200,
        fx::job(
            7,
            2,
            2,
            3600,
            fx::finished(
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                0,
                2,
            ),
        ),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![
            pod(
                0,
                "Failed",
                Some(fx::terminated(143, "Error", &at(0, 5), &at(0, 21))),
            ),
            pod(
                1,
                "Failed",
                Some(fx::terminated(2, "Error", &at(0, 6), &at(0, 20))),
            ),
        ]),
    )
    .await;
    api.expect(
        Method::GET,
        &log(0),
        200,
        Reply::Text("2026-11-20T08:00:06Z rank 0 up\n2026-11-20T08:00:21Z terminated\n"),
    )
    .await;
    api.expect(
        Method::GET,
        &log(1),
        200,
        Reply::Text("2026-11-20T08:00:07Z rank 1 up\n2026-11-20T08:00:19Z bad input\n"),
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Failed, Some(2)));
    assert_eq!(
        res.message,
        "pod suanli-7-2-1-x7k2p: the job exited with code 2 (Error)"
    );
    assert_eq!(
        log_text(&mut rx),
        "0: rank 0 up\n1: rank 1 up\n0: terminated\n1: bad input\n"
    );
    assert_eq!(res.span, Some((ms(&at(0, 5)), ms(&at(0, 21)))));
}

#[tokio::test]
async fn deadline_exceeded_is_timed_out() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(9, 1);
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, mut rx) = start(backend, launch(a, "H100-SXM", 1, 60, &[]));
    let log = format!("{PODS}/suanli-9-1-0-x7k2p/log");

    api.expect(Method::POST, JOBS, 201, Reply::Echo).await;
    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-9-1"),
        200,
        fx::job(9, 1, 1, 60, fx::active(1, 1)),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![fx::pod(
            9,
            1,
            0,
            Some("gpu-node-1"),
            "Running",
            Some(fx::running(&at(0, 2))),
            "nvidia.com/gpu",
            4,
        )]),
    )
    .await;
    api.expect(
        Method::GET,
        &log,
        200,
        // Output need not be UTF-8.
        Reply::Bytes(b"2026-11-20T08:00:03Z epoch 1 \xff\n"),
    )
    .await;
    // The Job controller ends the Job at its deadline and deletes its pods.
    api.expect(
        Method::GET,
        &format!("{JOBS}/suanli-9-1"),
        200,
        fx::job(
            9,
            1,
            1,
            60,
            fx::finished(
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
                0,
                1,
            ),
        ),
    )
    .await;
    api.expect(Method::GET, PODS, 200, pods(vec![])).await;
    // The last read finds the pod gone.
    api.expect(
        Method::GET,
        &log,
        404,
        fx::status(404, "NotFound", "pods \"suanli-9-1-0-x7k2p\" not found"),
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::TimedOut, None));
    assert_eq!(res.message, "wall-time limit of 60 s reached");
    assert_eq!(log_text(&mut rx), "epoch 1 \u{fffd}\n");
    let (start, _) = res.span.unwrap();
    assert_eq!(start, ms(&at(0, 2)));
}

#[tokio::test]
async fn cancel_deletes_the_job_and_waits_for_its_pods() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(11, 3);
    let backend = KubeBackend::with_client(cfg(200), fx::CENTER, Duration::from_secs(1), client);
    let (task, stop, mut rx) = start(backend, launch(a, "RTX4090", 1, 3600, &[]));
    let running = || {
        fx::pod(
            11,
            3,
            0,
            Some("gpu-node-2"),
            "Running",
            Some(fx::running(&at(0, 2))),
            "nvidia.com/gpu",
            4,
        )
    };
    let log = format!("{PODS}/suanli-11-3-0-x7k2p/log");
    let job = format!("{JOBS}/suanli-11-3");

    api.expect(Method::POST, JOBS, 201, Reply::Echo).await;
    api.expect(
        Method::GET,
        &job,
        200,
        fx::job(11, 3, 1, 3600, fx::active(1, 1)),
    )
    .await;
    api.expect(Method::GET, PODS, 200, pods(vec![running()]))
        .await;
    // The hub cancels while the agent reads the log.
    assert!(stop.stop("cancelled by the tenant"));
    api.expect(
        Method::GET,
        &log,
        200,
        Reply::Text("2026-11-20T08:00:03Z working\n"),
    )
    .await;

    let del = api
        .expect(
            Method::DELETE,
            &job,
            200,
            fx::deleted("jobs", "suanli-11-3"),
        )
        .await;
    assert_eq!(del.body["propagationPolicy"], "Background");
    // The Job is gone; its pod is terminating.
    let gone = fx::status(404, "NotFound", "jobs.batch \"suanli-11-3\" not found");
    api.expect(Method::GET, &job, 404, gone.clone()).await;
    api.expect(Method::GET, PODS, 200, pods(vec![running()]))
        .await;
    api.expect(
        Method::GET,
        &log,
        200,
        Reply::Text("2026-11-20T08:00:03Z working\n2026-11-20T08:00:09Z got SIGTERM\n"),
    )
    .await;
    api.expect(Method::GET, &job, 404, gone).await;
    api.expect(Method::GET, PODS, 200, pods(vec![])).await;
    // The pod is gone: its last output is gone with it.
    api.expect(
        Method::GET,
        &log,
        404,
        fx::status(404, "NotFound", "pods \"suanli-11-3-0-x7k2p\" not found"),
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Killed, None));
    assert_eq!(res.message, "cancelled by the tenant");
    assert_eq!(log_text(&mut rx), "working\ngot SIGTERM\n");
}

#[tokio::test]
async fn unpullable_image_fails_and_deletes_the_job() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(12, 1);
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, _rx) = start(backend, launch(a, "MLU590", 1, 3600, &[]));
    let job = format!("{JOBS}/suanli-12-1");

    let created = api.expect(Method::POST, JOBS, 201, Reply::Echo).await;
    assert_eq!(
        created.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cambricon.com/mlu"],
        "4"
    );
    api.expect(
        Method::GET,
        &job,
        200,
        fx::job(12, 1, 1, 3600, fx::active(1, 0)),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![fx::pod(
            12,
            1,
            0,
            Some("mlu-node-1"),
            "Pending",
            Some(fx::waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"busybox:stable\"",
            )),
            "cambricon.com/mlu",
            4,
        )]),
    )
    .await;
    let del = api
        .expect(
            Method::DELETE,
            &job,
            200,
            fx::deleted("jobs", "suanli-12-1"),
        )
        .await;
    assert_eq!(del.body["propagationPolicy"], "Background");

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!(res.outcome, Outcome::Failed);
    assert_eq!(
        res.message,
        "pod suanli-12-1-0-x7k2p cannot start: ImagePullBackOff: Back-off pulling image \"busybox:stable\""
    );
    let (s, e) = res.span.unwrap();
    assert_eq!(s, e, "nothing ran: nothing is metered");
}

#[tokio::test]
async fn refused_or_unreachable_submit() {
    // Invalid: failed, and the ConfigMap is removed again.
    let (client, mut api) = ApiMock::new();
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, _rx) = start(
        backend,
        launch(attempt(13, 1), "K100-AI", 1, 3600, &[("a/b.txt", "x")]),
    );
    api.expect(Method::POST, CMS, 201, Reply::Echo).await;
    let job = api
        .expect(
            Method::POST,
            JOBS,
            403,
            fx::status(403, "Forbidden", "jobs.batch \"suanli-13-1\" is forbidden: exceeded quota: gpu-quota, requested: requests.hygon.com/dcu=4, used: requests.hygon.com/dcu=8, limited: requests.hygon.com/dcu=8"),
        )
        .await;
    assert_eq!(
        job.body["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["hygon.com/dcu"],
        "4"
    );
    api.expect(
        Method::DELETE,
        &format!("{CMS}/suanli-13-1-files"),
        200,
        fx::deleted("configmaps", "suanli-13-1-files"),
    )
    .await;
    let res = task.await.unwrap();
    assert_eq!(res.outcome, Outcome::Failed);
    assert!(
        res.message.starts_with(
            "Kubernetes refused the Job: jobs.batch \"suanli-13-1\" is forbidden: exceeded quota"
        ),
        "{}",
        res.message
    );

    // Overloaded API server: killed, so that the hub places the job again.
    let (client, mut api) = ApiMock::new();
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, _rx) = start(backend, launch(attempt(14, 1), "RTX4090", 1, 3600, &[]));
    api.expect(
        Method::POST,
        JOBS,
        503,
        fx::status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
    )
    .await;
    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!(res.outcome, Outcome::Killed);
    assert!(
        res.message.starts_with("Kubernetes is unreachable"),
        "{}",
        res.message
    );
}

#[tokio::test]
async fn volcano_gang_runs_as_a_vcjob() {
    let (client, mut api) = ApiMock::new();
    let a = attempt(15, 1);
    let mut c = cfg(10);
    c.volcano = true;
    let backend = KubeBackend::with_client(c, fx::CENTER, Duration::from_secs(1), client);
    let (task, _stop, mut rx) = start(backend, launch(a, "Ascend910B3", 2, 3600, &[]));
    let vcjobs = "/apis/batch.volcano.sh/v1alpha1/namespaces/suanli/jobs";
    let vcjob = |phase: &str| {
        json!({
            "apiVersion": "batch.volcano.sh/v1alpha1",
            "kind": "Job",
            "metadata": {"name": "suanli-15-1", "namespace": NS, "uid": "91c2", "resourceVersion": "50100"},
            "spec": {"minAvailable": 2, "queue": "default", "schedulerName": "volcano"},
            "status": {
                "state": {"phase": phase, "lastTransitionTime": at(0, 3)},
                "minAvailable": 2, "running": 2, "version": 1
            }
        })
    };
    let pod = |i, phase, state| {
        fx::pod(
            15,
            1,
            i,
            Some("npu-node-2"),
            phase,
            state,
            "huawei.com/Ascend910",
            4,
        )
    };
    let log = |i: u32| format!("{PODS}/suanli-15-1-{i}-x7k2p/log");

    let created = api.expect(Method::POST, vcjobs, 201, Reply::Echo).await;
    assert_eq!(created.body["apiVersion"], "batch.volcano.sh/v1alpha1");
    assert_eq!(created.body["spec"]["minAvailable"], 2);
    assert_eq!(created.body["spec"]["tasks"][0]["replicas"], 2);

    api.expect(
        Method::GET,
        &format!("{vcjobs}/suanli-15-1"),
        200,
        vcjob("Running"),
    )
    .await;
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![
            pod(0, "Running", Some(fx::running(&at(0, 4)))),
            pod(1, "Running", Some(fx::running(&at(0, 4)))),
        ]),
    )
    .await;
    api.expect(
        Method::GET,
        &log(0),
        200,
        Reply::Text("2026-11-20T08:00:05Z a\n"),
    )
    .await;
    api.expect(
        Method::GET,
        &log(1),
        200,
        Reply::Text("2026-11-20T08:00:05Z b\n"),
    )
    .await;
    api.expect(
        Method::GET,
        &format!("{vcjobs}/suanli-15-1"),
        200,
        vcjob("Completed"),
    )
    .await;
    let done = |i| {
        pod(
            i,
            "Succeeded",
            Some(fx::terminated(0, "Completed", &at(0, 4), &at(0, 40))),
        )
    };
    api.expect(Method::GET, PODS, 200, pods(vec![done(0), done(1)]))
        .await;
    api.expect(
        Method::GET,
        &log(0),
        200,
        Reply::Text("2026-11-20T08:00:05Z a\n"),
    )
    .await;
    api.expect(
        Method::GET,
        &log(1),
        200,
        Reply::Text("2026-11-20T08:00:05Z b\n"),
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Succeeded, Some(0)));
    assert_eq!(log_text(&mut rx), "0: a\n1: b\n");
}

#[tokio::test]
async fn inventory_from_nodes_and_pods() {
    let (client, mut api) = ApiMock::new();
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let task = tokio::spawn(async move { backend.nodes().await });
    let nodes = api
        .expect(
            Method::GET,
            "/api/v1/nodes",
            200,
            fx::list(
                "NodeList",
                vec![
                    fx::node("gpu-a", "RTX4090", "nvidia.com/gpu", 8, true, false),
                    fx::node(
                        "npu-a",
                        "Ascend910B3",
                        "huawei.com/Ascend910",
                        8,
                        true,
                        false,
                    ),
                ],
            ),
        )
        .await;
    assert!(
        nodes.query.contains("labelSelector=suanli.io%2Fsku"),
        "{}",
        nodes.query
    );
    assert!(nodes.query.contains("resourceVersion=0"), "{}", nodes.query);
    // The agent may not list every namespace's pods: its own namespace's then.
    let all = api
        .expect(
            Method::GET,
            "/api/v1/pods",
            403,
            fx::status(403, "Forbidden", "pods is forbidden: User \"system:serviceaccount:suanli:agent\" cannot list resource \"pods\" in API group \"\" at the cluster scope"),
        )
        .await;
    assert!(
        all.query
            .contains("fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed"),
        "{}",
        all.query
    );
    api.expect(
        Method::GET,
        PODS,
        200,
        pods(vec![fx::pod(
            3,
            1,
            0,
            Some("npu-a"),
            "Running",
            None,
            "huawei.com/Ascend910",
            6,
        )]),
    )
    .await;
    let inv = task.await.unwrap().unwrap();
    let got: Vec<(&str, &str, u32, u32)> = inv
        .iter()
        .map(|n| (n.node.as_str(), n.sku.as_str(), n.cards, n.free_cards))
        .collect();
    assert_eq!(
        got,
        [("gpu-a", "RTX4090", 8, 8), ("npu-a", "Ascend910B3", 8, 2)]
    );
}

#[tokio::test]
async fn startup_deletes_what_an_earlier_run_left() {
    let (client, mut api) = ApiMock::new();
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let task = tokio::spawn(async move { backend.cancel_orphans().await });
    let list = api
        .expect(
            Method::GET,
            JOBS,
            200,
            fx::list(
                "JobList",
                vec![
                    fx::job(5, 1, 1, 3600, fx::active(1, 1)),
                    fx::job(
                        6,
                        1,
                        1,
                        3600,
                        fx::finished("Complete", "CompletionsReached", "", 1, 0),
                    ),
                ],
            ),
        )
        .await;
    assert_eq!(list.query, "&labelSelector=suanli.io%2Fcenter%3Dgz-ai-1");
    let del = api
        .expect(
            Method::DELETE,
            &format!("{JOBS}/suanli-5-1"),
            200,
            fx::deleted("jobs", "suanli-5-1"),
        )
        .await;
    assert_eq!(del.body["propagationPolicy"], "Background");
    let cms = api
        .expect(Method::DELETE, CMS, 200, fx::list("ConfigMapList", vec![]))
        .await;
    assert!(
        cms.query
            .contains("labelSelector=suanli.io%2Fcenter%3Dgz-ai-1"),
        "{}",
        cms.query
    );
    assert_eq!(task.await.unwrap().unwrap(), ["suanli-5-1"]);
    api.quiet().await;
}

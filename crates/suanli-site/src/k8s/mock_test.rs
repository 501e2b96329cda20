//! The backend under the supervisor against kube-rs's mock service (`tower_test::mock::pair`):
//! each test scripts the requests the backend must send, in order (method and path, checked; query
//! and body, asserted where they matter), and answers them with responses shaped as a Kubernetes
//! 1.33 API server's (see `fixtures.rs`). No API server is involved.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use suanli_proto::{AgentEvent, Outcome, Stream};
use suanli_types::{JobSpec, Timestamp};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle};

use super::fixtures::{self as fx, Gang, NS, at};
use super::{KubeBackend, KubeConfig};
use crate::backend::{Launch, RunResult, Runner, StopHandle, stop_channel};
use crate::logs::LogSink;
use crate::supervisor::Supervised;
use crate::testing::{self, assert_has, attempt, collect, rows, text};

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

const JOBS: &str = "/apis/batch/v1/namespaces/suanli/jobs";
const VCJOBS: &str = "/apis/batch.volcano.sh/v1alpha1/namespaces/suanli/jobs";
const PODS: &str = "/api/v1/namespaces/suanli/pods";
const CMS: &str = "/api/v1/namespaces/suanli/configmaps";

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

    /// A create at `path`, answered with the object.
    async fn created(&mut self, path: &str) -> Seen {
        self.expect(Method::POST, path, 201, Reply::Echo).await
    }

    /// One poll of the supervisor: the Job (or Volcano Job) at `job_path` and the attempt's pods.
    async fn poll(&mut self, job_path: &str, job: Value, pods: Vec<Value>) -> Seen {
        self.expect(Method::GET, job_path, 200, job).await;
        self.expect(Method::GET, PODS, 200, fx::list("PodList", pods))
            .await
    }

    /// One poll after the Job was deleted: it is gone, `pods` are left.
    async fn poll_gone(&mut self, job_path: &str, pods: Vec<Value>) {
        let name = job_path.rsplit('/').next().unwrap();
        let gone = fx::status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
        self.expect(Method::GET, job_path, 404, gone).await;
        self.expect(Method::GET, PODS, 200, fx::list("PodList", pods))
            .await;
    }

    /// A read of a pod's log.
    async fn log(&mut self, path: &str, reply: impl Into<Reply>) -> Seen {
        self.expect(Method::GET, path, 200, reply).await
    }

    /// A read of the log of a pod that is gone.
    async fn log_gone(&mut self, path: &str) {
        let pod = path.rsplit('/').nth(1).unwrap();
        let gone = fx::status(404, "NotFound", &format!("pods \"{pod}\" not found"));
        self.expect(Method::GET, path, 404, gone).await;
    }

    /// A DELETE of `kind` `name` at `path`.
    async fn deleted(&mut self, path: &str, kind: &str, name: &str) -> Seen {
        self.expect(Method::DELETE, path, 200, fx::deleted(kind, name))
            .await
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

fn launch(g: &Gang, sku: &str, nodes: u32, walltime: u64, files: &[(&str, &str)]) -> Launch {
    let mut spec = JobSpec::new("test", "python train.py");
    spec.nodes = nodes;
    spec.cards_per_node = 4;
    spec.walltime = walltime;
    for (p, c) in files {
        spec.files.insert(p.to_string(), c.to_string());
    }
    let a = attempt(g.job, g.attempt);
    testing::launch(Path::new("/var/lib/suanli"), a, spec, sku, &[0, 1, 2, 3])
}

/// Starts the attempt through the backend under the supervisor; returns its task, the stop handle
/// and the events.
fn start(
    cfg: KubeConfig,
    client: Client,
    l: Launch,
) -> (
    tokio::task::JoinHandle<RunResult>,
    StopHandle,
    mpsc::UnboundedReceiver<AgentEvent>,
) {
    let grace = Duration::from_secs(1);
    let backend = KubeBackend::with_client(cfg, fx::CENTER, grace, client);
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = LogSink::new(l.attempt, tx);
    let (h, s) = stop_channel();
    let runner = Arc::new(Supervised::new(backend, grace));
    let task = tokio::spawn(async move { runner.run(l, sink, s).await });
    (task, h, rx)
}

fn log_text(rx: &mut mpsc::UnboundedReceiver<AgentEvent>) -> String {
    text(&collect(rx), Stream::Stdout)
}

fn ms(s: &str) -> Timestamp {
    Timestamp(
        s.parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
    )
}

fn done(g: &Gang, index: u32, code: i32, reason: &str, started: u32, ended: u32) -> Value {
    let phase = if code == 0 { "Succeeded" } else { "Failed" };
    let state = fx::terminated(code, reason, &at(0, started), &at(0, ended));
    g.pod(index, phase, Some(state))
}

fn running(g: &Gang, index: u32, started: u32) -> Value {
    g.pod(index, "Running", Some(fx::running(&at(0, started))))
}

fn limits(job: &Value, resource: &str) -> Value {
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"][resource].clone()
}

#[tokio::test]
async fn submit_run_succeed_with_logs() {
    let g = fx::gang(42, 1, "gpu-node-3", "nvidia.com/gpu");
    let (client, mut api) = ApiMock::new();
    let l = launch(&g, "RTX4090", 1, 7200, &[("train.py", "print('hi')\n")]);
    let (task, _stop, mut rx) = start(cfg(10), client, l);

    let cm = api.created(CMS).await;
    assert_eq!(cm.body["metadata"]["name"], "suanli-42-1-files");
    assert_eq!(cm.body["data"]["f0"], "print('hi')\n");
    let job = api.created(JOBS).await;
    assert_eq!(job.body["kind"], "Job");
    assert_eq!(job.body["metadata"]["name"], "suanli-42-1");
    assert_eq!(limits(&job.body, "nvidia.com/gpu"), "4");
    assert_eq!(
        job.body["spec"]["template"]["spec"]["nodeSelector"]["suanli.io/sku"],
        "RTX4090"
    );
    assert_eq!(job.body["spec"]["activeDeadlineSeconds"], 7200);

    // Poll 1: scheduled, the container is being created.
    let creating = g.pod(0, "Pending", Some(fx::waiting("ContainerCreating", "")));
    let list = api
        .poll(
            &g.job_path(),
            g.job(1, 7200, fx::active(1, 0)),
            vec![creating],
        )
        .await;
    assert!(
        list.query
            .contains("labelSelector=suanli.io%2Fjob%3D42%2Csuanli.io%2Fattempt%3D1"),
        "{}",
        list.query
    );
    // Poll 2: running; its log is read from the start.
    api.poll(
        &g.job_path(),
        g.job(1, 7200, fx::active(1, 1)),
        vec![running(&g, 0, 5)],
    )
    .await;
    let read = api
        .log(
            &g.log_path(0),
            Reply::Text(
                "2026-11-20T08:00:05.100000000Z hello\n2026-11-20T08:00:05.200000000Z world\n",
            ),
        )
        .await;
    assert!(read.query.contains("container=job"), "{}", read.query);
    assert!(read.query.contains("timestamps=true"), "{}", read.query);
    assert!(!read.query.contains("sinceTime"), "{}", read.query);
    // Poll 3: complete; the rest of the log, from the last line's second.
    let complete = fx::finished(
        "Complete",
        "CompletionsReached",
        "Reached expected number of succeeded pods",
        1,
        0,
    );
    api.poll(
        &g.job_path(),
        g.job(1, 7200, complete),
        vec![done(&g, 0, 0, "Completed", 5, 30)],
    )
    .await;
    let read = api
        .log(
            &g.log_path(0),
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
    api.deleted(
        &format!("{CMS}/suanli-42-1-files"),
        "configmaps",
        "suanli-42-1-files",
    )
    .await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Succeeded, Some(0)));
    assert_eq!(res.span, Some((ms(&at(0, 5)), ms(&at(0, 30)))));
    assert_eq!(log_text(&mut rx), "hello\nworld\ndone\n");
    assert_eq!(res.log_chunks, 2);
}

const ASCEND: Gang = Gang {
    job: 7,
    attempt: 2,
    node: "npu-node-1",
    resource: "huawei.com/Ascend910",
    cards: 4,
};

#[tokio::test]
async fn gang_failure_reports_the_first_exit_code() {
    let g = ASCEND;
    let (client, mut api) = ApiMock::new();
    let (task, _stop, mut rx) = start(cfg(10), client, launch(&g, "Ascend910B3", 2, 3600, &[]));

    let job = api.created(JOBS).await;
    assert_eq!(
        (
            &job.body["spec"]["parallelism"],
            &job.body["spec"]["completions"]
        ),
        (&json!(2), &json!(2))
    );
    assert_eq!(limits(&job.body, "huawei.com/Ascend910"), "4");

    let up = vec![running(&g, 0, 5), running(&g, 1, 6)];
    api.poll(&g.job_path(), g.job(2, 3600, fx::active(2, 2)), up)
        .await;
    api.log(
        &g.log_path(0),
        Reply::Text("2026-11-20T08:00:06Z rank 0 up\n"),
    )
    .await;
    api.log(
        &g.log_path(1),
        Reply::Text("2026-11-20T08:00:07Z rank 1 up\n"),
    )
    .await;

    let failed = fx::finished(
        "Failed",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
        0,
        2,
    );
    let down = vec![
        done(&g, 0, 143, "Error", 5, 21),
        done(&g, 1, 2, "Error", 6, 20),
    ];
    api.poll(&g.job_path(), g.job(2, 3600, failed), down).await;
    api.log(
        &g.log_path(0),
        Reply::Text("2026-11-20T08:00:06Z rank 0 up\n2026-11-20T08:00:21Z terminated\n"),
    )
    .await;
    api.log(
        &g.log_path(1),
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
    let g = fx::gang(9, 1, "gpu-node-1", "nvidia.com/gpu");
    let (client, mut api) = ApiMock::new();
    let (task, _stop, mut rx) = start(cfg(10), client, launch(&g, "H100-SXM", 1, 60, &[]));

    api.created(JOBS).await;
    api.poll(
        &g.job_path(),
        g.job(1, 60, fx::active(1, 1)),
        vec![running(&g, 0, 2)],
    )
    .await;
    // Output need not be UTF-8.
    api.log(
        &g.log_path(0),
        Reply::Bytes(b"2026-11-20T08:00:03Z epoch 1 \xff\n"),
    )
    .await;
    // The Job controller ends the Job at its deadline and deletes its pods.
    let late = fx::finished(
        "Failed",
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
        0,
        1,
    );
    api.poll(&g.job_path(), g.job(1, 60, late), vec![]).await;
    // The last read finds the pod gone.
    api.log_gone(&g.log_path(0)).await;

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
    let g = fx::gang(11, 3, "gpu-node-2", "nvidia.com/gpu");
    let (client, mut api) = ApiMock::new();
    let (task, stop, mut rx) = start(cfg(200), client, launch(&g, "RTX4090", 1, 3600, &[]));

    api.created(JOBS).await;
    api.poll(
        &g.job_path(),
        g.job(1, 3600, fx::active(1, 1)),
        vec![running(&g, 0, 2)],
    )
    .await;
    // The hub cancels while the agent reads the log.
    assert!(stop.stop("cancelled by the tenant"));
    api.log(
        &g.log_path(0),
        Reply::Text("2026-11-20T08:00:03Z working\n"),
    )
    .await;

    let del = api.deleted(&g.job_path(), "jobs", "suanli-11-3").await;
    assert_eq!(del.body["propagationPolicy"], "Background");
    // The Job is gone; its pod is terminating.
    api.poll_gone(&g.job_path(), vec![running(&g, 0, 2)]).await;
    api.log(
        &g.log_path(0),
        Reply::Text("2026-11-20T08:00:03Z working\n2026-11-20T08:00:09Z got SIGTERM\n"),
    )
    .await;
    api.poll_gone(&g.job_path(), vec![]).await;
    // The pod is gone: its last output is gone with it.
    api.log_gone(&g.log_path(0)).await;

    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!((res.outcome, res.exit_code), (Outcome::Killed, None));
    assert_eq!(res.message, "cancelled by the tenant");
    assert_eq!(log_text(&mut rx), "working\ngot SIGTERM\n");
}

#[tokio::test]
async fn unpullable_image_fails_and_deletes_the_job() {
    let g = fx::gang(12, 1, "mlu-node-1", "cambricon.com/mlu");
    let (client, mut api) = ApiMock::new();
    let (task, _stop, _rx) = start(cfg(10), client, launch(&g, "MLU590", 1, 3600, &[]));

    let created = api.created(JOBS).await;
    assert_eq!(limits(&created.body, "cambricon.com/mlu"), "4");
    let backoff = fx::waiting(
        "ImagePullBackOff",
        "Back-off pulling image \"busybox:stable\"",
    );
    api.poll(
        &g.job_path(),
        g.job(1, 3600, fx::active(1, 0)),
        vec![g.pod(0, "Pending", Some(backoff))],
    )
    .await;
    let del = api.deleted(&g.job_path(), "jobs", "suanli-12-1").await;
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
    let g = fx::gang(13, 1, "dcu-node-1", "hygon.com/dcu");
    let (client, mut api) = ApiMock::new();
    let (task, _stop, _rx) = start(
        cfg(10),
        client,
        launch(&g, "K100-AI", 1, 3600, &[("a/b.txt", "x")]),
    );
    api.created(CMS).await;
    let job = api
        .expect(
            Method::POST,
            JOBS,
            403,
            fx::status(403, "Forbidden", "jobs.batch \"suanli-13-1\" is forbidden: exceeded quota: gpu-quota, requested: requests.hygon.com/dcu=4, used: requests.hygon.com/dcu=8, limited: requests.hygon.com/dcu=8"),
        )
        .await;
    assert_eq!(limits(&job.body, "hygon.com/dcu"), "4");
    api.deleted(
        &format!("{CMS}/suanli-13-1-files"),
        "configmaps",
        "suanli-13-1-files",
    )
    .await;
    let res = task.await.unwrap();
    assert_eq!(res.outcome, Outcome::Failed);
    assert_has(
        &res.message,
        "Kubernetes refused the Job: jobs.batch \"suanli-13-1\" is forbidden: exceeded quota",
    );

    // Overloaded API server: killed, so that the hub places the job again.
    let g = Gang { job: 14, ..g };
    let (client, mut api) = ApiMock::new();
    let (task, _stop, _rx) = start(cfg(10), client, launch(&g, "RTX4090", 1, 3600, &[]));
    let busy = fx::status(
        503,
        "ServiceUnavailable",
        "the server is currently unable to handle the request",
    );
    api.expect(Method::POST, JOBS, 503, busy).await;
    let res = task.await.unwrap();
    api.quiet().await;
    assert_eq!(res.outcome, Outcome::Killed);
    assert_has(&res.message, "Kubernetes is unreachable");
}

#[tokio::test]
async fn volcano_gang_runs_as_a_vcjob() {
    let g = Gang {
        job: 15,
        attempt: 1,
        node: "npu-node-2",
        ..ASCEND
    };
    let (client, mut api) = ApiMock::new();
    let mut c = cfg(10);
    c.volcano = true;
    let (task, _stop, mut rx) = start(c, client, launch(&g, "Ascend910B3", 2, 3600, &[]));
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
    let path = format!("{VCJOBS}/suanli-15-1");

    let created = api.created(VCJOBS).await;
    assert_eq!(created.body["apiVersion"], "batch.volcano.sh/v1alpha1");
    assert_eq!(created.body["spec"]["minAvailable"], 2);
    assert_eq!(created.body["spec"]["tasks"][0]["replicas"], 2);

    api.poll(
        &path,
        vcjob("Running"),
        vec![running(&g, 0, 4), running(&g, 1, 4)],
    )
    .await;
    api.log(&g.log_path(0), Reply::Text("2026-11-20T08:00:05Z a\n"))
        .await;
    api.log(&g.log_path(1), Reply::Text("2026-11-20T08:00:05Z b\n"))
        .await;
    let all_done = vec![
        done(&g, 0, 0, "Completed", 4, 40),
        done(&g, 1, 0, "Completed", 4, 40),
    ];
    api.poll(&path, vcjob("Completed"), all_done).await;
    api.log(&g.log_path(0), Reply::Text("2026-11-20T08:00:05Z a\n"))
        .await;
    api.log(&g.log_path(1), Reply::Text("2026-11-20T08:00:05Z b\n"))
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
    let busy = Gang {
        job: 3,
        attempt: 1,
        node: "npu-a",
        resource: "huawei.com/Ascend910",
        cards: 6,
    };
    api.expect(
        Method::GET,
        PODS,
        200,
        fx::list("PodList", vec![busy.pod(0, "Running", None)]),
    )
    .await;
    let inv = task.await.unwrap().unwrap();
    assert_eq!(
        rows(&inv),
        [("gpu-a", "RTX4090", 8, 8), ("npu-a", "Ascend910B3", 8, 2)]
    );
}

#[tokio::test]
async fn startup_deletes_what_an_earlier_run_left() {
    let (client, mut api) = ApiMock::new();
    let backend = KubeBackend::with_client(cfg(10), fx::CENTER, Duration::from_secs(1), client);
    let task = tokio::spawn(async move { backend.cancel_orphans().await });
    let left = Gang {
        job: 5,
        attempt: 1,
        ..ASCEND
    };
    let finished = Gang { job: 6, ..left };
    let complete = fx::finished("Complete", "CompletionsReached", "", 1, 0);
    let list = api
        .expect(
            Method::GET,
            JOBS,
            200,
            fx::list(
                "JobList",
                vec![
                    left.job(1, 3600, fx::active(1, 1)),
                    finished.job(1, 3600, complete),
                ],
            ),
        )
        .await;
    assert_eq!(list.query, "&labelSelector=suanli.io%2Fcenter%3Dgz-ai-1");
    let del = api.deleted(&left.job_path(), "jobs", "suanli-5-1").await;
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

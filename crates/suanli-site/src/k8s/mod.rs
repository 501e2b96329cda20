//! The Kubernetes backend: runs each attempt as a Kubernetes Job through the API server (kube-rs).
//!
//! - **Submit**: a ConfigMap with the working files (when there are any) and a `batch/v1` Job
//!   rendered by [`render::render_job`]: one pod per node (Indexed, `parallelism = completions =
//!   nodes`), the vendor's device resource per SKU as the limit (`nvidia.com/gpu: 8`), a node
//!   selector on the SKU label, `backoffLimit: 0`, `activeDeadlineSeconds` = wall time. On a center
//!   that runs Volcano (`KubeConfig::volcano`) a gang (more than one node) is a Volcano Job with
//!   `minAvailable` = nodes instead ([`render::render_vcjob`]), so that all its pods start together.
//! - **Track**: every poll interval, GET the Job and LIST the attempt's pods by label; states map
//!   through [`status::map_status`] / [`status::map_vcjob_status`].
//! - **Logs**: each started pod's log is read with `timestamps=true` from the last line's second
//!   on; [`status::LogCursor`] drops what was read before. A gang's lines are prefixed with the
//!   pod's index (`1: ...`), as `srun --label` does.
//! - **Stop**: DELETE the Job (propagation `Background`), then wait until its pods are gone.
//! - **Metering**: from the job containers' start and end times in the pod statuses.
//! - **Inventory**: nodes with the SKU label, their allocatable devices, less those held by
//!   unfinished pods.
//!
//! What was and was not tested against a real cluster: see `docs/KUBERNETES.md`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams,
    PostParams, PropagationPolicy,
};
use suanli_proto::{NodeInventory, Outcome, Stream};
use suanli_types::{CenterSpec, ChipCatalog, Timestamp};
use tokio::time::{Instant, MissedTickBehavior};

use crate::backend::{Backend, BoxFuture, Launch, RunResult, StopSignal};
use crate::logs::{LineChunker, LogSink};
use crate::now;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod mock_test;
pub mod render;
pub mod status;

use render::RenderArgs;
use status::{Ending, LogCursor, Phase};

/// Visible-devices variables of every vendor: the device plugin sets the one that counts, so the
/// agent passes none of them to a pod.
pub(crate) const DEVICE_VARS: [&str; 7] = [
    "CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "MLU_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "XPU_VISIBLE_DEVICES",
    "MUSA_VISIBLE_DEVICES",
    "MACA_VISIBLE_DEVICES",
];

pub const DEFAULT_IMAGE: &str = "busybox:stable";
pub const DEFAULT_SKU_LABEL: &str = "suanli.io/sku";
pub const DEFAULT_WORK_DIR: &str = "/suanli/work";
pub const DEFAULT_VOLCANO_QUEUE: &str = "default";

/// After a stop, how long (beyond the kill grace) to wait for the pods to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// Consecutive polls without the Job before it counts as deleted by someone else.
const VANISHED_AFTER_POLLS: u32 = 3;
/// The agent's own wall-time stop, this long after Kubernetes' deadline should have fired.
const WALLTIME_SLACK: Duration = Duration::from_secs(30);
/// Most log bytes read per pod per poll.
const LOG_READ_LIMIT: usize = 4 * 1024 * 1024;
/// Most reads per pod for the last of its output.
const FINAL_LOG_READS: usize = 16;

/// How the agent drives Kubernetes. The API server and credentials come from the environment as
/// for `kubectl`: `KUBECONFIG` or `~/.kube/config`, else the pod's service account in a cluster.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// The namespace for the attempts' objects; `None`: the kubeconfig context's (else `default`).
    pub namespace: Option<String>,
    /// The container image a job's command runs in; `None`: [`DEFAULT_IMAGE`].
    pub image: Option<String>,
    /// Images per software stack (`cuda`, `cann`, ...), before `image`.
    pub images: BTreeMap<String, String>,
    /// The node label whose value is the node's SKU; `None`: [`DEFAULT_SKU_LABEL`].
    pub sku_label_key: Option<String>,
    /// Device resource names per SKU, before the catalog's (`chips.csv` `k8s_resource`).
    pub resources: BTreeMap<String, String>,
    /// The center runs Volcano: gangs become Volcano Jobs.
    pub volcano: bool,
    /// The Volcano queue; `None`: [`DEFAULT_VOLCANO_QUEUE`].
    pub volcano_queue: Option<String>,
    /// The working directory in the container; `None`: [`DEFAULT_WORK_DIR`].
    pub work_dir: Option<String>,
    /// How often the Job, its pods and their logs are read.
    pub poll_interval: Duration,
    /// Kubernetes deletes a finished Job and its pods this long after it ended.
    pub ttl_after_finished: Duration,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            namespace: None,
            image: None,
            images: BTreeMap::new(),
            sku_label_key: None,
            resources: BTreeMap::new(),
            volcano: false,
            volcano_queue: None,
            work_dir: None,
            poll_interval: Duration::from_secs(2),
            ttl_after_finished: Duration::from_secs(3600),
        }
    }
}

fn parse_pairs(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

impl KubeConfig {
    /// Fills what is unset from the environment: `SUANLI_K8S_NAMESPACE`, `SUANLI_K8S_IMAGE`,
    /// `SUANLI_K8S_IMAGES` (`stack=image,...`), `SUANLI_K8S_SKU_LABEL`, `SUANLI_K8S_RESOURCES`
    /// (`SKU=resource,...`), `SUANLI_K8S_VOLCANO` (`1`/`true`), `SUANLI_K8S_VOLCANO_QUEUE`,
    /// `SUANLI_K8S_WORK_DIR`, `SUANLI_K8S_POLL_MS`, `SUANLI_K8S_TTL_SECS`.
    pub fn with_env(self) -> KubeConfig {
        self.with_vars(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    fn with_vars(mut self, var: impl Fn(&str) -> Option<String>) -> KubeConfig {
        let fill = |field: &mut Option<String>, name: &str| {
            if field.is_none() {
                *field = var(name).map(|v| v.trim().to_string());
            }
        };
        fill(&mut self.namespace, "SUANLI_K8S_NAMESPACE");
        fill(&mut self.image, "SUANLI_K8S_IMAGE");
        fill(&mut self.sku_label_key, "SUANLI_K8S_SKU_LABEL");
        fill(&mut self.volcano_queue, "SUANLI_K8S_VOLCANO_QUEUE");
        fill(&mut self.work_dir, "SUANLI_K8S_WORK_DIR");
        if self.images.is_empty()
            && let Some(v) = var("SUANLI_K8S_IMAGES")
        {
            self.images = parse_pairs(&v);
        }
        if self.resources.is_empty()
            && let Some(v) = var("SUANLI_K8S_RESOURCES")
        {
            self.resources = parse_pairs(&v);
        }
        if !self.volcano
            && let Some(v) = var("SUANLI_K8S_VOLCANO")
        {
            self.volcano = matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            );
        }
        if let Some(ms) = var("SUANLI_K8S_POLL_MS").and_then(|v| v.trim().parse::<u64>().ok()) {
            self.poll_interval = Duration::from_millis(ms.max(50));
        }
        if let Some(s) = var("SUANLI_K8S_TTL_SECS").and_then(|v| v.trim().parse::<u64>().ok()) {
            self.ttl_after_finished = Duration::from_secs(s);
        }
        self
    }

    /// The device resource of `sku`: configured (SKU matched ignoring case), else the catalog's.
    pub fn resource_for(&self, sku: &str) -> Option<String> {
        self.resources
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(sku))
            .map(|(_, v)| v.clone())
            .or_else(|| {
                ChipCatalog::builtin()
                    .get(sku)
                    .map(|c| c.k8s_resource.clone())
                    .filter(|r| !r.is_empty())
            })
    }

    /// The image for jobs on `sku`: the one for its stack, else `image`, else [`DEFAULT_IMAGE`].
    pub fn image_for(&self, sku: &str) -> String {
        ChipCatalog::builtin()
            .get(sku)
            .and_then(|c| self.images.get(&c.stack))
            .or(self.image.as_ref())
            .cloned()
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
    }

    pub fn sku_label_key(&self) -> &str {
        self.sku_label_key.as_deref().unwrap_or(DEFAULT_SKU_LABEL)
    }

    pub fn work_dir(&self) -> &str {
        self.work_dir.as_deref().unwrap_or(DEFAULT_WORK_DIR)
    }

    pub fn volcano_queue(&self) -> &str {
        self.volcano_queue
            .as_deref()
            .unwrap_or(DEFAULT_VOLCANO_QUEUE)
    }
}

/// A failed API call: the message, and whether trying again later may work (the API server is
/// unreachable or overloaded; not the job's fault).
#[derive(Clone, Debug)]
struct ApiFailure {
    message: String,
    transient: bool,
}

fn failure(e: &kube::Error) -> ApiFailure {
    match e {
        kube::Error::Api(s) => ApiFailure {
            message: if s.message.is_empty() {
                format!("{} {}", s.code, s.reason)
            } else {
                s.message.clone()
            },
            // 409: an object of that name is still being deleted (an earlier agent's).
            transient: s.code == 409 || s.code == 429 || s.code >= 500,
        },
        other => ApiFailure {
            message: other.to_string(),
            transient: true,
        },
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Why the agent ended an attempt itself.
#[derive(Clone, Debug)]
enum AgentStop {
    Requested(String),
    Walltime(u64),
}

/// The Job as read: a `batch/v1` Job, or a Volcano Job.
enum Workload {
    Batch(Box<Job>),
    Volcano(serde_json::Value),
}

/// One pod's log as followed by the agent.
#[derive(Default)]
struct PodLog {
    cursor: LogCursor,
    chunker: LineChunker,
    /// All of it was read (the container has ended).
    done: bool,
}

/// Prefixes each line of `text` (`1: `), as `srun --label` does.
fn label_lines(text: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(text.len() + prefix.len());
    for line in text.split_inclusive('\n') {
        out.push_str(prefix);
        out.push_str(line);
    }
    out
}

/// Runs attempts as Kubernetes Jobs.
pub struct KubeBackend {
    cfg: KubeConfig,
    center: String,
    kill_grace: Duration,
    /// Made from the environment on first use (see [`KubeConfig`]), or given ([`KubeBackend::with_client`]).
    client: tokio::sync::Mutex<Option<Client>>,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("center", &self.center)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl KubeBackend {
    /// A backend for `center` that connects with the environment's kubeconfig on first use.
    pub fn new(cfg: KubeConfig, center: &CenterSpec, kill_grace: Duration) -> KubeBackend {
        KubeBackend {
            cfg,
            center: center.id.to_string(),
            kill_grace,
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// A backend over a given client (tests: a mock service).
    pub fn with_client(
        cfg: KubeConfig,
        center: &str,
        kill_grace: Duration,
        client: Client,
    ) -> KubeBackend {
        KubeBackend {
            cfg,
            center: center.to_string(),
            kill_grace,
            client: tokio::sync::Mutex::new(Some(client)),
        }
    }

    async fn client(&self) -> Result<Client, String> {
        let mut c = self.client.lock().await;
        if let Some(c) = c.as_ref() {
            return Ok(c.clone());
        }
        let made = Client::try_default()
            .await
            .map_err(|e| format!("cannot connect to Kubernetes: {e}"))?;
        *c = Some(made.clone());
        Ok(made)
    }

    fn namespace(&self, client: &Client) -> String {
        self.cfg
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string())
    }

    fn vcjob_api(client: &Client, ns: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(
            render::VOLCANO_GROUP,
            render::VOLCANO_VERSION,
            render::VOLCANO_KIND,
        );
        let ar = ApiResource::from_gvk_with_plural(&gvk, render::VOLCANO_PLURAL);
        Api::namespaced_with(client.clone(), ns, &ar)
    }

    fn background() -> DeleteParams {
        DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        }
    }

    /// Deletes Jobs (and Volcano Jobs) that an earlier run of this center's agent left unfinished,
    /// and its ConfigMaps: the hub has requeued their attempts. Returns the deleted Jobs' names.
    pub async fn cancel_orphans(&self) -> Result<Vec<String>, String> {
        let client = self.client().await?;
        let ns = self.namespace(&client);
        let sel = ListParams::default().labels(&render::center_selector(&self.center));
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let mut deleted = Vec::new();
        let list = jobs.list(&sel).await.map_err(|e| failure(&e).message)?;
        for j in list.items {
            let finished = j
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                    })
                });
            let Some(name) = j.metadata.name else {
                continue;
            };
            if finished {
                continue;
            }
            match jobs.delete(&name, &Self::background()).await {
                Ok(_) => deleted.push(name),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(failure(&e).message),
            }
        }
        if self.cfg.volcano {
            let vc = Self::vcjob_api(&client, &ns);
            let list = vc.list(&sel).await.map_err(|e| failure(&e).message)?;
            for j in list.items {
                let phase = j.data["status"]["state"]["phase"].as_str().unwrap_or("");
                let Some(name) = j.metadata.name else {
                    continue;
                };
                if matches!(phase, "Completed" | "Failed" | "Aborted" | "Terminated") {
                    continue;
                }
                match vc.delete(&name, &Self::background()).await {
                    Ok(_) => deleted.push(name),
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(failure(&e).message),
                }
            }
        }
        let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
        cms.delete_collection(&DeleteParams::default(), &sel)
            .await
            .map_err(|e| failure(&e).message)?;
        Ok(deleted)
    }

    /// Startup: deletes what an earlier run left (see [`KubeBackend::cancel_orphans`]).
    pub async fn startup(&self) {
        match self.cancel_orphans().await {
            Ok(names) if !names.is_empty() => tracing::warn!(
                center = %self.center,
                jobs = ?names,
                "deleted Kubernetes Jobs left by an earlier run of this agent (the hub requeues their jobs)"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for Kubernetes Jobs left by an earlier run")
            }
        }
    }

    /// The center's nodes as Kubernetes has them (see [`status::inventory_from_nodes`]). Devices in
    /// use are counted from the pods of every namespace, or of the agent's namespace only when the
    /// agent may not list all pods.
    pub async fn nodes(&self) -> Result<Vec<NodeInventory>, String> {
        let client = self.client().await?;
        let key = self.cfg.sku_label_key();
        let nodes: Api<Node> = Api::all(client.clone());
        let nodes = nodes
            .list(&ListParams::default().labels(key).match_any())
            .await
            .map_err(|e| format!("cannot list nodes: {}", failure(&e).message))?
            .items;
        // `resourceVersion=0`: served from the API server's cache, not etcd (this runs every heartbeat).
        let active = ListParams::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .match_any();
        let pods = match Api::<Pod>::all(client.clone()).list(&active).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                let ns = self.namespace(&client);
                Api::<Pod>::namespaced(client, &ns)
                    .list(&active)
                    .await
                    .map_err(|e| format!("cannot list pods: {}", failure(&e).message))?
                    .items
            }
            Err(e) => return Err(format!("cannot list pods: {}", failure(&e).message)),
        };
        Ok(status::inventory_from_nodes(&nodes, &pods, key, |s| {
            self.cfg.resource_for(s)
        }))
    }

    /// One read of a pod's log, as bytes (output need not be UTF-8, which `Api::logs` requires);
    /// `Err((not_found, message))`.
    async fn fetch_log(
        client: &Client,
        ns: &str,
        pod: &str,
        lp: &LogParams,
    ) -> Result<Vec<u8>, (bool, String)> {
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{ns}/pods"))
            .logs(pod, lp)
            .map_err(|e| (false, e.to_string()))?;
        let res = client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| (false, failure(&e).message))?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| (false, e.to_string()))?;
        if status.is_success() {
            Ok(bytes.to_vec())
        } else {
            let text = String::from_utf8_lossy(&bytes);
            Err((status.as_u16() == 404, format!("{status}: {}", text.trim())))
        }
    }

    /// Reads what is new in a pod's log and emits it; all of it when the container has ended.
    async fn read_log(
        client: &Client,
        ns: &str,
        name: &str,
        log: &mut PodLog,
        prefix: Option<&str>,
        terminated: bool,
        sink: &mut LogSink,
    ) {
        let reads = if terminated { FINAL_LOG_READS } else { 1 };
        for _ in 0..reads {
            let lp = LogParams {
                container: Some(render::CONTAINER.into()),
                timestamps: true,
                since_time: log.cursor.since(),
                limit_bytes: Some(LOG_READ_LIMIT as i64),
                ..Default::default()
            };
            let body = match Self::fetch_log(client, ns, name, &lp).await {
                Ok(b) => b,
                Err((not_found, message)) => {
                    if not_found {
                        // The pod is gone, and its log with it.
                        if terminated {
                            for c in log.chunker.finish() {
                                sink.emit(Stream::Stdout, c);
                            }
                            log.done = true;
                        }
                    } else {
                        tracing::debug!(pod = name, error = %message, "reading the pod's log failed");
                    }
                    return;
                }
            };
            let cut = body.len() >= LOG_READ_LIMIT;
            let text = log
                .cursor
                .take(&String::from_utf8_lossy(&body), terminated && !cut);
            let text = match prefix {
                Some(p) if !text.is_empty() => label_lines(&text, p),
                _ => text,
            };
            for c in log.chunker.push(text.as_bytes()) {
                sink.emit(Stream::Stdout, c);
            }
            for c in log.chunker.tick() {
                sink.emit(Stream::Stdout, c);
            }
            if !cut {
                break;
            }
        }
        if terminated {
            for c in log.chunker.finish() {
                sink.emit(Stream::Stdout, c);
            }
            log.done = true;
        }
    }

    async fn run_kube(&self, launch: Launch, mut logs: LogSink, mut stop: StopSignal) -> RunResult {
        let r = launch.attempt;
        let result = |outcome, exit_code, message: String, logs: &LogSink| RunResult {
            outcome,
            exit_code,
            message,
            log_chunks: logs.emitted(),
            span: None,
        };
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => return result(Outcome::Killed, None, e, &logs),
        };
        let sku = ChipCatalog::builtin()
            .get(&launch.sku)
            .map_or_else(|| launch.sku.clone(), |c| c.sku.clone());
        let Some(resource) = self.cfg.resource_for(&sku) else {
            return result(
                Outcome::Failed,
                None,
                format!("no Kubernetes device resource is known for SKU {sku}"),
                &logs,
            );
        };
        if let Some(reason) = stop.requested_now() {
            return result(Outcome::Killed, None, reason, &logs);
        }
        let ns = self.namespace(&client);
        let image = self.cfg.image_for(&sku);
        let args = RenderArgs {
            attempt: r,
            center: &self.center,
            spec: &launch.spec,
            sku: &sku,
            resource: &resource,
            env: &launch.env,
            namespace: &ns,
            image: &image,
            sku_label_key: self.cfg.sku_label_key(),
            work_dir: self.cfg.work_dir(),
            kill_grace_secs: i64::try_from(self.kill_grace.as_secs()).unwrap_or(i64::MAX),
            ttl_after_finished_secs: Some(
                i32::try_from(self.cfg.ttl_after_finished.as_secs()).unwrap_or(i32::MAX),
            ),
            volcano_queue: self.cfg.volcano_queue(),
        };
        let name = render::object_name(r);
        let volcano = self.cfg.volcano && launch.spec.nodes > 1;
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let vcjobs = Self::vcjob_api(&client, &ns);
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

        let refused = |what: &str, f: ApiFailure, logs: &LogSink| {
            if f.transient {
                result(
                    Outcome::Killed,
                    None,
                    format!(
                        "Kubernetes is unreachable, the {what} was not created: {}",
                        f.message
                    ),
                    logs,
                )
            } else {
                result(
                    Outcome::Failed,
                    None,
                    format!("Kubernetes refused the {what}: {}", f.message),
                    logs,
                )
            }
        };
        let configmap = render::render_configmap(&args);
        if let Some(cm) = &configmap
            && let Err(e) = cms.create(&PostParams::default(), cm).await
        {
            return refused("ConfigMap with the working files", failure(&e), &logs);
        }
        let created = if volcano {
            match serde_json::from_value::<DynamicObject>(render::render_vcjob(&args)) {
                Ok(obj) => vcjobs
                    .create(&PostParams::default(), &obj)
                    .await
                    .map(|_| ()),
                Err(e) => Err(kube::Error::SerdeError(e)),
            }
        } else {
            jobs.create(&PostParams::default(), &render::render_job(&args))
                .await
                .map(|_| ())
        };
        if let Err(e) = created {
            if configmap.is_some() {
                let _ = cms
                    .delete(&render::files_name(r), &DeleteParams::default())
                    .await;
            }
            return refused(
                if volcano { "Volcano Job" } else { "Job" },
                failure(&e),
                &logs,
            );
        }
        tracing::info!(job = %r.job, attempt = r.attempt, k8s_job = %name, namespace = %ns, volcano, resource = %resource, "submitted to Kubernetes");

        let selector = ListParams::default().labels(&render::attempt_selector(r));
        let gang = launch.spec.nodes > 1;
        let mut seen: BTreeMap<String, k8s_openapi::api::core::v1::Pod> = BTreeMap::new();
        let mut plogs: BTreeMap<String, PodLog> = BTreeMap::new();
        let mut tick = tokio::time::interval(self.cfg.poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let far = || Instant::now() + Duration::from_secs(86_400 * 365);
        let mut agent_stop: Option<AgentStop> = None;
        let mut walltime_at: Option<Instant> = None;
        let mut give_up_at: Option<Instant> = None;
        let mut seen_start: Option<Timestamp> = None;
        let mut misses = 0u32;
        let mut failing = false;
        let mut last_pending: Option<String> = None;
        let ending: Ending = loop {
            tokio::select! {
                _ = tick.tick() => {}
                reason = stop.requested(), if agent_stop.is_none() => {
                    tracing::info!(job = %r.job, attempt = r.attempt, k8s_job = %name, "deleting the Job");
                    agent_stop = Some(AgentStop::Requested(reason));
                    give_up_at = Some(Instant::now() + self.kill_grace + CANCEL_WAIT);
                    self.delete_workload(&jobs, &vcjobs, &name, volcano).await;
                }
                () = tokio::time::sleep_until(walltime_at.unwrap_or_else(far)), if walltime_at.is_some() && agent_stop.is_none() => {
                    tracing::info!(job = %r.job, attempt = r.attempt, k8s_job = %name, "wall time reached: deleting the Job");
                    agent_stop = Some(AgentStop::Walltime(launch.spec.walltime));
                    give_up_at = Some(Instant::now() + self.kill_grace + CANCEL_WAIT);
                    self.delete_workload(&jobs, &vcjobs, &name, volcano).await;
                }
            }
            // One poll: the Job, its pods, their new log lines.
            let workload = if volcano {
                vcjobs.get_opt(&name).await.map(|o| {
                    o.map(|d| Workload::Volcano(serde_json::to_value(d).unwrap_or_default()))
                })
            } else {
                jobs.get_opt(&name)
                    .await
                    .map(|o| o.map(|j| Workload::Batch(Box::new(j))))
            };
            let listed = pods.list(&selector).await;
            let (workload, listed) = match (workload, listed) {
                (Ok(w), Ok(l)) => (w, l.items),
                (Err(e), _) | (_, Err(e)) => {
                    if !failing {
                        tracing::warn!(k8s_job = %name, error = %failure(&e).message, "cannot read the Job from Kubernetes; retrying");
                        failing = true;
                    }
                    if give_up_at.is_some_and(|t| Instant::now() >= t) {
                        break self.gave_up(agent_stop.as_ref(), &name);
                    }
                    continue;
                }
            };
            if failing {
                tracing::info!(k8s_job = %name, "Kubernetes answers again");
                failing = false;
            }
            let listed_names: Vec<String> = listed
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            for p in listed {
                if let Some(n) = p.metadata.name.clone() {
                    seen.insert(n, p);
                }
            }
            let mut order: Vec<&Pod> = seen
                .values()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_ref()
                        .is_some_and(|n| listed_names.contains(n))
                })
                .filter(|p| status::container_started(p))
                .collect();
            order.sort_by_key(|p| (status::pod_index(p), p.metadata.name.clone()));
            for p in order {
                let pname = p.metadata.name.clone().unwrap_or_default();
                let log = plogs.entry(pname.clone()).or_default();
                if log.done {
                    continue;
                }
                let prefix = gang.then(|| format!("{}: ", status::pod_index(p).unwrap_or(0)));
                Self::read_log(
                    &client,
                    &ns,
                    &pname,
                    log,
                    prefix.as_deref(),
                    status::container_terminated(p),
                    &mut logs,
                )
                .await;
            }
            if seen_start.is_none() && seen.values().any(status::container_started) {
                seen_start = Some(now());
                walltime_at = Some(
                    Instant::now() + Duration::from_secs(launch.spec.walltime) + WALLTIME_SLACK,
                );
                tracing::debug!(k8s_job = %name, "running");
            }

            if let Some(s) = &agent_stop {
                // Stopped by the agent: done once the Job and its pods are gone.
                if workload.is_none() && listed_names.is_empty() {
                    break match s {
                        AgentStop::Requested(reason) => Ending {
                            outcome: Outcome::Killed,
                            exit_code: None,
                            message: reason.clone(),
                            still_active: false,
                        },
                        AgentStop::Walltime(secs) => Ending {
                            outcome: Outcome::TimedOut,
                            exit_code: None,
                            message: format!("wall-time limit of {secs} s reached"),
                            still_active: false,
                        },
                    };
                }
                if give_up_at.is_some_and(|t| Instant::now() >= t) {
                    break self.gave_up(agent_stop.as_ref(), &name);
                }
                continue;
            }
            let Some(workload) = workload else {
                misses += 1;
                if misses >= VANISHED_AFTER_POLLS {
                    break Ending {
                        outcome: Outcome::Failed,
                        exit_code: None,
                        message: format!("the Kubernetes Job {name} was deleted outside suanli"),
                        still_active: false,
                    };
                }
                continue;
            };
            misses = 0;
            let pods_seen: Vec<Pod> = seen.values().cloned().collect();
            let phase = match &workload {
                Workload::Batch(j) => status::map_status(j, &pods_seen),
                Workload::Volcano(v) => status::map_vcjob_status(v, &pods_seen),
            };
            match phase {
                Phase::Pending(reason) => {
                    if reason.is_some() && reason != last_pending {
                        tracing::info!(k8s_job = %name, reason = reason.as_deref().unwrap_or(""), "waiting in Kubernetes");
                        last_pending = reason;
                    }
                }
                Phase::Running => {}
                Phase::Ended(e) => break e,
            }
        };

        let mut ending = ending;
        if ending.still_active {
            self.delete_workload(&jobs, &vcjobs, &name, volcano).await;
        }
        // Whatever output is left of pods that are still there.
        let mut rest: Vec<&Pod> = seen
            .values()
            .filter(|p| status::container_started(p))
            .collect();
        rest.sort_by_key(|p| (status::pod_index(p), p.metadata.name.clone()));
        for p in rest {
            let pname = p.metadata.name.clone().unwrap_or_default();
            let log = plogs.entry(pname.clone()).or_default();
            if !log.done {
                let prefix = gang.then(|| format!("{}: ", status::pod_index(p).unwrap_or(0)));
                Self::read_log(
                    &client,
                    &ns,
                    &pname,
                    log,
                    prefix.as_deref(),
                    true,
                    &mut logs,
                )
                .await;
            }
        }
        if configmap.is_some()
            && let Err(e) = cms
                .delete(&render::files_name(r), &DeleteParams::default())
                .await
            && !is_not_found(&e)
        {
            tracing::warn!(k8s_job = %name, error = %failure(&e).message, "cannot delete the ConfigMap with the working files");
        }
        let pods_seen: Vec<Pod> = seen.values().cloned().collect();
        let (k_start, k_end) = status::span_of(&pods_seen);
        // A deadline that passed before any pod ran: the cluster had no room; let the hub place
        // the job again rather than call it timed out.
        if ending.outcome == Outcome::TimedOut
            && seen_start.is_none()
            && k_start.is_none()
            && matches!(agent_stop, None | Some(AgentStop::Walltime(_)))
        {
            ending.outcome = Outcome::Killed;
            ending.message = format!(
                "no pod started within the wall-time limit{}",
                last_pending
                    .map(|p| format!(" (last: {p})"))
                    .unwrap_or_default()
            );
        }
        let end = k_end.unwrap_or_else(now);
        let start = k_start.or(seen_start).unwrap_or(end);
        let start = Timestamp(start.millis().min(end.millis()));
        tracing::info!(job = %r.job, attempt = r.attempt, k8s_job = %name, outcome = ?ending.outcome, "Kubernetes Job ended");
        RunResult {
            outcome: ending.outcome,
            exit_code: ending.exit_code,
            message: ending.message,
            log_chunks: logs.emitted(),
            span: Some((start, end)),
        }
    }

    fn gave_up(&self, stop: Option<&AgentStop>, name: &str) -> Ending {
        tracing::warn!(k8s_job = %name, "Kubernetes did not confirm the end of a deleted Job in time");
        let (outcome, m) = match stop {
            Some(AgentStop::Walltime(s)) => (
                Outcome::TimedOut,
                format!("wall-time limit of {s} s reached"),
            ),
            Some(AgentStop::Requested(reason)) => (Outcome::Killed, reason.clone()),
            None => (Outcome::Killed, "Kubernetes stopped answering".to_string()),
        };
        Ending {
            outcome,
            exit_code: None,
            message: format!("{m} (Kubernetes had not confirmed the end of Job {name})"),
            still_active: false,
        }
    }

    async fn delete_workload(
        &self,
        jobs: &Api<Job>,
        vcjobs: &Api<DynamicObject>,
        name: &str,
        volcano: bool,
    ) {
        let r = if volcano {
            vcjobs.delete(name, &Self::background()).await.map(|_| ())
        } else {
            jobs.delete(name, &Self::background()).await.map(|_| ())
        };
        if let Err(e) = r
            && !is_not_found(&e)
        {
            tracing::warn!(k8s_job = %name, error = %failure(&e).message, "deleting the Job failed");
        }
    }
}

impl Backend for KubeBackend {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn run(&self, launch: Launch, logs: LogSink, stop: StopSignal) -> BoxFuture<'_, RunResult> {
        Box::pin(self.run_kube(launch, logs, stop))
    }

    fn inventory(&self) -> BoxFuture<'_, Option<Result<Vec<NodeInventory>, String>>> {
        Box::pin(async move { Some(self.nodes().await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_environment() {
        let vars = BTreeMap::from([
            ("SUANLI_K8S_NAMESPACE", "ai-jobs"),
            ("SUANLI_K8S_IMAGE", "registry.local/base:1"),
            (
                "SUANLI_K8S_IMAGES",
                "cuda=nvcr.io/nvidia/pytorch:24.05-py3, cann=ascendhub/cann:8.0",
            ),
            ("SUANLI_K8S_SKU_LABEL", "node.example.com/accelerator"),
            ("SUANLI_K8S_RESOURCES", "Ascend910B3=huawei.com/Ascend910B"),
            ("SUANLI_K8S_VOLCANO", "true"),
            ("SUANLI_K8S_VOLCANO_QUEUE", "ai"),
            ("SUANLI_K8S_WORK_DIR", "/workspace"),
            ("SUANLI_K8S_POLL_MS", "500"),
            ("SUANLI_K8S_TTL_SECS", "60"),
        ]);
        let c = KubeConfig::default().with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(c.namespace.as_deref(), Some("ai-jobs"));
        assert_eq!(c.image_for("RTX4090"), "nvcr.io/nvidia/pytorch:24.05-py3");
        assert_eq!(c.image_for("ascend910b3"), "ascendhub/cann:8.0");
        assert_eq!(c.image_for("MLU590"), "registry.local/base:1");
        assert_eq!(c.sku_label_key(), "node.example.com/accelerator");
        assert_eq!(
            c.resource_for("ASCEND910B3").as_deref(),
            Some("huawei.com/Ascend910B")
        );
        assert_eq!(
            c.resource_for("MLU590").as_deref(),
            Some("cambricon.com/mlu")
        );
        assert_eq!(c.resource_for("K100-AI").as_deref(), Some("hygon.com/dcu"));
        assert_eq!(c.resource_for("NoSuchChip"), None);
        assert!(c.volcano);
        assert_eq!(c.volcano_queue(), "ai");
        assert_eq!(c.work_dir(), "/workspace");
        assert_eq!(c.poll_interval, Duration::from_millis(500));
        assert_eq!(c.ttl_after_finished, Duration::from_secs(60));

        // What is set already wins; the defaults.
        let set = KubeConfig {
            namespace: Some("mine".into()),
            ..Default::default()
        };
        let c = set.with_vars(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(c.namespace.as_deref(), Some("mine"));
        let c = KubeConfig::default().with_vars(|_| None);
        assert_eq!(c.image_for("RTX4090"), DEFAULT_IMAGE);
        assert_eq!(c.sku_label_key(), DEFAULT_SKU_LABEL);
        assert_eq!(c.work_dir(), DEFAULT_WORK_DIR);
        assert_eq!(
            c.resource_for("H100-SXM").as_deref(),
            Some("nvidia.com/gpu")
        );
        assert!(!c.volcano);
        assert_eq!(c.poll_interval, Duration::from_secs(2));
    }

    #[test]
    fn gang_lines_are_labelled() {
        assert_eq!(label_lines("a\nb\n", "1: "), "1: a\n1: b\n");
        assert_eq!(label_lines("tail", "0: "), "0: tail");
    }

    /// The TLS stack builds without aws-lc-rs: a client for an https server can be made (nothing is
    /// sent).
    #[tokio::test]
    async fn https_client_builds_with_ring() {
        let cfg = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let client = Client::try_from(cfg).expect("client with rustls and ring");
        assert_eq!(client.default_namespace(), "default");
    }
}

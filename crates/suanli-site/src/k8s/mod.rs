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
//!   on; [`podlog::LogCursor`] drops what was read before. A gang's lines are prefixed with the
//!   pod's index (`1: ...`), as `srun --label` does.
//! - **Stop**: DELETE the Job (propagation `Background`), then wait until it and its pods are gone
//!   (the pods' `terminationGracePeriodSeconds` is the kill grace).
//! - **Metering**: from the job containers' start and end times in the pod statuses.
//! - **Inventory**: nodes with the SKU label, their allocatable devices, less those held by
//!   unfinished pods ([`nodes::inventory_from_nodes`]).
//!
//! The attempt supervisor ([`crate::supervisor`]) drives it like every backend; the agent's own
//! wall-time stop comes 30 s after Kubernetes' deadline should have fired.
//!
//! What was and was not tested against a real cluster: see `docs/KUBERNETES.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
    PropagationPolicy,
};
use suanli_proto::{AttemptRef, NodeInventory, Outcome};
use suanli_types::{BackendKind, CenterSpec, ChipCatalog};

use crate::AgentConfig;
use crate::backend::{
    Backend, BackendEntry, BoxFuture, Exit, Launch, Pace, Phase, Runner, Setting, Span,
    SubmitError, startup_checks, supervised,
};
use crate::logs::LogSink;

mod config;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod mock_test;
pub mod nodes;
pub mod podlog;
pub mod render;
pub mod status;

pub use config::{
    DEFAULT_IMAGE, DEFAULT_SKU_LABEL, DEFAULT_VOLCANO_QUEUE, DEFAULT_WORK_DIR, KubeConfig,
};
use podlog::PodLog;
use render::RenderArgs;

/// After a stop, how long (beyond the kill grace) to wait for the pods to be gone.
const CANCEL_WAIT: Duration = Duration::from_secs(30);
/// The agent's own wall-time stop, this long after Kubernetes' deadline should have fired.
const WALLTIME_SLACK: Duration = Duration::from_secs(30);

/// Configured by `config.kube`, then the settings; started with its sweep (see
/// [`KubeBackend::startup`]): before any job of this run is created (the sweep must not see them),
/// and bounded.
fn start<'a>(
    center: &'a CenterSpec,
    config: &'a AgentConfig,
) -> BoxFuture<'a, Result<Arc<dyn Runner>, crate::SiteError>> {
    let cfg = config.kube.clone().with_vars(|k| config.setting(k));
    let b = KubeBackend::new(cfg, center, config.kill_grace);
    Box::pin(async move {
        startup_checks("Kubernetes", b.startup()).await;
        Ok(supervised(b, config))
    })
}

/// The Kubernetes backend in the registry ([`crate::BACKENDS`]).
pub(crate) const BACKEND: BackendEntry = BackendEntry {
    kind: BackendKind::Kubernetes,
    settings: &[
        Setting {
            flag: "k8s-namespace",
            env: "SUANLI_K8S_NAMESPACE",
            help: "namespace of the attempts' objects (default: the kubeconfig context's)",
        },
        Setting {
            flag: "k8s-image",
            env: "SUANLI_K8S_IMAGE",
            help: "container image the jobs run in (default: busybox:stable)",
        },
        Setting {
            flag: "k8s-images",
            env: "SUANLI_K8S_IMAGES",
            help: "images per software stack, stack=image,... (cuda=nvcr.io/nvidia/pytorch:24.05-py3)",
        },
        Setting {
            flag: "k8s-sku-label",
            env: "SUANLI_K8S_SKU_LABEL",
            help: "node label whose value is the node's SKU (default: suanli.io/sku)",
        },
        Setting {
            flag: "k8s-resources",
            env: "SUANLI_K8S_RESOURCES",
            help: "device resource per SKU, SKU=resource,... (default: the chip catalog's)",
        },
        Setting {
            flag: "k8s-volcano",
            env: "SUANLI_K8S_VOLCANO",
            help: "the center runs Volcano: gangs become Volcano Jobs (1/true)",
        },
        Setting {
            flag: "k8s-volcano-queue",
            env: "SUANLI_K8S_VOLCANO_QUEUE",
            help: "the Volcano queue (default: default)",
        },
        Setting {
            flag: "k8s-work-dir",
            env: "SUANLI_K8S_WORK_DIR",
            help: "working directory in the container (default: /suanli/work)",
        },
        Setting {
            flag: "k8s-poll-ms",
            env: "SUANLI_K8S_POLL_MS",
            help: "how often a Job, its pods and their logs are read, in milliseconds (default 2000)",
        },
        Setting {
            flag: "k8s-ttl-secs",
            env: "SUANLI_K8S_TTL_SECS",
            help: "Kubernetes deletes a finished Job this long after it ended (default 3600)",
        },
    ],
    start,
};

/// A failed API call: the message, and whether trying again later may work (the API server is
/// unreachable or overloaded; not the job's fault).
#[derive(Clone, Debug)]
pub(crate) struct ApiFailure {
    pub message: String,
    pub transient: bool,
}

pub(crate) fn failure(e: &kube::Error) -> ApiFailure {
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

/// The Job as read: a `batch/v1` Job, or a Volcano Job.
enum Workload {
    Batch(Box<Job>),
    Volcano(serde_json::Value),
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

    /// The center's nodes as Kubernetes has them (see [`nodes::inventory_from_nodes`]). Devices in
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
        Ok(nodes::inventory_from_nodes(&nodes, &pods, key, |s| {
            self.cfg.resource_for(s)
        }))
    }

    async fn delete_workload(&self, a: &KubeAttempt) {
        tracing::info!(job = %a.attempt.job, attempt = a.attempt.attempt, k8s_job = %a.name, "deleting the Job");
        let r = if a.volcano {
            a.vcjobs
                .delete(&a.name, &Self::background())
                .await
                .map(|_| ())
        } else {
            a.jobs
                .delete(&a.name, &Self::background())
                .await
                .map(|_| ())
        };
        if let Err(e) = r
            && !is_not_found(&e)
        {
            tracing::warn!(k8s_job = %a.name, error = %failure(&e).message, "deleting the Job failed");
        }
    }
}

/// One attempt's Kubernetes Job (or Volcano Job) and its pods.
pub struct KubeAttempt {
    attempt: AttemptRef,
    name: String,
    client: Client,
    ns: String,
    volcano: bool,
    /// More than one pod: log lines are labelled with the pod's index.
    gang: bool,
    jobs: Api<Job>,
    vcjobs: Api<DynamicObject>,
    pods: Api<Pod>,
    cms: Api<ConfigMap>,
    /// A ConfigMap with the working files was created.
    configmap: bool,
    /// Every pod of the attempt, as last seen (also those gone since).
    seen: BTreeMap<String, Pod>,
    /// The pods of the last listing.
    listed: Vec<String>,
    logs: BTreeMap<String, PodLog>,
    /// The agent deleted the Job.
    deleted: bool,
    /// It ended while Kubernetes still runs it (a pod that can never start): deleted at the end.
    still_active: bool,
}

impl fmt::Display for KubeAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kubernetes Job {}", self.name)
    }
}

impl KubeAttempt {
    /// The started pods, among those of the last listing only or all seen, in index order.
    fn started(&self, listed_only: bool) -> Vec<(String, Option<u32>, bool)> {
        let mut out: Vec<(String, Option<u32>, bool)> = self
            .seen
            .iter()
            .filter(|(n, _)| !listed_only || self.listed.contains(n))
            .filter(|(_, p)| status::container_started(p))
            .map(|(n, p)| {
                (
                    n.clone(),
                    status::pod_index(p),
                    status::container_terminated(p),
                )
            })
            .collect();
        out.sort_by_key(|(n, i, _)| (*i, n.clone()));
        out
    }

    /// Reads what is new in the logs of `pods` (name, index, ended).
    async fn read_logs(&mut self, pods: Vec<(String, Option<u32>, bool)>, sink: &mut LogSink) {
        let gang = self.gang;
        for (pod, index, ended) in pods {
            let log = self.logs.entry(pod.clone()).or_default();
            if log.done {
                continue;
            }
            let prefix = gang.then(|| format!("{}: ", index.unwrap_or(0)));
            podlog::read_log(
                &self.client,
                &self.ns,
                &pod,
                log,
                prefix.as_deref(),
                ended,
                sink,
            )
            .await;
        }
    }
}

impl Backend for KubeBackend {
    type Job = KubeAttempt;

    fn pace(&self) -> Pace {
        Pace {
            logs: None,
            walltime_slack: WALLTIME_SLACK,
            ..Pace::new(self.cfg.poll_interval, CANCEL_WAIT)
        }
    }

    async fn submit(&self, launch: &Launch) -> Result<KubeAttempt, SubmitError> {
        let r = launch.attempt;
        let client = self.client().await.map_err(SubmitError::transient)?;
        let sku = ChipCatalog::builtin()
            .get(&launch.sku)
            .map_or_else(|| launch.sku.clone(), |c| c.sku.clone());
        let resource = self.cfg.resource_for(&sku).ok_or_else(|| {
            SubmitError::failed(format!(
                "no Kubernetes device resource is known for SKU {sku}"
            ))
        })?;
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
        let a = KubeAttempt {
            attempt: r,
            jobs: Api::namespaced(client.clone(), &ns),
            vcjobs: Self::vcjob_api(&client, &ns),
            pods: Api::namespaced(client.clone(), &ns),
            cms: Api::namespaced(client.clone(), &ns),
            configmap: !launch.spec.files.is_empty(),
            name,
            client,
            ns: ns.clone(),
            volcano,
            gang: launch.spec.nodes > 1,
            seen: BTreeMap::new(),
            listed: Vec::new(),
            logs: BTreeMap::new(),
            deleted: false,
            still_active: false,
        };
        let refused = |what: &str, e: &kube::Error| {
            let f = failure(e);
            if f.transient {
                SubmitError::transient(format!(
                    "Kubernetes is unreachable, the {what} was not created: {}",
                    f.message
                ))
            } else {
                SubmitError::failed(format!("Kubernetes refused the {what}: {}", f.message))
            }
        };
        if let Some(cm) = render::render_configmap(&args)
            && let Err(e) = a.cms.create(&PostParams::default(), &cm).await
        {
            return Err(refused("ConfigMap with the working files", &e));
        }
        let created = if volcano {
            match serde_json::from_value::<DynamicObject>(render::render_vcjob(&args)) {
                Ok(obj) => a
                    .vcjobs
                    .create(&PostParams::default(), &obj)
                    .await
                    .map(|_| ()),
                Err(e) => Err(kube::Error::SerdeError(e)),
            }
        } else {
            a.jobs
                .create(&PostParams::default(), &render::render_job(&args))
                .await
                .map(|_| ())
        };
        if let Err(e) = created {
            if a.configmap {
                let _ = a
                    .cms
                    .delete(&render::files_name(r), &DeleteParams::default())
                    .await;
            }
            return Err(refused(if volcano { "Volcano Job" } else { "Job" }, &e));
        }
        tracing::info!(job = %r.job, attempt = r.attempt, k8s_job = %a.name, namespace = %a.ns, volcano, resource = %resource, "submitted to Kubernetes");
        Ok(a)
    }

    async fn poll(&self, a: &mut KubeAttempt) -> Result<Option<Phase>, String> {
        let workload = if a.volcano {
            a.vcjobs
                .get_opt(&a.name)
                .await
                .map(|o| o.map(|d| Workload::Volcano(serde_json::to_value(d).unwrap_or_default())))
        } else {
            a.jobs
                .get_opt(&a.name)
                .await
                .map(|o| o.map(|j| Workload::Batch(Box::new(j))))
        };
        let selector = ListParams::default().labels(&render::attempt_selector(a.attempt));
        let listed = a.pods.list(&selector).await;
        let (workload, listed) = match (workload, listed) {
            (Ok(w), Ok(l)) => (w, l.items),
            (Err(e), _) | (_, Err(e)) => return Err(failure(&e).message),
        };
        a.listed = listed
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        for p in listed {
            if let Some(n) = p.metadata.name.clone() {
                a.seen.insert(n, p);
            }
        }
        let running = if a.seen.values().any(status::container_started) {
            Phase::Running { since: None }
        } else {
            Phase::Waiting(None)
        };
        if a.deleted {
            // Stopped by the agent: done once the Job and its pods are gone.
            let gone = workload.is_none() && a.listed.is_empty();
            return Ok(Some(if gone {
                Phase::Ended(Exit::cancelled(Outcome::Killed, None, "deleted"))
            } else {
                running
            }));
        }
        let Some(workload) = workload else {
            return Ok(Some(Phase::Gone(format!(
                "the Kubernetes Job {} was deleted outside suanli",
                a.name
            ))));
        };
        let pods: Vec<Pod> = a.seen.values().cloned().collect();
        let phase = match &workload {
            Workload::Batch(j) => status::map_status(j, &pods),
            Workload::Volcano(v) => status::map_vcjob_status(v, &pods),
        };
        Ok(Some(match phase {
            status::Phase::Pending(reason) => Phase::Waiting(reason),
            status::Phase::Running => running,
            status::Phase::Ended(e) => {
                a.still_active = e.still_active;
                Phase::Ended(Exit::new(e.outcome, e.exit_code, e.message))
            }
        }))
    }

    async fn cancel(&self, a: &mut KubeAttempt, force: bool) {
        // The pods' termination grace period is the kill grace: nothing more to do when it is over.
        if !force {
            self.delete_workload(a).await;
            a.deleted = true;
        }
    }

    async fn logs(&self, a: &mut KubeAttempt, sink: &mut LogSink) {
        let pods = a.started(true);
        a.read_logs(pods, sink).await;
    }

    async fn finish(&self, mut a: KubeAttempt, sink: &mut LogSink) -> Span {
        if a.still_active {
            self.delete_workload(&a).await;
        }
        // Whatever output is left of pods that are still there.
        let rest = a
            .started(false)
            .into_iter()
            .map(|(n, i, _)| (n, i, true))
            .collect();
        a.read_logs(rest, sink).await;
        if a.configmap
            && let Err(e) = a
                .cms
                .delete(&render::files_name(a.attempt), &DeleteParams::default())
                .await
            && !is_not_found(&e)
        {
            tracing::warn!(k8s_job = %a.name, error = %failure(&e).message, "cannot delete the ConfigMap with the working files");
        }
        let pods: Vec<Pod> = a.seen.values().cloned().collect();
        status::span_of(&pods)
    }

    async fn inventory(&self) -> Option<Result<Vec<NodeInventory>, String>> {
        Some(self.nodes().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TLS stack builds without aws-lc-rs: a client for an https server can be made (nothing is
    /// sent).
    #[tokio::test]
    async fn https_client_builds_with_ring() {
        let cfg = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        let client = Client::try_from(cfg).expect("client with rustls and ring");
        assert_eq!(client.default_namespace(), "default");
    }
}

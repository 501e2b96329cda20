//! API objects as a Kubernetes 1.33 API server returns them (shapes and fields as recorded from
//! `kubectl get -o json`, names and times made up), for the status and mock-API tests.

use serde_json::{Value, json};

pub const NS: &str = "suanli";
pub const CENTER: &str = "gz-ai-1";

/// `2026-11-20T08:MM:SSZ`.
pub fn at(min: u32, sec: u32) -> String {
    format!("2026-11-20T08:{min:02}:{sec:02}Z")
}

/// A `batch/v1` Job of attempt `job`-`attempt` with `nodes` pods; `status` as the Job controller
/// writes it.
pub fn job(job: i64, attempt: u32, nodes: u32, walltime: u64, status: Value) -> Value {
    let name = format!("suanli-{job}-{attempt}");
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10",
            "resourceVersion": "48213",
            "generation": 1,
            "creationTimestamp": at(0, 0),
            "labels": {
                "suanli.io/attempt": attempt.to_string(),
                "suanli.io/center": CENTER,
                "suanli.io/job": job.to_string()
            },
            "annotations": {"suanli.io/name": "test"}
        },
        "spec": {
            "parallelism": nodes,
            "completions": nodes,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "activeDeadlineSeconds": walltime,
            "ttlSecondsAfterFinished": 3600,
            "manualSelector": false,
            "podReplacementPolicy": "TerminatingOrFailed",
            "suspend": false,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10"}},
            "template": {
                "metadata": {"labels": {"suanli.io/job": job.to_string()}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "job", "image": "busybox:stable", "command": ["sh", "-c", "true"]}]
                }
            }
        },
        "status": status
    })
}

/// Job status: started, `active` pods, `ready` of them.
pub fn active(active: u32, ready: u32) -> Value {
    json!({
        "startTime": at(0, 1),
        "active": active,
        "ready": ready,
        "terminating": 0,
        "uncountedTerminatedPods": {}
    })
}

/// Job status with a final condition (`Complete` or `Failed`), as 1.33 writes it: the interim
/// condition (`SuccessCriteriaMet`/`FailureTarget`) first.
pub fn finished(kind: &str, reason: &str, message: &str, succeeded: u32, failed: u32) -> Value {
    let interim = if kind == "Complete" {
        "SuccessCriteriaMet"
    } else {
        "FailureTarget"
    };
    json!({
        "startTime": at(0, 1),
        "completionTime": if kind == "Complete" { json!(at(0, 30)) } else { Value::Null },
        "succeeded": succeeded,
        "failed": failed,
        "ready": 0,
        "terminating": 0,
        "completedIndexes": if succeeded > 0 { json!("0") } else { Value::Null },
        "uncountedTerminatedPods": {},
        "conditions": [
            {
                "type": interim, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": at(0, 30), "lastTransitionTime": at(0, 30)
            },
            {
                "type": kind, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": at(0, 30), "lastTransitionTime": at(0, 30)
            }
        ]
    })
}

/// The job container's state.
pub fn running(started: &str) -> Value {
    json!({"running": {"startedAt": started}})
}

pub fn terminated(code: i32, reason: &str, started: &str, finished: &str) -> Value {
    json!({"terminated": {
        "exitCode": code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": finished,
        "containerID": "containerd://6f1c0d2b9e8a"
    }})
}

pub fn waiting(reason: &str, message: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": message}})
}

/// Pod `index` of attempt `job`-`attempt` on `node`, in `phase`, its job container in `state`
/// (`None`: not created yet). `resource` and `cards` are the container's device limit.
#[allow(clippy::too_many_arguments)]
pub fn pod(
    job: i64,
    attempt: u32,
    index: u32,
    node: Option<&str>,
    phase: &str,
    state: Option<Value>,
    resource: &str,
    cards: u32,
) -> Value {
    let jname = format!("suanli-{job}-{attempt}");
    let name = format!("{jname}-{index}-x7k2p");
    let mut conditions = vec![json!({
        "type": "PodScheduled",
        "status": if node.is_some() { "True" } else { "False" },
        "lastProbeTime": null,
        "lastTransitionTime": at(0, 1)
    })];
    if node.is_none() {
        conditions[0]["reason"] = json!("Unschedulable");
        conditions[0]["message"] = json!(format!(
            "0/6 nodes are available: 2 Insufficient {resource}, 4 node(s) didn't match Pod's node affinity/selector. preemption: 0/6 nodes are available: 2 No preemption victims found for incoming pod, 4 Preemption is not helpful for scheduling."
        ));
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "qosClass": "BestEffort",
    });
    if node.is_some() {
        status["hostIP"] = json!("192.0.2.13");
        status["startTime"] = json!(at(0, 1));
    }
    if let Some(s) = state {
        let ready = s.get("running").is_some();
        status["containerStatuses"] = json!([{
            "name": "job",
            "image": "docker.io/library/busybox:stable",
            "imageID": "docker.io/library/busybox@sha256:9ae97d36d26566ff84e8893c64a6dc4fe8ca6d1144bf5b87b2b85a32def253c7",
            "containerID": "containerd://6f1c0d2b9e8a",
            "ready": ready,
            "restartCount": 0,
            "started": ready,
            "state": s,
            "lastState": {}
        }]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": format!("{jname}-{index}-"),
            "namespace": NS,
            "uid": format!("0c9d2e4f-1a3b-4c5d-8e7f-00000000000{index}"),
            "resourceVersion": "48250",
            "creationTimestamp": at(0, 1),
            "labels": {
                "batch.kubernetes.io/controller-uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10",
                "batch.kubernetes.io/job-completion-index": index.to_string(),
                "batch.kubernetes.io/job-name": jname,
                "controller-uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10",
                "job-name": jname,
                "suanli.io/attempt": attempt.to_string(),
                "suanli.io/center": CENTER,
                "suanli.io/job": job.to_string()
            },
            "annotations": {"batch.kubernetes.io/job-completion-index": index.to_string()},
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": jname,
                "uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10",
                "controller": true, "blockOwnerDeletion": true
            }],
            "finalizers": ["batch.kubernetes.io/job-tracking"]
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "nodeSelector": {"suanli.io/sku": "RTX4090"},
            "containers": [{
                "name": "job",
                "image": "busybox:stable",
                "command": ["sh", "-c", "true"],
                "resources": {
                    "limits": {resource: cards.to_string()},
                    "requests": {resource: cards.to_string()}
                }
            }]
        },
        "status": status
    })
}

/// A `PodList` / `JobList` / `NodeList` of `items`.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    let api_version = if kind == "JobList" { "batch/v1" } else { "v1" };
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": "48260"},
        "items": items
    })
}

/// A node labelled with `sku`, `cards` allocatable devices of `resource`.
pub fn node(
    name: &str,
    sku: &str,
    resource: &str,
    cards: u32,
    ready: bool,
    cordoned: bool,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": "7e1f0000-0000-4000-8000-000000000001",
            "resourceVersion": "47001",
            "creationTimestamp": "2026-10-01T00:00:00Z",
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "suanli.io/sku": sku
            }
        },
        "spec": {"unschedulable": cordoned, "podCIDR": "10.244.3.0/24"},
        "status": {
            "capacity": {"cpu": "96", "memory": "1056742Mi", "pods": "110", resource: cards.to_string()},
            "allocatable": {"cpu": "95900m", "memory": "1056639Mi", "pods": "110", resource: cards.to_string()},
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "Ready", "status": if ready { "True" } else { "Unknown" },
                 "reason": if ready { "KubeletReady" } else { "NodeStatusUnknown" }}
            ],
            "nodeInfo": {"kubeletVersion": "v1.33.4", "containerRuntimeVersion": "containerd://1.7.27"}
        }
    })
}

/// The API server's `Status` for a failed call.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    })
}

/// The API server's `Status` for a DELETE that took effect at once.
pub fn deleted(kind: &str, name: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": "batch", "kind": kind, "uid": "5b0f3c1e-8d2a-4f0b-9c61-2f4e7a9d1c10"}
    })
}

/// The pods of attempt `job`-`attempt` on nodes `node` holding `cards` of `resource` each.
#[derive(Clone, Copy, Debug)]
pub struct Gang {
    pub job: i64,
    pub attempt: u32,
    pub node: &'static str,
    pub resource: &'static str,
    pub cards: u32,
}

/// Attempt `job`-`attempt` on `node`, 4 cards of `resource` per pod.
pub const fn gang(job: i64, attempt: u32, node: &'static str, resource: &'static str) -> Gang {
    Gang {
        job,
        attempt,
        node,
        resource,
        cards: 4,
    }
}

impl Gang {
    /// Pod `index` in `phase`, its job container in `state`.
    pub fn pod(&self, index: u32, phase: &str, state: Option<Value>) -> Value {
        pod(
            self.job,
            self.attempt,
            index,
            Some(self.node),
            phase,
            state,
            self.resource,
            self.cards,
        )
    }

    /// The attempt's `batch/v1` Job with `nodes` pods.
    pub fn job(&self, nodes: u32, walltime: u64, status: Value) -> Value {
        job(self.job, self.attempt, nodes, walltime, status)
    }

    /// The Job's API path.
    pub fn job_path(&self) -> String {
        format!(
            "/apis/batch/v1/namespaces/{NS}/jobs/suanli-{}-{}",
            self.job, self.attempt
        )
    }

    /// The log path of pod `index`.
    pub fn log_path(&self, index: u32) -> String {
        format!(
            "/api/v1/namespaces/{NS}/pods/suanli-{}-{}-{index}-x7k2p/log",
            self.job, self.attempt
        )
    }
}

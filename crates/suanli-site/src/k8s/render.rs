//! Pure rendering: one attempt as Kubernetes objects (a `batch/v1` Job, or a Volcano Job for gangs
//! on a center that runs Volcano, and a ConfigMap with the working files).
//!
//! Nothing here talks to an API server; the snapshot tests compare the rendered objects with the
//! reviewed files in `snapshots/`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec as K8sJobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    KeyToPath, ObjectFieldSelector, PodSpec, PodTemplateSpec, ResourceRequirements, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use suanli_proto::AttemptRef;
use suanli_types::JobSpec;

use crate::env::{DEVICE_VARS, shell_quote};

/// Label: the suanli job id.
pub const LABEL_JOB: &str = "suanli.io/job";
/// Label: the attempt number.
pub const LABEL_ATTEMPT: &str = "suanli.io/attempt";
/// Label: the center whose agent created the object.
pub const LABEL_CENTER: &str = "suanli.io/center";
/// Annotation: the job's name as the tenant gave it.
pub const ANNOTATION_NAME: &str = "suanli.io/name";
/// The job's container (the one whose logs are shipped and whose exit code counts).
pub const CONTAINER: &str = "job";
/// The init container that copies the working files into the work directory.
pub const INIT_CONTAINER: &str = "files";
/// Where the ConfigMap with the working files is mounted (read-only).
pub const FILES_MOUNT: &str = "/suanli/files";
/// Pod annotation with the pod's index in an Indexed `batch/v1` Job.
pub const JOB_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// Pod annotation with the pod's index in its Volcano task.
pub const VOLCANO_INDEX_ANNOTATION: &str = "volcano.sh/task-index";

/// What is rendered for one attempt, beyond the agent's Kubernetes settings.
#[derive(Clone, Debug)]
pub struct RenderArgs<'a> {
    pub attempt: AttemptRef,
    /// The center id (label value).
    pub center: &'a str,
    pub spec: &'a JobSpec,
    /// The SKU as the catalog spells it: the node selector's value.
    pub sku: &'a str,
    /// The vendor's device-plugin resource name (`nvidia.com/gpu`).
    pub resource: &'a str,
    /// The job's environment (see [`crate::env::build_env`]); visible-devices variables and
    /// `SUANLI_WORK_DIR` are replaced (the device plugin chooses the devices).
    pub env: &'a BTreeMap<String, String>,
    pub namespace: &'a str,
    pub image: &'a str,
    /// Node label whose value is the SKU (`suanli.io/sku`).
    pub sku_label_key: &'a str,
    /// The working directory inside the container.
    pub work_dir: &'a str,
    /// Pod `terminationGracePeriodSeconds`: SIGTERM to SIGKILL.
    pub kill_grace_secs: i64,
    /// `ttlSecondsAfterFinished`: Kubernetes deletes a finished Job (and its pods, with their logs)
    /// after this long.
    pub ttl_after_finished_secs: Option<i32>,
    /// The Volcano queue, for [`render_vcjob`].
    pub volcano_queue: &'a str,
}

/// `suanli-<job>-<attempt>`: the Job's (or Volcano Job's) name.
pub fn object_name(a: AttemptRef) -> String {
    format!("suanli-{}-{}", a.job, a.attempt)
}

/// The ConfigMap's name.
pub fn files_name(a: AttemptRef) -> String {
    format!("{}-files", object_name(a))
}

/// The labels on every object of the attempt (Job, ConfigMap, pods).
pub fn labels(a: AttemptRef, center: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_JOB.to_string(), a.job.to_string()),
        (LABEL_ATTEMPT.to_string(), a.attempt.to_string()),
        (LABEL_CENTER.to_string(), center.to_string()),
    ])
}

/// The label selector for the attempt's pods.
pub fn attempt_selector(a: AttemptRef) -> String {
    format!("{LABEL_JOB}={},{LABEL_ATTEMPT}={}", a.job, a.attempt)
}

/// The label selector for everything the center's agent created.
pub fn center_selector(center: &str) -> String {
    format!("{LABEL_CENTER}={center}")
}

fn meta(r: &RenderArgs<'_>, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(r.namespace.to_string()),
        labels: Some(labels(r.attempt, r.center)),
        annotations: Some(BTreeMap::from([(
            ANNOTATION_NAME.to_string(),
            r.spec.name.clone(),
        )])),
        ..Default::default()
    }
}

/// The ConfigMap with the working files (keys `f0`, `f1`, ... in path order: ConfigMap keys cannot
/// hold `/`); `None` when the job has none.
pub fn render_configmap(r: &RenderArgs<'_>) -> Option<ConfigMap> {
    if r.spec.files.is_empty() {
        return None;
    }
    let data = r
        .spec
        .files
        .values()
        .enumerate()
        .map(|(i, content)| (format!("f{i}"), content.clone()))
        .collect();
    Some(ConfigMap {
        metadata: meta(r, files_name(r.attempt)),
        data: Some(data),
        ..Default::default()
    })
}

/// The init container's script: copies each working file from the ConfigMap into the (writable)
/// work directory, creating its parent directories.
fn copy_script(files: &BTreeMap<String, String>, work_dir: &str) -> String {
    let work = work_dir.trim_end_matches('/');
    let mut lines = vec!["set -e".to_string()];
    for path in files.keys() {
        if let Some((parent, _)) = path.rsplit_once('/') {
            lines.push(format!(
                "mkdir -p {}",
                shell_quote(&format!("{work}/{parent}"))
            ));
        }
        lines.push(format!(
            "cp {} {}",
            shell_quote(&format!("{FILES_MOUNT}/{path}")),
            shell_quote(&format!("{work}/{path}"))
        ));
    }
    lines.join("\n")
}

/// The pod template shared by the `batch/v1` Job and the Volcano task. `index_annotation` is the
/// pod annotation that holds the pod's index (`SUANLI_NODE_INDEX`).
pub fn render_pod_template(r: &RenderArgs<'_>, index_annotation: &str) -> PodTemplateSpec {
    let mut env: Vec<EnvVar> = r
        .env
        .iter()
        .filter(|(k, _)| !DEVICE_VARS.contains(&k.as_str()) && k.as_str() != "SUANLI_WORK_DIR")
        .map(|(k, v)| EnvVar {
            name: k.clone(),
            value: Some(v.clone()),
            ..Default::default()
        })
        .collect();
    env.push(EnvVar {
        name: "SUANLI_WORK_DIR".into(),
        value: Some(r.work_dir.to_string()),
        ..Default::default()
    });
    env.push(EnvVar {
        name: "SUANLI_NODE_INDEX".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: format!("metadata.annotations['{index_annotation}']"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    env.sort_by(|a, b| a.name.cmp(&b.name));

    let cards = r.spec.cards_per_node;
    let resources = (cards > 0).then(|| ResourceRequirements {
        limits: Some(BTreeMap::from([(
            r.resource.to_string(),
            Quantity(cards.to_string()),
        )])),
        ..Default::default()
    });
    let work_mount = VolumeMount {
        name: "work".into(),
        mount_path: r.work_dir.to_string(),
        ..Default::default()
    };
    let mut volumes = vec![Volume {
        name: "work".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    let mut init_containers = None;
    if !r.spec.files.is_empty() {
        volumes.push(Volume {
            name: "files".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: files_name(r.attempt),
                items: Some(
                    r.spec
                        .files
                        .keys()
                        .enumerate()
                        .map(|(i, path)| KeyToPath {
                            key: format!("f{i}"),
                            path: path.clone(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        });
        init_containers = Some(vec![Container {
            name: INIT_CONTAINER.into(),
            image: Some(r.image.to_string()),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                copy_script(&r.spec.files, r.work_dir),
            ]),
            volume_mounts: Some(vec![
                VolumeMount {
                    name: "files".into(),
                    mount_path: FILES_MOUNT.into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                work_mount.clone(),
            ]),
            ..Default::default()
        }]);
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(r.attempt, r.center)),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(r.kill_grace_secs),
            node_selector: Some(BTreeMap::from([(
                r.sku_label_key.to_string(),
                r.sku.to_string(),
            )])),
            // Device nodes are often tainted with the resource name (`nvidia.com/gpu:NoSchedule`).
            tolerations: Some(vec![Toleration {
                key: Some(r.resource.to_string()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }]),
            init_containers,
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(r.image.to_string()),
                command: Some(vec!["sh".into(), "-c".into(), r.spec.command.clone()]),
                working_dir: Some(r.work_dir.to_string()),
                env: Some(env),
                resources,
                volume_mounts: Some(vec![work_mount]),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

/// The attempt as a `batch/v1` Job: one pod per node (`parallelism = completions = nodes`, Indexed
/// completion), no retries (`backoffLimit: 0`: the hub requeues), `activeDeadlineSeconds` = the wall
/// time.
pub fn render_job(r: &RenderArgs<'_>) -> Job {
    let nodes = i32::try_from(r.spec.nodes).unwrap_or(i32::MAX);
    Job {
        metadata: meta(r, object_name(r.attempt)),
        spec: Some(K8sJobSpec {
            parallelism: Some(nodes),
            completions: Some(nodes),
            completion_mode: Some("Indexed".into()),
            backoff_limit: Some(0),
            active_deadline_seconds: Some(i64::try_from(r.spec.walltime).unwrap_or(i64::MAX)),
            ttl_seconds_after_finished: r.ttl_after_finished_secs,
            template: render_pod_template(r, JOB_INDEX_ANNOTATION),
            ..Default::default()
        }),
        status: None,
    }
}

/// The Volcano Job's API group, version and plural.
pub const VOLCANO_GROUP: &str = "batch.volcano.sh";
pub const VOLCANO_VERSION: &str = "v1alpha1";
pub const VOLCANO_KIND: &str = "Job";
pub const VOLCANO_PLURAL: &str = "jobs";

/// The attempt as a Volcano Job (`batch.volcano.sh/v1alpha1`): one task of `nodes` replicas,
/// `minAvailable = nodes` (gang: all pods are scheduled together or none), aborted as a whole when a
/// pod fails or is evicted, no retries. The wall time is each pod's `activeDeadlineSeconds` (a
/// Volcano Job has no deadline of its own).
pub fn render_vcjob(r: &RenderArgs<'_>) -> Value {
    let mut template = render_pod_template(r, VOLCANO_INDEX_ANNOTATION);
    if let Some(spec) = template.spec.as_mut() {
        spec.active_deadline_seconds = Some(i64::try_from(r.spec.walltime).unwrap_or(i64::MAX));
    }
    let meta = meta(r, object_name(r.attempt));
    let mut spec = json!({
        "schedulerName": "volcano",
        "queue": r.volcano_queue,
        "minAvailable": r.spec.nodes,
        "maxRetry": 0,
        "policies": [
            {"event": "PodEvicted", "action": "AbortJob"},
            {"event": "PodFailed", "action": "AbortJob"},
        ],
        "tasks": [{
            "name": "worker",
            "replicas": r.spec.nodes,
            "template": template,
        }],
    });
    if let Some(ttl) = r.ttl_after_finished_secs {
        spec["ttlSecondsAfterFinished"] = json!(ttl);
    }
    json!({
        "apiVersion": format!("{VOLCANO_GROUP}/{VOLCANO_VERSION}"),
        "kind": VOLCANO_KIND,
        "metadata": meta,
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::testing::{attempt, launch};

    /// Compares `actual` with the checked-in snapshot; `SUANLI_UPDATE_SNAPSHOTS=1` rewrites it
    /// (then review the diff by eye).
    fn assert_snapshot(name: &str, actual: &Value) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/k8s/snapshots")
            .join(name);
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        if std::env::var_os("SUANLI_UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &text).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (SUANLI_UPDATE_SNAPSHOTS=1 writes it)",
                path.display()
            )
        });
        let expected: Value = serde_json::from_str(&expected).unwrap();
        assert!(
            *actual == expected,
            "{} differs from the rendering:\n{text}",
            path.display()
        );
    }

    fn args<'a>(
        spec: &'a JobSpec,
        env: &'a BTreeMap<String, String>,
        sku: &'a str,
        resource: &'a str,
        a: AttemptRef,
    ) -> RenderArgs<'a> {
        RenderArgs {
            attempt: a,
            center: "gz-ai-1",
            spec,
            sku,
            resource,
            env,
            namespace: "suanli",
            image: "busybox:stable",
            sku_label_key: "suanli.io/sku",
            work_dir: "/suanli/work",
            kill_grace_secs: 10,
            ttl_after_finished_secs: Some(3600),
            volcano_queue: "default",
        }
    }

    #[test]
    fn cuda_single_node_job_snapshot() {
        let mut spec = JobSpec::new("train-resnet", "python train.py --epochs $EPOCHS");
        spec.cards_per_node = 4;
        spec.walltime = 7200;
        spec.env.insert("EPOCHS".into(), "3".into());
        spec.env.insert("CUDA_VISIBLE_DEVICES".into(), "7".into());
        spec.files
            .insert("train.py".into(), "print('training')\n".into());
        spec.files
            .insert("conf/it's.yaml".into(), "lr: 0.1\n".into());
        let a = attempt(42, 1);
        let env = launch(
            Path::new("/var/lib/suanli"),
            a,
            spec.clone(),
            "RTX4090",
            &[0, 1, 2, 3],
        )
        .env;
        let r = args(&spec, &env, "RTX4090", "nvidia.com/gpu", a);
        let job = render_job(&r);
        assert_snapshot("cuda-1node-job.json", &serde_json::to_value(&job).unwrap());
        let cm = render_configmap(&r).unwrap();
        assert_snapshot(
            "cuda-1node-configmap.json",
            &serde_json::to_value(&cm).unwrap(),
        );

        // What matters, stated once more in code.
        let s = job.spec.as_ref().unwrap();
        assert_eq!(
            (s.parallelism, s.completions, s.backoff_limit),
            (Some(1), Some(1), Some(0))
        );
        assert_eq!(s.active_deadline_seconds, Some(7200));
        let pod = s.template.spec.as_ref().unwrap();
        let c = &pod.containers[0];
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()["nvidia.com/gpu"],
            Quantity("4".into())
        );
        let env = c.env.as_ref().unwrap();
        assert!(env.iter().all(|e| e.name != "CUDA_VISIBLE_DEVICES"));
        assert!(
            env.iter()
                .any(|e| e.name == "SUANLI_CARDS" && e.value.as_deref() == Some("4"))
        );
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.node_selector.as_ref().unwrap()["suanli.io/sku"],
            "RTX4090"
        );
    }

    #[test]
    fn ascend_gang_job_and_vcjob_snapshots() {
        let mut spec = JobSpec::new("llm-pretrain", "torchrun --nnodes 2 pretrain.py");
        spec.cards_per_node = 8;
        spec.nodes = 2;
        spec.walltime = 86_400;
        spec.stack = "cann".into();
        let a = attempt(7, 2);
        let slots = [0, 1, 2, 3, 4, 5, 6, 7];
        let env = launch(
            Path::new("/var/lib/suanli"),
            a,
            spec.clone(),
            "Ascend910B3",
            &slots,
        )
        .env;
        let r = args(&spec, &env, "Ascend910B3", "huawei.com/Ascend910", a);
        assert!(render_configmap(&r).is_none());
        let job = render_job(&r);
        assert_snapshot(
            "ascend-2node-job.json",
            &serde_json::to_value(&job).unwrap(),
        );
        let s = job.spec.as_ref().unwrap();
        assert_eq!((s.parallelism, s.completions), (Some(2), Some(2)));
        assert_eq!(s.completion_mode.as_deref(), Some("Indexed"));
        let pod = s.template.spec.as_ref().unwrap();
        assert!(pod.init_containers.is_none() && pod.volumes.as_ref().unwrap().len() == 1);
        let env = pod.containers[0].env.as_ref().unwrap();
        assert!(env.iter().all(|e| e.name != "ASCEND_RT_VISIBLE_DEVICES"));

        let vc = render_vcjob(&r);
        assert_snapshot("ascend-2node-vcjob.json", &vc);
        assert_eq!(vc["spec"]["minAvailable"], 2);
        assert_eq!(vc["spec"]["tasks"][0]["replicas"], 2);
        assert_eq!(
            vc["spec"]["tasks"][0]["template"]["spec"]["activeDeadlineSeconds"],
            86_400
        );
        // The pod template is a valid core/v1 PodTemplateSpec.
        let t: PodTemplateSpec =
            serde_json::from_value(vc["spec"]["tasks"][0]["template"].clone()).unwrap();
        assert_eq!(
            t.spec.unwrap().containers[0]
                .resources
                .as_ref()
                .unwrap()
                .limits
                .as_ref()
                .unwrap()["huawei.com/Ascend910"],
            Quantity("8".into())
        );
    }

    #[test]
    fn names_selectors_and_quoting() {
        let a = attempt(5, 3);
        assert_eq!(object_name(a), "suanli-5-3");
        assert_eq!(files_name(a), "suanli-5-3-files");
        assert_eq!(attempt_selector(a), "suanli.io/job=5,suanli.io/attempt=3");
        assert_eq!(center_selector("sz-1"), "suanli.io/center=sz-1");
        let files = BTreeMap::from([
            ("a.txt".to_string(), String::new()),
            ("d/e/f.txt".to_string(), String::new()),
        ]);
        assert_eq!(
            copy_script(&files, "/w/"),
            "set -e\ncp '/suanli/files/a.txt' '/w/a.txt'\nmkdir -p '/w/d/e'\ncp '/suanli/files/d/e/f.txt' '/w/d/e/f.txt'"
        );
    }
}

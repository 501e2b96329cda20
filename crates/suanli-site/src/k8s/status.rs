//! Pure reading of what Kubernetes says about an attempt: Job and pod status to suanli's outcome,
//! pod container times to the metered span.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;
use suanli_proto::Outcome;
use suanli_types::Timestamp;

use super::render::{CONTAINER, JOB_INDEX_ANNOTATION, VOLCANO_INDEX_ANNOTATION};

/// Where an attempt stands, as Kubernetes shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No pod runs yet; the reason when Kubernetes gives one (`0/4 nodes are available: ...`).
    Pending(Option<String>),
    /// At least one pod has started its job container.
    Running,
    /// The attempt has ended.
    Ended(Ending),
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub message: String,
    /// Kubernetes still runs the Job (a pod that can never start, e.g. its image cannot be pulled):
    /// the agent deletes it.
    pub still_active: bool,
}

impl Ending {
    fn new(outcome: Outcome, exit_code: Option<i32>, message: impl Into<String>) -> Ending {
        Ending {
            outcome,
            exit_code,
            message: message.into(),
            still_active: false,
        }
    }
}

/// Waiting reasons after which a container never starts without someone changing something.
const FATAL_WAITING: [&str; 4] = [
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
];

/// Pod `status.reason`s of pods that the node or the cluster took away (not the job's fault).
const DISRUPTED_REASONS: [&str; 8] = [
    "Evicted",
    "Preempting",
    "NodeLost",
    "Terminated",
    "Shutdown",
    "NodeAffinity",
    "UnexpectedAdmissionError",
    "OutOfpods",
];

fn millis(t: &Time) -> Timestamp {
    Timestamp(t.0.as_millisecond())
}

pub(crate) fn cond_true<'a>(
    conds: impl IntoIterator<Item = (&'a str, &'a str)>,
    kind: &str,
) -> bool {
    conds.into_iter().any(|(t, s)| t == kind && s == "True")
}

/// The pod's index in its gang (Indexed Job or Volcano task), from its annotations.
pub fn pod_index(p: &Pod) -> Option<u32> {
    let ann = p.metadata.annotations.as_ref()?;
    ann.get(JOB_INDEX_ANNOTATION)
        .or_else(|| ann.get(VOLCANO_INDEX_ANNOTATION))
        .and_then(|v| v.parse().ok())
}

fn pod_name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("?")
}

fn main_status(p: &Pod) -> Option<&ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)
}

/// The job container has started (it is running or has run): its logs can be read.
pub fn container_started(p: &Pod) -> bool {
    main_status(p)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// The job container has terminated.
pub fn container_terminated(p: &Pod) -> bool {
    main_status(p)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

pub(crate) fn pod_phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// A pod the node or the cluster took away: eviction, preemption, node loss or shutdown.
fn disruption(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    if let Some(r) = st.reason.as_deref()
        && (DISRUPTED_REASONS.contains(&r) || r.starts_with("OutOf"))
    {
        return Some(match st.message.as_deref() {
            Some(m) if !m.is_empty() => format!("{r}: {m}"),
            _ => r.to_string(),
        });
    }
    st.conditions.as_ref()?.iter().find_map(|c| {
        (c.type_ == "DisruptionTarget" && c.status == "True").then(|| {
            let r = c.reason.as_deref().unwrap_or("DisruptionTarget");
            match c.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{r}: {m}"),
                _ => r.to_string(),
            }
        })
    })
}

/// A container of the pod (init or job) that can never start, with its reason and message.
fn fatal_waiting(p: &Pod) -> Option<String> {
    let st = p.status.as_ref()?;
    let all = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for c in all {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or("");
        if FATAL_WAITING.contains(&reason) {
            return Some(match w.message.as_deref() {
                Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                _ => reason.to_string(),
            });
        }
    }
    None
}

/// Why no pod runs yet: a container's waiting reason, or the scheduler's message.
fn pending_reason(pods: &[Pod]) -> Option<String> {
    for p in pods {
        let Some(st) = p.status.as_ref() else {
            continue;
        };
        if let Some(c) = st
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        {
            return Some(c.message.clone().or(c.reason.clone()).unwrap_or_default());
        }
        for c in st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten())
        {
            if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref())
                && let Some(r) = w.reason.as_deref()
                && r != "PodInitializing"
                && r != "ContainerCreating"
            {
                return Some(match w.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{r}: {m}"),
                    _ => r.to_string(),
                });
            }
        }
    }
    None
}

/// The failure that ended a gang, from its pods: a pod past its deadline, else a disrupted
/// (evicted, preempted) pod, else the container (init or job) that failed first.
fn pod_failure(pods: &[Pod]) -> Option<Ending> {
    for p in pods {
        let st = p.status.as_ref();
        if st.and_then(|s| s.reason.as_deref()) == Some("DeadlineExceeded") {
            return Some(Ending::new(
                Outcome::TimedOut,
                None,
                format!("pod {} reached its wall-time limit", pod_name(p)),
            ));
        }
    }
    for p in pods {
        if let Some(d) = disruption(p) {
            return Some(Ending::new(
                Outcome::Killed,
                None,
                format!("pod {} was stopped by Kubernetes ({d})", pod_name(p)),
            ));
        }
    }
    // The earliest failed container: in a gang the others often fail because it did.
    let mut first: Option<(Timestamp, u32, Ending)> = None;
    for p in pods {
        let Some(st) = p.status.as_ref() else {
            continue;
        };
        let containers = st
            .init_container_statuses
            .iter()
            .flatten()
            .chain(st.container_statuses.iter().flatten());
        for c in containers {
            let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                continue;
            };
            if t.exit_code == 0 {
                continue;
            }
            let reason = t.reason.as_deref().unwrap_or("Error");
            let what = if c.name == CONTAINER {
                "the job".to_string()
            } else {
                format!("its {} container", c.name)
            };
            let mut message = if reason == "OOMKilled" {
                format!(
                    "pod {}: {what} was killed for running out of memory (OOMKilled, exit code {})",
                    pod_name(p),
                    t.exit_code
                )
            } else {
                format!(
                    "pod {}: {what} exited with code {} ({reason})",
                    pod_name(p),
                    t.exit_code
                )
            };
            if let Some(m) = t
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
            {
                message.push_str(": ");
                message.push_str(m);
            }
            let at = t.finished_at.as_ref().map_or(Timestamp(i64::MAX), millis);
            let idx = pod_index(p).unwrap_or(u32::MAX);
            if first.as_ref().is_none_or(|(a, i, _)| (at, idx) < (*a, *i)) {
                first = Some((
                    at,
                    idx,
                    Ending::new(Outcome::Failed, Some(t.exit_code), message),
                ));
            }
        }
    }
    if let Some((_, _, e)) = first {
        return Some(e);
    }
    pods.iter().find(|p| pod_phase(p) == "Failed").map(|p| {
        let st = p.status.as_ref();
        let why = st
            .and_then(|s| s.message.clone().or(s.reason.clone()))
            .unwrap_or_else(|| "no reason given".into());
        Ending::new(
            Outcome::Failed,
            None,
            format!("pod {} failed: {why}", pod_name(p)),
        )
    })
}

/// Not ended: an unstartable pod ends the attempt, a started one makes it running.
fn not_ended(pods: &[Pod]) -> Phase {
    for p in pods {
        if let Some(why) = fatal_waiting(p) {
            return Phase::Ended(Ending {
                still_active: true,
                ..Ending::new(
                    Outcome::Failed,
                    None,
                    format!("pod {} cannot start: {why}", pod_name(p)),
                )
            });
        }
    }
    if pods
        .iter()
        .any(|p| container_started(p) || pod_phase(p) == "Running")
    {
        Phase::Running
    } else {
        Phase::Pending(pending_reason(pods))
    }
}

/// A `batch/v1` Job and its pods (as last seen, including pods already gone) to a phase:
/// `Complete` -> succeeded; `Failed` with `DeadlineExceeded` -> timed out; other `Failed` -> from
/// the pods: evicted or preempted -> killed (the hub requeues), else the first failed container's
/// exit code (`OOMKilled` said so); a pod whose image cannot be pulled -> failed with the message.
pub fn map_status(job: &Job, pods: &[Pod]) -> Phase {
    let status = job.status.as_ref();
    let conds = status.and_then(|s| s.conditions.as_ref());
    let find =
        |kind: &str| conds.and_then(|c| c.iter().find(|c| c.type_ == kind && c.status == "True"));
    if find("Complete").is_some() {
        return Phase::Ended(Ending::new(Outcome::Succeeded, Some(0), ""));
    }
    if let Some(c) = find("Failed") {
        let reason = c.reason.as_deref().unwrap_or("");
        if reason == "DeadlineExceeded" {
            let secs = job
                .spec
                .as_ref()
                .and_then(|s| s.active_deadline_seconds)
                .unwrap_or(0);
            return Phase::Ended(Ending::new(
                Outcome::TimedOut,
                None,
                format!("wall-time limit of {secs} s reached"),
            ));
        }
        return Phase::Ended(pod_failure(pods).unwrap_or_else(|| {
            let m = c.message.as_deref().unwrap_or("");
            Ending::new(
                Outcome::Failed,
                None,
                format!("Kubernetes failed the Job: {reason}: {m}"),
            )
        }));
    }
    // `FailureTarget`/`SuccessCriteriaMet` (1.31+) come before the final condition, once the pods
    // are gone: wait for it.
    not_ended(pods)
}

/// A Volcano Job (`status.state.phase`) and its pods to a phase: `Completed` -> succeeded;
/// `Failed`, `Aborted`, `Terminated` -> from the pods as for [`map_status`] (a pod past its
/// `activeDeadlineSeconds` -> timed out); the phases on the way there wait.
pub fn map_vcjob_status(vcjob: &Value, pods: &[Pod]) -> Phase {
    let state = &vcjob["status"]["state"];
    let phase = state["phase"].as_str().unwrap_or("");
    match phase {
        "Completed" => Phase::Ended(Ending::new(Outcome::Succeeded, Some(0), "")),
        "Failed" | "Aborted" | "Terminated" => {
            Phase::Ended(pod_failure(pods).unwrap_or_else(|| {
                let reason = state["reason"].as_str().unwrap_or("");
                let m = state["message"].as_str().unwrap_or("");
                Ending::new(
                    Outcome::Failed,
                    None,
                    format!("Volcano ended the job as {phase}: {reason} {m}")
                        .trim_end()
                        .to_string(),
                )
            }))
        }
        "Aborting" | "Terminating" | "Completing" | "Restarting" => {
            if pods.iter().any(container_started) {
                Phase::Running
            } else {
                Phase::Pending(Some(format!("Volcano job is {phase}")))
            }
        }
        _ => not_ended(pods),
    }
}

/// When the job containers ran: the earliest start and, once every seen one has ended, the latest
/// end (from the container statuses: what the kubelet measured).
pub fn span_of(pods: &[Pod]) -> (Option<Timestamp>, Option<Timestamp>) {
    let mut start: Option<Timestamp> = None;
    let mut end: Option<Timestamp> = None;
    let mut all_ended = true;
    for p in pods {
        let Some(s) = main_status(p).and_then(|c| c.state.as_ref()) else {
            continue;
        };
        let (st, fin) = if let Some(r) = &s.running {
            all_ended = false;
            (r.started_at.as_ref().map(millis), None)
        } else if let Some(t) = &s.terminated {
            (
                t.started_at.as_ref().map(millis),
                t.finished_at.as_ref().map(millis),
            )
        } else {
            continue;
        };
        if let Some(st) = st {
            start = Some(start.map_or(st, |s: Timestamp| Timestamp(s.millis().min(st.millis()))));
        }
        match fin {
            Some(f) => {
                end = Some(end.map_or(f, |e: Timestamp| Timestamp(e.millis().max(f.millis()))))
            }
            None => all_ended = false,
        }
    }
    (start, if all_ended { end } else { None })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::k8s::fixtures::{self as fx, at};
    use crate::testing::assert_has;

    fn job(status: Value) -> Job {
        serde_json::from_value(GANG.job(2, 600, status)).unwrap()
    }

    const GANG: fx::Gang = fx::Gang {
        job: 42,
        attempt: 1,
        node: "gpu-node-3",
        resource: "nvidia.com/gpu",
        cards: 4,
    };

    fn pod(index: u32, phase: &str, state: Option<Value>) -> Pod {
        serde_json::from_value(GANG.pod(index, phase, state)).unwrap()
    }

    fn ended(outcome: Outcome, code: Option<i32>, message: &str) -> Phase {
        Phase::Ended(Ending::new(outcome, code, message))
    }

    #[test]
    fn job_conditions_to_outcomes() {
        let done = job(fx::finished(
            "Complete",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
            2,
            0,
        ));
        assert_eq!(
            map_status(&done, &[]),
            ended(Outcome::Succeeded, Some(0), "")
        );
        let late = job(fx::finished(
            "Failed",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
            0,
            1,
        ));
        assert_eq!(
            map_status(&late, &[pod(0, "Running", Some(fx::running(&at(0, 5))))]),
            ended(Outcome::TimedOut, None, "wall-time limit of 600 s reached")
        );

        let failed = job(fx::finished(
            "Failed",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            0,
            2,
        ));
        // Pod 1 failed first with exit code 2; pod 0 was killed after it.
        let pods = [
            pod(
                0,
                "Failed",
                Some(fx::terminated(137, "Error", &at(0, 5), &at(0, 21))),
            ),
            pod(
                1,
                "Failed",
                Some(fx::terminated(2, "Error", &at(0, 5), &at(0, 20))),
            ),
        ];
        assert_eq!(
            map_status(&failed, &pods),
            ended(
                Outcome::Failed,
                Some(2),
                "pod suanli-42-1-1-x7k2p: the job exited with code 2 (Error)"
            )
        );
        let oom = [pod(
            0,
            "Failed",
            Some(fx::terminated(137, "OOMKilled", &at(0, 5), &at(0, 9))),
        )];
        assert_eq!(
            map_status(&failed, &oom),
            ended(
                Outcome::Failed,
                Some(137),
                "pod suanli-42-1-0-x7k2p: the job was killed for running out of memory (OOMKilled, exit code 137)"
            )
        );
        // No pod left to tell: the Job's own words.
        assert_eq!(
            map_status(&failed, &[]),
            ended(
                Outcome::Failed,
                None,
                "Kubernetes failed the Job: BackoffLimitExceeded: Job has reached the specified backoff limit"
            )
        );
    }

    #[test]
    fn evicted_and_preempted_pods_are_requeued() {
        let failed = job(fx::finished("Failed", "BackoffLimitExceeded", "", 0, 1));
        let mut evicted = pod(
            0,
            "Failed",
            Some(fx::terminated(
                137,
                "ContainerStatusUnknown",
                &at(0, 5),
                &at(0, 9),
            )),
        );
        let st = evicted.status.as_mut().unwrap();
        st.reason = Some("Evicted".into());
        st.message = Some(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91340Ki."
                .into(),
        );
        let Phase::Ended(e) = map_status(&failed, &[evicted]) else {
            panic!()
        };
        assert_eq!(e.outcome, Outcome::Killed);
        assert_has(&e.message, "Evicted: The node was low on resource: memory");

        let mut preempted: Pod = pod(
            1,
            "Failed",
            Some(fx::terminated(143, "Error", &at(0, 5), &at(0, 9))),
        );
        preempted
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()
            .push(
                serde_json::from_value(json!({
                    "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                    "message": "default-scheduler: preempting to accommodate a higher priority pod",
                    "lastTransitionTime": at(0, 8)
                }))
                .unwrap(),
            );
        let Phase::Ended(e) = map_status(&failed, &[preempted]) else {
            panic!()
        };
        assert_eq!((e.outcome, e.exit_code), (Outcome::Killed, None));
        assert_has(&e.message, "PreemptionByScheduler");
    }

    #[test]
    fn pending_running_and_unstartable() {
        let j = job(fx::active(2, 0));
        let unsched: Pod = serde_json::from_value(fx::pod(
            42,
            1,
            0,
            None,
            "Pending",
            None,
            "nvidia.com/gpu",
            4,
        ))
        .unwrap();
        let Phase::Pending(Some(why)) = map_status(&j, &[unsched]) else {
            panic!()
        };
        assert!(
            why.starts_with("0/6 nodes are available: 2 Insufficient nvidia.com/gpu"),
            "{why}"
        );
        let creating = pod(0, "Pending", Some(fx::waiting("ContainerCreating", "")));
        assert_eq!(
            map_status(&j, std::slice::from_ref(&creating)),
            Phase::Pending(None)
        );
        let pulling = pod(
            1,
            "Pending",
            Some(fx::waiting("ErrImagePull", "rpc error: code = NotFound")),
        );
        assert!(
            matches!(map_status(&j, &[pulling]), Phase::Pending(Some(_))),
            "ErrImagePull is retried"
        );

        let running = pod(1, "Running", Some(fx::running(&at(0, 5))));
        assert_eq!(map_status(&j, &[creating, running]), Phase::Running);

        let backoff = pod(
            0,
            "Pending",
            Some(fx::waiting(
                "ImagePullBackOff",
                "Back-off pulling image \"registry.example/nope:1\": ErrImagePull: not found",
            )),
        );
        assert_eq!(
            map_status(&j, &[backoff]),
            Phase::Ended(Ending {
                still_active: true,
                ..Ending::new(
                    Outcome::Failed,
                    None,
                    "pod suanli-42-1-0-x7k2p cannot start: ImagePullBackOff: Back-off pulling image \"registry.example/nope:1\": ErrImagePull: not found"
                )
            })
        );
        // The init container that copies the working files failed.
        let mut p = pod(0, "Failed", None);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![serde_json::from_value(json!({
            "name": "files", "image": "busybox:stable", "imageID": "", "ready": false, "restartCount": 0,
            "state": fx::terminated(1, "Error", &at(0, 2), &at(0, 3))
        })).unwrap()]);
        let failed = job(fx::finished("Failed", "BackoffLimitExceeded", "", 0, 1));
        assert_eq!(
            map_status(&failed, &[p]),
            ended(
                Outcome::Failed,
                Some(1),
                "pod suanli-42-1-0-x7k2p: its files container exited with code 1 (Error)"
            )
        );
    }

    #[test]
    fn volcano_phases() {
        let vc = |phase: &str| json!({"status": {"state": {"phase": phase}, "minAvailable": 2}});
        let running = pod(0, "Running", Some(fx::running(&at(0, 5))));
        assert_eq!(map_vcjob_status(&vc("Pending"), &[]), Phase::Pending(None));
        assert_eq!(
            map_vcjob_status(&vc("Running"), std::slice::from_ref(&running)),
            Phase::Running
        );
        assert_eq!(
            map_vcjob_status(&vc("Completing"), std::slice::from_ref(&running)),
            Phase::Running
        );
        assert_eq!(
            map_vcjob_status(&vc("Completed"), &[]),
            ended(Outcome::Succeeded, Some(0), "")
        );
        let mut late = pod(
            1,
            "Failed",
            Some(fx::terminated(137, "Error", &at(0, 5), &at(10, 5))),
        );
        late.status.as_mut().unwrap().reason = Some("DeadlineExceeded".into());
        let Phase::Ended(e) = map_vcjob_status(&vc("Aborted"), &[running.clone(), late]) else {
            panic!()
        };
        assert_eq!(e.outcome, Outcome::TimedOut);
        let failed = pod(
            1,
            "Failed",
            Some(fx::terminated(3, "Error", &at(0, 5), &at(0, 7))),
        );
        assert_eq!(
            map_vcjob_status(&vc("Aborted"), &[failed]),
            ended(
                Outcome::Failed,
                Some(3),
                "pod suanli-42-1-1-x7k2p: the job exited with code 3 (Error)"
            )
        );
        assert_eq!(
            map_vcjob_status(&vc("Failed"), &[]),
            ended(Outcome::Failed, None, "Volcano ended the job as Failed:")
        );
    }

    #[test]
    fn span_from_container_times() {
        let ms = |s: &str| {
            Timestamp(
                s.parse::<k8s_openapi::jiff::Timestamp>()
                    .unwrap()
                    .as_millisecond(),
            )
        };
        let a = pod(
            0,
            "Succeeded",
            Some(fx::terminated(0, "Completed", &at(0, 5), &at(0, 20))),
        );
        let b = pod(1, "Running", Some(fx::running(&at(0, 4))));
        assert_eq!(span_of(&[a.clone(), b]), (Some(ms(&at(0, 4))), None));
        let b = pod(
            1,
            "Succeeded",
            Some(fx::terminated(0, "Completed", &at(0, 4), &at(0, 25))),
        );
        assert_eq!(
            span_of(&[a, b]),
            (Some(ms(&at(0, 4))), Some(ms(&at(0, 25))))
        );
        assert_eq!(span_of(&[]), (None, None));
    }
}

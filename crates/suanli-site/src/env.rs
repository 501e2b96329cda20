//! Pure helpers that turn an assignment into what a backend launches, and what the backends share
//! about it (the vendors' visible-devices variables, quoting for `sh`).

use std::collections::BTreeMap;
use std::path::{Component, Path};

use suanli_proto::AttemptRef;
use suanli_types::{ChipCatalog, JobSpec, chips::visible_devices_env};

use crate::inventory::ReservedNode;

/// The visible-devices variable for a SKU's vendor (`SUANLI_VISIBLE_DEVICES` for unknown SKUs).
pub fn visible_devices_var(sku: &str) -> &'static str {
    visible_devices_env(
        ChipCatalog::builtin()
            .get(sku)
            .map_or("", |c| c.vendor.as_str()),
    )
}

/// The job's environment: `spec.env`, then the `SUANLI_*` variables and the vendor's
/// visible-devices variable (the slots on the first node), which win over the spec's.
pub fn build_env(
    attempt: AttemptRef,
    spec: &JobSpec,
    sku: &str,
    nodes: &[ReservedNode],
    dir: &Path,
) -> BTreeMap<String, String> {
    let mut env = spec.env.clone();
    let node_names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    let devices = nodes
        .first()
        .map(|n| {
            n.slots
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    env.insert("SUANLI_JOB_ID".into(), attempt.job.to_string());
    env.insert("SUANLI_ATTEMPT".into(), attempt.attempt.to_string());
    env.insert("SUANLI_CARDS".into(), spec.cards_per_node.to_string());
    env.insert("SUANLI_NODES".into(), node_names.join(","));
    env.insert("SUANLI_NODE_COUNT".into(), nodes.len().to_string());
    env.insert("SUANLI_WORK_DIR".into(), dir.display().to_string());
    env.insert(visible_devices_var(sku).into(), devices);
    env
}

/// The variables a Slurm job reads, for backends that are not Slurm (which sets its own): the
/// local backend runs a job as one process with every node's cards, so it is node 0 and task 0
/// of one task per node, as suanli starts jobs. The submit directory is the attempt folder, where
/// the job's files are.
pub fn slurm_env(
    launch_env: &BTreeMap<String, String>,
    spec: &JobSpec,
    dir: &Path,
) -> BTreeMap<String, String> {
    let get = |k: &str| launch_env.get(k).cloned().unwrap_or_default();
    let nodes = get("SUANLI_NODE_COUNT");
    BTreeMap::from([
        ("SLURM_JOB_ID".to_string(), get("SUANLI_JOB_ID")),
        ("SLURM_JOBID".to_string(), get("SUANLI_JOB_ID")),
        ("SLURM_JOB_NAME".to_string(), spec.name.clone()),
        ("SLURM_NNODES".to_string(), nodes.clone()),
        ("SLURM_JOB_NUM_NODES".to_string(), nodes.clone()),
        ("SLURM_NTASKS".to_string(), nodes),
        ("SLURM_JOB_NODELIST".to_string(), get("SUANLI_NODES")),
        ("SLURM_SUBMIT_DIR".to_string(), dir.display().to_string()),
        (
            "SLURM_GPUS_ON_NODE".to_string(),
            spec.cards_per_node.to_string(),
        ),
        ("SLURM_NODEID".to_string(), "0".to_string()),
        ("SLURM_PROCID".to_string(), "0".to_string()),
        (
            "SLURM_RESTART_COUNT".to_string(),
            get("SUANLI_ATTEMPT")
                .parse::<u32>()
                .map_or(String::new(), |a| a.saturating_sub(1).to_string()),
        ),
    ])
}

/// Visible-devices variables of every vendor. The agent passes none of the agent's own to a job,
/// and replaces the job's own where the cluster manager chooses the devices.
pub(crate) const DEVICE_VARS: [&str; 7] = [
    "CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "MLU_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "XPU_VISIBLE_DEVICES",
    "MUSA_VISIBLE_DEVICES",
    "MACA_VISIBLE_DEVICES",
];

/// `'...'` for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A working-file path is safe when it is relative and has only normal components.
pub fn safe_relative_path(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && !path.contains('\0')
        && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Card-seconds, rounded up.
pub fn card_seconds(elapsed_ms: i64, total_cards: u32) -> u64 {
    let ms = u128::from(elapsed_ms.max(0) as u64) * u128::from(total_cards);
    u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use suanli_types::JobId;

    use super::*;

    fn reserved(node: &str, slots: &[u32]) -> ReservedNode {
        ReservedNode {
            node: node.into(),
            slots: slots.to_vec(),
        }
    }

    #[test]
    fn environment_for_nvidia_and_ascend() {
        let mut spec = JobSpec::new("t", "true");
        spec.cards_per_node = 2;
        spec.nodes = 2;
        spec.env.insert("EPOCHS".into(), "3".into());
        spec.env.insert("CUDA_VISIBLE_DEVICES".into(), "7".into());
        let a = AttemptRef {
            job: JobId(42),
            attempt: 3,
        };
        let nodes = [
            reserved("rtx4090-1", &[0, 1]),
            reserved("rtx4090-2", &[2, 3]),
        ];
        let dir = Path::new("/srv/work/42-3");
        let env = build_env(a, &spec, "RTX4090", &nodes, dir);
        assert_eq!(env["CUDA_VISIBLE_DEVICES"], "0,1");
        assert_eq!(env["EPOCHS"], "3");
        assert_eq!(env["SUANLI_JOB_ID"], "42");
        assert_eq!(env["SUANLI_ATTEMPT"], "3");
        assert_eq!(env["SUANLI_CARDS"], "2");
        assert_eq!(env["SUANLI_NODES"], "rtx4090-1,rtx4090-2");
        assert_eq!(env["SUANLI_NODE_COUNT"], "2");
        assert_eq!(env["SUANLI_WORK_DIR"], "/srv/work/42-3");
        assert!(!env.contains_key("ASCEND_RT_VISIBLE_DEVICES"));

        spec.cards_per_node = 1;
        let env = build_env(
            a,
            &spec,
            "ascend910b3",
            &[reserved("ascend910b3-0", &[5])],
            dir,
        );
        assert_eq!(env["ASCEND_RT_VISIBLE_DEVICES"], "5");
        assert_eq!(env["SUANLI_NODE_COUNT"], "1");
        assert_eq!(visible_devices_var("NoSuchChip"), "SUANLI_VISIBLE_DEVICES");
    }

    #[test]
    fn slurm_variables_from_the_launch() {
        let mut spec = JobSpec::new("train", "true");
        spec.cards_per_node = 4;
        spec.nodes = 2;
        let a = AttemptRef {
            job: JobId(42),
            attempt: 3,
        };
        let dir = Path::new("/srv/work/42-3");
        let nodes = [reserved("n1", &[0, 1, 2, 3]), reserved("n2", &[0, 1, 2, 3])];
        let env = slurm_env(&build_env(a, &spec, "RTX4090", &nodes, dir), &spec, dir);
        let want = [
            ("SLURM_JOB_ID", "42"),
            ("SLURM_JOB_NAME", "train"),
            ("SLURM_NNODES", "2"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_JOB_NODELIST", "n1,n2"),
            ("SLURM_SUBMIT_DIR", "/srv/work/42-3"),
            ("SLURM_GPUS_ON_NODE", "4"),
            ("SLURM_NODEID", "0"),
            ("SLURM_RESTART_COUNT", "2"),
        ];
        for (k, v) in want {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn helpers() {
        assert!(safe_relative_path("a/b.txt"));
        assert!(!safe_relative_path("/etc/passwd"));
        assert!(!safe_relative_path("a/../../b"));
        assert!(!safe_relative_path(""));
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(card_seconds(0, 8), 0);
        assert_eq!(card_seconds(1, 1), 1);
        assert_eq!(card_seconds(1500, 4), 6);
        assert_eq!(card_seconds(1001, 2), 3);
        assert_eq!(card_seconds(-5, 2), 0);
    }
}

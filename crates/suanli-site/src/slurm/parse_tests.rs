//! The pure half of the Slurm backend against output captured from Slurm.
use std::collections::BTreeMap;
use std::path::Path;

use suanli_proto::{AttemptRef, Outcome};
use suanli_types::{JobId, Timestamp};

use super::parse::*;
use super::script::*;
use super::sinfo::*;
use crate::backend::Exit;
use crate::env::shell_quote;

fn attempt() -> AttemptRef {
    AttemptRef {
        job: JobId(42),
        attempt: 3,
    }
}

#[test]
fn renders_the_batch_script_and_directives() {
    let env = BTreeMap::from([
        ("SUANLI_JOB_ID".to_string(), "42".to_string()),
        ("EPOCHS".to_string(), "it's 3".to_string()),
        ("CUDA_VISIBLE_DEVICES".to_string(), "0,1".to_string()),
        ("SLURM_JOB_ID".to_string(), "1".to_string()),
        ("bad-name".to_string(), "x".to_string()),
    ]);
    let extra = vec!["--account=lab".to_string()];
    let a = SbatchArgs {
        attempt: attempt(),
        command: "echo 'hi'; exit 3",
        env: &env,
        visible_devices_var: "CUDA_VISIBLE_DEVICES",
        nodes: 2,
        cards_per_node: 4,
        gres: "gpu:a100",
        walltime_secs: 3601,
        work_dir: Path::new("/srv/work/42-3"),
        partition: Some("gpu"),
        comment: "suanli:sz-a",
        extra_args: &extra,
    };
    let (script, argv) = render_sbatch(&a);
    assert_eq!(
        argv,
        [
            "--parsable",
            "--job-name=suanli-42-3",
            "--nodes=2",
            "--ntasks-per-node=1",
            "--gres=gpu:a100:4",
            "--time=61",
            "--chdir=/srv/work/42-3",
            "--output=/srv/work/42-3/.suanli/stdout",
            "--error=/srv/work/42-3/.suanli/stderr",
            "--comment=suanli:sz-a",
            "--no-requeue",
            "--partition=gpu",
            "--account=lab",
            "/srv/work/42-3/.suanli/job.sh",
        ]
    );
    assert_eq!(
        script,
        "#!/bin/sh\n\
         # suanli job 42 attempt 3, written by the suanli site agent\n\
         export EPOCHS='it'\\''s 3'\n\
         export SUANLI_JOB_ID='42'\n\
         export SUANLI_SLURM_JOB_ID=\"$SLURM_JOB_ID\"\n\
         export SUANLI_SLURM_NODES=\"$SLURM_JOB_NODELIST\"\n\
         _suanli_devices=\"${CUDA_VISIBLE_DEVICES:-${SLURM_JOB_GPUS:-}}\"\n\
         if [ -n \"$_suanli_devices\" ]; then export CUDA_VISIBLE_DEVICES=\"$_suanli_devices\"; fi\n\
         unset _suanli_devices\n\
         exec /bin/sh -c 'echo '\\''hi'\\''; exit 3'\n"
    );

    let a = SbatchArgs {
        partition: None,
        extra_args: &[],
        gres: "gpu",
        nodes: 1,
        cards_per_node: 1,
        walltime_secs: 5,
        visible_devices_var: "ASCEND_RT_VISIBLE_DEVICES",
        ..a
    };
    let (script, argv) = render_sbatch(&a);
    assert!(argv.contains(&"--gres=gpu:1".to_string()));
    assert!(argv.contains(&"--time=1".to_string()));
    assert!(!argv.iter().any(|a| a.starts_with("--partition")));
    assert!(script.contains("export CUDA_VISIBLE_DEVICES='0,1'\n"));
    assert!(script.contains("export ASCEND_RT_VISIBLE_DEVICES=\"$_suanli_devices\""));
}

#[test]
fn helpers() {
    assert_eq!(time_limit_minutes(0), 1);
    assert_eq!(time_limit_minutes(60), 1);
    assert_eq!(time_limit_minutes(61), 2);
    assert_eq!(time_limit_minutes(86_400), 1440);
    assert_eq!(parse_sbatch_id("123\n"), Some(123));
    assert_eq!(parse_sbatch_id("77;ci\n"), Some(77));
    assert_eq!(parse_sbatch_id("\n"), None);
    assert_eq!(parse_sbatch_id("Submitted batch job 5"), None);
    assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    assert!(is_transient_error(
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
    ));
    assert!(!is_transient_error(
        "sbatch: error: Batch job submission failed: Requested node configuration is not available"
    ));
    assert_eq!(
        ExitInfo::from_wait_status(768),
        ExitInfo {
            code: Some(3),
            signal: None
        }
    );
    assert_eq!(
        ExitInfo::from_wait_status(15),
        ExitInfo {
            code: None,
            signal: Some(15)
        }
    );
    assert_eq!(
        ExitInfo::from_code_signal("0:15"),
        Some(ExitInfo {
            code: None,
            signal: Some(15)
        })
    );
    assert_eq!(ExitInfo::from_code_signal("3:0").unwrap().code, Some(3));
    assert_eq!(ExitInfo::from_code_signal("x"), None);
    assert_eq!(center_comment("sz-a"), "suanli:sz-a");
}

/// `squeue --json` of Slurm 22.05.8 (three of the fields per job it prints are cut for length;
/// the rest as printed): a completed, a failed (`exit 3`), a cancelled and a pending job.
const SQUEUE_2205: &str = r#"{
  "meta": {"plugin": {"type": "openapi\/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
       "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}},
  "errors": [],
  "jobs": [
{"account": "", "accrue_time": 1795734882, "batch_flag": true, "batch_host": "n1",
 "cluster": "ci", "command": "\/tmp\/sj\/ok.sh", "comment": "suanli:c-slurm",
 "derived_exit_code": 0, "eligible_time": 1795734882, "end_time": 1795734883,
 "exit_code": 0, "gres_detail": [], "job_id": 1,
 "job_resources": {"nodes": "n1", "allocated_cores": 1, "allocated_hosts": 1},
 "job_state": "COMPLETED", "name": "suanli-1-1", "nodes": "n1", "partition": "main",
 "start_time": 1795734883, "state_description": "", "state_reason": "None",
 "standard_error": "\/tmp\/sj\/e1.txt", "standard_output": "\/tmp\/sj\/o1.txt",
 "submit_time": 1795734882, "time_limit": 2, "tres_per_node": "gres:gpu:fake:1",
 "user_id": 0, "user_name": "root", "current_working_directory": "\/tmp\/sj"},
{"comment": "", "end_time": 1795734884, "exit_code": 768, "job_id": 2,
 "job_state": "FAILED", "name": "suanli-2-1", "nodes": "n[1-2]",
 "start_time": 1795734884, "state_reason": "NonZeroExitCode", "time_limit": 1},
{"comment": "", "end_time": 1795734885, "exit_code": 15, "job_id": 3,
 "job_state": "CANCELLED", "name": "suanli-3-1", "nodes": "n1",
 "start_time": 1795734885, "state_reason": "None", "time_limit": 1},
{"comment": "", "end_time": 0, "exit_code": 0, "job_id": 4, "job_state": "PENDING",
 "name": "other", "nodes": "", "start_time": 0, "state_reason": "Priority", "time_limit": 1}
  ]
}"#;

/// The same jobs in the `data_parser` shape of Slurm 23.02 and later.
const SQUEUE_2311: &str = r#"{"jobs": [
  {"job_id": 7, "name": "suanli-7-2", "comment": "suanli:c",
   "job_state": ["CANCELLED", "COMPLETING"], "state_reason": "None",
   "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "infinite": false, "number": 0},
                 "signal": {"id": {"set": true, "infinite": false, "number": 15}, "name": "TERM"}},
   "start_time": {"set": true, "infinite": false, "number": 1795734885},
   "end_time": {"set": true, "infinite": false, "number": 1795734890},
   "nodes": "n1"},
  {"job_id": 8, "name": "suanli-8-1", "job_state": ["FAILED"],
   "exit_code": {"status": ["NONZERO"], "return_code": {"set": true, "infinite": false, "number": 3},
                 "signal": {"id": {"set": false, "infinite": false, "number": 0}}},
   "start_time": {"set": false, "infinite": false, "number": 0},
   "end_time": {"set": true, "infinite": false, "number": 1795734891}},
  {"name": "no id"}
]}"#;

#[test]
fn parses_squeue_json_of_22_05_and_later() {
    let jobs = parse_squeue_json(SQUEUE_2205).unwrap();
    assert_eq!(jobs.len(), 4);
    assert_eq!(
        jobs[0],
        SlurmJob {
            id: 1,
            name: "suanli-1-1".into(),
            state: "COMPLETED".into(),
            reason: "None".into(),
            exit: Some(ExitInfo {
                code: Some(0),
                signal: None
            }),
            start: Some(Timestamp(1_795_734_883_000)),
            end: Some(Timestamp(1_795_734_883_000)),
            nodes: "n1".into(),
            comment: "suanli:c-slurm".into(),
        }
    );
    assert_eq!(jobs[1].exit.unwrap().code, Some(3));
    assert_eq!(jobs[1].nodes, "n[1-2]");
    assert_eq!(jobs[2].exit.unwrap().signal, Some(15));
    assert_eq!((jobs[3].start, jobs[3].end), (None, None));
    assert_eq!(jobs[3].state, "PENDING");

    let jobs = parse_squeue_json(SQUEUE_2311).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].state, "COMPLETING");
    assert_eq!(jobs[0].exit.unwrap().signal, Some(15));
    assert_eq!(jobs[0].end, Some(Timestamp(1_795_734_890_000)));
    assert_eq!(jobs[1].state, "FAILED");
    assert_eq!(
        jobs[1].exit,
        Some(ExitInfo {
            code: Some(3),
            signal: None
        })
    );
    assert_eq!(jobs[1].start, None);

    assert!(parse_squeue_json("squeue: error: ...").is_err());
    assert!(parse_squeue_json("{\"meta\": {}}").is_err());
}

/// `scontrol show job -o 2` of Slurm 22.05.8, as printed.
const SCONTROL_2205: &str = "JobId=2 JobName=suanli-2-1 UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 Account=(null) QOS=(null) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=3:0 RunTime=00:00:00 TimeLimit=00:01:00 TimeMin=N/A SubmitTime=2026-11-26T23:14:42 EligibleTime=2026-11-26T23:14:42 AccrueTime=2026-11-26T23:14:42 StartTime=2026-11-26T23:14:44 EndTime=2026-11-26T23:14:44 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T23:14:44 Scheduler=Main Partition=main AllocNode:Sid=localhost:10908 ReqNodeList=(null) ExcNodeList=(null) NodeList=n[1-2] BatchHost=n1 NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=2,node=2,billing=2 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp/sj StdErr=/tmp/sj/o2.txt StdIn=/dev/null StdOut=/tmp/sj/o2.txt Power= TresPerNode=gres:gpu:2 \n";

#[test]
fn parses_scontrol_show_job() {
    let j = parse_scontrol_job(SCONTROL_2205).unwrap();
    assert_eq!(j.id, 2);
    assert_eq!(j.name, "suanli-2-1");
    assert_eq!(j.state, "FAILED");
    assert_eq!(j.reason, "NonZeroExitCode");
    assert_eq!(j.exit.unwrap().code, Some(3));
    assert_eq!(j.nodes, "n[1-2]");
    assert_eq!(j.comment, "");
    let pending = "JobId=3 JobName=suanli-3-1 UserId=root(0) JobState=PENDING Reason=Priority ExitCode=0:0 Comment=suanli:c a b NodeList= BatchHost=n1 Power= \n";
    let j = parse_scontrol_job(pending).unwrap();
    assert_eq!(
        (j.state.as_str(), j.reason.as_str()),
        ("PENDING", "Priority")
    );
    assert_eq!(j.comment, "suanli:c a b");
    assert_eq!(j.nodes, "");
    assert_eq!(
        parse_scontrol_job("slurm_load_jobs error: Invalid job id specified\n"),
        None
    );
    assert!(is_unknown_job_error(
        "slurm_load_jobs error: Invalid job id specified"
    ));
    let f = scontrol_fields("NodeName=n1 OS=Linux 6.1 #1 SMP  RealMemory=4000");
    assert_eq!(f["OS"], "Linux 6.1 #1 SMP");
    assert_eq!(f["RealMemory"], "4000");
}

#[test]
fn maps_every_state() {
    use SlurmEnd as E;
    use SlurmPhase as P;
    for (s, p) in [
        ("PENDING", P::Waiting),
        ("CONFIGURING", P::Waiting),
        ("REQUEUED", P::Waiting),
        ("REQUEUE_FED", P::Waiting),
        ("REQUEUE_HOLD", P::Waiting),
        ("RESV_DEL_HOLD", P::Waiting),
        ("POWER_UP_NODE", P::Waiting),
        ("RUNNING", P::Running),
        ("SUSPENDED", P::Running),
        ("STOPPED", P::Running),
        ("RESIZING", P::Running),
        ("SIGNALING", P::Running),
        ("UPDATE_DB", P::Running),
        ("COMPLETING", P::Ending),
        ("STAGE_OUT", P::Ending),
        ("COMPLETED", P::Ended(E::Completed)),
        ("FAILED", P::Ended(E::Failed)),
        ("OUT_OF_MEMORY", P::Ended(E::OutOfMemory)),
        ("TIMEOUT", P::Ended(E::Timeout)),
        ("DEADLINE", P::Ended(E::Deadline)),
        ("CANCELLED", P::Ended(E::Cancelled)),
        ("NODE_FAIL", P::Ended(E::NodeFail)),
        ("BOOT_FAIL", P::Ended(E::BootFail)),
        ("PREEMPTED", P::Ended(E::Preempted)),
        ("REVOKED", P::Ended(E::Revoked)),
        ("SPECIAL_EXIT", P::Ended(E::SpecialExit)),
        ("cancelled", P::Ended(E::Cancelled)),
    ] {
        assert_eq!(map_state(s), Some(p), "{s}");
        if let P::Ended(e) = p {
            assert_eq!(e.as_str(), s.to_ascii_uppercase());
        }
    }
    assert_eq!(map_state("LAUNCH_FAILED_SOMEHOW"), None);
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        effective_state(&v(&["CANCELLED", "COMPLETING"])),
        "COMPLETING"
    );
    assert_eq!(effective_state(&v(&["PENDING", "REQUEUED"])), "REQUEUED");
    assert_eq!(effective_state(&v(&["running"])), "RUNNING");
    assert_eq!(effective_state(&[]), "UNKNOWN");
}

#[test]
fn outcomes() {
    let code = |c| Some(ExitInfo::of(Some(c), None));
    let sig = |s| Some(ExitInfo::of(None, Some(s)));
    let out = |x: Exit| (x.outcome, x.exit_code, x.message);
    use SlurmEnd as E;
    assert_eq!(
        outcome_of(E::Completed, code(0), "None"),
        Exit::new(Outcome::Succeeded, Some(0), "")
    );
    assert_eq!(
        out(outcome_of(E::Failed, code(3), "NonZeroExitCode")),
        (Outcome::Failed, Some(3), "exited with code 3".into())
    );
    assert_eq!(
        out(outcome_of(E::Failed, sig(9), "None")),
        (Outcome::Failed, None, "killed by signal 9".into())
    );
    assert_eq!(
        out(outcome_of(E::Failed, code(1), "JobLaunchFailure")),
        (
            Outcome::Failed,
            Some(1),
            "exited with code 1 (Slurm FAILED, reason JobLaunchFailure)".into()
        )
    );
    assert_eq!(
        out(outcome_of(E::OutOfMemory, code(0), "OutOfMemory")),
        (
            Outcome::Failed,
            None,
            "ran out of memory (Slurm OUT_OF_MEMORY)".into()
        )
    );
    assert_eq!(
        outcome_of(E::Timeout, sig(15), "TimeLimit").outcome,
        Outcome::TimedOut
    );
    assert_eq!(outcome_of(E::Deadline, None, "").outcome, Outcome::TimedOut);
    // Cancelled: the agent's reason decides when the agent cancelled it (see the supervisor);
    // otherwise someone else did.
    assert_eq!(
        outcome_of(E::Cancelled, sig(15), "None"),
        Exit::cancelled(
            Outcome::Failed,
            None,
            "cancelled in Slurm, not by suanli (Slurm CANCELLED)"
        )
    );
    assert!(!outcome_of(E::Completed, code(0), "None").cancelled);
    for e in [E::NodeFail, E::BootFail, E::Preempted, E::Revoked] {
        let x = outcome_of(e, sig(9), "None");
        assert_eq!(x.outcome, Outcome::Killed, "{e:?} requeues");
        assert!(x.message.contains(e.as_str()), "{}", x.message);
    }
    assert_eq!(
        outcome_of(E::SpecialExit, code(2), "None").message,
        "exited with code 2 (Slurm SPECIAL_EXIT)"
    );
}

/// `sinfo -N -h -O` SINFO_FORMAT of Slurm 22.05.8, one job on n1, plus typical production lines.
const SINFO_2205: &str = "n1|gpu:fake:2|gpu:fake:1(IDX:0)|mixed|\n\
                          n2|gpu:fake:2|gpu:fake:0(IDX:N/A)|idle|\n\
                          n2|gpu:fake:2|gpu:fake:0(IDX:N/A)|idle|\n\
                          g1|gpu:a100:4(S:0-1),gpu:v100:2(S:0)|gpu:a100:2(IDX:0,2),gpu:v100:0(IDX:N/A)|allocated|\n\
                          c1|(null)|gpu:0|idle|\n\
                          g2|gpu:8|gpu:0|down*|\n\
                          g3|gpu:8|gpu:0|drained|\n";

#[test]
fn parses_sinfo_and_gres() {
    let nodes = parse_sinfo(SINFO_2205);
    assert_eq!(nodes.len(), 6, "n2 once");
    assert_eq!(nodes[0].name, "n1");
    assert_eq!(
        nodes[0].gres,
        [Gres {
            name: "gpu".into(),
            kind: Some("fake".into()),
            count: 2
        }]
    );
    assert_eq!(nodes[0].gres_used[0].count, 1);
    assert!(nodes[0].usable() && nodes[1].usable());
    assert_eq!(nodes[2].gres.len(), 2);
    assert_eq!(nodes[2].gres[1].spec(), "gpu:v100");
    assert_eq!(nodes[2].gres_used[0].count, 2);
    assert!(nodes[2].usable());
    assert!(nodes[3].gres.is_empty());
    assert!(!nodes[4].usable() && !nodes[5].usable());
    assert_eq!(
        parse_gres("gpu:8"),
        [Gres {
            name: "gpu".into(),
            kind: None,
            count: 8
        }]
    );
    assert_eq!(
        parse_gres("npu:ascend910b:8(S:0-1)")[0].spec(),
        "npu:ascend910b"
    );
    assert_eq!(parse_gres("mps:1K"), []);

    let reqs = [
        ("A100".to_string(), "gpu:a100".to_string()),
        ("RTX4090".to_string(), "gpu".to_string()),
    ];
    let inv = slurm_inventory(&nodes, &reqs);
    let row = |n: &str, s: &str| {
        inv.iter()
            .find(|i| i.node == n && i.sku == s)
            .map(|i| (i.cards, i.free_cards))
    };
    assert_eq!(row("n1", "RTX4090"), Some((2, 1)));
    assert_eq!(row("n2", "RTX4090"), Some((2, 2)));
    assert_eq!(row("g1", "A100"), Some((4, 2)));
    assert_eq!(
        row("g1", "RTX4090"),
        Some((2, 2)),
        "untyped request takes the v100s"
    );
    assert_eq!(row("g2", "RTX4090"), Some((8, 0)), "down: no free cards");
    assert_eq!(row("g3", "RTX4090"), Some((8, 0)));
    assert_eq!(inv.iter().filter(|i| i.node == "c1").count(), 0);
    assert!(slurm_inventory(&nodes, &[("X".into(), "npu".into())]).is_empty());
    assert!(parse_gres("N/A").is_empty());
}

#[test]
fn the_warning_signal_goes_to_the_batch_shell_or_to_everything() {
    use suanli_types::spec::signal::WarnSignal;
    let b = WarnSignal::parse("B:USR1@120").unwrap();
    assert_eq!(
        super::script::warn_args(42, &b),
        ["--signal=USR1", "--batch", "42"]
    );
    let all = WarnSignal::parse("SIGUSR2").unwrap();
    assert_eq!(
        super::script::warn_args(7, &all),
        ["--signal=USR2", "--full", "7"]
    );
}

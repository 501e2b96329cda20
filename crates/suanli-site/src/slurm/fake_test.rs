//! The backend's runtime (submit, track, tail, cancel, wall time, fallback to `scontrol`, metering)
//! against a fake Slurm: shell scripts standing in for `sbatch`, `squeue`, `scontrol`, `scancel` and
//! `sinfo`, which run each batch script at once on this machine. The real Slurm is exercised by the
//! integration test `slurm::jobs_run_through_a_real_slurm` of the `suanli` crate.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use suanli_proto::{Outcome, Stream};
use suanli_types::JobSpec;

use super::{SlurmBackend, SlurmConfig};
use crate::backend::{Launch, stop_channel};
use crate::supervisor::Supervised;
use crate::testing::{assert_has, attempt, launch, rows, run, run_to_end, text};

/// One script for every command (dispatch on its name); state in `../state`.
const FAKE: &str = r#"#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd)
st="$here/../state"
mkdir -p "$st"
state_of() {
  n=$1
  if [ -f "$st/$n.gone" ]; then echo GONE; return; fi
  if [ ! -f "$st/$n.rc" ]; then echo RUNNING; return; fi
  if [ -f "$st/$n.cancelled" ]; then echo CANCELLED; return; fi
  if [ "$(cat "$st/$n.rc")" = 0 ]; then echo COMPLETED; else echo FAILED; fi
}
case "$(basename "$0")" in
sbatch)
  out=/dev/null; err=/dev/null; dir=.; name=; comment=; script=
  for a in "$@"; do
    case "$a" in
      --output=*) out="${a#--output=}";;
      --error=*) err="${a#--error=}";;
      --chdir=*) dir="${a#--chdir=}";;
      --job-name=*) name="${a#--job-name=}";;
      --comment=*) comment="${a#--comment=}";;
      --*) ;;
      *) script="$a";;
    esac
  done
  if [ -f "$st/refuse" ]; then
    echo "sbatch: error: Batch job submission failed: Requested node configuration is not available" >&2
    exit 1
  fi
  n=$(( $(cat "$st/next" 2>/dev/null || echo 100) + 1 ))
  echo "$n" > "$st/next"
  echo "$name" > "$st/$n.name"
  echo "$comment" > "$st/$n.comment"
  date +%s > "$st/$n.start"
  (
    cd "$dir" || exit 1
    SLURM_JOB_ID=$n SLURM_JOB_NODELIST=fake[1-2] SLURM_JOB_GPUS=0,1 setsid sh "$script" >"$out" 2>"$err" &
    echo $! > "$st/$n.pid"
    wait $!
    echo $? > "$st/$n.rc.tmp"
    date +%s > "$st/$n.end"
    mv "$st/$n.rc.tmp" "$st/$n.rc"
  ) >/dev/null 2>&1 &
  while [ ! -f "$st/$n.pid" ]; do sleep 0.01; done
  echo "$n;fake"
  ;;
squeue)
  if [ "$1" = "--json" ]; then
    if [ -f "$st/nojson" ]; then echo "squeue: unrecognized option '--json'" >&2; exit 1; fi
    printf '{"meta": {}, "errors": [], "jobs": ['
    sep=
    for f in "$st"/*.start; do
      [ -f "$f" ] || continue
      n=$(basename "$f" .start)
      s=$(state_of "$n")
      [ "$s" = GONE ] && continue
      end=0; code=0
      if [ -f "$st/$n.rc" ]; then end=$(cat "$st/$n.end"); code=$(( $(cat "$st/$n.rc") * 256 )); fi
      [ "$s" = CANCELLED ] && code=15
      printf '%s{"job_id": %s, "name": "%s", "comment": "%s", "job_state": "%s", "state_reason": "None", "exit_code": %s, "start_time": %s, "end_time": %s, "nodes": "fake[1-2]"}' \
        "$sep" "$n" "$(cat "$st/$n.name")" "$(cat "$st/$n.comment")" "$s" "$code" "$(cat "$f")" "$end"
      sep=", "
    done
    printf ']}\n'
  else
    for f in "$st"/*.start; do
      [ -f "$f" ] || continue
      n=$(basename "$f" .start)
      [ "$(state_of "$n")" = RUNNING ] && echo "$n|$(cat "$st/$n.comment")|$(cat "$st/$n.name")"
    done
  fi
  ;;
scontrol)
  n=$4
  if [ ! -f "$st/$n.start" ] || [ "$(state_of "$n")" = GONE ]; then
    echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1
  fi
  s=$(state_of "$n"); ec=0:0
  if [ -f "$st/$n.rc" ]; then ec="$(cat "$st/$n.rc"):0"; fi
  [ "$s" = CANCELLED ] && ec=0:15
  echo "JobId=$n JobName=$(cat "$st/$n.name") UserId=root(0) JobState=$s Reason=None ExitCode=$ec RunTime=00:00:01 StartTime=2026-11-26T23:14:44 NodeList=fake[1-2] Comment=$(cat "$st/$n.comment")"
  ;;
scancel)
  for n in "$@"; do
    touch "$st/$n.cancelled"
    kill -TERM "-$(cat "$st/$n.pid")" 2>/dev/null || true
  done
  exit 0
  ;;
sinfo)
  echo "fake1|gpu:fake:2|gpu:fake:1(IDX:0)|mixed|"
  echo "fake2|gpu:fake:2|gpu:fake:0(IDX:N/A)|down*|"
  ;;
esac
"#;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let script = bin.join("fake-slurm");
        std::fs::write(&script, FAKE).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        for cmd in ["sbatch", "squeue", "scontrol", "scancel", "sinfo"] {
            std::os::unix::fs::symlink(&script, bin.join(cmd)).unwrap();
        }
        Fake { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn backend(&self) -> Supervised<SlurmBackend> {
        let cfg = SlurmConfig {
            bin_dir: Some(self.dir.path().join("bin")),
            poll_interval: Duration::from_millis(50),
            gres: BTreeMap::from([("RTX4090".to_string(), "gpu:fake".to_string())]),
            ..Default::default()
        };
        let center = crate::inventory::tests::center(&[("RTX4090", 2, 2)]);
        Supervised::new(SlurmBackend::new(cfg, &center), Duration::from_secs(1))
    }

    fn launch(&self, job: i64, command: &str) -> Launch {
        let mut spec = JobSpec::new("t", command);
        spec.env
            .insert("FAKE_STATE".into(), self.state().display().to_string());
        launch(
            &self.dir.path().join("work"),
            attempt(job, 1),
            spec,
            "RTX4090",
            &[1],
        )
    }
}

#[tokio::test]
async fn runs_tracks_and_meters_through_the_cli() {
    let fake = Fake::new();
    let b = fake.backend();
    let mut l = fake.launch(
        1,
        "echo \"id=$SUANLI_SLURM_JOB_ID nodes=$SUANLI_SLURM_NODES dev=$CUDA_VISIBLE_DEVICES job=$SUANLI_JOB_ID\"; cat in.txt; echo warn >&2; sleep 1.2; echo done",
    );
    l.spec.files.insert("in.txt".into(), "input\n".into());
    let work = l.work_dir.clone();
    let (r, logs) = run_to_end(&b, l).await;
    assert_eq!(
        (r.outcome, r.exit_code),
        (Outcome::Succeeded, Some(0)),
        "{r:?}"
    );
    assert_eq!(
        text(&logs, Stream::Stdout),
        "id=101 nodes=fake[1-2] dev=0,1 job=1\ninput\ndone\n"
    );
    assert_eq!(text(&logs, Stream::Stderr), "warn\n");
    assert!(logs.len() >= 3, "shipped while running: {logs:?}");
    let (start, end) = r.span.expect("Slurm's times");
    assert!(end.millis() - start.millis() >= 1000, "{start} {end}");
    assert_eq!(start.millis() % 1000, 0, "from Slurm's epoch seconds");
    let script = std::fs::read_to_string(work.join(".suanli/job.sh")).unwrap();
    assert!(script.contains("export SUANLI_JOB_ID='1'"), "{script}");

    let (r, logs) = run_to_end(&b, fake.launch(2, "echo bye; exit 3")).await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Failed, Some(3)));
    assert_eq!(r.message, "exited with code 3");
    assert_eq!(text(&logs, Stream::Stdout), "bye\n");

    // The inventory: what sinfo says; the down node has no free cards.
    let inv = b.backend().nodes().await.unwrap();
    assert_eq!(
        rows(&inv),
        [("fake1", "RTX4090", 2, 1), ("fake2", "RTX4090", 2, 0)]
    );
}

#[tokio::test]
async fn stop_and_walltime_end_the_slurm_job() {
    let fake = Fake::new();
    let b = fake.backend();
    let (h, stop) = stop_channel();
    let l = fake.launch(3, "echo up; sleep 30");
    let out = l.work_dir.join(".suanli/stdout");
    let task = tokio::spawn({
        let b = fake.backend();
        async move { run(&b, l, stop).await }
    });
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&out).unwrap_or_default() != "up\n" {
        assert!(t.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop("killed at the hub's request");
    let (r, logs) = task.await.unwrap();
    assert_eq!(r.outcome, Outcome::Killed, "{r:?}");
    assert_eq!(r.message, "killed at the hub's request");
    assert_eq!(text(&logs, Stream::Stdout), "up\n");
    assert!(fake.state().join("101.cancelled").exists(), "scancel ran");
    assert!(t.elapsed() < Duration::from_secs(10));

    let mut l = fake.launch(4, "echo tick; sleep 30");
    l.spec.walltime = 1;
    let t = std::time::Instant::now();
    let (r, logs) = run_to_end(&b, l).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    assert_eq!(r.message, "wall-time limit of 1 s reached");
    assert_eq!(text(&logs, Stream::Stdout), "tick\n");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());

    // Stopped before submission: nothing reaches Slurm.
    let (h, stop) = stop_channel();
    h.stop("site agent stopped");
    let (r, _) = run(&b, fake.launch(5, "true"), stop).await;
    assert_eq!(r.outcome, Outcome::Killed);
    assert!(!fake.state().join("103.start").exists());
}

#[tokio::test]
async fn slurm_side_failures_are_reported() {
    let fake = Fake::new();
    let b = fake.backend();
    // Cancelled in Slurm by someone else.
    let l = fake.launch(6, "echo $SLURM_JOB_ID > \"$FAKE_STATE/victim\"; sleep 30");
    let task = tokio::spawn({
        let b = fake.backend();
        async move { run_to_end(&b, l).await }
    });
    let victim = fake.state().join("victim");
    let t = std::time::Instant::now();
    while !victim.exists() {
        assert!(t.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = std::process::Command::new(fake.dir.path().join("bin/scancel"))
        .arg("101")
        .status()
        .unwrap();
    assert!(out.success());
    let (r, _) = task.await.unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert_has(&r.message, "cancelled in Slurm, not by suanli");

    // Gone from the queue without a final state.
    let (r, _) = run_to_end(
        &b,
        fake.launch(7, "touch \"$FAKE_STATE/$SLURM_JOB_ID.gone\"; sleep 30"),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_has(&r.message, "left Slurm's queue");
    let _ = std::process::Command::new(fake.dir.path().join("bin/scancel"))
        .arg("102")
        .status();

    // sbatch refuses.
    std::fs::write(fake.state().join("refuse"), "").unwrap();
    let (r, _) = run_to_end(&b, fake.launch(8, "true")).await;
    assert_eq!(r.outcome, Outcome::Failed);
    assert_has(
        &r.message,
        "Slurm refused the job: sbatch: error: Batch job submission failed",
    );
}

#[tokio::test]
async fn falls_back_to_scontrol_without_json_and_cancels_orphans() {
    let fake = Fake::new();
    std::fs::write(fake.state().join("nojson"), "").unwrap();
    let b = fake.backend();
    let (r, logs) = run_to_end(&b, fake.launch(9, "echo fallback; sleep 0.3; exit 4")).await;
    assert_eq!(
        (r.outcome, r.exit_code),
        (Outcome::Failed, Some(4)),
        "{r:?}"
    );
    assert_eq!(text(&logs, Stream::Stdout), "fallback\n");
    let (start, end) = r.span.unwrap();
    assert!(end >= start);

    // A job an earlier agent of this center left behind, and one of another center.
    let sbatch = |comment: &str| {
        let out = std::process::Command::new(fake.dir.path().join("bin/sbatch"))
            .args([
                "--job-name=suanli-99-1",
                &format!("--comment={comment}"),
                "--output=/dev/null",
            ])
            .arg(write_script(fake.dir.path(), "sleep 30"))
            .output()
            .unwrap();
        super::parse::parse_sbatch_id(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    let mine = sbatch("suanli:test-center");
    let other = sbatch("suanli:elsewhere");
    assert_eq!(b.backend().cancel_orphans().await.unwrap(), [mine]);
    assert!(fake.state().join(format!("{mine}.cancelled")).exists());
    assert!(!fake.state().join(format!("{other}.cancelled")).exists());
    let _ = std::process::Command::new(fake.dir.path().join("bin/scancel"))
        .arg(other.to_string())
        .status();
}

fn write_script(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join(format!("s{}.sh", body.len()));
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    p
}

/// sbatch hands its environment to the job: it gets none of the agent's (the test process's
/// `CARGO_*` stand in for the agent's secrets), only the job's own, the fixed `PATH` and `HOME`.
#[tokio::test]
async fn the_job_inherits_nothing_of_the_agents_environment() {
    assert!(
        std::env::var_os("CARGO_MANIFEST_DIR").is_some(),
        "cargo sets it for tests"
    );
    let fake = Fake::new();
    let b = fake.backend();
    let l = fake.launch(5, "env");
    let work = l.work_dir.clone();
    let (r, logs) = run_to_end(&b, l).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let env = text(&logs, Stream::Stdout);
    assert!(!env.contains("CARGO_MANIFEST_DIR"), "{env}");
    assert_has(&env, &format!("PATH={}\n", crate::isolation::JOB_PATH));
    assert_has(&env, &format!("HOME={}\n", work.display()));
    assert_has(&env, "SUANLI_JOB_ID=5\n");
}

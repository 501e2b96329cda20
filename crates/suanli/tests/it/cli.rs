//! The real binary, tried as a new user would: `suanli up`, then client verbs from "another shell".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suanli_types::Money;

const BIN: &str = env!("CARGO_BIN_EXE_suanli");

struct Up {
    child: Child,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::contract::check();
    }
}

fn up() -> Up {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--write-config")
        .arg(&config)
        .env("HOME", dir.path())
        .env(crate::contract::ENV, crate::contract::dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("suanli is up"), "{first}");
    std::thread::spawn(move || for _ in lines {});
    Up {
        child,
        config,
        _dir: dir,
    }
}

fn suanli(up: &Up, args: &[&str]) -> (i32, String, String) {
    with_config(&up.config, args)
}

/// Runs the CLI like [`suanli`], which must succeed; its stdout.
fn ok(up: &Up, args: &[&str]) -> String {
    let (code, out, err) = suanli(up, args);
    assert_eq!(code, 0, "suanli {args:?}: {err}");
    out
}

/// Runs the `suanli` CLI with a client config file: exit code, stdout, stderr.
pub(crate) fn with_config(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = cli(config, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `suanli` CLI with a client config file and none of the caller's suanli environment.
fn cli(config: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SUANLI_HUB")
        .env_remove("SUANLI_TOKEN")
        .env_remove("SUANLI_PROFILE");
    cmd
}

/// Runs the CLI like [`with_config`] with its stdout closed before it writes: exit code, stderr.
fn closed_stdout(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let mut child = cli(config, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until the demo centers heartbeat (within a moment of `up`).
fn online(up: &Up) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ok(up, &["centers"]);
        if out.contains("online") {
            assert!(
                out.contains("pcl-cb2") && out.contains("Ascend910A"),
                "{out}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "centers never came online: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn up_then_submit_wait_logs_job_centers() {
    let up = up();
    online(&up);
    let id = ok(
        &up,
        &[
            "submit",
            "--parsable",
            "--cards",
            "1",
            "--",
            "echo",
            "hello",
        ],
    );
    let id = id.trim().to_string();
    assert!(id.parse::<i64>().is_ok(), "{id:?}");
    ok(&up, &["wait", &id]);
    let (code, out, _) = suanli(&up, &["logs", &id]);
    assert_eq!(code, 0);
    assert_eq!(out, "hello\n");
    let (code, out, _) = suanli(&up, &["job", &id]);
    assert_eq!(code, 0);
    assert!(out.contains("succeeded"), "{out}");
    assert!(
        out.to_lowercase().contains("rejected") || out.contains("cost"),
        "{out}"
    );

    // The statistics of the quarter so far, as a preliminary release: the three files, with
    // the job counted, and the report opens in Chromium with its charts.
    let quarter = suanli_indicators::Quarter::of(suanli_hub::engine::now()).to_string();
    let out_dir = up._dir.path().join("release");
    let out = ok(
        &up,
        &[
            "--profile",
            "operator",
            "admin",
            "release",
            "--quarter",
            &quarter,
            "--preliminary",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("release.json")).unwrap())
            .unwrap();
    assert!(json["preliminary_until"].as_i64().is_some(), "{json}");
    assert!(
        json["summary"]["active_tenants"].as_u64() >= Some(1)
            && json["summary"]["gross_yuan"].as_str() != Some("0.00")
            && json["summary"]["utilisation"].as_f64() > Some(0.0),
        "the demo network and its job are counted: {}",
        json["summary"]
    );
    let csv = std::fs::read_to_string(out_dir.join("release.csv")).unwrap();
    assert!(csv.contains(",preliminary_until,"), "{csv}");
    // Nothing was stored: the quarter has no release yet.
    let out = ok(&up, &["releases", "--json"]);
    assert!(!out.contains(&format!("\"{quarter}\"")), "{out}");
    let html = out_dir.join("release.html");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        if let Some(b) = crate::browser::start("release-preliminary", "zh-CN").await {
            b.goto(&format!("file://{}", html.display())).await;
            assert!(b.text("body").await.contains("preliminary"));
            b.find("svg#capacity-by-vendor rect").await;
            let shot = b.shot("up").await;
            assert!(
                std::fs::metadata(&shot).unwrap().len() > 10_000,
                "a real picture"
            );
        }
    });

    // The demo SME has a voucher grant: its bill shows the job subsidised.
    let out = ok(&up, &["bill", "--tenant", "demo-sme", "--json"]);
    let inv: serde_json::Value = serde_json::from_str(&out).unwrap();
    let money = |v: &serde_json::Value| v.as_str().unwrap().parse::<Money>().unwrap();
    let lines = inv["lines"].as_array().unwrap();
    let line = lines
        .iter()
        .find(|l| l["job"] == id.parse::<i64>().unwrap())
        .unwrap_or_else(|| panic!("no line for job {id}: {out}"));
    for l in lines {
        assert_eq!(
            money(&l["gross"]).0,
            money(&l["subsidy"]).0 + money(&l["payable"]).0,
            "{l}"
        );
    }
    assert!(money(&line["subsidy"]) > Money::ZERO, "{line}");
    let programme = line["programme"].as_str().unwrap().to_string();
    assert!(programme.starts_with("sz-demo-"), "{programme}");
    let out = ok(&up, &["bill", "--tenant", "demo-sme"]);
    assert!(
        out.contains("GROSS") && out.contains("SUBSIDY") && out.contains("PAYABLE"),
        "{out}"
    );
    assert!(out.contains(&programme) && out.contains("TOTAL"), "{out}");
    // The center's statement and the programme report agree with the invoice.
    let center = line["center"].as_str().unwrap();
    let out = ok(
        &up,
        &[
            "--profile",
            "operator",
            "statement",
            "--center",
            center,
            "--json",
        ],
    );
    let st: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(st["lines"].as_array().unwrap().contains(line), "{out}");
    let out = ok(
        &up,
        &[
            "--profile",
            "operator",
            "admin",
            "programme-report",
            &programme,
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        money(&report["paid_out"]),
        money(&inv["totals"]["subsidy"]),
        "{out}"
    );
    let out = ok(&up, &["vouchers"]);
    assert!(
        out.contains("Shenzhen (demo)") && out.contains("demo-sme"),
        "{out}"
    );

    let (code, _, err) = suanli(&up, &["submit", "--cards", "0", "--", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("cards_per_node"), "{err}");
    let failing = ok(&up, &["submit", "--parsable", "--", "exit 1"]);
    // A quote before submitting, and the reason a job waits.
    let out = ok(
        &up,
        &["quote", "--sku", "H800-SXM", "--cards", "8", "--", "true"],
    );
    assert!(out.contains("hk-cyberport") && out.contains("now"), "{out}");
    let mut long = Vec::new();
    for _ in 0..2 {
        let id = ok(
            &up,
            &[
                "submit",
                "--parsable",
                "--sku",
                "H800-SXM",
                "--cards",
                "8",
                "--",
                "sleep 60",
            ],
        );
        long.push(id.trim().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out, _) = suanli(&up, &["job", &long[1]]);
        if out.contains("needs 1 node x 8 free H800-SXM cards") {
            assert!(
                out.contains("ahead") || out.contains("hk-cyberport"),
                "{out}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no explanation: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, out, _) = suanli(
        &up,
        &["quote", "--sku", "H800-SXM", "--cards", "8", "--", "true"],
    );
    assert_eq!(code, 0);
    assert!(
        !out.contains(" now "),
        "the only pool is busy: the quote gives a later start: {out}"
    );
    // `wait` gives up at --timeout with 124, like timeout(1).
    let (code, _, err) = suanli(&up, &["wait", "--timeout", "1s", &long[0]]);
    assert_eq!(code, 124, "{err}");
    assert!(err.contains("Timed out waiting"), "{err}");
    // `jobs` lists active jobs, newest first; several states, Slurm's short names too.
    let out = ok(&up, &["jobs"]);
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert!(
        out.starts_with("ID ") && out.contains("TIME-LEFT") && out.contains("REASON"),
        "{out}"
    );
    assert!(
        rows.contains(&long[0].as_str()) && !rows.contains(&id.as_str()),
        "{out}"
    );
    let mut sorted = rows.clone();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.parse::<i64>().unwrap()));
    assert_eq!(rows, sorted, "newest first: {out}");
    let out = ok(
        &up,
        &["jobs", "-t", "CD,R", "-o", "wide", "-u", "nobody-at-all"],
    );
    assert_eq!(out.lines().count(), 1, "no job of that user: {out}");
    let out = ok(&up, &["jobs", "--state", "CD", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "succeeded"),
        "{out}"
    );
    assert!(out.contains(&format!("\"id\": {id}")), "{out}");
    // `cancel` takes several ids.
    let mut cancel = vec!["cancel"];
    cancel.extend(long.iter().map(String::as_str));
    let out = ok(&up, &cancel);
    assert_eq!(out.lines().count(), long.len(), "{out}");
    let out = ok(&up, &["jobs", "-t", "CA"]);
    assert!(
        long.iter()
            .all(|l| out.lines().any(|r| r.starts_with(&format!("{l} ")))),
        "{out}"
    );
    // Otherwise its exit code tells how the job ended (`suanli wait --help`).
    let (code, out, err) = suanli(&up, &["wait", &long[0]]);
    assert_eq!(code, 6, "cancelled: {out}{err}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, out, err) = suanli(&up, &["wait", failing.trim()]);
    assert_eq!(code, 5, "failed: {out}{err}");
    assert!(out.contains("failed (exit code 1)"), "{out}");
    // Not found, unreachable and bad flags have codes of their own.
    for args in [
        &["job", "999999"][..],
        &["wait", "999999"],
        &["logs", "999999"],
    ] {
        let (code, _, err) = suanli(&up, args);
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.starts_with("error: not_found"), "{err}");
    }
    let (code, _, err) = suanli(&up, &["--hub", "http://127.0.0.1:1", "centers"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cannot reach the hub"), "{err}");
    let (code, _, _) = suanli(&up, &["jobs", "--state", "sleeping"]);
    assert_eq!(code, 2);

    // A reader that goes before the verb writes (`suanli jobs | head`) ends it quietly.
    for args in [&["jobs"][..], &["centers", "--json"], &["logs", &id]] {
        let (code, err) = closed_stdout(&up.config, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
    }

    let (code, out, _) = suanli(&up, &["jobs", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.is_object() || v.is_array());

    // A Slurm batch script, as users of the supercomputing centers bring them.
    let script = up.config.with_file_name("train.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n#SBATCH --job-name=sbatch-demo\n#SBATCH --nodes=1\n#SBATCH --gres=gpu:2\n\
         #SBATCH --time=00:10:00\n#SBATCH --output=train-%j.out\n#SBATCH --export=ALL,EPOCHS=2\n\n\
         set -u\n\
         echo \"epochs=$EPOCHS cards=$SUANLI_CARDS arg=$1\"\n\
         echo \"slurm $SLURM_JOB_ID $SLURM_JOB_NAME $SLURM_NNODES $SLURM_NTASKS $SLURM_GPUS_ON_NODE $SLURM_NODEID\"\n\
         test \"$SLURM_SUBMIT_DIR\" = \"$HOME\" && test -n \"$SLURM_JOB_NODELIST\"\n",
    )
    .unwrap();
    let (code, id, err) = suanli(
        &up,
        &[
            "submit",
            "--parsable",
            script.to_str().unwrap(),
            "first arg",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("line 6") && err.contains("suanli logs"),
        "warns about --output: {err}"
    );
    let id = id.trim().to_string();
    ok(&up, &["wait", &id]);
    let (_, out, _) = suanli(&up, &["logs", &id]);
    assert_eq!(
        out,
        format!("epochs=2 cards=2 arg=first arg\nslurm {id} sbatch-demo 1 1 2 0\n")
    );
    let (_, out, _) = suanli(&up, &["job", &id]);
    assert!(out.contains("sbatch-demo"), "{out}");
    // Untyped `gpu` is an NVIDIA card.
    assert!(
        out.contains("vendor nvidia") && out.contains("stack cuda"),
        "{out}"
    );
    // A script asking for no accelerator is refused, unless cards are given.
    std::fs::write(&script, "#!/bin/sh\n#SBATCH -N 1 -n 4\ntrue\n").unwrap();
    let (code, _, err) = suanli(&up, &["submit", script.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no accelerator"), "{err}");
    std::fs::write(&script, "#SBATCH --time=forever\ntrue\n").unwrap();
    let (code, _, err) = suanli(&up, &["submit", script.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("line 1") && err.contains("--time=forever"),
        "{err}"
    );

    // The demo's models, certified by their own benchmarks at three centers of domestic chips:
    // every throughput in the matrix measured.
    let deadline = Instant::now() + Duration::from_secs(60);
    let matrix = loop {
        let out = ok(&up, &["certs", "--model", "shell-count"]);
        if out.matches("accepted").count() == 3 || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for sku in ["Ascend910A", "MLU370-X8", "C500"] {
        let row = matrix
            .lines()
            .find(|l| l.starts_with(sku))
            .unwrap_or_else(|| panic!("no {sku} in {matrix}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[3..7], ["accepted", "OK", "OK", "OK"], "{matrix}");
        let throughput: f64 = cols[7].parse().unwrap();
        assert!(throughput > 0.0, "{matrix}");
    }
    assert!(ok(&up, &["models"]).contains("shell-sort@v1"));
    // A job that names the model is placed where it is certified, and the quote shows each
    // center's expected run time from the measured speeds.
    let quote = ok(
        &up,
        &[
            "quote",
            "--model",
            "shell-count",
            "--walltime",
            "10",
            "--",
            "true",
        ],
    );
    assert!(quote.contains(" RUN "), "{quote}");
    let id = ok(
        &up,
        &[
            "submit",
            "--parsable",
            "--model",
            "shell-count",
            "--",
            "echo modelled",
        ],
    );
    let id = id.trim();
    ok(&up, &["wait", id]);
    let job: serde_json::Value = serde_json::from_str(&ok(&up, &["job", "--json", id])).unwrap();
    assert_eq!(job["spec"]["model"], "shell-count@v1", "{job}");
    let at = job["placement"]["center"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        ["pcl-cb2", "hengqin-mlu", "ct-sz-metax"].contains(&at.as_str()),
        "{job}"
    );

    // The demo's data, as the tour runs it: a job on the restricted clinic data runs at its
    // home, its output is quarantined, released by the owner's admin, then downloads.
    let out = ok(&up, &["datasets"]);
    assert!(
        out.contains("gba-air-quality") && out.contains("sz-clinic-visits"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("sz-clinic-visits") && l.trim_end().ends_with("granted")),
        "{out}"
    );
    let id = ok(
        &up,
        &[
            "submit",
            "--parsable",
            "--dataset",
            "sz-clinic-visits",
            "--output",
            "out/*.csv",
            "--",
            "mkdir -p out; cut -d, -f2,4 $SUANLI_DATASET_SZ_CLINIC_VISITS/visits.csv > out/by-clinic.csv",
        ],
    );
    let id = id.trim();
    ok(&up, &["wait", id]);
    let job: serde_json::Value = serde_json::from_str(&ok(&up, &["job", "--json", id])).unwrap();
    assert_eq!(job["placement"]["center"], "pcl-cb2", "{job}");
    assert!(ok(&up, &["outputs", id]).contains("out/by-clinic.csv"));
    let got = tempfile::tempdir().unwrap();
    let into = got.path().to_str().unwrap();
    let (code, _, err) = suanli(&up, &["download", id, "-o", into]);
    assert_ne!(code, 0, "quarantined");
    assert!(err.contains("quarantined"), "{err}");
    let out = ok(
        &up,
        &["airlock", "request", id, "--why", "visits per clinic"],
    );
    assert!(out.contains("in-review"), "{out}");
    let req = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    let (code, _, err) = suanli(
        &up,
        &["airlock", "review", &req, "--approve", "--reason", "mine"],
    );
    assert_ne!(code, 0, "the requester does not review");
    assert!(err.contains("cannot review their own"), "{err}");
    let out = ok(
        &up,
        &[
            "--profile",
            "lab-admin",
            "airlock",
            "review",
            &req,
            "--approve",
            "--reason",
            "aggregates only",
        ],
    );
    assert!(out.contains("approved"), "{out}");
    ok(&up, &["download", id, "-o", into]);
    let csv = std::fs::read_to_string(got.path().join("out/by-clinic.csv")).unwrap();
    assert!(
        csv.starts_with("clinic,visits\n") && !csv.contains("p-0001"),
        "{csv}"
    );

    // The one hub of `up` (SQLite) says so; an operator drains and undrains a center.
    let out = ok(&up, &["hubs"]);
    assert!(
        out.contains("single") && out.contains("(this hub)"),
        "{out}"
    );
    let out = ok(&up, &["--profile", "operator", "admin", "drain", "pcl-cb2"]);
    assert!(out.starts_with("Drained pcl-cb2: no new work"), "{out}");
    let (_, out, _) = suanli(&up, &["centers"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("pcl-cb2") && l.trim_end().ends_with("drained")),
        "{out}"
    );
    let (code, _, err) = suanli(&up, &["admin", "drain", "pcl-cb2"]);
    assert_ne!(code, 0, "a user may not drain");
    assert!(err.contains("operator"), "{err}");
    let out = ok(
        &up,
        &["--profile", "operator", "admin", "undrain", "pcl-cb2"],
    );
    assert!(out.contains("takes new work again"), "{out}");
}

/// The first column of each row of a `jobs` table (its header left out).
fn listed(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Runs the CLI until it exits by itself, at most `limit`: exit code and stdout.
fn within(config: &std::path::Path, args: &[&str], limit: Duration) -> (i32, String) {
    let mut child = cli(config, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("suanli {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    (status.code().unwrap_or(-1), reader.join().unwrap())
}

/// The verbs as Slurm users' hands expect them: bare numbers are minutes, `jobs` shows what is
/// active newest first (several states, Slurm's names, columns by --format, JSON, YAML,
/// --watch), `cancel` takes several ids or a selection, `wait` and `submit` speak JSON, and
/// each way a wait ends has its exit code.
#[test]
fn jobs_cancel_and_wait_as_slurm_users_expect() {
    let up = up();
    online(&up);
    let json = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    // `--walltime 10` is ten minutes, as `-t 10` is in a script; `submit --json` is the job.
    let out = ok(
        &up,
        &[
            "submit",
            "--json",
            "--walltime",
            "10",
            "--cards",
            "1",
            "--",
            "echo",
            "hi",
        ],
    );
    let job = json(&out);
    assert_eq!(job["spec"]["walltime"], 600, "{out}");
    assert_eq!(job["walltime_secs"], 600, "{out}");
    let done = job["id"].as_i64().unwrap().to_string();
    let (code, _, err) = suanli(&up, &["submit", "--json", "--parsable", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    // `wait --json` prints the ended job; 0: it succeeded.
    let (code, out, err) = suanli(&up, &["wait", "--json", &done]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["state"], "succeeded", "{out}");

    // One job runs on the only H800 pool, three wait behind it; two of them named `sweep`.
    let submit = |name: &str| {
        let out = ok(
            &up,
            &[
                "submit",
                "--parsable",
                "--name",
                name,
                "--sku",
                "H800-SXM",
                "--cards",
                "8",
                "--",
                "sleep 60",
            ],
        );
        out.trim().to_string()
    };
    let running = submit("first");
    let pending = submit("second");
    let sweep = [submit("sweep"), submit("sweep")];
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(&ok(&up, &["jobs", "-t", "R"])) != [running.clone()] {
        assert!(Instant::now() < deadline, "{running} never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Active jobs only, newest first; finished ones with --all.
    let newest_first = vec![
        sweep[1].clone(),
        sweep[0].clone(),
        pending.clone(),
        running.clone(),
    ];
    let out = ok(&up, &["jobs"]);
    assert_eq!(listed(&out), newest_first, "{out}");
    assert!(out.starts_with("ID ") && out.contains("TIME-LEFT"), "{out}");
    assert_eq!(listed(&ok(&up, &["jobs", "-t", "PD,R"])), newest_first);
    assert_eq!(
        listed(&ok(&up, &["jobs", "--state", "R", "--state", "PD"])),
        newest_first
    );
    assert_eq!(listed(&ok(&up, &["jobs", "-t", "PD"])), &newest_first[..3]);
    assert_eq!(
        listed(&ok(&up, &["jobs", "-t", "PD", "-n", "sweep"])),
        &newest_first[..2]
    );
    let all = listed(&ok(&up, &["jobs", "--all"]));
    assert!(
        all.contains(&done) && all.starts_with(&newest_first),
        "{all:?}"
    );
    // Columns by --format, squeue's way; the wall time of `--walltime 10` shows as 10 minutes.
    let out = ok(
        &up,
        &[
            "jobs",
            "--all",
            "--format",
            "id,name,state,timelimit,reason",
        ],
    );
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "NAME", "STATE", "TIME-LIMIT", "REASON"],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(&format!("{done} ")))
        .unwrap_or_else(|| panic!("no row for {done}: {out}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [done.as_str(), "echo", "succeeded", "10m", "exited", "0"],
        "{out}"
    );
    let out = ok(&up, &["jobs", "--noheader", "--format", "id"]);
    assert_eq!(
        out,
        newest_first
            .iter()
            .map(|id| format!("{id}\n"))
            .collect::<String>()
    );
    let (code, _, err) = suanli(&up, &["jobs", "--format", "id,colour"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("colour") && err.contains("timelimit"), "{err}");
    // JSON and YAML carry the same jobs.
    let from_json = json(&ok(&up, &["jobs", "-o", "json"]));
    let yaml = ok(&up, &["jobs", "-o", "yaml"]);
    let from_yaml: serde_json::Value =
        serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{e}: {yaml}"));
    assert_eq!(from_json, from_yaml);
    let ids: Vec<String> = from_yaml["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].to_string())
        .collect();
    assert_eq!(ids, newest_first, "{yaml}");

    // `cancel` wants ids or a selection.
    let (code, _, err) = suanli(&up, &["cancel"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--state"), "{err}");
    let (code, _, err) = suanli(&up, &["cancel", "--state", "CD"]);
    assert_eq!(code, 2, "ended jobs are not cancelled: {err}");
    // By name, as JSON: exactly the two sweep jobs.
    let out = ok(&up, &["cancel", "--name", "sweep", "--json"]);
    let v = json(&out);
    let mut cancelled: Vec<String> = v["cancelled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].to_string())
        .collect();
    cancelled.sort();
    let mut want = sweep.to_vec();
    want.sort();
    assert_eq!(cancelled, want, "{out}");
    assert_eq!(v["failed"], serde_json::json!([]), "{out}");
    // By state: the pending one, not the running one.
    let out = ok(&up, &["cancel", "--state", "PD"]);
    assert_eq!(out, format!("Job {pending} cancelled\n"));
    assert_eq!(listed(&ok(&up, &["jobs"])), std::slice::from_ref(&running));
    // Several ids: each is tried; the exit is that of the first failure (3: no such job).
    let (code, out, err) = suanli(&up, &["cancel", &running, "999999"]);
    assert_eq!(code, 3, "{out}{err}");
    assert_eq!(out, format!("Job {running} cancelled\n"));
    assert!(
        err.contains("job 999999") && err.contains("not_found"),
        "{err}"
    );
    assert_eq!(listed(&ok(&up, &["jobs"])), Vec::<String>::new());
    let (code, _, err) = suanli(&up, &["cancel", "--state", "PD"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("No job matches"), "{err}");
    // The operator's selection over several tenants' jobs asks for --yes (or --tenant).
    let mine = ok(&up, &["submit", "--parsable", "--hold", "--", "true"]);
    let theirs = ok(
        &up,
        &[
            "--profile",
            "lab",
            "submit",
            "--parsable",
            "--hold",
            "--",
            "true",
        ],
    );
    let op = |args: &[&str]| {
        let mut all = vec!["--profile", "operator", "cancel", "--state", "PD"];
        all.extend_from_slice(args);
        suanli(&up, &all)
    };
    let (code, _, err) = op(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2 tenants") && err.contains("--yes"), "{err}");
    let (code, out, err) = op(&["--tenant", "demo-lab"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(theirs.trim()) && !out.contains(mine.trim()),
        "{out}"
    );
    let (code, out, err) = op(&["--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(mine.trim()), "{out}");

    // `wait`'s exit codes: cancelled 6, failed 5, no such job 3, no hub 4.
    let (code, out, _) = suanli(&up, &["wait", &pending]);
    assert_eq!(code, 6, "{out}");
    let failing = ok(&up, &["submit", "--parsable", "--", "exit 1"]);
    let (code, out, _) = suanli(&up, &["wait", "--json", failing.trim()]);
    assert_eq!(code, 5, "{out}");
    assert_eq!(json(&out)["exit_code"], 1, "{out}");
    let (code, _, err) = suanli(&up, &["wait", "999999"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = suanli(&up, &["--hub", "http://127.0.0.1:1", "wait", &done]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("cannot reach the hub"), "{err}");

    // --watch re-draws until no listed job is active.
    let short = ok(&up, &["submit", "--parsable", "--", "sleep 3"]);
    let short = short.trim();
    let (code, out) = within(
        &up.config,
        &["jobs", "--watch", "1s"],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "{out}");
    let headers: Vec<usize> = out
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("ID "))
        .map(|(i, _)| i)
        .collect();
    assert!(headers.len() >= 2, "drawn {} times: {out}", headers.len());
    assert!(
        out.lines().any(|l| l.starts_with(&format!("{short} "))),
        "{out}"
    );
    assert_eq!(
        out.lines().skip(headers[headers.len() - 1] + 1).count(),
        0,
        "the last drawing lists nothing active: {out}"
    );

    // A reader that goes first ends any command quietly, with 0.
    for args in [
        &["jobs", "--all", "-o", "yaml"][..],
        &["jobs", "--format", "id,state"],
        &["openapi"],
        &["sim", "gen", "--jobs", "20000"],
        &["jobs", "--help"],
        &["wait", "--json", &done],
        &["cancel", "--state", "PD", "--json"],
    ] {
        let (code, err) = closed_stdout(&up.config, args);
        assert_eq!((code, err.as_str()), (0, ""), "{args:?}");
    }
}

/// `--signal`: the job hears its warning signal before the wall time runs out (and may end
/// well on it), and before a cancel, with time to act on it before the SIGTERM.
#[test]
fn warning_signals_come_before_the_wall_time_and_before_a_cancel() {
    let up = up();
    online(&up);
    // Wall time 8 s (M:S), warned 4 s before: the batch shell ends itself on the warning.
    let script = up.config.with_file_name("warned.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n#SBATCH --gres=gpu:1\n#SBATCH --time=0:08\n#SBATCH --signal=B:USR1@4\n\
         trap 'echo warned; exit 0' USR1\n\
         i=0; while [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done\necho never-warned\n",
    )
    .unwrap();
    let warned = ok(&up, &["submit", "--parsable", script.to_str().unwrap()]);
    let warned = warned.trim();
    let job: serde_json::Value =
        serde_json::from_str(&ok(&up, &["job", "--json", warned])).unwrap();
    assert_eq!(job["spec"]["signal"], "B:USR1@4", "{job}");
    let (code, _, err) = suanli(&up, &["wait", warned]);
    assert_eq!(
        code,
        0,
        "ended well on its warning: {err} {}",
        ok(&up, &["job", warned])
    );
    assert_eq!(ok(&up, &["logs", warned]), "warned\n");

    // A cancel: the warning first, then (after at most the kill grace) the SIGTERM.
    let out = ok(
        &up,
        &[
            "submit",
            "--parsable",
            "--signal",
            "USR2@3",
            "--walltime",
            "10",
            "--",
            "trap 'echo checkpointed' USR2; trap 'echo terminated; exit 143' TERM; \
             while true; do sleep 0.2; done",
        ],
    );
    let cancelled = out.trim();
    let deadline = Instant::now() + Duration::from_secs(20);
    while listed(&ok(&up, &["jobs", "-t", "R"])) != [cancelled.to_string()] {
        assert!(Instant::now() < deadline, "{cancelled} never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    ok(&up, &["cancel", cancelled]);
    let (code, _, _) = suanli(&up, &["wait", cancelled]);
    assert_eq!(code, 6, "cancelled");
    // The job is cancelled at once; its attempt ends (and ships its last lines) after.
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = ok(&up, &["logs", cancelled]);
        if logs.contains("terminated") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(logs, "checkpointed\nterminated\n", "{logs}");

    // What cannot warn is refused, naming the field or the line.
    let (code, _, err) = suanli(&up, &["submit", "--signal", "KILL", "--", "true"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("signal") && err.contains("KILL"), "{err}");
    let (code, _, err) = suanli(
        &up,
        &[
            "submit",
            "--signal",
            "USR1@600",
            "--walltime",
            "5",
            "--",
            "true",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("wall time"), "{err}");
    std::fs::write(
        &script,
        "#!/bin/sh\n#SBATCH --gres=gpu:1\n#SBATCH --signal=R:USR1\ntrue\n",
    )
    .unwrap();
    let (code, _, err) = suanli(&up, &["submit", script.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("line 3") && err.contains("reservation"),
        "{err}"
    );
}

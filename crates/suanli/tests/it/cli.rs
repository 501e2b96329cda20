//! The real binary, tried as a new user would: `suanli up`, then client verbs from "another shell".

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&up.config)
        .args(args)
        .env_remove("SUANLI_HUB")
        .env_remove("SUANLI_TOKEN")
        .env_remove("SUANLI_PROFILE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn up_then_submit_wait_logs_job_centers() {
    let up = up();
    // Demo centers heartbeat within a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = suanli(&up, &["centers"]);
        assert_eq!(code, 0, "{err}");
        if out.contains("online") {
            assert!(
                out.contains("pcl-cb2") && out.contains("Ascend910A"),
                "{out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "centers never came online: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, id, err) = suanli(
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
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_string();
    assert!(id.parse::<i64>().is_ok(), "{id:?}");
    let (code, _, err) = suanli(&up, &["wait", &id]);
    assert_eq!(code, 0, "{err}");
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

    let (code, _, err) = suanli(&up, &["submit", "--cards", "0", "--", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("cards_per_node"), "{err}");
    let (code, _, err) = suanli(&up, &["submit", "--parsable", "--", "exit 1"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = suanli(&up, &["jobs", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.is_object() || v.is_array());
}

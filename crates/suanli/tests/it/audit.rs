//! The audit log end to end: after a scenario (submits, a finished job, price changes, refused
//! requests, site reports), `suanli audit export` and `suanli audit verify` pass, and each
//! tamper with the real SQLite store (a changed field, the newest entries deleted, two entries
//! swapped, the whole log replaced by a consistent forgery under another key) fails `verify`,
//! which names what was done; the same tampering with a PostgreSQL store, when the tests have
//! one, is named the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use suanli_audit::{Draft, Hash, Log, Outcome, Signer};
use suanli_hub::ApiConfig;
use suanli_hub::audit::{AuditConfig, AuditKey};
use suanli_proto::{AuditEntryView, AuditExport, CheckpointView, PriceRequest, TokenRequest};
use suanli_store::{AuditFilter, SqliteStore, Store};
use suanli_types::{JobSpec, JobState, Role, TenantId};

use crate::harness::{Net, center, engine_config, submit, wait_terminal};

const BIN: &str = env!("CARGO_BIN_EXE_suanli");

/// `suanli --hub URL --token TOKEN ARGS`: exit code, stdout, stderr.
fn suanli(url: &str, token: &str, home: &Path, args: &[&str]) -> (i32, String, String) {
    crate::harness::cli_as(url, token, home, args)
}

/// `suanli audit verify FILE ARGS` (offline: no hub is named).
fn verify(home: &Path, file: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["audit", "verify"])
        .arg(file)
        .args(args)
        .env("HOME", home)
        .env_remove("SUANLI_HUB")
        .env_remove("SUANLI_TOKEN")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The export of the audit tables of the SQLite file `db`, as the hub would answer it.
async fn export_of(db: &Path, to: &Path) {
    export_from(&SqliteStore::open(db).await.unwrap(), to).await;
}

/// The export of a store's audit tables, as the hub would answer it.
async fn export_from(s: &dyn Store, to: &Path) {
    let all = AuditFilter {
        limit: u32::MAX,
        ..Default::default()
    };
    let export = AuditExport {
        format: suanli_audit::EXPORT_FORMAT.into(),
        keys: s
            .audit_keys()
            .await
            .unwrap()
            .iter()
            .map(|k| k.to_hex())
            .collect(),
        entries: s
            .audit_entries(&all)
            .await
            .unwrap()
            .iter()
            .map(AuditEntryView::from)
            .collect(),
        checkpoints: s
            .audit_checkpoints()
            .await
            .unwrap()
            .iter()
            .map(CheckpointView::from)
            .collect(),
    };
    std::fs::write(to, serde_json::to_string(&export).unwrap()).unwrap();
}

/// A copy of the store `db` at `to`, its append-only triggers dropped and `sql` run on it, as
/// someone with the database file in hand would.
async fn tampered(db: &Path, to: &Path, sql: &[&str]) {
    use sqlx::Connection as _;
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        to.display()
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let url = format!("sqlite://{}", to.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for t in [
        "audit_entries_no_update",
        "audit_entries_no_delete",
        "audit_checkpoints_no_update",
        "audit_checkpoints_no_delete",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TRIGGER {t}")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for s in sql {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

async fn raw_call(url: &str, method: &str, path: &str, token: &str) -> u16 {
    let http = reqwest::Client::new();
    http.request(method.parse().unwrap(), format!("{url}{path}"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until the hub's newest checkpoint covers every entry (none arrive any more).
async fn wait_covered(url: &str, token: &str, home: &Path) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out, _) = suanli(
            url,
            token,
            home,
            &["audit", "checkpoint", "--json", "--file"]
                .iter()
                .copied()
                .chain([home.join("scratch.json").to_str().unwrap()])
                .collect::<Vec<_>>(),
        );
        let (_, log, _) = suanli(
            url,
            token,
            home,
            &["audit", "log", "--json", "--limit", "1000"],
        );
        let size = serde_json::from_str::<Value>(&out)
            .ok()
            .and_then(|v| v["checkpoint"]["size"].as_u64());
        let entries = serde_json::from_str::<Value>(&log).unwrap()["entries"]
            .as_array()
            .unwrap()
            .len() as u64;
        if size == Some(entries) && entries > 0 {
            return entries;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint covers the log: {out}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_of_a_scenario_verifies_and_every_tamper_is_named() {
    let home = tempfile::tempdir().unwrap();
    let (key, _) = AuditKey::load_or_create(&home.path().join("audit-key")).unwrap();
    let hub_key = key.signer().public().to_hex();
    let api = ApiConfig {
        audit: AuditConfig {
            key: Some(key),
            policy: suanli_audit::CheckpointPolicy {
                busy_ms: 200,
                idle_ms: 3_600_000,
            },
            off: false,
        },
        ..ApiConfig::default()
    };
    let centers = [center("c1", "RTX4090", 1, 8, "2.00")];
    let mut net = Net::with_api(&centers, &["ta", "tb"], engine_config(), api).await;
    net.start_agents(vec![net.url.clone()]);
    net.wait_online().await;

    // The scenario: a user's job runs to its end, the operator changes a price, a user tries
    // to, a bad token knocks, a supervisor reads.
    let user = net.user("ta", "alice").await;
    let mut spec = JobSpec::new("audited", "echo hi");
    spec.env.insert("API_KEY".into(), "s3cret".into());
    let id = submit(&user, &spec).await;
    assert_eq!(
        wait_terminal(&user, id, Duration::from_secs(30))
            .await
            .summary
            .state,
        JobState::Succeeded
    );
    net.op()
        .set_price(&PriceRequest {
            center: suanli_types::CenterId::new("c1"),
            sku: "RTX4090".into(),
            price_per_card_hour: "2.50".parse().unwrap(),
            spot_discount_bp: None,
            effective_from: None,
        })
        .await
        .unwrap();
    let user_b = crate::harness::user_token(&net.op(), "tb", "bob").await;
    assert_eq!(raw_call(&net.url, "PUT", "/v1/prices", &user_b).await, 403);
    let bad = format!("sl_{}", "0".repeat(64));
    assert_eq!(raw_call(&net.url, "POST", "/v1/jobs", &bad).await, 401);
    let sup = net
        .op()
        .create_token(&TokenRequest {
            name: "sup".into(),
            role: Role::Supervisor,
            tenant: None,
            center: None,
            expires_in: None,
        })
        .await
        .unwrap()
        .token;
    net.stop_agents().await;
    let h = home.path();
    let url = net.url.clone();

    // Another tenant's logs and env values are a sensitive read: only with a reason, which the
    // audit log keeps; the tenant's own reads are not recorded.
    let job = id.to_string();
    let (code, out, err) = suanli(&url, &sup, h, &["job", &job, "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(
        v["spec"]["env"]["API_KEY"], "s3cret",
        "hidden without a reason: {out}"
    );
    let (code, _, err) = suanli(&url, &sup, h, &["logs", &job]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reason"), "{err}");
    let (code, out, err) = suanli(&url, &sup, h, &["logs", &job, "--reason", "incident 7"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hi"), "{out}");
    let (code, out, err) = suanli(
        &url,
        &sup,
        h,
        &["job", &job, "--reason", "incident 7", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["spec"]["env"]["API_KEY"], "s3cret", "{out}");
    let user_a_token = crate::harness::user_token(&net.op(), "ta", "alice-reads").await;
    let (code, out, err) = suanli(&url, &user_a_token, h, &["logs", &job]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hi"), "{out}");

    // A normal day raises no risk flag (the default thresholds; risk.rs provokes each rule).
    let (code, out, err) = suanli(&url, &sup, h, &["risk", "--json"]);
    assert_eq!(code, 0, "{err}");
    let flags: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(flags["flags"], serde_json::json!([]), "{out}");

    // The job's bill line traces to the site report that ended it (its audit entry), the
    // price row it names and the placement decision; another tenant cannot see it.
    let bill = net.op().bill(Some("ta"), None).await.unwrap();
    let line = bill
        .lines
        .iter()
        .find(|l| l.job == id)
        .expect("the job is billed");
    let n = line.line.to_string();
    let (code, out, err) = suanli(&url, &sup, h, &["bill", "explain", &n, "--json"]);
    assert_eq!(code, 0, "{err}");
    let x: Value = serde_json::from_str(&out).unwrap();
    let entry = &x["report_entry"];
    assert_eq!(entry["action"], "POST /v1/site/events", "{out}");
    assert_eq!(entry["role"], "site");
    assert_eq!(entry["request_id"], x["report_request"]);
    assert_eq!(entry["outcome"]["status"], 200);
    assert!(entry["time"].as_i64().unwrap() >= line.ended_at.0);
    assert_eq!(x["price"]["id"].as_u64(), Some(line.price_row));
    assert_eq!(
        x["price"]["price_per_card_hour"], "2.00",
        "priced before the change"
    );
    assert_eq!(x["placement"]["center"], "c1");
    assert_eq!(x["placement"]["attempt"], line.attempt);
    assert_eq!(x["attempt"]["outcome"], "succeeded");
    let (code, text, err) = suanli(&url, &sup, h, &["bill", "explain", &n]);
    assert_eq!(code, 0, "{err}");
    let seq = entry["seq"].as_u64().unwrap().to_string();
    assert!(
        text.contains(&format!("suanli audit prove {seq}")) && text.contains("Price row"),
        "{text}"
    );
    let (code, _, err) = suanli(&url, &user_b, h, &["bill", "explain", &n]);
    assert_ne!(code, 0);
    assert!(
        err.contains("not_found"),
        "another tenant's line does not exist for it: {err}"
    );
    let user_a = crate::harness::user_token(&net.op(), "ta", "alice-cli").await;
    let (code, _, err) = suanli(&url, &user_a, h, &["bill", "explain", &n]);
    assert_eq!(code, 0, "the tenant reads its own line: {err}");

    // Supervisors read the log; users do not.
    let (code, _, err) = suanli(&url, &user_b, h, &["audit", "log"]);
    assert_eq!(code, 1, "{err}");
    let (code, denied, err) = suanli(&url, &sup, h, &["audit", "log", "--denied", "--json"]);
    assert_eq!(code, 0, "{err}");
    let denied: Value = serde_json::from_str(&denied).unwrap();
    let denied = denied["entries"].as_array().unwrap();
    let price_refusal = denied
        .iter()
        .find(|e| e["action"] == "PUT /v1/prices")
        .unwrap_or_else(|| panic!("no refused price change in {denied:?}"));
    assert_eq!(price_refusal["tenant"], "tb");
    assert_eq!(price_refusal["role"], "user");
    assert_eq!(price_refusal["outcome"]["status"], 403);
    assert!(
        price_refusal["outcome"]["why"]
            .as_str()
            .unwrap()
            .starts_with("forbidden: "),
        "{price_refusal}"
    );
    let knock = denied
        .iter()
        .find(|e| e["action"] == "POST /v1/jobs")
        .unwrap_or_else(|| panic!("no refused submit in {denied:?}"));
    assert_eq!(knock["principal"], "anonymous");
    assert!(
        knock["source"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{knock}"
    );
    // Every write is there: the submit, the site's reports, the price; reads are not.
    let (_, all, _) = suanli(
        &url,
        &sup,
        h,
        &["audit", "log", "--json", "--limit", "1000"],
    );
    let all: Value = serde_json::from_str(&all).unwrap();
    let entries = all["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "POST /v1/tokens",
        "POST /v1/jobs",
        "POST /v1/site/heartbeat",
        "POST /v1/site/events",
        "PUT /v1/prices",
    ] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    // Reads are recorded when refused (the user's `audit log` above) or sensitive (the
    // supervisor's reads of another tenant's logs and env values, with their reason).
    let mut sensitive = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("GET "))
    {
        if e["outcome"]["kind"] == "denied" {
            continue;
        }
        assert!(
            e["target"].as_str().unwrap().contains("reason=incident"),
            "{e}"
        );
        assert_eq!(e["role"], "supervisor", "{e}");
        sensitive.push(e["action"].as_str().unwrap());
    }
    // (`suanli logs` reads page by page: each page is an entry.)
    sensitive.sort_unstable();
    sensitive.dedup();
    assert_eq!(sensitive, ["GET /v1/jobs/{id}", "GET /v1/jobs/{id}/logs"]);
    let alice_id = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "POST /v1/jobs" && e["tenant"] == "ta")
        .unwrap()["principal"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, mine, _) = suanli(
        &url,
        &sup,
        h,
        &["audit", "log", "--actor", &alice_id, "--json"],
    );
    let mine: Value = serde_json::from_str(&mine).unwrap();
    assert!(
        mine["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["principal"] == alice_id.as_str() && e["tenant"] == "ta"),
        "{mine}"
    );

    // The supervisor keeps a checkpoint covering everything, exports, and verifies.
    let size = wait_covered(&url, &sup, h).await;
    let saved = h.join("saved.json");
    let saved_s = saved.to_str().unwrap();
    let (code, out, err) = suanli(
        &url,
        &sup,
        h,
        &["audit", "checkpoint", "--save", "--file", saved_s],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with(&format!("size {size} ")), "{out}");
    // Saving again checks the consistency proof from the first one saved.
    let (code, out, err) = suanli(
        &url,
        &sup,
        h,
        &["audit", "checkpoint", "--save", "--file", saved_s],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("extends the saved checkpoint of size {size}")),
        "{out}"
    );
    let (code, out, err) = suanli(&url, &sup, h, &["audit", "prove", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "ok: entry 2 is leaf 2 of the tree of {size} entries"
        )),
        "{out}"
    );
    let export = h.join("export.json");
    let (code, _, err) = suanli(
        &url,
        &sup,
        h,
        &["audit", "export", "-o", export.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out) = verify(h, &export, &["--saved", saved_s, "--key", &hub_key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("ok: {size} entries")), "{out}");
    assert!(!out.contains("note: trusting"), "{out}");
    let (code, out) = verify(h, &export, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("note: trusting the keys named in the file itself"),
        "{out}"
    );

    // The hub stops; the tampering is done to copies of its store.
    net.hub.take().unwrap().shutdown().await;
    let db = net.db.clone();
    let dir = h.join("tamper");
    std::fs::create_dir_all(&dir).unwrap();
    let case = |name: &str| -> (PathBuf, PathBuf) {
        (
            dir.join(format!("{name}.db")),
            dir.join(format!("{name}.json")),
        )
    };
    let with_saved = ["--saved", saved_s, "--key", hub_key.as_str()];

    // 1. One field of one entry changed.
    let (copy, file) = case("field");
    tampered(
        &db,
        &copy,
        &["UPDATE audit_entries SET tenant = 'tb' WHERE seq = 3"],
    )
    .await;
    export_of(&copy, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("first bad entry: 3"), "{out}");
    assert!(out.contains("entry 3 was changed"), "{out}");

    // 2. The newest 3 entries deleted, and the checkpoints that counted them.
    let (copy, file) = case("truncated");
    let keep = size - 3;
    tampered(
        &db,
        &copy,
        &[
            &format!("DELETE FROM audit_entries WHERE seq >= {keep}"),
            &format!("DELETE FROM audit_checkpoints WHERE size > {keep}"),
        ],
    )
    .await;
    export_of(&copy, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains(&format!(
            "log truncated: a saved checkpoint covers {size} entries, the log has {keep}"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("first bad entry: {keep}")), "{out}");
    // Without the checkpoint the supervisor kept, nothing tells.
    let (code, out) = verify(h, &file, &["--key", &hub_key]);
    assert_eq!(code, 0, "{out}");

    // 3. Two entries swapped.
    let (copy, file) = case("swapped");
    tampered(
        &db,
        &copy,
        &[
            "UPDATE audit_entries SET seq = -1 WHERE seq = 4",
            "UPDATE audit_entries SET seq = 4 WHERE seq = 5",
            "UPDATE audit_entries SET seq = 5 WHERE seq = -1",
        ],
    )
    .await;
    export_of(&copy, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(out.contains("first bad entry: 4"), "{out}");
    assert!(out.contains("entry 4 was moved"), "{out}");

    // 4. The whole log replaced by a consistent forgery signed with another key.
    let (copy, file) = case("forged");
    tampered(
        &db,
        &copy,
        &["DELETE FROM audit_entries", "DELETE FROM audit_checkpoints"],
    )
    .await;
    {
        let s = SqliteStore::open(&copy).await.unwrap();
        let forger = Signer::from_secret([42; 32]);
        let mut log = Log::new();
        let mut records = Vec::new();
        for i in 0..size {
            let r = log.prepare(Draft {
                time: 1_800_000_000_000 + i as i64,
                principal: "1".into(),
                role: Some("operator".into()),
                tenant: Some(TenantId::new("ta").as_str().to_string()),
                source: "127.0.0.1:1".into(),
                request_id: format!("forged-{i}"),
                action: "POST /v1/jobs".into(),
                target: "/v1/jobs".into(),
                outcome: Outcome::Allowed { status: 201 },
                request_digest: Hash::of(b"forged"),
            });
            log.apply(&r).unwrap();
            records.push(r);
        }
        s.append_audit(&records).await.unwrap();
        s.append_checkpoint(&log.checkpoint(&forger, 1_800_000_100_000))
            .await
            .unwrap();
        s.add_audit_key(&forger.public(), suanli_types::Timestamp(1_800_000_000_000))
            .await
            .unwrap();
        let forged_id = forger.public().id();
        export_of(&copy, &file).await;
        let (code, out) = verify(h, &file, &with_saved);
        assert_eq!(code, 8, "{out}");
        assert!(
            out.contains(&format!(
                "exported checkpoint at size {size} is signed by key {forged_id}, which is not trusted"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "saved checkpoint at size {size} does not match the entries"
            )),
            "{out}"
        );
        // Trusting every key the file names (the forger's too), the saved checkpoint still tells.
        let (code, out) = verify(
            h,
            &file,
            &[
                "--saved",
                saved_s,
                "--key",
                &forger.public().to_hex(),
                "--key",
                &hub_key,
            ],
        );
        assert_eq!(code, 8, "{out}");
        assert!(out.contains("saved checkpoint at size"), "{out}");
    }
}

/// The tampering of the SQLite test, done to a PostgreSQL store (its append-only triggers
/// disabled, as the database's owner could): each is named by `verify` the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_a_postgres_store_is_named_too() {
    const TEST: &str = "tampering_with_a_postgres_store_is_named_too";
    const VAR: &str = "SUANLI_TEST_POSTGRES_URL";
    let base = match std::env::var(VAR) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => return crate::check::skip(TEST, &format!("{VAR} is not set (.ci/run sets it)")),
    };
    let schema = format!(
        "audit_pg_{}_{}",
        std::process::id(),
        suanli_hub::engine::now().0
    );
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let store = suanli_store::PostgresStore::connect_in_schema(&base, &schema)
        .await
        .unwrap();
    let now = suanli_hub::engine::now();
    let t = |name: &str, role| suanli_hub::auth::new_token_for(name, role, None, None, now, None);
    let (op, _) = suanli_hub::auth::issue_token(&store, &t("op", Role::Operator))
        .await
        .unwrap();
    let (sup, _) = suanli_hub::auth::issue_token(&store, &t("sup", Role::Supervisor))
        .await
        .unwrap();
    let key = AuditKey::generate();
    let hub_key = key.signer().public().to_hex();
    let api = ApiConfig {
        audit: AuditConfig {
            key: Some(key),
            policy: suanli_audit::CheckpointPolicy {
                busy_ms: 200,
                idle_ms: 3_600_000,
            },
            off: false,
        },
        ..ApiConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
        suanli_store::PostgresStore::connect_in_schema(&base, &schema)
            .await
            .unwrap(),
    );
    let hub = suanli_hub::Hub::start_with(
        hub_store,
        crate::harness::engine_config(),
        api,
        listener,
        None,
    )
    .await
    .unwrap();
    let url = hub.url();
    // A few writes and refusals.
    for (i, name) in ["ta", "tb"].iter().enumerate() {
        let (code, _, err) = suanli(
            &url,
            &op,
            h,
            &[
                "admin",
                "tenant-create",
                "--id",
                name,
                "--name",
                &format!("Tenant {i}"),
                "--category",
                "sme",
            ],
        );
        assert_eq!(code, 0, "{err}");
    }
    let bad = format!("sl_{}", "0".repeat(64));
    for _ in 0..3 {
        assert_eq!(raw_call(&url, "POST", "/v1/jobs", &bad).await, 401);
    }
    assert_eq!(raw_call(&url, "PUT", "/v1/prices", &sup).await, 403);
    let size = wait_covered(&url, &sup, h).await;
    assert!(size >= 6, "{size} entries");
    let saved = h.join("saved.json");
    let saved_s = saved.to_str().unwrap();
    let (code, out, err) = suanli(
        &url,
        &sup,
        h,
        &["audit", "checkpoint", "--save", "--file", saved_s],
    );
    assert_eq!(code, 0, "{out}{err}");
    hub.shutdown().await;
    let with_saved = ["--saved", saved_s, "--key", hub_key.as_str()];
    let file = h.join("export.json");
    export_from(&store, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 0, "{out}");

    // The database's owner turns the triggers off and keeps a copy to start each case from.
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    // The triggers refuse the owner too until they are disabled.
    let refused = {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET search_path TO \"{schema}\""
        )))
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query("UPDATE audit_entries SET tenant = 'tb' WHERE seq = 3")
            .execute(&mut conn)
            .await
            .unwrap_err()
    };
    assert!(refused.to_string().contains("append-only"), "{refused}");
    run_sql(
        &mut conn,
        &schema,
        vec![
            "ALTER TABLE audit_entries DISABLE TRIGGER USER".into(),
            "ALTER TABLE audit_checkpoints DISABLE TRIGGER USER".into(),
            "CREATE TABLE entries_kept AS TABLE audit_entries".into(),
            "CREATE TABLE checkpoints_kept AS TABLE audit_checkpoints".into(),
        ],
    )
    .await;
    let restore = || {
        vec![
            "DELETE FROM audit_entries".to_string(),
            "DELETE FROM audit_checkpoints".to_string(),
            "INSERT INTO audit_entries SELECT * FROM entries_kept".to_string(),
            "INSERT INTO audit_checkpoints SELECT * FROM checkpoints_kept".to_string(),
        ]
    };
    let case = |tamper: &[String]| {
        let mut qs = restore();
        qs.extend(tamper.iter().cloned());
        qs
    };

    // 1. One field of one entry changed.
    run_sql(
        &mut conn,
        &schema,
        case(&["UPDATE audit_entries SET tenant = 'tb' WHERE seq = 3".into()]),
    )
    .await;
    export_from(&store, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("first bad entry: 3") && out.contains("entry 3 was changed"),
        "{out}"
    );

    // 2. The newest 3 entries deleted, and the checkpoints that counted them.
    let keep = size - 3;
    run_sql(
        &mut conn,
        &schema,
        case(&[
            format!("DELETE FROM audit_entries WHERE seq >= {keep}"),
            format!("DELETE FROM audit_checkpoints WHERE size > {keep}"),
        ]),
    )
    .await;
    export_from(&store, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains(&format!(
            "log truncated: a saved checkpoint covers {size} entries, the log has {keep}"
        )),
        "{out}"
    );

    // 3. Two entries swapped.
    run_sql(
        &mut conn,
        &schema,
        case(&[
            "UPDATE audit_entries SET seq = -1 WHERE seq = 4".into(),
            "UPDATE audit_entries SET seq = 4 WHERE seq = 5".into(),
            "UPDATE audit_entries SET seq = 5 WHERE seq = -1".into(),
        ]),
    )
    .await;
    export_from(&store, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains("first bad entry: 4") && out.contains("entry 4 was moved"),
        "{out}"
    );

    // 4. The whole log replaced by a consistent forgery signed with another key.
    run_sql(
        &mut conn,
        &schema,
        case(&[
            "DELETE FROM audit_entries".into(),
            "DELETE FROM audit_checkpoints".into(),
        ]),
    )
    .await;
    let forger = Signer::from_secret([42; 32]);
    let mut log = Log::new();
    let mut records = Vec::new();
    for i in 0..size {
        let r = log.prepare(Draft {
            time: 1_800_000_000_000 + i as i64,
            principal: "1".into(),
            role: Some("operator".into()),
            tenant: None,
            source: "127.0.0.1:1".into(),
            request_id: format!("forged-{i}"),
            action: "POST /v1/tenants".into(),
            target: "/v1/tenants".into(),
            outcome: Outcome::Allowed { status: 201 },
            request_digest: Hash::of(b"forged"),
        });
        log.apply(&r).unwrap();
        records.push(r);
    }
    store.append_audit(&records).await.unwrap();
    store
        .append_checkpoint(&log.checkpoint(&forger, 1_800_000_100_000))
        .await
        .unwrap();
    store
        .add_audit_key(&forger.public(), suanli_types::Timestamp(1_800_000_000_000))
        .await
        .unwrap();
    export_from(&store, &file).await;
    let (code, out) = verify(h, &file, &with_saved);
    assert_eq!(code, 8, "{out}");
    assert!(
        out.contains(&format!(
            "saved checkpoint at size {size} does not match the entries"
        )),
        "{out}"
    );
    drop(conn);
    store.drop_schema().await.unwrap();
}

/// Runs `qs` in `schema` on `conn`, each of which must succeed.
async fn run_sql(conn: &mut sqlx::PgConnection, schema: &str, qs: Vec<String>) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET search_path TO \"{schema}\""
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    for q in qs {
        sqlx::query(sqlx::AssertSqlSafe(q.clone()))
            .execute(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

//! The API-layer findings of the security review, each as the attack it was, now failing:
//! trailing data after a JSON body (L2), token guessing without limit or trace (L6), open
//! metrics and a shown process id (L7), event floods and request floods from a site (H4), and
//! unbounded heartbeat, registration and price fields (L8), and specs that would only fail at
//! run time (L3-L4).

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use suanli_hub::api::{Limits, Rate};
use suanli_hub::{ApiConfig, Hub};
use suanli_proto::{ApiError, ErrorCode, TokenRequest};
use suanli_types::{JobSpec, Role, TenantId};

use crate::harness::{Net, center, engine_config, open};

/// Restarts the network's hub on the same store with `api`.
async fn restart_with(net: &mut Net, api: ApiConfig) {
    if let Some(hub) = net.hub.take() {
        hub.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = Hub::start_with(open(&net.db).await, engine_config(), api, listener, None)
        .await
        .unwrap();
    net.url = hub.url();
    net.hub = Some(hub);
}

/// A network of one center `c1` and one tenant `t-a`, its hub started with `limits`.
async fn net_with(limits: Limits) -> Net {
    let mut net = Net::new(&[center("c1", "RTX4090", 2, 8, "2.00")], &["t-a"]).await;
    let api = ApiConfig {
        limits,
        ..ApiConfig::default()
    };
    restart_with(&mut net, api).await;
    net
}

fn site_token(net: &Net) -> String {
    net.site_tokens[0].1.clone()
}

/// An answer: its status, its `Retry-After` header, and its body as JSON (or as a string).
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

impl Reply {
    /// The error's code, for an error answer of this status.
    fn error(&self, status: u16) -> ErrorCode {
        assert_eq!(self.status, status, "{}", self.body);
        serde_json::from_value::<ApiError>(self.body.clone())
            .unwrap_or_else(|e| panic!("not an API error ({e}): {}", self.body))
            .code
    }

    /// Refused as out of bounds, naming `field`.
    fn out_of_bounds(&self, field: &str) {
        assert_eq!(self.error(400), ErrorCode::InvalidSpec, "{}", self.body);
        assert_eq!(self.body["field"], field, "{}", self.body);
    }

    /// Refused for a rate, with when to retry.
    fn rate_limited(&self) {
        assert_eq!(self.error(429), ErrorCode::RateLimited);
        let after = self.retry_after;
        assert!(after.is_some_and(|s| s >= 1), "Retry-After: {after:?}");
    }
}

/// Raw requests to a hub as one token, or none.
struct As<'a> {
    url: &'a str,
    token: Option<&'a str>,
}

impl<'a> As<'a> {
    fn new(net: &'a Net, token: &'a str) -> As<'a> {
        As {
            url: &net.url,
            token: Some(token),
        }
    }

    fn anonymous(net: &'a Net) -> As<'a> {
        As {
            url: &net.url,
            token: None,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<String>) -> Reply {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        if let Some(t) = self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            retry_after,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    /// Sends `body` as JSON.
    async fn json(&self, method: Method, path: &str, body: &impl serde::Serialize) -> Reply {
        let text = serde_json::to_string(body).unwrap();
        self.send(method, path, Some(text)).await
    }
}

fn submit_body() -> String {
    let mut spec = JobSpec::new("j", "true");
    spec.tenant = Some(TenantId::new("t-a"));
    json!({ "spec": spec }).to_string()
}

/// L2: `{"spec":...}xx` and two concatenated objects were accepted (201). Now every route that
/// takes a JSON body refuses data after the value (400 `bad_request`) before looking at its
/// fields, and no job is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_data_after_a_json_body_is_refused_on_every_route() {
    let net = net_with(Limits::default()).await;
    let site = site_token(&net);
    let user = crate::harness::user_token(&net.op(), "t-a", "trailer").await;
    let (op, site, user) = (
        As::new(&net, &net.operator),
        As::new(&net, &site),
        As::new(&net, &user),
    );

    let doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
    let mut routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // JSON bodies only: an output upload's body is the file's bytes, whatever they are.
            let json_body = operation["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.contains_key("application/json"));
            if !json_body {
                continue;
            }
            routes += 1;
            let roles = operation["x-suanli-access"].as_array();
            let has = |role: &str| roles.is_none_or(|r| r.iter().any(|r| r == role));
            let by = match (has("operator"), has("site")) {
                (true, _) => &op,
                (false, true) => &site,
                // Tenants only (the airlock).
                (false, false) => &user,
            };
            // A path id as its parameter's schema types it (a tenant's slug, or a number).
            let numeric = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "id" && p["schema"]["type"] == "integer")
            });
            let path = path.replace("{id}", if numeric { "1" } else { "t-a" });
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for body in ["{}xx", "{} {}", "{\"a\":1}{\"b\":2}", "[1] 2"] {
                let r = by.send(method.clone(), &path, Some(body.into())).await;
                let what = format!("{method} {path} with {body:?}: {}", r.body);
                assert_eq!(r.error(400), ErrorCode::BadRequest, "{what}");
                let message = r.body["message"].as_str().unwrap();
                assert!(message.contains("after its JSON value"), "{what}");
            }
        }
    }
    assert!(routes >= 13, "every JSON-body route was tried ({routes})");

    // The attack itself: a valid submit with something after it, and two submits in one body.
    let submit = submit_body();
    for body in [format!("{submit}xx"), format!("{submit}{submit}")] {
        let r = op.send(Method::POST, "/v1/jobs", Some(body)).await;
        assert_eq!(r.error(400), ErrorCode::BadRequest);
    }
    assert_eq!(op.get("/v1/jobs").await.body["jobs"], json!([]), "no job");
    // Whitespace after the value is fine.
    let r = op
        .send(Method::POST, "/v1/jobs", Some(format!("{submit} \n")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Captures what the hub logs on this thread (the test runs on one thread, the hub's tasks too).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The value of one sample of the metrics text, e.g. `suanli_auth_failures_total{...}`.
fn sample(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

async fn new_token(net: &Net, name: &str, role: Role, tenant: Option<&str>) -> String {
    let req = TokenRequest {
        name: name.into(),
        role,
        tenant: tenant.map(TenantId::new),
        center: None,
        expires_in: None,
    };
    net.op().create_token(&req).await.unwrap().token
}

/// L6: 2,000 bad tokens at 598/s were neither limited nor logged, each a store lookup. Now an
/// address's failed authentications are limited (429 with Retry-After once over), each is
/// logged with the address and never the token, and once limited an unknown token is refused
/// without a lookup; tokens the hub knows still pass.
#[tokio::test(flavor = "current_thread")]
async fn failed_authentications_are_limited_per_address_and_logged() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let burst = 5;
    let net = net_with(Limits {
        auth_failures: Rate {
            burst,
            per_second: 0.01,
        },
        ..Limits::default()
    })
    .await;
    let op = As::new(&net, &net.operator);
    // A token the hub has seen before the flood, and a valid one it has not seen yet.
    assert_eq!(op.get("/v1/whoami").await.status, 200);
    let fresh = new_token(&net, "fresh", Role::Supervisor, None).await;

    let guesses: Vec<String> = (0..40).map(|i| format!("sl_{i:064x}")).collect();
    for (i, g) in guesses.iter().enumerate() {
        let r = As::new(&net, g).get("/v1/jobs").await;
        match i < burst as usize {
            true => assert_eq!(r.error(401), ErrorCode::Unauthenticated),
            false => r.rate_limited(),
        }
    }
    // A token the hub knows passes from the limited address; an unknown one, even a valid one,
    // waits (it would cost a lookup).
    assert_eq!(op.get("/v1/whoami").await.status, 200);
    As::new(&net, &fresh).get("/v1/whoami").await.rate_limited();

    let metrics = op.get("/metrics").await.body;
    let metrics = metrics.as_str().unwrap();
    let looked_up = sample(
        metrics,
        "suanli_auth_failures_total{reason=\"unknown_token\"}",
    );
    let refused = sample(
        metrics,
        "suanli_auth_failures_total{reason=\"rate_limited\"}",
    );
    assert_eq!(looked_up, u64::from(burst), "lookups stop at the limit");
    assert_eq!(refused, guesses.len() as u64 - u64::from(burst) + 1);

    let text = log.text();
    let failures = text.matches("authentication failed").count();
    assert_eq!(
        failures, burst as usize,
        "each failure within the limit is logged\n{text}"
    );
    assert!(text.contains("address=127.0.0.1"), "{text}");
    let floods = text.matches("too many failed authentications").count();
    assert_eq!(floods, 1, "the flood is logged once\n{text}");
    for secret in guesses.iter().chain([&fresh, &net.operator]) {
        assert!(
            !text.contains(secret.as_str()),
            "a token in the log\n{text}"
        );
    }
}

/// L7: `/metrics` needed no token and showed every center's load; `/v1/hub` showed the hub's
/// process id. Now metrics need an operator or supervisor token unless the hub runs with
/// `--metrics-public`, and the hub's id carries no process id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_metrics_role_and_no_process_id_is_shown() {
    let mut net = net_with(Limits::default()).await;
    let user = new_token(&net, "u", Role::User, Some("t-a")).await;
    let supervisor = new_token(&net, "s", Role::Supervisor, None).await;
    let site = site_token(&net);
    let r = As::anonymous(&net).get("/metrics").await;
    assert_eq!(r.error(401), ErrorCode::Unauthenticated);
    for t in [&user, &site] {
        let r = As::new(&net, t).get("/metrics").await;
        assert_eq!(r.error(403), ErrorCode::Forbidden);
    }
    for t in [&supervisor, &net.operator] {
        let r = As::new(&net, t).get("/metrics").await;
        assert_eq!(r.status, 200);
        assert!(r.body.as_str().unwrap().contains("suanli_queue_depth"));
    }

    let pid = std::process::id().to_string();
    let hub = net.op().hub_status().await.unwrap();
    assert!(!hub.id.split('/').any(|part| part == pid), "{}", hub.id);

    let public = ApiConfig {
        metrics_public: true,
        ..ApiConfig::default()
    };
    restart_with(&mut net, public).await;
    let r = As::anonymous(&net).get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `n` log events of `bytes` bytes each, for job 1 (which does not exist: they are stale).
fn log_batch(n: u64, bytes: usize) -> Value {
    let data = "x".repeat(bytes);
    let events: Vec<Value> = (0..n)
        .map(|seq| json!({"job": 1, "attempt": 1, "kind": "log", "seq": seq, "stream": "stdout", "data": data}))
        .collect();
    json!({ "events": events })
}

/// H4 (the API's part): six 16 MB batches of stale events froze the hub. Now a batch over the
/// events or bytes cap is refused (413) before it reaches the engine, a batch as large as the
/// agent ever sends passes, and the operation documents both 413 and 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_batches_over_the_caps_are_refused() {
    let net = net_with(Limits {
        events_per_batch: 300,
        site_body_bytes: 2 << 20,
        ..Limits::default()
    })
    .await;
    let site = site_token(&net);
    let site = As::new(&net, &site);
    let path = "/v1/site/events";

    // The agent's largest batch: 200 events, about 1 MiB of log data.
    let r = site.json(Method::POST, path, &log_batch(200, 5_000)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"].as_array().unwrap().len(), 200);

    let r = site.json(Method::POST, path, &log_batch(301, 1)).await;
    assert_eq!(r.error(413), ErrorCode::PayloadTooLarge);
    assert!(r.body["message"].as_str().unwrap().contains("301 events"));
    let r = site
        .json(Method::POST, path, &log_batch(1, (2 << 20) + 1_000))
        .await;
    assert_eq!(r.error(413), ErrorCode::PayloadTooLarge);

    let doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
    let responses = &doc["paths"][path]["post"]["responses"];
    assert!(responses["413"]["description"].is_string(), "{responses}");
    assert!(responses["429"].is_object(), "{responses}");
    let limited = &doc["components"]["responses"]["RateLimited"];
    assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
}

/// H4 (the API's part): a site, or a token, that sends faster than its rate is refused with 429
/// and Retry-After, nothing done; the site's tokens share the site's bucket; other tokens are
/// not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_tokens_over_their_request_rate_get_429() {
    let rate = |burst| Rate {
        burst,
        per_second: 0.01,
    };
    let net = net_with(Limits {
        per_site: rate(6),
        per_token: rate(4),
        ..Limits::default()
    })
    .await;
    // A second token of the same center: the site's bucket is shared.
    let req = TokenRequest {
        name: "c1-agent-2".into(),
        role: Role::Site,
        tenant: None,
        center: Some("c1".into()),
        expires_in: None,
    };
    let second = net.op().create_token(&req).await.unwrap().token;
    let first = site_token(&net);
    for (i, token) in [&first, &first, &first, &second, &second, &second, &second]
        .into_iter()
        .enumerate()
    {
        let r = As::new(&net, token).get("/v1/site/config").await;
        match i < 6 {
            true => assert_eq!(r.status, 200, "{}", r.body),
            false => r.rate_limited(),
        }
    }

    // Per token: the fifth request of one user token waits; another user's token does not.
    let alice = net.user("t-a", "alice").await;
    let bob = net.user("t-a", "bob").await;
    for _ in 0..4 {
        alice.jobs(&Default::default()).await.unwrap();
    }
    let err = alice.jobs(&Default::default()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    assert!(err.is_transient(), "clients retry it later");
    bob.jobs(&Default::default()).await.unwrap();
}

/// A heartbeat as the agent sends it, as JSON.
fn heartbeat() -> Value {
    json!({
        "agent_version": "0.1.0",
        "inventory": [{"node": "n1", "sku": "RTX4090", "cards": 8, "free_cards": 8}],
        "stacks": {},
        "running": [],
    })
}

/// L8: a 1 MB `agent_version` and a price of 92 trillion yuan per card-hour were accepted. Now
/// heartbeat, registration and price fields are bounded: refused with 400 `invalid_spec` naming
/// the field, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_registration_and_price_fields_are_bounded() {
    let net = net_with(Limits::default()).await;
    let site = site_token(&net);
    let (op, site) = (As::new(&net, &net.operator), As::new(&net, &site));
    let beat = |hb: Value| site.send(Method::POST, "/v1/site/heartbeat", Some(hb.to_string()));

    let mut hb = heartbeat();
    hb["agent_version"] = json!("v".repeat(1 << 20));
    beat(hb).await.out_of_bounds("agent_version");
    let mut hb = heartbeat();
    hb["inventory"] = json!(vec![hb["inventory"][0].clone(); 100_001]);
    beat(hb).await.out_of_bounds("inventory");
    let mut hb = heartbeat();
    hb["inventory"][0]["free_cards"] = json!(1_000);
    beat(hb).await.out_of_bounds("inventory[0].free_cards");
    assert_eq!(beat(heartbeat()).await.status, 200, "within bounds");

    // 92 trillion yuan per card-hour, in the price table and in a registration.
    let trillions = "92000000000000.00";
    let prices = op.get("/v1/prices").await.body;
    let price = json!({"center": "c1", "sku": "RTX4090", "price_per_card_hour": trillions});
    let r = op.json(Method::PUT, "/v1/prices", &price).await;
    r.out_of_bounds("price_per_card_hour");
    assert_eq!(op.get("/v1/prices").await.body, prices, "unchanged");

    let mut spec = center("c2", "RTX4090", 1, 8, trillions);
    let r = op.json(Method::PUT, "/v1/centers/c2", &spec).await;
    r.out_of_bounds("pools[0].price_per_card_hour");
    spec.pools[0].price_per_card_hour = "3.00".parse().unwrap();
    spec.name = "n".repeat(10_000);
    let r = op.json(Method::PUT, "/v1/centers/c2", &spec).await;
    r.out_of_bounds("name");
    let centers = net.op().centers().await.unwrap();
    assert!(
        centers.iter().all(|c| c.id.as_str() != "c2"),
        "not registered"
    );
}

/// L3-L4: NUL bytes in the command or env, an env of 128 KiB, files `a` and `a/b`, a 300-byte path
/// component and `env.PATH` passed submit and failed (or misled the agent) at run time; a bad
/// path parameter got a plain-text answer. Now each submit is refused at once (400
/// `invalid_spec`, `field` naming the part), no job is created, and a bad path parameter gets a
/// JSON error with its stable code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_that_would_fail_at_run_time_are_refused_at_submit() {
    let net = net_with(Limits::default()).await;
    let op = As::new(&net, &net.operator);
    type Mutate = fn(&mut JobSpec);
    let cases: [(&str, Mutate); 7] = [
        ("command", |s| s.command = "echo a\0b".into()),
        ("env.A", |s| {
            s.env.insert("A".into(), "x\0y".into());
        }),
        ("env", |s| {
            s.env.insert("BIG".into(), "x".repeat(128 << 10));
        }),
        ("files.\"a/b\"", |s| {
            s.files.insert("a".into(), "1".into());
            s.files.insert("a/b".into(), "2".into());
        }),
        ("files.\"ppp", |s| {
            s.files.insert("p".repeat(300), "x".into());
        }),
        ("env.PATH", |s| {
            s.env.insert("PATH".into(), "/tmp/evil".into());
        }),
        ("env.LD_PRELOAD", |s| {
            s.env.insert("LD_PRELOAD".into(), "/tmp/evil.so".into());
        }),
    ];
    for (field, mutate) in cases {
        let mut spec = JobSpec::new("j", "true");
        spec.tenant = Some(TenantId::new("t-a"));
        mutate(&mut spec);
        let r = op
            .json(Method::POST, "/v1/jobs", &json!({ "spec": spec }))
            .await;
        assert_eq!(r.error(400), ErrorCode::InvalidSpec, "{field}: {}", r.body);
        let got = r.body["field"].as_str().unwrap();
        assert!(
            got.starts_with(&format!("spec.{field}")),
            "{field}: {}",
            r.body
        );
    }
    assert_eq!(op.get("/v1/jobs").await.body["jobs"], json!([]), "no job");
    for (path, status, code) in [
        ("/v1/jobs/abc", 400, ErrorCode::BadRequest),
        (
            "/v1/jobs/99999999999999999999999",
            400,
            ErrorCode::BadRequest,
        ),
        ("/v1/jobs/-1", 404, ErrorCode::NotFound),
    ] {
        let r = op.get(path).await;
        assert_eq!(r.error(status), code, "{path}: {}", r.body);
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

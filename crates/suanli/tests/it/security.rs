//! The API-layer findings of the security review, each as the attack it was, now failing:
//! trailing data after a JSON body (L2), token guessing without limit or trace (L6), open
//! metrics and a shown process id (L7), event floods and request floods from a site (H4), and
//! unbounded heartbeat, registration and price fields (L8).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use suanli_hub::api::{Limits, Rate};
use suanli_hub::{ApiConfig, Hub};
use suanli_proto::{
    AgentEvent, ApiError, ErrorCode, EventBatch, EventKind, Heartbeat, NodeInventory, Stream,
    TokenRequest,
};
use suanli_types::{JobId, JobSpec, Role, TenantId};

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

/// One raw request: the status, the `Retry-After` header and the body as JSON (or a string).
async fn call(
    net: &Net,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Option<u64>, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", net.url));
    if let Some(t) = token {
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
    (status, retry_after, body)
}

fn code(body: &Value) -> ErrorCode {
    serde_json::from_value::<ApiError>(body.clone())
        .unwrap_or_else(|e| panic!("not an API error ({e}): {body}"))
        .code
}

fn job_spec() -> Value {
    let mut spec = JobSpec::new("j", "true");
    spec.tenant = Some(TenantId::new("t-a"));
    serde_json::to_value(spec).unwrap()
}

/// L2: `{"spec":...}xx` and two concatenated objects were accepted (201). Now every route that
/// takes a JSON body refuses data after the value (400 `bad_request`) before looking at its
/// fields, and no job is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailing_data_after_a_json_body_is_refused_on_every_route() {
    let net = net_with(Limits::default()).await;
    let op = net.operator.clone();
    let site = site_token(&net);
    let submit = json!({ "spec": job_spec() }).to_string();

    let doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
    let mut routes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            routes += 1;
            let admits = |role: &str| {
                operation["x-suanli-access"]
                    .as_array()
                    .is_none_or(|roles| roles.iter().any(|r| r == role))
            };
            let token = if admits("operator") { &op } else { &site };
            let path = path.replace("{id}", "t-a");
            for body in ["{}xx", "{} {}", "{\"a\":1}{\"b\":2}", "[1] 2"] {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let (status, _, resp) =
                    call(&net, m, &path, Some(token.as_str()), Some(body.into())).await;
                let what = format!("{method} {path} with {body:?}: {status} {resp}");
                assert_eq!(status, 400, "{what}");
                assert_eq!(code(&resp), ErrorCode::BadRequest, "{what}");
                assert!(
                    resp["message"]
                        .as_str()
                        .unwrap()
                        .contains("after its JSON value"),
                    "{what}"
                );
            }
        }
    }
    assert!(routes >= 13, "every JSON-body route was tried ({routes})");

    // The attack itself: a valid submit with something after it, and two submits in one body.
    for body in [format!("{submit}xx"), format!("{submit}{submit}")] {
        let (status, _, resp) = call(
            &net,
            Method::POST,
            "/v1/jobs",
            Some(op.as_str()),
            Some(body),
        )
        .await;
        assert_eq!(status, 400, "{resp}");
        assert_eq!(code(&resp), ErrorCode::BadRequest);
    }
    let (_, _, jobs) = call(&net, Method::GET, "/v1/jobs", Some(op.as_str()), None).await;
    assert_eq!(jobs["jobs"], json!([]), "no job was created");
    // Whitespace after the value is fine.
    let body = format!("{submit} \n");
    let (status, _, resp) = call(
        &net,
        Method::POST,
        "/v1/jobs",
        Some(op.as_str()),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{resp}");
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
    let op = net.operator.clone();
    // A token the hub has seen before the flood.
    let (status, _, _) = call(&net, Method::GET, "/v1/whoami", Some(op.as_str()), None).await;
    assert_eq!(status, 200);
    // A valid token it has not seen yet.
    let fresh = net
        .op()
        .create_token(&TokenRequest {
            name: "fresh".into(),
            role: Role::Supervisor,
            tenant: None,
            center: None,
        })
        .await
        .unwrap()
        .token;

    let guesses: Vec<String> = (0..40).map(|i| format!("sl_{i:064x}")).collect();
    let mut statuses = Vec::new();
    for g in &guesses {
        let (status, retry_after, body) =
            call(&net, Method::GET, "/v1/jobs", Some(g.as_str()), None).await;
        if status == 429 {
            assert_eq!(code(&body), ErrorCode::RateLimited);
            assert!(
                retry_after.is_some_and(|s| s >= 1),
                "Retry-After: {retry_after:?}"
            );
        } else {
            assert_eq!(code(&body), ErrorCode::Unauthenticated);
        }
        statuses.push(status.as_u16());
    }
    let mut expected = vec![401; burst as usize];
    expected.resize(guesses.len(), 429);
    assert_eq!(statuses, expected);

    // A token the hub knows passes from the limited address; an unknown one, even a valid one,
    // waits (it would cost a lookup).
    let (status, _, _) = call(&net, Method::GET, "/v1/whoami", Some(op.as_str()), None).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&net, Method::GET, "/v1/whoami", Some(fresh.as_str()), None).await;
    assert_eq!(status, 429);

    let (_, _, metrics) = call(&net, Method::GET, "/metrics", Some(op.as_str()), None).await;
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
    assert_eq!(
        text.matches("too many failed authentications").count(),
        1,
        "the flood is logged once\n{text}"
    );
    for g in &guesses {
        assert!(!text.contains(g.as_str()), "a token in the log\n{text}");
    }
    assert!(!text.contains(&fresh) && !text.contains(&op));
}

/// L7: `/metrics` needed no token and showed every center's load; `/v1/hub` showed the hub's
/// process id. Now metrics need an operator or supervisor token unless the hub runs with
/// `--metrics-public`, and the hub's id carries no process id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_metrics_role_and_no_process_id_is_shown() {
    let mut net = net_with(Limits::default()).await;
    let user = net
        .op()
        .create_token(&TokenRequest {
            name: "u".into(),
            role: Role::User,
            tenant: Some("t-a".into()),
            center: None,
        })
        .await
        .unwrap()
        .token;
    let supervisor = net
        .op()
        .create_token(&TokenRequest {
            name: "s".into(),
            role: Role::Supervisor,
            tenant: None,
            center: None,
        })
        .await
        .unwrap()
        .token;
    let site = site_token(&net);
    let get = |t: Option<String>| {
        let net = &net;
        async move { call(net, Method::GET, "/metrics", t.as_deref(), None).await }
    };
    let (status, _, body) = get(None).await;
    assert_eq!(status, 401);
    assert_eq!(code(&body), ErrorCode::Unauthenticated);
    for t in [&user, &site] {
        let (status, _, body) = get(Some(t.clone())).await;
        assert_eq!(status, 403);
        assert_eq!(code(&body), ErrorCode::Forbidden);
    }
    for t in [&supervisor, &net.operator] {
        let (status, _, body) = get(Some(t.clone())).await;
        assert_eq!(status, 200);
        assert!(
            body.as_str().unwrap().contains("suanli_queue_depth"),
            "{body}"
        );
    }

    let pid = std::process::id().to_string();
    let hub = net.op().hub_status().await.unwrap();
    assert!(!hub.id.split('/').any(|part| part == pid), "{}", hub.id);

    restart_with(
        &mut net,
        ApiConfig {
            metrics_public: true,
            ..ApiConfig::default()
        },
    )
    .await;
    let (status, _, body) = call(&net, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 200, "{body}");
}

fn log_event(job: i64, seq: u64, data: String) -> AgentEvent {
    AgentEvent {
        job: JobId(job),
        attempt: 1,
        kind: EventKind::Log {
            seq,
            stream: Stream::Stdout,
            data,
        },
    }
}

fn batch(events: Vec<AgentEvent>) -> String {
    serde_json::to_string(&EventBatch { events }).unwrap()
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
    let post = |body: String| {
        call(
            &net,
            Method::POST,
            "/v1/site/events",
            Some(site.as_str()),
            Some(body),
        )
    };

    // The agent's largest batch: 200 events, about 1 MiB of log data.
    let agents: Vec<AgentEvent> = (0..200)
        .map(|i| log_event(1, i, "x".repeat(5_000)))
        .collect();
    let (status, _, body) = post(batch(agents)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"].as_array().unwrap().len(), 200);

    let many: Vec<AgentEvent> = (0..301).map(|i| log_event(1, i, "x".into())).collect();
    let (status, _, body) = post(batch(many)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), ErrorCode::PayloadTooLarge);
    assert!(
        body["message"].as_str().unwrap().contains("301 events"),
        "{body}"
    );

    let big = vec![log_event(1, 0, "x".repeat((2 << 20) + 1_000))];
    let (status, _, body) = post(batch(big)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), ErrorCode::PayloadTooLarge);

    let doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
    let responses = &doc["paths"]["/v1/site/events"]["post"]["responses"];
    assert!(responses["413"]["description"].is_string(), "{responses}");
    assert!(responses["429"].is_object(), "{responses}");
    let limited = &doc["components"]["responses"]["RateLimited"];
    assert!(limited["headers"]["Retry-After"].is_object(), "{limited}");
}

/// H4 (the API's part): a site, or a token, that sends faster than its rate is refused with 429
/// and Retry-After, nothing done; the site's tokens share the site's bucket; other tokens and
/// other sites are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_and_tokens_over_their_request_rate_get_429() {
    let slow = Rate {
        burst: 6,
        per_second: 0.01,
    };
    let net = net_with(Limits {
        per_site: slow,
        per_token: Rate {
            burst: 4,
            per_second: 0.01,
        },
        ..Limits::default()
    })
    .await;
    let op = net.op();
    // A second token of the same center: the site's bucket is shared.
    let second = op
        .create_token(&TokenRequest {
            name: "site:c1:2".into(),
            role: Role::Site,
            tenant: None,
            center: Some("c1".into()),
        })
        .await
        .unwrap()
        .token;
    let first = site_token(&net);
    let mut statuses = Vec::new();
    for token in [&first, &first, &first, &second, &second, &second, &second] {
        let (status, retry_after, body) = call(
            &net,
            Method::GET,
            "/v1/site/config",
            Some(token.as_str()),
            None,
        )
        .await;
        if status == 429 {
            assert_eq!(code(&body), ErrorCode::RateLimited);
            assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429], "per site");

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

fn heartbeat() -> Heartbeat {
    Heartbeat {
        agent_version: "0.1.0".into(),
        inventory: vec![NodeInventory {
            node: "n1".into(),
            sku: "RTX4090".into(),
            cards: 8,
            free_cards: 8,
        }],
        stacks: BTreeMap::new(),
        running: Vec::new(),
        draining: false,
    }
}

/// L8: a 1 MB `agent_version` and a price of 92 trillion yuan per card-hour were accepted. Now
/// heartbeat, registration and price fields are bounded: refused with 400 `invalid_spec` naming
/// the field, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_registration_and_price_fields_are_bounded() {
    let net = net_with(Limits::default()).await;
    let site = site_token(&net);
    let op = net.operator.clone();
    let refused = |status: StatusCode, body: &Value, field: &str| {
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(body), ErrorCode::InvalidSpec, "{body}");
        assert_eq!(body["field"], field, "{body}");
    };
    let beat = |hb: Heartbeat| {
        let body = serde_json::to_string(&hb).unwrap();
        call(
            &net,
            Method::POST,
            "/v1/site/heartbeat",
            Some(site.as_str()),
            Some(body),
        )
    };

    let mut hb = heartbeat();
    hb.agent_version = "v".repeat(1 << 20);
    let (status, _, body) = beat(hb).await;
    refused(status, &body, "agent_version");
    let mut hb = heartbeat();
    hb.inventory = vec![hb.inventory[0].clone(); 100_001];
    let (status, _, body) = beat(hb).await;
    refused(status, &body, "inventory");
    let mut hb = heartbeat();
    hb.inventory[0].free_cards = 1_000;
    let (status, _, body) = beat(hb).await;
    refused(status, &body, "inventory[0].free_cards");
    let (status, _, body) = beat(heartbeat()).await;
    assert_eq!(status, 200, "a heartbeat within bounds: {body}");

    // 92 trillion yuan per card-hour, in the price table and in a registration.
    let prices_before = call(&net, Method::GET, "/v1/prices", Some(op.as_str()), None)
        .await
        .2;
    let price =
        json!({"center": "c1", "sku": "RTX4090", "price_per_card_hour": "92000000000000.00"});
    let (status, _, body) = call(
        &net,
        Method::PUT,
        "/v1/prices",
        Some(op.as_str()),
        Some(price.to_string()),
    )
    .await;
    refused(status, &body, "price_per_card_hour");
    let prices_after = call(&net, Method::GET, "/v1/prices", Some(op.as_str()), None)
        .await
        .2;
    assert_eq!(prices_before, prices_after, "the price table is unchanged");

    let mut spec = center("c2", "RTX4090", 1, 8, "92000000000000.00");
    let body = serde_json::to_string(&spec).unwrap();
    let (status, _, resp) = call(
        &net,
        Method::PUT,
        "/v1/centers/c2",
        Some(op.as_str()),
        Some(body),
    )
    .await;
    refused(status, &resp, "pools[0].price_per_card_hour");
    spec.pools[0].price_per_card_hour = "3.00".parse().unwrap();
    spec.name = "n".repeat(10_000);
    let body = serde_json::to_string(&spec).unwrap();
    let (status, _, resp) = call(
        &net,
        Method::PUT,
        "/v1/centers/c2",
        Some(op.as_str()),
        Some(body),
    )
    .await;
    refused(status, &resp, "name");
    let centers = net.op().centers().await.unwrap();
    assert!(
        centers.iter().all(|c| c.id.as_str() != "c2"),
        "not registered"
    );
}

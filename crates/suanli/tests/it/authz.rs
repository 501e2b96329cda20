//! Who may call what, and the token findings of the security review, each as the attack it
//! was, now failing: tokens that never expired and could not be revoked (M2), a cancelled
//! placed job that held its cards for a lease (L1), names that were neither checked nor unique
//! and a cancel decided by name (L5), and public-service work open to any tenant.
//!
//! The authorization matrix is built from the OpenAPI document: every operation x every kind
//! of principal, with the expected outcome of each from the table below, so that a new route
//! without a row (or a row of a route that is gone) fails the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use suanli_proto::{ApiError, ErrorCode, RotateRequest, TokenRequest};
use suanli_store::Store;
use suanli_types::{CenterId, JobSpec, JobState, PriorityClass, Role, TenantCategory, TenantId};

use crate::check;
use crate::harness::{Net, center, open, submit, wait_state};

/// The kinds of caller of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    None,
    Bad,
    Expired,
    Revoked,
    UserA,
    TenantAdminA,
    UserB,
    /// Site X's token on X's paths.
    SiteXForX,
    /// Site Y's token on X's paths.
    SiteXForY,
    Supervisor,
    Operator,
}

const KINDS: [Kind; 11] = [
    Kind::None,
    Kind::Bad,
    Kind::Expired,
    Kind::Revoked,
    // User A before the others: it cancels its own job and revokes nothing of its own here.
    Kind::UserA,
    Kind::TenantAdminA,
    Kind::UserB,
    Kind::SiteXForX,
    Kind::SiteXForY,
    Kind::Supervisor,
    Kind::Operator,
];

/// What a call should get: served (neither 401 nor 403), refused (401 or 403, with the JSON
/// code), or 404 as if the object did not exist (it is not the caller's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allow,
    Deny,
    Hide,
}

/// The expected outcome per operation for the token-holding kinds, in the order
/// `UserA TenantAdminA UserB SiteXForX SiteXForY Supervisor Operator` (`A` allow, `D` deny,
/// `H` hide); `public` for operations without a token. No token, a bad, an expired or a
/// revoked one are refused by every operation that is not public.
const TABLE: &[(&str, &str)] = &[
    ("GET /healthz", "public"),
    ("GET /readyz", "public"),
    ("GET /v1/openapi.json", "public"),
    ("GET /metrics", "D D D D D A A"),
    ("GET /v1/admin/quarantine", "D D D D D A A"),
    // The audit log: the operator and supervisors read it, nobody writes it.
    ("GET /v1/audit/checkpoint", "D D D D D A A"),
    ("GET /v1/audit/entries", "D D D D D A A"),
    ("GET /v1/audit/entries/{seq}/proof", "D D D D D A A"),
    ("GET /v1/audit/export", "D D D D D A A"),
    ("GET /v1/bills", "A A A D D A A"),
    ("GET /v1/bills/lines/{line}/explain", "A A A D D A A"),
    ("GET /v1/centers", "A A A A A A A"),
    ("PUT /v1/centers/{id}", "D D D D D D A"),
    ("POST /v1/centers/{id}/drain", "D D D A D D A"),
    ("POST /v1/centers/{id}/site-token", "D D D D D D A"),
    ("POST /v1/centers/{id}/undrain", "D D D A D D A"),
    ("GET /v1/hub", "A A A A A A A"),
    // Statistics: tenants see their own usage; releases are public, the operator makes them.
    ("GET /v1/indicators", "A A A D D A A"),
    ("POST /v1/certifications/{id}/review", "D D D D D D A"),
    ("GET /v1/jobs", "A A A D D A A"),
    ("POST /v1/jobs", "A A A D D D A"),
    ("GET /v1/jobs/{id}", "A A H H H A A"),
    // The supervisor sees every job but cancels none.
    ("POST /v1/jobs/{id}/cancel", "A A H H H D A"),
    ("POST /v1/jobs/{id}/hold", "A A H H H D A"),
    ("POST /v1/jobs/{id}/release", "A A H H H D A"),
    // Arrays: only those who may cancel jobs get as far as looking for the array's tasks.
    ("POST /v1/arrays/{id}/cancel", "A A H D D D A"),
    ("GET /v1/jobs/{id}/logs", "A A H H H A A"),
    // Datasets: everyone but sites reads the register; owners' tenant admins and the operator
    // register and grant. The airlock: tenants ask and review (the handler decides whose).
    ("GET /v1/datasets", "A A A D D A A"),
    ("GET /v1/datasets/{name}", "A A A D D A A"),
    ("PUT /v1/datasets/{name}", "D A D D D D A"),
    ("POST /v1/datasets/{name}/grants", "D A D D D D A"),
    ("POST /v1/datasets/{name}/revoke", "D A D D D D A"),
    ("POST /v1/airlock", "A A A D D D D"),
    ("GET /v1/airlock", "A A A D D A A"),
    ("GET /v1/airlock/{id}", "A A A D D A A"),
    ("POST /v1/airlock/{id}/review", "A A A D D D D"),
    // Outputs: listed like logs, downloaded only by the job's tenant, uploaded by sites.
    ("GET /v1/jobs/{id}/outputs", "A A H H H A A"),
    ("GET /v1/jobs/{id}/outputs/content", "A A H H H D D"),
    ("PUT /v1/site/outputs/{id}/{attempt}", "D D D A A D D"),
    ("GET /v1/site/checkpoints/{id}", "D D D A A D D"),
    ("GET /v1/site/checkpoints/{id}/content", "D D D A A D D"),
    // The model library: everyone but sites reads it; the operator and tenant admins publish;
    // those who submit jobs certify; only the operator reviews.
    ("GET /v1/models", "A A A D D A A"),
    ("POST /v1/models", "D A D D D D A"),
    ("GET /v1/models/{id}", "A A A D D A A"),
    ("GET /v1/models/{id}/certifications", "A A A D D A A"),
    ("POST /v1/models/{id}/certify", "A A A D D D A"),
    ("GET /v1/prices", "A A A D D A A"),
    ("PUT /v1/prices", "D D D D D D A"),
    ("GET /v1/programmes", "A A A D D A A"),
    ("POST /v1/programmes", "D D D D D D A"),
    ("POST /v1/programmes/{id}/grants", "D D D D D D A"),
    ("GET /v1/programmes/{id}/report", "D D D D D A A"),
    ("POST /v1/quote", "A A A D D D A"),
    ("GET /v1/releases", "public"),
    ("POST /v1/releases", "D D D D D D A"),
    ("POST /v1/releases/preliminary", "D D D D D A A"),
    ("GET /v1/releases/{quarter}/{file}", "public"),
    // Risk flags: the operator and supervisors read them and move them forward.
    ("GET /v1/risk", "D D D D D A A"),
    ("POST /v1/risk/state", "D D D D D A A"),
    ("GET /v1/site/assignments", "D D D A A D D"),
    ("GET /v1/site/config", "D D D A A D D"),
    ("POST /v1/site/events", "D D D A A D D"),
    ("POST /v1/site/heartbeat", "D D D A A D D"),
    ("GET /v1/statements", "D D D A A A A"),
    ("GET /v1/tenants", "A A A D D A A"),
    ("POST /v1/tenants", "D D D D D D A"),
    // Tenant A's budget and policy.
    ("GET /v1/tenants/{id}/budget", "A A D D D A A"),
    ("PUT /v1/tenants/{id}/budget", "D D D D D D A"),
    ("GET /v1/tenants/{id}/policy", "A A H H H A A"),
    ("PUT /v1/tenants/{id}/policy", "D D D D D D A"),
    ("GET /v1/tokens", "D A D D D A A"),
    ("POST /v1/tokens", "D A D D D D A"),
    // A user token of tenant A: its tenant admin and the operator revoke it; to the others it
    // does not exist.
    ("DELETE /v1/tokens/{id}", "H A H H H H A"),
    ("GET /v1/whoami", "A A A A A A A"),
];

fn expected(row: &str, kind: Kind) -> Outcome {
    if row == "public" {
        return Outcome::Allow;
    }
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.len(), 7, "row {row:?}");
    let i = match kind {
        Kind::None | Kind::Bad | Kind::Expired | Kind::Revoked => return Outcome::Deny,
        Kind::UserA => 0,
        Kind::TenantAdminA => 1,
        Kind::UserB => 2,
        Kind::SiteXForX => 3,
        Kind::SiteXForY => 4,
        Kind::Supervisor => 5,
        Kind::Operator => 6,
    };
    match cells[i] {
        "A" => Outcome::Allow,
        "D" => Outcome::Deny,
        "H" => Outcome::Hide,
        c => panic!("row {row:?}: cell {c:?}"),
    }
}

async fn token(
    net: &Net,
    name: &str,
    role: Role,
    tenant: Option<&str>,
    center: Option<&str>,
) -> (i64, String) {
    let req = TokenRequest {
        name: name.into(),
        role,
        tenant: tenant.map(TenantId::new),
        center: center.map(CenterId::new),
        expires_in: None,
    };
    let t = net.op().create_token(&req).await.unwrap();
    (t.id, t.token)
}

/// A token written straight into the store that expired a second ago.
async fn expired_token(store: &dyn Store, tenant: &str) -> String {
    let now = suanli_hub::engine::now();
    let mut t = suanli_hub::auth::new_token_for(
        "gone",
        Role::User,
        Some(TenantId::new(tenant)),
        None,
        now,
        None,
    );
    t.expires_at = Some(now.plus_millis(-1000));
    suanli_hub::auth::issue_token(store, &t).await.unwrap().0
}

/// A raw call: status and body as JSON (`Null` when it is not JSON).
async fn call(url: &str, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut req = http.request(method.parse::<Method>().unwrap(), format!("{url}{path}"));
    if method != "GET" && method != "DELETE" {
        req = req.header("content-type", "application/json").body("{}");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The API error of a failed client call.
fn api(e: suanli_client::ClientError) -> ApiError {
    match e {
        suanli_client::ClientError::Api(e) => e,
        e => panic!("not an API error: {e}"),
    }
}

fn code(body: &Value) -> Option<ErrorCode> {
    serde_json::from_value::<ApiError>(body.clone())
        .ok()
        .map(|e| e.code)
}

/// Every operation of the OpenAPI document called by every kind of principal: the outcome is
/// the table's, a refusal is 401 or 403 with its JSON code, and nothing is a server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_principal_gets_the_tables_outcome() {
    let centers = [
        center("cx", "RTX4090", 1, 8, "2.00"),
        center("cy", "RTX4090", 1, 8, "2.00"),
        center("cz", "RTX4090", 1, 8, "2.00"),
    ];
    let net = Net::new(&centers, &["ta", "tb"]).await;
    let (_, user_a) = token(&net, "alice", Role::User, Some("ta"), None).await;
    let (_, admin_a) = token(&net, "ta-admin", Role::TenantAdmin, Some("ta"), None).await;
    let (_, user_b) = token(&net, "bob", Role::User, Some("tb"), None).await;
    let (_, supervisor) = token(&net, "sup", Role::Supervisor, None, None).await;
    let (revoked_id, revoked) = token(&net, "leaver", Role::User, Some("ta"), None).await;
    net.op().revoke_token(revoked_id).await.unwrap();
    let (victim, _) = token(&net, "victim", Role::User, Some("ta"), None).await;
    let store = open(&net.db).await;
    let expired = expired_token(store.as_ref(), "ta").await;
    let site = |c: &str| {
        net.site_tokens
            .iter()
            .find(|(id, _)| id.as_str() == c)
            .unwrap()
            .1
            .clone()
    };
    // A job of user A, queued (no agents): what job paths name.
    let job = submit(&net.client(&user_a), &JobSpec::new("mine", "echo hi")).await;
    let secret_of = |k: Kind| -> Option<String> {
        match k {
            Kind::None => None,
            Kind::Bad => Some(format!("sl_{}", "0".repeat(64))),
            Kind::Expired => Some(expired.clone()),
            Kind::Revoked => Some(revoked.clone()),
            Kind::UserA => Some(user_a.clone()),
            Kind::TenantAdminA => Some(admin_a.clone()),
            Kind::UserB => Some(user_b.clone()),
            Kind::SiteXForX => Some(site("cx")),
            Kind::SiteXForY => Some(site("cy")),
            Kind::Supervisor => Some(supervisor.clone()),
            Kind::Operator => Some(net.operator.clone()),
        }
    };
    let table: BTreeMap<&str, &str> = TABLE.iter().copied().collect();
    assert_eq!(table.len(), TABLE.len(), "one row per operation");
    let doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
    let mut seen = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let key = format!("{} {path}", method.to_uppercase());
            let row = table
                .get(key.as_str())
                .unwrap_or_else(|| panic!("{key}: no row in the table; add one"));
            let public = op["x-suanli-access"] == "public";
            assert_eq!(
                public,
                *row == "public",
                "{key}: public in the document and the table"
            );
            seen.push(key.clone());
            // The center paths name X (rotation: Z, whose token nobody here uses), the tenant
            // paths A, the job paths A's job, the token path a user token of A.
            let id = if path.ends_with("/site-token") {
                "cz".to_string()
            } else if path.contains("/centers/") {
                "cx".to_string()
            } else if path.contains("/tenants/") {
                "ta".to_string()
            } else if path.contains("/jobs/")
                || path.contains("/arrays/")
                || path.contains("/site/outputs/")
                || path.contains("/site/checkpoints/")
            {
                job.to_string()
            } else if path.contains("/tokens/") {
                victim.to_string()
            } else {
                "p1".to_string()
            };
            let mut concrete = path
                .replace("{id}", &id)
                .replace("{attempt}", "1")
                .replace("{seq}", "0")
                .replace("{line}", "1");
            if path == "/v1/site/assignments" {
                concrete.push_str("?wait_secs=0");
            }
            for kind in KINDS {
                let secret = secret_of(kind);
                let (status, body) = call(
                    &net.url,
                    &method.to_uppercase(),
                    &concrete,
                    secret.as_deref(),
                )
                .await;
                let what = format!("{key} as {kind:?}: {status} {body}");
                assert!(status < 500, "{what}");
                match expected(row, kind) {
                    Outcome::Allow => assert!(status != 401 && status != 403, "{what}"),
                    Outcome::Deny => {
                        let want = match status {
                            401 => ErrorCode::Unauthenticated,
                            403 => ErrorCode::Forbidden,
                            _ => panic!("{what}: expected 401 or 403"),
                        };
                        assert_eq!(code(&body), Some(want), "{what}");
                    }
                    Outcome::Hide => {
                        assert_eq!(status, 404, "{what}");
                        assert_eq!(code(&body), Some(ErrorCode::NotFound), "{what}");
                    }
                }
            }
        }
    }
    for (key, _) in TABLE {
        assert!(
            seen.iter().any(|s| s == key),
            "{key}: a row for an operation the document lacks"
        );
    }
}

/// M2: tokens never expired and could not be revoked (deleting the row worked only after a
/// restart). Now an expired token is refused, a revoked one at once (cached or not), the list
/// shows no secret, and a rotated site token is refused at once or after its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_tokens_are_refused_at_once_and_site_tokens_rotate() {
    let net = Net::new(&[center("c1", "RTX4090", 1, 8, "2.00")], &["t-a"]).await;
    let store = open(&net.db).await;
    let expired = expired_token(store.as_ref(), "t-a").await;
    let (status, body) = call(&net.url, "GET", "/v1/whoami", Some(&expired)).await;
    assert_eq!(
        (status, code(&body)),
        (401, Some(ErrorCode::Unauthenticated)),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    let (id, secret) = token(&net, "temp", Role::User, Some("t-a"), None).await;
    // Cached by the hub first.
    assert_eq!(
        call(&net.url, "GET", "/v1/whoami", Some(&secret)).await.0,
        200
    );
    let listed = net.op().tokens().await.unwrap();
    let mine = listed.iter().find(|t| t.id == id).unwrap();
    assert!(mine.valid && mine.expires_at.is_some() && mine.revoked_at.is_none());
    let raw = call(&net.url, "GET", "/v1/tokens", Some(&net.operator))
        .await
        .1
        .to_string();
    assert!(
        !raw.contains(&secret) && !raw.contains("sl_"),
        "no secret in the list: {raw}"
    );
    let revoked = net.op().revoke_token(id).await.unwrap();
    assert!(!revoked.valid && revoked.revoked_at.is_some());
    let (status, body) = call(&net.url, "GET", "/v1/whoami", Some(&secret)).await;
    assert_eq!(status, 401, "refused at once: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    // A token revokes itself; then it is refused.
    let (_, own) = token(&net, "self-revoker", Role::User, Some("t-a"), None).await;
    let me = net.client(&own).whoami().await.unwrap();
    net.client(&own).revoke_token(me.id).await.unwrap();
    assert_eq!(call(&net.url, "GET", "/v1/whoami", Some(&own)).await.0, 401);

    // Rotation at once: the old site token is refused, the new one works.
    let old = net.site_tokens[0].1.clone();
    assert_eq!(
        call(&net.url, "GET", "/v1/site/config", Some(&old)).await.0,
        200
    );
    let new = net
        .op()
        .rotate_site_token("c1", &RotateRequest::default())
        .await
        .unwrap();
    assert_eq!(new.center.as_ref().map(|c| c.as_str()), Some("c1"));
    assert_eq!(
        call(&net.url, "GET", "/v1/site/config", Some(&old)).await.0,
        401
    );
    assert_eq!(
        call(&net.url, "GET", "/v1/site/config", Some(&new.token))
            .await
            .0,
        200
    );
    // With a grace the old one works until the grace ends.
    let grace = RotateRequest {
        grace: 60,
        expires_in: None,
    };
    let newer = net.op().rotate_site_token("c1", &grace).await.unwrap();
    assert_eq!(
        call(&net.url, "GET", "/v1/site/config", Some(&new.token))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&net.url, "GET", "/v1/site/config", Some(&newer.token))
            .await
            .0,
        200
    );
    let listed = net.op().tokens().await.unwrap();
    let during = listed.iter().find(|t| t.id == new.id).unwrap();
    let ends = during
        .revoked_at
        .expect("the grace's end is its revocation");
    assert!(during.valid && ends.millis_since(suanli_hub::engine::now()) > 50_000);
    // Expiry: out of bounds is refused, naming the field.
    let long = TokenRequest {
        name: "forever".into(),
        role: Role::Operator,
        tenant: None,
        center: None,
        expires_in: Some(365 * 86_400),
    };
    let e = api(net.op().create_token(&long).await.unwrap_err());
    assert_eq!(
        (e.code, e.field.as_deref()),
        (ErrorCode::InvalidSpec, Some("expires_in"))
    );
}

/// M2 through the CLI: `suanli admin token-create` mints a token that works; `suanli admin
/// token-revoke ID` revokes it, and the very next request with it is refused (401, "revoked"),
/// although the hub had it cached; the list shows it revoked. An unknown id is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suanli_admin_token_revoke_refuses_the_token_at_once() {
    let net = Net::new(&[center("c1", "RTX4090", 1, 8, "2.00")], &["t-a"]).await;
    let home = tempfile::tempdir().unwrap();
    let admin = |args: &[&str]| {
        let mut all = vec!["admin"];
        all.extend(args);
        crate::harness::cli_as(&net.url, &net.operator, home.path(), &all)
    };
    let (status, out, err) = admin(&[
        "token-create",
        "--name",
        "leaving",
        "--role",
        "user",
        "--tenant",
        "t-a",
    ]);
    assert_eq!(status, 0, "{err}");
    let secret = out.trim().to_string();
    let id: i64 = err
        .split_whitespace()
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no token id in {err:?}"));
    let listed = net.op().tokens().await.unwrap();
    let minted = listed.iter().find(|t| t.id == id).unwrap();
    assert_eq!(minted.name, "leaving");
    // It works, and the hub has it cached.
    for _ in 0..2 {
        assert_eq!(
            call(&net.url, "GET", "/v1/whoami", Some(&secret)).await.0,
            200
        );
    }
    assert_eq!(
        call(&net.url, "GET", "/v1/jobs", Some(&secret)).await.0,
        200
    );

    let (status, out, err) = admin(&["token-revoke", &id.to_string()]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.starts_with(&format!("Token {id} (leaving, user) revoked as of ")),
        "{out}"
    );
    for path in ["/v1/whoami", "/v1/jobs"] {
        let (status, body) = call(&net.url, "GET", path, Some(&secret)).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some(ErrorCode::Unauthenticated)),
            "{path} refused at once: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
    }
    let listed = net.op().tokens().await.unwrap();
    let gone = listed.iter().find(|t| t.id == id).unwrap();
    assert!(!gone.valid && gone.revoked_at.is_some(), "{gone:?}");
    // The operator's own token is untouched; an unknown id is an error, not a success.
    assert_eq!(
        call(&net.url, "GET", "/v1/whoami", Some(&net.operator))
            .await
            .0,
        200
    );
    let (status, _, err) = admin(&["token-revoke", "987654321"]);
    assert_ne!(status, 0, "revoking an unknown token succeeded: {err}");
}

/// M2 on replicated hubs: a token revoked through hub A is refused by hub B at once, also on
/// the route B answers itself (`/v1/hub`, with its own cache of principals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_hub_is_refused_by_the_other_at_once() {
    const TEST: &str = "a_token_revoked_on_one_hub_is_refused_by_the_other_at_once";
    const VAR: &str = "SUANLI_TEST_POSTGRES_URL";
    let base = match std::env::var(VAR) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => return check::skip(TEST, &format!("{VAR} is not set (.ci/run sets it)")),
    };
    let schema = format!(
        "authz_{}_{}",
        std::process::id(),
        suanli_hub::engine::now().0
    );
    let setup = suanli_store::PostgresStore::connect_in_schema(&base, &schema)
        .await
        .unwrap();
    let now = suanli_hub::engine::now();
    let t = |name: &str, role| suanli_hub::auth::new_token_for(name, role, None, None, now, None);
    let (op, _) = suanli_hub::auth::issue_token(&setup, &t("op", Role::Operator))
        .await
        .unwrap();
    let (sup, sup_rec) = suanli_hub::auth::issue_token(&setup, &t("sup", Role::Supervisor))
        .await
        .unwrap();
    let mut hubs = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(
            suanli_store::PostgresStore::connect_in_schema(&base, &schema)
                .await
                .unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let leader = suanli_hub::LeaderConfig {
            advertise_url: format!("http://{}", listener.local_addr().unwrap()),
            ttl: Duration::from_secs(2),
        };
        let cfg = crate::harness::engine_config();
        let api = suanli_hub::ApiConfig::default();
        let hub = suanli_hub::Hub::start_with(store, cfg, api, listener, Some(leader))
            .await
            .unwrap();
        hubs.push(hub);
    }
    // Both serve once one leads and the other knows it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut ok = 0;
        for h in &hubs {
            if call(&h.url(), "GET", "/v1/whoami", Some(&sup)).await.0 == 200 {
                ok += 1;
            }
        }
        if ok == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hubs never both served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a, b) = (hubs[0].url(), hubs[1].url());
    for url in [&a, &b] {
        assert_eq!(call(url, "GET", "/v1/hub", Some(&sup)).await.0, 200);
    }
    let path = format!("/v1/tokens/{}", sup_rec.principal.id);
    let (status, body) = call(&a, "DELETE", &path, Some(&op)).await;
    assert_eq!(status, 200, "{body}");
    for url in [&b, &a] {
        for route in ["/v1/hub", "/v1/whoami"] {
            let (status, body) = call(url, "GET", route, Some(&sup)).await;
            assert_eq!(status, 401, "{url}{route}: {body}");
        }
    }
    for h in hubs {
        h.shutdown().await;
    }
    setup.drop_schema().await.unwrap();
}

/// L5: token names were neither checked nor unique (`operator`, `site:sme-4090`, 100 KB names
/// were accepted), and the right to cancel was decided by name: a tenant admin minted a token
/// named like a user and cancelled that user's job. Now names are checked and unique in their
/// scope, and only the submitting principal (by id) cancels as a user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_and_unique_and_cancel_goes_by_principal_id() {
    let net = Net::new(&[center("c1", "RTX4090", 1, 8, "2.00")], &["t-a"]).await;
    let (_, admin) = token(&net, "boss", Role::TenantAdmin, Some("t-a"), None).await;
    let admin = net.client(&admin);
    let mint = |name: String| TokenRequest {
        name,
        role: Role::User,
        tenant: Some(TenantId::new("t-a")),
        center: None,
        expires_in: None,
    };
    for bad in [
        "operator".to_string(),
        "site:sme-4090".into(),
        "x".repeat(100 * 1024),
    ] {
        let e = api(admin.create_token(&mint(bad.clone())).await.unwrap_err());
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidSpec, Some("name")),
            "{e}"
        );
    }
    let alice = admin.create_token(&mint("alice".into())).await.unwrap();
    let alice = net.client(&alice.token);
    let me = alice.whoami().await.unwrap();
    let job = submit(&alice, &JobSpec::new("mine", "echo hi")).await;
    let view = alice.job(job).await.unwrap();
    assert_eq!(
        (view.summary.submitted_by.as_str(), view.submitted_by_id),
        ("alice", Some(me.id))
    );
    assert!(
        view.history[0].message.contains(&format!("(#{})", me.id)),
        "{:?}",
        view.history
    );
    // A second "alice" in the tenant is refused while the first is not revoked.
    let e = admin.create_token(&mint("alice".into())).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::AlreadyExists), "{e}");
    // Once she is revoked the name is free, but the new "alice" is another principal.
    admin.revoke_token(me.id).await.unwrap();
    let twin = admin.create_token(&mint("alice".into())).await.unwrap();
    assert_ne!(twin.id, me.id);
    let twin = net.client(&twin.token);
    let e = twin.cancel(job).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden), "{e}");
    assert_eq!(
        net.op().job(job).await.unwrap().summary.state,
        JobState::Queued
    );
    // The tenant admin may cancel its tenant's jobs, and the history names it by id.
    let cancelled = admin.cancel(job).await.unwrap();
    assert_eq!(cancelled.summary.state, JobState::Cancelled);
    let last = cancelled.history.last().unwrap();
    assert!(last.message.contains("boss (#"), "{last:?}");
}

/// L1: cancelling a placed, not yet started job held its cards for a whole lease (60 s), so
/// submit-and-cancel in a loop blocked capacity. Now the cards are freed at once: each next job
/// is placed at once, well within one lease, and the site is told to drop the cancelled one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_and_cancel_in_a_loop_does_not_block_capacity() {
    let net = Net::new(&[center("c1", "RTX4090", 1, 8, "2.00")], &["t-a"]).await;
    let user = net.user("t-a", "alice").await;
    let site = net.site("c1");
    // A site that heartbeats but never takes its assignments: placed jobs stay placed.
    let hb = suanli_proto::Heartbeat {
        agent_version: "test".into(),
        protocol: suanli_proto::PROTOCOL_VERSION,
        inventory: Vec::new(),
        stacks: Default::default(),
        running: Vec::new(),
        draining: false,
    };
    site.heartbeat(&hb).await.unwrap();
    let mut spec = JobSpec::new("hog", "sleep 600");
    spec.cards_per_node = 8;
    let lease = net.cfg.lease_ttl;
    let started = tokio::time::Instant::now();
    let mut cancelled = Vec::new();
    for _ in 0..5 {
        site.heartbeat(&hb).await.unwrap();
        let id = submit(&user, &spec).await;
        wait_state(&user, id, JobState::Placed, Duration::from_secs(5)).await;
        user.cancel(id).await.unwrap();
        cancelled.push(id);
    }
    assert!(
        started.elapsed() < lease,
        "five placements within one lease ({lease:?})"
    );
    // Had the agent taken them, it would list them: it is told to drop every one.
    let taken = suanli_proto::Heartbeat {
        running: cancelled
            .iter()
            .map(|&job| suanli_proto::AttemptRef { job, attempt: 1 })
            .collect(),
        ..hb.clone()
    };
    let reply = site.heartbeat(&taken).await.unwrap();
    let kill: Vec<_> = reply.kill.iter().map(|k| k.job).collect();
    for id in &cancelled {
        assert!(
            kill.contains(id),
            "the site is told to drop job {id}: {kill:?}"
        );
    }
    let centers = net.op().centers().await.unwrap();
    let free: u64 = centers[0].pools.iter().map(|p| p.free_cards).sum();
    assert_eq!(free, 8, "no card held by a cancelled job: {centers:?}");
}

/// Any tenant could submit public-service work, which preempts others'. Now only tenants of the
/// public-service category, and those the operator allows (tenant policy), may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_service_work_is_only_for_tenants_allowed_it() {
    let net = Net::new(&[center("c1", "RTX4090", 1, 8, "2.00")], &["t-sme"]).await;
    let op = net.op();
    let gov = suanli_proto::TenantRequest {
        id: TenantId::new("t-gov"),
        name: "City office".into(),
        category: TenantCategory::PublicService,
        city: None,
    };
    op.create_tenant(&gov).await.unwrap();
    let sme = net.user("t-sme", "alice").await;
    let clerk = net.user("t-gov", "clerk").await;
    let mut spec = JobSpec::new("urgent", "echo hi");
    spec.priority = PriorityClass::PublicService;
    for c in [&sme] {
        let e = api(c.submit(&spec).await.unwrap_err());
        assert_eq!(e.code, ErrorCode::Forbidden, "{e}");
        assert!(e.message.contains("public-service"), "{e}");
        let e = c.quote(&spec).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    }
    let none = op.jobs(&Default::default()).await.unwrap();
    assert!(none.jobs.is_empty(), "nothing was queued");
    submit(&clerk, &spec).await;
    let mut policy = op.tenant_policy("t-sme").await.unwrap();
    policy.public_service = true;
    op.set_tenant_policy("t-sme", &policy).await.unwrap();
    submit(&sme, &spec).await;
}

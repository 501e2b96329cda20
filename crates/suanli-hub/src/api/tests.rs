//! The route table, its document, and the enforcement of every operation's access rule.

use std::sync::Arc;

use serde_json::Value;
use suanli_store::{SqliteStore, Store, TenantRecord};
use suanli_types::{CenterId, Role, TenantCategory, TenantId};

use super::document::{ACCESS_EXTENSION, BEARER};
use super::*;
use crate::auth::{issue_token, new_token_for};

fn doc() -> Value {
    serde_json::to_value(openapi()).unwrap()
}

/// (method, path, operation) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((method.clone(), path.clone(), op.clone()));
        }
    }
    out
}

/// The access rule of every table entry, by method and path.
fn rules() -> Vec<(String, String, Access)> {
    let mut out = Vec::new();
    for (_, ops) in table() {
        for op in ops {
            let (_, mut paths, _) = op.route;
            for (path, item) in paths.paths.iter_mut() {
                for (method, _) in document::operations_mut(item) {
                    out.push((method.to_string(), path.clone(), op.access));
                }
            }
        }
    }
    out
}

#[test]
fn every_operation_declares_its_access_and_security() {
    let doc = doc();
    let ops = operations(&doc);
    assert_eq!(
        ops.len(),
        rules().len(),
        "one document entry per table entry"
    );
    for (method, path, op) in &ops {
        let what = format!("{method} {path}");
        let rule = &op[ACCESS_EXTENSION];
        assert!(!rule.is_null(), "{what}: no {ACCESS_EXTENSION}");
        let public = rule == "public";
        assert_eq!(op.get("security").is_none(), public, "{what}: security");
        if !public {
            assert_eq!(op["security"], serde_json::json!([{BEARER: []}]), "{what}");
            assert!(op["responses"].get("401").is_some(), "{what}: no 401");
        }
        if rule.is_array() {
            assert!(op["responses"].get("403").is_some(), "{what}: no 403");
        }
        assert!(op["operationId"].is_string(), "{what}: no operationId");
    }
    assert!(
        doc["components"]["securitySchemes"][BEARER]["scheme"] == "bearer",
        "the bearer scheme"
    );
}

#[test]
fn every_operation_id_is_unique() {
    // Two handlers of one name in different modules give one operationId twice: a document
    // that OpenAPI validators refuse.
    let doc = doc();
    let mut seen = std::collections::BTreeMap::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
            panic!("operationId {id:?} of {method} {path} is also {other}'s");
        }
    }
}

#[test]
fn responses_are_described_and_errors_are_api_errors() {
    let doc = doc();
    let shared = &doc["components"]["responses"];
    for (method, path, op) in operations(&doc) {
        for (status, resp) in op["responses"].as_object().unwrap() {
            let what = format!("{method} {path} {status}");
            let resp = match resp["$ref"].as_str() {
                Some(r) => &shared[r.trim_start_matches("#/components/responses/")],
                None => resp,
            };
            assert!(resp["description"].is_string(), "{what}: no description");
            let public = op[ACCESS_EXTENSION] == "public";
            if status.starts_with(['4', '5']) && !public {
                assert_eq!(
                    resp["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiError",
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn parameters_are_where_the_route_puts_them() {
    let doc = doc();
    for (method, path, op) in operations(&doc) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let in_path: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for p in &params {
            let name = p["name"].as_str().unwrap();
            match p["in"].as_str().unwrap() {
                "path" => assert!(in_path.contains(&name), "{method} {path}: {name} in path"),
                "query" => assert_eq!(p["required"], false, "{method} {path}: {name}"),
                "header" => {}
                other => panic!("{method} {path}: {name} in {other}"),
            }
        }
        for name in in_path {
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path"),
                "{method} {path}: {name} undeclared"
            );
        }
    }
}

#[test]
fn the_schemas_state_the_bounds_validation_enforces() {
    let doc = doc();
    let s = &doc["components"]["schemas"];
    let spec = &s["JobSpec"]["properties"];
    assert_eq!(spec["cards_per_node"]["minimum"], 1);
    assert_eq!(spec["cards_per_node"]["maximum"], 64);
    let walltime: Vec<&str> = spec["walltime"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(walltime, ["integer", "string"]);
    assert_eq!(s["NodePool"]["properties"]["cards_per_node"]["maximum"], 64);
    let programme = &s["ProgrammeView"];
    assert!(programme["properties"]["expired_at"].is_object());
    assert!(programme["properties"]["issuer"].is_object());
    assert!(programme.get("additionalProperties").is_none());
}

/// A hub with a token of every role; tenant `t1`, center `c1`.
async fn hub_with_every_role() -> (crate::Hub, Vec<(Role, String)>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("h.db")).await.unwrap());
    let at = crate::engine::now();
    let tenant = TenantRecord {
        id: TenantId::new("t1"),
        name: "t1".into(),
        category: TenantCategory::Sme,
        city: None,
    };
    store.create_tenant(&tenant, at).await.unwrap();
    let center = suanli_types::center::gba_topology(1).remove(0);
    let center = suanli_types::CenterSpec {
        id: CenterId::new("c1"),
        ..center
    };
    store.upsert_center(&center, at).await.unwrap();
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let t = new_token_for(
            role.as_str(),
            role,
            matches!(role, Role::TenantAdmin | Role::User).then(|| TenantId::new("t1")),
            (role == Role::Site).then(|| CenterId::new("c1")),
            at,
            None,
        );
        tokens.push((role, issue_token(store.as_ref(), &t).await.unwrap().0));
    }
    let cfg = crate::EngineConfig {
        lease_ttl: std::time::Duration::from_secs(30),
        offline_after: std::time::Duration::from_secs(30),
        tick: std::time::Duration::from_millis(200),
        core: Default::default(),
        reports: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub = crate::Hub::start(store, cfg, listener).await.unwrap();
    (hub, tokens, dir)
}

/// Calls every operation with no token and with a token of each role, with dummy path
/// parameters and an empty JSON body: the rule decides 401 and 403, and nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_enforces_its_rule() {
    let (hub, tokens, _dir) = hub_with_every_role().await;
    let http = reqwest::Client::new();
    for (method, path, access) in rules() {
        // The site token's own center and the tenant tokens' own tenant; job 1 does not exist.
        // Token 999 and center `nope` do not exist either: a revocation or a rotation here
        // would take the tokens of the calls after it.
        let id = if path.contains("/tokens/") {
            "999"
        } else if path.ends_with("/site-token") {
            "nope"
        } else if path.contains("/centers/") {
            "c1"
        } else if path.contains("/tenants/") {
            "t1"
        } else {
            "1"
        };
        let url = format!("{}{}", hub.url(), path.replace("{id}", id));
        let call = |token: Option<&str>| {
            let mut req = http.request(method.to_uppercase().parse().unwrap(), &url);
            if method != "get" {
                req = req.header("content-type", "application/json").body("{}");
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let anonymous = call(None).await.unwrap();
        if access == Access::Public {
            assert_ne!(anonymous.status(), 401, "{method} {path}");
            continue;
        }
        assert_eq!(anonymous.status(), 401, "{method} {path} without a token");
        for (role, token) in &tokens {
            let resp = call(Some(token)).await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let what = format!("{method} {path} as {}: {status} {body}", role.as_str());
            assert_ne!(status, 401, "{what}");
            match access {
                Access::Roles(_, refusal) if !access.allows(*role) => {
                    assert_eq!(status, 403, "{what}");
                    assert_eq!(body["message"], refusal, "{what}");
                }
                Access::Roles(_, refusal) => assert_ne!(body["message"], refusal, "{what}"),
                _ => {}
            }
        }
    }
    hub.shutdown().await;
}

/// A bad path parameter and a bad body are JSON API errors with a stable code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_rejections_are_api_errors() {
    let (hub, tokens, _dir) = hub_with_every_role().await;
    let op = &tokens.iter().find(|(r, _)| *r == Role::Operator).unwrap().1;
    let http = reqwest::Client::new();
    let cases = [
        (reqwest::Method::GET, "/v1/jobs/abc", ""),
        (reqwest::Method::POST, "/v1/tenants", "{not json"),
        (reqwest::Method::GET, "/v1/jobs?bogus=1", ""),
    ];
    for (method, path, body) in cases {
        let resp = http
            .request(method, format!("{}{path}", hub.url()))
            .bearer_auth(op)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let e: suanli_proto::ApiError = resp.json().await.unwrap();
        assert_eq!(e.code, suanli_proto::ErrorCode::BadRequest, "{path}: {e}");
    }
    // A long poll longer than the documented 60 s is refused at once, not held.
    let site = &tokens.iter().find(|(r, _)| *r == Role::Site).unwrap().1;
    let resp = http
        .get(format!("{}/v1/site/assignments?wait_secs=61", hub.url()))
        .bearer_auth(site)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let e: suanli_proto::ApiError = resp.json().await.unwrap();
    assert!(e.message.contains("wait_secs"), "{e}");
    hub.shutdown().await;
}

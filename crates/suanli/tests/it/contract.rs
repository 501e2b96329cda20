//! The contract test: every response a hub sends during the integration tests (in-process hubs,
//! and the real binary spawned by the CLI, fault, partition and Slurm tests) is recorded (see
//! `suanli_hub::contract`) and checked against the OpenAPI document: the operation must document
//! the status and the content type, and a JSON body must match the schema. Objects may carry no
//! field the schema does not name. [`check`] runs whenever a test drops what owns a hub.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use jsonschema::error::ValidationErrorKind;
use serde_json::{Value, json};
use suanli_hub::contract::Exchange;

/// The directory this process's hubs (and the hubs it spawns, through [`ENV`]) record into; the
/// first call turns recording on.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("contract");
        forget_old_runs(&root);
        let dir = root.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        suanli_hub::contract::record_into(&dir);
        dir
    })
}

/// The environment variable that makes a spawned `suanli` record into [`dir`].
pub use suanli_hub::contract::ENV;

/// Removes the records of runs more than a day old.
fn forget_old_runs(root: &Path) {
    let day = std::time::Duration::from_secs(86_400);
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > day);
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Checks the responses recorded since the last check; panics naming each one that breaks the
/// contract (unless the thread is panicking already).
pub fn check() {
    static SEEN: OnceLock<Mutex<HashMap<PathBuf, usize>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut broken = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let from = seen.get(&file).copied().unwrap_or(0);
        // Only whole lines: a hub may be writing the last one now.
        let upto = text.rfind('\n').map_or(0, |i| i + 1);
        if upto <= from {
            continue;
        }
        for line in text[from..upto].lines() {
            let e: Exchange = serde_json::from_str(line).unwrap();
            if let Err(why) = contract().check(&e) {
                broken.push(why);
            }
        }
        seen.insert(file, upto);
    }
    drop(seen);
    if !broken.is_empty() && !std::thread::panicking() {
        panic!(
            "{} responses break the OpenAPI contract:\n{}",
            broken.len(),
            broken.join("\n")
        );
    }
}

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| Contract::new(serde_json::to_value(suanli_hub::api::openapi()).unwrap()))
}

/// The document, with a validator per response schema.
pub struct Contract {
    doc: Value,
    /// Components as the validators see them: objects closed to unnamed fields.
    components: Value,
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

impl Contract {
    pub fn new(doc: Value) -> Contract {
        let mut components = doc["components"].clone();
        if let Some(schemas) = components.get_mut("schemas").and_then(Value::as_object_mut) {
            for s in schemas.values_mut() {
                close(s, Context::Root);
            }
        }
        Contract {
            doc,
            components,
            validators: Default::default(),
        }
    }

    /// Does the document describe this response?
    pub fn check(&self, e: &Exchange) -> Result<(), String> {
        let what = format!(
            "{} {} -> {}",
            e.method,
            e.route.as_deref().unwrap_or("(no route)"),
            e.status
        );
        let Some(route) = &e.route else {
            // No route matched: the fallback's 404, an API error like any other.
            return self.validate(&what, &json!({"$ref": "#/components/schemas/ApiError"}), e);
        };
        let op = &self.doc["paths"][route][e.method.to_ascii_lowercase()];
        if op.is_null() {
            return Err(format!("{what}: no such operation in the document"));
        }
        let mut resp = &op["responses"][e.status.to_string()];
        if resp.is_null() {
            return Err(format!("{what}: status not documented"));
        }
        if let Some(r) = resp["$ref"].as_str() {
            resp = &self.doc["components"]["responses"]
                [r.trim_start_matches("#/components/responses/")];
        }
        let media = e.content_type.as_deref().map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let content = resp["content"].as_object().cloned().unwrap_or_default();
        let schema = content.iter().find_map(|(k, v)| {
            let k = k
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            (Some(&k) == media.as_ref()).then(|| v["schema"].clone())
        });
        match schema {
            Some(schema) => self.validate(&what, &schema, e),
            None if content.is_empty() && e.body.is_empty() => Ok(()),
            None => Err(format!(
                "{what}: content type {:?} not documented (documented: {:?})",
                e.content_type,
                content.keys().collect::<Vec<_>>()
            )),
        }
    }

    fn validate(&self, what: &str, schema: &Value, e: &Exchange) -> Result<(), String> {
        let json_body = e
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json"));
        let body: Value = if json_body {
            serde_json::from_str(&e.body)
                .map_err(|err| format!("{what}: body is not JSON: {err}"))?
        } else {
            Value::String(e.body.clone())
        };
        let validator = self.validator(schema);
        let all: Vec<_> = validator.iter_errors(&body).collect();
        // A part that fails contributes no evaluated fields, so every field around a wrong one
        // is reported "unevaluated" too: show those only when nothing else is wrong.
        let unevaluated = |e: &jsonschema::ValidationError| {
            matches!(e.kind(), ValidationErrorKind::UnevaluatedProperties { .. })
        };
        let only_unevaluated = all.iter().all(unevaluated);
        let errors: Vec<String> = all
            .iter()
            .filter(|e| only_unevaluated || !unevaluated(e))
            .map(|err| format!("at {:?}: {err}", err.instance_path().to_string()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            let mut body = e.body.clone();
            body.truncate(600);
            Err(format!("{what}: {}\n    body: {body}", errors.join("; ")))
        }
    }

    fn validator(&self, schema: &Value) -> std::sync::Arc<jsonschema::Validator> {
        let key = schema.to_string();
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(key)
            .or_insert_with(|| {
                let mut root = schema.clone();
                close(&mut root, Context::Use);
                let root = json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "allOf": [root],
                    "components": self.components,
                });
                std::sync::Arc::new(jsonschema::validator_for(&root).unwrap_or_else(|err| {
                    panic!("the document's schema {schema} does not compile: {err}")
                }))
            })
            .clone()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    /// A component's own schema: closed where it is used, since it may be one part of an
    /// `allOf` elsewhere.
    Root,
    /// A part of an `allOf`: the whole is closed, not the part.
    AllOfPart,
    /// Anywhere else.
    Use,
}

/// Closes objects to fields their schema does not name (`unevaluatedProperties: false`), at each
/// use of a schema rather than in its definition, so that `allOf` compositions (what serde's
/// `flatten` becomes) see the fields of all their parts.
fn close(s: &mut Value, cx: Context) {
    let Some(obj) = s.as_object_mut() else {
        return;
    };
    let names_fields = obj.contains_key("$ref")
        || obj.contains_key("allOf")
        || (obj.contains_key("properties") && cx == Context::Use);
    let open =
        obj.contains_key("additionalProperties") || obj.contains_key("unevaluatedProperties");
    if cx != Context::AllOfPart && cx != Context::Root && names_fields && !open {
        obj.insert("unevaluatedProperties".into(), Value::Bool(false));
    }
    for (k, v) in obj.iter_mut() {
        match (k.as_str(), v) {
            ("allOf", Value::Array(parts)) => {
                for p in parts {
                    close(p, Context::AllOfPart);
                }
            }
            ("properties" | "patternProperties", Value::Object(props)) => {
                for p in props.values_mut() {
                    close(p, Context::Use);
                }
            }
            ("oneOf" | "anyOf", Value::Array(parts)) => {
                // A component's variants (a tagged enum's) are closed where it is used, like
                // its fields; elsewhere (`Option`'s null-or-ref) each alternative is a use.
                let part = if cx == Context::Root {
                    Context::AllOfPart
                } else {
                    cx
                };
                for p in parts {
                    close(p, part);
                }
            }
            ("items" | "additionalProperties" | "not", v @ Value::Object(_)) => {
                close(v, Context::Use)
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(method: &str, route: &str, status: u16, body: Value) -> Exchange {
        Exchange {
            method: method.into(),
            route: Some(route.into()),
            status,
            content_type: Some("application/json".into()),
            body: body.to_string(),
        }
    }

    fn programmes(extra: Option<(&str, Value)>) -> Value {
        let mut p = json!({
            "id": "p1", "issuer": "MIIT", "budget": "100.00", "valid_from": 0,
            "valid_until": 1, "base_rate_bp": 5000, "category_rates": [],
            "domestic_rate_bp": null, "cap_per_tenant": "10.00", "eligible": ["sme"],
            "exclude_affiliated": false, "expired_at": null,
        });
        if let Some((k, v)) = extra {
            p[k] = v;
        }
        json!({"programmes": [p], "grants": [], "balances": []})
    }

    #[test]
    fn a_described_response_passes() {
        let c = contract();
        c.check(&exchange("GET", "/v1/programmes", 200, programmes(None)))
            .unwrap();
        let err = json!({"code": "not_found", "message": "job 9"});
        c.check(&exchange("GET", "/v1/jobs/{id}", 404, err))
            .unwrap();
    }

    #[test]
    fn a_field_the_schema_does_not_name_fails_with_its_path() {
        let e = exchange(
            "GET",
            "/v1/programmes",
            200,
            programmes(Some(("surprise", json!(1)))),
        );
        let why = contract().check(&e).unwrap_err();
        assert!(why.contains("GET /v1/programmes -> 200"), "{why}");
        assert!(why.contains("/programmes/0"), "{why}");
        assert!(why.contains("surprise"), "{why}");
    }

    #[test]
    fn a_wrong_type_an_undocumented_status_or_content_type_fails() {
        let c = contract();
        let why = c
            .check(&exchange(
                "GET",
                "/v1/programmes",
                200,
                programmes(Some(("budget", json!(5)))),
            ))
            .unwrap_err();
        assert!(why.contains("/programmes/0/budget"), "{why}");
        let why = c
            .check(&exchange("GET", "/v1/whoami", 404, json!({})))
            .unwrap_err();
        assert!(why.contains("status not documented"), "{why}");
        let mut e = exchange("GET", "/v1/whoami", 200, json!({}));
        e.content_type = Some("text/plain".into());
        assert!(c.check(&e).unwrap_err().contains("content type"));
    }

    /// The document as served before the contract test: `ProgrammeView` derived with the
    /// flattened spec's `additionalProperties: false`, so every programme's `expired_at` broke it.
    #[test]
    fn the_old_expired_at_mismatch_fails() {
        let mut doc = serde_json::to_value(suanli_hub::api::openapi()).unwrap();
        doc["components"]["schemas"]["ProgrammeView"] = json!({"allOf": [
            {"$ref": "#/components/schemas/ProgrammeSpec"},
            {"type": "object", "properties": {"totals": {}}},
        ]});
        let why = Contract::new(doc)
            .check(&exchange("GET", "/v1/programmes", 200, programmes(None)))
            .unwrap_err();
        assert!(why.contains("expired_at"), "{why}");
    }
}

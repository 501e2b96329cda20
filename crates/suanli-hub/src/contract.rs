//! Contract recording, for tests: with `SUANLI_CONTRACT_LOG=DIR` in the environment (or
//! [`record_into`] called in the process), every hub started afterwards appends each response it
//! sends (method, matched route, status, content type, body) as one JSON line to a file of its
//! own in DIR. The integration tests validate every line against the OpenAPI document (the
//! operation's schema for that status), so a response that the document does not describe fails
//! them. Off by default, and then free.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The environment variable naming the directory to record into.
pub const ENV: &str = "SUANLI_CONTRACT_LOG";

/// Responses larger than this are recorded as cut off (no test sends such).
const BODY_LIMIT: usize = 64 << 20;

/// One response as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// The route template (`/v1/jobs/{id}`); `None` when no route matched (the fallback).
    pub route: Option<String>,
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Records the responses of every hub started from now on in this process into `dir` (the
/// first call wins; the environment variable, if set, is ignored).
pub fn record_into(dir: &Path) {
    let _ = DIR.set(dir.to_path_buf());
}

/// Where a hub starting now records, if anywhere.
pub(crate) fn dir() -> Option<PathBuf> {
    DIR.get()
        .cloned()
        .or_else(|| std::env::var_os(ENV).map(PathBuf::from))
}

/// One hub's record file.
pub(crate) struct Recorder(Mutex<std::fs::File>);

impl Recorder {
    /// A new file in `dir`, named by process and hub.
    pub(crate) fn create(dir: &Path) -> std::io::Result<Arc<Recorder>> {
        static HUBS: AtomicUsize = AtomicUsize::new(0);
        std::fs::create_dir_all(dir)?;
        let n = HUBS.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("hub-{}-{n}.jsonl", std::process::id()));
        // Owner-only: the responses are tenants' jobs, logs and bills.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Arc::new(Recorder(Mutex::new(file))))
    }

    fn write(&self, e: &Exchange) {
        let mut line = serde_json::to_vec(e).expect("an exchange serializes");
        line.push(b'\n');
        // One write per line: a hub killed mid-test leaves whole lines behind.
        let mut f = self.0.lock().expect("contract log lock");
        if let Err(err) = f.write_all(&line) {
            tracing::warn!(error = %err, "cannot write the contract log");
        }
    }
}

/// Middleware: records each response and passes it on unchanged.
pub(crate) async fn record(State(rec): State<Arc<Recorder>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The portal's pages (served beside the API) are not in the API's document.
    if !(path.starts_with("/v1/") || ["/metrics", "/healthz", "/readyz"].contains(&path)) {
        return next.run(req).await;
    }
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        // The API's 404 for unknown `/v1/` paths when a portal takes the rest.
        .filter(|r| r != "/v1/{*rest}");
    let resp = next.run(req).await;
    let (parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a response for the contract log");
            return parts.status.into_response();
        }
    };
    rec.write(&Exchange {
        method,
        route,
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: redacted(&String::from_utf8_lossy(&bytes)),
    });
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// `body` with the secret of a minted token (`POST /v1/tokens` answers it once) replaced by a
/// string of the same type, so that the record validates against the schema and holds no secret.
fn redacted(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut o)) if o.get("token").is_some_and(|t| t.is_string()) => {
            o.insert("token".into(), "redacted".into());
            serde_json::Value::Object(o).to_string()
        }
        _ => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_never_reaches_the_record() {
        let body = r#"{"id":"tok-1","name":"ci","token":"sl_s3cret","role":"user"}"#;
        let out = redacted(body);
        assert!(!out.contains("sl_s3cret"), "{out}");
        assert!(out.contains(r#""name":"ci""#), "{out}");
        // Other bodies are kept to the byte.
        assert_eq!(redacted(r#"{"jobs":[]}"#), r#"{"jobs":[]}"#);
        assert_eq!(redacted("not json"), "not json");
    }
}

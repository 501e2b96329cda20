//! A typed HTTP client for the hub's `/v1` API.
//!
//! Takes a list of hub URLs and fails over between them on connection errors, remembering the last
//! one that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use suanli_proto::*;

/// What can go wrong talking to the hub.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The hub answered with an error body.
    #[error("{0}")]
    Api(ApiError),
    /// No hub could be reached.
    #[error("cannot reach the hub at {urls}: {}", root_cause(source))]
    Unreachable {
        urls: String,
        #[source]
        source: reqwest::Error,
    },
    /// The hub answered something that is not the expected JSON.
    #[error("unexpected answer from {url} (HTTP {status}): {detail}")]
    Protocol {
        url: String,
        status: u16,
        detail: String,
    },
}

/// The innermost cause, e.g. "Connection refused (os error 111)", not the request wrapper.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl ClientError {
    /// The API error code, if the hub answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// Worth retrying later: the hub was unreachable, said it is unavailable, or asked the
    /// caller to slow down.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
            || matches!(
                self.code(),
                Some(ErrorCode::Unavailable | ErrorCode::Internal | ErrorCode::RateLimited)
            )
    }
}

/// How long one hub gets to answer a heartbeat before the next hub in the list is tried.
pub const HEARTBEAT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a call sends: JSON, or bytes as they are (`application/octet-stream`).
enum Body<'a, B> {
    Json(&'a B),
    Bytes(&'a [u8]),
}

/// Per-call options.
#[derive(Clone, Copy, Debug, Default)]
struct Opts {
    /// Repeating the request is harmless, so a timeout may be retried at the next hub.
    idempotent: bool,
    /// A bound on this request (default: the client's 120 s).
    timeout: Option<Duration>,
}

fn decode<R: DeserializeOwned>(url: String, status: u16, bytes: &[u8]) -> Result<R, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol {
        url,
        status,
        detail: e.to_string(),
    })
}

/// A random idempotency key (128 bits, hex).
pub fn new_idempotency_key() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

mod admin;
mod audit;
mod datasets;
mod jobs;
mod models;
mod money;
mod outputs;
mod site;
mod statistics;

pub use audit::AuditQuery;
pub use jobs::JobFilter;
pub use statistics::IndicatorsQuery;

pub struct Client {
    hubs: Vec<String>,
    token: String,
    http: reqwest::Client,
    current: AtomicUsize,
    /// How long a submit is retried (with its idempotency key) while no hub can take it.
    retry_for: Duration,
    /// Why this client reads other tenants' logs and env values (operator, supervisor): sent
    /// with those reads, which the hub records in its audit log.
    reason: Option<String>,
}

/// How long [`Client::submit`] keeps retrying by default: a hub failover takes about 5 s.
pub const DEFAULT_SUBMIT_RETRY: Duration = Duration::from_secs(30);

impl Client {
    /// `hubs`: one or more base URLs such as `http://127.0.0.1:8600`.
    pub fn new(hubs: Vec<String>, token: impl Into<String>) -> Client {
        assert!(!hubs.is_empty(), "at least one hub URL");
        let hubs = hubs
            .into_iter()
            .map(|h| h.trim_end_matches('/').to_string())
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .expect("HTTP client builds");
        Client {
            hubs,
            token: token.into(),
            http,
            current: AtomicUsize::new(0),
            retry_for: DEFAULT_SUBMIT_RETRY,
            reason: None,
        }
    }

    /// Sets the time limit of each request (default 120 s; long-polls and heartbeats set their
    /// own).
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(timeout)
            .build()
            .expect("HTTP client builds");
        self
    }

    /// The same hubs and connection pool, acting with another token (the portal calls the hub
    /// as each signed-in principal).
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client {
            hubs: self.hubs.clone(),
            token: token.into(),
            http: self.http.clone(),
            current: AtomicUsize::new(self.current.load(Ordering::Relaxed)),
            retry_for: self.retry_for,
            reason: self.reason.clone(),
        }
    }

    /// This client, giving `reason` with its reads of job logs and env values: required of the
    /// operator and supervisors for another tenant's, and recorded in the audit log.
    pub fn with_reason(mut self, reason: Option<String>) -> Client {
        self.reason = reason;
        self
    }

    /// Sets how long submits are retried while no hub can take them (zero: not retried).
    pub fn with_submit_retry(mut self, retry_for: Duration) -> Client {
        self.retry_for = retry_for;
        self
    }

    /// Parses a comma-separated list of hub URLs.
    pub fn from_list(hubs: &str, token: impl Into<String>) -> Client {
        Client::new(
            hubs.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            token,
        )
    }

    pub fn hubs(&self) -> &[String] {
        &self.hubs
    }

    async fn call<B: Serialize, Q: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let (url, status, bytes) = self
            .call_raw(
                method,
                path,
                query,
                body.map(Body::Json),
                None,
                Opts::default(),
            )
            .await?;
        decode(url, status, &bytes)
    }

    /// A call whose successful answer is returned as bytes, with the URL and status.
    async fn call_raw<B: Serialize, Q: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<Body<'_, B>>,
        idempotency_key: Option<&str>,
        opts: Opts,
    ) -> Result<(String, u16, Vec<u8>), ClientError> {
        let n = self.hubs.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last_err = None;
        for i in 0..n {
            let idx = (start + i) % n;
            let url = format!("{}{}", self.hubs[idx], path);
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.token);
            if let Some(q) = query {
                req = req.query(q);
            }
            match &body {
                Some(Body::Json(b)) => req = req.json(b),
                Some(Body::Bytes(d)) => {
                    req = req
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(d.to_vec());
                }
                None => {}
            }
            if let Some(k) = idempotency_key {
                req = req.header("idempotency-key", k);
            }
            if let Some(t) = opts.timeout {
                req = req.timeout(t);
            }
            // A request that may have reached a hub is not sent to another one unless repeating
            // it is harmless (a read, or a report keyed by what it reports): a write could
            // otherwise be carried out twice.
            let safe = method == Method::GET || opts.idempotent;
            // Until this hub answers, the next call starts at the next one: a caller that gives
            // up on a hub that hangs (a frozen process, a dead link) moves on.
            if n > 1 {
                self.current.store((idx + 1) % n, Ordering::Relaxed);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() || (safe && e.is_timeout()) => {
                    tracing::debug!(%url, error = %e, "hub unreachable, trying the next");
                    last_err = Some(e);
                    continue;
                }
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        urls: url,
                        source: e,
                    });
                }
            };
            self.current.store(idx, Ordering::Relaxed);
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
                urls: url.clone(),
                source: e,
            })?;
            if status.is_success() {
                return Ok((url, status.as_u16(), bytes.to_vec()));
            }
            if status == StatusCode::SERVICE_UNAVAILABLE && i + 1 < n {
                continue;
            }
            return Err(match serde_json::from_slice::<ApiError>(&bytes) {
                // A request that is harmless to repeat and whose outcome the hub could not learn
                // (its leader went away mid-request) is as good as not carried out: the caller
                // may send it again, so it is told the hub was unavailable.
                Ok(api) if safe && api.code == ErrorCode::OutcomeUnknown => {
                    ClientError::Api(ApiError::new(ErrorCode::Unavailable, api.message))
                }
                Ok(api) => ClientError::Api(api),
                Err(_) => ClientError::Protocol {
                    url,
                    status: status.as_u16(),
                    detail: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                },
            });
        }
        Err(ClientError::Unreachable {
            urls: self.hubs.join(","),
            source: last_err.expect("at least one attempt"),
        })
    }

    /// A call with a JSON body and per-call options.
    async fn call_opts<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        opts: Opts,
    ) -> Result<R, ClientError> {
        let (url, status, bytes) = self
            .call_raw::<B, ()>(method, path, None, Some(Body::Json(body)), None, opts)
            .await?;
        decode(url, status, &bytes)
    }

    async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call::<(), (), R>(Method::GET, path, None, None).await
    }

    async fn get_q<Q: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        q: &Q,
    ) -> Result<R, ClientError> {
        self.call::<(), Q, R>(Method::GET, path, Some(q), None)
            .await
    }

    async fn send<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        self.call::<B, (), R>(method, path, None, Some(body)).await
    }

    async fn get_text<Q: Serialize>(&self, path: &str, q: &Q) -> Result<String, ClientError> {
        let (url, status, bytes) = self
            .call_raw::<(), Q>(Method::GET, path, Some(q), None, None, Opts::default())
            .await?;
        String::from_utf8(bytes).map_err(|e| ClientError::Protocol {
            url,
            status,
            detail: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;

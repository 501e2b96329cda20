//! A typed HTTP client for the hub's `/v1` API.
//!
//! Takes a list of hub URLs and fails over between them on connection errors, remembering the last
//! one that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use suanli_proto::suanli_types::{CenterSpec, JobId, JobSpec};
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

/// Filters for listing jobs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub center: Option<String>,
    /// The submitting principal's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `oldest` (the hub's default) or `newest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// Only the tasks of this array.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub array: Option<i64>,
}

/// Filters of `GET /v1/audit/entries`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Unix ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The query of [`Client::indicators`]; see `GET /v1/indicators`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IndicatorsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Query of the bill, statement and report endpoints.
#[derive(Clone, Debug, Default, Serialize)]
struct MoneyQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    center: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    month: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
}

impl<'a> MoneyQuery<'a> {
    fn new(tenant: Option<&'a str>, center: Option<&'a str>, month: Option<&'a str>) -> Self {
        MoneyQuery {
            tenant,
            center,
            month,
            format: None,
        }
    }
    fn csv() -> Self {
        MoneyQuery {
            format: Some("csv"),
            ..MoneyQuery::default()
        }
    }
}

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
            .call_raw(method, path, query, body, None, Opts::default())
            .await?;
        decode(url, status, &bytes)
    }

    /// A call whose successful answer is returned as bytes, with the URL and status.
    async fn call_raw<B: Serialize, Q: Serialize>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&B>,
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
            if let Some(b) = body {
                req = req.json(b);
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
            .call_raw::<B, ()>(method, path, None, Some(body), None, opts)
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

    // ------------------------------------------------------------ users and operators

    pub async fn whoami(&self) -> Result<WhoAmI, ClientError> {
        self.get("/v1/whoami").await
    }

    pub async fn centers(&self) -> Result<Vec<CenterView>, ClientError> {
        self.get("/v1/centers").await
    }

    pub async fn register_center(
        &self,
        spec: &CenterSpec,
    ) -> Result<CenterRegistered, ClientError> {
        self.send(Method::PUT, &format!("/v1/centers/{}", spec.id), spec)
            .await
    }

    /// Stops new work at `center`; hands back attempts not yet running (and running ones too
    /// with `requeue`).
    pub async fn drain(&self, center: &str, requeue: bool) -> Result<DrainView, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/centers/{center}/drain"),
            &DrainRequest { requeue },
        )
        .await
    }

    pub async fn undrain(&self, center: &str) -> Result<DrainView, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/centers/{center}/undrain"),
            &serde_json::Value::Null,
        )
        .await
    }

    /// The hub that answers (the first reachable in the list) and the leadership as it sees it.
    pub async fn hub_status(&self) -> Result<HubStatus, ClientError> {
        self.get("/v1/hub").await
    }

    /// [`hub_status`](Self::hub_status) of every hub in the list, in order; a hub that cannot be
    /// reached gets its error.
    pub async fn hub_statuses(&self) -> Vec<(String, Result<HubStatus, ClientError>)> {
        let mut out = Vec::new();
        for url in &self.hubs {
            let one = Client::new(vec![url.clone()], self.token.clone());
            out.push((url.clone(), one.hub_status().await));
        }
        out
    }

    pub async fn tenants(&self) -> Result<Vec<TenantView>, ClientError> {
        self.get("/v1/tenants").await
    }

    pub async fn create_tenant(&self, req: &TenantRequest) -> Result<TenantView, ClientError> {
        self.send(Method::POST, "/v1/tenants", req).await
    }

    pub async fn tenant_policy(&self, tenant: &str) -> Result<TenantPolicyView, ClientError> {
        self.get(&format!("/v1/tenants/{tenant}/policy")).await
    }

    pub async fn set_tenant_policy(
        &self,
        tenant: &str,
        policy: &TenantPolicyView,
    ) -> Result<TenantPolicyView, ClientError> {
        self.send(Method::PUT, &format!("/v1/tenants/{tenant}/policy"), policy)
            .await
    }

    pub async fn create_token(&self, req: &TokenRequest) -> Result<TokenCreated, ClientError> {
        self.send(Method::POST, "/v1/tokens", req).await
    }

    /// Tokens without their secrets (the operator and supervisors: all; a tenant admin: its
    /// tenant's).
    pub async fn tokens(&self) -> Result<Vec<suanli_proto::TokenView>, ClientError> {
        self.get("/v1/tokens").await
    }

    /// Revokes a token at once on every hub.
    pub async fn revoke_token(&self, id: i64) -> Result<suanli_proto::TokenView, ClientError> {
        self.call::<(), (), _>(Method::DELETE, &format!("/v1/tokens/{id}"), None, None)
            .await
    }

    /// A new site token for `center`; its older site tokens are revoked after `req.grace`
    /// seconds (0: at once).
    pub async fn rotate_site_token(
        &self,
        center: &str,
        req: &suanli_proto::RotateRequest,
    ) -> Result<TokenCreated, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/centers/{center}/site-token"),
            req,
        )
        .await
    }

    /// A dry run of a submit: prices and expected starts per center.
    pub async fn quote(&self, spec: &JobSpec) -> Result<QuoteView, ClientError> {
        self.send(
            Method::POST,
            "/v1/quote",
            &SubmitRequest { spec: spec.clone() },
        )
        .await
    }

    /// Submits a job under a fresh idempotency key, retrying transient failures (no hub
    /// reachable, 503 during a failover) for up to [`with_submit_retry`](Self::with_submit_retry)
    /// (default 30 s): a retry never creates a second job.
    pub async fn submit(&self, spec: &JobSpec) -> Result<JobView, ClientError> {
        self.submit_with_key(spec, &new_idempotency_key()).await
    }

    /// [`submit`](Self::submit) with the caller's idempotency key (unique per tenant): submitting
    /// again with the same key returns the job the first submit created.
    pub async fn submit_with_key(&self, spec: &JobSpec, key: &str) -> Result<JobView, ClientError> {
        let deadline = std::time::Instant::now() + self.retry_for;
        let mut delay = Duration::from_millis(200);
        let body = SubmitRequest { spec: spec.clone() };
        loop {
            let r = self
                .call_raw::<_, ()>(
                    Method::POST,
                    "/v1/jobs",
                    None,
                    Some(&body),
                    Some(key),
                    Opts::default(),
                )
                .await;
            match r {
                // Safe to repeat under the same key, even when the outcome is unknown.
                Err(e)
                    if (e.is_transient() || e.code() == Some(ErrorCode::OutcomeUnknown))
                        && std::time::Instant::now() + delay < deadline =>
                {
                    tracing::debug!(error = %e, ?delay, "submit not taken; retrying with the same key");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
                Ok((url, status, bytes)) => return decode(url, status, &bytes),
            }
        }
    }

    pub async fn job(&self, id: JobId) -> Result<JobView, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
        }
        let q = Q {
            reason: self.reason.as_deref(),
        };
        self.get_q(&format!("/v1/jobs/{id}"), &q).await
    }

    pub async fn jobs(&self, filter: &JobFilter) -> Result<JobList, ClientError> {
        self.get_q("/v1/jobs", filter).await
    }

    pub async fn cancel(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(Method::POST, &format!("/v1/jobs/{id}/cancel"), &())
            .await
    }

    /// Holds a pending job.
    pub async fn hold(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(Method::POST, &format!("/v1/jobs/{id}/hold"), &())
            .await
    }

    /// Releases a held job.
    pub async fn release(&self, id: JobId) -> Result<JobView, ClientError> {
        self.send(Method::POST, &format!("/v1/jobs/{id}/release"), &())
            .await
    }

    /// Cancels every unfinished task of an array; answers all its tasks.
    pub async fn cancel_array(&self, id: JobId) -> Result<JobList, ClientError> {
        self.send(Method::POST, &format!("/v1/arrays/{id}/cancel"), &())
            .await
    }

    /// Log chunks after `after` (exclusive; 0 = from the start) of `attempt` (default: the latest).
    pub async fn logs(
        &self,
        id: JobId,
        attempt: Option<u32>,
        after: u64,
    ) -> Result<LogsResponse, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            attempt: Option<u32>,
            after: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
        }
        let q = Q {
            attempt,
            after,
            reason: self.reason.as_deref(),
        };
        self.get_q(&format!("/v1/jobs/{id}/logs"), &q).await
    }

    // ------------------------------------------------------------ money

    /// Every row of the price table.
    pub async fn prices(&self) -> Result<Vec<PriceView>, ClientError> {
        self.get("/v1/prices").await
    }

    /// Sets a price (operator).
    pub async fn set_price(&self, req: &PriceRequest) -> Result<PriceView, ClientError> {
        self.send(Method::PUT, "/v1/prices", req).await
    }

    /// Voucher programmes, and the grants and balances the caller may see.
    pub async fn vouchers(&self) -> Result<VouchersView, ClientError> {
        self.get("/v1/programmes").await
    }

    /// Creates a voucher programme and funds it (operator).
    pub async fn create_programme(
        &self,
        spec: &ProgrammeSpec,
    ) -> Result<ProgrammeView, ClientError> {
        self.send(Method::POST, "/v1/programmes", spec).await
    }

    /// Grants a tenant an amount of a programme (operator).
    pub async fn grant(
        &self,
        programme: &str,
        req: &GrantRequest,
    ) -> Result<GrantView, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/programmes/{programme}/grants"),
            req,
        )
        .await
    }

    /// A programme's budget, grants and payouts (operator, supervisor).
    pub async fn programme_report(
        &self,
        programme: &str,
    ) -> Result<ProgrammeReportView, ClientError> {
        self.get(&format!("/v1/programmes/{programme}/report"))
            .await
    }

    /// Where a bill line came from: its report's audit entry, price row and placement.
    pub async fn explain_line(&self, line: u64) -> Result<BillExplainView, ClientError> {
        self.get(&format!("/v1/bills/lines/{line}/explain")).await
    }

    /// A page of audit entries (operator, supervisor).
    pub async fn audit_entries(&self, q: &AuditQuery) -> Result<AuditEntries, ClientError> {
        self.get_q("/v1/audit/entries", q).await
    }

    /// The whole audit log, for `suanli audit verify` (operator, supervisor).
    pub async fn audit_export(&self) -> Result<AuditExport, ClientError> {
        self.get("/v1/audit/export").await
    }

    /// An audit entry's inclusion proof in the newest checkpoint (operator, supervisor).
    pub async fn audit_proof(&self, seq: u64) -> Result<InclusionProof, ClientError> {
        self.get(&format!("/v1/audit/entries/{seq}/proof")).await
    }

    /// The newest audit checkpoint, with the consistency proof from `since` entries.
    pub async fn audit_checkpoint(
        &self,
        since: Option<u64>,
    ) -> Result<LatestCheckpoint, ClientError> {
        #[derive(Serialize)]
        struct Since {
            #[serde(skip_serializing_if = "Option::is_none")]
            since: Option<u64>,
        }
        self.get_q("/v1/audit/checkpoint", &Since { since }).await
    }

    /// Risk flags, newest raised first, after the hub evaluates its rules once more (operator,
    /// supervisor); `state` and `rule` filter.
    pub async fn risk_flags(
        &self,
        state: Option<FlagStateView>,
        rule: Option<&str>,
    ) -> Result<RiskFlags, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            state: Option<FlagStateView>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rule: Option<&'a str>,
        }
        self.get_q("/v1/risk", &Q { state, rule }).await
    }

    /// Moves a risk flag forward, saying why (operator, supervisor).
    pub async fn set_flag_state(
        &self,
        req: &FlagStateRequest,
    ) -> Result<RiskFlagView, ClientError> {
        self.send(Method::POST, "/v1/risk/state", req).await
    }

    /// The models the caller may see.
    pub async fn models(&self) -> Result<suanli_proto::ModelList, ClientError> {
        self.get("/v1/models").await
    }

    /// Publishes a model revision (operator, tenant admin).
    pub async fn publish_model(
        &self,
        spec: &suanli_proto::suanli_models::ModelSpec,
    ) -> Result<suanli_proto::ModelView, ClientError> {
        self.send(Method::POST, "/v1/models", spec).await
    }

    pub async fn model(&self, id: i64) -> Result<suanli_proto::ModelView, ClientError> {
        self.get(&format!("/v1/models/{id}")).await
    }

    /// A model's certification records and adaptation matrix.
    pub async fn certifications(
        &self,
        model: i64,
    ) -> Result<suanli_proto::CertificationList, ClientError> {
        self.get(&format!("/v1/models/{model}/certifications"))
            .await
    }

    /// Runs a model's benchmark at a center; the record, running.
    pub async fn certify(
        &self,
        model: i64,
        req: &suanli_proto::CertifyRequest,
    ) -> Result<suanli_proto::CertificationView, ClientError> {
        self.send(Method::POST, &format!("/v1/models/{model}/certify"), req)
            .await
    }

    /// Accepts or rejects a pending certification (operator).
    pub async fn review_certification(
        &self,
        id: i64,
        req: &suanli_proto::ReviewRequest,
    ) -> Result<suanli_proto::CertificationView, ClientError> {
        self.send(
            Method::POST,
            &format!("/v1/certifications/{id}/review"),
            req,
        )
        .await
    }

    /// Stored money records that do not replay (operator, supervisor).
    pub async fn quarantine(&self) -> Result<QuarantineView, ClientError> {
        self.get("/v1/admin/quarantine").await
    }

    /// The programme report as CSV.
    pub async fn programme_report_csv(&self, programme: &str) -> Result<String, ClientError> {
        self.get_text(
            &format!("/v1/programmes/{programme}/report"),
            &MoneyQuery::csv(),
        )
        .await
    }

    /// Sets a tenant's monthly budget (operator).
    pub async fn set_budget(
        &self,
        tenant: &str,
        req: &BudgetRequest,
    ) -> Result<BudgetView, ClientError> {
        self.send(Method::PUT, &format!("/v1/tenants/{tenant}/budget"), req)
            .await
    }

    /// A tenant's budget and its use this month.
    pub async fn budget(&self, tenant: &str) -> Result<BudgetView, ClientError> {
        self.get(&format!("/v1/tenants/{tenant}/budget")).await
    }

    /// A tenant's invoice for a month (`YYYY-MM`; default: the current month). A tenant token
    /// may leave `tenant` out.
    pub async fn bill(
        &self,
        tenant: Option<&str>,
        month: Option<&str>,
    ) -> Result<InvoiceView, ClientError> {
        self.get_q("/v1/bills", &MoneyQuery::new(tenant, None, month))
            .await
    }

    /// The invoice as CSV.
    pub async fn bill_csv(
        &self,
        tenant: Option<&str>,
        month: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut q = MoneyQuery::new(tenant, None, month);
        q.format = Some("csv");
        self.get_text("/v1/bills", &q).await
    }

    /// A center's settlement statement for a month.
    pub async fn statement(
        &self,
        center: &str,
        month: Option<&str>,
    ) -> Result<StatementView, ClientError> {
        self.get_q(
            "/v1/statements",
            &MoneyQuery::new(None, Some(center), month),
        )
        .await
    }

    /// The statement as CSV.
    pub async fn statement_csv(
        &self,
        center: &str,
        month: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut q = MoneyQuery::new(None, Some(center), month);
        q.format = Some("csv");
        self.get_text("/v1/statements", &q).await
    }

    /// Indicators of a window by period and group (a tenant's token: its own usage).
    pub async fn indicators(
        &self,
        q: &IndicatorsQuery,
    ) -> Result<suanli_proto::IndicatorsView, ClientError> {
        self.get_q("/v1/indicators", q).await
    }

    /// The frozen quarterly releases (no token needed).
    pub async fn releases(&self) -> Result<suanli_proto::ReleaseList, ClientError> {
        self.get("/v1/releases").await
    }

    /// Freezes the release of a quarter that has ended, e.g. `2026Q4` (operator).
    pub async fn make_release(
        &self,
        quarter: &str,
    ) -> Result<suanli_proto::ReleaseView, ClientError> {
        let req = suanli_proto::ReleaseRequest {
            quarter: quarter.into(),
        };
        self.send(Method::POST, "/v1/releases", &req).await
    }

    /// One file of a release (`release.json`, `release.csv`, `release.html`), as stored.
    /// The quarter so far, as a preliminary release (operator, supervisor): not stored.
    pub async fn preliminary_release(
        &self,
        quarter: &str,
    ) -> Result<suanli_proto::PreliminaryRelease, ClientError> {
        let req = suanli_proto::ReleaseRequest {
            quarter: quarter.into(),
        };
        self.send(Method::POST, "/v1/releases/preliminary", &req)
            .await
    }

    pub async fn release_file(&self, quarter: &str, file: &str) -> Result<String, ClientError> {
        let none: [(&str, &str); 0] = [];
        self.get_text(&format!("/v1/releases/{quarter}/{file}"), &none)
            .await
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

    // ------------------------------------------------------------ site agents

    /// The center definition of the calling site token (read leniently: see
    /// [`suanli_proto::SiteConfig`]).
    pub async fn site_config(&self) -> Result<CenterSpec, ClientError> {
        self.get::<suanli_proto::SiteConfig>("/v1/site/config")
            .await
            .map(|c| c.0)
    }

    /// A heartbeat: each hub gets [`HEARTBEAT_ATTEMPT_TIMEOUT`] to answer before the next is
    /// tried (repeating a heartbeat is harmless).
    pub async fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatReply, ClientError> {
        let opts = Opts {
            idempotent: true,
            timeout: Some(HEARTBEAT_ATTEMPT_TIMEOUT),
        };
        self.call_opts(Method::POST, "/v1/site/heartbeat", hb, opts)
            .await
    }

    /// Long-polls for new work for at most `wait_secs`.
    pub async fn assignments(&self, wait_secs: u64) -> Result<Assignments, ClientError> {
        #[derive(Serialize)]
        struct Q {
            wait_secs: u64,
        }
        let opts = Opts {
            idempotent: true,
            timeout: Some(Duration::from_secs(wait_secs + 15)),
        };
        let (url, status, bytes) = self
            .call_raw::<(), Q>(
                Method::GET,
                "/v1/site/assignments",
                Some(&Q { wait_secs }),
                None,
                None,
                opts,
            )
            .await?;
        decode(url, status, &bytes)
    }

    pub async fn events(&self, events: Vec<AgentEvent>) -> Result<EventResults, ClientError> {
        // Events are keyed by (job, attempt, seq): a repeated batch changes nothing.
        let opts = Opts {
            idempotent: true,
            timeout: Some(Duration::from_secs(60)),
        };
        self.call_opts(
            Method::POST,
            "/v1/site/events",
            &EventBatch { events },
            opts,
        )
        .await
    }
}

#[cfg(test)]
mod tests;

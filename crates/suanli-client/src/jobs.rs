//! Calls on jobs: quotes, submits (retried under one idempotency key), listing, control, logs.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use suanli_proto::suanli_types::{JobId, JobSpec};
use suanli_proto::*;

use crate::{Client, ClientError, Opts, decode, new_idempotency_key};

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

impl Client {
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
                    Some(crate::Body::Json(&body)),
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
}

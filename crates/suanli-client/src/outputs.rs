//! Job outputs: a site's uploads, and a tenant's list and downloads.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use suanli_proto::suanli_types::JobId;
use suanli_proto::*;

use crate::{Body, Client, ClientError, Opts, decode};

/// How long one file's upload or download may take.
const FILE_TIMEOUT: Duration = Duration::from_secs(600);

impl Client {
    /// Uploads one output file of attempt `attempt` of `job` (a site token of the center that
    /// runs it). Sent again, it changes nothing: the content is addressed by its hash.
    pub async fn upload_output(
        &self,
        job: JobId,
        attempt: u32,
        path: &str,
        sha256: &str,
        data: &[u8],
    ) -> Result<OutputView, ClientError> {
        let q = OutputUpload {
            path: Some(path.to_string()),
            sha256: Some(sha256.to_string()),
        };
        let opts = Opts {
            idempotent: true,
            timeout: Some(FILE_TIMEOUT),
        };
        let (url, status, bytes) = self
            .call_raw::<(), _>(
                Method::PUT,
                &format!("/v1/site/outputs/{job}/{attempt}"),
                Some(&q),
                Some(Body::Bytes(data)),
                None,
                opts,
            )
            .await?;
        decode(url, status, &bytes)
    }

    /// The outputs of `job`: its latest attempt's, and earlier ones it keeps.
    pub async fn outputs(&self, job: JobId) -> Result<OutputsView, ClientError> {
        self.get(&format!("/v1/jobs/{job}/outputs")).await
    }

    /// The content of one output of `job` (of `attempt`, default the newest that has `path`).
    pub async fn download_output(
        &self,
        job: JobId,
        path: &str,
        attempt: Option<u32>,
    ) -> Result<Vec<u8>, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            path: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            attempt: Option<u32>,
        }
        self.get_bytes(
            &format!("/v1/jobs/{job}/outputs/content"),
            &Q { path, attempt },
        )
        .await
    }

    /// The last checkpoint an earlier attempt of `job` saved (a site token of the center that
    /// runs the job now).
    pub async fn site_checkpoint(&self, job: JobId) -> Result<OutputsView, ClientError> {
        self.get(&format!("/v1/site/checkpoints/{job}")).await
    }

    /// One file of that checkpoint.
    pub async fn site_checkpoint_file(
        &self,
        job: JobId,
        path: &str,
    ) -> Result<Vec<u8>, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            path: &'a str,
        }
        self.get_bytes(&format!("/v1/site/checkpoints/{job}/content"), &Q { path })
            .await
    }

    /// A file's bytes (a read: safe to send again; long transfers get 10 minutes).
    async fn get_bytes<Q: Serialize>(&self, path: &str, q: &Q) -> Result<Vec<u8>, ClientError> {
        let opts = Opts {
            idempotent: true,
            timeout: Some(FILE_TIMEOUT),
        };
        let (_, _, bytes) = self
            .call_raw::<(), _>(Method::GET, path, Some(q), None, None, opts)
            .await?;
        Ok(bytes)
    }
}

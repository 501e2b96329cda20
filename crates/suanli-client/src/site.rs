//! Calls of site agents: their center's config, heartbeats, assignments and events.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use suanli_proto::suanli_types::CenterSpec;
use suanli_proto::*;

use crate::{Client, ClientError, HEARTBEAT_ATTEMPT_TIMEOUT, Opts, decode};

impl Client {
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

//! Calls on the audit log (entries, export, proofs, checkpoints) and the risk flags.

use reqwest::Method;
use serde::Serialize;
use suanli_proto::*;

use crate::{Client, ClientError};

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

impl Client {
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
}

//! Calls of users and operators: the caller, centers, hubs, tenants and tokens.

use reqwest::Method;
use suanli_proto::suanli_types::CenterSpec;
use suanli_proto::*;

use crate::{Client, ClientError};

impl Client {
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
}

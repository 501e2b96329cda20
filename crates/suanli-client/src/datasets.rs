//! Datasets (register, grant, revoke, list) and the airlock (request, review, show).

use reqwest::Method;
use serde::Serialize;
use suanli_proto::suanli_data::ReleaseRequest;
use suanli_proto::suanli_types::{JobId, TenantId};
use suanli_proto::*;

use crate::{Client, ClientError};

impl Client {
    pub async fn datasets(&self) -> Result<DatasetList, ClientError> {
        self.get("/v1/datasets").await
    }

    pub async fn dataset(&self, name: &str) -> Result<DatasetView, ClientError> {
        self.get(&format!("/v1/datasets/{name}")).await
    }

    /// Registers a dataset, or replaces its record.
    pub async fn register_dataset(&self, r: &RegisterDataset) -> Result<DatasetView, ClientError> {
        self.send(Method::PUT, &format!("/v1/datasets/{}", r.spec.name), r)
            .await
    }

    pub async fn grant_dataset(
        &self,
        name: &str,
        g: &DatasetGrantRequest,
    ) -> Result<DatasetView, ClientError> {
        self.send(Method::POST, &format!("/v1/datasets/{name}/grants"), g)
            .await
    }

    pub async fn revoke_dataset(
        &self,
        name: &str,
        tenant: &TenantId,
    ) -> Result<Revoked, ClientError> {
        let body = RevokeRequest {
            tenant: tenant.clone(),
        };
        self.send(Method::POST, &format!("/v1/datasets/{name}/revoke"), &body)
            .await
    }

    pub async fn airlock_request(&self, r: &AirlockRequest) -> Result<ReleaseRequest, ClientError> {
        self.send(Method::POST, "/v1/airlock", r).await
    }

    /// The requests of `job`, or those `owner` (default: the caller's tenant) reviews.
    pub async fn airlock_list(
        &self,
        job: Option<JobId>,
        owner: Option<&TenantId>,
    ) -> Result<AirlockList, ClientError> {
        #[derive(Serialize)]
        struct Q<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            job: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            owner: Option<&'a str>,
        }
        let q = Q {
            job: job.map(|j| j.0),
            owner: owner.map(|o| o.as_str()),
        };
        self.get_q("/v1/airlock", &q).await
    }

    pub async fn airlock_show(&self, id: i64) -> Result<ReleaseRequest, ClientError> {
        self.get(&format!("/v1/airlock/{id}")).await
    }

    pub async fn airlock_review(
        &self,
        id: i64,
        r: &AirlockReview,
    ) -> Result<ReleaseRequest, ClientError> {
        self.send(Method::POST, &format!("/v1/airlock/{id}/review"), r)
            .await
    }
}

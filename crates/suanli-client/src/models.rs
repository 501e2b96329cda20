//! Calls on the model library and its certifications.

use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
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
}

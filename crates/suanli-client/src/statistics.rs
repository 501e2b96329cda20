//! Calls on the statistics: indicators and the quarterly releases.

use reqwest::Method;
use serde::Serialize;

use crate::{Client, ClientError};

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

impl Client {
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

    /// One file of a release (`release.json`, `release.csv`, `release.html`), as stored.
    pub async fn release_file(&self, quarter: &str, file: &str) -> Result<String, ClientError> {
        let none: [(&str, &str); 0] = [];
        self.get_text(&format!("/v1/releases/{quarter}/{file}"), &none)
            .await
    }
}

//! Calls on money: prices, voucher programmes, budgets, bills and statements.

use reqwest::Method;
use serde::Serialize;
use suanli_proto::*;

use crate::{Client, ClientError};

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

impl Client {
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
}

//! Statements of the model library and its certification records.

use suanli_types::{TenantId, Timestamp};

use super::Stmt;

pub(crate) fn insert_model<'a>(m: &'a crate::NewModel, spec: String) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO models (name, revision, owner, spec, published_by, published_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .arg(m.spec.name.as_str())
    .arg(m.spec.revision.as_str())
    .arg(m.owner.as_ref().map(TenantId::as_str))
    .arg(spec)
    .arg(m.published_by.as_str())
    .arg(m.published_at)
}

pub(crate) const MODELS: &str =
    "SELECT id, owner, spec, published_by, published_at FROM models ORDER BY id";

pub(crate) fn model(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT id, owner, spec, published_by, published_at FROM models WHERE id = $1")
        .arg(id)
}

pub(crate) fn insert_certification(r: &suanli_models::CertRequest) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO certifications (model, center, sku, stack, stack_version, \
         framework_version, job, tenant, requested_by, requested_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .arg(r.model)
    .arg(r.center.as_str())
    .arg(r.sku.as_str())
    .arg(r.stack.as_str())
    .arg(r.stack_version.as_str())
    .arg(r.framework_version.as_str())
    .arg(r.job.0)
    .arg(r.tenant.as_str())
    .arg(r.requested_by.as_str())
    .arg(r.requested_at)
}

const CERT_COLUMNS: &str = "id, model, center, sku, stack, stack_version, framework_version, \
     job, tenant, requested_by, requested_at";

pub(crate) fn certifications(model: Option<i64>) -> Stmt<'static> {
    match model {
        Some(m) => Stmt::new(format!(
            "SELECT {CERT_COLUMNS} FROM certifications WHERE model = $1 ORDER BY id"
        ))
        .arg(m),
        None => Stmt::new(format!(
            "SELECT {CERT_COLUMNS} FROM certifications ORDER BY id"
        )),
    }
}

pub(crate) fn cert_steps(model: Option<i64>) -> Stmt<'static> {
    let cols = "s.certification, s.step, s.outcome, s.verdict, s.by_principal, s.reason, s.at";
    match model {
        Some(m) => Stmt::new(format!(
            "SELECT {cols} FROM certification_steps s JOIN certifications c \
             ON c.id = s.certification WHERE c.model = $1 ORDER BY s.id"
        ))
        .arg(m),
        None => Stmt::new(format!(
            "SELECT {cols} FROM certification_steps s ORDER BY s.id"
        )),
    }
}

pub(crate) fn certification_exists(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT COUNT(*) FROM certifications WHERE id = $1").arg(id)
}

/// Appends step `step` of certification `id`; a step taken already is [`StoreError::Exists`].
pub(crate) fn insert_cert_step<'a>(
    id: i64,
    step: &'static str,
    outcome: Option<String>,
    review: Option<&'a suanli_models::Review>,
    at: Timestamp,
) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO certification_steps (certification, step, outcome, verdict, \
         by_principal, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .arg(id)
    .arg(step)
    .arg(outcome)
    .arg(review.map(|r| r.verdict.as_str()))
    .arg(review.map(|r| r.by.as_str()))
    .arg(review.map(|r| r.reason.as_str()))
    .arg(at)
}

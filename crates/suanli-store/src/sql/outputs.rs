//! Statements of the job outputs' descriptions (the content is in the blob store, by sha256).

use suanli_types::{JobId, TenantId, Timestamp};

use super::Stmt;
use crate::OutputRecord;

/// The columns [`output_from_row`](crate::rows::row_decoders) reads.
const OUTPUT_COLUMNS: &str = "job_id, attempt, path, tenant, size, sha256, created_at, expires_at";

/// Inserts `o`, or replaces the row of its (job, attempt, path).
pub(crate) fn put_output(o: &OutputRecord) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO job_outputs (job_id, attempt, path, tenant, size, sha256, created_at, \
         expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (job_id, attempt, path) DO UPDATE SET tenant = excluded.tenant, \
         size = excluded.size, sha256 = excluded.sha256, created_at = excluded.created_at, \
         expires_at = excluded.expires_at",
    )
    .arg(o.job.0)
    .arg(i64::from(o.attempt))
    .arg(o.path.as_str())
    .arg(o.tenant.as_str())
    .arg(o.size as i64)
    .arg(o.sha256.as_str())
    .arg(o.created_at)
    .arg(o.expires_at)
}

pub(crate) fn outputs(job: JobId) -> Stmt<'static> {
    Stmt::new(format!(
        "SELECT {OUTPUT_COLUMNS} FROM job_outputs WHERE job_id = $1 ORDER BY attempt, path"
    ))
    .arg(job.0)
}

/// One row: the sum of the tenant's sizes, 0 when it has none (a BIGINT: PostgreSQL's `SUM` of
/// BIGINTs is NUMERIC).
pub(crate) fn tenant_output_bytes(tenant: &TenantId) -> Stmt<'_> {
    Stmt::new("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM job_outputs WHERE tenant = $1")
        .arg(tenant.as_str())
}

/// Deletes the job's rows of attempts before `attempt`; their sha256, one row each.
pub(crate) fn delete_outputs_before(job: JobId, attempt: u32) -> Stmt<'static> {
    Stmt::new("DELETE FROM job_outputs WHERE job_id = $1 AND attempt < $2 RETURNING sha256")
        .arg(job.0)
        .arg(i64::from(attempt))
}

/// Deletes the job's rows of `path` with content `sha256` (any attempt); their sha256.
pub(crate) fn delete_output<'a>(job: JobId, path: &'a str, sha256: &'a str) -> Stmt<'a> {
    Stmt::new(
        "DELETE FROM job_outputs WHERE job_id = $1 AND path = $2 AND sha256 = $3 RETURNING sha256",
    )
    .arg(job.0)
    .arg(path)
    .arg(sha256)
}

/// Deletes the rows expired at `now`; their sha256, one row each.
pub(crate) fn expire_outputs(now: Timestamp) -> Stmt<'static> {
    Stmt::new("DELETE FROM job_outputs WHERE expires_at <= $1 RETURNING sha256").arg(now)
}

/// A row if some output names `sha256`, none otherwise.
pub(crate) fn output_sha_in_use(sha256: &str) -> Stmt<'_> {
    Stmt::new("SELECT 1 FROM job_outputs WHERE sha256 = $1 LIMIT 1").arg(sha256)
}

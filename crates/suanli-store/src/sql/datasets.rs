//! Statements of the datasets, their grants, and the airlock's release requests.

use suanli_types::{JobId, TenantId, Timestamp};

use super::Stmt;
use crate::DatasetRecord;

/// The columns [`dataset_from_row`](crate::rows::row_decoders) reads.
const DATASET_COLUMNS: &str = "name, owner, spec, registered_by, registered_at, updated_at";

/// Inserts `d`, or replaces the spec and `updated_at` of the dataset of its name if the owner
/// is the same: no row changed means another owner holds the name.
pub(crate) fn upsert_dataset(d: &DatasetRecord, spec: String) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO datasets (name, owner, spec, registered_by, registered_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at \
         WHERE datasets.owner = excluded.owner",
    )
    .arg(d.spec.name.as_str())
    .arg(d.owner.as_str())
    .arg(spec)
    .arg(d.registered_by.as_str())
    .arg(d.registered_at)
    .arg(d.updated_at)
}

pub(crate) fn datasets() -> Stmt<'static> {
    Stmt::new(format!(
        "SELECT {DATASET_COLUMNS} FROM datasets ORDER BY name"
    ))
}

pub(crate) fn dataset(name: &str) -> Stmt<'_> {
    Stmt::new(format!(
        "SELECT {DATASET_COLUMNS} FROM datasets WHERE name = $1"
    ))
    .arg(name)
}

/// The columns [`grant_from_row`](crate::rows::row_decoders) reads.
const GRANT_COLUMNS: &str = "dataset, tenant, granted_by, granted_at, expires_at, revoked_at";

pub(crate) fn insert_grant(g: &suanli_data::Grant) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO dataset_grants (dataset, tenant, granted_by, granted_at, expires_at, \
         revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .arg(g.dataset.as_str())
    .arg(g.tenant.as_str())
    .arg(g.granted_by.as_str())
    .arg(g.granted_at)
    .arg(g.expires_at)
    .arg(g.revoked_at)
}

pub(crate) fn revoke_grants<'a>(dataset: &'a str, tenant: &'a TenantId, at: Timestamp) -> Stmt<'a> {
    Stmt::new(
        "UPDATE dataset_grants SET revoked_at = $3 \
         WHERE dataset = $1 AND tenant = $2 AND revoked_at IS NULL",
    )
    .arg(dataset)
    .arg(tenant.as_str())
    .arg(at)
}

pub(crate) fn grants(dataset: &str) -> Stmt<'_> {
    Stmt::new(format!(
        "SELECT {GRANT_COLUMNS} FROM dataset_grants WHERE dataset = $1 \
         ORDER BY granted_at, tenant"
    ))
    .arg(dataset)
}

/// Inserts a release request whose record is `record` (JSON); its id (`RETURNING id`).
pub(crate) fn insert_release_request(r: &suanli_data::ReleaseRequest, record: String) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO airlock_requests (job_id, tenant, owner, state, record, steps, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .arg(r.job.0)
    .arg(r.tenant.as_str())
    .arg(r.owner.as_str())
    .arg(r.state.as_str())
    .arg(record)
    .arg(r.history.len() as i64)
    .arg(r.created_at)
    .arg(r.updated_at())
}

/// Sets the record of the request just inserted (to carry its id).
pub(crate) fn set_release_record(id: i64, record: String) -> Stmt<'static> {
    Stmt::new("UPDATE airlock_requests SET record = $2 WHERE id = $1")
        .arg(id)
        .arg(record)
}

/// Writes `r` if it has more steps than the stored record and the stored state is in review or
/// already `r`'s (a decided request is never decided again: an approval racing a rejection does
/// not land over it): no row changed means no such request, or a stale write.
pub(crate) fn update_release(r: &suanli_data::ReleaseRequest, record: String) -> Stmt<'_> {
    Stmt::new(
        "UPDATE airlock_requests SET state = $2, record = $3, steps = $4, updated_at = $5 \
         WHERE id = $1 AND steps < $4 AND (state = $2 OR state = 'in-review')",
    )
    .arg(r.id)
    .arg(r.state.as_str())
    .arg(record)
    .arg(r.history.len() as i64)
    .arg(r.updated_at())
}

/// The stored steps of request `id`: one row, or none.
pub(crate) fn release_steps(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT steps FROM airlock_requests WHERE id = $1").arg(id)
}

pub(crate) fn release_request(id: i64) -> Stmt<'static> {
    Stmt::new("SELECT id, record FROM airlock_requests WHERE id = $1").arg(id)
}

pub(crate) fn releases_of_job(job: JobId) -> Stmt<'static> {
    Stmt::new("SELECT id, record FROM airlock_requests WHERE job_id = $1 ORDER BY id").arg(job.0)
}

pub(crate) fn releases_for_owner(owner: &TenantId) -> Stmt<'_> {
    Stmt::new("SELECT id, record FROM airlock_requests WHERE owner = $1 ORDER BY id")
        .arg(owner.as_str())
}

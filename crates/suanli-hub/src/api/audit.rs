//! The audit log, for the operator and supervisors: entries with filters, the export that
//! `suanli audit verify` checks offline, inclusion proofs and the newest checkpoint with a
//! consistency proof (docs/SUPERVISION.md).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use suanli_audit::merkle;
use suanli_proto::{
    AuditEntries, AuditEntryView, AuditExport, CheckpointView, InclusionProof, LatestCheckpoint,
};
use suanli_store::AuditFilter;
use suanli_types::{Role, Timestamp};
use utoipa::IntoParams;
use utoipa_axum::routes;

use super::{Access, ApiPath, ApiQuery, Op};
use crate::AppState;
use crate::error::{HubError, HubResult};

const AUDIT_READERS: Access = Access::Roles(
    &[Role::Operator, Role::Supervisor],
    "only the operator and supervisors read the audit log",
);

pub(super) fn ops() -> Vec<Op> {
    vec![
        Op::new(AUDIT_READERS, routes!(list_entries)),
        Op::new(AUDIT_READERS, routes!(export)),
        Op::new(AUDIT_READERS, routes!(prove)),
        Op::new(AUDIT_READERS, routes!(latest_checkpoint)),
    ]
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EntriesQuery {
    /// Only this principal's entries (a token id, or `anonymous`).
    principal: Option<String>,
    /// Only entries of principals of this tenant.
    tenant: Option<String>,
    /// Only this action, e.g. `POST /v1/jobs`.
    action: Option<String>,
    /// Only the entry of this request id (a bill line names the one of its report).
    request_id: Option<String>,
    /// Only entries at or after this time (Unix ms).
    since: Option<i64>,
    /// Only entries before this time (Unix ms).
    until: Option<i64>,
    /// Only refused requests.
    denied: Option<bool>,
    /// Entries after this seq (the previous page's `next`).
    after: Option<u64>,
    /// Page size, 1 to 1000 (default 100; others are clamped).
    limit: Option<u32>,
}

/// Audit entries by ascending seq, a page at a time.
#[utoipa::path(get, path = "/v1/audit/entries", params(EntriesQuery),
    responses((status = 200, description = "a page of entries", body = AuditEntries)))]
async fn list_entries(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EntriesQuery>,
) -> HubResult<Json<AuditEntries>> {
    // Every entry recorded before this request is stored before it is read.
    state.audit.flush().await;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let f = AuditFilter {
        principal: q.principal,
        tenant: q.tenant,
        action: q.action,
        request_id: q.request_id,
        since: q.since.map(Timestamp),
        until: q.until.map(Timestamp),
        denied: q.denied.unwrap_or(false),
        after: q.after,
        limit,
    };
    let records = state.store.audit_entries(&f).await?;
    let next = match records.len() as u32 == limit {
        true => records.last().map(|r| r.entry.seq),
        false => None,
    };
    Ok(Json(AuditEntries {
        entries: records.iter().map(AuditEntryView::from).collect(),
        next,
    }))
}

/// Every entry, every checkpoint and the hubs' public keys, for `suanli audit verify`.
#[utoipa::path(get, path = "/v1/audit/export",
    responses((status = 200, description = "the whole audit log", body = AuditExport)))]
async fn export(State(state): State<AppState>) -> HubResult<Json<AuditExport>> {
    state.audit.flush().await;
    // Checkpoints first: every entry they count is then in the entries read after them.
    let checkpoints = state.store.audit_checkpoints().await?;
    let keys = state.store.audit_keys().await?;
    let all = AuditFilter {
        limit: u32::MAX,
        ..Default::default()
    };
    let entries = state.store.audit_entries(&all).await?;
    Ok(Json(AuditExport {
        format: suanli_audit::EXPORT_FORMAT.into(),
        keys: keys.iter().map(|k| k.to_hex()).collect(),
        entries: entries.iter().map(AuditEntryView::from).collect(),
        checkpoints: checkpoints.iter().map(CheckpointView::from).collect(),
    }))
}

/// The newest checkpoint signed by this hub, if any.
async fn newest(state: &AppState) -> HubResult<suanli_audit::Checkpoint> {
    let me = state.audit.public().id();
    state
        .store
        .audit_checkpoints()
        .await?
        .into_iter()
        .filter(|c| c.key_id == me)
        .max_by_key(|c| (c.size, c.time))
        .ok_or_else(|| HubError::NotFound("no checkpoint yet; one comes within a minute".into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct EntryPath {
    /// the entry's seq
    seq: u64,
}

/// An entry's inclusion proof in the tree of this hub's newest checkpoint.
#[utoipa::path(get, path = "/v1/audit/entries/{seq}/proof", params(EntryPath),
    responses((status = 200, description = "the entry and its audit path", body = InclusionProof),
        (status = 404, description = "no such entry, or not yet in a checkpoint (`not_found`)", body = suanli_proto::ApiError)))]
async fn prove(
    State(state): State<AppState>,
    ApiPath(EntryPath { seq }): ApiPath<EntryPath>,
) -> HubResult<Json<InclusionProof>> {
    state.audit.flush().await;
    let c = newest(&state).await?;
    if seq >= c.size {
        return Err(HubError::NotFound(format!(
            "entry {seq} is not in the newest checkpoint (size {}); one comes within a minute",
            c.size
        )));
    }
    let leaves = state.store.audit_leaves().await?;
    let path = merkle::inclusion_proof(seq, &leaves[..(c.size as usize).min(leaves.len())])
        .ok_or_else(|| HubError::NotFound(format!("audit entry {seq}")))?;
    let f = AuditFilter {
        after: seq.checked_sub(1),
        limit: 1,
        ..Default::default()
    };
    let record = state
        .store
        .audit_entries(&f)
        .await?
        .into_iter()
        .find(|r| r.entry.seq == seq)
        .ok_or_else(|| HubError::NotFound(format!("audit entry {seq}")))?;
    Ok(Json(InclusionProof {
        entry: AuditEntryView::from(&record),
        checkpoint: CheckpointView::from(&c),
        key: state.audit.public().to_hex(),
        path: path.iter().map(|h| h.to_hex()).collect(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CheckpointQuery {
    /// The size of a checkpoint the caller holds: the answer proves the newest one extends it.
    since: Option<u64>,
}

/// This hub's newest checkpoint, and with `since` the consistency proof from that size.
#[utoipa::path(get, path = "/v1/audit/checkpoint", params(CheckpointQuery),
    responses((status = 200, description = "the newest checkpoint", body = LatestCheckpoint),
        (status = 404, description = "no checkpoint yet (`not_found`)", body = suanli_proto::ApiError)))]
async fn latest_checkpoint(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> HubResult<Json<LatestCheckpoint>> {
    let c = newest(&state).await?;
    let consistency = match q.since {
        None => Vec::new(),
        Some(since) if since > c.size => {
            return Err(HubError::BadRequest(format!(
                "since {since} is past the newest checkpoint (size {}): the log is shorter than \
                 what you hold",
                c.size
            )));
        }
        Some(since) => {
            let leaves = state.store.audit_leaves().await?;
            let upto = &leaves[..(c.size as usize).min(leaves.len())];
            merkle::consistency_proof(since, upto).unwrap_or_default()
        }
    };
    Ok(Json(LatestCheckpoint {
        checkpoint: CheckpointView::from(&c),
        key: state.audit.public().to_hex(),
        since: q.since,
        consistency: consistency.iter().map(|h| h.to_hex()).collect(),
    }))
}

//! Statements of the append-only audit log (entries, checkpoints, keys) and the risk flags.

use suanli_types::Timestamp;

use super::{Run, Stmt};
use crate::rows::to_json;
use crate::{StoreError, StoreResult};

// ---------------------------------------------------------------- the audit log

/// The columns [`audit_from_row`](crate::rows::row_decoders) reads.
const AUDIT_COLUMNS: &str = "seq, at, principal, role, tenant, source, request_id, action, \
     target, outcome, status, why, request_digest, prev, leaf";

/// Appends audit entries, one statement each; a taken `seq` is [`StoreError::Exists`].
pub(crate) async fn append_audit(
    tx: &mut impl Run,
    records: &[suanli_audit::Record],
) -> StoreResult<()> {
    use suanli_audit::Outcome;
    for r in records {
        let e = &r.entry;
        let (outcome, status, why) = match &e.outcome {
            Outcome::Allowed { status } => ("allowed", *status, None),
            Outcome::Denied { status, why } => ("denied", *status, Some(why.as_str())),
        };
        let s = Stmt::new(
            "INSERT INTO audit_entries (seq, at, principal, role, tenant, source, request_id, \
             action, target, outcome, status, why, request_digest, prev, leaf) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .arg(e.seq as i64)
        .arg(e.time)
        .arg(e.principal.as_str())
        .arg(e.role.as_deref())
        .arg(e.tenant.as_deref())
        .arg(e.source.as_str())
        .arg(e.request_id.as_str())
        .arg(e.action.as_str())
        .arg(e.target.as_str())
        .arg(outcome)
        .arg(i64::from(status))
        .arg(why)
        .arg(e.request_digest.to_hex())
        .arg(e.prev.to_hex())
        .arg(r.leaf.to_hex());
        tx.run(s).await.map_err(|err| match err {
            StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                StoreError::Exists(format!("audit entry {}", e.seq))
            }
            err => err,
        })?;
    }
    Ok(())
}

pub(crate) fn audit_entries(f: &crate::AuditFilter) -> Stmt<'_> {
    let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE seq > $1");
    let mut n = 1;
    let mut cond = |sql: &mut String, c: &str| {
        n += 1;
        sql.push_str(&format!(" AND {c} ${n}"));
    };
    if f.principal.is_some() {
        cond(&mut sql, "principal =");
    }
    if f.tenant.is_some() {
        cond(&mut sql, "tenant =");
    }
    if f.action.is_some() {
        cond(&mut sql, "action =");
    }
    if f.request_id.is_some() {
        cond(&mut sql, "request_id =");
    }
    if f.since.is_some() {
        cond(&mut sql, "at >=");
    }
    if f.until.is_some() {
        cond(&mut sql, "at <");
    }
    if f.denied {
        sql.push_str(" AND outcome = 'denied'");
    }
    n += 1;
    sql.push_str(&format!(" ORDER BY seq LIMIT ${n}"));
    let mut s = Stmt::new(sql).arg(f.after.map_or(-1, |a| a as i64));
    for v in [&f.principal, &f.tenant, &f.action, &f.request_id]
        .into_iter()
        .flatten()
    {
        s = s.arg(v.as_str());
    }
    for t in [f.since, f.until].into_iter().flatten() {
        s = s.arg(t);
    }
    s.arg(i64::from(f.limit))
}

pub(crate) const AUDIT_LEAVES: &str = "SELECT leaf FROM audit_entries ORDER BY seq";

pub(crate) fn append_checkpoint(c: &suanli_audit::Checkpoint) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO audit_checkpoints (size, root, at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(c.size as i64)
    .arg(c.root.to_hex())
    .arg(c.time)
    .arg(c.key_id.0.as_str())
    .arg(c.signature.as_str())
}

pub(crate) const AUDIT_CHECKPOINTS: &str =
    "SELECT size, root, at, key_id, signature FROM audit_checkpoints ORDER BY id";

pub(crate) fn add_audit_key(key: &suanli_audit::PublicKey, at: Timestamp) -> Stmt<'static> {
    Stmt::new(
        "INSERT INTO audit_keys (key_id, public_key, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key_id) DO NOTHING",
    )
    .arg(key.id().0)
    .arg(key.to_hex())
    .arg(at)
}

pub(crate) const AUDIT_KEYS: &str = "SELECT public_key FROM audit_keys ORDER BY added_at, key_id";

// ---------------------------------------------------------------- risk flags

/// Records `flags` (see [`Store::record_risk_flags`](crate::Store::record_risk_flags)).
pub(crate) async fn record_risk_flags(
    tx: &mut impl Run,
    flags: &[suanli_audit::risk::Flag],
    at: Timestamp,
) -> StoreResult<Vec<String>> {
    let mut new = Vec::new();
    for f in flags {
        let severity = to_json("risk_flags.severity", &f.severity)?;
        let severity = severity.trim_matches('"').to_string();
        let evidence = to_json("risk_flags.evidence", &f.evidence)?;
        let inserted = tx
            .run(
                Stmt::new(
                    "INSERT INTO risk_flags (id, rule, severity, subject, detail, evidence, \
                     count, first_seen, last_seen, raised_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                )
                .arg(f.id.as_str())
                .arg(f.rule.as_str())
                .arg(severity)
                .arg(f.subject.as_str())
                .arg(f.detail.as_str())
                .arg(evidence.clone())
                .arg(f.count as i64)
                .arg(f.first_seen)
                .arg(f.last_seen)
                .arg(at),
            )
            .await?;
        if inserted == 1 {
            new.push(f.id.clone());
            continue;
        }
        tx.run(
            Stmt::new(
                "UPDATE risk_flags SET detail = $2, evidence = $3, count = $4, \
                 first_seen = $5, last_seen = $6 WHERE id = $1 AND count < $4",
            )
            .arg(f.id.as_str())
            .arg(f.detail.as_str())
            .arg(evidence)
            .arg(f.count as i64)
            .arg(f.first_seen)
            .arg(f.last_seen),
        )
        .await?;
    }
    Ok(new)
}

pub(crate) const RISK_FLAGS: &str = "SELECT id, rule, severity, subject, detail, evidence, count, \
     first_seen, last_seen, raised_at FROM risk_flags ORDER BY raised_at, id";

pub(crate) const RISK_FLAG_CHANGES: &str =
    "SELECT flag, state, by_principal, why, at FROM risk_flag_changes ORDER BY id";

pub(crate) fn risk_flag_exists(id: &str) -> Stmt<'_> {
    Stmt::new("SELECT COUNT(*) FROM risk_flags WHERE id = $1").arg(id)
}

/// Appends a state change; a flag already in that state is [`StoreError::Exists`].
pub(crate) async fn change_risk_flag(
    tx: &mut impl Run,
    id: &str,
    c: &crate::RiskFlagChange,
) -> StoreResult<()> {
    let s = Stmt::new(
        "INSERT INTO risk_flag_changes (flag, state, by_principal, why, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .arg(id)
    .arg(c.state.as_str())
    .arg(c.by.as_str())
    .arg(c.why.as_str())
    .arg(c.at);
    tx.run(s).await.map_err(|err| match err {
        StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            StoreError::Exists(format!("risk flag {id} is {} already", c.state.as_str()))
        }
        err => err,
    })?;
    Ok(())
}

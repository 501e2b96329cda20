//! Statements of the tenants, tokens and centers tables.

use suanli_types::{CenterId, TenantId, Timestamp};

use super::{Run, Stmt};
use crate::{NewToken, StoreError, StoreResult, TenantRecord, TokenFilter};

// ---------------------------------------------------------------- tenants and tokens

pub(crate) fn create_tenant(t: &TenantRecord, at: Timestamp) -> Stmt<'_> {
    Stmt::new(
        "INSERT INTO tenants (id, name, category, created_at, city) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .arg(t.id.as_str())
    .arg(t.name.as_str())
    .arg(t.category.as_str())
    .arg(at)
    .arg(t.city.as_deref())
}

pub(crate) const TENANTS: &str = "SELECT id, name, category, city FROM tenants ORDER BY id";

pub(crate) fn tenant(id: &TenantId) -> Stmt<'_> {
    Stmt::new("SELECT id, name, category, city FROM tenants WHERE id = $1").arg(id.as_str())
}

pub(crate) fn set_tenant_policy(id: &TenantId, policy: String) -> Stmt<'_> {
    Stmt::new("UPDATE tenants SET policy = $1 WHERE id = $2")
        .arg(policy)
        .arg(id.as_str())
}

pub(crate) const TENANT_POLICIES: &str =
    "SELECT id, policy FROM tenants WHERE policy IS NOT NULL ORDER BY id";

/// The columns [`token_from_row`](crate::rows::row_decoders) reads.
const TOKEN_COLUMNS: &str =
    "id, name, role, tenant, center, created_at, expires_at, revoked_at, last_used_at";

fn insert_token<'a>(hash: &'a str, t: &'a NewToken, at: Timestamp) -> Stmt<'a> {
    Stmt::new(
        "INSERT INTO tokens (hash, name, role, tenant, center, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .arg(hash)
    .arg(t.name.as_str())
    .arg(t.role.as_str())
    .arg(t.tenant.as_ref().map(TenantId::as_str))
    .arg(t.center.as_ref().map(CenterId::as_str))
    .arg(t.scope())
    .arg(at)
    .arg(t.expires_at)
}

/// A name taken by a live token of the scope is [`StoreError::Exists`].
fn name_taken(e: StoreError, t: &NewToken) -> StoreError {
    match e {
        StoreError::Database(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            StoreError::Exists(format!(
                "a token named {:?} exists in {} (names are unique among tokens not revoked)",
                t.name,
                t.scope()
            ))
        }
        e => e,
    }
}

/// Stores a token; its id.
pub(crate) async fn store_token(
    tx: &mut impl Run,
    hash: &str,
    t: &NewToken,
    at: Timestamp,
) -> StoreResult<i64> {
    tx.insert(insert_token(hash, t, at))
        .await
        .map_err(|e| name_taken(e, t))
}

const BUMP_GENERATION: &str =
    "UPDATE token_generation SET generation = generation + 1 WHERE id = 1";

/// Revokes, as of `retire_at`, the tokens of `t`'s scope not revoked by then (with
/// `same_name`, only those named like `t`), then stores `t`; its id.
pub(crate) async fn rotate_token(
    tx: &mut impl Run,
    hash: &str,
    t: &NewToken,
    at: Timestamp,
    retire_at: Timestamp,
    same_name: bool,
) -> StoreResult<i64> {
    tx.run(
        Stmt::new(
            "UPDATE tokens SET revoked_at = $1 WHERE scope = $2 AND (name = $3 OR NOT $4) \
             AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .arg(retire_at)
        .arg(t.scope())
        .arg(t.name.as_str())
        .arg(same_name),
    )
    .await?;
    tx.run(Stmt::new(BUMP_GENERATION)).await?;
    store_token(tx, hash, t, at).await
}

/// Revokes token `id` as of `at` (unless revoked earlier); whether it exists.
pub(crate) async fn revoke_token(tx: &mut impl Run, id: i64, at: Timestamp) -> StoreResult<()> {
    tx.run(
        Stmt::new(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 \
             AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .arg(at)
        .arg(id),
    )
    .await?;
    tx.run(Stmt::new(BUMP_GENERATION)).await?;
    Ok(())
}

pub(crate) fn token_by_hash(hash: &str) -> Stmt<'_> {
    Stmt::new(format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = $1"
    ))
    .arg(hash)
}

pub(crate) fn token_by_id(id: i64) -> Stmt<'static> {
    Stmt::new(format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1")).arg(id)
}

pub(crate) fn tokens(f: &TokenFilter) -> Stmt<'_> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE ($1 IS NULL OR tenant = $1) \
         AND ($2 IS NULL OR center = $2) ORDER BY id"
    );
    Stmt::new(sql)
        .arg(f.tenant.as_ref().map(TenantId::as_str))
        .arg(f.center.as_ref().map(CenterId::as_str))
}

pub(crate) const TOKEN_GENERATION: &str = "SELECT generation FROM token_generation WHERE id = 1";

pub(crate) fn touch_token(id: i64, at: Timestamp) -> Stmt<'static> {
    Stmt::new("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
        .arg(at)
        .arg(id)
}

/// Tokens of `role` valid at `at`.
pub(crate) fn count_live_tokens(role: suanli_types::Role, at: Timestamp) -> Stmt<'static> {
    Stmt::new(
        "SELECT COUNT(*) FROM tokens WHERE role = $1 AND (revoked_at IS NULL OR revoked_at > $2) \
         AND (expires_at IS NULL OR expires_at > $2)",
    )
    .arg(role.as_str())
    .arg(at)
}

// ---------------------------------------------------------------- centers

pub(crate) const CENTERS: &str = "SELECT id, spec FROM centers ORDER BY id";

pub(crate) fn set_center_drained(id: &CenterId, drained: bool) -> Stmt<'_> {
    Stmt::new("UPDATE centers SET drained = $1 WHERE id = $2")
        .arg(drained)
        .arg(id.as_str())
}

/// (SQLite keeps the flag as 0 or 1, which it takes as false or true.)
pub(crate) const DRAINED_CENTERS: &str = "SELECT id FROM centers WHERE drained ORDER BY id";

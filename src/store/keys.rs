//! The `api_keys` table.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::auth::{Principal, Role};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub id: Uuid,
    pub role: String,
    pub tenant_id: Option<String>,
    pub created: DateTime<Utc>,
}

#[tracing::instrument(skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    hash: &[u8],
    role: Role,
    tenant: Option<&str>,
) -> Result<StoredKey, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO api_keys (id, key_hash, role, tenant_id) VALUES ($1, $2, $3, $4)
         RETURNING id, role, tenant_id, created",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .bind(role.as_str())
    .bind(tenant)
    .fetch_one(conn)
    .await
}

/// Makes sure a platform key with this hash exists. A key that was revoked stays revoked
/// (revocation is deliberate); the return value says whether it is usable.
#[tracing::instrument(skip_all)]
pub async fn ensure_platform(pool: &sqlx::PgPool, hash: &[u8]) -> Result<bool, sqlx::Error> {
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, role) VALUES ($1, $2, 'platform')
         ON CONFLICT (key_hash) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .execute(pool)
    .await?;
    sqlx::query_scalar(
        "SELECT revoked_at IS NULL AND role = 'platform' FROM api_keys WHERE key_hash = $1",
    )
    .bind(hash)
    .fetch_one(pool)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn find_active(
    db: impl PgExecutor<'_>,
    hash: &[u8],
) -> Result<Option<Principal>, sqlx::Error> {
    let row: Option<(Uuid, String, Option<String>)> = sqlx::query_as(
        "SELECT id, role, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(key_id, role, tenant)| {
        Role::parse(&role).map(|role| Principal {
            key_id,
            role,
            tenant,
        })
    }))
}

/// Revokes a key; `false` when there is no such active key.
#[tracing::instrument(skip_all)]
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> Result<bool, sqlx::Error> {
    let result =
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .execute(db)
            .await?;
    Ok(result.rows_affected() == 1)
}

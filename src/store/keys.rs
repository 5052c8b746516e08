//! The `api_keys` table.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

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
    role: &str,
    tenant: Option<&str>,
) -> Result<StoredKey, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO api_keys (id, key_hash, role, tenant_id) VALUES ($1, $2, $3, $4)
         RETURNING id, role, tenant_id, created",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .bind(role)
    .bind(tenant)
    .fetch_one(conn)
    .await
}

/// Makes the key with this hash the one platform key configured at start-up: creates it
/// if needed, and revokes the key configured before it (keys made with the API or the CLI
/// are not touched). A key that was revoked stays revoked (revocation is deliberate): the
/// return value says whether it is usable, and nothing else changes when it is not.
#[tracing::instrument(skip_all)]
pub async fn install_configured_platform_key(
    pool: &sqlx::PgPool,
    hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO api_keys (id, key_hash, role, configured) VALUES ($1, $2, 'platform', true)
         ON CONFLICT (key_hash) DO UPDATE SET configured = true
         WHERE api_keys.role = 'platform' AND api_keys.revoked_at IS NULL",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .execute(&mut *tx)
    .await?;
    let usable: bool = sqlx::query_scalar(
        "SELECT revoked_at IS NULL AND role = 'platform' FROM api_keys WHERE key_hash = $1",
    )
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    if !usable {
        return Ok(false);
    }
    let replaced = sqlx::query(
        "UPDATE api_keys SET revoked_at = now()
         WHERE configured AND key_hash <> $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if replaced.rows_affected() > 0 {
        tracing::info!(
            revoked = replaced.rows_affected(),
            "EVENTGATE_PLATFORM_KEY changed: the previously configured platform key is revoked"
        );
    }
    Ok(true)
}

/// A key that is not revoked, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveKey {
    pub id: Uuid,
    pub role: String,
    pub tenant_id: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn find_active(
    db: impl PgExecutor<'_>,
    hash: &[u8],
) -> Result<Option<ActiveKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, role, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(db)
    .await
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

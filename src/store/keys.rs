//! The `api_keys` table.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::audit::{self, Action, NewEntry};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub id: Uuid,
    pub role: String,
    pub tenant_id: Option<String>,
    pub created: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Inserts a key (refused from `expires_at` on, when given).
#[tracing::instrument(skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    hash: &[u8],
    role: &str,
    tenant: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<StoredKey, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO api_keys (id, key_hash, role, tenant_id, expires_at) VALUES ($1, $2, $3, $4, $5)
         RETURNING id, role, tenant_id, created, expires_at",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .bind(role)
    .bind(tenant)
    .bind(expires_at)
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
    // ON CONFLICT DO NOTHING would not lock the existing row; the no-op update does.
    let created: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO api_keys (id, key_hash, role, configured) VALUES ($1, $2, 'platform', true)
         ON CONFLICT (key_hash) DO UPDATE SET configured = true
         WHERE api_keys.role = 'platform' AND api_keys.revoked_at IS NULL
         RETURNING CASE WHEN xmax = 0 THEN id END",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    let usable: bool = sqlx::query_scalar(
        "SELECT revoked_at IS NULL AND role = 'platform' FROM api_keys WHERE key_hash = $1",
    )
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    if !usable {
        return Ok(false);
    }
    let replaced: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE api_keys SET revoked_at = now()
         WHERE configured AND key_hash <> $1 AND revoked_at IS NULL RETURNING id",
    )
    .bind(hash)
    .fetch_all(&mut *tx)
    .await?;
    let changes = serde_json::json!({"role": "platform", "configured": true});
    let entries = created
        .map(|id| (Action::KeyCreated, id))
        .into_iter()
        .chain(replaced.iter().map(|id| (Action::KeyRevoked, *id)));
    for (action, id) in entries {
        let target = id.to_string();
        let entry = NewEntry {
            actor_key_id: None,
            actor_role: "system",
            tenant: None,
            action,
            target: Some(&target),
            request_id: None,
            changes: &changes,
        };
        audit::insert(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    if !replaced.is_empty() {
        tracing::info!(
            revoked = replaced.len(),
            "EVENTGATE_PLATFORM_KEY changed: the previously configured platform key is revoked"
        );
    }
    Ok(true)
}

/// A key that is neither revoked nor expired, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveKey {
    pub id: Uuid,
    pub role: String,
    pub tenant_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The key whose hash is `hash`, if it may be used now. The lookup is an equality
/// match on the unique index of hashes: no comparison of secrets happens in Rust, and
/// the time taken does not depend on how much of a guess matches a stored key.
#[tracing::instrument(skip_all)]
pub async fn find_active(
    db: impl PgExecutor<'_>,
    hash: &[u8],
) -> Result<Option<ActiveKey>, sqlx::Error> {
    sqlx::query_as(FIND_ACTIVE)
        .bind(hash)
        .fetch_optional(db)
        .await
}

/// The statement that finds a usable key by its hash (public so a test can show the
/// plan it runs with).
pub const FIND_ACTIVE: &str = "SELECT id, role, tenant_id, expires_at FROM api_keys
     WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";

/// Revokes a key; the revoked key's role and tenant, `None` when there is no such active
/// key.
#[tracing::instrument(skip_all)]
pub async fn revoke(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<ActiveKey>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
         RETURNING id, role, tenant_id, expires_at",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A key as listed: never its secret (only its hash is stored).
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct ListedKey {
    pub id: Uuid,
    #[schemars(with = "crate::auth::Role")]
    pub role: String,
    pub created: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; null while it is not.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Up to `limit` of the keys bound to `tenant` (its client keys) after `after`, oldest
/// first (ids are time-ordered), revoked ones included.
#[tracing::instrument(skip_all)]
pub async fn list_for_tenant(
    db: impl PgExecutor<'_>,
    tenant: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ListedKey>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, role, created, expires_at, revoked_at FROM api_keys
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

//! The `idempotency_keys` table.

use std::time::Duration;

use sqlx::PgConnection;

/// Where a key lives: who called (a tenant, or the platform) and which endpoint.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    pub owner: &'a str,
    pub endpoint: &'a str,
}

/// The answer stored for a key.
#[derive(Debug, Clone, Copy)]
pub struct SavedResponse<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub location: Option<&'a str>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct EarlierRequest {
    pub fingerprint: Vec<u8>,
    pub response_status: i16,
    pub response_body: Vec<u8>,
    pub location: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn set_lock_timeout(conn: &mut PgConnection, wait: Duration) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", wait.as_millis().max(1)))
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims the key: inserts it, or takes over an expired row. Blocks while another
/// transaction holds the same key uncommitted. `false` when a live row exists.
#[tracing::instrument(skip_all)]
pub async fn claim(
    conn: &mut PgConnection,
    scope: KeyScope<'_>,
    key: &str,
    fingerprint: &[u8],
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let claimed: Option<bool> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, fingerprint, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
         ON CONFLICT (tenant_id, scope, key) DO UPDATE
             SET fingerprint = EXCLUDED.fingerprint, expires_at = EXCLUDED.expires_at,
                 created = now(), response_status = 0, response_body = '', location = NULL
             WHERE idempotency_keys.expires_at <= now()
         RETURNING true",
    )
    .bind(scope.owner)
    .bind(scope.endpoint)
    .bind(key)
    .bind(fingerprint)
    .bind(ttl.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

#[tracing::instrument(skip_all)]
pub async fn find(
    conn: &mut PgConnection,
    scope: KeyScope<'_>,
    key: &str,
) -> Result<Option<EarlierRequest>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, response_status, response_body, location FROM idempotency_keys
         WHERE tenant_id = $1 AND scope = $2 AND key = $3",
    )
    .bind(scope.owner)
    .bind(scope.endpoint)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// The committed answer to a live (unexpired) key, read outside any transaction.
#[tracing::instrument(skip_all)]
pub async fn find_answered(
    db: impl sqlx::PgExecutor<'_>,
    scope: KeyScope<'_>,
    key: &str,
) -> Result<Option<EarlierRequest>, sqlx::Error> {
    sqlx::query_as(
        "SELECT fingerprint, response_status, response_body, location FROM idempotency_keys
         WHERE tenant_id = $1 AND scope = $2 AND key = $3
           AND expires_at > now() AND response_status <> 0",
    )
    .bind(scope.owner)
    .bind(scope.endpoint)
    .bind(key)
    .fetch_optional(db)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn save_response(
    conn: &mut PgConnection,
    scope: KeyScope<'_>,
    key: &str,
    response: SavedResponse<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $4, response_body = $5, location = $6
         WHERE tenant_id = $1 AND scope = $2 AND key = $3",
    )
    .bind(scope.owner)
    .bind(scope.endpoint)
    .bind(key)
    .bind(response.status as i16)
    .bind(response.body)
    .bind(response.location)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `batch` expired keys; returns how many.
#[tracing::instrument(skip_all)]
pub async fn purge_expired(pool: &sqlx::PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1))",
    )
    .bind(batch)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

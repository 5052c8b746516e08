//! The `idempotency_keys` table.

use std::time::Duration;

use sqlx::PgConnection;

/// The answer a key holds, with the fingerprint of the request that made it.
#[derive(Debug)]
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

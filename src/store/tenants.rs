//! The `tenants` table.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

/// A tenant (a b2b client), as stored and shown.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
}

/// Inserts a tenant; `None` when the id is taken.
#[tracing::instrument(skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    name: &str,
) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as(
        "INSERT INTO tenants (id, name) VALUES ($1, $2)
         ON CONFLICT (id) DO NOTHING
         RETURNING id, name, created",
    )
    .bind(id)
    .bind(name)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(skip_all)]
pub async fn exists(db: impl PgExecutor<'_>, id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1)")
        .bind(id)
        .fetch_one(db)
        .await
}

/// Locks the tenant's row until the transaction ends (serializing changes that must see
/// each other, such as counting its destinations); `false` when there is no such tenant.
#[tracing::instrument(skip_all)]
pub async fn lock(db: impl PgExecutor<'_>, id: &str) -> Result<bool, sqlx::Error> {
    let locked: Option<i32> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(locked.is_some())
}

/// Up to `limit` tenants after `after`, by id.
#[tracing::instrument(skip_all)]
pub async fn list(
    db: impl PgExecutor<'_>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, created FROM tenants
         WHERE $1::text IS NULL OR id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

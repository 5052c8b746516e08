//! Events put straight into the outbox with SQL, for the tests about its statistics and
//! size: many rows fast, and autovacuum kept out of the way.

use sqlx::PgPool;

/// Tenant `acme`, and autovacuum off for the outbox, so that only the test (or eventgate)
/// analyzes or vacuums it.
pub async fn acme_without_autovacuum(pool: &PgPool) {
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ('acme', 'Acme')")
        .execute(pool)
        .await
        .unwrap();
}

/// `count` portfolio creations of `acme`, entities `P1` to `P{count}`.
pub async fn append_acme_events(pool: &PgPool, count: i64) {
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
         SELECT gen_random_uuid(), 'acme', 'portfolios.creation', 'Portfolio', 'P' || n, 'Created',
                now(), '{}'
           FROM generate_series(1, $1) AS n",
    )
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}

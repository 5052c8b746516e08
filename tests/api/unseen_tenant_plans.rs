//! A tenant that grew after the outbox's last `ANALYZE` is still read from its cursor. The
//! statistics do not know it, so PostgreSQL estimates it at one row; with an index on
//! `(tenant_id, created)` that any `tenant_id` condition can use, reading all its rows
//! through that index and sorting them then looked cheapest, and every relay read and feed
//! page walked the tenant's whole history until the next `ANALYZE` (docs/BENCHMARKS.md,
//! tenth section). The index now serves only statements that bound `created`.

use serde_json::Value;
use sqlx::PgPool;

use crate::query_plans::{outbox_rows_visited, pages_touched};

async fn append_events(pool: &PgPool, tenant: &str, count: i64) {
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
         SELECT gen_random_uuid(), $1, 'portfolios.creation', 'Portfolio', 'P' || n, 'Created',
                now() + n * interval '1 ms', '{}'
           FROM generate_series(1, $2) AS n",
    )
    .bind(tenant)
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}

/// Statistics taken while only `known` had events; then both `known` and `unseen` grow.
async fn outbox_analyzed_before_unseen_grew(pool: &PgPool) {
    sqlx::query("ALTER TABLE outbox SET (autovacuum_enabled = false)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tenants (id, name) VALUES ('known', 'Known'), ('unseen', 'Unseen')")
        .execute(pool)
        .await
        .unwrap();
    append_events(pool, "known", 10).await;
    sqlx::query("ANALYZE outbox").execute(pool).await.unwrap();
    append_events(pool, "known", 200_000).await;
    append_events(pool, "unseen", 20_000).await;
}

#[sqlx::test]
async fn the_relays_read_of_a_tenant_unknown_to_the_statistics_starts_at_its_cursor(pool: PgPool) {
    outbox_analyzed_before_unseen_grew(&pool).await;
    let (tx_id, seq): (String, i64) = sqlx::query_as(
        "SELECT tx_id::text, seq FROM outbox WHERE tenant_id = 'unseen'
          ORDER BY tx_id DESC, seq DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut connection = pool.acquire().await.unwrap();
    for typed in [false, true] {
        let statement = eventgate::store::feed::read_statement(typed);
        sqlx::query(&format!("PREPARE relay_read AS {statement}"))
            .execute(&mut *connection)
            .await
            .unwrap();
        // At the tenant's newest event, as a relay that keeps up reads: nothing to return.
        let types = if typed {
            ", ARRAY['portfolios.creation']"
        } else {
            ""
        };
        let (plan,): (Value,) = sqlx::query_as(&format!(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE relay_read('unseen', '{tx_id}', {seq}, 256{types})"
        ))
        .fetch_one(&mut *connection)
        .await
        .unwrap();
        let root = &plan[0]["Plan"];
        let visited = outbox_rows_visited(root);
        assert!(
            visited < 1000.0,
            "typed {typed}: the read visited {visited} of the tenant's 20,000 rows to find none after its cursor: {plan:#}"
        );
        // Rows an index scan passes over by its index conditions are not counted above
        // (the "held back" check can walk a tenant's entries in an index that way); the
        // pages it touches are. A read at the cursor needs a handful; walking the tenant's
        // 20,000 entries in any of its indexes touches more than a hundred.
        let pages = pages_touched(root);
        assert!(
            pages < 50.0,
            "typed {typed}: the read touched {pages} pages to find nothing after its cursor: {plan:#}"
        );
        sqlx::query("DEALLOCATE relay_read")
            .execute(&mut *connection)
            .await
            .unwrap();
    }
}

#[sqlx::test]
async fn the_retention_probe_still_finds_a_tenants_aged_events_by_creation_time(pool: PgPool) {
    outbox_analyzed_before_unseen_grew(&pool).await;
    // The retention probe's own statement (`store::retention::bounds`, per tenant).
    let (plan,): (Value,) = sqlx::query_as(
        "EXPLAIN (FORMAT JSON) SELECT tx_id, seq FROM outbox o
          WHERE o.tenant_id = 'unseen' AND o.created < now()
          ORDER BY o.created DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        plan.to_string().contains("outbox_tenant_created"),
        "the retention probe does not use the creation-time index: {plan:#}"
    );
}

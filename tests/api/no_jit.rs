//! eventgate's sessions never compile a statement just in time. PostgreSQL decides on JIT
//! from a plan's estimated cost, which grows with the outbox while eventgate's statements
//! stay short index reads: on an outbox of 600,000 rows the batched page read of the
//! long-poll readers crossed `jit_above_cost` and spent 25-35 ms compiling, every time, for
//! under 1 ms of work (docs/BENCHMARKS.md, twenty-sixth section).

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use crate::helpers::eventgate_sessions;

/// A statement every session with JIT on compiles once `jit_above_cost` is 0.
const PROBE: &str = "EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(g) FROM generate_series(1, 1000) g";

/// Whether the plan of `PROBE` says PostgreSQL compiled it.
async fn compiled(conn: &mut PgConnection) -> bool {
    sqlx::query("SET jit_above_cost = 0")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Value = sqlx::query_scalar(PROBE)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    plan[0].get("JIT").is_some()
}

#[sqlx::test]
async fn eventgate_sessions_do_not_compile_statements_just_in_time(
    _options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // The probe sees JIT where the server has it: a plain session with JIT on compiles it
    // (set here, so a server configured without JIT cannot make this check fail).
    let mut plain = PgConnection::connect_with(&connect).await.unwrap();
    sqlx::query("SET jit = on")
        .execute(&mut plain)
        .await
        .unwrap();
    let available: bool = sqlx::query_scalar("SELECT pg_jit_available()")
        .fetch_one(&mut plain)
        .await
        .unwrap();
    assert_eq!(compiled(&mut plain).await, available);

    let pool = eventgate_sessions(connect, 10).await;
    let mut session = pool.acquire().await.unwrap();
    let jit: String = sqlx::query_scalar("SELECT current_setting('jit')")
        .fetch_one(&mut *session)
        .await
        .unwrap();
    assert_eq!(jit, "off");
    assert!(
        !compiled(&mut session).await,
        "eventgate's session compiled the probe"
    );
}

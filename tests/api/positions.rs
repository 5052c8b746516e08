//! Positions are ordered by transaction id as a number, never as its text: in text order
//! "100" sorts before "99", which would serve, replay or purge the wrong events. Rows are
//! written with transaction ids on either side of a digit-count boundary.

use chrono::{Duration, Utc};
use eventgate::feed::cursor::Position;
use eventgate::store;
use sqlx::PgPool;

const TENANT: &str = "acme";

/// Two events two hours old, the one of transaction 100 inserted first and created a
/// minute after the other.
async fn events_in_transactions_99_and_100(pool: &PgPool) -> (Position, Position) {
    sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $1)")
        .bind(TENANT)
        .execute(pool)
        .await
        .unwrap();
    let mut positions = Vec::new();
    for tx in ["100", "99"] {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO outbox (id, tenant_id, tx_id, event_type, entity, entity_id, change, created, envelope)
             VALUES (gen_random_uuid(), $1, $2::xid8, 'portfolios.creation', 'Portfolio', $2, 'Created',
                     now() - interval '2 hours' + ($2::int - 99) * interval '1 minute', '{}')
             RETURNING seq",
        )
        .bind(TENANT)
        .bind(tx)
        .fetch_one(pool)
        .await
        .unwrap();
        positions.push(Position {
            tx_id: tx.parse().unwrap(),
            seq,
        });
    }
    (positions[1], positions[0])
}

#[sqlx::test]
async fn the_outbox_reader_takes_transaction_99_before_100(pool: PgPool) {
    let (p99, p100) = events_in_transactions_99_and_100(&pool).await;
    let types = ["portfolios.creation".to_owned()];
    // Without and with a type filter: the feed, and destinations delivering some types.
    for filter in [None, Some(&types[..])] {
        let first = store::feed::read(&pool, TENANT, Position::START, filter, 1)
            .await
            .unwrap();
        assert_eq!(first.rows.len(), 1);
        assert_eq!(
            first.rows[0].position, p99,
            "a page cut after tx 100 would skip tx 99"
        );
        let both = store::feed::read(&pool, TENANT, Position::START, filter, 10)
            .await
            .unwrap();
        let order: Vec<Position> = both.rows.iter().map(|e| e.position).collect();
        assert_eq!(order, vec![p99, p100]);
    }
}

#[sqlx::test]
async fn replay_by_time_starts_before_transaction_99(pool: PgPool) {
    let (p99, _) = events_in_transactions_99_and_100(&pool).await;
    let before = store::feed::position_before(&pool, TENANT, Utc::now() - Duration::days(1))
        .await
        .unwrap()
        .expect("there are events");
    assert!(
        (before.tx_id, before.seq) < (p99.tx_id, p99.seq),
        "replay must include tx 99; it starts after {before:?}"
    );
}

#[sqlx::test]
async fn retention_keeps_what_a_destination_has_not_confirmed(pool: PgPool) {
    let (p99, p100) = events_in_transactions_99_and_100(&pool).await;
    let cutoff = Utc::now() - Duration::hours(1);
    let bound = |through| store::retention::TenantBound {
        tenant: TENANT.to_owned(),
        through,
    };
    let unpinned = store::retention::bounds(&pool, cutoff).await.unwrap();
    assert_eq!(unpinned, vec![bound(p100)], "without a destination both go");
    // Both events are old enough to purge, but an enabled destination confirmed only tx 99.
    sqlx::query(
        "INSERT INTO destinations (id, tenant_id, kind, config, delivered_tx, delivered_seq)
         VALUES (gen_random_uuid(), $1, 'amqp', '{}', $2::text::xid8, $3)",
    )
    .bind(TENANT)
    .bind(p99.tx_id.to_string())
    .bind(p99.seq)
    .execute(&pool)
    .await
    .unwrap();
    let bounds = store::retention::bounds(&pool, cutoff).await.unwrap();
    assert_eq!(
        bounds,
        vec![bound(p99)],
        "purging up to tx 100 would drop an unconfirmed event"
    );
}

/// The database writes a deposit's cursor into its stored answer (`eventgate_cursor`); it
/// must be exactly the cursor the server makes everywhere else, for any position: large
/// transaction ids (past 2^32, as after wraparound epochs) and sequence numbers, and bytes
/// whose base64 needs the URL-safe letters.
#[sqlx::test]
async fn the_database_encodes_cursors_exactly_as_the_server(pool: PgPool) {
    let positions = [
        Position { tx_id: 1, seq: 1 },
        Position {
            tx_id: 99,
            seq: 100,
        },
        Position {
            tx_id: 4_294_967_296 + 12_345,
            seq: 1 << 40,
        },
        Position {
            tx_id: 0x00FB_FFBF_FEFF_FBEF,
            seq: 0x3EFF_BFFF_FEFB_FFFF,
        },
        Position {
            tx_id: i64::MAX as u64,
            seq: i64::MAX,
        },
    ];
    for position in positions {
        let cursor: String = sqlx::query_scalar("SELECT eventgate_cursor($1::text::xid8, $2)")
            .bind(position.tx_id.to_string())
            .bind(position.seq)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(cursor, position.encode(), "{position:?}");
        assert_eq!(Position::decode(&cursor), Some(position));
    }
}

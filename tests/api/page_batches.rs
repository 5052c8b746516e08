//! Several feed pages read in one statement are the pages read one by one: the same
//! events, `has_more`, purge gap and held-back state, under one snapshot; and pages asked
//! for while a read runs go together in the next statement; and on a large outbox each
//! page is read from its own tenant's index entries.

use eventgate::feed::PageRequest;
use eventgate::feed::batched_reads::BatchedReads;
use eventgate::feed::cursor::Position;
use eventgate::store::feed::{EnvelopePage, PageOf, read_envelope_page, read_envelope_pages};
use serde_json::Value;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::query_plans::outbox_rows_visited;

const TENANTS: [&str; 5] = ["alpha", "bravo", "charlie", "delta", "echo"];

/// Transaction ids given to the events written here: far below any snapshot's horizon, so
/// that no other test's open transaction holds them back; and one far above every horizon.
const OLD_TX: u64 = 1_000;
const FUTURE_TX: u64 = 1 << 60;

/// `count` events of `tenant`, transaction `OLD_TX + n` each, envelopes `{"t":…,"n":…}`.
async fn append(pool: &PgPool, tenant: &str, count: u64) -> Vec<Position> {
    let mut positions = Vec::new();
    for n in 1..=count {
        positions.push(insert(pool, tenant, OLD_TX + n, n).await);
    }
    positions
}

async fn insert(pool: &PgPool, tenant: &str, tx_id: u64, n: u64) -> Position {
    let seq: i64 = sqlx::query_scalar(
        r#"INSERT INTO outbox (id, tenant_id, tx_id, event_type, entity, entity_id, change, created, envelope)
         VALUES (gen_random_uuid(), $1, $2::text::xid8, 'portfolios.creation', 'Portfolio', 'P' || $3,
                 'Created', now(), format('{"t":"%s","n":%s}', $1, $3))
         RETURNING seq"#,
    )
    .bind(tenant)
    .bind(tx_id.to_string())
    .bind(i64::try_from(n).unwrap())
    .fetch_one(pool)
    .await
    .unwrap();
    Position { tx_id, seq }
}

/// The pages of `asked`, one statement each.
async fn one_by_one(pool: &PgPool, asked: &[PageOf<'_>]) -> Vec<EnvelopePage> {
    let mut pages = Vec::new();
    for page in asked {
        pages.push(
            read_envelope_page(pool, page.tenant, page.after, None, page.limit)
                .await
                .unwrap(),
        );
    }
    pages
}

/// The horizon moves with other tests' transactions between two reads: compared apart.
fn without_xmin(pages: Vec<EnvelopePage>) -> Vec<EnvelopePage> {
    pages
        .into_iter()
        .map(|mut page| {
            page.xmin = 0;
            page
        })
        .collect()
}

#[sqlx::test]
async fn pages_read_together_are_the_pages_read_one_by_one(pool: PgPool) {
    for tenant in TENANTS {
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $1)")
            .bind(tenant)
            .execute(&pool)
            .await
            .unwrap();
    }
    let alpha = append(&pool, "alpha", 5).await;
    append(&pool, "bravo", 2).await;
    let delta = append(&pool, "delta", 3).await;
    // delta's first two events purged: a cursor before them has a gap.
    sqlx::query("INSERT INTO outbox_watermarks (tenant_id, tx_id, seq) VALUES ('delta', $1::text::xid8, $2)")
        .bind(delta[1].tx_id.to_string())
        .bind(delta[1].seq)
        .execute(&pool)
        .await
        .unwrap();
    // echo's one event is of a transaction above the horizon: committed, held back.
    insert(&pool, "echo", FUTURE_TX, 1).await;

    let asked = [
        PageOf {
            tenant: "alpha",
            after: Position::START,
            limit: 2,
        },
        PageOf {
            tenant: "alpha",
            after: alpha[1],
            limit: 10,
        },
        PageOf {
            tenant: "bravo",
            after: Position::START,
            limit: 10,
        },
        PageOf {
            tenant: "charlie",
            after: Position::START,
            limit: 10,
        },
        PageOf {
            tenant: "delta",
            after: Position::START,
            limit: 10,
        },
        PageOf {
            tenant: "echo",
            after: Position::START,
            limit: 10,
        },
        PageOf {
            tenant: "nobody",
            after: alpha[4],
            limit: 10,
        },
    ];
    let together = read_envelope_pages(&pool, &asked).await.unwrap();
    let apart = one_by_one(&pool, &asked).await;

    assert_eq!(together.len(), asked.len());
    assert!(
        together.iter().all(|page| page.xmin == together[0].xmin),
        "one snapshot for all the pages"
    );
    assert_eq!(without_xmin(together), without_xmin(apart.clone()));

    // What the pages hold, so that equal cannot mean equally wrong.
    let [first, rest, bravo, charlie, delta_page, echo, nobody] = &apart[..] else {
        unreachable!("as many pages as asked");
    };
    assert_eq!(
        (first.count, first.has_more, first.last),
        (2, true, Some(alpha[1]))
    );
    assert_eq!(
        (rest.count, rest.has_more, rest.last),
        (3, false, Some(alpha[4]))
    );
    assert!(
        rest.data.starts_with(r#"[{"t":"alpha","n":3}"#),
        "{}",
        rest.data
    );
    assert_eq!(bravo.count, 2);
    assert_eq!((charlie.count, charlie.data.as_str()), (0, "[]"));
    assert!(delta_page.is_gap(Position::START) && !delta_page.is_gap(delta[1]));
    assert_eq!(
        (echo.count, echo.held_back),
        (0, true),
        "echo's committed event is above the horizon"
    );
    assert_eq!(nobody.count, 0);
}

#[sqlx::test]
async fn pages_asked_while_a_read_runs_go_together_in_the_next(pool: PgPool) {
    const PAGES: usize = 40;
    for n in 0..PAGES {
        let tenant = format!("t{n}");
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $1)")
            .bind(&tenant)
            .execute(&pool)
            .await
            .unwrap();
        append(&pool, &tenant, (n % 3) as u64 + 1).await;
    }
    // One connection, held by the test: the first statement waits for it, and every page
    // asked for meanwhile queues behind it.
    let single = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    let held = single.acquire().await.unwrap();
    let reads = BatchedReads::new(single.clone());
    let requests: Vec<PageRequest> = (0..PAGES)
        .map(|n| PageRequest {
            tenant: format!("t{n}"),
            after: None,
            types: None,
            limit: 10,
        })
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|request| {
            let reads = reads.clone();
            tokio::spawn(async move { reads.read(&request).await })
        })
        .collect();
    while reads.pages_asked() < PAGES as u64 {
        tokio::task::yield_now().await;
    }
    drop(held);

    let answers = futures_util::future::join_all(tasks).await;
    for (n, answer) in answers.into_iter().enumerate() {
        let page = answer.unwrap().unwrap();
        assert_eq!(page.count, n % 3 + 1, "tenant t{n}'s own events");
        assert!(
            page.data.contains(&format!(r#""t":"t{n}""#)),
            "{}",
            page.data
        );
    }
    assert!(
        reads.statements() <= 2,
        "{PAGES} pages took {} statements: the one under way, then the rest together",
        reads.statements()
    );
}

/// `count` events of `tenant` in one statement, of transaction `tx_id` each.
async fn append_bulk(pool: &PgPool, tenant: &str, tx_id: u64, count: i64) {
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, tx_id, event_type, entity, entity_id, change, created, envelope)
         SELECT gen_random_uuid(), $1, $2::text::xid8, 'portfolios.creation', 'Portfolio', 'P' || n,
                'Created', now(), '{}'
           FROM generate_series(1, $3) AS n",
    )
    .bind(tenant)
    .bind(tx_id.to_string())
    .bind(count)
    .execute(pool)
    .await
    .unwrap();
}

/// Fifty long-polls' pages, each tenant with one event, while in the index between two of
/// them lie 20,000 events of a tenant below the horizon and 20,000 of one above it (as a
/// long transaction leaves them). Each page must come from its own tenant's entries: a
/// page scan bounded only below would walk the first tenant's events, and a held-back
/// check planned as one scan of all events above the horizon the second's, on every read.
#[sqlx::test]
async fn a_batched_read_on_a_large_outbox_visits_only_its_own_tenants_rows(pool: PgPool) {
    const PAGES: usize = 50;
    const BULK: i64 = 20_000;
    let tenants: Vec<String> = (0..PAGES).map(|n| format!("p{n:02}")).collect();
    for tenant in tenants
        .iter()
        .map(String::as_str)
        .chain(["p24-old", "p24-held"])
    {
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $1)")
            .bind(tenant)
            .execute(&pool)
            .await
            .unwrap();
    }
    for tenant in &tenants {
        append_bulk(&pool, tenant, OLD_TX, 1).await;
    }
    append_bulk(&pool, "p24-old", OLD_TX, BULK).await;
    append_bulk(&pool, "p24-held", FUTURE_TX, BULK).await;
    sqlx::query("ANALYZE outbox").execute(&pool).await.unwrap();

    let mut connection = pool.acquire().await.unwrap();
    // JIT has its own test (`no_jit`); here it would only add its compile time.
    sqlx::query("SET jit = off")
        .execute(&mut *connection)
        .await
        .unwrap();
    let statement = eventgate::store::feed::PAGES_STATEMENT;
    sqlx::query(&format!(
        "PREPARE pages (text[], xid8[], bigint[], bigint[]) AS {statement}"
    ))
    .execute(&mut *connection)
    .await
    .unwrap();
    let list = |item: &str| vec![item; PAGES].join(",");
    let execute = format!(
        "EXECUTE pages ('{{{}}}', '{{{}}}', '{{{}}}', '{{{}}}')",
        tenants.join(","),
        list("0"),
        list("0"),
        list("11"),
    );
    // sqlx prepares its statements: the first runs get custom plans, later ones may get
    // PostgreSQL's generic plan. Both must keep to the pages' tenants.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *connection)
            .await
            .unwrap();
        let (plan,): (Value,) =
            sqlx::query_as(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {execute}"))
                .fetch_one(&mut *connection)
                .await
                .unwrap();
        let returned = plan[0]["Plan"]["Actual Rows"].as_f64().unwrap_or(0.0);
        assert_eq!(
            returned,
            (2 * PAGES) as f64,
            "{mode}: a head and an event per page"
        );
        let visited = outbox_rows_visited(&plan[0]["Plan"]);
        assert!(
            visited < 1_000.0,
            "{mode}: {PAGES} pages of one event visited {visited} outbox rows: {plan:#}"
        );
    }
}

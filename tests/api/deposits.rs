//! POST /events/deposit/ with exactly-once Idempotency-Key semantics, GET /deposits/{id}.

use futures::future::join_all;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestServer, assert_problem, config};

const PORTFOLIO: &str = "P01F8ZSNV0J45R9DFZ3D7D8C26F";

fn deposit(amount: Value) -> Value {
    json!({"data": {"amount": amount, "currency": "USD", "portfolio": PORTFOLIO}})
}

async fn post_deposit(
    server: &TestServer,
    key: &str,
    idem: Option<&str>,
    body: &Value,
) -> Response {
    let mut request = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(key)
        .json(body);
    if let Some(idem) = idem {
        request = request.header("idempotency-key", idem);
    }
    request.send().await.expect("request sent")
}

/// A server with tenant `acme`, its portfolio, and the client key.
async fn setup(server: &TestServer) -> String {
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", PORTFOLIO).await;
    key
}

async fn deposits_and_funding_events(server: &TestServer) -> (i64, i64) {
    (
        server.count("SELECT count(*) FROM deposits").await,
        server
            .count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.funding'")
            .await,
    )
}

#[sqlx::test]
async fn deposit_creates_the_deposit_and_its_funding_event(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let response = post_deposit(
        &server,
        &key,
        Some("\"LVRYWG833Vp2FIIG\""),
        &deposit(json!("1000")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/deposits/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["amount"], "1000");
    assert_eq!(body["currency"], "USD");
    assert_eq!(body["portfolio"], PORTFOLIO);

    let read_back: Value = server.get(&location, &key).await.json().await.unwrap();
    assert_eq!(read_back, body);

    let envelope: Value = serde_json::from_str(
        &sqlx::query_scalar::<_, String>(
            "SELECT envelope FROM outbox WHERE event_type = 'portfolios.funding'",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(envelope["version"], "1.0.0");
    assert_eq!(
        envelope["data"],
        json!({"id": PORTFOLIO, "value": 1000, "currency": "USD"})
    );
    let portfolio: Value = server
        .get(&format!("/portfolios/{PORTFOLIO}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        portfolio["funded"],
        json!([{"currency": "USD", "total": 1000}])
    );

    let no_slash = post_deposit(&server, &key, Some("no-slash"), &deposit(json!("5.25"))).await;
    assert_eq!(
        no_slash.status(),
        StatusCode::CREATED,
        "the path without trailing slash works too"
    );
}

#[sqlx::test]
async fn replay_returns_the_same_status_and_body_byte_for_byte(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let body = deposit(json!("250.50"));
    let first = post_deposit(&server, &key, Some("key-1"), &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_location = first.headers()["location"].clone();
    let first_body = first.bytes().await.unwrap();

    // Same key, same payload written differently (key order, spacing): a replay.
    let reordered = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", "\"key-1\"")
        .header("content-type", "application/json")
        .body(format!(r#"{{ "data" : {{ "portfolio": "{PORTFOLIO}", "currency": "USD", "amount": "250.50" }} }}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(reordered.status(), StatusCode::CREATED);
    assert_eq!(reordered.headers()["idempotent-replayed"], "true");
    assert_eq!(reordered.headers()["location"], first_location);
    assert_eq!(reordered.bytes().await.unwrap(), first_body);
    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));

    let other_payload = post_deposit(&server, &key, Some("key-1"), &deposit(json!("999"))).await;
    assert_problem(other_payload, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));
}

#[sqlx::test]
async fn malformed_keys_are_400_and_store_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let too_long = "k".repeat(256);
    for bad in ["\"\"", "\"unterminated", "a\"b", too_long.as_str()] {
        let response = post_deposit(&server, &key, Some(bad), &deposit(json!("10"))).await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let two = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&deposit(json!("10")))
        .send()
        .await
        .unwrap();
    assert_problem(two, StatusCode::BAD_REQUEST).await;
    assert_eq!(deposits_and_funding_events(&server).await, (0, 0));
    assert_eq!(
        server.count("SELECT count(*) FROM idempotency_keys").await,
        0
    );
}

#[sqlx::test]
async fn rejected_requests_leave_the_key_free(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let invalid = post_deposit(&server, &key, Some("retry-me"), &deposit(json!("-5"))).await;
    assert_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    let unknown_portfolio = post_deposit(
        &server,
        &key,
        Some("retry-me"),
        &json!({"data": {"amount": "5", "currency": "USD", "portfolio": "NOPE"}}),
    )
    .await;
    assert_problem(unknown_portfolio, StatusCode::NOT_FOUND).await;
    assert_eq!(
        server.count("SELECT count(*) FROM idempotency_keys").await,
        0
    );

    let corrected = post_deposit(&server, &key, Some("retry-me"), &deposit(json!("5"))).await;
    assert_eq!(
        corrected.status(),
        StatusCode::CREATED,
        "the key was never used"
    );
    assert!(corrected.headers().get("idempotent-replayed").is_none());
}

#[sqlx::test]
async fn bad_amounts_are_4xx_problems_and_change_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let cases = [
        deposit(json!("0")),
        deposit(json!("-5")),
        json!({"data": {"amount": "1.001", "currency": "EUR", "portfolio": PORTFOLIO}}),
        json!({"data": {"amount": "1.5", "currency": "JPY", "portfolio": PORTFOLIO}}),
        deposit(json!("1e3")),
        deposit(json!("abc")),
        deposit(json!("1234567890123456789012345678901234567890")),
        deposit(json!(true)),
        json!({"data": {"amount": "10", "currency": "usd", "portfolio": PORTFOLIO}}),
        json!({"data": {"amount": "10", "currency": "XAU", "portfolio": PORTFOLIO}}),
        json!({"data": {"amount": "10", "portfolio": PORTFOLIO}}),
        json!({"data": {"amount": "10", "currency": "USD"}}),
        json!({"data": {"amount": "10", "currency": "USD", "portfolio": PORTFOLIO, "memo": "x"}}),
        json!({"amount": "10", "currency": "USD", "portfolio": PORTFOLIO}),
    ];
    for body in &cases {
        let response = post_deposit(&server, &key, Some("k"), body).await;
        assert!(
            response.status().is_client_error(),
            "{body}: {}",
            response.status()
        );
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let raw_40_digits = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", "raw")
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"data":{{"amount":{},"currency":"USD","portfolio":"{PORTFOLIO}"}}}}"#,
            "9".repeat(40)
        ))
        .send()
        .await
        .unwrap();
    assert_problem(raw_40_digits, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(deposits_and_funding_events(&server).await, (0, 0));

    // Amounts are decimal strings: a JSON number is not exact (release 0.2 refuses it).
    let number = post_deposit(&server, &key, Some("number"), &deposit(json!(10.25))).await;
    let problem = assert_problem(number, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["field"], "data.amount");
    assert_eq!(deposits_and_funding_events(&server).await, (0, 0));
}

#[sqlx::test]
async fn inactive_portfolio_refuses_deposits(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let status = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": PORTFOLIO, "external_id": "e", "value": "INACTIVE"}),
        )
        .await;
    assert_eq!(status.status(), StatusCode::CREATED);
    let response = post_deposit(&server, &key, Some("k"), &deposit(json!("10"))).await;
    assert_problem(response, StatusCode::CONFLICT).await;
    assert_eq!(deposits_and_funding_events(&server).await, (0, 0));
}

#[sqlx::test]
async fn deposits_require_an_idempotency_key_by_default(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let without = post_deposit(&server, &key, None, &deposit(json!("10"))).await;
    let problem = assert_problem(without, StatusCode::BAD_REQUEST).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{problem}"
    );
    assert_eq!(deposits_and_funding_events(&server).await, (0, 0));
    let with = post_deposit(&server, &key, Some("k"), &deposit(json!("10"))).await;
    assert_eq!(with.status(), StatusCode::CREATED);
}

#[sqlx::test]
async fn the_idempotency_key_can_be_made_optional(pool: PgPool) {
    let relaxed = config(&["--require-idempotency-key", "false"]);
    let server = TestServer::start_with(pool, relaxed).await;
    let key = setup(&server).await;
    let without = post_deposit(&server, &key, None, &deposit(json!("10"))).await;
    assert_eq!(without.status(), StatusCode::CREATED);
    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));
}

#[sqlx::test]
async fn tenant_isolation_for_deposits(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key_a = setup(&server).await;
    let key_b = server.tenant_with_key("bank-b").await;
    let into_a = post_deposit(&server, &key_b, Some("k1"), &deposit(json!("10"))).await;
    assert_problem(into_a, StatusCode::NOT_FOUND).await;

    let mine: Value = post_deposit(&server, &key_a, Some("k2"), &deposit(json!("10")))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/deposits/{}", mine["id"].as_str().unwrap());
    assert_problem(server.get(&path, &key_b).await, StatusCode::NOT_FOUND).await;

    // The same key used by two tenants names two different requests.
    server.create_portfolio("bank-b", PORTFOLIO).await;
    let a = post_deposit(&server, &key_a, Some("shared"), &deposit(json!("1"))).await;
    let b = post_deposit(&server, &key_b, Some("shared"), &deposit(json!("2"))).await;
    assert_eq!(a.status(), StatusCode::CREATED);
    assert_eq!(b.status(), StatusCode::CREATED);
    assert!(b.headers().get("idempotent-replayed").is_none());
}

#[sqlx::test]
async fn duplicate_in_flight_past_the_wait_is_409_then_succeeds(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--idempotency-wait-ms", "200"])).await;
    let key = setup(&server).await;
    // Another transaction holds the key claimed and uncommitted, as a slow original would.
    let mut holder = server.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, fingerprint, expires_at)
         VALUES ('acme', 'deposits', 'slow', '\\x00', now() + interval '1 hour')",
    )
    .execute(&mut *holder)
    .await
    .unwrap();
    let blocked = post_deposit(&server, &key, Some("slow"), &deposit(json!("10"))).await;
    assert_problem(blocked, StatusCode::CONFLICT).await;
    holder.rollback().await.unwrap();

    let retried = post_deposit(&server, &key, Some("slow"), &deposit(json!("10"))).await;
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));
}

#[sqlx::test]
async fn expired_keys_are_free_again_and_purged(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--idempotency-ttl-secs", "0"])).await;
    let key = setup(&server).await;
    let first = post_deposit(&server, &key, Some("k"), &deposit(json!("1"))).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = post_deposit(&server, &key, Some("k"), &deposit(json!("2"))).await;
    assert_eq!(
        second.status(),
        StatusCode::CREATED,
        "an expired key is a new key"
    );
    assert_eq!(deposits_and_funding_events(&server).await, (2, 2));
    eventgate::maintenance::purge_idempotency_keys(&server.pool).await;
    assert_eq!(
        server.count("SELECT count(*) FROM idempotency_keys").await,
        0
    );
}

async fn big_pool(options: PgPoolOptions, connect: PgConnectOptions) -> PgPool {
    options
        .max_connections(20)
        .connect_with(connect)
        .await
        .unwrap()
}

#[sqlx::test]
async fn hundred_concurrent_retries_of_one_key_make_one_deposit(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let server = TestServer::start(big_pool(options, connect).await).await;
    let key = setup(&server).await;
    let body = deposit(json!("100"));
    let responses =
        join_all((0..100).map(|_| post_deposit(&server, &key, Some("\"same\""), &body))).await;
    let mut bodies = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::CREATED => bodies.push(response.bytes().await.unwrap()),
            StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(!bodies.is_empty());
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every success is the same answer"
    );
    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));
}

#[sqlx::test]
async fn hundred_concurrent_distinct_keys_make_hundred_deposits(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let server = TestServer::start(big_pool(options, connect).await).await;
    let key = setup(&server).await;
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    let body = deposit(json!("1.01"));
    let responses = join_all(
        keys.iter()
            .map(|k| post_deposit(&server, &key, Some(k), &body)),
    )
    .await;
    for response in responses {
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    assert_eq!(deposits_and_funding_events(&server).await, (100, 100));
    let portfolio: Value = server
        .get(&format!("/portfolios/{PORTFOLIO}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(portfolio["funded"][0]["currency"], "USD");
    assert_eq!(
        portfolio["funded"][0]["total"].to_string(),
        "101.00",
        "exact sum, scale kept"
    );
}

/// A deadlock (or serialization failure) rolls the whole transaction back, idempotency
/// claim included, so the server tries it again instead of answering 500. The deadlock is
/// real: this test holds the funding row the deposit needs, then asks for the portfolio
/// lock the deposit holds; PostgreSQL aborts the deposit's transaction (40P01).
#[sqlx::test]
async fn a_deadlocked_deposit_is_tried_again_and_made_once(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let server = TestServer::start(big_pool(options, connect).await).await;
    let key = setup(&server).await;
    let first = post_deposit(&server, &key, Some("first"), &deposit(json!("1"))).await;
    assert_eq!(first.status(), StatusCode::CREATED);

    let mut blocker = server.pool.begin().await.unwrap();
    // This session never runs the deadlock check first: the deposit's session does.
    sqlx::query("SET LOCAL deadlock_timeout = '60s'")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    sqlx::query(
        "SELECT 1 FROM portfolio_funding WHERE tenant_id = 'acme' AND portfolio_id = $1 FOR UPDATE",
    )
    .bind(PORTFOLIO)
    .execute(&mut *blocker)
    .await
    .unwrap();

    let (http, url, key2) = (
        server.http.clone(),
        server.url("/events/deposit/"),
        key.clone(),
    );
    let deposit_request = tokio::spawn(async move {
        http.post(url)
            .bearer_auth(key2)
            .header("idempotency-key", "deadlocked")
            .json(&deposit(json!("2")))
            .send()
            .await
            .unwrap()
    });
    // Wait until the deposit waits for the funding row (it holds the portfolio lock).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> $1 AND wait_event_type = 'Lock')",
        )
        .bind(blocker_pid)
        .fetch_one(&server.pool)
        .await
        .unwrap();
        if waiting {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deposit never waited for the row"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let portfolio = eventgate::catalogue::ids::EntityId::parse(PORTFOLIO).unwrap();
    let lock_key = eventgate::catalogue::payloads::portfolio_lock_key("acme", &portfolio);
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(&lock_key)
        .execute(&mut *blocker)
        .await
        .expect("the deposit's transaction was the one aborted");
    blocker.rollback().await.unwrap();

    let response = deposit_request.await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "tried again after the deadlock"
    );
    assert_eq!(
        deposits_and_funding_events(&server).await,
        (2, 2),
        "made once"
    );
    let replay = post_deposit(&server, &key, Some("deadlocked"), &deposit(json!("2"))).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

#[sqlx::test]
async fn a_deposit_names_its_funding_event_and_its_place_in_the_feed(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let response = post_deposit(&server, &key, Some("link-1"), &deposit(json!("250.5"))).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let funding = &created["funding_event"];
    let event_id: String =
        sqlx::query_scalar("SELECT event_id::text FROM deposits WHERE id = $1::uuid")
            .bind(created["id"].as_str().unwrap())
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert_eq!(funding["id"], event_id.as_str());
    let event: Value = server
        .get(&format!("/events/{event_id}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(event["action"], "funding");
    assert_eq!(event["data"]["value"], 250.5);

    // The cursor is the event's place: the feed after it starts with what came next.
    server.create_portfolio("acme", "P2").await;
    server.settle().await;
    let cursor = funding["cursor"].as_str().unwrap();
    let after: Value = server
        .get(&format!("/events/?after={cursor}"), &key)
        .await
        .json()
        .await
        .unwrap();
    let whole: Value = server
        .get("/events/?limit=1000", &key)
        .await
        .json()
        .await
        .unwrap();
    let all = crate::feed::ids(&whole);
    let at = all.iter().position(|id| *id == event_id).unwrap();
    assert_eq!(
        crate::feed::ids(&after),
        all[at + 1..],
        "exactly the events after the funding event"
    );

    // A replay answers the same, and the deposit shows it too.
    let replay = post_deposit(&server, &key, Some("link-1"), &deposit(json!("250.5"))).await;
    let replayed: Value = replay.json().await.unwrap();
    assert_eq!(replayed["funding_event"], *funding);
    let shown: Value = server
        .get(
            &format!("/deposits/{}", created["id"].as_str().unwrap()),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["funding_event"], *funding);
}

#[sqlx::test]
async fn a_lost_answer_is_found_by_its_idempotency_key(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = setup(&server).await;
    let response = post_deposit(
        &server,
        &key,
        Some("\"LVRYWG833Vp2FIIG\""),
        &deposit(json!("1000")),
    )
    .await;
    let created: Value = response.json().await.unwrap();
    post_deposit(&server, &key, Some("other-key"), &deposit(json!("5"))).await;

    for asked in ["LVRYWG833Vp2FIIG", "%22LVRYWG833Vp2FIIG%22"] {
        let found: Value = server
            .get(&format!("/deposits?idempotency_key={asked}"), &key)
            .await
            .json()
            .await
            .unwrap();
        let data = found["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{asked}: {found}");
        assert_eq!(data[0], created, "the deposit as its answer showed it");
    }
    let none: Value = server
        .get("/deposits?idempotency_key=never-used", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["data"], json!([]));
    // Another tenant's client does not find it.
    let other = server.tenant_with_key("bank-b").await;
    let hidden: Value = server
        .get("/deposits?idempotency_key=LVRYWG833Vp2FIIG", &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(hidden["data"], json!([]));
    for bad in ["%20padded", "", &"k".repeat(256)] {
        let response = server
            .get(&format!("/deposits?idempotency_key={bad}"), &key)
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST).await;
    }
    let missing = server.get("/deposits", &key).await;
    assert_problem(missing, StatusCode::BAD_REQUEST).await;
}

#[sqlx::test]
async fn a_committed_deposit_is_replayed_without_waiting_for_any_lock(pool: PgPool) {
    let server =
        TestServer::start_with(pool.clone(), config(&["--idempotency-wait-ms", "300"])).await;
    let key = setup(&server).await;
    let body = deposit(json!("25.00"));
    let first = post_deposit(&server, &key, Some("replay-me"), &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_body: Value = first.json().await.unwrap();

    // Every writer of the tenant is held back: a new deposit waits for its locks and gives
    // up (409), while a retry of the committed one is answered from its stored response.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(eventgate::store::outbox::writers_key("acme"))
        .execute(&mut *holder)
        .await
        .unwrap();
    let fresh = post_deposit(&server, &key, Some("a-new-one"), &body).await;
    assert_problem(fresh, StatusCode::CONFLICT).await;
    let replay = post_deposit(&server, &key, Some("replay-me"), &body).await;
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first_body);
    // The same key with another body is still refused, also without a lock.
    let other = post_deposit(&server, &key, Some("replay-me"), &deposit(json!("26.00"))).await;
    assert_problem(other, StatusCode::UNPROCESSABLE_ENTITY).await;
    holder.rollback().await.unwrap();

    assert_eq!(deposits_and_funding_events(&server).await, (1, 1));
}

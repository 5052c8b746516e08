//! Operations: `GET /metrics` scraped for real, the per-tenant rate limit, and the limits
//! on the request line and headers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};
use crate::receiver::{Receiver, Reply};

/// The value of the sample `series` (name with its labels, as exposed), if present.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

async fn scrape(server: &TestServer) -> String {
    let response = server.get("/metrics", PLATFORM_KEY).await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

async fn post_deposit(server: &TestServer, key: &str, idem: &str, amount: &str) -> StatusCode {
    server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&json!({"data": {"amount": amount, "currency": "USD", "portfolio": "P1"}}))
        .send()
        .await
        .unwrap()
        .status()
}

#[sqlx::test]
async fn metrics_count_requests_deposits_conflicts_and_read_the_outbox(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;

    assert_eq!(
        post_deposit(&server, &key, "k1", "10.00").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_deposit(&server, &key, "k1", "10.00").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_deposit(&server, &key, "k2", "5.00").await,
        StatusCode::CREATED
    );
    assert_eq!(
        post_deposit(&server, &key, "k1", "99.00").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the same key with another body"
    );

    // Only the platform may scrape: the exposition names every tenant.
    let anonymous = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_problem(anonymous, StatusCode::UNAUTHORIZED).await;
    assert_problem(server.get("/metrics", &key).await, StatusCode::FORBIDDEN).await;

    let text = scrape(&server).await;
    assert_eq!(
        sample(&text, "eventgate_deposits_total{outcome=\"created\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "eventgate_deposits_total{outcome=\"replayed\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "eventgate_idempotency_conflicts_total{endpoint=\"deposits\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "eventgate_http_requests_total{method=\"POST\",route=\"/events/deposit/\",status=\"201\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "eventgate_http_request_duration_seconds_count{method=\"POST\",route=\"/events/deposit/\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "eventgate_http_requests_total{method=\"GET\",route=\"/metrics\",status=\"403\"}"
        ),
        Some(1.0),
        "routes are labelled by template"
    );
    let held = server.count("SELECT count(*) FROM outbox").await;
    assert_eq!(held, 3, "one creation and two fundings");
    assert_eq!(sample(&text, "eventgate_outbox_events"), Some(held as f64));
    let age = sample(&text, "eventgate_outbox_oldest_event_age_seconds").unwrap();
    assert!((0.0..600.0).contains(&age), "oldest event age {age}");
    let max = sample(&text, "eventgate_db_pool_max_connections").unwrap();
    let configured = server.pool.options().get_max_connections();
    assert_eq!(max, f64::from(configured), "the pool's own bound");
    let in_use = sample(&text, "eventgate_db_pool_connections{state=\"in_use\"}").unwrap();
    assert!((0.0..=max).contains(&in_use));
}

#[sqlx::test]
async fn metrics_show_delivery_attempts_and_destination_lag(pool: PgPool) {
    let args = [
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "1",
    ];
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    // The first request fails, so both outcomes are counted.
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 204 })).await;
    let id = server
        .create_destination(
            &key,
            &json!({"kind": "webhook", "url": receiver.url("/hook")}),
        )
        .await;
    for p in ["P1", "P2", "P3"] {
        server.create_portfolio("acme", p).await;
    }
    receiver
        .wait_until("3 deliveries and a retry", |r| r.len() >= 4)
        .await;

    let labels = format!("destination=\"{id}\",kind=\"webhook\"");
    let delivered = format!("eventgate_delivery_attempts_total{{{labels},outcome=\"delivered\"}}");
    let failed = format!("eventgate_delivery_attempts_total{{{labels},outcome=\"failed\"}}");
    let lag = format!(
        "eventgate_destination_lag_events{{destination=\"{id}\",tenant=\"acme\",kind=\"webhook\"}}"
    );
    let pending = format!(
        "eventgate_webhook_pending_deliveries{{destination=\"{id}\",tenant=\"acme\",kind=\"webhook\"}}"
    );
    // The counters move when a send finishes and the gauges when its outcome commits:
    // scrape until both have caught up with what the receiver saw.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&server).await;
        if sample(&text, &delivered) == Some(3.0) && sample(&text, &pending) == Some(0.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never caught up:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, &failed), Some(1.0));
    assert_eq!(sample(&text, &lag), Some(0.0));
}

#[sqlx::test]
async fn a_tenant_over_its_rate_limit_gets_429_and_others_do_not(pool: PgPool) {
    let args = ["--rate-limit-per-sec", "1", "--rate-limit-burst", "3"];
    let server = TestServer::start_with(pool, config(&args)).await;
    let busy = server.tenant_with_key("busy").await;
    let calm = server.tenant_with_key("calm").await;

    // The bucket holds 3 and refills one a second, so 20 quick requests cannot all pass
    // unless they took 17 seconds; how many pass is bounded by the time they took.
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..20 {
        let response = server.get("/events/", &busy).await;
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            refused = Some(response);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let passed = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(passed >= 3, "the burst passes: {statuses:?}");
    assert!(
        passed as f64 <= 3.0 + elapsed.ceil(),
        "{passed} passed in {elapsed:.1}s"
    );
    assert_eq!(
        passed
            + statuses
                .iter()
                .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
                .count(),
        20
    );

    let refused = refused.expect("some requests are refused");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 1, "a token is back within a second");
    let problem = assert_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("busy"),
        "{problem}"
    );

    // Another tenant has its own bucket, and the platform is not limited.
    assert_eq!(server.get("/events/", &calm).await.status(), StatusCode::OK);
    for _ in 0..10 {
        assert_eq!(
            server.get("/destinations", PLATFORM_KEY).await.status(),
            StatusCode::OK
        );
    }
    let text = scrape(&server).await;
    let limited = sample(
        &text,
        "eventgate_rate_limited_requests_total{tenant=\"busy\"}",
    );
    assert_eq!(limited, Some((20 - passed) as f64));
}

#[sqlx::test]
async fn an_overlong_request_target_is_refused_with_414(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let types = "portfolios.creation,".repeat(300);
    let response = server.get(&format!("/events/?types={types}"), &key).await;
    let problem = assert_problem(response, StatusCode::URI_TOO_LONG).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("4096"),
        "{problem}"
    );
}

#[sqlx::test]
async fn oversized_headers_are_refused_with_431_and_change_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let response = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", "k1")
        .header("x-filler", "f".repeat(20 * 1024))
        .json(&json!({"data": {"amount": "10.00", "currency": "USD", "portfolio": "P1"}}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("16384"),
        "{problem}"
    );
    assert_eq!(server.count("SELECT count(*) FROM deposits").await, 0);
    assert_eq!(
        post_deposit(&server, &key, "k1", "10.00").await,
        StatusCode::CREATED,
        "the key was never claimed"
    );
}

#[sqlx::test]
async fn the_oldest_undelivered_age_shows_what_each_destination_still_owes(pool: PgPool) {
    // A failed attempt waits an hour for the next: the delivery stays pending.
    let args = [
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "3600",
    ];
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let refusing = Receiver::start(|_, _| Reply::status(500)).await;
    let taking = Receiver::start(|_, _| Reply::status(204)).await;
    let mut ids = Vec::new();
    for body in [
        json!({"kind": "webhook", "url": refusing.url("/hook")}),
        json!({"kind": "webhook", "url": taking.url("/hook")}),
        // Nothing listens there: the bus destination never hands its event over.
        json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:9", "topic": "t"}),
    ] {
        let created = server.post("/destinations", &key, &body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let created: Value = created.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    server.create_portfolio("acme", "P1").await;
    refusing
        .wait_until("the refused attempt", |r| !r.is_empty())
        .await;
    taking.wait_until("the delivery", |r| !r.is_empty()).await;

    let series = |id: &str, kind: &str| {
        format!(
            "eventgate_destination_oldest_undelivered_age_seconds{{destination=\"{id}\",tenant=\"acme\",kind=\"{kind}\"}}"
        )
    };
    let pending = format!(
        "eventgate_webhook_pending_deliveries{{destination=\"{}\",tenant=\"acme\",kind=\"webhook\"}}",
        ids[1]
    );
    // The delivered one's outcome commits after the receiver answered: scrape until it has.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&server).await;
        if sample(&text, &pending) == Some(0.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "never delivered:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let owed = |id: &str, kind: &str| {
        sample(&text, &series(id, kind)).unwrap_or_else(|| panic!("no {kind} series:\n{text}"))
    };
    assert!(owed(&ids[0], "webhook") > 0.0, "a pending delivery is owed");
    assert_eq!(owed(&ids[1], "webhook"), 0.0, "everything delivered");
    assert!(
        owed(&ids[2], "mqtt") > 0.0,
        "an event not handed over is owed"
    );
    assert!(owed(&ids[0], "webhook") < 600.0 && owed(&ids[2], "mqtt") < 600.0);
}

/// A client may send any method token; each would otherwise become a series of its own in
/// the request metrics, which a client could grow without end.
#[sqlx::test]
async fn made_up_methods_share_one_metrics_label(pool: PgPool) {
    let server = TestServer::start(pool).await;
    for token in ["BREW", "WHEN", "X-PROBE-1", "X-PROBE-2"] {
        let method = reqwest::Method::from_bytes(token.as_bytes()).unwrap();
        let response = server
            .http
            .request(method, server.url("/events/"))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_client_error(),
            "{token}: {}",
            response.status()
        );
    }
    let text = scrape(&server).await;
    for token in ["BREW", "WHEN", "X-PROBE"] {
        assert!(
            !text.contains(&format!("method=\"{token}")),
            "{token} has a series of its own:\n{text}"
        );
    }
    let others: f64 = text
        .lines()
        .filter(|line| line.starts_with("eventgate_http_requests_total{method=\"OTHER\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(others, 4.0, "the four counted under OTHER:\n{text}");
}

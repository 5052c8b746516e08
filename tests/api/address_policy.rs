//! One address policy for every outbound connection: AMQP, MQTT and webhook destinations
//! alike are refused, when saved, for internal hosts and names resolving to them (a 422
//! naming the rule); and the relay checks again when it connects, before any packet leaves,
//! so a destination saved under another policy (or a name that changed) never reaches an
//! internal address, and `last_error` says nothing about what listens there.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::brokers::{AmqpQueue, unique};
use crate::helpers::{TestServer, assert_problem, config, strict_config};
use crate::receiver::{Receiver, Reply};

/// An internal target for each kind, with the rule the refusal must name.
fn internal_targets() -> Vec<(Value, &'static str)> {
    vec![
        (
            json!({"kind": "amqp", "url": "amqp://guest:guest@127.0.0.1:22/%2f", "exchange": "x"}),
            "loopback",
        ),
        (
            json!({"kind": "amqp", "url": "amqps://10.1.2.3", "exchange": "x"}),
            "private",
        ),
        (
            json!({"kind": "mqtt", "url": "mqtt://169.254.169.254:80", "topic": "t"}),
            "link-local",
        ),
        (
            json!({"kind": "mqtt", "url": "mqtt://100.64.1.1", "topic": "t"}),
            "shared address space",
        ),
        (
            json!({"kind": "webhook", "url": "http://192.168.1.1/hook"}),
            "private",
        ),
        (
            json!({"kind": "webhook", "url": "https://198.18.0.1/"}),
            "benchmarking",
        ),
        (
            json!({"kind": "webhook", "url": "http://localhost:9/hook"}),
            "resolves to",
        ),
        (
            json!({"kind": "amqp", "url": "amqp://localhost", "exchange": "x"}),
            "resolves to",
        ),
    ]
}

#[sqlx::test]
async fn internal_addresses_are_refused_for_every_kind_when_saved(pool: PgPool) {
    let server = TestServer::start_with(pool, strict_config(&[])).await;
    let key = server.tenant_with_key("acme").await;
    for (body, rule) in internal_targets() {
        let refused = server.post("/destinations", &key, &body).await;
        let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["field"], "url", "{body}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(rule) && detail.contains("address policy"),
            "{body}: {detail}"
        );
    }
    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "not a url",
        "http://[::1]/",
    ] {
        let refused = server
            .post(
                "/destinations",
                &key,
                &json!({"kind": "webhook", "url": url}),
            )
            .await;
        assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    assert_eq!(server.count("SELECT count(*) FROM destinations").await, 0);
}

#[sqlx::test]
async fn the_operators_allowlist_opens_exactly_what_it_names(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        strict_config(&["--destination-allow", "127.0.0.1/32,*.localdomain"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let allowed = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "t"}),
        )
        .await;
    assert_eq!(
        allowed.status(),
        StatusCode::CREATED,
        "127.0.0.1 is on the list"
    );
    let still_refused = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "mqtt", "url": "mqtt://127.0.0.2:1883", "topic": "t"}),
        )
        .await;
    assert_problem(still_refused, StatusCode::UNPROCESSABLE_ENTITY).await;
}

/// Waits for the destination's `last_error`.
async fn last_error(server: &TestServer, key: &str, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown: Value = server
            .get(&format!("/destinations/{id}"), key)
            .await
            .json()
            .await
            .unwrap();
        if let Some(error) = shown["status"]["last_error"].as_str() {
            return error.to_owned();
        }
        assert!(Instant::now() < deadline, "no error recorded: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Destinations saved while their host was allowed; the policy then changed (as a name's
/// address may). The relay refuses to connect, before any packet leaves: nothing reaches
/// the broker or the receiver, and the error is the same whether something listens there
/// (RabbitMQ on 5672, the receiver) or not (port 22).
#[sqlx::test]
async fn the_relay_checks_again_on_every_connection(pool: PgPool) {
    let setup = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
    let key = setup.tenant_with_key("acme").await;
    let exchange = unique("guarded");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let topic = unique("guarded/events");
    let (mut subscriber, _subscription) = crate::brokers::mqtt_subscribe(&topic).await;
    let mut ids = Vec::new();
    for body in [
        json!({"kind": "amqp", "url": crate::brokers::AMQP_URL, "exchange": exchange}),
        json!({"kind": "amqp", "url": "amqp://guest:guest@127.0.0.1:22/%2f", "exchange": exchange}),
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
        json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": topic}),
    ] {
        let created = setup.post("/destinations", &key, &body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        ids.push(
            created.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    drop(setup);

    let relay = TestServer::start_with(pool, strict_config(&[])).await;
    relay.create_portfolio("acme", "P1").await;
    let open = last_error(&relay, &key, &ids[0]).await;
    let closed = last_error(&relay, &key, &ids[1]).await;
    assert!(open.contains("refused by the address policy"), "{open}");
    assert_eq!(open, closed, "an open port and a closed one look the same");
    let webhook = last_error(&relay, &key, &ids[2]).await;
    assert!(
        webhook.contains("refused by the address policy"),
        "{webhook}"
    );
    let mqtt = last_error(&relay, &key, &ids[3]).await;
    assert!(mqtt.contains("refused by the address policy"), "{mqtt}");
    assert!(
        subscriber.try_recv().is_err(),
        "nothing reached the MQTT topic"
    );
    assert!(queue.rest().await.is_empty(), "nothing reached the broker");
    // The client can still switch off a destination the policy now refuses.
    let disabled = relay
        .patch(
            &format!("/destinations/{}", ids[1]),
            &key,
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
}

/// Plain MQTT reaches its checked address through a loopback endpoint of eventgate's own;
/// a broker that refuses the connection still reads as such, not as a closed connection.
#[sqlx::test]
async fn an_mqtt_broker_that_refuses_is_shown_as_unreachable(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let closed_port = crate::helpers::free_port();
    let id = server
        .create_destination(
            &key,
            &json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{closed_port}"), "topic": unique("nowhere")}),
        )
        .await;
    server.create_portfolio("acme", "P1").await;
    let error = last_error(&server, &key, &id).await;
    assert!(error.starts_with("cannot reach the broker"), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

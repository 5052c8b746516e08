//! Message-bus delivery to a real RabbitMQ and Mosquitto on 127.0.0.1.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::brokers::{AMQP_URL, AmqpQueue, Received, mqtt_subscribe, mqtt_take, unique};
use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};
use crate::proxy::Proxy;

/// Stored envelopes of the tenant in feed order.
pub(crate) async fn feed_envelopes(server: &TestServer, tenant: &str) -> Vec<String> {
    server.settle().await;
    sqlx::query_scalar("SELECT envelope FROM outbox WHERE tenant_id = $1 ORDER BY tx_id, seq")
        .bind(tenant)
        .fetch_all(&server.pool)
        .await
        .unwrap()
}

async fn create_destination(server: &TestServer, key: &str, body: Value) -> Value {
    let response = server.post("/destinations", key, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Publishes `n` portfolio creations for `tenant` in batches (one transaction each).
async fn publish_portfolios(server: &TestServer, tenant: &str, prefix: &str, n: usize) {
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(250) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"tenant": tenant, "subject": "portfolios", "action": "creation",
                            "data": {"id": format!("{prefix}{i}"), "external_id": "e", "owned_by_user_id": "U"}}))
            .collect();
        let response = server
            .post(
                "/platform/events/batch",
                PLATFORM_KEY,
                &json!({"events": events}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

fn ids_in_order(messages: &[Received]) -> Vec<String> {
    let mut seen = HashSet::new();
    messages
        .iter()
        .map(Received::event_id)
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

pub(crate) fn envelope_ids(envelopes: &[String]) -> Vec<String> {
    envelopes
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Waits until the destination reports no lag (everything confirmed).
pub(crate) async fn wait_caught_up(server: &TestServer, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let view: Value = server
            .get(&format!("/destinations/{id}"), key)
            .await
            .json()
            .await
            .unwrap();
        if view["status"]["lag"] == 0 {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "destination never caught up: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replays destination `id` from just after the tenant's first event (through `server`,
/// whichever replica that is), as a client re-reading all but its first event would.
pub(crate) async fn replay_after_first_event(server: &TestServer, key: &str, id: &str) {
    server.settle().await;
    let first: Value = server
        .get("/events/?limit=1", key)
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let replayed = server
        .post(
            &format!("/destinations/{id}/replay"),
            key,
            &json!({"after": cursor}),
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::OK);
}

#[sqlx::test]
async fn destinations_are_managed_with_credentials_redacted(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    let key_a = server.tenant_with_key("acme").await;
    let key_b = server.tenant_with_key("bank-b").await;

    // An unreachable broker is not an error at creation.
    let created = create_destination(
        &server,
        &key_a,
        json!({"kind": "amqp", "url": "amqp://user:s3cret@127.0.0.1:1/%2f",
        "exchange": "acme.events", "routing_key": "events", "types": ["portfolios.*"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["url"], "amqp://user:***@127.0.0.1:1/%2f");
    assert!(!created.to_string().contains("s3cret"));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["status"]["lag"], 0);
    assert!(created["status"]["delivered_through"].is_string());

    let listed: Value = server
        .get("/destinations", &key_a)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let other: Value = server
        .get("/destinations", &key_b)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["data"], json!([]));
    assert_problem(
        server.get(&format!("/destinations/{id}"), &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let patched: Value = server
        .patch(
            &format!("/destinations/{id}"),
            &key_a,
            &json!({"enabled": false, "types": ["portfolios.creation"], "routing_key": "other"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["routing_key"], "other");
    assert_eq!(patched["types"], json!(["portfolios.creation"]));
    assert_eq!(
        patched["url"], "amqp://user:***@127.0.0.1:1/%2f",
        "the password survives a patch, hidden"
    );

    for (bad, field) in [
        (json!({"kind": "nats", "url": "x"}), "kind"),
        (
            json!({"kind": "amqp", "url": "http://x", "exchange": "e"}),
            "url",
        ),
        (
            json!({"kind": "mqtt", "url": "mqtt://127.0.0.1", "topic": "a/#"}),
            "topic",
        ),
        (
            json!({"kind": "mqtt", "url": "mqtt://127.0.0.1", "topic": "a", "qos": 3}),
            "qos",
        ),
        (
            json!({"kind": "amqp", "url": "amqp://x", "exchange": "e", "types": ["nope.*"]}),
            "types[0]",
        ),
        (
            json!({"kind": "amqp", "url": "amqp://x", "exchange": "e", "colour": "red"}),
            "colour",
        ),
    ] {
        let problem = assert_problem(
            server.post("/destinations", &key_a, &bad).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(problem["field"], field, "{bad}");
    }
    let platform = server
        .post("/destinations", PLATFORM_KEY, &json!({"kind": "mqtt", "tenant": "bank-b", "url": "mqtt://127.0.0.1:1883", "topic": "b/events"}))
        .await;
    assert_eq!(platform.status(), StatusCode::CREATED);
    let no_tenant = server
        .post(
            "/destinations",
            PLATFORM_KEY,
            &json!({"kind": "mqtt", "url": "mqtt://127.0.0.1", "topic": "t"}),
        )
        .await;
    let problem = assert_problem(no_tenant, StatusCode::NOT_FOUND).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("must name the tenant")
    );

    let deleted = server
        .http
        .delete(server.url(&format!("/destinations/{id}")))
        .bearer_auth(&key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_problem(
        server.get(&format!("/destinations/{id}"), &key_a).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[sqlx::test]
async fn amqp_receives_every_type_byte_equal_in_feed_order(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--preview-events", "true"])).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let destination = create_destination(&server, &key, json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange, "routing_key": "events", "cloudevents": true})).await;

    for (ty, data) in crate::catalogue::every_type() {
        let response = server.publish("acme", ty, data).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{ty}");
    }
    let feed = feed_envelopes(&server, "acme").await;
    assert_eq!(feed.len(), 13);
    let received = queue.take(13).await;
    let bodies: Vec<&str> = received.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        feed.iter().map(String::as_str).collect::<Vec<_>>(),
        "byte-equal, feed order"
    );
    for (message, envelope) in received.iter().zip(&feed) {
        let envelope: Value = serde_json::from_str(envelope).unwrap();
        let p = &message.properties;
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(*p.delivery_mode(), Some(2), "persistent");
        assert_eq!(
            p.message_id().as_ref().unwrap().as_str(),
            envelope["id"].as_str().unwrap()
        );
        let ty = format!(
            "{}.{}",
            envelope["subject"].as_str().unwrap(),
            envelope["action"].as_str().unwrap()
        );
        assert_eq!(p.kind().as_ref().unwrap().as_str(), ty);
        assert!(p.timestamp().is_some());
        let headers = p.headers().as_ref().unwrap();
        match headers.inner().get("cloudEvents:type") {
            Some(lapin::types::AMQPValue::LongString(value)) => {
                assert_eq!(value.as_bytes(), ty.as_bytes())
            }
            other => panic!("cloudEvents:type header: {other:?}"),
        }
    }
    let view = wait_caught_up(&server, &key, destination["id"].as_str().unwrap()).await;
    assert!(view["status"]["last_success_at"].is_string());
    assert_eq!(view["status"]["last_error"], Value::Null);
}

#[sqlx::test]
async fn mqtt_receives_every_type_with_user_properties(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--preview-events", "true"])).await;
    let key = server.tenant_with_key("acme").await;
    let topic = format!("eventgate-test/{}", unique("acme"));
    let (mut rx, _subscriber) = mqtt_subscribe(&topic).await;
    create_destination(
        &server,
        &key,
        json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": topic, "qos": 1, "cloudevents": true}),
    )
    .await;

    for (ty, data) in crate::catalogue::every_type() {
        assert_eq!(
            server.publish("acme", ty, data).await.status(),
            StatusCode::CREATED
        );
    }
    let feed = feed_envelopes(&server, "acme").await;
    let received = mqtt_take(&mut rx, 13).await;
    let bodies: Vec<&str> = received.iter().map(|(body, _)| body.as_str()).collect();
    assert_eq!(
        bodies,
        feed.iter().map(String::as_str).collect::<Vec<_>>(),
        "byte-equal, feed order"
    );
    for ((_, properties), envelope) in received.iter().zip(&feed) {
        let envelope: Value = serde_json::from_str(envelope).unwrap();
        let property = |name: &str| {
            properties
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(property("event_id").as_deref(), envelope["id"].as_str());
        let ty = format!(
            "{}.{}",
            envelope["subject"].as_str().unwrap(),
            envelope["action"].as_str().unwrap()
        );
        assert_eq!(property("event_type"), Some(ty.clone()));
        assert_eq!(
            property("specversion").as_deref(),
            Some("1.0"),
            "CloudEvents binary mode: {properties:?}"
        );
        assert_eq!(property("type"), Some(ty));
        assert_eq!(
            property("source").as_deref(),
            Some("/eventgate/tenants/acme")
        );
    }
}

#[sqlx::test]
async fn types_filter_and_tenant_isolation(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key_a = server.tenant_with_key("acme").await;
    server.tenant_with_key("bank-b").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let destination = create_destination(&server, &key_a, json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange, "types": ["portfolios.creation"]})).await;

    server.create_portfolio("bank-b", "PB").await;
    server.create_portfolio("acme", "PA").await;
    server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "PA", "external_id": "e", "value": "ACTIVE"}),
        )
        .await;
    server.create_portfolio("acme", "PA2").await;

    let received = queue.take(2).await;
    let ids: Vec<String> = received
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["PA", "PA2"], "only acme's creations");
    wait_caught_up(&server, &key_a, destination["id"].as_str().unwrap()).await;
    assert!(
        queue.rest().await.is_empty(),
        "no status update, nothing of bank-b"
    );
}

#[sqlx::test]
async fn broker_outage_mid_stream_loses_nothing(options: PgPoolOptions, connect: PgConnectOptions) {
    let pool = options
        .max_connections(10)
        .connect_with(connect)
        .await
        .unwrap();
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let destination = create_destination(
        &server,
        &key,
        json!({"kind": "amqp", "url": url, "exchange": exchange}),
    )
    .await;
    let id = destination["id"].as_str().unwrap().to_owned();

    publish_portfolios(&server, "acme", "A", 500).await;
    let mut received = queue.take(1).await;
    proxy.cut().await;
    publish_portfolios(&server, "acme", "B", 500).await;
    // The status shows the outage while the broker is unreachable.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view: Value = server
            .get(&format!("/destinations/{id}"), &key)
            .await
            .json()
            .await
            .unwrap();
        if view["status"]["last_error"].is_string() {
            assert!(view["status"]["failing_since"].is_string());
            assert!(
                !view.to_string().contains("guest:guest"),
                "no credentials in errors"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outage never showed in the status"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();

    let feed = envelope_ids(&feed_envelopes(&server, "acme").await);
    assert_eq!(feed.len(), 1000);
    received.extend(
        queue
            .take_until(|r| ids_in_order(&[received.as_slice(), r].concat()).len() >= 1000)
            .await,
    );
    let ids = ids_in_order(&received);
    assert_eq!(ids.len(), 1000, "all 1000 arrived");
    assert!(ids == feed, "in feed order after de-duplication");
    let view = wait_caught_up(&server, &key, &id).await;
    assert_eq!(view["status"]["last_error"], Value::Null, "recovered");
}

#[sqlx::test]
async fn two_relays_publish_each_event_once(options: PgPoolOptions, connect: PgConnectOptions) {
    let pool = options
        .max_connections(10)
        .connect_with(connect)
        .await
        .unwrap();
    let first = TestServer::start(pool.clone()).await;
    let second = TestServer::start(pool).await;
    let key = first.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let destination = create_destination(
        &first,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;

    publish_portfolios(&first, "acme", "A", 150).await;
    publish_portfolios(&second, "acme", "B", 150).await;
    let feed = envelope_ids(&feed_envelopes(&first, "acme").await);
    let received = queue.take(300).await;
    wait_caught_up(&first, &key, destination["id"].as_str().unwrap()).await;
    // Two supervisor ticks for a second driver, if there were one, to publish again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let extra = queue.rest().await;
    assert!(extra.is_empty(), "{} duplicate messages", extra.len());
    let ids: Vec<String> = received
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, feed, "each event exactly once, in feed order");
    drop(second);
}

#[sqlx::test]
async fn killed_relay_process_resumes_without_loss(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = crate::helpers::database_url(&connect);
    let pool = options
        .max_connections(10)
        .connect_with(connect)
        .await
        .unwrap();
    // The API only; the real binary below does the delivering.
    let server = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    create_destination(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let spawn = || {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        tokio::process::Command::new(crate::helpers::eventgate_binary())
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("EVENTGATE_SECRETS_KEY", crate::helpers::SECRETS_KEY)
            .env(
                "EVENTGATE_DESTINATION_ALLOW",
                crate::helpers::TEST_DESTINATION_ALLOW,
            )
            .env("EVENTGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("EVENTGATE_DATA_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut relay = spawn();
    publish_portfolios(&server, "acme", "A", 1000).await;
    let mut received = queue.take(100).await;
    relay.start_kill().unwrap(); // SIGKILL, mid-stream
    relay.wait().await.unwrap();

    let _restarted = spawn();
    let feed = envelope_ids(&feed_envelopes(&server, "acme").await);
    received.extend(
        queue
            .take_until(|r| ids_in_order(&[received.as_slice(), r].concat()).len() >= 1000)
            .await,
    );
    let ids = ids_in_order(&received);
    assert_eq!(ids.len(), 1000, "nothing lost across SIGKILL");
    assert!(ids == feed, "feed order kept after de-duplication");
}

#[sqlx::test]
async fn replay_redelivers_from_a_cursor(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let destination = create_destination(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;
    let id = destination["id"].as_str().unwrap().to_owned();
    for p in ["P1", "P2", "P3"] {
        server.create_portfolio("acme", p).await;
    }
    queue.take(3).await;
    wait_caught_up(&server, &key, &id).await;

    replay_after_first_event(&server, &key, &id).await;
    let again = queue.take(2).await;
    let ids: Vec<String> = again
        .iter()
        .map(|m| {
            serde_json::from_str::<Value>(&m.body).unwrap()["data"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["P2", "P3"]);

    let bad = server
        .post(
            &format!("/destinations/{id}/replay"),
            &key,
            &json!({"after": "nope"}),
        )
        .await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let both = server
        .post(&format!("/destinations/{id}/replay"), &key, &json!({}))
        .await;
    assert_problem(both, StatusCode::UNPROCESSABLE_ENTITY).await;
}

#[sqlx::test]
async fn retention_never_purges_what_a_destination_has_not_confirmed(pool: PgPool) {
    // No relay runs: the destination stays behind, as if its broker were down for weeks.
    let server = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P0").await;
    // The destination starts at the horizon: under parallel tests another database's open
    // transaction may hold it back before P0, which would keep P0 for the destination.
    server.settle().await;
    let destination = create_destination(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": "x"}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    server.create_portfolio("acme", "P2").await;
    server.settle().await;

    let young = eventgate::maintenance::purge_feed(&server.pool, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(young, 0, "nothing is past a one-hour retention");
    let purged = eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        purged, 1,
        "only the event from before the destination existed"
    );
    let view: Value = server
        .get(
            &format!("/destinations/{}", destination["id"].as_str().unwrap()),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["status"]["lag"], 2,
        "both undelivered events are still there"
    );

    // Once disabled, the destination no longer holds the feed back.
    server
        .patch(
            &format!("/destinations/{}", destination["id"].as_str().unwrap()),
            &key,
            &json!({"enabled": false}),
        )
        .await;
    server.settle().await;
    let purged = eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        purged, 3,
        "the two events and the destinations.disabled event"
    );
}

/// RabbitMQ acknowledges, then drops, a message no queue is bound to receive, unless it
/// is published `mandatory`. Such a message must fail the batch, not move the position.
#[sqlx::test]
async fn an_unroutable_amqp_message_fails_until_a_queue_is_bound(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("unbound");
    crate::brokers::declare_unbound_exchange(&exchange).await;
    let destination = create_destination(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;
    let id = destination["id"].as_str().unwrap();
    server.create_portfolio("acme", "P1").await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let failing = loop {
        let view: Value = server
            .get(&format!("/destinations/{id}"), &key)
            .await
            .json()
            .await
            .unwrap();
        if view["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("unroutable"))
        {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "the return was never reported: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        failing["status"]["lag"], 1,
        "the position did not move past it"
    );
    assert!(failing["status"]["failing_since"].is_string());

    let queue = AmqpQueue::bind_new(&exchange).await;
    let received = queue.take(1).await;
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["data"]["id"], "P1", "sent again once a queue is bound");
    let caught_up = wait_caught_up(&server, &key, id).await;
    assert!(caught_up["status"]["last_error"].is_null());
}

/// A tenant may have at most the configured number of destinations, even when it creates
/// many at once.
#[sqlx::test]
async fn destinations_per_tenant_are_capped_even_when_created_at_once(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&["--max-destinations-per-tenant", "3", "--relay", "false"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let creates: Vec<_> = (0..10)
        .map(|_| {
            let (http, url, key) = (
                server.http.clone(),
                server.url("/destinations"),
                key.clone(),
            );
            let body = json!({"kind": "amqp", "url": AMQP_URL, "exchange": unique("cap")});
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = 0;
    for create in creates {
        let response = create.await.unwrap();
        if response.status() == StatusCode::CREATED {
            created += 1;
        } else {
            let problem = assert_problem(response, StatusCode::CONFLICT).await;
            assert!(
                problem["detail"].as_str().unwrap().contains("maximum of 3"),
                "{problem}"
            );
        }
    }
    assert_eq!(created, 3);
    assert_eq!(server.count("SELECT count(*) FROM destinations").await, 3);
    let listed: Value = server
        .get("/destinations", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
}

//! Kafka delivery to a real Kafka-protocol broker (tansu) on 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::brokers::unique;
use crate::delivery::{envelope_ids, feed_envelopes, wait_caught_up};
use crate::helpers::{
    PLATFORM_KEY, TestServer, assert_problem, config, strict_config, view, wait_view,
};
use crate::kafka_peer::{
    Consumed, PrivateBroker, by_partition, create_topic, kafka_address, read_at_least,
};
use crate::proxy::Proxy;
use eventgate::delivery::kafka::partitioner::partition_for;

async fn create_destination(server: &TestServer, key: &str, body: Value) -> String {
    let response = server.post("/destinations", key, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn wait_for_error(server: &TestServer, key: &str, id: &str) -> Value {
    wait_view(server, key, id, "an error in the status", |v| {
        v["status"]["last_error"].is_string()
    })
    .await
}

/// Event ids in order of first appearance.
fn first_seen(records: &[&Consumed]) -> Vec<String> {
    let mut seen = HashSet::new();
    records
        .iter()
        .map(|r| r.event_id())
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

fn entity_of(envelope: &Value) -> String {
    envelope["data"]["id"].as_str().unwrap().to_owned()
}

#[sqlx::test]
async fn records_are_keyed_by_entity_in_feed_order_with_headers(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--preview-events", "true"])).await;
    let key = server.tenant_with_key("acme").await;
    let topic = unique("acme");
    create_topic(&kafka_address(), &topic, 3).await;
    create_destination(&server, &key, json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": topic, "client_id": "eventgate-test", "cloudevents": true})).await;

    for (ty, data) in crate::catalogue::every_type() {
        let response = server.publish("acme", ty, data).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{ty}");
    }
    // Several events per entity, interleaved across entities.
    for round in 0..4 {
        for portfolio in ["K1", "K2", "K3", "K4", "K5"] {
            if round == 0 {
                server.create_portfolio("acme", portfolio).await;
            } else {
                let response = server
                    .publish(
                        "acme",
                        "portfolios.status-update",
                        json!({"id": portfolio, "external_id": "e", "value": if round % 2 == 0 { "ACTIVE" } else { "WAITING_FOR_FUNDS" }}),
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        }
    }
    let feed = feed_envelopes(&server, "acme").await;
    assert_eq!(feed.len(), 13 + 20);
    let records = read_at_least(&kafka_address(), &topic, feed.len()).await;
    assert_eq!(records.len(), feed.len(), "one record per event, no extra");

    let position: HashMap<String, usize> = envelope_ids(&feed)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, i))
        .collect();
    let mut partition_of_entity: HashMap<String, i32> = HashMap::new();
    for record in &records {
        let index = position[&record.event_id()];
        assert_eq!(
            record.value(),
            feed[index],
            "value is the stored envelope, byte-equal"
        );
        let envelope: Value = serde_json::from_str(record.value()).unwrap();
        let ty = format!(
            "{}.{}",
            envelope["subject"].as_str().unwrap(),
            envelope["action"].as_str().unwrap()
        );
        assert_eq!(record.key(), entity_of(&envelope), "key is the entity id");
        assert_eq!(record.header("event_id"), envelope["id"].as_str());
        assert_eq!(record.header("event_type"), Some(ty.as_str()));
        assert_eq!(record.header("content-type"), Some("application/json"));
        assert_eq!(record.header("ce_specversion"), Some("1.0"));
        assert_eq!(record.header("ce_type"), Some(ty.as_str()));
        assert_eq!(record.header("ce_id"), envelope["id"].as_str());
        assert_eq!(record.header("ce_source"), Some("/eventgate/tenants/acme"));
        assert!(record.header("ce_time").is_some());
        assert_eq!(
            record.partition as usize,
            partition_for(record.key().as_bytes(), 3),
            "Kafka's default partitioner places the key"
        );
        let first = partition_of_entity
            .entry(record.key().to_owned())
            .or_insert(record.partition);
        assert_eq!(*first, record.partition, "one entity, one partition");
    }
    assert!(
        by_partition(&records).len() > 1,
        "the test's entities spread over partitions"
    );
    for (partition, in_partition) in by_partition(&records) {
        let indexes: Vec<usize> = first_seen(&in_partition)
            .iter()
            .map(|id| position[id])
            .collect();
        assert!(
            indexes.windows(2).all(|pair| pair[0] < pair[1]),
            "partition {partition} holds its records in feed order: {indexes:?}"
        );
    }
}

#[sqlx::test]
async fn types_filter_tenant_isolation_and_disabled_destinations(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key_a = server.tenant_with_key("acme").await;
    let key_b = server.tenant_with_key("bank-b").await;
    let (topic_a, topic_off) = (unique("acme"), unique("off"));
    create_topic(&kafka_address(), &topic_a, 1).await;
    create_topic(&kafka_address(), &topic_off, 1).await;
    let id = create_destination(&server, &key_a, json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": topic_a, "types": ["portfolios.creation"]})).await;
    let off = create_destination(&server, &key_b, json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": topic_off, "enabled": false})).await;

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

    wait_caught_up(&server, &key_a, &id).await;
    let records = read_at_least(&kafka_address(), &topic_a, 2).await;
    let entities: Vec<&str> = records.iter().map(Consumed::key).collect();
    assert_eq!(
        entities,
        ["PA", "PA2"],
        "only acme's creations, nothing of bank-b"
    );
    let shown = view(&server, &key_b, &off).await;
    assert_eq!(shown["enabled"], false);
    assert!(
        read_at_least(&kafka_address(), &topic_off, 0)
            .await
            .is_empty(),
        "a disabled destination gets nothing"
    );
}

#[sqlx::test]
async fn replay_redelivers_from_a_cursor(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let topic = unique("acme");
    create_topic(&kafka_address(), &topic, 1).await;
    let id = create_destination(
        &server,
        &key,
        json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": topic}),
    )
    .await;
    for p in ["P1", "P2", "P3"] {
        server.create_portfolio("acme", p).await;
    }
    read_at_least(&kafka_address(), &topic, 3).await;
    wait_caught_up(&server, &key, &id).await;
    server.settle().await;
    let first: Value = server
        .get("/events/?limit=1", &key)
        .await
        .json()
        .await
        .unwrap();
    let replayed = server
        .post(
            &format!("/destinations/{id}/replay"),
            &key,
            &json!({"after": first["next_cursor"]}),
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::OK);
    let records = read_at_least(&kafka_address(), &topic, 5).await;
    let keys: Vec<&str> = records.iter().map(Consumed::key).collect();
    assert_eq!(keys, ["P1", "P2", "P3", "P2", "P3"]);
}

#[sqlx::test]
async fn credentials_are_redacted_and_sealed_and_addresses_checked_on_save(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let id = create_destination(&server, &key, json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": "acme.events", "enabled": false,
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "acme", "password": "k4fka-s3cret"}})).await;
    let shown = view(&server, &key, &id).await;
    assert_eq!(shown["kind"], "kafka");
    assert_eq!(shown["sasl"]["password"], "***");
    assert_eq!(shown["sasl"]["username"], "acme");
    let listed = server
        .get("/destinations", &key)
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("k4fka-s3cret"), "never shown");
    let stored: String =
        sqlx::query_scalar("SELECT config::text FROM destinations WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert!(
        !stored.contains("k4fka-s3cret") && stored.contains("egs1:"),
        "sealed at rest: {stored}"
    );
    let audit = server
        .get("/audit", PLATFORM_KEY)
        .await
        .text()
        .await
        .unwrap();
    assert!(!audit.contains("k4fka-s3cret"), "not in the audit log");

    // A PATCH of another field keeps the (sealed) password.
    let patched = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"topic": "acme.other"}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let stored_after: Value =
        sqlx::query_scalar("SELECT config FROM destinations WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert_ne!(
        stored_after["sasl"]["password"], "***",
        "the shown redaction is never stored"
    );

    for bad in [
        json!({"kind": "kafka", "bootstrap_servers": [], "topic": "t"}),
        json!({"kind": "kafka", "bootstrap_servers": ["no-port"], "topic": "t"}),
        json!({"kind": "kafka", "bootstrap_servers": ["h:9092"], "topic": "bad topic"}),
        json!({"kind": "kafka", "bootstrap_servers": ["h:9092"], "topic": "t", "sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}}),
        json!({"kind": "kafka", "bootstrap_servers": ["h:9092"], "topic": "t", "url": "amqp://h"}),
    ] {
        let response = server.post("/destinations", &key, &bad).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let not_pem = server
        .post("/destinations", &key, &json!({"kind": "kafka", "bootstrap_servers": ["h:9092"], "topic": "t", "tls": {"ca_pem": "not a certificate"}}))
        .await;
    let problem = assert_problem(not_pem, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("tls.ca_pem"),
        "{problem}"
    );
    let wrong_kind = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"exchange": "x"}),
        )
        .await;
    assert_problem(wrong_kind, StatusCode::CONFLICT).await;
    let mqtt_topic = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"topic": "acme/events"}),
        )
        .await;
    assert_problem(mqtt_topic, StatusCode::CONFLICT).await;
    assert_eq!(
        server.count("SELECT count(*) FROM destinations").await,
        1,
        "nothing else saved"
    );
}

#[sqlx::test]
async fn a_private_bootstrap_server_is_refused_on_save(pool: PgPool) {
    let server = TestServer::start_with(pool, strict_config(&[])).await;
    let key = server.tenant_with_key("acme").await;
    let response = server
        .post("/destinations", &key, &json!({"kind": "kafka", "bootstrap_servers": ["broker.example.com:9092", "10.1.2.3:9092"], "topic": "t"}))
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem.to_string().contains("bootstrap_servers"),
        "{problem}"
    );
    assert_eq!(server.count("SELECT count(*) FROM destinations").await, 0);
}

#[sqlx::test]
async fn brokers_the_cluster_names_pass_the_address_policy_too(pool: PgPool) {
    // The broker is on 127.0.0.2, which the operator did not allow; eventgate bootstraps
    // through an allowed address (a proxy on 127.0.0.1), and the cluster's metadata then
    // names 127.0.0.2: the bootstrap connection passes, the broker's does not.
    let port = crate::helpers::free_port();
    let broker = PrivateBroker::start_on("127.0.0.2", port, &format!("127.0.0.2:{port}")).await;
    create_topic(&broker.address(), "t", 1).await;
    let proxy = Proxy::start(Box::leak(broker.address().into_boxed_str())).await;
    let bootstrap = format!("127.0.0.1:{}", proxy.port);
    let server =
        TestServer::start_with(pool, crate::helpers::config_with_allowlist("127.0.0.1/32")).await;
    let key = server.tenant_with_key("acme").await;
    let id = create_destination(
        &server,
        &key,
        json!({"kind": "kafka", "bootstrap_servers": [bootstrap], "topic": "t"}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    let view = wait_for_error(&server, &key, &id).await;
    let error = view["status"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.2 is refused by the address policy"),
        "{error}"
    );
    assert_eq!(view["status"]["lag"], 1, "nothing counted as delivered");
}

#[sqlx::test]
async fn a_broker_outage_mid_stream_loses_nothing(pool: PgPool) {
    // Every connection to the broker goes through a proxy (the broker advertises the
    // proxy's port), so cutting the proxy takes the whole cluster away from eventgate
    // while the in-memory broker keeps its log.
    let broker_port = crate::helpers::free_port();
    let target: &'static str = Box::leak(format!("127.0.0.1:{broker_port}").into_boxed_str());
    let proxy = Proxy::start(target).await;
    let broker = PrivateBroker::start(broker_port, &format!("127.0.0.1:{}", proxy.port)).await;
    let address = format!("127.0.0.1:{}", proxy.port);
    let topic = unique("acme");
    create_topic(&address, &topic, 3).await;
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let id = create_destination(
        &server,
        &key,
        json!({"kind": "kafka", "bootstrap_servers": [address], "topic": topic}),
    )
    .await;

    for i in 0..100 {
        server.create_portfolio("acme", &format!("A{i}")).await;
    }
    read_at_least(&address, &topic, 1).await;
    proxy.cut().await;
    let started = Instant::now();
    for i in 0..100 {
        server.create_portfolio("acme", &format!("B{i}")).await;
    }
    let deposit = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", "outage-deposit-1")
        .json(&json!({"data": {"amount": "10.00", "currency": "USD", "portfolio": "A1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        deposit.status(),
        StatusCode::CREATED,
        "deposits answer during the outage"
    );
    let view = wait_for_error(&server, &key, &id).await;
    assert!(view["status"]["failing_since"].is_string(), "{view}");
    assert!(view["status"]["lag"].as_i64().unwrap() > 0);
    // The outage lasts 30 s in all.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(started.elapsed())).await;
    proxy.restore();

    let feed: Vec<String> = envelope_ids(&feed_envelopes(&server, "acme").await);
    let view = wait_caught_up(&server, &key, &id).await;
    assert_eq!(view["status"]["last_error"], Value::Null, "recovered");
    let records = read_at_least(&address, &topic, 200).await;
    let delivered: HashSet<String> = records.iter().map(Consumed::event_id).collect();
    let missing: Vec<&String> = feed.iter().filter(|id| !delivered.contains(*id)).collect();
    assert!(missing.is_empty(), "{} events never arrived", missing.len());
    let position: HashMap<&str, usize> = feed
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (partition, in_partition) in by_partition(&records) {
        let indexes: Vec<usize> = first_seen(&in_partition)
            .iter()
            .map(|id| position[id.as_str()])
            .collect();
        assert!(
            indexes.windows(2).all(|p| p[0] < p[1]),
            "partition {partition} in feed order"
        );
    }
    drop(broker);
}

#[sqlx::test]
async fn two_relays_never_both_publish_a_destination(
    options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let pool = options
        .max_connections(10)
        .connect_with(connect)
        .await
        .unwrap();
    let first = TestServer::start(pool.clone()).await;
    let second = TestServer::start(pool).await;
    let key = first.tenant_with_key("acme").await;
    let topic = unique("acme");
    create_topic(&kafka_address(), &topic, 1).await;
    let id = create_destination(
        &first,
        &key,
        json!({"kind": "kafka", "bootstrap_servers": [kafka_address()], "topic": topic}),
    )
    .await;
    for i in 0..60 {
        let server = if i % 2 == 0 { &first } else { &second };
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
    let feed: Vec<String> = envelope_ids(&feed_envelopes(&first, "acme").await);
    wait_caught_up(&first, &key, &id).await;
    // Two supervisor ticks for a second driver, if there were one, to publish again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records = read_at_least(&kafka_address(), &topic, feed.len()).await;
    let ids: Vec<String> = records.iter().map(Consumed::event_id).collect();
    assert_eq!(ids, feed, "each event exactly once, in feed order");
    drop(second);
}

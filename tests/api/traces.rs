//! W3C trace context from the publishing request to every receiver, and the OpenTelemetry
//! spans (exported over OTLP/HTTP to a real receiver) that join them into one trace.

use std::collections::HashMap;

use lapin::types::AMQPValue;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::brokers::{AMQP_URL, AmqpQueue, Received, mqtt_subscribe, mqtt_take, unique};
use crate::helpers::{
    FaultSetup, PLATFORM_KEY, TestServer, config, create_amqp_destination, eventgate_binary,
    free_port, spawn_eventgate, wait_ready,
};
use crate::kafka_peer::{create_topic, kafka_address, read_at_least};
use crate::otlp_collector::{Collector, ExportedSpan, ancestry, span, trace_and_parent};
use crate::receiver::{Receiver, Reply};
use crate::webhooks::{create_webhook, webhook_server_args};

const TRACESTATE: &str = "vendor=abc123";
/// What the tests publish, and all their destinations take (not the portfolio's creation,
/// which a new destination may still see while another test holds the horizon back).
const STATUS_UPDATE: &str = "portfolios.status-update";
/// OTLP status codes.
const STATUS_OK: i32 = 1;
const STATUS_ERROR: i32 = 2;

/// A fresh trace id and caller span id, and the `traceparent` naming them (sampled).
fn new_trace() -> (String, String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let caller = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let traceparent = format!("00-{trace}-{caller}-01");
    (trace, caller, traceparent)
}

/// A real `eventgate serve` exporting its traces to `collector`, on the database `setup`
/// made (tenant `acme`, its key, portfolio `P1`).
struct Exporting {
    base: String,
    http: reqwest::Client,
    collector: Collector,
    setup: FaultSetup,
    _server: tokio::process::Child,
}

impl Exporting {
    async fn start(options: PgPoolOptions, connect: PgConnectOptions) -> Self {
        let setup = FaultSetup::start(options, connect).await;
        let collector = Collector::start().await;
        let port = free_port();
        let server = spawn_eventgate(
            &setup.url,
            port,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
                ("OTEL_SERVICE_NAME", "eventgate-under-test"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
                // A quiet log keeps its traces: they have a filter of their own.
                ("RUST_LOG", "warn"),
                ("EVENTGATE_ALLOW_PRIVATE_DESTINATIONS", "true"),
                ("EVENTGATE_WEBHOOK_RETRY_DELAYS_SECS", "1,1"),
            ],
        );
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_ready(&http, &base).await;
        Self {
            base,
            http,
            collector,
            setup,
            _server: server,
        }
    }

    async fn create_destination(&self, body: Value) -> String {
        let response = self
            .http
            .post(format!("{}/destinations", self.base))
            .bearer_auth(self.setup.key.as_str())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Publishes a status update of `P1` as the platform, with `headers`.
    async fn publish(&self, headers: &[(&str, &str)]) {
        let mut request = self
            .http
            .post(format!("{}/platform/events", self.base))
            .bearer_auth(PLATFORM_KEY)
            .json(&status_update());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

fn status_update() -> Value {
    json!({"tenant": "acme", "subject": "portfolios", "action": "status-update",
           "data": {"id": "P1", "external_id": "ext-P1", "value": "ACTIVE"}})
}

fn amqp_header(message: &Received, name: &str) -> Option<String> {
    let headers = message.properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => Some(value.to_string()),
        other => panic!("{name} is not a string: {other:?}"),
    }
}

fn mqtt_property<'a>(properties: &'a [(String, String)], name: &str) -> Option<&'a str> {
    properties
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Checks that the attempt span named in `traceparent` (what a receiver got) was exported
/// as a `hop` span of `destination` in `trace`, child of the publish span, itself inside
/// the request span whose parent is `caller`; returns the attempt span.
fn assert_attempt_in_trace<'a>(
    spans: &'a [ExportedSpan],
    traceparent: &str,
    trace: &str,
    caller: &str,
    hop: &str,
    destination: &str,
) -> &'a ExportedSpan {
    let (received_trace, attempt_id) = trace_and_parent(traceparent);
    assert_eq!(received_trace, trace, "{hop}: the publisher's trace id");
    let chain = ancestry(spans, &attempt_id);
    let names: Vec<&str> = chain.iter().map(|s| s.name.as_str()).collect();
    let attempt = chain[0];
    assert_eq!(attempt.name, hop, "{names:?}");
    assert_eq!(attempt.attribute("destination.id"), destination);
    assert_eq!(
        chain[1].name, "publish",
        "{hop}: attempt under publish: {names:?}"
    );
    let request = chain[chain.len() - 1];
    let in_trace: Vec<(&str, &str, &str)> = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .map(|s| (s.name.as_str(), s.span_id.as_str(), s.parent.as_str()))
        .collect();
    assert_eq!(
        request.name, "POST /platform/events",
        "{names:?} {in_trace:#?}"
    );
    assert_eq!(
        request.parent, caller,
        "the request span's parent is the caller's"
    );
    for span in &chain {
        assert_eq!(span.trace_id, trace, "{}", span.name);
        assert_eq!(span.service, "eventgate-under-test", "{}", span.name);
    }
    attempt
}

#[sqlx::test]
async fn one_trace_runs_from_the_publishing_request_to_every_receiver(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let server = Exporting::start(options, connect).await;
    // The webhook fails its first attempt: each attempt is a span of its own.
    let receiver = Receiver::start(|_, n| Reply::status(if n == 0 { 500 } else { 204 })).await;
    let webhook = server
        .create_destination(json!({"kind": "webhook", "url": receiver.url("/hook"),
                                   "types": [STATUS_UPDATE]}))
        .await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let amqp = server
        .create_destination(
            json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange,
                                   "types": [STATUS_UPDATE]}),
        )
        .await;
    let topic = unique("acme/traces");
    let (mut mqtt_messages, _subscriber) = mqtt_subscribe(&topic).await;
    let mqtt = server
        .create_destination(
            json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": topic, "qos": 1,
                   "types": [STATUS_UPDATE]}),
        )
        .await;
    let kafka_topic = unique("acme");
    create_topic(&kafka_address(), &kafka_topic, 1).await;
    let kafka = server
        .create_destination(
            json!({"kind": "kafka", "bootstrap_servers": [kafka_address()],
                                   "topic": kafka_topic}),
        )
        .await;

    let (trace, caller, traceparent) = new_trace();
    server
        .publish(&[("traceparent", &traceparent), ("tracestate", TRACESTATE)])
        .await;

    let requests = receiver
        .wait_until("a failed and a successful attempt", |r| r.len() >= 2)
        .await;
    let amqp_message = queue.take(1).await.remove(0);
    let mqtt_message = mqtt_take(&mut mqtt_messages, 1).await.remove(0);
    let kafka_record = read_at_least(&kafka_address(), &kafka_topic, 1)
        .await
        .remove(0);
    let received: HashMap<&str, String> = HashMap::from([
        ("webhook 1", requests[0].header("traceparent").to_owned()),
        ("webhook 2", requests[1].header("traceparent").to_owned()),
        (
            "amqp",
            amqp_header(&amqp_message, "traceparent").expect("AMQP traceparent header"),
        ),
        (
            "mqtt",
            mqtt_property(&mqtt_message.1, "traceparent")
                .expect("MQTT traceparent property")
                .to_owned(),
        ),
        (
            "kafka",
            kafka_record
                .header("traceparent")
                .expect("Kafka traceparent header")
                .to_owned(),
        ),
    ]);
    // Every receiver got the caller's tracestate as it was sent.
    assert_eq!(requests[0].header("tracestate"), TRACESTATE);
    assert_eq!(
        amqp_header(&amqp_message, "tracestate").as_deref(),
        Some(TRACESTATE)
    );
    assert_eq!(
        mqtt_property(&mqtt_message.1, "tracestate"),
        Some(TRACESTATE)
    );
    assert_eq!(kafka_record.header("tracestate"), Some(TRACESTATE));

    let attempt_ids: Vec<String> = received.values().map(|tp| trace_and_parent(tp).1).collect();
    let spans = server
        .collector
        .wait_until("every attempt's span", |spans| {
            attempt_ids
                .iter()
                .all(|id| spans.iter().any(|s| &s.span_id == id))
                && spans
                    .iter()
                    .any(|s| s.name == "POST /platform/events" && s.parent == caller)
        })
        .await;

    let failed = assert_attempt_in_trace(
        &spans,
        &received["webhook 1"],
        &trace,
        &caller,
        "webhook attempt",
        &webhook,
    );
    assert_eq!(failed.status, STATUS_ERROR);
    assert!(failed.attribute("outcome").contains("500"), "{failed:?}");
    let delivered = assert_attempt_in_trace(
        &spans,
        &received["webhook 2"],
        &trace,
        &caller,
        "webhook attempt",
        &webhook,
    );
    assert_eq!(delivered.status, STATUS_OK);
    assert_eq!(delivered.attribute("outcome"), "delivered");
    assert_ne!(failed.span_id, delivered.span_id, "one span per attempt");
    for (hop, traceparent, destination) in [
        ("amqp publish", &received["amqp"], &amqp),
        ("mqtt publish", &received["mqtt"], &mqtt),
        ("kafka produce", &received["kafka"], &kafka),
    ] {
        let attempt =
            assert_attempt_in_trace(&spans, traceparent, &trace, &caller, hop, destination);
        assert_eq!(attempt.status, STATUS_OK, "{hop}");
        assert_eq!(attempt.attribute("outcome"), "delivered", "{hop}");
    }
    // The commit is part of the same trace, inside the request.
    let request = spans
        .iter()
        .find(|s| s.name == "POST /platform/events" && s.trace_id == trace)
        .expect("request span");
    let commit = spans
        .iter()
        .find(|s| s.name == "commit" && s.trace_id == trace)
        .expect("commit span");
    assert!(
        ancestry(&spans, &commit.span_id)
            .iter()
            .any(|s| s.span_id == request.span_id),
        "the commit runs inside the request"
    );
}

#[sqlx::test]
async fn an_event_published_without_a_trace_context_starts_a_trace_of_its_own(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let server = Exporting::start(options, connect).await;
    let receiver = Receiver::start(|_, _| Reply::status(204)).await;
    server
        .create_destination(json!({"kind": "webhook", "url": receiver.url("/hook"),
                                   "types": [STATUS_UPDATE]}))
        .await;
    server.publish(&[]).await;

    let requests = receiver.wait_until("a delivery", |r| !r.is_empty()).await;
    let traceparent = requests[0].header("traceparent").to_owned();
    let (trace, attempt) = trace_and_parent(&traceparent);
    let spans = server
        .collector
        .wait_until("the attempt and its request", |spans| {
            spans.iter().any(|s| s.span_id == attempt)
                && spans
                    .iter()
                    .any(|s| s.name == "POST /platform/events" && s.trace_id == trace)
        })
        .await;
    let chain = ancestry(&spans, &attempt);
    let root = chain[chain.len() - 1];
    assert_eq!(chain[0].name, "webhook attempt");
    assert_eq!(root.name, "POST /platform/events");
    assert_eq!(root.parent, "", "the request started the trace");
    assert!(chain.iter().all(|s| s.trace_id == trace));
    assert_eq!(span(&spans, &attempt).status, STATUS_OK);
}

#[sqlx::test]
async fn without_an_exporter_receivers_get_the_callers_trace_context_unchanged(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let receiver = Receiver::start(|_, _| Reply::status(204)).await;
    let webhook = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    create_amqp_destination(&server.http, &server.base, &key, AMQP_URL, &exchange).await;

    // A client's deposit: its funding event carries the client's context.
    let (_, _, traceparent) = new_trace();
    let response = server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(&key)
        .header("idempotency-key", unique("deposit"))
        .header("traceparent", &traceparent)
        .header("tracestate", TRACESTATE)
        .json(&json!({"data": {"amount": "10.00", "currency": "USD", "portfolio": "P1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    // Only the funding event counts: under a held-back horizon the destinations may also
    // get the portfolio's creation, which carries no context.
    let is_funding = |body: &str| body.contains(r#""action":"funding""#);
    let requests = receiver
        .wait_until("the funding event", |r| {
            r.iter().any(|r| is_funding(&r.body))
        })
        .await;
    let funding = requests.iter().find(|r| is_funding(&r.body)).unwrap();
    assert_eq!(funding.header("traceparent"), traceparent);
    assert_eq!(funding.header("tracestate"), TRACESTATE);
    let messages = queue
        .take_until(|m| m.iter().any(|m| is_funding(&m.body)))
        .await;
    let message = messages.iter().find(|m| is_funding(&m.body)).unwrap();
    assert_eq!(amqp_header(message, "traceparent"), Some(traceparent));
    assert_eq!(
        amqp_header(message, "tracestate").as_deref(),
        Some(TRACESTATE)
    );

    // A test send joins the trace of the request that asked for it.
    let (_, _, asking) = new_trace();
    let response = server
        .http
        .post(server.url(&format!(
            "/destinations/{}/test",
            webhook["id"].as_str().unwrap()
        )))
        .bearer_auth(&key)
        .header("traceparent", &asking)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let sent: Value = response.json().await.unwrap();
    assert_eq!(sent["request_headers"]["traceparent"], asking.as_str());
    let requests = receiver
        .wait_until("the test send", |r| {
            r.iter().any(|r| r.header("traceparent") == asking)
        })
        .await;
    let test_send = requests.iter().find(|r| r.header("traceparent") == asking);
    assert!(test_send.is_some_and(|r| {
        r.body
            .contains(&sent["message_id"].as_str().unwrap().to_owned())
    }));
}

#[sqlx::test]
async fn an_invalid_traceparent_is_ignored_and_nothing_is_sent_on(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let receiver = Receiver::start(|_, _| Reply::status(204)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "types": [STATUS_UPDATE]}),
    )
    .await;

    for (n, invalid) in [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ]
    .into_iter()
    .enumerate()
    {
        let response = server
            .http
            .post(server.url("/platform/events"))
            .bearer_auth(PLATFORM_KEY)
            .header("traceparent", invalid)
            .header("tracestate", TRACESTATE)
            .json(&status_update())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "{invalid}");
        let requests = receiver.wait_until("the event", |r| r.len() > n).await;
        assert!(
            requests[n].headers.get("traceparent").is_none(),
            "{invalid}"
        );
        assert!(requests[n].headers.get("tracestate").is_none(), "{invalid}");
    }
    let stored = server
        .count(
            "SELECT count(*) FROM outbox WHERE trace_parent IS NOT NULL OR trace_state IS NOT NULL",
        )
        .await;
    assert_eq!(stored, 0, "nothing stored for an invalid context");
}

#[tokio::test]
async fn an_otlp_protocol_other_than_http_protobuf_is_refused_at_start() {
    let output = tokio::process::Command::new(eventgate_binary())
        .arg("openapi")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success(), "refused");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && stderr.contains("http/protobuf"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "nothing done");
}

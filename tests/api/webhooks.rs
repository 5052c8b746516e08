//! Webhooks to a real HTTP receiver on 127.0.0.1: signatures, retries, 410, Retry-After,
//! redirects, private-address refusal, the entity format with coalescing, lifecycle
//! messages and heartbeats, a hung endpoint, and a restart mid-delivery.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::PgPool;

use crate::helpers::{TestServer, assert_problem, config, view};

use crate::receiver::{Receiver, Reply, Request};

/// Verifies a delivery the way a receiver library would, written from the spec.
pub fn verify(request: &Request, secret: &str) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.{}",
        request.header("webhook-id"),
        request.header("webhook-timestamp"),
        request.body
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    request
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

pub fn webhook_server_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "1,1",
    ];
    args.extend_from_slice(extra);
    args
}

pub async fn create_webhook(server: &TestServer, key: &str, body: Value) -> Value {
    let response = server.post("/destinations", key, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The destination's attempts once at least `n` are recorded. The receiver sees a request
/// before the server records its attempt, so the list can lag the requests for a moment.
pub async fn attempts_once(server: &TestServer, key: &str, path: &str, n: usize) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attempts: Value = server.get(path, key).await.json().await.unwrap();
        if attempts["data"].as_array().unwrap().len() >= n {
            return attempts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {attempts} recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test]
async fn envelope_webhooks_are_signed_per_the_spec(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(204)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        view(&server, &key, &id).await.get("secret").is_none(),
        "shown once"
    );

    for p in ["P1", "P2", "P3"] {
        server.create_portfolio("acme", p).await;
    }
    let requests = receiver.wait_until("3 deliveries", |r| r.len() >= 3).await;
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT id::text, envelope FROM outbox ORDER BY tx_id, seq")
            .fetch_all(&server.pool)
            .await
            .unwrap();
    for request in &requests {
        assert!(verify(request, &secret), "signature verifies independently");
        assert_eq!(request.header("content-type"), "application/json");
        let (_, envelope) = stored
            .iter()
            .find(|(id, _)| id == request.header("webhook-id"))
            .expect("webhook-id is the event id");
        assert_eq!(&request.body, envelope, "the envelope, byte for byte");
    }
    let attempts = attempts_once(&server, &key, &format!("/destinations/{id}/attempts"), 3).await;
    assert_eq!(attempts["data"].as_array().unwrap().len(), 3);
    assert_eq!(attempts["data"][0]["status"], "succeeded");
    assert_eq!(attempts["data"][0]["response_status"], 204);

    // Rotation: both secrets sign for a while.
    let new_secret = server.rotate_secret(&id, &key).await;
    assert_ne!(new_secret, secret);
    server.create_portfolio("acme", "P4").await;
    let requests = receiver
        .wait_until("a delivery after rotation", |r| r.len() >= 4)
        .await;
    let last = requests.last().unwrap();
    assert!(
        verify(last, &new_secret) && verify(last, &secret),
        "old and new secrets both sign"
    );
    assert_eq!(last.header("webhook-signature").split(' ').count(), 2);
}

#[sqlx::test]
async fn retries_follow_the_schedule_and_keep_the_webhook_id(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, seen| Reply::status(if seen < 2 { 500 } else { 200 })).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.create_portfolio("acme", "P1").await;

    let requests = receiver
        .wait_until("three attempts", |r| r.len() >= 3)
        .await;
    let ids: Vec<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "the webhook-id is stable across retries"
    );
    for pair in requests.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(850),
            "retried after the configured delay"
        );
    }
    let attempts = attempts_once(&server, &key, &format!("/destinations/{id}/attempts"), 3).await;
    let statuses: Vec<&str> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"]);
    let failed = attempts_once(
        &server,
        &key,
        &format!("/destinations/{id}/attempts?status=failed"),
        2,
    )
    .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 2);
    assert_eq!(failed["data"][0]["response_status"], 500);
}

#[sqlx::test]
async fn the_last_failure_is_kept_and_can_be_retried(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.create_portfolio("acme", "P1").await;
    receiver
        .wait_until("every scheduled attempt", |r| r.len() >= 3)
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while view(&server, &key, &id).await["status"]["failed_deliveries"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delivery never failed for good"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = view(&server, &key, &id).await["status"].clone();
    assert!(
        status["last_error"].as_str().unwrap().contains("500"),
        "{status}"
    );

    receiver.set(|_, _| Reply::status(200));
    let event_id = receiver.requests()[0].header("webhook-id").to_owned();
    let retry = server
        .post(
            &format!("/destinations/{id}/deliveries/{event_id}/retry"),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    receiver
        .wait_until("the manual retry", |r| r.len() >= 4)
        .await;
    let missing = server
        .post(
            &format!(
                "/destinations/{id}/deliveries/{}/retry",
                uuid::Uuid::now_v7()
            ),
            &key,
            &json!({}),
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND).await;
}

#[sqlx::test]
async fn gone_disables_and_retry_after_is_honoured(pool: PgPool) {
    // Retry-After is honoured up to the longest configured delay (4 s here).
    let args = [
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "1,4",
    ];
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|path, seen| match (path, seen) {
        ("/gone", _) => Reply::status(410),
        ("/busy", 0) => Reply {
            status: 429,
            retry_after: Some(3),
            ..Reply::default()
        },
        _ => Reply::status(200),
    })
    .await;
    let gone = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/gone")}),
    )
    .await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/busy")}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;

    let requests = receiver
        .wait_until("the busy endpoint's retry", |r| {
            r.iter().filter(|x| x.path == "/busy").count() >= 2
        })
        .await;
    let busy: Vec<&Request> = requests.iter().filter(|r| r.path == "/busy").collect();
    assert!(
        busy[1].at - busy[0].at >= Duration::from_millis(2900),
        "waited for Retry-After (3 s), not the 1 s schedule"
    );

    let gone_id = gone["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let shown = view(&server, &key, gone_id).await;
        if shown["enabled"] == false {
            assert!(
                shown["status"]["disabled_reason"]
                    .as_str()
                    .unwrap()
                    .contains("410")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "410 never disabled the destination"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An endpoint asking for an absurd `Retry-After` once crashed the send task (the date
/// overflowed), leaving the delivery "in flight" with no attempt recorded. It is capped at
/// the longest configured delay, recorded, and retried.
#[sqlx::test]
async fn an_absurd_retry_after_is_capped_and_the_delivery_retried(pool: PgPool) {
    let args = [
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "1,2",
    ];
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, seen| match seen {
        0 => Reply {
            status: 503,
            retry_after: Some(99_999_999_999_999),
            ..Reply::default()
        },
        _ => Reply::status(200),
    })
    .await;
    let hook = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/")}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;

    let requests = receiver
        .wait_until("the retry after the capped Retry-After", |r| r.len() >= 2)
        .await;
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id"),
        "the same message again"
    );
    let attempts = attempts_once(
        &server,
        &key,
        &format!("/destinations/{}/attempts", hook["id"].as_str().unwrap()),
        2,
    )
    .await;
    let statuses: Vec<&Value> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["response_status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(503), &json!(200)],
        "both attempts recorded: {attempts}"
    );
}

#[sqlx::test]
async fn redirects_are_not_followed(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|path, _| match path {
        "/moved" => Reply {
            status: 302,
            location: Some("/elsewhere".into()),
            ..Reply::default()
        },
        _ => Reply::status(200),
    })
    .await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/moved")}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    receiver
        .wait_until("the redirecting attempt", |r| !r.is_empty())
        .await;
    let id = created["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let attempts: Value = server
            .get(&format!("/destinations/{id}/attempts"), &key)
            .await
            .json()
            .await
            .unwrap();
        if let Some(first) = attempts["data"].as_array().unwrap().first() {
            assert_eq!(first["status"], "failed");
            assert_eq!(first["response_status"], 302);
            break;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        receiver.requests().iter().all(|r| r.path != "/elsewhere"),
        "the redirect was not followed"
    );
}

#[sqlx::test]
async fn entity_format_coalesces_updates_but_never_creations(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&webhook_server_args(&[
            "--webhook-retry-delays-secs",
            "1,1,1,1,1,1,1,1,1,1",
            "--public-base-url",
            "https://api.example.com",
        ])),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "format": "entity",
        "custom_config": {"tenant_reference_id": "ref-123"}}),
    )
    .await;

    server.create_portfolio("acme", "P1").await;
    server.create_portfolio("acme", "P2").await;
    let values = [
        "WAITING_FOR_ACCOUNT",
        "WAITING_FOR_POLICY",
        "WAITING_FOR_FUNDS",
        "ACTIVE",
        "INACTIVE",
    ];
    for i in 0..10 {
        let response = server
            .publish(
                "acme",
                "portfolios.status-update",
                json!({"id": "P1", "external_id": "e", "value": values[i % 5]}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    server.settle().await;
    // Wait until every event is queued while the endpoint is down, then bring it up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox o JOIN destinations d ON (o.tx_id, o.seq) <= (d.delivered_tx, d.delivered_seq)")
            .fetch_one(&server.pool)
            .await
            .unwrap();
        if queued == 12 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "events were never queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let last_update: String = sqlx::query_scalar(
        "SELECT id::text FROM outbox WHERE event_type = 'portfolios.status-update' ORDER BY tx_id DESC, seq DESC LIMIT 1",
    )
    .fetch_one(&server.pool)
    .await
    .unwrap();
    // Bring the endpoint up only while nothing is in flight: a send already under way when
    // its queued row was coalesced away could still be accepted.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_attempts")
            .fetch_one(&server.pool)
            .await
            .unwrap();
        if recorded as usize == receiver.requests().len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "sends never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    receiver.set(|_, _| Reply::status(200));

    // Only what the endpoint took: requests answered 503 before the switch do not count,
    // including sends whose queued row was coalesced away afterwards.
    let accepted = |r: &[Request]| -> Vec<Value> {
        r.iter()
            .filter(|request| request.accepted())
            .map(Request::json)
            .collect()
    };
    let requests = receiver
        .wait_until("creations, one update and Activated", |r| {
            let bodies = accepted(r);
            bodies.iter().any(|b| b["event"] == "Updated")
                && bodies.iter().filter(|b| b["event"] == "Created").count() == 2
                && bodies.iter().any(|b| b["event"] == "Activated")
        })
        .await;
    // Let any stray retry land before counting.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = accepted(&receiver.requests());
    let updates: Vec<&Value> = bodies.iter().filter(|b| b["event"] == "Updated").collect();
    // Ten rapid updates coalesce; an older one already in flight when it was replaced may
    // still land (at-least-once), so at most two arrive, and the latest state always does.
    assert!(
        updates.len() <= 2,
        "ten rapid updates coalesced: {bodies:?}"
    );
    let latest = *updates
        .iter()
        .find(|u| u["event_id"] == last_update.as_str())
        .expect("the latest state was delivered");
    let updates = [latest];
    assert_eq!(updates[0]["entity"], "Portfolio");
    assert_eq!(updates[0]["entity_id"], "P1");
    assert_eq!(updates[0]["url"], "https://api.example.com/portfolios/P1");
    assert_eq!(
        updates[0]["custom_config"],
        json!({"tenant_reference_id": "ref-123"})
    );
    let created: Vec<&Value> = bodies.iter().filter(|b| b["event"] == "Created").collect();
    assert_eq!(created.len(), 2, "creations are never coalesced");
    let activated = bodies.iter().find(|b| b["event"] == "Activated").unwrap();
    assert_eq!(activated["entity"], "Plugin");
    assert_eq!(activated["entity_id"], 0);
    assert_eq!(activated["url"], Value::Null);
    assert!(!requests.is_empty());
}

#[sqlx::test]
async fn lifecycle_messages_and_heartbeats(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&webhook_server_args(&["--webhook-heartbeat-secs", "1"])),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "format": "entity"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let events = |r: &[Request]| -> Vec<String> {
        r.iter()
            .map(|x| x.json()["event"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    receiver
        .wait_until("Activated and a heartbeat", |r| {
            let e = events(r);
            e.contains(&"Activated".to_owned()) && e.contains(&"DailyHeartBeat".to_owned())
        })
        .await;
    let heartbeat = receiver
        .requests()
        .into_iter()
        .find(|r| r.json()["event"] == "DailyHeartBeat")
        .unwrap()
        .json();
    assert_eq!(heartbeat["entity"], "Overall");
    assert_eq!(heartbeat["entity_id"], 0);

    let patched = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    receiver
        .wait_until("Deactivated", |r| {
            events(r).contains(&"Deactivated".to_owned())
        })
        .await;
    let deactivated = receiver
        .requests()
        .into_iter()
        .find(|r| r.json()["event"] == "Deactivated")
        .unwrap()
        .json();
    assert_eq!(deactivated["entity"], "Plugin");
}

#[sqlx::test]
async fn a_hung_request_does_not_hold_back_other_events(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&webhook_server_args(&["--webhook-timeout-secs", "20"])),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, seen| {
        if seen == 0 {
            Reply {
                status: 200,
                delay: Some(Duration::from_secs(15)),
                ..Reply::default()
            }
        } else {
            Reply::status(200)
        }
    })
    .await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    receiver
        .wait_until("the first request to hang", |r| !r.is_empty())
        .await;
    let started = std::time::Instant::now();
    server.create_portfolio("acme", "P2").await;
    let requests = receiver
        .wait_until("the second event", |r| r.len() >= 2)
        .await;
    assert_eq!(requests[1].json()["data"]["id"], "P2");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "delivered while the first was still hanging"
    );
}

#[sqlx::test]
async fn a_delivery_interrupted_by_a_restart_is_sent_afterwards(pool: PgPool) {
    let args = webhook_server_args(&["--webhook-retry-delays-secs", "1,1,1,1,1"]);
    let server = TestServer::start_with(pool.clone(), config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    receiver
        .wait_until("a failed attempt", |r| !r.is_empty())
        .await;
    drop(server);

    receiver.set(|_, _| Reply::status(200));
    let _restarted = TestServer::start_with(pool, config(&args)).await;
    let requests = receiver
        .wait_until("the delivery after restart", |r| {
            r.iter()
                .any(|x| x.json()["data"]["id"] == "P1" && r.len() >= 2)
        })
        .await;
    assert!(requests.len() >= 2);
}

/// A slot fetches deliveries ahead of its sends. When the server stops, those not yet sent
/// stay pending: the next server sends each of them once, and nothing twice.
#[sqlx::test]
async fn deliveries_fetched_ahead_at_a_stop_are_sent_once_after_the_restart(pool: PgPool) {
    const EVENTS: usize = 30;
    let args = webhook_server_args(&[]);
    let server = TestServer::start_with(pool.clone(), config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let slow = Reply {
        status: 204,
        delay: Some(Duration::from_millis(300)),
        ..Reply::default()
    };
    let receiver = Receiver::start(move |_, _| slow.clone()).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "max_in_flight": 1}),
    )
    .await;
    for n in 0..EVENTS {
        server.create_portfolio("acme", &format!("P{n}")).await;
    }
    receiver
        .wait_until("a few deliveries, one at a time", |r| r.len() >= 3)
        .await;
    let pending_at_stop = server
        .count("SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'")
        .await;
    assert!(pending_at_stop > 1, "the stop comes mid-backlog");
    drop(server);

    receiver.set(|_, _| Reply::status(204));
    let restarted = TestServer::start_with(pool, config(&args)).await;
    let requests = all_delivered(&restarted, &receiver, EVENTS).await;
    assert_eq!(requests.len(), EVENTS, "none sent twice");
    assert_eq!(
        restarted
            .count("SELECT count(*) FROM webhook_attempts")
            .await,
        EVENTS as i64,
        "one attempt recorded per delivery"
    );
}

#[sqlx::test]
async fn continuous_failure_disables_the_destination(pool: PgPool) {
    let args = webhook_server_args(&[
        "--webhook-disable-after-secs",
        "1",
        "--webhook-retry-delays-secs",
        "1,1,1,1,1,1,1,1",
    ]);
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(500)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    server.create_portfolio("acme", "P1").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = view(&server, &key, &id).await;
        if shown["enabled"] == false {
            let reason = shown["status"]["disabled_reason"].as_str().unwrap();
            assert!(reason.contains("failing continuously"), "{reason}");
            // The server's own action is in the audit log, by `system`, with the reason.
            let recorded: (String, serde_json::Value) = sqlx::query_as(
                "SELECT actor_role, changes FROM audit_log
                 WHERE action = 'destination.disabled' AND target = $1",
            )
            .bind(&id)
            .fetch_one(&server.pool)
            .await
            .unwrap();
            assert_eq!(recorded.0, "system");
            assert_eq!(recorded.1["reason"], reason);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never disabled: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test]
async fn webhooks_carry_only_their_tenants_events(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    server.tenant_with_key("bank-b").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await;
    server.create_portfolio("bank-b", "PB1").await;
    server.create_portfolio("acme", "PA1").await;
    server.create_portfolio("bank-b", "PB2").await;
    server.create_portfolio("acme", "PA2").await;
    receiver
        .wait_until("acme's two events", |r| r.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["PA1", "PA2"]);
}

/// Many sends in flight, their outcomes committed in batches: every event arrives, exactly
/// once per attempt, and every attempt is recorded against its own delivery.
/// The receiver's requests once `events` deliveries are recorded as delivered, after
/// checking that every one of them arrived (under its own `webhook-id`).
async fn all_delivered(server: &TestServer, receiver: &Receiver, events: usize) -> Vec<Request> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server
        .count("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
        .await
        < events as i64
    {
        assert!(
            std::time::Instant::now() < deadline,
            "backlog not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let requests = receiver.requests();
    let distinct: std::collections::HashSet<&str> =
        requests.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(distinct.len(), events, "every event arrived");
    requests
}

#[sqlx::test]
async fn a_backlog_sent_concurrently_is_recorded_attempt_for_attempt(pool: PgPool) {
    const EVENTS: usize = 200;
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    // Two first attempts fail (the 6th and 12th requests); each retry lands later.
    let receiver =
        Receiver::start(|_, seen| Reply::status(if seen == 5 || seen == 11 { 500 } else { 204 }))
            .await;
    let id = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..EVENTS {
        server.create_portfolio("acme", &format!("P{n}")).await;
    }

    let requests = all_delivered(&server, &receiver, EVENTS).await;
    assert_eq!(
        requests.len(),
        EVENTS + 2,
        "one request per attempt, no duplicates"
    );
    assert_eq!(
        server.count("SELECT count(*) FROM webhook_attempts").await,
        EVENTS as i64 + 2
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM webhook_attempts WHERE status = 'failed'")
            .await,
        2
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM webhook_deliveries WHERE attempts = 2")
            .await,
        2,
        "the two failed deliveries were retried once each"
    );
    let status = view(&server, &key, &id).await;
    assert_eq!(status["status"]["failing_since"], Value::Null, "{status}");
    assert_eq!(status["status"]["pending_deliveries"], 0, "{status}");
    assert!(status["status"]["last_success_at"].is_string(), "{status}");
}

/// Coalescing inside one queued batch and against what is already pending: only the latest
/// `Updated` of an entity stays; creations and other entities are untouched.
#[sqlx::test]
async fn queueing_a_batch_keeps_only_the_latest_update_per_entity(pool: PgPool) {
    use eventgate::store::webhooks::{NewDelivery, queue_many};
    sqlx::query("INSERT INTO tenants (id, name) VALUES ('acme', 'acme')")
        .execute(&pool)
        .await
        .unwrap();
    let destination: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO destinations (id, tenant_id, kind, config, delivered_tx, delivered_seq)
         VALUES (gen_random_uuid(), 'acme', 'webhook', '{}', '0', 0) RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let delivery =
        |message_id: &'static str, entity_id: &'static str, change: &'static str| NewDelivery {
            message_id,
            event_id: None,
            entity: Some("Portfolio"),
            entity_id: Some(entity_id),
            change: Some(change),
            payload: message_id,
            trace: None,
            coalesce: change == "Updated",
        };
    let mut conn = pool.acquire().await.unwrap();
    queue_many(&mut conn, destination, &[delivery("u0", "P1", "Updated")])
        .await
        .unwrap();
    queue_many(
        &mut conn,
        destination,
        &[
            delivery("c1", "P1", "Created"),
            delivery("u1", "P1", "Updated"),
            delivery("u2", "P2", "Updated"),
            delivery("u3", "P1", "Updated"),
            delivery("c2", "P1", "Created"),
        ],
    )
    .await
    .unwrap();
    let mut pending: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM webhook_deliveries WHERE status = 'pending' ORDER BY payload",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pending.sort();
    assert_eq!(pending, ["c1", "c2", "u2", "u3"]);
}

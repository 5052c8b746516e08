//! The audit log: every administrative action is recorded with its actor, tenant, target
//! and request id in the transaction of the change (a refused change leaves no entry),
//! with no secret in it; a client key reads its own tenant's entries only; and pages
//! followed with `after` while many changes commit concurrently see each entry once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};
use crate::receiver::{Receiver, Reply};

/// Waits until no audit entry is held back by an open transaction (tests share one
/// cluster, whose horizon another test may hold for a moment).
async fn settle(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM audit_log WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
    {
        assert!(Instant::now() < deadline, "audit entries held back for 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every entry `key` may read with `query`, page by page (`limit` per page).
async fn read_all(server: &TestServer, key: &str, query: &str, limit: u32) -> Vec<Value> {
    settle(&server.pool).await;
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after
            .as_ref()
            .map(|c| format!("&after={c}"))
            .unwrap_or_default();
        let page: Value = server
            .get(&format!("/audit?limit={limit}{query}{cursor}"), key)
            .await
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap().clone();
        if data.is_empty() {
            return entries;
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
        entries.extend(data);
    }
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

#[sqlx::test]
async fn every_administrative_action_is_recorded_with_its_actor(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let receiver =
        Receiver::start(|_, seen| Reply::status(if seen == 0 { 500 } else { 200 })).await;
    let created = server
        .http
        .post(server.url("/destinations"))
        .bearer_auth(&key)
        .header("x-request-id", "create-webhook-1")
        .json(&json!({"kind": "webhook", "url": format!("{}?token=audit-query-token", receiver.url("/hook"))}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let webhook: Value = created.json().await.unwrap();
    let id = webhook["id"].as_str().unwrap().to_owned();
    let secret = webhook["secret"].as_str().unwrap().to_owned();
    let amqp: Value = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "amqp", "url": "amqp://guest:amqp-audit-password@127.0.0.1/%2f", "exchange": "x", "enabled": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    let amqp_id = amqp["id"].as_str().unwrap();
    let patched = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"types": ["portfolios.*"]}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    for enabled in [false, true] {
        let toggled = server
            .patch(
                &format!("/destinations/{id}"),
                &key,
                &json!({"enabled": enabled}),
            )
            .await;
        assert_eq!(toggled.status(), StatusCode::OK);
    }
    let rotated_secret = server.rotate_secret(&id, &key).await;
    server.create_portfolio("acme", "P1").await;
    // The feed also holds the `destinations.disabled` of the toggle above.
    let event_id: String =
        sqlx::query_scalar("SELECT id::text FROM outbox WHERE event_type = 'portfolios.creation'")
            .fetch_one(&server.pool)
            .await
            .unwrap();
    receiver
        .wait_until("the event's first attempt", |r| {
            r.iter()
                .any(|request| request.header("webhook-id") == event_id)
        })
        .await;
    let retried = server
        .post(
            &format!("/destinations/{id}/deliveries/{event_id}/retry"),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    let replayed = server
        .post(
            &format!("/destinations/{id}/replay"),
            &key,
            &json!({"from": "now"}),
        )
        .await;
    assert_eq!(replayed.status(), StatusCode::OK);
    let deleted = server
        .http
        .delete(server.url(&format!("/destinations/{amqp_id}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let spare = server.new_key("acme", "client").await;
    let spare_id = spare["id"].as_str().unwrap();
    let revoked = server
        .http
        .delete(server.url(&format!("/platform/keys/{spare_id}")))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    let entries = read_all(&server, PLATFORM_KEY, "&tenant=acme", 3).await;
    assert_eq!(
        actions(&entries),
        [
            "tenant.created",
            "key.created",
            "destination.created",
            "destination.created",
            "destination.updated",
            "destination.disabled",
            "destination.enabled",
            "destination.secret_rotated",
            "delivery.retried",
            "destination.replayed",
            "destination.deleted",
            "key.created",
            "key.revoked",
        ]
    );
    let platform_key_id = entries[0]["actor"]["key_id"].clone();
    assert_eq!(entries[0]["actor"]["role"], "platform");
    assert!(platform_key_id.is_string());
    let client_key_id = entries[1]["target"].clone();
    for entry in &entries[2..11] {
        assert_eq!(entry["actor"]["role"], "client", "{entry}");
        assert_eq!(entry["actor"]["key_id"], client_key_id, "{entry}");
        assert_eq!(entry["tenant"], "acme");
        assert!(
            entry["request_id"].is_string(),
            "every request has an id: {entry}"
        );
    }
    assert_eq!(entries[2]["request_id"], "create-webhook-1");
    assert_eq!(entries[2]["target"], id.as_str());
    assert_eq!(
        entries[3]["changes"]["settings"]["url"],
        "amqp://guest:***@127.0.0.1/%2f"
    );
    assert_eq!(entries[4]["changes"]["fields"], json!(["types"]));
    assert_eq!(entries[8]["changes"]["event_id"], event_id.as_str());
    assert_eq!(entries[12]["target"], spare_id);
    assert_eq!(entries[12]["actor"]["key_id"], platform_key_id);
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        "amqp-audit-password",
        "audit-query-token",
        &secret,
        &rotated_secret,
        &key,
    ] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
}

#[sqlx::test]
async fn a_refused_change_leaves_no_entry(pool: PgPool) {
    let server = TestServer::start_with(
        pool.clone(),
        config(&["--max-destinations-per-tenant", "1", "--relay", "false"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let body = json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "t"});
    assert_eq!(
        server.post("/destinations", &key, &body).await.status(),
        StatusCode::CREATED
    );
    let before = server.count("SELECT count(*) FROM audit_log").await;
    let over_cap = server.post("/destinations", &key, &body).await;
    assert_problem(over_cap, StatusCode::CONFLICT).await;
    let taken = server
        .post(
            "/platform/tenants",
            PLATFORM_KEY,
            &json!({"id": "acme", "name": "again"}),
        )
        .await;
    assert_problem(taken, StatusCode::CONFLICT).await;
    let no_such_key = server
        .http
        .delete(server.url(&format!("/platform/keys/{}", uuid::Uuid::now_v7())))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(no_such_key, StatusCode::NOT_FOUND).await;
    assert_eq!(server.count("SELECT count(*) FROM audit_log").await, before);
}

#[sqlx::test]
async fn a_client_reads_its_own_tenants_entries_only(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    let acme = server.tenant_with_key("acme").await;
    let other = server.tenant_with_key("other").await;
    let body = json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "t"});
    for key in [&acme, &other, &other] {
        assert_eq!(
            server.post("/destinations", key, &body).await.status(),
            StatusCode::CREATED
        );
    }
    let seen = read_all(&server, &acme, "", 100).await;
    assert_eq!(
        actions(&seen),
        ["tenant.created", "key.created", "destination.created"]
    );
    assert!(seen.iter().all(|entry| entry["tenant"] == "acme"));
    let refused = server.get("/audit?tenant=other", &acme).await;
    assert_problem(refused, StatusCode::FORBIDDEN).await;
    let own = read_all(
        &server,
        &acme,
        "&tenant=acme&action=destination.created",
        100,
    )
    .await;
    assert_eq!(own.len(), 1);
    let everything = read_all(&server, PLATFORM_KEY, "", 100).await;
    let created = everything
        .iter()
        .filter(|entry| entry["action"] == "destination.created")
        .count();
    assert_eq!(created, 3, "the platform reads every tenant's entries");
    let garbage = server.get("/audit?after=not-a-cursor", &acme).await;
    assert_problem(garbage, StatusCode::BAD_REQUEST).await;
}

/// 16 clients create and delete destinations at once while a follower pages through the
/// log two entries at a time: every entry the writers committed is seen exactly once.
#[sqlx::test]
async fn a_follower_sees_every_concurrent_entry_once(pool: PgPool) {
    let server = std::sync::Arc::new(
        TestServer::start_with(
            pool,
            config(&[
                "--relay",
                "false",
                "--max-destinations-per-tenant",
                "1000",
                "--rate-limit-per-sec",
                "0",
            ]),
        )
        .await,
    );
    let key = std::sync::Arc::new(server.tenant_with_key("acme").await);
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (server, key) = (server.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..5 {
                    let body =
                        json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "t"});
                    let created: Value = server
                        .post("/destinations", &key, &body)
                        .await
                        .json()
                        .await
                        .unwrap();
                    let id = created["id"].as_str().unwrap().to_owned();
                    let deleted = server
                        .http
                        .delete(server.url(&format!("/destinations/{id}")))
                        .bearer_auth(key.as_str())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let follow = |after: Option<String>| {
        let (server, key) = (server.clone(), key.clone());
        async move {
            let cursor = after.map(|c| format!("&after={c}")).unwrap_or_default();
            let page: Value = server
                .get(&format!("/audit?limit=2{cursor}"), &key)
                .await
                .json()
                .await
                .unwrap();
            page
        }
    };
    while writers.iter().any(|w| !w.is_finished()) {
        let page = follow(after.clone()).await;
        seen.extend(page["data"].as_array().unwrap().iter().cloned());
        after = page["next_cursor"].as_str().map(str::to_owned);
    }
    for writer in writers {
        writer.await.unwrap();
    }
    settle(&server.pool).await;
    loop {
        let page = follow(after.clone()).await;
        let data = page["data"].as_array().unwrap().clone();
        if data.is_empty() {
            break;
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
        seen.extend(data);
    }
    let cursors: HashSet<&str> = seen.iter().map(|e| e["cursor"].as_str().unwrap()).collect();
    assert_eq!(cursors.len(), seen.len(), "no entry twice");
    let stored = server
        .count("SELECT count(*) FROM audit_log WHERE tenant_id = 'acme'")
        .await;
    assert_eq!(seen.len() as i64, stored, "no entry missed");
    assert_eq!(stored, 2 + 16 * 5 * 2);
}

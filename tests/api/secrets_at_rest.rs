//! Secrets at rest: broker credentials and webhook signing secrets are sealed in the table
//! (a backup or a replica holds none in clear), still work for delivery, are sealed at
//! start-up when an older release left them in plain text, are resealed by
//! `eventgate secrets rotate`, and never reach the server's log or metrics.

use std::time::Duration;

use eventgate::secrets::Keyring;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::brokers::{AMQP_URL, AmqpQueue, unique};
use crate::helpers::{
    PLATFORM_KEY, SECRETS_KEY, TestServer, config, config_with_secrets_key, database_url,
    eventgate_binary, free_port, spawn_eventgate_logged, wait_ready,
};
use crate::receiver::{Receiver, Reply};

/// Every stored column that can hold a secret, as text, for each destination.
async fn raw_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT concat_ws(' | ', config::text, secret, previous_secret) FROM destinations",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn create(server: &TestServer, key: &str, body: Value) -> Value {
    let created = server.post("/destinations", key, &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json().await.unwrap()
}

#[sqlx::test]
async fn stored_secrets_are_sealed_and_still_deliver(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("sealed");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let webhook_url = format!("{}?token=query-token-4711", receiver.url("/hook"));
    create(
        &server,
        &key,
        json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
    )
    .await;
    let webhook = create(
        &server,
        &key,
        json!({"kind": "webhook", "url": webhook_url}),
    )
    .await;
    let signing = webhook["secret"].as_str().unwrap().to_owned();
    let new_signing = server
        .rotate_secret(webhook["id"].as_str().unwrap(), &key)
        .await;

    let rows = raw_rows(&pool).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for secret in [
            "guest:guest",
            "query-token-4711",
            &signing,
            &new_signing,
            "whsec_",
        ] {
            assert!(!row.contains(secret), "{secret} in clear: {row}");
        }
        assert!(row.contains("egs1:"), "sealed: {row}");
    }

    server.create_portfolio("acme", "P1").await;
    assert_eq!(
        queue.take(1).await.len(),
        1,
        "the sealed AMQP URL opened and delivered"
    );
    let requests = receiver.wait_until("one webhook", |r| !r.is_empty()).await;
    assert_eq!(requests[0].path, "/hook", "the sealed webhook URL opened");
    // Both secrets sign during the rotation: each one opened from its sealed column.
    let signatures = requests[0].header("webhook-signature");
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
}

/// A destination row as an older release stored it: everything in plain text.
async fn insert_plain_row(pool: &PgPool, url: &str, secret: Option<&str>) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO destinations (id, tenant_id, kind, config, delivered_tx, delivered_seq, secret)
         VALUES ($1, 'acme', $2, $3, pg_snapshot_xmin(pg_current_snapshot()), 9223372036854775807, $4)",
    )
    .bind(id)
    .bind(if secret.is_some() { "webhook" } else { "amqp" })
    .bind(if secret.is_some() { json!({"url": url}) } else { json!({"url": url, "exchange": "x"}) })
    .bind(secret)
    .execute(pool)
    .await
    .unwrap();
    id
}

#[sqlx::test]
async fn plain_text_rows_are_sealed_at_start_up(pool: PgPool) {
    let first = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
    let key = first.tenant_with_key("acme").await;
    drop(first);
    let amqp = insert_plain_row(&pool, "amqp://bank:plain-password@127.0.0.1/%2f", None).await;
    insert_plain_row(
        &pool,
        "http://127.0.0.1:9/hook",
        Some("whsec_cGxhaW4tc2VjcmV0"),
    )
    .await;
    assert!(
        raw_rows(&pool)
            .await
            .iter()
            .any(|row| row.contains("plain-password"))
    );

    let server = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
    for row in raw_rows(&pool).await {
        assert!(
            !row.contains("plain-password") && !row.contains("whsec_"),
            "{row}"
        );
    }
    let shown: Value = server
        .get(&format!("/destinations/{amqp}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["url"], "amqp://bank:***@127.0.0.1/%2f", "{shown}");
}

fn keyring_id(key: &str) -> String {
    Keyring::from_base64([key]).unwrap().newest_id().to_owned()
}

#[sqlx::test]
async fn rotate_reseals_every_secret_with_the_newest_key(
    options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    let old = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
    let key = old.tenant_with_key("acme").await;
    let exchange = unique("rotated");
    for _ in 0..3 {
        create(
            &old,
            &key,
            json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
        )
        .await;
    }
    create(
        &old,
        &key,
        json!({"kind": "webhook", "url": "http://127.0.0.1:9/hook"}),
    )
    .await;
    drop(old);

    let new_key = Keyring::generate_base64().unwrap();
    let both = format!("{new_key},{SECRETS_KEY}");
    let rotate = std::process::Command::new(eventgate_binary())
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", &url)
        .env("EVENTGATE_SECRETS_KEY", &both)
        .output()
        .unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let said = String::from_utf8_lossy(&rotate.stdout);
    assert!(
        said.lines()
            .any(|line| line.starts_with("4 destinations resealed")),
        "{said}"
    );
    let prefix = format!("egs1:{}:", keyring_id(&new_key));
    let sealed: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT config->>'url', secret FROM destinations")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (url, secret) in sealed {
        assert!(url.starts_with(&prefix), "{url}");
        assert!(secret.is_none_or(|secret| secret.starts_with(&prefix)));
    }
    let again = std::process::Command::new(eventgate_binary())
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", &url)
        .env("EVENTGATE_SECRETS_KEY", &both)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        said.lines()
            .any(|line| line.starts_with("0 destinations resealed")),
        "resumable: {said}"
    );

    // The old key can go: the new one alone opens everything, and delivery works.
    let queue = AmqpQueue::bind_new(&exchange).await;
    let server = TestServer::start_with(pool, config_with_secrets_key(&new_key, &[])).await;
    server.create_portfolio("acme", "P1").await;
    assert_eq!(
        queue.take(3).await.len(),
        3,
        "every resealed destination delivered"
    );
}

/// The log of a real server run at debug level that stores, uses and rotates secrets, and
/// its metrics, contain none of them.
#[sqlx::test]
async fn secrets_never_reach_the_log_or_the_metrics(
    options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let url = database_url(&connect);
    let pool = options.connect_with(connect).await.unwrap();
    let setup = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
    let key = setup.tenant_with_key("acme").await;
    drop(setup);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = free_port();
    let mut server = spawn_eventgate_logged(&url, port, &[("RUST_LOG", "debug")], &log);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&http, &base).await;

    let receiver = Receiver::start(|_, _| Reply::status(503)).await;
    let password = "amqp-password-never-logged";
    let mut shown = Vec::new();
    for body in [
        json!({"kind": "amqp", "url": format!("amqp://guest:{password}@127.0.0.1:5672/%2f"), "exchange": unique("logged")}),
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    ] {
        let created = http
            .post(format!("{base}/destinations"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        shown.push(created.json::<Value>().await.unwrap());
    }
    let signing = shown[1]["secret"].as_str().unwrap().to_owned();
    let events = http
        .post(format!("{base}/platform/events"))
        .bearer_auth(PLATFORM_KEY)
        .json(&json!({"tenant": "acme", "subject": "portfolios", "action": "creation",
                      "data": {"id": "P01F8ZSNV0J45R9DFZ3D7D8C26F", "external_id": "x", "owned_by_user_id": "u"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), StatusCode::CREATED);
    receiver
        .wait_until("a failing attempt", |r| !r.is_empty())
        .await;
    let amqp_id = shown[0]["id"].as_str().unwrap();
    // The wrong password: the broker refuses, and the error is recorded and logged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: Value = http
            .get(format!("{base}/destinations/{amqp_id}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !status["status"]["last_error"].is_null() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = crate::helpers::metrics_text(&http, &base).await;
    server.kill().await.unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("DEBUG"), "the run logged at debug level");
    for secret in [
        password,
        signing.as_str(),
        SECRETS_KEY,
        PLATFORM_KEY,
        key.as_str(),
    ] {
        assert!(!logged.contains(secret), "{secret} in the log");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
    }
}

/// With DATABASE_URL the server refuses to start without a secrets key, or with a short
/// platform key, and says why.
#[sqlx::test]
async fn a_shared_database_needs_a_secrets_key_and_a_long_platform_key(
    _options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let url = database_url(&connect);
    let start = |platform_key: &str, secrets_key: Option<&str>| {
        let mut command = std::process::Command::new(eventgate_binary());
        command
            .arg("serve")
            .env("DATABASE_URL", &url)
            .env("EVENTGATE_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("EVENTGATE_PLATFORM_KEY", platform_key)
            .env_remove("EVENTGATE_SECRETS_KEY")
            .env_remove("EVENTGATE_SECRETS_KEY_FILE");
        if let Some(key) = secrets_key {
            command.env("EVENTGATE_SECRETS_KEY", key);
        }
        command.output().unwrap()
    };
    for (output, expected) in [
        (start(PLATFORM_KEY, None), "no secrets key"),
        (
            start("short-platform-key", Some(SECRETS_KEY)),
            "at least 32",
        ),
    ] {
        assert!(!output.status.success(), "it started");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains(expected), "{said}");
    }
}

//! Authenticating to a bank's webhook endpoint: mutual TLS against a real HTTPS receiver
//! that requires a client certificate (made here with rcgen), an OAuth2 client credentials
//! token from a local token endpoint, and static headers. Every credential is sealed at
//! rest and shown as `***`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestServer, assert_problem, config};
use crate::helpers::{view, wait_view};
use crate::pki::TestCa;
use crate::receiver::{Receiver, Reply};
use crate::tls_receiver::TlsReceiver;
use crate::token_endpoint::TokenEndpoint;
use crate::webhooks::{create_webhook, verify, webhook_server_args};

async fn stored_config(server: &TestServer, id: &str) -> String {
    sqlx::query_scalar("SELECT config::text FROM destinations WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&server.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn mutual_tls_presents_the_destination_certificate_and_a_wrong_one_fails(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let server_ca = TestCa::new("bank server CA");
    let client_ca = TestCa::new("bank client CA");
    let receiver =
        TlsReceiver::start(&server_ca.server(), &client_ca, |_, _| Reply::status(200)).await;
    let ours = client_ca.client("eventgate-acme");
    let stranger = TestCa::new("someone else").client("eventgate-acme");

    let with_certificate = |path: &str, cert_pem: Option<&str>, key_pem: Option<&str>| {
        let mut tls = json!({"ca_pem": server_ca.pem()});
        if let (Some(cert), Some(key)) = (cert_pem, key_pem) {
            tls["client_cert_pem"] = json!(cert);
            tls["client_key_pem"] = json!(key);
        }
        json!({"kind": "webhook", "url": receiver.url(path), "tls": tls})
    };
    let good = create_webhook(
        &server,
        &key,
        with_certificate("/good", Some(&ours.cert_pem), Some(&ours.key_pem)),
    )
    .await;
    assert_eq!(
        good["tls"]["client_key_pem"], "***",
        "the key is never shown"
    );
    assert_eq!(good["tls"]["client_cert_pem"], ours.cert_pem.as_str());
    let stored = stored_config(&server, good["id"].as_str().unwrap()).await;
    assert!(!stored.contains("PRIVATE KEY"), "the key is sealed at rest");
    let wrong = create_webhook(
        &server,
        &key,
        with_certificate("/wrong", Some(&stranger.cert_pem), Some(&stranger.key_pem)),
    )
    .await;
    let missing = create_webhook(&server, &key, with_certificate("/missing", None, None)).await;

    server.create_portfolio("acme", "P1").await;
    let requests = receiver
        .receiver
        .wait_until("the delivery over mutual TLS", |r| {
            r.iter().any(|r| r.path == "/good")
        })
        .await;
    let secret = good["secret"].as_str().unwrap();
    assert!(verify(&requests[0], secret), "signed as usual");
    // The endpoint's TLS alert is what the integrator sees: an unknown issuer, or no
    // certificate at all.
    for (refused, alert) in [(&wrong, "UnknownCA"), (&missing, "CertificateRequired")] {
        let id = refused["id"].as_str().unwrap();
        let shown = wait_view(&server, &key, id, "the handshake failure", |v| {
            v["status"]["last_error"].is_string()
        })
        .await;
        let error = shown["status"]["last_error"].as_str().unwrap();
        assert!(
            error.contains("received fatal alert") && error.contains(alert),
            "last_error says why the handshake failed: {error}"
        );
        assert!(!error.contains("PRIVATE"), "{error}");
        assert_eq!(shown["status"]["pending_deliveries"], 1, "kept for a retry");
    }
    let paths: Vec<String> = receiver
        .receiver
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(
        paths.iter().all(|p| p == "/good"),
        "no request got through without the right certificate: {paths:?}"
    );

    // A certificate and a key that are not a pair, or text that is not PEM, is refused.
    let other = client_ca.client("other");
    for (tls, status) in [
        (
            json!({"client_cert_pem": ours.cert_pem, "client_key_pem": other.key_pem}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"client_cert_pem": ours.cert_pem}),
            StatusCode::CONFLICT,
        ),
        (json!({"ca_pem": "not a certificate"}), StatusCode::CONFLICT),
        (json!({"ca_pem": "\u{0}"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let body = json!({"kind": "webhook", "url": receiver.url("/x"), "tls": tls});
        let problem = assert_problem(server.post("/destinations", &key, &body).await, status).await;
        assert!(
            !problem["detail"].as_str().unwrap().contains("PRIVATE"),
            "{problem}"
        );
    }
    let plain = json!({"kind": "webhook", "url": "http://127.0.0.1:9/x", "tls": {"ca_pem": server_ca.pem()}});
    assert_problem(
        server.post("/destinations", &key, &plain).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(
        server.count("SELECT count(*) FROM destinations").await,
        3,
        "nothing else saved"
    );
}

#[sqlx::test]
async fn oauth2_tokens_are_fetched_once_cached_and_replaced_after_a_401(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let tokens = TokenEndpoint::start("eventgate", "s3cret/+&", 3600).await;
    // The third request is refused as if its token had been revoked.
    let receiver =
        Receiver::start(|_, seen| Reply::status(if seen == 2 { 401 } else { 200 })).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "oauth2": {
            "token_url": tokens.url, "client_id": "eventgate", "client_secret": "s3cret/+&",
            "scope": "events:write", "audience": "https://bank.example/api"}}),
    )
    .await;
    assert_eq!(created["oauth2"]["client_secret"], "***");
    assert_eq!(created["oauth2"]["client_id"], "eventgate");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        !stored_config(&server, &id).await.contains("s3cret"),
        "sealed at rest"
    );

    server.create_portfolio("acme", "P1").await;
    server.create_portfolio("acme", "P2").await;
    let requests = receiver
        .wait_until("two deliveries", |r| r.len() >= 2)
        .await;
    for request in &requests[..2] {
        assert_eq!(request.header("authorization"), "Bearer tok-1");
    }
    let fetched = tokens.requests();
    assert_eq!(fetched.len(), 1, "one token for both deliveries");
    let form = &fetched[0].form;
    for (name, value) in [
        ("grant_type", "client_credentials"),
        ("scope", "events:write"),
        ("audience", "https://bank.example/api"),
    ] {
        assert!(
            form.iter().any(|(k, v)| k == name && v == value),
            "{name} in {form:?}"
        );
    }
    assert!(
        !form.iter().any(|(k, _)| k == "client_secret"),
        "Basic auth, not the body"
    );

    // A 401 fetches a new token and tries once more, within the same attempt.
    server.create_portfolio("acme", "P3").await;
    let requests = receiver
        .wait_until("the retried request", |r| r.len() >= 4)
        .await;
    assert_eq!(requests[2].answered, 401);
    assert_eq!(requests[2].header("authorization"), "Bearer tok-1");
    assert_eq!(requests[3].header("authorization"), "Bearer tok-2");
    assert_eq!(
        requests[3].header("webhook-id"),
        requests[2].header("webhook-id")
    );
    assert_eq!(tokens.requests().len(), 2);
    let attempts: Value =
        crate::webhooks::attempts_once(&server, &key, &format!("/destinations/{id}/attempts"), 3)
            .await;
    assert!(
        attempts["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "succeeded"),
        "the refreshed token made it one successful attempt: {attempts}"
    );

    // Credentials the token endpoint refuses: the error says so, the endpoint gets nothing.
    let refused = Receiver::start(|_, _| Reply::status(200)).await;
    let wrong = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": refused.url("/hook"), "oauth2": {
            "token_url": tokens.url, "client_id": "eventgate", "client_secret": "wrong"}}),
    )
    .await;
    server.create_portfolio("acme", "P4").await;
    let shown = wait_view(
        &server,
        &key,
        wrong["id"].as_str().unwrap(),
        "the token error",
        |v| v["status"]["last_error"].is_string(),
    )
    .await;
    let error = shown["status"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("OAuth2 token endpoint answered 401"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "no secret in the error: {error}");
    assert!(refused.requests().is_empty());
}

#[sqlx::test]
async fn a_token_is_replaced_before_it_expires(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let tokens = TokenEndpoint::start("eventgate", "s3cret", 1).await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "oauth2": {
            "token_url": tokens.url, "client_id": "eventgate", "client_secret": "s3cret"}}),
    )
    .await;
    server.create_portfolio("acme", "P1").await;
    receiver
        .wait_until("the first delivery", |r| !r.is_empty())
        .await;
    // The token lives 1 s and is replaced a fifth of that early; past its lifetime the
    // cached one must not be used.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.create_portfolio("acme", "P2").await;
    let requests = receiver
        .wait_until("the second delivery", |r| r.len() >= 2)
        .await;
    assert_eq!(requests[0].header("authorization"), "Bearer tok-1");
    assert_eq!(requests[1].header("authorization"), "Bearer tok-2");
    assert!(requests.iter().all(|r| r.answered == 200));
}

#[sqlx::test]
async fn static_headers_are_sent_sealed_redacted_and_kept_when_sent_back_redacted(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"),
               "headers": {"X-Api-Key": "k-123", "X-Partner": "acme"}}),
    )
    .await;
    assert_eq!(
        created["headers"],
        json!({"X-Api-Key": "***", "X-Partner": "***"})
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        !stored_config(&server, &id).await.contains("k-123"),
        "sealed at rest"
    );

    server.create_portfolio("acme", "P1").await;
    let requests = receiver.wait_until("a delivery", |r| !r.is_empty()).await;
    assert_eq!(requests[0].header("x-api-key"), "k-123");
    assert_eq!(requests[0].header("x-partner"), "acme");

    // The view sent back as it was shown keeps the stored values; a new value replaces.
    let mut shown = view(&server, &key, &id).await;
    shown["headers"]["X-Partner"] = json!("acme-2");
    let patched = server
        .patch(
            &format!("/destinations/{id}"),
            &key,
            &json!({"headers": shown["headers"]}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    server.create_portfolio("acme", "P2").await;
    let requests = receiver
        .wait_until("a second delivery", |r| r.len() >= 2)
        .await;
    assert_eq!(requests[1].header("x-api-key"), "k-123", "kept");
    assert_eq!(requests[1].header("x-partner"), "acme-2", "replaced");

    let audit: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(changes::text, ' '), '') FROM audit_log")
            .fetch_one(&server.pool)
            .await
            .unwrap();
    assert!(
        !audit.contains("k-123") && audit.contains("X-Api-Key"),
        "{audit}"
    );

    // Headers eventgate sets itself cannot be replaced; malformed ones are refused.
    for (headers, status) in [
        (
            json!({"webhook-signature": "v1,forged"}),
            StatusCode::CONFLICT,
        ),
        (json!({"Content-Type": "text/plain"}), StatusCode::CONFLICT),
        (json!({"X-A": "1", "x-a": "2"}), StatusCode::CONFLICT),
        // A value copied from a view, with nothing stored behind it.
        (json!({"X-Api-Key": "***"}), StatusCode::CONFLICT),
        (json!({"bad header": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"X-Ok": "line\r\nbreak"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"X-Ok": 7}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let body = json!({"kind": "webhook", "url": receiver.url("/x"), "headers": headers});
        assert_problem(server.post("/destinations", &key, &body).await, status).await;
    }
    let with_oauth = json!({"kind": "webhook", "url": receiver.url("/x"),
        "headers": {"Authorization": "Bearer static"},
        "oauth2": {"token_url": "http://127.0.0.1:9/token", "client_id": "a", "client_secret": "b"}});
    assert_problem(
        server.post("/destinations", &key, &with_oauth).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(server.count("SELECT count(*) FROM destinations").await, 1);
}

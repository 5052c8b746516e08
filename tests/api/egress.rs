//! A fixed egress: with EVENTGATE_EGRESS_PROXY every webhook delivery and OAuth2 token
//! request goes through the operator's proxy (a local recording CONNECT proxy here), the
//! address policy still refuses a target before the proxy hears of it, and proxy variables
//! in the environment are never used. Also: the whole set-up a bank asks for, mutual TLS,
//! OAuth2 and a fixed egress at once, and a test event through it.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::connect_proxy::ConnectProxy;
use crate::helpers::wait_view;
use crate::helpers::{
    PLATFORM_KEY, TestServer, config, database_url, free_port, spawn_eventgate, strict_config,
    wait_ready,
};
use crate::pki::TestCa;
use crate::receiver::{Receiver, Reply};
use crate::tls_receiver::TlsReceiver;
use crate::token_endpoint::TokenEndpoint;
use crate::webhooks::{create_webhook, verify, webhook_server_args};

fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned()
}

#[sqlx::test]
async fn a_bank_endpoint_with_mutual_tls_oauth2_and_a_fixed_egress(pool: PgPool) {
    let proxy = ConnectProxy::start().await;
    let mut args = webhook_server_args(&[]);
    args.extend(["--egress-proxy", proxy.url.as_str()]);
    let server = TestServer::start_with(pool, config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    let tokens = TokenEndpoint::start("acme-eventgate", "client-secret", 3600).await;
    let server_ca = TestCa::new("bank server CA");
    let client_ca = TestCa::new("bank client CA");
    let receiver =
        TlsReceiver::start(&server_ca.server(), &client_ca, |_, _| Reply::status(202)).await;
    let certificate = client_ca.client("eventgate-acme");
    let created = create_webhook(
        &server,
        &key,
        json!({
            "kind": "webhook",
            "url": receiver.url("/bank/events"),
            "tls": {"ca_pem": server_ca.pem(), "client_cert_pem": certificate.cert_pem,
                    "client_key_pem": certificate.key_pem},
            "oauth2": {"token_url": tokens.url, "client_id": "acme-eventgate",
                       "client_secret": "client-secret", "scope": "events"},
            "headers": {"X-Api-Key": "gateway-key"},
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();

    server.create_portfolio("acme", "P1").await;
    let requests = receiver
        .receiver
        .wait_until("the delivery", |r| !r.is_empty())
        .await;
    let delivered = &requests[0];
    assert!(verify(delivered, &secret));
    assert_eq!(delivered.header("authorization"), "Bearer tok-1");
    assert_eq!(delivered.header("x-api-key"), "gateway-key");
    assert_eq!(delivered.json()["subject"], "portfolios");

    let receiver_port = port_of(&receiver.base);
    assert!(
        proxy
            .connected_to()
            .contains(&format!("127.0.0.1:{receiver_port}")),
        "the delivery went through the proxy: {:?}",
        proxy.heads()
    );
    let token_port = port_of(&tokens.url);
    assert!(
        proxy.forwarded().iter().any(
            |line| line.starts_with(&format!("POST http://127.0.0.1:{token_port}/oauth/token"))
        ),
        "the token request went through the proxy: {:?}",
        proxy.heads()
    );

    // The test event takes the same path, and answers with the attempt.
    let tested = server
        .post(&format!("/destinations/{id}/test"), &key, &json!({}))
        .await;
    assert_eq!(tested.status(), StatusCode::OK);
    let tested: Value = tested.json().await.unwrap();
    assert_eq!(tested["succeeded"], true, "{tested}");
    assert_eq!(tested["response_status"], 202);
    assert!(tested["duration_ms"].is_u64());
    let requests = receiver
        .receiver
        .wait_until("the test event", |r| r.len() >= 2)
        .await;
    let test = &requests[1];
    assert_eq!(
        test.header("webhook-id"),
        tested["message_id"].as_str().unwrap()
    );
    assert!(verify(test, &secret), "signed like any delivery");
    assert_eq!(test.json()["subject"], "destinations");
    assert_eq!(test.json()["action"], "test");
    // The test send runs in the API process with a token source of its own.
    assert_eq!(test.header("authorization"), "Bearer tok-2");
    let connects = proxy.connected_to();
    assert!(
        connects.len() >= 2,
        "the test event went through the proxy too: {connects:?}"
    );
}

#[sqlx::test]
async fn the_address_policy_refuses_a_target_before_the_proxy_hears_of_it(pool: PgPool) {
    // One server (relay off) may save a destination on 127.0.0.2; the delivering server's
    // operator allows 127.0.0.1 only, as after a narrowed allowlist.
    let saving = TestServer::start_with(
        pool.clone(),
        config(&["--relay", "false", "--destination-allow", "127.0.0.2"]),
    )
    .await;
    let key = saving.tenant_with_key("acme").await;
    let created = create_webhook(
        &saving,
        &key,
        json!({"kind": "webhook", "url": "http://127.0.0.2:9/hook"}),
    )
    .await;
    let proxy = ConnectProxy::start().await;
    let delivering = TestServer::start_with(
        pool,
        strict_config(&[
            "--destination-allow",
            "127.0.0.1",
            "--egress-proxy",
            proxy.url.as_str(),
            "--webhook-retry-delays-secs",
            "1,1",
        ]),
    )
    .await;
    delivering.create_portfolio("acme", "P1").await;
    let shown = wait_view(
        &delivering,
        &key,
        created["id"].as_str().unwrap(),
        "the refusal",
        |v| v["status"]["last_error"].is_string(),
    )
    .await;
    let error = shown["status"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.2 is refused by the address policy"),
        "{error}"
    );
    assert!(
        proxy.heads().is_empty(),
        "the proxy heard nothing: {:?}",
        proxy.heads()
    );
}

#[sqlx::test]
async fn proxy_variables_in_the_environment_are_never_used(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let url = database_url(&connect);
    drop(options);
    let proxy = ConnectProxy::start().await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let port = free_port();
    let mut env: Vec<(&str, &str)> = vec![("EVENTGATE_WEBHOOK_RETRY_DELAYS_SECS", "1,1")];
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        env.push((name, proxy.url.as_str()));
    }
    let _server = spawn_eventgate(&url, port, &env);
    let base = format!("http://127.0.0.1:{port}");
    eventgate::tls::install_crypto_provider();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    wait_ready(&http, &base).await;
    let post = |path: &str, key: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let created = post(
        "/platform/tenants",
        PLATFORM_KEY,
        json!({"id": "acme", "name": "Acme"}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let client: Value = post(
        "/platform/tenants/acme/keys",
        PLATFORM_KEY,
        json!({"role": "client"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = client["key"].as_str().unwrap();
    let destination = post(
        "/destinations",
        key,
        json!({"kind": "webhook", "url": receiver.url("/hook")}),
    )
    .await
    .unwrap();
    assert_eq!(destination.status(), StatusCode::CREATED);
    let published = post(
        "/platform/events",
        PLATFORM_KEY,
        json!({"tenant": "acme", "subject": "portfolios", "action": "creation",
               "data": {"id": "P1", "external_id": "e1", "owned_by_user_id": "U1"}}),
    )
    .await
    .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    receiver.wait_until("the delivery", |r| !r.is_empty()).await;
    assert!(
        proxy.heads().is_empty(),
        "nothing went through the environment's proxy: {:?}",
        proxy.heads()
    );
}

//! Tenants, API keys, problem+json on bad input, health, request ids.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};

#[sqlx::test]
async fn missing_or_unknown_key_is_401_problem(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let body = json!({"id": "acme", "name": "Acme"});
    let no_key = server
        .http
        .post(server.url("/platform/tenants"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    assert_problem(no_key, StatusCode::UNAUTHORIZED).await;
    let unknown = server.post("/platform/tenants", "egk_nope", &body).await;
    assert_problem(unknown, StatusCode::UNAUTHORIZED).await;
    let wrong_scheme = server
        .http
        .post(server.url("/platform/tenants"))
        .header("authorization", format!("Basic {PLATFORM_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(wrong_scheme, StatusCode::UNAUTHORIZED).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing was created");
}

#[sqlx::test]
async fn client_key_on_platform_route_is_403(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let client_key = server.tenant_with_key("acme").await;
    let response = server
        .post(
            "/platform/tenants",
            &client_key,
            &json!({"id": "evil", "name": "Evil"}),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN).await;
}

#[sqlx::test]
async fn revoked_key_stops_working_at_once(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let platform2 = server.new_key("acme", "platform").await;
    let key = platform2["key"].as_str().unwrap();
    assert_eq!(platform2["role"], "platform");
    assert_eq!(platform2["tenant"], Value::Null);
    let before = server
        .post("/platform/tenants", key, &json!({"id": "b1", "name": "B"}))
        .await;
    assert_eq!(before.status(), StatusCode::CREATED);

    let id = platform2["id"].as_str().unwrap();
    let revoke = server
        .http
        .delete(server.url(&format!("/platform/keys/{id}")))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);

    let after = server
        .post("/platform/tenants", key, &json!({"id": "b2", "name": "B"}))
        .await;
    assert_problem(after, StatusCode::UNAUTHORIZED).await;
    let again = server
        .http
        .delete(server.url(&format!("/platform/keys/{id}")))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(again, StatusCode::NOT_FOUND).await;
}

#[sqlx::test]
async fn keys_are_stored_only_as_hashes(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    assert!(key.starts_with("egk_") && key.len() > 40, "{key}");
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(&server.pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h.len() == 32));
    assert!(!stored.iter().any(|h| h == key.as_bytes()));
}

#[sqlx::test]
async fn tenant_creation_and_duplicates(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let body = json!({"id": "acme", "name": "Acme Bank"});
    let created = server.post("/platform/tenants", PLATFORM_KEY, &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let tenant: Value = created.json().await.unwrap();
    assert_eq!(tenant["id"], "acme");
    assert_eq!(tenant["name"], "Acme Bank");
    assert!(tenant["created"].is_string());

    let duplicate = server.post("/platform/tenants", PLATFORM_KEY, &body).await;
    assert_problem(duplicate, StatusCode::CONFLICT).await;

    let bad_id = server
        .post(
            "/platform/tenants",
            PLATFORM_KEY,
            &json!({"id": "Not Valid!", "name": "x"}),
        )
        .await;
    let problem = assert_problem(bad_id, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("tenant id"),
        "{problem}"
    );

    let unknown_tenant_key = server
        .post(
            "/platform/tenants/ghost/keys",
            PLATFORM_KEY,
            &json!({"role": "client"}),
        )
        .await;
    assert_problem(unknown_tenant_key, StatusCode::NOT_FOUND).await;
}

#[sqlx::test]
async fn malformed_requests_get_clear_problems_and_change_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let send_raw = |body: &'static str, content_type: &'static str| {
        server
            .http
            .post(server.url("/platform/tenants"))
            .bearer_auth(PLATFORM_KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let syntax = send_raw("{\"id\": ", "application/json").await.unwrap();
    assert_problem(syntax, StatusCode::BAD_REQUEST).await;
    let wrong_type = send_raw("{\"id\":\"a\",\"name\":\"b\"}", "text/plain")
        .await
        .unwrap();
    assert_problem(wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let unknown_field = send_raw(
        "{\"id\":\"a\",\"name\":\"b\",\"extra\":1}",
        "application/json",
    )
    .await
    .unwrap();
    assert_problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY).await;
    let missing_field = send_raw("{\"id\":\"a\"}", "application/json")
        .await
        .unwrap();
    assert_problem(missing_field, StatusCode::UNPROCESSABLE_ENTITY).await;

    let bad_role = server
        .post(
            "/platform/tenants/acme/keys",
            PLATFORM_KEY,
            &json!({"role": "admin"}),
        )
        .await;
    assert_problem(bad_role, StatusCode::UNPROCESSABLE_ENTITY).await;

    let bad_uuid = server
        .http
        .delete(server.url("/platform/keys/not-a-uuid"))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_problem(bad_uuid, StatusCode::BAD_REQUEST).await;

    let no_route = server.get("/nothing/here", PLATFORM_KEY).await;
    assert_problem(no_route, StatusCode::NOT_FOUND).await;
    let wrong_method = server
        .http
        .put(server.url("/platform/tenants"))
        .send()
        .await
        .unwrap();
    assert_problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test]
async fn oversized_body_is_413_problem(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--body-limit-bytes", "1024"])).await;
    let big_name = "x".repeat(4096);
    let response = server
        .post(
            "/platform/tenants",
            PLATFORM_KEY,
            &json!({"id": "big", "name": big_name}),
        )
        .await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[sqlx::test]
async fn healthz_and_readyz_reflect_process_and_database(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // With the pool closed the database is unreachable from the server's point of view.
    server.pool.close().await;
    let not_ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_problem(not_ready, StatusCode::SERVICE_UNAVAILABLE).await;
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "liveness does not need the database"
    );
}

#[sqlx::test]
async fn request_id_is_generated_or_echoed(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let generated = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    let echoed = server
        .http
        .get(server.url("/nothing"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-42");
}

#[sqlx::test]
async fn requests_past_the_timeout_get_a_503_problem(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--request-timeout-secs", "1"])).await;
    let key = server.tenant_with_key("acme").await;
    // A long-poll that would wait 5 s outlives the 1 s limit.
    let response = server.get("/events/?wait=5", &key).await;
    let problem = assert_problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/timeout");
}

#[sqlx::test]
async fn database_outage_is_503_and_the_server_recovers_by_itself(
    _options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    // The server reaches PostgreSQL through a proxy that can cut it off.
    let target: &'static str =
        Box::leak(format!("{}:{}", connect.get_host(), connect.get_port()).into_boxed_str());
    let proxy = crate::proxy::Proxy::start(target).await;
    let through_proxy = connect.clone().host("127.0.0.1").port(proxy.port);
    let pool = eventgate::database::pool_options(5)
        .connect_with(through_proxy)
        .await
        .unwrap();
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;

    proxy.cut().await;
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_problem(ready, StatusCode::SERVICE_UNAVAILABLE).await;
    let feed = server.get("/events/", &key).await;
    assert_problem(feed, StatusCode::SERVICE_UNAVAILABLE).await;
    let health = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "the process itself is fine"
    );

    proxy.restore();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(server.get("/events/", &key).await.status(), StatusCode::OK);
}

/// PostgreSQL cannot store NUL in text; found by schemathesis as a 500 on
/// `GET /destinations?tenant=%00`. Any text a client sends with one is refused (the
/// documented patterns exclude it) and changes nothing.
#[sqlx::test]
async fn nul_characters_in_text_are_refused_not_a_500(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let response = server.get("/destinations?tenant=a%00b", PLATFORM_KEY).await;
    assert_problem(response, StatusCode::BAD_REQUEST).await;

    let response = server
        .post(
            "/platform/tenants",
            PLATFORM_KEY,
            &json!({"id": "acme", "name": "Acme\u{0}Bank"}),
        )
        .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(server.count("SELECT count(*) FROM tenants").await, 0);

    // A publish's tenant is text the database would refuse inside the write's batch:
    // refused before it, naming the field, with nothing written.
    let response = server
        .post(
            "/platform/events",
            PLATFORM_KEY,
            &json!({"tenant": "ac\u{0}me", "subject": "portfolios", "action": "creation",
                    "data": {"id": "P1", "external_id": "e", "owned_by_user_id": "U1"}}),
        )
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem.to_string().contains("tenant"),
        "the problem names the field: {problem}"
    );
    assert_eq!(server.count("SELECT count(*) FROM outbox").await, 0);
}

//! The console: its page and files as served (content types, cache headers, the strict
//! security headers), and the API it needed: `GET /me`, the platform's tenant and key
//! lists, `GET /events/recent`, `since` on the feed, `GET /events/{id}/deliveries`, the
//! headers each webhook attempt sent, and the catalogue's example envelopes.

use std::collections::HashSet;

use futures::future::join_all;
use regex_lite::Regex;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};
use crate::receiver::{Receiver, Reply};
use crate::webhooks::{attempts_once, create_webhook, webhook_server_args};

fn header(response: &reqwest::Response, name: impl reqwest::header::AsHeaderName) -> &str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn assert_protected(response: &reqwest::Response) {
    let policy = header(response, "content-security-policy");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(
        !policy.contains("unsafe"),
        "no unsafe-inline or unsafe-eval: {policy}"
    );
    assert_eq!(header(response, "x-frame-options"), "DENY");
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
}

async fn get_plain(server: &TestServer, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).send().await.unwrap()
}

#[sqlx::test]
async fn the_console_page_and_every_file_it_loads_are_served_with_strict_headers(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = no_redirects
        .get(server.url("/console"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, LOCATION), "/console/");

    let page = get_plain(&server, "/console/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    assert_protected(&page);
    let html = page.text().await.unwrap();
    assert!(!html.contains("%VERSION%"), "the version is filled in");
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "nothing inline"
    );

    // Walk everything the page loads: its tags, then each module's imports.
    let version = eventgate::console::version();
    let prefix = format!("/console/v/{version}/");
    let referenced = Regex::new(r#"(?:href|src)="(/console/v/[^"]+)""#).unwrap();
    let imports = Regex::new(r#"(?:from|import)\s+"(\./[^"]+|\.\./[^"]+)""#).unwrap();
    let mut queue: Vec<String> = referenced
        .captures_iter(&html)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(
        queue.iter().any(|p| p.ends_with("/js/main.js")),
        "{queue:?}"
    );
    let mut seen = HashSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        assert!(
            path.starts_with(&prefix),
            "{path} is under this build's version"
        );
        let file = get_plain(&server, &path).await;
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&file, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_protected(&file);
        let content_type = header(&file, CONTENT_TYPE).to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file type {other:?}"),
        };
        assert_eq!(content_type, expected, "{path}");
        if path.ends_with(".js") {
            let text = file.text().await.unwrap();
            assert!(
                !text.contains("innerHTML"),
                "{path}: the DOM is built, never parsed"
            );
            let dir = path.rsplit_once('/').unwrap().0.to_owned();
            for import in imports.captures_iter(&text) {
                let mut parts: Vec<&str> = dir.split('/').collect();
                for segment in import[1].split('/') {
                    match segment {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        name => parts.push(name),
                    }
                }
                queue.push(parts.join("/"));
            }
        }
    }
    assert!(
        seen.len() >= 10,
        "the page's modules were followed: {seen:?}"
    );
}

#[sqlx::test]
async fn console_files_of_another_build_or_name_are_problem_404s(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let version = eventgate::console::version();
    for path in [
        "/console/v/0000000000000000/js/main.js".to_owned(),
        format!("/console/v/{version}/js/nothing-here.js"),
        format!("/console/v/{version}/index.html"),
    ] {
        let response = get_plain(&server, &path).await;
        assert_protected(&response);
        assert_problem(response, StatusCode::NOT_FOUND).await;
    }
}

#[sqlx::test]
async fn me_names_the_key_its_role_and_tenant(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let me: Value = server.get("/me", &key).await.json().await.unwrap();
    assert_eq!(me["role"], "client");
    assert_eq!(me["tenant"], "acme");
    let keys: Value = server
        .get("/platform/tenants/acme/keys", PLATFORM_KEY)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["key_id"], keys["data"][0]["id"]);

    let platform: Value = server.get("/me", PLATFORM_KEY).await.json().await.unwrap();
    assert_eq!(platform["role"], "platform");
    assert_eq!(platform["tenant"], Value::Null);

    let anonymous = get_plain(&server, "/me").await;
    assert_problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

#[sqlx::test]
async fn the_platform_lists_tenants_by_id_a_page_at_a_time(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let mut client_key = String::new();
    for id in ["gamma", "alpha", "beta"] {
        client_key = server.tenant_with_key(id).await;
    }
    let first: Value = server
        .get("/platform/tenants?limit=2", PLATFORM_KEY)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha", "beta"]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["data"][0]["name"], "Tenant alpha");
    let second: Value = server
        .get(
            &format!(
                "/platform/tenants?limit=2&after={}",
                first["next_cursor"].as_str().unwrap()
            ),
            PLATFORM_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"][0]["id"], "gamma");
    assert_eq!(second["has_more"], false);
    assert_eq!(second["next_cursor"], "gamma");

    assert_problem(
        server.get("/platform/tenants", &client_key).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_problem(
        server.get("/platform/tenants?limit=0", PLATFORM_KEY).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[sqlx::test]
async fn the_platform_lists_a_tenants_keys_without_secrets_revoked_ones_included(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let second = server.new_key("acme", "client").await;
    server.tenant_with_key("other").await;
    let revoked = server
        .http
        .delete(server.url(&format!(
            "/platform/keys/{}",
            second["id"].as_str().unwrap()
        )))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    let listed: Value = server
        .get("/platform/tenants/acme/keys", PLATFORM_KEY)
        .await
        .json()
        .await
        .unwrap();
    let keys = listed["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "only acme's keys: {listed}");
    assert!(keys[0]["revoked_at"].is_null());
    assert_eq!(keys[1]["id"], second["id"]);
    assert!(keys[1]["revoked_at"].is_string());
    for key in keys {
        assert_eq!(key["role"], "client");
        let fields: HashSet<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            HashSet::from(["id", "role", "created", "expires_at", "revoked_at"]),
            "no secret and no hash"
        );
    }
    let text = listed.to_string();
    assert!(!text.contains(second["key"].as_str().unwrap()));

    let paged: Value = server
        .get(
            &format!(
                "/platform/tenants/acme/keys?limit=1&after={}",
                keys[0]["id"].as_str().unwrap()
            ),
            PLATFORM_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(paged["data"][0]["id"], second["id"]);

    assert_problem(
        server
            .get("/platform/tenants/nobody/keys", PLATFORM_KEY)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        server
            .get("/platform/tenants/acme/keys?after=not-a-uuid", PLATFORM_KEY)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn published_ids(server: &TestServer, tenant: &str, portfolios: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for id in portfolios {
        let response = server
            .publish(
                tenant,
                "portfolios.creation",
                json!({"id": id, "external_id": "x", "owned_by_user_id": "U1"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let event: Value = response.json().await.unwrap();
        out.push(event["id"].as_str().unwrap().to_owned());
    }
    out
}

#[sqlx::test]
async fn recent_events_come_newest_first_a_page_at_a_time_filtered_by_type(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let empty: Value = server
        .get("/events/recent", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["next_cursor"], Value::Null);
    assert_eq!(empty["has_more"], false);

    let created = published_ids(&server, "acme", &["P1", "P2", "P3"]).await;
    let status = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "x", "value": "ACTIVE"}),
        )
        .await;
    assert_eq!(status.status(), StatusCode::CREATED);
    let status_id = status.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    server.settle().await;

    let first: Value = server
        .get("/events/recent?limit=2", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&first), [status_id.clone(), created[2].clone()]);
    assert_eq!(first["has_more"], true);
    let older: Value = server
        .get(
            &format!(
                "/events/recent?limit=2&before={}",
                first["next_cursor"].as_str().unwrap()
            ),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&older), [created[1].clone(), created[0].clone()]);
    assert_eq!(older["has_more"], false);

    let creations: Value = server
        .get("/events/recent?type=portfolios.creation", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        ids(&creations),
        [created[2].clone(), created[1].clone(), created[0].clone()]
    );

    for bad in [
        "/events/recent?before=nope",
        "/events/recent?wait=5",
        "/events/recent?after=x",
        "/events/recent?type=no.such",
    ] {
        assert_problem(server.get(bad, &key).await, StatusCode::BAD_REQUEST).await;
    }
    assert_problem(
        server.get("/events/recent", PLATFORM_KEY).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

/// Many tasks publish while a reader looks back once and then follows from the cursor it
/// was given: every event is seen exactly once, in one or the other.
#[sqlx::test]
async fn the_follow_cursor_of_a_look_back_misses_nothing_committed_meanwhile(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    const TASKS: usize = 8;
    const EACH: usize = 15;
    let publishers = (0..TASKS).map(|task| {
        let server = &server;
        async move {
            let mut ids = Vec::new();
            for n in 0..EACH {
                let portfolio = format!("P{task}-{n}");
                ids.extend(published_ids(server, "acme", &[portfolio.as_str()]).await);
            }
            ids
        }
    });
    let reader = async {
        // Look back while the publishers are busy.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let page: Value = server
            .get("/events/recent?limit=1000", &key)
            .await
            .json()
            .await
            .unwrap();
        page
    };
    let (published, look_back) = tokio::join!(join_all(publishers), reader);
    let published: HashSet<String> = published.into_iter().flatten().collect();
    assert_eq!(published.len(), TASKS * EACH);
    server.settle().await;

    let seen_then = ids(&look_back);
    let mut followed = Vec::new();
    let mut cursor = look_back["follow_cursor"].as_str().unwrap().to_owned();
    loop {
        let page: Value = server
            .get(&format!("/events/?after={cursor}&limit=1000"), &key)
            .await
            .json()
            .await
            .unwrap();
        followed.extend(ids(&page));
        cursor = page["next_cursor"].as_str().unwrap().to_owned();
        if page["data"].as_array().unwrap().is_empty() {
            break;
        }
    }
    let then: HashSet<String> = seen_then.iter().cloned().collect();
    let after: HashSet<String> = followed.iter().cloned().collect();
    assert_eq!(
        then.len() + after.len(),
        seen_then.len() + followed.len(),
        "no event twice"
    );
    assert!(then.is_disjoint(&after), "nothing in both");
    let all: HashSet<String> = then.union(&after).cloned().collect();
    assert_eq!(
        all,
        published,
        "every event once: {} looked back, {} followed",
        then.len(),
        after.len()
    );
}

#[sqlx::test]
async fn since_starts_the_feed_at_the_first_event_created_from_then(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let ids_published = published_ids(&server, "acme", &["P1", "P2", "P3"]).await;
    server.settle().await;
    let second: Value = server
        .get(&format!("/events/{}", ids_published[1]), &key)
        .await
        .json()
        .await
        .unwrap();
    let since = second["created"].as_str().unwrap();
    let from: Value = server
        .http
        .get(server.url("/events/"))
        .query(&[("since", since)])
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&from), ids_published[1..]);

    // From a time still to come: nothing yet, and a cursor that gets what comes.
    let later: Value = server
        .get("/events/?since=2999-01-01T00:00:00Z", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(later["data"], json!([]));
    let next = published_ids(&server, "acme", &["P4"]).await;
    server.settle().await;
    let followed: Value = server
        .get(
            &format!("/events/?after={}", later["next_cursor"].as_str().unwrap()),
            &key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&followed), next);

    let cursor = from["next_cursor"].as_str().unwrap();
    for both in [
        format!("/events/?since={}&after={cursor}", urlencode(since)),
        format!("/events/?after={cursor}&since={}", urlencode(since)),
    ] {
        assert_problem(server.get(&both, &key).await, StatusCode::CONFLICT).await;
    }
    for bad in [
        "/events/?since=yesterday".to_owned(),
        "/events/?since=2026-01-01T00:00:00Z&since=2026-01-01T00:00:00Z".to_owned(),
        "/events/?before=x".to_owned(),
    ] {
        assert_problem(server.get(&bad, &key).await, StatusCode::BAD_REQUEST).await;
    }
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[sqlx::test]
async fn where_an_event_went_shows_each_destination_and_the_headers_each_attempt_sent(
    pool: PgPool,
) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let other_key = server.tenant_with_key("other").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let webhook = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "headers": {"X-Api-Key": "very-secret"}}),
    )
    .await;
    // A bus destination that never moves (disabled), and one whose types do not take it.
    let waiting = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "t", "enabled": false}),
        )
        .await;
    assert_eq!(waiting.status(), StatusCode::CREATED);
    let waiting: Value = waiting.json().await.unwrap();
    let elsewhere = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "mqtt", "url": "mqtt://127.0.0.1:1883", "topic": "u", "enabled": false, "types": ["users.*"]}),
        )
        .await;
    assert_eq!(elsewhere.status(), StatusCode::CREATED);

    let event = published_ids(&server, "acme", &["P1"]).await.remove(0);
    let webhook_id = webhook["id"].as_str().unwrap();
    let got = receiver
        .wait_until("the delivery", |requests| !requests.is_empty())
        .await
        .remove(0);
    let attempts = attempts_once(
        &server,
        &key,
        &format!("/destinations/{webhook_id}/attempts"),
        1,
    )
    .await;
    let sent = &attempts["data"][0]["request_headers"];
    assert_eq!(sent["webhook-signature"], got.header("webhook-signature"));
    assert_eq!(sent["webhook-timestamp"], got.header("webhook-timestamp"));
    assert_eq!(sent["webhook-id"], event);
    assert_eq!(sent["content-type"], "application/json");
    assert_eq!(
        sent["x-api-key"], "***",
        "static header values are not shown"
    );
    assert_eq!(got.header("x-api-key"), "very-secret");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let where_it_went = loop {
        let answer: Value = server
            .get(&format!("/events/{event}/deliveries"), &key)
            .await
            .json()
            .await
            .unwrap();
        if answer["destinations"][0]["state"] == "delivered" {
            break answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never delivered: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(where_it_went["type"], "portfolios.creation");
    let destinations = where_it_went["destinations"].as_array().unwrap();
    assert_eq!(
        destinations.len(),
        2,
        "the users-only destination does not take it"
    );
    assert_eq!(destinations[0]["destination"], webhook["id"]);
    assert_eq!(destinations[0]["attempt_count"], 1);
    assert_eq!(destinations[0]["attempts"][0]["request_headers"], *sent);
    assert_eq!(destinations[1]["destination"], waiting["id"]);
    assert_eq!(destinations[1]["state"], "waiting");
    assert_eq!(destinations[1]["enabled"], false);
    assert_eq!(destinations[1]["attempts"], json!([]));

    assert_problem(
        server
            .get(&format!("/events/{event}/deliveries"), &other_key)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        server.get("/events/not-a-uuid/deliveries", &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[sqlx::test]
async fn every_catalogue_type_carries_an_example_envelope_of_its_type(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let catalogue: Value = get_plain(&server, "/catalogue").await.json().await.unwrap();
    for entry in catalogue["types"].as_array().unwrap() {
        let example = &entry["example"];
        assert_eq!(example["subject"], entry["subject"], "{entry}");
        assert_eq!(example["action"], entry["action"], "{entry}");
        assert_eq!(example["version"], catalogue["version"]);
        assert!(example["data"]["id"].is_string(), "{example}");
        for field in entry["schema"]["required"].as_array().into_iter().flatten() {
            let field = field.as_str().unwrap();
            assert!(
                !example["data"][field].is_null(),
                "{}: {field} missing",
                entry["type"]
            );
        }
    }
}

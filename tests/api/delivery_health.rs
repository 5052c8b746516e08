//! Telling someone when delivery breaks: a destination failing (a webhook answering 500,
//! an AMQP exchange that does not exist), recovering, and disabled (by a key, and by
//! eventgate on a 410) puts a `destinations.*` event in the tenant's feed, pushes it like
//! any event, and lists it in the platform's `GET /platform/delivery-events`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};
use crate::receiver::{Receiver, Reply};
use crate::webhooks::create_webhook;

fn server_args() -> Vec<&'static str> {
    vec![
        "--allow-private-destinations",
        "true",
        "--webhook-retry-delays-secs",
        "1,1,1,1,1,1",
        "--destination-failing-after-secs",
        "0",
    ]
}

/// The tenant's `destinations.*` events once `done` holds for them.
async fn health_events(
    server: &TestServer,
    key: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page: Value = server
            .get("/events/?type=destinations.*&limit=1000", key)
            .await
            .json()
            .await
            .unwrap();
        let events = page["data"].as_array().unwrap().clone();
        if done(&events) {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {events:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn about<'a>(events: &'a [Value], action: &str, id: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["action"] == action && e["data"]["id"] == id)
}

#[sqlx::test]
async fn failing_and_recovery_are_reported_to_the_tenant_and_the_platform(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&server_args())).await;
    let key = server.tenant_with_key("acme").await;
    // Three failures, then the endpoint works again.
    let receiver = Receiver::start(|_, seen| Reply::status(if seen < 3 { 500 } else { 200 })).await;
    let watched = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "types": ["portfolios.*"]}),
    )
    .await;
    let watched_id = watched["id"].as_str().unwrap().to_owned();
    let listener = Receiver::start(|_, _| Reply::status(200)).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": listener.url("/health"), "format": "entity",
               "entities": ["Destination"]}),
    )
    .await;
    let broken = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "amqp", "url": "amqp://guest:guest@127.0.0.1:5672/%2f",
                    "exchange": format!("no-such-exchange-{watched_id}")}),
        )
        .await;
    assert_eq!(broken.status(), StatusCode::CREATED);
    let broken: Value = broken.json().await.unwrap();
    let broken_id = broken["id"].as_str().unwrap().to_owned();

    server.create_portfolio("acme", "P1").await;
    let events = health_events(&server, &key, "failing, then recovered", |events| {
        about(events, "recovered", &watched_id).is_some()
            && about(events, "failing", &broken_id).is_some()
    })
    .await;
    let failing = about(&events, "failing", &watched_id).expect("the webhook's failure");
    assert_eq!(failing["subject"], "destinations");
    assert_eq!(failing["data"]["kind"], "webhook");
    assert!(
        failing["data"]["error"].as_str().unwrap().contains("500"),
        "{failing}"
    );
    let recovered = about(&events, "recovered", &watched_id).unwrap();
    assert_eq!(
        recovered["data"]["failing_since"],
        failing["data"]["failing_since"]
    );
    let position = |e: &Value| events.iter().position(|x| x["id"] == e["id"]).unwrap();
    assert!(position(failing) < position(recovered));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["data"]["id"] == watched_id.as_str())
            .count(),
        2,
        "one report per transition: {events:?}"
    );
    let amqp = about(&events, "failing", &broken_id).unwrap();
    assert_eq!(amqp["data"]["kind"], "amqp");
    assert!(
        amqp["data"]["error"].as_str().unwrap().contains("AMQP"),
        "{amqp}"
    );

    // Pushed like any event: the entity format names the destination.
    let pushed = listener
        .wait_until("the health events pushed", |r| {
            r.iter()
                .filter(|r| r.json()["entity"] == "Destination")
                .count()
                >= 2
        })
        .await;
    let change = pushed
        .iter()
        .find(|r| r.json()["entity_id"] == watched_id.as_str())
        .unwrap()
        .json();
    assert_eq!(change["event"], "Updated");
    assert!(
        change["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/destinations/{watched_id}"))
    );

    // The platform sees every tenant's, each with its tenant.
    let page: Value = server
        .get("/platform/delivery-events", PLATFORM_KEY)
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&Value> = page["data"].as_array().unwrap().iter().collect();
    for event in [failing, recovered, amqp] {
        assert!(
            listed
                .iter()
                .any(|l| l["tenant"] == "acme" && l["event"] == *event),
            "{event} in {page}"
        );
    }
    let next = page["next_cursor"].as_str().unwrap();
    let rest: Value = server
        .get(
            &format!("/platform/delivery-events?after={next}"),
            PLATFORM_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        rest["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !listed.contains(&l)),
        "a page after the cursor repeats nothing"
    );
    let forbidden = server.get("/platform/delivery-events", &key).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn disabling_is_reported_with_who_did_it(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&server_args())).await;
    let key = server.tenant_with_key("acme").await;
    let receiver =
        Receiver::start(|path, _| Reply::status(if path == "/gone" { 410 } else { 200 })).await;
    let by_client = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/ok")}),
    )
    .await;
    let by_platform = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/ok2")}),
    )
    .await;
    let gone = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/gone"),
        "types": ["portfolios.*"]}),
    )
    .await;
    let id = |d: &Value| d["id"].as_str().unwrap().to_owned();

    let patched = server
        .patch(
            &format!("/destinations/{}", id(&by_client)),
            &key,
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    let patched = server
        .patch(
            &format!("/destinations/{}", id(&by_platform)),
            PLATFORM_KEY,
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(patched.status(), StatusCode::OK);
    server.create_portfolio("acme", "P1").await;

    let events = health_events(&server, &key, "three disablings", |events| {
        events.iter().filter(|e| e["action"] == "disabled").count() >= 3
    })
    .await;
    let disabled = |d: &Value| about(&events, "disabled", &id(d)).unwrap().clone();
    assert_eq!(disabled(&by_client)["data"]["by"], "client");
    assert_eq!(disabled(&by_platform)["data"]["by"], "platform");
    let system = disabled(&gone);
    assert_eq!(system["data"]["by"], "system");
    assert_eq!(system["data"]["reason"], "the endpoint answered 410 Gone");
    assert_eq!(
        events.iter().filter(|e| e["action"] == "disabled").count(),
        3
    );

    // eventgate emits these; the platform cannot publish them.
    let forged = server
        .post(
            "/platform/events",
            PLATFORM_KEY,
            &json!({"tenant": "acme", "subject": "destinations", "action": "disabled",
                    "data": {"id": id(&gone), "kind": "webhook", "by": "system"}}),
        )
        .await;
    assert_problem(forged, StatusCode::UNPROCESSABLE_ENTITY).await;
}

//! `"ordering": "entity"`: a receiver that fails a third of its requests at random checks
//! that each entity's events arrive one at a time, in feed order, a later one only after
//! the earlier one was taken, in the envelope format and, coalescing, in the entity format.

use std::collections::HashMap;

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestServer, acme_event_ids, config};
use crate::receiver::{Receiver, Reply, Request};
use crate::webhooks::create_webhook;

const PORTFOLIOS: usize = 5;
const ROUNDS: usize = 10;

/// Fails about a third of the requests.
fn flaky() -> Reply {
    let roll = getrandom::u32().unwrap() % 3;
    Reply::status(if roll == 0 { 503 } else { 200 })
}

/// For each entity, its requests in arrival order: (feed index of the event, accepted).
fn per_entity(
    requests: &[Request],
    entity_of: impl Fn(&Request) -> (String, String),
    feed: &[String],
) -> HashMap<String, Vec<(usize, bool)>> {
    let mut seen: HashMap<String, Vec<(usize, bool)>> = HashMap::new();
    for request in requests {
        let (entity, event_id) = entity_of(request);
        let index = feed
            .iter()
            .position(|id| *id == event_id)
            .expect("a delivered event is in the feed");
        seen.entry(entity)
            .or_default()
            .push((index, request.accepted()));
    }
    seen
}

/// One at a time, in feed order: each request is for the same event as the one before (a
/// retry after a refusal) or for a later one after the one before was taken.
fn assert_in_order(entity: &str, sequence: &[(usize, bool)]) {
    for pair in sequence.windows(2) {
        let ((before, taken), (after, _)) = (pair[0], pair[1]);
        if after == before {
            assert!(
                !taken,
                "{entity}: event {before} sent again after it was taken"
            );
        } else {
            assert!(
                after > before,
                "{entity}: event {after} after {before}: {sequence:?}"
            );
            assert!(
                taken,
                "{entity}: event {after} sent while {before} was not taken: {sequence:?}"
            );
        }
    }
}

#[sqlx::test]
async fn each_entity_is_delivered_in_feed_order_while_the_endpoint_fails_at_random(pool: PgPool) {
    let retries = ["0"; 40].join(",");
    let server = TestServer::start_with(
        pool,
        config(&[
            "--allow-private-destinations",
            "true",
            "--webhook-retry-delays-secs",
            &retries,
        ]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| flaky()).await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/envelope"), "ordering": "entity"}),
    )
    .await;
    create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/entity"), "ordering": "entity",
               "format": "entity"}),
    )
    .await;

    for p in 0..PORTFOLIOS {
        server.create_portfolio("acme", &format!("P{p}")).await;
    }
    for round in 0..ROUNDS {
        for p in 0..PORTFOLIOS {
            let value = if round % 2 == 0 {
                "ACTIVE"
            } else {
                "WAITING_FOR_FUNDS"
            };
            let response = server
                .publish(
                    "acme",
                    "portfolios.status-update",
                    json!({"id": format!("P{p}"), "external_id": "e", "value": value}),
                )
                .await;
            assert_eq!(response.status(), reqwest::StatusCode::CREATED);
        }
    }
    let total = PORTFOLIOS * (ROUNDS + 1);
    server.settle().await;
    let feed = acme_event_ids(&server.pool).await;
    assert_eq!(feed.len(), total);
    let last_of: HashMap<String, usize> = (0..PORTFOLIOS)
        .map(|p| {
            let id = format!("P{p}");
            // Every portfolio's last event is in the last round, in portfolio order.
            (id, total - PORTFOLIOS + p)
        })
        .collect();

    let requests = receiver
        .wait_until("every event taken in both formats", |requests| {
            let taken = |path: &str| {
                requests
                    .iter()
                    .filter(|r| r.path == path && r.accepted())
                    .count()
            };
            let last_taken = last_of.values().all(|index| {
                requests.iter().any(|r| {
                    r.path == "/entity" && r.accepted() && r.json()["event_id"] == feed[*index]
                })
            });
            taken("/envelope") >= total && last_taken
        })
        .await;

    let envelope: Vec<Request> = requests
        .iter()
        .filter(|r| r.path == "/envelope")
        .cloned()
        .collect();
    let sequences = per_entity(
        &envelope,
        |r| {
            let body = r.json();
            (
                body["data"]["id"].as_str().unwrap().to_owned(),
                body["id"].as_str().unwrap().to_owned(),
            )
        },
        &feed,
    );
    assert_eq!(sequences.len(), PORTFOLIOS);
    for (entity, sequence) in &sequences {
        assert_in_order(entity, sequence);
        let taken: Vec<usize> = sequence
            .iter()
            .filter(|(_, t)| *t)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(taken.len(), ROUNDS + 1, "{entity}: every event taken once");
    }
    assert!(
        envelope.iter().any(|r| !r.accepted()),
        "the endpoint did refuse some requests"
    );

    // The entity format coalesces rapid updates, inside the order.
    // Lifecycle messages (`Activated`) are about no portfolio.
    let entity: Vec<Request> = requests
        .iter()
        .filter(|r| r.path == "/entity" && r.json()["entity"] == "Portfolio")
        .cloned()
        .collect();
    let sequences = per_entity(
        &entity,
        |r| {
            let body = r.json();
            (
                body["entity_id"].as_str().unwrap().to_owned(),
                body["event_id"].as_str().unwrap().to_owned(),
            )
        },
        &feed,
    );
    assert_eq!(sequences.len(), PORTFOLIOS);
    for (entity, sequence) in &sequences {
        assert_in_order(entity, sequence);
    }
    for p in 0..PORTFOLIOS {
        let id = format!("P{p}");
        let first = entity
            .iter()
            .find(|r| r.json()["entity_id"] == id.as_str())
            .unwrap();
        assert_eq!(
            first.json()["event"],
            "Created",
            "{id}: the creation comes first"
        );
    }
}

//! A relay driver keeps its destination in memory between steps; a change made anywhere
//! (an operator's SQL, another replica's API) reaches it through `eventgate_destinations`
//! before the events published after the change. Each test fails if the driver went on
//! with the row it had: the first message received after the change would be the wrong
//! one.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::brokers::{AMQP_URL, AmqpQueue, Received, unique};
use crate::delivery::{replay_after_first_event, wait_caught_up};
use crate::helpers::{TestServer, config};

fn portfolio_id(message: &Received) -> String {
    serde_json::from_str::<Value>(&message.body).unwrap()["data"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn event_type(message: &Received) -> String {
    message
        .properties
        .kind()
        .as_ref()
        .unwrap()
        .as_str()
        .to_owned()
}

#[sqlx::test]
async fn types_changed_by_an_operators_sql_apply_to_the_next_event(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let key = server.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let id: Uuid = server
        .create_destination(
            &key,
            &json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange, "types": ["portfolios.creation"]}),
        )
        .await
        .parse()
        .unwrap();
    // The driver runs and holds the row it read.
    server.create_portfolio("acme", "P1").await;
    assert_eq!(portfolio_id(&queue.take(1).await[0]), "P1");

    // Behind the API's back: nothing in eventgate but the trigger knows of it.
    sqlx::query("UPDATE destinations SET types = '{portfolios.funding}' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    server.create_portfolio("acme", "P2").await;
    let funding = server
        .publish(
            "acme",
            "portfolios.funding",
            json!({"id": "P1", "value": "500", "currency": "EUR"}),
        )
        .await;
    assert_eq!(funding.status(), StatusCode::CREATED);

    let next = queue.take(1).await;
    assert_eq!(
        event_type(&next[0]),
        "portfolios.funding",
        "P2's creation is no longer of its types"
    );
}

#[sqlx::test]
async fn a_replay_through_another_replica_is_where_the_driver_goes_on(pool: PgPool) {
    let driving = TestServer::start(pool.clone()).await;
    let other = TestServer::start_with(pool, config(&["--relay", "false"])).await;
    let key = driving.tenant_with_key("acme").await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    let id = driving
        .create_destination(
            &key,
            &json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange}),
        )
        .await;
    for p in ["P1", "P2", "P3"] {
        driving.create_portfolio("acme", p).await;
    }
    queue.take(3).await;
    wait_caught_up(&driving, &key, &id).await;

    replay_after_first_event(&other, &key, &id).await;
    other.create_portfolio("acme", "P4").await;

    let again: Vec<String> = queue.take(3).await.iter().map(portfolio_id).collect();
    assert_eq!(
        again,
        ["P2", "P3", "P4"],
        "from the replayed position, not P4 first from the old one"
    );
}

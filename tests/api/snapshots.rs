//! Onboarding without gaps: `POST /snapshots` copies the tenant's read models from one
//! database snapshot, and following the feed from its `feed_cursor` yields exactly the
//! events the snapshot does not contain. Proven under concurrent writers (status updates,
//! deposits, optimizations) with snapshots taken at random moments: each snapshot plus its
//! feed equals a fresh snapshot taken at the end, with no funding counted twice.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};

const PORTFOLIOS: usize = 4;
/// Writes per writer.
const OPS: usize = 80;

fn decimal(value: &Value) -> Decimal {
    Decimal::from_str(&value.to_string())
        .or_else(|_| Decimal::from_scientific(&value.to_string()))
        .unwrap_or_else(|_| panic!("a decimal: {value}"))
        .normalize()
}

/// A portfolio as a client keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Portfolio {
    external_id: String,
    status: Option<String>,
    divest: Option<(Decimal, String)>,
    funded: BTreeMap<String, Decimal>,
}

/// An optimization as a client keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Optimization {
    portfolio_id: String,
    status: String,
    is_recommended: bool,
    owner_choice: Option<String>,
}

/// What a client holds: the read models, and the deposits with their funding events.
#[derive(Debug, Clone, Default)]
struct State {
    portfolios: BTreeMap<String, Portfolio>,
    optimizations: BTreeMap<String, Optimization>,
    /// Deposit id to its funding event id.
    deposits: BTreeMap<String, String>,
    feed_cursor: String,
}

impl State {
    /// Applies one feed event, as a client following the feed would.
    fn apply(&mut self, event: &Value) {
        let data = &event["data"];
        let id = data["id"].as_str().unwrap_or_default().to_owned();
        let text = |field: &str| data[field].as_str().unwrap().to_owned();
        match (
            event["subject"].as_str().unwrap(),
            event["action"].as_str().unwrap(),
        ) {
            ("portfolios", "creation") => {
                let created = Portfolio {
                    external_id: text("external_id"),
                    ..Portfolio::default()
                };
                assert!(
                    self.portfolios.insert(id, created).is_none(),
                    "created twice"
                );
            }
            ("portfolios", "status-update") => {
                let portfolio = self.portfolios.get_mut(&id).expect("a known portfolio");
                portfolio.status = Some(text("value"));
                portfolio.external_id = text("external_id");
            }
            ("portfolios", "funding") => {
                let portfolio = self.portfolios.get_mut(&id).expect("a known portfolio");
                *portfolio.funded.entry(text("currency")).or_default() += decimal(&data["value"]);
            }
            ("portfolios", "divest-amount-update") => {
                let portfolio = self.portfolios.get_mut(&id).expect("a known portfolio");
                portfolio.divest = Some((decimal(&data["divest_amount"]), text("currency")));
                portfolio.external_id = text("external_id");
            }
            ("optimizations", "status-update") => {
                let optimization = self.optimizations.entry(id).or_default();
                optimization.portfolio_id = text("portfolio_id");
                optimization.status = text("value");
                optimization.is_recommended = data["is_recommended"].as_bool().unwrap();
            }
            ("optimizations", "owner-choice-update") => {
                let optimization = self
                    .optimizations
                    .get_mut(&id)
                    .expect("a known optimization");
                optimization.owner_choice = Some(text("value"));
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Every item of one model of a snapshot, read two at a time (so reading takes pages).
async fn all_items(
    server: &TestServer,
    key: &str,
    id: &str,
    model: &str,
    cursor: &str,
) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/snapshots/{id}/{model}?limit=2&after={after}"),
            None => format!("/snapshots/{id}/{model}?limit=2"),
        };
        let page: Value = server.get(&path, key).await.json().await.unwrap();
        assert_eq!(page["feed_cursor"], cursor, "the same cursor on every page");
        items.extend(page["data"].as_array().unwrap().iter().cloned());
        if !page["has_more"].as_bool().unwrap() {
            return items;
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
    }
}

/// Takes a snapshot and reads it whole, as a client onboarding would.
async fn snapshot(server: &TestServer, key: &str) -> State {
    let taken = server.post("/snapshots", key, &json!({})).await;
    assert_eq!(taken.status(), StatusCode::CREATED);
    let taken: Value = taken.json().await.unwrap();
    let (id, cursor) = (
        taken["id"].as_str().unwrap(),
        taken["feed_cursor"].as_str().unwrap(),
    );
    let mut state = State {
        feed_cursor: cursor.to_owned(),
        ..State::default()
    };
    let portfolios = all_items(server, key, id, "portfolios", cursor).await;
    assert_eq!(taken["counts"]["portfolios"], portfolios.len());
    for p in portfolios {
        let funded = p["funded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["currency"].as_str().unwrap().to_owned(),
                    decimal(&f["total"]),
                )
            })
            .collect();
        let divest = (!p["divest_amount"].is_null()).then(|| {
            (
                decimal(&p["divest_amount"]),
                p["currency"].as_str().unwrap().to_owned(),
            )
        });
        let kept = Portfolio {
            external_id: p["external_id"].as_str().unwrap().to_owned(),
            status: p["status"].as_str().map(str::to_owned),
            divest,
            funded,
        };
        state
            .portfolios
            .insert(p["id"].as_str().unwrap().to_owned(), kept);
    }
    for o in all_items(server, key, id, "optimizations", cursor).await {
        let kept = Optimization {
            portfolio_id: o["portfolio_id"].as_str().unwrap().to_owned(),
            status: o["status"].as_str().unwrap().to_owned(),
            is_recommended: o["is_recommended"].as_bool().unwrap(),
            owner_choice: o["owner_choice"].as_str().map(str::to_owned),
        };
        state
            .optimizations
            .insert(o["id"].as_str().unwrap().to_owned(), kept);
    }
    for d in all_items(server, key, id, "deposits", cursor).await {
        let funding = d["funding_event"]["id"].as_str().unwrap().to_owned();
        state
            .deposits
            .insert(d["id"].as_str().unwrap().to_owned(), funding);
    }
    state
}

/// Every event after `cursor`, in feed order.
async fn events_after(server: &TestServer, key: &str, cursor: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = cursor.to_owned();
    loop {
        let page: Value = server
            .get(&format!("/events/?limit=1000&after={after}"), key)
            .await
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        if data.is_empty() {
            return events;
        }
        events.extend(data.iter().cloned());
        after = page["next_cursor"].as_str().unwrap().to_owned();
    }
}

/// A small random number, for writers and the snapshot taker.
fn roll(below: u32) -> u32 {
    getrandom::u32().unwrap() % below
}

async fn writers(server: Arc<TestServer>, key: Arc<String>) {
    let statuses = ["ACTIVE", "WAITING_FOR_FUNDS", "WAITING_FOR_POLICY"];
    let status_writer = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..OPS {
                let p = format!("P{}", roll(PORTFOLIOS as u32));
                let (ty, data) = if i % 4 == 3 {
                    let amount = format!("{}.{}", 100 + roll(900), roll(100));
                    (
                        "portfolios.divest-amount-update",
                        json!({"id": p, "external_id": format!("x{i}"), "divest_amount": amount, "currency": "EUR"}),
                    )
                } else {
                    let value = statuses[roll(3) as usize];
                    (
                        "portfolios.status-update",
                        json!({"id": p, "external_id": format!("x{i}"), "value": value}),
                    )
                };
                assert_eq!(
                    server.publish("acme", ty, data).await.status(),
                    StatusCode::CREATED
                );
                tokio::time::sleep(Duration::from_millis(u64::from(roll(15)))).await;
            }
        })
    };
    let depositor = {
        let (server, key) = (server.clone(), key.clone());
        tokio::spawn(async move {
            for i in 0..OPS {
                let body = json!({"data": {"amount": format!("{}.{:02}", 1 + roll(50), roll(100)),
                    "currency": if i % 3 == 0 { "EUR" } else { "USD" },
                    "portfolio": format!("P{}", roll(PORTFOLIOS as u32))}});
                let response = server
                    .http
                    .post(server.url("/events/deposit/"))
                    .bearer_auth(key.as_str())
                    .header("idempotency-key", format!("deposit-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
                tokio::time::sleep(Duration::from_millis(u64::from(roll(15)))).await;
            }
        })
    };
    let optimizer = {
        let server = server.clone();
        tokio::spawn(async move {
            for i in 0..OPS {
                let o = roll(PORTFOLIOS as u32);
                let (ty, data) = if i % 3 == 2 {
                    (
                        "optimizations.owner-choice-update",
                        json!({"id": format!("O{o}"), "portfolio_id": format!("P{o}"), "external_id": "e", "value": "ACCEPT"}),
                    )
                } else {
                    (
                        "optimizations.status-update",
                        json!({"id": format!("O{o}"), "portfolio_id": format!("P{o}"), "external_id": "e",
                            "is_recommended": roll(2) == 0, "value": "SUCCESS"}),
                    )
                };
                assert_eq!(
                    server.publish("acme", ty, data).await.status(),
                    StatusCode::CREATED
                );
                tokio::time::sleep(Duration::from_millis(u64::from(roll(15)))).await;
            }
        })
    };
    for writer in [status_writer, depositor, optimizer] {
        writer.await.unwrap();
    }
}

#[sqlx::test]
async fn a_snapshot_and_its_feed_equal_the_final_state_under_concurrent_writers(pool: PgPool) {
    let server = Arc::new(
        TestServer::start_with(
            pool,
            config(&["--snapshots-per-tenant", "20", "--relay", "false"]),
        )
        .await,
    );
    let key = Arc::new(server.tenant_with_key("acme").await);
    for p in 0..PORTFOLIOS {
        server.create_portfolio("acme", &format!("P{p}")).await;
        let created = server
            .publish(
                "acme",
                "optimizations.status-update",
                json!({"id": format!("O{p}"), "portfolio_id": format!("P{p}"), "external_id": "e",
                       "is_recommended": false, "value": "PENDING"}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }

    let writing = tokio::spawn(writers(server.clone(), key.clone()));
    let mut taken = Vec::new();
    while !writing.is_finished() {
        tokio::time::sleep(Duration::from_millis(u64::from(roll(60)))).await;
        taken.push(snapshot(&server, &key).await);
    }
    writing.await.unwrap();
    assert!(
        taken.len() >= 5,
        "snapshots taken while writing: {}",
        taken.len()
    );
    server.settle().await;
    let last = snapshot(&server, &key).await;
    assert!(!last.deposits.is_empty());

    for (n, mut state) in taken.into_iter().enumerate() {
        let events = events_after(&server, &key, &state.feed_cursor).await;
        let event_ids: BTreeSet<String> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            event_ids.len(),
            events.len(),
            "snapshot {n}: an event served twice"
        );
        for (deposit, funding) in &last.deposits {
            let in_snapshot = state.deposits.contains_key(deposit);
            assert_ne!(
                in_snapshot,
                event_ids.contains(funding),
                "snapshot {n}: deposit {deposit} must be in the snapshot or its funding event \
                 after the cursor, not both and not neither"
            );
        }
        for event in &events {
            state.apply(event);
        }
        assert_eq!(
            state.portfolios, last.portfolios,
            "snapshot {n}: portfolios"
        );
        assert_eq!(
            state.optimizations, last.optimizations,
            "snapshot {n}: optimizations"
        );
    }
}

#[sqlx::test]
async fn a_snapshot_waits_for_a_writer_under_way_and_its_cursor_follows_it(pool: PgPool) {
    let server = Arc::new(TestServer::start(pool).await);
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    // A writer under way: its event is not committed when the snapshot is asked for.
    let mut writer = server.pool.begin().await.unwrap();
    eventgate::store::outbox::begin_writing(&mut writer, "acme")
        .await
        .unwrap();
    let data = eventgate::catalogue::EventData::parse(
        eventgate::catalogue::EventType::PortfoliosCreation,
        json!({"id": "P2", "external_id": "e2", "owned_by_user_id": "U1"}),
    )
    .unwrap();
    let published = eventgate::publish::publish_in(
        &mut writer,
        "acme",
        eventgate::catalogue::EventType::PortfoliosCreation,
        &data,
    )
    .await
    .unwrap();
    let taking = {
        let (server, key) = (server.clone(), key.clone());
        tokio::spawn(async move { snapshot(&server, &key).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.commit().await.unwrap();
    let state = taking.await.unwrap();
    // It waited: the writer's portfolio is in it, and its event is not after the cursor.
    assert!(
        state.portfolios.contains_key("P2"),
        "{:?}",
        state.portfolios.keys()
    );
    server.settle().await;
    let after = events_after(&server, &key, &state.feed_cursor).await;
    assert!(
        after.iter().all(|e| e["id"] != published.to_string()),
        "the snapshot's event is not served again"
    );
    server.create_portfolio("acme", "P3").await;
    server.settle().await;
    let after = events_after(&server, &key, &state.feed_cursor).await;
    assert_eq!(after.len(), 1, "what came after, and only that");
    assert_eq!(after[0]["data"]["id"], "P3");
}

#[sqlx::test]
async fn snapshots_are_capped_expire_and_belong_to_their_tenant(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--snapshots-per-tenant", "2"])).await;
    let key = server.tenant_with_key("acme").await;
    let other = server.tenant_with_key("bank-b").await;
    server.create_portfolio("acme", "P1").await;
    // Six at once against a cap of two: exactly two are taken.
    let empty = json!({});
    let asked = (0..6).map(|_| server.post("/snapshots", &key, &empty));
    let answers = futures::future::join_all(asked).await;
    let mut created = Vec::new();
    for answer in answers {
        if answer.status() == StatusCode::CREATED {
            created.push(answer.json::<Value>().await.unwrap());
        } else {
            assert_problem(answer, StatusCode::TOO_MANY_REQUESTS).await;
        }
    }
    assert_eq!(created.len(), 2, "the cap holds under concurrent requests");
    let id = created[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created[0]["counts"],
        json!({"portfolios": 1, "optimizations": 0, "deposits": 0})
    );
    // Another tenant's client and the platform see no such snapshot of theirs.
    assert_problem(
        server.get(&format!("/snapshots/{id}"), &other).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        server
            .get(&format!("/snapshots/{id}"), PLATFORM_KEY)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_problem(
        server.get(&format!("/snapshots/{id}/users"), &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        server
            .get(&format!("/snapshots/{id}/portfolios?after=a%20b"), &key)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Expired: 410, then purged (404), and the cap frees up.
    sqlx::query(
        "UPDATE snapshots SET expires_at = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&server.pool)
    .await
    .unwrap();
    assert_problem(
        server
            .get(&format!("/snapshots/{id}/portfolios"), &key)
            .await,
        StatusCode::GONE,
    )
    .await;
    let third = server.post("/snapshots", &key, &json!({})).await;
    assert_eq!(third.status(), StatusCode::CREATED);
    eventgate::maintenance::purge_snapshots(&server.pool).await;
    assert_eq!(
        server.count("SELECT count(*) FROM snapshot_items").await,
        2,
        "the expired snapshot's items went with it"
    );
    assert_problem(
        server.get(&format!("/snapshots/{id}"), &key).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[sqlx::test]
async fn a_writer_that_takes_too_long_makes_the_snapshot_a_conflict(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        config(&[
            "--idempotency-wait-ms",
            "200",
            "--snapshots-per-tenant",
            "1",
        ]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let mut writer = server.pool.begin().await.unwrap();
    eventgate::store::outbox::begin_writing(&mut writer, "acme")
        .await
        .unwrap();
    let refused = server.post("/snapshots", &key, &json!({})).await;
    let problem = assert_problem(refused, StatusCode::CONFLICT).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("snapshot may wait"),
        "{problem}"
    );
    writer.commit().await.unwrap();
    let taken = server.post("/snapshots", &key, &json!({})).await;
    assert_eq!(
        taken.status(),
        StatusCode::CREATED,
        "once the writer is done"
    );
}

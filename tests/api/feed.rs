//! GET /events/: the gap-free, cursor-paginated feed with long-polling.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use eventgate::catalogue::EventData;
use eventgate::catalogue::EventType;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestServer, assert_problem};

async fn page(server: &TestServer, key: &str, query: &str) -> Value {
    let response = server.get(&format!("/events/?{query}"), key).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.unwrap()
}

/// The event ids of a feed page, in order.
pub fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows the feed from the start with `limit` until an empty page; returns every id seen.
async fn follow_all(server: &TestServer, key: &str, extra: &str, limit: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit={limit}&after={c}{extra}"),
            None => format!("limit={limit}{extra}"),
        };
        let page = page(server, key, &query).await;
        let batch = ids(&page);
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        if batch.is_empty() {
            return seen;
        }
        seen.extend(batch);
    }
}

/// A tiny deterministic generator for sleeps and roll-back decisions.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

fn user_event(i: usize) -> EventData {
    EventData::parse(
        EventType::UsersStatusUpdate,
        json!({"id": format!("U{i}"), "value": "ACTIVE"}),
    )
    .unwrap()
}

#[sqlx::test]
async fn follower_sees_every_committed_event_exactly_once_under_concurrent_writers(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = options
        .max_connections(20)
        .connect_with(connect)
        .await
        .unwrap();
    // The follower polls in a tight loop for as long as the writers run: the per-tenant
    // rate limit is not under test here, and would answer it 429 on a slow machine.
    let server = TestServer::start_with(
        pool.clone(),
        crate::helpers::config(&["--rate-limit-per-sec", "0"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;

    const WRITERS: u64 = 10;
    const TRANSACTIONS: usize = 25;
    let writers = (0..WRITERS).map(|w| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut rng = Lcg(w + 1);
            let mut committed = Vec::new();
            for t in 0..TRANSACTIONS {
                let mut tx = pool.begin().await.unwrap();
                // As every writer does: the tenant's writers' lock before the first write.
                eventgate::store::outbox::begin_writing(&mut tx, "acme")
                    .await
                    .unwrap();
                let mut ids = Vec::new();
                for e in 0..=rng.next(3) as usize {
                    let data = user_event(t * 10 + e);
                    let published = eventgate::publish::publish_in(
                        &mut tx,
                        "acme",
                        EventType::UsersStatusUpdate,
                        &data,
                    )
                    .await
                    .unwrap();
                    ids.push(published.to_string());
                }
                // Hold the transaction open for a while so commits interleave out of order.
                tokio::time::sleep(Duration::from_millis(rng.next(25))).await;
                if rng.next(5) == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed.extend(ids);
                }
            }
            committed
        })
    });
    let writers = futures::future::join_all(writers);
    tokio::pin!(writers);

    // Follow with tiny pages while the writers run, then drain once they are done.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut done: Option<Vec<String>> = None;
    loop {
        let query = match &cursor {
            Some(c) => format!("limit=2&after={c}"),
            None => "limit=2".to_owned(),
        };
        let page = page(&server, &key, &query).await;
        let batch = ids(&page);
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
        let empty = batch.is_empty();
        seen.extend(batch);
        if done.is_some() && empty {
            break;
        }
        if done.is_none() {
            tokio::select! {
                results = &mut writers => {
                    done = Some(results.into_iter().flat_map(|r| r.unwrap()).collect());
                    server.settle().await;
                }
                () = tokio::task::yield_now() => {}
            }
        }
    }
    let committed = done.unwrap();
    assert!(
        committed.len() > 100,
        "the writers committed a real workload"
    );
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event was served twice");
    let expected: HashSet<&String> = committed.iter().collect();
    assert_eq!(
        unique, expected,
        "every committed event, and no rolled-back one, was served"
    );

    let second_read = follow_all(&server, &key, "", 7).await;
    assert_eq!(second_read, seen, "a second full read sees the same order");
}

#[sqlx::test]
async fn pagination_boundaries(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;

    let empty = page(&server, &key, "").await;
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["has_more"], false);
    let start_cursor = empty["next_cursor"].as_str().unwrap().to_owned();
    let again = page(&server, &key, &format!("after={start_cursor}")).await;
    assert_eq!(
        again["next_cursor"],
        start_cursor.as_str(),
        "an empty page answers the same cursor"
    );

    for i in 0..6 {
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
    server.settle().await;
    let all = follow_all(&server, &key, "", 1000).await;
    assert_eq!(all.len(), 6);
    assert_eq!(follow_all(&server, &key, "", 1).await, all, "limit=1");
    assert_eq!(
        follow_all(&server, &key, "", 4).await,
        all,
        "a last partial page"
    );

    let first = page(&server, &key, "limit=3").await;
    assert_eq!(first["has_more"], true);
    let second = page(
        &server,
        &key,
        &format!("limit=3&after={}", first["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        second["has_more"], false,
        "an exact multiple ends with has_more false"
    );
    assert_eq!([ids(&first), ids(&second)].concat(), all);

    let from_start_cursor = page(&server, &key, &format!("after={start_cursor}")).await;
    assert_eq!(
        ids(&from_start_cursor),
        all,
        "the empty feed's cursor misses nothing later"
    );

    let response = server.get("/events/?limit=3", &key).await;
    let link = response.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.starts_with("</events/?after=") && link.ends_with("rel=\"next\""),
        "{link}"
    );
}

#[sqlx::test]
async fn type_filters(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "e", "value": "ACTIVE"}),
        )
        .await;
    server.publish("acme", "optimizations.status-update", json!({"id": "O1", "portfolio_id": "P1", "external_id": "e", "is_recommended": true, "value": "SUCCESS"})).await;
    server.settle().await;

    let types = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}.{}",
                    e["subject"].as_str().unwrap(),
                    e["action"].as_str().unwrap()
                )
            })
            .collect()
    };
    let creation = page(&server, &key, "type=portfolios.creation").await;
    assert_eq!(types(&creation), ["portfolios.creation"]);
    let portfolios = page(&server, &key, "type=portfolios.*").await;
    assert_eq!(
        types(&portfolios),
        ["portfolios.creation", "portfolios.status-update"]
    );
    let both = page(
        &server,
        &key,
        "type=portfolios.creation&type=optimizations.*",
    )
    .await;
    assert_eq!(
        types(&both),
        ["portfolios.creation", "optimizations.status-update"]
    );

    for bad in ["type=portfolios.teleport", "type=nothing.*", "type="] {
        assert_problem(
            server.get(&format!("/events/?{bad}"), &key).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[sqlx::test]
async fn bad_parameters_are_400_problems(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "wait=31",
        "wait=-1",
        "after=12345",
        "after=",
        "colour=red",
        "limit=1&limit=2",
    ] {
        assert_problem(
            server.get(&format!("/events/?{bad}"), &key).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // A cursor of another shape than the documented one (cut short, or of version 1 with a
    // checksum that does not match) is 400.
    let cursor = page(&server, &key, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_and_edited = "AQAAAAAAAAPoAAAAAAAAAAdAAAAA";
    for bad in [&cursor[..cursor.len() - 1], old_and_edited] {
        assert_problem(
            server.get(&format!("/events/?after={bad}"), &key).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[sqlx::test]
async fn cursor_before_retention_is_410_gone(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    server.settle().await;
    let old_cursor = page(&server, &key, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    server.create_portfolio("acme", "P2").await;
    server.settle().await;

    let purged = eventgate::maintenance::purge_feed(&server.pool, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_problem(
        server
            .get(&format!("/events/?after={old_cursor}"), &key)
            .await,
        StatusCode::GONE,
    )
    .await;
    let restart = page(&server, &key, "").await;
    assert_eq!(restart["data"], json!([]), "starting over works");
}

#[sqlx::test]
async fn tenants_never_see_each_others_events(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key_a = server.tenant_with_key("acme").await;
    let key_b = server.tenant_with_key("bank-b").await;
    server.create_portfolio("acme", "PA").await;
    server.create_portfolio("bank-b", "PB").await;
    server.create_portfolio("acme", "PA2").await;
    server.settle().await;

    let a = page(&server, &key_a, "").await;
    let b = page(&server, &key_b, "type=portfolios.*").await;
    assert_eq!(a["data"].as_array().unwrap().len(), 2);
    assert_eq!(b["data"].as_array().unwrap().len(), 1);
    assert_eq!(b["data"][0]["data"]["id"], "PB");

    // A cursor taken from tenant A's feed still only reads tenant B's events.
    let a_first_cursor = page(&server, &key_a, "limit=1").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_with_a_cursor = page(&server, &key_b, &format!("after={a_first_cursor}")).await;
    for event in b_with_a_cursor["data"].as_array().unwrap() {
        assert_eq!(event["data"]["id"], "PB");
    }
    let a_event = a["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        server
            .get(&format!("/events/{a_event}"), &key_a)
            .await
            .status(),
        StatusCode::OK
    );
    assert_problem(
        server.get(&format!("/events/{a_event}"), &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[sqlx::test]
async fn get_one_event_returns_the_stored_envelope(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    server.settle().await;
    let listed = page(&server, &key, "").await;
    let id = listed["data"][0]["id"].as_str().unwrap();
    let one: Value = server
        .get(&format!("/events/{id}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one, listed["data"][0]);
    let missing = uuid::Uuid::now_v7();
    assert_problem(
        server.get(&format!("/events/{missing}"), &key).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[sqlx::test]
async fn long_poll_wakes_on_commit(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let cursor = page(&server, &key, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();

    let http = server.http.clone();
    let url = server.url(&format!("/events/?wait=30&after={cursor}"));
    let poll_key = key.clone();
    let started = Instant::now();
    let poll =
        tokio::spawn(async move { http.get(url).bearer_auth(poll_key).send().await.unwrap() });
    while server.state.notifier.subscribers("acme") == 0 {
        tokio::task::yield_now().await;
    }
    server.create_portfolio("acme", "P1").await;
    let response = poll.await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"][0]["data"]["id"], "P1");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "answered by the commit, not the deadline"
    );
}

/// A notification can be lost (a writer that dies between its commit and its NOTIFY, a
/// listener reconnecting): waiting long-polls still find the event, on their shared timer.
#[sqlx::test]
async fn waiting_long_polls_find_an_event_whose_notification_was_lost(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    let key = server.tenant_with_key("acme").await;
    let cursor = page(&server, &key, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let polls: Vec<_> = (0..20)
        .map(|_| {
            let (http, key) = (server.http.clone(), key.clone());
            let url = server.url(&format!("/events/?wait=30&after={cursor}"));
            tokio::spawn(async move { http.get(url).bearer_auth(key).send().await.unwrap() })
        })
        .collect();
    while server.state.long_polls.waiting_total() < 20 {
        tokio::task::yield_now().await;
    }
    // Committed without NOTIFY (the setting writes use when they announce after commit)
    // and without this process's announcer.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL eventgate.announce_after_commit = 'on'")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
         VALUES (gen_random_uuid(), 'acme', 'portfolios.creation', 'Portfolio', 'P1', 'Created',
                 now(), '{\"silent\":true}')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for poll in polls {
        let response = poll.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["data"], json!([{"silent": true}]));
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "found by the timer's re-read, not answered empty at the deadline"
    );
}

#[sqlx::test]
async fn notifications_reach_subscribers_through_listen(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let mut wake = server.state.notifier.subscribe("acme");
    let mut other = server.state.notifier.subscribe("bank-b");
    // The listener connects in the background; publish until a wake-up arrives.
    let woke = tokio::time::timeout(Duration::from_secs(30), async {
        let mut i = 0;
        loop {
            server.create_portfolio("acme", &format!("P{i}")).await;
            i += 1;
            if tokio::time::timeout(Duration::from_secs(1), wake.changed())
                .await
                .is_ok()
            {
                return;
            }
        }
    })
    .await;
    assert!(
        woke.is_ok(),
        "a NOTIFY from a commit woke the tenant's subscriber"
    );
    other.mark_unchanged();
    assert!(!other.has_changed().unwrap(), "other tenants are not woken");
}

#[sqlx::test]
async fn long_poll_returns_empty_with_the_same_cursor_after_wait(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let cursor = page(&server, &key, "").await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = page(&server, &key, &format!("wait=1&after={cursor}")).await;
    assert_eq!(body["data"], json!([]));
    assert_eq!(body["next_cursor"], cursor.as_str());
}

#[sqlx::test]
async fn shutdown_releases_waiting_long_polls(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let http = server.http.clone();
    let url = server.url("/events/?wait=30");
    let started = Instant::now();
    let poll = tokio::spawn(async move { http.get(url).bearer_auth(key).send().await.unwrap() });
    while server.state.notifier.subscribers("acme") == 0 {
        tokio::task::yield_now().await;
    }
    drop(server);
    let response = poll.await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the in-flight poll got a full answer"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "released by shutdown, not by its deadline"
    );
}

#[sqlx::test]
async fn long_polls_per_tenant_are_capped_with_429(pool: PgPool) {
    let server = TestServer::start_with(
        pool,
        crate::helpers::config(&["--max-long-polls-per-tenant", "1"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let other = server.tenant_with_key("bank-b").await;
    let http = server.http.clone();
    let url = server.url("/events/?wait=30");
    let first_key = key.clone();
    let _first = tokio::spawn(async move { http.get(url).bearer_auth(first_key).send().await });
    while server.state.notifier.subscribers("acme") == 0 {
        tokio::task::yield_now().await;
    }
    let second = server.get("/events/?wait=30", &key).await;
    assert_eq!(second.headers()["retry-after"], "1");
    assert_problem(second, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        server.get("/events/?wait=0", &key).await.status(),
        StatusCode::OK,
        "plain polls still work"
    );
    let other_tenant = server.get("/events/?wait=1", &other).await;
    assert_eq!(
        other_tenant.status(),
        StatusCode::OK,
        "the cap is per tenant"
    );
}

/// Relay drivers wait on the same wake-ups as long-polls; they must not take a tenant's
/// long-poll places (a tenant with more destinations than the cap once got 429 on every
/// `wait`).
#[sqlx::test]
async fn relay_drivers_do_not_take_long_poll_places(pool: PgPool) {
    let args = [
        "--max-long-polls-per-tenant",
        "2",
        "--allow-private-destinations",
        "true",
    ];
    let server = TestServer::start_with(pool, crate::helpers::config(&args)).await;
    let key = server.tenant_with_key("acme").await;
    for _ in 0..3 {
        let body = json!({"kind": "amqp", "url": crate::brokers::AMQP_URL,
                          "exchange": crate::brokers::unique("idle")});
        let created = server.post("/destinations", &key, &body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.state.notifier.subscribers("acme") < 3 {
        assert!(Instant::now() < deadline, "the three drivers never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let poll = server.get("/events/?wait=1", &key).await;
    assert_eq!(
        poll.status(),
        StatusCode::OK,
        "three idle drivers, yet a long-poll waits"
    );
}

/// Many long-polls at once: exactly the cap wait, every other one is 429 (the count is
/// taken with the place, so no two requests can both see room for one).
#[sqlx::test]
async fn concurrent_long_polls_never_exceed_the_cap(pool: PgPool) {
    const CAP: usize = 5;
    const POLLS: usize = 40;
    let server = TestServer::start_with(
        pool,
        crate::helpers::config(&["--max-long-polls-per-tenant", "5"]),
    )
    .await;
    let key = server.tenant_with_key("acme").await;
    let polls: Vec<_> = (0..POLLS)
        .map(|_| {
            let (http, url, key) = (
                server.http.clone(),
                server.url("/events/?wait=30"),
                key.clone(),
            );
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    // The refused ones answer at once; the admitted ones wait until the server stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while polls.iter().filter(|p| p.is_finished()).count() < POLLS - CAP {
        assert!(Instant::now() < deadline, "the refusals never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.state.long_polls.waiting_total(), CAP);
    drop(server);
    let mut statuses = Vec::new();
    for poll in polls {
        statuses.push(poll.await.unwrap());
    }
    let waited = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((waited, refused), (CAP, POLLS - CAP), "{statuses:?}");
}

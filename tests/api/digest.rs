//! `GET /events/digest`: the count and SHA-256 of the event ids in a range of the feed,
//! computed here independently from the events a follower read.

use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::helpers::{TestServer, assert_problem, config};

/// What a client computes over the ids it stored: each id and a line feed, SHA-256, hex.
fn client_digest(ids: &[String]) -> String {
    let mut hash = Sha256::new();
    for id in ids {
        hash.update(id.as_bytes());
        hash.update(b"\n");
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn page(server: &TestServer, key: &str, after: Option<&str>) -> Value {
    let path = match after {
        Some(cursor) => format!("/events/?limit=7&after={cursor}"),
        None => "/events/?limit=7".to_owned(),
    };
    server.get(&path, key).await.json().await.unwrap()
}

#[sqlx::test]
async fn a_digest_matches_what_a_follower_stored(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&[])).await;
    let key = server.tenant_with_key("acme").await;
    for i in 0..20 {
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
    let other = server.tenant_with_key("bank-b").await;
    server.create_portfolio("bank-b", "B1").await;
    server.settle().await;

    // A follower reads the feed a page at a time and keeps the ids and cursors.
    let mut ids: Vec<String> = Vec::new();
    let mut cursors: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = page(&server, &key, after.as_deref()).await;
        let data = page["data"].as_array().unwrap();
        ids.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        let next = page["next_cursor"].as_str().unwrap().to_owned();
        cursors.push(next.clone());
        if data.is_empty() {
            break;
        }
        after = Some(next);
    }
    assert_eq!(ids.len(), 20);
    let end = cursors.last().unwrap();
    let whole: Value = server
        .get(&format!("/events/digest?to={end}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(whole["count"], 20);
    assert_eq!(whole["sha256"], client_digest(&ids));

    // After the first page (7 events) through the third (the last 6).
    let (from, to) = (&cursors[0], &cursors[2]);
    let middle: Value = server
        .get(&format!("/events/digest?from={from}&to={to}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(middle["count"], 13);
    assert_eq!(middle["sha256"], client_digest(&ids[7..]));
    assert_eq!(middle["from"], from.as_str());

    // A missing event changes the digest: one id dropped no longer matches.
    let mut missing = ids.clone();
    missing.remove(3);
    assert_ne!(whole["sha256"], client_digest(&missing));

    // Another tenant's range holds only its own event, however far it reaches.
    let their_end = page(&server, &other, None).await["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs: Value = server
        .get(&format!("/events/digest?to={their_end}"), &other)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["count"], 1);

    // Bad input: no `to`, a cursor that is not one, a range not final yet.
    assert_problem(
        server.get("/events/digest", &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        server.get("/events/digest?to=nope", &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let future = eventgate::feed::cursor::Position {
        tx_id: u64::MAX / 2,
        seq: 1,
    }
    .encode();
    assert_problem(
        server
            .get(&format!("/events/digest?to={future}"), &key)
            .await,
        StatusCode::CONFLICT,
    )
    .await;

    // Once purged, a range starting before the retained feed is 410; from the start it
    // counts what is kept.
    eventgate::maintenance::purge_feed(&server.pool, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_problem(
        server
            .get(&format!("/events/digest?from={from}&to={end}"), &key)
            .await,
        StatusCode::GONE,
    )
    .await;
    let kept: Value = server
        .get(&format!("/events/digest?to={end}"), &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["count"], 0);
}

//! Feed pages read ahead: a follower's next page, read while it takes in this one, is the
//! page it then gets, never another tenant's, never a stale or empty one.

use std::time::{Duration, Instant};

use eventgate::feed::read_ahead::MAX_AGE;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::feed::ids;
use crate::helpers::{TestServer, config};

async fn page(server: &TestServer, key: &str, query: &str) -> Value {
    let response = server.get(&format!("/events/?{query}"), key).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    response.json().await.expect("a feed page")
}

/// Waits until `pages` pages read ahead are kept (the reads run in the background).
async fn until_kept(server: &TestServer, pages: usize) {
    let started = Instant::now();
    while server.state.read_ahead.kept() < pages {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{pages} page(s) never read ahead"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A tenant with three events, settled: a first page of two leaves one more ready.
async fn three_events(server: &TestServer) -> String {
    let key = server.tenant_with_key("acme").await;
    for p in ["P0", "P1", "P2"] {
        server.create_portfolio("acme", p).await;
    }
    server.settle().await;
    key
}

fn cursor(page: &Value) -> &str {
    page["next_cursor"].as_str().expect("a cursor")
}

#[sqlx::test]
async fn a_followers_next_page_is_read_ahead_and_is_the_page_it_gets(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = three_events(&server).await;
    let first = page(&server, &key, "limit=2").await;
    assert_eq!(ids(&first).len(), 2);
    assert_eq!(first["has_more"], true);
    until_kept(&server, 1).await;

    // Committed after the next page was read: a read now would return it on that page.
    server.create_portfolio("acme", "P3").await;
    server.settle().await;
    // Another tenant asking after the same cursor gets its own (empty) page, not acme's.
    let other = server.tenant_with_key("other").await;
    let theirs = page(
        &server,
        &other,
        &format!("limit=2&after={}", cursor(&first)),
    )
    .await;
    assert_eq!(ids(&theirs), Vec::<String>::new());
    assert_eq!(
        server.state.read_ahead.kept(),
        1,
        "acme's page is still kept"
    );

    let second = page(&server, &key, &format!("limit=2&after={}", cursor(&first))).await;
    assert_eq!(
        ids(&second).len(),
        1,
        "the page read ahead, before P3 committed: {second}"
    );
    assert_eq!(second["has_more"], false);
    assert!(server.state.read_ahead.is_empty(), "the page was taken");
    // Nothing is lost: P3 is on the next page, and the whole feed is what one read gives.
    let third = page(&server, &key, &format!("limit=2&after={}", cursor(&second))).await;
    assert_eq!(ids(&third).len(), 1);
    let everything = page(&server, &key, "limit=10").await;
    assert_eq!(
        [ids(&first), ids(&second), ids(&third)].concat(),
        ids(&everything)
    );
}

#[sqlx::test]
async fn with_read_ahead_off_each_page_is_read_when_asked(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--feed-read-ahead-pages", "0"])).await;
    let key = three_events(&server).await;
    let first = page(&server, &key, "limit=2").await;
    assert_eq!(first["has_more"], true);
    assert!(server.state.read_ahead.is_empty(), "nothing read ahead");
    server.create_portfolio("acme", "P3").await;
    server.settle().await;
    let second = page(&server, &key, &format!("limit=2&after={}", cursor(&first))).await;
    assert_eq!(ids(&second).len(), 2, "read when asked, P3 included");
}

#[sqlx::test]
async fn a_page_read_ahead_longer_ago_than_its_age_limit_is_read_again(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = three_events(&server).await;
    let first = page(&server, &key, "limit=2").await;
    until_kept(&server, 1).await;
    server.create_portfolio("acme", "P3").await;
    server.settle().await;
    tokio::time::sleep(MAX_AGE + Duration::from_millis(100)).await;
    let second = page(&server, &key, &format!("limit=2&after={}", cursor(&first))).await;
    assert_eq!(
        ids(&second).len(),
        2,
        "a page read ahead too long ago is read again, P3 included"
    );
}

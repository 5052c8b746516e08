//! Long-polls waiting for the same page share one reader, which wakes them only when the
//! page has events for them; a page nothing has come for is answered empty at the
//! deadline, and a reader stops when nobody waits on it, or as soon as it has answered.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use eventgate::feed::PageRequest;

use crate::helpers::TestServer;

const UNFILTERED: usize = 20;
const FILTERED: usize = 10;
/// The filtered long-polls' wait: nothing of their type comes, so they answer at it.
const FILTERED_WAIT: Duration = Duration::from_secs(3);

/// `GET /events/?{query}` on a task of its own; the page it answers 200 with.
fn long_poll(server: &TestServer, key: &str, query: &str) -> JoinHandle<Value> {
    let (http, key) = (server.http.clone(), key.to_owned());
    let url = server.url(&format!("/events/?{query}"));
    tokio::spawn(async move {
        let response = http.get(url).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    })
}

#[sqlx::test]
async fn long_polls_on_one_page_share_one_reader_and_wake_only_for_events(pool: sqlx::PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let first: Value = server.get("/events/", &key).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let poll = |query: String| long_poll(&server, &key, &format!("after={cursor}&{query}"));
    let started = Instant::now();
    let unfiltered: Vec<_> = (0..UNFILTERED).map(|_| poll("wait=30".into())).collect();
    let filtered: Vec<_> = (0..FILTERED)
        .map(|_| {
            poll(format!(
                "wait={}&type=optimizations.*",
                FILTERED_WAIT.as_secs()
            ))
        })
        .collect();
    while server.state.long_polls.waiting_total() < UNFILTERED + FILTERED
        || server.state.waiting.readers() < 2
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        server.state.waiting.readers(),
        2,
        "one reader for each distinct page, not one for each long-poll"
    );

    server.create_portfolio("acme", "P1").await;
    for poll in unfiltered {
        let page = poll.await.unwrap();
        assert_eq!(page["data"][0]["data"]["id"], "P1");
    }
    for poll in filtered {
        let page = poll.await.unwrap();
        assert_eq!(page["data"], serde_json::json!([]), "not of their type");
        assert_eq!(page["next_cursor"], cursor.as_str());
    }
    assert!(
        started.elapsed() >= FILTERED_WAIT,
        "the reader's read that found only other types did not answer the filtered long-polls"
    );

    // With nobody waiting, the readers stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.state.waiting.readers() > 0 {
        assert!(Instant::now() < deadline, "the readers never stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A reader whose read found events has answered every long-poll on its page, and stops
/// with that answer, even while one of them is still joined to it: the commit's echo through
/// LISTEN, which wakes the tenant a second time a moment later, finds no reader and reads
/// nothing.
#[sqlx::test]
async fn a_reader_stops_with_its_answer_and_the_commits_echo_reads_nothing(pool: sqlx::PgPool) {
    const WAITING: usize = 20;
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let first: Value = server.get("/events/", &key).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let polls: Vec<_> = (0..WAITING)
        .map(|_| long_poll(&server, &key, &format!("after={cursor}&wait=30")))
        .collect();
    // A second page (the feed from its start), with one waiter that stays joined after it
    // has taken its answer: before, its reader kept reading for as long as it stayed.
    let mut slow_waiter = server.state.waiting.join(&PageRequest {
        tenant: "acme".into(),
        after: None,
        types: None,
        limit: 100,
    });
    while server.state.long_polls.waiting_total() < WAITING || server.state.waiting.readers() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Counts the tenant's wake-ups: the commit's own, in this process, then LISTEN's echo.
    let mut wake_ups = server.state.notifier.subscribe("acme");
    let before = *wake_ups.borrow_and_update();

    server.create_portfolio("acme", "P1").await;
    for poll in polls {
        let page = poll.await.unwrap();
        assert_eq!(page["data"][0]["data"]["id"], "P1");
    }
    // Taken once the reader has handed it over (and, now, left): no race with the echo.
    let page = slow_waiter.next_answer().await.unwrap();
    assert!(
        page.data.contains("\"P1\""),
        "the slow waiter's answer: {}",
        page.data
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while wake_ups.borrow().wrapping_sub(before) < 2 {
        assert!(Instant::now() < deadline, "the commit's echo never came");
        let _ = tokio::time::timeout(Duration::from_millis(100), wake_ups.changed()).await;
    }
    assert_eq!(
        server.state.waiting.readers(),
        0,
        "both readers stopped with their answers, the slow waiter's too"
    );
    assert_eq!(
        server.state.waiting.reads_with_events(),
        2,
        "one read for each page, and the echo read neither again"
    );
    drop(slow_waiter);
}

/// Long-polls woken by one commit on one page share the page's answer, but each gets the
/// `Link` of its own query: its `wait` and its type filters as it wrote them.
#[sqlx::test]
async fn long_polls_woken_on_one_page_each_get_the_link_of_their_own_query(pool: sqlx::PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let first: Value = server.get("/events/", &key).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // The first two pairs wait on the page of all types, the last two on the page of
    // portfolios and fundings (their filters differ only in order).
    let queries = [
        "wait=30",
        "wait=30",
        "wait=29",
        "wait=29",
        "wait=30&type=portfolios.*&type=optimizations.*",
        "wait=30&type=optimizations.*&type=portfolios.*",
    ];
    let polls: Vec<_> = queries
        .iter()
        .map(|query| {
            let (http, key) = (server.http.clone(), key.clone());
            let url = server.url(&format!("/events/?after={cursor}&{query}"));
            tokio::spawn(async move {
                let response = http.get(url).bearer_auth(key).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let link = response.headers()["link"].to_str().unwrap().to_owned();
                (link, response.json::<Value>().await.unwrap())
            })
        })
        .collect();
    while server.state.long_polls.waiting_total() < queries.len()
        || server.state.waiting.readers() < 2
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(server.state.waiting.readers(), 2, "two pages are waited on");

    server.create_portfolio("acme", "P1").await;
    for (query, poll) in queries.iter().zip(polls) {
        let (link, page) = poll.await.unwrap();
        assert_eq!(page["data"][0]["data"]["id"], "P1");
        let next = page["next_cursor"].as_str().unwrap();
        let expected_tail = match query.split_once('&') {
            Some((wait, types)) => format!("&{types}&{wait}>; rel=\"next\""),
            None => format!("&{query}>; rel=\"next\""),
        };
        assert!(
            link.starts_with(&format!("</events/?after={next}&limit="))
                && link.ends_with(&expected_tail),
            "{query} was answered with the link {link}"
        );
    }
}

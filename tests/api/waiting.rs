//! Long-polls waiting for the same page share one reader, which wakes them only when the
//! page has events for them; a page nothing has come for is answered empty at the
//! deadline, and a reader stops when nobody waits on it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::helpers::TestServer;

const UNFILTERED: usize = 20;
const FILTERED: usize = 10;
/// The filtered long-polls' wait: nothing of their type comes, so they answer at it.
const FILTERED_WAIT: Duration = Duration::from_secs(3);

#[sqlx::test]
async fn long_polls_on_one_page_share_one_reader_and_wake_only_for_events(pool: sqlx::PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let first: Value = server.get("/events/", &key).await.json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();

    let poll = |query: String| {
        let (http, key) = (server.http.clone(), key.clone());
        let url = server.url(&format!("/events/?after={cursor}&{query}"));
        tokio::spawn(async move {
            let response = http.get(url).bearer_auth(key).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        })
    };
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

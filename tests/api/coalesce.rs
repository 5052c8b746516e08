//! Long-polls looking again share one read only when it started after what woke them: the
//! same notification, or the same timer. A read is kept for waiters that run late, and
//! never served to one woken by a later commit.

use eventgate::feed::PageRequest;
use eventgate::feed::coalesce::Fresh;
use sqlx::PgPool;
use tokio::time::Instant;

use crate::helpers::TestServer;

async fn events_seen(server: &TestServer, fresh: Fresh) -> usize {
    let request = PageRequest {
        tenant: "acme".into(),
        after: None,
        types: None,
        limit: 100,
    };
    let page = server
        .state
        .coalescer
        .read(&server.pool, &request, fresh)
        .await
        .expect("a page");
    page.count
}

fn woken_by(notification: u64) -> Fresh {
    Fresh {
        woken_at: notification,
        now: notification,
        not_before: None,
    }
}

#[sqlx::test]
async fn a_read_is_shared_by_waiters_woken_by_the_same_notification_only(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P0").await;
    server.settle().await;
    assert_eq!(events_seen(&server, woken_by(1)).await, 1);

    // Committed after that read: a waiter still on notification 1 runs late and takes the
    // read already made (which saw notification 1's commit), without reading again.
    server.create_portfolio("acme", "P1").await;
    server.settle().await;
    assert_eq!(
        events_seen(&server, woken_by(1)).await,
        1,
        "the kept read, not a new one"
    );
    // Woken by the commit of P1: the kept read started before it, so it reads afresh.
    assert_eq!(events_seen(&server, woken_by(2)).await, 2);

    // A timer that fired after the last read started needs a read of its own, even with
    // no new notification (notifications can be lost).
    server.create_portfolio("acme", "P2").await;
    server.settle().await;
    let timer = Fresh {
        not_before: Some(Instant::now()),
        ..woken_by(2)
    };
    assert_eq!(events_seen(&server, timer).await, 3);
    // And that read, the newest, serves the waiters still on notification 2.
    assert_eq!(events_seen(&server, woken_by(2)).await, 3);
    assert_eq!(
        server.state.coalescer.len(),
        1,
        "one read kept per page asked"
    );
}

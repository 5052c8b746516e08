//! Group commit: writes that arrive together are made in one transaction, each answered
//! by its own outcome, a refused one undone alone; a batch that fails as a whole has each
//! of its writes tried alone. The batches are made deterministic by holding the lock the
//! first write needs until the others are queued behind it.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::helpers::{PLATFORM_KEY, TestServer, config};

/// A server with one committer, so that writes queue behind the one it is making.
async fn one_committer(pool: PgPool, extra: &[&str]) -> TestServer {
    let mut args = vec!["--write-committers", "1", "--write-batch-max", "60"];
    args.extend_from_slice(extra);
    TestServer::start_with(pool, config(&args)).await
}

async fn deposit(
    server: &TestServer,
    key: &str,
    idempotency_key: &str,
    portfolio: &str,
) -> Response {
    server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .json(&json!({"data": {"amount": "2.50", "currency": "EUR", "portfolio": portfolio}}))
        .send()
        .await
        .expect("deposit sent")
}

/// Sends a deposit from a task of its own; its status when answered.
fn spawn_deposit(
    server: &TestServer,
    key: &str,
    idempotency_key: &'static str,
    portfolio: &'static str,
) -> tokio::task::JoinHandle<StatusCode> {
    let (base, http, key) = (server.base.clone(), server.http.clone(), key.to_owned());
    tokio::spawn(async move {
        http.post(format!("{base}/events/deposit/"))
            .bearer_auth(key)
            .header("idempotency-key", idempotency_key)
            .json(&json!({"data": {"amount": "2.50", "currency": "EUR", "portfolio": portfolio}}))
            .send()
            .await
            .unwrap()
            .status()
    })
}

/// Holds `portfolio`'s entity lock (as a writer would) in a transaction of the test's own.
async fn hold_portfolio(pool: &PgPool, portfolio: &str) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("acme/portfolio/{portfolio}"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Waits until some backend waits for an advisory lock in this test's database (the
/// committer, blocked); pg_locks shows the whole cluster, where other tests run too.
async fn until_a_writer_waits(pool: &PgPool) {
    for _ in 0..600 {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                             WHERE locktype = 'advisory' AND NOT granted
                               AND database = (SELECT oid FROM pg_database
                                                WHERE datname = current_database()))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the first write never waited for the held lock");
}

async fn until_queued(server: &TestServer, writes: usize) {
    for _ in 0..600 {
        if server.state.writes.queued() == writes {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} writes queued, not {writes}",
        server.state.writes.queued()
    );
}

#[sqlx::test]
async fn writes_queued_together_commit_together_each_with_its_own_answer(pool: PgPool) {
    let server = one_committer(pool.clone(), &[]).await;
    let key = server.tenant_with_key("acme").await;
    for portfolio in ["P1", "P2"] {
        server.create_portfolio("acme", portfolio).await;
    }
    let inactive = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P2", "external_id": "e", "value": "INACTIVE"}),
        )
        .await;
    assert_eq!(inactive.status(), StatusCode::CREATED);

    let blocker = hold_portfolio(&pool, "P1").await;
    let first = spawn_deposit(&server, &key, "first", "P1");
    until_a_writer_waits(&pool).await;

    // Behind it: 20 new deposits, 3 into an INACTIVE portfolio, 3 into an unknown one,
    // and the same deposit 3 times under one key.
    let mut requests: Vec<(&str, String, &str)> = Vec::new();
    for i in 0..20 {
        requests.push(("new", format!("new-{i}"), "P1"));
    }
    for i in 0..3 {
        requests.push(("inactive", format!("inactive-{i}"), "P2"));
        requests.push(("unknown", format!("unknown-{i}"), "P9"));
        requests.push(("same", "same-key".to_owned(), "P1"));
    }
    let sent = join_all(requests.iter().map(|(kind, idempotency_key, portfolio)| {
        let server = &server;
        let key = &key;
        async move {
            let response = deposit(server, key, idempotency_key, portfolio).await;
            let replayed = response.headers().contains_key("idempotent-replayed");
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            (*kind, status, replayed, body)
        }
    }));
    let queued_then_released = async {
        until_queued(&server, requests.len()).await;
        blocker.commit().await.unwrap();
    };
    let (answers, ()) = tokio::join!(sent, queued_then_released);
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);

    let mut same_bodies = Vec::new();
    for (kind, status, replayed, body) in &answers {
        match *kind {
            "new" => assert_eq!(*status, StatusCode::CREATED, "{body}"),
            "inactive" => assert_eq!(*status, StatusCode::CONFLICT, "{body}"),
            "unknown" => assert_eq!(*status, StatusCode::NOT_FOUND, "{body}"),
            _ => {
                assert_eq!(*status, StatusCode::CREATED, "{body}");
                same_bodies.push((*replayed, body.clone()));
            }
        }
    }
    assert_eq!(
        same_bodies.iter().filter(|(replayed, _)| !replayed).count(),
        1,
        "one key, one deposit: the others replay it"
    );
    assert!(
        same_bodies
            .iter()
            .all(|(_, body)| *body == same_bodies[0].1)
    );

    // 1 + 20 + 1 deposits; the 23 queued writes committed in one transaction.
    assert_eq!(server.count("SELECT count(*) FROM deposits").await, 22);
    assert_eq!(
        server
            .count(
                "SELECT count(DISTINCT o.tx_id) FROM outbox o JOIN deposits d ON d.event_id = o.id
                 JOIN idempotency_keys k ON k.key = d.idempotency_key
                 WHERE k.key <> 'first'"
            )
            .await,
        1,
        "one commit for the batch"
    );
    // The refused writes left their keys free and wrote nothing.
    assert_eq!(
        server
            .count("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'inactive-%' OR key LIKE 'unknown-%'")
            .await,
        0
    );
    let funded: String =
        sqlx::query_scalar("SELECT total::text FROM portfolio_funding WHERE portfolio_id = 'P1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(funded, "55.00", "22 deposits of 2.50");
}

#[sqlx::test]
async fn a_batch_that_fails_whole_has_each_write_tried_alone(pool: PgPool) {
    // A lock held past the wait fails the batch that needs it; tried alone, the writes
    // that do not need it are made.
    let server = one_committer(pool.clone(), &["--idempotency-wait-ms", "2000"]).await;
    let key = server.tenant_with_key("acme").await;
    for portfolio in ["P1", "P3"] {
        server.create_portfolio("acme", portfolio).await;
    }
    let blocker = hold_portfolio(&pool, "P1").await;
    let first = spawn_deposit(&server, &key, "held-0", "P1");
    until_a_writer_waits(&pool).await;
    let later = join_all([("held-1", "P1"), ("free-1", "P3"), ("free-2", "P3")].map(
        |(idempotency_key, portfolio)| {
            let server = &server;
            let key = &key;
            async move {
                let status = deposit(server, key, idempotency_key, portfolio)
                    .await
                    .status();
                (portfolio, status)
            }
        },
    ));
    let (answers, ()) = tokio::join!(later, until_queued(&server, 3));
    assert_eq!(
        first.await.unwrap(),
        StatusCode::CONFLICT,
        "the held portfolio, alone"
    );
    for (portfolio, status) in answers {
        let expected = if portfolio == "P1" {
            StatusCode::CONFLICT
        } else {
            StatusCode::CREATED
        };
        assert_eq!(status, expected, "{portfolio}");
    }
    drop(blocker);
    assert_eq!(server.count("SELECT count(*) FROM deposits").await, 2);
}

/// A committer makes its batches on a connection it keeps, however many the pool holds
/// idle (which it hands out in turn), so its session's plans stay warm; when that
/// connection dies, the next write is made on a new one, not refused.
#[sqlx::test]
async fn a_committer_keeps_its_connection_and_replaces_one_that_died(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1"]).await;
    // Idle connections for the pool to hand out in turn (it holds five at most).
    let idle: Vec<_> = join_all((0..3).map(|_| pool.acquire()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(idle);
    // Outside the pool: its statements must not take the place of the committer's.
    let mut observer = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    let mut sessions = Vec::new();
    for n in 0..4 {
        let response = deposit(&server, &key, &format!("kept-{n}"), "P1").await;
        assert_eq!(response.status(), StatusCode::CREATED);
        sessions.push(last_committing_session(&mut observer).await);
    }
    let kept = sessions[0];
    assert!(
        sessions.iter().all(|each| *each == kept),
        "every batch on the same session: {sessions:?}"
    );

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(kept)
        .fetch_one(&mut observer)
        .await
        .unwrap();
    assert!(terminated);
    for _ in 0..200 {
        let alive: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(kept)
                .fetch_one(&mut observer)
                .await
                .unwrap();
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = deposit(&server, &key, "after-the-kill", "P1").await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "made on a new session"
    );
    assert_ne!(
        last_committing_session(&mut observer).await,
        kept,
        "not on the terminated session"
    );
    assert_eq!(server.count("SELECT count(*) FROM deposits").await, 5);
}

/// The session of this test's database that began a group commit last.
async fn last_committing_session(observer: &mut PgConnection) -> i32 {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND query LIKE '%FROM eventgate_write(%'
            AND pid <> pg_backend_pid()
          ORDER BY query_start DESC LIMIT 1",
    )
    .fetch_one(observer)
    .await
    .unwrap()
}

/// A batch adds up its funding after its last write; a portfolio funded and then removed
/// in the same batch fails the batch as a whole (the funding row's foreign key), and each
/// write made alone leaves the read model consistent, whatever order they then take.
#[sqlx::test]
async fn a_portfolio_funded_then_removed_in_one_batch_is_made_consistently(pool: PgPool) {
    let server = one_committer(pool.clone(), &["--preview-events", "true"]).await;
    let key = server.tenant_with_key("acme").await;
    for portfolio in ["P1", "P2"] {
        server.create_portfolio("acme", portfolio).await;
    }
    let blocker = hold_portfolio(&pool, "P2").await;
    let first = spawn_deposit(&server, &key, "ahead", "P2");
    until_a_writer_waits(&pool).await;
    let funded = spawn_deposit(&server, &key, "funds-p1", "P1");
    until_queued(&server, 1).await;
    let removal = {
        let server = &server;
        async move {
            server
                .publish("acme", "portfolios.removal", json!({"id": "P1"}))
                .await
                .status()
        }
    };
    let (removed, ()) = tokio::join!(removal, async {
        until_queued(&server, 2).await;
        drop(blocker);
    });
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    assert_eq!(removed, StatusCode::CREATED, "the removal is made");
    let deposit = funded.await.unwrap();
    assert!(
        [StatusCode::CREATED, StatusCode::NOT_FOUND].contains(&deposit),
        "the deposit is made before the removal or refused after it, not {deposit}"
    );
    let made = i64::from(deposit == StatusCode::CREATED);
    assert_eq!(
        server
            .count("SELECT count(*) FROM deposits WHERE portfolio_id = 'P1'")
            .await,
        made
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM portfolio_funding WHERE portfolio_id = 'P1'")
            .await,
        0,
        "the removal took the funding with it"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM portfolio_funding WHERE portfolio_id = 'P2'")
            .await,
        1,
        "the write ahead funded its portfolio"
    );
}

/// Makes every write one by one fail: a batch that still commits was made at once.
pub(crate) async fn forbid_writes_one_by_one(pool: &PgPool) {
    sqlx::query(
        "CREATE OR REPLACE FUNCTION eventgate_apply_write(w jsonb,
             OUT o_replayed boolean, OUT o_fingerprint bytea, OUT o_status smallint,
             OUT o_body bytea, OUT o_location text, OUT o_funding jsonb)
         LANGUAGE plpgsql AS $$
         BEGIN
             RAISE EXCEPTION 'this test makes no write one by one';
         END
         $$",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Queues `requests` (idempotency key, portfolio, amount), deposits into acme's
/// portfolios, as one batch: see `one_batch_of`.
async fn one_batch(
    server: &TestServer,
    pool: &PgPool,
    key: &str,
    requests: &[(String, &'static str, &'static str)],
) -> Vec<(StatusCode, bool, Value)> {
    let deposits = requests
        .iter()
        .map(|(idempotency_key, portfolio, amount)| {
            server
                .http
                .post(server.url("/events/deposit/"))
                .bearer_auth(key)
                .header("idempotency-key", idempotency_key)
                .json(
                    &json!({"data": {"amount": amount, "currency": "EUR", "portfolio": portfolio}}),
                )
        })
        .collect();
    one_batch_of(server, pool, key, deposits).await
}

/// Queues `requests` one after the other, in order, behind a deposit (acme's, with `key`)
/// that waits for P1's lock, then lets them go as one batch; their answers, in order.
pub(crate) async fn one_batch_of(
    server: &TestServer,
    pool: &PgPool,
    key: &str,
    requests: Vec<RequestBuilder>,
) -> Vec<(StatusCode, bool, Value)> {
    let blocker = hold_portfolio(pool, "P1").await;
    let first = spawn_deposit(server, key, "first", "P1");
    until_a_writer_waits(pool).await;
    let mut sent = Vec::new();
    for request in requests {
        let answer = tokio::spawn(request.send());
        for _ in 0..600 {
            if server.state.writes.queued() == sent.len() + 1 {
                break;
            }
            if answer.is_finished() {
                let response = answer.await.unwrap().expect("request sent");
                panic!(
                    "request {} was answered before it was queued: {} {}",
                    sent.len(),
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent.push(answer);
    }
    until_queued(server, sent.len()).await;
    blocker.commit().await.unwrap();
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    let mut answers = Vec::new();
    for response in sent {
        let response = response.await.unwrap().expect("request sent");
        let replayed = response.headers().contains_key("idempotent-replayed");
        answers.push((response.status(), replayed, response.json().await.unwrap()));
    }
    answers
}

/// A platform publish of `ty` about acme's `data`.
pub(crate) fn platform_publish(
    server: &TestServer,
    tenant: &str,
    ty: &str,
    data: Value,
) -> RequestBuilder {
    let (subject, action) = ty.split_once('.').expect("subject.action");
    server
        .http
        .post(server.url("/platform/events"))
        .bearer_auth(PLATFORM_KEY)
        .json(&json!({"tenant": tenant, "subject": subject, "action": action, "data": data}))
}

/// A batch of plain deposits (each one funding event into a portfolio that takes it) is
/// made by one set-based statement: with the one-by-one path made to fail, every deposit
/// of the batch still commits, in one transaction, each answered with its own event's
/// place in the feed; a key past its lifetime is taken over; the funding adds up.
#[sqlx::test]
async fn a_batch_of_plain_deposits_is_made_at_once_each_with_its_own_answer(pool: PgPool) {
    // Without answers kept in memory, which would replay the expired key.
    let server = one_committer(pool.clone(), &["--replay-cache-entries", "0"]).await;
    let key = server.tenant_with_key("acme").await;
    for portfolio in ["P1", "P2"] {
        server.create_portfolio("acme", portfolio).await;
    }
    let expired = deposit(&server, &key, "expired", "P2").await;
    assert_eq!(expired.status(), StatusCode::CREATED);
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'expired'")
        .execute(&pool)
        .await
        .unwrap();
    forbid_writes_one_by_one(&pool).await;

    let mut requests: Vec<(String, &'static str, &'static str)> = (0..20)
        .map(|i| {
            (
                format!("plain-{i}"),
                if i % 4 == 0 { "P2" } else { "P1" },
                "1.25",
            )
        })
        .collect();
    requests.push(("expired".to_owned(), "P2", "7"));
    let answers = one_batch(&server, &pool, &key, &requests).await;
    for (status, replayed, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert!(!replayed, "{body}");
    }

    assert_eq!(
        server
            .count(
                "SELECT count(DISTINCT o.tx_id) FROM outbox o JOIN deposits d ON d.event_id = o.id
                 WHERE d.idempotency_key LIKE 'plain-%'
                    OR (d.idempotency_key = 'expired' AND d.amount = 7)"
            )
            .await,
        1,
        "one commit for the batch"
    );
    let stored = server
        .count(
            "SELECT count(*) FROM idempotency_keys k JOIN deposits d
                 ON d.idempotency_key = k.key AND convert_from(k.response_body, 'UTF8')::jsonb->>'id' = d.id::text
              WHERE k.key LIKE 'plain-%' OR k.key = 'expired'",
        )
        .await;
    assert_eq!(stored, 21, "each key holds the answer of its own deposit");
    let totals: Vec<(String, String)> = sqlx::query_as(
        "SELECT portfolio_id, total::text FROM portfolio_funding ORDER BY portfolio_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        totals,
        [
            ("P1".to_owned(), "21.25".to_owned()), // "first" (2.50) and 15 × 1.25
            ("P2".to_owned(), "15.75".to_owned()), // "expired" (2.50 and 7), 5 × 1.25
        ]
    );

    // Each answer's cursor is its own event's place: the feed after it starts right after.
    server.settle().await;
    let whole: Value = server
        .get("/events/?limit=1000", &key)
        .await
        .json()
        .await
        .unwrap();
    let all = crate::feed::ids(&whole);
    for (_, _, body) in &answers {
        let funding = &body["funding_event"];
        let at = all
            .iter()
            .position(|id| funding["id"] == id.as_str())
            .expect("the funding event is in the feed");
        let cursor = funding["cursor"].as_str().unwrap();
        let after: Value = server
            .get(&format!("/events/?after={cursor}&limit=1000"), &key)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(crate::feed::ids(&after), all[at + 1..], "{body}");
    }
}

/// A plain batch that names one key twice cannot claim it twice in one statement: it is
/// made one by one, so the key's first deposit is made and the second replays it.
#[sqlx::test]
async fn a_plain_batch_naming_one_key_twice_is_made_one_by_one(pool: PgPool) {
    let server = one_committer(pool.clone(), &[]).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let requests: Vec<(String, &'static str, &'static str)> = vec![
        ("plain-1".to_owned(), "P1", "1"),
        ("twice".to_owned(), "P1", "3"),
        ("plain-2".to_owned(), "P1", "1"),
        ("twice".to_owned(), "P1", "3"),
    ];
    let answers = one_batch(&server, &pool, &key, &requests).await;
    let twice: Vec<_> = requests
        .iter()
        .zip(&answers)
        .filter(|((idempotency_key, _, _), _)| idempotency_key == "twice")
        .map(|(_, answer)| answer)
        .collect();
    for (status, _, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(
        twice.iter().filter(|(_, replayed, _)| *replayed).count(),
        1,
        "one of the two replays the other"
    );
    assert_eq!(twice[0].2, twice[1].2, "both answers are the one deposit's");
    assert_eq!(server.count("SELECT count(*) FROM deposits").await, 4);
    let total: String =
        sqlx::query_scalar("SELECT total::text FROM portfolio_funding WHERE portfolio_id = 'P1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(total, "7.50", "2.50 + 1 + 3 + 1");
}

/// Platform publishes whose rules need no earlier write of the batch (status and divest
/// amount updates, fundings, events that change no read model) are made by the set-based
/// statement too, and leave what the loop leaves: each portfolio's last status, divest
/// amount and external id in batch order, the fundings added up, the events in the feed in
/// batch order, one commit, a keyed publish's answer stored.
#[sqlx::test]
async fn a_batch_of_plain_publishes_is_made_at_once_leaving_what_one_by_one_leaves(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1", "P2"]).await;
    forbid_writes_one_by_one(&pool).await;
    let status = |value: &str, external_id: &str| {
        platform_publish(
            &server,
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": external_id, "value": value}),
        )
    };
    let divest = |amount: &str, currency: &str, external_id: &str| {
        platform_publish(
            &server,
            "acme",
            "portfolios.divest-amount-update",
            json!({"id": "P2", "external_id": external_id, "divest_amount": amount, "currency": currency}),
        )
    };
    let funding = |portfolio: &str, value: &str| {
        platform_publish(
            &server,
            "acme",
            "portfolios.funding",
            json!({"id": portfolio, "value": value, "currency": "EUR"}),
        )
    };
    let keyed_body = json!({"tenant": "acme", "subject": "users", "action": "status-update",
                            "data": {"id": "U1", "value": "WAITING_FOR_SIGNATURE"}});
    let keyed = || {
        server
            .http
            .post(server.url("/platform/events"))
            .bearer_auth(PLATFORM_KEY)
            .header("idempotency-key", "publish-1")
            .json(&keyed_body)
    };
    let requests = vec![
        status("WAITING_FOR_POLICY", "s1"),
        funding("P1", "100"),
        divest("1.5", "EUR", "d1"),
        status("ACTIVE", "s2"),
        keyed(),
        divest("2.25", "USD", "d2"),
        funding("P2", "3"),
        funding("P1", "0.5"),
        status("WAITING_FOR_FUNDS", "s3"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    for (status, replayed, body) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
        assert!(!replayed, "{body}");
    }

    // id, status, external id, divest amount and its currency.
    type Portfolio = (
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
    );
    let portfolios: Vec<Portfolio> = sqlx::query_as(
        "SELECT id, status, external_id, divest_amount, divest_currency FROM portfolios
              ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        portfolios,
        [
            (
                "P1".into(),
                Some("WAITING_FOR_FUNDS".into()),
                "s3".into(),
                None,
                None
            ),
            (
                "P2".into(),
                None,
                "d2".into(),
                Some("2.25".into()),
                Some("USD".into())
            ),
        ]
    );
    let totals: Vec<(String, String)> = sqlx::query_as(
        "SELECT portfolio_id, total::text FROM portfolio_funding ORDER BY portfolio_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        totals,
        [
            ("P1".to_owned(), "103.00".to_owned()), // the deposit ahead (2.50), 100 and 0.5
            ("P2".to_owned(), "3".to_owned()),
        ]
    );

    let ids: Vec<String> = answers
        .iter()
        .map(|(_, _, body)| body["id"].as_str().expect("the envelope's id").to_owned())
        .collect();
    assert_one_commit_last_in_feed(&server, &pool, &key, &ids).await;
    assert_replays(keyed(), &answers[4].2).await;
}

/// The events `ids` were appended by one commit and are the last of acme's feed, in order.
pub(crate) async fn assert_one_commit_last_in_feed(
    server: &TestServer,
    pool: &PgPool,
    key: &str,
    ids: &[String],
) {
    let in_one_commit: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT tx_id) FROM outbox WHERE id::text = ANY($1)")
            .bind(ids)
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(in_one_commit, 1, "one commit for the batch");
    server.settle().await;
    let feed: Value = server
        .get("/events/?limit=1000", key)
        .await
        .json()
        .await
        .unwrap();
    let in_feed = crate::feed::ids(&feed);
    assert_eq!(
        in_feed[in_feed.len() - ids.len()..],
        *ids,
        "the feed holds them in batch order"
    );
}

/// Sent again, `request` (a keyed write of the batch) replays the answer it first got.
pub(crate) async fn assert_replays(request: RequestBuilder, first: &Value) {
    let retried = request.send().await.unwrap();
    assert_eq!(retried.status(), StatusCode::CREATED);
    assert!(retried.headers().contains_key("idempotent-replayed"));
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried, *first, "the keyed write's answer was stored");
}

/// A deposit is checked against the status the writes before it in its batch left: one
/// into a portfolio made INACTIVE earlier in the batch is refused, as one by one refuses it.
#[sqlx::test]
async fn a_deposit_after_its_portfolio_is_made_inactive_in_its_batch_is_refused(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1", "P2"]).await;
    let requests = vec![
        deposit_request(&server, &key, "P2", "before"),
        platform_publish(
            &server,
            "acme",
            "portfolios.status-update",
            json!({"id": "P2", "external_id": "e", "value": "INACTIVE"}),
        ),
        deposit_request(&server, &key, "P2", "after"),
        deposit_request(&server, &key, "P1", "elsewhere"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(
        statuses(&answers),
        [
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::CONFLICT,
            StatusCode::CREATED
        ],
        "{answers:?}"
    );
    assert_eq!(made_deposits(&pool).await, ["before", "elsewhere", "first"]);
}

/// A publish for a tenant that does not exist, in a batch of otherwise plain writes, is
/// refused alone; the others are made.
#[sqlx::test]
async fn a_plain_batch_refuses_a_publish_for_no_tenant_and_makes_the_rest(pool: PgPool) {
    refuses_one_and_makes_the_rest(
        pool,
        "nobody",
        "users.status-update",
        json!({"id": "U1", "value": "WAITING_FOR_SIGNATURE"}),
    )
    .await;
}

/// An update of a portfolio that does not exist, in a batch of otherwise plain writes, is
/// refused alone; the others are made.
#[sqlx::test]
async fn a_plain_batch_refuses_an_update_of_no_portfolio_and_makes_the_rest(pool: PgPool) {
    refuses_one_and_makes_the_rest(
        pool,
        "acme",
        "portfolios.status-update",
        json!({"id": "P9", "external_id": "e", "value": "ACTIVE"}),
    )
    .await;
}

/// A batch of plain writes with the publish of `ty` about `data` for `tenant` amid them:
/// that publish is 404 and leaves nothing; the others are made.
async fn refuses_one_and_makes_the_rest(pool: PgPool, tenant: &str, ty: &str, data: Value) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1", "P2", "P3"]).await;
    let requests = vec![
        deposit_request(&server, &key, "P2", "before"),
        platform_publish(&server, tenant, ty, data),
        platform_publish(
            &server,
            "acme",
            "portfolios.status-update",
            json!({"id": "P3", "external_id": "e", "value": "ACTIVE"}),
        ),
        deposit_request(&server, &key, "P1", "after"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(
        statuses(&answers),
        [
            StatusCode::CREATED,
            StatusCode::NOT_FOUND,
            StatusCode::CREATED,
            StatusCode::CREATED
        ],
        "{answers:?}"
    );
    assert_eq!(made_deposits(&pool).await, ["after", "before", "first"]);
    assert_eq!(
        server
            .count("SELECT count(*) FROM outbox WHERE tenant_id = 'nobody' OR entity_id = 'P9'")
            .await,
        0,
        "nothing of the refused write was appended"
    );
}

/// A server with one committer (and the preview `users.*` types) and tenant `acme` with
/// `portfolios`; acme's key.
pub(crate) async fn acme_with_portfolios(
    pool: PgPool,
    portfolios: &[&str],
) -> (TestServer, String) {
    let server = one_committer(pool, &["--preview-events", "true"]).await;
    let key = server.tenant_with_key("acme").await;
    for portfolio in portfolios {
        server.create_portfolio("acme", portfolio).await;
    }
    (server, key)
}

/// Each answer's status, in order.
pub(crate) fn statuses(answers: &[(StatusCode, bool, Value)]) -> Vec<StatusCode> {
    answers.iter().map(|(status, _, _)| *status).collect()
}

fn deposit_request(
    server: &TestServer,
    key: &str,
    portfolio: &str,
    idempotency_key: &str,
) -> RequestBuilder {
    server
        .http
        .post(server.url("/events/deposit/"))
        .bearer_auth(key)
        .header("idempotency-key", idempotency_key)
        .json(&json!({"data": {"amount": "5", "currency": "EUR", "portfolio": portfolio}}))
}

/// The idempotency keys of the deposits made, in order.
async fn made_deposits(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT idempotency_key FROM deposits ORDER BY idempotency_key")
        .fetch_all(pool)
        .await
        .unwrap()
}

//! Portfolio creations in a write batch (migration `20261206000016_set_based_creations`):
//! made by the set-based statement with the batch's other plain writes when no earlier
//! write of the batch could change what their check reads, and one by one otherwise, with
//! the same outcomes either way.

use reqwest::{RequestBuilder, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer};
use crate::write_batches::{
    acme_with_portfolios, assert_one_commit_last_in_feed, assert_replays, forbid_writes_one_by_one,
    one_batch_of, platform_publish, statuses,
};

fn creation(server: &TestServer, tenant: &str, portfolio: &str) -> RequestBuilder {
    platform_publish(
        server,
        tenant,
        "portfolios.creation",
        json!({"id": portfolio, "external_id": format!("x-{portfolio}"), "owned_by_user_id": "U7"}),
    )
}

/// The portfolios of acme: id, external id, owner, status.
async fn portfolios(pool: &PgPool) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT id, external_id, owned_by_user_id, status FROM portfolios
          WHERE tenant_id = 'acme' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn portfolio_ids(pool: &PgPool) -> Vec<String> {
    portfolios(pool).await.into_iter().map(|p| p.0).collect()
}

/// Creations of portfolios that do not exist yet, amid other plain writes, are made at once
/// (the one-by-one path made to fail): each portfolio stored as one by one stores it, each
/// event appended as a creation, in batch order, in one commit, a keyed creation's answer
/// stored for its retry.
#[sqlx::test]
async fn a_batch_of_new_portfolios_is_made_at_once_leaving_what_one_by_one_leaves(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1"]).await;
    forbid_writes_one_by_one(&pool).await;
    let keyed_body = json!({"tenant": "acme", "subject": "portfolios", "action": "creation",
                            "data": {"id": "P3", "external_id": "x-P3", "owned_by_user_id": "U7"}});
    let keyed = || {
        server
            .http
            .post(server.url("/platform/events"))
            .bearer_auth(PLATFORM_KEY)
            .header("idempotency-key", "create-P3")
            .json(&keyed_body)
    };
    let requests = vec![
        creation(&server, "acme", "P2"),
        platform_publish(
            &server,
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "s1", "value": "ACTIVE"}),
        ),
        keyed(),
        platform_publish(
            &server,
            "acme",
            "portfolios.funding",
            json!({"id": "P1", "value": "10", "currency": "EUR"}),
        ),
        creation(&server, "acme", "P4"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(statuses(&answers), [StatusCode::CREATED; 5], "{answers:?}");

    assert_eq!(
        portfolios(&pool).await,
        [
            ("P1".into(), "s1".into(), "U1".into(), Some("ACTIVE".into())),
            ("P2".into(), "x-P2".into(), "U7".into(), None),
            ("P3".into(), "x-P3".into(), "U7".into(), None),
            ("P4".into(), "x-P4".into(), "U7".into(), None),
        ]
    );
    let ids: Vec<String> = answers
        .iter()
        .map(|(_, _, body)| body["id"].as_str().expect("the envelope's id").to_owned())
        .collect();
    let changes: Vec<(String, String)> = sqlx::query_as(
        "SELECT entity_id, change FROM outbox WHERE id::text = ANY($1) ORDER BY seq",
    )
    .bind(&ids)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        changes,
        [
            ("P2".into(), "Created".into()),
            ("P1".into(), "Updated".into()),
            ("P3".into(), "Created".into()),
            ("P1".into(), "Updated".into()),
            ("P4".into(), "Created".into()),
        ]
    );
    assert_one_commit_last_in_feed(&server, &pool, &key, &ids).await;
    assert_replays(keyed(), &answers[2].2).await;
}

/// A batch creating a portfolio that exists, one twice, one for no tenant, and one that a
/// later write of the batch funds, gives each write what it gets alone: the second
/// creation of a portfolio is refused (409), as is that of one that exists, the one for
/// no tenant is 404, and the funding of a portfolio created just before it is made.
#[sqlx::test]
async fn creations_that_depend_on_the_batch_get_what_each_gets_alone(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1"]).await;
    let requests = vec![
        creation(&server, "acme", "P1"),
        creation(&server, "acme", "P2"),
        creation(&server, "acme", "P3"),
        creation(&server, "acme", "P3"),
        creation(&server, "nobody", "P4"),
        platform_publish(
            &server,
            "acme",
            "portfolios.funding",
            json!({"id": "P2", "value": "4", "currency": "EUR"}),
        ),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(
        statuses(&answers),
        [
            StatusCode::CONFLICT,
            StatusCode::CREATED,
            StatusCode::CREATED,
            StatusCode::CONFLICT,
            StatusCode::NOT_FOUND,
            StatusCode::CREATED,
        ],
        "{answers:?}"
    );
    assert_eq!(portfolio_ids(&pool).await, ["P1", "P2", "P3"]);
    assert_eq!(
        server
            .count(
                "SELECT count(*) FROM outbox WHERE change = 'Created' AND entity_id IN ('P1', 'P3')"
            )
            .await,
        2,
        "one creation event each for P1 (before the batch) and P3"
    );
    let funded: String =
        sqlx::query_scalar("SELECT total::text FROM portfolio_funding WHERE portfolio_id = 'P2'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(funded, "4");
}

/// A batch whose only dependency is one portfolio created twice (the check before the
/// batch finds it missing for both) makes it once and refuses the second creation.
#[sqlx::test]
async fn a_batch_creating_one_portfolio_twice_makes_it_once(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1"]).await;
    let requests = vec![
        creation(&server, "acme", "P2"),
        creation(&server, "acme", "P2"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(
        statuses(&answers),
        [StatusCode::CREATED, StatusCode::CONFLICT],
        "{answers:?}"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM outbox WHERE entity_id = 'P2'")
            .await,
        1
    );
}

/// A creation of a portfolio that exists, amid creations the batch could make at once, is
/// refused alone (409, nothing appended for it); the others are made.
#[sqlx::test]
async fn a_creation_of_a_portfolio_that_exists_is_refused_alone(pool: PgPool) {
    let (server, key) = acme_with_portfolios(pool.clone(), &["P1"]).await;
    let requests = vec![
        creation(&server, "acme", "P2"),
        creation(&server, "acme", "P1"),
        creation(&server, "acme", "P3"),
    ];
    let answers = one_batch_of(&server, &pool, &key, requests).await;
    assert_eq!(
        statuses(&answers),
        [
            StatusCode::CREATED,
            StatusCode::CONFLICT,
            StatusCode::CREATED
        ],
        "{answers:?}"
    );
    assert_eq!(
        server
            .count("SELECT count(*) FROM outbox WHERE change = 'Created' AND entity_id = 'P1'")
            .await,
        1,
        "only P1's own creation, before the batch"
    );
    assert_eq!(portfolio_ids(&pool).await, ["P1", "P2", "P3"]);
}

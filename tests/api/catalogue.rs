//! The catalogue, the platform publish API and the read model.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{PLATFORM_KEY, TestServer, assert_problem, config};

/// One valid event of every type, in an order whose state rules all pass.
pub fn every_type() -> Vec<(&'static str, Value)> {
    vec![
        (
            "portfolios.creation",
            json!({"id": "P1", "external_id": "an-external-id", "owned_by_user_id": "a-user-id"}),
        ),
        (
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "an-external-id", "value": "WAITING_FOR_FUNDS"}),
        ),
        (
            "portfolios.funding",
            json!({"id": "P1", "value": "500", "currency": "EUR"}),
        ),
        (
            "portfolios.divest-amount-update",
            json!({"id": "P1", "external_id": "an-external-id", "divest_amount": "1.234", "currency": "EUR"}),
        ),
        (
            "optimizations.status-update",
            json!({"id": "O1", "portfolio_id": "P1", "external_id": "an-external-id", "is_recommended": true, "value": "SUCCESS"}),
        ),
        (
            "optimizations.owner-choice-update",
            json!({"id": "O1", "portfolio_id": "P1", "external_id": "an-external-id", "value": "ACCEPT"}),
        ),
        (
            "users.creation",
            json!({"id": "U01ARZ3NDEKTSV4RRFFQ69G5FAV", "user_data": {"email": "ashok.kumar@example.com", "phone": "+12345667", "first_name": "Ashok", "last_name": "Kumar"}}),
        ),
        (
            "users.status-update",
            json!({"id": "U01ARZ3NDEKTSV4RRFFQ69G5FAV", "value": "WAITING_FOR_SIGNATURE"}),
        ),
        (
            "users.account-number-update",
            json!({"id": "U01ARZ3NDEKTSV4RRFFQ69G5FAV", "value": "BE01234567891234"}),
        ),
        (
            "profiles.result-update",
            json!({"id": "X01FWDZGKEV3S7SKAX90637H077", "linked_portfolio_id": "P1"}),
        ),
        (
            "profiles.assessment-result-update",
            json!({"id": "X01FWDZGKEV3S7SKAX90637H077", "questionnaire_id": "Q123"}),
        ),
        (
            "reports.status-update",
            json!({"id": "R01FWDZGKEV3S7SKAX90637H077", "value": "READY", "output_format": "VIDEO"}),
        ),
        ("portfolios.removal", json!({"id": "P1"})),
    ]
}

/// `data` as events carry it: amounts, published as decimal strings, are JSON numbers with
/// the same digits.
fn as_carried(mut data: Value) -> Value {
    for amount in ["value", "divest_amount"] {
        if let Some(Value::String(text)) = data.get(amount)
            && let Ok(number) = text.parse::<serde_json::Number>()
        {
            data[amount] = Value::Number(number);
        }
    }
    data
}

#[sqlx::test]
async fn every_type_round_trips_as_a_seed_shaped_envelope(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&["--preview-events", "true"])).await;
    server.tenant_with_key("acme").await;
    let types = every_type();
    let published = eventgate::catalogue::EventType::all()
        .filter(|ty| !ty.is_emitted())
        .count();
    assert_eq!(
        types.len(),
        published,
        "every type the platform publishes is exercised"
    );
    for (ty, data) in types {
        let response = server.publish("acme", ty, data.clone()).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{ty}");
        let raw = response.text().await.unwrap();
        assert!(raw.starts_with("{\"id\":\""), "envelope field order: {raw}");
        let envelope: Value = serde_json::from_str(&raw).unwrap();
        let (subject, action) = ty.split_once('.').unwrap();
        let id = envelope["id"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        let created = envelope["created"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'));
        assert_eq!(
            envelope,
            json!({"id": id, "created": created, "version": "1.0.0", "subject": subject, "action": action, "data": as_carried(data)}),
            "{ty}"
        );
        let stored: String = sqlx::query_scalar("SELECT envelope FROM outbox WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&server.pool)
            .await
            .unwrap();
        assert_eq!(stored, raw, "the outbox holds exactly what was returned");
    }
}

#[sqlx::test]
async fn full_withdrawal_is_emitted_exactly_as_1e100(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let body = r#"{"tenant":"acme","subject":"portfolios","action":"divest-amount-update",
        "data":{"id":"P1","external_id":"e","divest_amount":1e100,"currency":"EUR"}}"#;
    let response = server
        .http
        .post(server.url("/platform/events"))
        .bearer_auth(PLATFORM_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let raw = response.text().await.unwrap();
    assert!(raw.contains(r#""divest_amount":1e100,"#), "{raw}");
    let portfolio = server
        .get("/portfolios/P1", &key)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        portfolio.contains(r#""divest_amount":1e100,"#),
        "{portfolio}"
    );
}

#[sqlx::test]
async fn state_rules_reject_events_and_write_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let before = server.count("SELECT count(*) FROM outbox").await;

    let again = server
        .publish(
            "acme",
            "portfolios.creation",
            json!({"id": "P1", "external_id": "e", "owned_by_user_id": "U"}),
        )
        .await;
    assert_problem(again, StatusCode::CONFLICT).await;
    let unknown = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "NOPE", "external_id": "e", "value": "ACTIVE"}),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND).await;
    let opt_unknown_portfolio = server
        .publish("acme", "optimizations.status-update", json!({"id": "O1", "portfolio_id": "NOPE", "external_id": "e", "is_recommended": true, "value": "SUCCESS"}))
        .await;
    assert_problem(opt_unknown_portfolio, StatusCode::NOT_FOUND).await;
    let choice_first = server
        .publish(
            "acme",
            "optimizations.owner-choice-update",
            json!({"id": "O1", "portfolio_id": "P1", "external_id": "e", "value": "ACCEPT"}),
        )
        .await;
    assert_problem(choice_first, StatusCode::CONFLICT).await;
    let no_tenant = server
        .publish(
            "ghost",
            "portfolios.creation",
            json!({"id": "P9", "external_id": "e", "owned_by_user_id": "U"}),
        )
        .await;
    assert_problem(no_tenant, StatusCode::NOT_FOUND).await;

    let unknown_type = server
        .publish("acme", "portfolios.teleport", json!({"id": "P1"}))
        .await;
    let problem = assert_problem(unknown_type, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["field"], "action");
    let unknown_field = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "e", "value": "ACTIVE", "colour": "red"}),
        )
        .await;
    let problem = assert_problem(unknown_field, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem["field"].as_str().unwrap().starts_with("data"),
        "{problem}"
    );
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let bad_enum = server
        .publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "e", "value": "SLEEPING"}),
        )
        .await;
    let problem = assert_problem(bad_enum, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["field"], "data.value");
    let float_money = server
        .publish(
            "acme",
            "portfolios.funding",
            json!({"id": "P1", "value": "12,5", "currency": "EUR"}),
        )
        .await;
    let problem = assert_problem(float_money, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["field"], "data.value");

    assert_eq!(
        server.count("SELECT count(*) FROM outbox").await,
        before,
        "nothing appended"
    );
    assert_eq!(server.count("SELECT count(*) FROM optimizations").await, 0);
}

#[sqlx::test]
async fn optimization_lifecycle_maps_to_created_then_updated(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    for value in ["PENDING", "SUCCESS"] {
        let response = server
            .publish("acme", "optimizations.status-update", json!({"id": "O1", "portfolio_id": "P1", "external_id": "e", "is_recommended": true, "value": value}))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let choice = server
        .publish(
            "acme",
            "optimizations.owner-choice-update",
            json!({"id": "O1", "portfolio_id": "P1", "external_id": "e", "value": "ACCEPT"}),
        )
        .await;
    assert_eq!(choice.status(), StatusCode::CREATED);
    let changes: Vec<String> = sqlx::query_scalar(
        "SELECT change FROM outbox WHERE entity = 'Optimization' ORDER BY tx_id, seq",
    )
    .fetch_all(&server.pool)
    .await
    .unwrap();
    assert_eq!(changes, ["Created", "Updated", "Updated"]);
    let other_portfolio = server
        .publish("acme", "optimizations.status-update", json!({"id": "O1", "portfolio_id": "P2", "external_id": "e", "is_recommended": true, "value": "SUCCESS"}))
        .await;
    assert_problem(other_portfolio, StatusCode::NOT_FOUND).await;

    let view: Value = server
        .get("/optimizations/O1", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "SUCCESS");
    assert_eq!(view["owner_choice"], "ACCEPT");
    assert_eq!(view["portfolio_id"], "P1");
    assert_eq!(view["is_recommended"], true);
}

#[sqlx::test]
async fn batch_is_all_or_nothing(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let event = |ty: &str, data: Value| {
        let (subject, action) = ty.split_once('.').unwrap();
        json!({"tenant": "acme", "subject": subject, "action": action, "data": data})
    };
    let creation = event(
        "portfolios.creation",
        json!({"id": "P1", "external_id": "e", "owned_by_user_id": "U"}),
    );
    let status = event(
        "portfolios.status-update",
        json!({"id": "P1", "external_id": "e", "value": "ACTIVE"}),
    );
    let orphan = event(
        "portfolios.status-update",
        json!({"id": "P2", "external_id": "e", "value": "ACTIVE"}),
    );

    let failing = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": [creation, status, orphan]}),
        )
        .await;
    let problem = assert_problem(failing, StatusCode::NOT_FOUND).await;
    assert!(
        problem["detail"].as_str().unwrap().starts_with("events[2]"),
        "{problem}"
    );
    assert_eq!(server.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(server.count("SELECT count(*) FROM portfolios").await, 0);

    let bad_field = event(
        "portfolios.status-update",
        json!({"id": "P1", "external_id": "e", "value": "NOPE"}),
    );
    let invalid = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": [creation, bad_field]}),
        )
        .await;
    let problem = assert_problem(invalid, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["field"], "events[1].data.value");

    let full: Vec<Value> = (0..500)
        .map(|i| event("portfolios.creation", json!({"id": format!("F{i}"), "external_id": "an-external-id", "owned_by_user_id": "a-user-id"})))
        .collect();
    assert!(serde_json::to_vec(&json!({"events": full})).unwrap().len() > 64 * 1024);
    let largest = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": full}),
        )
        .await;
    assert_eq!(
        largest.status(),
        StatusCode::CREATED,
        "a full batch of 500 fits"
    );
    assert_eq!(server.count("SELECT count(*) FROM outbox").await, 500);
    sqlx::query("DELETE FROM outbox")
        .execute(&server.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM portfolios")
        .execute(&server.pool)
        .await
        .unwrap();

    let too_many: Vec<Value> = (0..501).map(|_| creation.clone()).collect();
    let oversized = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": too_many}),
        )
        .await;
    assert_problem(oversized, StatusCode::UNPROCESSABLE_ENTITY).await;

    let ok = server
        .post(
            "/platform/events/batch",
            PLATFORM_KEY,
            &json!({"events": [creation, status]}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    assert_eq!(server.count("SELECT count(*) FROM outbox").await, 2);
}

#[sqlx::test]
async fn preview_types_are_rejected_unless_enabled(pool: PgPool) {
    let server = TestServer::start(pool.clone()).await;
    server.tenant_with_key("acme").await;
    let user = json!({"id": "U1", "user_data": {"email": "a@example.com"}});
    let rejected = server.publish("acme", "users.creation", user.clone()).await;
    let problem = assert_problem(rejected, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("EVENTGATE_PREVIEW_EVENTS")
    );

    let enabled = TestServer::start_with(pool, config(&["--preview-events", "true"])).await;
    let accepted = enabled.publish("acme", "users.creation", user).await;
    assert_eq!(accepted.status(), StatusCode::CREATED);
}

#[sqlx::test]
async fn read_model_is_tenant_scoped(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key_a = server.tenant_with_key("acme").await;
    let key_b = server.tenant_with_key("bank-b").await;
    server.create_portfolio("acme", "PA").await;
    server.create_portfolio("bank-b", "PB").await;
    server
        .publish("acme", "optimizations.status-update", json!({"id": "OA", "portfolio_id": "PA", "external_id": "e", "is_recommended": false, "value": "PENDING"}))
        .await;

    assert_eq!(
        server.get("/portfolios/PA", &key_a).await.status(),
        StatusCode::OK
    );
    assert_problem(
        server.get("/portfolios/PA", &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_problem(
        server.get("/optimizations/OA", &key_b).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let list: Value = server
        .get("/portfolios", &key_b)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["PB"]);
    assert_problem(
        server.get("/portfolios/PA", PLATFORM_KEY).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}

#[sqlx::test]
async fn portfolio_list_pages_with_cursors(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    for i in 0..5 {
        server.create_portfolio("acme", &format!("P{i}")).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(cursor) => format!("/portfolios?limit=2&after={cursor}"),
            None => "/portfolios?limit=2".to_owned(),
        };
        let page: Value = server.get(&path, &key).await.json().await.unwrap();
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
        after = page["next_cursor"].as_str().map(str::to_owned);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen, ["P0", "P1", "P2", "P3", "P4"]);
    assert_problem(
        server.get("/portfolios?limit=0", &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(
        server.get("/portfolios?after=%%%", &key).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[sqlx::test]
async fn concurrent_status_updates_end_in_the_state_of_the_last_event(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    server.create_portfolio("acme", "P1").await;
    let values = [
        "WAITING_FOR_ACCOUNT",
        "WAITING_FOR_POLICY",
        "WAITING_FOR_FUNDS",
        "ACTIVE",
        "INACTIVE",
    ];
    let updates = (0..40).map(|i| {
        server.publish(
            "acme",
            "portfolios.status-update",
            json!({"id": "P1", "external_id": "e", "value": values[i % values.len()]}),
        )
    });
    for response in join_all(updates).await {
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let last_in_feed: String = sqlx::query_scalar(
        "SELECT (envelope::json -> 'data' ->> 'value') FROM outbox
         WHERE event_type = 'portfolios.status-update' ORDER BY tx_id DESC, seq DESC LIMIT 1",
    )
    .fetch_one(&server.pool)
    .await
    .unwrap();
    let view: Value = server
        .get("/portfolios/P1", &key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], last_in_feed.as_str());
    assert_eq!(
        server
            .count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.status-update'")
            .await,
        40
    );
}

#[sqlx::test]
async fn platform_publish_honours_idempotency_keys(pool: PgPool) {
    let server = TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let body = json!({"tenant": "acme", "subject": "portfolios", "action": "creation", "data": {"id": "P1", "external_id": "e", "owned_by_user_id": "U"}});
    let send = || {
        server
            .http
            .post(server.url("/platform/events"))
            .bearer_auth(PLATFORM_KEY)
            .header("idempotency-key", "\"create-P1\"")
            .json(&body)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_body = first.text().await.unwrap();
    let second = send().await.unwrap();
    assert_eq!(
        second.status(),
        StatusCode::CREATED,
        "a replay, not a 409 duplicate"
    );
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.text().await.unwrap(), first_body);
    assert_eq!(server.count("SELECT count(*) FROM outbox").await, 1);
}

#[sqlx::test]
async fn catalogue_lists_every_type_with_a_schema(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let catalogue: Value = server
        .http
        .get(server.url("/catalogue"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let types = catalogue["types"].as_array().unwrap();
    assert_eq!(types.len(), 16);
    let emitted: Vec<&str> = types
        .iter()
        .filter(|t| t["emitted"] == true)
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        emitted,
        [
            "destinations.failing",
            "destinations.recovered",
            "destinations.disabled"
        ],
        "eventgate's own delivery health events"
    );
    let creation = types
        .iter()
        .find(|t| t["type"] == "portfolios.creation")
        .unwrap();
    assert_eq!(creation["entity"], "Portfolio");
    assert_eq!(creation["change"], "Created");
    assert_eq!(creation["preview"], false);
    assert!(
        creation["schema"]["properties"]["owned_by_user_id"].is_object(),
        "{creation}"
    );
    let removal = types
        .iter()
        .find(|t| t["type"] == "portfolios.removal")
        .unwrap();
    assert_eq!(removal["preview"], true);
    assert_eq!(removal["change"], "Deleted");
}

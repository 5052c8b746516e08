//! The contract: openapi.yaml is the document the routes generate (regenerate it with
//! `eventgate openapi > openapi.yaml`), every route is in it, and the server serves it.

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::TestServer;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[test]
fn openapi_yaml_is_the_document_the_code_generates() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert!(
        committed == eventgate::http::openapi::yaml(),
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
}

/// Routes are added with `api_route`, which documents them; a plain `.route(` would serve
/// an undocumented operation.
#[test]
fn no_route_escapes_the_document() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".route(") && !source.contains(".route_service("),
            "{} adds a route outside the document",
            path.display()
        );
    }
    let document = eventgate::http::openapi::document();
    let paths = document.paths.as_ref().unwrap();
    let operations: usize = paths
        .paths
        .values()
        .filter_map(|item| item.as_item())
        .map(|item| {
            let json = serde_json::to_value(item).unwrap();
            METHODS.iter().filter(|m| json.get(**m).is_some()).count()
        })
        .sum();
    assert!(operations >= 28, "{operations} operations documented");
}

#[sqlx::test]
async fn the_contract_is_served(pool: PgPool) {
    let server = TestServer::start(pool).await;
    let response = server
        .http
        .get(server.url("/openapi.yaml"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    assert!(response.text().await.unwrap().starts_with("openapi: 3.1.0"));
}

/// asyncapi.yaml documents every catalogue type as a message of both bus channels (the
/// schemas themselves are compared with the served catalogue by scripts/contract.sh).
#[test]
fn every_catalogue_type_is_in_asyncapi() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/asyncapi.yaml");
    let asyncapi = std::fs::read_to_string(path).unwrap();
    for ty in eventgate::catalogue::EventType::all() {
        let name = ty.name();
        assert!(
            asyncapi.contains(&format!("\n    {name}:\n      name: {name}\n")),
            "asyncapi.yaml has no message {name}"
        );
        for channel in ["tenantExchange", "tenantTopic"] {
            assert!(
                asyncapi.contains(&format!("'#/channels/{channel}/messages/{name}'")),
                "the {channel} operation does not send {name}"
            );
        }
    }
}

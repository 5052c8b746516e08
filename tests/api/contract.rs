//! openapi.yaml and the router agree: every route in `src/http` is documented with its
//! methods, and every documented operation exists.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::TestServer;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// (path, method) of every `.route("…", get(…).post(…))` in src/http.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (start, _) in source.match_indices(".route(") {
            // rustfmt may put the path on its own line.
            let rest = source[start + 7..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            let path = &rest[..rest.find('"').unwrap()];
            // The method router runs to the end of this `.route(...)` call.
            let mut depth = 0;
            let mut end = 0;
            for (i, c) in source[start + 6..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = start + 6 + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &source[start..end];
            for method in METHODS {
                let called = call.match_indices(&format!("{method}(")).any(|(i, _)| {
                    let before = call[..i].chars().last().unwrap_or(' ');
                    !before.is_alphanumeric() && before != '_'
                });
                if called {
                    routes.insert((path.to_owned(), method.to_owned()));
                }
            }
        }
    }
    routes
}

/// (path, method) of every operation under `paths:` in openapi.yaml.
fn documented() -> BTreeSet<(String, String)> {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    let mut operations = BTreeSet::new();
    let mut in_paths = false;
    let mut path = String::new();
    for line in spec.lines() {
        if line == "paths:" {
            in_paths = true;
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = format!("/{}", p.trim_end_matches(':'));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && METHODS.contains(&m)
        {
            operations.insert((path.clone(), m.to_owned()));
        }
    }
    operations
}

#[test]
fn every_route_is_documented_and_every_documented_operation_exists() {
    let routes = routes_in_source();
    let documented = documented();
    assert!(routes.len() > 20, "parsed the routes: {routes:?}");
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
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

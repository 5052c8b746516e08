//! Standard Webhooks `v1a` (ed25519) signatures, checked by PyNaCl (an independent
//! implementation, `tools/verifiers`) rather than by eventgate's own code: the destination
//! shows its public key and never its private key, and a rotation keeps the old key signing
//! beside the new one.

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestServer, assert_problem, config};
use crate::receiver::{Receiver, Reply, Request};
use crate::webhooks::{create_webhook, webhook_server_args};

/// The Python with PyNaCl that `scripts/test.sh` installs into `.venv`.
fn verifier_python() -> std::path::PathBuf {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, or `python3 -m venv .venv && .venv/bin/pip install -r tools/verifiers/requirements.txt`",
        python.display()
    );
    python
}

/// Whether PyNaCl verifies one of the request's `v1a` signatures with `public_key`.
fn pynacl_verifies(request: &Request, body: &str, public_key: &str) -> bool {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/verifiers/verify_v1a.py");
    let mut child = Command::new(verifier_python())
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("the verifier runs");
    let input = json!({
        "public_key": public_key,
        "id": request.header("webhook-id"),
        "timestamp": request.header("webhook-timestamp"),
        "body": body,
        "signature": request.header("webhook-signature"),
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let status = child.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "the verifier failed: {status}"
    );
    status.success()
}

#[sqlx::test]
async fn ed25519_signatures_verify_with_pynacl_and_survive_a_rotation(pool: PgPool) {
    let server = TestServer::start_with(pool, config(&webhook_server_args(&[]))).await;
    let key = server.tenant_with_key("acme").await;
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let created = create_webhook(
        &server,
        &key,
        json!({"kind": "webhook", "url": receiver.url("/hook"), "signature": "ed25519"}),
    )
    .await;
    assert_eq!(created["signature"], "ed25519");
    assert!(
        created.get("secret").is_none(),
        "the private key is never shown"
    );
    let public_key = created["public_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("whpk_"), "{public_key}");
    let id = created["id"].as_str().unwrap().to_owned();
    let stored: String = sqlx::query_scalar("SELECT secret FROM destinations WHERE id = $1::uuid")
        .bind(&id)
        .fetch_one(&server.pool)
        .await
        .unwrap();
    assert!(
        !stored.contains("whsk_"),
        "the private key is sealed at rest"
    );

    server.create_portfolio("acme", "P1").await;
    let requests = receiver.wait_until("a delivery", |r| !r.is_empty()).await;
    let first = &requests[0];
    assert!(first.header("webhook-signature").starts_with("v1a,"));
    assert_eq!(first.header("webhook-signature").split(' ').count(), 1);
    assert!(pynacl_verifies(first, &first.body, &public_key));
    let tampered = first.body.replace("P1", "P2");
    assert!(
        !pynacl_verifies(first, &tampered, &public_key),
        "a changed body fails"
    );

    let rotated = server
        .post(
            &format!("/destinations/{id}/rotate-secret"),
            &key,
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: serde_json::Value = rotated.json().await.unwrap();
    assert!(
        rotated.get("secret").is_none(),
        "a rotated private key is not shown either"
    );
    let new_public_key = rotated["public_key"].as_str().unwrap().to_owned();
    assert_ne!(new_public_key, public_key);
    assert_eq!(rotated["previous_public_key"], public_key.as_str());
    assert!(rotated["previous_secret_valid_until"].is_string());

    server.create_portfolio("acme", "P2").await;
    let requests = receiver
        .wait_until("a delivery after the rotation", |r| r.len() >= 2)
        .await;
    let second = &requests[1];
    assert_eq!(second.header("webhook-signature").split(' ').count(), 2);
    assert!(
        pynacl_verifies(second, &second.body, &new_public_key),
        "the new key signs"
    );
    assert!(
        pynacl_verifies(second, &second.body, &public_key),
        "the old key still signs"
    );

    // The scheme is chosen at creation; the same value is accepted, another is not.
    let path = format!("/destinations/{id}");
    let same = server
        .patch(&path, &key, &json!({"signature": "ed25519"}))
        .await;
    assert_eq!(same.status(), StatusCode::OK);
    let other = server
        .patch(&path, &key, &json!({"signature": "hmac-sha256"}))
        .await;
    assert_problem(other, StatusCode::CONFLICT).await;
    let unknown = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "webhook", "url": receiver.url("/x"), "signature": "rsa"}),
        )
        .await;
    assert_problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await;
}

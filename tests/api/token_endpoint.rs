//! A local OAuth2 token endpoint (client credentials): checks the client's Basic
//! credentials, issues `tok-1`, `tok-2`, … with the lifetime the test sets, and records
//! every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub form: Vec<(String, String)>,
}

/// The client id and secret of a Basic header, each form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let decoded = STANDARD.decode(header.strip_prefix("Basic ")?).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode = |text: &str| -> String {
        form_urlencoded::parse(format!("x={text}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_default()
    };
    Some((form_decode(id), form_decode(secret)))
}

#[derive(Clone)]
pub struct TokenEndpoint {
    pub url: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl TokenEndpoint {
    /// Issues tokens living `expires_in` seconds to `client_id`:`client_secret`.
    pub async fn start(
        client_id: &'static str,
        client_secret: &'static str,
        expires_in: u64,
    ) -> Self {
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let issued = Arc::new(AtomicU64::new(0));
        let seen = requests.clone();
        let app = Router::new().route(
            "/oauth/token",
            post(move |headers: HeaderMap, body: String| {
                let (seen, issued) = (seen.clone(), issued.clone());
                async move {
                    let authorization = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    seen.lock()
                        .unwrap()
                        .push(TokenRequest { form: form.clone() });
                    let grant = form
                        .iter()
                        .any(|(k, v)| k == "grant_type" && v == "client_credentials");
                    if basic_credentials(&authorization)
                        != Some((client_id.into(), client_secret.into()))
                        || !grant
                    {
                        let body = json!({"error": "invalid_client"}).to_string();
                        return Response::builder()
                            .status(StatusCode::UNAUTHORIZED)
                            .header("content-type", "application/json")
                            .body(axum::body::Body::from(body))
                            .unwrap();
                    }
                    let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                    axum::Json(json!({
                        "access_token": format!("tok-{n}"),
                        "token_type": "Bearer",
                        "expires_in": expires_in,
                    }))
                    .into_response()
                }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, requests }
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

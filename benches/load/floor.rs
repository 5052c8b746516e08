//! The long-poll floor (`longpoll-floor port=N`): a bare hyper HTTP/1 server that answers
//! the requests of the `longpoll` scenario and nothing else, so that the scenario can be
//! run against it unchanged, on the same machine, beside the same 5,000 clients.
//!
//! It keeps no database, checks no key, runs no middleware and renders nothing: a waiting
//! `GET /events/?wait=…` parks on a one-shot channel filed under its bearer key (the
//! tenant), and `POST /platform/events` sends the same prepared answer down every channel
//! of the event's tenant. What its wake-up costs is what any server pays to answer 5,000
//! held requests on these two cores (tokio's scheduling, hyper's encoding, one `writev` each
//! and the clients' receive on loopback): the figure eventgate's long-poll wake-up is
//! read against (docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A one-event page as eventgate answers it (its body and its headers but `date` and
/// `content-length`, which hyper writes), as a long-poll got it from eventgate on 2026-12-05.
const ANSWER_BODY: &str = r#"{"data":[{"id":"01a24562-dbfb-717d-a526-e8bc95ac58c0","created":"2026-12-05T08:47:16.475116Z","version":"1.0.0","subject":"portfolios","action":"creation","data":{"id":"P1","external_id":"P1","owned_by_user_id":"U1"}}],"next_cursor":"AgAAAAAAAAMHAAAAAAAAAAI","has_more":false}"#;
const ANSWER_LINK: &str =
    "</events/?after=AgAAAAAAAAMHAAAAAAAAAAI&limit=100&wait=30>; rel=\"next\"";
const ANSWER_REQUEST_ID: &str = "da2c3ef7-0a11-498d-b62e-ad765730a380";

#[derive(Default)]
struct Floor {
    /// Waiting long-polls by tenant (their bearer key).
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    waiters: AtomicU64,
}

/// Serves on 127.0.0.1:`port` until the process is stopped.
pub async fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|err| panic!("longpoll-floor: cannot listen on port {port}: {err}"));
    println!("longpoll-floor: listening on 127.0.0.1:{port}");
    let floor = Arc::new(Floor::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // As eventgate's listener does: small answers must not wait on Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let floor = floor.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let floor = floor.clone();
                async move { Ok::<_, Infallible>(floor.answer(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Floor {
    async fn answer(&self, request: Request<Incoming>) -> Response<Body> {
        let tenant = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let path = request.uri().path();
        match (request.method(), path) {
            (&Method::GET, "/metrics") => {
                let waiters = self.waiters.load(Ordering::SeqCst);
                plain(
                    StatusCode::OK,
                    format!("eventgate_feed_waiters {waiters}\n"),
                )
            }
            (&Method::GET, "/events/") => {
                let waits = request
                    .uri()
                    .query()
                    .is_some_and(|query| query.contains("wait="));
                if waits {
                    let (wake, woken) = oneshot::channel();
                    self.waiting
                        .lock()
                        .expect("waiting")
                        .entry(tenant)
                        .or_default()
                        .push(wake);
                    self.waiters.fetch_add(1, Ordering::SeqCst);
                    let _ = woken.await;
                    self.waiters.fetch_sub(1, Ordering::SeqCst);
                }
                page()
            }
            (&Method::POST, "/platform/tenants") => plain(StatusCode::CREATED, "{}".into()),
            (&Method::POST, keys) if keys.ends_with("/keys") => {
                // The key is the tenant's id: /platform/tenants/{id}/keys.
                let id = keys.trim_end_matches("/keys").rsplit('/').next();
                let body = serde_json::json!({ "key": id }).to_string();
                plain(StatusCode::CREATED, body)
            }
            (&Method::POST, "/platform/events") => {
                let body = axum::body::to_bytes(Body::new(request.into_body()), 1 << 20)
                    .await
                    .expect("longpoll-floor: the event's body");
                let event: serde_json::Value =
                    serde_json::from_slice(&body).expect("longpoll-floor: a JSON event");
                let tenant = event["tenant"].as_str().unwrap_or_default();
                let woken = self.waiting.lock().expect("waiting").remove(tenant);
                for wake in woken.into_iter().flatten() {
                    let _ = wake.send(());
                }
                plain(StatusCode::CREATED, "{}".into())
            }
            (method, path) => panic!("longpoll-floor: unexpected {method} {path}"),
        }
    }
}

fn page() -> Response<Body> {
    let mut response = Response::new(Body::from(Bytes::from_static(ANSWER_BODY.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::LINK, HeaderValue::from_static(ANSWER_LINK));
    headers.insert("x-request-id", HeaderValue::from_static(ANSWER_REQUEST_ID));
    response
}

fn plain(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

//! A real HTTP endpoint on 127.0.0.1 for webhook tests: records every request and answers
//! as the test's script says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
    /// The status this receiver answered with.
    pub answered: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }

    /// Whether the receiver took it (answered 2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// What to answer: status, and optionally a delay, `Retry-After` or `Location`.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub delay: Option<Duration>,
    pub retry_after: Option<u64>,
    pub location: Option<String>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

/// Given the path and how many requests that path got before, the reply.
type Script = dyn Fn(&str, usize) -> Reply + Send + Sync;

#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Arc<Script>>>,
    /// Requests being answered now, and the most there ever were at once.
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        let receiver = Self::detached(script);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = receiver.router();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, ..receiver }
    }

    /// A receiver not yet listening anywhere: serve [`Self::router`] yourself (over TLS).
    pub fn detached(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Self {
        Self {
            base: String::new(),
            requests: Arc::default(),
            script: Arc::new(Mutex::new(Arc::new(script))),
            active: Arc::default(),
            peak: Arc::default(),
        }
    }

    /// The app that records and answers requests.
    pub fn router(&self) -> Router {
        let handler_state = self.clone();
        Router::new().fallback(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let state = handler_state.clone();
                async move { state.handle(uri.path().to_owned(), headers, body).await }
            },
        )
    }

    /// The most requests this receiver was answering at one time.
    pub fn peak_concurrency(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    async fn handle(&self, path: String, headers: HeaderMap, body: Bytes) -> Response {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let response = self.answer(path, headers, body).await;
        self.active.fetch_sub(1, Ordering::SeqCst);
        response
    }

    async fn answer(&self, path: String, headers: HeaderMap, body: Bytes) -> Response {
        // The reply is chosen while the request is recorded, so what a test reads always
        // says what the sender was (or is about to be) answered.
        let reply = {
            let mut requests = self.requests.lock().unwrap();
            let seen = requests.iter().filter(|r| r.path == path).count();
            let script = self.script.lock().unwrap().clone();
            let reply = script(&path, seen);
            requests.push(Request {
                path: path.clone(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: Instant::now(),
                answered: reply.status,
            });
            reply
        };
        if let Some(delay) = reply.delay {
            tokio::time::sleep(delay).await;
        }
        let mut response = StatusCode::from_u16(reply.status).unwrap().into_response();
        if let Some(seconds) = reply.retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        if let Some(location) = reply.location {
            response
                .headers_mut()
                .insert("location", location.parse().unwrap());
        }
        response
    }

    pub fn set(&self, script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) {
        *self.script.lock().unwrap() = Arc::new(script);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits (bounded) until the recorded requests satisfy `done`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let requests = self.requests();
            if done(&requests) {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {} requests",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

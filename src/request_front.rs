//! What every request passes through before routing, as one service with one small
//! future: its request id (the client's when usable, else a new one, echoed on the
//! answer), its span and log lines, and a panic in the handler turned into a 500 problem.
//!
//! Written out instead of tower-http's SetRequestId, Trace, PropagateRequestId and
//! CatchPanic layers: Trace and CatchPanic each wrapped the response body (Trace's wrapper
//! then had to be boxed again, as `axum::serve` takes only axum's body), and
//! PropagateRequestId put the id in a map of extensions of the response's own. Under 5,000
//! waiting long-polls that was five allocations an answer and a chain of boxed bodies to
//! poll; a build without those layers spent about 2 µs an answer less (docs/BENCHMARKS.md,
//! eighteenth section). The log lines and the span are those the layers wrote.

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::request_id::{MakeRequestId as _, MakeRequestUuid, RequestId};
use tracing::Span;

use crate::error::ApiError;
use crate::telemetry;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest `x-request-id` echoed; a longer or unprintable one is replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Puts [`Front`] before a service.
#[derive(Clone, Copy, Default)]
pub struct FrontLayer;

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front { inner }
    }
}

/// A service (the router) behind the request's id, span and panic guard.
#[derive(Clone)]
pub struct Front<S> {
    inner: S,
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Fronting<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let request_id = request_id(&mut request);
        let span = telemetry::request_span(&request);
        let answer = {
            let _entered = span.enter();
            tracing::debug!("started processing request");
            match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
                Ok(future) => Answer::Running { future },
                Err(_) => Answer::Panicked,
            }
        };
        Fronting {
            span,
            started: Instant::now(),
            request_id,
            answer,
        }
    }
}

/// The request's id: its `x-request-id` when that is 1-128 visible ASCII characters (it is
/// echoed and logged), else a new UUID put in its place. Never refused: it is a tracing
/// aid, not an input.
fn request_id(request: &mut Request) -> HeaderValue {
    let usable = |value: &HeaderValue| {
        let bytes = value.as_bytes();
        (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
    };
    let mut values = request.headers().get_all(X_REQUEST_ID).iter();
    if let (Some(value), None) = (values.next(), values.next())
        && usable(value)
    {
        return value.clone();
    }
    let generated = MakeRequestUuid.make_request_id(request).map_or_else(
        || HeaderValue::from_static("unknown"),
        RequestId::into_header_value,
    );
    let headers = request.headers_mut();
    // `insert` replaces every value the header had.
    headers.insert(X_REQUEST_ID, generated.clone());
    generated
}

pin_project! {
    #[project = AnswerProjection]
    enum Answer<F> {
        Running { #[pin] future: F },
        Panicked,
    }
}

pin_project! {
    /// The router's answer, polled inside the request's span, with the request's id.
    pub struct Fronting<F> {
        span: Span,
        started: Instant,
        request_id: HeaderValue,
        #[pin]
        answer: Answer<F>,
    }
}

impl<F> Future for Fronting<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let polled = match this.answer.project() {
            AnswerProjection::Running { future } => {
                catch_unwind(AssertUnwindSafe(|| future.poll(cx))).ok()
            }
            AnswerProjection::Panicked => None,
        };
        let mut response = match polled {
            Some(Poll::Pending) => return Poll::Pending,
            Some(Poll::Ready(Ok(response))) => response,
            None => ApiError::Internal("handler panicked".into()).into_response(),
        };
        response
            .headers_mut()
            .entry(X_REQUEST_ID)
            .or_insert_with(|| this.request_id.clone());
        log_answer(&response, this.started.elapsed());
        Poll::Ready(Ok(response))
    }
}

/// The request's last log line, as tower-http's trace layer wrote it: every answer at
/// INFO, and a server error at ERROR too.
fn log_answer(response: &Response, took: std::time::Duration) {
    let latency = format_args!("{} ms", took.as_millis());
    let status = response.status();
    tracing::info!(%latency, status = status.as_u16(), "finished processing request");
    if status.is_server_error() {
        tracing::error!(
            classification = %format_args!("Status code: {status}"),
            %latency,
            "response failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    use super::*;

    async fn answer_of(inner_panics_in_call: bool, request: Request) -> Response {
        let inner = tower::service_fn(move |_: Request| {
            assert!(!inner_panics_in_call, "a panic while calling");
            async { panic!("a panic while answering") }
        });
        let Ok(response) = FrontLayer.layer(inner).oneshot(request).await;
        response
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_500_problem_with_the_request_id() {
        for panics_in_call in [false, true] {
            let request = Request::builder()
                .header(X_REQUEST_ID, "chosen-7")
                .body(Body::empty())
                .expect("a request");
            let response = answer_of(panics_in_call, request).await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            assert_eq!(response.headers()[X_REQUEST_ID], "chosen-7");
        }
    }

    #[test]
    fn an_unusable_request_id_is_replaced_by_a_uuid() {
        for unusable in [
            &[""][..],
            &["", "a"],
            &["two words"],
            &["a", "b"],
            &[&"x".repeat(129)],
        ] {
            let mut request = Request::new(Body::empty());
            for value in unusable {
                request
                    .headers_mut()
                    .append(X_REQUEST_ID, HeaderValue::from_str(value).expect("a value"));
            }
            let id = request_id(&mut request);
            let id = id.to_str().expect("ASCII");
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{unusable:?} gave {id}");
            let values: Vec<_> = request.headers().get_all(X_REQUEST_ID).iter().collect();
            assert_eq!(values, [id], "the request carries the new id alone");
        }
        let mut request = Request::new(Body::empty());
        let kept = "x".repeat(128);
        request
            .headers_mut()
            .insert(X_REQUEST_ID, HeaderValue::from_str(&kept).expect("a value"));
        assert_eq!(request_id(&mut request), kept.as_str());
    }
}

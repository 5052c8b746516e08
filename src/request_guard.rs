//! What every route's request passes through after routing, as one middleware: its route
//! in the request span, the limits on its request line and headers, its metrics, its
//! deadline, a write that runs to completion, and the trace context it brought.
//!
//! One layer, not one per job, and a tower service written out rather than a
//! `middleware::from_fn`: each `from_fn` layer boxes a future of its own for every request,
//! holding a copy of the request at each of its nested `async fn`s. Measured under 5,000
//! waiting long-polls: the one `from_fn` guard left was a 2,408-byte block per request,
//! past glibc's per-thread cache (1,032 bytes), so each was made and freed on the
//! allocator's slow path; five such layers held about 1.15 KB a request each (heaptrack).
//! [`Guarding`] holds the timer, the deadline and the route's future, and nothing else.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tokio::task::JoinHandle;
use tokio::time::Sleep;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::ApiError;
use crate::limits::RequestLimits;
use crate::metrics::{Metrics, RequestTimer};
use crate::telemetry::{self, trace_context};

/// The guard's settings; as a [`Layer`], it guards every route of a router.
#[derive(Clone)]
pub struct RequestGuard {
    pub limits: RequestLimits,
    pub metrics: Metrics,
    /// The longest a request may take before it is answered 503.
    pub timeout: Duration,
}

impl<S> Layer<S> for RequestGuard {
    type Service = Guarded<S>;

    fn layer(&self, route: S) -> Guarded<S> {
        Guarded {
            guard: self.clone(),
            route,
        }
    }
}

/// A route behind the guard.
#[derive(Clone)]
pub struct Guarded<S> {
    guard: RequestGuard,
    route: S,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarding<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.route.poll_ready(cx)
    }

    /// Refuses an oversized request before anything else (uncounted, as before routing),
    /// then counts and times the rest, each under the deadline.
    fn call(&mut self, request: Request) -> Self::Future {
        telemetry::record_route(&request);
        if let Some(refusal) = self.guard.limits.refusal(&request) {
            return Guarding::Refused {
                response: Some(refusal.into_response()),
            };
        }
        let timer = RequestTimer::start(&request);
        // Called on the service `poll_ready` readied: the route's future owns what it needs.
        let answer = if request.method().is_safe() {
            Answer::Inline {
                future: trace_context::within(request, |request| self.route.call(request)),
            }
        } else {
            run_to_completion(trace_context::within(request, |request| {
                self.route.call(request)
            }))
        };
        Guarding::Running {
            timer: Some(timer),
            metrics: self.guard.metrics.clone(),
            deadline: tokio::time::sleep(self.guard.timeout),
            answer,
        }
    }
}

/// Runs requests that may write (every method but GET, HEAD and OPTIONS) on a task of
/// their own, so a client that disconnects, or the request deadline, cannot drop the
/// handler halfway through a transaction: sqlx 0.8's `begin()` is not cancel-safe, and a
/// `BEGIN` cancelled at the wrong moment leaves a pooled session idle in a transaction,
/// which holds back the feed's horizon for the whole cluster. A write that started
/// finishes and commits; only its answer may find nobody to read it.
fn run_to_completion<F>(future: trace_context::Within<F>) -> Answer<F>
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    // The route's future starts polling on the task, with the request's span and (inside
    // `Within`) its trace context around every poll.
    let task = tokio::spawn(future.instrument(tracing::Span::current()));
    Answer::Spawned { task }
}

pin_project! {
    /// The route's answer: polled here, or awaited from the task that runs it.
    #[project = AnswerProjection]
    enum Answer<F> {
        Inline { #[pin] future: trace_context::Within<F> },
        Spawned { #[pin] task: JoinHandle<Result<Response, Infallible>> },
    }
}

impl<F> Future for Answer<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        match self.project() {
            AnswerProjection::Inline { future } => {
                let Ok(response) = ready!(future.poll(cx));
                Poll::Ready(response)
            }
            AnswerProjection::Spawned { task } => Poll::Ready(match ready!(task.poll(cx)) {
                Ok(Ok(response)) => response,
                // A panic in the handler, as `request_front` would see it inline.
                Err(err) => ApiError::internal(err).into_response(),
            }),
        }
    }
}

pin_project! {
    /// The guard's future: the route's answer under the deadline, counted when it comes.
    #[project = GuardingProjection]
    pub enum Guarding<F> {
        Refused { response: Option<Response> },
        Running {
            timer: Option<RequestTimer>,
            metrics: Metrics,
            #[pin]
            deadline: Sleep,
            #[pin]
            answer: Answer<F>,
        },
    }
}

impl<F> Future for Guarding<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardingProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    ApiError::Internal("guard polled after its answer".into()).into_response()
                })))
            }
            GuardingProjection::Running {
                timer,
                metrics,
                deadline,
                answer,
            } => {
                // The answer first, as `tokio::time::timeout` does: one that is ready wins.
                let response = match answer.poll(cx) {
                    Poll::Ready(response) => response,
                    Poll::Pending => {
                        ready!(deadline.poll(cx));
                        ApiError::Timeout.into_response()
                    }
                };
                if let Some(timer) = timer.take() {
                    timer.answered(metrics, &response);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

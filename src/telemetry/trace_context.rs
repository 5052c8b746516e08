//! The W3C trace context an event carries from the request that published it to each
//! delivery of it.
//!
//! A request's `traceparent`/`tracestate` (W3C Trace Context) are parsed by OpenTelemetry's
//! propagator; an invalid one is ignored, never refused (it is a tracing aid, not an input).
//! Publishing stores the context with each outbox event. With traces exported, that is the
//! publishing span's context and each delivery attempt gets a span of its own, child of it,
//! whose context is what the receiver gets. Without, the request's context passes through
//! unchanged, so a receiver still joins the publisher's trace.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderMap;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use pin_project_lite::pin_project;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::exporting;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` carried on: the W3C limit of 32 members fits in 512 characters,
/// and a longer one may be dropped (Trace Context, "tracestate limits").
const MAX_TRACESTATE_CHARS: usize = 512;

/// A valid `traceparent`, with the `tracestate` that goes with it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// The remote context a request's headers carry, when they carry a valid one.
pub fn remote(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    if !headers.contains_key(TRACEPARENT) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

pin_project! {
    /// A request's handling, with the context its headers carry as the current one around
    /// every poll, so what it publishes carries it on (see [`TraceContext::current`]).
    #[project = WithinProjection]
    pub enum Within<F> {
        Plain { #[pin] future: F },
        Traced { #[pin] future: WithContext<F> },
    }
}

/// Starts handling `request` (with `handle`) within the context its headers carry. With
/// traces exported the request span already has that context as its parent
/// (`super::request_span`), and the spans inside it must see the request span, not the
/// caller's, as current.
pub fn within<F>(request: Request, handle: impl FnOnce(Request) -> F) -> Within<F> {
    let remote = if exporting() {
        None
    } else {
        remote(request.headers())
    };
    match remote {
        Some(cx) => Within::Traced {
            future: handle(request).with_context(cx),
        },
        None => Within::Plain {
            future: handle(request),
        },
    }
}

impl<F: Future> Future for Within<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project() {
            WithinProjection::Plain { future } => future.poll(cx),
            WithinProjection::Traced { future } => future.poll(cx),
        }
    }
}

impl TraceContext {
    /// The context of `cx`'s span, when it has a valid one.
    fn of(cx: &opentelemetry::Context) -> Option<Self> {
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut fields = HashMap::new();
        TraceContextPropagator::new().inject_context(cx, &mut fields);
        let traceparent = fields.remove(TRACEPARENT)?;
        let tracestate = fields
            .remove(TRACESTATE)
            .filter(|state| !state.is_empty() && state.len() <= MAX_TRACESTATE_CHARS);
        Some(Self {
            traceparent,
            tracestate,
        })
    }

    /// The context to store with what is published now: the current span's when traces are
    /// exported, else the one the request brought (none when it brought none).
    pub fn current() -> Option<Self> {
        if exporting() {
            if let Some(own) = Self::of(&tracing::Span::current().context()) {
                return Some(own);
            }
        }
        Self::of(&opentelemetry::Context::current())
    }

    /// A context as stored; a stored `traceparent` that no longer parses is dropped.
    pub fn from_stored(traceparent: Option<String>, tracestate: Option<String>) -> Option<Self> {
        let traceparent = traceparent?;
        let stored = Self {
            traceparent,
            tracestate,
        };
        stored.context().is_some().then_some(stored)
    }

    /// This context as an OpenTelemetry parent.
    fn context(&self) -> Option<opentelemetry::Context> {
        let mut fields = HashMap::from([(TRACEPARENT.to_owned(), self.traceparent.clone())]);
        if let Some(state) = &self.tracestate {
            fields.insert(TRACESTATE.to_owned(), state.clone());
        }
        let cx = TraceContextPropagator::new().extract(&fields);
        cx.span().span_context().is_valid().then_some(cx)
    }

    /// The headers (or message properties) that carry this context.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once((TRACEPARENT, self.traceparent.as_str()))
            .chain(self.tracestate.as_deref().map(|state| (TRACESTATE, state)))
    }
}

/// One attempt to hand an event over, traced: a span child of the context the event
/// carries (when traces are exported), and the context to send with the attempt.
pub struct DeliveryTrace<'a> {
    span: Option<tracing::Span>,
    /// The attempt span's own context (traces exported).
    own: Option<TraceContext>,
    carried: Option<&'a TraceContext>,
}

/// What kind of hand-over an attempt is, as the exported span names it.
#[derive(Debug, Clone, Copy)]
pub enum Hop {
    Webhook,
    Amqp,
    Mqtt,
    Kafka,
}

impl Hop {
    fn span_name(self) -> &'static str {
        match self {
            Hop::Webhook => "webhook attempt",
            Hop::Amqp => "amqp publish",
            Hop::Mqtt => "mqtt publish",
            Hop::Kafka => "kafka produce",
        }
    }

    fn span_kind(self) -> &'static str {
        match self {
            Hop::Webhook => "client",
            Hop::Amqp | Hop::Mqtt | Hop::Kafka => "producer",
        }
    }
}

impl<'a> DeliveryTrace<'a> {
    /// Starts tracing one attempt of `message` to `destination`. With traces exported, an
    /// event without a context gets a trace of its own (never the relay's long-lived one).
    pub fn start(
        hop: Hop,
        destination: uuid::Uuid,
        message: &str,
        carried: Option<&'a TraceContext>,
    ) -> Self {
        if !exporting() {
            return Self {
                span: None,
                own: None,
                carried,
            };
        }
        let span = tracing::info_span!(
            "delivery attempt",
            otel.name = hop.span_name(),
            otel.kind = hop.span_kind(),
            otel.status_code = tracing::field::Empty,
            destination.id = %destination,
            message.id = message,
            outcome = tracing::field::Empty,
        );
        let parent = carried.and_then(TraceContext::context).unwrap_or_default();
        let _ = span.set_parent(parent);
        let own = TraceContext::of(&span.context());
        Self {
            span: Some(span),
            own,
            carried,
        }
    }

    /// The context the receiver gets: the attempt's span, else what the event carries.
    pub fn outgoing(&self) -> Option<&TraceContext> {
        self.own.as_ref().or(self.carried)
    }

    /// Ends the attempt's span with its outcome (`delivered`, or why not).
    pub fn finish(self, delivered: bool, outcome: &str) {
        if let Some(span) = self.span {
            span.record("outcome", outcome);
            span.record("otel.status_code", if delivered { "ok" } else { "error" });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header value"));
        }
        map
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_passes_through_as_sent() {
        let cx = remote(&headers(&[
            (TRACEPARENT, PARENT),
            (TRACESTATE, "vendor=a1"),
        ]))
        .expect("valid context");
        let carried = TraceContext::of(&cx).expect("carried");
        assert_eq!(carried.traceparent, PARENT);
        assert_eq!(carried.tracestate.as_deref(), Some("vendor=a1"));
    }

    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote(&headers(&[(TRACEPARENT, bad)])).is_none(), "{bad:?}");
        }
        assert!(remote(&HeaderMap::new()).is_none());
    }

    #[test]
    fn an_overlong_tracestate_is_dropped_and_the_traceparent_kept() {
        let state = (0..32)
            .map(|i| format!("k{i}={}", "v".repeat(20)))
            .collect::<Vec<_>>()
            .join(",");
        assert!(state.len() > MAX_TRACESTATE_CHARS);
        let cx = remote(&headers(&[(TRACEPARENT, PARENT), (TRACESTATE, &state)]))
            .expect("valid context");
        let carried = TraceContext::of(&cx).expect("carried");
        assert_eq!(carried.traceparent, PARENT);
        assert_eq!(carried.tracestate, None);
    }

    #[test]
    fn a_stored_context_that_no_longer_parses_is_dropped() {
        assert!(TraceContext::from_stored(Some("nonsense".into()), None).is_none());
        assert!(TraceContext::from_stored(None, Some("vendor=a1".into())).is_none());
        let stored = TraceContext::from_stored(Some(PARENT.into()), None).expect("stored");
        assert_eq!(stored.fields().collect::<Vec<_>>(), [(TRACEPARENT, PARENT)]);
    }
}

//! Logging, OpenTelemetry traces, and the per-request span.
//!
//! Logs always go to stdout. Traces are exported over OTLP only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; otherwise no
//! OpenTelemetry layer is installed and spans cost what they cost before. Either way, a
//! W3C trace context a request brings travels with the events it publishes to every
//! delivery of them (`trace_context`).

mod otlp;
pub mod trace_context;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::MatchedPath;
use axum::http::Request;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub use otlp::TelemetryError;

/// What is logged unless `RUST_LOG` says otherwise.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";
/// The spans exported, whatever is logged: eventgate's own, at `info`.
const TRACE_FILTER: &str = "warn,eventgate=info";

/// Whether spans are exported: set once, when the exporter is installed.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (and so makes a span per delivery attempt).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// What must outlive the process's work: the trace exporter, flushed on shutdown.
#[must_use = "dropping it without `shutdown` loses the spans not yet exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks until its export thread has flushed.
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = flushed {
            tracing::warn!(error = %err, "flushing traces at shutdown failed");
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` refines the default `info` level. Adds the
/// OpenTelemetry layer when the OTLP environment asks for it.
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let logged =
        || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    // Colours only for a person at a terminal, never into files or collectors.
    let ansi = std::io::stdout().is_terminal();
    let (text, json) = match format {
        LogFormat::Text => (
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_filter(logged()),
            ),
            None,
        ),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_filter(logged()),
            ),
        ),
    };
    let provider = otlp::provider_from_env()?;
    // Traces have a filter of their own: a quiet log (`RUST_LOG=warn`) keeps its spans.
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("eventgate"))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    // A second init (tests, embedders) keeps the first subscriber.
    let installed = tracing_subscriber::registry()
        .with(text)
        .with(json)
        .with(traces)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

/// The span every request runs in: method, route and the request id that is echoed to the
/// client. When traces are exported, its parent is the `traceparent` the request brought.
/// Made before routing (the layers around the router run once a request, not once a
/// route): the route is recorded after routing, by [`record_route`].
pub fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    // The `otel.*` fields name the exported span; left empty (and unlogged) otherwise.
    let span = tracing::info_span!(
        "request",
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        method = %request.method(),
        route = tracing::field::Empty,
        request_id,
    );
    if exporting() {
        span.record("otel.kind", "server");
        if let Some(remote) = trace_context::remote(request.headers()) {
            // Fails only when the span is disabled by the filter: then there is no span.
            let _ = span.set_parent(remote);
        }
    }
    span
}

/// Records in the current request span the route that matched (its template, not the raw
/// path, which may carry ids), "unmatched" when none did, and names the exported span
/// after it.
pub fn record_route<B>(request: &Request<B>) {
    let span = Span::current();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    span.record("route", route);
    if exporting() {
        // Renamed on the exported span itself: recording `otel.name` names a span only
        // until it is first entered, and this one was entered before routing.
        span.context()
            .span()
            .update_name(format!("{} {route}", request.method()));
    }
}

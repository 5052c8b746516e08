//! A real OTLP/HTTP trace receiver on 127.0.0.1: decodes what an exporter sends with the
//! OpenTelemetry protocol's own types and keeps every span.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use tokio::net::TcpListener;

/// One exported span, ids in lowercase hex (`parent` empty for a root span).
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub attributes: HashMap<String, String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl ExportedSpan {
    pub fn attribute(&self, name: &str) -> &str {
        self.attributes.get(name).map_or("", String::as_str)
    }
}

pub struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` should be.
    pub endpoint: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

async fn export(
    State(spans): State<Arc<Mutex<Vec<ExportedSpan>>>>,
    body: Bytes,
) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut kept = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| text(kv.value.as_ref().and_then(|v| v.value.as_ref())))
            .unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            kept.push(ExportedSpan {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                name: span.name,
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                        (kv.key.clone(), text(value))
                    })
                    .collect(),
                status: span.status.map_or(0, |s| s.code),
            });
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

impl Collector {
    pub async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(export))
            .with_state(spans.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { spans, endpoint }
    }

    /// The spans received once `done` holds for them (bounded in time).
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&[ExportedSpan]) -> bool,
    ) -> Vec<ExportedSpan> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; spans received: {:#?}",
                spans
                    .iter()
                    .map(|s| (&s.name, &s.span_id, &s.parent))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `trace-id` and `parent-id` of a `traceparent` (`00-trace-parent-flags`).
pub fn trace_and_parent(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "a version-00 traceparent: {traceparent:?}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// The span with id `id` among `spans`.
pub fn span<'a>(spans: &'a [ExportedSpan], id: &str) -> &'a ExportedSpan {
    spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("no exported span {id}"))
}

/// `id` and its ancestors among `spans`, nearest first, up to the first whose parent was
/// not exported here (a remote parent, or none).
pub fn ancestry<'a>(spans: &'a [ExportedSpan], id: &str) -> Vec<&'a ExportedSpan> {
    let mut chain = vec![span(spans, id)];
    while let Some(parent) = spans
        .iter()
        .find(|s| s.span_id == chain[chain.len() - 1].parent)
    {
        chain.push(parent);
    }
    chain
}

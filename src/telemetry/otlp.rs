//! The OTLP trace exporter, configured by the standard OpenTelemetry environment.
//!
//! On when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise).
//! The exporter and the SDK read the rest themselves: headers, timeout, sampler
//! (`OTEL_TRACES_SAMPLER`), batching (`OTEL_BSP_*`) and resource attributes
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; the service is `eventgate` unless
//! named). Only OTLP over HTTP with protobuf is built in: a collector's gRPC port is
//! refused at start rather than silently sent nothing.

use opentelemetry_otlp::{ExporterBuildError, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];
const PROTOCOL_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];
const SUPPORTED_PROTOCOL: &str = "http/protobuf";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "{var}={value}: eventgate exports OTLP over http/protobuf only (a collector's HTTP \
         port, usually 4318)"
    )]
    UnsupportedProtocol { var: &'static str, value: String },
    #[error("cannot set up the OTLP trace exporter: {0}")]
    Exporter(#[from] ExporterBuildError),
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// Whether the environment asks for traces to be exported.
fn asked() -> bool {
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let no_exporter =
        var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled && !no_exporter && ENDPOINT_VARS.iter().any(|name| var(name).is_some())
}

/// The tracer provider the environment asks for, or `None` when traces are off.
pub fn provider_from_env() -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if !asked() {
        return Ok(None);
    }
    // The signal's own variable wins over the generic one, as in the specification.
    if let Some((var_name, value)) = PROTOCOL_VARS
        .iter()
        .find_map(|name| var(name).map(|value| (*name, value)))
    {
        if value.trim() != SUPPORTED_PROTOCOL {
            return Err(TelemetryError::UnsupportedProtocol {
                var: var_name,
                value,
            });
        }
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let mut resource = Resource::builder();
    let named_by_attributes = var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
        attributes
            .split(',')
            .any(|pair| pair.trim_start().starts_with("service.name="))
    });
    if var("OTEL_SERVICE_NAME").is_none() && !named_by_attributes {
        resource = resource.with_service_name("eventgate");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
}

//! The HTTP contract, generated from the code. `aide` builds the OpenAPI 3.1 document from
//! the router: each route's extractors give its parameters, body and the errors they can
//! cause (see [`inputs`]), its schemas come from the Rust types (schemars, the same ones the
//! server validates with), and each operation adds what it answers. `openapi.yaml` at the top
//! of the repository is this document, committed: `eventgate openapi > openapi.yaml`
//! regenerates it, and `eventgate openapi --check openapi.yaml` (in CI, and a test) fails
//! when it is stale. `GET /openapi.yaml` serves it.

mod events;
pub mod inputs;
mod problems;
mod unparsed;

use std::sync::OnceLock;

use aide::OperationOutput;
use aide::openapi::{
    Components, Info, OpenApi, Parameter, ReferenceOr, SecurityScheme, StatusCode as DocStatus, Tag,
};
use aide::transform::TransformOpenApi;
use indexmap::IndexMap;
use schemars::json_schema;

pub use events::{EnvelopeSchema, EventRequest};
pub use problems::{Problems, add_problems};
pub use unparsed::Unparsed;

use crate::error::{ApiError, Problem};
use inputs::{BEARER, header_parameter};

/// Every operation may answer these: the request limits (414, 431) and a database outage,
/// a timeout or contention (503).
const EVERYWHERE: [u16; 3] = [414, 431, 503];

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| super::build().1)
}

/// The document as YAML (what `openapi.yaml` holds).
pub fn yaml() -> &'static str {
    static YAML: OnceLock<String> = OnceLock::new();
    YAML.get_or_init(|| to_yaml(document()).unwrap_or_else(|err| format!("# {err}\n")))
}

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("serializing the document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("writing YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
}

/// Through JSON text: serde_json's exact numbers (`arbitrary_precision`) only serialize as
/// numbers with serde_json itself, and YAML reads JSON.
fn to_yaml(document: &OpenApi) -> Result<String, YamlError> {
    let json = serde_json::to_string(document)?;
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(&json)?;
    Ok(serde_yaml_ng::to_string(&value)?)
}

/// The document's frame before the routes fill it in.
pub(super) fn frame() -> OpenApi {
    OpenApi {
        info: Info {
            title: "eventgate".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: Some(
                "The events API between a wealth-management platform and its b2b clients' \
                 middleware: idempotent inbound deposits, a gap-free cursor-paginated outbound \
                 feed, and delivery to message buses and webhooks. Every error is an RFC 9457 \
                 `application/problem+json` body. Generated from the code; see README.md."
                    .into(),
            ),
            ..Info::default()
        },
        tags: [
            (
                "audit",
                "Who did which administrative action (a client key: its own tenant's).",
            ),
            (
                "client",
                "For a client key: one tenant's feed, deposits and read model.",
            ),
            (
                "destinations",
                "Where a tenant's events are pushed (client key, or the platform naming a tenant).",
            ),
            (
                "platform",
                "For the platform key: tenants, keys, publishing events, metrics.",
            ),
            ("public", "No key needed."),
        ]
        .into_iter()
        .map(|(name, description)| Tag {
            name: name.into(),
            description: Some(description.into()),
            ..Tag::default()
        })
        .collect(),
        ..OpenApi::default()
    }
}

/// What every operation shares, applied once the routes are in: the bearer scheme, the
/// `Problem` schema, the `x-request-id` header and the statuses any request may get.
pub(super) fn finish(api: TransformOpenApi<'_>) -> TransformOpenApi<'_> {
    let mut api = api.security_scheme(
        BEARER,
        SecurityScheme::Http {
            scheme: "bearer".into(),
            bearer_format: Some("egk_…".into()),
            description: Some(
                "An API key: a client key acts for one tenant, the platform key for all.".into(),
            ),
            extensions: IndexMap::default(),
        },
    );
    let document = api.inner_mut();
    let components = document.components.get_or_insert_with(Components::default);
    components.schemas.insert(
        "Problem".into(),
        aide::openapi::SchemaObject {
            json_schema: schemars::schema_for!(Problem),
            example: None,
            external_docs: None,
        },
    );
    let mut shared_responses = IndexMap::new();
    let items = document
        .paths
        .iter_mut()
        .flat_map(|paths| paths.paths.values_mut());
    for item in items {
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        for (_, operation) in aide::util::iter_operations_mut(item) {
            operation
                .parameters
                .push(ReferenceOr::Item(header_parameter(
                    "x-request-id",
                    false,
                    "Any value: echoed in the response's x-request-id and the server's logs. \
                 Without one, or with one that is not 1-128 visible ASCII characters, the \
                 server makes one.",
                    json_schema!({"type": "string"}),
                )));
            for name in TRACE_CONTEXT_HEADERS {
                operation.parameters.push(ReferenceOr::ref_(&format!(
                    "#/components/parameters/{name}"
                )));
            }
            add_problems(operation, &EVERYWHERE);
            share_responses(operation, &mut shared_responses);
        }
    }
    let components = document.components.get_or_insert_with(Components::default);
    components.responses.extend(shared_responses);
    components.parameters.extend(trace_context_parameters());
    api
}

/// The W3C Trace Context headers every operation accepts (shared parameters).
const TRACE_CONTEXT_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

fn trace_context_parameters() -> IndexMap<String, ReferenceOr<Parameter>> {
    let described = [
        "W3C Trace Context: the caller's trace. Events the request publishes carry it to \
         every delivery (the traceparent header of a webhook, AMQP headers, MQTT 5 user \
         properties, Kafka headers). An invalid value is ignored, never refused.",
        "W3C Trace Context vendor state, carried on with traceparent (dropped when longer \
         than 512 characters).",
    ];
    TRACE_CONTEXT_HEADERS
        .iter()
        .zip(described)
        .map(|(name, description)| {
            let parameter =
                header_parameter(name, false, description, json_schema!({"type": "string"}));
            ((*name).to_owned(), ReferenceOr::Item(parameter))
        })
        .collect()
}

/// Problem responses become references to one shared response per status (the document is
/// a third the size); answers without a description get their status's reason phrase.
fn share_responses(
    operation: &mut aide::openapi::Operation,
    shared: &mut IndexMap<String, ReferenceOr<aide::openapi::Response>>,
) {
    let Some(responses) = &mut operation.responses else {
        return;
    };
    for (status, response) in responses.responses.iter_mut() {
        let DocStatus::Code(code) = status else {
            continue;
        };
        let ReferenceOr::Item(item) = response else {
            continue;
        };
        if item.content.contains_key(crate::error::PROBLEM_JSON) {
            let name = format!("Problem{code}");
            let reference = format!("#/components/responses/{name}");
            let item = std::mem::take(item);
            shared.entry(name).or_insert(ReferenceOr::Item(item));
            *response = ReferenceOr::ref_(&reference);
        } else if item.description.is_empty() {
            item.description = axum::http::StatusCode::from_u16(*code)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("Answer")
                .to_owned();
        }
    }
}

impl OperationOutput for ApiError {
    type Inner = ();

    // Each operation documents the statuses it answers; see `Problems`.
    fn inferred_responses(
        _: &mut aide::generate::GenContext,
        _: &mut aide::openapi::Operation,
    ) -> Vec<(Option<DocStatus>, aide::openapi::Response)> {
        Vec::new()
    }
}

/// Documents a text answer (`media_type`, a string) for `status`.
pub fn text_response(
    operation: &mut aide::openapi::Operation,
    status: u16,
    media_type: &str,
    description: &str,
) {
    let response = aide::openapi::Response {
        description: description.to_owned(),
        content: IndexMap::from_iter([(
            media_type.to_owned(),
            aide::openapi::MediaType {
                schema: Some(aide::openapi::SchemaObject {
                    json_schema: json_schema!({"type": "string"}),
                    example: None,
                    external_docs: None,
                }),
                ..aide::openapi::MediaType::default()
            },
        )]),
        ..aide::openapi::Response::default()
    };
    operation
        .responses
        .get_or_insert_with(Default::default)
        .responses
        .insert(DocStatus::Code(status), ReferenceOr::Item(response));
}

/// A response header the server sends with `status`: `Location`, `Idempotent-Replayed`,
/// `Link`, …
pub fn response_header(
    operation: &mut aide::openapi::Operation,
    status: u16,
    name: &str,
    required: bool,
    description: &str,
    schema: schemars::Schema,
) {
    let Some(ReferenceOr::Item(response)) = operation
        .responses
        .get_or_insert_with(Default::default)
        .responses
        .get_mut(&DocStatus::Code(status))
    else {
        return;
    };
    let header = aide::openapi::Header {
        description: Some(description.to_owned()),
        style: aide::openapi::HeaderStyle::Simple,
        required,
        deprecated: None,
        format: aide::openapi::ParameterSchemaOrContent::Schema(aide::openapi::SchemaObject {
            json_schema: schema,
            example: None,
            external_docs: None,
        }),
        example: None,
        examples: IndexMap::default(),
        extensions: IndexMap::default(),
    };
    response
        .headers
        .insert(name.to_owned(), ReferenceOr::Item(header));
}

/// `Idempotent-Replayed: true` on a replayed answer.
pub fn replayed_header(operation: &mut aide::openapi::Operation, status: u16) {
    response_header(
        operation,
        status,
        "Idempotent-Replayed",
        false,
        "`true` when this is the stored answer to an earlier request with the same \
         Idempotency-Key.",
        json_schema!({"const": "true"}),
    );
}

/// Documents `GET /openapi.yaml`'s answer: this document, as YAML.
pub fn yaml_response(operation: &mut aide::openapi::Operation) {
    text_response(operation, 200, "application/yaml", "OpenAPI 3.1, YAML.");
    if let Some(ReferenceOr::Item(response)) = operation
        .responses
        .as_mut()
        .and_then(|responses| responses.responses.get_mut(&DocStatus::Code(200)))
        && let Some(media) = response.content.get_mut("application/yaml")
    {
        media.schema = Some(aide::openapi::SchemaObject {
            json_schema: json_schema!({"type": "object", "required": ["openapi", "info", "paths"]}),
            example: None,
            external_docs: None,
        });
    }
}

/// A link from the `status` answer to another operation, whose parameters come from the
/// answer (`$response.body#/id`): what stateful testing (and a reader) follows.
pub fn link(
    operation: &mut aide::openapi::Operation,
    status: u16,
    name: &str,
    operation_id: &str,
    parameters: &[(&str, &str)],
) {
    let Some(ReferenceOr::Item(response)) = operation
        .responses
        .as_mut()
        .and_then(|responses| responses.responses.get_mut(&DocStatus::Code(status)))
    else {
        return;
    };
    let link = aide::openapi::Link {
        description: None,
        operation: aide::openapi::LinkOperation::OperationId(operation_id.to_owned()),
        request_body: None,
        parameters: parameters
            .iter()
            .map(|(name, expression)| ((*name).to_owned(), serde_json::json!(expression)))
            .collect(),
        server: None,
        extensions: IndexMap::default(),
    };
    response
        .links
        .insert(name.to_owned(), ReferenceOr::Item(link));
}

//! What each of the server's own extractors contributes to an operation's documentation:
//! the bearer key and the 401/403/429 it can cause, the JSON body and its 400/413/415/422,
//! path and query parameters and their 400, the `Idempotency-Key` header with the exact
//! pattern the server accepts.

use aide::OperationInput;
use aide::generate::GenContext;
use aide::openapi::{
    HeaderStyle, Operation, Parameter, ParameterData, ParameterSchemaOrContent, ReferenceOr,
    Response, SchemaObject, StatusCode,
};
use axum::extract::{Path, Query};
use indexmap::IndexMap;
use schemars::{JsonSchema, json_schema};

use super::problems::problem;
use crate::auth::{ClientTenant, Platform, Principal};
use crate::error::{ApiJson, ApiPath, ApiQuery};
use crate::idempotency::IdempotencyKeyHeader;

/// The security scheme every authenticated operation names.
pub const BEARER: &str = "bearer";

/// The pattern of an Idempotency-Key header value: 1-255 printable ASCII characters, bare
/// (no quotes, no space at either end) or as a quoted string with `\"` and `\\` escapes.
pub const IDEMPOTENCY_KEY_PATTERN: &str = r#"^(?:[\x21\x23-\x7e](?:[\x20\x21\x23-\x7e]{0,253}[\x21\x23-\x7e])?|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}")$"#;

fn problems(statuses: &[u16]) -> Vec<(Option<StatusCode>, Response)> {
    statuses
        .iter()
        .map(|status| (Some(StatusCode::Code(*status)), problem(*status)))
        .collect()
}

fn require_bearer(operation: &mut Operation) {
    let requirement = IndexMap::from_iter([(BEARER.to_owned(), Vec::new())]);
    if !operation.security.contains(&requirement) {
        operation.security.push(requirement);
    }
}

impl OperationInput for Principal {
    fn operation_input(_: &mut GenContext, operation: &mut Operation) {
        require_bearer(operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[401, 429])
    }
}

impl OperationInput for ClientTenant {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Principal::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[401, 403, 429])
    }
}

impl OperationInput for Platform {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Principal::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        // Platform keys are not rate limited; a client key gets 403 before its limit counts.
        problems(&[401, 403, 429])
    }
}

impl<T: JsonSchema> OperationInput for ApiJson<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        axum::Json::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[400, 413, 415, 422])
    }
}

impl<T: JsonSchema> OperationInput for ApiPath<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Path::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[400])
    }
}

impl<T: JsonSchema> OperationInput for ApiQuery<T> {
    fn operation_input(ctx: &mut GenContext, operation: &mut Operation) {
        Query::<T>::operation_input(ctx, operation);
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[400])
    }
}

/// A header parameter with `schema`.
pub fn header_parameter(
    name: &str,
    required: bool,
    description: &str,
    schema: schemars::Schema,
) -> Parameter {
    Parameter::Header {
        parameter_data: ParameterData {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required,
            deprecated: None,
            format: ParameterSchemaOrContent::Schema(SchemaObject {
                json_schema: schema,
                example: None,
                external_docs: None,
            }),
            example: None,
            examples: IndexMap::default(),
            explode: None,
            extensions: IndexMap::default(),
        },
        style: HeaderStyle::Simple,
    }
}

impl OperationInput for IdempotencyKeyHeader {
    fn operation_input(_: &mut GenContext, operation: &mut Operation) {
        operation
            .parameters
            .push(ReferenceOr::Item(header_parameter(
                "Idempotency-Key",
                false,
                "Makes a retry safe: 1-255 printable ASCII characters, bare or as a quoted string \
             (`\"LVRYWG833Vp2FIIG\"`; both name the same key). Scoped per caller and endpoint, \
             kept 24 h. A retry with the same body gets the first answer back \
             (`Idempotent-Replayed: true`); with another body, 422; while the first is still \
             running, it waits, then 409.",
                json_schema!({"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}),
            )));
    }

    fn inferred_early_responses(
        _: &mut GenContext,
        _: &mut Operation,
    ) -> Vec<(Option<StatusCode>, Response)> {
        problems(&[400, 409, 422])
    }
}

/// Marks the named parameter required (deposits require the Idempotency-Key).
pub fn require_parameter(operation: &mut Operation, name: &str) {
    for parameter in &mut operation.parameters {
        if let ReferenceOr::Item(parameter) = parameter
            && parameter.parameter_data_ref().name == name
        {
            parameter.parameter_data_mut().required = true;
        }
    }
}

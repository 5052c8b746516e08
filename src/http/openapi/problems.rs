//! Error responses in the document: each status an operation can answer, as an RFC 9457
//! problem, with the headers that go with it.

use aide::openapi::{
    Header, HeaderStyle, MediaType, Operation, ParameterSchemaOrContent, ReferenceOr, Response,
    SchemaObject, StatusCode,
};
use aide::transform::TransformOperation;
use indexmap::IndexMap;
use schemars::json_schema;

use crate::error::PROBLEM_JSON;

/// The reference to the shared `Problem` schema (registered in `super::document`).
pub const PROBLEM_REF: &str = "#/components/schemas/Problem";

fn header(description: &str, required: bool, schema: schemars::Schema) -> ReferenceOr<Header> {
    ReferenceOr::Item(Header {
        description: Some(description.to_owned()),
        style: HeaderStyle::Simple,
        required,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(SchemaObject {
            json_schema: schema,
            example: None,
            external_docs: None,
        }),
        example: None,
        examples: IndexMap::default(),
        extensions: IndexMap::default(),
    })
}

/// Why a request gets `status`, as the document says it.
fn describe(status: u16) -> &'static str {
    match status {
        400 => "Malformed request: a parameter, header or body the server cannot read.",
        401 => "Missing, malformed, unknown, revoked or expired API key.",
        403 => "This key's role may not use this operation.",
        404 => "No such resource for this caller (another tenant's is 404 too).",
        409 => "Conflicts with the current state (or a duplicate in flight); see `detail`.",
        410 => "The cursor points before the retained feed.",
        413 => "The request body is larger than the limit.",
        414 => "The request target (path and query) is longer than the limit.",
        415 => "The body is not `application/json`.",
        422 => "A well-formed request the server cannot process; `field` names the culprit.",
        429 => {
            "Over a limit (the tenant's request rate, its waiting long-polls); retry after `Retry-After`."
        }
        431 => "The request headers are larger than the limit.",
        503 => {
            "The database is unreachable, the request timed out, or it collided with concurrent work; retry."
        }
        _ => "Error.",
    }
}

/// The documented problem response for `status`.
pub fn problem(status: u16) -> Response {
    let mut headers = IndexMap::new();
    match status {
        401 => {
            headers.insert(
                "WWW-Authenticate".to_owned(),
                header("`Bearer`.", true, json_schema!({"type": "string"})),
            );
        }
        429 | 503 => {
            headers.insert(
                "Retry-After".to_owned(),
                header(
                    "Seconds to wait before retrying (on 503: when the request collided with \
                     concurrent work).",
                    status == 429,
                    json_schema!({"type": "integer", "minimum": 0}),
                ),
            );
        }
        _ => {}
    }
    Response {
        description: describe(status).to_owned(),
        headers,
        content: IndexMap::from_iter([(
            PROBLEM_JSON.to_owned(),
            MediaType {
                schema: Some(SchemaObject {
                    json_schema: json_schema!({"$ref": PROBLEM_REF}),
                    example: None,
                    external_docs: None,
                }),
                ..MediaType::default()
            },
        )]),
        ..Response::default()
    }
}

/// Adds the problem responses for `statuses` to `operation` (keeping any already there).
pub fn add_problems(operation: &mut Operation, statuses: &[u16]) {
    let responses = operation.responses.get_or_insert_with(Default::default);
    for status in statuses {
        responses
            .responses
            .entry(StatusCode::Code(*status))
            .or_insert_with(|| ReferenceOr::Item(problem(*status)));
    }
}

/// `op.problems(&[404, 409])`: the error statuses an operation answers, beside those its
/// extractors add (authentication, body, parameters) and those every operation may answer.
pub trait Problems {
    fn problems(self, statuses: &[u16]) -> Self;
}

impl Problems for TransformOperation<'_> {
    fn problems(mut self, statuses: &[u16]) -> Self {
        add_problems(self.inner_mut(), statuses);
        self
    }
}

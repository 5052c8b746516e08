//! Counting and timing every HTTP request by its matched route (`crate::request_guard`
//! does it for every route).

use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

use super::Metrics;

/// Times one request from the guard's start to its answer, under its route template (never
/// the raw path, which carries ids and would give every portfolio its own time series).
pub struct RequestTimer {
    started: Instant,
    method: MethodLabel,
    route: RouteLabel,
}

impl RequestTimer {
    pub fn start(request: &Request) -> Self {
        Self {
            started: Instant::now(),
            method: MethodLabel::of(request.method()),
            route: RouteLabel(request.extensions().get::<MatchedPath>().cloned()),
        }
    }

    /// Records the answer's status and the time taken.
    pub fn answered(self, metrics: &Metrics, response: &Response) {
        metrics.request_answered(
            self.method,
            self.route,
            response.status().as_u16(),
            self.started.elapsed(),
        );
    }
}

/// A request's method as a label value: the standard methods are copied without
/// allocating (the labels were `String`s, two allocations and frees on every answer), and
/// every other token a client sends is `OTHER`: each would be a series of its own, which a
/// client could grow without end (test `made_up_methods_share_one_metrics_label`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct MethodLabel(Option<Method>);

impl MethodLabel {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];

    pub(super) fn of(method: &Method) -> Self {
        Self(Self::STANDARD.contains(method).then(|| method.clone()))
    }

    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("OTHER", Method::as_str)
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

/// A request's route template as a label value, shared with the router (a reference
/// count, not a copy); "unmatched" when no route matched.
#[derive(Clone, Debug)]
pub(super) struct RouteLabel(pub(super) Option<MatchedPath>);

impl RouteLabel {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }

    /// The address of the template's text: the router shares one with every request of
    /// the route.
    pub(super) fn identity(&self) -> usize {
        self.as_str().as_ptr() as usize
    }
}

impl PartialEq for RouteLabel {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for RouteLabel {}

impl Hash for RouteLabel {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

//! The two series an answered request adds to (its route's latency histogram and its
//! count by status), kept once found. Found in their families, they cost two lookups an
//! answer, each hashing the labels' text: about 840 instructions of the 18,000 a woken
//! long-poll's answer cost the server's own code (callgrind, docs/BENCHMARKS.md,
//! twenty-seventh section). Here a route is known by the address of its template, which
//! the router shares with every request it matches, so the key is three small values.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;

use super::requests::{MethodLabel, RouteLabel};

#[derive(Debug, Hash, PartialEq, Eq)]
struct Key {
    /// The address of the route's template (`RouteLabel::identity`).
    route: usize,
    method: MethodLabel,
    status: u16,
}

/// A request's series; handles on the families' own (each shares its value with the
/// family it came from).
struct Series {
    /// What the key's address stood for when the series were found: an address is only
    /// trusted with the same template behind it.
    route: RouteLabel,
    latency: Histogram,
    count: Counter,
}

#[derive(Default)]
pub(super) struct AnsweredSeries {
    known: RwLock<HashMap<Key, Series>>,
}

impl AnsweredSeries {
    /// Counts one answer of `method`, `route` and `status` and its time in seconds; `find`
    /// gives the series the first time.
    pub fn record(
        &self,
        method: &MethodLabel,
        route: &RouteLabel,
        status: u16,
        seconds: f64,
        find: impl FnOnce() -> (Histogram, Counter),
    ) {
        let key = Key {
            route: route.identity(),
            method: method.clone(),
            status,
        };
        {
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = known.get(&key).filter(|series| series.route == *route) {
                series.latency.observe(seconds);
                series.count.inc();
                return;
            }
        }
        let (latency, count) = find();
        latency.observe(seconds);
        count.inc();
        let series = Series {
            route: route.clone(),
            latency,
            count,
        };
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, series);
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::registry::Registry;

    use axum::http::Method;

    use super::*;
    use crate::metrics::{RequestLabels, RouteLabels};

    #[test]
    fn answers_are_counted_in_the_families_series_each_under_its_own_status() {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency =
            Family::<RouteLabels, Histogram>::new_with_constructor(|| Histogram::new([0.1, 1.0]));
        let mut registry = Registry::default();
        registry.register("requests", "", requests.clone());
        registry.register("latency", "", latency.clone());
        let answered = AnsweredSeries::default();
        let route = RouteLabel(None);
        for status in [200, 200, 200, 404] {
            answered.record(&MethodLabel::of(&Method::GET), &route, status, 0.5, || {
                let method = MethodLabel::of(&Method::GET);
                let route = route.clone();
                (
                    latency
                        .get_or_create(&RouteLabels {
                            method: method.clone(),
                            route: route.clone(),
                        })
                        .clone(),
                    requests
                        .get_or_create(&RequestLabels {
                            method,
                            route,
                            status,
                        })
                        .clone(),
                )
            });
        }
        let mut text = String::new();
        encode(&mut text, &registry).expect("encoded");
        for line in [
            r#"requests_total{method="GET",route="unmatched",status="200"} 3"#,
            r#"requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"latency_count{method="GET",route="unmatched"} 4"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}

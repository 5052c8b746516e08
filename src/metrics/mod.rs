//! Prometheus metrics: the families this process records, and their text exposition.
//!
//! Each [`Metrics`] owns its registry (no process-global recorder), so tests and embedders
//! can run several servers in one process and read each one's own numbers. Counters are
//! per process: scrape every replica. Gauges that describe the shared database (outbox,
//! destination lag) are read from PostgreSQL at scrape time ([`snapshot`]), so any replica
//! reports the same values for them.

mod answered;
mod requests;
pub mod snapshot;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

pub use requests::RequestTimer;
use requests::{MethodLabel, RouteLabel};

/// The media type of the exposition format served at `GET /metrics`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets in seconds: 1 ms to ~16 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: RouteLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: MethodLabel,
    route: RouteLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    destination: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DestinationLabels {
    destination: String,
    tenant: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;
type SecondsGauge = Gauge<f64, AtomicU64>;

/// How a delivery attempt to a destination ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The broker confirmed, or the endpoint answered 2xx.
    Delivered,
    /// Failed; it will be retried.
    Failed,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// Gauges the process keeps elsewhere, set at each scrape.
#[derive(Debug, Clone, Copy)]
pub struct ProcessGauges {
    /// Long-polls waiting.
    pub feed_waiters: usize,
    /// How long the feed's horizon has not moved while events wait.
    pub horizon_held_secs: f64,
}

/// Every metric family of one server; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    /// The two series above of each route, method and status answered so far.
    answered: answered::AnsweredSeries,
    deposits: Family<OutcomeLabels, Counter>,
    idempotency_conflicts: Family<EndpointLabels, Counter>,
    rate_limited: Family<TenantLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_events: Gauge,
    outbox_oldest_age: SecondsGauge,
    destination_lag: Family<DestinationLabels, Gauge>,
    webhook_pending: Family<DestinationLabels, Gauge>,
    oldest_undelivered_age: Family<DestinationLabels, SecondsGauge>,
    pool_connections: Family<PoolLabels, Gauge>,
    pool_max: Gauge,
    feed_waiters: Gauge,
    horizon_held: SecondsGauge,
    oldest_transaction_age: SecondsGauge,
    /// One scrape at a time: a scrape rewrites the database gauges before encoding.
    scrape: tokio::sync::Mutex<()>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("eventgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, matched route and status",
            requests.clone(),
        );
        let latency = LatencyFamily::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method and matched route",
            latency.clone(),
        );
        let deposits = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "deposits",
            "Deposit requests answered 2xx: created (new) or replayed (same Idempotency-Key)",
            deposits.clone(),
        );
        let idempotency_conflicts = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "idempotency_conflicts",
            "Requests refused because their Idempotency-Key was in flight or used with another body",
            idempotency_conflicts.clone(),
        );
        let rate_limited = Family::<TenantLabels, Counter>::default();
        registry.register(
            "rate_limited_requests",
            "Requests answered 429 by the per-tenant rate limit",
            rate_limited.clone(),
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "delivery_attempts",
            "Events sent to destinations by this process, by outcome",
            deliveries.clone(),
        );
        let outbox_events = Gauge::default();
        registry.register(
            "outbox_events",
            "Events held in the outbox (served by the feed); estimated from statistics above 100,000",
            outbox_events.clone(),
        );
        let outbox_oldest_age = SecondsGauge::default();
        registry.register(
            "outbox_oldest_event_age_seconds",
            "Age of the oldest event held in the outbox",
            outbox_oldest_age.clone(),
        );
        let destination_lag = Family::<DestinationLabels, Gauge>::default();
        registry.register(
            "destination_lag_events",
            "Events of a destination's types after its confirmed position",
            destination_lag.clone(),
        );
        let webhook_pending = Family::<DestinationLabels, Gauge>::default();
        registry.register(
            "webhook_pending_deliveries",
            "Webhook deliveries queued and not yet answered 2xx",
            webhook_pending.clone(),
        );
        let oldest_undelivered_age = Family::<DestinationLabels, SecondsGauge>::default();
        registry.register(
            "destination_oldest_undelivered_age_seconds",
            "Age of the oldest event a destination has not delivered yet (its first event not handed over, or a webhook's oldest pending delivery); 0 when none",
            oldest_undelivered_age.clone(),
        );
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections of this process's pool, by state",
            pool_connections.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "db_pool_max_connections",
            "Largest number of connections this process's pool may open",
            pool_max.clone(),
        );
        let feed_waiters = Gauge::default();
        registry.register(
            "feed_waiters",
            "Long-polls of this process waiting for new events",
            feed_waiters.clone(),
        );
        let horizon_held = SecondsGauge::default();
        registry.register(
            "xmin_horizon_age_seconds",
            "How long the feed's horizon has not moved while committed events wait behind it (0 when none wait)",
            horizon_held.clone(),
        );
        let oldest_transaction_age = SecondsGauge::default();
        registry.register(
            "oldest_transaction_age_seconds",
            "Age of the oldest open transaction in the PostgreSQL cluster that holds a transaction id (0 when none)",
            oldest_transaction_age.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                requests,
                latency,
                answered: answered::AnsweredSeries::default(),
                deposits,
                idempotency_conflicts,
                rate_limited,
                deliveries,
                outbox_events,
                outbox_oldest_age,
                destination_lag,
                webhook_pending,
                oldest_undelivered_age,
                pool_connections,
                pool_max,
                feed_waiters,
                horizon_held,
                oldest_transaction_age,
                scrape: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

impl Metrics {
    fn request_answered(
        &self,
        method: MethodLabel,
        route: RouteLabel,
        status: u16,
        elapsed: Duration,
    ) {
        let inner = &self.inner;
        inner
            .answered
            .record(&method, &route, status, elapsed.as_secs_f64(), || {
                let latency = inner
                    .latency
                    .get_or_create(&RouteLabels {
                        method: method.clone(),
                        route: route.clone(),
                    })
                    .clone();
                let count = inner
                    .requests
                    .get_or_create(&RequestLabels {
                        method: method.clone(),
                        route: route.clone(),
                        status,
                    })
                    .clone();
                (latency, count)
            });
    }

    pub fn deposit_created(&self) {
        self.deposit("created");
    }

    pub fn deposit_replayed(&self) {
        self.deposit("replayed");
    }

    fn deposit(&self, outcome: &'static str) {
        self.inner
            .deposits
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// `endpoint` is the idempotency scope's endpoint name (`deposits`, …).
    pub fn idempotency_conflict(&self, endpoint: &'static str) {
        self.inner
            .idempotency_conflicts
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    pub fn rate_limited(&self, tenant: &str) {
        self.inner
            .rate_limited
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// `events` sent to `destination` in one attempt (a bus batch, or one webhook request).
    pub fn delivery_attempt(
        &self,
        destination: uuid::Uuid,
        kind: &'static str,
        outcome: DeliveryOutcome,
        events: u64,
    ) {
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                destination: destination.to_string(),
                kind,
                outcome: outcome.as_str(),
            })
            .inc_by(events);
    }

    /// The text exposition of every family, the database gauges read from `pool` first.
    /// If the database cannot be read, the process's own counters are still served and
    /// the database gauges keep their last values.
    pub async fn render(&self, pool: &sqlx::PgPool, process: ProcessGauges) -> String {
        let _one_at_a_time = self.inner.scrape.lock().await;
        self.record_pool(pool);
        self.inner
            .feed_waiters
            .set(i64::try_from(process.feed_waiters).unwrap_or(i64::MAX));
        self.inner.horizon_held.set(process.horizon_held_secs);
        if let Err(err) = snapshot::refresh(self, pool).await {
            tracing::warn!(error = %err, "metrics: cannot read the database gauges");
        }
        let mut text = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
        {
            tracing::error!(error = %err, "metrics: encoding failed");
        }
        text
    }

    fn record_pool(&self, pool: &sqlx::PgPool) {
        let open = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        let pools = &self.inner.pool_connections;
        pools.get_or_create(&PoolLabels { state: "idle" }).set(idle);
        pools
            .get_or_create(&PoolLabels { state: "in_use" })
            .set((open - idle).max(0));
        self.inner
            .pool_max
            .set(i64::from(pool.options().get_max_connections()));
    }
}

//! Sends due webhook deliveries concurrently, within the destination's own limits.
//!
//! Each send runs on its own task, so a slow or hung endpoint answer holds one slot, not
//! the queue. A destination has at most `max_in_flight` sends at once and at most
//! `rate_limit` a second; an endpoint that answers 429 or 503 with `Retry-After` pauses
//! this destination alone. Outcomes go to the destination's
//! [`recorder`](super::recorder); a slot is freed as soon as the answer is in, without
//! waiting for the commit.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::endpoint::Endpoint;
use super::recorder::{self, Finished};
use super::send::{self, Message};
use super::{WebhookError, WebhookSettings};
use crate::delivery::destination::{Ordering, WebhookConfig};
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::store::webhook_attempts::AttemptRecord;
use crate::store::webhooks::{self as store, DueDelivery, DueQuery};

/// Deliveries sent or being sent whose outcome is not committed yet, with the entity each
/// is about (ordered destinations send one per entity at a time).
pub type InFlight = Arc<Mutex<HashMap<i64, Option<(String, String)>>>>;

/// The settings a worker is built from: when any of them changes, the driver starts a new
/// worker (after the sends under way finish).
#[derive(Debug, Clone, PartialEq)]
struct Shape {
    url: String,
    tls: Option<crate::delivery::destination::ClientTls>,
    oauth2: Option<crate::delivery::destination::endpoint_auth::OAuth2>,
    headers: crate::delivery::destination::endpoint_auth::Headers,
    max_in_flight: Option<u16>,
    rate_limit: Option<u32>,
    timeout: Option<u16>,
}

impl Shape {
    fn of(config: &WebhookConfig) -> Self {
        Self {
            url: config.url.clone(),
            tls: config.tls.clone(),
            oauth2: config.oauth2.clone(),
            headers: config.headers.clone(),
            max_in_flight: config.max_in_flight,
            rate_limit: config.rate_limit,
            timeout: config.timeout,
        }
    }
}

/// A destination's sending state, kept by its driver between steps.
pub struct Worker {
    endpoint: Arc<Endpoint>,
    shape: Shape,
    slots: Arc<Semaphore>,
    rate: Option<DefaultDirectRateLimiter>,
    /// A wake-up for when the rate limit lets the next request go is under way.
    rate_wake_pending: Arc<AtomicBool>,
    /// Until when the endpoint asked us to wait (`Retry-After` on 429/503).
    paused_until: Arc<Mutex<Option<Instant>>>,
    in_flight: InFlight,
    recorder: mpsc::Sender<Finished>,
    /// Signalled whenever a slot frees or outcomes are committed, so a saturated driver
    /// refills at once.
    pub freed: Arc<Notify>,
    metrics: Metrics,
    /// The sends and the recorder of this worker; [`Worker::finish`] waits for them.
    tasks: TaskTracker,
}

impl Worker {
    pub fn new(
        pool: &PgPool,
        destination: Uuid,
        tenant: &str,
        config: &WebhookConfig,
        settings: &WebhookSettings,
        metrics: Metrics,
    ) -> Result<Self, WebhookError> {
        let tasks = TaskTracker::new();
        let endpoint = Endpoint::new(config, settings)?;
        let slots = config
            .max_in_flight
            .map_or(settings.concurrency, usize::from);
        let rate = config
            .rate_limit
            .and_then(NonZeroU32::new)
            .map(|per_second| RateLimiter::direct(Quota::per_second(per_second)));
        let in_flight: InFlight = Arc::default();
        let freed: Arc<Notify> = Arc::default();
        let recorder = recorder::spawn(
            &tasks,
            pool.clone(),
            destination,
            tenant.to_owned(),
            in_flight.clone(),
            freed.clone(),
            slots * 4,
        );
        Ok(Self {
            endpoint: Arc::new(endpoint),
            shape: Shape::of(config),
            slots: Arc::new(Semaphore::new(slots)),
            rate,
            rate_wake_pending: Arc::default(),
            paused_until: Arc::default(),
            in_flight,
            recorder,
            freed,
            metrics,
            tasks,
        })
    }

    /// Whether this worker was built from these settings (else the driver replaces it).
    pub fn fits(&self, config: &WebhookConfig) -> bool {
        self.shape == Shape::of(config)
    }

    /// Waits until the sends under way have finished and their outcomes are recorded: a
    /// driver calls this before it stops, so nothing it started outlives it.
    pub async fn finish(self) {
        let tasks = self.tasks.clone();
        // Dropping the worker drops its handle on the recorder, which stops once the last
        // send has handed over its outcome.
        drop(self);
        tasks.close();
        tasks.wait().await;
    }

    pub fn saturated(&self) -> bool {
        self.slots.available_permits() == 0 || self.paused()
    }

    fn paused(&self) -> bool {
        self.paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Whether the destination's rate limit lets one more request go now. When it does not,
    /// the driver is woken when it will (it waits on [`Worker::freed`]).
    fn rate_allows_one(&self) -> bool {
        let Some(rate) = &self.rate else {
            return true;
        };
        let Err(not_until) = rate.check() else {
            return true;
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        if !self.rate_wake_pending.swap(true, AtomicOrdering::SeqCst) {
            let (freed, pending) = (self.freed.clone(), self.rate_wake_pending.clone());
            self.tasks.spawn(async move {
                tokio::time::sleep(wait).await;
                pending.store(false, AtomicOrdering::SeqCst);
                freed.notify_one();
            });
        }
        false
    }

    /// Starts sending due deliveries in free slots; returns how many were started.
    pub async fn dispatch(
        &self,
        pool: &PgPool,
        destination: Uuid,
        keys: &[String],
        config: &WebhookConfig,
        settings: &WebhookSettings,
        lifecycle_only: bool,
    ) -> Result<usize, WebhookError> {
        let free = self.slots.available_permits();
        if free == 0 || self.paused() {
            return Ok(0);
        }
        // Taken before the query: an id leaves the set only after its outcome commits, so
        // the query either excludes it or sees it no longer due.
        let (in_flight, busy_entities): (Vec<i64>, Vec<(String, String)>) = {
            let in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (
                in_flight.keys().copied().collect(),
                in_flight.values().flatten().cloned().collect(),
            )
        };
        let query = DueQuery {
            destination,
            in_flight: &in_flight,
            lifecycle_only,
            ordered: config.ordering == Ordering::Entity,
            busy_entities: &busy_entities,
            limit: free as i64,
        };
        let due = store::due(pool, &query).await?;
        let mut started = 0;
        for delivery in due {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            if !self.rate_allows_one() {
                break;
            }
            started += 1;
            self.in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(delivery.id, delivery.entity_key());
            let (endpoint, recorder, freed, metrics, paused_until) = (
                self.endpoint.clone(),
                self.recorder.clone(),
                self.freed.clone(),
                self.metrics.clone(),
                self.paused_until.clone(),
            );
            let (keys, settings) = (keys.to_vec(), settings.clone());
            self.tasks.spawn(async move {
                let trace = delivery.trace();
                let message = Message {
                    destination,
                    id: &delivery.message_id,
                    payload: &delivery.payload,
                    keys: &keys,
                    trace: trace.as_ref(),
                };
                let outcome = send::attempt(&endpoint, &message).await;
                if let Some(asked) = outcome.retry_after {
                    let pause = asked.min(settings.longest_retry_delay());
                    *paused_until.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(Instant::now() + pause);
                }
                let finished = finished(&delivery, &outcome, &settings);
                let counted = if outcome.succeeded() {
                    DeliveryOutcome::Delivered
                } else {
                    DeliveryOutcome::Failed
                };
                metrics.delivery_attempt(destination, "webhook", counted, 1);
                drop(permit);
                freed.notify_one();
                // Fails only when the driver is gone: the delivery stays pending.
                let _ = recorder.send(finished).await;
            });
        }
        Ok(started)
    }
}

fn finished(
    delivery: &DueDelivery,
    outcome: &send::Outcome,
    settings: &WebhookSettings,
) -> Finished {
    let attempt_number = delivery.attempts as usize + 1;
    let next_attempt_at = if outcome.succeeded() || outcome.gone() {
        None
    } else {
        settings
            .retry_delays
            .get(attempt_number - 1)
            .map(|delay| retry_at(*delay, outcome.retry_after, settings))
    };
    Finished {
        record: AttemptRecord {
            delivery: delivery.id,
            message_id: delivery.message_id.clone(),
            succeeded: outcome.succeeded(),
            response_status: outcome.status.map(i32::from),
            duration_ms: outcome.duration.as_millis().min(i32::MAX as u128) as i32,
            error: outcome.error.clone(),
            excerpt: outcome.excerpt.clone(),
            request_headers: outcome.request_headers.clone(),
            next_attempt_at,
        },
        gone: outcome.gone(),
    }
}

/// When to try again after `scheduled`, or later if the endpoint asked (`Retry-After`);
/// what an endpoint asks is capped at the longest configured delay, so no answer can push
/// a delivery out of reach or overflow the clock.
fn retry_at(
    scheduled: Duration,
    asked: Option<Duration>,
    settings: &WebhookSettings,
) -> chrono::DateTime<Utc> {
    let delay = jittered(scheduled).max(
        asked
            .unwrap_or_default()
            .min(settings.longest_retry_delay()),
    );
    let now = Utc::now();
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        // Unreachable with delays capped at 30 days by the configuration.
        .unwrap_or(now)
}

/// Up to ±10% around `delay`, so retries of many messages do not arrive in lockstep.
fn jittered(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / u32::MAX as f64;
    delay.mul_f64(0.9 + 0.2 * random)
}

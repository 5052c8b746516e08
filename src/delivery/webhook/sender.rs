//! Sends due webhook deliveries concurrently, a bounded number per destination.
//!
//! Each send runs on its own task, so a slow or hung endpoint answer holds one slot, not
//! the queue. Its outcome goes to the destination's [`recorder`](super::recorder); the slot
//! is freed as soon as the answer is in, without waiting for the commit.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::recorder::{self, Finished};
use super::{WebhookError, WebhookSettings, send};
use crate::delivery::destination::WebhookConfig;
use crate::egress::resolver::PolicyResolver;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::store::webhook_attempts::AttemptRecord;
use crate::store::webhooks::{self as store, DueDelivery};

/// A destination's sending state, kept by its driver between steps.
pub struct Worker {
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    /// Deliveries sent or being sent whose outcome is not committed yet.
    in_flight: Arc<Mutex<HashSet<i64>>>,
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
        settings: &WebhookSettings,
        metrics: Metrics,
    ) -> Result<Self, WebhookError> {
        let tasks = TaskTracker::new();
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .pool_max_idle_per_host(settings.concurrency)
            .dns_resolver(Arc::new(PolicyResolver {
                policy: settings.policy.clone(),
            }))
            .build()?;
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let freed: Arc<Notify> = Arc::default();
        let recorder = recorder::spawn(
            &tasks,
            pool.clone(),
            destination,
            in_flight.clone(),
            freed.clone(),
            settings.concurrency * 4,
        );
        Ok(Self {
            client,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            in_flight,
            recorder,
            freed,
            metrics,
            tasks,
        })
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
        self.slots.available_permits() == 0
    }

    /// Starts sending due deliveries in free slots; returns how many were started.
    pub async fn dispatch(
        &self,
        pool: &PgPool,
        destination: Uuid,
        secrets: &[String],
        config: &WebhookConfig,
        settings: &WebhookSettings,
        lifecycle_only: bool,
    ) -> Result<usize, WebhookError> {
        let free = self.slots.available_permits();
        if free == 0 {
            return Ok(0);
        }
        // Taken before the query: an id leaves the set only after its outcome commits, so
        // the query either excludes it or sees it no longer due.
        let in_flight: Vec<i64> = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        let due = store::due(pool, destination, &in_flight, lifecycle_only, free as i64).await?;
        let started = due.len();
        for delivery in due {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            self.in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(delivery.id);
            let (client, recorder, freed, metrics) = (
                self.client.clone(),
                self.recorder.clone(),
                self.freed.clone(),
                self.metrics.clone(),
            );
            let (url, secrets, settings) = (config.url.clone(), secrets.to_vec(), settings.clone());
            self.tasks.spawn(async move {
                let outcome = send::attempt(
                    &client,
                    &url,
                    &secrets,
                    &delivery.message_id,
                    &delivery.payload,
                    &settings.policy,
                )
                .await;
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
    let longest = settings
        .retry_delays
        .iter()
        .max()
        .copied()
        .unwrap_or_default();
    let delay = jittered(scheduled).max(asked.unwrap_or_default().min(longest));
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

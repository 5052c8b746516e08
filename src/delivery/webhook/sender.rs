//! Sends due webhook deliveries concurrently, within the destination's own limits.
//!
//! Each send slot runs on its own task, so a slow or hung endpoint answer holds one slot,
//! not the queue. A destination has at most `max_in_flight` sends at once and at most
//! `rate_limit` a second; an endpoint that answers 429 or 503 with `Retry-After` pauses
//! this destination alone. Outcomes go to the destination's
//! [`recorder`](super::recorder), so a slot moves on as soon as the answer is in, without
//! waiting for the commit.
//!
//! The driver fetches due deliveries ahead into an in-memory queue (up to
//! [`PREFETCH_PER_SLOT`] per slot), and a slot that finishes a send takes the next one from
//! that queue at once. Refilling free slots only once per driver step capped a destination
//! at (slots ÷ step time): about 2,300 deliveries/s at the default 32 slots, as a step
//! costs several database round trips. Prefetched deliveries count as in flight, so no
//! query picks them up twice, and for an entity-ordered destination the due query returns
//! at most one per entity, so ordering holds.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::endpoint::Endpoint;
use super::recorder::{self, Finished};
use super::retry;
use super::send::{self, Message};
use super::{WebhookError, WebhookSettings};
use crate::delivery::destination::{Ordering, WebhookConfig};
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::store::webhooks::{self as store, DueDelivery, DueQuery};

/// Deliveries fetched ahead per send slot. Enough that one driver step's refill outlasts
/// the next step's database latency; the deliveries held are due anyway, and a stopped or
/// reconfigured worker simply leaves them pending in the database.
const PREFETCH_PER_SLOT: usize = 8;

/// Deliveries sent, being sent or fetched ahead whose outcome is not committed yet, with
/// the entity each is about (ordered destinations send one per entity at a time).
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
    shape: Shape,
    sending: Arc<Sending>,
    /// Signalled whenever a slot frees, the prefetched queue runs low or outcomes are
    /// committed, so a saturated driver refills at once.
    pub freed: Arc<Notify>,
    /// The sends and the recorder of this worker; [`Worker::finish`] waits for them.
    tasks: TaskTracker,
}

/// What the send slots share.
struct Sending {
    destination: Uuid,
    endpoint: Endpoint,
    settings: WebhookSettings,
    slots: Arc<Semaphore>,
    /// Most deliveries held in [`Sending::ready`].
    depth: usize,
    /// Fetched, counted in flight, waiting for a slot (oldest first).
    ready: Mutex<VecDeque<DueDelivery>>,
    /// The keys that sign now, as of the driver's last step (a rotation takes effect on
    /// the next send).
    keys: Mutex<Arc<[String]>>,
    rate: Option<DefaultDirectRateLimiter>,
    /// A wake-up for when the rate limit lets the next request go is under way.
    rate_wake_pending: Arc<AtomicBool>,
    /// Until when the endpoint asked us to wait (`Retry-After` on 429/503).
    paused_until: Mutex<Option<Instant>>,
    in_flight: InFlight,
    recorder: mpsc::Sender<Finished>,
    freed: Arc<Notify>,
    metrics: Metrics,
    tasks: TaskTracker,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
        let depth = slots * PREFETCH_PER_SLOT;
        let recorder = recorder::spawn(
            &tasks,
            pool.clone(),
            destination,
            tenant.to_owned(),
            in_flight.clone(),
            freed.clone(),
            slots * 4,
        );
        let sending = Sending {
            destination,
            endpoint,
            settings: settings.clone(),
            slots: Arc::new(Semaphore::new(slots)),
            depth,
            ready: Mutex::new(VecDeque::with_capacity(depth)),
            keys: Mutex::new(Arc::from([])),
            rate,
            rate_wake_pending: Arc::default(),
            paused_until: Mutex::default(),
            in_flight,
            recorder,
            freed: freed.clone(),
            metrics,
            tasks: tasks.clone(),
        };
        Ok(Self {
            shape: Shape::of(config),
            sending: Arc::new(sending),
            freed,
            tasks,
        })
    }

    /// Whether this worker was built from these settings (else the driver replaces it).
    pub fn fits(&self, config: &WebhookConfig) -> bool {
        self.shape == Shape::of(config)
    }

    /// Waits until the sends under way have finished and their outcomes are recorded: a
    /// driver calls this before it stops, so nothing it started outlives it. Deliveries
    /// fetched ahead and not started stay pending in the database.
    pub async fn finish(self) {
        locked(&self.sending.ready).clear();
        let tasks = self.tasks.clone();
        // Dropping the worker drops its handle on the recorder, which stops once the last
        // send has handed over its outcome.
        drop(self);
        tasks.close();
        tasks.wait().await;
    }

    /// Every slot is busy with enough fetched ahead, or the endpoint asked us to wait:
    /// nothing to do until [`Worker::freed`].
    pub fn saturated(&self) -> bool {
        let sending = &self.sending;
        sending.paused()
            || (sending.slots.available_permits() == 0
                && locked(&sending.ready).len() > sending.depth / 2)
    }

    /// Fetches due deliveries ahead and starts sending in free slots; returns how many
    /// were fetched or started (0: nothing to do now).
    pub async fn dispatch(
        &self,
        pool: &PgPool,
        keys: Vec<String>,
        config: &WebhookConfig,
        lifecycle_only: bool,
    ) -> Result<usize, WebhookError> {
        let sending = &self.sending;
        *locked(&sending.keys) = Arc::from(keys);
        if lifecycle_only {
            // Disabled since these were fetched: event deliveries must wait. Lifecycle
            // messages among them are simply fetched again.
            sending.forget_ready();
        }
        if sending.paused() {
            return Ok(0);
        }
        let fetched = self.fetch(pool, config, lifecycle_only).await?;
        Ok(fetched + sending.start_free_slots())
    }

    async fn fetch(
        &self,
        pool: &PgPool,
        config: &WebhookConfig,
        lifecycle_only: bool,
    ) -> Result<usize, WebhookError> {
        let sending = &self.sending;
        let free = sending.slots.available_permits();
        let queued = locked(&sending.ready).len();
        if queued > sending.depth / 2 && free <= queued {
            return Ok(0);
        }
        // Taken before the query: an id leaves the set only after its outcome commits, so
        // the query either excludes it or sees it no longer due.
        let (in_flight, busy_entities): (Vec<i64>, Vec<(String, String)>) = {
            let in_flight = locked(&sending.in_flight);
            (
                in_flight.keys().copied().collect(),
                in_flight.values().flatten().cloned().collect(),
            )
        };
        let query = DueQuery {
            destination: sending.destination,
            in_flight: &in_flight,
            lifecycle_only,
            ordered: config.ordering == Ordering::Entity,
            busy_entities: &busy_entities,
            limit: (sending.depth + free).saturating_sub(queued) as i64,
        };
        let due = store::due(pool, &query).await?;
        let fetched = due.len();
        let mut in_flight = locked(&sending.in_flight);
        let mut ready = locked(&sending.ready);
        for delivery in due {
            in_flight.insert(delivery.id, delivery.entity_key());
            ready.push_back(delivery);
        }
        Ok(fetched)
    }
}

impl Sending {
    fn paused(&self) -> bool {
        locked(&self.paused_until).is_some_and(|until| Instant::now() < until)
    }

    /// Drops what was fetched ahead; it stays pending in the database.
    fn forget_ready(&self) {
        let mut in_flight = locked(&self.in_flight);
        for delivery in locked(&self.ready).drain(..) {
            in_flight.remove(&delivery.id);
        }
    }

    /// Whether the destination's rate limit lets one more request go now. When it does not,
    /// the driver is woken when it will (it waits on `freed`).
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

    /// The next fetched delivery a slot may send now, if any.
    fn next_ready(&self) -> Option<DueDelivery> {
        if self.paused() {
            return None;
        }
        let mut ready = locked(&self.ready);
        if ready.is_empty() || !self.rate_allows_one() {
            return None;
        }
        let next = ready.pop_front();
        if ready.len() == self.depth / 2 {
            // Running low: the driver fetches more while the slots work through the rest.
            self.freed.notify_one();
        }
        next
    }

    /// Starts a send loop in each free slot while fetched deliveries wait; how many started.
    fn start_free_slots(self: &Arc<Self>) -> usize {
        let mut started = 0;
        loop {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let Some(delivery) = self.next_ready() else {
                break;
            };
            started += 1;
            self.tasks
                .spawn(self.clone().send_until_none_ready(delivery, permit));
        }
        started
    }

    /// One slot's work: sends `delivery`, then the next fetched one, until none may go.
    async fn send_until_none_ready(
        self: Arc<Self>,
        mut delivery: DueDelivery,
        permit: OwnedSemaphorePermit,
    ) {
        loop {
            self.send(&delivery).await;
            match self.next_ready() {
                Some(next) => delivery = next,
                None => break,
            }
        }
        drop(permit);
        self.freed.notify_one();
    }

    async fn send(&self, delivery: &DueDelivery) {
        let keys = locked(&self.keys).clone();
        let trace = delivery.trace();
        let message = Message {
            destination: self.destination,
            id: &delivery.message_id,
            payload: &delivery.payload,
            keys: &keys,
            trace: trace.as_ref(),
        };
        let outcome = send::attempt(&self.endpoint, &message).await;
        if let Some(asked) = outcome.retry_after {
            let pause = asked.min(self.settings.longest_retry_delay());
            *locked(&self.paused_until) = Some(Instant::now() + pause);
        }
        let counted = if outcome.succeeded() {
            DeliveryOutcome::Delivered
        } else {
            DeliveryOutcome::Failed
        };
        self.metrics
            .delivery_attempt(self.destination, "webhook", counted, 1);
        let finished = retry::finished(delivery, &outcome, &self.settings);
        // Fails only when the driver is gone: the delivery stays pending.
        let _ = self.recorder.send(finished).await;
    }
}

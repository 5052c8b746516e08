//! Webhook delivery: signed HTTP POSTs with retries, in the envelope or the entity-change
//! format.
//!
//! Unlike the buses, webhooks promise no order (second seed) and a failing event must not
//! hold others back. So a destination's driver moves events from the feed into a delivery
//! queue (advancing its feed position in the same transaction), and sends due deliveries
//! concurrently, each on its own retry schedule. In the entity format a queued `Updated`
//! is replaced by a newer one for the same entity (coalescing); `Created`/`Deleted` never
//! are. 2xx is delivered; 410 disables the destination; anything else retries after the
//! configured delays (honouring `Retry-After` on 429/503) until the last, then fails (kept,
//! retryable). Redirects are never followed.

pub mod guard;
pub mod payload;
pub mod send;
pub mod signing;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use super::destination::{WebhookConfig, WebhookFormat};
use crate::config::ServerConfig;
use crate::store::destinations::DestinationRow;
use crate::store::webhooks::{self as store, AttemptRecord, NewDelivery};

/// Events moved from the feed into the queue per step.
const BATCH: i64 = 256;

/// The webhook settings of the server configuration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub retry_delays: Vec<Duration>,
    pub timeout: Duration,
    pub concurrency: usize,
    pub allow_internal: bool,
    pub disable_after: Duration,
    pub heartbeat: Duration,
    pub public_base_url: String,
}

impl From<&ServerConfig> for WebhookSettings {
    fn from(config: &ServerConfig) -> Self {
        Self {
            retry_delays: config
                .webhook_retry_delays_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            timeout: Duration::from_secs(config.webhook_timeout_secs),
            concurrency: config.webhook_concurrency,
            allow_internal: config.allow_private_destinations,
            disable_after: Duration::from_secs(config.webhook_disable_after_secs),
            heartbeat: Duration::from_secs(config.webhook_heartbeat_secs),
            public_base_url: config.public_base_url.trim_end_matches('/').to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A destination's sending state, kept by its driver between steps.
pub struct Worker {
    client: reqwest::Client,
    slots: Arc<Semaphore>,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    /// Signalled whenever a send finishes, so a saturated driver refills the slot at once.
    pub freed: Arc<Notify>,
}

impl Worker {
    pub fn new(settings: &WebhookSettings) -> Result<Self, WebhookError> {
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .dns_resolver(Arc::new(guard::GuardedResolver {
                allow_internal: settings.allow_internal,
            }))
            .build()?;
        Ok(Self {
            client,
            slots: Arc::new(Semaphore::new(settings.concurrency)),
            in_flight: Arc::default(),
            freed: Arc::default(),
        })
    }
}

/// Queues a lifecycle message (`Activated`, `Deactivated`, `DailyHeartBeat`) for an
/// entity-format destination; does nothing for the envelope format.
pub async fn queue_lifecycle(
    conn: &mut PgConnection,
    destination: Uuid,
    config: &WebhookConfig,
    event: &str,
) -> Result<(), sqlx::Error> {
    if config.format != WebhookFormat::Entity {
        return Ok(());
    }
    let message_id = Uuid::now_v7().to_string();
    let body = payload::lifecycle(
        &message_id,
        event,
        Utc::now(),
        config.custom_config.as_ref(),
    );
    store::queue(
        conn,
        destination,
        &NewDelivery {
            message_id: &message_id,
            event_id: None,
            entity: None,
            entity_id: None,
            change: None,
            payload: &body,
            coalesce: false,
        },
    )
    .await
}

/// What one step did.
pub enum Progress {
    Busy,
    /// Every send slot is taken: wait for [`Worker::freed`].
    Saturated,
    Idle,
    Stopped,
}

/// One round for a webhook destination: heartbeat, queue new events, disable if failing
/// too long, send what is due. A disabled destination only sends its lifecycle messages.
pub async fn step(
    pool: &PgPool,
    destination: &DestinationRow,
    config: &WebhookConfig,
    types: &[String],
    worker: &Worker,
    settings: &WebhookSettings,
) -> Result<Progress, WebhookError> {
    let id = destination.id;
    let mut busy = false;
    if destination.enabled {
        if let Some(since) = destination.failing_since
            && (Utc::now() - since).to_std().unwrap_or_default() > settings.disable_after
        {
            let reason = format!("disabled after failing continuously since {since}");
            store::disable(pool, id, &reason).await?;
            return Ok(Progress::Stopped);
        }
        if config.format == WebhookFormat::Entity {
            let mut tx = pool.begin().await?;
            if store::claim_heartbeat(&mut tx, id, settings.heartbeat.as_secs_f64()).await? {
                queue_lifecycle(&mut tx, id, config, "DailyHeartBeat").await?;
            }
            tx.commit().await?;
        }
        busy |= queue_events(pool, destination, config, types, settings).await?;
    }
    busy |= dispatch(
        pool,
        id,
        &destination.signing_secrets(),
        config,
        worker,
        settings,
        !destination.enabled,
    )
    .await?
        > 0;
    let saturated = worker.slots.available_permits() == 0;
    Ok(match (busy, saturated, destination.enabled) {
        (true, _, _) => Progress::Busy,
        (false, true, _) => Progress::Saturated,
        (false, false, true) => Progress::Idle,
        (false, false, false) => Progress::Stopped,
    })
}

/// Moves the next events from the feed into the queue; `true` if there were any.
async fn queue_events(
    pool: &PgPool,
    destination: &DestinationRow,
    config: &WebhookConfig,
    types: &[String],
    settings: &WebhookSettings,
) -> Result<bool, WebhookError> {
    let from = destination.delivered()?;
    let events = store::read_events(
        pool,
        &destination.tenant_id,
        from,
        (!types.is_empty()).then_some(types),
        BATCH,
    )
    .await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(false);
    };
    let mut tx = pool.begin().await?;
    for event in &events {
        if !config.entities.is_empty() && !config.entities.contains(&event.entity) {
            continue;
        }
        let message_id = event.id.to_string();
        let body = match config.format {
            WebhookFormat::Envelope => event.envelope.clone(),
            WebhookFormat::Entity => payload::entity_change(
                &message_id,
                &event.entity,
                &event.entity_id,
                &event.change,
                event.created,
                resource_url(&settings.public_base_url, &event.entity, &event.entity_id),
                config.custom_config.as_ref(),
            ),
        };
        let coalesce = config.format == WebhookFormat::Entity && event.change == "Updated";
        store::queue(
            &mut tx,
            destination.id,
            &NewDelivery {
                message_id: &message_id,
                event_id: Some(event.id),
                entity: Some(&event.entity),
                entity_id: Some(&event.entity_id),
                change: Some(&event.change),
                payload: &body,
                coalesce,
            },
        )
        .await?;
    }
    // A replay moved the position meanwhile: drop this batch, the next step re-reads.
    if store::advance(&mut tx, destination.id, from, last).await? {
        tx.commit().await?;
    }
    Ok(true)
}

fn resource_url(base: &str, entity: &str, id: &str) -> Option<String> {
    let path = match entity {
        "Portfolio" => "portfolios",
        "Optimization" => "optimizations",
        _ => return None,
    };
    Some(format!("{base}/{path}/{id}"))
}

/// Starts sending due deliveries in free slots; returns how many were started.
async fn dispatch(
    pool: &PgPool,
    destination: Uuid,
    secrets: &[String],
    config: &WebhookConfig,
    worker: &Worker,
    settings: &WebhookSettings,
    lifecycle_only: bool,
) -> Result<usize, WebhookError> {
    let free = worker.slots.available_permits();
    if free == 0 {
        return Ok(0);
    }
    let in_flight: Vec<i64> = worker
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .copied()
        .collect();
    let due = store::due(pool, destination, &in_flight, lifecycle_only, free as i64).await?;
    let started = due.len();
    for delivery in due {
        let Ok(permit) = worker.slots.clone().try_acquire_owned() else {
            break;
        };
        worker
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(delivery.id);
        let (pool, client, in_flight, freed) = (
            pool.clone(),
            worker.client.clone(),
            worker.in_flight.clone(),
            worker.freed.clone(),
        );
        let (url, secrets, settings) = (config.url.clone(), secrets.to_vec(), settings.clone());
        tokio::spawn(async move {
            let outcome = send::attempt(
                &client,
                &url,
                &secrets,
                &delivery.message_id,
                &delivery.payload,
                settings.allow_internal,
            )
            .await;
            if let Err(err) = record(&pool, destination, &delivery, &outcome, &settings).await {
                tracing::warn!(destination = %destination, error = %err, "cannot record a webhook attempt");
            }
            in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&delivery.id);
            drop(permit);
            freed.notify_one();
        });
    }
    Ok(started)
}

async fn record(
    pool: &PgPool,
    destination: Uuid,
    delivery: &store::DueDelivery,
    outcome: &send::Outcome,
    settings: &WebhookSettings,
) -> Result<(), sqlx::Error> {
    let attempt_number = delivery.attempts as usize + 1;
    let next_attempt_at = if outcome.succeeded() || outcome.gone() {
        None
    } else {
        settings.retry_delays.get(attempt_number - 1).map(|delay| {
            let delay = jittered(*delay).max(outcome.retry_after.unwrap_or_default());
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
        })
    };
    store::record_attempt(
        pool,
        &AttemptRecord {
            destination,
            delivery: delivery.id,
            message_id: &delivery.message_id,
            succeeded: outcome.succeeded(),
            response_status: outcome.status.map(i32::from),
            duration_ms: outcome.duration.as_millis().min(i32::MAX as u128) as i32,
            error: outcome.error.as_deref(),
            excerpt: outcome.excerpt.as_deref(),
            next_attempt_at,
        },
    )
    .await?;
    if outcome.gone() {
        store::disable(pool, destination, "the endpoint answered 410 Gone").await?;
    }
    Ok(())
}

/// Up to ±10% around `delay`, so retries of many messages do not arrive in lockstep.
fn jittered(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / u32::MAX as f64;
    delay.mul_f64(0.9 + 0.2 * random)
}

impl DestinationRow {
    /// Secrets that sign now: the current one, and the previous one during a rotation.
    pub fn signing_secrets(&self) -> Vec<String> {
        let mut secrets: Vec<String> = self.secret.iter().cloned().collect();
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > Utc::now()
        {
            secrets.push(previous.clone());
        }
        secrets
    }
}

//! Webhook delivery: signed HTTP POSTs with retries, in the envelope or the entity-change
//! format.
//!
//! Unlike the buses, webhooks promise no order (second seed) and a failing event must not
//! hold others back. So a destination's driver moves events from the feed into a delivery
//! queue (advancing its feed position in the same transaction), and sends due deliveries
//! concurrently, each on its own retry schedule (with `"ordering": "entity"`, one at a time
//! per entity, in feed order). In the entity format a queued `Updated`
//! is replaced by a newer one for the same entity (coalescing); `Created`/`Deleted` never
//! are. 2xx is delivered; 410 disables the destination; anything else retries after the
//! configured delays (honouring `Retry-After` on 429/503) until the last, then fails (kept,
//! retryable). Redirects are never followed.

pub mod client;
pub mod endpoint;
pub mod oauth;
pub mod payload;
mod recorder;
mod retry;
pub mod send;
mod sender;
pub mod signing;

pub use sender::Worker;

use std::time::Duration;

use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::RelayError;
use super::batch::next_batch;
use super::destination::{Kind, WebhookConfig, WebhookFormat};
use super::health;
use crate::catalogue::payloads::DisabledBy;
use crate::config::ServerConfig;
use crate::store::destinations::{self, DestinationRow};
use crate::store::feed::OutboxRow;
use crate::store::outbox;
use crate::store::webhooks::{self as store, NewDelivery};
use client::{ClientError, Egress};

/// Events moved from the feed into the queue per step.
const BATCH: i64 = 256;

/// The webhook settings of the server configuration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub retry_delays: Vec<Duration>,
    pub timeout: Duration,
    pub concurrency: usize,
    /// Where deliveries may connect (every kind), and the egress proxy webhooks use.
    pub egress: Egress,
    pub disable_after: Duration,
    pub heartbeat: Duration,
    pub public_base_url: String,
    /// Every kind: how long a destination fails before `destinations.failing` is emitted.
    pub failing_after: Duration,
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
            egress: Egress {
                policy: config.address_policy(),
                proxy: config.egress_proxy.clone(),
            },
            disable_after: Duration::from_secs(config.webhook_disable_after_secs),
            heartbeat: Duration::from_secs(config.webhook_heartbeat_secs),
            public_base_url: config.public_base_url.trim_end_matches('/').to_owned(),
            failing_after: Duration::from_secs(config.destination_failing_after_secs),
        }
    }
}

impl WebhookSettings {
    /// The longest configured retry delay: the most an endpoint's `Retry-After` can ask.
    pub fn longest_retry_delay(&self) -> Duration {
        self.retry_delays.iter().max().copied().unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Client(#[from] ClientError),
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
            trace: None,
            coalesce: false,
        },
    )
    .await
}

/// eventgate disables a webhook (410 Gone, or failing too long): its status says why, the
/// audit log records it, and the tenant's feed gets `destinations.disabled`, all in the
/// caller's transaction, which holds the tenant's writers' lock from its start.
pub async fn disable(
    conn: &mut PgConnection,
    destination: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    if let Some(tenant) = store::disable(conn, destination, reason).await? {
        health::disabled(
            conn,
            &tenant,
            destination,
            Kind::Webhook,
            DisabledBy::System,
            Some(reason),
        )
        .await?;
    }
    Ok(())
}

/// What one step did.
pub enum Progress {
    Busy,
    /// Every send slot is busy with enough fetched ahead: wait for [`Worker::freed`].
    Saturated,
    Idle,
    Stopped,
    /// The position moved under the step (a replay): read the destination again.
    Repositioned,
}

/// One round for a webhook destination: heartbeat, queue new events, disable if failing
/// too long, send what is due. A disabled destination only sends its lifecycle messages.
pub async fn step(
    pool: &PgPool,
    destination: &mut DestinationRow,
    config: &WebhookConfig,
    types: &[String],
    worker: &Worker,
    settings: &WebhookSettings,
) -> Result<Progress, RelayError> {
    let id = destination.id;
    let mut busy = false;
    if destination.enabled {
        if let Some(since) = destination.failing_since
            && (Utc::now() - since).to_std().unwrap_or_default() > settings.disable_after
        {
            let reason = format!("disabled after failing continuously since {since}");
            let mut tx = pool.begin().await?;
            outbox::begin_writing(&mut tx, &destination.tenant_id).await?;
            disable(&mut tx, id, &reason).await?;
            tx.commit().await?;
            return Ok(Progress::Stopped);
        }
        if config.format == WebhookFormat::Entity {
            let mut tx = pool.begin().await?;
            if store::claim_heartbeat(&mut tx, id, settings.heartbeat.as_secs_f64()).await? {
                queue_lifecycle(&mut tx, id, config, "DailyHeartBeat").await?;
            }
            tx.commit().await?;
        }
        match queue_events(pool, destination, config, types, settings).await? {
            Queued::Nothing => {}
            Queued::Some => busy = true,
            Queued::Repositioned => return Ok(Progress::Repositioned),
        }
    }
    busy |= worker
        .dispatch(
            pool,
            destination.signing_keys(),
            config,
            !destination.enabled,
        )
        .await?
        > 0;
    let saturated = worker.saturated();
    Ok(match (busy, saturated, destination.enabled) {
        (true, _, _) => Progress::Busy,
        (false, true, _) => Progress::Saturated,
        (false, false, true) => Progress::Idle,
        (false, false, false) => Progress::Stopped,
    })
}

/// What [`queue_events`] did.
enum Queued {
    Nothing,
    Some,
    /// A replay moved the position meanwhile: nothing was queued.
    Repositioned,
}

/// Moves the next events from the feed into the queue, and `destination`'s position (as
/// the driver knows it) past them.
async fn queue_events(
    pool: &PgPool,
    destination: &mut DestinationRow,
    config: &WebhookConfig,
    types: &[String],
    settings: &WebhookSettings,
) -> Result<Queued, RelayError> {
    let batch = next_batch(pool, destination, types, BATCH).await?;
    if batch.is_idle() {
        return Ok(Queued::Nothing);
    }
    let selected: Vec<&OutboxRow> = batch
        .rows
        .iter()
        .filter(|e| config.delivers(&e.entity))
        .collect();
    let bodies: Vec<(String, String)> = selected
        .iter()
        .map(|event| {
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
            (message_id, body)
        })
        .collect();
    let deliveries: Vec<NewDelivery<'_>> = selected
        .iter()
        .zip(&bodies)
        .map(|(event, (message_id, body))| NewDelivery {
            message_id,
            event_id: Some(event.id),
            entity: Some(&event.entity),
            entity_id: Some(&event.entity_id),
            change: Some(&event.change),
            payload: body,
            trace: event.trace.as_ref(),
            coalesce: config.format == WebhookFormat::Entity && event.change == "Updated",
        })
        .collect();
    let mut tx = pool.begin().await?;
    store::queue_many(&mut tx, destination.id, &deliveries).await?;
    // A replay moved the position meanwhile: drop this batch, the next step re-reads.
    if !destinations::advance(&mut *tx, destination.id, batch.from, batch.through, false).await? {
        return Ok(Queued::Repositioned);
    }
    tx.commit().await?;
    destination.advanced_to(batch.through, false);
    Ok(if batch.rows.is_empty() {
        Queued::Nothing
    } else {
        Queued::Some
    })
}

fn resource_url(base: &str, entity: &str, id: &str) -> Option<String> {
    let path = match entity {
        "Portfolio" => "portfolios",
        "Optimization" => "optimizations",
        "Destination" => "destinations",
        _ => return None,
    };
    Some(format!("{base}/{path}/{id}"))
}

impl DestinationRow {
    /// Keys that sign now: the current one, and the previous one during a rotation.
    pub fn signing_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.secret.iter().cloned().collect();
        keys.extend(self.previous_key().map(str::to_owned));
        keys
    }

    /// The previous signing key while it still signs beside the current one.
    pub fn previous_key(&self) -> Option<&str> {
        match (&self.previous_secret, self.previous_secret_until) {
            (Some(previous), Some(until)) if until > Utc::now() => Some(previous),
            _ => None,
        }
    }
}

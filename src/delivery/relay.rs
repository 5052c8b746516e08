//! The relay: one supervisor per process decides which destinations this process drives,
//! and one driver task per destination pushes its events.
//!
//! Exclusivity: the supervisor holds a session-level advisory lock per driven destination
//! on one dedicated connection. If the process dies, the connection closes, the locks
//! vanish and another process takes the destinations over at its next tick (1 s). If the
//! lock connection fails, every driver is stopped before anything else is tried.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Sink;
use super::backoff::Backoff;
use super::destination::{Kind, SinkConfig, expand_types};
use super::event::OutboundEvent;
use super::webhook::{self, Progress, WebhookSettings, Worker};
use crate::feed::notifier::Notifier;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::store;

const TICK: Duration = Duration::from_secs(1);
/// Events published per batch (one confirm round trip).
const BATCH: i64 = 256;
/// How often an idle driver re-reads without a notification (lost NOTIFY cover).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

/// What every driver of this process shares.
#[derive(Clone)]
pub struct Relay {
    pub pool: PgPool,
    /// Wakes idle drivers when their tenant's outbox grows.
    pub notifier: Notifier,
    pub settings: WebhookSettings,
    pub metrics: Metrics,
}

/// Runs until `shutdown` turns true.
pub async fn run_supervisor(relay: Relay, mut shutdown: watch::Receiver<bool>) {
    let mut drivers: HashMap<Uuid, JoinHandle<()>> = HashMap::new();
    let mut locks: Option<PgConnection> = None;
    loop {
        if let Err(err) = supervise(&relay, &shutdown, &mut drivers, &mut locks).await {
            tracing::warn!(error = %err, "relay supervisor lost its lock connection; stopping all drivers");
            stop_all(&mut drivers);
            locks = None;
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            stop_all(&mut drivers);
            return;
        }
    }
}

fn stop_all(drivers: &mut HashMap<Uuid, JoinHandle<()>>) {
    for (_, driver) in drivers.drain() {
        driver.abort();
    }
}

fn lock_key(id: Uuid) -> String {
    format!("eventgate/destination/{id}")
}

async fn supervise(
    relay: &Relay,
    shutdown: &watch::Receiver<bool>,
    drivers: &mut HashMap<Uuid, JoinHandle<()>>,
    locks: &mut Option<PgConnection>,
) -> Result<(), sqlx::Error> {
    let pool = &relay.pool;
    let conn = match locks {
        Some(conn) => conn,
        // Detached: the locks live exactly as long as this connection, outside the pool.
        None => locks.insert(pool.acquire().await?.detach()),
    };
    // Proves the lock connection (and so every lock on it) is still alive.
    sqlx::query("SELECT 1").execute(&mut *conn).await?;
    let enabled = store::destinations::enabled_ids(pool).await?;

    let finished: Vec<Uuid> = drivers
        .iter()
        .filter(|(id, driver)| driver.is_finished() || enabled.binary_search(id).is_err())
        .map(|(id, _)| *id)
        .collect();
    for id in finished {
        if let Some(driver) = drivers.remove(&id) {
            driver.abort();
        }
        sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
            .bind(lock_key(id))
            .execute(&mut *conn)
            .await?;
    }
    for id in enabled {
        if drivers.contains_key(&id) {
            continue;
        }
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
                .bind(lock_key(id))
                .fetch_one(&mut *conn)
                .await?;
        if locked {
            tracing::info!(destination = %id, "driving destination");
            let driver = drive(relay.clone(), id, shutdown.clone());
            drivers.insert(id, tokio::spawn(driver));
        }
    }
    Ok(())
}

/// Pushes one destination's events until it is disabled or deleted, or shutdown.
async fn drive(relay: Relay, id: Uuid, mut shutdown: watch::Receiver<bool>) {
    let pool = &relay.pool;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut sink: Option<(SinkConfig, Sink)> = None;
    let mut worker: Option<Worker> = None;
    let mut wake: Option<(String, watch::Receiver<u64>)> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if let Some((_, wake)) = &mut wake {
            wake.mark_unchanged();
        }
        let step = deliver_once(&relay, id, &mut sink, &mut worker, &mut wake).await;
        let idle = matches!(step, Ok(Step::Idle));
        let saturated = matches!(step, Ok(Step::Saturated));
        let pause = match step {
            Ok(Step::Stop) => return,
            Ok(Step::Delivered) => {
                backoff.reset();
                continue;
            }
            Ok(Step::Idle | Step::Saturated) => IDLE_RECHECK,
            Err(message) => {
                tracing::warn!(destination = %id, error = %message, "delivery failed; will retry");
                sink = None;
                if let Err(err) = store::destinations::record_error(pool, id, &message).await {
                    tracing::warn!(destination = %id, error = %err, "cannot record the delivery error");
                }
                backoff.next_delay()
            }
        };
        let woken = async {
            match &mut wake {
                Some((_, wake)) if idle => {
                    let _ = wake.changed().await;
                }
                _ => std::future::pending::<()>().await,
            }
        };
        let freed = worker.as_ref().map(|w| w.freed.clone());
        let slot_freed = async {
            match freed {
                Some(freed) if saturated => freed.notified().await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = woken => {}
            () = slot_freed => {}
            _ = shutdown.changed() => {}
        }
    }
}

enum Step {
    Delivered,
    /// Webhooks: every send slot is busy; continue when one frees.
    Saturated,
    Idle,
    Stop,
}

async fn deliver_once(
    relay: &Relay,
    id: Uuid,
    sink: &mut Option<(SinkConfig, Sink)>,
    worker: &mut Option<Worker>,
    wake: &mut Option<(String, watch::Receiver<u64>)>,
) -> Result<Step, String> {
    let (pool, settings) = (&relay.pool, &relay.settings);
    let Some(destination) = store::destinations::get(pool, id, None)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Step::Stop);
    };
    if wake
        .as_ref()
        .is_none_or(|(tenant, _)| *tenant != destination.tenant_id)
    {
        *wake = Some((
            destination.tenant_id.clone(),
            relay.notifier.subscribe(&destination.tenant_id),
        ));
    }
    let kind = Kind::parse(&destination.kind).ok_or("unknown destination kind")?;
    let config = SinkConfig::parse(kind, destination.config.clone()).map_err(|e| e.to_string())?;
    let types = expand_types(&destination.types).map_err(|e| e.to_string())?;
    if let SinkConfig::Webhook(webhook_config) = &config {
        let worker = match worker {
            Some(worker) => worker,
            None => worker.insert(
                Worker::new(pool, id, settings, relay.metrics.clone())
                    .map_err(|e| e.to_string())?,
            ),
        };
        let progress = webhook::step(pool, &destination, webhook_config, &types, worker, settings)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(match progress {
            Progress::Busy => Step::Delivered,
            Progress::Saturated => Step::Saturated,
            Progress::Idle => Step::Idle,
            Progress::Stopped => Step::Stop,
        });
    }
    if !destination.enabled {
        return Ok(Step::Stop);
    }
    let from = destination.delivered().map_err(|e| e.to_string())?;

    let read = store::feed::read(
        pool,
        &destination.tenant_id,
        from,
        (!types.is_empty()).then_some(types.as_slice()),
        BATCH,
    )
    .await
    .map_err(|e| e.to_string())?;
    if read.rows.is_empty() {
        return Ok(Step::Idle);
    }
    let events = read
        .rows
        .into_iter()
        .map(|(position, envelope)| {
            OutboundEvent::from_stored(&destination.tenant_id, position, envelope)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("stored envelope unreadable: {e}"))?;

    if sink.as_ref().is_some_and(|(current, _)| *current != config) {
        *sink = None;
    }
    let connected = match sink {
        Some((_, connected)) => connected,
        None => {
            let connected = Sink::connect(&config, id)
                .await
                .map_err(|e| e.to_string())?;
            &mut sink.insert((config, connected)).1
        }
    };
    let published = connected.publish(&events).await;
    let outcome = match published {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(_) => DeliveryOutcome::Failed,
    };
    relay
        .metrics
        .delivery_attempt(id, kind.as_str(), outcome, events.len() as u64);
    published.map_err(|e| e.to_string())?;
    let to = events.last().map(|e| e.position).unwrap_or(from);
    // `false` means a replay moved the position meanwhile: the next round reads it.
    store::destinations::advance(pool, id, from, to)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Step::Delivered)
}

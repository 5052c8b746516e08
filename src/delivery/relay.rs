//! The relay: one supervisor per process decides which destinations this process drives,
//! and one driver task per destination pushes its events.
//!
//! Exclusivity: the supervisor holds a session-level advisory lock per driven destination
//! on one dedicated connection. If the process dies, the connection closes, the locks
//! vanish and another process takes the destinations over at its next tick (1 s). If the
//! lock connection fails, every driver is stopped before anything else is tried.
//!
//! Drivers are never aborted: they are told to stop and stop between steps, so no
//! transaction or broker confirm is cut in half. Every task the relay starts runs on its
//! [`TaskTracker`], which shutdown waits for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::backoff::Backoff;
use super::batch::{Batch, batch_after, next_batch};
use super::changes::{DestinationChanges, Seen};
use super::destination::{Kind, SinkConfig, expand_types};
use super::event::OutboundEvent;
use super::webhook::{self, Progress, WebhookSettings, Worker};
use super::{RelayError, Sink};
use crate::feed::notifier::Notifier;
use crate::metrics::{DeliveryOutcome, Metrics};
use crate::secrets::Keyring;
use crate::store;
use crate::store::destinations::DestinationRow;

const TICK: Duration = Duration::from_secs(1);
/// Events published per batch (one confirm round trip).
const BATCH: i64 = 256;
/// How often an idle driver re-reads without a notification (lost NOTIFY cover).
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// How long a driver trusts its destination as read, even when no change was announced.
/// Announcements are not lost while the LISTEN connection stands and a reconnect counts
/// as a change of every destination; this bounds what an unforeseen gap could cost.
const TRUST_AT_MOST: Duration = Duration::from_secs(5);

/// What every driver of this process shares.
#[derive(Clone)]
pub struct Relay {
    pub pool: PgPool,
    /// Wakes idle drivers when their tenant's outbox grows.
    pub notifier: Notifier,
    /// Tells drivers when their destination changed (they keep it between steps).
    pub changes: DestinationChanges,
    pub settings: WebhookSettings,
    pub metrics: Metrics,
    /// Opens the destinations' stored secrets.
    pub keyring: Keyring,
    /// Drivers run here (each waits for its own webhook sends); shutdown waits for them.
    pub tasks: TaskTracker,
}

/// A running driver and how to stop it.
struct Driver {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

/// Runs until `stop` is cancelled, then stops every driver and waits for them.
pub async fn run_supervisor(relay: Relay, stop: CancellationToken) {
    let mut drivers: HashMap<Uuid, Driver> = HashMap::new();
    let mut locks: Option<PgConnection> = None;
    loop {
        if let Err(err) = supervise(&relay, &stop, &mut drivers, &mut locks).await {
            tracing::warn!(error = %err, "relay supervisor lost its lock connection; stopping all drivers");
            stop_all(&mut drivers).await;
            locks = None;
        }
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = stop.cancelled() => {}
        }
        if stop.is_cancelled() {
            stop_all(&mut drivers).await;
            return;
        }
    }
}

/// Tells every driver to stop and waits until they have (each finishes its step).
async fn stop_all(drivers: &mut HashMap<Uuid, Driver>) {
    for driver in drivers.values() {
        driver.stop.cancel();
    }
    for (_, driver) in drivers.drain() {
        let _ = driver.handle.await;
    }
}

fn lock_key(id: Uuid) -> String {
    format!("eventgate/destination/{id}")
}

async fn supervise(
    relay: &Relay,
    stop: &CancellationToken,
    drivers: &mut HashMap<Uuid, Driver>,
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

    // A driver whose destination has no more work is told to stop; its lock is released
    // only once it has stopped, so a new driver never overlaps an old one's last step.
    for (id, driver) in drivers.iter() {
        if enabled.binary_search(id).is_err() {
            driver.stop.cancel();
        }
    }
    let finished: Vec<Uuid> = drivers
        .iter()
        .filter(|(_, driver)| driver.handle.is_finished())
        .map(|(id, _)| *id)
        .collect();
    for id in finished {
        drivers.remove(&id);
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
            let driver_stop = stop.child_token();
            let handle = relay
                .tasks
                .spawn(drive(relay.clone(), id, driver_stop.clone()));
            drivers.insert(
                id,
                Driver {
                    stop: driver_stop,
                    handle,
                },
            );
        }
    }
    Ok(())
}

/// What a driver keeps between steps.
#[derive(Default)]
struct DriverState {
    known: Option<Known>,
    /// Broker kinds: the batch after the last one published, read during its confirm.
    ahead: Option<Batch>,
    sink: Option<(SinkConfig, Sink)>,
    worker: Option<Worker>,
    wake: Option<(String, watch::Receiver<u64>)>,
}

/// Pushes one destination's events until it is disabled or deleted, or `stop`; then waits
/// for the webhook sends it started.
async fn drive(relay: Relay, id: Uuid, stop: CancellationToken) {
    let mut state = DriverState::default();
    drive_until_stopped(&relay, id, &stop, &mut state).await;
    if let Some(worker) = state.worker.take() {
        worker.finish().await;
    }
}

async fn drive_until_stopped(
    relay: &Relay,
    id: Uuid,
    stop: &CancellationToken,
    state: &mut DriverState,
) {
    let pool = &relay.pool;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    while !stop.is_cancelled() {
        if let Some((_, wake)) = &mut state.wake {
            wake.mark_unchanged();
        }
        let step = deliver_once(relay, id, state).await;
        let idle = matches!(step, Ok(Step::Idle));
        let saturated = matches!(step, Ok(Step::Saturated));
        let pause = match step {
            Ok(Step::Stop) => return,
            Ok(Step::Delivered) => {
                backoff.reset();
                continue;
            }
            Ok(Step::Idle | Step::Saturated) => IDLE_RECHECK,
            Err(err) => {
                tracing::warn!(destination = %id, error = %err, "delivery failed; will retry");
                state.sink = None;
                if let Err(err) =
                    store::destinations::record_error(pool, id, &err.to_string()).await
                {
                    tracing::warn!(destination = %id, error = %err, "cannot record the delivery error");
                }
                backoff.next_delay()
            }
        };
        let woken = async {
            match &mut state.wake {
                Some((_, wake)) if idle => {
                    let _ = wake.changed().await;
                }
                _ => std::future::pending::<()>().await,
            }
        };
        // A freed slot or a recorded outcome can make more due: a saturated driver refills,
        // and an idle one (an ordered destination whose entities wait on sends in flight)
        // sends the next of an entity as soon as the one before is recorded.
        let freed = state.worker.as_ref().map(|w| w.freed.clone());
        let slot_freed = async {
            match freed {
                Some(freed) if saturated || idle => freed.notified().await,
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = woken => {}
            () = slot_freed => {}
            () = stop.cancelled() => {}
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

/// The driver's destination, kept between steps until it changes.
struct Known {
    row: DestinationRow,
    seen: Seen,
    read_at: Instant,
}

/// Reads the destination unless the one in memory is still current; `None` once it is
/// gone.
async fn current_destination(
    relay: &Relay,
    id: Uuid,
    known: Option<Known>,
    state: &mut DriverState,
) -> Result<Option<Known>, RelayError> {
    let current = known.filter(|known| {
        known.read_at.elapsed() < TRUST_AT_MOST && !relay.changes.changed_since(id, known.seen)
    });
    if current.is_some() {
        return Ok(current);
    }
    // A batch read ahead under the old row may be of the old types or position.
    state.ahead = None;
    let seen = relay.changes.seen(id);
    let row = store::destinations::get(&relay.pool, &relay.keyring, id, None).await?;
    Ok(row.map(|row| Known {
        row,
        seen,
        read_at: Instant::now(),
    }))
}

async fn deliver_once(
    relay: &Relay,
    id: Uuid,
    state: &mut DriverState,
) -> Result<Step, RelayError> {
    let known = state.known.take();
    let Some(mut known) = current_destination(relay, id, known, state).await? else {
        return Ok(Step::Stop);
    };
    let (step, still_current) = deliver_to(relay, &mut known.row, state).await?;
    // Kept only after a step that ended as expected; any other end reads it again.
    if still_current {
        state.known = Some(known);
    }
    Ok(step)
}

/// One step for `destination`; with it, whether the row (as the step left it) is still
/// what the table holds, as far as this driver knows.
async fn deliver_to(
    relay: &Relay,
    destination: &mut DestinationRow,
    state: &mut DriverState,
) -> Result<(Step, bool), RelayError> {
    let (pool, settings) = (&relay.pool, &relay.settings);
    let id = destination.id;
    if state
        .wake
        .as_ref()
        .is_none_or(|(tenant, _)| *tenant != destination.tenant_id)
    {
        state.wake = Some((
            destination.tenant_id.clone(),
            relay.notifier.subscribe(&destination.tenant_id),
        ));
    }
    if super::health::observe(pool, destination, settings.failing_after).await? {
        return Ok((Step::Delivered, false));
    }
    let kind = Kind::parse(&destination.kind)
        .ok_or_else(|| RelayError::UnknownKind(destination.kind.clone()))?;
    let config =
        SinkConfig::stored(kind, destination.config.clone()).map_err(RelayError::Settings)?;
    let types = expand_types(&destination.types).map_err(RelayError::Settings)?;
    if let SinkConfig::Webhook(webhook_config) = &config {
        // Changed endpoint settings (TLS, auth, limits) take a new worker; the old one's
        // sends finish first.
        if let Some(stale) = state.worker.take_if(|worker| !worker.fits(webhook_config)) {
            stale.finish().await;
        }
        let worker = match &mut state.worker {
            Some(worker) => worker,
            None => state.worker.insert(Worker::new(
                pool,
                id,
                &destination.tenant_id,
                webhook_config,
                settings,
                relay.metrics.clone(),
            )?),
        };
        let progress =
            webhook::step(pool, destination, webhook_config, &types, worker, settings).await?;
        return Ok(match progress {
            Progress::Busy => (Step::Delivered, true),
            Progress::Saturated => (Step::Saturated, true),
            Progress::Idle => (Step::Idle, true),
            Progress::Stopped => (Step::Stop, false),
            Progress::Repositioned => (Step::Delivered, false),
        });
    }
    if !destination.enabled {
        return Ok((Step::Stop, false));
    }
    let batch = match state.ahead.take() {
        Some(ahead) if ahead.from == destination.delivered() => ahead,
        _ => next_batch(pool, destination, &types, BATCH).await?,
    };
    if batch.rows.is_empty() {
        if batch.is_idle() {
            return Ok((Step::Idle, true));
        }
        // Nothing of its types: it keeps up with its tenant's feed all the same.
        let moved =
            store::destinations::advance(pool, id, batch.from, batch.through, false).await?;
        if moved {
            destination.advanced_to(batch.through, false);
        }
        return Ok((Step::Idle, moved));
    }
    let Batch {
        from,
        rows,
        through,
    } = batch;
    let events: Vec<OutboundEvent> = rows
        .into_iter()
        .map(|row| OutboundEvent::from_row(&destination.tenant_id, row))
        .collect();

    if state
        .sink
        .as_ref()
        .is_some_and(|(current, _)| *current != config)
    {
        state.sink = None;
    }
    let connected = match &mut state.sink {
        Some((_, connected)) => connected,
        None => {
            let connected = Sink::connect(&config, id, &settings.egress.policy).await?;
            &mut state.sink.insert((config, connected)).1
        }
    };
    // After a full batch more is likely waiting: the next batch is read while the broker
    // confirms this one, so a busy step waits for one database round trip (the
    // position's) besides the broker. After a partial one the driver has caught up and
    // that read would come back empty: one more read per commit at a steady rate
    // (docs/BENCHMARKS.md, tenth section); the next step reads when it wakes.
    let read_ahead = async {
        if events.len() as i64 == BATCH {
            batch_after(pool, destination, through, &types, BATCH)
                .await
                .ok()
        } else {
            None
        }
    };
    let (published, ahead) = tokio::join!(connected.publish(id, &events), read_ahead);
    let outcome = match published {
        Ok(()) => DeliveryOutcome::Delivered,
        Err(_) => DeliveryOutcome::Failed,
    };
    relay
        .metrics
        .delivery_attempt(id, kind.as_str(), outcome, events.len() as u64);
    published?;
    // `false` means a replay moved the position meanwhile: the next round reads it again.
    if !store::destinations::advance(pool, id, from, through, true).await? {
        return Ok((Step::Delivered, false));
    }
    destination.advanced_to(through, true);
    // An empty read ahead says nothing of what commits meanwhile: the next step reads.
    state.ahead = ahead.filter(|ahead| !ahead.rows.is_empty());
    Ok((Step::Delivered, true))
}

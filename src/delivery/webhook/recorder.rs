//! Records finished webhook attempts in batches.
//!
//! One durable commit per attempt capped a destination at a few hundred deliveries a
//! second. Sends hand their outcome to this task instead, which writes every outcome that
//! finished meanwhile in one transaction (group commit). A delivery stays "in flight" until
//! its outcome is committed, so it is never picked up again in between; if the commit
//! fails the delivery is still pending in the database and is sent again (at-least-once).

use std::sync::{Arc, PoisonError};

use sqlx::PgPool;
use tokio::sync::{Notify, mpsc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::store::webhook_attempts::{self, AttemptRecord};

/// Most outcomes written in one transaction.
const MAX_BATCH: usize = 1024;

/// A finished attempt on its way to the database.
pub struct Finished {
    pub record: AttemptRecord,
    /// The endpoint answered 410 Gone: disable the destination.
    pub gone: bool,
}

/// Starts the recorder of one destination; it ends when every sender is dropped.
pub fn spawn(
    tasks: &TaskTracker,
    pool: PgPool,
    destination: Uuid,
    tenant: String,
    in_flight: super::sender::InFlight,
    recorded: Arc<Notify>,
    capacity: usize,
) -> mpsc::Sender<Finished> {
    let (sender, mut receiver) = mpsc::channel::<Finished>(capacity);
    tasks.spawn(async move {
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if let Err(err) = write(&pool, destination, &tenant, &batch).await {
                tracing::warn!(destination = %destination, error = %err, attempts = batch.len(),
                    "cannot record webhook attempts; they will be sent again");
            }
            let mut in_flight = in_flight.lock().unwrap_or_else(PoisonError::into_inner);
            for finished in batch.drain(..) {
                in_flight.remove(&finished.record.delivery);
            }
            drop(in_flight);
            recorded.notify_one();
        }
    });
    sender
}

async fn write(
    pool: &PgPool,
    destination: Uuid,
    tenant: &str,
    batch: &[Finished],
) -> Result<(), sqlx::Error> {
    let records: Vec<AttemptRecord> = batch.iter().map(|f| f.record.clone()).collect();
    let gone = batch.iter().any(|f| f.gone);
    let mut tx = pool.begin().await?;
    if gone {
        // The disabling appends `destinations.disabled`: a writer of the tenant's outbox.
        crate::store::outbox::begin_writing(&mut tx, tenant).await?;
    }
    webhook_attempts::record_attempts(&mut tx, destination, &records).await?;
    if gone {
        super::disable(&mut tx, destination, "the endpoint answered 410 Gone").await?;
    }
    tx.commit().await
}

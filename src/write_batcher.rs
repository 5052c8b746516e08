//! Group commit for writes. Requests hand their write to the [`WriteBatcher`]; a few
//! committer tasks, each on a connection of its own (`HeldConnection`), take every write
//! waiting (up to a batch's size) and make them in one `eventgate_write` call: one round
//! trip, one transaction, one commit for the lot.
//! Each request's answer is tied to that commit: it is sent only once the batch has
//! committed, and a write the rules refuse is undone alone.
//!
//! Under light load a write finds no company and goes alone at once: batching costs no
//! waiting, it only happens when writes queue. If a batch of several fails as a whole (a
//! lock wait or a deadlock that one write caused, the database gone), each of its writes
//! is tried again alone, so one request's trouble is not its neighbours'.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::held_connection::HeldConnection;
use crate::store::writes::{self, Refusal, WriteError, Written};

/// How writes are grouped.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Committer tasks (each holds a database connection while it commits).
    pub committers: usize,
    /// Most writes in one transaction.
    pub max_writes: usize,
    /// How long a batch waits for a lock before its writes are refused (409).
    pub lock_wait: Duration,
}

struct Job {
    write: Box<RawValue>,
    answer: oneshot::Sender<Result<Written, WriteError>>,
}

/// Hands writes to the committers. Cheap to clone; the committers stop when the last
/// clone is dropped.
#[derive(Clone)]
pub struct WriteBatcher {
    jobs: mpsc::Sender<Job>,
}

impl WriteBatcher {
    /// Starts the committers on the current runtime.
    pub fn start(pool: PgPool, settings: BatchSettings) -> Self {
        let (jobs, queue) = mpsc::channel(settings.max_writes * settings.committers * 4);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..settings.committers.max(1) {
            tokio::spawn(commit_batches(pool.clone(), queue.clone(), settings));
        }
        Self { jobs }
    }

    /// Writes waiting for a committer (not counting those being made).
    pub fn queued(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Makes `write` (see `store::writes::encode`) in the next batch, and returns what
    /// became of it once its batch has committed.
    pub async fn write(&self, write: Box<RawValue>) -> Result<Written, WriteError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Job { write, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> WriteError {
    WriteError::Database(sqlx::Error::WorkerCrashed)
}

/// One committer: takes the first waiting write and every other one waiting behind it
/// (up to `max_writes`), makes them, answers each; until the batcher is dropped.
async fn commit_batches(
    pool: PgPool,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    settings: BatchSettings,
) {
    let mut batch = Vec::with_capacity(settings.max_writes);
    let mut connection = HeldConnection::new(pool.clone());
    loop {
        {
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, settings.max_writes).await == 0 {
                connection.close().await;
                return;
            }
        }
        make(&pool, &mut connection, std::mem::take(&mut batch), settings).await;
    }
}

/// Makes one batch on the committer's own connection (`HeldConnection`).
async fn make(
    pool: &PgPool,
    connection: &mut HeldConnection,
    jobs: Vec<Job>,
    settings: BatchSettings,
) {
    let (writes, answers): (Vec<_>, Vec<_>) =
        jobs.into_iter().map(|job| (job.write, job.answer)).unzip();
    let outcome = match connection.live().await {
        Ok(live) => writes::write_batch(live, &writes, settings.lock_wait, true).await,
        Err(err) => Err(err),
    };
    if let Err(err) = &outcome {
        connection.after_error(err);
    }
    match outcome {
        Ok(results) => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(result.map_err(WriteError::Refused));
            }
        }
        Err(err) if writes.len() == 1 => {
            if let Some(answer) = answers.into_iter().next() {
                let _ = answer.send(Err(WriteError::Database(err)));
            }
        }
        Err(err) => {
            tracing::info!(error = %err, writes = writes.len(),
                "a batch of writes failed as a whole; making each alone");
            // At once, not one after another: each may wait for a lock up to lock_wait.
            let alone = writes.iter().map(|write| async move {
                let mut results = writes::write_batch(
                    pool,
                    std::slice::from_ref(write),
                    settings.lock_wait,
                    true,
                )
                .await?;
                results.pop().ok_or(sqlx::Error::RowNotFound)
            });
            let outcomes: Vec<Result<Result<Written, Refusal>, sqlx::Error>> =
                futures_util::future::join_all(alone).await;
            for (answer, outcome) in answers.into_iter().zip(outcomes) {
                let _ = answer.send(match outcome {
                    Ok(result) => result.map_err(WriteError::Refused),
                    Err(err) => Err(WriteError::Database(err)),
                });
            }
        }
    }
}

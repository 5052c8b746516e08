//! A database connection that one long-lived task keeps to itself from one use to the
//! next, so that its session's caches stay warm; checked before each use as the pool
//! checks the connections it hands out.
//!
//! Why keep one: the pool hands out its idle connections in turn, so a task that writes
//! now and then lands on a different session each time, and each session pays again for
//! planning the task's statements (PL/pgSQL plans them anew for each of a session's first
//! five calls) and for loading the catalogue entries of the tables they touch. Measured
//! with the group-commit writers under 5,000 long-polls on a new server, keeping their
//! connections halved PostgreSQL's CPU for the wake-up (docs/BENCHMARKS.md, seventeenth
//! section).
//!
//! Opened beside the pool, with the pool's settings, not taken from it: a connection held
//! for good would leave the pool one short for everything else (two replicas sharing a
//! small pool ran out).

use std::time::Duration;

use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::time::Instant;

/// How long a connection is kept before a new one replaces it (the pool's default
/// lifetime for its own).
pub const MAX_AGE: Duration = Duration::from_secs(30 * 60);

pub struct HeldConnection {
    pool: PgPool,
    held: Option<(PgConnection, Instant)>,
}

impl HeldConnection {
    /// Holds nothing yet: the first [`live`](Self::live) connects, with `pool`'s settings.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, held: None }
    }

    /// The connection to use now: the one held, when it still answers a ping (the check
    /// the pool makes on every connection it hands out) and is younger than [`MAX_AGE`];
    /// otherwise a new one, given as long to connect as the pool gives an acquire.
    pub async fn live(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let Some((connection, opened)) = &mut self.held {
            if opened.elapsed() >= MAX_AGE {
                self.close().await;
            } else if let Err(err) = connection.ping().await {
                tracing::info!(error = %err, "a held database connection did not answer; opening another");
                self.held = None;
            }
        }
        let held = match self.held.take() {
            Some(held) => held,
            None => {
                let options = self.pool.connect_options();
                let connecting = options.connect();
                let timeout = self.pool.options().get_acquire_timeout();
                let connection = tokio::time::timeout(timeout, connecting)
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)??;
                (connection, Instant::now())
            }
        };
        let (connection, _) = self.held.insert(held);
        Ok(connection)
    }

    /// Lets go of the connection after `err` when the error may be the connection's own
    /// (anything but an error PostgreSQL reported); the next use opens another.
    pub fn after_error(&mut self, err: &sqlx::Error) {
        if !matches!(err, sqlx::Error::Database(_)) {
            self.held = None;
        }
    }

    /// Closes the connection held, if any, telling PostgreSQL (a dropped one is merely cut).
    pub async fn close(&mut self) {
        if let Some((connection, _)) = self.held.take() {
            let _ = connection.close().await;
        }
    }
}

//! A pooled connection that one long-lived task keeps from one use to the next, so that
//! its session's caches stay warm, checked before each use as the pool checks the
//! connections it hands out.
//!
//! Why keep one: the pool hands out its idle connections in turn, so a task that writes
//! now and then lands on a different session each time, and each session pays again for
//! planning the task's statements (PL/pgSQL plans them anew for each of a session's first
//! five calls) and for loading the catalogue entries of the tables they touch. Measured
//! with the group-commit writers under 5,000 long-polls on a new server, keeping their
//! connections halved PostgreSQL's CPU for the wake-up (docs/BENCHMARKS.md, seventeenth
//! section).

use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::time::Instant;

/// How long a connection is kept before it goes back to the pool, whose lifetime and idle
/// limits then apply to it as to the others.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

pub struct HeldConnection {
    pool: PgPool,
    held: Option<(PoolConnection<Postgres>, Instant)>,
}

impl HeldConnection {
    /// Holds nothing yet: the first [`live`](Self::live) acquires.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, held: None }
    }

    /// The connection to use now: the one held, when it still answers a ping (the check
    /// the pool makes on every connection it hands out) and was acquired less than
    /// [`MAX_HOLD`] ago; otherwise a new one from the pool.
    pub async fn live(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if let Some((connection, acquired)) = &mut self.held {
            if acquired.elapsed() >= MAX_HOLD {
                self.held = None;
            } else if let Err(err) = connection.ping().await {
                tracing::info!(error = %err, "a held connection did not answer; acquiring another");
                self.discard();
            }
        }
        let held = match self.held.take() {
            Some(held) => held,
            None => (self.pool.acquire().await?, Instant::now()),
        };
        let (connection, _) = self.held.insert(held);
        Ok(&mut **connection)
    }

    /// Lets go of the connection after `err` when the error may be the connection's own
    /// (anything but an error PostgreSQL reported): it is closed, not handed back.
    pub fn after_error(&mut self, err: &sqlx::Error) {
        if !matches!(err, sqlx::Error::Database(_)) {
            self.discard();
        }
    }

    fn discard(&mut self) {
        if let Some((mut connection, _)) = self.held.take() {
            connection.close_on_drop();
        }
    }
}

//! Trying a write transaction again when PostgreSQL rolled it back for a serialization
//! failure or a deadlock. The transaction was undone whole (idempotency claim included),
//! so running it again is safe; after the last attempt the client gets a 503 with
//! `Retry-After`.

use std::future::Future;

use crate::error::ApiError;

/// Attempts in all, the first included.
const ATTEMPTS: usize = 3;

pub async fn on_contention<T, F, Fut>(mut attempt: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(ApiError::Contention(cause)) if tried < ATTEMPTS => {
                tracing::info!(error = %cause, attempt = tried,
                    "transaction rolled back by the database; trying again");
                tried += 1;
            }
            done => return done,
        }
    }
}

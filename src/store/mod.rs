//! SQL, one small function per statement. Writers take `&mut PgConnection` (usually a
//! transaction) so callers decide the transaction boundary; readers take any executor.

pub mod audit;
pub mod delivery_health;
pub mod deposits;
pub mod destinations;
pub mod digest;
pub mod event_deliveries;
pub mod feed;
pub mod first_statistics;
pub mod horizon;
pub mod idempotency;
pub mod keys;
pub mod outbox;
pub mod position;
pub mod read_model;
pub mod resealing;
pub mod retention;
pub mod snapshots;
pub mod tenants;
pub mod webhook_attempts;
pub mod webhooks;
pub mod writes;

/// True when the error means "the database cannot be reached right now" rather than
/// "this statement is wrong": callers answer 503 and clients retry.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        // A connection cut mid-handshake surfaces as a protocol error ("unexpected response
        // from SSLRequest"): the link is broken, the statement is fine, so a retry is right.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception, 53: insufficient resources, 57P: operator intervention
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        }),
        _ => false,
    }
}

/// True when the error is a violation of the named unique constraint.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// PostgreSQL refused a text value it cannot store: a NUL character (`\u0000`, which
/// JSON and percent-encoding can both carry) is not valid in `text`.
pub fn is_unstorable_text(err: &sqlx::Error) -> bool {
    // 22021: character_not_in_repertoire, 22P05: untranslatable_character
    matches!(err, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("22021" | "22P05")))
}

/// True for "a lock wait ran out" (`lock_timeout`): another request holds what this one
/// needs. Answered 409: retry later.
pub fn is_lock_timeout(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

/// True for a serialization failure (40001) or a deadlock (40P01): PostgreSQL rolled the
/// whole transaction back, and it may be tried again.
pub fn is_transient_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

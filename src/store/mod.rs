//! SQL, one small function per statement. Writers take `&mut PgConnection` (usually a
//! transaction) so callers decide the transaction boundary; readers take any executor.

pub mod keys;
pub mod tenants;

/// True when the error means "the database cannot be reached right now" rather than
/// "this statement is wrong": callers answer 503 and clients retry.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
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

//! Opening the database: an external server from `DATABASE_URL`, or the private cluster of
//! the zero-config mode; then the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseArgs;
use crate::pg_embedded::{EmbeddedPgError, EmbeddedPostgres};

pub static MIGRATOR: Migrator = sqlx::migrate!();

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("private PostgreSQL: {0}")]
    Embedded(#[from] EmbeddedPgError),
}

/// An open pool, plus the private cluster when we run one.
pub struct Database {
    pub pool: PgPool,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects (starting the private cluster if there is no URL) and migrates.
    pub async fn open(args: &DatabaseArgs) -> Result<Self, DatabaseError> {
        let (options, embedded) = match &args.database_url {
            Some(url) => (
                PgConnectOptions::from_str(url.expose()).map_err(DatabaseError::BadUrl)?,
                None,
            ),
            None => {
                let cluster = EmbeddedPostgres::start(&args.data_dir).await?;
                (cluster.connect_options(), Some(cluster))
            }
        };
        let pool = match pool_options(args.db_max_connections)
            .connect_with(session_options(options.clone(), args))
            .await
        {
            Ok(pool) => pool,
            Err(err) => {
                if let Some(cluster) = embedded {
                    let _ = cluster.stop().await;
                }
                return Err(DatabaseError::Connect(err));
            }
        };
        let database = Self { pool, embedded };
        // On a connection of their own, without the pool's statement timeout: an index
        // build on a large table may take longer than any request should.
        let migrated =
            match PgConnection::connect_with(&options.application_name(APPLICATION_NAME)).await {
                Ok(mut conn) => {
                    let migrated = MIGRATOR.run(&mut conn).await;
                    let _ = conn.close().await;
                    migrated.map_err(DatabaseError::from)
                }
                Err(err) => Err(DatabaseError::Connect(err)),
            };
        if let Err(err) = migrated {
            database.close().await;
            return Err(err);
        }
        Ok(database)
    }

    /// Closes the pool and stops the private cluster if we started it.
    pub async fn close(self) {
        self.pool.close().await;
        if let Some(cluster) = self.embedded
            && let Err(err) = cluster.stop().await
        {
            tracing::warn!(error = %err, "could not stop the private PostgreSQL cluster");
        }
    }
}

/// The `application_name` of eventgate's sessions, as `pg_stat_activity` shows them.
pub const APPLICATION_NAME: &str = "eventgate";

/// eventgate's settings for each of its sessions: its name (unless the URL gives one, e.g.
/// to tell replicas apart), the statement and idle-in-transaction timeouts of `args`, and
/// no JIT compilation.
///
/// JIT is off because PostgreSQL decides on it from a plan's estimated cost, and the
/// estimate grows with the outbox while eventgate's statements stay index reads of a page:
/// on an outbox of 600,000 rows the long-poll readers' batched page read (50 pages, under 1 ms
/// of work) was estimated above `jit_above_cost` and spent 25-35 ms compiling on every
/// execution; above an estimate of 500,000 PostgreSQL also optimises and inlines the code
/// it compiles.
pub fn session_options(options: PgConnectOptions, args: &DatabaseArgs) -> PgConnectOptions {
    let seconds = |secs: u64| format!("{secs}s");
    let options = match options.get_application_name() {
        Some(_) => options,
        None => options.application_name(APPLICATION_NAME),
    };
    options.options([
        ("statement_timeout", seconds(args.db_statement_timeout_secs)),
        (
            "idle_in_transaction_session_timeout",
            seconds(args.db_idle_in_transaction_timeout_secs),
        ),
        ("jit", "off".to_owned()),
    ])
}

pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    // A short acquire timeout turns a dead database into a prompt 503 rather than a hang.
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

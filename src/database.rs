//! Opening the database: an external server from `DATABASE_URL`, or the private cluster of
//! the zero-config mode; then the embedded migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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
            .connect_with(options)
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
        if let Err(err) = MIGRATOR.run(&database.pool).await {
            database.close().await;
            return Err(err.into());
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

pub fn pool_options(max_connections: u32) -> PgPoolOptions {
    // A short acquire timeout turns a dead database into a prompt 503 rather than a hang.
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

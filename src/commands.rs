//! What each CLI subcommand does, as library functions the thin binary calls.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::auth::{NewKey, RandomnessError, Role};
use crate::cli::{Cli, Command, KeysCommand};
use crate::config::{DatabaseArgs, ServerConfig};
use crate::database::{Database, DatabaseError};
use crate::{maintenance, store, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("--tenant is required for a client key")]
    TenantRequired,
    #[error("a platform key is not bound to a tenant; drop --tenant")]
    TenantNotAllowed,
    #[error("no tenant '{0}'")]
    UnknownTenant(String),
    #[error(transparent)]
    Startup(#[from] app::StartupError),
    #[error(transparent)]
    Random(#[from] RandomnessError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} is not the contract this code generates: regenerate it with `eventgate openapi > {0}`"
    )]
    StaleContract(String),
}

pub async fn run(cli: Cli) -> Result<(), CommandError> {
    telemetry::init(cli.log_format);
    crate::tls::install_crypto_provider();
    match cli.command {
        Command::Serve { database, server } => serve(database, *server).await,
        Command::Migrate { database } => {
            Database::open(&database).await?.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Openapi { check } => openapi(check),
        Command::Keys {
            command:
                KeysCommand::Create {
                    database,
                    tenant,
                    role,
                },
        } => create_key(database, tenant, role).await,
    }
}

async fn serve(database: DatabaseArgs, server: ServerConfig) -> Result<(), CommandError> {
    let database = Database::open(&database).await?;
    let result = serve_on(&database, server).await;
    database.close().await;
    result
}

/// How long shutdown waits for background work (deliveries under way, purges) to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

async fn serve_on(database: &Database, server: ServerConfig) -> Result<(), CommandError> {
    let state = AppState::start(database.pool.clone(), server).await?;
    let background = maintenance::spawn(&state);
    let addr = state.config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CommandError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(CommandError::Serve)?;
    tracing::info!(address = %local, "eventgate listening on http://{local}");
    let served = app::serve(listener, state, app::shutdown_signal())
        .await
        .map_err(CommandError::Serve);
    if !background.shutdown(SHUTDOWN_GRACE).await {
        tracing::warn!("background work did not finish within {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    served
}

/// Prints the generated contract, or checks a file holds exactly it.
fn openapi(check: Option<std::path::PathBuf>) -> Result<(), CommandError> {
    let generated = crate::http::openapi::yaml();
    let Some(path) = check else {
        print!("{generated}");
        return Ok(());
    };
    let committed = std::fs::read_to_string(&path).map_err(|source| CommandError::Read {
        path: path.clone(),
        source,
    })?;
    if committed == generated {
        Ok(())
    } else {
        Err(CommandError::StaleContract(path.display().to_string()))
    }
}

async fn create_key(
    database: DatabaseArgs,
    tenant: Option<String>,
    role: Role,
) -> Result<(), CommandError> {
    match (role, &tenant) {
        (Role::Client, None) => return Err(CommandError::TenantRequired),
        (Role::Platform, Some(_)) => return Err(CommandError::TenantNotAllowed),
        _ => {}
    }
    let database = Database::open(&database).await?;
    let result = insert_key(&database, tenant.as_deref(), role).await;
    database.close().await;
    let key = result?;
    println!("{key}");
    Ok(())
}

async fn insert_key(
    database: &Database,
    tenant: Option<&str>,
    role: Role,
) -> Result<String, CommandError> {
    if let Some(tenant) = tenant
        && !store::tenants::exists(&database.pool, tenant).await?
    {
        return Err(CommandError::UnknownTenant(tenant.to_owned()));
    }
    let key = NewKey::generate()?;
    let mut conn = database.pool.acquire().await?;
    store::keys::insert(&mut conn, &key.hash, role.as_str(), tenant).await?;
    Ok(key.secret)
}

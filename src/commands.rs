//! What each CLI subcommand does, as library functions the thin binary calls.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::audit::{self, Action, Actor, Entry};
use crate::auth::{NewKey, RandomnessError, Role};
use crate::cli::{Cli, Command, KeysCommand, SecretsCommand};
use crate::config::{DatabaseArgs, SecretsArgs, ServerConfig};
use crate::database::{Database, DatabaseError};
use crate::secrets::loading::{self, LoadError};
use crate::store::resealing::{self, Reseal};
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
    #[error(transparent)]
    Secrets(#[from] LoadError),
    #[error(
        "EVENTGATE_PLATFORM_KEY is {0} characters long; with DATABASE_URL it must be at least \
         {MIN_PLATFORM_KEY_CHARS} (e.g. `openssl rand -base64 32`)"
    )]
    WeakPlatformKey(usize),
    #[error(
        "{0} is not the contract this code generates: regenerate it with `eventgate openapi > {0}`"
    )]
    StaleContract(String),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error("{url} is not ready: {reason}")]
    ProbeFailed { url: String, reason: String },
}

pub async fn run(cli: Cli) -> Result<(), CommandError> {
    // First: the trace exporter's HTTP client needs the TLS provider.
    crate::tls::install_crypto_provider();
    let telemetry = telemetry::init(cli.log_format)?;
    let outcome = run_command(cli.command).await;
    telemetry.shutdown().await;
    outcome
}

async fn run_command(command: Command) -> Result<(), CommandError> {
    match command {
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
        Command::Secrets {
            command: SecretsCommand::Rotate { database, secrets },
        } => rotate_secrets(database, secrets).await,
        Command::Probe { url, timeout } => {
            let url = url.unwrap_or_else(|| {
                readiness_url(std::env::var("EVENTGATE_LISTEN").ok().as_deref())
            });
            probe(&url, Duration::from_secs(timeout)).await
        }
    }
}

/// `/readyz` of the server listening on `listen` (`host:port`), asked on loopback when it
/// listens on every address.
fn readiness_url(listen: Option<&str>) -> String {
    let listen = listen.unwrap_or("127.0.0.1:8080");
    let port = listen.rsplit_once(':').map_or("8080", |(_, port)| port);
    let host = match listen.rsplit_once(':').map(|(host, _)| host) {
        None | Some("0.0.0.0" | "[::]" | "") => "127.0.0.1",
        Some(host) => host,
    };
    format!("http://{host}:{port}/readyz")
}

async fn probe(url: &str, timeout: Duration) -> Result<(), CommandError> {
    let failed = |reason: String| CommandError::ProbeFailed {
        url: url.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|err| failed(err.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| failed(err.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(failed(format!("answered {}", response.status())))
    }
}

/// The shortest `EVENTGATE_PLATFORM_KEY` accepted outside the zero-config mode.
pub const MIN_PLATFORM_KEY_CHARS: usize = 32;

/// Refuses settings unfit for a shared database (`DATABASE_URL` set): a short platform
/// key. The zero-config mode is a private, local database, where a short key is allowed.
pub fn check_production(
    database: &DatabaseArgs,
    server: &ServerConfig,
) -> Result<(), CommandError> {
    let Some(key) = &server.platform_key else {
        return Ok(());
    };
    let length = key.expose().chars().count();
    if database.database_url.is_some() && length < MIN_PLATFORM_KEY_CHARS {
        return Err(CommandError::WeakPlatformKey(length));
    }
    Ok(())
}

async fn serve(database: DatabaseArgs, mut server: ServerConfig) -> Result<(), CommandError> {
    check_production(&database, &server)?;
    loading::resolve(&mut server.secrets, &database)?;
    loading::keyring(&server.secrets)?;
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

/// Reseals every stored secret with the newest key.
async fn rotate_secrets(
    database: DatabaseArgs,
    mut secrets: SecretsArgs,
) -> Result<(), CommandError> {
    loading::resolve(&mut secrets, &database)?;
    let keyring = loading::keyring(&secrets)?;
    let database = Database::open(&database).await?;
    let result = resealing::reseal(&database.pool, &keyring, Reseal::NotNewest).await;
    database.close().await;
    let resealed = result?;
    tracing::info!(
        destinations = resealed,
        key = keyring.newest_id(),
        "every stored secret is sealed with the newest key"
    );
    println!(
        "{resealed} destinations resealed with key {}",
        keyring.newest_id()
    );
    Ok(())
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
    let mut tx = database.pool.begin().await?;
    let stored = store::keys::insert(&mut tx, &key.hash, role.as_str(), tenant, None).await?;
    let entry = Entry {
        tenant,
        action: Action::KeyCreated,
        target: Some(stored.id.to_string()),
        changes: serde_json::json!({"role": role}),
    };
    audit::record(&mut tx, &Actor::operator(), entry).await?;
    tx.commit().await?;
    Ok(key.secret)
}

#[cfg(test)]
mod tests {
    use super::readiness_url;

    #[test]
    fn the_probe_asks_loopback_on_the_port_the_server_listens_on() {
        assert_eq!(readiness_url(None), "http://127.0.0.1:8080/readyz");
        assert_eq!(
            readiness_url(Some("0.0.0.0:9000")),
            "http://127.0.0.1:9000/readyz"
        );
        assert_eq!(
            readiness_url(Some("[::]:9001")),
            "http://127.0.0.1:9001/readyz"
        );
        assert_eq!(
            readiness_url(Some("10.1.2.3:8081")),
            "http://10.1.2.3:8081/readyz"
        );
    }
}

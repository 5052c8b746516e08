//! Application state, the router with its middleware, and serving with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::response::Response;
use axum::serve::ListenerExt;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{Service, ServiceBuilder};

use crate::auth::{AuthState, hash_key};
use crate::config::ServerConfig;
use crate::console;
use crate::feed::announcer::Announcer;
use crate::feed::horizon::HorizonWatch;
use crate::feed::long_polls::LongPolls;
use crate::feed::notifier::Notifier;
use crate::feed::read_ahead::ReadAhead;
use crate::feed::waiting::WaitingPages;
use crate::key_cache::KeyCache;
use crate::limits::RequestLimits;
use crate::metrics::Metrics;
use crate::rate_limit::TenantRateLimit;
use crate::replay_cache::ReplayCache;
use crate::request_front::FrontLayer;
use crate::request_guard::RequestGuard;
use crate::secrets::Keyring;
use crate::secrets::loading::{self, LoadError};
use crate::store::resealing::Reseal;
use crate::write_batcher::WriteBatcher;
use crate::{http, store};

/// What every handler can reach, behind one reference count: axum clones the state for
/// every request (and the auth extractor takes its part), so a clone must be cheap. As a
/// struct of handles it cost one count per field each way, 2% of the server's CPU while
/// 5,000 long-polls were answered.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct AppStateInner {
    pub pool: PgPool,
    pub config: Arc<ServerConfig>,
    /// Wakes long-polls when a tenant's outbox grows.
    pub notifier: Notifier,
    /// Tells every replica, after commit, that a tenant's outbox grew.
    pub announcer: Announcer,
    /// Commits deposits and publishes, many to a transaction.
    pub writes: WriteBatcher,
    /// One reader for each page long-polls wait for.
    pub waiting: WaitingPages,
    /// Followers' next pages, read while they take in this one.
    pub read_ahead: ReadAhead,
    /// Caps waiting long-polls per tenant.
    pub long_polls: LongPolls,
    /// Says when and by whom the feed's horizon is held back.
    pub horizon: HorizonWatch,
    pub metrics: Metrics,
    pub rate_limit: TenantRateLimit,
    /// API keys verified recently.
    pub key_cache: KeyCache,
    /// Answers committed here under an Idempotency-Key, for replays.
    pub replay_cache: ReplayCache,
    /// Seals and opens the secrets stored with destinations.
    pub keyring: Keyring,
    /// Turns true when the server starts shutting down (long-polls return at once).
    pub shutdown: watch::Receiver<bool>,
    shutdown_trigger: Arc<watch::Sender<bool>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database error during start-up: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Secrets(#[from] LoadError),
    #[error("EVENTGATE_PLATFORM_KEY names a key that was revoked; choose a new secret")]
    PlatformKeyRevoked,
    #[error(
        "this database's transaction ids are behind the feed positions stored in it (stored up \
         to {}, next {}): it was probably restored from a logical dump into a new cluster. \
         Serving now would stall every feed and destination. Stop PostgreSQL and advance its \
         transaction ids past the stored ones with `pg_resetwal -e {} -x {} <data directory>`, \
         then start again (docs/OPERATIONS.md, \"Restoring from a logical dump\")",
        .0.stored, .0.next, resetwal_epoch(.0.stored), resetwal_xid(.0.stored)
    )]
    TransactionIdsRewound(store::feed::Rewound),
}

/// CLOG pages are created when the first transaction id of one is assigned, so the new
/// next id starts a segment (1,048,576 ids): past `stored`, rounded up.
fn resetwal_target(stored: u64) -> u64 {
    const SEGMENT: u64 = 1 << 20;
    let target = (stored / SEGMENT + 1) * SEGMENT;
    // Ids 0-2 of an epoch are special, never assigned.
    if target & 0xffff_ffff == 0 {
        target + SEGMENT
    } else {
        target
    }
}

fn resetwal_epoch(stored: u64) -> u64 {
    resetwal_target(stored) >> 32
}

fn resetwal_xid(stored: u64) -> u64 {
    resetwal_target(stored) & 0xffff_ffff
}

impl AppState {
    /// Prepares what the server needs from the (migrated) database and returns the state.
    pub async fn start(pool: PgPool, config: ServerConfig) -> Result<Self, StartupError> {
        if let Some(rewound) = store::feed::rewound(&pool).await? {
            return Err(StartupError::TransactionIdsRewound(rewound));
        }
        if let Some(secret) = &config.platform_key
            && !store::keys::install_configured_platform_key(&pool, &hash_key(secret.expose()))
                .await?
        {
            return Err(StartupError::PlatformKeyRevoked);
        }
        let keyring = loading::keyring(&config.secrets)?;
        let sealed = store::resealing::reseal(&pool, &keyring, Reseal::Plaintext).await?;
        if sealed > 0 {
            tracing::info!(destinations = sealed, "sealed secrets stored in plain text");
        }
        let (trigger, shutdown) = watch::channel(false);
        let rate_limit = TenantRateLimit::new(&config);
        let key_cache = KeyCache::new(Duration::from_secs(config.auth_cache_secs));
        let replay_cache = ReplayCache::new(config.replay_cache_entries);
        let long_polls = LongPolls::new(config.max_long_polls_per_tenant);
        let read_ahead = ReadAhead::new(config.feed_read_ahead_pages);
        let horizon = HorizonWatch::new(Duration::from_secs(config.horizon_stall_secs));
        let writes = WriteBatcher::start(pool.clone(), config.write_batches());
        let notifier = Notifier::default();
        let waiting = WaitingPages::new(pool.clone(), notifier.clone());
        Ok(Self(Arc::new(AppStateInner {
            pool,
            config: Arc::new(config),
            notifier,
            announcer: Announcer::default(),
            writes,
            waiting,
            read_ahead,
            long_polls,
            horizon,
            metrics: Metrics::default(),
            rate_limit,
            key_cache,
            replay_cache,
            keyring,
            shutdown,
            shutdown_trigger: Arc::new(trigger),
        })))
    }
}

impl FromRef<AppState> for AuthState {
    fn from_ref(state: &AppState) -> Self {
        AuthState {
            pool: state.pool.clone(),
            rate_limit: state.rate_limit.clone(),
            metrics: state.metrics.clone(),
            key_cache: state.key_cache.clone(),
        }
    }
}

/// The routes with what must run after routing (`request_guard`: it needs the matched
/// route): one layer, as each `Router::layer` wraps every route again.
pub fn router(state: AppState) -> Router {
    let guard = RequestGuard {
        limits: RequestLimits {
            max_uri_bytes: state.config.max_uri_bytes,
            max_header_bytes: state.config.max_header_bytes,
        },
        metrics: state.metrics.clone(),
        timeout: state.config.request_timeout(),
    };
    // The console is a web page, not part of the API document: merged beside it.
    http::router()
        .merge(console::router())
        .layer(guard)
        .with_state(state)
}

/// The whole HTTP surface as served: [`router`] behind what needs no route (the request's
/// id, span and panic guard, `crate::request_front`; the body limit), which wraps the
/// router once. Layered on the router instead (`Router::layer`), each group of layers
/// wrapped every route in a boxed service of its own: per request, a clone of it and a
/// boxed future holding a copy of the request (about 2 µs of CPU an answer over a
/// wake-up of 5,000 long-polls, docs/BENCHMARKS.md, seventeenth section).
pub fn service(
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    let body_limit = state.config.body_limit_bytes;
    ServiceBuilder::new()
        .layer(FrontLayer)
        .layer(DefaultBodyLimit::max(body_limit))
        .service(router(state))
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let trigger = state.shutdown_trigger.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = trigger.send(true);
    };
    // Small responses (long-poll wake-ups, replays) must not wait on Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    // As a make-service of a service already built: serving a Router itself rebuilds its
    // whole route table for every connection (about 30 KB held per connection, measured
    // with heaptrack under 2,000 long-polls).
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(service(state)),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

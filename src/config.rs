//! Typed configuration: defaults, overridden by `EVENTGATE_*` environment variables,
//! overridden by flags (clap does the layering). Loaded once at start-up; secrets never
//! appear in `Debug` output or logs.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, ValueEnum};

use crate::egress::{AddressPolicy, Allowed, EgressProxy};

/// A string that must never be logged: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Where the data lives: an external server, or the private cluster in `data_dir`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Without it, eventgate runs a private PostgreSQL cluster in --data-dir
    /// using the PostgreSQL server binaries installed on this machine.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Directory for the private PostgreSQL cluster (zero-config mode only).
    #[arg(long, env = "EVENTGATE_DATA_DIR", default_value = "./.eventgate")]
    pub data_dir: PathBuf,

    /// Largest number of pooled database connections.
    #[arg(long, env = "EVENTGATE_DB_MAX_CONNECTIONS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub db_max_connections: u32,

    /// A statement of eventgate's running longer than this is cancelled (0: no limit).
    /// Its statements are short; this bounds one that is not, before it holds the feed's
    /// horizon back.
    #[arg(
        long,
        env = "EVENTGATE_DB_STATEMENT_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub db_statement_timeout_secs: u64,

    /// A session of eventgate's left idle inside a transaction for longer than this is
    /// ended by PostgreSQL (0: never). eventgate never waits on anything else inside a
    /// transaction, so such a session is a leak, and every open transaction holds back the
    /// feed of every tenant.
    #[arg(
        long,
        env = "EVENTGATE_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub db_idle_in_transaction_timeout_secs: u64,
}

/// The operator's keys that encrypt the secrets stored in the database (webhook signing
/// secrets, destination URLs with their credentials).
#[derive(Debug, Clone, Default, Args)]
pub struct SecretsArgs {
    /// Keys that encrypt stored secrets: 32 random bytes in base64 each (`openssl rand
    /// -base64 32`), comma-separated, newest first. The newest encrypts, every one decrypts
    /// (rotation: `eventgate secrets rotate`). Required with DATABASE_URL; the zero-config
    /// mode keeps a generated one in <data-dir>/secrets.key.
    #[arg(
        long,
        env = "EVENTGATE_SECRETS_KEY",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secrets_key: Vec<Secret>,

    /// A file holding such keys, one per line, newest first (instead of
    /// EVENTGATE_SECRETS_KEY; blank lines and lines starting with # are skipped).
    #[arg(
        long,
        env = "EVENTGATE_SECRETS_KEY_FILE",
        conflicts_with = "secrets_key"
    )]
    pub secrets_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything `eventgate serve` needs besides the database.
#[derive(Debug, Clone, Args)]
pub struct ServerConfig {
    /// Address to listen on.
    #[arg(long, env = "EVENTGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Ensures a platform API key with exactly this secret exists at start-up (at least
    /// 32 characters with DATABASE_URL; a new value revokes the previous one).
    #[arg(long, env = "EVENTGATE_PLATFORM_KEY", hide_env_values = true)]
    pub platform_key: Option<Secret>,

    #[command(flatten)]
    pub secrets: SecretsArgs,

    /// Requests running longer than this are answered 503 (long-polls included).
    #[arg(long, env = "EVENTGATE_REQUEST_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Largest accepted request body; larger ones are answered 413.
    #[arg(long, env = "EVENTGATE_BODY_LIMIT_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=16 * 1024 * 1024))]
    pub body_limit_bytes: usize,

    /// Require an Idempotency-Key header on POST /events/deposit/ (400 without): a client
    /// that retries a timed-out deposit without one would deposit twice. `false` accepts
    /// deposits without a key.
    #[arg(long, env = "EVENTGATE_REQUIRE_IDEMPOTENCY_KEY", default_value_t = true, action = ArgAction::Set)]
    pub require_idempotency_key: bool,

    /// How long an idempotency key is remembered.
    #[arg(long, env = "EVENTGATE_IDEMPOTENCY_TTL_SECS", default_value_t = 24 * 3600)]
    pub idempotency_ttl_secs: u64,

    /// How long a duplicate request waits for the in-flight original before answering 409.
    #[arg(long, env = "EVENTGATE_IDEMPOTENCY_WAIT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub idempotency_wait_ms: u64,

    /// Tasks that commit writes (deposits, platform publishes), each taking every write
    /// waiting, up to --write-batch-max, into one transaction (group commit). Each keeps a
    /// database connection of its own, beside the pool's --db-max-connections.
    #[arg(long, env = "EVENTGATE_WRITE_COMMITTERS", default_value_t = 2,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub write_committers: usize,

    /// Most writes one transaction commits together (1: each write alone).
    #[arg(long, env = "EVENTGATE_WRITE_BATCH_MAX", default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=60))]
    pub write_batch_max: usize,

    /// How long outbound events are kept in the feed; older cursors get 410 Gone.
    #[arg(long, env = "EVENTGATE_FEED_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub feed_retention_secs: u64,

    /// How long finished webhook deliveries (with their payloads) and attempts are kept;
    /// defaults to the feed's retention. Pending deliveries are never purged.
    #[arg(long, env = "EVENTGATE_WEBHOOK_HISTORY_RETENTION_SECS")]
    pub webhook_history_retention_secs: Option<u64>,

    /// Most destinations one tenant may have; more are answered 409.
    #[arg(long, env = "EVENTGATE_MAX_DESTINATIONS_PER_TENANT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_destinations_per_tenant: u32,

    /// Most long-polls one tenant may have waiting at once; more are answered 429.
    #[arg(long, env = "EVENTGATE_MAX_LONG_POLLS_PER_TENANT", default_value_t = 100,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub max_long_polls_per_tenant: usize,

    /// Feed pages read ahead and kept for followers: when a page leaves more events ready,
    /// the next one is read at once and handed to the request that asks for it, if it
    /// asks within 2 s (about 250 KB a page of 1,000 events; 32 MB at most in all). Costs
    /// one unused read when a follower stops, or its next request reaches another
    /// replica. 0 reads every page when asked.
    #[arg(long, env = "EVENTGATE_FEED_READ_AHEAD_PAGES", default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    pub feed_read_ahead_pages: usize,

    /// Requests per second each tenant's client keys may make, sustained (a token bucket
    /// per tenant, per process); more are answered 429 with Retry-After. 0 disables it.
    #[arg(long, env = "EVENTGATE_RATE_LIMIT_PER_SEC", default_value_t = 200)]
    pub rate_limit_per_sec: u32,

    /// How long a verified API key is trusted in memory without a new database look-up, at
    /// most. A revoked key is refused at once by the replica that revoked it and, through
    /// LISTEN/NOTIFY, moments later by the others; this bounds how long a replica that
    /// missed the notification may still accept it. 0 looks every request's key up.
    #[arg(long, env = "EVENTGATE_AUTH_CACHE_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub auth_cache_secs: u64,

    /// Answers of committed Idempotency-Key requests this replica keeps in memory, so that
    /// a retry reaching it is replayed without a database read (about 1 KB each; past it,
    /// expired answers go first, then any tenth of the rest). 0 reads every replay from
    /// the database.
    #[arg(long, env = "EVENTGATE_REPLAY_CACHE_ENTRIES", default_value_t = 10_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    pub replay_cache_entries: usize,

    /// Requests a tenant may make at once above the sustained rate (the bucket's size).
    #[arg(long, env = "EVENTGATE_RATE_LIMIT_BURST", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,

    /// Largest request line target (path and query) accepted; longer ones are answered 414.
    #[arg(long, env = "EVENTGATE_MAX_URI_BYTES", default_value_t = 4096,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(256..=65_536))]
    pub max_uri_bytes: usize,

    /// Largest total size of the request's header names and values; larger is answered 431.
    #[arg(long, env = "EVENTGATE_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=65_536))]
    pub max_header_bytes: usize,

    /// Delays in seconds between webhook attempts after each failure (the first attempt is
    /// immediate); after the last one the delivery is failed (kept, replayable). Each at
    /// most 30 days; the longest also caps what an endpoint's Retry-After may ask for.
    #[arg(
        long,
        env = "EVENTGATE_WEBHOOK_RETRY_DELAYS_SECS",
        default_value = "5,300,1800,7200,18000,36000,50400,72000,86400",
        value_delimiter = ',',
        value_parser = clap::value_parser!(u64).range(0..=30 * 24 * 3600)
    )]
    pub webhook_retry_delays_secs: Vec<u64>,

    /// A webhook attempt that takes longer than this fails.
    #[arg(long, env = "EVENTGATE_WEBHOOK_TIMEOUT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub webhook_timeout_secs: u64,

    /// Webhook requests in flight at once per destination.
    #[arg(long, env = "EVENTGATE_WEBHOOK_CONCURRENCY", default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub webhook_concurrency: usize,

    /// Allow destinations (every kind) that resolve to loopback, private, link-local,
    /// metadata or other internal addresses (tests and closed networks only; prefer
    /// EVENTGATE_DESTINATION_ALLOW).
    #[arg(long, env = "EVENTGATE_ALLOW_PRIVATE_DESTINATIONS", default_value_t = false, action = ArgAction::Set)]
    pub allow_private_destinations: bool,

    /// Internal networks and hosts destinations may reach all the same, comma-separated:
    /// CIDRs or addresses (10.20.0.0/16), host names (broker.bank.internal) and
    /// `*.domain` for every name under a domain.
    #[arg(long, env = "EVENTGATE_DESTINATION_ALLOW", value_delimiter = ',',
          value_parser = parse_allowed)]
    pub destination_allow: Vec<Allowed>,

    /// An HTTP CONNECT proxy every webhook delivery and OAuth2 token request goes through
    /// (`http://[user:password@]host:port`), so they leave from one address. Unset: direct.
    /// `HTTPS_PROXY` and the like are never read.
    #[arg(long, env = "EVENTGATE_EGRESS_PROXY", hide_env_values = true,
          value_parser = EgressProxy::parse)]
    pub egress_proxy: Option<EgressProxy>,

    /// A destination (any kind) failing without a success for this long is reported with a
    /// `destinations.failing` event in its tenant's feed (and the platform's).
    #[arg(long, env = "EVENTGATE_DESTINATION_FAILING_AFTER_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=7 * 24 * 3600))]
    pub destination_failing_after_secs: u64,

    /// A webhook destination failing without a success for this long is disabled.
    #[arg(long, env = "EVENTGATE_WEBHOOK_DISABLE_AFTER_SECS", default_value_t = 5 * 24 * 3600)]
    pub webhook_disable_after_secs: u64,

    /// How often entity-format webhook destinations get a DailyHeartBeat.
    #[arg(long, env = "EVENTGATE_WEBHOOK_HEARTBEAT_SECS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_heartbeat_secs: u64,

    /// The URL clients reach this server at, for `url` in entity-format webhooks.
    #[arg(
        long,
        env = "EVENTGATE_PUBLIC_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_base_url: String,

    /// When the feed's horizon has not moved for this long while events wait behind it, the
    /// open transaction holding it is named in destination statuses, /readyz, the metrics
    /// and the feed's `Eventgate-Held-Back` header.
    #[arg(long, env = "EVENTGATE_HORIZON_STALL_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub horizon_stall_secs: u64,

    /// How long a snapshot (`POST /snapshots`) can be read before it expires.
    #[arg(long, env = "EVENTGATE_SNAPSHOT_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub snapshot_ttl_secs: u64,

    /// Most unexpired snapshots one tenant may hold (429 beyond).
    #[arg(long, env = "EVENTGATE_SNAPSHOTS_PER_TENANT", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub snapshots_per_tenant: u32,

    /// Push events to destinations from this process (false: an API-only replica).
    #[arg(long, env = "EVENTGATE_RELAY", default_value_t = true, action = ArgAction::Set)]
    pub relay: bool,

    /// Accept the seed's draft ("preview") event types on the platform publish API.
    #[arg(long, env = "EVENTGATE_PREVIEW_EVENTS", default_value_t = false, action = ArgAction::Set)]
    pub preview_events: bool,
}

fn parse_allowed(text: &str) -> Result<Allowed, String> {
    Allowed::parse(text)
        .ok_or_else(|| format!("'{text}' is neither a CIDR, an address, a host name nor *.domain"))
}

impl ServerConfig {
    /// The address policy every destination's connection passes.
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::new(
            self.allow_private_destinations,
            self.destination_allow.clone(),
        )
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_secs)
    }

    pub fn feed_retention(&self) -> Duration {
        Duration::from_secs(self.feed_retention_secs)
    }

    pub fn webhook_history_retention(&self) -> Duration {
        self.webhook_history_retention_secs
            .map_or_else(|| self.feed_retention(), Duration::from_secs)
    }

    pub fn snapshot_ttl(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.snapshot_ttl_secs).unwrap_or(86_400))
    }

    pub fn idempotency_wait(&self) -> Duration {
        Duration::from_millis(self.idempotency_wait_ms)
    }

    pub fn write_batches(&self) -> crate::write_batcher::BatchSettings {
        crate::write_batcher::BatchSettings {
            committers: self.write_committers,
            max_writes: self.write_batch_max,
            lock_wait: self.idempotency_wait(),
        }
    }

    /// The configuration a bare `eventgate serve` would get from `args` plus the
    /// environment; used by tests and embedders.
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        #[derive(Parser)]
        struct Standalone {
            #[command(flatten)]
            config: ServerConfig,
        }
        Standalone::try_parse_from(args).map(|s| s.config)
    }
}

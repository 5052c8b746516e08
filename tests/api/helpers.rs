//! A running eventgate for one test, and small request helpers.

use std::time::Duration;

use eventgate::app::{self, AppState};
use eventgate::config::ServerConfig;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// At least 32 characters: servers with DATABASE_URL refuse a shorter one.
pub const PLATFORM_KEY: &str = "test-platform-key-0123456789abcdef";

/// The key that seals the secrets the tests store (32 bytes, base64).
pub const SECRETS_KEY: &str = "ZXZlbnRnYXRlLXRlc3Qtc2VjcmV0cy1rZXktMzJieXQ=";

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub state: AppState,
    /// Dropping the server drops this sender, which shuts the server down gracefully.
    _shutdown: oneshot::Sender<()>,
    _background: eventgate::maintenance::Background,
}

/// The loopback brokers and receivers the tests use, on the operator's allowlist (the
/// address policy refuses loopback otherwise).
pub const TEST_DESTINATION_ALLOW: &str = "127.0.0.1,localhost";

/// The configuration of a bare `eventgate serve`, plus the test platform key, the test
/// brokers allowed, and `extra` flags.
pub fn config(extra: &[&str]) -> ServerConfig {
    config_with_secrets_key(SECRETS_KEY, extra)
}

/// [`config`] with another secrets key (or several, comma-separated, newest first).
pub fn config_with_secrets_key(secrets_key: &str, extra: &[&str]) -> ServerConfig {
    let mut args = vec![
        "eventgate",
        "--platform-key",
        PLATFORM_KEY,
        "--secrets-key",
        secrets_key,
        "--destination-allow",
        TEST_DESTINATION_ALLOW,
    ];
    args.extend_from_slice(extra);
    ServerConfig::from_args(args).expect("test configuration parses")
}

/// A bare `eventgate serve` whose operator allowlist is `allow` alone.
pub fn config_with_allowlist(allow: &str) -> ServerConfig {
    ServerConfig::from_args([
        "eventgate",
        "--platform-key",
        PLATFORM_KEY,
        "--secrets-key",
        SECRETS_KEY,
        "--destination-allow",
        allow,
    ])
    .expect("test configuration parses")
}

/// A bare `eventgate serve` with nothing allowed beyond the default address policy.
pub fn strict_config(extra: &[&str]) -> ServerConfig {
    let mut args = vec![
        "eventgate",
        "--platform-key",
        PLATFORM_KEY,
        "--secrets-key",
        SECRETS_KEY,
    ];
    args.extend_from_slice(extra);
    ServerConfig::from_args(args).expect("test configuration parses")
}

impl TestServer {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, config(&[])).await
    }

    pub async fn start_with(pool: PgPool, config: ServerConfig) -> Self {
        let state = AppState::start(pool.clone(), config)
            .await
            .expect("server state starts");
        let background = eventgate::maintenance::spawn(&state);
        let handle = state.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app::serve(listener, handle, async {
            let _ = rx.await;
        }));
        eventgate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        Self {
            base,
            http,
            pool,
            state,
            _shutdown: tx,
            _background: background,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Response {
        self.http
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn patch(&self, path: &str, key: &str, body: &Value) -> Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str, key: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request sent")
    }

    /// Creates a destination (it must be accepted: 201) and returns its id.
    pub async fn create_destination(&self, key: &str, body: &Value) -> String {
        let created = self.post("/destinations", key, body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        created.json::<Value>().await.unwrap()["id"]
            .as_str()
            .expect("the created destination has an id")
            .to_owned()
    }

    /// Creates a tenant and returns a fresh client key for it.
    pub async fn tenant_with_key(&self, id: &str) -> String {
        let created = self
            .post(
                "/platform/tenants",
                PLATFORM_KEY,
                &json!({"id": id, "name": format!("Tenant {id}")}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED, "tenant {id} created");
        self.new_key(id, "client").await["key"]
            .as_str()
            .expect("key string")
            .to_owned()
    }

    /// Rotates a webhook destination's signing secret and returns the new one.
    pub async fn rotate_secret(&self, id: &str, key: &str) -> String {
        let rotated = self
            .post(
                &format!("/destinations/{id}/rotate-secret"),
                key,
                &json!({}),
            )
            .await;
        assert_eq!(rotated.status(), StatusCode::OK);
        let rotated: Value = rotated.json().await.expect("rotated json");
        rotated["secret"].as_str().expect("new secret").to_owned()
    }

    pub async fn new_key(&self, tenant: &str, role: &str) -> Value {
        let response = self
            .post(
                &format!("/platform/tenants/{tenant}/keys"),
                PLATFORM_KEY,
                &json!({"role": role}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("key json")
    }
}

/// Asserts an RFC 9457 problem with `status` and returns its body.
pub async fn assert_problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16(), "problem status field");
    assert!(
        body["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("/problems/")),
        "problem type: {body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

impl TestServer {
    /// `POST /platform/events` as the platform.
    pub async fn publish(&self, tenant: &str, ty: &str, data: Value) -> Response {
        let (subject, action) = ty.split_once('.').expect("subject.action");
        self.post(
            "/platform/events",
            PLATFORM_KEY,
            &json!({"tenant": tenant, "subject": subject, "action": action, "data": data}),
        )
        .await
    }

    /// Publishes a `portfolios.creation` and asserts it was accepted.
    pub async fn create_portfolio(&self, tenant: &str, id: &str) {
        let response = self
            .publish(
                tenant,
                "portfolios.creation",
                json!({"id": id, "external_id": format!("ext-{id}"), "owned_by_user_id": "U1"}),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "portfolio {id} created"
        );
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }
}

impl TestServer {
    /// Waits until every committed outbox row is below the visibility horizon. Tests share
    /// one PostgreSQL cluster, and another test's open transaction briefly holds the
    /// horizon back (the feed lags, it never skips); reads that expect everything just
    /// written wait here first.
    pub async fn settle(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let pending: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM outbox
                                WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))",
            )
            .fetch_one(&self.pool)
            .await
            .expect("pending query");
            if !pending {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the feed never settled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Two sessions on the test's database as eventgate opens its own
/// (`database::session_options`), with the given idle-in-transaction timeout.
pub async fn eventgate_sessions(
    connect: sqlx::postgres::PgConnectOptions,
    idle_in_transaction_timeout_secs: u64,
) -> PgPool {
    let args = eventgate::config::DatabaseArgs {
        database_url: None,
        data_dir: "unused".into(),
        db_max_connections: 2,
        db_statement_timeout_secs: 30,
        db_idle_in_transaction_timeout_secs: idle_in_transaction_timeout_secs,
    };
    eventgate::database::pool_options(args.db_max_connections)
        .connect_with(eventgate::database::session_options(connect, &args))
        .await
        .unwrap()
}

/// The URL of a test's database, for a real `eventgate` process pointed at it.
pub fn database_url(connect: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or("postgres")
    )
}

/// The `eventgate` binary the fault tests run as a real process: `EVENTGATE_BIN` when set
/// (`scripts/test.sh` sets it to the release build, as it ships), else the debug build cargo
/// made for these tests.
pub fn eventgate_binary() -> std::path::PathBuf {
    std::env::var_os("EVENTGATE_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_eventgate").into())
}

/// Starts the real `eventgate serve` binary on `port` against `database_url`, with `env`
/// on top (the platform key is the tests' own). Killed when dropped.
pub fn spawn_eventgate(
    database_url: &str,
    port: u16,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    use std::process::Stdio;
    spawn_eventgate_to(database_url, port, env, Stdio::null(), Stdio::null())
}

/// `spawn_eventgate`, with its log (stdout and stderr) written to `log`.
pub fn spawn_eventgate_logged(
    database_url: &str,
    port: u16,
    env: &[(&str, &str)],
    log: &std::path::Path,
) -> tokio::process::Child {
    let file = std::fs::File::create(log).expect("log file");
    let errors = file.try_clone().expect("log file");
    spawn_eventgate_to(database_url, port, env, file.into(), errors.into())
}

fn spawn_eventgate_to(
    database_url: &str,
    port: u16,
    env: &[(&str, &str)],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> tokio::process::Child {
    tokio::process::Command::new(eventgate_binary())
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("EVENTGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("EVENTGATE_PLATFORM_KEY", PLATFORM_KEY)
        .env("EVENTGATE_DESTINATION_ALLOW", TEST_DESTINATION_ALLOW)
        .env("EVENTGATE_SECRETS_KEY", SECRETS_KEY)
        .env("EVENTGATE_LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .expect("eventgate starts")
}

/// The `/metrics` exposition of the server at `base`, read with the platform key.
pub async fn metrics_text(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .get(format!("{base}/metrics"))
        .bearer_auth(PLATFORM_KEY)
        .send()
        .await
        .expect("metrics request sent");
    assert_eq!(response.status(), StatusCode::OK, "metrics");
    response.text().await.expect("metrics text")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits (bounded) until `base` answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{base} never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a fault test against real processes starts from: the test database's URL and a
/// pool on it, and an in-process server (relay off) that made tenant `acme` with client
/// key `key` and portfolio `P1`.
pub struct FaultSetup {
    pub url: String,
    pub pool: PgPool,
    pub server: TestServer,
    pub key: std::sync::Arc<String>,
}

impl FaultSetup {
    pub async fn start(
        options: sqlx::postgres::PgPoolOptions,
        connect: sqlx::postgres::PgConnectOptions,
    ) -> Self {
        let url = database_url(&connect);
        let pool = options
            .max_connections(10)
            .connect_with(connect)
            .await
            .expect("test pool");
        let server = TestServer::start_with(pool.clone(), config(&["--relay", "false"])).await;
        let key = std::sync::Arc::new(server.tenant_with_key("acme").await);
        server.create_portfolio("acme", "P1").await;
        Self {
            url,
            pool,
            server,
            key,
        }
    }
}

/// Makes an AMQP destination for `acme` through the server at `base` (client key `key`) and
/// returns its id.
pub async fn create_amqp_destination(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    amqp_url: &str,
    exchange: &str,
) -> String {
    let created = http
        .post(format!("{base}/destinations"))
        .bearer_auth(key)
        .json(&json!({"kind": "amqp", "url": amqp_url, "exchange": exchange}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The ids of `acme`'s events in the outbox, in feed order.
pub async fn acme_event_ids(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT id::text FROM outbox WHERE tenant_id = 'acme' ORDER BY tx_id, seq")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// A destination as `GET /destinations/{id}` shows it.
pub async fn view(server: &TestServer, key: &str, id: &str) -> Value {
    server
        .get(&format!("/destinations/{id}"), key)
        .await
        .json()
        .await
        .unwrap()
}

/// Waits (bounded) until the destination's view satisfies `done`, and returns it.
pub async fn wait_view(
    server: &TestServer,
    key: &str,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let shown = view(server, key, id).await;
        if done(&shown) {
            return shown;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

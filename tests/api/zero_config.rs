//! `eventgate serve` with no DATABASE_URL: the real binary starts its private PostgreSQL
//! from an empty data dir, serves, stops it on SIGTERM, and reuses it on a second start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::PLATFORM_KEY;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(data_dir: &Path, port: u16) -> Child {
    Command::new(crate::helpers::eventgate_binary())
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("EVENTGATE_DATA_DIR", data_dir)
        .env("EVENTGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("EVENTGATE_PLATFORM_KEY", PLATFORM_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("eventgate binary starts")
}

/// Polls /readyz until 200; panics after a generous bound (this is start-up, not speed).
async fn wait_ready(http: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("eventgate exited before it was ready: {status}");
        }
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status() == StatusCode::OK
        {
            return;
        }
        assert!(Instant::now() < deadline, "eventgate never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn terminate(mut child: Child) {
    let pid = child.id().expect("child pid").to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("eventgate exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

#[tokio::test]
async fn zero_config_starts_from_empty_dir_and_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    // When tests run as root the cluster belongs to `postgres`, which must enter the dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = dir.path().join("data");
    eventgate::tls::install_crypto_provider();
    let http = reqwest::Client::new();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut first = spawn_server(&data_dir, port);
    wait_ready(&http, &base, &mut first).await;
    let created = http
        .post(format!("{base}/platform/tenants"))
        .bearer_auth(PLATFORM_KEY)
        .json(&json!({"id": "acme", "name": "Acme Bank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    terminate(first).await;
    assert!(
        data_dir.join("pg/PG_VERSION").exists(),
        "cluster was created"
    );
    assert!(
        !data_dir.join("pg/postmaster.pid").exists(),
        "cluster was stopped with the server"
    );

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut second = spawn_server(&data_dir, port);
    wait_ready(&http, &base, &mut second).await;
    let again = http
        .post(format!("{base}/platform/tenants"))
        .bearer_auth(PLATFORM_KEY)
        .json(&json!({"id": "acme", "name": "Acme Bank"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::CONFLICT,
        "the tenant from the first run is still there"
    );
    terminate(second).await;
}

#[sqlx::test]
async fn keys_create_prints_a_working_key_once(
    _options: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let url = crate::helpers::database_url(&connect);
    let pool = sqlx::PgPool::connect_with(connect).await.unwrap();
    let server = crate::helpers::TestServer::start(pool).await;
    server.tenant_with_key("acme").await;
    let run = |args: &[&str]| {
        std::process::Command::new(crate::helpers::eventgate_binary())
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let created = run(&["keys", "create", "--tenant", "acme", "--role", "client"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("egk_"));
    let page = server.get("/events/", &key).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the printed key authenticates as acme"
    );

    let unknown = run(&["keys", "create", "--tenant", "ghost", "--role", "client"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no tenant 'ghost'"));
    let missing = run(&["keys", "create", "--role", "client"]);
    assert!(!missing.status.success());
}

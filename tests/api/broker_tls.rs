//! Mutual TLS to the brokers: a private Mosquitto with an `mqtts` listener and a private
//! RabbitMQ node with an `amqps` listener, both requiring a client certificate from their
//! CA (made here with rcgen). The destination's certificate gets its events through; a
//! certificate from another CA is refused and says so in `last_error`. Subscribers read
//! over a plain listener of the same broker.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::process::{Child, Command};

use crate::brokers::{AmqpQueue, mqtt_subscribe_at, mqtt_take, unique};
use crate::helpers::{TestServer, free_port, wait_view};
use crate::pki::{Pair, TestCa};
use crate::private_rabbit::PrivateRabbit;

/// The broker's CA-signed certificate, the CA its clients must come from, and files for both.
struct BrokerPki {
    server_ca: TestCa,
    client_ca: TestCa,
}

impl BrokerPki {
    fn new() -> Self {
        Self {
            server_ca: TestCa::new("broker server CA"),
            client_ca: TestCa::new("broker client CA"),
        }
    }

    /// Writes `ca.pem` (the client CA), `server.pem` and `server.key` into `dir`.
    fn write(&self, dir: &Path) {
        let server = self.server_ca.server();
        std::fs::write(dir.join("ca.pem"), self.client_ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &server.key_pem).unwrap();
    }

    fn tls(&self, client: &Pair) -> Value {
        json!({"ca_pem": self.server_ca.pem(), "client_cert_pem": client.cert_pem,
               "client_key_pem": client.key_pem})
    }
}

/// A private Mosquitto: a plain listener for subscribers and an `mqtts` one that requires
/// a client certificate.
struct PrivateMosquitto {
    _process: Child,
    plain: u16,
    tls: u16,
    _dir: tempfile::TempDir,
}

impl PrivateMosquitto {
    async fn start(pki: &BrokerPki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        pki.write(dir.path());
        let (plain, tls) = (free_port(), free_port());
        let path = |name: &str| dir.path().join(name).display().to_string();
        let conf = format!(
            "per_listener_settings true\n\
             listener {plain} 127.0.0.1\nallow_anonymous true\n\
             listener {tls} 127.0.0.1\nallow_anonymous true\n\
             cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key"),
        );
        // Read by the mosquitto user it switches to when started as root.
        for name in ["ca.pem", "server.pem", "server.key", "mosquitto.conf"] {
            if name == "mosquitto.conf" {
                std::fs::write(dir.path().join(name), &conf).unwrap();
            }
            let file = dir.path().join(name);
            let mut permissions = std::fs::metadata(&file).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o644);
            std::fs::set_permissions(&file, permissions).unwrap();
        }
        let mut directory = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut directory, 0o755);
        std::fs::set_permissions(dir.path(), directory).unwrap();
        let process = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.path().join("mosquitto.conf"))
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto starts (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", tls))
            .await
            .is_err()
            || tokio::net::TcpStream::connect(("127.0.0.1", plain))
                .await
                .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto never listened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _process: process,
            plain,
            tls,
            _dir: dir,
        }
    }
}

async fn destination(server: &TestServer, key: &str, body: Value) -> String {
    let created = server.post("/destinations", key, &body).await;
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["tls"]["client_key_pem"], "***");
    created["id"].as_str().unwrap().to_owned()
}

/// Two destinations made by `settings` from `tls` settings: one with a certificate of the
/// broker's client CA, one with a certificate of another CA; the second one's id.
async fn ours_and_a_strangers(
    server: &TestServer,
    key: &str,
    pki: &BrokerPki,
    settings: impl Fn(Value) -> Value,
) -> String {
    let ours = pki.client_ca.client("eventgate");
    destination(server, key, settings(pki.tls(&ours))).await;
    let stranger = TestCa::new("another CA").client("eventgate");
    destination(server, key, settings(pki.tls(&stranger))).await
}

/// Waits until the destination shows why its handshake failed, with nothing delivered.
async fn assert_refused(server: &TestServer, key: &str, id: &str) {
    let shown = wait_view(server, key, id, "the refused handshake", |v| {
        v["status"]["last_error"].is_string()
    })
    .await;
    assert_eq!(
        shown["status"]["lag"], 1,
        "nothing counted as delivered: {shown}"
    );
}

#[sqlx::test]
async fn mqtts_with_a_client_certificate(pool: PgPool) {
    let pki = BrokerPki::new();
    let broker = PrivateMosquitto::start(&pki).await;
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let topic = unique("acme/tls");
    let (mut messages, _subscriber) = mqtt_subscribe_at(broker.plain, &topic).await;
    let url = format!("mqtts://127.0.0.1:{}", broker.tls);
    let refused = ours_and_a_strangers(
        &server,
        &key,
        &pki,
        |tls| json!({"kind": "mqtt", "url": url, "topic": topic, "tls": tls}),
    )
    .await;

    server.create_portfolio("acme", "P1").await;
    let received = mqtt_take(&mut messages, 1).await;
    let body: Value = serde_json::from_str(&received[0].0).unwrap();
    assert_eq!(body["data"]["id"], "P1");
    assert_refused(&server, &key, &refused).await;
    assert!(
        messages.try_recv().is_err(),
        "only the good destination's event arrived"
    );

    // `tls` with a plain URL would silently do nothing: refused.
    let ours = pki.client_ca.client("eventgate");
    let plain = server
        .post(
            "/destinations",
            &key,
            &json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{}", broker.plain),
                    "topic": topic, "tls": pki.tls(&ours)}),
        )
        .await;
    assert_eq!(plain.status(), reqwest::StatusCode::CONFLICT);
}

#[sqlx::test]
async fn amqps_with_a_client_certificate(pool: PgPool) {
    let pki = BrokerPki::new();
    let tls_port = free_port();
    let rabbit = PrivateRabbit::start_with(|dir| {
        pki.write(dir);
        let path = |name: &str| dir.join(name).display().to_string();
        format!(
            "listeners.ssl.1 = 127.0.0.1:{tls_port}\n\
             ssl_options.cacertfile = {}\nssl_options.certfile = {}\nssl_options.keyfile = {}\n\
             ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key"),
        )
    })
    .await;
    let exchange = unique("acme-tls");
    let queue = AmqpQueue::bind_durable(&rabbit.url(), &exchange).await;
    let server = TestServer::start(pool).await;
    let key = server.tenant_with_key("acme").await;
    let url = format!("amqps://guest:guest@127.0.0.1:{tls_port}/%2f");
    let refused = ours_and_a_strangers(
        &server,
        &key,
        &pki,
        |tls| json!({"kind": "amqp", "url": url, "exchange": exchange, "tls": tls}),
    )
    .await;

    server.create_portfolio("acme", "P1").await;
    let received = queue.take(1).await;
    let body: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(body["data"]["id"], "P1");
    assert_refused(&server, &key, &refused).await;
    assert!(
        queue.rest().await.is_empty(),
        "only the good destination's event arrived"
    );
}

//! A private RabbitMQ node for the test that stops the broker: the shared node on 5672 serves
//! tests running in parallel, so this one gets its own node (name, ports, data and config in
//! a temporary directory) on 127.0.0.1, started from the machine's RabbitMQ binaries.
//! Stopping is a SIGTERM (RabbitMQ's clean shutdown); restarting keeps ports and data, so
//! durable exchanges, queues and persistent messages survive as in production.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};
use tokio::process::{Child, Command};

use crate::helpers::free_port;

/// Debian's wrapper in /usr/sbin switches to the `rabbitmq` user; the script it calls runs
/// the node as whoever starts it, with that user's Erlang cookie.
const SERVER_SCRIPTS: &[&str] = &["/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server"];

pub struct PrivateRabbit {
    /// The server script, leader of its own process group: it runs the Erlang VM as its
    /// child (and turns SIGTERM into a clean stop), so killing it alone would orphan the VM.
    process: Option<Child>,
    node: String,
    port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for PrivateRabbit {
    /// Kills the node's whole process group before its directory goes: a node whose data
    /// vanishes under it would write a Mnesia core dump.
    fn drop(&mut self) {
        if let Some(pid) = self.process.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl PrivateRabbit {
    pub async fn start() -> Self {
        Self::start_with(|_| String::new()).await
    }

    /// A node whose `rabbitmq.conf` also has the lines `extra` writes, given the node's
    /// directory (for files those lines name).
    pub async fn start_with(extra: impl FnOnce(&std::path::Path) -> String) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("node directories");
        }
        let port = free_port();
        let extra = extra(dir.path());
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.1 = 127.0.0.1:{port}\n{extra}"),
        )
        .expect("node config");
        // No plugins (the management plugin would want the shared node's port 15672) and
        // none of the machine's rabbitmq-env.conf (it names the shared node).
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").expect("plugins file");
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "").expect("env file");
        let mut rabbit = Self {
            node: format!("eventgate-test-{}@localhost", uuid::Uuid::now_v7().simple()),
            port,
            dist_port: free_port(),
            dir,
            process: None,
        };
        rabbit.boot().await;
        rabbit
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the node cleanly and waits until it has exited.
    pub async fn stop(&mut self) {
        let mut process = self.process.take().expect("the node is running");
        let pid = process.id().expect("the node has a pid").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM sent to the node");
        let exited = tokio::time::timeout(Duration::from_secs(60), process.wait()).await;
        assert!(exited.is_ok(), "the node stopped within 60 s");
    }

    /// Starts the stopped node again on the same ports with the same data.
    pub async fn restart(&mut self) {
        assert!(self.process.is_none(), "the node was stopped first");
        self.boot().await;
    }

    async fn boot(&mut self) {
        let path = |name: &str| -> PathBuf { self.dir.path().join(name) };
        let script = SERVER_SCRIPTS
            .iter()
            .find(|s| !s.starts_with('/') || std::path::Path::new(s).exists())
            .expect("a RabbitMQ server script");
        let process = Command::new(script)
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
            .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_PID_FILE", path("node.pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .current_dir(self.dir.path())
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{script} starts (scripts/test.sh installs RabbitMQ): {e}"));
        self.process = Some(process);
        // The AMQP listener opens when the node has booted; a connection proves it.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if Connection::connect(&self.url(), ConnectionProperties::default())
                .await
                .is_ok()
            {
                return;
            }
            if let Some(process) = self.process.as_mut()
                && let Ok(Some(status)) = process.try_wait()
            {
                panic!(
                    "the private RabbitMQ node exited at start ({status}); see {}",
                    path("log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the private RabbitMQ node never accepted connections; see {}",
                path("log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

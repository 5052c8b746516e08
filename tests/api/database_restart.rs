//! Database restart (fault suite, issue 9): a real PostgreSQL under a real eventgate process
//! is stopped ("fast", as a service restart does) for a few seconds while clients deposit
//! and publish, retrying with the same Idempotency-Key, then started again. While it is
//! down every answer must be a 503 problem (no hang, no crash, no 500) and `/readyz` must say
//! so; the server must recover by itself; afterwards every acknowledged request is stored
//! exactly once, and the AMQP queue has every event. The database is a private cluster
//! (the shared one serves tests running in parallel). Bounded: one restart, ~10 s of load.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eventgate::pg_embedded::EmbeddedPostgres;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

use crate::brokers::{AMQP_URL, AmqpQueue, Received, unique};
use crate::helpers::{
    FaultSetup, PLATFORM_KEY, acme_event_ids, create_amqp_destination, free_port, spawn_eventgate,
    wait_ready,
};

const CLIENTS: usize = 4;
const DOWN_FOR: Duration = Duration::from_secs(5);

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    /// Idempotency-Key → deposit id, for every deposit answered 201.
    deposits: HashMap<String, String>,
    /// Platform batches answered 201 (two events each).
    batches: usize,
    /// When each 201 arrived.
    acknowledged_at: Vec<Instant>,
    /// 503 answers, each checked to be a problem document, and the slowest of them.
    unavailable: usize,
    slowest_unavailable: Duration,
    /// 409 answers: the same key still in flight from an attempt cut by the outage.
    conflicts: usize,
}

impl ClientLog {
    /// Sends one request until it is answered 201, with the same body and key each time.
    /// Anything but 201, 503 (a problem document) or 409 fails the test, as does no answer.
    async fn until_created(
        &mut self,
        http: &reqwest::Client,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(Instant::now() < deadline, "never acknowledged");
            let started = Instant::now();
            let response = http
                .execute(request().build().unwrap())
                .await
                .expect("the server answers while the database is down (no hang, no crash)");
            match response.status() {
                StatusCode::CREATED => {
                    self.acknowledged_at.push(Instant::now());
                    return response.json().await.unwrap();
                }
                StatusCode::SERVICE_UNAVAILABLE => {
                    self.slowest_unavailable = self.slowest_unavailable.max(started.elapsed());
                    let content_type = response.headers()["content-type"].to_str().unwrap();
                    assert_eq!(content_type, "application/problem+json");
                    let problem: Value = response.json().await.unwrap();
                    assert_eq!(problem["status"], 503, "{problem}");
                    self.unavailable += 1;
                }
                StatusCode::CONFLICT => self.conflicts += 1,
                other => panic!(
                    "only 201, 503 or 409 while the database restarts, got {other}: {}",
                    response.text().await.unwrap_or_default()
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Deposits and publishes (each retried with its key) until `done`, at least 10 rounds.
async fn client(
    client: usize,
    base: Arc<String>,
    key: Arc<String>,
    done: Arc<AtomicBool>,
) -> ClientLog {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut log = ClientLog::default();
    let mut round = 0;
    while round < 10 || !done.load(Ordering::Relaxed) {
        round += 1;
        let idempotency_key = format!("client{client}-deposit{round}");
        let body = json!({"data": {"amount": format!("{round}.{:02}", client + 1), "currency": "EUR", "portfolio": "P1"}});
        let deposit = log
            .until_created(&http, || {
                http.post(format!("{base}/events/deposit/"))
                    .bearer_auth(key.as_str())
                    .header("idempotency-key", &idempotency_key)
                    .json(&body)
            })
            .await;
        log.deposits
            .insert(idempotency_key, deposit["id"].as_str().unwrap().to_owned());

        let batch_key = format!("client{client}-batch{round}");
        let events: Vec<Value> = (0..2)
            .map(|i| json!({"tenant": "acme", "subject": "portfolios", "action": "creation",
                            "data": {"id": format!("C{client}-{round}-{i}"), "external_id": "e", "owned_by_user_id": "U"}}))
            .collect();
        let batch = json!({"events": events});
        log.until_created(&http, || {
            http.post(format!("{base}/platform/events/batch"))
                .bearer_auth(PLATFORM_KEY)
                .header("idempotency-key", &batch_key)
                .json(&batch)
        })
        .await;
        log.batches += 1;
    }
    log
}

/// Polls `/readyz` every 100 ms until `done`, recording when and what it answered.
async fn watch_readiness(base: Arc<String>, done: Arc<AtomicBool>) -> Vec<(Instant, StatusCode)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    while !done.load(Ordering::Relaxed) {
        let response = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("/readyz answers while the database is down");
        seen.push((Instant::now(), response.status()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test]
async fn postgresql_restart_is_503_then_recovers_with_every_invariant() {
    eventgate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let cluster = EmbeddedPostgres::start(dir.path())
        .await
        .expect("a private PostgreSQL cluster (scripts/test.sh installs PostgreSQL)");
    // The cluster keeps its password in <data dir>/credentials.
    let password = std::fs::read_to_string(dir.path().join("credentials")).unwrap();
    let url = format!(
        "postgres://eventgate:{}@127.0.0.1:{}/postgres",
        password.trim(),
        cluster.port()
    );
    // The real server first: it migrates the empty cluster.
    let port = free_port();
    let base = Arc::new(format!("http://127.0.0.1:{port}"));
    let mut eventgate = spawn_eventgate(&url, port, &[("EVENTGATE_RATE_LIMIT_PER_SEC", "0")]);
    let http = reqwest::Client::new();
    wait_ready(&http, &base).await;
    let FaultSetup {
        pool,
        server: _setup,
        key,
        ..
    } = FaultSetup::start(PgPoolOptions::new(), cluster.connect_options()).await;
    let exchange = unique("acme");
    let queue = AmqpQueue::bind_new(&exchange).await;
    create_amqp_destination(&http, &base, &key, AMQP_URL, &exchange).await;
    // A new destination starts at the end of the feed: what was there is not sent.
    let earlier: HashSet<String> = acme_event_ids(&pool).await.into_iter().collect();

    let done = Arc::new(AtomicBool::new(false));
    let readiness = tokio::spawn(watch_readiness(base.clone(), done.clone()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(client(c, base.clone(), key.clone(), done.clone())))
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.stop_server().await.expect("PostgreSQL stops");
    let down_at = Instant::now();
    tokio::time::sleep(DOWN_FOR).await;
    cluster
        .start_server()
        .await
        .expect("PostgreSQL starts again");
    let up_at = Instant::now();
    // A client stops after its current round, which needs a 201 once the database is back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    done.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(client.await.unwrap());
    }
    let readiness = readiness.await.unwrap();
    assert!(
        eventgate.try_wait().unwrap().is_none(),
        "the server process is still running"
    );

    // The outage was seen: 503 problems and an unready /readyz while PostgreSQL was down.
    let unavailable: usize = logs.iter().map(|l| l.unavailable).sum();
    assert!(
        unavailable > 0,
        "requests during the outage were answered 503"
    );
    let unready_while_down = readiness
        .iter()
        .filter(|(at, status)| {
            *at > down_at && *at < down_at + DOWN_FOR && *status == StatusCode::SERVICE_UNAVAILABLE
        })
        .count();
    assert!(unready_while_down > 0, "/readyz said 503 while down");
    assert_eq!(
        readiness.last().map(|(_, s)| *s),
        Some(StatusCode::OK),
        "/readyz is 200 again"
    );
    let ready_again = readiness
        .iter()
        .find(|(at, status)| *at > up_at && *status == StatusCode::OK)
        .map(|(at, _)| at.duration_since(up_at))
        .expect("ready again after the restart");
    let first_ack = logs
        .iter()
        .flat_map(|l| l.acknowledged_at.iter())
        .filter(|at| **at > up_at)
        .min()
        .map(|at| at.duration_since(up_at))
        .expect("acknowledged after the restart");

    // Exactly once: every acknowledged deposit and batch stored once, nothing else.
    let deposits: HashMap<&String, &String> = logs.iter().flat_map(|l| l.deposits.iter()).collect();
    let batches: usize = logs.iter().map(|l| l.batches).sum();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM deposits").await,
        deposits.len() as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.funding'").await,
        deposits.len() as i64,
        "one funding event per deposit"
    );
    assert_eq!(
        count("SELECT count(*) FROM deposits d JOIN outbox o ON o.id = d.event_id").await,
        deposits.len() as i64
    );
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE event_type = 'portfolios.creation'").await,
        1 + 2 * batches as i64,
        "each acknowledged batch stored once (plus the setup's P1)"
    );
    for deposit_id in deposits.values() {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM deposits WHERE id = $1::uuid")
            .bind(deposit_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, 1, "acknowledged deposit {deposit_id} is stored");
    }

    // The bus got every event at least once.
    let expected: HashSet<String> = acme_event_ids(&pool)
        .await
        .into_iter()
        .filter(|id| !earlier.contains(id))
        .collect();
    let received = queue.take_every(&expected).await;
    let received_ids: Vec<String> = received.iter().map(Received::event_id).collect();
    let distinct: HashSet<&String> = received_ids.iter().collect();

    eprintln!(
        "database restart: PostgreSQL down {:.1} s; {} deposits and {} batches acknowledged, \
         {} answers 503 (slowest {:.2} s), {} answers 409, 0 other; /readyz 503 {} times while down, \
         200 again {:.2} s and first 201 {:.2} s after the restart; {} events checked, \
         {} AMQP messages ({} duplicates), 0 lost, 0 doubled",
        up_at.duration_since(down_at).as_secs_f64(),
        deposits.len(),
        batches,
        unavailable,
        logs.iter()
            .map(|l| l.slowest_unavailable)
            .max()
            .unwrap_or_default()
            .as_secs_f64(),
        logs.iter().map(|l| l.conflicts).sum::<usize>(),
        unready_while_down,
        ready_again.as_secs_f64(),
        first_ack.as_secs_f64(),
        expected.len(),
        received_ids.len(),
        received_ids.len() - distinct.len(),
    );
    drop(eventgate);
    cluster.stop().await.expect("PostgreSQL stops at the end");
}

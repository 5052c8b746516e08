//! Load generator for `scripts/bench.sh`: drives a running eventgate over HTTP on
//! 127.0.0.1 and prints one result line per scenario. Every loop is bounded in time.
//!
//! Usage: cargo bench --bench load -- <scenario> [key=value ...]
//!   deposits  concurrency=32 seconds=20      deposits/s with unique Idempotency-Keys
//!   replays   concurrency=32 seconds=10      replays/s of one key
//!   seed-feed events=1000000                 inserts events for tenant `feedbench` (SQL)
//!   follow    limit=1000                     events/s paging the whole feed
//!   longpoll  waiters=500 tenants=5 server_pid=PID   wake-up latency of waiting long-polls
//!             (floor=1: the server at EVENTGATE_URL is `longpoll-floor`; the line says so)
//!   longpoll-floor port=N                    a bare hyper server for `longpoll`: its floor
//! Any unexpected answer stops the run with its status and body (non-zero exit).
//!   relay-backlog kind=amqp|mqtt|kafka events=100000   relay rate from a backlog to a broker
//!   relay-latency kind=amqp|mqtt|kafka rate=1000 seconds=10  commit-to-receipt latency through a broker
//!   amqp-ceiling events=100000               a bare lapin publisher with confirms
//!   kafka-ceiling events=100000              a bare rskafka producer, acks=all, same records
//!   webhook-backlog events=50000             webhook deliveries/s from a backlog
//!   webhook-latency rate=500 seconds=10      commit-to-receipt latency of webhooks
//! Environment: EVENTGATE_URL, EVENTGATE_PLATFORM_KEY, DATABASE_URL (seed-feed only).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

#[path = "load/floor.rs"]
mod floor;
#[path = "load/kafka.rs"]
mod kafka;
#[path = "load/per_tenant.rs"]
mod per_tenant;
#[path = "load/samples.rs"]
mod samples;
#[path = "load/steal.rs"]
mod steal;
#[path = "load/waiter.rs"]
mod waiter;

struct Ctx {
    url: String,
    platform_key: String,
    http: reqwest::Client,
    args: HashMap<String, String>,
}

impl Ctx {
    fn arg(&self, name: &str, default: u64) -> u64 {
        self.args
            .get(name)
            .map(|v| v.parse().expect("numeric argument"))
            .unwrap_or(default)
    }

    /// POSTs `body`; any answer but 2xx stops the run (see [`expect`]).
    async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body);
        expect(request, &[], &format!("POST {path}")).await
    }

    /// The server's `eventgate_feed_waiters` gauge: long-polls it holds.
    async fn feed_waiters(&self) -> u64 {
        let request = self
            .http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.platform_key);
        let text = expect(request, &[], "GET /metrics")
            .await
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|line| line.strip_prefix("eventgate_feed_waiters "))
            .and_then(|value| value.trim().parse().ok())
            .expect("eventgate_feed_waiters in /metrics")
    }

    /// Creates tenant `id` (if new) and returns a fresh client key for it.
    async fn tenant(&self, id: &str) -> String {
        let request = self
            .http
            .post(format!("{}/platform/tenants", self.url))
            .bearer_auth(&self.platform_key)
            .json(&json!({"id": id, "name": id}));
        // 409: it exists from an earlier scenario of this run.
        expect(request, &[StatusCode::CONFLICT], "POST /platform/tenants").await;
        let key: Value = self
            .post(
                &format!("/platform/tenants/{id}/keys"),
                &self.platform_key,
                &json!({"role": "client"}),
            )
            .await
            .json()
            .await
            .expect("key");
        key["key"].as_str().expect("key string").to_owned()
    }

    async fn portfolio(&self, tenant: &str, id: &str) {
        let body = json!({"tenant": tenant, "subject": "portfolios", "action": "creation",
                          "data": {"id": id, "external_id": id, "owned_by_user_id": "U1"}});
        self.post("/platform/events", &self.platform_key, &body)
            .await;
    }
}

/// Sends `request` and returns the answer if it is 2xx or one of `also`; anything else
/// (another status, no answer) stops the whole run with what came back: a benchmark that
/// counted refusals as results would report a rate nobody got.
async fn expect(
    request: reqwest::RequestBuilder,
    also: &[StatusCode],
    what: &str,
) -> reqwest::Response {
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => panic!("{what}: no answer: {err}"),
    };
    let status = response.status();
    if status.is_success() || also.contains(&status) {
        return response;
    }
    let body = response.text().await.unwrap_or_default();
    panic!("{what}: unexpected {status}: {body}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, count: u64, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{name}: {count} ok in {:.1}s = {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

/// Runs `concurrency` workers sending `request(worker, i)` until `seconds` pass. A request
/// checks its own answer and stops the run on an unexpected one.
async fn closed_loop<F, Fut>(ctx: &Arc<Ctx>, name: &str, request: F)
where
    F: Fn(Arc<Ctx>, u64, u64) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = ()> + Send,
{
    let concurrency = ctx.arg("concurrency", 32);
    let seconds = ctx.arg("seconds", 20);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (ctx, stop, request) = (ctx.clone(), stop.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    request(ctx.clone(), worker, i).await;
                    latencies.push(sent.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    report(
        &format!("{name} (concurrency {concurrency})"),
        latencies.len() as u64,
        elapsed,
        latencies,
    );
}

async fn deposits(ctx: Arc<Ctx>) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("dep{}", &run[20..]);
    let key = Arc::new(ctx.tenant(&tenant).await);
    // Spread deposits over portfolios, as many clients would (64), or all into one (1: a
    // hot portfolio, whose writers queue on its lock).
    let portfolios = ctx.arg("portfolios", 64);
    for p in 0..portfolios {
        ctx.portfolio(&tenant, &format!("P{p}")).await;
    }
    let name = if portfolios == 1 {
        "deposits, 1 portfolio".to_owned()
    } else {
        "deposits".to_owned()
    };
    closed_loop(&ctx, &name, move |ctx, worker, i| {
        let key = key.clone();
        let run = run.clone();
        async move {
            let body = json!({"data": {"amount": "10.50", "currency": "EUR", "portfolio": format!("P{}", (worker + i) % portfolios)}});
            let request = ctx
                .http
                .post(format!("{}/events/deposit/", ctx.url))
                .bearer_auth(key.as_str())
                .header("idempotency-key", format!("{run}-{worker}-{i}"))
                .json(&body);
            let response = expect(request, &[], "deposit").await;
            assert_eq!(response.status(), StatusCode::CREATED, "a new deposit");
        }
    })
    .await;
}

async fn replays(ctx: Arc<Ctx>) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("rep{}", &run[20..]);
    let key = Arc::new(ctx.tenant(&tenant).await);
    ctx.portfolio(&tenant, "P0").await;
    let body = Arc::new(json!({"data": {"amount": "1", "currency": "EUR", "portfolio": "P0"}}));
    let deposit = |ctx: &Ctx, key: &str, body: &Value| {
        ctx.http
            .post(format!("{}/events/deposit/", ctx.url))
            .bearer_auth(key)
            .header("idempotency-key", "the-one-key")
            .json(body)
    };
    // The original, so that everything the loop sends is a replay.
    expect(deposit(&ctx, &key, &body), &[], "the original deposit").await;
    closed_loop(&ctx, "replays", move |ctx, _, _| {
        let (key, body) = (key.clone(), body.clone());
        async move {
            let response = expect(deposit(&ctx, &key, &body), &[], "replay").await;
            assert_eq!(
                response
                    .headers()
                    .get("idempotent-replayed")
                    .map(|v| v.as_bytes()),
                Some(&b"true"[..]),
                "every request of the loop is a replay"
            );
        }
    })
    .await;
}

async fn seed_feed(ctx: Arc<Ctx>) {
    let events = ctx.arg("events", 1_000_000);
    ctx.tenant("feedbench").await;
    seed_events(&ctx, "feedbench", events).await;
}

/// Inserts `events` status-update envelopes for `tenant` straight into the outbox.
async fn seed_events(_ctx: &Ctx, tenant: &str, events: u64) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = sqlx::PgPool::connect(&url).await.expect("database");
    let started = Instant::now();
    // 10,000 events per transaction, shaped like real portfolios.status-update envelopes.
    let mut inserted = 0;
    while inserted < events {
        let n = (events - inserted).min(10_000) as i64;
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
             SELECT id, $3, 'portfolios.status-update', 'Portfolio', 'P' || i, 'Updated', now(),
                    format('{\"id\":\"%s\",\"created\":\"%s\",\"version\":\"1.0.0\",\"subject\":\"portfolios\",\"action\":\"status-update\",\"data\":{\"id\":\"P%s\",\"external_id\":\"an-external-id\",\"value\":\"ACTIVE\"}}',
                           id, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), i)
             FROM (SELECT gen_random_uuid() AS id, i FROM generate_series($1::bigint, $2::bigint) AS i) AS s",
        )
        .bind(inserted as i64)
        .bind(inserted as i64 + n - 1)
        .bind(tenant)
        .execute(&pool)
        .await
        .expect("seed insert");
        inserted += n as u64;
    }
    sqlx::query("ANALYZE outbox")
        .execute(&pool)
        .await
        .expect("analyze");
    println!(
        "seed {tenant}: {inserted} events in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

async fn follow(ctx: Arc<Ctx>) {
    let limit = ctx.arg("limit", 1000);
    let key = ctx.tenant("feedbench").await;
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let (mut events, mut pages) = (0u64, 0u64);
    let mut latencies = Vec::new();
    loop {
        let mut url = format!("{}/events/?limit={limit}", ctx.url);
        if let Some(c) = &cursor {
            url.push_str(&format!("&after={c}"));
        }
        let sent = Instant::now();
        let bytes = expect(ctx.http.get(url).bearer_auth(&key), &[], "feed page")
            .await
            .bytes()
            .await
            .expect("body");
        // A follower needs the count and the cursor; it skips over the events unparsed.
        let page: FollowPage = serde_json::from_slice(&bytes).expect("json");
        latencies.push(sent.elapsed());
        let n = page.data.len() as u64;
        cursor = Some(page.next_cursor);
        if n == 0 {
            break;
        }
        events += n;
        pages += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "follow (limit {limit}): {events} events in {pages} pages, {:.1}s = {:.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
    report("follow pages", pages, elapsed, latencies);
}

#[derive(serde::Deserialize)]
struct FollowPage {
    data: Vec<serde::de::IgnoredAny>,
    next_cursor: String,
}

fn rss_kib(pid: u64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time the process `pid` has used so far, all its threads (their schedstat, in
/// nanoseconds: finer than the clock ticks of /proc/PID/stat over a 100 ms wake-up).
fn cpu_ns(pid: u64) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Minor page faults of the process so far, all its threads (`/proc/PID/stat`): memory it
/// touches for the first time, or again after giving it back.
fn minor_faults(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces: minflt is the eighth.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(7)?
        .parse()
        .ok()
}

/// CPU time all PostgreSQL processes on the machine have used so far (the benchmark's
/// cluster does the work; others idle).
fn postgres_cpu_ns() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|name| name.trim() == "postgres") {
            let pid = path.file_name().and_then(|n| n.to_str()?.parse().ok());
            total += pid.and_then(cpu_ns).unwrap_or(0);
        }
    }
    total
}

/// `waiters` long-polls spread over `tenants` tenants (each under the per-tenant cap of
/// 100 waiting long-polls, so that every one of them waits), one event published per
/// tenant; each waiter must get exactly its tenant's event.
async fn longpoll(ctx: Arc<Ctx>) {
    let waiters = ctx.arg("waiters", 500);
    let tenants = ctx.arg("tenants", waiters.div_ceil(100)).max(1);
    assert!(
        waiters <= tenants * 100,
        "{waiters} waiters over {tenants} tenants would pass the cap of 100 per tenant"
    );
    let pid = ctx.arg("server_pid", 0);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let mut cursors = Vec::new();
    for t in 0..tenants {
        let tenant = format!("lp{}-{t}", &run[20..]);
        let key = ctx.tenant(&tenant).await;
        ctx.portfolio(&tenant, "P0").await;
        let request = ctx
            .http
            .get(format!("{}/events/?limit=1000", ctx.url))
            .bearer_auth(&key);
        let first: Value = expect(request, &[], "first page")
            .await
            .json()
            .await
            .expect("json");
        let cursor = first["next_cursor"].as_str().expect("cursor").to_owned();
        cursors.push(Arc::new((tenant, key, cursor)));
    }
    let rss_before = rss_kib(pid);
    // All waiting at once, each on a connection of its own, as separate clients' would,
    // each one task reading its one answer into memory it has already touched (`waiter`):
    // the generator shares the two cores with the server, so what it spends on an answer
    // delays the next. Answered, a connection stays open (in its receipt) for the next
    // poll, as a long-polling client's does; closing each one (as this scenario did until
    // the seventh session of #22) put 5,000 connection teardowns on both sides into the
    // measured wake-up. Answers are parsed only after the last one is in.
    let host = ctx
        .url
        .strip_prefix("http://")
        .expect("EVENTGATE_URL is http://host:port")
        .trim_end_matches('/')
        .to_owned();
    let host = Arc::new(host);
    let tasks: Vec<_> = (0..waiters)
        .map(|w| {
            let (host, tenant) = (host.clone(), cursors[(w % tenants) as usize].clone());
            tokio::spawn(async move {
                let (_, key, cursor) = tenant.as_ref();
                let path = format!("/events/?wait=30&after={cursor}");
                (tenant.0.clone(), waiter::wait(&host, &path, key).await)
            })
        })
        .collect();
    // Publish only once the server holds every waiter (its feed_waiters gauge), then one
    // more second for the last ones' first reads: late arrivals would count their own
    // connection time as wake-up latency.
    let parked = Instant::now();
    while ctx.feed_waiters().await < waiters {
        assert!(
            parked.elapsed() < Duration::from_secs(60),
            "the server never held all {waiters} waiters"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The floor's lines are named apart, so that a summary never mistakes one for the other.
    let name = if ctx.arg("floor", 0) == 1 {
        "longpoll-floor"
    } else {
        "longpoll"
    };
    println!(
        "{name}: all {waiters} waiting after {:.1} s",
        parked.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_waiting = rss_kib(pid);
    let cpu_before = WakeUpCpu::now(pid);
    // One event per tenant, all at once; each waiter's latency counts from its tenant's.
    let publishes: Vec<_> = cursors
        .iter()
        .map(|tenant| {
            let (ctx, tenant) = (ctx.clone(), tenant.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                ctx.portfolio(&tenant.0, "P1").await;
                let acknowledged = Instant::now();
                (tenant.0.clone(), per_tenant::Publish { sent, acknowledged })
            })
        })
        .collect();
    let mut published_at = HashMap::new();
    for publish in publishes {
        let (tenant, publish) = publish.await.expect("publish");
        published_at.insert(tenant, publish);
    }
    let mut receipts = Vec::with_capacity(tasks.len());
    for task in tasks {
        receipts.push(task.await.expect("waiter"));
    }
    let cpu = WakeUpCpu::now(pid).since(&cpu_before, waiters);
    let mut latencies = Vec::with_capacity(receipts.len());
    for (tenant, receipt) in &receipts {
        let page: Value = serde_json::from_slice(&receipt.body).expect("json");
        let events = page["data"].as_array().map_or(0, Vec::len);
        assert_eq!(events, 1, "a waiter of {tenant} got {page}");
        latencies.push(
            receipt
                .received
                .saturating_duration_since(published_at[tenant].sent),
        );
    }
    let receipt_times: Vec<_> = receipts
        .iter()
        .map(|(tenant, receipt)| (tenant.clone(), receipt.received))
        .collect();
    let by_tenant = per_tenant::describe(&published_at, &receipt_times);
    latencies.sort();
    println!(
        "{name}: {waiters} waiters over {tenants} tenants, each got its event; publish-to-receipt min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server RSS {} KiB idle -> {} KiB with waiters; {cpu}",
        latencies.first().copied().unwrap_or_default().as_secs_f64() * 1e3,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        rss_before.map_or("?".into(), |v| v.to_string()),
        rss_waiting.map_or("?".into(), |v| v.to_string()),
    );
    println!("{name}: {by_tenant}");
}

/// CPU used so far by the server, this generator and PostgreSQL, the server's page faults
/// and the VM's stolen CPU: sampled before the publishes and after the last answer, it says
/// who spent the wake-up's two cores (and how much of them the hypervisor took), and what
/// fresh memory the server touched in it (more after a heap trim has given the last
/// burst's back).
struct WakeUpCpu {
    server: Option<u64>,
    generator: Option<u64>,
    postgres: u64,
    server_faults: Option<u64>,
    steal: steal::Steal,
}

impl WakeUpCpu {
    fn now(server_pid: u64) -> Self {
        Self {
            server: cpu_ns(server_pid),
            generator: cpu_ns(u64::from(std::process::id())),
            postgres: postgres_cpu_ns(),
            server_faults: minor_faults(server_pid),
            steal: steal::Steal::now(),
        }
    }

    /// "CPU over the wake-up: server …, generator …, PostgreSQL …", each also per answer.
    fn since(&self, before: &Self, answers: u64) -> String {
        let spent = |after: Option<u64>, before: Option<u64>| {
            after.zip(before).map_or("?".into(), |(after, before)| {
                let ns = after.saturating_sub(before) as f64;
                format!(
                    "{:.1} ms ({:.1} µs an answer)",
                    ns / 1e6,
                    ns / 1e3 / answers as f64
                )
            })
        };
        let faults =
            self.server_faults
                .zip(before.server_faults)
                .map_or("?".into(), |(after, before)| {
                    let faults = after.saturating_sub(before);
                    format!("{faults} ({:.1} an answer)", faults as f64 / answers as f64)
                });
        format!(
            "CPU over the wake-up: server {}, generator {}, PostgreSQL {}; the server's page faults {faults}; the VM's {}",
            spent(self.server, before.server),
            spent(self.generator, before.generator),
            spent(Some(self.postgres), Some(before.postgres)),
            self.steal.since(before.steal),
        )
    }
}

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The MQTT broker's port on 127.0.0.1 (`BENCH_MQTT_PORT`, default 1883): scripts/bench.sh
/// runs a second Mosquitto to compare broker settings.
fn mqtt_port() -> u16 {
    std::env::var("BENCH_MQTT_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(1883)
}

/// An exchange with an exclusive queue bound to it, and a task counting its messages and
/// recording each one's commit-to-receipt latency (from the envelope's `created`).
async fn amqp_counter(exchange: &str) -> (Arc<AtomicU64>, samples::Samples) {
    use futures::StreamExt;
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::{FieldTable, ShortString};
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            ShortString::from(exchange),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    let queue = channel
        .queue_declare(
            ShortString::from(""),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    let name = queue.name().to_string();
    channel
        .queue_bind(
            ShortString::from(name.as_str()),
            ShortString::from(exchange),
            ShortString::from("#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            ShortString::from(name.as_str()),
            ShortString::from("bench"),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let count = Arc::new(AtomicU64::new(0));
    let latencies = samples::Samples::default();
    let (task_count, task_latencies) = (count.clone(), latencies.clone());
    tokio::spawn(async move {
        let _keep = connection;
        while let Some(Ok(delivery)) = consumer.next().await {
            if let Ok(head) = serde_json::from_slice::<Head>(&delivery.data) {
                samples::record(&task_latencies, head.created).await;
            }
            task_count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (count, latencies)
}

#[derive(serde::Deserialize)]
struct Head {
    created: chrono::DateTime<chrono::Utc>,
}

/// Subscribes to `topic` (QoS 1): how many arrived, and each one's commit-to-receipt
/// latency (from the envelope's `created`).
async fn mqtt_counter(topic: &str) -> (Arc<AtomicU64>, samples::Samples) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    // Through a forwarding endpoint like the relay's: the broker (Nagle's algorithm on, by
    // Mosquitto's default) would otherwise hold each message to this consumer until the
    // consumer's kernel acknowledged the one before, up to 40 ms later; the consumer then
    // fell so far behind a relay without that wait that the broker dropped messages for it
    // (its queue holds 1,000).
    let broker = std::net::SocketAddr::from(([127, 0, 0, 1], mqtt_port()));
    let forward = eventgate::egress::forward::ForwardEndpoint::start(broker)
        .await
        .expect("a forwarding endpoint");
    let mut options = rumqttc::v5::MqttOptions::new(
        format!("bench-{}", uuid::Uuid::now_v7().simple()),
        forward.address().ip().to_string(),
        forward.address().port(),
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, 1000);
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let count = Arc::new(AtomicU64::new(0));
    let latencies = samples::Samples::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (task_count, task_latencies) = (count.clone(), latencies.clone());
    tokio::spawn(async move {
        let (_client, _forward) = (client, forward);
        let mut ready = Some(ready_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                rumqttc::v5::Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                rumqttc::v5::Event::Incoming(Packet::Publish(publish)) => {
                    if let Ok(head) = serde_json::from_slice::<Head>(&publish.payload) {
                        samples::record(&task_latencies, head.created).await;
                    }
                    task_count.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    });
    ready_rx.await.expect("SUBACK");
    (count, latencies)
}

async fn wait_count(count: &AtomicU64, target: u64, limit: Duration) -> Duration {
    let started = Instant::now();
    while count.load(Ordering::Relaxed) < target {
        assert!(
            started.elapsed() < limit,
            "only {} of {target} arrived",
            count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

async fn relay_backlog(ctx: Arc<Ctx>) {
    let kind = ctx
        .args
        .get("kind")
        .cloned()
        .unwrap_or_else(|| "amqp".into());
    let events = ctx.arg("events", 100_000);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("rb{}", &run[20..]);
    let key = ctx.tenant(&tenant).await;
    let (count, body) = if kind == "kafka" {
        let topic = format!("bench-{run}");
        (
            kafka::counter(&topic).await.0,
            json!({"kind": "kafka", "bootstrap_servers": [kafka::address()], "topic": topic, "enabled": false}),
        )
    } else if kind == "mqtt" {
        let topic = format!("bench/{run}");
        (
            mqtt_counter(&topic).await.0,
            json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{}", mqtt_port()), "topic": topic, "qos": 1, "enabled": false}),
        )
    } else {
        let exchange = format!("bench-{run}");
        (
            amqp_counter(&exchange).await.0,
            json!({"kind": "amqp", "url": AMQP_URL, "exchange": exchange, "enabled": false}),
        )
    };
    let created: Value = ctx
        .post("/destinations", &key, &body)
        .await
        .json()
        .await
        .expect("destination");
    let id = created["id"].as_str().expect("destination id").to_owned();
    seed_events(&ctx, &tenant, events).await;
    let started = Instant::now();
    ctx.http
        .patch(format!("{}/destinations/{id}", ctx.url))
        .bearer_auth(&key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("enable");
    wait_count(&count, events, Duration::from_secs(900)).await;
    let elapsed = started.elapsed();
    println!(
        "relay-backlog {kind}: {events} events in {:.1}s = {:.0} events/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

async fn relay_latency(ctx: Arc<Ctx>) {
    let rate = ctx.arg("rate", 1000);
    let seconds = ctx.arg("seconds", 10);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("rl{}", &run[20..]);
    let key = ctx.tenant(&tenant).await;
    let kind = ctx.args.get("kind").map_or("amqp", String::as_str);
    let name = format!("bench-{run}");
    let (count, latencies, body) = if kind == "kafka" {
        let (count, latencies) = kafka::counter(&name).await;
        let body = json!({"kind": "kafka", "bootstrap_servers": [kafka::address()], "topic": name});
        (count, latencies, body)
    } else if kind == "mqtt" {
        let topic = format!("bench/{run}");
        let (count, latencies) = mqtt_counter(&topic).await;
        let body = json!({"kind": "mqtt", "url": format!("mqtt://127.0.0.1:{}", mqtt_port()), "topic": topic, "qos": 1});
        (count, latencies, body)
    } else {
        let (count, latencies) = amqp_counter(&name).await;
        (
            count,
            latencies,
            json!({"kind": "amqp", "url": AMQP_URL, "exchange": name}),
        )
    };
    ctx.post("/destinations", &key, &body).await;
    // The relay picks a new destination up at its next tick.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    let steal_before = steal::Steal::now();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let events: Vec<Value> = (0..per_tick)
            .map(|i| json!({"tenant": tenant, "subject": "portfolios", "action": "creation",
                            "data": {"id": format!("P{sent}-{i}"), "external_id": "e", "owned_by_user_id": "U"}}))
            .collect();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.post(
                "/platform/events/batch",
                &ctx.platform_key,
                &json!({"events": events}),
            )
            .await;
        });
        sent += per_tick;
    }
    wait_count(&count, sent, Duration::from_secs(120)).await;
    let stolen = steal::Steal::now().since(steal_before);
    let latencies = latencies.lock().await;
    assert!(
        latencies.len() as u64 >= sent,
        "only {} of {sent} events' latencies measured (an envelope without `created`?)",
        latencies.len()
    );
    println!(
        "relay-latency {kind}: {sent} events at {rate}/s for {seconds}s; commit-to-receipt {}; the VM's {stolen}",
        samples::describe(&latencies),
    );
}

async fn amqp_ceiling(ctx: Arc<Ctx>) {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
    use lapin::types::ShortString;
    let events = ctx.arg("events", 100_000);
    let window = ctx.arg("window", 256) as usize;
    let exchange = format!("bench-{}", uuid::Uuid::now_v7().simple());
    let (count, _) = amqp_counter(&exchange).await;
    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let payload = r#"{"id":"01a20620-e70f-73be-85f5-b32602413f43","created":"2026-11-23T01:00:00.000000Z","version":"1.0.0","subject":"portfolios","action":"status-update","data":{"id":"P123456","external_id":"an-external-id","value":"ACTIVE"}}"#;
    let started = Instant::now();
    let mut published = 0;
    while published < events {
        let n = (events - published).min(window as u64);
        let mut confirms = Vec::with_capacity(window);
        for i in 0..n {
            let properties = lapin::BasicProperties::default()
                .with_content_type(ShortString::from("application/json"))
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(format!("m{}", published + i)));
            confirms.push(
                channel
                    .basic_publish(
                        ShortString::from(exchange.as_str()),
                        ShortString::from("events"),
                        BasicPublishOptions::default(),
                        payload.as_bytes(),
                        properties,
                    )
                    .await
                    .expect("publish"),
            );
        }
        for confirm in confirms {
            confirm.await.expect("confirm");
        }
        published += n;
    }
    let confirmed = started.elapsed();
    wait_count(&count, events, Duration::from_secs(300)).await;
    println!(
        "amqp-ceiling (window {window}): {events} confirmed in {:.1}s = {:.0} msgs/s",
        confirmed.as_secs_f64(),
        events as f64 / confirmed.as_secs_f64()
    );
}

/// A fast webhook receiver on 127.0.0.1: answers 204, counts, and records each delivery's
/// commit-to-receipt latency (from the envelope's `created`).
async fn webhook_receiver() -> (String, Arc<AtomicU64>, samples::Samples) {
    let count = Arc::new(AtomicU64::new(0));
    let latencies = samples::Samples::default();
    let (task_count, task_latencies) = (count.clone(), latencies.clone());
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (count, latencies) = (task_count.clone(), task_latencies.clone());
        async move {
            if let Ok(head) = serde_json::from_slice::<Head>(&body) {
                samples::record(&latencies, head.created).await;
            }
            count.fetch_add(1, Ordering::Relaxed);
            axum::http::StatusCode::NO_CONTENT
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count, latencies)
}

async fn webhook_backlog(ctx: Arc<Ctx>) {
    let events = ctx.arg("events", 50_000);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("wb{}", &run[20..]);
    let key = ctx.tenant(&tenant).await;
    let (url, count, _) = webhook_receiver().await;
    let created: Value = ctx
        .post(
            "/destinations",
            &key,
            &json!({"kind": "webhook", "url": url, "enabled": false}),
        )
        .await
        .json()
        .await
        .expect("destination");
    let id = created["id"].as_str().expect("destination id").to_owned();
    seed_events(&ctx, &tenant, events).await;
    let started = Instant::now();
    ctx.http
        .patch(format!("{}/destinations/{id}", ctx.url))
        .bearer_auth(&key)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("enable");
    wait_count(&count, events, Duration::from_secs(900)).await;
    let elapsed = started.elapsed();
    println!(
        "webhook-backlog: {events} deliveries in {:.1}s = {:.0} deliveries/s",
        elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    );
}

async fn webhook_latency(ctx: Arc<Ctx>) {
    let rate = ctx.arg("rate", 500);
    let seconds = ctx.arg("seconds", 10);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("wl{}", &run[20..]);
    let key = ctx.tenant(&tenant).await;
    let (url, count, latencies) = webhook_receiver().await;
    ctx.post(
        "/destinations",
        &key,
        &json!({"kind": "webhook", "url": url}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    let steal_before = steal::Steal::now();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let events: Vec<Value> = (0..per_tick)
            .map(|i| json!({"tenant": tenant, "subject": "portfolios", "action": "creation",
                            "data": {"id": format!("P{sent}-{i}"), "external_id": "e", "owned_by_user_id": "U"}}))
            .collect();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.post(
                "/platform/events/batch",
                &ctx.platform_key,
                &json!({"events": events}),
            )
            .await;
        });
        sent += per_tick;
    }
    wait_count(&count, sent, Duration::from_secs(120)).await;
    let stolen = steal::Steal::now().since(steal_before);
    let latencies = latencies.lock().await;
    println!(
        "webhook-latency: {sent} events at {rate}/s for {seconds}s; commit-to-receipt {}; the VM's {stolen}",
        samples::describe(&latencies),
    );
}

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1).filter(|a| a != "--bench");
    let scenario = argv.next().unwrap_or_else(|| "help".into());
    let args = argv
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    eventgate::tls::install_crypto_provider();
    let ctx = Arc::new(Ctx {
        url: std::env::var("EVENTGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        platform_key: std::env::var("EVENTGATE_PLATFORM_KEY").unwrap_or_default(),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .expect("client"),
        args,
    });
    match scenario.as_str() {
        "deposits" => deposits(ctx).await,
        "replays" => replays(ctx).await,
        "seed-feed" => seed_feed(ctx).await,
        "follow" => follow(ctx).await,
        "longpoll" => longpoll(ctx).await,
        "longpoll-floor" => floor::serve(ctx.arg("port", 8090) as u16).await,
        "relay-backlog" => relay_backlog(ctx).await,
        "relay-latency" => relay_latency(ctx).await,
        "amqp-ceiling" => amqp_ceiling(ctx).await,
        "kafka-ceiling" => {
            let events = ctx.arg("events", 100_000);
            let rate = kafka::ceiling(events).await;
            println!(
                "kafka-ceiling: {events} records acknowledged (acks=all) = {rate:.0} records/s"
            );
        }
        "webhook-backlog" => webhook_backlog(ctx).await,
        "webhook-latency" => webhook_latency(ctx).await,
        _ => {
            eprintln!("scenarios: deposits replays seed-feed follow longpoll (see benches/load.rs)")
        }
    }
}

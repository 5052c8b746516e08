//! Load generator for `scripts/bench.sh`: drives a running eventgate over HTTP on
//! 127.0.0.1 and prints one result line per scenario. Every loop is bounded in time.
//!
//! Usage: cargo bench --bench load -- <scenario> [key=value ...]
//!   deposits  concurrency=32 seconds=20      deposits/s with unique Idempotency-Keys
//!   replays   concurrency=32 seconds=10      replays/s of one key
//!   seed-feed events=1000000                 inserts events for tenant `feedbench` (SQL)
//!   follow    limit=1000                     events/s paging the whole feed
//!   longpoll  waiters=500 server_pid=PID     wake-up latency of waiting long-polls
//! Environment: EVENTGATE_URL, EVENTGATE_PLATFORM_KEY, DATABASE_URL (seed-feed only).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

    async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates tenant `id` (if new) and returns a fresh client key for it.
    async fn tenant(&self, id: &str) -> String {
        self.post(
            "/platform/tenants",
            &self.platform_key,
            &json!({"id": id, "name": id}),
        )
        .await;
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(name: &str, count: u64, errors: u64, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{name}: {count} ok, {errors} errors in {:.1}s = {:.0}/s; latency p50 {:.1} ms, p99 {:.1} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

/// Runs `concurrency` workers sending `request(worker, i)` until `seconds` pass.
async fn closed_loop<F, Fut>(ctx: &Arc<Ctx>, name: &str, request: F)
where
    F: Fn(Arc<Ctx>, u64, u64) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = bool> + Send,
{
    let concurrency = ctx.arg("concurrency", 32);
    let seconds = ctx.arg("seconds", 20);
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (ctx, stop, errors, request) =
                (ctx.clone(), stop.clone(), errors.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    if request(ctx.clone(), worker, i).await {
                        latencies.push(sent.elapsed());
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
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
        errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
    );
}

async fn deposits(ctx: Arc<Ctx>) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("dep{}", &run[20..]);
    let key = Arc::new(ctx.tenant(&tenant).await);
    // Spread deposits over portfolios, as many clients would.
    for p in 0..64 {
        ctx.portfolio(&tenant, &format!("P{p}")).await;
    }
    closed_loop(&ctx, "deposits", move |ctx, worker, i| {
        let key = key.clone();
        let run = run.clone();
        async move {
            let body = json!({"data": {"amount": "10.50", "currency": "EUR", "portfolio": format!("P{}", (worker + i) % 64)}});
            ctx.http
                .post(format!("{}/events/deposit/", ctx.url))
                .bearer_auth(key.as_str())
                .header("idempotency-key", format!("{run}-{worker}-{i}"))
                .json(&body)
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED)
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
    closed_loop(&ctx, "replays", move |ctx, _, _| {
        let (key, body) = (key.clone(), body.clone());
        async move {
            ctx.http
                .post(format!("{}/events/deposit/", ctx.url))
                .bearer_auth(key.as_str())
                .header("idempotency-key", "the-one-key")
                .json(body.as_ref())
                .send()
                .await
                .is_ok_and(|r| r.status() == reqwest::StatusCode::CREATED)
        }
    })
    .await;
}

async fn seed_feed(ctx: Arc<Ctx>) {
    let events = ctx.arg("events", 1_000_000);
    ctx.tenant("feedbench").await;
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = sqlx::PgPool::connect(&url).await.expect("database");
    let started = Instant::now();
    // 10,000 events per transaction, shaped like real portfolios.status-update envelopes.
    let mut inserted = 0;
    while inserted < events {
        let n = (events - inserted).min(10_000) as i64;
        sqlx::query(
            "INSERT INTO outbox (id, tenant_id, event_type, entity, entity_id, change, created, envelope)
             SELECT id, 'feedbench', 'portfolios.status-update', 'Portfolio', 'P' || i, 'Updated', now(),
                    format('{\"id\":\"%s\",\"created\":\"%s\",\"version\":\"1.0.0\",\"subject\":\"portfolios\",\"action\":\"status-update\",\"data\":{\"id\":\"P%s\",\"external_id\":\"an-external-id\",\"value\":\"ACTIVE\"}}',
                           id, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), i)
             FROM (SELECT gen_random_uuid() AS id, i FROM generate_series($1::bigint, $2::bigint) AS i) AS s",
        )
        .bind(inserted as i64)
        .bind(inserted as i64 + n - 1)
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
        "seed-feed: {inserted} events in {:.1}s",
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
        let bytes = ctx
            .http
            .get(url)
            .bearer_auth(&key)
            .send()
            .await
            .expect("page")
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
    report("follow pages", pages, 0, elapsed, latencies);
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

async fn longpoll(ctx: Arc<Ctx>) {
    let waiters = ctx.arg("waiters", 500);
    let pid = ctx.arg("server_pid", 0);
    let run = uuid::Uuid::now_v7().simple().to_string();
    let tenant = format!("lp{}", &run[20..]);
    let key = Arc::new(ctx.tenant(&tenant).await);
    ctx.portfolio(&tenant, "P0").await;
    let first: Value = ctx
        .http
        .get(format!("{}/events/?limit=1000", ctx.url))
        .bearer_auth(key.as_str())
        .send()
        .await
        .expect("page")
        .json()
        .await
        .expect("json");
    let cursor = Arc::new(first["next_cursor"].as_str().expect("cursor").to_owned());
    let rss_before = rss_kib(pid);
    // Each waiter gets its own connection, as separate clients would.
    let tasks: Vec<_> = (0..waiters)
        .map(|_| {
            let (ctx, key, cursor) = (ctx.clone(), key.clone(), cursor.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .build()
                    .expect("client");
                let response = client
                    .get(format!("{}/events/?wait=30&after={cursor}", ctx.url))
                    .bearer_auth(key.as_str())
                    .send()
                    .await
                    .expect("long-poll");
                let page: Value = response.json().await.expect("json");
                (Instant::now(), page["data"].as_array().map_or(0, Vec::len))
            })
        })
        .collect();
    // Give every waiter time to connect and park (a benchmark, not a test).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_waiting = rss_kib(pid);
    let published = Instant::now();
    ctx.portfolio(&tenant, "P1").await;
    let mut latencies = Vec::new();
    let mut empty = 0;
    for task in tasks {
        let (received, n) = task.await.expect("waiter");
        if n == 0 {
            empty += 1;
        }
        latencies.push(received.saturating_duration_since(published));
    }
    latencies.sort();
    println!(
        "longpoll: {waiters} waiters, {empty} empty; publish-to-receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; server RSS {} KiB idle -> {} KiB with waiters",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        rss_before.map_or("?".into(), |v| v.to_string()),
        rss_waiting.map_or("?".into(), |v| v.to_string()),
    );
}

#[tokio::main]
async fn main() {
    let mut argv = std::env::args().skip(1).filter(|a| a != "--bench");
    let scenario = argv.next().unwrap_or_else(|| "help".into());
    let args = argv
        .filter_map(|a| a.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
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
        _ => {
            eprintln!("scenarios: deposits replays seed-feed follow longpoll (see benches/load.rs)")
        }
    }
}

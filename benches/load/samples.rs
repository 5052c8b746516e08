//! Commit-to-receipt samples of the latency scenarios: each one's latency and when it was
//! received, so that a scenario can say not only how long its tail is but when it happened,
//! to be read against the machine's stalls and PostgreSQL's background work that
//! scripts/bench.sh lists at the end of a run.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Samples at or above this are the tail a scenario reports the moments of (the targets'
/// p99 bound).
const LATE: Duration = Duration::from_millis(50);

pub struct Sample {
    pub received: DateTime<Utc>,
    pub latency: Duration,
}

pub type Samples = Arc<tokio::sync::Mutex<Vec<Sample>>>;

/// Records an envelope created at `created` as received now.
pub async fn record(samples: &Samples, created: DateTime<Utc>) {
    let received = Utc::now();
    let latency = (received - created).to_std().unwrap_or_default();
    samples.lock().await.push(Sample { received, latency });
}

/// `p50 …, p99 …, max …`, then how many samples were 50 ms or later and between which
/// moments they arrived (UTC), or that none were.
pub fn describe(samples: &[Sample]) -> String {
    let mut latencies: Vec<Duration> = samples.iter().map(|sample| sample.latency).collect();
    latencies.sort();
    let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
    let mut text = format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(super::percentile(&latencies, 0.5)),
        ms(super::percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    let late: Vec<&Sample> = samples.iter().filter(|s| s.latency >= LATE).collect();
    let first = late.iter().map(|s| s.received).min();
    let last = late.iter().map(|s| s.received).max();
    match (first, last) {
        (Some(first), Some(last)) => text.push_str(&format!(
            "; {} at or over {} ms, received from {} to {} UTC",
            late.len(),
            LATE.as_millis(),
            first.format("%H:%M:%S%.3f"),
            last.format("%H:%M:%S%.3f"),
        )),
        _ => text.push_str(&format!("; none at or over {} ms", LATE.as_millis())),
    }
    text
}

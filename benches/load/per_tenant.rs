//! Where a long-poll wake-up's tail comes from, tenant by tenant: how long each tenant's
//! publish took to be acknowledged (its commit), when its first waiter had its answer,
//! and how long its last waiter came after its first. A tail made by publishes that
//! commit late shows in the first two; one made by writing 5,000 answers, in the third.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One tenant's publish: sent, and acknowledged (committed).
pub struct Publish {
    pub sent: Instant,
    pub acknowledged: Instant,
}

/// `publish acknowledged …; first receipt …; last after first …` (each p50 and max over
/// the tenants), from each tenant's publish and its waiters' receipt times.
pub fn describe(publishes: &HashMap<String, Publish>, receipts: &[(String, Instant)]) -> String {
    let mut spans: HashMap<&str, (Instant, Instant)> = HashMap::new();
    for (tenant, received) in receipts {
        spans
            .entry(tenant.as_str())
            .and_modify(|(first, last)| {
                *first = (*first).min(*received);
                *last = (*last).max(*received);
            })
            .or_insert((*received, *received));
    }
    let mut acknowledged = Vec::new();
    let mut first = Vec::new();
    let mut spread = Vec::new();
    for (tenant, publish) in publishes {
        acknowledged.push(publish.acknowledged.saturating_duration_since(publish.sent));
        if let Some((earliest, latest)) = spans.get(tenant.as_str()) {
            first.push(earliest.saturating_duration_since(publish.sent));
            spread.push(latest.saturating_duration_since(*earliest));
        }
    }
    format!(
        "per tenant (p50 / max of {}): publish acknowledged {}; first waiter's receipt {}; last waiter after the first {}",
        publishes.len(),
        median_and_max(&mut acknowledged),
        median_and_max(&mut first),
        median_and_max(&mut spread),
    )
}

fn median_and_max(values: &mut [Duration]) -> String {
    values.sort();
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    format!(
        "{:.1} / {:.1} ms",
        ms(values.get(values.len() / 2)),
        ms(values.last())
    )
}

//! What an attempt's outcome records: whether it succeeded, and when the delivery is tried
//! again (the configured delays with jitter, or later if the endpoint asked).

use std::time::Duration;

use chrono::Utc;

use super::WebhookSettings;
use super::recorder::Finished;
use super::send::Outcome;
use crate::store::webhook_attempts::AttemptRecord;
use crate::store::webhooks::DueDelivery;

/// The record of one attempt at `delivery`, with its next attempt's time if it gets one.
pub fn finished(delivery: &DueDelivery, outcome: &Outcome, settings: &WebhookSettings) -> Finished {
    let attempt_number = delivery.attempts as usize + 1;
    let next_attempt_at = if outcome.succeeded() || outcome.gone() {
        None
    } else {
        settings
            .retry_delays
            .get(attempt_number - 1)
            .map(|delay| retry_at(*delay, outcome.retry_after, settings))
    };
    Finished {
        record: AttemptRecord {
            delivery: delivery.id,
            message_id: delivery.message_id.clone(),
            succeeded: outcome.succeeded(),
            response_status: outcome.status.map(i32::from),
            duration_ms: outcome.duration.as_millis().min(i32::MAX as u128) as i32,
            error: outcome.error.clone(),
            excerpt: outcome.excerpt.clone(),
            request_headers: outcome.request_headers.clone(),
            next_attempt_at,
        },
        gone: outcome.gone(),
    }
}

/// When to try again after `scheduled`, or later if the endpoint asked (`Retry-After`);
/// what an endpoint asks is capped at the longest configured delay, so no answer can push
/// a delivery out of reach or overflow the clock.
fn retry_at(
    scheduled: Duration,
    asked: Option<Duration>,
    settings: &WebhookSettings,
) -> chrono::DateTime<Utc> {
    let delay = jittered(scheduled).max(
        asked
            .unwrap_or_default()
            .min(settings.longest_retry_delay()),
    );
    let now = Utc::now();
    chrono::Duration::from_std(delay)
        .ok()
        .and_then(|delay| now.checked_add_signed(delay))
        // Unreachable with delays capped at 30 days by the configuration.
        .unwrap_or(now)
}

/// Up to ±10% around `delay`, so retries of many messages do not arrive in lockstep.
fn jittered(delay: Duration) -> Duration {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2) as f64 / u32::MAX as f64;
    delay.mul_f64(0.9 + 0.2 * random)
}

//! The per-tenant request rate limit: a token bucket per tenant (GCRA, from `governor`),
//! refilled at `rate_limit_per_sec` with room for `rate_limit_burst` at once.
//!
//! The buckets live in this process: with N replicas behind a balancer a tenant can reach
//! up to N times the rate. Platform keys are not limited: the platform is the operator.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::ServerConfig;

/// Shared by every request of one server; cheap to clone.
#[derive(Clone)]
pub struct TenantRateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<String>>>,
    clock: DefaultClock,
    per_second: u32,
}

impl TenantRateLimit {
    /// Disabled when the configured rate is 0.
    pub fn new(config: &ServerConfig) -> Self {
        let limiter = NonZeroU32::new(config.rate_limit_per_sec).map(|rate| {
            let burst = NonZeroU32::new(config.rate_limit_burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
            per_second: config.rate_limit_per_sec,
        }
    }

    /// The sustained rate each tenant may use (0: unlimited).
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes one token from `tenant`'s bucket, or says how long until one is available.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Keyed by an owned String: the map needs its own copy of the key anyway.
        limiter
            .check_key(&tenant.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the buckets of tenants that have refilled completely (they would behave
    /// the same as new ones), so the map holds only recently active tenants.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }
}

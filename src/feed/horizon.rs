//! Watching the feed's horizon. The feed serves only transactions below the cluster's
//! oldest running one, so one transaction left open anywhere in the PostgreSQL cluster
//! stalls every tenant's feed and every destination (they wait, they never skip). This
//! makes such a stall visible: when the horizon has not moved for `stall_after` while
//! committed events wait behind it, the watch names the transaction that holds it, for
//! destination statuses, `/readyz`, the metrics and the feed's `Eventgate-Held-Back`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::store::horizon::{self as store, Holder};

/// A stall as clients see it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HeldBack {
    /// When the horizon last moved.
    pub since: DateTime<Utc>,
    /// How long it has not moved while events wait.
    pub seconds: f64,
    /// The oldest open transaction, if eventgate may see it.
    pub holder: Option<Holder>,
}

#[derive(Clone)]
pub struct HorizonWatch {
    stall_after: Duration,
    state: Arc<Mutex<Watched>>,
}

#[derive(Default)]
struct Watched {
    xmin: u64,
    /// When `xmin` was last seen to change (monotonic, and as wall time for clients).
    advanced: Option<(Instant, DateTime<Utc>)>,
    events_waiting: bool,
    holder: Option<Holder>,
}

impl HorizonWatch {
    pub fn new(stall_after: Duration) -> Self {
        Self {
            stall_after,
            state: Arc::default(),
        }
    }

    /// One look at the horizon; when it is stalled, also at who holds it.
    pub async fn check(&self, pool: &PgPool) -> Result<(), sqlx::Error> {
        let probe = store::probe(pool).await?;
        let stalled_for = {
            let mut state = self.lock();
            if state.advanced.is_none() || state.xmin != probe.xmin {
                state.xmin = probe.xmin;
                state.advanced = Some((Instant::now(), Utc::now()));
            }
            state.events_waiting = probe.events_waiting;
            state
                .advanced
                .map(|(at, _)| at.elapsed())
                .unwrap_or_default()
        };
        let holder = if probe.events_waiting && stalled_for >= self.stall_after {
            store::oldest_transaction(pool).await?
        } else {
            None
        };
        let mut state = self.lock();
        match (&state.holder, &holder) {
            (None, Some(holder)) => tracing::warn!(
                ?holder,
                stalled_secs = stalled_for.as_secs(),
                "the feed's horizon is held back by an open transaction; every feed and destination waits"
            ),
            (Some(_), None) => tracing::info!("the feed's horizon moves again"),
            _ => {}
        }
        state.holder = holder;
        Ok(())
    }

    /// The stall, when the horizon has not moved for `stall_after` while events wait.
    pub fn held_back(&self) -> Option<HeldBack> {
        let state = self.lock();
        let (at, since) = state.advanced?;
        let stalled = state.events_waiting && at.elapsed() >= self.stall_after;
        stalled.then(|| HeldBack {
            since,
            seconds: at.elapsed().as_secs_f64(),
            holder: state.holder.clone(),
        })
    }

    /// Seconds the horizon has not moved while events wait (0 when none wait).
    pub fn held_seconds(&self) -> f64 {
        let state = self.lock();
        match state.advanced {
            Some((at, _)) if state.events_waiting => at.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

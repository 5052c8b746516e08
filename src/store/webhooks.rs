//! Webhook deliveries (a queue with retry state) and attempts.

use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::audit::{self, Action, NewEntry};
use crate::telemetry::trace_context::TraceContext;

/// A message to queue for one destination.
pub struct NewDelivery<'a> {
    pub message_id: &'a str,
    pub event_id: Option<Uuid>,
    pub entity: Option<&'a str>,
    pub entity_id: Option<&'a str>,
    pub change: Option<&'a str>,
    pub payload: &'a str,
    /// The trace context the event carries to each attempt.
    pub trace: Option<&'a TraceContext>,
    /// Replace a not-yet-delivered `Updated` of the same entity (entity format only).
    pub coalesce: bool,
}

/// Queues one message (a re-queued message starts over).
pub async fn queue(
    conn: &mut PgConnection,
    destination: Uuid,
    delivery: &NewDelivery<'_>,
) -> Result<(), sqlx::Error> {
    queue_many(conn, destination, std::slice::from_ref(delivery)).await
}

/// Queues messages in two statements whatever their count. A coalescing message replaces
/// the pending `Updated` of its entity, including an earlier one in `deliveries`.
#[tracing::instrument(skip_all, fields(deliveries = deliveries.len()))]
pub async fn queue_many(
    conn: &mut PgConnection,
    destination: Uuid,
    deliveries: &[NewDelivery<'_>],
) -> Result<(), sqlx::Error> {
    let latest = |i: usize, d: &NewDelivery<'_>| {
        !d.coalesce
            || !deliveries[i + 1..].iter().any(|later| {
                later.coalesce && later.entity == d.entity && later.entity_id == d.entity_id
            })
    };
    let kept: Vec<&NewDelivery<'_>> = deliveries
        .iter()
        .enumerate()
        .filter(|(i, d)| latest(*i, d))
        .map(|(_, d)| d)
        .collect();
    let coalescing: Vec<&NewDelivery<'_>> = kept.iter().copied().filter(|d| d.coalesce).collect();
    if !coalescing.is_empty() {
        let entities: Vec<Option<&str>> = coalescing.iter().map(|d| d.entity).collect();
        let entity_ids: Vec<Option<&str>> = coalescing.iter().map(|d| d.entity_id).collect();
        sqlx::query(
            "DELETE FROM webhook_deliveries
             WHERE destination_id = $1 AND status = 'pending' AND change = 'Updated'
               AND (entity, entity_id) IN (SELECT * FROM UNNEST($2::text[], $3::text[]))",
        )
        .bind(destination)
        .bind(&entities)
        .bind(&entity_ids)
        .execute(&mut *conn)
        .await?;
    }
    if kept.is_empty() {
        return Ok(());
    }
    let message_ids: Vec<&str> = kept.iter().map(|d| d.message_id).collect();
    let event_ids: Vec<Option<Uuid>> = kept.iter().map(|d| d.event_id).collect();
    let entities: Vec<Option<&str>> = kept.iter().map(|d| d.entity).collect();
    let entity_ids: Vec<Option<&str>> = kept.iter().map(|d| d.entity_id).collect();
    let changes: Vec<Option<&str>> = kept.iter().map(|d| d.change).collect();
    let payloads: Vec<&str> = kept.iter().map(|d| d.payload).collect();
    let trace_parents: Vec<Option<&str>> = kept
        .iter()
        .map(|d| d.trace.map(|t| t.traceparent.as_str()))
        .collect();
    let trace_states: Vec<Option<&str>> = kept
        .iter()
        .map(|d| d.trace.and_then(|t| t.tracestate.as_deref()))
        .collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (destination_id, message_id, event_id, entity, entity_id, change, payload,
                                         trace_parent, trace_state)
         SELECT $1, * FROM UNNEST($2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::text[])
         ON CONFLICT (destination_id, message_id) DO UPDATE
             SET status = 'pending', attempts = 0, next_attempt_at = now(),
                 payload = EXCLUDED.payload, trace_parent = EXCLUDED.trace_parent,
                 trace_state = EXCLUDED.trace_state, updated = now()",
    )
    .bind(destination)
    .bind(&message_ids)
    .bind(&event_ids)
    .bind(&entities)
    .bind(&entity_ids)
    .bind(&changes)
    .bind(&payloads)
    .bind(&trace_parents)
    .bind(&trace_states)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub message_id: String,
    pub payload: String,
    pub attempts: i32,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub trace_parent: Option<String>,
    pub trace_state: Option<String>,
}

impl DueDelivery {
    /// The trace context its event carries.
    pub fn trace(&self) -> Option<TraceContext> {
        TraceContext::from_stored(self.trace_parent.clone(), self.trace_state.clone())
    }

    /// The entity this delivery is about (lifecycle messages are about none).
    pub fn entity_key(&self) -> Option<(String, String)> {
        self.entity.clone().zip(self.entity_id.clone())
    }
}

/// Which deliveries to pick up.
pub struct DueQuery<'a> {
    pub destination: Uuid,
    /// Deliveries being sent: never picked up twice.
    pub in_flight: &'a [i64],
    /// A disabled destination sends only its lifecycle messages.
    pub lifecycle_only: bool,
    /// Entity order: a delivery waits while an earlier one of its entity is pending (due
    /// or not, in flight included) or failed, or while one of its entity is in flight.
    pub ordered: bool,
    /// Entities with a delivery in flight (ordered destinations).
    pub busy_entities: &'a [(String, String)],
    pub limit: i64,
}

/// Pending deliveries whose time has come, oldest first, skipping those in flight (and,
/// for an ordered destination, those behind an earlier delivery of their entity).
#[tracing::instrument(skip_all)]
pub async fn due(
    db: impl PgExecutor<'_>,
    query: &DueQuery<'_>,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    let (busy_entities, busy_ids): (Vec<&str>, Vec<&str>) = query
        .busy_entities
        .iter()
        .map(|(entity, id)| (entity.as_str(), id.as_str()))
        .unzip();
    // Queue order (`id`) is feed order: events are queued in feed order, and a coalesced
    // `Updated` replaces its predecessor at the end, behind every earlier event.
    sqlx::query_as(
        "SELECT d.id, d.message_id, d.payload, d.attempts, d.entity, d.entity_id,
                d.trace_parent, d.trace_state
         FROM webhook_deliveries d
         WHERE d.destination_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= now()
           AND NOT (d.id = ANY ($2)) AND (NOT $3 OR d.event_id IS NULL)
           AND (NOT $5 OR d.entity IS NULL OR (
                NOT EXISTS (SELECT 1 FROM webhook_deliveries e
                            WHERE e.destination_id = d.destination_id AND e.entity = d.entity
                              AND e.entity_id = d.entity_id AND e.id < d.id
                              AND e.status IN ('pending', 'failed'))
                AND (d.entity, d.entity_id) NOT IN (SELECT * FROM UNNEST($6::text[], $7::text[]))))
         ORDER BY d.next_attempt_at, d.id LIMIT $4",
    )
    .bind(query.destination)
    .bind(query.in_flight)
    .bind(query.lifecycle_only)
    .bind(query.limit)
    .bind(query.ordered)
    .bind(&busy_entities)
    .bind(&busy_ids)
    .fetch_all(db)
    .await
}

/// Disables an enabled destination with the reason shown in its status, and records that
/// the server did so in the audit log (same transaction); its tenant when it was enabled.
#[tracing::instrument(skip_all)]
pub async fn disable(
    conn: &mut PgConnection,
    destination: Uuid,
    reason: &str,
) -> Result<Option<String>, sqlx::Error> {
    let tenant: Option<String> = sqlx::query_scalar(
        "UPDATE destinations SET enabled = false, disabled_reason = $2, updated = now()
         WHERE id = $1 AND enabled RETURNING tenant_id",
    )
    .bind(destination)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(tenant) = tenant else {
        return Ok(None);
    };
    let target = destination.to_string();
    let changes = serde_json::json!({"reason": reason});
    let entry = NewEntry {
        actor_key_id: None,
        actor_role: "system",
        tenant: Some(&tenant),
        action: Action::DestinationDisabled,
        target: Some(&target),
        request_id: None,
        changes: &changes,
    };
    audit::insert(conn, &entry).await?;
    Ok(Some(tenant))
}

/// Marks a heartbeat as queued now; `false` if another was queued within `interval`.
#[tracing::instrument(skip_all)]
pub async fn claim_heartbeat(
    conn: &mut PgConnection,
    destination: Uuid,
    interval_secs: f64,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE destinations SET last_heartbeat_at = now()
         WHERE id = $1 AND (last_heartbeat_at IS NULL
                            OR last_heartbeat_at <= now() - make_interval(secs => $2))",
    )
    .bind(destination)
    .bind(interval_secs)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Puts one event's delivery back in the queue for an immediate attempt.
#[tracing::instrument(skip_all)]
pub async fn retry_now(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    event_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(), updated = now()
         WHERE destination_id = $1 AND event_id = $2",
    )
    .bind(destination)
    .bind(event_id)
    .execute(db)
    .await?;
    Ok(result.rows_affected() > 0)
}

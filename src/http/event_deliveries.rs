//! `GET /events/{id}/deliveries` (client key): where one event went. For each of the
//! tenant's destinations whose types take it: whether it was handed over, and for a
//! webhook its delivery and the attempts made, with what each sent and got back.

use std::collections::HashMap;

use aide::axum::ApiRouter;
use aide::axum::routing::get_with;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::destination_view::kind_of;
use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::delivery::destination::{Kind, expand_types};
use crate::error::{ApiError, ApiPath};
use crate::feed::cursor::Cursor;
use crate::http::openapi::Problems;
use crate::store;
use crate::store::webhook_attempts::AttemptRow;

/// The most attempts shown per destination (the latest ones).
const MAX_ATTEMPTS: i64 = 50;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new().api_route(
        "/events/{id}/deliveries",
        get_with(event_deliveries, |op| {
            op.id("getEventDeliveries")
                .summary("Where one event went: each destination that takes its type")
                .description(
                    "Bus destinations (AMQP, MQTT, Kafka) are `handed_over` once their \
                     position is at or past the event, `waiting` before. Webhooks show their \
                     delivery (`pending`, `delivered`, `failed`) and its latest 50 attempts; \
                     `not_sent` when the position is past the event and there is no delivery \
                     (the destination started after it, or the record was purged).",
                )
                .tag("client")
                .problems(&[404])
        }),
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EventPath {
    id: Uuid,
}

/// Where one event went.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct EventDeliveries {
    event_id: Uuid,
    /// `subject.action`
    #[serde(rename = "type")]
    event_type: String,
    /// The event's place in the feed: `GET /events/?after=` this cursor starts after it.
    #[schemars(with = "Cursor")]
    position: String,
    /// Every destination whose types take the event, oldest first.
    destinations: Vec<DestinationDelivery>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct DestinationDelivery {
    destination: Uuid,
    kind: Kind,
    enabled: bool,
    state: DeliveryState,
    /// Webhooks: attempts made so far (0 for the buses).
    attempt_count: i32,
    /// Webhooks, while `pending`: when the next attempt is due.
    next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Webhooks: the latest attempts, oldest first (empty for the buses).
    attempts: Vec<AttemptRow>,
}

#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum DeliveryState {
    /// A bus destination's position is at or past the event: the broker confirmed it (or
    /// the destination started after it).
    HandedOver,
    /// Not handed over yet: the destination's position is before the event.
    Waiting,
    /// A webhook delivery waiting for its next attempt.
    Pending,
    /// A webhook delivery the endpoint answered 2xx.
    Delivered,
    /// A webhook delivery that ran out of attempts (it can be retried).
    Failed,
    /// A webhook's position is past the event with no delivery of it: the destination
    /// started after it, or the delivery's record was purged.
    NotSent,
}

async fn event_deliveries(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(EventPath { id }): ApiPath<EventPath>,
) -> Result<Json<EventDeliveries>, ApiError> {
    let event = store::event_deliveries::place(&state.pool, &tenant, id)
        .await?
        .ok_or(ApiError::NotFound { resource: "event" })?;
    let mut takers = Vec::new();
    for row in store::destinations::list(&state.pool, &state.keyring, Some(&tenant)).await? {
        let types = expand_types(&row.types)?;
        if types.is_empty() || types.contains(&event.event_type) {
            takers.push(row);
        }
    }
    let message_id = id.to_string();
    let webhooks: Vec<Uuid> = takers
        .iter()
        .filter(|row| row.kind == Kind::Webhook.as_str())
        .map(|row| row.id)
        .collect();
    let mut deliveries: HashMap<Uuid, _> =
        store::event_deliveries::webhook_deliveries(&state.pool, &webhooks, &message_id)
            .await?
            .into_iter()
            .map(|delivery| (delivery.destination_id, delivery))
            .collect();
    let mut attempts: HashMap<Uuid, Vec<AttemptRow>> = HashMap::new();
    for found in
        store::event_deliveries::webhook_attempts(&state.pool, &webhooks, &message_id, MAX_ATTEMPTS)
            .await?
    {
        attempts
            .entry(found.destination_id)
            .or_default()
            .push(found.attempt);
    }
    let destinations = takers
        .into_iter()
        .map(|row| {
            let kind = kind_of(&row)?;
            let passed = row.delivered() >= event.position;
            let delivery = deliveries.remove(&row.id);
            let state = match (&delivery, kind, passed) {
                (Some(delivery), _, _) => match delivery.status.as_str() {
                    "delivered" => DeliveryState::Delivered,
                    "failed" => DeliveryState::Failed,
                    _ => DeliveryState::Pending,
                },
                (None, Kind::Webhook, true) => DeliveryState::NotSent,
                (None, _, true) => DeliveryState::HandedOver,
                (None, _, false) => DeliveryState::Waiting,
            };
            Ok(DestinationDelivery {
                destination: row.id,
                kind,
                enabled: row.enabled,
                state,
                attempt_count: delivery.as_ref().map_or(0, |d| d.attempts),
                next_attempt_at: delivery
                    .filter(|d| d.status == "pending")
                    .map(|d| d.next_attempt_at),
                attempts: attempts.remove(&row.id).unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(EventDeliveries {
        event_id: id,
        event_type: event.event_type,
        position: event.position.encode(),
        destinations,
    }))
}

//! Telling someone when delivery breaks. A destination that has failed for
//! EVENTGATE_DESTINATION_FAILING_AFTER_SECS gets a `destinations.failing` event, one that
//! was reported failing and delivers again a `destinations.recovered`, and one that stops
//! (eventgate disabled it, or a key did) a `destinations.disabled`. Each is an event in the
//! tenant's feed, appended in the transaction that records the change, so it is pushed to
//! the tenant's destinations like any other event; the platform reads every tenant's in
//! `GET /platform/delivery-events`.

use std::time::Duration;

use chrono::Utc;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::catalogue::ids::EntityId;
use crate::catalogue::payloads::{
    DestinationDisabled, DestinationFailing, DestinationRecovered, DisabledBy,
};
use crate::catalogue::{Change, Entity, Envelope, EventData, EventType};
use crate::delivery::destination::Kind;
use crate::store::delivery_health::{self as store, Reported};
use crate::store::destinations::DestinationRow;
use crate::store::outbox;

fn entity_id(id: Uuid) -> EntityId {
    EntityId::from_uuid(id)
}

#[derive(Debug, thiserror::Error)]
#[error("stored destination has unknown kind '{0}'")]
struct UnknownKind(String);

/// The kind as stored (the table's CHECK admits only known kinds).
fn kind(stored: &str) -> Result<Kind, sqlx::Error> {
    Kind::parse(stored).ok_or_else(|| sqlx::Error::Decode(Box::new(UnknownKind(stored.to_owned()))))
}

async fn append(
    conn: &mut PgConnection,
    tenant: &str,
    ty: EventType,
    data: &EventData,
) -> Result<(), sqlx::Error> {
    let envelope = Envelope::new(ty, data);
    outbox::append(
        conn,
        tenant,
        ty,
        Entity::Destination,
        Change::Updated,
        &envelope,
        // eventgate's own notice: no request's trace to carry on.
        None,
    )
    .await?;
    Ok(())
}

/// Reports a failure or a recovery of `destination` (as the driver knows it at the start
/// of its step) if one is due; `true` when it wrote (the row changed). Cheap when nothing
/// is due: it only writes on a transition.
pub async fn observe(
    pool: &PgPool,
    destination: &DestinationRow,
    failing_after: Duration,
) -> Result<bool, sqlx::Error> {
    let id = destination.id;
    let failing_long_enough = destination
        .failing_since
        .is_some_and(|since| (Utc::now() - since).to_std().unwrap_or_default() >= failing_after);
    if destination.enabled && failing_long_enough && destination.failing_reported_since.is_none() {
        let mut tx = pool.begin().await?;
        outbox::begin_writing(&mut tx, &destination.tenant_id).await?;
        if let Some(failing) = store::mark_failing(&mut tx, id, failing_after.as_secs_f64()).await?
        {
            let data = EventData::DestinationFailing(DestinationFailing {
                id: entity_id(id),
                kind: kind(&failing.kind)?,
                error: failing.last_error.clone().unwrap_or_default(),
                failing_since: failing.since,
            });
            append(
                &mut tx,
                &failing.tenant_id,
                EventType::DestinationsFailing,
                &data,
            )
            .await?;
        }
        tx.commit().await?;
        return Ok(true);
    } else if destination.failing_since.is_none() && destination.failing_reported_since.is_some() {
        let mut tx = pool.begin().await?;
        outbox::begin_writing(&mut tx, &destination.tenant_id).await?;
        if let Some(Reported {
            tenant_id,
            kind: stored_kind,
            since,
            ..
        }) = store::mark_recovered(&mut tx, id).await?
        {
            let data = EventData::DestinationRecovered(DestinationRecovered {
                id: entity_id(id),
                kind: kind(&stored_kind)?,
                failing_since: since,
            });
            append(&mut tx, &tenant_id, EventType::DestinationsRecovered, &data).await?;
        }
        tx.commit().await?;
        return Ok(true);
    }
    Ok(false)
}

/// Reports that a destination was disabled, in the transaction that disabled it (which
/// holds its tenant's writers' lock from its start: `outbox::begin_writing`).
pub async fn disabled(
    conn: &mut PgConnection,
    tenant: &str,
    id: Uuid,
    destination_kind: Kind,
    by: DisabledBy,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    store::forget_failing(conn, id).await?;
    let data = EventData::DestinationDisabled(DestinationDisabled {
        id: entity_id(id),
        kind: destination_kind,
        by,
        reason: reason.map(str::to_owned),
    });
    append(conn, tenant, EventType::DestinationsDisabled, &data).await
}

//! `/snapshots` (client key): onboarding and resync without gaps. `POST /snapshots` copies
//! the tenant's read models (portfolios, optimizations, deposits) as one database snapshot
//! saw them and answers with the feed cursor that follows exactly that snapshot:
//! `GET /events/?after=<feed_cursor>` yields every event the snapshot does not contain and
//! none that it does. The copy is read a page at a time (`GET /snapshots/{id}/{model}`),
//! every page from the same snapshot, until it expires (EVENTGATE_SNAPSHOT_TTL_SECS).
//!
//! Why a copy and not an exported snapshot held open: an open transaction would hold back
//! every tenant's feed (the feed serves only what is older than the oldest running
//! transaction). Reading the models runs in a read-only transaction, which holds nothing
//! back; the copy is written in small statements beside it.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::PgConnection;
use uuid::Uuid;

use super::deposits::DepositView;
use super::read_model::{OptimizationView, PortfolioView, group_funding};
use crate::app::AppState;
use crate::auth::ClientTenant;
use crate::catalogue::ids::EntityId;
use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::feed::cursor::{Cursor, Position};
use crate::http::openapi::Problems;
use crate::http::pagination::Limit;
use crate::store::snapshots::{self as store, Counts, SnapshotRow};
use crate::store::{deposits, read_model};

/// Rows read and copied per statement.
const COPY_BATCH: i64 = 1000;

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/snapshots",
            post_with(take, |op| {
                op.id("createSnapshot")
                    .summary("Snapshot the tenant's state, with the feed cursor that follows it")
                    .description(
                        "Copies the tenant's portfolios, optimizations and deposits as one \
                         database snapshot saw them. Read them with GET \
                         /snapshots/{id}/{model}, then follow GET /events/?after=<feed_cursor>: \
                         it yields exactly the events the snapshot does not contain. A tenant \
                         holds at most EVENTGATE_SNAPSHOTS_PER_TENANT unexpired snapshots \
                         (429 beyond); each expires after EVENTGATE_SNAPSHOT_TTL_SECS.",
                    )
                    .tag("client")
                    .response::<201, Json<SnapshotView>>()
                    .problems(&[409, 429])
            }),
        )
        .api_route(
            "/snapshots/{id}",
            get_with(read, |op| {
                op.id("getSnapshot")
                    .summary("A snapshot: its feed cursor, counts and expiry")
                    .tag("client")
                    .problems(&[404, 410])
            }),
        )
        .api_route(
            "/snapshots/{id}/{model}",
            get_with(items, |op| {
                op.id("listSnapshotItems")
                    .summary("One model of a snapshot, by id, a page at a time")
                    .description(
                        "Every page carries the snapshot's `feed_cursor`, the same on each. \
                         Items are shown as GET /portfolios/{id}, /optimizations/{id} and \
                         /deposits/{id} showed them at the snapshot. An expired snapshot is 410.",
                    )
                    .tag("client")
                    .problems(&[404, 410])
            }),
        )
}

/// How many items of each model a snapshot holds.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct CountsView {
    portfolios: i64,
    optimizations: i64,
    deposits: i64,
}

/// A snapshot of the tenant's read models.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct SnapshotView {
    id: Uuid,
    /// Follow the feed from here (`GET /events/?after=`): exactly the events the snapshot
    /// does not contain.
    #[schemars(with = "Cursor")]
    feed_cursor: String,
    counts: CountsView,
    created: DateTime<Utc>,
    /// After this the snapshot's pages are 410 (the feed cursor stays valid).
    expires_at: DateTime<Utc>,
}

impl From<SnapshotRow> for SnapshotView {
    fn from(row: SnapshotRow) -> Self {
        Self {
            id: row.id,
            feed_cursor: Position::horizon(row.cursor_tx.0).encode(),
            counts: CountsView {
                portfolios: row.portfolios,
                optimizations: row.optimizations,
                deposits: row.deposits,
            },
            created: row.created,
            expires_at: row.expires_at,
        }
    }
}

/// A model a snapshot holds.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Model {
    Portfolios,
    Optimizations,
    Deposits,
}

impl Model {
    fn as_str(self) -> &'static str {
        match self {
            Self::Portfolios => "portfolios",
            Self::Optimizations => "optimizations",
            Self::Deposits => "deposits",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SnapshotPath {
    id: Uuid,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ItemsPath {
    id: Uuid,
    model: Model,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ItemsParams {
    /// The `next_cursor` of the previous page (an item's id): the page starts after it.
    after: Option<EntityId>,
    limit: Option<Limit>,
}

/// One page of a snapshot's model.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct ItemPage {
    /// Portfolios, optimizations or deposits, as their own resources show them.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    data: Vec<Box<RawValue>>,
    /// Pass as `after` for the next page; null when there has been no item yet.
    next_cursor: Option<String>,
    has_more: bool,
    /// The snapshot's feed cursor, the same on every page.
    #[schemars(with = "Cursor")]
    feed_cursor: String,
}

/// Serializes `items` as `(key, body)` for the copy.
fn bodies<T: Serialize>(
    items: impl IntoIterator<Item = (String, T)>,
) -> Result<Vec<(String, String)>, ApiError> {
    items
        .into_iter()
        .map(|(key, item)| {
            Ok((
                key,
                serde_json::to_string(&item).map_err(ApiError::internal)?,
            ))
        })
        .collect()
}

/// Copies one batch of one model and returns its last key (`None` when it was empty).
async fn copy(
    state: &AppState,
    id: Uuid,
    model: Model,
    batch: Vec<(String, String)>,
) -> Result<Option<String>, ApiError> {
    let last = batch.last().map(|(key, _)| key.clone());
    if !batch.is_empty() {
        store::insert_items(&state.pool, id, model.as_str(), &batch).await?;
    }
    Ok(last)
}

/// Copies every item of the tenant's read models as `reader`'s snapshot sees them.
async fn copy_all(
    state: &AppState,
    reader: &mut PgConnection,
    tenant: &str,
    id: Uuid,
) -> Result<Counts, ApiError> {
    let mut counts = Counts::default();
    let mut after: Option<String> = None;
    loop {
        let rows =
            read_model::list_portfolios(&mut *reader, tenant, after.as_deref(), COPY_BATCH).await?;
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let mut funding = group_funding(read_model::funding_of(&mut *reader, tenant, &ids).await?);
        counts.portfolios += rows.len() as i64;
        let views = rows.into_iter().map(|row| {
            let funded = funding.remove(&row.id).unwrap_or_default();
            (row.id.clone(), PortfolioView::new(row, funded))
        });
        after = match copy(state, id, Model::Portfolios, bodies(views)?).await? {
            Some(last) => Some(last),
            None => break,
        };
    }
    let mut after: Option<String> = None;
    loop {
        let rows =
            read_model::list_optimizations(&mut *reader, tenant, after.as_deref(), COPY_BATCH)
                .await?;
        counts.optimizations += rows.len() as i64;
        let views = rows
            .into_iter()
            .map(|row| (row.id.clone(), OptimizationView::from(row)));
        after = match copy(state, id, Model::Optimizations, bodies(views)?).await? {
            Some(last) => Some(last),
            None => break,
        };
    }
    let mut after: Option<Uuid> = None;
    loop {
        let rows = deposits::list(&mut *reader, tenant, after, COPY_BATCH).await?;
        counts.deposits += rows.len() as i64;
        let last = rows.last().map(|row| row.id);
        let views = rows
            .into_iter()
            .map(|row| (row.id.to_string(), DepositView::from(row)));
        copy(state, id, Model::Deposits, bodies(views)?).await?;
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    Ok(counts)
}

async fn take(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<SnapshotView>), ApiError> {
    let limit = state.config.snapshots_per_tenant;
    let id = Uuid::now_v7();
    let expires_at = Utc::now() + state.config.snapshot_ttl();
    if !store::reserve(&state.pool, id, &tenant, limit, expires_at).await? {
        return Err(ApiError::TooManyRequests {
            detail: format!(
                "this tenant already holds {limit} unexpired snapshots; use one of them or wait until one expires"
            ),
            retry_after_secs: 60,
        });
    }
    match copy_snapshot(&state, &tenant, id).await {
        Ok(row) => Ok((StatusCode::CREATED, Json(row.into()))),
        Err(err) => {
            // The place it reserved is not held for an hour by a snapshot that never was.
            if let Err(release) = store::release(&state.pool, id).await {
                tracing::warn!(error = %release, "cannot release a failed snapshot's place");
            }
            Err(err)
        }
    }
}

/// Pins the tenant's snapshot and copies it into the reserved snapshot `id`.
async fn copy_snapshot(state: &AppState, tenant: &str, id: Uuid) -> Result<SnapshotRow, ApiError> {
    let (mut reader, xmax) = store::pin(&state.pool, tenant, state.config.idempotency_wait())
        .await
        .map_err(|err| {
            if crate::store::is_lock_timeout(&err) {
                ApiError::conflict(
                    "a write of this tenant is taking longer than the snapshot may wait for it; retry",
                )
            } else {
                err.into()
            }
        })?;
    let counts = copy_all(state, &mut reader, tenant, id).await?;
    reader.commit().await?;
    Ok(store::complete(&state.pool, id, xmax, counts).await?)
}

/// The tenant's snapshot `id`: 404 when there is none, 410 once it expired.
async fn find(state: &AppState, tenant: &str, id: Uuid) -> Result<SnapshotRow, ApiError> {
    let row = store::get(&state.pool, tenant, id)
        .await?
        .ok_or(ApiError::NotFound {
            resource: "snapshot",
        })?;
    if row.expires_at <= Utc::now() {
        return Err(ApiError::Gone {
            detail: format!(
                "snapshot {id} expired at {}; take a new one (its feed cursor still works)",
                row.expires_at
            ),
        });
    }
    Ok(row)
}

async fn read(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(SnapshotPath { id }): ApiPath<SnapshotPath>,
) -> Result<Json<SnapshotView>, ApiError> {
    Ok(Json(find(&state, &tenant, id).await?.into()))
}

async fn items(
    ClientTenant(tenant): ClientTenant,
    State(state): State<AppState>,
    ApiPath(ItemsPath { id, model }): ApiPath<ItemsPath>,
    ApiQuery(params): ApiQuery<ItemsParams>,
) -> Result<Json<ItemPage>, ApiError> {
    let row = find(&state, &tenant, id).await?;
    let limit = Limit::or_default(params.limit);
    let after = params.after.as_ref().map(EntityId::as_str);
    let mut rows = store::items(&state.pool, id, model.as_str(), after, limit + 1).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = rows
        .last()
        .map(|(key, _)| key.clone())
        .or_else(|| after.map(str::to_owned));
    let data = rows
        .into_iter()
        .map(|(_, body)| RawValue::from_string(body).map_err(ApiError::internal))
        .collect::<Result<_, _>>()?;
    Ok(Json(ItemPage {
        data,
        next_cursor,
        has_more,
        feed_cursor: Position::horizon(row.cursor_tx.0).encode(),
    }))
}

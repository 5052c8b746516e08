//! Webhook attempts: recording outcomes (many per transaction) and listing them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// The outcome of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery: i64,
    pub message_id: String,
    pub succeeded: bool,
    pub response_status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    /// The request's headers as shown to the tenant (`None`: nothing was sent).
    pub request_headers: Option<BTreeMap<String, String>>,
    /// `None`: no further attempt (delivered, or failed for good).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl AttemptRecord {
    fn delivery_status(&self) -> &'static str {
        match (self.succeeded, self.next_attempt_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        }
    }
}

/// Records attempts of one destination, in their order, and moves their deliveries on:
/// three statements whatever the count, so a busy destination pays one commit per batch.
#[tracing::instrument(skip_all, fields(attempts = records.len()))]
pub async fn record_attempts(
    conn: &mut PgConnection,
    destination: Uuid,
    records: &[AttemptRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let column =
        |f: fn(&AttemptRecord) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
    let message_ids = column(|r| Some(r.message_id.clone()));
    let statuses = column(|r| Some(if r.succeeded { "succeeded" } else { "failed" }.to_owned()));
    let errors = column(|r| r.error.clone());
    let excerpts = column(|r| r.excerpt.clone());
    let response_statuses: Vec<Option<i32>> = records.iter().map(|r| r.response_status).collect();
    let durations: Vec<i32> = records.iter().map(|r| r.duration_ms).collect();
    let request_headers: Vec<Option<serde_json::Value>> = records
        .iter()
        .map(|r| r.request_headers.as_ref().map(|h| serde_json::json!(h)))
        .collect();
    sqlx::query(
        "INSERT INTO webhook_attempts (destination_id, message_id, status, response_status, duration_ms, error, response_excerpt, request_headers)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::jsonb[])",
    )
    .bind(destination)
    .bind(&message_ids)
    .bind(&statuses)
    .bind(&response_statuses)
    .bind(&durations)
    .bind(&errors)
    .bind(&excerpts)
    .bind(&request_headers)
    .execute(&mut *conn)
    .await?;

    let ids: Vec<i64> = records.iter().map(|r| r.delivery).collect();
    let delivery_statuses: Vec<&str> = records.iter().map(AttemptRecord::delivery_status).collect();
    let next: Vec<Option<DateTime<Utc>>> = records.iter().map(|r| r.next_attempt_at).collect();
    sqlx::query(
        "UPDATE webhook_deliveries d
         SET status = u.status, attempts = d.attempts + 1,
             next_attempt_at = coalesce(u.next_at, d.next_attempt_at), updated = now()
         FROM UNNEST($1::bigint[], $2::text[], $3::timestamptz[]) AS u (id, status, next_at)
         WHERE d.id = u.id",
    )
    .bind(&ids)
    .bind(&delivery_statuses)
    .bind(&next)
    .execute(&mut *conn)
    .await?;

    // A success anywhere in the batch means the endpoint works: it is not failing
    // continuously. The error shown is the latest one, unless a success came after it.
    let any_success = records.iter().any(|r| r.succeeded);
    let last_error = records
        .last()
        .filter(|r| !r.succeeded)
        .and_then(|r| r.error.as_deref().or(Some("attempt failed")));
    sqlx::query(
        "UPDATE destinations SET
             last_success_at = CASE WHEN $2 THEN now() ELSE last_success_at END,
             last_error = $3,
             last_error_at = CASE WHEN $3::text IS NULL THEN last_error_at ELSE now() END,
             failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(failing_since, now()) END
         WHERE id = $1",
    )
    .bind(destination)
    .bind(any_success)
    .bind(last_error)
    .execute(conn)
    .await?;
    Ok(())
}

/// One webhook delivery attempt, as stored and shown.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: i64,
    /// The webhook-id: the event id, or a lifecycle message's own id.
    pub message_id: String,
    pub attempted_at: DateTime<Utc>,
    /// `succeeded` or `failed`.
    pub status: String,
    /// The endpoint's HTTP status; null when no answer came.
    pub response_status: Option<i32>,
    pub duration_ms: i32,
    pub error: Option<String>,
    /// The first 512 bytes of the response body.
    pub response_excerpt: Option<String>,
    /// The headers the request was sent with, the signature included; static header
    /// values and bearer tokens as `***`. Null when nothing was sent (the address policy
    /// or the OAuth2 token endpoint stopped it).
    #[sqlx(json(nullable))]
    pub request_headers: Option<BTreeMap<String, String>>,
}

#[tracing::instrument(skip_all)]
pub async fn attempts(
    db: impl PgExecutor<'_>,
    destination: Uuid,
    after: Option<i64>,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<AttemptRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, message_id, attempted_at, status, response_status, duration_ms, error, response_excerpt,
                request_headers
         FROM webhook_attempts
         WHERE destination_id = $1 AND ($2::bigint IS NULL OR id > $2) AND ($3::text IS NULL OR status = $3)
         ORDER BY id LIMIT $4",
    )
    .bind(destination)
    .bind(after)
    .bind(status)
    .bind(limit)
    .fetch_all(db)
    .await
}

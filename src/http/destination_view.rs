//! How a destination is shown: its settings with credentials redacted, and its delivery
//! status (lag, errors, a gap left by retention, a held-back horizon), read for many
//! destinations at once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::app::AppState;
use crate::delivery::destination::{
    AmqpConfig, KafkaConfig, Kind, MqttConfig, SinkConfig, WebhookConfig, expand_types,
};
use crate::delivery::webhook::signing;
use crate::error::ApiError;
use crate::feed::cursor::Cursor;
use crate::feed::horizon::HeldBack;
use crate::store::destinations::{self as store, DeliveryStatus, DestinationRow, StatusQuery};

#[derive(Debug, thiserror::Error)]
#[error("stored destination has unknown kind '{0}'")]
pub(super) struct UnknownKind(pub String);

pub(super) fn kind_of(row: &DestinationRow) -> Result<Kind, ApiError> {
    Kind::parse(&row.kind).ok_or_else(|| ApiError::internal(UnknownKind(row.kind.clone())))
}

pub(super) fn take_object(body: Value) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::UnprocessableBody {
            detail: "the body must be a JSON object".into(),
        }),
    }
}

/// A destination: where a tenant's events go, and how its delivery stands.
#[derive(Debug, Serialize)]
pub struct DestinationView {
    pub id: Uuid,
    pub tenant: String,
    /// `kind` and its settings; URLs with their password shown as `***`.
    #[serde(flatten)]
    pub settings: ShownSettings,
    /// Event types delivered (`subject.action` or `subject.*`); all when empty.
    pub types: Vec<String>,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub status: StatusView,
    /// Webhooks: the signing secret, only in the answer to creation and to a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// After a rotation: the old secret signs beside the new one until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    /// Webhooks signed with ed25519: the `whpk_` public key receivers verify with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// During a rotation: the old key's public key, which still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_public_key: Option<String>,
}

/// A destination's settings by kind.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ShownSettings {
    Amqp(AmqpConfig),
    Mqtt(MqttConfig),
    Webhook(WebhookConfig),
    Kafka(KafkaConfig),
}

impl schemars::JsonSchema for DestinationView {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Destination".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        <DestinationDoc as schemars::JsonSchema>::json_schema(generator)
    }
}

/// A destination, documented as one whole object per kind (client generators make a model
/// of each; the server writes [`DestinationView`], the same JSON).
#[derive(schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(dead_code)]
enum DestinationDoc {
    #[schemars(title = "AmqpDestination")]
    Amqp(Shown<AmqpConfig>),
    #[schemars(title = "MqttDestination")]
    Mqtt(Shown<MqttConfig>),
    #[schemars(title = "WebhookDestination")]
    Webhook(Shown<WebhookConfig>),
    #[schemars(title = "KafkaDestination")]
    Kafka(Shown<KafkaConfig>),
}

/// A destination of one kind: its settings, and the fields every kind has.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct Shown<Settings> {
    id: Uuid,
    tenant: String,
    #[serde(flatten)]
    settings: Settings,
    /// Event types delivered (`subject.action` or `subject.*`); all when empty.
    types: Vec<String>,
    enabled: bool,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
    status: StatusView,
    /// Webhooks: the signing secret, only in the answer to creation and to a rotation.
    secret: Option<String>,
    /// After a rotation: the old secret signs beside the new one until then.
    previous_secret_valid_until: Option<DateTime<Utc>>,
    /// Webhooks signed with ed25519: the `whpk_` public key receivers verify with.
    public_key: Option<String>,
    /// During a rotation: the old key's public key, which still signs.
    previous_public_key: Option<String>,
}

impl ShownSettings {
    /// `config` with its credentials replaced.
    fn redacted(config: SinkConfig) -> Self {
        match config.into_redacted() {
            SinkConfig::Amqp(c) => Self::Amqp(c),
            SinkConfig::Mqtt(c) => Self::Mqtt(c),
            SinkConfig::Webhook(c) => Self::Webhook(c),
            SinkConfig::Kafka(c) => Self::Kafka(c),
        }
    }
}

/// How a destination's delivery stands.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct StatusView {
    /// Everything up to this feed position is handed over.
    #[schemars(with = "Cursor")]
    pub delivered_through: String,
    /// Events of its types after `delivered_through`.
    pub lag: i64,
    /// Set when its tenant's feed was purged past its position (it was disabled
    /// meanwhile): the events in the range may be lost, and nothing is delivered until a
    /// replay.
    pub gap: Option<Gap>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Set while events wait because an open transaction in the PostgreSQL cluster holds
    /// the feed back: names it.
    pub held_back_by: Option<HeldBack>,
    /// Webhooks: deliveries queued and not yet answered 2xx (0 for the buses).
    pub pending_deliveries: i64,
    /// Webhooks: deliveries that ran out of attempts, retryable (0 for the buses).
    pub failed_deliveries: i64,
    /// Webhooks: why it was disabled (410, continuous failure).
    pub disabled_reason: Option<String>,
}

/// Feed positions after `after` through `through` may be gone.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Gap {
    #[schemars(with = "Cursor")]
    pub after: String,
    #[schemars(with = "Cursor")]
    pub through: String,
}

/// The client's view of one destination.
pub(super) async fn view(
    state: &AppState,
    row: DestinationRow,
) -> Result<DestinationView, ApiError> {
    let types = expand_types(&row.types)?;
    let mut statuses = store::statuses(&state.pool, &[StatusQuery::of(&row, &types)]).await?;
    let status = statuses.remove(&row.id).unwrap_or_default();
    shown(row, &status, state.horizon.held_back().as_ref())
}

/// The client's view of each of `rows`, their statuses read in one statement.
pub(super) async fn views(
    state: &AppState,
    rows: Vec<DestinationRow>,
) -> Result<Vec<DestinationView>, ApiError> {
    let types = rows
        .iter()
        .map(|row| expand_types(&row.types))
        .collect::<Result<Vec<_>, _>>()?;
    let queries: Vec<StatusQuery<'_>> = rows
        .iter()
        .zip(&types)
        .map(|(row, types)| StatusQuery::of(row, types))
        .collect();
    let mut statuses = store::statuses(&state.pool, &queries).await?;
    let held = state.horizon.held_back();
    rows.into_iter()
        .map(|row| {
            let status = statuses.remove(&row.id).unwrap_or_default();
            shown(row, &status, held.as_ref())
        })
        .collect()
}

fn shown(
    row: DestinationRow,
    status: &DeliveryStatus,
    held: Option<&HeldBack>,
) -> Result<DestinationView, ApiError> {
    let kind = kind_of(&row)?;
    let config = SinkConfig::stored(kind, row.config.clone())?;
    let delivered = row.delivered();
    let public_key = row.secret.as_deref().and_then(signing::public_key);
    let previous_public_key = row.previous_key().and_then(signing::public_key);
    let gap = status
        .purged_through
        .filter(|purged| delivered < *purged)
        .map(|purged| Gap {
            after: delivered.encode(),
            through: purged.encode(),
        });
    Ok(DestinationView {
        id: row.id,
        tenant: row.tenant_id,
        settings: ShownSettings::redacted(config),
        types: row.types,
        enabled: row.enabled,
        created: row.created,
        updated: row.updated,
        status: StatusView {
            delivered_through: delivered.encode(),
            lag: status.lag,
            gap,
            last_error: row.last_error,
            last_error_at: row.last_error_at,
            failing_since: row.failing_since,
            last_success_at: row.last_success_at,
            held_back_by: held.filter(|_| status.lag > 0).cloned(),
            pending_deliveries: status.pending_deliveries,
            failed_deliveries: status.failed_deliveries,
            disabled_reason: row.disabled_reason,
        },
        secret: None,
        previous_secret_valid_until: None,
        public_key,
        previous_public_key,
    })
}

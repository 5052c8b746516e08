//! `/destinations`: where a tenant's events are pushed. A client key manages its own
//! tenant's; a platform key may manage any tenant's (naming it with `tenant` on create).
//! Broker credentials are never returned: URLs come back with the password replaced.

use aide::axum::ApiRouter;
use aide::axum::routing::{get_with, post_with};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::destination_docs::{COMMON_FIELDS, DestinationPatch, DestinationRequest, fields_of};
use super::destination_view::{DestinationView, kind_of, take_object, view, views};
use crate::app::AppState;
use crate::audit::{self, Action, Actor, Entry};
use crate::auth::{Principal, Role};
use crate::catalogue::payloads::DisabledBy;
use crate::delivery::destination::settings;
use crate::delivery::destination::url::UrlKind;
use crate::delivery::destination::{Kind, REDACTED, SinkConfig, expand_types, redact_url};
use crate::delivery::{health, webhook};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::feed::cursor::Position;
use crate::http::openapi::{Problems, Unparsed, link};
use crate::http::tenant_id::TenantId;
use crate::secrets::places;
use crate::store::destinations::{self as store, DestinationRow, NewDestination};
use crate::store::{feed, outbox, tenants};

pub fn router() -> ApiRouter<AppState> {
    ApiRouter::new()
        .api_route(
            "/destinations",
            post_with(create, |op| {
                op.id("createDestination")
                    .summary("Create a destination (client key for its tenant, or platform key naming `tenant`)")
                    .description(
                        "Delivery starts with events committed from now on (replay reaches \
                         further back). An unreachable broker is not an error: it shows in the \
                         status. A tenant has at most EVENTGATE_MAX_DESTINATIONS_PER_TENANT \
                         destinations (409 beyond).",
                    )
                    .tag("destinations")
                    .response::<201, Json<DestinationView>>()
                    .with(|mut op| {
                        let operation = op.inner_mut();
                        let id = [("id", "$response.body#/id")];
                        for (name, target) in [
                            ("GetDestination", "getDestination"),
                            ("UpdateDestination", "updateDestination"),
                            ("ReplayDestination", "replayDestination"),
                            ("ListAttempts", "listAttempts"),
                            ("RotateSecret", "rotateSecret"),
                            ("DeleteDestination", "deleteDestination"),
                        ] {
                            link(operation, 201, name, target, &id);
                        }
                        op
                    })
                    .problems(&[403, 404, 409])
            })
            .get_with(list, |op| {
                op.id("listDestinations")
                    .summary("List destinations (own tenant; platform key all or `?tenant=`)")
                    .tag("destinations")
                    .problems(&[403])
            }),
        )
        .api_route(
            "/destinations/{id}",
            get_with(read, |op| {
                op.id("getDestination")
                    .summary("One destination with its delivery status")
                    .tag("destinations")
                    .problems(&[404])
            })
            .patch_with(update, |op| {
                op.id("updateDestination")
                    .summary("Change a destination's settings, types or enabled")
                    .tag("destinations")
                    .problems(&[404, 409])
            })
            .delete_with(remove, |op| {
                op.id("deleteDestination")
                    .summary("Delete a destination")
                    .tag("destinations")
                    .response::<204, ()>()
                    .problems(&[404])
            }),
        )
}

/// A destination id in the path.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationPath {
    pub id: Uuid,
}

/// Refuses a destination whose host, or an address it resolves to, the address policy
/// refuses (every kind): a 422 naming the rule, and no connection is ever made.
async fn check_address(state: &AppState, config: &SinkConfig) -> Result<(), ApiError> {
    let field = config.address_field();
    let endpoints = config.endpoints();
    if endpoints.is_empty() {
        return Err(ApiError::invalid(field, "names no host"));
    }
    let policy = state.config.address_policy();
    for (host, port) in endpoints {
        policy.check_on_save(host, port).await.map_err(|err| {
            ApiError::invalid(
                field,
                format!("{err}; the operator may allow it with EVENTGATE_DESTINATION_ALLOW"),
            )
        })?;
    }
    Ok(())
}

/// The tenant a client key is bound to; `None` (every tenant) for the platform.
fn scope(principal: &Principal) -> Option<&str> {
    match principal.role {
        Role::Client => principal.tenant.as_deref(),
        Role::Platform => None,
    }
}

/// A field is either left out or has a value: `null` is not a setting.
fn refuse_nulls(map: &Map<String, Value>) -> Result<(), ApiError> {
    match map.iter().find(|(_, value)| value.is_null()) {
        Some((field, _)) => Err(ApiError::invalid(
            field.as_str(),
            "must not be null; leave it out instead",
        )),
        None => Ok(()),
    }
}

fn take_types(map: &mut Map<String, Value>) -> Result<Option<Vec<String>>, ApiError> {
    match map.remove("types") {
        None => Ok(None),
        Some(value) => {
            let types: Vec<String> = serde_json::from_value(value)
                .map_err(|_| ApiError::invalid("types", "must be an array of strings"))?;
            if types.len() > 50 {
                return Err(ApiError::invalid("types", "at most 50 patterns"));
            }
            expand_types(&types)?;
            Ok(Some(types))
        }
    }
}

fn take_enabled(map: &mut Map<String, Value>) -> Result<Option<bool>, ApiError> {
    match map.remove("enabled") {
        None => Ok(None),
        Some(Value::Bool(enabled)) => Ok(Some(enabled)),
        Some(_) => Err(ApiError::invalid("enabled", "must be true or false")),
    }
}

fn take_kind(map: &mut Map<String, Value>) -> Result<Kind, ApiError> {
    match map.remove("kind") {
        Some(Value::String(kind)) => Kind::parse(&kind)
            .ok_or_else(|| ApiError::invalid("kind", "must be one of: amqp, mqtt, webhook, kafka")),
        _ => Err(ApiError::invalid(
            "kind",
            "is required: amqp, mqtt, webhook or kafka",
        )),
    }
}

/// A credential left as `***` with no stored value behind it is a view copied by mistake,
/// not a secret: 409 (the text itself fits the schema).
fn refuse_redacted(config: &Value) -> Result<(), ApiError> {
    match places::still_redacted(config, REDACTED) {
        Some(field) => Err(ApiError::conflict(format!(
            "`{field}` is `{REDACTED}`, which is how a stored secret is shown; send the secret itself"
        ))),
        None => Ok(()),
    }
}

/// A destination's settings as the audit log keeps them (credentials redacted).
fn audited(config: &SinkConfig, types: &[String], enabled: bool) -> Value {
    serde_json::json!({
        "kind": config.kind(),
        "settings": config.audited(),
        "types": types,
        "enabled": enabled,
    })
}

/// Whose destination this is: a client key's own tenant, or the one the platform names.
fn owner(principal: Principal, named: Option<Value>) -> Result<String, ApiError> {
    let named = match named {
        None => None,
        Some(Value::String(tenant)) => Some(tenant),
        Some(_) => return Err(ApiError::invalid("tenant", "must be a string")),
    };
    match (principal.role, principal.tenant, named) {
        (Role::Client, Some(own), None) => Ok(own),
        (Role::Client, Some(own), Some(named)) if named == own => Ok(own),
        (Role::Client, _, Some(_)) => Err(ApiError::Forbidden { role: "client" }),
        (Role::Platform, _, Some(named)) => Ok(named),
        (_, _, None) => Err(ApiError::NotFoundDetail {
            detail: "a platform key must name the tenant (`tenant`) the destination is for".into(),
        }),
    }
}

async fn create(
    principal: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Unparsed<DestinationRequest>>,
) -> Result<(StatusCode, Json<DestinationView>), ApiError> {
    let mut map = take_object(body.value)?;
    refuse_nulls(&map)?;
    let kind = take_kind(&mut map)?;
    let named = map.remove("tenant");
    let types = take_types(&mut map)?.unwrap_or_default();
    let enabled = take_enabled(&mut map)?.unwrap_or(true);
    let config = Value::Object(map);
    refuse_redacted(&config)?;
    let config = SinkConfig::parse(kind, config)?;
    let actor = Actor::from(&principal);
    let tenant = owner(principal, named)?;
    check_address(&state, &config).await?;
    let secret = match &config {
        SinkConfig::Webhook(webhook_config) => {
            Some(webhook::signing::new_key(webhook_config.signature).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    let mut tx = state.pool.begin().await?;
    // Locking the tenant serializes its creates, so concurrent ones cannot pass the cap.
    if !tenants::lock(&mut *tx, &tenant).await? {
        return Err(ApiError::NotFoundDetail {
            detail: format!("no tenant '{tenant}'"),
        });
    }
    let limit = state.config.max_destinations_per_tenant;
    if store::count_for_tenant(&mut *tx, &tenant).await? >= i64::from(limit) {
        return Err(ApiError::conflict(format!(
            "tenant '{tenant}' already has the maximum of {limit} destinations; delete one first"
        )));
    }
    // It delivers what commits from now on (replay reaches further back).
    let start = Position::horizon(feed::horizon(&mut *tx).await?.xmin);
    let row = store::insert(
        &mut *tx,
        &state.keyring,
        &NewDestination {
            tenant: &tenant,
            kind: kind.as_str(),
            config: &config.to_json(),
            types: &types,
            enabled,
            start,
            secret: secret.as_deref(),
        },
    )
    .await?;
    if let (SinkConfig::Webhook(webhook_config), true) = (&config, enabled) {
        webhook::queue_lifecycle(&mut tx, row.id, webhook_config, "Activated").await?;
    }
    let entry = Entry {
        tenant: Some(&tenant),
        action: Action::DestinationCreated,
        target: Some(row.id.to_string()),
        changes: audited(&config, &types, enabled),
    };
    audit::record(&mut tx, &actor, entry).await?;
    tx.commit().await?;
    let mut shown = view(&state, row).await?;
    // The only time an HMAC secret is shown, besides a rotation; an ed25519 private key is
    // never shown (its public key always is).
    shown.secret = secret.filter(|key| key.starts_with(webhook::signing::SECRET_PREFIX));
    Ok((StatusCode::CREATED, Json(shown)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Platform key: only this tenant's destinations. A client key may only name its own.
    tenant: Option<TenantId>,
}

/// The destinations, oldest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct DestinationList {
    data: Vec<DestinationView>,
}

async fn list(
    principal: Principal,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DestinationList>, ApiError> {
    let tenant = match (
        scope(&principal),
        params.tenant.as_ref().map(TenantId::as_str),
    ) {
        (Some(own), Some(named)) if named != own => {
            return Err(ApiError::Forbidden { role: "client" });
        }
        (Some(own), _) => Some(own),
        (None, named) => named,
    };
    let data = views(
        &state,
        store::list(&state.pool, &state.keyring, tenant).await?,
    )
    .await?;
    Ok(Json(DestinationList { data }))
}

/// The destination `id` if the caller may see it (404 otherwise).
pub(super) async fn find(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<DestinationRow, ApiError> {
    store::get(&state.pool, &state.keyring, id, scope(principal))
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })
}

async fn read(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
) -> Result<Json<DestinationView>, ApiError> {
    let row = find(&state, &principal, id).await?;
    Ok(Json(view(&state, row).await?))
}

/// Refuses fields that are not settings of `kind`: 409 when another kind has them (the
/// request fits some destination, not this one), 422 when none does.
fn check_patch_fields(kind: Kind, patch: &Map<String, Value>) -> Result<(), ApiError> {
    for field in patch.keys() {
        if fields_of(kind).contains(&field.as_str()) || COMMON_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let another_kinds = Kind::ALL
            .into_iter()
            .any(|other| fields_of(other).contains(&field.as_str()));
        if another_kinds {
            return Err(ApiError::conflict(format!(
                "`{field}` is not a setting of {} destinations",
                kind.as_str()
            )));
        }
        return Err(ApiError::invalid(
            field.as_str(),
            match field.as_str() {
                "kind" | "tenant" | "id" => "cannot be changed; create a new destination",
                _ => "unknown field",
            },
        ));
    }
    Ok(())
}

/// A URL of another kind (an `https://` URL for an AMQP destination) is 409: the request
/// fits some destination, not this one.
fn check_patch_url(kind: Kind, patch: &Map<String, Value>) -> Result<(), ApiError> {
    let Some(Value::String(url)) = patch.get("url") else {
        return Ok(());
    };
    let fits = |kind: Kind| UrlKind::of(kind).is_some_and(|grammar| grammar.host(url).is_some());
    if !fits(kind) && Kind::ALL.into_iter().any(fits) {
        return Err(ApiError::conflict(format!(
            "this URL is for another kind of destination than this {} one",
            kind.as_str()
        )));
    }
    Ok(())
}

/// A `topic` that only an MQTT destination takes (a space, a `/`), sent to a Kafka one, is
/// 409 like a URL of another kind: it fits some destination, not this one.
fn check_patch_topic(kind: Kind, patch: &Map<String, Value>) -> Result<(), ApiError> {
    match patch.get("topic") {
        Some(Value::String(topic))
            if kind == Kind::Kafka
                && !settings::is_kafka_topic(topic)
                && settings::is_mqtt_topic(topic) =>
        {
            Err(ApiError::conflict(
                "this topic is valid for MQTT destinations, not for Kafka ones (1-249 of A-Z, a-z, 0-9, '.', '_', '-')",
            ))
        }
        _ => Ok(()),
    }
}

async fn update(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
    ApiJson(body): ApiJson<Unparsed<DestinationPatch>>,
) -> Result<Json<DestinationView>, ApiError> {
    let mut patch = take_object(body.value)?;
    refuse_nulls(&patch)?;
    let mut fields: Vec<String> = patch.keys().cloned().collect();
    fields.sort();
    let types = take_types(&mut patch)?;
    let enabled = take_enabled(&mut patch)?;
    let row = find(&state, &principal, id).await?;
    let kind = kind_of(&row)?;
    check_patch_fields(kind, &patch)?;
    check_patch_url(kind, &patch)?;
    check_patch_topic(kind, &patch)?;
    // A URL sent back as it was shown (its password `***`) is the stored URL.
    if let (Some(Value::String(url)), Some(Value::String(stored))) =
        (patch.get("url"), row.config.get("url"))
        && *url == redact_url(stored)
    {
        patch.insert("url".into(), Value::String(stored.clone()));
    }
    if let (Some(sent), Some(stored)) = (patch.get("signature"), row.config.get("signature"))
        && sent != stored
    {
        return Err(ApiError::conflict(
            "the signature scheme is chosen when a destination is created; create a new destination to change it",
        ));
    }
    let types = types.unwrap_or(row.types.clone());
    let enabled = enabled.unwrap_or(row.enabled);
    // Only a new URL is checked here: a destination the policy refuses now (the operator
    // narrowed it, or its name moved) can still be disabled, retyped or deleted; the relay
    // refuses to connect to it either way.
    let address_changed = ["url", "bootstrap_servers", "oauth2"].iter().any(|field| {
        patch
            .get(*field)
            .is_some_and(|sent| row.config.get(*field) != Some(sent))
    });
    let mut config = take_object(row.config.clone())?;
    config.extend(patch);
    let mut config = Value::Object(config);
    // Credentials sent back as shown (`***`) keep their stored values.
    places::keep_redacted(&mut config, &row.config, REDACTED);
    refuse_redacted(&config)?;
    let config = SinkConfig::parse(kind, config)?;
    if address_changed {
        check_address(&state, &config).await?;
    }
    let mut tx = state.pool.begin().await?;
    if row.enabled && !enabled {
        // Disabling appends `destinations.disabled` to the tenant's outbox.
        outbox::begin_writing(&mut tx, &row.tenant_id).await?;
    }
    let updated = store::update_settings(
        &mut *tx,
        &state.keyring,
        id,
        &config.to_json(),
        &types,
        enabled,
    )
    .await?
    .ok_or(ApiError::NotFound {
        resource: "destination",
    })?;
    if let SinkConfig::Webhook(webhook_config) = &config
        && enabled != row.enabled
    {
        let event = if enabled { "Activated" } else { "Deactivated" };
        webhook::queue_lifecycle(&mut tx, id, webhook_config, event).await?;
    }
    if row.enabled && !enabled {
        let by = match principal.role {
            Role::Client => DisabledBy::Client,
            Role::Platform => DisabledBy::Platform,
        };
        health::disabled(&mut tx, &row.tenant_id, id, kind, by, None).await?;
    }
    let action = match (row.enabled, enabled) {
        (false, true) => Action::DestinationEnabled,
        (true, false) => Action::DestinationDisabled,
        _ => Action::DestinationUpdated,
    };
    let mut changes = audited(&config, &types, enabled);
    changes["fields"] = serde_json::json!(fields);
    let entry = Entry {
        tenant: Some(&row.tenant_id),
        action,
        target: Some(id.to_string()),
        changes,
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    Ok(Json(view(&state, updated).await?))
}

async fn remove(
    principal: Principal,
    State(state): State<AppState>,
    ApiPath(DestinationPath { id }): ApiPath<DestinationPath>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await?;
    let (tenant, kind) = store::delete(&mut *tx, id, scope(&principal))
        .await?
        .ok_or(ApiError::NotFound {
            resource: "destination",
        })?;
    let entry = Entry {
        tenant: Some(&tenant),
        action: Action::DestinationDeleted,
        target: Some(id.to_string()),
        changes: serde_json::json!({"kind": kind}),
    };
    audit::record(&mut tx, &Actor::from(&principal), entry).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

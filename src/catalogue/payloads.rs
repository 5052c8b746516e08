//! The typed `data` of every catalogue event (serde with `deny_unknown_fields`, enums for
//! every closed value set), and parsing `data` by event type with the failing field's path.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event_type::EventType;
use super::ids::{EntityId, Text};
use super::money::{Amount, Currency, DivestAmount};
use crate::delivery::destination::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PortfolioStatus {
    WaitingForAccount,
    WaitingForPolicy,
    WaitingForFunds,
    Active,
    Inactive,
}

impl PortfolioStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WaitingForAccount => "WAITING_FOR_ACCOUNT",
            Self::WaitingForPolicy => "WAITING_FOR_POLICY",
            Self::WaitingForFunds => "WAITING_FOR_FUNDS",
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OptimizationStatus {
    Pending,
    Success,
    Failure,
    Infeasible,
    NotOptimized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OwnerChoice {
    Accept,
    Reject,
    Reoptimize,
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportStatus {
    Ready,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportFormat {
    Web,
    Pdf,
    Video,
}

/// `portfolios.creation`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioCreation {
    pub id: EntityId,
    pub external_id: Text,
    pub owned_by_user_id: EntityId,
}

/// `portfolios.status-update`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioStatusUpdate {
    pub id: EntityId,
    pub external_id: Text,
    pub value: PortfolioStatus,
}

/// `portfolios.funding`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioFunding {
    pub id: EntityId,
    pub value: Amount,
    pub currency: Currency,
}

/// `portfolios.divest-amount-update` (the seed's "Withdrawal"): the TOTAL requested.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioDivestAmountUpdate {
    pub id: EntityId,
    pub external_id: Text,
    pub divest_amount: DivestAmount,
    pub currency: Currency,
}

/// `optimizations.status-update`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizationStatusUpdate {
    pub id: EntityId,
    pub portfolio_id: EntityId,
    pub external_id: Text,
    pub is_recommended: bool,
    pub value: OptimizationStatus,
}

/// `optimizations.owner-choice-update`
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizationOwnerChoiceUpdate {
    pub id: EntityId,
    pub portfolio_id: EntityId,
    pub external_id: Text,
    pub value: OwnerChoice,
}

/// `portfolios.removal` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortfolioRemoval {
    pub id: EntityId,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<Text>,
}

/// `users.creation` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreation {
    pub id: EntityId,
    pub user_data: UserData,
}

/// `users.status-update` and `users.account-number-update` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserValueUpdate {
    pub id: EntityId,
    pub value: Text,
}

/// `profiles.result-update` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileResultUpdate {
    pub id: EntityId,
    pub linked_portfolio_id: EntityId,
}

/// `profiles.assessment-result-update` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileAssessmentResultUpdate {
    pub id: EntityId,
    pub questionnaire_id: Text,
}

/// `reports.status-update` (preview)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportStatusUpdate {
    pub id: EntityId,
    pub value: ReportStatus,
    pub output_format: ReportFormat,
}

/// Who disabled a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DisabledBy {
    /// eventgate: the endpoint answered 410 Gone, or failed for too long.
    System,
    /// The tenant's client key.
    Client,
    /// The platform key.
    Platform,
}

/// `destinations.failing`: one of the tenant's destinations has failed to deliver for
/// EVENTGATE_DESTINATION_FAILING_AFTER_SECS; its events wait (nothing is lost).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationFailing {
    /// The destination's id.
    pub id: EntityId,
    pub kind: Kind,
    /// Its `last_error`.
    pub error: String,
    pub failing_since: DateTime<Utc>,
}

/// `destinations.recovered`: a destination that was reported failing delivers again.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationRecovered {
    pub id: EntityId,
    pub kind: Kind,
    /// Since when it had been failing.
    pub failing_since: DateTime<Utc>,
}

/// `destinations.disabled`: a destination stopped delivering until it is enabled again.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationDisabled {
    pub id: EntityId,
    pub kind: Kind,
    pub by: DisabledBy,
    /// Why, when eventgate disabled it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The `data` of one event, typed.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventData {
    PortfolioCreation(PortfolioCreation),
    PortfolioStatusUpdate(PortfolioStatusUpdate),
    PortfolioFunding(PortfolioFunding),
    PortfolioDivestAmountUpdate(PortfolioDivestAmountUpdate),
    OptimizationStatusUpdate(OptimizationStatusUpdate),
    OptimizationOwnerChoiceUpdate(OptimizationOwnerChoiceUpdate),
    PortfolioRemoval(PortfolioRemoval),
    UserCreation(UserCreation),
    UserStatusUpdate(UserValueUpdate),
    UserAccountNumberUpdate(UserValueUpdate),
    ProfileResultUpdate(ProfileResultUpdate),
    ProfileAssessmentResultUpdate(ProfileAssessmentResultUpdate),
    ReportStatusUpdate(ReportStatusUpdate),
    DestinationFailing(DestinationFailing),
    DestinationRecovered(DestinationRecovered),
    DestinationDisabled(DestinationDisabled),
}

/// Why `data` does not fit its type: the JSON path of the culprit and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DataError {
    pub path: String,
    pub message: String,
}

fn parse<T: for<'de> Deserialize<'de>>(data: Value) -> Result<T, DataError> {
    serde_path_to_error::deserialize(data).map_err(|err| {
        let path = err.path().to_string();
        DataError {
            path: if path == "." { String::new() } else { path },
            message: err.into_inner().to_string(),
        }
    })
}

impl EventData {
    /// Parses `data` as the payload of `ty`.
    pub fn parse(ty: EventType, data: Value) -> Result<Self, DataError> {
        use EventType as T;
        Ok(match ty {
            T::PortfoliosCreation => Self::PortfolioCreation(parse(data)?),
            T::PortfoliosStatusUpdate => Self::PortfolioStatusUpdate(parse(data)?),
            T::PortfoliosFunding => Self::PortfolioFunding(parse(data)?),
            T::PortfoliosDivestAmountUpdate => Self::PortfolioDivestAmountUpdate(parse(data)?),
            T::OptimizationsStatusUpdate => Self::OptimizationStatusUpdate(parse(data)?),
            T::OptimizationsOwnerChoiceUpdate => Self::OptimizationOwnerChoiceUpdate(parse(data)?),
            T::PortfoliosRemoval => Self::PortfolioRemoval(parse(data)?),
            T::UsersCreation => Self::UserCreation(parse(data)?),
            T::UsersStatusUpdate => Self::UserStatusUpdate(parse(data)?),
            T::UsersAccountNumberUpdate => Self::UserAccountNumberUpdate(parse(data)?),
            T::ProfilesResultUpdate => Self::ProfileResultUpdate(parse(data)?),
            T::ProfilesAssessmentResultUpdate => Self::ProfileAssessmentResultUpdate(parse(data)?),
            T::ReportsStatusUpdate => Self::ReportStatusUpdate(parse(data)?),
            T::DestinationsFailing => Self::DestinationFailing(parse(data)?),
            T::DestinationsRecovered => Self::DestinationRecovered(parse(data)?),
            T::DestinationsDisabled => Self::DestinationDisabled(parse(data)?),
        })
    }

    /// The id of the entity the event is about (`data.id` for every type).
    pub fn entity_id(&self) -> &EntityId {
        match self {
            Self::PortfolioCreation(d) => &d.id,
            Self::PortfolioStatusUpdate(d) => &d.id,
            Self::PortfolioFunding(d) => &d.id,
            Self::PortfolioDivestAmountUpdate(d) => &d.id,
            Self::OptimizationStatusUpdate(d) => &d.id,
            Self::OptimizationOwnerChoiceUpdate(d) => &d.id,
            Self::PortfolioRemoval(d) => &d.id,
            Self::UserCreation(d) => &d.id,
            Self::UserStatusUpdate(d) | Self::UserAccountNumberUpdate(d) => &d.id,
            Self::ProfileResultUpdate(d) => &d.id,
            Self::ProfileAssessmentResultUpdate(d) => &d.id,
            Self::ReportStatusUpdate(d) => &d.id,
            Self::DestinationFailing(d) => &d.id,
            Self::DestinationRecovered(d) => &d.id,
            Self::DestinationDisabled(d) => &d.id,
        }
    }

    /// The key that serializes writers touching the same state within `tenant`: the
    /// portfolio for portfolio and optimization events, the entity itself otherwise.
    pub fn lock_key(&self, tenant: &str) -> String {
        match self {
            Self::OptimizationStatusUpdate(d) => portfolio_lock_key(tenant, &d.portfolio_id),
            Self::OptimizationOwnerChoiceUpdate(d) => portfolio_lock_key(tenant, &d.portfolio_id),
            Self::PortfolioCreation(_)
            | Self::PortfolioStatusUpdate(_)
            | Self::PortfolioFunding(_)
            | Self::PortfolioDivestAmountUpdate(_)
            | Self::PortfolioRemoval(_) => portfolio_lock_key(tenant, self.entity_id()),
            other => format!("{tenant}/entity/{}", other.entity_id()),
        }
    }
}

/// The lock key of one portfolio's state (see `store::writes`, whose database function takes it).
pub fn portfolio_lock_key(tenant: &str, portfolio: &EntityId) -> String {
    format!("{tenant}/portfolio/{portfolio}")
}

/// The JSON Schema of `ty`'s `data` as events carry it, standing alone (as `GET /catalogue`
/// serves it; amounts are JSON numbers there).
pub fn data_schema(ty: EventType) -> schemars::Schema {
    (payload_schema(ty).root)(schemars::generate::SchemaSettings::default().for_serialize())
}

/// The JSON Schema of `ty`'s `data` as the platform publishes it (amounts as decimal
/// strings), standing alone.
pub fn publish_schema(ty: EventType) -> schemars::Schema {
    (payload_schema(ty).root)(schemars::generate::SchemaSettings::default())
}

/// The JSON Schema of `ty`'s `data` within a larger document: a reference into the
/// generator's definitions.
pub fn data_subschema(
    ty: EventType,
    generator: &mut schemars::SchemaGenerator,
) -> schemars::Schema {
    (payload_schema(ty).sub)(generator)
}

/// The two forms of one payload type's schema.
struct PayloadSchema {
    root: fn(schemars::generate::SchemaSettings) -> schemars::Schema,
    sub: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

fn schema_of<T: JsonSchema>() -> PayloadSchema {
    PayloadSchema {
        root: |settings| settings.into_generator().into_root_schema_for::<T>(),
        sub: |generator| generator.subschema_for::<T>(),
    }
}

fn payload_schema(ty: EventType) -> PayloadSchema {
    use EventType as T;
    match ty {
        T::PortfoliosCreation => schema_of::<PortfolioCreation>(),
        T::PortfoliosStatusUpdate => schema_of::<PortfolioStatusUpdate>(),
        T::PortfoliosFunding => schema_of::<PortfolioFunding>(),
        T::PortfoliosDivestAmountUpdate => schema_of::<PortfolioDivestAmountUpdate>(),
        T::OptimizationsStatusUpdate => schema_of::<OptimizationStatusUpdate>(),
        T::OptimizationsOwnerChoiceUpdate => schema_of::<OptimizationOwnerChoiceUpdate>(),
        T::PortfoliosRemoval => schema_of::<PortfolioRemoval>(),
        T::UsersCreation => schema_of::<UserCreation>(),
        T::UsersStatusUpdate | T::UsersAccountNumberUpdate => schema_of::<UserValueUpdate>(),
        T::ProfilesResultUpdate => schema_of::<ProfileResultUpdate>(),
        T::ProfilesAssessmentResultUpdate => schema_of::<ProfileAssessmentResultUpdate>(),
        T::ReportsStatusUpdate => schema_of::<ReportStatusUpdate>(),
        T::DestinationsFailing => schema_of::<DestinationFailing>(),
        T::DestinationsRecovered => schema_of::<DestinationRecovered>(),
        T::DestinationsDisabled => schema_of::<DestinationDisabled>(),
    }
}

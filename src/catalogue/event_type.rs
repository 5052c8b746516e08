//! The catalogue's event types (`subject.action`), which are previews, and how each maps
//! to an entity and a change kind for the entity-change wire format.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    PortfoliosCreation,
    PortfoliosStatusUpdate,
    PortfoliosFunding,
    PortfoliosDivestAmountUpdate,
    OptimizationsStatusUpdate,
    OptimizationsOwnerChoiceUpdate,
    PortfoliosRemoval,
    UsersCreation,
    UsersStatusUpdate,
    UsersAccountNumberUpdate,
    ProfilesResultUpdate,
    ProfilesAssessmentResultUpdate,
    ReportsStatusUpdate,
    DestinationsFailing,
    DestinationsRecovered,
    DestinationsDisabled,
}

/// The entity an event is about, as named in the entity-change format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Entity {
    Portfolio,
    Optimization,
    User,
    Profile,
    Report,
    /// One of the tenant's own destinations (eventgate's delivery health events).
    Destination,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Portfolio => "Portfolio",
            Entity::Optimization => "Optimization",
            Entity::User => "User",
            Entity::Profile => "Profile",
            Entity::Report => "Report",
            Entity::Destination => "Destination",
        }
    }

    /// Path of the read model resource for an entity, where eventgate has one.
    pub fn resource_path(self, id: &str) -> Option<String> {
        match self {
            Entity::Portfolio => Some(format!("/portfolios/{id}")),
            Entity::Optimization => Some(format!("/optimizations/{id}")),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[sqlx(type_name = "text")]
pub enum Change {
    Created,
    Updated,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "Created",
            Change::Updated => "Updated",
            Change::Deleted => "Deleted",
        }
    }
}

/// How an event type's change kind is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRule {
    Always(Change),
    /// `Created` for the first event about the entity, `Updated` after.
    CreatedIfNew,
}

struct TypeInfo {
    ty: EventType,
    subject: &'static str,
    action: &'static str,
    preview: bool,
    entity: Entity,
    change: ChangeRule,
    /// Emitted by eventgate itself, never published by the platform.
    emitted: bool,
}

const TYPES: &[TypeInfo] = &[
    info(
        EventType::PortfoliosCreation,
        "portfolios",
        "creation",
        false,
        Entity::Portfolio,
        ChangeRule::Always(Change::Created),
    ),
    info(
        EventType::PortfoliosStatusUpdate,
        "portfolios",
        "status-update",
        false,
        Entity::Portfolio,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::PortfoliosFunding,
        "portfolios",
        "funding",
        false,
        Entity::Portfolio,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::PortfoliosDivestAmountUpdate,
        "portfolios",
        "divest-amount-update",
        false,
        Entity::Portfolio,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::OptimizationsStatusUpdate,
        "optimizations",
        "status-update",
        false,
        Entity::Optimization,
        ChangeRule::CreatedIfNew,
    ),
    info(
        EventType::OptimizationsOwnerChoiceUpdate,
        "optimizations",
        "owner-choice-update",
        false,
        Entity::Optimization,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::PortfoliosRemoval,
        "portfolios",
        "removal",
        true,
        Entity::Portfolio,
        ChangeRule::Always(Change::Deleted),
    ),
    info(
        EventType::UsersCreation,
        "users",
        "creation",
        true,
        Entity::User,
        ChangeRule::Always(Change::Created),
    ),
    info(
        EventType::UsersStatusUpdate,
        "users",
        "status-update",
        true,
        Entity::User,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::UsersAccountNumberUpdate,
        "users",
        "account-number-update",
        true,
        Entity::User,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::ProfilesResultUpdate,
        "profiles",
        "result-update",
        true,
        Entity::Profile,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::ProfilesAssessmentResultUpdate,
        "profiles",
        "assessment-result-update",
        true,
        Entity::Profile,
        ChangeRule::Always(Change::Updated),
    ),
    info(
        EventType::ReportsStatusUpdate,
        "reports",
        "status-update",
        true,
        Entity::Report,
        ChangeRule::Always(Change::Updated),
    ),
    emitted(EventType::DestinationsFailing, "failing"),
    emitted(EventType::DestinationsRecovered, "recovered"),
    emitted(EventType::DestinationsDisabled, "disabled"),
];

/// A delivery health event about one of the tenant's destinations.
const fn emitted(ty: EventType, action: &'static str) -> TypeInfo {
    TypeInfo {
        emitted: true,
        ..info(
            ty,
            "destinations",
            action,
            false,
            Entity::Destination,
            ChangeRule::Always(Change::Updated),
        )
    }
}

const fn info(
    ty: EventType,
    subject: &'static str,
    action: &'static str,
    preview: bool,
    entity: Entity,
    change: ChangeRule,
) -> TypeInfo {
    TypeInfo {
        ty,
        subject,
        action,
        preview,
        entity,
        change,
        emitted: false,
    }
}

impl EventType {
    pub fn all() -> impl Iterator<Item = EventType> {
        TYPES.iter().map(|t| t.ty)
    }

    fn info(self) -> &'static TypeInfo {
        // Every variant has exactly one row in TYPES (checked by a unit test).
        TYPES.iter().find(|t| t.ty == self).unwrap_or(&TYPES[0])
    }

    pub fn subject(self) -> &'static str {
        self.info().subject
    }

    pub fn action(self) -> &'static str {
        self.info().action
    }

    /// `subject.action`, e.g. `portfolios.creation`.
    pub fn name(self) -> String {
        format!("{}.{}", self.subject(), self.action())
    }

    pub fn is_preview(self) -> bool {
        self.info().preview
    }

    /// Emitted by eventgate itself (delivery health), never published by the platform.
    pub fn is_emitted(self) -> bool {
        self.info().emitted
    }

    pub fn entity(self) -> Entity {
        self.info().entity
    }

    pub fn change_rule(self) -> ChangeRule {
        self.info().change
    }

    pub fn from_parts(subject: &str, action: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.subject == subject && t.action == action)
            .map(|t| t.ty)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        let (subject, action) = name.split_once('.')?;
        Self::from_parts(subject, action)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.subject(), self.action())
    }
}

/// A `type` filter: an exact `subject.action` or a whole subject `subject.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypePattern {
    Exact(EventType),
    Subject(&'static str),
}

impl TypePattern {
    pub fn parse(pattern: &str) -> Option<Self> {
        if let Some(subject) = pattern.strip_suffix(".*") {
            return TYPES
                .iter()
                .find(|t| t.subject == subject)
                .map(|t| Self::Subject(t.subject));
        }
        EventType::from_name(pattern).map(Self::Exact)
    }

    pub fn matches(&self, ty: EventType) -> bool {
        match self {
            Self::Exact(exact) => *exact == ty,
            Self::Subject(subject) => ty.subject() == *subject,
        }
    }

    /// Every pattern `parse` accepts: each type's name, and `subject.*` for each subject.
    pub fn every_pattern() -> Vec<String> {
        let mut patterns: Vec<String> = EventType::all().map(EventType::name).collect();
        for ty in EventType::all() {
            let wildcard = format!("{}.*", ty.subject());
            if !patterns.contains(&wildcard) {
                patterns.push(wildcard);
            }
        }
        patterns
    }

    /// The event type names this pattern covers.
    pub fn names(&self) -> Vec<String> {
        EventType::all()
            .filter(|ty| self.matches(*ty))
            .map(EventType::name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_catalogue_row_and_round_trips_its_name() {
        let all: Vec<_> = EventType::all().collect();
        assert_eq!(all.len(), 16);
        for ty in all {
            assert_eq!(TYPES.iter().filter(|t| t.ty == ty).count(), 1);
            assert_eq!(EventType::from_name(&ty.name()), Some(ty));
        }
    }

    #[test]
    fn patterns_match_exact_types_and_whole_subjects() {
        let portfolios = TypePattern::parse("portfolios.*").unwrap();
        assert!(portfolios.matches(EventType::PortfoliosFunding));
        assert!(!portfolios.matches(EventType::OptimizationsStatusUpdate));
        assert!(TypePattern::parse("nothing.*").is_none());
        assert!(TypePattern::parse("portfolios.nothing").is_none());
        assert!(TypePattern::parse("portfolios").is_none());
    }
}

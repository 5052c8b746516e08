//! The audit trail: who did which administrative action, to what, when, with which
//! request. [`record`] writes one entry in the caller's transaction, so the change and
//! its entry commit together or not at all. What changed is described without secrets:
//! URLs are redacted, and secrets are named ("rotated"), never written.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Principal;
pub use crate::store::audit::Action;
use crate::store::audit::{self as store, NewEntry};

/// Who acted: an API key (with the request it came in), the operator's CLI, or the
/// server itself (the platform key configured at start-up).
#[derive(Debug, Clone)]
pub struct Actor {
    pub key_id: Option<Uuid>,
    pub role: &'static str,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn operator() -> Self {
        Self {
            key_id: None,
            role: "operator",
            request_id: None,
        }
    }

    pub fn system() -> Self {
        Self {
            key_id: None,
            role: "system",
            request_id: None,
        }
    }
}

impl From<&Principal> for Actor {
    fn from(principal: &Principal) -> Self {
        Self {
            key_id: Some(principal.key_id),
            role: principal.role.as_str(),
            request_id: principal.request_id.clone(),
        }
    }
}

/// What an entry is about.
pub struct Entry<'a> {
    pub tenant: Option<&'a str>,
    pub action: Action,
    pub target: Option<String>,
    /// What changed, without secrets.
    pub changes: Value,
}

/// Records `entry` by `actor` in the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    entry: Entry<'_>,
) -> Result<(), sqlx::Error> {
    store::insert(
        conn,
        &NewEntry {
            actor_key_id: actor.key_id,
            actor_role: actor.role,
            tenant: entry.tenant,
            action: entry.action,
            target: entry.target.as_deref(),
            request_id: actor.request_id.as_deref(),
            changes: &entry.changes,
        },
    )
    .await
}

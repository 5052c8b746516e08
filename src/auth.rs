//! API-key authentication: `Authorization: Bearer <key>` becomes a [`Principal`].
//!
//! Keys are 256-bit random secrets shown once; only their SHA-256 is stored. A `client` key
//! acts for exactly one tenant, a `platform` key for all. Extractors enforce the role a
//! route needs: no key or an unknown, revoked or expired one is 401, the wrong role 403. A tenant's
//! keys share its rate limit (429 when exceeded). A key verified in the database is kept in
//! the key cache for a few seconds (`crate::key_cache`, which also says how revocation stays
//! prompt).

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::key_cache::{KeyCache, KeyHash};
use crate::metrics::Metrics;
use crate::rate_limit::TenantRateLimit;
use crate::store;
use crate::store::keys::ActiveKey;

/// What authentication needs of the server's state (taken from it with `FromRef`, so this
/// module does not depend on the application's state type).
#[derive(Clone)]
pub struct AuthState {
    pub pool: sqlx::PgPool,
    pub rate_limit: TenantRateLimit,
    pub metrics: Metrics,
    pub key_cache: KeyCache,
}

const KEY_PREFIX: &str = "egk_";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Client,
    Platform,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Platform => "platform",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "client" => Some(Role::Client),
            "platform" => Some(Role::Platform),
            _ => None,
        }
    }
}

/// Who is calling: the key, its role, (for client keys) its tenant, and the request's id
/// (for the audit log).
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: Uuid,
    pub role: Role,
    pub tenant: Option<String>,
    pub request_id: Option<String>,
}

/// A freshly generated key: the secret to show once and the hash to store.
pub struct NewKey {
    pub secret: String,
    pub hash: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessError(getrandom::Error);

impl From<getrandom::Error> for RandomnessError {
    fn from(err: getrandom::Error) -> Self {
        Self(err)
    }
}

impl NewKey {
    pub fn generate() -> Result<Self, RandomnessError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(RandomnessError)?;
        let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash_key(&secret);
        Ok(Self { secret, hash })
    }
}

pub fn hash_key(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The usable key `token` is, from the key cache or else the database.
async fn find_key(state: &AuthState, token: &str) -> Result<Option<ActiveKey>, sqlx::Error> {
    let hash: KeyHash = Sha256::digest(token.as_bytes()).into();
    if let Some(key) = state.key_cache.get(&hash) {
        return Ok(Some(key));
    }
    let started = state.key_cache.lookup_started();
    let found = store::keys::find_active(&state.pool, &hash).await?;
    if let Some(key) = &found {
        state.key_cache.put(hash, key.clone(), started);
    }
    Ok(found)
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    AuthState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = AuthState::from_ref(state);
        let token = bearer_token(parts).ok_or(ApiError::Unauthorized)?;
        let principal = find_key(&state, token)
            .await?
            .and_then(|key| {
                Role::parse(&key.role).map(|role| Principal {
                    key_id: key.id,
                    role,
                    tenant: key.tenant_id,
                    request_id: parts
                        .headers
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned),
                })
            })
            .ok_or(ApiError::Unauthorized)?;
        if let Some(tenant) = &principal.tenant {
            state.rate_limit.check(tenant).map_err(|wait| {
                state.metrics.rate_limited(tenant);
                ApiError::TooManyRequests {
                    detail: format!(
                        "tenant '{tenant}' is over its limit of {} requests per second; retry later",
                        state.rate_limit.per_second()
                    ),
                    // Whole seconds, rounded up: a client that waits this long gets a token.
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                }
            })?;
        }
        Ok(principal)
    }
}

/// A caller holding a `client` key; derefs to its tenant id.
#[derive(Debug, Clone)]
pub struct ClientTenant(pub String);

impl<S> FromRequestParts<S> for ClientTenant
where
    S: Send + Sync,
    AuthState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match (principal.role, principal.tenant) {
            (Role::Client, Some(tenant)) => Ok(Self(tenant)),
            (role, _) => Err(ApiError::Forbidden {
                role: role.as_str(),
            }),
        }
    }
}

/// A caller holding a `platform` key.
#[derive(Debug, Clone)]
pub struct Platform(pub Principal);

impl<S> FromRequestParts<S> for Platform
where
    S: Send + Sync,
    AuthState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match principal.role {
            Role::Platform => Ok(Self(principal)),
            role => Err(ApiError::Forbidden {
                role: role.as_str(),
            }),
        }
    }
}
